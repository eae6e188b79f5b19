//! Real Debian EFI boot chains as boot scenarios. Each image is checked under
//! OVMF (`<scenario>/q35-ovmf`, in the default run) so that it is known good
//! before Ember's UEFI layer boots it (`<scenario>/q35`, `--with-ember-uefi`).
//!
//! | scenario | ESP (GPT, FAT32) | what runs |
//! |---|---|---|
//! | `efi-stub` | `\vmlinuz.efi`, `\initrd.img`, `\startup.nsh`; type #1 entry | OVMF: its UEFI Shell runs `startup.nsh`, which starts the kernel's EFI stub with `initrd=` and the command line as load options. Ember: the type #1 entry |
//! | `systemd-boot-type1` | `\EFI\BOOT\BOOTX64.EFI` = systemd-boot; a type #1 entry for it (`loader.conf`'s `default`), a type #1 entry for the kernel with `sort-key 0` and a UKI in `\EFI\Linux\` | systemd-boot → kernel EFI stub |
//! | `systemd-boot-uki` | same files, the kernel entry without a sort key | systemd-boot → UKI (systemd stub → kernel) |
//! | `uki` | `\EFI\BOOT\BOOTX64.EFI` = a UKI | systemd stub → kernel |
//! | `uki-type2` | only `\EFI\Linux\ember-uki-type2.efi`, a UKI (Boot Loader Specification type #2; Ember only) | systemd stub → kernel |
//! | `shim-grub` | `\EFI\BOOT\BOOTX64.EFI` = shim, `\EFI\BOOT\grubx64.efi`, `\EFI\debian\grub.cfg`; partition 2 ext4 with `/boot` | shim → GRUB → `search --fs-uuid` → `/boot/grub/grub.cfg` → Linux |
//!
//! Debian's OVMF has no BLS support and a kernel started as `BOOTX64.EFI`
//! gets no load options (so no initrd): the Shell's `startup.nsh` is the one
//! loader-free way to hand the stub its options under OVMF.
//!
//! The systemd-boot scenarios must run systemd-boot under Ember too, and
//! Ember reads type #1 entries itself (and prefers them to `BOOTX64.EFI`).
//! So `loader.conf`'s default is an entry for systemd-boot itself (`efi
//! /EFI/BOOT/BOOTX64.EFI`): Ember starts it through its UEFI layer, OVMF
//! through the removable-media path. systemd-boot leaves out the entry
//! naming its own image, finds no default, and takes the first entry in its
//! order: entries with a sort key first (the UKI's is its os-release `ID`,
//! `ember`), then by descending ID — the kernel entry when it has `sort-key
//! 0`, the UKI otherwise. The guest's command line then starts with the
//! `initrd=` systemd-boot adds for a type #1 entry, which the type #1 case
//! requires as proof that systemd-boot ran.

use crate::disk::{Disk, Fs, Kind, Part, Scenario, Src, Table, BASE_OPTIONS};
use crate::guest::{self, guest_dir, Artifacts};
use crate::util::{mkdirs, read_to_string, run, tool, write, Fnv, Result};
use std::path::{Path, PathBuf};

/// Every chain scenario, in matrix order; the expected variant is the name.
pub const NAMES: &[&str] = &[
    "efi-stub",
    "systemd-boot-type1",
    "systemd-boot-uki",
    "uki",
    "uki-type2",
    "shim-grub",
];

/// Chains no firmware but Ember boots (Boot Loader Specification type #2:
/// OVMF reads no entries), so they have no OVMF reference run.
pub const EMBER_ONLY: &[&str] = &["uki-type2"];

/// The UUID GRUB's `search --fs-uuid` finds the root file system by.
const ROOT_UUID: &str = "e3be5eed-0000-4000-8000-00000000e3be";

/// Loaders from Debian's signed packages (paths inside the unpacked .debs),
/// for one architecture (`x64` or `aa64`, as UEFI names them).
#[derive(Clone, Debug)]
pub struct Loaders {
    /// The removable-media path's file name: `BOOTX64.EFI`, `BOOTAA64.EFI`.
    pub boot_name: &'static str,
    /// The name shim starts from its own directory: `grubx64.efi`, `grubaa64.efi`.
    pub grub_name: &'static str,
    /// shim-signed: `usr/lib/shim/shimx64.efi.signed` (`shimaa64`)
    pub shim: PathBuf,
    /// grub-efi-amd64-signed: `usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed`
    /// (grub-efi-arm64-signed: `arm64-efi-signed/grubaa64.efi.signed`)
    pub grub: PathBuf,
    /// systemd-boot-efi: `usr/lib/systemd/boot/efi/systemd-bootx64.efi` (`aa64`)
    pub sdboot: PathBuf,
    /// systemd-boot-efi: `usr/lib/systemd/boot/efi/linuxx64.efi.stub` (`aa64`)
    pub stub: PathBuf,
}

