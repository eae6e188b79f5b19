//! GUIDs in the UEFI byte layout and their registry-format text.

use core::fmt;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// A GUID as UEFI stores it: `Data1` (u32), `Data2` and `Data3` (u16) are
/// little-endian, the last eight bytes are kept in text order.
#[repr(C)]
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
pub struct Guid(pub [u8; 16]);

const _: () = assert!(core::mem::size_of::<Guid>() == 16);

/// Why GUID text was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuidParseError {
    /// The text is not 36 characters (`8-4-4-4-12`).
    Length(usize),
    /// A `-` is missing at this character index.
    MissingDash(usize),
    /// A character that is not a hex digit at this index.
    NotHex(usize),
}

impl fmt::Display for GuidParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuidParseError::Length(n) => {
                write!(f, "GUID text must be 36 characters (8-4-4-4-12), got {n}")
            }
            GuidParseError::MissingDash(i) => write!(f, "GUID text needs '-' at index {i}"),
            GuidParseError::NotHex(i) => write!(f, "GUID text has a non-hex digit at index {i}"),
        }
    }
}

/// On-disk byte `i` comes from the `ORDER[i]`-th hex pair of the text: the
/// first three fields are little-endian in memory.
const ORDER: [usize; 16] = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];

const fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl Guid {
    /// The all-zero GUID.
    pub const ZERO: Guid = Guid([0; 16]);

    /// Builds a GUID from the registry fields, as the UEFI spec writes them.
    pub const fn from_fields(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Guid {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4],
            d4[5], d4[6], d4[7],
        ])
    }

    /// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (either case).
    pub const fn parse(text: &str) -> Result<Guid, GuidParseError> {
        let t = text.as_bytes();
        if t.len() != 36 {
            return Err(GuidParseError::Length(t.len()));
        }
        let mut pairs = [0u8; 16];
        let mut pair = 0;
        let mut i = 0;
        while i < 36 {
            if i == 8 || i == 13 || i == 18 || i == 23 {
                if t[i] != b'-' {
                    return Err(GuidParseError::MissingDash(i));
                }
                i += 1;
                continue;
            }
            let hi = match hex_val(t[i]) {
                Some(v) => v,
                None => return Err(GuidParseError::NotHex(i)),
            };
            let lo = match hex_val(t[i + 1]) {
                Some(v) => v,
                None => return Err(GuidParseError::NotHex(i + 1)),
            };
            pairs[pair] = (hi << 4) | lo;
            pair += 1;
            i += 2;
        }
        let mut out = [0u8; 16];
        let mut k = 0;
        while k < 16 {
            out[k] = pairs[ORDER[k]];
            k += 1;
        }
        Ok(Guid(out))
    }

    /// Parses a GUID at compile time; fails the build on bad text.
    pub const fn from_str_const(text: &str) -> Guid {
        match Guid::parse(text) {
            Ok(g) => g,
            Err(_) => panic!("invalid GUID literal"),
        }
    }
}

/// Upper-case registry format, as EDK2's `%g` (and so OVMF) prints it.
impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, &src) in ORDER.iter().enumerate() {
            if n == 4 || n == 6 || n == 8 || n == 10 {
                f.write_str("-")?;
            }
            // ORDER is its own inverse, so it also maps text pair -> byte.
            write!(f, "{:02X}", self.0.get(src).copied().unwrap_or(0))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn parse_matches_fields_and_layout() {
        // EFI_GLOBAL_VARIABLE, from the UEFI spec (section 3.3).
        let g = Guid::parse("8be4df61-93ca-11d2-aa0d-00e098032b8c").unwrap();
        assert_eq!(
            g,
            Guid::from_fields(
                0x8be4df61,
                0x93ca,
                0x11d2,
                [0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c]
            )
        );
        assert_eq!(&g.0[..4], &[0x61, 0xdf, 0xe4, 0x8b]);
        assert_eq!(g.to_string(), "8BE4DF61-93CA-11D2-AA0D-00E098032B8C");
    }

    #[test]
    fn bad_text() {
        assert_eq!(Guid::parse("abc"), Err(GuidParseError::Length(3)));
        assert_eq!(
            Guid::parse("8be4df61x93ca-11d2-aa0d-00e098032b8c"),
            Err(GuidParseError::MissingDash(8))
        );
        assert_eq!(
            Guid::parse("8be4df6g-93ca-11d2-aa0d-00e098032b8c"),
            Err(GuidParseError::NotHex(7))
        );
    }
}
