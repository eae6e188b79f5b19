//! PE32+ image validation and loading for Ember's UEFI layer.
//!
//! The firmware reads an EFI application or driver (shim, GRUB,
//! systemd-boot, a UKI, a Linux kernel with its EFI stub) into memory, then:
//! 1. [`PeImage::parse`] validates every header field the loader relies on;
//! 2. the firmware allocates [`PeImage::image_size`] bytes somewhere;
//! 3. [`PeImage::load`] lays the image out in that buffer for that address
//!    (headers, sections, zero fill, base relocations, `ImageBase`);
//! 4. [`PeImage::section_permissions`] tells the firmware how to map it W^X.
//!
//! This crate allocates no image memory and executes nothing. Every offset,
//! size and count read from the file is checked before use; loops are
//! bounded by the file's size; failures are typed [`PeError`]s.
//!
//! Facts come from Microsoft's "PE Format" specification and the UEFI
//! specification (section 2.1.1, "UEFI Images").
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use core::fmt;
use core::mem::offset_of;

use zerocopy::little_endian::U16;
use zerocopy::FromBytes;

mod raw;

use raw::{DataDirectory, DosHeader, OptionalHeader64, PeHeader, RelocBlockHeader, SectionHeader};

/// COFF machine type for x86_64 (AMD64).
pub const MACHINE_X86_64: u16 = 0x8664;
/// COFF machine type for AArch64 (ARM64).
pub const MACHINE_AARCH64: u16 = 0xaa64;
/// Optional-header magic of a PE32+ image.
pub const PE32PLUS_MAGIC: u16 = 0x20b;
/// Optional-header magic of a 32-bit PE32 image (rejected).
pub const PE32_MAGIC: u16 = 0x10b;

/// `Subsystem`: EFI application.
pub const SUBSYSTEM_EFI_APPLICATION: u16 = 10;
/// `Subsystem`: EFI boot service driver.
pub const SUBSYSTEM_EFI_BOOT_SERVICE_DRIVER: u16 = 11;
/// `Subsystem`: EFI runtime driver.
pub const SUBSYSTEM_EFI_RUNTIME_DRIVER: u16 = 12;

/// COFF `Characteristics`: the image has no base relocations and must be
/// loaded at its preferred base.
pub const FILE_RELOCS_STRIPPED: u16 = 0x0001;
/// COFF `Characteristics`: the image is executable.
pub const FILE_EXECUTABLE_IMAGE: u16 = 0x0002;

/// `DllCharacteristics`: the image can be relocated at load time.
pub const DLL_DYNAMIC_BASE: u16 = 0x0040;
/// `DllCharacteristics`: the image is compatible with non-executable data.
pub const DLL_NX_COMPAT: u16 = 0x0100;

/// Section `Characteristics`: contains code.
pub const SCN_CNT_CODE: u32 = 0x0000_0020;
/// Section `Characteristics`: contains initialized data.
pub const SCN_CNT_INITIALIZED_DATA: u32 = 0x0000_0040;
/// Section `Characteristics`: contains uninitialized data.
pub const SCN_CNT_UNINITIALIZED_DATA: u32 = 0x0000_0080;
/// Section `Characteristics`: can be discarded after loading.
pub const SCN_MEM_DISCARDABLE: u32 = 0x0200_0000;
/// Section `Characteristics`: executable.
pub const SCN_MEM_EXECUTE: u32 = 0x2000_0000;
/// Section `Characteristics`: readable.
pub const SCN_MEM_READ: u32 = 0x4000_0000;
/// Section `Characteristics`: writable.
pub const SCN_MEM_WRITE: u32 = 0x8000_0000;

/// Data directory index of the certificate (security) table. Its
/// "address" is a file offset, not an RVA.
pub const DIR_SECURITY: usize = 4;
/// Data directory index of the base relocation table.
pub const DIR_BASERELOC: usize = 5;
/// Data directory index of the debug directory.
pub const DIR_DEBUG: usize = 6;
/// Most data directories a PE32+ optional header defines.
pub const MAX_DATA_DIRECTORIES: usize = 16;
/// Most sections accepted; the Windows loader's limit, far above what any
/// EFI image or UKI uses.
pub const MAX_SECTIONS: u16 = 96;

/// Base relocation type: padding, no fixup.
pub const REL_BASED_ABSOLUTE: u8 = 0;
/// Base relocation type: add the low 32 bits of the delta to a 32-bit field.
pub const REL_BASED_HIGHLOW: u8 = 3;
/// Base relocation type: add the delta to a 64-bit field.
pub const REL_BASED_DIR64: u8 = 10;

const DOS_MAGIC: u16 = u16::from_le_bytes(*b"MZ");
const PE_SIGNATURE: [u8; 4] = *b"PE\0\0";

/// Eight-byte section name as it appears in errors: printable ASCII, others
/// escaped, trailing NULs dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionName(pub [u8; 8]);

