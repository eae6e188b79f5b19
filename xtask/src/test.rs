//! `cargo xtask test`: host unit tests, then the boot matrix under QEMU.

use crate::disk::{self, Scenario};
use crate::guest::{self, guest_dir};
use crate::qemu::{self, Boot, Machine, Outcome};
use crate::util::{cargo, mkdirs, run, tail, Result};
use crate::{efichains, firmware, tools};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

pub struct Opts {
    pub boot_only: bool,
    /// Harness self-check: QEMU boots the guest kernel itself (no Ember).
    pub direct: bool,
    /// Substring of `scenario/machine` selecting boot cases.
    pub filter: Option<String>,
    /// Also boot the UEFI conformance app through Ember (`conformance/ember`).
    /// Run the bounded fuzz step (default only when `CI` is set).
    pub fuzz: bool,
}

/// Wall-clock limit per boot; TCG on a shared 2-core box is slow.
pub fn boot_timeout() -> Duration {
    let secs = std::env::var("EMBER_BOOT_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    Duration::from_secs(secs)
}

/// The -kernel case's scenario name and variant.
const KERNEL_CASE: &str = "qemu-kernel";

struct Case {
    scenario: Scenario,
    machine: Machine,
    disks: Vec<PathBuf>,
}

impl Case {
    fn name(&self) -> String {
        format!("{}/{}", self.scenario.name, self.machine.name())
    }
}

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
}

/// Returns whether everything passed; the summary line is always printed.
pub fn test(opts: &Opts) -> Result<bool> {
    let mut tally = Tally::default();
    let outcome = run_all(opts, &mut tally);
    if let Err(e) = &outcome {
        println!("FAIL setup: {e}");
        tally.failed += 1;
    }
    // Bounded fuzzing after the boots (whose disks seed it): CI or --fuzz
    // only, so a local `cargo xtask test` stays fast. docs/fuzzing.md.
    if opts.fuzz || (std::env::var_os("CI").is_some() && !opts.boot_only) {
        if crate::fuzz::test_line() {
            tally.passed += 1;
        } else {
            tally.failed += 1;
        }
    }
    println!("{} passed, {} failed", tally.passed, tally.failed);
    Ok(outcome.is_ok() && tally.failed == 0)
}

