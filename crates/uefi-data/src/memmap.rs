//! The UEFI memory map (UEFI spec 7.2) over Ember's [`MemoryMap`], page
//! allocation with UEFI's rules, and the bookkeeping of the pool allocator.
//!
//! Ember keeps one memory map for everything. UEFI allocations are
//! recorded as `MemKind::Allocated(efi_type)`, so `GetMemoryMap` reports
//! exactly the types callers asked for; Ember's own kinds translate as
//! [`efi_type`] documents.

use crate::status;
use alloc::collections::BTreeMap;
use core::fmt;
use ember_mem::{MemError, MemKind, MemoryMap, Region, Strategy, MAX_END, PAGE_SIZE};
use zerocopy::byteorder::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// An `EFI_MEMORY_TYPE` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EfiMemoryType(pub u32);

impl EfiMemoryType {
    /// `EfiReservedMemoryType`.
    pub const RESERVED: Self = Self(0);
    /// `EfiLoaderCode`.
    pub const LOADER_CODE: Self = Self(1);
    /// `EfiLoaderData`.
    pub const LOADER_DATA: Self = Self(2);
    /// `EfiBootServicesCode`.
    pub const BOOT_SERVICES_CODE: Self = Self(3);
    /// `EfiBootServicesData`.
    pub const BOOT_SERVICES_DATA: Self = Self(4);
    /// `EfiRuntimeServicesCode`.
    pub const RUNTIME_SERVICES_CODE: Self = Self(5);
    /// `EfiRuntimeServicesData`.
    pub const RUNTIME_SERVICES_DATA: Self = Self(6);
    /// `EfiConventionalMemory`: free RAM.
    pub const CONVENTIONAL: Self = Self(7);
    /// `EfiUnusableMemory`.
    pub const UNUSABLE: Self = Self(8);
    /// `EfiACPIReclaimMemory`.
    pub const ACPI_RECLAIM: Self = Self(9);
    /// `EfiACPIMemoryNVS`.
    pub const ACPI_NVS: Self = Self(10);
    /// `EfiMemoryMappedIO`.
    pub const MMIO: Self = Self(11);
    /// `EfiMemoryMappedIOPortSpace`.
    pub const MMIO_PORT_SPACE: Self = Self(12);
    /// `EfiPalCode`.
    pub const PAL_CODE: Self = Self(13);
    /// `EfiPersistentMemory`.
    pub const PERSISTENT: Self = Self(14);
    /// `EfiUnacceptedMemoryType` (UEFI 2.9).
    pub const UNACCEPTED: Self = Self(15);
    /// `EfiMaxMemoryType`: first value of the invalid range.
    pub const MAX: Self = Self(16);
    /// First OEM-defined type.
    pub const OEM_START: Self = Self(0x7000_0000);
    /// First OS-loader-defined type.
    pub const OS_START: Self = Self(0x8000_0000);

    /// Whether `AllocatePages`/`AllocatePool` accept this type: not free
    /// RAM, persistent or unaccepted memory, and not in the gap between
    /// `EfiMaxMemoryType` and the OEM range (spec 7.2, EFI_INVALID_PARAMETER).
    pub fn is_allocatable(self) -> bool {
        !(self == Self::CONVENTIONAL
            || self == Self::PERSISTENT
            || self == Self::UNACCEPTED
            || (self.0 >= Self::MAX.0 && self.0 < Self::OEM_START.0))
    }

    /// Whether the OS must keep this memory mapped for runtime services.
    pub fn is_runtime(self) -> bool {
        self == Self::RUNTIME_SERVICES_CODE
            || self == Self::RUNTIME_SERVICES_DATA
            || self == Self::PAL_CODE
    }
}

/// `EFI_MEMORY_UC`: uncacheable.
pub const EFI_MEMORY_UC: u64 = 0x1;
/// `EFI_MEMORY_WC`: write-combining.
pub const EFI_MEMORY_WC: u64 = 0x2;
/// `EFI_MEMORY_WT`: write-through.
pub const EFI_MEMORY_WT: u64 = 0x4;
/// `EFI_MEMORY_WB`: write-back.
pub const EFI_MEMORY_WB: u64 = 0x8;
/// `EFI_MEMORY_RUNTIME`: needs a virtual mapping for runtime services.
pub const EFI_MEMORY_RUNTIME: u64 = 0x8000_0000_0000_0000;
/// Cacheability capabilities of RAM.
pub const RAM_ATTRIBUTES: u64 = EFI_MEMORY_UC | EFI_MEMORY_WC | EFI_MEMORY_WT | EFI_MEMORY_WB;

