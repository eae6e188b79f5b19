//! The ACPI table loader: QEMU generates the ACPI tables itself but cannot
//! know where the guest will put them, so `etc/table-loader` carries a
//! script of 128-byte commands telling firmware how to place the blobs
//! (fw_cfg files) in memory, patch pointers between them, fix checksums,
//! and report addresses back to QEMU.
//!
//! [`run_loader`] executes the script against a [`LoaderHost`] that owns
//! fw_cfg access and memory allocation, and returns the patched blobs; the
//! caller copies each to its address. Semantics and the choices made where
//! QEMU's `hw/acpi/bios-linker-loader.c` leaves room:
//!
//! * The script length must be a multiple of 128 (QEMU pads it with zero
//!   commands to a multiple of 4 KiB) and at most [`MAX_SCRIPT_LEN`].
//! * Command 0 is padding and any command number above 4 is skipped, as
//!   SeaBIOS does, so newer QEMUs can add commands old firmware ignores;
//!   [`Loaded::skipped`] counts the unknown ones.
//! * ALLOCATE: each file at most once ([`MAX_BLOBS`] in all), before any
//!   command names it. Alignment must be a power of two; 0 is accepted as 1
//!   (QEMU's own assertion lets 0 through). The host's address is checked:
//!   aligned, inside 0xE0000..0x100000 for FSEG, below 4 GiB for HIGH.
//!   Zero-sized files are allowed (QEMU exposes an empty `etc/tpm/log`).
//! * ADD_POINTER: the `size`-byte (1, 2, 4 or 8) little-endian value at
//!   `offset` in the destination blob is an offset into the source blob; it
//!   must lie inside the source blob, and the source's address is added.
//!   A result that does not fit in `size` bytes is an error.
//! * ADD_CHECKSUM: the result byte is zeroed, then set to minus the 8-bit
//!   sum of `[start, start + length)`. When the byte lies inside the range
//!   (always, in QEMU) the range then sums to zero, exactly like SeaBIOS's
//!   "subtract the sum"; outside it, this stores the ACPI-style checksum of
//!   the range instead of depending on the byte's old value.
//! * WRITE_POINTER: `src address + src_offset` (inside the source blob) is
//!   written as `size` little-endian bytes into the fw_cfg *file*
//!   `dest_file` at `dst_offset` via [`LoaderHost::write_file`] (a DMA
//!   write), immediately, in script order. The blobs themselves reach
//!   memory only after `run_loader` returns. That is fine for QEMU's users
//!   (vmgenid, vmcoreinfo): QEMU only acts on the written address, and
//!   where it writes into the blob (vmgenid writes the GUID) the blob read
//!   from fw_cfg already holds the same bytes, so the later copy is
//!   idempotent.
//!
//! Any error aborts the whole script: half-linked ACPI tables are worse
//! than none, and the caller can then boot without them.

use crate::{FileName, NameError, FILE_NAME_SIZE};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::mem::size_of;
use zerocopy::little_endian::U32;
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

/// The fw_cfg file holding the script.
pub const TABLE_LOADER_FILE: &str = "etc/table-loader";
/// The blob holding the RSDP.
pub const RSDP_FILE: &str = "etc/acpi/rsdp";
/// The blob holding the other ACPI tables.
pub const TABLES_FILE: &str = "etc/acpi/tables";

/// Size of one command.
pub const COMMAND_SIZE: usize = 128;
/// Longest script accepted (8192 commands; QEMU's is a few KiB).
pub const MAX_SCRIPT_LEN: usize = 1024 * 1024;
/// Most blobs a script may allocate.
pub const MAX_BLOBS: usize = 256;
/// Largest single blob (QEMU's `etc/acpi/tables` is 128 KiB per step).
pub const MAX_BLOB_SIZE: u32 = 16 * 1024 * 1024;
/// Largest total of all blobs.
pub const MAX_TOTAL_SIZE: u64 = 64 * 1024 * 1024;

