use crate::bootorder::{MAX_BOOT_ENTRIES, MAX_LINE_LEN, MAX_PCI_DEPTH};
use crate::{parse_bootorder, parse_bootorder_bytes, BootPath, BootTarget, Location};
use std::string::String;
use std::vec::Vec;

fn pci(target: &BootTarget) -> Option<Vec<(u8, u8)>> {
    match target {
        BootTarget::Pci(p) => Some(p.as_slice().to_vec()),
        _ => None,
    }
}

fn all(bytes: &[u8]) -> Vec<BootPath<'_>> {
    parse_bootorder_bytes(bytes).collect()
}

#[test]
fn q35_fixture() {
    // bootindex 1: virtio-blk-pci at 00:04.0; 2: virtio-blk-pci behind a
    // pcie-root-port at 00:02.0; 3: scsi-hd on virtio-scsi-pci at 00:05.0.
    let raw = include_bytes!("../../testdata/q35-bootorder.bin");
    assert_eq!(raw.last(), Some(&0));
    let e = all(raw);
    assert_eq!(e.len(), 3);
    assert_eq!(e[0].raw, "/pci@i0cf8/scsi@4/disk@0,0");
    assert_eq!(pci(&e[0].target), Some(std::vec![(4, 0)]));
    assert_eq!(e[0].suffix, "/disk@0,0");
    assert_eq!(pci(&e[1].target), Some(std::vec![(2, 0), (0, 0)]));
    assert_eq!(e[1].suffix, "/disk@0,0");
    assert_eq!(pci(&e[2].target), Some(std::vec![(5, 0)]));
    assert_eq!(e[2].suffix, "/channel@0/disk@0,0");
    assert_eq!(e.iter().map(|p| p.index).collect::<Vec<_>>(), [0, 1, 2]);

    let order = || parse_bootorder_bytes(raw);
    assert_eq!(
        order().priority(&Location::Pci { path: &[(4, 0)] }),
        Some(0)
    );
    assert_eq!(
        order().priority(&Location::Pci {
            path: &[(2, 0), (0, 0)]
        }),
        Some(1)
    );
    assert_eq!(
        order().priority(&Location::Pci { path: &[(5, 0)] }),
        Some(2)
    );
    // The bridge itself, a device at the same slot on the root bus, and
    // other functions are different locations.
    assert_eq!(order().priority(&Location::Pci { path: &[(2, 0)] }), None);
    assert_eq!(order().priority(&Location::Pci { path: &[(0, 0)] }), None);
    assert_eq!(order().priority(&Location::Pci { path: &[(4, 1)] }), None);
    assert_eq!(order().priority(&Location::Mmio(4)), None);
}

#[test]
fn pc_fixture_functions_nvme_ide() {
    let e = all(include_bytes!("../../testdata/pc-bootorder.bin"));
    let raws: Vec<&str> = e.iter().map(|p| p.raw).collect();
    assert_eq!(
        raws,
        [
            "/pci@i0cf8/pci-bridge@3/scsi@1,2/disk@0,0",
            "/pci@i0cf8/scsi@5,3/disk@0,0",
            "/pci@i0cf8/scsi@5/disk@0,0",
            "/pci@i0cf8/pci1b36,0010@2/namespace@1,0",
            "/pci@i0cf8/ide@1,1/drive@1/disk@0",
        ]
    );
    assert_eq!(pci(&e[0].target), Some(std::vec![(3, 0), (1, 2)]));
    assert_eq!(pci(&e[1].target), Some(std::vec![(5, 3)]));
    assert_eq!(pci(&e[2].target), Some(std::vec![(5, 0)]));
    // The NVMe controller's name has a comma but its unit is still "2".
    assert_eq!(pci(&e[3].target), Some(std::vec![(2, 0)]));
    assert_eq!(e[3].suffix, "/namespace@1,0");
    assert_eq!(pci(&e[4].target), Some(std::vec![(1, 1)]));
    assert_eq!(e[4].suffix, "/drive@1/disk@0");

    let p = |path: &[(u8, u8)]| {
        parse_bootorder_bytes(include_bytes!("../../testdata/pc-bootorder.bin"))
            .priority(&Location::Pci { path })
    };
    assert_eq!(p(&[(3, 0), (1, 2)]), Some(0));
    assert_eq!(p(&[(5, 3)]), Some(1));
    assert_eq!(p(&[(5, 0)]), Some(2));
    assert_eq!(p(&[(2, 0)]), Some(3));
    assert_eq!(p(&[(1, 1)]), Some(4));
    assert_eq!(p(&[(1, 2)]), None);
    assert_eq!(p(&[(3, 0), (1, 0)]), None);
}

