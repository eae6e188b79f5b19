//! `cargo xtask fuzz`: libFuzzer runs of the `fuzz/` targets (nightly and
//! cargo-fuzz only there; everything else stays on the pinned stable), with
//! seed corpora generated from real images.

use crate::disk::disk_dir;
use crate::util::{
    cargo, cargo_target_dir, describe, find_tool, mkdirs, output, read_to_string, root, run, tail,
    tool, write, Result,
};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Every fuzz target, in run order (cheapest first).
pub const TARGETS: &[&str] = &[
    "version_cmp",
    "loader_conf",
    "bls_entry",
    "e820",
    "bzimage",
    "gpt_mbr",
    "pe",
    "devpath",
    "smbios",
    "fwcfg",
    "varstore",
    "fat",
    "dtb",
    "varsnap",
];

/// cargo-fuzz release installed when `cargo fuzz` is missing.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

pub struct Opts {
    pub target: Option<String>,
    pub seconds: u64,
    /// libFuzzer `-fork` workers per target (1 = in-process).
    pub jobs: usize,
}

fn fuzz_dir() -> PathBuf {
    root().join("fuzz")
}

fn corpus_dir(target: &str) -> PathBuf {
    fuzz_dir().join("corpus").join(target)
}

/// Where the instrumented fuzz builds go (kept apart from stable builds).
fn fuzz_target_dir() -> PathBuf {
    cargo_target_dir().join("fuzz")
}

/// `cargo` of the nightly toolchain, free of the stable toolchain that
/// launched xtask (rustup and cargo pass it down through the environment).
fn nightly_cargo() -> Command {
    let mut c = Command::new("rustup");
    c.args(["run", "nightly", "cargo"])
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO")
        .current_dir(fuzz_dir());
    c
}

