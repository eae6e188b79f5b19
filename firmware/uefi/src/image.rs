//! LoadImage, StartImage, Exit, UnloadImage and ExitBootServices.
//!
//! An image runs on a stack of its own; StartImage records where to resume
//! and Exit jumps back there (`arch/`), so an image can leave from any depth
//! of its own calls, and chains nest: shim → GRUB → the kernel's EFI stub.

use super::{dispatch, guid, handle_of, handle_ptr, run_notifications, services, with, TABLES};
use crate::machine::Attrs;
use crate::ram::MAP;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ffi::c_void;
use ember_efi::Handle as DbHandle;
use ember_pe::PeImage;
use ember_uefi_data::devpath::DevicePath;
use ember_uefi_data::memmap::{AllocateType, EfiMemoryType};
use r_efi::efi::{self, Boolean, Handle, Status};
use r_efi::protocols::{
    device_path, load_file, load_file2, loaded_image, loaded_image_device_path, simple_file_system,
};

/// The COFF machine of the images this firmware runs.
#[cfg(target_arch = "x86_64")]
const NATIVE_MACHINE: u16 = ember_pe::MACHINE_X86_64;
#[cfg(target_arch = "aarch64")]
const NATIVE_MACHINE: u16 = ember_pe::MACHINE_AARCH64;

/// Stack for each started image: GRUB and the Linux EFI stub use plenty.
const STACK_PAGES: u64 = 256; // 1 MiB

/// Largest file LoadImage reads (UKIs carry kernel and initrd).
const MAX_IMAGE: usize = 512 << 20;

extern "C" {
    fn efi_call_image(
        entry: u64,
        handle: Handle,
        st: *mut efi::SystemTable,
        stack_top: u64,
        slot: *mut u64,
    ) -> usize;
    fn efi_exit_image(resume_rsp: u64, status: usize) -> !;
}

pub struct Image {
    /// For reports: the file it came from, or how it was loaded.
    pub name: alloc::string::String,
    pub base: u64,
    pub pages: u64,
    pub entry: u64,
    pub code_type: u32,
    pub loaded: *mut loaded_image::Protocol,
    /// The bytes LoadedImage.FilePath points at: owned here, never read.
    #[allow(dead_code)]
    file_path: Box<[u8]>,
    full_path: Option<Box<[u8]>>,
    pub started: bool,
    /// Whether the image's pages carry W^X attributes (NX_COMPAT images).
    protected: bool,
    /// Where Exit resumes (written by efi_call_image).
    resume: Box<u64>,
    exit_data: (usize, *mut u16),
}

impl Image {
    /// Ember's own image: the parent and agent of everything it loads.
    pub fn firmware(start: u64, end: u64, loaded: *mut loaded_image::Protocol) -> Image {
        Image {
            name: "Ember".into(),
            base: start,
            pages: (end - start) / 4096,
            entry: 0,
            code_type: efi::RUNTIME_SERVICES_CODE,
            loaded,
            file_path: Box::new([]),
            full_path: None,
            started: true,
            resume: Box::new(0),
            exit_data: (0, core::ptr::null_mut()),
            protected: false,
        }
    }
}

/// Map an NX_COMPAT image W^X: sections that are not writable become
/// read-only, sections that are not executable non-executable, headers
/// both. Images without NX_COMPAT stay read-write-execute, as they may
/// expect. Only page-aligned section layouts are split this way; returns
/// whether anything was applied.
fn protect(pe: &PeImage, base: u64) -> bool {
    let m = crate::machine::machine();
    if !pe.nx_compat() || !m.nx_enabled() || pe.section_alignment() < 4096 {
        return false;
    }
    let none = Attrs::NONE;
    let headers = u64::from(pe.headers_size()).next_multiple_of(4096);
    let ro_nx = Attrs {
        read_protect: false,
        exec_protect: true,
        read_only: true,
    };
    // SAFETY: the image's own pages, just allocated and loaded; Ember's
    // identity tables are live.
    let mut ok = unsafe { m.update_attributes(base, base + headers, ro_nx, none) };
    for s in pe.section_permissions() {
        let start = base + u64::from(s.rva);
        let end = start + u64::from(s.size).next_multiple_of(4096);
        let set = Attrs {
            read_protect: false,
            exec_protect: !s.executable,
            read_only: !s.writable,
        };
        // SAFETY: as above, within the image.
        ok &= unsafe { m.update_attributes(start, end, set, none) };
    }
    if ok {
        log::debug!("UEFI: image at {base:#x} is NX_COMPAT: mapped W^X");
    } else {
        log::warn!("UEFI: could not apply W^X to the image at {base:#x}");
    }
    true
}

