//! QEMU fw_cfg formats: the file directory, `etc/e820`, `bootorder` parsing
//! and matching, and the ACPI table-loader engine run against a fake host
//! whose files and (optionally hostile) allocator come from the input.
//!
//! Input layout (short input reads as zeros):
//!
//! ```text
//! u16 LE len + bytes   file directory
//! u16 LE len + bytes   etc/e820
//! u16 LE len + bytes   bootorder
//! u8  flags            bit 0: the rest after the files is a raw script
//!                      bit 1: allocate() returns addresses from the input
//!                      bits 2-3: which host operation fails (0 = none)
//! u8  file count (% 9), then per file: u8 name index, u16 LE size, bytes
//! 4 × u64 LE           addresses for the hostile allocator
//! ops (at most 64) or a raw script: see `build_script`.
//! ```
//!
//! Checked: no panics; directory/e820/bootorder results agree with their
//! input; on a successful load every blob has its file's size, is aligned
//! and inside its zone (FSEG below 1 MiB, HIGH below 4 GiB), changed bytes
//! lie only where a command patches, every checksum nothing later disturbs
//! sums to zero, every pointer nothing else touches equals its initial
//! offset plus the source address, and every WRITE_POINTER reached the
//! host with the right bytes.
#![no_main]

use ember_fuzz::Bytes;
use ember_fwcfg::bootorder::{MAX_BOOT_ENTRIES, MAX_PCI_DEPTH};
use ember_fwcfg::loader::{
    decode_script, AllocateCommand, Command, FSEG_END, FSEG_START, HIGH_END, MAX_BLOBS,
};
use ember_fwcfg::{
    parse_bootorder_bytes, parse_e820, run_loader, BootTarget, DirError, Directory, FileName,
    HostError, LoaderError, LoaderHost, Location, Zone,
};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::mem::offset_of;

const NAMES: [&str; 8] = [
    "etc/acpi/rsdp",
    "etc/acpi/tables",
    "etc/vmgenid_guid",
    "etc/vmgenid_addr",
    "a",
    "b",
    "c",
    "missing",
];

fn pick(r: &mut Bytes) -> FileName {
    FileName::new(NAMES[usize::from(r.u8()) % NAMES.len()]).unwrap()
}

struct Host {
    files: BTreeMap<String, Vec<u8>>,
    high: u64,
    fseg: u64,
    hostile: Option<[u64; 4]>,
    calls: usize,
    fail: u8,
    writes: Vec<(String, u32, Vec<u8>)>,
}

fn bump(next: &mut u64, size: u32, align: u32, end: u64) -> Result<u64, HostError> {
    let a = u64::from(align);
    let addr = next.checked_add(a - 1).ok_or(HostError::NoMemory)? / a * a;
    let top = addr
        .checked_add(u64::from(size))
        .ok_or(HostError::NoMemory)?;
    if top > end {
        return Err(HostError::NoMemory);
    }
    *next = top;
    Ok(addr)
}

impl LoaderHost for Host {
    fn file_size(&mut self, name: &str) -> Option<u32> {
        self.files.get(name).map(|d| d.len() as u32)
    }
    fn read_file(&mut self, name: &str, buf: &mut [u8]) -> Result<(), HostError> {
        if self.fail == 1 {
            return Err(HostError::Io);
        }
        buf.copy_from_slice(&self.files[name]);
        Ok(())
    }
    fn allocate(&mut self, _: &str, size: u32, align: u32, zone: Zone) -> Result<u64, HostError> {
        assert!(align.is_power_of_two(), "engine passed alignment {align}");
        if self.fail == 2 {
            return Err(HostError::NoMemory);
        }
        if let Some(a) = self.hostile {
            self.calls += 1;
            return Ok(a[self.calls % 4]);
        }
        match zone {
            Zone::High => bump(&mut self.high, size, align, HIGH_END),
            Zone::FSeg => bump(&mut self.fseg, size, align, FSEG_END),
        }
    }
    fn write_file(&mut self, name: &str, offset: u32, bytes: &[u8]) -> Result<(), HostError> {
        if self.fail == 3 {
            return Err(HostError::Unsupported);
        }
        let f = self
            .files
            .get_mut(name)
            .expect("write to a file the engine did not size");
        let r = offset as usize..offset as usize + bytes.len();
        f.get_mut(r)
            .expect("engine wrote past the end of a fw_cfg file")
            .copy_from_slice(bytes);
        self.writes.push((name.to_string(), offset, bytes.to_vec()));
        Ok(())
    }
}

