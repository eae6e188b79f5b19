//! Test scenarios and the disk images they boot from, assembled with Debian's
//! sfdisk, mkfs.fat, mtools and mkfs.ext4.

use crate::guest::{guest_dir, Artifacts};
use crate::util::{
    copy, mkdirs, output, read_to_string, remove_dir_all_if_exists, remove_file_if_exists, run,
    tool, write, Fnv, Result,
};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Corrupt-disk scenarios (damaged after building); see corrupt.rs.
#[path = "corrupt.rs"]
pub mod corrupt;

const MIB: u64 = 1024 * 1024;
const GUID_ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const GUID_XBOOTLDR: &str = "BC13C2FF-59E6-4262-A352-B275FD6F7172";
const GUID_LINUX: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Table {
    Gpt,
    Mbr,
}

#[derive(Clone, Copy, Debug)]
pub enum Fs {
    /// FAT `bits` (12/16/32) with `spc` sectors per cluster.
    Fat {
        bits: u8,
        spc: u8,
    },
    Ext4,
    /// ext4 with this UUID (for GRUB's `search --fs-uuid`), holding the
    /// partition's `files`.
    Ext4Uuid(&'static str),
    /// ext4 with this UUID made from a whole directory tree (e.g. a
    /// debootstrap root): the partition's one file is `("/", Src::Host(dir))`.
    Ext4Tree(&'static str),
}

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Esp,
    Xbootldr,
    Linux,
}

#[derive(Clone, Debug)]
pub enum Src {
    Host(PathBuf),
    Text(String),
}

#[derive(Clone, Debug)]
pub struct Part {
    pub kind: Kind,
    pub size_mib: u64,
    pub fs: Fs,
    /// (absolute path inside the file system, contents)
    pub files: Vec<(String, Src)>,
}

#[derive(Clone, Debug)]
pub struct Disk {
    pub table: Table,
    pub parts: Vec<Part>,
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub disks: Vec<Disk>,
    /// The `ember.variant=` the booted entry must carry.
    pub expect: &'static str,
    /// Also run on the microvm machine (q35 always runs).
    pub microvm: bool,
}

/// Every scenario name, in matrix order.
pub const NAMES: &[&str] = &[
    "fat32",
    "fat16",
    "fat12",
    "esp-second",
    "xbootldr",
    "ordering",
    "ordering-nokey",
    "mbr",
    "second-disk",
    "bootorder",
    "menu",
    "fallback",
    // corrupt.rs: disk 0 damaged, a later disk or entry good.
    "gpt-primary-bad",
    "gpt-both-bad",
    "fat-loop",
    "fat-crosslink",
    "dir-self",
    "truncated-kernel",
    "initrd-too-big",
    "bad-pe",
];

/// Options every entry passes: serial console, and panic=-1 so a guest panic
/// reboots, which -no-reboot turns into a prompt QEMU exit instead of a hang.
pub const BASE_OPTIONS: &str = "console=ttyS0 panic=-1";

/// A BLS type #1 entry pointing at `linux`/`initrd` on the same partition.
fn entry(
    title: &str,
    version: Option<&str>,
    sort_key: Option<&str>,
    linux: &str,
    initrd: &str,
    variant: &str,
) -> Src {
    let mut s = format!("title {title}\n");
    if let Some(v) = version {
        s += &format!("version {v}\n");
    }
    if let Some(k) = sort_key {
        s += &format!("sort-key {k}\n");
    }
    s += &format!(
        "linux {linux}\ninitrd {initrd}\noptions {BASE_OPTIONS} ember.variant={variant}\n"
    );
    Src::Text(s)
}

const LOADER_CONF: &str = "timeout 0\n";

/// Kernel + initrd at the root, one entry naming `variant`.
fn simple_files(a: &Artifacts, variant: &str) -> Vec<(String, Src)> {
    vec![
        ("/vmlinuz".into(), Src::Host(a.kernel.clone())),
        ("/initrd.img".into(), Src::Host(a.initrd.clone())),
        ("/loader/loader.conf".into(), Src::Text(LOADER_CONF.into())),
        (
            "/loader/entries/ember.conf".into(),
            entry(
                "Ember test",
                Some(&a.kernel_release),
                None,
                "/vmlinuz",
                "/initrd.img",
                variant,
            ),
        ),
    ]
}

/// A FAT32 ESP whose one entry boots the guest with `ember.efivar=<mode>`
/// (`write` or `read`): the guest stores or reports a UEFI variable
/// through efivarfs (see the /init script in guest.rs).
pub fn efivar_scenario(a: &Artifacts, mode: &'static str) -> Scenario {
    let name = if mode == "write" {
        "efivar-write"
    } else {
        "efivar-read"
    };
    Scenario {
        name,
        disks: vec![Disk {
            table: Table::Gpt,
            parts: vec![esp(
                Fs::Fat { bits: 32, spc: 1 },
                64,
                simple_files(a, &format!("{name} ember.efivar={mode}")),
            )],
        }],
        expect: name,
        microvm: false,
    }
}

fn esp(fs: Fs, size_mib: u64, files: Vec<(String, Src)>) -> Part {
    Part {
        kind: Kind::Esp,
        size_mib,
        fs,
        files,
    }
}

fn fat32(files: Vec<(String, Src)>) -> Part {
    // 64 MiB with 512-byte clusters is ~130k clusters: unambiguously FAT32.
    esp(Fs::Fat { bits: 32, spc: 1 }, 64, files)
}

fn linux_part(size_mib: u64) -> Part {
    Part {
        kind: Kind::Linux,
        size_mib,
        fs: Fs::Ext4,
        files: vec![],
    }
}

pub fn scenario(name: &str, a: &Artifacts) -> Option<Scenario> {
    let gpt = |parts| {
        vec![Disk {
            table: Table::Gpt,
            parts,
        }]
    };
    let s = |name, disks, expect, microvm| Scenario {
        name,
        disks,
        expect,
        microvm,
    };
    Some(match name {
        // Kernel and initrd in a BLS-recommended /<token>/<version>/ directory.
        "fat32" => {
            let dir = format!("/ember/{}", a.kernel_release);
            let files = vec![
                (format!("{dir}/linux"), Src::Host(a.kernel.clone())),
                (format!("{dir}/initrd"), Src::Host(a.initrd.clone())),
                ("/loader/loader.conf".into(), Src::Text(LOADER_CONF.into())),
                (
                    format!("/loader/entries/ember-{}.conf", a.kernel_release),
                    entry(
                        "Ember FAT32",
                        Some(&a.kernel_release),
                        None,
                        &format!("{dir}/linux"),
                        &format!("{dir}/initrd"),
                        "fat32",
                    ),
                ),
            ];
            s("fat32", gpt(vec![fat32(files)]), "fat32", true)
        }
        // 48 MiB / 2 KiB clusters: ~24k clusters, inside FAT16's range.
        "fat16" => s(
            "fat16",
            gpt(vec![esp(
                Fs::Fat { bits: 16, spc: 4 },
                48,
                simple_files(a, "fat16"),
            )]),
            "fat16",
            true,
        ),
        // FAT12 tops out at 4084 clusters: 8 KiB clusters over 24 MiB is
        // ~3k clusters, still room for the ~14 MiB kernel and the initrd.
        "fat12" => s(
            "fat12",
            gpt(vec![esp(
                Fs::Fat { bits: 12, spc: 16 },
                24,
                simple_files(a, "fat12"),
            )]),
            "fat12",
            true,
        ),
        "esp-second" => s(
            "esp-second",
            gpt(vec![linux_part(32), fat32(simple_files(a, "esp-second"))]),
            "esp-second",
            true,
        ),
        // The ESP only has loader.conf; entries and kernel live on XBOOTLDR.
        "xbootldr" => {
            let mut x = simple_files(a, "xbootldr");
            x.retain(|(p, _)| p != "/loader/loader.conf");
            let esp_files = vec![("/loader/loader.conf".into(), Src::Text(LOADER_CONF.into()))];
            s(
                "xbootldr",
                gpt(vec![
                    esp(Fs::Fat { bits: 32, spc: 1 }, 40, esp_files),
                    Part {
                        kind: Kind::Xbootldr,
                        size_mib: 64,
                        fs: Fs::Fat { bits: 32, spc: 1 },
                        files: x,
                    },
                ]),
                "xbootldr",
                true,
            )
        }
        "ordering" => s(
            "ordering",
            gpt(vec![fat32(ordering_files(a))]),
            "keyed-10",
            true,
        ),
        "ordering-nokey" => s(
            "ordering-nokey",
            gpt(vec![fat32(ordering_nokey_files(a))]),
            "nokey-100",
            true,
        ),
        "mbr" => s(
            "mbr",
            vec![Disk {
                table: Table::Mbr,
                parts: vec![esp(
                    Fs::Fat { bits: 32, spc: 1 },
                    64,
                    simple_files(a, "mbr"),
                )],
            }],
            "mbr",
            true,
        ),
        // Disk 0 is a GPT disk with nothing bootable; disk 1 has the ESP.
        "second-disk" => s(
            "second-disk",
            vec![
                Disk {
                    table: Table::Gpt,
                    parts: vec![linux_part(16)],
                },
                Disk {
                    table: Table::Gpt,
                    parts: vec![fat32(simple_files(a, "second-disk"))],
                },
            ],
            "second-disk",
            true,
        ),
        // Two bootable disks; QEMU's bootindex (fw_cfg `bootorder`, see
        // corrupt::qemu_extra) names the second, so Ember must boot it
        // although it was discovered last.
        "bootorder" => s(
            "bootorder",
            vec![
                Disk {
                    table: Table::Gpt,
                    parts: vec![fat32(simple_files(a, "bootorder-unlisted"))],
                },
                Disk {
                    table: Table::Gpt,
                    parts: vec![fat32(simple_files(a, "bootorder"))],
                },
            ],
            "bootorder",
            false,
        ),
        // Two bootable disks and a user at the serial console: a key opens
        // Ember's boot menu, which lists the second disk's two entries under
        // its option; choosing "2.2" boots the second of them, which neither
        // the default order nor the disk's default would (see
        // qemu::run_with_keys). sort-key fixes the entries' order.
        "menu" => s(
            "menu",
            vec![
                Disk {
                    table: Table::Gpt,
                    parts: vec![fat32(simple_files(a, "menu-default"))],
                },
                Disk {
                    table: Table::Gpt,
                    parts: vec![fat32(vec![
                        ("/vmlinuz".into(), Src::Host(a.kernel.clone())),
                        ("/initrd.img".into(), Src::Host(a.initrd.clone())),
                        ("/loader/loader.conf".into(), Src::Text(LOADER_CONF.into())),
                        (
                            "/loader/entries/a.conf".into(),
                            entry(
                                "Disk default",
                                None,
                                Some("a"),
                                "/vmlinuz",
                                "/initrd.img",
                                "menu-disk-default",
                            ),
                        ),
                        (
                            "/loader/entries/b.conf".into(),
                            entry(
                                "Menu target",
                                None,
                                Some("b"),
                                "/vmlinuz",
                                "/initrd.img",
                                "menu",
                            ),
                        ),
                    ])],
                },
            ],
            "menu",
            true,
        ),
        // The default entry names a missing kernel and the next one a file
        // that is not a bzImage: Ember must say so and boot the third.
        "fallback" => s(
            "fallback",
            gpt(vec![fat32(fallback_files(a))]),
            "fallback",
            true,
        ),
        _ => return corrupt::scenario(name, a),
    })
}

/// Sort keys make the order `a-missing`, `b-not-a-kernel`, `c-good`; only
/// the last can boot.
fn fallback_files(a: &Artifacts) -> Vec<(String, Src)> {
    let mut f = simple_files(a, "unused");
    f.retain(|(p, _)| !p.starts_with("/loader/entries/"));
    f.extend([
        (
            "/loader/entries/a-missing.conf".into(),
            entry(
                "Missing kernel",
                None,
                Some("a"),
                "/nonexistent/vmlinuz",
                "/initrd.img",
                "wrong-a",
            ),
        ),
        (
            "/loader/entries/b-not-a-kernel.conf".into(),
            entry(
                "Not a kernel",
                None,
                Some("b"),
                "/initrd.img",
                "/initrd.img",
                "wrong-b",
            ),
        ),
        (
            "/loader/entries/c-good.conf".into(),
            entry(
                "Good",
                None,
                Some("c"),
                "/vmlinuz",
                "/initrd.img",
                "fallback",
            ),
        ),
    ]);
    f
}

/// Boot Loader Specification "Sorting" (uapi-group, type #1), first entry is
/// the default (as systemd-boot does):
///  1. "bad" entries (boot counter `+0`) sort after all others;
///  2. if both have `sort-key`: sort-key ascending (strcmp), then machine-id
///     ascending, then `version` DEScending by version order;
///  3. an entry with `sort-key` sorts before one without;
///  4. otherwise by file name without `.conf`, DEScending by version order.
///
/// Here: `ember-bad+0` has the smallest sort-key but is bad (rule 1);
/// `fedora` > `ember` (rule 2), so the `ember` pair decides by version:
/// 6.1.0-10 > 6.1.0-9 in version order (strcmp would pick -9). All keyed
/// entries beat the unkeyed `debian-*` and `zzz` ones (rule 3).
/// Expected: `keyed-10`.
fn ordering_files(a: &Artifacts) -> Vec<(String, Src)> {
    let e = |title, version, key, variant| {
        entry(title, version, key, "/vmlinuz", "/initrd.img", variant)
    };
    let mut f = simple_files(a, "unused");
    f.retain(|(p, _)| !p.starts_with("/loader/entries/"));
    f.extend([
        (
            "/loader/entries/debian-6.1.0-9.conf".into(),
            e("nokey 9", Some("6.1.0-9"), None, "nokey-9"),
        ),
        (
            "/loader/entries/debian-6.1.0-100.conf".into(),
            e("nokey 100", Some("6.1.0-100"), None, "nokey-100"),
        ),
        (
            "/loader/entries/zzz.conf".into(),
            e("nokey zzz", Some("99"), None, "nokey-zzz"),
        ),
        (
            "/loader/entries/a-ember-9.conf".into(),
            e("keyed 9", Some("6.1.0-9"), Some("ember"), "keyed-9"),
        ),
        (
            "/loader/entries/b-ember-10.conf".into(),
            e("keyed 10", Some("6.1.0-10"), Some("ember"), "keyed-10"),
        ),
        (
            "/loader/entries/c-fedora.conf".into(),
            e("keyed fedora", Some("7.0"), Some("fedora"), "keyed-fedora"),
        ),
        (
            "/loader/entries/ember-bad+0-3.conf".into(),
            e("bad", Some("9.9"), Some("aaa"), "bad-tries"),
        ),
    ]);
    f
}

/// No entry has a sort-key, so rule 4 (file name, descending version order)
/// decides and `version` is irrelevant: `debian-6.1.0-100` > `-10` > `-9`
/// (strcmp would pick `-9`). `debian-6.1.0-200+0` would be first by name but
/// is bad (rule 1), and the misleading `version 99` on `-9` must not matter.
/// Expected: `nokey-100`.
fn ordering_nokey_files(a: &Artifacts) -> Vec<(String, Src)> {
    let e = |version, variant| entry("nokey", version, None, "/vmlinuz", "/initrd.img", variant);
    let mut f = simple_files(a, "unused");
    f.retain(|(p, _)| !p.starts_with("/loader/entries/"));
    f.extend([
        (
            "/loader/entries/debian-6.1.0-9.conf".into(),
            e(Some("99"), "nokey-9"),
        ),
        (
            "/loader/entries/debian-6.1.0-10.conf".into(),
            e(Some("6.1.0-10"), "nokey-10"),
        ),
        (
            "/loader/entries/debian-6.1.0-100.conf".into(),
            e(Some("6.1.0-100"), "nokey-100"),
        ),
        (
            "/loader/entries/debian-6.1.0-200+0.conf".into(),
            e(Some("6.1.0-200"), "bad-tries"),
        ),
    ]);
    f
}

pub fn disk_dir() -> PathBuf {
    guest_dir().join("disks")
}

/// Build (or reuse) the images for a scenario; returns them in boot order.
pub fn build(s: &Scenario) -> Result<Vec<PathBuf>> {
    let dir = disk_dir();
    mkdirs(&dir)?;
    let mut paths = Vec::new();
    for (i, d) in s.disks.iter().enumerate() {
        let img = dir.join(format!("{}-{i}.img", s.name));
        let keyfile = dir.join(format!("{}-{i}.key", s.name));
        let mut h = Fnv::new()
            .str(&format!("{d:?}"))
            .str(env!("CARGO_PKG_VERSION"));
        let damage = corrupt::key(s.name, i);
        if !damage.is_empty() {
            h = h.str(&damage);
        }
        for p in &d.parts {
            for (_, src) in &p.files {
                if let Src::Host(f) = src {
                    h = h.file_meta(f);
                }
            }
        }
        let key = h.hex();
        if !(img.is_file() && read_to_string(&keyfile).is_ok_and(|k| k == key)) {
            remove_file_if_exists(&keyfile)?;
            build_disk(d, &img)?;
            corrupt::apply(s.name, i, &img)?;
            write(&keyfile, &key)?;
        }
        paths.push(img);
    }
    Ok(paths)
}

/// Partition `img` and write each partition's file system (no caching;
/// see [`build`] for the cached path).
pub fn build_disk(d: &Disk, img: &Path) -> Result {
    // 1 MiB alignment up front, 1 MiB spare at the end for the backup GPT.
    let total = 2 + d.parts.iter().map(|p| p.size_mib).sum::<u64>();
    remove_file_if_exists(img)?;
    File::create(img)
        .and_then(|f| f.set_len(total * MIB))
        .map_err(|e| format!("create {}: {e}", img.display()))?;
    let mut script = match d.table {
        Table::Gpt => String::from("label: gpt\nunit: sectors\n"),
        Table::Mbr => String::from("label: dos\nunit: sectors\n"),
    };
    let mut start = 1u64;
    let mut starts = Vec::new();
    for p in &d.parts {
        let ty = match (d.table, p.kind) {
            (Table::Gpt, Kind::Esp) => GUID_ESP,
            (Table::Gpt, Kind::Xbootldr) => GUID_XBOOTLDR,
            (Table::Gpt, Kind::Linux) => GUID_LINUX,
            (Table::Mbr, Kind::Esp) => "ef",
            (Table::Mbr, Kind::Xbootldr) => "ea",
            (Table::Mbr, Kind::Linux) => "83",
        };
        let name = match (d.table, p.kind) {
            (Table::Mbr, _) => String::new(),
            (_, Kind::Esp) => ", name=\"EFI System\"".into(),
            (_, Kind::Xbootldr) => ", name=\"XBOOTLDR\"".into(),
            (_, Kind::Linux) => ", name=\"Linux\"".into(),
        };
        script += &format!(
            "start={}, size={}, type={ty}{name}\n",
            start * MIB / 512,
            p.size_mib * MIB / 512
        );
        starts.push(start);
        start += p.size_mib;
    }
    let sf = tool("sfdisk")
        .args(["--quiet", "--no-reread", "--no-tell-kernel"])
        .arg(img)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("sfdisk: {e}"));
    let mut sf = sf?;
    {
        use std::io::Write;
        let mut stdin = sf.stdin.take().expect("piped stdin");
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| format!("sfdisk stdin: {e}"))?;
    }
    let st = sf.wait().map_err(|e| format!("sfdisk: {e}"))?;
    if !st.success() {
        return Err(format!(
            "sfdisk {} failed ({st}) for script:\n{script}",
            img.display()
        ));
    }
    for (p, &start_mib) in d.parts.iter().zip(&starts) {
        let part = img.with_extension(format!("p{start_mib}.tmp"));
        build_fs(p, &part)?;
        run(tool("dd")
            .arg(format!("if={}", part.display()))
            .arg(format!("of={}", img.display()))
            .args(["bs=1M", "conv=notrunc,sparse", "status=none"])
            .arg(format!("seek={start_mib}")))?;
        remove_file_if_exists(&part)?;
    }
    if d.table == Table::Gpt {
        // Catch a malformed table here rather than as a puzzling boot failure.
        let v = output(tool("sgdisk").arg("-v").arg(img))?;
        if !v.contains("No problems found") {
            return Err(format!("sgdisk -v {}:\n{v}", img.display()));
        }
    }
    println!("disk: built {}", img.display());
    Ok(())
}

