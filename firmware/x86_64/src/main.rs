//! Ember for x86_64: entry (PVH, reset vector, Linux 64-bit), platform
//! bring-up and the boot flow.
#![no_std]
#![no_main]

extern crate alloc;

mod acpi;
mod arch;
mod boot;
mod bootmgr;
mod chipset;
mod cmos;
mod console;
mod devices;
mod fwcfg;
mod linux;
mod machine;
mod memory;
mod pci;
mod platform;
mod power;
mod pvh;
mod reloc;
mod time;

// The UEFI layer (shared with aarch64) and the modules it brought along.
use ember_uefi as efi;
use ember_uefi::phys;

/// How Ember was entered (entry.s passes it as the second argument).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// PVH: a VMM or a BIOS loaded the ELF; the machine is set up.
    Pvh,
    /// The reset vector: Ember is the machine's firmware.
    Reset,
    /// The Linux 64-bit boot protocol, with a zero page.
    Linux64,
}

/// First Rust code; called from `entry.s` in long mode with the boot stack.
#[no_mangle]
extern "C" fn rust_start(info_addr: u64, source: u64) -> ! {
    time::mark_start();
    console::init(log::LevelFilter::Info);
    arch::exceptions::init();
    time::calibrate();
    let entry = match source {
        0 => Entry::Pvh,
        1 => Entry::Reset,
        _ => Entry::Linux64,
    };
    log::info!(
        "Ember {} (x86_64, {} entry)",
        env!("CARGO_PKG_VERSION"),
        match entry {
            Entry::Pvh => "PVH",
            Entry::Reset => "reset-vector",
            Entry::Linux64 => "Linux 64-bit",
        }
    );

    let parsed = match entry {
        // SAFETY: `info_addr` is what the VMM passed in %ebx at the PVH entry.
        Entry::Pvh => unsafe { pvh::parse(info_addr) },
        // SAFETY: `info_addr` is the zero page the loader passed in %rsi.
        Entry::Linux64 => unsafe { pvh::parse_zero_page(info_addr) },
        Entry::Reset => Ok(pvh::BootInfo::empty()),
    };
    let mut info = parsed.unwrap_or_else(|e| {
        log::warn!("boot information: {e}; continuing without it");
        pvh::BootInfo::empty()
    });
    // SAFETY: on every VMM Ember supports, ports 0x510-0x51b are QEMU's
    // fw_cfg or unclaimed.
    let mut early_fw = unsafe { fwcfg::FwCfg::probe_early() };
    if entry == Entry::Reset {
        platform::set_as_firmware();
        if let Some(fw) = early_fw.as_mut() {
            platform::e820_from_fwcfg(fw, &mut info);
        }
        // SAFETY: nothing has touched PCI configuration space yet.
        platform::set_chipset(unsafe { chipset::init() }, &mut info);
    }
    if let Some(level) = pvh::cmdline_value(info.cmdline, "ember.log").and_then(|l| l.parse().ok())
    {
        console::set_level(level);
    }
    log::debug!(
        "TSC {} kHz ({}), command line {:?}",
        time::tsc_khz(),
        time::source(),
        info.cmdline
    );
    memory::init(&info);
    if !arch::protect::protect_image() {
        log::warn!("protection: could not apply W^X to Ember's image");
    }
    if let Some(&(s, e)) = memory::heap_range() {
        arch::protect::protect_data(s, e);
    }
    // The VMM's command line sits in low memory that the OS or an EFI
    // application may reuse; keep a copy. Under QEMU, options for Ember as
    // firmware come from `-fw_cfg name=opt/ember/cmdline,string=...`.
    let mut cmdline = alloc::string::String::from(info.cmdline);
    let mut fw = if early_fw.is_some() {
        // SAFETY: as for the early probe.
        unsafe { fwcfg::FwCfg::probe() }
    } else {
        None
    };
    if let Some(extra) = fw.as_mut().and_then(|f| f.read_string("opt/ember/cmdline")) {
        if !cmdline.is_empty() {
            cmdline.push(' ');
        }
        cmdline.push_str(extra.trim());
        if let Some(level) = pvh::cmdline_value(&cmdline, "ember.log").and_then(|l| l.parse().ok())
        {
            console::set_level(level);
        }
    }
    let mut rsdp = info.rsdp;
    if entry == Entry::Reset {
        platform::assign_pci();
        if let Some(f) = fw.as_mut() {
            rsdp = platform::install_acpi(f).unwrap_or(0);
        }
    }
    // SAFETY: the RSDP address is the VMM's, ours, or 0.
    let platform = power::init(unsafe { acpi::discover(rsdp) });
    platform::install_smbios(fw.as_mut(), entry == Entry::Reset);
    // From here on a NULL dereference in Ember faults (the legacy scans
    // above were the last readers of low memory).
    arch::protect::unmap_page0();
    let mode = match pvh::cmdline_value(&cmdline, "ember.boot") {
        Some("native") => boot::Mode::Native,
        _ => boot::Mode::Uefi,
    };
    if entry == Entry::Reset {
        if let Some(f) = fw.as_mut() {
            platform::boot_qemu_kernel(f, platform.rsdp);
        }
    }
    let t = time::since_start_us();
    let mut disks = devices::discover(platform, &cmdline);
    log::info!(
        "devices: {} disk(s) in {} us",
        disks.len(),
        time::since_start_us() - t
    );
    if let Some(f) = fw.as_mut() {
        platform::apply_bootorder(f, &mut disks);
    }
    bootmgr::run(&mut disks, platform.rsdp, &cmdline, mode);
    log::error!("Ember: nothing bootable on {} disk(s)", disks.len());
    power::on_failure(pvh::cmdline_value(&cmdline, "ember.on_failure"))
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    print!("\n!!! Ember panic: {}\n", info);
    arch::io::halt_forever()
}
