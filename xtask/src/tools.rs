//! Host tool provisioning: QEMU and the disk-image utilities from Debian.

use crate::util::{find_tool, is_root, run, tool, Result};

/// (executable, Debian package providing it).
const TOOLS: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("qemu-system-aarch64", "qemu-system-arm"),
    ("mkfs.fat", "dosfstools"),
    ("mcopy", "mtools"),
    ("mmd", "mtools"),
    ("mdir", "mtools"),
    ("sfdisk", "fdisk"),
    ("sgdisk", "gdisk"),
    ("cpio", "cpio"),
    ("mkfs.ext4", "e2fsprogs"),
    // Builds the unified kernel images of the EFI chain scenarios.
    ("objcopy", "binutils"),
    // The same for arm64 UKIs (the host's objcopy has no pei-aarch64-little).
    ("aarch64-linux-gnu-objcopy", "binutils-aarch64-linux-gnu"),
    // The Debian system image of `cargo xtask debian`.
    ("debootstrap", "debootstrap"),
    (crate::debian::KEYRING, "debian-archive-keyring"),
    // Not an executable: the firmware the UEFI conformance app is checked against.
    (crate::efiapp::OVMF_CODE, "ovmf"),
    // AAVMF, the aarch64 comparison (cargo xtask bench-aarch64).
    (crate::aarch64::AAVMF_CODE, "qemu-efi-aarch64"),
];

/// An executable on PATH, or (absolute paths) a data file that exists.
fn present(t: &str) -> bool {
    if t.starts_with('/') {
        std::path::Path::new(t).is_file()
    } else {
        find_tool(t).is_some()
    }
}

/// Make sure every host tool the images and boots need is present. Installs
/// the missing Debian packages when running as root (CI); otherwise explains
/// what to install.
pub fn ensure_host_tools() -> Result {
    let missing: Vec<_> = TOOLS.iter().filter(|(t, _)| !present(t)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut pkgs: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
    pkgs.dedup();
    let names: Vec<&str> = missing.iter().map(|(t, _)| *t).collect();
    if !is_root() {
        return Err(format!(
            "missing host tools: {}\ninstall them with: sudo apt-get install -y {}",
            names.join(", "),
            pkgs.join(" ")
        ));
    }
    eprintln!(
        "xtask: installing missing host tools ({})",
        names.join(", ")
    );
    apt_update()?;
    run(tool("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "--no-install-recommends"])
        .args(&pkgs))?;
    let still: Vec<_> = TOOLS
        .iter()
        .filter(|(t, _)| !present(t))
        .map(|(t, _)| *t)
        .collect();
    if still.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "still missing after apt-get install: {}",
            still.join(", ")
        ))
    }
}

/// `apt-get update`, at most once per xtask process.
pub fn apt_update() -> Result {
    static DONE: std::sync::OnceLock<Result> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        if !is_root() {
            return Err("apt-get update needs root; run as root or install the packages".into());
        }
        run(tool("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["update", "-q"]))
    })
    .clone()
}
