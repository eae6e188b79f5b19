//! The UEFI boot path on arm64: when no Boot Loader Specification entry
//! booted, Ember starts its UEFI layer (ember-uefi, shared with x86_64)
//! with QEMU's device tree as a configuration table and runs each ESP's
//! removable-media loader, `\EFI\BOOT\BOOTAA64.EFI` — shim, systemd-boot,
//! GRUB or a UKI. QEMU's ACPI and SMBIOS tables, when it offers them, are
//! published too (`acpi.rs`, `smbios.rs`).

use crate::disk::Disk;
use crate::pl011::Pl011;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use ember_part::PartKind;
use r_efi::efi;

/// The removable-media path for AArch64 (UEFI 2.10, 3.5.1.1).
pub const REMOVABLE_PATH: &str = "/EFI/BOOT/BOOTAA64.EFI";

/// EFI_DTB_TABLE_GUID: the device tree as a configuration table.
const DTB_TABLE_GUID: efi::Guid = efi::Guid::from_fields(
    0xb1b6_21d5,
    0xf19c,
    0x41a5,
    0x83,
    0x0b,
    &[0xd9, 0x15, 0x2c, 0x69, 0xaa, 0xe0],
);

static READY: AtomicBool = AtomicBool::new(false);
/// fw_cfg's MMIO base (0: none), for QEMU's ACPI tables.
static FW_CFG: AtomicUsize = AtomicUsize::new(0);

/// Where fw_cfg is, once the device tree has said.
///
/// # Safety
/// `base` must be the fw_cfg MMIO registers the device tree names, mapped
/// as device memory.
pub unsafe fn set_fw_cfg(base: usize) {
    FW_CFG.store(base, Ordering::Relaxed);
}

/// Start the UEFI layer (once): page tables loaders can run from, the
/// system table, handles for `disks`, the device tree as a configuration
/// table.
pub fn prepare(disks: &[Disk], dtb: usize, ram: &[(u64, u64)]) -> Result<(), String> {
    if READY.load(Ordering::Relaxed) {
        return Ok(());
    }
    if !crate::machine::enter_uefi_mapping(ram) {
        return Err("UEFI: cannot build page tables for loaders".into());
    }
    if let Some(base) = crate::machine::rtc_base() {
        // GetTime and SetTime read the PL031 after ExitBootServices: the OS
        // maps it for runtime services only if the memory map says so.
        let _ = ember_uefi::ram::MAP.lock().map_mut().add(
            base,
            base + 0x1000,
            ember_mem::MemKind::Allocated(efi::MEMORY_MAPPED_IO),
        );
    }
    let rsdp = match FW_CFG.load(Ordering::Relaxed) {
        0 => None,
        base => {
            // SAFETY: the registers set_fw_cfg was given.
            let fw = unsafe { crate::fwcfg::FwCfg::new(base) };
            let bytes = fw.directory();
            match bytes
                .as_deref()
                .and_then(|b| ember_fwcfg::dir::Directory::parse(b).ok())
            {
                Some(dir) => {
                    crate::smbios::install(&fw, &dir);
                    crate::acpi::install(&fw, dir)
                }
                None => {
                    log::warn!("fw_cfg: no readable file directory (DMA); no ACPI or SMBIOS");
                    None
                }
            }
        }
    };
    ember_uefi::init(disks, rsdp.unwrap_or(0))?;
    ember_uefi::add_config_table(DTB_TABLE_GUID, dtb as u64);
    READY.store(true, Ordering::Relaxed);
    Ok(())
}

/// Run `path` from the partition at `lba` of disk `di` with `options` as
/// its load options; returns if it does (logged).
pub fn start(disks: &[Disk], di: usize, lba: u64, path: &str, options: &str) {
    let name = &disks[di].name;
    let mut opts: Vec<u8> = Vec::new();
    if !options.is_empty() {
        for u in options.encode_utf16().chain(core::iter::once(0)) {
            opts.extend_from_slice(&u.to_le_bytes());
        }
    }
    log::info!("{name}: starting {path}");
    match ember_uefi::start_file(di, lba, path, &opts) {
        Ok(st) => log::error!("{name}: {path} returned {}", ember_uefi::status_name(st)),
        Err(e) => log::warn!("{name}: {path}: {e}"),
    }
}

/// Start the UEFI layer and try every ESP's removable path; returns if
/// nothing booted.
pub fn boot(disks: &[Disk], dtb: usize, ram: &[(u64, u64)], out: &mut Pl011) {
    if let Err(e) = prepare(disks, dtb, ram) {
        let _ = writeln!(out, "{e}");
        return;
    }
    for (di, d) in disks.iter().enumerate() {
        let mut dev = d.dev.clone();
        let esps: Vec<u64> = match ember_part::read_partitions(&mut dev) {
            Ok(t) => t
                .partitions
                .iter()
                .filter(|p| p.kind == PartKind::EfiSystem)
                .map(|p| p.first_lba)
                .collect(),
            Err(e) => {
                log::info!("{}: {e}", d.name);
                continue;
            }
        };
        for lba in esps {
            start(disks, di, lba, REMOVABLE_PATH, "");
        }
    }
}