/// `path` inside the unpacked package `pkg`, which must have it.
fn pkg_file(pkg: &str, path: &str) -> Result<PathBuf> {
    let p = guest::fetch(pkg)?.join(path);
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!("{pkg} has no {path} ({})", p.display()))
    }
}

/// Fetch (or reuse) the three x86_64 loader packages.
pub fn prepare() -> Result<Loaders> {
    Ok(Loaders {
        boot_name: "BOOTX64.EFI",
        grub_name: "grubx64.efi",
        shim: pkg_file("shim-signed", "usr/lib/shim/shimx64.efi.signed")?,
        grub: pkg_file(
            "grub-efi-amd64-signed",
            "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
        )?,
        sdboot: pkg_file(
            "systemd-boot-efi",
            "usr/lib/systemd/boot/efi/systemd-bootx64.efi",
        )?,
        stub: pkg_file(
            "systemd-boot-efi",
            "usr/lib/systemd/boot/efi/linuxx64.efi.stub",
        )?,
    })
}

/// The same for arm64 (`:arm64` packages; apt needs arm64 as a foreign
/// architecture, which `aarch64::guest` adds). Like x86_64's, signed GRUB
/// has prefix `/EFI/debian`; shim's MokManager and fallback
/// (`shim-helpers-arm64-signed`) are not needed without Secure Boot and
/// are left out, as on x86_64.
pub fn prepare_aarch64() -> Result<Loaders> {
    Ok(Loaders {
        boot_name: "BOOTAA64.EFI",
        grub_name: "grubaa64.efi",
        shim: pkg_file("shim-signed:arm64", "usr/lib/shim/shimaa64.efi.signed")?,
        grub: pkg_file(
            "grub-efi-arm64-signed:arm64",
            "usr/lib/grub/arm64-efi-signed/grubaa64.efi.signed",
        )?,
        sdboot: pkg_file(
            "systemd-boot-efi:arm64",
            "usr/lib/systemd/boot/efi/systemd-bootaa64.efi",
        )?,
        stub: pkg_file(
            "systemd-boot-efi:arm64",
            "usr/lib/systemd/boot/efi/linuxaa64.efi.stub",
        )?,
    })
}

fn options(variant: &str) -> String {
    format!("{BASE_OPTIONS} ember.variant={variant}")
}

fn esp(files: Vec<(String, Src)>) -> Vec<Disk> {
    vec![Disk {
        table: Table::Gpt,
        parts: vec![esp_part(files)],
    }]
}

fn esp_part(files: Vec<(String, Src)>) -> Part {
    // FAT32 (>65524 clusters) as Debian's installer makes it; room for two
    // kernels plus initrds in the systemd-boot images.
    Part {
        kind: Kind::Esp,
        size_mib: 64,
        fs: Fs::Fat { bits: 32, spc: 1 },
        files,
    }
}

fn host(p: &Path) -> Src {
    Src::Host(p.to_path_buf())
}

fn text(s: impl Into<String>) -> Src {
    Src::Text(s.into())
}

/// A type #1 entry for the kernel and initrd at the ESP's root.
fn type1(linux: &str, variant: &str) -> Src {
    text(type1_text(linux, variant))
}

fn type1_text(linux: &str, variant: &str) -> String {
    format!(
        "title Ember {variant}\nlinux {linux}\ninitrd /initrd.img\noptions {}\n",
        options(variant)
    )
}

