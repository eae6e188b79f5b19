//! Boot sector (BPB) parsing and the volume geometry derived from it.

use crate::FatError;
use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Which FAT variant a volume uses; decided by cluster count alone (per the
/// Microsoft FAT specification), never by the label strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FatType {
    /// 12-bit entries, fewer than 4085 clusters.
    Fat12,
    /// 16-bit entries, fewer than 65525 clusters.
    Fat16,
    /// 28-bit entries in 32-bit slots.
    Fat32,
}

/// The BPB fields common to every FAT variant (offset 0 of the boot sector).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy)]
#[repr(C)]
pub(crate) struct BpbCommon {
    pub jump: [u8; 3],
    pub oem_name: [u8; 8],
    pub bytes_per_sector: U16,
    pub sectors_per_cluster: u8,
    pub reserved_sectors: U16,
    pub num_fats: u8,
    pub root_entries: U16,
    pub total_sectors16: U16,
    pub media: u8,
    pub fat_size16: U16,
    pub sectors_per_track: U16,
    pub num_heads: U16,
    pub hidden_sectors: U32,
    pub total_sectors32: U32,
}
const _: () = assert!(size_of::<BpbCommon>() == 36);

/// The FAT12/16 extended BPB (offset 36).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy)]
#[repr(C)]
pub(crate) struct BpbExt16 {
    pub drive_number: u8,
    pub reserved: u8,
    pub boot_signature: u8,
    pub volume_id: U32,
    pub volume_label: [u8; 11],
    pub fs_type: [u8; 8],
}
const _: () = assert!(size_of::<BpbExt16>() == 26);

/// The FAT32 extended BPB (offset 36).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy)]
#[repr(C)]
pub(crate) struct BpbExt32 {
    pub fat_size32: U32,
    pub ext_flags: U16,
    pub fs_version: U16,
    pub root_cluster: U32,
    pub fs_info: U16,
    pub backup_boot: U16,
    pub reserved: [u8; 12],
    pub tail: BpbExt16,
}
const _: () = assert!(size_of::<BpbExt32>() == 54);

/// The FAT32 FSInfo sector (free-cluster hints).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy)]
#[repr(C)]
pub(crate) struct FsInfo {
    pub lead_sig: U32,
    pub reserved1: [u8; 480],
    pub struct_sig: U32,
    pub free_count: U32,
    pub next_free: U32,
    pub reserved2: [u8; 12],
    pub trail_sig: U32,
}
const _: () = assert!(size_of::<FsInfo>() == 512);

pub(crate) const FSINFO_LEAD: u32 = 0x4161_5252;
pub(crate) const FSINFO_STRUCT: u32 = 0x6141_7272;
pub(crate) const FSINFO_TRAIL: u32 = 0xAA55_0000;

/// Everything the rest of the crate needs to know about the volume layout.
/// All sector numbers are in filesystem sectors relative to the volume start.
#[derive(Debug, Clone)]
pub(crate) struct Geometry {
    pub fat_type: FatType,
    pub bytes_per_sector: u32,
    pub sectors_per_cluster: u32,
    pub reserved_sectors: u32,
    pub num_fats: u32,
    pub fat_size: u32,
    pub root_entries: u32,
    pub first_data_sector: u32,
    pub cluster_count: u32,
    /// FAT32 root directory cluster (0 on FAT12/16: fixed root region).
    pub root_cluster: u32,
    /// FAT32 FSInfo sector, if the volume has one.
    pub fs_info_sector: Option<u32>,
    /// FAT copy to read from; `mirror` says whether writes go to all copies.
    pub active_fat: u32,
    pub mirror: bool,
    pub volume_id: Option<u32>,
    pub bpb_label: Option<[u8; 11]>,
}

fn bad(reason: &'static str) -> FatError {
    FatError::InvalidBootSector(reason)
}

