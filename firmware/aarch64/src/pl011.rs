//! The PL011 UART: polled transmit and receive.

use core::fmt;

/// Data register.
const DR: usize = 0x00;
/// Flag register; bit 5: transmit FIFO full.
const FR: usize = 0x18;
const FR_TXFF: u32 = 1 << 5;
/// Flag register bit 4: receive FIFO empty.
const FR_RXFE: u32 = 1 << 4;

pub struct Pl011 {
    base: usize,
}

impl Pl011 {
    /// # Safety
    /// `base` must be a PL011's registers, mapped as device memory.
    pub unsafe fn new(base: usize) -> Pl011 {
        Pl011 { base }
    }

    /// A received byte, if one is waiting.
    pub fn get(&mut self) -> Option<u8> {
        // SAFETY: the registers `new` was given.
        unsafe {
            if core::ptr::read_volatile((self.base + FR) as *const u32) & FR_RXFE != 0 {
                return None;
            }
            Some(core::ptr::read_volatile((self.base + DR) as *const u32) as u8)
        }
    }

    /// Raw bytes, as they are (the UEFI console sends its own CR LF).
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.put(b);
        }
    }

    fn put(&mut self, b: u8) {
        // SAFETY: the registers `new` was given.
        unsafe {
            while core::ptr::read_volatile((self.base + FR) as *const u32) & FR_TXFF != 0 {}
            core::ptr::write_volatile((self.base + DR) as *mut u32, u32::from(b));
        }
    }
}

impl fmt::Write for Pl011 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
        Ok(())
    }
}
