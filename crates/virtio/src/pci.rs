//! The modern virtio-pci transport (virtio 1.2 §4.1).

use ember_pci::{read_cap_bytes, vendor_capabilities, BarKind, ConfigSpace, Device};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::{MmioRegion, Transport, VirtioError};

/// Red Hat's PCI vendor ID, used by all virtio devices.
pub const VIRTIO_PCI_VENDOR: u16 = 0x1af4;
/// Modern device IDs are this plus the virtio device type.
const MODERN_DEVICE_BASE: u16 = 0x1040;

const CFG_TYPE_COMMON: u8 = 1;
const CFG_TYPE_NOTIFY: u8 = 2;
const CFG_TYPE_ISR: u8 = 3;
const CFG_TYPE_DEVICE: u8 = 4;

/// `struct virtio_pci_cap`: a vendor capability locating a register block.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct VirtioPciCap {
    /// Capability ID (0x09, vendor specific).
    pub cap_vndr: u8,
    /// Next capability pointer.
    pub cap_next: u8,
    /// Capability length.
    pub cap_len: u8,
    /// Which register block (`CFG_TYPE_*`).
    pub cfg_type: u8,
    /// BAR holding the block.
    pub bar: u8,
    /// Distinguishes several capabilities of one type.
    pub id: u8,
    /// Reserved.
    pub padding: [u8; 2],
    /// Offset of the block within the BAR.
    pub offset: u32,
    /// Length of the block.
    pub length: u32,
}
const _: () = assert!(size_of::<VirtioPciCap>() == 16);

// Common configuration (`struct virtio_pci_common_cfg`) register offsets.
const DEVICE_FEATURE_SELECT: usize = 0x00;
const DEVICE_FEATURE: usize = 0x04;
const DRIVER_FEATURE_SELECT: usize = 0x08;
const DRIVER_FEATURE: usize = 0x0c;
const DEVICE_STATUS: usize = 0x14;
const CONFIG_GENERATION: usize = 0x15;
const QUEUE_SELECT: usize = 0x16;
const QUEUE_SIZE: usize = 0x18;
const QUEUE_ENABLE: usize = 0x1c;
const QUEUE_NOTIFY_OFF: usize = 0x1e;
const QUEUE_DESC: usize = 0x20;
const QUEUE_DRIVER: usize = 0x28;
const QUEUE_DEVICE: usize = 0x30;
/// Size of the common configuration in virtio 1.0 (all we use).
const COMMON_CFG_LEN: u32 = 0x38;

/// The virtio device type of a modern virtio-pci function (2 = block), or
/// `None` for anything else (including legacy/transitional functions).
pub fn virtio_device_type(dev: &Device) -> Option<u32> {
    (dev.vendor_id == VIRTIO_PCI_VENDOR && (MODERN_DEVICE_BASE..=0x107f).contains(&dev.device_id))
        .then(|| u32::from(dev.device_id - MODERN_DEVICE_BASE))
}

/// Where a register block lives: BAR-relative, already validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapLocation {
    /// Absolute address (BAR address + offset).
    pub addr: u64,
    /// Length in bytes.
    pub len: u32,
}

/// The register blocks of a modern virtio-pci function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioPciCaps {
    /// Common configuration.
    pub common: CapLocation,
    /// Notification area.
    pub notify: CapLocation,
    /// Multiplier applied to a queue's notify offset.
    pub notify_off_multiplier: u32,
    /// ISR status (unused when polling, but located for completeness).
    pub isr: Option<CapLocation>,
    /// Device-specific configuration.
    pub device: Option<CapLocation>,
}

