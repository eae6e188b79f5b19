//! The UEFI boot manager (spec 3.1): `Boot####` options, `BootOrder`,
//! `BootNext`, `BootCurrent`, `Timeout` and `BootOptionSupport`, plus a
//! menu on the serial console.
//!
//! Every disk Ember finds gets an option of its own (device path = the
//! disk); booting it means Ember's own order for that disk — Boot Loader
//! Specification entries, then the removable-media path — so BLS keeps
//! working while installers and `efibootmgr` add options that name files.
//! The decisions are `ember_uefi_data::bootmgr`'s (host-tested); this
//! module reads and writes the variables and starts what was chosen.

use crate::boot::{self, Mode};
use crate::devices::Disk;
use crate::efi::runtime;
use crate::{console, time};
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use ember_uefi_data::bootmgr::{self as bm, MediaDisk, MediaPartition, Target};
use ember_uefi_data::loadopt::{boot_variable_name, parse_boot_order, LoadOption};
use ember_uefi_data::vars::{BOOTSERVICE_ACCESS as BS, NON_VOLATILE as NV, RUNTIME_ACCESS as RT};
use r_efi::efi::{Guid, Status};

const GLOBAL: Guid = crate::efi::platform::GLOBAL_VARIABLE;

/// `Timeout` value meaning "wait for the user".
const WAIT_FOREVER: u16 = 0xffff;

/// Everything the boot manager knows about the options.
struct Options {
    /// Every `Boot####` present; `None` for ones that do not decode.
    all: BTreeMap<u16, Option<LoadOption>>,
    order: Vec<u16>,
}

fn u16s(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|n| n.to_le_bytes()).collect()
}

fn describe(n: u16, o: Option<&LoadOption>) -> String {
    match o {
        Some(o) => format!("{} \"{}\"", boot_variable_name(n), o.description()),
        None => boot_variable_name(n),
    }
}

