//! Parsing and booting-prep against the header of a real distribution kernel.
//!
//! Expected values were read from the full Debian file with
//! `od -A n -t x<size> -j <offset>` at boot.rst's documented offsets (see
//! `tests/data/README.md`), independently of this crate's parser.

use ember_linux::*;
use ember_mem::{E820Entry, MemError, MemKind, MemoryMap, E820_RAM, E820_RESERVED};

const HEAD: &[u8] = include_bytes!("data/vmlinuz-6.1.0-56-cloud-amd64.head16k");
/// `stat -c %s` of the full vmlinuz.
const FILE_SIZE: u64 = 14_186_432;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn debian() -> BzImage {
    BzImage::parse(&HEAD[..BzImage::HEADER_BYTES], FILE_SIZE).unwrap()
}

fn ram_map(ranges: &[(u64, u64)]) -> MemoryMap<16> {
    let entries: Vec<E820Entry> = ranges
        .iter()
        .map(|&(a, s)| E820Entry::new(a, s, E820_RAM))
        .collect();
    MemoryMap::from_e820(&entries).unwrap()
}

#[test]
fn parses_debian_cloud_kernel() {
    let bz = debian();
    assert_eq!(bz.protocol_version(), 0x020f); // od -t x2 -j 0x206
    assert_eq!(bz.setup_size(), (0x27 + 1) * 512); // setup_sects 0x27 at 0x1f1
    assert_eq!(bz.kernel_offset(), 20480);
    assert_eq!(bz.kernel_size(), FILE_SIZE - 20480);
    assert_eq!(bz.pref_address(), 0x0100_0000); // 0x258
    assert_eq!(bz.kernel_alignment(), 0x0020_0000); // 0x230
    assert!(bz.relocatable()); // 0x234 = 1
    assert_eq!(bz.init_size(), 0x0337_8000); // 0x260
    assert_eq!(bz.initrd_addr_max(), 0x7fff_ffff); // 0x22c
    assert_eq!(bz.cmdline_size(), 0x7ff); // 0x238
    assert_eq!(bz.xloadflags(), 0x7f); // 0x236
    assert!(bz.can_load_above_4g());
    assert_eq!(bz.load_size(), 0x0337_8000);
    let h = bz.header();
    assert_eq!(h.syssize.get(), 0x000d_8220); // 0x1f4
    assert_eq!(h.handover_offset.get(), 0x00d7_2f10); // 0x264
    assert_eq!(h.kernel_info_offset.get(), 0x00d7_f91c); // 0x268
    assert_eq!(h.loadflags, 0x01); // 0x211
                                   // file(1): "RO-rootFS" (root_flags = 1), "Normal VGA" (vid_mode 0xffff),
                                   // "swap_dev 0XD" (libmagic's name for 0x1f6, the top half of syssize).
    assert_eq!(h.root_flags.get(), 1);
    assert_eq!(h.vid_mode.get(), 0xffff);
    assert_eq!(h.syssize.get() >> 16, 0xd);
    // The whole 16 KiB prefix parses the same as the minimum.
    assert_eq!(BzImage::parse(HEAD, FILE_SIZE).unwrap(), bz);
    assert_eq!(
        BzImage::parse(&HEAD[..SETUP_HEADER_END], FILE_SIZE).unwrap(),
        bz
    );
}

fn corrupt(offset: usize, bytes: &[u8]) -> Vec<u8> {
    let mut v = HEAD[..BzImage::HEADER_BYTES].to_vec();
    v[offset..offset + bytes.len()].copy_from_slice(bytes);
    v
}

