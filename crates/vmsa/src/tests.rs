//! Expected values come from the Arm ARM's VMSAv8-64 descriptor format
//! (4 KiB granule, stage 1), written here as raw bit positions rather than
//! through the crate's constants; a reference walker, written from the
//! same text, checks that splits and attribute changes translate as they
//! should.
extern crate std;
use super::*;
use std::collections::BTreeMap;
use std::vec::Vec;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

// Lower and upper attribute fields of block and page descriptors.
/// AttrIndx\[2:0\], bits 4:2.
const fn attr_indx(n: u64) -> u64 {
    n << 2
}
/// AP\[1\], bit 6: EL0 access.
const AP1: u64 = 1 << 6;
/// AP\[2\], bit 7: read-only.
const AP2: u64 = 1 << 7;
/// SH\[1:0\], bits 9:8: inner shareable.
const SH_INNER: u64 = 0b11 << 8;
/// AF, bit 10.
const AF: u64 = 1 << 10;
/// nG, bit 11.
const NG: u64 = 1 << 11;
/// Contiguous, bit 52.
const CONTIGUOUS: u64 = 1 << 52;
/// PXN, bit 53; UXN, bit 54.
const PXN_BIT: u64 = 1 << 53;
const UXN_BIT: u64 = 1 << 54;
/// Software-reserved bits 58:55.
const SW_FIELD: u64 = 0xf << 55;
/// Table descriptor upper attributes: PXNTable 59, UXNTable 60, APTable
/// 62:61, NSTable 63.
const TABLE_ATTRS: u64 = 0x1f << 59;
/// Output address bits 47:12.
const ADDR_47_12: u64 = ((1 << 48) - 1) & !0xfff;

/// Normal memory as Ember's entry.s maps RAM: AttrIndx 1, inner shareable,
/// accessed, execute-never.
const RAM_RW_XN: u64 = attr_indx(1) | SH_INNER | AF | PXN_BIT | UXN_BIT;
/// Device memory: AttrIndx 0.
const DEVICE: u64 = attr_indx(0) | AF | PXN_BIT | UXN_BIT;

/// A block descriptor (levels 1 and 2): bits 1:0 = 0b01.
fn block(oa: u64, attrs: u64) -> u64 {
    oa | attrs | 0b01
}
/// A page descriptor (level 3): bits 1:0 = 0b11.
fn page(oa: u64, attrs: u64) -> u64 {
    oa | attrs | 0b11
}
/// A table descriptor (levels 0 to 2): bits 1:0 = 0b11.
fn table(addr: u64) -> u64 {
    addr | 0b11
}

fn attrs(read_protect: bool, exec_protect: bool, read_only: bool) -> PageAttrs {
    PageAttrs {
        read_protect,
        exec_protect,
        read_only,
    }
}

/// All eight combinations.
fn all_attrs() -> impl Iterator<Item = PageAttrs> {
    (0..8u8).map(|b| attrs(b & 1 != 0, b & 2 != 0, b & 4 != 0))
}

const RO: PageAttrs = PageAttrs {
    read_protect: false,
    exec_protect: false,
    read_only: true,
};
const XP: PageAttrs = PageAttrs {
    read_protect: false,
    exec_protect: true,
    read_only: false,
};
const RP: PageAttrs = PageAttrs {
    read_protect: true,
    exec_protect: false,
    read_only: false,
};
const NONE: PageAttrs = PageAttrs::NONE;

// ---------------------------------------------------------------------------
// Constants and levels.

#[test]
fn descriptor_bits_are_where_the_arm_arm_puts_them() {
    assert_eq!(VALID, 1 << 0);
    assert_eq!(TYPE, 1 << 1);
    assert_eq!(ATTR_INDX, attr_indx(0b111));
    assert_eq!(ATTR_NORMAL, attr_indx(1));
    assert_eq!(AP_RO, AP2);
    assert_eq!(OA, ADDR_47_12);
    assert_eq!(CONTIG, CONTIGUOUS);
    assert_eq!(PXN, PXN_BIT);
    assert_eq!(UXN, UXN_BIT);
    // Ember's software bits lie in the field the walker ignores, apart.
    assert_eq!(SW_RP & !SW_FIELD, 0);
    assert_eq!(SW_TABLE & !SW_FIELD, 0);
    assert_ne!(SW_RP, SW_TABLE);
    assert_eq!(SW_RP.count_ones(), 1);
    assert_eq!(SW_TABLE.count_ones(), 1);
    assert_eq!(PAGE, 4 * KIB);
    assert_eq!(ENTRIES, 512);
}

