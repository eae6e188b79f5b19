//! `EFI_LOAD_OPTION` (UEFI spec 3.1.3): the contents of `Boot####`,
//! `Driver####` and friends, as written by installers, `efibootmgr` and
//! shim's fallback. The boot manager reads them; they are OS-written data,
//! so parsing is bounds-checked and returns typed errors.
//!
//! ```text
//! u32      Attributes
//! u16      FilePathListLength          (bytes)
//! CHAR16[] Description                 (NUL-terminated)
//! u8[]     FilePathList                (device paths, FilePathListLength bytes)
//! u8[]     OptionalData                (the rest)
//! ```

use crate::devpath::{DevPathError, DevicePath};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// The option is active: the boot manager tries it.
pub const LOAD_OPTION_ACTIVE: u32 = 0x0000_0001;
/// Forces a reconnect of drivers (driver options only).
pub const LOAD_OPTION_FORCE_RECONNECT: u32 = 0x0000_0002;
/// Hidden from boot menus.
pub const LOAD_OPTION_HIDDEN: u32 = 0x0000_0008;
/// The option's category bits (boot or application).
pub const LOAD_OPTION_CATEGORY: u32 = 0x0000_1f00;
/// A normal boot option.
pub const LOAD_OPTION_CATEGORY_BOOT: u32 = 0x0000_0000;
/// An application started only on request (not in a normal boot).
pub const LOAD_OPTION_CATEGORY_APP: u32 = 0x0000_0100;

/// Longest description Ember accepts, in UTF-16 units (a sanity bound on
/// OS-written data, far above what any tool writes).
pub const MAX_DESCRIPTION: usize = 1024;

/// A decoded load option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadOption {
    pub attributes: u32,
    /// UTF-16 units, without the terminating NUL.
    pub description: Vec<u16>,
    /// The first device path of `FilePathList` (the one to load), as bytes,
    /// ending in End-Entire; further instances are dropped (the spec leaves
    /// their meaning to the option's owner).
    pub file_path: Vec<u8>,
    /// Everything after `FilePathList`: handed to the image as LoadOptions.
    pub optional_data: Vec<u8>,
}

/// Why a load option could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadOptionError {
    /// Fewer bytes than the fixed header (6).
    TooShort { len: usize },
    /// No NUL ends the description within the option (or within the bound).
    UnterminatedDescription,
    /// `FilePathListLength` runs past the option's end.
    FilePathBeyondEnd {
        offset: usize,
        length: usize,
        total: usize,
    },
    /// `FilePathListLength` is zero: there is nothing to load.
    EmptyFilePath,
    /// The file path list is not a well-formed device path.
    BadFilePath(DevPathError),
}

impl fmt::Display for LoadOptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadOptionError::TooShort { len } => write!(f, "load option of {len} bytes is shorter than its 6-byte header"),
            LoadOptionError::UnterminatedDescription => f.write_str("load option description has no terminating NUL"),
            LoadOptionError::FilePathBeyondEnd { offset, length, total } => write!(
                f,
                "load option file path list ({length} bytes at offset {offset}) runs past its end ({total} bytes)"
            ),
            LoadOptionError::EmptyFilePath => f.write_str("load option has an empty file path list"),
            LoadOptionError::BadFilePath(e) => write!(f, "load option file path: {e}"),
        }
    }
}

impl LoadOption {
    /// Decode `Boot####` contents.
    pub fn parse(buf: &[u8]) -> Result<LoadOption, LoadOptionError> {
        let (attr, rest) = buf
            .split_first_chunk::<4>()
            .ok_or(LoadOptionError::TooShort { len: buf.len() })?;
        let (fpl, rest) = rest
            .split_first_chunk::<2>()
            .ok_or(LoadOptionError::TooShort { len: buf.len() })?;
        let attributes = u32::from_le_bytes(*attr);
        let fpl = usize::from(u16::from_le_bytes(*fpl));
        let mut description = Vec::new();
        let mut at = 6;
        loop {
            let unit = rest
                .get(at - 6..at - 4)
                .ok_or(LoadOptionError::UnterminatedDescription)?;
            at += 2;
            let u = u16::from_le_bytes([unit[0], unit[1]]);
            if u == 0 {
                break;
            }
            if description.len() >= MAX_DESCRIPTION {
                return Err(LoadOptionError::UnterminatedDescription);
            }
            description.push(u);
        }
        if fpl == 0 {
            return Err(LoadOptionError::EmptyFilePath);
        }
        let list = buf
            .get(at..at + fpl)
            .ok_or(LoadOptionError::FilePathBeyondEnd {
                offset: at,
                length: fpl,
                total: buf.len(),
            })?;
        let dp = DevicePath::parse(list).map_err(LoadOptionError::BadFilePath)?;
        let file_path = dp.instances().into_iter().next().unwrap_or_default();
        Ok(LoadOption {
            attributes,
            description,
            file_path,
            optional_data: buf[at + fpl..].to_vec(),
        })
    }

    /// Encode as `Boot####` contents (the file path list is `file_path`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            6 + 2 * (self.description.len() + 1) + self.file_path.len() + self.optional_data.len(),
        );
        out.extend_from_slice(&self.attributes.to_le_bytes());
        out.extend_from_slice(
            &(self.file_path.len().min(usize::from(u16::MAX)) as u16).to_le_bytes(),
        );
        for u in self.description.iter().chain(core::iter::once(&0)) {
            out.extend_from_slice(&u.to_le_bytes());
        }
        out.extend_from_slice(&self.file_path);
        out.extend_from_slice(&self.optional_data);
        out
    }

    /// Whether the boot manager should try it in a normal boot.
    pub fn is_bootable(&self) -> bool {
        self.attributes & LOAD_OPTION_ACTIVE != 0
            && self.attributes & LOAD_OPTION_CATEGORY == LOAD_OPTION_CATEGORY_BOOT
    }

    /// The description as text (lossy).
    pub fn description(&self) -> String {
        String::from_utf16_lossy(&self.description)
    }
}

