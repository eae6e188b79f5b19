//! `cargo xtask`: Ember's build, guest-image, QEMU and test driver.

mod bench;
mod disk;
mod firmware;
mod guest;
mod qemu;
mod test;
mod tools;
mod util;

use qemu::{Boot, Machine, Serial};
use std::process::ExitCode;
use util::Result;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  build                      build target/dist/ember-x86_64.elf
  test [--boot-only] [--filter SUBSTR] [--direct]
                             host tests, then boot every scenario under QEMU
                             (--filter matches `scenario/machine`, e.g. fat12 or /microvm;
                             --direct: only check the guest via QEMU's own kernel loader)
  run [--machine q35|microvm] [--scenario NAME] [--direct]
                             boot one scenario with the serial console on stdio
                             (--direct: QEMU loads the kernel itself, no Ember)
  bench                      Ember vs direct kernel boot, fat32, q35 and microvm
  images                     fetch guest artifacts and build every scenario's disks
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
            };
            while let Some((k, v)) = a.next()? {
                match k {
                    "boot-only" => opts.boot_only = true,
                    "direct" => {
                        opts.direct = true;
                        opts.boot_only = true;
                    }
                    "filter" => opts.filter = Some(a.value(k, v)?),
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
                        machine = Machine::parse(&m)
                            .ok_or_else(|| format!("unknown machine `{m}` (q35, microvm)"))?;
                    }
                    "scenario" => scenario = a.value(k, v)?,
                    "direct" => direct = true,
                    _ => return Err(format!("unknown run option --{k}\n{USAGE}")),
                }
            }
            run_interactive(machine, &scenario, direct)
        }
        "bench" => bench::bench().map(|()| true),
        "images" => {
            tools::ensure_host_tools()?;
            let art = guest::prepare()?;
            for name in disk::NAMES {
                let s = disk::scenario(name, &art).expect("known scenario");
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
    let s = disk::scenario(scenario, &art).ok_or_else(|| {
        format!(
            "unknown scenario `{scenario}`; known: {}",
            disk::NAMES.join(", ")
        )
    })?;
    let boot = if direct {
        Boot::Direct {
            kernel: art.kernel.clone(),
            initrd: art.initrd.clone(),
            append: format!("{} ember.variant=direct", disk::BASE_OPTIONS),
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
