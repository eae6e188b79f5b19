//! The variable store under power cuts: QEMU is killed (SIGKILL) at random
//! moments while an EFI application rewrites non-volatile variables in a
//! loop on Ember's pflash store, many times over one variables file; then
//! the application reads them back (each value must be whole and the
//! counters consistent), and a real guest must still boot with that file.
//!
//! The store's own unit tests cut power at every flash operation of a
//! simulated device; this test checks the same promise end to end, through
//! Ember's CFI pflash driver and QEMU's flash emulation writing a file.

use crate::disk::{self, Disk, Fs, Kind, Part, Scenario, Src, Table};
use crate::firmware::{dist_bin, dist_vars};
use crate::guest::{guest_dir, Artifacts};
use crate::qemu;
use crate::util::{mkdirs, tool, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How many times QEMU is killed mid-write.
const KILLS: usize = 12;

fn app_disk(name: &'static str, options: &str, app: &Path) -> Result<Vec<PathBuf>> {
    let entry = format!("title Variable stress\nefi /EFI/varstress.efi\noptions {options}\n");
    disk::build(&Scenario {
        name,
        disks: vec![Disk {
            table: Table::Gpt,
            parts: vec![Part {
                kind: Kind::Esp,
                size_mib: 64,
                fs: Fs::Fat { bits: 32, spc: 1 },
                files: vec![
                    ("/EFI/varstress.efi".into(), Src::Host(app.to_path_buf())),
                    ("/loader/entries/varstress.conf".into(), Src::Text(entry)),
                ],
            }],
        }],
        expect: "none",
        microvm: false,
    })
}

/// q35 with Ember's flash image as pflash unit 0 and `vars` (writable, the
/// file under test) as unit 1; a reset ends QEMU.
pub fn command(vars: &Path, disk: &Path, log: &Path) -> Command {
    let mut c = qemu::q35_pflash(&dist_bin(), vars, disk, log);
    c.arg("-no-reboot");
    c
}

/// A small deterministic generator, seeded per run (the seed is printed).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn last_round(log: &str) -> Option<u64> {
    log.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("VARSTRESS ")?.trim().parse().ok())
}

/// Run one stress boot and kill it `delay` after its first write.
fn stress_once(mut cmd: Command, log: &Path, delay: Duration) -> Result<Option<u64>> {
    let _ = std::fs::remove_file(log);
    let mut child = cmd.spawn().map_err(|e| format!("qemu: {e}"))?;
    let start = Instant::now();
    let mut first: Option<Instant> = None;
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if first.is_none() && text.contains("VARSTRESS ") {
            first = Some(Instant::now());
        }
        if first.is_some_and(|f| f.elapsed() >= delay) || start.elapsed() > Duration::from_secs(120)
        {
            break;
        }
        if text.contains("VARSTRESS failed") || text.contains("!!! Ember") {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "the stress run failed:\n{}",
                crate::util::tail(&text, 20)
            ));
        }
        if let Ok(Some(_)) = child.try_wait() {
            return Err(format!(
                "QEMU exited by itself:\n{}",
                crate::util::tail(&text, 20)
            ));
        }
    }
    let _ = child.kill(); // SIGKILL: a power cut for the variables file
    let _ = child.wait();
    Ok(last_round(
        &std::fs::read_to_string(log).unwrap_or_default(),
    ))
}

