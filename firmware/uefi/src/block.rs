//! EFI_BLOCK_IO_PROTOCOL and EFI_DISK_IO_PROTOCOL over Ember's disks: one
//! instance for each whole disk and one for each partition (a window of it,
//! `LogicalPartition = TRUE`), as the UEFI spec's partition driver provides.

//!
//! Loaders read through these in small pieces (GRUB asks for 32 KiB at a
//! time while it reads a kernel from ext4), and every request is a
//! synchronous virtio-blk round trip. So the first instance made for a disk
//! slides a read cache under the disk itself ([`CachedDisk`]): a small read
//! that misses fetches an aligned chunk around it, growing from 128 KiB to
//! 1 MiB while a reader keeps streaming. Being under the shared disk, the
//! cache sees every access from every instance and from Ember's own FAT
//! code (keyed on the disk's absolute LBA, so partitions share it), and
//! writes and flushes invalidate what they touch.

pub use crate::disk::SharedDisk;
use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::ffi::c_void;
use ember_block::{BlockDevice, BlockError};
use r_efi::efi::{Lba, Status};
use r_efi::protocols::{block_io, disk_io};
use spin::Mutex;

/// Reads at least this big go straight to the device.
const SMALL_READ: usize = 64 * 1024;
/// Read-ahead for a miss that continues no cached stream.
const FIRST_CHUNK: usize = 128 * 1024;
/// Read-ahead doubles up to this while a reader streams.
const MAX_CHUNK: usize = 1024 * 1024;
/// Chunks kept per disk (a stream plus metadata elsewhere), least recently
/// used evicted.
const SLOTS: usize = 4;
/// Bytes a disk's cache may hold: 1/16 of Ember's heap, 256 KiB to 2 MiB.
fn budget() -> usize {
    let heap = crate::ram::heap_range().map_or(0, |&(a, b)| (b - a) as usize);
    (heap / 16).clamp(256 * 1024, 2 * MAX_CHUNK)
}

/// One cached chunk: blocks `[lba, lba + data.len() / block size)`.
struct Slot {
    lba: u64,
    blocks: u64,
    data: Vec<u8>,
    last_use: u64,
}

impl Slot {
    fn end(&self) -> u64 {
        self.lba + self.blocks
    }
}

/// A disk with a read-ahead cache for small reads. It holds only clean
/// copies: writes go through and drop the chunks they overlap, so a read
/// that bypasses the cache can never see older data than one that hits it.
struct CachedDisk {
    inner: Box<dyn BlockDevice>,
    slots: Vec<Slot>,
    tick: u64,
    budget: usize,
}

impl CachedDisk {
    fn new(inner: Box<dyn BlockDevice>) -> Self {
        CachedDisk {
            inner,
            slots: Vec::new(),
            tick: 0,
            budget: budget(),
        }
    }

    /// Drop every chunk overlapping blocks `[lba, end)`.
    fn invalidate(&mut self, lba: u64, end: u64) {
        self.slots.retain(|s| s.end() <= lba || s.lba >= end);
    }

    /// Serve a small read from the cache, filling a chunk on a miss.
    /// `None`: not cacheable (or the fill failed); read the device directly.
    fn cached_read(&mut self, lba: u64, buf: &mut [u8]) -> Option<()> {
        let bs = self.inner.block_size() as usize;
        if bs == 0 || buf.len() >= SMALL_READ || !buf.len().is_multiple_of(bs) {
            return None;
        }
        let end = lba.checked_add((buf.len() / bs) as u64)?;
        let disk_end = self.inner.num_blocks();
        if end > disk_end {
            return None;
        }
        self.tick += 1;
        let i = match self
            .slots
            .iter()
            .position(|s| s.lba <= lba && end <= s.end())
        {
            Some(i) => i,
            None => self.fill(lba, end, disk_end, bs)?,
        };
        let s = &mut self.slots[i];
        s.last_use = self.tick;
        let at = ((lba - s.lba) as usize) * bs;
        buf.copy_from_slice(s.data.get(at..at + buf.len())?);
        Some(())
    }

