extern crate std;

use std::vec::Vec;

use super::*;
use zerocopy::{FromBytes, IntoBytes};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn r(start: u64, end: u64, kind: MemKind) -> Region {
    Region { start, end, kind }
}

fn e(addr: u64, size: u64, kind: u32) -> E820Entry {
    E820Entry::new(addr, size, kind)
}

/// Checks the map's structural invariants after every interesting step.
fn check_invariants<const N: usize>(m: &MemoryMap<N>) {
    let regions = m.regions();
    for w in regions.windows(2) {
        assert!(w[0].end <= w[1].start, "overlap or unsorted: {m:?}");
        assert!(
            !(w[0].end == w[1].start && w[0].kind == w[1].kind),
            "unmerged: {m:?}"
        );
    }
    for reg in regions {
        assert!(reg.start < reg.end, "empty region: {m:?}");
        assert_eq!(reg.start % PAGE_SIZE, 0);
        assert_eq!(reg.end % PAGE_SIZE, 0);
    }
}

/// A typical small VM: low RAM, the legacy hole, 1 MiB..2 GiB RAM with ACPI
/// at the top, and a PCI hole reserved below 4 GiB, RAM above.
fn typical() -> MemoryMap<32> {
    let m = MemoryMap::<32>::from_e820(&[
        e(0, 0x9fc00, E820_RAM),
        e(0x9fc00, 0x400, E820_RESERVED),
        e(0xf0000, 0x10000, E820_RESERVED),
        e(MIB, 2 * GIB - MIB - 0x20000, E820_RAM),
        e(2 * GIB - 0x20000, 0x20000, E820_ACPI),
        e(0xfeffc000, 0x4000, E820_RESERVED),
        e(4 * GIB, 2 * GIB, E820_RAM),
    ])
    .unwrap();
    check_invariants(&m);
    m
}

#[test]
fn e820_structs_have_wire_layout() {
    // 20-byte packed entry: addr, size, type, all little endian.
    let raw: [u8; 20] = [
        0x00, 0x10, 0, 0, 0, 0, 0, 0, // addr 0x1000
        0x00, 0x00, 0x02, 0, 0, 0, 0, 0, // size 0x20000
        0x03, 0, 0, 0, // ACPI
    ];
    let (entry, rest) = E820Entry::read_from_prefix(&raw).unwrap();
    assert!(rest.is_empty());
    assert_eq!(
        (entry.addr.get(), entry.size.get(), entry.kind.get()),
        (0x1000, 0x20000, 3)
    );
    assert_eq!(entry.as_bytes(), &raw);

    let hvm = HvmMemmapEntry::new(0x1000, 0x2000, 1);
    let bytes = hvm.as_bytes();
    assert_eq!(bytes.len(), 24);
    assert_eq!(&bytes[16..20], &[1, 0, 0, 0]);
    assert_eq!(&bytes[20..24], &[0, 0, 0, 0]);
}

#[test]
fn typical_map_is_page_granular_and_sorted() {
    let m = typical();
    assert_eq!(
        m.regions(),
        &[
            // 0x9fc00 is not page aligned: the partial page joins the reserved range.
            r(0, 0x9f000, MemKind::Free),
            r(0x9f000, 0xa0000, MemKind::Reserved),
            r(0xf0000, 0x100000, MemKind::Reserved),
            r(MIB, 2 * GIB - 0x20000, MemKind::Free),
            r(2 * GIB - 0x20000, 2 * GIB, MemKind::AcpiReclaim),
            r(0xfeffc000, 0xff000000, MemKind::Reserved),
            r(4 * GIB, 6 * GIB, MemKind::Free),
        ]
    );
    assert_eq!(
        m.total_free(),
        0x9f000 + (2 * GIB - 0x20000 - MIB) + 2 * GIB
    );
    assert_eq!(m.kind_at(0x9fc00), Some(MemKind::Reserved));
    assert_eq!(m.kind_at(0xa0000), None);
    assert_eq!(m.kind_at(5 * GIB), Some(MemKind::Free));
}

