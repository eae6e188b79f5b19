//! The file allocation table: a small write-back cache of FAT windows, entry
//! encoding for FAT12/16/32, bounded chain walks and cluster allocation.

use crate::bpb::{FatType, Geometry};
use crate::{read_bytes, write_bytes, FatError};
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use ember_block::BlockDevice;

/// Bytes of FAT held per cache window, read in one device request. Large
/// windows mean walking the chain of a 14 MiB kernel on 512-byte clusters
/// (27,700 FAT32 entries, 108 KiB of FAT) costs two device reads.
const WINDOW_BYTES: u32 = 64 * 1024;
/// Number of windows kept (at most 512 KiB); evicted least-recently-used.
const WINDOWS: usize = 8;
/// Most runs kept for one file: a run list costs 8 bytes a run, so this
/// bounds a cached list at 32 KiB. More fragmented files are read by
/// following the chain link by link.
pub(crate) const MAX_RUNS: usize = 4096;
/// Files whose run lists are kept (the kernel and initrds of one entry).
const RUN_LISTS: usize = 4;

/// Physically contiguous clusters `start..start + len` of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    pub start: u32,
    pub len: u32,
}

/// A whole chain as found by [`FatTable::walk`].
pub(crate) struct Walk {
    /// Clusters in the chain.
    pub len: u64,
    /// Its runs, in chain order; `None` when there were more than asked for.
    pub runs: Option<Vec<Run>>,
}

struct Window {
    index: u32,
    data: Vec<u8>,
    dirty: bool,
    last_use: u64,
}

/// What a FAT entry says about the cluster after the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// The chain continues at this (range-checked) cluster.
    Cluster(u32),
    /// End-of-chain marker.
    End,
}

/// Cached access to the FAT plus the free-space bookkeeping.
pub(crate) struct FatTable {
    windows: Vec<Window>,
    tick: u64,
    window_bytes: u32,
    /// Known number of free clusters (None: unknown, recomputed never).
    pub free_count: Option<u32>,
    /// Where the next allocation scan starts.
    pub next_free: u32,
    /// FSInfo needs rewriting on flush.
    pub info_dirty: bool,
    /// Remembered (first cluster, cluster index, cluster) of the last read,
    /// so sequential `read_at` calls do not re-walk the chain from the start.
    pub hint: Option<(u32, u64, u32)>,
    /// Run lists of recently opened files by first cluster (`None`: too
    /// fragmented to keep). Any FAT update empties it.
    pub runs: Vec<(u32, Option<Rc<[Run]>>)>,
}

impl FatTable {
    pub fn new(geo: &Geometry) -> Self {
        let window_bytes = WINDOW_BYTES.max(geo.bytes_per_sector);
        FatTable {
            windows: Vec::new(),
            tick: 0,
            window_bytes,
            free_count: None,
            next_free: 2,
            info_dirty: false,
            hint: None,
            runs: Vec::new(),
        }
    }

    /// The cached run list of the chain starting at `first`, if any:
    /// `Some(None)` means the chain is known to be too fragmented to keep.
    pub fn cached_runs(&self, first: u32) -> Option<Option<Rc<[Run]>>> {
        self.runs
            .iter()
            .find(|(f, _)| *f == first)
            .map(|(_, r)| r.clone())
    }

    /// Remember the run list (or its absence) of the chain at `first`.
    pub fn keep_runs(&mut self, first: u32, runs: Option<Vec<Run>>) -> Option<Rc<[Run]>> {
        let runs: Option<Rc<[Run]>> = runs.map(Rc::from);
        self.runs.retain(|(f, _)| *f != first);
        if self.runs.len() >= RUN_LISTS {
            self.runs.remove(0);
        }
        self.runs.push((first, runs.clone()));
        runs
    }

    fn fat_bytes(geo: &Geometry) -> u64 {
        u64::from(geo.fat_size) * u64::from(geo.bytes_per_sector)
    }

