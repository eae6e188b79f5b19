//! The x86_64-specific layer: entry, port I/O, exceptions, paging.

pub mod culprit;
pub mod exceptions;
pub mod io;
pub mod paging;
pub mod protect;

core::arch::global_asm!(include_str!("entry.s"), options(att_syntax));
