//! A tiny PE32+ writer for tests. It encodes the header layout from the PE
//! Format specification's offset tables on its own (it does not use the
//! crate's structures), so parser and builder check each other; `objdump`
//! checks the builder (see `builder_output_is_a_pe_for_objdump`).
#![allow(dead_code)]

/// Offset of `e_lfanew` in the MS-DOS header.
pub const LFANEW_FIELD: usize = 0x3c;
/// Size of `PE\0\0` plus the COFF file header.
pub const PE_HEADER_LEN: usize = 24;
/// Size of a PE32+ optional header with 16 data directories.
pub const OPT_HEADER_LEN: usize = 240;
/// Size of one section table entry.
pub const SECTION_ENTRY_LEN: usize = 40;

/// Where the builder's standard image wants to run.
pub const BASE: u64 = 0x40_0000;
/// RVA of the DIR64 field in the standard image's `.text`.
pub const DIR64_RVA: usize = 0x1010;
/// RVA of the HIGHLOW field in the standard image's `.text`.
pub const HIGHLOW_RVA: usize = 0x1020;
/// RVA the DIR64 field points at (in `.data`).
pub const DIR64_TARGET: u64 = 0x2000;
/// RVA the HIGHLOW field points at (in `.data`).
pub const HIGHLOW_TARGET: u64 = 0x2008;

/// One section to emit.
#[derive(Clone, Debug)]
pub struct Sec {
    pub name: [u8; 8],
    pub rva: u32,
    pub virtual_size: u32,
    pub raw_offset: u32,
    pub raw_size: u32,
    pub characteristics: u32,
    /// Bytes written at `raw_offset` (up to `raw_size`).
    pub data: Vec<u8>,
}

/// Every header field the parser reads, settable by tests.
#[derive(Clone, Debug)]
pub struct Builder {
    pub e_lfanew: u32,
    pub machine: u16,
    pub number_of_sections: Option<u16>,
    pub size_of_optional_header: u16,
    pub characteristics: u16,
    pub magic: u16,
    pub entry: u32,
    pub image_base: u64,
    pub section_alignment: u32,
    pub file_alignment: u32,
    pub size_of_image: u32,
    pub size_of_headers: u32,
    pub subsystem: u16,
    pub dll_characteristics: u16,
    pub number_of_rva_and_sizes: u32,
    pub dirs: [(u32, u32); 16],
    pub sections: Vec<Sec>,
    /// Total file length; grows to fit section data.
    pub file_len: usize,
}

/// Encodes a base relocation block for `page` with `(type, offset)` entries,
/// padded with an ABSOLUTE entry to a 32-bit boundary.
pub fn reloc_block(page: u32, entries: &[(u8, u16)]) -> Vec<u8> {
    let mut words: Vec<u16> = entries
        .iter()
        .map(|&(t, off)| (u16::from(t) << 12) | (off & 0xfff))
        .collect();
    if !words.len().is_multiple_of(2) {
        words.push(0);
    }
    let size = 8 + 2 * words.len() as u32;
    let mut b = Vec::new();
    b.extend_from_slice(&page.to_le_bytes());
    b.extend_from_slice(&size.to_le_bytes());
    for w in words {
        b.extend_from_slice(&w.to_le_bytes());
    }
    b
}

pub fn name(s: &str) -> [u8; 8] {
    let mut n = [0u8; 8];
    n[..s.len()].copy_from_slice(s.as_bytes());
    n
}

impl Builder {
    /// An EFI application linked at [`BASE`]: `.text` (code with a DIR64
    /// and a HIGHLOW pointer into `.data`), `.data` (raw 0x200 bytes, 0x1800
    /// in memory: the tail is bss), `.reloc` with one block for both.
    pub fn standard() -> Builder {
        let mut text = vec![0x90u8; 0x40];
        text[0] = 0xc3;
        let dir64 = BASE + DIR64_TARGET;
        let highlow = (BASE + HIGHLOW_TARGET) as u32;
        text[DIR64_RVA - 0x1000..][..8].copy_from_slice(&dir64.to_le_bytes());
        text[HIGHLOW_RVA - 0x1000..][..4].copy_from_slice(&highlow.to_le_bytes());
        let data: Vec<u8> = (0..0x200u32).map(|i| (i * 7 + 3) as u8).collect();
        let reloc = reloc_block(0x1000, &[(10, 0x010), (3, 0x020), (0, 0)]);
        let mut dirs = [(0u32, 0u32); 16];
        dirs[5] = (0x4000, reloc.len() as u32);
        Builder {
            e_lfanew: 0x40,
            machine: 0x8664,
            number_of_sections: None,
            size_of_optional_header: OPT_HEADER_LEN as u16,
            // EXECUTABLE_IMAGE | LARGE_ADDRESS_AWARE
            characteristics: 0x0022,
            magic: 0x20b,
            entry: 0x1000,
            image_base: BASE,
            section_alignment: 0x1000,
            file_alignment: 0x200,
            size_of_image: 0x5000,
            size_of_headers: 0x200,
            subsystem: 10,
            dll_characteristics: 0x0140,
            number_of_rva_and_sizes: 16,
            dirs,
            sections: vec![
                Sec {
                    name: name(".text"),
                    rva: 0x1000,
                    virtual_size: 0x40,
                    raw_offset: 0x200,
                    raw_size: 0x200,
                    characteristics: 0x6000_0020,
                    data: text,
                },
                Sec {
                    name: name(".data"),
                    rva: 0x2000,
                    virtual_size: 0x1800,
                    raw_offset: 0x400,
                    raw_size: 0x200,
                    characteristics: 0xc000_0040,
                    data,
                },
                Sec {
                    name: name(".reloc"),
                    rva: 0x4000,
                    virtual_size: reloc.len() as u32,
                    raw_offset: 0x600,
                    raw_size: 0x200,
                    characteristics: 0x4200_0040,
                    data: reloc,
                },
            ],
            file_len: 0x800,
        }
    }

