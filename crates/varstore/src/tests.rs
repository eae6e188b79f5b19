//! Functional, format and corruption tests. The crash sweeps are in
//! `crash_tests.rs`.

use std::collections::BTreeMap;
use std::format;
use std::string::ToString;
use std::vec;
use std::vec::Vec;

use super::*;
use crate::format::{BankHeader, CRC32};
use crate::sim::{Fault, SimFlash};

/// Small volume: 8 blocks, two banks of 16 KiB.
pub(crate) const SMALL_LEN: u32 = 8 * BLOCK_SIZE;
pub(crate) const SMALL: Config = Config {
    max_variable_size: 2048,
};

pub(crate) type Key = ([u8; 16], Vec<u16>);
pub(crate) type Model = BTreeMap<Key, Variable>;

pub(crate) fn guid(n: u8) -> [u8; 16] {
    let mut g = [0x5a; 16];
    g[0] = n;
    g[15] = n.wrapping_mul(7);
    g
}

pub(crate) fn name(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

pub(crate) fn var(attributes: u32, data: &[u8]) -> Variable {
    Variable {
        attributes,
        timestamp: [0; 16],
        data: data.to_vec(),
    }
}

pub(crate) fn contents<F: Flash>(s: &Store<F>) -> Model {
    s.iter()
        .map(|(g, n, v)| ((*g, n.to_vec()), v.clone()))
        .collect()
}

/// Deterministic pseudo-random bytes.
pub(crate) struct Rng(pub u64);
impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn open(flash: SimFlash, cfg: Config) -> (Store<SimFlash>, OpenReport) {
    Store::open(flash, cfg).expect("open")
}

/// Power-cycle the store's flash and open it again.
pub(crate) fn reboot(s: Store<SimFlash>) -> (Store<SimFlash>, OpenReport) {
    let cfg = *s.config();
    let mut f = s.into_flash();
    f.power_cycle();
    open(f, cfg)
}

fn small_store() -> Store<SimFlash> {
    open(SimFlash::blank(SMALL_LEN), SMALL).0
}

// --- formatting ---------------------------------------------------------

#[test]
fn blank_volume_is_formatted() {
    let (s, rep) = open(SimFlash::blank(STANDARD_VOLUME_LEN), Config::default());
    assert_eq!(rep.formatted, Some(FormatReason::Blank));
    assert_eq!((rep.active_bank, rep.generation, rep.variables), (0, 1, 0));
    assert!(s.is_empty());
    // Fresh 0xFF needs no erase: just the two header copies.
    assert_eq!((s.flash().erases(), s.flash().programs()), (0, 2));
    assert_eq!(&s.flash().image()[..8], b"EmberVar");
    let u = s.usage();
    assert_eq!(u.total, STANDARD_VOLUME_LEN / 2 - 128);
    assert_eq!((u.used, u.remaining), (0, u.total));
    let (s, rep) = reboot(s);
    assert!(rep.is_clean(), "{rep}");
    assert_eq!(s.generation(), 1);
}

#[test]
fn foreign_content_is_reformatted_and_reported() {
    let mut rng = Rng(7);
    let image = rng.bytes(SMALL_LEN as usize);
    let (mut s, rep) = open(SimFlash::from_image(image), SMALL);
    assert_eq!(
        rep.formatted,
        Some(FormatReason::Foreign {
            bank0: BankProblem::BadMagic,
            bank1: BankProblem::BadMagic
        })
    );
    assert!(rep.to_string().contains("REFORMATTED"), "{rep}");
    assert!(s.is_empty());
    // Both banks were erased (the second after the commit).
    assert_eq!(s.flash().erases(), 8);
    s.set(&guid(1), &name("A"), 7, b"x").unwrap();
    let (s, rep) = reboot(s);
    assert!(rep.is_clean(), "{rep}");
    assert_eq!(s.get(&guid(1), &name("A")), Some(&var(7, b"x")));
    assert_eq!(s.flash().violations(), 0);
}

#[test]
fn ovmf_like_and_zeroed_volumes_are_foreign() {
    // An OVMF_VARS-style firmware volume header, and an all-zero file.
    let mut ovmf = vec![0u8; SMALL_LEN as usize];
    ovmf[0x28..0x2c].copy_from_slice(b"_FVH");
    for image in [ovmf, vec![0u8; SMALL_LEN as usize]] {
        let (mut s, rep) = open(SimFlash::from_image(image), SMALL);
        assert!(
            matches!(rep.formatted, Some(FormatReason::Foreign { .. })),
            "{rep}"
        );
        s.set(&guid(2), &name("B"), 1, b"yy").unwrap();
        let (s, rep) = reboot(s);
        assert!(rep.is_clean(), "{rep}");
        assert_eq!(s.len(), 1);
        assert_eq!(s.flash().violations(), 0);
    }
}

#[test]
fn other_geometry_or_version_is_foreign() {
    // A store made for an 8-block volume, found at the start of 16 blocks.
    let mut s = small_store();
    s.set(&guid(1), &name("A"), 1, b"a").unwrap();
    let mut image = s.into_flash().into_image();
    image.resize(2 * SMALL_LEN as usize, 0xFF);
    let (_, rep) = open(SimFlash::from_image(image), SMALL);
    assert_eq!(
        rep.formatted,
        Some(FormatReason::Foreign {
            bank0: BankProblem::WrongGeometry {
                block_size: BLOCK_SIZE,
                bank_blocks: 4,
                bank_index: 0
            },
            bank1: BankProblem::Blank
        })
    );

    // A future layout version.
    let mut image = small_store().into_flash().into_image();
    let mut h = BankHeader::new(0, 4, 1, 1);
    h.version.set(2);
    h.crc.set(CRC32.checksum(&h.as_bytes()[..60]));
    image[..64].copy_from_slice(h.as_bytes());
    image[64..128].copy_from_slice(h.as_bytes());
    let (_, rep) = open(SimFlash::from_image(image), SMALL);
    assert_eq!(
        rep.formatted,
        Some(FormatReason::Foreign {
            bank0: BankProblem::UnsupportedVersion(2),
            bank1: BankProblem::Blank
        })
    );
}

#[test]
fn geometry_and_config_errors() {
    let e = Store::open(SimFlash::blank(SMALL_LEN + 512), SMALL).unwrap_err();
    assert!(matches!(e, StoreError::Geometry { len, .. } if len == SMALL_LEN + 512));
    assert!(e.to_string().contains("4 KiB"), "{e}");
    let e = Store::open(SimFlash::blank(BLOCK_SIZE), SMALL).unwrap_err();
    assert!(matches!(e, StoreError::Geometry { .. }));
    let e = Store::open(SimFlash::blank(0), SMALL).unwrap_err();
    assert!(matches!(e, StoreError::Geometry { .. }));
    // Two blocks: one-block banks hold at most 4096 - 128 - 64 bytes.
    let limit = BLOCK_SIZE - 128 - 64;
    let ok = Config {
        max_variable_size: limit,
    };
    let (mut s, _) = open(SimFlash::blank(2 * BLOCK_SIZE), ok);
    s.set(&guid(1), &[], 0, &vec![1; limit as usize]).unwrap();
    assert_eq!(s.usage().remaining, 0);
    for bad in [0, limit + 1] {
        let e = Store::open(
            SimFlash::blank(2 * BLOCK_SIZE),
            Config {
                max_variable_size: bad,
            },
        )
        .unwrap_err();
        assert_eq!(
            e,
            StoreError::Config {
                max_variable_size: bad,
                limit
            }
        );
        assert!(e.to_string().contains(&limit.to_string()));
    }
}

// --- basic operations ---------------------------------------------------

#[test]
fn set_get_delete_persist() {
    let mut s = small_store();
    let (g1, g2) = (guid(1), guid(2));
    s.set(&g1, &name("Boot0000"), 7, b"first").unwrap();
    s.set(&g1, &name("BootOrder"), 7, &[0, 0]).unwrap();
    s.set(&g2, &name("Empty"), 3, b"").unwrap();
    s.set(&g1, &name("Boot0000"), 6, b"second, longer").unwrap();
    assert!(s.delete(&g1, &name("BootOrder")).unwrap());
    assert!(!s.delete(&g1, &name("BootOrder")).unwrap());
    assert!(!s.delete(&guid(9), &name("x")).unwrap());
    let want: Model = [
        ((g1, name("Boot0000")), var(6, b"second, longer")),
        ((g2, name("Empty")), var(3, b"")),
    ]
    .into_iter()
    .collect();
    assert_eq!(contents(&s), want);
    assert_eq!(s.len(), 2);
    let (s, rep) = reboot(s);
    assert!(rep.is_clean(), "{rep}");
    assert_eq!(rep.variables, 2);
    assert_eq!(contents(&s), want);
    assert_eq!(s.get(&g1, &name("BootOrder")), None);
    assert_eq!(s.flash().violations(), 0);
}

#[test]
fn timestamp_is_stored() {
    let mut s = small_store();
    let ts = [9u8; 16];
    s.set_with_timestamp(&guid(1), &name("db"), 0x27, &ts, b"sig")
        .unwrap();
    let (s, _) = reboot(s);
    let v = s.get(&guid(1), &name("db")).unwrap();
    assert_eq!(
        (v.attributes, v.timestamp, &v.data[..]),
        (0x27, ts, &b"sig"[..])
    );
}

#[test]
fn identical_write_costs_nothing() {
    let mut s = small_store();
    s.set(&guid(1), &name("A"), 1, b"same").unwrap();
    let ops = s.flash().ops();
    s.set(&guid(1), &name("A"), 1, b"same").unwrap();
    assert_eq!(s.flash().ops(), ops);
    s.set(&guid(1), &name("A"), 2, b"same").unwrap();
    assert_eq!(s.flash().ops(), ops + 1);
}

#[test]
fn iteration_and_next_name_order() {
    let mut s = small_store();
    let keys = [
        (guid(2), name("b")),
        (guid(1), name("zz")),
        (guid(2), name("a")),
        (guid(1), name("a")),
        (guid(3), name("")),
    ];
    for (i, (g, n)) in keys.iter().enumerate() {
        s.set(g, n, 0, &[i as u8]).unwrap();
    }
    let mut sorted = keys.to_vec();
    sorted.sort();
    let order: Vec<Key> = s.iter().map(|(g, n, _)| (*g, n.to_vec())).collect();
    assert_eq!(order, sorted);
    // Walk with next_name like GetNextVariableName.
    let mut walked = Vec::new();
    let mut cur = s.next_name(None).unwrap().map(|(g, n)| (*g, n.to_vec()));
    while let Some(k) = cur {
        walked.push(k.clone());
        cur = s
            .next_name(Some((&k.0, &k.1)))
            .unwrap()
            .map(|(g, n)| (*g, n.to_vec()));
    }
    assert_eq!(walked, sorted);
    assert_eq!(
        s.next_name(Some((&guid(1), &name("b")))),
        Err(StoreError::NotFound)
    );
    assert_eq!(
        s.next_name(Some((&guid(4), &name("a")))),
        Err(StoreError::NotFound)
    );
    let empty = small_store();
    assert_eq!(empty.next_name(None), Ok(None));
}

#[test]
fn limits_full_and_usage() {
    let mut s = small_store();
    let g = guid(1);
    // name 2 bytes + data: exactly the limit is fine, one more is not.
    s.set(&g, &name("a"), 0, &[1; 2046]).unwrap();
    let e = s.set(&g, &name("a"), 0, &[1; 2047]).unwrap_err();
    assert_eq!(
        e,
        StoreError::TooLarge {
            size: 2049,
            max: 2048
        }
    );
    let long = vec![0x41u16; 70_000];
    assert!(matches!(
        s.set(&g, &long, 0, b""),
        Err(StoreError::TooLarge { .. })
    ));
    // Fill the bank: 16256 bytes of record space, 2112-byte records.
    let mut n = 1u16;
    let err = loop {
        match s.set(&g, &[n], 0, &[n as u8; 2046]) {
            Ok(()) => n += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(record_size(1, 2046), 2112);
    assert_eq!(n, 7, "7 records of 2112 bytes fit 16256");
    let used = 7 * 2112;
    assert_eq!(
        err,
        StoreError::Full {
            needed: 2112,
            remaining: u64::from(16256 - used)
        }
    );
    assert!(err.to_string().contains("full"));
    let u = s.usage();
    assert_eq!((u.total, u.used, u.remaining), (16256, used, 16256 - used));
    assert_eq!(u.max_variable_size, 2048);
    // Full is not a flash error, and nothing changed.
    let before = contents(&s);
    let (s2, rep) = reboot(s.clone());
    assert!(rep.is_clean(), "{rep}");
    assert_eq!(contents(&s2), before);
    // Replacing in place still works when the new value fits the freed space.
    s.set(&g, &[1], 0, &[9; 2000]).unwrap();
    // Deleting frees space; what fits then is exactly `remaining`.
    assert!(s.delete(&g, &[2]).unwrap());
    let rem = s.usage().remaining as usize;
    let data = rem - 64 - 2;
    s.set(&g, &[100], 0, &vec![5; data.min(2046)]).unwrap();
    let (s, rep) = reboot(s);
    assert!(!rep.repairs.compacted, "{rep}");
    assert_eq!(s.get(&g, &[1]).unwrap().data, vec![9; 2000]);
    assert_eq!(s.flash().violations(), 0);
}

#[test]
fn compaction_when_log_fills() {
    let mut s = small_store();
    s.set(&guid(1), &name("keep"), 1, b"kept").unwrap();
    let mut last = Vec::new();
    for i in 0..100u32 {
        last = vec![i as u8; 500 + (i as usize % 7) * 100];
        s.set(&guid(2), &name("churn"), 2, &last).unwrap();
    }
    // 100 writes of ~800 bytes through 16 KiB banks: many compactions.
    assert!(s.generation() > 4, "generation {}", s.generation());
    let (s, rep) = reboot(s);
    assert!(rep.is_clean(), "{rep}");
    assert_eq!(s.get(&guid(1), &name("keep")), Some(&var(1, b"kept")));
    assert_eq!(s.get(&guid(2), &name("churn")), Some(&var(2, &last)));
    assert_eq!(s.flash().violations(), 0);
    // The spare was erased after each compaction.
    let spare = usize::from(1 - rep.active_bank) * (SMALL_LEN as usize / 2);
    let image = s.flash().image();
    assert!(image[spare..spare + SMALL_LEN as usize / 2]
        .iter()
        .all(|&b| b == 0xFF));
}

#[test]
fn explicit_compaction_bumps_generation_and_keeps_data() {
    let mut s = small_store();
    s.set(&guid(1), &name("A"), 1, b"one").unwrap();
    s.set(&guid(1), &name("A"), 1, b"two").unwrap();
    s.delete(&guid(1), &name("A")).unwrap();
    s.set(&guid(1), &name("B"), 1, b"three").unwrap();
    let g = s.generation();
    s.compact().unwrap();
    assert_eq!(s.generation(), g + 1);
    let used = s.usage().used;
    let (s, rep) = reboot(s);
    assert!(rep.is_clean(), "{rep}");
    assert_eq!(rep.active_bank, 1);
    assert_eq!(s.usage().used, used);
    assert_eq!(s.len(), 1);
    assert_eq!(s.get(&guid(1), &name("B")), Some(&var(1, b"three")));
}

// --- device errors that are not power cuts -------------------------------

#[test]
fn device_errors_leave_old_or_new_and_store_keeps_working() {
    // Fail each operation of a set-that-compacts in turn, torn and not.
    let mut base = small_store();
    for i in 0..6u8 {
        base.set(&guid(i), &name("v"), 0, &[i; 1500]).unwrap();
    }
    for i in 0..6u8 {
        base.set(&guid(i), &name("v"), 0, &[i + 1; 1500]).unwrap();
    }
    // Churn another variable until the probe write has to compact.
    let mut churn = 0u8;
    let (ops0, n) = loop {
        let mut probe = base.clone();
        let ops0 = probe.flash().ops();
        probe.set(&guid(0), &name("v"), 0, &[0xEE; 1500]).unwrap();
        let n = probe.flash().ops() - ops0;
        if n > 5 {
            break (ops0, n);
        }
        churn += 1;
        base.set(&guid(6), &name("churn"), 0, &[churn; 700])
            .unwrap();
    };
    let old = var(0, &[1; 1500]);
    let new = var(0, &[0xEE; 1500]);
    for k in 0..n {
        for torn in [false, true] {
            let mut s = base.clone();
            s.flash_mut().arm(Fault {
                at_op: ops0 + k,
                torn,
                power_loss: false,
                seed: k,
            });
            let r = s.set(&guid(0), &name("v"), 0, &[0xEE; 1500]);
            let got = s.get(&guid(0), &name("v")).cloned().unwrap();
            assert!(got == old || got == new, "op {k} torn {torn}: {r:?}");
            // Keeps working, and what it says is what the flash holds.
            s.set(&guid(7), &name("after"), 0, b"ok").unwrap();
            let expect = contents(&s);
            let (s, _) = reboot(s);
            assert_eq!(contents(&s), expect, "op {k} torn {torn}");
            let (s, rep) = reboot(s);
            assert!(rep.is_clean(), "op {k} torn {torn}: {rep}");
            assert_eq!(s.flash().violations(), 0);
        }
    }
}

// --- recovery of specific states -----------------------------------------

#[test]
fn torn_tail_record_is_dropped_and_repaired() {
    let mut s = small_store();
    s.set(&guid(1), &name("A"), 1, b"old").unwrap();
    // The header and part of the data of an update landed, then power went.
    let mut rec = Vec::new();
    let new = var(1, &[7; 300]);
    format::encode_record(&mut rec, &guid(1), &name("A"), Some(&new), s.next_seq);
    let at = s.append;
    s.flash_mut().program(at, &rec[..100]).unwrap();
    let (s, rep) = reboot(s);
    assert_eq!(s.get(&guid(1), &name("A")), Some(&var(1, b"old")));
    assert_eq!(rep.dropped_records, 1, "{rep}");
    assert!(rep.repairs.compacted, "{rep}");
    // The complete record is taken.
    let mut s = s;
    let at = s.geo.base(s.active) + s.append;
    let mut rec = Vec::new();
    format::encode_record(&mut rec, &guid(1), &name("A"), Some(&new), s.next_seq);
    s.flash_mut().program(at, &rec).unwrap();
    let (s, rep) = reboot(s);
    assert!(rep.is_clean(), "{rep}");
    assert_eq!(s.get(&guid(1), &name("A")), Some(&new));
}

#[test]
fn damaged_record_is_skipped_and_later_records_survive() {
    let mut s = small_store();
    s.set(&guid(1), &name("A"), 1, b"a-old").unwrap();
    s.set(&guid(2), &name("B"), 1, b"b").unwrap(); // at 128 + 80
    s.set(&guid(1), &name("A"), 1, b"a-new").unwrap();
    s.set(&guid(3), &name("C"), 1, b"c").unwrap();
    let mut f = s.into_flash();
    // Each record is 72 bytes; hit B's data and A's newest header.
    let r = record_size(1, 5) as usize;
    assert_eq!((r, record_size(1, 1)), (72, 72));
    let b_data = 128 + r + 64 + 2;
    f.image_mut()[b_data] ^= 0x10;
    let a_new = 128 + 2 * r + 8;
    f.image_mut()[a_new] ^= 0x01;
    let (s, rep) = open(f, SMALL);
    assert_eq!(rep.dropped_records, 1, "{rep}");
    assert_eq!(rep.unparseable_regions, 1, "{rep}");
    assert!(rep.repairs.compacted);
    assert!(rep
        .issues
        .iter()
        .any(|i| matches!(i.kind, IssueKind::DamagedRecord { sequence: 2 }) && i.offset == 200));
    // B is gone, A fell back to its previous record, C is intact.
    assert_eq!(s.get(&guid(2), &name("B")), None);
    assert_eq!(s.get(&guid(1), &name("A")), Some(&var(1, b"a-old")));
    assert_eq!(s.get(&guid(3), &name("C")), Some(&var(1, b"c")));
    let (_, rep) = reboot(s);
    assert!(rep.is_clean(), "{rep}");
}

#[test]
fn damaged_header_copies_are_repaired() {
    let mut s = small_store();
    s.set(&guid(1), &name("A"), 1, b"a").unwrap();
    let image = s.into_flash().into_image();

    // Copy 1 erased (as after a cut between the two header programs):
    // rewritten in place.
    let mut img = image.clone();
    img[64..128].fill(0xFF);
    let (s, rep) = open(SimFlash::from_image(img), SMALL);
    assert!(
        rep.repairs.header_rewritten && !rep.repairs.compacted,
        "{rep}"
    );
    assert!(rep.issues.iter().any(|i| i.kind
        == IssueKind::HeaderCopy {
            copy: 1,
            problem: BankProblem::Blank
        }));
    assert_eq!(s.len(), 1);
    let (s, rep) = reboot(s);
    assert!(rep.is_clean(), "{rep}");
    assert_eq!(s.flash().image(), &image[..]);

    // A 0 turned into 1 in copy 0: can be reprogrammed.
    let mut img = image.clone();
    let byte = img[..60]
        .iter()
        .position(|&b| b != 0xFF && b & 1 == 0)
        .unwrap();
    img[byte] |= 1;
    let (s, rep) = open(SimFlash::from_image(img), SMALL);
    assert!(rep.repairs.header_rewritten, "{rep}");
    assert_eq!(s.flash().image(), &image[..]);

    // A 1 turned into 0: needs a fresh bank.
    let mut img = image.clone();
    let byte = img[..60].iter().position(|&b| b & 1 == 1).unwrap();
    img[byte] &= !1;
    let (s, rep) = open(SimFlash::from_image(img), SMALL);
    assert!(rep.repairs.compacted, "{rep}");
    assert_eq!(s.get(&guid(1), &name("A")), Some(&var(1, b"a")));
    let (_, rep) = reboot(s);
    assert!(rep.is_clean(), "{rep}");

    // Both copies destroyed: the bank is lost and the volume reformatted.
    let mut img = image;
    img[10] ^= 0xFF;
    img[74] ^= 0xFF;
    let (s, rep) = open(SimFlash::from_image(img), SMALL);
    assert!(
        matches!(
            rep.formatted,
            Some(FormatReason::Foreign {
                bank0: BankProblem::BadChecksum,
                ..
            })
        ),
        "{rep}"
    );
    assert!(s.is_empty());
}

#[test]
fn interrupted_old_bank_erase_is_finished() {
    let mut s = small_store();
    s.set(&guid(1), &name("A"), 1, b"a").unwrap();
    // Cut before the first erase of the old bank (the last 4 operations).
    let at = cut_before_old_bank_erase(&s);
    s.flash_mut().arm(Fault {
        at_op: at,
        torn: false,
        power_loss: true,
        seed: 0,
    });
    s.compact().unwrap();
    assert!(s.flash().is_dead());
    let (s, rep) = reboot(s);
    assert_eq!((rep.active_bank, rep.generation), (1, 2));
    assert_eq!(
        rep.issues,
        vec![Issue {
            bank: 0,
            offset: 0,
            kind: IssueKind::StaleBank { generation: 1 }
        }]
    );
    assert!(rep.repairs.spare_erased && !rep.repairs.compacted);
    assert_eq!(s.get(&guid(1), &name("A")), Some(&var(1, b"a")));
    let (_, rep) = reboot(s);
    assert!(rep.is_clean(), "{rep}");
}

/// The operation index of a compaction's first erase of the old bank.
fn cut_before_old_bank_erase(s: &Store<SimFlash>) -> u64 {
    let mut probe = s.clone();
    probe.compact().unwrap();
    probe.flash().ops() - u64::from(s.geo.bank_blocks)
}

/// Replace both header copies of `bank` in `image`.
fn put_header(image: &mut [u8], bank: u8, bank_blocks: u32, generation: u64, next_seq: u64) {
    let h = BankHeader::new(bank, bank_blocks, generation, next_seq);
    let base = usize::from(bank) * (bank_blocks * BLOCK_SIZE) as usize;
    image[base..base + 64].copy_from_slice(h.as_bytes());
    image[base + 64..base + 128].copy_from_slice(h.as_bytes());
}

#[test]
fn equal_generations_pick_bank_zero() {
    let mut s = small_store();
    s.set(&guid(1), &name("A"), 1, b"a").unwrap();
    let mut img = s.into_flash().into_image();
    put_header(&mut img, 1, 4, 1, 1);
    let (s, rep) = open(SimFlash::from_image(img), SMALL);
    assert_eq!(rep.active_bank, 0);
    assert!(rep
        .issues
        .iter()
        .any(|i| i.kind == IssueKind::SameGeneration { generation: 1 }));
    assert!(rep.repairs.spare_erased);
    assert_eq!(s.len(), 1);
}

#[test]
fn generation_wraps() {
    let mut s = small_store();
    s.set(&guid(1), &name("A"), 1, b"a").unwrap();
    let mut img = s.into_flash().into_image();
    put_header(&mut img, 0, 4, u64::MAX, 5);
    let (mut s, rep) = open(SimFlash::from_image(img), SMALL);
    assert!(rep.is_clean(), "{rep}");
    assert_eq!(s.generation(), u64::MAX);
    // Leave the old bank in place so both are valid: 0 must beat u64::MAX.
    let at = cut_before_old_bank_erase(&s);
    s.flash_mut().arm(Fault {
        at_op: at,
        torn: false,
        power_loss: true,
        seed: 0,
    });
    s.compact().unwrap();
    let (s, rep) = reboot(s);
    assert_eq!((rep.active_bank, rep.generation), (1, 0), "{rep}");
    assert_eq!(s.get(&guid(1), &name("A")), Some(&var(1, b"a")));
}

#[test]
fn exhausted_sequence_numbers_are_renumbered() {
    let mut img = small_store().into_flash().into_image();
    let mut rec = Vec::new();
    format::encode_record(
        &mut rec,
        &guid(1),
        &name("A"),
        Some(&var(1, b"x")),
        u64::MAX - 1,
    );
    img[128..128 + rec.len()].copy_from_slice(&rec);
    let (mut s, rep) = open(SimFlash::from_image(img), SMALL);
    assert!(rep
        .issues
        .iter()
        .any(|i| i.kind == IssueKind::SequenceExhausted));
    assert!(rep.repairs.compacted, "{rep}");
    s.set(&guid(1), &name("A"), 1, b"y").unwrap();
    s.set(&guid(1), &name("B"), 1, b"z").unwrap();
    let (s, rep) = reboot(s);
    assert!(rep.is_clean(), "{rep}");
    assert_eq!(s.get(&guid(1), &name("A")), Some(&var(1, b"y")));
    assert_eq!(s.len(), 2);
}

#[test]
fn hostile_record_lengths_are_skipped() {
    let mut img = small_store().into_flash().into_image();
    // A record whose CRC-valid header claims data past the bank end.
    let mut rec = Vec::new();
    format::encode_record(&mut rec, &guid(1), &name("A"), Some(&var(1, b"x")), 1);
    let mut h = format::RecordHeader::read_from_bytes(&rec[..64]).unwrap();
    h.data_len.set(u32::MAX);
    h.header_crc.set(
        CRC32.checksum(&h.as_bytes()[..core::mem::offset_of!(format::RecordHeader, header_crc)]),
    );
    img[128..192].copy_from_slice(h.as_bytes());
    // Followed by a good record.
    let mut good = Vec::new();
    format::encode_record(&mut good, &guid(2), &name("B"), Some(&var(2, b"y")), 2);
    img[256..256 + good.len()].copy_from_slice(&good);
    let (s, rep) = open(SimFlash::from_image(img), SMALL);
    assert_eq!(
        (rep.unparseable_regions, rep.unparseable_bytes),
        (1, 64),
        "{rep}"
    );
    assert_eq!(contents(&s).len(), 1);
    assert_eq!(s.get(&guid(2), &name("B")), Some(&var(2, b"y")));
}

#[test]
fn report_display_names_the_problems() {
    let mut s = small_store();
    s.set(&guid(1), &name("A"), 1, b"a").unwrap();
    let mut f = s.into_flash();
    f.image_mut()[128 + 66] ^= 1;
    f.image_mut()[2000] = 0;
    let (_, rep) = open(f, SMALL);
    let text = rep.to_string();
    for want in [
        "1 damaged records dropped",
        "unparseable",
        "compacted",
        "offset 0x80",
        "offset 0x7d0",
    ] {
        assert!(text.contains(want), "{want:?} missing in {text}");
    }
}

use zerocopy::FromBytes;

// --- random corruption ---------------------------------------------------

/// Where each live record of the active bank sits: key -> byte range of
/// header + name + data (what the CRCs cover).
fn record_extents(
    image: &[u8],
    bank_base: usize,
    bank_len: usize,
) -> BTreeMap<Key, (usize, usize)> {
    let bank = &image[bank_base..bank_base + bank_len];
    let mut out = BTreeMap::new();
    let mut off = 128;
    while let format::Parsed::Valid { record, extent } = format::parse_record(&bank[off..]) {
        let len = 64 + record.name.len() + record.data.len();
        out.insert(
            (record.header.guid, record.name_units()),
            (bank_base + off, bank_base + off + len),
        );
        off += extent as usize;
    }
    out
}

fn corruption_round(len: u32, cfg: Config, seed: u64, max_flips: u64) {
    let mut rng = Rng(seed);
    let mut s = open(SimFlash::blank(len), cfg).0;
    let nvars = 3 + rng.below(12) as u8;
    for i in 0..nvars {
        let n = rng.below(u64::from(cfg.max_variable_size) / 2) as usize;
        s.set(
            &guid(i % 4),
            &name(&format!("V{i}")),
            u32::from(i),
            &rng.bytes(n),
        )
        .unwrap();
    }
    // One record per variable, so a damaged record cannot fall back.
    s.compact().unwrap();
    let before = contents(&s);
    let active = usize::from(s.active);
    let bank_len = s.geo.bank_len as usize;
    let mut f = s.into_flash();
    let extents = record_extents(f.image(), active * bank_len, bank_len);
    assert_eq!(extents.len(), before.len());
    // End of the last record including its padding.
    let used_end = extents
        .values()
        .map(|e| format::align_up(e.1 as u64) as usize)
        .max()
        .unwrap_or(active * bank_len + 128);
    let flips = 1 + rng.below(max_flips);
    let mut hit = Vec::new();
    while (hit.len() as u64) < flips {
        // Mostly inside the used part of the active bank, sometimes anywhere.
        let at = if rng.below(4) == 0 {
            rng.below(u64::from(len)) as usize
        } else {
            active * bank_len + rng.below(used_end as u64 - (active * bank_len) as u64) as usize
        };
        // Distinct bytes, so two flips cannot cancel out.
        if hit.contains(&at) {
            continue;
        }
        f.image_mut()[at] ^= 1 + rng.below(255) as u8;
        hit.push(at);
    }
    let headers_hit = |copy: usize| {
        let start = active * bank_len + copy * 64;
        hit.iter().any(|&h| (start..start + 64).contains(&h))
    };
    let (s, rep) = open(f, cfg);
    if headers_hit(0) && headers_hit(1) {
        // Nothing to recover from; the report must say the volume was reset.
        assert!(rep.formatted.is_some(), "seed {seed}: {rep}");
        assert!(s.is_empty());
    } else {
        let after = contents(&s);
        for (k, v) in &before {
            let (a, b) = extents[k];
            let damaged = hit.iter().any(|&h| (a..b).contains(&h));
            if damaged {
                assert_eq!(after.get(k), None, "seed {seed}: damaged {k:?} survived");
            } else {
                assert_eq!(
                    after.get(k),
                    Some(v),
                    "seed {seed}: intact {k:?} lost\n{rep}"
                );
            }
        }
        assert!(
            after.keys().all(|k| before.contains_key(k)),
            "seed {seed}: invented a variable"
        );
        // Every flip is noticed except one in record padding (not covered
        // by a CRC, never read).
        let bank = active * bank_len..(active + 1) * bank_len;
        let any_damage = hit.iter().any(|&h| {
            let padding = bank.contains(&h)
                && h >= bank.start + 128
                && h < used_end
                && !extents.values().any(|&(a, b)| (a..b).contains(&h));
            !padding
        });
        if any_damage {
            assert!(!rep.is_clean(), "seed {seed}: damage not reported");
        }
        assert!(rep.repair_error.is_none());
    }
    // Whatever happened, the repaired store is clean, stable and writable.
    let expect = contents(&s);
    let (mut s, rep) = reboot(s);
    assert!(rep.is_clean(), "seed {seed}: second open {rep}");
    assert_eq!(contents(&s), expect);
    s.set(&guid(9), &name("new"), 1, b"works").unwrap();
    let (s, _) = reboot(s);
    assert_eq!(s.get(&guid(9), &name("new")), Some(&var(1, b"works")));
    assert_eq!(s.flash().violations(), 0);
}

#[test]
fn random_corruption_small_volume() {
    for seed in 0..400 {
        corruption_round(SMALL_LEN, SMALL, seed, 6);
    }
}

#[test]
fn random_corruption_standard_volume() {
    for seed in 0..40 {
        corruption_round(STANDARD_VOLUME_LEN, Config::default(), 1000 + seed, 12);
    }
}

#[test]
fn random_garbage_never_panics() {
    // Whole volumes of structured garbage: record magics and blank runs mixed
    // with noise, so the resynchronising scanner gets exercised.
    let mut rng = Rng(99);
    for round in 0..60 {
        let mut img = rng.bytes(SMALL_LEN as usize);
        for chunk in img.chunks_mut(64) {
            match rng.below(4) {
                0 => chunk.fill(0xFF),
                1 => chunk[..4].copy_from_slice(b"EVaR"),
                _ => {}
            }
        }
        if round % 2 == 0 {
            put_header(&mut img, (round % 4 / 2) as u8, 4, rng.next(), rng.next());
        }
        let (s, rep) = open(SimFlash::from_image(img), SMALL);
        let expect = contents(&s);
        let (s, rep2) = reboot(s);
        assert!(rep2.is_clean(), "round {round}: {rep} / {rep2}");
        assert_eq!(contents(&s), expect);
        assert_eq!(s.flash().violations(), 0);
    }
}

// --- the simulator itself ------------------------------------------------

#[test]
fn sim_enforces_nor_rules_and_faults() {
    let mut f = SimFlash::blank(2 * BLOCK_SIZE);
    f.program(10, &[0x0F]).unwrap();
    assert_eq!(f.image()[10], 0x0F);
    // Setting a bit needs an erase.
    assert!(f.program(10, &[0xF0]).is_err());
    assert_eq!((f.violations(), f.image()[10]), (1, 0x0F));
    f.program(10, &[0x05]).unwrap();
    assert_eq!(f.image()[10], 0x05);
    f.erase(0).unwrap();
    assert_eq!(f.image()[10], 0xFF);
    assert_eq!(
        f.program(2 * BLOCK_SIZE - 1, &[0, 0]),
        Err(FlashError::OutOfRange {
            offset: 2 * BLOCK_SIZE - 1,
            len: 2
        })
    );
    assert!(f.erase(2).is_err());
    assert_eq!(f.ops(), 4);

    // Power cut: the operation does not happen, nothing works afterwards.
    f.arm(Fault {
        at_op: 5,
        torn: false,
        power_loss: true,
        seed: 0,
    });
    f.program(0, &[1]).unwrap();
    assert!(f.program(1, &[1]).is_err());
    assert_eq!(f.image()[1], 0xFF);
    assert!(f.is_dead());
    assert!(f.read(0, &mut [0]).is_err());
    f.power_cycle();
    f.read(0, &mut [0]).unwrap();

    // Torn programs land a deterministic subset of the cleared bits.
    let data = [0u8; 256];
    let torn = |seed| {
        let mut f = SimFlash::blank(BLOCK_SIZE);
        f.arm(Fault {
            at_op: 0,
            torn: true,
            power_loss: true,
            seed,
        });
        assert!(f.program(0, &data).is_err());
        f.into_image()
    };
    let mut partial = 0;
    for seed in 0..20 {
        let a = torn(seed);
        assert_eq!(a, torn(seed));
        if a[..256].iter().any(|&b| b != 0) && a[..256].iter().any(|&b| b != 0xFF) {
            partial += 1;
        }
        assert!(a[256..].iter().all(|&b| b == 0xFF));
    }
    assert!(partial >= 18, "{partial}");

    // Torn erases leave old and erased content mixed.
    let mut f = SimFlash::from_image(vec![0; BLOCK_SIZE as usize]);
    f.arm(Fault {
        at_op: 0,
        torn: true,
        power_loss: false,
        seed: 1,
    });
    assert!(f.erase(0).is_err());
    assert!(!f.is_dead());
    let ff = f.image().iter().filter(|&&b| b == 0xFF).count();
    assert!(
        ff < BLOCK_SIZE as usize && f.image().iter().any(|&b| b != 0),
        "{ff}"
    );
}