/// Command number of ALLOCATE.
pub const CMD_ALLOCATE: u32 = 1;
/// Command number of ADD_POINTER.
pub const CMD_ADD_POINTER: u32 = 2;
/// Command number of ADD_CHECKSUM.
pub const CMD_ADD_CHECKSUM: u32 = 3;
/// Command number of WRITE_POINTER.
pub const CMD_WRITE_POINTER: u32 = 4;

/// ALLOCATE zone code for memory below 4 GiB.
pub const ZONE_HIGH: u8 = 1;
/// ALLOCATE zone code for the F segment (0xE0000..0x100000), where the
/// RSDP must be for BIOS-style discovery.
pub const ZONE_FSEG: u8 = 2;

/// Start of the FSEG zone as this crate checks it (the BIOS area
/// 0xE0000..0x100000 that the ACPI spec lets OSes scan for the RSDP).
pub const FSEG_START: u64 = 0xE_0000;
/// End (exclusive) of the FSEG zone.
pub const FSEG_END: u64 = 0x10_0000;
/// End (exclusive) of the HIGH zone: tables are linked with 32-bit pointers.
pub const HIGH_END: u64 = 1 << 32;

/// The command number plus 124 bytes whose meaning depends on it.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct RawCommand {
    /// One of the `CMD_*` numbers (0 = padding).
    pub command: U32,
    /// Command-specific body.
    pub body: [u8; 124],
}
const _: () = assert!(size_of::<RawCommand>() == COMMAND_SIZE);

/// ALLOCATE: load fw_cfg file `file` into memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct AllocateCommand {
    /// [`CMD_ALLOCATE`].
    pub command: U32,
    /// File name, NUL-terminated.
    pub file: [u8; FILE_NAME_SIZE],
    /// Required alignment, a power of two.
    pub align: U32,
    /// [`ZONE_HIGH`] or [`ZONE_FSEG`].
    pub zone: u8,
    /// Zero.
    pub pad: [u8; 63],
}
const _: () = assert!(size_of::<AllocateCommand>() == COMMAND_SIZE);

/// ADD_POINTER: add `src_file`'s address to the pointer in `dest_file`.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct AddPointerCommand {
    /// [`CMD_ADD_POINTER`].
    pub command: U32,
    /// Blob holding the pointer.
    pub dest_file: [u8; FILE_NAME_SIZE],
    /// Blob pointed into.
    pub src_file: [u8; FILE_NAME_SIZE],
    /// Offset of the pointer in `dest_file`.
    pub offset: U32,
    /// Pointer width: 1, 2, 4 or 8.
    pub size: u8,
    /// Zero.
    pub pad: [u8; 7],
}
const _: () = assert!(size_of::<AddPointerCommand>() == COMMAND_SIZE);

/// ADD_CHECKSUM: fix an 8-bit ACPI checksum in `file`.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct AddChecksumCommand {
    /// [`CMD_ADD_CHECKSUM`].
    pub command: U32,
    /// The blob.
    pub file: [u8; FILE_NAME_SIZE],
    /// Offset of the checksum byte.
    pub result_offset: U32,
    /// First byte summed.
    pub start: U32,
    /// Number of bytes summed.
    pub length: U32,
    /// Zero.
    pub pad: [u8; 56],
}
const _: () = assert!(size_of::<AddChecksumCommand>() == COMMAND_SIZE);

/// WRITE_POINTER: tell QEMU where part of a blob ended up.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct WritePointerCommand {
    /// [`CMD_WRITE_POINTER`].
    pub command: U32,
    /// fw_cfg file written (not a blob).
    pub dest_file: [u8; FILE_NAME_SIZE],
    /// Blob whose address is written.
    pub src_file: [u8; FILE_NAME_SIZE],
    /// Where in `dest_file` to write.
    pub dst_offset: U32,
    /// Offset added to the blob's address.
    pub src_offset: U32,
    /// Pointer width: 1, 2, 4 or 8.
    pub size: u8,
    /// Zero.
    pub pad: [u8; 3],
}
const _: () = assert!(size_of::<WritePointerCommand>() == COMMAND_SIZE);

impl AllocateCommand {
    /// Build a command (the zone is raw so tests can build bad ones).
    pub fn new(file: &FileName, align: u32, zone: u8) -> Self {
        let mut c = Self::new_zeroed();
        c.command = U32::new(CMD_ALLOCATE);
        c.file = file.to_field();
        c.align = U32::new(align);
        c.zone = zone;
        c
    }
}

