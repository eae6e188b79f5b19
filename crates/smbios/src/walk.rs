//! A bounded walker over an SMBIOS structure table (DSP0134 §6.1).

use core::iter::FusedIterator;
use core::mem::size_of;

use zerocopy::FromBytes;

use crate::entry::Header;
use crate::types::TYPE_END_OF_TABLE;
use crate::Error;

/// Iterates the structures of a table, front to back.
///
/// Yields `Ok` for each well-formed structure, including the End-of-Table
/// (type 127) structure, after which it stops even if bytes follow. The
/// first malformed structure yields one `Err` and ends the walk. Every
/// step consumes at least 6 bytes, so a table of `n` bytes yields at most
/// `n / 6 + 1` items.
#[derive(Debug, Clone)]
pub struct Structures<'a> {
    table: &'a [u8],
    offset: usize,
    done: bool,
}

impl<'a> Structures<'a> {
    /// A walk over `table`.
    pub fn new(table: &'a [u8]) -> Self {
        Structures {
            table,
            offset: 0,
            done: false,
        }
    }

    /// Bytes consumed by the structures yielded so far.
    pub fn consumed(&self) -> usize {
        self.offset
    }

    fn step(&mut self) -> Result<Structure<'a>, Error> {
        let offset = self.offset;
        let rest = self.table.get(offset..).unwrap_or_default();
        let (hdr, _) = Header::read_from_prefix(rest).map_err(|_| Error::TruncatedHeader {
            offset,
            remaining: rest.len(),
        })?;
        let length = usize::from(hdr.length);
        if length < size_of::<Header>() {
            return Err(Error::BadStructureLength {
                offset,
                kind: hdr.kind,
                length: hdr.length,
            });
        }
        let (formatted, after) =
            rest.split_at_checked(length)
                .ok_or(Error::TruncatedStructure {
                    offset,
                    kind: hdr.kind,
                    length: hdr.length,
                    remaining: rest.len(),
                })?;
        // The string set ends at the first double NUL after the formatted
        // area (two NULs on their own when there are no strings).
        let end = after
            .windows(2)
            .position(|w| w == [0, 0])
            .ok_or(Error::MissingTerminator {
                offset,
                kind: hdr.kind,
            })?;
        let strings = after.get(..end).unwrap_or_default();
        self.offset = offset + length + end + 2;
        Ok(Structure {
            kind: hdr.kind,
            handle: hdr.handle.get(),
            offset,
            formatted,
            strings,
        })
    }
}

impl<'a> Iterator for Structures<'a> {
    type Item = Result<Structure<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.offset >= self.table.len() {
            self.done = true;
            return None;
        }
        let item = self.step();
        self.done = match &item {
            Ok(s) => s.kind == TYPE_END_OF_TABLE,
            Err(_) => true,
        };
        Some(item)
    }
}

impl FusedIterator for Structures<'_> {}

/// One structure of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Structure<'a> {
    /// Structure type.
    pub kind: u8,
    /// Structure handle.
    pub handle: u16,
    /// Offset of the structure in the table.
    pub offset: usize,
    /// The formatted area, header included, so spec offsets index it
    /// directly; its length is the header's length field.
    pub formatted: &'a [u8],
    /// The string set without its terminating NULs: `s1 NUL s2 ... sn`,
    /// empty when the structure has no strings.
    strings: &'a [u8],
}

impl<'a> Structure<'a> {
    /// Total size in the table: formatted area, strings and terminators.
    pub fn size(&self) -> usize {
        self.formatted.len() + self.strings.len() + 2
    }

    /// The strings, in order (string number 1 first), without NULs.
    ///
    /// Well-formed strings are non-empty; a malformed set that starts with a
    /// NUL yields an empty first string, as readers that count NULs see it.
    pub fn strings(&self) -> Strings<'a> {
        Strings {
            rest: (!self.strings.is_empty()).then_some(self.strings),
        }
    }

    /// String number `n` (1-based, as stored in string fields); `None` for
    /// 0 ("no string") and for numbers past the end of the set.
    pub fn string(&self, n: u8) -> Option<&'a [u8]> {
        let i = usize::from(n).checked_sub(1)?;
        self.strings().nth(i)
    }

    /// Decode the formatted area as `T`, if it is at least that long.
    ///
    /// Structures may be shorter than the newest layout (older spec
    /// versions), so callers pick the layout the length allows.
    pub fn read<T: FromBytes>(&self) -> Option<T> {
        T::read_from_prefix(self.formatted).ok().map(|(t, _)| t)
    }
}

/// The strings of a [`Structure`].
#[derive(Debug, Clone)]
pub struct Strings<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Iterator for Strings<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match rest.iter().position(|&b| b == 0) {
            Some(i) => {
                self.rest = rest.get(i + 1..);
                rest.get(..i)
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

impl FusedIterator for Strings<'_> {}
