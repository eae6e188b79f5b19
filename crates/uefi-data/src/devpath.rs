//! UEFI device paths (UEFI spec chapter 10): parsing, building and the
//! text form of `EFI_DEVICE_PATH_TO_TEXT_PROTOCOL`.
//!
//! A device path is a sequence of nodes, each a 4-byte header (type,
//! subtype, little-endian total length ≥ 4) plus data, ending with the
//! End-Entire node `7F FF 04 00`. End-Instance nodes `7F 01 04 00` separate
//! the instances of a multi-instance path. Paths come from UEFI
//! applications, so [`DevicePath::parse`] bounds the node count and total
//! size and checks every length before anything looks inside a node.

use crate::Guid;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};
use zerocopy::byteorder::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Hardware device path type.
pub const TYPE_HARDWARE: u8 = 0x01;
/// ACPI device path type.
pub const TYPE_ACPI: u8 = 0x02;
/// Messaging device path type.
pub const TYPE_MESSAGING: u8 = 0x03;
/// Media device path type.
pub const TYPE_MEDIA: u8 = 0x04;
/// BIOS Boot Specification device path type.
pub const TYPE_BBS: u8 = 0x05;
/// End of path (or of an instance).
pub const TYPE_END: u8 = 0x7F;
/// End-Entire subtype: the last node of every path.
pub const SUBTYPE_END_ENTIRE: u8 = 0xFF;
/// End-Instance subtype: separates instances of a multi-instance path.
pub const SUBTYPE_END_INSTANCE: u8 = 0x01;

/// Hardware/PCI subtype.
pub const HW_PCI: u8 = 0x01;
/// Hardware/Memory Mapped subtype.
pub const HW_MEMMAP: u8 = 0x03;
/// Hardware/Vendor subtype.
pub const HW_VENDOR: u8 = 0x04;
/// ACPI/ACPI (`_HID`, `_UID`) subtype.
pub const ACPI_DP: u8 = 0x01;
/// Messaging/SCSI subtype.
pub const MSG_SCSI: u8 = 0x02;
/// Messaging/Vendor subtype.
pub const MSG_VENDOR: u8 = 0x0A;
/// Messaging/MAC address subtype.
pub const MSG_MAC: u8 = 0x0B;
/// Messaging/IPv4 subtype.
pub const MSG_IPV4: u8 = 0x0C;
/// Messaging/UART subtype.
pub const MSG_UART: u8 = 0x0E;
/// Messaging/SATA subtype.
pub const MSG_SATA: u8 = 0x12;
/// Messaging/NVM Express namespace subtype.
pub const MSG_NVME: u8 = 0x17;
/// Media/Hard Drive subtype.
pub const MEDIA_HARD_DRIVE: u8 = 0x01;
/// Media/CD-ROM subtype.
pub const MEDIA_CDROM: u8 = 0x02;
/// Media/Vendor subtype.
pub const MEDIA_VENDOR: u8 = 0x03;
/// Media/File Path subtype.
pub const MEDIA_FILE_PATH: u8 = 0x04;
/// Media/Media Protocol subtype.
pub const MEDIA_PROTOCOL: u8 = 0x05;

/// Most nodes a path may have; real paths have fewer than a dozen.
pub const MAX_NODES: usize = 1024;
/// Largest path accepted, End node included.
pub const MAX_PATH_SIZE: usize = 64 * 1024;

/// Vendor GUID of Ember's virtio-mmio hardware nodes; the node's vendor
/// data is the transport's MMIO base as a little-endian u64.
pub const EMBER_VIRTIO_MMIO_GUID: Guid =
    Guid::from_str_const("05A3484D-D206-4A87-B2F8-94F175F4BA02");
/// Linux's initrd media GUID: the Linux EFI stub looks for a
/// `LoadFile2` protocol on `VenMedia(this)/End` to fetch its initrd.
pub const LINUX_EFI_INITRD_MEDIA_GUID: Guid =
    Guid::from_str_const("5568e427-68fc-4f3d-ac74-ca555231cc68");
/// `EFI_PC_ANSI_GUID` (terminal type, text shortcut `VenPcAnsi()`).
pub const PC_ANSI_GUID: Guid = Guid::from_str_const("e0c14753-f9be-11d2-9a0c-0090273fc14d");
/// `EFI_VT_100_GUID` (text shortcut `VenVt100()`).
pub const VT100_GUID: Guid = Guid::from_str_const("dfa66065-b419-11d3-9a2d-0090273fc14d");
/// `EFI_VT_100_PLUS_GUID` (text shortcut `VenVt100Plus()`).
pub const VT100_PLUS_GUID: Guid = Guid::from_str_const("7baec70b-57e0-4c76-8e87-2f9e28088343");
/// `EFI_VT_UTF8_GUID` (text shortcut `VenUtf8()`).
pub const VT_UTF8_GUID: Guid = Guid::from_str_const("ad15a0d6-8bec-4acf-a073-d01de77e2d88");

