//! arm64 UEFI boot chains from Debian's arm64 packages (issue #8): a UKI,
//! systemd-boot with a type #1 entry, and signed shim + GRUB, each on its
//! own GPT disk, booted on QEMU `virt` until the guest's marker appears.
//!
//! | case | ESP (GPT, FAT32) | what runs |
//! |---|---|---|
//! | `efi/aarch64-uki` | `\EFI\BOOT\BOOTAA64.EFI` = a UKI (`linuxaa64.efi.stub` + kernel, initramfs, command line) | systemd stub → kernel |
//! | `efi/aarch64-systemd-boot` | `BOOTAA64.EFI` = `systemd-bootaa64.efi`; `loader.conf` whose default is an `efi` entry naming `BOOTAA64.EFI`; a type #1 entry with `\Image`, `\initrd.img` | (the firmware → `efi` entry →) systemd-boot, which skips the entry naming itself → kernel EFI stub |
//! | `efi/aarch64-shim-grub` | `BOOTAA64.EFI` = signed shim, `grubaa64.efi` beside it, `\EFI\debian\grub.cfg`; partition 2 ext4 with `/boot` | shim → GRUB → `search --fs-uuid` → `/boot/grub/grub.cfg` → Linux |
//!
//! The firmware is Ember (`-bios ember-aarch64.bin`, in `cargo xtask
//! test`) or AAVMF (`cargo xtask efi-aarch64 --firmware aavmf`), which
//! proves the disks themselves are right.

use crate::aarch64::{
    aavmf_args, boot_guest_bare, dist_bin, esp_disk, guest, marker, run_token, verdict,
};
use crate::disk::Src;
use crate::efichains::{self, Loaders};
use crate::util::{mkdirs, run, Result};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The cases, in order (under AAVMF their PASS lines and logs carry
/// `-aavmf`).
pub const CASES: [&str; 5] = [
    "efi/aarch64-uki",
    "efi/aarch64-uki-acpi",
    "efi/aarch64-uki-type2",
    "efi/aarch64-systemd-boot",
    "efi/aarch64-shim-grub",
];

/// The firmware the cases boot under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    /// `-bios target/dist/ember-aarch64.bin`.
    Ember,
    /// Debian's AAVMF code + a snapshot of its blank variable store.
    Aavmf,
}

impl Firmware {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ember" => Some(Self::Ember),
            "aavmf" => Some(Self::Aavmf),
            _ => None,
        }
    }

    fn args(self) -> Vec<OsString> {
        match self {
            Self::Ember => vec!["-bios".into(), dist_bin().into()],
            Self::Aavmf => aavmf_args(),
        }
    }

    /// The case's name as printed: AAVMF's runs say so.
    fn label(self, case: &str) -> String {
        match self {
            Self::Ember => case.to_string(),
            Self::Aavmf => format!("{case}-aavmf"),
        }
    }
}

/// The kernel as an EFI application. Debian's arm64 `vmlinuz` is already
/// the uncompressed `Image` with its EFI stub's PE header (`MZ`, `PE\0\0`,
/// machine 0xaa64); a gzip-compressed one is decompressed to
/// `target/guest/arm64/Image.efi`.
pub fn efi_image(kernel: &Path) -> Result<PathBuf> {
    let head = |p: &Path| -> Result<Vec<u8>> {
        use std::io::Read;
        let mut b = Vec::new();
        std::fs::File::open(p)
            .and_then(|f| f.take(4096).read_to_end(&mut b))
            .map_err(|e| format!("read {}: {e}", p.display()))?;
        Ok(b)
    };
    let is_pe = |b: &[u8]| {
        let at = b
            .get(0x3c..0x40)
            .map_or(0, |w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as usize);
        b.starts_with(b"MZ") && b.get(at..at + 6) == Some(&[b'P', b'E', 0, 0, 0x64, 0xaa][..])
    };
    let h = head(kernel)?;
    if is_pe(&h) {
        return Ok(kernel.to_path_buf());
    }
    if !h.starts_with(&[0x1f, 0x8b]) {
        return Err(format!(
            "{}: neither an arm64 EFI-stub Image nor gzip",
            kernel.display()
        ));
    }
    let dir = crate::guest::guest_dir().join("arm64");
    mkdirs(&dir)?;
    let out = dir.join("Image.efi");
    run(std::process::Command::new("sh").arg("-c").arg(format!(
        "gzip -dc '{}' > '{}'",
        kernel.display(),
        out.display()
    )))?;
    if !is_pe(&head(&out)?) {
        return Err(format!(
            "{}: decompressed, but no arm64 PE header",
            kernel.display()
        ));
    }
    Ok(out)
}