#[test]
fn level_sizes() {
    assert_eq!(level_size(0), 512 * GIB);
    assert_eq!(level_size(1), GIB);
    assert_eq!(level_size(2), 2 * MIB);
    assert_eq!(level_size(3), 4 * KIB);
    for level in 0..3 {
        assert_eq!(level_size(level), ENTRIES as u64 * level_size(level + 1));
    }
}

#[test]
fn index_takes_nine_va_bits_per_level() {
    // L0 index 47:39, L1 38:30, L2 29:21, L3 20:12.
    let va = (1 << 39) | (2 << 30) | (3 << 21) | (4 << 12) | 0x123;
    assert_eq!(va, 0x0000_0080_8060_4123);
    assert_eq!(
        [index(va, 0), index(va, 1), index(va, 2), index(va, 3)],
        [1, 2, 3, 4]
    );
    // virt's PL011 at 0x0900_0000: the 72nd 2 MiB block of the first GiB.
    assert_eq!([0, 1, 2, 3].map(|l| index(0x0900_0000, l)), [0, 0, 72, 0]);
    // RAM at 1 GiB: level 1 entry 1.
    assert_eq!([0, 1, 2, 3].map(|l| index(0x4000_0000, l)), [0, 1, 0, 0]);
    // The highest 48-bit page: 511 everywhere; the page offset is ignored.
    let top = 0x0000_ffff_ffff_ffff;
    assert_eq!([0, 1, 2, 3].map(|l| index(top, l)), [511; 4]);
    // The last byte below 1 TiB (T0SZ 24's limit) and the first above 512 GiB.
    assert_eq!(
        [0, 1, 2, 3].map(|l| index((1 << 40) - 1, l)),
        [1, 511, 511, 511]
    );
    assert_eq!([0, 1, 2, 3].map(|l| index(512 * GIB, l)), [1, 0, 0, 0]);
}

#[test]
fn entry_end_is_the_next_boundary() {
    let va = 0x4020_1234;
    assert_eq!(entry_end(va, 3), 0x4020_2000);
    assert_eq!(entry_end(va, 2), 0x4040_0000);
    assert_eq!(entry_end(va, 1), 0x8000_0000);
    assert_eq!(entry_end(va, 0), 512 * GIB);
    // On a boundary: the end of the entry that starts there.
    assert_eq!(entry_end(0x4000_0000, 1), 0x8000_0000);
    assert_eq!(entry_end(0x4000_0000, 3), 0x4000_1000);
    assert_eq!(entry_end(0x4000_0fff, 3), 0x4000_1000);
    assert_eq!(entry_end(0, 2), 2 * MIB);
}

// ---------------------------------------------------------------------------
// Classification.

#[test]
fn invalid_descriptors_at_every_level() {
    for level in 0..=3 {
        assert_eq!(kind(0, level), Kind::Invalid, "level {level}");
        // Bit 0 clear: nothing else counts, whatever the address or type.
        assert_eq!(kind(0x4000_0000 | 0b10 | RAM_RW_XN, level), Kind::Invalid);
        assert_eq!(kind(0x4000_0000 | RAM_RW_XN, level), Kind::Invalid);
    }
}

#[test]
fn tables_at_levels_0_to_2() {
    for level in 0..=2 {
        assert_eq!(kind(table(0x4000_5000), level), Kind::Table(0x4000_5000));
        // The next-level address is bits 47:12: the table attributes
        // (59-63) and the ignored low bits are not part of it.
        let d = table(0x0000_8765_4321_0000) | TABLE_ATTRS | (0x3ff << 2);
        assert_eq!(kind(d, level), Kind::Table(0x0000_8765_4321_0000));
    }
}

#[test]
fn blocks_at_levels_1_and_2_only() {
    // Level 0 has no blocks with the 4 KiB granule (without 52-bit OAs).
    assert_eq!(kind(block(0, RAM_RW_XN), 0), Kind::Invalid);
    assert_eq!(kind(block(GIB, RAM_RW_XN), 1), Kind::Leaf);
    assert_eq!(kind(block(2 * MIB, RAM_RW_XN), 2), Kind::Leaf);
    assert_eq!(kind(block(0x0900_0000, DEVICE), 2), Kind::Leaf);
}

#[test]
fn pages_at_level_3_and_its_reserved_encoding() {
    assert_eq!(kind(page(0x4000_1000, RAM_RW_XN), 3), Kind::Leaf);
    // At level 3, 0b11 is a page, not a table.
    assert_eq!(kind(table(0x4000_1000), 3), Kind::Leaf);
    // 0b01 at level 3 is reserved: it translates as invalid.
    assert_eq!(kind(block(0x4000_1000, RAM_RW_XN), 3), Kind::Invalid);
}

