//! The UEFI conformance application (`efi-tests/conformance`): build it for
//! `x86_64-unknown-uefi`, put it on an ESP as `\EFI\BOOT\BOOTX64.EFI`, boot
//! it under OVMF (the reference the checks are validated against) and,
//! opt-in, under Ember, and read its verdict from the serial log.

use crate::disk::{self, Disk, Fs, Kind, Part, Scenario, Src, Table};
use crate::firmware;
use crate::firmware::dist_vars;
use crate::guest::guest_dir;
use crate::qemu::{self, Boot, Machine, Serial};
use crate::util::{cargo, copy, describe, mkdirs, output, root, run, tail, target_dir, Result};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const TARGET: &str = "x86_64-unknown-uefi";
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const SUMMARY: &str = "CONFORMANCE: ";

/// Which firmware runs the app.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fw {
    Ovmf,
    /// Ember behind SeaBIOS (`-kernel`): variables on the ESP, volatile at
    /// runtime.
    Ember,
    /// Ember as the firmware with a variable flash: the flash store must
    /// also work at the virtual addresses.
    EmberPflash,
}

impl Fw {
    pub fn case_name(self) -> &'static str {
        match self {
            Fw::Ovmf => "conformance/ovmf",
            Fw::Ember => "conformance/ember",
            Fw::EmberPflash => "conformance/ember-pflash",
        }
    }
}

fn app_dir() -> PathBuf {
    root().join("efi-tests").join("conformance")
}

/// Build the app; returns the `.efi` path.
pub fn build() -> Result<PathBuf> {
    let dir = app_dir();
    // rustup does not install a toolchain file's targets by itself here.
    let installed =
        output(
            Command::new("rustup")
                .current_dir(&dir)
                .args(["target", "list", "--installed"]),
        )
        .unwrap_or_default();
    if !installed.lines().any(|l| l.trim() == TARGET) {
        run(Command::new("rustup")
            .current_dir(&dir)
            .args(["target", "add", TARGET]))?;
    }
    let tdir = target_dir().join("efi-tests");
    run(cargo()
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", &tdir)
        .args(["build", "--release", "--locked", "--target", TARGET]))?;
    Ok(tdir
        .join(TARGET)
        .join("release")
        .join("ember-conformance.efi"))
}

/// A GPT disk whose ESP holds only the app as the removable-media boot path.
pub fn scenario(app: &Path) -> Scenario {
    Scenario {
        name: "conformance",
        disks: vec![Disk {
            table: Table::Gpt,
            parts: vec![Part {
                kind: Kind::Esp,
                size_mib: 64,
                // The checks expect FAT32 (they read its boot sector).
                fs: Fs::Fat { bits: 32, spc: 1 },
                files: vec![("/EFI/BOOT/BOOTX64.EFI".into(), Src::Host(app.to_path_buf()))],
            }],
        }],
        expect: "CONFORMANCE",
        microvm: false,
    }
}

/// The summary counts, if the log has the summary line.
pub fn parse_summary(log: &str) -> Option<(u32, u32)> {
    log.lines().find_map(|l| {
        let rest = &l[l.find(SUMMARY)? + SUMMARY.len()..];
        let (p, rest) = rest.split_once(" passed, ")?;
        let (f, _) = rest.split_once(" failed")?;
        Some((p.trim().parse().ok()?, f.trim().parse().ok()?))
    })
}

