//! `cargo xtask size`: every image in `target/dist/` against its budget in
//! `size-budget.toml`, so growth is a decision rather than an accident.

use crate::util::{read_to_string, root, target_dir, Result};
use std::path::{Path, PathBuf};

pub fn budget_file() -> PathBuf {
    root().join("size-budget.toml")
}

/// `[budget]` entries: image file name -> bytes.
///
/// The file is TOML, but only this subset: comments, one `[budget]` table,
/// `"name" = integer` lines (xtask has no dependencies, so no TOML crate).
fn parse_budget(text: &str) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    let mut in_budget = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = || format!("size-budget.toml line {}: `{}`", i + 1, raw.trim());
        if line.starts_with('[') {
            in_budget = line == "[budget]";
            if !in_budget {
                return Err(format!("{}: only a [budget] table is expected", at()));
            }
            continue;
        }
        if !in_budget {
            return Err(format!("{}: entries belong in the [budget] table", at()));
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| format!("{}: expected \"image\" = bytes", at()))?;
        let k = k.trim().trim_matches('"').to_string();
        let v: u64 = v
            .trim()
            .replace('_', "")
            .parse()
            .map_err(|_| format!("{}: budget is not a whole number of bytes", at()))?;
        if out.iter().any(|(n, _)| *n == k) {
            return Err(format!("{}: {k} listed twice", at()));
        }
        out.push((k, v));
    }
    Ok(out)
}

#[derive(Debug, PartialEq)]
enum Verdict {
    Within,
    Over,
    NoBudget,
}

struct Row {
    name: String,
    bytes: u64,
    budget: Option<u64>,
}

impl Row {
    fn verdict(&self) -> Verdict {
        match self.budget {
            None => Verdict::NoBudget,
            Some(b) if self.bytes > b => Verdict::Over,
            Some(_) => Verdict::Within,
        }
    }
}

fn dist_images(dir: &Path) -> Result<Vec<(String, u64)>> {
    let rd = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "read {}: {e} (run `cargo xtask build` first)",
            dir.display()
        )
    })?;
    let mut v: Vec<(String, u64)> = rd
        .filter_map(|e| e.ok())
        // The variable-store template (.fd) is erased flash, not code.
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".fd"))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            m.is_file()
                .then(|| (e.file_name().to_string_lossy().into_owned(), m.len()))
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Budgets with no image built (yet): (name, bytes).
type Unbuilt = Vec<(String, u64)>;

/// Images with their budgets, and the budgets with no image.
fn check() -> Result<(Vec<Row>, Unbuilt)> {
    let budgets = parse_budget(&read_to_string(&budget_file())?)?;
    let images = dist_images(&target_dir().join("dist"))?;
    if images.is_empty() {
        return Err("target/dist is empty (run `cargo xtask build` first)".into());
    }
    let rows = images
        .iter()
        .map(|(name, bytes)| Row {
            name: name.clone(),
            bytes: *bytes,
            budget: budgets.iter().find(|(n, _)| n == name).map(|(_, b)| *b),
        })
        .collect();
    let unbuilt = budgets
        .into_iter()
        .filter(|(n, _)| !images.iter().any(|(i, _)| i == n))
        .collect();
    Ok((rows, unbuilt))
}

fn kib(b: u64) -> String {
    format!("{:.1} KiB", b as f64 / 1024.0)
}

/// Other firmware, for scale: installed files where Debian ships them.
fn peers() -> Vec<(&'static str, String)> {
    let file = |p: &str| std::fs::metadata(p).ok().map(|m| m.len());
    let installed = |p: &'static str, fallback: &str| match file(p) {
        Some(b) => format!("{b} B ({}, {p})", kib(b)),
        None => format!("{fallback} ({p} not installed)"),
    };
    vec![
        ("qboot", installed("/usr/share/qemu/qboot.rom", "64 KiB")),
        (
            "Rust Hypervisor Firmware",
            "~136 KB (release ELF; not packaged by Debian)".into(),
        ),
        (
            "SeaBIOS (q35)",
            installed("/usr/share/seabios/bios-256k.bin", "256 KiB"),
        ),
        (
            "OVMF (code only)",
            installed("/usr/share/OVMF/OVMF_CODE_4M.fd", "3.5 MiB"),
        ),
    ]
}