#[test]
fn read_protected_leaves() {
    // An invalid descriptor with Ember's RP software bit is a mapping the
    // walker does not see, at the levels that have leaves.
    for level in 1..=3 {
        let d = 0x4000_0000 | RAM_RW_XN | SW_RP;
        assert_eq!(kind(d, level), Kind::Leaf, "level {level}");
        assert_eq!(kind(d | 0b10, level), Kind::Leaf, "level {level}");
    }
    // Level 0 has no leaves, read-protected or not.
    assert_eq!(kind(RAM_RW_XN | SW_RP, 0), Kind::Invalid);
    // The other software bits do not make a leaf.
    assert_eq!(kind(0x4000_0000 | RAM_RW_XN | SW_TABLE, 2), Kind::Invalid);
}

#[test]
fn table_descriptors() {
    assert_eq!(table_desc(0x4000_5000), 0x4000_5003);
    // Only bits 47:12 of the address are used.
    assert_eq!(table_desc(0x4000_5fff), 0x4000_5003);
    assert_eq!(table_desc(0xffff_0000_4000_5000), 0x4000_5003);
    // No table attributes: no restriction on what lies below.
    assert_eq!(table_desc(0x4000_5000) & TABLE_ATTRS, 0);
    for level in 0..=2 {
        assert_eq!(
            kind(table_desc(0x1234_5000), level),
            Kind::Table(0x1234_5000)
        );
    }
}

#[test]
fn normal_memory_is_attr_indx_1() {
    assert!(is_normal(block(GIB, RAM_RW_XN)));
    assert!(is_normal(page(GIB, attr_indx(1))));
    assert!(is_normal(GIB | attr_indx(1) | SW_RP)); // read-protected RAM
    assert!(!is_normal(block(0x0900_0000, DEVICE)));
    for n in [0, 2, 3, 4, 5, 6, 7] {
        let other = (RAM_RW_XN & !attr_indx(7)) | attr_indx(n);
        assert!(!is_normal(page(GIB, other)), "AttrIndx {n}");
    }
    // Nothing but AttrIndx counts.
    assert!(is_normal(!attr_indx(7) | attr_indx(1)));
    assert!(!is_normal(!attr_indx(7)));
}

// ---------------------------------------------------------------------------
// Attributes.

#[test]
fn attributes_read_from_descriptors() {
    let rw = page(GIB, attr_indx(1) | AF);
    assert_eq!(attrs_of(rw), NONE);
    assert_eq!(attrs_of(rw | AP2), RO);
    // AP[1] is EL0 access, not read-only.
    assert_eq!(attrs_of(rw | AP1), NONE);
    assert_eq!(attrs_of(rw | PXN_BIT), XP);
    // UXN alone leaves EL1 execution allowed.
    assert_eq!(attrs_of(rw | UXN_BIT), NONE);
    assert_eq!(attrs_of((rw & !1) | SW_RP), RP);
    assert_eq!(
        attrs_of((rw & !1) | SW_RP | AP2 | PXN_BIT | UXN_BIT),
        attrs(true, true, true)
    );
}

#[test]
fn read_only_is_ap2() {
    let d = page(0x4000_3000, RAM_RW_XN);
    let ro = with_attrs(d, RO, NONE);
    assert_eq!(ro, d | (1 << 7));
    assert_eq!(with_attrs(ro, NONE, RO), d);
    // AP[1] is left alone either way.
    assert_eq!(with_attrs(d | AP1, RO, NONE), d | AP1 | AP2);
    assert_eq!(with_attrs(d | AP1 | AP2, NONE, RO), d | AP1);
}

#[test]
fn exec_protect_is_pxn_and_uxn_stays() {
    let x = page(0x4000_3000, attr_indx(1) | SH_INNER | AF);
    // Setting XP sets PXN and UXN.
    assert_eq!(with_attrs(x, XP, NONE), x | (1 << 53) | (1 << 54));
    // Clearing XP clears PXN only: UXN stays set (nothing runs at EL0).
    let xn = x | PXN_BIT | UXN_BIT;
    assert_eq!(with_attrs(xn, NONE, XP), x | UXN_BIT);
    // A descriptor without UXN does not gain it by clearing.
    assert_eq!(with_attrs(x | PXN_BIT, NONE, XP), x);
}

