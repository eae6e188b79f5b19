//! FAT12/FAT16/FAT32 filesystem over [`ember_block::BlockDevice`], read and write.
//!
//! Ember uses this to load kernels, initrds and boot entries from the EFI
//! System Partition, so large reads are served as one device request per run
//! of physically contiguous clusters, straight into the caller's buffer.
//! Everything read from disk is treated as hostile: every walk is bounded
//! and malformed structures produce a [`FatError`], never a panic.
//!
//! Writes go straight to the device except FAT updates, which are cached;
//! call [`FileSystem::flush`] (or [`FileSystem::unmount`]) to persist them.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod bpb;
mod dir;
mod file;
mod meta;
mod table;

pub use bpb::FatType;
pub use dir::{DirEntry, Timestamp};
pub use file::File;
pub use meta::SETTABLE_ATTRIBUTES;

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use bpb::{FsInfo, Geometry};
use core::fmt;
use dir::{RawEntry, ATTR_DIRECTORY, DELETED};
use ember_block::{BlockDevice, BlockError};
use table::FatTable;
use zerocopy::{FromBytes, IntoBytes};

/// Why a filesystem operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FatError {
    /// The block device failed while accessing block `lba`.
    Device { lba: u64, err: BlockError },
    /// The boot sector is not a valid FAT boot sector (reason given).
    InvalidBootSector(&'static str),
    /// The boot sector describes a volume larger than the device.
    VolumeTruncated {
        volume_bytes: u64,
        device_bytes: u64,
    },
    /// A cluster number stored on disk is outside the data area.
    ClusterOutOfRange { cluster: u32, max: u32 },
    /// The FAT entry of `cluster` holds `value`, which is free, reserved,
    /// bad or out of range where a chain link was expected.
    BadCluster { cluster: u32, value: u32 },
    /// The chain starting at `first` is longer than the volume: it loops.
    ChainLoop { first: u32 },
    /// A file's chain length disagrees with its size (cross-linked or truncated).
    ChainLength {
        first: u32,
        expected: u64,
        found: u64,
    },
    /// A directory contains itself or one of its ancestors.
    DirectoryCycle { cluster: u32 },
    /// A directory is larger than the 65536 entries FAT allows.
    DirectoryTooLarge { cluster: u32 },
    /// No entry with this name.
    NotFound(String),
    /// A path component that must be a directory is a file.
    NotADirectory(String),
    /// A file operation was attempted on a directory.
    IsADirectory(String),
    /// The name already exists.
    AlreadyExists(String),
    /// The directory to remove still has entries.
    DirectoryNotEmpty(String),
    /// The name cannot be stored on FAT (empty, too long, forbidden characters).
    InvalidName(String),
    /// The fixed FAT12/16 root directory has no free slots.
    RootDirectoryFull,
    /// No free clusters left.
    NoSpace,
    /// The file would exceed FAT's 4 GiB - 1 size limit.
    FileTooLarge,
    /// `read_file` found a file larger than the caller's cap.
    TooLarge { size: u64, limit: u64 },
    /// The device refuses writes.
    ReadOnly,
    /// A consistency check inside this crate failed (a bug, not disk damage).
    Internal(&'static str),
}

impl fmt::Display for FatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use FatError::*;
        match self {
            Device { lba, err } => write!(f, "FAT: device error at block {lba}: {err}"),
            InvalidBootSector(r) => write!(f, "FAT: invalid boot sector: {r}"),
            VolumeTruncated { volume_bytes, device_bytes } => write!(
                f,
                "FAT: boot sector describes {volume_bytes} bytes but the device has only {device_bytes} (truncated image?)"
            ),
            ClusterOutOfRange { cluster, max } => {
                write!(f, "FAT: cluster {cluster} is outside the data area (valid 2..={max}); volume is corrupt")
            }
            BadCluster { cluster, value } => write!(
                f,
                "FAT: entry for cluster {cluster} holds {value:#x}, not a valid next cluster; run fsck"
            ),
            ChainLoop { first } => {
                write!(f, "FAT: cluster chain starting at {first} loops (longer than the volume); run fsck")
            }
            ChainLength { first, expected, found } => write!(
                f,
                "FAT: chain at cluster {first} has {found} clusters but the file size needs {expected} (cross-linked or truncated); run fsck"
            ),
            DirectoryCycle { cluster } => {
                write!(f, "FAT: directory at cluster {cluster} contains itself or a parent; run fsck")
            }
            DirectoryTooLarge { cluster } => {
                write!(f, "FAT: directory at cluster {cluster} exceeds 65536 entries")
            }
            NotFound(p) => write!(f, "FAT: '{p}' not found"),
            NotADirectory(p) => write!(f, "FAT: '{p}' is not a directory"),
            IsADirectory(p) => write!(f, "FAT: '{p}' is a directory"),
            AlreadyExists(p) => write!(f, "FAT: '{p}' already exists"),
            DirectoryNotEmpty(p) => write!(f, "FAT: directory '{p}' is not empty"),
            InvalidName(p) => write!(f, "FAT: '{p}' is not a valid FAT file name"),
            RootDirectoryFull => f.write_str("FAT: the root directory is full"),
            NoSpace => f.write_str("FAT: no free space left on the volume"),
            FileTooLarge => f.write_str("FAT: files cannot exceed 4 GiB - 1 bytes"),
            TooLarge { size, limit } => write!(f, "FAT: file is {size} bytes, over the {limit}-byte limit"),
            ReadOnly => f.write_str("FAT: the device is read-only"),
            Internal(w) => write!(f, "FAT: internal error ({w})"),
        }
    }
}

