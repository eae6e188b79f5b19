//! What the portable crates need from the platform: a heap and a memory
//! map, a `log` sink on the console, a clock (the generic timer) and DMA
//! pages for virtqueues.
//! Ember's RAM below the kernel's load address (layout.ld, linux.rs):
//! device tree, Ember's data and stack, then these two regions.

use core::fmt::Write;
use core::sync::atomic::{AtomicUsize, Ordering};
use ember_mem::MemKind;
use ember_uefi::ram;

/// The boot heap: 32 MiB above Ember's data and stack.
const HEAP_START: usize = 0x4040_0000;
const HEAP_LEN: usize = 32 << 20;
/// Pages for virtqueues and request headers: 4 MiB above the heap.
const DMA_START: usize = HEAP_START + HEAP_LEN;
const DMA_LEN: usize = 4 << 20;
/// Where loaded kernels may start (2 MiB aligned, above all of this).
pub const LOAD_BASE: usize = DMA_START + DMA_LEN;
/// Where RAM starts on `virt`.
pub const RAM_BASE: usize = 0x4000_0000;

/// Set up the heap (once, before anything allocates). The heap allocator
/// is the UEFI layer's (`ember_uefi::ram`), shared with x86_64.
pub fn init() {
    START_NS.store(now_ns(), Ordering::Relaxed);
    // SAFETY: [HEAP_START, +HEAP_LEN) is RAM on every virt machine Ember
    // accepts (at least 1 GiB from 0x4000_0000, checked by main), used by
    // nothing else; init runs once. memory_map() records it as Ember's.
    unsafe { ram::init_boot_heap(HEAP_START as u64, HEAP_LEN as u64) };
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}

/// The clock when Ember started.
static START_NS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The clock when Ember started.
pub fn start_ns() -> u64 {
    START_NS.load(Ordering::Relaxed)
}

/// Fill the memory map (the UEFI layer's page allocator) from the device
/// tree's RAM; Ember's part of RAM — the device tree, its data, stack,
/// heap and DMA pages, below [`LOAD_BASE`] — is reserved.
pub fn memory_map(ram: impl Iterator<Item = (u64, u64)>) {
    let mut g = ram::MAP.lock();
    let map = g.map_mut();
    for (start, len) in ram {
        if map.add(start, start + len, MemKind::Free).is_err() {
            log::warn!("memory: map full, dropped RAM at {start:#x}");
        }
    }
    if let Err(e) = map.add(RAM_BASE as u64, LOAD_BASE as u64, MemKind::Firmware) {
        log::warn!("memory: could not reserve Ember's RAM: {e}");
    }
}

struct Logger;
static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record) {
        if crate::machine::quiet() {
            return;
        }
        // SAFETY: virt's PL011, as in rust_main.
        let mut out = unsafe { crate::pl011::Pl011::new(crate::UART) };
        let us = now_ns() / 1000;
        let _ = writeln!(
            out,
            "[{:4}.{:06}] {:<5} {}",
            us / 1_000_000,
            us % 1_000_000,
            r.level(),
            r.args()
        );
    }
    fn flush(&self) {}
}

/// Nanoseconds of the generic timer (virtual count).
pub fn now_ns() -> u64 {
    let (cnt, freq): (u64, u64);
    // SAFETY: reading the architected timer's count and frequency.
    unsafe {
        core::arch::asm!("mrs {}, cntvct_el0", out(reg) cnt, options(nomem, nostack));
        core::arch::asm!("mrs {}, cntfrq_el0", out(reg) freq, options(nomem, nostack));
    }
    if freq == 0 {
        return 0;
    }
    (u128::from(cnt) * 1_000_000_000 / u128::from(freq)) as u64
}

/// Bump allocation of DMA pages; never freed (drivers keep their queues).
pub struct PageDma;

static DMA_NEXT: AtomicUsize = AtomicUsize::new(DMA_START);

// SAFETY: pages come from a RAM region reserved for this (never reused),
// zeroed here; Ember runs identity-mapped (VA == PA) with no IOMMU, and
// the RAM mapping is normal cacheable memory, coherent with the VMM's
// device emulation on virt.
unsafe impl ember_virtio::Dma for PageDma {
    fn alloc_zeroed_pages(&self, pages: usize) -> Option<u64> {
        let len = pages.checked_mul(4096)?;
        let at = DMA_NEXT.fetch_add(len, Ordering::Relaxed);
        if at.checked_add(len)? > DMA_START + DMA_LEN {
            return None;
        }
        // SAFETY: inside the reserved DMA region, handed out once.
        unsafe { core::ptr::write_bytes(at as *mut u8, 0, len) };
        Some(at as u64)
    }
}