#[test]
fn read_protect_is_an_invalid_descriptor_keeping_the_rest() {
    for d in [
        page(0x4000_3000, RAM_RW_XN),
        page(0x4000_3000, RAM_RW_XN | AP2),
        block(0x4020_0000, RAM_RW_XN & !PXN_BIT),
        block(2 * GIB, RAM_RW_XN),
    ] {
        let rp = with_attrs(d, RP, NONE);
        assert_eq!(rp & 1, 0, "bit 0 clear");
        assert_ne!(rp & SW_RP, 0, "the software bit");
        // Everything else (address, type, attributes) is kept.
        assert_eq!(rp & !(1 | SW_RP), d & !1);
        assert_eq!(rp & ADDR_47_12, d & ADDR_47_12);
        assert!(attrs_of(rp).read_protect);
        // Clearing RP restores the descriptor exactly.
        assert_eq!(with_attrs(rp, NONE, RP), d);
        // Setting it again changes nothing.
        assert_eq!(with_attrs(rp, RP, NONE), rp);
    }
    // Clearing RP on a valid descriptor changes nothing.
    let d = page(0x4000_3000, RAM_RW_XN);
    assert_eq!(with_attrs(d, NONE, RP), d);
}

#[test]
fn set_wins_over_clear() {
    let d = page(0x4000_3000, attr_indx(1) | AF);
    assert_eq!(with_attrs(d, RO, RO), d | AP2);
    assert_eq!(with_attrs(d | AP2, RO, RO), d | AP2);
    assert_eq!(with_attrs(d, XP, XP), d | PXN_BIT | UXN_BIT);
    assert_eq!(with_attrs(d | PXN_BIT, XP, XP), d | PXN_BIT | UXN_BIT);
    let rp = (d & !1) | SW_RP;
    assert_eq!(with_attrs(d, RP, RP), rp);
    assert_eq!(with_attrs(rp, RP, RP), rp);
}

#[test]
fn every_change_gives_old_minus_clear_plus_set() {
    let or = |a: PageAttrs, b: PageAttrs| {
        attrs(
            a.read_protect | b.read_protect,
            a.exec_protect | b.exec_protect,
            a.read_only | b.read_only,
        )
    };
    let minus = |a: PageAttrs, b: PageAttrs| {
        attrs(
            a.read_protect & !b.read_protect,
            a.exec_protect & !b.exec_protect,
            a.read_only & !b.read_only,
        )
    };
    for (base, level) in [
        (page(0x4000_3000, attr_indx(1) | SH_INNER | AF), 3),
        (block(0x4020_0000, attr_indx(1) | SH_INNER | AF | NG), 2),
        (block(3 * GIB, attr_indx(1) | AF | CONTIGUOUS), 1),
    ] {
        for start in all_attrs() {
            let d = with_attrs(base, start, NONE);
            assert_eq!(attrs_of(d), start);
            for set in all_attrs() {
                for clear in all_attrs() {
                    let n = with_attrs(d, set, clear);
                    assert_eq!(attrs_of(n), or(minus(start, clear), set));
                    // Permissions, validity and software bits only: the
                    // address, memory type, shareability, AF, nG and the
                    // type bit never change.
                    let kept = !(1 | AP2 | PXN_BIT | UXN_BIT | SW_RP);
                    assert_eq!(n & kept, d & kept);
                    assert_eq!(kind(n, level), Kind::Leaf);
                    assert_eq!(is_normal(n), is_normal(d));
                }
            }
        }
    }
}

#[test]
fn table_pages_must_stay_writable() {
    let rw = page(0x4000_3000, RAM_RW_XN);
    assert!(!blocks_tables(rw));
    assert!(!blocks_tables(rw & !PXN_BIT));
    assert!(blocks_tables(rw | AP2));
    assert!(blocks_tables((rw & !1) | SW_RP));

    let t = rw | SW_TABLE;
    assert!(protects_table(t, with_attrs(t, RO, NONE)));
    assert!(protects_table(t, with_attrs(t, RP, NONE)));
    assert!(!protects_table(t, with_attrs(t, NONE, XP)));
    assert!(!protects_table(t, with_attrs(t, XP, NONE)));
    // Pages that hold no table may become anything.
    assert!(!protects_table(rw, with_attrs(rw, RO, NONE)));
    assert!(!protects_table(rw, with_attrs(rw, RP, NONE)));
}

