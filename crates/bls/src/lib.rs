//! Boot Loader Specification (UAPI.1) type #1 entries, `loader.conf`, and
//! the ordering/default-selection rules systemd-boot applies to them.
//!
//! Entry files come from a filesystem the firmware does not trust: input is
//! size-capped, must be UTF-8 text, and every problem is a typed error.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod conf;
mod glob;
mod select;
mod uki;
pub use uki::{os_release_value, read_uki, uki_entry};
mod version;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

pub use conf::{parse_loader_conf, LoaderConf, Timeout};
pub use glob::glob_match;
pub use select::{
    arch_matches, entry_cmp, select_default, select_default_for_arch, sort_entries, Reason,
    Selection,
};
pub use version::version_cmp;

/// Largest entry or `loader.conf` file we parse (real ones are < 1 KiB).
pub const MAX_FILE_SIZE: usize = 64 * 1024;

/// Architectures named by the spec for the `architecture` key (UEFI short
/// names, compared case-insensitively).
pub const KNOWN_ARCHITECTURES: [&str; 9] = [
    "ia32",
    "x64",
    "ia64",
    "arm",
    "aa64",
    "riscv32",
    "riscv64",
    "loongarch32",
    "loongarch64",
];

/// One parsed type #1 boot entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    /// File name minus `.conf` and minus the boot-counting suffix.
    pub id: String,
    /// The file name as given (with `.conf` and any counter).
    pub file_name: String,
    /// `title`: menu text.
    pub title: Option<String>,
    /// `version`: compared with [`version_cmp`].
    pub version: Option<String>,
    /// `machine-id`.
    pub machine_id: Option<String>,
    /// `sort-key`.
    pub sort_key: Option<String>,
    /// `linux`: path of the kernel image.
    pub linux: Option<String>,
    /// `initrd` lines, in file order.
    pub initrd: Vec<String>,
    /// All `options` lines joined with single spaces.
    pub options: Option<String>,
    /// `architecture`, lower-cased (e.g. `x64`, `aa64`).
    pub architecture: Option<String>,
    /// `devicetree`.
    pub devicetree: Option<String>,
    /// `efi`: path of an EFI program to run instead of a kernel.
    pub efi: Option<String>,
    /// Boot counting: attempts left (`+LEFT` in the file name).
    pub tries_left: Option<u32>,
    /// Boot counting: attempts made (`-DONE` in the file name).
    pub tries_done: Option<u32>,
    /// Keys this crate does not interpret, in file order.
    pub unknown: Vec<(String, String)>,
}

/// Why an entry file was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryError {
    /// The file is larger than [`MAX_FILE_SIZE`].
    TooLarge { file: String, size: usize },
    /// The file contains bytes that are not UTF-8 (1-based line).
    NotUtf8 { file: String, line: usize },
    /// The file contains NUL bytes: binary data, not an entry.
    Binary { file: String, line: usize },
    /// The file name is not `ID[+LEFT[-DONE]].conf` with a non-empty ID.
    BadFileName { file: String },
    /// Neither `linux` nor `efi` is present, so there is nothing to boot.
    NotBootable { file: String },
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryError::TooLarge { file, size } => {
                write!(
                    f,
                    "{file}: {size} bytes is too large for a boot entry (limit {MAX_FILE_SIZE})"
                )
            }
            EntryError::NotUtf8 { file, line } => {
                write!(f, "{file}: line {line} is not valid UTF-8")
            }
            EntryError::Binary { file, line } => {
                write!(
                    f,
                    "{file}: line {line} contains NUL bytes; not a text boot entry"
                )
            }
            EntryError::BadFileName { file } => write!(
                f,
                "{file}: boot entry file names must look like ID.conf or ID+LEFT[-DONE].conf"
            ),
            EntryError::NotBootable { file } => {
                write!(
                    f,
                    "{file}: entry has neither a 'linux' nor an 'efi' line; nothing to boot"
                )
            }
        }
    }
}

/// 1-based line number of byte offset `at`.
pub(crate) fn line_of(contents: &[u8], at: usize) -> usize {
    contents
        .get(..at)
        .map_or(0, |p| p.iter().filter(|&&b| b == b'\n').count())
        + 1
}

