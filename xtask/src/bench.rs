//! `cargo xtask bench`: Ember vs QEMU's direct Linux boot, same kernel/initrd.

use crate::disk;
use crate::guest::{self, guest_dir};
use crate::qemu::{self, Boot, Machine};
use crate::util::{median, mkdirs, Result};
use crate::{firmware, tools};

const RUNS: usize = 3;

pub fn bench() -> Result {
    tools::ensure_host_tools()?;
    let fw = firmware::build()?;
    let art = guest::prepare()?;
    let s = disk::scenario("fat32", &art).expect("fat32 exists");
    let disks = disk::build(&s)?;
    let logs = guest_dir().join("logs");
    mkdirs(&logs)?;
    let machines = [Machine::Q35, Machine::Microvm];
    // [machine][ember=0/direct=1] -> (tsc ms, wall s) samples
    let mut samples = vec![[Vec::new(), Vec::new()]; machines.len()];
    // Interleaved and sequential, so host load drifts hit both sides alike.
    for run in 0..RUNS {
        for (mi, &m) in machines.iter().enumerate() {
            let boots = [
                (
                    "ember",
                    Boot::Ember {
                        firmware: fw.clone(),
                        disks: disks.clone(),
                    },
                ),
                (
                    "direct",
                    Boot::Direct {
                        kernel: art.kernel.clone(),
                        initrd: art.initrd.clone(),
                        append: format!("{} ember.variant=fat32", disk::BASE_OPTIONS),
                    },
                ),
            ];
            for (bi, (label, boot)) in boots.iter().enumerate() {
                let log = logs.join(format!("bench-{}-{label}.log", m.name()));
                let out = qemu::run(m, boot, &log, crate::test::boot_timeout());
                match &out.marker {
                    Some(mk) => {
                        let (ms, wall) = (mk.tsc as f64 / 1e6, out.wall.as_secs_f64());
                        println!(
                            "run {} {:<8} {label:<6} tsc {ms:8.1} ms  wall {wall:6.1} s",
                            run + 1,
                            m.name()
                        );
                        samples[mi][bi].push((ms, wall));
                    }
                    None => println!(
                        "run {} {:<8} {label:<6} no marker: {}",
                        run + 1,
                        m.name(),
                        out.problem.as_deref().unwrap_or("?")
                    ),
                }
            }
        }
    }
    println!("\nmedians over {RUNS} runs (guest tsc = virtual time to /init):");
    println!(
        "{:<8} {:>14} {:>14} {:>7} {:>11} {:>11} {:>7}",
        "machine", "ember tsc ms", "direct tsc ms", "ratio", "ember wall", "direct wall", "ratio"
    );
    for (mi, m) in machines.iter().enumerate() {
        let med = |bi: usize, f: fn(&(f64, f64)) -> f64| {
            median(&samples[mi][bi].iter().map(f).collect::<Vec<_>>())
        };
        let (et, dt) = (med(0, |s| s.0), med(1, |s| s.0));
        let (ew, dw) = (med(0, |s| s.1), med(1, |s| s.1));
        println!(
            "{:<8} {et:>14.1} {dt:>14.1} {:>7.2} {ew:>10.1}s {dw:>10.1}s {:>7.2}",
            m.name(),
            et / dt,
            ew / dw
        );
    }
    Ok(())
}