impl fmt::Display for SectionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = self.0.iter().position(|&b| b == 0).unwrap_or(8);
        for &b in self.0.iter().take(len) {
            if b.is_ascii_graphic() {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// Why an image could not be parsed or loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeError {
    /// The file ends before a header or table the image declares.
    Truncated {
        what: &'static str,
        offset: u64,
        needed: u64,
        file_len: u64,
    },
    /// No `MZ` at offset 0.
    BadDosMagic { found: u16 },
    /// `e_lfanew` points past the end of the file.
    LfanewOutOfRange { e_lfanew: u32, file_len: u64 },
    /// No `PE\0\0` at `e_lfanew`.
    BadPeSignature { found: [u8; 4] },
    /// The COFF machine type is not one the caller accepts.
    UnsupportedMachine { machine: u16 },
    /// The optional header is not PE32+ (e.g. a 32-bit PE32 image).
    NotPe32Plus { magic: u16 },
    /// `SizeOfOptionalHeader` is too small for the fields and directories
    /// the header declares.
    OptionalHeaderTooSmall { size: u16, needed: u64 },
    /// `NumberOfRvaAndSizes` is above 16.
    TooManyDataDirectories { count: u32 },
    /// `NumberOfSections` is above [`MAX_SECTIONS`].
    TooManySections { count: u16 },
    /// `SectionAlignment` or `FileAlignment` is not a power of two, or the
    /// file alignment exceeds the section alignment.
    BadAlignment { section: u32, file: u32 },
    /// `SizeOfHeaders` exceeds the file or `SizeOfImage`.
    HeadersTooLarge {
        size_of_headers: u32,
        image_size: u32,
        file_len: u64,
    },
    /// The section table does not lie within `SizeOfHeaders`.
    SectionTableOutsideHeaders {
        table_end: u64,
        size_of_headers: u32,
    },
    /// `AddressOfEntryPoint` is not inside the image.
    EntryOutsideImage { entry: u32, image_size: u32 },
    /// A section's memory range extends past `SizeOfImage`.
    SectionOutsideImage {
        name: SectionName,
        rva: u32,
        size: u32,
        image_size: u32,
    },
    /// A section's raw data extends past the end of the file.
    SectionDataOutsideFile {
        name: SectionName,
        offset: u32,
        size: u32,
        file_len: u64,
    },
    /// Two sections' memory ranges overlap.
    OverlappingSections {
        first: SectionName,
        second: SectionName,
    },
    /// A data directory (base relocation or debug) lies outside the image.
    DirectoryOutOfImage {
        index: usize,
        rva: u32,
        size: u32,
        image_size: u32,
    },
    /// The certificate table lies outside the file.
    SecurityDirectoryOutOfFile {
        offset: u32,
        size: u32,
        file_len: u64,
    },
    /// The base relocation table is not backed by bytes of the file.
    RelocationsNotInFile { rva: u32, size: u32 },
    /// A base relocation block's size is below 8, odd, or runs past the table.
    BadRelocationBlock {
        offset: u32,
        size: u32,
        table_size: u32,
    },
    /// A base relocation block's page lies outside the image.
    RelocationBlockOutOfImage { page_rva: u32, image_size: u32 },
    /// A base relocation of a type this loader does not implement.
    UnsupportedRelocation { kind: u8, rva: u64 },
    /// A base relocation would patch bytes outside the image.
    RelocationOutOfImage {
        rva: u64,
        width: u8,
        image_size: u32,
    },
    /// The image must move but is marked `IMAGE_FILE_RELOCS_STRIPPED`.
    NotRelocatable { preferred_base: u64, load_base: u64 },
    /// The destination buffer is smaller than `SizeOfImage`.
    DestinationTooSmall { needed: u32, got: usize },
    /// The file given to `load` is not the one `parse` saw.
    FileMismatch { parsed_len: u64, got: u64 },
    /// `load_base + SizeOfImage` wraps around the address space.
    LoadBaseOverflow { load_base: u64, image_size: u32 },
}

fn machine_name(machine: u16) -> &'static str {
    match machine {
        MACHINE_X86_64 => "x86_64",
        MACHINE_AARCH64 => "aarch64",
        0x014c => "i386",
        0x01c0 | 0x01c2 | 0x01c4 => "32-bit ARM",
        0x0200 => "Itanium",
        0x5064 => "RISC-V 64",
        0x6264 => "LoongArch 64",
        _ => "unknown",
    }
}

