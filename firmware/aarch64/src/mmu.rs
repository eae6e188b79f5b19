//! Page attributes at run time: the translation tables in RAM, for the UEFI
//! layer (loaded images must run, GRUB and the Linux EFI stub run code from
//! `EfiLoaderCode` allocations, and the MemoryAttribute protocol changes
//! single 4 KiB pages).
//!
//! # The tables
//!
//! The entry runs on the tables baked into the flash image (`entry.s`): a
//! level 0 table, a level 1 table of 1 GiB blocks for [0, 512 GiB) whose
//! first entry leads to a level 2 table of 2 MiB blocks for flash and
//! devices, and a level 1 table of device blocks for [512 GiB, 1 TiB).
//! They are read-only. [`make_dynamic`] copies the two tables on the path to
//! RAM — the level 0 table and the first level 1 table — into pages from its
//! caller and switches TTBR0_EL1 to the copy; the flash and device tables
//! below them stay shared, since only RAM ([`RAM`]: normal-memory blocks,
//! AttrIndx 1) is ever changed. [`update`] then splits 1 GiB and 2 MiB
//! blocks into tables as far as a change needs, down to 4 KiB pages.
//!
//! # Attributes
//!
//! - **RO** is AP\[2\] (bit 7): read-only at EL1 (AP\[1\] stays 0: no EL0
//!   access).
//! - **XP** is PXN (bit 53). Setting it also sets UXN (bit 54); clearing
//!   it leaves UXN set — nothing runs at EL0.
//! - **RP** cannot be expressed with AP at EL1 (EL1 can always read what
//!   it may access), so a read-protected entry is *invalid*: bit 0 clear.
//!   The walker ignores every other bit of an invalid descriptor, so it keeps
//!   its output address and attributes — identity-mapped, the address is
//!   that of the page anyway — plus the software bit
//!   [`SW_RP`](ember_vmsa::SW_RP) (bit 55), which tells a read-protected
//!   page from an unmapped one. Clearing RP restores the descriptor as it
//!   was.
//!
//! The descriptor arithmetic — levels, classification, block splits, the
//! attribute encoding above — is `ember-vmsa`'s, tested on the host.
//!
//! Under SCTLR_EL1.WXN (on from the entry) every writable page is
//! execute-never whatever its descriptor says; the UEFI layer turns it off
//! with [`set_wxn`] and relies on the descriptors: RAM is XN from the boot
//! tables on, and only what images and code allocations need is made
//! executable. [`attributes`] reports the descriptors, not WXN's effect.
//!
//! # Changing live entries
//!
//! Splitting a live block goes through break-before-make
//! ([`Table::split_live`]): write an invalid entry, invalidate the TLBs,
//! write the table. The architecture requires it when a block becomes a
//! table (without FEAT_BBM, which the Cortex-A57 lacks, the TLBs may
//! otherwise hold both sizes and raise a TLB conflict abort). While the
//! entry is broken, everything the block mapped is unmapped: the sequence
//! is one `asm!` block in flash with its operands in registers, so neither
//! code nor stack is touched — except the store that makes the new entry,
//! which goes to the table holding it. That table must not lie inside the
//! block, so the module keeps an invariant: **every table page is mapped by
//! a level 3 (page) entry**, marked with the software bit
//! [`SW_TABLE`](ember_vmsa::SW_TABLE). A block then never contains a table
//! page. A new table that lies inside the very block it splits is made
//! page-mapped in its own subtree before that subtree goes live
//! ([`Mapper::split`]); other new table pages are made page-mapped right
//! after ([`Mapper::settle`]).
//!
//! Attribute changes ([`Table::change_live`]) keep the output address,
//! memory type and size, so the architecture needs no break for them: the
//! new entry is written, then the old translation invalidated. That also
//! lets a table page's own entry change (a level 3 table usually maps its
//! own page). What would stop the next table write — making a table page
//! read-only or read-protected — is refused by [`update`]; making it
//! executable or not is allowed like for any page.
//!
//! The TTBR0 switch of [`make_dynamic`] changes block sizes (the copy maps
//! its own pages with 4 KiB entries), so it too is a break: it happens with
//! the MMU off for a few register-only instructions (code runs from flash,
//! identity-mapped either way; no data access happens while it is off).

use core::arch::asm;
use core::fmt::Write;
use core::ops::Range;

/// Page attributes, as the UEFI memory attributes RP / XP / RO: the UEFI
/// layer's own type (`read_protect`: EFI_MEMORY_RP, an invalid descriptor;
/// `exec_protect`: EFI_MEMORY_XP, PXN; `read_only`: EFI_MEMORY_RO, AP\[2\]),
/// so its MemoryAttribute protocol passes them straight through.
pub use ember_uefi::machine::Attrs;

