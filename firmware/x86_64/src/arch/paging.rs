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
pub unsafe fn map_identity(start: u64, end: u64, alloc_page: &mut dyn FnMut() -> Option<u64>) -> bool {
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
