//! Ember's physical memory map and page allocator.
//!
//! [`MemoryMap`] is a fixed-capacity, sorted list of non-overlapping
//! [`Region`]s. It is built from the hypervisor's E820 or PVH memory map,
//! then serves as the page allocator's bookkeeping: every allocation is a
//! region of an allocation [`MemKind`]. Nothing here needs a heap, because the
//! firmware uses it to carve out the heap in the first place.
//!
//! All RAM bookkeeping is in 4 KiB pages: usable RAM is shrunk to whole pages
//! and every other kind is grown to whole pages, so a partially reserved page
//! is never handed out.
#![no_std]
#![forbid(unsafe_code)]

use core::fmt;

mod e820;

pub use e820::{
    E820Entry, HvmMemmapEntry, E820_ACPI, E820_NVS, E820_RAM, E820_RESERVED, E820_UNUSABLE,
};

/// Size of a page, the allocation granule.
pub const PAGE_SIZE: u64 = 4096;

/// Largest exclusive end address a region can have. The last page of the
/// 64-bit space would need an end of 2^64, which does not fit in a `u64`, so
/// it is never tracked.
pub const MAX_END: u64 = !(PAGE_SIZE - 1);

/// What a range of physical address space is, or who owns it.
///
/// The first group comes from the platform's memory map; the second records
/// allocations made through [`MemoryMap`]. [`MemKind::Allocated`] carries an
/// arbitrary tag so that UEFI memory types (or other owners) can be recorded
/// later without changing this enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemKind {
    /// Usable RAM, available to the allocator.
    Free,
    /// Reserved by the platform.
    Reserved,
    /// ACPI tables; reclaimable by the OS after it has parsed them.
    AcpiReclaim,
    /// ACPI non-volatile storage; must be preserved.
    AcpiNvs,
    /// Defective memory.
    Unusable,
    /// Memory-mapped I/O.
    Mmio,
    /// Ember's own image and stack.
    Firmware,
    /// Ember's runtime data: page tables, heap.
    FirmwareData,
    /// A loaded OS kernel.
    Kernel,
    /// A loaded initial ramdisk.
    Initrd,
    /// The Linux zero page (boot_params).
    BootParams,
    /// Generic loader data (command line, setup data, ...).
    Loader,
    /// An allocation with an owner-defined tag (e.g. a UEFI memory type).
    Allocated(u32),
}

impl MemKind {
    /// Maps an E820/PVH type code to a kind; unknown codes are treated as
    /// reserved because claiming unknown memory as RAM could corrupt it.
    pub fn from_e820(kind: u32) -> Self {
        match kind {
            E820_RAM => MemKind::Free,
            E820_ACPI => MemKind::AcpiReclaim,
            E820_NVS => MemKind::AcpiNvs,
            E820_UNUSABLE => MemKind::Unusable,
            _ => MemKind::Reserved,
        }
    }

    /// The E820 type this kind is reported as to an OS booted natively.
    ///
    /// Everything Ember allocated for itself or for the loaded OS is
    /// reported as RAM: after the jump to the kernel Ember's code, stack,
    /// page tables and heap are dead (Linux builds its own page tables and
    /// GDT first thing), and Linux itself reserves its image, the initrd,
    /// the zero page and command line until it has consumed them.
    /// [`MemKind::Allocated`] tags are reported as reserved: their owner is
    /// not known here, and hiding some RAM is safe while handing out memory
    /// that is still in use is not.
    pub fn e820_type(self) -> u32 {
        match self {
            MemKind::Free
            | MemKind::Firmware
            | MemKind::FirmwareData
            | MemKind::Kernel
            | MemKind::Initrd
            | MemKind::BootParams
            | MemKind::Loader => E820_RAM,
            MemKind::Reserved | MemKind::Mmio | MemKind::Allocated(_) => E820_RESERVED,
            MemKind::AcpiReclaim => E820_ACPI,
            MemKind::AcpiNvs => E820_NVS,
            MemKind::Unusable => E820_UNUSABLE,
        }
    }

    /// Whether this kind records an allocation (can be produced by
    /// [`MemoryMap::allocate`] and undone by [`MemoryMap::free`]).
    pub fn is_allocated(self) -> bool {
        matches!(
            self,
            MemKind::Firmware
                | MemKind::FirmwareData
                | MemKind::Kernel
                | MemKind::Initrd
                | MemKind::BootParams
                | MemKind::Loader
                | MemKind::Allocated(_)
        )
    }

