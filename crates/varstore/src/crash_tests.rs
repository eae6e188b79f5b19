//! Power-cut sweeps: run a scripted workload, cut the power at every
//! program/erase operation (cleanly or tearing it), reopen, and check the
//! old-or-new rule, durability of everything before, and that the store
//! keeps working.

use std::format;
use std::vec::Vec;

use super::*;
use crate::sim::{Fault, SimFlash};
use crate::tests::{contents, guid, name, reboot, Key, Model, Rng, SMALL, SMALL_LEN};

#[derive(Clone, Debug)]
enum Step {
    Set {
        key: usize,
        attributes: u32,
        data: Vec<u8>,
    },
    Delete {
        key: usize,
    },
}

fn keys() -> Vec<Key> {
    let mut k = Vec::new();
    for g in 0..3 {
        for n in ["Boot0000", "BootOrder", "db"] {
            k.push((guid(g), name(n)));
        }
    }
    k
}

/// A workload of creates, updates of varying sizes and deletes.
fn script(seed: u64, steps: usize, max_data: usize) -> Vec<Step> {
    let nkeys = keys().len();
    let mut rng = Rng(seed);
    (0..steps)
        .map(|i| {
            let key = rng.below(nkeys as u64) as usize;
            if rng.below(8) == 0 {
                Step::Delete { key }
            } else {
                let len = match rng.below(4) {
                    0 => rng.below(16) as usize,
                    1 => max_data,
                    _ => rng.below(max_data as u64) as usize,
                };
                let mut data = rng.bytes(len);
                if let Some(b) = data.first_mut() {
                    *b = i as u8;
                }
                Step::Set {
                    key,
                    attributes: i as u32,
                    data,
                }
            }
        })
        .collect()
}

fn step_key(step: &Step) -> usize {
    match *step {
        Step::Set { key, .. } | Step::Delete { key } => key,
    }
}

fn run(s: &mut Store<SimFlash>, step: &Step) -> Result<(), StoreError> {
    let k = keys();
    match step {
        Step::Set {
            key,
            attributes,
            data,
        } => s.set(&k[*key].0, &k[*key].1, *attributes, data),
        Step::Delete { key } => s.delete(&k[*key].0, &k[*key].1).map(|_| ()),
    }
}

fn model_apply(m: &mut Model, step: &Step) {
    let k = keys();
    match step {
        Step::Set {
            key,
            attributes,
            data,
        } => {
            m.insert(
                k[*key].clone(),
                Variable {
                    attributes: *attributes,
                    timestamp: [0; 16],
                    data: data.clone(),
                },
            );
        }
        Step::Delete { key } => {
            m.remove(&k[*key]);
        }
    }
}

/// After a cut during `step` (from state `before`): every other variable is
/// as before, the step's variable is old or new. Returns the state found.
fn check_old_or_new(s: &Store<SimFlash>, before: &Model, step: &Step, what: &str) -> Model {
    let got = contents(s);
    let key = &keys()[step_key(step)];
    let mut after = before.clone();
    model_apply(&mut after, step);
    let mut others_got = got.clone();
    let mut others_want = before.clone();
    others_got.remove(key);
    others_want.remove(key);
    assert_eq!(others_got, others_want, "{what}: another variable changed");
    let v = got.get(key);
    assert!(
        v == before.get(key) || v == after.get(key),
        "{what}: {key:?} is neither old nor new"
    );
    got
}

