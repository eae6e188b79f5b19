//! Directory entries: the 32-byte short entry, VFAT long-name entries,
//! decoding a directory's raw bytes, and generating names for new entries.

use alloc::string::String;
use alloc::vec::Vec;
use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

pub(crate) const ATTR_READ_ONLY: u8 = 0x01;
pub(crate) const ATTR_HIDDEN: u8 = 0x02;
pub(crate) const ATTR_SYSTEM: u8 = 0x04;
pub(crate) const ATTR_VOLUME_ID: u8 = 0x08;
pub(crate) const ATTR_DIRECTORY: u8 = 0x10;
pub(crate) const ATTR_ARCHIVE: u8 = 0x20;
pub(crate) const ATTR_LFN: u8 = ATTR_READ_ONLY | ATTR_HIDDEN | ATTR_SYSTEM | ATTR_VOLUME_ID;
/// Marker in `name[0]` for a deleted entry.
pub(crate) const DELETED: u8 = 0xE5;
/// NT reserved-byte flags: 8.3 base / extension stored upper but shown lower.
const NT_LOWER_BASE: u8 = 0x08;
const NT_LOWER_EXT: u8 = 0x10;
/// A directory may hold at most 65536 entries (2 MiB) per the FAT spec.
pub(crate) const MAX_DIR_ENTRIES: usize = 65536;

/// The classic 8.3 directory entry.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Default)]
#[repr(C)]
pub(crate) struct RawEntry {
    pub name: [u8; 11],
    pub attr: u8,
    pub nt_res: u8,
    pub create_tenths: u8,
    pub create_time: U16,
    pub create_date: U16,
    pub access_date: U16,
    pub cluster_hi: U16,
    pub write_time: U16,
    pub write_date: U16,
    pub cluster_lo: U16,
    pub size: U32,
}
const _: () = assert!(size_of::<RawEntry>() == 32);

/// A VFAT long-file-name entry: 13 UCS-2 units spread over three fields.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy)]
#[repr(C)]
pub(crate) struct LfnEntry {
    pub order: u8,
    pub name1: [U16; 5],
    pub attr: u8,
    pub kind: u8,
    pub checksum: u8,
    pub name2: [U16; 6],
    pub cluster: U16,
    pub name3: [U16; 2],
}
const _: () = assert!(size_of::<LfnEntry>() == 32);

/// Raw FAT date/time fields, exactly as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timestamp {
    /// Bits 15-9 year since 1980, 8-5 month, 4-0 day.
    pub date: u16,
    /// Bits 15-11 hours, 10-5 minutes, 4-0 seconds/2 (0 where not stored).
    pub time: u16,
    /// Hundredths of a second, 0..=199 (creation time only).
    pub tenths: u8,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Long name if a valid one is present, else the 8.3 name.
    pub name: String,
    /// The 8.3 name as `NAME.EXT`.
    pub short_name: String,
    /// Whether this is a directory.
    pub is_dir: bool,
    /// File size in bytes (0 for directories).
    pub size: u64,
    /// Raw attribute byte.
    pub attributes: u8,
    /// First data cluster (0 for an empty file; for `..`, 0 means root).
    pub first_cluster: u32,
    /// Creation time.
    pub created: Timestamp,
    /// Last write time.
    pub modified: Timestamp,
    /// Last access date (time is always 0).
    pub accessed: Timestamp,
    /// Where the entry lives, for updates.
    pub(crate) slots: Slots,
}

/// Position of an entry inside its directory, in 32-byte slot indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slots {
    /// First slot (the first LFN entry, or the short entry if none).
    pub first: usize,
    /// The short entry itself.
    pub short: usize,
}

/// The VFAT checksum of an 11-byte short name.
pub(crate) fn lfn_checksum(name: &[u8; 11]) -> u8 {
    name.iter()
        .fold(0u8, |sum, &b| sum.rotate_right(1).wrapping_add(b))
}

