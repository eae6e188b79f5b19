//! The virtio-mmio transport (virtio 1.2 §4.2), versions 1 (legacy) and 2.

use crate::queue::layout;
use crate::{MmioRegion, Transport, VirtioError, PAGE_SIZE};

const MAGIC_VALUE: usize = 0x000;
const VERSION: usize = 0x004;
const DEVICE_ID: usize = 0x008;
const VENDOR_ID: usize = 0x00c;
const DEVICE_FEATURES: usize = 0x010;
const DEVICE_FEATURES_SEL: usize = 0x014;
const DRIVER_FEATURES: usize = 0x020;
const DRIVER_FEATURES_SEL: usize = 0x024;
const LEGACY_GUEST_PAGE_SIZE: usize = 0x028;
const QUEUE_SEL: usize = 0x030;
const QUEUE_NUM_MAX: usize = 0x034;
const QUEUE_NUM: usize = 0x038;
const LEGACY_QUEUE_ALIGN: usize = 0x03c;
const LEGACY_QUEUE_PFN: usize = 0x040;
const QUEUE_READY: usize = 0x044;
const QUEUE_NOTIFY: usize = 0x050;
const STATUS: usize = 0x070;
const QUEUE_DESC: usize = 0x080;
const QUEUE_DRIVER: usize = 0x090;
const QUEUE_DEVICE: usize = 0x0a0;
const CONFIG_GENERATION: usize = 0x0fc;
const CONFIG: usize = 0x100;

/// "virt" in little-endian ASCII.
pub const MAGIC: u32 = 0x7472_6976;

/// A virtio-mmio device.
#[derive(Debug)]
pub struct VirtioMmio {
    regs: MmioRegion,
    version: u32,
    device_id: u32,
    vendor_id: u32,
}

impl VirtioMmio {
    /// Probe the register window; fails on a bad magic value, an unknown
    /// version or an empty slot (device ID 0, as microvm leaves unused slots).
    pub fn new(regs: MmioRegion) -> Result<Self, VirtioError> {
        if regs.len() < CONFIG {
            return Err(VirtioError::BadMagic(0));
        }
        let magic = regs.read32(MAGIC_VALUE);
        if magic != MAGIC {
            return Err(VirtioError::BadMagic(magic));
        }
        let version = regs.read32(VERSION);
        if version != 1 && version != 2 {
            return Err(VirtioError::UnsupportedVersion(version));
        }
        let device_id = regs.read32(DEVICE_ID);
        if device_id == 0 {
            return Err(VirtioError::NoDevice);
        }
        let vendor_id = regs.read32(VENDOR_ID);
        Ok(VirtioMmio {
            regs,
            version,
            device_id,
            vendor_id,
        })
    }

    /// Transport version: 1 (legacy) or 2.
    pub fn version(&self) -> u32 {
        self.version
    }
}

impl Transport for VirtioMmio {
    fn device_type(&self) -> u32 {
        self.device_id
    }

    fn vendor_id(&self) -> u32 {
        self.vendor_id
    }

    fn is_modern(&self) -> bool {
        self.version == 2
    }

    fn read_device_features(&mut self) -> u64 {
        self.regs.write32(DEVICE_FEATURES_SEL, 0);
        let low = self.regs.read32(DEVICE_FEATURES);
        self.regs.write32(DEVICE_FEATURES_SEL, 1);
        let high = self.regs.read32(DEVICE_FEATURES);
        u64::from(low) | (u64::from(high) << 32)
    }

    fn write_driver_features(&mut self, features: u64) {
        self.regs.write32(DRIVER_FEATURES_SEL, 0);
        self.regs.write32(DRIVER_FEATURES, features as u32);
        self.regs.write32(DRIVER_FEATURES_SEL, 1);
        self.regs.write32(DRIVER_FEATURES, (features >> 32) as u32);
    }

    fn status(&mut self) -> u8 {
        self.regs.read32(STATUS) as u8
    }

    fn set_status(&mut self, status: u8) {
        self.regs.write32(STATUS, u32::from(status));
    }

    fn max_queue_size(&mut self, index: u16) -> u16 {
        self.regs.write32(QUEUE_SEL, u32::from(index));
        // A live queue cannot be reprogrammed.
        let live = if self.version == 2 {
            self.regs.read32(QUEUE_READY) != 0
        } else {
            self.regs.read32(LEGACY_QUEUE_PFN) != 0
        };
        if live {
            return 0;
        }
        self.regs.read32(QUEUE_NUM_MAX).min(u32::from(u16::MAX)) as u16
    }

    fn setup_queue(
        &mut self,
        index: u16,
        size: u16,
        desc: u64,
        avail: u64,
        used: u64,
    ) -> Result<(), VirtioError> {
        self.regs.write32(QUEUE_SEL, u32::from(index));
        if self.version == 1 {
            // Legacy: one page-aligned block addressed by page frame number,
            // rings at fixed offsets derived from the size and alignment.
            let (avail_off, used_off, _) = layout(size);
            let pfn = desc / PAGE_SIZE as u64;
            if !desc.is_multiple_of(PAGE_SIZE as u64)
                || avail != desc + avail_off as u64
                || used != desc + used_off as u64
                || pfn > u64::from(u32::MAX)
            {
                return Err(VirtioError::BadQueueLayout);
            }
            self.regs.write32(LEGACY_GUEST_PAGE_SIZE, PAGE_SIZE as u32);
            self.regs.write32(QUEUE_NUM, u32::from(size));
            self.regs.write32(LEGACY_QUEUE_ALIGN, PAGE_SIZE as u32);
            self.regs.write32(LEGACY_QUEUE_PFN, pfn as u32);
        } else {
            self.regs.write32(QUEUE_NUM, u32::from(size));
            self.regs.write64_split(QUEUE_DESC, desc);
            self.regs.write64_split(QUEUE_DRIVER, avail);
            self.regs.write64_split(QUEUE_DEVICE, used);
            self.regs.write32(QUEUE_READY, 1);
        }
        Ok(())
    }

