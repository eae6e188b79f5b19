//! `cargo xtask build`: the Ember PVH ELF for x86_64-unknown-none.

use crate::util::{cargo, cargo_target_dir, copy, mkdirs, output, run, target_dir, Result};
use std::path::PathBuf;
use std::process::Command;

pub const TARGET: &str = "x86_64-unknown-none";

/// Where `cargo xtask build` leaves the firmware for QEMU's `-kernel`.
pub fn dist_elf() -> PathBuf {
    target_dir().join("dist").join("ember-x86_64.elf")
}

/// rustup here does not install rust-toolchain.toml's targets by itself.
pub fn ensure_target() -> Result {
    let installed =
        output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if installed.lines().any(|l| l.trim() == TARGET) {
        return Ok(());
    }
    run(Command::new("rustup").args(["target", "add", TARGET]))
}

pub fn build() -> Result<PathBuf> {
    ensure_target()?;
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "ember-x86_64",
        "--target",
        TARGET,
    ]))?;
    let built = cargo_target_dir()
        .join(TARGET)
        .join("release")
        .join("ember-x86_64");
    let dist = dist_elf();
    mkdirs(dist.parent().expect("dist has a parent"))?;
    let size = copy(&built, &dist)?;
    println!(
        "{}: {size} bytes ({:.1} KiB)",
        dist.display(),
        size as f64 / 1024.0
    );
    Ok(dist)
}
