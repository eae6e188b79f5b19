//! Protocol handler services against the rules of UEFI 2.10 §7.3.

use ember_efi::guid::DEVICE_PATH_PROTOCOL;
use ember_efi::handles::*;
use ember_efi::{EventId, Guid, Status};

const BLOCK_IO: Guid = Guid::from_fields(
    0x964e_5b21,
    0x6459,
    0x11d2,
    [0x8e, 0x39, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b],
);
const LOADED_IMAGE: Guid = Guid::from_fields(
    0x5b1b_31a1,
    0x9562,
    0x11d2,
    [0x8e, 0x3f, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b],
);
const DISK_IO: Guid = Guid::from_fields(
    0xce34_5171,
    0xba0b,
    0x11d2,
    [0x8e, 0x4f, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b],
);

fn ev(n: u64) -> EventId {
    EventId::from_raw(n).unwrap()
}

fn dead_handle() -> Handle {
    Handle::from_raw(0x1234_5670).unwrap()
}

/// A db with a device handle (BlockIo at 0xb10c) and three agents/controllers.
struct Fix {
    db: HandleDb,
    dev: Handle,
    a: Handle,
    b: Handle,
    c: Handle,
}

fn fix() -> Fix {
    let mut db = HandleDb::new();
    let dev = db.install_protocol(None, BLOCK_IO, 0xb10c).unwrap().handle;
    let a = db.install_protocol(None, LOADED_IMAGE, 0xa).unwrap().handle;
    let b = db.install_protocol(None, LOADED_IMAGE, 0xb).unwrap().handle;
    let c = db.install_protocol(None, LOADED_IMAGE, 0xc).unwrap().handle;
    Fix { db, dev, a, b, c }
}

#[test]
fn install_creates_and_extends_handles() {
    let mut db = HandleDb::new();
    let h = db.install_protocol(None, BLOCK_IO, 0x1000).unwrap().handle;
    assert_eq!(h.raw(), HANDLE_BASE);
    assert_eq!(h.raw() % 16, 0);
    // A NULL interface is legal (marker protocols).
    assert_eq!(db.install_protocol(Some(h), DISK_IO, 0).unwrap().handle, h);
    assert_eq!(db.protocols_per_handle(h), Ok(vec![BLOCK_IO, DISK_IO]));
    assert_eq!(db.handle_protocol(h, &DISK_IO), Ok(0));
    // Same protocol twice on one handle.
    assert_eq!(
        db.install_protocol(Some(h), BLOCK_IO, 0x2000),
        Err(Status::INVALID_PARAMETER)
    );
    // Unknown handle.
    assert_eq!(
        db.install_protocol(Some(dead_handle()), BLOCK_IO, 1),
        Err(Status::INVALID_PARAMETER)
    );
    assert_eq!(
        db.protocols_per_handle(dead_handle()),
        Err(Status::INVALID_PARAMETER)
    );
    let h2 = db.install_protocol(None, BLOCK_IO, 0x3000).unwrap().handle;
    assert_ne!(h, h2);
    assert_eq!(db.all_handles(), vec![h, h2]);
}

#[test]
fn uninstall_rules_and_handle_lifetime() {
    let mut db = HandleDb::new();
    let h = db.install_protocol(None, BLOCK_IO, 0x1000).unwrap().handle;
    db.install_protocol(Some(h), DISK_IO, 0x2000).unwrap();
    assert_eq!(
        db.uninstall_protocol(h, &BLOCK_IO, 0x9999),
        Err(Status::NOT_FOUND)
    );
    assert_eq!(
        db.uninstall_protocol(h, &LOADED_IMAGE, 0x1000),
        Err(Status::NOT_FOUND)
    );
    assert_eq!(
        db.uninstall_protocol(dead_handle(), &BLOCK_IO, 0x1000),
        Err(Status::INVALID_PARAMETER)
    );
    db.uninstall_protocol(h, &BLOCK_IO, 0x1000).unwrap();
    assert!(db.is_valid(h));
    assert_eq!(db.handle_protocol(h, &BLOCK_IO), Err(Status::UNSUPPORTED));
    db.uninstall_protocol(h, &DISK_IO, 0x2000).unwrap();
    // The handle goes with its last protocol.
    assert!(!db.is_valid(h));
    assert_eq!(db.locate_handle(Search::AllHandles), Err(Status::NOT_FOUND));
    assert_eq!(
        db.handle_protocol(h, &BLOCK_IO),
        Err(Status::INVALID_PARAMETER)
    );
}

