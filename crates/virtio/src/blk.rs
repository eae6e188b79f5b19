//! virtio-blk (virtio 1.2 §5.2), tuned for large sequential transfers.
//!
//! A big read or write is cut into requests as large as the device allows
//! (`seg_max` segments of at most `size_max` bytes, capped at
//! [`MAX_REQUEST_BYTES`]); as many requests as the queue holds are in flight
//! at once, completions are reaped in batches and the queue is refilled with
//! one notification per batch. Data moves directly between the device and the
//! caller's buffer: no bounce buffer, no copy.

use alloc::vec;
use alloc::vec::Vec;
use core::iter;
use core::ptr;

use ember_block::{check_request, BlockDevice, BlockError};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::queue::MAX_QUEUE_SIZE;
use crate::transport::negotiate;
use crate::{device_type, status, Dma, Segment, Timeout, Transport, VirtioError, Virtqueue};

/// Feature: `size_max` limits the size of one segment.
pub const F_SIZE_MAX: u64 = 1 << 1;
/// Feature: `seg_max` limits segments per request.
pub const F_SEG_MAX: u64 = 1 << 2;
/// Feature: the device is read-only.
pub const F_RO: u64 = 1 << 5;
/// Feature: `blk_size` gives the logical block size.
pub const F_BLK_SIZE: u64 = 1 << 6;
/// Feature: the device has a volatile cache and accepts flush requests.
pub const F_FLUSH: u64 = 1 << 9;

const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
/// Request status: success.
pub const S_OK: u8 = 0;
/// Request status: I/O error.
pub const S_IOERR: u8 = 1;
/// Request status: unsupported request.
pub const S_UNSUPP: u8 = 2;
/// Status the driver pre-writes; a device that completes a request without
/// writing the status byte is thereby caught.
const S_UNWRITTEN: u8 = 0xff;
/// Reported as `BlockError::Io` once the driver gave up on the device
/// (protocol violation or timeout): it has been reset and stays unusable.
pub const S_DEVICE_ABANDONED: u8 = 0xfe;

/// Virtio-blk addresses the disk in 512-byte sectors whatever the block size.
const SECTOR: usize = 512;

/// Largest data payload of one request. Big enough that a 32 MiB read is a
/// few dozen requests; small enough that several are in flight at once.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;
/// Upper bound on data segments in one request (QEMU allows 1024 iovecs
/// per request including header and status).
const MAX_DATA_SEGMENTS: u32 = 254;
/// Requests in flight at most (one header and status byte each, all in one page).
const MAX_SLOTS: usize = 64;
const STATUS_AREA: usize = MAX_SLOTS * size_of::<BlkReqHeader>();

/// `struct virtio_blk_req` header, followed on the wire by data and status.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct BlkReqHeader {
    /// `T_IN`, `T_OUT`, `T_FLUSH`, ...
    pub req_type: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// Starting 512-byte sector.
    pub sector: u64,
}
const _: () = assert!(size_of::<BlkReqHeader>() == 16);
const _: () = assert!(STATUS_AREA + MAX_SLOTS <= crate::PAGE_SIZE);

/// What the device told us about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlkInfo {
    /// Negotiated feature bits.
    pub features: u64,
    /// Capacity in 512-byte sectors.
    pub capacity_sectors: u64,
    /// Logical block size used for [`BlockDevice`] (512 unless `blk_size` says otherwise).
    pub block_size: u32,
    /// Maximum segments per request, if the device limits it.
    pub seg_max: Option<u32>,
    /// Maximum bytes per segment, if the device limits it.
    pub size_max: Option<u32>,
    /// Writes refused.
    pub read_only: bool,
    /// Flush requests supported (the device has a write cache).
    pub flush: bool,
}

/// How transfers are cut into requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestPlan {
    /// Largest data segment (descriptor) in bytes.
    pub segment_bytes: u32,
    /// Largest data payload of one request (a whole number of blocks).
    pub request_bytes: usize,
    /// Descriptors a largest request needs (header + data + status).
    pub descriptors_per_request: u16,
    /// Requests kept in flight at once.
    pub in_flight: usize,
}