/// `Boot####` variable name for option number `n` (upper-case hex, as the
/// spec requires).
pub fn boot_variable_name(n: u16) -> String {
    alloc::format!("Boot{n:04X}")
}

/// Decode a `BootOrder` (or `BootNext`) value: little-endian u16s; an odd
/// trailing byte is ignored.
pub fn parse_boot_order(buf: &[u8]) -> Vec<u16> {
    buf.chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// `\EFI\debian\shimx64.efi` as a File Path media node plus the end node.
    fn file_path(p: &str) -> Vec<u8> {
        let units: Vec<u16> = p.encode_utf16().chain(core::iter::once(0)).collect();
        let len = 4 + 2 * units.len();
        let mut v = vec![4, 4, len as u8, (len >> 8) as u8];
        for u in units {
            v.extend_from_slice(&u.to_le_bytes());
        }
        v.extend_from_slice(&[0x7f, 0xff, 4, 0]);
        v
    }

    fn opt(desc: &str, path: &[u8], data: &[u8], attrs: u32) -> LoadOption {
        LoadOption {
            attributes: attrs,
            description: desc.encode_utf16().collect(),
            file_path: path.to_vec(),
            optional_data: data.to_vec(),
        }
    }

    #[test]
    fn round_trips_an_efibootmgr_style_option() {
        let p = file_path("\\EFI\\debian\\shimx64.efi");
        let o = opt("debian", &p, b"\\x00opts", LOAD_OPTION_ACTIVE);
        let bytes = o.to_bytes();
        // Header: attributes, then the path list length.
        assert_eq!(&bytes[..4], &1u32.to_le_bytes());
        assert_eq!(
            usize::from(u16::from_le_bytes([bytes[4], bytes[5]])),
            p.len()
        );
        let back = LoadOption::parse(&bytes).unwrap();
        assert_eq!(back, o);
        assert_eq!(back.description(), "debian");
        assert!(back.is_bootable());
    }

    #[test]
    fn keeps_only_the_first_device_path_instance() {
        let mut list = file_path("\\a.efi");
        let first = list.clone();
        // Turn the end node into an end-of-instance node and append another path.
        let n = list.len();
        list[n - 3] = 0x01;
        list.extend_from_slice(&file_path("\\b.efi"));
        let o = opt("x", &list, &[], LOAD_OPTION_ACTIVE);
        let back = LoadOption::parse(&o.to_bytes()).unwrap();
        assert_eq!(back.file_path, first);
    }

    #[test]
    fn inactive_and_app_options_are_not_bootable() {
        let p = file_path("\\x.efi");
        assert!(!opt("x", &p, &[], 0).is_bootable());
        assert!(!opt("x", &p, &[], LOAD_OPTION_ACTIVE | LOAD_OPTION_CATEGORY_APP).is_bootable());
        assert!(opt("x", &p, &[], LOAD_OPTION_ACTIVE | LOAD_OPTION_HIDDEN).is_bootable());
    }

    #[test]
    fn rejects_malformed_options() {
        assert_eq!(
            LoadOption::parse(&[1, 0, 0]),
            Err(LoadOptionError::TooShort { len: 3 })
        );
        // No NUL after the description.
        assert_eq!(
            LoadOption::parse(&[1, 0, 0, 0, 4, 0, b'a', 0]),
            Err(LoadOptionError::UnterminatedDescription)
        );
        // Empty path list.
        assert_eq!(
            LoadOption::parse(&[1, 0, 0, 0, 0, 0, 0, 0]),
            Err(LoadOptionError::EmptyFilePath)
        );
        // Path list longer than the option.
        assert_eq!(
            LoadOption::parse(&[1, 0, 0, 0, 40, 0, 0, 0, 0x7f, 0xff, 4, 0]),
            Err(LoadOptionError::FilePathBeyondEnd {
                offset: 8,
                length: 40,
                total: 12
            })
        );
        // A path list that is not a device path (node length 2 < 4).
        assert!(matches!(
            LoadOption::parse(&[1, 0, 0, 0, 4, 0, 0, 0, 4, 4, 2, 0]),
            Err(LoadOptionError::BadFilePath(_))
        ));
        // An endless description is cut off by the bound, not by memory.
        let mut long = vec![1, 0, 0, 0, 4, 0];
        for _ in 0..(MAX_DESCRIPTION + 5) {
            long.extend_from_slice(&[b'a', 0]);
        }
        long.extend_from_slice(&[0, 0, 0x7f, 0xff, 4, 0]);
        assert_eq!(
            LoadOption::parse(&long),
            Err(LoadOptionError::UnterminatedDescription)
        );
    }

    #[test]
    fn truncation_anywhere_is_an_error_not_a_panic() {
        let p = file_path("\\EFI\\BOOT\\BOOTX64.EFI");
        let bytes = opt("removable", &p, b"data", LOAD_OPTION_ACTIVE).to_bytes();
        let header_and_path = bytes.len() - 4;
        for cut in 0..header_and_path {
            assert!(LoadOption::parse(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        // Cutting only optional data is fine: it is just shorter.
        assert_eq!(
            LoadOption::parse(&bytes[..header_and_path + 2])
                .unwrap()
                .optional_data,
            b"da"
        );
    }

    #[test]
    fn boot_order_and_names() {
        assert_eq!(parse_boot_order(&[1, 0, 0x0a, 0, 0xff]), vec![1, 10]);
        assert_eq!(boot_variable_name(0x00ab), "Boot00AB");
    }
}
