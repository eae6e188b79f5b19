//! Host-side fakes: a disk in memory and a disk in a file.

use crate::{check_request, BlockDevice, BlockError};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::vec::Vec;

/// A disk held in a `Vec<u8>`; counts requests so tests can check batching.
#[derive(Clone)]
pub struct MemDisk {
    pub data: Vec<u8>,
    pub block_size: u32,
    pub read_only: bool,
    /// Number of `read_blocks` calls served.
    pub reads: usize,
    /// Number of `write_blocks` calls served.
    pub writes: usize,
}

impl MemDisk {
    /// A zeroed disk of `blocks` 512-byte blocks.
    pub fn new(blocks: u64) -> Self {
        Self::from_bytes(vec![0; (blocks * 512) as usize])
    }
    /// A disk over existing bytes (padded up to a whole block).
    pub fn from_bytes(mut data: Vec<u8>) -> Self {
        let rem = data.len() % 512;
        if rem != 0 {
            data.resize(data.len() + 512 - rem, 0);
        }
        MemDisk {
            data,
            block_size: 512,
            read_only: false,
            reads: 0,
            writes: 0,
        }
    }
}

impl BlockDevice for MemDisk {
    fn block_size(&self) -> u32 {
        self.block_size
    }
    fn num_blocks(&self) -> u64 {
        (self.data.len() / self.block_size as usize) as u64
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        check_request(lba, buf.len(), self.block_size, self.num_blocks())?;
        let off = lba as usize * self.block_size as usize;
        buf.copy_from_slice(&self.data[off..off + buf.len()]);
        self.reads += 1;
        Ok(())
    }
    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        check_request(lba, buf.len(), self.block_size, self.num_blocks())?;
        let off = lba as usize * self.block_size as usize;
        self.data[off..off + buf.len()].copy_from_slice(buf);
        self.writes += 1;
        Ok(())
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        Ok(())
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
}

/// A disk backed by an image file on the host.
pub struct FileDisk {
    file: File,
    blocks: u64,
    read_only: bool,
}

impl FileDisk {
    /// Open an image; `writable` selects read-write access.
    pub fn open(path: &std::path::Path, writable: bool) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)?;
        let blocks = file.metadata()?.len() / 512;
        Ok(FileDisk {
            file,
            blocks,
            read_only: !writable,
        })
    }
}

impl BlockDevice for FileDisk {
    fn block_size(&self) -> u32 {
        512
    }
    fn num_blocks(&self) -> u64 {
        self.blocks
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        check_request(lba, buf.len(), 512, self.blocks)?;
        self.file
            .seek(SeekFrom::Start(lba * 512))
            .map_err(|_| BlockError::Io(1))?;
        self.file.read_exact(buf).map_err(|_| BlockError::Io(1))
    }
    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        check_request(lba, buf.len(), 512, self.blocks)?;
        self.file
            .seek(SeekFrom::Start(lba * 512))
            .map_err(|_| BlockError::Io(1))?;
        self.file.write_all(buf).map_err(|_| BlockError::Io(1))
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        self.file.sync_data().map_err(|_| BlockError::Io(1))
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Slice;

    #[test]
    fn slice_bounds_are_enforced() {
        let mut d = MemDisk::new(16);
        d.data[5 * 512] = 0xAB;
        let mut s = Slice::new(&mut d, 4, 8).unwrap();
        let mut b = [0u8; 512];
        s.read_blocks(1, &mut b).unwrap();
        assert_eq!(b[0], 0xAB);
        assert!(matches!(
            s.read_blocks(8, &mut b),
            Err(BlockError::OutOfRange { .. })
        ));
        assert!(matches!(
            s.read_blocks(u64::MAX, &mut b),
            Err(BlockError::OutOfRange { .. })
        ));
        let mut odd = [0u8; 100];
        assert!(matches!(
            s.read_blocks(0, &mut odd),
            Err(BlockError::Misaligned { .. })
        ));
        assert!(Slice::new(&mut d, 10, 7).is_err());
    }

    #[test]
    fn read_only_disk_refuses_writes() {
        let mut d = MemDisk::new(4);
        d.read_only = true;
        assert_eq!(d.write_blocks(0, &[0u8; 512]), Err(BlockError::ReadOnly));
    }
}
