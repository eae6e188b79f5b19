//! Open files: extent-based reads straight into the caller's buffer, and
//! writes that grow or shrink the cluster chain.

use crate::table::{FatTable, Next, Run, MAX_RUNS};
use crate::{read_bytes, write_bytes, FatError, FileSystem};
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use ember_block::BlockDevice;

/// Largest file FAT can describe (the size field is 32 bits).
const MAX_FILE: u64 = u32::MAX as u64;

/// A handle to an open file: where its data starts, how big it is and where
/// its directory entry lives (so writes can update size and cluster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    first_cluster: u32,
    size: u64,
    entry_offset: u64,
}

impl File {
    pub(crate) fn new(first_cluster: u32, size: u64, entry_offset: u64) -> Self {
        File {
            first_cluster,
            size,
            entry_offset,
        }
    }

    /// File size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// First data cluster (0 for an empty file).
    pub fn first_cluster(&self) -> u32 {
        self.first_cluster
    }
}

impl<D: BlockDevice> FileSystem<D> {
    /// Open a file for reading and writing. The whole cluster chain is walked
    /// once and must match the size, which catches loops, cross-links and
    /// truncated chains before any data is trusted.
    pub fn open(&mut self, path: &str) -> Result<File, FatError> {
        let e = self.stat(path)?;
        if e.is_dir {
            return Err(FatError::IsADirectory(path.into()));
        }
        let expected = e.size.div_ceil(u64::from(self.geo.cluster_size()));
        let found = if e.first_cluster == 0 {
            0
        } else {
            // One walk both checks the length and finds the runs the reads
            // will use (kept by first cluster until the FAT changes).
            let walk = self
                .fat
                .walk(&mut self.dev, &self.geo, e.first_cluster, MAX_RUNS)?;
            self.fat.keep_runs(e.first_cluster, walk.runs);
            walk.len
        };
        // An empty file that still owns a cluster is harmless; anything else
        // that disagrees means the chain cannot be trusted.
        if found != expected && !(expected == 0 && found <= 1) {
            return Err(FatError::ChainLength {
                first: e.first_cluster,
                expected,
                found,
            });
        }
        let parent = self.parent_dir_for(path)?;
        let d = self.load_dir(parent)?;
        let off = self
            .slot_offset(&d, e.slots.short)
            .ok_or(FatError::Internal("entry slot"))?;
        Ok(File::new(e.first_cluster, e.size, off))
    }

    fn parent_dir_for(&mut self, path: &str) -> Result<crate::DirRef, FatError> {
        let trimmed = path.trim_end_matches(['/', '\\']);
        let parent = trimmed.rfind(['/', '\\']).map_or("", |p| &trimmed[..p]);
        self.dir_of(parent)
    }

    /// Follow one link, counting steps so a loop ends in an error.
    fn follow(&mut self, first: u32, cur: u32, steps: &mut u64) -> Result<u32, FatError> {
        *steps += 1;
        if *steps >= u64::from(self.geo.cluster_count) {
            return Err(FatError::ChainLoop { first });
        }
        match self.fat.next(&mut self.dev, &self.geo, cur)? {
            Next::Cluster(n) => Ok(n),
            Next::End => Err(FatError::ChainLength {
                first,
                expected: *steps + 1,
                found: *steps,
            }),
        }
    }

