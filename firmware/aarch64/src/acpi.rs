//! QEMU's ACPI tables on arm64 `virt`: QEMU builds them for firmware and
//! hands them over through fw_cfg's `etc/table-loader` script, as on
//! x86_64. Ember runs the script with the same host-tested engine
//! (`ember_fwcfg::run_loader`) into memory from the UEFI memory map, and the
//! UEFI layer publishes the RSDP next to the device tree. Linux prefers the
//! device tree when both are there (`acpi=force` picks ACPI).

use crate::fwcfg::FwCfg;
use ember_fwcfg::dir::Directory;
use ember_fwcfg::loader::{HostError, LoaderHost, Zone};
use ember_mem::MemKind;
use r_efi::efi;

/// The table loader's view of fw_cfg and of memory.
struct Host<'a> {
    fw: &'a FwCfg,
    dir: Directory<'a>,
}

impl LoaderHost for Host<'_> {
    fn file_size(&mut self, name: &str) -> Option<u32> {
        self.dir.find(name).map(|f| f.size)
    }

    fn read_file(&mut self, name: &str, buf: &mut [u8]) -> Result<(), HostError> {
        let f = self.dir.find(name).ok_or(HostError::Io)?;
        let len = u32::try_from(buf.len()).map_err(|_| HostError::Io)?;
        // SAFETY: `buf` is ours for the transfer, `len` bytes.
        unsafe { self.fw.dma_read(f.select, buf.as_mut_ptr() as usize, len) }
            .map_err(|_| HostError::Io)
    }

    fn allocate(
        &mut self,
        name: &str,
        size: u32,
        align: u32,
        _zone: Zone,
    ) -> Result<u64, HostError> {
        // No F segment on arm64 (`has_fseg`): every blob goes in RAM. The
        // tables are reclaimable once parsed; other blobs are shared with
        // QEMU.
        let kind = MemKind::Allocated(if name == "etc/acpi/tables" {
            efi::ACPI_RECLAIM_MEMORY
        } else {
            efi::ACPI_MEMORY_NVS
        });
        ember_uefi::ram::alloc_below_4g(u64::from(size), u64::from(align), kind)
            .ok_or(HostError::NoMemory)
    }

    fn has_fseg(&self) -> bool {
        false
    }

    fn write_file(&mut self, _name: &str, _offset: u32, _bytes: &[u8]) -> Result<(), HostError> {
        // WRITE_POINTER (vmgenid, GHES) needs fw_cfg DMA writes, which
        // Ember's arm64 driver does not do; virt's default tables have none.
        Err(HostError::Unsupported)
    }
}

/// Run QEMU's table loader with fw_cfg's file directory (`dir`, read
/// once for ACPI and SMBIOS); the RSDP's address, if there are tables.
pub fn install(fw: &FwCfg, dir: Directory<'_>) -> Option<u64> {
    let Some(f) = dir.find("etc/table-loader") else {
        log::info!("fw_cfg: no ACPI tables (etc/table-loader)");
        return None;
    };
    let Some(script) = fw.read_entry(&f, 64 * 1024) else {
        log::error!("ACPI: cannot read fw_cfg's etc/table-loader; no ACPI tables");
        return None;
    };
    let loaded = match ember_fwcfg::run_loader(&script, &mut Host { fw, dir }) {
        Ok(l) => l,
        Err(e) => {
            log::error!("ACPI: QEMU's table-loader script failed: {e}; no ACPI tables");
            return None;
        }
    };
    for b in loaded.blobs() {
        // SAFETY: run_loader asked our allocator for this range just now (it
        // is recorded in the memory map as ACPI memory); nothing else
        // refers to it.
        unsafe { ember_uefi::phys::bytes_mut(b.addr, b.data.len()) }.copy_from_slice(&b.data);
    }
    let rsdp = loaded.rsdp();
    log::info!(
        "ACPI: {} blob(s) from QEMU, RSDP at {:#x}",
        loaded.blobs().len(),
        rsdp.unwrap_or(0)
    );
    rsdp
}