/// After recovering: a second open is clean and agrees; the store takes
/// more writes (including to the interrupted variable); they persist.
fn check_keeps_working(s: Store<SimFlash>, mut model: Model, step: &Step, what: &str) {
    let (mut s, rep) = reboot(s);
    assert!(rep.is_clean(), "{what}: second open not clean: {rep}");
    assert_eq!(contents(&s), model, "{what}: second open differs");
    let k = keys();
    let follow = [
        Step::Set {
            key: step_key(step),
            attributes: 0xF0,
            data: format!("after {what}").into_bytes(),
        },
        Step::Set {
            key: (step_key(step) + 1) % k.len(),
            attributes: 0xF1,
            data: Vec::from(&b"x"[..]),
        },
    ];
    for f in &follow {
        run(&mut s, f).unwrap_or_else(|e| panic!("{what}: follow-up write failed: {e}"));
        model_apply(&mut model, f);
    }
    let (s, rep) = reboot(s);
    assert!(rep.is_clean(), "{what}: open after follow-up: {rep}");
    assert_eq!(contents(&s), model, "{what}: follow-up not durable");
    assert_eq!(s.flash().violations(), 0, "{what}: NOR rule broken");
}

struct Sweep {
    len: u32,
    config: Config,
    script: Vec<Step>,
    /// Test one cut point in `every`.
    every: u64,
    /// Tear seeds per cut point (a clean cut is always tested too).
    tears: u64,
    /// Also cut at every operation of the recovering open (double fault).
    double: bool,
}

/// Reboot the workload every this many steps, so compactions run both
/// with a spare erased in this session and with one that must be erased
/// first.
const REBOOT_EVERY: usize = 9;

#[derive(Debug, Default)]
struct Stats {
    ops: u64,
    cuts: u64,
    generations: u64,
    double_cuts: u64,
}

fn sweep(p: &Sweep) -> Stats {
    let (mut store, rep) = Store::open(SimFlash::blank(p.len), p.config).unwrap();
    assert_eq!(rep.formatted, Some(FormatReason::Blank));
    let mut model = Model::new();
    let mut stats = Stats::default();
    for (i, step) in p.script.iter().enumerate() {
        if i % REBOOT_EVERY == REBOOT_EVERY - 1 {
            let rep;
            (store, rep) = reboot(store);
            assert!(rep.is_clean(), "reboot before step {i}: {rep}");
        }
        let snap = store.clone();
        let before = model.clone();
        let ops0 = store.flash().ops();
        run(&mut store, step).unwrap_or_else(|e| panic!("step {i} {step:?}: {e}"));
        model_apply(&mut model, step);
        let n = store.flash().ops() - ops0;
        for k in 0..=n {
            if (ops0 + k) % p.every != 0 {
                continue;
            }
            for t in 0..=p.tears {
                let torn = t > 0;
                let what = format!("step {i} op {k}/{n} tear {t}");
                let mut s = snap.clone();
                s.flash_mut().arm(Fault {
                    at_op: ops0 + k,
                    torn,
                    power_loss: true,
                    seed: t * 7919 + i as u64,
                });
                let r = run(&mut s, step);
                // After the commit point a step reports success even if the
                // clean-up was cut short: its change is durable.
                let reported_ok = r.is_ok();
                assert_eq!(k < n, s.flash().is_dead(), "{what}: {r:?}");
                stats.cuts += 1;
                if p.double && torn && t == 1 {
                    stats.double_cuts += double_fault(&s, &before, step, &what);
                }
                let (s, rep) = reboot(s);
                assert!(rep.formatted.is_none(), "{what}: reformatted: {rep}");
                assert!(rep.repair_error.is_none(), "{what}: {rep}");
                let found = check_old_or_new(&s, &before, step, &what);
                if reported_ok {
                    assert_eq!(found, model, "{what}: step reported done, not durable");
                }
                check_keeps_working(s, found, step, &what);
            }
        }
    }
    stats.ops = store.flash().ops();
    stats.generations = store.generation();
    let (s, rep) = reboot(store);
    assert!(rep.is_clean(), "{rep}");
    assert_eq!(contents(&s), model);
    stats
}