/// Read `buf.len()` bytes at byte offset `off` of the device. Whole blocks go
/// straight into `buf` in one request; only a partial head/tail block is
/// bounced.
pub(crate) fn read_bytes<D: BlockDevice>(
    dev: &mut D,
    off: u64,
    buf: &mut [u8],
) -> Result<(), FatError> {
    let bs = u64::from(dev.block_size());
    if buf.is_empty() {
        return Ok(());
    }
    if bs == 0 {
        return Err(FatError::Device {
            lba: 0,
            err: BlockError::Misaligned {
                len: 0,
                block_size: 0,
            },
        });
    }
    let io = |lba| move |err| FatError::Device { lba, err };
    let mut lba = off / bs;
    let head = (off % bs) as usize;
    let mut done = 0usize;
    if head != 0 || (buf.len() as u64) < bs {
        let mut bounce = vec![0u8; bs as usize];
        dev.read_blocks(lba, &mut bounce).map_err(io(lba))?;
        let n = (bs as usize - head).min(buf.len());
        buf[..n].copy_from_slice(&bounce[head..head + n]);
        done = n;
        lba += 1;
    }
    let whole = (buf.len() - done) / bs as usize * bs as usize;
    if whole > 0 {
        dev.read_blocks(lba, &mut buf[done..done + whole])
            .map_err(io(lba))?;
        done += whole;
        lba += (whole as u64) / bs;
    }
    if done < buf.len() {
        let mut bounce = vec![0u8; bs as usize];
        dev.read_blocks(lba, &mut bounce).map_err(io(lba))?;
        let n = buf.len() - done;
        buf[done..].copy_from_slice(&bounce[..n]);
    }
    Ok(())
}

/// Write `data` at byte offset `off`, read-modify-writing partial blocks.
pub(crate) fn write_bytes<D: BlockDevice>(
    dev: &mut D,
    off: u64,
    data: &[u8],
) -> Result<(), FatError> {
    let bs = u64::from(dev.block_size());
    if data.is_empty() {
        return Ok(());
    }
    if dev.read_only() {
        return Err(FatError::ReadOnly);
    }
    if bs == 0 {
        return Err(FatError::Device {
            lba: 0,
            err: BlockError::Misaligned {
                len: 0,
                block_size: 0,
            },
        });
    }
    let io = |lba| move |err| FatError::Device { lba, err };
    let mut lba = off / bs;
    let head = (off % bs) as usize;
    let mut done = 0usize;
    if head != 0 || (data.len() as u64) < bs {
        let mut bounce = vec![0u8; bs as usize];
        dev.read_blocks(lba, &mut bounce).map_err(io(lba))?;
        let n = (bs as usize - head).min(data.len());
        bounce[head..head + n].copy_from_slice(&data[..n]);
        dev.write_blocks(lba, &bounce).map_err(io(lba))?;
        done = n;
        lba += 1;
    }
    let whole = (data.len() - done) / bs as usize * bs as usize;
    if whole > 0 {
        dev.write_blocks(lba, &data[done..done + whole])
            .map_err(io(lba))?;
        done += whole;
        lba += (whole as u64) / bs;
    }
    if done < data.len() {
        let mut bounce = vec![0u8; bs as usize];
        dev.read_blocks(lba, &mut bounce).map_err(io(lba))?;
        let n = data.len() - done;
        bounce[..n].copy_from_slice(&data[done..]);
        dev.write_blocks(lba, &bounce).map_err(io(lba))?;
    }
    Ok(())
}

