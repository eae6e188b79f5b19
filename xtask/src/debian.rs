//! A real Debian system as a guest: bookworm made by `debootstrap` (systemd,
//! `linux-image-cloud-amd64`, initramfs-tools, efibootmgr), booted through
//! Debian's signed shim and GRUB from a GPT disk whose ext4 root is found by
//! UUID. A systemd unit (`ember-marker.service`) reports on the serial
//! console what the firmware did and drives the UEFI boot-manager checks from
//! inside Linux:
//!
//! * VM 1 (told `ember-action=bootnext` through SMBIOS type 11): efibootmgr
//!   creates a boot entry for the kernel's EFI stub on the ESP (not in
//!   BootOrder), sets BootNext to it and reboots; the firmware must then
//!   start that entry (BootCurrent == the new entry, `ember.stage=bootnext`
//!   on the command line), which powers off.
//! * VM 2, same variables file, no action: the default path (shim → GRUB)
//!   again, BootNext consumed, and a counter variable the guest increments
//!   through efivarfs on every boot shows the writes persisted across runs.
//!
//! `systemd-analyze time` is recorded on every boot: under Ember it must show
//! a `(firmware)` time (Ember sets systemd's `LoaderTimeInitUSec` and
//! `LoaderTimeExecUSec`); OVMF does not set them, so there it has none.
//!
//! The firmware is a parameter: OVMF (Debian's `ovmf`) is the reference the
//! image and the checks are validated against; Ember runs the same test with
//! its flash image as pflash unit 0 and a copy of its variables template as
//! unit 1.

use crate::disk::{self, Disk, Fs, Kind, Part, Src, Table};
use crate::efichains;
use crate::firmware::{dist_bin, dist_vars};
use crate::guest::{guest_dir, MARKER};
use crate::util::{
    copy, describe, mkdirs, read_to_string, remove_dir_all_if_exists, remove_file_if_exists, run,
    tail, tool, write, Fnv, Result,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Bump when the recipe (package set, files written into the root, disk
/// layout) changes: it is part of both cache stamps.
const RECIPE_VERSION: u32 = 1;

const SUITE: &str = "bookworm";
/// The host's apt source (`/etc/apt/sources.list.d/debian.sources`).
const MIRROR: &str = "http://deb.debian.org/debian";
/// What debootstrap checks the Release file against (passed explicitly so
/// a missing keyring is an error, not an unverified bootstrap).
pub const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// On top of `--variant=minbase`; no shim/GRUB: those come from the signed
/// packages efichains.rs fetches, straight onto the ESP.
const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "udev",
    "linux-image-cloud-amd64",
    "initramfs-tools",
    "efibootmgr",
    "efivar",
];

/// The root file system's UUID: GRUB's `search --fs-uuid`, `root=UUID=` and
/// /etc/fstab all name it.
const ROOT_UUID: &str = "e3be0deb-1a2b-4c3d-8e4f-0000deb1a2b3";
/// The guest's boot counter: `EmberDebianBoots-<this GUID>`, NV+BS+RT, u32 LE.
const COUNTER_GUID: &str = "5ad0e3be-1b2c-4d3e-8f40-456d62657231";
const COUNTER_NAME: &str = "EmberDebianBoots";
const BOOTNEXT_LABEL: &str = "Ember BootNext test";
/// Name of the fw_cfg file that also carries the action (the guest reads
/// SMBIOS type 11 first; fw_cfg is the fallback for a firmware that drops it).
const FW_CFG_ACTION: &str = "opt/org.ember.test/action";

const ESP_MIB: u64 = 200;
const ROOT_MIB: u64 = 1024;

/// VM 1 boots twice (GRUB, then the BootNext entry); VM 2 once. Measured
/// under TCG (OVMF, 2-core host): VM 1 ~70 s, VM 2 ~30 s; these leave room
/// for a loaded CI machine.
const VM1_TIMEOUT: Duration = Duration::from_secs(600);
const VM2_TIMEOUT: Duration = Duration::from_secs(300);
/// A booting or shutting-down guest writes to its console every few
/// seconds; this long a silence means it has stalled.
const STALL: Duration = Duration::from_secs(150);

/// The firmware the test runs under.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Firmware {
    /// Debian's OVMF (4M build): the reference.
    Ovmf,
    /// Ember's flash image and variables template from target/dist.
    Ember,
}

