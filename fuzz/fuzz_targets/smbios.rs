//! SMBIOS: the structure walker and the fw_cfg anchor fix-up on hostile
//! bytes, and the table builder on fuzz-chosen platforms.
//!
//! The first byte picks the mode:
//! * walker: structures tile the input from offset 0 with no gaps, each
//!   one's formatted area, strings and double NUL are where the spec puts
//!   them, strings are NUL-free and numbered 1..=n, the walk ends after an
//!   error or type 127, and it takes at most `len / 6 + 1` steps;
//! * anchor: `fixup_anchor` either fails leaving the buffer untouched, or
//!   writes exactly the address and checksums, with every checksum zero and
//!   the table addressable;
//! * builder: every table `build` returns walks cleanly to a final type 127,
//!   has unique handles, valid string numbers, memory devices summing to the
//!   RAM given and type 19 ranges equal to it, and a zero-sum entry point
//!   that `fixup_anchor` reproduces for any address.
#![no_main]

use ember_fuzz::Bytes;
use ember_smbios::zerocopy::{FromBytes, IntoBytes};
use ember_smbios::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = Bytes(data);
    match r.u8() % 3 {
        0 => walker(r.0),
        1 => anchor(&mut r),
        _ => builder(&mut r),
    }
});

fn walker(table: &[u8]) {
    let mut w = Structures::new(table);
    let mut steps = 0;
    let mut next_offset = 0;
    let mut finished = false;
    while let Some(item) = w.next() {
        steps += 1;
        assert!(
            steps <= table.len() / 6 + 1,
            "walk did not shrink the input"
        );
        assert!(!finished, "walk went on after type 127");
        let s = match item {
            Ok(s) => s,
            Err(e) => {
                assert!(w.next().is_none(), "walk went on after {e}");
                assert!(!e.to_string().is_empty());
                return;
            }
        };
        assert_eq!(s.offset, next_offset, "gap or overlap before a structure");
        let h = Header::read_from_prefix(&table[s.offset..]).unwrap().0;
        assert_eq!((h.kind, h.handle.get()), (s.kind, s.handle));
        assert_eq!(usize::from(h.length), s.formatted.len());
        assert!(s.formatted.len() >= 4);
        assert_eq!(&table[s.offset..s.offset + s.formatted.len()], s.formatted);
        let end = s.offset + s.size();
        assert!(end <= table.len());
        assert_eq!(&table[end - 2..end], &[0, 0]);
        let strings: Vec<&[u8]> = s.strings().collect();
        let string_bytes: usize = strings.iter().map(|x| x.len() + 1).sum();
        // n strings take their bytes plus n NULs plus one; none take two.
        assert_eq!(
            s.size(),
            s.formatted.len() + string_bytes.max(1) + 1,
            "string set size"
        );
        for (i, x) in strings.iter().enumerate() {
            assert!(!x.contains(&0));
            // Only a malformed leading NUL makes an empty string.
            assert!(i == 0 || !x.is_empty());
            if let Ok(n) = u8::try_from(i + 1) {
                assert_eq!(s.string(n), Some(*x));
            }
        }
        assert_eq!(s.string(0), None);
        if let Ok(n) = u8::try_from(strings.len() + 1) {
            assert_eq!(s.string(n), None);
        }
        next_offset = end;
        assert_eq!(w.consumed(), end);
        finished = s.kind == TYPE_END_OF_TABLE;
    }
    if !finished {
        assert_eq!(
            w.consumed(),
            table.len(),
            "walk stopped early without an error"
        );
    }
}