/// Remove terminal escape sequences and carriage returns the firmware's
/// console emits around the text.
pub fn clean(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ params final-byte (0x40..=0x7e); other ESC x: two chars.
                if it.peek() == Some(&'[') {
                    it.next();
                    for d in it.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&d) {
                            break;
                        }
                    }
                } else {
                    it.next();
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

pub struct Outcome {
    pub cmdline: String,
    pub log: String,
    pub wall: Duration,
    pub summary: Option<(u32, u32)>,
    pub problem: Option<String>,
}

/// Run QEMU until the app reports (and powers off) or the timeout.
fn run_qemu(mut cmd: Command, log: &Path, timeout: Duration) -> Outcome {
    let _ = std::fs::remove_file(log);
    let cmdline = describe(&cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    let read = || clean(&std::fs::read(log).unwrap_or_default());
    let start = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                cmdline,
                log: String::new(),
                wall: Duration::ZERO,
                summary: None,
                problem: Some(format!("cannot start QEMU: {e}")),
            }
        }
    };
    let mut problem = None;
    loop {
        let text = read();
        // The app powers off right after the summary; a panic leaves through
        // Exit and the firmware would go on to other boot options.
        if parse_summary(&text).is_some() || text.contains("CONFORMANCE: panicked") {
            let grace = Instant::now();
            while grace.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if !matches!(child.try_wait(), Ok(Some(_))) && parse_summary(&text).is_some() {
                problem = Some("ResetSystem(EfiResetShutdown) did not power the VM off".into());
            }
            break;
        }
        // OVMF prints this on a CPU exception and then hangs.
        if text.contains("!!!! X64 Exception") {
            problem = Some("the firmware reported a CPU exception".into());
            break;
        }
        if let Ok(Some(st)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            problem = Some(format!(
                "QEMU exited ({st}) without the summary line\n{}",
                err.trim_end()
            ));
            break;
        }
        if start.elapsed() > timeout {
            problem = Some(format!(
                "no summary line after {}s; killed QEMU",
                timeout.as_secs()
            ));
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let wall = start.elapsed();
    // std has no killpg; the group id is the child's pid (process_group(0)).
    if !matches!(child.try_wait(), Ok(Some(_))) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = child.kill();
    }
    let _ = child.wait();
    let log = read();
    Outcome {
        summary: parse_summary(&log),
        cmdline,
        log,
        wall,
        problem,
    }
}

/// Boot the app under `fw`; the disk must already be built.
pub fn boot(fw: Fw, disk: &Path, timeout: Duration) -> Result<Outcome> {
    let logs = guest_dir().join("logs");
    mkdirs(&logs)?;
    let log = logs.join(format!("{}.log", fw.case_name().replace('/', "-")));
    let cmd = match fw {
        Fw::Ovmf => {
            // The shared OVMF machine (variables on a throw-away overlay).
            let mut c = qemu::command(
                Machine::Q35Ovmf,
                &Boot::Disks {
                    disks: vec![disk.to_path_buf()],
                },
                Serial::File(&log),
            );
            // OVMF only has EFI_RNG_PROTOCOL with an entropy device to drive.
            c.args(["-device", "virtio-rng-pci"]);
            c
        }
        Fw::Ember => {
            let firmware = firmware::build()?;
            qemu::command(
                Machine::Q35,
                &Boot::Ember {
                    firmware,
                    disks: vec![disk.to_path_buf()],
                },
                Serial::File(&log),
            )
        }
        Fw::EmberPflash => {
            // A writable copy of the blank store, read back afterwards.
            firmware::build()?;
            copy(&dist_vars(), &vars_copy())?;
            crate::varcrash::command(&vars_copy(), disk, &log)
        }
    };
    let mut out = run_qemu(cmd, &log, timeout);
    if fw == Fw::EmberPflash && out.summary.is_some() && out.problem.is_none() {
        out.problem = check_flash(&vars_copy()).err();
    }
    Ok(out)
}

fn vars_copy() -> PathBuf {
    guest_dir()
        .join("logs")
        .join("conformance-ember-pflash-vars.fd")
}

