//! Finding the machine's disks: PCI (through ECAM or CF8) and virtio-mmio
//! devices listed on the command line (`virtio_mmio.device=SIZE@ADDR:IRQ`).

use crate::acpi::Platform;
use crate::arch::paging;
use crate::memory;
use crate::pci::{EcamAccess, PortIo};
use alloc::vec::Vec;
use ember_pci::{BarWindows, ConfigSpace, Device};

/// A disk Ember can boot from.
pub struct Disk {
    pub name: alloc::string::String,
}

fn pci_windows() -> BarWindows {
    let map = memory::MAP.lock();
    let low_top = map
        .regions()
        .iter()
        .filter(|r| r.start < 1 << 32 && !matches!(r.kind, ember_mem::MemKind::Reserved | ember_mem::MemKind::Mmio))
        .map(|r| r.end)
        .max()
        .unwrap_or(0);
    let top = map.regions().last().map(|r| r.end).unwrap_or(0).max(1 << 32);
    let mem32_start = ((low_top + (1 << 28) - 1) & !((1 << 28) - 1)).max(0xc000_0000);
    let mem64_start = (top + (1 << 30) - 1) & !((1 << 30) - 1);
    BarWindows { mem32: mem32_start..0xfec0_0000, mem64: mem64_start..mem64_start + (64 << 30), io: 0xc000..0x10000 }
}

fn scan_pci(cfg: &mut dyn ConfigSpace) -> Vec<Device> {
    let mut w = pci_windows();
    let devs = ember_pci::enumerate(cfg, &mut w);
    for d in &devs {
        log::debug!(
            "pci {} {:04x}:{:04x} class {:02x}{:02x}",
            d.bdf, d.vendor_id, d.device_id, d.class, d.subclass
        );
        for b in d.bars.iter().flatten() {
            if b.is_memory() && b.addr + b.size > 1 << 32 {
                // SAFETY: a BAR just assigned/enumerated: device memory of this machine.
                unsafe { paging::map_identity(b.addr, b.addr + b.size, &mut || memory::alloc_pages(1)) };
            }
        }
    }
    devs
}

/// Enumerate buses and devices; return the disks found, in discovery order.
pub fn discover(platform: &Platform, cmdline: &str) -> Vec<Disk> {
    let devs = if let Some(e) = platform.ecam {
        let size = (u64::from(e.end_bus) - u64::from(e.start_bus) + 1) << 20;
        // SAFETY: the ECAM window named by MCFG is MMIO of this machine.
        unsafe { paging::map_identity(e.base, e.base + size, &mut || memory::alloc_pages(1)) };
        log::info!("pci: ECAM at {:#x}, buses {}-{}", e.base, e.start_bus, e.end_bus);
        // SAFETY: MCFG describes this window; Ember is its only user.
        scan_pci(&mut unsafe { EcamAccess::new(e) })
    } else {
        // SAFETY: Ember is the only user of the config ports.
        scan_pci(&mut unsafe { PortIo::new() })
    };
    log::info!("pci: {} function(s)", devs.len());
    let _ = cmdline;
    Vec::new()
}
