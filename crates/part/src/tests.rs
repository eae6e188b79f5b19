//! Host tests: images are built by `sgdisk`/`sfdisk` (independent tools),
//! then read back through `FileDisk`/`MemDisk`.

extern crate std;

use super::*;
use alloc::string::ToString;
use ember_block::{FileDisk, MemDisk};
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

const SECTOR: usize = 512;
// Offsets from UEFI spec Table 5.5 (header) and 5.6 (entry); used only to
// corrupt images on purpose.
const HDR_CRC: usize = 16;
const HDR_DISK_GUID: usize = 56;
const HDR_NUM_ENTRIES: usize = 80;
const HDR_ENTRY_SIZE: usize = 84;
const HDR_ARRAY_CRC: usize = 88;
const ENT_START: usize = 32;

const DISK_GUID: &str = "11111111-2222-3333-4444-555555555555";
const ESP_UUID: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const BOOT_UUID: &str = "aaaaaaaa-0000-4000-8000-000000000002";
const ROOT_UUID: &str = "aaaaaaaa-0000-4000-8000-000000000003";

fn tmp(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(std::format!(
        "ember-part-{}-{n}-{name}.img",
        std::process::id()
    ))
}

fn run(tool: &str, args: &[&str], stdin: Option<&str>) {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {tool} ({e}); install it: apt-get install -y gdisk fdisk")
        });
    if let Some(s) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        std::string::String::from_utf8_lossy(&out.stderr)
    );
}

/// An 8 MiB (16384-sector) GPT disk: ESP, XBOOTLDR (non-ASCII name), Linux
/// root (attribute bit 60 set).
fn gpt_image() -> PathBuf {
    let p = tmp("gpt");
    fs::File::create(&p).unwrap().set_len(8 << 20).unwrap();
    let img = p.to_str().unwrap();
    #[rustfmt::skip]
    run("sgdisk", &[
        "-o", "-U", DISK_GUID,
        "-n", "1:2048:+1M", "-t", "1:ef00", "-c", "1:EFI System", "-u", &std::format!("1:{ESP_UUID}"),
        "-n", "2:0:+2M", "-t", "2:ea00", "-c", "2:grüße ☃", "-u", &std::format!("2:{BOOT_UUID}"),
        "-n", "3:0:0", "-t", "3:8300", "-A", "3:set:60", "-u", &std::format!("3:{ROOT_UUID}"),
        img,
    ], None);
    p
}

struct Img {
    path: PathBuf,
}

impl Img {
    fn new(path: PathBuf) -> Self {
        Img { path }
    }
    fn bytes(&self) -> std::vec::Vec<u8> {
        fs::read(&self.path).unwrap()
    }
    fn write(&self, data: &[u8]) {
        fs::write(&self.path, data).unwrap();
    }
    fn read(&self) -> Result<PartitionTable, PartError> {
        let mut d = FileDisk::open(&self.path, false).unwrap();
        read_partitions(&mut d)
    }
}

