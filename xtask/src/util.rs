//! Small process, path and hashing helpers shared by the subcommands (std only).

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub type Result<T = ()> = std::result::Result<T, String>;

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `target/` of the workspace, where dist/ and guest/ live for every user.
pub fn target_dir() -> PathBuf {
    root().join("target")
}

/// The directory cargo builds into: honours `CARGO_TARGET_DIR` like cargo does.
pub fn cargo_target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => {
            let p = PathBuf::from(d);
            if p.is_absolute() {
                p
            } else {
                root().join(p)
            }
        }
        _ => target_dir(),
    }
}

/// The cargo that launched us (same toolchain), falling back to `cargo` on PATH.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&shell_quote(a));
    }
    s
}

pub fn shell_quote(a: &OsStr) -> String {
    let a = a.to_string_lossy();
    if !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        a.into_owned()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

/// Run a command with inherited stdio; error if it cannot start or exits non-zero.
pub fn run(cmd: &mut Command) -> Result {
    let status = cmd
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run `{}`: {e}", describe(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed: {status}", describe(cmd)))
    }
}

/// Run a command and return its stdout; stderr is included in the error.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `{}`: {e}", describe(cmd)))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{}` failed: {}\n{}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        ))
    }
}

/// Whether `tool` is an executable on PATH or in the sbin directories, which
/// non-root shells often leave out of PATH even though e.g. mkfs.fat lives there.
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let extra = ["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from);
    std::env::split_paths(&path)
        .chain(extra)
        .map(|d| d.join(tool))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// A command for a host tool, resolved through [`find_tool`] so sbin works too.
pub fn tool(name: &str) -> Command {
    Command::new(find_tool(name).unwrap_or_else(|| PathBuf::from(name)))
}

pub fn is_root() -> bool {
    // /proc/self is owned by the effective uid of the reading process.
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// FNV-1a, 64 bit: enough to key caches, not a security boundary.
#[derive(Clone, Copy)]
pub struct Fnv(u64);

impl Fnv {
    pub fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    pub fn bytes(mut self, b: &[u8]) -> Self {
        for &x in b {
            self.0 ^= u64::from(x);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // Separator so ("ab","c") and ("a","bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        self
    }
    pub fn str(self, s: &str) -> Self {
        self.bytes(s.as_bytes())
    }
    /// Key a file by path, size and mtime; cheaper than reading a 14 MiB kernel.
    pub fn file_meta(self, p: &Path) -> Self {
        let m = std::fs::metadata(p).ok();
        let (len, mtime) = m.map(|m| (m.len(), m.mtime())).unwrap_or((0, 0));
        self.str(&p.to_string_lossy())
            .str(&len.to_string())
            .str(&mtime.to_string())
    }
    pub fn hex(self) -> String {
        let mut s = String::new();
        let _ = write!(s, "{:016x}", self.0);
        s
    }
}

pub fn mkdirs(p: &Path) -> Result {
    std::fs::create_dir_all(p).map_err(|e| format!("mkdir {}: {e}", p.display()))
}

pub fn write(p: &Path, data: impl AsRef<[u8]>) -> Result {
    std::fs::write(p, data).map_err(|e| format!("write {}: {e}", p.display()))
}

pub fn read_to_string(p: &Path) -> Result<String> {
    std::fs::read_to_string(p).map_err(|e| format!("read {}: {e}", p.display()))
}

pub fn copy(from: &Path, to: &Path) -> Result<u64> {
    std::fs::copy(from, to).map_err(|e| format!("copy {} -> {}: {e}", from.display(), to.display()))
}

pub fn remove_dir_all_if_exists(p: &Path) -> Result {
    match std::fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("remove {}: {e}", p.display())),
    }
}

pub fn remove_file_if_exists(p: &Path) -> Result {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("remove {}: {e}", p.display())),
    }
}

/// Median of a non-empty list (mean of the middle pair for even lengths).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The last `n` lines of `s`, for failure reports.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Appended to the console text of a VM that did not end by itself.
pub const QEMU_KILLED: &str = "\n[xtask: QEMU did not exit within 300 s; killed]\n";

/// Run a QEMU whose serial console goes to `log` until it exits (the guest
/// powered off) or 300 s pass, then kill it; returns the log (with
/// [`QEMU_KILLED`] after it if it had to be killed) and the wall time.
pub fn run_qemu_to_exit(
    mut cmd: std::process::Command,
    log: &Path,
) -> Result<(String, std::time::Duration)> {
    use std::time::{Duration, Instant};
    let _ = std::fs::remove_file(log);
    let mut child = cmd.spawn().map_err(|e| format!("qemu: {e}"))?;
    let start = Instant::now();
    let mut exited = false;
    while start.elapsed() < Duration::from_secs(300) {
        if let Ok(Some(_)) = child.try_wait() {
            exited = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut out = std::fs::read_to_string(log).unwrap_or_default();
    if !exited {
        out.push_str(QEMU_KILLED);
    }
    Ok((out, start.elapsed()))
}