fn works(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Nightly (minimal profile) and cargo-fuzz, installed only when missing.
pub fn ensure_tools() -> Result {
    if !works(nightly_cargo().arg("--version")) {
        eprintln!("xtask: installing the nightly toolchain (fuzzing only)");
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    if !works(nightly_cargo().args(["fuzz", "--version"])) {
        eprintln!("xtask: installing cargo-fuzz {CARGO_FUZZ_VERSION}");
        run(cargo().args([
            "install",
            "cargo-fuzz",
            "--locked",
            "--version",
            &format!("={CARGO_FUZZ_VERSION}"),
        ]))?;
    }
    Ok(())
}

/// Build every target (one cargo invocation shares the dependency builds).
pub fn build() -> Result {
    run(nightly_cargo()
        .args(["fuzz", "build", "--target-dir"])
        .arg(fuzz_target_dir()))
}

pub struct Outcome {
    pub target: String,
    pub execs: Option<u64>,
    pub secs: f64,
    /// The crash/timeout/OOM report, with the artifact path.
    pub finding: Option<String>,
}

/// Tools, seeds, build, then every selected target for `seconds` each.
/// Prints one line per target; returns whether nothing was found.
pub fn fuzz(opts: &Opts) -> Result<bool> {
    let targets: Vec<&str> = match &opts.target {
        Some(t) if TARGETS.contains(&t.as_str()) => vec![t.as_str()],
        Some(t) => {
            return Err(format!(
                "unknown fuzz target `{t}`; known: {}",
                TARGETS.join(", ")
            ))
        }
        None => TARGETS.to_vec(),
    };
    let t0 = Instant::now();
    ensure_tools()?;
    let n = seeds()?;
    println!(
        "fuzz: {n} seed files under {}",
        fuzz_dir().join("corpus").display()
    );
    build()?;
    println!(
        "fuzz: tools + seeds + build took {:.0}s",
        t0.elapsed().as_secs_f64()
    );
    let mut clean = true;
    for t in targets {
        let o = run_target(t, opts.seconds, opts.jobs)?;
        let execs = o.execs.map_or("?".into(), |e| e.to_string());
        match &o.finding {
            None => println!(
                "PASS fuzz/{:<12} {execs:>10} execs in {:.0}s",
                o.target, o.secs
            ),
            Some(f) => {
                clean = false;
                println!(
                    "FAIL fuzz/{:<12} {execs:>10} execs in {:.0}s\n{f}",
                    o.target, o.secs
                );
            }
        }
    }
    Ok(clean)
}

/// One target for `seconds`; its libFuzzer log goes to target/fuzz-logs/.
pub fn run_target(target: &str, seconds: u64, jobs: usize) -> Result<Outcome> {
    let logs = cargo_target_dir().join("fuzz-logs");
    mkdirs(&logs)?;
    let log_path = logs.join(format!("{target}.log"));
    let log = File::create(&log_path).map_err(|e| format!("create {}: {e}", log_path.display()))?;
    let corpus = corpus_dir(target);
    mkdirs(&corpus)?;
    let mut cmd = nightly_cargo();
    cmd.args(["fuzz", "run", "--target-dir"])
        .arg(fuzz_target_dir())
        .arg(target)
        .arg(&corpus)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        // A single input taking this long is a hang worth reporting.
        .arg("-timeout=20")
        .arg("-rss_limit_mb=2048")
        .arg("-print_final_stats=1");
    if jobs > 1 {
        cmd.arg(format!("-fork={jobs}"));
    }
    let t0 = Instant::now();
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .status()
        .map_err(|e| format!("cannot run `{}`: {e}", describe(&cmd)))?;
    let secs = t0.elapsed().as_secs_f64();
    let text = std::fs::read(&log_path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let finding = (!status.success()).then(|| {
        let artifact = text
            .lines()
            .rev()
            .find_map(|l| l.split_once("Test unit written to ").map(|(_, p)| p.trim()))
            .map_or_else(|| "no artifact written".to_string(), |p| format!("artifact: {p}"));
        format!(
            "  {artifact}\n  reproduce: cd fuzz && cargo +nightly fuzz run {target} <artifact>\n  log: {}\n  --- log tail ---\n{}\n  --- end ---",
            log_path.display(),
            tail(&text, 30)
        )
    });
    Ok(Outcome {
        target: target.to_string(),
        execs: executions(&text),
        secs,
        finding,
    })
}

/// Executions from libFuzzer's final stats, or the last `#N` status line
/// (fork mode prints no final stats).
fn executions(log: &str) -> Option<u64> {
    let stat = log
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .find_map(|v| v.trim().parse().ok());
    stat.or_else(|| {
        log.lines()
            .rev()
            .filter_map(|l| l.strip_prefix('#'))
            .find_map(|l| {
                let d: String = l.chars().take_while(char::is_ascii_digit).collect();
                d.parse().ok()
            })
    })
}

// ---------------------------------------------------------------------------
// Seeds

const BLOCK: usize = 512;

/// Encode a disk for `ember_fuzz::SparseDisk`: its size, then runs of the
/// non-zero blocks among `blocks` ((LBA, data) in ascending LBA order), at
/// most `budget` bytes of block data.
fn sparse<'a>(
    total_blocks: u64,
    blocks: impl Iterator<Item = (u64, &'a [u8])>,
    budget: usize,
) -> Vec<u8> {
    let mut out = (total_blocks.min(u64::from(u32::MAX)) as u32)
        .to_le_bytes()
        .to_vec();
    let mut run: Option<(u64, Vec<u8>)> = None;
    let flush = |out: &mut Vec<u8>, run: &mut Option<(u64, Vec<u8>)>| {
        if let Some((lba, data)) = run.take() {
            out.extend_from_slice(&(lba as u32).to_le_bytes());
            out.extend_from_slice(&((data.len() / BLOCK) as u16).to_le_bytes());
            out.extend_from_slice(&data);
        }
    };
    let mut used = 0;
    for (lba, b) in blocks {
        if b.iter().all(|&x| x == 0) {
            flush(&mut out, &mut run);
            continue;
        }
        if used + BLOCK > budget {
            break;
        }
        used += BLOCK;
        match &mut run {
            Some((start, data))
                if *start + (data.len() / BLOCK) as u64 == lba && data.len() < 0xffff * BLOCK =>
            {
                data.extend_from_slice(b)
            }
            _ => {
                flush(&mut out, &mut run);
                run = Some((lba, b.to_vec()));
            }
        }
    }
    flush(&mut out, &mut run);
    out
}

/// `(lba, block)` pairs of `data`, which starts at LBA `first`.
fn blocks_of(data: &[u8], first: u64) -> impl Iterator<Item = (u64, &[u8])> {
    data.chunks_exact(BLOCK)
        .enumerate()
        .map(move |(i, b)| (first + i as u64, b))
}

fn read_range(path: &Path, offset: u64, len: u64) -> Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    f.seek(SeekFrom::Start(offset)).map_err(|e| e.to_string())?;
    let mut v = Vec::new();
    f.take(len)
        .read_to_end(&mut v)
        .map_err(|e| format!("read {}: {e}", path.display()))?;
    Ok(v)
}

fn le32(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 4).map_or(0, |s| {
        u64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    })
}

fn le64(b: &[u8], at: usize) -> u64 {
    le32(b, at) | (le32(b, at + 4) << 32)
}

/// GPT ESP and XBOOTLDR type GUIDs as stored on disk (mixed endian).
const GPT_BOOT_TYPES: [[u8; 16]; 2] = [
    [
        0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9,
        0x3b,
    ],
    [
        0xff, 0xc2, 0x13, 0xbc, 0xe6, 0x59, 0x62, 0x42, 0xa3, 0x52, 0xb2, 0x75, 0xfd, 0x6f, 0x71,
        0x72,
    ],
];

/// (first LBA, blocks) of the FAT boot partitions of an image: a tiny,
/// independent reader so seeds do not depend on the code under test.
fn boot_partitions(img: &Path) -> Result<Vec<(u64, u64)>> {
    let head = read_range(img, 0, 64 * 1024)?;
    let mut found = Vec::new();
    if head.get(512..520) == Some(b"EFI PART") {
        let (entries_lba, count, size) = (
            le64(&head, 512 + 72),
            le32(&head, 512 + 80),
            le32(&head, 512 + 84),
        );
        let arr = read_range(img, entries_lba * 512, (count * size).min(1 << 20))?;
        for e in arr.chunks(size.max(128) as usize) {
            if GPT_BOOT_TYPES.iter().any(|t| e.get(..16) == Some(&t[..])) {
                let (first, last) = (le64(e, 32), le64(e, 40));
                found.push((first, last.saturating_sub(first) + 1));
            }
        }
    } else {
        for i in 0..4 {
            let e = 446 + 16 * i;
            if matches!(head.get(e + 4), Some(0xef | 0xea)) {
                found.push((le32(&head, e + 8), le32(&head, e + 12)));
            }
        }
    }
    Ok(found)
}

/// A FAT image made with mkfs.fat and populated with mtools like the
/// harness's ESPs, plus the awkward cases (long names, deep nesting, a
/// fragmented file). `None` when the tools are missing.
fn make_fat(dir: &Path, bits: u8, kib: u64, kernel_head: &[u8]) -> Result<Option<Vec<u8>>> {
    if find_tool("mkfs.fat").is_none() || find_tool("mcopy").is_none() {
        return Ok(None);
    }
    let img = dir.join(format!("fat{bits}.img"));
    let _ = std::fs::remove_file(&img);
    run(tool("mkfs.fat")
        .args(["-C", "-F", &bits.to_string(), "-s", "1", "-n", "EMBERSEED"])
        .arg(&img)
        .arg(kib.to_string())
        .stdout(Stdio::null()))?;
    let m = |cmd: &str| {
        let mut c = tool(cmd);
        c.env("MTOOLS_SKIP_CHECK", "1").arg("-i").arg(&img);
        c
    };
    let stage = dir.join(format!("stage{bits}"));
    mkdirs(&stage)?;
    let put = |name: &str, data: &[u8], dest: &str| -> Result {
        let p = stage.join(name);
        write(&p, data)?;
        run(m("mcopy").arg("-o").arg(&p).arg(format!("::{dest}")))
    };
    run(m("mmd").args([
        "::/loader",
        "::/loader/entries",
        "::/EFI",
        "::/EFI/BOOT",
        "::/a",
        "::/a/b",
        "::/a/b/c",
    ]))?;
    put(
        "loader.conf",
        b"default ember*\ntimeout 0\n",
        "/loader/loader.conf",
    )?;
    put(
        "e1.conf",
        ENTRIES[0].1.as_bytes(),
        "/loader/entries/ember-6.1.0-10+2-1.conf",
    )?;
    put(
        "e2.conf",
        ENTRIES[1].1.as_bytes(),
        "/loader/entries/debian-6.1.0-9.conf",
    )?;
    put("k", kernel_head, "/vmlinuz")?;
    put(
        "long",
        b"long name\n",
        "/a/b/c/A file with a rather long name.txt",
    )?;
    // Fragmented: free a small file between two others, then fill the hole
    // and more with a larger one.
    put("f1", &[1u8; 1500], "/frag1")?;
    put("f2", &[2u8; 700], "/frag2")?;
    put("f3", &[3u8; 600], "/frag3")?;
    run(m("mdel").arg("::/frag2"))?;
    put("f4", &[4u8; 5000], "/EFI/BOOT/fragmented.bin")?;
    let data = std::fs::read(&img).map_err(|e| e.to_string())?;
    let blocks = (data.len() / BLOCK) as u64;
    Ok(Some(sparse(blocks, blocks_of(&data, 0), 512 * 1024)))
}

/// Entries shaped like the ones the harness writes (see disk.rs).
const ENTRIES: &[(&str, &str)] = &[
    (
        "ember-6.1.0-10+2-1.conf",
        "title Ember test\nversion 6.1.0-10\nsort-key ember\nlinux /vmlinuz\ninitrd /initrd.img\noptions console=ttyS0 panic=-1 ember.variant=keyed-10\n",
    ),
    (
        "debian-6.1.0-9.conf",
        "title nokey\nversion 99\nlinux /vmlinuz\ninitrd /initrd.img\noptions console=ttyS0 panic=-1 ember.variant=nokey-9\n",
    ),
    (
        "ember-bad+0-3.conf",
        "# comment\ntitle bad\r\nversion 9.9\nsort-key aaa\nmachine-id 0123456789abcdef0123456789abcdef\narchitecture x64\nlinux /vmlinuz\ninitrd /a.img\ninitrd /b.img\noptions a\noptions b\ndevicetree /dtb\nfuture-key value\n",
    ),
    ("uki.conf", "title UKI\nefi /EFI/Linux/uki.efi\n"),
];

/// Write every target's seeds; returns how many files were written.
pub fn seeds() -> Result<usize> {
    let mut n = 0;
    let mut put = |target: &str, name: &str, data: &[u8]| -> Result {
        let d = corpus_dir(target);
        mkdirs(&d)?;
        n += 1;
        write(&d.join(format!("seed-{name}")), data)
    };
    // Hand-made seeds checked in beside the targets (fuzz/seeds/<target>/).
    for &target in TARGETS {
        let Ok(rd) = std::fs::read_dir(fuzz_dir().join("seeds").join(target)) else {
            continue;
        };
        for e in rd.flatten() {
            let data = std::fs::read(e.path())
                .map_err(|err| format!("read {}: {err}", e.path().display()))?;
            put(target, &e.file_name().to_string_lossy(), &data)?;
        }
    }
    let kernel_head_path =
        root().join("crates/linux/tests/data/vmlinuz-6.1.0-56-cloud-amd64.head16k");
    let kernel_head = std::fs::read(&kernel_head_path)
        .map_err(|e| format!("read {}: {e}", kernel_head_path.display()))?;

    // bzimage: the real header with a few placement parameters.
    for (i, (file_size, cmd_addr, cmd_len, initrd, shape)) in [
        (14_186_432u64, 0x2_0000u64, 64u32, 30u64 << 20, 0u8),
        (14_186_432, 0x1_0000_0000, 2047, 0, 9),
        (20_480, 0x9_0000, 4096, 1, 3),
    ]
    .into_iter()
    .enumerate()
    {
        let mut s = Vec::new();
        s.extend_from_slice(&file_size.to_le_bytes());
        s.extend_from_slice(&cmd_addr.to_le_bytes());
        s.extend_from_slice(&cmd_len.to_le_bytes());
        s.extend_from_slice(&initrd.to_le_bytes());
        s.push(shape);
        let len = if i == 0 { kernel_head.len() } else { 1024 };
        s.extend_from_slice(&kernel_head[..len.min(kernel_head.len())]);
        put("bzimage", &format!("debian-{i}"), &s)?;
    }

    // pe: real EFI programs the harness downloads (small ones: libFuzzer's
    // input size limit follows the largest seed), and the kernel's EFI stub
    // header.
    put("pe", "vmlinuz-head", &kernel_head)?;
    let mut efis = Vec::new();
    find_files(&crate::guest::guest_dir(), "efi", &mut efis);
    for p in efis {
        if std::fs::metadata(&p).is_ok_and(|m| m.len() <= 1 << 20) {
            let data = std::fs::read(&p).map_err(|e| format!("read {}: {e}", p.display()))?;
            let name = p
                .file_name()
                .map_or("efi".into(), |n| n.to_string_lossy().into_owned());
            put("pe", &name, &data)?;
        }
    }

    // BLS entries and loader.conf.
    let mut confs: Vec<Vec<u8>> = vec![
        b"timeout 0\n".to_vec(),
        b"default ember*\ntimeout menu-force\nconsole-mode max\n".to_vec(),
        b"default [a-c]?-*10\\*\ntimeout 99999999999999\n\xff\xfe bad utf8\n".to_vec(),
    ];
    let mut entries: Vec<(String, Vec<u8>)> = ENTRIES
        .iter()
        .map(|(n, c)| (n.to_string(), c.as_bytes().to_vec()))
        .collect();
    // Real entries from the harness's disks, when they have been built.
    let tmp = cargo_target_dir().join("fuzz-seeds");
    let _ = std::fs::remove_dir_all(&tmp);
    mkdirs(&tmp)?;
    let mut images: Vec<PathBuf> = std::fs::read_dir(disk_dir())
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    images.retain(|p| p.extension().is_some_and(|e| e == "img"));
    images.sort();
    for img in &images {
        let stem = img
            .file_stem()
            .map_or("img".into(), |s| s.to_string_lossy().into_owned());
        let size = std::fs::metadata(img).map(|m| m.len()).unwrap_or(0);
        let blocks = size / BLOCK as u64;
        // gpt_mbr: both ends of the disk (primary and backup tables).
        let head = read_range(img, 0, 64 * BLOCK as u64)?;
        let tail_start = blocks.saturating_sub(64).max(64);
        let tail_bytes = read_range(img, tail_start * BLOCK as u64, 64 * BLOCK as u64)?;
        let enc = sparse(
            blocks,
            blocks_of(&head, 0).chain(blocks_of(&tail_bytes, tail_start)),
            128 * 1024,
        );
        put("gpt_mbr", &stem, &enc)?;
        for (i, (first, len)) in boot_partitions(img)?.into_iter().enumerate() {
            // fat: boot sector, the start of the first FAT, the root
            // directory and the start of the data area; the rest reads as
            // zeros, keeping the seed small (libFuzzer mutates every byte).
            let bpb = read_range(img, first * BLOCK as u64, BLOCK as u64)?;
            let reserved = le32(&bpb, 0x0e) & 0xffff;
            let nfats = u64::from(bpb.get(0x10).copied().unwrap_or(0));
            let fat_size = match le32(&bpb, 0x16) & 0xffff {
                0 => le32(&bpb, 0x24),
                n => n,
            };
            let root_sectors = ((le32(&bpb, 0x11) & 0xffff) * 32).div_ceil(BLOCK as u64);
            let data_start = reserved + nfats * fat_size;
            let want = (data_start + root_sectors + 2048).min(len);
            let part = read_range(img, first * BLOCK as u64, want * BLOCK as u64)?;
            let keep = blocks_of(&part, 0)
                .filter(|(l, _)| *l < reserved + fat_size.min(32) || *l >= data_start);
            put(
                "fat",
                &format!("{stem}-p{i}"),
                &sparse(len, keep, 64 * 1024),
            )?;
            if find_tool("mcopy").is_some() {
                let dest = tmp.join(format!("{stem}-p{i}"));
                mkdirs(&dest)?;
                // Missing /loader on a partition is normal (ESP with XBOOTLDR).
                let _ = output(
                    tool("mcopy")
                        .env("MTOOLS_SKIP_CHECK", "1")
                        .args(["-s", "-n", "-i"])
                        .arg(format!("{}@@{}", img.display(), first * BLOCK as u64))
                        .arg("::/loader")
                        .arg(&dest),
                );
                let conf = dest.join("loader/loader.conf");
                if let Ok(c) = read_to_string(&conf) {
                    confs.push(c.into_bytes());
                }
                if let Ok(rd) = std::fs::read_dir(dest.join("loader/entries")) {
                    for e in rd.flatten() {
                        if let Ok(c) = std::fs::read(e.path()) {
                            entries.push((e.file_name().to_string_lossy().into_owned(), c));
                        }
                    }
                }
            }
        }
    }
    for (i, c) in confs.iter().enumerate() {
        put("loader_conf", &i.to_string(), c)?;
    }
    for (i, (name, c)) in entries.iter().enumerate() {
        let mut s = name.as_bytes().to_vec();
        s.push(0);
        s.extend_from_slice(c);
        put("bls_entry", &i.to_string(), &s)?;
    }

    // version_cmp: triples from the UAPI spec's and systemd's examples.
    let versions = [
        "1.0",
        "1.0.0",
        "1_0",
        "1.0~rc1",
        "1.0^",
        "1.0^git1",
        "1.0-9",
        "1.0-10",
        "6.1.0-100",
        "a",
        "A",
        "1.a",
        "01",
        "1",
        "~",
        "^",
        "",
        "5.0.0-rc1~",
        "122.1",
        "122a",
    ];
    for (i, w) in versions.windows(3).enumerate() {
        put(
            "version_cmp",
            &i.to_string(),
            format!("{}\0{}\0{}", w[0], w[1], w[2]).as_bytes(),
        )?;
    }

    // e820: maps as QEMU q35, microvm and Firecracker report them, plus overlaps.
    type E820 = (u64, u64, u32);
    let maps: &[(u8, &[E820])] = &[
        (
            0,
            &[
                (0, 0x9fc00, 1),
                (0x9fc00, 0x400, 2),
                (0xf0000, 0x10000, 2),
                (0x10_0000, 0x3ff0_0000, 1),
                (0xfeff_c000, 0x4000, 2),
                (0x1_0000_0000, 0x4000_0000, 1),
            ],
        ),
        (
            0x20,
            &[
                (0, 0xa0000, 1),
                (0x10_0000, 0x7ff0_0000, 1),
                (0xb000_0000, 0x1000_0000, 2),
            ],
        ),
        (
            0,
            &[
                (0x1000, 0x10_0000, 1),
                (0x8_0000, 0x1000, 3),
                (0x8_0800, 0x10, 4),
                (u64::MAX - 0xfff, 0x2000, 1),
            ],
        ),
    ];
    for (i, (mode, es)) in maps.iter().enumerate() {
        let mut s = vec![mode | es.len() as u8];
        for &(a, sz, k) in *es {
            s.extend_from_slice(&a.to_le_bytes());
            s.extend_from_slice(&sz.to_le_bytes());
            s.extend_from_slice(&k.to_le_bytes());
        }
        // A few operations: allocate top-down, allocate at 16 MiB, free it.
        s.extend_from_slice(&[0x20, 0x10, 0, 12, 0, 2]);
        s.extend_from_slice(&[2, 0x00, 0x10, 0]);
        s.extend_from_slice(&0x100_0000u64.to_le_bytes());
        s.push(2);
        s.extend_from_slice(&[3, 0x00, 0x10, 0]);
        s.extend_from_slice(&0x100_0000u64.to_le_bytes());
        put("e820", &i.to_string(), &s)?;
    }

    // Small disks and file systems made here, independent of the harness.
    if find_tool("sgdisk").is_some() && find_tool("sfdisk").is_some() {
        let gpt = tmp.join("gpt.img");
        File::create(&gpt)
            .and_then(|f| f.set_len(4 << 20))
            .map_err(|e| e.to_string())?;
        run(tool("sgdisk")
            .args([
                "-n",
                "1:2048:+1M",
                "-t",
                "1:ef00",
                "-n",
                "2:0:+1M",
                "-t",
                "2:ea00",
                "-n",
                "3:0:0",
                "-t",
                "3:8300",
                "-c",
                "3:root",
            ])
            .arg(&gpt)
            .stdout(Stdio::null()))?;
        let d = std::fs::read(&gpt).map_err(|e| e.to_string())?;
        let b = (d.len() / BLOCK) as u64;
        put(
            "gpt_mbr",
            "small-gpt",
            &sparse(b, blocks_of(&d, 0), 128 * 1024),
        )?;
        let mbr = tmp.join("mbr.img");
        File::create(&mbr)
            .and_then(|f| f.set_len(2 << 20))
            .map_err(|e| e.to_string())?;
        let mut c = tool("sfdisk");
        c.arg("-q")
            .arg(&mbr)
            .stdin(Stdio::piped())
            .stdout(Stdio::null());
        let mut child = c.spawn().map_err(|e| format!("sfdisk: {e}"))?;
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().ok_or("sfdisk stdin")?;
            stdin
                .write_all(b"label: dos\nstart=2048, size=1024, type=ef, bootable\nsize=512, type=ea\ntype=83\n")
                .map_err(|e| e.to_string())?;
        }
        if !child.wait().is_ok_and(|s| s.success()) {
            return Err("sfdisk failed making the MBR seed".into());
        }
        let d = std::fs::read(&mbr).map_err(|e| e.to_string())?;
        // The raw first block: a literal MBR disk for the MemDisk path.
        put("gpt_mbr", "small-mbr-raw", &d[..4096])?;
        put(
            "gpt_mbr",
            "small-mbr",
            &sparse((d.len() / BLOCK) as u64, blocks_of(&d, 0), 64 * 1024),
        )?;
    }
    for (bits, kib) in [(12u8, 1024u64), (16, 4096), (32, 40 * 1024)] {
        if let Some(s) = make_fat(&tmp, bits, kib, &kernel_head)? {
            put("fat", &format!("mkfs-fat{bits}"), &s)?;
        }
    }
    Ok(n)
}

