//! The machine's memory map, the page allocator over it, and the heaps.
//!
//! The platform fills the map from what the VMM reports (PVH memmap, CMOS,
//! device tree) and starts the boot heap ([`init_boot_heap`]); every
//! allocation Ember makes afterwards — page tables, DMA rings, kernels,
//! initrds, UEFI pages and pools — is recorded in it, and the map is what
//! the OS receives (E820 table or UEFI memory map).

use core::sync::atomic::{AtomicU64, Ordering};
use ember_mem::{MemKind, MemoryMap, Strategy, PAGE_SIZE};
use ember_uefi_data::memmap::UefiMemory;
use linked_list_allocator::LockedHeap;
use spin::Mutex;

/// Capacity of the map: VMM entries plus every allocation Ember makes.
pub type Map = MemoryMap<256>;

/// The global memory map (and page allocator). It carries the UEFI map key,
/// which every change bumps (`map_mut`), so ExitBootServices can tell a
/// stale memory map from a current one.
pub static MAP: Mutex<UefiMemory<256>> = Mutex::new(UefiMemory::empty());

/// Two heaps behind one allocator: the boot heap (boot-services data, the
/// OS's after ExitBootServices) and a small runtime heap (runtime-services
/// data) for what runtime services keep — the variable stores. Allocation
/// goes to the runtime heap while [`RuntimeHeap`] guards are live and
/// always after ExitBootServices; a free goes to whichever heap holds it.
struct Heaps {
    boot: LockedHeap,
    runtime: LockedHeap,
}

#[global_allocator]
static HEAPS: Heaps = Heaps {
    boot: LockedHeap::empty(),
    runtime: LockedHeap::empty(),
};
/// Guards live, plus one for good after ExitBootServices.
static RUNTIME_USERS: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
/// The runtime heap's [start, end) (0, 0 before it exists): physical, then
/// virtual once SetVirtualAddressMap moved it ([`rebase_runtime_heap`]).
static RUNTIME_START: AtomicU64 = AtomicU64::new(0);
static RUNTIME_END: AtomicU64 = AtomicU64::new(0);

/// The runtime heap's range, once there is one.
pub fn runtime_heap_range() -> Option<(u64, u64)> {
    let (s, e) = (
        RUNTIME_START.load(Ordering::Acquire),
        RUNTIME_END.load(Ordering::Acquire),
    );
    (e > s).then_some((s, e))
}