    /// Precedence when [`MemoryMap::add`] meets an overlap: the higher rank
    /// wins. Free RAM loses to everything; allocations lose to anything the
    /// platform says is not RAM; among platform kinds the order follows the
    /// E820 type numbers, as Linux's own map sanitizer does.
    fn rank(self) -> u8 {
        match self {
            MemKind::Free => 0,
            MemKind::Firmware
            | MemKind::FirmwareData
            | MemKind::Kernel
            | MemKind::Initrd
            | MemKind::BootParams
            | MemKind::Loader
            | MemKind::Allocated(_) => 1,
            MemKind::Reserved => 2,
            MemKind::Mmio => 3,
            MemKind::AcpiReclaim => 4,
            MemKind::AcpiNvs => 5,
            MemKind::Unusable => 6,
        }
    }
}

impl fmt::Display for MemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemKind::Free => f.write_str("free RAM"),
            MemKind::Reserved => f.write_str("reserved"),
            MemKind::AcpiReclaim => f.write_str("ACPI tables"),
            MemKind::AcpiNvs => f.write_str("ACPI NVS"),
            MemKind::Unusable => f.write_str("unusable"),
            MemKind::Mmio => f.write_str("MMIO"),
            MemKind::Firmware => f.write_str("firmware image"),
            MemKind::FirmwareData => f.write_str("firmware data"),
            MemKind::Kernel => f.write_str("kernel"),
            MemKind::Initrd => f.write_str("initrd"),
            MemKind::BootParams => f.write_str("boot parameters"),
            MemKind::Loader => f.write_str("loader data"),
            MemKind::Allocated(tag) => write!(f, "allocation (tag {tag:#x})"),
        }
    }
}

/// A half-open range `[start, end)` of physical memory of one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// What the range is.
    pub kind: MemKind,
}

impl Region {
    const EMPTY: Region = Region {
        start: 0,
        end: 0,
        kind: MemKind::Reserved,
    };

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the region covers no bytes (never true for regions stored in
    /// a [`MemoryMap`]).
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// Where [`MemoryMap::allocate`] looks first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Highest suitable address (keeps low memory free for things that need it).
    TopDown,
    /// Lowest suitable address.
    BottomUp,
}

/// Why a memory-map operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemError {
    /// The map would need more than its fixed number of regions.
    Full { capacity: usize },
    /// `start` is not below `end`.
    EmptyRange { start: u64, end: u64 },
    /// An allocation or free of zero pages.
    ZeroPages,
    /// The page count does not fit in the address space.
    TooLarge { pages: u64 },
    /// An address that must be page aligned is not.
    Unaligned { addr: u64 },
    /// The requested alignment is not a power of two.
    BadAlignment { align: u64 },
    /// The kind cannot be allocated (only allocation kinds can).
    NotAllocatable { kind: MemKind },
    /// No free range satisfies the size, alignment and address limits.
    OutOfMemory { pages: u64, max_addr: u64 },
    /// `allocate_at` found part of the range not free (`found` is `None`
    /// where the range is not in the map at all).
    NotFree {
        addr: u64,
        pages: u64,
        found: Option<MemKind>,
    },
    /// `free` found part of the range not allocated (already free, owned by
    /// the platform, or absent when `found` is `None`).
    NotAllocated {
        addr: u64,
        pages: u64,
        found: Option<MemKind>,
    },
}

impl fmt::Display for MemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MemError::Full { capacity } => {
                write!(f, "memory map full ({capacity} regions); the platform map is too fragmented")
            }
            MemError::EmptyRange { start, end } => {
                write!(f, "empty or inverted memory range {start:#x}..{end:#x}")
            }
            MemError::ZeroPages => f.write_str("request for zero pages"),
            MemError::TooLarge { pages } => {
                write!(f, "{pages} pages exceed the physical address space")
            }
            MemError::Unaligned { addr } => write!(f, "address {addr:#x} is not 4 KiB aligned"),
            MemError::BadAlignment { align } => {
                write!(f, "alignment {align:#x} is not a power of two")
            }
            MemError::NotAllocatable { kind } => write!(f, "cannot allocate memory as {kind}"),
            MemError::OutOfMemory { pages, max_addr } => write!(
                f,
                "out of memory: no free range of {pages} pages below {max_addr:#x}; give the VM more RAM"
            ),
            MemError::NotFree { addr, pages, found } => {
                write!(f, "{pages} pages at {addr:#x} are not free: ")?;
                match found {
                    Some(k) => write!(f, "overlaps {k}"),
                    None => f.write_str("not RAM in the memory map"),
                }
            }
            MemError::NotAllocated { addr, pages, found } => {
                write!(f, "cannot free {pages} pages at {addr:#x}: ")?;
                match found {
                    Some(MemKind::Free) => f.write_str("already free (double free?)"),
                    Some(k) => write!(f, "range holds {k}, which was not allocated"),
                    None => f.write_str("not in the memory map"),
                }
            }
        }
    }
}