impl Drop for Img {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn crc32(b: &[u8]) -> u32 {
    crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(b)
}

fn put_u32(d: &mut [u8], off: usize, v: u32) {
    d[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn get_u32(d: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(d[off..off + 4].try_into().unwrap())
}

/// Recompute the header CRC of the header at byte offset `h` (after a test
/// edited it on purpose), so later checks are what reject it.
fn fix_header_crc(d: &mut [u8], h: usize) {
    let size = get_u32(d, h + 12) as usize;
    put_u32(d, h + HDR_CRC, 0);
    let c = crc32(&d[h..h + size]);
    put_u32(d, h + HDR_CRC, c);
}

/// Recompute the primary array CRC (128 × 128 bytes at LBA 2) and header CRC.
fn fix_primary(d: &mut [u8]) {
    let c = crc32(&d[2 * SECTOR..2 * SECTOR + 128 * 128]);
    put_u32(d, SECTOR + HDR_ARRAY_CRC, c);
    fix_header_crc(d, SECTOR);
}

fn has_warning(t: &PartitionTable, needle: &str) -> bool {
    t.warnings.iter().any(|w| w.contains(needle))
}

fn check_reference_partitions(t: &PartitionTable) {
    assert_eq!(t.scheme, Scheme::Gpt);
    assert_eq!(t.disk_guid.unwrap().to_string(), DISK_GUID);
    // Expected geometry from `sgdisk -p`: 1: 2048-4095, 2: 4096-8191,
    // 3: 8192-16350 (last usable = 16384 - 1 header - 32 array - 1).
    let p = &t.partitions;
    assert_eq!(p.len(), 3);
    assert_eq!(
        (p[0].number, p[0].first_lba, p[0].num_blocks),
        (1, 2048, 2048)
    );
    assert_eq!(
        (p[1].number, p[1].first_lba, p[1].num_blocks),
        (2, 4096, 4096)
    );
    assert_eq!(
        (p[2].number, p[2].first_lba, p[2].num_blocks),
        (3, 8192, 8159)
    );
    assert_eq!(p[0].kind, PartKind::EfiSystem);
    assert_eq!(p[1].kind, PartKind::Xbootldr);
    assert_eq!(p[2].kind, PartKind::LinuxFs);
    assert_eq!(p[0].type_guid, Some(Guid::ESP));
    assert_eq!(p[0].unique_guid.unwrap().to_string(), ESP_UUID);
    assert_eq!(p[1].unique_guid.unwrap().to_string(), BOOT_UUID);
    assert_eq!(p[2].unique_guid.unwrap().to_string(), ROOT_UUID);
    assert_eq!(p[0].name, "EFI System");
    assert_eq!(p[1].name, "grüße ☃");
    assert_eq!(p[2].name, "");
    assert_eq!(p[2].attributes, 1 << 60);
    assert_eq!(p[0].attributes, 0);
    assert!(p.iter().all(|x| x.mbr_type.is_none()));
}

#[test]
fn sgdisk_image_reads_from_primary() {
    let img = Img::new(gpt_image());
    let t = img.read().unwrap();
    check_reference_partitions(&t);
    assert_eq!(t.gpt_copy, Some(GptCopy::Primary));
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
}

#[test]
fn corrupt_primary_header_falls_back_to_backup() {
    let img = Img::new(gpt_image());
    let mut d = img.bytes();
    d[SECTOR + HDR_DISK_GUID] ^= 0xFF;
    img.write(&d);
    let t = img.read().unwrap();
    check_reference_partitions(&t);
    assert_eq!(t.gpt_copy, Some(GptCopy::Backup));
    assert!(has_warning(&t, "primary GPT is bad"), "{:?}", t.warnings);
    assert!(has_warning(&t, "LBA 1 CRC mismatch"), "{:?}", t.warnings);
    assert!(
        has_warning(&t, "using backup at LBA 16383"),
        "{:?}",
        t.warnings
    );
}

#[test]
fn corrupt_primary_array_falls_back_to_backup() {
    let img = Img::new(gpt_image());
    let mut d = img.bytes();
    d[2 * SECTOR + 40] ^= 0x01; // start LBA of entry 1
    img.write(&d);
    let t = img.read().unwrap();
    check_reference_partitions(&t);
    assert_eq!(t.gpt_copy, Some(GptCopy::Backup));
    assert!(
        has_warning(&t, "entry array of header at LBA 1 CRC mismatch"),
        "{:?}",
        t.warnings
    );
}

#[test]
fn corrupt_backup_only_warns() {
    let img = Img::new(gpt_image());
    let mut d = img.bytes();
    let last = d.len() - SECTOR;
    d[last + HDR_DISK_GUID] ^= 0xFF;
    img.write(&d);
    let t = img.read().unwrap();
    check_reference_partitions(&t);
    assert_eq!(t.gpt_copy, Some(GptCopy::Primary));
    assert!(has_warning(&t, "backup GPT is bad"), "{:?}", t.warnings);
}

#[test]
fn both_copies_corrupt_is_an_error() {
    let img = Img::new(gpt_image());
    let mut d = img.bytes();
    let last = d.len() - SECTOR;
    d[SECTOR + HDR_DISK_GUID] ^= 0xFF;
    d[last + HDR_DISK_GUID] ^= 0xFF;
    img.write(&d);
    let e = img.read().unwrap_err();
    assert!(
        matches!(
            e,
            PartError::BothGptCopiesBad {
                primary: GptError::HeaderCrc { lba: 1, .. },
                backup: GptError::HeaderCrc { lba: 16383, .. }
            }
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(msg.contains("both GPT copies are bad"), "{msg}");
    assert!(msg.contains("LBA 1") && msg.contains("LBA 16383"), "{msg}");
}

#[test]
fn absurd_entry_count_and_size_are_rejected() {
    for (field, value, check) in [
        (HDR_NUM_ENTRIES, u32::MAX, "too many entries"),
        (HDR_NUM_ENTRIES, MAX_ENTRIES + 1, "too many entries"),
        (HDR_ENTRY_SIZE, 8, "invalid entry size 8"),
        (HDR_ENTRY_SIZE, 129, "invalid entry size 129"),
        (HDR_ENTRY_SIZE, 0x8000_0000, "invalid entry size"),
    ] {
        let img = Img::new(gpt_image());
        let mut d = img.bytes();
        put_u32(&mut d, SECTOR + field, value);
        fix_header_crc(&mut d, SECTOR);
        img.write(&d);
        let t = img.read().unwrap();
        assert_eq!(t.gpt_copy, Some(GptCopy::Backup));
        assert!(has_warning(&t, check), "{value}: {:?}", t.warnings);
        check_reference_partitions(&t);

        // The same damage in the backup too: a clean error.
        let last = d.len() - SECTOR;
        put_u32(&mut d, last + field, value);
        fix_header_crc(&mut d, last);
        img.write(&d);
        let e = img.read().unwrap_err();
        assert!(matches!(e, PartError::BothGptCopiesBad { .. }), "{e:?}");
        assert!(e.to_string().contains(check), "{e}");
    }
}

#[test]
fn array_of_1024_entries_larger_than_limit_is_rejected() {
    // 1024 entries of 4096 bytes = 4 MiB > MAX_ARRAY_BYTES.
    let img = Img::new(gpt_image());
    let mut d = img.bytes();
    put_u32(&mut d, SECTOR + HDR_NUM_ENTRIES, 1024);
    put_u32(&mut d, SECTOR + HDR_ENTRY_SIZE, 4096);
    fix_header_crc(&mut d, SECTOR);
    img.write(&d);
    let t = img.read().unwrap();
    assert_eq!(t.gpt_copy, Some(GptCopy::Backup));
    assert!(
        has_warning(&t, "too many entries (1024 x 4096"),
        "{:?}",
        t.warnings
    );
}

#[test]
fn truncated_disk_is_an_error() {
    let img = Img::new(gpt_image());
    let d = img.bytes();
    img.write(&d[..4 << 20]);
    let e = img.read().unwrap_err();
    // Primary's usable range now runs off the 8192-block disk; the last
    // block is partition data, not a backup header.
    assert!(
        matches!(
            e,
            PartError::BothGptCopiesBad {
                primary: GptError::UsableRange {
                    lba: 1,
                    last: 16350,
                    disk_blocks: 8192,
                    ..
                },
                backup: GptError::Signature { lba: 8191 }
            }
        ),
        "{e:?}"
    );
}

#[test]
fn tiny_disks_do_not_panic() {
    let img = Img::new(gpt_image());
    let d = img.bytes();
    for len in [512usize, 1024, 2 * 512 + 100, 3 * 512, 34 * 512] {
        img.write(&d[..len]);
        let e = img.read().unwrap_err();
        assert!(
            matches!(e, PartError::BothGptCopiesBad { .. }),
            "{len}: {e:?}"
        );
    }
    assert_eq!(
        read_partitions(&mut MemDisk::from_bytes(std::vec::Vec::new())),
        Err(PartError::EmptyDisk)
    );
}

#[test]
fn overlapping_and_out_of_range_entries_are_skipped() {
    let img = Img::new(gpt_image());
    let mut d = img.bytes();
    // Entry 2 (XBOOTLDR) now starts inside entry 1.
    let e2 = 2 * SECTOR + 128;
    d[e2 + ENT_START..e2 + ENT_START + 8].copy_from_slice(&3000u64.to_le_bytes());
    // Entry 3 ends beyond the last usable LBA.
    let e3 = 2 * SECTOR + 256;
    d[e3 + ENT_START + 8..e3 + ENT_START + 16].copy_from_slice(&16383u64.to_le_bytes());
    fix_primary(&mut d);
    img.write(&d);
    let t = img.read().unwrap();
    assert_eq!(t.gpt_copy, Some(GptCopy::Primary));
    assert_eq!(t.partitions.len(), 1);
    assert_eq!(t.partitions[0].number, 1);
    assert!(
        has_warning(&t, "GPT entry 2: LBA range 3000..=8191 overlaps entry 1"),
        "{:?}",
        t.warnings
    );
    assert!(
        has_warning(&t, "GPT entry 3: LBA range 8192..=16383 is outside"),
        "{:?}",
        t.warnings
    );
}

#[test]
fn missing_protective_mbr_still_finds_gpt() {
    let img = Img::new(gpt_image());
    let mut d = img.bytes();
    d[..SECTOR].fill(0);
    img.write(&d);
    let t = img.read().unwrap();
    check_reference_partitions(&t);
    assert!(has_warning(&t, "no protective MBR"), "{:?}", t.warnings);
}

#[test]
fn no_table_at_all() {
    let p = tmp("blank");
    fs::File::create(&p).unwrap().set_len(1 << 20).unwrap();
    let img = Img::new(p);
    let e = img.read().unwrap_err();
    assert_eq!(e, PartError::NoPartitionTable);
    assert!(e.to_string().contains("0x55AA"));
}

#[test]
fn sfdisk_mbr_with_esp_and_linux() {
    let p = tmp("mbr");
    fs::File::create(&p).unwrap().set_len(8 << 20).unwrap();
    run(
        "sfdisk",
        &["--no-reread", "--no-tell-kernel", "-q", p.to_str().unwrap()],
        Some("label: dos\nstart=2048, size=4096, type=ef, bootable\nstart=6144, size=8192, type=83\nstart=14336, type=5\n"),
    );
    let img = Img::new(p);
    let t = img.read().unwrap();
    assert_eq!(t.scheme, Scheme::Mbr);
    assert_eq!(t.disk_guid, None);
    assert_eq!(t.gpt_copy, None);
    let p = &t.partitions;
    assert_eq!(p.len(), 2);
    assert_eq!(
        (p[0].number, p[0].first_lba, p[0].num_blocks),
        (1, 2048, 4096)
    );
    assert_eq!(
        (p[0].kind, p[0].mbr_type, p[0].attributes),
        (PartKind::EfiSystem, Some(0xEF), 1 << 2)
    );
    assert_eq!(
        (p[1].number, p[1].first_lba, p[1].num_blocks),
        (2, 6144, 8192)
    );
    assert_eq!(
        (p[1].kind, p[1].mbr_type, p[1].attributes),
        (PartKind::LinuxFs, Some(0x83), 0)
    );
    assert!(
        has_warning(&t, "MBR partition 3 is an extended partition"),
        "{:?}",
        t.warnings
    );
}

#[test]
fn mbr_entries_off_disk_or_overlapping_are_skipped() {
    let p = tmp("mbr2");
    fs::File::create(&p).unwrap().set_len(8 << 20).unwrap();
    run(
        "sfdisk",
        &["--no-reread", "--no-tell-kernel", "-q", p.to_str().unwrap()],
        Some("label: dos\nstart=2048, size=4096, type=ef\nstart=6144, size=4096, type=83\n"),
    );
    let img = Img::new(p);
    // Shrink the image so partition 2 (6144..10240) runs off the end.
    let d = img.bytes();
    img.write(&d[..8192 * SECTOR]);
    let t = img.read().unwrap();
    assert_eq!(t.partitions.len(), 1);
    assert!(
        has_warning(&t, "MBR partition 2: blocks 6144..10240 do not fit"),
        "{:?}",
        t.warnings
    );

    // Slot 2's start LBA (MBR offset 446 + 16 + 8) moved inside slot 1.
    let mut d = img.bytes();
    d[446 + 16 + 8..446 + 16 + 12].copy_from_slice(&3000u32.to_le_bytes());
    img.write(&d);
    let t = img.read().unwrap();
    assert_eq!(t.partitions.len(), 1);
    assert!(
        has_warning(&t, "MBR partition 2: blocks 3000..7096 overlap partition 1"),
        "{:?}",
        t.warnings
    );
}

#[test]
fn bad_block_size_is_rejected() {
    let mut d = MemDisk::new(8);
    d.block_size = 1000;
    assert_eq!(read_partitions(&mut d), Err(PartError::BadBlockSize(1000)));
}

/// Tiny deterministic PRNG so the mutation test is reproducible.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn random_mutations_never_panic() {
    // A small GPT (512 blocks) so cloning per iteration is cheap.
    let p = tmp("fuzz");
    fs::File::create(&p).unwrap().set_len(512 * 512).unwrap();
    let path = p.to_str().unwrap();
    run(
        "sgdisk",
        &[
            "-o",
            "-a",
            "8",
            "-n",
            "1:40:+64K",
            "-t",
            "1:ef00",
            "-n",
            "2:0:0",
            path,
        ],
        None,
    );
    let img = Img::new(p);
    let base = MemDisk::from_bytes(img.bytes());
    assert_eq!(
        read_partitions(&mut base.clone()).unwrap().partitions.len(),
        2
    );
    let mut rng = Lcg(0x5eed);
    let n = base.data.len();
    let hot = [0..3 * SECTOR, n - 33 * SECTOR..n];
    let mut outcomes = [0usize; 2];
    for _ in 0..3000 {
        let mut d = base.clone();
        for _ in 0..(1 + rng.next() % 6) {
            let r = &hot[(rng.next() % 2) as usize];
            let at = r.start + (rng.next() as usize % r.len());
            d.data[at] = rng.next() as u8;
        }
        // Half the time re-sign the headers so the deeper checks run.
        if rng.next().is_multiple_of(2) {
            let last = n - SECTOR;
            for h in [SECTOR, last] {
                let size = get_u32(&d.data, h + 12) as usize;
                if (92..=512).contains(&size) {
                    fix_header_crc(&mut d.data, h);
                }
            }
        }
        let r = read_partitions(&mut d);
        if let Err(e) = &r {
            assert!(!e.to_string().is_empty());
        }
        outcomes[r.is_ok() as usize] += 1;
    }
    // Both outcomes must actually occur, or the test is not exercising much.
    assert!(outcomes[0] > 100 && outcomes[1] > 100, "{outcomes:?}");
}

#[test]
fn pure_garbage_never_panics() {
    let mut rng = Lcg(42);
    for blocks in [1u64, 2, 3, 40, 100] {
        for _ in 0..50 {
            let mut d = MemDisk::new(blocks);
            for b in d.data.iter_mut() {
                *b = rng.next() as u8;
            }
            // Make LBA 0 look like a protective MBR half of the time.
            if rng.next().is_multiple_of(2) {
                d.data[446 + 4] = 0xEE;
                d.data[510] = 0x55;
                d.data[511] = 0xAA;
                if blocks > 1 {
                    d.data[512..520].copy_from_slice(b"EFI PART");
                }
            }
            let _ = read_partitions(&mut d);
        }
    }
}

#[test]
fn grown_disk_finds_backup_through_alternate_lba() {
    let img = Img::new(gpt_image());
    let mut d = img.bytes();
    // Disk grew by 1 MiB: the backup stays at LBA 16383, no longer last.
    d.resize(d.len() + (1 << 20), 0);
    img.write(&d);
    let t = img.read().unwrap();
    assert_eq!(t.gpt_copy, Some(GptCopy::Primary));
    assert!(
        has_warning(
            &t,
            "backup GPT header is at LBA 16383, not the last LBA 18431"
        ),
        "{:?}",
        t.warnings
    );

    // Primary array broken: the header is still trusted, so its
    // alternate_lba (16383) leads to the backup even though the last LBA
    // holds nothing.
    d[2 * SECTOR + 40] ^= 0x01;
    img.write(&d);
    let t = img.read().unwrap();
    check_reference_partitions(&t);
    assert_eq!(t.gpt_copy, Some(GptCopy::Backup));
    assert!(
        has_warning(&t, "using backup at LBA 16383"),
        "{:?}",
        t.warnings
    );
}
