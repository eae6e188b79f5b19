//! EFI_RUNTIME_SERVICES. Time comes from the machine's RTC (CMOS on x86_64,
//! PL031 on arm64); variables live in a store in memory while boot services
//! run, and non-volatile ones are also written to the variable flash when
//! there is one (pflash unit 1 beside Ember's flash image; `ember-varstore`
//! keeps it crash-safe) or to a file on the ESP; reset and power-off are
//! the machine's (ACPI registers, PSCI).
//!
//! After ExitBootServices only what is published in the EFI_RT_PROPERTIES
//! table keeps working: these functions then touch nothing but Ember's own
//! image (reported as runtime memory), the runtime heap (runtime-services
//! data, where the variable stores live), the variable flash (runtime
//! MMIO, and the RTC's on arm64) and I/O ports — never the boot heap. At SetVirtualAddressMap the
//! whole runtime part moves to the OS's virtual addresses (see
//! [`set_virtual_address_map`] and the machine's relocation, x86_64 `reloc.rs`).

use crate::flash::Pflash;
use crate::machine::machine;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use ember_uefi_data::vars::{name_from_buffer, VarLimits, VarStore, NON_VOLATILE};
use ember_uefi_data::Guid as VGuid;
use ember_varstore::{Config as StoreConfig, Flash, Store, StoreError};
use r_efi::efi::{self, Guid, Status, Time, TimeCapabilities};
use spin::Mutex;

static RUNTIME: AtomicBool = AtomicBool::new(false);
static VARS: Mutex<Option<VarStore>> = Mutex::new(None);
static HIGH_COUNT: AtomicU64 = AtomicU64::new(0);
/// Runtime ranges from SetVirtualAddressMap: (phys, virt, pages). A fixed
/// array: by then the heap belongs to the OS.
struct VirtMap {
    set: bool,
    len: usize,
    ranges: [(u64, u64, u64); 64],
}
static VMAP: Mutex<VirtMap> = Mutex::new(VirtMap {
    set: false,
    len: 0,
    ranges: [(0, 0, 0); 64],
});

/// What keeps working after ExitBootServices (EFI_RT_PROPERTIES_TABLE):
/// everything, less the wake-up alarm on machines without one and
/// SetVirtualAddressMap in builds that cannot relocate.
pub fn supported_at_runtime() -> u32 {
    let m = machine();
    let mut s = efi::RT_SUPPORTED_GET_TIME
        | efi::RT_SUPPORTED_SET_TIME
        | efi::RT_SUPPORTED_CONVERT_POINTER
        | efi::RT_SUPPORTED_GET_NEXT_HIGH_MONOTONIC_COUNT
        | efi::RT_SUPPORTED_RESET_SYSTEM
        | efi::RT_SUPPORTED_GET_VARIABLE
        | efi::RT_SUPPORTED_GET_NEXT_VARIABLE_NAME
        | efi::RT_SUPPORTED_SET_VARIABLE
        | efi::RT_SUPPORTED_QUERY_VARIABLE_INFO;
    if m.has_wakeup() {
        s |= efi::RT_SUPPORTED_GET_WAKEUP_TIME | efi::RT_SUPPORTED_SET_WAKEUP_TIME;
    }
    if m.relocations().is_some() {
        s |= efi::RT_SUPPORTED_SET_VIRTUAL_ADDRESS_MAP;
    }
    s
}

/// Where non-volatile variables are kept.
pub enum Medium {
    /// The pflash variable volume (unit 1).
    Flash(Pflash),
    /// A file on the ESP, while boot services run (`espvars`).
    File(alloc::boxed::Box<crate::espvars::EspFile>),
}

impl Flash for Medium {
    fn len(&self) -> u32 {
        match self {
            Medium::Flash(f) => f.len(),
            Medium::File(f) => f.len(),
        }
    }
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), ember_varstore::FlashError> {
        match self {
            Medium::Flash(f) => f.read(offset, buf),
            Medium::File(f) => f.read(offset, buf),
        }
    }
    fn program(&mut self, offset: u32, data: &[u8]) -> Result<(), ember_varstore::FlashError> {
        match self {
            Medium::Flash(f) => f.program(offset, data),
            Medium::File(f) => f.program(offset, data),
        }
    }
    fn erase(&mut self, block: u32) -> Result<(), ember_varstore::FlashError> {
        match self {
            Medium::Flash(f) => f.erase(block),
            Medium::File(f) => f.erase(block),
        }
    }
}

/// The persistent store, when Ember found a variable flash or an ESP.
static PERSIST: Mutex<Option<Store<Medium>>> = Mutex::new(None);

/// The runtime heap: what the variable stores keep must outlive boot
/// services (the flash store reads its active bank, up to 270 KiB, and a
/// compaction builds a new one in memory).
const RUNTIME_HEAP_PAGES: u64 = 1024;

