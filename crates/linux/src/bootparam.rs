//! The x86 boot protocol's on-memory structures: the setup header found at
//! offset 0x1f1 of a bzImage and the 4 KiB "zero page" (`struct
//! boot_params`) handed to the kernel. Layouts follow
//! `Documentation/arch/x86/boot.rst` and `zero-page.rst`; the offsets are
//! asserted at compile time below.

use core::mem::{offset_of, size_of};

use ember_mem::E820Entry;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// File offset of the setup header within a bzImage (and within the zero page).
pub const SETUP_HEADER_OFFSET: usize = 0x1f1;

/// Number of `e820_table` slots in the zero page.
pub const E820_MAX_ENTRIES_ZEROPAGE: usize = 128;

/// The real-mode kernel header (boot protocol 2.15 layout; field names as in
/// boot.rst).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct SetupHeader {
    /// Size of the setup code in 512-byte sectors (0 means 4).
    pub setup_sects: u8,
    /// Nonzero: mount root read-only (deprecated).
    pub root_flags: U16,
    /// Size of the protected-mode code in 16-byte paragraphs.
    pub syssize: U32,
    /// Obsolete.
    pub ram_size: U16,
    /// Video mode control (0xffff = normal).
    pub vid_mode: U16,
    /// Default root device number (deprecated).
    pub root_dev: U16,
    /// 0xAA55 boot-sector signature.
    pub boot_flag: U16,
    /// x86 short jump; its second byte gives the header's length.
    pub jump: U16,
    /// Magic "HdrS".
    pub header: U32,
    /// Boot protocol version, major in the high byte.
    pub version: U16,
    /// Real-mode boot-loader hook.
    pub realmode_swtch: U32,
    /// Obsolete load-low segment.
    pub start_sys_seg: U16,
    /// Offset of the version string, minus 0x200.
    pub kernel_version: U16,
    /// Boot-loader identifier (written by the loader).
    pub type_of_loader: u8,
    /// Boot protocol option flags (`LOADED_HIGH`, `CAN_USE_HEAP`, ...).
    pub loadflags: u8,
    /// Move-to-high-memory size (obsolete hook).
    pub setup_move_size: U16,
    /// 32-bit entry point address.
    pub code32_start: U32,
    /// Initrd address, low 32 bits (written by the loader).
    pub ramdisk_image: U32,
    /// Initrd size, low 32 bits (written by the loader).
    pub ramdisk_size: U32,
    /// Obsolete.
    pub bootsect_kludge: U32,
    /// End of the setup stack/heap, relative to the setup start, minus 0x200.
    pub heap_end_ptr: U16,
    /// Extended boot-loader version.
    pub ext_loader_ver: u8,
    /// Extended boot-loader type.
    pub ext_loader_type: u8,
    /// Command line address, low 32 bits (written by the loader).
    pub cmd_line_ptr: U32,
    /// Highest address (inclusive) the initrd may occupy.
    pub initrd_addr_max: U32,
    /// Physical alignment required for a relocated kernel.
    pub kernel_alignment: U32,
    /// Nonzero if the kernel can be loaded at any aligned address.
    pub relocatable_kernel: u8,
    /// Minimum alignment, as a power of two.
    pub min_alignment: u8,
    /// Extended capability flags (`XLF_*`).
    pub xloadflags: U16,
    /// Maximum command-line length, excluding the NUL.
    pub cmdline_size: U32,
    /// Paravirtualised platform type.
    pub hardware_subarch: U32,
    /// Data for `hardware_subarch`.
    pub hardware_subarch_data: U64,
    /// Offset of the compressed kernel payload.
    pub payload_offset: U32,
    /// Length of the compressed kernel payload.
    pub payload_length: U32,
    /// Physical address of a linked list of `setup_data` records.
    pub setup_data: U64,
    /// Preferred load address.
    pub pref_address: U64,
    /// Linear memory the kernel needs from its load address until it can read the memory map.
    pub init_size: U32,
    /// EFI handover entry point offset.
    pub handover_offset: U32,
    /// Offset of the `kernel_info` structure.
    pub kernel_info_offset: U32,
}

/// End of the setup header (exclusive) as a file/zero-page offset.
pub const SETUP_HEADER_END: usize = SETUP_HEADER_OFFSET + size_of::<SetupHeader>();

const _: () = assert!(size_of::<SetupHeader>() == 0x26c - 0x1f1);

