//! Malformed images give the right typed error; random damage never panics.

mod common;

use common::{name, reloc_block, Builder, Sec, BASE};
use ember_pe::*;

const STUB: &[u8] = include_bytes!("data/linuxx64.efi.stub");
const UKI: &[u8] = include_bytes!("data/uki-reloc.efi");

fn parse(b: &Builder) -> Result<PeImage, PeError> {
    PeImage::parse(&b.build())
}

/// Parses `b`'s image and loads it at `base`; returns the load result and
/// whether the destination was left untouched.
fn load_at(b: &Builder, base: u64) -> (Result<(), PeError>, bool) {
    let file = b.build();
    let img = PeImage::parse(&file).unwrap();
    let mut dest = vec![0xaau8; img.image_size() as usize];
    let r = img.load(&file, &mut dest, base);
    (r, dest.iter().all(|&x| x == 0xaa))
}

#[test]
fn truncated_at_every_length() {
    // The UKI fixture: e_lfanew 0x80, 16 data directories, 7 sections,
    // SizeOfHeaders 0x400, last section data ends at 0x1200 (objdump -h).
    for len in 0..0x1200usize {
        let err = PeImage::parse(&UKI[..len]).unwrap_err();
        let ok = match len {
            0..64 => matches!(
                err,
                PeError::Truncated {
                    what: "DOS header",
                    ..
                }
            ),
            64..=128 => matches!(err, PeError::LfanewOutOfRange { e_lfanew: 128, .. }),
            129..152 => matches!(
                err,
                PeError::Truncated {
                    what: "PE signature and COFF header",
                    ..
                }
            ),
            152..264 => matches!(
                err,
                PeError::Truncated {
                    what: "optional header",
                    ..
                }
            ),
            264..392 => matches!(
                err,
                PeError::Truncated {
                    what: "data directories",
                    ..
                }
            ),
            392..672 => matches!(
                err,
                PeError::Truncated {
                    what: "section table",
                    offset: 392,
                    needed: 280,
                    ..
                }
            ),
            672..0x400 => matches!(
                err,
                PeError::HeadersTooLarge {
                    size_of_headers: 0x400,
                    ..
                }
            ),
            _ => matches!(err, PeError::SectionDataOutsideFile { .. }),
        };
        assert!(ok, "length {len}: {err:?}");
        assert!(!err.to_string().is_empty());
    }
    PeImage::parse(&UKI[..0x1200]).unwrap();
}

#[test]
fn load_checks_its_arguments_first() {
    let img = PeImage::parse(UKI).unwrap();
    let mut dest = vec![0xaau8; 0x8000];
    assert_eq!(
        img.load(&UKI[..0x1200], &mut dest, 0),
        Err(PeError::FileMismatch {
            parsed_len: UKI.len() as u64,
            got: 0x1200
        })
    );
    assert_eq!(
        img.load(UKI, &mut dest[..0x7fff], 0),
        Err(PeError::DestinationTooSmall {
            needed: 0x8000,
            got: 0x7fff
        })
    );
    assert_eq!(
        img.load(UKI, &mut dest, u64::MAX - 0x1000),
        Err(PeError::LoadBaseOverflow {
            load_base: u64::MAX - 0x1000,
            image_size: 0x8000
        })
    );
    assert!(dest.iter().all(|&x| x == 0xaa));
}

#[test]
fn bad_magics() {
    let mut f = UKI.to_vec();
    f[0] = b'Z';
    assert_eq!(
        PeImage::parse(&f),
        Err(PeError::BadDosMagic { found: 0x5a5a })
    );

    let mut f = UKI.to_vec();
    f[128 + 2] = b'X';
    assert_eq!(
        PeImage::parse(&f),
        Err(PeError::BadPeSignature { found: *b"PEX\0" })
    );

    let mut b = Builder::standard();
    b.magic = 0x10b;
    let e = parse(&b).unwrap_err();
    assert_eq!(e, PeError::NotPe32Plus { magic: 0x10b });
    assert!(e.to_string().contains("32-bit PE32"), "{e}");
    b.magic = 0x107;
    assert_eq!(parse(&b), Err(PeError::NotPe32Plus { magic: 0x107 }));

    let mut b = Builder::standard();
    b.machine = 0x014c;
    assert_eq!(
        parse(&b),
        Err(PeError::UnsupportedMachine { machine: 0x14c })
    );
}