impl AddPointerCommand {
    /// Build a command.
    pub fn new(dest: &FileName, src: &FileName, offset: u32, size: u8) -> Self {
        let mut c = Self::new_zeroed();
        c.command = U32::new(CMD_ADD_POINTER);
        c.dest_file = dest.to_field();
        c.src_file = src.to_field();
        c.offset = U32::new(offset);
        c.size = size;
        c
    }
}

impl AddChecksumCommand {
    /// Build a command.
    pub fn new(file: &FileName, result_offset: u32, start: u32, length: u32) -> Self {
        let mut c = Self::new_zeroed();
        c.command = U32::new(CMD_ADD_CHECKSUM);
        c.file = file.to_field();
        c.result_offset = U32::new(result_offset);
        c.start = U32::new(start);
        c.length = U32::new(length);
        c
    }
}

impl WritePointerCommand {
    /// Build a command.
    pub fn new(
        dest: &FileName,
        src: &FileName,
        dst_offset: u32,
        src_offset: u32,
        size: u8,
    ) -> Self {
        let mut c = Self::new_zeroed();
        c.command = U32::new(CMD_WRITE_POINTER);
        c.dest_file = dest.to_field();
        c.src_file = src.to_field();
        c.dst_offset = U32::new(dst_offset);
        c.src_offset = U32::new(src_offset);
        c.size = size;
        c
    }
}

/// Memory zone of an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// Anywhere below 4 GiB.
    High,
    /// In 0xE0000..0x100000.
    FSeg,
}

impl Zone {
    fn from_code(code: u8) -> Option<Zone> {
        match code {
            ZONE_HIGH => Some(Zone::High),
            ZONE_FSEG => Some(Zone::FSeg),
            _ => None,
        }
    }

    /// Whether `[addr, addr + size)` lies inside the zone.
    pub fn contains(self, addr: u64, size: u32) -> bool {
        let Some(end) = addr.checked_add(u64::from(size)) else {
            return false;
        };
        match self {
            Zone::High => end <= HIGH_END,
            Zone::FSeg => addr >= FSEG_START && end <= FSEG_END,
        }
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Zone::High => "HIGH (below 4 GiB)",
            Zone::FSeg => "FSEG (0xE0000..0x100000)",
        })
    }
}

/// A decoded command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Command 0.
    Padding,
    /// ALLOCATE (alignment already normalised: 0 became 1).
    Allocate {
        /// The file.
        file: FileName,
        /// Power-of-two alignment.
        align: u32,
        /// Zone.
        zone: Zone,
    },
    /// ADD_POINTER.
    AddPointer {
        /// Blob holding the pointer.
        dest: FileName,
        /// Blob pointed into.
        src: FileName,
        /// Pointer offset in `dest`.
        offset: u32,
        /// Width: 1, 2, 4 or 8.
        size: u8,
    },
    /// ADD_CHECKSUM.
    AddChecksum {
        /// The blob.
        file: FileName,
        /// Checksum byte offset.
        result_offset: u32,
        /// Range start.
        start: u32,
        /// Range length.
        length: u32,
    },
    /// WRITE_POINTER.
    WritePointer {
        /// fw_cfg file written.
        dest: FileName,
        /// Blob whose address is written.
        src: FileName,
        /// Offset in `dest`.
        dst_offset: u32,
        /// Offset added to `src`'s address.
        src_offset: u32,
        /// Width: 1, 2, 4 or 8.
        size: u8,
    },
    /// A command number this crate does not know; skipped.
    Unknown(u32),
}

/// What a host operation failed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    /// The fw_cfg transfer failed.
    Io,
    /// No memory for the allocation.
    NoMemory,
    /// The host cannot do this (e.g. no DMA, so no fw_cfg writes).
    Unsupported,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostError::Io => "fw_cfg transfer failed",
            HostError::NoMemory => "out of memory",
            HostError::Unsupported => "not supported",
        })
    }
}

