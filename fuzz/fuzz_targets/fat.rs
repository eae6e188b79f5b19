//! FAT12/16/32 on an arbitrary (sparse) disk: mount, walk every directory
//! (bounded), open and read every file; then, on a writable copy, create,
//! write, read back, grow/shrink, make and remove a directory, and remount.
#![no_main]

use ember_block::BlockDevice;
use ember_fat::FileSystem;
use ember_fuzz::SparseDisk;
use libfuzzer_sys::fuzz_target;

/// Bounds keep one input's run time small; real ESPs are far smaller. Reads
/// stop after 128 KiB per file: past that the same run/cluster code repeats,
/// and a 14 MiB kernel would dominate every execution.
const MAX_DIRS: usize = 64;
const MAX_ENTRIES: usize = 256;
const MAX_DEPTH: usize = 8;
const MAX_READ: u64 = 128 << 10;

fn walk<D: BlockDevice>(fs: &mut FileSystem<D>) {
    let _ = (fs.fat_type(), fs.volume_label(), fs.free_clusters());
    let mut todo = vec![(String::from("/"), 0usize)];
    let mut dirs = 0;
    let mut buf = vec![0u8; 64 * 1024];
    while let Some((dir, depth)) = todo.pop() {
        dirs += 1;
        if dirs > MAX_DIRS {
            break;
        }
        let Ok(entries) = fs.read_dir(&dir) else {
            continue;
        };
        for e in entries.iter().filter(|e| !e.is_dot()).take(MAX_ENTRIES) {
            let path = if dir == "/" {
                format!("/{}", e.name)
            } else {
                format!("{dir}/{}", e.name)
            };
            if e.is_dir {
                if depth < MAX_DEPTH {
                    todo.push((path, depth + 1));
                }
                continue;
            }
            let Ok(f) = fs.open(&path) else {
                continue;
            };
            // Compare with stat, not `e`: a hostile directory may hold two
            // entries of one name, and a path resolves to the first.
            let st = fs.stat(&path).expect("stat of a path open just resolved");
            assert_eq!(f.size(), st.size, "open({path:?}) size differs from stat");
            let mut off = 0u64;
            while off < f.size().min(MAX_READ) {
                match fs.read_at(&f, off, &mut buf) {
                    Ok(0) => panic!("read_at({path:?}, {off}) returned 0 before the end"),
                    Ok(n) => {
                        assert!(n <= buf.len());
                        off += n as u64;
                    }
                    Err(_) => break,
                }
            }
            assert!(off <= f.size(), "read past the end of {path:?}");
        }
    }
}

fn write_some<D: BlockDevice>(mut fs: FileSystem<D>, payload: &[u8]) {
    let Ok(mut f) = fs.create_file("/FUZZ-new file.txt") else {
        return;
    };
    if let Ok(n) = fs.write_at(&mut f, 0, payload) {
        assert_eq!(n, payload.len(), "short write without an error");
        assert_eq!(f.size(), payload.len() as u64);
        let mut back = vec![0u8; payload.len()];
        if let Ok(m) = fs.read_at(&f, 0, &mut back) {
            assert_eq!(m, payload.len());
            assert!(back == payload, "data read back differs from data written");
        }
    }
    // Grow with a gap (zero filled), then shrink.
    let _ = fs.write_at(&mut f, 10_000, b"tail");
    let _ = fs.set_len(&mut f, 100);
    if fs.mkdir("/fuzzdir").is_ok() {
        let _ = fs.create_file("/fuzzdir/inner.conf");
        let _ = fs.remove("/fuzzdir/inner.conf");
        let _ = fs.remove("/fuzzdir");
    }
    walk(&mut fs);
    if let Ok(dev) = fs.unmount() {
        if let Ok(mut fs) = FileSystem::mount(dev) {
            walk(&mut fs);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let disk = SparseDisk::from_fuzz(data);
    let mut ro = disk.clone();
    ro.set_read_only(true);
    if let Ok(mut fs) = FileSystem::mount(ro) {
        walk(&mut fs);
        assert!(
            fs.create_file("/x").is_err(),
            "write on a read-only disk succeeded"
        );
    }
    if let Ok(fs) = FileSystem::mount(disk) {
        // A deterministic payload spanning a few clusters.
        let payload: Vec<u8> = (0..9000u32).map(|i| (i * 7 + 3) as u8).collect();
        write_some(fs, &payload);
    }
});