#[test]
fn unsorted_and_overlapping_inputs_give_the_same_map() {
    let entries = [
        e(0, 16 * MIB, E820_RAM),
        e(4 * MIB, MIB, E820_RESERVED),
        e(3 * MIB, 3 * MIB, E820_NVS),
        e(8 * MIB, 16 * MIB, E820_RAM), // overlaps and extends the first RAM entry
    ];
    let sorted = MemoryMap::<16>::from_e820(&entries).unwrap();
    let mut rev = entries;
    rev.reverse();
    let reversed = MemoryMap::<16>::from_e820(&rev).unwrap();
    check_invariants(&sorted);
    assert_eq!(sorted.regions(), reversed.regions());
    // NVS (type 4) outranks reserved (type 2) where they overlap.
    assert_eq!(
        sorted.regions(),
        &[
            r(0, 3 * MIB, MemKind::Free),
            r(3 * MIB, 6 * MIB, MemKind::AcpiNvs),
            r(6 * MIB, 24 * MIB, MemKind::Free)
        ]
    );
}

#[test]
fn zero_size_wrapping_and_unknown_entries() {
    let m = MemoryMap::<8>::from_e820(&[
        e(0x5000, 0, E820_RAM),                            // zero size: ignored
        e(u64::MAX - 0xfff, 0x10_0000, E820_RAM),          // wraps: clamped, then nothing left
        e(0xffff_ffff_0000_0000, u64::MAX, E820_RESERVED), // wraps: clamped to MAX_END
        e(0x1000, 0x800, E820_RAM),                        // less than a page of RAM: ignored
        e(0x10000, 0x1000, 99),                            // unknown type: reserved
        e(0x20000, 0x1000, E820_UNUSABLE),
    ])
    .unwrap();
    check_invariants(&m);
    assert_eq!(
        m.regions(),
        &[
            r(0x10000, 0x11000, MemKind::Reserved),
            r(0x20000, 0x21000, MemKind::Unusable),
            r(0xffff_ffff_0000_0000, MAX_END, MemKind::Reserved),
        ]
    );
    assert_eq!(m.total_free(), 0);
}

#[test]
fn hvm_memmap_input() {
    let m = MemoryMap::<8>::from_hvm_memmap(&[
        HvmMemmapEntry::new(MIB, 7 * MIB, E820_RAM),
        HvmMemmapEntry::new(0, 0xa0000, E820_RAM),
    ])
    .unwrap();
    assert_eq!(
        m.regions(),
        &[r(0, 0xa0000, MemKind::Free), r(MIB, 8 * MIB, MemKind::Free)]
    );
}

#[test]
fn add_splits_and_merges() {
    let mut m = MemoryMap::<8>::new();
    m.add(0, 0x10000, MemKind::Free).unwrap();
    m.add(0x4000, 0x6000, MemKind::Reserved).unwrap();
    assert_eq!(
        m.regions(),
        &[
            r(0, 0x4000, MemKind::Free),
            r(0x4000, 0x6000, MemKind::Reserved),
            r(0x6000, 0x10000, MemKind::Free)
        ]
    );
    // Free RAM added over reserved memory does not override it...
    m.add(0x3000, 0x7000, MemKind::Free).unwrap();
    assert_eq!(m.regions().len(), 3);
    // ...but touching free RAM merges.
    m.add(0x10000, 0x12000, MemKind::Free).unwrap();
    assert_eq!(m.regions()[2], r(0x6000, 0x12000, MemKind::Free));
    // A reserved range bridging two reserved neighbours merges into one.
    m.add(0x20000, 0x21000, MemKind::Reserved).unwrap();
    m.add(0x12000, 0x20000, MemKind::Reserved).unwrap();
    assert_eq!(m.regions()[3], r(0x12000, 0x21000, MemKind::Reserved));
    check_invariants(&m);
    assert_eq!(
        m.add(5, 5, MemKind::Free),
        Err(MemError::EmptyRange { start: 5, end: 5 })
    );
}

