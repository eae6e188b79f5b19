//! Well-formed images: two real PE32+ files built by other toolchains
//! (values read with `objdump -p`/`-h`/`-s` and `od`, see tests/data/README.md)
//! and the test builder's image (checked by `objdump` itself).

mod common;

use common::{Builder, BASE, DIR64_RVA, DIR64_TARGET, HIGHLOW_RVA, HIGHLOW_TARGET};
use ember_pe::*;

const STUB: &[u8] = include_bytes!("data/linuxx64.efi.stub");
const UKI: &[u8] = include_bytes!("data/uki-reloc.efi");

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn load(img: &PeImage, file: &[u8], base: u64) -> Vec<u8> {
    let mut dest = vec![0xaau8; img.image_size() as usize];
    img.load(file, &mut dest, base).unwrap();
    dest
}

/// Offsets where two buffers differ.
fn diff(a: &[u8], b: &[u8]) -> Vec<usize> {
    (0..a.len()).filter(|&i| a[i] != b[i]).collect()
}

/// (name, rva, virtual size, raw offset, raw size, characteristics) from
/// `objdump -h` and `od` on the section table.
type SecRow = (&'static str, u32, u32, u32, u32, u32);

fn check_sections(img: &PeImage, want: &[SecRow]) {
    let got: Vec<SecRow> = img
        .sections()
        .iter()
        .zip(want)
        .map(|(s, w)| {
            assert_eq!(s.name_str(), Some(w.0));
            (
                w.0,
                s.rva,
                s.virtual_size,
                s.raw_offset,
                s.raw_size,
                s.characteristics,
            )
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn systemd_stub_headers_match_objdump() {
    let img = PeImage::parse(STUB).unwrap();
    assert_eq!(img.machine(), MACHINE_X86_64);
    assert_eq!(img.entry_rva(), 0x4000);
    assert_eq!(img.preferred_base(), 0);
    assert_eq!(img.image_size(), 0x19300);
    assert_eq!(img.headers_size(), 0x400);
    assert_eq!(img.section_alignment(), 0x200);
    assert_eq!(img.file_alignment(), 0x200);
    assert_eq!(img.subsystem(), SUBSYSTEM_EFI_APPLICATION);
    assert_eq!(img.characteristics(), 0x206);
    assert_eq!(img.dll_characteristics(), 0);
    assert!(!img.nx_compat());
    assert!(!img.dynamic_base());
    assert_eq!(
        img.base_relocation_directory(),
        Some(DataDir {
            rva: 0x10000,
            size: 0xc
        })
    );
    assert_eq!(img.debug_directory(), None);
    assert_eq!(img.security_directory(), None);
    assert_eq!(img.data_directory(15), Some(DataDir::default()));
    assert_eq!(img.data_directory(16), None);
    assert!(img.relocations_present());
    assert!(img.is_relocatable());
    check_sections(
        &img,
        &[
            (".text", 0x4000, 0xbff0, 0x400, 0xc000, 0x6000_0020),
            (".reloc", 0x10000, 0xc, 0xc400, 0x200, 0x4200_0040),
            (".data", 0x11000, 0x34b8, 0xc600, 0x3600, 0xc000_0040),
            (".dynamic", 0x15000, 0x100, 0xfc00, 0x200, 0xc000_0040),
            (".rela", 0x16000, 0xf30, 0xfe00, 0x1000, 0x4000_0040),
            (".dynsym", 0x17000, 0x18, 0x10e00, 0x200, 0x4000_0040),
            (".sbat", 0x19000, 0xe2, 0x11000, 0x200, 0x4000_0040),
            (".sdmagic", 0x19100, 0x34, 0x11200, 0x200, 0x4000_0040),
        ],
    );
    // `objdump -s -j .sbat`: the SBAT CSV starts with its own header line.
    let sbat = img.section_by_name(STUB, ".sbat").unwrap();
    assert_eq!(sbat.len(), 0xe2);
    assert!(sbat.starts_with(b"sbat,1,SBAT Version,sbat,1,"));
    assert!(img.section_by_name(STUB, ".linux").is_none());
}

#[test]
fn systemd_stub_loads_anywhere_with_only_absolute_relocs() {
    let img = PeImage::parse(STUB).unwrap();
    let at_pref = load(&img, STUB, 0);
    // Headers and each section's data land at their RVAs; the rest is zero.
    assert_eq!(&at_pref[..0x400], &STUB[..0x400]);
    for s in img.sections() {
        let rva = s.rva as usize;
        let n = s.virtual_size.min(s.raw_size) as usize;
        let off = s.raw_offset as usize;
        assert_eq!(
            &at_pref[rva..rva + n],
            &STUB[off..off + n],
            "{:?}",
            s.name_str()
        );
    }
    assert!(at_pref[0x400..0x4000].iter().all(|&b| b == 0));
    // .text virtual size 0xbff0 < raw 0xc000: the padding is not copied.
    assert!(at_pref[0xfff0..0x10000].iter().all(|&b| b == 0));

    // The table holds two ABSOLUTE entries only (objdump -p): moving the
    // image changes nothing but the ImageBase field.
    let moved = load(&img, STUB, 0x7654_3000);
    let image_base_field = 128 + 24 + 24; // e_lfanew + PE/COFF + offset in optional header
    let changed = diff(&at_pref, &moved);
    assert!(!changed.is_empty());
    assert!(changed
        .iter()
        .all(|i| (image_base_field..image_base_field + 8).contains(i)));
    assert_eq!(u64_at(&moved, image_base_field), 0x7654_3000);
}

#[test]
fn systemd_stub_permissions() {
    let img = PeImage::parse(STUB).unwrap();
    let p: Vec<_> = img
        .section_permissions()
        .map(|p| (p.rva, p.size, p.readable, p.writable, p.executable))
        .collect();
    assert_eq!(
        p,
        [
            (0x4000, 0xc000, true, false, true),
            (0x10000, 0x200, true, false, false),
            (0x11000, 0x3600, true, true, false),
            (0x15000, 0x200, true, true, false),
            (0x16000, 0x1000, true, false, false),
            (0x17000, 0x200, true, false, false),
            // .sbat rounds to 0x19200 but .sdmagic starts at 0x19100.
            (0x19000, 0x100, true, false, false),
            // 0x19134 rounds up to 0x19200, below SizeOfImage 0x19300.
            (0x19100, 0x100, true, false, false),
        ]
    );
}

#[test]
fn uki_headers_match_objdump() {
    let img = PeImage::parse(UKI).unwrap();
    assert_eq!(img.entry_rva(), 0x1000);
    assert_eq!(img.preferred_base(), 0x1_4000_0000);
    assert_eq!(img.image_size(), 0x8000);
    assert_eq!(img.headers_size(), 0x400);
    assert_eq!(img.section_alignment(), 0x1000);
    assert_eq!(img.subsystem(), SUBSYSTEM_EFI_APPLICATION);
    assert_eq!(img.characteristics(), 0x226);
    assert_eq!(img.dll_characteristics(), 0x160);
    assert!(img.nx_compat());
    assert!(img.dynamic_base());
    assert!(img.is_relocatable());
    assert_eq!(
        img.base_relocation_directory(),
        Some(DataDir {
            rva: 0x7000,
            size: 0x1c
        })
    );
    assert_eq!(
        img.data_directory(1),
        Some(DataDir {
            rva: 0x6000,
            size: 0x18
        })
    );
    check_sections(
        &img,
        &[
            (".text", 0x1000, 0x38, 0x400, 0x200, 0x6000_0020),
            (".data", 0x2000, 0x1e, 0x600, 0x200, 0xc000_0040),
            (".osrel", 0x3000, 0x9, 0x800, 0x200, 0x4000_0040),
            (".cmdline", 0x4000, 0xe, 0xa00, 0x200, 0x4000_0040),
            (".linux", 0x5000, 0xb, 0xc00, 0x200, 0x4000_0040),
            (".idata", 0x6000, 0x18, 0xe00, 0x200, 0xc000_0040),
            (".reloc", 0x7000, 0x1c, 0x1000, 0x200, 0x4200_0040),
        ],
    );
    let text = &img.sections()[0];
    assert!(text.readable() && text.executable() && !text.writable());
    let data = &img.sections()[1];
    assert!(data.readable() && data.writable() && !data.executable());
    // UKI sections come back exactly, without the file-alignment padding.
    assert_eq!(img.section_by_name(UKI, ".osrel"), Some(&b"ID=ember\n"[..]));
    assert_eq!(
        img.section_by_name(UKI, ".cmdline"),
        Some(&b"console=ttyS0\0"[..])
    );
    assert_eq!(
        img.section_by_name(UKI, ".linux"),
        Some(&b"fake kernel"[..])
    );
    assert_eq!(img.section_by_name(UKI, ".initrd"), None);
    assert_eq!(img.section_by_name(UKI, ".uname"), None);
    assert_eq!(img.section_by_name(UKI, ".cmdline_too_long"), None);
    // A shorter file than the one parsed gives None, not a panic.
    assert_eq!(img.section_by_name(&UKI[..0xa05], ".cmdline"), None);
}

#[test]
fn uki_relocates_exactly_the_objdump_fixups() {
    let img = PeImage::parse(UKI).unwrap();
    let pref = img.preferred_base();
    let at_pref = load(&img, UKI, pref);
    // `objdump -s -j .data`: ptr64 = &msg, &_start, &ptr64 (absolute).
    assert_eq!(u64_at(&at_pref, 0x2000), 0x1_4000_2018);
    assert_eq!(u64_at(&at_pref, 0x2008), 0x1_4000_1000);
    assert_eq!(u64_at(&at_pref, 0x2010), 0x1_4000_2000);
    // `objdump -d`: movabs $msg at 0x1007, immediate at 0x1009.
    assert_eq!(u64_at(&at_pref, 0x1009), 0x1_4000_2018);
    assert_eq!(&at_pref[0x2018..0x201e], b"ember\0");

    // objdump -p lists DIR64 fixups at 0x1009, 0x2000, 0x2008, 0x2010.
    for base in [
        0x20_0000u64,
        0x1_4000_0000 + 0x10_0000,
        0xffff_8000_0000_0000,
    ] {
        let moved = load(&img, UKI, base);
        let delta = base.wrapping_sub(pref);
        for rva in [0x1009usize, 0x2000, 0x2008, 0x2010] {
            assert_eq!(
                u64_at(&moved, rva),
                u64_at(&at_pref, rva).wrapping_add(delta)
            );
        }
        assert_eq!(u64_at(&moved, 0x2000), base + 0x2018);
        let image_base_field = 128 + 24 + 24;
        assert_eq!(u64_at(&moved, image_base_field), base);
        // Nothing else changed.
        let changed: Vec<usize> = diff(&at_pref, &moved)
            .into_iter()
            .filter(|&i| {
                ![0x1009, 0x2000, 0x2008, 0x2010, image_base_field]
                    .iter()
                    .any(|&f| (f..f + 8).contains(&i))
            })
            .collect();
        assert_eq!(changed, Vec::<usize>::new());
    }
}

#[test]
fn other_machines_are_the_callers_choice() {
    let mut arm = UKI.to_vec();
    arm[128 + 4..128 + 6].copy_from_slice(&MACHINE_AARCH64.to_le_bytes());
    assert_eq!(
        PeImage::parse(&arm),
        Err(PeError::UnsupportedMachine {
            machine: MACHINE_AARCH64
        })
    );
    let img = PeImage::parse_for_machines(&arm, &[MACHINE_X86_64, MACHINE_AARCH64]).unwrap();
    assert_eq!(img.machine(), MACHINE_AARCH64);
    let msg = PeError::UnsupportedMachine { machine: 0x14c }.to_string();
    assert!(msg.contains("i386"), "{msg}");
}

#[test]
fn builder_image_loads_and_relocates_dir64_and_highlow() {
    let b = Builder::standard();
    let file = b.build();
    let img = PeImage::parse(&file).unwrap();
    assert_eq!(img.preferred_base(), BASE);
    assert_eq!(img.sections().len(), 3);
    let at_pref = load(&img, &file, BASE);
    assert_eq!(u64_at(&at_pref, DIR64_RVA), BASE + DIR64_TARGET);
    assert_eq!(u32_at(&at_pref, HIGHLOW_RVA) as u64, BASE + HIGHLOW_TARGET);
    // .data: 0x200 bytes from the file, then zero (bss) to 0x3800.
    assert_eq!(&at_pref[0x2000..0x2200], &file[0x400..0x600]);
    assert!(at_pref[0x2200..0x4000].iter().all(|&b| b == 0));

    let new_base = 0x7f00_0000u64;
    let moved = load(&img, &file, new_base);
    assert_eq!(u64_at(&moved, DIR64_RVA), new_base + DIR64_TARGET);
    assert_eq!(
        u32_at(&moved, HIGHLOW_RVA) as u64,
        new_base + HIGHLOW_TARGET
    );

    // HIGHLOW adds only the low 32 bits of the delta, wrapping.
    let high = 0x1_2345_6000u64;
    let moved = load(&img, &file, high);
    assert_eq!(u64_at(&moved, DIR64_RVA), high + DIR64_TARGET);
    assert_eq!(u32_at(&moved, HIGHLOW_RVA), (high + HIGHLOW_TARGET) as u32);

    // A larger destination is zeroed beyond the image too.
    let mut big = vec![0x55u8; 0x6000];
    img.load(&file, &mut big, BASE).unwrap();
    assert_eq!(&big[..0x5000], &at_pref[..]);
    assert!(big[0x5000..].iter().all(|&b| b == 0));
}

#[test]
fn builder_permissions_round_to_section_alignment() {
    let file = Builder::standard().build();
    let img = PeImage::parse(&file).unwrap();
    let p: Vec<_> = img.section_permissions().collect();
    assert_eq!(
        p,
        [
            SectionPermissions {
                rva: 0x1000,
                size: 0x1000,
                readable: true,
                writable: false,
                executable: true
            },
            SectionPermissions {
                rva: 0x2000,
                size: 0x2000,
                readable: true,
                writable: true,
                executable: false
            },
            SectionPermissions {
                rva: 0x4000,
                size: 0x1000,
                readable: true,
                writable: false,
                executable: false
            },
        ]
    );
}

#[test]
fn relocs_stripped_means_fixed_address() {
    let mut b = Builder::standard();
    b.characteristics |= 0x0001; // IMAGE_FILE_RELOCS_STRIPPED
    let file = b.build();
    let img = PeImage::parse(&file).unwrap();
    assert!(img.relocations_present());
    assert!(!img.is_relocatable());
    assert!(!img.may_move());
    let mut dest = vec![0u8; 0x5000];
    let e = img.load(&file, &mut dest, BASE + 0x1000).unwrap_err();
    assert_eq!(
        e,
        PeError::NotRelocatable {
            preferred_base: BASE,
            load_base: BASE + 0x1000
        }
    );
    assert!(e.to_string().contains("0x400000"), "{e}");
    img.load(&file, &mut dest, BASE).unwrap();
}

#[test]
fn no_reloc_table_moves_unpatched_like_the_linux_stub() {
    // Linux 6.1's bzImage PE header (objdump -p on Debian's
    // vmlinuz-6.1.0-56-cloud-amd64): ImageBase 0, Characteristics 0x20e
    // (RELOCS_STRIPPED clear), no base relocation directory. EDK2 loads it
    // anywhere; so must Ember, since nothing can be loaded at 0.
    let mut b = Builder::standard();
    b.image_base = 0;
    b.characteristics = 0x020e;
    b.dirs[5] = (0, 0);
    let file = b.build();
    let img = PeImage::parse(&file).unwrap();
    assert!(!img.relocations_present());
    assert!(!img.is_relocatable());
    assert!(img.may_move());
    let at_zero = load(&img, &file, 0);
    let moved = load(&img, &file, 0x100_0000);
    // Only the ImageBase field (optional header + 24) differs.
    let field = b.opt_offset() + 24;
    assert!(diff(&at_zero, &moved)
        .iter()
        .all(|i| (field..field + 8).contains(i)));
    assert_eq!(u64_at(&moved, field), 0x100_0000);
    // The DIR64 slot keeps its linked value: nothing said to patch it.
    assert_eq!(u64_at(&moved, DIR64_RVA), BASE + DIR64_TARGET);
}

#[test]
fn builder_output_is_a_pe_for_objdump() {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ember-pe-builder.efi");
    std::fs::write(&path, Builder::standard().build()).unwrap();
    let run = |arg: &str| {
        let out = std::process::Command::new("objdump")
            .arg(arg)
            .arg(&path)
            .output()
            .expect("objdump not found: install binutils (apt-get install -y binutils)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let p = run("-p");
    for want in [
        "file format pei-x86-64",
        "(PE32+)",
        "AddressOfEntryPoint\t0000000000001000",
        "ImageBase\t\t0000000000400000",
        "SizeOfImage\t\t00005000",
        "(EFI application)",
        "Entry 5 0000000000004000 00000010 Base Relocation Directory",
        "reloc    0 offset   10 [1010] DIR64",
        "reloc    1 offset   20 [1020] HIGHLOW",
    ] {
        assert!(p.contains(want), "objdump -p lacks {want:?}:\n{p}");
    }
    let h = run("-h");
    // BFD shows the smaller of the raw and virtual sizes.
    for want in [
        ".text         00000040  0000000000401000",
        ".data         00000200  0000000000402000",
        ".reloc        00000010  0000000000404000",
        "READONLY, CODE",
    ] {
        assert!(h.contains(want), "objdump -h lacks {want:?}:\n{h}");
    }
}

#[test]
fn header_only_parse_finds_uki_sections_without_the_body() {
    let full = PeImage::parse(UKI).unwrap();
    let headers = full.headers_size() as usize;
    // Only the headers are given; the section table must agree with the full parse.
    let prefix = &UKI[..headers];
    let h = PeImage::parse_headers(prefix, UKI.len() as u64).unwrap();
    assert_eq!(h.sections(), full.sections());
    assert_eq!(h.entry_rva(), full.entry_rva());
    let osrel = h
        .find_section(".osrel")
        .expect(".osrel in the header-only parse");
    let want = full.section_by_name(UKI, ".osrel").unwrap();
    let off = osrel.raw_offset as usize;
    assert_eq!(&UKI[off..off + want.len()], want);
    // A file length shorter than the section data is still caught.
    assert!(PeImage::parse_headers(prefix, headers as u64).is_err());
    // A prefix claiming more bytes than the file has is refused.
    assert!(PeImage::parse_headers(UKI, 16).is_err());
    // Too short to hold the section table.
    assert!(PeImage::parse_headers(&UKI[..0x80], UKI.len() as u64).is_err());
}
