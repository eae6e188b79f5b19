//! Walking the (legacy, 256-byte) capability list.

use crate::regs::{CAP_PTR, STATUS, STATUS_CAP_LIST};
use crate::{Bdf, ConfigSpace};

/// Capability ID of vendor-specific capabilities (used by virtio-pci).
pub const CAP_ID_VENDOR: u8 = 0x09;

/// One entry of a capability list.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Capability {
    /// Capability ID (first byte).
    pub id: u8,
    /// Config-space offset of the capability.
    pub offset: u8,
}

/// Iterator over a function's capabilities, yielding each `(id, offset)` once.
///
/// Pointers come from the device, so the walk stops at a pointer into the
/// standard header (< 0x40), at a capability already visited (a loop), and
/// after at most 48 entries (all that fit in 192 bytes).
pub struct Capabilities<'a, C: ConfigSpace + ?Sized> {
    cfg: &'a mut C,
    bdf: Bdf,
    next: u8,
    /// One bit per dword of the 256-byte space: capabilities already seen.
    visited: u64,
    remaining: u8,
}

impl<'a, C: ConfigSpace + ?Sized> Capabilities<'a, C> {
    /// Start walking `bdf`'s list (empty if the status register says none).
    pub fn new(cfg: &'a mut C, bdf: Bdf) -> Self {
        let next = if cfg.read16(bdf, STATUS) & STATUS_CAP_LIST != 0 {
            cfg.read8(bdf, CAP_PTR)
        } else {
            0
        };
        Capabilities {
            cfg,
            bdf,
            next,
            visited: 0,
            remaining: 48,
        }
    }

    /// Read `buf.len()` bytes of a capability's body starting at `offset`
    /// (bytes past 0xff read as zero).
    pub fn read_bytes(&mut self, offset: u8, buf: &mut [u8]) {
        read_cap_bytes(self.cfg, self.bdf, offset, buf)
    }
}

impl<C: ConfigSpace + ?Sized> Iterator for Capabilities<'_, C> {
    type Item = Capability;

    fn next(&mut self) -> Option<Capability> {
        // Low two bits of pointers are reserved.
        let offset = self.next & !3;
        if offset < 0x40 || self.remaining == 0 {
            return None;
        }
        let bit = 1u64 << (offset >> 2);
        if self.visited & bit != 0 {
            log::warn!("pci {}: capability list loops at {offset:#x}", self.bdf);
            return None;
        }
        self.visited |= bit;
        self.remaining -= 1;
        let header = self.cfg.read16(self.bdf, u16::from(offset));
        self.next = (header >> 8) as u8;
        Some(Capability {
            id: header as u8,
            offset,
        })
    }
}

/// Read bytes from config space starting at `offset`, dword by dword.
///
/// Used for vendor-specific capability bodies; reads stop at the end of the
/// 256-byte legacy space and leave the rest of `buf` zeroed.
pub fn read_cap_bytes<C: ConfigSpace + ?Sized>(cfg: &mut C, bdf: Bdf, offset: u8, buf: &mut [u8]) {
    buf.fill(0);
    for (i, byte) in buf.iter_mut().enumerate() {
        let Some(off) = usize::from(offset).checked_add(i).filter(|&o| o < 256) else {
            break;
        };
        *byte = cfg.read8(bdf, off as u16);
    }
}

/// Iterate `bdf`'s vendor-specific capabilities.
pub fn vendor_capabilities<C: ConfigSpace + ?Sized>(
    cfg: &mut C,
    bdf: Bdf,
) -> impl Iterator<Item = Capability> + '_ {
    Capabilities::new(cfg, bdf).filter(|c| c.id == CAP_ID_VENDOR)
}
