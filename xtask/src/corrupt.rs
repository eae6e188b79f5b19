//! Corrupt-disk scenarios: a disk is built with the ordinary builders
//! ([`super::build`]) and then damaged in one specific way by patching bytes
//! at offsets computed from the tools' own output (`sfdisk -d` for partition
//! starts, the GPT header's AlternateLBA for the backup copy, the FAT32 BPB,
//! FAT and directory entries for files, the PE headers for section tables
//! and relocations). Each case passes only when Ember both boots the good
//! option (the marker's variant) and says what was wrong (`expect_log`).
//!
//! Included from `disk.rs` as `disk::corrupt`, so it reuses that module's
//! private helpers (`entry`, `fat32`, ...).

use super::{entry, esp, fat32, simple_files, Disk, Fs, Part, Scenario, Src, Table, MIB};
use crate::guest::{guest_dir, Artifacts};
use crate::qemu::Machine;
use crate::util::{mkdirs, output, tool, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Every corrupt-disk scenario, in matrix order (also listed in `disk::NAMES`).
pub const NAMES: &[&str] = &[
    "gpt-primary-bad",
    "gpt-both-bad",
    "fat-loop",
    "fat-crosslink",
    "dir-self",
    "truncated-kernel",
    "initrd-too-big",
    "bad-pe",
];

/// Bumped whenever a damage routine changes, so cached images are rebuilt.
const DAMAGE_VERSION: &str = "corrupt-v1";

/// RAM for `initrd-too-big`: smaller than its initrd.
const SMALL_RAM: &str = "256M";
/// The oversized initrd, larger than [`SMALL_RAM`].
const BIG_INITRD_MIB: u64 = 300;

/// A kernel truncated to this many bytes (`truncated-kernel`).
const TRUNCATED_BYTES: u32 = 1 << 20;

/// A damaged disk's files: the kernel and initrd of [`simple_files`], but the
/// entry is `broken.conf` (id `broken`), so a message naming entry `broken`
/// can only be about the damaged disk, whose good twin says `ember`.
fn broken_files(a: &Artifacts) -> Vec<(String, Src)> {
    let mut f = simple_files(a, "wrong-damaged-disk");
    for (p, _) in f.iter_mut() {
        if p == "/loader/entries/ember.conf" {
            *p = "/loader/entries/broken.conf".into();
        }
    }
    f
}

fn gpt(parts: Vec<Part>) -> Disk {
    Disk {
        table: Table::Gpt,
        parts,
    }
}

/// Disk 0 damaged (built from `files`), disk 1 good and booting `name`.
fn damaged_then_good(a: &Artifacts, name: &'static str, microvm: bool) -> Scenario {
    Scenario {
        name,
        disks: vec![
            gpt(vec![fat32(broken_files(a))]),
            gpt(vec![fat32(simple_files(a, name))]),
        ],
        expect: name,
        microvm,
    }
}

/// A sparse file of zeros, [`BIG_INITRD_MIB`] long, made once (stable mtime,
/// so the disk cache key does not change).
fn big_initrd() -> PathBuf {
    let dir = guest_dir().join("corrupt");
    let p = dir.join("big-initrd.img");
    let want = BIG_INITRD_MIB * MIB;
    if std::fs::metadata(&p).map(|m| m.len()).ok() != Some(want) {
        // Errors surface as a failed mcopy naming this path.
        let _ = mkdirs(&dir);
        let _ = File::create(&p).and_then(|f| f.set_len(want));
    }
    p
}

/// systemd-boot's EFI binary (a real PE32+ with base relocations), source of
/// the broken images in `bad-pe`.
fn sdboot() -> PathBuf {
    match crate::guest::fetch("systemd-boot-efi") {
        Ok(d) => d.join("usr/lib/systemd/boot/efi/systemd-bootx64.efi"),
        Err(e) => {
            eprintln!("corrupt: systemd-boot-efi: {e}");
            PathBuf::from("/nonexistent/systemd-bootx64.efi")
        }
    }
}

pub fn scenario(name: &str, a: &Artifacts) -> Option<Scenario> {
    Some(match name {
        // Only one disk: the backup GPT must carry it.
        "gpt-primary-bad" => Scenario {
            name: "gpt-primary-bad",
            disks: vec![gpt(vec![fat32(simple_files(a, "gpt-primary-bad"))])],
            expect: "gpt-primary-bad",
            microvm: false,
        },
        "gpt-both-bad" => damaged_then_good(a, "gpt-both-bad", true),
        "fat-loop" => damaged_then_good(a, "fat-loop", true),
        "fat-crosslink" => damaged_then_good(a, "fat-crosslink", false),
        "dir-self" => damaged_then_good(a, "dir-self", false),
        "truncated-kernel" => damaged_then_good(a, "truncated-kernel", false),
        // One disk: entry `a-big` names a 300 MiB initrd (RAM is 256 MiB),
        // entry `b-good` the real one. Big ESP, 4 KiB clusters (FAT32).
        "initrd-too-big" => {
            let mut f = simple_files(a, "unused");
            f.retain(|(p, _)| !p.starts_with("/loader/entries/"));
            f.extend([
                ("/big.img".into(), Src::Host(big_initrd())),
                (
                    "/loader/entries/a-big.conf".into(),
                    entry(
                        "Huge initrd",
                        None,
                        Some("a"),
                        "/vmlinuz",
                        "/big.img",
                        "wrong-big",
                    ),
                ),
                (
                    "/loader/entries/b-good.conf".into(),
                    entry(
                        "Good",
                        None,
                        Some("b"),
                        "/vmlinuz",
                        "/initrd.img",
                        "initrd-too-big",
                    ),
                ),
            ]);
            Scenario {
                name: "initrd-too-big",
                disks: vec![gpt(vec![esp(
                    Fs::Fat { bits: 32, spc: 8 },
                    BIG_INITRD_MIB + 40,
                    f,
                )])],
                expect: "initrd-too-big",
                microvm: false,
            }
        }
        // Entries `a-overlap` and `b-reloc` start damaged copies of
        // systemd-boot; `c-good` boots the kernel.
        "bad-pe" => {
            let sd = sdboot();
            let mut f = simple_files(a, "unused");
            f.retain(|(p, _)| !p.starts_with("/loader/entries/"));
            let efi = |title: &str, key: &str, path: &str| {
                Src::Text(format!("title {title}\nsort-key {key}\nefi {path}\n"))
            };
            f.extend([
                ("/EFI/overlap.efi".into(), Src::Host(sd.clone())),
                ("/EFI/reloc.efi".into(), Src::Host(sd)),
                (
                    "/loader/entries/a-overlap.conf".into(),
                    efi("Overlapping sections", "a", "/EFI/overlap.efi"),
                ),
                (
                    "/loader/entries/b-reloc.conf".into(),
                    efi("Relocation outside the image", "b", "/EFI/reloc.efi"),
                ),
                (
                    "/loader/entries/c-good.conf".into(),
                    entry("Good", None, Some("c"), "/vmlinuz", "/initrd.img", "bad-pe"),
                ),
            ]);
            Scenario {
                name: "bad-pe",
                disks: vec![gpt(vec![fat32(f)])],
                expect: "bad-pe",
                microvm: false,
            }
        }
        _ => return None,
    })
}

/// Machines each corrupt scenario runs on (`None`: not a corrupt scenario).
pub fn machines(name: &str) -> Option<&'static [Machine]> {
    Some(match name {
        "gpt-both-bad" | "fat-loop" => &[Machine::Q35, Machine::Microvm],
        // The native path has its own kernel/initrd checks (bzImage header,
        // initrd placement): worth a case each.
        "truncated-kernel" | "initrd-too-big" => &[Machine::Q35, Machine::Q35Native],
        n if NAMES.contains(&n) => &[Machine::Q35],
        _ => return None,
    })
}

