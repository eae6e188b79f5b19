//! Just enough of `EFI_DEVICE_PATH_PROTOCOL` to split paths into nodes:
//! LocateDevicePath's prefix match and the firmware's size walk.

use core::fmt;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// The 4-byte header that starts every device path node.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned,
)]
#[repr(C)]
pub struct NodeHeader {
    /// Node type (`0x7f` = end).
    pub kind: u8,
    /// Node sub-type (`0xff` = end of entire path, `0x01` = end of instance).
    pub sub_type: u8,
    /// Length of the node including this header, little-endian.
    pub length: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<NodeHeader>() == 4);

/// Type of end nodes.
pub const END_TYPE: u8 = 0x7f;
/// Sub-type ending the whole path.
pub const END_ENTIRE: u8 = 0xff;
/// Sub-type ending one instance of a multi-instance path.
pub const END_INSTANCE: u8 = 0x01;
/// Most nodes we walk in one path; real paths have fewer than 20.
pub const MAX_NODES: usize = 512;
/// Largest device path we accept, in bytes.
pub const MAX_PATH_BYTES: usize = 64 * 1024;

impl NodeHeader {
    /// The node's declared length in bytes.
    pub fn len(&self) -> usize {
        usize::from(u16::from_le_bytes(self.length))
    }

    /// True when the declared length is zero (always malformed).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True for either kind of end node.
    pub fn is_end(&self) -> bool {
        self.kind == END_TYPE && matches!(self.sub_type, END_ENTIRE | END_INSTANCE)
    }
}

/// Why a device path was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DevicePathError {
    /// Fewer than 4 bytes remain where a node header should start.
    Truncated {
        /// Byte offset of the missing header.
        offset: usize,
    },
    /// A node's length is below 4 or runs past the end of the data.
    BadLength {
        /// Byte offset of the node.
        offset: usize,
        /// Its declared length.
        length: usize,
    },
    /// No end node within [`MAX_NODES`] nodes / [`MAX_PATH_BYTES`] bytes.
    TooLong,
}

impl fmt::Display for DevicePathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DevicePathError::Truncated { offset } => {
                write!(f, "device path ends at byte {offset} without an end node (type 0x7f)")
            }
            DevicePathError::BadLength { offset, length } => write!(
                f,
                "device path node at byte {offset} declares length {length}, below 4 or past the end of the path"
            ),
            DevicePathError::TooLong => write!(
                f,
                "device path has no end node within {MAX_NODES} nodes or {MAX_PATH_BYTES} bytes"
            ),
        }
    }
}

impl core::error::Error for DevicePathError {}

/// The first instance of a path: its bytes before the end node and that
/// end node's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instance {
    /// Bytes of the non-end nodes of the first instance.
    pub len: usize,
    /// The end node that terminates it.
    pub end: NodeHeader,
}

/// Walks `path` node by node to the first end node (of either kind).
pub fn first_instance(path: &[u8]) -> Result<Instance, DevicePathError> {
    let mut offset = 0usize;
    for _ in 0..MAX_NODES {
        let rest = path
            .get(offset..)
            .ok_or(DevicePathError::Truncated { offset })?;
        let (hdr, _) = NodeHeader::read_from_prefix(rest)
            .map_err(|_| DevicePathError::Truncated { offset })?;
        let length = hdr.len();
        if length < 4 || length > rest.len() {
            return Err(DevicePathError::BadLength { offset, length });
        }
        if hdr.is_end() {
            return Ok(Instance {
                len: offset,
                end: hdr,
            });
        }
        offset += length;
    }
    Err(DevicePathError::TooLong)
}