/// `cut` is a store whose power just failed during `step`: cut again at
/// every operation of the open that recovers it, then check as usual.
fn double_fault(cut: &Store<SimFlash>, before: &Model, step: &Step, what: &str) -> u64 {
    let mut flash = cut.flash().clone();
    flash.power_cycle();
    let ops0 = flash.ops();
    let mut probe = flash.clone();
    Store::open(&mut probe, *cut.config()).unwrap();
    let n = probe.ops() - ops0;
    for j in 0..n {
        let what = format!("{what}, then open op {j}/{n}");
        let mut f = flash.clone();
        f.arm(Fault {
            at_op: ops0 + j,
            torn: j % 2 == 1,
            power_loss: true,
            seed: j,
        });
        // Open reports a failed repair (or a finished one whose clean-up
        // failed) but does not fail.
        let (s, _) = Store::open(&mut f, *cut.config()).unwrap();
        drop(s);
        assert!(f.is_dead(), "{what}: cut not reached");
        f.power_cycle();
        let (s, rep) = Store::open(f, *cut.config()).unwrap();
        assert!(
            rep.formatted.is_none() && rep.repair_error.is_none(),
            "{what}: {rep}"
        );
        let found = check_old_or_new(&s, before, step, &what);
        check_keeps_working(s, found, step, &what);
    }
    n
}

#[test]
fn every_cut_point_small_volume() {
    let p = Sweep {
        len: SMALL_LEN,
        config: SMALL,
        script: script(1, 120, 1400),
        every: 1,
        tears: 4,
        double: false,
    };
    let st = sweep(&p);
    assert!(st.generations >= 5, "{st:?}: want several compactions");
    assert_eq!(st.cuts, (st.ops - 2 + 120) * 5, "{st:?}");
}

#[test]
fn every_cut_point_one_block_banks() {
    // Two-block volume: every few writes compact, header and records share
    // the only block of each bank.
    let p = Sweep {
        len: 2 * BLOCK_SIZE,
        config: Config {
            max_variable_size: 700,
        },
        script: script(2, 100, 300),
        every: 1,
        tears: 2,
        double: false,
    };
    let st = sweep(&p);
    assert!(st.generations >= 6, "{st:?}");
}

#[test]
fn double_faults_small_volume() {
    let p = Sweep {
        len: SMALL_LEN,
        config: SMALL,
        script: script(3, 60, 1400),
        every: 1,
        tears: 1,
        double: true,
    };
    let st = sweep(&p);
    assert!(st.generations >= 3 && st.double_cuts > 200, "{st:?}");
}

#[test]
fn cut_points_standard_volume() {
    // Full size: every cut point in release, a sample in debug.
    let p = Sweep {
        len: STANDARD_VOLUME_LEN,
        config: Config::default(),
        script: script(4, 80, 24 * 1024),
        every: if cfg!(debug_assertions) { 4 } else { 1 },
        tears: if cfg!(debug_assertions) { 2 } else { 3 },
        double: false,
    };
    let st = sweep(&p);
    assert!(st.generations >= 3, "{st:?}: want at least two compactions");
}

#[test]
fn interrupted_format() {
    // A blank and a foreign volume, cut at every operation of formatting.
    let mut rng = Rng(5);
    for image in [
        std::vec![0xFF; SMALL_LEN as usize],
        rng.bytes(SMALL_LEN as usize),
    ] {
        let mut probe = SimFlash::from_image(image.clone());
        Store::open(&mut probe, SMALL).unwrap();
        let n = probe.ops();
        for k in 0..n {
            for torn in [false, true] {
                let what = format!("format op {k}/{n} torn {torn}");
                let mut f = SimFlash::from_image(image.clone());
                f.arm(Fault {
                    at_op: k,
                    torn,
                    power_loss: true,
                    seed: k,
                });
                // Fails before the commit; after it, the format stands.
                let r = Store::open(&mut f, SMALL).map(|_| ());
                assert!(f.is_dead(), "{what}: {r:?}");
                f.power_cycle();
                let (s, _) = Store::open(f, SMALL).unwrap();
                assert!(s.is_empty(), "{what}");
                check_keeps_working(s, Model::new(), &Step::Delete { key: 0 }, &what);
            }
        }
    }
}
