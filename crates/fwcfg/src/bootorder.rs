//! The `bootorder` file: one OpenFirmware-style device path per line, in
//! `bootindex=` order, NUL-terminated. QEMU builds each line from the
//! device's firmware path (`qdev_get_fw_dev_path`) plus a device-specific
//! suffix. Real lines read out of QEMU 7.2:
//!
//! ```text
//! /pci@i0cf8/scsi@4/disk@0,0                   virtio-blk-pci at 00:04.0
//! /pci@i0cf8/scsi@5,3/disk@0,0                 virtio-blk-pci at 00:05.3
//! /pci@i0cf8/pci-bridge@2/scsi@0/disk@0,0      behind a PCIe root port at 00:02.0
//! /pci@i0cf8/scsi@5/channel@0/disk@0,0         virtio-scsi LUN
//! /pci@i0cf8/pci1b36,0010@2/namespace@1,0      NVMe (no class name: vendor,device)
//! /pci@i0cf8/ide@1,1/drive@1/disk@0            IDE
//! /virtio-mmio@00000000feb02c00/disk@0,0       microvm virtio-mmio transport
//! HALT                                         `-boot strict=on`
//! ```
//!
//! PCI components are `name@slot` or `name@slot,function` in hex, with the
//! function omitted when zero. Every PCI-to-PCI bridge (including PCIe
//! root and switch ports) has class 0x0604 and is therefore named
//! `pci-bridge`; so the PCI path is the run of `pci-bridge@…` hops plus the
//! first component after them, which is the device itself. What follows is
//! device-internal (LUN, namespace, drive) and kept as [`BootPath::suffix`].
//! virtio-mmio transports are sysbus devices named by their MMIO base,
//! printed as 16 hex digits.
//!
//! Parsing never fails: lines that are not understood are reported as
//! [`BootTarget::Other`] so priorities still count them. At most
//! [`MAX_BOOT_ENTRIES`] entries are produced.

/// Most entries the iterator produces; QEMU has one per bootable device.
pub const MAX_BOOT_ENTRIES: usize = 256;
/// Lines longer than this are reported as [`BootTarget::Other`].
pub const MAX_LINE_LEN: usize = 512;
/// Most PCI hops (bridges plus the device) a path may have.
pub const MAX_PCI_DEPTH: usize = 8;

/// The root component of the PCI host bridge on x86 (`pc` and `q35`): the
/// host bridge's config-space ports at I/O 0xcf8.
const PCI_ROOT: &str = "pci@i0cf8";
/// Firmware name of every PCI-to-PCI bridge (class 0x0604).
const BRIDGE_NAME: &str = "pci-bridge";
/// Firmware name of the virtio-mmio transport.
const VIRTIO_MMIO_NAME: &str = "virtio-mmio";

/// A chain of (device, function) hops from the root bus: each bridge, then
/// the device.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PciPath {
    hops: [(u8, u8); MAX_PCI_DEPTH],
    len: u8,
}

impl PciPath {
    /// The hops, root side first; never empty.
    pub fn as_slice(&self) -> &[(u8, u8)] {
        &self.hops[..usize::from(self.len)]
    }
}

impl core::fmt::Debug for PciPath {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// What a boot entry names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootTarget {
    /// A PCI function, reached through the listed hops.
    Pci(PciPath),
    /// A virtio-mmio transport at this base address.
    Mmio(u64),
    /// `HALT`: do not fall back to devices that are not listed.
    Halt,
    /// Anything else (ISA floppy, option ROM, extra PCI roots, garbage).
    Other,
}

/// One `bootorder` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootPath<'a> {
    /// Priority: 0 is the first entry. Blank lines are not counted.
    pub index: usize,
    /// The whole line, trimmed.
    pub raw: &'a str,
    /// What it names.
    pub target: BootTarget,
    /// The rest of the line after the device's own component, e.g.
    /// `/disk@0,0` or `/channel@0/disk@0,0`; empty for `Halt`/`Other`.
    pub suffix: &'a str,
}

/// Where a disk the firmware found lives, for matching against entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location<'a> {
    /// A PCI function: the (device, function) of each bridge from the root
    /// bus down, then of the disk controller itself.
    Pci {
        /// The hops, root side first.
        path: &'a [(u8, u8)],
    },
    /// A virtio-mmio transport at this base address.
    Mmio(u64),
}

impl BootPath<'_> {
    /// Whether this entry names the device at `loc`. Only the controller is
    /// compared: every LUN or namespace of one controller matches.
    pub fn matches(&self, loc: &Location<'_>) -> bool {
        match (&self.target, loc) {
            (BootTarget::Pci(p), Location::Pci { path }) => p.as_slice() == *path,
            (BootTarget::Mmio(a), Location::Mmio(b)) => a == b,
            _ => false,
        }
    }
}