#[test]
fn e_lfanew_out_of_range() {
    for lfanew in [u32::MAX, 0x8000_0000, UKI.len() as u32] {
        let mut f = UKI.to_vec();
        f[0x3c..0x40].copy_from_slice(&lfanew.to_le_bytes());
        assert_eq!(
            PeImage::parse(&f),
            Err(PeError::LfanewOutOfRange {
                e_lfanew: lfanew,
                file_len: UKI.len() as u64
            })
        );
    }
    let mut f = UKI.to_vec();
    f[0x3c..0x40].copy_from_slice(&(UKI.len() as u32 - 2).to_le_bytes());
    assert!(matches!(PeImage::parse(&f), Err(PeError::Truncated { .. })));
}

#[test]
fn absurd_counts() {
    let mut b = Builder::standard();
    b.number_of_sections = Some(0xffff);
    assert_eq!(parse(&b), Err(PeError::TooManySections { count: 0xffff }));
    b.number_of_sections = Some(97);
    assert_eq!(parse(&b), Err(PeError::TooManySections { count: 97 }));
    // 96 entries fit the file but not SizeOfHeaders.
    b.number_of_sections = Some(96);
    b.file_len = 0x2000;
    assert!(matches!(
        parse(&b),
        Err(PeError::SectionTableOutsideHeaders { .. })
    ));
    // ... and past the end of a short file.
    let mut f = b.build();
    f.truncate(0x800);
    assert!(matches!(
        PeImage::parse(&f),
        Err(PeError::Truncated {
            what: "section table",
            ..
        })
    ));

    let mut b = Builder::standard();
    b.number_of_rva_and_sizes = 17;
    assert_eq!(
        parse(&b),
        Err(PeError::TooManyDataDirectories { count: 17 })
    );
    b.number_of_rva_and_sizes = u32::MAX;
    assert_eq!(
        parse(&b),
        Err(PeError::TooManyDataDirectories { count: u32::MAX })
    );

    let mut b = Builder::standard();
    b.size_of_optional_header = 239;
    assert_eq!(
        parse(&b),
        Err(PeError::OptionalHeaderTooSmall {
            size: 239,
            needed: 240
        })
    );
    // Fewer directories with a matching header size is fine; the rest are absent.
    let mut b = Builder::standard();
    b.number_of_rva_and_sizes = 6;
    b.size_of_optional_header = 112 + 6 * 8;
    let img = parse(&b).unwrap();
    assert_eq!(
        img.data_directory(5),
        Some(DataDir {
            rva: 0x4000,
            size: 16
        })
    );
    assert_eq!(img.data_directory(6), None);
    assert!(img.is_relocatable());
}

#[test]
fn header_sizes_and_alignment() {
    let mut b = Builder::standard();
    b.size_of_headers = 0x1000; // file is 0x800
    assert!(matches!(
        parse(&b),
        Err(PeError::HeadersTooLarge {
            size_of_headers: 0x1000,
            ..
        })
    ));
    let mut b = Builder::standard();
    b.size_of_headers = 0x6000;
    b.file_len = 0x7000;
    assert!(matches!(
        parse(&b),
        Err(PeError::HeadersTooLarge {
            image_size: 0x5000,
            ..
        })
    ));
    let mut b = Builder::standard();
    b.size_of_headers = 0x100; // the section table ends at 0x40+24+240+3*40 = 0x1c0
    assert_eq!(
        parse(&b),
        Err(PeError::SectionTableOutsideHeaders {
            table_end: 0x1c0,
            size_of_headers: 0x100
        })
    );

    for (section, file) in [
        (0x1000, 0x2000),
        (0x1000, 0x300),
        (0, 0x200),
        (0x1800, 0x200),
        (0x1000, 0),
    ] {
        let mut b = Builder::standard();
        b.section_alignment = section;
        b.file_alignment = file;
        assert_eq!(parse(&b), Err(PeError::BadAlignment { section, file }));
    }
    // Section alignment below a page, as some EFI images use, is accepted.
    let mut b = Builder::standard();
    b.section_alignment = 0x200;
    let img = parse(&b).unwrap();
    assert_eq!(img.section_permissions().next().unwrap().size, 0x200);

    let mut b = Builder::standard();
    b.entry = 0x5000;
    assert_eq!(
        parse(&b),
        Err(PeError::EntryOutsideImage {
            entry: 0x5000,
            image_size: 0x5000
        })
    );
    b.entry = 0x4fff;
    parse(&b).unwrap();
}

