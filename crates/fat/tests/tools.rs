//! Images made by mkfs.fat/mtools read by Ember, and images written by Ember
//! checked with fsck.fat and mtools.

mod common;

use common::*;
use ember_block::{FileDisk, MemDisk};
use ember_fat::{FatError, FatType, FileSystem};

/// (FAT bits, image KiB, mkfs options) covering each FAT type.
fn configs() -> [(u8, u32, &'static [&'static str], FatType); 3] {
    [
        (12, 2048, &["-s", "1"], FatType::Fat12),
        (16, 16384, &["-s", "4"], FatType::Fat16),
        (32, 40960, &["-s", "1"], FatType::Fat32),
    ]
}

fn read_scenario(bits: u8, kib: u32, opts: &[&str], ty: FatType) {
    let s = Scratch::new(&format!("read{bits}"));
    let img = s.path("disk.img");
    let mut o = opts.to_vec();
    o.extend_from_slice(&["-n", "EMBERTEST", "-i", "1234ABCD"]);
    mkfs(&img, bits, kib, &o);
    mmd(&img, "/EFI");
    mmd(&img, "/EFI/BOOT");
    mmd(&img, "/loader");
    mmd(&img, "/loader/entries");
    let boot = pattern(70_000, 1);
    put(&s, &img, "/EFI/BOOT/BOOTX64.EFI", &boot);
    let entry = b"title Arch Linux\nlinux /vmlinuz-linux\n".to_vec();
    put(
        &s,
        &img,
        "/loader/entries/Arch Linux (fallback).conf",
        &entry,
    );
    let long = "A very long file name that needs several LFN slots.bin";
    let long_data = pattern(1234, 2);
    put(&s, &img, &format!("/{long}"), &long_data);
    put(&s, &img, "/empty.txt", b"");
    // Fragment the free space: write small files, delete every other one,
    // then write a file big enough to need the holes.
    let cs: usize = if bits == 16 { 2048 } else { 512 };
    for i in 0..8 {
        put(
            &s,
            &img,
            &format!("/small{i}.dat"),
            &pattern(3 * cs, 100 + i),
        );
    }
    for i in (0..8).step_by(2) {
        mdel(&img, &format!("/small{i}.dat"));
    }
    if bits == 32 {
        // mtools honours the FSInfo next-free hint and would skip the holes;
        // mark the hint unknown (a valid state) so allocation starts low.
        let mut bytes = std::fs::read(&img).unwrap();
        let fsinfo = u16::from_le_bytes([bytes[48], bytes[49]]) as usize * 512;
        bytes[fsinfo + 492..fsinfo + 496].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&img, bytes).unwrap();
    }
    let big = pattern(40 * cs + 77, 3);
    put(&s, &img, "/big.bin", &big);

    let disk = FileDisk::open(&img, false).unwrap();
    let mut fs = FileSystem::mount(disk).unwrap();
    assert_eq!(fs.fat_type(), ty);
    assert_eq!(fs.volume_label(), Some("EMBERTEST"));
    assert_eq!(fs.volume_id(), Some(0x1234_ABCD));
    assert_eq!(fs.cluster_size() as usize, cs);

    assert_eq!(
        fs.read_file("/EFI/BOOT/BOOTX64.EFI", 1 << 20).unwrap(),
        boot
    );
    // Case-insensitive, either separator, no leading separator.
    assert_eq!(
        fs.read_file("efi\\boot\\bootx64.efi", 1 << 20).unwrap(),
        boot
    );
    assert_eq!(
        fs.read_file("/LOADER/ENTRIES/arch linux (FALLBACK).CONF", 4096)
            .unwrap(),
        entry
    );
    assert_eq!(
        fs.read_file(&format!("/{}", long.to_uppercase()), 4096)
            .unwrap(),
        long_data
    );
    assert_eq!(
        fs.read_file("/EFI/./BOOT/../BOOT/BOOTX64.EFI", 1 << 20)
            .unwrap(),
        boot
    );
    assert_eq!(fs.read_file("/empty.txt", 10).unwrap(), b"");
    assert!(matches!(
        fs.read_file("/EFI/BOOT/BOOTX64.EFI", 100),
        Err(FatError::TooLarge { .. })
    ));
    assert!(matches!(
        fs.read_file("/nope", 100),
        Err(FatError::NotFound(_))
    ));
    assert!(matches!(
        fs.read_file("/EFI", 100),
        Err(FatError::IsADirectory(_))
    ));
    assert!(matches!(
        fs.read_dir("/big.bin/x"),
        Err(FatError::NotADirectory(_))
    ));

    // 8.3 alias of the long name also resolves.
    let root = fs.read_dir("/").unwrap();
    let e = root
        .iter()
        .find(|e| e.name == long)
        .expect("long name listed");
    assert!(e.short_name.contains('~'), "alias {}", e.short_name);
    assert_eq!(
        fs.read_file(&e.short_name.clone(), 4096).unwrap(),
        long_data
    );
    let names: Vec<&str> = root.iter().map(|e| e.name.as_str()).collect();
    for want in [
        "EFI",
        "loader",
        "big.bin",
        "empty.txt",
        "small1.dat",
        "small7.dat",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(!names.contains(&"small0.dat"));

    let st = fs.stat("/EFI/BOOT").unwrap();
    assert!(st.is_dir);
    let listing = fs.read_dir("/EFI/BOOT").unwrap();
    assert_eq!(listing.iter().filter(|e| !e.is_dot()).count(), 1);
    assert_eq!(
        fs.stat("/EFI/BOOT/BOOTX64.EFI").unwrap().size,
        boot.len() as u64
    );
    assert!(fs.stat("/").unwrap().is_dir);

    // The big file really is fragmented, and reads back correctly whole and
    // in odd-sized pieces crossing fragment boundaries.
    let f = fs.open("/big.bin").unwrap();
    assert!(
        fs.cluster_runs(&f).unwrap() >= 3,
        "big.bin should be fragmented"
    );
    assert_eq!(fs.read_file("/big.bin", 1 << 20).unwrap(), big);
    let mut got = Vec::new();
    let mut off = 0u64;
    let mut chunk = vec![0u8; 1000];
    loop {
        let n = fs.read_at(&f, off, &mut chunk).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&chunk[..n]);
        off += n as u64;
    }
    assert_eq!(got, big);
    // Random access backwards after sequential reads (hint must not be misused).
    let mut b = vec![0u8; 3000];
    assert_eq!(fs.read_at(&f, 5, &mut b).unwrap(), 3000);
    assert_eq!(b, big[5..3005]);
    assert_eq!(fs.read_at(&f, big.len() as u64 - 10, &mut b).unwrap(), 10);
    assert_eq!(&b[..10], &big[big.len() - 10..]);
    assert_eq!(fs.read_at(&f, big.len() as u64 + 5, &mut b).unwrap(), 0);
}