fn run_all(opts: &Opts, tally: &mut Tally) -> Result {
    // First: the host unit tests themselves build images with mkfs.fat,
    // mtools, sgdisk/sfdisk and check PE files with objdump.
    tools::ensure_host_tools()?;
    if !opts.boot_only {
        let host: [(&str, &[&str]); 2] = [
            ("host-tests", &["test"]),
            (
                "host-tests ember-block+std",
                &["test", "-p", "ember-block", "--features", "std"],
            ),
        ];
        for (name, args) in host {
            match run(cargo().args(args)) {
                Ok(()) => {
                    println!("PASS {name}");
                    tally.passed += 1;
                }
                Err(e) => {
                    println!("FAIL {name}: {e}");
                    tally.failed += 1;
                }
            }
        }
    }
    if opts.direct {
        return run_direct(opts, tally);
    }
    // The UEFI conformance app under OVMF (and Ember, opt-in): efiapp.rs.
    let (efi_pass, efi_fail) = crate::efiapp::test(opts.filter.as_deref(), true, boot_timeout())?;
    tally.passed += efi_pass;
    tally.failed += efi_fail;
    let fw = firmware::build()?;
    // Ember's own protections, attacked by an EFI application.
    let (a_pass, a_fail) = crate::attack::test(opts.filter.as_deref(), &fw)?;
    tally.passed += a_pass;
    tally.failed += a_fail;
    // aarch64: the entry touches no memory before the MMU is on; the image
    // boots on QEMU virt with MMU, caches and WXN on.
    let (arm_pass, arm_fail) = crate::aarch64::test(opts.filter.as_deref())?;
    tally.passed += arm_pass;
    tally.failed += arm_fail;
    // Image sizes against size-budget.toml: one PASS/FAIL line.
    if crate::size::test_line() {
        tally.passed += 1;
    } else {
        tally.failed += 1;
    }
    let art = guest::prepare()?;
    // Power cuts during variable writes on Ember's pflash store.
    let (v_pass, v_fail) = crate::varcrash::test(opts.filter.as_deref(), &art)?;
    tally.passed += v_pass;
    tally.failed += v_fail;
    // The same without a variable flash: the store file on the ESP.
    let (e_pass, e_fail) = crate::varcrash::test_esp(opts.filter.as_deref())?;
    tally.passed += e_pass;
    tally.failed += e_fail;
    // A real Debian system (debootstrap, systemd, shim + GRUB, ext4 root by
    // UUID): efibootmgr and BootNext from Linux, variables across runs,
    // systemd-analyze. OVMF proves the test itself; both run side by side.
    let debian: Vec<crate::debian::Firmware> = [
        crate::debian::Firmware::Ovmf,
        crate::debian::Firmware::Ember,
    ]
    .into_iter()
    .filter(|f| {
        opts.filter
            .as_ref()
            .is_none_or(|x| f.case_name().contains(x.as_str()))
    })
    .collect();
    if !debian.is_empty() {
        crate::debian::image()?;
        let results: Vec<Result<(usize, usize)>> = std::thread::scope(|sc| {
            let hs: Vec<_> = debian
                .iter()
                .map(|&f| sc.spawn(move || crate::debian::test(None, f)))
                .collect();
            hs.into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("debian test thread panicked".into()))
                })
                .collect()
        });
        for r in results {
            let (p, f) = r?;
            tally.passed += p;
            tally.failed += f;
        }
    }
    let mut cases = Vec::new();
    for name in disk::NAMES {
        let s = disk::scenario(name, &art).expect("NAMES lists known scenarios");
        // The platform variants (BARs left unassigned, legacy virtio-mmio)
        // exercise device bring-up, which does not depend on the disk layout:
        // one scenario is enough for them.
        // The native Linux-boot-protocol path (ember.boot=native) on the FAT
        // variants and the ordering and fallback logic it shares.
        let machines: &[Machine] = if s.name == "fat32" {
            &[
                Machine::Q35,
                Machine::Microvm,
                Machine::Q35Qboot,
                Machine::MicrovmLegacy,
                Machine::Q35Native,
                Machine::MicrovmNative,
                Machine::Q35Bios,
                Machine::PcBios,
                Machine::Q35Pflash,
                Machine::MicrovmBios,
                Machine::MicrovmPcie,
                Machine::Q35Linux64,
            ]
        } else if s.name == "menu" {
            // As the firmware (pflash store) and behind a VMM (PVH, volatile).
            &[Machine::Q35Pflash, Machine::Microvm]
        } else if s.name == "bootorder" {
            // fw_cfg's bootorder exists for Ember only as the firmware.
            &[Machine::Q35Bios, Machine::PcBios]
        } else if matches!(s.name, "fat16" | "fat12" | "ordering" | "fallback") {
            &[
                Machine::Q35,
                Machine::Microvm,
                Machine::Q35Native,
                Machine::MicrovmNative,
            ]
        } else if let Some(ms) = disk::corrupt::machines(s.name) {
            ms
        } else if s.microvm {
            &[Machine::Q35, Machine::Microvm]
        } else {
            &[Machine::Q35]
        };
        for &m in machines {
            let case_name = format!("{}/{}", s.name, m.name());
            if opts
                .filter
                .as_ref()
                .is_some_and(|f| !case_name.contains(f.as_str()))
            {
                continue;
            }
            cases.push((s.clone(), m));
        }
    }
    // Real Debian EFI chains (efichains.rs): OVMF proves each image is
    // right; Ember must boot the same images on q35 (virtio-pci) and microvm
    // (virtio-mmio, where OVMF does not run).
    let chain_machines: &[Machine] = &[
        Machine::Q35Ovmf,
        Machine::Q35,
        Machine::Microvm,
        Machine::Q35Bios,
        Machine::PcBios,
        Machine::Q35Pflash,
    ];
    let chains: Vec<(&str, Machine)> = efichains::NAMES
        .iter()
        .flat_map(|&n| chain_machines.iter().map(move |&m| (n, m)))
        .filter(|(n, m)| !(*m == Machine::Q35Ovmf && efichains::EMBER_ONLY.contains(n)))
        .filter(|(n, m)| {
            let case_name = format!("{n}/{}", m.name());
            opts.filter
                .as_ref()
                .is_none_or(|f| case_name.contains(f.as_str()))
        })
        .collect();
    if !chains.is_empty() {
        let loaders = efichains::prepare()?;
        for (n, m) in chains {
            let s = efichains::scenario(n, &art, &loaders)?.expect("NAMES lists known chains");
            cases.push((s, m));
        }
    }
    // QEMU's -kernel/-initrd/-append with Ember as the firmware: Ember loads
    // them from fw_cfg (DMA) and boots through the Linux boot protocol.
    for m in [Machine::Q35Bios, Machine::PcBios, Machine::MicrovmBios] {
        let name = format!("{KERNEL_CASE}/{}", m.name());
        if opts
            .filter
            .as_ref()
            .is_none_or(|f| name.contains(f.as_str()))
        {
            let s = Scenario {
                name: KERNEL_CASE,
                disks: Vec::new(),
                expect: KERNEL_CASE,
                microvm: true,
            };
            cases.push((s, m));
        }
    }
    if cases.is_empty() {
        if efi_pass
            + efi_fail
            + a_pass
            + a_fail
            + arm_pass
            + arm_fail
            + v_pass
            + v_fail
            + e_pass
            + e_fail
            > 0
            || !debian.is_empty()
        {
            return Ok(()); // the filter selected only conformance/attack cases
        }
        return Err("no boot case matches the filter".into());
    }
    // Build each scenario's disks once, before any QEMU starts.
    let mut built: Vec<Case> = Vec::new();
    for (s, m) in cases {
        let disks = match built.iter().find(|c| c.scenario.name == s.name) {
            Some(c) => c.disks.clone(),
            None if s.name == KERNEL_CASE => Vec::new(),
            None => disk::build(&s)?,
        };
        built.push(Case {
            scenario: s,
            machine: m,
            disks,
        });
    }
    let logs = guest_dir().join("logs");
    mkdirs(&logs)?;
    let jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(built.len());
    println!(
        "booting {} cases, {jobs} at a time (timeout {}s each)",
        built.len(),
        boot_timeout().as_secs()
    );
    let queue = Mutex::new(built.iter());
    let results = Mutex::new(Tally::default());
    std::thread::scope(|sc| {
        for _ in 0..jobs {
            sc.spawn(|| loop {
                let Some(case) = queue.lock().expect("queue lock").next() else {
                    break;
                };
                let log = logs.join(format!(
                    "{}-{}.log",
                    case.scenario.name,
                    case.machine.name()
                ));
                let boot = if case.scenario.name == KERNEL_CASE {
                    Boot::Direct {
                        kernel: art.kernel.clone(),
                        initrd: art.initrd.clone(),
                        append: format!("{} ember.variant={KERNEL_CASE}", disk::BASE_OPTIONS),
                    }
                } else if case.machine == Machine::Q35Ovmf {
                    Boot::Disks {
                        disks: case.disks.clone(),
                    }
                } else {
                    Boot::Ember {
                        firmware: fw.clone(),
                        disks: case.disks.clone(),
                    }
                };
                let extra = disk::corrupt::qemu_extra(case.scenario.name);
                // The menu case types at the serial console: any key, then
                // "2" and Enter once the menu asks.
                let keys = (case.scenario.name == "menu").then_some(("Choose 1-", "2.2\r"));
                let out =
                    qemu::run_with_keys(case.machine, &boot, extra, &log, boot_timeout(), keys);
                let ok = report(case, &out);
                let mut r = results.lock().expect("results lock");
                if ok {
                    r.passed += 1;
                } else {
                    r.failed += 1;
                }
            });
        }
    });
    let r = results.into_inner().expect("results lock");
    tally.passed += r.passed;
    tally.failed += r.failed;
    Ok(())
}