    /// Replaces the `.reloc` contents (and the directory size) with `table`.
    pub fn with_relocs(mut self, table: Vec<u8>) -> Builder {
        let r = self
            .sections
            .iter_mut()
            .find(|s| s.name == name(".reloc"))
            .unwrap();
        r.virtual_size = table.len() as u32;
        r.raw_size = table.len().div_ceil(0x200) as u32 * 0x200;
        r.data = table.clone();
        self.dirs[5] = (r.rva, table.len() as u32);
        self.file_len = self.file_len.max((r.raw_offset + r.raw_size) as usize);
        self
    }

    /// Offset of the optional header.
    pub fn opt_offset(&self) -> usize {
        self.e_lfanew as usize + PE_HEADER_LEN
    }

    /// Offset of the section table.
    pub fn table_offset(&self) -> usize {
        self.opt_offset() + usize::from(self.size_of_optional_header)
    }

    pub fn build(&self) -> Vec<u8> {
        let mut f = vec![0u8; self.file_len];
        let put = |f: &mut Vec<u8>, at: usize, bytes: &[u8]| {
            if bytes.is_empty() {
                return;
            }
            if f.len() < at + bytes.len() {
                f.resize(at + bytes.len(), 0);
            }
            f[at..at + bytes.len()].copy_from_slice(bytes);
        };
        put(&mut f, 0, b"MZ");
        put(&mut f, LFANEW_FIELD, &self.e_lfanew.to_le_bytes());
        let l = self.e_lfanew as usize;
        let nsec = self
            .number_of_sections
            .unwrap_or(self.sections.len() as u16);
        put(&mut f, l, b"PE\0\0");
        put(&mut f, l + 4, &self.machine.to_le_bytes());
        put(&mut f, l + 6, &nsec.to_le_bytes());
        put(&mut f, l + 20, &self.size_of_optional_header.to_le_bytes());
        put(&mut f, l + 22, &self.characteristics.to_le_bytes());
        let o = self.opt_offset();
        put(&mut f, o, &self.magic.to_le_bytes());
        put(&mut f, o + 16, &self.entry.to_le_bytes());
        put(&mut f, o + 20, &0x1000u32.to_le_bytes()); // BaseOfCode
        put(&mut f, o + 24, &self.image_base.to_le_bytes());
        put(&mut f, o + 32, &self.section_alignment.to_le_bytes());
        put(&mut f, o + 36, &self.file_alignment.to_le_bytes());
        put(&mut f, o + 56, &self.size_of_image.to_le_bytes());
        put(&mut f, o + 60, &self.size_of_headers.to_le_bytes());
        put(&mut f, o + 68, &self.subsystem.to_le_bytes());
        put(&mut f, o + 70, &self.dll_characteristics.to_le_bytes());
        put(&mut f, o + 108, &self.number_of_rva_and_sizes.to_le_bytes());
        let ndirs = (self.number_of_rva_and_sizes as usize).min(16);
        for (i, &(rva, size)) in self.dirs.iter().take(ndirs).enumerate() {
            put(&mut f, o + 112 + 8 * i, &rva.to_le_bytes());
            put(&mut f, o + 116 + 8 * i, &size.to_le_bytes());
        }
        let t = self.table_offset();
        for (i, s) in self.sections.iter().enumerate() {
            let e = t + SECTION_ENTRY_LEN * i;
            put(&mut f, e, &s.name);
            put(&mut f, e + 8, &s.virtual_size.to_le_bytes());
            put(&mut f, e + 12, &s.rva.to_le_bytes());
            put(&mut f, e + 16, &s.raw_size.to_le_bytes());
            put(&mut f, e + 20, &s.raw_offset.to_le_bytes());
            put(&mut f, e + 36, &s.characteristics.to_le_bytes());
        }
        for s in &self.sections {
            let n = s.data.len().min(s.raw_size as usize);
            put(&mut f, s.raw_offset as usize, &s.data[..n]);
        }
        f
    }
}
