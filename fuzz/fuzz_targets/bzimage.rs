//! bzImage header validation, placement on a small memory map and the zero
//! page, driven by the input: `u64 file size | u64 cmdline addr | u32 cmdline
//! len | u64 initrd size | u8 map shape | header bytes...`.
#![no_main]

use ember_fuzz::Bytes;
use ember_linux::{build_boot_params, place_initrd, place_kernel, BootInputs, BzImage};
use ember_mem::{E820Entry, MemKind, MemoryMap, E820_RAM, E820_RESERVED};
use libfuzzer_sys::fuzz_target;

const MIB: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    // The same bytes as an arm64 Image header: parse, then place anywhere
    // (checked arithmetic; a placement is aligned and inside RAM).
    if let Ok(h) = ember_linux::arm64::ImageHeader::parse(data, (data.len() as u64).min(1 << 20)) {
        let ram_end = u64::from_le_bytes(data.get(32..40).and_then(|b| b.try_into().ok()).unwrap_or([0xff; 8]));
        if let Ok(p) = ember_linux::arm64::place(&h, data.len() as u64, 0x4180_0000, (0x4000_0000, ram_end)) {
            assert!(p.kernel % (2 << 20) == h.text_offset && p.dtb + (2 << 20) <= ram_end);
        }
    }
    let mut r = Bytes(data);
    let file_size = r.u64();
    let cmdline_addr = r.u64();
    let cmdline_len = r.u32();
    let initrd_size = r.u64() & ((1 << 34) - 1);
    let shape = r.u8();
    let header = r.0;
    let Ok(bz) = BzImage::parse(header, file_size) else {
        return;
    };
    // parse is a pure function of the header: a longer prefix changes nothing.
    let mut longer = header.to_vec();
    longer.resize(header.len() + 512, 0xa5);
    assert_eq!(BzImage::parse(&longer, file_size).ok(), Some(bz));
    let _ = (
        bz.load_size(),
        bz.kernel_offset(),
        bz.kernel_size(),
        bz.can_load_above_4g(),
    );

    // Small maps like QEMU's and Firecracker's, with and without high RAM.
    let mut e820 = vec![
        E820Entry::new(0, 0x9fc00, E820_RAM),
        E820Entry::new(0xf0000, 0x10000, E820_RESERVED),
        E820Entry::new(MIB, (64 << (shape & 7)) * MIB, E820_RAM),
    ];
    if shape & 8 != 0 {
        e820.push(E820Entry::new(1 << 32, 4 << 30, E820_RAM));
    }
    let mut map = MemoryMap::<32>::from_e820(&e820).expect("fixed map fits");
    let kernel = match place_kernel(&bz, &mut map) {
        Ok(a) => a,
        Err(_) => return,
    };
    assert!(kernel >= MIB, "kernel placed below 1 MiB at {kernel:#x}");
    assert_eq!(map.kind_at(kernel), Some(MemKind::Kernel));
    let initrd = if initrd_size != 0 {
        match place_initrd(initrd_size, &bz, &mut map) {
            Ok(a) => {
                assert_eq!(map.kind_at(a), Some(MemKind::Initrd));
                // The kernel's reservation and the initrd never overlap.
                assert!(a + initrd_size <= kernel || kernel + bz.load_size() <= a);
                a
            }
            Err(_) => return,
        }
    } else {
        0
    };
    let mut table = [E820Entry::default(); 128];
    let n = map.to_e820(&mut table);
    let inputs = BootInputs {
        cmdline_addr,
        cmdline_len,
        initrd_addr: initrd,
        initrd_size,
        rsdp_addr: 0xe0000,
        e820: &table[..n],
    };
    let _ = build_boot_params(&bz, header, &inputs);
});
