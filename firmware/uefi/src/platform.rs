//! What the UEFI layer publishes about the platform: ACPI and SMBIOS
//! configuration tables and the standard global variables.

use super::runtime;
use crate::phys;
use alloc::vec::Vec;
use ember_uefi_data::memmap::{AllocateType, EfiMemoryType};
use r_efi::efi::{self, Guid};

fn checksum(b: &[u8]) -> u8 {
    0u8.wrapping_sub(b.iter().fold(0u8, |a, x| a.wrapping_add(*x)))
}

/// ACPI configuration tables for `rsdp`. A revision-2 RSDP is published as
/// is (ACPI 2.0 GUID). A revision-0 RSDP (SeaBIOS and QEMU's legacy tables)
/// is published under the ACPI 1.0 GUID and, like OVMF does, upgraded: a new
/// XSDT with the RSDT's entries and a revision-2 RSDP pointing at both go in
/// ACPI reclaim memory under the 2.0 GUID, so the OS gets 64-bit pointers.
pub fn acpi_tables(rsdp: u64) -> Vec<(Guid, u64)> {
    let mut out = Vec::new();
    if rsdp == 0 {
        return out;
    }
    // SAFETY: the VMM's RSDP (validated by acpi::discover); 20 bytes in ACPI 1.0.
    let head = unsafe { phys::bytes(rsdp, 20) };
    if head[15] >= 2 {
        out.push((efi::ACPI_20_TABLE_GUID, rsdp));
        return out;
    }
    out.push((efi::ACPI_10_TABLE_GUID, rsdp));
    let rsdt = u64::from(u32::from_le_bytes([head[16], head[17], head[18], head[19]]));
    if rsdt == 0 {
        return out;
    }
    // SAFETY: the RSDT named by the RSDP; its length field is at offset 4.
    let len = unsafe { u32::from_le_bytes(phys::bytes(rsdt + 4, 4).try_into().unwrap_or([0; 4])) }
        as usize;
    if !(36..=64 * 1024).contains(&len) {
        return out;
    }
    // SAFETY: the whole RSDT.
    let rsdt_b = unsafe { phys::bytes(rsdt, len) };
    let entries: Vec<u64> = rsdt_b[36..]
        .chunks_exact(4)
        .map(|c| u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
        .collect();
    let xlen = 36 + 8 * entries.len();
    let total = xlen + 36;
    let Ok(mem) = crate::ram::MAP.lock().allocate_pages(
        AllocateType::MaxAddress(u64::from(u32::MAX)),
        EfiMemoryType(efi::ACPI_RECLAIM_MEMORY),
        (total as u64).div_ceil(4096),
    ) else {
        return out;
    };
    // SAFETY: pages just allocated for the new tables.
    let buf = unsafe { phys::bytes_mut(mem, total) };
    buf.fill(0);
    let (x, r) = buf.split_at_mut(xlen);
    // XSDT: the RSDT's header with the new signature, length and 64-bit entries.
    x[..36].copy_from_slice(&rsdt_b[..36]);
    x[..4].copy_from_slice(b"XSDT");
    x[4..8].copy_from_slice(&(xlen as u32).to_le_bytes());
    x[8] = 1;
    for (i, e) in entries.iter().enumerate() {
        x[36 + 8 * i..44 + 8 * i].copy_from_slice(&e.to_le_bytes());
    }
    x[9] = 0;
    x[9] = checksum(x);
    // RSDP 2.0.
    r[..20].copy_from_slice(head);
    r[15] = 2;
    r[8] = 0;
    r[20..24].copy_from_slice(&36u32.to_le_bytes());
    r[24..32].copy_from_slice(&mem.to_le_bytes());
    r[8] = checksum(&r[..20]);
    r[32] = 0;
    r[32] = checksum(&r[..36]);
    out.push((efi::ACPI_20_TABLE_GUID, mem + xlen as u64));
    out
}

/// SMBIOS entry points in the BIOS area — left by the firmware that ran
/// before Ember (SeaBIOS, qboot) or placed by Ember — `_SM3_` (64-bit) and
/// `_SM_` (32-bit), and those Ember placed elsewhere.
pub fn smbios_tables() -> Vec<(Guid, u64)> {
    let mut out: Vec<(Guid, u64)> = crate::machine::machine()
        .smbios_tables()
        .into_iter()
        .map(|(is64, a)| {
            (
                if is64 {
                    efi::SMBIOS3_TABLE_GUID
                } else {
                    efi::SMBIOS_TABLE_GUID
                },
                a,
            )
        })
        .collect();
    let mut a = 0xf0000u64;
    let end = if crate::machine::machine().has_legacy_bios_area() {
        0x100000
    } else {
        a
    };
    while a + 32 <= end {
        // SAFETY: the BIOS area is identity-mapped ROM/RAM.
        let b = unsafe { phys::bytes(a, 32) };
        if &b[..5] == b"_SM3_" {
            let len = usize::from(b[6]).min(32);
            if len >= 24 && checksum(&b[..len]) == 0 {
                out.push((efi::SMBIOS3_TABLE_GUID, a));
            }
        } else if &b[..4] == b"_SM_" {
            let len = usize::from(b[5]).min(32);
            if len >= 31 && checksum(&b[..len]) == 0 {
                out.push((efi::SMBIOS_TABLE_GUID, a));
            }
        }
        a += 16;
    }
    out
}

/// EFI_GLOBAL_VARIABLE (8BE4DF61-93CA-11D2-AA0D-00E098032B8C): the vendor
/// GUID of the spec's own variables.
pub const GLOBAL_VARIABLE: Guid = Guid::from_fields(
    0x8be4df61,
    0x93ca,
    0x11d2,
    0xaa,
    0x0d,
    &[0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c],
);

/// The global variables every UEFI firmware defines (UEFI spec 3.3).
pub fn standard_variables() {
    use ember_uefi_data::vars::{
        BOOTSERVICE_ACCESS as BS, NON_VOLATILE as NV, RUNTIME_ACCESS as RT,
    };
    let g = GLOBAL_VARIABLE;
    // Read-only: what the platform supports.
    runtime::set_read_only("PlatformLangCodes", &g, BS | RT, b"en-US\0");
    runtime::set_read_only("LangCodes", &g, BS | RT, b"eng\0");
    runtime::set_read_only("OsIndicationsSupported", &g, BS | RT, &0u64.to_le_bytes());
    // Secure Boot is not implemented: say so, so loaders do not guess.
    runtime::set_read_only("SecureBoot", &g, BS | RT, &[0]);
    runtime::set_read_only("SetupMode", &g, BS | RT, &[1]);
    runtime::set_read_only("AuditMode", &g, BS | RT, &[0]);
    runtime::set_read_only("DeployedMode", &g, BS | RT, &[0]);
    // Writable defaults.
    runtime::set_default("PlatformLang", &g, NV | BS | RT, b"en-US\0");
    runtime::set_default("Lang", &g, NV | BS | RT, b"eng\0");
}

/// The current memory-attributes table's pages.
static MAT_PAGES: spin::Mutex<Option<(u64, u64)>> = spin::Mutex::new(None);

/// Publish (or refresh) the EFI_MEMORY_ATTRIBUTES_TABLE: per-range
/// permissions of the runtime memory the OS keeps mapping after
/// ExitBootServices. Ember's own image is split like its page tables (code
/// read-only, read-only data also non-executable, data non-executable); runtime data
/// pools are non-executable. Runtime code that is not Ember's (runtime
/// drivers a loader started) is left out: Ember does not know its layout.
/// Built right before an image starts, so later runtime allocations are
/// not listed (the OS then keeps its default mapping for them).
pub fn publish_memory_attributes() {
    use ember_mem::MemKind;
    let [(t0, t1), (r0, r1), (d0, d1)] = crate::machine::machine().image_ranges();
    let mut entries: Vec<(u32, u64, u64, u64)> = Vec::new(); // (type, start, end, attrs)
    let rt = efi::MEMORY_RUNTIME;
    entries.push((efi::RUNTIME_SERVICES_CODE, t0, t1, rt | efi::MEMORY_RO));
    entries.push((
        efi::RUNTIME_SERVICES_CODE,
        r0,
        r1,
        rt | efi::MEMORY_RO | efi::MEMORY_XP,
    ));
    // The image is one RuntimeServicesCode descriptor in the memory map
    // (one virtual address for all of it); an entry's type must match its
    // descriptor's (Linux ignores entries that deviate), so its data part
    // is "code" here too, made non-executable by its attributes.
    entries.push((efi::RUNTIME_SERVICES_CODE, d0, d1, rt | efi::MEMORY_XP));
    for r in crate::ram::MAP.lock().map().regions() {
        if r.kind == MemKind::Allocated(efi::RUNTIME_SERVICES_DATA)
            && (r.end <= d0 || r.start >= d1)
        {
            entries.push((
                efi::RUNTIME_SERVICES_DATA,
                r.start,
                r.end,
                rt | efi::MEMORY_XP,
            ));
        }
    }
    let desc = core::mem::size_of::<efi::MemoryDescriptor>();
    let total = 16 + entries.len() * desc;
    let Ok(mem) = crate::ram::MAP.lock().allocate_pages(
        AllocateType::MaxAddress(u64::from(u32::MAX)),
        EfiMemoryType(efi::ACPI_RECLAIM_MEMORY),
        (total as u64).div_ceil(4096),
    ) else {
        return;
    };
    // SAFETY: pages just allocated for the table.
    let buf = unsafe { phys::bytes_mut(mem, total) };
    buf.fill(0);
    buf[0..4].copy_from_slice(&efi::MEMORY_ATTRIBUTES_TABLE_VERSION.to_le_bytes());
    buf[4..8].copy_from_slice(&(entries.len() as u32).to_le_bytes());
    buf[8..12].copy_from_slice(&(desc as u32).to_le_bytes());
    for (i, (ty, start, end, attrs)) in entries.iter().enumerate() {
        let d = efi::MemoryDescriptor {
            r#type: *ty,
            physical_start: *start,
            virtual_start: 0,
            number_of_pages: (end - start) / 4096,
            attribute: *attrs,
        };
        // SAFETY: `d` is plain data; the slot lies inside the table.
        let bytes = unsafe {
            core::slice::from_raw_parts(&d as *const efi::MemoryDescriptor as *const u8, desc)
        };
        buf[16 + i * desc..16 + (i + 1) * desc].copy_from_slice(bytes);
    }
    super::with(|e| {
        e.config
            .retain(|c| c.vendor_guid != efi::MEMORY_ATTRIBUTES_TABLE_GUID);
        e.config.push(efi::ConfigurationTable {
            vendor_guid: efi::MEMORY_ATTRIBUTES_TABLE_GUID,
            vendor_table: mem as *mut core::ffi::c_void,
        });
    });
    // The table it replaces (a previous image start) goes back.
    if let Some((a, p)) = MAT_PAGES
        .lock()
        .replace((mem, (total as u64).div_ceil(4096)))
    {
        let _ = crate::ram::MAP.lock().free_pages(a, p);
    }
    super::publish_config_tables();
}