#[test]
fn platform_kinds_beat_allocations() {
    let mut m = MemoryMap::<8>::new();
    m.add(0, 0x10000, MemKind::Free).unwrap();
    m.allocate_at(0x2000, 2, MemKind::Firmware).unwrap();
    // A late reserved entry wins over the firmware allocation.
    m.add(0x3000, 0x5000, MemKind::Reserved).unwrap();
    assert_eq!(
        m.regions(),
        &[
            r(0, 0x2000, MemKind::Free),
            r(0x2000, 0x3000, MemKind::Firmware),
            r(0x3000, 0x5000, MemKind::Reserved),
            r(0x5000, 0x10000, MemKind::Free),
        ]
    );
}

#[test]
fn capacity_overflow_is_an_error_and_leaves_map_intact() {
    let mut m = MemoryMap::<3>::new();
    m.add(0, 0x10000, MemKind::Free).unwrap();
    m.add(0x4000, 0x5000, MemKind::Reserved).unwrap();
    let before: Vec<Region> = m.regions().to_vec();
    assert_eq!(
        m.add(0x8000, 0x9000, MemKind::Reserved),
        Err(MemError::Full { capacity: 3 })
    );
    assert_eq!(m.regions(), &before[..]);
    assert_eq!(
        m.allocate_at(0x8000, 1, MemKind::Loader),
        Err(MemError::Full { capacity: 3 })
    );
    assert_eq!(m.regions(), &before[..]);

    let many: Vec<E820Entry> = (0..10).map(|i| e(i * 0x2000, 0x1000, E820_RAM)).collect();
    assert_eq!(
        MemoryMap::<4>::from_e820(&many).unwrap_err(),
        MemError::Full { capacity: 4 }
    );
    assert!(MemoryMap::<0>::from_e820(&many[..1]).is_err());
    assert!(MemoryMap::<0>::from_e820(&[]).unwrap().regions().is_empty());
}

#[test]
fn allocate_top_down_respects_limit_and_alignment() {
    let mut m = typical();
    // No limit: top of RAM above 4 GiB.
    let a = m
        .allocate(1, PAGE_SIZE, u64::MAX, MemKind::Loader, Strategy::TopDown)
        .unwrap();
    assert_eq!(a, 6 * GIB - PAGE_SIZE);
    // Below 4 GiB: just under the ACPI tables.
    let b = m
        .allocate(
            2,
            PAGE_SIZE,
            4 * GIB - 1,
            MemKind::Loader,
            Strategy::TopDown,
        )
        .unwrap();
    assert_eq!(b, 2 * GIB - 0x20000 - 2 * PAGE_SIZE);
    // 2 MiB alignment with an inclusive limit one byte short of a 2 MiB boundary.
    let c = m
        .allocate(1, 2 * MIB, 64 * MIB - 1, MemKind::Kernel, Strategy::TopDown)
        .unwrap();
    assert_eq!(c, 62 * MIB);
    // A limit inside low memory.
    let d = m
        .allocate(1, 0, 0xfffff, MemKind::BootParams, Strategy::TopDown)
        .unwrap();
    assert_eq!(d, 0x9e000);
    check_invariants(&m);
    assert_eq!(m.kind_at(c), Some(MemKind::Kernel));
    assert_eq!(m.kind_at(c + PAGE_SIZE), Some(MemKind::Free));
}