/// Collects regions in address order, merging touching regions of the same
/// kind, into a caller-provided buffer.
struct Sink<'a> {
    out: &'a mut [Region],
    count: usize,
    pending: Option<Region>,
    overflow: bool,
}

impl<'a> Sink<'a> {
    fn new(out: &'a mut [Region]) -> Self {
        Sink {
            out,
            count: 0,
            pending: None,
            overflow: false,
        }
    }

    fn push(&mut self, start: u64, end: u64, kind: MemKind) {
        if start >= end {
            return;
        }
        if let Some(p) = &mut self.pending {
            if p.end == start && p.kind == kind {
                p.end = end;
                return;
            }
        }
        self.flush();
        self.pending = Some(Region { start, end, kind });
    }

    fn flush(&mut self) {
        if let Some(p) = self.pending.take() {
            match self.out.get_mut(self.count) {
                Some(slot) => *slot = p,
                None => self.overflow = true,
            }
            self.count += 1;
        }
    }

    /// Number of regions written, or `None` if the buffer was too small.
    fn finish(mut self) -> Option<usize> {
        self.flush();
        (!self.overflow).then_some(self.count)
    }
}

fn align_down(x: u64, align: u64) -> u64 {
    x & !(align - 1)
}

fn align_up(x: u64, align: u64) -> Option<u64> {
    x.checked_add(align - 1).map(|v| v & !(align - 1))
}

/// Bytes in `pages` pages, rejecting zero and overflow.
fn pages_to_bytes(pages: u64) -> Result<u64, MemError> {
    if pages == 0 {
        return Err(MemError::ZeroPages);
    }
    match pages.checked_mul(PAGE_SIZE) {
        Some(b) if b <= MAX_END => Ok(b),
        _ => Err(MemError::TooLarge { pages }),
    }
}

/// A fixed-capacity physical memory map holding at most `N` regions.
///
/// Invariants: regions are sorted by address, do not overlap, are page
/// aligned, and touching regions of the same kind are merged. Operations
/// that would break capacity fail with [`MemError::Full`] and leave the map
/// unchanged. Updates build the new list in a stack buffer of `N` regions
/// (24 bytes each), so keep `N` modest on small stacks.
#[derive(Clone)]
pub struct MemoryMap<const N: usize> {
    regions: [Region; N],
    len: usize,
}

impl<const N: usize> Default for MemoryMap<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Debug for MemoryMap<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.regions()).finish()
    }
}

impl<const N: usize> MemoryMap<N> {
    /// An empty map.
    pub const fn new() -> Self {
        MemoryMap {
            regions: [Region::EMPTY; N],
            len: 0,
        }
    }

    /// Builds a map from an E820 table. Overlapping, unsorted, empty and
    /// wrapping entries are tolerated (see [`MemoryMap::add_firmware_range`]).
    pub fn from_e820(entries: &[E820Entry]) -> Result<Self, MemError> {
        let mut map = Self::new();
        for e in entries {
            map.add_firmware_range(e.addr.get(), e.size.get(), e.kind.get())?;
        }
        Ok(map)
    }

    /// Builds a map from a PVH `hvm_memmap_table`, with the same tolerance as
    /// [`MemoryMap::from_e820`].
    pub fn from_hvm_memmap(entries: &[HvmMemmapEntry]) -> Result<Self, MemError> {
        let mut map = Self::new();
        for e in entries {
            map.add_firmware_range(e.addr.get(), e.size.get(), e.kind.get())?;
        }
        Ok(map)
    }

    /// Adds one platform memory-map entry given as base, size and E820 type.
    /// Zero-size entries are ignored and entries that run past the top of
    /// the address space are clamped, because firmware tables are input we
    /// do not control. Fails only when the map is full.
    pub fn add_firmware_range(
        &mut self,
        addr: u64,
        size: u64,
        e820_type: u32,
    ) -> Result<(), MemError> {
        let end = addr.saturating_add(size);
        if end <= addr {
            return Ok(());
        }
        self.add(addr, end, MemKind::from_e820(e820_type))
    }