impl fmt::Display for PeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PeError::Truncated { what, offset, needed, file_len } => write!(
                f,
                "PE image truncated: {what} needs {needed} bytes at offset {offset:#x}, file has {file_len}"
            ),
            PeError::BadDosMagic { found } => write!(
                f,
                "not a PE/EFI image: no \"MZ\" at offset 0 (found {found:#06x})"
            ),
            PeError::LfanewOutOfRange { e_lfanew, file_len } => write!(
                f,
                "corrupt PE image: e_lfanew {e_lfanew:#x} points past the end of the {file_len}-byte file"
            ),
            PeError::BadPeSignature { found } => write!(
                f,
                "not a PE/EFI image: no \"PE\\0\\0\" signature at e_lfanew (found {found:02x?})"
            ),
            PeError::UnsupportedMachine { machine } => write!(
                f,
                "EFI image is for machine {machine:#06x} ({}), not this CPU; use the image built for this architecture",
                machine_name(machine)
            ),
            PeError::NotPe32Plus { magic } if magic == PE32_MAGIC => f.write_str(
                "EFI image is 32-bit PE32; only 64-bit PE32+ images are supported",
            ),
            PeError::NotPe32Plus { magic } => write!(
                f,
                "corrupt PE image: optional header magic {magic:#06x}, expected 0x020b (PE32+)"
            ),
            PeError::OptionalHeaderTooSmall { size, needed } => write!(
                f,
                "corrupt PE image: SizeOfOptionalHeader is {size} but its fields and data directories need {needed}"
            ),
            PeError::TooManyDataDirectories { count } => write!(
                f,
                "corrupt PE image: NumberOfRvaAndSizes is {count}, at most {MAX_DATA_DIRECTORIES} exist"
            ),
            PeError::TooManySections { count } => write!(
                f,
                "corrupt PE image: {count} sections, at most {MAX_SECTIONS} are accepted"
            ),
            PeError::BadAlignment { section, file } => write!(
                f,
                "corrupt PE image: SectionAlignment {section:#x} / FileAlignment {file:#x} must be powers of two with file alignment <= section alignment"
            ),
            PeError::HeadersTooLarge { size_of_headers, image_size, file_len } => write!(
                f,
                "corrupt PE image: SizeOfHeaders {size_of_headers:#x} exceeds the file ({file_len:#x} bytes) or SizeOfImage ({image_size:#x})"
            ),
            PeError::SectionTableOutsideHeaders { table_end, size_of_headers } => write!(
                f,
                "corrupt PE image: section table ends at {table_end:#x}, beyond SizeOfHeaders {size_of_headers:#x}"
            ),
            PeError::EntryOutsideImage { entry, image_size } => write!(
                f,
                "corrupt PE image: entry point RVA {entry:#x} is outside the {image_size:#x}-byte image"
            ),
            PeError::SectionOutsideImage { name, rva, size, image_size } => write!(
                f,
                "corrupt PE image: section \"{name}\" at RVA {rva:#x} size {size:#x} extends past SizeOfImage {image_size:#x}"
            ),
            PeError::SectionDataOutsideFile { name, offset, size, file_len } => write!(
                f,
                "PE image truncated: section \"{name}\" data at offset {offset:#x} size {size:#x} extends past the {file_len}-byte file"
            ),
            PeError::OverlappingSections { first, second } => write!(
                f,
                "corrupt PE image: sections \"{first}\" and \"{second}\" overlap in memory"
            ),
            PeError::DirectoryOutOfImage { index, rva, size, image_size } => write!(
                f,
                "corrupt PE image: data directory {index} (RVA {rva:#x} size {size:#x}) lies outside the {image_size:#x}-byte image"
            ),
            PeError::SecurityDirectoryOutOfFile { offset, size, file_len } => write!(
                f,
                "PE image truncated: certificate table at offset {offset:#x} size {size:#x} extends past the {file_len}-byte file"
            ),
            PeError::RelocationsNotInFile { rva, size } => write!(
                f,
                "corrupt PE image: base relocation table (RVA {rva:#x} size {size:#x}) is not within one section's file data"
            ),
            PeError::BadRelocationBlock { offset, size, table_size } => write!(
                f,
                "corrupt PE image: base relocation block at table offset {offset:#x} has size {size:#x} (must be >= 8, even, and within the {table_size:#x}-byte table)"
            ),
            PeError::RelocationBlockOutOfImage { page_rva, image_size } => write!(
                f,
                "corrupt PE image: base relocation block for page RVA {page_rva:#x} is outside the {image_size:#x}-byte image"
            ),
            PeError::UnsupportedRelocation { kind, rva } => write!(
                f,
                "EFI image uses base relocation type {kind} at RVA {rva:#x}; only ABSOLUTE (0), HIGHLOW (3) and DIR64 (10) are supported"
            ),
            PeError::RelocationOutOfImage { rva, width, image_size } => write!(
                f,
                "corrupt PE image: {width}-byte base relocation at RVA {rva:#x} lies outside the {image_size:#x}-byte image"
            ),
            PeError::NotRelocatable { preferred_base, load_base } => write!(
                f,
                "EFI image is marked relocations-stripped and must run at {preferred_base:#x}, but was to be loaded at {load_base:#x}; allocate its preferred address"
            ),
            PeError::DestinationTooSmall { needed, got } => write!(
                f,
                "load buffer is {got} bytes but the image needs SizeOfImage = {needed}"
            ),
            PeError::FileMismatch { parsed_len, got } => write!(
                f,
                "load was given a {got}-byte file but the image was parsed from {parsed_len} bytes"
            ),
            PeError::LoadBaseOverflow { load_base, image_size } => write!(
                f,
                "load address {load_base:#x} + image size {image_size:#x} overflows the address space"
            ),
        }
    }
}

/// One optional-header data directory: an RVA (a file offset for the
/// certificate table) and a size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataDir {
    /// RVA of the table (for [`DIR_SECURITY`], its file offset).
    pub rva: u32,
    /// Size of the table in bytes.
    pub size: u32,
}

/// One validated section table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section {
    /// Name, NUL-padded; names longer than 8 bytes are not resolved (image
    /// files have no string table).
    pub name: [u8; 8],
    /// RVA of the section in the loaded image.
    pub rva: u32,
    /// `VirtualSize` as stored; see [`Section::mem_size`].
    pub virtual_size: u32,
    /// File offset of the raw data.
    pub raw_offset: u32,
    /// Size of the raw data in the file (usually rounded to `FileAlignment`).
    pub raw_size: u32,
    /// `SCN_*` flags.
    pub characteristics: u32,
}

impl Section {
    /// The name as text, up to the first NUL; `None` if it is not UTF-8.
    pub fn name_str(&self) -> Option<&str> {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(8);
        core::str::from_utf8(self.name.get(..len)?).ok()
    }

    /// Bytes the section occupies in memory. A `VirtualSize` of 0 means the
    /// raw size (some linkers leave it unset), as EDK2 treats it.
    pub fn mem_size(&self) -> u32 {
        if self.virtual_size == 0 {
            self.raw_size
        } else {
            self.virtual_size
        }
    }

