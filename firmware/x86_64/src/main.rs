//! Ember for x86_64: PVH entry, platform bring-up and the boot flow.
#![no_std]
#![no_main]

extern crate alloc;

mod acpi;
mod arch;
mod boot;
mod devices;
mod efi;
mod linux;
mod console;
mod memory;
mod pci;
mod phys;
mod power;
mod pvh;
mod time;

/// First Rust code; called from `entry.s` in long mode with the boot stack.
#[no_mangle]
extern "C" fn rust_start(start_info: u64) -> ! {
    time::mark_start();
    console::init(log::LevelFilter::Info);
    arch::exceptions::init();
    time::calibrate();
    log::info!("Ember {} (x86_64, PVH entry)", env!("CARGO_PKG_VERSION"));

    // SAFETY: `start_info` is what the VMM passed in %ebx at the PVH entry.
    let info = match unsafe { pvh::parse(start_info) } {
        Ok(i) => i,
        Err(e) => {
            log::warn!("PVH: {e}; continuing without VMM boot information");
            pvh::BootInfo::empty()
        }
    };
    if let Some(level) = pvh::cmdline_value(info.cmdline, "ember.log").and_then(|l| l.parse().ok()) {
        console::set_level(level);
    }
    log::debug!("TSC {} kHz ({}), command line {:?}", time::tsc_khz(), time::source(), info.cmdline);
    memory::init(&info);
    if !arch::protect::protect_image() {
        log::warn!("protection: could not apply W^X to Ember's image");
    }
    if let Some(&(s, e)) = memory::heap_range() {
        arch::protect::protect_data(s, e);
    }
    // SAFETY: the RSDP address is the VMM's (or 0).
    let platform = power::init(unsafe { acpi::discover(info.rsdp) });
    // From here on a NULL dereference in Ember faults (the legacy RSDP scan
    // above was the last reader of the BIOS data area).
    arch::protect::unmap_page0();
    let t = time::since_start_us();
    // The VMM's command line sits in low memory that the OS or an EFI
    // application may reuse; keep a copy.
    let cmdline = alloc::string::String::from(info.cmdline);
    let mut disks = devices::discover(platform, &cmdline);
    log::info!("devices: {} disk(s) in {} us", disks.len(), time::since_start_us() - t);
    let mode = match pvh::cmdline_value(&cmdline, "ember.boot") {
        Some("native") => boot::Mode::Native,
        _ => boot::Mode::Uefi,
    };
    boot::run(&mut disks, platform.rsdp, &cmdline, mode);
    log::error!("Ember: nothing bootable on {} disk(s)", disks.len());
    power::on_failure(pvh::cmdline_value(&cmdline, "ember.on_failure"))
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    print!("\n!!! Ember panic: {}\n", info);
    arch::io::halt_forever()
}
