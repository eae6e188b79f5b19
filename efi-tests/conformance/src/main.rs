//! Ember's UEFI conformance checks, as a UEFI application.
//!
//! Every check calls the firmware through the raw system table (r-efi's
//! definitions) so it sees the exact status codes, and compares them with
//! what the UEFI specification requires. Each check prints `ok NAME` or
//! `FAIL NAME: WHY` on ConOut; the run ends with
//! `CONFORMANCE: N passed, M failed` and `ResetSystem(EfiResetShutdown)`,
//! called, like the last checks, after ExitBootServices and
//! SetVirtualAddressMap at the virtual address (`virtual.rs`).
//!
//! The same binary also runs as its own child image (LoadImage from a
//! buffer, then StartImage): it recognises that case by the load options the
//! parent sets and just calls `Exit` with known exit data.
//!
//! Nearly everything here is FFI on firmware-owned pointers, so the test
//! groups are `unsafe fn`s that trust the firmware's tables to be valid; a
//! firmware that breaks that contract will crash the run, which the harness
//! reports as a missing summary line.

#![no_std]
#![no_main]

extern crate alloc;

mod console;
mod events;
mod image;
mod media;
mod memory;
mod misc;
mod out;
mod protocols;
mod runtime;
mod util;
mod varstress;
mod r#virtual;

use core::ffi::c_void;
use r_efi::efi;

/// Load options the parent gives the child copy of this image.
pub const CHILD_MARKER: &[u8] = b"ember-conformance-child\0";
/// What the child passes to `Exit`.
pub const CHILD_EXIT_STATUS: efi::Status = efi::Status::ABORTED;
pub const CHILD_EXIT_TEXT: &str = "child exit data";

#[export_name = "efi_main"]
extern "efiapi" fn efi_main(image: efi::Handle, st: *mut efi::SystemTable) -> efi::Status {
    // SAFETY: the firmware passes a valid system table and our image handle.
    unsafe {
        util::init(image, st);
        if image::is_child() {
            image::child_exit();
        }
        if let Some(mode) = image::options_text().filter(|o| o.starts_with("attack-")) {
            return attack(mode.trim());
        }
        match image::options_text().as_deref().map(str::trim) {
            Some("var-stress") => return varstress::stress(),
            Some("var-check") => {
                varstress::check();
                // Power off so the harness sees the end.
                (util::rt().reset_system)(
                    efi::RESET_SHUTDOWN,
                    efi::Status::SUCCESS,
                    0,
                    core::ptr::null_mut(),
                );
            }
            _ => {}
        }
        out::line(format_args!("Ember UEFI conformance checks"));
        // Boot managers arm a 5-minute watchdog before starting an image;
        // turn it off first so a slow TCG run is not reset half-way.
        let s = (util::bs().set_watchdog_timer)(0, 0, 0, core::ptr::null_mut());
        out::expect_status(
            "SetWatchdogTimer(0) disables the watchdog",
            s,
            efi::Status::SUCCESS,
        );
        misc::run();
        memory::run();
        protocols::run();
        events::run();
        image::run();
        media::run();
        console::run();
        runtime::run();
        // Last: it ends boot services and powers off from virtual mode.
        r#virtual::run()
    }
}

/// Print the panic, count it as a failure, then leave through `Exit` with
/// an error status (the spec's way for an application to return one).
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    // SAFETY: init ran before any code that can panic; the system table stays valid.
    unsafe {
        out::line(format_args!("FAIL panic: {}", info));
        out::line(format_args!("CONFORMANCE: panicked"));
        let bs = util::bs();
        (bs.exit)(
            util::image(),
            efi::Status::ABORTED,
            0,
            core::ptr::null_mut(),
        );
    }
    loop {
        core::hint::spin_loop();
    }
}

/// Global allocator over `AllocatePool(EfiLoaderData)`. Pool memory is
/// 8-byte aligned; larger alignments over-allocate and keep the pool pointer
/// just below the aligned block.
struct Pool;

// SAFETY: AllocatePool returns fresh memory or an error; we never hand out
// overlapping blocks and free exactly the pointer AllocatePool returned.
unsafe impl core::alloc::GlobalAlloc for Pool {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        let bs = util::bs();
        let align = layout.align();
        let extra = if align > 8 { align } else { 0 };
        let mut p: *mut c_void = core::ptr::null_mut();
        if (bs.allocate_pool)(efi::LOADER_DATA, layout.size() + extra, &mut p).is_error() {
            return core::ptr::null_mut();
        }
        if extra == 0 {
            return p.cast();
        }
        let base = p as usize;
        let aligned = (base + 8 + align - 1) & !(align - 1);
        *((aligned - 8) as *mut usize) = base;
        aligned as *mut u8
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: core::alloc::Layout) {
        let p = if layout.align() > 8 {
            *((ptr as usize - 8) as *const usize) as *mut c_void
        } else {
            ptr.cast()
        };
        (util::bs().free_pool)(p);
    }
}

#[global_allocator]
static ALLOC: Pool = Pool;

/// Deliberate misbehaviour for Ember's protection tests, chosen by the load
/// options: `attack-write` writes into the firmware's code (a boot-services
/// function), `attack-exec` calls into the firmware's data (the ConOut
/// protocol structure). Either must fault and be reported naming the
/// culprit; returning means the firmware did not stop it.
unsafe fn attack(mode: &str) -> efi::Status {
    let st = util::st();
    match mode {
        "attack-write" => {
            let target = (*(*st).boot_services).allocate_pages as usize as *mut u8;
            out::line(format_args!(
                "attack: writing to firmware code at {:p}",
                target
            ));
            core::ptr::write_volatile(target, 0xcc);
        }
        "attack-exec" => {
            let target = (*st).con_out as usize;
            out::line(format_args!(
                "attack: calling into firmware data at {:#x}",
                target
            ));
            let f: extern "efiapi" fn() = core::mem::transmute(target);
            f();
        }
        _ => return efi::Status::INVALID_PARAMETER,
    }
    out::line(format_args!("ATTACK-SURVIVED {mode}"));
    efi::Status::SUCCESS
}