/// The PNP EISA id the spec uses in ACPI nodes: compressed "PNP" in the
/// low half, the product number in the high half.
pub const fn eisa_pnp_id(product: u16) -> u32 {
    ((product as u32) << 16) | 0x41D0
}

/// Why a device path (or its text) was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevPathError {
    /// Fewer than 4 header bytes remain at `offset`.
    Truncated { offset: usize },
    /// A node at `offset` claims a length below the 4-byte header.
    BadNodeLength { offset: usize, len: usize },
    /// A node at `offset` claims `len` bytes but only `available` remain.
    NodeOverrun {
        offset: usize,
        len: usize,
        available: usize,
    },
    /// No End-Entire node (7F/FF) within the buffer.
    MissingEnd,
    /// More than [`MAX_NODES`] nodes.
    TooManyNodes,
    /// The path is larger than [`MAX_PATH_SIZE`].
    TooLarge { size: usize },
    /// A node to be built would not fit the 16-bit length field.
    NodeTooLarge { size: usize },
    /// A File Path node's name is not valid UTF-16.
    BadFileName { offset: usize },
    /// Device path text could not be parsed at byte `pos`.
    BadText { pos: usize, reason: &'static str },
}

impl fmt::Display for DevPathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DevPathError::Truncated { offset } => write!(
                f,
                "device path truncated: node header at byte {offset} is cut off (no End node?)"
            ),
            DevPathError::BadNodeLength { offset, len } => write!(
                f,
                "device path node at byte {offset} has length {len}, below the 4-byte header"
            ),
            DevPathError::NodeOverrun {
                offset,
                len,
                available,
            } => write!(
                f,
                "device path node at byte {offset} claims {len} bytes but only {available} remain"
            ),
            DevPathError::MissingEnd => {
                f.write_str("device path has no End-Entire node (7F FF 04 00)")
            }
            DevPathError::TooManyNodes => {
                write!(f, "device path has more than {MAX_NODES} nodes")
            }
            DevPathError::TooLarge { size } => write!(
                f,
                "device path of {size} bytes exceeds the {MAX_PATH_SIZE}-byte limit"
            ),
            DevPathError::NodeTooLarge { size } => write!(
                f,
                "device path node of {size} bytes does not fit the 16-bit length field"
            ),
            DevPathError::BadFileName { offset } => write!(
                f,
                "file path node at byte {offset} holds invalid UTF-16 (unpaired surrogate)"
            ),
            DevPathError::BadText { pos, reason } => {
                write!(f, "device path text invalid at byte {pos}: {reason}")
            }
        }
    }
}

/// The 4-byte header every node starts with.
#[repr(C)]
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
struct Header {
    ty: u8,
    sub: u8,
    len: U16,
}
const _: () = assert!(core::mem::size_of::<Header>() == 4);
const HDR: usize = core::mem::size_of::<Header>();

/// PCI node data (spec 10.3.2.1): function first, then device.
#[repr(C)]
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
struct PciData {
    function: u8,
    device: u8,
}
const _: () = assert!(core::mem::size_of::<PciData>() == 2);

/// ACPI node data (spec 10.3.3).
#[repr(C)]
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
struct AcpiData {
    hid: U32,
    uid: U32,
}
const _: () = assert!(core::mem::size_of::<AcpiData>() == 8);

/// Memory Mapped node data (spec 10.3.2.3).
#[repr(C)]
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
struct MemMapData {
    mem_type: U32,
    start: U64,
    end: U64,
}
const _: () = assert!(core::mem::size_of::<MemMapData>() == 20);

/// Hard Drive media node data (spec 10.3.5.1).
#[repr(C)]
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
struct HardDriveData {
    partition: U32,
    start: U64,
    size: U64,
    signature: [u8; 16],
    format: u8,
    signature_type: u8,
}
const _: () = assert!(core::mem::size_of::<HardDriveData>() == 38);

/// CD-ROM media node data (spec 10.3.5.2).
#[repr(C)]
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
struct CdromData {
    boot_entry: U32,
    start: U64,
    size: U64,
}
const _: () = assert!(core::mem::size_of::<CdromData>() == 20);

/// SCSI node data (spec 10.3.4.2).
#[repr(C)]
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
struct ScsiData {
    pun: U16,
    lun: U16,
}
const _: () = assert!(core::mem::size_of::<ScsiData>() == 4);

/// SATA node data (spec 10.3.4.6).
#[repr(C)]
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
struct SataData {
    hba_port: U16,
    multiplier_port: U16,
    lun: U16,
}
const _: () = assert!(core::mem::size_of::<SataData>() == 6);

/// NVMe namespace node data (spec 10.3.4.19).
#[repr(C)]
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
struct NvmeData {
    namespace_id: U32,
    eui64: U64,
}
const _: () = assert!(core::mem::size_of::<NvmeData>() == 12);