    /// Index into `self.windows` of the window holding FAT byte `off`.
    fn window<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        geo: &Geometry,
        off: u64,
    ) -> Result<usize, FatError> {
        let index = u32::try_from(off / u64::from(self.window_bytes))
            .map_err(|_| FatError::Internal("FAT offset"))?;
        self.tick += 1;
        if let Some(i) = self.windows.iter().position(|w| w.index == index) {
            self.windows[i].last_use = self.tick;
            return Ok(i);
        }
        let start = u64::from(index) * u64::from(self.window_bytes);
        let Some(left) = Self::fat_bytes(geo).checked_sub(start).filter(|&l| l > 0) else {
            return Err(FatError::Internal("FAT offset beyond the table"));
        };
        let len = left.min(u64::from(self.window_bytes)) as usize;
        let mut data = vec![0u8; len];
        read_bytes(dev, geo.fat_offset(geo.active_fat) + start, &mut data)?;
        let w = Window {
            index,
            data,
            dirty: false,
            last_use: self.tick,
        };
        if self.windows.len() < WINDOWS {
            self.windows.push(w);
            return Ok(self.windows.len() - 1);
        }
        let victim = (0..self.windows.len())
            .min_by_key(|&i| self.windows[i].last_use)
            .unwrap_or(0);
        self.write_back(dev, geo, victim)?;
        self.windows[victim] = w;
        Ok(victim)
    }

    fn write_back<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        geo: &Geometry,
        i: usize,
    ) -> Result<(), FatError> {
        let Some(w) = self.windows.get_mut(i) else {
            return Ok(());
        };
        if !w.dirty {
            return Ok(());
        }
        let start = u64::from(w.index) * u64::from(self.window_bytes);
        for n in 0..geo.num_fats {
            if geo.mirror || n == geo.active_fat {
                write_bytes(dev, geo.fat_offset(n) + start, &w.data)?;
            }
        }
        w.dirty = false;
        Ok(())
    }

    /// Write every dirty window to all FAT copies.
    pub fn flush<D: BlockDevice>(&mut self, dev: &mut D, geo: &Geometry) -> Result<(), FatError> {
        for i in 0..self.windows.len() {
            self.write_back(dev, geo, i)?;
        }
        Ok(())
    }

    fn byte<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        geo: &Geometry,
        off: u64,
    ) -> Result<u8, FatError> {
        let i = self.window(dev, geo, off)?;
        let rel = (off % u64::from(self.window_bytes)) as usize;
        self.windows[i]
            .data
            .get(rel)
            .copied()
            .ok_or(FatError::Internal("FAT byte outside window"))
    }

    fn set_byte<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        geo: &Geometry,
        off: u64,
        v: u8,
    ) -> Result<(), FatError> {
        let i = self.window(dev, geo, off)?;
        let rel = (off % u64::from(self.window_bytes)) as usize;
        let w = &mut self.windows[i];
        *w.data
            .get_mut(rel)
            .ok_or(FatError::Internal("FAT byte outside window"))? = v;
        w.dirty = true;
        Ok(())
    }

    fn check_range(geo: &Geometry, cluster: u32) -> Result<(), FatError> {
        if cluster < 2 || cluster > geo.max_cluster() {
            return Err(FatError::ClusterOutOfRange {
                cluster,
                max: geo.max_cluster(),
            });
        }
        Ok(())
    }

    /// Raw entry value for `cluster` (28 bits on FAT32).
    pub fn get<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        geo: &Geometry,
        cluster: u32,
    ) -> Result<u32, FatError> {
        Self::check_range(geo, cluster)?;
        let c = u64::from(cluster);
        Ok(match geo.fat_type {
            FatType::Fat12 => {
                let off = c + c / 2;
                let v =
                    u16::from_le_bytes([self.byte(dev, geo, off)?, self.byte(dev, geo, off + 1)?]);
                u32::from(if cluster & 1 == 1 { v >> 4 } else { v & 0x0FFF })
            }
            FatType::Fat16 => {
                let off = c * 2;
                u32::from(u16::from_le_bytes([
                    self.byte(dev, geo, off)?,
                    self.byte(dev, geo, off + 1)?,
                ]))
            }
            FatType::Fat32 => {
                let off = c * 4;
                let mut b = [0u8; 4];
                for (k, x) in b.iter_mut().enumerate() {
                    *x = self.byte(dev, geo, off + k as u64)?;
                }
                u32::from_le_bytes(b) & 0x0FFF_FFFF
            }
        })
    }

    /// Store `value` in the entry for `cluster` (keeping FAT32's top 4 bits).
    pub fn set<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        geo: &Geometry,
        cluster: u32,
        value: u32,
    ) -> Result<(), FatError> {
        Self::check_range(geo, cluster)?;
        self.hint = None;
        self.runs.clear();
        let c = u64::from(cluster);
        match geo.fat_type {
            FatType::Fat12 => {
                let off = c + c / 2;
                let (b0, b1) = (self.byte(dev, geo, off)?, self.byte(dev, geo, off + 1)?);
                let v = (value & 0x0FFF) as u16;
                let (n0, n1) = if cluster & 1 == 1 {
                    ((b0 & 0x0F) | ((v << 4) as u8), (v >> 4) as u8)
                } else {
                    (v as u8, (b1 & 0xF0) | ((v >> 8) as u8 & 0x0F))
                };
                self.set_byte(dev, geo, off, n0)?;
                self.set_byte(dev, geo, off + 1, n1)?;
            }
            FatType::Fat16 => {
                let b = ((value & 0xFFFF) as u16).to_le_bytes();
                self.set_byte(dev, geo, c * 2, b[0])?;
                self.set_byte(dev, geo, c * 2 + 1, b[1])?;
            }
            FatType::Fat32 => {
                let off = c * 4;
                let top = self.byte(dev, geo, off + 3)? & 0xF0;
                let b = (value & 0x0FFF_FFFF).to_le_bytes();
                self.set_byte(dev, geo, off, b[0])?;
                self.set_byte(dev, geo, off + 1, b[1])?;
                self.set_byte(dev, geo, off + 2, b[2])?;
                self.set_byte(dev, geo, off + 3, b[3] | top)?;
            }
        }
        Ok(())
    }

    /// The end-of-chain value written by this crate.
    pub fn eoc(geo: &Geometry) -> u32 {
        match geo.fat_type {
            FatType::Fat12 => 0x0FFF,
            FatType::Fat16 => 0xFFFF,
            FatType::Fat32 => 0x0FFF_FFFF,
        }
    }

    /// What entry value `v` of `cluster` means: rejects free, reserved, bad
    /// and out-of-range values.
    fn classify(geo: &Geometry, cluster: u32, v: u32) -> Result<Next, FatError> {
        let (eoc_min, bad) = match geo.fat_type {
            FatType::Fat12 => (0x0FF8, 0x0FF7),
            FatType::Fat16 => (0xFFF8, 0xFFF7),
            FatType::Fat32 => (0x0FFF_FFF8, 0x0FFF_FFF7),
        };
        if v >= eoc_min {
            Ok(Next::End)
        } else if v == bad || v < 2 || v > geo.max_cluster() {
            Err(FatError::BadCluster { cluster, value: v })
        } else {
            Ok(Next::Cluster(v))
        }
    }

    /// Follow one link, rejecting free, reserved, bad and out-of-range values.
    pub fn next<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        geo: &Geometry,
        cluster: u32,
    ) -> Result<Next, FatError> {
        let v = self.get(dev, geo, cluster)?;
        Self::classify(geo, cluster, v)
    }

    /// Walk the whole chain starting at `first`, bounded by the cluster count
    /// so a looping chain is reported instead of walked forever. FAT16/32
    /// entries are decoded straight from the cached window, one window lookup
    /// per window rather than per entry. The runs are collected while there
    /// are at most `max_runs` of them.
    pub fn walk<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        geo: &Geometry,
        first: u32,
        max_runs: usize,
    ) -> Result<Walk, FatError> {
        Self::check_range(geo, first)?;
        let limit = u64::from(geo.cluster_count);
        let width: u64 = match geo.fat_type {
            FatType::Fat12 => 0,
            FatType::Fat16 => 2,
            FatType::Fat32 => 4,
        };
        let mut runs = Some(Vec::new());
        let push = |runs: &mut Option<Vec<Run>>, r: Run| {
            if let Some(v) = runs {
                if v.len() < max_runs {
                    v.push(r);
                } else {
                    *runs = None;
                }
            }
        };
        let mut n = 0u64;
        let mut run = Run {
            start: first,
            len: 0,
        };
        let mut cur = first;
        loop {
            // Count `cur`, then find what follows it.
            let next = if width == 0 {
                n += 1;
                if n > limit {
                    return Err(FatError::ChainLoop { first });
                }
                run.len += 1;
                self.next(dev, geo, cur)?
            } else {
                let i = self.window(dev, geo, u64::from(cur) * width)?;
                let w = &self.windows[i];
                let base = u64::from(w.index) * u64::from(self.window_bytes);
                let end = base + w.data.len() as u64;
                // Every link whose entry lies in this window, without leaving it.
                loop {
                    n += 1;
                    if n > limit {
                        return Err(FatError::ChainLoop { first });
                    }
                    run.len += 1;
                    let rel = (u64::from(cur) * width - base) as usize;
                    let v = match (width, w.data.get(rel..rel + width as usize)) {
                        (4, Some(b)) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & 0x0FFF_FFFF,
                        (_, Some(b)) => u32::from(u16::from_le_bytes([b[0], b[1]])),
                        (_, None) => return Err(FatError::Internal("FAT entry outside window")),
                    };
                    match Self::classify(geo, cur, v)? {
                        Next::Cluster(c)
                            if u64::from(c) * width >= base
                                && u64::from(c) * width + width <= end =>
                        {
                            if c != cur.wrapping_add(1) {
                                push(&mut runs, run);
                                run = Run { start: c, len: 0 };
                            }
                            cur = c;
                        }
                        other => break other,
                    }
                }
            };
            match next {
                Next::End => {
                    push(&mut runs, run);
                    return Ok(Walk { len: n, runs });
                }
                Next::Cluster(c) => {
                    if c != cur.wrapping_add(1) {
                        push(&mut runs, run);
                        run = Run { start: c, len: 0 };
                    }
                    cur = c;
                }
            }
        }
    }

    /// Every cluster of the chain starting at `first` (bounded like
    /// [`FatTable::walk`]).
    pub fn chain<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        geo: &Geometry,
        first: u32,
    ) -> Result<Vec<u32>, FatError> {
        let walk = self.walk(dev, geo, first, usize::MAX)?;
        let runs = walk.runs.unwrap_or_default();
        let mut out = Vec::with_capacity(walk.len as usize);
        for r in runs {
            out.extend((0..r.len).map(|k| r.start + k));
        }
        Ok(out)
    }

    /// Allocate one free cluster, marking it end-of-chain; scanning starts
    /// at `near` (to keep files contiguous) and wraps once around the volume.
    pub fn alloc<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        geo: &Geometry,
        near: Option<u32>,
    ) -> Result<u32, FatError> {
        let max = geo.max_cluster();
        let mut c = near
            .filter(|c| (2..=max).contains(c))
            .unwrap_or(self.next_free);
        if !(2..=max).contains(&c) {
            c = 2;
        }
        for _ in 0..geo.cluster_count {
            if self.get(dev, geo, c)? == 0 {
                self.set(dev, geo, c, Self::eoc(geo))?;
                self.free_count = self.free_count.map(|n| n.saturating_sub(1));
                self.next_free = if c == max { 2 } else { c + 1 };
                self.info_dirty = true;
                return Ok(c);
            }
            c = if c == max { 2 } else { c + 1 };
        }
        // A full scan found nothing, so the true free count is zero.
        self.free_count = Some(0);
        self.info_dirty = true;
        Err(FatError::NoSpace)
    }

    /// Free every cluster of the chain starting at `first` (bounded walk).
    pub fn free_chain<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        geo: &Geometry,
        first: u32,
    ) -> Result<(), FatError> {
        let chain = self.chain(dev, geo, first)?;
        for &c in &chain {
            self.set(dev, geo, c, 0)?;
        }
        self.free_count = self
            .free_count
            .map(|n| n.saturating_add(chain.len() as u32).min(geo.cluster_count));
        self.info_dirty = true;
        Ok(())
    }
}
