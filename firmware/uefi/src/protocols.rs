//! Firmware utility protocols: DevicePathToText, DevicePathFromText,
//! DevicePathUtilities and UnicodeCollation2. The conversions live in
//! `ember-uefi-data`; these are the pointer-facing wrappers. Results the
//! caller owns are pool allocations (the caller frees them with FreePool).

use super::memory::pool_alloc;
use super::services::device_path_bytes;
use alloc::string::String;
use alloc::vec::Vec;
use ember_uefi_data::devpath::{self as dp, DevicePath, Node};
use r_efi::efi::{self, Boolean};
use r_efi::protocols::device_path::Protocol as Dp;
use r_efi::protocols::{device_path_from_text, device_path_to_text, device_path_utilities};

/// Copy bytes into a fresh boot-services pool block.
fn to_pool(b: &[u8]) -> *mut u8 {
    match pool_alloc(efi::BOOT_SERVICES_DATA, b.len().max(1)) {
        Some(p) => {
            // SAFETY: fresh pool block of at least `b.len()` bytes.
            unsafe { core::ptr::copy_nonoverlapping(b.as_ptr(), p as *mut u8, b.len()) };
            p as *mut u8
        }
        None => core::ptr::null_mut(),
    }
}

fn ucs2_pool(s: &str) -> *mut u16 {
    let mut b = Vec::new();
    for u in s.encode_utf16().chain(core::iter::once(0)) {
        b.extend_from_slice(&u.to_le_bytes());
    }
    to_pool(&b) as *mut u16
}

fn path_of<'a>(p: *const Dp) -> Option<&'a [u8]> {
    // SAFETY: the caller's device path (or null).
    unsafe { device_path_bytes(p as usize) }
}

/// One node's bytes, as its header says.
///
/// # Safety
/// `p` must be null or point at a device path node.
unsafe fn node_bytes<'a>(p: *const Dp) -> Option<&'a [u8]> {
    if p.is_null() {
        return None;
    }
    // SAFETY: a node header is 4 bytes; the length field says the rest.
    let hdr = unsafe { (p as *const [u8; 4]).read_unaligned() };
    let len = usize::from(u16::from_le_bytes([hdr[2], hdr[3]]));
    if len < 4 {
        return None;
    }
    // SAFETY: the node's own length.
    Some(unsafe { core::slice::from_raw_parts(p as *const u8, len) })
}

// ---- DevicePathToText ----------------------------------------------------

extern "efiapi" fn node_to_text(
    node: *mut Dp,
    display_only: Boolean,
    shortcuts: Boolean,
) -> *mut u16 {
    // SAFETY: the caller's node.
    let Some(b) = (unsafe { node_bytes(node) }) else {
        return core::ptr::null_mut();
    };
    match Node::parse(b) {
        Ok(n) => ucs2_pool(&dp::node_to_text(&n, display_only.into(), shortcuts.into())),
        Err(_) => core::ptr::null_mut(),
    }
}

extern "efiapi" fn path_to_text(
    path: *mut Dp,
    display_only: Boolean,
    shortcuts: Boolean,
) -> *mut u16 {
    let Some(b) = path_of(path) else {
        return core::ptr::null_mut();
    };
    match DevicePath::parse(b) {
        Ok(p) => ucs2_pool(&p.to_text(display_only.into(), shortcuts.into())),
        Err(_) => core::ptr::null_mut(),
    }
}

// ---- DevicePathFromText --------------------------------------------------

fn text_at(p: *const u16) -> Option<String> {
    // SAFETY: the caller's NUL-terminated text.
    unsafe { super::fs::read_ucs2(p, 4096) }
}

extern "efiapi" fn text_to_node(text: *const u16) -> *mut Dp {
    let Some(t) = text_at(text) else {
        return core::ptr::null_mut();
    };
    match dp::node_from_text(&t) {
        Ok(b) => to_pool(&b) as *mut Dp,
        Err(_) => core::ptr::null_mut(),
    }
}

extern "efiapi" fn text_to_path(text: *const u16) -> *mut Dp {
    let Some(t) = text_at(text) else {
        return core::ptr::null_mut();
    };
    match dp::from_text(&t) {
        Ok(b) => to_pool(&b) as *mut Dp,
        Err(_) => core::ptr::null_mut(),
    }
}

// ---- DevicePathUtilities -------------------------------------------------

extern "efiapi" fn get_size(path: *const Dp) -> usize {
    path_of(path).map_or(0, <[u8]>::len)
}

extern "efiapi" fn duplicate(path: *const Dp) -> *mut Dp {
    path_of(path).map_or(core::ptr::null_mut(), |b| to_pool(b) as *mut Dp)
}

