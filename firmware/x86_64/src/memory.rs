//! The x86_64 side of the memory map: filling it from the PVH memmap (or
//! the CMOS), reserving Ember's image, starting the heap and mapping RAM
//! above 4 GiB. The map, the page allocator and the heaps themselves are
//! the UEFI layer's (`ember_uefi::ram`), re-exported here.

use crate::arch::io::{inb, outb};
use crate::arch::paging;
use crate::pvh;
use ember_mem::{MemKind, Strategy, PAGE_SIZE};
pub use ember_uefi::ram::*;

extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

/// Memory sizes from the CMOS (QEMU fills 0x34/0x35 and 0x5b-0x5d).
fn cmos_fallback(map: &mut Map) {
    let rd = |r: u8| {
        // SAFETY: the RTC/CMOS index and data ports; reads only.
        unsafe {
            outb(0x70, r);
            inb(0x71)
        }
    };
    let below4g = (u64::from(rd(0x34)) | u64::from(rd(0x35)) << 8) * 65536 + (16 << 20);
    let above4g =
        (u64::from(rd(0x5b)) | u64::from(rd(0x5c)) << 8 | u64::from(rd(0x5d)) << 16) * 65536;
    let _ = map.add(0, 0x9fc00, MemKind::Free);
    let _ = map.add(0x9fc00, LOW_LIMIT, MemKind::Reserved);
    let _ = map.add(LOW_LIMIT, below4g.min(0xb000_0000), MemKind::Free);
    if above4g != 0 {
        let _ = map.add(FOUR_GIB, FOUR_GIB + above4g, MemKind::Free);
    }
    log::warn!(
        "memory: no map from the VMM; CMOS says {} MiB below 4 GiB, {} MiB above",
        below4g >> 20,
        above4g >> 20
    );
}

/// Build the map, reserve Ember's image, map all RAM and start the heap.
pub fn init(info: &pvh::BootInfo) {
    let mut guard = MAP.lock();
    let map = guard.map_mut();
    let mut n = 0;
    for e in info.memmap() {
        if map.add_firmware_range(e.addr, e.size, e.kind).is_err() {
            log::warn!("memory: map full, dropped entries from {:#x}", e.addr);
            break;
        }
        n += 1;
    }
    if n == 0 {
        cmos_fallback(map);
    }
    // SAFETY: linker-provided symbols; only their addresses are used.
    let (start, end) = unsafe {
        (
            &__image_start as *const u8 as u64,
            &__image_end as *const u8 as u64,
        )
    };
    if let Err(e) = map.add(start, end, MemKind::Firmware) {
        log::warn!("memory: could not reserve Ember's image: {e}");
    }
    let top = map
        .regions()
        .iter()
        .filter(|r| r.kind == MemKind::Free)
        .map(|r| r.end)
        .max()
        .unwrap_or(0);
    let free = map.total_free();
    // Heap: enough for directory listings and bookkeeping; files are read in place.
    let heap_pages = (free / 32 / PAGE_SIZE).clamp(512, 8192);
    let heap = map.allocate_in_range(
        heap_pages,
        PAGE_SIZE,
        LOW_LIMIT,
        FOUR_GIB - 1,
        MemKind::FirmwareData,
        Strategy::TopDown,
    );
    drop(guard);
    match heap {
        Ok(h) => {
            // SAFETY: the range was just allocated for the heap and is used by nothing else.
            unsafe { init_boot_heap(h, heap_pages * PAGE_SIZE) };
        }
        Err(e) => {
            log::error!("memory: no room for a heap: {e}");
            crate::arch::io::halt_forever();
        }
    }
    if top > FOUR_GIB {
        // SAFETY: [4 GiB, top) is RAM per the map; tables come from the allocator.
        let ok = unsafe { paging::map_identity(FOUR_GIB, top, &mut || alloc_pages(1)) };
        if !ok {
            log::warn!("memory: could not map RAM above 4 GiB");
        }
    }
    log::info!(
        "memory: {} MiB usable, top of RAM {:#x}, heap {} KiB",
        free >> 20,
        top,
        heap_pages * 4
    );
    for r in MAP.lock().map().regions() {
        log::debug!("  {:#012x}-{:#012x} {:?}", r.start, r.end, r.kind);
    }
}