#[test]
fn install_multiple_is_all_or_nothing() {
    let mut db = HandleDb::new();
    let none = |_: usize| -> Option<&[u8]> { None };
    // Listed twice: nothing installed, no handle created.
    assert_eq!(
        db.install_multiple(None, &[(BLOCK_IO, 1), (DISK_IO, 2), (BLOCK_IO, 3)], none),
        Err(Status::INVALID_PARAMETER)
    );
    assert!(db.all_handles().is_empty());
    assert_eq!(
        db.install_multiple(None, &[], none),
        Err(Status::INVALID_PARAMETER)
    );
    let h = db
        .install_multiple(None, &[(BLOCK_IO, 1), (DISK_IO, 2)], none)
        .unwrap()
        .handle;
    // One already present: the other is not installed either.
    assert_eq!(
        db.install_multiple(Some(h), &[(LOADED_IMAGE, 3), (DISK_IO, 4)], none),
        Err(Status::INVALID_PARAMETER)
    );
    assert_eq!(db.protocols_per_handle(h), Ok(vec![BLOCK_IO, DISK_IO]));
    // Uninstall multiple: one wrong interface → INVALID_PARAMETER, nothing removed.
    assert_eq!(
        db.uninstall_multiple(h, &[(BLOCK_IO, 1), (DISK_IO, 99)]),
        Err(Status::INVALID_PARAMETER)
    );
    assert_eq!(db.protocols_per_handle(h), Ok(vec![BLOCK_IO, DISK_IO]));
    assert_eq!(
        db.uninstall_multiple(h, &[(BLOCK_IO, 1), (BLOCK_IO, 1)]),
        Err(Status::INVALID_PARAMETER)
    );
    db.uninstall_multiple(h, &[(BLOCK_IO, 1), (DISK_IO, 2)])
        .unwrap();
    assert!(!db.is_valid(h));
}

// Device path helpers: nodes are (type, subtype, payload); END appended.
fn dp(nodes: &[(u8, u8, &[u8])]) -> Vec<u8> {
    let mut v = Vec::new();
    for (t, s, p) in nodes {
        v.extend_from_slice(&[*t, *s]);
        v.extend_from_slice(&u16::try_from(p.len() + 4).unwrap().to_le_bytes());
        v.extend_from_slice(p);
    }
    v.extend_from_slice(&[0x7f, 0xff, 4, 0]);
    v
}
const ROOT: (u8, u8, &[u8]) = (2, 1, &[0x41, 0xd0, 0x0a, 0x03, 0, 0, 0, 0]); // PciRoot(0x0): 12 bytes
const PCI1: (u8, u8, &[u8]) = (1, 1, &[0, 1]); // Pci(0x1,0x0): 6 bytes
const PCI2: (u8, u8, &[u8]) = (1, 1, &[0, 2]);
const HD1: (u8, u8, &[u8]) = (4, 1, &[1; 38]); // HD(1,...): 42 bytes
const FILE: (u8, u8, &[u8]) = (4, 4, &[b'x', 0, 0, 0]); // \x: 8 bytes

/// Interfaces 0xd0.. are device paths; `paths[i]` is interface 0xd0 + i.
fn lookup<'a>(paths: &'a [Vec<u8>]) -> impl FnMut(usize) -> Option<&'a [u8]> + 'a {
    move |iface| {
        iface
            .checked_sub(0xd0)
            .and_then(|i| paths.get(i))
            .map(|v| v.as_slice())
    }
}