#[test]
fn rejects_corrupt_and_truncated_headers() {
    assert_eq!(
        BzImage::parse(&HEAD[..SETUP_HEADER_END - 1], FILE_SIZE),
        Err(LinuxError::Truncated {
            needed: SETUP_HEADER_END,
            got: SETUP_HEADER_END - 1
        })
    );
    assert!(matches!(
        BzImage::parse(&[], FILE_SIZE),
        Err(LinuxError::Truncated { .. })
    ));
    assert_eq!(
        BzImage::parse(&corrupt(0x1fe, &[0x55, 0xab]), FILE_SIZE),
        Err(LinuxError::BadBootFlag { found: 0xab55 })
    );
    assert_eq!(
        BzImage::parse(&corrupt(0x202, b"HdrZ"), FILE_SIZE),
        Err(LinuxError::BadMagic {
            found: u32::from_le_bytes(*b"HdrZ")
        })
    );
    assert_eq!(
        BzImage::parse(&corrupt(0x206, &[0x0b, 0x02]), FILE_SIZE),
        Err(LinuxError::ProtocolTooOld { version: 0x020b })
    );
    assert_eq!(
        BzImage::parse(&corrupt(0x236, &[0x7e, 0]), FILE_SIZE),
        Err(LinuxError::No64BitEntry)
    );
    assert_eq!(
        BzImage::parse(&corrupt(0x211, &[0]), FILE_SIZE),
        Err(LinuxError::NotBzImage)
    );
    // 255 setup sectors in a file of 100 KiB.
    assert_eq!(
        BzImage::parse(&corrupt(0x1f1, &[0xff]), 100 * 1024),
        Err(LinuxError::SetupBeyondFile {
            setup_size: 256 * 512,
            file_size: 100 * 1024
        })
    );
    // The real header against a file one byte shorter than setup + syssize*16.
    let kernel_end = 20480 + 0x000d_8220 * 16;
    assert_eq!(
        BzImage::parse(HEAD, kernel_end - 1),
        Err(LinuxError::KernelBeyondFile {
            kernel_end,
            file_size: kernel_end - 1
        })
    );
    assert!(BzImage::parse(HEAD, kernel_end).is_ok());
    // A huge syssize cannot overflow the check.
    assert!(matches!(
        BzImage::parse(&corrupt(0x1f4, &[0xff; 4]), FILE_SIZE),
        Err(LinuxError::KernelBeyondFile { .. })
    ));
    assert_eq!(
        BzImage::parse(&corrupt(0x230, &[0x00, 0x00, 0x30, 0x00]), FILE_SIZE),
        Err(LinuxError::BadKernelAlignment { align: 0x30_0000 })
    );
    assert_eq!(
        BzImage::parse(&corrupt(0x260, &[0; 4]), FILE_SIZE),
        Err(LinuxError::BadInitSize)
    );
    // The jump at 0x200 must be a forward short jump past the 2.12 fields.
    assert_eq!(
        BzImage::parse(&corrupt(0x201, &[0x10]), FILE_SIZE),
        Err(LinuxError::BadHeaderLength { end: 0x212 })
    );
    assert_eq!(
        BzImage::parse(&corrupt(0x200, &[0xe9]), FILE_SIZE),
        Err(LinuxError::BadHeaderLength { end: 0 })
    );
    assert_eq!(
        BzImage::parse(&corrupt(0x201, &[0x90]), FILE_SIZE),
        Err(LinuxError::BadHeaderLength { end: 0 })
    );
    // setup_sects = 0 means 4.
    let bz = BzImage::parse(&corrupt(0x1f1, &[0]), FILE_SIZE).unwrap();
    assert_eq!(bz.setup_size(), 5 * 512);
    // Every error message is non-empty prose.
    let e = BzImage::parse(&corrupt(0x206, &[0x0b, 0x02]), FILE_SIZE).unwrap_err();
    assert!(e.to_string().contains("2.11"), "{e}");
}

#[test]
fn places_kernel_at_pref_address_when_free() {
    let bz = debian();
    let mut map = ram_map(&[(0, 0x9f000), (MIB, 2 * GIB - MIB)]);
    let at = place_kernel(&bz, &mut map).unwrap();
    assert_eq!(at, 16 * MIB);
    assert_eq!(entry64(at), 16 * MIB + 0x200);
    assert_eq!(map.kind_at(16 * MIB), Some(MemKind::Kernel));
    assert_eq!(
        map.kind_at(16 * MIB + 0x0337_8000 - 1),
        Some(MemKind::Kernel)
    );
    assert_eq!(map.kind_at(16 * MIB + 0x0337_8000), Some(MemKind::Free));
}

