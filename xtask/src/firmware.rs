//! `cargo xtask build`: the Ember PVH ELF for x86_64-unknown-none and the
//! images cut from it; then the aarch64 image (aarch64.rs).

use crate::util::{cargo, cargo_target_dir, mkdirs, output, run, target_dir, write, Result};
use std::path::PathBuf;
use std::process::Command;

pub const TARGET: &str = "x86_64-unknown-none";

/// Where `cargo xtask build` leaves the firmware for QEMU's `-kernel`.
pub fn dist_elf() -> PathBuf {
    target_dir().join("dist").join("ember-x86_64.elf")
}

/// The flash image (reset vector at its end), for `-bios` or pflash unit 0.
pub fn dist_bin() -> PathBuf {
    target_dir().join("dist").join("ember-x86_64.bin")
}

/// The same image as a (relocatable) bzImage, for Linux-protocol loaders.
pub fn dist_bzimage() -> PathBuf {
    target_dir().join("dist").join("ember-x86_64.bzimage")
}

/// The blank variable store for pflash unit 1.
pub fn dist_vars() -> PathBuf {
    target_dir().join("dist").join("ember-x86_64-vars.fd")
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
    let linked = std::fs::read(&built).map_err(|e| format!("read {}: {e}", built.display()))?;
    // The runtime relocation table filled in, symbols and records dropped.
    let prepared = crate::reloc::prepare(&linked)?;
    let elf = prepared.elf;
    write(&dist, &elf)?;
    println!(
        "{}: {} bytes ({:.1} KiB), {} pointers to move at SetVirtualAddressMap",
        dist.display(),
        elf.len(),
        elf.len() as f64 / 1024.0,
        prepared.pointers
    );
    let img = crate::image::load_image(&elf)?;
    let dir = dist.parent().expect("dist has a parent");
    for (name, bytes) in [
        ("ember-x86_64.bin", img.flash_image()?),
        ("ember-x86_64.bzimage", img.bzimage()?),
        ("ember-x86_64-vars.fd", crate::image::vars_template()),
    ] {
        write(&dir.join(name), &bytes)?;
        println!(
            "{}: {} bytes ({:.1} KiB)",
            dir.join(name).display(),
            bytes.len(),
            bytes.len() as f64 / 1024.0
        );
    }
    // And the aarch64 flash image for QEMU virt.
    crate::aarch64::build()?;
    Ok(dist)
}