// Offsets from the boot.rst "real-mode kernel header" table.
macro_rules! hdr_at {
    ($field:ident, $off:expr) => {
        const _: () = assert!(SETUP_HEADER_OFFSET + offset_of!(SetupHeader, $field) == $off);
    };
}
hdr_at!(setup_sects, 0x1f1);
hdr_at!(root_flags, 0x1f2);
hdr_at!(syssize, 0x1f4);
hdr_at!(ram_size, 0x1f8);
hdr_at!(vid_mode, 0x1fa);
hdr_at!(root_dev, 0x1fc);
hdr_at!(boot_flag, 0x1fe);
hdr_at!(jump, 0x200);
hdr_at!(header, 0x202);
hdr_at!(version, 0x206);
hdr_at!(realmode_swtch, 0x208);
hdr_at!(start_sys_seg, 0x20c);
hdr_at!(kernel_version, 0x20e);
hdr_at!(type_of_loader, 0x210);
hdr_at!(loadflags, 0x211);
hdr_at!(setup_move_size, 0x212);
hdr_at!(code32_start, 0x214);
hdr_at!(ramdisk_image, 0x218);
hdr_at!(ramdisk_size, 0x21c);
hdr_at!(bootsect_kludge, 0x220);
hdr_at!(heap_end_ptr, 0x224);
hdr_at!(ext_loader_ver, 0x226);
hdr_at!(ext_loader_type, 0x227);
hdr_at!(cmd_line_ptr, 0x228);
hdr_at!(initrd_addr_max, 0x22c);
hdr_at!(kernel_alignment, 0x230);
hdr_at!(relocatable_kernel, 0x234);
hdr_at!(min_alignment, 0x235);
hdr_at!(xloadflags, 0x236);
hdr_at!(cmdline_size, 0x238);
hdr_at!(hardware_subarch, 0x23c);
hdr_at!(hardware_subarch_data, 0x240);
hdr_at!(payload_offset, 0x248);
hdr_at!(payload_length, 0x24c);
hdr_at!(setup_data, 0x250);
hdr_at!(pref_address, 0x258);
hdr_at!(init_size, 0x260);
hdr_at!(handover_offset, 0x264);
hdr_at!(kernel_info_offset, 0x268);

/// The zero page (`struct boot_params`). Areas Ember never fills (video,
/// APM, EDD, EFI, ...) are kept as opaque byte arrays; they stay zero.
/// Field names and meanings are those of zero-page.rst.
#[derive(Clone, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct BootParams {
    pub screen_info: [u8; 0x40],
    pub apm_bios_info: [u8; 0x14],
    pub _pad2: [u8; 4],
    pub tboot_addr: U64,
    pub ist_info: [u8; 0x10],
    pub acpi_rsdp_addr: U64,
    pub _pad3: [u8; 8],
    pub hd0_info: [u8; 0x10],
    pub hd1_info: [u8; 0x10],
    pub sys_desc_table: [u8; 0x10],
    pub olpc_ofw_header: [u8; 0x10],
    pub ext_ramdisk_image: U32,
    pub ext_ramdisk_size: U32,
    pub ext_cmd_line_ptr: U32,
    pub _pad4: [u8; 0x70],
    pub cc_blob_address: U32,
    pub edid_info: [u8; 0x80],
    pub efi_info: [u8; 0x20],
    pub alt_mem_k: U32,
    pub scratch: U32,
    pub e820_entries: u8,
    pub eddbuf_entries: u8,
    pub edd_mbr_sig_buf_entries: u8,
    pub kbd_status: u8,
    pub secure_boot: u8,
    pub _pad5: [u8; 2],
    pub sentinel: u8,
    pub _pad6: [u8; 1],
    pub hdr: SetupHeader,
    pub _pad7: [u8; 0x290 - SETUP_HEADER_END],
    pub edd_mbr_sig_buffer: [U32; 16],
    pub e820_table: [E820Entry; E820_MAX_ENTRIES_ZEROPAGE],
    pub _pad8: [u8; 0x30],
    pub eddbuf: [u8; 0x1ec],
    pub _pad9: [u8; 0x114],
}

const _: () = assert!(size_of::<BootParams>() == 4096);

// Offsets from the zero-page.rst table.
macro_rules! bp_at {
    ($field:ident, $off:expr) => {
        const _: () = assert!(offset_of!(BootParams, $field) == $off);
    };
}
bp_at!(screen_info, 0x000);
bp_at!(apm_bios_info, 0x040);
bp_at!(tboot_addr, 0x058);
bp_at!(ist_info, 0x060);
bp_at!(acpi_rsdp_addr, 0x070);
bp_at!(hd0_info, 0x080);
bp_at!(hd1_info, 0x090);
bp_at!(sys_desc_table, 0x0a0);
bp_at!(olpc_ofw_header, 0x0b0);
bp_at!(ext_ramdisk_image, 0x0c0);
bp_at!(ext_ramdisk_size, 0x0c4);
bp_at!(ext_cmd_line_ptr, 0x0c8);
bp_at!(cc_blob_address, 0x13c);
bp_at!(edid_info, 0x140);
bp_at!(efi_info, 0x1c0);
bp_at!(alt_mem_k, 0x1e0);
bp_at!(scratch, 0x1e4);
bp_at!(e820_entries, 0x1e8);
bp_at!(eddbuf_entries, 0x1e9);
bp_at!(edd_mbr_sig_buf_entries, 0x1ea);
bp_at!(kbd_status, 0x1eb);
bp_at!(secure_boot, 0x1ec);
bp_at!(sentinel, 0x1ef);
bp_at!(hdr, 0x1f1);
bp_at!(edd_mbr_sig_buffer, 0x290);
bp_at!(e820_table, 0x2d0);
bp_at!(eddbuf, 0xd00);

impl BootParams {
    /// An all-zero zero page.
    pub fn zeroed() -> Self {
        <Self as zerocopy::FromZeros>::new_zeroed()
    }

    /// The 4096 bytes to place in guest memory.
    pub fn as_bytes(&self) -> &[u8] {
        IntoBytes::as_bytes(self)
    }
}
