//! Ember's protections under attack: the conformance app, started through a
//! Boot Loader Specification `efi` entry with `attack-write` or
//! `attack-exec` as its options, writes into Ember's code or calls into
//! Ember's data. Each case passes only when Ember stops with a fault report
//! that names the culprit image and what it hit — and the app never gets to
//! say it survived.

use crate::disk::{self, Disk, Fs, Kind, Part, Scenario, Src, Table};
use crate::qemu::{self, Boot, Machine};
use crate::util::{mkdirs, target_dir, Result};
use std::path::Path;
use std::time::Duration;

/// (scenario, load options, what the report must say).
const CASES: &[(&str, &str, &[&str])] = &[
    (
        "attack-write",
        "attack-write",
        &[
            "page fault writing",
            "protection violation): Ember's own code",
            "faulting code: EFI image \\EFI\\attack.efi loaded at",
        ],
    ),
    (
        "attack-exec",
        "attack-exec",
        &[
            "page fault executing",
            "faulting code: Ember's heap",
            "called from",
            ": EFI image \\EFI\\attack.efi loaded at",
        ],
    ),
];

fn scenario(name: &'static str, options: &str, app: &Path) -> Scenario {
    let entry = format!("title Protection test\nefi /EFI/attack.efi\noptions {options}\n");
    Scenario {
        name,
        disks: vec![Disk {
            table: Table::Gpt,
            parts: vec![Part {
                kind: Kind::Esp,
                size_mib: 64,
                fs: Fs::Fat { bits: 32, spc: 1 },
                files: vec![
                    ("/EFI/attack.efi".into(), Src::Host(app.to_path_buf())),
                    ("/loader/entries/attack.conf".into(), Src::Text(entry)),
                ],
            }],
        }],
        expect: "none",
        microvm: false,
    }
}

/// Run the attack cases on q35; returns (passed, failed).
pub fn test(filter: Option<&str>, fw: &Path) -> Result<(usize, usize)> {
    let cases: Vec<_> = CASES
        .iter()
        .filter(|(n, _, _)| filter.is_none_or(|f| format!("{n}/q35").contains(f)))
        .collect();
    if cases.is_empty() {
        return Ok((0, 0));
    }
    let app = crate::efiapp::build()?;
    let logs = target_dir().join("guest").join("logs");
    mkdirs(&logs)?;
    let (mut pass, mut fail) = (0, 0);
    for (name, options, want) in cases {
        let disks = disk::build(&scenario(name, options, &app))?;
        let log = logs.join(format!("{name}-q35.log"));
        let out = qemu::run(
            Machine::Q35,
            &Boot::Ember {
                firmware: fw.to_path_buf(),
                disks,
            },
            &log,
            Duration::from_secs(120),
        );
        let stopped = out
            .problem
            .as_deref()
            .is_some_and(|p| p.starts_with("Ember stopped"));
        let missing: Vec<&&str> = want.iter().filter(|w| !out.log.contains(**w)).collect();
        let survived = out.log.contains("ATTACK-SURVIVED");
        if stopped && missing.is_empty() && !survived {
            println!(
                "PASS {:<24} wall {:6.1}s  fault reported, culprit named",
                format!("{name}/q35"),
                out.wall.as_secs_f64()
            );
            pass += 1;
        } else {
            println!("FAIL {name}/q35: stopped={stopped} survived={survived} missing={missing:?}");
            println!("  qemu: {}", out.cmdline);
            for l in crate::util::tail(&out.log, 30).lines() {
                println!("  | {l}");
            }
            fail += 1;
        }
    }
    Ok((pass, fail))
}
