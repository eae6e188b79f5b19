//! GUID Partition Table (UEFI spec 2.10, chapter 5.3): header validation,
//! entry-array checks and primary → backup fallback.

use crate::{
    overlaps, read_vec, GptCopy, Guid, PartError, PartKind, Partition, PartitionTable, Scheme,
};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::mem::{offset_of, size_of};
use ember_block::{BlockDevice, BlockError};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// "EFI PART".
const SIGNATURE: [u8; 8] = *b"EFI PART";
/// Only major revision 1 exists; minor revisions stay compatible.
const REVISION_MAJOR: u32 = 1;
/// Most entries we accept; tools create 128, a few allow a little more.
pub const MAX_ENTRIES: u32 = 1024;
/// Largest entry size we accept (the spec allows 128 × 2^n).
pub const MAX_ENTRY_SIZE: u32 = 4096;
/// Largest entry array we read, so a hostile header cannot make us allocate
/// or read megabytes.
pub const MAX_ARRAY_BYTES: u64 = 1024 * 1024;
/// How many per-entry warnings to record before summarising the rest.
const MAX_ENTRY_WARNINGS: usize = 16;

/// The GPT header (UEFI Table 5.5); the rest of the block is reserved.
#[repr(C)]
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub(crate) struct GptHeader {
    signature: [u8; 8],
    revision: U32,
    header_size: U32,
    header_crc32: U32,
    reserved: U32,
    my_lba: U64,
    alternate_lba: U64,
    first_usable_lba: U64,
    last_usable_lba: U64,
    disk_guid: Guid,
    partition_entry_lba: U64,
    num_partition_entries: U32,
    size_of_partition_entry: U32,
    partition_entry_array_crc32: U32,
}
const _: () = assert!(size_of::<GptHeader>() == 92);

/// A partition entry (UEFI Table 5.6); larger entry sizes append reserved
/// bytes that we ignore.
#[repr(C)]
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub(crate) struct GptEntry {
    type_guid: Guid,
    unique_guid: Guid,
    starting_lba: U64,
    ending_lba: U64,
    attributes: U64,
    name: [U16; 36],
}
const _: () = assert!(size_of::<GptEntry>() == 128);

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Why one GPT copy (header + entry array) was rejected. `lba` is where the
/// header was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GptError {
    /// The header block could not be read.
    Io { lba: u64, err: BlockError },
    /// No "EFI PART" signature.
    Signature { lba: u64 },
    /// Header size outside 92..=block size.
    HeaderSize { lba: u64, size: u32 },
    /// Header CRC32 does not match its contents.
    HeaderCrc {
        lba: u64,
        stored: u32,
        computed: u32,
    },
    /// Unknown major revision.
    Revision { lba: u64, revision: u32 },
    /// The header's own LBA field disagrees with where it was found.
    MyLba { lba: u64, recorded: u64 },
    /// First/last usable LBAs are inverted, off the disk, or cover the
    /// header itself.
    UsableRange {
        lba: u64,
        first: u64,
        last: u64,
        disk_blocks: u64,
    },
    /// Entry size too small, not a multiple of 8, or too large.
    EntrySize { lba: u64, size: u32 },
    /// Too many entries (or the array would be too large).
    EntryCount { lba: u64, count: u32, size: u32 },
    /// The entry array is off the disk or overlaps the header or usable area.
    ArrayLocation {
        lba: u64,
        array_lba: u64,
        array_blocks: u64,
    },
    /// The entry array could not be read.
    ArrayIo {
        lba: u64,
        array_lba: u64,
        err: BlockError,
    },
    /// Entry-array CRC32 mismatch.
    ArrayCrc {
        lba: u64,
        stored: u32,
        computed: u32,
    },
    /// The disk is too small to hold a backup header anywhere.
    NoBackupLocation { disk_blocks: u64 },
}

