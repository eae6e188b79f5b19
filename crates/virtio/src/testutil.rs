//! Host-side test helpers: a DMA allocator over the heap and a device-side
//! view of split-ring memory.

extern crate std;

use core::ptr;
use core::sync::atomic::{fence, Ordering};
use std::alloc::{alloc_zeroed, Layout};
use std::vec::Vec;

use crate::queue::{Descriptor, UsedElem, DESC_F_NEXT};
use crate::{Dma, PAGE_SIZE};

/// Leaks page-aligned zeroed heap memory: on the host, virtual == "physical".
pub struct HostDma;

// SAFETY: the memory is fresh, zeroed, page aligned, never freed (leaked),
// and the "device" in tests is host code using the same addresses.
unsafe impl Dma for HostDma {
    fn alloc_zeroed_pages(&self, pages: usize) -> Option<u64> {
        let layout = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).ok()?;
        // SAFETY: the layout has a non-zero size (pages > 0 in all callers).
        let p = unsafe { alloc_zeroed(layout) };
        (!p.is_null()).then_some(p as u64)
    }
}

/// The device's side of a split ring living in host memory.
pub struct RingView {
    desc: usize,
    avail: usize,
    used: usize,
    size: u16,
    last_avail: u16,
    used_idx: u16,
}

impl RingView {
    pub fn new((desc, avail, used): (u64, u64, u64), size: u16) -> Self {
        RingView {
            desc: desc as usize,
            avail: avail as usize,
            used: used as usize,
            size,
            last_avail: 0,
            used_idx: 0,
        }
    }

    /// Heads newly published in the available ring.
    pub fn take_avail(&mut self) -> Vec<u16> {
        // SAFETY: `avail` is the ring of a live queue allocated by HostDma.
        let idx = unsafe { ptr::read_volatile((self.avail + 2) as *const u16) };
        fence(Ordering::Acquire);
        let mut heads = Vec::new();
        while self.last_avail != idx {
            let slot = usize::from(self.last_avail % self.size);
            // SAFETY: entry `slot < size` of the available ring.
            heads.push(unsafe { ptr::read_volatile((self.avail + 4 + 2 * slot) as *const u16) });
            self.last_avail = self.last_avail.wrapping_add(1);
        }
        heads
    }

    /// The descriptors of the chain starting at `head` (bounded by the size).
    pub fn chain(&self, head: u16) -> Vec<Descriptor> {
        let mut out = Vec::new();
        let mut id = head;
        for _ in 0..self.size {
            assert!(id < self.size, "descriptor id out of range");
            // SAFETY: descriptor `id < size` of the table.
            let d = unsafe {
                ptr::read_volatile((self.desc as *const Descriptor).add(usize::from(id)))
            };
            out.push(d);
            if d.flags & DESC_F_NEXT == 0 {
                return out;
            }
            id = d.next;
        }
        panic!("descriptor chain loops");
    }

    /// Complete chain `id` having written `len` bytes.
    pub fn push_used(&mut self, id: u16, len: u32) {
        let slot = usize::from(self.used_idx % self.size);
        let elem = UsedElem {
            id: u32::from(id),
            len,
        };
        // SAFETY: entry `slot < size` of the used ring.
        unsafe { ptr::write_volatile((self.used + 4 + 8 * slot) as *mut UsedElem, elem) };
        fence(Ordering::Release);
        self.used_idx = self.used_idx.wrapping_add(1);
        self.set_used_idx(self.used_idx);
    }

    /// Overwrite the used ring's index (to model a misbehaving device).
    pub fn set_used_idx(&self, idx: u16) {
        // SAFETY: the used ring's idx field.
        unsafe { ptr::write_volatile((self.used + 2) as *mut u16, idx) };
    }
}
