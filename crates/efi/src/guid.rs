//! `EFI_GUID` in its in-memory (mixed-endian) layout.

use core::fmt;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// An `EFI_GUID` exactly as it sits in memory: `Data1..Data3` little-endian,
/// `Data4` as bytes. The firmware can copy 16 bytes straight into it.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    FromBytes,
    IntoBytes,
    Immutable,
    KnownLayout,
    Unaligned,
)]
#[repr(C)]
pub struct Guid(pub [u8; 16]);

const _: () = assert!(core::mem::size_of::<Guid>() == 16);

impl Guid {
    /// Builds a GUID from the `{Data1, Data2, Data3, {Data4}}` form the
    /// spec and C headers use.
    pub const fn from_fields(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Guid {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4],
            d4[5], d4[6], d4[7],
        ])
    }

    /// Parses canonical text (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, any case).
    pub fn parse(s: &str) -> Result<Guid, GuidParseError> {
        let b = s.as_bytes();
        if b.len() != 36 {
            return Err(GuidParseError::Length(b.len()));
        }
        // Text order of the 16 bytes as hex pairs, and where dashes go.
        let mut text = [0u8; 16];
        let mut pos = 0usize;
        for (i, slot) in text.iter_mut().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                if b.get(pos) != Some(&b'-') {
                    return Err(GuidParseError::Syntax(pos));
                }
                pos += 1;
            }
            let hi = b
                .get(pos)
                .and_then(|c| hex(*c))
                .ok_or(GuidParseError::Syntax(pos))?;
            let lo = b
                .get(pos + 1)
                .and_then(|c| hex(*c))
                .ok_or(GuidParseError::Syntax(pos + 1))?;
            *slot = (hi << 4) | lo;
            pos += 2;
        }
        let t = text;
        Ok(Guid::from_fields(
            u32::from_be_bytes([t[0], t[1], t[2], t[3]]),
            u16::from_be_bytes([t[4], t[5]]),
            u16::from_be_bytes([t[6], t[7]]),
            [t[8], t[9], t[10], t[11], t[12], t[13], t[14], t[15]],
        ))
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Why GUID text was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuidParseError {
    /// The text is not 36 characters long.
    Length(usize),
    /// A character at this offset is not a hex digit or expected dash.
    Syntax(usize),
}

impl fmt::Display for GuidParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuidParseError::Length(n) => {
                write!(f, "GUID text is {n} characters; expected 36 (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
            }
            GuidParseError::Syntax(at) => {
                write!(f, "GUID text has an unexpected character at offset {at}")
            }
        }
    }
}

impl core::error::Error for GuidParseError {}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
            u16::from_le_bytes([g[4], g[5]]),
            u16::from_le_bytes([g[6], g[7]]),
            g[8],
            g[9],
            g[10],
            g[11],
            g[12],
            g[13],
            g[14],
            g[15]
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `EFI_EVENT_GROUP_EXIT_BOOT_SERVICES`.
pub const EVENT_GROUP_EXIT_BOOT_SERVICES: Guid = Guid::from_fields(
    0x27ab_f055,
    0xb1b8,
    0x4c26,
    [0x80, 0x48, 0x74, 0x8f, 0x37, 0xba, 0xa2, 0xdf],
);
/// `EFI_EVENT_GROUP_VIRTUAL_ADDRESS_CHANGE`.
pub const EVENT_GROUP_VIRTUAL_ADDRESS_CHANGE: Guid = Guid::from_fields(
    0x13fa_7698,
    0xc831,
    0x49c7,
    [0x87, 0xea, 0x8f, 0x43, 0xfc, 0xc2, 0x51, 0x96],
);
/// `EFI_DEVICE_PATH_PROTOCOL_GUID`.
pub const DEVICE_PATH_PROTOCOL: Guid = Guid::from_fields(
    0x0957_6e91,
    0x6d3f,
    0x11d2,
    [0x8e, 0x39, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b],
);

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use zerocopy::IntoBytes;

    #[test]
    fn memory_layout_matches_python_uuid_bytes_le() {
        // python3: uuid.UUID('27abf055-b1b8-4c26-8048-748f37baa2df').bytes_le.hex()
        let want = [
            0x55, 0xf0, 0xab, 0x27, 0xb8, 0xb1, 0x26, 0x4c, 0x80, 0x48, 0x74, 0x8f, 0x37, 0xba,
            0xa2, 0xdf,
        ];
        assert_eq!(EVENT_GROUP_EXIT_BOOT_SERVICES.as_bytes(), &want);
        // ...('09576e91-6d3f-11d2-8e39-00a0c969723b').bytes_le.hex()
        let want_dp = [
            0x91, 0x6e, 0x57, 0x09, 0x3f, 0x6d, 0xd2, 0x11, 0x8e, 0x39, 0x00, 0xa0, 0xc9, 0x69,
            0x72, 0x3b,
        ];
        assert_eq!(DEVICE_PATH_PROTOCOL.0, want_dp);
        assert_eq!(
            Guid::read_from_bytes(&want_dp[..]).unwrap(),
            DEVICE_PATH_PROTOCOL
        );
    }

    #[test]
    fn display_and_parse_round_trip() {
        assert_eq!(
            EVENT_GROUP_EXIT_BOOT_SERVICES.to_string(),
            "27abf055-b1b8-4c26-8048-748f37baa2df"
        );
        assert_eq!(
            EVENT_GROUP_VIRTUAL_ADDRESS_CHANGE.to_string(),
            "13fa7698-c831-49c7-87ea-8f43fcc25196"
        );
        assert_eq!(
            Guid::parse("09576E91-6D3F-11D2-8E39-00A0C969723B"),
            Ok(DEVICE_PATH_PROTOCOL)
        );
        let g = Guid::parse("c12a7328-f81f-11d2-ba4b-00a0c93ec93b").unwrap();
        assert_eq!(g.to_string(), "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
    }

    #[test]
    fn parse_rejects_bad_text() {
        assert_eq!(Guid::parse(""), Err(GuidParseError::Length(0)));
        assert_eq!(
            Guid::parse("c12a7328xf81f-11d2-ba4b-00a0c93ec93b"),
            Err(GuidParseError::Syntax(8))
        );
        assert_eq!(
            Guid::parse("g12a7328-f81f-11d2-ba4b-00a0c93ec93b"),
            Err(GuidParseError::Syntax(0))
        );
        assert!(Guid::parse("c12a7328-f81f-11d2-ba4b-00a0c93ec93bx").is_err());
        // Multi-byte UTF-8 of the right byte length must not panic.
        assert!(Guid::parse("é12a7328-f81f-11d2-ba4b-00a0c93ec93").is_err());
    }
}
