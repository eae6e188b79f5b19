//! Ember as the machine's firmware: what SeaBIOS or OVMF would otherwise
//! have done before an OS runs — the memory map from fw_cfg, the chipset,
//! PCI resources, QEMU's ACPI tables (through its table-loader script),
//! SMBIOS, `-kernel`, and the `bootorder` list. SMBIOS is also provided
//! when the VMM has none (PVH on Cloud Hypervisor-like VMMs).

use crate::chipset::{self, Chipset};
use crate::devices::{Disk, Location};
use crate::fwcfg::FwCfg;
use crate::{memory, phys, pvh};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use ember_fwcfg::{HostError, LoaderHost, Zone};
use ember_mem::{MemKind, PAGE_SIZE};
use spin::{Mutex, Once};

static CHIPSET: Once<Option<Chipset>> = Once::new();
static AS_FIRMWARE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Record that Ember started from the reset vector (from flash).
pub fn set_as_firmware() {
    AS_FIRMWARE.store(true, core::sync::atomic::Ordering::Relaxed);
}

/// Whether Ember is the machine's firmware, started from its flash image.
pub fn as_firmware() -> bool {
    AS_FIRMWARE.load(core::sync::atomic::Ordering::Relaxed)
}

/// The F segment (0xF0000-0xFFFFF): where legacy OSes scan for the RSDP and
/// SMBIOS anchors. Ember owns it when it is the firmware (the chipset's PAM
/// registers make it RAM) and hands it out bottom-up.
const FSEG: (u64, u64) = (0xf_0000, 0x10_0000);
static FSEG_NEXT: Mutex<u64> = Mutex::new(FSEG.0);

/// SMBIOS entry points Ember placed outside the F segment (for UEFI).
static SMBIOS_EXTRA: Mutex<Vec<(bool, u64)>> = Mutex::new(Vec::new());

/// UEFI memory types of what Ember places for the OS (SMBIOS lives in
/// runtime-services data, as with OVMF).
const EFI_RUNTIME_DATA: u32 = 6;
const EFI_ACPI_RECLAIM: u32 = 9;
const EFI_ACPI_NVS: u32 = 10;

fn fseg_alloc(size: u64, align: u64) -> Option<u64> {
    let mut next = FSEG_NEXT.lock();
    let at = next.next_multiple_of(align.max(16));
    let end = at.checked_add(size)?;
    if end > FSEG.1 {
        return None;
    }
    *next = end;
    Some(at)
}

/// The memory map from fw_cfg's `etc/e820` (before the heap exists).
pub fn e820_from_fwcfg(fw: &mut FwCfg, info: &mut pvh::BootInfo) {
    let Some((key, size)) = fw.find_early("etc/e820") else {
        log::warn!("fw_cfg: no etc/e820");
        return;
    };
    let mut buf = [0u8; 128 * 20];
    let n = (size as usize).min(buf.len());
    fw.read(key, &mut buf[..n]);
    let mut count = 0;
    match ember_fwcfg::parse_e820(&buf[..n]) {
        Ok(entries) => {
            for e in entries {
                info.push_memmap(e.addr.get(), e.size.get(), e.kind.get());
                count += 1;
            }
        }
        Err(e) => log::warn!("fw_cfg: etc/e820: {e}"),
    }
    if count > 0 {
        // No BIOS lives below 1 MiB, but 0xA0000-0xFFFFF is VGA and ROM
        // space, and the F segment holds the anchors Ember installs.
        info.push_memmap(0xa_0000, 0x6_0000, ember_mem::E820_RESERVED);
    }
    log::debug!("fw_cfg: {count} E820 entries");
}

/// Record the chipset and the address ranges its set-up claimed.
pub fn set_chipset(c: Option<Chipset>, info: &mut pvh::BootInfo) {
    if c == Some(Chipset::Q35) {
        // Linux accepts MCFG's window only where the E820 map reserves it.
        info.push_memmap(
            chipset::Q35_ECAM_BASE,
            chipset::Q35_ECAM_SIZE,
            ember_mem::E820_RESERVED,
        );
    }
    CHIPSET.call_once(|| c);
}

/// Assign PCI resources before QEMU builds its ACPI tables (their PCI host
/// windows follow the BARs). Through CF8: ECAM is only described later.
pub fn assign_pci() {
    if !matches!(CHIPSET.get(), Some(Some(_))) {
        return;
    }
    // SAFETY: single-threaded; nothing else uses the config ports now.
    let mut cfg = unsafe { crate::pci::PortIo::new() };
    let devs = ember_pci::enumerate(&mut cfg, &mut crate::devices::pci_windows());
    log::debug!("pci: {} function(s) set up", devs.len());
}

