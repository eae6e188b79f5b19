//! The few ACPI tables the firmware itself needs: MCFG (ECAM for PCI), FADT
//! (power-off, reset, PM timer) and the DSDT's `\_S5` sleep type. The VMM
//! built these tables; Ember reads them with bounds and checksum checks.

use crate::phys;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

#[derive(FromBytes, KnownLayout, Immutable, Unaligned, Clone, Copy)]
#[repr(C)]
struct Rsdp {
    signature: [u8; 8],
    checksum: u8,
    oem_id: [u8; 6],
    revision: u8,
    rsdt: U32,
    length: U32,
    xsdt: U64,
    ext_checksum: u8,
    _reserved: [u8; 3],
}
const _: () = assert!(core::mem::size_of::<Rsdp>() == 36);

#[derive(FromBytes, KnownLayout, Immutable, Unaligned, Clone, Copy)]
#[repr(C)]
struct SdtHeader {
    signature: [u8; 4],
    length: U32,
    revision: u8,
    checksum: u8,
    oem_id: [u8; 6],
    oem_table_id: [u8; 8],
    oem_revision: U32,
    creator_id: U32,
    creator_revision: U32,
}
const _: () = assert!(core::mem::size_of::<SdtHeader>() == 36);

/// Generic Address Structure.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct Gas {
    pub space: u8,
    pub bit_width: u8,
    pub bit_offset: u8,
    pub access_size: u8,
    pub address: U64,
}
const _: () = assert!(core::mem::size_of::<Gas>() == 12);

/// FADT fields through the ACPI 6 sleep registers.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned, Clone, Copy)]
#[repr(C)]
struct Fadt {
    header: SdtHeader,
    firmware_ctrl: U32,
    dsdt: U32,
    _reserved0: u8,
    preferred_pm_profile: u8,
    sci_int: U16,
    smi_cmd: U32,
    acpi_enable: u8,
    acpi_disable: u8,
    s4bios_req: u8,
    pstate_cnt: u8,
    pm1a_evt_blk: U32,
    pm1b_evt_blk: U32,
    pm1a_cnt_blk: U32,
    pm1b_cnt_blk: U32,
    pm2_cnt_blk: U32,
    pm_tmr_blk: U32,
    gpe0_blk: U32,
    gpe1_blk: U32,
    pm1_evt_len: u8,
    pm1_cnt_len: u8,
    pm2_cnt_len: u8,
    pm_tmr_len: u8,
    gpe0_blk_len: u8,
    gpe1_blk_len: u8,
    gpe1_base: u8,
    cst_cnt: u8,
    p_lvl2_lat: U16,
    p_lvl3_lat: U16,
    flush_size: U16,
    flush_stride: U16,
    duty_offset: u8,
    duty_width: u8,
    day_alarm: u8,
    mon_alarm: u8,
    century: u8,
    iapc_boot_arch: U16,
    _reserved1: u8,
    flags: U32,
    reset_reg: Gas,
    reset_value: u8,
    arm_boot_arch: U16,
    fadt_minor_version: u8,
    x_firmware_ctrl: U64,
    x_dsdt: U64,
    x_pm1a_evt_blk: Gas,
    x_pm1b_evt_blk: Gas,
    x_pm1a_cnt_blk: Gas,
    x_pm1b_cnt_blk: Gas,
    x_pm2_cnt_blk: Gas,
    x_pm_tmr_blk: Gas,
    x_gpe0_blk: Gas,
    x_gpe1_blk: Gas,
    sleep_control_reg: Gas,
    sleep_status_reg: Gas,
}
const _: () = assert!(core::mem::size_of::<Fadt>() == 268);
const _: () = assert!(core::mem::offset_of!(Fadt, flags) == 112);
const _: () = assert!(core::mem::offset_of!(Fadt, x_dsdt) == 140);
const _: () = assert!(core::mem::offset_of!(Fadt, sleep_control_reg) == 244);

#[derive(FromBytes, KnownLayout, Immutable, Unaligned, Clone, Copy)]
#[repr(C)]
struct McfgEntry {
    base: U64,
    segment: U16,
    start_bus: u8,
    end_bus: u8,
    _reserved: U32,
}
const _: () = assert!(core::mem::size_of::<McfgEntry>() == 16);