impl fmt::Display for GptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GptError::Io { lba, err } => write!(f, "cannot read GPT header at LBA {lba}: {err}"),
            GptError::Signature { lba } => write!(f, "no GPT header signature at LBA {lba}"),
            GptError::HeaderSize { lba, size } => {
                write!(f, "GPT header at LBA {lba} has invalid size {size}")
            }
            GptError::HeaderCrc { lba, stored, computed } => write!(
                f,
                "GPT header at LBA {lba} CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            GptError::Revision { lba, revision } => {
                write!(f, "GPT header at LBA {lba} has unsupported revision {revision:#010x}")
            }
            GptError::MyLba { lba, recorded } => {
                write!(f, "GPT header at LBA {lba} claims to be at LBA {recorded}")
            }
            GptError::UsableRange { lba, first, last, disk_blocks } => write!(
                f,
                "GPT header at LBA {lba} has usable range {first}..={last}, invalid for a disk of {disk_blocks} blocks"
            ),
            GptError::EntrySize { lba, size } => write!(
                f,
                "GPT header at LBA {lba} has invalid entry size {size} (need 128..={MAX_ENTRY_SIZE}, multiple of 8)"
            ),
            GptError::EntryCount { lba, count, size } => write!(
                f,
                "GPT header at LBA {lba} has too many entries ({count} x {size} bytes; limit {MAX_ENTRIES} entries, {MAX_ARRAY_BYTES} bytes)"
            ),
            GptError::ArrayLocation { lba, array_lba, array_blocks } => write!(
                f,
                "GPT header at LBA {lba} places its entry array at LBA {array_lba} (+{array_blocks} blocks), outside the reserved area of the disk"
            ),
            GptError::ArrayIo { lba, array_lba, err } => write!(
                f,
                "cannot read GPT entry array at LBA {array_lba} (header at LBA {lba}): {err}"
            ),
            GptError::ArrayCrc { lba, stored, computed } => write!(
                f,
                "GPT entry array of header at LBA {lba} CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            GptError::NoBackupLocation { disk_blocks } => {
                write!(f, "a disk of {disk_blocks} blocks has no room for a backup GPT header")
            }
        }
    }
}

/// A validated header and its entry-array bytes (exactly count × size).
struct ValidCopy {
    hdr: GptHeader,
    array: Vec<u8>,
}

/// Whether block 1 starts with a GPT signature (used when LBA 0 is blank).
pub(crate) fn has_signature_at_lba1<D: BlockDevice>(dev: &mut D) -> bool {
    if dev.num_blocks() < 2 {
        return false;
    }
    match read_vec(dev, "GPT header", 1, 1) {
        Ok(b) => GptHeader::read_from_prefix(&b).is_ok_and(|(h, _)| h.signature == SIGNATURE),
        Err(_) => false,
    }
}

fn header_crc(block: &[u8], size: usize) -> u32 {
    let crc_at = offset_of!(GptHeader, header_crc32);
    let crc_end = crc_at + size_of::<U32>();
    let mut d = CRC32.digest();
    // The caller has checked `size` against the block and the struct size.
    d.update(block.get(..crc_at).unwrap_or(&[]));
    d.update(&[0u8; size_of::<U32>()]);
    d.update(block.get(crc_end..size).unwrap_or(&[]));
    d.finalize()
}

