//! SMBIOS for Ember (DMTF DSP0134, SMBIOS 3.x).
//!
//! Two jobs, matching the two ways a VM gets its SMBIOS data:
//!
//! * **The VMM provides tables** (QEMU's fw_cfg `etc/smbios/smbios-anchor` and
//!   `etc/smbios/smbios-tables`): the firmware places the table in memory and
//!   calls [`fixup_anchor`] to point the entry point at it and redo the
//!   checksums.
//! * **The VMM provides nothing** (PVH without fw_cfg): [`build`] makes a
//!   small but complete SMBIOS 3.3 table (types 0, 1, 3, 4, 16, 17, 19, 32,
//!   127) from a [`Platform`] description, and [`Tables::entry_point_30`]
//!   makes the matching 64-bit entry point.
//!
//! [`Structures`] walks any structure table with hard bounds; it is what the
//! tests and the fuzz target use to check the two paths above.
//!
//! Everything read is treated as hostile: wire structures are `zerocopy`
//! types, arithmetic is checked, and problems come back as [`Error`].
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod build;
mod entry;
mod types;
mod walk;

#[cfg(test)]
mod tests;

use core::fmt;

pub use build::{build, Cpu, Platform, Tables, MAX_MEMORY_DEVICES, MAX_STRING_BYTES};
pub use entry::{
    fixup_anchor, Anchor, EntryPoint21, EntryPoint30, Header, ANCHOR_21, ANCHOR_30, ANCHOR_DMI,
};
pub use types::*;
pub use walk::{Strings, Structure, Structures};
/// The wire types' fields are `zerocopy` integers; re-exported so users
/// (the fuzz target, the firmware) decode them with the same version.
pub use zerocopy;

/// SMBIOS version the built tables follow (3.3.0): every structure
/// [`build`] emits has exactly the length that version defines.
pub const SMBIOS_MAJOR: u8 = 3;
/// See [`SMBIOS_MAJOR`].
pub const SMBIOS_MINOR: u8 = 3;
/// See [`SMBIOS_MAJOR`].
pub const SMBIOS_DOCREV: u8 = 0;

/// The byte that makes `bytes` sum to zero (mod 256) when stored in a
/// checksum field that currently holds zero.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |a, &b| a.wrapping_add(b))
        .wrapping_neg()
}

