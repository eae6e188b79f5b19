//! Table headers, CRC32, CopyMem/SetMem, the monotonic counter and the
//! configuration table (install/replace/remove, ACPI RSDP, SMBIOS anchors).

use crate::out::{check, expect_eq, expect_status, info};
use crate::util::{bs, guid, st};
use core::ffi::c_void;
use r_efi::efi;

pub unsafe fn run() {
    headers();
    crc32();
    mem_helpers();
    monotonic();
    config_tables();
    acpi();
    smbios();
}

unsafe fn crc_of(p: *const u8, len: usize) -> Option<u32> {
    let mut c = 0u32;
    let s = (bs().calculate_crc32)(p as *mut c_void, len, &mut c);
    (s == efi::Status::SUCCESS).then_some(c)
}

/// CRC32 of a table whose header's crc32 field is zeroed for the computation.
unsafe fn table_crc_ok(hdr: *const efi::TableHeader) -> (bool, u32, u32) {
    let size = (*hdr).header_size as usize;
    let mut copy = alloc::vec![0u8; size];
    core::ptr::copy_nonoverlapping(hdr as *const u8, copy.as_mut_ptr(), size);
    // crc32 sits at offset 16 in EFI_TABLE_HEADER.
    copy[16..20].fill(0);
    let want = (*hdr).crc32;
    let got = crc_of(copy.as_ptr(), size).unwrap_or(!want);
    (got == want, got, want)
}

unsafe fn headers() {
    let st = st();
    expect_eq(
        "SystemTable signature is IBI SYST",
        (*st).hdr.signature,
        efi::SYSTEM_TABLE_SIGNATURE,
    );
    check(
        "SystemTable revision is 2.x",
        (*st).hdr.revision >> 16 == 2,
        format_args!("revision {:#x}", (*st).hdr.revision),
    );
    let bsh = &(*(*st).boot_services).hdr;
    expect_eq(
        "BootServices signature is BOOTSERV",
        bsh.signature,
        efi::BOOT_SERVICES_SIGNATURE,
    );
    let rth = &(*(*st).runtime_services).hdr;
    expect_eq(
        "RuntimeServices signature is RUNTSERV",
        rth.signature,
        efi::RUNTIME_SERVICES_SIGNATURE,
    );
    check(
        "BootServices table is large enough for CreateEventEx",
        bsh.header_size as usize >= core::mem::size_of::<efi::BootServices>(),
        format_args!("HeaderSize {}", bsh.header_size),
    );
    for (name, hdr) in [
        ("SystemTable header CRC32 is valid", &(*st).hdr as *const _),
        ("BootServices header CRC32 is valid", bsh as *const _),
        ("RuntimeServices header CRC32 is valid", rth as *const _),
    ] {
        let (ok, got, want) = table_crc_ok(hdr);
        check(
            name,
            ok,
            format_args!("computed {got:#010x}, header says {want:#010x}"),
        );
    }
    check(
        "SystemTable FirmwareVendor is a non-empty string",
        !(*st).firmware_vendor.is_null() && *(*st).firmware_vendor != 0,
        format_args!("null or empty"),
    );
}

unsafe fn crc32() {
    let v = b"123456789";
    let mut c = 0u32;
    let s = (bs().calculate_crc32)(v.as_ptr() as *mut c_void, v.len(), &mut c);
    expect_status("CalculateCrc32 succeeds", s, efi::Status::SUCCESS);
    expect_eq(
        "CalculateCrc32(\"123456789\") is 0xCBF43926",
        c,
        0xCBF4_3926,
    );
    let s = (bs().calculate_crc32)(v.as_ptr() as *mut c_void, 0, &mut c);
    expect_status(
        "CalculateCrc32 with DataSize 0 is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
}

unsafe fn mem_helpers() {
    let bs = bs();
    let mut b: [u8; 16] = core::array::from_fn(|i| i as u8);
    (bs.copy_mem)(b.as_mut_ptr().add(2).cast(), b.as_mut_ptr().cast(), 10);
    let want: [u8; 16] = [0, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 14, 15];
    expect_eq(
        "CopyMem handles overlap with destination above source",
        b,
        want,
    );
    let mut b: [u8; 16] = core::array::from_fn(|i| i as u8);
    (bs.copy_mem)(b.as_mut_ptr().cast(), b.as_mut_ptr().add(3).cast(), 10);
    let want: [u8; 16] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 10, 11, 12, 13, 14, 15];
    expect_eq(
        "CopyMem handles overlap with destination below source",
        b,
        want,
    );
    let mut b = [0u8; 16];
    (bs.set_mem)(b.as_mut_ptr().add(1).cast(), 14, 0xA5);
    let mut want = [0xA5u8; 16];
    want[0] = 0;
    want[15] = 0;
    expect_eq("SetMem fills exactly Size bytes", b, want);
}