pub fn init() {
    if VARS.lock().is_some() {
        return;
    }
    if let Some(n) = machine().relocations() {
        log::debug!("UEFI runtime: {n} pointers to adjust at SetVirtualAddressMap");
    } else {
        log::info!("UEFI runtime: this build cannot relocate itself, so SetVirtualAddressMap is not offered (an OS may then call runtime services at their physical addresses)");
    }
    if !crate::ram::init_runtime_heap(RUNTIME_HEAP_PAGES) {
        log::warn!("UEFI variables: no room for the runtime heap");
    }
    let _rt = crate::ram::RuntimeHeap::enter();
    let mut vars = VarStore::new(VarLimits::default());
    open_persistent(&mut vars);
    *VARS.lock() = Some(vars);
}

/// Open the variable flash and load its variables into `vars`.
fn open_persistent(vars: &mut VarStore) {
    let Some(flash) = machine().var_flash() else {
        log::debug!("UEFI variables: no variable flash");
        return;
    };
    let (base, len) = (flash.base(), flash.len());
    // The OS maps it for runtime services (EFI_MEMORY_RUNTIME MMIO).
    let _ = crate::ram::MAP.lock().map_mut().add(
        base,
        base + u64::from(len),
        ember_mem::MemKind::Allocated(11),
    );
    let t0 = crate::machine::machine().now_ns();
    match Store::open(Medium::Flash(flash), StoreConfig::default()) {
        Ok((store, report)) => {
            let loaded = load(vars, &store);
            let ms = (crate::machine::machine().now_ns() - t0) / 1_000_000;
            if quiet(&report) {
                log::info!(
                    "UEFI variables: flash at {base:#x} ({} KiB), {loaded} variable(s), {ms} ms",
                    len / 1024
                );
            } else {
                log::warn!("UEFI variables: flash at {base:#x} ({} KiB) recovered: {report}; {loaded} variable(s)", len / 1024);
            }
            *PERSIST.lock() = Some(store);
        }
        Err(e) => {
            log::error!("UEFI variables: flash at {base:#x} unusable: {e}; variables are volatile")
        }
    }
}

/// Whether opening the store needs no warning: nothing was wrong, or the
/// volume was blank and got its first format.
fn quiet(r: &ember_varstore::OpenReport) -> bool {
    r.is_clean()
        || (matches!(r.formatted, Some(ember_varstore::FormatReason::Blank))
            && r.issues.is_empty()
            && r.repair_error.is_none())
}

/// Copy the stored variables into the in-memory store; returns how many.
fn load(vars: &mut VarStore, store: &Store<Medium>) -> usize {
    let mut loaded = 0;
    for (g, n, v) in store.iter() {
        match vars.set(n, &VGuid(*g), v.attributes, &v.data) {
            Ok(()) => loaded += 1,
            Err(e) => log::warn!(
                "UEFI variables: stored variable {}: {e}; skipped",
                String::from_utf16_lossy(n)
            ),
        }
    }
    loaded
}

/// Without a variable flash: keep non-volatile variables in a file on an
/// ESP of `disks` (see `espvars`). The boot manager opens an existing file
/// (`create` false: a native Linux boot never writes to the disk); the UEFI
/// layer, before it mounts the ESPs for loaders, creates one if needed and
/// stores what is already set (the boot manager's options).
pub fn attach_esp(disks: &[crate::disk::Disk], create: bool) {
    if PERSIST.lock().is_some() || at_runtime() {
        return;
    }
    let _rt = crate::ram::RuntimeHeap::enter();
    let t0 = crate::machine::machine().now_ns();
    let Some(file) = crate::espvars::open(disks, create) else {
        if create {
            log::info!("UEFI variables: volatile (no variable flash and no writable ESP)");
        }
        return;
    };
    let place = file.place.clone();
    match Store::open(
        Medium::File(alloc::boxed::Box::new(file)),
        StoreConfig::default(),
    ) {
        Ok((store, report)) => {
            let mut store = store;
            let mut vars = VARS.lock();
            let Some(vars) = vars.as_mut() else { return };
            // Variables set before the file existed (this boot's options).
            let mut saved = 0;
            for (n, g, a, d) in vars.iter_non_volatile() {
                if store.get(&g.0, n).is_none() && store.set(&g.0, n, a, d).is_ok() {
                    saved += 1;
                }
            }
            let loaded = load(vars, &store);
            if saved > 0 {
                log::debug!(
                    "UEFI variables: {saved} variable(s) set before the file existed stored"
                );
            }
            let ms = (crate::machine::machine().now_ns() - t0) / 1_000_000;
            if quiet(&report) {
                log::info!(
                    "UEFI variables: {} on {place}, {loaded} variable(s), {ms} ms; kept until ExitBootServices, later changes until reset",
                    crate::espvars::PATH
                );
            } else {
                log::warn!(
                    "UEFI variables: {} on {place} recovered: {report}; {loaded} variable(s)",
                    crate::espvars::PATH
                );
            }
            *PERSIST.lock() = Some(store);
        }
        Err(e) => log::error!(
            "UEFI variables: {} on {place} unusable: {e}; variables are volatile",
            crate::espvars::PATH
        ),
    }
}