/// Work out request sizes from the device limits.
///
/// `seg_max`/`size_max` are `None` when not negotiated; zero values are
/// treated as absent (a device cannot mean "no segments").
pub fn plan_requests(
    queue_size: u16,
    seg_max: Option<u32>,
    size_max: Option<u32>,
    block_size: u32,
) -> Result<RequestPlan, VirtioError> {
    if queue_size < 3 {
        return Err(VirtioError::QueueTooSmall(queue_size));
    }
    if block_size == 0 || !(block_size as usize).is_multiple_of(SECTOR) {
        return Err(VirtioError::BadConfig("block size"));
    }
    let segments = seg_max
        .filter(|&s| s > 0)
        .unwrap_or(u32::MAX)
        .min(u32::from(queue_size) - 2)
        .min(MAX_DATA_SEGMENTS);
    let segment_bytes = size_max
        .filter(|&s| s > 0)
        .unwrap_or(u32::MAX)
        .min(MAX_REQUEST_BYTES as u32);
    let raw =
        (u64::from(segments) * u64::from(segment_bytes)).min(MAX_REQUEST_BYTES as u64) as usize;
    let request_bytes = raw - raw % block_size as usize;
    if request_bytes == 0 {
        return Err(VirtioError::BadConfig(
            "size_max and seg_max too small for one block",
        ));
    }
    let data = request_bytes.div_ceil(segment_bytes as usize) as u16;
    let descriptors_per_request = data + 2;
    let in_flight = usize::from(queue_size / descriptors_per_request).clamp(1, MAX_SLOTS);
    Ok(RequestPlan {
        segment_bytes,
        request_bytes,
        descriptors_per_request,
        in_flight,
    })
}

/// Data segments of a `len`-byte transfer at physical `addr`.
fn data_segments(
    addr: u64,
    len: usize,
    segment_bytes: u32,
    device_writes: bool,
) -> impl Iterator<Item = Segment> + Clone {
    let seg = segment_bytes as usize;
    (0..len.div_ceil(seg)).map(move |i| Segment {
        addr: addr + (i * seg) as u64,
        len: (len - i * seg).min(seg) as u32,
        device_writes,
    })
}

/// A virtio block device.
#[derive(Debug)]
pub struct VirtioBlk<T: Transport> {
    transport: T,
    queue: Virtqueue,
    info: BlkInfo,
    plan: RequestPlan,
    timeout: Timeout,
    /// One DMA page: request headers, then status bytes, indexed by slot.
    request_page: usize,
    free_slots: Vec<u8>,
    /// Slot of the request whose chain starts at each descriptor id.
    head_slot: Vec<u8>,
    /// Set after the device was reset because it misbehaved or hung.
    abandoned: bool,
}

impl<T: Transport> VirtioBlk<T> {
    /// Initialise the device: negotiate features, read its configuration,
    /// set up the request queue and set DRIVER_OK.
    ///
    /// # Safety
    ///
    /// The firmware runs identity mapped with no IOMMU: the address of every
    /// buffer later passed to `read_blocks`/`write_blocks` is its physical
    /// address and the device may DMA to and from it. `transport` must drive
    /// a real virtio device (the device gets bus-master access to the queue
    /// memory and those buffers).
    pub unsafe fn new<D: Dma + ?Sized>(
        mut transport: T,
        dma: &D,
        timeout: Timeout,
    ) -> Result<Self, VirtioError> {
        let found = transport.device_type();
        if found != device_type::BLOCK {
            return Err(VirtioError::WrongDeviceType {
                expected: device_type::BLOCK,
                found,
            });
        }
        let wanted = F_SIZE_MAX | F_SEG_MAX | F_BLK_SIZE | F_RO | F_FLUSH;
        let features = negotiate(&mut transport, wanted, &timeout)?;
        match Self::setup(&mut transport, dma, features) {
            Ok((queue, info, plan, request_page)) => {
                let status = transport.status();
                transport.set_status(status | status::DRIVER_OK);
                log::info!(
                    "virtio-blk: {} sectors, block {} B, {} B/request, {} in flight{}",
                    info.capacity_sectors,
                    info.block_size,
                    plan.request_bytes,
                    plan.in_flight,
                    if info.read_only { ", read-only" } else { "" }
                );
                Ok(VirtioBlk {
                    head_slot: vec![0; usize::from(queue.size())],
                    free_slots: (0..plan.in_flight as u8).rev().collect(),
                    transport,
                    queue,
                    info,
                    plan,
                    timeout,
                    request_page,
                    abandoned: false,
                })
            }
            Err(e) => {
                transport.set_status(status::FAILED);
                Err(e)
            }
        }
    }