/// Extra QEMU arguments (appended, so they override the defaults).
pub fn qemu_extra(name: &str) -> &'static [&'static str] {
    match name {
        "initrd-too-big" => &["-m", SMALL_RAM],
        // bootindex on the second disk: QEMU lists it in fw_cfg `bootorder`.
        "bootorder" => &["-set", "device.vd1.bootindex=1"],
        // Time for the harness's key to arrive (guest time runs fast under
        // -icount): Ember waits up to 60 s for it.
        "menu" => &["-fw_cfg", "name=opt/ember/cmdline,string=ember.timeout=60"],
        _ => &[],
    }
}

/// Last LBA of a scenario disk (the backup GPT header), from its layout.
fn last_lba(d: &Disk) -> u64 {
    (2 + d.parts.iter().map(|p| p.size_mib).sum::<u64>()) * MIB / 512 - 1
}

/// Fragments Ember's console log must contain for the case to pass (besides
/// the marker). Derived from what Ember prints; each names where and why.
pub fn expect_log(s: &Scenario, m: Machine) -> Vec<String> {
    let native = matches!(m, Machine::Q35Native | Machine::MicrovmNative);
    let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match s.name {
        "menu" => v(&["      2.2) Menu target", "the menu chose b", "boot manager: Boot0001 \"Ember: virtio-"]),
        // systemd-boot ran (efichains.rs): it puts `initrd=` first on the
        // kernel's command line for a type #1 entry; Ember and OVMF do not.
        "systemd-boot-type1" => v(&["ember-init: cmdline: initrd=\\initrd.img "]),
        "gpt-primary-bad" => vec![
            "primary GPT is bad (GPT header at LBA 1 CRC mismatch".into(),
            format!("; using backup at LBA {}", last_lba(&s.disks[0])),
        ],
        "gpt-both-bad" => vec![
            "both GPT copies are bad: primary: GPT header at LBA 1 CRC mismatch (stored 0x".into(),
            format!(
            "; backup: no GPT header signature at LBA {}; trying the next disk",
            last_lba(&s.disks[0])
        )],
        "fat-loop" => v(&[
            "partition 1: entry broken failed: /vmlinuz: FAT: cluster chain starting at ",
            " loops (longer than the volume); run fsck; trying the next one",
        ]),
        "fat-crosslink" => v(&[
            "partition 1: entry broken failed: /vmlinuz: FAT: chain at cluster ",
            "(cross-linked or truncated); run fsck; trying the next one",
        ]),
        "dir-self" => v(&[
            "virtio-blk 00:02.0 partition 1 (ESP): cannot read /loader/entries: FAT: directory at cluster ",
            " contains itself or a parent; run fsck",
        ]),
        "truncated-kernel" if native => v(&[
            "partition 1: entry broken failed: /vmlinuz: kernel image ends at byte ",
            " but the file has only 1048576 bytes: truncated image?; trying the next one",
        ]),
        "truncated-kernel" => v(&[
            "UEFI: LoadImage: PE image truncated: section \".text\" data at offset",
            "extends past the 1048576-byte file",
            "partition 1: entry broken failed: /vmlinuz: LoadImage failed: EFI_LOAD_ERROR",
        ]),
        "initrd-too-big" if native => v(&[
            "partition 1: entry a-big failed: initrd (300 MiB): cannot place kernel data: out of memory",
            "give the VM more RAM; trying the next one",
        ]),
        // Through UEFI the kernel's EFI stub allocates the initrd buffer
        // itself; Ember sees the status it exits with and the size it was
        // asked for through LoadFile2.
        "initrd-too-big" => v(&[
            "EFI stub: ERROR: Failed to load initrd: 0x8000000000000009",
            "partition 1: entry a-big failed: /vmlinuz returned EFI_OUT_OF_RESOURCES",
            "its initrd (/big.img, 300 MiB) may not fit in the ",
        ]),
        "bad-pe" => v(&[
            "UEFI: LoadImage: corrupt PE image: sections \".text\" and \".reloc\" overlap in memory",
            "partition 1: entry a-overlap failed: /EFI/overlap.efi: LoadImage failed: EFI_LOAD_ERROR",
            "UEFI: LoadImage: corrupt PE image: base relocation block for page RVA 0x7fff0000 is outside the ",
            "partition 1: entry b-reloc failed: /EFI/reloc.efi: LoadImage failed: EFI_LOAD_ERROR",
        ]),
        _ => vec![],
    }
}