/// The crash test; returns (passed, failed) as one case.
pub fn test(filter: Option<&str>, art: &Artifacts) -> Result<(usize, usize)> {
    let name = "var-crash/q35-pflash";
    if filter.is_some_and(|f| !name.contains(f)) {
        return Ok((0, 0));
    }
    let app = crate::efiapp::build()?;
    let stress = app_disk("var-stress", "var-stress", &app)?;
    let check = app_disk("var-check", "var-check", &app)?;
    let dir = guest_dir().join("varcrash");
    mkdirs(&dir)?;
    let vars = dir.join("vars.fd");
    std::fs::copy(dist_vars(), &vars).map_err(|e| format!("copy vars template: {e}"))?;
    let t0 = Instant::now();
    let (seed, rounds) = match kill_rounds(KILLS, &dir, |log| command(&vars, &stress[0], log)) {
        Ok(r) => r,
        Err(e) => {
            println!("FAIL {name}: {e}");
            return Ok((0, 1));
        }
    };
    // Read back: Ember must open (and if needed repair) the store, and
    // every variable must be whole.
    let log = dir.join("check.log");
    let out = qemu_run(&vars, &check[0], &log)?;
    let verdict = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("VARCHECK ").map(str::to_string));
    let store_line = out
        .lines()
        .find(|l| l.contains("UEFI variables: flash"))
        .map(str::to_string);
    // And a real guest still boots with that store.
    let s = disk::scenario("fat32", art).ok_or("no fat32 scenario")?;
    let fat32 = disk::build(&s)?;
    let blog = dir.join("boot.log");
    let booted = qemu_run(&vars, &fat32[0], &blog)?;
    let marker = qemu::parse_marker(&booted);
    // Linux writes a variable through efivarfs (runtime SetVariable to the
    // flash), then a new VM with the same store reads it back.
    let mut efivar = Vec::new();
    for mode in ["write", "read"] {
        let s = disk::efivar_scenario(art, mode);
        let d = disk::build(&s)?;
        let log = dir.join(format!("efivar-{mode}.log"));
        let m = qemu::parse_marker(&qemu_run(&vars, &d[0], &log)?);
        efivar.push(
            m.and_then(|m| m.efivar)
                .unwrap_or_else(|| "no marker".into()),
        );
    }
    let wrote = efivar[0].strip_prefix("wrote:");
    let read = efivar[1].strip_prefix("read:");
    let efivar_ok = wrote.is_some_and(|w| !w.is_empty() && Some(w) == read);
    let ok = verdict.as_deref().is_some_and(|v| v.starts_with("ok"))
        && store_line.is_some()
        && marker.as_ref().is_some_and(|m| m.variant == s.expect)
        && efivar_ok;
    let summary = format!(
        "{KILLS} kills (seed {seed:#x}, last rounds {rounds:?}); read back: {}; {}; then booted: {}; Linux efivarfs {} then {}",
        verdict.as_deref().unwrap_or("no VARCHECK line"),
        store_line.as_deref().map_or("no store line", |l| l.trim()),
        marker.map_or("no marker".into(), |m| m.variant),
        efivar[0],
        efivar[1]
    );
    Ok(verdict_line(name, ok, t0, &summary, &out))
}

/// `kills` stress runs, each SIGKILLed at a random moment (seeded; the seed
/// is returned for the report) between 0.05 and 4 s after its first write,
/// so some cuts land in compactions. Returns the seed and the last round
/// each run reported.
fn kill_rounds(
    kills: usize,
    dir: &Path,
    cmd: impl Fn(&Path) -> Command,
) -> Result<(u64, Vec<u64>)> {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut rng = Rng(seed);
    let mut rounds = Vec::new();
    for i in 0..kills {
        let delay = Duration::from_millis(50 + rng.next() % 3950);
        let log = dir.join(format!("stress-{i}.log"));
        let r = stress_once(cmd(&log), &log, delay).map_err(|e| format!("kill {i}: {e}"))?;
        rounds.push(r.unwrap_or(0));
    }
    Ok((seed, rounds))
}

/// Print the case's PASS or FAIL line (with the check log's tail on
/// failure); returns (passed, failed).
fn verdict_line(
    name: &str,
    ok: bool,
    t0: Instant,
    summary: &str,
    check_log: &str,
) -> (usize, usize) {
    if ok {
        println!(
            "PASS {name:<24} wall {:6.1}s  {summary}",
            t0.elapsed().as_secs_f64()
        );
        (1, 0)
    } else {
        println!(
            "FAIL {name}: {summary}\n  --- check log ---\n{}",
            crate::util::tail(check_log, 30)
        );
        (0, 1)
    }
}

/// Boot until the VM powers off (or 300 s); returns the serial log.
fn qemu_run(vars: &Path, disk: &Path, log: &Path) -> Result<String> {
    run_until_exit(command(vars, disk, log), log)
}

fn run_until_exit(cmd: Command, log: &Path) -> Result<String> {
    crate::util::run_qemu_to_exit(cmd, log).map(|(out, _)| out)
}