impl Firmware {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ovmf" => Some(Firmware::Ovmf),
            "ember" => Some(Firmware::Ember),
            _ => None,
        }
    }
    fn key(self) -> &'static str {
        match self {
            Firmware::Ovmf => "ovmf",
            Firmware::Ember => "ember",
        }
    }
    pub fn case_name(self) -> &'static str {
        match self {
            Firmware::Ovmf => "debian/q35-ovmf",
            Firmware::Ember => "debian/q35-pflash",
        }
    }
    /// pflash unit 0 (read-only code).
    fn code(self) -> PathBuf {
        match self {
            Firmware::Ovmf => PathBuf::from(crate::efiapp::OVMF_CODE),
            Firmware::Ember => dist_bin(),
        }
    }
    /// The blank variable store copied to pflash unit 1.
    fn vars_template(self) -> PathBuf {
        match self {
            Firmware::Ovmf => PathBuf::from("/usr/share/OVMF/OVMF_VARS_4M.fd"),
            Firmware::Ember => dist_vars(),
        }
    }
}

fn debian_dir() -> PathBuf {
    guest_dir().join("debian")
}

// ---------------------------------------------------------------------------
// The image

/// Runs as `ember-marker.service`. Markers are one line each, written
/// straight to /dev/console (one write each, after a newline in case
/// systemd's status line left the cursor mid-line); `ember-debian:` lines
/// are diagnostics only.
const MARKER_SCRIPT: &str = r#"#!/bin/sh
# Ember's Debian test (xtask/src/debian.rs): report what the firmware did,
# exercise UEFI variables from Linux, then reboot or power off.
UUID=@ROOT_UUID@
EFI=/sys/firmware/efi/efivars
GLOBAL=8be4df61-93ca-11d2-aa0d-00e098032b8c
COUNTER=$EFI/@COUNTER_NAME@-@COUNTER_GUID@
LABEL='@BOOTNEXT_LABEL@'
say() { printf 'ember-debian: %s\n' "$*" > /dev/console; }
marker() { printf '\nEMBER-MARKER: %s\n' "$*" > /dev/console; }

# a. `systemd-analyze time` fails until the boot transaction is done (this
#    unit is Type=simple, so it does not hold the boot up). Bounded wait.
A=
OUT=
i=0
while [ $i -lt 240 ]; do
  if OUT=$(systemd-analyze time 2>&1); then
    A=$(printf '%s\n' "$OUT" | head -n 1 | sed 's/[[:space:]]*$//')
    break
  fi
  i=$((i + 1))
  sleep 1
done
[ -n "$A" ] || A="unavailable: $(printf '%s\n' "$OUT" | head -n 1)"
A=$(printf '%s' "$A" | tr '"' "'")

# b. UEFI variables through efivarfs (systemd mounts it early).
mountpoint -q $EFI || mount -t efivarfs efivarfs $EFI
# 4 attribute bytes, then BootCurrent as a u16 (little endian, like the host).
BC=$(od -An -tx2 -j4 -N2 "$EFI/BootCurrent-$GLOBAL" 2>/dev/null | tr -d ' \n' | tr a-f A-F)
[ -n "$BC" ] || BC=none
OLD=0
[ -e "$COUNTER" ] && OLD=$(od -An -tu4 -j4 -N4 "$COUNTER" | tr -d ' \n')
case "$OLD" in ''|*[!0-9]*) say "counter unreadable: '$OLD'"; OLD=0 ;; esac
NEW=$((OLD + 1))
byte() { printf "\\$(printf %03o $(( ($1 >> $2) & 255 )))"; }
# efivarfs takes the attributes (NV|BS|RT = 7) before the data, and one
# write() is one SetVariable: stage the bytes, then cat writes them at once.
{ printf '\007\000\000\000'; byte $NEW 0; byte $NEW 8; byte $NEW 16; byte $NEW 24; } > /run/ember-counter
# efivarfs files are immutable unless known to be safe to delete.
[ -e "$COUNTER" ] && chattr -i "$COUNTER" 2>/dev/null
if cat /run/ember-counter > "$COUNTER"; then
  N=$(od -An -tu4 -j4 -N4 "$COUNTER" | tr -d ' \n')
  [ "$N" = "$NEW" ] || say "counter: wrote $NEW, read back '$N'"
  [ -n "$N" ] || N=unreadable
else
  N=write-failed
fi

