//! The arm64 Linux boot protocol (`Documentation/arch/arm64/booting.rst`):
//! the `Image` header and where kernel, initrd and device tree go.
//!
//! The header is 64 bytes at the start of the Image: `code0`/`code1`,
//! `text_offset`, `image_size` (the whole memory footprint, bss included),
//! `flags`, three reserved words, the magic "ARM\x64" at 56 and a PE offset.
//! The kernel must be placed `text_offset` bytes above a 2 MiB-aligned
//! base; the device tree 8-byte aligned, at most 2 MiB, not in memory the
//! kernel will use.

use core::fmt;
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

/// "ARM\x64", little-endian, at offset 56.
pub const IMAGE_MAGIC: u32 = 0x644d_5241;
/// The kernel's base alignment.
pub const BASE_ALIGN: u64 = 2 << 20;
/// Largest device tree the protocol allows.
pub const DTB_MAX: u64 = 2 << 20;

/// The on-disk header.
#[repr(C)]
#[derive(Clone, Copy, FromBytes, KnownLayout, Immutable, Unaligned)]
struct RawHeader {
    code0: U32,
    code1: U32,
    text_offset: U64,
    image_size: U64,
    flags: U64,
    res2: U64,
    res3: U64,
    res4: U64,
    magic: U32,
    res5: U32,
}
const _: () = assert!(core::mem::size_of::<RawHeader>() == 64);

/// What Ember needs from the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    pub text_offset: u64,
    pub image_size: u64,
    /// Bit 0: big-endian kernel; bits 1-2: page size; bit 3: placement.
    pub flags: u64,
}

/// Why an Image cannot be booted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arm64Error {
    /// Fewer than 64 bytes.
    Truncated,
    /// No "ARM\x64" at offset 56.
    BadMagic,
    /// `image_size` 0 (a kernel older than 3.17, whose needs are unknown).
    NoImageSize,
    /// `image_size` smaller than the file itself.
    ImageSizeTooSmall { image_size: u64, file_len: u64 },
    /// `text_offset` not below the 2 MiB base alignment.
    BadTextOffset(u64),
    /// A big-endian kernel (flags bit 0).
    BigEndian,
    /// Kernel, initrd and device tree do not fit between the load base and
    /// the end of RAM.
    DoesNotFit { needed_end: u64, ram_end: u64 },
}

impl fmt::Display for Arm64Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arm64Error::Truncated => {
                f.write_str("not an arm64 Image: shorter than its 64-byte header")
            }
            Arm64Error::BadMagic => f.write_str("not an arm64 Image: no ARM\\x64 magic"),
            Arm64Error::NoImageSize => {
                f.write_str("arm64 Image has no image_size (kernel older than 3.17)")
            }
            Arm64Error::ImageSizeTooSmall {
                image_size,
                file_len,
            } => {
                write!(f, "arm64 Image: image_size {image_size} is smaller than the file ({file_len} bytes)")
            }
            Arm64Error::BadTextOffset(t) => {
                write!(f, "arm64 Image: text_offset {t:#x} is not below 2 MiB")
            }
            Arm64Error::BigEndian => f.write_str("arm64 Image is big-endian"),
            Arm64Error::DoesNotFit {
                needed_end,
                ram_end,
            } => {
                write!(f, "kernel, initrd and device tree need memory up to {needed_end:#x}; RAM ends at {ram_end:#x}")
            }
        }
    }
}

impl ImageHeader {
    /// Check the first 64 bytes of an Image `file_len` bytes long.
    pub fn parse(head: &[u8], file_len: u64) -> Result<ImageHeader, Arm64Error> {
        let (h, _) = RawHeader::read_from_prefix(head).map_err(|_| Arm64Error::Truncated)?;
        if h.magic.get() != IMAGE_MAGIC {
            return Err(Arm64Error::BadMagic);
        }
        let (text_offset, image_size, flags) =
            (h.text_offset.get(), h.image_size.get(), h.flags.get());
        if image_size == 0 {
            return Err(Arm64Error::NoImageSize);
        }
        if image_size < file_len {
            return Err(Arm64Error::ImageSizeTooSmall {
                image_size,
                file_len,
            });
        }
        if text_offset >= BASE_ALIGN {
            return Err(Arm64Error::BadTextOffset(text_offset));
        }
        if flags & 1 != 0 {
            return Err(Arm64Error::BigEndian);
        }
        Ok(ImageHeader {
            text_offset,
            image_size,
            flags,
        })
    }
}

