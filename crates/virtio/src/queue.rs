//! Split virtqueues (virtio 1.2 §2.7).
//!
//! Memory layout (one contiguous allocation, as legacy virtio-mmio requires
//! and modern transports accept): descriptor table at the start, available
//! ring right behind it, used ring at the next 4096-byte boundary.
//!
//! The device shares the ring memory, so nothing read back from it is
//! trusted: free-list and chain bookkeeping live in driver-private vectors,
//! and used-ring entries are validated against them.

use alloc::vec;
use alloc::vec::Vec;
use core::ptr;
use core::sync::atomic::{fence, Ordering};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::{Dma, Transport, VirtioError, PAGE_SIZE};

/// A descriptor-table entry.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct Descriptor {
    /// Physical address of the buffer.
    pub addr: u64,
    /// Length in bytes.
    pub len: u32,
    /// `DESC_F_*` flags.
    pub flags: u16,
    /// Next descriptor when `DESC_F_NEXT` is set.
    pub next: u16,
}
const _: () = assert!(size_of::<Descriptor>() == 16);

/// A used-ring entry.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct UsedElem {
    /// Head descriptor of the completed chain.
    pub id: u32,
    /// Bytes the device wrote into the chain.
    pub len: u32,
}
const _: () = assert!(size_of::<UsedElem>() == 8);

/// The chain continues in `next`.
pub const DESC_F_NEXT: u16 = 1;
/// The device writes this buffer (otherwise it reads it).
pub const DESC_F_WRITE: u16 = 2;
/// Used-ring flag: the device asks not to be notified.
const USED_F_NO_NOTIFY: u16 = 1;

/// Largest queue Ember sets up: plenty for a polled driver, and keeps the
/// rings within a few pages.
pub const MAX_QUEUE_SIZE: u16 = 256;

/// One buffer of a descriptor chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Physical address.
    pub addr: u64,
    /// Length in bytes.
    pub len: u32,
    /// Whether the device writes it (device-readable otherwise).
    pub device_writes: bool,
}

/// A completed chain returned by [`Virtqueue::pop_used`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Used {
    /// Head descriptor, as returned by [`Virtqueue::add`].
    pub head: u16,
    /// Bytes written by the device (as reported; not trusted for safety).
    pub len: u32,
}

/// A split virtqueue owned by a driver.
#[derive(Debug)]
pub struct Virtqueue {
    index: u16,
    size: u16,
    desc: usize,
    avail: usize,
    used: usize,
    /// Free descriptor ids (a stack).
    free: Vec<u16>,
    /// Driver-private copy of each descriptor's `next` link.
    next: Vec<u16>,
    /// Descriptors in the chain headed by each id; 0 when not in flight.
    chain_len: Vec<u16>,
    /// Next available-ring index to publish.
    avail_idx: u16,
    /// Next used-ring index to consume.
    last_used: u16,
}

/// Byte offsets of the three parts of a queue of `size` entries.
pub(crate) fn layout(size: u16) -> (usize, usize, usize) {
    let n = usize::from(size);
    let avail = 16 * n;
    let avail_end = avail + 6 + 2 * n;
    let used = avail_end.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    let total = used + (6 + 8 * n).div_ceil(PAGE_SIZE) * PAGE_SIZE;
    (avail, used, total)
}

impl Virtqueue {
    /// Allocate queue `index` (at most `max_size` entries, further bounded by
    /// the device and [`MAX_QUEUE_SIZE`], rounded down to a power of two) and
    /// register it with the transport.
    pub fn new<T: Transport + ?Sized, D: Dma + ?Sized>(
        transport: &mut T,
        dma: &D,
        index: u16,
        max_size: u16,
    ) -> Result<Self, VirtioError> {
        let device_max = transport.max_queue_size(index);
        let limit = device_max.min(max_size).min(MAX_QUEUE_SIZE);
        if limit == 0 {
            return Err(VirtioError::QueueUnavailable(index));
        }
        // Split rings need a power of two; ring positions are `idx % size`,
        // which only stays consistent across the u16 wrap for powers of two.
        let size = 1u16 << (15 - limit.leading_zeros());
        let (avail_off, used_off, total) = layout(size);
        let base = dma
            .alloc_zeroed_pages(total / PAGE_SIZE)
            .ok_or(VirtioError::OutOfDmaMemory)?;
        let base = usize::try_from(base).map_err(|_| VirtioError::OutOfDmaMemory)?;
        if base == 0 || !base.is_multiple_of(PAGE_SIZE) || base.checked_add(total).is_none() {
            return Err(VirtioError::OutOfDmaMemory);
        }
        let q = Virtqueue {
            index,
            size,
            desc: base,
            avail: base + avail_off,
            used: base + used_off,
            free: (0..size).rev().collect(),
            next: vec![0; usize::from(size)],
            chain_len: vec![0; usize::from(size)],
            avail_idx: 0,
            last_used: 0,
        };
        transport.setup_queue(index, size, q.desc as u64, q.avail as u64, q.used as u64)?;
        Ok(q)
    }

