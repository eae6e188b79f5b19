//! Entry points (DSP0134 §5.2) and the fw_cfg anchor fix-up.

use core::fmt;
use core::mem::size_of;

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::{checksum, Error};

/// `_SM_`: the 2.1 (32-bit) entry point anchor.
pub const ANCHOR_21: [u8; 4] = *b"_SM_";
/// `_DMI_`: the 2.1 entry point's intermediate anchor at offset 10h.
pub const ANCHOR_DMI: [u8; 5] = *b"_DMI_";
/// `_SM3_`: the 3.0 (64-bit) entry point anchor.
pub const ANCHOR_30: [u8; 5] = *b"_SM3_";

/// SMBIOS 2.1 (32-bit) entry point, 31 bytes.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct EntryPoint21 {
    /// `_SM_`.
    pub anchor: [u8; 4],
    /// Makes the first `length` bytes sum to zero.
    pub checksum: u8,
    /// 1Fh (2.1 spec erratum: some producers write 1Eh).
    pub length: u8,
    /// SMBIOS major version.
    pub major: u8,
    /// SMBIOS minor version.
    pub minor: u8,
    /// Size of the largest structure, strings included.
    pub max_structure_size: U16,
    /// 0 for this layout.
    pub revision: u8,
    /// Zero for revision 0.
    pub formatted_area: [u8; 5],
    /// `_DMI_`.
    pub intermediate_anchor: [u8; 5],
    /// Makes the 15 bytes from `intermediate_anchor` sum to zero.
    pub intermediate_checksum: u8,
    /// Structure table length in bytes.
    pub table_length: U16,
    /// 32-bit physical address of the structure table.
    pub table_address: U32,
    /// Number of structures in the table.
    pub structure_count: U16,
    /// Version in BCD (legacy DMI readers).
    pub bcd_revision: u8,
}

const _: () = assert!(size_of::<EntryPoint21>() == 31);

/// Offset of `_DMI_` in [`EntryPoint21`]; the intermediate checksum covers
/// the 15 bytes from here to the end.
pub(crate) const INTERMEDIATE_OFFSET: usize = 0x10;
const INTERMEDIATE_LEN: usize = 15;
const _: () = assert!(INTERMEDIATE_OFFSET + INTERMEDIATE_LEN == size_of::<EntryPoint21>());

/// SMBIOS 3.0 (64-bit) entry point, 24 bytes.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct EntryPoint30 {
    /// `_SM3_`.
    pub anchor: [u8; 5],
    /// Makes the first `length` bytes sum to zero.
    pub checksum: u8,
    /// 18h.
    pub length: u8,
    /// SMBIOS major version.
    pub major: u8,
    /// SMBIOS minor version.
    pub minor: u8,
    /// SMBIOS docrev.
    pub docrev: u8,
    /// 01h: this layout.
    pub revision: u8,
    /// Zero.
    pub reserved: u8,
    /// Upper bound on the structure table's length in bytes.
    pub table_max_size: U32,
    /// 64-bit physical address of the structure table.
    pub table_address: U64,
}

const _: () = assert!(size_of::<EntryPoint30>() == 24);

/// Every structure's first four bytes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct Header {
    /// Structure type.
    pub kind: u8,
    /// Length of the formatted area, this header included.
    pub length: u8,
    /// Handle, unique within the table.
    pub handle: U16,
}

const _: () = assert!(size_of::<Header>() == 4);

impl Header {
    /// A header from native values.
    pub(crate) fn new(kind: u8, length: u8, handle: u16) -> Self {
        Header {
            kind,
            length,
            handle: U16::new(handle),
        }
    }
}

/// Which entry point [`fixup_anchor`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// `_SM_`, the 32-bit SMBIOS 2.1 entry point.
    Smbios21,
    /// `_SM3_`, the 64-bit SMBIOS 3.0 entry point.
    Smbios30,
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Anchor::Smbios21 => "SMBIOS 2.1 (_SM_)",
            Anchor::Smbios30 => "SMBIOS 3.0 (_SM3_)",
        })
    }
}