#[test]
fn reads_mtools_fat12() {
    let (b, k, o, t) = configs()[0];
    read_scenario(b, k, o, t);
}

#[test]
fn reads_mtools_fat16() {
    let (b, k, o, t) = configs()[1];
    read_scenario(b, k, o, t);
}

#[test]
fn reads_mtools_fat32() {
    let (b, k, o, t) = configs()[2];
    read_scenario(b, k, o, t);
}

#[test]
fn contiguous_file_is_read_in_constant_requests() {
    let s = Scratch::new("perf");
    let img = s.path("disk.img");
    mkfs(&img, 32, 40960, &["-s", "1"]);
    let data = pattern(8 << 20, 9);
    put(&s, &img, "/vmlinuz", &data);
    let mut fs = FileSystem::mount(MemDisk::from_bytes(std::fs::read(&img).unwrap())).unwrap();
    assert_eq!(fs.fat_type(), FatType::Fat32);
    let before_open = fs.device_mut().reads;
    let f = fs.open("/vmlinuz").unwrap();
    assert_eq!(fs.cluster_runs(&f).unwrap(), 1);
    let mut buf = vec![0u8; data.len()];
    let before_read = fs.device_mut().reads;
    assert_eq!(fs.read_at(&f, 0, &mut buf).unwrap(), data.len());
    let after = fs.device_mut().reads;
    assert!(buf == data, "content mismatch");
    // 16384 clusters of 512 bytes: one request for the data (the FAT windows
    // were cached while open() checked the chain)...
    assert_eq!(
        after - before_read,
        1,
        "whole-file read should be one request"
    );
    // ...and the open itself needs only the directory plus a few FAT windows.
    assert!(
        before_read - before_open <= 8,
        "open took {} reads",
        before_read - before_open
    );

    // A fresh mount with an unaligned read: head and tail bounce, middle direct.
    let mut fs = FileSystem::mount(MemDisk::from_bytes(std::fs::read(&img).unwrap())).unwrap();
    let f = fs.open("/vmlinuz").unwrap();
    let r0 = fs.device_mut().reads;
    let mut buf = vec![0u8; data.len() - 1000];
    assert_eq!(fs.read_at(&f, 300, &mut buf).unwrap(), buf.len());
    assert!(buf[..] == data[300..data.len() - 700]);
    assert!(fs.device_mut().reads - r0 <= 3);
}