/// What the loader needs from the firmware.
pub trait LoaderHost {
    /// Size of fw_cfg file `name`, or None if it does not exist.
    fn file_size(&mut self, name: &str) -> Option<u32>;
    /// Read fw_cfg file `name` completely into `buf` (buf.len() == file_size).
    fn read_file(&mut self, name: &str, buf: &mut [u8]) -> Result<(), HostError>;
    /// Reserve memory for a blob: returns its physical address, aligned to `align`,
    /// below 1 MiB in 0xE0000..0x100000 for Zone::FSeg, below 4 GiB for Zone::High.
    fn allocate(&mut self, name: &str, size: u32, align: u32, zone: Zone)
        -> Result<u64, HostError>;
    /// Write `bytes` at `offset` into fw_cfg file `name` (WRITE_POINTER; DMA write).
    fn write_file(&mut self, name: &str, offset: u32, bytes: &[u8]) -> Result<(), HostError>;
    /// Whether the machine has the PC's F segment. QEMU's scripts ask for
    /// the RSDP there on every machine, arm64 `virt` included; a host
    /// without one (as UEFI firmware on arm64, which publishes the RSDP as
    /// a configuration table instead) gets such blobs allocated and checked
    /// as `Zone::High`.
    fn has_fseg(&self) -> bool {
        true
    }
}

/// Which name field of a command an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameField {
    /// ALLOCATE/ADD_CHECKSUM `file`.
    File,
    /// `dest_file`.
    Dest,
    /// `src_file`.
    Src,
}

impl fmt::Display for NameField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameField::File => "file",
            NameField::Dest => "dest_file",
            NameField::Src => "src_file",
        })
    }
}

/// Why the script failed. `index` is the 0-based command number in the
/// script (padding included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoaderError {
    /// The script length is not a multiple of 128.
    ScriptLength {
        /// Script length.
        len: usize,
    },
    /// The script is longer than [`MAX_SCRIPT_LEN`].
    ScriptTooLong {
        /// Script length.
        len: usize,
    },
    /// A name field is unterminated, empty or not UTF-8.
    BadFileName {
        /// Command index.
        index: usize,
        /// Which field.
        field: NameField,
        /// What is wrong.
        err: NameError,
    },
    /// ALLOCATE names a file fw_cfg does not have, or WRITE_POINTER's
    /// destination does not exist.
    UnknownFile {
        /// Command index.
        index: usize,
        /// The file.
        file: FileName,
    },
    /// A second ALLOCATE of the same file.
    DuplicateAllocation {
        /// Command index.
        index: usize,
        /// The file.
        file: FileName,
    },
    /// A command uses a blob that no earlier ALLOCATE loaded.
    NotAllocated {
        /// Command index.
        index: usize,
        /// The file.
        file: FileName,
    },
    /// More than [`MAX_BLOBS`] allocations.
    TooManyBlobs {
        /// Command index.
        index: usize,
    },
    /// A blob exceeds [`MAX_BLOB_SIZE`] or all blobs exceed [`MAX_TOTAL_SIZE`].
    BlobTooLarge {
        /// Command index.
        index: usize,
        /// The file.
        file: FileName,
        /// Its size.
        size: u32,
    },
    /// Alignment is not a power of two.
    BadAlignment {
        /// Command index.
        index: usize,
        /// The file.
        file: FileName,
        /// The alignment field.
        align: u32,
    },
    /// Zone code other than 1 or 2.
    BadZone {
        /// Command index.
        index: usize,
        /// The file.
        file: FileName,
        /// The zone field.
        zone: u8,
    },
    /// The host returned an address that is misaligned or outside the zone.
    BadAllocation {
        /// Command index.
        index: usize,
        /// The file.
        file: FileName,
        /// Address returned.
        addr: u64,
        /// Blob size.
        size: u32,
        /// Alignment asked for.
        align: u32,
        /// Zone asked for.
        zone: Zone,
    },
    /// Pointer width other than 1, 2, 4 or 8.
    BadPointerSize {
        /// Command index.
        index: usize,
        /// The size field.
        size: u8,
    },
    /// A range `[offset, offset + len)` lies outside a file of `file_size`
    /// bytes.
    OutOfBounds {
        /// Command index.
        index: usize,
        /// The file.
        file: FileName,
        /// What the range is.
        what: &'static str,
        /// Range start.
        offset: u64,
        /// Range length.
        len: u64,
        /// File size.
        file_size: u64,
    },
    /// ADD_POINTER's initial value is not an offset inside the source blob.
    PointerOutsideSource {
        /// Command index.
        index: usize,
        /// Source blob.
        src: FileName,
        /// Value found.
        value: u64,
        /// Source size.
        src_size: u64,
    },
    /// The patched pointer does not fit in its width.
    PointerOverflow {
        /// Command index.
        index: usize,
        /// File holding the pointer.
        file: FileName,
        /// The value that did not fit (saturated at u64::MAX on wrap).
        value: u64,
        /// Width in bytes.
        size: u8,
    },
    /// A host operation failed.
    Host {
        /// Command index.
        index: usize,
        /// The file.
        file: FileName,
        /// Which operation.
        op: &'static str,
        /// Why.
        err: HostError,
    },
}