# c. The harness's action: SMBIOS type 11 (OEM strings follow the formatted
#    area, whose length is byte 1), else the fw_cfg file.
ACT=none
SRC=none
for r in /sys/firmware/dmi/entries/11-*/raw; do
  [ -r "$r" ] || continue
  LEN=$(od -An -tu1 -j1 -N1 "$r" | tr -d ' ')
  V=$(tail -c +$((LEN + 1)) "$r" | tr '\000' '\n' | sed -n 's/^ember-action=//p' | head -n 1)
  if [ -n "$V" ]; then ACT=$V; SRC=smbios; break; fi
done
if [ "$SRC" = none ]; then
  modprobe qemu_fw_cfg 2>/dev/null
  F=/sys/firmware/qemu_fw_cfg/by_name/@FW_CFG_ACTION@/raw
  if [ -r "$F" ]; then ACT=$(cat "$F"); SRC=fw_cfg; fi
fi
STAGE=grub
case " $(cat /proc/cmdline) " in *" ember.stage=bootnext "*) STAGE=bootnext ;; esac
say "stage=$STAGE action=$ACT (from $SRC) bootcurrent=$BC counter=$N"
say "systemd-analyze: $A"

# d. Report, then reboot into the new entry or power off.
entries() { efibootmgr | grep -F "$LABEL" | sed -n 's/^Boot\([0-9A-Fa-f]\{4\}\).*/\1/p'; }
if [ "$STAGE" = bootnext ]; then
  marker "debian-bootnext bootcurrent=$BC counter=$N analyze=\"$A\""
  systemctl poweroff
elif [ "$ACT" = bootnext ]; then
  # A fresh entry: drop any left by an earlier run on this variables file.
  for b in $(entries); do efibootmgr -q -b "$b" -B; done
  # The kernel's EFI stub on the ESP; `-u`: the options as UCS-2, as the
  # stub expects. --create-only: not added to BootOrder.
  efibootmgr -q --create-only -d /dev/vda -p 1 -L "$LABEL" -l '\vmlinuz' \
    -u "initrd=\\initrd.img root=UUID=$UUID ro console=ttyS0 panic=-1 ember.stage=bootnext" \
    > /run/ember-efibootmgr 2>&1 || say "efibootmgr --create-only failed"
  NUM=$(entries | head -n 1)
  BN=failed
  if [ -n "$NUM" ] && efibootmgr -q -n "$NUM" >> /run/ember-efibootmgr 2>&1; then BN=$NUM; fi
  efibootmgr -v >> /run/ember-efibootmgr 2>&1
  while IFS= read -r l; do say "$l"; done < /run/ember-efibootmgr
  marker "debian-grub bootcurrent=$BC counter=$N analyze=\"$A\" bootnext=$BN"
  if [ "$BN" = failed ]; then systemctl poweroff; else systemctl reboot; fi
else
  marker "debian-grub bootcurrent=$BC counter=$N analyze=\"$A\""
  systemctl poweroff
fi
"#;

const MARKER_UNIT: &str = "\
[Unit]
Description=Ember test marker (cargo xtask debian)
After=local-fs.target sys-firmware-efi-efivars.mount

[Service]
# simple, not oneshot: the boot must be able to finish (systemd-analyze
# waits for that) while the script runs.
Type=simple
ExecStart=/usr/local/sbin/ember-marker
StandardInput=null
StandardOutput=tty
StandardError=tty
TTYPath=/dev/console

[Install]
WantedBy=multi-user.target
";

fn marker_script() -> String {
    MARKER_SCRIPT
        .replace("@ROOT_UUID@", ROOT_UUID)
        .replace("@COUNTER_NAME@", COUNTER_NAME)
        .replace("@COUNTER_GUID@", COUNTER_GUID)
        .replace("@BOOTNEXT_LABEL@", BOOTNEXT_LABEL)
        .replace("@FW_CFG_ACTION@", FW_CFG_ACTION)
}

fn grub_cfg(release: &str) -> String {
    format!(
        "set timeout=0\nset default=0\n\
         menuentry 'Debian GNU/Linux (Ember test)' {{\n\
         \tlinux /boot/vmlinuz-{release} root=UUID={ROOT_UUID} ro console=ttyS0 panic=-1\n\
         \tinitrd /boot/initrd.img-{release}\n}}\n"
    )
}

