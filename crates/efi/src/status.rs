//! `EFI_STATUS` (UEFI 2.10 appendix D): a `usize` whose top bit marks errors.

use core::fmt;

/// An `EFI_STATUS` value exactly as it crosses the `efiapi` boundary.
///
/// Success and warnings have the top bit clear; errors have it set.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Status(pub usize);

/// The top bit of a native word: set for every error code.
pub const ERROR_BIT: usize = 1 << (usize::BITS - 1);

const fn err(code: usize) -> Status {
    Status(ERROR_BIT | code)
}

impl Status {
    /// The operation completed successfully.
    pub const SUCCESS: Status = Status(0);

    /// Warning: a string had characters that could not be rendered.
    pub const WARN_UNKNOWN_GLYPH: Status = Status(1);
    /// Warning: the handle was closed but the file was not deleted.
    pub const WARN_DELETE_FAILURE: Status = Status(2);
    /// Warning: the handle was closed but the data was not flushed.
    pub const WARN_WRITE_FAILURE: Status = Status(3);
    /// Warning: the buffer was too small and the data was truncated.
    pub const WARN_BUFFER_TOO_SMALL: Status = Status(4);
    /// Warning: the data has not been updated within local policy.
    pub const WARN_STALE_DATA: Status = Status(5);
    /// Warning: the buffer contains a UEFI-compliant file system.
    pub const WARN_FILE_SYSTEM: Status = Status(6);
    /// Warning: the operation will be processed across a reset.
    pub const WARN_RESET_REQUIRED: Status = Status(7);

    /// The image failed to load.
    pub const LOAD_ERROR: Status = err(1);
    /// A parameter was incorrect.
    pub const INVALID_PARAMETER: Status = err(2);
    /// The operation is not supported.
    pub const UNSUPPORTED: Status = err(3);
    /// The buffer was not the proper size for the request.
    pub const BAD_BUFFER_SIZE: Status = err(4);
    /// The buffer is not large enough; the required size was returned.
    pub const BUFFER_TOO_SMALL: Status = err(5);
    /// There is no data pending upon return.
    pub const NOT_READY: Status = err(6);
    /// The physical device reported an error.
    pub const DEVICE_ERROR: Status = err(7);
    /// The device cannot be written to.
    pub const WRITE_PROTECTED: Status = err(8);
    /// A resource has run out.
    pub const OUT_OF_RESOURCES: Status = err(9);
    /// An inconsistency was detected on the file system.
    pub const VOLUME_CORRUPTED: Status = err(10);
    /// There is no more space on the file system.
    pub const VOLUME_FULL: Status = err(11);
    /// The device does not contain any medium.
    pub const NO_MEDIA: Status = err(12);
    /// The medium in the device has changed.
    pub const MEDIA_CHANGED: Status = err(13);
    /// The item was not found.
    pub const NOT_FOUND: Status = err(14);
    /// Access was denied.
    pub const ACCESS_DENIED: Status = err(15);
    /// The server was not found or did not respond.
    pub const NO_RESPONSE: Status = err(16);
    /// A mapping to a device does not exist.
    pub const NO_MAPPING: Status = err(17);
    /// The timeout time expired.
    pub const TIMEOUT: Status = err(18);
    /// The protocol has not been started.
    pub const NOT_STARTED: Status = err(19);
    /// The protocol has already been started.
    pub const ALREADY_STARTED: Status = err(20);
    /// The operation was aborted.
    pub const ABORTED: Status = err(21);
    /// An ICMP error occurred during the network operation.
    pub const ICMP_ERROR: Status = err(22);
    /// A TFTP error occurred during the network operation.
    pub const TFTP_ERROR: Status = err(23);
    /// A protocol error occurred during the network operation.
    pub const PROTOCOL_ERROR: Status = err(24);
    /// An internal version was incompatible with the one requested.
    pub const INCOMPATIBLE_VERSION: Status = err(25);
    /// The operation was not performed due to a security violation.
    pub const SECURITY_VIOLATION: Status = err(26);
    /// A CRC error was detected.
    pub const CRC_ERROR: Status = err(27);
    /// The beginning or end of media was reached.
    pub const END_OF_MEDIA: Status = err(28);
    /// The end of the file was reached.
    pub const END_OF_FILE: Status = err(31);
    /// The language specified was invalid.
    pub const INVALID_LANGUAGE: Status = err(32);
    /// The security status of the data is unknown or compromised.
    pub const COMPROMISED_DATA: Status = err(33);
    /// There is an address conflict during address allocation.
    pub const IP_ADDRESS_CONFLICT: Status = err(34);
    /// An HTTP error occurred during the network operation.
    pub const HTTP_ERROR: Status = err(35);

