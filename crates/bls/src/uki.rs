//! Boot Loader Specification type #2 entries: unified kernel images in
//! `/EFI/Linux/*.efi`, described by their `.osrel` (os-release format) and
//! `.cmdline` sections, as systemd-boot reads them.

use crate::{split_counter, Entry, EntryError, MAX_FILE_SIZE};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

/// The entry of the UKI `file_name` at `path` (`size` bytes), read through
/// `read(offset, buf)` (bytes read): its PE headers (for a COFF machine in
/// `machines`) and its `.osrel` and `.cmdline` sections, at most 64 KiB
/// each — never the whole image.
pub fn read_uki(
    file_name: &str,
    path: &str,
    size: u64,
    machines: &[u16],
    mut read: impl FnMut(u64, &mut [u8]) -> Result<usize, String>,
) -> Result<Entry, String> {
    let mut head = vec![0u8; size.min(8192) as usize];
    let n = read(0, &mut head)?;
    head.truncate(n);
    let pe = ember_pe::PeImage::parse_headers_for_machines(&head, size, machines)
        .map_err(|e| format!("not a UKI: {e}"))?;
    let mut section = |name: &str| -> Result<Option<Vec<u8>>, String> {
        let Some(s) = pe.find_section(name) else {
            return Ok(None);
        };
        let mut b = vec![0u8; (s.file_len() as usize).min(64 * 1024)];
        let n = read(u64::from(s.raw_offset), &mut b).map_err(|e| format!("{name}: {e}"))?;
        b.truncate(n);
        Ok(Some(b))
    };
    let osrel = section(".osrel")?.ok_or("no .osrel section: not a unified kernel image")?;
    let cmdline = section(".cmdline")?;
    uki_entry(file_name, path, &osrel, cmdline.as_deref()).map_err(|e| format!("{e}"))
}

/// The value of `key` in os-release text (`KEY=value`, `"…"` or `'…'`
/// quoting with backslash escapes in double quotes, `#` comments).
pub fn os_release_value(text: &str, key: &str) -> Option<String> {
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k.trim() != key {
            continue;
        }
        let v = v.trim();
        let out = if let Some(inner) = v.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            let mut s = String::new();
            let mut esc = false;
            for c in inner.chars() {
                if esc {
                    s.push(c);
                    esc = false;
                } else if c == '\\' {
                    esc = true;
                } else {
                    s.push(c);
                }
            }
            s
        } else if let Some(inner) = v.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
            inner.to_string()
        } else {
            v.to_string()
        };
        return Some(out);
    }
    None
}