#[test]
fn locate_device_path_longest_prefix() {
    let paths = vec![
        dp(&[ROOT]),
        dp(&[ROOT, PCI1]),
        dp(&[ROOT, PCI1, HD1]),
        vec![1, 1, 0, 0],
    ];
    let mut db = HandleDb::new();
    let root = db
        .install_multiple(None, &[(DEVICE_PATH_PROTOCOL, 0xd0)], lookup(&paths))
        .unwrap()
        .handle;
    let disk = db
        .install_multiple(
            None,
            &[(DEVICE_PATH_PROTOCOL, 0xd1), (BLOCK_IO, 1)],
            lookup(&paths),
        )
        .unwrap()
        .handle;
    let part = db
        .install_multiple(
            None,
            &[(DEVICE_PATH_PROTOCOL, 0xd2), (BLOCK_IO, 2)],
            lookup(&paths),
        )
        .unwrap()
        .handle;
    // A handle with a malformed device path is skipped, never matched.
    db.install_multiple(
        None,
        &[(DEVICE_PATH_PROTOCOL, 0xd3), (BLOCK_IO, 3)],
        lookup(&paths),
    )
    .unwrap();

    let file = dp(&[ROOT, PCI1, HD1, FILE]);
    assert_eq!(
        db.locate_device_path(&BLOCK_IO, &file, lookup(&paths)),
        Ok((part, 12 + 6 + 42))
    );
    assert_eq!(
        db.locate_device_path(&DEVICE_PATH_PROTOCOL, &file, lookup(&paths)),
        Ok((part, 60))
    );
    let other = dp(&[ROOT, PCI2]);
    assert_eq!(
        db.locate_device_path(&DEVICE_PATH_PROTOCOL, &other, lookup(&paths)),
        Ok((root, 12))
    );
    // The root has no BlockIo: nothing matches.
    assert_eq!(
        db.locate_device_path(&BLOCK_IO, &other, lookup(&paths)),
        Err(Status::NOT_FOUND)
    );
    // Exact path: whole path consumed.
    assert_eq!(
        db.locate_device_path(&BLOCK_IO, &paths[1], lookup(&paths)),
        Ok((disk, 18))
    );
    // Only the first instance of a multi-instance path counts.
    let mut multi = dp(&[ROOT, PCI1, FILE]);
    let at = multi.len() - 4;
    multi[at + 1] = 0x01; // end-instance
    multi.extend_from_slice(&dp(&[ROOT, PCI1, HD1]));
    assert_eq!(
        db.locate_device_path(&BLOCK_IO, &multi, lookup(&paths)),
        Ok((disk, 18))
    );
    // Malformed source path.
    assert_eq!(
        db.locate_device_path(&BLOCK_IO, &[1, 1, 2, 0], lookup(&paths)),
        Err(Status::INVALID_PARAMETER)
    );
    assert_eq!(
        db.locate_device_path(&BLOCK_IO, &file[..20], lookup(&paths)),
        Err(Status::INVALID_PARAMETER)
    );
    // A shorter path that is a byte prefix of a node is no match: Pci(1) vs Pci(1) with more payload.
    let longer_node = dp(&[ROOT, (1, 1, &[0, 1, 7, 7])]);
    assert_eq!(
        db.locate_device_path(&BLOCK_IO, &longer_node, lookup(&paths)),
        Err(Status::NOT_FOUND)
    );
}