/// Give an unloaded image's pages back read-write-execute.
fn unprotect(base: u64, pages: u64) {
    // SAFETY: the image's own pages, about to be freed.
    unsafe {
        crate::machine::machine().update_attributes(
            base,
            base + pages * 4096,
            Attrs::NONE,
            Attrs::ALL,
        )
    };
}

/// Where an image's SectionAlignment lets it be loaded: that alignment,
/// between a page and 2 MiB; a page for a malformed value.
fn load_alignment(section_alignment: u32) -> u64 {
    let a = u64::from(section_alignment);
    if a.is_power_of_two() {
        a.clamp(4096, 2 << 20)
    } else {
        4096
    }
}

fn alloc(ty: u32, pages: u64, how: AllocateType) -> Option<u64> {
    MAP.lock()
        .allocate_pages(how, EfiMemoryType(ty), pages)
        .ok()
}

fn free(addr: u64, pages: u64) {
    let _ = MAP.lock().free_pages(addr, pages);
}

/// Read the file a device path names, through SimpleFileSystem or LoadFile2/LoadFile.
fn read_by_path(path: usize, boot_policy: bool) -> Result<(PageBuf, DbHandle, Box<[u8]>), Status> {
    // SAFETY: a device path from the caller.
    let bytes = unsafe { services::device_path_bytes(path) }.ok_or(Status::INVALID_PARAMETER)?;
    DevicePath::parse(bytes).map_err(|_| Status::INVALID_PARAMETER)?;
    let sfs = guid(&simple_file_system::PROTOCOL_GUID);
    let dpg = guid(&device_path::PROTOCOL_GUID);
    if let Ok((h, used)) = with(|e| {
        e.st.handles
            .locate_device_path(&sfs, bytes, super::services_dp)
    }) {
        let rest = &bytes[used..];
        let name = DevicePath::parse(rest)
            .ok()
            .and_then(|p| p.file_path_text().ok().flatten())
            .ok_or(Status::NOT_FOUND)?;
        let iface = with(|e| e.st.handles.handle_protocol(h, &sfs)).map_err(super::status)?;
        let data = read_file(iface as *mut simple_file_system::Protocol, &name)?;
        let _ = dpg;
        return Ok((data, h, rest.into()));
    }
    // LoadFile2 (and LoadFile for boot policy) on the device itself.
    let (g, is2) = if boot_policy {
        (guid(&load_file::PROTOCOL_GUID), false)
    } else {
        (guid(&load_file2::PROTOCOL_GUID), true)
    };
    let (h, used) = with(|e| {
        e.st.handles
            .locate_device_path(&g, bytes, super::services_dp)
    })
    .map_err(|_| Status::NOT_FOUND)?;
    let iface = with(|e| e.st.handles.handle_protocol(h, &g)).map_err(super::status)?;
    let rest_ptr = (path + used) as *mut device_path::Protocol;
    let mut size = 0usize;
    let lf = iface as *mut load_file::Protocol;
    // SAFETY: a LoadFile(2) interface installed on that handle; the two
    // protocols share one function layout.
    let first = unsafe {
        ((*lf).load_file)(
            lf,
            rest_ptr,
            Boolean::from(boot_policy && !is2),
            &mut size,
            core::ptr::null_mut(),
        )
    };
    if first != Status::BUFFER_TOO_SMALL || size == 0 || size > MAX_IMAGE {
        return Err(Status::NOT_FOUND);
    }
    let mut buf = PageBuf::new(size).ok_or(Status::OUT_OF_RESOURCES)?;
    // SAFETY: as above, with a buffer of `size` bytes.
    let st = unsafe {
        ((*lf).load_file)(
            lf,
            rest_ptr,
            Boolean::from(boot_policy && !is2),
            &mut size,
            buf.as_mut_slice().as_mut_ptr() as *mut c_void,
        )
    };
    if st != Status::SUCCESS {
        return Err(st);
    }
    buf.len = buf.len.min(size);
    Ok((buf, h, bytes[used..].into()))
}

