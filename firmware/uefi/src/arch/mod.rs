//! The parts of the UEFI calling convention stable Rust cannot express,
//! per architecture: running an image on its own stack (and leaving it
//! through Exit), and the C-variadic Install/UninstallMultipleProtocol-
//! Interfaces.

#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(include_str!("x86_64.s"), options(att_syntax));
#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(include_str!("aarch64.s"));