/// The EFI type a region of `kind` is reported as.
///
/// - `Firmware` (Ember's image and stack) is `EfiBootServicesCode`: Ember
///   is gone after `ExitBootServices`. Whatever must survive as runtime
///   code or data is allocated as `Allocated(RUNTIME_SERVICES_*)`.
/// - `FirmwareData` (page tables, heap) is `EfiBootServicesData`.
/// - `Kernel`, `Initrd`, `BootParams`, `Loader` are `EfiLoaderData`: they
///   belong to the OS being booted.
/// - `Mmio` is `EfiMemoryMappedIO`; `Allocated(t)` is `t` itself.
pub fn efi_type(kind: MemKind) -> EfiMemoryType {
    match kind {
        MemKind::Free => EfiMemoryType::CONVENTIONAL,
        MemKind::Reserved => EfiMemoryType::RESERVED,
        MemKind::AcpiReclaim => EfiMemoryType::ACPI_RECLAIM,
        MemKind::AcpiNvs => EfiMemoryType::ACPI_NVS,
        MemKind::Unusable => EfiMemoryType::UNUSABLE,
        MemKind::Mmio => EfiMemoryType::MMIO,
        MemKind::Firmware => EfiMemoryType::BOOT_SERVICES_CODE,
        MemKind::FirmwareData => EfiMemoryType::BOOT_SERVICES_DATA,
        MemKind::Kernel | MemKind::Initrd | MemKind::BootParams | MemKind::Loader => {
            EfiMemoryType::LOADER_DATA
        }
        MemKind::Allocated(t) => EfiMemoryType(t),
    }
}

/// The attributes reported for a region of `kind`.
///
/// RAM of every kind is UC|WC|WT|WB (capabilities, not the current
/// setting). Runtime types add `EFI_MEMORY_RUNTIME`. Plain `Mmio` regions
/// (device windows the VMM reported) are listed as UC only, so an OS keeps
/// them reserved but does not map them for runtime services; MMIO that a
/// runtime service needs is recorded as `Allocated(MMIO)` (or
/// `Allocated(MMIO_PORT_SPACE)`) and gets UC|RUNTIME.
pub fn attributes(kind: MemKind) -> u64 {
    let t = efi_type(kind);
    match kind {
        MemKind::Mmio => EFI_MEMORY_UC,
        MemKind::Allocated(_)
            if t == EfiMemoryType::MMIO || t == EfiMemoryType::MMIO_PORT_SPACE =>
        {
            EFI_MEMORY_UC | EFI_MEMORY_RUNTIME
        }
        _ if t.is_runtime() => RAM_ATTRIBUTES | EFI_MEMORY_RUNTIME,
        _ => RAM_ATTRIBUTES,
    }
}

/// `EFI_MEMORY_DESCRIPTOR` (spec 7.2, `GetMemoryMap`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
pub struct EfiMemoryDescriptor {
    /// `EFI_MEMORY_TYPE`.
    pub ty: U32,
    /// Padding the spec's natural alignment puts before `PhysicalStart`.
    pub pad: U32,
    /// First byte, 4 KiB aligned.
    pub physical_start: U64,
    /// Virtual address (0 until `SetVirtualAddressMap`).
    pub virtual_start: U64,
    /// Length in 4 KiB pages.
    pub number_of_pages: U64,
    /// `EFI_MEMORY_*` capability bits.
    pub attribute: U64,
}
const _: () = assert!(core::mem::size_of::<EfiMemoryDescriptor>() == 40);

/// The descriptor size Ember reports: larger than the struct on purpose,
/// as OVMF does, so callers that ignore `DescriptorSize` fail early.
pub const DESCRIPTOR_SIZE: usize = 48;
/// `EFI_MEMORY_DESCRIPTOR_VERSION`.
pub const DESCRIPTOR_VERSION: u32 = 1;