impl fmt::Display for LoaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoaderError::ScriptLength { len } => write!(
                f,
                "table-loader script is {len} bytes, not a multiple of {COMMAND_SIZE}"
            ),
            LoaderError::ScriptTooLong { len } => write!(
                f,
                "table-loader script is {len} bytes (limit {MAX_SCRIPT_LEN})"
            ),
            LoaderError::BadFileName { index, field, err } => {
                write!(f, "table-loader command {index}: bad {field}: {err}")
            }
            LoaderError::UnknownFile { index, file } => {
                write!(f, "table-loader command {index}: no fw_cfg file \"{file}\"")
            }
            LoaderError::DuplicateAllocation { index, file } => {
                write!(f, "table-loader command {index}: \"{file}\" allocated twice")
            }
            LoaderError::NotAllocated { index, file } => write!(
                f,
                "table-loader command {index}: \"{file}\" used before it was allocated"
            ),
            LoaderError::TooManyBlobs { index } => write!(
                f,
                "table-loader command {index}: more than {MAX_BLOBS} allocations"
            ),
            LoaderError::BlobTooLarge { index, file, size } => write!(
                f,
                "table-loader command {index}: \"{file}\" is {size} bytes (limit {MAX_BLOB_SIZE} per blob, {MAX_TOTAL_SIZE} in total)"
            ),
            LoaderError::BadAlignment { index, file, align } => write!(
                f,
                "table-loader command {index}: alignment {align:#x} for \"{file}\" is not a power of two"
            ),
            LoaderError::BadZone { index, file, zone } => write!(
                f,
                "table-loader command {index}: unknown zone {zone} for \"{file}\""
            ),
            LoaderError::BadAllocation { index, file, addr, size, align, zone } => write!(
                f,
                "table-loader command {index}: host placed \"{file}\" ({size} bytes) at {addr:#x}, not {align:#x}-aligned inside zone {zone}"
            ),
            LoaderError::BadPointerSize { index, size } => write!(
                f,
                "table-loader command {index}: pointer size {size} (need 1, 2, 4 or 8)"
            ),
            LoaderError::OutOfBounds { index, file, what, offset, len, file_size } => write!(
                f,
                "table-loader command {index}: {what} {offset:#x}+{len:#x} is outside \"{file}\" ({file_size} bytes)"
            ),
            LoaderError::PointerOutsideSource { index, src, value, src_size } => write!(
                f,
                "table-loader command {index}: pointer offset {value:#x} is outside \"{src}\" ({src_size} bytes)"
            ),
            LoaderError::PointerOverflow { index, file, value, size } => write!(
                f,
                "table-loader command {index}: pointer {value:#x} in \"{file}\" does not fit in {size} bytes"
            ),
            LoaderError::Host { index, file, op, err } => {
                write!(f, "table-loader command {index}: {op} \"{file}\": {err}")
            }
        }
    }
}

fn name(
    index: usize,
    field: NameField,
    raw: &[u8; FILE_NAME_SIZE],
) -> Result<FileName, LoaderError> {
    FileName::from_field(raw).map_err(|err| LoaderError::BadFileName { index, field, err })
}