/// Print the case's line (and on failure its evidence); returns pass/fail.
fn report(case: &Case, out: &Outcome) -> bool {
    let expect_log = disk::corrupt::expect_log(&case.scenario, case.machine);
    print_verdict(
        &case.name(),
        case.scenario.expect,
        // -kernel boots through the Linux boot protocol.
        Some(case.machine.expects_efi() && case.scenario.name != KERNEL_CASE),
        &expect_log,
        Tables::of(case.machine).native_boot(case.scenario.name == KERNEL_CASE),
        out,
    )
}

/// What the guest must report about its firmware tables.
#[derive(Clone, Copy)]
struct Tables {
    /// QEMU's ACPI tables and SMBIOS, cross-checked by the guest ("tables=ok").
    qemu: bool,
    /// Some SMBIOS, whoever built it ("dmi=" not "none").
    any_dmi: bool,
    /// systemd's loader variables (Ember as the UEFI loader sets them).
    loader: bool,
}

impl Tables {
    /// A native Linux boot on microvm finds SMBIOS only by scanning the F
    /// segment, which is ROM there: Ember's tables reach UEFI boots only.
    fn native_boot(self, native: bool) -> Tables {
        Tables {
            any_dmi: self.any_dmi && !native,
            ..self
        }
    }

    fn of(m: Machine) -> Tables {
        Tables {
            qemu: m.checks_tables(),
            any_dmi: m.wants_dmi(),
            loader: m != Machine::Q35Ovmf,
        }
    }
}

