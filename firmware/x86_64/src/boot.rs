//! Choosing what to boot: per disk, in discovery order, the Boot Loader
//! Specification type #1 entries of its ESP and XBOOTLDR partitions, ordered
//! and defaulted as systemd-boot does. The console says what was considered,
//! what was chosen and why, and — when something fails — what failed and
//! where, before moving on to the next entry and then the next disk.

use crate::devices::{Disk, SharedDisk};
use crate::{linux, time};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::convert::Infallible;
use ember_block::Slice;
use ember_bls::{Entry, LoaderConf, Reason};
use ember_fat::FileSystem;
use ember_part::{PartKind, Partition};

/// The removable-media boot path for x86_64 (UEFI spec 3.5.1.1).
const FALLBACK: &str = "/EFI/BOOT/BOOTX64.EFI";

/// Largest entry or loader.conf file Ember reads.
const CONF_LIMIT: u64 = 64 * 1024;

/// Where an entry was found.
#[derive(Clone)]
pub struct Source {
    pub part: Partition,
    pub role: &'static str,
}

/// An entry with its origin.
pub struct Candidate {
    pub entry: Entry,
    pub source: Source,
}

fn mount(disk: &SharedDisk, p: &Partition) -> Result<FileSystem<Slice<SharedDisk>>, String> {
    let s = Slice::new(disk.clone(), p.first_lba, p.num_blocks).map_err(|e| format!("{e}"))?;
    FileSystem::mount(s).map_err(|e| format!("{e}"))
}

/// Read `/loader/entries/*.conf` from one partition.
fn collect(disk: &Disk, src: &Source, out: &mut Vec<Candidate>, conf: &mut Option<LoaderConf>) {
    let where_ = format!("{} partition {} ({})", disk.name, src.part.number, src.role);
    let mut fs = match mount(&disk.dev, &src.part) {
        Ok(fs) => fs,
        Err(e) => {
            log::warn!("{where_}: not a usable FAT filesystem: {e}");
            return;
        }
    };
    if src.role == "ESP" && conf.is_none() {
        if let Ok(b) = fs.read_file("/loader/loader.conf", CONF_LIMIT) {
            *conf = Some(ember_bls::parse_loader_conf(&b));
        }
    }
    collect_ukis(&mut fs, &where_, src, out);
    let list = match fs.read_dir("/loader/entries") {
        Ok(l) => l,
        // No directory is normal (a UKI-only or BOOTX64.EFI-only ESP) ...
        Err(ember_fat::FatError::NotFound(_)) => {
            log::debug!("{where_}: no /loader/entries");
            return;
        }
        // ... a damaged one is worth saying.
        Err(e) => {
            log::warn!("{where_}: cannot read /loader/entries: {e}");
            return;
        }
    };
    for d in list.iter().filter(|d| !d.is_dir) {
        let lower = d.name.to_ascii_lowercase();
        if !lower.ends_with(".conf") {
            continue;
        }
        let path = format!("/loader/entries/{}", d.name);
        let bytes = match fs.read_file(&path, CONF_LIMIT) {
            Ok(b) => b,
            Err(e) => {
                log::warn!("{where_}: {path}: {e}");
                continue;
            }
        };
        match ember_bls::parse_entry(&d.name, &bytes) {
            Ok(entry) if !ember_bls::arch_matches(&entry, "x64") => {
                log::info!(
                    "{where_}: {path}: skipped, architecture {:?}",
                    entry.architecture
                );
            }
            Ok(entry) => out.push(Candidate {
                entry,
                source: src.clone(),
            }),
            Err(e) => log::warn!("{where_}: {path}: {e}"),
        }
    }
}

/// How entries with an EFI-stub kernel are started (`ember.boot=`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Through the UEFI layer, as systemd-boot would (the default).
    Uefi,
    /// Straight through the Linux boot protocol: fastest, no UEFI services for the OS.
    Native,
}

