//! Crash-safe, log-structured store for UEFI variables on NOR flash (QEMU's
//! CFI pflash) or on a preallocated file that is only ever rewritten in place.
//!
//! The crate stores bytes faithfully — GUID, UCS-2 name, attributes, an
//! opaque 16-byte timestamp and data — and leaves attribute rules (NV/BS/RT,
//! append writes, authentication) to the layer above.
//!
//! # On-flash format
//!
//! The volume (a multiple of [`BLOCK_SIZE`]; [`STANDARD_VOLUME_LEN`] on QEMU)
//! is split into two equal **banks** of whole erase blocks (an odd last block
//! is unused). At any time one bank is *active*, the other is the *spare*.
//!
//! ```text
//! bank:   [BankHeader copy 0][BankHeader copy 1][record][record]...[0xFF...]
//! record: [RecordHeader][name: UCS-2 LE][data][0xFF pad to 8 bytes]
//! ```
//!
//! * `BankHeader` (64 bytes, `format.rs`): magic `EmberVar`, layout version,
//!   geometry (block size, bank size, bank index), a wrapping `generation`,
//!   a floor for the next sequence number, CRC-32. A bank is *committed* iff
//!   at least one of its two copies is valid. Copy 1 exists only so that a
//!   flipped byte in copy 0 does not lose the bank.
//! * `RecordHeader` (64 bytes): magic `EVaR`, kind (variable or tombstone),
//!   name length, data length, attributes, 64-bit sequence number, GUID,
//!   timestamp, CRC-32 of name+data, CRC-32 of the header itself. The header
//!   CRC makes the lengths trustworthy, so a record with a damaged body can
//!   be stepped over instead of ending the scan.
//!
//! # Write protocol
//!
//! Flash is only ever programmed over bytes known to be erased (0xFF); no
//! operation needs a 0→1 transition except through erase.
//!
//! * **set / delete** encode one record (a tombstone for delete) with the next
//!   sequence number and program it at the append point of the active bank.
//!   Nothing else is touched: no old record is marked obsolete, the highest
//!   sequence number of a name wins.
//! * **compaction** (when the record does not fit, after damage was found,
//!   or on request) writes the live set — with the pending change applied —
//!   into the spare bank: (1) erase the spare, unless this session already
//!   erased it completely; (2) program the records, renumbered from 1;
//!   (3) program header copy 0 with `generation + 1` — the commit point;
//!   (4) program header copy 1; (5) erase the old bank, header block first.
//!
//! # Recovery rules (`open`)
//!
//! 1. A bank is valid if a header copy passes magic, CRC, version and
//!    geometry checks. Of two valid banks the newer generation (serial-number
//!    arithmetic, so wrapping is harmless) is active; with none, the volume is
//!    formatted and the report says whether it was blank or foreign.
//! 2. The active bank is scanned from its first record up to the last
//!    non-0xFF byte. Valid records update the index by sequence number
//!    (tombstones delete). A record with an intact header and a bad body is
//!    dropped and stepped over; unparseable bytes are skipped 8 at a time
//!    until a valid header appears again. Both are reported.
//! 3. Anything abnormal in the active bank (dropped or unparseable bytes, a
//!    header copy that cannot be rewritten, exhausted sequence numbers) is
//!    repaired by a compaction; a header copy that is blank or torn is
//!    reprogrammed in place; a non-blank spare (interrupted compaction or
//!    erase) is erased. A second `open` after a successful repair is clean.
//!
//! # Why every crash point is safe
//!
//! * *During a record program* (not at all, torn, complete): the record is
//!   either absent, fails a CRC (dropped, so the variable keeps its previous
//!   record = old value), or is complete (new value). Other variables' records
//!   are not touched.
//! * *Compaction steps 1–2*: the active bank is untouched; the spare has no
//!   valid header, so `open` keeps the old bank (old values) and erases the
//!   spare.
//! * *Step 3*: header copy 0 either passes its CRC (the spare is complete:
//!   new values) or not (copy 1 is still erased, so the bank is invalid: old
//!   values). Bits are only cleared, so a torn header never becomes valid
//!   with different contents, barring a CRC-32 collision.
//! * *Steps 4–5*: the new bank is committed; a torn copy 1 is reprogrammed
//!   (programming the same bytes again only clears the missing bits). The
//!   old bank's header block is erased first; while any of it survives, its
//!   generation is older, so it is ignored and then erased by `open`.
//! * *During `open`'s own repairs*: they are the same operations, so the same
//!   arguments hold, and the value set they write equals the one they read.
//!
//! A flash error that is not a power cut (the device reports failure) leaves
//! the RAM index possibly out of step with the flash; the store then rereads
//! the volume before the next change, and the failed change ends up with its
//! old or its new value, as after a crash.
//!
//! # Sizes
//!
//! Half the volume is the compaction spare (like OVMF's fault-tolerant-write
//! spare area): on the standard volume each bank is 66 blocks, 270,208 bytes
//! of record space. [`Store::open`] reads the active bank into RAM once, and
//! a compaction assembles the new bank in RAM; the index keeps every live
//! variable in RAM.
//!
//! # Example
//!
//! ```
//! use ember_varstore::{sim::SimFlash, Config, Store, STANDARD_VOLUME_LEN};
//!
//! let flash = SimFlash::blank(STANDARD_VOLUME_LEN);
//! let (mut store, report) = Store::open(flash, Config::default()).unwrap();
//! assert!(report.formatted.is_some());
//! let guid = [0x61; 16];
//! let name: Vec<u16> = "BootOrder".encode_utf16().collect();
//! store.set(&guid, &name, 7, &[1, 0]).unwrap();
//! assert_eq!(store.get(&guid, &name).unwrap().data, [1, 0]);
//! ```
//!
//! The guest can reprogram pflash itself, so the format defends against
//! accidents, not against a malicious guest; authenticated variables must be
//! verified by the layer above.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod format;
pub mod sim;

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod tests;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Bound;

