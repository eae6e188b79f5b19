//! The block-device interface every storage layer in Ember is written against.
//!
//! Drivers (virtio-blk) implement [`BlockDevice`]; partition tables and
//! filesystems consume it. [`Slice`] narrows a device to a partition. With the
//! `std` feature, [`MemDisk`] and [`FileDisk`] provide fakes for host tests.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

use core::fmt;

/// Why a block operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockError {
    /// The request reaches past the end of the device.
    OutOfRange {
        lba: u64,
        blocks: u64,
        capacity: u64,
    },
    /// The buffer length is not a whole number of blocks.
    Misaligned { len: usize, block_size: u32 },
    /// A write or flush on a read-only device.
    ReadOnly,
    /// The device reported an I/O error (status byte, driver specific).
    Io(u8),
    /// The device did not answer in time.
    Timeout,
    /// The device does not implement the operation.
    Unsupported,
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockError::OutOfRange {
                lba,
                blocks,
                capacity,
            } => write!(
                f,
                "blocks {lba}..{} beyond end of device ({capacity} blocks)",
                lba.saturating_add(*blocks)
            ),
            BlockError::Misaligned { len, block_size } => {
                write!(
                    f,
                    "buffer of {len} bytes is not a multiple of {block_size}-byte blocks"
                )
            }
            BlockError::ReadOnly => f.write_str("device is read-only"),
            BlockError::Io(s) => write!(f, "I/O error (status {s})"),
            BlockError::Timeout => f.write_str("device timed out"),
            BlockError::Unsupported => f.write_str("operation not supported"),
        }
    }
}

/// A random-access device made of fixed-size blocks.
///
/// `read_blocks`/`write_blocks` take buffers that are a whole number of
/// blocks; implementations should service large buffers in as few device
/// requests as possible (callers read whole files in one call).
pub trait BlockDevice {
    /// Bytes per block (512 for every device Ember meets today).
    fn block_size(&self) -> u32;
    /// Number of blocks.
    fn num_blocks(&self) -> u64;
    /// Read `buf.len() / block_size` blocks starting at `lba`.
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError>;
    /// Write `buf.len() / block_size` blocks starting at `lba`.
    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError>;
    /// Make completed writes durable.
    fn flush(&mut self) -> Result<(), BlockError>;
    /// Whether writes are refused.
    fn read_only(&self) -> bool {
        false
    }
    /// Size in bytes.
    fn size_bytes(&self) -> u64 {
        self.num_blocks()
            .saturating_mul(u64::from(self.block_size()))
    }
}

impl<T: BlockDevice + ?Sized> BlockDevice for &mut T {
    fn block_size(&self) -> u32 {
        (**self).block_size()
    }
    fn num_blocks(&self) -> u64 {
        (**self).num_blocks()
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        (**self).read_blocks(lba, buf)
    }
    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        (**self).write_blocks(lba, buf)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        (**self).flush()
    }
    fn read_only(&self) -> bool {
        (**self).read_only()
    }
}

/// Check a request against a device's geometry; returns the block count.
pub fn check_request(
    lba: u64,
    len: usize,
    block_size: u32,
    capacity: u64,
) -> Result<u64, BlockError> {
    let bs = block_size as usize;
    if bs == 0 || !len.is_multiple_of(bs) {
        return Err(BlockError::Misaligned { len, block_size });
    }
    let blocks = (len / bs) as u64;
    match lba.checked_add(blocks) {
        Some(end) if end <= capacity => Ok(blocks),
        _ => Err(BlockError::OutOfRange {
            lba,
            blocks,
            capacity,
        }),
    }
}

/// A window `[start, start + len)` (in blocks) of another device: a partition.
pub struct Slice<D> {
    inner: D,
    start: u64,
    len: u64,
}

impl<D: BlockDevice> Slice<D> {
    /// A view of `len` blocks starting at `start`; fails if it does not fit.
    pub fn new(inner: D, start: u64, len: u64) -> Result<Self, BlockError> {
        let cap = inner.num_blocks();
        match start.checked_add(len) {
            Some(end) if end <= cap => Ok(Slice { inner, start, len }),
            _ => Err(BlockError::OutOfRange {
                lba: start,
                blocks: len,
                capacity: cap,
            }),
        }
    }
    /// First block of the window on the underlying device.
    pub fn start(&self) -> u64 {
        self.start
    }
    /// The underlying device.
    pub fn into_inner(self) -> D {
        self.inner
    }
    /// Borrow the underlying device.
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }
}

impl<D: BlockDevice> BlockDevice for Slice<D> {
    fn block_size(&self) -> u32 {
        self.inner.block_size()
    }
    fn num_blocks(&self) -> u64 {
        self.len
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        check_request(lba, buf.len(), self.block_size(), self.len)?;
        self.inner.read_blocks(self.start + lba, buf)
    }
    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        check_request(lba, buf.len(), self.block_size(), self.len)?;
        self.inner.write_blocks(self.start + lba, buf)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        self.inner.flush()
    }
    fn read_only(&self) -> bool {
        self.inner.read_only()
    }
}

#[cfg(feature = "std")]
mod fakes;
#[cfg(feature = "std")]
pub use fakes::{FileDisk, MemDisk};