/// Build (or reuse) the Debian disk image: GPT, partition 1 a FAT32 ESP with
/// shim as `\EFI\BOOT\BOOTX64.EFI`, signed GRUB next to it, GRUB's stub
/// config in `\EFI\debian\`, and `\vmlinuz` + `\initrd.img` for the BootNext
/// entry; partition 2 the ext4 root (fixed UUID) with /boot/grub/grub.cfg.
pub fn image() -> Result<PathBuf> {
    let dir = debian_dir();
    mkdirs(&dir)?;
    let root = dir.join("root");
    let rootfs_stamp = rootfs(&dir, &root)?;
    let loaders = efichains::prepare()?;
    let release = kernel_release(&root)?;
    let (script, grub) = (marker_script(), grub_cfg(&release));
    let key = Fnv::new()
        .str(&format!("recipe {RECIPE_VERSION}"))
        .str(&rootfs_stamp)
        .str(&script)
        .str(MARKER_UNIT)
        .str(&grub)
        .file_meta(&loaders.shim)
        .file_meta(&loaders.grub)
        .hex();
    let img = dir.join("debian.img");
    let stamp = dir.join("debian.img.stamp");
    if img.is_file() && read_to_string(&stamp).is_ok_and(|k| k == key) {
        return Ok(img);
    }
    remove_file_if_exists(&stamp)?;
    let t0 = Instant::now();
    configure(&root, &script, &grub)?;
    let boot = root.join("boot");
    let esp_files = vec![
        (
            "/EFI/BOOT/BOOTX64.EFI".into(),
            Src::Host(loaders.shim.clone()),
        ),
        (
            "/EFI/BOOT/grubx64.efi".into(),
            Src::Host(loaders.grub.clone()),
        ),
        // As in efichains::shim_grub: signed GRUB's prefix is /EFI/debian.
        (
            "/EFI/debian/grub.cfg".into(),
            Src::Text(format!(
                "search --no-floppy --fs-uuid --set=root {ROOT_UUID}\n\
                 set prefix=($root)/boot/grub\n\
                 configfile $prefix/grub.cfg\n"
            )),
        ),
        // For the entry the guest creates with efibootmgr.
        (
            "/vmlinuz".into(),
            Src::Host(boot.join(format!("vmlinuz-{release}"))),
        ),
        (
            "/initrd.img".into(),
            Src::Host(boot.join(format!("initrd.img-{release}"))),
        ),
    ];
    let d = Disk {
        table: Table::Gpt,
        parts: vec![
            Part {
                kind: Kind::Esp,
                size_mib: ESP_MIB,
                fs: Fs::Fat { bits: 32, spc: 1 },
                files: esp_files,
            },
            Part {
                kind: Kind::Linux,
                size_mib: ROOT_MIB,
                fs: Fs::Ext4Tree(ROOT_UUID),
                files: vec![("/".into(), Src::Host(root.clone()))],
            },
        ],
    };
    let tmp = dir.join("debian.img.tmp");
    disk::build_disk(&d, &tmp)?;
    std::fs::rename(&tmp, &img).map_err(|e| format!("rename {}: {e}", tmp.display()))?;
    write(&stamp, &key)?;
    println!(
        "debian: built {} (kernel {release}) in {:.1}s",
        img.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(img)
}

/// The debootstrapped root in `root`, made once per recipe; returns its stamp.
fn rootfs(dir: &Path, root: &Path) -> Result<String> {
    let stamp_file = dir.join("root.stamp");
    let stamp = format!(
        "recipe {RECIPE_VERSION}: debootstrap --variant=minbase --include={} {SUITE} {MIRROR}",
        PACKAGES.join(",")
    );
    if root.is_dir() && read_to_string(&stamp_file).is_ok_and(|s| s == stamp) {
        return Ok(stamp);
    }
    remove_file_if_exists(&stamp_file)?;
    // debootstrap mounts /proc and /sys (in some containers a bind of /dev)
    // inside the target; a killed run can leave them behind, and deleting
    // through them would be a disaster.
    unmount_below(root)?;
    remove_dir_all_if_exists(root)?;
    let t0 = Instant::now();
    println!("debian: debootstrap {SUITE} into {} …", root.display());
    let log = dir.join("debootstrap.log");
    let out = std::fs::File::create(&log).map_err(|e| format!("create {}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let mut cmd = tool("debootstrap");
    cmd.arg("--variant=minbase")
        .arg(format!("--keyring={KEYRING}"))
        .arg(format!("--include={}", PACKAGES.join(",")))
        .arg(SUITE)
        .arg(root)
        .arg(MIRROR)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(out)
        .stderr(err);
    let res = run(&mut cmd);
    unmount_below(root)?;
    if let Err(e) = res {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        // debootstrap's own log names the failing package or download.
        let dlog =
            std::fs::read_to_string(root.join("debootstrap/debootstrap.log")).unwrap_or_default();
        return Err(format!(
            "{e}\n--- {} ---\n{}\n--- debootstrap/debootstrap.log ---\n{}",
            log.display(),
            tail(&text, 20),
            tail(&dlog, 20)
        ));
    }
    // Downloaded .debs and package lists: ~70 MiB the image does not need.
    for sub in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        let d = root.join(sub);
        for e in std::fs::read_dir(&d).map_err(|e| format!("read {}: {e}", d.display()))? {
            let p = e.map_err(|e| format!("read {}: {e}", d.display()))?.path();
            if p.is_file() {
                remove_file_if_exists(&p)?;
            }
        }
    }
    write(&stamp_file, &stamp)?;
    println!(
        "debian: debootstrap took {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    Ok(stamp)
}

/// Mount points at or below `dir` (from /proc/self/mountinfo), deepest first.
fn mounts_below(dir: &Path) -> Result<Vec<String>> {
    let info = read_to_string(Path::new("/proc/self/mountinfo"))?;
    let base = dir.to_string_lossy().trim_end_matches('/').to_string();
    let mut v: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        // mountinfo escapes space, tab, newline and backslash as octal.
        .map(|m| {
            m.replace("\\040", " ")
                .replace("\\011", "\t")
                .replace("\\012", "\n")
                .replace("\\134", "\\")
        })
        .filter(|m| *m == base || m.starts_with(&format!("{base}/")))
        .collect();
    v.sort_by_key(|m| std::cmp::Reverse(m.len()));
    Ok(v)
}

fn unmount_below(dir: &Path) -> Result {
    for m in mounts_below(dir)? {
        eprintln!("debian: unmounting leftover {m}");
        if run(tool("umount").arg(&m)).is_err() {
            run(tool("umount").arg("-l").arg(&m))?;
        }
    }
    let left = mounts_below(dir)?;
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "still mounted below {}: {} (unmount them by hand)",
            dir.display(),
            left.join(", ")
        ))
    }
}