/// Structured commands so names and offsets line up often enough to get
/// deep into the engine.
fn build_script(r: &mut Bytes) -> Vec<u8> {
    let mut s = Vec::new();
    for _ in 0..64 {
        if r.is_empty() {
            break;
        }
        let op = r.u8();
        let cmd = match op % 6 {
            0 => {
                let file = pick(r);
                let align = match r.u8() {
                    0xff => r.u32(),
                    x => 1 << (x % 14),
                };
                let z = r.u8();
                let zone = if z & 1 == 0 { Zone::High } else { Zone::FSeg };
                let mut c = Command::Allocate { file, align, zone }.encode();
                if z & 0xf0 == 0xf0 {
                    // An unknown zone code.
                    c[offset_of!(AllocateCommand, zone)] = z;
                }
                c
            }
            1 => Command::AddPointer {
                dest: pick(r),
                src: pick(r),
                offset: r.u16().into(),
                size: r.u8() % 10,
            }
            .encode(),
            2 => Command::AddChecksum {
                file: pick(r),
                result_offset: r.u16().into(),
                start: r.u16().into(),
                length: r.u16().into(),
            }
            .encode(),
            3 => Command::WritePointer {
                dest: pick(r),
                src: pick(r),
                dst_offset: r.u16().into(),
                src_offset: r.u16().into(),
                size: r.u8() % 10,
            }
            .encode(),
            4 => {
                let mut c = [0u8; 128];
                let src = r.take(128);
                c[..src.len()].copy_from_slice(src);
                c
            }
            _ if op & 0x80 != 0 => Command::Unknown(r.u32()).encode(),
            _ => Command::Padding.encode(),
        };
        s.extend_from_slice(&cmd);
    }
    s
}

fn check_dir(bytes: &[u8]) {
    match Directory::parse(bytes) {
        Ok(d) => {
            assert!(Directory::required_len(bytes).unwrap() <= bytes.len());
            assert_eq!(d.iter().count(), d.len());
            for e in d.iter() {
                assert!(e.name_bytes().len() <= 56 && !e.name_bytes().contains(&0));
                let first = d
                    .find_bytes(e.name_bytes())
                    .expect("entry not found by its own name");
                assert_eq!(first.name_bytes(), e.name_bytes());
                if let Some(n) = e.name() {
                    assert_eq!(d.find(n), Some(first));
                }
            }
        }
        Err(DirError::Truncated { needed, len, .. }) => assert!(needed > len && len == bytes.len()),
        Err(DirError::NoCount { len }) => assert!(len < 4),
        Err(DirError::TooManyFiles { count }) => assert!(count > 0x4000),
    }
}

fn check_e820(bytes: &[u8]) {
    match parse_e820(bytes) {
        Ok(e) => {
            assert_eq!(bytes.len() % 20, 0);
            assert_eq!(e.len(), bytes.len() / 20);
            for (x, b) in e.iter().zip(bytes.chunks_exact(20)) {
                let u = |r: std::ops::Range<usize>| {
                    let mut v = [0u8; 8];
                    v[..r.len()].copy_from_slice(&b[r]);
                    u64::from_le_bytes(v)
                };
                assert_eq!((x.addr.get(), x.size.get()), (u(0..8), u(8..16)));
                assert_eq!(u64::from(x.kind.get()), u(16..20));
            }
        }
        Err(_) => assert_ne!(bytes.len() % 20, 0),
    }
}