impl Geometry {
    /// Validate a boot sector and derive the layout. `device_bytes` is the
    /// size of the underlying device, so a volume larger than it is refused.
    pub fn parse(sector: &[u8], device_bytes: u64) -> Result<Self, FatError> {
        let (c, rest) =
            BpbCommon::read_from_prefix(sector).map_err(|_| bad("shorter than 36 bytes"))?;
        let bps = u32::from(c.bytes_per_sector.get());
        if !(512..=4096).contains(&bps) || !bps.is_power_of_two() {
            return Err(bad("bytes per sector is not a power of two in 512..=4096"));
        }
        if sector.get(510..512) != Some(&[0x55, 0xAA][..]) {
            return Err(bad("missing 0x55AA signature at offset 510"));
        }
        let spc = u32::from(c.sectors_per_cluster);
        if spc == 0 || !spc.is_power_of_two() {
            return Err(bad("sectors per cluster is not a power of two"));
        }
        let reserved = u32::from(c.reserved_sectors.get());
        if reserved == 0 {
            return Err(bad("reserved sector count is zero"));
        }
        let num_fats = u32::from(c.num_fats);
        if num_fats == 0 {
            return Err(bad("number of FATs is zero"));
        }
        let root_entries = u32::from(c.root_entries.get());
        let ext32 = BpbExt32::read_from_prefix(rest)
            .map_err(|_| bad("truncated extended BPB"))?
            .0;
        let fat_size16 = u32::from(c.fat_size16.get());
        let fat_size = if fat_size16 != 0 {
            fat_size16
        } else {
            ext32.fat_size32.get()
        };
        if fat_size == 0 {
            return Err(bad("FAT size is zero"));
        }
        let total = match c.total_sectors16.get() {
            0 => c.total_sectors32.get(),
            n => u32::from(n),
        };
        if total == 0 {
            return Err(bad("total sector count is zero"));
        }
        // Everything below is computed in u64 so hostile values cannot overflow.
        let root_dir_sectors = (u64::from(root_entries) * 32).div_ceil(u64::from(bps));
        let meta =
            u64::from(reserved) + u64::from(num_fats) * u64::from(fat_size) + root_dir_sectors;
        if meta >= u64::from(total) {
            return Err(bad(
                "reserved, FAT and root-directory areas exceed the volume size",
            ));
        }
        let cluster_count = (u64::from(total) - meta) / u64::from(spc);
        if cluster_count == 0 {
            return Err(bad("volume has no data clusters"));
        }
        let fat_type = if cluster_count < 4085 {
            FatType::Fat12
        } else if cluster_count < 65525 {
            FatType::Fat16
        } else {
            FatType::Fat32
        };
        if cluster_count > 0x0FFF_FFF4 {
            return Err(bad("too many clusters for FAT32"));
        }
        let needed = u64::from(total) * u64::from(bps);
        if needed > device_bytes {
            return Err(FatError::VolumeTruncated {
                volume_bytes: needed,
                device_bytes,
            });
        }
        // The FAT must hold an entry for every cluster plus the two reserved ones.
        let bits = match fat_type {
            FatType::Fat12 => 12,
            FatType::Fat16 => 16,
            FatType::Fat32 => 32,
        };
        if (cluster_count + 2) * bits > u64::from(fat_size) * u64::from(bps) * 8 {
            return Err(bad("FAT is too small for the number of clusters"));
        }
        let (root_cluster, fs_info_sector, active_fat, mirror, tail) = if fat_type == FatType::Fat32
        {
            if root_entries != 0 || fat_size16 != 0 {
                return Err(bad(
                    "FAT32 volume with FAT12/16 root entry count or FAT size",
                ));
            }
            if ext32.fs_version.get() != 0 {
                return Err(bad("unsupported FAT32 version"));
            }
            let root = ext32.root_cluster.get();
            if root < 2 || u64::from(root) > cluster_count + 1 {
                return Err(bad("FAT32 root cluster out of range"));
            }
            let flags = ext32.ext_flags.get();
            let mirror = flags & 0x80 == 0;
            let active = if mirror { 0 } else { u32::from(flags & 0x0F) };
            if active >= num_fats {
                return Err(bad("active FAT number exceeds the FAT count"));
            }
            let fsi = u32::from(ext32.fs_info.get());
            let fsi = (fsi != 0 && fsi != 0xFFFF && fsi < reserved).then_some(fsi);
            (root, fsi, active, mirror, ext32.tail)
        } else {
            if root_entries == 0 {
                return Err(bad("FAT12/16 volume without root directory entries"));
            }
            let tail = BpbExt16::read_from_prefix(rest)
                .map_err(|_| bad("truncated extended BPB"))?
                .0;
            (0, None, 0, true, tail)
        };
        // 0x29 says the id/label fields are present (0x28: id only).
        let volume_id = matches!(tail.boot_signature, 0x28 | 0x29).then(|| tail.volume_id.get());
        let bpb_label = (tail.boot_signature == 0x29).then_some(tail.volume_label);
        Ok(Geometry {
            fat_type,
            bytes_per_sector: bps,
            sectors_per_cluster: spc,
            reserved_sectors: reserved,
            num_fats,
            fat_size,
            root_entries,
            first_data_sector: meta as u32,
            cluster_count: cluster_count as u32,
            root_cluster,
            fs_info_sector,
            active_fat,
            mirror,
            volume_id,
            bpb_label,
        })
    }

    /// Bytes per cluster.
    pub fn cluster_size(&self) -> u32 {
        self.bytes_per_sector * self.sectors_per_cluster
    }

    /// Highest valid cluster number.
    pub fn max_cluster(&self) -> u32 {
        self.cluster_count + 1
    }

    /// Byte offset (from volume start) of a data cluster; callers pass
    /// range-checked clusters (saturating keeps a slip from panicking).
    pub fn cluster_offset(&self, cluster: u32) -> u64 {
        (u64::from(self.first_data_sector)
            + u64::from(cluster.saturating_sub(2)) * u64::from(self.sectors_per_cluster))
            * u64::from(self.bytes_per_sector)
    }

    /// Byte offset of the fixed FAT12/16 root directory.
    pub fn root_dir_offset(&self) -> u64 {
        (u64::from(self.reserved_sectors) + u64::from(self.num_fats) * u64::from(self.fat_size))
            * u64::from(self.bytes_per_sector)
    }

    /// Byte offset of FAT copy `n`.
    pub fn fat_offset(&self, n: u32) -> u64 {
        (u64::from(self.reserved_sectors) + u64::from(n) * u64::from(self.fat_size))
            * u64::from(self.bytes_per_sector)
    }
}
