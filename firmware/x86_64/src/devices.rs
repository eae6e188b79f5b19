//! Finding the machine's disks: PCI (through ECAM or CF8) and virtio-mmio
//! devices listed on the command line (`virtio_mmio.device=SIZE@ADDR:IRQ`).

use crate::acpi::Platform;
use crate::arch::paging;
use crate::memory;
use crate::pci::{EcamAccess, PortIo};
use crate::time;
use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use ember_block::BlockDevice;
use ember_pci::{BarWindows, ConfigSpace, Device};
use ember_virtio::{Dma, MmioRegion, Timeout, Transport, VirtioBlk, VirtioMmio, VirtioPci};

pub use ember_uefi::disk::{Disk, Location, SharedDisk};

/// DMA pages for virtqueues come from the memory map, below 4 GiB.
struct FirmwareDma;

// SAFETY: `memory::alloc_pages` returns zeroed, page-aligned RAM recorded as
// Ember's in the memory map and never freed; Ember is identity-mapped and
// QEMU/Cloud Hypervisor virtio devices see guest-physical addresses with no
// IOMMU, coherently.
unsafe impl Dma for FirmwareDma {
    fn alloc_zeroed_pages(&self, pages: usize) -> Option<u64> {
        memory::alloc_pages(pages as u64)
    }
}

fn io_timeout() -> Timeout {
    Timeout::Clock {
        now_ns: time::now_ns,
        timeout_ns: 10_000_000_000,
    }
}

fn start_blk<T: Transport + 'static>(name: String, location: Location, t: T, out: &mut Vec<Disk>) {
    // SAFETY: Ember is identity-mapped without an IOMMU, so buffer addresses
    // are the physical addresses the device DMAs to; `t` drives a real device.
    match unsafe { VirtioBlk::new(t, &FirmwareDma, io_timeout()) } {
        Ok(b) => {
            log::info!("{name}: {} MiB", b.size_bytes() >> 20);
            out.push(Disk {
                name,
                dev: SharedDisk(Rc::new(RefCell::new(Box::new(b)))),
                location,
            });
        }
        Err(e) => log::warn!("{name}: cannot use it: {e}"),
    }
}

/// Parse `virtio_mmio.device=<size>@<base>:<irq>` (size with K/M/G suffix).
fn parse_mmio_arg(v: &str) -> Option<(u64, u64)> {
    let (size, rest) = v.split_once('@')?;
    let base = rest.split(':').next()?;
    let (num, mult) = match size.as_bytes().last()? {
        b'K' | b'k' => (&size[..size.len() - 1], 1 << 10),
        b'M' | b'm' => (&size[..size.len() - 1], 1 << 20),
        b'G' | b'g' => (&size[..size.len() - 1], 1 << 30),
        _ => (size, 1),
    };
    let parse = |s: &str| match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    };
    Some((parse(base)?, parse(num)?.checked_mul(mult)?))
}

/// Where unassigned BARs go: 32-bit ones between low RAM (or the ECAM
/// window) and the IOAPIC, 64-bit ones in a 32 GiB window above RAM (QEMU's
/// default 64-bit hole size), kept inside the CPU's physical address width.
pub fn pci_windows() -> BarWindows {
    let mut w = default_pci_windows();
    // Windows the DSDT names (ECAM excluded) take precedence: on microvm the
    // 64-bit one is far above RAM, where the defaults would not look.
    if let Some(p) = crate::power::platform() {
        let ecam = p
            .ecam
            .map(|e| (e.base, e.base + ((u64::from(e.end_bus) + 1) << 20)));
        let clear = |(s, e): (u64, u64)| ecam.is_none_or(|(es, ee)| e <= es || s >= ee);
        if let Some((s, e)) = p.pci_mem64.filter(|&r| clear(r)) {
            w.mem64 = s..e;
        }
        if let Some((s, e)) = p.pci_mem32.filter(|&r| clear(r)) {
            w.mem32 = s..e.min(0xfec0_0000);
        }
    }
    w
}

