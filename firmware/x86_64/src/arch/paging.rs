//! Identity paging beyond the boot tables. entry.s maps the low 4 GiB with
//! 2 MiB pages; RAM above 4 GiB and 64-bit PCI BARs are added here on demand
//! (1 GiB pages where the CPU has them).

use crate::arch::io::cpuid;
use core::arch::asm;

const PRESENT: u64 = 1;
const WRITE: u64 = 2;
const HUGE: u64 = 1 << 7;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

fn cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v & ADDR_MASK
}

fn has_1g_pages() -> bool {
    cpuid(0x8000_0000, 0).eax >= 0x8000_0001 && cpuid(0x8000_0001, 0).edx & (1 << 26) != 0
}

/// Make sure `[start, end)` is identity-mapped, read-write.
///
/// `alloc_page` returns a zeroed, 4 KiB-aligned page for new tables (it must
/// already be mapped, i.e. below 4 GiB).
///
/// # Safety
/// The range must be RAM or device memory belonging to this machine, and the
/// live page tables must be the ones built by entry.s and this function.
pub unsafe fn map_identity(
    start: u64,
    end: u64,
    alloc_page: &mut dyn FnMut() -> Option<u64>,
) -> bool {
    const GIB: u64 = 1 << 30;
    const MIB2: u64 = 2 << 20;
    let huge1g = has_1g_pages();
    let pml4 = cr3() as *mut u64;
    let mut a = start & !(MIB2 - 1);
    while a < end {
        let i4 = ((a >> 39) & 511) as usize;
        let i3 = ((a >> 30) & 511) as usize;
        let i2 = ((a >> 21) & 511) as usize;
        // SAFETY: all tables are identity-mapped pages owned by Ember; the
        // indices are < 512.
        unsafe {
            let e4 = pml4.add(i4);
            if *e4 & PRESENT == 0 {
                let Some(p) = alloc_page() else { return false };
                *e4 = p | PRESENT | WRITE;
            }
            let pdpt = (*e4 & ADDR_MASK) as *mut u64;
            let e3 = pdpt.add(i3);
            if *e3 & PRESENT == 0 {
                if huge1g && a.is_multiple_of(GIB) && end - a >= GIB {
                    *e3 = a | PRESENT | WRITE | HUGE;
                    a += GIB;
                    continue;
                }
                let Some(p) = alloc_page() else { return false };
                *e3 = p | PRESENT | WRITE;
            }
            if *e3 & HUGE != 0 {
                a = (a & !(GIB - 1)) + GIB;
                continue;
            }
            let pd = (*e3 & ADDR_MASK) as *mut u64;
            let e2 = pd.add(i2);
            if *e2 & PRESENT == 0 {
                *e2 = a | PRESENT | WRITE | HUGE;
            }
            a += MIB2;
        }
    }
    // SAFETY: reloading CR3 flushes stale TLB entries for the new mappings.
    unsafe { asm!("mov cr3, {}", in(reg) cr3(), options(nostack, preserves_flags)) }
    true
}

const NX: u64 = 1 << 63;
const EFER: u32 = 0xc000_0080;

/// Enable no-execute page protection (EFER.NXE) if the CPU has it; returns
/// whether it is on. Existing entries have NX clear, so nothing changes yet.
pub fn enable_nx() -> bool {
    if cpuid(0x8000_0000, 0).eax < 0x8000_0001 || cpuid(0x8000_0001, 0).edx & (1 << 20) == 0 {
        return false;
    }
    // SAFETY: setting EFER.NXE (bit 11) on a CPU that reports NX support
    // only makes the NX bit meaningful; no entry sets it yet.
    unsafe {
        let (lo, hi): (u32, u32);
        asm!("rdmsr", in("ecx") EFER, out("eax") lo, out("edx") hi, options(nomem, nostack));
        asm!("wrmsr", in("ecx") EFER, in("eax") lo | (1 << 11), in("edx") hi, options(nomem, nostack));
    }
    NX_ON.store(true, core::sync::atomic::Ordering::Relaxed);
    true
}

static NX_ON: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Whether no-execute protection can be used.
pub fn nx_enabled() -> bool {
    NX_ON.load(core::sync::atomic::Ordering::Relaxed)
}

/// Page attributes as the UEFI memory-attribute protocol sees them.
pub use ember_uefi::machine::Attrs;

