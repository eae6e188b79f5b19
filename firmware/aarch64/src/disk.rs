//! Booting from a disk: every virtio-mmio block device the device tree
//! lists, its GPT/MBR, the ESP and XBOOTLDR partitions' Boot Loader
//! Specification type #1 entries for `aa64` (or no architecture) and type
//! #2 entries (arm64 UKIs in `/EFI/Linux`), ordered and defaulted as
//! systemd-boot does (`ember-bls`), then the entry's `Image` and initrds
//! loaded straight into place and started with the arm64 boot protocol
//! (linux.rs), or an `efi` entry or UKI started through the UEFI layer
//! (efiboot.rs). The same portable crates as on x86_64.

use crate::linux;
use crate::pl011::Pl011;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use ember_block::{BlockDevice, Slice};
use ember_bls::{Entry, LoaderConf};
use ember_fat::FileSystem;
use ember_part::PartKind;
use ember_virtio::{MmioRegion, Timeout, Transport, VirtioBlk, VirtioMmio};

/// A started block device (virtio-mmio or virtio-pci).
pub type Dev = alloc::boxed::Box<dyn BlockDevice>;
/// A disk with its name and place, shared with the UEFI layer.
pub use ember_uefi::disk::{Disk, Location, SharedDisk};

/// Wrap a started device for the boot paths.
pub fn disk(name: String, dev: Dev, location: Location) -> Disk {
    Disk {
        name,
        dev: SharedDisk(alloc::rc::Rc::new(core::cell::RefCell::new(dev))),
        location,
    }
}

/// Largest entry file Ember reads.
const CONF_LIMIT: u64 = 64 * 1024;

/// Start the virtio-blk driver on a transport; `None` (logged) on failure.
pub fn start_blk<T: Transport + 'static>(name: &str, t: T) -> Option<Dev> {
    let timeout = Timeout::Clock {
        now_ns: crate::rt::now_ns,
        timeout_ns: 10_000_000_000,
    };
    // SAFETY: identity-mapped, no IOMMU: buffer addresses are what the
    // device DMAs to; the transport drives a real device.
    match unsafe { VirtioBlk::new(t, &crate::rt::PageDma, timeout) } {
        Ok(b) => Some(alloc::boxed::Box::new(b)),
        Err(e) => {
            log::warn!("{name}: cannot use it: {e}");
            None
        }
    }
}

/// The virtio-blk devices among `transports` (base, length).
pub fn discover(transports: &[(usize, usize)]) -> Vec<Disk> {
    let mut out = Vec::new();
    for &(base, len) in transports {
        // SAFETY: a virtio-mmio transport the device tree lists, inside the
        // device window the entry maps (checked by the caller).
        let Some(region) = (unsafe { MmioRegion::new(base as u64, len) }) else {
            continue;
        };
        let Ok(t) = VirtioMmio::new(region) else {
            continue;
        };
        if t.device_type() != ember_virtio::device_type::BLOCK {
            continue;
        }
        let name = format!("virtio-blk mmio@{base:#x} (v{})", t.version());
        if let Some(b) = start_blk(&name, t) {
            out.push(disk(name, b, Location::Mmio(base as u64)));
        }
    }
    out
}

struct Found {
    entry: Entry,
    first_lba: u64,
    num_blocks: u64,
    part: u32,
    /// The partition's GPT unique GUID (LoaderDevicePartUUID).
    uuid: Option<ember_part::Guid>,
}

impl Found {
    /// `entry`, found on partition `p`.
    fn on(p: &ember_part::Partition, entry: Entry) -> Found {
        Found {
            entry,
            first_lba: p.first_lba,
            num_blocks: p.num_blocks,
            part: p.number,
            uuid: p.unique_guid,
        }
    }
}