    /// Bytes copied from the file when loading: the rest of
    /// [`Section::mem_size`] is zero-filled, and raw padding beyond it ignored.
    pub fn file_len(&self) -> u32 {
        self.raw_size.min(self.mem_size())
    }

    /// The section's contents in `file` (the file the image was parsed
    /// from): [`Section::file_len`] bytes, `None` if out of bounds.
    pub fn data<'f>(&self, file: &'f [u8]) -> Option<&'f [u8]> {
        let start = usize::try_from(self.raw_offset).ok()?;
        let len = usize::try_from(self.file_len()).ok()?;
        file.get(start..start.checked_add(len)?)
    }

    /// `SCN_MEM_READ` is set.
    pub fn readable(&self) -> bool {
        self.characteristics & SCN_MEM_READ != 0
    }

    /// `SCN_MEM_WRITE` is set.
    pub fn writable(&self) -> bool {
        self.characteristics & SCN_MEM_WRITE != 0
    }

    /// `SCN_MEM_EXECUTE` is set.
    pub fn executable(&self) -> bool {
        self.characteristics & SCN_MEM_EXECUTE != 0
    }

    fn end(&self) -> u64 {
        u64::from(self.rva) + u64::from(self.mem_size())
    }
}

/// A memory range of the loaded image and the access its section asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionPermissions {
    /// RVA of the range.
    pub rva: u32,
    /// Length: the section's size rounded up to `SectionAlignment`, clipped
    /// to the next section and to `SizeOfImage` so ranges never overlap.
    pub size: u32,
    /// `SCN_MEM_READ`.
    pub readable: bool,
    /// `SCN_MEM_WRITE`.
    pub writable: bool,
    /// `SCN_MEM_EXECUTE`.
    pub executable: bool,
}

/// A validated PE32+ image. It does not borrow the file; methods that need
/// the bytes take the same file again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeImage {
    file_len: usize,
    machine: u16,
    characteristics: u16,
    image_base_offset: usize,
    preferred_base: u64,
    image_size: u32,
    headers_size: u32,
    section_alignment: u32,
    file_alignment: u32,
    entry_rva: u32,
    subsystem: u16,
    dll_characteristics: u16,
    dirs: [DataDir; MAX_DATA_DIRECTORIES],
    dir_count: usize,
    sections: Vec<Section>,
    /// File offset of the base relocation table (its size is in `dirs`).
    reloc_offset: usize,
}

fn truncated(what: &'static str, offset: usize, needed: usize, file: &[u8]) -> PeError {
    PeError::Truncated {
        what,
        offset: offset as u64,
        needed: needed as u64,
        file_len: file.len() as u64,
    }
}

/// Reads a `T` at `offset`, or says which structure did not fit.
fn read_at<T: FromBytes>(file: &[u8], offset: usize, what: &'static str) -> Result<T, PeError> {
    let err = || truncated(what, offset, size_of::<T>(), file);
    let tail = file.get(offset..).ok_or_else(err)?;
    T::read_from_prefix(tail).map(|(v, _)| v).map_err(|_| err())
}

fn u32_to_usize(v: u32) -> usize {
    // Lossless: Ember and its host tests are 64-bit.
    v as usize
}

impl PeImage {
    /// Validates an x86_64 PE32+ image.
    pub fn parse(file: &[u8]) -> Result<PeImage, PeError> {
        Self::parse_for_machines(file, &[MACHINE_X86_64])
    }

    /// Validates a PE32+ image whose COFF machine is one of `machines`
    /// (e.g. `&[MACHINE_AARCH64]` on an ARM64 firmware).
    pub fn parse_for_machines(file: &[u8], machines: &[u16]) -> Result<PeImage, PeError> {
        let mut image = Self::parse_headers_impl(file, file.len() as u64, machines)?;
        let relocs = image.dirs[DIR_BASERELOC];
        if relocs.size != 0 {
            image.reloc_offset = image.rva_to_file_offset(relocs.rva, relocs.size).ok_or(
                PeError::RelocationsNotInFile {
                    rva: relocs.rva,
                    size: relocs.size,
                },
            )?;
            // Structure only; types and targets are checked when moving.
            image.walk_relocations(file, |_, _| Ok(()))?;
        }
        Ok(image)
    }

    /// Validates the headers and section table of an x86_64 image of
    /// `file_len` bytes from its first bytes only (`prefix` must reach past
    /// the section table), so a caller can find a section — a UKI's
    /// `.osrel` — without reading the whole file. Relocations are not looked
    /// at; the result describes sections but must not be used to load.
    pub fn parse_headers(prefix: &[u8], file_len: u64) -> Result<PeImage, PeError> {
        Self::parse_headers_for_machines(prefix, file_len, &[MACHINE_X86_64])
    }

    /// [`PeImage::parse_headers`] for an image whose COFF machine is one of
    /// `machines`.
    pub fn parse_headers_for_machines(
        prefix: &[u8],
        file_len: u64,
        machines: &[u16],
    ) -> Result<PeImage, PeError> {
        if (prefix.len() as u64) > file_len {
            return Err(PeError::Truncated {
                what: "PE headers",
                offset: 0,
                needed: prefix.len() as u64,
                file_len,
            });
        }
        Self::parse_headers_impl(prefix, file_len, machines)
    }

