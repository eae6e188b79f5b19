//! What the previous stage tells Ember: the PVH boot ABI (`hvm_start_info`
//! and its memory map, from QEMU, Cloud Hypervisor, Firecracker) or a Linux
//! zero page (VMMs that start Ember like a kernel). From the reset vector
//! there is neither, and the memory map comes from fw_cfg or the CMOS.

use crate::phys;
use zerocopy::{FromBytes, Immutable, KnownLayout};

const MAGIC: u32 = 0x336e_c578;

/// `struct hvm_start_info` (Xen public/arch-x86/hvm/start_info.h), version 1.
#[derive(FromBytes, KnownLayout, Immutable, Clone, Copy)]
#[repr(C)]
pub struct StartInfo {
    pub magic: u32,
    pub version: u32,
    pub flags: u32,
    pub nr_modules: u32,
    pub modlist_paddr: u64,
    pub cmdline_paddr: u64,
    pub rsdp_paddr: u64,
    pub memmap_paddr: u64,
    pub memmap_entries: u32,
    pub reserved: u32,
}
const _: () = assert!(core::mem::size_of::<StartInfo>() == 56);

/// `struct hvm_memmap_table_entry`.
#[derive(FromBytes, KnownLayout, Immutable, Clone, Copy, Debug)]
#[repr(C)]
pub struct MemmapEntry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
    pub reserved: u32,
}
const _: () = assert!(core::mem::size_of::<MemmapEntry>() == 24);

/// Memory map entries Ember keeps (more than any VMM passes).
const MAX_ENTRIES: usize = 128;

/// What Ember takes from the previous stage.
pub struct BootInfo {
    pub cmdline: &'static str,
    pub rsdp: u64,
    memmap: [MemmapEntry; MAX_ENTRIES],
    entries: usize,
}

impl BootInfo {
    /// No information: Ember falls back to probing.
    pub fn empty() -> Self {
        BootInfo {
            cmdline: "",
            rsdp: 0,
            memmap: [MemmapEntry {
                addr: 0,
                size: 0,
                kind: 0,
                reserved: 0,
            }; MAX_ENTRIES],
            entries: 0,
        }
    }

    /// Record one memory map entry (E820 and PVH share type codes); false when full.
    pub fn push_memmap(&mut self, addr: u64, size: u64, kind: u32) -> bool {
        let Some(slot) = self.memmap.get_mut(self.entries) else {
            return false;
        };
        *slot = MemmapEntry {
            addr,
            size,
            kind,
            reserved: 0,
        };
        self.entries += 1;
        true
    }

    /// The memory map entries (possibly none).
    pub fn memmap(&self) -> impl Iterator<Item = MemmapEntry> + '_ {
        self.memmap[..self.entries].iter().copied()
    }
}

/// Why the start info could not be used.
#[derive(Debug)]
pub enum PvhError {
    NullPointer,
    BadMagic(u32),
}

impl core::fmt::Display for PvhError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PvhError::NullPointer => f.write_str("no hvm_start_info pointer in %ebx"),
            PvhError::BadMagic(m) => write!(f, "hvm_start_info magic {m:#x} is not {MAGIC:#x}"),
        }
    }
}

/// Read the start info the VMM left at `addr`.
///
/// # Safety
/// `addr` must be the value the VMM passed in %ebx at the PVH entry; the
/// structures it points to must not have been overwritten.
pub unsafe fn parse(addr: u64) -> Result<BootInfo, PvhError> {
    if addr == 0 {
        return Err(PvhError::NullPointer);
    }
    // SAFETY: the VMM placed a start_info here (caller's contract).
    let raw = unsafe { phys::bytes(addr, core::mem::size_of::<StartInfo>()) };
    let si = StartInfo::read_from_bytes(raw).map_err(|_| PvhError::NullPointer)?;
    if si.magic != MAGIC {
        return Err(PvhError::BadMagic(si.magic));
    }
    let cmdline = if si.cmdline_paddr != 0 {
        // SAFETY: the VMM's command line, NUL-terminated; 4 KiB is more than any VMM passes.
        let b = unsafe { phys::c_str(si.cmdline_paddr, 4096) };
        core::str::from_utf8(b).unwrap_or("")
    } else {
        ""
    };
    let mut info = BootInfo {
        cmdline,
        rsdp: si.rsdp_paddr,
        ..BootInfo::empty()
    };
    // The memory map fields exist from version 1 on.
    if si.version >= 1 && si.memmap_paddr != 0 {
        let n = (si.memmap_entries as usize).min(MAX_ENTRIES);
        // SAFETY: the VMM's memory map table of `n` entries.
        let raw = unsafe { phys::bytes(si.memmap_paddr, n * 24) };
        for e in raw
            .chunks_exact(24)
            .filter_map(|c| MemmapEntry::read_from_bytes(c).ok())
        {
            info.push_memmap(e.addr, e.size, e.kind);
        }
    }
    Ok(info)
}

/// Read a Linux zero page (`struct boot_params`) left by a loader that
/// started Ember through the 64-bit boot protocol.
///
/// # Safety
/// `addr` must be the zero page the loader passed in %rsi, with the command
/// line it points to, both intact.
pub unsafe fn parse_zero_page(addr: u64) -> Result<BootInfo, PvhError> {
    use ember_linux::BootParams;
    if addr == 0 {
        return Err(PvhError::NullPointer);
    }
    // SAFETY: the loader's zero page (caller's contract).
    let raw = unsafe { phys::bytes(addr, core::mem::size_of::<BootParams>()) };
    let bp = BootParams::read_from_bytes(raw).map_err(|_| PvhError::NullPointer)?;
    let cmd = u64::from(bp.hdr.cmd_line_ptr.get()) | u64::from(bp.ext_cmd_line_ptr.get()) << 32;
    let cmdline = if cmd != 0 {
        // SAFETY: the loader's NUL-terminated command line.
        core::str::from_utf8(unsafe { phys::c_str(cmd, 4096) }).unwrap_or("")
    } else {
        ""
    };
    let mut info = BootInfo {
        cmdline,
        rsdp: bp.acpi_rsdp_addr.get(),
        ..BootInfo::empty()
    };
    let n = usize::from(bp.e820_entries).min(bp.e820_table.len());
    for e in &bp.e820_table[..n] {
        info.push_memmap(e.addr.get(), e.size.get(), e.kind.get());
    }
    Ok(info)
}

/// Value of `key=` in a kernel-style command line.
pub fn cmdline_value<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_ascii_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}
