//! `cargo xtask`: Ember's build, guest-image, QEMU and test driver.

mod aarch64;
mod aarch64efi;
mod attack;
mod bench;
mod coverage;
mod debian;
mod disk;
mod efiapp;
mod efichains;
mod firmware;
mod fuzz;
mod guest;
mod image;
mod qemu;
mod reloc;
mod size;
mod test;
mod tools;
mod util;
mod varcrash;

use qemu::{Boot, Machine, Serial};
use std::process::ExitCode;
use util::Result;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  build                      build target/dist/ember-x86_64.elf
  test [--boot-only] [--filter SUBSTR] [--direct] [--with-ember-uefi] [--fuzz]
                             host tests, then boot every scenario under QEMU
                             (--filter matches `scenario/machine`, e.g. fat12 or /microvm;
                             --direct: only check the guest via QEMU's own kernel loader;
                             the UEFI conformance app runs under OVMF as conformance/ovmf,
                             --with-ember-uefi adds conformance/ember;
                             --fuzz: also fuzz each target 20s, default when CI is set)
  run [--machine q35|microvm|q35-ovmf] [--scenario NAME] [--direct]
                             boot one scenario with the serial console on stdio
                             (q35-ovmf: OVMF boots the disks; EFI chains: efi-stub,
                             systemd-boot-type1, systemd-boot-uki, uki, shim-grub)
                             (--direct: QEMU loads the kernel itself, no Ember)
  bench [--runs N] [--json PATH]
                             boot time: Ember vs the no-firmware limit and SeaBIOS,
                             interleaved N runs (default 5); JSON to target/bench/latest.json
  bench-aarch64 [--runs N]   aarch64 virt: Ember vs AAVMF vs no firmware, -kernel and the
                             same BLS/systemd-boot disk, median of N (default 3)
  efi-aarch64 [--firmware ember|aavmf] [--filter SUBSTR]
                             aarch64 virt: a UKI, systemd-boot and shim + GRUB from Debian's
                             arm64 packages must reach the guest's marker (efi/aarch64-*;
                             default firmware: ember, as in `test`; aavmf checks the disks)
  size                       image sizes in target/dist against size-budget.toml
  images                     fetch guest artifacts and build every scenario's disks
  fuzz [--target NAME] [--seconds N] [--jobs J]
                             libFuzzer on the parsers (nightly + cargo-fuzz, installed if
                             missing), N seconds per target (default 60); see docs/fuzzing.md
  debian [--firmware ovmf|ember]
                             a debootstrapped Debian (shim, GRUB, systemd) boots; from
                             Linux efibootmgr sets BootNext, the firmware honours it,
                             variables persist across runs (default firmware: ovmf)
  coverage                   line coverage of the portable crates' tests (cargo-llvm-cov),
                             summary in target/coverage/summary.txt
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Minimal option parser: flags and `--key value` / `--key=value` pairs.
struct Args<'a> {
    rest: std::slice::Iter<'a, String>,
}

impl<'a> Args<'a> {
    fn next(&mut self) -> Result<Option<(&'a str, Option<String>)>> {
        let Some(a) = self.rest.next() else {
            return Ok(None);
        };
        let Some(opt) = a.strip_prefix("--") else {
            return Err(format!("unexpected argument `{a}`\n{USAGE}"));
        };
        Ok(Some(match opt.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (opt, None),
        }))
    }
    fn value(&mut self, key: &str, inline: Option<String>) -> Result<String> {
        inline
            .or_else(|| self.rest.next().cloned())
            .ok_or_else(|| format!("--{key} needs a value"))
    }
}