/// UART node data (spec 10.3.4.13).
#[repr(C)]
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
struct UartData {
    reserved: U32,
    baud: U64,
    data_bits: u8,
    parity: u8,
    stop_bits: u8,
}
const _: () = assert!(core::mem::size_of::<UartData>() == 15);

/// MAC address node data (spec 10.3.4.10).
#[repr(C)]
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
struct MacData {
    address: [u8; 32],
    if_type: u8,
}
const _: () = assert!(core::mem::size_of::<MacData>() == 33);

/// IPv4 node data (spec 10.3.4.11) up to the protocol fields; UEFI 2.4
/// appended gateway and subnet ([`Ipv4Tail`]), which older nodes lack.
#[repr(C)]
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
struct Ipv4Data {
    local: [u8; 4],
    remote: [u8; 4],
    local_port: U16,
    remote_port: U16,
    protocol: U16,
    static_ip: u8,
}
const _: () = assert!(core::mem::size_of::<Ipv4Data>() == 15);

#[repr(C)]
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
struct Ipv4Tail {
    gateway: [u8; 4],
    subnet: [u8; 4],
}
const _: () = assert!(core::mem::size_of::<Ipv4Tail>() == 8);

/// One node of a validated device path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Node<'a> {
    bytes: &'a [u8],
}

impl<'a> Node<'a> {
    /// Checks one node at the start of `buf` (header and length in bounds).
    pub fn parse(buf: &'a [u8]) -> Result<Node<'a>, DevPathError> {
        let (hdr, _) =
            Header::read_from_prefix(buf).map_err(|_| DevPathError::Truncated { offset: 0 })?;
        let len = usize::from(hdr.len.get());
        if len < HDR {
            return Err(DevPathError::BadNodeLength { offset: 0, len });
        }
        let bytes = buf.get(..len).ok_or(DevPathError::NodeOverrun {
            offset: 0,
            len,
            available: buf.len(),
        })?;
        Ok(Node { bytes })
    }

    /// The node type (hardware, ACPI, messaging, media, BBS, end).
    pub fn device_type(&self) -> u8 {
        self.bytes.first().copied().unwrap_or(0)
    }

    /// The node subtype.
    pub fn sub_type(&self) -> u8 {
        self.bytes.get(1).copied().unwrap_or(0)
    }

    /// The node's data after the header.
    pub fn data(&self) -> &'a [u8] {
        self.bytes.get(HDR..).unwrap_or(&[])
    }

    /// The whole node, header included.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Whether this is the End-Entire node.
    pub fn is_end_entire(&self) -> bool {
        self.device_type() == TYPE_END && self.sub_type() == SUBTYPE_END_ENTIRE
    }

    /// Whether this is an End-Instance node.
    pub fn is_end_instance(&self) -> bool {
        self.device_type() == TYPE_END && self.sub_type() == SUBTYPE_END_INSTANCE
    }

    /// Whether this is a Media/File Path node.
    pub fn is_file_path(&self) -> bool {
        self.device_type() == TYPE_MEDIA && self.sub_type() == MEDIA_FILE_PATH
    }

    /// The text of a File Path node (up to its NUL), or `None` for other
    /// nodes. UEFI names are UCS-2, so unpaired surrogates are an error.
    pub fn file_name(&self) -> Option<Result<String, DevPathError>> {
        if !self.is_file_path() {
            return None;
        }
        Some(decode_utf16z(self.data()).ok_or(DevPathError::BadFileName { offset: 0 }))
    }
}

/// Decodes NUL-terminated (or node-terminated) UTF-16LE; `None` on an
/// unpaired surrogate. An odd trailing byte is ignored.
fn decode_utf16z(data: &[u8]) -> Option<String> {
    let units = data
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0);
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .ok()
}

/// Like [`decode_utf16z`] but replaces bad units, for display.
fn decode_utf16z_lossy(data: &[u8]) -> String {
    let units = data
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0);
    char::decode_utf16(units)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// Iterator over the nodes of a [`DevicePath`], End-Instance nodes
/// included, the final End-Entire node excluded.
#[derive(Clone, Debug)]
pub struct Nodes<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Nodes<'a> {
    type Item = Node<'a>;

    fn next(&mut self) -> Option<Node<'a>> {
        // The path was validated, so parse failures cannot happen; ending
        // the iteration is still the safe answer if they did.
        let node = Node::parse(self.rest).ok()?;
        if node.is_end_entire() {
            self.rest = &[];
            return None;
        }
        self.rest = self.rest.get(node.bytes.len()..).unwrap_or(&[]);
        Some(node)
    }
}

/// A validated device path: every node in bounds, at most [`MAX_NODES`]
/// nodes and [`MAX_PATH_SIZE`] bytes, ending with End-Entire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevicePath<'a> {
    bytes: &'a [u8],
}

