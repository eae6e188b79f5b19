//! Firmware memory-map wire formats: the BIOS E820 entry (as embedded in
//! Linux's `boot_params`) and the PVH `hvm_memmap_table_entry`.

use core::mem::size_of;

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// E820 type 1: usable RAM.
pub const E820_RAM: u32 = 1;
/// E820 type 2: reserved, not usable by the OS.
pub const E820_RESERVED: u32 = 2;
/// E820 type 3: ACPI tables, reclaimable once the OS has read them.
pub const E820_ACPI: u32 = 3;
/// E820 type 4: ACPI non-volatile storage, must be preserved across sleep.
pub const E820_NVS: u32 = 4;
/// E820 type 5: memory found to be faulty.
pub const E820_UNUSABLE: u32 = 5;

/// One E820 entry, 20 bytes with no padding, exactly as Linux's
/// `struct boot_e820_entry` in the zero page's `e820_table`.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct E820Entry {
    /// First byte of the range.
    pub addr: U64,
    /// Length of the range in bytes.
    pub size: U64,
    /// One of the `E820_*` type codes.
    pub kind: U32,
}

const _: () = assert!(size_of::<E820Entry>() == 20);

impl E820Entry {
    /// Builds an entry from native integers.
    pub fn new(addr: u64, size: u64, kind: u32) -> Self {
        Self {
            addr: U64::new(addr),
            size: U64::new(size),
            kind: U32::new(kind),
        }
    }
}

/// One PVH memory-map entry (`struct hvm_memmap_table_entry` from Xen's
/// `arch-x86/hvm/start_info.h`, also used by QEMU/Firecracker PVH boot).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct HvmMemmapEntry {
    /// First byte of the range.
    pub addr: U64,
    /// Length of the range in bytes.
    pub size: U64,
    /// E820 type code (same numbering as [`E820Entry::kind`]).
    pub kind: U32,
    /// Must be zero; ignored.
    pub reserved: U32,
}

const _: () = assert!(size_of::<HvmMemmapEntry>() == 24);

impl HvmMemmapEntry {
    /// Builds an entry from native integers.
    pub fn new(addr: u64, size: u64, kind: u32) -> Self {
        Self {
            addr: U64::new(addr),
            size: U64::new(size),
            kind: U32::new(kind),
            reserved: U32::new(0),
        }
    }
}