/// Whether `bytes` sum to zero (mod 256), the rule for every SMBIOS checksum.
pub fn checksum_ok(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b)) == 0
}

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    // --- Entry points ([`fixup_anchor`]).
    /// The buffer is too short for the entry point it starts with (or for
    /// any entry point at all).
    AnchorTooShort {
        /// Bytes available.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// Neither `_SM_` nor `_SM3_` at offset 0.
    UnknownAnchor,
    /// A 2.1 entry point without `_DMI_` at offset 10h.
    BadIntermediateAnchor,
    /// The entry point's own length field is impossible.
    BadEntryPointLength {
        /// Which entry point.
        kind: Anchor,
        /// The length field.
        length: u8,
        /// Bytes actually available.
        available: usize,
    },
    /// The entry point's table length (2.1) or maximum size (3.0) is zero or
    /// larger than the table the firmware placed, so the OS would read past it.
    TableLengthMismatch {
        /// Which entry point.
        kind: Anchor,
        /// Length the entry point declares.
        declared: u32,
        /// Length of the table placed in memory.
        placed: u32,
    },
    /// The table does not fit the entry point's address field: above 4 GiB
    /// for 2.1, past the end of the address space for 3.0.
    TableAddressTooHigh {
        /// Which entry point.
        kind: Anchor,
        /// Where the table was placed.
        addr: u64,
        /// Its length.
        len: u32,
    },

    // --- Structure walking ([`Structures`]).
    /// Fewer than 4 bytes left where a structure header should start.
    TruncatedHeader {
        /// Offset of the would-be header in the table.
        offset: usize,
        /// Bytes left.
        remaining: usize,
    },
    /// A header's length field is below the 4-byte header itself.
    BadStructureLength {
        /// Offset of the structure.
        offset: usize,
        /// Its type.
        kind: u8,
        /// The length field.
        length: u8,
    },
    /// The formatted area runs past the end of the table.
    TruncatedStructure {
        /// Offset of the structure.
        offset: usize,
        /// Its type.
        kind: u8,
        /// The length field.
        length: u8,
        /// Bytes left from the structure's start.
        remaining: usize,
    },
    /// No double NUL ends the structure's string set before the table ends.
    MissingTerminator {
        /// Offset of the structure.
        offset: usize,
        /// Its type.
        kind: u8,
    },

    // --- Building ([`build`]).
    /// A caller-supplied string contains NUL, which SMBIOS strings cannot hold.
    NulInString {
        /// Which [`Platform`] or [`Cpu`] field.
        field: &'static str,
    },
    /// The BIOS release date is not `MM/DD/YYYY`.
    BadDate,
    /// No RAM ranges were given; types 16/17/19 need at least one.
    NoRam,
    /// A RAM range is empty, not KiB aligned, or out of order/overlapping.
    BadRamRange {
        /// Index in [`Platform::ram`].
        index: usize,
        /// Its start.
        start: u64,
        /// Its end (exclusive).
        end: u64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A CPU description is inconsistent.
    BadCpu {
        /// Index in [`Platform::cpus`].
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// More structures than SMBIOS handles (0..=FEFFh) can number.
    TooManyStructures {
        /// How many would have been needed.
        count: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::AnchorTooShort { len, need } => {
                write!(f, "SMBIOS entry point too short: {len} bytes, need {need}")
            }
            Error::UnknownAnchor => {
                f.write_str("SMBIOS entry point starts with neither _SM_ nor _SM3_")
            }
            Error::BadIntermediateAnchor => {
                f.write_str("SMBIOS 2.1 entry point lacks _DMI_ at offset 0x10")
            }
            Error::BadEntryPointLength {
                kind,
                length,
                available,
            } => write!(
                f,
                "{kind} entry point length field {length:#x} is invalid ({available} bytes available)"
            ),
            Error::TableLengthMismatch {
                kind,
                declared,
                placed,
            } => write!(
                f,
                "{kind} entry point declares a {declared}-byte table but {placed} bytes were placed"
            ),
            Error::TableAddressTooHigh { kind, addr, len } => write!(
                f,
                "{kind} entry point cannot address a {len}-byte table at {addr:#x}"
            ),
            Error::TruncatedHeader { offset, remaining } => write!(
                f,
                "SMBIOS structure header at offset {offset:#x} truncated: {remaining} bytes left"
            ),
            Error::BadStructureLength {
                offset,
                kind,
                length,
            } => write!(
                f,
                "SMBIOS type {kind} structure at offset {offset:#x} has length {length}, below the 4-byte header"
            ),
            Error::TruncatedStructure {
                offset,
                kind,
                length,
                remaining,
            } => write!(
                f,
                "SMBIOS type {kind} structure at offset {offset:#x} has length {length} but only {remaining} bytes remain"
            ),
            Error::MissingTerminator { offset, kind } => write!(
                f,
                "SMBIOS type {kind} structure at offset {offset:#x}: string set has no double-NUL terminator"
            ),
            Error::NulInString { field } => {
                write!(f, "SMBIOS string {field} contains a NUL byte")
            }
            Error::BadDate => f.write_str("BIOS release date is not MM/DD/YYYY"),
            Error::NoRam => f.write_str("no RAM ranges to describe in SMBIOS"),
            Error::BadRamRange {
                index,
                start,
                end,
                reason,
            } => write!(f, "RAM range {index} ({start:#x}..{end:#x}): {reason}"),
            Error::BadCpu { index, reason } => write!(f, "CPU socket {index}: {reason}"),
            Error::TooManyStructures { count } => write!(
                f,
                "{count} SMBIOS structures exceed the 0xFF00 available handles"
            ),
        }
    }
}