/// Which directory: the fixed FAT12/16 root region or a cluster chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DirRef {
    FixedRoot,
    Chain(u32),
}

/// A directory's bytes in memory plus where each cluster lives.
pub(crate) struct DirData {
    pub dir: DirRef,
    pub data: Vec<u8>,
    pub clusters: Vec<u32>,
}

/// A resolved path: its parent directory and entry, or the root.
enum Resolved {
    Root,
    Entry { parent: DirRef, entry: DirEntry },
}

/// A mounted FAT volume.
pub struct FileSystem<D: BlockDevice> {
    dev: D,
    geo: Geometry,
    fat: FatTable,
    label: Option<String>,
    /// Timestamp stamped on created/modified entries (no RTC in this crate).
    now: Timestamp,
}

impl<D: BlockDevice> FileSystem<D> {
    /// Validate the boot sector of `dev` and mount the volume.
    pub fn mount(mut dev: D) -> Result<Self, FatError> {
        let mut boot = [0u8; 512];
        if dev.size_bytes() < 512 {
            return Err(FatError::VolumeTruncated {
                volume_bytes: 512,
                device_bytes: dev.size_bytes(),
            });
        }
        read_bytes(&mut dev, 0, &mut boot)?;
        let geo = Geometry::parse(&boot, dev.size_bytes())?;
        let mut fat = FatTable::new(&geo);
        if let Some(s) = geo.fs_info_sector {
            let mut buf = [0u8; 512];
            read_bytes(
                &mut dev,
                u64::from(s) * u64::from(geo.bytes_per_sector),
                &mut buf,
            )?;
            if let Ok(info) = FsInfo::read_from_bytes(&buf[..]) {
                if info.lead_sig.get() == bpb::FSINFO_LEAD
                    && info.struct_sig.get() == bpb::FSINFO_STRUCT
                    && info.trail_sig.get() == bpb::FSINFO_TRAIL
                {
                    let free = info.free_count.get();
                    fat.free_count = (free <= geo.cluster_count).then_some(free);
                    let next = info.next_free.get();
                    if (2..=geo.max_cluster()).contains(&next) {
                        fat.next_free = next;
                    }
                }
            }
        }
        let now = Timestamp {
            date: (1 << 5) | 1,
            time: 0,
            tenths: 0,
        };
        let mut fs = FileSystem {
            dev,
            geo,
            fat,
            label: None,
            now,
        };
        // The root's volume-label entry wins over the BPB copy (as Windows and
        // mtools show it); a damaged root just means falling back to the BPB.
        let root_label = fs
            .load_dir(fs.root())
            .ok()
            .and_then(|d| dir::parse(&d.data).label);
        fs.label = root_label.or(fs.geo.bpb_label).and_then(|l| {
            let s: String = l
                .iter()
                .map(|&b| if b.is_ascii() { b as char } else { '?' })
                .collect();
            let s = s.trim_end().to_string();
            (!s.is_empty() && s != "NO NAME").then_some(s)
        });
        Ok(fs)
    }

    /// The root directory's first cluster (FAT32 only).
    pub(crate) fn root_cluster(&self) -> Option<u32> {
        match self.root() {
            DirRef::Chain(c) => Some(c),
            DirRef::FixedRoot => None,
        }
    }

    pub(crate) fn set_label_cache(&mut self, label: String) {
        self.label = (!label.is_empty()).then_some(label);
    }

    /// A free slot in the root for a volume-label entry: the first deleted
    /// slot or the end marker (keeping an end marker after it).
    pub(crate) fn add_label_entry(&mut self, root: DirRef) -> Result<u64, FatError> {
        let d = self.load_dir(root)?;
        let slots = d.data.len() / 32;
        for i in 0..slots {
            let b0 = d.data[i * 32];
            if b0 == dir::DELETED {
                return self.slot_offset(&d, i).ok_or(FatError::Internal("slot"));
            }
            if b0 == 0 {
                if i + 1 >= slots {
                    return Err(FatError::RootDirectoryFull);
                }
                return self.slot_offset(&d, i).ok_or(FatError::Internal("slot"));
            }
        }
        Err(FatError::RootDirectoryFull)
    }

