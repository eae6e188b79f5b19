//! Each test cites the UEFI spec section (2.10) whose rule it checks.
use super::*;
use alloc::string::String;
use alloc::vec;

const BS: u32 = BOOTSERVICE_ACCESS;
const RT: u32 = RUNTIME_ACCESS;
const NV: u32 = NON_VOLATILE;
const G: Guid = EFI_GLOBAL_VARIABLE;
const OTHER: Guid = Guid::from_str_const("605dab50-e046-4300-abb6-3dd810dd8b23");

fn u(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

fn store() -> VarStore {
    VarStore::new(VarLimits::default())
}

#[test]
fn set_get_roundtrip_and_buffer_too_small() {
    // 8.2.1 GetVariable: BUFFER_TOO_SMALL reports the size needed.
    let mut s = store();
    s.set(&u("BootOrder"), &G, NV | BS | RT, &[1, 0, 2, 0])
        .unwrap();
    assert_eq!(
        s.get(&u("BootOrder"), &G, 4),
        Ok((NV | BS | RT, &[1u8, 0, 2, 0][..]))
    );
    assert_eq!(
        s.get(&u("BootOrder"), &G, 3),
        Err(VarError::BufferTooSmall { needed: 4 })
    );
    assert_eq!(s.get(&u("BootOrder"), &OTHER, 4), Err(VarError::NotFound));
    assert_eq!(s.get(&u("bootorder"), &G, 4), Err(VarError::NotFound));
    assert_eq!(VarError::NotFound.efi_status(), status::NOT_FOUND);
    // Size accounting: name with NUL (10 units = 20 bytes) plus 4 data bytes.
    assert_eq!(s.used(), 24);
}

#[test]
fn invalid_names_and_attributes() {
    // 8.2.6 SetVariable: EFI_INVALID_PARAMETER cases.
    let mut s = store();
    let inv = |r: Result<(), VarError>| matches!(r, Err(VarError::InvalidParameter(_)));
    assert!(inv(s.set(&[], &G, BS, &[1])));
    assert!(inv(s.set(&u("A\0B"), &G, BS, &[1])));
    assert!(inv(s.set(&u("A"), &G, RT, &[1])), "RT without BS");
    assert!(
        inv(s.set(&u("A"), &G, BS | RT | HARDWARE_ERROR_RECORD, &[1])),
        "HR without NV"
    );
    assert!(s
        .set(
            &u("HwErrRec0001"),
            &G,
            NV | BS | RT | HARDWARE_ERROR_RECORD,
            &[1]
        )
        .is_ok());
    assert!(inv(s.set(&u("A"), &G, BS | 0x100, &[1])), "reserved bit");
    assert_eq!(s.get(&u("A"), &G, 10), Err(VarError::NotFound));
}

#[test]
fn authenticated_writes_refused() {
    // 8.2.6: AUTHENTICATED_WRITE_ACCESS is deprecated -> EFI_UNSUPPORTED;
    // time-based/enhanced authentication that is not verified ->
    // EFI_SECURITY_VIOLATION.
    let mut s = store();
    let e = s
        .set(
            &u("db"),
            &G,
            NV | BS | RT | AUTHENTICATED_WRITE_ACCESS,
            &[1],
        )
        .unwrap_err();
    assert_eq!(e.efi_status(), status::UNSUPPORTED);
    let e = s
        .set(
            &u("db"),
            &G,
            NV | BS | RT | TIME_BASED_AUTHENTICATED_WRITE_ACCESS,
            &[1],
        )
        .unwrap_err();
    assert_eq!(e, VarError::SecurityViolation);
    assert_eq!(e.efi_status(), status::SECURITY_VIOLATION);
    let e = s
        .set(&u("db"), &G, NV | BS | ENHANCED_AUTHENTICATED_ACCESS, &[1])
        .unwrap_err();
    assert_eq!(e, VarError::SecurityViolation);
}

#[test]
fn append_write() {
    // 8.2.6: APPEND_WRITE appends; it is not a stored attribute; appending
    // zero bytes has no effect; appending creates a missing variable.
    let mut s = store();
    s.set(&u("L"), &OTHER, BS | APPEND_WRITE, &[1, 2]).unwrap();
    s.set(&u("L"), &OTHER, BS | APPEND_WRITE, &[3]).unwrap();
    assert_eq!(s.get(&u("L"), &OTHER, 8), Ok((BS, &[1u8, 2, 3][..])));
    s.set(&u("L"), &OTHER, BS | APPEND_WRITE, &[]).unwrap();
    assert_eq!(s.get(&u("L"), &OTHER, 8), Ok((BS, &[1u8, 2, 3][..])));
    s.set(&u("E"), &OTHER, BS | APPEND_WRITE, &[]).unwrap();
    assert_eq!(s.get(&u("E"), &OTHER, 8), Err(VarError::NotFound));
    assert_eq!(s.used(), 4 + 3);
}

#[test]
fn delete_rules() {
    // 8.2.6: DataSize 0 (without APPEND_WRITE) or no access attributes
    // deletes; deleting a missing variable is EFI_NOT_FOUND.
    let mut s = store();
    s.set(&u("X"), &OTHER, BS, &[1]).unwrap();
    s.set(&u("X"), &OTHER, BS, &[]).unwrap();
    assert_eq!(s.get(&u("X"), &OTHER, 8), Err(VarError::NotFound));
    assert_eq!(s.set(&u("X"), &OTHER, BS, &[]), Err(VarError::NotFound));
    s.set(&u("Y"), &OTHER, BS, &[1]).unwrap();
    s.set(&u("Y"), &OTHER, 0, &[9, 9]).unwrap();
    assert_eq!(s.get(&u("Y"), &OTHER, 8), Err(VarError::NotFound));
    assert_eq!(s.used(), 0);
}

#[test]
fn attributes_cannot_change() {
    // 8.2.6: rewriting with different attributes is EFI_INVALID_PARAMETER
    // and leaves the variable unchanged.
    let mut s = store();
    s.set(&u("V"), &OTHER, BS, &[1]).unwrap();
    assert!(matches!(
        s.set(&u("V"), &OTHER, BS | RT, &[2]),
        Err(VarError::InvalidParameter(_))
    ));
    assert!(matches!(
        s.set(&u("V"), &OTHER, NV | BS | APPEND_WRITE, &[2]),
        Err(VarError::InvalidParameter(_))
    ));
    assert_eq!(s.get(&u("V"), &OTHER, 8), Ok((BS, &[1u8][..])));
    s.set(&u("V"), &OTHER, BS, &[7, 7]).unwrap();
    assert_eq!(s.get(&u("V"), &OTHER, 8), Ok((BS, &[7u8, 7][..])));
}

#[test]
fn runtime_rules() {
    // 8.2: after ExitBootServices only RUNTIME_ACCESS variables are
    // visible, only NV+RT ones can be set; volatile RT ones are read-only.
    let mut s = store();
    s.set(&u("BsOnly"), &OTHER, BS, &[1]).unwrap();
    s.set(&u("VolRt"), &OTHER, BS | RT, &[2]).unwrap();
    s.set(&u("NvRt"), &OTHER, NV | BS | RT, &[3]).unwrap();
    s.exit_boot_services();
    assert!(s.is_runtime());
    assert_eq!(s.get(&u("BsOnly"), &OTHER, 8), Err(VarError::NotFound));
    assert_eq!(s.get(&u("VolRt"), &OTHER, 8), Ok((BS | RT, &[2u8][..])));
    assert!(matches!(
        s.set(&u("BsOnly"), &OTHER, BS, &[5]),
        Err(VarError::InvalidParameter(_))
    ));
    assert_eq!(
        s.set(&u("VolRt"), &OTHER, BS | RT, &[5]),
        Err(VarError::WriteProtected)
    );
    assert!(matches!(
        s.set(&u("New"), &OTHER, BS | RT, &[5]),
        Err(VarError::InvalidParameter(_))
    ));
    s.set(&u("NvRt"), &OTHER, NV | BS | RT, &[4]).unwrap();
    s.set(&u("New"), &OTHER, NV | BS | RT, &[6]).unwrap();
    // Enumeration skips the boot-services-only variable; naming it as the
    // previous one is invalid because it is not visible.
    let mut names = Vec::new();
    let (mut name, mut guid) = (Vec::new(), Guid::ZERO);
    for _ in 0..10 {
        match s.next_name(&name, &guid, 64) {
            Ok((n, g)) => {
                name = n.to_vec();
                guid = g;
                names.push(String::from_utf16(&name).unwrap());
            }
            Err(e) => {
                assert_eq!(e, VarError::NotFound);
                break;
            }
        }
    }
    assert_eq!(names, ["New", "NvRt", "VolRt"]);
    assert!(matches!(
        s.next_name(&u("BsOnly"), &OTHER, 64),
        Err(VarError::InvalidParameter(_))
    ));
    assert!(matches!(
        s.query_info(BS),
        Err(VarError::InvalidParameter(_))
    ));
    assert!(s.query_info(NV | BS | RT).is_ok());
}

#[test]
fn read_only_variables() {
    // 8.2.6: EFI_WRITE_PROTECTED for a read-only variable, including delete.
    let mut s = store();
    s.set_read_only(&u("SecureBoot"), &G, BS | RT, &[0])
        .unwrap();
    assert_eq!(
        s.set(&u("SecureBoot"), &G, BS | RT, &[1]),
        Err(VarError::WriteProtected)
    );
    assert_eq!(
        s.set(&u("SecureBoot"), &G, BS | RT, &[]),
        Err(VarError::WriteProtected)
    );
    assert_eq!(s.get(&u("SecureBoot"), &G, 1), Ok((BS | RT, &[0u8][..])));
    assert_eq!(
        VarError::WriteProtected.efi_status(),
        status::WRITE_PROTECTED
    );
    // The firmware may update its own variable (attributes may change too).
    s.set_read_only(&u("SecureBoot"), &G, NV | BS | RT, &[1])
        .unwrap();
    assert_eq!(
        s.get(&u("SecureBoot"), &G, 1),
        Ok((NV | BS | RT, &[1u8][..]))
    );
    assert_eq!(s.used(), 22 + 1);
    // A failed update keeps the old value and protection.
    assert!(s.set_read_only(&u("SecureBoot"), &G, RT, &[2]).is_err());
    assert_eq!(
        s.get(&u("SecureBoot"), &G, 1),
        Ok((NV | BS | RT, &[1u8][..]))
    );
    assert_eq!(
        s.set(&u("SecureBoot"), &G, NV | BS | RT, &[1]),
        Err(VarError::WriteProtected)
    );
    assert_eq!(s.used(), 23);
}

#[test]
fn size_limits() {
    // 8.2.6: DataSize over the maximum -> EFI_INVALID_PARAMETER; store
    // full -> EFI_OUT_OF_RESOURCES. 8.2.5 QueryVariableInfo reports both.
    let mut s = VarStore::new(VarLimits {
        max_var_size: 100,
        total: 250,
    });
    // Name "A" = 4 bytes with NUL, so 96 data bytes is the largest.
    s.set(&u("A"), &OTHER, BS, &[0; 96]).unwrap();
    assert!(matches!(
        s.set(&u("B"), &OTHER, BS, &[0; 97]),
        Err(VarError::InvalidParameter(_))
    ));
    assert!(matches!(
        s.set(&u("A"), &OTHER, BS | APPEND_WRITE, &[0]),
        Err(VarError::InvalidParameter(_))
    ));
    s.set(&u("B"), &OTHER, BS, &[0; 96]).unwrap();
    assert_eq!(
        s.set(&u("C"), &OTHER, BS, &[0; 96]),
        Err(VarError::OutOfResources {
            needed: 100,
            available: 50
        })
    );
    assert_eq!(
        s.query_info(BS),
        Ok(VarInfo {
            max_storage: 250,
            remaining: 50,
            max_var_size: 100
        })
    );
    // Replacing a variable only needs the difference.
    s.set(&u("B"), &OTHER, BS, &[0; 10]).unwrap();
    assert_eq!(s.query_info(BS | RT).unwrap().remaining, 250 - 100 - 14);
    assert_eq!(
        VarError::OutOfResources {
            needed: 1,
            available: 0
        }
        .efi_status(),
        status::OUT_OF_RESOURCES
    );
}

#[test]
fn query_info_attribute_checks() {
    // 8.2.5 QueryVariableInfo: invalid combinations and unsupported bits.
    let s = store();
    assert!(matches!(
        s.query_info(0),
        Err(VarError::InvalidParameter(_))
    ));
    assert!(matches!(
        s.query_info(RT),
        Err(VarError::InvalidParameter(_))
    ));
    assert_eq!(
        s.query_info(BS | AUTHENTICATED_WRITE_ACCESS)
            .unwrap_err()
            .efi_status(),
        status::UNSUPPORTED
    );
    assert_eq!(
        s.query_info(NV | BS | TIME_BASED_AUTHENTICATED_WRITE_ACCESS)
            .unwrap_err()
            .efi_status(),
        status::UNSUPPORTED
    );
    assert_eq!(s.query_info(NV | BS | RT).unwrap().remaining, 256 * 1024);
}

#[test]
fn next_name_enumeration() {
    // 8.2.2 GetNextVariableName: empty name starts; unknown previous ->
    // EFI_INVALID_PARAMETER; end -> EFI_NOT_FOUND; BUFFER_TOO_SMALL gives
    // the size in bytes including the NUL.
    let mut s = store();
    s.set(&u("Boot0001"), &G, NV | BS | RT, &[1]).unwrap();
    s.set(&u("Boot0000"), &G, NV | BS | RT, &[1]).unwrap();
    s.set(&u("Boot0000"), &OTHER, BS, &[1]).unwrap();
    assert_eq!(
        s.next_name(&[], &Guid::ZERO, 1),
        Err(VarError::BufferTooSmall { needed: 18 })
    );
    let (n1, g1) = s.next_name(&[], &Guid::ZERO, 18).unwrap();
    let (n1, g1) = (n1.to_vec(), g1);
    let (n2, g2) = s.next_name(&n1, &g1, 18).unwrap();
    let (n2, g2) = (n2.to_vec(), g2);
    let (n3, g3) = s.next_name(&n2, &g2, 18).unwrap();
    let (n3, g3) = (n3.to_vec(), g3);
    assert_eq!(s.next_name(&n3, &g3, 18), Err(VarError::NotFound));
    let mut seen = vec![(n1, g1), (n2, g2), (n3, g3)];
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3);
    assert!(matches!(
        s.next_name(&u("Nope"), &G, 18),
        Err(VarError::InvalidParameter(_))
    ));
    assert!(matches!(
        s.next_name(&u("Boot0001"), &OTHER, 18),
        Err(VarError::InvalidParameter(_))
    ));
    assert_eq!(
        VarError::BufferTooSmall { needed: 1 }.efi_status(),
        status::BUFFER_TOO_SMALL
    );
}

