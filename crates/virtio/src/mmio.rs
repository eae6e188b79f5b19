//! Bounds-checked volatile access to a device register window.

use core::ptr;

/// A window of device registers at a fixed address.
///
/// Constructing one is the single place where an address is trusted; all
/// accessors afterwards check that the access lies inside the window and is
/// naturally aligned. An access that does not is a driver bug or a hostile
/// offset from the device: it is logged and behaves like a bus error on real
/// hardware (reads return all ones, writes are dropped) instead of touching
/// memory outside the window.
#[derive(Debug)]
pub struct MmioRegion {
    base: usize,
    len: usize,
}

impl MmioRegion {
    /// Describe the `len`-byte register window at `base`.
    ///
    /// Returns `None` for a null base or a range that wraps the address space.
    ///
    /// # Safety
    ///
    /// `base..base + len` must be device MMIO (or, in tests, memory owned by
    /// the caller for the region's lifetime), mapped at this virtual address
    /// with uncached access, valid for volatile 8/16/32-bit reads and
    /// writes, and not used as ordinary Rust memory by anything else.
    pub unsafe fn new(base: u64, len: usize) -> Option<Self> {
        let base = usize::try_from(base).ok()?;
        if base == 0 || base.checked_add(len).is_none() {
            return None;
        }
        Some(MmioRegion { base, len })
    }

    /// Length of the window in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Address of the window's first byte.
    pub fn base(&self) -> u64 {
        self.base as u64
    }

    /// A window covering `offset..offset + len` of this one, if it fits.
    pub fn subregion(&self, offset: usize, len: usize) -> Option<MmioRegion> {
        let end = offset.checked_add(len)?;
        (end <= self.len).then(|| MmioRegion {
            base: self.base + offset,
            len,
        })
    }

    /// Address of an access of `size` bytes at `offset`, if in bounds and aligned.
    fn check(&self, offset: usize, size: usize) -> Option<usize> {
        let end = offset.checked_add(size)?;
        if end > self.len || !offset.is_multiple_of(size) {
            log::warn!(
                "mmio {:#x}: bad {size}-byte access at +{offset:#x} (len {:#x})",
                self.base,
                self.len
            );
            return None;
        }
        Some(self.base + offset)
    }

    /// Read the byte at `offset`.
    pub fn read8(&self, offset: usize) -> u8 {
        match self.check(offset, 1) {
            // SAFETY: in bounds of a window the constructor's caller vouched
            // for as valid for volatile access.
            Some(a) => unsafe { ptr::read_volatile(a as *const u8) },
            None => 0xff,
        }
    }

    /// Read the 16-bit register at `offset` (2-byte aligned).
    pub fn read16(&self, offset: usize) -> u16 {
        match self.check(offset, 2) {
            // SAFETY: in bounds and aligned, in a window vouched for by `new`'s caller.
            Some(a) => unsafe { ptr::read_volatile(a as *const u16) },
            None => 0xffff,
        }
    }

    /// Read the 32-bit register at `offset` (4-byte aligned).
    pub fn read32(&self, offset: usize) -> u32 {
        match self.check(offset, 4) {
            // SAFETY: in bounds and aligned, in a window vouched for by `new`'s caller.
            Some(a) => unsafe { ptr::read_volatile(a as *const u32) },
            None => 0xffff_ffff,
        }
    }

    /// Write the byte at `offset`.
    pub fn write8(&self, offset: usize, value: u8) {
        if let Some(a) = self.check(offset, 1) {
            // SAFETY: in bounds of a window vouched for by `new`'s caller.
            unsafe { ptr::write_volatile(a as *mut u8, value) }
        }
    }

    /// Write the 16-bit register at `offset` (2-byte aligned).
    pub fn write16(&self, offset: usize, value: u16) {
        if let Some(a) = self.check(offset, 2) {
            // SAFETY: in bounds and aligned, in a window vouched for by `new`'s caller.
            unsafe { ptr::write_volatile(a as *mut u16, value) }
        }
    }

    /// Write the 32-bit register at `offset` (4-byte aligned).
    pub fn write32(&self, offset: usize, value: u32) {
        if let Some(a) = self.check(offset, 4) {
            // SAFETY: in bounds and aligned, in a window vouched for by `new`'s caller.
            unsafe { ptr::write_volatile(a as *mut u32, value) }
        }
    }

    /// Write a 64-bit value as two 32-bit writes, low half first (the access
    /// pattern virtio transports specify for 64-bit registers).
    pub fn write64_split(&self, offset: usize, value: u64) {
        self.write32(offset, value as u32);
        self.write32(offset + 4, (value >> 32) as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accesses_are_bounds_and_alignment_checked() {
        let mut backing = [0u32; 4];
        // SAFETY: `backing` outlives the region and is only accessed through it below.
        let r = unsafe { MmioRegion::new(backing.as_mut_ptr() as u64, 16) }.unwrap();
        r.write32(0, 0x1122_3344);
        r.write16(4, 0xbeef);
        r.write8(15, 0x7f);
        assert_eq!(r.read32(0), 0x1122_3344);
        assert_eq!(r.read8(1), 0x33);
        assert_eq!(r.read16(4), 0xbeef);
        // Out of bounds or misaligned: all ones, and writes go nowhere.
        assert_eq!(r.read32(16), 0xffff_ffff);
        assert_eq!(r.read32(13), 0xffff_ffff);
        assert_eq!(r.read16(usize::MAX), 0xffff);
        r.write32(14, 0);
        r.write32(16, 0);
        let sub = r.subregion(8, 8).unwrap();
        assert_eq!(sub.read8(7), 0x7f);
        assert!(r.subregion(8, 9).is_none());
        assert!(r.subregion(usize::MAX, 2).is_none());
        assert_eq!(backing[3], 0x7f00_0000);
        // SAFETY: null is rejected before any access could happen.
        assert!(unsafe { MmioRegion::new(0, 16) }.is_none());
    }
}