/// The kernel release from `vmlinuz-<release>`.
fn release(kernel: &Path) -> String {
    kernel
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .unwrap_or("unknown")
        .to_string()
}

/// The arm64 guest and the loaders that boot it.
pub struct Guest {
    /// The kernel as an EFI application ([`efi_image`]).
    pub kernel: PathBuf,
    /// The arm64 initramfs whose /init prints the marker.
    pub initrd: PathBuf,
    /// e.g. `6.1.0-56-cloud-arm64`, for GRUB's file names.
    pub release: String,
    pub loaders: Loaders,
}

/// Fetch (or reuse) the guest and the arm64 loader packages.
pub fn prepare() -> Result<Guest> {
    let (kernel, initrd) = guest()?;
    Ok(Guest {
        release: release(&kernel),
        kernel: efi_image(&kernel)?,
        initrd,
        loaders: efichains::prepare_aarch64()?,
    })
}

/// A UKI `name.efi` booting the guest with `options` (cached by content).
pub fn uki(name: &str, g: &Guest, options: &str) -> Result<PathBuf> {
    efichains::uki(
        name,
        &g.loaders.stub,
        &g.kernel,
        &g.initrd,
        &g.release,
        options,
    )
}

/// The disk for `case`, booting the guest with `options` (the per-run
/// token among them), at `target/guest/arm64/<case>.img`.
pub fn disk(case: &str, g: &Guest, options: &str) -> Result<PathBuf> {
    let (kernel, initrd, rel, l) = (&g.kernel, &g.initrd, &g.release, &g.loaders);
    let dir = crate::guest::guest_dir().join("arm64");
    mkdirs(&dir)?;
    let img = dir.join(format!("{}.img", case.replace('/', "-")));
    let boot = format!("/EFI/BOOT/{}", l.boot_name);
    match case {
        "efi/aarch64-uki" => esp_disk(
            &img,
            vec![(boot, Src::Host(uki("aarch64-uki", g, options)?))],
        ),
        // A type #2 entry: the UKI in /EFI/Linux and no BOOTAA64.EFI, so
        // only a firmware that reads Boot Loader Specification entries
        // boots it (Ember; not AAVMF).
        "efi/aarch64-uki-type2" => esp_disk(
            &img,
            vec![(
                "/EFI/Linux/ember-arm64.efi".into(),
                Src::Host(uki("aarch64-uki-type2", g, options)?),
            )],
        ),
        // The kernel on QEMU's ACPI tables instead of the device tree.
        "efi/aarch64-uki-acpi" => esp_disk(
            &img,
            vec![(
                boot,
                Src::Host(uki("aarch64-uki-acpi", g, &format!("{options} acpi=force"))?),
            )],
        ),
        // systemd-boot is `BOOTAA64.EFI` and also the default type #1 entry
        // (`efi`), so that a firmware that reads entries itself (Ember
        // does, and prefers them to the removable-media path) starts
        // systemd-boot too. systemd-boot leaves out an `efi` entry naming
        // its own image, so it boots the other one, the kernel.
        "efi/aarch64-systemd-boot" => esp_disk(
            &img,
            vec![
                (boot.clone(), Src::Host(l.sdboot.clone())),
                ("/Image".into(), Src::Host(kernel.clone())),
                ("/initrd.img".into(), Src::Host(initrd.clone())),
                (
                    "/loader/loader.conf".into(),
                    Src::Text("timeout 0\ndefault systemd-boot.conf\n".into()),
                ),
                (
                    "/loader/entries/systemd-boot.conf".into(),
                    Src::Text(format!("title systemd-boot\nefi {boot}\n")),
                ),
                (
                    "/loader/entries/arm64.conf".into(),
                    Src::Text(format!(
                        "title Ember arm64 systemd-boot\nlinux /Image\ninitrd /initrd.img\noptions {options}\n"
                    )),
                ),
            ],
        ),
        "efi/aarch64-shim-grub" => {
            let d = efichains::shim_grub(l, kernel, initrd, rel, options);
            crate::disk::build_disk(&d, &img)?;
            Ok(img)
        }
        _ => Err(format!("no arm64 EFI case {case}")),
    }
}