#[test]
fn names_from_caller_buffers() {
    // 8.2.2: no NUL within VariableNameSize -> EFI_INVALID_PARAMETER.
    assert_eq!(
        name_from_buffer(&[0x41, 0x42, 0, 0x43]),
        Ok(&[0x41u16, 0x42][..])
    );
    assert_eq!(name_from_buffer(&[0]), Ok(&[][..]));
    assert!(matches!(
        name_from_buffer(&[0x41]),
        Err(VarError::InvalidParameter(_))
    ));
    assert!(matches!(
        name_from_buffer(&[]),
        Err(VarError::InvalidParameter(_))
    ));
}

#[test]
fn non_volatile_iteration_skips_volatile_variables() {
    let mut s = store();
    s.set(&u("BootOrder"), &G, NV | BS | RT, &[1, 0]).unwrap();
    s.set(&u("BootCurrent"), &G, BS | RT, &[1, 0]).unwrap();
    s.set(&u("Mine"), &OTHER, NV | BS, &[9]).unwrap();
    let got: Vec<(String, u32, Vec<u8>)> = s
        .iter_non_volatile()
        .map(|(n, _, a, d)| (String::from_utf16_lossy(n), a, d.to_vec()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("BootOrder".into(), NV | BS | RT, vec![1, 0]),
            ("Mine".into(), NV | BS, vec![9]),
        ]
    );
}