/// The table loader's view of fw_cfg and of memory.
struct Host<'a> {
    fw: &'a mut FwCfg,
}

impl LoaderHost for Host<'_> {
    fn file_size(&mut self, name: &str) -> Option<u32> {
        self.fw.file(name).map(|f| f.size)
    }

    fn read_file(&mut self, name: &str, buf: &mut [u8]) -> Result<(), HostError> {
        let key = self.fw.file(name).ok_or(HostError::Io)?.select;
        self.fw.read(key, buf);
        Ok(())
    }

    fn allocate(
        &mut self,
        name: &str,
        size: u32,
        align: u32,
        zone: Zone,
    ) -> Result<u64, HostError> {
        match zone {
            Zone::FSeg => fseg_alloc(u64::from(size), u64::from(align)).ok_or(HostError::NoMemory),
            Zone::High => {
                // The tables themselves are reclaimable once parsed; other
                // blobs (FACS inside them aside) are shared with QEMU.
                let kind = MemKind::Allocated(if name == "etc/acpi/tables" {
                    EFI_ACPI_RECLAIM
                } else {
                    EFI_ACPI_NVS
                });
                memory::alloc_below_4g(u64::from(size), u64::from(align), kind)
                    .ok_or(HostError::NoMemory)
            }
        }
    }

    fn write_file(&mut self, name: &str, offset: u32, bytes: &[u8]) -> Result<(), HostError> {
        let key = self.fw.file(name).ok_or(HostError::Io)?.select;
        self.fw
            .write(key, offset, bytes)
            .map_err(|_| HostError::Unsupported)
    }
}

/// Run QEMU's `etc/table-loader` script; returns the RSDP's address.
pub fn install_acpi(fw: &mut FwCfg) -> Option<u64> {
    let Some(script) = fw.read_file("etc/table-loader") else {
        log::info!("fw_cfg: no ACPI tables (etc/table-loader)");
        return None;
    };
    let loaded = match ember_fwcfg::run_loader(&script, &mut Host { fw }) {
        Ok(l) => l,
        Err(e) => {
            log::error!("ACPI: QEMU's table-loader script failed: {e}; no ACPI tables");
            return None;
        }
    };
    for b in loaded.blobs() {
        // SAFETY: run_loader asked our allocator for this range just now
        // (F segment or the memory map); nothing else refers to it.
        unsafe { phys::bytes_mut(b.addr, b.data.len()) }.copy_from_slice(&b.data);
    }
    let rsdp = loaded.rsdp();
    log::info!(
        "ACPI: {} blob(s) from QEMU, RSDP at {:#x}",
        loaded.blobs().len(),
        rsdp.unwrap_or(0)
    );
    rsdp
}

/// Allocate SMBIOS memory (runtime data: the OS keeps it).
fn smbios_alloc(len: usize) -> Option<u64> {
    memory::alloc_below_4g(len as u64, PAGE_SIZE, MemKind::Allocated(EFI_RUNTIME_DATA))
}

/// Place an entry point: in the F segment when Ember owns it (legacy
/// scans find it there), else in allocated memory recorded for UEFI.
fn place_anchor(anchor: &[u8], is_64: bool, own_fseg: bool) -> Option<u64> {
    let at = if own_fseg {
        fseg_alloc(anchor.len() as u64, 16)
    } else {
        None
    };
    let at = match at {
        Some(a) => a,
        None => {
            let a = smbios_alloc(anchor.len())?;
            SMBIOS_EXTRA.lock().push((is_64, a));
            a
        }
    };
    // SAFETY: just allocated for the anchor.
    unsafe { phys::bytes_mut(at, anchor.len()) }.copy_from_slice(anchor);
    Some(at)
}

/// SMBIOS entry points Ember placed outside the F segment: (64-bit, address).
pub fn smbios_extra() -> Vec<(bool, u64)> {
    SMBIOS_EXTRA.lock().clone()
}

