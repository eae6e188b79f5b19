use super::*;
use alloc::vec;

/// Hand-assembled bytes following the node layouts of UEFI spec 10.3, so
/// the builders and the parser are checked against an independent source.
const PCI_ROOT_0: [u8; 12] = [0x02, 0x01, 0x0C, 0x00, 0xD0, 0x41, 0x03, 0x0A, 0, 0, 0, 0];
const PCI_1F_2: [u8; 6] = [0x01, 0x01, 0x06, 0x00, 0x02, 0x1F];
const SATA_0_FFFF_0: [u8; 10] = [0x03, 0x12, 0x0A, 0x00, 0, 0, 0xFF, 0xFF, 0, 0];
const END: [u8; 4] = [0x7F, 0xFF, 0x04, 0x00];

fn hd_mbr() -> Vec<u8> {
    let mut v = vec![0x04, 0x01, 42, 0];
    v.extend_from_slice(&1u32.to_le_bytes());
    v.extend_from_slice(&0x3Fu64.to_le_bytes());
    v.extend_from_slice(&0xFBFC1u64.to_le_bytes());
    let mut sig = [0u8; 16];
    sig[..4].copy_from_slice(&0xBE1AFDFAu32.to_le_bytes());
    v.extend_from_slice(&sig);
    v.extend_from_slice(&[1, 1]);
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.iter().flat_map(|p| p.iter().copied()).collect()
}

#[test]
fn spec_example_sata_mbr() {
    // The example path of UEFI spec 10.6.1.6 / the uefi-rs docs.
    let path = cat(&[&PCI_ROOT_0, &PCI_1F_2, &SATA_0_FFFF_0, &hd_mbr(), &END]);
    assert_eq!(
        to_text(&path, false, false).unwrap(),
        "PciRoot(0x0)/Pci(0x1F,0x2)/Sata(0x0,0xFFFF,0x0)/HD(1,MBR,0xBE1AFDFA,0x3F,0xFBFC1)"
    );
    // The builders produce exactly the hand-assembled bytes.
    assert_eq!(pci_root(0), PCI_ROOT_0);
    assert_eq!(pci(0x1F, 2), PCI_1F_2);
    assert_eq!(
        hard_drive(1, 0x3F, 0xFBFC1, PartitionSignature::Mbr(0xBE1AFDFA)),
        hd_mbr()
    );
    let p = DevicePath::parse(&path).unwrap();
    assert_eq!(p.size(), path.len());
    assert_eq!(p.nodes().count(), 4);
}

#[test]
fn gpt_file_path_as_ovmf_prints_it() {
    let guid = Guid::parse("9a0d6f6e-6c63-4c3b-a2c3-0d0b1c2a1e70").unwrap();
    let path = from_nodes(&[
        &pci_root(0),
        &pci(2, 0),
        &hard_drive(1, 0x800, 0x20000, PartitionSignature::Gpt(guid)),
        &file_path("\\EFI\\BOOT\\BOOTX64.EFI").unwrap(),
    ])
    .unwrap();
    assert_eq!(
        to_text(&path, false, false).unwrap(),
        "PciRoot(0x0)/Pci(0x2,0x0)/HD(1,GPT,9A0D6F6E-6C63-4C3B-A2C3-0D0B1C2A1E70,0x800,0x20000)/\\EFI\\BOOT\\BOOTX64.EFI"
    );
    // HD node: 42 bytes, format 2, signature type 2 (spec table 10-?? fields).
    let hd = DevicePath::parse(&path).unwrap().nodes().nth(2).unwrap();
    assert_eq!(hd.bytes().len(), 42);
    assert_eq!(&hd.bytes()[40..], &[2, 2]);
    assert_eq!(&hd.bytes()[24..28], &[0x6E, 0x6F, 0x0D, 0x9A]);
    // File node: UTF-16LE with NUL: 4 + 2 * (21 + 1) bytes.
    let f = DevicePath::parse(&path).unwrap().nodes().nth(3).unwrap();
    assert_eq!(f.bytes().len(), 4 + 44);
    assert_eq!(&f.bytes()[..6], &[0x04, 0x04, 48, 0, b'\\', 0]);
    assert_eq!(&f.bytes()[46..], &[0, 0]);
}

#[test]
fn acpi_text_forms() {
    let t = |n: Vec<u8>| node_to_text(&Node::parse(&n).unwrap(), false, false);
    assert_eq!(t(pcie_root(1)), "PcieRoot(0x1)");
    assert_eq!(t(acpi(eisa_pnp_id(0x0501), 0)), "Serial(0x0)");
    assert_eq!(t(acpi(eisa_pnp_id(0x0C0C), 3)), "Acpi(PNP0C0C,0x3)");
    assert_eq!(t(acpi(0x1234_5678, 0xA)), "Acpi(0x12345678,0xA)");
}

