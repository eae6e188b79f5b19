//! PCIe on `virt`: the generic ECAM host bridge from the device tree, BARs
//! assigned from its `ranges`, and the virtio-blk functions behind it.

use alloc::format;
use alloc::vec::Vec;
use ember_pci::{BarWindows, Bdf, ConfigSpace};
use fdt::Fdt;

/// The host bridge: ECAM window and bus range.
#[derive(Clone, Copy)]
pub struct Ecam {
    base: usize,
    buses: u16,
}

impl ConfigSpace for Ecam {
    fn read32(&mut self, a: Bdf, off: u16) -> u32 {
        match self.addr(a, off) {
            // SAFETY: inside the ECAM window the device tree names (bounds
            // checked), mapped as device memory by the entry's tables.
            Some(p) => unsafe { core::ptr::read_volatile(p as *const u32) },
            None => u32::MAX,
        }
    }
    fn write32(&mut self, a: Bdf, off: u16, v: u32) {
        if let Some(p) = self.addr(a, off) {
            // SAFETY: as above.
            unsafe { core::ptr::write_volatile(p as *mut u32, v) }
        }
    }
}

impl Ecam {
    fn addr(&self, a: Bdf, off: u16) -> Option<usize> {
        if u16::from(a.bus) >= self.buses || off >= 4096 {
            return None;
        }
        Some(
            self.base
                + (usize::from(a.bus) << 20
                    | usize::from(a.device) << 15
                    | usize::from(a.function) << 12
                    | usize::from(off & !3)),
        )
    }
}

/// The bridge and its BAR windows, from the device tree. Only windows inside
/// what the entry maps as device memory are used: the 32-bit one below
/// 1 GiB, the 64-bit one in [512 GiB, 1 TiB) (64-bit prefetchable BARs go
/// there first) and the I/O ports.
pub fn host_bridge(fdt: &Fdt<'_>) -> Option<(Ecam, BarWindows)> {
    let node = fdt.all_nodes().find(|n| {
        n.compatible()
            .is_some_and(|c| c.all().any(|s| s == "pci-host-ecam-generic"))
    })?;
    let reg = node.reg()?.next()?;
    let (base, size) = (reg.starting_address as usize, reg.size.unwrap_or(0));
    // The entry maps [256 GiB, 512 GiB) as device memory: virt's high ECAM.
    if base < 256 << 30 || base.checked_add(size)? > 512 << 30 || size < 1 << 20 {
        return None;
    }
    let buses = (size >> 20).min(256) as u16;
    let mut w = BarWindows {
        mem32: 0..0,
        mem64: 0..0,
        io: 0..0,
    };
    // ranges: (pci.hi, pci.mid, pci.lo, cpu.hi, cpu.lo, size.hi, size.lo).
    let ranges = node.property("ranges").map(|p| p.value).unwrap_or(&[]);
    for r in ranges.chunks_exact(28) {
        let c = |i: usize| {
            u64::from(u32::from_be_bytes([
                r[4 * i],
                r[4 * i + 1],
                r[4 * i + 2],
                r[4 * i + 3],
            ]))
        };
        let space = (c(0) >> 24) & 3;
        let pci = c(1) << 32 | c(2);
        let cpu = c(3) << 32 | c(4);
        let len = c(5) << 32 | c(6);
        match space {
            // I/O: ports from 0x1000 (0 is never a valid BAR), identity
            // offset assumed by ember-pci only for memory.
            1 if pci == 0 => w.io = 0x1000..len.min(0x1_0000) as u32,
            // 32-bit memory, identity-mapped CPU/PCI, inside the device window.
            2 if pci == cpu && cpu >= 64 << 20 && cpu + len <= 1 << 30 => w.mem32 = cpu..cpu + len,
            // 64-bit memory, identity-mapped, inside the entry's second
            // half (device memory).
            3 if pci == cpu
                && cpu >= 512 << 30
                && cpu.checked_add(len).is_some_and(|e| e <= 1 << 40) =>
            {
                w.mem64 = cpu..cpu + len
            }
            _ => {}
        }
    }
    if w.mem32.is_empty() {
        return None;
    }
    Some((Ecam { base, buses }, w))
}

/// Enumerate the bridge's buses, assign BARs, and start every virtio-blk
/// function; returns the disks with their names.
pub fn disks(ecam: Ecam, mut windows: BarWindows) -> Vec<crate::disk::Disk> {
    let mut cfg = ecam;
    let devs = ember_pci::enumerate(&mut cfg, &mut windows);
    log::info!(
        "pci: ECAM at {:#x}, {} bus(es), {} function(s)",
        ecam.base,
        ecam.buses,
        devs.len()
    );
    let mut out = Vec::new();
    for d in devs
        .iter()
        .filter(|d| d.vendor_id == 0x1af4 && (d.device_id == 0x1042 || d.device_id == 0x1001))
    {
        let name = format!("virtio-blk {}", d.bdf);
        for (i, b) in d.bars.iter().enumerate() {
            if let Some(b) = b {
                log::info!(
                    "{name}: BAR{i} {:?} at {:#x}, {:#x} bytes",
                    b.kind,
                    b.addr,
                    b.size
                );
            }
        }
        // SAFETY: the BARs were just assigned inside the windows the entry
        // maps as device memory (identity, uncached).
        let t = match unsafe { ember_virtio::VirtioPci::new(&mut cfg, d) } {
            Ok(t) => t,
            Err(e) => {
                log::warn!("{name}: {e}");
                continue;
            }
        };
        if let Some(b) = crate::disk::start_blk(&name, t) {
            out.push(crate::disk::disk(
                name,
                b,
                crate::disk::Location::Pci(d.bdf),
            ));
        }
    }
    out
}