use format::{
    encode_record, parse_record, record_len, BankHeader, Parsed, HEADER_AREA, HEADER_LEN,
};
use zerocopy::IntoBytes;

pub use format::BankProblem;

/// Erase block size: QEMU's CFI01 pflash erases 4 KiB sectors.
pub const BLOCK_SIZE: u32 = 4096;

/// Size of the standard volume (`-drive if=pflash,unit=1`), the same as
/// OVMF_VARS_4M.fd: 132 blocks.
pub const STANDARD_VOLUME_LEN: u32 = 540_672;

/// Default limit for one variable's name (in bytes) plus data.
pub const DEFAULT_MAX_VARIABLE_SIZE: u32 = 32 * 1024;

/// Bytes every record needs besides its name and data (before alignment).
pub const RECORD_OVERHEAD: u32 = format::HEADER_LEN;

/// At most this many [`Issue`]s are kept in an [`OpenReport`]; the counters
/// keep counting.
pub const MAX_ISSUES: usize = 16;

/// Bytes a variable with `name_units` UCS-2 units of name and `data_len`
/// bytes of data occupies in the store (what [`Usage`] counts).
pub const fn record_size(name_units: usize, data_len: usize) -> u64 {
    record_len(name_units as u64, data_len as u64)
}

/// Which flash operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlashOp {
    /// Reading bytes.
    Read,
    /// Programming bytes (clearing bits).
    Program,
    /// Erasing a block.
    Erase,
}

impl fmt::Display for FlashOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FlashOp::Read => "read",
            FlashOp::Program => "program",
            FlashOp::Erase => "erase",
        })
    }
}

/// A flash driver's failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlashError {
    /// The access runs past the end of the device.
    OutOfRange {
        /// Start of the access in bytes.
        offset: u32,
        /// Length of the access in bytes.
        len: u32,
    },
    /// The device reported a failure (status error, timeout, power loss).
    Device {
        /// What was being done.
        op: FlashOp,
        /// Byte offset of the access.
        offset: u32,
    },
    /// The device or file is write-protected.
    WriteProtected {
        /// Byte offset of the refused access.
        offset: u32,
    },
}

impl fmt::Display for FlashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FlashError::OutOfRange { offset, len } => {
                write!(
                    f,
                    "flash access of {len} bytes at {offset:#x} runs past the device"
                )
            }
            FlashError::Device { op, offset } => write!(f, "flash {op} at {offset:#x} failed"),
            FlashError::WriteProtected { offset } => {
                write!(f, "flash is write-protected (write at {offset:#x})")
            }
        }
    }
}

/// Byte-addressed NOR flash (or a file with the same rules).
pub trait Flash {
    /// Size in bytes; the store requires a multiple of [`BLOCK_SIZE`].
    fn len(&self) -> u32;

    /// True if the device has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Read `buf.len()` bytes at `offset`.
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), FlashError>;

    /// Program `data` at `offset`. NOR semantics: may only clear bits
    /// (1 → 0); the store only programs over bytes it knows are erased, or
    /// reprograms bytes that already hold a subset of the same zero bits.
    fn program(&mut self, offset: u32, data: &[u8]) -> Result<(), FlashError>;

    /// Erase block number `block` ([`BLOCK_SIZE`] bytes at
    /// `block * BLOCK_SIZE`) to 0xFF.
    fn erase(&mut self, block: u32) -> Result<(), FlashError>;
}

impl<T: Flash + ?Sized> Flash for &mut T {
    fn len(&self) -> u32 {
        (**self).len()
    }
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), FlashError> {
        (**self).read(offset, buf)
    }
    fn program(&mut self, offset: u32, data: &[u8]) -> Result<(), FlashError> {
        (**self).program(offset, data)
    }
    fn erase(&mut self, block: u32) -> Result<(), FlashError> {
        (**self).erase(block)
    }
}

/// Store settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Largest name (in bytes, 2 per UCS-2 unit) plus data one variable may
    /// have. Must leave room for one such record in a bank.
    pub max_variable_size: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_variable_size: DEFAULT_MAX_VARIABLE_SIZE,
        }
    }
}

/// One stored variable's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variable {
    /// UEFI attribute bits, stored as given.
    pub attributes: u32,
    /// Opaque to this crate, reserved for authenticated variables (an
    /// EFI_TIME or a monotonic count); zero when written with [`Store::set`].
    pub timestamp: [u8; 16],
    /// The value.
    pub data: Vec<u8>,
}

/// Space accounting, in bytes of record space (see [`record_size`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Record space of one bank.
    pub total: u32,
    /// Taken by live variables.
    pub used: u32,
    /// What can still be stored, counting everything compaction reclaims.
    /// A new variable needs [`record_size`] of this.
    pub remaining: u32,
    /// [`Config::max_variable_size`].
    pub max_variable_size: u32,
}

/// Why a store operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The flash driver failed.
    Flash(FlashError),
    /// The volume cannot hold the layout.
    Geometry {
        /// Volume size in bytes.
        len: u32,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// [`Config::max_variable_size`] is zero or too big for a bank.
    Config {
        /// The configured value.
        max_variable_size: u32,
        /// The largest value this volume allows.
        limit: u32,
    },
    /// Name plus data exceed [`Config::max_variable_size`] (or the name is
    /// longer than 65535 units).
    TooLarge {
        /// Name bytes plus data bytes.
        size: u64,
        /// The limit.
        max: u32,
    },
    /// Not enough space even after compaction.
    Full {
        /// Record space the new value needs.
        needed: u64,
        /// Record space available for it.
        remaining: u64,
    },
    /// `next_name` was given a variable that does not exist.
    NotFound,
    /// A buffer could not be allocated.
    OutOfMemory {
        /// Size of the failed allocation.
        bytes: usize,
    },
}

