//! What the machine's firmware must set up on QEMU's PC chipsets before an
//! OS (or QEMU's ACPI table builder) looks at them. Only needed when Ember
//! starts from the reset vector: behind SeaBIOS/qboot/a VMM this is done.
//!
//! QEMU builds its ACPI tables when firmware first reads them, from the
//! chipset registers as they are then: the MCFG follows PCIEXBAR and the
//! FADT's PM blocks follow PMBASE, so this runs before the table loader.

use crate::pci::PortIo;
use ember_pci::{Bdf, ConfigSpace};

/// The host bridges Ember knows how to set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chipset {
    /// q35: MCH 8086:29c0 with ICH9 LPC at 00:1f.0.
    Q35,
    /// pc: i440FX 8086:1237 with PIIX3/PIIX4 at 00:01.x.
    I440fx,
}

/// q35's ECAM window; the same place SeaBIOS and OVMF use.
pub const Q35_ECAM_BASE: u64 = 0xb000_0000;
/// 256 buses x 1 MiB.
pub const Q35_ECAM_SIZE: u64 = 256 << 20;

const HOST: Bdf = Bdf {
    bus: 0,
    device: 0,
    function: 0,
};

/// PIRQ lines A-D (and E-H on ICH9) to ISA IRQs 10 and 11, as other PC
/// firmware does; Linux reads them back through the DSDT's link devices.
const PIRQ_IRQS: [u8; 4] = [10, 10, 11, 11];

/// Identify the chipset and program it. Returns `None` on machines without
/// a PC host bridge (microvm), where there is nothing to do.
///
/// # Safety
/// Must run once, before anything else uses PCI configuration space, on a
/// machine whose ports 0xCF8/0xCFC are PCI configuration mechanism #1 or
/// unclaimed.
pub unsafe fn init() -> Option<Chipset> {
    // SAFETY: the caller makes us the only user of the config ports.
    let mut cfg = unsafe { PortIo::new() };
    let id = cfg.read32(HOST, 0);
    let chipset = match id {
        0x29c0_8086 => Chipset::Q35,
        0x1237_8086 => Chipset::I440fx,
        0xffff_ffff | 0 => return None,
        other => {
            log::warn!(
                "chipset: unknown host bridge {:04x}:{:04x}; not set up",
                other & 0xffff,
                other >> 16
            );
            return None;
        }
    };
    match chipset {
        Chipset::Q35 => {
            // PCIEXBAR (0x60, 64-bit): base, length 256 MiB (bits 2:1 = 0), enable.
            cfg.write32(HOST, 0x64, (Q35_ECAM_BASE >> 32) as u32);
            cfg.write32(HOST, 0x60, Q35_ECAM_BASE as u32 | 1);
            // PAM0-6 (0x90-0x96): 0xC0000-0xFFFFF read/write RAM, so the
            // F segment can hold the SMBIOS and RSDP anchors legacy OSes scan for.
            cfg.write8(HOST, 0x90, 0x30);
            for off in 0x91..=0x96 {
                cfg.write8(HOST, off, 0x33);
            }
            let lpc = Bdf {
                bus: 0,
                device: 0x1f,
                function: 0,
            };
            // PMBASE (0x40) and ACPI_EN in ACPI_CNTL (0x44): the PM1 and GPE
            // blocks QEMU's FADT describes.
            cfg.write32(lpc, 0x40, 0x600 | 1);
            let cntl = cfg.read8(lpc, 0x44);
            cfg.write8(lpc, 0x44, cntl | 0x80);
            for (i, irq) in PIRQ_IRQS.iter().enumerate() {
                cfg.write8(lpc, 0x60 + i as u16, *irq);
                cfg.write8(lpc, 0x68 + i as u16, *irq);
            }
        }
        Chipset::I440fx => {
            // PAM0-6 (0x59-0x5f).
            cfg.write8(HOST, 0x59, 0x30);
            for off in 0x5a..=0x5f {
                cfg.write8(HOST, off, 0x33);
            }
            let isa = Bdf {
                bus: 0,
                device: 1,
                function: 0,
            };
            for (i, irq) in PIRQ_IRQS.iter().enumerate() {
                cfg.write8(isa, 0x60 + i as u16, *irq);
            }
            // PIIX4 PM (00:01.3): PMBA at 0x40, PMIOSE in PMREGMISC (0x80).
            let pm = Bdf {
                bus: 0,
                device: 1,
                function: 3,
            };
            if cfg.read32(pm, 0) == 0x7113_8086 {
                cfg.write32(pm, 0x40, 0xb000 | 1);
                let misc = cfg.read8(pm, 0x80);
                cfg.write8(pm, 0x80, misc | 1);
            }
        }
    }
    log::info!("chipset: {chipset:?} set up");
    Some(chipset)
}
