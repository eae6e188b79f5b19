//! Hand-built damaged volumes: every case must yield an error, never a
//! panic or a hang.

use ember_block::MemDisk;
use ember_fat::{FatError, FileSystem};

/// A minimal FAT16 volume laid out by hand from the Microsoft spec:
/// 512-byte sectors, 1 sector/cluster, 1 reserved sector, one 33-sector
/// FAT, a 16-entry root directory, 8400 sectors (8365 clusters => FAT16).
struct Crafted {
    img: Vec<u8>,
}

const TOTAL: usize = 8400;
const FAT_START: usize = 512;
const ROOT_START: usize = 34 * 512;
const DATA_START: usize = 35 * 512;
const MAX_CLUSTER: u32 = 8365 + 1;

impl Crafted {
    fn new() -> Self {
        let mut img = vec![0u8; TOTAL * 512];
        let b = &mut img[..512];
        b[0..3].copy_from_slice(&[0xEB, 0x3C, 0x90]);
        b[3..11].copy_from_slice(b"EMBERFAT");
        b[11..13].copy_from_slice(&512u16.to_le_bytes()); // bytes/sector
        b[13] = 1; // sectors/cluster
        b[14..16].copy_from_slice(&1u16.to_le_bytes()); // reserved
        b[16] = 1; // FATs
        b[17..19].copy_from_slice(&16u16.to_le_bytes()); // root entries
        b[19..21].copy_from_slice(&(TOTAL as u16).to_le_bytes());
        b[21] = 0xF8;
        b[22..24].copy_from_slice(&33u16.to_le_bytes()); // FAT size
        b[38] = 0x29;
        b[39..43].copy_from_slice(&0xCAFEF00Du32.to_le_bytes());
        b[43..54].copy_from_slice(b"CRAFTED    ");
        b[54..62].copy_from_slice(b"FAT16   ");
        b[510] = 0x55;
        b[511] = 0xAA;
        let mut c = Crafted { img };
        c.fat(0, 0xFFF8);
        c.fat(1, 0xFFFF);
        c
    }
    fn fat(&mut self, cluster: u32, v: u16) {
        let o = FAT_START + cluster as usize * 2;
        self.img[o..o + 2].copy_from_slice(&v.to_le_bytes());
    }
    fn chain(&mut self, clusters: &[u32], end: Option<u32>) {
        for w in clusters.windows(2) {
            self.fat(w[0], w[1] as u16);
        }
        let last = *clusters.last().unwrap();
        self.fat(last, end.map_or(0xFFFF, |e| e as u16));
    }
    fn entry_at(&mut self, off: usize, name: &[u8; 11], attr: u8, cluster: u32, size: u32) {
        let e = &mut self.img[off..off + 32];
        e.fill(0);
        e[..11].copy_from_slice(name);
        e[11] = attr;
        e[20..22].copy_from_slice(&((cluster >> 16) as u16).to_le_bytes());
        e[26..28].copy_from_slice(&(cluster as u16).to_le_bytes());
        e[28..32].copy_from_slice(&size.to_le_bytes());
    }
    fn root(&mut self, i: usize, name: &[u8; 11], attr: u8, cluster: u32, size: u32) {
        self.entry_at(ROOT_START + i * 32, name, attr, cluster, size);
    }
    fn in_dir(&mut self, dir_cluster: u32, i: usize, name: &[u8; 11], attr: u8, cluster: u32) {
        self.entry_at(
            DATA_START + (dir_cluster as usize - 2) * 512 + i * 32,
            name,
            attr,
            cluster,
            0,
        );
    }
    fn mount(&self) -> Result<FileSystem<MemDisk>, FatError> {
        FileSystem::mount(MemDisk::from_bytes(self.img.clone()))
    }
}

#[test]
fn crafted_volume_is_valid() {
    // Baseline so the corrupt variants below differ only by the damage.
    let mut c = Crafted::new();
    c.root(0, b"HELLO   TXT", 0x20, 5, 700);
    c.chain(&[5, 6], None);
    c.img[DATA_START + 3 * 512..DATA_START + 3 * 512 + 5].copy_from_slice(b"hello");
    let mut fs = c.mount().unwrap();
    assert_eq!(fs.fat_type(), ember_fat::FatType::Fat16);
    assert_eq!(fs.volume_label(), Some("CRAFTED"));
    let data = fs.read_file("/hello.txt", 1000).unwrap();
    assert_eq!(data.len(), 700);
    assert_eq!(&data[..5], b"hello");
}