/// A file read into pages of its own (large files stay off the heap).
pub struct PageBuf {
    addr: u64,
    pages: u64,
    len: usize,
}

impl PageBuf {
    fn new(len: usize) -> Option<PageBuf> {
        let pages = (len as u64).div_ceil(4096).max(1);
        let addr = alloc(efi::BOOT_SERVICES_DATA, pages, AllocateType::AnyPages)?;
        Some(PageBuf { addr, pages, len })
    }
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: pages owned by this buffer, `len` ≤ their size.
        unsafe { crate::phys::bytes(self.addr, self.len) }
    }
    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, exclusively.
        unsafe { crate::phys::bytes_mut(self.addr, self.len) }
    }
    fn from_slice(b: &[u8]) -> Option<PageBuf> {
        let mut p = PageBuf::new(b.len())?;
        p.as_mut_slice().copy_from_slice(b);
        Some(p)
    }
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        free(self.addr, self.pages);
    }
}

/// Open `name` read-only through a SimpleFileSystem interface (ours or a
/// guest's); returns the handle and the file's size.
pub fn open_file(
    sfs: *mut simple_file_system::Protocol,
    name: &str,
) -> Result<(*mut r_efi::protocols::file::Protocol, u64), Status> {
    use r_efi::protocols::file;
    let mut root: *mut file::Protocol = core::ptr::null_mut();
    // SAFETY: a SimpleFileSystem interface from the handle database.
    let st = unsafe { ((*sfs).open_volume)(sfs, &mut root) };
    if st != Status::SUCCESS {
        return Err(st);
    }
    let mut wide: Vec<u16> = name
        .replace('/', "\\")
        .encode_utf16()
        .chain(core::iter::once(0))
        .collect();
    let mut f: *mut file::Protocol = core::ptr::null_mut();
    // SAFETY: `root` is a live directory handle.
    let st = unsafe { ((*root).open)(root, &mut f, wide.as_mut_ptr(), file::MODE_READ, 0) };
    // SAFETY: as above; close the root whatever happened.
    unsafe { ((*root).close)(root) };
    if st != Status::SUCCESS {
        return Err(st);
    }
    let mut size = 0u64;
    // SAFETY: `f` is live; seeking to the end gives the size without
    // EFI_FILE_INFO.
    unsafe {
        ((*f).set_position)(f, u64::MAX);
        ((*f).get_position)(f, &mut size);
        ((*f).set_position)(f, 0);
    }
    Ok((f, size))
}

/// Read `name` through a SimpleFileSystem interface (ours or a guest's).
pub fn read_file(sfs: *mut simple_file_system::Protocol, name: &str) -> Result<PageBuf, Status> {
    let (f, size) = open_file(sfs, name)?;
    let result = (|| {
        if size == 0 || size as usize > MAX_IMAGE {
            return Err(Status::LOAD_ERROR);
        }
        let mut buf = PageBuf::new(size as usize).ok_or(Status::OUT_OF_RESOURCES)?;
        let mut n = size as usize;
        // SAFETY: `f` is live; the buffer holds `n` bytes.
        let st = unsafe { ((*f).read)(f, &mut n, buf.as_mut_slice().as_mut_ptr() as *mut c_void) };
        if st != Status::SUCCESS {
            return Err(st);
        }
        if n as u64 != size {
            return Err(Status::DEVICE_ERROR);
        }
        Ok(buf)
    })();
    // SAFETY: `f` is a live file handle.
    unsafe { ((*f).close)(f) };
    result
}