/// Seconds per target in `cargo xtask test` (`EMBER_FUZZ_SECONDS` overrides).
pub fn test_seconds() -> u64 {
    std::env::var("EMBER_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

/// The bounded fuzz step of `cargo xtask test`: every target briefly, one
/// PASS/FAIL line (details of any finding follow a FAIL).
pub fn test_line() -> bool {
    let secs = test_seconds();
    let t0 = Instant::now();
    let result = (|| -> Result<(u64, Vec<String>)> {
        ensure_tools()?;
        seeds()?;
        build()?;
        let (mut execs, mut findings) = (0, Vec::new());
        for t in TARGETS {
            let o = run_target(t, secs, 1)?;
            execs += o.execs.unwrap_or(0);
            if let Some(f) = o.finding {
                findings.push(format!("fuzz/{t}:\n{f}"));
            }
        }
        Ok((execs, findings))
    })();
    let wall = t0.elapsed().as_secs_f64();
    match result {
        Ok((execs, findings)) if findings.is_empty() => {
            println!(
                "PASS fuzz ({} targets x {secs}s, {execs} execs, {wall:.0}s with build)",
                TARGETS.len()
            );
            true
        }
        Ok((_, findings)) => {
            println!(
                "FAIL fuzz: {} finding(s)\n{}",
                findings.len(),
                findings.join("\n")
            );
            false
        }
        Err(e) => {
            println!("FAIL fuzz: {e}");
            false
        }
    }
}

/// Files under `dir` (recursively) whose extension is `ext`, case-insensitive.
fn find_files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => find_files(&p, ext, out),
            Ok(t) if t.is_file() && p.extension().is_some_and(|x| x.eq_ignore_ascii_case(ext)) => {
                out.push(p)
            }
            _ => {}
        }
    }
}
