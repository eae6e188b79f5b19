//! Guest artifacts: a Debian cloud kernel, and an initramfs whose `/init`
//! prints the boot marker the tests look for.

use crate::tools::apt_update;
use crate::util::{
    cargo, mkdirs, output, read_to_string, remove_dir_all_if_exists, root, run, target_dir, tool,
    write, Fnv, Result,
};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The line the guest's own userspace prints; nothing else prints it.
pub const MARKER: &str = "EMBER-MARKER: ";

const KERNEL_META: &str = "linux-image-cloud-amd64";
const BUSYBOX: &str = "busybox-static";

#[derive(Clone, Debug)]
pub struct Artifacts {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// e.g. `6.1.0-56-cloud-amd64`, used to name files on the ESP.
    pub kernel_release: String,
}

pub fn guest_dir() -> PathBuf {
    target_dir().join("guest")
}

/// Fetch (or reuse) the kernel and busybox, build the helper and initramfs.
pub fn prepare() -> Result<Artifacts> {
    let dir = guest_dir();
    mkdirs(&dir)?;
    // Stale or missing package lists show up as resolve or download errors:
    // refresh them once and redo the whole lookup, since the versions (even
    // the kernel ABI in the package name) may have moved on.
    let kdir = retry_after_update(|| fetch_package(&kernel_package()?))?;
    let kernel = find_vmlinuz(&kdir)?;
    let kernel_release = kernel
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .unwrap_or("unknown")
        .to_string();
    let bdir = retry_after_update(|| fetch_package(BUSYBOX))?;
    let busybox = bdir.join("bin/busybox");
    if !busybox.is_file() {
        return Err(format!(
            "{BUSYBOX} has no bin/busybox in {}",
            bdir.display()
        ));
    }
    let tsc = build_tsc_helper()?;
    // efivarfs is a module in Debian's kernel; /init loads it for the
    // variable tests.
    let efivarfs = kdir
        .join("lib/modules")
        .join(&kernel_release)
        .join("kernel/fs/efivarfs/efivarfs.ko");
    let initrd = build_initramfs(&busybox, &tsc, &efivarfs)?;
    Ok(Artifacts {
        kernel,
        initrd,
        kernel_release,
    })
}

/// Fetch (or reuse) one Debian package, unpacked; see [`fetch_package`].
pub fn fetch(pkg: &str) -> Result<PathBuf> {
    retry_after_update(|| fetch_package(pkg))
}

fn retry_after_update<T>(f: impl Fn() -> Result<T>) -> Result<T> {
    f().or_else(|first| {
        eprintln!("guest: {first}\nguest: refreshing package lists and retrying");
        apt_update().map_err(|e| format!("{first}\n{e}"))?;
        f()
    })
}

/// Resolve the cloud kernel metapackage to the versioned image package.
fn kernel_package() -> Result<String> {
    let out = output(tool("apt-cache").args(["depends", KERNEL_META]))?;
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .map(|d| d.trim().to_string())
        .find(|d| d.starts_with("linux-image-") && d.ends_with("-cloud-amd64"))
        .ok_or_else(|| {
            format!("cannot resolve {KERNEL_META} to a linux-image-*-cloud-amd64 package")
        })
}

/// Candidate version of a package.
fn candidate_version(pkg: &str) -> Result<String> {
    let out = output(tool("apt-cache").args(["show", "--no-all-versions", pkg]))?;
    out.lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| format!("apt knows no version of {pkg}"))
}