/// Read and validate the header at `lba` (not its array).
fn read_header<D: BlockDevice>(dev: &mut D, lba: u64) -> Result<GptHeader, GptError> {
    let bs = dev.block_size();
    let disk_blocks = dev.num_blocks();
    let block = read_vec(dev, "GPT header", lba, 1).map_err(|e| match e {
        PartError::Io { err, .. } => GptError::Io { lba, err },
        _ => GptError::Io {
            lba,
            err: BlockError::Unsupported,
        },
    })?;
    let (hdr, _) = GptHeader::read_from_prefix(&block).map_err(|_| GptError::Signature { lba })?;
    if hdr.signature != SIGNATURE {
        return Err(GptError::Signature { lba });
    }
    let size = hdr.header_size.get();
    if (size as usize) < size_of::<GptHeader>() || size > bs {
        return Err(GptError::HeaderSize { lba, size });
    }
    let computed = header_crc(&block, size as usize);
    let stored = hdr.header_crc32.get();
    if computed != stored {
        return Err(GptError::HeaderCrc {
            lba,
            stored,
            computed,
        });
    }
    let revision = hdr.revision.get();
    if revision >> 16 != REVISION_MAJOR {
        return Err(GptError::Revision { lba, revision });
    }
    if hdr.my_lba.get() != lba {
        return Err(GptError::MyLba {
            lba,
            recorded: hdr.my_lba.get(),
        });
    }
    let (first, last) = (hdr.first_usable_lba.get(), hdr.last_usable_lba.get());
    // LBA 0 (protective MBR) and 1 (primary header) are never usable, and
    // the usable area must not contain the header we are reading.
    if first < 2 || first > last || last >= disk_blocks || (first..=last).contains(&lba) {
        return Err(GptError::UsableRange {
            lba,
            first,
            last,
            disk_blocks,
        });
    }
    let esize = hdr.size_of_partition_entry.get();
    if (esize as usize) < size_of::<GptEntry>()
        || !esize.is_multiple_of(8)
        || esize > MAX_ENTRY_SIZE
    {
        return Err(GptError::EntrySize { lba, size: esize });
    }
    let count = hdr.num_partition_entries.get();
    let array_bytes = u64::from(count) * u64::from(esize);
    if count > MAX_ENTRIES || array_bytes > MAX_ARRAY_BYTES {
        return Err(GptError::EntryCount {
            lba,
            count,
            size: esize,
        });
    }
    let array_lba = hdr.partition_entry_lba.get();
    let array_blocks = array_bytes.div_ceil(u64::from(bs));
    let bad_location = GptError::ArrayLocation {
        lba,
        array_lba,
        array_blocks,
    };
    if array_blocks > 0 {
        let end = array_lba
            .checked_add(array_blocks)
            .ok_or(bad_location.clone())?;
        let hits_header = (array_lba..end).contains(&lba);
        if array_lba < 2
            || end > disk_blocks
            || hits_header
            || overlaps(array_lba, array_blocks, first, last - first + 1)
        {
            return Err(bad_location);
        }
    }
    Ok(hdr)
}

/// Read the entry array of a validated header and check its CRC.
fn read_array<D: BlockDevice>(dev: &mut D, lba: u64, hdr: &GptHeader) -> Result<Vec<u8>, GptError> {
    // Bounds were checked in `read_header`, so these cannot overflow.
    let bytes =
        hdr.num_partition_entries.get() as usize * hdr.size_of_partition_entry.get() as usize;
    let bs = dev.block_size() as usize;
    let array_lba = hdr.partition_entry_lba.get();
    let mut array = if bytes == 0 {
        Vec::new()
    } else {
        read_vec(dev, "GPT entry array", array_lba, bytes.div_ceil(bs)).map_err(|e| match e {
            PartError::Io { err, .. } => GptError::ArrayIo {
                lba,
                array_lba,
                err,
            },
            _ => GptError::ArrayIo {
                lba,
                array_lba,
                err: BlockError::Unsupported,
            },
        })?
    };
    array.truncate(bytes);
    let computed = CRC32.checksum(&array);
    let stored = hdr.partition_entry_array_crc32.get();
    if computed != stored {
        return Err(GptError::ArrayCrc {
            lba,
            stored,
            computed,
        });
    }
    Ok(array)
}

fn read_copy<D: BlockDevice>(dev: &mut D, lba: u64) -> Result<ValidCopy, (GptError, Option<u64>)> {
    let hdr = read_header(dev, lba).map_err(|e| (e, None))?;
    let array = read_array(dev, lba, &hdr).map_err(|e| (e, Some(hdr.alternate_lba.get())))?;
    Ok(ValidCopy { hdr, array })
}