/// Kills during variable writes where there is no variable flash: microvm
/// with Ember as PVH `-kernel`, the store in `/EFI/ember/nvvars.bin` on the
/// ESP of a writable disk. The check runs from another disk, with the store
/// file copied over by mtools (the file is all the state there is).
pub fn test_esp(filter: Option<&str>) -> Result<(usize, usize)> {
    let name = "var-crash-esp/microvm";
    if filter.is_some_and(|f| !name.contains(f)) {
        return Ok((0, 0));
    }
    let app = crate::efiapp::build()?;
    let stress = app_disk("var-esp-stress", "var-stress", &app)?;
    let check = app_disk("var-esp-check", "var-check", &app)?;
    let dir = guest_dir().join("varcrash-esp");
    mkdirs(&dir)?;
    // Writable copies: the store lives on these disks.
    let (sd, cd) = (dir.join("stress.img"), dir.join("check.img"));
    std::fs::copy(&stress[0], &sd).map_err(|e| format!("copy {}: {e}", stress[0].display()))?;
    std::fs::copy(&check[0], &cd).map_err(|e| format!("copy {}: {e}", check[0].display()))?;
    let t0 = Instant::now();
    let (seed, rounds) = match kill_rounds(ESP_KILLS, &dir, |log| microvm_command(&sd, log)) {
        Ok(r) => r,
        Err(e) => {
            println!("FAIL {name}: {e}");
            return Ok((0, 1));
        }
    };
    let first_log = std::fs::read_to_string(dir.join("stress-0.log")).unwrap_or_default();
    let created = first_log.contains("UEFI variables: created /EFI/ember/nvvars.bin");
    // The store file moves to the check disk.
    let store = dir.join("nvvars.bin");
    let _ = std::fs::remove_file(&store);
    let esp = |img: &Path| format!("{}@@{}", img.display(), 1024 * 1024);
    crate::util::run(
        tool("mcopy")
            .arg("-i")
            .arg(esp(&sd))
            .arg("::/EFI/ember/nvvars.bin")
            .arg(&store),
    )?;
    let _ = crate::util::run(tool("mmd").arg("-i").arg(esp(&cd)).arg("::/EFI/ember"));
    crate::util::run(
        tool("mcopy")
            .arg("-o")
            .arg("-i")
            .arg(esp(&cd))
            .arg(&store)
            .arg("::/EFI/ember/nvvars.bin"),
    )?;
    let log = dir.join("check.log");
    let out = run_until_exit(microvm_command(&cd, &log), &log)?;
    let verdict = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("VARCHECK ").map(str::to_string));
    let store_line = out
        .lines()
        .find(|l| l.contains("UEFI variables: /EFI/ember/nvvars.bin on"))
        .map(|l| l.trim().to_string());
    let ok =
        created && verdict.as_deref().is_some_and(|v| v.starts_with("ok")) && store_line.is_some();
    let summary = format!(
        "{ESP_KILLS} kills (seed {seed:#x}, last rounds {rounds:?}); store file {}; read back: {}; {}",
        if created { "created on the first boot" } else { "NOT created on the first boot" },
        verdict.as_deref().unwrap_or("no VARCHECK line"),
        store_line.as_deref().unwrap_or("no store line")
    );
    Ok(verdict_line(name, ok, t0, &summary, &out))
}

/// Fewer than on flash: each microvm run also pays for a cold start.
const ESP_KILLS: usize = 8;

/// microvm, Ember as the PVH `-kernel`, `disk` writable (no snapshot).
fn microvm_command(disk: &Path, log: &Path) -> Command {
    let mut c = tool("qemu-system-x86_64");
    c.args([
        "-machine",
        "microvm,accel=tcg,x-option-roms=off,isa-serial=on",
        "-global",
        "virtio-mmio.force-legacy=off",
        "-cpu",
        "max",
        "-m",
        "1G",
        "-smp",
        "1",
        "-nographic",
        "-no-reboot",
        "-nic",
        "none",
        "-monitor",
        "none",
    ])
    .arg("-kernel")
    .arg(crate::firmware::dist_elf())
    .arg("-drive")
    .arg(format!("file={},format=raw,if=none,id=d0", disk.display()))
    .args(["-device", "virtio-blk-device,drive=d0"])
    .arg("-serial")
    .arg(format!("file:{}", log.display()));
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}