    fn notify(&mut self, index: u16) {
        self.regs.write32(QUEUE_NOTIFY, u32::from(index));
    }

    fn config_generation(&mut self) -> u32 {
        if self.version == 2 {
            self.regs.read32(CONFIG_GENERATION)
        } else {
            0
        }
    }

    fn config_read8(&mut self, offset: usize) -> u8 {
        offset
            .checked_add(CONFIG)
            .map_or(0xff, |o| self.regs.read8(o))
    }

    fn config_read16(&mut self, offset: usize) -> u16 {
        offset
            .checked_add(CONFIG)
            .map_or(0xffff, |o| self.regs.read16(o))
    }

    fn config_read32(&mut self, offset: usize) -> u32 {
        offset
            .checked_add(CONFIG)
            .map_or(!0, |o| self.regs.read32(o))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::testutil::HostDma;
    use crate::Virtqueue;
    use std::boxed::Box;

    /// Registers backed by host memory; a region over it plus raw access.
    fn window(version: u32, device: u32) -> (Box<[u32; 128]>, MmioRegion) {
        let mut regs = Box::new([0u32; 128]);
        regs[0] = MAGIC;
        regs[1] = version;
        regs[2] = device;
        regs[3] = 0x554d_4551;
        regs[QUEUE_NUM_MAX / 4] = 1024;
        regs[CONFIG / 4] = 0x1234_5678;
        // SAFETY: the box is kept alive by the caller for the region's use and
        // only read back after the region's last access in each test.
        let r = unsafe { MmioRegion::new(regs.as_mut_ptr() as u64, 512) }.unwrap();
        (regs, r)
    }

    #[test]
    fn probe_rejects_bad_windows() {
        let (mut regs, r) = window(2, 0);
        assert_eq!(VirtioMmio::new(r).unwrap_err(), VirtioError::NoDevice);
        regs[0] = 0xdead_beef;
        // SAFETY: as in `window`.
        let r = unsafe { MmioRegion::new(regs.as_mut_ptr() as u64, 512) }.unwrap();
        assert_eq!(
            VirtioMmio::new(r).unwrap_err(),
            VirtioError::BadMagic(0xdead_beef)
        );
        regs[0] = MAGIC;
        regs[1] = 3;
        // SAFETY: as in `window`.
        let r = unsafe { MmioRegion::new(regs.as_mut_ptr() as u64, 512) }.unwrap();
        assert_eq!(
            VirtioMmio::new(r).unwrap_err(),
            VirtioError::UnsupportedVersion(3)
        );
    }

    #[test]
    fn modern_queue_setup_programs_split_addresses() {
        let (regs, r) = window(2, 2);
        let mut t = VirtioMmio::new(r).unwrap();
        assert!(t.is_modern());
        assert_eq!((t.device_type(), t.vendor_id()), (2, 0x554d_4551));
        assert_eq!(t.config_read32(0), 0x1234_5678);
        let q = Virtqueue::new(&mut t, &HostDma, 0, 128).unwrap();
        let (d, a, u) = q.addresses();
        assert_eq!(regs[QUEUE_NUM / 4], 128);
        assert_eq!(
            u64::from(regs[QUEUE_DESC / 4]) | u64::from(regs[QUEUE_DESC / 4 + 1]) << 32,
            d
        );
        assert_eq!(
            u64::from(regs[QUEUE_DRIVER / 4]) | u64::from(regs[QUEUE_DRIVER / 4 + 1]) << 32,
            a
        );
        assert_eq!(
            u64::from(regs[QUEUE_DEVICE / 4]) | u64::from(regs[QUEUE_DEVICE / 4 + 1]) << 32,
            u
        );
        assert_eq!(regs[QUEUE_READY / 4], 1);
        // Now live: the queue cannot be set up again.
        assert_eq!(t.max_queue_size(0), 0);
    }

    #[test]
    fn legacy_queue_setup_uses_page_frame_number() {
        let (regs, r) = window(1, 2);
        let mut t = VirtioMmio::new(r).unwrap();
        assert!(!t.is_modern());
        assert_eq!(t.config_generation(), 0);
        // Host heap addresses are beyond 32-bit page frame numbers, so feed
        // the layout Virtqueue would produce at a low address directly.
        let (avail, used, _) = layout(256);
        let d = 0x1000_0000u64;
        t.setup_queue(0, 256, d, d + avail as u64, d + used as u64)
            .unwrap();
        assert_eq!(regs[LEGACY_GUEST_PAGE_SIZE / 4], 4096);
        assert_eq!(regs[LEGACY_QUEUE_ALIGN / 4], 4096);
        assert_eq!(regs[LEGACY_QUEUE_PFN / 4], 0x1_0000);
        assert_eq!(regs[QUEUE_NUM / 4], 256);
        // A layout legacy devices cannot express is refused.
        assert_eq!(
            t.setup_queue(1, 8, 0x10000, 0x20000, 0x30000),
            Err(VirtioError::BadQueueLayout)
        );
        let (avail, used, _) = layout(8);
        let high = 1u64 << 45;
        assert_eq!(
            t.setup_queue(1, 8, high, high + avail as u64, high + used as u64),
            Err(VirtioError::BadQueueLayout)
        );
    }
}
