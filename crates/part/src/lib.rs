//! Partition-table discovery for Ember: GUID Partition Tables (UEFI spec
//! chapter 5) with primary/backup fallback, and classic MBR tables.
//!
//! Everything read from the disk is treated as hostile: structures are decoded
//! with `zerocopy`, arithmetic is checked, walks are bounded, and problems are
//! reported through [`PartError`] or [`PartitionTable::warnings`] instead of
//! panics.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod gpt;
mod guid;
mod mbr;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use ember_block::{BlockDevice, BlockError};

pub use gpt::{GptError, MAX_ARRAY_BYTES, MAX_ENTRIES, MAX_ENTRY_SIZE};
pub use guid::{Guid, GuidParseError};

/// Largest block size we accept; anything bigger is almost certainly a
/// misbehaving driver and would make our buffers unreasonably large.
pub const MAX_BLOCK_SIZE: u32 = 64 * 1024;

/// Which partitioning scheme the table uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// GUID Partition Table.
    Gpt,
    /// Legacy Master Boot Record.
    Mbr,
}

/// Which GPT header/array copy the partitions were taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GptCopy {
    /// The primary header at LBA 1.
    Primary,
    /// The backup header (normally at the last LBA).
    Backup,
}

/// What a partition is for, as far as the boot path cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    /// EFI System Partition (GPT type ESP, MBR type 0xEF).
    EfiSystem,
    /// Extended Boot Loader Partition (GPT XBOOTLDR type, MBR type 0xEA).
    Xbootldr,
    /// Linux filesystem data (GPT Linux-fs type, MBR type 0x83).
    LinuxFs,
    /// Anything else.
    Other,
}

/// One usable partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// 1-based number: the GPT entry index + 1, or the MBR slot + 1.
    pub number: u32,
    /// First block of the partition.
    pub first_lba: u64,
    /// Length in blocks (never zero).
    pub num_blocks: u64,
    /// Classification of the type.
    pub kind: PartKind,
    /// GPT partition type GUID.
    pub type_guid: Option<Guid>,
    /// GPT unique partition GUID.
    pub unique_guid: Option<Guid>,
    /// GPT partition name (decoded UTF-16LE; empty for MBR).
    pub name: String,
    /// MBR partition type byte.
    pub mbr_type: Option<u8>,
    /// GPT attribute bits (0 for MBR, except bit 2 "legacy BIOS bootable"
    /// is set for MBR entries marked active).
    pub attributes: u64,
}

/// The partitions found on a disk plus anything odd noticed on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTable {
    /// GPT or MBR.
    pub scheme: Scheme,
    /// For GPT, which copy was used.
    pub gpt_copy: Option<GptCopy>,
    /// GPT disk GUID.
    pub disk_guid: Option<Guid>,
    /// Valid partitions, in table order.
    pub partitions: Vec<Partition>,
    /// Human-readable notes for the console (fallbacks, skipped entries).
    pub warnings: Vec<String>,
}

/// Why no partition table could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartError {
    /// Reading the device failed.
    Io {
        /// What we were reading.
        what: &'static str,
        /// Where.
        lba: u64,
        /// The device's error.
        err: BlockError,
    },
    /// The device's block size is not usable for partition tables.
    BadBlockSize(u32),
    /// The device is empty.
    EmptyDisk,
    /// LBA 0 has no 0x55AA signature and there is no GPT header at LBA 1.
    NoPartitionTable,
    /// The protective MBR announces GPT but neither copy is valid.
    BothGptCopiesBad {
        /// Why the primary copy was rejected.
        primary: GptError,
        /// Why the backup copy was rejected.
        backup: GptError,
    },
}

impl fmt::Display for PartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartError::Io { what, lba, err } => write!(f, "cannot read {what} at LBA {lba}: {err}"),
            PartError::BadBlockSize(bs) => write!(
                f,
                "unsupported block size {bs} (need a power of two from 512 to {MAX_BLOCK_SIZE})"
            ),
            PartError::EmptyDisk => f.write_str("disk has no blocks"),
            PartError::NoPartitionTable => f.write_str(
                "no partition table: LBA 0 lacks the 0x55AA boot signature and LBA 1 has no GPT header",
            ),
            PartError::BothGptCopiesBad { primary, backup } => write!(
                f,
                "both GPT copies are bad: primary: {primary}; backup: {backup}"
            ),
        }
    }
}

/// Read `count` blocks at `lba` into a fresh buffer.
fn read_vec<D: BlockDevice>(
    dev: &mut D,
    what: &'static str,
    lba: u64,
    count: usize,
) -> Result<Vec<u8>, PartError> {
    let bs = dev.block_size() as usize;
    let len = bs.checked_mul(count).ok_or(PartError::Io {
        what,
        lba,
        err: BlockError::OutOfRange {
            lba,
            blocks: count as u64,
            capacity: dev.num_blocks(),
        },
    })?;
    let mut buf = vec![0u8; len];
    dev.read_blocks(lba, &mut buf)
        .map_err(|err| PartError::Io { what, lba, err })?;
    Ok(buf)
}

/// Find and decode the partition table on `dev`.
///
/// GPT is used when LBA 0 holds a protective MBR (type 0xEE), or when LBA 0
/// is blank but LBA 1 has a GPT header (a warning is recorded). Otherwise a
/// valid MBR is decoded; only its four primary slots are reported — extended
/// partitions (types 0x05/0x0F/0x85) are skipped with a warning and the
/// logical partitions inside them are not walked, since nothing in Ember's
/// boot path lives there.
pub fn read_partitions<D: BlockDevice>(dev: &mut D) -> Result<PartitionTable, PartError> {
    let bs = dev.block_size();
    if !(512..=MAX_BLOCK_SIZE).contains(&bs) || !bs.is_power_of_two() {
        return Err(PartError::BadBlockSize(bs));
    }
    if dev.num_blocks() == 0 {
        return Err(PartError::EmptyDisk);
    }
    let lba0 = read_vec(dev, "MBR", 0, 1)?;
    match mbr::Mbr::parse(&lba0) {
        Some(m) if m.is_protective() => {
            let mut warnings = Vec::new();
            if m.is_hybrid() {
                warnings.push(String::from(
                    "hybrid MBR: protective 0xEE entry plus other MBR entries; using GPT",
                ));
            }
            gpt::read(dev, warnings)
        }
        Some(m) => Ok(mbr::to_table(&m, dev.num_blocks())),
        None => {
            if gpt::has_signature_at_lba1(dev) {
                let warnings = vec![String::from(
                    "LBA 0 has no protective MBR (missing 0x55AA); trying GPT anyway",
                )];
                gpt::read(dev, warnings)
            } else {
                Err(PartError::NoPartitionTable)
            }
        }
    }
}

/// Whether `[a_start, a_start+a_len)` and `[b_start, b_start+b_len)` overlap.
/// Lengths are non-zero and ends already known not to overflow.
fn overlaps(a_start: u64, a_len: u64, b_start: u64, b_len: u64) -> bool {
    a_start < b_start.saturating_add(b_len) && b_start < a_start.saturating_add(a_len)
}

#[cfg(test)]
mod tests;
