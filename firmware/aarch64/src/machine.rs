//! The arm64 `virt` machine under the UEFI layer
//! (`ember_uefi::machine::Machine`): the PL011 console, the generic timer,
//! Ember's translation tables (mmu.rs), the PL031 real-time clock and PSCI
//! reset and power-off; QEMU's SMBIOS (smbios.rs).
//!
//! Not (yet) here: a variable flash (virt's second flash bank has 256 KiB
//! sectors, not the variable store's block size; variables live in a file
//! on the ESP instead), a wake-up alarm, a random-number source (the
//! Cortex-A57 has no RNDR) and the relocation SetVirtualAddressMap needs
//! (the aarch64 image is not position-independent yet): the OS then keeps
//! runtime services at their physical addresses.

use crate::mmu;
use crate::pl011::Pl011;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use ember_uefi::flash::Pflash;
use ember_uefi::machine::{Attrs, Machine, Wakeup};
use r_efi::efi::{Status, Time};

pub struct Virt;

ember_uefi::machine!(Virt);

/// The PL031's registers (0: none found).
static PL031: AtomicUsize = AtomicUsize::new(0);
/// Whether the translation tables are in RAM and may change.
static DYNAMIC: AtomicBool = AtomicBool::new(false);
/// After ExitBootServices the OS does not map the UART for runtime
/// services: the console goes quiet.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Whether the console has gone quiet (after ExitBootServices).
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// PL031 registers: data (seconds, read), load (seconds, write).
const RTC_DR: usize = 0x00;
const RTC_LR: usize = 0x08;

/// Record the PL031 the device tree names.
///
/// # Safety
/// `base` must be a PL031's registers, inside the device window the
/// translation tables map as device memory.
pub unsafe fn set_rtc(base: usize) {
    PL031.store(base, Ordering::Relaxed);
}

/// The PL031's page, if there is one.
pub fn rtc_base() -> Option<u64> {
    match PL031.load(Ordering::Relaxed) {
        0 => None,
        b => Some(b as u64 & !0xfff),
    }
}

/// Move the translation tables to RAM and switch to UEFI's mapping: all
/// RAM readable, writable and executable (WXN off), as loaders expect —
/// they run code from pages they allocated and wrote — except Ember's own
/// data, stack and heap, which stay non-executable. Images that declare
/// NX_COMPAT then get W^X per section (ember-uefi's image loader) and the
/// memory attribute protocol can tighten any page.
pub fn enter_uefi_mapping(ram: &[(u64, u64)]) -> bool {
    let mut alloc = || ember_uefi::ram::alloc_pages(1);
    // SAFETY: called once, before any image runs; table pages come from
    // the page allocator (zeroed, recorded as Ember's).
    if !unsafe { mmu::make_dynamic(&mut alloc) } {
        return false;
    }
    DYNAMIC.store(true, Ordering::Release);
    let ember = (crate::rt::RAM_BASE as u64, crate::rt::LOAD_BASE as u64);
    let exec = Attrs {
        exec_protect: true,
        ..Attrs::NONE
    };
    let mut ok = true;
    for &(start, len) in ram {
        let end = start + len;
        for (s, e) in [(start, end.min(ember.0)), (start.max(ember.1), end)] {
            if s < e {
                // SAFETY: RAM the memory map hands out; Ember runs from
                // flash and keeps its own RAM (excluded here) XN.
                ok &= unsafe { mmu::update(s, e, Attrs::NONE, exec, &mut alloc) };
            }
        }
    }
    mmu::set_wxn(false);
    ok
}

impl Machine for Virt {
    fn console_write(&self, bytes: &[u8]) {
        if QUIET.load(Ordering::Relaxed) {
            return;
        }
        // SAFETY: virt's PL011, mapped as device memory.
        unsafe { Pl011::new(crate::UART) }.write_bytes(bytes);
    }
    fn console_read(&self) -> Option<u8> {
        // SAFETY: as above.
        unsafe { Pl011::new(crate::UART) }.get()
    }
    fn now_ns(&self) -> u64 {
        crate::rt::now_ns()
    }
    fn since_reset_us(&self) -> u64 {
        // The virtual counter starts with the VM.
        crate::rt::now_ns() / 1000
    }
    fn since_start_us(&self) -> u64 {
        crate::rt::now_ns().saturating_sub(crate::rt::start_ns()) / 1000
    }
    fn boot_services_exited(&self) {
        QUIET.store(true, Ordering::Relaxed);
    }

