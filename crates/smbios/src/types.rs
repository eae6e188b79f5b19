//! Formatted areas of the structure types Ember emits, in their SMBIOS 3.3
//! layouts (DSP0134 §7). String fields hold 1-based string numbers, 0 for
//! none. Each type is the full formatted area, header included.

use core::mem::size_of;

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::entry::Header;

/// BIOS Information.
pub const TYPE_BIOS: u8 = 0;
/// System Information.
pub const TYPE_SYSTEM: u8 = 1;
/// System Enclosure or Chassis.
pub const TYPE_CHASSIS: u8 = 3;
/// Processor Information.
pub const TYPE_PROCESSOR: u8 = 4;
/// Physical Memory Array.
pub const TYPE_MEMORY_ARRAY: u8 = 16;
/// Memory Device.
pub const TYPE_MEMORY_DEVICE: u8 = 17;
/// Memory Array Mapped Address.
pub const TYPE_MEMORY_ARRAY_MAPPED_ADDRESS: u8 = 19;
/// System Boot Information.
pub const TYPE_SYSTEM_BOOT: u8 = 32;
/// End-of-Table.
pub const TYPE_END_OF_TABLE: u8 = 127;

/// Type 0, BIOS Information (3.1+ layout, 1Ah bytes).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Type0 {
    /// Type 0 header.
    pub header: Header,
    /// BIOS vendor string.
    pub vendor: u8,
    /// BIOS version string.
    pub bios_version: u8,
    /// Real-mode segment of the BIOS image; 0 when not applicable.
    pub starting_segment: U16,
    /// Release date string, `MM/DD/YYYY`.
    pub release_date: u8,
    /// ROM size as 64 KiB * (n + 1); FFh means see `extended_rom_size`.
    pub rom_size: u8,
    /// BIOS characteristics bits (`BIOS_CHAR_*`).
    pub characteristics: U64,
    /// Extension byte 1 (`BIOS_EXT1_*`).
    pub characteristics_ext1: u8,
    /// Extension byte 2 (`BIOS_EXT2_*`).
    pub characteristics_ext2: u8,
    /// System BIOS major release; FFh if unsupported.
    pub bios_major: u8,
    /// System BIOS minor release; FFh if unsupported.
    pub bios_minor: u8,
    /// Embedded controller firmware major release; FFh if none.
    pub ec_major: u8,
    /// Embedded controller firmware minor release; FFh if none.
    pub ec_minor: u8,
    /// Bits 15:14 unit (0 MiB, 1 GiB), bits 13:0 size.
    pub extended_rom_size: U16,
}
const _: () = assert!(size_of::<Type0>() == 0x1a);

/// BIOS characteristics bit 7: PCI is supported.
pub const BIOS_CHAR_PCI: u64 = 1 << 7;
/// BIOS characteristics bit 11: BIOS is upgradeable (flash).
pub const BIOS_CHAR_UPGRADEABLE: u64 = 1 << 11;
/// BIOS characteristics bit 16: selectable boot is supported.
pub const BIOS_CHAR_SELECTABLE_BOOT: u64 = 1 << 16;
/// BIOS characteristics bit 3: "BIOS characteristics are not supported".
pub const BIOS_CHAR_NOT_SUPPORTED: u64 = 1 << 3;
/// Extension byte 1 bit 0: ACPI is supported.
pub const BIOS_EXT1_ACPI: u8 = 1 << 0;
/// Extension byte 2 bit 3: UEFI specification is supported.
pub const BIOS_EXT2_UEFI: u8 = 1 << 3;
/// Extension byte 2 bit 4: the SMBIOS table describes a virtual machine.
pub const BIOS_EXT2_VIRTUAL_MACHINE: u8 = 1 << 4;

/// Type 1, System Information (2.4+ layout, 1Bh bytes).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Type1 {
    /// Type 1 header.
    pub header: Header,
    /// Manufacturer string.
    pub manufacturer: u8,
    /// Product name string.
    pub product: u8,
    /// Version string.
    pub version: u8,
    /// Serial number string.
    pub serial: u8,
    /// UUID; the first three fields little endian (SMBIOS 2.6+ encoding).
    pub uuid: [u8; 16],
    /// Wake-up type (06h: power switch).
    pub wake_up_type: u8,
    /// SKU number string.
    pub sku: u8,
    /// Family string.
    pub family: u8,
}
const _: () = assert!(size_of::<Type1>() == 0x1b);