    fn parse_headers_impl(
        file: &[u8],
        file_len: u64,
        machines: &[u16],
    ) -> Result<PeImage, PeError> {
        let dos: DosHeader = read_at(file, 0, "DOS header")?;
        if dos.e_magic.get() != DOS_MAGIC {
            return Err(PeError::BadDosMagic {
                found: dos.e_magic.get(),
            });
        }
        let e_lfanew = dos.e_lfanew.get();
        let pe_offset = u32_to_usize(e_lfanew);
        if pe_offset >= file.len() {
            return Err(PeError::LfanewOutOfRange { e_lfanew, file_len });
        }
        let pe: PeHeader = read_at(file, pe_offset, "PE signature and COFF header")?;
        if pe.signature != PE_SIGNATURE {
            return Err(PeError::BadPeSignature {
                found: pe.signature,
            });
        }
        let machine = pe.machine.get();
        if !machines.contains(&machine) {
            return Err(PeError::UnsupportedMachine { machine });
        }
        let section_count = pe.number_of_sections.get();
        if section_count > MAX_SECTIONS {
            return Err(PeError::TooManySections {
                count: section_count,
            });
        }

        // The magic decides the layout, so check it before the full header.
        let opt_offset = pe_offset + size_of::<PeHeader>();
        let magic: U16 = read_at(file, opt_offset, "optional header")?;
        if magic.get() != PE32PLUS_MAGIC {
            return Err(PeError::NotPe32Plus { magic: magic.get() });
        }
        let opt_size = pe.size_of_optional_header.get();
        let opt: OptionalHeader64 = read_at(file, opt_offset, "optional header")?;
        let dir_count_raw = opt.number_of_rva_and_sizes.get();
        let dir_count = u32_to_usize(dir_count_raw);
        if dir_count > MAX_DATA_DIRECTORIES {
            return Err(PeError::TooManyDataDirectories {
                count: dir_count_raw,
            });
        }
        let opt_needed = size_of::<OptionalHeader64>() + dir_count * size_of::<DataDirectory>();
        if usize::from(opt_size) < opt_needed {
            return Err(PeError::OptionalHeaderTooSmall {
                size: opt_size,
                needed: opt_needed as u64,
            });
        }
        let mut dirs = [DataDir::default(); MAX_DATA_DIRECTORIES];
        let dirs_offset = opt_offset + size_of::<OptionalHeader64>();
        for (i, slot) in dirs.iter_mut().take(dir_count).enumerate() {
            let d: DataDirectory = read_at(
                file,
                dirs_offset + i * size_of::<DataDirectory>(),
                "data directories",
            )?;
            *slot = DataDir {
                rva: d.virtual_address.get(),
                size: d.size.get(),
            };
        }

        let table_offset = opt_offset + usize::from(opt_size);
        let table_len = usize::from(section_count) * size_of::<SectionHeader>();
        let table_end = table_offset + table_len;
        if table_end > file.len() {
            return Err(truncated("section table", table_offset, table_len, file));
        }

        let section_alignment = opt.section_alignment.get();
        let file_alignment = opt.file_alignment.get();
        if !section_alignment.is_power_of_two()
            || !file_alignment.is_power_of_two()
            || file_alignment > section_alignment
        {
            return Err(PeError::BadAlignment {
                section: section_alignment,
                file: file_alignment,
            });
        }

        let image_size = opt.size_of_image.get();
        let headers_size = opt.size_of_headers.get();
        if u64::from(headers_size) > file_len || headers_size > image_size {
            return Err(PeError::HeadersTooLarge {
                size_of_headers: headers_size,
                image_size,
                file_len,
            });
        }
        // The loader copies only SizeOfHeaders; the loaded image must still
        // describe its own sections.
        if table_end > u32_to_usize(headers_size) {
            return Err(PeError::SectionTableOutsideHeaders {
                table_end: table_end as u64,
                size_of_headers: headers_size,
            });
        }

        let entry_rva = opt.address_of_entry_point.get();
        if entry_rva >= image_size {
            return Err(PeError::EntryOutsideImage {
                entry: entry_rva,
                image_size,
            });
        }

        let mut sections = Vec::with_capacity(usize::from(section_count));
        for i in 0..usize::from(section_count) {
            let h: SectionHeader = read_at(
                file,
                table_offset + i * size_of::<SectionHeader>(),
                "section table",
            )?;
            let s = Section {
                name: h.name,
                rva: h.virtual_address.get(),
                virtual_size: h.virtual_size.get(),
                raw_offset: h.pointer_to_raw_data.get(),
                raw_size: h.size_of_raw_data.get(),
                characteristics: h.characteristics.get(),
            };
            if s.end() > u64::from(image_size) {
                return Err(PeError::SectionOutsideImage {
                    name: SectionName(s.name),
                    rva: s.rva,
                    size: s.mem_size(),
                    image_size,
                });
            }
            if s.raw_size != 0 && u64::from(s.raw_offset) + u64::from(s.raw_size) > file_len {
                return Err(PeError::SectionDataOutsideFile {
                    name: SectionName(s.name),
                    offset: s.raw_offset,
                    size: s.raw_size,
                    file_len,
                });
            }
            // At most MAX_SECTIONS² / 2 comparisons.
            for prev in sections.iter().filter(|p: &&Section| p.mem_size() != 0) {
                if s.mem_size() != 0
                    && u64::from(s.rva) < prev.end()
                    && u64::from(prev.rva) < s.end()
                {
                    return Err(PeError::OverlappingSections {
                        first: SectionName(prev.name),
                        second: SectionName(s.name),
                    });
                }
            }
            sections.push(s);
        }

        let security = dirs[DIR_SECURITY];
        if security.size != 0 && u64::from(security.rva) + u64::from(security.size) > file_len {
            return Err(PeError::SecurityDirectoryOutOfFile {
                offset: security.rva,
                size: security.size,
                file_len,
            });
        }
        for index in [DIR_BASERELOC, DIR_DEBUG] {
            let d = dirs[index];
            if d.size != 0 && u64::from(d.rva) + u64::from(d.size) > u64::from(image_size) {
                return Err(PeError::DirectoryOutOfImage {
                    index,
                    rva: d.rva,
                    size: d.size,
                    image_size,
                });
            }
        }

        Ok(PeImage {
            file_len: file_len as usize,
            machine,
            characteristics: pe.characteristics.get(),
            image_base_offset: opt_offset + offset_of!(OptionalHeader64, image_base),
            preferred_base: opt.image_base.get(),
            image_size,
            headers_size,
            section_alignment,
            file_alignment,
            entry_rva,
            subsystem: opt.subsystem.get(),
            dll_characteristics: opt.dll_characteristics.get(),
            dirs,
            dir_count,
            sections,
            reloc_offset: 0,
        })
    }

