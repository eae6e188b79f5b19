//! Test helpers: images built by dosfstools/mtools (independent of Ember).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A scratch directory removed on drop.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ember-fat-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch { dir }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Run a host tool, failing the test with a clear message if it is missing
/// or fails. Returns stdout.
pub fn run(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `{tool}` ({e}); install dosfstools and mtools (apt-get install -y dosfstools mtools)")
        });
    assert!(
        out.status.success(),
        "`{tool} {}` failed: {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `mkfs.fat -F <bits>` on a new image of `kib` KiB with extra options.
pub fn mkfs(img: &Path, bits: u8, kib: u32, extra: &[&str]) {
    let bits = bits.to_string();
    let kib = kib.to_string();
    let mut args = vec!["-C", "-F", bits.as_str()];
    args.extend_from_slice(extra);
    args.push(img.to_str().unwrap());
    args.push(kib.as_str());
    run("mkfs.fat", &args);
}

/// Copy a host file into the image at `dest` (a `::/path`).
pub fn mcopy(img: &Path, src: &Path, dest: &str) {
    run(
        "mcopy",
        &[
            "-i",
            img.to_str().unwrap(),
            src.to_str().unwrap(),
            &format!("::{dest}"),
        ],
    );
}

/// Copy bytes into the image via a temporary host file.
pub fn put(s: &Scratch, img: &Path, dest: &str, data: &[u8]) {
    let tmp = s.path("upload.tmp");
    std::fs::write(&tmp, data).unwrap();
    mcopy(img, &tmp, dest);
}

/// Extract a file from the image with mtools.
pub fn get(s: &Scratch, img: &Path, src: &str) -> Vec<u8> {
    let tmp = s.path("download.tmp");
    let _ = std::fs::remove_file(&tmp);
    run(
        "mcopy",
        &[
            "-n",
            "-i",
            img.to_str().unwrap(),
            &format!("::{src}"),
            tmp.to_str().unwrap(),
        ],
    );
    std::fs::read(&tmp).unwrap()
}

pub fn mmd(img: &Path, dir: &str) {
    run("mmd", &["-i", img.to_str().unwrap(), &format!("::{dir}")]);
}

pub fn mdel(img: &Path, file: &str) {
    run("mdel", &["-i", img.to_str().unwrap(), &format!("::{file}")]);
}

/// Deterministic pseudo-random content (xorshift), so files differ by seed.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
