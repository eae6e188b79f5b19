//! UEFI data structures that need no hardware access: device paths
//! ([`devpath`]), the UEFI view of Ember's memory map plus the pool
//! allocator's bookkeeping ([`memmap`]), the variable store ([`vars`]) and
//! `Boot####` load options ([`loadopt`]).
//!
//! Everything here is pure: the firmware copies bytes in and out of guest
//! memory and calls these functions on slices, so all parsing of values
//! handed over by UEFI applications is bounds-checked safe Rust.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod bootmgr;
pub mod clock;
pub mod devpath;
mod guid;
pub mod loadopt;
pub mod memmap;
pub mod status;
pub mod vars;

pub use guid::{Guid, GuidParseError};