    fn setup<D: Dma + ?Sized>(
        t: &mut T,
        dma: &D,
        features: u64,
    ) -> Result<(Virtqueue, BlkInfo, RequestPlan, usize), VirtioError> {
        // Config layout: capacity u64 @0, size_max u32 @8, seg_max u32 @12, blk_size u32 @20.
        let (capacity_sectors, size_max, seg_max, blk_size) = t.read_config(|t| {
            let capacity = u64::from(t.config_read32(0)) | (u64::from(t.config_read32(4)) << 32);
            (
                capacity,
                t.config_read32(8),
                t.config_read32(12),
                t.config_read32(20),
            )
        })?;
        let size_max = (features & F_SIZE_MAX != 0).then_some(size_max);
        let seg_max = (features & F_SEG_MAX != 0).then_some(seg_max);
        // blk_size is advisory; only use sane values so sector math stays exact.
        let block_size = match blk_size {
            512..=65536 if features & F_BLK_SIZE != 0 && blk_size.is_power_of_two() => blk_size,
            _ => 512,
        };
        let info = BlkInfo {
            features,
            capacity_sectors,
            block_size,
            seg_max,
            size_max,
            read_only: features & F_RO != 0,
            flush: features & F_FLUSH != 0,
        };
        let queue = Virtqueue::new(t, dma, 0, MAX_QUEUE_SIZE)?;
        let plan = plan_requests(queue.size(), seg_max, size_max, block_size)?;
        let page = dma
            .alloc_zeroed_pages(1)
            .ok_or(VirtioError::OutOfDmaMemory)?;
        let page = usize::try_from(page).map_err(|_| VirtioError::OutOfDmaMemory)?;
        Ok((queue, info, plan, page))
    }

    /// Device information read at initialisation.
    pub fn info(&self) -> &BlkInfo {
        &self.info
    }

    /// How transfers are split.
    pub fn plan(&self) -> &RequestPlan {
        &self.plan
    }

    /// The underlying transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The request queue (for diagnostics).
    pub fn queue(&self) -> &Virtqueue {
        &self.queue
    }

    fn header_addr(&self, slot: u8) -> usize {
        self.request_page + usize::from(slot) * size_of::<BlkReqHeader>()
    }

    fn status_addr(&self, slot: u8) -> usize {
        self.request_page + STATUS_AREA + usize::from(slot)
    }

    /// Fill in slot `slot`'s header and reset its status byte.
    fn prepare(&mut self, slot: u8, req_type: u32, sector: u64) {
        let header = BlkReqHeader {
            req_type,
            reserved: 0,
            sector,
        };
        // SAFETY: `slot < MAX_SLOTS`, so header and status lie in the request
        // page (asserted at compile time), which the Dma contract gives us
        // exclusively; the device only reads it once the chain is published.
        unsafe {
            ptr::write_volatile(self.header_addr(slot) as *mut BlkReqHeader, header);
            ptr::write_volatile(self.status_addr(slot) as *mut u8, S_UNWRITTEN);
        }
    }

    fn read_status(&self, slot: u8) -> u8 {
        // SAFETY: in the request page as in `prepare`; called after the used
        // entry was observed (with an acquire fence), so the device is done.
        unsafe { ptr::read_volatile(self.status_addr(slot) as *const u8) }
    }

    /// Publish one request; `data` are its data segments.
    fn submit(
        &mut self,
        slot: u8,
        data: impl Iterator<Item = Segment> + Clone,
    ) -> Result<(), VirtioError> {
        let header = Segment {
            addr: self.header_addr(slot) as u64,
            len: size_of::<BlkReqHeader>() as u32,
            device_writes: false,
        };
        let status = Segment {
            addr: self.status_addr(slot) as u64,
            len: 1,
            device_writes: true,
        };
        let head = self
            .queue
            .add(iter::once(header).chain(data).chain(iter::once(status)))?;
        self.head_slot[usize::from(head)] = slot;
        Ok(())
    }

    /// The device misbehaved or hung: reset it so it stops touching the
    /// caller's buffers, and refuse further work.
    fn abandon(&mut self, why: VirtioError) -> BlockError {
        log::error!("virtio-blk: {why}; resetting device");
        self.abandoned = true;
        if self.transport.reset(&self.timeout).is_err() {
            log::error!("virtio-blk: device did not acknowledge reset");
        }
        match why {
            VirtioError::Timeout => BlockError::Timeout,
            _ => BlockError::Io(S_DEVICE_ABANDONED),
        }
    }