fn check_bootorder(bytes: &[u8]) {
    let entries: Vec<_> = parse_bootorder_bytes(bytes).collect();
    assert!(entries.len() <= MAX_BOOT_ENTRIES);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.index, i);
        assert!(!e.raw.is_empty() && e.raw == e.raw.trim() && !e.raw.contains(['\n', '\0']));
        assert!(e.raw.ends_with(e.suffix));
        let loc = match &e.target {
            BootTarget::Pci(p) => {
                let hops = p.as_slice();
                assert!(!hops.is_empty() && hops.len() <= MAX_PCI_DEPTH);
                assert!(hops.iter().all(|&(d, f)| d < 32 && f < 8));
                assert!(e.raw.starts_with("/pci@i0cf8/"));
                Location::Pci { path: hops }
            }
            BootTarget::Mmio(a) => {
                assert!(e.raw.starts_with("/virtio-mmio@"));
                Location::Mmio(*a)
            }
            BootTarget::Halt => {
                assert_eq!(e.raw, "HALT");
                continue;
            }
            BootTarget::Other => {
                assert!(e.suffix.is_empty());
                continue;
            }
        };
        let p = parse_bootorder_bytes(bytes)
            .priority(&loc)
            .expect("entry does not match itself");
        assert!(p <= i);
        assert!(entries[p].matches(&loc));
    }
}

/// Byte ranges a command writes in blobs: (file, start, len).
fn writes_of(c: &Command) -> Option<(FileName, usize, usize)> {
    match *c {
        Command::AddPointer {
            dest, offset, size, ..
        } => Some((dest, offset as usize, size.into())),
        Command::AddChecksum {
            file,
            result_offset,
            ..
        } => Some((file, result_offset as usize, 1)),
        _ => None,
    }
}

fn overlaps(a: (usize, usize), b: (usize, usize)) -> bool {
    a.0 < b.0 + b.1 && b.0 < a.0 + a.1
}