/// Why a memory map could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// `out` is too small; `needed` bytes are required.
    BufferTooSmall { needed: usize },
    /// The descriptor size is below 40 bytes or not a multiple of 8.
    BadDescriptorSize { size: usize },
}

impl MapError {
    /// The `EFI_STATUS` for this error.
    pub fn efi_status(&self) -> usize {
        match self {
            MapError::BufferTooSmall { .. } => status::BUFFER_TOO_SMALL,
            MapError::BadDescriptorSize { .. } => status::INVALID_PARAMETER,
        }
    }
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::BufferTooSmall { needed } => write!(
                f,
                "memory map buffer too small: {needed} bytes needed (allocate a few descriptors more, the allocation itself may split a region)"
            ),
            MapError::BadDescriptorSize { size } => write!(
                f,
                "descriptor size {size} is invalid: must be at least 40 and a multiple of 8"
            ),
        }
    }
}

/// Calls `f` for each descriptor in address order, merging touching
/// regions with the same type and attributes. Address ranges the map does
/// not cover (holes, unreported device windows) are not listed.
fn each_descriptor(regions: &[Region], mut f: impl FnMut(EfiMemoryDescriptor)) {
    let mut pending: Option<(u64, u64, u32, u64)> = None;
    let emit = |p: (u64, u64, u32, u64), f: &mut dyn FnMut(EfiMemoryDescriptor)| {
        let (start, end, ty, attr) = p;
        f(EfiMemoryDescriptor {
            ty: U32::new(ty),
            pad: U32::new(0),
            physical_start: U64::new(start),
            virtual_start: U64::new(0),
            number_of_pages: U64::new(end.saturating_sub(start) / PAGE_SIZE),
            attribute: U64::new(attr),
        })
    };
    for r in regions {
        let ty = efi_type(r.kind).0;
        let attr = attributes(r.kind);
        match &mut pending {
            Some((_, end, t, a)) if *end == r.start && *t == ty && *a == attr => *end = r.end,
            _ => {
                if let Some(p) = pending.take() {
                    emit(p, &mut f);
                }
                pending = Some((r.start, r.end, ty, attr));
            }
        }
    }
    if let Some(p) = pending {
        emit(p, &mut f);
    }
}

/// Number of descriptors [`write_map`] produces for `map`.
pub fn descriptor_count<const N: usize>(map: &MemoryMap<N>) -> usize {
    let mut n = 0;
    each_descriptor(map.regions(), |_| n += 1);
    n
}

/// Writes `map` as `GetMemoryMap` output: sorted, non-overlapping
/// descriptors `descriptor_size` bytes apart (bytes past the 40-byte
/// struct are zero). Returns the bytes written.
pub fn write_map<const N: usize>(
    map: &MemoryMap<N>,
    out: &mut [u8],
    descriptor_size: usize,
) -> Result<usize, MapError> {
    let desc = core::mem::size_of::<EfiMemoryDescriptor>();
    if descriptor_size < desc || !descriptor_size.is_multiple_of(8) {
        return Err(MapError::BadDescriptorSize {
            size: descriptor_size,
        });
    }
    let needed = descriptor_count(map).saturating_mul(descriptor_size);
    if out.len() < needed {
        return Err(MapError::BufferTooSmall { needed });
    }
    let mut off = 0;
    each_descriptor(map.regions(), |d| {
        if let Some(slot) = out.get_mut(off..off + descriptor_size) {
            let (head, tail) = slot.split_at_mut(desc);
            head.copy_from_slice(d.as_bytes());
            tail.fill(0);
        }
        off += descriptor_size;
    });
    Ok(needed)
}

/// How `AllocatePages` chooses the address (`EFI_ALLOCATE_TYPE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocateType {
    /// Anywhere (Ember allocates top-down, possibly above 4 GiB).
    AnyPages,
    /// Entirely at or below this address (inclusive).
    MaxAddress(u64),
    /// Exactly at this address.
    Address(u64),
}