#[test]
fn install_multiple_refuses_duplicate_device_path() {
    let paths = vec![dp(&[ROOT, PCI1]), dp(&[ROOT, PCI1]), dp(&[ROOT, PCI1, HD1])];
    let mut db = HandleDb::new();
    db.install_multiple(
        None,
        &[(DEVICE_PATH_PROTOCOL, 0xd0), (BLOCK_IO, 1)],
        lookup(&paths),
    )
    .unwrap();
    let n = db.all_handles().len();
    assert_eq!(
        db.install_multiple(
            None,
            &[(BLOCK_IO, 2), (DEVICE_PATH_PROTOCOL, 0xd1)],
            lookup(&paths)
        ),
        Err(Status::ALREADY_STARTED)
    );
    assert_eq!(db.all_handles().len(), n);
    // A child path (longer) is fine.
    db.install_multiple(None, &[(DEVICE_PATH_PROTOCOL, 0xd2)], lookup(&paths))
        .unwrap();
}

#[test]
fn open_protocol_parameter_checks() {
    let Fix {
        mut db, dev, a, b, ..
    } = fix();
    let dead = dead_handle();
    for attr in [
        0,
        3,
        0x40,
        OPEN_BY_DRIVER | OPEN_BY_CHILD_CONTROLLER,
        OPEN_GET_PROTOCOL | OPEN_EXCLUSIVE,
    ] {
        assert_eq!(
            db.open_protocol(dev, &BLOCK_IO, Some(a), Some(b), attr),
            Err(Status::INVALID_PARAMETER),
            "{attr:#x}"
        );
    }
    assert_eq!(
        db.open_protocol(dead, &BLOCK_IO, Some(a), Some(b), OPEN_GET_PROTOCOL),
        Err(Status::INVALID_PARAMETER)
    );
    for attr in [
        OPEN_BY_DRIVER,
        OPEN_BY_DRIVER_EXCLUSIVE,
        OPEN_BY_CHILD_CONTROLLER,
    ] {
        assert_eq!(
            db.open_protocol(dev, &BLOCK_IO, Some(a), None, attr),
            Err(Status::INVALID_PARAMETER)
        );
        assert_eq!(
            db.open_protocol(dev, &BLOCK_IO, None, Some(b), attr),
            Err(Status::INVALID_PARAMETER)
        );
        assert_eq!(
            db.open_protocol(dev, &BLOCK_IO, Some(dead), Some(b), attr),
            Err(Status::INVALID_PARAMETER)
        );
        assert_eq!(
            db.open_protocol(dev, &BLOCK_IO, Some(a), Some(dead), attr),
            Err(Status::INVALID_PARAMETER)
        );
    }
    assert_eq!(
        db.open_protocol(dev, &BLOCK_IO, None, None, OPEN_EXCLUSIVE),
        Err(Status::INVALID_PARAMETER)
    );
    // BY_CHILD_CONTROLLER: the child must differ from the handle.
    assert_eq!(
        db.open_protocol(dev, &BLOCK_IO, Some(a), Some(dev), OPEN_BY_CHILD_CONTROLLER),
        Err(Status::INVALID_PARAMETER)
    );
    // Parameters are checked before support.
    assert_eq!(
        db.open_protocol(dev, &DISK_IO, Some(a), Some(b), OPEN_BY_DRIVER),
        Err(Status::UNSUPPORTED)
    );
    for attr in [
        OPEN_BY_HANDLE_PROTOCOL,
        OPEN_GET_PROTOCOL,
        OPEN_TEST_PROTOCOL,
    ] {
        // No agent needed, nothing recorded.
        assert_eq!(
            db.open_protocol(dev, &BLOCK_IO, None, None, attr),
            Ok(0xb10c)
        );
    }
    assert_eq!(db.open_protocol_information(dev, &BLOCK_IO), Ok(vec![]));
    assert_eq!(
        db.open_protocol_information(dev, &DISK_IO),
        Err(Status::NOT_FOUND)
    );
}