#[test]
fn pages_fit_for_tables() {
    let rw = page(0x4000_3000, RAM_RW_XN);
    assert!(can_hold_table(rw));
    assert!(can_hold_table(rw & !PXN_BIT));
    assert!(can_hold_table(block(0x4020_0000, RAM_RW_XN)));
    assert!(!can_hold_table(rw | AP2), "read-only");
    assert!(!can_hold_table((rw & !1) | SW_RP), "read-protected");
    assert!(!can_hold_table(rw | SW_TABLE), "already a table");
    assert!(!can_hold_table(page(0x0900_0000, DEVICE)), "device memory");
}

#[test]
fn marking_table_pages() {
    let rw = page(0x4000_3000, RAM_RW_XN);
    let m = mark_table_page(rw).unwrap();
    assert_eq!(m, rw | (1 << 56));
    // Only a bit the walker ignores changed: the same translation.
    assert_eq!(m & !SW_FIELD, rw & !SW_FIELD);
    assert_eq!(attrs_of(m), attrs_of(rw));
    assert_eq!(mark_table_page(0), None);
    assert_eq!(mark_table_page((rw & !1) | SW_RP), None);
    // A level 3 descriptor with bit 1 clear is reserved, not a page.
    assert_eq!(mark_table_page(block(0x4000_3000, RAM_RW_XN)), None);
}

// ---------------------------------------------------------------------------
// Splitting blocks.

#[test]
fn a_2mib_block_splits_into_512_pages() {
    let base = 0x4020_0000;
    let upper = RAM_RW_XN | AP2 | NG | (1 << 57);
    let b = block(base, upper);
    assert_eq!(kind(b, 2), Kind::Leaf);
    for j in 0..ENTRIES {
        let e = sub_entry(b, 2, j);
        // Page j maps the j-th 4 KiB of the block.
        assert_eq!(e & ADDR_47_12, base + j as u64 * 4 * KIB);
        // Bits 1:0 = 0b11: a page descriptor at level 3.
        assert_eq!(e & 0b11, 0b11);
        assert_eq!(kind(e, 3), Kind::Leaf);
        // Every attribute carried over.
        assert_eq!(e & !ADDR_47_12 & !0b10, b & !ADDR_47_12);
        assert_eq!(attrs_of(e), attrs_of(b));
        assert!(is_normal(e));
    }
    assert_eq!(sub_entry(b, 2, 0), page(base, upper));
    assert_eq!(sub_entry(b, 2, 511), page(base + 2 * MIB - 4 * KIB, upper));
}

#[test]
fn a_1gib_block_splits_into_512_2mib_blocks() {
    let base = 5 * GIB;
    let b = block(base, RAM_RW_XN);
    for j in 0..ENTRIES {
        let e = sub_entry(b, 1, j);
        assert_eq!(e, block(base + j as u64 * 2 * MIB, RAM_RW_XN));
        // Bits 1:0 = 0b01: still a block, one level down.
        assert_eq!(kind(e, 2), Kind::Leaf);
        // And each of those splits into pages.
        assert_eq!(
            sub_entry(e, 2, 3),
            page(base + j as u64 * 2 * MIB + 3 * PAGE, RAM_RW_XN)
        );
    }
}

#[test]
fn splitting_clears_the_contiguous_hint() {
    let b = block(0x4020_0000, RAM_RW_XN | CONTIGUOUS);
    for j in [0, 1, 255, 511] {
        let e = sub_entry(b, 2, j);
        assert_eq!(e & (1 << 52), 0);
        assert_eq!(e, page(0x4020_0000 + j as u64 * PAGE, RAM_RW_XN));
    }
    let b = block(GIB, RAM_RW_XN | CONTIGUOUS);
    assert_eq!(sub_entry(b, 1, 7), block(GIB + 14 * MIB, RAM_RW_XN));
}

#[test]
fn splitting_uses_the_block_aligned_output_address() {
    // Bits 20:12 of a 2 MiB block descriptor (29:12 of a 1 GiB one) are
    // not part of its output address.
    let b = block(0x4020_0000 | 0x1f_f000, RAM_RW_XN);
    assert_eq!(sub_entry(b, 2, 0), page(0x4020_0000, RAM_RW_XN));
    let b = block(GIB | 0x3fff_f000, RAM_RW_XN);
    assert_eq!(sub_entry(b, 1, 1), block(GIB + 2 * MIB, RAM_RW_XN));
}