use ember_vmsa::{
    attrs_of, cache_geometry, can_hold_table, entry_end, index, is_normal, kind, level_size, lines,
    mark_table_page, protects_table, sub_entry, table_desc, with_wxn, Kind, PageAttrs, ENTRIES, OA,
    PAGE, VALID,
};

/// The end of the TTBR0 range (TCR_EL1.T0SZ 24: 40-bit addresses).
const VA_END: u64 = 1 << 40;
/// The RAM the boot tables map as normal memory: 1 GiB up to virt's limit
/// of 256 GiB (level 1 entries 1 to 255). Only this may change.
pub const RAM: Range<u64> = 0x4000_0000..0x40_0000_0000;

// ---------------------------------------------------------------------------
// Descriptor arithmetic: ember-vmsa (host-tested); here only the conversion
// between the UEFI layer's attributes and the crate's.

const fn page_attrs(a: Attrs) -> PageAttrs {
    PageAttrs {
        read_protect: a.read_protect,
        exec_protect: a.exec_protect,
        read_only: a.read_only,
    }
}

const fn uefi_attrs(a: PageAttrs) -> Attrs {
    Attrs {
        read_protect: a.read_protect,
        exec_protect: a.exec_protect,
        read_only: a.read_only,
    }
}

/// `leaf` with `clear` cleared, then `set` set (see the module docs).
fn with_attrs(leaf: u64, set: Attrs, clear: Attrs) -> u64 {
    ember_vmsa::with_attrs(leaf, page_attrs(set), page_attrs(clear))
}

// ---------------------------------------------------------------------------
// Tables in memory.

/// A translation table page, by its address (identity-mapped: physical ==
/// virtual). Invariant (from [`Table::at`]): the address is a 4 KiB-aligned,
/// mapped and readable page holding a translation table or being made one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Table(u64);

impl Table {
    /// # Safety
    /// `addr` must be a 4 KiB-aligned page, identity-mapped and readable,
    /// that holds a translation table (or is being filled as one and used
    /// for nothing else), for as long as the `Table` is used.
    unsafe fn at(addr: u64) -> Table {
        Table(addr)
    }

    fn addr(self) -> u64 {
        self.0
    }

    fn slot(self, i: usize) -> *mut u64 {
        (self.0 as *mut u64).wrapping_add(i % ENTRIES)
    }

    fn get(self, i: usize) -> u64 {
        // SAFETY: a readable table page (the type's invariant); the index
        // stays inside it. Volatile: the walker reads it too.
        unsafe { core::ptr::read_volatile(self.slot(i)) }
    }

    /// Write entry `i` with no TLB maintenance.
    ///
    /// # Safety
    /// The page must be writable, and either the table must not be
    /// reachable by the walker yet (a table being built) or the write must
    /// change only bits the walker ignores (the software bits).
    unsafe fn set(self, i: usize, v: u64) {
        // SAFETY: a table page (the type's invariant) that the caller
        // vouches is writable and free to change.
        unsafe { core::ptr::write_volatile(self.slot(i), v) };
    }

    /// Replace the live block entry `i` with `table`, a table descriptor
    /// for a table that maps exactly what the block did, by
    /// break-before-make: an invalid entry, every TLB entry invalidated
    /// (implementations may hold smaller pieces of a block), the table.
    ///
    /// # Safety
    /// The table must be live and writable, entry `i` a block entry, and
    /// this page must not lie in the block (the module's invariant): while
    /// the entry is broken the block is unmapped, and the store that makes
    /// the new entry would fault. The new table must be complete.
    unsafe fn split_live(self, i: usize, table: u64) {
        // SAFETY: break, invalidate, make: registers only in between, code
        // in flash, and the one store after the break goes to this page,
        // which stays mapped (the caller's guarantee). `dsb ishst` first:
        // the walker sees the new table's entries.
        unsafe {
            asm!(
                "dsb ishst",
                "str xzr, [{slot}]",
                "dsb ishst",
                "tlbi vmalle1is",
                "dsb ish",
                "str {table}, [{slot}]",
                "dsb ishst",
                "isb",
                table = in(reg) table,
                slot = in(reg) self.slot(i),
                options(nostack, preserves_flags)
            )
        };
    }

