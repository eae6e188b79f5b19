//! QEMU's SMBIOS tables on arm64 `virt`: QEMU hands firmware the
//! structures and an entry point (`etc/smbios/smbios-tables`,
//! `etc/smbios/smbios-anchor`); the firmware places both and fixes the
//! entry point's table address (`ember_smbios::fixup_anchor`, host-tested,
//! as on x86_64). The UEFI layer publishes the entry point as a
//! configuration table (`Machine::smbios_tables`).

use crate::fwcfg::FwCfg;
use ember_fwcfg::dir::Directory;
use ember_mem::MemKind;
use r_efi::efi;
use spin::Once;

/// The placed entry point: (64-bit, address).
static ENTRY: Once<(bool, u64)> = Once::new();

/// The entry point, once placed.
pub fn entry() -> Option<(bool, u64)> {
    ENTRY.get().copied()
}

/// Runtime-services data: the OS keeps it.
fn alloc(len: usize) -> Option<u64> {
    ember_uefi::ram::alloc_below_4g(
        len as u64,
        4096,
        MemKind::Allocated(efi::RUNTIME_SERVICES_DATA),
    )
}

/// Place QEMU's tables, found in fw_cfg's file directory `dir`; logs what
/// happened.
pub fn install(fw: &FwCfg, dir: &Directory<'_>) {
    if ENTRY.get().is_some() {
        return;
    }
    let read = |name, limit| fw.read_entry(&dir.find(name)?, limit);
    let (Some(tables), Some(mut anchor)) = (
        read("etc/smbios/smbios-tables", 64 * 1024),
        read("etc/smbios/smbios-anchor", 64),
    ) else {
        log::info!("SMBIOS: fw_cfg has no tables from QEMU");
        return;
    };
    let (Some(at), Some(ep)) = (alloc(tables.len()), alloc(anchor.len())) else {
        log::warn!("SMBIOS: no memory for QEMU's tables");
        return;
    };
    match ember_smbios::fixup_anchor(&mut anchor, at, tables.len() as u32) {
        Ok(kind) => {
            // SAFETY: both ranges were just allocated for these bytes.
            unsafe {
                ember_uefi::phys::bytes_mut(at, tables.len()).copy_from_slice(&tables);
                ember_uefi::phys::bytes_mut(ep, anchor.len()).copy_from_slice(&anchor);
            }
            let is64 = kind == ember_smbios::Anchor::Smbios30;
            ENTRY.call_once(|| (is64, ep));
            log::info!(
                "SMBIOS: QEMU's tables ({} bytes) at {at:#x}, {} entry point at {ep:#x}",
                tables.len(),
                if is64 { "3.0" } else { "2.1" }
            );
        }
        Err(e) => log::warn!("SMBIOS: QEMU's entry point: {e}; no SMBIOS"),
    }
}