fn dispatch(args: &[String]) -> Result<bool> {
    let Some((cmd, rest)) = args.split_first() else {
        print!("{USAGE}");
        return Ok(false);
    };
    let mut a = Args { rest: rest.iter() };
    match cmd.as_str() {
        "build" => {
            if let Some((k, _)) = a.next()? {
                return Err(format!("build takes no option --{k}"));
            }
            firmware::build().map(|_| true)
        }
        "test" => {
            let mut opts = test::Opts {
                boot_only: false,
                direct: false,
                filter: None,
                fuzz: false,
            };
            while let Some((k, v)) = a.next()? {
                match k {
                    "boot-only" => opts.boot_only = true,
                    "direct" => {
                        opts.direct = true;
                        opts.boot_only = true;
                    }
                    "filter" => opts.filter = Some(a.value(k, v)?),
                    // Also run the UEFI conformance app through Ember (not ready yet).
                    // Bounded fuzz step (on by default when CI is set).
                    "fuzz" => opts.fuzz = true,
                    _ => return Err(format!("unknown test option --{k}\n{USAGE}")),
                }
            }
            test::test(&opts)
        }
        "run" => {
            let (mut machine, mut scenario, mut direct) =
                (Machine::Q35, "fat32".to_string(), false);
            while let Some((k, v)) = a.next()? {
                match k {
                    "machine" => {
                        let m = a.value(k, v)?;
                        machine = Machine::parse(&m).ok_or_else(|| {
                            format!("unknown machine `{m}` (q35, microvm, q35-ovmf)")
                        })?;
                    }
                    "scenario" => scenario = a.value(k, v)?,
                    "direct" => direct = true,
                    _ => return Err(format!("unknown run option --{k}\n{USAGE}")),
                }
            }
            run_interactive(machine, &scenario, direct)
        }
        "bench" => {
            let mut opts = bench::Opts {
                runs: bench::DEFAULT_RUNS,
                json: None,
            };
            while let Some((k, v)) = a.next()? {
                match k {
                    "runs" => {
                        let n = a.value(k, v)?;
                        opts.runs = n
                            .parse()
                            .map_err(|_| format!("--runs: not a number: {n}"))?;
                    }
                    "json" => opts.json = Some(a.value(k, v)?.into()),
                    _ => return Err(format!("unknown bench option --{k}\n{USAGE}")),
                }
            }
            bench::bench(&opts)
        }
        "bench-aarch64" => {
            let mut runs = 3;
            while let Some((k, v)) = a.next()? {
                match k {
                    "runs" => {
                        let n = a.value(k, v)?;
                        runs = n
                            .parse()
                            .map_err(|_| format!("--runs: not a number: {n}"))?;
                    }
                    _ => return Err(format!("unknown bench-aarch64 option --{k}\n{USAGE}")),
                }
            }
            aarch64::bench(runs.max(1))
        }
        "efi-aarch64" => {
            let (mut fw, mut filter) = (aarch64efi::Firmware::Ember, None);
            while let Some((k, v)) = a.next()? {
                match k {
                    "firmware" => {
                        let f = a.value(k, v)?;
                        fw = aarch64efi::Firmware::parse(&f)
                            .ok_or_else(|| format!("unknown firmware `{f}` (ember, aavmf)"))?;
                    }
                    "filter" => filter = Some(a.value(k, v)?),
                    _ => return Err(format!("unknown efi-aarch64 option --{k}\n{USAGE}")),
                }
            }
            aarch64efi::run_cmd(fw, filter.as_deref())
        }
        "size" => {
            if let Some((k, _)) = a.next()? {
                return Err(format!("size takes no option --{k}"));
            }
            size::size()
        }
        "images" => {
            tools::ensure_host_tools()?;
            let art = guest::prepare()?;
            for name in disk::NAMES {
                let s = disk::scenario(name, &art).expect("known scenario");
                for d in disk::build(&s)? {
                    println!("{name}: {} (expects variant {})", d.display(), s.expect);
                }
            }
            let loaders = efichains::prepare()?;
            for name in efichains::NAMES {
                let s = efichains::scenario(name, &art, &loaders)?.expect("known chain");
                for d in disk::build(&s)? {
                    println!("{name}: {} (expects variant {})", d.display(), s.expect);
                }
            }
            println!(
                "kernel: {}\ninitrd: {}",
                art.kernel.display(),
                art.initrd.display()
            );
            Ok(true)
        }
        "fuzz" => {
            let mut o = fuzz::Opts {
                target: None,
                seconds: 60,
                jobs: 1,
            };
            while let Some((k, v)) = a.next()? {
                let num = |s: String| s.parse().map_err(|_| format!("--{k} needs a number"));
                match k {
                    "target" => o.target = Some(a.value(k, v)?),
                    "seconds" => o.seconds = num(a.value(k, v)?)?,
                    "jobs" => o.jobs = num(a.value(k, v)?)? as usize,
                    _ => return Err(format!("unknown fuzz option --{k}\n{USAGE}")),
                }
            }
            fuzz::fuzz(&o)
        }
        "debian" => {
            let mut fw = debian::Firmware::Ovmf;
            while let Some((k, v)) = a.next()? {
                match k {
                    "firmware" => {
                        let f = a.value(k, v)?;
                        fw = debian::Firmware::parse(&f)
                            .ok_or_else(|| format!("unknown firmware `{f}` (ovmf, ember)"))?;
                    }
                    _ => return Err(format!("unknown debian option --{k}\n{USAGE}")),
                }
            }
            debian::run_cmd(fw)
        }
        "coverage" => {
            if let Some((k, _)) = a.next()? {
                return Err(format!("coverage takes no option --{k}"));
            }
            coverage::coverage()
        }
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(true)
        }
        other => Err(format!("unknown command `{other}`\n{USAGE}")),
    }
}

fn run_interactive(machine: Machine, scenario: &str, direct: bool) -> Result<bool> {
    tools::ensure_host_tools()?;
    let art = guest::prepare()?;
    let s = match disk::scenario(scenario, &art) {
        Some(s) => Some(s),
        None => efichains::scenario(scenario, &art, &efichains::prepare()?)?,
    };
    let s = s.ok_or_else(|| {
        format!(
            "unknown scenario `{scenario}`; known: {}, {}",
            disk::NAMES.join(", "),
            efichains::NAMES.join(", ")
        )
    })?;
    let boot = if direct {
        Boot::Direct {
            kernel: art.kernel.clone(),
            initrd: art.initrd.clone(),
            append: format!("{} ember.variant=direct", disk::BASE_OPTIONS),
        }
    } else if machine == Machine::Q35Ovmf {
        Boot::Disks {
            disks: disk::build(&s)?,
        }
    } else {
        let firmware = firmware::build()?;
        Boot::Ember {
            firmware,
            disks: disk::build(&s)?,
        }
    };
    let mut cmd = qemu::command(machine, &boot, Serial::Stdio);
    println!("{}\n(Ctrl-A X quits QEMU)", util::describe(&cmd));
    let st = cmd
        .status()
        .map_err(|e| format!("cannot start QEMU: {e}"))?;
    Ok(st.success())
}