    /// Change the live level-`level` leaf entry `i` (a block or page that
    /// maps `va`) to `new`, which differs only in permissions (AP\[2\],
    /// PXN, UXN), validity and software bits: write it, then invalidate
    /// the old translation. No break is needed for that (Arm ARM, "Using
    /// break-before-make when updating translation table entries": it is
    /// for changes of output address, memory type, shareability or block
    /// size), and none is possible for a table page's own entry.
    ///
    /// # Safety
    /// The table must be live and writable and `new` a permission change
    /// of entry `i` as above, one the caller may make (see [`update`]).
    unsafe fn change_live(self, i: usize, new: u64, va: u64, level: usize) {
        let slot = self.slot(i);
        if self.get(i) & VALID == 0 {
            // An invalid entry (read-protected) is in no TLB: make the new
            // one visible to the walker.
            // SAFETY: a store to the entry the caller designated; barriers.
            unsafe {
                asm!(
                    "dsb ishst",
                    "str {new}, [{slot}]",
                    "dsb ishst",
                    "isb",
                    new = in(reg) new,
                    slot = in(reg) slot,
                    options(nostack, preserves_flags)
                )
            };
        } else if level == 3 {
            // SAFETY: as above, then this page's translations invalidated.
            unsafe {
                asm!(
                    "dsb ishst",
                    "str {new}, [{slot}]",
                    "dsb ishst",
                    "tlbi vaae1is, {page}",
                    "dsb ish",
                    "isb",
                    new = in(reg) new,
                    slot = in(reg) slot,
                    page = in(reg) va >> 12,
                    options(nostack, preserves_flags)
                )
            };
        } else {
            // SAFETY: as above; a block's pieces may be anywhere in the
            // TLBs, so all of them are invalidated.
            unsafe {
                asm!(
                    "dsb ishst",
                    "str {new}, [{slot}]",
                    "dsb ishst",
                    "tlbi vmalle1is",
                    "dsb ish",
                    "isb",
                    new = in(reg) new,
                    slot = in(reg) slot,
                    options(nostack, preserves_flags)
                )
            };
        }
    }
}

/// The live level 0 table (TTBR0_EL1).
fn live_root() -> Table {
    let ttbr: u64;
    // SAFETY: reading a system register.
    unsafe { asm!("mrs {}, ttbr0_el1", out(reg) ttbr, options(nomem, nostack, preserves_flags)) };
    // SAFETY: TTBR0_EL1 holds the live level 0 table (entry.s's in flash or
    // make_dynamic's in RAM), identity-mapped and readable.
    unsafe { Table::at(ttbr & OA) }
}

/// The leaf entry (block, page or read-protected) that maps `va` from
/// `root`: its table, index, level and value; None if nothing maps it.
fn leaf(root: Table, va: u64) -> Option<(Table, usize, usize, u64)> {
    let mut t = root;
    for level in 0..=3 {
        let i = index(va, level);
        let d = t.get(i);
        match kind(d, level) {
            // SAFETY: a table descriptor of a table reachable from the root
            // leads to a table page (flash or one of make_dynamic's).
            Kind::Table(next) => t = unsafe { Table::at(next) },
            Kind::Leaf => return Some((t, i, level, d)),
            Kind::Invalid => return None,
        }
    }
    None
}

/// New table pages not yet mapped by a marked page entry (see the module
/// docs). Small: a change splits at most two blocks per level.
type Pending = ember_vmsa::Pending<32>;

/// One table change: the live root, the page source and the table pages
/// still to be settled.
struct Mapper<'a> {
    alloc: &'a mut dyn FnMut() -> Option<u64>,
    live: Table,
    pending: Pending,
}

