//! EFI_BLOCK_IO_PROTOCOL and EFI_DISK_IO_PROTOCOL over Ember's disks: one
//! instance for each whole disk and one for each partition (a window of it,
//! `LogicalPartition = TRUE`), as the UEFI spec's partition driver provides.

pub use crate::devices::SharedDisk;
use alloc::boxed::Box;
use alloc::vec;
use core::ffi::c_void;
use ember_block::{BlockDevice, BlockError};
use r_efi::efi::{Lba, Status};
use r_efi::protocols::{block_io, disk_io};

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
            disk_io: disk_io::Protocol { revision: disk_io::REVISION, read_disk: dio_read, write_disk: dio_write },
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
        let end = offset.checked_add(buf.len() as u64).ok_or(Status::INVALID_PARAMETER)?;
        if end > self.blocks() * bs {
            return Err(Status::INVALID_PARAMETER);
        }
        let first = offset / bs;
        let last = end.div_ceil(bs);
        let head = (offset % bs) as usize;
        if head == 0 && (buf.len() as u64).is_multiple_of(bs) {
            return self.disk.read_blocks(self.start + first, buf).map_err(status_of);
        }
        let mut tmp = vec![0u8; ((last - first) * bs) as usize];
        self.disk.read_blocks(self.start + first, &mut tmp).map_err(status_of)?;
        buf.copy_from_slice(&tmp[head..head + buf.len()]);
        Ok(())
    }

    fn write_bytes(&mut self, offset: u64, data: &[u8]) -> Result<(), Status> {
        if self.media.read_only {
            return Err(Status::WRITE_PROTECTED);
        }
        let bs = u64::from(self.media.block_size);
        let end = offset.checked_add(data.len() as u64).ok_or(Status::INVALID_PARAMETER)?;
        if end > self.blocks() * bs {
            return Err(Status::INVALID_PARAMETER);
        }
        let first = offset / bs;
        let last = end.div_ceil(bs);
        let head = (offset % bs) as usize;
        let mut tmp = vec![0u8; ((last - first) * bs) as usize];
        if head != 0 || !(data.len() as u64).is_multiple_of(bs) {
            self.disk.read_blocks(self.start + first, &mut tmp).map_err(status_of)?;
        }
        tmp[head..head + data.len()].copy_from_slice(data);
        self.disk.write_blocks(self.start + first, &tmp).map_err(status_of)
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

extern "efiapi" fn bio_read(this: *mut block_io::Protocol, media_id: u32, lba: Lba, size: usize, buf: *mut c_void) -> Status {
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

extern "efiapi" fn bio_write(this: *mut block_io::Protocol, media_id: u32, lba: Lba, size: usize, buf: *mut c_void) -> Status {
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

extern "efiapi" fn dio_read(this: *mut disk_io::Protocol, media_id: u32, offset: u64, size: usize, buf: *mut c_void) -> Status {
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

extern "efiapi" fn dio_write(this: *mut disk_io::Protocol, media_id: u32, offset: u64, size: usize, buf: *mut c_void) -> Status {
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
