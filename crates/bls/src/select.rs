//! systemd-boot's menu order and default-entry choice.

use crate::{glob_match, version_cmp, Entry, LoaderConf};
use alloc::string::String;
use core::cmp::Ordering;

/// Whether `entry` may run on `arch` (a UEFI short name such as `x64`):
/// entries without an `architecture` line run everywhere.
pub fn arch_matches(entry: &Entry, arch: &str) -> bool {
    entry
        .architecture
        .as_deref()
        .is_none_or(|a| a.eq_ignore_ascii_case(arch))
}

/// The spec's "alphanumerical order": strcmp on UTF-8, where unset and
/// empty are the same and sort before any non-empty string.
fn opt_str_cmp(a: &Option<String>, b: &Option<String>) -> Ordering {
    let (a, b) = (a.as_deref().unwrap_or(""), b.as_deref().unwrap_or(""));
    a.as_bytes().cmp(b.as_bytes())
}

/// The menu order of two entries (systemd-boot `boot_entry_compare`).
pub fn entry_cmp(a: &Entry, b: &Entry) -> Ordering {
    // Entries that used up their tries go last.
    let exhausted = |e: &Entry| e.tries_left == Some(0);
    let o = exhausted(a).cmp(&exhausted(b));
    if o != Ordering::Equal {
        return o;
    }
    // Entries with a sort-key come before those without.
    let o = a.sort_key.is_none().cmp(&b.sort_key.is_none());
    if o != Ordering::Equal {
        return o;
    }
    if a.sort_key.is_some() {
        let o = opt_str_cmp(&a.sort_key, &b.sort_key)
            .then_with(|| opt_str_cmp(&a.machine_id, &b.machine_id))
            // Newest version first.
            .then_with(|| {
                version_cmp(
                    a.version.as_deref().unwrap_or(""),
                    b.version.as_deref().unwrap_or(""),
                )
                .reverse()
            });
        if o != Ordering::Equal {
            return o;
        }
    }
    // The id usually embeds the version, so descending puts newest first.
    let o = version_cmp(&a.id, &b.id).reverse();
    if o != Ordering::Equal {
        return o;
    }
    match (a.tries_left, b.tries_left) {
        (Some(la), Some(lb)) => {
            // More tries left first, then fewer tries done (absent = 0).
            lb.cmp(&la)
                .then(a.tries_done.unwrap_or(0).cmp(&b.tries_done.unwrap_or(0)))
        }
        _ => Ordering::Equal,
    }
}

/// Sort entries into systemd-boot's menu order (stable).
pub fn sort_entries(entries: &mut [Entry]) {
    entries.sort_by(entry_cmp);
}

/// Why an entry was chosen as the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// `loader.conf`'s `default` pattern matched this entry.
    MatchedDefaultPattern(String),
    /// The `default` pattern matched nothing; the first entry in menu order
    /// was taken instead.
    DefaultPatternUnmatched(String),
    /// No `default` was configured; the first entry in menu order.
    FirstInOrder,
    /// There is only one candidate.
    OnlyEntry,
}

/// The chosen default entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Index into the slice that was passed in.
    pub index: usize,
    /// Why it was chosen.
    pub reason: Reason,
    /// Every candidate had `tries_left == 0`, so a known-bad entry was picked
    /// because nothing else exists.
    pub all_exhausted: bool,
}

/// Choose the default among already-sorted entries, for any architecture.
/// Returns `None` only for an empty slice.
pub fn select_default(sorted: &[Entry], conf: &LoaderConf) -> Option<Selection> {
    select_where(sorted, conf, |_| true)
}

/// Like [`select_default`] but skips entries for a foreign architecture
/// (see [`arch_matches`]); `None` if no entry fits `arch`.
pub fn select_default_for_arch(
    sorted: &[Entry],
    conf: &LoaderConf,
    arch: &str,
) -> Option<Selection> {
    select_where(sorted, conf, |e| arch_matches(e, arch))
}

fn select_where(
    sorted: &[Entry],
    conf: &LoaderConf,
    fits: impl Fn(&Entry) -> bool,
) -> Option<Selection> {
    let candidates = || sorted.iter().enumerate().filter(|(_, e)| fits(e));
    let all_exhausted = candidates().all(|(_, e)| e.tries_left == Some(0));
    // Exhausted entries are only eligible if they are all there is.
    let pool = || candidates().filter(move |(_, e)| all_exhausted || e.tries_left != Some(0));
    let (first, _) = pool().next()?;
    let pick = |index, reason| {
        Some(Selection {
            index,
            reason,
            all_exhausted,
        })
    };
    if let Some(pattern) = &conf.default {
        let hit =
            pool().find(|(_, e)| glob_match(pattern, &e.id) || glob_match(pattern, &e.file_name));
        if let Some((i, _)) = hit {
            return pick(i, Reason::MatchedDefaultPattern(pattern.clone()));
        }
    }
    if pool().count() == 1 {
        return pick(first, Reason::OnlyEntry);
    }
    match &conf.default {
        Some(p) => pick(first, Reason::DefaultPatternUnmatched(p.clone())),
        None => pick(first, Reason::FirstInOrder),
    }
}