/// The scenario's disks; `Ok(None)` for a name that is not a chain scenario.
pub fn scenario(name: &str, a: &Artifacts, l: &Loaders) -> Result<Option<Scenario>> {
    let Some(&name) = NAMES.iter().find(|n| **n == name) else {
        return Ok(None);
    };
    let disks = match name {
        "efi-stub" => esp(vec![
            ("/vmlinuz.efi".into(), host(&a.kernel)),
            ("/initrd.img".into(), host(&a.initrd)),
            // The Shell runs startup.nsh from fs0: (the only disk) when no
            // boot option loads; the stub resolves `initrd=` on its own volume.
            (
                "/startup.nsh".into(),
                text(format!(
                    "fs0:\n\\vmlinuz.efi initrd=\\initrd.img {}\n",
                    options(name)
                )),
            ),
            // Ember's path: it reads the entry and starts the stub itself.
            ("/loader/loader.conf".into(), text("timeout 0\n")),
            (
                "/loader/entries/efi-stub.conf".into(),
                type1("/vmlinuz.efi", name),
            ),
        ]),
        "systemd-boot-type1" | "systemd-boot-uki" => {
            // Both images hold both entries; only the kernel entry's sort
            // key differs, so each also proves systemd-boot's selection
            // between the two kinds (see the module docs).
            let mut kernel_entry = type1_text("/vmlinuz", "systemd-boot-type1");
            if name == "systemd-boot-type1" {
                kernel_entry.push_str("sort-key 0\n");
            }
            let uki = build_uki("systemd-boot-uki", a, l)?;
            esp(vec![
                ("/EFI/BOOT/BOOTX64.EFI".into(), host(&l.sdboot)),
                (
                    "/loader/loader.conf".into(),
                    text("timeout 0\ndefault systemd-boot.conf\n"),
                ),
                (
                    "/loader/entries/systemd-boot.conf".into(),
                    text("title systemd-boot\nefi /EFI/BOOT/BOOTX64.EFI\n"),
                ),
                ("/vmlinuz".into(), host(&a.kernel)),
                ("/initrd.img".into(), host(&a.initrd)),
                (
                    "/loader/entries/ember-type1.conf".into(),
                    text(kernel_entry),
                ),
                ("/EFI/Linux/ember-uki.efi".into(), host(&uki)),
            ])
        }
        "uki" => esp(vec![(
            "/EFI/BOOT/BOOTX64.EFI".into(),
            host(&build_uki("uki", a, l)?),
        )]),
        "uki-type2" => esp(vec![(
            "/EFI/Linux/ember-uki-type2.efi".into(),
            host(&build_uki("uki-type2", a, l)?),
        )]),
        "shim-grub" => vec![shim_grub(
            l,
            &a.kernel,
            &a.initrd,
            &a.kernel_release,
            &options("shim-grub"),
        )],
        _ => unreachable!("every name in NAMES has a layout"),
    };
    Ok(Some(Scenario {
        name,
        disks,
        expect: name,
        microvm: false,
    }))
}

/// Debian's removable-media layout: shim as `BOOTX64.EFI` (`BOOTAA64.EFI`)
/// loads `grubx64.efi` (`grubaa64.efi`) from its own directory (no
/// `fbx64.efi` there, so no fallback run). Signed GRUB is built with prefix
/// `/EFI/debian` and an embedded config that sources `$prefix/grub.cfg`, so
/// the stub config lives in `\EFI\debian\` even though GRUB runs from
/// `\EFI\BOOT\`; it finds `/boot` by UUID as Debian's own stub config does.
/// GRUB's one entry boots `kernel` with `initrd` and `options`.
pub fn shim_grub(l: &Loaders, kernel: &Path, initrd: &Path, rel: &str, options: &str) -> Disk {
    let esp_files = vec![
        (format!("/EFI/BOOT/{}", l.boot_name), host(&l.shim)),
        (format!("/EFI/BOOT/{}", l.grub_name), host(&l.grub)),
        (
            "/EFI/debian/grub.cfg".into(),
            text(format!(
                "search --no-floppy --fs-uuid --set=root {ROOT_UUID}\n\
                 set prefix=($root)/boot/grub\n\
                 configfile $prefix/grub.cfg\n"
            )),
        ),
    ];
    let root_files = vec![
        (format!("/boot/vmlinuz-{rel}"), host(kernel)),
        (format!("/boot/initrd.img-{rel}"), host(initrd)),
        (
            "/boot/grub/grub.cfg".into(),
            text(format!(
                "set timeout=0\nset default=0\n\
                 menuentry 'Ember shim-grub' {{\n\
                 \tlinux /boot/vmlinuz-{rel} {options}\n\
                 \tinitrd /boot/initrd.img-{rel}\n}}\n"
            )),
        ),
    ];
    Disk {
        table: Table::Gpt,
        parts: vec![
            esp_part(esp_files),
            Part {
                kind: Kind::Linux,
                size_mib: 64,
                fs: Fs::Ext4Uuid(ROOT_UUID),
                files: root_files,
            },
        ],
    }
}

