//! `etc/e820`: QEMU's memory map as packed little-endian 20-byte entries
//! (the same layout as the BIOS E820 call returns). QEMU lists RAM below
//! and above 4 GiB plus reserved ranges; it does not describe the PCI hole,
//! which firmware must keep out of its own map anyway.
//!
//! A trailing partial entry is an error ([`E820Error::Partial`]): QEMU
//! writes whole entries, so a ragged length means the read went wrong and
//! the map cannot be trusted.

use core::fmt;
use core::mem::size_of;
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Type 1: usable RAM.
pub const E820_RAM: u32 = 1;
/// Type 2: reserved.
pub const E820_RESERVED: u32 = 2;
/// Type 3: ACPI reclaimable.
pub const E820_ACPI: u32 = 3;
/// Type 4: ACPI NVS.
pub const E820_NVS: u32 = 4;
/// Type 5: unusable.
pub const E820_UNUSABLE: u32 = 5;

/// One `etc/e820` entry.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
pub struct E820Entry {
    /// First byte of the range.
    pub addr: U64,
    /// Length in bytes.
    pub size: U64,
    /// One of the `E820_*` codes (others may appear; callers decide).
    pub kind: U32,
}
const _: () = assert!(size_of::<E820Entry>() == 20);

impl E820Entry {
    /// Build an entry from native integers.
    pub fn new(addr: u64, size: u64, kind: u32) -> Self {
        E820Entry {
            addr: U64::new(addr),
            size: U64::new(size),
            kind: U32::new(kind),
        }
    }

    /// One past the last byte, or `None` if the range wraps past 2^64.
    pub fn end(&self) -> Option<u64> {
        self.addr.get().checked_add(self.size.get())
    }
}

/// Why `etc/e820` could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum E820Error {
    /// The length is not a multiple of 20.
    Partial {
        /// Item length.
        len: usize,
    },
}

impl fmt::Display for E820Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            E820Error::Partial { len } => write!(
                f,
                "etc/e820 is {len} bytes, not a whole number of 20-byte entries ({} left over)",
                len % size_of::<E820Entry>()
            ),
        }
    }
}

/// View `etc/e820` as its entries (in QEMU's order, unvalidated: zero-size
/// or wrapping ranges are passed through for the memory-map code to judge).
pub fn parse_e820(bytes: &[u8]) -> Result<&[E820Entry], E820Error> {
    <[E820Entry]>::ref_from_bytes(bytes).map_err(|_| E820Error::Partial { len: bytes.len() })
}