/// The disks as the boot manager matches them: device paths and partitions.
fn media(disks: &[Disk]) -> Vec<MediaDisk> {
    disks
        .iter()
        .map(|d| MediaDisk {
            path: crate::efi::base_path(d.location),
            name: d.name.clone(),
            // An unreadable table is reported when the disk is booted.
            partitions: ember_part::read_partitions(&mut d.dev.clone())
                .map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| MediaPartition {
                            number: p.number,
                            first_lba: p.first_lba,
                            num_blocks: p.num_blocks,
                            guid: p.unique_guid.map(|g| ember_uefi_data::Guid(g.to_bytes())),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

/// Read every `Boot####` and `BootOrder`.
fn load() -> Options {
    let mut all = BTreeMap::new();
    for name in runtime::names(&GLOBAL) {
        let Some(n) = bm::parse_boot_name(&name) else {
            continue;
        };
        let Some((_, data)) = runtime::read(&name, &GLOBAL) else {
            continue;
        };
        let o = match LoadOption::parse(&data) {
            Ok(o) => Some(o),
            Err(e) => {
                log::warn!("boot manager: {name}: {e}; not bootable");
                None
            }
        };
        all.insert(n, o);
    }
    let order = runtime::read("BootOrder", &GLOBAL)
        .map(|(_, d)| parse_boot_order(&d))
        .unwrap_or_default();
    Options { all, order }
}

fn store(name: &str, attrs: u32, data: &[u8]) {
    let st = runtime::write(name, &GLOBAL, attrs, data);
    if st != Status::SUCCESS && !(data.is_empty() && st == Status::NOT_FOUND) {
        log::warn!(
            "boot manager: cannot store {name}: {}",
            crate::efi::status_name(st)
        );
    }
}

/// Give every disk its option and tidy `BootOrder` (written only when
/// something changed: each write is a flash write).
fn reconcile(opts: &mut Options, media: &[MediaDisk]) {
    let plan = bm::reconcile(&opts.order, &opts.all, media);
    for n in &plan.delete {
        log::info!(
            "boot manager: removing {} (its disk is gone)",
            describe(*n, opts.all.get(n).and_then(|o| o.as_ref()))
        );
        store(&boot_variable_name(*n), 0, &[]);
        opts.all.remove(n);
    }
    for (n, o) in &plan.write {
        log::debug!(
            "boot manager: {} for {}",
            boot_variable_name(*n),
            o.description()
        );
        store(&boot_variable_name(*n), NV | BS | RT, &o.to_bytes());
        opts.all.insert(*n, Some(o.clone()));
    }
    if plan.order_changed {
        store("BootOrder", NV | BS | RT, &u16s(&plan.boot_order));
    }
    opts.order = plan.boot_order;
}

/// What the user picked in the menu: an option, and for an option that is
/// a whole disk maybe one of its Boot Loader Specification entries.
#[derive(Clone, Copy)]
struct Choice {
    option: u16,
    entry: Option<usize>,
}

/// `N` or `N.M` (1-based) → indices.
fn parse_choice(line: &str) -> Option<(usize, Option<usize>)> {
    let (a, b) = match line.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (line, None),
    };
    let a = a.parse::<usize>().ok()?.checked_sub(1)?;
    let b = match b {
        Some(b) => Some(b.parse::<usize>().ok()?.checked_sub(1)?),
        None => None,
    };
    Some((a, b))
}

/// Show the options — and under each whole-disk option its Boot Loader
/// Specification entries — and read a choice. `None`: the normal order.
fn menu(opts: &Options, disks: &[Disk], media: &[MediaDisk]) -> Option<Choice> {
    let shown: Vec<u16> = bm::attempts(None, &opts.order, &opts.all);
    if shown.is_empty() {
        crate::print!("Ember boot menu: no boot options\n");
        return None;
    }
    let entries: Vec<Vec<String>> = shown
        .iter()
        .map(|n| {
            match opts
                .all
                .get(n)
                .and_then(|o| o.as_ref())
                .map(|o| bm::resolve(&o.file_path, media))
            {
                Some(Ok(Target::Disk { disk })) => {
                    disks.get(disk).map(boot::entry_titles).unwrap_or_default()
                }
                _ => Vec::new(),
            }
        })
        .collect();
    loop {
        crate::print!("\nEmber boot menu\n");
        for (i, n) in shown.iter().enumerate() {
            crate::print!(
                "  {}) {}\n",
                i + 1,
                describe(*n, opts.all.get(n).and_then(|o| o.as_ref()))
            );
            for (j, t) in entries[i].iter().enumerate() {
                crate::print!("      {}.{}) {t}\n", i + 1, j + 1);
            }
        }
        crate::print!(
            "Choose 1-{} (or N.M for an entry) and press Enter (Enter alone: the default order): ",
            shown.len()
        );
        let mut line = String::new();
        loop {
            let Some(b) = console::read_byte() else {
                core::hint::spin_loop();
                continue;
            };
            match b {
                b'\r' | b'\n' => break,
                // Backspace / DEL.
                0x08 | 0x7f if line.pop().is_some() => console::write_raw(b"\x08 \x08"),
                b'0'..=b'9' | b'.' if line.len() < 9 => {
                    line.push(char::from(b));
                    console::write_raw(&[b]);
                }
                _ => {}
            }
        }
        crate::print!("\n");
        if line.is_empty() {
            return None;
        }
        match parse_choice(&line) {
            Some((i, e)) if i < shown.len() && e.is_none_or(|e| e < entries[i].len()) => {
                return Some(Choice {
                    option: shown[i],
                    entry: e,
                })
            }
            _ => crate::print!("no option {line}\n"),
        }
    }
}

/// Wait up to `Timeout` seconds (or `ember.timeout=` from Ember's command
/// line, which wins) for a key — a key already typed counts, so a zero
/// timeout still lets a user in — then show the menu.
fn maybe_menu(
    opts: &Options,
    cmdline: &str,
    disks: &[Disk],
    media: &[MediaDisk],
) -> Option<Choice> {
    let timeout = crate::pvh::cmdline_value(cmdline, "ember.timeout")
        .and_then(|t| t.parse::<u16>().ok())
        .or_else(|| {
            runtime::read("Timeout", &GLOBAL)
                .and_then(|(_, d)| d.get(..2).map(|b| u16::from_le_bytes([b[0], b[1]])))
        })
        .unwrap_or(0);
    let mut pressed = console::read_byte().is_some();
    if !pressed && timeout == WAIT_FOREVER {
        pressed = true;
    } else if !pressed && timeout > 0 {
        crate::print!("Ember: press any key within {timeout} s for the boot menu\n");
        let end = time::since_start_us() + u64::from(timeout) * 1_000_000;
        while time::since_start_us() < end {
            if console::read_byte().is_some() {
                pressed = true;
                break;
            }
            core::hint::spin_loop();
        }
    }
    if !pressed {
        return None;
    }
    // Drop the rest of what was typed to get here.
    while console::read_byte().is_some() {}
    menu(opts, disks, media)
}

/// What booting an option needs to know about the machine.
#[derive(Clone, Copy)]
struct Machine<'a> {
    disks: &'a [Disk],
    media: &'a [MediaDisk],
    rsdp: u64,
    cmdline: &'a str,
    mode: Mode,
}

/// Start one option (with `pick`, that entry of a whole-disk option
/// first); returns only if it could not be booted.
fn boot_option(pick: Option<usize>, n: u16, o: &LoadOption, m: &Machine<'_>) {
    let Machine {
        disks,
        media,
        rsdp,
        cmdline,
        mode,
    } = *m;
    let what = describe(n, Some(o));
    let path_text = ember_uefi_data::devpath::DevicePath::parse(&o.file_path)
        .map(|p| p.to_text(false, true))
        .unwrap_or_else(|_| "(malformed device path)".into());
    let target = match bm::resolve(&o.file_path, media) {
        Ok(t) => t,
        Err(e) => {
            log::warn!("boot manager: {what}: {path_text}: {e}; trying the next option");
            return;
        }
    };
    runtime::set_volatile("BootCurrent", &GLOBAL, BS | RT, &n.to_le_bytes());
    log::info!("boot manager: {what}: {path_text}");
    let options = if bm::is_auto(o) {
        &[][..]
    } else {
        &o.optional_data[..]
    };
    let failure = match target {
        Target::Disk { disk } => {
            boot::boot_disk(disks, disk, pick, rsdp, cmdline, mode);
            return;
        }
        Target::Partition { disk, part } => partition(disks, disk, part).and_then(|p| {
            boot::boot_file(disks, disk, &p, boot::REMOVABLE_PATH, options, rsdp)
                .map(|never| match never {})
        }),
        Target::File { disk, part, path } => partition(disks, disk, part).and_then(|p| {
            boot::boot_file(disks, disk, &p, &path.replace('\\', "/"), options, rsdp)
                .map(|never| match never {})
        }),
    };
    if let Err(e) = failure {
        log::error!("boot manager: {what}: {e}; trying the next option");
    }
}

/// Partition `part` (index in table order) of disk `disk`.
fn partition(disks: &[Disk], disk: usize, part: usize) -> Result<ember_part::Partition, String> {
    let d = disks.get(disk).ok_or("no such disk")?;
    let t =
        ember_part::read_partitions(&mut d.dev.clone()).map_err(|e| format!("{}: {e}", d.name))?;
    t.partitions
        .get(part)
        .cloned()
        .ok_or_else(|| format!("{}: partition gone", d.name))
}

/// Boot something: `BootNext`, then `BootOrder`, then — if no option
/// booted — every disk in discovery order. Returns only if nothing could
/// be booted.
pub fn run(disks: &mut [Disk], rsdp: u64, cmdline: &str, mode: Mode) {
    crate::efi::loader_vars::mark_init();
    let t0 = time::since_start_us();
    runtime::init();
    // No variable flash: an existing store file on an ESP (created only if
    // Ember starts a UEFI image: efi::init).
    runtime::attach_esp(disks, false);
    let media = media(disks);
    let mut opts = load();
    reconcile(&mut opts, &media);
    // Ember's boot manager has no hot keys, no application or sysprep options.
    runtime::set_read_only("BootOptionSupport", &GLOBAL, BS | RT, &0u32.to_le_bytes());
    // No countdown unless the user asks for one (efibootmgr -t).
    runtime::set_default("Timeout", &GLOBAL, NV | BS | RT, &0u16.to_le_bytes());
    let boot_next =
        runtime::read("BootNext", &GLOBAL).and_then(|(_, d)| parse_boot_order(&d).first().copied());
    if boot_next.is_some() {
        // Once only, even if the option fails or never returns (spec 3.1.2).
        store("BootNext", 0, &[]);
    }
    log::info!(
        "boot manager: {} option(s), BootOrder {}{} ({} us)",
        opts.all.len(),
        order_text(&opts.order),
        boot_next
            .map(|n| format!(", BootNext {n:04X}"))
            .unwrap_or_default(),
        time::since_start_us() - t0
    );
    let chosen = maybe_menu(&opts, cmdline, disks, &media);
    let first = chosen.map(|c| c.option).or(boot_next);
    let mut tried_disks = Vec::new();
    for n in bm::attempts(first, &opts.order, &opts.all) {
        let Some(Some(o)) = opts.all.get(&n).cloned() else {
            continue;
        };
        if let Ok(Target::Disk { disk }) = bm::resolve(&o.file_path, &media) {
            if tried_disks.contains(&disk) {
                continue;
            }
            tried_disks.push(disk);
        }
        let pick = chosen.filter(|c| c.option == n).and_then(|c| c.entry);
        let m = Machine {
            disks,
            media: &media,
            rsdp,
            cmdline,
            mode,
        };
        boot_option(pick, n, &o, &m);
    }
    // Options can all be inactive or stale: the disks still get their turn.
    for di in 0..disks.len() {
        if !tried_disks.contains(&di) {
            log::info!("boot manager: no option booted; trying {}", disks[di].name);
            boot::boot_disk(disks, di, None, rsdp, cmdline, mode);
        }
    }
}

fn order_text(order: &[u16]) -> String {
    if order.is_empty() {
        return "empty".into();
    }
    order
        .iter()
        .map(|n| format!("{n:04X}"))
        .collect::<Vec<_>>()
        .join(",")
}