#[test]
fn a_read_protected_block_splits_into_read_protected_pages() {
    let b = with_attrs(block(0x4020_0000, RAM_RW_XN), RP, NONE);
    for j in [0, 17, 511] {
        let e = sub_entry(b, 2, j);
        assert_eq!(e & 1, 0, "still invalid");
        assert_ne!(e & SW_RP, 0);
        assert_eq!(kind(e, 3), Kind::Leaf);
        assert_eq!(attrs_of(e), attrs(true, true, false));
        // Clearing RP gives the page it would have been.
        let oa = 0x4020_0000 + j as u64 * PAGE;
        assert_eq!(with_attrs(e, NONE, RP), page(oa, RAM_RW_XN));
    }
    let b = with_attrs(block(GIB, RAM_RW_XN), RP, NONE);
    assert_eq!(
        with_attrs(sub_entry(b, 1, 2), NONE, RP),
        block(GIB + 4 * MIB, RAM_RW_XN)
    );
}

// ---------------------------------------------------------------------------
// Walks: a reference walker, from the Arm ARM's description, over tables
// in a fake memory.

/// Table pages by address.
#[derive(Default)]
struct Memory(BTreeMap<u64, [u64; 512]>);

impl Memory {
    fn get(&self, t: u64, i: usize) -> u64 {
        self.0[&t][i]
    }
    fn set(&mut self, t: u64, i: usize, d: u64) {
        self.0.entry(t).or_insert([0; 512])[i] = d;
    }
}

/// What a translation gives: the physical address and the leaf.
#[derive(Debug, PartialEq, Eq)]
struct Translation {
    pa: u64,
    leaf: u64,
    writable: bool,
    executable: bool,
}

/// The stage 1 walk from level 0 (4 KiB granule, 48-bit IA), without
/// using the crate.
fn reference_walk(m: &Memory, root: u64, va: u64) -> Option<Translation> {
    let mut t = root;
    for level in 0..4u32 {
        let shift = 39 - 9 * level;
        let d = m.get(t, ((va >> shift) & 0x1ff) as usize);
        if d & 1 == 0 {
            return None;
        }
        let bit1 = d & 2 != 0;
        let leaf_mask = match (level, bit1) {
            (0..=2, true) => {
                t = d & ADDR_47_12;
                continue;
            }
            (3, true) => 0xfff,
            (1 | 2, false) => (1u64 << shift) - 1,
            _ => return None, // level 0 block, level 3 reserved
        };
        return Some(Translation {
            pa: (d & ADDR_47_12 & !leaf_mask) | (va & leaf_mask),
            leaf: d,
            writable: d & AP2 == 0,
            executable: d & PXN_BIT == 0,
        });
    }
    unreachable!()
}

/// A walk with the crate's functions, as mmu.rs does it: the leaf's table,
/// index, level and value.
fn crate_walk(m: &Memory, root: u64, va: u64) -> Option<(u64, usize, usize, u64)> {
    let mut t = root;
    for level in 0..=3 {
        let i = index(va, level);
        let d = m.get(t, i);
        match kind(d, level) {
            Kind::Table(next) => t = next,
            Kind::Leaf => return Some((t, i, level, d)),
            Kind::Invalid => return None,
        }
    }
    None
}

const L0: u64 = 0x4000_0000;
const L1: u64 = 0x4000_1000;

/// Boot-like tables: [0, 1 GiB) device, [1 GiB, 8 GiB) RAM in 1 GiB blocks.
fn boot_tables() -> Memory {
    let mut m = Memory::default();
    m.set(L0, 0, table(L1));
    m.set(L1, 0, block(0, DEVICE));
    for g in 1..8 {
        m.set(L1, g, block(g as u64 * GIB, RAM_RW_XN));
    }
    m
}

/// Split the leaf `(t, i)` at `level` into a new table at `new` as mmu.rs
/// does: fill it with sub_entry, then point the entry at it.
fn split(m: &mut Memory, t: u64, i: usize, level: usize, new: u64) {
    let d = m.get(t, i);
    for j in 0..ENTRIES {
        m.set(new, j, sub_entry(d, level, j));
    }
    m.set(t, i, table_desc(new));
}

/// Addresses across [from, to): every page boundary and some offsets.
fn samples(from: u64, to: u64, step: u64) -> Vec<u64> {
    (from..to)
        .step_by(step as usize)
        .flat_map(|a| [a, a + 0x8, a + step / 2 + 0x123, a + step - 1])
        .filter(|&a| a < to)
        .collect()
}