#[test]
fn sections_outside_image_or_file() {
    let mut b = Builder::standard();
    b.sections[1].virtual_size = 0x3000; // ends exactly at SizeOfImage
                                         // Make .reloc empty so it does not overlap the grown .data.
    b.sections[2].virtual_size = 0;
    b.sections[2].raw_size = 0;
    b.dirs[5] = (0, 0);
    parse(&b).unwrap();
    b.sections[1].virtual_size = 0x3001;
    assert_eq!(
        parse(&b),
        Err(PeError::SectionOutsideImage {
            name: SectionName(name(".data")),
            rva: 0x2000,
            size: 0x3001,
            image_size: 0x5000
        })
    );
    // No wraparound: an RVA near 4 GiB.
    let mut b = Builder::standard();
    b.sections[1].rva = 0xffff_f000;
    assert!(matches!(
        parse(&b),
        Err(PeError::SectionOutsideImage {
            rva: 0xffff_f000,
            ..
        })
    ));

    let mut b = Builder::standard();
    b.sections[1].raw_size = 0x10000;
    assert!(matches!(
        parse(&b),
        Err(PeError::SectionDataOutsideFile {
            offset: 0x400,
            size: 0x10000,
            file_len: 0x800,
            ..
        })
    ));
    let mut b = Builder::standard();
    b.sections[0].raw_offset = 0xffff_ff00;
    b.sections[0].data.clear(); // or the builder would write 4 GiB
    let e = parse(&b).unwrap_err();
    assert!(matches!(e, PeError::SectionDataOutsideFile { .. }));
    assert!(e.to_string().contains(".text"), "{e}");

    // VirtualSize 0 means the raw size.
    let mut b = Builder::standard();
    b.sections[0].virtual_size = 0;
    let img = parse(&b).unwrap();
    assert_eq!(img.sections()[0].mem_size(), 0x200);
}

#[test]
fn overlapping_sections() {
    let mut b = Builder::standard();
    b.sections[1].rva = 0x103f; // .text is 0x1000..0x1040
    let e = parse(&b).unwrap_err();
    assert_eq!(
        e,
        PeError::OverlappingSections {
            first: SectionName(name(".text")),
            second: SectionName(name(".data"))
        }
    );
    assert!(e.to_string().contains("\".text\" and \".data\""), "{e}");
    // Touching is fine.
    b.sections[1].rva = 0x1040;
    b.sections[1].virtual_size = 0x1000;
    parse(&b).unwrap();
    // One section entirely inside another, listed first.
    let mut b = Builder::standard();
    b.sections.insert(
        0,
        Sec {
            name: name("inner"),
            rva: 0x2100,
            virtual_size: 0x10,
            raw_offset: 0,
            raw_size: 0,
            characteristics: 0,
            data: vec![],
        },
    );
    assert!(matches!(
        parse(&b),
        Err(PeError::OverlappingSections { .. })
    ));
    // Empty sections occupy nothing.
    b.sections[0].virtual_size = 0;
    parse(&b).unwrap();
}

#[test]
fn data_directories_out_of_bounds() {
    let mut b = Builder::standard();
    b.dirs[6] = (0x4ff0, 0x20);
    assert_eq!(
        parse(&b),
        Err(PeError::DirectoryOutOfImage {
            index: 6,
            rva: 0x4ff0,
            size: 0x20,
            image_size: 0x5000
        })
    );
    let mut b = Builder::standard();
    b.dirs[5] = (0xffff_fff0, 0x20);
    assert!(matches!(
        parse(&b),
        Err(PeError::DirectoryOutOfImage { index: 5, .. })
    ));
    // In the image but in .data's bss: no file bytes back it.
    let mut b = Builder::standard();
    b.dirs[5] = (0x3000, 0x10);
    assert_eq!(
        parse(&b),
        Err(PeError::RelocationsNotInFile {
            rva: 0x3000,
            size: 0x10
        })
    );

    // The certificate table's address is a file offset, not an RVA.
    let mut b = Builder::standard();
    b.file_len = 0x900;
    b.dirs[4] = (0x800, 0x100);
    let file = b.build();
    let img = PeImage::parse(&file).unwrap();
    assert_eq!(
        img.security_directory(),
        Some(DataDir {
            rva: 0x800,
            size: 0x100
        })
    );
    assert_eq!(img.certificate_table(&file).map(<[u8]>::len), Some(0x100));
    b.dirs[4] = (0x800, 0x101);
    assert_eq!(
        parse(&b),
        Err(PeError::SecurityDirectoryOutOfFile {
            offset: 0x800,
            size: 0x101,
            file_len: 0x900
        })
    );
    b.dirs[4] = (u32::MAX, u32::MAX);
    assert!(matches!(
        parse(&b),
        Err(PeError::SecurityDirectoryOutOfFile { .. })
    ));
}