    /// Maps an RVA range that the file backs (headers or one section's raw
    /// data) to a file offset.
    fn rva_to_file_offset(&self, rva: u32, size: u32) -> Option<usize> {
        let end = u64::from(rva) + u64::from(size);
        if end <= u64::from(self.headers_size) {
            return Some(u32_to_usize(rva));
        }
        let s = self
            .sections
            .iter()
            .find(|s| rva >= s.rva && end <= u64::from(s.rva) + u64::from(s.file_len()))?;
        Some(u32_to_usize(s.raw_offset) + u32_to_usize(rva - s.rva))
    }

    /// Calls `fixup(type, target_rva)` for every entry of every base
    /// relocation block, reading the table from `file`. The walk is bounded
    /// by the table's size: every block is at least 8 bytes.
    fn walk_relocations(
        &self,
        file: &[u8],
        mut fixup: impl FnMut(u8, u64) -> Result<(), PeError>,
    ) -> Result<(), PeError> {
        let dir = self.dirs[DIR_BASERELOC];
        let table_size = u32_to_usize(dir.size);
        let table = file
            .get(self.reloc_offset..)
            .and_then(|t| t.get(..table_size))
            .ok_or(PeError::RelocationsNotInFile {
                rva: dir.rva,
                size: dir.size,
            })?;
        let mut pos = 0usize;
        while pos < table.len() {
            let block_err = |size: u32| PeError::BadRelocationBlock {
                offset: pos as u32,
                size,
                table_size: dir.size,
            };
            let header: RelocBlockHeader =
                read_at(table, pos, "base relocation block").map_err(|_| block_err(0))?;
            let size = header.block_size.get();
            let size_usize = u32_to_usize(size);
            if size_usize < size_of::<RelocBlockHeader>()
                || !size.is_multiple_of(2)
                || size_usize > table.len() - pos
            {
                return Err(block_err(size));
            }
            let page_rva = header.page_rva.get();
            if page_rva >= self.image_size {
                return Err(PeError::RelocationBlockOutOfImage {
                    page_rva,
                    image_size: self.image_size,
                });
            }
            let entries = table
                .get(pos + size_of::<RelocBlockHeader>()..pos + size_usize)
                .ok_or_else(|| block_err(size))?;
            for entry in entries.chunks_exact(2) {
                let (e, _) = U16::read_from_prefix(entry).map_err(|_| block_err(size))?;
                let e = e.get();
                fixup((e >> 12) as u8, u64::from(page_rva) + u64::from(e & 0xfff))?;
            }
            pos += size_usize;
        }
        Ok(())
    }

    /// Width of the field a relocation patches, after checking its type and
    /// that the field lies inside the image. `None` for padding.
    fn fixup_width(&self, kind: u8, rva: u64) -> Result<Option<u8>, PeError> {
        let width = match kind {
            REL_BASED_ABSOLUTE => return Ok(None),
            REL_BASED_HIGHLOW => 4u8,
            REL_BASED_DIR64 => 8u8,
            _ => return Err(PeError::UnsupportedRelocation { kind, rva }),
        };
        if rva + u64::from(width) > u64::from(self.image_size) {
            return Err(PeError::RelocationOutOfImage {
                rva,
                width,
                image_size: self.image_size,
            });
        }
        Ok(Some(width))
    }

