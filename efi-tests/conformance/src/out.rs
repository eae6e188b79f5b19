//! Console output (ConOut, which OVMF mirrors to the serial port under
//! `-nographic`) and the pass/fail tally.

use crate::util;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use r_efi::efi;

static PASSED: AtomicU32 = AtomicU32::new(0);
static FAILED: AtomicU32 = AtomicU32::new(0);

/// Formats into a UCS-2 buffer, flushing to ConOut when full. `\n` becomes
/// `\r\n` because ConOut is a terminal, not a text stream.
struct ConOut {
    buf: [u16; 128],
    len: usize,
}

/// After ExitBootServices there is no ConOut: lines go to COM1 directly.
static SERIAL: AtomicBool = AtomicBool::new(false);

/// Send further output straight to COM1 (the port OVMF and Ember use for
/// their console under `-nographic`).
pub fn to_serial() {
    SERIAL.store(true, Ordering::Relaxed);
}

fn serial_byte(b: u8) {
    // SAFETY: COM1's line-status and data ports; waiting (bounded) for the
    // transmitter to take the byte.
    unsafe {
        for _ in 0..100_000 {
            let lsr: u8;
            core::arch::asm!("in al, dx", out("al") lsr, in("dx") 0x3fdu16);
            if lsr & 0x20 != 0 {
                break;
            }
        }
        core::arch::asm!("out dx, al", in("dx") 0x3f8u16, in("al") b);
    }
}

impl ConOut {
    fn flush(&mut self) {
        if SERIAL.load(Ordering::Relaxed) {
            for &c in &self.buf[..self.len] {
                serial_byte(u8::try_from(c).unwrap_or(b'?'));
            }
            self.len = 0;
            return;
        }
        self.buf[self.len] = 0;
        // SAFETY: the system table and ConOut stay valid during boot services;
        // the buffer is NUL-terminated.
        unsafe {
            let st = util::st();
            let con = (*st).con_out;
            if !con.is_null() {
                ((*con).output_string)(con, self.buf.as_mut_ptr());
            }
        }
        self.len = 0;
    }
    fn push(&mut self, c: u16) {
        if self.len == self.buf.len() - 1 {
            self.flush();
        }
        self.buf[self.len] = c;
        self.len += 1;
    }
}

impl Write for ConOut {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if c == '\n' {
                self.push(u16::from(b'\r'));
            }
            // ConOut is UCS-2: anything outside the BMP prints as '?'.
            self.push(u16::try_from(u32::from(c)).unwrap_or(u16::from(b'?')));
        }
        Ok(())
    }
}

pub fn line(args: fmt::Arguments) {
    let mut c = ConOut {
        buf: [0; 128],
        len: 0,
    };
    let _ = c.write_fmt(args);
    let _ = c.write_str("\n");
    c.flush();
}

/// One named assertion.
pub fn check(name: &str, ok: bool, why: fmt::Arguments) -> bool {
    if ok {
        PASSED.fetch_add(1, Ordering::Relaxed);
        line(format_args!("ok {name}"));
    } else {
        FAILED.fetch_add(1, Ordering::Relaxed);
        line(format_args!("FAIL {name}: {why}"));
    }
    ok
}

/// Informational line: something optional is absent; neither pass nor fail.
pub fn info(name: &str, why: fmt::Arguments) {
    line(format_args!("info {name}: {why}"));
}

pub fn expect_status(name: &str, got: efi::Status, want: efi::Status) -> bool {
    check(
        name,
        got == want,
        format_args!("returned {}, spec requires {}", St(got), St(want)),
    )
}

/// Equality with both values in the message.
pub fn expect_eq<T: PartialEq + fmt::Debug>(name: &str, got: T, want: T) -> bool {
    let ok = got == want;
    check(name, ok, format_args!("got {got:?}, expected {want:?}"))
}

/// Status codes by their spec names.
pub struct St(pub efi::Status);

impl fmt::Display for St {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0.as_usize();
        let err = v & (1 << 63) != 0;
        let code = v & !(1 << 63);
        let name = match (err, code) {
            (false, 0) => "EFI_SUCCESS",
            (true, 1) => "EFI_LOAD_ERROR",
            (true, 2) => "EFI_INVALID_PARAMETER",
            (true, 3) => "EFI_UNSUPPORTED",
            (true, 4) => "EFI_BAD_BUFFER_SIZE",
            (true, 5) => "EFI_BUFFER_TOO_SMALL",
            (true, 6) => "EFI_NOT_READY",
            (true, 7) => "EFI_DEVICE_ERROR",
            (true, 8) => "EFI_WRITE_PROTECTED",
            (true, 9) => "EFI_OUT_OF_RESOURCES",
            (true, 13) => "EFI_MEDIA_CHANGED",
            (true, 14) => "EFI_NOT_FOUND",
            (true, 15) => "EFI_ACCESS_DENIED",
            (true, 18) => "EFI_TIMEOUT",
            (true, 20) => "EFI_ALREADY_STARTED",
            (true, 21) => "EFI_ABORTED",
            (true, 26) => "EFI_SECURITY_VIOLATION",
            (true, 27) => "EFI_CRC_ERROR",
            _ => {
                return write!(
                    f,
                    "{}status {code:#x}",
                    if err { "error " } else { "warning " }
                )
            }
        };
        f.write_str(name)
    }
}

/// Print the summary and power the VM off.
pub unsafe fn summary_and_shutdown() -> ! {
    summary_and_shutdown_with(util::rt())
}

/// The same, through the runtime services table `rt` (its virtual address
/// after SetVirtualAddressMap).
pub unsafe fn summary_and_shutdown_with(rt: &efi::RuntimeServices) -> ! {
    let (p, fl) = (
        PASSED.load(Ordering::Relaxed),
        FAILED.load(Ordering::Relaxed),
    );
    line(format_args!("CONFORMANCE: {p} passed, {fl} failed"));
    let status = if fl == 0 {
        efi::Status::SUCCESS
    } else {
        efi::Status::ABORTED
    };
    (rt.reset_system)(efi::RESET_SHUTDOWN, status, 0, core::ptr::null_mut());
    // ResetSystem must not return; if it does, say so and hang for the harness.
    line(format_args!("FAIL ResetSystem(EfiResetShutdown) returned"));
    loop {
        core::hint::spin_loop();
    }
}