fn build_fs(p: &Part, img: &Path) -> Result {
    remove_file_if_exists(img)?;
    match p.fs {
        Fs::Fat { bits, spc } => {
            let label = match p.kind {
                Kind::Esp => "ESP",
                Kind::Xbootldr => "XBOOTLDR",
                Kind::Linux => "DATA",
            };
            run(tool("mkfs.fat")
                .args([
                    "--invariant",
                    "-F",
                    &bits.to_string(),
                    "-s",
                    &spc.to_string(),
                ])
                .args(["-n", label, "-i", "e3be0001", "-C"])
                .arg(img)
                .arg((p.size_mib * 1024).to_string())
                .stdout(std::process::Stdio::null()))?;
            populate_fat(img, &p.files)
        }
        Fs::Ext4 => {
            File::create(img)
                .and_then(|f| f.set_len(p.size_mib * MIB))
                .map_err(|e| format!("create {}: {e}", img.display()))?;
            run(tool("mkfs.ext4").args(["-q", "-F", "-L", "linux"]).arg(img))
        }
        Fs::Ext4Uuid(uuid) => {
            File::create(img)
                .and_then(|f| f.set_len(p.size_mib * MIB))
                .map_err(|e| format!("create {}: {e}", img.display()))?;
            // mkfs.ext4 -d copies a directory tree in: no mount, no root needed.
            let stage = img.with_extension("tree");
            remove_dir_all_if_exists(&stage)?;
            for (path, src) in &p.files {
                let dst = stage.join(path.trim_start_matches('/'));
                mkdirs(dst.parent().expect("a file has a parent"))?;
                match src {
                    Src::Host(f) => copy(f, &dst).map(drop)?,
                    Src::Text(t) => write(&dst, t)?,
                }
            }
            mkdirs(&stage)?;
            run(tool("mkfs.ext4")
                .args(["-q", "-F", "-L", "root", "-U", uuid])
                .args(["-E", &format!("root_owner=0:0,hash_seed={uuid}"), "-d"])
                .arg(&stage)
                .arg(img))?;
            remove_dir_all_if_exists(&stage)
        }
        Fs::Ext4Tree(uuid) => {
            let [(at, Src::Host(tree))] = &p.files[..] else {
                return Err(format!(
                    "an Ext4Tree partition takes one (\"/\", Src::Host(dir)), not {:?}",
                    p.files
                ));
            };
            if at != "/" || !tree.is_dir() {
                return Err(format!("Ext4Tree: {} is not a directory", tree.display()));
            }
            File::create(img)
                .and_then(|f| f.set_len(p.size_mib * MIB))
                .map_err(|e| format!("create {}: {e}", img.display()))?;
            // -d keeps owners, modes, device nodes and xattrs of the tree.
            run(tool("mkfs.ext4")
                .args(["-q", "-F", "-L", "root", "-U", uuid])
                .args(["-E", &format!("hash_seed={uuid}"), "-d"])
                .arg(tree)
                .arg(img))
        }
    }
}

fn populate_fat(img: &Path, files: &[(String, Src)]) -> Result {
    let mtools = |name: &str| {
        let mut c = tool(name);
        // Image files have no partition/geometry context for mtools to check.
        c.env("MTOOLS_SKIP_CHECK", "1").arg("-i").arg(img);
        c
    };
    let mut made = std::collections::BTreeSet::new();
    let stage = img.with_extension("stage");
    for (path, src) in files {
        let mut dir = String::new();
        let comps: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        for c in &comps[..comps.len() - 1] {
            dir = format!("{dir}/{c}");
            if made.insert(dir.clone()) {
                run(mtools("mmd").arg(format!("::{dir}")))?;
            }
        }
        let host = match src {
            Src::Host(p) => p.clone(),
            Src::Text(t) => {
                write(&stage, t)?;
                stage.clone()
            }
        };
        run(mtools("mcopy")
            .arg("-o")
            .arg(&host)
            .arg(format!("::{path}")))?;
    }
    remove_file_if_exists(&stage)
}
