//! Protections for Ember itself: its code read-only and executable, its
//! data, heap and stacks non-executable, a guard page under the boot stack,
//! page 0 unmapped while Ember's own code runs (a NULL dereference faults),
//! and a TSS so page faults and double faults get a stack of their own — a
//! stack overflow is then reported instead of ending in a triple fault.

use super::paging::{self, Attrs};
use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};

extern "C" {
    static __image_start: u8;
    static __rodata_start: u8;
    static __data_start: u8;
    static __image_end: u8;
    static boot_stack_guard: u8;
    static fault_stack_top: u8;
}

const NONE: Attrs = Attrs {
    read_protect: false,
    exec_protect: false,
    read_only: false,
};

fn addr(s: &u8) -> u64 {
    s as *const u8 as u64
}

/// Ember's image ranges: (text, rodata, data) as [start, end).
pub fn image_ranges() -> [(u64, u64); 3] {
    // SAFETY: linker symbols; only their addresses are taken.
    unsafe {
        let (a, r, d, e) = (
            addr(&__image_start),
            addr(&__rodata_start),
            addr(&__data_start),
            addr(&__image_end),
        );
        [(a, r), (r, d), (d, e)]
    }
}

fn update(start: u64, end: u64, set: Attrs, clear: Attrs) -> bool {
    // SAFETY: Ember's own identity tables; table pages from the allocator.
    unsafe {
        paging::update(start, end, set, clear, &mut || {
            crate::memory::alloc_pages(1)
        })
    }
}

/// Apply W^X to Ember's image and unmap the guard page. Needs the page
/// allocator (for splitting huge pages), so runs after memory::init.
pub fn protect_image() -> bool {
    if !paging::enable_nx() {
        log::warn!("protection: the CPU has no NX: Ember's data stays executable");
    }
    let [(t0, t1), (r0, r1), (d0, d1)] = image_ranges();
    let ro = Attrs {
        read_only: true,
        ..NONE
    };
    let ro_nx = Attrs {
        read_only: true,
        exec_protect: paging::nx_enabled(),
        ..NONE
    };
    let nx = Attrs {
        exec_protect: paging::nx_enabled(),
        ..NONE
    };
    // SAFETY: linker symbol; only its address is taken.
    let guard = unsafe { addr(&boot_stack_guard) };
    update(t0, t1, ro, NONE)
        && update(r0, r1, ro_nx, NONE)
        && update(d0, d1, nx, NONE)
        && update(
            guard,
            guard + 4096,
            Attrs {
                read_protect: true,
                ..NONE
            },
            NONE,
        )
}

/// Make a range of Ember's data (the heap) non-executable.
pub fn protect_data(start: u64, end: u64) {
    if paging::nx_enabled() {
        update(
            start,
            end,
            Attrs {
                exec_protect: true,
                ..NONE
            },
            NONE,
        );
    }
}

static PAGE0_UNMAPPED: AtomicBool = AtomicBool::new(false);

/// Unmap page 0 while Ember runs its own code.
pub fn unmap_page0() {
    if update(
        0,
        4096,
        Attrs {
            read_protect: true,
            ..NONE
        },
        NONE,
    ) {
        PAGE0_UNMAPPED.store(true, Ordering::Relaxed);
    }
}

/// Map page 0 again: guest code (EFI images, Linux) may read the BIOS data
/// area and interrupt vectors there.
pub fn map_page0() {
    if PAGE0_UNMAPPED.swap(false, Ordering::Relaxed) {
        update(
            0,
            4096,
            NONE,
            Attrs {
                read_protect: true,
                ..NONE
            },
        );
    }
}

/// Where a guard page sits under an image stack (see efi::image).
pub fn guard(addr: u64) {
    update(
        addr,
        addr + 4096,
        Attrs {
            read_protect: true,
            ..NONE
        },
        NONE,
    );
}

/// Undo [`guard`] before the memory is reused.
pub fn unguard(addr: u64) {
    update(
        addr,
        addr + 4096,
        NONE,
        Attrs {
            read_protect: true,
            ..NONE
        },
    );
}

// ---- TSS with an interrupt stack for faults -----------------------------

#[repr(C, packed)]
struct Tss {
    _reserved0: u32,
    rsp: [u64; 3],
    _reserved1: u64,
    ist: [u64; 7],
    _reserved2: u64,
    _reserved3: u16,
    iomap_base: u16,
}
const _: () = assert!(core::mem::size_of::<Tss>() == 104);

static TSS: spin::Once<Tss> = spin::Once::new();
static GDT: spin::Once<[u64; 6]> = spin::Once::new();

#[repr(C, packed)]
struct DtPtr {
    limit: u16,
    base: u64,
}

/// Interrupt-stack-table index used by the page-fault and double-fault gates.
pub const FAULT_IST: u8 = 1;

/// Load a TSS whose IST1 is the fault stack (done with the IDT, before any
/// gate that uses IST1 can fire).
pub fn load_tss() {
    // SAFETY: linker symbol (entry.s); only its address is taken.
    let top = unsafe { addr(&fault_stack_top) };
    let tss = TSS.call_once(|| Tss {
        _reserved0: 0,
        rsp: [0; 3],
        _reserved1: 0,
        ist: [top, 0, 0, 0, 0, 0, 0],
        _reserved2: 0,
        _reserved3: 0,
        iomap_base: core::mem::size_of::<Tss>() as u16,
    });
    let base = tss as *const Tss as u64;
    let limit = (core::mem::size_of::<Tss>() - 1) as u64;
    // 64-bit available TSS descriptor (type 9), present.
    let lo = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89 << 40)
        | (((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    let hi = base >> 32;
    // Same layout as entry.s's table (Linux's selectors), plus the TSS at 0x20.
    let gdt = GDT.call_once(|| [0, 0, 0x00AF_9B00_0000_FFFF, 0x00CF_9300_0000_FFFF, lo, hi]);
    let ptr = DtPtr {
        limit: (core::mem::size_of::<[u64; 6]>() - 1) as u16,
        base: gdt.as_ptr() as u64,
    };
    // SAFETY: the new GDT keeps the selectors in use (0x10 code, 0x18 data)
    // with identical descriptors, so no segment needs reloading; it lives in
    // a static that is never freed; 0x20 is the TSS descriptor just built.
    unsafe {
        asm!("lgdt [{}]", in(reg) &ptr, options(readonly, nostack, preserves_flags));
        asm!("ltr {0:x}", in(reg) 0x20u16, options(nomem, nostack, preserves_flags));
    }
}