/// `NAME.EXT` form of an 11-byte short name, optionally lowercased per the
/// NT case flags.
pub(crate) fn short_display(raw: &[u8; 11], nt_res: u8, apply_case: bool) -> String {
    let mut name = *raw;
    if name[0] == 0x05 {
        name[0] = DELETED; // 0x05 escapes a real leading 0xE5 byte.
    }
    let conv = |b: u8, lower: bool| -> char {
        let c = if b.is_ascii() {
            b as char
        } else {
            char::REPLACEMENT_CHARACTER
        };
        if lower {
            c.to_ascii_lowercase()
        } else {
            c
        }
    };
    let mut s = String::new();
    let base = name[..8]
        .iter()
        .rposition(|&b| b != b' ')
        .map_or(0, |p| p + 1);
    let ext = name[8..]
        .iter()
        .rposition(|&b| b != b' ')
        .map_or(0, |p| p + 1);
    for &b in &name[..base] {
        s.push(conv(b, apply_case && nt_res & NT_LOWER_BASE != 0));
    }
    if ext > 0 {
        s.push('.');
        for &b in &name[8..8 + ext] {
            s.push(conv(b, apply_case && nt_res & NT_LOWER_EXT != 0));
        }
    }
    s
}

impl DirEntry {
    fn from_raw(e: &RawEntry, long: Option<String>, slots: Slots) -> Self {
        let short_name = short_display(&e.name, 0, false);
        let name = long.unwrap_or_else(|| short_display(&e.name, e.nt_res, true));
        let first_cluster = (u32::from(e.cluster_hi.get()) << 16) | u32::from(e.cluster_lo.get());
        let is_dir = e.attr & ATTR_DIRECTORY != 0;
        DirEntry {
            name,
            short_name,
            is_dir,
            size: if is_dir { 0 } else { u64::from(e.size.get()) },
            attributes: e.attr,
            first_cluster,
            created: Timestamp {
                date: e.create_date.get(),
                time: e.create_time.get(),
                tenths: e.create_tenths,
            },
            modified: Timestamp {
                date: e.write_date.get(),
                time: e.write_time.get(),
                tenths: 0,
            },
            accessed: Timestamp {
                date: e.access_date.get(),
                time: 0,
                tenths: 0,
            },
            slots,
        }
    }

    /// Whether this is the `.` or `..` entry.
    pub fn is_dot(&self) -> bool {
        self.short_name == "." || self.short_name == ".."
    }
}

/// Long name being assembled from LFN entries (which are stored last-first).
struct LfnRun {
    units: [u16; 260],
    checksum: u8,
    /// Order number expected next (counts down to 1).
    expect: u8,
    first: usize,
}

/// The result of decoding a directory's bytes.
pub(crate) struct Listing {
    pub entries: Vec<DirEntry>,
    /// The volume-label entry, if any (meaningful in the root only).
    pub label: Option<[u8; 11]>,
}

/// Decode every live entry in `data`. Invalid or orphaned LFN runs are
/// dropped and the short name is used instead, as the VFAT rules require.
pub(crate) fn parse(data: &[u8]) -> Listing {
    let mut entries = Vec::new();
    let mut label = None;
    let mut run: Option<LfnRun> = None;
    for (i, chunk) in data.chunks_exact(32).enumerate().take(MAX_DIR_ENTRIES) {
        let Ok(e) = RawEntry::read_from_bytes(chunk) else {
            break;
        };
        if e.name[0] == 0 {
            break; // End of directory.
        }
        if e.name[0] == DELETED {
            run = None;
            continue;
        }
        if e.attr & 0x3F == ATTR_LFN {
            let Ok(l) = LfnEntry::read_from_bytes(chunk) else {
                break;
            };
            run = lfn_step(run, &l, i);
            continue;
        }
        let long = run
            .take()
            .and_then(|r| finish_lfn(&r, &e.name).map(|s| (s, r.first)));
        if e.attr & ATTR_VOLUME_ID != 0 {
            if e.attr & ATTR_DIRECTORY == 0 && label.is_none() {
                label = Some(e.name);
            }
            continue;
        }
        let (long, first) = match long {
            Some((s, first)) => (Some(s), first),
            None => (None, i),
        };
        entries.push(DirEntry::from_raw(&e, long, Slots { first, short: i }));
    }
    Listing { entries, label }
}