/// Type 3, System Enclosure (2.7+ layout) with no contained elements, so
/// the SKU string number directly follows the element count/length bytes
/// (16h bytes).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Type3 {
    /// Type 3 header.
    pub header: Header,
    /// Manufacturer string.
    pub manufacturer: u8,
    /// Chassis type; bit 7 is "lock present".
    pub chassis_type: u8,
    /// Version string.
    pub version: u8,
    /// Serial number string.
    pub serial: u8,
    /// Asset tag string.
    pub asset_tag: u8,
    /// Boot-up state (03h: safe).
    pub boot_up_state: u8,
    /// Power supply state (03h: safe).
    pub power_supply_state: u8,
    /// Thermal state (03h: safe).
    pub thermal_state: u8,
    /// Security status (03h: none).
    pub security_status: u8,
    /// OEM-defined.
    pub oem_defined: U32,
    /// Height in rack units; 0 unspecified.
    pub height: u8,
    /// Number of power cords; 0 unspecified.
    pub power_cords: u8,
    /// Number of contained element records (0 here).
    pub contained_count: u8,
    /// Size of each contained element record.
    pub contained_record_length: u8,
    /// SKU number string.
    pub sku: u8,
}
const _: () = assert!(size_of::<Type3>() == 0x16);

/// Type 4, Processor Information (3.0+ layout, 30h bytes).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Type4 {
    /// Type 4 header.
    pub header: Header,
    /// Socket designation string.
    pub socket: u8,
    /// Processor type (03h: central processor).
    pub processor_type: u8,
    /// Processor family; FEh means see `family2`.
    pub family: u8,
    /// Manufacturer string.
    pub manufacturer: u8,
    /// Processor ID (x86: CPUID 1 EAX in the low, EDX in the high dword).
    pub processor_id: U64,
    /// Version string (x86: the brand string).
    pub version: u8,
    /// Voltage; 0 is unknown.
    pub voltage: u8,
    /// External clock in MHz; 0 unknown.
    pub external_clock: U16,
    /// Maximum speed in MHz; 0 unknown.
    pub max_speed: U16,
    /// Current speed in MHz; 0 unknown.
    pub current_speed: U16,
    /// Bit 6 socket populated, bits 2:0 CPU status (1: enabled).
    pub status: u8,
    /// Processor upgrade (01h: other).
    pub upgrade: u8,
    /// L1 cache structure handle; FFFFh none.
    pub l1_cache: U16,
    /// L2 cache structure handle; FFFFh none.
    pub l2_cache: U16,
    /// L3 cache structure handle; FFFFh none.
    pub l3_cache: U16,
    /// Serial number string.
    pub serial: u8,
    /// Asset tag string.
    pub asset_tag: u8,
    /// Part number string.
    pub part_number: u8,
    /// Cores per socket, FFh if 255 or more (see `core_count2`).
    pub core_count: u8,
    /// Enabled cores, FFh if 255 or more.
    pub core_enabled: u8,
    /// Threads per socket, FFh if 255 or more.
    pub thread_count: u8,
    /// Processor characteristics (`CPU_CHAR_*`).
    pub characteristics: U16,
    /// Processor family 2.
    pub family2: U16,
    /// Cores per socket.
    pub core_count2: U16,
    /// Enabled cores per socket.
    pub core_enabled2: U16,
    /// Threads per socket.
    pub thread_count2: U16,
}
const _: () = assert!(size_of::<Type4>() == 0x30);

/// Processor characteristics bit 2: 64-bit capable.
pub const CPU_CHAR_64BIT: u16 = 1 << 2;
/// Processor characteristics bit 3: multi-core.
pub const CPU_CHAR_MULTI_CORE: u16 = 1 << 3;
/// Processor characteristics bit 4: hardware thread.
pub const CPU_CHAR_HARDWARE_THREAD: u16 = 1 << 4;

/// Type 16, Physical Memory Array (2.7+ layout, 17h bytes).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Type16 {
    /// Type 16 header.
    pub header: Header,
    /// Location (01h: other).
    pub location: u8,
    /// Use (03h: system memory).
    pub use_: u8,
    /// Memory error correction (03h: none).
    pub error_correction: u8,
    /// Maximum capacity in KiB; 8000_0000h means see the extended field.
    pub max_capacity: U32,
    /// Memory error information handle; FFFEh not provided.
    pub error_info_handle: U16,
    /// Number of memory devices (type 17) in this array.
    pub devices: U16,
    /// Maximum capacity in bytes, when `max_capacity` is 8000_0000h.
    pub extended_max_capacity: U64,
}
const _: () = assert!(size_of::<Type16>() == 0x17);