#[test]
fn microvm_fixture() {
    let e = all(include_bytes!("../../testdata/microvm-bootorder.bin"));
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].target, BootTarget::Mmio(0xfeb0_2c00));
    assert_eq!(e[0].suffix, "/disk@0,0");
    assert_eq!(e[1].target, BootTarget::Mmio(0xfeb0_2e00));
    let order = || parse_bootorder_bytes(include_bytes!("../../testdata/microvm-bootorder.bin"));
    assert_eq!(order().priority(&Location::Mmio(0xfeb0_2e00)), Some(1));
    assert_eq!(order().priority(&Location::Mmio(0xfeb0_2c00)), Some(0));
    assert_eq!(order().priority(&Location::Mmio(0xfeb0_3000)), None);
    assert_eq!(order().priority(&Location::Pci { path: &[(0, 0)] }), None);
}

#[test]
fn halt_and_other_entries_keep_their_index() {
    let t = "/isa/fdc@03f0/floppy@0\n/rom@genroms/linuxboot_dma.bin\n/pci@i0cf8/scsi@3/disk@0,0\nHALT\n";
    let e: Vec<_> = parse_bootorder(t).collect();
    assert_eq!(e.len(), 4);
    assert_eq!(e[0].target, BootTarget::Other);
    assert_eq!(e[1].target, BootTarget::Other);
    assert_eq!(e[2].index, 2);
    assert_eq!(e[3].target, BootTarget::Halt);
    assert_eq!(
        parse_bootorder(t).priority(&Location::Pci { path: &[(3, 0)] }),
        Some(2)
    );
}

#[test]
fn blank_lines_crlf_and_missing_nul() {
    let t = "\n\r\n  /pci@i0cf8/scsi@A/disk@0,0\r\n\n/pci@i0cf8/scsi@b,7\n";
    let e: Vec<_> = parse_bootorder(t).collect();
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].raw, "/pci@i0cf8/scsi@A/disk@0,0");
    assert_eq!(pci(&e[0].target), Some(std::vec![(10, 0)]));
    assert_eq!(
        (e[1].index, pci(&e[1].target)),
        (1, Some(std::vec![(11, 7)]))
    );
    assert_eq!(e[1].suffix, "");
}

#[test]
fn stops_at_nul() {
    let e: Vec<_> = parse_bootorder("/pci@i0cf8/scsi@3\0/pci@i0cf8/scsi@4\n").collect();
    assert_eq!(e.len(), 1);
    assert!(parse_bootorder("\0/pci@i0cf8/scsi@4").next().is_none());
    assert!(parse_bootorder("").next().is_none());
}

#[test]
fn non_utf8_tail_is_dropped() {
    let e = all(b"/pci@i0cf8/scsi@3/disk@0,0\n/pci@i0cf8/sc\xffsi@4\n/pci@i0cf8/scsi@5\n");
    assert_eq!(e.len(), 2);
    assert_eq!(e[1].raw, "/pci@i0cf8/sc");
    assert_eq!(e[1].target, BootTarget::Other);
    assert!(all(b"\xff/pci@i0cf8/scsi@3").is_empty());
}

