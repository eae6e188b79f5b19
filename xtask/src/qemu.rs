//! QEMU command lines for the two machine types, and a runner that watches
//! the serial log for the guest's marker.

use crate::firmware::{dist_bin, dist_bzimage, dist_vars};
use crate::guest::MARKER;
use crate::util::{describe, tool};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Machine {
    Q35,
    Microvm,
    /// q35 with qboot as the BIOS: PCI BARs are left unassigned, so Ember's
    /// own BAR assignment is what makes the disk reachable.
    Q35Qboot,
    /// microvm with legacy (version 1) virtio-mmio transports.
    MicrovmLegacy,
    /// q35 with OVMF (Debian's 4M build) as the firmware: the UEFI reference.
    Q35Ovmf,
    /// q35 with `ember.boot=native`: the plain Linux boot protocol, no UEFI.
    Q35Native,
    /// microvm with `ember.boot=native`.
    MicrovmNative,
    /// q35 with Ember's flash image as `-bios`: Ember is the firmware.
    Q35Bios,
    /// pc (i440FX + PIIX) with Ember as `-bios`.
    PcBios,
    /// q35 with Ember's flash image as pflash unit 0 and a blank variable
    /// store as unit 1, the way OVMF's code + vars pair is given.
    Q35Pflash,
    /// microvm with Ember as `-bios` (virtio-mmio from the DSDT).
    MicrovmBios,
    /// Ember as the firmware starting Ember's bzImage as QEMU's `-kernel`:
    /// the second Ember enters through the Linux 64-bit boot protocol (zero
    /// page from Ember's own Linux loader) and boots the disk natively.
    Q35Linux64,
    /// microvm with PCIe (`pcie=on`: ECAM through MCFG), Ember by PVH:
    /// Cloud Hypervisor's layout (PCI segment from MCFG, no BIOS set-up).
    MicrovmPcie,
}

impl Machine {
    /// Whether an OS booted on this machine sees UEFI (runtime services,
    /// /sys/firmware/efi). Native variants use the plain Linux boot protocol.
    pub fn expects_efi(self) -> bool {
        !matches!(
            self,
            Machine::Q35Native | Machine::MicrovmNative | Machine::Q35Linux64
        )
    }

    /// Whether QEMU gets the ACPI/SMBIOS token the guest cross-checks
    /// (machines whose firmware hands QEMU's tables to the OS).
    pub fn checks_tables(self) -> bool {
        matches!(
            self,
            Machine::Q35
                | Machine::Q35Bios
                | Machine::PcBios
                | Machine::Q35Pflash
                | Machine::Q35Native
                | Machine::Q35Linux64
        )
    }

    /// Whether the guest must see SMBIOS even though QEMU gives none
    /// (microvm): Ember's own minimal tables, published through UEFI.
    pub fn wants_dmi(self) -> bool {
        matches!(
            self,
            Machine::Microvm | Machine::MicrovmLegacy | Machine::MicrovmBios | Machine::MicrovmPcie
        )
    }

    /// Ember is the machine's firmware (started from the reset vector).
    pub fn is_bios(self) -> bool {
        matches!(
            self,
            Machine::Q35Bios
                | Machine::PcBios
                | Machine::Q35Pflash
                | Machine::MicrovmBios
                | Machine::Q35Linux64
        )
    }