#[test]
fn vendor_memmap_media_text() {
    let n = virtio_mmio(0xFEB0_0000);
    assert_eq!(n.len(), 4 + 16 + 8);
    assert_eq!(
        node_to_text(&Node::parse(&n).unwrap(), false, false),
        "VenHw(05A3484D-D206-4A87-B2F8-94F175F4BA02,0000B0FE00000000)"
    );
    let p = linux_initrd_media_path();
    assert_eq!(p.len(), 24);
    assert_eq!(&p[..4], &[0x04, 0x03, 20, 0]);
    assert_eq!(&p[4..8], &[0x27, 0xE4, 0x68, 0x55]);
    assert_eq!(
        to_text(&p, false, false).unwrap(),
        "VenMedia(5568E427-68FC-4F3D-AC74-CA555231CC68)"
    );
    let m = memory_mapped(11, 0xFED0_0000, 0xFED0_0FFF);
    assert_eq!(m.len(), 24);
    assert_eq!(
        node_to_text(&Node::parse(&m).unwrap(), false, false),
        "MemoryMapped(0xB,0xFED00000,0xFED00FFF)"
    );
}

#[test]
fn cdrom_display_only_and_shortcuts() {
    let c = cdrom(1, 0x10, 0x200);
    let n = Node::parse(&c).unwrap();
    assert_eq!(node_to_text(&n, true, false), "CDROM(0x1)");
    assert_eq!(node_to_text(&n, false, false), "CDROM(0x1,0x10,0x200)");
    let mut v = vec![0x03, 0x0A, 20, 0];
    v.extend_from_slice(VT100_GUID.as_bytes());
    let n = Node::parse(&v).unwrap();
    assert_eq!(node_to_text(&n, false, true), "VenVt100()");
    assert_eq!(
        node_to_text(&n, false, false),
        "VenMsg(DFA66065-B419-11D3-9A2D-0090273FC14D)"
    );
}