fn anchor(r: &mut Bytes) {
    let mode = r.u8();
    let addr = if mode & 4 != 0 {
        u64::from(r.u32())
    } else {
        r.u64()
    };
    let mut len = r.u32();
    let mut buf = r.0.to_vec();
    // Plant anchors so the interesting paths are reached often.
    match mode & 3 {
        1 if buf.len() >= 0x15 => {
            buf[..4].copy_from_slice(b"_SM_");
            buf[0x10..0x15].copy_from_slice(b"_DMI_");
        }
        2 if buf.len() >= 5 => buf[..5].copy_from_slice(b"_SM3_"),
        _ => {}
    }
    // Often place exactly (or a bit more than) what the anchor declares.
    if mode & 8 != 0 {
        let declared = if buf.starts_with(b"_SM3_") {
            EntryPoint30::read_from_prefix(&buf)
                .ok()
                .map(|(e, _)| e.table_max_size.get())
        } else {
            EntryPoint21::read_from_prefix(&buf)
                .ok()
                .map(|(e, _)| u32::from(e.table_length.get()))
        };
        if let Some(d) = declared {
            len = d.saturating_add(len % 16);
        }
    }
    let before = buf.clone();
    match fixup_anchor(&mut buf, addr, len) {
        Err(e) => {
            assert_eq!(buf, before, "failed fixup ({e}) changed the anchor");
            assert!(!e.to_string().is_empty());
        }
        Ok(Anchor::Smbios21) => {
            let (got, _) = EntryPoint21::read_from_prefix(&buf).unwrap();
            let (mut old, _) = EntryPoint21::read_from_prefix(&before).unwrap();
            assert!(checksum_ok(&buf[..usize::from(got.length)]));
            let dmi = old.as_bytes().len() - 15;
            assert!(checksum_ok(&buf[dmi..dmi + 15]));
            assert_eq!(&got.intermediate_anchor, b"_DMI_");
            assert_eq!(u64::from(got.table_address.get()), addr);
            assert!(addr + u64::from(len) <= 1 << 32);
            let declared = u32::from(got.table_length.get());
            assert!(declared > 0 && declared <= len);
            // Nothing but the address and the two checksums changed.
            old.table_address = got.table_address;
            old.checksum = got.checksum;
            old.intermediate_checksum = got.intermediate_checksum;
            assert_eq!(old.as_bytes(), got.as_bytes());
            assert_eq!(buf[31..], before[31..]);
        }
        Ok(Anchor::Smbios30) => {
            let (got, _) = EntryPoint30::read_from_prefix(&buf).unwrap();
            let (mut old, _) = EntryPoint30::read_from_prefix(&before).unwrap();
            let n = usize::from(got.length);
            assert!(n >= 24 && n <= buf.len());
            assert!(checksum_ok(&buf[..n]));
            assert_eq!(got.table_address.get(), addr);
            assert!(addr.checked_add(u64::from(len)).is_some());
            let declared = got.table_max_size.get();
            assert!(declared > 0 && declared <= len);
            old.table_address = got.table_address;
            old.checksum = got.checksum;
            assert_eq!(old.as_bytes(), got.as_bytes());
            assert_eq!(buf[24..], before[24..]);
        }
    }
}

/// A fuzz-chosen string: usually short, sometimes past the length cap,
/// occasionally with a NUL or non-ASCII bytes.
fn string(r: &mut Bytes) -> String {
    let n = usize::from(r.u8() % 96);
    String::from_utf8_lossy(r.take(n)).into_owned()
}