#[test]
fn allocate_bottom_up_and_min_addr() {
    let mut m = typical();
    let a = m
        .allocate(
            1,
            PAGE_SIZE,
            u64::MAX,
            MemKind::FirmwareData,
            Strategy::BottomUp,
        )
        .unwrap();
    assert_eq!(a, 0);
    // 0x9f000 bytes of low RAM cannot hold 0xa0 pages; the next fit is at 1 MiB.
    let b = m
        .allocate(
            0xa0,
            PAGE_SIZE,
            u64::MAX,
            MemKind::Loader,
            Strategy::BottomUp,
        )
        .unwrap();
    assert_eq!(b, MIB);
    let c = m
        .allocate_in_range(
            1,
            16 * MIB,
            3 * MIB,
            u64::MAX,
            MemKind::Loader,
            Strategy::BottomUp,
        )
        .unwrap();
    assert_eq!(c, 16 * MIB);
    check_invariants(&m);
}

#[test]
fn allocate_failures() {
    let mut m = typical();
    assert_eq!(
        m.allocate(1, 3, u64::MAX, MemKind::Loader, Strategy::TopDown),
        Err(MemError::BadAlignment { align: 3 })
    );
    assert_eq!(
        m.allocate(0, PAGE_SIZE, u64::MAX, MemKind::Loader, Strategy::TopDown),
        Err(MemError::ZeroPages)
    );
    assert_eq!(
        m.allocate(
            u64::MAX,
            PAGE_SIZE,
            u64::MAX,
            MemKind::Loader,
            Strategy::TopDown
        ),
        Err(MemError::TooLarge { pages: u64::MAX })
    );
    assert_eq!(
        m.allocate(1, PAGE_SIZE, u64::MAX, MemKind::Reserved, Strategy::TopDown),
        Err(MemError::NotAllocatable {
            kind: MemKind::Reserved
        })
    );
    // 3 GiB contiguous does not exist anywhere.
    let pages = 3 * GIB / PAGE_SIZE;
    assert_eq!(
        m.allocate(
            pages,
            PAGE_SIZE,
            u64::MAX,
            MemKind::Loader,
            Strategy::BottomUp
        ),
        Err(MemError::OutOfMemory {
            pages,
            max_addr: u64::MAX
        })
    );
    // Below 4 KiB nothing fits two pages.
    assert!(matches!(
        m.allocate(2, PAGE_SIZE, 0xfff, MemKind::Loader, Strategy::TopDown),
        Err(MemError::OutOfMemory { .. })
    ));
    // Alignment larger than any free region's aligned space.
    assert!(m
        .allocate(1, 1 << 40, u64::MAX, MemKind::Loader, Strategy::TopDown)
        .is_ok_and(|a| a == 0));
    assert!(matches!(
        m.allocate(1, 1 << 40, u64::MAX, MemKind::Loader, Strategy::TopDown),
        Err(MemError::OutOfMemory { .. })
    ));
    // Failures did not change anything except the one successful allocation.
    assert_eq!(m.kind_at(0), Some(MemKind::Loader));
    assert_eq!(m.total_free(), typical().total_free() - PAGE_SIZE);
}

#[test]
fn allocate_at_conflicts() {
    let mut m = typical();
    m.allocate_at(16 * MIB, 4, MemKind::Kernel).unwrap();
    assert_eq!(
        m.allocate_at(16 * MIB + PAGE_SIZE, 1, MemKind::Initrd),
        Err(MemError::NotFree {
            addr: 16 * MIB + PAGE_SIZE,
            pages: 1,
            found: Some(MemKind::Kernel)
        })
    );
    // Straddles free RAM and the ACPI tables.
    let addr = 2 * GIB - 0x20000 - PAGE_SIZE;
    assert_eq!(
        m.allocate_at(addr, 2, MemKind::Loader),
        Err(MemError::NotFree {
            addr,
            pages: 2,
            found: Some(MemKind::AcpiReclaim)
        })
    );
    // Runs off the end of RAM into a hole.
    assert_eq!(
        m.allocate_at(0x9e000, 2, MemKind::Loader),
        Err(MemError::NotFree {
            addr: 0x9e000,
            pages: 2,
            found: Some(MemKind::Reserved)
        })
    );
    assert_eq!(
        m.allocate_at(3 * GIB, 1, MemKind::Loader),
        Err(MemError::NotFree {
            addr: 3 * GIB,
            pages: 1,
            found: None
        })
    );
    assert_eq!(
        m.allocate_at(6 * GIB - PAGE_SIZE, 2, MemKind::Loader),
        Err(MemError::NotFree {
            addr: 6 * GIB - PAGE_SIZE,
            pages: 2,
            found: None
        })
    );
    assert_eq!(
        m.allocate_at(0x1234, 1, MemKind::Loader),
        Err(MemError::Unaligned { addr: 0x1234 })
    );
    assert_eq!(
        m.allocate_at(MAX_END - PAGE_SIZE, 2, MemKind::Loader),
        Err(MemError::TooLarge { pages: 2 })
    );
    // Exactly the last free page of a region is fine.
    m.allocate_at(6 * GIB - PAGE_SIZE, 1, MemKind::Loader)
        .unwrap();
    check_invariants(&m);
}