    /// Read up to `buf.len()` bytes at `offset`; returns the count (0 at or
    /// past the end). Each run of contiguous clusters is one device request.
    pub fn read_at(&mut self, file: &File, offset: u64, buf: &mut [u8]) -> Result<usize, FatError> {
        if offset >= file.size || buf.is_empty() {
            return Ok(0);
        }
        let n = (file.size - offset).min(buf.len() as u64) as usize;
        let cs = u64::from(self.geo.cluster_size());
        let first = file.first_cluster;
        if let Some(runs) = self.runs_of(first)? {
            return self.read_runs(first, &runs, offset, &mut buf[..n]);
        }
        let target = offset / cs;
        // Start from the remembered position of a previous sequential read.
        let (mut idx, mut cur) = match self.fat.hint {
            Some((f, i, c)) if f == first && i <= target => (i, c),
            _ => (0, first),
        };
        if cur < 2 || cur > self.geo.max_cluster() {
            return Err(FatError::ClusterOutOfRange {
                cluster: cur,
                max: self.geo.max_cluster(),
            });
        }
        let mut steps = idx;
        while idx < target {
            cur = self.follow(first, cur, &mut steps)?;
            idx += 1;
        }
        let mut done = 0usize;
        let mut in_off = offset % cs;
        loop {
            let want = (in_off + (n - done) as u64).div_ceil(cs);
            let run_start = cur;
            let mut run_len = 1u64;
            let mut pending = None;
            while run_len < want {
                let next = self.follow(first, cur, &mut steps)?;
                if next == cur.wrapping_add(1) {
                    cur = next;
                    run_len += 1;
                } else {
                    pending = Some(next);
                    break;
                }
            }
            let bytes = ((run_len * cs - in_off) as usize).min(n - done);
            let off = self.geo.cluster_offset(run_start) + in_off;
            read_bytes(&mut self.dev, off, &mut buf[done..done + bytes])?;
            done += bytes;
            idx += run_len - 1;
            self.fat.hint = Some((first, idx, cur));
            if done >= n {
                return Ok(n);
            }
            in_off = 0;
            cur = match pending {
                Some(p) => p,
                None => self.follow(first, cur, &mut steps)?,
            };
            idx += 1;
        }
    }

    /// The run list of the chain at `first`: cached, or found now by one
    /// bounded walk; `None` if the chain is too fragmented to keep (or the
    /// file has no cluster), in which case reads follow it link by link.
    fn runs_of(&mut self, first: u32) -> Result<Option<Rc<[Run]>>, FatError> {
        if first == 0 {
            return Ok(None);
        }
        if let Some(r) = self.fat.cached_runs(first) {
            return Ok(r);
        }
        let walk = self.fat.walk(&mut self.dev, &self.geo, first, MAX_RUNS)?;
        Ok(self.fat.keep_runs(first, walk.runs))
    }