/// Mirror a change to the flash: `now` is the variable after the change.
fn persist(
    name: &[u16],
    g: &VGuid,
    was_nv: bool,
    now: Option<(u32, Vec<u8>)>,
) -> Result<(), StoreError> {
    let mut p = PERSIST.lock();
    let Some(p) = p.as_mut() else { return Ok(()) };
    match now {
        Some((attrs, data)) if attrs & NON_VOLATILE != 0 => p.set(&g.0, name, attrs, &data),
        _ if was_nv => p.delete(&g.0, name).map(|_| ()),
        _ => Ok(()),
    }
}

/// Switch to the after-ExitBootServices rules.
pub fn enter_runtime() {
    // The disk is the OS's now: an ESP-file store stops here, and changes
    // from now on last until reset.
    let mut p = PERSIST.lock();
    if matches!(p.as_ref().map(|s| s.flash()), Some(Medium::File(_))) {
        *p = None;
        log::info!("UEFI variables: ESP file closed; from now on changes last until reset");
    }
    drop(p);
    crate::ram::RuntimeHeap::forever();
    if let Some(v) = VARS.lock().as_mut() {
        v.exit_boot_services();
    }
    RUNTIME.store(true, Ordering::SeqCst);
    machine().boot_services_exited();
}

fn at_runtime() -> bool {
    RUNTIME.load(Ordering::Relaxed)
}

// ---- time ----------------------------------------------------------------

/// Seconds since 1970-01-01 UTC of an EFI_TIME (its time zone ignored:
/// Ember's clocks keep UTC).
pub fn unix_seconds(t: &Time) -> i64 {
    ember_uefi_data::clock::to_unix(
        i64::from(t.year),
        u32::from(t.month),
        u32::from(t.day),
        u32::from(t.hour),
        u32::from(t.minute),
        u32::from(t.second),
    )
}

/// The EFI_TIME (UTC, time zone unspecified) of a count of Unix seconds
/// from an RTC that keeps them (0 ..= u32::MAX: years 1970..2106).
pub fn time_at(secs: u32) -> Time {
    let (y, mo, d, h, mi, s) = ember_uefi_data::clock::from_unix(i64::from(secs));
    Time {
        year: y as u16,
        month: mo as u8,
        day: d as u8,
        hour: h as u8,
        minute: mi as u8,
        second: s as u8,
        pad1: 0,
        nanosecond: 0,
        timezone: efi::UNSPECIFIED_TIMEZONE,
        daylight: 0,
        pad2: 0,
    }
}

fn valid(t: &Time) -> bool {
    (1900..=9999).contains(&t.year)
        && (1..=12).contains(&t.month)
        && (1..=31).contains(&t.day)
        && t.hour < 24
        && t.minute < 60
        && t.second < 60
        && t.nanosecond < 1_000_000_000
        && (t.timezone == efi::UNSPECIFIED_TIMEZONE || (-1440..=1440).contains(&t.timezone))
}

pub extern "efiapi" fn get_time(time: *mut Time, caps: *mut TimeCapabilities) -> Status {
    if time.is_null() {
        return Status::INVALID_PARAMETER;
    }
    let t = match machine().rtc_get() {
        Ok(t) => t,
        Err(s) => return s,
    };
    // SAFETY: out pointers checked / optional.
    unsafe {
        *time = t;
        if !caps.is_null() {
            *caps = TimeCapabilities {
                resolution: 1,
                accuracy: 50_000_000,
                sets_to_zero: efi::Boolean::FALSE,
            };
        }
    }
    Status::SUCCESS
}