/// The one kernel debootstrap installed (`boot/vmlinuz-<release>`).
fn kernel_release(root: &Path) -> Result<String> {
    let boot = root.join("boot");
    let mut rel: Vec<String> = std::fs::read_dir(&boot)
        .map_err(|e| format!("read {}: {e}", boot.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("vmlinuz-")
                .map(str::to_string)
        })
        .collect();
    rel.sort();
    let release = rel
        .pop()
        .ok_or_else(|| format!("no vmlinuz-* in {}", boot.display()))?;
    let initrd = boot.join(format!("initrd.img-{release}"));
    if !initrd.is_file() {
        return Err(format!(
            "{} missing: initramfs-tools did not run in the chroot",
            initrd.display()
        ));
    }
    Ok(release)
}

/// The files that make the debootstrapped tree this test's system. Plain
/// writes and symlinks from the host (what `systemctl enable/mask` would
/// do), so no chroot is needed; rewriting them is idempotent.
fn configure(root: &Path, script: &str, grub: &str) -> Result {
    let put = |rel: &str, text: &str| {
        let p = root.join(rel);
        mkdirs(p.parent().expect("has a parent"))?;
        write(&p, text)
    };
    let link = |rel: &str, target: &str| {
        let p = root.join(rel);
        mkdirs(p.parent().expect("has a parent"))?;
        remove_file_if_exists(&p)?;
        std::os::unix::fs::symlink(target, &p).map_err(|e| format!("symlink {}: {e}", p.display()))
    };
    put(
        "etc/fstab",
        &format!("UUID={ROOT_UUID} / ext4 defaults,errors=remount-ro 0 1\n"),
    )?;
    put("etc/hostname", "ember-debian\n")?;
    put("boot/grub/grub.cfg", grub)?;
    put("usr/local/sbin/ember-marker", script)?;
    let exe = root.join("usr/local/sbin/ember-marker");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod {}: {e}", exe.display()))?;
    put("etc/systemd/system/ember-marker.service", MARKER_UNIT)?;
    link(
        "etc/systemd/system/multi-user.target.wants/ember-marker.service",
        "/etc/systemd/system/ember-marker.service",
    )?;
    // Nobody logs in: no getty competing for the serial console, and no
    // timers (apt-daily would try the network on every boot).
    link("etc/systemd/system/serial-getty@ttyS0.service", "/dev/null")?;
    remove_file_if_exists(&root.join("etc/systemd/system/getty.target.wants/getty@tty1.service"))?;
    remove_dir_all_if_exists(&root.join("etc/systemd/system/timers.target.wants"))
}

// ---------------------------------------------------------------------------
// The test