#[test]
fn by_driver_rules() {
    let Fix {
        mut db,
        dev,
        a,
        b,
        c,
    } = fix();
    assert_eq!(
        db.open_protocol(dev, &BLOCK_IO, Some(a), Some(dev), OPEN_BY_DRIVER),
        Ok(0xb10c)
    );
    // Same agent again: ALREADY_STARTED (interface still available).
    assert_eq!(
        db.open_protocol(dev, &BLOCK_IO, Some(a), Some(dev), OPEN_BY_DRIVER),
        Err(Status::ALREADY_STARTED)
    );
    assert_eq!(db.protocol_interface(dev, &BLOCK_IO), Some(0xb10c));
    // Another driver: ACCESS_DENIED.
    assert_eq!(
        db.open_protocol(dev, &BLOCK_IO, Some(b), Some(dev), OPEN_BY_DRIVER),
        Err(Status::ACCESS_DENIED)
    );
    // Exclusive kinds while BY_DRIVER is held: denied, with the agents to disconnect.
    assert_eq!(
        db.open_protocol(dev, &BLOCK_IO, Some(c), None, OPEN_EXCLUSIVE),
        Err(Status::ACCESS_DENIED)
    );
    assert_eq!(
        db.open_protocol(dev, &BLOCK_IO, Some(c), Some(dev), OPEN_BY_DRIVER_EXCLUSIVE),
        Err(Status::ACCESS_DENIED)
    );
    assert_eq!(db.by_driver_agents(dev, &BLOCK_IO), vec![a]);
    // Passive opens still work.
    assert_eq!(
        db.open_protocol(dev, &BLOCK_IO, Some(b), Some(dev), OPEN_GET_PROTOCOL),
        Ok(0xb10c)
    );
    assert_eq!(
        db.open_protocol(dev, &BLOCK_IO, Some(b), Some(c), OPEN_BY_CHILD_CONTROLLER),
        Ok(0xb10c)
    );
    // "DisconnectController" (the driver closes its open); retry succeeds.
    db.close_protocol(dev, &BLOCK_IO, Some(a), Some(dev))
        .unwrap();
    assert_eq!(
        db.open_protocol(dev, &BLOCK_IO, Some(c), None, OPEN_EXCLUSIVE),
        Ok(0xb10c)
    );
    // With an EXCLUSIVE open, every BY_DRIVER/EXCLUSIVE kind is denied.
    for (agent, attr) in [
        (a, OPEN_BY_DRIVER),
        (a, OPEN_BY_DRIVER_EXCLUSIVE),
        (a, OPEN_EXCLUSIVE),
        (c, OPEN_EXCLUSIVE),
    ] {
        assert_eq!(
            db.open_protocol(dev, &BLOCK_IO, Some(agent), Some(dev), attr),
            Err(Status::ACCESS_DENIED)
        );
    }
    assert_eq!(
        db.open_protocol(dev, &BLOCK_IO, Some(a), None, OPEN_TEST_PROTOCOL),
        Ok(0xb10c)
    );
}

#[test]
fn by_driver_exclusive_rules() {
    let Fix {
        mut db, dev, a, b, ..
    } = fix();
    db.open_protocol(dev, &BLOCK_IO, Some(a), Some(dev), OPEN_BY_DRIVER_EXCLUSIVE)
        .unwrap();
    assert_eq!(
        db.open_protocol(dev, &BLOCK_IO, Some(a), Some(dev), OPEN_BY_DRIVER_EXCLUSIVE),
        Err(Status::ALREADY_STARTED)
    );
    assert_eq!(
        db.open_protocol(dev, &BLOCK_IO, Some(b), Some(dev), OPEN_BY_DRIVER_EXCLUSIVE),
        Err(Status::ACCESS_DENIED)
    );
    // BY_DRIVER by the same agent while it holds BY_DRIVER|EXCLUSIVE: denied (exclusive).
    assert_eq!(
        db.open_protocol(dev, &BLOCK_IO, Some(a), Some(dev), OPEN_BY_DRIVER),
        Err(Status::ACCESS_DENIED)
    );
    assert_eq!(
        db.open_protocol(dev, &BLOCK_IO, Some(b), Some(dev), OPEN_BY_DRIVER),
        Err(Status::ACCESS_DENIED)
    );
}