#[test]
fn bad_relocation_blocks_fail_parse() {
    let mut good = reloc_block(0x1000, &[(10, 0x10)]);
    let cases: Vec<(Vec<u8>, PeError)> = vec![
        // Block size 0 would loop forever if trusted.
        (
            {
                let mut t = good.clone();
                t[4..8].copy_from_slice(&0u32.to_le_bytes());
                t
            },
            PeError::BadRelocationBlock {
                offset: 0,
                size: 0,
                table_size: 12,
            },
        ),
        (
            {
                let mut t = good.clone();
                t[4..8].copy_from_slice(&4u32.to_le_bytes());
                t
            },
            PeError::BadRelocationBlock {
                offset: 0,
                size: 4,
                table_size: 12,
            },
        ),
        (
            {
                let mut t = good.clone();
                t[4..8].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
                t
            },
            PeError::BadRelocationBlock {
                offset: 0,
                size: 0xffff_fff0,
                table_size: 12,
            },
        ),
        (
            {
                let mut t = good.clone();
                t[4..8].copy_from_slice(&11u32.to_le_bytes());
                t
            },
            PeError::BadRelocationBlock {
                offset: 0,
                size: 11,
                table_size: 12,
            },
        ),
        // Second block: a header cut short by the table's end.
        (
            {
                let mut t = good.clone();
                t.extend_from_slice(&[0, 0x20, 0, 0]);
                t
            },
            PeError::BadRelocationBlock {
                offset: 12,
                size: 0,
                table_size: 16,
            },
        ),
        (
            reloc_block(0x5000, &[(10, 0)]),
            PeError::RelocationBlockOutOfImage {
                page_rva: 0x5000,
                image_size: 0x5000,
            },
        ),
        (
            reloc_block(0xffff_f000, &[(10, 0)]),
            PeError::RelocationBlockOutOfImage {
                page_rva: 0xffff_f000,
                image_size: 0x5000,
            },
        ),
    ];
    for (table, want) in cases {
        let b = Builder::standard().with_relocs(table);
        assert_eq!(parse(&b), Err(want));
        assert!(!want.to_string().is_empty());
    }
    // Two good blocks parse.
    good.extend(reloc_block(0x2000, &[(10, 0x0), (3, 0x8)]));
    parse(&Builder::standard().with_relocs(good)).unwrap();
}

#[test]
fn relocation_types_and_targets_fail_load_only_when_moving() {
    let cases: Vec<(Vec<u8>, PeError)> = vec![
        (
            reloc_block(0x1000, &[(4, 0x10)]),
            PeError::UnsupportedRelocation {
                kind: 4,
                rva: 0x1010,
            },
        ),
        (
            reloc_block(0x1000, &[(10, 0x10), (11, 0x18)]),
            PeError::UnsupportedRelocation {
                kind: 11,
                rva: 0x1018,
            },
        ),
        (
            reloc_block(0x4000, &[(10, 0xff9)]),
            PeError::RelocationOutOfImage {
                rva: 0x4ff9,
                width: 8,
                image_size: 0x5000,
            },
        ),
        (
            reloc_block(0x4000, &[(3, 0xffd)]),
            PeError::RelocationOutOfImage {
                rva: 0x4ffd,
                width: 4,
                image_size: 0x5000,
            },
        ),
    ];
    for (table, want) in cases {
        let b = Builder::standard().with_relocs(table);
        // At its own base nothing is patched, so the image loads.
        assert_eq!(load_at(&b, BASE).0, Ok(()));
        // Elsewhere the bad entry is found before the buffer is touched.
        let (r, untouched) = load_at(&b, BASE + 0x10_0000);
        assert_eq!(r, Err(want));
        assert!(untouched);
    }
    let e = PeError::UnsupportedRelocation {
        kind: 4,
        rva: 0x1010,
    }
    .to_string();
    assert!(e.contains("type 4") && e.contains("0x1010"), "{e}");
    // The last in-image bytes are fine.
    let b = Builder::standard().with_relocs(reloc_block(0x4000, &[(10, 0xff8), (3, 0xff4)]));
    assert_eq!(load_at(&b, BASE + 0x10_0000).0, Ok(()));
}