    /// virtio-blk as PCI (else virtio-mmio).
    fn pci_disks(self) -> bool {
        !matches!(
            self,
            Machine::Microvm
                | Machine::MicrovmLegacy
                | Machine::MicrovmNative
                | Machine::MicrovmBios
        )
    }
    pub fn name(self) -> &'static str {
        match self {
            Machine::Q35 => "q35",
            Machine::Microvm => "microvm",
            Machine::Q35Qboot => "q35-qboot",
            Machine::MicrovmLegacy => "microvm-legacy",
            Machine::Q35Ovmf => "q35-ovmf",
            Machine::Q35Native => "q35-native",
            Machine::MicrovmNative => "microvm-native",
            Machine::Q35Bios => "q35-bios",
            Machine::PcBios => "pc-bios",
            Machine::Q35Pflash => "q35-pflash",
            Machine::MicrovmBios => "microvm-bios",
            Machine::MicrovmPcie => "microvm-pcie",
            Machine::Q35Linux64 => "q35-linux64",
        }
    }
    pub fn parse(s: &str) -> Option<Machine> {
        match s {
            "q35" => Some(Machine::Q35),
            "microvm" => Some(Machine::Microvm),
            "q35-qboot" => Some(Machine::Q35Qboot),
            "microvm-legacy" => Some(Machine::MicrovmLegacy),
            "q35-native" => Some(Machine::Q35Native),
            "microvm-native" => Some(Machine::MicrovmNative),
            "q35-ovmf" => Some(Machine::Q35Ovmf),
            "q35-bios" => Some(Machine::Q35Bios),
            "pc-bios" => Some(Machine::PcBios),
            "q35-pflash" => Some(Machine::Q35Pflash),
            "microvm-bios" => Some(Machine::MicrovmBios),
            "microvm-pcie" => Some(Machine::MicrovmPcie),
            "q35-linux64" => Some(Machine::Q35Linux64),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub enum Boot {
    /// Ember as `-kernel`, the scenario disks as virtio-blk devices.
    Ember {
        firmware: PathBuf,
        disks: Vec<PathBuf>,
    },
    /// QEMU's own Linux loader: the baseline Ember is compared against.
    Direct {
        kernel: PathBuf,
        initrd: PathBuf,
        append: String,
    },
    /// No `-kernel`: the machine's own firmware (OVMF) boots the disks.
    Disks { disks: Vec<PathBuf> },
}

/// Where the serial console goes.
pub enum Serial<'a> {
    File(&'a Path),
    /// Interactive: serial and monitor multiplexed on stdio (Ctrl-A X quits).
    Stdio,
    /// The serial port alone on QEMU's stdin/stdout (the harness types and
    /// collects the output).
    Piped,
}

pub fn command(machine: Machine, boot: &Boot, serial: Serial) -> Command {
    let mut c = tool("qemu-system-x86_64");
    match machine {
        Machine::Q35 => c.args(["-machine", "q35,accel=tcg"]),
        Machine::Q35Native => c.args(["-machine", "q35,accel=tcg", "-append", "ember.boot=native"]),
        Machine::MicrovmNative => c.args([
            "-machine",
            "microvm,accel=tcg,x-option-roms=off,isa-serial=on",
            "-append",
            "ember.boot=native",
        ]),
        // No option ROMs: Linux does not need them. The PIT stays: without it
        // (and with no HPET/PM timer on microvm) Linux cannot calibrate the
        // TSC and stalls. The RTC stays too: without it Linux busy-waits ~2 s
        // (virtual) on RTC reads. The ISA UART is COM1 for Ember and Linux.
        Machine::Microvm => c.args([
            "-machine",
            "microvm,accel=tcg,x-option-roms=off,isa-serial=on",
            "-global",
            "virtio-mmio.force-legacy=off",
        ]),
        Machine::Q35Qboot => c.args([
            "-machine",
            "q35,accel=tcg",
            "-bios",
            "/usr/share/qemu/qboot.rom",
        ]),
        Machine::MicrovmLegacy => c.args([
            "-machine",
            "microvm,accel=tcg,x-option-roms=off,isa-serial=on",
            "-global",
            "virtio-mmio.force-legacy=on",
        ]),
        // Variables on a throw-away overlay (snapshot=on): OVMF writes boot
        // entries, and parallel runs must not share a writable store.
        Machine::Q35Ovmf => c.args([
            "-machine",
            "q35,accel=tcg",
            "-drive",
            "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
            "-drive",
            "if=pflash,format=raw,unit=1,snapshot=on,file=/usr/share/OVMF/OVMF_VARS_4M.fd",
        ]),
        Machine::Q35Bios => c
            .args(["-machine", "q35,accel=tcg"])
            .arg("-bios")
            .arg(dist_bin()),
        Machine::Q35Linux64 => c
            .args(["-machine", "q35,accel=tcg"])
            .arg("-bios")
            .arg(dist_bin())
            .arg("-kernel")
            .arg(dist_bzimage())
            .args(["-append", "ember.boot=native"]),
        Machine::PcBios => c
            .args(["-machine", "pc,accel=tcg"])
            .arg("-bios")
            .arg(dist_bin()),
        Machine::Q35Pflash => c
            .args(["-machine", "q35,accel=tcg", "-drive"])
            .arg(format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={}",
                dist_bin().display()
            ))
            .arg("-drive")
            .arg(format!(
                "if=pflash,format=raw,unit=1,snapshot=on,file={}",
                dist_vars().display()
            )),
        Machine::MicrovmBios => c
            .args([
                "-machine",
                "microvm,accel=tcg,x-option-roms=off,isa-serial=on",
                "-global",
                "virtio-mmio.force-legacy=off",
            ])
            .arg("-bios")
            .arg(dist_bin()),
        Machine::MicrovmPcie => c.args([
            "-machine",
            "microvm,accel=tcg,x-option-roms=off,isa-serial=on,pcie=on",
        ]),
    };
    if machine.checks_tables() {
        let (serial, table) = table_token();
        c.arg("-smbios").arg(format!("type=1,serial={serial}"));
        c.arg("-acpitable")
            .arg(format!("sig=EMBR,data={}", table.display()));
    }
    c.args([
        "-cpu",
        "max",
        "-m",
        "1G",
        "-smp",
        "1",
        "-nographic",
        "-no-reboot",
    ]);
    // No default NIC: its iPXE option ROM only slows q35's boot down.
    c.args(["-nic", "none"]);
    // One instruction per virtual ns and no sleeping: the guest TSC becomes a
    // deterministic "virtual ns since reset", and microvm's TSC calibration
    // against the PIT works under TCG.
    //
    // Not for firmware booting disks: OVMF's Stall() polls the ACPI PM timer
    // and under icount every port read ends a translation block, so OVMF
    // alone takes minutes. Those cases check the marker, not the TSC.
    if !matches!(boot, Boot::Disks { .. }) {
        c.args(["-icount", "shift=0,sleep=off"]);
    }
    match serial {
        Serial::File(p) => {
            c.arg("-serial").arg(format!("file:{}", p.display()));
            c.args(["-monitor", "none"]);
        }
        Serial::Stdio => {}
        Serial::Piped => {
            c.args([
                "-chardev",
                "stdio,id=ser0,signal=off",
                "-serial",
                "chardev:ser0",
            ]);
            c.args(["-monitor", "none"]);
        }
    }
    match boot {
        Boot::Ember { disks, .. } | Boot::Disks { disks } => {
            if let Boot::Ember { firmware, .. } = boot {
                if !machine.is_bios() {
                    c.arg("-kernel").arg(firmware);
                }
            }
            // snapshot=on: guest writes (e.g. boot counting renames) go to a
            // throw-away overlay, so cached images stay pristine and parallel
            // cases can share one image without QEMU's write lock refusing.
            for (i, d) in disks.iter().enumerate() {
                c.arg("-drive").arg(format!(
                    "file={},format=raw,if=none,id=d{i},snapshot=on",
                    d.display()
                ));
                c.arg("-device").arg(if machine.pci_disks() {
                    format!("virtio-blk-pci,drive=d{i},id=vd{i},disable-legacy=on")
                } else {
                    format!("virtio-blk-device,drive=d{i},id=vd{i}")
                });
            }
        }
        Boot::Direct {
            kernel,
            initrd,
            append,
        } => {
            c.arg("-kernel")
                .arg(kernel)
                .arg("-initrd")
                .arg(initrd)
                .arg("-append")
                .arg(append);
        }
    }
    c
}

/// The token the guest cross-checks between an ACPI table and SMBIOS: one
/// per xtask run, so nothing in Ember or the images can know it.
fn table_token() -> (String, PathBuf) {
    static TOKEN: std::sync::OnceLock<(String, PathBuf)> = std::sync::OnceLock::new();
    TOKEN
        .get_or_init(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let token = format!("ember-{:08x}{:08x}", std::process::id(), nanos);
            let path = crate::guest::guest_dir().join(format!("embr-{}.bin", std::process::id()));
            let _ = std::fs::create_dir_all(crate::guest::guest_dir());
            let _ = std::fs::write(&path, &token);
            (token, path)
        })
        .clone()
}

