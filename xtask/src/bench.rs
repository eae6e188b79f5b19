//! `cargo xtask bench`: how much boot time firmware costs.
//!
//! Every configuration boots the same kernel and initramfs to the same
//! `/init` marker. `limit` is QEMU loading Linux itself through qboot (no
//! firmware to speak of), so "overhead" is a configuration's guest time at the
//! marker minus `limit`'s on the same machine. Results go to the console and to
//! a JSON file (`target/bench/latest.json` unless `--json` says otherwise).

use crate::disk;
use crate::guest::{self, guest_dir};
use crate::qemu::{self, Boot, Machine};
use crate::util::{copy, median, mkdirs, output, root, target_dir, tool, write, Result};
use crate::{efichains, firmware, tools};
use std::fmt::Write as _;
use std::path::PathBuf;

pub struct Opts {
    pub runs: usize,
    /// Where the JSON report goes; `None` means [`default_json`].
    pub json: Option<PathBuf>,
}

pub const DEFAULT_RUNS: usize = 5;

pub fn default_json() -> PathBuf {
    target_dir().join("bench").join("latest.json")
}

/// How a configuration boots.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// QEMU's own `-kernel -initrd -append` loader (fw_cfg + the BIOS's
    /// Linux loader), no disk.
    Direct,
    /// Ember as the PVH `-kernel`, booting a scenario's disk; `options` is
    /// Ember's own command line (QEMU `-append`).
    Ember {
        scenario: &'static str,
        options: &'static str,
    },
    /// Ember as the PVH `-kernel` booting an efichains scenario's disk
    /// through its UEFI layer (no options: Ember's default path).
    EmberChain { chain: &'static str },
    /// The machine's own firmware (OVMF) booting an efichains scenario's
    /// disk, with `-icount` added so the guest TSC means virtual ns.
    FirmwareChain { chain: &'static str },
    /// Listed so the table shows what is still to come; not run.
    #[allow(dead_code)]
    Pending { needs: &'static str },
}

/// One machine a configuration runs on.
struct On {
    machine: Machine,
    /// The machine whose `limit` row this one is compared with.
    base: &'static str,
    /// What loads what, for the table's notes.
    note: &'static str,
}

struct Config {
    name: &'static str,
    kind: Kind,
    on: &'static [On],
    /// The OVMF configuration whose overhead this one's is divided by.
    vs_ovmf: Option<&'static str>,
    /// Boot at most this many times whatever `--runs` says: OVMF under
    /// `-icount` repeats to a few ms but costs 40-100 s of wall time a boot,
    /// and a 5-run bench has to stay under ~15 minutes.
    max_runs: Option<usize>,
}

/// Runs for the OVMF rows (see [`Config::max_runs`]).
const OVMF_RUNS: usize = 1;

/// The configurations, in table order. Extension point: a new row needs a
/// runnable `kind` and its `on` machines; `Kind::Pending` lists one that
/// cannot run yet.
const CONFIGS: &[Config] = &[
    Config {
        name: "limit",
        kind: Kind::Direct,
        on: &[
            On {
                machine: Machine::Q35Qboot,
                base: "q35",
                note: "qboot loads Linux from fw_cfg (DMA): no firmware at all",
            },
            On {
                machine: Machine::Microvm,
                base: "microvm",
                note: "qboot (microvm's default BIOS) loads Linux from fw_cfg (DMA)",
            },
        ],
        vs_ovmf: None,
        max_runs: None,
    },
    // On microvm today's direct boot already is qboot, i.e. `limit`.
    Config {
        name: "seabios-direct",
        kind: Kind::Direct,
        on: &[On {
            machine: Machine::Q35,
            base: "q35",
            note: "SeaBIOS + linuxboot_dma option ROM (QEMU's default -kernel boot)",
        }],
        vs_ovmf: None,
        max_runs: None,
    },
    // OVMF's own overhead with the kernel handed over in zero guest time
    // (fw_cfg, EFI stub): the reference for Ember's native path.
    Config {
        name: "ovmf-direct",
        kind: Kind::Direct,
        on: &[On {
            machine: Machine::Q35Ovmf,
            base: "q35",
            note: "OVMF loads Linux from fw_cfg (EFI stub, initrd via LoadFile2): UEFI's floor",
        }],
        vs_ovmf: None,
        max_runs: Some(OVMF_RUNS),
    },
    Config {
        name: "ember-native",
        // Native: the Linux boot protocol even though the kernel has an EFI
        // stub (Ember's default for those is its UEFI layer).
        kind: Kind::Ember {
            scenario: "fat32",
            options: "ember.boot=native",
        },
        on: &[
            On {
                machine: Machine::Q35,
                base: "q35",
                note: "SeaBIOS + pvh.bin load Ember (QEMU's default q35 BIOS): includes SeaBIOS's time",
            },
            On {
                machine: Machine::Q35Qboot,
                base: "q35",
                note: "qboot loads Ember (PVH): the fair comparison with limit",
            },
            On {
                machine: Machine::Microvm,
                base: "microvm",
                note: "qboot loads Ember (PVH), virtio-mmio disk",
            },
            On {
                machine: Machine::Q35Bios,
                base: "q35",
                note: "Ember is the firmware (-bios): reset vector, QEMU's ACPI/SMBIOS, disk, Linux",
            },
        ],
        vs_ovmf: Some("ovmf-direct"),
        max_runs: None,
    },
    // Ember as the firmware doing what qboot does in `limit`: QEMU's
    // -kernel/-initrd from fw_cfg (DMA), plus ACPI and SMBIOS set-up.
    Config {
        name: "ember-bios-kernel",
        kind: Kind::Direct,
        on: &[On {
            machine: Machine::Q35Bios,
            base: "q35",
            note: "Ember (-bios) loads -kernel/-initrd from fw_cfg (DMA), Linux boot protocol",
        }],
        vs_ovmf: Some("ovmf-direct"),
        max_runs: None,
    },
    // The real UEFI chains (xtask/src/efichains.rs), Ember's UEFI layer on
    // q35 with qboot in front (as `limit`), and OVMF on the same disks.
    Config {
        name: "ember-uefi-uki",
        kind: Kind::EmberChain { chain: "uki" },
        on: EMBER_UEFI_ON,
        vs_ovmf: Some("ovmf-uki"),
        max_runs: None,
    },
    Config {
        name: "ember-uefi-systemd-boot",
        kind: Kind::EmberChain {
            chain: "systemd-boot-uki",
        },
        on: EMBER_UEFI_ON,
        vs_ovmf: Some("ovmf-systemd-boot"),
        max_runs: None,
    },
    Config {
        name: "ember-uefi-shim-grub",
        kind: Kind::EmberChain { chain: "shim-grub" },
        on: EMBER_UEFI_ON,
        vs_ovmf: Some("ovmf-shim-grub"),
        max_runs: None,
    },
    // The efi-stub chain is not here: under OVMF it goes through the UEFI
    // Shell's 5 s startup.nsh countdown, which would measure the Shell.
    Config {
        name: "ovmf-uki",
        kind: Kind::FirmwareChain { chain: "uki" },
        on: OVMF_CHAIN_ON,
        vs_ovmf: None,
        max_runs: Some(OVMF_RUNS),
    },
    Config {
        name: "ovmf-systemd-boot",
        kind: Kind::FirmwareChain {
            chain: "systemd-boot-uki",
        },
        on: OVMF_CHAIN_ON,
        vs_ovmf: None,
        max_runs: Some(OVMF_RUNS),
    },
    Config {
        name: "ovmf-shim-grub",
        kind: Kind::FirmwareChain { chain: "shim-grub" },
        on: OVMF_CHAIN_ON,
        vs_ovmf: None,
        max_runs: Some(OVMF_RUNS),
    },
];

const EMBER_UEFI_ON: &[On] = &[
    On {
        machine: Machine::Q35Qboot,
        base: "q35",
        note: "qboot loads Ember (PVH); Ember's UEFI layer runs the chain from the disk",
    },
    On {
        machine: Machine::Q35Bios,
        base: "q35",
        note: "Ember is the firmware (-bios); its UEFI layer runs the chain from the disk",
    },
];

const OVMF_CHAIN_ON: &[On] = &[On {
    machine: Machine::Q35Ovmf,
    base: "q35",
    note: "OVMF boots the same disk (BDS: first boot option that loads)",
}];

/// One boot's numbers.
struct Sample {
    round: usize,
    tsc_ms: f64,
    wall_s: f64,
    ember: Option<EmberLog>,
}

struct Case {
    config: &'static Config,
    on: &'static On,
    boot: Boot,
    samples: Vec<Sample>,
    failures: Vec<String>,
}

impl Case {
    fn label(&self) -> String {
        format!("{}/{}", self.config.name, self.on.machine.name())
    }
    fn tsc(&self) -> Option<Stat> {
        Stat::of(&self.samples.iter().map(|s| s.tsc_ms).collect::<Vec<_>>())
    }
    fn wall(&self) -> Option<Stat> {
        Stat::of(&self.samples.iter().map(|s| s.wall_s).collect::<Vec<_>>())
    }
    fn ember_stat(&self, f: fn(&EmberLog) -> f64) -> Option<Stat> {
        Stat::of(
            &self
                .samples
                .iter()
                .filter_map(|s| s.ember.as_ref().map(f))
                .collect::<Vec<_>>(),
        )
    }
}

#[derive(Clone, Copy, Debug)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

impl Stat {
    fn of(v: &[f64]) -> Option<Stat> {
        if v.is_empty() {
            return None;
        }
        Some(Stat {
            median: median(v),
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

/// Returns whether every boot reached the marker.
pub fn bench(opts: &Opts) -> Result<bool> {
    if opts.runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    tools::ensure_host_tools()?;
    let built = firmware::build()?;
    // A private copy: target/dist is shared, and a rebuild during the runs
    // must not change the image under measurement.
    let fw = target_dir().join("bench").join("ember-x86_64.elf");
    mkdirs(fw.parent().expect("has a parent"))?;
    copy(&built, &fw)?;
    let art = guest::prepare()?;
    let mut meta = Meta::collect(opts.runs, &art.kernel_release, &fw);
    let logs = guest_dir().join("logs");
    mkdirs(&logs)?;

    let mut cases = Vec::new();
    let mut loaders = None;
    let mut chain_disks = |chain: &str| -> Result<Vec<PathBuf>> {
        if loaders.is_none() {
            loaders = Some(efichains::prepare()?);
        }
        let l = loaders.as_ref().expect("just set");
        let s = efichains::scenario(chain, &art, l)?
            .ok_or_else(|| format!("bench: unknown efichains scenario `{chain}`"))?;
        disk::build(&s)
    };
    for config in CONFIGS {
        let boot = match config.kind {
            Kind::Pending { .. } => continue,
            Kind::EmberChain { chain } => Boot::Ember {
                firmware: fw.clone(),
                disks: chain_disks(chain)?,
            },
            Kind::FirmwareChain { chain } => Boot::Disks {
                disks: chain_disks(chain)?,
            },
            Kind::Direct => Boot::Direct {
                kernel: art.kernel.clone(),
                initrd: art.initrd.clone(),
                append: format!("{} ember.variant={}", disk::BASE_OPTIONS, config.name),
            },
            Kind::Ember { scenario, .. } => {
                let s = disk::scenario(scenario, &art)
                    .ok_or_else(|| format!("bench: unknown scenario `{scenario}`"))?;
                Boot::Ember {
                    firmware: fw.clone(),
                    disks: disk::build(&s)?,
                }
            }
        };
        for on in config.on {
            cases.push(Case {
                config,
                on,
                boot: boot.clone(),
                samples: Vec::new(),
                failures: Vec::new(),
            });
        }
    }

    let n = cases.len();
    let runs_of = |c: &Case| c.config.max_runs.map_or(opts.runs, |m| m.min(opts.runs));
    let boots: usize = cases.iter().map(runs_of).sum();
    println!(
        "bench: {n} configurations x {} rounds ({boots} boots; OVMF rows at most {OVMF_RUNS}), \
         one at a time, order rotated each round",
        opts.runs
    );
    // Sequential (one QEMU at a time) and interleaved with a rotating start,
    // so host load drifts and "first boot of the round" effects (cold page
    // cache) hit every configuration alike.
    for round in 0..opts.runs {
        for i in 0..n {
            let case = &mut cases[(i + round) % n];
            if case.samples.len() + case.failures.len() >= runs_of(case) {
                continue;
            }
            let log = logs.join(format!(
                "bench-{}-{}.log",
                case.config.name,
                case.on.machine.name()
            ));
            // As the firmware, Ember takes its options from fw_cfg.
            let fw_opt = match case.config.kind {
                Kind::Ember { options, .. } => format!("name=opt/ember/cmdline,string={options}"),
                _ => String::new(),
            };
            let extra: &[&str] = match case.config.kind {
                Kind::Ember { options, .. } if !options.is_empty() && case.on.machine.is_bios() => {
                    &["-fw_cfg", &fw_opt]
                }
                Kind::Ember { options, .. } if !options.is_empty() => &["-append", options],
                // qemu.rs leaves -icount out for firmware disk boots (the
                // boot tests only look for the marker); the bench needs it.
                Kind::FirmwareChain { .. } => &["-icount", "shift=0,sleep=off"],
                _ => &[],
            };
            let out = qemu::run_with(
                case.on.machine,
                &case.boot,
                extra,
                &log,
                crate::test::boot_timeout(),
            );
            let label = case.label();
            match &out.marker {
                Some(mk) => {
                    let (tsc_ms, wall_s) = (mk.tsc as f64 / 1e6, out.wall.as_secs_f64());
                    let ember = match case.config.kind {
                        Kind::Ember { .. } | Kind::EmberChain { .. } => parse_ember(&out.log),
                        _ => None,
                    };
                    let took = ember
                        .as_ref()
                        .map(|e| format!("  ember {:6.1} ms", e.handoff_ms))
                        .unwrap_or_default();
                    println!(
                        "run {}/{} {label:<34} tsc {tsc_ms:8.1} ms  wall {wall_s:5.1} s{took}",
                        round + 1,
                        opts.runs
                    );
                    case.samples.push(Sample {
                        round: round + 1,
                        tsc_ms,
                        wall_s,
                        ember,
                    });
                }
                None => {
                    let why = out.problem.clone().unwrap_or_else(|| "no marker".into());
                    println!(
                        "run {}/{} {label:<34} FAILED: {why}\n  qemu: {}",
                        round + 1,
                        opts.runs,
                        out.cmdline
                    );
                    case.failures.push(format!("run {}: {why}", round + 1));
                }
            }
        }
    }

    meta.loadavg = loadavg();
    print_table(&cases, &meta);
    let json_path = opts.json.clone().unwrap_or_else(default_json);
    if let Some(dir) = json_path.parent() {
        mkdirs(dir)?;
    }
    write(&json_path, report_json(&cases, &meta).render())?;
    println!("\nJSON: {}", json_path.display());
    Ok(cases.iter().all(|c| c.failures.is_empty()))
}

/// Context that makes a result interpretable later; taken before the
/// runs (the load average again after them).
struct Meta {
    date: String,
    qemu: String,
    host_cpus: usize,
    host_cpu: String,
    loadavg: String,
    runs: usize,
    kernel: String,
    ember_bytes: u64,
    /// The commit Ember was built from, and whether the tree had changes.
    tree: String,
}

impl Meta {
    fn collect(runs: usize, kernel: &str, fw: &std::path::Path) -> Meta {
        let first_line = |s: String| s.lines().next().unwrap_or("").trim().to_string();
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Meta {
            date: output(tool("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]))
                .map(first_line)
                .unwrap_or_default(),
            qemu: output(tool("qemu-system-x86_64").arg("--version"))
                .map(first_line)
                .unwrap_or_default(),
            host_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            host_cpu: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default(),
            loadavg: loadavg(),
            runs,
            kernel: kernel.to_string(),
            ember_bytes: std::fs::metadata(fw).map_or(0, |m| m.len()),
            tree: {
                let git = |args: &[&str]| output(tool("git").current_dir(root()).args(args));
                let head = git(&["rev-parse", "--short", "HEAD"]).map(first_line);
                let dirty = git(&["status", "--porcelain", "--", "firmware", "crates"])
                    .is_ok_and(|s| !s.trim().is_empty());
                match head {
                    Ok(h) if dirty => format!("{h} + uncommitted firmware/crates changes"),
                    Ok(h) => h,
                    Err(_) => "unknown".into(),
                }
            },
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// `limit`'s median guest time on `base`, the zero of the overhead column.
fn limit_ms(cases: &[Case], base: &str) -> Option<f64> {
    cases
        .iter()
        .find(|c| c.config.name == "limit" && c.on.base == base)
        .and_then(|c| c.tsc())
        .map(|s| s.median)
}

fn overhead_ms(cases: &[Case], c: &Case) -> Option<f64> {
    Some(c.tsc()?.median - limit_ms(cases, c.on.base)?)
}

/// Overhead as a fraction of the matching OVMF configuration's (same base
/// machine); `None` until that OVMF configuration runs.
fn vs_ovmf(cases: &[Case], c: &Case) -> Option<f64> {
    let ovmf = cases
        .iter()
        .find(|o| Some(o.config.name) == c.config.vs_ovmf && o.on.base == c.on.base)?;
    Some(overhead_ms(cases, c)? / overhead_ms(cases, ovmf)?)
}

fn range(s: Option<Stat>, prec: usize) -> String {
    match s {
        Some(s) => format!("{:.p$} [{:.p$}..{:.p$}]", s.median, s.min, s.max, p = prec),
        None => "-".into(),
    }
}

fn print_table(cases: &[Case], meta: &Meta) {
    println!(
        "\n{} runs per row, {}; {} ({} host CPUs, load {}), TCG -icount shift=0,sleep=off",
        meta.runs, meta.date, meta.qemu, meta.host_cpus, meta.loadavg
    );
    println!(
        "Ember {} B from {}; kernel {}",
        meta.ember_bytes, meta.tree, meta.kernel
    );
    println!(
        "guest ms = virtual time from reset to the first instruction of /init; median [min..max]\n"
    );
    println!(
        "{:<23} {:<10} {:>26} {:>20} {:>9} {:>7} {:>8} {:>8}",
        "config", "machine", "guest ms", "wall s", "over lim", "/OVMF", "Ember ms", "MiB/s"
    );
    for c in cases {
        let opt = |v: Option<f64>, p: usize| {
            v.filter(|v| v.is_finite())
                .map_or("-".into(), |v| format!("{v:.p$}"))
        };
        println!(
            "{:<23} {:<10} {:>26} {:>20} {:>9} {:>7} {:>8} {:>8}",
            c.config.name,
            c.on.machine.name(),
            range(c.tsc(), 1),
            range(c.wall(), 1),
            opt(overhead_ms(cases, c), 1),
            opt(vs_ovmf(cases, c), 3),
            opt(c.ember_stat(|e| e.handoff_ms).map(|s| s.median), 1),
            opt(c.ember_stat(EmberLog::load_mib_s).map(|s| s.median), 0),
        );
    }
    println!("\nnotes:");
    for c in cases {
        let fails = if c.failures.is_empty() {
            String::new()
        } else {
            format!(" [{} failed run(s)]", c.failures.len())
        };
        let vs = c
            .config
            .vs_ovmf
            .map(|o| format!("; /OVMF = overhead / {o}'s"))
            .unwrap_or_default();
        println!("  {:<34} {}{vs}{fails}", c.label(), c.on.note);
    }
    for cfg in CONFIGS {
        if let Kind::Pending { needs } = cfg.kind {
            println!("  {:<26} not run yet: needs {needs}", cfg.name);
        }
    }
    // Where Ember's own time goes, from its console timestamps (its clock
    // starts at its first instruction, so these exclude the BIOS before it).
    let has = |c: &Case, uefi: bool| {
        c.samples.iter().any(|s| {
            s.ember
                .as_ref()
                .is_some_and(|e| e.image_ms.is_some() == uefi)
        })
    };
    let uefi: Vec<&Case> = cases.iter().filter(|c| has(c, true)).collect();
    if !uefi.is_empty() {
        println!(
            "\nEmber's UEFI path by phase, ms of its clock (medians; they add up to ExitBootServices):"
        );
        println!(
            "{:<34} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "", "calibrate", "devices", "discover", "image", "loaders", "EBS"
        );
        for c in &uefi {
            let mut line = format!("{:<34}", c.label());
            for i in 0..5 {
                let v: Vec<f64> = c
                    .samples
                    .iter()
                    .filter_map(|s| Some(s.ember.as_ref()?.uefi_phases()?[i].1))
                    .collect();
                let _ = write!(line, " {:>9.1}", median(&v));
            }
            let v: Vec<f64> = c
                .samples
                .iter()
                .filter_map(|s| s.ember.as_ref().map(|e| e.handoff_ms))
                .collect();
            println!("{line} {:>9.1}", median(&v));
        }
        println!(
            "  discover: partitions, entries, UEFI protocols and handles; image: reading the first\n  \
             EFI image (BOOTX64.EFI) through Ember's FAT; loaders: from StartImage to\n  \
             ExitBootServices (shim, GRUB, systemd-boot, stubs on Ember's services)"
        );
    }
    let ember: Vec<&Case> = cases.iter().filter(|c| has(c, false)).collect();
    if ember.is_empty() {
        return;
    }
    println!(
        "\nEmber's own time by phase, ms of its clock (medians; they add up to the hand-off):"
    );
    let names = EmberLog::default().phases().map(|p| p.0);
    let mut head = format!("{:<34}", "");
    for n in names {
        let _ = write!(head, " {n:>9}");
    }
    println!(
        "{head} {:>9} {:>7}  files (last run, MiB/s)",
        "hand-off", "MiB/s"
    );
    for c in ember {
        let m = |f: &dyn Fn(&EmberLog) -> f64| {
            median(
                &c.samples
                    .iter()
                    .filter_map(|s| s.ember.as_ref().map(f))
                    .collect::<Vec<_>>(),
            )
        };
        let mut line = format!("{:<34}", c.label());
        for i in 0..names.len() {
            let _ = write!(line, " {:>9.1}", m(&|e| e.phases()[i].1));
        }
        let files = c
            .samples
            .iter()
            .rev()
            .find_map(|s| s.ember.as_ref())
            .map(|e| {
                e.loads
                    .iter()
                    .map(|l| format!("{} {} KiB @ {}", short_name(&l.path), l.kib, l.mib_s))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        println!(
            "{line} {:>9.1} {:>7.0}  {files}",
            m(&|e| e.handoff_ms),
            m(&EmberLog::load_mib_s)
        );
    }
    println!(
        "  calibrate: TSC calibration (PIT, 5 ms, where there is one); devices: PCI/virtio-mmio\n  \
         scan and virtio-blk bring-up; discover: partitions, FAT, BLS entries, choice; prepare:\n  \
         open kernel and initrds (FAT chains walked), bzImage header, placement; load: file\n  \
         reads; finish: gaps between loads, zero page, jump"
    );
}

fn short_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// One file load Ember reported.
#[derive(Clone, Debug, PartialEq)]
struct Load {
    path: String,
    kib: u64,
    mib_s: u64,
    /// Ember's clock when the load finished.
    end_ms: f64,
}

/// Milestones from Ember's console, in ms of Ember's own clock (which starts
/// at its first instruction, not at reset).
#[derive(Clone, Debug, Default, PartialEq)]
struct EmberLog {
    /// First log line: TSC calibration is done.
    first_ms: f64,
    devices_ms: Option<f64>,
    /// The first "chose" line: discovery (partitions, FAT, BLS) is done.
    chosen_ms: Option<f64>,
    loads: Vec<Load>,
    /// UEFI path: "UEFI: ready" (protocols installed, handles made).
    uefi_ready_ms: Option<f64>,
    /// UEFI path: "UEFI: starting …": Ember has read the first EFI image and
    /// starts it; from here on the loaders run (on Ember's services).
    image_ms: Option<f64>,
    /// The "starting Linux" line, or on the UEFI path "ExitBootServices".
    handoff_ms: f64,
    /// Ember's own "(Ember took N ms)" / "(N ms since Ember started)".
    took_ms: u64,
}

impl EmberLog {
    /// Time spent in file loads. Each load's duration is recomputed from its
    /// size and MiB/s (3 significant digits) because its "in N ms" is
    /// rounded down to whole milliseconds.
    fn load_ms(&self) -> f64 {
        self.loads
            .iter()
            .map(|l| l.kib as f64 / 1024.0 / l.mib_s.max(1) as f64 * 1000.0)
            .sum()
    }
    /// Consecutive phases that add up to the hand-off time: (name, ms).
    fn phases(&self) -> [(&'static str, f64); 6] {
        let devices = self.devices_ms.unwrap_or(self.first_ms);
        let chosen = self.chosen_ms.unwrap_or(devices);
        let first_load_start = self.loads.first().map_or(self.handoff_ms, |l| {
            l.end_ms - l.kib as f64 / 1024.0 / l.mib_s.max(1) as f64 * 1000.0
        });
        let load = self.load_ms();
        [
            ("calibrate", self.first_ms),
            ("devices", devices - self.first_ms),
            ("discover", chosen - devices),
            ("prepare", first_load_start - chosen),
            ("load", load),
            ("finish", self.handoff_ms - first_load_start - load),
        ]
    }
    /// The UEFI path's phases, adding up to the hand-off (ExitBootServices);
    /// `None` on the native path.
    fn uefi_phases(&self) -> Option<[(&'static str, f64); 5]> {
        let image = self.image_ms?;
        let devices = self.devices_ms.unwrap_or(self.first_ms);
        let ready = self.uefi_ready_ms.unwrap_or(devices);
        Some([
            ("calibrate", self.first_ms),
            ("devices", devices - self.first_ms),
            ("discover", ready - devices),
            ("image", image - ready),
            ("loaders", self.handoff_ms - image),
        ])
    }
    /// Effective throughput over all loads.
    fn load_mib_s(&self) -> f64 {
        let kib: u64 = self.loads.iter().map(|l| l.kib).sum();
        kib as f64 / 1024.0 / (self.load_ms() / 1000.0)
    }
}

/// `[   0.005201] INFO  message` -> (ms, message). The prefix may follow other
/// output on the same line (SeaBIOS prints "Booting from ROM.." without a
/// newline); Linux's own `[    0.000000] Linux ...` lines have no level tag.
fn ember_line(line: &str) -> Option<(f64, &str)> {
    for tag in ["] INFO  ", "] WARN  ", "] ERROR ", "] DEBUG ", "] TRACE "] {
        if let Some(end) = line.find(tag) {
            let start = line[..end].rfind('[')?;
            // Integer microseconds first, so 0.005209 s is exactly 5.209 ms.
            let (s, us) = line[start + 1..end].trim().split_once('.')?;
            let us = s.parse::<u64>().ok()? * 1_000_000 + us.parse::<u64>().ok()?;
            return Some((us as f64 / 1000.0, &line[end + tag.len()..]));
        }
    }
    None
}

/// Parse Ember's milestones; `None` if it never reached the hand-off.
fn parse_ember(log: &str) -> Option<EmberLog> {
    let mut e = EmberLog::default();
    let mut first = true;
    for (ms, msg) in log.lines().filter_map(ember_line) {
        if first {
            e.first_ms = ms;
            first = false;
        }
        if msg.starts_with("devices: ") {
            e.devices_ms.get_or_insert(ms);
        } else if msg.contains(": chose ") {
            e.chosen_ms.get_or_insert(ms);
        } else if let Some(rest) = msg.strip_prefix("loaded ") {
            // "loaded PATH: N KiB at 0xADDR in M ms (R MiB/s)"
            let (path, rest) = rest.rsplit_once(": ")?;
            let kib = rest.split_whitespace().next()?.parse().ok()?;
            let rate = rest.rsplit_once('(')?.1;
            let mib_s = rate.split_whitespace().next()?.parse().ok()?;
            e.loads.push(Load {
                path: path.to_string(),
                kib,
                mib_s,
                end_ms: ms,
            });
        } else if msg.starts_with("UEFI: ready ") {
            e.uefi_ready_ms.get_or_insert(ms);
        } else if msg.starts_with("UEFI: starting ") {
            e.image_ms.get_or_insert(ms);
        } else if msg.starts_with("UEFI: ExitBootServices") {
            // "... (N ms since Ember started)"
            e.handoff_ms = ms;
            e.took_ms = msg
                .rsplit_once('(')
                .and_then(|(_, t)| t.split_whitespace().next()?.parse().ok())
                .unwrap_or(0);
            return Some(e);
        } else if msg.starts_with("starting Linux: ") {
            e.handoff_ms = ms;
            e.took_ms = msg
                .rsplit_once("(Ember took ")
                .and_then(|(_, t)| t.split_whitespace().next()?.parse().ok())
                .unwrap_or(0);
            return Some(e);
        }
    }
    None
}

/// Just enough JSON for the report (xtask has no dependencies).
enum J {
    Null,
    Num(f64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(&'static str, J)>),
}

impl J {
    fn num(v: Option<f64>) -> J {
        v.filter(|v| v.is_finite()).map_or(J::Null, J::Num)
    }
    fn str(s: &str) -> J {
        J::Str(s.to_string())
    }
    fn stat(s: Option<Stat>) -> J {
        s.map_or(J::Null, |s| {
            J::Obj(vec![
                ("median", J::Num(s.median)),
                ("min", J::Num(s.min)),
                ("max", J::Num(s.max)),
            ])
        })
    }
    fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0);
        out.push('\n');
        out
    }
    fn write(&self, out: &mut String, indent: usize) {
        let pad = |out: &mut String, n: usize| out.extend(std::iter::repeat_n(' ', n));
        match self {
            J::Null => out.push_str("null"),
            // Rounded: sub-microsecond digits are noise, not data.
            J::Num(v) if v.is_finite() => {
                let r = (v * 1000.0).round() / 1000.0;
                let _ = write!(out, "{r}");
            }
            J::Num(_) => out.push_str("null"),
            J::Str(s) => {
                out.push('"');
                for ch in s.chars() {
                    match ch {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        '\n' => out.push_str("\\n"),
                        c if (c as u32) < 0x20 => {
                            let _ = write!(out, "\\u{:04x}", c as u32);
                        }
                        c => out.push(c),
                    }
                }
                out.push('"');
            }
            J::Arr(v) if v.is_empty() => out.push_str("[]"),
            J::Arr(v) => {
                out.push_str("[\n");
                for (i, x) in v.iter().enumerate() {
                    pad(out, indent + 2);
                    x.write(out, indent + 2);
                    out.push_str(if i + 1 < v.len() { ",\n" } else { "\n" });
                }
                pad(out, indent);
                out.push(']');
            }
            J::Obj(v) if v.is_empty() => out.push_str("{}"),
            J::Obj(v) => {
                out.push_str("{\n");
                for (i, (k, x)) in v.iter().enumerate() {
                    pad(out, indent + 2);
                    let _ = write!(out, "\"{k}\": ");
                    x.write(out, indent + 2);
                    out.push_str(if i + 1 < v.len() { ",\n" } else { "\n" });
                }
                pad(out, indent);
                out.push('}');
            }
        }
    }
}

fn ember_json(e: &EmberLog) -> J {
    J::Obj(vec![
        ("first_line_ms", J::Num(e.first_ms)),
        ("devices_ms", J::num(e.devices_ms)),
        ("chosen_ms", J::num(e.chosen_ms)),
        (
            "phases_ms",
            J::Obj(e.phases().iter().map(|&(n, v)| (n, J::Num(v))).collect()),
        ),
        (
            "uefi_phases_ms",
            e.uefi_phases().map_or(J::Null, |p| {
                J::Obj(p.iter().map(|&(n, v)| (n, J::Num(v))).collect())
            }),
        ),
        ("load_ms", J::Num(e.load_ms())),
        ("load_mib_s", J::num(Some(e.load_mib_s()))),
        ("handoff_ms", J::Num(e.handoff_ms)),
        ("took_ms", J::Num(e.took_ms as f64)),
        (
            "loads",
            J::Arr(
                e.loads
                    .iter()
                    .map(|l| {
                        J::Obj(vec![
                            ("path", J::str(&l.path)),
                            ("kib", J::Num(l.kib as f64)),
                            ("mib_s", J::Num(l.mib_s as f64)),
                            ("end_ms", J::Num(l.end_ms)),
                        ])
                    })
                    .collect(),
            ),
        ),
    ])
}

fn report_json(cases: &[Case], meta: &Meta) -> J {
    let mut results: Vec<J> = cases
        .iter()
        .map(|c| {
            let ember = if c.samples.iter().any(|s| s.ember.is_some()) {
                J::Obj(vec![
                    (
                        "phases_ms",
                        J::Obj(
                            (0..6)
                                .map(|i| {
                                    let name = EmberLog::default().phases()[i].0;
                                    let v: Vec<f64> = c
                                        .samples
                                        .iter()
                                        .filter_map(|s| Some(s.ember.as_ref()?.phases()[i].1))
                                        .collect();
                                    (name, J::stat(Stat::of(&v)))
                                })
                                .collect(),
                        ),
                    ),
                    ("load_ms", J::stat(c.ember_stat(EmberLog::load_ms))),
                    ("load_mib_s", J::stat(c.ember_stat(EmberLog::load_mib_s))),
                    (
                        "uefi_phases_ms",
                        J::Obj(
                            ["calibrate", "devices", "discover", "image", "loaders"]
                                .iter()
                                .enumerate()
                                .map(|(i, &name)| {
                                    let v: Vec<f64> = c
                                        .samples
                                        .iter()
                                        .filter_map(|s| Some(s.ember.as_ref()?.uefi_phases()?[i].1))
                                        .collect();
                                    (name, J::stat(Stat::of(&v)))
                                })
                                .collect(),
                        ),
                    ),
                    ("handoff_ms", J::stat(c.ember_stat(|e| e.handoff_ms))),
                ])
            } else {
                J::Null
            };
            J::Obj(vec![
                ("config", J::str(c.config.name)),
                ("machine", J::str(c.on.machine.name())),
                ("base", J::str(c.on.base)),
                ("status", J::str("run")),
                ("note", J::str(c.on.note)),
                ("guest_ms", J::stat(c.tsc())),
                ("wall_s", J::stat(c.wall())),
                ("overhead_ms", J::num(overhead_ms(cases, c))),
                ("overhead_vs_ovmf", J::num(vs_ovmf(cases, c))),
                ("ovmf_reference", c.config.vs_ovmf.map_or(J::Null, J::str)),
                ("ember", ember),
                (
                    "samples",
                    J::Arr(
                        c.samples
                            .iter()
                            .map(|s| {
                                J::Obj(vec![
                                    ("round", J::Num(s.round as f64)),
                                    ("guest_ms", J::Num(s.tsc_ms)),
                                    ("wall_s", J::Num(s.wall_s)),
                                    ("ember", s.ember.as_ref().map_or(J::Null, ember_json)),
                                ])
                            })
                            .collect(),
                    ),
                ),
                (
                    "failures",
                    J::Arr(c.failures.iter().map(|f| J::str(f)).collect()),
                ),
            ])
        })
        .collect();
    for cfg in CONFIGS {
        if let Kind::Pending { needs } = cfg.kind {
            results.push(J::Obj(vec![
                ("config", J::str(cfg.name)),
                ("status", J::str("pending")),
                ("needs", J::str(needs)),
            ]));
        }
    }
    J::Obj(vec![
        ("schema", J::str("ember-bench/1")),
        ("date", J::str(&meta.date)),
        ("qemu", J::str(&meta.qemu)),
        (
            "host",
            J::Obj(vec![
                ("cpus", J::Num(meta.host_cpus as f64)),
                ("cpu", J::str(&meta.host_cpu)),
                ("loadavg_at_end", J::str(&meta.loadavg)),
                ("accel", J::str("tcg")),
                ("icount", J::str("shift=0,sleep=off")),
            ]),
        ),
        ("runs", J::Num(meta.runs as f64)),
        ("kernel", J::str(&meta.kernel)),
        ("ember_image_bytes", J::Num(meta.ember_bytes as f64)),
        ("tree", J::str(&meta.tree)),
        (
            "units",
            J::str("guest_ms: virtual ms from reset to /init (guest TSC); wall_s: host seconds from QEMU start to the marker; ember.*: ms of Ember's own clock"),
        ),
        ("results", J::Arr(results)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real console output (q35: SeaBIOS's last line has no newline).
    const LOG: &str = "\
Booting from ROM..[   0.005000] INFO  Ember 0.1.0 (x86_64, PVH entry)
[   0.005209] INFO  devices: 1 disk(s) in 48 us
[   0.005745] INFO  virtio-blk 00:02.0: chose ember-6.1.0-56-cloud-amd64 (only entry)
[   0.034711] INFO  loaded /ember/6.1.0-56-cloud-amd64/linux: 13833 KiB at 0x1000000 in 14 ms (901 MiB/s)
[   0.035899] INFO  loaded /ember/6.1.0-56-cloud-amd64/initrd: 1007 KiB at 0x3dee3000 in 1 ms (831 MiB/s)
[   0.035909] INFO  starting Linux: kernel at 0x1000000, initrd 1007 KiB at 0x3dee3000, cmdline \"console=ttyS0\" (Ember took 35 ms)
[    0.000000] Linux version 6.1.0-56-cloud-amd64
[    0.004000] INFO  not Ember: after the hand-off
";

    #[test]
    fn ember_milestones_are_parsed_from_a_real_log() {
        let e = parse_ember(LOG).expect("parsed");
        assert_eq!(e.first_ms, 5.0);
        assert_eq!(e.devices_ms, Some(5.209));
        assert_eq!(e.chosen_ms, Some(5.745));
        assert_eq!(e.handoff_ms, 35.909);
        assert_eq!(e.took_ms, 35);
        assert_eq!(e.loads.len(), 2);
        assert_eq!(e.loads[0].path, "/ember/6.1.0-56-cloud-amd64/linux");
        assert_eq!((e.loads[0].kib, e.loads[0].mib_s), (13833, 901));
        assert_eq!((e.loads[1].kib, e.loads[1].mib_s), (1007, 831));
        // 13833 KiB at 901 MiB/s + 1007 KiB at 831 MiB/s.
        assert!((e.load_ms() - 16.176).abs() < 0.01, "{}", e.load_ms());
        assert!((e.load_mib_s() - 896.0).abs() < 1.0, "{}", e.load_mib_s());
        let sum: f64 = e.phases().iter().map(|p| p.1).sum();
        assert!((sum - e.handoff_ms).abs() < 1e-9, "{:?}", e.phases());
        assert!(e.phases().iter().all(|p| p.1 >= 0.0), "{:?}", e.phases());
    }

    #[test]
    fn uefi_path_milestones_are_parsed() {
        let log = "\
Booting from ROM..[   0.005000] INFO  Ember 0.1.0 (x86_64, PVH entry)
[   0.005205] INFO  devices: 1 disk(s) in 44 us
[   0.006340] INFO  virtio-blk 00:02.0: no boot loader entries; starting /EFI/BOOT/BOOTX64.EFI from partition 1
[   0.006832] INFO  UEFI: ready in 488 us: 2 partition handle(s), system table at 0x3dfdd000
[   0.009280] INFO  UEFI: starting /EFI/BOOT/BOOTX64.EFI
[   1.332636] INFO  UEFI: ExitBootServices; the OS owns the machine now (1332 ms since Ember started)
";
        let e = parse_ember(log).expect("parsed");
        assert_eq!(e.handoff_ms, 1332.636);
        assert_eq!(e.took_ms, 1332);
        let p = e.uefi_phases().expect("UEFI path");
        assert_eq!(
            p.map(|p| p.0),
            ["calibrate", "devices", "discover", "image", "loaders"]
        );
        assert!((p[4].1 - (1332.636 - 9.28)).abs() < 1e-9, "{p:?}");
        let sum: f64 = p.iter().map(|p| p.1).sum();
        assert!((sum - e.handoff_ms).abs() < 1e-9, "{p:?}");
        assert!(parse_ember(LOG).unwrap().uefi_phases().is_none());
    }

    #[test]
    fn a_log_without_hand_off_gives_nothing() {
        assert!(parse_ember("[   0.000000] INFO  Ember 0.1.0\n").is_none());
        assert!(parse_ember("[    0.000000] Linux version 6.1\n").is_none());
    }

    #[test]
    fn json_strings_are_escaped() {
        let j = J::Obj(vec![
            ("s", J::str("a\"b\\c\nd\u{1}")),
            ("n", J::Num(f64::NAN)),
        ]);
        assert_eq!(
            j.render(),
            "{\n  \"s\": \"a\\\"b\\\\c\\nd\\u0001\",\n  \"n\": null\n}\n"
        );
    }

    #[test]
    fn every_runnable_config_has_machines_and_pending_ones_say_why() {
        for c in CONFIGS {
            match c.kind {
                Kind::Pending { needs } => assert!(!needs.is_empty(), "{}", c.name),
                _ => assert!(!c.on.is_empty(), "{}", c.name),
            }
        }
        // Overheads are measured against `limit`: every base needs one.
        for c in CONFIGS {
            for on in c.on {
                assert!(
                    CONFIGS
                        .iter()
                        .any(|l| l.name == "limit" && l.on.iter().any(|o| o.base == on.base)),
                    "{}/{} has no limit on {}",
                    c.name,
                    on.machine.name(),
                    on.base
                );
            }
        }
    }
}
