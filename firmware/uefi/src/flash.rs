//! The variable store's flash: QEMU's CFI01 parallel flash (pflash unit 1,
//! mapped right below Ember's own flash image, as OVMF's vars sit below its
//! code). Reads are plain memory reads in read-array mode; programs and
//! erases are CFI commands, one byte at a time (QEMU's x86 pflash is 8 bits
//! wide), each followed by a status check and a return to read-array mode.

use ember_varstore::{Flash, FlashError, FlashOp, BLOCK_SIZE};

const CMD_READ_ARRAY: u8 = 0xff;
const CMD_READ_STATUS: u8 = 0x70;
const CMD_CLEAR_STATUS: u8 = 0x50;
const CMD_PROGRAM: u8 = 0x40;
const CMD_ERASE: u8 = 0x20;
const CMD_CONFIRM: u8 = 0xd0;
const CMD_CFI_QUERY: u8 = 0x98;
/// Status register: ready, erase error, program error, protection error.
const SR_READY: u8 = 0x80;
const SR_ERRORS: u8 = 0x20 | 0x10 | 0x02;

/// A pflash device at a fixed physical address.
pub struct Pflash {
    base: u64,
    len: u32,
}

impl Pflash {
    fn write8(&mut self, off: u64, v: u8) {
        // SAFETY: inside the device found by `probe` (identity-mapped MMIO),
        // or given to `at` with its mapping.
        unsafe { core::ptr::write_volatile((self.base + off) as usize as *mut u8, v) }
    }

    fn read8(&self, off: u64) -> u8 {
        // SAFETY: as above.
        unsafe { core::ptr::read_volatile((self.base + off) as usize as *const u8) }
    }

    /// Find a vars flash that ends at `top` (exclusive) with a CFI query.
    /// Returns `None` when there is no such device.
    ///
    /// # Safety
    /// The block below `top` must be pflash or unclaimed, identity-mapped
    /// as device memory, and used by nothing else.
    pub unsafe fn probe_below(top: u64) -> Option<Pflash> {
        // The last block of the device below the code: CFI answers at any
        // offset of the device.
        let mut probe = Pflash {
            base: top - u64::from(BLOCK_SIZE),
            len: BLOCK_SIZE,
        };
        probe.write8(0, CMD_CFI_QUERY);
        let qry = [probe.read8(0x10), probe.read8(0x11), probe.read8(0x12)];
        // The first erase-block region: block count - 1 and block size / 256
        // (the device-size byte at 0x27 is a power of two, which QEMU rounds
        // a 540,672-byte device down to).
        let r = |o| u32::from(probe.read8(o));
        let blocks = (r(0x2d) | r(0x2e) << 8) + 1;
        let block_size = (r(0x2f) | r(0x30) << 8) * 256;
        probe.write8(0, CMD_READ_ARRAY);
        let len = blocks.checked_mul(block_size)?;
        if &qry != b"QRY" || block_size != BLOCK_SIZE || !(2 * BLOCK_SIZE..=64 << 20).contains(&len)
        {
            return None;
        }
        Some(Pflash {
            base: top - u64::from(len),
            len,
        })
    }

    pub fn base(&self) -> u64 {
        self.base
    }

    /// The same device at another address: where the OS mapped it for
    /// runtime services (SetVirtualAddressMap).
    ///
    /// # Safety
    /// `[base, base + len)` must be this device's registers, mapped
    /// uncached, and used by nothing else.
    pub unsafe fn at(base: u64, len: u32) -> Pflash {
        Pflash { base, len }
    }

    /// Wait for the status register to say ready; report errors.
    fn finish(&mut self, off: u64, op: FlashOp) -> Result<(), FlashError> {
        self.write8(off, CMD_READ_STATUS);
        let mut sr = self.read8(off);
        let mut spins = 0u32;
        while sr & SR_READY == 0 && spins < 1_000_000 {
            core::hint::spin_loop();
            sr = self.read8(off);
            spins += 1;
        }
        let failed = sr & SR_READY == 0 || sr & SR_ERRORS != 0;
        if failed {
            self.write8(off, CMD_CLEAR_STATUS);
        }
        self.write8(off, CMD_READ_ARRAY);
        if failed {
            let offset = off as u32;
            return Err(if sr & 0x02 != 0 {
                FlashError::WriteProtected { offset }
            } else {
                FlashError::Device { op, offset }
            });
        }
        Ok(())
    }

    fn check(&self, offset: u32, len: usize) -> Result<(), FlashError> {
        let end = u64::from(offset) + len as u64;
        if end > u64::from(self.len) {
            return Err(FlashError::OutOfRange {
                offset,
                len: len as u32,
            });
        }
        Ok(())
    }
}

impl Flash for Pflash {
    fn len(&self) -> u32 {
        self.len
    }

    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), FlashError> {
        self.check(offset, buf.len())?;
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.read8(u64::from(offset) + i as u64);
        }
        Ok(())
    }

    fn program(&mut self, offset: u32, data: &[u8]) -> Result<(), FlashError> {
        self.check(offset, data.len())?;
        for (i, &v) in data.iter().enumerate() {
            let off = u64::from(offset) + i as u64;
            if v == 0xff {
                continue; // erased already; nothing to clear
            }
            self.write8(off, CMD_PROGRAM);
            self.write8(off, v);
            self.finish(off, FlashOp::Program)?;
        }
        Ok(())
    }

    fn erase(&mut self, block: u32) -> Result<(), FlashError> {
        let off = u64::from(block) * u64::from(BLOCK_SIZE);
        self.check(off as u32, BLOCK_SIZE as usize)?;
        self.write8(off, CMD_ERASE);
        self.write8(off, CMD_CONFIRM);
        self.finish(off, FlashOp::Erase)
    }
}