    /// Queue index on the device.
    pub fn index(&self) -> u16 {
        self.index
    }

    /// Number of descriptors.
    pub fn size(&self) -> u16 {
        self.size
    }

    /// Descriptors currently free.
    pub fn num_free(&self) -> usize {
        self.free.len()
    }

    /// Physical addresses of (descriptor table, available ring, used ring).
    pub fn addresses(&self) -> (u64, u64, u64) {
        (self.desc as u64, self.avail as u64, self.used as u64)
    }

    /// Publish a chain of `segments` (in order) to the device; returns its
    /// head id. Does not notify: batch several chains, then notify once.
    pub fn add<I>(&mut self, segments: I) -> Result<u16, VirtioError>
    where
        I: IntoIterator<Item = Segment>,
        I::IntoIter: Clone,
    {
        let segments = segments.into_iter();
        let n = segments.clone().count();
        if n == 0 || n > self.free.len() {
            return Err(VirtioError::QueueFull);
        }
        let mut head = 0;
        let mut prev: Option<u16> = None;
        for (i, seg) in segments.enumerate() {
            // Cannot fail: `n <= free.len()` was checked above.
            let Some(id) = self.free.pop() else {
                return Err(VirtioError::QueueFull);
            };
            let mut flags = if seg.device_writes { DESC_F_WRITE } else { 0 };
            if i + 1 < n {
                flags |= DESC_F_NEXT;
            }
            // `next` is patched when the following descriptor is known.
            self.write_desc(
                id,
                Descriptor {
                    addr: seg.addr,
                    len: seg.len,
                    flags,
                    next: 0,
                },
            );
            match prev {
                None => head = id,
                Some(p) => {
                    self.next[usize::from(p)] = id;
                    self.write_desc_next(p, id);
                }
            }
            prev = Some(id);
        }
        self.chain_len[usize::from(head)] = n as u16;

        let slot = usize::from(self.avail_idx % self.size);
        // SAFETY: `avail` points to the available ring of this queue's DMA
        // allocation (Dma contract); `slot < size` so the entry at byte
        // 4 + 2 * slot lies inside it, 2-byte aligned.
        unsafe { ptr::write_volatile((self.avail + 4 + 2 * slot) as *mut u16, head) };
        // Descriptors and ring entry must be visible before the index moves.
        fence(Ordering::Release);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        // SAFETY: `avail + 2` is the ring's idx field, inside the allocation.
        unsafe { ptr::write_volatile((self.avail + 2) as *mut u16, self.avail_idx) };
        Ok(head)
    }

    /// Whether the device wants a notification for newly added chains.
    pub fn should_notify(&self) -> bool {
        // The index store must be globally visible before we read the flag
        // (and before the caller's notify write).
        fence(Ordering::SeqCst);
        // SAFETY: `used` is the used ring's flags field in our DMA allocation.
        let flags = unsafe { ptr::read_volatile(self.used as *const u16) };
        flags & USED_F_NO_NOTIFY == 0
    }

