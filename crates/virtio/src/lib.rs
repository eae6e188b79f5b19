//! Polled virtio drivers for Ember.
//!
//! Layers, bottom up:
//! - [`MmioRegion`]: bounds-checked volatile access to a device register window
//!   (its `unsafe` constructor is where the firmware vouches for an address).
//! - [`Transport`]: the register-level protocol, implemented by [`VirtioPci`]
//!   (modern virtio-pci) and [`VirtioMmio`] (virtio-mmio v1 legacy and v2).
//! - [`Virtqueue`]: a split virtqueue in memory from a [`Dma`] allocator.
//! - [`VirtioBlk`]: a virtio-blk driver implementing
//!   [`ember_block::BlockDevice`], keeping many large requests in flight.
//!
//! Typical use from firmware (identity mapped, polling):
//! ```text
//! // PCI (q35, Cloud Hypervisor). Both windows must be identity mapped, uncached.
//! let mut windows = BarWindows { mem32: 0xc000_0000..0xfec0_0000, mem64: HIGH_MMIO, io: 0xc000..0x1_0000 };
//! let devices = ember_pci::enumerate(&mut cfg, &mut windows);
//! let dev = devices.iter().find(|d| virtio_device_type(d) == Some(device_type::BLOCK))?;
//! // SAFETY: BARs were assigned from identity-mapped, uncached MMIO windows.
//! let transport = unsafe { VirtioPci::new(&mut cfg, dev)? };
//! // microvm instead: VirtioMmio::new(unsafe { MmioRegion::new(base, 0x200) }.unwrap())?
//! let timeout = Timeout::Clock { now_ns: clock::now_ns, timeout_ns: 5_000_000_000 };
//! // SAFETY: identity mapped, no IOMMU, `PageAlloc` hands out DMA-able pages.
//! let mut disk = unsafe { VirtioBlk::new(transport, &PageAlloc, timeout)? };
//! disk.read_blocks(0, &mut buf)?; // buf: any identity-mapped memory, e.g. a kernel's final location
//! ```
#![no_std]

#[cfg(not(target_endian = "little"))]
compile_error!(
    "ember-virtio writes ring structures in native byte order, which must be little-endian"
);

extern crate alloc;

use core::fmt;

pub mod blk;
mod mmio;
mod pci;
pub mod queue;
mod transport;
mod virtio_mmio;

#[cfg(test)]
mod testutil;

pub use blk::{plan_requests, BlkInfo, BlkReqHeader, RequestPlan, VirtioBlk, MAX_REQUEST_BYTES};
pub use mmio::MmioRegion;
pub use pci::{
    find_virtio_caps, virtio_device_type, CapLocation, VirtioPci, VirtioPciCap, VirtioPciCaps,
    VIRTIO_PCI_VENDOR,
};

pub use queue::{Descriptor, Segment, Used, UsedElem, Virtqueue};
pub use transport::{negotiate, Transport};
pub use virtio_mmio::{VirtioMmio, MAGIC as VIRTIO_MMIO_MAGIC};

/// Size of the pages [`Dma::alloc_zeroed_pages`] returns.
pub const PAGE_SIZE: usize = 4096;

/// Source of memory the device can access by DMA.
///
/// # Safety
///
/// `alloc_zeroed_pages(n)` must return either `None` or the address of
/// `n * PAGE_SIZE` bytes that are: page aligned, zeroed, usable at that same
/// address both by the CPU (virtual == physical) and by the device (no
/// IOMMU translation, cache coherent), owned by the caller from then on and
/// never freed or reused while the driver may use them (drivers here never
/// give pages back).
pub unsafe trait Dma {
    /// Allocate `pages` contiguous zeroed pages; `None` when exhausted.
    fn alloc_zeroed_pages(&self, pages: usize) -> Option<u64>;
}

/// Device status bits (virtio 1.2 §2.1).
pub mod status {
    /// The guest noticed the device.
    pub const ACKNOWLEDGE: u8 = 1;
    /// The guest knows how to drive it.
    pub const DRIVER: u8 = 2;
    /// The driver is ready.
    pub const DRIVER_OK: u8 = 4;
    /// Feature negotiation is complete.
    pub const FEATURES_OK: u8 = 8;
    /// The device hit an error and needs a reset.
    pub const DEVICE_NEEDS_RESET: u8 = 64;
    /// The driver gave up on the device.
    pub const FAILED: u8 = 128;
}

/// Device-independent feature bits (virtio 1.2 §6).
pub mod features {
    /// Indirect descriptors (not used by Ember).
    pub const RING_INDIRECT_DESC: u64 = 1 << 28;
    /// used_event/avail_event suppression (not used by Ember).
    pub const RING_EVENT_IDX: u64 = 1 << 29;
    /// The device follows virtio 1.x (required for modern transports).
    pub const VERSION_1: u64 = 1 << 32;
    /// The device's DMA goes through the platform IOMMU.
    pub const ACCESS_PLATFORM: u64 = 1 << 33;
    /// Packed virtqueues (not used by Ember).
    pub const RING_PACKED: u64 = 1 << 34;
}

/// Virtio device types (virtio 1.2 §5).
pub mod device_type {
    /// Network card.
    pub const NET: u32 = 1;
    /// Block device.
    pub const BLOCK: u32 = 2;
    /// Console.
    pub const CONSOLE: u32 = 3;
    /// Entropy source.
    pub const RNG: u32 = 4;
}