#[test]
fn the_crate_walk_agrees_with_the_reference() {
    let mut m = boot_tables();
    split(&mut m, L1, 2, 1, 0x4000_2000);
    split(&mut m, 0x4000_2000, 5, 2, 0x4000_3000);
    for va in
        samples(0, 9 * GIB, 64 * MIB)
            .into_iter()
            .chain(samples(2 * GIB, 2 * GIB + 16 * MIB, PAGE))
    {
        let r = reference_walk(&m, L0, va);
        let c = crate_walk(&m, L0, va);
        assert_eq!(r.as_ref().map(|r| r.leaf), c.map(|c| c.3), "{va:#x}");
        if let (Some(r), Some((_, _, level, d))) = (r, c) {
            // Identity map: the entry's range starts at its output address.
            let start = entry_end(va, level) - level_size(level);
            assert_eq!(start, d & OA);
            assert_eq!(r.pa, va);
            assert_eq!(attrs_of(d), attrs(false, !r.executable, !r.writable));
        }
    }
    // Above the last RAM block, nothing.
    assert_eq!(crate_walk(&m, L0, 8 * GIB), None);
    assert_eq!(reference_walk(&m, L0, 8 * GIB), None);
}

#[test]
fn splits_keep_every_translation() {
    let before = boot_tables();
    let mut m = boot_tables();
    // 1 GiB -> 2 MiB blocks, then one 2 MiB block -> pages, then one more.
    split(&mut m, L1, 1, 1, 0x4000_2000);
    split(&mut m, 0x4000_2000, 0, 2, 0x4000_3000);
    split(&mut m, 0x4000_2000, 511, 2, 0x4000_4000);
    for va in samples(GIB, 2 * GIB, 8 * MIB)
        .into_iter()
        .chain(samples(GIB, GIB + 2 * MIB, PAGE))
        .chain(samples(2 * GIB - 2 * MIB, 2 * GIB, PAGE))
    {
        let (a, b) = (reference_walk(&before, L0, va), reference_walk(&m, L0, va));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.pa, b.pa, "{va:#x}");
        assert_eq!((a.writable, a.executable), (b.writable, b.executable));
        // Same memory type and everything else but the type bit.
        assert_eq!(a.leaf & !(ADDR_47_12 | 0b10), b.leaf & !(ADDR_47_12 | 0b10));
    }
    // The walk now ends at level 3 inside the split 2 MiB blocks, level 2
    // elsewhere in that GiB.
    assert_eq!(crate_walk(&m, L0, GIB + 0x5000).map(|w| w.2), Some(3));
    assert_eq!(crate_walk(&m, L0, GIB + 4 * MIB).map(|w| w.2), Some(2));
    assert_eq!(crate_walk(&m, L0, 2 * GIB - 1).map(|w| w.2), Some(3));
}

#[test]
fn page_attribute_changes_after_a_split() {
    let mut m = boot_tables();
    split(&mut m, L1, 3, 1, 0x4000_2000);
    split(&mut m, 0x4000_2000, 1, 2, 0x4000_3000);
    let va = 3 * GIB + 2 * MIB + 7 * PAGE;
    let change = |m: &mut Memory, set, clear| {
        let (t, i, level, d) = crate_walk(m, L0, va).unwrap();
        assert_eq!(level, 3);
        m.set(t, i, with_attrs(d, set, clear));
    };
    let neighbours = [va - PAGE, va + PAGE];

    // RO: that page only, still mapped to itself.
    change(&mut m, RO, NONE);
    let r = reference_walk(&m, L0, va + 0x10).unwrap();
    assert_eq!((r.pa, r.writable, r.executable), (va + 0x10, false, false));
    for n in neighbours {
        assert!(reference_walk(&m, L0, n).unwrap().writable);
    }
    // Executable (XP cleared), read-only kept.
    change(&mut m, NONE, XP);
    let r = reference_walk(&m, L0, va).unwrap();
    assert_eq!((r.writable, r.executable), (false, true));
    assert_ne!(r.leaf & UXN_BIT, 0, "UXN kept");
    // RP: the walker finds nothing, the crate a read-protected leaf.
    change(&mut m, RP, NONE);
    assert_eq!(reference_walk(&m, L0, va), None);
    let (_, _, level, d) = crate_walk(&m, L0, va).unwrap();
    assert_eq!((level, attrs_of(d)), (3, attrs(true, false, true)));
    for n in neighbours {
        assert!(reference_walk(&m, L0, n).is_some());
    }
    // RP off, RO off, XP on: exactly the page as it was.
    change(&mut m, XP, RP);
    change(&mut m, NONE, RO);
    let r = reference_walk(&m, L0, va).unwrap();
    assert_eq!(r.leaf, page(va, RAM_RW_XN));
}

// ---------------------------------------------------------------------------
// Pending table pages.