/// SMBIOS for the OS: QEMU's tables when Ember is the firmware; otherwise
/// whatever the previous stage left, or minimal tables of Ember's own.
pub fn install_smbios(fw: Option<&mut FwCfg>, as_firmware: bool) {
    if as_firmware {
        if let Some(fw) = fw {
            match qemu_smbios(fw) {
                Ok(at) => {
                    log::info!("SMBIOS: QEMU's tables, entry point at {at:#x}");
                    return;
                }
                Err(e) => log::warn!("SMBIOS: {e}; building Ember's own"),
            }
        }
    } else if !crate::efi::platform::smbios_tables().is_empty() {
        return;
    }
    match own_smbios(as_firmware) {
        Ok(at) => log::info!("SMBIOS: no tables from the VMM; Ember's own, entry point at {at:#x}"),
        Err(e) => log::warn!("SMBIOS: {e}"),
    }
}

fn qemu_smbios(fw: &mut FwCfg) -> Result<u64, String> {
    let tables = fw
        .read_file("etc/smbios/smbios-tables")
        .ok_or("fw_cfg has no etc/smbios/smbios-tables")?;
    let mut anchor = fw
        .read_file("etc/smbios/smbios-anchor")
        .ok_or("fw_cfg has no etc/smbios/smbios-anchor")?;
    let tables = with_bios_information(tables, &mut anchor);
    let at = smbios_alloc(tables.len()).ok_or("no memory for the tables")?;
    let kind = ember_smbios::fixup_anchor(&mut anchor, at, tables.len() as u32)
        .map_err(|e| format!("QEMU's entry point: {e}"))?;
    // SAFETY: just allocated for the table.
    unsafe { phys::bytes_mut(at, tables.len()) }.copy_from_slice(&tables);
    place_anchor(&anchor, kind == ember_smbios::Anchor::Smbios30, true)
        .ok_or_else(|| "no room for the entry point".into())
}

/// QEMU describes the machine but not its firmware: unless `-smbios type=0`
/// was given, there is no BIOS Information structure, and the firmware
/// (SeaBIOS, OVMF, Ember) adds its own. Ember's goes first; the entry
/// point's counts grow with it.
fn with_bios_information(tables: Vec<u8>, anchor: &mut [u8]) -> Vec<u8> {
    use ember_smbios::{EntryPoint21, EntryPoint30, Structures};
    use zerocopy::FromBytes;
    let mut handles = Vec::new();
    for s in Structures::new(&tables) {
        match s {
            Ok(s) if s.kind == 0 => return tables,
            Ok(s) => handles.push(s.handle),
            Err(_) => return tables, // fixup_anchor and the OS judge QEMU's table
        }
    }
    let Ok(own) = ember_tables() else {
        return tables;
    };
    let Some(Ok(t0)) = Structures::new(&own.bytes).next() else {
        return tables;
    };
    let mut t0 = own.bytes[t0.offset..t0.offset + t0.size()].to_vec();
    let handle = (0..=u16::MAX).find(|h| !handles.contains(h)).unwrap_or(0);
    t0[2..4].copy_from_slice(&handle.to_le_bytes());
    let grow = t0.len();
    if let Ok((ep, _)) = EntryPoint21::mut_from_prefix(anchor) {
        if ep.anchor == ember_smbios::ANCHOR_21 {
            ep.table_length
                .set(ep.table_length.get().saturating_add(grow as u16));
            ep.structure_count
                .set(ep.structure_count.get().saturating_add(1));
            ep.max_structure_size
                .set(ep.max_structure_size.get().max(grow as u16));
        }
    }
    if let Ok((ep, _)) = EntryPoint30::mut_from_prefix(anchor) {
        if ep.anchor == ember_smbios::ANCHOR_30 {
            ep.table_max_size
                .set(ep.table_max_size.get().saturating_add(grow as u32));
        }
    }
    t0.extend_from_slice(&tables);
    t0
}

/// Ember's own SMBIOS tables for this machine.
fn ember_tables() -> Result<ember_smbios::Tables, String> {
    let map = memory::MAP.lock();
    let ram: Vec<(u64, u64)> = map
        .map()
        .regions()
        .iter()
        .filter(|r| r.kind == MemKind::Free || r.kind.is_allocated() || r.kind == MemKind::Firmware)
        .map(|r| (r.start, r.end))
        .collect();
    drop(map);
    let ram = merge(ram);
    let cpu = crate::arch::io::cpu_identity();
    let mhz = (crate::time::tsc_khz() / 1000).min(u64::from(u16::MAX)) as u16;
    let cpus = [ember_smbios::Cpu {
        manufacturer: cpu.vendor.as_str(),
        version: cpu.brand.as_str(),
        processor_id: cpu.signature,
        family: None,
        external_clock_mhz: 0,
        max_speed_mhz: mhz,
        current_speed_mhz: mhz,
        cores: 1,
        threads: 1,
        is_64bit: true,
    }];
    let p = ember_smbios::Platform {
        bios_version: env!("CARGO_PKG_VERSION"),
        bios_date: "11/21/2026",
        cpus: &cpus,
        ram: &ram,
        uefi: true,
        acpi: true,
        ..ember_smbios::Platform::default()
    };
    ember_smbios::build(&p).map_err(|e| format!("building tables: {e}"))
}