/// Locate and validate the virtio vendor capabilities of `dev`.
///
/// Safe and side-effect free: it only reads config space, so it can be
/// tested against a fake. Per the spec, the first capability of each type
/// whose BAR is usable wins; capabilities naming a reserved BAR are skipped.
pub fn find_virtio_caps<C: ConfigSpace + ?Sized>(
    cfg: &mut C,
    dev: &Device,
) -> Result<VirtioPciCaps, VirtioError> {
    if dev.vendor_id != VIRTIO_PCI_VENDOR || !(0x1000..=0x107f).contains(&dev.device_id) {
        return Err(VirtioError::NotVirtio {
            vendor: dev.vendor_id,
            device: dev.device_id,
        });
    }
    if dev.device_id < MODERN_DEVICE_BASE {
        return Err(VirtioError::LegacyPci(dev.device_id));
    }
    let offsets: alloc::vec::Vec<u8> = vendor_capabilities(cfg, dev.bdf)
        .map(|c| c.offset)
        .collect();
    let (mut common, mut notify, mut isr, mut device) = (None, None, None, None);
    let mut multiplier = 0;
    for off in offsets {
        let mut raw = [0u8; 20];
        read_cap_bytes(cfg, dev.bdf, off, &mut raw);
        let Ok((cap, rest)) = VirtioPciCap::read_from_prefix(&raw) else {
            continue;
        };
        if cap.bar > 5 || usize::from(cap.cap_len) < size_of::<VirtioPciCap>() {
            continue;
        }
        let slot = match cap.cfg_type {
            CFG_TYPE_COMMON => &mut common,
            CFG_TYPE_NOTIFY => &mut notify,
            CFG_TYPE_ISR => &mut isr,
            CFG_TYPE_DEVICE => &mut device,
            _ => continue,
        };
        if slot.is_some() {
            continue;
        }
        let name = match cap.cfg_type {
            CFG_TYPE_COMMON => "common",
            CFG_TYPE_NOTIFY => "notify",
            CFG_TYPE_ISR => "isr",
            _ => "device",
        };
        let bar = dev
            .bar(cap.bar)
            .filter(|b| b.kind != BarKind::Io)
            .ok_or(VirtioError::BadCapability(name))?;
        let end = u64::from(cap.offset).checked_add(u64::from(cap.length));
        if end.is_none_or(|e| e > bar.size) {
            return Err(VirtioError::BadCapability(name));
        }
        if cap.cfg_type == CFG_TYPE_NOTIFY {
            if cap.cap_len < 20 {
                return Err(VirtioError::BadCapability(name));
            }
            multiplier = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        }
        *slot = Some(CapLocation {
            addr: bar.addr + u64::from(cap.offset),
            len: cap.length,
        });
    }
    let common = common.ok_or(VirtioError::MissingCapability("common"))?;
    let notify = notify.ok_or(VirtioError::MissingCapability("notify"))?;
    if common.len < COMMON_CFG_LEN {
        return Err(VirtioError::BadCapability("common"));
    }
    if notify.len < 2 {
        return Err(VirtioError::BadCapability("notify"));
    }
    if dev.command & ember_pci::regs::CMD_MEM == 0 {
        return Err(VirtioError::BadConfig("PCI memory decoding is off"));
    }
    Ok(VirtioPciCaps {
        common,
        notify,
        notify_off_multiplier: multiplier,
        isr,
        device,
    })
}

/// Queues whose notify address is cached after setup.
const NOTIFY_CACHE: usize = 8;

/// A modern virtio-pci device.
#[derive(Debug)]
pub struct VirtioPci {
    common: MmioRegion,
    notify: MmioRegion,
    notify_off_multiplier: u32,
    device_cfg: Option<MmioRegion>,
    device_type: u32,
    vendor_id: u32,
    /// Byte offset into `notify` for each set-up queue.
    notify_offsets: [Option<usize>; NOTIFY_CACHE],
}

impl VirtioPci {
    /// Bind to a modern virtio-pci function found by [`ember_pci::enumerate`].
    ///
    /// # Safety
    ///
    /// The memory BARs of `dev` must be device MMIO, mapped identity
    /// (virtual == physical) and uncached, not used by anything else, and
    /// remain so for the transport's lifetime.
    pub unsafe fn new<C: ConfigSpace + ?Sized>(
        cfg: &mut C,
        dev: &Device,
    ) -> Result<Self, VirtioError> {
        let caps = find_virtio_caps(cfg, dev)?;
        let region = |loc: CapLocation, name| {
            // SAFETY: `loc` lies inside one of `dev`'s memory BARs (checked by
            // `find_virtio_caps`), which the caller vouches are identity-mapped MMIO.
            unsafe { MmioRegion::new(loc.addr, loc.len as usize) }
                .ok_or(VirtioError::BadCapability(name))
        };
        let subsystem_vendor = cfg.read16(dev.bdf, 0x2c);
        Ok(VirtioPci {
            common: region(caps.common, "common")?,
            notify: region(caps.notify, "notify")?,
            notify_off_multiplier: caps.notify_off_multiplier,
            device_cfg: caps.device.map(|d| region(d, "device")).transpose()?,
            device_type: u32::from(dev.device_id - MODERN_DEVICE_BASE),
            vendor_id: u32::from(subsystem_vendor),
            notify_offsets: [None; NOTIFY_CACHE],
        })
    }

    fn notify_offset(&mut self, index: u16) -> Option<usize> {
        self.common.write16(QUEUE_SELECT, index);
        let off = usize::from(self.common.read16(QUEUE_NOTIFY_OFF))
            .checked_mul(self.notify_off_multiplier as usize)?;
        // The doorbell is a 16-bit write that must land inside the notify block.
        (off.checked_add(2)? <= self.notify.len()).then_some(off)
    }
}

