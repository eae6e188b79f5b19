//! The x86_64 firmware's runtime relocation table (see
//! `firmware/x86_64/src/reloc.rs`): from the relocation records the linker
//! kept (`--emit-relocs`), the absolute pointers into the image that sit in
//! its data segment, as a bitmap the firmware walks at
//! SetVirtualAddressMap. Also the check that makes the table complete: no
//! absolute address anywhere else but in the boot-time assembly.
//!
//! The distributed ELF is then written without section headers, symbols and
//! relocation records: VMMs load only its program headers' segments.

use crate::util::Result;
use object::elf::{
    R_X86_64_32, R_X86_64_32S, R_X86_64_64, R_X86_64_GOTPCREL, R_X86_64_GOTPCRELX, R_X86_64_PC32,
    R_X86_64_PC64, R_X86_64_PLT32, R_X86_64_REX_GOTPCRELX,
};
use object::{Object, ObjectSection, ObjectSymbol, RelocationFlags};

const MAGIC_EMPTY: &[u8; 8] = b"EMBRELO0";
const MAGIC_FILLED: &[u8; 8] = b"EMBRELO1";
/// magic, base, words, count.
const HEADER: usize = 32;

/// How a relocation depends on where the image runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// A 64-bit absolute address: fine in data (the table covers it).
    Abs64,
    /// A 32-bit absolute address: only the boot-time assembly may have one.
    Abs32,
    /// Relative to the place (or to the GOT): moves with the image.
    Relative,
}

fn kind(r_type: u32) -> Result<Kind> {
    Ok(match r_type {
        R_X86_64_64 => Kind::Abs64,
        R_X86_64_32 | R_X86_64_32S => Kind::Abs32,
        R_X86_64_PC32
        | R_X86_64_PC64
        | R_X86_64_PLT32
        | R_X86_64_GOTPCREL
        | R_X86_64_GOTPCRELX
        | R_X86_64_REX_GOTPCRELX => Kind::Relative,
        t => {
            return Err(format!(
                "relocation type {t} is not known to be position-independent"
            ))
        }
    })
}

/// The addresses the rules need, from the linker script's symbols.
#[derive(Clone, Debug)]
pub struct Layout {
    /// `__image_start`, `__image_end`: what counts as a pointer into the image.
    pub image: (u64, u64),
    /// `__data_start`, `__load_end`: the words the bitmap covers.
    pub data: (u64, u64),
    /// `__got_start`, `__got_end`: linker-made pointers with no record.
    pub got: (u64, u64),
    /// Ranges whose absolute addresses are allowed and left alone: the
    /// boot-time assembly and its tables, the PVH note.
    pub boot_only: Vec<(u64, u64)>,
}

/// The table's contents.
#[derive(Debug, PartialEq)]
pub struct Table {
    pub bitmap: Vec<u64>,
    pub words: u64,
    pub count: u64,
}

/// Build the bitmap from the relocations `(place, kind, what)` and the
/// linked contents (`read` gives the 8 bytes at an address). `capacity`
/// is the bitmap's size in 64-bit words.
pub fn table(
    l: &Layout,
    relocs: &[(u64, Kind, String)],
    read: impl Fn(u64) -> Option<u64>,
    capacity: usize,
) -> Result<Table> {
    let words = (l.data.1 - l.data.0).div_ceil(8);
    if words > capacity as u64 * 64 {
        return Err(format!(
            "the data segment ({} bytes) outgrew the relocation table ({} bytes of data); raise BITMAP_WORDS in firmware/x86_64/src/reloc.rs",
            l.data.1 - l.data.0,
            capacity * 64 * 8
        ));
    }
    let mut bitmap = vec![0u64; capacity];
    let mut count = 0;
    let mut mark = |at: u64, bitmap: &mut Vec<u64>| -> Result<()> {
        if !at.is_multiple_of(8) {
            return Err(format!(
                "an absolute pointer at {at:#x} is not 8-byte aligned"
            ));
        }
        let Some(v) = read(at) else {
            return Err(format!("cannot read the word at {at:#x}"));
        };
        if !(l.image.0..=l.image.1).contains(&v) {
            return Ok(()); // not into the image: stays as it is
        }
        let i = (at - l.data.0) / 8;
        let (w, b) = ((i / 64) as usize, i % 64);
        if bitmap[w] & (1 << b) == 0 {
            bitmap[w] |= 1 << b;
            count += 1;
        }
        Ok(())
    };
    let in_data = |a: u64| (l.data.0..l.data.1).contains(&a);
    let mut bad = Vec::new();
    for (at, k, what) in relocs {
        match k {
            Kind::Relative => {}
            Kind::Abs64 if in_data(*at) => mark(*at, &mut bitmap)?,
            Kind::Abs64 | Kind::Abs32 => {
                if !l.boot_only.iter().any(|&(s, e)| (s..e).contains(at)) {
                    bad.push(format!("{at:#x} ({what}, {k:?})"));
                }
            }
        }
    }
    if !bad.is_empty() {
        bad.truncate(12);
        return Err(format!(
            "absolute addresses outside the data segment and the boot-time assembly; that code would break at the OS's virtual address after SetVirtualAddressMap (is relocation-model=pie set?): {}",
            bad.join(", ")
        ));
    }
    let mut g = l.got.0;
    while g < l.got.1 {
        mark(g, &mut bitmap)?;
        g += 8;
    }
    Ok(Table {
        bitmap,
        words,
        count,
    })
}

