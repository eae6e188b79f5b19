//! The EFI_BOOT_SERVICES entry points for events, TPL, protocols and the
//! miscellaneous services. Memory services are in `memory.rs`, images in
//! `image.rs`. Each function validates raw pointers, converts them to the
//! bookkeeping crates' types, and maps results to EFI status codes.

use super::{
    dispatch, event_of, event_ptr, guid_at, handle_of, handle_ptr, result, run_notifications,
    status, with,
};
use alloc::vec::Vec;
use core::ffi::c_void;
use ember_efi::{devpath, Registration, Search, TimerDelay, Tpl};
use r_efi::efi::{self, Boolean, Event, Guid, Handle, Status};

// ---- TPL -----------------------------------------------------------------

pub extern "efiapi" fn raise_tpl(new: efi::Tpl) -> efi::Tpl {
    with(|e| match e.st.events.raise_tpl(Tpl(new)) {
        Ok(old) => old.0,
        Err(err) => {
            // Undefined behaviour per the spec; refusing keeps Ember sane.
            log::warn!("UEFI: RaiseTPL({new}): {err}");
            e.st.tpl().0
        }
    })
}

pub extern "efiapi" fn restore_tpl(old: efi::Tpl) {
    let ok = with(|e| match e.st.events.restore_tpl(Tpl(old)) {
        Ok(()) => true,
        Err(err) => {
            log::warn!("UEFI: RestoreTPL({old}): {err}");
            false
        }
    });
    if ok {
        if old < Tpl::NOTIFY.0 {
            let now = super::now_100ns();
            with(|e| e.st.events.tick(now));
        }
        run_notifications(Tpl(old));
    }
}

// ---- events --------------------------------------------------------------

fn create(
    kind: u32,
    tpl: efi::Tpl,
    func: Option<efi::EventNotify>,
    ctx: *mut c_void,
    group: Option<ember_efi::Guid>,
    out: *mut Event,
) -> Status {
    if out.is_null() {
        return Status::INVALID_PARAMETER;
    }
    let notify = func.map(|f| (f as usize, ctx as usize));
    match with(|e| e.st.events.create_event(kind, Tpl(tpl), notify, group)) {
        Ok(id) => {
            // SAFETY: out pointer checked.
            unsafe { *out = event_ptr(id) };
            Status::SUCCESS
        }
        Err(s) => status(s),
    }
}

pub extern "efiapi" fn create_event(
    kind: u32,
    tpl: efi::Tpl,
    func: Option<efi::EventNotify>,
    ctx: *mut c_void,
    out: *mut Event,
) -> Status {
    create(kind, tpl, func, ctx, None, out)
}

pub extern "efiapi" fn create_event_ex(
    kind: u32,
    tpl: efi::Tpl,
    func: Option<efi::EventNotify>,
    ctx: *const c_void,
    group: *const Guid,
    out: *mut Event,
) -> Status {
    // SAFETY: the caller's GUID pointer, or null.
    let g = unsafe { guid_at(group) };
    create(kind, tpl, func, ctx as *mut c_void, g, out)
}

pub extern "efiapi" fn set_timer(ev: Event, kind: efi::TimerDelay, trigger: u64) -> Status {
    let (Some(id), Some(delay)) = (event_of(ev), TimerDelay::from_raw(kind)) else {
        return Status::INVALID_PARAMETER;
    };
    let now = super::now_100ns();
    result(with(|e| e.st.events.set_timer(id, delay, trigger, now)))
}

pub extern "efiapi" fn signal_event(ev: Event) -> Status {
    let Some(id) = event_of(ev) else {
        return Status::INVALID_PARAMETER;
    };
    let r = with(|e| e.st.events.signal_event(id));
    dispatch();
    result(r)
}

pub extern "efiapi" fn close_event(ev: Event) -> Status {
    let Some(id) = event_of(ev) else {
        return Status::INVALID_PARAMETER;
    };
    result(with(|e| e.st.close_event(id)))
}