/// How long to wait for a device before giving up.
#[derive(Clone, Copy, Debug)]
pub enum Timeout {
    /// Give up after this many polls of the device.
    Spins(u64),
    /// Give up when `now_ns()` (a monotonic nanosecond clock) advances this
    /// much without progress.
    Clock {
        /// Monotonic clock in nanoseconds.
        now_ns: fn() -> u64,
        /// Allowed time without progress.
        timeout_ns: u64,
    },
}

impl Default for Timeout {
    /// Roughly seconds of polling on any machine, with no clock needed.
    fn default() -> Self {
        Timeout::Spins(200_000_000)
    }
}

impl Timeout {
    /// Start waiting now.
    pub fn start(&self) -> Deadline {
        let start = match *self {
            Timeout::Spins(_) => 0,
            Timeout::Clock { now_ns, .. } => now_ns(),
        };
        Deadline {
            timeout: *self,
            start,
            spins: 0,
        }
    }
}

/// A running wait started by [`Timeout::start`].
#[derive(Debug)]
pub struct Deadline {
    timeout: Timeout,
    start: u64,
    spins: u64,
}

impl Deadline {
    /// Count one poll; true once the wait has run out. Call in a poll loop.
    pub fn expired(&mut self) -> bool {
        self.spins = self.spins.saturating_add(1);
        core::hint::spin_loop();
        match self.timeout {
            Timeout::Spins(max) => self.spins > max,
            Timeout::Clock { now_ns, timeout_ns } => now_ns().wrapping_sub(self.start) > timeout_ns,
        }
    }

    /// Progress was made: start the wait over.
    pub fn restart(&mut self) {
        *self = self.timeout.start();
    }
}

/// Errors from virtio transports, queues and drivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VirtioError {
    /// A virtio-mmio window whose device ID is 0 (an empty slot).
    NoDevice,
    /// A virtio-mmio window without the "virt" magic value.
    BadMagic(u32),
    /// A virtio-mmio version other than 1 (legacy) or 2.
    UnsupportedVersion(u32),
    /// Not a virtio PCI function.
    NotVirtio {
        /// PCI vendor ID.
        vendor: u16,
        /// PCI device ID.
        device: u16,
    },
    /// A legacy or transitional virtio PCI function (ID 0x1000..=0x103f).
    LegacyPci(u16),
    /// A required virtio-pci capability is absent.
    MissingCapability(&'static str),
    /// A virtio-pci capability points outside its BAR, or at an unusable BAR.
    BadCapability(&'static str),
    /// The device is not of the type this driver handles.
    WrongDeviceType {
        /// What the driver needs.
        expected: u32,
        /// What the device is.
        found: u32,
    },
    /// A modern device did not offer VIRTIO_F_VERSION_1.
    NoVersion1,
    /// The device cleared FEATURES_OK: it rejected our feature subset.
    FeaturesRejected,
    /// The queue does not exist (maximum size 0) or is already live.
    QueueUnavailable(u16),
    /// The queue is too small for this driver's requests.
    QueueTooSmall(u16),
    /// Not enough free descriptors for the chain.
    QueueFull,
    /// The DMA allocator ran out.
    OutOfDmaMemory,
    /// The transport cannot use the queue memory as laid out.
    BadQueueLayout,
    /// The device broke the ring protocol (bad used index or descriptor id).
    DeviceProtocol(&'static str),
    /// The device configuration kept changing under us.
    ConfigUnstable,
    /// The device configuration holds values the driver cannot use.
    BadConfig(&'static str),
    /// The device did not respond in time.
    Timeout,
}

impl fmt::Display for VirtioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VirtioError::NoDevice => f.write_str("virtio-mmio slot has no device"),
            VirtioError::BadMagic(m) => write!(f, "bad virtio-mmio magic {m:#010x}"),
            VirtioError::UnsupportedVersion(v) => write!(f, "unsupported virtio-mmio version {v}"),
            VirtioError::NotVirtio { vendor, device } => {
                write!(f, "PCI device {vendor:04x}:{device:04x} is not virtio")
            }
            VirtioError::LegacyPci(id) => {
                write!(f, "legacy/transitional virtio-pci device {id:#06x} is not supported (use disable-legacy=on)")
            }
            VirtioError::MissingCapability(c) => write!(f, "virtio-pci {c} capability missing"),
            VirtioError::BadCapability(c) => write!(f, "virtio-pci {c} capability is invalid"),
            VirtioError::WrongDeviceType { expected, found } => {
                write!(f, "virtio device type {found}, expected {expected}")
            }
            VirtioError::NoVersion1 => f.write_str("device does not offer VIRTIO_F_VERSION_1"),
            VirtioError::FeaturesRejected => f.write_str("device rejected the negotiated features"),
            VirtioError::QueueUnavailable(q) => write!(f, "virtqueue {q} unavailable"),
            VirtioError::QueueTooSmall(n) => write!(f, "virtqueue of {n} entries is too small"),
            VirtioError::QueueFull => f.write_str("virtqueue full"),
            VirtioError::OutOfDmaMemory => f.write_str("out of DMA memory"),
            VirtioError::BadQueueLayout => {
                f.write_str("virtqueue memory layout unusable by transport")
            }
            VirtioError::DeviceProtocol(what) => write!(f, "device protocol violation: {what}"),
            VirtioError::ConfigUnstable => f.write_str("device configuration kept changing"),
            VirtioError::BadConfig(what) => write!(f, "unusable device configuration: {what}"),
            VirtioError::Timeout => f.write_str("virtio device timed out"),
        }
    }
}