/// Total size in bytes of a device path in memory, end-of-entire node
/// included, reading only node headers through `read_header(offset)`.
///
/// This lets the firmware learn how many bytes a guest's device path
/// pointer covers before it forms a slice over it. `read_header` returns
/// `None` when the address is not readable.
pub fn device_path_size(
    mut read_header: impl FnMut(usize) -> Option<[u8; 4]>,
) -> Result<usize, DevicePathError> {
    let mut offset = 0usize;
    for _ in 0..MAX_NODES {
        let raw = read_header(offset).ok_or(DevicePathError::Truncated { offset })?;
        let hdr = NodeHeader {
            kind: raw[0],
            sub_type: raw[1],
            length: [raw[2], raw[3]],
        };
        let length = hdr.len();
        if length < 4 {
            return Err(DevicePathError::BadLength { offset, length });
        }
        let end = offset.checked_add(length).ok_or(DevicePathError::TooLong)?;
        if end > MAX_PATH_BYTES {
            return Err(DevicePathError::TooLong);
        }
        if hdr.kind == END_TYPE && hdr.sub_type == END_ENTIRE {
            return Ok(end);
        }
        offset = end;
    }
    Err(DevicePathError::TooLong)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// Builds a path from (type, subtype, payload) nodes plus an end-entire node.
    pub(crate) fn path(nodes: &[(u8, u8, &[u8])]) -> Vec<u8> {
        let mut v = Vec::new();
        for (t, s, p) in nodes {
            v.push(*t);
            v.push(*s);
            v.extend_from_slice(&u16::try_from(p.len() + 4).unwrap().to_le_bytes());
            v.extend_from_slice(p);
        }
        v.extend_from_slice(&[END_TYPE, END_ENTIRE, 4, 0]);
        v
    }

    #[test]
    fn first_instance_of_simple_and_multi_instance_paths() {
        // PciRoot(0) / Pci(1,0): ACPI node 12 bytes, PCI node 6 bytes.
        let p = path(&[
            (2, 1, &[0x41, 0xd0, 0x0a, 0x03, 0, 0, 0, 0]),
            (1, 1, &[0, 1]),
        ]);
        let i = first_instance(&p).unwrap();
        assert_eq!(i.len, 18);
        assert_eq!(i.end.sub_type, END_ENTIRE);
        let mut multi = path(&[(1, 1, &[0, 1])]);
        multi[6..8].copy_from_slice(&[END_TYPE, END_INSTANCE]);
        multi.extend_from_slice(&path(&[(1, 1, &[0, 2])]));
        let i = first_instance(&multi).unwrap();
        assert_eq!((i.len, i.end.sub_type), (6, END_INSTANCE));
    }

    #[test]
    fn malformed_paths_are_errors() {
        assert_eq!(
            first_instance(&[]),
            Err(DevicePathError::Truncated { offset: 0 })
        );
        assert_eq!(
            first_instance(&[1, 1, 6]),
            Err(DevicePathError::Truncated { offset: 0 })
        );
        assert_eq!(
            first_instance(&[1, 1, 2, 0]),
            Err(DevicePathError::BadLength {
                offset: 0,
                length: 2
            })
        );
        assert_eq!(
            first_instance(&[1, 1, 9, 0, 0]),
            Err(DevicePathError::BadLength {
                offset: 0,
                length: 9
            })
        );
        // A node with no end after it.
        assert_eq!(
            first_instance(&[1, 1, 4, 0]),
            Err(DevicePathError::Truncated { offset: 4 })
        );
        // Thousands of tiny nodes: the walk stops at MAX_NODES.
        let many: Vec<u8> = [1u8, 1, 4, 0]
            .iter()
            .copied()
            .cycle()
            .take(4 * (MAX_NODES + 10))
            .collect();
        assert_eq!(first_instance(&many), Err(DevicePathError::TooLong));
    }

    #[test]
    fn size_walk_includes_all_instances_and_end_node() {
        let mut multi = path(&[(1, 1, &[0, 1])]);
        multi[6..8].copy_from_slice(&[END_TYPE, END_INSTANCE]);
        multi.extend_from_slice(&path(&[(1, 1, &[0, 2])]));
        let read = |o: usize| multi.get(o..o + 4).map(|s| [s[0], s[1], s[2], s[3]]);
        assert_eq!(device_path_size(read), Ok(multi.len()));
        // Unreadable memory and zero lengths stop the walk.
        assert_eq!(
            device_path_size(|_| None),
            Err(DevicePathError::Truncated { offset: 0 })
        );
        assert_eq!(
            device_path_size(|_| Some([1, 1, 0, 0])),
            Err(DevicePathError::BadLength {
                offset: 0,
                length: 0
            })
        );
        // Endless valid-looking nodes end at the byte cap.
        assert_eq!(
            device_path_size(|_| Some([1, 1, 0xff, 0xff])),
            Err(DevicePathError::TooLong)
        );
        assert_eq!(
            device_path_size(|_| Some([1, 1, 4, 0])),
            Err(DevicePathError::TooLong)
        );
    }
}