#[test]
fn open_counts_and_information() {
    let Fix {
        mut db,
        dev,
        a,
        b,
        c,
    } = fix();
    db.set_firmware_agent(Some(c));
    for _ in 0..3 {
        db.open_protocol(dev, &BLOCK_IO, Some(a), Some(b), OPEN_GET_PROTOCOL)
            .unwrap();
    }
    db.open_protocol(dev, &BLOCK_IO, Some(a), None, OPEN_GET_PROTOCOL)
        .unwrap();
    db.handle_protocol(dev, &BLOCK_IO).unwrap();
    db.handle_protocol(dev, &BLOCK_IO).unwrap();
    let info = db.open_protocol_information(dev, &BLOCK_IO).unwrap();
    assert_eq!(
        info,
        vec![
            OpenInfo {
                agent: a,
                controller: Some(b),
                attributes: OPEN_GET_PROTOCOL,
                open_count: 3
            },
            OpenInfo {
                agent: a,
                controller: None,
                attributes: OPEN_GET_PROTOCOL,
                open_count: 1
            },
            OpenInfo {
                agent: c,
                controller: None,
                attributes: OPEN_BY_HANDLE_PROTOCOL,
                open_count: 2
            },
        ]
    );
    // Close removes the whole record for that agent/controller pair.
    db.close_protocol(dev, &BLOCK_IO, Some(a), Some(b)).unwrap();
    assert_eq!(
        db.close_protocol(dev, &BLOCK_IO, Some(a), Some(b)),
        Err(Status::NOT_FOUND)
    );
    assert_eq!(
        db.open_protocol_information(dev, &BLOCK_IO).unwrap().len(),
        2
    );
}

#[test]
fn close_protocol_errors() {
    let Fix {
        mut db, dev, a, b, ..
    } = fix();
    db.open_protocol(dev, &BLOCK_IO, Some(a), Some(b), OPEN_BY_DRIVER)
        .unwrap();
    assert_eq!(
        db.close_protocol(dev, &BLOCK_IO, None, Some(b)),
        Err(Status::INVALID_PARAMETER)
    );
    assert_eq!(
        db.close_protocol(dev, &BLOCK_IO, Some(dead_handle()), Some(b)),
        Err(Status::INVALID_PARAMETER)
    );
    assert_eq!(
        db.close_protocol(dev, &BLOCK_IO, Some(a), Some(dead_handle())),
        Err(Status::INVALID_PARAMETER)
    );
    assert_eq!(
        db.close_protocol(dead_handle(), &BLOCK_IO, Some(a), Some(b)),
        Err(Status::INVALID_PARAMETER)
    );
    assert_eq!(
        db.close_protocol(dev, &DISK_IO, Some(a), Some(b)),
        Err(Status::NOT_FOUND)
    );
    // Wrong controller or agent: no such open.
    assert_eq!(
        db.close_protocol(dev, &BLOCK_IO, Some(a), None),
        Err(Status::NOT_FOUND)
    );
    assert_eq!(
        db.close_protocol(dev, &BLOCK_IO, Some(b), Some(b)),
        Err(Status::NOT_FOUND)
    );
    db.close_protocol(dev, &BLOCK_IO, Some(a), Some(b)).unwrap();
    assert!(db.by_driver_agents(dev, &BLOCK_IO).is_empty());
}

