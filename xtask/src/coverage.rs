//! `cargo xtask coverage`: line coverage of the portable crates' host tests
//! with cargo-llvm-cov on the pinned stable toolchain.

use crate::util::{cargo, cargo_target_dir, mkdirs, output, run, write, Result};
use std::collections::BTreeMap;
use std::process::Command;

/// cargo-llvm-cov release installed when missing.
const LLVM_COV_VERSION: &str = "0.9.1";

fn llvm_cov() -> Command {
    let mut c = cargo();
    c.arg("llvm-cov").env(
        "CARGO_TARGET_DIR",
        cargo_target_dir().join("coverage-build"),
    );
    c
}

fn ensure_tools() -> Result {
    // Idempotent; adds the profiler's llvm-profdata/llvm-cov to the toolchain
    // that rust-toolchain.toml pins (rustup picks it from the working dir).
    run(Command::new("rustup")
        .current_dir(crate::util::root())
        .args(["component", "add", "llvm-tools-preview"]))?;
    if output(llvm_cov().arg("--version")).is_err() {
        run(cargo().args([
            "install",
            "cargo-llvm-cov",
            "--locked",
            "--version",
            &format!("={LLVM_COV_VERSION}"),
        ]))?;
    }
    Ok(())
}

#[derive(Default, Clone, Copy)]
struct Lines {
    total: u64,
    missed: u64,
}

impl Lines {
    fn percent(self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            100.0 * (self.total - self.missed) as f64 / self.total as f64
        }
    }
}

/// Per-crate line counts from `cargo llvm-cov report --summary-only`'s
/// per-file table (columns: file, regions x3, functions x3, lines x3, ...).
fn per_crate(report: &str) -> BTreeMap<String, Lines> {
    let mut out: BTreeMap<String, Lines> = BTreeMap::new();
    for line in report.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let Some(file) = cols.first() else { continue };
        let Some(rest) = file.split("crates/").nth(1) else {
            continue;
        };
        let Some((krate, _)) = rest.split_once('/') else {
            continue;
        };
        // Test files are not the code under test.
        if rest.contains("/tests/") || rest.ends_with("/tests.rs") {
            continue;
        }
        let (Some(total), Some(missed)) = (
            cols.get(7).and_then(|v| v.parse::<u64>().ok()),
            cols.get(8).and_then(|v| v.parse::<u64>().ok()),
        ) else {
            continue;
        };
        let e = out.entry(krate.to_string()).or_default();
        e.total += total;
        e.missed += missed;
    }
    out
}

pub fn coverage() -> Result<bool> {
    ensure_tools()?;
    run(llvm_cov().args(["clean", "--workspace"]))?;
    // The workspace's default members are the portable crates (and xtask,
    // which the summary leaves out); the block fakes need `std`.
    run(llvm_cov().arg("--no-report"))?;
    run(llvm_cov().args(["--no-report", "-p", "ember-block", "--features", "std"]))?;
    let report = output(llvm_cov().args(["report", "--summary-only"]))?;
    let crates = per_crate(&report);
    if crates.is_empty() {
        return Err(format!("no crate rows in the llvm-cov report:\n{report}"));
    }
    let mut text = format!(
        "{:<12} {:>7} {:>7} {:>7}\n",
        "crate", "lines", "missed", "cover"
    );
    let mut all = Lines::default();
    for (name, l) in &crates {
        text += &format!(
            "{name:<12} {:>7} {:>7} {:>6.1}%\n",
            l.total,
            l.missed,
            l.percent()
        );
        all.total += l.total;
        all.missed += l.missed;
    }
    text += &format!(
        "{:<12} {:>7} {:>7} {:>6.1}%\n",
        "TOTAL",
        all.total,
        all.missed,
        all.percent()
    );
    let dir = crate::util::target_dir().join("coverage");
    mkdirs(&dir)?;
    write(&dir.join("summary.txt"), &text)?;
    write(&dir.join("report.txt"), &report)?;
    print!("{text}");
    println!("written to {}", dir.join("summary.txt").display());
    Ok(true)
}