    /// Records `[start, end)` as `kind`.
    ///
    /// Free RAM is shrunk to whole pages (a partial page is not usable);
    /// every other kind is grown to whole pages. Where the range overlaps
    /// existing regions the higher-precedence kind keeps the overlap: free
    /// RAM < allocations < reserved < MMIO < ACPI < NVS < unusable, with a
    /// newly added region winning ties. Use [`MemoryMap::allocate_at`] and
    /// [`MemoryMap::free`] to change allocations.
    pub fn add(&mut self, start: u64, end: u64, kind: MemKind) -> Result<(), MemError> {
        if start >= end {
            return Err(MemError::EmptyRange { start, end });
        }
        let (s, e) = if kind == MemKind::Free {
            match align_up(start, PAGE_SIZE) {
                Some(s) => (s, align_down(end.min(MAX_END), PAGE_SIZE)),
                None => return Ok(()),
            }
        } else {
            let e = align_up(end, PAGE_SIZE).unwrap_or(MAX_END).min(MAX_END);
            (align_down(start, PAGE_SIZE), e)
        };
        if s >= e {
            return Ok(());
        }
        self.paint(s, e, kind, false)
    }

    /// The regions, sorted by address.
    pub fn regions(&self) -> &[Region] {
        self.regions.get(..self.len).unwrap_or(&[])
    }

    /// Total bytes of free RAM.
    pub fn total_free(&self) -> u64 {
        self.regions()
            .iter()
            .filter(|r| r.kind == MemKind::Free)
            .fold(0u64, |acc, r| acc.saturating_add(r.len()))
    }

    /// The kind of the byte at `addr`, or `None` if the map does not cover it.
    pub fn kind_at(&self, addr: u64) -> Option<MemKind> {
        self.regions()
            .iter()
            .find(|r| r.start <= addr && addr < r.end)
            .map(|r| r.kind)
    }

    /// Allocates `pages` pages aligned to `align` (a power of two, or zero;
    /// values below 4 KiB mean page alignment) lying entirely at or below
    /// `max_addr` (inclusive, like UEFI's `AllocateMaxAddress`; pass
    /// `u64::MAX` for no limit). Returns the base address.
    pub fn allocate(
        &mut self,
        pages: u64,
        align: u64,
        max_addr: u64,
        kind: MemKind,
        strategy: Strategy,
    ) -> Result<u64, MemError> {
        self.allocate_in_range(pages, align, 0, max_addr, kind, strategy)
    }

    /// Like [`MemoryMap::allocate`], but the allocation also starts at or
    /// above `min_addr`.
    pub fn allocate_in_range(
        &mut self,
        pages: u64,
        align: u64,
        min_addr: u64,
        max_addr: u64,
        kind: MemKind,
        strategy: Strategy,
    ) -> Result<u64, MemError> {
        if !kind.is_allocated() {
            return Err(MemError::NotAllocatable { kind });
        }
        let size = pages_to_bytes(pages)?;
        // Zero means "no constraint" like any value below a page.
        if align != 0 && !align.is_power_of_two() {
            return Err(MemError::BadAlignment { align });
        }
        let align = align.max(PAGE_SIZE);
        let limit = max_addr.saturating_add(1).min(MAX_END);
        let fits = |r: &Region| -> Option<u64> {
            if r.kind != MemKind::Free {
                return None;
            }
            let lo = r.start.max(min_addr);
            let hi = r.end.min(limit);
            let top = hi.checked_sub(size)?;
            if top < lo {
                return None;
            }
            let cand = match strategy {
                Strategy::TopDown => align_down(top, align),
                Strategy::BottomUp => align_up(lo, align)?,
            };
            (cand >= lo && cand <= top).then_some(cand)
        };
        let found = match strategy {
            Strategy::TopDown => self.regions().iter().rev().find_map(fits),
            Strategy::BottomUp => self.regions().iter().find_map(fits),
        };
        let base = found.ok_or(MemError::OutOfMemory { pages, max_addr })?;
        self.paint(base, base + size, kind, true)?;
        Ok(base)
    }

    /// Allocates exactly `[addr, addr + pages * 4 KiB)` as `kind`; fails
    /// unless every byte of it is free RAM.
    pub fn allocate_at(&mut self, addr: u64, pages: u64, kind: MemKind) -> Result<(), MemError> {
        if !kind.is_allocated() {
            return Err(MemError::NotAllocatable { kind });
        }
        let end = self.checked_range(addr, pages)?;
        self.covered_by(addr, end, |k| k == MemKind::Free)
            .map_err(|found| MemError::NotFree { addr, pages, found })?;
        self.paint(addr, end, kind, true)
    }

