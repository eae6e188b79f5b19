//! The Linux initrd through EFI_LOAD_FILE2_PROTOCOL on the
//! `LINUX_EFI_INITRD_MEDIA_GUID` vendor-media device path: the EFI stub
//! finds that path with LocateDevicePath, asks for the size, allocates, and
//! asks again with its buffer. Ember reads the entry's initrds (several are
//! concatenated, 4-byte aligned, as systemd-boot does) straight into it.

use super::image::open_file as open;
use super::{guid, with};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::c_void;
use r_efi::efi::{Boolean, Status};
use r_efi::protocols::{device_path, load_file2, simple_file_system};

/// Bytes the last initrd offer amounted to (for error messages).
static LAST_SIZE: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The size of the initrds last asked for through LoadFile2.
pub fn last_size() -> u64 {
    LAST_SIZE.load(core::sync::atomic::Ordering::Relaxed)
}

#[repr(C)]
struct Loader {
    proto: load_file2::Protocol,
    sfs: *mut simple_file_system::Protocol,
    paths: Vec<String>,
}

fn total(me: &Loader) -> Result<u64, Status> {
    let mut t = 0u64;
    for p in &me.paths {
        let (f, size) = open(me.sfs, p)?;
        // SAFETY: `f` is live.
        unsafe { ((*f).close)(f) };
        t += size.next_multiple_of(4);
    }
    Ok(t)
}

extern "efiapi" fn load(
    this: *mut load_file2::Protocol,
    _path: *mut device_path::Protocol,
    boot_policy: Boolean,
    size: *mut usize,
    buf: *mut c_void,
) -> Status {
    if this.is_null() || size.is_null() {
        return Status::INVALID_PARAMETER;
    }
    if boot_policy.into() {
        return Status::UNSUPPORTED; // LoadFile2 never serves boot-policy loads
    }
    // SAFETY: `proto` is the first field of the #[repr(C)] Loader.
    let me = unsafe { &*(this as *const Loader) };
    let need = match total(me) {
        Ok(t) => t as usize,
        Err(s) => return s,
    };
    LAST_SIZE.store(need as u64, core::sync::atomic::Ordering::Relaxed);
    // SAFETY: `size` checked.
    let have = unsafe { *size };
    if buf.is_null() || have < need {
        // SAFETY: as above.
        unsafe { *size = need };
        return Status::BUFFER_TOO_SMALL;
    }
    let t0 = crate::machine::machine().now_ns();
    let mut off = 0usize;
    for p in &me.paths {
        let (f, fsize) = match open(me.sfs, p) {
            Ok(x) => x,
            Err(s) => return s,
        };
        let mut n = fsize as usize;
        // SAFETY: the caller's buffer holds `need` bytes; the file fits in it.
        let st = unsafe { ((*f).read)(f, &mut n, (buf as *mut u8).add(off) as *mut c_void) };
        // SAFETY: `f` is live.
        unsafe { ((*f).close)(f) };
        if st != Status::SUCCESS || n as u64 != fsize {
            log::error!("UEFI: initrd {p}: read failed ({})", super::status_name(st));
            return Status::DEVICE_ERROR;
        }
        let padded = (fsize as usize).next_multiple_of(4);
        // SAFETY: the padding lies inside the caller's buffer.
        unsafe { core::ptr::write_bytes((buf as *mut u8).add(off + n), 0, padded - n) };
        off += padded;
    }
    // SAFETY: `size` checked.
    unsafe { *size = need };
    let ns = (crate::machine::machine().now_ns() - t0).max(1);
    log::info!(
        "UEFI: initrd {} KiB via LoadFile2 in {} ms",
        need / 1024,
        ns / 1_000_000
    );
    Status::SUCCESS
}

/// Offer `paths` (on the filesystem `sfs`) as the initrd until the returned
/// handle is withdrawn.
pub fn offer(
    sfs: *mut simple_file_system::Protocol,
    paths: &[String],
) -> Option<ember_efi::Handle> {
    if paths.is_empty() {
        return None;
    }
    let l = Box::leak(Box::new(Loader {
        proto: load_file2::Protocol { load_file: load },
        sfs,
        paths: paths.to_vec(),
    }));
    let dp = Box::leak(ember_uefi_data::devpath::linux_initrd_media_path().into_boxed_slice());
    let pairs = [
        (guid(&device_path::PROTOCOL_GUID), dp.as_ptr() as usize),
        (
            guid(&load_file2::PROTOCOL_GUID),
            &mut l.proto as *mut _ as usize,
        ),
    ];
    with(|e| e.st.install_multiple(None, &pairs, super::services_dp)).ok()
}

/// The SimpleFileSystem interface on a partition handle.
pub fn sfs_of(h: ember_efi::Handle) -> Option<*mut simple_file_system::Protocol> {
    let g = guid(&simple_file_system::PROTOCOL_GUID);
    with(|e| e.st.handles.handle_protocol(h, &g))
        .ok()
        .map(|i| i as *mut simple_file_system::Protocol)
}

/// Withdraw an initrd offer (the entry did not boot).
pub fn withdraw(h: ember_efi::Handle) {
    let g = guid(&load_file2::PROTOCOL_GUID);
    let dpg = guid(&device_path::PROTOCOL_GUID);
    with(|e| {
        let lf = e.st.handles.protocol_interface(h, &g);
        let dp = e.st.handles.protocol_interface(h, &dpg);
        if let (Some(lf), Some(dp)) = (lf, dp) {
            let _ = e.st.handles.uninstall_multiple(h, &[(g, lf), (dpg, dp)]);
        }
    });
}