pub extern "efiapi" fn load_image(
    boot_policy: Boolean,
    parent: Handle,
    path: *mut device_path::Protocol,
    source: *mut c_void,
    source_size: usize,
    out: *mut Handle,
) -> Status {
    if out.is_null() {
        return Status::INVALID_PARAMETER;
    }
    let Some(parent_h) = handle_of(parent) else {
        return Status::INVALID_PARAMETER;
    };
    if !with(|e| e.images.contains_key(&parent_h.raw())) {
        return Status::INVALID_PARAMETER;
    }
    let (file, device, file_path): (PageBuf, Option<DbHandle>, Box<[u8]>) = if !source.is_null() {
        if source_size == 0 {
            return Status::LOAD_ERROR;
        }
        // SAFETY: the caller's buffer of `source_size` bytes; copied, since
        // the caller may free it once LoadImage returns.
        let Some(b) = PageBuf::from_slice(unsafe {
            core::slice::from_raw_parts(source as *const u8, source_size)
        }) else {
            return Status::OUT_OF_RESOURCES;
        };
        // With a buffer, the device path (if any) still names the image.
        let (dev, fp) = match (!path.is_null()).then_some(path as usize) {
            Some(p) => {
                // SAFETY: the caller's device path.
                let bytes = unsafe { services::device_path_bytes(p) };
                match bytes {
                    Some(bytes) => {
                        let dpg = guid(&device_path::PROTOCOL_GUID);
                        match with(|e| {
                            e.st.handles
                                .locate_device_path(&dpg, bytes, super::services_dp)
                        }) {
                            Ok((h, used)) => (Some(h), bytes[used..].into()),
                            Err(_) => (None, bytes.into()),
                        }
                    }
                    None => return Status::INVALID_PARAMETER,
                }
            }
            None => (None, Box::from(&ember_uefi_data::devpath::end_entire()[..])),
        };
        (b, dev, fp)
    } else if path.is_null() {
        return Status::NOT_FOUND;
    } else {
        match read_by_path(path as usize, boot_policy.into()) {
            Ok((b, h, fp)) => (b, Some(h), fp),
            Err(s) => return s,
        }
    };
    let full_path: Option<Box<[u8]>> = if path.is_null() {
        None
    } else {
        // SAFETY: the caller's device path.
        unsafe { services::device_path_bytes(path as usize) }.map(Box::from)
    };
    match load_pe(file.as_slice(), parent, device, file_path, full_path) {
        Ok(h) => {
            // SAFETY: out pointer checked.
            unsafe { *out = handle_ptr(h) };
            Status::SUCCESS
        }
        Err(s) => s,
    }
}