impl Mapper<'_> {
    fn new(alloc: &mut dyn FnMut() -> Option<u64>, live: Table) -> Mapper<'_> {
        Mapper {
            alloc,
            live,
            pending: Pending::new(),
        }
    }

    /// A page for a new table: it must be RAM mapped read-write as normal
    /// memory (the caller's page source is checked, not trusted) and not
    /// already a table. It goes on the pending list.
    fn take_page(&mut self) -> Option<u64> {
        let p = (self.alloc)()?;
        if !p.is_multiple_of(PAGE) || !RAM.contains(&p) {
            return None;
        }
        let (_, _, _, d) = leaf(self.live, p)?;
        if !can_hold_table(d) {
            return None;
        }
        self.pending.push(p)?;
        Some(p)
    }

    /// Split the level-`level` block entry `i` of `t`, which maps
    /// [`base`, +level_size), into a new level-`level + 1` table mapping
    /// the same; returns it. `live`: `t` is reachable by the walker (then
    /// the new subtree is first made to map its own table pages with page
    /// entries, and goes in by break-before-make); otherwise `t` belongs to
    /// a subtree still being built and is simply written.
    fn split(&mut self, t: Table, i: usize, level: usize, base: u64, live: bool) -> Option<Table> {
        let d = t.get(i);
        let page = self.take_page()?;
        // SAFETY: a fresh page from take_page: RAM, mapped read-write,
        // used for nothing else, not reachable by the walker.
        let n = unsafe { Table::at(page) };
        for j in 0..ENTRIES {
            // SAFETY: the new table is not reachable by the walker yet.
            unsafe { n.set(j, sub_entry(d, level, j)) };
        }
        if live {
            // New tables inside this block must be page-mapped before the
            // block goes: afterwards their own entries could only be split
            // by breaking the mapping of the table being written.
            self.settle(n, level + 1, base..base + level_size(level), false)?;
            // SAFETY: `t` is live and writable (a table page Ember made),
            // entry `i` a block; `t` itself is page-mapped (the invariant),
            // so not inside the block; the new table is complete and maps
            // exactly what the block did.
            unsafe { t.split_live(i, table_desc(page)) };
        } else {
            // SAFETY: `t` is part of a subtree the walker cannot reach yet.
            unsafe { t.set(i, table_desc(page)) };
        }
        Some(n)
    }

    /// The level 3 entry for `va` below `t` (a level-`level` table),
    /// splitting blocks on the way (`live` as for [`Mapper::split`]).
    fn page_entry(
        &mut self,
        mut t: Table,
        mut level: usize,
        va: u64,
        live: bool,
    ) -> Option<(Table, usize)> {
        while level < 3 {
            let i = index(va, level);
            t = match kind(t.get(i), level) {
                // SAFETY: a table descriptor leads to a table page.
                Kind::Table(next) => unsafe { Table::at(next) },
                Kind::Leaf => self.split(t, i, level, va & !(level_size(level) - 1), live)?,
                Kind::Invalid => return None,
            };
            level += 1;
        }
        Some((t, index(va, 3)))
    }

    /// Map every pending table page inside `region` — what `root`, a
    /// level-`level` table, maps — with a level 3 entry marked
    /// [`SW_TABLE`](ember_vmsa::SW_TABLE).
    fn settle(&mut self, root: Table, level: usize, region: Range<u64>, live: bool) -> Option<()> {
        while let Some(q) = self.pending.first_in(&region) {
            let (t, i) = self.page_entry(root, level, q, live)?;
            let marked = mark_table_page(t.get(i))?;
            // SAFETY: sets a software bit, which the walker ignores (no
            // break-before-make, no TLB maintenance); level 3 tables are
            // pages Ember made, writable.
            unsafe { t.set(i, marked) };
            self.pending.remove(q);
        }
        Some(())
    }

    /// make_dynamic's copy: a new level 0 table and level 1 table for
    /// [0, 512 GiB), their own pages page-mapped; returns the level 0 table.
    fn copy_boot_tables(&mut self) -> Option<Table> {
        let boot = self.live;
        let Kind::Table(boot_l1) = kind(boot.get(0), 0) else {
            return None;
        };
        // SAFETY: the boot level 0 table's first entry leads to a table.
        let boot_l1 = unsafe { Table::at(boot_l1) };
        let (l0, l1) = (self.take_page()?, self.take_page()?);
        // SAFETY: fresh pages from take_page, not reachable by the walker.
        let (l0, l1) = unsafe { (Table::at(l0), Table::at(l1)) };
        for i in 0..ENTRIES {
            // SAFETY: as above: tables being built.
            unsafe {
                l0.set(i, boot.get(i));
                l1.set(i, boot_l1.get(i));
            }
        }
        // SAFETY: as above.
        unsafe { l0.set(0, table_desc(l1.addr())) };
        self.settle(l0, 0, 0..VA_END, false)?;
        Some(l0)
    }

    /// update's work once the range is known to be changeable.
    fn apply(&mut self, start: u64, end: u64, set: Attrs, clear: Attrs) -> Option<()> {
        let mut va = start;
        while va < end {
            let (t, i, level, d) = leaf(self.live, va)?;
            let new = with_attrs(d, set, clear);
            if protects_table(d, new) {
                // A table page allocated during this very change.
                return None;
            }
            let size = level_size(level);
            if new == d {
                va = entry_end(va, level);
            } else if va.is_multiple_of(size) && va + size <= end {
                // SAFETY: a live leaf in a table Ember made in RAM (RAM is
                // only mapped by make_dynamic's tables); the new value
                // differs only in the permissions the caller asked for
                // (update's contract), and a table page stays writable.
                unsafe { t.change_live(i, new, va, level) };
                va += size;
            } else {
                self.split(t, i, level, va & !(size - 1), true)?;
                self.settle(self.live, 0, 0..VA_END, true)?;
            }
        }
        Some(())
    }
}

// ---------------------------------------------------------------------------
// The interface.

