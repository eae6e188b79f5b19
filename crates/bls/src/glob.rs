//! Shell-style globs (`*`, `?`, `[...]`, `\` escapes) for `default` patterns.

use alloc::vec::Vec;

/// Lower-case ASCII so matching is case-insensitive, as in systemd-boot
/// (which case-folds both the pattern and entry ids).
fn fold(c: char) -> char {
    c.to_ascii_lowercase()
}

/// Match a `[...]` class starting at `p[i] == '['` against `c`. Returns
/// whether it matched and the index after `]`, or `None` if unterminated
/// (then `[` is taken literally).
fn class(p: &[char], i: usize, c: char) -> Option<(bool, usize)> {
    let mut j = i + 1;
    let negate = matches!(p.get(j), Some('!' | '^'));
    if negate {
        j += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let lo = *p.get(j)?;
        if lo == ']' && !first {
            return Some((hit != negate, j + 1));
        }
        first = false;
        let lo = if lo == '\\' {
            j += 1;
            *p.get(j)?
        } else {
            lo
        };
        if p.get(j + 1) == Some(&'-') && p.get(j + 2).is_some_and(|&h| h != ']') {
            let mut k = j + 2;
            let mut hi = *p.get(k)?;
            if hi == '\\' {
                k += 1;
                hi = *p.get(k)?;
            }
            if (fold(lo)..=fold(hi)).contains(&fold(c)) {
                hit = true;
            }
            j = k + 1;
        } else {
            if fold(lo) == fold(c) {
                hit = true;
            }
            j += 1;
        }
    }
}

/// Whether `text` matches the glob `pattern` (ASCII case-insensitive).
///
/// Iterative with a single backtrack point for the last `*`, so the cost is
/// bounded by `pattern.len() * text.len()` whatever the input.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let c = t[ti];
        // How the pattern token at `pi` fares against `c`: Some(next) on a
        // match, None on a mismatch.
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi + 1, ti));
                pi += 1;
                continue;
            }
            Some('?') => Some(pi + 1),
            Some('[') => match class(&p, pi, c) {
                Some((true, next)) => Some(next),
                Some((false, _)) => None,
                None => (c == '[').then_some(pi + 1),
            },
            Some('\\') => match p.get(pi + 1) {
                Some(&e) => (fold(e) == fold(c)).then_some(pi + 2),
                None => (c == '\\').then_some(pi + 1),
            },
            Some(&lit) => (fold(lit) == fold(c)).then_some(pi + 1),
            None => None,
        };
        match (step, star) {
            (Some(next), _) => {
                pi = next;
                ti += 1;
            }
            (None, Some((sp, st))) => {
                // Let the last `*` swallow one more character and retry.
                pi = sp;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            (None, None) => return false,
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == '*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basics() {
        assert!(glob_match("fedora-*", "fedora-6.1.9-200.fc37.x86_64"));
        assert!(!glob_match("fedora-*", "arch-linux"));
        assert!(glob_match("*", ""));
        assert!(glob_match("", ""));
        assert!(!glob_match("", "a"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("*.conf", "x.conf"));
        assert!(glob_match("a*b*c", "a-xx-b-yy-c"));
        assert!(!glob_match("a*b*c", "a-xx-b-yy-d"));
        assert!(
            glob_match("FEDORA*", "fedora-1"),
            "case-insensitive like systemd-boot"
        );
    }

    #[test]
    fn classes_and_escapes() {
        assert!(glob_match("linux-[0-9]*", "linux-6.1"));
        assert!(!glob_match("linux-[0-9]*", "linux-lts"));
        assert!(glob_match("linux-[!0-9]*", "linux-lts"));
        assert!(glob_match("linux-[^0-9]*", "linux-lts"));
        assert!(glob_match("[]x]", "]"));
        assert!(glob_match("[a-]", "-"));
        assert!(glob_match("a[", "a["), "unterminated class is literal");
        assert!(glob_match("\\*", "*"));
        assert!(!glob_match("\\*", "x"));
        assert!(glob_match("x\\", "x\\"));
    }

    #[test]
    fn pathological_patterns_finish() {
        let text: alloc::string::String = core::iter::repeat_n('a', 2000).collect();
        let pat = alloc::format!("{}b", "*a".repeat(50));
        assert!(!glob_match(&pat, &text));
    }
}
