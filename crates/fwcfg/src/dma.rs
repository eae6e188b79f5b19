//! The fw_cfg DMA interface: the `FWCfgDmaAccess` descriptor the firmware
//! places in RAM before writing its physical address to
//! [`PORT_DMA`](crate::PORT_DMA) / [`PORT_DMA_LOW`](crate::PORT_DMA_LOW).
//!
//! QEMU processes the descriptor synchronously and rewrites `control`:
//! zero means success, [`CTL_ERROR`] means failure, anything else would be
//! "still running" (not produced today, but the spec reserves it).

use core::mem::size_of;
use zerocopy::byteorder::{BigEndian, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Control bit: set by QEMU when the transfer failed.
pub const CTL_ERROR: u32 = 1 << 0;
/// Control bit: copy `length` bytes of the item into RAM at `address`.
pub const CTL_READ: u32 = 1 << 1;
/// Control bit: advance the item offset by `length` bytes.
pub const CTL_SKIP: u32 = 1 << 2;
/// Control bit: select the item in the upper 16 bits first.
pub const CTL_SELECT: u32 = 1 << 3;
/// Control bit: copy `length` bytes from RAM at `address` into the item
/// (only for writable items such as `etc/vmgenid_addr`).
pub const CTL_WRITE: u32 = 1 << 4;

/// `FWCfgDmaAccess`: all fields big-endian.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
pub struct DmaAccess {
    /// Operation bits on input; status on output.
    pub control: U32<BigEndian>,
    /// Bytes to transfer or skip.
    pub length: U32<BigEndian>,
    /// Guest-physical buffer address.
    pub address: U64<BigEndian>,
}
const _: () = assert!(size_of::<DmaAccess>() == 16);

/// How a descriptor looks after QEMU processed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmaStatus {
    /// `control` is zero: the transfer completed.
    Done,
    /// The error bit is set.
    Error,
    /// Other bits are still set: the transfer has not finished.
    Busy,
}

impl DmaAccess {
    fn new(op: u32, select: Option<u16>, length: u32, address: u64) -> Self {
        let sel = match select {
            Some(s) => (u32::from(s) << 16) | CTL_SELECT,
            None => 0,
        };
        DmaAccess {
            control: U32::new(op | sel),
            length: U32::new(length),
            address: U64::new(address),
        }
    }

    /// Read `length` bytes into RAM at `address`, first selecting item
    /// `select` (which rewinds it to offset 0) unless it is `None`, in
    /// which case the read continues where the last access stopped.
    pub fn read(select: Option<u16>, length: u32, address: u64) -> Self {
        Self::new(CTL_READ, select, length, address)
    }

    /// Write `length` bytes from RAM at `address` into the item (at its
    /// current offset, so usually preceded by a [`skip`](Self::skip)).
    pub fn write(select: Option<u16>, length: u32, address: u64) -> Self {
        Self::new(CTL_WRITE, select, length, address)
    }

    /// Advance the item offset by `length` bytes without transferring.
    pub fn skip(select: Option<u16>, length: u32) -> Self {
        Self::new(CTL_SKIP, select, length, 0)
    }

    /// Interpret `control` after QEMU has processed the descriptor.
    pub fn status(&self) -> DmaStatus {
        let c = self.control.get();
        if c & CTL_ERROR != 0 {
            DmaStatus::Error
        } else if c == 0 {
            DmaStatus::Done
        } else {
            DmaStatus::Busy
        }
    }
}

/// Split a descriptor address into the (high, low) 32-bit halves written to
/// [`PORT_DMA`](crate::PORT_DMA) and [`PORT_DMA_LOW`](crate::PORT_DMA_LOW).
/// Each half is written with a 32-bit `out` after converting to big-endian;
/// the high half may be skipped when it is zero.
pub fn dma_address_halves(addr: u64) -> (u32, u32) {
    ((addr >> 32) as u32, addr as u32)
}