#[derive(Clone, Debug)]
pub struct Marker {
    pub variant: String,
    /// Guest TSC at /init start: virtual ns since reset under -icount.
    pub tsc: u64,
    /// Whether the guest has /sys/firmware/efi (booted with UEFI services).
    pub efi: Option<bool>,
    /// How many of the guest's EFI kernel messages mention a warning/error.
    pub efi_warnings: Option<u32>,
    /// The guest's own ACPI/SMBIOS cross-check: "ok", "none" or "missing,...".
    pub tables: Option<String>,
    /// The SMBIOS BIOS vendor the guest sees ("none" without SMBIOS).
    pub dmi: Option<String>,
    /// What the guest wrote to or read from a UEFI variable through efivarfs.
    pub efivar: Option<String>,
    /// systemd's LoaderTimeExecUSec as the guest reads it ("none" without).
    pub loader: Option<String>,
}

#[derive(Debug)]
pub struct Outcome {
    pub cmdline: String,
    pub log: String,
    pub marker: Option<Marker>,
    /// Wall time from spawning QEMU to seeing the marker (or giving up).
    pub wall: Duration,
    /// Why no marker was seen, if it was not.
    pub problem: Option<String>,
}

/// Find the marker line. It may share a line with kernel output that raced it,
/// so search anywhere in a line rather than only at its start.
pub fn parse_marker(log: &str) -> Option<Marker> {
    // Only complete lines: the serial log is read while the guest writes
    // it, and a half-written marker line would lose its later fields.
    let complete = &log[..log.rfind('\n').map_or(0, |i| i + 1)];
    complete.lines().find_map(|l| {
        let rest = &l[l.find(MARKER)? + MARKER.len()..];
        let mut it = rest.split_whitespace();
        let variant = it.next()?.to_string();
        let tsc = it.next()?.strip_prefix("tsc=")?.parse().ok()?;
        let mut m = Marker {
            variant,
            tsc,
            efi: None,
            efi_warnings: None,
            tables: None,
            dmi: None,
            efivar: None,
            loader: None,
        };
        for w in it {
            if let Some(v) = w.strip_prefix("efi=") {
                m.efi = Some(v == "1");
            } else if let Some(v) = w.strip_prefix("efiwarn=") {
                m.efi_warnings = v.parse().ok();
            } else if let Some(v) = w.strip_prefix("tables=") {
                m.tables = Some(v.to_string());
            } else if let Some(v) = w.strip_prefix("dmi=") {
                m.dmi = Some(v.to_string());
            } else if let Some(v) = w.strip_prefix("efivar=") {
                m.efivar = Some(v.to_string());
            } else if let Some(v) = w.strip_prefix("loader=") {
                m.loader = Some(v.to_string());
            }
        }
        Some(m)
    })
}

