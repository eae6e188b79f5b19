//! Ember for aarch64: the flash image for QEMU `virt` (`-bios`), the check
//! that its entry touches no memory before the MMU is on, and its boot test.

use crate::disk::{Disk, Fs, Kind, Part, Src, Table};
use crate::util::{cargo, cargo_target_dir, mkdirs, output, run, target_dir, tool, write, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const TARGET: &str = "aarch64-unknown-none";

/// virt's flash 0, where the image lives (RAM-only segments are left out).
const FLASH_LEN: u64 = 64 << 20;

/// Where `cargo xtask build` leaves the aarch64 flash image.
pub fn dist_bin() -> PathBuf {
    target_dir().join("dist").join("ember-aarch64.bin")
}

/// Build the firmware and cut the flash image (code, read-only data and
/// the translation tables, then .data's initial contents) from the ELF.
pub fn build() -> Result<PathBuf> {
    let installed =
        output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if !installed.lines().any(|l| l.trim() == TARGET) {
        run(Command::new("rustup").args(["target", "add", TARGET]))?;
    }
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "ember-aarch64",
        "--target",
        TARGET,
    ]))?;
    let built = cargo_target_dir()
        .join(TARGET)
        .join("release")
        .join("ember-aarch64");
    let elf = std::fs::read(&built).map_err(|e| format!("read {}: {e}", built.display()))?;
    let (base, bytes) = crate::image::flatten(&elf, FLASH_LEN)?;
    if base != 0 {
        return Err(format!(
            "{}: flash image starts at {base:#x}, not 0",
            built.display()
        ));
    }
    let dist = dist_bin();
    mkdirs(dist.parent().expect("dist has a parent"))?;
    write(&dist, &bytes)?;
    println!(
        "{}: {} bytes ({:.1} KiB)",
        dist.display(),
        bytes.len(),
        bytes.len() as f64 / 1024.0
    );
    Ok(dist)
}

/// What an instruction before the MMU is on may be. Everything else —
/// in particular every load, store, `DC` and atomic — is refused: before
/// the MMU is on, any data access bypasses the caches.
fn allowed(i: u32) -> Option<&'static str> {
    Some(match i {
        _ if i & 0x1f80_0000 == 0x1280_0000 => "move wide (movz/movk/movn)",
        _ if i & 0x1f00_0000 == 0x1000_0000 => "adr/adrp",
        _ if i & 0x1f00_0000 == 0x1100_0000 => "add/sub immediate (incl. cmp)",
        _ if i & 0x1f80_0000 == 0x1200_0000 => "logical immediate",
        _ if i & 0x1f00_0000 == 0x0a00_0000 => "logical register (incl. mov)",
        _ if i & 0xffd0_0000 == 0xd510_0000 => "msr/mrs system register",
        _ if i & 0xffff_f01f == 0xd503_301f => "barrier (dsb/dmb/isb)",
        _ if i & 0xffff_f01f == 0xd503_201f => "hint (nop/wfe)",
        _ if i & 0xfff8_f000 == 0xd508_8000 => "tlbi",
        _ if i & 0xff00_0010 == 0x5400_0000 => "b.cond",
        _ if i & 0x7c00_0000 == 0x1400_0000 => "b/bl",
        _ if i & 0x7e00_0000 == 0x3400_0000 => "cbz/cbnz",
        _ if i & 0xfe00_0000 == 0xd600_0000 => "branch to register (br/ret/eret)",
        _ => return None,
    })
}

/// `msr sctlr_el1, xN`: the instruction that turns the MMU on.
fn is_sctlr_write(i: u32) -> bool {
    i & 0xffff_ffe0 == 0xd518_1000
}

/// Decode the image from its first instruction (the reset address) up to
/// the SCTLR_EL1 write; every instruction must be allowed. Returns how many
/// came before it.
pub fn check_entry(image: &[u8]) -> Result<usize> {
    for (n, w) in image.chunks_exact(4).enumerate() {
        let i = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        if is_sctlr_write(i) {
            return Ok(n);
        }
        if allowed(i).is_none() {
            return Err(format!(
                "instruction {n} (offset {:#x}) is {i:#010x}, which may access memory, before the MMU is on",
                n * 4
            ));
        }
    }
    Err("no write of SCTLR_EL1 found: the MMU is never turned on".into())
}

/// The host's UTC date, `YYYY-MM-DD`, `secs_ago` seconds back.
fn utc_date(secs_ago: u64) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .saturating_sub(secs_ago);
    // Days to civil date (proleptic Gregorian), as in any libc.
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// QEMU arguments for `img` as a disk (the VM's writes discarded) behind
/// `device`, e.g. `virtio-blk-device` (virtio-mmio) or `virtio-blk-pci`.
pub(crate) fn drive(img: &Path, device: &str) -> Vec<std::ffi::OsString> {
    vec![
        "-drive".into(),
        format!(
            "file={},format=raw,if=none,id=d0,snapshot=on",
            img.display()
        )
        .into(),
        "-device".into(),
        format!("{device},drive=d0").into(),
    ]
}