fn default_pci_windows() -> BarWindows {
    const GIB: u64 = 1 << 30;
    let guard = memory::MAP.lock();
    let map = guard.map();
    let is_ram = |k: ember_mem::MemKind| k == ember_mem::MemKind::Free || k.is_allocated();
    let low_top = map
        .regions()
        .iter()
        .filter(|r| {
            r.start < 1 << 32
                && (is_ram(r.kind) || r.kind == ember_mem::MemKind::Reserved)
                && r.end <= 0xfec0_0000
        })
        .map(|r| r.end)
        .max()
        .unwrap_or(0);
    let ram_top = map
        .regions()
        .iter()
        .filter(|r| is_ram(r.kind))
        .map(|r| r.end)
        .max()
        .unwrap_or(0);
    drop(guard);
    let mem32_start = low_top.next_multiple_of(1 << 28).max(0xc000_0000);
    let phys_bits = if crate::arch::io::cpuid(0x8000_0000, 0).eax >= 0x8000_0008 {
        crate::arch::io::cpuid(0x8000_0008, 0).eax & 0xff
    } else {
        36
    };
    let limit = 1u64 << phys_bits.clamp(32, 52);
    let mem64_start = ram_top.max(1 << 32).next_multiple_of(GIB);
    let mem64_end = (mem64_start + 32 * GIB).min(limit);
    BarWindows {
        mem32: mem32_start..0xfec0_0000,
        mem64: mem64_start..mem64_end.max(mem64_start),
        io: 0xc000..0x10000,
    }
}

fn scan_pci(cfg: &mut dyn ConfigSpace) -> Vec<Device> {
    let mut w = pci_windows();
    let devs = ember_pci::enumerate(cfg, &mut w);
    for d in &devs {
        log::debug!(
            "pci {} {:04x}:{:04x} class {:02x}{:02x}",
            d.bdf,
            d.vendor_id,
            d.device_id,
            d.class,
            d.subclass
        );
        for b in d.bars.iter().flatten() {
            if b.is_memory() && b.addr + b.size > 1 << 32 {
                // SAFETY: a BAR just assigned/enumerated: device memory of this machine.
                unsafe {
                    paging::map_identity(b.addr, b.addr + b.size, &mut || memory::alloc_pages(1))
                };
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
        log::info!(
            "pci: ECAM at {:#x}, segment {}, buses {}-{}",
            e.base,
            e.segment,
            e.start_bus,
            e.end_bus
        );
        // SAFETY: MCFG describes this window; Ember is its only user.
        scan_pci(&mut unsafe { EcamAccess::new(e) })
    } else {
        // SAFETY: Ember is the only user of the config ports.
        scan_pci(&mut unsafe { PortIo::new() })
    };
    log::info!("pci: {} function(s)", devs.len());
    let mut disks = Vec::new();
    let mut cfg_ports;
    let mut cfg_ecam;
    let cfg: &mut dyn ConfigSpace = match platform.ecam {
        Some(e) => {
            // SAFETY: as above; the enumeration's accessor is gone.
            cfg_ecam = unsafe { EcamAccess::new(e) };
            &mut cfg_ecam
        }
        None => {
            // SAFETY: as above; the enumeration's accessor is gone.
            cfg_ports = unsafe { PortIo::new() };
            &mut cfg_ports
        }
    };
    for d in devs
        .iter()
        .filter(|d| d.vendor_id == 0x1af4 && (d.device_id == 0x1042 || d.device_id == 0x1001))
    {
        let name = format!("virtio-blk {}", d.bdf);
        // SAFETY: the BARs were enumerated/assigned above and are identity-mapped MMIO.
        match unsafe { VirtioPci::new(cfg, d) } {
            Ok(t) => start_blk(name, Location::Pci(d.bdf), t, &mut disks),
            Err(e) => log::warn!("{name}: {e}"),
        }
    }

    // virtio-mmio: the command line (Firecracker, QEMU with auto-kernel-cmdline)
    // and the DSDT (QEMU microvm) name the transports.
    let mut mmio: Vec<(u64, u64)> = cmdline
        .split_ascii_whitespace()
        .filter_map(|w| w.strip_prefix("virtio_mmio.device="))
        .filter_map(parse_mmio_arg)
        .collect();
    for &(b, l) in &platform.virtio_mmio {
        if !mmio.iter().any(|&(x, _)| x == b) {
            mmio.push((b, l));
        }
    }
    for (base, len) in mmio {
        // SAFETY: the VMM declared a virtio-mmio transport here; the low 4 GiB
        // is identity-mapped and higher windows are mapped now.
        let region = unsafe {
            if base + len > 1 << 32 {
                paging::map_identity(base, base + len, &mut || memory::alloc_pages(1));
            }
            MmioRegion::new(base, len as usize)
        };
        let Some(region) = region else { continue };
        match VirtioMmio::new(region) {
            Ok(t) if t.device_type() == ember_virtio::device_type::BLOCK => {
                let name = format!("virtio-blk mmio@{base:#x} (v{})", t.version());
                start_blk(name, Location::Mmio(base), t, &mut disks)
            }
            Ok(_) => {}
            Err(ember_virtio::VirtioError::NoDevice) => {}
            Err(e) => log::debug!("virtio-mmio at {base:#x}: {e}"),
        }
    }
    disks
}