/// Copy the boot-time tables into RAM pages from `alloc_page` (each call
/// returns one 4 KiB physical page, identity-mapped, zeroed or not — every
/// entry is written — or None) and switch TTBR0_EL1 to the copy: the same
/// mappings, except that the copy's own pages are mapped with 4 KiB entries.
/// Afterwards [`update`] can change attributes. Returns true at once if the
/// tables are already in RAM; false if a page could not be had or is not
/// plain read-write RAM (the boot tables stay; pages taken are not
/// returned). Takes about four pages. WXN is left as it is ([`set_wxn`]).
///
/// # Safety
/// The pages must be RAM that nothing else uses, now or later: they hold
/// the live translation tables from now on.
pub unsafe fn make_dynamic(alloc_page: &mut dyn FnMut() -> Option<u64>) -> bool {
    let boot = live_root();
    if RAM.contains(&boot.addr()) {
        return true;
    }
    let mut m = Mapper::new(alloc_page, boot);
    let Some(root) = m.copy_boot_tables() else {
        return false;
    };
    // SAFETY: the new tables map every address exactly as the boot tables
    // do (the same output addresses and attributes), so nothing changes for
    // any code; only some block sizes differ, so the switch is a
    // break-before-make at the root: with the MMU off for register-only
    // instructions (code in flash, identity-mapped either way; no data
    // access until the MMU is back on, so no cache coherency question), the
    // new TTBR0 and a full TLB invalidate. `dsb ish` first: the walker sees
    // the table writes.
    unsafe {
        asm!(
            "dsb ish",
            "mrs {s}, sctlr_el1",
            "bic {t}, {s}, #1",
            "msr sctlr_el1, {t}",
            "isb",
            "msr ttbr0_el1, {root}",
            "isb",
            "tlbi vmalle1is",
            "dsb ish",
            "msr sctlr_el1, {s}",
            "isb",
            s = out(reg) _,
            t = out(reg) _,
            root = in(reg) root.addr(),
            options(nostack, preserves_flags)
        )
    };
    true
}

/// Set `set` and clear `clear` (`clear` first, so `set` wins) on every page
/// of [start, end) (both 4 KiB aligned), splitting 1 GiB and 2 MiB blocks
/// into tables as needed (pages from `alloc_page`, as for [`make_dynamic`])
/// by break-before-make, and with the TLB maintenance every change needs
/// (see the module docs). Entries that already have the attributes are left
/// alone (no split); a range covering a whole block changes the block.
///
/// Returns false, changing nothing, if the range is not in [`RAM`], some
/// page is unmapped or mapped as device memory, the change would make a
/// page holding a translation table read-only or read-protected, or the
/// tables are still the boot ones ([`make_dynamic`] first). Returns false,
/// changing nothing further, if a page cannot be had or is one of the range
/// about to become read-only or read-protected (what was changed before
/// stays changed, and is consistent).
///
/// # Safety
/// Making memory read-only, read-protected or executable changes what Rust
/// code may do with it: the caller must own [start, end) (no Ember stack,
/// data or heap in use, no references into it that the change breaks) and
/// the pages from `alloc_page` as for [`make_dynamic`]. Single CPU, no
/// concurrent callers.
pub unsafe fn update(
    start: u64,
    end: u64,
    set: Attrs,
    clear: Attrs,
    alloc_page: &mut dyn FnMut() -> Option<u64>,
) -> bool {
    if !start.is_multiple_of(PAGE) || !end.is_multiple_of(PAGE) || start > end {
        return false;
    }
    if start < end && (start < RAM.start || end > RAM.end) {
        return false;
    }
    let root = live_root();
    if !RAM.contains(&root.addr()) {
        return false;
    }
    let mut va = start;
    while va < end {
        match leaf(root, va) {
            Some((_, _, level, d))
                if is_normal(d) && !protects_table(d, with_attrs(d, set, clear)) =>
            {
                va = entry_end(va, level);
            }
            _ => return false,
        }
    }
    Mapper::new(alloc_page, root)
        .apply(start, end, set, clear)
        .is_some()
}

/// The attributes shared by all pages of [start, end) (4 KiB aligned, not
/// empty), as the descriptors say (see the module docs on WXN), or None if
/// they differ or a page is unmapped. Works on the boot tables too.
///
/// # Safety
/// No [`update`] may run meanwhile (single CPU: always true unless called
/// from an exception handler).
pub unsafe fn attributes(start: u64, end: u64) -> Option<Attrs> {
    if !start.is_multiple_of(PAGE) || !end.is_multiple_of(PAGE) || start >= end || end > VA_END {
        return None;
    }
    let root = live_root();
    let mut first = None;
    let mut va = start;
    while va < end {
        let (_, _, level, d) = leaf(root, va)?;
        let a = uefi_attrs(attrs_of(d));
        if *first.get_or_insert(a) != a {
            return None;
        }
        va = entry_end(va, level);
    }
    first
}

