//! Device tree editing (`ember-dtb`): the VMM's DTB is input Ember did not
//! make. Whatever the bytes, set_chosen returns an error or a blob, and a
//! blob it wrote must edit again (its structure is well-formed).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let start = 0x4800_0000u64.to_be_bytes();
    let props: [(&str, &[u8]); 2] = [("bootargs", b"console=ttyAMA0\0"), ("linux,initrd-start", &start)];
    let mut out = vec![0u8; data.len().saturating_mul(2).min(1 << 20) + 512];
    if let Ok(n) = ember_dtb::set_chosen(data, &props, &mut out) {
        let mut again = vec![0u8; n + 512];
        ember_dtb::set_chosen(&out[..n], &props[..1], &mut again).expect("a blob set_chosen wrote edits again");
    }
});