#[test]
fn relocates_when_pref_address_is_taken() {
    let bz = debian();
    let mut map = ram_map(&[(0, 0x9f000), (MIB, 2 * GIB - MIB)]);
    map.allocate_at(16 * MIB, 1, MemKind::Loader).unwrap();
    // Next 2 MiB-aligned free start at or above pref_address.
    assert_eq!(place_kernel(&bz, &mut map).unwrap(), 18 * MIB);
    // Again: the first kernel now occupies 18 MiB .. 18 MiB + 0x3378000.
    let second = place_kernel(&bz, &mut map).unwrap();
    assert_eq!(second, (18 * MIB + 0x0337_8000).next_multiple_of(2 * MIB));
}

#[test]
fn relocates_when_pref_address_is_not_ram() {
    let bz = debian();
    let mut map = ram_map(&[(0, 0x9f000), (33 * MIB, GIB)]);
    assert_eq!(place_kernel(&bz, &mut map).unwrap(), 34 * MIB);
    // Only RAM above 4 GiB: fine for this kernel (XLF_CAN_BE_LOADED_ABOVE_4G).
    let mut high = ram_map(&[(0, 0x9f000), (4 * GIB, GIB)]);
    assert_eq!(place_kernel(&bz, &mut high).unwrap(), 4 * GIB);
    // Too little RAM anywhere.
    let mut tiny = ram_map(&[(16 * MIB, 32 * MIB)]);
    assert!(matches!(
        place_kernel(&bz, &mut tiny),
        Err(LinuxError::Mem(MemError::OutOfMemory { .. }))
    ));
}

#[test]
fn places_initrd_top_down_below_limit() {
    let bz = debian();
    let mut map = ram_map(&[(MIB, 3 * GIB - MIB), (4 * GIB, 4 * GIB)]);
    let size = 10 * MIB + 123;
    let at = place_initrd(size, &bz, &mut map).unwrap();
    // Highest page-aligned start whose last byte is <= 0x7fffffff.
    assert_eq!(at, 2 * GIB - 10 * MIB - 4096);
    assert_eq!(map.kind_at(at), Some(MemKind::Initrd));
    assert_eq!(map.kind_at(2 * GIB - 1), Some(MemKind::Initrd));
    assert_eq!(place_initrd(0, &bz, &mut map), Err(LinuxError::EmptyInitrd));
}

#[test]
fn initrd_goes_above_4g_only_when_allowed() {
    let bz = debian();
    let mut map = ram_map(&[(MIB, 16 * MIB), (4 * GIB, 4 * GIB)]);
    assert_eq!(
        place_initrd(32 * MIB, &bz, &mut map).unwrap(),
        8 * GIB - 32 * MIB
    );

    // Same kernel with XLF_CAN_BE_LOADED_ABOVE_4G cleared.
    let no4g = BzImage::parse(&corrupt(0x236, &[0x7d, 0]), FILE_SIZE).unwrap();
    assert!(!no4g.can_load_above_4g());
    let mut map = ram_map(&[(MIB, 16 * MIB), (4 * GIB, 4 * GIB)]);
    assert!(matches!(
        place_initrd(32 * MIB, &no4g, &mut map),
        Err(LinuxError::Mem(MemError::OutOfMemory { .. }))
    ));
    // ...and its kernel cannot go above 4 GiB either.
    let mut high = ram_map(&[(0, 0x9f000), (4 * GIB, GIB)]);
    assert!(matches!(
        place_kernel(&no4g, &mut high),
        Err(LinuxError::Mem(MemError::OutOfMemory { .. }))
    ));
}

fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn le64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

