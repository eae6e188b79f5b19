//! The on-flash structures: bank header and record header, their encoders
//! and their (hostile-input) decoders. See the crate documentation for how
//! they are used.

use alloc::vec::Vec;
use core::fmt;
use core::mem::{offset_of, size_of};

use zerocopy::byteorder::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::{Variable, BLOCK_SIZE};

/// CRC-32 (ISO-HDLC, the one UEFI and GPT use).
pub(crate) const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// First bytes of a bank header.
pub(crate) const BANK_MAGIC: [u8; 8] = *b"EmberVar";
/// First bytes of a record header.
pub(crate) const RECORD_MAGIC: [u8; 4] = *b"EVaR";
/// Layout version; a different value is treated as foreign content.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// Record kind: a variable with its value.
pub(crate) const KIND_VARIABLE: u8 = 0x01;
/// Record kind: the variable was deleted.
pub(crate) const KIND_TOMBSTONE: u8 = 0x02;

/// Records start on this boundary, so resynchronising after damage only has
/// to try every eighth offset.
pub(crate) const RECORD_ALIGN: u32 = 8;

/// Size of one bank header copy.
pub(crate) const HEADER_LEN: u32 = size_of::<BankHeader>() as u32;
/// The two header copies at the start of each bank; records follow.
pub(crate) const HEADER_AREA: u32 = 2 * HEADER_LEN;

/// Bank header. Programmed only after every record of the bank is in place,
/// so a bank with a valid header is complete ("committed").
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub(crate) struct BankHeader {
    pub magic: [u8; 8],
    pub version: U32,
    /// Erase block size the layout was made for ([`BLOCK_SIZE`]).
    pub block_size: U32,
    /// Size of each bank in blocks; catches a resized volume.
    pub bank_blocks: U32,
    /// 0 or 1: which bank this header belongs to; catches a misplaced copy.
    pub bank_index: U32,
    /// Incremented (wrapping) by every compaction; the newer bank wins.
    pub generation: U64,
    /// Lower bound for the next record sequence number.
    pub next_sequence: U64,
    /// Zero; room for later fields without a version bump.
    pub reserved: [u8; 20],
    /// CRC-32 of every byte before this field.
    pub crc: U32,
}
const _: () = assert!(size_of::<BankHeader>() == 64);

impl BankHeader {
    pub(crate) fn new(
        bank_index: u8,
        bank_blocks: u32,
        generation: u64,
        next_sequence: u64,
    ) -> Self {
        let mut h = BankHeader {
            magic: BANK_MAGIC,
            version: U32::new(FORMAT_VERSION),
            block_size: U32::new(BLOCK_SIZE),
            bank_blocks: U32::new(bank_blocks),
            bank_index: U32::new(u32::from(bank_index)),
            generation: U64::new(generation),
            next_sequence: U64::new(next_sequence),
            reserved: [0; 20],
            crc: U32::new(0),
        };
        h.crc = U32::new(h.compute_crc());
        h
    }

    fn compute_crc(&self) -> u32 {
        CRC32.checksum(&self.as_bytes()[..offset_of!(BankHeader, crc)])
    }

    /// Decode one header copy and check it belongs to bank `bank_index` of a
    /// volume whose banks are `bank_blocks` blocks long.
    pub(crate) fn check(
        bytes: &[u8],
        bank_index: u8,
        bank_blocks: u32,
    ) -> Result<BankHeader, BankProblem> {
        let Ok((h, _)) = BankHeader::read_from_prefix(bytes) else {
            return Err(BankProblem::BadMagic);
        };
        if h.as_bytes().iter().all(|&b| b == 0xFF) {
            return Err(BankProblem::Blank);
        }
        if h.magic != BANK_MAGIC {
            return Err(BankProblem::BadMagic);
        }
        if h.crc.get() != h.compute_crc() {
            return Err(BankProblem::BadChecksum);
        }
        if h.version.get() != FORMAT_VERSION {
            return Err(BankProblem::UnsupportedVersion(h.version.get()));
        }
        if h.block_size.get() != BLOCK_SIZE
            || h.bank_blocks.get() != bank_blocks
            || h.bank_index.get() != u32::from(bank_index)
        {
            return Err(BankProblem::WrongGeometry {
                block_size: h.block_size.get(),
                bank_blocks: h.bank_blocks.get(),
                bank_index: h.bank_index.get(),
            });
        }
        Ok(h)
    }
}

/// Why a bank header copy was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BankProblem {
    /// Erased (all 0xFF).
    Blank,
    /// Not an Ember variable store header.
    BadMagic,
    /// Ember magic but the CRC does not match (torn write or corruption).
    BadChecksum,
    /// Written by an incompatible layout version.
    UnsupportedVersion(u32),
    /// Written for a different volume size or bank.
    WrongGeometry {
        /// Erase block size the header names.
        block_size: u32,
        /// Bank size in blocks the header names.
        bank_blocks: u32,
        /// Bank index the header names.
        bank_index: u32,
    },
}

impl fmt::Display for BankProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BankProblem::Blank => f.write_str("erased"),
            BankProblem::BadMagic => f.write_str("no Ember variable store header"),
            BankProblem::BadChecksum => f.write_str("header CRC mismatch"),
            BankProblem::UnsupportedVersion(v) => write!(f, "unsupported layout version {v}"),
            BankProblem::WrongGeometry {
                block_size,
                bank_blocks,
                bank_index,
            } => write!(
                f,
                "header is for bank {bank_index} of {bank_blocks} blocks of {block_size} bytes, not this volume"
            ),
        }
    }
}