/// Type #2 entries: unified kernel images in `/EFI/Linux/*.efi`, described by
/// their `.osrel` and `.cmdline` sections. Only the headers and those two
/// sections are read, not the whole image.
fn collect_ukis(
    fs: &mut FileSystem<Slice<SharedDisk>>,
    where_: &str,
    src: &Source,
    out: &mut Vec<Candidate>,
) {
    let Ok(list) = fs.read_dir("/EFI/Linux") else {
        return;
    };
    for d in list
        .iter()
        .filter(|d| !d.is_dir && d.name.to_ascii_lowercase().ends_with(".efi"))
    {
        let path = format!("/EFI/Linux/{}", d.name);
        match read_uki(fs, &d.name, &path) {
            Ok(entry) => out.push(Candidate {
                entry,
                source: src.clone(),
            }),
            Err(e) => log::warn!("{where_}: {path}: {e}"),
        }
    }
}

fn read_uki(
    fs: &mut FileSystem<Slice<SharedDisk>>,
    name: &str,
    path: &str,
) -> Result<Entry, String> {
    let f = fs.open(path).map_err(|e| format!("{e}"))?;
    ember_bls::read_uki(
        name,
        path,
        f.size(),
        &[ember_pe::MACHINE_X86_64],
        |off, buf| fs.read_at(&f, off, buf).map_err(|e| format!("{e}")),
    )
}

/// The titles of a disk's Boot Loader Specification entries, in the order
/// [`boot_disk`] numbers them (for the boot menu). Empty when the disk has
/// none or cannot be read.
pub fn entry_titles(disk: &Disk) -> Vec<String> {
    let Ok(table) = ember_part::read_partitions(&mut disk.dev.clone()) else {
        return Vec::new();
    };
    let mut conf = None;
    let mut cands = Vec::new();
    for p in &table.partitions {
        let role = match p.kind {
            PartKind::EfiSystem => "ESP",
            PartKind::Xbootldr => "XBOOTLDR",
            _ => continue,
        };
        collect(
            disk,
            &Source {
                part: p.clone(),
                role,
            },
            &mut cands,
            &mut conf,
        );
    }
    cands.sort_by(|a, b| ember_bls::entry_cmp(&a.entry, &b.entry));
    cands
        .iter()
        .map(|c| c.entry.title.clone().unwrap_or_else(|| c.entry.id.clone()))
        .collect()
}

