//! On-disk PE/COFF structures (PE Format specification, "MS-DOS Stub",
//! "COFF File Header", "Optional Header", "Section Table", ".reloc").
//! All fields are little-endian and unaligned so they can be read from any
//! file offset.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// The MS-DOS header at file offset 0; only `e_magic` and `e_lfanew` matter.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct DosHeader {
    pub e_magic: U16,
    pub e_cblp: U16,
    pub e_cp: U16,
    pub e_crlc: U16,
    pub e_cparhdr: U16,
    pub e_minalloc: U16,
    pub e_maxalloc: U16,
    pub e_ss: U16,
    pub e_sp: U16,
    pub e_csum: U16,
    pub e_ip: U16,
    pub e_cs: U16,
    pub e_lfarlc: U16,
    pub e_ovno: U16,
    pub e_res: [U16; 4],
    pub e_oemid: U16,
    pub e_oeminfo: U16,
    pub e_res2: [U16; 10],
    /// File offset of the `PE\0\0` signature.
    pub e_lfanew: U32,
}
const _: () = assert!(size_of::<DosHeader>() == 64);

/// `PE\0\0` followed by the COFF file header.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct PeHeader {
    pub signature: [u8; 4],
    pub machine: U16,
    pub number_of_sections: U16,
    pub time_date_stamp: U32,
    pub pointer_to_symbol_table: U32,
    pub number_of_symbols: U32,
    pub size_of_optional_header: U16,
    pub characteristics: U16,
}
const _: () = assert!(size_of::<PeHeader>() == 24);

/// The fixed part of the PE32+ optional header; data directories follow.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct OptionalHeader64 {
    pub magic: U16,
    pub major_linker_version: u8,
    pub minor_linker_version: u8,
    pub size_of_code: U32,
    pub size_of_initialized_data: U32,
    pub size_of_uninitialized_data: U32,
    pub address_of_entry_point: U32,
    pub base_of_code: U32,
    pub image_base: U64,
    pub section_alignment: U32,
    pub file_alignment: U32,
    pub major_operating_system_version: U16,
    pub minor_operating_system_version: U16,
    pub major_image_version: U16,
    pub minor_image_version: U16,
    pub major_subsystem_version: U16,
    pub minor_subsystem_version: U16,
    pub win32_version_value: U32,
    pub size_of_image: U32,
    pub size_of_headers: U32,
    pub check_sum: U32,
    pub subsystem: U16,
    pub dll_characteristics: U16,
    pub size_of_stack_reserve: U64,
    pub size_of_stack_commit: U64,
    pub size_of_heap_reserve: U64,
    pub size_of_heap_commit: U64,
    pub loader_flags: U32,
    pub number_of_rva_and_sizes: U32,
}
const _: () = assert!(size_of::<OptionalHeader64>() == 112);

/// One optional-header data directory entry.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct DataDirectory {
    pub virtual_address: U32,
    pub size: U32,
}
const _: () = assert!(size_of::<DataDirectory>() == 8);

/// One section table entry.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct SectionHeader {
    pub name: [u8; 8],
    pub virtual_size: U32,
    pub virtual_address: U32,
    pub size_of_raw_data: U32,
    pub pointer_to_raw_data: U32,
    pub pointer_to_relocations: U32,
    pub pointer_to_linenumbers: U32,
    pub number_of_relocations: U16,
    pub number_of_linenumbers: U16,
    pub characteristics: U32,
}
const _: () = assert!(size_of::<SectionHeader>() == 40);

/// Header of one base relocation block; `u16` entries follow.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RelocBlockHeader {
    pub page_rva: U32,
    pub block_size: U32,
}
const _: () = assert!(size_of::<RelocBlockHeader>() == 8);
