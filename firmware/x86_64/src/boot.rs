//! Choosing what to boot: per disk, in discovery order, the Boot Loader
//! Specification type #1 entries of its ESP and XBOOTLDR partitions, ordered
//! and defaulted as systemd-boot does. The console says what was considered,
//! what was chosen and why, and — when something fails — what failed and
//! where, before moving on to the next entry and then the next disk.

use crate::devices::Disk;
use crate::{linux, time};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use ember_block::{BlockDevice, Slice};
use ember_bls::{Entry, LoaderConf, Reason};
use ember_fat::FileSystem;
use ember_part::{PartKind, Partition};

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

fn mount<'a>(disk: &'a mut dyn BlockDevice, p: &Partition) -> Result<FileSystem<Slice<&'a mut dyn BlockDevice>>, String> {
    let s = Slice::new(disk, p.first_lba, p.num_blocks).map_err(|e| format!("{e}"))?;
    FileSystem::mount(s).map_err(|e| format!("{e}"))
}

/// Read `/loader/entries/*.conf` from one partition.
fn collect(disk: &mut Disk, src: &Source, out: &mut Vec<Candidate>, conf: &mut Option<LoaderConf>) {
    let where_ = format!("{} partition {} ({})", disk.name, src.part.number, src.role);
    let mut fs = match mount(&mut *disk.dev, &src.part) {
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
    let list = match fs.read_dir("/loader/entries") {
        Ok(l) => l,
        Err(e) => {
            log::debug!("{where_}: no /loader/entries: {e}");
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
                log::info!("{where_}: {path}: skipped, architecture {:?}", entry.architecture);
            }
            Ok(entry) => out.push(Candidate { entry, source: src.clone() }),
            Err(e) => log::warn!("{where_}: {path}: {e}"),
        }
    }
}

/// Try every disk in turn; returns only if nothing could be booted.
pub fn run(disks: &mut [Disk], rsdp: u64, vmm_cmdline: &str) {
    for disk in disks.iter_mut() {
        let t0 = time::since_start_us();
        let table = match ember_part::read_partitions(&mut &mut *disk.dev) {
            Ok(t) => t,
            Err(e) => {
                log::warn!("{}: {e}; trying the next disk", disk.name);
                continue;
            }
        };
        for w in &table.warnings {
            log::warn!("{}: {w}", disk.name);
        }
        let mut sources: Vec<Source> = Vec::new();
        for p in &table.partitions {
            match p.kind {
                PartKind::EfiSystem => sources.push(Source { part: p.clone(), role: "ESP" }),
                PartKind::Xbootldr => sources.push(Source { part: p.clone(), role: "XBOOTLDR" }),
                _ => {}
            }
        }
        if sources.is_empty() {
            log::info!("{}: {:?} table with {} partition(s), none is an ESP or XBOOTLDR", disk.name, table.scheme, table.partitions.len());
            continue;
        }
        let mut conf = None;
        let mut cands = Vec::new();
        for s in &sources {
            collect(disk, s, &mut cands, &mut conf);
        }
        log::debug!("{}: partitions and entries read in {} us", disk.name, time::since_start_us() - t0);
        if cands.is_empty() {
            log::info!("{}: no boot loader entries", disk.name);
            continue;
        }
        let conf = conf.unwrap_or_default();
        cands.sort_by(|a, b| ember_bls::entry_cmp(&a.entry, &b.entry));
        let entries: Vec<Entry> = cands.iter().map(|c| c.entry.clone()).collect();
        let sel = ember_bls::select_default(&entries, &conf);
        log::info!("{}: {} boot entr{}:", disk.name, cands.len(), if cands.len() == 1 { "y" } else { "ies" });
        for (i, c) in cands.iter().enumerate() {
            log::info!(
                "  {} {} — {} (partition {} {})",
                if sel.as_ref().is_some_and(|s| s.index == i) { "*" } else { " " },
                c.entry.id,
                c.entry.title.as_deref().unwrap_or(&c.entry.id),
                c.source.part.number,
                c.source.role
            );
        }
        let Some(sel) = sel else { continue };
        let why = match &sel.reason {
            Reason::MatchedDefaultPattern(p) => format!("matches loader.conf default \"{p}\""),
            Reason::DefaultPatternUnmatched(p) => {
                format!("loader.conf default \"{p}\" matches nothing; first in Boot Loader Specification order")
            }
            Reason::FirstInOrder => "first in Boot Loader Specification order".into(),
            Reason::OnlyEntry => "only entry".into(),
        };
        let exhausted = if sel.all_exhausted { ", though every entry has used up its boot tries" } else { "" };
        log::info!("{}: chose {} ({why}{exhausted})", disk.name, cands[sel.index].entry.id);
        // The default first, then the others in menu order.
        let order = core::iter::once(sel.index).chain((0..cands.len()).filter(|&i| i != sel.index));
        for i in order {
            let c = &cands[i];
            match boot_entry(disk, c, rsdp, vmm_cmdline) {
                Ok(never) => match never {},
                Err(e) => log::error!(
                    "{} partition {}: entry {} failed: {e}; trying the next one",
                    disk.name, c.source.part.number, c.entry.id
                ),
            }
        }
    }
}

/// Load and start one entry; returns only on failure.
fn boot_entry(disk: &mut Disk, c: &Candidate, rsdp: u64, vmm_cmdline: &str) -> Result<core::convert::Infallible, String> {
    let Some(kernel) = c.entry.linux.as_deref() else {
        return Err("entry has no `linux` key (EFI-only entries need the UEFI layer)".into());
    };
    // Kernel and initrds may live on the ESP or the XBOOTLDR partition that held the entry.
    let mut fs = mount(&mut *disk.dev, &c.source.part)?;
    let mut cmdline = c.entry.options.clone().unwrap_or_default();
    // microvm/Firecracker describe their virtio-mmio devices on the VMM command
    // line; the kernel needs them too to find its disks.
    for w in vmm_cmdline.split_ascii_whitespace().filter(|w| w.starts_with("virtio_mmio.device=")) {
        if !cmdline.contains(w) {
            cmdline.push(' ');
            cmdline.push_str(w);
        }
    }
    linux::boot(&mut fs, kernel, &c.entry.initrd, &cmdline, rsdp)
}