/// Relocate a PE image into fresh pages and give it a handle with LoadedImage.
pub fn load_pe(
    file: &[u8],
    parent: Handle,
    device: Option<DbHandle>,
    file_path: Box<[u8]>,
    full_path: Option<Box<[u8]>>,
) -> Result<DbHandle, Status> {
    let name = DevicePath::parse(&file_path)
        .ok()
        .and_then(|p| p.file_path_text().ok().flatten())
        .unwrap_or_else(|| "(image from a memory buffer)".into());
    let pe = PeImage::parse_for_machines(file, &[NATIVE_MACHINE]).map_err(|e| {
        log::warn!("UEFI: LoadImage: {e}");
        Status::LOAD_ERROR
    })?;
    let (code, data) = match pe.subsystem() {
        ember_pe::SUBSYSTEM_EFI_APPLICATION => (efi::LOADER_CODE, efi::LOADER_DATA),
        ember_pe::SUBSYSTEM_EFI_BOOT_SERVICE_DRIVER => {
            (efi::BOOT_SERVICES_CODE, efi::BOOT_SERVICES_DATA)
        }
        ember_pe::SUBSYSTEM_EFI_RUNTIME_DRIVER => {
            (efi::RUNTIME_SERVICES_CODE, efi::RUNTIME_SERVICES_DATA)
        }
        s => {
            log::warn!("UEFI: LoadImage: subsystem {s} is not an EFI image");
            return Err(Status::UNSUPPORTED);
        }
    };
    let size = u64::from(pe.image_size());
    let pages = size.div_ceil(4096);
    let pref = pe.preferred_base();
    let base = if pref % 4096 == 0 && pref != 0 {
        alloc(code, pages, AllocateType::Address(pref))
    } else {
        None
    };
    let base = match base {
        Some(b) => b,
        // At the image's SectionAlignment: an arm64 kernel's EFI stub
        // otherwise copies the whole kernel to a 64 KiB boundary.
        None if pe.is_relocatable() || pref == 0 => MAP
            .lock()
            .allocate_aligned(
                EfiMemoryType(code),
                pages,
                load_alignment(pe.section_alignment()),
                u64::from(u32::MAX),
            )
            .map_err(|_| Status::OUT_OF_RESOURCES)?,
        None => {
            log::warn!(
                "UEFI: LoadImage: image wants {pref:#x}, which is taken, and cannot be relocated"
            );
            return Err(Status::LOAD_ERROR);
        }
    };
    // SAFETY: `pages` pages just allocated for the image.
    let dest = unsafe { crate::phys::bytes_mut(base, (pages * 4096) as usize) };
    if let Err(e) = pe.load(file, dest, base) {
        log::warn!("UEFI: LoadImage: {e}");
        free(base, pages);
        return Err(Status::LOAD_ERROR);
    }
    // Only code needs the I-cache made coherent: a UKI's kernel and initrd
    // sections are tens of MiB of data.
    let m = crate::machine::machine();
    let mut text = pe.section_permissions().filter(|s| s.executable).peekable();
    if text.peek().is_none() {
        m.code_written(base, pages * 4096);
    }
    for s in text {
        m.code_written(base + u64::from(s.rva), u64::from(s.size));
    }
    let protected = protect(&pe, base);
    let st = TABLES
        .lock()
        .as_ref()
        .map(|t| t.system)
        .unwrap_or(core::ptr::null_mut());
    let mut file_path = file_path;
    let li = Box::into_raw(Box::new(loaded_image::Protocol {
        revision: loaded_image::REVISION,
        parent_handle: parent,
        system_table: st,
        device_handle: device.map(handle_ptr).unwrap_or(core::ptr::null_mut()),
        file_path: file_path.as_mut_ptr() as *mut device_path::Protocol,
        reserved: core::ptr::null_mut(),
        load_options_size: 0,
        load_options: core::ptr::null_mut(),
        image_base: base as *mut c_void,
        image_size: size,
        image_code_type: code,
        image_data_type: data,
        unload: None,
    }));
    let li_g = guid(&loaded_image::PROTOCOL_GUID);
    let lidp_g = guid(&loaded_image_device_path::PROTOCOL_GUID);
    let full_ptr = full_path.as_ref().map(|p| p.as_ptr() as usize).unwrap_or(0);
    let r = with(|e| {
        e.st.install_protocol(None, li_g, li as usize)
            .and_then(|h| e.st.install_protocol(Some(h), lidp_g, full_ptr).map(|_| h))
    });
    dispatch();
    let h = match r {
        Ok(h) => h,
        Err(s) => {
            // SAFETY: never handed out.
            drop(unsafe { Box::from_raw(li) });
            free(base, pages);
            return Err(super::status(s));
        }
    };
    let entry = base + u64::from(pe.entry_rva());
    log::debug!(
        "UEFI: loaded image at {base:#x} ({} KiB), entry {entry:#x}",
        size / 1024
    );
    with(|e| {
        e.images.insert(
            h.raw(),
            Image {
                name,
                base,
                pages,
                entry,
                code_type: code,
                loaded: li,
                file_path,
                full_path,
                started: false,
                resume: Box::new(0),
                exit_data: (0, core::ptr::null_mut()),
                protected,
            },
        )
    });
    Ok(h)
}

