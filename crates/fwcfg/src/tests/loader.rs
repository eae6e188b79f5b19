use super::padded;
use crate::loader::{
    decode_script, AddChecksumCommand, AddPointerCommand, AllocateCommand, Command, NameField,
    WritePointerCommand, COMMAND_SIZE, FSEG_END, FSEG_START, HIGH_END, MAX_BLOBS, MAX_BLOB_SIZE,
    MAX_SCRIPT_LEN, ZONE_FSEG, ZONE_HIGH,
};
use crate::{run_loader, FileName, HostError, Loaded, LoaderError, LoaderHost, NameError, Zone};
use std::collections::BTreeMap;
use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;
use zerocopy::IntoBytes;

/// fw_cfg files in a map, bump allocators per zone, and failure switches.
#[derive(Default)]
struct FakeHost {
    files: BTreeMap<String, Vec<u8>>,
    /// Sizes reported without backing data (read as zeros).
    sizes: BTreeMap<String, u32>,
    high: u64,
    fseg: u64,
    writes: Vec<(String, u32, Vec<u8>)>,
    /// Fail this operation ("read", "allocate", "write") with this error.
    fail: Option<(&'static str, HostError)>,
    /// Return this address from `allocate` instead of a real one.
    fixed_addr: Option<u64>,
    allocs: Vec<(String, u32, u32, Zone)>,
    /// A machine without the F segment (arm64).
    no_fseg: bool,
}

impl FakeHost {
    fn new(files: &[(&str, Vec<u8>)]) -> Self {
        FakeHost {
            files: files
                .iter()
                .map(|(n, d)| (n.to_string(), d.clone()))
                .collect(),
            high: 0x7f00_0000,
            fseg: FSEG_START + 0x1000,
            ..Default::default()
        }
    }
    fn failing(&self, op: &str) -> Result<(), HostError> {
        match self.fail {
            Some((o, e)) if o == op => Err(e),
            _ => Ok(()),
        }
    }
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

impl LoaderHost for FakeHost {
    fn file_size(&mut self, name: &str) -> Option<u32> {
        self.sizes
            .get(name)
            .copied()
            .or_else(|| self.files.get(name).map(|d| d.len() as u32))
    }
    fn read_file(&mut self, name: &str, buf: &mut [u8]) -> Result<(), HostError> {
        self.failing("read")?;
        assert_eq!(Some(buf.len() as u32), self.file_size(name));
        match self.files.get(name) {
            Some(d) => buf.copy_from_slice(d),
            None => buf.fill(0),
        }
        Ok(())
    }
    fn allocate(
        &mut self,
        name: &str,
        size: u32,
        align: u32,
        zone: Zone,
    ) -> Result<u64, HostError> {
        self.failing("allocate")?;
        self.allocs.push((name.to_string(), size, align, zone));
        if let Some(a) = self.fixed_addr {
            return Ok(a);
        }
        match zone {
            Zone::High => bump(&mut self.high, size, align, HIGH_END),
            Zone::FSeg => bump(&mut self.fseg, size, align, FSEG_END),
        }
    }
    fn write_file(&mut self, name: &str, offset: u32, bytes: &[u8]) -> Result<(), HostError> {
        self.failing("write")?;
        let f = self.files.get_mut(name).ok_or(HostError::Io)?;
        let r = offset as usize..offset as usize + bytes.len();
        f.get_mut(r).ok_or(HostError::Io)?.copy_from_slice(bytes);
        self.writes.push((name.to_string(), offset, bytes.to_vec()));
        Ok(())
    }
    fn has_fseg(&self) -> bool {
        !self.no_fseg
    }
}

fn n(s: &str) -> FileName {
    FileName::new(s).unwrap()
}
fn alloc(f: &str, align: u32, zone: u8) -> Vec<u8> {
    AllocateCommand::new(&n(f), align, zone).as_bytes().to_vec()
}
fn ptr(dest: &str, src: &str, offset: u32, size: u8) -> Vec<u8> {
    AddPointerCommand::new(&n(dest), &n(src), offset, size)
        .as_bytes()
        .to_vec()
}
fn cksum(f: &str, at: u32, start: u32, len: u32) -> Vec<u8> {
    AddChecksumCommand::new(&n(f), at, start, len)
        .as_bytes()
        .to_vec()
}
fn wrptr(dest: &str, src: &str, dst_off: u32, src_off: u32, size: u8) -> Vec<u8> {
    WritePointerCommand::new(&n(dest), &n(src), dst_off, src_off, size)
        .as_bytes()
        .to_vec()
}
fn raw(cmd: u32, body: &[u8]) -> Vec<u8> {
    let mut v = cmd.to_le_bytes().to_vec();
    v.extend_from_slice(body);
    v.resize(COMMAND_SIZE, 0);
    v
}
fn script(cmds: &[Vec<u8>]) -> Vec<u8> {
    cmds.concat()
}

fn sum(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |a, &x| a.wrapping_add(x))
}
fn le(b: &[u8]) -> u64 {
    let mut x = [0u8; 8];
    x[..b.len()].copy_from_slice(b);
    u64::from_le_bytes(x)
}
fn u32_at(b: &[u8], off: usize) -> u64 {
    le(&b[off..off + 4])
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    le(&b[off..off + 8])
}

/// The ACPI table at `off` in `data`: signature, and a check that its
/// length fits and its checksum is zero.
fn table(data: &[u8], off: usize) -> [u8; 4] {
    let len = u32_at(data, off + 4) as usize;
    assert!(
        len >= 36 && off + len <= data.len(),
        "table at {off:#x} len {len}"
    );
    assert_eq!(
        sum(&data[off..off + len]),
        0,
        "checksum of table at {off:#x}"
    );
    data[off..off + 4].try_into().unwrap()
}

/// Every byte that changed between the files and the blobs lies in a
/// pointer or checksum byte the script names, and every checksum command
/// whose byte lies in its range left the range summing to zero.
fn check_only_patched(script: &[u8], host_files: &BTreeMap<String, Vec<u8>>, l: &Loaded) {
    let mut touched: Vec<(String, usize, usize)> = Vec::new();
    let mut sums = Vec::new();
    for c in decode_script(script).unwrap() {
        match c.unwrap() {
            Command::AddPointer {
                dest, offset, size, ..
            } => touched.push((dest.to_string(), offset as usize, usize::from(size))),
            Command::AddChecksum {
                file,
                result_offset,
                start,
                length,
            } => {
                touched.push((file.to_string(), result_offset as usize, 1));
                sums.push((
                    file.to_string(),
                    result_offset as usize,
                    start as usize,
                    length as usize,
                ));
            }
            _ => {}
        }
    }
    for b in l.blobs() {
        let orig = &host_files[b.name.as_str()];
        assert_eq!(orig.len(), b.data.len());
        for (i, (x, y)) in orig.iter().zip(&b.data).enumerate() {
            if x != y {
                assert!(
                    touched
                        .iter()
                        .any(|(f, o, s)| f == b.name.as_str() && (*o..o + s).contains(&i)),
                    "{} byte {i:#x} changed but no command patches it",
                    b.name
                );
            }
        }
    }
    for (f, at, start, len) in sums {
        if (start..start + len).contains(&at) {
            let d = &l.blob(&f).unwrap().data;
            assert_eq!(
                sum(&d[start..start + len]),
                0,
                "{f} range {start:#x}+{len:#x}"
            );
        }
    }
}

const Q35_LOADER: &[u8] = include_bytes!("../../testdata/q35-table-loader.bin");

fn q35_host() -> FakeHost {
    FakeHost::new(&[
        (
            "etc/acpi/rsdp",
            include_bytes!("../../testdata/q35-rsdp.bin").to_vec(),
        ),
        (
            "etc/acpi/tables",
            padded(
                include_bytes!("../../testdata/q35-tables.trimmed.bin"),
                0x20000,
            ),
        ),
        (
            "etc/vmgenid_guid",
            padded(
                include_bytes!("../../testdata/q35-vmgenid-guid.trimmed.bin"),
                4096,
            ),
        ),
        ("etc/vmgenid_addr", vec![0; 8]),
        ("etc/table-loader", Q35_LOADER.to_vec()),
    ])
}

#[test]
fn q35_fixture() {
    let mut host = q35_host();
    let files = host.files.clone();
    let l = run_loader(Q35_LOADER, &mut host).unwrap();
    let names: Vec<&str> = l.blobs().iter().map(|b| b.name.as_str()).collect();
    assert_eq!(
        names,
        ["etc/acpi/rsdp", "etc/vmgenid_guid", "etc/acpi/tables"]
    );
    assert_eq!((l.skipped(), l.pointers_written()), (0, 1));
    assert_eq!(
        host.allocs,
        [
            ("etc/acpi/rsdp".to_string(), 20, 16, Zone::FSeg),
            ("etc/vmgenid_guid".to_string(), 4096, 4096, Zone::High),
            ("etc/acpi/tables".to_string(), 0x20000, 64, Zone::High),
        ]
    );

    let rsdp = l.blob("etc/acpi/rsdp").unwrap();
    let tables = l.blob("etc/acpi/tables").unwrap();
    let guid = l.blob("etc/vmgenid_guid").unwrap();
    assert_eq!(l.rsdp(), Some(rsdp.addr));
    assert_eq!(rsdp.zone, Zone::FSeg);
    assert!(rsdp.addr >= FSEG_START && rsdp.addr + 20 <= FSEG_END && rsdp.addr.is_multiple_of(16));
    assert_eq!(&rsdp.data[..8], b"RSD PTR ");
    assert_eq!(rsdp.data[15], 0, "ACPI 1.0 RSDP");
    assert_eq!(sum(&rsdp.data), 0);

    // RSDT pointer = tables blob + 0x2338, where QEMU put the RSDT.
    let t = &tables.data;
    let rsdt = u32_at(&rsdp.data, 16) - tables.addr;
    assert_eq!(rsdt, 0x2338);
    let rsdt = rsdt as usize;
    assert_eq!(&table(t, rsdt), b"RSDT");
    let n_entries = (u32_at(t, rsdt + 4) as usize - 36) / 4;
    let mut sigs = Vec::new();
    for i in 0..n_entries {
        let off = u32_at(t, rsdt + 36 + 4 * i) - tables.addr;
        sigs.push(table(t, off as usize));
    }
    // No MCFG: with the CPUs stopped nobody enabled MMCONFIG yet.
    assert_eq!(sigs, [*b"FACP", *b"APIC", *b"SSDT", *b"HPET", *b"WAET"]);

    // FADT: FACS and DSDT 32-bit pointers and the 64-bit X_DSDT agree.
    let facp = (u32_at(t, rsdt + 36) - tables.addr) as usize;
    let facs = (u32_at(t, facp + 36) - tables.addr) as usize;
    assert_eq!(&t[facs..facs + 4], b"FACS");
    let dsdt = u32_at(t, facp + 40);
    assert_eq!(u64_at(t, facp + 140), dsdt);
    assert_eq!(&table(t, (dsdt - tables.addr) as usize), b"DSDT");

    // The vmgenid SSDT points at the GUID blob, and QEMU was told where the
    // GUID (40 bytes in) lives.
    assert_eq!(u32_at(t, 8760), guid.addr);
    assert_eq!(&table(t, 8718), b"SSDT");
    let want = (guid.addr + 40).to_le_bytes().to_vec();
    assert_eq!(
        host.writes,
        [("etc/vmgenid_addr".to_string(), 0, want.clone())]
    );
    assert_eq!(host.files["etc/vmgenid_addr"], want);
    assert_eq!(guid.data[40..56], files["etc/vmgenid_guid"][40..56]);

    check_only_patched(Q35_LOADER, &files, &l);
}

#[test]
fn microvm_fixture_acpi2_rsdp_and_xsdt() {
    let loader = include_bytes!("../../testdata/microvm-table-loader.bin");
    let mut host = FakeHost::new(&[
        (
            "etc/acpi/rsdp",
            include_bytes!("../../testdata/microvm-rsdp.bin").to_vec(),
        ),
        (
            "etc/acpi/tables",
            include_bytes!("../../testdata/microvm-tables.bin").to_vec(),
        ),
    ]);
    let files = host.files.clone();
    let l = run_loader(loader, &mut host).unwrap();
    let rsdp = l.blob("etc/acpi/rsdp").unwrap();
    let tables = l.blob("etc/acpi/tables").unwrap();
    assert_eq!(l.rsdp(), Some(rsdp.addr));
    assert_eq!(rsdp.data[15], 2, "ACPI 2.0 RSDP");
    assert_eq!(sum(&rsdp.data[..20]), 0);
    assert_eq!(sum(&rsdp.data[..36]), 0);
    assert_eq!(u32_at(&rsdp.data, 16), 0, "no RSDT");
    let xsdt = u64_at(&rsdp.data, 24);
    assert_eq!(xsdt, tables.addr + 0x302);
    let t = &tables.data;
    let x = (xsdt - tables.addr) as usize;
    assert_eq!(&table(t, x), b"XSDT");
    let sigs: Vec<[u8; 4]> = (0..(u32_at(t, x + 4) as usize - 36) / 8)
        .map(|i| table(t, (u64_at(t, x + 36 + 8 * i) - tables.addr) as usize))
        .collect();
    assert_eq!(sigs, [*b"FACP", *b"APIC"]);
    assert!(host.writes.is_empty());
    check_only_patched(loader, &files, &l);
}

/// ACPI header: signature, length, revision; checksum left zero.
fn header(sig: &[u8; 4], len: u32) -> Vec<u8> {
    let mut h = vec![0u8; 36];
    h[..4].copy_from_slice(sig);
    h[4..8].copy_from_slice(&len.to_le_bytes());
    h[8] = 1;
    h[10..16].copy_from_slice(b"EMBER ");
    h
}

#[test]
fn synthetic_rsdp_rsdt_xsdt() {
    // tables: DSDT @0 (40), FACP @40 (48, DSDT pointer at +40 holding 0),
    // XSDT @88 (44, one entry = 40), RSDT @132 (40, one entry = 40).
    let mut t = header(b"DSDT", 40);
    t.extend_from_slice(&[0x10, 0x20, 0x30, 0x40]);
    t.extend(header(b"FACP", 48));
    t.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    t.extend(header(b"XSDT", 44));
    t.extend_from_slice(&40u64.to_le_bytes());
    t.extend(header(b"RSDT", 40));
    t.extend_from_slice(&40u32.to_le_bytes());
    assert_eq!(t.len(), 172);
    let mut r = b"RSD PTR \0EMBER \x02".to_vec();
    r.extend_from_slice(&132u32.to_le_bytes());
    r.extend_from_slice(&36u32.to_le_bytes());
    r.extend_from_slice(&88u64.to_le_bytes());
    r.extend_from_slice(&[0; 4]);
    assert_eq!(r.len(), 36);

    let tb = "etc/acpi/tables";
    let rs = "etc/acpi/rsdp";
    let s = padded(
        &script(&[
            alloc(rs, 16, ZONE_FSEG),
            alloc(tb, 64, ZONE_HIGH),
            cksum(tb, 9, 0, 40),
            ptr(tb, tb, 80, 4),
            cksum(tb, 49, 40, 48),
            raw(0x77, b"from a newer QEMU"),
            ptr(tb, tb, 124, 8),
            cksum(tb, 97, 88, 44),
            ptr(tb, tb, 168, 4),
            cksum(tb, 141, 132, 40),
            ptr(rs, tb, 16, 4),
            ptr(rs, tb, 24, 8),
            cksum(rs, 8, 0, 20),
            cksum(rs, 32, 0, 36),
        ]),
        4096,
    );
    let mut host = FakeHost::new(&[(tb, t), (rs, r)]);
    let files = host.files.clone();
    let l = run_loader(&s, &mut host).unwrap();
    assert_eq!(l.skipped(), 1);
    let rsdp = l.blob(rs).unwrap();
    let tables = l.blob(tb).unwrap();
    assert_eq!(l.rsdp(), Some(rsdp.addr));
    assert!(rsdp.addr >= FSEG_START && rsdp.addr + 36 <= FSEG_END);
    assert!(tables.addr.is_multiple_of(64));
    assert!(tables.addr + 172 <= HIGH_END);
    assert_eq!(sum(&rsdp.data[..20]), 0);
    assert_eq!(sum(&rsdp.data), 0);
    assert_eq!(u32_at(&rsdp.data, 16), tables.addr + 132);
    assert_eq!(u64_at(&rsdp.data, 24), tables.addr + 88);
    let d = &tables.data;
    assert_eq!(&table(d, 0), b"DSDT");
    assert_eq!(&table(d, 40), b"FACP");
    assert_eq!(&table(d, 88), b"XSDT");
    assert_eq!(&table(d, 132), b"RSDT");
    assert_eq!(u64_at(d, 124), tables.addr + 40);
    assert_eq!(u32_at(d, 168), tables.addr + 40);
    assert_eq!(u32_at(d, 80), tables.addr);
    check_only_patched(&s, &files, &l);
}

#[test]
fn empty_and_padding_only_scripts() {
    let mut h = FakeHost::new(&[]);
    assert_eq!(run_loader(&[], &mut h).unwrap(), Loaded::default());
    let l = run_loader(&[0u8; 4096], &mut h).unwrap();
    assert!(l.blobs().is_empty());
    assert_eq!(l.rsdp(), None);
}

#[test]
fn without_an_f_segment_fseg_blobs_go_high() {
    let s = script(&[
        alloc("etc/acpi/rsdp", 16, ZONE_FSEG),
        alloc("t", 64, ZONE_HIGH),
    ]);
    let mut h = FakeHost::new(&[("etc/acpi/rsdp", vec![7; 36]), ("t", vec![1; 8])]);
    h.no_fseg = true;
    let l = run_loader(&s, &mut h).unwrap();
    assert!(h.allocs.iter().all(|a| a.3 == Zone::High), "{:?}", h.allocs);
    assert!(l.blob("etc/acpi/rsdp").unwrap().addr >= 0x7f00_0000);
    // The same script on a PC puts the RSDP in the F segment, and a host
    // that places it elsewhere is refused.
    let mut pc = FakeHost::new(&[("etc/acpi/rsdp", vec![7; 36]), ("t", vec![1; 8])]);
    let l = run_loader(&s, &mut pc).unwrap();
    let a = l.blob("etc/acpi/rsdp").unwrap().addr;
    assert!((FSEG_START..FSEG_END).contains(&a));
    let mut bad = FakeHost::new(&[("etc/acpi/rsdp", vec![7; 36]), ("t", vec![1; 8])]);
    bad.fixed_addr = Some(0x7f00_0000);
    assert!(matches!(
        run_loader(&s, &mut bad),
        Err(LoaderError::BadAllocation { .. })
    ));
}

#[test]
fn commands_after_padding_still_run() {
    let s = script(&[raw(0, &[]), alloc("a", 1, ZONE_HIGH)]);
    let mut h = FakeHost::new(&[("a", vec![1, 2])]);
    let l = run_loader(&s, &mut h).unwrap();
    assert_eq!(l.blob("a").unwrap().data, [1, 2]);
    assert_eq!(l.into_blobs().len(), 1);
}

#[test]
fn zero_alignment_means_one_and_empty_files_load() {
    let s = script(&[
        alloc("a", 0, ZONE_HIGH),
        alloc("etc/tpm/log", 4096, ZONE_HIGH),
    ]);
    let mut h = FakeHost::new(&[("a", vec![9; 3]), ("etc/tpm/log", vec![])]);
    h.high = 0x1001;
    let l = run_loader(&s, &mut h).unwrap();
    assert_eq!((l.blobs()[0].align, l.blobs()[0].addr), (1, 0x1001));
    assert_eq!(l.blobs()[1].data.len(), 0);
    assert!(l.blobs()[1].addr.is_multiple_of(4096));
}

#[test]
fn pointer_widths() {
    // src at 0x10 (FSEG is too high for 1 byte, so pin the address).
    let s = script(&[
        alloc("src", 1, ZONE_HIGH),
        alloc("dst", 1, ZONE_HIGH),
        ptr("dst", "src", 0, 1),
        ptr("dst", "src", 1, 2),
        ptr("dst", "src", 3, 4),
        ptr("dst", "src", 7, 8),
    ]);
    let mut h = FakeHost::new(&[
        ("src", vec![0; 0x20]),
        (
            "dst",
            vec![5, 6, 0, 7, 0, 0, 0, 0x1f, 0, 0, 0, 0, 0, 0, 0, 0xaa],
        ),
    ]);
    h.fixed_addr = Some(0x10);
    let l = run_loader(&s, &mut h).unwrap();
    assert_eq!(
        l.blob("dst").unwrap().data,
        [0x15, 0x16, 0, 0x17, 0, 0, 0, 0x2f, 0, 0, 0, 0, 0, 0, 0, 0xaa]
    );
}

#[test]
fn checksum_semantics() {
    // Result byte inside the range, with a non-zero stale value: the range
    // still sums to zero. Outside the range: byte = -sum(range).
    let s = script(&[
        alloc("f", 1, ZONE_HIGH),
        cksum("f", 1, 0, 4),
        cksum("f", 5, 2, 3),
    ]);
    let mut h = FakeHost::new(&[("f", vec![10, 99, 20, 30, 40, 77])]);
    let l = run_loader(&s, &mut h).unwrap();
    let d = &l.blob("f").unwrap().data;
    assert_eq!(sum(&d[..4]), 0);
    assert_eq!(d[1], 0u8.wrapping_sub(60));
    assert_eq!(d[5], 0u8.wrapping_sub(90));
    assert_eq!(d[5], 0u8.wrapping_sub(sum(&d[2..5])));
    // Empty range: byte becomes zero.
    let s = script(&[alloc("f", 1, ZONE_HIGH), cksum("f", 0, 3, 0)]);
    let mut h = FakeHost::new(&[("f", vec![10, 99, 20])]);
    assert_eq!(
        run_loader(&s, &mut h).unwrap().blob("f").unwrap().data,
        [0, 99, 20]
    );
}

fn err(cmds: &[Vec<u8>], h: &mut FakeHost) -> LoaderError {
    let e = run_loader(&script(cmds), h).unwrap_err();
    // Every error renders a message naming the problem.
    assert!(!std::format!("{e}").is_empty());
    e
}

fn two_files() -> FakeHost {
    FakeHost::new(&[("a", vec![0; 16]), ("b", vec![0; 16]), ("w", vec![0; 8])])
}

#[test]
fn script_length_errors() {
    let mut h = two_files();
    assert_eq!(
        run_loader(&[0; 100], &mut h),
        Err(LoaderError::ScriptLength { len: 100 })
    );
    assert_eq!(
        run_loader(&[0; 129], &mut h),
        Err(LoaderError::ScriptLength { len: 129 })
    );
    let big = vec![0; MAX_SCRIPT_LEN + COMMAND_SIZE];
    assert_eq!(
        run_loader(&big, &mut h),
        Err(LoaderError::ScriptTooLong {
            len: MAX_SCRIPT_LEN + COMMAND_SIZE
        })
    );
    assert!(run_loader(&vec![0; MAX_SCRIPT_LEN], &mut h).is_ok());
}

#[test]
fn bad_file_names() {
    let mut h = two_files();
    let mut unterminated = alloc("a", 1, ZONE_HIGH);
    unterminated[4..60].fill(b'a');
    assert_eq!(
        err(&[unterminated], &mut h),
        LoaderError::BadFileName {
            index: 0,
            field: NameField::File,
            err: NameError::Unterminated
        }
    );
    let empty = raw(1, &[0; 60]);
    assert_eq!(
        err(&[empty], &mut h),
        LoaderError::BadFileName {
            index: 0,
            field: NameField::File,
            err: NameError::Empty
        }
    );
    let mut bad_src = ptr("a", "b", 0, 4);
    bad_src[60] = 0xff;
    assert_eq!(
        err(&[raw(0, &[]), bad_src], &mut h),
        LoaderError::BadFileName {
            index: 1,
            field: NameField::Src,
            err: NameError::NotUtf8
        }
    );
    let mut bad_dest = wrptr("w", "a", 0, 0, 4);
    bad_dest[4] = 0xc0;
    assert_eq!(
        err(&[bad_dest], &mut h),
        LoaderError::BadFileName {
            index: 0,
            field: NameField::Dest,
            err: NameError::NotUtf8
        }
    );
    let mut bad_ck = cksum("a", 0, 0, 1);
    bad_ck[4..60].fill(b'x');
    let e = err(&[bad_ck], &mut h);
    assert!(matches!(
        e,
        LoaderError::BadFileName {
            field: NameField::File,
            ..
        }
    ));
    assert_eq!(
        std::format!("{e}"),
        "table-loader command 0: bad file: no NUL terminator within 56 bytes"
    );
}

#[test]
fn unknown_files() {
    let mut h = two_files();
    assert_eq!(
        err(&[alloc("nope", 1, ZONE_HIGH)], &mut h),
        LoaderError::UnknownFile {
            index: 0,
            file: n("nope")
        }
    );
    assert_eq!(
        err(
            &[alloc("a", 1, ZONE_HIGH), wrptr("nope", "a", 0, 0, 4)],
            &mut h
        ),
        LoaderError::UnknownFile {
            index: 1,
            file: n("nope")
        }
    );
    assert!(h.writes.is_empty());
}

#[test]
fn duplicate_allocation() {
    let mut h = two_files();
    let e = err(
        &[
            alloc("a", 1, ZONE_HIGH),
            alloc("b", 1, ZONE_HIGH),
            alloc("a", 4, ZONE_FSEG),
        ],
        &mut h,
    );
    assert_eq!(
        e,
        LoaderError::DuplicateAllocation {
            index: 2,
            file: n("a")
        }
    );
    assert_eq!(
        std::format!("{e}"),
        "table-loader command 2: \"a\" allocated twice"
    );
}

#[test]
fn use_before_allocation() {
    let mut h = two_files();
    let a = || alloc("a", 1, ZONE_HIGH);
    assert_eq!(
        err(&[a(), ptr("a", "b", 0, 4)], &mut h),
        LoaderError::NotAllocated {
            index: 1,
            file: n("b")
        }
    );
    assert_eq!(
        err(&[ptr("b", "a", 0, 4)], &mut h),
        LoaderError::NotAllocated {
            index: 0,
            file: n("b")
        }
    );
    assert_eq!(
        err(&[cksum("a", 0, 0, 1)], &mut h),
        LoaderError::NotAllocated {
            index: 0,
            file: n("a")
        }
    );
    assert_eq!(
        err(&[wrptr("w", "b", 0, 0, 4)], &mut h),
        LoaderError::NotAllocated {
            index: 0,
            file: n("b")
        }
    );
}

#[test]
fn too_many_blobs() {
    let names: Vec<String> = (0..=MAX_BLOBS).map(|i| std::format!("f{i}")).collect();
    let files: Vec<(&str, Vec<u8>)> = names.iter().map(|s| (s.as_str(), vec![1])).collect();
    let mut h = FakeHost::new(&files);
    let cmds: Vec<Vec<u8>> = names.iter().map(|s| alloc(s, 1, ZONE_HIGH)).collect();
    assert!(run_loader(&script(&cmds[..MAX_BLOBS]), &mut h).is_ok());
    assert_eq!(
        err(&cmds, &mut h),
        LoaderError::TooManyBlobs { index: MAX_BLOBS }
    );
}

#[test]
fn blob_size_limits() {
    let mut h = FakeHost::new(&[]);
    h.sizes.insert("huge".into(), MAX_BLOB_SIZE + 1);
    assert_eq!(
        err(&[alloc("huge", 1, ZONE_HIGH)], &mut h),
        LoaderError::BlobTooLarge {
            index: 0,
            file: n("huge"),
            size: MAX_BLOB_SIZE + 1
        }
    );
    // Each within the per-blob limit, together over the total.
    let mut h = FakeHost::new(&[]);
    h.high = 0;
    for i in 0..5 {
        h.sizes.insert(std::format!("b{i}"), MAX_BLOB_SIZE);
    }
    let cmds: Vec<Vec<u8>> = (0..5)
        .map(|i| alloc(&std::format!("b{i}"), 1, ZONE_HIGH))
        .collect();
    assert_eq!(
        err(&cmds, &mut h),
        LoaderError::BlobTooLarge {
            index: 4,
            file: n("b4"),
            size: MAX_BLOB_SIZE
        }
    );
}

#[test]
fn bad_alignment_and_zone() {
    let mut h = two_files();
    assert_eq!(
        err(&[alloc("a", 3, ZONE_HIGH)], &mut h),
        LoaderError::BadAlignment {
            index: 0,
            file: n("a"),
            align: 3
        }
    );
    assert_eq!(
        err(&[alloc("a", 0x8000_0001, ZONE_HIGH)], &mut h),
        LoaderError::BadAlignment {
            index: 0,
            file: n("a"),
            align: 0x8000_0001
        }
    );
    for zone in [0, 3, 0xff] {
        assert_eq!(
            err(&[alloc("a", 1, zone)], &mut h),
            LoaderError::BadZone {
                index: 0,
                file: n("a"),
                zone
            }
        );
    }
    assert!(h.allocs.is_empty());
}

#[test]
fn host_returns_bad_address() {
    let cases: [(u64, u32, u8); 5] = [
        (0xE_0008, 16, ZONE_FSEG),    // misaligned
        (0xD_FFF0, 16, ZONE_FSEG),    // below FSEG
        (0xF_FFF8, 16, ZONE_FSEG),    // 16-byte blob runs past 1 MiB
        (0xFFFF_FFF8, 8, ZONE_HIGH),  // runs past 4 GiB
        (u64::MAX - 7, 8, ZONE_HIGH), // wraps
    ];
    for (addr, align, zone) in cases {
        let mut h = two_files();
        h.fixed_addr = Some(addr);
        let e = err(&[alloc("a", align, zone)], &mut h);
        assert!(
            matches!(e, LoaderError::BadAllocation { index: 0, addr: a, size: 16, .. } if a == addr),
            "{addr:#x}: {e:?}"
        );
    }
    // The last byte of FSEG and of the 32-bit space are fine.
    let mut h = two_files();
    h.fixed_addr = Some(FSEG_END - 16);
    assert!(run_loader(&alloc("a", 16, ZONE_FSEG), &mut h).is_ok());
    h.fixed_addr = Some(HIGH_END - 16);
    assert!(run_loader(&alloc("a", 16, ZONE_HIGH), &mut h).is_ok());
}

#[test]
fn bad_pointer_sizes() {
    let mut h = two_files();
    let a = || alloc("a", 1, ZONE_HIGH);
    for size in [0u8, 3, 5, 16, 255] {
        assert_eq!(
            err(&[a(), ptr("a", "a", 0, size)], &mut h),
            LoaderError::BadPointerSize { index: 1, size }
        );
        assert_eq!(
            err(&[a(), wrptr("w", "a", 0, 0, size)], &mut h),
            LoaderError::BadPointerSize { index: 1, size }
        );
    }
}

#[test]
fn out_of_bounds() {
    let a = || alloc("a", 1, ZONE_HIGH);
    let b = || alloc("b", 1, ZONE_HIGH);
    let oob = |e: LoaderError| match e {
        LoaderError::OutOfBounds {
            what,
            offset,
            len,
            file_size,
            ..
        } => (what, offset, len, file_size),
        e => panic!("{e:?}"),
    };
    let mut h = two_files();
    assert_eq!(
        oob(err(&[a(), b(), ptr("a", "b", 13, 4)], &mut h)),
        ("pointer", 13, 4, 16)
    );
    assert_eq!(
        oob(err(&[a(), b(), ptr("a", "b", u32::MAX, 8)], &mut h)),
        ("pointer", 0xffff_ffff, 8, 16)
    );
    assert_eq!(
        oob(err(&[a(), cksum("a", 16, 0, 1)], &mut h)),
        ("checksum byte", 16, 1, 16)
    );
    assert_eq!(
        oob(err(&[a(), cksum("a", 0, 10, 7)], &mut h)),
        ("checksum range", 10, 7, 16)
    );
    assert_eq!(
        oob(err(&[a(), cksum("a", 0, u32::MAX, u32::MAX)], &mut h)),
        ("checksum range", 0xffff_ffff, 0xffff_ffff, 16)
    );
    assert_eq!(
        oob(err(&[a(), wrptr("w", "a", 1, 0, 8)], &mut h)),
        ("pointer", 1, 8, 8)
    );
    assert_eq!(
        oob(err(&[a(), wrptr("w", "a", 0, 16, 8)], &mut h)),
        ("source offset", 16, 1, 16)
    );
    let e = err(&[a(), b(), ptr("a", "b", 13, 4)], &mut h);
    assert_eq!(
        std::format!("{e}"),
        "table-loader command 2: pointer 0xd+0x4 is outside \"a\" (16 bytes)"
    );
    assert!(h.writes.is_empty());
}

#[test]
fn pointer_value_outside_source() {
    let mut h = FakeHost::new(&[("a", vec![16, 0, 0, 0]), ("b", vec![0; 16])]);
    assert_eq!(
        err(
            &[
                alloc("a", 1, ZONE_HIGH),
                alloc("b", 1, ZONE_HIGH),
                ptr("a", "b", 0, 4)
            ],
            &mut h
        ),
        LoaderError::PointerOutsideSource {
            index: 2,
            src: n("b"),
            value: 16,
            src_size: 16
        }
    );
    // Offset 15, the last byte, is fine.
    let mut h = FakeHost::new(&[("a", vec![15, 0, 0, 0]), ("b", vec![0; 16])]);
    let l = run_loader(
        &script(&[
            alloc("a", 1, ZONE_HIGH),
            alloc("b", 1, ZONE_HIGH),
            ptr("a", "b", 0, 4),
        ]),
        &mut h,
    )
    .unwrap();
    assert_eq!(
        u32_at(&l.blob("a").unwrap().data, 0),
        l.blob("b").unwrap().addr + 15
    );
}

#[test]
fn pointer_overflow() {
    let mut h = two_files();
    h.fixed_addr = Some(0x1_0000);
    let e = err(&[alloc("a", 1, ZONE_HIGH), ptr("a", "a", 0, 2)], &mut h);
    assert_eq!(
        e,
        LoaderError::PointerOverflow {
            index: 1,
            file: n("a"),
            value: 0x1_0000,
            size: 2
        }
    );
    assert_eq!(
        err(
            &[alloc("a", 1, ZONE_HIGH), wrptr("w", "a", 0, 0, 1)],
            &mut h
        ),
        LoaderError::PointerOverflow {
            index: 1,
            file: n("w"),
            value: 0x1_0000,
            size: 1
        }
    );
    // 0xFFF0 + 0xF fits in two bytes exactly.
    let mut h = FakeHost::new(&[("a", vec![0xf, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])]);
    h.fixed_addr = Some(0xfff0);
    let l = run_loader(
        &script(&[alloc("a", 1, ZONE_HIGH), ptr("a", "a", 0, 2)]),
        &mut h,
    )
    .unwrap();
    assert_eq!(l.blob("a").unwrap().data[..2], [0xff, 0xff]);
}

#[test]
fn host_failures() {
    for (op, err_kind, cmds) in [
        ("read", HostError::Io, vec![alloc("a", 1, ZONE_HIGH)]),
        (
            "allocate",
            HostError::NoMemory,
            vec![alloc("a", 1, ZONE_HIGH)],
        ),
        (
            "write",
            HostError::Unsupported,
            vec![alloc("a", 1, ZONE_HIGH), wrptr("w", "a", 0, 0, 8)],
        ),
    ] {
        let mut h = two_files();
        h.fail = Some((op, err_kind));
        let e = err(&cmds, &mut h);
        let LoaderError::Host {
            index, err: got, ..
        } = e
        else {
            panic!("{e:?}")
        };
        assert_eq!((index, got), (cmds.len() - 1, err_kind), "{op}");
    }
    // A real allocator running out of FSEG.
    let mut h = FakeHost::new(&[("big", vec![0; 0x2_0000])]);
    let e = err(&[alloc("big", 16, ZONE_FSEG)], &mut h);
    assert_eq!(
        e,
        LoaderError::Host {
            index: 0,
            file: n("big"),
            op: "allocating",
            err: HostError::NoMemory
        }
    );
    assert_eq!(
        std::format!("{e}"),
        "table-loader command 0: allocating \"big\": out of memory"
    );
}

#[test]
fn write_pointers_happen_in_script_order() {
    let s = script(&[
        alloc("a", 8, ZONE_HIGH),
        wrptr("w", "a", 0, 4, 4),
        wrptr("w", "a", 4, 0, 4),
        wrptr("w", "a", 0, 8, 2),
    ]);
    let mut h = two_files();
    h.fixed_addr = Some(0x1000);
    let l = run_loader(&s, &mut h).unwrap();
    assert_eq!(l.pointers_written(), 3);
    let offs: Vec<(u32, Vec<u8>)> = h.writes.iter().map(|(_, o, b)| (*o, b.clone())).collect();
    assert_eq!(
        offs,
        [
            (0, vec![4, 0x10, 0, 0]),
            (4, vec![0, 0x10, 0, 0]),
            (0, vec![8, 0x10])
        ]
    );
    assert_eq!(h.files["w"], [8, 0x10, 0, 0, 0, 0x10, 0, 0]);
}

#[test]
fn decode_reports_commands() {
    let s = script(&[
        alloc("a", 0, ZONE_FSEG),
        raw(9, &[1]),
        raw(0, &[]),
        ptr("a", "b", 3, 8),
    ]);
    let cmds: Vec<Command> = decode_script(&s).unwrap().map(|c| c.unwrap()).collect();
    assert_eq!(
        cmds,
        [
            Command::Allocate {
                file: n("a"),
                align: 1,
                zone: Zone::FSeg
            },
            Command::Unknown(9),
            Command::Padding,
            Command::AddPointer {
                dest: n("a"),
                src: n("b"),
                offset: 3,
                size: 8
            },
        ]
    );
    assert!(decode_script(&s[..10]).is_err());
}

#[test]
fn encode_round_trips() {
    let cmds = [
        Command::Padding,
        Command::Unknown(0x1234_5678),
        Command::Allocate {
            file: n("etc/acpi/rsdp"),
            align: 16,
            zone: Zone::FSeg,
        },
        Command::Allocate {
            file: n("t"),
            align: 64,
            zone: Zone::High,
        },
        Command::AddPointer {
            dest: n("a"),
            src: n("b"),
            offset: 7,
            size: 4,
        },
        Command::AddChecksum {
            file: n("a"),
            result_offset: 9,
            start: 0,
            length: 36,
        },
        Command::WritePointer {
            dest: n("w"),
            src: n("a"),
            dst_offset: 0,
            src_offset: 40,
            size: 8,
        },
    ];
    for (i, c) in cmds.iter().enumerate() {
        assert_eq!(Command::decode(i, &c.encode()), Ok(*c));
    }
    // Same bytes as the zerocopy builders; the q35 script re-encodes exactly.
    assert_eq!(cmds[4].encode().as_slice(), ptr("a", "b", 7, 4));
    let re: Vec<u8> = decode_script(Q35_LOADER)
        .unwrap()
        .flat_map(|c| c.unwrap().encode())
        .collect();
    assert_eq!(re, Q35_LOADER);
    // Invalid values are encoded as given, and decode rejects them.
    let bad = Command::AddPointer {
        dest: n("a"),
        src: n("b"),
        offset: 0,
        size: 3,
    }
    .encode();
    assert_eq!(
        Command::decode(5, &bad),
        Err(LoaderError::BadPointerSize { index: 5, size: 3 })
    );
}
