//! QEMU's firmware configuration device ("fw_cfg"), host-testable parts.
//!
//! fw_cfg is how QEMU hands configuration to guest firmware: a 16-bit
//! *selector* chooses an item, whose bytes are then read from a data port or,
//! much faster, copied into guest RAM by the DMA interface. A few items have
//! fixed selectors ([`SIGNATURE`], [`ID`], the kernel/initrd items, …); all
//! others are *files* found by name in the [`FILE_DIR`] directory
//! (see [`dir`]). The files Ember cares about are:
//!
//! * `etc/e820` — QEMU's memory map ([`e820`]);
//! * `bootorder` — the `bootindex=` order as OpenFirmware paths ([`bootorder`]);
//! * `etc/table-loader` — a script that tells firmware how to place, link and
//!   checksum the ACPI tables QEMU generated ([`loader`]).
//!
//! This crate only understands the bytes. The port I/O and DMA access live
//! in the firmware; [`dma`] gives it the register layout and descriptor
//! format. Everything read from fw_cfg is treated as hostile: parsers are
//! bounded, use checked arithmetic, and report typed errors.
//!
//! Facts come from QEMU's `docs/specs/fw_cfg.rst`,
//! `include/standard-headers/linux/qemu_fw_cfg.h` and
//! `hw/acpi/bios-linker-loader.c`; the test fixtures under `testdata/` were
//! read out of QEMU 7.2 (q35, pc and microvm machines) through its qtest
//! port-I/O interface.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod bootorder;
pub mod dir;
pub mod dma;
pub mod e820;
pub mod loader;

use core::fmt;

pub use bootorder::{
    parse_bootorder, parse_bootorder_bytes, BootOrder, BootPath, BootTarget, Location, PciPath,
};
pub use dir::{DirError, Directory, FileEntry, FwCfgFile};
pub use dma::DmaAccess;
pub use e820::{parse_e820, E820Entry, E820Error};
pub use loader::{run_loader, Blob, HostError, Loaded, LoaderError, LoaderHost, Zone};

/// x86 I/O port of the 16-bit selector register (little-endian).
pub const PORT_SELECTOR: u16 = 0x510;
/// x86 I/O port of the 8-bit data register (one greater than the selector).
pub const PORT_DATA: u16 = 0x511;
/// x86 I/O port of the 64-bit big-endian DMA address register (its most
/// significant half; the least significant half is at [`PORT_DMA_LOW`]).
pub const PORT_DMA: u16 = 0x514;
/// Least significant half of the DMA address register; writing it starts
/// the transfer, so a 32-bit descriptor address needs only this write.
pub const PORT_DMA_LOW: u16 = 0x518;

/// Selector: the 4 bytes `"QEMU"` when the device is present.
pub const SIGNATURE: u16 = 0x00;
/// Selector: feature bitmap, a little-endian u32 ([`ID_TRADITIONAL`], [`ID_DMA`]).
pub const ID: u16 = 0x01;
/// Selector: the 16-byte VM UUID.
pub const UUID: u16 = 0x02;
/// Selector: RAM size (legacy; `etc/e820` is authoritative).
pub const RAM_SIZE: u16 = 0x03;
/// Selector: boot CPU count, little-endian u16.
pub const NB_CPUS: u16 = 0x05;
/// Selector: load address QEMU chose for the `-kernel` protected-mode part.
pub const KERNEL_ADDR: u16 = 0x07;
/// Selector: size of the `-kernel` protected-mode part, little-endian u32.
pub const KERNEL_SIZE: u16 = 0x08;
/// Selector: address QEMU chose for the command line (legacy).
pub const KERNEL_CMDLINE: u16 = 0x09;
/// Selector: address QEMU chose for the initrd.
pub const INITRD_ADDR: u16 = 0x0a;
/// Selector: initrd size, little-endian u32.
pub const INITRD_SIZE: u16 = 0x0b;
/// Selector: legacy `-boot` device letter.
pub const BOOT_DEVICE: u16 = 0x0c;
/// Selector: NUMA topology (legacy format).
pub const NUMA: u16 = 0x0d;
/// Selector: whether `-boot menu=on` was given.
pub const BOOT_MENU: u16 = 0x0e;
/// Selector: maximum CPU count (including hot-pluggable), little-endian u16.
pub const MAX_CPUS: u16 = 0x0f;
/// Selector: kernel entry point (legacy).
pub const KERNEL_ENTRY: u16 = 0x10;
/// Selector: the `-kernel` protected-mode bytes.
pub const KERNEL_DATA: u16 = 0x11;
/// Selector: the `-initrd` bytes.
pub const INITRD_DATA: u16 = 0x12;
/// Selector: address QEMU chose for the command line.
pub const CMDLINE_ADDR: u16 = 0x13;
/// Selector: command-line length including its NUL, little-endian u32.
pub const CMDLINE_SIZE: u16 = 0x14;
/// Selector: the `-append` command line, NUL-terminated.
pub const CMDLINE_DATA: u16 = 0x15;
/// Selector: address QEMU chose for the real-mode setup code.
pub const SETUP_ADDR: u16 = 0x16;
/// Selector: size of the real-mode setup code (boot sector + setup sectors).
pub const SETUP_SIZE: u16 = 0x17;
/// Selector: the real-mode setup bytes (starts with the boot sector).
pub const SETUP_DATA: u16 = 0x18;
/// Selector: the file directory (see [`dir`]).
pub const FILE_DIR: u16 = 0x19;
/// First selector used for named files.
pub const FILE_FIRST: u16 = 0x20;

