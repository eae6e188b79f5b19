//! UEFI device paths, as guest code hands them to LoadImage,
//! LocateDevicePath and the DevicePathToText/FromText protocols: the byte
//! parser, text conversion both ways, the size walk the firmware uses on raw
//! pointers, and the handle database's longest-prefix match.
#![no_main]

use ember_uefi_data::devpath::{self, DevicePath};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The size walk over "memory" must agree with the parser on valid paths
    // and never read past what it was given.
    let walked = ember_efi::devpath::device_path_size(|off| {
        data.get(off..off + 4).map(|b| [b[0], b[1], b[2], b[3]])
    });
    if let Ok(p) = DevicePath::parse(data) {
        let text = p.to_text(false, false);
        let _ = p.to_text(true, true);
        let _ = p.instances();
        let _ = p.file_path_text();
        let _ = p.split_last_file_path();
        if let Ok(n) = walked {
            assert_eq!(n, p.size(), "size walk and parser disagree");
        }
        // Whatever text we print must parse back without panicking, and
        // what it parses to must be a well-formed path.
        if let Ok(back) = devpath::from_text(&text) {
            assert!(DevicePath::parse(&back).is_ok(), "from_text produced a malformed path for {text:?}");
        }
        // Longest-prefix match against itself and a truncated copy.
        let mut db = ember_efi::HandleDb::new();
        let g = ember_efi::Guid([7; 16]);
        let dpg = ember_efi::Guid([8; 16]);
        let bytes = p.as_bytes().to_vec();
        if let Ok(h) = db.install_protocol(None, dpg, 1).map(|i| i.handle) {
            let _ = db.install_protocol(Some(h), g, 2);
            let _ = db.locate_device_path(&g, &bytes, |_| Some(bytes.as_slice()));
        }
    }
    // Arbitrary text into the text parser.
    if let Ok(s) = core::str::from_utf8(data) {
        let _ = devpath::from_text(s);
        let _ = devpath::node_from_text(s);
    }
    // The input as a Boot#### load option: what parses must encode and
    // parse back to the same option, with a well-formed single-instance path.
    if let Ok(o) = ember_uefi_data::loadopt::LoadOption::parse(data) {
        let dp = DevicePath::parse(&o.file_path).expect("parsed option carries a valid path");
        assert!(!dp.is_multi_instance(), "file path keeps only the first instance");
        let again = ember_uefi_data::loadopt::LoadOption::parse(&o.to_bytes()).expect("re-encoded option parses");
        assert_eq!(again, o, "load option round trip");
        // The boot manager: resolving the option's path against a fixed set
        // of disks, and reconciling a BootOrder that names it.
        use ember_uefi_data::bootmgr::{self, MediaDisk, MediaPartition};
        let disks = [
            MediaDisk {
                path: devpath::from_nodes(&[&devpath::pci_root(0), &devpath::pci(3, 0)]).expect("valid"),
                name: "d0".into(),
                partitions: vec![MediaPartition { number: 1, first_lba: 2048, num_blocks: 4096, guid: Some(ember_uefi_data::Guid([1; 16])) }],
            },
            MediaDisk {
                path: devpath::from_nodes(&[&devpath::virtio_mmio(0xfeb0_0000)]).expect("valid"),
                name: "d1".into(),
                partitions: vec![MediaPartition { number: 1, first_lba: 63, num_blocks: 100, guid: None }],
            },
        ];
        if let Ok(t) = bootmgr::resolve(&o.file_path, &disks) {
            let (bootmgr::Target::Disk { disk } | bootmgr::Target::Partition { disk, .. } | bootmgr::Target::File { disk, .. }) = t;
            assert!(disk < disks.len(), "resolve named a disk that does not exist");
        }
        let mut opts = std::collections::BTreeMap::new();
        opts.insert(7u16, Some(o.clone()));
        let order: Vec<u16> = data.chunks_exact(2).take(8).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        let plan = bootmgr::reconcile(&order, &opts, &disks);
        assert_eq!(plan.disk_option.len(), disks.len(), "every disk gets an option");
        for n in &plan.boot_order {
            assert!(opts.contains_key(n) || plan.write.iter().any(|(w, _)| w == n), "BootOrder names a missing option");
        }
        let _ = bootmgr::attempts(order.first().copied(), &plan.boot_order, &opts);
    }
});