/// Type 17, Memory Device (3.3 layout, 5Ch bytes).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Type17 {
    /// Type 17 header.
    pub header: Header,
    /// Handle of the type 16 array this device belongs to.
    pub array_handle: U16,
    /// Memory error information handle; FFFEh not provided.
    pub error_info_handle: U16,
    /// Total width in bits; FFFFh unknown.
    pub total_width: U16,
    /// Data width in bits; FFFFh unknown.
    pub data_width: U16,
    /// Size: bit 15 set means KiB, else MiB; 7FFFh means see `extended_size`.
    pub size: U16,
    /// Form factor (01h: other).
    pub form_factor: u8,
    /// Device set; 0 none.
    pub device_set: u8,
    /// Device locator string.
    pub device_locator: u8,
    /// Bank locator string.
    pub bank_locator: u8,
    /// Memory type (07h: RAM).
    pub memory_type: u8,
    /// Type detail bits (bit 1: other).
    pub type_detail: U16,
    /// Speed in MT/s; 0 unknown.
    pub speed: U16,
    /// Manufacturer string.
    pub manufacturer: u8,
    /// Serial number string.
    pub serial: u8,
    /// Asset tag string.
    pub asset_tag: u8,
    /// Part number string.
    pub part_number: u8,
    /// Bits 3:0 rank; 0 unknown.
    pub attributes: u8,
    /// Size in MiB (bits 30:0) when `size` is 7FFFh.
    pub extended_size: U32,
    /// Configured speed in MT/s; 0 unknown.
    pub configured_speed: U16,
    /// Minimum voltage in mV; 0 unknown.
    pub min_voltage: U16,
    /// Maximum voltage in mV; 0 unknown.
    pub max_voltage: U16,
    /// Configured voltage in mV; 0 unknown.
    pub configured_voltage: U16,
    /// Memory technology (03h: DRAM).
    pub memory_technology: u8,
    /// Operating mode capability bits (bit 3: volatile memory).
    pub operating_mode_capability: U16,
    /// Firmware version string.
    pub firmware_version: u8,
    /// Module manufacturer ID; 0 unknown.
    pub module_manufacturer_id: U16,
    /// Module product ID; 0 unknown.
    pub module_product_id: U16,
    /// Memory subsystem controller manufacturer ID; 0 unknown.
    pub controller_manufacturer_id: U16,
    /// Memory subsystem controller product ID; 0 unknown.
    pub controller_product_id: U16,
    /// Non-volatile portion in bytes; 0 none.
    pub non_volatile_size: U64,
    /// Volatile portion in bytes.
    pub volatile_size: U64,
    /// Cache portion in bytes; 0 none.
    pub cache_size: U64,
    /// Logical size in bytes; 0 none.
    pub logical_size: U64,
    /// Speed in MT/s when `speed` is FFFFh.
    pub extended_speed: U32,
    /// Configured speed in MT/s when `configured_speed` is FFFFh.
    pub extended_configured_speed: U32,
}
const _: () = assert!(size_of::<Type17>() == 0x5c);

/// Type 17 `size`: 7FFFh means the size is in `extended_size`.
pub const MEMDEV_SIZE_EXTENDED: u16 = 0x7fff;
/// Type 17 `size` bit 15: the value is in KiB rather than MiB.
pub const MEMDEV_SIZE_KIB: u16 = 0x8000;

/// Type 19, Memory Array Mapped Address (2.7+ layout, 1Fh bytes).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Type19 {
    /// Type 19 header.
    pub header: Header,
    /// First KiB of the range; FFFF_FFFFh means see the extended fields.
    pub start: U32,
    /// Last KiB of the range (inclusive); FFFF_FFFFh with `start`.
    pub end: U32,
    /// Handle of the type 16 array.
    pub array_handle: U16,
    /// Number of devices forming a row.
    pub partition_width: u8,
    /// First byte of the range, when `start` is FFFF_FFFFh.
    pub extended_start: U64,
    /// Last byte of the range (inclusive), when `start` is FFFF_FFFFh.
    pub extended_end: U64,
}
const _: () = assert!(size_of::<Type19>() == 0x1f);

/// Type 32, System Boot Information with a one-byte status (0Bh bytes).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Type32 {
    /// Type 32 header.
    pub header: Header,
    /// Reserved, zero.
    pub reserved: [u8; 6],
    /// Boot status; 0 is "no errors detected".
    pub status: u8,
}
const _: () = assert!(size_of::<Type32>() == 0x0b);