#[test]
fn builds_zero_page_at_documented_offsets() {
    let bz = debian();
    let e820 = [
        E820Entry::new(0, 0x9f000, E820_RAM),
        E820Entry::new(0x9f000, 0x1000, E820_RESERVED),
        E820Entry::new(MIB, 6 * GIB, E820_RAM),
    ];
    let inputs = BootInputs {
        cmdline_addr: 0x1_2000_0000,
        cmdline_len: 2047,
        initrd_addr: 0x1_7000_0000,
        initrd_size: 0x1_0000_0123,
        rsdp_addr: 0xf_5a30,
        e820: &e820,
    };
    let bp = build_boot_params(&bz, HEAD, &inputs).unwrap();
    let b = bp.as_bytes();
    assert_eq!(b.len(), 4096);
    // Header copied from the image (compare raw bytes 0x1f1..0x26c).
    assert_eq!(&b[0x1fe..0x200], &[0x55, 0xaa]);
    assert_eq!(&b[0x202..0x206], b"HdrS");
    assert_eq!(&b[0x258..0x26c], &HEAD[0x258..0x26c]);
    assert_eq!(b[0x1f1], 0x27);
    // Loader-written fields (boot.rst offsets).
    assert_eq!(b[0x210], 0xff); // type_of_loader
    assert_eq!(b[0x211], 0x81); // LOADED_HIGH | CAN_USE_HEAP
    assert_eq!(&b[0x224..0x226], &0xde00u16.to_le_bytes()); // heap_end_ptr
    assert_eq!(&b[0x1fa..0x1fc], &[0xff, 0xff]); // vid_mode
    assert_eq!(le32(b, 0x228), 0x2000_0000); // cmd_line_ptr
    assert_eq!(le32(b, 0x0c8), 0x1); // ext_cmd_line_ptr
    assert_eq!(le32(b, 0x218), 0x7000_0000); // ramdisk_image
    assert_eq!(le32(b, 0x0c0), 0x1); // ext_ramdisk_image
    assert_eq!(le32(b, 0x21c), 0x0000_0123); // ramdisk_size
    assert_eq!(le32(b, 0x0c4), 0x1); // ext_ramdisk_size
    assert_eq!(le64(b, 0x070), 0xf_5a30); // acpi_rsdp_addr
                                          // e820_entries and the packed 20-byte table entries.
    assert_eq!(b[0x1e8], 3);
    assert_eq!(le64(b, 0x2d0), 0);
    assert_eq!(le64(b, 0x2d8), 0x9f000);
    assert_eq!(le32(b, 0x2e0), 1);
    assert_eq!(le64(b, 0x2d0 + 20), 0x9f000);
    assert_eq!(le32(b, 0x2d0 + 20 + 16), 2);
    assert_eq!(le64(b, 0x2d0 + 40 + 8), 6 * GIB);
    assert_eq!(&b[0x2d0 + 60..0x2d0 + 80], &[0; 20]);
    // Sentinel stays zero so the kernel trusts the loader-provided fields.
    assert_eq!(b[0x1ef], 0);
    // Everything Ember does not fill stays zero.
    assert!(b[..0x70].iter().all(|&x| x == 0));
    assert!(b[0xd00..].iter().all(|&x| x == 0));
}