/// `efi`: whether the guest must (Some(true)) or must not (Some(false)) have
/// come up with UEFI; with UEFI, the guest's EFI messages must be clean.
/// `expect_log`: fragments the serial log must contain (what Ember said about
/// a damaged disk), checked once the right variant booted.
fn print_verdict(
    name: &str,
    expect: &str,
    efi: Option<bool>,
    expect_log: &[String],
    tables: Tables,
    out: &Outcome,
) -> bool {
    let wall = out.wall.as_secs_f64();
    let missing: Vec<&String> = expect_log
        .iter()
        .filter(|f| !out.log.contains(f.as_str()))
        .collect();
    let verdict = match (&out.marker, &out.problem) {
        (Some(m), _) if m.variant == expect && efi.is_some_and(|e| m.efi != Some(e)) => {
            Err(format!(
                "guest /sys/firmware/efi: {:?}, expected {}",
                m.efi,
                if efi == Some(true) {
                    "present (UEFI boot)"
                } else {
                    "absent (native boot)"
                }
            ))
        }
        (Some(m), _) if m.variant == expect && efi == Some(true) && m.efi_warnings != Some(0) => {
            Err(format!(
                "the guest kernel logged {:?} EFI warnings/errors",
                m.efi_warnings
            ))
        }
        (Some(m), _) if m.variant == expect && tables.qemu && m.tables.as_deref() != Some("ok") => {
            Err(format!(
                "the guest's ACPI/SMBIOS check says {:?} (QEMU's tables did not reach it intact)",
                m.tables
            ))
        }
        (Some(m), _)
            if m.variant == expect
                && tables.any_dmi
                && m.dmi.as_deref().is_none_or(|d| d == "none") =>
        {
            Err("the guest sees no SMBIOS (\"DMI not present\")".into())
        }
        (Some(m), _)
            if m.variant == expect
                && tables.loader
                && efi == Some(true)
                && !m
                    .loader
                    .as_deref()
                    .is_some_and(|l| l.parse::<u64>().is_ok_and(|v| v > 0)) =>
        {
            Err(format!(
                "the guest finds no LoaderTimeExecUSec (systemd's loader interface): {:?}",
                m.loader
            ))
        }
        (Some(m), _) if m.variant == expect && !missing.is_empty() => Err(format!(
            "booted `{expect}` but the log lacks {}",
            missing
                .iter()
                .map(|f| format!("{f:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        (Some(m), _) if m.variant == expect => Ok(m),
        (Some(m), _) => Err(format!(
            "booted variant `{}`, expected `{expect}`",
            m.variant
        )),
        (None, Some(p)) => Err(p.clone()),
        (None, None) => Err("no marker".into()),
    };
    // One println per case so parallel workers do not interleave lines.
    match verdict {
        Ok(m) => {
            println!(
                "PASS {:<24} wall {wall:6.1}s  guest tsc {:8.1} ms  variant {}  tables {}  dmi {}",
                name,
                m.tsc as f64 / 1e6,
                m.variant,
                m.tables.as_deref().unwrap_or("?"),
                m.dmi.as_deref().unwrap_or("?")
            );
            true
        }
        Err(why) => {
            println!(
                "FAIL {:<24} wall {wall:6.1}s  {why}\n  qemu: {}\n  --- serial log (tail) ---\n{}\n  --- end ---",
                name,
                out.cmdline,
                tail(&out.log, 40)
            );
            false
        }
    }
}

/// Boot the guest kernel and initramfs with QEMU's own loader on every
/// machine: proves the artifacts and the runner work without Ember.
fn run_direct(opts: &Opts, tally: &mut Tally) -> Result {
    let art = guest::prepare()?;
    let logs = guest_dir().join("logs");
    mkdirs(&logs)?;
    for m in [Machine::Q35, Machine::Microvm] {
        let name = format!("direct/{}", m.name());
        if opts
            .filter
            .as_ref()
            .is_some_and(|f| !name.contains(f.as_str()))
        {
            continue;
        }
        let expect = format!("direct-{}", m.name());
        let boot = Boot::Direct {
            kernel: art.kernel.clone(),
            initrd: art.initrd.clone(),
            append: format!("{} ember.variant={expect}", disk::BASE_OPTIONS),
        };
        let out = qemu::run(
            m,
            &boot,
            &logs.join(format!("direct-{}.log", m.name())),
            boot_timeout(),
        );
        let ok = print_verdict(&name, &expect, Some(false), &[], Tables::of(m), &out);
        if ok {
            tally.passed += 1;
        } else {
            tally.failed += 1;
        }
    }
    Ok(())
}