    /// Fill `buf` from file offset `offset` using the chain's run list: one
    /// device request per run the range touches.
    fn read_runs(
        &mut self,
        first: u32,
        runs: &[Run],
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, FatError> {
        let cs = u64::from(self.geo.cluster_size());
        let end = offset + buf.len() as u64;
        // Skip the runs before `offset`; `base` is the file offset of run `i`.
        let mut base = 0u64;
        let mut done = 0usize;
        for r in runs {
            let len = u64::from(r.len) * cs;
            if base + len > offset {
                let from = offset.max(base);
                let to = end.min(base + len);
                let disk = self.geo.cluster_offset(r.start) + (from - base);
                let bytes = (to - from) as usize;
                read_bytes(&mut self.dev, disk, &mut buf[done..done + bytes])?;
                done += bytes;
                if to == end {
                    return Ok(done);
                }
            }
            base += len;
        }
        // The chain ends before the data does.
        let clusters: u64 = runs.iter().map(|r| u64::from(r.len)).sum();
        Err(FatError::ChainLength {
            first,
            expected: end.div_ceil(cs),
            found: clusters,
        })
    }

    /// Number of physically contiguous cluster runs the file occupies
    /// (1 means unfragmented; 0 for an empty file).
    pub fn cluster_runs(&mut self, file: &File) -> Result<usize, FatError> {
        if file.first_cluster == 0 {
            return Ok(0);
        }
        let chain = self
            .fat
            .chain(&mut self.dev, &self.geo, file.first_cluster)?;
        Ok(1 + chain
            .windows(2)
            .filter(|w| w[1] != w[0].wrapping_add(1))
            .count())
    }

    /// Rewrite the size and first-cluster fields of the file's entry.
    fn update_entry(&mut self, file: &File) -> Result<(), FatError> {
        let mut raw = [0u8; 32];
        read_bytes(&mut self.dev, file.entry_offset, &mut raw)?;
        let mut e = crate::dir::RawEntry::default();
        zerocopy::IntoBytes::as_mut_bytes(&mut e).copy_from_slice(&raw);
        e.cluster_hi.set((file.first_cluster >> 16) as u16);
        e.cluster_lo.set(file.first_cluster as u16);
        e.size.set(file.size as u32);
        e.write_date.set(self.now.date);
        e.write_time.set(self.now.time);
        e.access_date.set(self.now.date);
        e.attr |= crate::dir::ATTR_ARCHIVE;
        write_bytes(
            &mut self.dev,
            file.entry_offset,
            zerocopy::IntoBytes::as_bytes(&e),
        )
    }

    /// The file's chain, grown with newly allocated clusters to `count`.
    fn chain_with(&mut self, file: &mut File, count: u64) -> Result<Vec<u32>, FatError> {
        let mut chain = if file.first_cluster == 0 {
            Vec::new()
        } else {
            self.fat
                .chain(&mut self.dev, &self.geo, file.first_cluster)?
        };
        while (chain.len() as u64) < count {
            let near = chain.last().map(|&c| c + 1);
            let c = self.fat.alloc(&mut self.dev, &self.geo, near)?;
            match chain.last() {
                Some(&last) => self.fat.set(&mut self.dev, &self.geo, last, c)?,
                None => file.first_cluster = c,
            }
            chain.push(c);
        }
        Ok(chain)
    }

    /// Write `data` at `offset`, allocating clusters as needed. Writing past
    /// the end zero-fills the gap (FAT has no holes). Updates `file` and its
    /// directory entry.
    pub fn write_at(
        &mut self,
        file: &mut File,
        offset: u64,
        data: &[u8],
    ) -> Result<usize, FatError> {
        if self.dev.read_only() {
            return Err(FatError::ReadOnly);
        }
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or(FatError::FileTooLarge)?;
        if end > MAX_FILE {
            return Err(FatError::FileTooLarge);
        }
        if data.is_empty() && offset <= file.size {
            return Ok(0);
        }
        let cs = u64::from(self.geo.cluster_size());
        let chain = self.chain_with(file, end.div_ceil(cs))?;
        // Zero the gap between the old end and `offset` first.
        if offset > file.size {
            let zeros = vec![0u8; cs as usize];
            let mut pos = file.size;
            while pos < offset {
                let len = (offset - pos).min(cs - pos % cs);
                self.write_chain(&chain, pos, &zeros[..len as usize])?;
                pos += len;
            }
        }
        self.write_chain(&chain, offset, data)?;
        if end > file.size {
            file.size = end;
        }
        self.update_entry(file)?;
        Ok(data.len())
    }

    /// Write `data` at file offset `offset` over an allocated chain, one
    /// device request per contiguous run.
    fn write_chain(&mut self, chain: &[u32], offset: u64, data: &[u8]) -> Result<(), FatError> {
        let cs = u64::from(self.geo.cluster_size());
        let mut idx = (offset / cs) as usize;
        let mut in_off = offset % cs;
        let mut done = 0usize;
        while done < data.len() {
            let start = *chain
                .get(idx)
                .ok_or(FatError::Internal("chain shorter than write"))?;
            let want = (in_off + (data.len() - done) as u64).div_ceil(cs) as usize;
            let mut len = 1;
            while len < want && chain.get(idx + len) == Some(&(start + len as u32)) {
                len += 1;
            }
            let bytes = ((len as u64 * cs - in_off) as usize).min(data.len() - done);
            write_bytes(
                &mut self.dev,
                self.geo.cluster_offset(start) + in_off,
                &data[done..done + bytes],
            )?;
            done += bytes;
            idx += len;
            in_off = 0;
        }
        Ok(())
    }

    /// Truncate (freeing clusters) or extend (with zeros) to `len` bytes.
    pub fn set_len(&mut self, file: &mut File, len: u64) -> Result<(), FatError> {
        if self.dev.read_only() {
            return Err(FatError::ReadOnly);
        }
        if len > MAX_FILE {
            return Err(FatError::FileTooLarge);
        }
        if len > file.size {
            self.write_at(file, len, &[])?;
            return Ok(());
        }
        let keep = len.div_ceil(u64::from(self.geo.cluster_size()));
        if file.first_cluster != 0 {
            if keep == 0 {
                self.fat
                    .free_chain(&mut self.dev, &self.geo, file.first_cluster)?;
                file.first_cluster = 0;
            } else {
                let chain = self
                    .fat
                    .chain(&mut self.dev, &self.geo, file.first_cluster)?;
                if let (Some(&last), Some(&rest)) =
                    (chain.get(keep as usize - 1), chain.get(keep as usize))
                {
                    self.fat
                        .set(&mut self.dev, &self.geo, last, FatTable::eoc(&self.geo))?;
                    self.fat.free_chain(&mut self.dev, &self.geo, rest)?;
                }
            }
        }
        file.size = len;
        self.update_entry(file)
    }
}