impl Transport for VirtioPci {
    fn device_type(&self) -> u32 {
        self.device_type
    }

    fn vendor_id(&self) -> u32 {
        self.vendor_id
    }

    fn is_modern(&self) -> bool {
        true
    }

    fn read_device_features(&mut self) -> u64 {
        self.common.write32(DEVICE_FEATURE_SELECT, 0);
        let low = self.common.read32(DEVICE_FEATURE);
        self.common.write32(DEVICE_FEATURE_SELECT, 1);
        let high = self.common.read32(DEVICE_FEATURE);
        u64::from(low) | (u64::from(high) << 32)
    }

    fn write_driver_features(&mut self, features: u64) {
        self.common.write32(DRIVER_FEATURE_SELECT, 0);
        self.common.write32(DRIVER_FEATURE, features as u32);
        self.common.write32(DRIVER_FEATURE_SELECT, 1);
        self.common.write32(DRIVER_FEATURE, (features >> 32) as u32);
    }

    fn status(&mut self) -> u8 {
        self.common.read8(DEVICE_STATUS)
    }

    fn set_status(&mut self, status: u8) {
        self.common.write8(DEVICE_STATUS, status);
    }

    fn max_queue_size(&mut self, index: u16) -> u16 {
        self.common.write16(QUEUE_SELECT, index);
        if self.common.read16(QUEUE_ENABLE) != 0 {
            return 0;
        }
        // Before setup, queue_size reads as the device maximum.
        self.common.read16(QUEUE_SIZE)
    }

    fn setup_queue(
        &mut self,
        index: u16,
        size: u16,
        desc: u64,
        avail: u64,
        used: u64,
    ) -> Result<(), VirtioError> {
        let off = self
            .notify_offset(index)
            .ok_or(VirtioError::BadCapability("notify offset"))?;
        self.common.write16(QUEUE_SELECT, index);
        self.common.write16(QUEUE_SIZE, size);
        self.common.write64_split(QUEUE_DESC, desc);
        self.common.write64_split(QUEUE_DRIVER, avail);
        self.common.write64_split(QUEUE_DEVICE, used);
        self.common.write16(QUEUE_ENABLE, 1);
        if let Some(slot) = self.notify_offsets.get_mut(usize::from(index)) {
            *slot = Some(off);
        }
        Ok(())
    }

    fn notify(&mut self, index: u16) {
        let off = match self
            .notify_offsets
            .get(usize::from(index))
            .copied()
            .flatten()
        {
            Some(off) => Some(off),
            None => self.notify_offset(index),
        };
        match off {
            Some(off) => self.notify.write16(off, index),
            None => log::warn!("virtio-pci: queue {index} has no usable notify address"),
        }
    }

    fn config_generation(&mut self) -> u32 {
        u32::from(self.common.read8(CONFIG_GENERATION))
    }

    fn config_read8(&mut self, offset: usize) -> u8 {
        self.device_cfg.as_ref().map_or(0xff, |r| r.read8(offset))
    }

    fn config_read16(&mut self, offset: usize) -> u16 {
        self.device_cfg
            .as_ref()
            .map_or(0xffff, |r| r.read16(offset))
    }

