//! The `EFI_STATUS` codes this crate's errors map to (UEFI spec appendix
//! D), so the firmware can return them without a lookup table of its own.

/// Error codes have the top bit of a UINTN set.
const ERR: usize = 1 << (usize::BITS - 1);

/// `EFI_SUCCESS`.
pub const SUCCESS: usize = 0;
/// `EFI_INVALID_PARAMETER`.
pub const INVALID_PARAMETER: usize = ERR | 2;
/// `EFI_UNSUPPORTED`.
pub const UNSUPPORTED: usize = ERR | 3;
/// `EFI_BUFFER_TOO_SMALL`.
pub const BUFFER_TOO_SMALL: usize = ERR | 5;
/// `EFI_WRITE_PROTECTED`.
pub const WRITE_PROTECTED: usize = ERR | 8;
/// `EFI_OUT_OF_RESOURCES`.
pub const OUT_OF_RESOURCES: usize = ERR | 9;
/// `EFI_NOT_FOUND`.
pub const NOT_FOUND: usize = ERR | 14;
/// `EFI_SECURITY_VIOLATION`.
pub const SECURITY_VIOLATION: usize = ERR | 26;