pub extern "efiapi" fn check_event(ev: Event) -> Status {
    let Some(id) = event_of(ev) else {
        return Status::INVALID_PARAMETER;
    };
    dispatch();
    match with(|e| e.st.events.check_event(id)) {
        // A wait event's notify function was queued: run it, then look again.
        Err(s) if s == ember_efi::Status::NOT_READY => {
            let tpl = with(|e| e.st.tpl());
            run_notifications(tpl);
            result(with(|e| e.st.events.take_signal(id)))
        }
        r => result(r),
    }
}

pub extern "efiapi" fn wait_for_event(n: usize, events: *mut Event, index: *mut usize) -> Status {
    if n == 0 || events.is_null() || index.is_null() {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: the caller's array of `n` events.
    let list = unsafe { core::slice::from_raw_parts(events, n) };
    let mut ids = Vec::with_capacity(n);
    for (i, p) in list.iter().enumerate() {
        match event_of(*p) {
            Some(id) => ids.push(id),
            None => {
                // SAFETY: out pointer checked.
                unsafe { *index = i };
                return Status::INVALID_PARAMETER;
            }
        }
    }
    loop {
        dispatch();
        super::console::poll_keys();
        match with(|e| e.st.events.poll_wait(&ids)) {
            Ok(Some(i)) => {
                // SAFETY: out pointer checked.
                unsafe { *index = i };
                return Status::SUCCESS;
            }
            Ok(None) => {
                // Queued wait-notify functions may signal; run them.
                let tpl = with(|e| e.st.tpl());
                run_notifications(tpl);
                core::hint::spin_loop();
            }
            Err(w) => {
                if let Some(i) = w.index {
                    // SAFETY: out pointer checked.
                    unsafe { *index = i };
                }
                return status(w.status);
            }
        }
    }
}

// ---- protocols -----------------------------------------------------------

/// The bytes of a device path interface, bounded by its own End node.
///
/// # Safety
/// `iface` must be 0 or point at a device path.
pub unsafe fn device_path_bytes<'a>(iface: usize) -> Option<&'a [u8]> {
    if iface == 0 {
        return None;
    }
    let size = devpath::device_path_size(|off| {
        // SAFETY: node headers are read one at a time, each where the
        // previous node's length says the next begins; the walk is bounded
        // by the crate.
        Some(unsafe { ((iface + off) as *const [u8; 4]).read_unaligned() })
    })
    .ok()?;
    // SAFETY: the whole path, as just measured.
    Some(unsafe { core::slice::from_raw_parts(iface as *const u8, size) })
}

/// Device paths of interfaces already in the database (for duplicate and
/// LocateDevicePath checks).
fn dp_of<'a>(iface: usize) -> Option<&'a [u8]> {
    // SAFETY: interfaces installed under the device-path GUID are device paths.
    unsafe { device_path_bytes(iface) }
}

pub extern "efiapi" fn install_protocol_interface(
    h: *mut Handle,
    g: *mut Guid,
    kind: efi::InterfaceType,
    iface: *mut c_void,
) -> Status {
    if h.is_null() || kind != efi::NATIVE_INTERFACE {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: the caller's GUID pointer.
    let Some(g) = (unsafe { guid_at(g) }) else {
        return Status::INVALID_PARAMETER;
    };
    // SAFETY: `h` checked non-null: in/out handle.
    let cur = unsafe { *h };
    let handle = if cur.is_null() {
        None
    } else {
        match handle_of(cur) {
            Some(x) => Some(x),
            None => return Status::INVALID_PARAMETER,
        }
    };
    let r = with(|e| e.st.install_multiple(handle, &[(g, iface as usize)], dp_of));
    dispatch();
    match r {
        Ok(nh) => {
            // SAFETY: as above.
            unsafe { *h = handle_ptr(nh) };
            Status::SUCCESS
        }
        Err(s) => status(s),
    }
}

pub extern "efiapi" fn uninstall_protocol_interface(
    h: Handle,
    g: *mut Guid,
    iface: *mut c_void,
) -> Status {
    // SAFETY: the caller's GUID pointer.
    let (Some(h), Some(g)) = (handle_of(h), unsafe { guid_at(g) }) else {
        return Status::INVALID_PARAMETER;
    };
    uninstall_one(h, g, iface as usize)
}

/// Uninstall; when drivers hold the protocol BY_DRIVER, disconnect them and
/// try once more, as the spec requires (and reconnect if that still fails).
fn uninstall_one(h: ember_efi::Handle, g: ember_efi::Guid, iface: usize) -> Status {
    let r = with(|e| e.st.handles.uninstall_protocol(h, &g, iface));
    match r {
        Err(s) if s == ember_efi::Status::ACCESS_DENIED => {
            let agents = with(|e| e.st.handles.by_driver_agents(h, &g));
            for a in agents {
                super::drivers::disconnect(h, Some(a), None);
            }
            let r = with(|e| e.st.handles.uninstall_protocol(h, &g, iface));
            if r.is_err() {
                super::drivers::connect_controller(
                    handle_ptr(h),
                    core::ptr::null_mut(),
                    core::ptr::null_mut(),
                    Boolean::TRUE,
                );
            }
            result(r)
        }
        r => result(r),
    }
}

pub extern "efiapi" fn reinstall_protocol_interface(
    h: Handle,
    g: *mut Guid,
    old: *mut c_void,
    new: *mut c_void,
) -> Status {
    // SAFETY: the caller's GUID pointer.
    let (Some(h), Some(g)) = (handle_of(h), unsafe { guid_at(g) }) else {
        return Status::INVALID_PARAMETER;
    };
    let r = with(|e| e.st.reinstall_protocol(h, &g, old as usize, new as usize));
    dispatch();
    result(r)
}

pub extern "efiapi" fn handle_protocol(h: Handle, g: *mut Guid, out: *mut *mut c_void) -> Status {
    if out.is_null() {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: the caller's GUID pointer.
    let (Some(h), Some(g)) = (handle_of(h), unsafe { guid_at(g) }) else {
        return Status::INVALID_PARAMETER;
    };
    match with(|e| e.st.handles.handle_protocol(h, &g)) {
        Ok(i) => {
            // SAFETY: out pointer checked.
            unsafe { *out = i as *mut c_void };
            Status::SUCCESS
        }
        Err(s) => {
            // SAFETY: out pointer checked; the spec wants NULL on failure.
            unsafe { *out = core::ptr::null_mut() };
            status(s)
        }
    }
}

pub extern "efiapi" fn register_protocol_notify(
    g: *mut Guid,
    ev: Event,
    reg: *mut *mut c_void,
) -> Status {
    // SAFETY: the caller's GUID pointer.
    let (Some(g), Some(id)) = (unsafe { guid_at(g) }, event_of(ev)) else {
        return Status::INVALID_PARAMETER;
    };
    if reg.is_null() {
        return Status::INVALID_PARAMETER;
    }
    match with(|e| e.st.register_protocol_notify(g, id)) {
        Ok(k) => {
            // SAFETY: out pointer checked.
            unsafe { *reg = k.raw() as usize as *mut c_void };
            Status::SUCCESS
        }
        Err(s) => status(s),
    }
}

fn search(kind: efi::LocateSearchType, g: *mut Guid, key: *mut c_void) -> Result<Search, Status> {
    // SAFETY: the caller's GUID pointer or null.
    let g = unsafe { guid_at(g) };
    let k = Registration::from_raw(key as usize as u64);
    Search::from_raw(kind, g, k).map_err(status)
}

pub extern "efiapi" fn locate_handle(
    kind: efi::LocateSearchType,
    g: *mut Guid,
    key: *mut c_void,
    size: *mut usize,
    buf: *mut Handle,
) -> Status {
    if size.is_null() {
        return Status::INVALID_PARAMETER;
    }
    let s = match search(kind, g, key) {
        Ok(s) => s,
        Err(e) => return e,
    };
    // Only consume a ByRegisterNotify result once it has been delivered.
    // SAFETY: `size` checked.
    let have = unsafe { *size };
    let peek = match with(|e| e.st.handles.peek_locate_handle(s)) {
        Ok(v) => v,
        Err(e) => return status(e),
    };
    let need = peek.len() * core::mem::size_of::<Handle>();
    // SAFETY: `size` checked.
    unsafe { *size = need };
    if have < need {
        return Status::BUFFER_TOO_SMALL;
    }
    if buf.is_null() {
        return Status::INVALID_PARAMETER;
    }
    let list = match with(|e| e.st.handles.locate_handle(s)) {
        Ok(v) => v,
        Err(e) => return status(e),
    };
    for (i, h) in list.iter().enumerate() {
        // SAFETY: the caller's buffer holds `have >= need` bytes.
        unsafe { *buf.add(i) = handle_ptr(*h) };
    }
    Status::SUCCESS
}

pub extern "efiapi" fn locate_handle_buffer(
    kind: efi::LocateSearchType,
    g: *mut Guid,
    key: *mut c_void,
    count: *mut usize,
    out: *mut *mut Handle,
) -> Status {
    if count.is_null() || out.is_null() {
        return Status::INVALID_PARAMETER;
    }
    let s = match search(kind, g, key) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let list = match with(|e| e.st.handles.locate_handle(s)) {
        Ok(v) => v,
        Err(e) => return status(e),
    };
    let Some(p) = super::memory::pool_alloc(
        efi::BOOT_SERVICES_DATA,
        list.len().max(1) * core::mem::size_of::<Handle>(),
    ) else {
        return Status::OUT_OF_RESOURCES;
    };
    let arr = p as *mut Handle;
    for (i, h) in list.iter().enumerate() {
        // SAFETY: freshly allocated pool buffer of `len` handles.
        unsafe { *arr.add(i) = handle_ptr(*h) };
    }
    // SAFETY: out pointers checked.
    unsafe {
        *count = list.len();
        *out = arr;
    }
    Status::SUCCESS
}

pub extern "efiapi" fn locate_device_path(
    g: *mut Guid,
    dp: *mut *mut efi::protocols::device_path::Protocol,
    out: *mut Handle,
) -> Status {
    if dp.is_null() || out.is_null() {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: the caller's GUID pointer.
    let Some(g) = (unsafe { guid_at(g) }) else {
        return Status::INVALID_PARAMETER;
    };
    // SAFETY: `dp` checked; *dp is the caller's device path.
    let path = unsafe { *dp } as usize;
    // SAFETY: as above.
    let Some(bytes) = (unsafe { device_path_bytes(path) }) else {
        return Status::INVALID_PARAMETER;
    };
    match with(|e| e.st.handles.locate_device_path(&g, bytes, dp_of)) {
        Ok((h, used)) => {
            // SAFETY: out pointers checked; `used` ≤ the path's size.
            unsafe {
                *out = handle_ptr(h);
                *dp = (path + used) as *mut efi::protocols::device_path::Protocol;
            }
            Status::SUCCESS
        }
        Err(s) => status(s),
    }
}

pub extern "efiapi" fn locate_protocol(
    g: *mut Guid,
    reg: *mut c_void,
    out: *mut *mut c_void,
) -> Status {
    if out.is_null() {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: the caller's GUID pointer.
    let Some(g) = (unsafe { guid_at(g) }) else {
        return Status::INVALID_PARAMETER;
    };
    let k = Registration::from_raw(reg as usize as u64);
    match with(|e| e.st.handles.locate_protocol(&g, k)) {
        Ok(i) => {
            // SAFETY: out pointer checked.
            unsafe { *out = i as *mut c_void };
            Status::SUCCESS
        }
        Err(s) => {
            // SAFETY: out pointer checked.
            unsafe { *out = core::ptr::null_mut() };
            status(s)
        }
    }
}

pub extern "efiapi" fn open_protocol(
    h: Handle,
    g: *mut Guid,
    out: *mut *mut c_void,
    agent: Handle,
    ctrl: Handle,
    attrs: u32,
) -> Status {
    // SAFETY: the caller's GUID pointer.
    let (Some(hh), Some(g)) = (handle_of(h), unsafe { guid_at(g) }) else {
        return Status::INVALID_PARAMETER;
    };
    // TEST_PROTOCOL is the one mode where a NULL Interface is allowed.
    if out.is_null() && attrs != efi::OPEN_PROTOCOL_TEST_PROTOCOL {
        return Status::INVALID_PARAMETER;
    }
    let open = || {
        with(|e| {
            let r =
                e.st.handles
                    .open_protocol(hh, &g, handle_of(agent), handle_of(ctrl), attrs);
            (r, e.st.handles.protocol_interface(hh, &g))
        })
    };
    let (mut r, existing) = open();
    // EXCLUSIVE opens displace drivers that hold the protocol BY_DRIVER:
    // disconnect them and try once more (UEFI spec, OpenProtocol).
    if r == Err(ember_efi::Status::ACCESS_DENIED) && attrs & 0x20 != 0 {
        let agents = with(|e| e.st.handles.by_driver_agents(hh, &g));
        if !agents.is_empty() {
            for a in agents {
                super::drivers::disconnect(hh, Some(a), None);
            }
            r = open().0;
        }
    }
    if !out.is_null() && attrs != efi::OPEN_PROTOCOL_TEST_PROTOCOL {
        let iface = match &r {
            Ok(i) => *i,
            // The spec hands back the already-open interface with ALREADY_STARTED.
            Err(s) if *s == ember_efi::Status::ALREADY_STARTED => existing.unwrap_or(0),
            Err(_) => 0,
        };
        // SAFETY: out pointer checked.
        unsafe { *out = iface as *mut c_void };
    }
    match r {
        Ok(_) => Status::SUCCESS,
        Err(s) => status(s),
    }
}

pub extern "efiapi" fn close_protocol(
    h: Handle,
    g: *mut Guid,
    agent: Handle,
    ctrl: Handle,
) -> Status {
    // SAFETY: the caller's GUID pointer.
    let (Some(hh), Some(g)) = (handle_of(h), unsafe { guid_at(g) }) else {
        return Status::INVALID_PARAMETER;
    };
    result(with(|e| {
        e.st.handles
            .close_protocol(hh, &g, handle_of(agent), handle_of(ctrl))
    }))
}

pub extern "efiapi" fn open_protocol_information(
    h: Handle,
    g: *mut Guid,
    out: *mut *mut efi::OpenProtocolInformationEntry,
    count: *mut usize,
) -> Status {
    if out.is_null() || count.is_null() {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: the caller's GUID pointer.
    let (Some(hh), Some(g)) = (handle_of(h), unsafe { guid_at(g) }) else {
        return Status::INVALID_PARAMETER;
    };
    let list = match with(|e| e.st.handles.open_protocol_information(hh, &g)) {
        Ok(l) => l,
        Err(s) => return status(s),
    };
    let sz = list.len().max(1) * core::mem::size_of::<efi::OpenProtocolInformationEntry>();
    let Some(p) = super::memory::pool_alloc(efi::BOOT_SERVICES_DATA, sz) else {
        return Status::OUT_OF_RESOURCES;
    };
    let arr = p as *mut efi::OpenProtocolInformationEntry;
    for (i, o) in list.iter().enumerate() {
        // SAFETY: fresh pool buffer of `len` entries.
        unsafe {
            *arr.add(i) = efi::OpenProtocolInformationEntry {
                agent_handle: handle_ptr(o.agent),
                controller_handle: o
                    .controller
                    .map(handle_ptr)
                    .unwrap_or(core::ptr::null_mut()),
                attributes: o.attributes,
                open_count: o.open_count,
            }
        };
    }
    // SAFETY: out pointers checked.
    unsafe {
        *out = arr;
        *count = list.len();
    }
    Status::SUCCESS
}

pub extern "efiapi" fn protocols_per_handle(
    h: Handle,
    out: *mut *mut *mut Guid,
    count: *mut usize,
) -> Status {
    if out.is_null() || count.is_null() {
        return Status::INVALID_PARAMETER;
    }
    let Some(hh) = handle_of(h) else {
        return Status::INVALID_PARAMETER;
    };
    let list = match with(|e| e.st.handles.protocols_per_handle(hh)) {
        Ok(l) => l,
        Err(s) => return status(s),
    };
    // One pool block: the pointer array followed by the GUIDs it points at.
    let ptrs = list.len() * 8;
    let Some(p) =
        super::memory::pool_alloc(efi::BOOT_SERVICES_DATA, (ptrs + list.len() * 16).max(8))
    else {
        return Status::OUT_OF_RESOURCES;
    };
    for (i, g) in list.iter().enumerate() {
        let gp = (p + ptrs + i * 16) as *mut Guid;
        // SAFETY: fresh pool buffer sized for both arrays.
        unsafe {
            *gp = Guid::from_bytes(&g.0);
            *((p + i * 8) as *mut *mut Guid) = gp;
        }
    }
    // SAFETY: out pointers checked.
    unsafe {
        *out = p as *mut *mut Guid;
        *count = list.len();
    }
    Status::SUCCESS
}

/// The (GUID*, interface*) pairs of a variadic call, up to the NULL GUID.
///
/// # Safety
/// `args` must point at the spilled argument array built by the `arch/` shims, whose
/// list the caller terminated with a NULL GUID pointer.
unsafe fn var_pairs(args: *const usize) -> Option<Vec<(ember_efi::Guid, usize)>> {
    let mut v = Vec::new();
    // A bound on the pairs: no real call installs more than a handful.
    for i in 0..64 {
        // SAFETY: within the caller's argument list until its NULL.
        let (g, iface) = unsafe { (*args.add(1 + 2 * i), *args.add(2 + 2 * i)) };
        if g == 0 {
            return Some(v);
        }
        // SAFETY: a GUID pointer from the argument list.
        v.push((unsafe { guid_at(g as *const Guid) }?, iface));
    }
    None
}

#[no_mangle]
extern "efiapi" fn efi_install_multiple_impl(args: *const usize) -> Status {
    // SAFETY: called only from the arch/ shim with the spilled arguments.
    let hp = unsafe { *args } as *mut Handle;
    if hp.is_null() {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: as above.
    let Some(pairs) = (unsafe { var_pairs(args) }) else {
        return Status::INVALID_PARAMETER;
    };
    // SAFETY: `hp` checked.
    let cur = unsafe { *hp };
    let handle = if cur.is_null() {
        None
    } else {
        match handle_of(cur) {
            Some(h) => Some(h),
            None => return Status::INVALID_PARAMETER,
        }
    };
    let r = with(|e| e.st.install_multiple(handle, &pairs, dp_of));
    dispatch();
    match r {
        Ok(h) => {
            // SAFETY: `hp` checked.
            unsafe { *hp = handle_ptr(h) };
            Status::SUCCESS
        }
        Err(s) => status(s),
    }
}

#[no_mangle]
extern "efiapi" fn efi_uninstall_multiple_impl(args: *const usize) -> Status {
    // SAFETY: called only from the arch/ shim with the spilled arguments.
    let h = unsafe { *args } as Handle;
    let Some(h) = handle_of(h) else {
        return Status::INVALID_PARAMETER;
    };
    // SAFETY: as above.
    let Some(pairs) = (unsafe { var_pairs(args) }) else {
        return Status::INVALID_PARAMETER;
    };
    result(with(|e| e.st.handles.uninstall_multiple(h, &pairs)))
}

// SAFETY: the shims (arch/) only spill registers and call the checked
// `*_impl` functions above; their declared three-argument signature is what
// the boot-services table needs, and the real (variadic) arguments are read
// from the caller's frame as the MS x64 ABI (x86_64) or AAPCS64 (aarch64)
// lays them out.
unsafe extern "efiapi" {
    pub safe fn efi_install_multiple_shim(h: *mut Handle, a: *mut c_void, b: *mut c_void)
        -> Status;
    pub safe fn efi_uninstall_multiple_shim(h: Handle, a: *mut c_void, b: *mut c_void) -> Status;
}

// ---- miscellaneous -------------------------------------------------------

pub extern "efiapi" fn stall(us: usize) -> Status {
    let end = crate::machine::machine()
        .now_ns()
        .saturating_add((us as u64).saturating_mul(1000));
    while crate::machine::machine().now_ns() < end {
        dispatch();
        core::hint::spin_loop();
    }
    Status::SUCCESS
}

pub extern "efiapi" fn set_watchdog_timer(
    timeout: usize,
    _code: u64,
    size: usize,
    data: *mut u16,
) -> Status {
    if size != 0 && data.is_null() {
        return Status::INVALID_PARAMETER;
    }
    // No hardware watchdog on these VMs: a disarm is a no-op, and an armed
    // watchdog is recorded in the log so a hang can be told from a reset.
    if timeout != 0 {
        log::debug!("UEFI: watchdog armed for {timeout} s (no watchdog device; not enforced)");
    }
    Status::SUCCESS
}

pub extern "efiapi" fn get_next_monotonic_count(out: *mut u64) -> Status {
    if out.is_null() {
        return Status::INVALID_PARAMETER;
    }
    let v = with(|e| {
        e.monotonic += 1;
        e.monotonic
    });
    // SAFETY: out pointer checked.
    unsafe { *out = v };
    Status::SUCCESS
}

pub extern "efiapi" fn calculate_crc32(data: *mut c_void, size: usize, out: *mut u32) -> Status {
    if data.is_null() || out.is_null() || size == 0 {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: the caller's buffer of `size` bytes.
    let b = unsafe { core::slice::from_raw_parts(data as *const u8, size) };
    // SAFETY: out pointer checked.
    unsafe { *out = super::table_crc(b) };
    Status::SUCCESS
}

pub extern "efiapi" fn copy_mem(dst: *mut c_void, src: *mut c_void, len: usize) {
    // SAFETY: the caller's buffers; CopyMem must handle overlap (memmove).
    unsafe { core::ptr::copy(src as *const u8, dst as *mut u8, len) }
}

pub extern "efiapi" fn set_mem(dst: *mut c_void, len: usize, v: u8) {
    // SAFETY: the caller's buffer.
    unsafe { core::ptr::write_bytes(dst as *mut u8, v, len) }
}

pub extern "efiapi" fn install_configuration_table(g: *mut Guid, table: *mut c_void) -> Status {
    if g.is_null() {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: checked non-null.
    let g = unsafe { *g };
    let st = with(|e| {
        let pos = e.config.iter().position(|c| c.vendor_guid == g);
        match (pos, table.is_null()) {
            (Some(i), true) => {
                e.config.remove(i);
                Status::SUCCESS
            }
            (None, true) => Status::NOT_FOUND,
            (Some(i), false) => {
                e.config[i].vendor_table = table;
                Status::SUCCESS
            }
            (None, false) => {
                e.config.push(efi::ConfigurationTable {
                    vendor_guid: g,
                    vendor_table: table,
                });
                Status::SUCCESS
            }
        }
    });
    if st == Status::SUCCESS {
        super::publish_config_tables();
        // Installing a table signals the event group named by its GUID.
        let _ = with(|e| e.st.events.signal_group(&super::guid(&g)));
        dispatch();
    }
    st
}