    /// Run requests for `len` bytes at `addr` (or one flush when `req_type`
    /// is `T_FLUSH`), keeping up to `plan.in_flight` outstanding.
    fn run(
        &mut self,
        req_type: u32,
        first_sector: u64,
        addr: u64,
        len: usize,
    ) -> Result<(), BlockError> {
        if self.abandoned {
            return Err(BlockError::Io(S_DEVICE_ABANDONED));
        }
        let device_writes = req_type == T_IN;
        let mut submitted = 0usize;
        let mut flush_pending = req_type == T_FLUSH;
        let mut in_flight = 0usize;
        let mut error = None;
        let mut deadline = self.timeout.start();
        loop {
            let mut added = false;
            while error.is_none() && (submitted < len || flush_pending) {
                let chunk = (len - submitted).min(self.plan.request_bytes);
                let segments = chunk.div_ceil(self.plan.segment_bytes as usize);
                if self.queue.num_free() < segments + 2 {
                    break;
                }
                let Some(slot) = self.free_slots.pop() else {
                    break;
                };
                let sector = first_sector + (submitted / SECTOR) as u64;
                self.prepare(slot, req_type, sector);
                let data = data_segments(
                    addr + submitted as u64,
                    chunk,
                    self.plan.segment_bytes,
                    device_writes,
                );
                if let Err(e) = self.submit(slot, data) {
                    return Err(self.abandon(e));
                }
                submitted += chunk;
                flush_pending = false;
                in_flight += 1;
                added = true;
            }
            if added && self.queue.should_notify() {
                self.transport.notify(self.queue.index());
            }
            if in_flight == 0 {
                // The plan makes every request fit an empty queue, so this
                // cannot stop early; never report a partial transfer as done.
                if error.is_none() && (submitted < len || flush_pending) {
                    return Err(BlockError::Io(S_DEVICE_ABANDONED));
                }
                break;
            }
            // Reap everything already complete before refilling, so refills
            // go out in batches under one notification.
            let mut progressed = false;
            loop {
                match self.queue.pop_used() {
                    Ok(Some(used)) => {
                        let slot = self.head_slot[usize::from(used.head)];
                        let status = self.read_status(slot);
                        if status != S_OK && error.is_none() {
                            log::warn!(
                                "virtio-blk: request type {req_type} failed with status {status}"
                            );
                            error = Some(BlockError::Io(status));
                        }
                        self.free_slots.push(slot);
                        in_flight -= 1;
                        progressed = true;
                    }
                    Ok(None) => break,
                    Err(e) => return Err(self.abandon(e)),
                }
            }
            if progressed {
                deadline.restart();
            } else if deadline.expired() {
                return Err(self.abandon(VirtioError::Timeout));
            }
        }
        error.map_or(Ok(()), Err)
    }

    fn sectors_per_block(&self) -> u64 {
        u64::from(self.info.block_size) / SECTOR as u64
    }
}

impl<T: Transport> BlockDevice for VirtioBlk<T> {
    fn block_size(&self) -> u32 {
        self.info.block_size
    }

    fn num_blocks(&self) -> u64 {
        self.info.capacity_sectors / self.sectors_per_block()
    }

    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        check_request(lba, buf.len(), self.block_size(), self.num_blocks())?;
        // The buffer's address is its physical address (identity mapping,
        // guaranteed by `new`'s caller); the device writes it directly.
        let addr = buf.as_mut_ptr() as u64;
        self.run(T_IN, lba * self.sectors_per_block(), addr, buf.len())
    }

    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        if self.info.read_only {
            return Err(BlockError::ReadOnly);
        }
        check_request(lba, buf.len(), self.block_size(), self.num_blocks())?;
        let addr = buf.as_ptr() as u64;
        self.run(T_OUT, lba * self.sectors_per_block(), addr, buf.len())
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        // Without VIRTIO_BLK_F_FLUSH the device writes through: nothing to do.
        if !self.info.flush || self.info.read_only {
            return Ok(());
        }
        self.run(T_FLUSH, 0, 0, 0)
    }

    fn read_only(&self) -> bool {
        self.info.read_only
    }
}

#[cfg(test)]
mod tests;