/// What [`prepare`] made of the linked ELF.
pub struct Prepared {
    /// The ELF with the table filled in, without section headers, symbols
    /// and relocation records.
    pub elf: Vec<u8>,
    pub pointers: u64,
}

/// Fill the relocation table of the linked firmware `elf` and strip it.
pub fn prepare(elf: &[u8]) -> Result<Prepared> {
    let file = object::File::parse(elf).map_err(|e| format!("firmware ELF: {e}"))?;
    let sym = |name: &str| -> Result<u64> {
        file.symbols()
            .find(|s| s.name() == Ok(name))
            .map(|s| s.address())
            .ok_or_else(|| format!("firmware ELF: no symbol {name} (built without the linker's symbol table or layout.ld?)"))
    };
    let mut boot_only = vec![
        (sym("__image_start")?, sym("__boot_text_end")?),
        (sym("__rodata_start")?, sym("__boot_rodata_end")?),
    ];
    if let Some(note) = file.section_by_name(".note.Xen") {
        boot_only.push((note.address(), note.address() + note.size()));
    }
    let layout = Layout {
        image: (sym("__image_start")?, sym("__image_end")?),
        data: (sym("__data_start")?, sym("__load_end")?),
        got: (sym("__got_start")?, sym("__got_end")?),
        boot_only,
    };
    let mut relocs = Vec::new();
    let mut records = 0;
    for sec in file.sections() {
        // Only what is loaded matters (not debug sections).
        if sec.address() == 0 {
            continue;
        }
        let name = sec.name().unwrap_or("?").to_string();
        for (at, r) in sec.relocations() {
            let RelocationFlags::Elf { r_type } = r.flags() else {
                return Err("firmware ELF: a relocation that is not ELF's".into());
            };
            relocs.push((at, kind(r_type)?, name.clone()));
            records += 1;
        }
    }
    if records == 0 {
        return Err(
            "firmware ELF: no relocation records (was it linked with --emit-relocs?)".into(),
        );
    }
    // The linked bytes at an address, through the section that holds it.
    let locate = |a: u64| -> Option<(u64, usize)> {
        file.sections().find_map(|s| {
            let (off, size) = s.file_range()?;
            (s.address() <= a && a < s.address() + size)
                .then(|| (off + (a - s.address()), size as usize))
        })
    };
    let read = |a: u64| -> Option<u64> {
        let (off, _) = locate(a)?;
        let b = elf.get(off as usize..off as usize + 8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    };
    let (rs, re) = (sym("__relocs_start")?, sym("__relocs_end")?);
    let capacity = ((re - rs) as usize)
        .checked_sub(HEADER)
        .ok_or("firmware ELF: the relocation table is too small")?
        / 8;
    let t = table(&layout, &relocs, read, capacity)?;
    let (off, _) = locate(rs).ok_or("firmware ELF: the relocation table has no file bytes")?;
    let off = off as usize;
    let mut out = elf.to_vec();
    if out.get(off..off + 8) != Some(MAGIC_EMPTY) {
        return Err(format!(
            "firmware ELF: no empty relocation table at {rs:#x} (already filled?)"
        ));
    }
    let mut bytes = Vec::with_capacity(re as usize - rs as usize);
    bytes.extend_from_slice(MAGIC_FILLED);
    for v in [layout.data.0, t.words, t.count] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    for w in &t.bitmap {
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    out[off..off + bytes.len()].copy_from_slice(&bytes);
    Ok(Prepared {
        elf: strip(&out)?,
        pointers: t.count,
    })
}

/// The ELF cut after its last segment's file bytes, with no section
/// headers: what follows the segments is symbols and relocation records.
fn strip(elf: &[u8]) -> Result<Vec<u8>> {
    let le = |off: usize, n: usize| -> Result<u64> {
        let b = elf.get(off..off + n).ok_or("ELF truncated")?;
        Ok(b.iter().rev().fold(0u64, |a, &x| a << 8 | u64::from(x)))
    };
    let (phoff, phentsize, phnum) = (le(0x20, 8)?, le(0x36, 2)?, le(0x38, 2)?);
    let mut end = phoff + phentsize * phnum;
    for i in 0..phnum {
        let p = (phoff + i * phentsize) as usize;
        end = end.max(le(p + 8, 8)? + le(p + 32, 8)?);
    }
    let mut out = elf
        .get(..end as usize)
        .ok_or("ELF shorter than its segments")?
        .to_vec();
    out[0x28..0x30].fill(0); // e_shoff
    out[0x3c..0x40].fill(0); // e_shnum, e_shstrndx
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            image: (0x10_0000, 0x20_0000),
            data: (0x19_c000, 0x19_d000),
            got: (0x19_cf00, 0x19_cf10),
            boot_only: vec![(0x10_0000, 0x10_0500), (0x18_a000, 0x18_a200)],
        }
    }

    /// Words of a fake image: addresses in data hold an image pointer
    /// unless listed as something else.
    fn reader(other: &'static [(u64, u64)]) -> impl Fn(u64) -> Option<u64> {
        move |a| {
            Some(
                other
                    .iter()
                    .find(|(at, _)| *at == a)
                    .map_or(0x11_0000, |(_, v)| *v),
            )
        }
    }

    fn r(at: u64, k: Kind) -> (u64, Kind, String) {
        (at, k, ".data".into())
    }

    #[test]
    fn pointers_in_data_and_the_got_are_listed() {
        let relocs = [
            r(0x19_c000, Kind::Abs64),
            r(0x19_c008, Kind::Abs64),
            r(0x19_c040, Kind::Abs64),
            r(0x19_c040, Kind::Abs64), // listed twice, counted once
            r(0x10_1000, Kind::Relative),
        ];
        let t = table(&layout(), &relocs, reader(&[]), 8).unwrap();
        // data words 0, 1, 8 and the two GOT words (0xf00/8 = 480, 481).
        assert_eq!(t.count, 5);
        assert_eq!(t.words, 0x1000 / 8);
        assert_eq!(t.bitmap[0], 0b1_0000_0011);
        assert_eq!(t.bitmap[480 / 64], 0b11 << (480 % 64));
    }

    #[test]
    fn words_that_do_not_point_into_the_image_are_left_out() {
        // A pointer to an absolute address (e.g. MMIO) and a null GOT slot.
        let relocs = [r(0x19_c000, Kind::Abs64), r(0x19_c010, Kind::Abs64)];
        let t = table(
            &layout(),
            &relocs,
            reader(&[(0x19_c010, 0xfee0_0000), (0x19_cf08, 0)]),
            8,
        )
        .unwrap();
        assert_eq!(t.count, 2); // 0x19c000 and the first GOT slot
        assert_eq!(t.bitmap[0], 1);
    }

    #[test]
    fn absolute_addresses_in_code_are_refused_outside_the_boot_assembly() {
        let ok = [r(0x10_0010, Kind::Abs32), r(0x18_a008, Kind::Abs64)];
        assert!(table(&layout(), &ok, reader(&[]), 8).is_ok());
        for bad in [r(0x12_0000, Kind::Abs32), r(0x18_b000, Kind::Abs64)] {
            let e = table(&layout(), &[bad], reader(&[]), 8).unwrap_err();
            assert!(e.contains("SetVirtualAddressMap"), "{e}");
        }
    }

    #[test]
    fn misaligned_pointers_and_a_full_table_are_errors() {
        let e = table(&layout(), &[r(0x19_c004, Kind::Abs64)], reader(&[]), 8).unwrap_err();
        assert!(e.contains("aligned"), "{e}");
        // 0x1000 bytes of data need 512 bits = 8 words.
        let e = table(&layout(), &[], reader(&[]), 7).unwrap_err();
        assert!(e.contains("BITMAP_WORDS"), "{e}");
    }

    #[test]
    fn unknown_relocation_types_are_refused() {
        assert_eq!(kind(R_X86_64_64).unwrap(), Kind::Abs64);
        assert_eq!(kind(R_X86_64_PLT32).unwrap(), Kind::Relative);
        assert!(kind(object::elf::R_X86_64_TPOFF64).is_err());
    }
}