/// Boot one disk Ember's way: its Boot Loader Specification entries (entry
/// `pick`, an index in [`entry_titles`] order, first when the user chose one
/// in the menu; then the default; then the others), or else the
/// removable-media path. Returns only if nothing on it could be booted.
pub fn boot_disk(
    disks: &[Disk],
    di: usize,
    pick: Option<usize>,
    rsdp: u64,
    vmm_cmdline: &str,
    mode: Mode,
) {
    {
        let disk = &disks[di];
        let t0 = time::since_start_us();
        let table = match ember_part::read_partitions(&mut disk.dev.clone()) {
            Ok(t) => t,
            Err(e) => {
                log::warn!("{}: {e}; trying the next disk", disk.name);
                return;
            }
        };
        for w in &table.warnings {
            log::warn!("{}: {w}", disk.name);
        }
        let mut sources: Vec<Source> = Vec::new();
        for p in &table.partitions {
            match p.kind {
                PartKind::EfiSystem => sources.push(Source {
                    part: p.clone(),
                    role: "ESP",
                }),
                PartKind::Xbootldr => sources.push(Source {
                    part: p.clone(),
                    role: "XBOOTLDR",
                }),
                _ => {}
            }
        }
        if sources.is_empty() {
            log::info!(
                "{}: {:?} table with {} partition(s), none is an ESP or XBOOTLDR",
                disk.name,
                table.scheme,
                table.partitions.len()
            );
            return;
        }
        let mut conf = None;
        let mut cands = Vec::new();
        for s in &sources {
            collect(disk, s, &mut cands, &mut conf);
        }
        log::debug!(
            "{}: partitions and entries read in {} us",
            disk.name,
            time::since_start_us() - t0
        );
        if cands.is_empty() {
            // The removable-media path every UEFI firmware falls back to.
            for s in sources.iter().filter(|s| s.role == "ESP") {
                let Ok(mut fs) = mount(&disk.dev, &s.part) else {
                    continue;
                };
                if fs.stat(FALLBACK).is_err() {
                    continue;
                }
                log::info!(
                    "{}: no boot loader entries; starting {FALLBACK} from partition {}",
                    disk.name,
                    s.part.number
                );
                let c = Candidate {
                    entry: Entry {
                        id: "BOOTX64.EFI".into(),
                        ..Entry::default()
                    },
                    source: s.clone(),
                };
                let Err(e) = boot_uefi(disks, di, &c, FALLBACK, &[], &[], rsdp);
                log::error!(
                    "{} partition {}: {e}; trying the next disk",
                    disk.name,
                    s.part.number
                );
            }
            log::info!("{}: no boot loader entries", disk.name);
            return;
        }
        let conf = conf.unwrap_or_default();
        cands.sort_by(|a, b| ember_bls::entry_cmp(&a.entry, &b.entry));
        let entries: Vec<Entry> = cands.iter().map(|c| c.entry.clone()).collect();
        let sel = ember_bls::select_default(&entries, &conf);
        log::info!(
            "{}: {} boot entr{}:",
            disk.name,
            cands.len(),
            if cands.len() == 1 { "y" } else { "ies" }
        );
        for (i, c) in cands.iter().enumerate() {
            log::info!(
                "  {} {} — {} (partition {} {})",
                if sel.as_ref().is_some_and(|s| s.index == i) {
                    "*"
                } else {
                    " "
                },
                c.entry.id,
                c.entry.title.as_deref().unwrap_or(&c.entry.id),
                c.source.part.number,
                c.source.role
            );
        }
        let Some(sel) = sel else { return };
        let why = match &sel.reason {
            Reason::MatchedDefaultPattern(p) => format!("matches loader.conf default \"{p}\""),
            Reason::DefaultPatternUnmatched(p) => {
                format!("loader.conf default \"{p}\" matches nothing; first in Boot Loader Specification order")
            }
            Reason::FirstInOrder => "first in Boot Loader Specification order".into(),
            Reason::OnlyEntry => "only entry".into(),
        };
        let exhausted = if sel.all_exhausted {
            ", though every entry has used up its boot tries"
        } else {
            ""
        };
        log::info!(
            "{}: chose {} ({why}{exhausted})",
            disk.name,
            cands[sel.index].entry.id
        );
        // The user's pick, then the default, then the others in menu order.
        let first = pick.filter(|&i| i < cands.len());
        if let Some(i) = first {
            log::info!("{}: the menu chose {}", disk.name, cands[i].entry.id);
        }
        let mut order: Vec<usize> = Vec::new();
        for i in first
            .into_iter()
            .chain(core::iter::once(sel.index))
            .chain(0..cands.len())
        {
            if !order.contains(&i) {
                order.push(i);
            }
        }
        for i in order {
            let c = &cands[i];
            match boot_entry(disks, di, c, rsdp, vmm_cmdline, mode) {
                Ok(never) => match never {},
                Err(e) => log::error!(
                    "{} partition {}: entry {} failed: {e}; trying the next one",
                    disks[di].name,
                    c.source.part.number,
                    c.entry.id
                ),
            }
        }
    }
}