impl<'a> DevicePath<'a> {
    /// Validates the path at the start of `buf`; bytes after its
    /// End-Entire node are ignored (callers often pass a larger window).
    pub fn parse(buf: &'a [u8]) -> Result<DevicePath<'a>, DevPathError> {
        let mut offset = 0usize;
        for _ in 0..MAX_NODES {
            let rest = buf.get(offset..).unwrap_or(&[]);
            if rest.is_empty() {
                return Err(DevPathError::MissingEnd);
            }
            let node = Node::parse(rest).map_err(|e| match e {
                DevPathError::Truncated { .. } => DevPathError::Truncated { offset },
                DevPathError::BadNodeLength { len, .. } => {
                    DevPathError::BadNodeLength { offset, len }
                }
                DevPathError::NodeOverrun { len, available, .. } => DevPathError::NodeOverrun {
                    offset,
                    len,
                    available,
                },
                other => other,
            })?;
            let end = offset + node.bytes.len();
            if end > MAX_PATH_SIZE {
                return Err(DevPathError::TooLarge { size: end });
            }
            if node.is_end_entire() {
                return Ok(DevicePath {
                    bytes: buf.get(..end).unwrap_or(&[]),
                });
            }
            offset = end;
        }
        Err(DevPathError::TooManyNodes)
    }

    /// The path's bytes, End-Entire node included.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Size in bytes, End-Entire node included (`GetDevicePathSize`).
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// The nodes (see [`Nodes`]).
    pub fn nodes(&self) -> Nodes<'a> {
        Nodes { rest: self.bytes }
    }

    /// Whether the path has more than one instance.
    pub fn is_multi_instance(&self) -> bool {
        self.nodes().any(|n| n.is_end_instance())
    }

    /// Each instance as a stand-alone path ending in End-Entire.
    pub fn instances(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut cur = Vec::new();
        for n in self.nodes() {
            if n.is_end_instance() {
                cur.extend_from_slice(&end_entire());
                out.push(core::mem::take(&mut cur));
            } else {
                cur.extend_from_slice(n.bytes());
            }
        }
        cur.extend_from_slice(&end_entire());
        out.push(cur);
        out
    }

    /// Splits the first instance before its trailing run of File Path
    /// nodes: returns (device part, file part), both terminated paths, or
    /// `None` when the instance does not end in a File Path node.
    pub fn split_last_file_path(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        let nodes: Vec<Node<'a>> = self.nodes().take_while(|n| !n.is_end_instance()).collect();
        let files = nodes.iter().rev().take_while(|n| n.is_file_path()).count();
        if files == 0 {
            return None;
        }
        let split = nodes.len() - files;
        let mut dev = Vec::new();
        let mut file = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            if i < split {
                dev.extend_from_slice(n.bytes());
            } else {
                file.extend_from_slice(n.bytes());
            }
        }
        dev.extend_from_slice(&end_entire());
        file.extend_from_slice(&end_entire());
        Some((dev, file))
    }

    /// The file name spelled by the first instance's File Path nodes,
    /// joined with `\` (UEFI allows a path to be split across nodes), or
    /// `None` if there are none.
    pub fn file_path_text(&self) -> Result<Option<String>, DevPathError> {
        let mut out: Option<String> = None;
        let mut offset = 0;
        for n in self.nodes().take_while(|n| !n.is_end_instance()) {
            if let Some(name) = n.file_name() {
                let name = name.map_err(|_| DevPathError::BadFileName { offset })?;
                let s = out.get_or_insert_with(String::new);
                if !s.is_empty() && !s.ends_with('\\') && !name.starts_with('\\') {
                    s.push('\\');
                }
                s.push_str(&name);
            }
            offset += n.bytes().len();
        }
        Ok(out)
    }

    /// If `prefix`'s nodes start this path, the remaining nodes (a
    /// terminated path); used to match a device handle's path.
    pub fn strip_prefix(&self, prefix: &DevicePath<'_>) -> Option<&'a [u8]> {
        let body = prefix.bytes.get(..prefix.bytes.len().saturating_sub(HDR))?;
        // Equal bytes parse as equal nodes, so the split is on a node boundary.
        self.bytes.strip_prefix(body)
    }

    /// The text form (see [`to_text`]).
    pub fn to_text(&self, display_only: bool, allow_shortcuts: bool) -> String {
        let mut s = String::new();
        for n in self.nodes() {
            if n.is_end_instance() {
                s.push(',');
                continue;
            }
            if !s.is_empty() && !s.ends_with(',') {
                s.push('/');
            }
            write_node_text(&mut s, &n, display_only, allow_shortcuts);
        }
        s
    }
}

/// `ConvertDevicePathToText`: nodes separated by `/`, instances by `,`,
/// each node in the spec's text form (hex numbers upper case with a `0x`
/// prefix, GUIDs upper case, as EDK2 prints them). `display_only` picks
/// the short forms (e.g. `CDROM(0x1)`), `allow_shortcuts` names like
/// `VenVt100()`.
pub fn to_text(
    bytes: &[u8],
    display_only: bool,
    allow_shortcuts: bool,
) -> Result<String, DevPathError> {
    Ok(DevicePath::parse(bytes)?.to_text(display_only, allow_shortcuts))
}