/// The leaf entry for `addr` and its size (4 KiB, 2 MiB or 1 GiB), or None
/// if unmapped.
///
/// # Safety
/// The live page tables must be Ember's identity tables.
unsafe fn leaf(addr: u64) -> Option<(*mut u64, u64)> {
    let mut table = cr3() as *mut u64;
    for (shift, size) in [(39u64, 0u64), (30, 1 << 30), (21, 2 << 20), (12, 4096)] {
        let i = ((addr >> shift) & 511) as usize;
        // SAFETY: tables are identity-mapped pages owned by Ember; i < 512.
        let e = unsafe { table.add(i) };
        // SAFETY: as above.
        let v = unsafe { *e };
        if v & PRESENT == 0 && shift != 12 {
            return None;
        }
        if shift == 12 || (size != 0 && v & HUGE != 0) {
            return Some((e, size));
        }
        table = (v & ADDR_MASK) as *mut u64;
    }
    None
}

/// Split the huge page holding `addr` one level down (1 GiB → 2 MiB, or
/// 2 MiB → 4 KiB), keeping its attributes.
///
/// # Safety
/// As [`leaf`]; `alloc_page` returns a zeroed, mapped page.
unsafe fn split(addr: u64, alloc_page: &mut dyn FnMut() -> Option<u64>) -> bool {
    // SAFETY: forwarded.
    let Some((e, size)) = (unsafe { leaf(addr) }) else {
        return false;
    };
    if size <= 4096 {
        return true;
    }
    let Some(table) = alloc_page() else {
        return false;
    };
    // SAFETY: `e` is a live huge entry; `table` is a fresh page.
    unsafe {
        let v = *e;
        let base = v & ADDR_MASK & !(size - 1);
        let flags = v & !(ADDR_MASK) & !HUGE;
        let sub = size / 512;
        for i in 0..512u64 {
            let huge = if sub > 4096 { HUGE } else { 0 };
            *((table as *mut u64).add(i as usize)) = (base + i * sub) | flags | huge;
        }
        // The directory entry keeps P/RW and never NX: leaves decide.
        *e = table | PRESENT | WRITE;
    }
    true
}

/// Set or clear attributes on `[start, end)` (4 KiB aligned), splitting
/// huge pages only where the range does not cover them.
///
/// # Safety
/// As [`leaf`]. Changing mappings under running code is the caller's call:
/// UEFI's memory-attribute protocol is asked for this by the OS loader.
pub unsafe fn update(
    start: u64,
    end: u64,
    set: Attrs,
    clear: Attrs,
    alloc_page: &mut dyn FnMut() -> Option<u64>,
) -> bool {
    let mut a = start;
    while a < end {
        // SAFETY: forwarded.
        let Some((mut e, mut size)) = (unsafe { leaf(a) }) else {
            return false;
        };
        while size > 4096 && (!a.is_multiple_of(size) || a + size > end) {
            // SAFETY: forwarded.
            if !unsafe { split(a, alloc_page) } {
                return false;
            }
            // SAFETY: forwarded; the split just made a smaller leaf.
            let Some(l) = (unsafe { leaf(a) }) else {
                return false;
            };
            (e, size) = l;
        }
        // SAFETY: a live leaf entry of Ember's tables.
        unsafe {
            let mut v = *e;
            if set.read_protect {
                v &= !PRESENT;
            }
            if clear.read_protect {
                v |= PRESENT;
            }
            if set.read_only {
                v &= !WRITE;
            }
            if clear.read_only {
                v |= WRITE;
            }
            if set.exec_protect {
                v |= NX;
            }
            if clear.exec_protect {
                v &= !NX;
            }
            *e = v;
        }
        a += size;
    }
    // SAFETY: reloading CR3 flushes the TLB after the edits.
    unsafe { asm!("mov cr3, {}", in(reg) cr3(), options(nostack, preserves_flags)) }
    true
}

/// The attributes of `[start, end)`, or None if unmapped or not uniform.
///
/// # Safety
/// As [`leaf`].
pub unsafe fn attributes(start: u64, end: u64) -> Option<Attrs> {
    let mut a = start;
    let mut seen: Option<Attrs> = None;
    while a < end {
        // SAFETY: forwarded.
        let (e, size) = unsafe { leaf(a) }?;
        // SAFETY: a live leaf entry.
        let v = unsafe { *e };
        let here = Attrs {
            read_protect: v & PRESENT == 0,
            exec_protect: v & NX != 0,
            read_only: v & WRITE == 0,
        };
        if seen.is_some_and(|s| s != here) {
            return None;
        }
        seen = Some(here);
        a = (a & !(size - 1)) + size;
    }
    seen
}
