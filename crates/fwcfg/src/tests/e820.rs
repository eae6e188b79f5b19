use crate::e820::{E820_RAM, E820_RESERVED};
use crate::{parse_e820, E820Entry, E820Error};

#[test]
fn q35_fixture() {
    let e = parse_e820(include_bytes!("../../testdata/q35-e820.bin")).unwrap();
    // 512 MiB of RAM plus the reserved 12 GiB window at 1012 GiB that
    // QEMU 7.2 keeps for the AMD IOMMU.
    assert_eq!(
        e,
        &[
            E820Entry::new(0xfd_0000_0000, 0x3_0000_0000, E820_RESERVED),
            E820Entry::new(0, 512 << 20, E820_RAM),
        ]
    );
    assert_eq!(e[0].end(), Some(0x100_0000_0000));
}

#[test]
fn microvm_fixture() {
    let e = parse_e820(include_bytes!("../../testdata/microvm-e820.bin")).unwrap();
    assert_eq!(e, &[E820Entry::new(0, 256 << 20, E820_RAM)]);
}

#[test]
fn empty_is_empty_map() {
    assert_eq!(parse_e820(&[]).unwrap().len(), 0);
}

#[test]
fn partial_entry_is_rejected() {
    let mut b = include_bytes!("../../testdata/q35-e820.bin").to_vec();
    b.push(0);
    assert_eq!(parse_e820(&b), Err(E820Error::Partial { len: 41 }));
    assert_eq!(parse_e820(&b[..19]), Err(E820Error::Partial { len: 19 }));
    let msg = std::format!("{}", E820Error::Partial { len: 41 });
    assert!(
        msg.contains("41 bytes") && msg.contains("1 left over"),
        "{msg}"
    );
}

#[test]
fn wrapping_entry_has_no_end() {
    assert_eq!(E820Entry::new(u64::MAX, 2, 1).end(), None);
}