#[test]
fn chain_loop_is_detected() {
    let mut c = Crafted::new();
    c.root(0, b"LOOP    BIN", 0x20, 10, 20 * 512);
    c.chain(&[10, 11, 12], Some(10));
    // A directory whose own chain loops onto itself.
    c.root(1, b"DIRLOOP    ", 0x10, 20, 0);
    c.fat(20, 20);
    let mut fs = c.mount().unwrap();
    let err = fs.open("/LOOP.BIN").unwrap_err();
    assert_eq!(err, FatError::ChainLoop { first: 10 });
    assert!(err
        .to_string()
        .contains("cluster chain starting at 10 loops"));
    assert!(matches!(
        fs.read_file("/loop.bin", 1 << 20),
        Err(FatError::ChainLoop { .. })
    ));
    assert_eq!(
        fs.read_dir("/DIRLOOP").unwrap_err(),
        FatError::ChainLoop { first: 20 }
    );
    assert!(fs.remove("/LOOP.BIN").is_err());
}

#[test]
fn long_chain_looping_far_back_is_detected() {
    // 4000 contiguous clusters whose last link points back to the 10th: the
    // batched walk must still count every step and give up.
    let mut c = Crafted::new();
    let chain: Vec<u32> = (100..4100).collect();
    c.root(0, b"BIGLOOP BIN", 0x20, 100, 4000 * 512);
    c.chain(&chain, Some(110));
    // A short, sane file next to it.
    c.root(1, b"OK      BIN", 0x20, 5000, 512);
    c.chain(&[5000], None);
    let mut fs = c.mount().unwrap();
    assert_eq!(
        fs.open("/BIGLOOP.BIN").unwrap_err(),
        FatError::ChainLoop { first: 100 }
    );
    assert!(matches!(
        fs.read_file("/BIGLOOP.BIN", 1 << 30),
        Err(FatError::ChainLoop { .. })
    ));
    // A loop of one cluster onto itself, and a link to a free cluster.
    let mut c = Crafted::new();
    c.root(0, b"SELF    BIN", 0x20, 200, 3 * 512);
    c.fat(200, 200);
    c.root(1, b"FREE    BIN", 0x20, 300, 3 * 512);
    c.fat(300, 301); // 301 is free (0)
    let mut fs = c.mount().unwrap();
    assert_eq!(
        fs.open("/SELF.BIN").unwrap_err(),
        FatError::ChainLoop { first: 200 }
    );
    assert_eq!(
        fs.open("/FREE.BIN").unwrap_err(),
        FatError::BadCluster {
            cluster: 301,
            value: 0
        }
    );
}

#[test]
fn reads_follow_the_fat_after_it_changes() {
    // Two handles on one file; truncating through one must not leave the
    // other reading freed clusters from a stale run list.
    let mut c = Crafted::new();
    c.root(0, b"TWO     BIN", 0x20, 5, 700);
    c.chain(&[5, 6], None);
    let mut fs = c.mount().unwrap();
    let mut a = fs.open("/TWO.BIN").unwrap();
    let b = fs.open("/TWO.BIN").unwrap();
    let mut buf = [0u8; 100];
    assert_eq!(fs.read_at(&b, 600, &mut buf).unwrap(), 100);
    fs.set_len(&mut a, 100).unwrap();
    assert_eq!(
        fs.read_at(&b, 600, &mut buf).unwrap_err(),
        FatError::ChainLength {
            first: 5,
            expected: 2,
            found: 1
        }
    );
}

#[test]
fn very_fragmented_file_reads_correctly() {
    // 4100 clusters, none adjacent (every other cluster): more runs than are
    // cached, so reads fall back to following the chain.
    let mut c = Crafted::new();
    let chain: Vec<u32> = (0..4100).map(|k| 10 + 2 * k).collect();
    c.root(0, b"FRAG    BIN", 0x20, chain[0], 4100 * 512);
    c.chain(&chain, None);
    for (k, &cl) in chain.iter().enumerate() {
        let o = DATA_START + (cl as usize - 2) * 512;
        c.img[o..o + 4].copy_from_slice(&(k as u32).to_le_bytes());
    }
    let mut fs = c.mount().unwrap();
    let f = fs.open("/FRAG.BIN").unwrap();
    assert_eq!(fs.cluster_runs(&f).unwrap(), 4100);
    let data = fs.read_file("/FRAG.BIN", 1 << 30).unwrap();
    assert_eq!(data.len(), 4100 * 512);
    for k in 0..4100 {
        assert_eq!(
            data[k * 512..k * 512 + 4],
            (k as u32).to_le_bytes(),
            "cluster {k}"
        );
    }
    let mut buf = [0u8; 1024];
    assert_eq!(fs.read_at(&f, 4000 * 512 + 3, &mut buf).unwrap(), 1024);
    assert_eq!(buf[509..513], 4001u32.to_le_bytes());
    // A less fragmented one (two runs) through the cached run list.
    let mut c = Crafted::new();
    let chain: Vec<u32> = (20..30).chain(40..50).collect();
    c.root(0, b"TWORUNS BIN", 0x20, 20, 20 * 512 - 5);
    c.chain(&chain, None);
    for (k, &cl) in chain.iter().enumerate() {
        let o = DATA_START + (cl as usize - 2) * 512;
        c.img[o..o + 512].fill(k as u8);
    }
    let mut fs = c.mount().unwrap();
    let f = fs.open("/TWORUNS.BIN").unwrap();
    let mut buf = vec![0u8; 1024];
    let r0 = fs.device_mut().reads;
    assert_eq!(fs.read_at(&f, 9 * 512 + 256, &mut buf).unwrap(), 1024);
    // Across the run boundary: two requests, bounced head and tail included.
    assert!(fs.device_mut().reads - r0 <= 3);
    assert!(buf[..256].iter().all(|&b| b == 9));
    assert!(buf[256..768].iter().all(|&b| b == 10));
    assert!(buf[768..].iter().all(|&b| b == 11));
    assert_eq!(fs.read_at(&f, 20 * 512 - 10, &mut buf).unwrap(), 5);
}

