//! The memory map from hostile E820 / PVH tables, then allocate/free/add
//! sequences driven by the input, checking `MemoryMap`'s documented
//! invariants after every step: regions sorted, non-overlapping, non-empty,
//! page aligned, touching same-kind regions merged; failed operations leave
//! the map unchanged; allocations land where they were asked to.
#![no_main]

use ember_fuzz::Bytes;
use ember_mem::{
    E820Entry, HvmMemmapEntry, MemKind, MemoryMap, Region, Strategy, MAX_END, PAGE_SIZE,
};
use libfuzzer_sys::fuzz_target;

/// Small on purpose so `Full` paths are reachable.
const CAP: usize = 12;
type Map = MemoryMap<CAP>;

fn check(map: &Map) {
    let rs = map.regions();
    assert!(rs.len() <= CAP);
    for r in rs {
        assert!(r.start < r.end, "empty region {r:?}");
        assert!(
            r.start % PAGE_SIZE == 0 && r.end % PAGE_SIZE == 0,
            "unaligned {r:?}"
        );
        assert!(r.end <= MAX_END, "region past MAX_END {r:?}");
    }
    for w in rs.windows(2) {
        assert!(
            w[0].end <= w[1].start,
            "unsorted or overlapping {:?} {:?}",
            w[0],
            w[1]
        );
        assert!(
            !(w[0].end == w[1].start && w[0].kind == w[1].kind),
            "touching regions of one kind not merged {:?} {:?}",
            w[0],
            w[1]
        );
    }
    let mut out = [E820Entry::default(); CAP];
    let n = map.to_e820(&mut out);
    assert_eq!(n, map.e820_len());
    for w in out[..n].windows(2) {
        assert!(
            w[0].addr.get() + w[0].size.get() <= w[1].addr.get(),
            "e820 out of order"
        );
    }
}

fn covered(rs: &[Region]) -> u64 {
    rs.iter().map(|r| r.len()).sum()
}

/// Every byte of `[start, end)` had kind `want` in `rs`.
fn all_of(rs: &[Region], start: u64, end: u64, want: impl Fn(MemKind) -> bool) -> bool {
    let mut cur = start;
    for r in rs.iter().filter(|r| r.end > start && r.start < end) {
        if r.start > cur || !want(r.kind) {
            return false;
        }
        cur = r.end;
    }
    cur >= end
}

fn kind(b: u8) -> MemKind {
    match b % 10 {
        0 => MemKind::Free,
        1 => MemKind::Reserved,
        2 => MemKind::Kernel,
        3 => MemKind::Initrd,
        4 => MemKind::Loader,
        5 => MemKind::Firmware,
        6 => MemKind::Mmio,
        7 => MemKind::AcpiNvs,
        8 => MemKind::BootParams,
        _ => MemKind::Allocated(u32::from(b)),
    }
}

/// An address: either raw, or near a region boundary of the current map.
fn addr(r: &mut Bytes, map: &Map) -> u64 {
    let sel = r.u8();
    if sel & 1 == 0 || map.regions().is_empty() {
        return r.u64();
    }
    let reg = map.regions()[usize::from(sel >> 1) % map.regions().len()];
    let delta = u64::from(r.u16()) * PAGE_SIZE;
    if sel & 0x80 == 0 {
        reg.start.wrapping_add(delta)
    } else {
        reg.end.wrapping_sub(delta)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = Bytes(data);
    let head = r.u8();
    let count = usize::from(head & 0x1f);
    let built = if head & 0x20 == 0 {
        let e: Vec<E820Entry> = (0..count)
            .map(|_| E820Entry::new(r.u64(), r.u64(), r.u32()))
            .collect();
        Map::from_e820(&e)
    } else {
        let e: Vec<HvmMemmapEntry> = (0..count)
            .map(|_| HvmMemmapEntry::new(r.u64(), r.u64(), r.u32()))
            .collect();
        Map::from_hvm_memmap(&e)
    };
    let Ok(mut map) = built else {
        return;
    };
    check(&map);
    let mut steps = 0;
    while !r.is_empty() && steps < 64 {
        steps += 1;
        let before = map.clone();
        let op = r.u8();
        let pages = u64::from(r.u16()) | if op & 0x80 != 0 { r.u64() } else { 0 };
        let result: Result<(), ember_mem::MemError> = match op % 5 {
            0 | 1 => {
                let align = if op & 0x40 != 0 {
                    r.u64()
                } else {
                    1u64 << (r.u8() % 40)
                };
                let min = if op % 5 == 1 { addr(&mut r, &map) } else { 0 };
                let max = if r.u8() & 1 == 0 {
                    u64::MAX
                } else {
                    addr(&mut r, &map)
                };
                let k = kind(r.u8());
                let strat = if op & 0x20 != 0 {
                    Strategy::TopDown
                } else {
                    Strategy::BottomUp
                };
                map.allocate_in_range(pages, align, min, max, k, strat).map(|base| {
                    let size = pages * PAGE_SIZE;
                    assert!(base % align.max(PAGE_SIZE) == 0, "misaligned allocation {base:#x}");
                    assert!(base >= min && base + size - 1 <= max, "allocation out of bounds");
                    assert!(all_of(before.regions(), base, base + size, |k| k == MemKind::Free));
                    assert!(all_of(map.regions(), base, base + size, |x| x == k));
                })
            }
            2 => {
                let a = addr(&mut r, &map);
                let k = kind(r.u8());
                map.allocate_at(a, pages, k).map(|()| {
                    assert!(all_of(map.regions(), a, a + pages * PAGE_SIZE, |x| x == k));
                })
            }
            3 => {
                let a = addr(&mut r, &map);
                map.free(a, pages).map(|()| {
                    assert!(all_of(
                        before.regions(),
                        a,
                        a + pages * PAGE_SIZE,
                        MemKind::is_allocated
                    ));
                    assert!(all_of(map.regions(), a, a + pages * PAGE_SIZE, |k| k
                        == MemKind::Free));
                })
            }
            _ => {
                let (s, e) = (addr(&mut r, &map), addr(&mut r, &map));
                map.add(s, e, kind(r.u8()))
            }
        };
        check(&map);
        match result {
            // allocate/free repaint memory that was in the map: coverage is unchanged.
            Ok(()) if op % 5 != 4 => assert_eq!(covered(before.regions()), covered(map.regions())),
            Ok(()) => {}
            Err(e) => assert_eq!(
                before.regions(),
                map.regions(),
                "failed {e:?} changed the map"
            ),
        }
    }
});