#[test]
fn free_round_trip_and_errors() {
    let pristine = typical();
    let mut m = typical();
    let a = m
        .allocate(
            8,
            PAGE_SIZE,
            4 * GIB - 1,
            MemKind::Initrd,
            Strategy::TopDown,
        )
        .unwrap();
    let b = m
        .allocate(
            4,
            PAGE_SIZE,
            4 * GIB - 1,
            MemKind::Loader,
            Strategy::TopDown,
        )
        .unwrap();
    assert_eq!(b + 4 * PAGE_SIZE, a);
    // Partial free splits an allocation.
    m.free(a + 2 * PAGE_SIZE, 2).unwrap();
    assert_eq!(m.kind_at(a + 2 * PAGE_SIZE), Some(MemKind::Free));
    assert_eq!(m.kind_at(a + PAGE_SIZE), Some(MemKind::Initrd));
    assert_eq!(m.kind_at(a + 4 * PAGE_SIZE), Some(MemKind::Initrd));
    // Double free.
    assert_eq!(
        m.free(a + 2 * PAGE_SIZE, 1),
        Err(MemError::NotAllocated {
            addr: a + 2 * PAGE_SIZE,
            pages: 1,
            found: Some(MemKind::Free)
        })
    );
    // Range that is partly freed.
    assert!(matches!(
        m.free(a, 4),
        Err(MemError::NotAllocated {
            found: Some(MemKind::Free),
            ..
        })
    ));
    // Platform memory.
    assert_eq!(
        m.free(2 * GIB - 0x20000, 1),
        Err(MemError::NotAllocated {
            addr: 2 * GIB - 0x20000,
            pages: 1,
            found: Some(MemKind::AcpiReclaim)
        })
    );
    // Outside the map.
    assert_eq!(
        m.free(3 * GIB, 1),
        Err(MemError::NotAllocated {
            addr: 3 * GIB,
            pages: 1,
            found: None
        })
    );
    assert_eq!(m.free(a + 1, 1), Err(MemError::Unaligned { addr: a + 1 }));
    assert_eq!(m.free(a, 0), Err(MemError::ZeroPages));
    // Freeing everything (spanning two kinds at once) restores the original map.
    m.free(a, 2).unwrap();
    m.free(b, 4).unwrap();
    m.free(a + 4 * PAGE_SIZE, 4).unwrap();
    assert_eq!(m.regions(), pristine.regions());
    let mut m2 = typical();
    m2.allocate_at(MIB, 1, MemKind::Kernel).unwrap();
    m2.allocate_at(MIB + PAGE_SIZE, 1, MemKind::Initrd).unwrap();
    m2.free(MIB, 2).unwrap();
    assert_eq!(m2.regions(), pristine.regions());
}