/// Iterator over `bootorder` entries; see [`parse_bootorder`].
#[derive(Clone, Debug)]
pub struct BootOrder<'a> {
    rest: &'a str,
    index: usize,
}

/// Parse the `bootorder` text. Parsing stops at the first NUL (QEMU's
/// terminator).
pub fn parse_bootorder(text: &str) -> BootOrder<'_> {
    let end = text.find('\0').unwrap_or(text.len());
    BootOrder {
        rest: text.get(..end).unwrap_or(""),
        index: 0,
    }
}

/// Parse the raw `bootorder` item. QEMU writes ASCII; if a byte sequence is
/// not UTF-8, everything from it on is dropped (a corrupt tail must not
/// hide the entries before it).
pub fn parse_bootorder_bytes(bytes: &[u8]) -> BootOrder<'_> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let bytes = &bytes[..end];
    let text = match core::str::from_utf8(bytes) {
        Ok(t) => t,
        // The prefix up to `valid_up_to` is UTF-8 by definition.
        Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
    };
    parse_bootorder(text)
}

impl<'a> BootOrder<'a> {
    /// Priority of the device at `loc` (0 = first), or `None` if no entry
    /// names it.
    pub fn priority(self, loc: &Location<'_>) -> Option<usize> {
        self.into_iter().find(|p| p.matches(loc)).map(|p| p.index)
    }
}

impl<'a> Iterator for BootOrder<'a> {
    type Item = BootPath<'a>;

    fn next(&mut self) -> Option<BootPath<'a>> {
        while self.index < MAX_BOOT_ENTRIES && !self.rest.is_empty() {
            let (line, rest) = self.rest.split_once('\n').unwrap_or((self.rest, ""));
            self.rest = rest;
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (target, suffix) = classify(line);
            let path = BootPath {
                index: self.index,
                raw: line,
                target,
                suffix,
            };
            self.index += 1;
            return Some(path);
        }
        None
    }
}

fn classify(line: &str) -> (BootTarget, &str) {
    if line == "HALT" {
        return (BootTarget::Halt, "");
    }
    if line.len() > MAX_LINE_LEN {
        return (BootTarget::Other, "");
    }
    let Some(body) = line.strip_prefix('/') else {
        return (BootTarget::Other, "");
    };
    let (first, rest) = match body.find('/') {
        Some(i) => (&body[..i], &body[i..]),
        None => (body, ""),
    };
    if first == PCI_ROOT {
        return pci_path(rest);
    }
    if let Some((VIRTIO_MMIO_NAME, unit)) = first.split_once('@') {
        if let Some(base) = parse_hex(unit, 16) {
            return (BootTarget::Mmio(base), rest);
        }
    }
    (BootTarget::Other, "")
}

/// Walk the components after the PCI root; `rest` is empty or starts with '/'.
fn pci_path(mut rest: &str) -> (BootTarget, &str) {
    let mut path = PciPath {
        hops: [(0, 0); MAX_PCI_DEPTH],
        len: 0,
    };
    while let Some(body) = rest.strip_prefix('/') {
        let end = body.find('/').unwrap_or(body.len());
        let comp = &body[..end];
        let Some((name, unit)) = comp.split_once('@') else {
            break;
        };
        let Some(hop) = parse_pci_unit(unit) else {
            break;
        };
        let len = usize::from(path.len);
        if len == MAX_PCI_DEPTH {
            return (BootTarget::Other, "");
        }
        path.hops[len] = hop;
        path.len += 1;
        rest = &body[end..];
        if name != BRIDGE_NAME {
            break;
        }
    }
    if path.len == 0 {
        return (BootTarget::Other, "");
    }
    (BootTarget::Pci(path), rest)
}

/// `slot` or `slot,function` in hex (slot < 32, function < 8).
fn parse_pci_unit(unit: &str) -> Option<(u8, u8)> {
    let (slot, func) = match unit.split_once(',') {
        Some((s, f)) => (s, Some(f)),
        None => (unit, None),
    };
    let slot = parse_hex(slot, 2).filter(|&s| s < 32)?;
    let func = match func {
        Some(f) => parse_hex(f, 1).filter(|&f| f < 8)?,
        None => 0,
    };
    Some((slot as u8, func as u8))
}

/// 1..=`max_digits` hex digits (either case), nothing else.
fn parse_hex(s: &str, max_digits: usize) -> Option<u64> {
    if s.is_empty() || s.len() > max_digits {
        return None;
    }
    s.bytes().try_fold(0u64, |acc, b| {
        let d = (b as char).to_digit(16)?;
        Some((acc << 4) | u64::from(d))
    })
}