#[test]
fn cross_linked_file_is_detected() {
    let mut c = Crafted::new();
    c.root(0, b"A       BIN", 0x20, 20, 3 * 512);
    c.chain(&[20, 21, 22], None);
    // B starts elsewhere but joins A's chain: 30 -> 21 -> 22.
    c.root(1, b"B       BIN", 0x20, 30, 2 * 512);
    c.fat(30, 21);
    let mut fs = c.mount().unwrap();
    assert_eq!(fs.read_file("/A.BIN", 1 << 20).unwrap().len(), 3 * 512);
    assert_eq!(
        fs.open("/B.BIN").unwrap_err(),
        FatError::ChainLength {
            first: 30,
            expected: 2,
            found: 3
        }
    );
}

#[test]
fn chain_shorter_than_size_is_detected() {
    let mut c = Crafted::new();
    c.root(0, b"SHORT   BIN", 0x20, 40, 5 * 512);
    c.chain(&[40, 41], None);
    let mut fs = c.mount().unwrap();
    assert_eq!(
        fs.open("/SHORT.BIN").unwrap_err(),
        FatError::ChainLength {
            first: 40,
            expected: 5,
            found: 2
        }
    );
}

#[test]
fn cluster_numbers_out_of_range() {
    let mut c = Crafted::new();
    c.root(0, b"FAR     BIN", 0x20, 60000, 512);
    c.root(1, b"NEXT    BIN", 0x20, 50, 2 * 512);
    c.fat(50, 9000); // beyond the last cluster (8366)
    c.root(2, b"FREE    BIN", 0x20, 52, 2 * 512);
    c.fat(52, 0); // a free cluster inside a chain
    c.root(3, b"SUBDIR     ", 0x10, 0, 0); // a subdirectory cannot be cluster 0
    let mut fs = c.mount().unwrap();
    assert_eq!(
        fs.open("/FAR.BIN").unwrap_err(),
        FatError::ClusterOutOfRange {
            cluster: 60000,
            max: MAX_CLUSTER
        }
    );
    assert_eq!(
        fs.open("/NEXT.BIN").unwrap_err(),
        FatError::BadCluster {
            cluster: 50,
            value: 9000
        }
    );
    assert_eq!(
        fs.open("/FREE.BIN").unwrap_err(),
        FatError::BadCluster {
            cluster: 52,
            value: 0
        }
    );
    assert!(matches!(
        fs.read_dir("/SUBDIR"),
        Err(FatError::ClusterOutOfRange { cluster: 0, .. })
    ));
}

#[test]
fn directory_pointing_at_itself_or_parent() {
    let mut c = Crafted::new();
    c.root(0, b"SUB        ", 0x10, 70, 0);
    c.fat(70, 0xFFFF);
    c.in_dir(70, 0, b".          ", 0x10, 70);
    c.in_dir(70, 1, b"..         ", 0x10, 0);
    c.in_dir(70, 2, b"SELF       ", 0x10, 70);
    c.in_dir(70, 3, b"CHILD      ", 0x10, 71);
    c.fat(71, 0xFFFF);
    c.in_dir(71, 0, b"BACK       ", 0x10, 70);
    let mut fs = c.mount().unwrap();
    assert_eq!(fs.read_dir("/SUB").unwrap().len(), 4);
    assert_eq!(
        fs.read_dir("/SUB/SELF").unwrap_err(),
        FatError::DirectoryCycle { cluster: 70 }
    );
    assert_eq!(
        fs.read_dir("/SUB/CHILD/BACK").unwrap_err(),
        FatError::DirectoryCycle { cluster: 70 }
    );
    // `..` is resolved along the path, so it terminates too.
    assert_eq!(fs.read_dir("/SUB/CHILD/..").unwrap().len(), 4);
    // A long path through real entries stays bounded by the path itself.
    let p = "/SUB/CHILD/../CHILD/../CHILD/../SELF";
    assert!(matches!(
        fs.read_dir(p),
        Err(FatError::DirectoryCycle { .. })
    ));
}

