//! The PVH boot ABI: `hvm_start_info` and its memory map, as placed by the
//! VMM (QEMU, Cloud Hypervisor, Firecracker).

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

/// What Ember takes from the start info.
pub struct BootInfo {
    pub cmdline: &'static str,
    pub rsdp: u64,
    memmap: &'static [u8],
}

impl BootInfo {
    /// No information: Ember falls back to probing.
    pub fn empty() -> Self {
        BootInfo { cmdline: "", rsdp: 0, memmap: &[] }
    }

    /// The VMM's memory map entries (possibly none).
    pub fn memmap(&self) -> impl Iterator<Item = MemmapEntry> + '_ {
        self.memmap.chunks_exact(24).filter_map(|c| MemmapEntry::read_from_bytes(c).ok())
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
    // The memory map fields exist from version 1 on.
    let memmap = if si.version >= 1 && si.memmap_paddr != 0 {
        let n = (si.memmap_entries as usize).min(1024);
        // SAFETY: the VMM's memory map table of `n` entries.
        unsafe { phys::bytes(si.memmap_paddr, n * 24) }
    } else {
        &[]
    };
    Ok(BootInfo { cmdline, rsdp: si.rsdp_paddr, memmap })
}

/// Value of `key=` in a kernel-style command line.
pub fn cmdline_value<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_ascii_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}