/// The platform check: Ember alone (no kernel) with `mem_mib` of RAM and
/// `disk` as a virtio-mmio block device.
fn boot(log: &Path, mem_mib: u32, disk: &Path) -> Result<String> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "-m".into(),
        format!("{mem_mib}M").into(),
        "-bios".into(),
        dist_bin().into(),
    ];
    args.extend(drive(disk, "virtio-blk-device"));
    boot_guest_bare(log, &args).map(|(out, _)| out)
}

/// The arm64 guest: Debian's cloud kernel (an uncompressed `Image`) and an
/// initramfs whose /init (arm64 busybox) prints the marker with the
/// command line and powers off. Packages come through apt with arm64 added
/// as a foreign architecture.
pub(crate) fn guest() -> Result<(PathBuf, PathBuf)> {
    let foreign =
        output(Command::new("dpkg").arg("--print-foreign-architectures")).unwrap_or_default();
    if !foreign.lines().any(|l| l.trim() == "arm64") {
        run(Command::new("dpkg").args(["--add-architecture", "arm64"]))?;
        run(tool("apt-get").args(["update", "-q"]))?;
    }
    let deps = output(tool("apt-cache").args(["depends", "linux-image-cloud-arm64:arm64"]))?;
    let kpkg = deps
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .map(|d| d.trim().to_string())
        .find(|d| d.starts_with("linux-image-") && d.contains("-cloud-arm64"))
        .ok_or("cannot resolve linux-image-cloud-arm64:arm64")?;
    let kpkg = if kpkg.ends_with(":arm64") {
        kpkg
    } else {
        format!("{kpkg}:arm64")
    };
    let kdir = crate::guest::fetch(&kpkg)?;
    let boot_dir = kdir.join("boot");
    let kernel = std::fs::read_dir(&boot_dir)
        .map_err(|e| format!("read {}: {e}", boot_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .ok_or_else(|| format!("no vmlinuz in {}", boot_dir.display()))?;
    let busybox = crate::guest::fetch("busybox-static:arm64")?.join("bin/busybox");
    // efivarfs is a module in Debian's kernel: /init loads it to read
    // variables at run time.
    let release = kernel
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .ok_or("kernel file name without a release")?
        .to_string();
    let efivarfs = kdir
        .join("lib/modules")
        .join(&release)
        .join("kernel/fs/efivarfs/efivarfs.ko");
    let dir = crate::guest::guest_dir().join("arm64");
    let stage = dir.join("initrd");
    let _ = std::fs::remove_dir_all(&stage);
    mkdirs(&stage.join("bin"))?;
    mkdirs(&stage.join("lib"))?;
    std::fs::copy(&busybox, stage.join("bin/busybox"))
        .map_err(|e| format!("copy {}: {e}", busybox.display()))?;
    std::fs::copy(&efivarfs, stage.join("lib/efivarfs.ko"))
        .map_err(|e| format!("copy {}: {e}", efivarfs.display()))?;
    write(&stage.join("init"), INIT.as_bytes())?;
    let tsc = time_helper()?;
    std::fs::copy(&tsc, stage.join("bin/tsc"))
        .map_err(|e| format!("copy {}: {e}", tsc.display()))?;
    use std::os::unix::fs::PermissionsExt;
    for f in ["init", "bin/busybox", "bin/tsc"] {
        std::fs::set_permissions(stage.join(f), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("chmod {f}: {e}"))?;
    }
    let initrd = dir.join("initrd.img");
    let script = format!(
        "set -e; find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet > '{}'",
        initrd.display()
    );
    run(Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(&stage))?;
    Ok((kernel, initrd))
}

/// guest/tsc built for arm64 (aarch64-unknown-none, raw syscalls): prints
/// the virtual counter in nanoseconds, i.e. the time since reset under
/// `-icount`.
fn time_helper() -> Result<PathBuf> {
    let tdir = crate::guest::guest_dir().join("tsc-aarch64");
    run(cargo()
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            TARGET,
            "--manifest-path",
        ])
        .arg(crate::util::root().join("guest/tsc/Cargo.toml"))
        .env("CARGO_TARGET_DIR", &tdir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("RUSTFLAGS", "-C panic=abort -C relocation-model=static"))?;
    Ok(tdir.join(TARGET).join("release").join("ember-guest-tsc"))
}

/// The arm64 guest's /init: the marker (with the command line, which
/// carries the harness's token, and the device tree's `model`) comes from
/// the initramfs, so it proves the kernel, the initrd, `/chosen` and which
/// device tree all arrived. `efi=1` says the kernel came up with UEFI,
/// `rtc=rtc-efi` that its clock is the runtime service GetTime (called
/// after ExitBootServices, from the OS's own mapping), `efiwarn` counts
/// the kernel's EFI messages that complain, `acpi=1` that the firmware
/// published ACPI 2.0 tables as a configuration table, `osacpi=1` that the
/// kernel runs on them (it prefers the device tree unless `acpi=force`),
/// `dmi` the system vendor in the SMBIOS tables the firmware published,
/// and `loader` is systemd's
/// LoaderTimeExecUSec as the OS reads it through efivarfs (GetVariable at
/// run time), `none` without it.
const INIT: &str = "#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
T=$(/bin/tsc)
M=$(/bin/busybox tr -d '\\000' < /proc/device-tree/model)
E=0; [ -d /sys/firmware/efi ] && E=1
R=$(/bin/busybox cat /sys/class/rtc/rtc0/name 2>/dev/null | /bin/busybox cut -d' ' -f1)
W=$(/bin/busybox dmesg | /bin/busybox grep -iE '\\befi\\b|firmware bug' | /bin/busybox grep -ciE 'warn|error|fail|bug')
LD=none
A=0
AB=0; [ -r /sys/firmware/acpi/tables/DSDT ] && AB=1
D=$(/bin/busybox cat /sys/class/dmi/id/sys_vendor 2>/dev/null | /bin/busybox tr -c 'A-Za-z0-9.\\n' '_')
[ -n \"$D\" ] || D=none
if [ $E = 1 ]; then
  /bin/busybox grep -q '^ACPI20=' /sys/firmware/efi/systab 2>/dev/null && A=1
  /bin/busybox insmod /lib/efivarfs.ko 2>/dev/null
  /bin/busybox mount -t efivarfs efivarfs /sys/firmware/efi/efivars
  L=/sys/firmware/efi/efivars/LoaderTimeExecUSec-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f
  [ -r $L ] && LD=$(/bin/busybox tail -c +5 $L | /bin/busybox tr -d '\\000')
fi
echo \"EMBER-MARKER: arm64-kernel tsc=$T model=$M efi=$E rtc=$R efiwarn=$W acpi=$A osacpi=$AB dmi=$D loader=$LD cmdline=$(/bin/busybox cat /proc/cmdline)\"
# ember.reboot: restart instead of powering off. With UEFI runtime services
# Linux restarts through ResetSystem (arm64's machine_restart calls it
# first); the harness runs QEMU with -no-reboot, so a reset ends it.
if /bin/busybox grep -q ember.reboot /proc/cmdline; then
  /bin/busybox reboot -f
fi
/bin/busybox poweroff -f
";

/// virt with Ember as `-bios` plus `args` (a `-kernel` or a disk), until
/// the guest powers off.
fn boot_guest(log: &Path, args: &[std::ffi::OsString]) -> Result<(String, Duration)> {
    let mut all: Vec<std::ffi::OsString> =
        vec!["-m".into(), "1G".into(), "-bios".into(), dist_bin().into()];
    all.extend(args.iter().cloned());
    boot_guest_bare(log, &all)
}

/// virt with exactly `args` (memory and firmware included), until the
/// guest powers off (at most 300 s).
pub(crate) fn boot_guest_bare(
    log: &Path,
    args: &[std::ffi::OsString],
) -> Result<(String, Duration)> {
    let mut c = tool("qemu-system-aarch64");
    c.args([
        "-machine",
        "virt,accel=tcg",
        "-cpu",
        "cortex-a57",
        "-smp",
        "1",
    ])
    .args(args)
    .args([
        "-nographic",
        "-no-reboot",
        "-nic",
        "none",
        "-monitor",
        "none",
    ])
    .arg("-serial")
    .arg(format!("file:{}", log.display()))
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    crate::util::run_qemu_to_exit(c, log)
}

/// A per-run token for a guest command line: only a command line that
/// reached Linux carries it back in the marker.
pub(crate) fn run_token() -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!("ember.token={ns:x}")
}

/// The guest's marker (what follows `EMBER-MARKER: `), or "".
pub(crate) fn marker(out: &str) -> &str {
    out.lines()
        .find_map(|l| l.split("EMBER-MARKER: ").nth(1))
        .map(str::trim)
        .unwrap_or("")
}

/// Print a case's PASS line, or its FAIL line with the console's tail;
/// returns (passed, failed).
pub(crate) fn verdict(
    case: &str,
    ok: bool,
    wall: Duration,
    summary: &str,
    out: &str,
) -> (usize, usize) {
    if ok {
        println!(
            "PASS {case:<24} wall {:6.1}s  {summary}",
            wall.as_secs_f64()
        );
        (1, 0)
    } else {
        println!(
            "FAIL {case}: {summary}; console:\n{}",
            crate::util::tail(out, 25)
        );
        (0, 1)
    }
}

/// The disk boots (Boot Loader Specification entries).
const BLS_CASES: [&str; 3] = [
    "bls/aarch64-virt",
    "bls/aarch64-virt-pci",
    "bls/aarch64-virt-dtb",
];

/// The entry check and the boot on `virt`; returns (passed, failed).
pub fn test(filter: Option<&str>) -> Result<(usize, usize)> {
    let (mut pass, mut fail) = (0, 0);
    let want = |n: &str| filter.is_none_or(|f| n.contains(f));
    if !want("aarch64-entry")
        && !want("aarch64/virt")
        && !want("wxn/aarch64-virt")
        && !want("fault/aarch64-virt")
        && !want("qemu-kernel/aarch64-virt")
        && !want("mmu/aarch64-virt")
        && !BLS_CASES.iter().any(|c| want(c))
        && !crate::aarch64efi::CASES.iter().any(|c| want(c))
    {
        return Ok((0, 0));
    }
    build()?;
    let image =
        std::fs::read(dist_bin()).map_err(|e| format!("read {}: {e}", dist_bin().display()))?;
    if want("aarch64-entry") {
        match check_entry(&image) {
            Ok(n) => {
                println!("PASS aarch64-entry: {n} instructions before `msr sctlr_el1`, none of them a memory access");
                pass += 1;
            }
            Err(e) => {
                println!("FAIL aarch64-entry: {e}");
                fail += 1;
            }
        }
    }
    if want("aarch64/virt") {
        // An unusual size, so the report cannot be right by accident.
        let mem_mib = 1536;
        let dir = crate::guest::guest_dir().join("logs");
        mkdirs(&dir)?;
        let log = dir.join("aarch64-virt.log");
        // Any disk will do: Ember only has to find the device.
        let disk = dir.join("aarch64-blank.img");
        std::fs::File::create(&disk)
            .and_then(|f| f.set_len(1 << 20))
            .map_err(|e| format!("create {}: {e}", disk.display()))?;
        let t0 = Instant::now();
        let out = boot(&log, mem_mib, &disk)?;
        let banner = out
            .lines()
            .find(|l| l.starts_with("Ember "))
            .unwrap_or("")
            .trim()
            .to_string();
        // The RTC must read the host's date (either side of a midnight
        // during the run).
        let rtc_ok = [0, 120]
            .iter()
            .any(|&ago| out.contains(&format!("RTC: PL031 at 0x9010000: {}", utc_date(ago))));
        let ok = banner.contains("MMU on caches on WXN on")
            && out.contains(&format!("{mem_mib} MiB of RAM"))
            && rtc_ok
            && out.contains("signature \"QEMU\"")
            && out.contains("block device (ID 2)")
            && out.contains("PCIe: ECAM at")
            && out.contains("powering off");
        let summary = format!("{banner}; {mem_mib} MiB; PL031 date, fw_cfg, virtio-blk and ECAM found; PSCI power-off");
        let (p, f) = verdict("aarch64/virt", ok, t0.elapsed(), &summary, &out);
        pass += p;
        fail += f;
    }
    // Ember's self-tests through its exception report: running code it
    // just wrote must fault (WXN), and so must reading unmapped memory.
    for (case, test) in [
        ("wxn/aarch64-virt", "exec"),
        ("fault/aarch64-virt", "fault"),
    ] {
        if !want(case) {
            continue;
        }
        let logs = crate::guest::guest_dir().join("logs");
        mkdirs(&logs)?;
        let log = logs.join(format!("{}.log", case.replace('/', "-")));
        let args: Vec<std::ffi::OsString> = vec![
            "-fw_cfg".into(),
            format!("name=opt/ember/cmdline,string=ember.selftest={test}").into(),
        ];
        let (out, wall) = boot_guest(&log, &args)?;
        let report = out
            .lines()
            .find(|l| l.contains("!!! Ember: "))
            .unwrap_or("")
            .trim()
            .to_string();
        let ok = match test {
            // The faulting address is the buffer Ember reported writing.
            "exec" => out
                .lines()
                .find_map(|l| l.split("just written at ").nth(1))
                .map(str::trim)
                .is_some_and(|a| {
                    report.contains(&format!(
                        "instruction abort permission fault at ELR {a}, FAR {a}"
                    ))
                }),
            _ => {
                report.contains("data abort translation fault")
                    && report.contains("FAR 0x10000000000")
            }
        } && out.contains("!!! Ember stopped.");
        let (p, f) = verdict(case, ok, wall, &report, &out);
        pass += p;
        fail += f;
    }
    // ember.selftest=mmu (mmu.rs): tables to RAM, attribute changes with
    // live block splits (3 GiB: one of real RAM beyond Ember's GiB), then
    // a `ret` made read-only and executable runs, and writing it must be a
    // permission fault at that address.
    if want("mmu/aarch64-virt") {
        let logs = crate::guest::guest_dir().join("logs");
        mkdirs(&logs)?;
        let args: Vec<std::ffi::OsString> = vec![
            "-m".into(),
            "3G".into(),
            "-bios".into(),
            dist_bin().into(),
            "-fw_cfg".into(),
            "name=opt/ember/cmdline,string=ember.selftest=mmu".into(),
        ];
        let (out, wall) = boot_guest_bare(&logs.join("mmu-aarch64-virt.log"), &args)?;
        let report = out
            .lines()
            .find(|l| l.contains("!!! Ember: "))
            .unwrap_or("")
            .trim();
        let ok = out.contains("selftest: mmu ok")
            && !out.contains("FAILED")
            && out.contains("a 1 GiB block split live into tables inside it: ok")
            && out
                .lines()
                .find_map(|l| l.split("writing to the read-only page at ").nth(1))
                .is_some_and(|a| {
                    report.contains("data abort permission fault")
                        && report.contains(&format!("FAR {} (", a.trim()))
                })
            && out.contains("!!! Ember stopped.");
        let (p, f) = verdict("mmu/aarch64-virt", ok, wall, report, &out);
        pass += p;
        fail += f;
    }
    if want("qemu-kernel/aarch64-virt") {
        let (kernel, initrd) = guest()?;
        let dir = crate::guest::guest_dir().join("logs");
        mkdirs(&dir)?;
        let log = dir.join("qemu-kernel-aarch64-virt.log");
        let token = run_token();
        let args: Vec<std::ffi::OsString> = vec![
            "-kernel".into(),
            kernel.clone().into(),
            "-initrd".into(),
            initrd.clone().into(),
            "-append".into(),
            format!("console=ttyAMA0 panic=-1 {token}").into(),
        ];
        let (out, wall) = boot_guest(&log, &args)?;
        let m = marker(&out);
        let ok =
            m.starts_with("arm64-kernel") && m.contains(&token) && out.contains("with the MMU off");
        let summary = format!("Debian arm64 kernel + initramfs via fw_cfg DMA, /chosen edited; marker with {token}: {m}");
        let (p, f) = verdict("qemu-kernel/aarch64-virt", ok, wall, &summary, &out);
        pass += p;
        fail += f;
    }
    if BLS_CASES.iter().any(|c| want(c)) {
        let (kernel, initrd) = guest()?;
        let dir = crate::guest::guest_dir().join("arm64");
        let logs = crate::guest::guest_dir().join("logs");
        mkdirs(&logs)?;
        let token = run_token();
        let entry = |extra: &str| {
            format!("title Ember arm64\nlinux /Image\ninitrd /initrd.img\n{extra}options console=ttyAMA0 panic=-1 {token}\n")
        };
        // GPT, a FAT32 ESP with the Image, the initramfs, a type #1 entry
        // whose options carry the token, and `more`; written to `name`.
        let disk = |name: &str, entry: String, more: Vec<(String, Src)>| -> Result<PathBuf> {
            let mut files = vec![
                ("/Image".into(), Src::Host(kernel.clone())),
                ("/initrd.img".into(), Src::Host(initrd.clone())),
                ("/loader/entries/arm64.conf".into(), Src::Text(entry)),
            ];
            files.extend(more);
            esp_disk(&dir.join(name), files)
        };
        // Boot `img` behind `device`: (console, wall time).
        let boot = |case: &str, img: &Path, device: &str| -> Result<(String, Duration)> {
            let log = logs.join(format!("{}.log", case.replace('/', "-")));
            boot_guest(&log, &drive(img, device))
        };
        if want("bls/aarch64-virt") || want("bls/aarch64-virt-pci") {
            // A decoy entry for x86_64 (first in sort order) that Ember
            // must skip.
            let decoy = "title x86_64 only\narchitecture x64\nsort-key 0\nlinux /Image\n";
            let img = disk(
                "bls.img",
                entry(""),
                vec![(
                    "/loader/entries/decoy-x64.conf".into(),
                    Src::Text(decoy.into()),
                )],
            )?;
            // The same disk behind virtio-mmio and behind virtio-pci (the
            // generic ECAM bridge, BARs from its `ranges`).
            for (case, device, what) in [
                ("bls/aarch64-virt", "virtio-blk-device", "virtio-mmio"),
                (
                    "bls/aarch64-virt-pci",
                    "virtio-blk-pci,disable-legacy=on",
                    "PCIe (ECAM, BARs from ranges, 64-bit BAR at 512 GiB), virtio-pci",
                ),
            ] {
                if !want(case) {
                    continue;
                }
                let (out, wall) = boot(case, &img, device)?;
                let m = marker(&out);
                // Behind PCIe, virtio's 64-bit prefetchable BAR must come
                // from the 64-bit window at 512 GiB (mapped by the second
                // level 1 table).
                let window_ok = !case.ends_with("-pci") || out.contains("Mem64 at 0x80");
                let ok = m.starts_with("arm64-kernel")
                    && m.contains(&token)
                    && out.contains("skipped, architecture")
                    && window_ok;
                let summary = format!("{what}, GPT, FAT32, BLS type #1 (an x64 entry skipped), Debian arm64 kernel; marker with {token}: {m}");
                let (p, f) = verdict(case, ok, wall, &summary, &out);
                pass += p;
                fail += f;
            }
        }
        let case = "bls/aarch64-virt-dtb";
        if want(case) {
            // The entry's own device tree (`devicetree`): QEMU's, its
            // `model` changed, which the guest reports.
            let dtb = virt_dtb(&dir)?;
            let img = disk(
                "bls-dtb.img",
                entry("devicetree /dtb/virt.dtb\n"),
                vec![("/dtb/virt.dtb".into(), Src::Host(dtb))],
            )?;
            let (out, wall) = boot(case, &img, "virtio-blk-device")?;
            let m = marker(&out);
            let ok = m.starts_with("arm64-kernel")
                && m.contains(&token)
                && m.contains(&format!("model={DTB_MODEL} "));
            let summary = format!("BLS `devicetree`: the entry's device tree (model {DTB_MODEL}) with Ember's /chosen; marker: {m}");
            let (p, f) = verdict(case, ok, wall, &summary, &out);
            pass += p;
            fail += f;
        }
    }
    // The UEFI boot chains (aarch64efi.rs) with Ember as the firmware;
    // `cargo xtask efi-aarch64 --firmware aavmf` runs them on AAVMF.
    let (p, f) = crate::aarch64efi::test(crate::aarch64efi::Firmware::Ember, filter)?;
    pass += p;
    fail += f;
    Ok((pass, fail))
}

/// The `model` of the device tree the `devicetree` test's entry names:
/// QEMU virt's own is `linux,dummy-virt`; same length, so the blob is
/// patched in place.
const DTB_MODEL: &str = "ember,devicetree";

/// QEMU virt's device tree for the test's machine (`dumpdtb`), with its root
/// `model` property changed to [`DTB_MODEL`].
fn virt_dtb(dir: &Path) -> Result<PathBuf> {
    let raw = dir.join("virt-qemu.dtb");
    run(tool("qemu-system-aarch64")
        .args(["-machine"])
        .arg(format!("virt,accel=tcg,dumpdtb={}", raw.display()))
        .args(["-cpu", "cortex-a57", "-smp", "1", "-m", "1G", "-nographic"])
        // With firmware QEMU leaves out devices (the PL061 GPIO), so the
        // tree must be dumped with it.
        .arg("-bios")
        .arg(dist_bin())
        .stdin(Stdio::null()))?;
    let mut dtb = std::fs::read(&raw).map_err(|e| format!("read {}: {e}", raw.display()))?;
    let be = |b: &[u8], o: usize| -> Option<usize> {
        Some(u32::from_be_bytes(b.get(o..o + 4)?.try_into().ok()?) as usize)
    };
    let strings = be(&dtb, 12).ok_or("dumped device tree too short")?;
    // The root's `model` property: FDT_PROP (3), length 17, name offset,
    // then the value.
    let at = dtb
        .windows(17)
        .position(|w| w == b"linux,dummy-virt\0")
        .filter(|&i| i >= 12 && be(&dtb, i - 12) == Some(3) && be(&dtb, i - 8) == Some(17))
        .filter(|&i| {
            be(&dtb, i - 4)
                .and_then(|n| dtb.get(strings + n..strings + n + 6))
                .is_some_and(|name| name == b"model\0")
        })
        .ok_or("QEMU's virt device tree has no model \"linux,dummy-virt\" first")?;
    dtb[at..at + 16].copy_from_slice(DTB_MODEL.as_bytes());
    let out = dir.join("virt-model.dtb");
    write(&out, &dtb)?;
    Ok(out)
}

/// AAVMF (Debian's `qemu-efi-aarch64`): the UEFI firmware Ember is
/// compared with.
pub const AAVMF_CODE: &str = "/usr/share/AAVMF/AAVMF_CODE.fd";
const AAVMF_VARS: &str = "/usr/share/AAVMF/AAVMF_VARS.fd";

/// QEMU arguments for AAVMF as the firmware: its code, and a snapshot of
/// its blank variable store (nothing written back).
pub(crate) fn aavmf_args() -> Vec<std::ffi::OsString> {
    [
        "-drive".to_string(),
        format!("if=pflash,format=raw,unit=0,readonly=on,file={AAVMF_CODE}"),
        "-drive".into(),
        format!("if=pflash,format=raw,unit=1,snapshot=on,file={AAVMF_VARS}"),
        // No 5 s boot-menu wait on a fresh variable store: what anyone
        // timing AAVMF would set.
        "-boot".into(),
        "menu=on,splash-time=0".into(),
    ]
    .into_iter()
    .map(Into::into)
    .collect()
}

/// The comparison disk: GPT, a FAT32 ESP with systemd-boot as
/// `\EFI\BOOT\BOOTAA64.EFI` and one type #1 entry (Image + initramfs).
/// Ember boots the entry itself; AAVMF boots systemd-boot, which boots the
/// same entry through the kernel's EFI stub.
fn bench_disk(kernel: &Path, initrd: &Path) -> Result<PathBuf> {
    let sdboot = crate::guest::fetch("systemd-boot-efi:arm64")?
        .join("usr/lib/systemd/boot/efi/systemd-bootaa64.efi");
    let entry = "title Ember arm64 bench\nlinux /Image\ninitrd /initrd.img\noptions console=ttyAMA0 panic=-1 ember.variant=bench\n";
    esp_disk(
        &crate::guest::guest_dir().join("arm64").join("bench.img"),
        vec![
            ("/EFI/BOOT/BOOTAA64.EFI".into(), Src::Host(sdboot)),
            ("/Image".into(), Src::Host(kernel.to_path_buf())),
            ("/initrd.img".into(), Src::Host(initrd.to_path_buf())),
            (
                "/loader/loader.conf".into(),
                Src::Text("timeout 0\n".into()),
            ),
            ("/loader/entries/arm64.conf".into(), Src::Text(entry.into())),
        ],
    )
}

/// A GPT disk at `img` whose one partition is a 64 MiB FAT32 ESP holding
/// `files`.
pub(crate) fn esp_disk(img: &Path, files: Vec<(String, Src)>) -> Result<PathBuf> {
    let d = Disk {
        table: Table::Gpt,
        parts: vec![Part {
            kind: Kind::Esp,
            size_mib: 64,
            fs: Fs::Fat { bits: 32, spc: 1 },
            files,
        }],
    };
    crate::disk::build_disk(&d, img)?;
    Ok(img.to_path_buf())
}

/// `cargo xtask bench-aarch64`: QEMU virt (TCG, `-icount shift=0,sleep=off`,
/// so guest time is virtual and deterministic), the same kernel and
/// initramfs booted five ways, interleaved, median of `runs`. Guest ms =
/// the virtual counter at the initramfs's marker.
pub fn bench(runs: usize) -> Result<bool> {
    crate::tools::ensure_host_tools()?;
    crate::firmware::build()?;
    let (kernel, initrd) = guest()?;
    let disk = bench_disk(&kernel, &initrd)?;
    let append = "console=ttyAMA0 panic=-1 ember.variant=bench";
    let os = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
    let kernel_args = {
        let mut a = os(&["-kernel"]);
        a.push(kernel.clone().into());
        a.extend(os(&["-initrd"]));
        a.push(initrd.clone().into());
        a.extend(os(&["-append", append]));
        a
    };
    let disk_args = drive(&disk, "virtio-blk-device");
    // The UEFI chains' disks (`efi/aarch64-*` layouts) with the same
    // command line: a UKI as BOOTAA64.EFI; systemd-boot, also the default
    // `efi` entry (so that Ember runs it rather than the kernel entry);
    // shim + GRUB.
    let g = crate::aarch64efi::prepare()?;
    let uki = crate::aarch64efi::uki("aarch64-bench-uki", &g, append)?;
    let uki_disk = esp_disk(
        &crate::guest::guest_dir()
            .join("arm64")
            .join("bench-uki.img"),
        vec![(format!("/EFI/BOOT/{}", g.loaders.boot_name), Src::Host(uki))],
    )?;
    let uki_args = drive(&uki_disk, "virtio-blk-device");
    // (`disk` names its images after the case: copy them away from the
    // test's own.)
    let chain_disk = |case: &str, name: &str| -> Result<PathBuf> {
        let built = crate::aarch64efi::disk(case, &g, append)?;
        let to = built.with_file_name(name);
        std::fs::rename(&built, &to).map_err(|e| format!("rename {}: {e}", built.display()))?;
        Ok(to)
    };
    let sdboot_args = drive(
        &chain_disk("efi/aarch64-systemd-boot", "bench-sdboot.img")?,
        "virtio-blk-device",
    );
    let grub_args = drive(
        &chain_disk("efi/aarch64-shim-grub", "bench-shim-grub.img")?,
        "virtio-blk-device",
    );
    let aavmf = aavmf_args();
    let ember = vec![std::ffi::OsString::from("-bios"), dist_bin().into()];
    // (name, firmware args, boot args, what it is)
    let configs: Vec<(
        &str,
        Vec<std::ffi::OsString>,
        &Vec<std::ffi::OsString>,
        &str,
    )> = vec![
        (
            "direct",
            Vec::new(),
            &kernel_args,
            "QEMU loads the Image itself: no firmware (the limit)",
        ),
        (
            "ember-kernel",
            ember.clone(),
            &kernel_args,
            "Ember -bios, -kernel through fw_cfg DMA",
        ),
        (
            "aavmf-kernel",
            aavmf.clone(),
            &kernel_args,
            "AAVMF, -kernel through its fw_cfg loader",
        ),
        (
            "ember-bls",
            ember.clone(),
            &disk_args,
            "Ember -bios, the disk's BLS entry, natively",
        ),
        (
            "aavmf-systemd-boot",
            aavmf.clone(),
            &disk_args,
            "AAVMF → systemd-boot → the same entry (EFI stub)",
        ),
        (
            "ember-uki",
            ember.clone(),
            &uki_args,
            "Ember -bios → BOOTAA64.EFI = UKI",
        ),
        (
            "aavmf-uki",
            aavmf.clone(),
            &uki_args,
            "AAVMF → BOOTAA64.EFI = the same UKI",
        ),
        (
            "ember-sdboot-efi",
            ember.clone(),
            &sdboot_args,
            "Ember -bios → the default `efi` entry: systemd-boot → the kernel entry",
        ),
        (
            "aavmf-sdboot-efi",
            aavmf.clone(),
            &sdboot_args,
            "AAVMF → BOOTAA64.EFI = systemd-boot on the same disk",
        ),
        (
            "ember-shim-grub",
            ember,
            &grub_args,
            "Ember -bios → BOOTAA64.EFI = shim → GRUB → ext4 /boot",
        ),
        (
            "aavmf-shim-grub",
            aavmf,
            &grub_args,
            "AAVMF → the same shim → GRUB",
        ),
    ];
    let logs = crate::guest::guest_dir().join("logs");
    mkdirs(&logs)?;
    let mut samples: Vec<Vec<(f64, f64)>> = vec![Vec::new(); configs.len()];
    for run_i in 0..runs {
        for (i, (name, fw, args, _)) in configs.iter().enumerate() {
            let log = logs.join(format!("bench-aarch64-{name}.log"));
            let mut all = os(&["-m", "1G"]);
            all.extend(fw.iter().cloned());
            all.extend(args.iter().cloned());
            all.extend(os(&["-icount", "shift=0,sleep=off"]));
            let (out, wall) = boot_guest_bare(&log, &all)?;
            let tsc = marker(&out)
                .split_whitespace()
                .find_map(|w| w.strip_prefix("tsc="))
                .and_then(|t| t.parse::<u64>().ok());
            let Some(tsc) = tsc else {
                return Err(format!(
                    "{name}: no marker with tsc= (log {})",
                    log.display()
                ));
            };
            println!(
                "run {}/{runs} {name:<20} guest {:8.1} ms  wall {:5.1} s",
                run_i + 1,
                tsc as f64 / 1e6,
                wall.as_secs_f64()
            );
            samples[i].push((tsc as f64 / 1e6, wall.as_secs_f64()));
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let med: Vec<(f64, f64)> = samples
        .iter()
        .map(|s| {
            (
                median(&s.iter().map(|x| x.0).collect::<Vec<_>>()),
                median(&s.iter().map(|x| x.1).collect::<Vec<_>>()),
            )
        })
        .collect();
    let limit = med[0].0;
    let over = |i: usize| med[i].0 - limit;
    let index = |n: &str| configs.iter().position(|c| c.0 == n);
    // An Ember row's overhead over the limit divided by its AAVMF row's.
    let ratio = |ember: &str, aavmf: &str| -> String {
        match (index(ember).map(over), index(aavmf).map(over)) {
            (Some(e), Some(a)) => format!("{:.3}", e / a),
            _ => "n/a".into(),
        }
    };
    println!("\naarch64 virt (cortex-a57, TCG, -icount), median of {runs}; guest ms = virtual time from reset to /init's marker");
    println!(
        "{:<20} {:>10} {:>8} {:>10} {:>8}  what",
        "config", "guest ms", "wall s", "over lim", "/AAVMF"
    );
    for (i, (name, _, _, what)) in configs.iter().enumerate() {
        let r = match *name {
            "ember-kernel" => ratio("ember-kernel", "aavmf-kernel"),
            "ember-bls" => ratio("ember-bls", "aavmf-systemd-boot"),
            "ember-uki" => ratio("ember-uki", "aavmf-uki"),
            "ember-sdboot-efi" => ratio("ember-sdboot-efi", "aavmf-sdboot-efi"),
            "ember-shim-grub" => ratio("ember-shim-grub", "aavmf-shim-grub"),
            _ => "-".into(),
        };
        let ((guest, wall), o) = (med[i], over(i));
        println!("{name:<20} {guest:>10.1} {wall:>8.1} {o:>10.1} {r:>8}  {what}");
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(ws: &[u32]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn register_only_entries_pass_and_stores_do_not() {
        // movz x1, #0xff04; msr mair_el1, x1; isb; msr sctlr_el1, x1
        let good = words(&[0xd29fe081, 0xd518a201, 0xd5033fdf, 0xd5181001]);
        assert_eq!(check_entry(&good), Ok(3));
        // str x1, [x2] before the MMU is on.
        let store = words(&[0xd29fe081, 0xf9000041, 0xd5181001]);
        assert!(check_entry(&store).unwrap_err().contains("instruction 1"));
        // ldr x1, [x2] (a load is a data access too), stp, dc zva.
        for bad in [0xf9400041, 0xa9000841, 0xd50b7421] {
            assert!(check_entry(&words(&[bad, 0xd5181001])).is_err(), "{bad:#x}");
        }
        // Never turning the MMU on is a failure.
        assert!(check_entry(&words(&[0xd503201f])).is_err());
    }
}