#[test]
fn pending_pages() {
    let mut p = Pending::<3>::new();
    assert!(p.is_empty());
    assert_eq!(p.first_in(&(0..u64::MAX)), None);
    for a in [0x4000_1000, 0x4020_0000, 0x8000_0000] {
        assert_eq!(p.push(a), Some(()));
    }
    assert_eq!(p.push(0x9000_0000), None, "full");
    assert_eq!(p.len(), 3);
    assert_eq!(p.first_in(&(0x4000_0000..0x4020_0000)), Some(0x4000_1000));
    assert_eq!(
        p.first_in(&(0x4010_0000..0x4020_0000)),
        None,
        "end excluded"
    );
    assert_eq!(p.first_in(&(0x4020_0000..0x4020_1000)), Some(0x4020_0000));
    p.remove(0x4000_1000);
    assert_eq!(p.len(), 2);
    assert_eq!(p.first_in(&(0x4000_0000..0x4020_0000)), None);
    p.remove(0x1234_5000); // not pending: nothing
    assert_eq!(p.len(), 2);
    assert!(p.first_in(&(0..u64::MAX)).is_some());
    p.remove(0x8000_0000);
    p.remove(0x4020_0000);
    assert!(p.is_empty());
    assert_eq!(p.push(0x9000_0000), Some(()));
    assert_eq!(p.first_in(&(0..u64::MAX)), Some(0x9000_0000));
    let mut z = Pending::<0>::default();
    assert_eq!(z.push(0), None);
}

// ---------------------------------------------------------------------------
// Cache maintenance and SCTLR_EL1.

#[test]
fn ctr_el0_decoding() {
    // Cortex-A57's CTR_EL0 (0x8444c004): 64-byte lines, IDC and DIC 0.
    assert_eq!(
        cache_geometry(0x8444_c004),
        CacheGeometry {
            dline: 64,
            iline: 64,
            clean_dcache: true,
            invalidate_icache: true,
        }
    );
    // DminLine 5 (32 words: 128 bytes), IminLine 3 (8 words: 32 bytes),
    // IDC and DIC set: nothing to do at all.
    let ctr = (1 << 31) | (1 << 29) | (1 << 28) | (5 << 16) | 3;
    assert_eq!(
        cache_geometry(ctr),
        CacheGeometry {
            dline: 128,
            iline: 32,
            clean_dcache: false,
            invalidate_icache: false,
        }
    );
    // Other fields (L1Ip 15:14, ERG, CWG, TminLine) do not count.
    let g = cache_geometry((0xf << 24) | (0xf << 20) | (3 << 14) | (0x3f << 32) | (4 << 16) | 4);
    assert_eq!((g.dline, g.iline), (64, 64));
    assert!(g.clean_dcache && g.invalidate_icache);
}

#[test]
fn cache_lines_cover_the_range() {
    let v: Vec<u64> = lines(0x1003, 0x80, 64).collect();
    assert_eq!(v, [0x1000, 0x1040, 0x1080]);
    let v: Vec<u64> = lines(0x1000, 0x40, 64).collect();
    assert_eq!(v, [0x1000]);
    let v: Vec<u64> = lines(0x1000, 0x41, 64).collect();
    assert_eq!(v, [0x1000, 0x1040]);
    let v: Vec<u64> = lines(0x103f, 1, 64).collect();
    assert_eq!(v, [0x1000]);
    assert_eq!(lines(0x1003, 0, 64).count(), 0);
    assert_eq!(lines(0x1000, 0, 64).count(), 0);
    assert_eq!(lines(0x4000_0000, 2 * MIB, 4).count(), 512 * 1024);
    // At the top of the address space the end saturates and the walk stops.
    let v: Vec<u64> = lines(u64::MAX - 10, 100, 64).collect();
    assert_eq!(v, [0xffff_ffff_ffff_ffc0]);
    let v: Vec<u64> = lines(u64::MAX - 100, 1000, 64).collect();
    assert_eq!(v, [0xffff_ffff_ffff_ff80, 0xffff_ffff_ffff_ffc0]);
}

#[test]
fn wxn_is_sctlr_bit_19() {
    // SCTLR_EL1 with M, C, I and RES1 bits, as after entry.s.
    let s = 0x30d0_1805;
    assert_eq!(with_wxn(s, true), s | (1 << 19));
    assert_eq!(with_wxn(s | (1 << 19), false), s);
    assert_eq!(with_wxn(s, false), s);
    assert_eq!(with_wxn(s | (1 << 19), true), s | (1 << 19));
}