unsafe fn monotonic() {
    let (mut a, mut b) = (0u64, 0u64);
    let s1 = (bs().get_next_monotonic_count)(&mut a);
    let s2 = (bs().get_next_monotonic_count)(&mut b);
    expect_status("GetNextMonotonicCount succeeds", s1, efi::Status::SUCCESS);
    check(
        "GetNextMonotonicCount increases",
        s2 == efi::Status::SUCCESS && b > a,
        format_args!("{a} then {b}"),
    );
    let s = (bs().get_next_monotonic_count)(core::ptr::null_mut());
    expect_status(
        "GetNextMonotonicCount(NULL) is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
}

const TABLE_GUID: efi::Guid = guid(
    0x3c1f_6b2e,
    0x8a51,
    0x4d0e,
    [0x9b, 0x7c, 0x21, 0x5e, 0x44, 0x90, 0xad, 0x13],
);

/// Configuration table entries for `g` (the table is reread every time: the
/// firmware may move it when it grows).
pub unsafe fn config_entries(g: &efi::Guid) -> alloc::vec::Vec<*mut c_void> {
    let st = st();
    let t = core::slice::from_raw_parts((*st).configuration_table, (*st).number_of_table_entries);
    t.iter()
        .filter(|e| e.vendor_guid == *g)
        .map(|e| e.vendor_table)
        .collect()
}

unsafe fn config_tables() {
    let bs = bs();
    let mut g = TABLE_GUID;
    static A: u64 = 1;
    static B: u64 = 2;
    let (a, b) = (
        &A as *const u64 as *mut c_void,
        &B as *const u64 as *mut c_void,
    );
    let n0 = (*st()).number_of_table_entries;
    let s = (bs.install_configuration_table)(&mut g, a);
    expect_status(
        "InstallConfigurationTable adds an entry",
        s,
        efi::Status::SUCCESS,
    );
    expect_eq(
        "InstallConfigurationTable: the new entry is in the system table",
        config_entries(&g).as_slice(),
        &[a][..],
    );
    let (ok, got, want) = table_crc_ok(&(*st()).hdr);
    check(
        "SystemTable CRC32 is updated after InstallConfigurationTable",
        ok,
        format_args!("computed {got:#010x}, header says {want:#010x}"),
    );
    let s = (bs.install_configuration_table)(&mut g, b);
    expect_status(
        "InstallConfigurationTable replaces an entry",
        s,
        efi::Status::SUCCESS,
    );
    expect_eq(
        "InstallConfigurationTable: replacing keeps one entry with the new pointer",
        config_entries(&g).as_slice(),
        &[b][..],
    );
    expect_eq(
        "InstallConfigurationTable: replacing does not change the count",
        (*st()).number_of_table_entries,
        n0 + 1,
    );
    let s = (bs.install_configuration_table)(&mut g, core::ptr::null_mut());
    expect_status(
        "InstallConfigurationTable(NULL) removes the entry",
        s,
        efi::Status::SUCCESS,
    );
    expect_eq(
        "InstallConfigurationTable: removed entry is gone",
        config_entries(&g).len(),
        0,
    );
    expect_eq(
        "InstallConfigurationTable: count is back",
        (*st()).number_of_table_entries,
        n0,
    );
    let s = (bs.install_configuration_table)(&mut g, core::ptr::null_mut());
    expect_status(
        "InstallConfigurationTable(NULL) of a missing GUID is NOT_FOUND",
        s,
        efi::Status::NOT_FOUND,
    );
    let s = (bs.install_configuration_table)(core::ptr::null_mut(), a);
    expect_status(
        "InstallConfigurationTable with a NULL GUID is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
}

fn sum(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |a, &x| a.wrapping_add(x))
}

unsafe fn acpi() {
    let e = config_entries(&efi::ACPI_20_TABLE_GUID);
    if !check(
        "ACPI 2.0 RSDP is in the configuration table",
        e.len() == 1,
        format_args!("{} entries", e.len()),
    ) {
        return;
    }
    let p = e[0] as *const u8;
    let rsdp = core::slice::from_raw_parts(p, 36);
    expect_eq(
        "ACPI RSDP signature is \"RSD PTR \"",
        &rsdp[..8],
        &b"RSD PTR "[..],
    );
    check(
        "ACPI RSDP revision is >= 2",
        rsdp[15] >= 2,
        format_args!("revision {}", rsdp[15]),
    );
    expect_eq(
        "ACPI RSDP checksum (first 20 bytes) is 0",
        sum(&rsdp[..20]),
        0,
    );
    let len = u32::from_le_bytes([rsdp[20], rsdp[21], rsdp[22], rsdp[23]]) as usize;
    let full = core::slice::from_raw_parts(p, len.max(36));
    expect_eq("ACPI RSDP extended checksum is 0", sum(full), 0);
    let xsdt = u64::from_le_bytes(rsdp[24..32].try_into().unwrap_or([0; 8]));
    check(
        "ACPI RSDP has an XSDT address",
        xsdt != 0,
        format_args!("XsdtAddress is 0"),
    );
    if xsdt != 0 {
        let x = core::slice::from_raw_parts(xsdt as *const u8, 4);
        expect_eq("ACPI XSDT signature is XSDT", x, &b"XSDT"[..]);
    }
}

unsafe fn smbios() {
    let v3 = config_entries(&efi::SMBIOS3_TABLE_GUID);
    let v2 = config_entries(&efi::SMBIOS_TABLE_GUID);
    if let Some(&p) = v3.first() {
        let ep = core::slice::from_raw_parts(p as *const u8, 24);
        expect_eq(
            "SMBIOS3 entry point anchor is _SM3_",
            &ep[..5],
            &b"_SM3_"[..],
        );
        let len = usize::from(ep[6]).clamp(24, 64);
        expect_eq(
            "SMBIOS3 entry point checksum is 0",
            sum(core::slice::from_raw_parts(p as *const u8, len)),
            0,
        );
    } else {
        info(
            "smbios3",
            format_args!("no SMBIOS3 table; checking the 32-bit entry point"),
        );
    }
    if let Some(&p) = v2.first() {
        let ep = core::slice::from_raw_parts(p as *const u8, 31);
        expect_eq("SMBIOS entry point anchor is _SM_", &ep[..4], &b"_SM_"[..]);
        let len = usize::from(ep[5]).clamp(16, 31);
        expect_eq("SMBIOS entry point checksum is 0", sum(&ep[..len]), 0);
    }
    check(
        "SMBIOS or SMBIOS3 table is in the configuration table",
        !v2.is_empty() || !v3.is_empty(),
        format_args!("neither GUID present"),
    );
}