    fn nx_enabled(&self) -> bool {
        DYNAMIC.load(Ordering::Acquire)
    }
    fn enable_nx(&self) -> bool {
        DYNAMIC.load(Ordering::Acquire)
    }
    unsafe fn update_attributes(&self, start: u64, end: u64, set: Attrs, clear: Attrs) -> bool {
        if !DYNAMIC.load(Ordering::Acquire) {
            return false;
        }
        // SAFETY: the caller's promise (RAM it owns); the tables are in
        // RAM; new tables come from the page allocator.
        unsafe {
            mmu::update(start, end, set, clear, &mut || {
                ember_uefi::ram::alloc_pages(1)
            })
        }
    }
    fn attributes(&self, start: u64, end: u64) -> Option<Attrs> {
        // SAFETY: reads Ember's live tables.
        unsafe { mmu::attributes(start, end) }
    }
    fn code_written(&self, start: u64, len: u64) {
        mmu::sync_icache(start, len);
    }
    fn image_running(&self, stack_guard: u64, running: bool) {
        let rp = Attrs {
            read_protect: true,
            ..Attrs::NONE
        };
        let (set, clear) = if running {
            (rp, Attrs::NONE)
        } else {
            (Attrs::NONE, rp)
        };
        // SAFETY: the guard page below a stack the UEFI layer allocated.
        unsafe { self.update_attributes(stack_guard, stack_guard + 4096, set, clear) };
    }
    fn image_ranges(&self) -> [(u64, u64); 3] {
        extern "C" {
            static __rodata_start: u8;
            static __rodata_end: u8;
            static __data_start: u8;
            static __stack_top: u8;
        }
        // SAFETY: linker symbols; only their addresses are taken.
        let (r0, r1, d0, d1) = unsafe {
            (
                &__rodata_start as *const u8 as u64,
                &__rodata_end as *const u8 as u64,
                &__data_start as *const u8 as u64,
                &__stack_top as *const u8 as u64,
            )
        };
        [(0, r0), (r0, r1), (d0, d1)]
    }

    fn rtc_get(&self) -> Result<Time, Status> {
        let base = PL031.load(Ordering::Relaxed);
        if base == 0 {
            return Err(Status::DEVICE_ERROR);
        }
        // SAFETY: the PL031 set_rtc was given.
        let secs = unsafe { core::ptr::read_volatile((base + RTC_DR) as *const u32) };
        Ok(ember_uefi::runtime::time_at(secs))
    }
    fn rtc_set(&self, t: &Time) -> Status {
        let base = PL031.load(Ordering::Relaxed);
        if base == 0 {
            return Status::DEVICE_ERROR;
        }
        let Ok(secs) = u32::try_from(ember_uefi::runtime::unix_seconds(t)) else {
            return Status::INVALID_PARAMETER; // the PL031 counts 32 bits from 1970
        };
        // SAFETY: the PL031 set_rtc was given.
        unsafe { core::ptr::write_volatile((base + RTC_LR) as *mut u32, secs) };
        Status::SUCCESS
    }
    fn wakeup_get(&self) -> Result<Wakeup, Status> {
        Err(Status::UNSUPPORTED)
    }
    fn wakeup_set(&self, _enable: bool, _t: Option<&Time>) -> Status {
        Status::UNSUPPORTED
    }
    fn has_wakeup(&self) -> bool {
        false
    }

    fn var_flash(&self) -> Option<Pflash> {
        None
    }
    fn reset(&self) -> ! {
        crate::psci(crate::conduit(), crate::PSCI_SYSTEM_RESET);
        crate::halt()
    }
    fn poweroff(&self) -> ! {
        crate::psci(crate::conduit(), crate::PSCI_SYSTEM_OFF);
        crate::halt()
    }
    fn smbios_tables(&self) -> Vec<(bool, u64)> {
        crate::smbios::entry().into_iter().collect()
    }
    fn has_legacy_bios_area(&self) -> bool {
        false
    }

    fn rng_algorithms(&self) -> (bool, bool) {
        (false, false)
    }
    fn rng_draw(&self, _raw: bool) -> Option<u64> {
        None
    }

    fn relocations(&self) -> Option<usize> {
        None
    }
    unsafe fn relocate(&self, _delta: u64) {}
}