/// Where things go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The Image's first byte (and entry point).
    pub kernel: u64,
    /// The initrd (2 MiB aligned, above the kernel's `image_size`).
    pub initrd: u64,
    /// The device tree (2 MiB aligned, above the initrd; `DTB_MAX` reserved).
    pub dtb: u64,
}

/// Place an Image above `load_base` (rounded up to 2 MiB), its initrd of
/// `initrd_size` bytes and the device tree, inside RAM `[ram_start,
/// ram_end)`. All arithmetic is checked.
pub fn place(
    hdr: &ImageHeader,
    initrd_size: u64,
    load_base: u64,
    ram: (u64, u64),
) -> Result<Placement, Arm64Error> {
    let (ram_start, ram_end) = ram;
    let align = |v: u64| v.checked_next_multiple_of(BASE_ALIGN);
    let overflow = Arm64Error::DoesNotFit {
        needed_end: u64::MAX,
        ram_end,
    };
    let base = align(load_base.max(ram_start)).ok_or(overflow)?;
    let kernel = base + hdr.text_offset;
    let initrd = kernel
        .checked_add(hdr.image_size)
        .and_then(align)
        .ok_or(overflow)?;
    let dtb = initrd
        .checked_add(initrd_size)
        .and_then(align)
        .ok_or(overflow)?;
    let end = dtb.checked_add(DTB_MAX).ok_or(overflow)?;
    if end > ram_end {
        return Err(Arm64Error::DoesNotFit {
            needed_end: end,
            ram_end,
        });
    }
    Ok(Placement {
        kernel,
        initrd,
        dtb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text_offset: u64, image_size: u64, flags: u64) -> [u8; 64] {
        let mut h = [0u8; 64];
        h[8..16].copy_from_slice(&text_offset.to_le_bytes());
        h[16..24].copy_from_slice(&image_size.to_le_bytes());
        h[24..32].copy_from_slice(&flags.to_le_bytes());
        h[56..60].copy_from_slice(&IMAGE_MAGIC.to_le_bytes());
        h
    }

    #[test]
    fn header_checks() {
        let ok = ImageHeader::parse(&header(0, 0x1a0_0000, 0xa), 0x19f_0000).unwrap();
        assert_eq!(
            ok,
            ImageHeader {
                text_offset: 0,
                image_size: 0x1a0_0000,
                flags: 0xa
            }
        );
        assert_eq!(ImageHeader::parse(&[0; 63], 1), Err(Arm64Error::Truncated));
        let mut bad = header(0, 0x100, 0);
        bad[56] = 0;
        assert_eq!(ImageHeader::parse(&bad, 0x10), Err(Arm64Error::BadMagic));
        assert_eq!(
            ImageHeader::parse(&header(0x80000, 0, 0), 0x10),
            Err(Arm64Error::NoImageSize)
        );
        assert!(matches!(
            ImageHeader::parse(&header(0, 0x10, 0), 0x20),
            Err(Arm64Error::ImageSizeTooSmall { .. })
        ));
        assert_eq!(
            ImageHeader::parse(&header(2 << 20, 0x100, 0), 0x10),
            Err(Arm64Error::BadTextOffset(2 << 20))
        );
        assert_eq!(
            ImageHeader::parse(&header(0, 0x100, 1), 0x10),
            Err(Arm64Error::BigEndian)
        );
    }

    #[test]
    fn placement_is_aligned_ordered_and_inside_ram() {
        let h = ImageHeader {
            text_offset: 0x8_0000,
            image_size: 0x1ab_0000,
            flags: 0,
        };
        let p = place(&h, 0x1c_3000, 0x4180_0001, (0x4000_0000, 0x8000_0000)).unwrap();
        assert_eq!(p.kernel, 0x41a0_0000 + 0x8_0000);
        assert_eq!(p.kernel % BASE_ALIGN, h.text_offset);
        assert!(p.initrd >= p.kernel + h.image_size && p.initrd.is_multiple_of(BASE_ALIGN));
        assert!(p.dtb >= p.initrd + 0x1c_3000 && p.dtb.is_multiple_of(BASE_ALIGN));
        // Too little RAM, and arithmetic at the top of the address space.
        assert!(matches!(
            place(&h, 0, 0x4180_0000, (0x4000_0000, 0x4200_0000)),
            Err(Arm64Error::DoesNotFit { .. })
        ));
        assert!(place(&h, u64::MAX - 10, 0x4180_0000, (0x4000_0000, u64::MAX)).is_err());
        assert!(place(&h, 0, u64::MAX - 10, (0, u64::MAX)).is_err());
    }
}