extern "efiapi" fn append_path(a: *const Dp, b: *const Dp) -> *mut Dp {
    let end = dp::end_entire();
    let r = match (path_of(a), path_of(b)) {
        (None, None) => Ok(end.to_vec()),
        (Some(x), None) | (None, Some(x)) => Ok(x.to_vec()),
        (Some(x), Some(y)) => dp::append(x, y),
    };
    r.map_or(core::ptr::null_mut(), |v| to_pool(&v) as *mut Dp)
}

extern "efiapi" fn append_node(path: *const Dp, node: *const Dp) -> *mut Dp {
    // SAFETY: the caller's node.
    let n = unsafe { node_bytes(node) };
    let base = path_of(path)
        .map(<[u8]>::to_vec)
        .unwrap_or_else(|| dp::end_entire().to_vec());
    let r = match n {
        None => Ok(base),
        Some(n) => dp::append_node(&base, n),
    };
    r.map_or(core::ptr::null_mut(), |v| to_pool(&v) as *mut Dp)
}

extern "efiapi" fn append_instance(path: *const Dp, inst: *const Dp) -> *mut Dp {
    let Some(i) = path_of(inst) else {
        return core::ptr::null_mut();
    };
    let r = match path_of(path) {
        None => Ok(i.to_vec()),
        Some(p) => dp::append_instance(p, i),
    };
    r.map_or(core::ptr::null_mut(), |v| to_pool(&v) as *mut Dp)
}

extern "efiapi" fn next_instance(path: *mut *mut Dp, size: *mut usize) -> *mut Dp {
    if path.is_null() || size.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: in/out pointers checked.
    let cur = unsafe { *path };
    let Some(b) = path_of(cur) else {
        // SAFETY: as above.
        unsafe { *size = 0 };
        return core::ptr::null_mut();
    };
    let Ok(parsed) = DevicePath::parse(b) else {
        return core::ptr::null_mut();
    };
    let inst = parsed.instances();
    let Some(first) = inst.first() else {
        return core::ptr::null_mut();
    };
    // Where the next instance starts: after this one's nodes and its end node.
    let consumed = first.len();
    // SAFETY: in/out pointers checked; `consumed` is within the path.
    unsafe {
        *size = first.len();
        *path = if inst.len() > 1 {
            (cur as usize + consumed) as *mut Dp
        } else {
            core::ptr::null_mut()
        };
    }
    to_pool(first) as *mut Dp
}

extern "efiapi" fn is_multi(path: *const Dp) -> Boolean {
    let m = path_of(path)
        .and_then(|b| DevicePath::parse(b).ok())
        .is_some_and(|p| p.is_multi_instance());
    Boolean::from(m)
}

extern "efiapi" fn create_node(kind: u8, sub: u8, len: u16) -> *mut Dp {
    if len < 4 {
        return core::ptr::null_mut();
    }
    let mut v = alloc::vec![0u8; usize::from(len)];
    v[0] = kind;
    v[1] = sub;
    v[2..4].copy_from_slice(&len.to_le_bytes());
    to_pool(&v) as *mut Dp
}

// ---- UnicodeCollation2 ---------------------------------------------------

/// EFI_UNICODE_COLLATION_PROTOCOL (UEFI spec 19.1; not in r-efi).
#[repr(C)]
pub struct UnicodeCollation {
    stri_coll: extern "efiapi" fn(*mut UnicodeCollation, *const u16, *const u16) -> isize,
    metai_match: extern "efiapi" fn(*mut UnicodeCollation, *const u16, *const u16) -> Boolean,
    str_lwr: extern "efiapi" fn(*mut UnicodeCollation, *mut u16),
    str_upr: extern "efiapi" fn(*mut UnicodeCollation, *mut u16),
    fat_to_str: extern "efiapi" fn(*mut UnicodeCollation, usize, *const u8, *mut u16),
    str_to_fat: extern "efiapi" fn(*mut UnicodeCollation, *const u16, usize, *mut u8) -> Boolean,
    supported_languages: *const u8,
}

/// EFI_UNICODE_COLLATION_PROTOCOL2_GUID.
pub const UNICODE_COLLATION2_GUID: efi::Guid = efi::Guid::from_fields(
    0xa4c751fc,
    0x23ae,
    0x4c3e,
    0x92,
    0xe9,
    &[0x49, 0x64, 0xcf, 0x63, 0xf3, 0x49],
);

fn upper(u: u16) -> u16 {
    char::from_u32(u32::from(u))
        .and_then(|c| c.to_uppercase().next())
        .and_then(|c| u16::try_from(u32::from(c)).ok())
        .unwrap_or(u)
}

fn lower(u: u16) -> u16 {
    char::from_u32(u32::from(u))
        .and_then(|c| c.to_lowercase().next())
        .and_then(|c| u16::try_from(u32::from(c)).ok())
        .unwrap_or(u)
}