    /// True for error codes (top bit set).
    pub const fn is_error(self) -> bool {
        self.0 & ERROR_BIT != 0
    }

    /// True for warnings: non-zero with the top bit clear.
    pub const fn is_warning(self) -> bool {
        self.0 != 0 && !self.is_error()
    }

    /// True only for `EFI_SUCCESS`.
    pub const fn is_success(self) -> bool {
        self.0 == 0
    }

    /// Converts a `Result` from this crate into the value an `efiapi`
    /// function returns.
    pub fn from_result<T>(r: Result<T, Status>) -> Status {
        match r {
            Ok(_) => Status::SUCCESS,
            Err(s) => s,
        }
    }

    /// The spec's name and meaning, or `None` for codes it does not define.
    pub const fn describe(self) -> Option<(&'static str, &'static str)> {
        let d = match self {
            Status::SUCCESS => ("EFI_SUCCESS", "the operation completed successfully"),
            Status::WARN_UNKNOWN_GLYPH => {
                ("EFI_WARN_UNKNOWN_GLYPH", "characters could not be rendered")
            }
            Status::WARN_DELETE_FAILURE => ("EFI_WARN_DELETE_FAILURE", "closed but not deleted"),
            Status::WARN_WRITE_FAILURE => ("EFI_WARN_WRITE_FAILURE", "closed but data not flushed"),
            Status::WARN_BUFFER_TOO_SMALL => ("EFI_WARN_BUFFER_TOO_SMALL", "data was truncated"),
            Status::WARN_STALE_DATA => ("EFI_WARN_STALE_DATA", "data is stale"),
            Status::WARN_FILE_SYSTEM => ("EFI_WARN_FILE_SYSTEM", "buffer holds a file system"),
            Status::WARN_RESET_REQUIRED => ("EFI_WARN_RESET_REQUIRED", "completes across a reset"),
            Status::LOAD_ERROR => ("EFI_LOAD_ERROR", "the image failed to load"),
            Status::INVALID_PARAMETER => ("EFI_INVALID_PARAMETER", "a parameter was incorrect"),
            Status::UNSUPPORTED => ("EFI_UNSUPPORTED", "the operation is not supported"),
            Status::BAD_BUFFER_SIZE => ("EFI_BAD_BUFFER_SIZE", "the buffer is not the proper size"),
            Status::BUFFER_TOO_SMALL => (
                "EFI_BUFFER_TOO_SMALL",
                "the buffer is too small; retry with the returned size",
            ),
            Status::NOT_READY => ("EFI_NOT_READY", "no data is pending"),
            Status::DEVICE_ERROR => ("EFI_DEVICE_ERROR", "the device reported an error"),
            Status::WRITE_PROTECTED => ("EFI_WRITE_PROTECTED", "the device cannot be written to"),
            Status::OUT_OF_RESOURCES => ("EFI_OUT_OF_RESOURCES", "a resource has run out"),
            Status::VOLUME_CORRUPTED => ("EFI_VOLUME_CORRUPTED", "the file system is inconsistent"),
            Status::VOLUME_FULL => ("EFI_VOLUME_FULL", "the file system is full"),
            Status::NO_MEDIA => ("EFI_NO_MEDIA", "the device has no medium"),
            Status::MEDIA_CHANGED => ("EFI_MEDIA_CHANGED", "the medium has changed"),
            Status::NOT_FOUND => ("EFI_NOT_FOUND", "the item was not found"),
            Status::ACCESS_DENIED => ("EFI_ACCESS_DENIED", "access was denied"),
            Status::NO_RESPONSE => ("EFI_NO_RESPONSE", "the server did not respond"),
            Status::NO_MAPPING => ("EFI_NO_MAPPING", "no mapping to a device exists"),
            Status::TIMEOUT => ("EFI_TIMEOUT", "the timeout expired"),
            Status::NOT_STARTED => ("EFI_NOT_STARTED", "the protocol has not been started"),
            Status::ALREADY_STARTED => (
                "EFI_ALREADY_STARTED",
                "the protocol has already been started",
            ),
            Status::ABORTED => ("EFI_ABORTED", "the operation was aborted"),
            Status::ICMP_ERROR => ("EFI_ICMP_ERROR", "an ICMP error occurred"),
            Status::TFTP_ERROR => ("EFI_TFTP_ERROR", "a TFTP error occurred"),
            Status::PROTOCOL_ERROR => ("EFI_PROTOCOL_ERROR", "a network protocol error occurred"),
            Status::INCOMPATIBLE_VERSION => (
                "EFI_INCOMPATIBLE_VERSION",
                "an incompatible version was requested",
            ),
            Status::SECURITY_VIOLATION => ("EFI_SECURITY_VIOLATION", "refused by security policy"),
            Status::CRC_ERROR => ("EFI_CRC_ERROR", "a CRC error was detected"),
            Status::END_OF_MEDIA => ("EFI_END_OF_MEDIA", "the end of the media was reached"),
            Status::END_OF_FILE => ("EFI_END_OF_FILE", "the end of the file was reached"),
            Status::INVALID_LANGUAGE => ("EFI_INVALID_LANGUAGE", "the language is invalid"),
            Status::COMPROMISED_DATA => (
                "EFI_COMPROMISED_DATA",
                "the data's security status is unknown or compromised",
            ),
            Status::IP_ADDRESS_CONFLICT => {
                ("EFI_IP_ADDRESS_CONFLICT", "an IP address conflict occurred")
            }
            Status::HTTP_ERROR => ("EFI_HTTP_ERROR", "an HTTP error occurred"),
            _ => return None,
        };
        Some(d)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.describe() {
            Some((name, what)) => write!(f, "{name} ({what})"),
            None if self.is_error() => write!(f, "EFI error {:#x}", self.0 & !ERROR_BIT),
            None => write!(f, "EFI warning {:#x}", self.0),
        }
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.describe() {
            Some((name, _)) => f.write_str(name),
            None => write!(f, "Status({:#x})", self.0),
        }
    }
}