/// Little-endian field of a PE image.
fn le(b: &[u8], at: usize, n: usize) -> Option<u64> {
    let s = b.get(at..at + n)?;
    Some(s.iter().rev().fold(0, |v, &x| v << 8 | u64::from(x)))
}

/// A unified kernel image for one of the chain scenarios.
fn build_uki(variant: &str, a: &Artifacts, l: &Loaders) -> Result<PathBuf> {
    uki(
        variant,
        &l.stub,
        &a.kernel,
        &a.initrd,
        &a.kernel_release,
        &options(variant),
    )
}

/// A unified kernel image `name.efi` (cached under `target/guest/efi/`):
/// systemd 252's `stub` with `.osrel`, `.cmdline`, `.linux` and `.initrd`
/// added by objcopy (bookworm has no ukify). VMAs follow the stub's man
/// page (0x20000, 0x30000, 0x2000000), except that `.initrd` goes right
/// after the kernel, which may outgrow the 16 MiB the man page leaves it.
/// The stub's PE machine picks the objcopy: the host's for x86_64 stubs,
/// `aarch64-linux-gnu-objcopy` (which knows `pei-aarch64-little`) for
/// arm64 ones; `kernel` must then be an EFI-stub `Image`, not a gzip.
pub fn uki(
    name: &str,
    stub_path: &Path,
    kernel: &Path,
    initrd: &Path,
    release: &str,
    cmdline: &str,
) -> Result<PathBuf> {
    let stub =
        std::fs::read(stub_path).map_err(|e| format!("read {}: {e}", stub_path.display()))?;
    // The added sections must not overlap the stub's own: check its extent.
    let (machine, end) = le(&stub, 0x3c, 4)
        .and_then(|pe| {
            let opt = pe as usize + 24;
            (le(&stub, pe as usize, 4)? == 0x4550 && le(&stub, opt, 2)? == 0x20b).then_some((
                le(&stub, pe as usize + 4, 2)?,
                le(&stub, opt + 24, 8)? + le(&stub, opt + 56, 4)?,
            ))
        })
        .ok_or_else(|| format!("{} is not a PE32+ image", stub_path.display()))?;
    let objcopy = match machine {
        0x8664 => "objcopy",
        0xaa64 => "aarch64-linux-gnu-objcopy",
        m => {
            return Err(format!(
                "{}: PE machine {m:#x} is neither x86_64 nor arm64",
                stub_path.display()
            ))
        }
    };
    if end > 0x20000 {
        return Err(format!(
            "{}: image ends at {end:#x}, over .osrel's 0x20000",
            stub_path.display()
        ));
    }
    let klen = std::fs::metadata(kernel)
        .map_err(|e| format!("{}: {e}", kernel.display()))?
        .len();
    let linux_vma: u64 = 0x200_0000;
    let initrd_vma = (linux_vma + klen).next_multiple_of(0x20_0000);
    let osrel = format!(
        "NAME=\"Ember test\"\nID=ember\nVERSION_ID={release}\nPRETTY_NAME=\"Ember test ({name})\"\n"
    );
    let dir = guest_dir().join("efi");
    mkdirs(&dir)?;
    let out = dir.join(format!("{name}.efi"));
    let keyfile = dir.join(format!("{name}.key"));
    let key = Fnv::new()
        .file_meta(stub_path)
        .file_meta(kernel)
        .file_meta(initrd)
        .str(&osrel)
        .str(cmdline)
        .hex();
    if out.is_file() && read_to_string(&keyfile).is_ok_and(|k| k == key) {
        return Ok(out);
    }
    let (osrel_f, cmdline_f) = (
        dir.join(format!("{name}.osrel")),
        dir.join(format!("{name}.cmdline")),
    );
    write(&osrel_f, &osrel)?;
    write(&cmdline_f, cmdline)?;
    let section = |sec: &str, file: &Path, vma: u64| {
        [
            "--add-section".to_string(),
            format!("{sec}={}", file.display()),
            "--change-section-vma".to_string(),
            format!("{sec}={vma:#x}"),
        ]
    };
    run(tool(objcopy)
        .args(section(".osrel", &osrel_f, 0x2_0000))
        .args(section(".cmdline", &cmdline_f, 0x3_0000))
        .args(section(".linux", kernel, linux_vma))
        .args(section(".initrd", initrd, initrd_vma))
        .arg(stub_path)
        .arg(&out))?;
    write(&keyfile, &key)?;
    println!("efi: built {}", out.display());
    Ok(out)
}
