//! Access to physical memory by address. Ember runs identity-mapped, so a
//! physical address is also a pointer; what is not known is whether the
//! range is valid and unaliased, which is why these are `unsafe`.

/// Borrow `len` bytes of physical memory read-only.
///
/// # Safety
/// `[addr, addr+len)` must be mapped memory (RAM, ROM or table data placed by
/// the VMM) that nothing writes while the slice lives.
pub unsafe fn bytes(addr: u64, len: usize) -> &'static [u8] {
    if len == 0 {
        return &[];
    }
    // SAFETY: the caller guarantees the range is mapped and not written.
    unsafe { core::slice::from_raw_parts(addr as usize as *const u8, len) }
}

/// Borrow `len` bytes of physical memory for writing.
///
/// # Safety
/// `[addr, addr+len)` must be RAM that Ember has allocated for this purpose
/// (recorded in the memory map) and that no other reference aliases.
pub unsafe fn bytes_mut(addr: u64, len: usize) -> &'static mut [u8] {
    if len == 0 {
        return &mut [];
    }
    // SAFETY: the caller guarantees exclusive ownership of mapped RAM.
    unsafe { core::slice::from_raw_parts_mut(addr as usize as *mut u8, len) }
}

/// Read a NUL-terminated string of at most `max` bytes.
///
/// # Safety
/// As [`bytes`], for the whole `max` range or up to the terminator.
pub unsafe fn c_str(addr: u64, max: usize) -> &'static [u8] {
    let mut n = 0;
    while n < max {
        // SAFETY: within the range the caller vouches for.
        if unsafe { *((addr as usize + n) as *const u8) } == 0 {
            break;
        }
        n += 1;
    }
    // SAFETY: `n` bytes were just read from this range.
    unsafe { bytes(addr, n) }
}