/// The disk's entries, sorted, and loader.conf from its ESP.
fn entries(name: &str, dev: &mut dyn BlockDevice) -> (Vec<Found>, LoaderConf) {
    let mut found = Vec::new();
    let mut conf = None;
    let table = match ember_part::read_partitions(&mut &mut *dev) {
        Ok(t) => t,
        Err(e) => {
            log::warn!("{name}: {e}");
            return (found, LoaderConf::default());
        }
    };
    for p in &table.partitions {
        let role = match p.kind {
            PartKind::EfiSystem => "ESP",
            PartKind::Xbootldr => "XBOOTLDR",
            _ => continue,
        };
        let Ok(slice) = Slice::new(&mut *dev, p.first_lba, p.num_blocks) else {
            continue;
        };
        let mut fs = match FileSystem::mount(slice) {
            Ok(fs) => fs,
            Err(e) => {
                log::warn!(
                    "{name} partition {} ({role}): not a usable FAT filesystem: {e}",
                    p.number
                );
                continue;
            }
        };
        if role == "ESP" && conf.is_none() {
            if let Ok(b) = fs.read_file("/loader/loader.conf", CONF_LIMIT) {
                conf = Some(ember_bls::parse_loader_conf(&b));
            }
        }
        // Type #2: unified kernel images, described by their .osrel and
        // .cmdline sections (started through the UEFI layer).
        if let Ok(list) = fs.read_dir("/EFI/Linux") {
            for d in list
                .iter()
                .filter(|d| !d.is_dir && d.name.to_ascii_lowercase().ends_with(".efi"))
            {
                let path = format!("/EFI/Linux/{}", d.name);
                let entry = fs.open(&path).map_err(|e| format!("{e}")).and_then(|f| {
                    ember_bls::read_uki(
                        &d.name,
                        &path,
                        f.size(),
                        &[ember_pe::MACHINE_AARCH64],
                        |off, buf| fs.read_at(&f, off, buf).map_err(|e| format!("{e}")),
                    )
                });
                match entry {
                    Ok(entry) => found.push(Found::on(p, entry)),
                    Err(e) => log::warn!("{name} partition {}: {path}: {e}", p.number),
                }
            }
        }
        let Ok(list) = fs.read_dir("/loader/entries") else {
            continue;
        };
        for d in list
            .iter()
            .filter(|d| !d.is_dir && d.name.to_ascii_lowercase().ends_with(".conf"))
        {
            let path = format!("/loader/entries/{}", d.name);
            match fs
                .read_file(&path, CONF_LIMIT)
                .map_err(|e| format!("{e}"))
                .and_then(|b| ember_bls::parse_entry(&d.name, &b).map_err(|e| format!("{e}")))
            {
                Ok(e) if !ember_bls::arch_matches(&e, "aa64") => {
                    log::info!(
                        "{name} partition {}: {path}: skipped, architecture {:?}",
                        p.number,
                        e.architecture
                    )
                }
                Ok(entry) => found.push(Found::on(p, entry)),
                Err(e) => log::warn!("{name} partition {}: {path}: {e}", p.number),
            }
        }
    }
    found.sort_by(|a, b| ember_bls::entry_cmp(&a.entry, &b.entry));
    (found, conf.unwrap_or_default())
}

/// Load one entry's Image and initrds into place and start it. Returns only
/// on failure, with the reason.
fn boot_entry(
    dev: &mut dyn BlockDevice,
    f: &Found,
    dtb: usize,
    ram: (usize, usize),
    out: &mut Pl011,
) -> Result<(), String> {
    let e = &f.entry;
    let linux_path = e.linux.as_deref().ok_or("entry has no `linux`")?;
    let slice = Slice::new(&mut *dev, f.first_lba, f.num_blocks).map_err(|e| format!("{e}"))?;
    let mut fs = FileSystem::mount(slice).map_err(|e| format!("{e}"))?;
    let kf = fs
        .open(linux_path)
        .map_err(|e| format!("{linux_path}: {e}"))?;
    let klen = kf.size() as usize;
    let mut head = [0u8; 64];
    fs.read_at(&kf, 0, &mut head)
        .map_err(|e| format!("{linux_path}: {e}"))?;
    let hdr = linux::parse_header(&head, klen).map_err(|e| format!("{linux_path}: {e}"))?;
    let mut initrds = Vec::new();
    for p in &e.initrd {
        let f = fs.open(p).map_err(|e| format!("{p}: {e}"))?;
        initrds.push(f);
    }
    let initrd_size: usize = initrds
        .iter()
        .map(|f| (f.size() as usize).next_multiple_of(4))
        .sum();
    let (kernel, initrd, dtb_new) = linux::place(&hdr, initrd_size, ram)?;
    // SAFETY: RAM `place` reserved for the kernel's image_size, inside RAM.
    let kbuf = unsafe { core::slice::from_raw_parts_mut(kernel as *mut u8, klen) };
    let n = fs
        .read_at(&kf, 0, kbuf)
        .map_err(|e| format!("{linux_path}: {e}"))?;
    if n != klen {
        return Err(format!("{linux_path}: short read ({n} of {klen} bytes)"));
    }
    // Initrds back to back, 4-byte aligned (the kernel unpacks them in turn).
    let mut at = initrd;
    for (f, p) in initrds.iter().zip(&e.initrd) {
        let len = f.size() as usize;
        // SAFETY: inside the initrd area `place` reserved (sizes summed above).
        let buf = unsafe { core::slice::from_raw_parts_mut(at as *mut u8, len) };
        fs.read_at(f, 0, buf).map_err(|e| format!("{p}: {e}"))?;
        at += len.next_multiple_of(4);
    }
    // The entry's own device tree replaces QEMU's (`devicetree`); Ember
    // still writes /chosen into it.
    let own_dtb = match &e.devicetree {
        Some(p) => Some(read_dtb(&mut fs, p)?),
        None => None,
    };
    if e.unknown.iter().any(|(k, _)| k == "devicetree-overlay") {
        log::warn!(
            "entry {}: devicetree-overlay is not supported; the overlays are ignored",
            e.id
        );
    }
    let mut bootargs: Vec<u8> = e.options.clone().unwrap_or_default().into_bytes();
    bootargs.push(0);
    let src = match &own_dtb {
        Some(d) => d.as_slice(),
        // SAFETY: QEMU's device tree, validated at start-up.
        None => unsafe { linux::qemu_dtb(dtb) },
    };
    linux::start(
        kernel,
        klen,
        (initrd, initrd_size),
        &bootargs,
        src,
        dtb_new,
        out,
    )
    .map_err(|why| match &e.devicetree {
        Some(p) => format!("devicetree {p}: {why}"),
        None => String::from(why),
    })
}

