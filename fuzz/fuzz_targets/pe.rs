//! PE32+ validation and loading (the UEFI image loader): parse, then lay the
//! image out at its preferred base and elsewhere. The same bytes also go
//! through the type #2 entry reader (`ember_bls::read_uki`), which reads
//! only the headers and two sections of a UKI on the ESP.
#![no_main]

use ember_pe::PeImage;
use libfuzzer_sys::fuzz_target;

/// Larger images are parsed but not loaded, to keep executions fast.
const MAX_LOAD: u32 = 4 << 20;

fuzz_target!(|data: &[u8]| {
    let _ = ember_bls::read_uki(
        "f.efi",
        "/EFI/Linux/f.efi",
        data.len() as u64,
        &[ember_pe::MACHINE_X86_64, ember_pe::MACHINE_AARCH64],
        |off, buf| {
            let src = usize::try_from(off)
                .ok()
                .and_then(|o| data.get(o..))
                .ok_or_else(|| String::from("read past the end"))?;
            let n = src.len().min(buf.len());
            buf[..n].copy_from_slice(&src[..n]);
            Ok(n)
        },
    );
    let Ok(img) = PeImage::parse(data) else {
        return;
    };
    let size = u64::from(img.image_size());
    let mut perms: Vec<_> = img.section_permissions().collect();
    perms.sort_by_key(|p| p.rva);
    let mut end = 0u64;
    for p in &perms {
        assert!(
            u64::from(p.rva) >= end,
            "overlapping section ranges {perms:?}"
        );
        end = u64::from(p.rva) + u64::from(p.size);
        assert!(end <= size, "section range past SizeOfImage {p:?}");
    }
    for s in img.sections() {
        let _ = (s.name_str(), s.data(data), s.mem_size());
    }
    let _ = (img.certificate_table(data), img.entry_rva(), img.may_move());
    if img.image_size() > MAX_LOAD {
        return;
    }
    let mut dest = vec![0xa5u8; img.image_size() as usize];
    for base in [img.preferred_base(), 0x10_0000, 0x7fff_f000_0000] {
        let before = dest.clone();
        if img.load(data, &mut dest, base).is_err() {
            assert!(dest == before, "failed load wrote to dest");
        }
    }
});
