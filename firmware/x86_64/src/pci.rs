//! PCI configuration access for `ember-pci`: ECAM when ACPI MCFG names one,
//! the CF8/CFC ports otherwise.

use crate::acpi::Ecam;
use crate::arch::io::{inl, outl};
use ember_pci::{Bdf, ConfigSpace};

/// Legacy configuration mechanism #1 (ports 0xCF8/0xCFC).
pub struct PortIo(());

impl PortIo {
    /// # Safety
    /// Only one accessor may drive the CF8/CFC pair at a time.
    pub unsafe fn new() -> Self {
        PortIo(())
    }
}

/// Mechanism #1 reaches only the first 256 bytes of each function.
fn cf8_address(a: Bdf, off: u16) -> u32 {
    0x8000_0000
        | u32::from(a.bus) << 16
        | u32::from(a.device) << 11
        | u32::from(a.function) << 8
        | u32::from(off & 0xfc)
}

impl ConfigSpace for PortIo {
    fn read32(&mut self, a: Bdf, off: u16) -> u32 {
        // SAFETY: exclusive use of the config ports (constructor contract).
        unsafe {
            outl(0xcf8, cf8_address(a, off));
            inl(0xcfc)
        }
    }
    fn write32(&mut self, a: Bdf, off: u16, v: u32) {
        // SAFETY: exclusive use of the config ports (constructor contract).
        unsafe {
            outl(0xcf8, cf8_address(a, off));
            outl(0xcfc, v)
        }
    }
}

/// PCI Express enhanced configuration access (memory-mapped).
pub struct EcamAccess {
    ecam: Ecam,
}

impl EcamAccess {
    /// # Safety
    /// `ecam` must describe the platform's ECAM window (from MCFG), identity-mapped.
    pub unsafe fn new(ecam: Ecam) -> Self {
        EcamAccess { ecam }
    }

    fn addr(&self, a: Bdf, off: u16) -> Option<usize> {
        if a.bus < self.ecam.start_bus || a.bus > self.ecam.end_bus || off >= 4096 {
            return None;
        }
        let rel = u64::from(a.bus - self.ecam.start_bus) << 20
            | u64::from(a.device) << 15
            | u64::from(a.function) << 12
            | u64::from(off & !3);
        Some((self.ecam.base + rel) as usize)
    }
}

impl ConfigSpace for EcamAccess {
    fn read32(&mut self, a: Bdf, off: u16) -> u32 {
        match self.addr(a, off) {
            // SAFETY: inside the ECAM window (bounds checked above).
            Some(p) => unsafe { core::ptr::read_volatile(p as *const u32) },
            None => u32::MAX,
        }
    }
    fn write32(&mut self, a: Bdf, off: u16, v: u32) {
        if let Some(p) = self.addr(a, off) {
            // SAFETY: inside the ECAM window (bounds checked above).
            unsafe { core::ptr::write_volatile(p as *mut u32, v) }
        }
    }
}
