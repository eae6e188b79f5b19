//! The transport abstraction and the device initialisation sequence.

use crate::{features, status, Timeout, VirtioError};

/// How many times a configuration read is retried while the device keeps
/// changing its configuration generation.
const CONFIG_RETRIES: usize = 16;

/// Register-level access to one virtio device, whatever the bus.
pub trait Transport {
    /// Virtio device type (2 = block); 0 means no device.
    fn device_type(&self) -> u32;
    /// Vendor ID (PCI subsystem vendor or virtio-mmio VendorID).
    fn vendor_id(&self) -> u32;
    /// Whether this is a virtio 1.x transport (FEATURES_OK step, VERSION_1
    /// required); false for virtio-mmio version 1.
    fn is_modern(&self) -> bool;
    /// All 64 device feature bits.
    fn read_device_features(&mut self) -> u64;
    /// Tell the device which features the driver accepts.
    fn write_driver_features(&mut self, features: u64);
    /// Read the device status byte.
    fn status(&mut self) -> u8;
    /// Write the device status byte (0 starts a reset).
    fn set_status(&mut self, status: u8);
    /// Largest size queue `index` supports; 0 if it does not exist.
    fn max_queue_size(&mut self, index: u16) -> u16;
    /// Program and enable queue `index` with `size` entries at the given
    /// physical addresses (descriptor table, available ring, used ring).
    ///
    /// Legacy virtio-mmio needs the descriptor table page aligned and the
    /// rings laid out contiguously behind it (as [`crate::Virtqueue`] does).
    fn setup_queue(
        &mut self,
        index: u16,
        size: u16,
        desc: u64,
        avail: u64,
        used: u64,
    ) -> Result<(), VirtioError>;
    /// Tell the device queue `index` has new buffers.
    fn notify(&mut self, index: u16);
    /// The configuration generation counter (constant where there is none).
    fn config_generation(&mut self) -> u32;
    /// Read a byte of device-specific configuration.
    fn config_read8(&mut self, offset: usize) -> u8;
    /// Read a 16-bit field of device-specific configuration.
    fn config_read16(&mut self, offset: usize) -> u16;
    /// Read a 32-bit field of device-specific configuration.
    fn config_read32(&mut self, offset: usize) -> u32;

    /// Run `read` until the configuration generation is the same before and
    /// after it, so multi-field reads are consistent.
    fn read_config<R>(&mut self, mut read: impl FnMut(&mut Self) -> R) -> Result<R, VirtioError>
    where
        Self: Sized,
    {
        for _ in 0..CONFIG_RETRIES {
            let before = self.config_generation();
            let value = read(self);
            if self.config_generation() == before {
                return Ok(value);
            }
        }
        Err(VirtioError::ConfigUnstable)
    }

    /// Read a 64-bit field of device configuration (two 32-bit reads under
    /// the generation check, since no transport guarantees atomic 64-bit reads).
    fn config_read64(&mut self, offset: usize) -> Result<u64, VirtioError>
    where
        Self: Sized,
    {
        self.read_config(|t| {
            u64::from(t.config_read32(offset)) | (u64::from(t.config_read32(offset + 4)) << 32)
        })
    }

    /// Reset the device and wait (bounded) until it reports status 0.
    fn reset(&mut self, timeout: &Timeout) -> Result<(), VirtioError> {
        self.set_status(0);
        let mut deadline = timeout.start();
        while self.status() != 0 {
            if deadline.expired() {
                return Err(VirtioError::Timeout);
            }
        }
        Ok(())
    }
}

/// Reset the device and negotiate features (virtio 1.2 §3.1.1 steps 1–6).
///
/// Accepts the subset of `wanted` the device offers, plus VERSION_1 on
/// modern transports (required) and ACCESS_PLATFORM if offered: Ember runs
/// identity mapped with no IOMMU programmed, so platform translation is the
/// identity and accepting it changes nothing. Packed rings, event index and
/// indirect descriptors are never accepted (the driver does not use them).
/// On failure the device is left with FAILED set. On success the status is
/// ACKNOWLEDGE|DRIVER|FEATURES_OK; the caller sets up queues and then sets
/// DRIVER_OK.
pub fn negotiate<T: Transport + ?Sized>(
    t: &mut T,
    wanted: u64,
    timeout: &Timeout,
) -> Result<u64, VirtioError> {
    t.reset(timeout)?;
    t.set_status(status::ACKNOWLEDGE);
    t.set_status(status::ACKNOWLEDGE | status::DRIVER);
    let offered = t.read_device_features();
    let never = features::RING_PACKED | features::RING_EVENT_IDX | features::RING_INDIRECT_DESC;
    let mut accepted = offered & wanted & !never;
    if t.is_modern() {
        if offered & features::VERSION_1 == 0 {
            t.set_status(status::FAILED);
            return Err(VirtioError::NoVersion1);
        }
        accepted |= features::VERSION_1 | (offered & features::ACCESS_PLATFORM);
    } else {
        // Legacy devices have 32 feature bits and no VERSION_1.
        accepted &= 0xffff_ffff;
    }
    t.write_driver_features(accepted);
    if t.is_modern() {
        t.set_status(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK);
        if t.status() & status::FEATURES_OK == 0 {
            t.set_status(status::FAILED);
            return Err(VirtioError::FeaturesRejected);
        }
    }
    Ok(accepted)
}