    /// Read the chunk for a miss on `[lba, end)` into a slot; its index.
    fn fill(&mut self, lba: u64, end: u64, disk_end: u64, bs: usize) -> Option<usize> {
        // A miss that starts in or right at the end of a chunk (so runs past
        // it) continues that stream with twice its read-ahead, in its place;
        // anything else starts small, aligned.
        let stream = self
            .slots
            .iter()
            .position(|s| s.lba <= lba && lba <= s.end());
        let (start, chunk) = match stream {
            Some(i) => (lba, (self.slots[i].data.len() * 2).min(MAX_CHUNK)),
            None => {
                let per = (FIRST_CHUNK / bs).max(1) as u64;
                (lba - lba % per, FIRST_CHUNK)
            }
        };
        let chunk = chunk.min(self.budget / 2).max(bs);
        let stop = (start + (chunk / bs) as u64).max(end).min(disk_end);
        let len = usize::try_from(stop - start).ok()?.checked_mul(bs)?;
        // Make room: reuse the stream's slot, else a new one while under the
        // limits, else the least recently used.
        let held: usize = self.slots.iter().map(|s| s.data.len()).sum();
        let i = match stream {
            Some(i) => i,
            None if self.slots.len() < SLOTS && held + len <= self.budget => {
                self.slots.push(Slot {
                    lba: 0,
                    blocks: 0,
                    data: Vec::new(),
                    last_use: 0,
                });
                self.slots.len() - 1
            }
            None => (0..self.slots.len()).min_by_key(|&i| self.slots[i].last_use)?,
        };
        let others = held - self.slots[i].data.len();
        if others + len > self.budget {
            self.slots.remove(i);
            return None;
        }
        // Out of the list while it is refilled: a failure leaves nothing
        // stale behind, and the buffer is exactly `len` (no hidden capacity
        // beyond the budget).
        let mut s = self.slots.swap_remove(i);
        if s.data.len() != len {
            s.data = Vec::new();
            s.data.try_reserve_exact(len).ok()?;
            s.data.resize(len, 0);
        }
        self.inner.read_blocks(start, &mut s.data).ok()?;
        s.lba = start;
        s.blocks = stop - start;
        self.slots.push(s);
        Some(self.slots.len() - 1)
    }
}

impl BlockDevice for CachedDisk {
    fn block_size(&self) -> u32 {
        self.inner.block_size()
    }
    fn num_blocks(&self) -> u64 {
        self.inner.num_blocks()
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        match self.cached_read(lba, buf) {
            Some(()) => Ok(()),
            None => self.inner.read_blocks(lba, buf),
        }
    }
    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        let bs = u64::from(self.inner.block_size().max(1));
        self.invalidate(lba, lba.saturating_add((buf.len() as u64).div_ceil(bs)));
        self.inner.write_blocks(lba, buf)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        self.slots.clear();
        self.inner.flush()
    }
    fn read_only(&self) -> bool {
        self.inner.read_only()
    }
}

/// Stands in for a disk for the instant its box is swapped.
struct Detached;

impl BlockDevice for Detached {
    fn block_size(&self) -> u32 {
        512
    }
    fn num_blocks(&self) -> u64 {
        0
    }
    fn read_blocks(&mut self, _: u64, _: &mut [u8]) -> Result<(), BlockError> {
        Err(BlockError::Io(0xfe))
    }
    fn write_blocks(&mut self, _: u64, _: &[u8]) -> Result<(), BlockError> {
        Err(BlockError::Io(0xfe))
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        Err(BlockError::Io(0xfe))
    }
    fn read_only(&self) -> bool {
        true
    }
}

/// Disks (by their shared cell's address) that already have a cache under them.
static CACHED: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// Put a [`CachedDisk`] under `disk` unless it has one. Disks live for the
/// whole boot, so their addresses identify them.
fn install_cache(disk: &SharedDisk) {
    let key = Rc::as_ptr(&disk.0) as *const () as usize;
    let mut cached = CACHED.lock();
    if cached.contains(&key) {
        return;
    }
    let Ok(mut cell) = disk.0.try_borrow_mut() else {
        return;
    };
    let inner = core::mem::replace(&mut *cell, Box::new(Detached));
    *cell = Box::new(CachedDisk::new(inner));
    cached.push(key);
}

/// BlockIo and DiskIo for one disk or partition. `#[repr(C)]` with the
/// protocols first: the `This` pointers callers pass are these addresses.
#[repr(C)]
pub struct BlockInstance {
    pub block_io: block_io::Protocol,
    pub disk_io: disk_io::Protocol,
    pub media: block_io::Media,
    disk: SharedDisk,
    /// First block of this window on the disk.
    start: u64,
}