/// A store with a bit of everything a snapshot must carry.
fn populated() -> VarStore {
    let mut s = store();
    s.set(&u("BootOrder"), &G, NV | BS | RT, &[1, 0, 2, 0])
        .unwrap();
    s.set(&u("BootOnly"), &OTHER, BS, b"boot services only")
        .unwrap();
    s.set(&u("Volatile"), &G, BS | RT, &[7]).unwrap();
    s.set_read_only(&u("SecureBoot"), &G, BS | RT, &[0])
        .unwrap();
    s
}

#[test]
fn snapshot_restores_the_same_store() {
    // Ember rebuilds its store from a snapshot at SetVirtualAddressMap:
    // everything the services can observe must survive, read-only marks
    // and the runtime rules included.
    let mut s = populated();
    s.exit_boot_services();
    let r = VarStore::restore(VarLimits::default(), &s.snapshot()).unwrap();
    assert!(r.is_runtime());
    assert_eq!(r.used(), s.used());
    assert_eq!(
        r.get(&u("BootOrder"), &G, 64),
        Ok((NV | BS | RT, &[1u8, 0, 2, 0][..]))
    );
    // Boot-services-only variables stay hidden after ExitBootServices...
    assert_eq!(r.get(&u("BootOnly"), &OTHER, 64), Err(VarError::NotFound));
    // ...volatile ones stay read-only, and read-only ones stay read-only.
    assert_eq!(
        r.clone().set(&u("Volatile"), &G, BS | RT, &[8]),
        Err(VarError::WriteProtected)
    );
    assert_eq!(
        r.clone().set(&u("SecureBoot"), &G, NV | BS | RT, &[1]),
        Err(VarError::WriteProtected)
    );
    assert_eq!(r.query_info(NV | BS | RT), s.query_info(NV | BS | RT));
    // The enumeration order is the same.
    let names = |st: &VarStore| {
        let mut out = Vec::new();
        let (mut prev, mut pg) = (Vec::new(), Guid::ZERO);
        while let Ok((n, g)) = st.next_name(&prev, &pg, usize::MAX) {
            out.push(String::from_utf16_lossy(n));
            prev = n.to_vec();
            pg = g;
        }
        out
    };
    assert_eq!(names(&r), names(&s));
    assert!(names(&r).contains(&String::from("BootOrder")));
    // And it keeps working: a runtime write of a NV+RT variable.
    let mut r = r;
    r.set(&u("New"), &OTHER, NV | BS | RT, &[1, 2]).unwrap();
    assert_eq!(
        r.get(&u("New"), &OTHER, 2),
        Ok((NV | BS | RT, &[1u8, 2][..]))
    );
}