/// Make freshly written code in [start, start + len) visible to instruction
/// fetch: DC CVAU over the range by CTR_EL0's data line size, DSB ISH, IC
/// IVAU by the instruction line size, DSB ISH, ISB (each maintenance step
/// skipped when CTR_EL0.IDC / DIC say it is not needed). The range must be
/// mapped (else the exception report ends Ember).
pub fn sync_icache(start: u64, len: u64) {
    if len == 0 {
        return;
    }
    let ctr: u64;
    // SAFETY: reading a system register.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
    let g = cache_geometry(ctr);
    if g.clean_dcache {
        for a in lines(start, len, g.dline) {
            // SAFETY: cleaning a data cache line to the point of
            // unification changes no memory contents.
            unsafe { asm!("dc cvau, {}", in(reg) a, options(nostack, preserves_flags)) };
        }
    }
    // SAFETY: a barrier.
    unsafe { asm!("dsb ish", options(nostack, preserves_flags)) };
    if g.invalidate_icache {
        for a in lines(start, len, g.iline) {
            // SAFETY: invalidating instruction cache lines changes no
            // memory contents.
            unsafe { asm!("ic ivau, {}", in(reg) a, options(nostack, preserves_flags)) };
        }
        // SAFETY: a barrier.
        unsafe { asm!("dsb ish", options(nostack, preserves_flags)) };
    }
    // SAFETY: a barrier.
    unsafe { asm!("isb", options(nostack, preserves_flags)) };
}

/// Turn SCTLR_EL1.WXN on (every writable page execute-never, as from the
/// entry) or off (UEFI: a page is executable unless its descriptor says XN;
/// RAM is XN unless [`update`] cleared it). WXN may be cached in TLBs, so
/// they are invalidated.
pub fn set_wxn(on: bool) {
    let s: u64;
    // SAFETY: reading a system register.
    unsafe { asm!("mrs {}, sctlr_el1", out(reg) s, options(nomem, nostack, preserves_flags)) };
    let new = with_wxn(s, on);
    if new == s {
        return;
    }
    // SAFETY: only WXN changes. On, code in writable memory would stop
    // being executable — Ember's runs from flash; an image running from a
    // writable page would fault (an exception report, not undefined
    // behaviour). Off, the descriptors keep RAM XN unless made executable.
    unsafe {
        asm!(
            "msr sctlr_el1, {}",
            "isb",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            in(reg) new,
            options(nostack, preserves_flags)
        )
    };
}

// ---------------------------------------------------------------------------
// ember.selftest=mmu