#[test]
fn truncated_device() {
    let mut c = Crafted::new();
    c.root(0, b"HELLO   TXT", 0x20, 5, 10);
    c.fat(5, 0xFFFF);
    let half = c.img[..TOTAL * 256].to_vec();
    let err = FileSystem::mount(MemDisk::from_bytes(half)).err().unwrap();
    assert_eq!(
        err,
        FatError::VolumeTruncated {
            volume_bytes: TOTAL as u64 * 512,
            device_bytes: TOTAL as u64 * 256
        }
    );
    assert!(err.to_string().contains("truncated"));
    assert!(FileSystem::mount(MemDisk::from_bytes(Vec::new())).is_err());
    assert!(FileSystem::mount(MemDisk::from_bytes(c.img[..100].to_vec())).is_err());
}

#[test]
fn bogus_boot_sectors() {
    type Patch = fn(&mut [u8]);
    let cases: &[(&str, Patch)] = &[
        ("bytes/sector 1000", |b| {
            b[11..13].copy_from_slice(&1000u16.to_le_bytes())
        }),
        ("bytes/sector 256", |b| {
            b[11..13].copy_from_slice(&256u16.to_le_bytes())
        }),
        ("bytes/sector 8192", |b| {
            b[11..13].copy_from_slice(&8192u16.to_le_bytes())
        }),
        ("sectors/cluster 3", |b| b[13] = 3),
        ("sectors/cluster 0", |b| b[13] = 0),
        ("reserved 0", |b| b[14..16].fill(0)),
        ("no FATs", |b| b[16] = 0),
        ("no root entries", |b| b[17..19].fill(0)),
        ("no sectors", |b| b[19..21].fill(0)),
        ("FAT size 0", |b| b[22..24].fill(0)),
        ("FAT too small", |b| {
            b[22..24].copy_from_slice(&2u16.to_le_bytes())
        }),
        ("FAT bigger than volume", |b| {
            b[22..24].copy_from_slice(&9000u16.to_le_bytes())
        }),
        ("no signature", |b| b[510] = 0),
        ("all zero", |b| b.fill(0)),
    ];
    for (what, patch) in cases {
        let mut c = Crafted::new();
        patch(&mut c.img[..512]);
        match c.mount() {
            Err(FatError::InvalidBootSector(msg)) => assert!(!msg.is_empty()),
            Err(e) => panic!("{what}: unexpected error kind {e}"),
            Ok(_) => panic!("{what}: bogus BPB was accepted"),
        }
    }
}

/// Cheap deterministic generator for the damage fuzzing below.
fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

#[test]
fn random_damage_never_panics() {
    let mut base = Crafted::new();
    base.root(0, b"SUB        ", 0x10, 70, 0);
    base.fat(70, 0xFFFF);
    base.in_dir(70, 0, b"A       BIN", 0x20, 80);
    base.img[DATA_START + 68 * 512 + 28..DATA_START + 68 * 512 + 32]
        .copy_from_slice(&2000u32.to_le_bytes());
    base.chain(&[80, 81, 82, 83], None);
    base.root(1, b"B       BIN", 0x20, 90, 1500);
    base.chain(&[90, 95, 91], None);
    let mut seed = 0x1234_5678_9ABC_DEF1u64;
    for _ in 0..300 {
        let mut c = Crafted {
            img: base.img.clone(),
        };
        for _ in 0..(xorshift(&mut seed) % 40 + 1) {
            // Damage the boot sector, FAT head, root and the first data clusters.
            let region = [
                0..512,
                FAT_START..FAT_START + 256,
                ROOT_START..ROOT_START + 512,
                DATA_START + 68 * 512..DATA_START + 96 * 512,
            ];
            let r = &region[(xorshift(&mut seed) % 4) as usize];
            let pos = r.start + (xorshift(&mut seed) as usize % (r.end - r.start));
            c.img[pos] = xorshift(&mut seed) as u8;
        }
        let Ok(mut fs) = c.mount() else { continue };
        for dir in ["/", "/SUB"] {
            if let Ok(list) = fs.read_dir(dir) {
                for e in list.iter().filter(|e| !e.is_dot()) {
                    let path = format!("{dir}/{}", e.name);
                    let _ = fs.read_dir(&path);
                    let _ = fs.read_file(&path, 1 << 20);
                }
            }
        }
        let _ = fs.create_file("/SUB/new file.txt");
        let _ = fs.remove("/B.BIN");
        let _ = fs.flush();
    }
}