/// Download and unpack `pkg` into `target/guest/pkg/<pkg>_<version>/`. The
/// directory name carries the version, so an upgraded package is refetched.
fn fetch_package(pkg: &str) -> Result<PathBuf> {
    let version = candidate_version(pkg)?;
    let key = format!("{pkg}_{}", version.replace([':', '/'], "_"));
    let dir = guest_dir().join("pkg").join(&key);
    let stamp = dir.join(".xtask-complete");
    if stamp.is_file() {
        return Ok(dir);
    }
    let dl = guest_dir().join("dl");
    remove_dir_all_if_exists(&dl)?;
    mkdirs(&dl)?;
    let spec = format!("{pkg}={version}");
    run(tool("apt-get")
        .current_dir(&dl)
        .args(["download", "-q", &spec]))?;
    let deb = std::fs::read_dir(&dl)
        .map_err(|e| format!("read {}: {e}", dl.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| format!("apt-get download {spec} produced no .deb"))?;
    remove_dir_all_if_exists(&dir)?;
    mkdirs(&dir)?;
    run(tool("dpkg-deb").arg("-x").arg(&deb).arg(&dir))?;
    write(&stamp, &spec)?;
    remove_dir_all_if_exists(&dl)?;
    println!("guest: unpacked {spec}");
    Ok(dir)
}

fn find_vmlinuz(pkgdir: &Path) -> Result<PathBuf> {
    let boot = pkgdir.join("boot");
    std::fs::read_dir(&boot)
        .map_err(|e| format!("read {}: {e}", boot.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .ok_or_else(|| format!("no boot/vmlinuz-* in {}", pkgdir.display()))
}

/// Build `guest/tsc` (a no_std static Linux binary) into its own target dir.
fn build_tsc_helper() -> Result<PathBuf> {
    const HOST: &str = "x86_64-unknown-linux-gnu";
    let tdir = guest_dir().join("tsc-target");
    let mut cmd = cargo();
    cmd.args([
        "build",
        "--quiet",
        "--release",
        "--target",
        HOST,
        "--manifest-path",
    ])
    .arg(root().join("guest/tsc/Cargo.toml"))
    .env("CARGO_TARGET_DIR", &tdir)
    .env_remove("CARGO_ENCODED_RUSTFLAGS")
    // No libc and no crt: static, non-PIE, our own `_start`.
    .env(
        "RUSTFLAGS",
        "-C panic=abort -C relocation-model=static -C target-feature=+crt-static \
             -C link-arg=-nostartfiles -C link-arg=-static",
    );
    run(&mut cmd)?;
    Ok(tdir.join(HOST).join("release").join("ember-guest-tsc"))
}

/// `/init`: a busybox sh script. It samples the TSC first, so the marker's
/// number is "virtual ns from reset to the first userspace instruction"
/// (deterministic under `-icount shift=0,sleep=off`), then reports which
/// entry booted via `ember.variant=` and powers off so QEMU exits.
const INIT: &str = r#"#!/bin/sh
T=$(/bin/tsc)
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
V=none
for a in $(cat /proc/cmdline); do
  case "$a" in ember.variant=*) V="${a#ember.variant=}" ;; esac
done
echo "ember-init: cmdline: $(cat /proc/cmdline)" > /dev/console
# Whether the kernel came up with EFI (runtime services, EFI memory map),
# and how many of its EFI messages complain.
E=0; [ -d /sys/firmware/efi ] && E=1
W=$(dmesg | grep -iw efi | grep -ciE 'warn|error|fail|bug')
dmesg | grep -iw efi | grep -iE 'warn|error|fail|bug' > /dev/console
# Firmware tables, checked here in the guest: the harness gives QEMU an
# ACPI table (EMBR, via -acpitable) holding a token and puts the same token
# in SMBIOS's system serial (-smbios type=1). Only if both reached Linux
# intact, with QEMU's FACP/DSDT/APIC (and MCFG on q35), is this "ok".
TB=none
if [ -r /sys/firmware/acpi/tables/EMBR ]; then
  TOK=$(tail -c +37 /sys/firmware/acpi/tables/EMBR)
  SER=$(cat /sys/class/dmi/id/product_serial 2>/dev/null)
  MISS=""
  for t in FACP DSDT APIC; do [ -r /sys/firmware/acpi/tables/$t ] || MISS="$MISS,$t"; done
  case "$(cat /sys/class/dmi/id/product_name 2>/dev/null)" in
    *Q35*) [ -r /sys/firmware/acpi/tables/MCFG ] || MISS="$MISS,MCFG" ;;
  esac
  [ -r /sys/firmware/dmi/tables/DMI ] || MISS="$MISS,DMI"
  [ -n "$TOK" ] && [ "$TOK" = "$SER" ] || MISS="$MISS,serial"
  if [ -z "$MISS" ]; then TB=ok; else TB="missing$MISS"; fi
fi
# Who the SMBIOS tables say the firmware is ("none": no SMBIOS at all).
BV=$(cat /sys/class/dmi/id/bios_vendor 2>/dev/null | tr -c 'A-Za-z0-9.\n' '_')
[ -n "$BV" ] || BV=none
# UEFI variables from the OS: with ember.efivar=write, store this boot's
# TSC in a non-volatile variable through efivarfs; with ember.efivar=read,
# report what the variable holds (the harness boots write, then read, with
# the same variable store).
EV=
for a in $(cat /proc/cmdline); do
  case "$a" in ember.efivar=*) EV="${a#ember.efivar=}" ;; esac