    /// Take the next completed chain, if any, and free its descriptors.
    ///
    /// Errors when the device reports something impossible (an index ahead
    /// by more than the queue size, a head not in flight); the queue should
    /// then be abandoned and the device reset.
    pub fn pop_used(&mut self) -> Result<Option<Used>, VirtioError> {
        // SAFETY: `used + 2` is the used ring's idx field in our DMA allocation.
        let device_idx = unsafe { ptr::read_volatile((self.used + 2) as *const u16) };
        if device_idx == self.last_used {
            return Ok(None);
        }
        if device_idx.wrapping_sub(self.last_used) > self.size {
            return Err(VirtioError::DeviceProtocol(
                "used index ran ahead of the queue",
            ));
        }
        // Read the entry (and the buffers it describes) only after the index.
        fence(Ordering::Acquire);
        let slot = usize::from(self.last_used % self.size);
        // SAFETY: entry `slot < size` of the used ring, at byte 4 + 8 * slot,
        // 4-byte aligned, inside our DMA allocation.
        let elem = unsafe { ptr::read_volatile((self.used + 4 + 8 * slot) as *const UsedElem) };
        let head = u16::try_from(elem.id).ok().filter(|&h| h < self.size);
        let Some(head) = head.filter(|&h| self.chain_len[usize::from(h)] != 0) else {
            return Err(VirtioError::DeviceProtocol(
                "used id is not an in-flight chain",
            ));
        };
        self.last_used = self.last_used.wrapping_add(1);
        let mut id = head;
        for _ in 0..self.chain_len[usize::from(head)] {
            self.free.push(id);
            id = self.next[usize::from(id)];
        }
        self.chain_len[usize::from(head)] = 0;
        Ok(Some(Used {
            head,
            len: elem.len,
        }))
    }

    fn write_desc(&mut self, id: u16, d: Descriptor) {
        debug_assert!(id < self.size);
        // SAFETY: `id < size` (ids come from our free list), so entry `id` of
        // the descriptor table lies in our DMA allocation, 16-byte aligned.
        unsafe { ptr::write_volatile((self.desc as *mut Descriptor).add(usize::from(id)), d) }
    }

