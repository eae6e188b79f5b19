//! EFI_MEMORY_ATTRIBUTE_PROTOCOL: lets an OS loader (the Linux EFI stub,
//! shim) make its own pages read-only or non-executable before it runs
//! them, over Ember's identity page tables.

use crate::machine::{machine, Attrs};
use r_efi::efi::{self, Status};
use r_efi::protocols::memory_attribute;

const RP: u64 = efi::MEMORY_RP;
const XP: u64 = efi::MEMORY_XP;
const RO: u64 = efi::MEMORY_RO;

fn attrs(bits: u64) -> Attrs {
    Attrs {
        read_protect: bits & RP != 0,
        exec_protect: bits & XP != 0,
        read_only: bits & RO != 0,
    }
}

fn check(base: u64, len: u64, bits: u64) -> Result<u64, Status> {
    if len == 0
        || !base.is_multiple_of(4096)
        || !len.is_multiple_of(4096)
        || bits == 0
        || bits & !(RP | XP | RO) != 0
    {
        return Err(Status::INVALID_PARAMETER);
    }
    if bits & XP != 0 && !machine().nx_enabled() {
        return Err(Status::UNSUPPORTED);
    }
    base.checked_add(len).ok_or(Status::INVALID_PARAMETER)
}

extern "efiapi" fn get(
    this: *mut memory_attribute::Protocol,
    base: efi::PhysicalAddress,
    len: u64,
    out: *mut u64,
) -> Status {
    if this.is_null()
        || out.is_null()
        || len == 0
        || !base.is_multiple_of(4096)
        || !len.is_multiple_of(4096)
    {
        return Status::INVALID_PARAMETER;
    }
    let Some(end) = base.checked_add(len) else {
        return Status::INVALID_PARAMETER;
    };
    match machine().attributes(base, end) {
        Some(a) => {
            let v = (if a.read_protect { RP } else { 0 })
                | (if a.exec_protect { XP } else { 0 })
                | (if a.read_only { RO } else { 0 });
            // SAFETY: out pointer checked.
            unsafe { *out = v };
            Status::SUCCESS
        }
        None => Status::NO_MAPPING,
    }
}

fn change(base: u64, len: u64, bits: u64, set: bool) -> Status {
    let end = match check(base, len, bits) {
        Ok(e) => e,
        Err(s) => return s,
    };
    let none = Attrs {
        read_protect: false,
        exec_protect: false,
        read_only: false,
    };
    let (s, c) = if set {
        (attrs(bits), none)
    } else {
        (none, attrs(bits))
    };
    // SAFETY: Ember's identity tables; table pages come from the allocator.
    if unsafe { machine().update_attributes(base, end, s, c) } {
        Status::SUCCESS
    } else {
        Status::OUT_OF_RESOURCES
    }
}

extern "efiapi" fn set(
    this: *mut memory_attribute::Protocol,
    base: efi::PhysicalAddress,
    len: u64,
    bits: u64,
) -> Status {
    if this.is_null() {
        return Status::INVALID_PARAMETER;
    }
    change(base, len, bits, true)
}

extern "efiapi" fn clear(
    this: *mut memory_attribute::Protocol,
    base: efi::PhysicalAddress,
    len: u64,
    bits: u64,
) -> Status {
    if this.is_null() {
        return Status::INVALID_PARAMETER;
    }
    change(base, len, bits, false)
}

pub fn protocol() -> memory_attribute::Protocol {
    memory_attribute::Protocol {
        get_memory_attributes: get,
        set_memory_attributes: set,
        clear_memory_attributes: clear,
    }
}