/// Boot each case in [`CASES`] that `filter` selects under `fw`; a case
/// passes only with the guest's marker carrying this run's token (as every
/// aarch64 case checks). systemd-boot's case also needs the `initrd=`
/// argument systemd-boot puts first on the command line from the entry's
/// `initrd` line: the proof that systemd-boot, and not a firmware reading
/// the same entry itself, started the kernel. Returns (passed, failed).
pub fn test(fw: Firmware, filter: Option<&str>) -> Result<(usize, usize)> {
    let want = |n: &str| filter.is_none_or(|f| n.contains(f));
    // AAVMF reads no Boot Loader Specification entries.
    let cases: Vec<&str> = CASES
        .iter()
        .copied()
        .filter(|c| want(c) && !(fw == Firmware::Aavmf && *c == "efi/aarch64-uki-type2"))
        .collect();
    if cases.is_empty() {
        return Ok((0, 0));
    }
    let g = prepare()?;
    let logs = crate::guest::guest_dir().join("logs");
    mkdirs(&logs)?;
    let (mut pass, mut fail) = (0, 0);
    for case in cases {
        let token = run_token();
        // The UKI case ends with a restart: ResetSystem at run time.
        let reboot = if case == "efi/aarch64-uki" {
            " ember.reboot"
        } else {
            ""
        };
        let options = format!("console=ttyAMA0 panic=-1 {token}{reboot}");
        let img = disk(case, &g, &options)?;
        let label = fw.label(case);
        let log = logs.join(format!("{}.log", label.replace('/', "-")));
        let mut args: Vec<OsString> = vec!["-m".into(), "1G".into()];
        args.extend(fw.args());
        args.extend(crate::aarch64::drive(&img, "virtio-blk-device"));
        let (out, wall) = boot_guest_bare(&log, &args)?;
        let m = marker(&out);
        // systemd-boot also sets LoaderTimeExecUSec, which the OS must read
        // back through GetVariable at run time.
        let by_sdboot = case != "efi/aarch64-systemd-boot"
            || (m.contains("cmdline=initrd=\\initrd.img ") && loader_time(m).is_some());
        // UEFI all the way: the kernel has EFI, reads the clock through
        // the GetTime runtime service, none of its EFI messages complain,
        // and the firmware published QEMU's ACPI and SMBIOS tables
        // (`dmi=QEMU`: the system vendor). The Linux stub also complains
        // on the console about what the firmware got wrong (e.g.
        // "FIRMWARE BUG: kernel image not aligned on 64k boundary" when
        // LoadImage ignored SectionAlignment).
        let runtime = m.contains(" efi=1 rtc=rtc-efi efiwarn=0 acpi=1 ")
            && m.contains(" dmi=QEMU ")
            && !out.contains("EFI stub: ERROR");
        // With acpi=force the kernel must have run on the ACPI tables.
        let acpi_ok = case != "efi/aarch64-uki-acpi" || m.contains(" osacpi=1 ");
        // The restart went through (QEMU exited on it) and Linux's call of
        // ResetSystem did not fault (it would report a firmware bug in the
        // EFI runtime service and fall back to PSCI itself).
        let reset_ok = reboot.is_empty()
            || (out.contains("reboot: Restarting system")
                && !out.contains(crate::util::QEMU_KILLED)
                && !out.contains("Firmware Bug")
                && !out.contains("in EFI runtime service")
                && !out.contains("EFI Runtime Services are disabled"));
        // Ember must say it picked the type #2 entry.
        let type2_ok = case != "efi/aarch64-uki-type2" || out.contains("): booting ember-arm64");
        let ok = m.starts_with("arm64-kernel")
            && m.contains(&token)
            && by_sdboot
            && runtime
            && acpi_ok
            && type2_ok
            && reset_ok;
        let what = match case {
            "efi/aarch64-uki" => "BOOTAA64.EFI = UKI (linuxaa64.efi.stub), then a restart through ResetSystem",
            "efi/aarch64-uki-acpi" => "the UKI with acpi=force: the kernel on QEMU's ACPI tables",
            "efi/aarch64-uki-type2" => "type #2 entry: the UKI in /EFI/Linux, no BOOTAA64.EFI",
            "efi/aarch64-systemd-boot" => {
                "BOOTAA64.EFI = systemd-boot (also the default `efi` entry) → type #1 entry, initrd= from systemd-boot"
            }
            _ => "BOOTAA64.EFI = shim, grubaa64.efi, \\EFI\\debian\\grub.cfg, ext4 /boot",
        };
        let fw_name = match fw {
            Firmware::Ember => "Ember",
            Firmware::Aavmf => "AAVMF",
        };
        let summary = format!("{fw_name}: {what}; marker with {token}: {m}");
        let (p, f) = verdict(&label, ok, wall, &summary, &out);
        pass += p;
        fail += f;
    }
    Ok((pass, fail))
}