    /// FAT variant of the volume.
    pub fn fat_type(&self) -> FatType {
        self.geo.fat_type
    }

    /// Volume label, if the volume has one.
    pub fn volume_label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    /// Volume serial number, if the extended BPB carries one.
    pub fn volume_id(&self) -> Option<u32> {
        self.geo.volume_id
    }

    /// Bytes per cluster.
    pub fn cluster_size(&self) -> u32 {
        self.geo.cluster_size()
    }

    /// Free clusters if known (FAT32 FSInfo; updated as clusters are used).
    pub fn free_clusters(&self) -> Option<u32> {
        self.fat.free_count
    }

    /// Set the timestamp written into entries created or modified from now on.
    pub fn set_time(&mut self, now: Timestamp) {
        self.now = now;
    }

    /// Borrow the underlying device.
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.dev
    }

    /// Write cached FAT sectors (to every FAT copy) and FSInfo, then flush
    /// the device.
    pub fn flush(&mut self) -> Result<(), FatError> {
        self.fat.flush(&mut self.dev, &self.geo)?;
        if self.fat.info_dirty {
            if let Some(s) = self.geo.fs_info_sector {
                let off = u64::from(s) * u64::from(self.geo.bytes_per_sector);
                let mut buf = [0u8; 512];
                read_bytes(&mut self.dev, off, &mut buf)?;
                if let Ok(info) = FsInfo::mut_from_bytes(&mut buf[..]) {
                    if info.lead_sig.get() == bpb::FSINFO_LEAD
                        && info.struct_sig.get() == bpb::FSINFO_STRUCT
                    {
                        info.free_count.set(self.fat.free_count.unwrap_or(u32::MAX));
                        info.next_free.set(self.fat.next_free);
                        write_bytes(&mut self.dev, off, &buf)?;
                    }
                }
            }
            self.fat.info_dirty = false;
        }
        self.dev
            .flush()
            .map_err(|err| FatError::Device { lba: 0, err })
    }

    /// Flush and give the device back.
    pub fn unmount(mut self) -> Result<D, FatError> {
        self.flush()?;
        Ok(self.dev)
    }

    pub(crate) fn root(&self) -> DirRef {
        if self.geo.root_cluster != 0 {
            DirRef::Chain(self.geo.root_cluster)
        } else {
            DirRef::FixedRoot
        }
    }

    /// Read a whole directory into memory (bounded to 65536 entries).
    pub(crate) fn load_dir(&mut self, dir: DirRef) -> Result<DirData, FatError> {
        match dir {
            DirRef::FixedRoot => {
                let mut data = vec![0u8; self.geo.root_entries as usize * 32];
                read_bytes(&mut self.dev, self.geo.root_dir_offset(), &mut data)?;
                Ok(DirData {
                    dir,
                    data,
                    clusters: Vec::new(),
                })
            }
            DirRef::Chain(first) => {
                let clusters = self.fat.chain(&mut self.dev, &self.geo, first)?;
                let cs = self.geo.cluster_size() as usize;
                if clusters.len().saturating_mul(cs) > dir::MAX_DIR_ENTRIES * 32 {
                    return Err(FatError::DirectoryTooLarge { cluster: first });
                }
                let mut data = vec![0u8; clusters.len() * cs];
                // Coalesce physically contiguous clusters into one read.
                let mut i = 0;
                while i < clusters.len() {
                    let mut j = i + 1;
                    while j < clusters.len() && clusters[j] == clusters[j - 1].wrapping_add(1) {
                        j += 1;
                    }
                    let off = self.geo.cluster_offset(clusters[i]);
                    read_bytes(&mut self.dev, off, &mut data[i * cs..j * cs])?;
                    i = j;
                }
                Ok(DirData {
                    dir,
                    data,
                    clusters,
                })
            }
        }
    }

    /// Device byte offset of slot `i` of a loaded directory.
    pub(crate) fn slot_offset(&self, d: &DirData, i: usize) -> Option<u64> {
        let pos = i.checked_mul(32)?;
        if pos >= d.data.len() {
            return None;
        }
        match d.dir {
            DirRef::FixedRoot => Some(self.geo.root_dir_offset() + pos as u64),
            DirRef::Chain(_) => {
                let cs = self.geo.cluster_size() as usize;
                let c = *d.clusters.get(pos / cs)?;
                Some(self.geo.cluster_offset(c) + (pos % cs) as u64)
            }
        }
    }

    fn split(path: &str) -> impl Iterator<Item = &str> {
        path.split(['/', '\\'])
            .filter(|c| !c.is_empty() && *c != ".")
    }

    /// The directory a subdirectory entry refers to; cluster 0 on a `..`
    /// entry means the root.
    fn subdir_ref(&self, e: &DirEntry) -> Result<DirRef, FatError> {
        if e.first_cluster == 0 {
            return if e.short_name == ".." {
                Ok(self.root())
            } else {
                Err(FatError::ClusterOutOfRange {
                    cluster: 0,
                    max: self.geo.max_cluster(),
                })
            };
        }
        if e.first_cluster < 2 || e.first_cluster > self.geo.max_cluster() {
            return Err(FatError::ClusterOutOfRange {
                cluster: e.first_cluster,
                max: self.geo.max_cluster(),
            });
        }
        Ok(DirRef::Chain(e.first_cluster))
    }

    /// Walk `path`. `..` is resolved against the path walked so far, and a
    /// subdirectory that is already on that path is a cycle error.
    fn resolve(&mut self, path: &str) -> Result<Resolved, FatError> {
        let mut stack: Vec<(DirRef, Option<(DirRef, DirEntry)>)> = vec![(self.root(), None)];
        let mut walked = String::new();
        for comp in Self::split(path) {
            if comp == ".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            walked.push('/');
            walked.push_str(comp);
            let Some((cur, cur_entry)) = stack.last() else {
                return Err(FatError::Internal("empty path stack"));
            };
            if let Some((_, e)) = cur_entry {
                if !e.is_dir {
                    return Err(FatError::NotADirectory(walked));
                }
            }
            let cur = *cur;
            let d = self.load_dir(cur)?;
            let entry = dir::parse(&d.data)
                .entries
                .into_iter()
                .find(|e| {
                    !e.is_dot()
                        && (dir::names_equal(&e.name, comp)
                            || dir::names_equal(&e.short_name, comp))
                })
                .ok_or_else(|| FatError::NotFound(walked.clone()))?;
            let this = if entry.is_dir {
                let r = self.subdir_ref(&entry)?;
                if stack.iter().any(|(d, _)| *d == r) {
                    return Err(FatError::DirectoryCycle {
                        cluster: entry.first_cluster,
                    });
                }
                r
            } else {
                DirRef::FixedRoot // Unused: files have no directory of their own.
            };
            stack.push((this, Some((cur, entry))));
        }
        match stack.pop() {
            Some((_, Some((parent, entry)))) => Ok(Resolved::Entry { parent, entry }),
            _ => Ok(Resolved::Root),
        }
    }

    fn dir_of(&mut self, path: &str) -> Result<DirRef, FatError> {
        match self.resolve(path)? {
            Resolved::Root => Ok(self.root()),
            Resolved::Entry { entry, .. } if entry.is_dir => self.subdir_ref(&entry),
            Resolved::Entry { .. } => Err(FatError::NotADirectory(path.to_string())),
        }
    }

    /// List a directory (including `.`/`..` where present; no volume label).
    pub fn read_dir(&mut self, path: &str) -> Result<Vec<DirEntry>, FatError> {
        let d = self.dir_of(path)?;
        let data = self.load_dir(d)?;
        Ok(dir::parse(&data.data).entries)
    }

    /// Metadata of a file or directory. The root has no entry of its own, so
    /// a synthetic one (name `/`) is returned for it.
    pub fn stat(&mut self, path: &str) -> Result<DirEntry, FatError> {
        match self.resolve(path)? {
            Resolved::Entry { entry, .. } => Ok(entry),
            Resolved::Root => Ok(DirEntry {
                name: "/".to_string(),
                short_name: "/".to_string(),
                is_dir: true,
                size: 0,
                attributes: ATTR_DIRECTORY,
                first_cluster: self.geo.root_cluster,
                created: Timestamp::default(),
                modified: Timestamp::default(),
                accessed: Timestamp::default(),
                slots: dir::Slots { first: 0, short: 0 },
            }),
        }
    }

    /// Split a path into its parent directory and final name.
    fn parent_and_name<'p>(&mut self, path: &'p str) -> Result<(DirRef, &'p str), FatError> {
        let trimmed = path.trim_end_matches(['/', '\\']);
        let (parent, name) = match trimmed.rfind(['/', '\\']) {
            Some(p) => (&trimmed[..p], &trimmed[p + 1..]),
            None => ("", trimmed),
        };
        if name == "." || name == ".." || !dir::validate_name(name) {
            return Err(FatError::InvalidName(path.to_string()));
        }
        Ok((self.dir_of(parent)?, name))
    }

    /// Write one 32-byte directory slot.
    fn write_slot(&mut self, off: u64, bytes: &[u8]) -> Result<(), FatError> {
        write_bytes(&mut self.dev, off, bytes)
    }

    /// Zero a freshly allocated cluster (new directory space must read as
    /// end-of-directory).
    fn zero_cluster(&mut self, c: u32) -> Result<(), FatError> {
        let zeros = vec![0u8; self.geo.cluster_size() as usize];
        write_bytes(&mut self.dev, self.geo.cluster_offset(c), &zeros)
    }

    /// Add an entry (with LFN slots and a unique alias when needed) to
    /// `parent`; returns the device offset of the short entry.
    fn add_entry(
        &mut self,
        parent: DirRef,
        name: &str,
        attr: u8,
        cluster: u32,
    ) -> Result<u64, FatError> {
        if self.dev.read_only() {
            return Err(FatError::ReadOnly);
        }
        let mut d = self.load_dir(parent)?;
        let existing = dir::parse(&d.data).entries;
        if existing
            .iter()
            .any(|e| dir::names_equal(&e.name, name) || dir::names_equal(&e.short_name, name))
        {
            return Err(FatError::AlreadyExists(name.to_string()));
        }
        let taken = |short: &[u8; 11]| {
            let disp = dir::short_display(short, 0, false);
            existing.iter().any(|e| e.short_name == disp)
        };
        let (short, lfn) = match dir::exact_short(name) {
            Some(s) if !taken(&s) => (s, Vec::new()),
            _ => {
                let basis = dir::basis_name(name);
                let short = (1..1_000_000)
                    .map(|n| dir::alias_with_tail(&basis, n))
                    .find(|s| !taken(s))
                    .ok_or_else(|| FatError::AlreadyExists(name.to_string()))?;
                (short, dir::lfn_entries(name, &short))
            }
        };
        let need = lfn.len() + 1;
        // Find `need` consecutive free slots; everything after the first
        // end-of-directory marker counts as free.
        let (start, end_marker) = loop {
            let slots = d.data.len() / 32;
            let mut ended = None;
            let mut run = 0;
            let mut found = None;
            for i in 0..slots {
                let b0 = d.data[i * 32];
                if b0 == 0 && ended.is_none() {
                    ended = Some(i);
                }
                if ended.is_some() || b0 == DELETED {
                    run += 1;
                    if run == need {
                        found = Some(i + 1 - need);
                        break;
                    }
                } else {
                    run = 0;
                }
            }
            if let Some(s) = found {
                break (s, ended);
            }
            let DirRef::Chain(first) = parent else {
                return Err(FatError::RootDirectoryFull);
            };
            if d.data.len() + self.geo.cluster_size() as usize > dir::MAX_DIR_ENTRIES * 32 {
                return Err(FatError::DirectoryTooLarge { cluster: first });
            }
            let last = *d
                .clusters
                .last()
                .ok_or(FatError::Internal("directory without clusters"))?;
            let new = self.fat.alloc(&mut self.dev, &self.geo, Some(last + 1))?;
            self.zero_cluster(new)?;
            self.fat.set(&mut self.dev, &self.geo, last, new)?;
            d.clusters.push(new);
            d.data
                .resize(d.data.len() + self.geo.cluster_size() as usize, 0);
        };
        let raw = RawEntry {
            name: short,
            attr,
            nt_res: 0,
            create_tenths: self.now.tenths,
            create_time: self.now.time.into(),
            create_date: self.now.date.into(),
            access_date: self.now.date.into(),
            cluster_hi: ((cluster >> 16) as u16).into(),
            write_time: self.now.time.into(),
            write_date: self.now.date.into(),
            cluster_lo: (cluster as u16).into(),
            size: 0.into(),
        };
        for (k, l) in lfn.iter().enumerate() {
            let off = self
                .slot_offset(&d, start + k)
                .ok_or(FatError::Internal("slot"))?;
            self.write_slot(off, l.as_bytes())?;
        }
        let short_off = self
            .slot_offset(&d, start + lfn.len())
            .ok_or(FatError::Internal("slot"))?;
        self.write_slot(short_off, raw.as_bytes())?;
        // If we wrote past the old end marker, make sure stale bytes after
        // our entries cannot be mistaken for live entries.
        let after = start + need;
        if end_marker.is_some_and(|e| after > e) && d.data.get(after * 32).is_some_and(|&b| b != 0)
        {
            if let Some(off) = self.slot_offset(&d, after) {
                self.write_slot(off, &[0u8; 32])?;
            }
        }
        Ok(short_off)
    }

    /// Create an empty file at `path` (the parent must exist).
    pub fn create_file(&mut self, path: &str) -> Result<File, FatError> {
        let (parent, name) = self.parent_and_name(path)?;
        let off = self.add_entry(parent, name, dir::ATTR_ARCHIVE, 0)?;
        Ok(File::new(0, 0, off))
    }

    /// Create a directory at `path` (the parent must exist).
    pub fn mkdir(&mut self, path: &str) -> Result<(), FatError> {
        let (parent, name) = self.parent_and_name(path)?;
        if self.dev.read_only() {
            return Err(FatError::ReadOnly);
        }
        let c = self.fat.alloc(&mut self.dev, &self.geo, None)?;
        let result = (|| {
            self.zero_cluster(c)?;
            let parent_cluster = match parent {
                DirRef::Chain(p) if p != self.geo.root_cluster => p,
                _ => 0, // `..` of a child of the root is 0 by convention.
            };
            let mk = |name: &[u8; 11], cl: u32, now: Timestamp| RawEntry {
                name: *name,
                attr: ATTR_DIRECTORY,
                create_tenths: now.tenths,
                create_time: now.time.into(),
                create_date: now.date.into(),
                access_date: now.date.into(),
                cluster_hi: ((cl >> 16) as u16).into(),
                write_time: now.time.into(),
                write_date: now.date.into(),
                cluster_lo: (cl as u16).into(),
                ..Default::default()
            };
            let base = self.geo.cluster_offset(c);
            let mut two = [0u8; 64];
            two[..32].copy_from_slice(mk(b".          ", c, self.now).as_bytes());
            two[32..].copy_from_slice(mk(b"..         ", parent_cluster, self.now).as_bytes());
            write_bytes(&mut self.dev, base, &two)?;
            self.add_entry(parent, name, ATTR_DIRECTORY, c)
        })();
        if let Err(e) = result {
            // Do not leak the cluster if the entry could not be added.
            self.fat.free_chain(&mut self.dev, &self.geo, c)?;
            return Err(e);
        }
        Ok(())
    }

    /// Delete a file, or an empty directory.
    pub fn remove(&mut self, path: &str) -> Result<(), FatError> {
        if self.dev.read_only() {
            return Err(FatError::ReadOnly);
        }
        let Resolved::Entry { parent, entry } = self.resolve(path)? else {
            return Err(FatError::InvalidName(path.to_string()));
        };
        if entry.is_dir {
            let sub = self.subdir_ref(&entry)?;
            let d = self.load_dir(sub)?;
            if dir::parse(&d.data).entries.iter().any(|e| !e.is_dot()) {
                return Err(FatError::DirectoryNotEmpty(path.to_string()));
            }
        }
        let d = self.load_dir(parent)?;
        for i in entry.slots.first..=entry.slots.short {
            let off = self.slot_offset(&d, i).ok_or(FatError::Internal("slot"))?;
            self.write_slot(off, &[DELETED])?;
        }
        if entry.first_cluster != 0 {
            self.fat
                .free_chain(&mut self.dev, &self.geo, entry.first_cluster)?;
        }
        Ok(())
    }

    /// Read a whole file, refusing files larger than `limit` bytes.
    pub fn read_file(&mut self, path: &str, limit: u64) -> Result<Vec<u8>, FatError> {
        let f = self.open(path)?;
        if f.size() > limit {
            return Err(FatError::TooLarge {
                size: f.size(),
                limit,
            });
        }
        let mut buf = vec![0u8; f.size() as usize];
        let n = self.read_at(&f, 0, &mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }
}