/// `ConvertDeviceNodeToText` for one node.
pub fn node_to_text(node: &Node<'_>, display_only: bool, allow_shortcuts: bool) -> String {
    let mut s = String::new();
    write_node_text(&mut s, node, display_only, allow_shortcuts);
    s
}

fn hex_bytes(s: &mut String, data: &[u8]) {
    for b in data {
        let _ = write!(s, "{b:02X}");
    }
}

fn ipv4(s: &mut String, a: [u8; 4]) {
    let _ = write!(s, "{}.{}.{}.{}", a[0], a[1], a[2], a[3]);
}

/// Appends one node's text; nodes too short for their type use the
/// generic form so hostile lengths never cause a misread.
fn write_node_text(s: &mut String, n: &Node<'_>, display_only: bool, shortcuts: bool) {
    // `write!` into a String cannot fail.
    let d = n.data();
    match (n.device_type(), n.sub_type()) {
        (TYPE_HARDWARE, HW_PCI) => {
            if let Ok((p, _)) = PciData::read_from_prefix(d) {
                let _ = write!(s, "Pci(0x{:X},0x{:X})", p.device, p.function);
                return;
            }
        }
        (TYPE_HARDWARE, HW_MEMMAP) => {
            if let Ok((m, _)) = MemMapData::read_from_prefix(d) {
                let _ = write!(
                    s,
                    "MemoryMapped(0x{:X},0x{:X},0x{:X})",
                    m.mem_type.get(),
                    m.start.get(),
                    m.end.get()
                );
                return;
            }
        }
        (TYPE_HARDWARE, HW_VENDOR) | (TYPE_MESSAGING, MSG_VENDOR) | (TYPE_MEDIA, MEDIA_VENDOR) => {
            if let Ok((g, rest)) = Guid::read_from_prefix(d) {
                let kind = match n.device_type() {
                    TYPE_HARDWARE => "Hw",
                    TYPE_MESSAGING => "Msg",
                    _ => "Media",
                };
                if shortcuts && n.device_type() == TYPE_MESSAGING {
                    let short = match g {
                        g if g == PC_ANSI_GUID => Some("VenPcAnsi()"),
                        g if g == VT100_GUID => Some("VenVt100()"),
                        g if g == VT100_PLUS_GUID => Some("VenVt100Plus()"),
                        g if g == VT_UTF8_GUID => Some("VenUtf8()"),
                        _ => None,
                    };
                    if let Some(t) = short {
                        s.push_str(t);
                        return;
                    }
                }
                let _ = write!(s, "Ven{kind}({g}");
                if !rest.is_empty() {
                    s.push(',');
                    hex_bytes(s, rest);
                }
                s.push(')');
                return;
            }
        }
        (TYPE_ACPI, ACPI_DP) => {
            if let Ok((a, _)) = AcpiData::read_from_prefix(d) {
                let (hid, uid) = (a.hid.get(), a.uid.get());
                if hid & 0xFFFF == 0x41D0 {
                    let name = match hid >> 16 {
                        0x0A03 => Some("PciRoot"),
                        0x0A08 => Some("PcieRoot"),
                        0x0604 => Some("Floppy"),
                        0x0301 => Some("Keyboard"),
                        0x0501 => Some("Serial"),
                        0x0401 => Some("ParallelPort"),
                        _ => None,
                    };
                    match name {
                        Some(name) => {
                            let _ = write!(s, "{name}(0x{uid:X})");
                        }
                        None => {
                            let _ = write!(s, "Acpi(PNP{:04X},0x{uid:X})", hid >> 16);
                        }
                    }
                } else {
                    let _ = write!(s, "Acpi(0x{hid:08X},0x{uid:X})");
                }
                return;
            }
        }
        (TYPE_MESSAGING, MSG_SCSI) => {
            if let Ok((x, _)) = ScsiData::read_from_prefix(d) {
                let _ = write!(s, "Scsi(0x{:X},0x{:X})", x.pun.get(), x.lun.get());
                return;
            }
        }
        (TYPE_MESSAGING, MSG_SATA) => {
            if let Ok((x, _)) = SataData::read_from_prefix(d) {
                let _ = write!(
                    s,
                    "Sata(0x{:X},0x{:X},0x{:X})",
                    x.hba_port.get(),
                    x.multiplier_port.get(),
                    x.lun.get()
                );
                return;
            }
        }
        (TYPE_MESSAGING, MSG_NVME) => {
            if let Ok((x, _)) = NvmeData::read_from_prefix(d) {
                // The EUI-64 is printed most significant byte first.
                let e = x.eui64.get().to_be_bytes();
                let _ = write!(
                    s,
                    "NVMe(0x{:X},{:02X}-{:02X}-{:02X}-{:02X}-{:02X}-{:02X}-{:02X}-{:02X})",
                    x.namespace_id.get(),
                    e[0],
                    e[1],
                    e[2],
                    e[3],
                    e[4],
                    e[5],
                    e[6],
                    e[7]
                );
                return;
            }
        }
        (TYPE_MESSAGING, MSG_UART) => {
            if let Ok((u, _)) = UartData::read_from_prefix(d) {
                s.push_str("Uart(");
                match u.baud.get() {
                    0 => s.push_str("DEFAULT,"),
                    b => {
                        let _ = write!(s, "{b},");
                    }
                }
                match u.data_bits {
                    0 => s.push_str("DEFAULT,"),
                    b => {
                        let _ = write!(s, "{b},");
                    }
                }
                let parity = match u.parity {
                    0 => 'D',
                    1 => 'N',
                    2 => 'E',
                    3 => 'O',
                    4 => 'M',
                    5 => 'S',
                    _ => 'x',
                };
                s.push(parity);
                s.push(',');
                s.push_str(match u.stop_bits {
                    0 => "D)",
                    1 => "1)",
                    2 => "1.5)",
                    3 => "2)",
                    _ => "x)",
                });
                return;
            }
        }
        (TYPE_MESSAGING, MSG_MAC) => {
            if let Ok((m, _)) = MacData::read_from_prefix(d) {
                // Ethernet (and type 0) addresses are 6 bytes; others use all 32.
                let len = if m.if_type <= 1 { 6 } else { 32 };
                s.push_str("MAC(");
                hex_bytes(s, m.address.get(..len).unwrap_or(&[]));
                let _ = write!(s, ",0x{:X})", m.if_type);
                return;
            }
        }
        (TYPE_MESSAGING, MSG_IPV4) => {
            if let Ok((ip, tail)) = Ipv4Data::read_from_prefix(d) {
                s.push_str("IPv4(");
                ipv4(s, ip.remote);
                if !display_only {
                    match ip.protocol.get() {
                        6 => s.push_str(",TCP"),
                        17 => s.push_str(",UDP"),
                        p => {
                            let _ = write!(s, ",0x{p:X}");
                        }
                    }
                    s.push_str(if ip.static_ip != 0 {
                        ",Static,"
                    } else {
                        ",DHCP,"
                    });
                    ipv4(s, ip.local);
                    if let Ok((t, _)) = Ipv4Tail::read_from_prefix(tail) {
                        s.push(',');
                        ipv4(s, t.gateway);
                        s.push(',');
                        ipv4(s, t.subnet);
                    }
                }
                s.push(')');
                return;
            }
        }
        (TYPE_MEDIA, MEDIA_HARD_DRIVE) => {
            if let Ok((h, _)) = HardDriveData::read_from_prefix(d) {
                let _ = write!(s, "HD({},", h.partition.get());
                match h.signature_type {
                    1 => {
                        let sig = u32::from_le_bytes([
                            h.signature[0],
                            h.signature[1],
                            h.signature[2],
                            h.signature[3],
                        ]);
                        let _ = write!(s, "MBR,0x{sig:08X},");
                    }
                    2 => {
                        let _ = write!(s, "GPT,{},", Guid(h.signature));
                    }
                    t => {
                        let _ = write!(s, "{t},0,");
                    }
                }
                let _ = write!(s, "0x{:X},0x{:X})", h.start.get(), h.size.get());
                return;
            }
        }
        (TYPE_MEDIA, MEDIA_CDROM) => {
            if let Ok((c, _)) = CdromData::read_from_prefix(d) {
                if display_only {
                    let _ = write!(s, "CDROM(0x{:X})", c.boot_entry.get());
                } else {
                    let _ = write!(
                        s,
                        "CDROM(0x{:X},0x{:X},0x{:X})",
                        c.boot_entry.get(),
                        c.start.get(),
                        c.size.get()
                    );
                }
                return;
            }
        }
        (TYPE_MEDIA, MEDIA_FILE_PATH) => {
            s.push_str(&decode_utf16z_lossy(d));
            return;
        }
        (TYPE_MEDIA, MEDIA_PROTOCOL) => {
            if let Ok((g, _)) = Guid::read_from_prefix(d) {
                let _ = write!(s, "Media({g})");
                return;
            }
        }
        _ => {}
    }
    // Generic form from the spec's table: known types by name, else Path().
    let _ = match n.device_type() {
        TYPE_HARDWARE => write!(s, "HardwarePath({}", n.sub_type()),
        TYPE_ACPI => write!(s, "AcpiPath({}", n.sub_type()),
        TYPE_MESSAGING => write!(s, "Msg({}", n.sub_type()),
        TYPE_MEDIA => write!(s, "MediaPath({}", n.sub_type()),
        TYPE_BBS => write!(s, "BbsPath({}", n.sub_type()),
        t => write!(s, "Path({t},{}", n.sub_type()),
    };
    if !d.is_empty() {
        s.push(',');
        hex_bytes(s, d);
    }
    s.push(')');
}