#[test]
fn uninstall_and_reinstall_respect_opens() {
    let Fix {
        mut db, dev, a, b, ..
    } = fix();
    db.open_protocol(dev, &BLOCK_IO, Some(a), Some(dev), OPEN_BY_DRIVER)
        .unwrap();
    db.open_protocol(dev, &BLOCK_IO, Some(b), Some(dev), OPEN_GET_PROTOCOL)
        .unwrap();
    assert_eq!(
        db.uninstall_protocol(dev, &BLOCK_IO, 0xb10c),
        Err(Status::ACCESS_DENIED)
    );
    assert_eq!(
        db.reinstall_protocol(dev, &BLOCK_IO, 0xb10c, 0xb20c),
        Err(Status::ACCESS_DENIED)
    );
    // Nothing changed on failure.
    assert_eq!(
        db.open_protocol_information(dev, &BLOCK_IO).unwrap().len(),
        2
    );
    assert_eq!(
        db.reinstall_protocol(dev, &BLOCK_IO, 0x1, 0xb20c),
        Err(Status::NOT_FOUND)
    );
    assert_eq!(
        db.reinstall_protocol(dead_handle(), &BLOCK_IO, 0xb10c, 0xb20c),
        Err(Status::INVALID_PARAMETER)
    );
    // After the driver disconnects, only the GET open remains: it is dropped.
    db.close_protocol(dev, &BLOCK_IO, Some(a), Some(dev))
        .unwrap();
    assert_eq!(
        db.reinstall_protocol(dev, &BLOCK_IO, 0xb10c, 0xb20c),
        Ok(vec![])
    );
    assert_eq!(db.protocol_interface(dev, &BLOCK_IO), Some(0xb20c));
    assert_eq!(db.open_protocol_information(dev, &BLOCK_IO), Ok(vec![]));
    // A child open (bus driver still has children) blocks uninstall.
    db.open_protocol(dev, &BLOCK_IO, Some(a), Some(b), OPEN_BY_CHILD_CONTROLLER)
        .unwrap();
    assert_eq!(
        db.uninstall_protocol(dev, &BLOCK_IO, 0xb20c),
        Err(Status::ACCESS_DENIED)
    );
    db.close_protocol(dev, &BLOCK_IO, Some(a), Some(b)).unwrap();
    db.open_protocol(dev, &BLOCK_IO, Some(a), None, OPEN_TEST_PROTOCOL)
        .unwrap();
    db.uninstall_protocol(dev, &BLOCK_IO, 0xb20c).unwrap();
    assert!(!db.is_valid(dev));
}

#[test]
fn locate_handle_by_protocol_and_all() {
    let mut db = HandleDb::new();
    assert_eq!(db.locate_handle(Search::AllHandles), Err(Status::NOT_FOUND));
    let h1 = db.install_protocol(None, DISK_IO, 1).unwrap().handle;
    let h2 = db.install_protocol(None, BLOCK_IO, 2).unwrap().handle;
    // BlockIo installed on the older handle later: install order wins.
    db.install_protocol(Some(h1), BLOCK_IO, 3).unwrap();
    assert_eq!(
        db.locate_handle(Search::ByProtocol(BLOCK_IO)),
        Ok(vec![h2, h1])
    );
    assert_eq!(db.locate_handle(Search::ByProtocol(DISK_IO)), Ok(vec![h1]));
    assert_eq!(
        db.locate_handle(Search::ByProtocol(LOADED_IMAGE)),
        Err(Status::NOT_FOUND)
    );
    assert_eq!(db.locate_handle(Search::AllHandles), Ok(vec![h1, h2]));
    assert_eq!(db.locate_protocol(&BLOCK_IO, None), Ok(2));
    assert_eq!(
        db.locate_protocol(&LOADED_IMAGE, None),
        Err(Status::NOT_FOUND)
    );
    // Raw search types.
    assert_eq!(Search::from_raw(0, None, None), Ok(Search::AllHandles));
    assert_eq!(
        Search::from_raw(2, Some(BLOCK_IO), None),
        Ok(Search::ByProtocol(BLOCK_IO))
    );
    assert_eq!(
        Search::from_raw(2, None, None),
        Err(Status::INVALID_PARAMETER)
    );
    assert_eq!(
        Search::from_raw(1, Some(BLOCK_IO), None),
        Err(Status::INVALID_PARAMETER)
    );
    assert_eq!(
        Search::from_raw(3, Some(BLOCK_IO), None),
        Err(Status::INVALID_PARAMETER)
    );
}

