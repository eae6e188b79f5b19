//! Renames, attributes, timestamps and volume labels written by ember-fat,
//! checked with mtools (`mdir`, `mtype`, `mattrib`, `mlabel`) and
//! `fsck.fat -n` — independent readers of the same image.

mod common;

use common::{get, mkfs, mmd, pattern, put, run, Scratch};
use ember_block::FileDisk;
use ember_fat::{FatError, FileSystem, Timestamp};

fn fsck_clean(img: &std::path::Path) {
    let out = std::process::Command::new("fsck.fat")
        .args(["-n", img.to_str().unwrap()])
        .output()
        .expect("fsck.fat (dosfstools)");
    assert!(
        out.status.success(),
        "fsck.fat: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn image(s: &Scratch, bits: u8) -> std::path::PathBuf {
    let img = s.path("v.img");
    let kib = match bits {
        12 => 4 * 1024,
        16 => 16 * 1024,
        _ => 40 * 1024,
    };
    mkfs(&img, bits, kib, &["-n", "OLDLABEL"]);
    mmd(&img, "/dir");
    mmd(&img, "/dir/sub");
    put(s, &img, "/dir/A Long File Name.txt", &pattern(5000, 1));
    put(s, &img, "/dir/sub/inner.bin", &pattern(300, 2));
    img
}

#[test]
fn rename_within_and_across_directories() {
    for bits in [12u8, 16, 32] {
        let s = Scratch::new(&format!("rename{bits}"));
        let img = image(&s, bits);
        {
            let mut fs = FileSystem::mount(FileDisk::open(&img, true).unwrap()).unwrap();
            fs.rename("/dir/A Long File Name.txt", "/dir/Renamed Long Name.dat")
                .unwrap();
            // Move a directory to the root: its ".." must follow.
            fs.rename("/dir/sub", "/moved").unwrap();
            // Existing targets are refused; a directory cannot go inside itself.
            assert!(matches!(
                fs.rename("/moved/inner.bin", "/dir/Renamed Long Name.dat"),
                Err(FatError::AlreadyExists(_))
            ));
            assert!(fs.rename("/dir", "/dir/x").is_err());
            fs.flush().unwrap();
        }
        fsck_clean(&img);
        assert_eq!(
            get(&s, &img, "/dir/Renamed Long Name.dat"),
            pattern(5000, 1),
            "FAT{bits}"
        );
        assert_eq!(
            get(&s, &img, "/moved/inner.bin"),
            pattern(300, 2),
            "FAT{bits}"
        );
        let listing = run("mdir", &["-i", img.to_str().unwrap(), "::/dir"]);
        assert!(
            !listing.contains("A Long File Name"),
            "old name still listed on FAT{bits}:\n{listing}"
        );
        // mtools resolves ".." of the moved directory to the root.
        let up = run("mdir", &["-i", img.to_str().unwrap(), "::/moved/.."]);
        assert!(
            up.contains("moved") && up.contains("dir"),
            "FAT{bits}: {up}"
        );
    }
}

#[test]
fn attributes_and_times_are_what_mtools_reads() {
    let s = Scratch::new("attr");
    let img = image(&s, 16);
    let t = Timestamp {
        date: (44 << 9) | (7 << 5) | 4,
        time: (13 << 11) | (37 << 5) | 10,
        tenths: 50,
    }; // 2024-07-04 13:37:20
    {
        let mut fs = FileSystem::mount(FileDisk::open(&img, true).unwrap()).unwrap();
        fs.set_attributes("/dir/A Long File Name.txt", 0x01 | 0x02)
            .unwrap();
        fs.set_times("/dir/A Long File Name.txt", None, Some(t), None)
            .unwrap();
        let e = fs.stat("/dir/A Long File Name.txt").unwrap();
        assert_eq!(
            e.attributes & 0x23,
            0x03,
            "archive cleared, read-only and hidden set"
        );
        assert_eq!(e.modified.date, t.date);
        // The directory bit cannot be set or cleared.
        fs.set_attributes("/dir", 0).unwrap();
        assert!(fs.stat("/dir").unwrap().is_dir);
        fs.flush().unwrap();
    }
    fsck_clean(&img);
    let attrs = run(
        "mattrib",
        &["-i", img.to_str().unwrap(), "::/dir/A Long File Name.txt"],
    );
    let flags = attrs.split("::").next().unwrap_or("");
    assert!(
        flags.contains('R') && flags.contains('H') && !flags.contains('A'),
        "mattrib says: {attrs}"
    );
    // -a: the file is hidden now.
    let listing = run("mdir", &["-a", "-i", img.to_str().unwrap(), "::/dir"]);
    assert!(
        listing.contains("2024-07-04") && listing.contains("13:37"),
        "mdir says:\n{listing}"
    );
}

#[test]
fn volume_label_in_root_entry_and_boot_sector() {
    for bits in [12u8, 32] {
        let s = Scratch::new(&format!("label{bits}"));
        let img = image(&s, bits);
        {
            let mut fs = FileSystem::mount(FileDisk::open(&img, true).unwrap()).unwrap();
            assert_eq!(fs.volume_label(), Some("OLDLABEL"));
            fs.set_volume_label("Ember ESP").unwrap();
            assert_eq!(fs.volume_label(), Some("EMBER ESP"));
            assert!(fs.set_volume_label("far too long label").is_err());
            assert!(fs.set_volume_label("bad/name").is_err());
            fs.flush().unwrap();
        }
        fsck_clean(&img);
        let label = run("mlabel", &["-i", img.to_str().unwrap(), "-s", "::"]);
        assert!(
            label.contains("EMBER ESP"),
            "FAT{bits}: mlabel says {label}"
        );
        // A fresh mount reads it back.
        let fs = FileSystem::mount(FileDisk::open(&img, false).unwrap()).unwrap();
        assert_eq!(fs.volume_label(), Some("EMBER ESP"));
    }
}