/// `cargo xtask size`: the table; false if an image is over or has no budget.
pub fn size() -> Result<bool> {
    let (rows, unbuilt) = check()?;
    println!(
        "{:<28} {:>10} {:>10} {:>6}  verdict",
        "image (target/dist)", "bytes", "budget", "used"
    );
    for r in &rows {
        let (budget, used) = match r.budget {
            Some(b) => (
                b.to_string(),
                format!("{:.0}%", r.bytes as f64 * 100.0 / b as f64),
            ),
            None => ("-".into(), "-".into()),
        };
        let verdict = match r.verdict() {
            Verdict::Within => "ok",
            Verdict::Over => "OVER BUDGET",
            Verdict::NoBudget => "NO BUDGET: add it to size-budget.toml",
        };
        println!(
            "{:<28} {:>10} {:>10} {:>6}  {verdict}",
            r.name, r.bytes, budget, used
        );
    }
    for (name, b) in &unbuilt {
        println!("{name:<28} {:>10} {b:>10} {:>6}  not built", "-", "-");
    }
    println!("\npeers:");
    for (name, s) in peers() {
        println!("  {name:<26} {s}");
    }
    Ok(rows.iter().all(|r| r.verdict() == Verdict::Within))
}

/// `cargo xtask test`'s single line about sizes; returns pass/fail.
pub fn test_line() -> bool {
    match check() {
        Ok((rows, _)) => {
            let bad: Vec<String> = rows
                .iter()
                .filter(|r| r.verdict() != Verdict::Within)
                .map(|r| match r.budget {
                    Some(b) => format!("{} is {} B, budget {b} B", r.name, r.bytes),
                    None => format!(
                        "{} ({} B) has no budget in size-budget.toml",
                        r.name, r.bytes
                    ),
                })
                .collect();
            let all: Vec<String> = rows
                .iter()
                .map(|r| format!("{} {}/{} B", r.name, r.bytes, r.budget.unwrap_or(0)))
                .collect();
            if bad.is_empty() {
                println!("PASS size: {}", all.join(", "));
                true
            } else {
                println!("FAIL size: {}", bad.join("; "));
                false
            }
        }
        Err(e) => {
            println!("FAIL size: {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_subset_of_toml_parses() {
        let b = parse_budget(
            "# why\n[budget]\n\"ember-x86_64.elf\" = 250_000 # 227400 + 10%\nother.bin=7\n",
        )
        .expect("parses");
        assert_eq!(
            b,
            vec![
                ("ember-x86_64.elf".to_string(), 250_000),
                ("other.bin".to_string(), 7)
            ]
        );
    }

    #[test]
    fn malformed_budgets_are_errors_naming_the_line() {
        for bad in [
            "\"x\" = 1\n",              // outside [budget]
            "[budget]\n\"x\" = big\n",  // not a number
            "[budget]\n\"x\"\n",        // no value
            "[other]\n",                // unknown table
            "[budget]\nx = 1\nx = 2\n", // duplicate
        ] {
            let e = parse_budget(bad).expect_err(bad);
            assert!(e.contains("line "), "{e}");
        }
    }

    #[test]
    fn the_checked_in_budget_file_parses_and_covers_the_pvh_image() {
        let b = parse_budget(&read_to_string(&budget_file()).expect("size-budget.toml"))
            .expect("parses");
        assert!(b.iter().any(|(n, v)| n == "ember-x86_64.elf" && *v > 0));
    }

    #[test]
    fn over_and_missing_budgets_fail() {
        let row = |bytes, budget| Row {
            name: "x".into(),
            bytes,
            budget,
        };
        assert_eq!(row(10, Some(10)).verdict(), Verdict::Within);
        assert_eq!(row(11, Some(10)).verdict(), Verdict::Over);
        assert_eq!(row(1, None).verdict(), Verdict::NoBudget);
    }
}