// ---------------------------------------------------------------------
// Builders. Each returns one node's bytes; `from_nodes` terminates a path.

fn node(ty: u8, sub: u8, data: &[u8]) -> Result<Vec<u8>, DevPathError> {
    let size = HDR + data.len();
    let len = u16::try_from(size).map_err(|_| DevPathError::NodeTooLarge { size })?;
    let mut v = Vec::with_capacity(size);
    v.extend_from_slice(
        Header {
            ty,
            sub,
            len: U16::new(len),
        }
        .as_bytes(),
    );
    v.extend_from_slice(data);
    Ok(v)
}

/// A node whose data is a fixed-size struct: always fits in 16 bits.
fn fixed_node<T: IntoBytes + Immutable>(ty: u8, sub: u8, data: &T) -> Vec<u8> {
    node(ty, sub, data.as_bytes()).unwrap_or_default()
}

/// The End-Entire node.
pub fn end_entire() -> [u8; 4] {
    [TYPE_END, SUBTYPE_END_ENTIRE, 4, 0]
}

/// The End-Instance node.
pub fn end_instance() -> [u8; 4] {
    [TYPE_END, SUBTYPE_END_INSTANCE, 4, 0]
}

/// ACPI node with `_HID` and `_UID`.
pub fn acpi(hid: u32, uid: u32) -> Vec<u8> {
    fixed_node(
        TYPE_ACPI,
        ACPI_DP,
        &AcpiData {
            hid: U32::new(hid),
            uid: U32::new(uid),
        },
    )
}