/// Walk a NUL-terminated UCS-2 string (bounded).
///
/// # Safety
/// `p` must point at a NUL-terminated UCS-2 string.
unsafe fn units<'a>(p: *const u16) -> &'a [u16] {
    if p.is_null() {
        return &[];
    }
    let mut n = 0;
    // SAFETY: within the caller's string.
    while n < 65536 && unsafe { *p.add(n) } != 0 {
        n += 1;
    }
    // SAFETY: `n` units were read above.
    unsafe { core::slice::from_raw_parts(p, n) }
}

extern "efiapi" fn stri_coll(_t: *mut UnicodeCollation, a: *const u16, b: *const u16) -> isize {
    // SAFETY: the caller's strings.
    let (a, b) = unsafe { (units(a), units(b)) };
    for (x, y) in a.iter().map(|&u| upper(u)).zip(b.iter().map(|&u| upper(u))) {
        if x != y {
            return isize::from(x as i16)
                .saturating_sub(isize::from(y as i16))
                .signum();
        }
    }
    (a.len() as isize - b.len() as isize).signum()
}

extern "efiapi" fn metai_match(
    _t: *mut UnicodeCollation,
    s: *const u16,
    pat: *const u16,
) -> Boolean {
    // SAFETY: the caller's strings.
    let (s, p) = unsafe {
        (
            String::from_utf16_lossy(units(s)),
            String::from_utf16_lossy(units(pat)),
        )
    };
    Boolean::from(ember_bls::glob_match(&p.to_uppercase(), &s.to_uppercase()))
}

extern "efiapi" fn str_lwr(_t: *mut UnicodeCollation, s: *mut u16) {
    // SAFETY: the caller's string, changed in place.
    let n = unsafe { units(s) }.len();
    for i in 0..n {
        // SAFETY: within the string just measured.
        unsafe { *s.add(i) = lower(*s.add(i)) };
    }
}

extern "efiapi" fn str_upr(_t: *mut UnicodeCollation, s: *mut u16) {
    // SAFETY: the caller's string, changed in place.
    let n = unsafe { units(s) }.len();
    for i in 0..n {
        // SAFETY: within the string just measured.
        unsafe { *s.add(i) = upper(*s.add(i)) };
    }
}

extern "efiapi" fn fat_to_str(
    _t: *mut UnicodeCollation,
    size: usize,
    fat: *const u8,
    out: *mut u16,
) {
    if fat.is_null() || out.is_null() {
        return;
    }
    let mut i = 0;
    // FAT 8.3 names are OEM bytes; Latin-1 maps them one to one.
    // SAFETY: `size` bytes of the caller's name and room for `size + 1` units.
    unsafe {
        while i < size && *fat.add(i) != 0 {
            *out.add(i) = u16::from(*fat.add(i));
            i += 1;
        }
        *out.add(i) = 0;
    }
}

extern "efiapi" fn str_to_fat(
    _t: *mut UnicodeCollation,
    s: *const u16,
    size: usize,
    fat: *mut u8,
) -> Boolean {
    if fat.is_null() {
        return Boolean::FALSE;
    }
    // SAFETY: the caller's string.
    let s = unsafe { units(s) };
    let mut lossy = false;
    let mut j = 0;
    for &u in s {
        if j >= size {
            break;
        }
        if u == u16::from(b'.') || u == u16::from(b' ') {
            continue; // not stored in a FAT name
        }
        let c = upper(u);
        let invalid = c > 0x7f || b"\"*+,/:;<=>?[\\]|".contains(&(c as u8)) || c < 0x20;
        let b = if invalid {
            lossy = true;
            b'_'
        } else {
            c as u8
        };
        // SAFETY: `j < size` bytes of the caller's buffer.
        unsafe { *fat.add(j) = b };
        j += 1;
    }
    Boolean::from(lossy)
}

/// The protocol instances, installed on one handle at UEFI start-up.
pub struct Utility {
    pub to_text: device_path_to_text::Protocol,
    pub from_text: device_path_from_text::Protocol,
    pub util: device_path_utilities::Protocol,
    pub collation: UnicodeCollation,
}

pub fn new() -> Utility {
    Utility {
        to_text: device_path_to_text::Protocol {
            convert_device_node_to_text: node_to_text,
            convert_device_path_to_text: path_to_text,
        },
        from_text: device_path_from_text::Protocol {
            convert_text_to_device_node: text_to_node,
            convert_text_to_device_path: text_to_path,
        },
        util: device_path_utilities::Protocol {
            get_device_path_size: get_size,
            duplicate_device_path: duplicate,
            append_device_path: append_path,
            append_device_node: append_node,
            append_device_path_instance: append_instance,
            get_next_device_path_instance: next_instance,
            is_device_path_multi_instance: is_multi,
            create_device_node: create_node,
        },
        collation: UnicodeCollation {
            stri_coll,
            metai_match,
            str_lwr,
            str_upr,
            fat_to_str,
            str_to_fat,
            supported_languages: c"en".as_ptr().cast(),
        },
    }
}
