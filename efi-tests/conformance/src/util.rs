//! Globals (system table, image handle) and small FFI helpers.

use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, Ordering};
use r_efi::efi;

static ST: AtomicPtr<efi::SystemTable> = AtomicPtr::new(null_mut());
static IMAGE: AtomicPtr<c_void> = AtomicPtr::new(null_mut());

pub unsafe fn init(image: efi::Handle, st: *mut efi::SystemTable) {
    ST.store(st, Ordering::Relaxed);
    IMAGE.store(image, Ordering::Relaxed);
}

pub fn st() -> *mut efi::SystemTable {
    ST.load(Ordering::Relaxed)
}

pub fn image() -> efi::Handle {
    IMAGE.load(Ordering::Relaxed)
}

pub unsafe fn bs() -> &'static efi::BootServices {
    &*(*st()).boot_services
}

pub unsafe fn rt() -> &'static efi::RuntimeServices {
    &*(*st()).runtime_services
}

/// NUL-terminated UCS-2 copy of an ASCII string.
pub fn u16z(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(core::iter::once(0)).collect()
}

/// Read a NUL-terminated UCS-2 string (lossy, for messages and matching).
pub unsafe fn from_u16z(p: *const u16) -> String {
    let mut s = String::new();
    if p.is_null() {
        return s;
    }
    let mut i = 0;
    while *p.add(i) != 0 {
        s.push(char::from_u32(u32::from(*p.add(i))).unwrap_or('?'));
        i += 1;
    }
    s
}

/// `HandleProtocol`, typed; None when the handle lacks the protocol.
pub unsafe fn handle_protocol<T>(h: efi::Handle, guid: &efi::Guid) -> Option<*mut T> {
    let mut g = *guid;
    let mut p: *mut c_void = null_mut();
    let s = (bs().handle_protocol)(h, &mut g, &mut p);
    (s == efi::Status::SUCCESS && !p.is_null()).then_some(p.cast())
}

/// `LocateProtocol`, typed.
pub unsafe fn locate_protocol<T>(guid: &efi::Guid) -> Option<*mut T> {
    let mut g = *guid;
    let mut p: *mut c_void = null_mut();
    let s = (bs().locate_protocol)(&mut g, null_mut(), &mut p);
    (s == efi::Status::SUCCESS && !p.is_null()).then_some(p.cast())
}

/// `LocateHandleBuffer(ByProtocol)` copied into a Vec (the pool buffer is freed).
pub unsafe fn handles_with(guid: &efi::Guid) -> Vec<efi::Handle> {
    let mut g = *guid;
    let mut n = 0usize;
    let mut buf: *mut efi::Handle = null_mut();
    let s = (bs().locate_handle_buffer)(efi::BY_PROTOCOL, &mut g, null_mut(), &mut n, &mut buf);
    if s != efi::Status::SUCCESS {
        return Vec::new();
    }
    let v = core::slice::from_raw_parts(buf, n).to_vec();
    (bs().free_pool)(buf.cast());
    v
}

/// Whole device path as bytes, including the end node.
pub unsafe fn dp_bytes(dp: *const efi::protocols::device_path::Protocol) -> Vec<u8> {
    let mut v = Vec::new();
    let mut p = dp as *const u8;
    loop {
        let len = usize::from(u16::from_le_bytes([*p.add(2), *p.add(3)]));
        if len < 4 {
            // Malformed; stop rather than loop forever.
            return v;
        }
        v.extend_from_slice(core::slice::from_raw_parts(p, len));
        if *p == 0x7f && *p.add(1) == 0xff {
            return v;
        }
        p = p.add(len);
    }
}

/// A vendor-defined hardware device path node with `guid`, then the end node.
pub fn vendor_dp(guid: &efi::Guid) -> Vec<u8> {
    let mut v = alloc::vec![1u8, 4, 20, 0];
    v.extend_from_slice(guid.as_bytes());
    v.extend_from_slice(&[0x7f, 0xff, 4, 0]);
    v
}

pub const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> efi::Guid {
    efi::Guid::from_fields(a, b, c, d[0], d[1], &[d[2], d[3], d[4], d[5], d[6], d[7]])
}