pub extern "efiapi" fn set_time(time: *mut Time) -> Status {
    if time.is_null() {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: the caller's EFI_TIME.
    let t = unsafe { *time };
    if !valid(&t) {
        return Status::INVALID_PARAMETER;
    }
    machine().rtc_set(&t)
}

pub extern "efiapi" fn get_wakeup_time(
    enabled: *mut efi::Boolean,
    pending: *mut efi::Boolean,
    time: *mut Time,
) -> Status {
    if enabled.is_null() || pending.is_null() || time.is_null() {
        return Status::INVALID_PARAMETER;
    }
    let w = match machine().wakeup_get() {
        Ok(w) => w,
        Err(s) => return s,
    };
    // SAFETY: out pointers checked above.
    unsafe {
        *enabled = efi::Boolean::from(w.enabled);
        *pending = efi::Boolean::from(w.pending);
        *time = w.time;
    }
    Status::SUCCESS
}

/// Arm or disarm the wake-up alarm (what the machine can honour is its
/// business: the CMOS alarm, for one, only matches a time of day).
pub extern "efiapi" fn set_wakeup_time(enable: efi::Boolean, time: *mut Time) -> Status {
    if !bool::from(enable) {
        return machine().wakeup_set(false, None);
    }
    if time.is_null() {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: the caller's EFI_TIME.
    let t = unsafe { *time };
    if !valid(&t) {
        return Status::INVALID_PARAMETER;
    }
    machine().wakeup_set(true, Some(&t))
}

// ---- virtual addressing --------------------------------------------------

/// Where a physical address of a runtime range is mapped, once
/// SetVirtualAddressMap has been called.
fn lookup(vm: &VirtMap, pa: u64) -> Option<u64> {
    vm.ranges[..vm.len]
        .iter()
        .find(|&&(phys, _, pages)| pa >= phys && pa - phys < pages.saturating_mul(4096))
        .map(|&(phys, virt, _)| virt + (pa - phys))
}

/// `pa` as runtime code must address it now: its virtual address after
/// SetVirtualAddressMap (physical before, or if the OS gave it none).
pub fn virtual_of(pa: u64) -> u64 {
    let vm = VMAP.lock();
    if vm.set {
        lookup(&vm, pa).unwrap_or(pa)
    } else {
        pa
    }
}

/// The EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE notifications (event, function,
/// context), in dispatch order, kept at ExitBootServices: plain numbers,
/// since the event database is in boot memory.
struct Notifies {
    len: usize,
    list: [(u64, u64, u64); 32],
}
static ADDRESS_CHANGE: Mutex<Notifies> = Mutex::new(Notifies {
    len: 0,
    list: [(0, 0, 0); 32],
});

/// Called at ExitBootServices with the address-change group's notifications.
pub fn keep_address_change_notifies(it: impl Iterator<Item = (u64, u64, u64)>) {
    let mut n = ADDRESS_CHANGE.lock();
    n.len = 0;
    for x in it {
        if n.len == n.list.len() {
            log::warn!("UEFI: more than 32 address-change notifications; the rest are not called");
            break;
        }
        let i = n.len;
        n.list[i] = x;
        n.len += 1;
    }
}

/// What SetVirtualAddressMap leaves for the first call at the virtual
/// addresses (plain numbers: the old heap's pointers mean nothing there).
#[derive(Clone, Copy)]
struct Moved {
    /// The runtime heap's virtual start; the heap restarts over its first
    /// `snapshot_at` bytes.
    heap: u64,
    /// The variable snapshot, at `heap + snapshot_at`.
    snapshot_at: u64,
    snapshot_len: u64,
    /// The variable flash's virtual address and length, if there is one.
    flash: Option<(u64, u32)>,
}
static MOVED: Mutex<Option<Moved>> = Mutex::new(None);

/// Rebuild, at the virtual addresses, what SetVirtualAddressMap gave up:
/// the runtime heap, the variable store from its snapshot, the flash
/// store. Called first by every service that uses them.
fn settle() {
    let Some(m) = MOVED.lock().take() else { return };
    // SAFETY: `heap` is where the OS mapped the runtime heap's pages (the
    // virtual map checked it), the snapshot lies above `snapshot_at`, and
    // nothing from the old heap is used again (SetVirtualAddressMap forgot
    // it all).
    unsafe { crate::ram::rebase_runtime_heap(m.heap, m.snapshot_at) };
    // SAFETY: SetVirtualAddressMap copied `snapshot_len` bytes there.
    let snap = unsafe {
        core::slice::from_raw_parts(
            (m.heap + m.snapshot_at) as usize as *const u8,
            m.snapshot_len as usize,
        )
    };
    // A failure here leaves the variables gone (NOT_FOUND, DEVICE_ERROR on
    // writes) rather than wrong; there is no console left to say so.
    if let Ok(v) = VarStore::restore(VarLimits::default(), snap) {
        *VARS.lock() = Some(v);
    }
    if let Some((va, len)) = m.flash {
        // SAFETY: the variable flash, where the OS mapped it (runtime MMIO).
        let flash = unsafe { Pflash::at(va, len) };
        if let Ok((store, _)) = Store::open(Medium::Flash(flash), StoreConfig::default()) {
            *PERSIST.lock() = Some(store);
        }
    }
}

/// Ember's image as [start, end).
fn image_range() -> (u64, u64) {
    let [(t0, _), _, (_, d1)] = machine().image_ranges();
    (t0, d1)
}

/// The virtual address of `[start, end)`, which must be mapped as one piece.
fn whole(vm: &VirtMap, start: u64, end: u64) -> Option<u64> {
    let va = lookup(vm, start)?;
    (lookup(vm, end - 1)? == va + (end - 1 - start)).then_some(va)
}

/// Convert one pointer-sized word of a table in runtime memory.
///
/// # Safety
/// `p` must point at a pointer field of a table Ember owns, mapped at its
/// physical address (SetVirtualAddressMap runs in physical mode).
unsafe fn convert_word(vm: &VirtMap, p: *mut u64) {
    // SAFETY: the caller's promise.
    unsafe {
        let v = p.read_unaligned();
        if v != 0 {
            if let Some(va) = lookup(vm, v) {
                p.write_unaligned(va);
            }
        }
    }
}

/// Point the system table's runtime fields and the runtime-services table
/// at their virtual addresses, and recompute both CRCs.
fn convert_tables(vm: &VirtMap) {
    let Some(st) = super::TABLES.lock().as_ref().map(|t| t.system) else {
        return;
    };
    // SAFETY: Ember's system table and runtime-services table, in runtime
    // memory, mapped at their physical addresses during this call; every
    // field converted holds a pointer or NULL.
    unsafe {
        let rt = (*st).runtime_services;
        if !rt.is_null() {
            // The header, then nothing but function pointers.
            let words = (core::mem::size_of::<efi::RuntimeServices>()
                - core::mem::size_of::<efi::TableHeader>())
                / 8;
            let first = (rt as *mut u8).add(core::mem::size_of::<efi::TableHeader>()) as *mut u64;
            for i in 0..words {
                convert_word(vm, first.add(i));
            }
            (*rt).hdr.crc32 = 0;
            (*rt).hdr.crc32 = super::table_crc(core::slice::from_raw_parts(
                rt as *const u8,
                core::mem::size_of::<efi::RuntimeServices>(),
            ));
        }
        convert_word(
            vm,
            core::ptr::addr_of_mut!((*st).firmware_vendor) as *mut u64,
        );
        convert_word(
            vm,
            core::ptr::addr_of_mut!((*st).configuration_table) as *mut u64,
        );
        convert_word(
            vm,
            core::ptr::addr_of_mut!((*st).runtime_services) as *mut u64,
        );
    }
    super::refresh_system_crc();
}

/// SetVirtualAddressMap: Ember's runtime part moves to the virtual
/// addresses the OS chose. Called in physical mode, once; the new mapping
/// may not be live yet, so this only prepares: it converts the tables the
/// OS reads, snapshots the variables into the runtime heap's last bytes,
/// gives up everything else the heap held, and (last) adds the image's
/// delta to the absolute pointers in Ember's data (`Machine::relocate`). The
/// first service call at the new addresses rebuilds the rest ([`settle`]).
pub extern "efiapi" fn set_virtual_address_map(
    size: usize,
    desc_size: usize,
    version: u32,
    map: *mut efi::MemoryDescriptor,
) -> Status {
    if !at_runtime() {
        return Status::UNSUPPORTED;
    }
    let mut vm = VMAP.lock();
    if vm.set {
        return Status::UNSUPPORTED; // only once
    }
    if map.is_null() || desc_size < core::mem::size_of::<efi::MemoryDescriptor>() || version != 1 {
        return Status::INVALID_PARAMETER;
    }
    if machine().relocations().is_none() {
        // A build that skipped `cargo xtask build`: Ember cannot move.
        return Status::UNSUPPORTED;
    }
    let mut n = 0;
    for i in 0..size / desc_size {
        // SAFETY: the OS passes `size` bytes of descriptors.
        let d = unsafe {
            ((map as usize + i * desc_size) as *const efi::MemoryDescriptor).read_unaligned()
        };
        if d.attribute & efi::MEMORY_RUNTIME != 0 {
            if n == vm.ranges.len() {
                return Status::OUT_OF_RESOURCES;
            }
            vm.ranges[n] = (d.physical_start, d.virtual_start, d.number_of_pages);
            n += 1;
        }
    }
    vm.len = n;
    // Everything the runtime part uses needs a virtual address: the image
    // (as one piece: code and data move together), the runtime heap, the
    // variable flash. Checked before anything changes.
    let (img, img_end) = image_range();
    let Some(img_va) = whole(&vm, img, img_end) else {
        vm.len = 0;
        return Status::NO_MAPPING;
    };
    let heap = crate::ram::runtime_heap_range();
    let heap_va = match heap {
        Some((s, e)) => match whole(&vm, s, e) {
            Some(va) => Some(va),
            None => {
                vm.len = 0;
                return Status::NO_MAPPING;
            }
        },
        None => None,
    };
    let mut persist = PERSIST.lock();
    let flash = match persist.as_ref().map(|p| p.flash()) {
        Some(Medium::Flash(f)) => {
            let len = f.len();
            match whole(&vm, f.base(), f.base() + u64::from(len)) {
                Some(va) => Some((va, len)),
                None => {
                    vm.len = 0;
                    return Status::NO_MAPPING;
                }
            }
        }
        _ => None,
    };
    // From here on nothing fails. No console after this: logging would
    // follow pointers into the boot-time world.
    log::set_max_level(log::LevelFilter::Off);
    vm.set = true;
    // The address-change notifications, in physical mode, with
    // ConvertPointer working (so without holding the map).
    drop(vm);
    let notifies = {
        let n = ADDRESS_CHANGE.lock();
        (n.len, n.list)
    };
    for &(ev, f, ctx) in &notifies.1[..notifies.0] {
        // SAFETY: an EFI_EVENT_NOTIFY the guest registered with
        // CreateEvent(Ex) for this group (its code is runtime memory,
        // mapped 1:1 during this call), with its own event and context.
        let f: efi::EventNotify = unsafe { core::mem::transmute(f as usize) };
        f(
            ev as usize as efi::Event,
            ctx as usize as *mut core::ffi::c_void,
        );
    }
    let vm = VMAP.lock();
    // The variables, as bytes, at the end of the runtime heap; everything
    // else there is given up (forgotten, not freed: the heap's bookkeeping
    // is about to become meaningless).
    let snapshot = {
        let _rt = crate::ram::RuntimeHeap::enter();
        let mut vars = VARS.lock();
        let snap = vars.as_ref().map(|v| v.snapshot());
        core::mem::forget(vars.take());
        snap
    };
    core::mem::forget(persist.take());
    drop(persist);
    if let (Some((s, e)), Some(va), Some(snap)) = (heap, heap_va, snapshot) {
        let len = snap.len() as u64;
        let at = (e - s).saturating_sub(len) & !7;
        if at > 0 {
            // SAFETY: both ranges lie in the runtime heap, identity-mapped
            // now; `copy` allows the overlap with the snapshot's own block.
            unsafe {
                core::ptr::copy(snap.as_ptr(), (s + at) as usize as *mut u8, snap.len());
            }
            *MOVED.lock() = Some(Moved {
                heap: va,
                snapshot_at: at,
                snapshot_len: len,
                flash,
            });
        }
        core::mem::forget(snap);
    }
    convert_tables(&vm);
    drop(vm);
    // Last: from here Ember's static pointers name virtual addresses.
    // SAFETY: SetVirtualAddressMap, physical mode, the image's virtual
    // address checked above, and nothing of Ember's runs after this but the
    // return.
    unsafe { machine().relocate(img_va.wrapping_sub(img)) };
    Status::SUCCESS
}

pub extern "efiapi" fn convert_pointer(_debug: usize, addr: *mut *mut core::ffi::c_void) -> Status {
    if addr.is_null() {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: the caller's pointer to convert.
    let p = unsafe { *addr } as u64;
    if p == 0 {
        return Status::SUCCESS; // NULL stays NULL (EFI_OPTIONAL_PTR)
    }
    let vm = VMAP.lock();
    if !vm.set {
        return Status::NOT_FOUND;
    }
    match lookup(&vm, p) {
        Some(va) => {
            // SAFETY: as above.
            unsafe { *addr = va as *mut core::ffi::c_void };
            Status::SUCCESS
        }
        None => Status::NOT_FOUND,
    }
}

// ---- variables -----------------------------------------------------------

fn vguid(p: *const Guid) -> Option<VGuid> {
    // SAFETY: the caller's GUID pointer, checked non-null.
    (!p.is_null()).then(|| VGuid(*unsafe { &*p }.as_bytes()))
}

/// # Safety
/// `p` must point at a NUL-terminated UCS-2 string.
unsafe fn name_at<'a>(p: *const u16) -> Option<&'a [u16]> {
    if p.is_null() {
        return None;
    }
    let mut n = 0;
    // Variable names are short; 1024 units bounds a missing terminator.
    // SAFETY: within the caller's string up to its NUL.
    while n < 1024 && unsafe { *p.add(n) } != 0 {
        n += 1;
    }
    // SAFETY: `n` units were just read.
    (n < 1024).then(|| unsafe { core::slice::from_raw_parts(p, n) })
}

pub extern "efiapi" fn get_variable(
    name: *mut u16,
    g: *mut Guid,
    attrs: *mut u32,
    size: *mut usize,
    data: *mut core::ffi::c_void,
) -> Status {
    settle();
    // What the stores allocate must survive ExitBootServices.
    let _rt = crate::ram::RuntimeHeap::enter();
    // SAFETY: the caller's name string.
    let (Some(n), Some(g)) = (unsafe { name_at(name) }, vguid(g)) else {
        return Status::INVALID_PARAMETER;
    };
    if size.is_null() {
        return Status::INVALID_PARAMETER;
    }
    let vars = VARS.lock();
    let Some(store) = vars.as_ref() else {
        return Status::NOT_FOUND;
    };
    // SAFETY: `size` checked.
    let have = unsafe { *size };
    match store.get(n, &g, have) {
        Ok((a, d)) => {
            if data.is_null() && !d.is_empty() {
                return Status::INVALID_PARAMETER;
            }
            // SAFETY: the caller's buffer holds `have >= d.len()` bytes.
            unsafe {
                core::ptr::copy_nonoverlapping(d.as_ptr(), data as *mut u8, d.len());
                *size = d.len();
                if !attrs.is_null() {
                    *attrs = a;
                }
            }
            Status::SUCCESS
        }
        Err(e) => {
            if let ember_uefi_data::vars::VarError::BufferTooSmall { needed } = e {
                // SAFETY: `size` checked.
                unsafe { *size = needed };
            }
            Status::from_usize(e.efi_status())
        }
    }
}

pub extern "efiapi" fn get_next_variable_name(
    size: *mut usize,
    name: *mut u16,
    g: *mut Guid,
) -> Status {
    settle();
    // What the stores allocate must survive ExitBootServices.
    let _rt = crate::ram::RuntimeHeap::enter();
    if size.is_null() || name.is_null() || g.is_null() {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: `size` checked; the buffer holds `*size` bytes.
    let cap = unsafe { *size };
    // SAFETY: the caller's buffer of `cap` bytes holding the previous name.
    let buf = unsafe { core::slice::from_raw_parts(name, cap / 2) };
    let Ok(prev) = name_from_buffer(buf) else {
        return Status::INVALID_PARAMETER;
    };
    let Some(pg) = vguid(g) else {
        return Status::INVALID_PARAMETER;
    };
    let vars = VARS.lock();
    let Some(store) = vars.as_ref() else {
        return Status::NOT_FOUND;
    };
    match store.next_name(prev, &pg, cap) {
        Ok((n, ng)) => {
            // SAFETY: the store checked `cap` holds the name and its NUL.
            unsafe {
                core::ptr::copy_nonoverlapping(n.as_ptr(), name, n.len());
                *name.add(n.len()) = 0;
                *size = (n.len() + 1) * 2;
                *g = Guid::from_bytes(&ng.0);
            }
            Status::SUCCESS
        }
        Err(e) => {
            if let ember_uefi_data::vars::VarError::BufferTooSmall { needed } = e {
                // SAFETY: `size` checked.
                unsafe { *size = needed };
            }
            Status::from_usize(e.efi_status())
        }
    }
}

pub extern "efiapi" fn set_variable(
    name: *mut u16,
    g: *mut Guid,
    attrs: u32,
    size: usize,
    data: *mut core::ffi::c_void,
) -> Status {
    settle();
    // What the stores allocate must survive ExitBootServices.
    let _rt = crate::ram::RuntimeHeap::enter();
    // SAFETY: the caller's name string.
    let (Some(n), Some(g)) = (unsafe { name_at(name) }, vguid(g)) else {
        return Status::INVALID_PARAMETER;
    };
    if size != 0 && data.is_null() {
        return Status::INVALID_PARAMETER;
    }
    let d: &[u8] = if size == 0 {
        &[]
    } else {
        // SAFETY: the caller's buffer of `size` bytes.
        unsafe { core::slice::from_raw_parts(data as *const u8, size) }
    };
    set_units(n, &g, attrs, d)
}

/// SetVariable's work, for the service and for Ember itself: the change
/// in memory, mirrored to the flash when there is one.
fn set_units(n: &[u16], g: &VGuid, attrs: u32, d: &[u8]) -> Status {
    let mut vars = VARS.lock();
    let Some(store) = vars.as_mut() else {
        return Status::DEVICE_ERROR;
    };
    if PERSIST.lock().is_none() {
        // No flash: memory is the whole store.
        return match store.set(n, g, attrs, d) {
            Ok(()) => Status::SUCCESS,
            Err(e) => Status::from_usize(e.efi_status()),
        };
    }
    // With flash, the old and new values are needed to mirror the change
    // (and to undo it if the flash refuses).
    let before = store
        .get(n, g, usize::MAX)
        .ok()
        .map(|(a, v)| (a, v.to_vec()));
    if let Err(e) = store.set(n, g, attrs, d) {
        return Status::from_usize(e.efi_status());
    }
    let now = store
        .get(n, g, usize::MAX)
        .ok()
        .map(|(a, v)| (a, v.to_vec()));
    let was_nv = before.as_ref().is_some_and(|(a, _)| a & NON_VOLATILE != 0);
    match persist(n, g, was_nv, now) {
        Ok(()) => Status::SUCCESS,
        Err(e) => {
            // The flash did not take it: undo the change in memory so the
            // two agree, and say why.
            log::warn!(
                "UEFI variables: {}: not stored: {e}",
                String::from_utf16_lossy(n)
            );
            let _ = match &before {
                Some((a, v)) => store.set(n, g, *a, v),
                None => store.set(n, g, 0, &[]),
            };
            match e {
                StoreError::Full { .. }
                | StoreError::TooLarge { .. }
                | StoreError::OutOfMemory { .. } => Status::OUT_OF_RESOURCES,
                _ => Status::DEVICE_ERROR,
            }
        }
    }
}

pub extern "efiapi" fn query_variable_info(
    attrs: u32,
    max: *mut u64,
    remaining: *mut u64,
    max_var: *mut u64,
) -> Status {
    settle();
    // What the stores allocate must survive ExitBootServices.
    let _rt = crate::ram::RuntimeHeap::enter();
    if max.is_null() || remaining.is_null() || max_var.is_null() {
        return Status::INVALID_PARAMETER;
    }
    let vars = VARS.lock();
    let Some(store) = vars.as_ref() else {
        return Status::DEVICE_ERROR;
    };
    match store.query_info(attrs) {
        Ok(i) => {
            // SAFETY: out pointers checked.
            unsafe {
                *max = i.max_storage;
                *remaining = i.remaining;
                *max_var = i.max_var_size;
            }
            Status::SUCCESS
        }
        Err(e) => Status::from_usize(e.efi_status()),
    }
}

/// Set (or replace) a volatile variable on the firmware's behalf.
pub fn set_volatile(name: &str, g: &Guid, attrs: u32, data: &[u8]) {
    let _rt = crate::ram::RuntimeHeap::enter();
    let units: Vec<u16> = name.encode_utf16().collect();
    if let Some(s) = VARS.lock().as_mut() {
        if let Err(e) = s.set(&units, &VGuid(*g.as_bytes()), attrs, data) {
            log::warn!("UEFI: variable {name}: {e}");
        }
    }
}

/// Firmware-owned, read-only variables (e.g. SecureBoot = 0).
pub fn set_read_only(name: &str, g: &Guid, attrs: u32, data: &[u8]) {
    let _rt = crate::ram::RuntimeHeap::enter();
    let units: Vec<u16> = name.encode_utf16().collect();
    if let Some(s) = VARS.lock().as_mut() {
        if let Err(e) = s.set_read_only(&units, &VGuid(*g.as_bytes()), attrs, data) {
            log::warn!("UEFI: variable {name}: {e}");
        }
    }
}

// ---- the rest ------------------------------------------------------------

pub extern "efiapi" fn get_next_high_mono_count(high: *mut u32) -> Status {
    if high.is_null() {
        return Status::INVALID_PARAMETER;
    }
    let v = HIGH_COUNT.fetch_add(1, Ordering::SeqCst) + 1;
    // SAFETY: out pointer checked.
    unsafe { *high = v as u32 };
    Status::SUCCESS
}

pub extern "efiapi" fn reset_system(
    kind: efi::ResetType,
    _status: Status,
    _size: usize,
    _data: *mut core::ffi::c_void,
) {
    match kind {
        efi::RESET_SHUTDOWN => machine().poweroff(),
        _ => machine().reset(),
    }
}

pub extern "efiapi" fn update_capsule(
    _caps: *mut *mut efi::CapsuleHeader,
    _count: usize,
    _sg: efi::PhysicalAddress,
) -> Status {
    // No capsule (firmware update) support: the spec's answer is UNSUPPORTED.
    Status::UNSUPPORTED
}

pub extern "efiapi" fn query_capsule_capabilities(
    _caps: *mut *mut efi::CapsuleHeader,
    _count: usize,
    _max: *mut u64,
    _reset: *mut efi::ResetType,
) -> Status {
    Status::UNSUPPORTED
}

/// A writable variable's initial value.
pub fn set_default(name: &str, g: &Guid, attrs: u32, data: &[u8]) {
    let _rt = crate::ram::RuntimeHeap::enter();
    let units: Vec<u16> = name.encode_utf16().collect();
    if let Some(s) = VARS.lock().as_mut() {
        // A value kept in the variable store wins over the default.
        if s.get(&units, &VGuid(*g.as_bytes()), usize::MAX).is_ok() {
            return;
        }
        if let Err(e) = s.set(&units, &VGuid(*g.as_bytes()), attrs, data) {
            log::warn!("UEFI: variable {name}: {e}");
        }
    }
}

/// A variable's attributes and value, for Ember's own use (the boot manager).
pub fn read(name: &str, g: &Guid) -> Option<(u32, Vec<u8>)> {
    let units: Vec<u16> = name.encode_utf16().collect();
    let vars = VARS.lock();
    vars.as_ref()?
        .get(&units, &VGuid(*g.as_bytes()), usize::MAX)
        .ok()
        .map(|(a, d)| (a, d.to_vec()))
}

/// Set (or, with empty `data`, delete) a variable on Ember's behalf, under
/// the same rules as SetVariable and mirrored to the flash like it.
pub fn write(name: &str, g: &Guid, attrs: u32, data: &[u8]) -> Status {
    let _rt = crate::ram::RuntimeHeap::enter();
    let units: Vec<u16> = name.encode_utf16().collect();
    set_units(&units, &VGuid(*g.as_bytes()), attrs, data)
}

/// The names of every variable under `g`.
pub fn names(g: &Guid) -> Vec<String> {
    let want = VGuid(*g.as_bytes());
    let vars = VARS.lock();
    let Some(store) = vars.as_ref() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut prev: Vec<u16> = Vec::new();
    let mut prev_g = want;
    // Bounded: the store cannot hold more names than this.
    for _ in 0..100_000 {
        let Ok((n, ng)) = store.next_name(&prev, &prev_g, usize::MAX) else {
            break;
        };
        if ng == want {
            out.push(String::from_utf16_lossy(n));
        }
        prev = n.to_vec();
        prev_g = ng;
    }
    out
}