#[test]
fn zero_page_input_errors() {
    let bz = debian();
    let ok = BootInputs {
        cmdline_addr: 0x20000,
        cmdline_len: 10,
        initrd_addr: 0,
        initrd_size: 0,
        rsdp_addr: 0,
        e820: &[],
    };
    let bp = build_boot_params(&bz, HEAD, &ok).unwrap();
    assert_eq!(
        (bp.hdr.ramdisk_image.get(), bp.hdr.ramdisk_size.get()),
        (0, 0)
    );
    assert_eq!(bp.e820_entries, 0);
    assert_eq!(
        build_boot_params(
            &bz,
            HEAD,
            &BootInputs {
                cmdline_len: 2048,
                ..ok
            }
        )
        .unwrap_err(),
        LinuxError::CmdlineTooLong {
            len: 2048,
            max: 2047
        }
    );
    let many = vec![E820Entry::new(0, 4096, E820_RAM); 129];
    assert_eq!(
        build_boot_params(&bz, HEAD, &BootInputs { e820: &many, ..ok }).unwrap_err(),
        LinuxError::TooManyE820 { count: 129 }
    );
    let bp = build_boot_params(
        &bz,
        HEAD,
        &BootInputs {
            e820: &many[..128],
            ..ok
        },
    )
    .unwrap();
    assert_eq!(bp.e820_entries, 128);
    assert_eq!(
        build_boot_params(&bz, &HEAD[..0x250], &ok).unwrap_err(),
        LinuxError::Truncated {
            needed: SETUP_HEADER_END,
            got: 0x250
        }
    );
    let other = corrupt(0x258, &[0, 0, 0, 2, 0, 0, 0, 0]);
    assert_eq!(
        build_boot_params(&bz, &other, &ok).unwrap_err(),
        LinuxError::HeaderMismatch
    );
    assert!(matches!(
        build_boot_params(
            &bz,
            HEAD,
            &BootInputs {
                initrd_addr: u64::MAX - 5,
                initrd_size: 100,
                ..ok
            }
        ),
        Err(LinuxError::InitrdTooHigh { .. })
    ));

    // Without XLF_CAN_BE_LOADED_ABOVE_4G, nothing may be above 4 GiB and the
    // initrd must stay under initrd_addr_max.
    let img = corrupt(0x236, &[0x7d, 0]);
    let no4g = BzImage::parse(&img, FILE_SIZE).unwrap();
    assert_eq!(
        build_boot_params(
            &no4g,
            &img,
            &BootInputs {
                cmdline_addr: 0x1_0000_0000,
                ..ok
            }
        )
        .unwrap_err(),
        LinuxError::AboveFourGib {
            what: "command line",
            addr: 0x1_0000_0000
        }
    );
    assert_eq!(
        build_boot_params(
            &no4g,
            &img,
            &BootInputs {
                initrd_addr: 0x1_0000_0000,
                initrd_size: 4096,
                ..ok
            }
        )
        .unwrap_err(),
        LinuxError::AboveFourGib {
            what: "initrd",
            addr: 0x1_0000_0000
        }
    );
    assert_eq!(
        build_boot_params(
            &no4g,
            &img,
            &BootInputs {
                initrd_addr: 0x7fff_f000,
                initrd_size: 0x1001,
                ..ok
            }
        )
        .unwrap_err(),
        LinuxError::InitrdTooHigh {
            end: 0x8000_0001,
            max: 0x7fff_ffff
        }
    );
    let bp = build_boot_params(
        &no4g,
        &img,
        &BootInputs {
            initrd_addr: 0x7fff_f000,
            initrd_size: 0x1000,
            ..ok
        },
    )
    .unwrap();
    assert_eq!(bp.hdr.ramdisk_image.get(), 0x7fff_f000);
    assert_eq!(bp.ext_ramdisk_image.get(), 0);
}

#[test]
fn quiet_flag_from_image_is_cleared_and_old_protocol_skips_rsdp() {
    // Protocol 2.13 (no acpi_rsdp_addr field) with QUIET and KEEP_SEGMENTS set.
    let mut img = corrupt(0x206, &[0x0d, 0x02]);
    img[0x211] = 0x01 | 0x20 | 0x40;
    let bz = BzImage::parse(&img, FILE_SIZE).unwrap();
    let inputs = BootInputs {
        cmdline_addr: 0,
        cmdline_len: 0,
        initrd_addr: 0,
        initrd_size: 0,
        rsdp_addr: 0xe0000,
        e820: &[],
    };
    let bp = build_boot_params(&bz, &img, &inputs).unwrap();
    assert_eq!(bp.hdr.loadflags, 0x81);
    assert_eq!(bp.acpi_rsdp_addr.get(), 0);
    assert_eq!(bp.hdr.version.get(), 0x020d);
}

#[test]
fn non_relocatable_kernel_needs_pref_address() {
    let img = corrupt(0x234, &[0]);
    let bz = BzImage::parse(&img, FILE_SIZE).unwrap();
    assert!(!bz.relocatable());
    let mut map = ram_map(&[(MIB, GIB)]);
    assert_eq!(place_kernel(&bz, &mut map).unwrap(), 16 * MIB);

    let mut taken = ram_map(&[(MIB, GIB)]);
    taken.allocate_at(20 * MIB, 1, MemKind::Firmware).unwrap();
    let before = taken.regions().to_vec();
    assert_eq!(
        place_kernel(&bz, &mut taken),
        Err(LinuxError::PreferredAddressTaken {
            pref_address: 16 * MIB
        })
    );
    assert_eq!(taken.regions(), &before[..]);
}

