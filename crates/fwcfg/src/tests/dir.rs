use crate::dir::MAX_FILES;
use crate::{DirError, Directory, FwCfgFile};
use std::vec::Vec;
use zerocopy::{FromZeros, IntoBytes};

const Q35: &[u8] = include_bytes!("../../testdata/q35-file-dir.bin");

fn dir_bytes(entries: &[(u32, u16, &[u8])]) -> Vec<u8> {
    let mut v = (entries.len() as u32).to_be_bytes().to_vec();
    for &(size, select, name) in entries {
        let mut f = FwCfgFile::new_zeroed();
        f.size.set(size);
        f.select.set(select);
        f.name[..name.len()].copy_from_slice(name);
        v.extend_from_slice(f.as_bytes());
    }
    v
}

#[test]
fn q35_fixture() {
    let d = Directory::parse(Q35).unwrap();
    assert_eq!(d.len(), 17);
    assert_eq!(Directory::required_len(Q35), Ok(Q35.len()));
    let l = d.find("etc/table-loader").unwrap();
    assert_eq!(
        (l.size, l.select, l.name()),
        (4096, 0x2c, Some("etc/table-loader"))
    );
    let t = d.find("etc/acpi/tables").unwrap();
    assert_eq!((t.size, t.select), (131072, 0x23));
    let b = d.find("bootorder").unwrap();
    assert_eq!((b.size, b.select), (104, 0x21));
    // An empty file is listed like any other.
    assert_eq!(d.find("etc/tpm/log").map(|e| e.size), Some(0));
    assert_eq!(d.find("etc/acpi"), None);
    assert_eq!(d.find("etc/table-loader\0"), None);
    // QEMU hands out file selectors in name order from 0x20.
    let sels: Vec<u16> = d.iter().map(|e| e.select).collect();
    assert_eq!(sels, (0x20..0x31).collect::<Vec<u16>>());
    assert_eq!(
        d.iter().last().unwrap().name(),
        Some("genroms/kvmvapic.bin")
    );
}

#[test]
fn microvm_and_pc_fixtures() {
    let m = Directory::parse(include_bytes!("../../testdata/microvm-file-dir.bin")).unwrap();
    assert_eq!(m.len(), 8);
    assert_eq!(m.find("etc/fdt").map(|e| e.size), Some(1 << 20));
    let p = Directory::parse(include_bytes!("../../testdata/pc-file-dir.bin")).unwrap();
    assert_eq!(p.len(), 12);
    assert!(p.find("etc/table-loader").is_some());
}

#[test]
fn empty_directory() {
    let d = Directory::parse(&[0, 0, 0, 0]).unwrap();
    assert!(d.is_empty());
    assert_eq!(d.iter().count(), 0);
    assert_eq!(d.find("x"), None);
}

#[test]
fn trailing_bytes_are_ignored() {
    let mut b = dir_bytes(&[(5, 0x20, b"a")]);
    b.extend_from_slice(&[0xff; 10]);
    let d = Directory::parse(&b).unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d.find("a").map(|e| e.size), Some(5));
}

#[test]
fn no_count() {
    assert_eq!(
        Directory::parse(&[0, 0, 1]).unwrap_err(),
        DirError::NoCount { len: 3 }
    );
    assert_eq!(
        Directory::required_len(&[]),
        Err(DirError::NoCount { len: 0 })
    );
}

#[test]
fn truncated_is_an_error() {
    let b = dir_bytes(&[(1, 0x20, b"a"), (2, 0x21, b"b")]);
    assert_eq!(
        Directory::parse(&b[..b.len() - 1]).unwrap_err(),
        DirError::Truncated {
            count: 2,
            needed: 132,
            len: 131
        }
    );
    assert_eq!(
        Directory::parse(&Q35[..100]).unwrap_err(),
        DirError::Truncated {
            count: 17,
            needed: 1092,
            len: 100
        }
    );
    let msg = std::format!("{}", Directory::parse(&Q35[..100]).unwrap_err());
    assert!(
        msg.contains("17 files") && msg.contains("100 bytes"),
        "{msg}"
    );
}

#[test]
fn too_many_files() {
    let b = (MAX_FILES + 1).to_be_bytes();
    assert_eq!(
        Directory::required_len(&b),
        Err(DirError::TooManyFiles {
            count: MAX_FILES + 1
        })
    );
    assert_eq!(
        Directory::parse(&u32::MAX.to_be_bytes()).unwrap_err(),
        DirError::TooManyFiles { count: u32::MAX }
    );
    assert_eq!(
        Directory::required_len(&MAX_FILES.to_be_bytes()),
        Ok(4 + 64 * 0x4000)
    );
}

#[test]
fn odd_names_are_tolerated() {
    let b = dir_bytes(&[
        (1, 0x20, b"\xffbad"),
        (2, 0x21, &[b'z'; 56]),
        (3, 0x22, b"ok"),
    ]);
    let d = Directory::parse(&b).unwrap();
    let e: Vec<_> = d.iter().collect();
    assert_eq!(e[0].name(), None);
    assert_eq!(e[0].name_bytes(), b"\xffbad");
    assert_eq!(d.find_bytes(b"\xffbad").map(|e| e.size), Some(1));
    // Unterminated: the name is all 56 bytes.
    assert_eq!(e[1].name_bytes().len(), 56);
    assert_eq!(d.find(&"z".repeat(56)).map(|e| e.select), Some(0x21));
    assert_eq!(d.find("ok").map(|e| e.size), Some(3));
}

#[test]
fn duplicate_names_find_first() {
    let b = dir_bytes(&[(1, 0x20, b"dup"), (2, 0x21, b"dup")]);
    assert_eq!(
        Directory::parse(&b).unwrap().find("dup").map(|e| e.select),
        Some(0x20)
    );
}