    /// Lays the image out in `dest` for execution at `load_base`: zeroes
    /// `dest`, copies the headers and each section's file data, applies base
    /// relocations when `load_base` is not the preferred base, and sets the
    /// loaded header's `ImageBase` to `load_base`.
    ///
    /// Moving is refused only for images marked `IMAGE_FILE_RELOCS_STRIPPED`
    /// ([`PeImage::may_move`]). An image without that flag and without
    /// relocations is moved unpatched, as EDK2 does: the Linux EFI stub is
    /// such an image (position-independent, `ImageBase` 0, no `.reloc`).
    ///
    /// `file` must be the bytes `parse` validated. All checks run before
    /// `dest` is written, so on error `dest` is untouched.
    pub fn load(&self, file: &[u8], dest: &mut [u8], load_base: u64) -> Result<(), PeError> {
        if file.len() != self.file_len {
            return Err(PeError::FileMismatch {
                parsed_len: self.file_len as u64,
                got: file.len() as u64,
            });
        }
        let image_size = u32_to_usize(self.image_size);
        if dest.len() < image_size {
            return Err(PeError::DestinationTooSmall {
                needed: self.image_size,
                got: dest.len(),
            });
        }
        if load_base.checked_add(u64::from(self.image_size)).is_none() {
            return Err(PeError::LoadBaseOverflow {
                load_base,
                image_size: self.image_size,
            });
        }
        let relocate = load_base != self.preferred_base;
        if relocate {
            if !self.may_move() {
                return Err(PeError::NotRelocatable {
                    preferred_base: self.preferred_base,
                    load_base,
                });
            }
            self.walk_relocations(file, |kind, rva| self.fixup_width(kind, rva).map(|_| ()))?;
        }

        dest.fill(0);
        let headers = u32_to_usize(self.headers_size);
        copy(file, 0, dest, 0, headers)?;
        for s in &self.sections {
            copy(
                file,
                u32_to_usize(s.raw_offset),
                dest,
                u32_to_usize(s.rva),
                u32_to_usize(s.file_len()),
            )?;
        }

        if relocate {
            let delta = load_base.wrapping_sub(self.preferred_base);
            self.walk_relocations(file, |kind, rva| {
                let Some(width) = self.fixup_width(kind, rva)? else {
                    return Ok(());
                };
                let out = PeError::RelocationOutOfImage {
                    rva,
                    width,
                    image_size: self.image_size,
                };
                let start = usize::try_from(rva).map_err(|_| out)?;
                let field = dest.get_mut(start..start + usize::from(width)).ok_or(out)?;
                if width == 8 {
                    let v = u64::from_le_bytes(field.try_into().map_err(|_| out)?);
                    field.copy_from_slice(&v.wrapping_add(delta).to_le_bytes());
                } else {
                    // HIGHLOW adds the low 32 bits of the delta, wrapping.
                    let v = u32::from_le_bytes(field.try_into().map_err(|_| out)?);
                    field.copy_from_slice(&v.wrapping_add(delta as u32).to_le_bytes());
                }
                Ok(())
            })?;
        }

        // EDK2 does the same: code reading its own header sees where it runs.
        let base_field = dest
            .get_mut(self.image_base_offset..self.image_base_offset + 8)
            .ok_or(truncated("ImageBase", self.image_base_offset, 8, file))?;
        base_field.copy_from_slice(&load_base.to_le_bytes());
        Ok(())
    }

    /// `SizeOfImage`: bytes the loaded image occupies.
    pub fn image_size(&self) -> u32 {
        self.image_size
    }

    /// `SizeOfHeaders`: bytes of headers copied to the start of the image.
    pub fn headers_size(&self) -> u32 {
        self.headers_size
    }

    /// `AddressOfEntryPoint`, relative to the load address.
    pub fn entry_rva(&self) -> u32 {
        self.entry_rva
    }

    /// `ImageBase`: the address the image was linked for.
    pub fn preferred_base(&self) -> u64 {
        self.preferred_base
    }

    /// `Subsystem` (see `SUBSYSTEM_EFI_*`); not checked by `parse`.
    pub fn subsystem(&self) -> u16 {
        self.subsystem
    }

    /// COFF machine type (`MACHINE_*`).
    pub fn machine(&self) -> u16 {
        self.machine
    }

    /// COFF `Characteristics` (`FILE_*`).
    pub fn characteristics(&self) -> u16 {
        self.characteristics
    }

    /// `DllCharacteristics` (`DLL_*`).
    pub fn dll_characteristics(&self) -> u16 {
        self.dll_characteristics
    }

    /// The image declares `IMAGE_DLLCHARACTERISTICS_NX_COMPAT`.
    pub fn nx_compat(&self) -> bool {
        self.dll_characteristics & DLL_NX_COMPAT != 0
    }

    /// The image declares `IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE`.
    pub fn dynamic_base(&self) -> bool {
        self.dll_characteristics & DLL_DYNAMIC_BASE != 0
    }

    /// `SectionAlignment`.
    pub fn section_alignment(&self) -> u32 {
        self.section_alignment
    }

    /// `FileAlignment`.
    pub fn file_alignment(&self) -> u32 {
        self.file_alignment
    }

    /// The validated section table, in file order.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// The first section called `name` (e.g. `".linux"`).
    pub fn find_section(&self, name: &str) -> Option<&Section> {
        let wanted = name.as_bytes();
        if wanted.len() > 8 {
            return None;
        }
        self.sections.iter().find(|s| {
            let len = s.name.iter().position(|&b| b == 0).unwrap_or(8);
            s.name.get(..len) == Some(wanted)
        })
    }

