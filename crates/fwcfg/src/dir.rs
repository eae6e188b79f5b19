//! The file directory, item [`FILE_DIR`](crate::FILE_DIR): a big-endian u32
//! count followed by that many 64-byte [`FwCfgFile`] entries.
//!
//! The firmware reads the 4-byte count first, asks [`Directory::required_len`]
//! how much to read in total, then parses the whole item. A count that
//! promises more entries than the bytes hold is an error
//! ([`DirError::Truncated`]), not a silent truncation: a short read means the
//! I/O went wrong and a partial directory could hide `etc/table-loader`.
//! Bytes after the last entry are ignored.

use crate::FILE_NAME_SIZE;
use core::fmt;
use core::mem::size_of;
use zerocopy::byteorder::{BigEndian, U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Most entries we accept: file selectors are 14-bit, so QEMU cannot have
/// more than this many files.
pub const MAX_FILES: u32 = 0x4000;

/// One directory entry, as QEMU lays it out.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct FwCfgFile {
    /// Item size in bytes.
    pub size: U32<BigEndian>,
    /// Selector to read the item with.
    pub select: U16<BigEndian>,
    /// Unused.
    pub reserved: U16<BigEndian>,
    /// NUL-terminated name.
    pub name: [u8; FILE_NAME_SIZE],
}
const _: () = assert!(size_of::<FwCfgFile>() == 64);

/// Size of the count that precedes the entries.
const COUNT_SIZE: usize = size_of::<U32<BigEndian>>();

/// Why the directory could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirError {
    /// Fewer than 4 bytes: not even a count.
    NoCount {
        /// Bytes available.
        len: usize,
    },
    /// The count exceeds [`MAX_FILES`].
    TooManyFiles {
        /// The count field.
        count: u32,
    },
    /// The count needs more bytes than were given.
    Truncated {
        /// The count field.
        count: u32,
        /// Bytes the count requires (4 + 64 × count).
        needed: usize,
        /// Bytes available.
        len: usize,
    },
}

impl fmt::Display for DirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirError::NoCount { len } => {
                write!(f, "fw_cfg file directory is {len} bytes, too short for its 4-byte count")
            }
            DirError::TooManyFiles { count } => write!(
                f,
                "fw_cfg file directory claims {count} files (limit {MAX_FILES})"
            ),
            DirError::Truncated { count, needed, len } => write!(
                f,
                "fw_cfg file directory claims {count} files ({needed} bytes) but only {len} bytes were read"
            ),
        }
    }
}

/// A parsed directory borrowing the item's bytes.
#[derive(Clone, Copy, Debug)]
pub struct Directory<'a> {
    entries: &'a [FwCfgFile],
}

/// One file in the directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileEntry<'a> {
    /// Item size in bytes.
    pub size: u32,
    /// Selector to read it with.
    pub select: u16,
    name: &'a [u8],
}

impl<'a> FileEntry<'a> {
    /// The name's bytes up to the NUL. A name without a NUL is taken as all
    /// 56 bytes; non-UTF-8 names are kept as they are.
    pub fn name_bytes(&self) -> &'a [u8] {
        self.name
    }

    /// The name, if it is UTF-8.
    pub fn name(&self) -> Option<&'a str> {
        core::str::from_utf8(self.name).ok()
    }
}

fn entry(f: &FwCfgFile) -> FileEntry<'_> {
    let end = f
        .name
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(FILE_NAME_SIZE);
    FileEntry {
        size: f.size.get(),
        select: f.select.get(),
        name: &f.name[..end],
    }
}

impl<'a> Directory<'a> {
    /// Total item length implied by the first 4 bytes (the count), so the
    /// caller knows how much to read.
    pub fn required_len(head: &[u8]) -> Result<usize, DirError> {
        let (count, _) = U32::<BigEndian>::read_from_prefix(head)
            .map_err(|_| DirError::NoCount { len: head.len() })?;
        let count = count.get();
        if count > MAX_FILES {
            return Err(DirError::TooManyFiles { count });
        }
        // count <= 0x4000, so this cannot overflow.
        Ok(COUNT_SIZE + count as usize * size_of::<FwCfgFile>())
    }

    /// Parse the directory item.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DirError> {
        let needed = Self::required_len(bytes)?;
        let count = (needed - COUNT_SIZE) / size_of::<FwCfgFile>();
        let body = bytes.get(COUNT_SIZE..needed).ok_or(DirError::Truncated {
            count: count as u32,
            needed,
            len: bytes.len(),
        })?;
        // `body` is exactly count × 64 bytes and the entry type is unaligned.
        let entries = <[FwCfgFile]>::ref_from_bytes(body).map_err(|_| DirError::Truncated {
            count: count as u32,
            needed,
            len: bytes.len(),
        })?;
        Ok(Directory { entries })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The raw entries.
    pub fn raw(&self) -> &'a [FwCfgFile] {
        self.entries
    }

    /// Entries in directory order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = FileEntry<'a>> + 'a {
        self.entries.iter().map(entry)
    }

    /// The first entry named `name` (exact byte comparison).
    pub fn find(&self, name: &str) -> Option<FileEntry<'a>> {
        self.find_bytes(name.as_bytes())
    }

    /// The first entry whose name bytes equal `name`.
    pub fn find_bytes(&self, name: &[u8]) -> Option<FileEntry<'a>> {
        self.iter().find(|e| e.name == name)
    }
}