/// Why a UEFI page operation failed; [`PageError::efi_status`] gives the
/// status `AllocatePages`/`FreePages` return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageError {
    /// The memory type may not be allocated (spec 7.2).
    BadType(EfiMemoryType),
    /// Zero pages, an unaligned address or a range past the address space.
    BadRange(MemError),
    /// No free range satisfies the request.
    OutOfResources(MemError),
    /// `Address` allocation over memory that is not free, or a free of
    /// memory `AllocatePages` did not hand out.
    NotFound { addr: u64, pages: u64 },
    /// The map has no room for another region.
    MapFull(MemError),
}

impl PageError {
    /// The `EFI_STATUS` for this error.
    pub fn efi_status(&self) -> usize {
        match self {
            PageError::BadType(_) | PageError::BadRange(_) => status::INVALID_PARAMETER,
            PageError::OutOfResources(_) | PageError::MapFull(_) => status::OUT_OF_RESOURCES,
            PageError::NotFound { .. } => status::NOT_FOUND,
        }
    }
}

impl fmt::Display for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageError::BadType(t) => write!(f, "memory type {:#x} cannot be allocated", t.0),
            PageError::BadRange(e) | PageError::OutOfResources(e) | PageError::MapFull(e) => {
                write!(f, "{e}")
            }
            PageError::NotFound { addr, pages } => write!(
                f,
                "{pages} pages at {addr:#x} are not free (allocate) or were not allocated by AllocatePages (free)"
            ),
        }
    }
}

fn classify(e: MemError) -> PageError {
    match e {
        MemError::Full { .. } => PageError::MapFull(e),
        MemError::OutOfMemory { .. } => PageError::OutOfResources(e),
        MemError::NotFree { addr, pages, .. } | MemError::NotAllocated { addr, pages, .. } => {
            PageError::NotFound { addr, pages }
        }
        _ => PageError::BadRange(e),
    }
}

/// The memory map plus its `MapKey`: every change bumps the key, so
/// `ExitBootServices` can refuse a stale key (spec 7.4).
#[derive(Clone, Debug)]
pub struct UefiMemory<const N: usize> {
    map: MemoryMap<N>,
    key: usize,
}

impl<const N: usize> UefiMemory<N> {
    /// Wraps the firmware's memory map.
    pub fn new(map: MemoryMap<N>) -> Self {
        UefiMemory { map, key: 1 }
    }

    /// An empty map, for a `static` that is filled in at start-up.
    pub const fn empty() -> Self {
        UefiMemory {
            map: MemoryMap::new(),
            key: 1,
        }
    }

    /// The map.
    pub fn map(&self) -> &MemoryMap<N> {
        &self.map
    }

    /// Mutable access for the firmware's own changes; bumps the key
    /// because the caller may change the map.
    pub fn map_mut(&mut self) -> &mut MemoryMap<N> {
        self.bump();
        &mut self.map
    }

    /// The current `MapKey`.
    pub fn key(&self) -> usize {
        self.key
    }

    fn bump(&mut self) {
        self.key = self.key.wrapping_add(1);
    }

    /// `AllocatePages`.
    pub fn allocate_pages(
        &mut self,
        how: AllocateType,
        mem_type: EfiMemoryType,
        pages: u64,
    ) -> Result<u64, PageError> {
        if !mem_type.is_allocatable() {
            return Err(PageError::BadType(mem_type));
        }
        let kind = MemKind::Allocated(mem_type.0);
        let r = match how {
            AllocateType::AnyPages => {
                self.map
                    .allocate(pages, 0, u64::MAX, kind, Strategy::TopDown)
            }
            AllocateType::MaxAddress(max) => {
                self.map.allocate(pages, 0, max, kind, Strategy::TopDown)
            }
            AllocateType::Address(addr) => self.map.allocate_at(addr, pages, kind).map(|()| addr),
        };
        let addr = r.map_err(classify)?;
        self.bump();
        Ok(addr)
    }