#[test]
fn to_e820_maps_and_merges() {
    let mut m = typical();
    m.allocate_at(MIB, 16, MemKind::Kernel).unwrap();
    m.allocate_at(32 * MIB, 1, MemKind::Allocated(7)).unwrap();
    m.allocate_at(0x9e000, 1, MemKind::FirmwareData).unwrap();
    m.add(0xfee00000, 0xfee01000, MemKind::Mmio).unwrap();
    m.add(0xfed00000, 0xfed01000, MemKind::AcpiNvs).unwrap();
    m.add(0x100_0000_0000, 0x100_0000_1000, MemKind::Unusable)
        .unwrap();
    let mut out = [E820Entry::default(); 16];
    let n = m.to_e820(&mut out);
    assert_eq!(n, m.e820_len());
    let got: Vec<(u64, u64, u32)> = out[..n]
        .iter()
        .map(|x| (x.addr.get(), x.size.get(), x.kind.get()))
        .collect();
    assert_eq!(
        got,
        [
            // Free + FirmwareData merge into one RAM entry.
            (0, 0x9f000, E820_RAM),
            // The reserved partial page and the BIOS area are separate ranges.
            (0x9f000, 0x1000, E820_RESERVED),
            (0xf0000, 0x10000, E820_RESERVED),
            // Kernel is reported as RAM and merges with the free RAM around it,
            // but the tagged allocation is reserved.
            (MIB, 31 * MIB, E820_RAM),
            (32 * MIB, PAGE_SIZE, E820_RESERVED),
            (
                32 * MIB + PAGE_SIZE,
                2 * GIB - 0x20000 - 32 * MIB - PAGE_SIZE,
                E820_RAM
            ),
            (2 * GIB - 0x20000, 0x20000, E820_ACPI),
            (0xfed00000, 0x1000, E820_NVS),
            (0xfee00000, 0x1000, E820_RESERVED),
            (0xfeffc000, 0x4000, E820_RESERVED),
            (4 * GIB, 2 * GIB, E820_RAM),
            (0x100_0000_0000, 0x1000, E820_UNUSABLE),
        ]
    );
    // A short buffer gets the lowest entries only.
    let mut short = [E820Entry::default(); 2];
    assert_eq!(m.to_e820(&mut short), 2);
    assert_eq!(short[1].addr.get(), 0x9f000);
}

#[test]
fn errors_display_actionable_messages() {
    use std::string::ToString;
    let msg = MemError::NotAllocated {
        addr: 0x1000,
        pages: 1,
        found: Some(MemKind::Free),
    }
    .to_string();
    assert!(
        msg.contains("0x1000") && msg.contains("double free"),
        "{msg}"
    );
    let msg = MemError::Full { capacity: 4 }.to_string();
    assert!(msg.contains('4'), "{msg}");
    let msg = MemError::NotFree {
        addr: 0x2000,
        pages: 3,
        found: Some(MemKind::Kernel),
    }
    .to_string();
    assert!(msg.contains("kernel") && msg.contains("0x2000"), "{msg}");
}

/// Deterministic pseudo-random hostile inputs: never panics, invariants hold.
#[test]
fn fuzz_like_inputs_keep_invariants() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..200 {
        let mut entries = Vec::new();
        for _ in 0..12 {
            let addr = match next() % 3 {
                0 => next(),
                1 => next() % (1 << 24),
                _ => u64::MAX - next() % 0x3000,
            };
            entries.push(e(addr, next() % (1 << 22), (next() % 7) as u32));
        }
        if let Ok(mut m) = MemoryMap::<16>::from_e820(&entries) {
            check_invariants(&m);
            let free_before = m.total_free();
            if let Ok(a) = m.allocate(1, PAGE_SIZE, u64::MAX, MemKind::Loader, Strategy::TopDown) {
                assert_eq!(m.total_free(), free_before - PAGE_SIZE);
                check_invariants(&m);
                m.free(a, 1).unwrap();
                assert_eq!(m.total_free(), free_before);
            }
            check_invariants(&m);
        }
    }
}