done
EVR=
# systemd's loader interface: the time the loader handed over (µs since
# reset), as Ember or systemd-boot set it ("none" without it).
LD=none
if [ -d /sys/firmware/efi ]; then
  insmod /lib/efivarfs.ko 2>/dev/null
  mount -t efivarfs efivarfs /sys/firmware/efi/efivars
  L=/sys/firmware/efi/efivars/LoaderTimeExecUSec-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f
  [ -r $L ] && LD=$(tail -c +5 $L | tr -d '\000')
fi
if [ -n "$EV" ]; then
  F=/sys/firmware/efi/efivars/EmberPersist-3c1f1e2e-8a3d-4b57-9e21-456d62657221
  if [ "$EV" = write ]; then
    printf '\007\000\000\000%s' "$T" > /tmp/v
    cat /tmp/v > $F && EVR=" efivar=wrote:$T" || EVR=" efivar=write-failed"
  else
    EVR=" efivar=read:$(tail -c +5 $F 2>/dev/null)"
  fi
fi
echo "EMBER-MARKER: $V tsc=$T efi=$E efiwarn=$W tables=$TB dmi=$BV loader=$LD$EVR" > /dev/console
poweroff -f
"#;

fn build_initramfs(busybox: &Path, tsc: &Path, efivarfs: &Path) -> Result<PathBuf> {
    let bb = std::fs::read(busybox).map_err(|e| format!("read {}: {e}", busybox.display()))?;
    let helper = std::fs::read(tsc).map_err(|e| format!("read {}: {e}", tsc.display()))?;
    let evfs = std::fs::read(efivarfs).map_err(|e| format!("read {}: {e}", efivarfs.display()))?;
    let key = Fnv::new()
        .bytes(&bb)
        .bytes(&helper)
        .bytes(&evfs)
        .str(INIT)
        .hex();
    let out = guest_dir().join("initrd.img");
    let keyfile = guest_dir().join("initrd.key");
    if out.is_file() && read_to_string(&keyfile).is_ok_and(|k| k == key) {
        return Ok(out);
    }
    let stage = guest_dir().join("initramfs");
    remove_dir_all_if_exists(&stage)?;
    for d in ["bin", "sbin", "proc", "sys", "dev", "tmp", "root"] {
        mkdirs(&stage.join(d))?;
    }
    let exe = |p: &Path| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("chmod {}: {e}", p.display()))
    };
    write(&stage.join("bin/busybox"), &bb)?;
    exe(&stage.join("bin/busybox"))?;
    write(&stage.join("bin/tsc"), &helper)?;
    exe(&stage.join("bin/tsc"))?;
    write(&stage.join("init"), INIT)?;
    mkdirs(&stage.join("lib"))?;
    write(&stage.join("lib/efivarfs.ko"), &evfs)?;
    exe(&stage.join("init"))?;
    // The static busybox runs on the build host too: ask it for its applets.
    let list = output(Command::new(busybox).arg("--list-full"))?;
    for applet in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let link = stage.join(applet);
        if link.exists() || applet == "bin/busybox" {
            continue;
        }
        if let Some(parent) = link.parent() {
            mkdirs(parent)?;
        }
        let depth = applet.matches('/').count();
        let target = format!("{}bin/busybox", "../".repeat(depth));
        std::os::unix::fs::symlink(&target, &link)
            .map_err(|e| format!("symlink {}: {e}", link.display()))?;
    }
    let tmp = guest_dir().join("initrd.img.tmp");
    // Sorted names and fixed owner keep the archive stable between builds.
    let script = format!(
        "set -e; find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -9n > '{}'",
        tmp.display()
    );
    run(Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(&stage))?;
    std::fs::rename(&tmp, &out).map_err(|e| format!("rename {}: {e}", tmp.display()))?;
    write(&keyfile, &key)?;
    println!("guest: built {}", out.display());
    Ok(out)
}