impl From<FlashError> for StoreError {
    fn from(e: FlashError) -> Self {
        StoreError::Flash(e)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            StoreError::Flash(e) => write!(f, "variable store: {e}"),
            StoreError::Geometry { len, reason } => {
                write!(f, "variable store volume of {len} bytes is unusable: {reason}")
            }
            StoreError::Config {
                max_variable_size,
                limit,
            } => write!(
                f,
                "maximum variable size {max_variable_size} must be between 1 and {limit} for this volume"
            ),
            StoreError::TooLarge { size, max } => write!(
                f,
                "variable of {size} bytes (name + data) exceeds the maximum of {max}"
            ),
            StoreError::Full { needed, remaining } => write!(
                f,
                "variable store full: need {needed} bytes, {remaining} available"
            ),
            StoreError::NotFound => f.write_str("variable not found"),
            StoreError::OutOfMemory { bytes } => {
                write!(f, "variable store: cannot allocate {bytes} bytes")
            }
        }
    }
}

/// Why `open` formatted the volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatReason {
    /// The volume was erased (first boot).
    Blank,
    /// Neither bank held a valid header and the volume was not blank:
    /// foreign or destroyed content. Whatever it held is gone.
    Foreign {
        /// Why bank 0's first header copy was rejected.
        bank0: BankProblem,
        /// Why bank 1's first header copy was rejected.
        bank1: BankProblem,
    },
}

/// Something `open` found wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssueKind {
    /// One copy (0 or 1) of the active bank's header is damaged.
    HeaderCopy {
        /// Which copy.
        copy: u8,
        /// What is wrong with it.
        problem: BankProblem,
    },
    /// Both header copies are valid but differ.
    HeadersDisagree,
    /// Both banks are valid and neither generation is newer.
    SameGeneration {
        /// The generation both claim.
        generation: u64,
    },
    /// A record's header is intact but its name/data fail the CRC (a write
    /// cut short, or corruption). The record was dropped.
    DamagedRecord {
        /// The record's sequence number.
        sequence: u64,
    },
    /// Bytes that are neither records nor erased were skipped.
    Unparseable {
        /// How many.
        len: u32,
    },
    /// The spare bank still held an older committed bank (a compaction
    /// finished but erasing the old bank was interrupted).
    StaleBank {
        /// Its generation.
        generation: u64,
    },
    /// The spare bank was not erased (an interrupted compaction or erase).
    SpareNotBlank,
    /// Sequence numbers ran out; compaction renumbers them.
    SequenceExhausted,
}

/// An [`IssueKind`] and where it was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Issue {
    /// Bank (0 or 1).
    pub bank: u8,
    /// Byte offset inside the bank.
    pub offset: u32,
    /// What was wrong.
    pub kind: IssueKind,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bank {} offset {:#x}: ", self.bank, self.offset)?;
        match self.kind {
            IssueKind::HeaderCopy { copy, problem } => {
                write!(f, "header copy {copy} damaged ({problem})")
            }
            IssueKind::HeadersDisagree => f.write_str("the two header copies disagree"),
            IssueKind::SameGeneration { generation } => {
                write!(f, "both banks claim generation {generation}; bank 0 used")
            }
            IssueKind::DamagedRecord { sequence } => {
                write!(
                    f,
                    "record {sequence} fails its CRC (torn write or corruption), dropped"
                )
            }
            IssueKind::Unparseable { len } => write!(f, "{len} unparseable bytes skipped"),
            IssueKind::StaleBank { generation } => write!(
                f,
                "older bank (generation {generation}) left by an interrupted compaction"
            ),
            IssueKind::SpareNotBlank => {
                f.write_str("spare bank not erased (interrupted compaction or erase)")
            }
            IssueKind::SequenceExhausted => f.write_str("sequence numbers exhausted"),
        }
    }
}

/// Repairs `open` made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Repairs {
    /// The live variables were rewritten into a fresh bank.
    pub compacted: bool,
    /// A damaged header copy was reprogrammed in place.
    pub header_rewritten: bool,
    /// The spare bank was erased.
    pub spare_erased: bool,
}

/// What `open` found and did; print it (Display) when it is not clean.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Set if the volume was (re)formatted.
    pub formatted: Option<FormatReason>,
    /// The active bank after `open`.
    pub active_bank: u8,
    /// Its generation.
    pub generation: u64,
    /// Variables present after `open`.
    pub variables: usize,
    /// Records dropped because their name/data failed the CRC.
    pub dropped_records: u32,
    /// Stretches of unparseable bytes skipped.
    pub unparseable_regions: u32,
    /// Total unparseable bytes skipped.
    pub unparseable_bytes: u32,
    /// What was repaired.
    pub repairs: Repairs,
    /// A repair that failed; the store still works from the old bank and
    /// retries on the next change.
    pub repair_error: Option<StoreError>,
    /// The first [`MAX_ISSUES`] problems, with locations.
    pub issues: Vec<Issue>,
}

impl OpenReport {
    /// Nothing was wrong and nothing was written.
    pub fn is_clean(&self) -> bool {
        self.formatted.is_none()
            && self.issues.is_empty()
            && self.repairs == Repairs::default()
            && self.repair_error.is_none()
    }

