//! Memory services: AllocatePages/FreePages/GetMemoryMap over Ember's one
//! memory map (so the map the OS gets lists every allocation with its UEFI
//! type), and AllocatePool/FreePool from per-type pools carved out of pages.

use crate::ram::MAP;
use ember_uefi_data::memmap::{
    AllocateType, EfiMemoryType, Pool, DESCRIPTOR_SIZE, DESCRIPTOR_VERSION,
};
use r_efi::efi::{self, Status};
use spin::Mutex;

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

fn pages_for_pool(pages: u64, ty: u32) -> Option<u64> {
    let a = MAP
        .lock()
        .allocate_pages(AllocateType::AnyPages, EfiMemoryType(ty), pages)
        .ok()?;
    // SAFETY: the pages were just allocated for this pool and are identity-mapped.
    unsafe { crate::phys::bytes_mut(a, (pages * 4096) as usize) }.fill(0);
    Some(a)
}

/// A pool allocation for firmware-made buffers handed to the guest.
pub fn pool_alloc(ty: u32, size: usize) -> Option<usize> {
    let mut p = POOL.lock();
    let pool = p.get_or_insert_with(Pool::new);
    pool.allocate(size as u64, ty, pages_for_pool)
        .map(|a| a as usize)
}

/// Tell EFI_EVENT_GROUP_MEMORY_MAP_CHANGE members that the map changed.
fn map_changed() {
    let g = ember_efi::Guid(*efi::EVENT_GROUP_MEMORY_MAP_CHANGE.as_bytes());
    if super::EFI.lock().is_some() {
        let _ = super::with(|e| e.st.events.signal_group(&g));
        super::dispatch();
    }
}

pub extern "efiapi" fn allocate_pages(
    kind: efi::AllocateType,
    ty: efi::MemoryType,
    pages: usize,
    addr: *mut efi::PhysicalAddress,
) -> Status {
    if addr.is_null() {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: in/out address checked non-null.
    let a = unsafe { *addr };
    let how = match kind {
        efi::ALLOCATE_ANY_PAGES => AllocateType::AnyPages,
        efi::ALLOCATE_MAX_ADDRESS => AllocateType::MaxAddress(a),
        efi::ALLOCATE_ADDRESS => AllocateType::Address(a),
        _ => return Status::INVALID_PARAMETER,
    };
    let r = MAP
        .lock()
        .allocate_pages(how, EfiMemoryType(ty), pages as u64);
    match r {
        Ok(p) => {
            // SAFETY: as above.
            unsafe { *addr = p };
            map_changed();
            Status::SUCCESS
        }
        Err(e) => Status::from_usize(e.efi_status()),
    }
}

pub extern "efiapi" fn free_pages(addr: efi::PhysicalAddress, pages: usize) -> Status {
    let r = MAP.lock().free_pages(addr, pages as u64);
    match r {
        Ok(()) => {
            map_changed();
            Status::SUCCESS
        }
        Err(e) => Status::from_usize(e.efi_status()),
    }
}

pub extern "efiapi" fn get_memory_map(
    size: *mut usize,
    map: *mut efi::MemoryDescriptor,
    key: *mut usize,
    desc_size: *mut usize,
    desc_version: *mut u32,
) -> Status {
    if size.is_null() {
        return Status::INVALID_PARAMETER;
    }
    let m = MAP.lock();
    let needed = ember_uefi_data::memmap::descriptor_count(m.map()) * DESCRIPTOR_SIZE;
    // SAFETY: out pointers checked where they must be; `size` is in/out.
    unsafe {
        if !desc_size.is_null() {
            *desc_size = DESCRIPTOR_SIZE;
        }
        if !desc_version.is_null() {
            *desc_version = DESCRIPTOR_VERSION;
        }
        if *size < needed {
            *size = needed;
            return Status::BUFFER_TOO_SMALL;
        }
    }
    if map.is_null() {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: the caller's buffer of `*size` bytes.
    let out = unsafe { core::slice::from_raw_parts_mut(map as *mut u8, *size) };
    match m.get_memory_map(out, DESCRIPTOR_SIZE) {
        Ok((n, k)) => {
            // SAFETY: out pointers.
            unsafe {
                *size = n;
                if !key.is_null() {
                    *key = k;
                }
            }
            Status::SUCCESS
        }
        Err(e) => Status::from_usize(e.efi_status()),
    }
}

pub extern "efiapi" fn allocate_pool(
    ty: efi::MemoryType,
    size: usize,
    out: *mut *mut core::ffi::c_void,
) -> Status {
    if out.is_null() {
        return Status::INVALID_PARAMETER;
    }
    if !EfiMemoryType(ty).is_allocatable() {
        return Status::INVALID_PARAMETER;
    }
    match pool_alloc(ty, size.max(1)) {
        Some(a) => {
            // SAFETY: out pointer checked.
            unsafe { *out = a as *mut core::ffi::c_void };
            Status::SUCCESS
        }
        None => Status::OUT_OF_RESOURCES,
    }
}

pub extern "efiapi" fn free_pool(p: *mut core::ffi::c_void) -> Status {
    if p.is_null() {
        return Status::INVALID_PARAMETER;
    }
    let r = POOL.lock().get_or_insert_with(Pool::new).free(p as u64);
    match r {
        Ok(Some(rel)) => {
            let _ = MAP.lock().free_pages(rel.addr, rel.pages);
            Status::SUCCESS
        }
        Ok(None) => Status::SUCCESS,
        Err(_) => Status::INVALID_PARAMETER,
    }
}
