//! VMSAv8-64 stage 1 translation table descriptors with the 4 KiB granule,
//! as Ember's arm64 firmware keeps them at run time (`firmware/aarch64`'s
//! `mmu.rs`, which supplies the memory, the barriers and the TLB
//! maintenance): what an entry of each level maps, how a descriptor is
//! classified, how a block is split into the next level's entries, and how
//! the UEFI page attributes RP / XP / RO are encoded. Pure integer
//! arithmetic, no hardware.
//!
//! # Levels
//!
//! With the 4 KiB granule a table holds 512 descriptors and a walk starting
//! at level 0 resolves VA bits 47:39, 38:30, 29:21 and 20:12 at levels 0 to
//! 3: one entry maps 512 GiB, 1 GiB, 2 MiB or 4 KiB. Levels 1 and 2 may hold
//! blocks, level 3 holds pages, level 0 only tables (no level 0 blocks
//! without 52-bit addresses).
//!
//! # Attributes
//!
//! - **RO** is AP\[2\] (bit 7): read-only at EL1 (AP\[1\] stays as it is:
//!   Ember gives EL0 no access).
//! - **XP** is PXN (bit 53). Setting it also sets UXN (bit 54); clearing
//!   it leaves UXN set — nothing runs at EL0.
//! - **RP** cannot be expressed with AP at EL1 (EL1 can always read what
//!   it may access), so a read-protected entry is *invalid*: bit 0 clear.
//!   The walker ignores every other bit of an invalid descriptor, so it keeps
//!   its output address and attributes plus the software bit [`SW_RP`]
//!   (bit 55), which tells a read-protected mapping from an unmapped one.
//!   Clearing RP restores the descriptor as it was.
#![no_std]
#![forbid(unsafe_code)]

/// The translation granule.
pub const PAGE: u64 = 4096;
/// Descriptors per table.
pub const ENTRIES: usize = 512;

/// Descriptor bits (VMSAv8-64, stage 1, 4 KiB granule): valid.
pub const VALID: u64 = 1 << 0;
/// Levels 0-2: a table (set) or a block (clear); level 3: a page (set).
pub const TYPE: u64 = 1 << 1;
/// AttrIndx, the MAIR_EL1 attribute (Ember's entry.s: 0 device, 1 normal
/// write-back).
pub const ATTR_INDX: u64 = 7 << 2;
/// AttrIndx 1: normal write-back memory.
pub const ATTR_NORMAL: u64 = 1 << 2;
/// AP\[2\]: read-only.
pub const AP_RO: u64 = 1 << 7;
/// Output address (or next-level table address), bits 47:12.
pub const OA: u64 = 0x0000_ffff_ffff_f000;
/// The contiguous hint (never set by Ember; cleared when splitting).
pub const CONTIG: u64 = 1 << 52;
/// Privileged execute-never.
pub const PXN: u64 = 1 << 53;
/// Unprivileged execute-never.
pub const UXN: u64 = 1 << 54;
/// Software bits (58:55 of block and page descriptors are ignored by the
/// walker): an invalid descriptor that is a read-protected mapping …
pub const SW_RP: u64 = 1 << 55;
/// … and the page entry of a page that holds a translation table.
pub const SW_TABLE: u64 = 1 << 56;

/// Page attributes, as the UEFI memory attributes: `read_protect`
/// (EFI_MEMORY_RP, an invalid descriptor), `exec_protect` (EFI_MEMORY_XP,
/// PXN), `read_only` (EFI_MEMORY_RO, AP\[2\]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageAttrs {
    pub read_protect: bool,
    pub exec_protect: bool,
    pub read_only: bool,
}

impl PageAttrs {
    /// No attribute.
    pub const NONE: PageAttrs = PageAttrs {
        read_protect: false,
        exec_protect: false,
        read_only: false,
    };
}

/// The bytes one entry of a level-`level` table maps (level 0: 512 GiB,
/// 1: 1 GiB, 2: 2 MiB, 3: 4 KiB).
pub const fn level_size(level: usize) -> u64 {
    1 << (12 + 9 * (3 - level))
}

/// The index of `va`'s entry in a level-`level` table.
pub const fn index(va: u64, level: usize) -> usize {
    ((va / level_size(level)) % ENTRIES as u64) as usize
}

/// The end of the level-`level` entry's range that contains `va`.
pub const fn entry_end(va: u64, level: usize) -> u64 {
    (va & !(level_size(level) - 1)) + level_size(level)
}

/// What a descriptor is at a given level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Nothing mapped (or a reserved encoding).
    Invalid,
    /// The next level's table, at this address.
    Table(u64),
    /// A block or page mapping, valid or read-protected.
    Leaf,
}

/// Classify descriptor `d` of a level-`level` table.
pub fn kind(d: u64, level: usize) -> Kind {
    if d & VALID == 0 {
        return if level >= 1 && d & SW_RP != 0 {
            Kind::Leaf
        } else {
            Kind::Invalid
        };
    }
    match (level, d & TYPE != 0) {
        (0..=2, true) => Kind::Table(d & OA),
        (1 | 2, false) | (3, true) => Kind::Leaf,
        // Level 0 blocks do not exist with 4 KiB pages; level 3 type 0 is reserved.
        _ => Kind::Invalid,
    }
}

/// A table descriptor for the table page at `addr`.
pub const fn table_desc(addr: u64) -> u64 {
    (addr & OA) | TYPE | VALID
}

/// Normal (write-back) memory, as opposed to device memory.
pub const fn is_normal(leaf: u64) -> bool {
    leaf & ATTR_INDX == ATTR_NORMAL
}