    fn issue(&mut self, bank: u8, offset: u32, kind: IssueKind) {
        if self.issues.len() < MAX_ISSUES {
            self.issues.push(Issue { bank, offset, kind });
        }
    }
}

impl fmt::Display for OpenReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "variable store: {} variables, bank {} generation {}",
            self.variables, self.active_bank, self.generation
        )?;
        match self.formatted {
            Some(FormatReason::Blank) => f.write_str("; formatted blank volume")?,
            Some(FormatReason::Foreign { bank0, bank1 }) => write!(
                f,
                "; REFORMATTED foreign or destroyed content (bank 0: {bank0}; bank 1: {bank1})"
            )?,
            None => {}
        }
        if self.dropped_records > 0 {
            write!(f, "; {} damaged records dropped", self.dropped_records)?;
        }
        if self.unparseable_regions > 0 {
            write!(
                f,
                "; {} unparseable bytes in {} places skipped",
                self.unparseable_bytes, self.unparseable_regions
            )?;
        }
        let r = self.repairs;
        if r.compacted {
            f.write_str("; compacted")?;
        }
        if r.header_rewritten {
            f.write_str("; header copy rewritten")?;
        }
        if r.spare_erased {
            f.write_str("; spare bank erased")?;
        }
        if let Some(e) = self.repair_error {
            write!(f, "; repair failed: {e}")?;
        }
        for i in &self.issues {
            write!(f, "\n  {i}")?;
        }
        Ok(())
    }
}

/// Layout derived from the volume size.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    bank_blocks: u32,
    bank_len: u32,
}

impl Geometry {
    fn new(len: u32, config: &Config) -> Result<Self, StoreError> {
        if !len.is_multiple_of(BLOCK_SIZE) {
            return Err(StoreError::Geometry {
                len,
                reason: "not a multiple of the 4 KiB erase block",
            });
        }
        let bank_blocks = len / BLOCK_SIZE / 2;
        if bank_blocks == 0 {
            return Err(StoreError::Geometry {
                len,
                reason: "fewer than two erase blocks",
            });
        }
        let g = Geometry {
            bank_blocks,
            bank_len: bank_blocks * BLOCK_SIZE,
        };
        // Largest name+data whose record still fits an empty bank.
        let limit = (g.capacity() - RECORD_OVERHEAD) & !(format::RECORD_ALIGN - 1);
        if config.max_variable_size == 0 || config.max_variable_size > limit {
            return Err(StoreError::Config {
                max_variable_size: config.max_variable_size,
                limit,
            });
        }
        Ok(g)
    }

    /// Record space of a bank.
    fn capacity(&self) -> u32 {
        self.bank_len - HEADER_AREA
    }

    fn base(&self, bank: u8) -> u32 {
        u32::from(bank) * self.bank_len
    }

    fn blocks(&self, bank: u8) -> core::ops::Range<u32> {
        let first = u32::from(bank) * self.bank_blocks;
        first..first + self.bank_blocks
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Health {
    /// RAM matches flash; appends go to `append`.
    Good,
    /// RAM is right but the active bank must be rewritten before appending.
    NeedsCompaction,
    /// A failed write left the flash state unknown: reread before changing.
    NeedsReload,
}

type VarMap = BTreeMap<[u8; 16], BTreeMap<Vec<u16>, Variable>>;

/// While scanning: the newest (sequence, value or tombstone) per name.
type Latest = BTreeMap<[u8; 16], BTreeMap<Vec<u16>, (u64, Option<Variable>)>>;

/// A variable's identity: vendor GUID (as stored, EFI_GUID byte order) and
/// UCS-2 name.
pub type VarName<'a> = (&'a [u8; 16], &'a [u16]);

/// Header-area state of one bank.
struct BankState {
    raw: [u8; HEADER_AREA as usize],
    copies: [Result<BankHeader, BankProblem>; 2],
    /// The header in force: copy 0 if valid, else copy 1.
    header: Option<BankHeader>,
}

/// What scanning the active bank produced.
struct Scan {
    vars: VarMap,
    live_bytes: u64,
    append: u32,
    max_sequence: u64,
    damaged: bool,
}

/// A change to apply: `None` deletes.
struct Change<'a> {
    guid: &'a [u8; 16],
    name: &'a [u16],
    value: Option<Variable>,
}

/// The variable store.
#[derive(Clone, Debug)]
pub struct Store<F: Flash> {
    flash: F,
    config: Config,
    geo: Geometry,
    active: u8,
    generation: u64,
    /// Offset inside the active bank where the next record goes.
    append: u32,
    next_seq: u64,
    vars: VarMap,
    /// Sum of `record_size` over live variables.
    live_bytes: u64,
    /// The spare bank was erased completely in this session, so compaction
    /// need not erase it again. (A spare that merely reads as 0xFF could be
    /// the remains of an interrupted erase with weakly erased cells.)
    spare_erased: bool,
    health: Health,
}

/// `len` bytes of `fill`, or an error instead of an allocation abort.
fn alloc_buf(len: usize, fill: u8) -> Result<Vec<u8>, StoreError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| StoreError::OutOfMemory { bytes: len })?;
    v.resize(len, fill);
    Ok(v)
}

/// `a` is newer than `b` in serial-number arithmetic.
fn newer(a: u64, b: u64) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && d < 1 << 63
}

/// `target` can be reached from `current` by clearing bits only.
fn programmable(current: &[u8], target: &[u8]) -> bool {
    current.iter().zip(target).all(|(&c, &t)| c & t == t)
}