fn pointer_size(index: usize, size: u8) -> Result<u8, LoaderError> {
    match size {
        1 | 2 | 4 | 8 => Ok(size),
        _ => Err(LoaderError::BadPointerSize { index, size }),
    }
}

impl Command {
    /// Decode command number `index` of a script. Field validation that
    /// needs no other state (names, zone, alignment, pointer width) happens
    /// here.
    pub fn decode(index: usize, entry: &[u8; COMMAND_SIZE]) -> Result<Command, LoaderError> {
        // All command structs are exactly 128 unaligned bytes, so the reads
        // below cannot fail; the fallbacks only keep this panic-free.
        let Ok(raw) = RawCommand::read_from_bytes(entry) else {
            return Ok(Command::Padding);
        };
        Ok(match raw.command.get() {
            0 => Command::Padding,
            CMD_ALLOCATE => {
                let Ok(c) = AllocateCommand::read_from_bytes(entry) else {
                    return Ok(Command::Padding);
                };
                let file = name(index, NameField::File, &c.file)?;
                let zone = Zone::from_code(c.zone).ok_or(LoaderError::BadZone {
                    index,
                    file,
                    zone: c.zone,
                })?;
                let align = match c.align.get() {
                    0 => 1,
                    a if a.is_power_of_two() => a,
                    a => {
                        return Err(LoaderError::BadAlignment {
                            index,
                            file,
                            align: a,
                        })
                    }
                };
                Command::Allocate { file, align, zone }
            }
            CMD_ADD_POINTER => {
                let Ok(c) = AddPointerCommand::read_from_bytes(entry) else {
                    return Ok(Command::Padding);
                };
                Command::AddPointer {
                    dest: name(index, NameField::Dest, &c.dest_file)?,
                    src: name(index, NameField::Src, &c.src_file)?,
                    offset: c.offset.get(),
                    size: pointer_size(index, c.size)?,
                }
            }
            CMD_ADD_CHECKSUM => {
                let Ok(c) = AddChecksumCommand::read_from_bytes(entry) else {
                    return Ok(Command::Padding);
                };
                Command::AddChecksum {
                    file: name(index, NameField::File, &c.file)?,
                    result_offset: c.result_offset.get(),
                    start: c.start.get(),
                    length: c.length.get(),
                }
            }
            CMD_WRITE_POINTER => {
                let Ok(c) = WritePointerCommand::read_from_bytes(entry) else {
                    return Ok(Command::Padding);
                };
                Command::WritePointer {
                    dest: name(index, NameField::Dest, &c.dest_file)?,
                    src: name(index, NameField::Src, &c.src_file)?,
                    dst_offset: c.dst_offset.get(),
                    src_offset: c.src_offset.get(),
                    size: pointer_size(index, c.size)?,
                }
            }
            other => Command::Unknown(other),
        })
    }
}

impl Command {
    /// The 128-byte form (the inverse of [`decode`](Self::decode); values
    /// are written as they are, without validation, so tests and fuzzers
    /// can build bad commands).
    pub fn encode(&self) -> [u8; COMMAND_SIZE] {
        let mut out = [0u8; COMMAND_SIZE];
        // Every command struct is exactly COMMAND_SIZE bytes.
        match *self {
            Command::Padding => {}
            Command::Unknown(n) => out[..4].copy_from_slice(&n.to_le_bytes()),
            Command::Allocate { file, align, zone } => {
                let code = match zone {
                    Zone::High => ZONE_HIGH,
                    Zone::FSeg => ZONE_FSEG,
                };
                out.copy_from_slice(AllocateCommand::new(&file, align, code).as_bytes());
            }
            Command::AddPointer {
                dest,
                src,
                offset,
                size,
            } => {
                out.copy_from_slice(AddPointerCommand::new(&dest, &src, offset, size).as_bytes());
            }
            Command::AddChecksum {
                file,
                result_offset,
                start,
                length,
            } => out.copy_from_slice(
                AddChecksumCommand::new(&file, result_offset, start, length).as_bytes(),
            ),
            Command::WritePointer {
                dest,
                src,
                dst_offset,
                src_offset,
                size,
            } => out.copy_from_slice(
                WritePointerCommand::new(&dest, &src, dst_offset, src_offset, size).as_bytes(),
            ),
        }
        out
    }
}