/// Part of the disk cache key: which damage is applied to disk `i`.
pub fn key(name: &str, i: usize) -> String {
    if NAMES.contains(&name) {
        format!("{DAMAGE_VERSION}/{name}/{i}")
    } else {
        String::new()
    }
}

/// Damage disk `i` of scenario `name` (built at `img`); no-op for others.
pub fn apply(name: &str, i: usize, img: &Path) -> Result {
    let what = match (name, i) {
        ("gpt-primary-bad", 0) => gpt_damage(img, false)?,
        ("gpt-both-bad", 0) => gpt_damage(img, true)?,
        ("fat-loop", 0) => {
            let mut fs = Fat32::open(img, 0)?;
            let k = fs.lookup("/vmlinuz")?;
            let chain = fs.chain(k.first)?;
            // Cluster #100 of the kernel points back to cluster #50.
            fs.set(chain[100], chain[50])?;
            format!(
                "/vmlinuz chain: cluster {} -> {} (loop)",
                chain[100], chain[50]
            )
        }
        ("fat-crosslink", 0) => {
            let mut fs = Fat32::open(img, 0)?;
            let k = fs.lookup("/vmlinuz")?;
            let r = fs.lookup("/initrd.img")?;
            let chain = fs.chain(k.first)?;
            let last = *chain.last().ok_or("empty kernel chain")?;
            // The kernel's chain runs on into the initrd's: both files share
            // the initrd's clusters, the kernel's chain is too long.
            fs.set(last, r.first)?;
            format!(
                "/vmlinuz chain end {last} -> /initrd.img's first cluster {}",
                r.first
            )
        }
        ("dir-self", 0) => {
            let mut fs = Fat32::open(img, 0)?;
            let loader = fs.lookup("/loader")?;
            let entries = fs.lookup("/loader/entries")?;
            fs.set_first_cluster(&entries, loader.first)?;
            format!(
                "/loader/entries now starts at cluster {} (its parent /loader), was {}",
                loader.first, entries.first
            )
        }
        ("truncated-kernel", 0) => {
            let mut fs = Fat32::open(img, 0)?;
            let k = fs.lookup("/vmlinuz")?;
            let chain = fs.chain(k.first)?;
            let keep = (u64::from(TRUNCATED_BYTES)).div_ceil(fs.cluster_size()) as usize;
            fs.set(chain[keep - 1], 0x0FFF_FFFF)?;
            for &c in &chain[keep..] {
                fs.set(c, 0)?;
            }
            fs.set_size(&k, TRUNCATED_BYTES)?;
            format!("/vmlinuz truncated to {TRUNCATED_BYTES} bytes ({keep} clusters)")
        }
        ("bad-pe", 0) => {
            let mut fs = Fat32::open(img, 0)?;
            let a = pe_overlap(&mut fs, "/EFI/overlap.efi")?;
            let b = pe_reloc(&mut fs, "/EFI/reloc.efi")?;
            format!("{a}; {b}")
        }
        _ => return Ok(()),
    };
    println!("disk: damaged {}: {what}", img.display());
    Ok(())
}

