//! Ember for aarch64 on QEMU `virt`: the entry (MMU, caches and WXN on from
//! the first instruction, `entry.s`), the PL011 console, the device tree
//! from QEMU, PSCI, and the boot paths: QEMU's -kernel, Boot Loader
//! Specification entries, then UEFI loaders (efiboot.rs, with the UEFI
//! layer shared with x86_64).
#![no_std]
#![no_main]

extern crate alloc;

mod acpi;
mod disk;
mod efiboot;
mod fwcfg;
mod linux;
mod machine;
mod mmu;
mod pci;
mod pl011;
mod platform;
mod rt;
mod smbios;

/// virt's PL011 (the console before and besides the device tree).
pub const UART: usize = 0x0900_0000;

use core::fmt::Write;

core::arch::global_asm!(include_str!("entry.s"));

/// SCTLR_EL1 bits the entry sets.
const SCTLR_M: u64 = 1 << 0;
const SCTLR_C: u64 = 1 << 2;
const SCTLR_I: u64 = 1 << 12;
const SCTLR_WXN: u64 = 1 << 19;

/// PSCI 0.2 SYSTEM_OFF and SYSTEM_RESET function IDs.
const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
const PSCI_SYSTEM_RESET: u64 = 0x8400_0009;

fn sctlr() -> u64 {
    let v: u64;
    // SAFETY: reading a system register of the current exception level.
    unsafe { core::arch::asm!("mrs {}, sctlr_el1", out(reg) v, options(nomem, nostack)) };
    v
}

/// How PSCI calls reach the hypervisor or secure firmware (`/psci` method).
#[derive(Clone, Copy)]
enum Conduit {
    Hvc,
    Smc,
}

/// The conduit the device tree named (HVC until then).
static SMC: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

fn conduit() -> Conduit {
    if SMC.load(core::sync::atomic::Ordering::Relaxed) {
        Conduit::Smc
    } else {
        Conduit::Hvc
    }
}

fn psci(conduit: Conduit, function: u64) {
    match conduit {
        // SAFETY: a PSCI call: the VMM handles it; SYSTEM_OFF does not return.
        Conduit::Hvc => unsafe {
            core::arch::asm!("hvc #0", inout("x0") function => _, options(nostack))
        },
        // SAFETY: as above, through the secure monitor.
        Conduit::Smc => unsafe {
            core::arch::asm!("smc #0", inout("x0") function => _, options(nostack))
        },
    }
}

#[no_mangle]
extern "C" fn rust_main(dtb: usize) -> ! {
    // SAFETY: QEMU virt's PL011 at its fixed address, mapped as device
    // memory by the entry's tables (the device tree may name another
    // console; this one prints the errors about it).
    let mut out = unsafe { pl011::Pl011::new(UART) };
    rt::init();
    let s = sctlr();
    let _ = writeln!(
        out,
        "Ember {} (aarch64, virt): MMU {} caches {} WXN {} (SCTLR_EL1 {s:#x})",
        env!("CARGO_PKG_VERSION"),
        on(s & SCTLR_M != 0),
        on(s & (SCTLR_C | SCTLR_I) == SCTLR_C | SCTLR_I),
        on(s & SCTLR_WXN != 0)
    );
    // SAFETY: QEMU places the device tree at the start of RAM for -bios
    // boots; `from_ptr` checks its header and bounds the reads by its size.
    let conduit = match unsafe { fdt::Fdt::from_ptr(dtb as *const u8) } {
        Ok(fdt) => {
            let total: u64 = fdt
                .memory()
                .regions()
                .filter_map(|r| r.size)
                .map(|s| s as u64)
                .sum();
            let _ = writeln!(out, "device tree at {dtb:#x}: {} MiB of RAM", total >> 20);
            for r in fdt.memory().regions() {
                let _ = writeln!(
                    out,
                    "  memory at {:#x}, {} MiB",
                    r.starting_address as usize,
                    r.size.unwrap_or(0) >> 20
                );
            }
            platform::report(&fdt, &mut out);
            let conduit = match fdt
                .find_node("/psci")
                .and_then(|n| n.property("method"))
                .and_then(|p| p.as_str())
            {
                Some("smc") => Conduit::Smc,
                _ => Conduit::Hvc,
            };
            SMC.store(
                matches!(conduit, Conduit::Smc),
                core::sync::atomic::Ordering::Relaxed,
            );
            if let Some(base) = platform::pl031_base(&fdt) {
                // SAFETY: the PL031 the device tree names, inside the
                // device window (pl031_base checks).
                unsafe { machine::set_rtc(base) };
            }
            let regions: alloc::vec::Vec<(u64, u64)> = fdt
                .memory()
                .regions()
                .map(|r| (r.starting_address as u64, r.size.unwrap_or(0) as u64))
                .collect();
            rt::memory_map(regions.iter().copied());
            // QEMU's -kernel/-initrd/-append, when given.
            let ram = fdt
                .memory()
                .regions()
                .next()
                .map(|r| (r.starting_address as usize, r.size.unwrap_or(0)));
            let fw_cfg = platform::fw_cfg_base(&fdt);
            if let Some(base) = fw_cfg {
                // SAFETY: the fw_cfg registers the device tree names,
                // inside the device window the entry maps.
                unsafe { efiboot::set_fw_cfg(base) };
            }
            match (fw_cfg, ram) {
                (Some(base), Some(ram)) => {
                    // SAFETY: the fw_cfg registers the device tree names,
                    // inside the device window the entry maps.
                    let fw = unsafe { fwcfg::FwCfg::new(base) };
                    let opts = fw.read_file("opt/ember/cmdline", 4096).unwrap_or_default();
                    let opts = core::str::from_utf8(&opts).unwrap_or("");
                    // ember.log=error|warn|info|debug|trace, as on x86_64.
                    if let Some(l) = opts
                        .split_ascii_whitespace()
                        .find_map(|w| w.strip_prefix("ember.log="))
                        .and_then(|l| l.parse::<log::LevelFilter>().ok())
                    {
                        log::set_max_level(l);
                    }
                    if let Some(t) = opts
                        .split_ascii_whitespace()
                        .find_map(|w| w.strip_prefix("ember.selftest="))
                    {
                        selftest(t, &mut out);
                    }
                    if let Err(e) = linux::boot(&fw, dtb, ram, &mut out) {
                        let _ = writeln!(out, "Linux: {e}");
                    }
                }
                _ => {
                    let _ = writeln!(out, "Linux: no fw_cfg or no RAM in the device tree");
                }
            }
            // Then the disks.
            if let Some(ram) = ram {
                let mut disks = disk::discover(&platform::virtio_mmio(&fdt));
                if let Some((ecam, windows)) = pci::host_bridge(&fdt) {
                    disks.extend(pci::disks(ecam, windows));
                }
                disk::boot(&mut disks, dtb, ram, &regions, &mut out);
                efiboot::boot(&disks, dtb, &regions, &mut out);
            }
            conduit
        }
        Err(e) => {
            let _ = writeln!(out, "device tree at {dtb:#x}: unusable: {e:?}");
            Conduit::Hvc
        }
    };
    let _ = writeln!(out, "Ember: nothing booted; powering off");
    psci(conduit, PSCI_SYSTEM_OFF);
    halt()
}