#[test]
fn kernel_sized_file_opens_and_reads_in_few_requests() {
    // The shape of Ember's boot: a 14 MiB kernel on a FAT32 ESP with 512-byte
    // clusters (28,672 clusters, 112 KiB of FAT), opened, then read whole.
    let s = Scratch::new("kernel");
    let img = s.path("disk.img");
    mkfs(&img, 32, 65536, &["-s", "1"]);
    mmd(&img, "/ember");
    let data = pattern(14 << 20, 14);
    put(&s, &img, "/ember/linux", &data);
    let mut fs = FileSystem::mount(MemDisk::from_bytes(std::fs::read(&img).unwrap())).unwrap();
    let r0 = fs.device_mut().reads;
    let f = fs.open("/ember/linux").unwrap();
    let r1 = fs.device_mut().reads;
    let mut buf = vec![0u8; data.len()];
    assert_eq!(fs.read_at(&f, 0, &mut buf).unwrap(), data.len());
    let r2 = fs.device_mut().reads;
    assert!(buf == data, "content mismatch");
    // Directories (root and /ember, parent re-read for the entry slot) plus
    // the 112 KiB of FAT in 64 KiB windows: two FAT reads, not 28,672.
    assert!(r1 - r0 <= 6, "open took {} reads", r1 - r0);
    // The read reuses the runs open() found: no FAT access at all, one
    // request for the one run.
    assert_eq!(r2 - r1, 1, "read took {} requests", r2 - r1);
    // Further reads (a header, then the rest) stay one request each.
    let mut head = [0u8; 4096];
    assert_eq!(fs.read_at(&f, 0, &mut head).unwrap(), head.len());
    assert_eq!(
        fs.read_at(&f, 8 << 20, &mut buf[..1 << 20]).unwrap(),
        1 << 20
    );
    assert_eq!(fs.device_mut().reads - r2, 2);
    assert!(buf[..1 << 20] == data[8 << 20..9 << 20]);
}

fn fsck_ok(img: &std::path::Path) {
    let out = std::process::Command::new("fsck.fat")
        .args(["-n", "-v", img.to_str().unwrap()])
        .output()
        .expect("cannot run fsck.fat; install dosfstools");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "fsck.fat reported problems:\n{text}");
    for bad in [
        "differ",
        "Free cluster summary",
        "Unused",
        "lost",
        "invalid",
        "Bad",
        "Contains",
    ] {
        assert!(!text.contains(bad), "fsck.fat complained ({bad}):\n{text}");
    }
}

