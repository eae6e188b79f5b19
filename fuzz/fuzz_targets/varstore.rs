//! The UEFI variable store on a small simulated NOR flash: a hostile initial
//! volume, then set/delete/compact sequences with power cuts (clean or torn,
//! also during the recovering open), device errors, reboots and random
//! corruption, checked against a `BTreeMap` model:
//!
//! - `open` never fails on a well-sized volume and never panics or hangs;
//!   a second `open` after a successful repair is clean and agrees;
//! - after a cut, every variable but the interrupted one is unchanged and
//!   the interrupted one holds its old or its new value (the new one if
//!   the call reported success); the store then keeps working;
//! - a clean reboot gives back exactly the model; `Full`/`TooLarge` change
//!   nothing; usage accounting matches the contents;
//! - after corruption, every variable holds a value it really had at some
//!   point (no invented or mixed values);
//! - the flash never sees a 0→1 program.
//!
//! Input: `cfg` byte (volume 2..9 blocks, max variable size), patch count,
//! patches (`u16 offset, u8 len, bytes` XORed into a blank volume), then
//! operations until the input ends (at most 48).
#![no_main]

use std::collections::BTreeMap;

use ember_fuzz::Bytes;
use ember_varstore::sim::{Fault, SimFlash};
use ember_varstore::{record_size, Config, Store, StoreError, Variable, BLOCK_SIZE};
use libfuzzer_sys::fuzz_target;

type Key = ([u8; 16], Vec<u16>);
type Model = BTreeMap<Key, Variable>;

/// Every value each name ever had.
type History = BTreeMap<Key, Vec<Variable>>;

fn key(sel: u8) -> Key {
    let mut g = [0x11; 16];
    g[0] = sel & 3;
    let name: Vec<u16> = match sel >> 2 & 3 {
        0 => "Boot0000".encode_utf16().collect(),
        1 => "BootOrder".encode_utf16().collect(),
        2 => vec![],
        _ => vec![0xD800, 0, 0xFFFF],
    };
    (g, name)
}

fn contents(s: &Store<SimFlash>) -> Model {
    s.iter()
        .map(|(g, n, v)| ((*g, n.to_vec()), v.clone()))
        .collect()
}

fn check_usage(s: &Store<SimFlash>) {
    let u = s.usage();
    let used: u64 = s
        .iter()
        .map(|(_, n, v)| record_size(n.len(), v.data.len()))
        .sum();
    assert_eq!(u64::from(u.used), used);
    assert_eq!(u.used + u.remaining, u.total);
    assert_eq!(s.len(), s.iter().count());
    // next_name walks exactly iter()'s order.
    let mut walked = 0;
    let mut cur = s.next_name(None).unwrap();
    while let Some(k) = cur {
        walked += 1;
        cur = s.next_name(Some(k)).unwrap();
    }
    assert_eq!(walked, s.len());
}

fn open(f: SimFlash, cfg: Config) -> Store<SimFlash> {
    let (s, rep) = Store::open(f, cfg).expect("open of a well-sized volume");
    // Printing exercises every Display path.
    let _ = rep.to_string();
    s
}

/// Power back on, open, and require a second open to be clean and agree.
fn reboot(s: Store<SimFlash>, cfg: Config) -> Store<SimFlash> {
    let mut f = s.into_flash();
    f.power_cycle();
    let (s, rep) = Store::open(f, cfg).expect("reopen");
    let _ = rep.to_string();
    if rep.repair_error.is_some() {
        return s;
    }
    let want = contents(&s);
    let mut f = s.into_flash();
    f.power_cycle();
    let (s, rep2) = Store::open(f, cfg).expect("second open");
    assert!(rep2.is_clean(), "repair did not stick: {rep}\nthen: {rep2}");
    assert_eq!(contents(&s), want);
    s
}

enum Op {
    Set(Key, Variable),
    Delete(Key),
}

fn read_op(r: &mut Bytes, cfg: &Config) -> Op {
    let sel = r.u8();
    let k = key(sel);
    if sel & 0x80 != 0 {
        return Op::Delete(k);
    }
    let attributes = u32::from(r.u8());
    let len = usize::from(r.u16()) % (cfg.max_variable_size as usize + 16);
    let fill = r.u8();
    let data = (0..len).map(|i| fill.wrapping_add(i as u8)).collect();
    let mut timestamp = [0; 16];
    timestamp[0] = sel & 0x40;
    Op::Set(
        k,
        Variable {
            attributes,
            timestamp,
            data,
        },
    )
}

fn op_key(op: &Op) -> &Key {
    match op {
        Op::Set(k, _) | Op::Delete(k) => k,
    }
}

fn run(s: &mut Store<SimFlash>, op: &Op) -> Result<(), StoreError> {
    match op {
        Op::Set((g, n), v) => s.set_with_timestamp(g, n, v.attributes, &v.timestamp, &v.data),
        Op::Delete((g, n)) => s.delete(g, n).map(|_| ()),
    }
}

fn apply(m: &mut Model, op: &Op) {
    match op {
        Op::Set(k, v) => {
            m.insert(k.clone(), v.clone());
        }
        Op::Delete(k) => {
            m.remove(k);
        }
    }
}

fn remember(h: &mut History, m: &Model) {
    for (k, v) in m {
        let vals = h.entry(k.clone()).or_default();
        if !vals.contains(v) {
            vals.push(v.clone());
        }
    }
}