    /// Like `AllocatePages(MaxAddress)`, with the start aligned to `align`
    /// bytes (a power of two; a page at least): what a PE image's
    /// SectionAlignment asks of its load address (arm64 kernels: 64 KiB).
    pub fn allocate_aligned(
        &mut self,
        mem_type: EfiMemoryType,
        pages: u64,
        align: u64,
        max: u64,
    ) -> Result<u64, PageError> {
        if !mem_type.is_allocatable() {
            return Err(PageError::BadType(mem_type));
        }
        let kind = MemKind::Allocated(mem_type.0);
        let addr = self
            .map
            .allocate(pages, align.max(PAGE_SIZE), max, kind, Strategy::TopDown)
            .map_err(classify)?;
        self.bump();
        Ok(addr)
    }

    /// `FreePages`: only ranges handed out as UEFI allocations (any
    /// `Allocated` type) can be freed; Ember's own memory cannot.
    pub fn free_pages(&mut self, addr: u64, pages: u64) -> Result<(), PageError> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(PageError::BadRange(MemError::Unaligned { addr }));
        }
        let end = pages
            .checked_mul(PAGE_SIZE)
            .and_then(|b| addr.checked_add(b))
            .filter(|&e| e <= MAX_END && pages != 0)
            .ok_or(PageError::BadRange(MemError::TooLarge { pages }))?;
        let mut cursor = addr;
        for r in self.map.regions() {
            if r.end <= cursor || cursor >= end {
                continue;
            }
            if r.start > cursor || !matches!(r.kind, MemKind::Allocated(_)) {
                break;
            }
            cursor = r.end;
        }
        if cursor < end {
            return Err(PageError::NotFound { addr, pages });
        }
        self.map.free(addr, pages).map_err(classify)?;
        self.bump();
        Ok(())
    }

    /// `GetMemoryMap`: writes descriptors and returns (bytes, map key).
    pub fn get_memory_map(
        &self,
        out: &mut [u8],
        descriptor_size: usize,
    ) -> Result<(usize, usize), MapError> {
        let n = write_map(&self.map, out, descriptor_size)?;
        Ok((n, self.key))
    }
}

/// `AllocatePool` granularity: UEFI pool memory is 8-byte aligned.
pub const POOL_ALIGN: u64 = 8;
/// Requests of at least this many bytes get pages of their own.
pub const POOL_LARGE: u64 = PAGE_SIZE;
/// Pages per pool chunk that small requests are carved from.
pub const POOL_CHUNK_PAGES: u64 = 4;
const CHUNK_BYTES: u64 = POOL_CHUNK_PAGES * PAGE_SIZE;

/// Why `FreePool` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// `addr` is not the start of a live pool allocation (unknown pointer
    /// or double free): `EFI_INVALID_PARAMETER`.
    UnknownAddress { addr: u64 },
}

impl PoolError {
    /// The `EFI_STATUS` for this error.
    pub fn efi_status(&self) -> usize {
        status::INVALID_PARAMETER
    }
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::UnknownAddress { addr } => write!(
                f,
                "FreePool({addr:#x}): not a live AllocatePool result (double free or foreign pointer?)"
            ),
        }
    }
}

#[derive(Clone, Debug)]
struct Chunk {
    mem_type: u32,
    /// Free ranges: start -> length.
    free: BTreeMap<u64, u64>,
    used: u64,
}

#[derive(Clone, Copy, Debug)]
struct PoolAlloc {
    size: u64,
    mem_type: u32,
    /// Base of the chunk it lives in, or `None` when it owns its pages.
    chunk: Option<u64>,
}

/// Pages the pool hands back to the page allocator after a free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReleasedPages {
    /// First byte.
    pub addr: u64,
    /// Number of 4 KiB pages.
    pub pages: u64,
}

/// Bookkeeping for `AllocatePool`/`FreePool`. Small requests are carved
/// from per-type chunks of [`POOL_CHUNK_PAGES`] pages (so every byte keeps
/// the memory type it was asked for); large ones get their own pages. All
/// metadata lives here, none in guest memory.
#[derive(Clone, Debug, Default)]
pub struct Pool {
    chunks: BTreeMap<u64, Chunk>,
    allocs: BTreeMap<u64, PoolAlloc>,
}