/// Boot and wait for the marker, at most `timeout` of wall time.
pub fn run(machine: Machine, boot: &Boot, log: &Path, timeout: Duration) -> Outcome {
    run_with(machine, boot, &[], log, timeout)
}

/// [`run`] with extra QEMU arguments (e.g. `-append` for Ember's own options).
pub fn run_with(
    machine: Machine,
    boot: &Boot,
    extra: &[&str],
    log: &Path,
    timeout: Duration,
) -> Outcome {
    run_with_keys(machine, boot, extra, log, timeout, None)
}

/// [`run_with`], and with `keys = Some((prompt, reply))` a user at the
/// serial console: it presses the space bar every 200 ms until `prompt`
/// appears on the console, then types `reply` once.
pub fn run_with_keys(
    machine: Machine,
    boot: &Boot,
    extra: &[&str],
    log: &Path,
    timeout: Duration,
    keys: Option<(&str, &str)>,
) -> Outcome {
    let _ = std::fs::remove_file(log);
    let serial = if keys.is_some() {
        Serial::Piped
    } else {
        Serial::File(log)
    };
    let mut cmd = command(machine, boot, serial);
    cmd.args(extra);
    let cmdline = describe(&cmd);
    let err_path = log.with_extension("stderr");
    let stderr = std::fs::File::create(&err_path)
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null());
    let (stdin, stdout) = match keys {
        Some(_) => (
            Stdio::piped(),
            std::fs::File::create(log)
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null()),
        ),
        None => (Stdio::null(), Stdio::null()),
    };
    // Own process group, so a timeout can kill QEMU and anything it forked.
    cmd.stdin(stdin)
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    let start = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                cmdline,
                log: String::new(),
                marker: None,
                wall: Duration::ZERO,
                problem: Some(format!("cannot start QEMU: {e}")),
            }
        }
    };
    let read = || {
        std::fs::read(log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    if let (Some((prompt, reply)), Some(mut input)) = (keys, child.stdin.take()) {
        let (prompt, reply, log) = (prompt.to_string(), reply.to_string(), log.to_path_buf());
        std::thread::spawn(move || {
            use std::io::Write;
            let until = Instant::now() + timeout;
            while Instant::now() < until {
                let text = std::fs::read(&log).unwrap_or_default();
                if String::from_utf8_lossy(&text).contains(&prompt) {
                    let _ = input.write_all(reply.as_bytes());
                    let _ = input.flush();
                    // Keep stdin open: QEMU reads EOF as a hang-up.
                    std::thread::sleep(until - Instant::now());
                    return;
                }
                if input.write_all(b" ").and_then(|_| input.flush()).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
    }
    let mut problem = None;
    let mut marker = None;
    let wall;
    loop {
        let text = read();
        if let Some(m) = parse_marker(&text) {
            marker = Some(m);
            wall = start.elapsed();
            break;
        }
        // Ember halts after a fault report or panic: no marker will come.
        if let Some(i) = text
            .find("!!! Ember")
            .filter(|_| text.contains("!!! Ember stopped.") || text.contains("!!! Ember panic"))
        {
            std::thread::sleep(Duration::from_millis(200)); // let the report finish
            wall = start.elapsed();
            let line = text[i..].lines().next().unwrap_or("").to_string();
            problem = Some(format!("Ember stopped: {line}"));
            break;
        }
        if let Ok(Some(st)) = child.try_wait() {
            wall = start.elapsed();
            // The marker may have landed between the read and the exit.
            marker = parse_marker(&read());
            if marker.is_none() {
                let err = std::fs::read_to_string(&err_path).unwrap_or_default();
                let err = err.trim_end();
                let sep = if err.is_empty() { "" } else { "\n" };
                problem = Some(format!("QEMU exited ({st}) without the marker{sep}{err}"));
            }
            break;
        }
        if start.elapsed() > timeout {
            wall = start.elapsed();
            problem = Some(format!(
                "no marker after {}s; killed QEMU",
                timeout.as_secs()
            ));
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The guest powers off right after the marker; give it a moment, then kill.
    finish(&mut child, Duration::from_secs(10));
    let _ = std::fs::remove_file(&err_path);
    Outcome {
        cmdline,
        log: read(),
        marker,
        wall,
        problem,
    }
}

fn finish(child: &mut Child, grace: Duration) {
    let until = Instant::now() + grace;
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // std has no killpg; the group id is the child's pid (process_group(0)).
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// q35 with `code` as pflash unit 0 (read-only) and `vars` as unit 1,
/// *writable*: the file under test keeps what the firmware writes. One
/// virtio-blk-pci disk (`snapshot=on`: the image stays pristine), the
/// serial port to `log`, no monitor, no NIC, and no `-no-reboot` (callers
/// that want a reset to end QEMU add it). Output is discarded.
pub fn q35_pflash(code: &Path, vars: &Path, disk: &Path, log: &Path) -> Command {
    let mut c = tool("qemu-system-x86_64");
    c.args([
        "-machine",
        "q35,accel=tcg",
        "-cpu",
        "max",
        "-m",
        "1G",
        "-smp",
        "1",
        "-nographic",
        "-nic",
        "none",
        "-monitor",
        "none",
    ])
    .arg("-drive")
    .arg(format!(
        "if=pflash,format=raw,unit=0,readonly=on,file={}",
        code.display()
    ))
    .arg("-drive")
    .arg(format!(
        "if=pflash,format=raw,unit=1,file={}",
        vars.display()
    ))
    .arg("-drive")
    .arg(format!(
        "file={},format=raw,if=none,id=d0,snapshot=on",
        disk.display()
    ))
    .args(["-device", "virtio-blk-pci,drive=d0,disable-legacy=on"])
    .arg("-serial")
    .arg(format!("file:{}", log.display()));
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

#[cfg(test)]
mod tests {
    use super::parse_marker;

    #[test]
    fn marker_is_found_even_after_racing_kernel_output() {
        let log = "[    1.6] Run /init as init process\n[    1.7] random: crngEMBER-MARKER: fat12 tsc=1639703499\r\n";
        let m = parse_marker(log).expect("marker");
        assert_eq!((m.variant.as_str(), m.tsc), ("fat12", 1_639_703_499));
    }

    #[test]
    fn a_marker_line_still_being_written_is_not_read() {
        let partial = "EMBER-MARKER: uki tsc=1671578633 efi=1 efiwarn=0";
        assert!(parse_marker(partial).is_none());
        let whole = format!("{partial} tables=ok dmi=Ember loader=4938\n");
        let m = parse_marker(&whole).expect("marker");
        assert_eq!(m.tables.as_deref(), Some("ok"));
        assert_eq!(m.loader.as_deref(), Some("4938"));
    }

    #[test]
    fn cmdline_echo_without_marker_prefix_is_not_a_marker() {
        // Ember and Linux both echo the command line; only /init prints the marker.
        let log = "cmdline \"console=ttyS0 ember.variant=fat32\"\nKernel panic - not syncing\n";
        assert!(parse_marker(log).is_none());
        assert!(parse_marker("EMBER-MARKER: fat32 tsc=\n").is_none());
    }
}