#[test]
fn register_notify_reports_new_handles_one_at_a_time() {
    let mut db = HandleDb::new();
    let old = db.install_protocol(None, BLOCK_IO, 1).unwrap().handle;
    let key = db.register_protocol_notify(BLOCK_IO, ev(0x77)).unwrap();
    let key2 = db.register_protocol_notify(DISK_IO, ev(0x88)).unwrap();
    // Existing handles are not reported.
    assert_eq!(
        db.locate_handle(Search::ByRegisterNotify(key)),
        Err(Status::NOT_FOUND)
    );
    let i1 = db.install_protocol(None, BLOCK_IO, 2).unwrap();
    assert_eq!(i1.notify, vec![ev(0x77)]);
    let i2 = db.install_protocol(None, BLOCK_IO, 3).unwrap();
    assert_eq!(
        db.install_protocol(None, LOADED_IMAGE, 4).unwrap().notify,
        vec![]
    );
    // Peek does not consume.
    assert_eq!(
        db.peek_locate_handle(Search::ByRegisterNotify(key)),
        Ok(vec![i1.handle])
    );
    assert_eq!(
        db.locate_handle(Search::ByRegisterNotify(key)),
        Ok(vec![i1.handle])
    );
    assert_eq!(
        db.locate_handle(Search::ByRegisterNotify(key)),
        Ok(vec![i2.handle])
    );
    assert_eq!(
        db.locate_handle(Search::ByRegisterNotify(key)),
        Err(Status::NOT_FOUND)
    );
    // Reinstall counts as new; so does LocateProtocol with the registration.
    assert_eq!(
        db.reinstall_protocol(old, &BLOCK_IO, 1, 10),
        Ok(vec![ev(0x77)])
    );
    assert_eq!(db.locate_protocol(&BLOCK_IO, Some(key)), Ok(10));
    assert_eq!(
        db.locate_protocol(&BLOCK_IO, Some(key)),
        Err(Status::NOT_FOUND)
    );
    // A handle whose protocol went away before it was collected is skipped.
    let i3 = db.install_protocol(None, BLOCK_IO, 5).unwrap();
    let i4 = db.install_protocol(None, BLOCK_IO, 6).unwrap();
    db.uninstall_protocol(i3.handle, &BLOCK_IO, 5).unwrap();
    assert_eq!(
        db.locate_handle(Search::ByRegisterNotify(key)),
        Ok(vec![i4.handle])
    );
    // Other registration untouched; unknown keys.
    assert_eq!(
        db.locate_handle(Search::ByRegisterNotify(key2)),
        Err(Status::NOT_FOUND)
    );
    let bogus = Registration::from_raw(0x4242).unwrap();
    assert_eq!(
        db.locate_handle(Search::ByRegisterNotify(bogus)),
        Err(Status::INVALID_PARAMETER)
    );
    assert_eq!(
        db.locate_protocol(&BLOCK_IO, Some(bogus)),
        Err(Status::NOT_FOUND)
    );
    // Closing the event drops its registration.
    assert_eq!(db.unregister_event(ev(0x77)), 1);
    assert_eq!(
        db.install_protocol(None, BLOCK_IO, 7).unwrap().notify,
        vec![]
    );
    assert_eq!(
        db.locate_handle(Search::ByRegisterNotify(key)),
        Err(Status::INVALID_PARAMETER)
    );
}

#[test]
fn install_multiple_signals_each_event_once() {
    let mut db = HandleDb::new();
    db.register_protocol_notify(BLOCK_IO, ev(0x10)).unwrap();
    db.register_protocol_notify(DISK_IO, ev(0x10)).unwrap();
    db.register_protocol_notify(DISK_IO, ev(0x20)).unwrap();
    let done = db
        .install_multiple(None, &[(BLOCK_IO, 1), (DISK_IO, 2)], |_| None)
        .unwrap();
    assert_eq!(done.notify, vec![ev(0x10), ev(0x20)]);
}
