//! The devices the device tree describes on `virt`: the PL031 RTC, QEMU's
//! fw_cfg (MMIO), virtio-mmio transports and the PCIe ECAM host bridge.
//! Each is found by its `compatible` string and checked by reading an
//! identification register before it is reported; the boot paths will
//! use them (docs/aarch64.md).

use crate::pl011::Pl011;
use core::fmt::Write;
use fdt::node::FdtNode;
use fdt::Fdt;

fn with_compatible<'b, 'a>(
    fdt: &'b Fdt<'a>,
    c: &'b str,
) -> impl Iterator<Item = FdtNode<'b, 'a>> + 'b {
    fdt.all_nodes()
        .filter(move |n| n.compatible().is_some_and(|cs| cs.all().any(|s| s == c)))
}

fn first_reg(n: &FdtNode<'_, '_>) -> Option<(usize, usize)> {
    let r = n.reg()?.next()?;
    Some((r.starting_address as usize, r.size.unwrap_or(0)))
}

/// A 32-bit device register.
///
/// # Safety
/// `addr` must be a register of a device the device tree describes, inside
/// the device window the entry maps (below 1 GiB).
unsafe fn read32(addr: usize) -> u32 {
    // SAFETY: per the contract, a mapped device register.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

/// Whether `base..base + len` lies in the device window the entry maps as
/// Device-nGnRE (64 MiB .. 1 GiB): Ember touches nothing else.
fn in_device_window(base: usize, len: usize) -> bool {
    base >= 64 << 20 && base.checked_add(len).is_some_and(|e| e <= 1 << 30)
}

/// virtio device IDs Ember knows by name.
fn virtio_name(id: u32) -> &'static str {
    match id {
        1 => "network",
        2 => "block",
        3 => "console",
        4 => "entropy",
        _ => "other",
    }
}

/// The virtio-mmio transports (base, length) inside the device window.
pub fn virtio_mmio(fdt: &Fdt<'_>) -> alloc::vec::Vec<(usize, usize)> {
    with_compatible(fdt, "virtio,mmio")
        .filter_map(|n| first_reg(&n))
        .filter(|&(b, l)| in_device_window(b, l.max(0x100)))
        .collect()
}

/// fw_cfg's MMIO base, when the device tree has one in the device window.
pub fn fw_cfg_base(fdt: &Fdt<'_>) -> Option<usize> {
    with_compatible(fdt, "qemu,fw-cfg-mmio")
        .find_map(|n| first_reg(&n))
        .filter(|&(b, l)| in_device_window(b, l.max(0x18)))
        .map(|(b, _)| b)
}

/// The PL031 RTC's registers, when the device tree has one in the device
/// window.
pub fn pl031_base(fdt: &Fdt<'_>) -> Option<usize> {
    with_compatible(fdt, "arm,pl031")
        .find_map(|n| first_reg(&n))
        .filter(|&(b, l)| in_device_window(b, l.max(0x1000)))
        .map(|(b, _)| b)
}

/// Report every device the boot paths will need.
pub fn report(fdt: &Fdt<'_>, out: &mut Pl011) {
    if let Some((base, len)) = with_compatible(fdt, "arm,pl031").find_map(|n| first_reg(&n)) {
        if in_device_window(base, len.max(4)) {
            // SAFETY: the PL031's data register (seconds since the epoch).
            let secs = i64::from(unsafe { read32(base) });
            let (y, m, d, h, mi, s) = ember_uefi_data::clock::from_unix(secs);
            let _ = writeln!(
                out,
                "RTC: PL031 at {base:#x}: {y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC"
            );
        }
    }
    if let Some((base, len)) = with_compatible(fdt, "qemu,fw-cfg-mmio").find_map(|n| first_reg(&n))
    {
        if in_device_window(base, len.max(0x18)) {
            // SAFETY: fw_cfg's selector (big-endian, +8) and data (+0)
            // registers; selecting item 0 (the signature) has no effect
            // beyond the read position.
            let sig = unsafe {
                core::ptr::write_volatile((base + 8) as *mut u16, 0u16.to_be());
                core::array::from_fn::<u8, 4, _>(|_| core::ptr::read_volatile(base as *const u8))
            };
            let _ = writeln!(
                out,
                "fw_cfg: MMIO at {base:#x}, signature {:?}",
                core::str::from_utf8(&sig).unwrap_or("(not text)")
            );
        }
    }
    let mut transports = 0;
    for (base, len) in with_compatible(fdt, "virtio,mmio").filter_map(|n| first_reg(&n)) {
        if !in_device_window(base, len.max(0x100)) {
            continue;
        }
        transports += 1;
        // SAFETY: the transport's magic, version and device ID registers.
        let (magic, version, id) = unsafe { (read32(base), read32(base + 4), read32(base + 8)) };
        if magic != 0x7472_6976 {
            let _ = writeln!(out, "virtio-mmio at {base:#x}: bad magic {magic:#x}");
        } else if id != 0 {
            let _ = writeln!(
                out,
                "virtio-mmio at {base:#x}: version {version}, {} device (ID {id})",
                virtio_name(id)
            );
        }
    }
    let _ = writeln!(out, "virtio-mmio: {transports} transport(s)");
    if let Some(n) = with_compatible(fdt, "pci-host-ecam-generic").next() {
        let windows = n.property("ranges").map_or(0, |p| p.value.len() / 28);
        match first_reg(&n) {
            Some((base, len)) => {
                let _ = writeln!(
                    out,
                    "PCIe: ECAM at {base:#x} ({} MiB), {windows} window(s) in `ranges`",
                    len >> 20
                );
            }
            None => {
                let _ = writeln!(out, "PCIe: host bridge without `reg`");
            }
        }
    }
}