/// Load and start one entry; returns only on failure.
fn boot_entry(
    disks: &[Disk],
    di: usize,
    c: &Candidate,
    rsdp: u64,
    vmm_cmdline: &str,
    mode: Mode,
) -> Result<Infallible, String> {
    let disk = &disks[di];
    let mut cmdline = c.entry.options.clone().unwrap_or_default();
    // microvm/Firecracker describe their virtio-mmio devices on the VMM command
    // line; the kernel needs them too to find its disks.
    for w in vmm_cmdline
        .split_ascii_whitespace()
        .filter(|w| w.starts_with("virtio_mmio.device="))
    {
        if !cmdline.contains(w) {
            cmdline.push(' ');
            cmdline.push_str(w);
        }
    }
    if let Some(efi) = c.entry.efi.as_deref() {
        return boot_uefi(disks, di, c, efi, &[], &ucs2z(&cmdline), rsdp);
    }
    let Some(kernel) = c.entry.linux.as_deref() else {
        return Err("entry has neither `linux` nor `efi`".into());
    };
    // Kernel and initrds may live on the ESP or the XBOOTLDR partition that held the entry.
    let mut fs = mount(&disk.dev, &c.source.part)?;
    if mode == Mode::Uefi && has_efi_stub(&mut fs, kernel) {
        drop(fs);
        return boot_uefi(
            disks,
            di,
            c,
            kernel,
            &c.entry.initrd,
            &ucs2z(&cmdline),
            rsdp,
        );
    }
    linux::boot(&mut fs, kernel, &c.entry.initrd, &cmdline, rsdp)
}

/// A command line as UEFI load options: UCS-2 with a terminating NUL; empty
/// stays empty.
pub fn ucs2z(s: &str) -> Vec<u8> {
    if s.is_empty() {
        return Vec::new();
    }
    s.encode_utf16()
        .chain(core::iter::once(0))
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// Start a file named by a boot option: `path` on partition `part` of disk
/// `di`, with the option's optional data as load options. Returns only on
/// failure.
pub fn boot_file(
    disks: &[Disk],
    di: usize,
    part: &Partition,
    path: &str,
    options: &[u8],
    rsdp: u64,
) -> Result<Infallible, String> {
    let c = Candidate {
        entry: Entry {
            id: path.into(),
            ..Entry::default()
        },
        source: Source {
            part: part.clone(),
            role: "boot option",
        },
    };
    boot_uefi(disks, di, &c, path, &[], options, rsdp)
}

/// The removable-media path on a partition, for options naming only a
/// partition.
pub const REMOVABLE_PATH: &str = FALLBACK;

/// Whether the kernel image is also a PE image (an EFI stub).
fn has_efi_stub(fs: &mut FileSystem<Slice<SharedDisk>>, path: &str) -> bool {
    let Ok(f) = fs.open(path) else { return false };
    let mut head = [0u8; 0x200];
    if fs.read_at(&f, 0, &mut head).unwrap_or(0) < 0x40 || &head[..2] != b"MZ" {
        return false;
    }
    let pe = u32::from_le_bytes([head[0x3c], head[0x3d], head[0x3e], head[0x3f]]) as usize;
    head.get(pe..pe + 4) == Some(&b"PE\0\0"[..])
}

/// Start an EFI binary through the UEFI layer, with the initrds offered
/// through LoadFile2 and the command line as load options.
fn boot_uefi(
    disks: &[Disk],
    di: usize,
    c: &Candidate,
    path: &str,
    initrds: &[String],
    options: &[u8],
    rsdp: u64,
) -> Result<Infallible, String> {
    crate::efi::init(disks, rsdp).map_err(|e| format!("cannot start the UEFI layer: {e}"))?;
    let first = c.source.part.first_lba;
    let part = crate::efi::partition_handle(di, first).ok_or("the partition has no UEFI handle")?;
    crate::efi::loader_vars::publish(c.source.part.unique_guid.as_ref(), path);
    let offered = match crate::efi::initrd::sfs_of(part) {
        Some(sfs) => crate::efi::initrd::offer(sfs, initrds),
        None => None,
    };
    let r = crate::efi::start_file(di, first, path, options);
    if let Some(h) = offered {
        crate::efi::initrd::withdraw(h);
    }
    let st = r?;
    let asked = crate::efi::initrd::last_size();
    if st == r_efi::efi::Status::OUT_OF_RESOURCES && asked > 0 {
        let free = crate::memory::MAP.lock().map().total_free();
        return Err(format!(
            "{path} returned {}: its initrd ({}, {} MiB) may not fit in the {} MiB of free memory",
            crate::efi::status_name(st),
            initrds.join(", "),
            asked >> 20,
            free >> 20
        ));
    }
    Err(format!("{path} returned {}", crate::efi::status_name(st)))
}