/// `ember.selftest=mmu`: tables to RAM, attribute changes at every level
/// (a 1 GiB and a 2 MiB block split live, one of them into a table that lies
/// inside that very block), RP, refusals; then a `ret` written into a heap
/// page, made read-only and executable (WXN off) and run — "selftest: mmu
/// ok" — and a write to that page, which must end in a permission fault.
pub fn selftest(out: &mut impl Write) {
    use alloc::alloc::{alloc_zeroed, Layout};
    use core::cell::Cell;

    let heap = |size: u64| -> Option<u64> {
        let layout = Layout::from_size_align(size as usize, size as usize).ok()?;
        // SAFETY: a non-zero size; the memory is never freed (it ends up
        // read-only or as translation tables).
        let p = unsafe { alloc_zeroed(layout) };
        (!p.is_null()).then_some(p as u64)
    };
    let taken = Cell::new(0u32);
    let mut from_heap = || {
        taken.set(taken.get() + 1);
        heap(PAGE)
    };
    let mut ok = true;
    let mut check = |out: &mut dyn Write, what: &str, good: bool| {
        let _ = writeln!(
            out,
            "selftest: mmu: {what}: {}",
            if good { "ok" } else { "FAILED" }
        );
        ok &= good;
    };
    let none = Attrs::default();
    let ro = Attrs {
        read_only: true,
        ..none
    };
    let xp = Attrs {
        exec_protect: true,
        ..none
    };
    let rp = Attrs {
        read_protect: true,
        ..none
    };
    let ram = Attrs {
        exec_protect: true,
        ..none
    };

    // SAFETY: the pages come from the heap, leaked to the tables.
    let made = unsafe { make_dynamic(&mut from_heap) };
    let root = live_root().addr();
    let _ = writeln!(
        out,
        "selftest: mmu: tables in RAM at {root:#x} ({} pages)",
        taken.get()
    );
    check(out, "make_dynamic", made && RAM.contains(&root));
    // SAFETY: single CPU, no update running (here and below).
    let a = unsafe { attributes(root, root + PAGE) };
    check(out, "its root page is read-write RAM", a == Some(ram));
    // SAFETY: asks to change the root table's own page: must be refused.
    let r = unsafe { update(root, root + PAGE, ro, none, &mut from_heap) };
    check(out, "a table page made read-only: refused", !r);
    // The level 3 table that maps the root's page maps its own page too:
    // making that executable and back is a change to the entry in the page
    // itself, which must go without a break.
    let l3 =
        leaf(live_root(), root).map_or(0, |(t, _, level, _)| if level == 3 { t.addr() } else { 0 });
    // SAFETY: only PXN of a table page changes; it stays read-write.
    let r1 = unsafe { update(l3, l3 + PAGE, none, xp, &mut from_heap) };
    // SAFETY: read-only look-up.
    let a1 = unsafe { attributes(l3, l3 + PAGE) };
    // SAFETY: as above.
    let r2 = unsafe { update(l3, l3 + PAGE, xp, none, &mut from_heap) };
    // SAFETY: read-only look-up.
    let a2 = unsafe { attributes(l3, l3 + PAGE) };
    let _ = writeln!(out, "selftest: mmu: level 3 table at {l3:#x}");
    check(
        out,
        "a table page's own entry made executable and back",
        RAM.contains(&l3) && r1 && a1 == Some(none) && r2 && a2 == Some(ram),
    );
    // SAFETY: the UART and flash: must be refused.
    let r = unsafe { update(0x900_0000, 0x900_1000, xp, none, &mut from_heap) }
        // SAFETY: as above.
        || unsafe { update(0, PAGE, none, xp, &mut from_heap) };
    check(out, "device memory and flash refused", !r);
    // SAFETY: read-only look-ups.
    let (flash, uart) = unsafe { (attributes(0, PAGE), attributes(0x900_0000, 0x900_1000)) };
    check(
        out,
        "flash RO+X, UART XN",
        flash == Some(ro) && uart == Some(xp),
    );

    // A page of unbacked RAM (nothing reads it): splits a 1 GiB block live.
    let far = 8u64 << 30;
    // SAFETY: no memory there is used: virt's RAM mapping goes to 256 GiB
    // whatever the VM has; only the descriptors change.
    let r = unsafe { update(far + PAGE, far + 2 * PAGE, ro, none, &mut from_heap) };
    // SAFETY: read-only look-ups.
    let (one, next, both, gib) = unsafe {
        (
            attributes(far + PAGE, far + 2 * PAGE),
            attributes(far + 2 * PAGE, far + 3 * PAGE),
            attributes(far, far + 3 * PAGE),
            attributes(far + (1 << 21), far + (1 << 30)),
        )
    };
    check(
        out,
        "one page RO inside a 1 GiB block",
        r && one
            == Some(Attrs {
                read_only: true,
                ..ram
            })
            && next == Some(ram)
            && both.is_none()
            && gib == Some(ram),
    );
    // A whole 1 GiB block: no split, one entry.
    let before = taken.get();
    // SAFETY: as above, unbacked.
    let r = unsafe { update(far + (1 << 30), far + (2 << 30), none, xp, &mut from_heap) };
    // SAFETY: read-only look-up.
    let a = unsafe { attributes(far + (1 << 30), far + (2 << 30)) };
    check(
        out,
        "a whole 1 GiB block made executable, no pages taken",
        r && a == Some(none) && taken.get() == before,
    );

    // A 1 GiB block of real RAM split live, its tables taken from the top
    // of that same GiB: the new level 2 table lies in a 2 MiB block it
    // maps itself, which must be split before it goes live. Needs RAM at
    // [2 GiB, 3 GiB), which nothing uses during a self-test.
    // SAFETY: QEMU's device tree, at the start of RAM for -bios boots (as
    // rust_main reads it); `from_ptr` checks it.
    let ram_end = unsafe { fdt::Fdt::from_ptr(0x4000_0000 as *const u8) }
        .ok()
        .and_then(|f| {
            let r = f.memory().regions().next()?;
            Some(r.starting_address as u64 + r.size? as u64)
        })
        .unwrap_or(0);
    if ram_end >= 3 << 30 {
        let top = Cell::new(3u64 << 30);
        let mut from_top = || {
            top.set(top.get() - PAGE);
            Some(top.get())
        };
        let g = 2u64 << 30;
        let l2 = (3u64 << 30) - PAGE;
        let next_to_it = (3u64 << 30) - (1 << 20);
        // SAFETY: RAM nothing uses (Ember's own is in the first GiB, and no
        // kernel is loaded before a self-test); only descriptors change.
        let r = unsafe { update(g, g + PAGE, ro, none, &mut from_top) };
        let used = ((3u64 << 30) - top.get()) / PAGE;
        // SAFETY: the level 2 table's page: must be refused.
        let refused = !unsafe { update(l2, l2 + PAGE, ro, none, &mut from_top) };
        // SAFETY: as above: a page next to the tables, RO and back.
        let r2 = unsafe { update(next_to_it, next_to_it + PAGE, ro, none, &mut from_top) }
            // SAFETY: as above.
            && unsafe { update(next_to_it, next_to_it + PAGE, none, ro, &mut from_top) };
        // SAFETY: read-only look-ups.
        let (a, b, c) = unsafe {
            (
                attributes(g, g + PAGE),
                attributes(g + PAGE, l2),
                attributes(l2, 3 << 30),
            )
        };
        let _ = writeln!(
            out,
            "selftest: mmu: split [2 GiB, 3 GiB) with {used} pages from its top"
        );
        check(
            out,
            "a 1 GiB block split live into tables inside it",
            r && refused
                && r2
                && a == Some(Attrs {
                    read_only: true,
                    ..ram
                })
                && b == Some(ram)
                && c == Some(ram),
        );
    } else {
        let _ = writeln!(
            out,
            "selftest: mmu: less than 3 GiB of RAM: no live 1 GiB split of real RAM"
        );
    }

    // RP on a heap page: invalid entry, then back, contents intact.
    let Some(p) = heap(PAGE) else {
        let _ = writeln!(out, "selftest: mmu: out of heap");
        return;
    };
    // SAFETY: the page was just allocated and is ours.
    unsafe { core::ptr::write_volatile(p as *mut u64, 0x5eed) };
    // SAFETY: our page.
    let r1 = unsafe { update(p, p + PAGE, rp, none, &mut from_heap) };
    // SAFETY: read-only look-up.
    let a1 = unsafe { attributes(p, p + PAGE) };
    // SAFETY: our page.
    let r2 = unsafe { update(p, p + PAGE, none, rp, &mut from_heap) };
    // SAFETY: readable again.
    let v = unsafe { core::ptr::read_volatile(p as *const u64) };
    check(
        out,
        "RP on and off",
        r1 && r2
            && a1
                == Some(Attrs {
                    read_protect: true,
                    ..ram
                })
            && v == 0x5eed,
    );

    // The code page: the first page of a 2 MiB block of heap, whose split
    // takes its table from the end of that same block (the hard case of
    // break-before-make: the new table must be page-mapped in its own
    // subtree before it goes live).
    let Some(chunk) = heap(2 << 20) else {
        let _ = writeln!(out, "selftest: mmu: out of heap");
        return;
    };
    let code = chunk;
    let inner = Cell::new(chunk + (2 << 20));
    let mut from_chunk = || {
        inner.set(inner.get() - PAGE);
        Some(inner.get())
    };
    // SAFETY: our page, still writable; `ret`.
    unsafe { core::ptr::write_volatile(code as *mut u32, 0xd65f_03c0) };
    set_wxn(false);
    // SAFETY: our page: read-only and executable from now on, never freed.
    let r = unsafe { update(code, code + PAGE, ro, xp, &mut from_chunk) };
    let table = inner.get();
    // SAFETY: read-only look-ups.
    let (a, rest, t) = unsafe {
        (
            attributes(code, code + PAGE),
            attributes(code + PAGE, table),
            attributes(table, table + PAGE),
        )
    };
    // SAFETY: the new table's page: must be refused.
    let refused = !unsafe { update(table, table + PAGE, rp, none, &mut from_heap) };
    check(
        out,
        "code page RO+X, its 2 MiB block split into a table inside it",
        r && a == Some(ro)
            && rest == Some(ram)
            && t == Some(ram)
            && refused
            && table == chunk + (2 << 20) - PAGE,
    );
    sync_icache(code, 4);
    let _ = writeln!(out, "selftest: mmu: running the `ret` at {code:#x}");
    // SAFETY: a `ret` in a page now read-only and executable, its caches
    // synchronized.
    unsafe { asm!("blr {}", in(reg) code, clobber_abi("C")) };
    if ok {
        let _ = writeln!(out, "selftest: mmu ok");
    } else {
        let _ = writeln!(out, "selftest: mmu FAILED");
    }
    let _ = writeln!(out, "selftest: writing to the read-only page at {code:#x}");
    // SAFETY: deliberately faults (a permission fault); the exception
    // report ends Ember.
    unsafe { core::ptr::write_volatile(code as *mut u32, 0) };
    let _ = writeln!(out, "selftest: read-only page written: NOT protected");
}
