//! Ember for aarch64 on QEMU `virt`: the entry (MMU, caches and WXN on from
//! the first instruction, `entry.s`), the PL011 console, the device tree
//! from QEMU, and PSCI. The boot paths shared with x86_64 (virtio, GPT,
//! FAT, Boot Loader Specification, UEFI) are not wired in yet.
#![no_std]
#![no_main]

extern crate alloc;

mod disk;
mod fwcfg;
mod linux;
mod pci;
mod pl011;
mod platform;
mod rt;

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
            // QEMU's -kernel/-initrd/-append, when given.
            let ram = fdt
                .memory()
                .regions()
                .next()
                .map(|r| (r.starting_address as usize, r.size.unwrap_or(0)));
            match (platform::fw_cfg_base(&fdt), ram) {
                (Some(base), Some(ram)) => {
                    // SAFETY: the fw_cfg registers the device tree names,
                    // inside the device window the entry maps.
                    let fw = unsafe { fwcfg::FwCfg::new(base) };
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
                disk::boot(&mut disks, dtb, ram, &mut out);
            }
            conduit
        }
        Err(e) => {
            let _ = writeln!(out, "device tree at {dtb:#x}: unusable: {e:?}");
            Conduit::Hvc
        }
    };
    let _ = writeln!(
        out,
        "Ember: nothing (else) to boot on aarch64 yet; powering off"
    );
    psci(conduit, PSCI_SYSTEM_OFF);
    halt()
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
