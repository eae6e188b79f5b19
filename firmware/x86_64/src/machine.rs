//! The x86_64 machine under the UEFI layer (`ember_uefi::machine::Machine`):
//! the serial console, the TSC clock, Ember's identity page tables, the
//! CMOS RTC, the pflash variable store below Ember's flash image, the ACPI
//! reset and power-off registers, RDRAND/RDSEED and the relocation table.

use crate::arch::io::cpuid;
use crate::arch::{paging, protect};
use crate::{cmos, console, platform, power, reloc, time};
use alloc::vec::Vec;
use core::arch::asm;
use core::sync::atomic::{AtomicUsize, Ordering};
use ember_uefi::flash::Pflash;
use ember_uefi::machine::{Attrs, Machine, Wakeup};
use r_efi::efi::{Status, Time};

pub struct X86;

ember_uefi::machine!(X86);

/// Images running now (nested: GRUB starts the kernel's stub).
static RUNNING: AtomicUsize = AtomicUsize::new(0);

fn has_rdrand() -> bool {
    cpuid(1, 0).ecx & (1 << 30) != 0
}

fn has_rdseed() -> bool {
    cpuid(0, 0).eax >= 7 && cpuid(7, 0).ebx & (1 << 18) != 0
}

/// One 64-bit value, retried a bounded number of times (both instructions
/// may transiently report no data, CF=0).
fn draw(seed: bool) -> Option<u64> {
    for _ in 0..1024 {
        let v: u64;
        let ok: u8;
        // SAFETY: RDRAND/RDSEED only write the destination register and CF;
        // callers check CPUID for the instruction first.
        unsafe {
            if seed {
                asm!("rdseed {v}", "setc {ok}", v = out(reg) v, ok = out(reg_byte) ok, options(nomem, nostack));
            } else {
                asm!("rdrand {v}", "setc {ok}", v = out(reg) v, ok = out(reg_byte) ok, options(nomem, nostack));
            }
        }
        if ok != 0 {
            return Some(v);
        }
        core::hint::spin_loop();
    }
    None
}

/// How many bytes Ember's own flash image spans: its loaded bytes and the
/// reset stub, rounded up to QEMU's 64 KiB granule (as `cargo xtask build`
/// lays it out). The vars device sits right below.
fn code_flash_size() -> u64 {
    extern "C" {
        static __image_start: u8;
        static __load_end: u8;
        static reset_stub_start: u8;
        static reset_stub_end: u8;
    }
    // SAFETY: linker-provided symbols; only their addresses are used.
    let (s, l, rs, re) = unsafe {
        (
            &__image_start as *const u8 as u64,
            &__load_end as *const u8 as u64,
            &reset_stub_start as *const u8 as u64,
            &reset_stub_end as *const u8 as u64,
        )
    };
    ((l - s) + (re - rs)).next_multiple_of(64 * 1024)
}

impl Machine for X86 {
    fn console_write(&self, bytes: &[u8]) {
        console::write_raw(bytes);
    }
    fn console_read(&self) -> Option<u8> {
        console::read_byte()
    }
    fn now_ns(&self) -> u64 {
        time::now_ns()
    }
    fn since_reset_us(&self) -> u64 {
        time::since_reset_us()
    }
    fn since_start_us(&self) -> u64 {
        time::since_start_us()
    }

    fn nx_enabled(&self) -> bool {
        paging::nx_enabled()
    }
    fn enable_nx(&self) -> bool {
        paging::enable_nx()
    }
    unsafe fn update_attributes(&self, start: u64, end: u64, set: Attrs, clear: Attrs) -> bool {
        // SAFETY: the caller's promise (RAM it owns); Ember's identity
        // tables are live; new tables come from the page allocator.
        unsafe {
            paging::update(start, end, set, clear, &mut || {
                crate::memory::alloc_pages(1)
            })
        }
    }
    fn attributes(&self, start: u64, end: u64) -> Option<Attrs> {
        // SAFETY: Ember's identity tables are live while boot services run.
        unsafe { paging::attributes(start, end) }
    }
    fn code_written(&self, _start: u64, _len: u64) {
        // x86 keeps instruction fetch coherent with stores.
    }
    fn image_running(&self, stack_guard: u64, running: bool) {
        if running {
            protect::guard(stack_guard);
            // Guest code may read the BIOS data area and vectors in page 0.
            if RUNNING.fetch_add(1, Ordering::Relaxed) == 0 {
                protect::map_page0();
            }
        } else {
            if RUNNING.fetch_sub(1, Ordering::Relaxed) == 1 {
                protect::unmap_page0();
            }
            protect::unguard(stack_guard);
        }
    }
    fn image_ranges(&self) -> [(u64, u64); 3] {
        protect::image_ranges()
    }

    fn rtc_get(&self) -> Result<Time, Status> {
        cmos::read_rtc().ok_or(Status::DEVICE_ERROR)
    }
    fn rtc_set(&self, t: &Time) -> Status {
        cmos::write(t)
    }
    fn wakeup_get(&self) -> Result<Wakeup, Status> {
        cmos::wakeup_get()
    }
    fn wakeup_set(&self, enable: bool, t: Option<&Time>) -> Status {
        cmos::wakeup_set(enable, t)
    }
    fn has_wakeup(&self) -> bool {
        true
    }

    fn var_flash(&self) -> Option<Pflash> {
        if !platform::as_firmware() {
            log::debug!("UEFI variables: Ember was not started from flash");
            return None;
        }
        // SAFETY: Ember started from its flash image at the top of 4 GiB on
        // a QEMU PC machine (as_firmware), where the range below it is
        // pflash or unclaimed.
        unsafe { Pflash::probe_below((1u64 << 32) - code_flash_size()) }
    }
    fn reset(&self) -> ! {
        power::reset()
    }
    fn poweroff(&self) -> ! {
        power::poweroff()
    }
    fn smbios_tables(&self) -> Vec<(bool, u64)> {
        platform::smbios_extra()
    }
    fn has_legacy_bios_area(&self) -> bool {
        true
    }

    fn rng_algorithms(&self) -> (bool, bool) {
        (has_rdrand(), has_rdseed())
    }
    fn rng_draw(&self, raw: bool) -> Option<u64> {
        draw(raw)
    }

    fn relocations(&self) -> Option<usize> {
        reloc::ready().then(|| reloc::count() as usize)
    }
    unsafe fn relocate(&self, delta: u64) {
        // SAFETY: the caller's promise (SetVirtualAddressMap's last step).
        unsafe { reloc::apply(delta) };
    }
}