fn lfn_step(run: Option<LfnRun>, l: &LfnEntry, i: usize) -> Option<LfnRun> {
    let ord = l.order & 0x1F;
    if ord == 0 || ord > 20 || l.cluster.get() != 0 {
        return None;
    }
    let mut r = if l.order & 0x40 != 0 {
        // Start of a new run; any previous unfinished run was an orphan.
        LfnRun {
            units: [0xFFFF; 260],
            checksum: l.checksum,
            expect: ord,
            first: i,
        }
    } else {
        match run {
            Some(r) if r.expect == ord && r.checksum == l.checksum => r,
            _ => return None,
        }
    };
    let base = usize::from(ord - 1) * 13;
    let parts = l.name1.iter().chain(l.name2.iter()).chain(l.name3.iter());
    for (k, u) in parts.enumerate() {
        if let Some(slot) = r.units.get_mut(base + k) {
            *slot = u.get();
        }
    }
    r.expect = ord - 1;
    Some(r)
}

fn finish_lfn(r: &LfnRun, short: &[u8; 11]) -> Option<String> {
    if r.expect != 0 || r.checksum != lfn_checksum(short) {
        return None;
    }
    let len = r
        .units
        .iter()
        .position(|&u| u == 0 || u == 0xFFFF)
        .unwrap_or(r.units.len());
    if len == 0 || len > 255 {
        return None;
    }
    let s: String = char::decode_utf16(r.units[..len].iter().copied())
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    Some(s)
}

/// Case-insensitive name comparison (simple Unicode uppercase folding).
pub(crate) fn names_equal(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_uppercase)
        .eq(b.chars().flat_map(char::to_uppercase))
}

fn valid_short_char(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || b"$%'-_@~`!(){}^#&".contains(&b)
}

/// Check a name for creation: non-empty, at most 255 UTF-16 units, no
/// characters VFAT forbids, not `.`/`..`, not only dots and spaces.
pub(crate) fn validate_name(name: &str) -> bool {
    let units = name.encode_utf16().count();
    if units == 0 || units > 255 || name.trim_end_matches(['.', ' ']).is_empty() {
        return false;
    }
    !name
        .chars()
        .any(|c| (c as u32) < 0x20 || "\"*/:<>?\\|".contains(c))
}

/// If `name` is already a valid upper-case 8.3 name, its 11-byte form.
pub(crate) fn exact_short(name: &str) -> Option<[u8; 11]> {
    let b = name.as_bytes();
    let (base, ext) = match b.iter().position(|&c| c == b'.') {
        Some(p) => (&b[..p], &b[p + 1..]),
        None => (b, &b[..0]),
    };
    if base.is_empty() || base.len() > 8 || ext.len() > 3 || (b.contains(&b'.') && ext.is_empty()) {
        return None;
    }
    if !base.iter().chain(ext).all(|&c| valid_short_char(c)) {
        return None;
    }
    let mut out = [b' '; 11];
    out[..base.len()].copy_from_slice(base);
    out[8..8 + ext.len()].copy_from_slice(ext);
    Some(out)
}

/// The basis for a generated alias: upper-cased, invalid characters turned
/// into `_`, spaces and embedded dots dropped, cut to 8 + 3 characters.
pub(crate) fn basis_name(name: &str) -> ([u8; 8], usize, [u8; 3], usize) {
    let conv = |c: char| -> Option<u8> {
        if c == ' ' || c == '.' {
            return None;
        }
        let u = c.to_ascii_uppercase();
        Some(if u.is_ascii() && valid_short_char(u as u8) {
            u as u8
        } else {
            b'_'
        })
    };
    let trimmed = name.trim_start_matches('.');
    let (base_s, ext_s) = match trimmed.rfind('.') {
        Some(p) => (&trimmed[..p], &trimmed[p + 1..]),
        None => (trimmed, ""),
    };
    let mut base = [b' '; 8];
    let mut bl = 0;
    for b in base_s.chars().filter_map(conv).take(8) {
        base[bl] = b;
        bl += 1;
    }
    if bl == 0 {
        base[0] = b'_';
        bl = 1;
    }
    let mut ext = [b' '; 3];
    let mut el = 0;
    for b in ext_s.chars().filter_map(conv).take(3) {
        ext[el] = b;
        el += 1;
    }
    (base, bl, ext, el)
}