impl Pool {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// `AllocatePool`: returns an 8-byte aligned address, or `None` when
    /// `pages` (called as `pages(count, mem_type)`, returning a page-aligned
    /// base) has no memory. Zero-byte requests get a distinct 8-byte block.
    pub fn allocate(
        &mut self,
        size: u64,
        mem_type: u32,
        mut pages: impl FnMut(u64, u32) -> Option<u64>,
    ) -> Option<u64> {
        let size = size.max(1).checked_add(POOL_ALIGN - 1)? & !(POOL_ALIGN - 1);
        if size >= POOL_LARGE {
            let count = size.checked_add(PAGE_SIZE - 1)? / PAGE_SIZE;
            let base = pages(count, mem_type)?;
            if !base.is_multiple_of(PAGE_SIZE) || self.allocs.contains_key(&base) {
                return None;
            }
            self.allocs.insert(
                base,
                PoolAlloc {
                    size: count * PAGE_SIZE,
                    mem_type,
                    chunk: None,
                },
            );
            return Some(base);
        }
        let found = self
            .chunks
            .iter()
            .filter(|(_, c)| c.mem_type == mem_type)
            .find_map(|(&base, c)| {
                c.free
                    .iter()
                    .find(|(_, &len)| len >= size)
                    .map(|(&a, &len)| (base, a, len))
            });
        let (chunk_base, addr, len) = match found {
            Some(f) => f,
            None => {
                let base = pages(POOL_CHUNK_PAGES, mem_type)?;
                if !base.is_multiple_of(PAGE_SIZE) || self.chunks.contains_key(&base) {
                    return None;
                }
                let mut free = BTreeMap::new();
                free.insert(base, CHUNK_BYTES);
                self.chunks.insert(
                    base,
                    Chunk {
                        mem_type,
                        free,
                        used: 0,
                    },
                );
                (base, base, CHUNK_BYTES)
            }
        };
        let chunk = self.chunks.get_mut(&chunk_base)?;
        chunk.free.remove(&addr);
        if len > size {
            chunk.free.insert(addr + size, len - size);
        }
        chunk.used += size;
        self.allocs.insert(
            addr,
            PoolAlloc {
                size,
                mem_type,
                chunk: Some(chunk_base),
            },
        );
        Some(addr)
    }

    /// `FreePool`: forgets the allocation at `addr`. Returns pages the
    /// caller should now free in the memory map (a large allocation's own
    /// pages, or a chunk that became empty).
    pub fn free(&mut self, addr: u64) -> Result<Option<ReleasedPages>, PoolError> {
        let a = self
            .allocs
            .remove(&addr)
            .ok_or(PoolError::UnknownAddress { addr })?;
        let Some(chunk_base) = a.chunk else {
            return Ok(Some(ReleasedPages {
                addr,
                pages: a.size / PAGE_SIZE,
            }));
        };
        let Some(chunk) = self.chunks.get_mut(&chunk_base) else {
            return Ok(None);
        };
        chunk.used = chunk.used.saturating_sub(a.size);
        if chunk.used == 0 {
            self.chunks.remove(&chunk_base);
            return Ok(Some(ReleasedPages {
                addr: chunk_base,
                pages: POOL_CHUNK_PAGES,
            }));
        }
        // Coalesce with the free neighbours on either side.
        let (mut start, mut len) = (addr, a.size);
        if let Some((&ps, &pl)) = chunk.free.range(..addr).next_back() {
            if ps + pl == addr {
                chunk.free.remove(&ps);
                start = ps;
                len += pl;
            }
        }
        if let Some(nl) = chunk.free.remove(&(addr + a.size)) {
            len += nl;
        }
        chunk.free.insert(start, len);
        Ok(None)
    }

    /// Size (rounded up to 8 bytes, or whole pages) and memory type of the
    /// live allocation at `addr`.
    pub fn lookup(&self, addr: u64) -> Option<(u64, u32)> {
        self.allocs.get(&addr).map(|a| (a.size, a.mem_type))
    }

    /// Number of live allocations.
    pub fn len(&self) -> usize {
        self.allocs.len()
    }

    /// Whether there are no live allocations.
    pub fn is_empty(&self) -> bool {
        self.allocs.is_empty()
    }
}

#[cfg(test)]
mod tests;