/// Read the GPT, preferring the primary copy; `warnings` carries notes from
/// the MBR stage.
pub(crate) fn read<D: BlockDevice>(
    dev: &mut D,
    mut warnings: Vec<String>,
) -> Result<PartitionTable, PartError> {
    let disk_blocks = dev.num_blocks();
    let last_lba = disk_blocks.saturating_sub(1);
    match read_copy(dev, 1) {
        Ok(primary) => {
            let alt = primary.hdr.alternate_lba.get();
            let backup_lba = if alt > 1 && alt < disk_blocks {
                if alt != last_lba {
                    warnings.push(format!(
                        "backup GPT header is at LBA {alt}, not the last LBA {last_lba} (disk was resized?)"
                    ));
                }
                alt
            } else {
                warnings.push(format!(
                    "primary GPT header names invalid backup LBA {alt}; checking last LBA {last_lba}"
                ));
                last_lba
            };
            if let Err((e, _)) = read_copy(dev, backup_lba) {
                warnings.push(format!("backup GPT is bad ({e}); using primary"));
            }
            Ok(build(primary, GptCopy::Primary, warnings))
        }
        Err((primary_err, primary_alt)) => {
            // Only trust the primary's pointer to the backup if its header
            // checksum was good (i.e. just the array was bad).
            let mut candidates: Vec<u64> = Vec::new();
            if let Some(alt) = primary_alt {
                if alt > 1 && alt < disk_blocks {
                    candidates.push(alt);
                }
            }
            if last_lba > 1 && !candidates.contains(&last_lba) {
                candidates.push(last_lba);
            }
            let mut backup_err = GptError::NoBackupLocation { disk_blocks };
            for lba in candidates {
                match read_copy(dev, lba) {
                    Ok(backup) => {
                        warnings.push(format!(
                            "primary GPT is bad ({primary_err}); using backup at LBA {lba}"
                        ));
                        return Ok(build(backup, GptCopy::Backup, warnings));
                    }
                    Err((e, _)) => backup_err = e,
                }
            }
            Err(PartError::BothGptCopiesBad {
                primary: primary_err,
                backup: backup_err,
            })
        }
    }
}

fn kind_of(t: &Guid) -> PartKind {
    if *t == Guid::ESP {
        PartKind::EfiSystem
    } else if *t == Guid::XBOOTLDR {
        PartKind::Xbootldr
    } else if *t == Guid::LINUX_FS {
        PartKind::LinuxFs
    } else {
        PartKind::Other
    }
}

fn decode_name(units: &[U16; 36]) -> String {
    let raw = units.iter().map(|u| u.get()).take_while(|&u| u != 0);
    char::decode_utf16(raw)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

fn build(copy: ValidCopy, which: GptCopy, mut warnings: Vec<String>) -> PartitionTable {
    let hdr = &copy.hdr;
    let (first, last) = (hdr.first_usable_lba.get(), hdr.last_usable_lba.get());
    let esize = hdr.size_of_partition_entry.get() as usize;
    let mut partitions: Vec<Partition> = Vec::new();
    let mut skipped = 0usize;
    let mut note = |warnings: &mut Vec<String>, msg: String| {
        skipped += 1;
        if skipped <= MAX_ENTRY_WARNINGS {
            warnings.push(msg);
        }
    };
    // `chunks_exact` bounds the walk by the (already size-limited) array.
    for (i, raw) in copy.array.chunks_exact(esize).enumerate() {
        let Ok((e, _)) = GptEntry::read_from_prefix(raw) else {
            continue;
        };
        if e.type_guid.is_zero() {
            continue;
        }
        let number = i as u32 + 1;
        let (start, end) = (e.starting_lba.get(), e.ending_lba.get());
        if start > end || start < first || end > last {
            note(
                &mut warnings,
                format!("GPT entry {number}: LBA range {start}..={end} is outside the usable range {first}..={last}; skipped"),
            );
            continue;
        }
        let len = end - start + 1;
        if let Some(o) = partitions
            .iter()
            .find(|p| overlaps(p.first_lba, p.num_blocks, start, len))
        {
            let other = o.number;
            note(
                &mut warnings,
                format!(
                    "GPT entry {number}: LBA range {start}..={end} overlaps entry {other}; skipped"
                ),
            );
            continue;
        }
        partitions.push(Partition {
            number,
            first_lba: start,
            num_blocks: len,
            kind: kind_of(&e.type_guid),
            type_guid: Some(e.type_guid),
            unique_guid: Some(e.unique_guid),
            name: decode_name(&e.name),
            mbr_type: None,
            attributes: e.attributes.get(),
        });
    }
    if skipped > MAX_ENTRY_WARNINGS {
        warnings.push(format!(
            "{} more bad GPT entries skipped",
            skipped - MAX_ENTRY_WARNINGS
        ));
    }
    PartitionTable {
        scheme: Scheme::Gpt,
        gpt_copy: Some(which),
        disk_guid: Some(hdr.disk_guid),
        partitions,
        warnings,
    }
}