#[test]
fn messaging_nodes() {
    let scsi = [0x03, 0x02, 8, 0, 1, 0, 2, 0];
    assert_eq!(
        node_to_text(&Node::parse(&scsi).unwrap(), false, false),
        "Scsi(0x1,0x2)"
    );
    let mut nvme = vec![0x03, 0x17, 16, 0, 1, 0, 0, 0];
    nvme.extend_from_slice(&0x0011_2233_4455_6677u64.to_le_bytes());
    assert_eq!(
        node_to_text(&Node::parse(&nvme).unwrap(), false, false),
        "NVMe(0x1,00-11-22-33-44-55-66-77)"
    );
    let mut uart = vec![0x03, 0x0E, 19, 0, 0, 0, 0, 0];
    uart.extend_from_slice(&115200u64.to_le_bytes());
    uart.extend_from_slice(&[8, 1, 1]);
    assert_eq!(
        node_to_text(&Node::parse(&uart).unwrap(), false, false),
        "Uart(115200,8,N,1)"
    );
    let mut mac = vec![0x03, 0x0B, 37, 0, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    mac.extend_from_slice(&[0; 26]);
    mac.push(1);
    assert_eq!(
        node_to_text(&Node::parse(&mac).unwrap(), false, false),
        "MAC(525400123456,0x1)"
    );
    let mut ip = vec![
        0x03, 0x0C, 27, 0, 10, 0, 2, 15, 192, 168, 1, 1, 0, 0, 0x45, 0, 17, 0, 0,
    ];
    ip.extend_from_slice(&[10, 0, 2, 2, 255, 255, 255, 0]);
    let n = Node::parse(&ip).unwrap();
    assert_eq!(
        node_to_text(&n, false, false),
        "IPv4(192.168.1.1,UDP,DHCP,10.0.2.15,10.0.2.2,255.255.255.0)"
    );
    assert_eq!(node_to_text(&n, true, false), "IPv4(192.168.1.1)");
}

#[test]
fn generic_and_short_nodes() {
    // Unknown type: Path(type,subtype,data); known type, unknown subtype.
    assert_eq!(
        node_to_text(
            &Node::parse(&[0x30, 0x07, 6, 0, 0xAB, 0xCD]).unwrap(),
            false,
            false
        ),
        "Path(48,7,ABCD)"
    );
    assert_eq!(
        node_to_text(
            &Node::parse(&[0x01, 0x05, 5, 0, 0x03]).unwrap(),
            false,
            false
        ),
        "HardwarePath(5,03)"
    );
    // A PCI node too short for its fields falls back instead of misreading.
    assert_eq!(
        node_to_text(
            &Node::parse(&[0x01, 0x01, 5, 0, 0x03]).unwrap(),
            false,
            false
        ),
        "HardwarePath(1,03)"
    );
    assert_eq!(
        node_to_text(&Node::parse(&[0x04, 0x01, 4, 0]).unwrap(), false, false),
        "MediaPath(1)"
    );
}

#[test]
fn multi_instance() {
    let a = from_nodes(&[&pci_root(0), &pci(1, 0)]).unwrap();
    let b = from_nodes(&[&pci_root(1), &pci(3, 1)]).unwrap();
    let m = append_instance(&a, &b).unwrap();
    let p = DevicePath::parse(&m).unwrap();
    assert!(p.is_multi_instance());
    assert!(!DevicePath::parse(&a).unwrap().is_multi_instance());
    assert_eq!(
        p.to_text(false, false),
        "PciRoot(0x0)/Pci(0x1,0x0),PciRoot(0x1)/Pci(0x3,0x1)"
    );
    assert_eq!(p.instances(), vec![a, b]);
}

#[test]
fn append_and_split() {
    let dev = from_nodes(&[&pci_root(0), &pci(4, 0)]).unwrap();
    let file = from_nodes(&[
        &file_path("\\EFI").unwrap(),
        &file_path("BOOT\\GRUBX64.EFI").unwrap(),
    ])
    .unwrap();
    let full = append(&dev, &file).unwrap();
    assert_eq!(full.len(), dev.len() + file.len() - 4);
    let p = DevicePath::parse(&full).unwrap();
    assert_eq!(
        p.file_path_text().unwrap().as_deref(),
        Some("\\EFI\\BOOT\\GRUBX64.EFI")
    );
    assert_eq!(p.split_last_file_path(), Some((dev.clone(), file.clone())));
    assert_eq!(
        DevicePath::parse(&dev).unwrap().split_last_file_path(),
        None
    );
    assert_eq!(
        DevicePath::parse(&dev).unwrap().file_path_text().unwrap(),
        None
    );
    assert_eq!(
        p.strip_prefix(&DevicePath::parse(&dev).unwrap()),
        Some(file.as_slice())
    );
    assert_eq!(DevicePath::parse(&dev).unwrap().strip_prefix(&p), None);
    let with_node = append_node(&dev, &file_path("x").unwrap()).unwrap();
    assert_eq!(
        to_text(&with_node, false, false).unwrap(),
        "PciRoot(0x0)/Pci(0x4,0x0)/x"
    );
    // Appending to the empty path (just End) gives the other path.
    assert_eq!(append(&END, &dev).unwrap(), dev);
    assert_eq!(to_text(&END, false, false).unwrap(), "");
}

#[test]
fn file_names_and_utf16() {
    let p = from_nodes(&[&file_path("\\a\\").unwrap(), &file_path("\\b").unwrap()]).unwrap();
    assert_eq!(
        DevicePath::parse(&p)
            .unwrap()
            .file_path_text()
            .unwrap()
            .as_deref(),
        Some("\\a\\\\b")
    );
    // Lone surrogate D800 in a file node: error for lookups, U+FFFD in text.
    let bad = [0x04, 0x04, 8, 0, 0x00, 0xD8, 0, 0, 0x7F, 0xFF, 4, 0];
    let p = DevicePath::parse(&bad).unwrap();
    assert_eq!(
        p.file_path_text(),
        Err(DevPathError::BadFileName { offset: 0 })
    );
    assert_eq!(p.to_text(false, false), "\u{FFFD}");
}

#[test]
fn hostile_inputs() {
    assert_eq!(DevicePath::parse(&[]), Err(DevPathError::MissingEnd));
    assert_eq!(
        DevicePath::parse(&[0x7F, 0xFF]),
        Err(DevPathError::Truncated { offset: 0 })
    );
    assert_eq!(
        DevicePath::parse(&[0x01, 0x01, 2, 0, 0x7F, 0xFF, 4, 0]),
        Err(DevPathError::BadNodeLength { offset: 0, len: 2 })
    );
    assert_eq!(
        DevicePath::parse(&[0x01, 0x01, 0x10, 0, 0, 0]),
        Err(DevPathError::NodeOverrun {
            offset: 0,
            len: 16,
            available: 6
        })
    );
    // End-Instance alone does not end a path.
    assert_eq!(
        DevicePath::parse(&[0x7F, 0x01, 4, 0]),
        Err(DevPathError::MissingEnd)
    );
    // Trailing bytes after End are ignored.
    assert_eq!(
        DevicePath::parse(&[0x7F, 0xFF, 4, 0, 9, 9]).unwrap().size(),
        4
    );
    // Too many nodes: MAX_NODES four-byte nodes without End.
    let many: Vec<u8> = core::iter::repeat_n([0x01, 0x05, 4, 0], MAX_NODES + 1)
        .flatten()
        .collect();
    assert_eq!(DevicePath::parse(&many), Err(DevPathError::TooManyNodes));
    // Too large: two 40000-byte nodes.
    let mut big = Vec::new();
    for _ in 0..2 {
        big.extend_from_slice(&[0x01, 0x05, 0x40, 0x9C]);
        big.resize(big.len() + 40000 - 4, 0);
    }
    big.extend_from_slice(&END);
    assert_eq!(
        DevicePath::parse(&big),
        Err(DevPathError::TooLarge { size: 80000 })
    );
    // Builders refuse nodes that do not fit the length field.
    let long = "x".repeat(40000);
    assert_eq!(
        file_path(&long),
        Err(DevPathError::NodeTooLarge { size: 80006 })
    );
    // from_nodes rejects a slice that is not exactly one node.
    assert!(from_nodes(&[&[0x01, 0x01, 6, 0, 0, 0, 0]]).is_err());
}

#[test]
fn mutations_never_panic() {
    let guid = Guid::parse("9a0d6f6e-6c63-4c3b-a2c3-0d0b1c2a1e70").unwrap();
    let path = from_nodes(&[
        &pci_root(0),
        &pci(2, 0),
        &hard_drive(1, 0x800, 0x20000, PartitionSignature::Gpt(guid)),
        &file_path("\\EFI\\BOOT\\BOOTX64.EFI").unwrap(),
    ])
    .unwrap();
    // Deterministic xorshift so failures reproduce.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..3000 {
        let mut m = path.clone();
        for _ in 0..3 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x as usize) % m.len();
            m[i] = (x >> 32) as u8;
        }
        let cut = (x >> 40) as usize % (m.len() + 1);
        for buf in [&m[..], &m[..cut]] {
            if let Ok(p) = DevicePath::parse(buf) {
                let _ = p.to_text(true, true);
                let _ = p.to_text(false, false);
                let _ = p.file_path_text();
                let _ = p.split_last_file_path();
                let _ = p.instances();
            }
        }
    }
}