fn open_rw(img: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(img)
        .map_err(|e| format!("open {}: {e}", img.display()))
}

fn read_at(f: &File, off: u64, len: usize) -> Result<Vec<u8>> {
    let mut b = vec![0u8; len];
    f.read_exact_at(&mut b, off)
        .map_err(|e| format!("read {len} bytes at {off:#x}: {e}"))?;
    Ok(b)
}

fn write_at(f: &File, off: u64, b: &[u8]) -> Result {
    f.write_all_at(b, off)
        .map_err(|e| format!("write {} bytes at {off:#x}: {e}", b.len()))
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
fn le64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

/// Break the primary GPT header's CRC (one bit of the stored value); with
/// `backup`, also wipe the backup header's signature (found through the
/// primary's AlternateLBA, read before the damage).
fn gpt_damage(img: &Path, backup: bool) -> Result<String> {
    let f = open_rw(img)?;
    let hdr = read_at(&f, 512, 92)?;
    if &hdr[..8] != b"EFI PART" {
        return Err(format!("{}: no GPT header at LBA 1", img.display()));
    }
    let alt = le64(&hdr, 32);
    let mut crc = hdr[16..20].to_vec();
    crc[0] ^= 0x01;
    write_at(&f, 512 + 16, &crc)?;
    let mut what = format!(
        "primary GPT header CRC {:#010x} -> {:#010x}",
        le32(&hdr, 16),
        le32(&crc, 0)
    );
    if backup {
        let b = read_at(&f, alt * 512, 8)?;
        if b != b"EFI PART" {
            return Err(format!(
                "{}: no backup GPT header at LBA {alt}",
                img.display()
            ));
        }
        write_at(&f, alt * 512, b"NOT PART")?;
        what += &format!("; backup header signature at LBA {alt} wiped");
    }
    Ok(what)
}

/// Byte offset of partition `index` (0-based) from `sfdisk -d`.
fn partition_offset(img: &Path, index: usize) -> Result<u64> {
    let dump = output(tool("sfdisk").arg("-d").arg(img))?;
    let line = dump
        .lines()
        .filter(|l| l.contains("start="))
        .nth(index)
        .ok_or_else(|| format!("sfdisk -d {}: no partition {}", img.display(), index + 1))?;
    let start = line
        .split("start=")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.trim().parse::<u64>().ok())
        .ok_or_else(|| format!("sfdisk -d: cannot parse `{line}`"))?;
    Ok(start * 512)
}