/// Point a VMM-supplied entry point (fw_cfg `etc/smbios/smbios-anchor`) at
/// the structure table the firmware placed at `table_addr` (`table_len`
/// bytes, i.e. `etc/smbios/smbios-tables`) and recompute its checksums.
///
/// The table length (2.1) and maximum size (3.0) fields are the VMM's and
/// are not rewritten, but they must be non-zero and no larger than
/// `table_len`, so the OS never reads past the placed table (a smaller value
/// only hides a tail). A 2.1 table must lie entirely below 4 GiB. The input
/// checksums are not checked: QEMU leaves them for the firmware.
///
/// On error `anchor` is left untouched.
pub fn fixup_anchor(anchor: &mut [u8], table_addr: u64, table_len: u32) -> Result<Anchor, Error> {
    if anchor.starts_with(&ANCHOR_30) {
        fixup_30(anchor, table_addr, table_len)?;
        Ok(Anchor::Smbios30)
    } else if anchor.starts_with(&ANCHOR_21) {
        fixup_21(anchor, table_addr, table_len)?;
        Ok(Anchor::Smbios21)
    } else if anchor.len() < ANCHOR_30.len() && ANCHOR_30.starts_with(anchor) {
        // A prefix of either anchor: the honest complaint is the length.
        Err(Error::AnchorTooShort {
            len: anchor.len(),
            need: size_of::<EntryPoint30>(),
        })
    } else {
        Err(Error::UnknownAnchor)
    }
}

fn fixup_21(anchor: &mut [u8], table_addr: u64, table_len: u32) -> Result<(), Error> {
    let kind = Anchor::Smbios21;
    let available = anchor.len();
    let (ep, _) = EntryPoint21::mut_from_prefix(anchor).map_err(|_| Error::AnchorTooShort {
        len: available,
        need: size_of::<EntryPoint21>(),
    })?;
    if ep.intermediate_anchor != ANCHOR_DMI {
        return Err(Error::BadIntermediateAnchor);
    }
    // 1Fh is right; the 2.1 spec itself said 1Eh, so producers of that era
    // wrote it, and readers accept both.
    if !(0x1e..=0x1f).contains(&ep.length) {
        return Err(Error::BadEntryPointLength {
            kind,
            length: ep.length,
            available,
        });
    }
    let declared = u32::from(ep.table_length.get());
    if declared == 0 || declared > table_len {
        return Err(Error::TableLengthMismatch {
            kind,
            declared,
            placed: table_len,
        });
    }
    let addr = u32::try_from(table_addr)
        .ok()
        .filter(|a| u64::from(*a) + u64::from(table_len) <= 1 << 32)
        .ok_or(Error::TableAddressTooHigh {
            kind,
            addr: table_addr,
            len: table_len,
        })?;
    ep.table_address = U32::new(addr);
    // The entry-point checksum covers the intermediate one: do that first.
    ep.intermediate_checksum = 0;
    ep.intermediate_checksum = checksum(&ep.as_bytes()[INTERMEDIATE_OFFSET..]);
    let len = usize::from(ep.length);
    ep.checksum = 0;
    ep.checksum = checksum(&ep.as_bytes()[..len]);
    Ok(())
}

fn fixup_30(anchor: &mut [u8], table_addr: u64, table_len: u32) -> Result<(), Error> {
    let kind = Anchor::Smbios30;
    let available = anchor.len();
    let (ep, _) = EntryPoint30::mut_from_prefix(anchor).map_err(|_| Error::AnchorTooShort {
        len: available,
        need: size_of::<EntryPoint30>(),
    })?;
    let len = usize::from(ep.length);
    // Later revisions may grow the structure; the checksum then covers the
    // longer length, which must still be within what we were given.
    if len < size_of::<EntryPoint30>() || len > available {
        return Err(Error::BadEntryPointLength {
            kind,
            length: ep.length,
            available,
        });
    }
    let declared = ep.table_max_size.get();
    if declared == 0 || declared > table_len {
        return Err(Error::TableLengthMismatch {
            kind,
            declared,
            placed: table_len,
        });
    }
    if table_addr.checked_add(u64::from(table_len)).is_none() {
        return Err(Error::TableAddressTooHigh {
            kind,
            addr: table_addr,
            len: table_len,
        });
    }
    ep.table_address = U64::new(table_addr);
    ep.checksum = 0;
    // The sum runs over `len` bytes, which may extend past the 24-byte
    // struct in later revisions, so take it over the buffer and re-borrow.
    let sum = checksum(&anchor[..len]);
    if let Ok((ep, _)) = EntryPoint30::mut_from_prefix(anchor) {
        ep.checksum = sum;
    }
    Ok(())
}