/// One ECAM window from MCFG.
#[derive(Clone, Copy, Debug)]
pub struct Ecam {
    pub base: u64,
    pub segment: u16,
    pub start_bus: u8,
    pub end_bus: u8,
}

/// What Ember learned from the ACPI tables.
#[derive(Default, Debug)]
pub struct Platform {
    pub rsdp: u64,
    pub ecam: Option<Ecam>,
    pub pm1a_cnt: Option<u16>,
    pub sleep_control: Option<Gas>,
    pub hw_reduced: bool,
    pub reset: Option<(Gas, u8)>,
    pub s5_typ: Option<u8>,
    /// The largest PCI memory windows the DSDT describes (DWord/QWord
    /// Memory descriptors): below and above 4 GiB, as [start, end).
    pub pci_mem32: Option<(u64, u64)>,
    pub pci_mem64: Option<(u64, u64)>,
    /// virtio-mmio transports declared in the DSDT (`LNRO0005`), as (base, size).
    pub virtio_mmio: alloc::vec::Vec<(u64, u64)>,
}

fn checksum_ok(b: &[u8]) -> bool {
    b.iter().fold(0u8, |a, x| a.wrapping_add(*x)) == 0
}

/// Read a whole table at `addr`, checking length and checksum.
///
/// # Safety
/// `addr` must come from the VMM's RSDP/XSDT chain (table memory).
unsafe fn table(addr: u64) -> Option<(&'static [u8], [u8; 4])> {
    if addr == 0 {
        return None;
    }
    // SAFETY: per the caller, a table header is at `addr`.
    let h = SdtHeader::read_from_bytes(unsafe { phys::bytes(addr, 36) }).ok()?;
    let len = h.length.get() as usize;
    if !(36..=16 << 20).contains(&len) {
        return None;
    }
    // SAFETY: the header says the table spans `len` bytes.
    let b = unsafe { phys::bytes(addr, len) };
    checksum_ok(b).then_some((b, h.signature))
}

/// Look for the RSDP in the legacy BIOS areas (EBDA and 0xE0000..0xFFFFF).
///
/// # Safety
/// Low memory must be identity-mapped (it is, from entry.s).
unsafe fn scan_rsdp() -> Option<u64> {
    // SAFETY: the BDA word at 0x40e holds the EBDA segment.
    let ebda = u64::from(u16::from_le_bytes(
        unsafe { phys::bytes(0x40e, 2) }.try_into().ok()?,
    )) << 4;
    let areas = [(ebda, 1024u64), (0xe0000, 0x20000)];
    for (start, len) in areas {
        if start == 0 || start >= 0x100000 {
            continue;
        }
        let mut a = start;
        while a + 20 <= start + len {
            // SAFETY: within the BIOS areas, which are mapped.
            let b = unsafe { phys::bytes(a, 20) };
            if &b[..8] == b"RSD PTR " && checksum_ok(b) {
                return Some(a);
            }
            a += 16;
        }
    }
    None
}

/// Find `\_S5`'s SLP_TYPa in the DSDT's AML (a name followed by a package).
fn find_s5(dsdt: &[u8]) -> Option<u8> {
    let pos = dsdt.windows(4).position(|w| w == b"_S5_")?;
    let rest = dsdt.get(pos + 4..)?;
    if *rest.first()? != 0x12 {
        return None; // not PackageOp
    }
    // PkgLength: the top two bits of the lead byte give the extra bytes.
    let extra = (rest.get(1)? >> 6) as usize;
    let elems = rest.get(2 + extra + 1..)?;
    match *elems.first()? {
        0x0a => elems.get(1).copied(), // BytePrefix
        0x00 => Some(0),               // ZeroOp
        0x01 => Some(1),               // OneOp
        b if b < 0x40 => Some(b),
        _ => None,
    }
}