    /// The file bytes of the first section called `name` — for UKIs
    /// `.linux`, `.initrd`, `.cmdline`, `.osrel`, `.uname` — without the
    /// file-alignment padding. `file` is the parsed file; `None` if there is
    /// no such section or `file` is shorter than the section claims.
    pub fn section_by_name<'f>(&self, file: &'f [u8], name: &str) -> Option<&'f [u8]> {
        self.find_section(name)?.data(file)
    }

    /// Data directory `index`; `None` beyond `NumberOfRvaAndSizes`. Only the
    /// security, base relocation and debug directories are validated.
    pub fn data_directory(&self, index: usize) -> Option<DataDir> {
        if index < self.dir_count {
            self.dirs.get(index).copied()
        } else {
            None
        }
    }

    /// The base relocation directory if present and non-empty (within the
    /// image and backed by the file).
    pub fn base_relocation_directory(&self) -> Option<DataDir> {
        self.data_directory(DIR_BASERELOC).filter(|d| d.size != 0)
    }

    /// The debug directory if present and non-empty (within the image).
    pub fn debug_directory(&self) -> Option<DataDir> {
        self.data_directory(DIR_DEBUG).filter(|d| d.size != 0)
    }

    /// The certificate table directory if present and non-empty; its `rva`
    /// is a file offset, validated to lie within the file.
    pub fn security_directory(&self) -> Option<DataDir> {
        self.data_directory(DIR_SECURITY).filter(|d| d.size != 0)
    }

    /// The certificate table's bytes in `file` (Authenticode signatures).
    pub fn certificate_table<'f>(&self, file: &'f [u8]) -> Option<&'f [u8]> {
        let d = self.security_directory()?;
        let start = u32_to_usize(d.rva);
        file.get(start..start.checked_add(u32_to_usize(d.size))?)
    }

    /// The image has a non-empty base relocation table.
    pub fn relocations_present(&self) -> bool {
        self.base_relocation_directory().is_some()
    }

    /// The image carries relocation information: a non-empty base
    /// relocation table and no `IMAGE_FILE_RELOCS_STRIPPED`.
    pub fn is_relocatable(&self) -> bool {
        self.relocations_present() && self.may_move()
    }

    /// [`PeImage::load`] accepts another base: the image is not marked
    /// `IMAGE_FILE_RELOCS_STRIPPED` (EDK2's rule). True also for images with
    /// no relocation table, which are then assumed position-independent.
    pub fn may_move(&self) -> bool {
        self.characteristics & FILE_RELOCS_STRIPPED == 0
    }

    /// Memory ranges of the non-empty sections and their requested access,
    /// in section table order, for mapping the loaded image W^X. Ranges
    /// never overlap, but with `SectionAlignment` below the page size two
    /// ranges can share a page; the mapper must then merge permissions.
    pub fn section_permissions(&self) -> impl Iterator<Item = SectionPermissions> + '_ {
        self.sections
            .iter()
            .filter(|s| s.mem_size() != 0)
            .map(move |s| {
                let align = u64::from(self.section_alignment);
                let rounded = s.end().div_ceil(align) * align;
                let next = self
                    .sections
                    .iter()
                    .filter(|o| o.mem_size() != 0 && o.rva > s.rva)
                    .map(|o| u64::from(o.rva))
                    .min()
                    .unwrap_or(u64::MAX);
                let end = rounded.min(next).min(u64::from(self.image_size));
                SectionPermissions {
                    rva: s.rva,
                    // end >= s.end() > s.rva and end <= image_size (a u32).
                    size: (end - u64::from(s.rva)) as u32,
                    readable: s.readable(),
                    writable: s.writable(),
                    executable: s.executable(),
                }
            })
    }
}

/// Copies `len` bytes between validated ranges; out-of-bounds ranges (which
/// parse has excluded) become an error rather than a panic.
fn copy(src: &[u8], from: usize, dest: &mut [u8], to: usize, len: usize) -> Result<(), PeError> {
    // A section with no raw data may name any file offset: nothing is read.
    if len == 0 {
        return Ok(());
    }
    let s = src.get(from..).and_then(|s| s.get(..len)).ok_or(truncated(
        "section data",
        from,
        len,
        src,
    ))?;
    let got = dest.len();
    let d =
        dest.get_mut(to..)
            .and_then(|d| d.get_mut(..len))
            .ok_or(PeError::DestinationTooSmall {
                needed: (to + len) as u32,
                got,
            })?;
    d.copy_from_slice(s);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn section(name: &[u8], virtual_size: u32, raw_size: u32) -> Section {
        let mut n = [0u8; 8];
        n[..name.len()].copy_from_slice(name);
        Section {
            name: n,
            rva: 0x1000,
            virtual_size,
            raw_offset: 4,
            raw_size,
            characteristics: SCN_MEM_READ | SCN_MEM_EXECUTE,
        }
    }

    #[test]
    fn section_names_display_escaped() {
        assert_eq!(SectionName(*b".text\0\0\0").to_string(), ".text");
        assert_eq!(SectionName(*b"12345678").to_string(), "12345678");
        assert_eq!(
            SectionName(*b"a\x01\xff b\0\0\0").to_string(),
            "a\\x01\\xff\\x20b"
        );
        assert_eq!(section(b".osrel", 1, 1).name_str(), Some(".osrel"));
        assert_eq!(section(b"\xff", 1, 1).name_str(), None);
    }

    #[test]
    fn section_sizes_and_data() {
        let file = [0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9];
        // Raw padding beyond VirtualSize is not part of the data.
        let s = section(b"a", 3, 6);
        assert_eq!((s.mem_size(), s.file_len()), (3, 3));
        assert_eq!(s.data(&file), Some(&file[4..7]));
        // VirtualSize 0 means the raw size.
        let s = section(b"a", 0, 6);
        assert_eq!((s.mem_size(), s.file_len()), (6, 6));
        assert_eq!(s.data(&file), Some(&file[4..10]));
        // Bss tail: more memory than file.
        let s = section(b"a", 0x100, 2);
        assert_eq!((s.mem_size(), s.file_len()), (0x100, 2));
        // Out of the given file: None, not a panic.
        assert_eq!(section(b"a", 8, 8).data(&file), None);
        let s = section(b"a", 1, 1);
        assert!(s.readable() && s.executable() && !s.writable());
    }
}
