//! What the portable crates need from the platform: a heap, a `log` sink on
//! the console, a clock (the generic timer) and DMA pages for virtqueues.
//! Ember's RAM below the kernel's load address (layout.ld, linux.rs):
//! device tree, Ember's data and stack, then these two regions.

use core::fmt::Write;
use core::sync::atomic::{AtomicUsize, Ordering};
use linked_list_allocator::LockedHeap;

/// The heap: 16 MiB above Ember's data and stack.
const HEAP_START: usize = 0x4040_0000;
const HEAP_LEN: usize = 16 << 20;
/// Pages for virtqueues and request headers: 4 MiB above the heap.
const DMA_START: usize = HEAP_START + HEAP_LEN;
const DMA_LEN: usize = 4 << 20;
/// Where loaded kernels may start (2 MiB aligned, above all of this).
pub const LOAD_BASE: usize = DMA_START + DMA_LEN;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// Set up the heap (once, before anything allocates).
pub fn init() {
    // SAFETY: [HEAP_START, +HEAP_LEN) is RAM on every virt machine Ember
    // accepts (at least 1 GiB from 0x4000_0000, checked by main), used by
    // nothing else; init runs once.
    unsafe { HEAP.lock().init(HEAP_START as *mut u8, HEAP_LEN) };
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}

struct Logger;
static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record) {
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