/// The store after `op` was interrupted, starting from `before`.
fn check_old_or_new(s: &Store<SimFlash>, before: &Model, op: &Op, reported_ok: bool) -> Model {
    let got = contents(s);
    let mut after = before.clone();
    apply(&mut after, op);
    let k = op_key(op);
    let (mut others, mut others_before) = (got.clone(), before.clone());
    others.remove(k);
    others_before.remove(k);
    assert_eq!(others, others_before, "another variable changed");
    let v = got.get(k);
    if reported_ok {
        assert_eq!(v, after.get(k), "reported success but not durable");
    } else {
        assert!(
            v == before.get(k) || v == after.get(k),
            "neither old nor new"
        );
    }
    got
}

fuzz_target!(|data: &[u8]| {
    let mut r = Bytes(data);
    let c = r.u8();
    let blocks = 2 + u32::from(c & 7);
    let len = blocks * BLOCK_SIZE;
    let bank_len = blocks / 2 * BLOCK_SIZE;
    let limit = bank_len - 128 - 64;
    let cfg = Config {
        max_variable_size: (64 + u32::from(c >> 3) * 97).min(limit),
    };

    let mut image = vec![0xFF; len as usize];
    for _ in 0..r.u8() % 16 {
        let at = usize::from(r.u16()) % image.len();
        let n = usize::from(r.u8());
        for (i, &b) in r.take(n).iter().enumerate() {
            if let Some(x) = image.get_mut(at + i) {
                *x ^= b;
            }
        }
    }
    let mut s = open(SimFlash::from_image(image), cfg);
    s = reboot(s, cfg);
    let mut model = contents(&s);
    let mut history = History::new();
    remember(&mut history, &model);

    for _ in 0..48 {
        if r.is_empty() {
            break;
        }
        let kind = r.u8();
        match kind % 8 {
            // Plain set/delete.
            0..=2 => {
                let op = read_op(&mut r, &cfg);
                match run(&mut s, &op) {
                    Ok(()) => apply(&mut model, &op),
                    Err(StoreError::Full { .. } | StoreError::TooLarge { .. }) => {}
                    Err(e) => panic!("unexpected error {e}"),
                }
                assert_eq!(contents(&s), model);
            }
            // Power cut (clean or torn) during a set/delete, maybe another
            // one during the recovering open.
            3 | 4 => {
                let rel = u64::from(r.u8() % 32);
                let seed = u64::from(r.u8());
                let torn = kind & 0x10 != 0;
                let op = read_op(&mut r, &cfg);
                let at_op = s.flash().ops() + rel;
                s.flash_mut().arm(Fault {
                    at_op,
                    torn,
                    power_loss: true,
                    seed,
                });
                let res = run(&mut s, &op);
                if !s.flash().is_dead() {
                    // The cut came after the operation's last flash access.
                    s.flash_mut().power_cycle();
                    match res {
                        Ok(()) => apply(&mut model, &op),
                        Err(StoreError::Full { .. } | StoreError::TooLarge { .. }) => {}
                        Err(e) => panic!("unexpected error {e}"),
                    }
                    assert_eq!(contents(&s), model);
                } else {
                    if kind & 0x20 != 0 {
                        // Second cut while open repairs.
                        let mut f = s.into_flash();
                        f.power_cycle();
                        let second = f.ops() + u64::from(r.u8() % 16);
                        f.arm(Fault {
                            at_op: second,
                            torn: kind & 0x40 != 0,
                            power_loss: true,
                            seed,
                        });
                        s = open(f, cfg);
                    }
                    s = reboot(s, cfg);
                    model = check_old_or_new(&s, &model, &op, res.is_ok());
                }
            }
            // Device error (the machine keeps running) during a set/delete.
            5 => {
                let rel = u64::from(r.u8() % 32);
                let seed = u64::from(r.u8());
                let op = read_op(&mut r, &cfg);
                let at_op = s.flash().ops() + rel;
                s.flash_mut().arm(Fault {
                    at_op,
                    torn: kind & 0x10 != 0,
                    power_loss: false,
                    seed,
                });
                let res = run(&mut s, &op);
                s.flash_mut().power_cycle();
                let before = model.clone();
                model = check_old_or_new(&s, &before, &op, res.is_ok());
                // What RAM says is what the flash says, after a reboot too.
                s = reboot(s, cfg);
                assert_eq!(contents(&s), model);
            }
            // Reboot or explicit compaction.
            6 => {
                if kind & 0x10 != 0 {
                    s.compact().expect("compaction of what fits");
                    assert_eq!(contents(&s), model);
                }
                s = reboot(s, cfg);
                assert_eq!(contents(&s), model);
            }
            // Corruption: XOR bytes of the volume behind the store's back.
            _ => {
                let mut f = s.into_flash();
                for _ in 0..1 + r.u8() % 4 {
                    let at = usize::from(r.u16()) % f.image().len();
                    let x = r.u8();
                    f.image_mut()[at] ^= x;
                }
                s = reboot(Store::open(f, cfg).expect("open").0, cfg);
                let got = contents(&s);
                for (k, v) in &got {
                    let seen = history.get(k).is_some_and(|h| h.contains(v));
                    assert!(seen, "corruption produced a value never written: {k:?}");
                }
                model = got;
            }
        }
        remember(&mut history, &model);
        check_usage(&s);
    }
    s = reboot(s, cfg);
    assert_eq!(contents(&s), model);
    assert_eq!(s.flash().violations(), 0, "0 -> 1 program");
});