/// A FAT32 volume inside a disk image, just enough to find files and patch
/// FAT entries and directory entries.
struct Fat32 {
    f: File,
    /// Byte offsets inside the image.
    fat: u64,
    fat_bytes: u64,
    nfats: u64,
    data: u64,
    cluster: u64,
    root: u32,
}

/// A short directory entry: where it is and what it says.
struct Dirent {
    /// Byte offset of the 32-byte entry inside the image.
    at: u64,
    first: u32,
}

impl Fat32 {
    fn open(img: &Path, part: usize) -> Result<Fat32> {
        let base = partition_offset(img, part)?;
        let f = open_rw(img)?;
        let b = read_at(&f, base, 512)?;
        let bps = u64::from(le16(&b, 11));
        let spc = u64::from(b[13]);
        let reserved = u64::from(le16(&b, 14));
        let nfats = u64::from(b[16]);
        let fatsz16 = le16(&b, 22);
        let fatsz32 = u64::from(le32(&b, 36));
        if fatsz16 != 0 || fatsz32 == 0 || le16(&b, 510) != 0xAA55 {
            return Err(format!(
                "{} partition {}: not FAT32",
                img.display(),
                part + 1
            ));
        }
        Ok(Fat32 {
            f,
            fat: base + reserved * bps,
            fat_bytes: fatsz32 * bps,
            nfats,
            data: base + (reserved + nfats * fatsz32) * bps,
            cluster: spc * bps,
            root: le32(&b, 44),
        })
    }

    fn cluster_size(&self) -> u64 {
        self.cluster
    }

    fn get(&self, c: u32) -> Result<u32> {
        Ok(le32(&read_at(&self.f, self.fat + 4 * u64::from(c), 4)?, 0) & 0x0FFF_FFFF)
    }

    /// Set the FAT entry of `c` in every FAT copy (keeping the top 4 bits).
    fn set(&mut self, c: u32, v: u32) -> Result {
        for i in 0..self.nfats {
            let at = self.fat + i * self.fat_bytes + 4 * u64::from(c);
            let old = le32(&read_at(&self.f, at, 4)?, 0);
            write_at(
                &self.f,
                at,
                &((old & 0xF000_0000) | (v & 0x0FFF_FFFF)).to_le_bytes(),
            )?;
        }
        Ok(())
    }

    fn chain(&self, first: u32) -> Result<Vec<u32>> {
        let mut out = vec![first];
        let mut c = first;
        loop {
            let n = self.get(c)?;
            if n >= 0x0FFF_FFF8 {
                return Ok(out);
            }
            if n < 2 || out.len() > 1 << 22 {
                return Err(format!("chain from {first}: bad link {c} -> {n:#x}"));
            }
            out.push(n);
            c = n;
        }
    }

    fn cluster_at(&self, c: u32) -> u64 {
        self.data + u64::from(c - 2) * self.cluster
    }

    /// The 8.3 form of a simple lower-case name (`initrd.img` → `INITRD  IMG`).
    fn short(name: &str) -> [u8; 11] {
        let mut s = [b' '; 11];
        let (base, ext) = name.split_once('.').unwrap_or((name, ""));
        for (d, c) in s[..8].iter_mut().zip(base.bytes()) {
            *d = c.to_ascii_uppercase();
        }
        for (d, c) in s[8..].iter_mut().zip(ext.bytes()) {
            *d = c.to_ascii_uppercase();
        }
        s
    }

