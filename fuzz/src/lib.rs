//! Helpers shared by the fuzz targets: a sparse disk decoded from fuzz input
//! and a byte reader that turns input into operation sequences.
//!
//! Sparse input format (used by `gpt_mbr` and `fat`, produced by
//! `cargo xtask fuzz`'s seed builder from real images):
//!
//! ```text
//! u32 LE   disk size in 512-byte blocks
//! repeated chunks:
//!   u32 LE   first LBA
//!   u16 LE   block count
//!   bytes    count * 512 bytes of data (a short last chunk is zero padded)
//! ```
//!
//! Blocks no chunk covers read as zeros. Real partition tables and file
//! systems are mostly zeros with metadata at both ends (GPT backup header at
//! the last LBA, FAT32 needs >= 65525 clusters), so this keeps inputs a few
//! KiB while describing multi-MiB or larger disks.

use ember_block::{check_request, BlockDevice, BlockError};
use std::collections::BTreeMap;

pub const BLOCK: usize = 512;

/// A disk of any size whose non-zero blocks live in a map.
#[derive(Clone, Debug)]
pub struct SparseDisk {
    blocks: u64,
    data: BTreeMap<u64, Box<[u8; BLOCK]>>,
    read_only: bool,
}

impl SparseDisk {
    /// Decode the sparse format above. Never fails: any input is some disk.
    pub fn from_fuzz(input: &[u8]) -> Self {
        let mut r = Bytes(input);
        // At least one block so every target gets past the trivial size check.
        let blocks = u64::from(r.u32()).max(1);
        let mut data = BTreeMap::new();
        while !r.is_empty() {
            let lba = u64::from(r.u32());
            let count = u64::from(r.u16());
            for i in 0..count {
                if r.is_empty() {
                    break;
                }
                let Some(l) = lba.checked_add(i).filter(|&l| l < blocks) else {
                    r.take(BLOCK);
                    continue;
                };
                let mut b = Box::new([0u8; BLOCK]);
                let src = r.take(BLOCK);
                b[..src.len()].copy_from_slice(src);
                data.insert(l, b);
            }
        }
        SparseDisk {
            blocks,
            data,
            read_only: false,
        }
    }

    pub fn set_read_only(&mut self, ro: bool) {
        self.read_only = ro;
    }
}

impl BlockDevice for SparseDisk {
    fn block_size(&self) -> u32 {
        BLOCK as u32
    }
    fn num_blocks(&self) -> u64 {
        self.blocks
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        check_request(lba, buf.len(), BLOCK as u32, self.blocks)?;
        for (i, out) in buf.chunks_exact_mut(BLOCK).enumerate() {
            match self.data.get(&(lba + i as u64)) {
                Some(b) => out.copy_from_slice(&b[..]),
                None => out.fill(0),
            }
        }
        Ok(())
    }
    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        check_request(lba, buf.len(), BLOCK as u32, self.blocks)?;
        for (i, src) in buf.chunks_exact(BLOCK).enumerate() {
            let mut b = Box::new([0u8; BLOCK]);
            b.copy_from_slice(src);
            self.data.insert(lba + i as u64, b);
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        Ok(())
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
}

/// Consumes fuzz input front to back; reads past the end yield zeros so a
/// short input is still a complete (if boring) operation sequence.
#[derive(Clone, Copy, Debug)]
pub struct Bytes<'a>(pub &'a [u8]);

impl<'a> Bytes<'a> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
    fn fixed<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let src = self.take(N);
        out[..src.len()].copy_from_slice(src);
        out
    }
    pub fn u8(&mut self) -> u8 {
        self.fixed::<1>()[0]
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.fixed())
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.fixed())
    }
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.fixed())
    }
    /// Bytes up to (not including) `sep`, consuming the separator.
    pub fn until(&mut self, sep: u8) -> &'a [u8] {
        match self.0.iter().position(|&b| b == sep) {
            Some(i) => {
                let head = &self.0[..i];
                self.0 = &self.0[i + 1..];
                head
            }
            None => self.take(self.0.len()),
        }
    }
}