/// xorshift64: deterministic, seedable, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Parses `file` and, when it validates, loads it at its base and elsewhere.
/// Returns whether it parsed. Must never panic.
fn exercise(file: &[u8]) -> bool {
    let Ok(img) = PeImage::parse(file) else {
        return false;
    };
    if img.image_size() <= 1 << 20 {
        let mut dest = vec![0u8; img.image_size() as usize];
        let _ = img.load(file, &mut dest, img.preferred_base());
        let _ = img.load(file, &mut dest, img.preferred_base() ^ 0x1234_5000);
    }
    let _ = img.section_permissions().count();
    for s in [".linux", ".osrel", ".text"] {
        let _ = img.section_by_name(file, s);
    }
    let _ = img.certificate_table(file);
    true
}

#[test]
fn random_damage_never_panics() {
    let builder = Builder::standard().with_relocs({
        let mut t = reloc_block(0x1000, &[(10, 0x10), (3, 0x20)]);
        t.extend(reloc_block(0x2000, &[(10, 0), (10, 8), (3, 0x10)]));
        t
    });
    let built = builder.build();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut parsed = 0;
    for (base, header_len) in [(UKI, 0x400usize), (STUB, 0x400), (&built[..], 0x200)] {
        for i in 0..1500 {
            let mut f = base.to_vec();
            let flips = 1 + rng.below(8);
            for _ in 0..flips {
                // Half the damage goes to the headers, where it matters most.
                let at = if i % 2 == 0 {
                    rng.below(header_len)
                } else {
                    rng.below(f.len())
                };
                f[at] = rng.next() as u8;
            }
            if i % 7 == 0 {
                f.truncate(rng.below(f.len() + 1));
            }
            if exercise(&f) {
                parsed += 1;
            }
        }
        // Damage to the relocation table of a relocating image.
        let img = PeImage::parse(base).unwrap();
        let reloc_off = img.find_section(".reloc").unwrap().raw_offset as usize;
        for _ in 0..300 {
            let mut f = base.to_vec();
            for _ in 0..1 + rng.below(4) {
                f[reloc_off + rng.below(0x20)] = rng.next() as u8;
            }
            exercise(&f);
        }
    }
    // The mutations mostly hit bytes the parser ignores or checks; some must
    // still parse, or this test would prove nothing about load.
    assert!(parsed > 500, "only {parsed} mutated images parsed");
}

#[test]
fn random_headers_never_panic() {
    let mut rng = Rng(0x0dd_ba11);
    for _ in 0..2000 {
        let len = 64 + rng.below(1024);
        let mut f: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        f[0..2].copy_from_slice(b"MZ");
        let lfanew = rng.below(len) as u32;
        f[0x3c..0x40].copy_from_slice(&lfanew.to_le_bytes());
        if let Some(sig) = f.get_mut(lfanew as usize..lfanew as usize + 6) {
            sig.copy_from_slice(b"PE\0\0\x64\x86");
        }
        exercise(&f);
    }
}

/// Found by the `pe` fuzz target: a section with no raw data whose raw
/// offset lies past the end of the file. `parse` accepts it (nothing needs
/// reading), so `load` must too — and never fail after writing `dest`.
#[test]
fn empty_section_with_offset_past_eof_loads() {
    let file = include_bytes!("data/fuzz-empty-section-past-eof.efi");
    let img = PeImage::parse(file).expect("parse accepts the image");
    let mut dest = vec![0xAAu8; img.image_size() as usize];
    match img.load(file, &mut dest, img.preferred_base()) {
        Ok(()) => assert_eq!(&dest[..2], b"MZ", "headers copied"),
        Err(e) => assert!(
            dest.iter().all(|&b| b == 0xAA),
            "failed load wrote to dest: {e}"
        ),
    }
}