/// Header of one log record; the UCS-2 name (little-endian) and the data
/// follow, then 0xFF padding up to [`RECORD_ALIGN`].
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub(crate) struct RecordHeader {
    pub magic: [u8; 4],
    /// [`KIND_VARIABLE`] or [`KIND_TOMBSTONE`].
    pub kind: u8,
    /// Zero.
    pub reserved: u8,
    /// Name length in UCS-2 code units.
    pub name_units: U16,
    pub data_len: U32,
    pub attributes: U32,
    /// Larger is newer; resolves several records of one variable.
    pub sequence: U64,
    pub guid: [u8; 16],
    /// Opaque to this crate; reserved for the authenticated-variable layer
    /// (an EFI_TIME or a monotonic count).
    pub timestamp: [u8; 16],
    /// CRC-32 of the name and data bytes.
    pub body_crc: U32,
    /// CRC-32 of every header byte before this field (so also `body_crc`).
    pub header_crc: U32,
}
const _: () = assert!(size_of::<RecordHeader>() == 64);

impl RecordHeader {
    fn compute_crc(&self) -> u32 {
        CRC32.checksum(&self.as_bytes()[..offset_of!(RecordHeader, header_crc)])
    }
}

/// Bytes a record with this name and data length occupies in the log.
pub(crate) const fn record_len(name_units: u64, data_len: u64) -> u64 {
    let raw = (size_of::<RecordHeader>() as u64)
        .saturating_add(name_units.saturating_mul(2))
        .saturating_add(data_len);
    align_up(raw)
}

pub(crate) const fn align_up(n: u64) -> u64 {
    let a = RECORD_ALIGN as u64;
    n.saturating_add(a - 1) & !(a - 1)
}

/// Append the record for (`guid`, `name`) to `out`, padded to the record
/// alignment. `value` `None` writes a tombstone. The caller has checked that
/// the name length fits a `u16` and the data length a `u32`.
pub(crate) fn encode_record(
    out: &mut Vec<u8>,
    guid: &[u8; 16],
    name: &[u16],
    value: Option<&Variable>,
    sequence: u64,
) {
    let (kind, attributes, timestamp, data): (u8, u32, [u8; 16], &[u8]) = match value {
        Some(v) => (KIND_VARIABLE, v.attributes, v.timestamp, &v.data),
        None => (KIND_TOMBSTONE, 0, [0; 16], &[]),
    };
    let start = out.len();
    let mut body_crc = CRC32.digest();
    for unit in name {
        body_crc.update(&unit.to_le_bytes());
    }
    body_crc.update(data);
    let mut h = RecordHeader {
        magic: RECORD_MAGIC,
        kind,
        reserved: 0,
        name_units: U16::new(u16::try_from(name.len()).unwrap_or(u16::MAX)),
        data_len: U32::new(u32::try_from(data.len()).unwrap_or(u32::MAX)),
        attributes: U32::new(attributes),
        sequence: U64::new(sequence),
        guid: *guid,
        timestamp,
        body_crc: U32::new(body_crc.finalize()),
        header_crc: U32::new(0),
    };
    h.header_crc = U32::new(h.compute_crc());
    out.extend_from_slice(h.as_bytes());
    for unit in name {
        out.extend_from_slice(&unit.to_le_bytes());
    }
    out.extend_from_slice(data);
    let padded = start + (align_up((out.len() - start) as u64) as usize);
    out.resize(padded, 0xFF);
}

/// A record found in the log.
pub(crate) struct Record<'a> {
    pub header: RecordHeader,
    /// Name as little-endian UCS-2 bytes.
    pub name: &'a [u8],
    pub data: &'a [u8],
}

impl Record<'_> {
    pub(crate) fn name_units(&self) -> Vec<u16> {
        self.name
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect()
    }
}

/// What [`parse_record`] found at an offset.
pub(crate) enum Parsed<'a> {
    /// A complete record occupying `extent` bytes.
    Valid { record: Record<'a>, extent: u32 },
    /// An intact header whose name/data fail the CRC: a torn write or
    /// corruption. `extent` bytes can be skipped.
    BadBody { sequence: u64, extent: u32 },
    /// Not a record header.
    Invalid,
}

/// Decode the record at the start of `buf` (which runs to the end of the
/// bank). Never reads outside `buf`.
pub(crate) fn parse_record(buf: &[u8]) -> Parsed<'_> {
    let Ok((h, rest)) = RecordHeader::read_from_prefix(buf) else {
        return Parsed::Invalid;
    };
    if h.magic != RECORD_MAGIC || h.header_crc.get() != h.compute_crc() || h.reserved != 0 {
        return Parsed::Invalid;
    }
    let name_len = u64::from(h.name_units.get()) * 2;
    let data_len = u64::from(h.data_len.get());
    match h.kind {
        KIND_VARIABLE => {}
        KIND_TOMBSTONE if data_len == 0 => {}
        _ => return Parsed::Invalid,
    }
    let extent = record_len(u64::from(h.name_units.get()), data_len);
    if extent > buf.len() as u64 {
        // A header claiming to run past the bank is not one we wrote.
        return Parsed::Invalid;
    }
    // `extent` (>= header + body) fits in `buf`, so these cannot fail; `get`
    // keeps that a checked fact rather than an assumption.
    let name_end = name_len as usize;
    let data_end = name_end + data_len as usize;
    let (Some(name), Some(data)) = (rest.get(..name_end), rest.get(name_end..data_end)) else {
        return Parsed::Invalid;
    };
    let extent = extent as u32;
    let mut crc = CRC32.digest();
    crc.update(name);
    crc.update(data);
    if crc.finalize() != h.body_crc.get() {
        return Parsed::BadBody {
            sequence: h.sequence.get(),
            extent,
        };
    }
    Parsed::Valid {
        record: Record {
            header: h,
            name,
            data,
        },
        extent,
    }
}