/// The attributes a leaf descriptor gives.
pub const fn attrs_of(leaf: u64) -> PageAttrs {
    PageAttrs {
        read_protect: leaf & VALID == 0,
        exec_protect: leaf & PXN != 0,
        read_only: leaf & AP_RO != 0,
    }
}

/// `leaf` with `clear` cleared, then `set` set (so `set` wins).
pub fn with_attrs(leaf: u64, set: PageAttrs, clear: PageAttrs) -> u64 {
    let mut d = leaf;
    if clear.read_only {
        d &= !AP_RO;
    }
    if clear.exec_protect {
        d &= !PXN; // UXN stays: nothing runs at EL0
    }
    if clear.read_protect && d & VALID == 0 {
        d = (d | VALID) & !SW_RP;
    }
    if set.read_only {
        d |= AP_RO;
    }
    if set.exec_protect {
        d |= PXN | UXN;
    }
    if set.read_protect && d & VALID != 0 {
        d = (d & !VALID) | SW_RP;
    }
    d
}

/// Whether a table page mapped by `leaf` could no longer be written
/// (read-only or read-protected).
pub const fn blocks_tables(leaf: u64) -> bool {
    leaf & VALID == 0 || leaf & AP_RO != 0
}

/// Whether changing leaf `old` to `new` would stop the next table write:
/// `old` maps a translation table page ([`SW_TABLE`]) and `new` is
/// read-only or read-protected.
pub const fn protects_table(old: u64, new: u64) -> bool {
    old & SW_TABLE != 0 && blocks_tables(new)
}

/// Whether the page mapped by `leaf` may become a translation table page:
/// normal memory, valid, read-write, not a table page already.
pub const fn can_hold_table(leaf: u64) -> bool {
    is_normal(leaf) && leaf & VALID != 0 && leaf & (AP_RO | SW_TABLE) == 0
}

/// The level 3 descriptor `page` marked as mapping a translation table page
/// ([`SW_TABLE`], a bit the walker ignores), or None if it is no valid page
/// descriptor.
pub const fn mark_table_page(page: u64) -> Option<u64> {
    if page & VALID == 0 || page & TYPE == 0 {
        None
    } else {
        Some(page | SW_TABLE)
    }
}

/// Entry `j` of the level-`level + 1` table that maps what the level-`level`
/// block `block` maps: the same attributes (and validity), the `j`-th part
/// of its output range; a page descriptor at level 3. The contiguous hint
/// is cleared.
pub fn sub_entry(block: u64, level: usize, j: usize) -> u64 {
    let base = block & OA & !(level_size(level) - 1);
    let oa = base + j as u64 * level_size(level + 1);
    let ty = if level + 1 == 3 { TYPE } else { 0 };
    (block & !(OA | TYPE | CONTIG)) | oa | ty
}

/// Table pages not yet mapped by a marked page entry: a small set of at
/// most `N` page addresses, in no particular order.
#[derive(Clone, Debug)]
pub struct Pending<const N: usize> {
    pages: [u64; N],
    len: usize,
}

impl<const N: usize> Default for Pending<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Pending<N> {
    /// An empty set.
    pub const fn new() -> Self {
        Pending {
            pages: [0; N],
            len: 0,
        }
    }

    /// How many pages are pending.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether no page is pending.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Add `page`; None if the set is full.
    pub fn push(&mut self, page: u64) -> Option<()> {
        *self.pages.get_mut(self.len)? = page;
        self.len += 1;
        Some(())
    }

    /// A pending page inside `r`, if any.
    pub fn first_in(&self, r: &core::ops::Range<u64>) -> Option<u64> {
        self.pages[..self.len]
            .iter()
            .copied()
            .find(|p| r.contains(p))
    }

    /// Remove `page` (nothing if it is not pending).
    pub fn remove(&mut self, page: u64) {
        if let Some(k) = self.pages[..self.len].iter().position(|&p| p == page) {
            self.pages[k] = self.pages[self.len - 1];
            self.len -= 1;
        }
    }
}

/// What CTR_EL0 says about cache maintenance for freshly written code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheGeometry {
    /// The smallest data cache line, in bytes (DminLine, bits 19:16, log2
    /// of words).
    pub dline: u64,
    /// The smallest instruction cache line, in bytes (IminLine, bits 3:0).
    pub iline: u64,
    /// Data must be cleaned to the point of unification (IDC, bit 28, is 0).
    pub clean_dcache: bool,
    /// The instruction cache must be invalidated (DIC, bit 29, is 0).
    pub invalidate_icache: bool,
}

/// Decode CTR_EL0.
pub const fn cache_geometry(ctr: u64) -> CacheGeometry {
    CacheGeometry {
        dline: 4u64 << ((ctr >> 16) & 0xf),
        iline: 4u64 << (ctr & 0xf),
        clean_dcache: ctr & (1 << 28) == 0,
        invalidate_icache: ctr & (1 << 29) == 0,
    }
}

/// The addresses of the `line`-byte cache lines (`line` a power of two)
/// that cover [start, start + len), the end saturating at the top of the
/// address space.
pub fn lines(start: u64, len: u64, line: u64) -> impl Iterator<Item = u64> {
    let end = start.saturating_add(len);
    let first = start & !(line - 1);
    core::iter::successors((len != 0 && first < end).then_some(first), move |&a| {
        a.checked_add(line).filter(|&n| n < end)
    })
}

/// SCTLR_EL1.WXN: every writable page is execute-never.
pub const SCTLR_WXN: u64 = 1 << 19;

/// SCTLR_EL1 value `sctlr` with WXN on or off, the rest unchanged.
pub const fn with_wxn(sctlr: u64, on: bool) -> u64 {
    if on {
        sctlr | SCTLR_WXN
    } else {
        sctlr & !SCTLR_WXN
    }
}

#[cfg(test)]
mod tests;