/// Deterministic byte flips across the header: parsing, placement and the
/// zero page must return errors, never panic.
#[test]
fn mutated_headers_never_panic() {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut parsed = 0;
    for _ in 0..2000 {
        let mut img = HEAD[..BzImage::HEADER_BYTES].to_vec();
        for _ in 0..(1 + next() % 4) {
            let off = 0x1f1 + (next() % 0x7b) as usize;
            img[off] = next() as u8;
        }
        let file_size = match next() % 3 {
            0 => FILE_SIZE,
            1 => next() % (1 << 20),
            _ => next(),
        };
        let len = if next() % 8 == 0 {
            (next() % 0x300) as usize
        } else {
            img.len()
        };
        let Ok(bz) = BzImage::parse(&img[..len], file_size) else {
            continue;
        };
        parsed += 1;
        let mut map = ram_map(&[(0, 0x9f000), (MIB, 4 * GIB)]);
        let _ = place_kernel(&bz, &mut map);
        let _ = place_initrd(next() % (1 << 30), &bz, &mut map);
        let inputs = BootInputs {
            cmdline_addr: next(),
            cmdline_len: next() as u32 % 4096,
            initrd_addr: next(),
            initrd_size: next(),
            rsdp_addr: next(),
            e820: &[],
        };
        let _ = build_boot_params(&bz, &img, &inputs);
    }
    // Some mutations only touch fields parse does not check.
    assert!(parsed > 0);
}

/// A pref_address in the real-mode area is no preference: a relocatable
/// kernel goes to 1 MiB or above, a fixed one is refused (found by the
/// bzimage fuzz target: pref_address 0 on a map with RAM at 0).
#[test]
fn pref_address_below_1mib_is_not_honoured() {
    // pref_address is the u64 at 0x258.
    let img = corrupt(0x258, &[0; 8]);
    let bz = BzImage::parse(&img, FILE_SIZE).unwrap();
    assert_eq!(bz.pref_address(), 0);
    let mut map = ram_map(&[(0, 0x9f000), (MIB, GIB)]);
    let at = place_kernel(&bz, &mut map).unwrap();
    assert!(at >= MIB, "placed at {at:#x}");
    assert_eq!(map.kind_at(0), Some(MemKind::Free));

    let mut fixed = corrupt(0x258, &[0; 8]);
    fixed[0x234] = 0; // not relocatable
    let bz = BzImage::parse(&fixed, FILE_SIZE).unwrap();
    let mut map = ram_map(&[(0, 0x9f000), (MIB, GIB)]);
    assert_eq!(
        place_kernel(&bz, &mut map),
        Err(LinuxError::PreferredAddressTaken { pref_address: 0 })
    );
}

/// The arm64 `Image` header of Debian's cloud kernel (tests/data/README.md).
#[test]
fn debian_arm64_image_header() {
    use ember_linux::arm64::{place, ImageHeader};
    let head = include_bytes!("data/vmlinuz-6.1.0-56-cloud-arm64.head64");
    let h = ImageHeader::parse(head, 27_303_872).expect("a bootable arm64 Image");
    assert_eq!(h.text_offset, 0);
    assert_eq!(h.image_size, 0x1ab_0000);
    assert_eq!(h.flags, 0xa); // little-endian, 4 KiB pages, anywhere in RAM
                              // Where Ember's aarch64 firmware puts it with 1 GiB of RAM at 1 GiB.
    let p = place(&h, 1_851_904, 0x4180_0000, (0x4000_0000, 0x8000_0000)).unwrap();
    assert_eq!(
        (p.kernel, p.initrd, p.dtb),
        (0x4180_0000, 0x4340_0000, 0x4360_0000)
    );
}
