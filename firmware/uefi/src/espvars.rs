//! Non-volatile variables where the machine has no variable flash (PVH on
//! Cloud Hypervisor-like VMMs, `-bios` without a second pflash unit): a
//! fixed-size file on the ESP that holds the same crash-safe log
//! `ember-varstore` keeps on flash, read and written through Ember's FAT
//! driver while boot services run.
//!
//! The file is created once, whole, before the UEFI layer mounts the ESP
//! for loaders; afterwards every write lands inside its cluster chain, so
//! the store never allocates clusters behind the back of the other FAT
//! instance that loaders write through. After ExitBootServices the disk
//! belongs to the OS: changes from then on live in memory until reset.

use crate::disk::{Disk, SharedDisk};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use ember_block::Slice;
use ember_fat::{File, FileSystem};
use ember_part::PartKind;
use ember_varstore::{Flash, FlashError, FlashOp, BLOCK_SIZE};

/// Where the store lives on the ESP.
pub const PATH: &str = "/EFI/ember/nvvars.bin";
const DIR: &str = "/EFI/ember";
/// 64 erase blocks: two banks of 128 KiB, room for shim's MOK lists, boot
/// options and loaders' state (the flash store is 528 KiB).
pub const LEN: u32 = 64 * BLOCK_SIZE;

/// The file, as a flash device with NOR rules (programming only clears bits).
pub struct EspFile {
    fs: FileSystem<Slice<SharedDisk>>,
    file: File,
    /// The file's contents: read once (the store reads its banks in small
    /// pieces; one request for the whole file is far cheaper), then kept in
    /// step with every write.
    image: Vec<u8>,
    /// e.g. `virtio-blk 00:03.0 partition 1`, for the console.
    pub place: String,
}

// SAFETY: Ember runs on one CPU without threads; the shared disk inside is
// only reached under the variable store's lock, during boot services (the
// store is dropped at ExitBootServices).
unsafe impl Send for EspFile {}

impl EspFile {
    fn new(
        mut fs: FileSystem<Slice<SharedDisk>>,
        file: File,
        place: String,
    ) -> Result<EspFile, String> {
        let mut image = vec![0u8; LEN as usize];
        match fs.read_at(&file, 0, &mut image) {
            Ok(n) if n == image.len() => Ok(EspFile {
                fs,
                file,
                image,
                place,
            }),
            Ok(n) => Err(format!("{PATH}: short read ({n} bytes)")),
            Err(e) => Err(format!("{PATH}: {e}")),
        }
    }

    /// The bytes at `offset`, or why the access is out of range.
    fn range(&self, offset: u32, len: usize) -> Result<core::ops::Range<usize>, FlashError> {
        let at = offset as usize;
        match at.checked_add(len) {
            Some(end) if end <= self.image.len() => Ok(at..end),
            _ => Err(FlashError::OutOfRange {
                offset,
                len: u32::try_from(len).unwrap_or(u32::MAX),
            }),
        }
    }

    /// Write through to the disk, and to the copy. A failed disk write
    /// leaves the file in an unknown state; the store treats it like a
    /// flash failure and the copy takes the intended bytes, as a flash
    /// would hold them if the write had gone through.
    fn write(&mut self, offset: u32, data: &[u8], op: FlashOp) -> Result<(), FlashError> {
        let r = self.range(offset, data.len())?;
        let written = self.fs.write_at(&mut self.file, u64::from(offset), data);
        self.image[r].copy_from_slice(data);
        written
            .map(|_| ())
            .map_err(|_| FlashError::Device { op, offset })
    }
}

impl Flash for EspFile {
    fn len(&self) -> u32 {
        LEN
    }

    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), FlashError> {
        let r = self.range(offset, buf.len())?;
        buf.copy_from_slice(&self.image[r]);
        Ok(())
    }

    fn program(&mut self, offset: u32, data: &[u8]) -> Result<(), FlashError> {
        let r = self.range(offset, data.len())?;
        // NOR semantics, so the store's reasoning about torn writes holds.
        let now: Vec<u8> = self.image[r].iter().zip(data).map(|(n, d)| n & d).collect();
        self.write(offset, &now, FlashOp::Program)
    }

    fn erase(&mut self, block: u32) -> Result<(), FlashError> {
        let offset = block
            .checked_mul(BLOCK_SIZE)
            .ok_or(FlashError::OutOfRange {
                offset: u32::MAX,
                len: BLOCK_SIZE,
            })?;
        self.write(offset, &[0xff; BLOCK_SIZE as usize], FlashOp::Erase)
    }
}

/// Open the store file on the first ESP that has one, else (with `create`)
/// create it on the first writable ESP. `None` if neither works.
pub fn open(disks: &[Disk], create: bool) -> Option<EspFile> {
    let mut candidates = alloc::vec::Vec::new();
    for d in disks {
        let Ok(table) = ember_part::read_partitions(&mut d.dev.clone()) else {
            continue;
        };
        for p in table
            .partitions
            .iter()
            .filter(|p| p.kind == PartKind::EfiSystem)
        {
            let Ok(slice) = Slice::new(d.dev.clone(), p.first_lba, p.num_blocks) else {
                continue;
            };
            let Ok(mut fs) = FileSystem::mount(slice) else {
                continue;
            };
            let place = format!("{} partition {}", d.name, p.number);
            match fs.open(PATH) {
                Ok(file) if file.size() == u64::from(LEN) => {
                    match EspFile::new(fs, file, place.clone()) {
                        Ok(f) => return Some(f),
                        Err(e) => log::warn!("UEFI variables: {place}: {e}"),
                    }
                }
                Ok(file) => log::warn!(
                    "UEFI variables: {place}: {PATH} is {} bytes, not {LEN}; ignored",
                    file.size()
                ),
                Err(ember_fat::FatError::NotFound(_)) => candidates.push((fs, place)),
                Err(e) => log::warn!("UEFI variables: {place}: {PATH}: {e}"),
            }
        }
    }
    if !create {
        return None;
    }
    for (mut fs, place) in candidates {
        match create_file(&mut fs) {
            Ok(file) => {
                log::info!("UEFI variables: created {PATH} on {place}");
                match EspFile::new(fs, file, place.clone()) {
                    Ok(f) => return Some(f),
                    Err(e) => log::warn!("UEFI variables: {place}: {e}"),
                }
            }
            Err(e) => log::warn!("UEFI variables: cannot create {PATH} on {place}: {e}"),
        }
    }
    None
}

/// The file at its full size, erased (0xFF, a blank volume), written in one
/// go so its clusters are allocated before anything else mounts the ESP.
fn create_file(fs: &mut FileSystem<Slice<SharedDisk>>) -> Result<File, ember_fat::FatError> {
    if fs.stat(DIR).is_err() {
        if fs.stat("/EFI").is_err() {
            fs.mkdir("/EFI")?;
        }
        fs.mkdir(DIR)?;
    }
    let mut file = fs.create_file(PATH)?;
    let blank = vec![0xffu8; LEN as usize];
    fs.write_at(&mut file, 0, &blank)?;
    fs.flush()?;
    Ok(file)
}