/// Split `ID+LEFT[-DONE]` into the ID and counters; names without a valid
/// counter suffix are returned whole (systemd-boot does the same).
pub(crate) fn split_counter(stem: &str) -> (&str, Option<u32>, Option<u32>) {
    let Some(plus) = stem.rfind('+') else {
        return (stem, None, None);
    };
    let (id, counter) = (&stem[..plus], &stem[plus + 1..]);
    let (left, done) = match counter.split_once('-') {
        Some((l, d)) => (l, Some(d)),
        None => (counter, None),
    };
    let num = |s: &str| -> Option<u32> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match (num(left), done.map(num)) {
        (Some(l), None) => (id, Some(l), None),
        (Some(l), Some(Some(d))) => (id, Some(l), Some(d)),
        _ => (stem, None, None),
    }
}

/// Iterate over `(key, value)` pairs of a BLS-style `key value` file:
/// `#` comment lines and blank lines are skipped, CRLF is accepted, keys
/// without a value are dropped.
pub(crate) fn key_values(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split('\n').filter_map(|line| {
        let line = line
            .strip_suffix('\r')
            .unwrap_or(line)
            .trim_matches([' ', '\t']);
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let (k, v) = line.split_once([' ', '\t'])?;
        let v = v.trim_matches([' ', '\t']);
        (!v.is_empty()).then_some((k, v))
    })
}

/// Parse a type #1 entry. `file_name` is the bare name in
/// `/loader/entries/` (e.g. `fedora-6.1.9+3-1.conf`).
pub fn parse_entry(file_name: &str, contents: &[u8]) -> Result<Entry, EntryError> {
    let file = || file_name.to_string();
    if contents.len() > MAX_FILE_SIZE {
        return Err(EntryError::TooLarge {
            file: file(),
            size: contents.len(),
        });
    }
    if let Some(nul) = contents.iter().position(|&b| b == 0) {
        return Err(EntryError::Binary {
            file: file(),
            line: line_of(contents, nul),
        });
    }
    let text = core::str::from_utf8(contents).map_err(|e| EntryError::NotUtf8 {
        file: file(),
        line: line_of(contents, e.valid_up_to()),
    })?;

    let stem = strip_conf(file_name).ok_or_else(|| EntryError::BadFileName { file: file() })?;
    let (id, tries_left, tries_done) = split_counter(stem);
    if id.is_empty() || id.contains(['/', '\\']) {
        return Err(EntryError::BadFileName { file: file() });
    }
    let mut e = Entry {
        id: id.to_string(),
        file_name: file(),
        tries_left,
        tries_done,
        ..Entry::default()
    };
    for (key, value) in key_values(text) {
        let v = || Some(value.to_string());
        // Single-valued keys: the last occurrence wins, as in systemd-boot.
        match key {
            "title" => e.title = v(),
            "version" => e.version = v(),
            "machine-id" => e.machine_id = v(),
            "sort-key" => e.sort_key = v(),
            "linux" => e.linux = v(),
            "initrd" => e.initrd.push(value.to_string()),
            "options" => match &mut e.options {
                Some(o) => {
                    o.push(' ');
                    o.push_str(value);
                }
                None => e.options = v(),
            },
            "architecture" => e.architecture = Some(value.to_ascii_lowercase()),
            "devicetree" => e.devicetree = v(),
            "efi" => e.efi = v(),
            _ => e.unknown.push((key.to_string(), value.to_string())),
        }
    }
    if e.linux.is_none() && e.efi.is_none() {
        return Err(EntryError::NotBootable { file: file() });
    }
    Ok(e)
}

/// The file name without a (case-insensitive) `.conf` suffix.
fn strip_conf(name: &str) -> Option<&str> {
    let cut = name.len().checked_sub(5)?;
    let (stem, ext) = (name.get(..cut)?, name.get(cut..)?);
    ext.eq_ignore_ascii_case(".conf").then_some(stem)
}

#[cfg(test)]
mod tests;