/// `PciRoot(uid)`: ACPI node with `_HID` PNP0A03.
pub fn pci_root(uid: u32) -> Vec<u8> {
    acpi(eisa_pnp_id(0x0A03), uid)
}

/// `PcieRoot(uid)`: ACPI node with `_HID` PNP0A08.
pub fn pcie_root(uid: u32) -> Vec<u8> {
    acpi(eisa_pnp_id(0x0A08), uid)
}

/// `Pci(device, function)`.
pub fn pci(device: u8, function: u8) -> Vec<u8> {
    fixed_node(TYPE_HARDWARE, HW_PCI, &PciData { function, device })
}

/// Hardware vendor node: GUID plus vendor data.
pub fn vendor_hw(guid: Guid, data: &[u8]) -> Result<Vec<u8>, DevPathError> {
    let mut d = Vec::from(guid.as_bytes());
    d.extend_from_slice(data);
    node(TYPE_HARDWARE, HW_VENDOR, &d)
}

/// Ember's node for a virtio-mmio transport at `base`:
/// `VenHw(EMBER_VIRTIO_MMIO_GUID, <base as LE u64>)`.
pub fn virtio_mmio(base: u64) -> Vec<u8> {
    vendor_hw(EMBER_VIRTIO_MMIO_GUID, &base.to_le_bytes()).unwrap_or_default()
}

/// `MemoryMapped(type, start, end)`; `end` is the last byte, inclusive.
pub fn memory_mapped(mem_type: u32, start: u64, end: u64) -> Vec<u8> {
    fixed_node(
        TYPE_HARDWARE,
        HW_MEMMAP,
        &MemMapData {
            mem_type: U32::new(mem_type),
            start: U64::new(start),
            end: U64::new(end),
        },
    )
}

/// The signature of a partition in a Hard Drive node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionSignature {
    /// No signature (signature type 0; partition format MBR).
    None,
    /// MBR disk signature at offset 0x1B8 (format 1, signature type 1).
    Mbr(u32),
    /// GPT unique partition GUID (format 2, signature type 2).
    Gpt(Guid),
}

/// `HD(partition, ...)`: partition number (1-based), start and size in
/// logical blocks, and the signature (which also picks the format).
pub fn hard_drive(
    partition: u32,
    start_lba: u64,
    size_lba: u64,
    sig: PartitionSignature,
) -> Vec<u8> {
    let mut signature = [0u8; 16];
    let (format, signature_type) = match sig {
        PartitionSignature::None => (1, 0),
        PartitionSignature::Mbr(s) => {
            signature[..4].copy_from_slice(&s.to_le_bytes());
            (1, 1)
        }
        PartitionSignature::Gpt(g) => {
            signature = g.0;
            (2, 2)
        }
    };
    fixed_node(
        TYPE_MEDIA,
        MEDIA_HARD_DRIVE,
        &HardDriveData {
            partition: U32::new(partition),
            start: U64::new(start_lba),
            size: U64::new(size_lba),
            signature,
            format,
            signature_type,
        },
    )
}

/// A decoded Hard Drive media node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HardDrive {
    pub partition: u32,
    pub start_lba: u64,
    pub size_lba: u64,
    pub signature: PartitionSignature,
}

