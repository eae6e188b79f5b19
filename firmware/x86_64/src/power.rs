//! Power-off and reset, through ACPI where the VMM describes it (PM1a
//! control or the hardware-reduced sleep control register; the FADT reset
//! register), with the legacy PC paths after.

use crate::acpi::{Gas, Platform};
use crate::arch::io::{halt_forever, outb, outw};
use spin::Once;

static PLATFORM: Once<Platform> = Once::new();

/// Remember the ACPI facts for the power paths.
pub fn init(p: Platform) -> &'static Platform {
    let p = PLATFORM.call_once(|| p);
    // ResetSystem keeps using these registers after ExitBootServices; when
    // they are MMIO (microvm's hardware-reduced ACPI) the OS must map them
    // for runtime services, so they go in the memory map as runtime MMIO.
    let regs = p
        .sleep_control
        .iter()
        .chain(p.reset.as_ref().map(|(g, _)| g));
    for g in regs.filter(|g| g.space == 0) {
        let page = g.address.get() & !0xfff;
        let _ = crate::memory::MAP.lock().map_mut().add(
            page,
            page + 0x1000,
            ember_mem::MemKind::Allocated(r_efi::efi::MEMORY_MAPPED_IO),
        );
    }
    p
}

/// Write a byte to a Generic Address Structure register.
///
/// # Safety
/// `g` must be a register the VMM's FADT named for this purpose.
unsafe fn gas_write8(g: &Gas, v: u8) {
    match g.space {
        // SAFETY: system I/O space register named by the FADT.
        1 => unsafe { outb(g.address.get() as u16, v) },
        // SAFETY: system memory register named by the FADT: identity-mapped,
        // or where the OS mapped it for runtime services (runtime MMIO).
        0 => unsafe {
            let a = crate::efi::runtime::virtual_of(g.address.get());
            core::ptr::write_volatile(a as usize as *mut u8, v)
        },
        _ => {}
    }
}

/// Turn the machine off; halts if nothing works.
pub fn poweroff() -> ! {
    log::info!("Ember: powering off");
    if let Some(p) = PLATFORM.get() {
        let typ = p.s5_typ.unwrap_or(0);
        if let Some(g) = &p.sleep_control {
            // SAFETY: the FADT's sleep control register: SLP_TYP | SLP_EN.
            unsafe { gas_write8(g, ((typ & 7) << 2) | (1 << 5)) };
        }
        if let Some(port) = p.pm1a_cnt {
            // SAFETY: the FADT's PM1a control block: SLP_TYP | SLP_EN.
            unsafe { outw(port, (u16::from(typ & 7) << 10) | (1 << 13)) };
        }
    }
    crate::time::stall_us(10_000);
    log::error!("Ember: power-off did not take effect; halting");
    halt_forever()
}

/// Reset the machine: the FADT reset register, then 0xCF9, then the
/// keyboard controller's pulse-reset command.
pub fn reset() -> ! {
    log::info!("Ember: resetting");
    if let Some((g, v)) = PLATFORM.get().and_then(|p| p.reset.as_ref()) {
        // SAFETY: the FADT's reset register and value.
        unsafe { gas_write8(g, *v) };
    }
    // SAFETY: 0xCF9 (reset control) and port 0x64 (keyboard controller) are
    // the PC reset paths; where absent the writes go nowhere.
    unsafe {
        outb(0xcf9, 0x06);
        outb(0x64, 0xfe);
    }
    crate::time::stall_us(10_000);
    log::error!("Ember: reset did not take effect; halting");
    halt_forever()
}

/// What to do when nothing could be booted (`ember.on_failure=`).
pub fn on_failure(policy: Option<&str>) -> ! {
    match policy {
        Some("reset") => reset(),
        Some("halt") => {
            log::info!("Ember: halted (ember.on_failure=halt)");
            halt_forever()
        }
        _ => poweroff(),
    }
}

/// The platform description, once ACPI has been read.
pub fn platform() -> Option<&'static Platform> {
    PLATFORM.get()
}