/// An entry's `devicetree` file: read whole, with room left in the 2 MiB
/// Ember gives the kernel's copy for the /chosen properties it adds.
fn read_dtb<B: BlockDevice>(fs: &mut FileSystem<B>, path: &str) -> Result<Vec<u8>, String> {
    const MAX: u64 = ember_linux::arm64::DTB_MAX - 64 * 1024;
    let f = fs
        .open(path)
        .map_err(|e| format!("devicetree {path}: {e}"))?;
    if f.size() > MAX {
        return Err(format!(
            "devicetree {path}: {} bytes, more than the {MAX} Ember allows",
            f.size()
        ));
    }
    let mut buf = alloc::vec![0u8; f.size() as usize];
    let n = fs
        .read_at(&f, 0, &mut buf)
        .map_err(|e| format!("devicetree {path}: {e}"))?;
    buf.truncate(n);
    log::info!("devicetree {path}: {n} bytes, used instead of QEMU's");
    Ok(buf)
}

/// Try every disk's entries: the default first, then the others; returns
/// only if nothing booted.
pub fn boot(
    disks: &mut [Disk],
    dtb: usize,
    ram: (usize, usize),
    regions: &[(u64, u64)],
    out: &mut Pl011,
) {
    ember_uefi::loader_vars::mark_init();
    for di in 0..disks.len() {
        let (name, mut dev) = (disks[di].name.clone(), disks[di].dev.clone());
        let (name, dev) = (&name, &mut dev);
        log::info!(
            "{name}: {} MiB",
            (dev.num_blocks() * u64::from(dev.block_size())) >> 20
        );
        let (found, conf) = entries(name, dev);
        if found.is_empty() {
            log::info!("{name}: no boot loader entries");
            continue;
        }
        let list: Vec<Entry> = found.iter().map(|f| f.entry.clone()).collect();
        let Some(sel) = ember_bls::select_default(&list, &conf) else {
            continue;
        };
        for (i, f) in found.iter().enumerate() {
            log::info!(
                "  {} {} — {} (partition {})",
                if i == sel.index { "*" } else { " " },
                f.entry.id,
                f.entry.title.as_deref().unwrap_or(&f.entry.id),
                f.part
            );
        }
        let order = core::iter::once(sel.index).chain((0..found.len()).filter(|&i| i != sel.index));
        for i in order {
            let f = &found[i];
            log::info!("{name}: booting {}", f.entry.id);
            if let Some(path) = &f.entry.efi {
                // An EFI program (systemd-boot, a UKI, shim): through the
                // UEFI layer, with the entry's options as load options.
                let options = f.entry.options.clone().unwrap_or_default();
                match crate::efiboot::prepare(disks, dtb, regions) {
                    Ok(()) => {
                        // Ember is the boot loader here: systemd's loader
                        // variables say so (systemd-boot overwrites them).
                        ember_uefi::loader_vars::publish(f.uuid.as_ref(), path);
                        crate::efiboot::start(disks, di, f.first_lba, path, &options)
                    }
                    Err(e) => log::error!("{name}: entry {}: {e}", f.entry.id),
                }
                continue;
            }
            if let Err(e) = boot_entry(dev, f, dtb, ram, out) {
                log::error!(
                    "{name} partition {}: entry {} failed: {e}; trying the next one",
                    f.part,
                    f.entry.id
                );
            }
        }
    }
    let _ = writeln!(out, "Ember: nothing on {} disk(s) booted", disks.len());
}