/// Forget an image: uninstall its protocols and free its memory.
fn unload(h: DbHandle) {
    let Some(img) = with(|e| e.images.remove(&h.raw())) else {
        return;
    };
    let li_g = guid(&loaded_image::PROTOCOL_GUID);
    let lidp_g = guid(&loaded_image_device_path::PROTOCOL_GUID);
    let full = img
        .full_path
        .as_ref()
        .map(|p| p.as_ptr() as usize)
        .unwrap_or(0);
    let _ = with(|e| {
        let _ = e.st.handles.uninstall_protocol(h, &lidp_g, full);
        e.st.handles
            .uninstall_protocol(h, &li_g, img.loaded as usize)
    });
    // SAFETY: the LoadedImage box Ember made for this image, now uninstalled.
    drop(unsafe { Box::from_raw(img.loaded) });
    if img.protected {
        unprotect(img.base, img.pages);
    }
    free(img.base, img.pages);
}

pub extern "efiapi" fn start_image(
    handle: Handle,
    exit_size: *mut usize,
    exit_data: *mut *mut u16,
) -> Status {
    let Some(h) = handle_of(handle) else {
        return Status::INVALID_PARAMETER;
    };
    let Some((entry, slot, code)) = with(|e| {
        let img = e.images.get_mut(&h.raw())?;
        if img.started {
            return None;
        }
        img.started = true;
        let slot: *mut u64 = &mut *img.resume;
        Some((img.entry, slot, img.code_type))
    }) else {
        return Status::INVALID_PARAMETER;
    };
    // One more page than the stack: the lowest is an unmapped guard.
    let Some(stack) = alloc(
        efi::BOOT_SERVICES_DATA,
        STACK_PAGES + 1,
        AllocateType::MaxAddress(u64::from(u32::MAX)),
    ) else {
        return Status::OUT_OF_RESOURCES;
    };
    crate::machine::machine().image_running(stack, true);
    let st = TABLES
        .lock()
        .as_ref()
        .map(|t| t.system)
        .unwrap_or(core::ptr::null_mut());
    with(|e| e.running.push(h.raw()));
    // SAFETY: `entry` is the relocated entry point of an image Ember loaded;
    // the stack is fresh; `slot` lives in the image record until unload.
    let raw = unsafe { efi_call_image(entry, handle, st, stack + (STACK_PAGES + 1) * 4096, slot) };
    with(|e| e.running.retain(|&x| x != h.raw()));
    crate::machine::machine().image_running(stack, false);
    free(stack, STACK_PAGES + 1);
    let status = Status::from_usize(raw);
    let data =
        with(|e| e.images.get(&h.raw()).map(|i| i.exit_data)).unwrap_or((0, core::ptr::null_mut()));
    // SAFETY: out pointers are optional.
    unsafe {
        if !exit_size.is_null() {
            *exit_size = data.0;
        }
        if !exit_data.is_null() {
            *exit_data = data.1;
        }
    }
    // Applications are gone once they return; drivers stay unless they failed.
    let is_app = code == efi::LOADER_CODE;
    if is_app || status.is_error() {
        unload(h);
    }
    status
}

pub extern "efiapi" fn exit(handle: Handle, status: Status, size: usize, data: *mut u16) -> Status {
    let Some(h) = handle_of(handle) else {
        return Status::INVALID_PARAMETER;
    };
    enum Act {
        Jump(u64),
        UnloadOnly,
        Invalid,
    }
    let act = with(|e| {
        let top = e.running.last().copied();
        match e.images.get_mut(&h.raw()) {
            Some(img) if !img.started => Act::UnloadOnly,
            Some(img) if top == Some(h.raw()) => {
                img.exit_data = (size, data);
                Act::Jump(*img.resume)
            }
            _ => Act::Invalid,
        }
    });
    match act {
        Act::UnloadOnly => {
            unload(h);
            Status::SUCCESS
        }
        Act::Invalid => Status::INVALID_PARAMETER,
        // SAFETY: the resume point efi_call_image stored for this image,
        // which is running (innermost), so its frame is still live.
        Act::Jump(rsp) => unsafe { efi_exit_image(rsp, status.as_usize()) },
    }
}

