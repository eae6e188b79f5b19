//! `/loader/loader.conf`: the few settings Ember honours.

use crate::{key_values, MAX_FILE_SIZE};
use alloc::string::{String, ToString};

/// How long to show the menu.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// Wait this many seconds (0 = boot immediately unless a key is held).
    Seconds(u32),
    /// Show the menu and wait indefinitely.
    MenuForce,
    /// Hide the menu; boot the default unless a key is pressed.
    MenuHidden,
    /// Never show the menu.
    MenuDisabled,
}

/// Settings from `loader.conf`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoaderConf {
    /// `default`: a glob matched against entry ids.
    pub default: Option<String>,
    /// `timeout`.
    pub timeout: Option<Timeout>,
}

fn parse_timeout(v: &str) -> Option<Timeout> {
    match v {
        "menu-force" => Some(Timeout::MenuForce),
        "menu-hidden" => Some(Timeout::MenuHidden),
        "menu-disabled" => Some(Timeout::MenuDisabled),
        _ if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
            // Absurdly long numbers saturate: "wait forever" in practice.
            Some(Timeout::Seconds(v.parse().unwrap_or(u32::MAX)))
        }
        _ => None,
    }
}

/// Parse `loader.conf` tolerantly: unknown keys, invalid values, lines that
/// are not UTF-8 and anything past [`MAX_FILE_SIZE`] are ignored, because a
/// bad config must not stop the machine from booting.
pub fn parse_loader_conf(contents: &[u8]) -> LoaderConf {
    let contents = contents.get(..MAX_FILE_SIZE).unwrap_or(contents);
    let mut conf = LoaderConf::default();
    for raw in contents.split(|&b| b == b'\n') {
        let Ok(line) = core::str::from_utf8(raw) else {
            continue;
        };
        if line.contains('\0') {
            continue;
        }
        for (key, value) in key_values(line) {
            match key {
                "default" => conf.default = Some(value.to_string()),
                "timeout" => {
                    if let Some(t) = parse_timeout(value) {
                        conf.timeout = Some(t);
                    }
                }
                _ => {}
            }
        }
    }
    conf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typical_file() {
        let c = parse_loader_conf(
            b"# comment\r\ndefault  fedora-*\r\ntimeout 5\r\nconsole-mode max\r\neditor no\r\n",
        );
        assert_eq!(c.default.as_deref(), Some("fedora-*"));
        assert_eq!(c.timeout, Some(Timeout::Seconds(5)));
    }

    #[test]
    fn timeout_forms_and_junk() {
        let t = |s: &str| parse_loader_conf(s.as_bytes()).timeout;
        assert_eq!(t("timeout menu-force"), Some(Timeout::MenuForce));
        assert_eq!(t("timeout menu-hidden"), Some(Timeout::MenuHidden));
        assert_eq!(t("timeout menu-disabled"), Some(Timeout::MenuDisabled));
        assert_eq!(t("timeout 0"), Some(Timeout::Seconds(0)));
        assert_eq!(
            t("timeout 99999999999999999999"),
            Some(Timeout::Seconds(u32::MAX))
        );
        assert_eq!(t("timeout -1"), None);
        assert_eq!(t("timeout soon"), None);
        assert_eq!(t("timeout"), None);
        // A later bad value does not erase an earlier good one.
        assert_eq!(t("timeout 3\ntimeout x"), Some(Timeout::Seconds(3)));
    }

    #[test]
    fn bad_lines_are_skipped_not_fatal() {
        let mut data =
            alloc::vec::Vec::from(&b"default \xff\xfe\ntimeout 4\n\0\0\0\ndefault arch-*\n"[..]);
        data.extend(core::iter::repeat_n(b'x', MAX_FILE_SIZE));
        data.extend_from_slice(b"\ndefault past-the-cap\n");
        let c = parse_loader_conf(&data);
        assert_eq!(c.default.as_deref(), Some("arch-*"));
        assert_eq!(c.timeout, Some(Timeout::Seconds(4)));
        assert_eq!(parse_loader_conf(b""), LoaderConf::default());
    }
}