#[test]
fn snapshot_before_exit_boot_services_keeps_boot_rules() {
    let s = populated();
    let r = VarStore::restore(VarLimits::default(), &s.snapshot()).unwrap();
    assert!(!r.is_runtime());
    assert_eq!(
        r.get(&u("BootOnly"), &OTHER, 64),
        Ok((BS, &b"boot services only"[..]))
    );
}

#[test]
fn corrupt_snapshots_are_refused_without_panicking() {
    let good = populated().snapshot();
    assert_eq!(
        VarStore::restore(VarLimits::default(), b"NOTVARS1\0\0\0\0\0\0\0\0").unwrap_err(),
        SnapshotError::Magic
    );
    // Every truncation is an error, never a panic.
    for n in 0..good.len() {
        assert!(
            VarStore::restore(VarLimits::default(), &good[..n]).is_err(),
            "{n}"
        );
    }
    // Trailing bytes, and a store too small for the contents.
    let mut long = good.clone();
    long.push(0);
    assert!(VarStore::restore(VarLimits::default(), &long).is_err());
    let tiny = VarLimits {
        max_var_size: 64 * 1024,
        total: 16,
    };
    assert_eq!(
        VarStore::restore(tiny, &good).unwrap_err(),
        SnapshotError::Invalid("more data than the store holds")
    );
    // A huge length does not allocate or overflow: it is simply truncated.
    let mut huge = good[..16].to_vec();
    for x in [u32::MAX, 7, 0, u32::MAX] {
        huge.extend_from_slice(&x.to_le_bytes());
    }
    assert!(matches!(
        VarStore::restore(VarLimits::default(), &huge),
        Err(SnapshotError::Truncated(_))
    ));
}