fn status_of(e: BlockError) -> Status {
    match e {
        BlockError::ReadOnly => Status::WRITE_PROTECTED,
        BlockError::OutOfRange { .. } => Status::INVALID_PARAMETER,
        BlockError::Misaligned { .. } => Status::BAD_BUFFER_SIZE,
        _ => Status::DEVICE_ERROR,
    }
}

impl BlockInstance {
    /// A protocol instance for blocks `[start, start + blocks)` of `disk`.
    pub fn new(disk: SharedDisk, start: u64, blocks: u64, partition: bool) -> Box<BlockInstance> {
        install_cache(&disk);
        let bs = disk.block_size();
        let ro = disk.read_only();
        Box::new(BlockInstance {
            block_io: block_io::Protocol {
                // Revision 2 adds the LowestAlignedLba fields, which we fill.
                revision: 0x0002_0001,
                media: core::ptr::null_mut(),
                reset: bio_reset,
                read_blocks: bio_read,
                write_blocks: bio_write,
                flush_blocks: bio_flush,
            },
            disk_io: disk_io::Protocol {
                revision: disk_io::REVISION,
                read_disk: dio_read,
                write_disk: dio_write,
            },
            media: block_io::Media {
                media_id: 0,
                removable_media: false,
                media_present: true,
                logical_partition: partition,
                read_only: ro,
                write_caching: false,
                block_size: bs,
                io_align: 0,
                last_block: blocks.saturating_sub(1),
                lowest_aligned_lba: 0,
                logical_blocks_per_physical_block: 1,
                optimal_transfer_length_granularity: 0,
            },
            disk,
            start,
        })
    }

    /// Point `block_io.media` at our own media field (after boxing, so the
    /// address is final).
    pub fn fix_media(&mut self) {
        self.block_io.media = &mut self.media;
    }

    fn blocks(&self) -> u64 {
        self.media.last_block.wrapping_add(1)
    }

    fn check(&self, media_id: u32, lba: Lba, len: usize) -> Result<u64, Status> {
        if media_id != self.media.media_id {
            return Err(Status::MEDIA_CHANGED);
        }
        let bs = self.media.block_size as usize;
        if !len.is_multiple_of(bs) {
            return Err(Status::BAD_BUFFER_SIZE);
        }
        let n = (len / bs) as u64;
        match lba.checked_add(n) {
            Some(end) if end <= self.blocks() => Ok(self.start + lba),
            _ => Err(Status::INVALID_PARAMETER),
        }
    }

