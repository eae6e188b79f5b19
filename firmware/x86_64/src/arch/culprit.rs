//! Naming the owner of an address in fault reports: Ember's own image (and
//! which part of it), a loaded EFI image (its file and the offset into it),
//! Ember's heap, or the guard page under a stack.

use super::protect;

/// Print what `addr` belongs to, without allocating or blocking: this runs
/// in the exception handler, possibly with any lock held.
pub fn describe(addr: u64) {
    let [(t0, t1), (r0, r1), (d0, d1)] = protect::image_ranges();
    let part = if (t0..t1).contains(&addr) {
        Some(("code", t0))
    } else if (r0..r1).contains(&addr) {
        Some(("read-only data", t0))
    } else if (d0..d1).contains(&addr) {
        Some(("data/stack", t0))
    } else {
        None
    };
    if let Some((what, base)) = part {
        crate::print!("Ember's own {what}, image offset {:#x}", addr - base);
        return;
    }
    if crate::efi::image::describe(addr) {
        return;
    }
    if crate::memory::is_heap(addr) {
        crate::print!("Ember's heap (data)");
        return;
    }
    if addr < 4096 {
        crate::print!("page 0 (a NULL pointer dereference)");
        return;
    }
    crate::print!("no known owner");
}