#[test]
fn malformed_pci_units() {
    for line in [
        "/pci@i0cf8",
        "/pci@i0cf8/",
        "/pci@i0cf8/scsi",
        "/pci@i0cf8/scsi@",
        "/pci@i0cf8/scsi@20",
        "/pci@i0cf8/scsi@1,8",
        "/pci@i0cf8/scsi@1,",
        "/pci@i0cf8/scsi@,1",
        "/pci@i0cf8/scsi@001",
        "/pci@i0cf8/scsi@1,01",
        "/pci@i0cf8/scsi@g",
        "/pci@i0cf8/scsi@+1",
        "/pci@i0cf9/scsi@1",
        "/pci-root@1/scsi@1",
        "pci@i0cf8/scsi@1",
        "//pci@i0cf8/scsi@1",
        "halt",
    ] {
        let e: Vec<_> = parse_bootorder(line).collect();
        assert_eq!(e.len(), 1, "{line}");
        assert_eq!(e[0].target, BootTarget::Other, "{line}");
        assert_eq!(e[0].suffix, "", "{line}");
    }
}

#[test]
fn path_stops_at_first_non_bridge_or_bad_unit() {
    // A bridge followed by garbage is still the bridge's path.
    let e: Vec<_> = parse_bootorder("/pci@i0cf8/pci-bridge@1/floppy").collect();
    assert_eq!(pci(&e[0].target), Some(std::vec![(1, 0)]));
    assert_eq!(e[0].suffix, "/floppy");
    // Components after the device are never hops, even if they look like it.
    let e: Vec<_> = parse_bootorder("/pci@i0cf8/scsi@1/pci-bridge@2/disk@3").collect();
    assert_eq!(pci(&e[0].target), Some(std::vec![(1, 0)]));
    assert_eq!(e[0].suffix, "/pci-bridge@2/disk@3");
}

#[test]
fn depth_limit() {
    let mut ok = String::from("/pci@i0cf8");
    for i in 0..MAX_PCI_DEPTH - 1 {
        ok.push_str(&std::format!("/pci-bridge@{i:x}"));
    }
    ok.push_str("/scsi@1f,7/disk@0,0");
    let e: Vec<_> = parse_bootorder(&ok).collect();
    let hops = pci(&e[0].target).unwrap();
    assert_eq!(hops.len(), MAX_PCI_DEPTH);
    assert_eq!(hops.last(), Some(&(0x1f, 7)));

    let deep = ok.replace("/scsi@", "/pci-bridge@0/scsi@");
    let e: Vec<_> = parse_bootorder(&deep).collect();
    assert_eq!(e[0].target, BootTarget::Other);
}

#[test]
fn mmio_forms() {
    let e: Vec<_> = parse_bootorder(
        "/virtio-mmio@feb00000\n/virtio-mmio@FFFFFFFFFFFFFFFF/disk@0,0\n/virtio-mmio@10000000000000000\n/virtio-mmio@\n/virtio-mmio/disk@0,0",
    )
    .collect();
    assert_eq!(e[0].target, BootTarget::Mmio(0xfeb0_0000));
    assert_eq!(e[1].target, BootTarget::Mmio(u64::MAX));
    assert_eq!(e[2].target, BootTarget::Other);
    assert_eq!(e[3].target, BootTarget::Other);
    assert_eq!(e[4].target, BootTarget::Other);
}

#[test]
fn long_lines_are_other() {
    let mut line = String::from("/pci@i0cf8/scsi@3/disk@0,0/");
    line.push_str(&"x".repeat(MAX_LINE_LEN));
    let e: Vec<_> = parse_bootorder(&line).collect();
    assert_eq!(e[0].target, BootTarget::Other);
    assert_eq!(e[0].raw.len(), line.len());
}

#[test]
fn entry_cap() {
    let text = "/pci@i0cf8/scsi@3\n".repeat(MAX_BOOT_ENTRIES + 10);
    assert_eq!(parse_bootorder(&text).count(), MAX_BOOT_ENTRIES);
    // A device listed only past the cap is not found.
    let mut text = "HALT\n".repeat(MAX_BOOT_ENTRIES);
    text.push_str("/pci@i0cf8/scsi@3\n");
    assert_eq!(
        parse_bootorder(&text).priority(&Location::Pci { path: &[(3, 0)] }),
        None
    );
}

#[test]
fn first_match_wins() {
    let t = "/pci@i0cf8/scsi@5/channel@0/disk@0,0\n/pci@i0cf8/scsi@5/channel@0/disk@1,0\n";
    assert_eq!(
        parse_bootorder(t).priority(&Location::Pci { path: &[(5, 0)] }),
        Some(0)
    );
}