/// Alias `BASIS~N.EXT` for tail number `n`.
pub(crate) fn alias_with_tail(basis: &([u8; 8], usize, [u8; 3], usize), n: u32) -> [u8; 11] {
    let (base, bl, ext, _) = basis;
    let mut digits = [0u8; 10];
    let mut nd = 0;
    let mut v = n;
    loop {
        digits[nd] = b'0' + (v % 10) as u8;
        nd += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let keep = (*bl).min(8 - 1 - nd);
    let mut out = [b' '; 11];
    out[..keep].copy_from_slice(&base[..keep]);
    out[keep] = b'~';
    for k in 0..nd {
        out[keep + 1 + k] = digits[nd - 1 - k];
    }
    out[8..].copy_from_slice(ext);
    out
}

/// Build the LFN slots (in on-disk order) for `name` bound to `short`.
pub(crate) fn lfn_entries(name: &str, short: &[u8; 11]) -> Vec<LfnEntry> {
    let units: Vec<u16> = name.encode_utf16().collect();
    let count = units.len().div_ceil(13);
    let sum = lfn_checksum(short);
    let mut out = Vec::with_capacity(count);
    for ord in (1..=count).rev() {
        let mut part = [0xFFFFu16; 13];
        for (k, p) in part.iter_mut().enumerate() {
            let idx = (ord - 1) * 13 + k;
            if idx < units.len() {
                *p = units[idx];
            } else if idx == units.len() {
                *p = 0; // Terminator only if the name does not fill the slot.
            }
        }
        let u = |k: usize| U16::new(part[k]);
        out.push(LfnEntry {
            order: ord as u8 | if ord == count { 0x40 } else { 0 },
            name1: [u(0), u(1), u(2), u(3), u(4)],
            attr: ATTR_LFN,
            kind: 0,
            checksum: sum,
            name2: [u(5), u(6), u(7), u(8), u(9), u(10)],
            cluster: U16::new(0),
            name3: [u(11), u(12)],
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_generation() {
        let b = basis_name("my long file.name.txt");
        assert_eq!(&alias_with_tail(&b, 1), b"MYLONG~1TXT");
        let b = basis_name("a+b.c");
        assert_eq!(&alias_with_tail(&b, 12), b"A_B~12  C  ");
        assert_eq!(exact_short("KERNEL.EFI"), Some(*b"KERNEL  EFI"));
        assert_eq!(exact_short("kernel.efi"), None);
        assert_eq!(exact_short("TOOLONGNAME"), None);
    }

    #[test]
    fn lfn_roundtrip_and_orphans() {
        let short = *b"LONGNA~1TXT";
        let name = "Long Name With Ünicode.txt";
        let mut data = Vec::new();
        for l in lfn_entries(name, &short) {
            data.extend_from_slice(l.as_bytes());
        }
        let e = RawEntry {
            name: short,
            attr: ATTR_ARCHIVE,
            ..Default::default()
        };
        data.extend_from_slice(e.as_bytes());
        let list = parse(&data);
        assert_eq!(list.entries.len(), 1);
        assert_eq!(list.entries[0].name, name);
        assert_eq!(list.entries[0].slots, Slots { first: 0, short: 2 });

        // Corrupt the checksum of the short name: long name must be ignored.
        let mut bad = data.clone();
        bad[64] = b'X';
        let list = parse(&bad);
        assert_eq!(list.entries[0].name, "XONGNA~1.TXT");

        // Drop the first LFN slot (orphaned continuation): ignored too.
        let list = parse(&data[32..]);
        assert_eq!(list.entries.len(), 1);
        assert_eq!(list.entries[0].name, "LONGNA~1.TXT");
    }
}