/// [`ID`] bit: the port I/O interface. Always set.
pub const ID_TRADITIONAL: u32 = 1 << 0;
/// [`ID`] bit: the DMA interface at [`PORT_DMA`] exists.
pub const ID_DMA: u32 = 1 << 1;

/// The [`SIGNATURE`] item's contents.
pub const SIGNATURE_BYTES: [u8; 4] = *b"QEMU";
/// What a 64-bit read of the DMA address register returns when DMA exists
/// (`"QEMU CFG"` read big-endian).
pub const DMA_SIGNATURE: u64 = 0x5145_4d55_2043_4647;

/// Size of a file-name field in the directory and the loader script,
/// including the terminating NUL.
pub const FILE_NAME_SIZE: usize = 56;

/// A fw_cfg file name as used by the loader: 1..=55 bytes of UTF-8 with no
/// NUL, stored inline so errors and blobs need no allocation for it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileName {
    bytes: [u8; FILE_NAME_SIZE],
    len: u8,
}

/// Why a 56-byte name field is not a usable file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    /// No NUL within the 56 bytes.
    Unterminated,
    /// The name is empty.
    Empty,
    /// The bytes before the NUL are not UTF-8.
    NotUtf8,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameError::Unterminated => "no NUL terminator within 56 bytes",
            NameError::Empty => "empty name",
            NameError::NotUtf8 => "name is not UTF-8",
        })
    }
}

impl FileName {
    /// A name from a string: `None` if it is empty, longer than 55 bytes
    /// (no room for the NUL) or contains a NUL.
    pub fn new(name: &str) -> Option<Self> {
        let b = name.as_bytes();
        if b.is_empty() || b.len() >= FILE_NAME_SIZE || b.contains(&0) {
            return None;
        }
        let mut bytes = [0u8; FILE_NAME_SIZE];
        bytes[..b.len()].copy_from_slice(b);
        Some(FileName {
            bytes,
            len: b.len() as u8,
        })
    }

    /// Decode a NUL-terminated 56-byte name field. QEMU always terminates
    /// (it copies at most 55 bytes), so a missing NUL means corruption.
    pub fn from_field(field: &[u8; FILE_NAME_SIZE]) -> Result<Self, NameError> {
        let len = field
            .iter()
            .position(|&b| b == 0)
            .ok_or(NameError::Unterminated)?;
        if len == 0 {
            return Err(NameError::Empty);
        }
        core::str::from_utf8(&field[..len]).map_err(|_| NameError::NotUtf8)?;
        let mut bytes = [0u8; FILE_NAME_SIZE];
        bytes[..len].copy_from_slice(&field[..len]);
        Ok(FileName {
            bytes,
            len: len as u8,
        })
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        // Both constructors only accept UTF-8, so this never falls back.
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// The name's bytes (no NUL).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The NUL-padded 56-byte field form.
    pub fn to_field(&self) -> [u8; FILE_NAME_SIZE] {
        self.bytes
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests;