impl<F: Flash> Store<F> {
    /// Mount the volume: pick the active bank, rebuild the index, finish or
    /// undo an interrupted compaction, repair damage, format a blank or
    /// foreign volume. Fails only for an unusable geometry or configuration,
    /// a flash read error, or a volume that needed formatting and could not
    /// be written.
    pub fn open(flash: F, config: Config) -> Result<(Self, OpenReport), StoreError> {
        let geo = Geometry::new(flash.len(), &config)?;
        let mut store = Store {
            flash,
            config,
            geo,
            active: 0,
            generation: 0,
            append: HEADER_AREA,
            next_seq: 1,
            vars: BTreeMap::new(),
            live_bytes: 0,
            spare_erased: false,
            health: Health::NeedsReload,
        };
        let report = store.mount()?;
        Ok((store, report))
    }

    /// The variable, if present.
    pub fn get(&self, guid: &[u8; 16], name: &[u16]) -> Option<&Variable> {
        self.vars.get(guid)?.get(name)
    }

    /// Create or replace a variable (timestamp zero).
    pub fn set(
        &mut self,
        guid: &[u8; 16],
        name: &[u16],
        attributes: u32,
        data: &[u8],
    ) -> Result<(), StoreError> {
        self.set_with_timestamp(guid, name, attributes, &[0; 16], data)
    }

    /// Create or replace a variable, with the timestamp field the
    /// authenticated-variable layer keeps. Rewriting an identical value
    /// writes nothing. On error the variable keeps its old value — or, if
    /// the flash failed mid-write, may show the new one after the store
    /// rereads the volume.
    pub fn set_with_timestamp(
        &mut self,
        guid: &[u8; 16],
        name: &[u16],
        attributes: u32,
        timestamp: &[u8; 16],
        data: &[u8],
    ) -> Result<(), StoreError> {
        self.ensure_loaded()?;
        let size = (name.len() as u64 * 2).saturating_add(data.len() as u64);
        let max = self.config.max_variable_size;
        if size > u64::from(max) || name.len() > usize::from(u16::MAX) {
            return Err(StoreError::TooLarge { size, max });
        }
        let old_len = match self.get(guid, name) {
            Some(v)
                if v.attributes == attributes && v.timestamp == *timestamp && v.data == data =>
            {
                return Ok(());
            }
            Some(v) => record_size(name.len(), v.data.len()),
            None => 0,
        };
        let needed = record_size(name.len(), data.len());
        let available = u64::from(self.geo.capacity()) - (self.live_bytes - old_len);
        if needed > available {
            return Err(StoreError::Full {
                needed,
                remaining: available,
            });
        }
        let mut value = Vec::new();
        value
            .try_reserve_exact(data.len())
            .map_err(|_| StoreError::OutOfMemory { bytes: data.len() })?;
        value.extend_from_slice(data);
        self.change(Change {
            guid,
            name,
            value: Some(Variable {
                attributes,
                timestamp: *timestamp,
                data: value,
            }),
        })
    }

    /// Delete a variable; `Ok(false)` if it did not exist.
    pub fn delete(&mut self, guid: &[u8; 16], name: &[u16]) -> Result<bool, StoreError> {
        self.ensure_loaded()?;
        if self.get(guid, name).is_none() {
            return Ok(false);
        }
        self.change(Change {
            guid,
            name,
            value: None,
        })?;
        Ok(true)
    }