#[test]
fn from_text_roundtrips_to_text() {
    for t in [
        "PciRoot(0x0)/Pci(0x1F,0x2)/Sata(0x0,0xFFFF,0x0)/HD(1,MBR,0xBE1AFDFA,0x3F,0xFBFC1)",
        "PciRoot(0x0)/Pci(0x2,0x0)/HD(1,GPT,9A0D6F6E-6C63-4C3B-A2C3-0D0B1C2A1E70,0x800,0x20000)/\\EFI\\BOOT\\BOOTX64.EFI",
        "PcieRoot(0x1)/Pci(0x0,0x0)/Scsi(0x1,0x2)",
        "Acpi(PNP0C0C,0x3),Acpi(0x12345678,0xA)",
        "VenHw(05A3484D-D206-4A87-B2F8-94F175F4BA02,0000B0FE00000000)/CDROM(0x1,0x10,0x200)",
        "VenMedia(5568E427-68FC-4F3D-AC74-CA555231CC68)",
        "MemoryMapped(0xB,0xFED00000,0xFED00FFF)",
        "VenMsg(DFA66065-B419-11D3-9A2D-0090273FC14D)",
        "Path(48,7,ABCD)",
        "",
    ] {
        let bytes = from_text(t).unwrap_or_else(|e| panic!("{t}: {e}"));
        assert_eq!(to_text(&bytes, false, false).unwrap(), t);
    }
    // Byte-exact against the hand-assembled spec example.
    let path = cat(&[&PCI_ROOT_0, &PCI_1F_2, &SATA_0_FFFF_0, &hd_mbr(), &END]);
    assert_eq!(
        from_text("PciRoot(0)/Pci(31,2)/Sata(0,0xFFFF,0)/HD(1,MBR,0xBE1AFDFA,63,0xFBFC1)").unwrap(),
        path
    );
    assert_eq!(node_from_text("Pci(0x1F,0x2)").unwrap(), PCI_1F_2);
}

#[test]
fn from_text_rejects_bad_text() {
    for t in [
        "Pci(0x100,0)",
        "Pci(1)",
        "PciRoot(0x0",
        "PciRoot(0x0))",
        "PciRoot(x)",
        "HD(1,XYZ,0,1,2)",
        "VenHw(not-a-guid)",
        "VenHw(05A3484D-D206-4A87-B2F8-94F175F4BA02,ABC)",
        "PciRoot(0)//Pci(1,0)",
        "Acpi(PNPXYZW,0)",
    ] {
        assert!(
            matches!(from_text(t), Err(DevPathError::BadText { .. })),
            "{t} should be rejected"
        );
    }
    // Unknown names are file paths, like EDK2.
    let f = from_text("\\EFI\\x.efi").unwrap();
    assert_eq!(
        DevicePath::parse(&f)
            .unwrap()
            .file_path_text()
            .unwrap()
            .as_deref(),
        Some("\\EFI\\x.efi")
    );
}