fn write_scenario(bits: u8, kib: u32, opts: &[&str]) {
    let s = Scratch::new(&format!("write{bits}"));
    let img = s.path("disk.img");
    mkfs(&img, bits, kib, opts);
    mmd(&img, "/existing");
    put(&s, &img, "/existing/old.txt", b"old data");
    let disk = FileDisk::open(&img, true).unwrap();
    let mut fs = FileSystem::mount(disk).unwrap();
    let cs = fs.cluster_size() as usize;

    fs.mkdir("/EFI").unwrap();
    fs.mkdir("/EFI/Ember Boot").unwrap();
    let kernel = pattern(300_000, 11);
    let mut f = fs.create_file("/EFI/Ember Boot/Kernel Image.efi").unwrap();
    // Written in uneven chunks to exercise partial blocks.
    let mut off = 0;
    for (i, chunk) in kernel.chunks(7777).enumerate() {
        let n = fs.write_at(&mut f, off as u64, chunk).unwrap();
        assert_eq!(n, chunk.len(), "chunk {i}");
        off += n;
    }
    assert_eq!(f.size(), kernel.len() as u64);
    let mut readme = fs.create_file("/README.TXT").unwrap();
    fs.write_at(&mut readme, 0, b"hello from ember\n").unwrap();
    assert!(matches!(
        fs.create_file("/readme.txt"),
        Err(FatError::AlreadyExists(_))
    ));
    assert!(matches!(
        fs.create_file("/bad:name"),
        Err(FatError::InvalidName(_))
    ));
    assert!(matches!(
        fs.create_file("/missing/x"),
        Err(FatError::NotFound(_))
    ));

    // Many long names: the directory must grow past one cluster, and aliases
    // must stay unique.
    fs.mkdir("/many").unwrap();
    let count = 3 * cs / 32;
    for i in 0..count {
        let mut g = fs
            .create_file(&format!("/many/Long File Name {i:03}.data"))
            .unwrap();
        fs.write_at(&mut g, 0, format!("file {i}").as_bytes())
            .unwrap();
    }
    // Sparse-style write past the end: the gap reads back as zeros.
    let mut gap = fs.create_file("/gap.bin").unwrap();
    fs.write_at(&mut gap, 5000, b"tail").unwrap();
    // Truncate frees clusters; extend zero-fills.
    let mut t = fs.create_file("/trunc.bin").unwrap();
    fs.write_at(&mut t, 0, &pattern(10 * cs, 12)).unwrap();
    fs.set_len(&mut t, (cs + 10) as u64).unwrap();
    fs.set_len(&mut t, (cs + 20) as u64).unwrap();
    // Removal of a file and of an empty directory; a non-empty one refuses.
    let mut doomed = fs.create_file("/doomed file.txt").unwrap();
    fs.write_at(&mut doomed, 0, &pattern(5 * cs, 13)).unwrap();
    fs.remove("/doomed file.txt").unwrap();
    fs.mkdir("/emptydir").unwrap();
    fs.remove("/emptydir").unwrap();
    assert!(matches!(
        fs.remove("/EFI"),
        Err(FatError::DirectoryNotEmpty(_))
    ));
    fs.remove("/existing/old.txt").unwrap();

    // Ember reads its own writes before the flush, too.
    assert_eq!(
        fs.read_file("/efi/ember boot/kernel image.efi", 1 << 20)
            .unwrap(),
        kernel
    );
    fs.unmount().unwrap();

    fsck_ok(&img);
    assert_eq!(get(&s, &img, "/EFI/Ember Boot/Kernel Image.efi"), kernel);
    assert_eq!(
        run("mtype", &["-i", img.to_str().unwrap(), "::/README.TXT"]),
        "hello from ember\n"
    );
    let mut want_gap = vec![0u8; 5000];
    want_gap.extend_from_slice(b"tail");
    assert_eq!(get(&s, &img, "/gap.bin"), want_gap);
    let mut want_t = pattern(10 * cs, 12);
    want_t.truncate(cs + 10);
    want_t.resize(cs + 20, 0);
    assert_eq!(get(&s, &img, "/trunc.bin"), want_t);
    assert_eq!(get(&s, &img, "/many/Long File Name 017.data"), b"file 17");
    let listing = run("mdir", &["-i", img.to_str().unwrap(), "::/many"]);
    let shown = (0..count)
        .filter(|i| listing.contains(&format!("Long File Name {i:03}.data")))
        .count();
    assert_eq!(shown, count, "mdir listing:\n{listing}");
    let root = run("mdir", &["-i", img.to_str().unwrap(), "::/"]);
    assert!(
        !root.contains("doomed") && !root.contains("emptydir"),
        "{root}"
    );
    let efi = run("mdir", &["-i", img.to_str().unwrap(), "::/EFI"]);
    assert!(efi.contains("Ember Boot"), "{efi}");

    // Remount with Ember: everything still there.
    let mut fs = FileSystem::mount(FileDisk::open(&img, false).unwrap()).unwrap();
    assert_eq!(fs.read_file("/gap.bin", 1 << 20).unwrap(), want_gap);
    assert_eq!(
        fs.read_dir("/many")
            .unwrap()
            .iter()
            .filter(|e| !e.is_dot())
            .count(),
        count
    );
}

