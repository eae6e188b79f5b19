//! GUIDs as stored on disk (UEFI mixed-endian layout) and their text form.

use core::fmt;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// A GUID in the on-disk byte order used by GPT and UEFI: the first three
/// fields are little-endian, the last eight bytes are stored as written.
#[repr(C)]
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
pub struct Guid([u8; 16]);

const _: () = assert!(core::mem::size_of::<Guid>() == 16);

/// Why a GUID string was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuidParseError {
    /// The text is not 36 characters long.
    Length(usize),
    /// A dash is missing at this character index.
    MissingDash(usize),
    /// A non-hex character at this character index.
    NotHex(usize),
}

impl fmt::Display for GuidParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuidParseError::Length(n) => {
                write!(f, "GUID text must be 36 characters (8-4-4-4-12), got {n}")
            }
            GuidParseError::MissingDash(i) => write!(f, "GUID text needs '-' at position {i}"),
            GuidParseError::NotHex(i) => write!(f, "GUID text has a non-hex digit at position {i}"),
        }
    }
}

/// Where each on-disk byte comes from in the text: text byte pair index
/// (0..16, counting hex pairs left to right, dashes excluded). The first
/// three groups are byte-swapped because they are little-endian on disk.
const DISK_FROM_TEXT: [usize; 16] = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];

const fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl Guid {
    /// The all-zero GUID, which marks an unused GPT entry.
    pub const ZERO: Guid = Guid([0; 16]);
    /// EFI System Partition type.
    pub const ESP: Guid = Guid::from_str_const("C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    /// Extended Boot Loader Partition (XBOOTLDR) type, from the UAPI
    /// Discoverable Partitions Specification.
    pub const XBOOTLDR: Guid = Guid::from_str_const("BC13C2FF-59E6-4262-A352-B275FD6F7172");
    /// Generic Linux filesystem data type.
    pub const LINUX_FS: Guid = Guid::from_str_const("0FC63DAF-8483-4772-8E79-3D69D8477DE4");

    /// A GUID from its 16 on-disk bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Guid {
        Guid(bytes)
    }

    /// The 16 on-disk bytes.
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// Whether this is the all-zero GUID.
    pub const fn is_zero(&self) -> bool {
        let mut i = 0;
        while i < 16 {
            if self.0[i] != 0 {
                return false;
            }
            i += 1;
        }
        true
    }

    /// Parse the canonical text form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`
    /// (either case).
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
            out[k] = pairs[DISK_FROM_TEXT[k]];
            k += 1;
        }
        Ok(Guid(out))
    }

    /// [`Guid::parse`] for constants: invalid text fails the build.
    pub const fn from_str_const(text: &str) -> Guid {
        match Guid::parse(text) {
            Ok(g) => g,
            Err(_) => panic!("invalid GUID literal"),
        }
    }
}

impl core::str::FromStr for Guid {
    type Err = GuidParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Guid::parse(s)
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Text order of the on-disk bytes: the inverse of DISK_FROM_TEXT.
        let mut text = [0u8; 16];
        for (disk, &pair) in DISK_FROM_TEXT.iter().enumerate() {
            text[pair] = self.0[disk];
        }
        for (i, b) in text.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
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
    fn esp_on_disk_bytes_match_uefi_layout() {
        // UEFI spec Table 5.7 / EFI_GUID: Data1..Data3 little-endian.
        assert_eq!(
            Guid::ESP.to_bytes(),
            [
                0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e,
                0xc9, 0x3b
            ]
        );
        assert_eq!(
            Guid::ESP.to_string(),
            "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
        );
        assert_eq!(
            Guid::XBOOTLDR.to_string(),
            "bc13c2ff-59e6-4262-a352-b275fd6f7172"
        );
        assert_eq!(
            Guid::LINUX_FS.to_string(),
            "0fc63daf-8483-4772-8e79-3d69d8477de4"
        );
    }

    #[test]
    fn parse_rejects_bad_text() {
        assert_eq!(Guid::parse(""), Err(GuidParseError::Length(0)));
        assert_eq!(
            Guid::parse("c12a7328-f81f-11d2-ba4b-00a0c93ec93"),
            Err(GuidParseError::Length(35))
        );
        assert_eq!(
            Guid::parse("c12a7328xf81f-11d2-ba4b-00a0c93ec93b"),
            Err(GuidParseError::MissingDash(8))
        );
        assert_eq!(
            Guid::parse("c12a7328-f81f-11d2-ba4b-00a0c93ec93g"),
            Err(GuidParseError::NotHex(35))
        );
        // Non-ASCII must not cause slicing panics.
        assert!(Guid::parse("c12a7328-f81f-11d2-ba4b-00a0c93ec9éb").is_err());
        assert!(!Guid::parse("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
            .unwrap()
            .is_zero());
        assert!(Guid::ZERO.is_zero());
    }
}