fn check_loader(script: &[u8], host: &mut Host) {
    let files = host.files.clone();
    let res = run_loader(script, host);
    let l = match res {
        Ok(l) => l,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            if let LoaderError::ScriptLength { len } = e {
                assert_ne!(len % 128, 0);
            }
            return;
        }
    };
    let cmds: Vec<Command> = decode_script(script)
        .expect("run succeeded but the script does not decode")
        .map(|c| c.expect("run succeeded past a bad command"))
        .collect();
    assert!(l.blobs().len() <= MAX_BLOBS);
    let unknown = cmds
        .iter()
        .filter(|c| matches!(c, Command::Unknown(_)))
        .count();
    assert_eq!(l.skipped(), unknown);

    for (i, b) in l.blobs().iter().enumerate() {
        assert!(
            l.blobs()[..i].iter().all(|o| o.name != b.name),
            "duplicate blob"
        );
        assert_eq!(b.data.len(), files[b.name.as_str()].len());
        assert!(b.align.is_power_of_two() && b.addr % u64::from(b.align) == 0);
        let end = b.addr + b.data.len() as u64;
        match b.zone {
            Zone::FSeg => assert!(
                b.addr >= FSEG_START && end <= FSEG_END,
                "FSEG blob at {:#x}",
                b.addr
            ),
            Zone::High => assert!(end <= HIGH_END),
        }
        let alloc = cmds.iter().find_map(|c| match c {
            Command::Allocate { file, align, zone } if *file == b.name => Some((*align, *zone)),
            _ => None,
        });
        assert_eq!(alloc, Some((b.align, b.zone)));
        // Only patched bytes change.
        for (j, (x, y)) in files[b.name.as_str()].iter().zip(&b.data).enumerate() {
            if x != y {
                assert!(
                    cmds.iter()
                        .filter_map(writes_of)
                        .any(|(f, o, s)| f == b.name && (o..o + s).contains(&j)),
                    "{} byte {j} changed without a command",
                    b.name
                );
            }
        }
    }
    assert_eq!(l.rsdp(), l.blob("etc/acpi/rsdp").map(|b| b.addr));

    let blob = |f: &FileName| {
        l.blob(f.as_str())
            .expect("command used a blob that was not loaded")
    };
    for (k, c) in cmds.iter().enumerate() {
        match *c {
            Command::AddChecksum {
                file,
                result_offset,
                start,
                length,
            } => {
                let (at, s, n) = (result_offset as usize, start as usize, length as usize);
                let later = cmds[k + 1..]
                    .iter()
                    .filter_map(writes_of)
                    .any(|(f, o, sz)| f == file && overlaps((o, sz), (s, n)));
                if (s..s + n).contains(&at) && !later {
                    let sum = blob(&file).data[s..s + n]
                        .iter()
                        .fold(0u8, |a, &x| a.wrapping_add(x));
                    assert_eq!(sum, 0, "checksum {k} does not hold");
                }
            }
            Command::AddPointer {
                dest,
                src,
                offset,
                size,
            } => {
                let me = (offset as usize, usize::from(size));
                let others = cmds
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != k)
                    .filter_map(|(_, c)| writes_of(c))
                    .any(|(f, o, sz)| f == dest && overlaps((o, sz), me));
                if !others {
                    let mut before = [0u8; 8];
                    before[..me.1].copy_from_slice(&files[dest.as_str()][me.0..me.0 + me.1]);
                    let mut after = [0u8; 8];
                    after[..me.1].copy_from_slice(&blob(&dest).data[me.0..me.0 + me.1]);
                    assert_eq!(
                        u64::from_le_bytes(after),
                        u64::from_le_bytes(before) + blob(&src).addr,
                        "pointer {k}"
                    );
                }
            }
            _ => {}
        }
    }

    let wp: Vec<_> = cmds
        .iter()
        .filter_map(|c| match *c {
            Command::WritePointer {
                dest,
                src,
                dst_offset,
                src_offset,
                size,
            } => Some((dest, src, dst_offset, src_offset, size)),
            _ => None,
        })
        .collect();
    assert_eq!(l.pointers_written(), wp.len());
    assert_eq!(host.writes.len(), wp.len());
    for ((dest, src, doff, soff, size), (name, off, bytes)) in wp.iter().zip(&host.writes) {
        assert_eq!((dest.as_str(), *doff), (name.as_str(), *off));
        let v = blob(src).addr + u64::from(*soff);
        assert!((*soff as usize) < blob(src).data.len());
        assert_eq!(bytes[..], v.to_le_bytes()[..usize::from(*size)]);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = Bytes(data);
    let n = usize::from(r.u16());
    check_dir(r.take(n));
    let n = usize::from(r.u16());
    check_e820(r.take(n));
    let n = usize::from(r.u16());
    check_bootorder(r.take(n));

    let flags = r.u8();
    let mut files = BTreeMap::new();
    for _ in 0..r.u8() % 9 {
        let name = NAMES[usize::from(r.u8()) % (NAMES.len() - 1)];
        let size = usize::from(r.u16());
        let mut d = r.take(size).to_vec();
        d.resize(size, 0);
        files.insert(name.to_string(), d);
    }
    let addrs = [r.u64(), r.u64(), r.u64(), r.u64()];
    let mut host = Host {
        files,
        high: 0x7000_0000,
        fseg: 0xE_0000 + u64::from(flags >> 4) * 0x1000,
        hostile: (flags & 2 != 0).then_some(addrs),
        calls: 0,
        fail: (flags >> 2) & 3,
        writes: Vec::new(),
    };
    let script = if flags & 1 != 0 {
        r.take(usize::MAX).to_vec()
    } else {
        build_script(&mut r)
    };
    check_loader(&script, &mut host);
});
