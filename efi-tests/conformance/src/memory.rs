//! AllocatePages/FreePages, GetMemoryMap, AllocatePool/FreePool.

use crate::out::{check, expect_eq, expect_status};
use crate::util::bs;
use alloc::vec::Vec;
use core::ffi::c_void;
use r_efi::efi;

const PAGE: u64 = 4096;
/// A memory type in the range the spec reserves (EfiMaxMemoryType..0x6FFFFFFF).
const INVALID_TYPE: u32 = 0x4000_0000;

pub unsafe fn run() {
    pages();
    memory_map();
    pool();
}

unsafe fn alloc_pages(kind: u32, ty: u32, n: usize, addr: &mut u64) -> efi::Status {
    (bs().allocate_pages)(kind, ty, n, addr)
}

unsafe fn pages() {
    let bs = bs();
    let mut a = 0u64;
    let s = alloc_pages(efi::ALLOCATE_ANY_PAGES, efi::LOADER_DATA, 3, &mut a);
    expect_status("AllocatePages(AnyPages) succeeds", s, efi::Status::SUCCESS);
    check(
        "AllocatePages returns a page-aligned address",
        a.is_multiple_of(PAGE) && a != 0,
        format_args!("{a:#x}"),
    );
    // The memory must be usable: write the first and last byte.
    core::ptr::write_volatile(a as *mut u8, 0x5a);
    core::ptr::write_volatile((a + 3 * PAGE - 1) as *mut u8, 0xa5);

    let mut m = 0xFFFF_FFFFu64;
    let s = alloc_pages(efi::ALLOCATE_MAX_ADDRESS, efi::LOADER_DATA, 2, &mut m);
    expect_status(
        "AllocatePages(MaxAddress 4 GiB) succeeds",
        s,
        efi::Status::SUCCESS,
    );
    check(
        "AllocatePages(MaxAddress): the whole range is at or below the limit",
        m + 2 * PAGE - 1 <= 0xFFFF_FFFF && m.is_multiple_of(PAGE),
        format_args!("got {m:#x}"),
    );
    expect_status(
        "FreePages of a MaxAddress allocation",
        (bs.free_pages)(m, 2),
        efi::Status::SUCCESS,
    );

    // Address: free the AnyPages range, take it back at the same address,
    // then ask for it again while it is in use.
    expect_status(
        "FreePages succeeds",
        (bs.free_pages)(a, 3),
        efi::Status::SUCCESS,
    );
    let mut b = a;
    let s = alloc_pages(efi::ALLOCATE_ADDRESS, efi::LOADER_DATA, 3, &mut b);
    expect_status(
        "AllocatePages(Address) of a free range succeeds",
        s,
        efi::Status::SUCCESS,
    );
    expect_eq("AllocatePages(Address) returns that address", b, a);
    let mut c = a + PAGE;
    let s = alloc_pages(efi::ALLOCATE_ADDRESS, efi::LOADER_DATA, 1, &mut c);
    expect_status(
        "AllocatePages(Address) of an allocated page is NOT_FOUND",
        s,
        efi::Status::NOT_FOUND,
    );

    let mut d = 0u64;
    let s = alloc_pages(3, efi::LOADER_DATA, 1, &mut d);
    expect_status(
        "AllocatePages with an invalid AllocateType is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
    let s = alloc_pages(efi::ALLOCATE_ANY_PAGES, INVALID_TYPE, 1, &mut d);
    expect_status(
        "AllocatePages with a reserved MemoryType is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
    let s = alloc_pages(efi::ALLOCATE_ANY_PAGES, efi::CONVENTIONAL_MEMORY, 1, &mut d);
    expect_status(
        "AllocatePages of EfiConventionalMemory is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
    let s = alloc_pages(efi::ALLOCATE_ANY_PAGES, efi::PERSISTENT_MEMORY, 1, &mut d);
    expect_status(
        "AllocatePages of EfiPersistentMemory is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
    let s = (bs.allocate_pages)(
        efi::ALLOCATE_ANY_PAGES,
        efi::LOADER_DATA,
        1,
        core::ptr::null_mut(),
    );
    expect_status(
        "AllocatePages with a NULL Memory is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );

    expect_status(
        "FreePages of a misaligned address is INVALID_PARAMETER",
        (bs.free_pages)(a + 1, 1),
        efi::Status::INVALID_PARAMETER,
    );
    expect_status(
        "FreePages of the Address allocation",
        (bs.free_pages)(a, 3),
        efi::Status::SUCCESS,
    );
    expect_status(
        "FreePages of pages already freed is NOT_FOUND",
        (bs.free_pages)(a, 3),
        efi::Status::NOT_FOUND,
    );
}

pub struct Map {
    pub buf: Vec<u64>,
    pub size: usize,
    pub key: usize,
    pub desc_size: usize,
    pub version: u32,
}

impl Map {
    pub fn descriptors(&self) -> impl Iterator<Item = efi::MemoryDescriptor> + '_ {
        let base = self.buf.as_ptr() as *const u8;
        (0..self.size / self.desc_size.max(1)).map(move |i| {
            // SAFETY: i * desc_size + 40 <= size, within buf; descriptors may
            // be at an unaligned stride, hence read_unaligned.
            unsafe {
                core::ptr::read_unaligned(
                    base.add(i * self.desc_size) as *const efi::MemoryDescriptor
                )
            }
        })
    }
}

pub unsafe fn get_map() -> Result<Map, efi::Status> {
    let bs = bs();
    let (mut size, mut key, mut ds, mut ver) = (0usize, 0usize, 0usize, 0u32);
    let s = (bs.get_memory_map)(
        &mut size,
        core::ptr::null_mut(),
        &mut key,
        &mut ds,
        &mut ver,
    );
    if s != efi::Status::BUFFER_TOO_SMALL {
        return Err(s);
    }
    // Room for the descriptors our own buffer allocation may add.
    size += 8 * ds.max(48);
    let mut buf = alloc::vec![0u64; size / 8 + 1];
    let s = (bs.get_memory_map)(
        &mut size,
        buf.as_mut_ptr().cast(),
        &mut key,
        &mut ds,
        &mut ver,
    );
    if s != efi::Status::SUCCESS {
        return Err(s);
    }
    Ok(Map {
        buf,
        size,
        key,
        desc_size: ds,
        version: ver,
    })
}

unsafe fn memory_map() {
    let bs = bs();
    let (mut size, mut key, mut ds, mut ver) = (0usize, 0usize, 0usize, 0u32);
    let s = (bs.get_memory_map)(
        &mut size,
        core::ptr::null_mut(),
        &mut key,
        &mut ds,
        &mut ver,
    );
    expect_status(
        "GetMemoryMap with MemoryMapSize 0 is BUFFER_TOO_SMALL",
        s,
        efi::Status::BUFFER_TOO_SMALL,
    );
    check(
        "GetMemoryMap BUFFER_TOO_SMALL reports the needed size",
        size >= ds && ds > 0 && size.is_multiple_of(ds),
        format_args!("MemoryMapSize {size}, DescriptorSize {ds}"),
    );
    let s = (bs.get_memory_map)(
        core::ptr::null_mut(),
        core::ptr::null_mut(),
        &mut key,
        &mut ds,
        &mut ver,
    );
    expect_status(
        "GetMemoryMap with NULL MemoryMapSize is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );

    let m1 = match get_map() {
        Ok(m) => m,
        Err(s) => {
            check(
                "GetMemoryMap succeeds",
                false,
                format_args!("{}", crate::out::St(s)),
            );
            return;
        }
    };
    check("GetMemoryMap succeeds", true, format_args!(""));
    check(
        "GetMemoryMap DescriptorSize >= sizeof(EFI_MEMORY_DESCRIPTOR)",
        m1.desc_size >= 40 && m1.desc_size.is_multiple_of(8),
        format_args!("DescriptorSize {}", m1.desc_size),
    );
    expect_eq("GetMemoryMap DescriptorVersion is 1", m1.version, 1);
    let all_aligned = m1
        .descriptors()
        .all(|d| d.physical_start.is_multiple_of(PAGE) && d.number_of_pages > 0);
    check(
        "GetMemoryMap: descriptors are page-aligned and non-empty",
        all_aligned,
        format_args!("a descriptor is misaligned or empty"),
    );
    let has_conv = m1
        .descriptors()
        .any(|d| d.r#type == efi::CONVENTIONAL_MEMORY);
    check(
        "GetMemoryMap lists EfiConventionalMemory",
        has_conv,
        format_args!("none"),
    );

    let mut a = 0u64;
    let s = (bs.allocate_pages)(efi::ALLOCATE_ANY_PAGES, efi::ACPI_RECLAIM_MEMORY, 5, &mut a);
    expect_status(
        "AllocatePages(EfiACPIReclaimMemory) succeeds",
        s,
        efi::Status::SUCCESS,
    );
    match get_map() {
        Ok(m2) => {
            check(
                "GetMemoryMap MapKey changes after an allocation",
                m2.key != m1.key,
                format_args!("MapKey {} both times", m1.key),
            );
            let covering = m2.descriptors().find(|d| {
                d.physical_start <= a && a + 5 * PAGE <= d.physical_start + d.number_of_pages * PAGE
            });
            check(
                "GetMemoryMap shows allocated pages with the requested type",
                covering.is_some_and(|d| d.r#type == efi::ACPI_RECLAIM_MEMORY),
                format_args!(
                    "covering descriptor {:?}",
                    covering.map(|d| (d.r#type, d.physical_start, d.number_of_pages))
                ),
            );
        }
        Err(s) => {
            check(
                "GetMemoryMap after an allocation",
                false,
                format_args!("{}", crate::out::St(s)),
            );
        }
    }
    if s == efi::Status::SUCCESS {
        (bs.free_pages)(a, 5);
    }
}

unsafe fn pool() {
    let bs = bs();
    let types = [
        (efi::RESERVED_MEMORY_TYPE, "EfiReservedMemoryType"),
        (efi::LOADER_CODE, "EfiLoaderCode"),
        (efi::LOADER_DATA, "EfiLoaderData"),
        (efi::BOOT_SERVICES_CODE, "EfiBootServicesCode"),
        (efi::BOOT_SERVICES_DATA, "EfiBootServicesData"),
        (efi::RUNTIME_SERVICES_CODE, "EfiRuntimeServicesCode"),
        (efi::RUNTIME_SERVICES_DATA, "EfiRuntimeServicesData"),
        (efi::ACPI_RECLAIM_MEMORY, "EfiACPIReclaimMemory"),
        (efi::ACPI_MEMORY_NVS, "EfiACPIMemoryNVS"),
        (0x7000_0001, "OEM type 0x70000001"),
        (0x8000_0001, "OS type 0x80000001"),
    ];
    for (ty, tname) in types {
        let mut ok = true;
        let mut why = alloc::string::String::new();
        for size in [1usize, 7, 24, 4095, 4097, 70000] {
            let mut p: *mut c_void = core::ptr::null_mut();
            let s = (bs.allocate_pool)(ty, size, &mut p);
            if s != efi::Status::SUCCESS || p.is_null() {
                ok = false;
                why = alloc::format!("size {size}: {}", crate::out::St(s));
                break;
            }
            if !(p as usize).is_multiple_of(8) {
                ok = false;
                why = alloc::format!("size {size}: {p:p} not 8-byte aligned");
            }
            core::ptr::write_bytes(p as *mut u8, 0xcc, size);
            let s = (bs.free_pool)(p);
            if s != efi::Status::SUCCESS {
                ok = false;
                why = alloc::format!("FreePool: {}", crate::out::St(s));
            }
        }
        check(
            &alloc::format!("AllocatePool/FreePool of {tname} (8-byte aligned)"),
            ok,
            format_args!("{why}"),
        );
    }
    let mut p: *mut c_void = core::ptr::null_mut();
    let s = (bs.allocate_pool)(INVALID_TYPE, 16, &mut p);
    expect_status(
        "AllocatePool with a reserved PoolType is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
    let s = (bs.allocate_pool)(efi::CONVENTIONAL_MEMORY, 16, &mut p);
    expect_status(
        "AllocatePool of EfiConventionalMemory is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
    let s = (bs.allocate_pool)(efi::LOADER_DATA, 16, core::ptr::null_mut());
    expect_status(
        "AllocatePool with a NULL Buffer is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
    let s = (bs.free_pool)(core::ptr::null_mut());
    expect_status(
        "FreePool(NULL) is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
}
