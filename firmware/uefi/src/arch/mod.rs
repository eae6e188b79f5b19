//! The parts of the UEFI calling convention stable Rust cannot express,
//! per architecture: running an image on its own stack (and leaving it
//! through Exit), and the C-variadic Install/UninstallMultipleProtocol-
//! Interfaces.

#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(include_str!("x86_64.s"), options(att_syntax));
#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(include_str!("aarch64.s"));

/// x18 is AArch64's platform register: UEFI firmware must preserve it, and
/// Linux checks that it did around every runtime-service call (and needs
/// it for its shadow call stack). Stable Rust cannot keep the compiler from
/// allocating x18 on `aarch64-unknown-none` (`-Zfixed-x18` is nightly), so
/// each runtime service is entered through a wrapper that saves x18 with
/// the link register and restores both on return. All runtime services take
/// their arguments in registers, which the wrappers leave untouched.
#[cfg(target_arch = "aarch64")]
macro_rules! keep_x18 {
    ($($wrapper:ident => $target:path : ($($arg:ident : $ty:ty),*) $(-> $ret:ty)?;)*) => {
        $(
            core::arch::global_asm!(
                concat!(
                    ".section .text.", stringify!($wrapper), ", \"ax\"\n",
                    ".global ", stringify!($wrapper), "\n",
                    stringify!($wrapper), ":\n",
                    "    stp x18, x30, [sp, #-16]!\n",
                    "    bl {target}\n",
                    "    ldp x18, x30, [sp], #16\n",
                    "    ret\n",
                ),
                target = sym $target,
            );
        )*
        // SAFETY: each wrapper above saves x18 and x30, calls its target
        // (of the same signature) with the argument registers untouched and
        // returns its result; the signatures are the targets'.
        unsafe extern "efiapi" {
            $( safe fn $wrapper($($arg: $ty),*) $(-> $ret)?; )*
        }
    };
}

#[cfg(target_arch = "aarch64")]
mod x18 {
    use crate::runtime as rt;
    use core::ffi::c_void;
    use r_efi::efi::{self, Guid, Status, Time, TimeCapabilities};

    keep_x18! {
        rt_get_time => rt::get_time: (t: *mut Time, c: *mut TimeCapabilities) -> Status;
        rt_set_time => rt::set_time: (t: *mut Time) -> Status;
        rt_get_wakeup_time => rt::get_wakeup_time:
            (e: *mut efi::Boolean, p: *mut efi::Boolean, t: *mut Time) -> Status;
        rt_set_wakeup_time => rt::set_wakeup_time: (e: efi::Boolean, t: *mut Time) -> Status;
        rt_set_virtual_address_map => rt::set_virtual_address_map:
            (s: usize, d: usize, v: u32, m: *mut efi::MemoryDescriptor) -> Status;
        rt_convert_pointer => rt::convert_pointer: (d: usize, a: *mut *mut c_void) -> Status;
        rt_get_variable => rt::get_variable:
            (n: *mut u16, g: *mut Guid, a: *mut u32, s: *mut usize, d: *mut c_void) -> Status;
        rt_get_next_variable_name => rt::get_next_variable_name:
            (s: *mut usize, n: *mut u16, g: *mut Guid) -> Status;
        rt_set_variable => rt::set_variable:
            (n: *mut u16, g: *mut Guid, a: u32, s: usize, d: *mut c_void) -> Status;
        rt_get_next_high_mono_count => rt::get_next_high_mono_count: (h: *mut u32) -> Status;
        rt_reset_system => rt::reset_system:
            (k: efi::ResetType, s: Status, z: usize, d: *mut c_void);
        rt_update_capsule => rt::update_capsule:
            (c: *mut *mut efi::CapsuleHeader, n: usize, s: efi::PhysicalAddress) -> Status;
        rt_query_capsule_capabilities => rt::query_capsule_capabilities:
            (c: *mut *mut efi::CapsuleHeader, n: usize, m: *mut u64, r: *mut efi::ResetType) -> Status;
        rt_query_variable_info => rt::query_variable_info:
            (a: u32, m: *mut u64, r: *mut u64, v: *mut u64) -> Status;
    }

    /// Point the runtime-services table at the x18-preserving wrappers.
    pub fn wrap(t: &mut efi::RuntimeServices) {
        t.get_time = rt_get_time;
        t.set_time = rt_set_time;
        t.get_wakeup_time = rt_get_wakeup_time;
        t.set_wakeup_time = rt_set_wakeup_time;
        t.set_virtual_address_map = rt_set_virtual_address_map;
        t.convert_pointer = rt_convert_pointer;
        t.get_variable = rt_get_variable;
        t.get_next_variable_name = rt_get_next_variable_name;
        t.set_variable = rt_set_variable;
        t.get_next_high_mono_count = rt_get_next_high_mono_count;
        t.reset_system = rt_reset_system;
        t.update_capsule = rt_update_capsule;
        t.query_capsule_capabilities = rt_query_capsule_capabilities;
        t.query_variable_info = rt_query_variable_info;
    }
}

/// Point the runtime-services table at entry points that keep the
/// registers the architecture's UEFI binding reserves (aarch64: x18).
pub fn wrap_runtime(_t: &mut r_efi::efi::RuntimeServices) {
    #[cfg(target_arch = "aarch64")]
    x18::wrap(_t);
}