/// virtio-mmio devices in the DSDT: each `_HID "LNRO0005"` is followed, in
/// QEMU's and Firecracker's tables, by a `_CRS` holding one Memory32Fixed
/// descriptor (tag 0x86, length 9). A full AML interpreter is not needed for
/// that shape; anything else is simply not found.
fn find_virtio_mmio(dsdt: &[u8]) -> alloc::vec::Vec<(u64, u64)> {
    let mut out = alloc::vec::Vec::new();
    let mut i = 0;
    while let Some(pos) = dsdt
        .get(i..)
        .and_then(|d| d.windows(8).position(|w| w == b"LNRO0005"))
    {
        let at = i + pos + 8;
        let window = dsdt.get(at..dsdt.len().min(at + 96)).unwrap_or(&[]);
        if let Some(d) = window
            .windows(12)
            .find(|w| w[0] == 0x86 && w[1] == 9 && w[2] == 0)
        {
            let base = u32::from_le_bytes([d[4], d[5], d[6], d[7]]);
            let len = u32::from_le_bytes([d[8], d[9], d[10], d[11]]);
            if base != 0 && len != 0 {
                out.push((u64::from(base), u64::from(len)));
            }
        }
        i = at;
        if out.len() >= 64 {
            break;
        }
    }
    out
}

/// A PCIe host bridge's ECAM base from the DSDT's `_CBA`: QEMU's microvm
/// with `pcie=on` describes its ECAM only there (no MCFG), as
/// `Method (_CBA) { Return (base) }`; `Name (_CBA, base)` is accepted too.
/// The window is taken as buses 0-255 (QEMU's 256 MiB); reads past a
/// smaller window return all-ones and end the scan.
fn find_cba(dsdt: &[u8]) -> Option<Ecam> {
    let pos = dsdt.windows(4).position(|w| w == b"_CBA")?;
    let v = dsdt.get(pos + 4..)?;
    // Name: the value follows; Method: flags, ReturnOp (0xa4), the value.
    let v = if v.get(1) == Some(&0xa4) {
        v.get(2..)?
    } else {
        v
    };
    let base = match *v.first()? {
        0x0e => u64::from_le_bytes(v.get(1..9)?.try_into().ok()?), // QWordPrefix
        0x0c => u64::from(u32::from_le_bytes(v.get(1..5)?.try_into().ok()?)), // DWordPrefix
        _ => return None,
    };
    (base != 0 && base % (1 << 20) == 0).then_some(Ecam {
        base,
        segment: 0,
        start_bus: 0,
        end_bus: 255,
    })
}

/// An address range [start, end).
type Window = (u64, u64);

/// The largest memory range descriptors in the DSDT: DWordMemory (0x87)
/// above 1 MiB and QWordMemory (0x8a) above 4 GiB. On QEMU these are the
/// PCI host bridge's windows (microvm's 64-bit one is far above RAM); BARs
/// Ember assigns must fall inside them.
fn find_memory_windows(dsdt: &[u8]) -> (Option<Window>, Option<Window>) {
    let (mut w32, mut w64): (Option<Window>, Option<Window>) = (None, None);
    let len = |w: &Option<Window>| w.map_or(0, |(s, e)| e - s);
    for i in 0..dsdt.len() {
        let d = &dsdt[i..];
        // Large resource: tag, u16 length, resource type 0 (memory).
        let (min, max) = match (d.first(), d.get(1..3), d.get(3)) {
            (Some(0x87), Some([0x17, 0]), Some(0)) => match (d.get(10..14), d.get(14..18)) {
                (Some(a), Some(b)) => (
                    u64::from(u32::from_le_bytes(a.try_into().unwrap_or([0; 4]))),
                    u64::from(u32::from_le_bytes(b.try_into().unwrap_or([0; 4]))),
                ),
                _ => continue,
            },
            (Some(0x8a), Some([0x2b, 0]), Some(0)) => match (d.get(14..22), d.get(22..30)) {
                (Some(a), Some(b)) => (
                    u64::from_le_bytes(a.try_into().unwrap_or([0; 8])),
                    u64::from_le_bytes(b.try_into().unwrap_or([0; 8])),
                ),
                _ => continue,
            },
            _ => continue,
        };
        if max <= min {
            continue;
        }
        let w = Some((min, max + 1));
        if min >= 1 << 32 && len(&w) > len(&w64) {
            w64 = w;
        } else if min >= 1 << 20 && max < 1 << 32 && len(&w) > len(&w32) {
            w32 = w;
        }
    }
    (w32, w64)
}