    fn config_read32(&mut self, offset: usize) -> u32 {
        self.device_cfg.as_ref().map_or(!0, |r| r.read32(offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_pci::{Bar, Bdf};

    /// One function's 256-byte config space, no side effects.
    struct OneFn([u8; 256]);

    impl ConfigSpace for OneFn {
        fn read32(&mut self, _: Bdf, offset: u16) -> u32 {
            let o = usize::from(offset);
            u32::from_le_bytes(self.0[o..o + 4].try_into().unwrap())
        }
        fn write32(&mut self, _: Bdf, offset: u16, value: u32) {
            let o = usize::from(offset);
            self.0[o..o + 4].copy_from_slice(&value.to_le_bytes());
        }
    }

    fn cap(
        space: &mut [u8; 256],
        at: usize,
        next: u8,
        cfg_type: u8,
        bar: u8,
        offset: u32,
        length: u32,
    ) {
        let c = VirtioPciCap {
            cap_vndr: 0x09,
            cap_next: next,
            cap_len: if cfg_type == CFG_TYPE_NOTIFY { 20 } else { 16 },
            cfg_type,
            bar,
            offset,
            length,
            ..Default::default()
        };
        space[at..at + 16].copy_from_slice(c.as_bytes());
    }

    /// A virtio-blk function laid out like QEMU's: all blocks in BAR 4.
    fn qemu_like() -> (OneFn, Device) {
        let mut s = [0u8; 256];
        s[0x06] = 0x10; // capability list present
        s[0x34] = 0x40;
        s[0x2c..0x2e].copy_from_slice(&0x1af4u16.to_le_bytes());
        cap(&mut s, 0x40, 0x50, CFG_TYPE_COMMON, 4, 0x0000, 0x1000);
        cap(&mut s, 0x50, 0x60, CFG_TYPE_ISR, 4, 0x1000, 0x1000);
        cap(&mut s, 0x60, 0x70, CFG_TYPE_DEVICE, 4, 0x2000, 0x1000);
        cap(&mut s, 0x70, 0x88, CFG_TYPE_NOTIFY, 4, 0x3000, 0x1000);
        s[0x80..0x84].copy_from_slice(&4u32.to_le_bytes());
        // An MSI-X capability to skip, then a reserved-BAR vendor cap.
        s[0x88] = 0x11;
        s[0x89] = 0x90;
        cap(&mut s, 0x90, 0x00, CFG_TYPE_COMMON, 7, 0, 0x1000);
        let bar = Bar {
            addr: 0xfe00_0000,
            size: 0x4000,
            kind: BarKind::Mem64,
            prefetchable: true,
        };
        let mut bars = [None; 6];
        bars[4] = Some(bar);
        let dev = Device {
            bdf: Bdf::new(0, 3, 0),
            vendor_id: 0x1af4,
            device_id: 0x1042,
            revision: 1,
            class: 1,
            subclass: 0,
            prog_if: 0,
            header_type: 0,
            bars,
            secondary_bus: None,
            command: 0x6,
        };
        (OneFn(s), dev)
    }

    #[test]
    fn finds_capabilities() {
        let (mut cfg, dev) = qemu_like();
        let caps = find_virtio_caps(&mut cfg, &dev).unwrap();
        assert_eq!(
            caps.common,
            CapLocation {
                addr: 0xfe00_0000,
                len: 0x1000
            }
        );
        assert_eq!(
            caps.isr,
            Some(CapLocation {
                addr: 0xfe00_1000,
                len: 0x1000
            })
        );
        assert_eq!(
            caps.device,
            Some(CapLocation {
                addr: 0xfe00_2000,
                len: 0x1000
            })
        );
        assert_eq!(
            caps.notify,
            CapLocation {
                addr: 0xfe00_3000,
                len: 0x1000
            }
        );
        assert_eq!(caps.notify_off_multiplier, 4);
        assert_eq!(virtio_device_type(&dev), Some(2));
    }

    #[test]
    fn rejects_legacy_and_foreign_devices() {
        let (mut cfg, mut dev) = qemu_like();
        dev.device_id = 0x1001;
        assert_eq!(
            find_virtio_caps(&mut cfg, &dev),
            Err(VirtioError::LegacyPci(0x1001))
        );
        dev.vendor_id = 0x8086;
        assert!(matches!(
            find_virtio_caps(&mut cfg, &dev),
            Err(VirtioError::NotVirtio { .. })
        ));
    }

    #[test]
    fn rejects_capabilities_outside_their_bar() {
        let (mut cfg, dev) = qemu_like();
        cap(&mut cfg.0, 0x70, 0x88, CFG_TYPE_NOTIFY, 4, 0x3800, 0x1000);
        assert_eq!(
            find_virtio_caps(&mut cfg, &dev),
            Err(VirtioError::BadCapability("notify"))
        );
        let (mut cfg, dev) = qemu_like();
        cap(
            &mut cfg.0,
            0x40,
            0x50,
            CFG_TYPE_COMMON,
            4,
            0xffff_f000,
            0x2000,
        );
        assert_eq!(
            find_virtio_caps(&mut cfg, &dev),
            Err(VirtioError::BadCapability("common"))
        );
        // Capability naming a BAR the device does not have.
        let (mut cfg, dev) = qemu_like();
        cap(&mut cfg.0, 0x60, 0x70, CFG_TYPE_DEVICE, 2, 0, 0x100);
        assert_eq!(
            find_virtio_caps(&mut cfg, &dev),
            Err(VirtioError::BadCapability("device"))
        );
        // No common capability at all (first one removed from the chain).
        let (mut cfg, dev) = qemu_like();
        cfg.0[0x34] = 0x50;
        assert_eq!(
            find_virtio_caps(&mut cfg, &dev),
            Err(VirtioError::MissingCapability("common"))
        );
    }
}