pub extern "efiapi" fn unload_image(handle: Handle) -> Status {
    let Some(h) = handle_of(handle) else {
        return Status::INVALID_PARAMETER;
    };
    let info = with(|e| e.images.get(&h.raw()).map(|i| (i.started, i.loaded)));
    match info {
        None => Status::INVALID_PARAMETER,
        Some((false, _)) => {
            unload(h);
            Status::SUCCESS
        }
        Some((true, li)) => {
            // SAFETY: the LoadedImage Ember made; the image may have set Unload.
            match unsafe { (*li).unload } {
                Some(f) => {
                    let st = f(handle);
                    if st == Status::SUCCESS {
                        unload(h);
                    }
                    st
                }
                None => Status::UNSUPPORTED,
            }
        }
    }
}

pub extern "efiapi" fn exit_boot_services(handle: Handle, key: usize) -> Status {
    if handle_of(handle).is_none() {
        return Status::INVALID_PARAMETER;
    }
    if MAP.lock().key() != key {
        return Status::INVALID_PARAMETER;
    }
    // Tell everyone who asked, at their TPL, before anything goes away.
    let ebs = ember_efi::Guid(*r_efi::efi::EVENT_GROUP_EXIT_BOOT_SERVICES.as_bytes());
    let tpl = with(|e| {
        e.st.events.signal_group(&ebs);
        e.st.tpl()
    });
    run_notifications(tpl);
    if MAP.lock().key() != key {
        // A notify function changed the map: the caller must fetch it again.
        return Status::INVALID_PARAMETER;
    }
    // The event database lives in boot memory: keep what
    // SetVirtualAddressMap will have to call.
    let vac = ember_efi::Guid(*r_efi::efi::EVENT_GROUP_VIRTUAL_ADDRESS_CHANGE.as_bytes());
    let notifies = with(|e| e.st.events.group_notifies(&vac));
    super::runtime::keep_address_change_notifies(
        notifies
            .iter()
            .map(|&(ev, f, ctx)| (ev.raw(), f as u64, ctx as u64)),
    );
    super::runtime::enter_runtime();
    log::info!(
        "UEFI: ExitBootServices; the OS owns the machine now ({} ms since Ember started)",
        crate::machine::machine().since_start_us() / 1000
    );
    if let Some(t) = TABLES.lock().as_ref() {
        // SAFETY: the system table Ember allocated. The spec has these
        // fields cleared once boot services are gone.
        unsafe {
            let s = &mut *t.system;
            s.console_in_handle = core::ptr::null_mut();
            s.con_in = core::ptr::null_mut();
            s.console_out_handle = core::ptr::null_mut();
            s.con_out = core::ptr::null_mut();
            s.standard_error_handle = core::ptr::null_mut();
            s.std_err = core::ptr::null_mut();
            s.boot_services = core::ptr::null_mut();
        }
    }
    super::refresh_system_crc();
    Status::SUCCESS
}

/// Print which loaded image `addr` falls in, with the offset into it;
/// false if none. Called from the exception handler: never blocks.
pub fn describe(addr: u64) -> bool {
    let Some(g) = super::EFI.try_lock() else {
        return false;
    };
    let Some(e) = g.as_ref() else { return false };
    for img in e.images.values() {
        if img.entry != 0 && addr >= img.base && addr < img.base + img.pages * 4096 {
            crate::print!(
                "EFI image {} loaded at {:#x}, offset {:#x}",
                img.name,
                img.base,
                addr - img.base
            );
            return true;
        }
    }
    false
}
