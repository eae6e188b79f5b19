//! Classic Master Boot Record: four primary slots and the 0x55AA signature.

use crate::{overlaps, PartKind, Partition, PartitionTable, Scheme};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use zerocopy::little_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// One 16-byte MBR partition slot.
#[repr(C)]
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub(crate) struct MbrEntry {
    boot_indicator: u8,
    start_chs: [u8; 3],
    os_type: u8,
    end_chs: [u8; 3],
    starting_lba: U32,
    size_in_lba: U32,
}
const _: () = assert!(core::mem::size_of::<MbrEntry>() == 16);

/// The first 512 bytes of a disk.
#[repr(C)]
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub(crate) struct Mbr {
    boot_code: [u8; 440],
    disk_signature: U32,
    reserved: [u8; 2],
    entries: [MbrEntry; 4],
    signature: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<Mbr>() == 512);

/// Protective-MBR partition type announcing a GPT disk.
const TYPE_GPT_PROTECTIVE: u8 = 0xEE;
const TYPE_EFI_SYSTEM: u8 = 0xEF;
const TYPE_XBOOTLDR: u8 = 0xEA;
const TYPE_LINUX: u8 = 0x83;
const EXTENDED_TYPES: [u8; 3] = [0x05, 0x0F, 0x85];
const BOOT_SIGNATURE: [u8; 2] = [0x55, 0xAA];

impl Mbr {
    /// Decode LBA 0; `None` if it is too short or lacks the boot signature.
    pub(crate) fn parse(block: &[u8]) -> Option<Mbr> {
        let (m, _) = Mbr::read_from_prefix(block).ok()?;
        (m.signature == BOOT_SIGNATURE).then_some(m)
    }

    /// Whether any slot is a GPT protective entry.
    pub(crate) fn is_protective(&self) -> bool {
        self.entries
            .iter()
            .any(|e| e.os_type == TYPE_GPT_PROTECTIVE)
    }

    /// A protective entry alongside real MBR entries.
    pub(crate) fn is_hybrid(&self) -> bool {
        self.is_protective()
            && self
                .entries
                .iter()
                .any(|e| e.os_type != 0 && e.os_type != TYPE_GPT_PROTECTIVE)
    }
}

fn kind_of(os_type: u8) -> PartKind {
    match os_type {
        TYPE_EFI_SYSTEM => PartKind::EfiSystem,
        TYPE_XBOOTLDR => PartKind::Xbootldr,
        TYPE_LINUX => PartKind::LinuxFs,
        _ => PartKind::Other,
    }
}

/// Turn the four slots into partitions, skipping empty, extended,
/// out-of-range and overlapping ones (with warnings for the latter three).
pub(crate) fn to_table(m: &Mbr, disk_blocks: u64) -> PartitionTable {
    let mut partitions: Vec<Partition> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    for (slot, e) in m.entries.iter().enumerate() {
        let number = slot as u32 + 1;
        let start = u64::from(e.starting_lba.get());
        let len = u64::from(e.size_in_lba.get());
        if e.os_type == 0 || len == 0 {
            continue;
        }
        if EXTENDED_TYPES.contains(&e.os_type) {
            warnings.push(format!(
                "MBR partition {number} is an extended partition (type 0x{:02X}); logical partitions are not scanned",
                e.os_type
            ));
            continue;
        }
        // Sum of two u32 values cannot overflow u64.
        let end = start + len;
        if start == 0 || end > disk_blocks {
            warnings.push(format!(
                "MBR partition {number}: blocks {start}..{end} do not fit on a disk of {disk_blocks} blocks; skipped"
            ));
            continue;
        }
        if let Some(o) = partitions
            .iter()
            .find(|p| overlaps(p.first_lba, p.num_blocks, start, len))
        {
            warnings.push(format!(
                "MBR partition {number}: blocks {start}..{end} overlap partition {}; skipped",
                o.number
            ));
            continue;
        }
        partitions.push(Partition {
            number,
            first_lba: start,
            num_blocks: len,
            kind: kind_of(e.os_type),
            type_guid: None,
            unique_guid: None,
            name: String::new(),
            mbr_type: Some(e.os_type),
            // 0x80 = active; mirror it as the GPT "legacy BIOS bootable" bit.
            attributes: if e.boot_indicator & 0x80 != 0 {
                1 << 2
            } else {
                0
            },
        });
    }
    PartitionTable {
        scheme: Scheme::Mbr,
        gpt_copy: None,
        disk_guid: None,
        partitions,
        warnings,
    }
}