// SAFETY: both heaps are linked_list_allocator heaps over disjoint ranges;
// a pointer is returned to the heap whose range holds it.
unsafe impl core::alloc::GlobalAlloc for Heaps {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        if RUNTIME_USERS.load(Ordering::Relaxed) > 0 && runtime_heap_range().is_some() {
            // SAFETY: forwarded with the caller's layout.
            unsafe { self.runtime.alloc(layout) }
        } else {
            // SAFETY: as above.
            unsafe { self.boot.alloc(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: core::alloc::Layout) {
        let a = ptr as u64;
        if runtime_heap_range().is_some_and(|(s, e)| (s..e).contains(&a)) {
            // SAFETY: allocated from the runtime heap (its range holds it).
            unsafe { self.runtime.dealloc(ptr, layout) }
        } else {
            // SAFETY: allocated from the boot heap.
            unsafe { self.boot.dealloc(ptr, layout) }
        }
    }
}

/// While alive, allocations come from the runtime heap.
pub struct RuntimeHeap(());

impl RuntimeHeap {
    pub fn enter() -> RuntimeHeap {
        RUNTIME_USERS.fetch_add(1, Ordering::Relaxed);
        RuntimeHeap(())
    }

    /// From ExitBootServices on, everything comes from the runtime heap.
    pub fn forever() {
        core::mem::forget(Self::enter());
    }
}

impl Drop for RuntimeHeap {
    fn drop(&mut self) {
        RUNTIME_USERS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Set up the runtime heap (`pages` of runtime-services data); false if
/// there is no room.
pub fn init_runtime_heap(pages: u64) -> bool {
    if runtime_heap_range().is_some() {
        return true;
    }
    // EfiRuntimeServicesData: the OS keeps it for runtime services.
    let Some(at) = alloc_below_4g(pages * PAGE_SIZE, PAGE_SIZE, MemKind::Allocated(6)) else {
        return false;
    };
    // SAFETY: just allocated for this heap and used by nothing else.
    unsafe {
        HEAPS
            .runtime
            .lock()
            .init(at as usize as *mut u8, (pages * PAGE_SIZE) as usize)
    };
    RUNTIME_START.store(at, Ordering::Release);
    RUNTIME_END.store(at + pages * PAGE_SIZE, Ordering::Release);
    true
}

/// Start the runtime heap afresh over `len` bytes at virtual address `va`:
/// after SetVirtualAddressMap the old heap's bookkeeping (physical
/// pointers) means nothing, and whatever lived in it has been given up.
///
/// # Safety
/// `va` must be where the OS mapped (the start of) the runtime heap's
/// pages, `len` no more than they span; nothing allocated from the old heap
/// may be used or freed afterwards.
pub unsafe fn rebase_runtime_heap(va: u64, len: u64) {
    // SAFETY: the caller's promise: mapped, ours, and nothing else in it.
    *HEAPS.runtime.lock() =
        unsafe { linked_list_allocator::Heap::new(va as *mut u8, len as usize) };
    RUNTIME_START.store(va, Ordering::Release);
    RUNTIME_END.store(va + len, Ordering::Release);
}

/// The heap's range, for fault reports.
static HEAP_RANGE: spin::Once<(u64, u64)> = spin::Once::new();

/// The heap's range.
pub fn heap_range() -> Option<&'static (u64, u64)> {
    HEAP_RANGE.get()
}

/// Whether `addr` lies in Ember's heap.
pub fn is_heap(addr: u64) -> bool {
    HEAP_RANGE
        .get()
        .is_some_and(|&(s, e)| (s..e).contains(&addr))
}

/// Below 1 MiB live the VMM's tables and legacy areas; Ember never allocates there.
pub const LOW_LIMIT: u64 = 1 << 20;
pub const FOUR_GIB: u64 = 1 << 32;

/// Allocate `bytes` (whole pages, at least one) of `kind` between 1 MiB
/// and 4 GiB, top-down, aligned to `align` (at least a page).
pub fn alloc_below_4g(bytes: u64, align: u64, kind: MemKind) -> Option<u64> {
    MAP.lock()
        .map_mut()
        .allocate_in_range(
            bytes.div_ceil(PAGE_SIZE).max(1),
            align.max(PAGE_SIZE),
            LOW_LIMIT,
            FOUR_GIB - 1,
            kind,
            Strategy::TopDown,
        )
        .ok()
}

/// Allocate zeroed pages for Ember's own use (tables, DMA rings), below 4 GiB.
pub fn alloc_pages(pages: u64) -> Option<u64> {
    let a = alloc_below_4g(pages * PAGE_SIZE, PAGE_SIZE, MemKind::FirmwareData)?;
    // SAFETY: just allocated for Ember in the map; identity-mapped below 4 GiB.
    unsafe { crate::phys::bytes_mut(a, (pages * PAGE_SIZE) as usize) }.fill(0);
    Some(a)
}

/// Start the boot heap over `[start, start + len)` (once).
///
/// # Safety
/// The range must be RAM, identity-mapped, recorded as Ember's in [`MAP`]
/// and used by nothing else, ever.
pub unsafe fn init_boot_heap(start: u64, len: u64) {
    // SAFETY: the caller's promise.
    unsafe {
        HEAPS
            .boot
            .lock()
            .init(start as usize as *mut u8, len as usize)
    };
    HEAP_RANGE.call_once(|| (start, start + len));
}