    /// Returns `[addr, addr + pages * 4 KiB)` to free RAM; fails unless every
    /// byte of it is currently allocated (so double frees and frees of
    /// platform-owned memory are caught).
    pub fn free(&mut self, addr: u64, pages: u64) -> Result<(), MemError> {
        let end = self.checked_range(addr, pages)?;
        self.covered_by(addr, end, MemKind::is_allocated)
            .map_err(|found| MemError::NotAllocated { addr, pages, found })?;
        self.paint(addr, end, MemKind::Free, true)
    }

    /// Writes the map as an E820 table for an OS (see [`MemKind::e820_type`]),
    /// merging touching entries of the same type. Returns the number of
    /// entries written; if `out` is shorter than [`MemoryMap::e820_len`] the
    /// highest ranges are left out, so callers should check.
    pub fn to_e820(&self, out: &mut [E820Entry]) -> usize {
        let mut n = 0;
        self.each_e820(|start, end, kind| {
            if let Some(slot) = out.get_mut(n) {
                *slot = E820Entry::new(start, end - start, kind);
                n += 1;
            }
        });
        n
    }

    /// Number of entries [`MemoryMap::to_e820`] needs.
    pub fn e820_len(&self) -> usize {
        let mut n = 0;
        self.each_e820(|_, _, _| n += 1);
        n
    }

    fn each_e820(&self, mut f: impl FnMut(u64, u64, u32)) {
        let mut pending: Option<(u64, u64, u32)> = None;
        for r in self.regions() {
            let t = r.kind.e820_type();
            match &mut pending {
                Some((_, end, kind)) if *end == r.start && *kind == t => *end = r.end,
                _ => {
                    if let Some((s, e, k)) = pending {
                        f(s, e, k);
                    }
                    pending = Some((r.start, r.end, t));
                }
            }
        }
        if let Some((s, e, k)) = pending {
            f(s, e, k);
        }
    }

    /// Validates an address/page-count pair and returns the exclusive end.
    fn checked_range(&self, addr: u64, pages: u64) -> Result<u64, MemError> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(MemError::Unaligned { addr });
        }
        let size = pages_to_bytes(pages)?;
        match addr.checked_add(size) {
            Some(end) if end <= MAX_END => Ok(end),
            _ => Err(MemError::TooLarge { pages }),
        }
    }

    /// Checks that `[start, end)` is covered without gaps by regions whose
    /// kind satisfies `ok`; on failure returns the offending kind, or `None`
    /// for a gap.
    fn covered_by(
        &self,
        start: u64,
        end: u64,
        ok: impl Fn(MemKind) -> bool,
    ) -> Result<(), Option<MemKind>> {
        let mut cursor = start;
        for r in self.regions() {
            if r.end <= cursor {
                continue;
            }
            if r.start > cursor {
                // Either a hole inside the range or the range ends before r.
                break;
            }
            if !ok(r.kind) {
                return Err(Some(r.kind));
            }
            cursor = r.end;
            if cursor >= end {
                return Ok(());
            }
        }
        Err(None)
    }

    /// Overlays `[start, end)` (page aligned, non-empty) with `kind`. Unless
    /// `force`, existing regions of higher rank keep their overlap. The new
    /// list is built on the side so a capacity failure changes nothing.
    fn paint(&mut self, start: u64, end: u64, kind: MemKind, force: bool) -> Result<(), MemError> {
        let mut scratch = [Region::EMPTY; N];
        let mut sink = Sink::new(&mut scratch);
        // Lowest address of the new range not yet emitted.
        let mut cursor = start;
        for r in self.regions() {
            if r.end <= start {
                sink.push(r.start, r.end, r.kind);
                continue;
            }
            if r.start >= end {
                sink.push(cursor, end, kind);
                cursor = end;
                sink.push(r.start, r.end, r.kind);
                continue;
            }
            sink.push(cursor, r.start, kind);
            sink.push(r.start, start, r.kind);
            let lo = r.start.max(start);
            let hi = r.end.min(end);
            let winner = if force || kind.rank() >= r.kind.rank() {
                kind
            } else {
                r.kind
            };
            sink.push(lo, hi, winner);
            sink.push(end, r.end, r.kind);
            cursor = hi;
        }
        sink.push(cursor, end, kind);
        let count = sink.finish().ok_or(MemError::Full { capacity: N })?;
        self.regions = scratch;
        self.len = count;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