/// The marker's `loader=` value (LoaderTimeExecUSec, µs), if it is a number.
fn loader_time(marker: &str) -> Option<u64> {
    marker
        .split_ascii_whitespace()
        .find_map(|w| w.strip_prefix("loader="))?
        .parse()
        .ok()
}

/// `cargo xtask efi-aarch64 [--firmware ember|aavmf] [--filter SUBSTR]`.
pub fn run_cmd(fw: Firmware, filter: Option<&str>) -> Result<bool> {
    crate::tools::ensure_host_tools()?;
    if fw == Firmware::Ember {
        crate::aarch64::build()?;
    }
    let (pass, fail) = test(fw, filter)?;
    println!("{pass} passed, {fail} failed");
    Ok(fail == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_time_is_the_number_after_loader() {
        let m = "arm64-kernel tsc=1 model=x efi=1 rtc=rtc-efi efiwarn=0 loader=1433201 cmdline=a";
        assert_eq!(loader_time(m), Some(1_433_201));
        assert_eq!(loader_time("arm64-kernel loader=none cmdline=x"), None);
        assert_eq!(loader_time("arm64-kernel cmdline=loader=5"), None);
    }

    /// A file in the system's temporary directory, unique to this test run.
    fn temp(name: &str, bytes: &[u8]) -> PathBuf {
        let p = std::env::temp_dir().join(format!("xtask-{}-{name}", std::process::id()));
        std::fs::write(&p, bytes).expect("write temp file");
        p
    }

    #[test]
    fn efi_image_takes_an_arm64_pe_as_it_is_and_refuses_others() {
        // MZ, e_lfanew = 0x40, "PE\0\0", machine 0xaa64: used in place.
        let mut pe = vec![0u8; 0x80];
        pe[..2].copy_from_slice(b"MZ");
        pe[0x3c] = 0x40;
        pe[0x40..0x46].copy_from_slice(&[b'P', b'E', 0, 0, 0x64, 0xaa]);
        let p = temp("arm64.efi", &pe);
        assert_eq!(efi_image(&p).as_deref(), Ok(p.as_path()));
        // The same header for x86_64 (0x8664) is not an arm64 kernel.
        pe[0x44..0x46].copy_from_slice(&[0x64, 0x86]);
        let x = temp("x64.efi", &pe);
        assert!(efi_image(&x).unwrap_err().contains("neither"));
        // Nor is a file too short for a header.
        let t = temp("short", b"MZ");
        assert!(efi_image(&t).is_err());
        for f in [p, x, t] {
            let _ = std::fs::remove_file(f);
        }
    }
}