/// Check the script's length and decode its commands lazily.
pub fn decode_script(
    script: &[u8],
) -> Result<impl Iterator<Item = Result<Command, LoaderError>> + '_, LoaderError> {
    if script.len() > MAX_SCRIPT_LEN {
        return Err(LoaderError::ScriptTooLong { len: script.len() });
    }
    let (chunks, rest) = script.as_chunks::<COMMAND_SIZE>();
    if !rest.is_empty() {
        return Err(LoaderError::ScriptLength { len: script.len() });
    }
    Ok(chunks
        .iter()
        .enumerate()
        .map(|(i, c)| Command::decode(i, c)))
}

/// A loaded, patched blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// fw_cfg file it came from.
    pub name: FileName,
    /// Where the host placed it; the caller copies `data` there.
    pub addr: u64,
    /// Zone it was allocated in.
    pub zone: Zone,
    /// Alignment it was allocated with.
    pub align: u32,
    /// Contents after all patches.
    pub data: Vec<u8>,
}

/// The result of a successful run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    blobs: Vec<Blob>,
    skipped: usize,
    pointers_written: usize,
}

impl Loaded {
    /// Blobs in allocation order.
    pub fn blobs(&self) -> &[Blob] {
        &self.blobs
    }

    /// Take the blobs.
    pub fn into_blobs(self) -> Vec<Blob> {
        self.blobs
    }

    /// The blob loaded from fw_cfg file `name`.
    pub fn blob(&self, name: &str) -> Option<&Blob> {
        self.blobs.iter().find(|b| b.name.as_str() == name)
    }

    /// Address of the RSDP (the `etc/acpi/rsdp` blob).
    pub fn rsdp(&self) -> Option<u64> {
        self.blob(RSDP_FILE).map(|b| b.addr)
    }

    /// Commands with unknown numbers that were skipped.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// WRITE_POINTER commands executed.
    pub fn pointers_written(&self) -> usize {
        self.pointers_written
    }
}

fn find(blobs: &[Blob], index: usize, file: FileName) -> Result<usize, LoaderError> {
    blobs
        .iter()
        .position(|b| b.name == file)
        .ok_or(LoaderError::NotAllocated { index, file })
}

/// `[offset, offset + len)` inside `size` bytes, as a usize range.
fn range(
    index: usize,
    file: FileName,
    what: &'static str,
    offset: u32,
    len: u64,
    size: usize,
) -> Result<core::ops::Range<usize>, LoaderError> {
    let err = LoaderError::OutOfBounds {
        index,
        file,
        what,
        offset: u64::from(offset),
        len,
        file_size: size as u64,
    };
    let start = usize::try_from(offset).map_err(|_| err)?;
    let len = usize::try_from(len).map_err(|_| err)?;
    let end = start.checked_add(len).filter(|&e| e <= size).ok_or(err)?;
    Ok(start..end)
}

/// `value` as `size` little-endian bytes, if it fits.
fn fit(value: u64, size: u8) -> Option<[u8; 8]> {
    if size < 8 && value >> (u32::from(size) * 8) != 0 {
        return None;
    }
    Some(value.to_le_bytes())
}