/// What an exception class (ESR_EL1.EC) is.
fn exception_class(ec: u64) -> &'static str {
    match ec {
        0x00 => "unknown reason",
        0x07 => "FP/SIMD access trapped",
        0x0e => "illegal execution state",
        0x15 => "SVC",
        0x18 => "system register access trapped",
        0x20 | 0x21 => "instruction abort",
        0x22 => "PC alignment fault",
        0x24 | 0x25 => "data abort",
        0x26 => "SP alignment fault",
        0x2f => "SError",
        0x3c => "BRK",
        _ => "other",
    }
}

/// Data/instruction abort status (ISS DFSC/IFSC, bits 5:0).
fn fault_status(iss: u64) -> &'static str {
    match iss & 0x3f {
        0x04..=0x07 => "translation fault (not mapped)",
        0x09..=0x0b => "access flag fault",
        0x0d..=0x0f => "permission fault",
        0x21 => "alignment fault",
        _ => "",
    }
}

/// Every exception ends here (entry.s's vector table): say what happened
/// and where, then power off — Ember cannot continue after one.
#[no_mangle]
extern "C" fn ember_exception(vector: u64, esr: u64, elr: u64, far: u64) -> ! {
    // SAFETY: virt's PL011, as in rust_main.
    let mut out = unsafe { pl011::Pl011::new(UART) };
    let ec = esr >> 26;
    let kind = ["synchronous", "IRQ", "FIQ", "SError"][(vector & 3) as usize];
    let _ = writeln!(
        out,
        "\n!!! Ember: {kind} exception (vector {vector}): {} {} at ELR {elr:#x}, FAR {far:#x} (ESR_EL1 {esr:#x})",
        exception_class(ec),
        if matches!(ec, 0x20 | 0x21 | 0x24 | 0x25) { fault_status(esr) } else { "" }
    );
    let _ = writeln!(out, "!!! Ember stopped.");
    psci(Conduit::Hvc, PSCI_SYSTEM_OFF);
    halt()
}

/// `ember.selftest=fault|exec|mmu` (from `-fw_cfg name=opt/ember/cmdline`):
/// show that the exception report works and that writable memory cannot be
/// executed (WXN), by reading an address the tables do not map or by
/// running an instruction Ember has just written to RAM.
fn selftest(what: &str, out: &mut pl011::Pl011) {
    match what {
        "fault" => {
            let addr = 0x100_0000_0000usize; // 1 TiB: beyond the tables
            let _ = writeln!(out, "selftest: reading {addr:#x}");
            // SAFETY: deliberately faults; the exception report ends Ember.
            let _ = unsafe { core::ptr::read_volatile(addr as *const u64) };
        }
        "exec" => {
            // `ret`, in writable .data (atomics: written at run time, no
            // `static mut`).
            static CODE: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
            CODE.store(0xd65f_03c0, core::sync::atomic::Ordering::SeqCst);
            let addr = CODE.as_ptr() as usize;
            let _ = writeln!(out, "selftest: running the `ret` just written at {addr:#x}");
            // SAFETY: deliberately branches into writable (hence, under WXN,
            // execute-never) RAM; the instruction abort ends Ember.
            unsafe { core::arch::asm!("blr {}", in(reg) addr, out("x30") _) };
            let _ = writeln!(
                out,
                "selftest: writable memory executed: WXN is NOT in force"
            );
        }
        // Run-time page attributes (mmu.rs); ends in a permission fault.
        "mmu" => mmu::selftest(out),
        _ => {
            let _ = writeln!(out, "selftest: unknown test {what:?}");
        }
    }
}

fn on(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

fn halt() -> ! {
    loop {
        // SAFETY: waits for an event; no memory effects.
        unsafe { core::arch::asm!("wfe", options(nomem, nostack)) };
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    // SAFETY: as in rust_main.
    let mut out = unsafe { pl011::Pl011::new(UART) };
    let _ = writeln!(out, "\n!!! Ember panic: {info}");
    halt()
}