    /// All variables, ordered by GUID bytes, then name.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8; 16], &[u16], &Variable)> + '_ {
        self.vars
            .iter()
            .flat_map(|(g, names)| names.iter().map(move |(n, v)| (g, n.as_slice(), v)))
    }

    /// The variable after `prev` in [`iter`](Self::iter) order (the first
    /// with `None`), for GetNextVariableName. `Ok(None)` at the end;
    /// [`StoreError::NotFound`] if `prev` does not exist.
    pub fn next_name(&self, prev: Option<VarName<'_>>) -> Result<Option<VarName<'_>>, StoreError> {
        let Some((guid, name)) = prev else {
            return Ok(self.iter().next().map(|(g, n, _)| (g, n)));
        };
        let (g, names) = self.vars.get_key_value(guid).ok_or(StoreError::NotFound)?;
        if !names.contains_key(name) {
            return Err(StoreError::NotFound);
        }
        let bounds: (Bound<&[u16]>, Bound<&[u16]>) = (Bound::Excluded(name), Bound::Unbounded);
        if let Some((n, _)) = names.range::<[u16], _>(bounds).next() {
            return Ok(Some((g, n.as_slice())));
        }
        Ok(self
            .vars
            .range((Bound::Excluded(*guid), Bound::Unbounded))
            .find_map(|(g, names)| names.keys().next().map(|n| (g, n.as_slice()))))
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.vars.values().map(BTreeMap::len).sum()
    }

    /// No variables.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// Space accounting.
    pub fn usage(&self) -> Usage {
        let total = self.geo.capacity();
        // live_bytes <= capacity: every live variable has its own record in
        // one bank.
        let used = u32::try_from(self.live_bytes).unwrap_or(total).min(total);
        Usage {
            total,
            used,
            remaining: total - used,
            max_variable_size: self.config.max_variable_size,
        }
    }

    /// Rewrite the live variables into the spare bank now (normally done
    /// when the active bank fills up).
    pub fn compact(&mut self) -> Result<(), StoreError> {
        self.ensure_loaded()?;
        let r = self.rebuild(None);
        self.after_error(r)
    }

    /// The active bank's generation (incremented by each compaction).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The flash device.
    pub fn flash(&self) -> &F {
        &self.flash
    }

    /// The flash device, mutably: for tests and diagnostics. Writing to it
    /// behind the store's back voids every guarantee until the next `open`.
    pub fn flash_mut(&mut self) -> &mut F {
        &mut self.flash
    }

    /// Give the flash device back.
    pub fn into_flash(self) -> F {
        self.flash
    }

    // --- internals -------------------------------------------------------

    fn ensure_loaded(&mut self) -> Result<(), StoreError> {
        if self.health == Health::NeedsReload {
            self.mount()?;
        }
        Ok(())
    }

    /// After a failed write whose effect on the flash is unknown, try to
    /// reread the volume at once so `get` reflects the flash again.
    fn after_error(&mut self, r: Result<(), StoreError>) -> Result<(), StoreError> {
        if r.is_err() && self.health == Health::NeedsReload {
            // If this fails too, the next change retries it.
            let _ = self.mount();
        }
        r
    }

    fn change(&mut self, change: Change<'_>) -> Result<(), StoreError> {
        let mut rec = Vec::new();
        let rec_len = record_size(
            change.name.len(),
            change.value.as_ref().map_or(0, |v| v.data.len()),
        );
        rec.try_reserve_exact(rec_len as usize)
            .map_err(|_| StoreError::OutOfMemory {
                bytes: rec_len as usize,
            })?;
        encode_record(
            &mut rec,
            change.guid,
            change.name,
            change.value.as_ref(),
            self.next_seq,
        );
        let fits = u64::from(self.append) + rec.len() as u64 <= u64::from(self.geo.bank_len);
        if self.health != Health::Good || !fits || self.next_seq == u64::MAX {
            let r = self.rebuild(Some(change));
            return self.after_error(r);
        }
        let at = self.geo.base(self.active) + self.append;
        if let Err(e) = self.flash.program(at, &rec) {
            // Some of the record may have landed; the append point is unknown.
            self.health = Health::NeedsReload;
            return self.after_error(Err(e.into()));
        }
        self.append += rec.len() as u32;
        self.next_seq += 1;
        self.apply(change);
        Ok(())
    }

    /// Apply a change to the RAM index.
    fn apply(&mut self, change: Change<'_>) {
        let name_units = change.name.len();
        if let Some(names) = self.vars.get_mut(change.guid) {
            if let Some(old) = names.remove(change.name) {
                self.live_bytes -= record_size(name_units, old.data.len());
            }
            if names.is_empty() {
                self.vars.remove(change.guid);
            }
        }
        if let Some(v) = change.value {
            self.live_bytes += record_size(name_units, v.data.len());
            self.vars
                .entry(*change.guid)
                .or_default()
                .insert(change.name.to_vec(), v);
        }
    }

    /// Program `data` at absolute `offset`, one erase block at a time,
    /// skipping all-0xFF pieces (already erased).
    fn program_chunked(&mut self, offset: u32, data: &[u8]) -> Result<(), StoreError> {
        let mut done = 0usize;
        while done < data.len() {
            let at = offset + done as u32;
            let room = (BLOCK_SIZE - at % BLOCK_SIZE) as usize;
            let piece = &data[done..data.len().min(done + room)];
            if piece.iter().any(|&b| b != 0xFF) {
                self.flash.program(at, piece)?;
            }
            done += piece.len();
        }
        Ok(())
    }

    fn erase_bank(&mut self, bank: u8) -> Result<(), StoreError> {
        // Ascending, so the header block goes first and the bank stops
        // being valid as early as possible.
        for b in self.geo.blocks(bank) {
            self.flash.erase(b)?;
        }
        Ok(())
    }

    /// Compaction: write the live set (with `pending` applied) into the spare
    /// bank, commit it, erase the old bank.
    fn rebuild(&mut self, pending: Option<Change<'_>>) -> Result<(), StoreError> {
        let target = 1 - self.active;
        let erase_target = !self.spare_erased;
        self.write_bank(
            target,
            self.generation.wrapping_add(1),
            pending,
            erase_target,
            true,
        )
    }

    /// Write a complete bank `target` of generation `generation` holding the
    /// current variables with `pending` applied. `erase_old`: erase the other
    /// bank afterwards (otherwise the caller knows it is erased).
    fn write_bank(
        &mut self,
        target: u8,
        generation: u64,
        pending: Option<Change<'_>>,
        erase_target: bool,
        erase_old: bool,
    ) -> Result<(), StoreError> {
        let pending_len = pending.as_ref().map_or(0, |c| {
            c.value
                .as_ref()
                .map_or(0, |v| record_size(c.name.len(), v.data.len()))
        });
        let cap = self.live_bytes.saturating_add(pending_len) as usize;
        let mut body = Vec::new();
        body.try_reserve_exact(cap)
            .map_err(|_| StoreError::OutOfMemory { bytes: cap })?;
        // Renumbering keeps sequence numbers small forever; there is one
        // record per name in the new bank, so their order does not matter.
        let mut seq = 0u64;
        for (guid, names) in &self.vars {
            for (name, var) in names {
                let replaced = pending
                    .as_ref()
                    .is_some_and(|c| c.guid == guid && c.name == name.as_slice());
                if !replaced {
                    seq += 1;
                    encode_record(&mut body, guid, name, Some(var), seq);
                }
            }
        }
        if let Some(Change {
            guid,
            name,
            value: Some(v),
        }) = &pending
        {
            seq += 1;
            encode_record(&mut body, guid, name, Some(v), seq);
        }
        if body.len() as u64 > u64::from(self.geo.capacity()) {
            // Callers check space first; this only guards the invariant.
            return Err(StoreError::Full {
                needed: body.len() as u64,
                remaining: u64::from(self.geo.capacity()),
            });
        }
        let base = self.geo.base(target);
        if erase_target {
            self.erase_bank(target)?;
        }
        self.spare_erased = false;
        self.program_chunked(base + HEADER_AREA, &body)?;

        let header = BankHeader::new(target, self.geo.bank_blocks, generation, seq + 1);
        if let Err(e) = self.flash.program(base, header.as_bytes()) {
            // Committed or not: only rereading the flash can tell.
            self.health = Health::NeedsReload;
            return Err(e.into());
        }
        // Committed: the new bank is the store now.
        self.active = target;
        self.generation = generation;
        self.append = HEADER_AREA + body.len() as u32;
        self.next_seq = seq + 1;
        if let Some(c) = pending {
            self.apply(c);
        }
        self.health = Health::Good;
        if self
            .flash
            .program(base + HEADER_LEN, header.as_bytes())
            .is_err()
        {
            // The change is durable; the next change rereads the volume,
            // which rewrites this copy and cleans the old bank.
            self.health = Health::NeedsReload;
            return Ok(());
        }
        if erase_old && self.erase_bank(1 - target).is_err() {
            // Leftovers in the spare are erased before it is used again.
            return Ok(());
        }
        self.spare_erased = true;
        Ok(())
    }

    /// Read one bank's header area and judge both copies.
    fn read_bank_state(&mut self, bank: u8) -> Result<BankState, StoreError> {
        let mut raw = [0u8; HEADER_AREA as usize];
        self.flash.read(self.geo.base(bank), &mut raw)?;
        let (c0, c1) = raw.split_at(HEADER_LEN as usize);
        let copies = [
            BankHeader::check(c0, bank, self.geo.bank_blocks),
            BankHeader::check(c1, bank, self.geo.bank_blocks),
        ];
        let header = copies[0].ok().or(copies[1].ok());
        Ok(BankState {
            raw,
            copies,
            header,
        })
    }

    /// Whether bytes `[from, bank end)` of `bank` are all 0xFF.
    fn bank_blank_from(&mut self, bank: u8, from: u32) -> Result<bool, StoreError> {
        let mut buf = [0u8; 512];
        let base = self.geo.base(bank);
        let mut off = from;
        while off < self.geo.bank_len {
            let n = (self.geo.bank_len - off).min(buf.len() as u32);
            let chunk = &mut buf[..n as usize];
            self.flash.read(base + off, chunk)?;
            if chunk.iter().any(|&b| b != 0xFF) {
                return Ok(false);
            }
            off += n;
        }
        Ok(true)
    }

    /// (Re)build all RAM state from the flash and repair what needs it.
    fn mount(&mut self) -> Result<OpenReport, StoreError> {
        let mut report = OpenReport::default();
        self.health = Health::NeedsReload;
        self.spare_erased = false;

        let banks = [self.read_bank_state(0)?, self.read_bank_state(1)?];
        let (active, header) = match (banks[0].header, banks[1].header) {
            (Some(a), Some(b)) => {
                let (ga, gb) = (a.generation.get(), b.generation.get());
                if newer(gb, ga) {
                    (1, b)
                } else {
                    if !newer(ga, gb) {
                        report.issue(0, 0, IssueKind::SameGeneration { generation: ga });
                    }
                    (0, a)
                }
            }
            (Some(a), None) => (0, a),
            (None, Some(b)) => (1, b),
            (None, None) => return self.format(report, &banks),
        };
        let spare = 1 - active;
        let st = &banks[usize::from(active)];

        // Index the active bank.
        let mut bank = alloc_buf(self.geo.bank_len as usize, 0xFF)?;
        self.flash.read(self.geo.base(active), &mut bank)?;
        let scan = scan_bank(&bank, active, &mut report);
        drop(bank);
        let mut needs_compaction = scan.damaged;

        // Header copies.
        let mut rewrite = [false; 2];
        let (copy0, copy1) = st.raw.split_at(HEADER_LEN as usize);
        let hb = header.as_bytes();
        if let (Ok(a), Ok(b)) = (&st.copies[0], &st.copies[1]) {
            if a != b {
                report.issue(active, 0, IssueKind::HeadersDisagree);
                needs_compaction = true;
            }
        }
        for (i, raw) in [copy0, copy1].into_iter().enumerate() {
            if let Err(problem) = st.copies[i] {
                report.issue(
                    active,
                    i as u32 * HEADER_LEN,
                    IssueKind::HeaderCopy {
                        copy: i as u8,
                        problem,
                    },
                );
                if programmable(raw, hb) {
                    rewrite[i] = true;
                } else {
                    needs_compaction = true;
                }
            }
        }

        let mut next_seq = scan
            .max_sequence
            .saturating_add(1)
            .max(header.next_sequence.get());
        if next_seq == u64::MAX {
            report.issue(active, 0, IssueKind::SequenceExhausted);
            needs_compaction = true;
        }
        next_seq = next_seq.max(1);

        // The spare: left over from an interrupted compaction or erase?
        let spare_state = &banks[usize::from(spare)];
        let spare_dirty = if let Some(h) = spare_state.header {
            report.issue(
                spare,
                0,
                IssueKind::StaleBank {
                    generation: h.generation.get(),
                },
            );
            true
        } else if spare_state.raw.iter().any(|&b| b != 0xFF)
            || !self.bank_blank_from(spare, HEADER_AREA)?
        {
            report.issue(spare, 0, IssueKind::SpareNotBlank);
            true
        } else {
            false
        };

        // Everything read: install the new state.
        self.active = active;
        self.generation = header.generation.get();
        self.append = scan.append;
        self.next_seq = next_seq;
        self.vars = scan.vars;
        self.live_bytes = scan.live_bytes;
        self.health = if needs_compaction {
            Health::NeedsCompaction
        } else {
            Health::Good
        };

        if needs_compaction {
            match self.rebuild(None) {
                Ok(()) => report.repairs.compacted = true,
                Err(e) => report.repair_error = Some(e),
            }
        } else {
            for (i, &r) in rewrite.iter().enumerate() {
                if !r {
                    continue;
                }
                let at = self.geo.base(active) + i as u32 * HEADER_LEN;
                match self.flash.program(at, hb) {
                    Ok(()) => report.repairs.header_rewritten = true,
                    Err(e) => {
                        // The copy may now be partly programmed; a fresh
                        // bank is the sure fix.
                        report.repair_error = Some(e.into());
                        self.health = Health::NeedsCompaction;
                    }
                }
            }
            if spare_dirty {
                match self.erase_bank(spare) {
                    Ok(()) => {
                        report.repairs.spare_erased = true;
                        self.spare_erased = true;
                    }
                    Err(e) => report.repair_error = Some(e),
                }
            }
        }
        report.active_bank = self.active;
        report.generation = self.generation;
        report.variables = self.len();
        Ok(report)
    }

    /// No valid bank: format, reporting whether the volume was blank.
    fn format(
        &mut self,
        mut report: OpenReport,
        banks: &[BankState; 2],
    ) -> Result<OpenReport, StoreError> {
        let blank = self.bank_blank_from(0, 0)? && self.bank_blank_from(1, 0)?;
        report.formatted = Some(if blank {
            FormatReason::Blank
        } else {
            let problem = |s: &BankState| s.copies[0].err().unwrap_or(BankProblem::BadChecksum);
            FormatReason::Foreign {
                bank0: problem(&banks[0]),
                bank1: problem(&banks[1]),
            }
        });
        self.vars.clear();
        self.live_bytes = 0;
        self.next_seq = 1;
        // A fully blank volume is a fresh file or device: no interrupted
        // erase of ours can have produced it, because one bank always holds
        // a committed header.
        // If only the second header copy failed, the format stands and the
        // next change rereads the volume, which rewrites that copy.
        self.write_bank(0, 1, None, !blank, !blank)?;
        report.active_bank = self.active;
        report.generation = self.generation;
        report.variables = 0;
        Ok(report)
    }
}