/// q35 with `fw`'s code as pflash unit 0 and `vars` (writable, shared by the
/// runs) as unit 1; the guest is told `action` through SMBIOS type 11 and
/// fw_cfg. Without `reboot`, a guest reset ends QEMU.
fn command(
    fw: Firmware,
    vars: &Path,
    disk: &Path,
    log: &Path,
    action: &str,
    reboot: bool,
) -> Command {
    let mut c = crate::qemu::q35_pflash(&fw.code(), vars, disk, log);
    if !reboot {
        c.arg("-no-reboot");
    }
    c.arg("-smbios")
        .arg(format!("type=11,value=ember-action={action}"))
        .arg("-fw_cfg")
        .arg(format!("name={FW_CFG_ACTION},string={action}"));
    // QEMU's complaints are part of a failure report.
    c.stderr(Stdio::piped());
    c
}

/// One guest marker: `EMBER-MARKER: <stage> key=value … analyze="…"`.
#[derive(Debug)]
struct Marker {
    stage: String,
    fields: BTreeMap<String, String>,
}

impl Marker {
    fn get(&self, k: &str) -> &str {
        self.fields.get(k).map_or("", String::as_str)
    }
}

fn markers(log: &str) -> Vec<Marker> {
    log.lines()
        .filter_map(|l| {
            let rest = &l[l.find(MARKER)? + MARKER.len()..];
            let (stage, mut s) = rest.trim().split_once(' ').unwrap_or((rest.trim(), ""));
            if !stage.starts_with("debian-") {
                return None;
            }
            let mut fields = BTreeMap::new();
            while let Some((k, v)) = s.trim_start().split_once('=') {
                let (val, next) = match v.strip_prefix('"') {
                    Some(q) => q.split_once('"').unwrap_or((q, "")),
                    None => v.split_once(' ').unwrap_or((v, "")),
                };
                fields.insert(k.to_string(), val.to_string());
                s = next;
            }
            Some(Marker {
                stage: stage.to_string(),
                fields,
            })
        })
        .collect()
}

struct VmRun {
    log: String,
    wall: Duration,
    /// Why the harness stopped it, if QEMU did not exit by itself.
    stopped: Option<String>,
    stderr: String,
}