/// The variable flash after the app ran: what it wrote from virtual mode
/// is there, and what it deleted from virtual mode is gone.
fn check_flash(path: &Path) -> Result<()> {
    use ember_varstore::{sim::SimFlash, Config, Store};
    let image = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let (store, _) = Store::open(SimFlash::from_image(image), Config::default())
        .map_err(|e| format!("the variable flash after the run: {e}"))?;
    // The app's vendor GUID 6d1c0a55-3e2f-4b8a-9c47-517e0b26d413, as stored.
    let guid = [
        0x55, 0x0a, 0x1c, 0x6d, 0x2f, 0x3e, 0x8a, 0x4b, 0x9c, 0x47, 0x51, 0x7e, 0x0b, 0x26, 0xd4,
        0x13,
    ];
    let name = |s: &str| s.encode_utf16().collect::<Vec<u16>>();
    match store.get(&guid, &name("EmberVirtKept")) {
        Some(v) if v.data == b"written at a virtual address" => {}
        Some(v) => {
            return Err(format!(
                "EmberVirtKept on the flash holds {:?}, not what the app wrote in virtual mode",
                String::from_utf8_lossy(&v.data)
            ))
        }
        None => {
            return Err(
                "EmberVirtKept, written in virtual mode, is not on the variable flash".into(),
            )
        }
    }
    if store.get(&guid, &name("EmberVirtProbe")).is_some() {
        return Err(
            "EmberVirtProbe, deleted in virtual mode, is still on the variable flash".into(),
        );
    }
    Ok(())
}

/// Print the case's verdict (with the FAIL lines or the log's tail); returns pass/fail.
pub fn report(fw: Fw, out: &Outcome) -> bool {
    let name = fw.case_name();
    let wall = out.wall.as_secs_f64();
    let fails: Vec<&str> = out
        .log
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("FAIL "))
        .collect();
    match (out.summary, &out.problem) {
        (Some((p, 0)), None) if p > 0 => {
            println!("PASS {name:<24} wall {wall:6.1}s  {p} checks passed, 0 failed");
            true
        }
        (Some((p, f)), problem) => {
            let extra = problem
                .as_deref()
                .map(|p| format!("; {p}"))
                .unwrap_or_default();
            println!(
                "FAIL {name:<24} wall {wall:6.1}s  {p} passed, {f} failed{extra}\n  qemu: {}\n{}",
                out.cmdline,
                fails
                    .iter()
                    .map(|l| format!("  {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            false
        }
        (None, problem) => {
            println!(
                "FAIL {name:<24} wall {wall:6.1}s  {}\n  qemu: {}\n  --- serial log (tail) ---\n{}\n  --- end ---",
                problem.as_deref().unwrap_or("no summary line"),
                out.cmdline,
                tail(&out.log, 40)
            );
            false
        }
    }
}

/// The `cargo xtask test` hook: the OVMF case always, the Ember case when
/// `with_ember` (Ember's UEFI layer is not ready yet). Cases not matching
/// `filter` are skipped. Returns (passed, failed) case counts.
pub fn test(filter: Option<&str>, with_ember: bool, timeout: Duration) -> Result<(usize, usize)> {
    let mut fws = vec![Fw::Ovmf];
    if with_ember {
        fws.extend([Fw::Ember, Fw::EmberPflash]);
    }
    fws.retain(|f| filter.is_none_or(|s| f.case_name().contains(s)));
    if fws.is_empty() {
        return Ok((0, 0));
    }
    let app = build()?;
    let disks = disk::build(&scenario(&app))?;
    let (mut passed, mut failed) = (0, 0);
    for fw in fws {
        let out = boot(fw, &disks[0], timeout)?;
        if report(fw, &out) {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    Ok((passed, failed))
}

#[cfg(test)]
mod tests {
    use super::{clean, parse_summary};

    #[test]
    fn summary_is_parsed_through_terminal_escapes() {
        let raw = b"\x1b[0m\x1b[37m\x1b[40mok a\r\nFAIL b: x\r\n\x1b[1;1HCONFORMANCE: 120 passed, 3 failed\r\n";
        let log = clean(raw);
        assert!(log.contains("FAIL b: x\n"));
        assert_eq!(parse_summary(&log), Some((120, 3)));
    }

    #[test]
    fn no_summary_without_the_line_or_with_a_panic() {
        assert_eq!(parse_summary("ok a\nCONFORMANCE: panicked\n"), None);
        assert_eq!(parse_summary("Ember UEFI conformance checks\n"), None);
    }
}