fn builder(r: &mut Bytes) {
    let mut strings: Vec<String> = (0..10).map(|_| string(r)).collect();
    let flags = r.u8();
    let date = if flags & 1 != 0 {
        let (m, d, y) = (r.u8() % 14, r.u8() % 33, r.u16() % 10000);
        format!("{m:02}/{d:02}/{y:04}")
    } else {
        string(r)
    };
    let ncpu = usize::from(r.u8() % 5);
    for _ in 0..ncpu * 2 {
        strings.push(string(r));
    }
    let mut cpus = Vec::new();
    for i in 0..ncpu {
        let sel = r.u8();
        let manufacturer = match sel % 4 {
            0 => "GenuineIntel",
            1 => "AuthenticAMD",
            2 => "",
            _ => &strings[10 + 2 * i],
        };
        cpus.push(Cpu {
            manufacturer,
            version: &strings[11 + 2 * i],
            processor_id: r.u64(),
            family: (sel & 4 != 0).then(|| r.u16()),
            external_clock_mhz: r.u16(),
            max_speed_mhz: r.u16(),
            current_speed_mhz: r.u16(),
            cores: r.u16(),
            threads: r.u16(),
            is_64bit: sel & 8 != 0,
        });
    }
    // RAM: ascending KiB-aligned ranges, unless raw values were asked for.
    let nram = usize::from(r.u8() % 6);
    let mut ram = Vec::new();
    let mut cur = 0u64;
    for _ in 0..nram {
        let sel = r.u8();
        if sel & 0x80 != 0 {
            ram.push((r.u64(), r.u64()));
            continue;
        }
        let gap = u64::from(r.u32()) << (sel % 32);
        let len = u64::from(r.u32()) << ((sel >> 2) % 32);
        let Some(start) = cur.checked_add(gap & !1023) else {
            break;
        };
        let Some(end) = start.checked_add(len & !1023) else {
            break;
        };
        ram.push((start, end));
        cur = end;
    }
    let p = Platform {
        bios_vendor: &strings[0],
        bios_version: &strings[1],
        bios_date: &date,
        bios_release: (flags & 2 != 0).then(|| (r.u8(), r.u8())),
        bios_rom_size: r.u64() >> (r.u8() % 64),
        uefi: flags & 4 != 0,
        acpi: flags & 8 != 0,
        pci: flags & 16 != 0,
        system_manufacturer: &strings[2],
        product: &strings[3],
        version: &strings[4],
        serial: &strings[5],
        uuid: r.take(16).try_into().unwrap_or([0; 16]),
        sku: &strings[6],
        family: &strings[7],
        cpus: &cpus,
        ram: &ram,
        max_memory_device_mib: if flags & 32 != 0 { r.u32() } else { 0 },
    };
    match build(&p) {
        Ok(t) => check_built(&p, &t, r.u64()),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

fn check_built(p: &Platform, t: &Tables, addr: u64) {
    let mut w = Structures::new(&t.bytes);
    let all: Vec<Structure> = w
        .by_ref()
        .map(|s| s.unwrap_or_else(|e| panic!("built table does not walk: {e}")))
        .collect();
    assert_eq!(w.consumed(), t.bytes.len(), "bytes after type 127");
    assert_eq!(all.last().map(|s| s.kind), Some(TYPE_END_OF_TABLE));
    assert_eq!(all.len(), usize::from(t.count));
    assert_eq!(
        usize::from(t.max_structure_size),
        all.iter().map(|s| s.size()).max().unwrap()
    );
    let mut handles: Vec<u16> = all.iter().map(|s| s.handle).collect();
    handles.sort_unstable();
    handles.dedup();
    assert_eq!(handles.len(), all.len(), "duplicate handles");

    let mut array = None;
    let mut device_total = 0u64;
    let mut devices = 0usize;
    let mut ranges = Vec::new();
    for s in &all {
        let n = s.strings().count();
        assert!(s.strings().all(|x| !x.is_empty() && !x.contains(&0)));
        let refs: Vec<u8> = match s.kind {
            TYPE_BIOS => {
                let t: Type0 = s.read().unwrap();
                vec![t.vendor, t.bios_version, t.release_date]
            }
            TYPE_SYSTEM => {
                let t: Type1 = s.read().unwrap();
                vec![
                    t.manufacturer,
                    t.product,
                    t.version,
                    t.serial,
                    t.sku,
                    t.family,
                ]
            }
            TYPE_CHASSIS => {
                let t: Type3 = s.read().unwrap();
                vec![t.manufacturer, t.version, t.serial, t.asset_tag, t.sku]
            }
            TYPE_PROCESSOR => {
                let t: Type4 = s.read().unwrap();
                let c = t.core_count2.get();
                assert_eq!(t.core_count, u8::try_from(c).unwrap_or(0xff));
                assert!(t.family != 0xfe || t.family2.get() > 0xff);
                vec![
                    t.socket,
                    t.manufacturer,
                    t.version,
                    t.serial,
                    t.asset_tag,
                    t.part_number,
                ]
            }
            TYPE_MEMORY_ARRAY => {
                array = Some(s.handle);
                vec![]
            }
            TYPE_MEMORY_DEVICE => {
                let d: Type17 = s.read().unwrap();
                assert_eq!(Some(d.array_handle.get()), array);
                let bytes = match d.size.get() {
                    0x7fff => u64::from(d.extended_size.get() & 0x7fff_ffff) << 20,
                    v if v & 0x8000 != 0 => u64::from(v & 0x7fff) << 10,
                    v => u64::from(v) << 20,
                };
                assert!(bytes > 0);
                assert_eq!(d.volatile_size.get(), bytes);
                device_total += bytes;
                devices += 1;
                vec![
                    d.device_locator,
                    d.bank_locator,
                    d.manufacturer,
                    d.serial,
                    d.firmware_version,
                ]
            }
            TYPE_MEMORY_ARRAY_MAPPED_ADDRESS => {
                let m: Type19 = s.read().unwrap();
                assert_eq!(Some(m.array_handle.get()), array);
                ranges.push(if m.start.get() == 0xffff_ffff {
                    (m.extended_start.get(), m.extended_end.get() + 1)
                } else {
                    (
                        u64::from(m.start.get()) << 10,
                        (u64::from(m.end.get()) + 1) << 10,
                    )
                });
                vec![]
            }
            _ => vec![],
        };
        for r in refs {
            assert!(usize::from(r) <= n, "type {} dangling string {r}", s.kind);
        }
    }
    let ram_total: u64 = p.ram.iter().map(|(s, e)| e - s).sum();
    assert_eq!(device_total, ram_total, "type 17 sizes do not add up");
    assert!(devices >= 1);
    assert_eq!(ranges, p.ram, "type 19 ranges differ from the RAM given");
    assert_eq!(
        all.iter().filter(|s| s.kind == TYPE_PROCESSOR).count(),
        p.cpus.len()
    );

    let ep = t.entry_point_30(0);
    assert!(checksum_ok(&ep));
    let mut moved = ep;
    if fixup_anchor(&mut moved, addr, t.bytes.len() as u32).is_ok() {
        assert_eq!(moved, t.entry_point_30(addr));
    } else {
        assert!(addr.checked_add(t.bytes.len() as u64).is_none());
    }
}