/// Run QEMU until it exits, `stop` returns a reason, its console stays
/// silent for [`STALL`], or `timeout`.
fn run_vm(
    mut cmd: Command,
    log: &Path,
    timeout: Duration,
    stop: impl Fn(&str) -> Option<String>,
) -> Result<VmRun> {
    remove_file_if_exists(log)?;
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", describe(&cmd)))?;
    let start = Instant::now();
    let mut stopped = None;
    let (mut seen, mut last_output) = (0, Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(500));
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(why) = stop(&text) {
            stopped = Some(why);
            break;
        }
        if text.len() != seen {
            (seen, last_output) = (text.len(), Instant::now());
        } else if last_output.elapsed() > STALL {
            stopped = Some(format!(
                "{STALL_WORDS} {}s (guest stalled)",
                STALL.as_secs()
            ));
            break;
        }
        if start.elapsed() > timeout {
            stopped = Some(format!("timed out after {}s", timeout.as_secs()));
            break;
        }
    }
    let _ = child.kill();
    let out = child.wait_with_output().map_err(|e| format!("qemu: {e}"))?;
    Ok(VmRun {
        log: std::fs::read_to_string(log).unwrap_or_default(),
        wall: start.elapsed(),
        stopped,
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

const STALL_WORDS: &str = "no console output for";

/// A guest that panics (and reboots, without -no-reboot) will not recover.
fn panicked(log: &str) -> Option<String> {
    log.contains("Kernel panic")
        .then(|| "the guest kernel panicked".to_string())
}

/// The Debian test under `fw`; returns (passed, failed) as one case.
pub fn test(filter: Option<&str>, fw: Firmware) -> Result<(usize, usize)> {
    let name = fw.case_name();
    if filter.is_some_and(|f| !name.contains(f)) {
        return Ok((0, 0));
    }
    for p in [fw.code(), fw.vars_template()] {
        if !p.is_file() {
            return Err(format!(
                "{name}: firmware file {} is missing{}",
                p.display(),
                match fw {
                    Firmware::Ovmf => " (apt-get install ovmf)",
                    Firmware::Ember => " (cargo xtask build)",
                }
            ));
        }
    }
    let t0 = Instant::now();
    let img = image()?;
    let mut first = attempt(fw, &img)?;
    // OVMF is only the reference that proves the test itself; under TCG it
    // has (rarely) frozen in the guest's shutdown sync. A stalled reference
    // run gets one more try; Ember's never does.
    if fw == Firmware::Ovmf && !first.pass && first.report.contains(STALL_WORDS) {
        println!(
            "note: {name} stalled, retrying the reference once:\n{}",
            first.report
        );
        first = attempt(fw, &img)?;
    }
    if first.pass {
        println!(
            "PASS {name:<24} wall {:6.1}s  {}",
            t0.elapsed().as_secs_f64(),
            first.report
        );
        Ok((1, 0))
    } else {
        println!("FAIL {name}: {}", first.report);
        Ok((0, 1))
    }
}

struct Attempt {
    pass: bool,
    /// The summary, and on failure the problems and the consoles' tails.
    report: String,
}

/// One run of the test's two VMs under `fw` on `img`.
fn attempt(fw: Firmware, img: &Path) -> Result<Attempt> {
    let img = img.to_path_buf();
    let dir = debian_dir().join(format!("run-{}", fw.key()));
    mkdirs(&dir)?;
    let vars = dir.join("vars.fd");
    copy(&fw.vars_template(), &vars)?;
    let (log1, log2) = (dir.join("vm1.log"), dir.join("vm2.log"));

    // VM 1: GRUB path, set BootNext, reboot into the new entry, power off.
    let vm1 = run_vm(
        command(fw, &vars, &img, &log1, "bootnext", true),
        &log1,
        VM1_TIMEOUT,
        |log| {
            let m = markers(log);
            if m.iter().filter(|m| m.stage == "debian-grub").count() > 1 {
                // BootNext ignored: GRUB again, which would set it again.
                return Some("the default path booted again after BootNext was set".into());
            }
            panicked(log)
        },
    )?;
    let m1 = markers(&vm1.log);
    let mut problems = Vec::new();
    let grub1 = m1.iter().find(|m| m.stage == "debian-grub");
    let next1 = m1.iter().find(|m| m.stage == "debian-bootnext");
    let bootnext = grub1.map_or("", |m| m.get("bootnext")).to_string();
    match grub1 {
        None => problems.push("VM 1: no debian-grub marker".to_string()),
        Some(m) if !is_entry(&bootnext) => problems.push(format!(
            "VM 1: the guest did not set BootNext (bootnext={:?})",
            m.get("bootnext")
        )),
        Some(_) => {}
    }
    match next1 {
        None => problems.push(format!(
            "VM 1: no debian-bootnext marker after the reboot (Boot{bootnext} not started)"
        )),
        Some(m) if !m.get("bootcurrent").eq_ignore_ascii_case(&bootnext) => problems.push(format!(
            "VM 1: after the reboot BootCurrent={} but BootNext was {bootnext}",
            m.get("bootcurrent")
        )),
        Some(_) => {}
    }
    if let Some(why) = &vm1.stopped {
        problems.push(format!("VM 1: {why}"));
    }

    // VM 2: same variables, no action: the default path, counter + 1.
    let vm2 = if problems.is_empty() {
        Some(run_vm(
            command(fw, &vars, &img, &log2, "none", false),
            &log2,
            VM2_TIMEOUT,
            panicked,
        )?)
    } else {
        None
    };
    let m2 = vm2.as_ref().map(|v| markers(&v.log)).unwrap_or_default();
    if let Some(vm2) = &vm2 {
        let grub2 = m2.iter().find(|m| m.stage == "debian-grub");
        match grub2 {
            None => problems.push("VM 2: no debian-grub marker".into()),
            Some(m) => {
                if m2.len() != 1 {
                    problems.push(format!("VM 2: {} markers, expected one", m2.len()));
                }
                if m.get("bootcurrent").eq_ignore_ascii_case(&bootnext) {
                    problems.push(format!(
                        "VM 2: booted Boot{bootnext} again (BootNext not consumed)"
                    ));
                }
            }
        }
        if let Some(why) = &vm2.stopped {
            problems.push(format!("VM 2: {why}"));
        }
    }
    // Every boot incremented the counter once: 1, 2 in VM 1, 3 in VM 2.
    let all: Vec<&Marker> = m1.iter().chain(&m2).collect();
    if vm2.is_some() {
        let counters: Vec<&str> = all.iter().map(|m| m.get("counter")).collect();
        if counters != ["1", "2", "3"] {
            problems.push(format!(
                "counter variable across the boots was {counters:?}, expected [\"1\", \"2\", \"3\"]"
            ));
        }
    }
    for m in &all {
        let a = m.get("analyze");
        if !a.starts_with("Startup finished") {
            problems.push(format!("{}: systemd-analyze time: {a:?}", m.stage));
        } else if fw == Firmware::Ember {
            // Ember's part before the loader takes milliseconds; seconds mean
            // a wrong clock (e.g. counting from the first boot after a reboot).
            match firmware_secs(a) {
                None => problems.push(format!("{}: no firmware time in {a:?}", m.stage)),
                Some(t) if t > FIRMWARE_TIME_BOUND => problems.push(format!(
                    "{}: firmware time {t:.3}s in {a:?} is not Ember's (over {FIRMWARE_TIME_BOUND}s)",
                    m.stage
                )),
                Some(_) => {}
            }
        }
    }

    let describe_m = |m: &Marker| {
        let mut s = format!(
            "{} bootcurrent={} counter={}",
            m.stage.trim_start_matches("debian-"),
            m.get("bootcurrent"),
            m.get("counter")
        );
        if !m.get("bootnext").is_empty() {
            s += &format!(" bootnext={}", m.get("bootnext"));
        }
        s
    };
    let summary = format!(
        "vm1 {:.0}s [{}], vm2 {} [{}]; analyze: \"{}\"",
        vm1.wall.as_secs_f64(),
        m1.iter().map(describe_m).collect::<Vec<_>>().join(" → "),
        vm2.as_ref().map_or("not run".into(), |v| format!(
            "{:.0}s",
            v.wall.as_secs_f64()
        )),
        m2.iter().map(describe_m).collect::<Vec<_>>().join(" → "),
        all.last().map_or("", |m| m.get("analyze"))
    );
    if problems.is_empty() {
        return Ok(Attempt {
            pass: true,
            report: summary,
        });
    }
    let mut report = format!("{}\n  {summary}", problems.join("; "));
    for (n, v, log) in [(1, Some(&vm1), &log1), (2, vm2.as_ref(), &log2)] {
        let Some(v) = v else { continue };
        report += &format!(
            "\n  --- VM {n} serial ({}) ---\n{}",
            log.display(),
            tail(&v.log, 40)
        );
        if !v.stderr.is_empty() {
            report += &format!("\n  --- VM {n} QEMU stderr ---\n{}", tail(&v.stderr, 10));
        }
    }
    Ok(Attempt {
        pass: false,
        report,
    })
}

/// Far above Ember's own time to the loader (tens of ms under TCG), far
/// below a clock that counts from the first boot of the VM.
const FIRMWARE_TIME_BOUND: f64 = 5.0;

/// The `(firmware)` time of a `systemd-analyze time` line, in seconds.
/// systemd prints e.g. `25ms`, `1.234s` or `1min 3.2s`.
fn firmware_secs(line: &str) -> Option<f64> {
    let before = line
        .split(" (firmware)")
        .next()
        .filter(|_| line.contains(" (firmware)"))?;
    let t = before.rsplit(" in ").next()?.trim();
    let mut secs = 0.0;
    for part in t.split_whitespace() {
        let (num, unit) = part.split_at(part.find(|c: char| c.is_ascii_alphabetic())?);
        let v: f64 = num.parse().ok()?;
        secs += v * match unit {
            "us" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "min" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
    }
    Some(secs)
}

/// A boot option number as efibootmgr prints it: four hex digits.
fn is_entry(s: &str) -> bool {
    s.len() == 4 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// `cargo xtask debian [--firmware ovmf|ember]`.
pub fn run_cmd(fw: Firmware) -> Result<bool> {
    crate::tools::ensure_host_tools()?;
    if fw == Firmware::Ember {
        crate::firmware::build()?;
    }
    let (pass, fail) = test(None, fw)?;
    println!("{pass} passed, {fail} failed");
    Ok(fail == 0)
}

#[cfg(test)]
mod tests {
    use super::firmware_secs;

    #[test]
    fn firmware_time_is_read_from_systemd_analyze() {
        let l = "Startup finished in 25ms (firmware) + 2.845s (loader) + 6.1s (kernel) = 9s";
        assert_eq!(firmware_secs(l), Some(0.025));
        let l = "Startup finished in 1min 26.617s (firmware) + 3ms (loader) = 1min 30s";
        assert!((firmware_secs(l).unwrap() - 86.617).abs() < 1e-9);
        assert_eq!(
            firmware_secs("Startup finished in 6.338s (kernel) = 20s"),
            None
        );
    }
}