/// Walk the tables from the RSDP (given by the VMM, or scanned for).
///
/// # Safety
/// `rsdp` must be 0 or the address the VMM gave for the RSDP.
pub unsafe fn discover(rsdp: u64) -> Platform {
    let mut p = Platform::default();
    let rsdp = if rsdp != 0 {
        rsdp
    } else {
        // SAFETY: legacy areas are mapped; `rsdp` is the VMM's.
        unsafe { scan_rsdp() }.unwrap_or(0)
    };
    if rsdp == 0 {
        log::info!("ACPI: no RSDP");
        return p;
    }
    // SAFETY: an RSDP is at `rsdp`.
    let Ok(r) = Rsdp::read_from_bytes(unsafe { phys::bytes(rsdp, 36) }) else {
        return p;
    };
    if &r.signature != b"RSD PTR " {
        log::warn!("ACPI: RSDP at {rsdp:#x} has a bad signature");
        return p;
    }
    p.rsdp = rsdp;
    let (root, entry_size) = if r.revision >= 2 && r.xsdt.get() != 0 {
        (r.xsdt.get(), 8)
    } else {
        (u64::from(r.rsdt.get()), 4)
    };
    // SAFETY: the root table named by the RSDP.
    let Some((root, _)) = (unsafe { table(root) }) else {
        log::warn!("ACPI: root table at {root:#x} is invalid");
        return p;
    };
    for e in root.get(36..).unwrap_or(&[]).chunks_exact(entry_size) {
        let addr = if entry_size == 8 {
            u64::from_le_bytes(e.try_into().unwrap_or([0; 8]))
        } else {
            u64::from(u32::from_le_bytes(e.try_into().unwrap_or([0; 4])))
        };
        // SAFETY: an entry of the root table.
        let Some((t, sig)) = (unsafe { table(addr) }) else {
            continue;
        };
        match &sig {
            b"MCFG" => {
                if let Some(m) = t
                    .get(44..)
                    .and_then(|b| McfgEntry::read_from_prefix(b).ok())
                {
                    let m = m.0;
                    p.ecam = Some(Ecam {
                        base: m.base.get(),
                        segment: m.segment.get(),
                        start_bus: m.start_bus,
                        end_bus: m.end_bus,
                    });
                }
            }
            b"FACP" => {
                let mut buf = [0u8; 268];
                let n = t.len().min(268);
                buf[..n].copy_from_slice(&t[..n]);
                let Ok(f) = Fadt::read_from_bytes(&buf[..]) else {
                    continue;
                };
                let flags = f.flags.get();
                p.hw_reduced = n > 112 && flags & (1 << 20) != 0;
                if f.pm1a_cnt_blk.get() != 0 {
                    p.pm1a_cnt = Some(f.pm1a_cnt_blk.get() as u16);
                }
                if n >= 256 && f.sleep_control_reg.address.get() != 0 {
                    p.sleep_control = Some(f.sleep_control_reg);
                }
                if n >= 129 && flags & (1 << 10) != 0 {
                    p.reset = Some((f.reset_reg, f.reset_value));
                }
                let dsdt = if n >= 148 && f.x_dsdt.get() != 0 {
                    f.x_dsdt.get()
                } else {
                    u64::from(f.dsdt.get())
                };
                // SAFETY: the DSDT named by the FADT.
                if let Some((d, _)) = unsafe { table(dsdt) } {
                    p.s5_typ = find_s5(d);
                    p.virtio_mmio = find_virtio_mmio(d);
                    if p.ecam.is_none() {
                        p.ecam = find_cba(d);
                    }
                    (p.pci_mem32, p.pci_mem64) = find_memory_windows(d);
                }
            }
            _ => {}
        }
    }
    log::debug!("ACPI: {p:?}");
    p
}