impl core::error::Error for Status {}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn values_match_appendix_d() {
        // 64-bit encodings from the spec's table D.3 (high bit set).
        assert_eq!(Status::LOAD_ERROR.0, 0x8000_0000_0000_0001);
        assert_eq!(Status::INVALID_PARAMETER.0, 0x8000_0000_0000_0002);
        assert_eq!(Status::BUFFER_TOO_SMALL.0, 0x8000_0000_0000_0005);
        assert_eq!(Status::NOT_FOUND.0, 0x8000_0000_0000_000e);
        assert_eq!(Status::ACCESS_DENIED.0, 0x8000_0000_0000_000f);
        assert_eq!(Status::ALREADY_STARTED.0, 0x8000_0000_0000_0014);
        assert_eq!(Status::SECURITY_VIOLATION.0, 0x8000_0000_0000_001a);
        assert_eq!(Status::END_OF_FILE.0, 0x8000_0000_0000_001f);
        assert_eq!(Status::HTTP_ERROR.0, 0x8000_0000_0000_0023);
        assert_eq!(Status::WARN_RESET_REQUIRED.0, 7);
    }

    #[test]
    fn classes() {
        assert!(Status::SUCCESS.is_success());
        assert!(!Status::SUCCESS.is_error() && !Status::SUCCESS.is_warning());
        assert!(Status::WARN_STALE_DATA.is_warning());
        assert!(Status::TIMEOUT.is_error() && !Status::TIMEOUT.is_warning());
        assert_eq!(Status::from_result::<()>(Ok(())), Status::SUCCESS);
        assert_eq!(
            Status::from_result::<()>(Err(Status::ABORTED)),
            Status::ABORTED
        );
    }

    #[test]
    fn display_names() {
        assert_eq!(
            format!("{}", Status::NOT_FOUND),
            "EFI_NOT_FOUND (the item was not found)"
        );
        assert_eq!(
            format!("{:?}", Status::INVALID_PARAMETER),
            "EFI_INVALID_PARAMETER"
        );
        assert_eq!(
            format!("{}", Status(ERROR_BIT | 0x1234)),
            "EFI error 0x1234"
        );
        assert_eq!(format!("{}", Status(0x99)), "EFI warning 0x99");
        // Every code 0..=40 with and without the error bit either has a name or a fallback.
        for code in 0..=40usize {
            for s in [Status(code), Status(code | ERROR_BIT)] {
                assert!(!format!("{s}").is_empty());
            }
        }
    }
}
