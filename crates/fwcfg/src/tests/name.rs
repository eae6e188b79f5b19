use crate::{FileName, NameError, FILE_NAME_SIZE};

fn field(s: &[u8]) -> [u8; FILE_NAME_SIZE] {
    let mut f = [0u8; FILE_NAME_SIZE];
    f[..s.len()].copy_from_slice(s);
    f
}

#[test]
fn new_and_field_round_trip() {
    let n = FileName::new("etc/acpi/rsdp").unwrap();
    assert_eq!(n.as_str(), "etc/acpi/rsdp");
    assert_eq!(n.as_bytes(), b"etc/acpi/rsdp");
    assert_eq!(FileName::from_field(&n.to_field()), Ok(n));
    assert_eq!(std::format!("{n}"), "etc/acpi/rsdp");
}

#[test]
fn new_rejects_bad_names() {
    assert_eq!(FileName::new(""), None);
    assert_eq!(FileName::new("a\0b"), None);
    let long = "x".repeat(FILE_NAME_SIZE);
    assert_eq!(FileName::new(&long), None);
    // 55 bytes leave room for the NUL.
    assert!(FileName::new(&long[..FILE_NAME_SIZE - 1]).is_some());
}

#[test]
fn from_field_errors() {
    assert_eq!(
        FileName::from_field(&[b'a'; FILE_NAME_SIZE]),
        Err(NameError::Unterminated)
    );
    assert_eq!(
        FileName::from_field(&[0; FILE_NAME_SIZE]),
        Err(NameError::Empty)
    );
    assert_eq!(
        FileName::from_field(&field(b"\xff\xfe")),
        Err(NameError::NotUtf8)
    );
    // Bytes after the NUL are ignored.
    let mut f = field(b"abc");
    f[10] = b'z';
    assert_eq!(FileName::from_field(&f).unwrap().as_str(), "abc");
}