#[test]
fn writes_fat12_checked_by_fsck_and_mtools() {
    write_scenario(12, 2048, &["-s", "1"]);
}

#[test]
fn writes_fat16_checked_by_fsck_and_mtools() {
    write_scenario(16, 16384, &["-s", "4"]);
}

#[test]
fn writes_fat32_checked_by_fsck_and_mtools() {
    write_scenario(32, 40960, &["-s", "1"]);
}

#[test]
fn fat32_fsinfo_free_count_tracks_allocations() {
    let s = Scratch::new("fsinfo");
    let img = s.path("disk.img");
    mkfs(&img, 32, 40960, &["-s", "1"]);
    let mut fs = FileSystem::mount(FileDisk::open(&img, true).unwrap()).unwrap();
    let free0 = fs.free_clusters().expect("mkfs.fat writes a valid FSInfo");
    let mut f = fs.create_file("/x.bin").unwrap();
    fs.write_at(&mut f, 0, &pattern(10 * 512, 1)).unwrap();
    assert_eq!(fs.free_clusters(), Some(free0 - 10));
    fs.set_len(&mut f, 512).unwrap();
    assert_eq!(fs.free_clusters(), Some(free0 - 1));
    fs.unmount().unwrap();
    // fsck.fat verifies the FSInfo free count against the FAT.
    fsck_ok(&img);
}

#[test]
fn fixed_root_directory_fills_up() {
    let s = Scratch::new("rootfull");
    let img = s.path("disk.img");
    mkfs(&img, 12, 1024, &["-r", "16"]);
    let mut fs = FileSystem::mount(FileDisk::open(&img, true).unwrap()).unwrap();
    for i in 0..16 {
        fs.create_file(&format!("/F{i}.TXT")).unwrap();
    }
    assert_eq!(
        fs.create_file("/ONEMORE.TXT").unwrap_err(),
        FatError::RootDirectoryFull
    );
    fs.unmount().unwrap();
    fsck_ok(&img);
}

#[test]
fn read_only_device_refuses_writes() {
    let s = Scratch::new("ro");
    let img = s.path("disk.img");
    mkfs(&img, 12, 1024, &[]);
    let mut fs = FileSystem::mount(FileDisk::open(&img, false).unwrap()).unwrap();
    assert_eq!(fs.create_file("/A.TXT").unwrap_err(), FatError::ReadOnly);
    assert_eq!(fs.mkdir("/D").unwrap_err(), FatError::ReadOnly);
}
