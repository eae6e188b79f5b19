use crate::dma::{
    dma_address_halves, DmaStatus, CTL_ERROR, CTL_READ, CTL_SELECT, CTL_SKIP, CTL_WRITE,
};
use crate::DmaAccess;
use zerocopy::IntoBytes;

#[test]
fn control_bits_match_spec() {
    assert_eq!(
        [CTL_ERROR, CTL_READ, CTL_SKIP, CTL_SELECT, CTL_WRITE],
        [1, 2, 4, 8, 16]
    );
}

#[test]
fn read_with_select_is_big_endian() {
    let d = DmaAccess::read(Some(crate::FILE_DIR), 4, 0x1234_5678_9abc);
    assert_eq!(
        d.as_bytes(),
        &[0x00, 0x19, 0x00, 0x0a, 0, 0, 0, 4, 0, 0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc]
    );
}

#[test]
fn continue_write_and_skip() {
    assert_eq!(DmaAccess::read(None, 8, 0x10).control.get(), CTL_READ);
    let w = DmaAccess::write(Some(0x2e), 8, 0x2000);
    assert_eq!(w.control.get(), 0x002e_0000 | CTL_SELECT | CTL_WRITE);
    let s = DmaAccess::skip(Some(0x2e), 40);
    assert_eq!(s.control.get(), 0x002e_0000 | CTL_SELECT | CTL_SKIP);
    assert_eq!((s.length.get(), s.address.get()), (40, 0));
}

#[test]
fn status() {
    let mut d = DmaAccess::read(Some(1), 4, 0);
    assert_eq!(d.status(), DmaStatus::Busy);
    d.control.set(0);
    assert_eq!(d.status(), DmaStatus::Done);
    d.control.set(CTL_ERROR | CTL_READ);
    assert_eq!(d.status(), DmaStatus::Error);
}

#[test]
fn address_halves() {
    assert_eq!(dma_address_halves(0x1_2345_6789), (1, 0x2345_6789));
    assert_eq!(dma_address_halves(0x7000), (0, 0x7000));
}

#[test]
fn dma_signature_spells_qemu_cfg() {
    assert_eq!(&crate::DMA_SIGNATURE.to_be_bytes(), b"QEMU CFG");
}