fn own_smbios(own_fseg: bool) -> Result<u64, String> {
    let t = ember_tables()?;
    let at = smbios_alloc(t.bytes.len()).ok_or("no memory for the tables")?;
    // SAFETY: just allocated for the table.
    unsafe { phys::bytes_mut(at, t.bytes.len()) }.copy_from_slice(&t.bytes);
    let ep = t.entry_point_30(at);
    place_anchor(&ep, true, own_fseg && fseg_writable())
        .ok_or_else(|| "no room for the entry point".into())
}

/// Whether the F segment is RAM Ember may write (as the firmware it made it
/// so; behind another firmware it is that firmware's).
fn fseg_writable() -> bool {
    matches!(CHIPSET.get(), Some(Some(_)))
}

/// Coalesce touching ranges.
fn merge(mut v: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Sort disks by fw_cfg's `bootorder` (QEMU's `bootindex=`); disks it does
/// not name keep their discovery order after the named ones.
pub fn apply_bootorder(fw: &mut FwCfg, disks: &mut [Disk]) {
    let Some(text) = fw.read_string("bootorder") else {
        return;
    };
    if text.trim().is_empty() {
        return;
    }
    // Devices on the root bus and virtio-mmio transports; a device behind
    // a bridge would need its bridge path, which discovery does not keep.
    let prio = |d: &Disk| -> usize {
        let hop;
        let loc = match d.location {
            Location::Pci(bdf) if bdf.bus == 0 => {
                hop = [(bdf.device, bdf.function)];
                ember_fwcfg::Location::Pci { path: &hop }
            }
            Location::Pci(_) => return usize::MAX,
            Location::Mmio(base) => ember_fwcfg::Location::Mmio(base),
        };
        ember_fwcfg::parse_bootorder(&text)
            .priority(&loc)
            .unwrap_or(usize::MAX)
    };
    disks.sort_by_key(|d| prio(d));
    let names: Vec<&str> = disks.iter().map(|d| d.name.as_str()).collect();
    log::info!("bootorder: {}", names.join(", "));
}

/// QEMU's `-kernel/-initrd/-append`: boot that kernel instead of a disk.
/// Returns only when there is none or it fails.
pub fn boot_qemu_kernel(fw: &mut FwCfg, rsdp: u64) {
    use ember_fwcfg as selector;
    let word = |fw: &mut FwCfg, key| {
        let mut b = [0u8; 4];
        fw.read(key, &mut b);
        u32::from_le_bytes(b)
    };
    let setup_size = word(fw, selector::SETUP_SIZE);
    let kernel_size = word(fw, selector::KERNEL_SIZE);
    if kernel_size == 0 {
        return;
    }
    let initrd_size = word(fw, selector::INITRD_SIZE);
    let cmd_size = word(fw, selector::CMDLINE_SIZE);
    let mut cmdline = alloc::vec![0u8; cmd_size as usize];
    fw.read(selector::CMDLINE_DATA, &mut cmdline);
    let end = cmdline
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(cmdline.len());
    let cmdline = String::from_utf8_lossy(&cmdline[..end]).into_owned();
    log::info!(
        "fw_cfg: -kernel ({} KiB setup + {} KiB), -initrd ({} KiB), -append \"{cmdline}\"",
        setup_size / 1024,
        kernel_size / 1024,
        initrd_size / 1024
    );
    // The Linux boot protocol, as qboot does: the fastest way in, and what
    // QEMU users of -kernel expect. (The EFI-stub path is left for later.)
    let mut src = crate::linux::FwCfgKernel::new(fw, setup_size, kernel_size, initrd_size);
    let Err(e) = crate::linux::boot_from(&mut src, &cmdline, rsdp);
    log::error!("-kernel: {e}; trying the disks");
}