/// Build the entry for a UKI named `file_name` (e.g. `debian-6.1+3.efi`)
/// from its `.osrel` and optional `.cmdline` section contents.
///
/// Title: `PRETTY_NAME`, else `NAME`, else the id. Version: `IMAGE_VERSION`,
/// else `VERSION`, else `VERSION_ID`, else `BUILD_ID`. Sort key: `IMAGE_ID`,
/// else `ID`. Options: the `.cmdline` text. The `efi` path is `path`.
pub fn uki_entry(
    file_name: &str,
    path: &str,
    osrel: &[u8],
    cmdline: Option<&[u8]>,
) -> Result<Entry, EntryError> {
    let file = || file_name.to_string();
    if osrel.len() > MAX_FILE_SIZE || cmdline.is_some_and(|c| c.len() > MAX_FILE_SIZE) {
        return Err(EntryError::TooLarge {
            file: file(),
            size: osrel.len().max(cmdline.map_or(0, <[u8]>::len)),
        });
    }
    let stem = file_name
        .get(..file_name.len().saturating_sub(4))
        .filter(|_| {
            file_name.len() > 4 && file_name[file_name.len() - 4..].eq_ignore_ascii_case(".efi")
        })
        .ok_or_else(|| EntryError::BadFileName { file: file() })?;
    let (id, tries_left, tries_done) = split_counter(stem);
    if id.is_empty() || id.contains(['/', '\\']) {
        return Err(EntryError::BadFileName { file: file() });
    }
    // os-release is UTF-8 by definition; a NUL may end the section early.
    let osrel = osrel.split(|&b| b == 0).next().unwrap_or(&[]);
    let text = core::str::from_utf8(osrel).map_err(|e| EntryError::NotUtf8 {
        file: file(),
        line: crate::line_of(osrel, e.valid_up_to()),
    })?;
    let first = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| os_release_value(text, k))
            .filter(|v| !v.is_empty())
    };
    let options = match cmdline {
        Some(c) => {
            let c = c.split(|&b| b == 0).next().unwrap_or(&[]);
            let s = core::str::from_utf8(c).map_err(|e| EntryError::NotUtf8 {
                file: file(),
                line: crate::line_of(c, e.valid_up_to()),
            })?;
            let s = s.trim();
            (!s.is_empty()).then(|| s.to_string())
        }
        None => None,
    };
    Ok(Entry {
        id: id.to_string(),
        file_name: file(),
        title: first(&["PRETTY_NAME", "NAME"]),
        version: first(&["IMAGE_VERSION", "VERSION", "VERSION_ID", "BUILD_ID"]),
        sort_key: first(&["IMAGE_ID", "ID"]),
        options,
        efi: Some(path.to_string()),
        tries_left,
        tries_done,
        ..Entry::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OSREL: &[u8] = b"NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\n# comment\n";

    #[test]
    fn osrel_fields_map_like_systemd_boot() {
        let e = uki_entry(
            "debian-6.1.0-13+2-1.efi",
            "/EFI/Linux/debian-6.1.0-13+2-1.efi",
            OSREL,
            Some(b"root=UUID=x ro quiet\n\0"),
        )
        .unwrap();
        assert_eq!(e.id, "debian-6.1.0-13");
        assert_eq!(e.tries_left, Some(2));
        assert_eq!(e.tries_done, Some(1));
        assert_eq!(e.title.as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
        // VERSION wins over VERSION_ID when IMAGE_VERSION is absent.
        assert_eq!(e.version.as_deref(), Some("12 (bookworm)"));
        assert_eq!(e.sort_key.as_deref(), Some("debian"));
        assert_eq!(e.options.as_deref(), Some("root=UUID=x ro quiet"));
        assert_eq!(e.efi.as_deref(), Some("/EFI/Linux/debian-6.1.0-13+2-1.efi"));
        assert!(e.linux.is_none());
    }

    #[test]
    fn image_id_and_version_take_precedence() {
        let osrel = b"ID=fedora\nIMAGE_ID=appliance\nIMAGE_VERSION=7\nVERSION_ID=39\nNAME=Fedora\n";
        let e = uki_entry("a.EFI", "/EFI/Linux/a.EFI", osrel, None).unwrap();
        assert_eq!(e.sort_key.as_deref(), Some("appliance"));
        assert_eq!(e.version.as_deref(), Some("7"));
        assert_eq!(e.title.as_deref(), Some("Fedora"));
        assert!(e.options.is_none());
    }

    #[test]
    fn quoting_and_escapes() {
        let t = "A='single quoted'\nB=\"with \\\"escaped\\\" quote\"\nC=bare\n";
        assert_eq!(os_release_value(t, "A").as_deref(), Some("single quoted"));
        assert_eq!(
            os_release_value(t, "B").as_deref(),
            Some("with \"escaped\" quote")
        );
        assert_eq!(os_release_value(t, "C").as_deref(), Some("bare"));
        assert_eq!(os_release_value(t, "D"), None);
    }

    #[test]
    fn hostile_sections_are_errors() {
        assert!(matches!(
            uki_entry("x.efi", "/x.efi", b"\xff\xfe", None),
            Err(EntryError::NotUtf8 { .. })
        ));
        assert!(matches!(
            uki_entry("x.efi", "/x.efi", b"ID=a", Some(b"\xc3")),
            Err(EntryError::NotUtf8 { .. })
        ));
        assert!(matches!(
            uki_entry(".efi", "/.efi", b"", None),
            Err(EntryError::BadFileName { .. })
        ));
        assert!(matches!(
            uki_entry("kernel.conf", "/k", b"", None),
            Err(EntryError::BadFileName { .. })
        ));
        let big = alloc::vec![b'a'; MAX_FILE_SIZE + 1];
        assert!(matches!(
            uki_entry("x.efi", "/x.efi", &big, None),
            Err(EntryError::TooLarge { .. })
        ));
        // An empty .osrel is fine: the id stands in for the title.
        let e = uki_entry("plain.efi", "/EFI/Linux/plain.efi", b"", None).unwrap();
        assert!(e.title.is_none() && e.sort_key.is_none());
    }
}