    /// Byte-granular read (DiskIo), through whole-block reads.
    fn read_bytes(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Status> {
        let bs = u64::from(self.media.block_size);
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or(Status::INVALID_PARAMETER)?;
        if end > self.blocks() * bs {
            return Err(Status::INVALID_PARAMETER);
        }
        let first = offset / bs;
        let last = end.div_ceil(bs);
        let head = (offset % bs) as usize;
        if head == 0 && (buf.len() as u64).is_multiple_of(bs) {
            return self
                .disk
                .read_blocks(self.start + first, buf)
                .map_err(status_of);
        }
        let mut tmp = vec![0u8; ((last - first) * bs) as usize];
        self.disk
            .read_blocks(self.start + first, &mut tmp)
            .map_err(status_of)?;
        buf.copy_from_slice(&tmp[head..head + buf.len()]);
        Ok(())
    }

    fn write_bytes(&mut self, offset: u64, data: &[u8]) -> Result<(), Status> {
        if self.media.read_only {
            return Err(Status::WRITE_PROTECTED);
        }
        let bs = u64::from(self.media.block_size);
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or(Status::INVALID_PARAMETER)?;
        if end > self.blocks() * bs {
            return Err(Status::INVALID_PARAMETER);
        }
        let first = offset / bs;
        let last = end.div_ceil(bs);
        let head = (offset % bs) as usize;
        let mut tmp = vec![0u8; ((last - first) * bs) as usize];
        if head != 0 || !(data.len() as u64).is_multiple_of(bs) {
            self.disk
                .read_blocks(self.start + first, &mut tmp)
                .map_err(status_of)?;
        }
        tmp[head..head + data.len()].copy_from_slice(data);
        self.disk
            .write_blocks(self.start + first, &tmp)
            .map_err(status_of)
    }
}

/// # Safety
/// `this` must be a `block_io` field of a live `BlockInstance`.
unsafe fn from_bio<'a>(this: *mut block_io::Protocol) -> &'a mut BlockInstance {
    // SAFETY: `block_io` is the first field of the #[repr(C)] instance.
    unsafe { &mut *(this as *mut BlockInstance) }
}

/// # Safety
/// `this` must be a `disk_io` field of a live `BlockInstance`.
unsafe fn from_dio<'a>(this: *mut disk_io::Protocol) -> &'a mut BlockInstance {
    let off = core::mem::offset_of!(BlockInstance, disk_io);
    // SAFETY: `disk_io` sits at `off` in the #[repr(C)] instance.
    unsafe { &mut *((this as *mut u8).sub(off) as *mut BlockInstance) }
}

fn done(r: Result<(), Status>) -> Status {
    r.err().unwrap_or(Status::SUCCESS)
}

extern "efiapi" fn bio_reset(_this: *mut block_io::Protocol, _ext: r_efi::efi::Boolean) -> Status {
    Status::SUCCESS
}

extern "efiapi" fn bio_read(
    this: *mut block_io::Protocol,
    media_id: u32,
    lba: Lba,
    size: usize,
    buf: *mut c_void,
) -> Status {
    if this.is_null() || (buf.is_null() && size != 0) {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: callers pass the instance they got from HandleProtocol.
    let me = unsafe { from_bio(this) };
    let at = match me.check(media_id, lba, size) {
        Ok(a) => a,
        Err(e) => return e,
    };
    if size == 0 {
        return Status::SUCCESS;
    }
    // SAFETY: the caller provides `size` writable bytes at `buf` (UEFI contract).
    let b = unsafe { core::slice::from_raw_parts_mut(buf as *mut u8, size) };
    done(me.disk.read_blocks(at, b).map_err(status_of))
}

extern "efiapi" fn bio_write(
    this: *mut block_io::Protocol,
    media_id: u32,
    lba: Lba,
    size: usize,
    buf: *mut c_void,
) -> Status {
    if this.is_null() || (buf.is_null() && size != 0) {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: callers pass the instance they got from HandleProtocol.
    let me = unsafe { from_bio(this) };
    if me.media.read_only {
        return Status::WRITE_PROTECTED;
    }
    let at = match me.check(media_id, lba, size) {
        Ok(a) => a,
        Err(e) => return e,
    };
    if size == 0 {
        return Status::SUCCESS;
    }
    // SAFETY: the caller provides `size` readable bytes at `buf`.
    let b = unsafe { core::slice::from_raw_parts(buf as *const u8, size) };
    done(me.disk.write_blocks(at, b).map_err(status_of))
}

extern "efiapi" fn bio_flush(this: *mut block_io::Protocol) -> Status {
    if this.is_null() {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: callers pass the instance they got from HandleProtocol.
    let me = unsafe { from_bio(this) };
    done(me.disk.flush().map_err(status_of))
}

extern "efiapi" fn dio_read(
    this: *mut disk_io::Protocol,
    media_id: u32,
    offset: u64,
    size: usize,
    buf: *mut c_void,
) -> Status {
    if this.is_null() || (buf.is_null() && size != 0) {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: callers pass the instance they got from HandleProtocol.
    let me = unsafe { from_dio(this) };
    if media_id != me.media.media_id {
        return Status::MEDIA_CHANGED;
    }
    if size == 0 {
        return Status::SUCCESS;
    }
    // SAFETY: the caller provides `size` writable bytes at `buf`.
    let b = unsafe { core::slice::from_raw_parts_mut(buf as *mut u8, size) };
    done(me.read_bytes(offset, b))
}

extern "efiapi" fn dio_write(
    this: *mut disk_io::Protocol,
    media_id: u32,
    offset: u64,
    size: usize,
    buf: *mut c_void,
) -> Status {
    if this.is_null() || (buf.is_null() && size != 0) {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: callers pass the instance they got from HandleProtocol.
    let me = unsafe { from_dio(this) };
    if media_id != me.media.media_id {
        return Status::MEDIA_CHANGED;
    }
    if size == 0 {
        return Status::SUCCESS;
    }
    // SAFETY: the caller provides `size` readable bytes at `buf`.
    let b = unsafe { core::slice::from_raw_parts(buf as *const u8, size) };
    done(me.write_bytes(offset, b))
}