    /// Find `path` (components with 8.3-compatible names) from the root.
    fn lookup(&self, path: &str) -> Result<Dirent> {
        let mut dir = self.root;
        let mut found = None;
        for comp in path.trim_start_matches('/').split('/') {
            let want = Self::short(comp);
            let mut hit = None;
            'dir: for c in self.chain(dir)? {
                let at = self.cluster_at(c);
                let d = read_at(&self.f, at, self.cluster as usize)?;
                for (i, e) in d.chunks_exact(32).enumerate() {
                    if e[0] == 0 {
                        break 'dir;
                    }
                    if e[0] == 0xE5 || e[11] == 0x0F {
                        continue;
                    }
                    if e[..11] == want {
                        hit = Some(Dirent {
                            at: at + 32 * i as u64,
                            first: (u32::from(le16(e, 20)) << 16) | u32::from(le16(e, 26)),
                        });
                        break 'dir;
                    }
                }
            }
            let h = hit.ok_or_else(|| format!("FAT32: {path}: `{comp}` not found"))?;
            dir = h.first;
            found = Some(h);
        }
        found.ok_or_else(|| format!("FAT32: empty path `{path}`"))
    }

    fn set_first_cluster(&mut self, e: &Dirent, c: u32) -> Result {
        write_at(&self.f, e.at + 20, &((c >> 16) as u16).to_le_bytes())?;
        write_at(&self.f, e.at + 26, &(c as u16).to_le_bytes())
    }

    fn set_size(&mut self, e: &Dirent, size: u32) -> Result {
        write_at(&self.f, e.at + 28, &size.to_le_bytes())
    }

    /// Image offset of byte `off` of the file starting at cluster `first`.
    fn file_offset(&self, first: u32, off: u64) -> Result<u64> {
        let chain = self.chain(first)?;
        let c = chain
            .get((off / self.cluster) as usize)
            .ok_or_else(|| format!("offset {off:#x} is past the file's chain"))?;
        Ok(self.cluster_at(*c) + off % self.cluster)
    }

    fn read_file(&self, first: u32, off: u64, len: usize) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(len);
        for i in 0..len as u64 {
            out.push(read_at(&self.f, self.file_offset(first, off + i)?, 1)?[0]);
        }
        Ok(out)
    }

    fn write_file(&mut self, first: u32, off: u64, b: &[u8]) -> Result {
        for (i, x) in b.iter().enumerate() {
            write_at(&self.f, self.file_offset(first, off + i as u64)?, &[*x])?;
        }
        Ok(())
    }
}

/// PE32+ layout of the image starting at cluster `first`: (section table
/// offset, section count, optional header offset).
fn pe_layout(fs: &Fat32, first: u32) -> Result<(u64, u16, u64)> {
    let dos = fs.read_file(first, 0, 64)?;
    if &dos[..2] != b"MZ" {
        return Err("not a PE image (no MZ)".into());
    }
    let pe = u64::from(le32(&dos, 0x3c));
    let coff = fs.read_file(first, pe, 24)?;
    if &coff[..4] != b"PE\0\0" {
        return Err("not a PE image (no PE signature)".into());
    }
    let nsec = le16(&coff, 6);
    let opt_size = u64::from(le16(&coff, 20));
    let opt = pe + 24;
    Ok((opt + opt_size, nsec, opt))
}

/// Give section 1 the VirtualAddress of section 0: they overlap in memory.
fn pe_overlap(fs: &mut Fat32, path: &str) -> Result<String> {
    let e = fs.lookup(path)?;
    let (sec, n, _) = pe_layout(fs, e.first)?;
    if n < 2 {
        return Err(format!("{path}: only {n} section(s)"));
    }
    let s0 = fs.read_file(e.first, sec, 40)?;
    let s1 = fs.read_file(e.first, sec + 40, 40)?;
    let va0 = le32(&s0, 12);
    fs.write_file(e.first, sec + 40 + 12, &va0.to_le_bytes())?;
    let name = |s: &[u8]| {
        String::from_utf8_lossy(&s[..8])
            .trim_end_matches('\0')
            .to_string()
    };
    Ok(format!(
        "{path}: section {} moved from RVA {:#x} onto {} at {va0:#x}",
        name(&s1),
        le32(&s1, 12),
        name(&s0)
    ))
}

/// Point the first base relocation block at page RVA 0x7fff0000, far
/// outside the image.
fn pe_reloc(fs: &mut Fat32, path: &str) -> Result<String> {
    let e = fs.lookup(path)?;
    let (sec, n, opt) = pe_layout(fs, e.first)?;
    // PE32+: data directories start 112 bytes into the optional header;
    // entry 5 is the base relocation table.
    let dd = fs.read_file(e.first, opt + 112 + 5 * 8, 8)?;
    let rva = le32(&dd, 0);
    if rva == 0 {
        return Err(format!("{path}: no base relocation table"));
    }
    for i in 0..u64::from(n) {
        let s = fs.read_file(e.first, sec + 40 * i, 40)?;
        let (vsize, va, raw) = (le32(&s, 8), le32(&s, 12), le32(&s, 20));
        if (va..va + vsize).contains(&rva) {
            let at = u64::from(raw + (rva - va));
            let old = le32(&fs.read_file(e.first, at, 4)?, 0);
            fs.write_file(e.first, at, &0x7fff_0000u32.to_le_bytes())?;
            return Ok(format!(
                "{path}: relocation block page RVA {old:#x} -> 0x7fff0000"
            ));
        }
    }
    Err(format!(
        "{path}: relocation table RVA {rva:#x} is in no section"
    ))
}
