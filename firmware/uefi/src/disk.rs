//! The disks the UEFI layer exposes: the platform finds them (virtio-blk
//! on PCI or MMIO) and hands them over as [`Disk`]s.

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::string::String;
use core::cell::RefCell;
use ember_block::{BlockDevice, BlockError};

/// Where a disk sits, for UEFI device paths.
#[derive(Clone, Copy, Debug)]
pub enum Location {
    Pci(ember_pci::Bdf),
    Mmio(u64),
}

/// A disk Ember can boot from.
pub struct Disk {
    /// How the console names it, e.g. `virtio-blk 00:03.0`.
    pub name: String,
    pub dev: SharedDisk,
    pub location: Location,
}

/// A disk shared by every protocol instance that reaches it. Firmware code is
/// single-threaded; a busy borrow (re-entry) is reported as a device error.
#[derive(Clone)]
pub struct SharedDisk(pub Rc<RefCell<Box<dyn BlockDevice>>>);

impl BlockDevice for SharedDisk {
    fn block_size(&self) -> u32 {
        self.0.try_borrow().map(|d| d.block_size()).unwrap_or(512)
    }
    fn num_blocks(&self) -> u64 {
        self.0.try_borrow().map(|d| d.num_blocks()).unwrap_or(0)
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.0
            .try_borrow_mut()
            .map_err(|_| BlockError::Io(0xff))?
            .read_blocks(lba, buf)
    }
    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        self.0
            .try_borrow_mut()
            .map_err(|_| BlockError::Io(0xff))?
            .write_blocks(lba, buf)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        self.0
            .try_borrow_mut()
            .map_err(|_| BlockError::Io(0xff))?
            .flush()
    }
    fn read_only(&self) -> bool {
        self.0.try_borrow().map(|d| d.read_only()).unwrap_or(true)
    }
}