/// Index the records of one bank image. Sets `damaged` if anything but
/// valid records and trailing 0xFF was found.
fn scan_bank(bank: &[u8], bank_index: u8, report: &mut OpenReport) -> Scan {
    // (sequence, value or tombstone) per name.
    let mut latest: Latest = BTreeMap::new();
    let end = bank
        .iter()
        .rposition(|&b| b != 0xFF)
        .map_or(0, |i| format::align_up(i as u64 + 1) as usize);
    let mut off = HEADER_AREA as usize;
    let mut max_sequence = 0u64;
    let mut damaged = false;
    let mut garbage_start: Option<usize> = None;
    let close_garbage = |start: &mut Option<usize>, off: usize, report: &mut OpenReport| {
        if let Some(s) = start.take() {
            let len = (off - s) as u32;
            report.unparseable_regions += 1;
            report.unparseable_bytes = report.unparseable_bytes.saturating_add(len);
            report.issue(bank_index, s as u32, IssueKind::Unparseable { len });
        }
    };
    while off < end {
        let rest = bank.get(off..).unwrap_or(&[]);
        match parse_record(rest) {
            Parsed::Valid { record, extent } => {
                close_garbage(&mut garbage_start, off, report);
                let h = record.header;
                let seq = h.sequence.get();
                max_sequence = max_sequence.max(seq);
                let value = (h.kind == format::KIND_VARIABLE).then(|| Variable {
                    attributes: h.attributes.get(),
                    timestamp: h.timestamp,
                    data: record.data.to_vec(),
                });
                let slot = latest.entry(h.guid).or_default().entry(record.name_units());
                match slot {
                    alloc::collections::btree_map::Entry::Vacant(v) => {
                        v.insert((seq, value));
                    }
                    alloc::collections::btree_map::Entry::Occupied(mut o) => {
                        // Ties go to the later record in the log.
                        if o.get().0 <= seq {
                            o.insert((seq, value));
                        }
                    }
                }
                off += extent as usize;
            }
            Parsed::BadBody { sequence, extent } => {
                close_garbage(&mut garbage_start, off, report);
                damaged = true;
                report.dropped_records += 1;
                report.issue(
                    bank_index,
                    off as u32,
                    IssueKind::DamagedRecord { sequence },
                );
                off += extent as usize;
            }
            Parsed::Invalid => {
                // Non-0xFF bytes follow somewhere (off < end), so this is
                // damage either way; erased stretches are just not counted
                // as unparseable, so the report points at the real bytes.
                damaged = true;
                let step = format::RECORD_ALIGN as usize;
                let word = bank.get(off..off + step).unwrap_or(&[]);
                if word.iter().all(|&b| b == 0xFF) {
                    close_garbage(&mut garbage_start, off, report);
                } else {
                    garbage_start.get_or_insert(off);
                }
                off += step;
            }
        }
    }
    close_garbage(&mut garbage_start, off, report);

    let mut vars = VarMap::new();
    let mut live_bytes = 0u64;
    for (guid, names) in latest {
        let mut live = BTreeMap::new();
        for (name, (_, value)) in names {
            if let Some(v) = value {
                live_bytes += record_size(name.len(), v.data.len());
                live.insert(name, v);
            }
        }
        if !live.is_empty() {
            vars.insert(guid, live);
        }
    }
    Scan {
        vars,
        live_bytes,
        append: off as u32,
        max_sequence,
        damaged,
    }
}