impl HardDrive {
    /// Decode a Hard Drive node; `None` for any other node or a short one.
    /// An unknown signature type reads as [`PartitionSignature::None`].
    pub fn from_node(node: &Node<'_>) -> Option<HardDrive> {
        if node.device_type() != TYPE_MEDIA || node.sub_type() != MEDIA_HARD_DRIVE {
            return None;
        }
        let (d, _) = HardDriveData::read_from_prefix(node.data()).ok()?;
        let signature = match d.signature_type {
            1 => PartitionSignature::Mbr(u32::from_le_bytes([
                d.signature[0],
                d.signature[1],
                d.signature[2],
                d.signature[3],
            ])),
            2 => PartitionSignature::Gpt(Guid(d.signature)),
            _ => PartitionSignature::None,
        };
        Some(HardDrive {
            partition: d.partition.get(),
            start_lba: d.start.get(),
            size_lba: d.size.get(),
            signature,
        })
    }
}

/// `CDROM(boot_entry, start, size)` (El Torito boot entry, in blocks).
pub fn cdrom(boot_entry: u32, start: u64, size: u64) -> Vec<u8> {
    fixed_node(
        TYPE_MEDIA,
        MEDIA_CDROM,
        &CdromData {
            boot_entry: U32::new(boot_entry),
            start: U64::new(start),
            size: U64::new(size),
        },
    )
}

/// File Path node: `path` as UTF-16LE with a terminating NUL.
pub fn file_path(path: &str) -> Result<Vec<u8>, DevPathError> {
    let mut d = Vec::new();
    for u in path.encode_utf16().chain(core::iter::once(0)) {
        d.extend_from_slice(&u.to_le_bytes());
    }
    node(TYPE_MEDIA, MEDIA_FILE_PATH, &d)
}

/// Media vendor node: GUID plus vendor data.
pub fn vendor_media(guid: Guid, data: &[u8]) -> Result<Vec<u8>, DevPathError> {
    let mut d = Vec::from(guid.as_bytes());
    d.extend_from_slice(data);
    node(TYPE_MEDIA, MEDIA_VENDOR, &d)
}

/// The complete path Linux's EFI stub looks up for its initrd:
/// `VenMedia(LINUX_EFI_INITRD_MEDIA_GUID)` then End.
pub fn linux_initrd_media_path() -> Vec<u8> {
    let mut v = vendor_media(LINUX_EFI_INITRD_MEDIA_GUID, &[]).unwrap_or_default();
    v.extend_from_slice(&end_entire());
    v
}

/// Concatenates nodes (each checked to be one well-formed node) and adds
/// End-Entire.
pub fn from_nodes(nodes: &[&[u8]]) -> Result<Vec<u8>, DevPathError> {
    let mut v = Vec::new();
    for n in nodes {
        let parsed = Node::parse(n)?;
        if parsed.bytes().len() != n.len() {
            return Err(DevPathError::NodeOverrun {
                offset: v.len(),
                len: parsed.bytes().len(),
                available: n.len(),
            });
        }
        v.extend_from_slice(n);
    }
    v.extend_from_slice(&end_entire());
    DevicePath::parse(&v)?;
    Ok(v)
}

/// `AppendDevicePath`: `a` without its End-Entire node, then `b`.
pub fn append(a: &[u8], b: &[u8]) -> Result<Vec<u8>, DevPathError> {
    let a = DevicePath::parse(a)?;
    let b = DevicePath::parse(b)?;
    let mut v = Vec::from(
        a.as_bytes()
            .get(..a.size().saturating_sub(HDR))
            .unwrap_or(&[]),
    );
    v.extend_from_slice(b.as_bytes());
    DevicePath::parse(&v)?;
    Ok(v)
}

/// `AppendDeviceNode`: `path` with `node` inserted before its End node.
pub fn append_node(path: &[u8], node: &[u8]) -> Result<Vec<u8>, DevPathError> {
    let p = DevicePath::parse(path)?;
    let n = Node::parse(node)?;
    let mut v = Vec::from(
        p.as_bytes()
            .get(..p.size().saturating_sub(HDR))
            .unwrap_or(&[]),
    );
    v.extend_from_slice(n.bytes());
    v.extend_from_slice(&end_entire());
    DevicePath::parse(&v)?;
    Ok(v)
}

/// `AppendDevicePathInstance`: `path`, End-Instance, then `instance`.
pub fn append_instance(path: &[u8], instance: &[u8]) -> Result<Vec<u8>, DevPathError> {
    let p = DevicePath::parse(path)?;
    let i = DevicePath::parse(instance)?;
    let mut v = Vec::from(
        p.as_bytes()
            .get(..p.size().saturating_sub(HDR))
            .unwrap_or(&[]),
    );
    v.extend_from_slice(&end_instance());
    v.extend_from_slice(i.as_bytes());
    DevicePath::parse(&v)?;
    Ok(v)
}

mod from_text;
pub use from_text::{from_text, node_from_text};

#[cfg(test)]
mod tests;