/// Execute the `etc/table-loader` script; see the module docs for the
/// exact semantics and limits.
pub fn run_loader(script: &[u8], host: &mut impl LoaderHost) -> Result<Loaded, LoaderError> {
    let mut out = Loaded::default();
    let mut total: u64 = 0;
    for (index, cmd) in decode_script(script)?.enumerate() {
        match cmd? {
            Command::Padding => {}
            Command::Unknown(_) => out.skipped += 1,
            Command::Allocate { file, align, zone } => {
                if out.blobs.iter().any(|b| b.name == file) {
                    return Err(LoaderError::DuplicateAllocation { index, file });
                }
                if out.blobs.len() >= MAX_BLOBS {
                    return Err(LoaderError::TooManyBlobs { index });
                }
                let size = host
                    .file_size(file.as_str())
                    .ok_or(LoaderError::UnknownFile { index, file })?;
                total += u64::from(size);
                if size > MAX_BLOB_SIZE || total > MAX_TOTAL_SIZE {
                    return Err(LoaderError::BlobTooLarge { index, file, size });
                }
                let mut data = vec![0u8; size as usize];
                host.read_file(file.as_str(), &mut data)
                    .map_err(|err| LoaderError::Host {
                        index,
                        file,
                        op: "reading",
                        err,
                    })?;
                let zone = if host.has_fseg() { zone } else { Zone::High };
                let addr = host
                    .allocate(file.as_str(), size, align, zone)
                    .map_err(|err| LoaderError::Host {
                        index,
                        file,
                        op: "allocating",
                        err,
                    })?;
                if !addr.is_multiple_of(u64::from(align)) || !zone.contains(addr, size) {
                    return Err(LoaderError::BadAllocation {
                        index,
                        file,
                        addr,
                        size,
                        align,
                        zone,
                    });
                }
                out.blobs.push(Blob {
                    name: file,
                    addr,
                    zone,
                    align,
                    data,
                });
            }
            Command::AddPointer {
                dest,
                src,
                offset,
                size,
            } => {
                let d = find(&out.blobs, index, dest)?;
                let s = find(&out.blobs, index, src)?;
                let (src_addr, src_size) = (out.blobs[s].addr, out.blobs[s].data.len());
                let data = &mut out.blobs[d].data;
                let r = range(index, dest, "pointer", offset, u64::from(size), data.len())?;
                let mut buf = [0u8; 8];
                // `r` has exactly `size` (<= 8) bytes.
                buf[..r.len()].copy_from_slice(&data[r.clone()]);
                let value = u64::from_le_bytes(buf);
                if value >= src_size as u64 {
                    return Err(LoaderError::PointerOutsideSource {
                        index,
                        src,
                        value,
                        src_size: src_size as u64,
                    });
                }
                let patched = value.saturating_add(src_addr);
                let bytes = fit(patched, size).ok_or(LoaderError::PointerOverflow {
                    index,
                    file: dest,
                    value: patched,
                    size,
                })?;
                data[r].copy_from_slice(&bytes[..usize::from(size)]);
            }
            Command::AddChecksum {
                file,
                result_offset,
                start,
                length,
            } => {
                let b = find(&out.blobs, index, file)?;
                let data = &mut out.blobs[b].data;
                let at = range(index, file, "checksum byte", result_offset, 1, data.len())?.start;
                let r = range(
                    index,
                    file,
                    "checksum range",
                    start,
                    u64::from(length),
                    data.len(),
                )?;
                data[at] = 0;
                let sum = data[r].iter().fold(0u8, |a, &x| a.wrapping_add(x));
                data[at] = sum.wrapping_neg();
            }
            Command::WritePointer {
                dest,
                src,
                dst_offset,
                src_offset,
                size,
            } => {
                let s = find(&out.blobs, index, src)?;
                let src_blob = &out.blobs[s];
                if u64::from(src_offset) >= src_blob.data.len() as u64 {
                    return Err(LoaderError::OutOfBounds {
                        index,
                        file: src,
                        what: "source offset",
                        offset: u64::from(src_offset),
                        len: 1,
                        file_size: src_blob.data.len() as u64,
                    });
                }
                let dest_size = host
                    .file_size(dest.as_str())
                    .ok_or(LoaderError::UnknownFile { index, file: dest })?;
                range(
                    index,
                    dest,
                    "pointer",
                    dst_offset,
                    u64::from(size),
                    dest_size as usize,
                )?;
                let value = src_blob.addr.saturating_add(u64::from(src_offset));
                let bytes = fit(value, size).ok_or(LoaderError::PointerOverflow {
                    index,
                    file: dest,
                    value,
                    size,
                })?;
                host.write_file(dest.as_str(), dst_offset, &bytes[..usize::from(size)])
                    .map_err(|err| LoaderError::Host {
                        index,
                        file: dest,
                        op: "writing",
                        err,
                    })?;
                out.pointers_written += 1;
            }
        }
    }
    Ok(out)
}