    fn write_desc_next(&mut self, id: u16, next: u16) {
        // SAFETY: as in `write_desc`; `next` is at byte 14 of the entry.
        unsafe { ptr::write_volatile((self.desc + 16 * usize::from(id) + 14) as *mut u16, next) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{HostDma, RingView};

    struct NullTransport {
        max: u16,
        setup: Option<(u16, u16, u64, u64, u64)>,
    }
    impl Transport for NullTransport {
        fn device_type(&self) -> u32 {
            2
        }
        fn vendor_id(&self) -> u32 {
            0
        }
        fn is_modern(&self) -> bool {
            true
        }
        fn read_device_features(&mut self) -> u64 {
            0
        }
        fn write_driver_features(&mut self, _: u64) {}
        fn status(&mut self) -> u8 {
            0
        }
        fn set_status(&mut self, _: u8) {}
        fn max_queue_size(&mut self, _: u16) -> u16 {
            self.max
        }
        fn setup_queue(
            &mut self,
            i: u16,
            s: u16,
            d: u64,
            a: u64,
            u: u64,
        ) -> Result<(), VirtioError> {
            self.setup = Some((i, s, d, a, u));
            Ok(())
        }
        fn notify(&mut self, _: u16) {}
        fn config_generation(&mut self) -> u32 {
            0
        }
        fn config_read8(&mut self, _: usize) -> u8 {
            0
        }
        fn config_read16(&mut self, _: usize) -> u16 {
            0
        }
        fn config_read32(&mut self, _: usize) -> u32 {
            0
        }
    }

    #[test]
    fn layout_matches_legacy_formula() {
        // Legacy: used ring at align_up(16n + 6 + 2n, 4096).
        assert_eq!(layout(256), (4096, 8192, 12288));
        assert_eq!(layout(4), (64, 4096, 8192));
        assert_eq!(layout(1024), (16384, 20480, 20480 + 12288));
    }

    #[test]
    fn size_is_bounded_and_power_of_two() {
        let dma = HostDma;
        let mut t = NullTransport {
            max: 1000,
            setup: None,
        };
        let q = Virtqueue::new(&mut t, &dma, 3, 300).unwrap();
        assert_eq!(q.size(), 256);
        let (i, s, d, a, u) = t.setup.unwrap();
        assert_eq!((i, s), (3, 256));
        assert_eq!((a - d, u - d), (4096, 8192));
        let mut t = NullTransport {
            max: 100,
            setup: None,
        };
        assert_eq!(Virtqueue::new(&mut t, &dma, 0, 256).unwrap().size(), 64);
        let mut t = NullTransport {
            max: 0,
            setup: None,
        };
        assert_eq!(
            Virtqueue::new(&mut t, &dma, 0, 256).unwrap_err(),
            VirtioError::QueueUnavailable(0)
        );
    }

    #[test]
    fn chains_are_built_and_recycled_across_index_wraparound() {
        let dma = HostDma;
        let mut t = NullTransport {
            max: 4,
            setup: None,
        };
        let mut q = Virtqueue::new(&mut t, &dma, 0, 4).unwrap();
        let mut dev = RingView::new(q.addresses(), q.size());
        // Well past 65536 so both u16 indices wrap.
        for round in 0..70_000u32 {
            let n = (round % 3 + 1) as usize;
            let segs = (0..n).map(|i| Segment {
                addr: 0x1000 * (i as u64 + 1) + u64::from(round),
                len: i as u32 + 1,
                device_writes: i == n - 1,
            });
            let head = q.add(segs).unwrap();
            assert_eq!(q.num_free(), 4 - n);
            let heads = dev.take_avail();
            assert_eq!(heads, [head]);
            let chain = dev.chain(head);
            assert_eq!(chain.len(), n);
            for (i, d) in chain.iter().enumerate() {
                assert_eq!(d.addr, 0x1000 * (i as u64 + 1) + u64::from(round));
                assert_eq!(d.len, i as u32 + 1);
                assert_eq!(d.flags & DESC_F_WRITE != 0, i == n - 1);
            }
            dev.push_used(head, 7);
            assert_eq!(q.pop_used().unwrap(), Some(Used { head, len: 7 }));
            assert_eq!(q.pop_used().unwrap(), None);
            assert_eq!(q.num_free(), 4);
        }
    }

    #[test]
    fn full_queue_and_out_of_order_completion() {
        let dma = HostDma;
        let mut t = NullTransport {
            max: 8,
            setup: None,
        };
        let mut q = Virtqueue::new(&mut t, &dma, 0, 8).unwrap();
        let mut dev = RingView::new(q.addresses(), q.size());
        let seg = |a| Segment {
            addr: a,
            len: 1,
            device_writes: false,
        };
        let a = q.add([seg(1), seg(2), seg(3)]).unwrap();
        let b = q.add([seg(4), seg(5), seg(6)]).unwrap();
        assert_eq!(q.add([seg(7), seg(8), seg(9)]), Err(VirtioError::QueueFull));
        assert_eq!(q.add(core::iter::empty()), Err(VirtioError::QueueFull));
        assert_eq!(dev.take_avail(), [a, b]);
        dev.push_used(b, 0);
        dev.push_used(a, 0);
        assert_eq!(q.pop_used().unwrap().unwrap().head, b);
        assert_eq!(q.num_free(), 5);
        assert_eq!(q.pop_used().unwrap().unwrap().head, a);
        assert_eq!(q.num_free(), 8);
    }

    #[test]
    fn hostile_used_ring_is_rejected() {
        let dma = HostDma;
        let mut t = NullTransport {
            max: 8,
            setup: None,
        };
        let mut q = Virtqueue::new(&mut t, &dma, 0, 8).unwrap();
        let mut dev = RingView::new(q.addresses(), q.size());
        let head = q
            .add([Segment {
                addr: 1,
                len: 1,
                device_writes: true,
            }])
            .unwrap();
        dev.take_avail();
        // Out-of-range id, then an id that is not in flight.
        dev.push_used(200, 0);
        assert!(matches!(q.pop_used(), Err(VirtioError::DeviceProtocol(_))));
        let mut q2 = Virtqueue::new(&mut t, &dma, 0, 8).unwrap();
        let mut dev2 = RingView::new(q2.addresses(), q2.size());
        dev2.push_used((head + 1) % 8, 0);
        assert!(matches!(q2.pop_used(), Err(VirtioError::DeviceProtocol(_))));
        // Index jumping by more than the queue size.
        let mut q3 = Virtqueue::new(&mut t, &dma, 0, 8).unwrap();
        let dev3 = RingView::new(q3.addresses(), q3.size());
        dev3.set_used_idx(9);
        assert!(matches!(q3.pop_used(), Err(VirtioError::DeviceProtocol(_))));
    }
}
