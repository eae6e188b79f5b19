//! The 16550 serial console (COM1) and the `log` sink that writes to it with
//! a timestamp since Ember started.

use crate::arch::io::{inb, outb};
use crate::time;
use core::fmt::{self, Write};
use spin::Mutex;

const COM1: u16 = 0x3f8;

struct Uart {
    present: bool,
}

impl Uart {
    fn init(&mut self) {
        // SAFETY: COM1 is the platform console; Ember is its only user.
        unsafe {
            outb(COM1 + 1, 0x00); // no interrupts: Ember polls
            outb(COM1 + 3, 0x80); // DLAB
            outb(COM1, 0x01); // 115200 baud
            outb(COM1 + 1, 0x00);
            outb(COM1 + 3, 0x03); // 8N1
            outb(COM1 + 2, 0xc7); // FIFO on, cleared
            outb(COM1 + 4, 0x0b); // DTR, RTS, OUT2
                                  // Without a UART the bus floats to 0xff.
            self.present = inb(COM1 + 5) != 0xff;
        }
    }

    fn put(&mut self, b: u8) {
        if !self.present {
            return;
        }
        // Bounded: a wedged UART costs characters, never a hang.
        for _ in 0..100_000 {
            // SAFETY: reading the line status register of our own UART.
            if unsafe { inb(COM1 + 5) } & 0x20 != 0 {
                break;
            }
        }
        // SAFETY: writing the transmit register of our own UART.
        unsafe { outb(COM1, b) }
    }
}

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
        Ok(())
    }
}

static UART: Mutex<Uart> = Mutex::new(Uart { present: false });

/// Bring up the UART and install the logger at `level`.
pub fn init(level: log::LevelFilter) {
    UART.lock().init();
    // Only fails if a logger is already set, which means init ran twice.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Change the log level (from the `ember.log=` command-line option).
pub fn set_level(level: log::LevelFilter) {
    log::set_max_level(level);
}

/// Raw console output, for the panic and exception paths.
pub fn write_fmt(args: fmt::Arguments) {
    // Panics and exceptions may interrupt a holder of the lock; never deadlock on it.
    if let Some(mut u) = UART.try_lock() {
        let _ = u.write_fmt(args);
    } else {
        let mut u = Uart { present: true };
        let _ = u.write_fmt(args);
    }
}

/// Bytes exactly as given (EFI text output sends its own CR LF).
pub fn write_raw(bytes: &[u8]) {
    if let Some(mut u) = UART.try_lock() {
        for &b in bytes {
            u.put(b);
        }
    }
}

/// A byte from the terminal, if one has arrived.
pub fn read_byte() -> Option<u8> {
    let u = UART.try_lock()?;
    if !u.present {
        return None;
    }
    // SAFETY: line status and receive registers of our own UART.
    unsafe { (inb(COM1 + 5) & 1 != 0).then(|| inb(COM1)) }
}

struct Logger;
static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let us = time::since_start_us();
        let tag = match r.level() {
            log::Level::Error => "ERROR",
            log::Level::Warn => "WARN ",
            log::Level::Info => "INFO ",
            log::Level::Debug => "DEBUG",
            log::Level::Trace => "TRACE",
        };
        write_fmt(format_args!(
            "[{:4}.{:06}] {} {}\n",
            us / 1_000_000,
            us % 1_000_000,
            tag,
            r.args()
        ));
    }
    fn flush(&self) {}
}

/// `print!` to the console without a log prefix.
#[macro_export]
macro_rules! print {
    ($($t:tt)*) => { $crate::console::write_fmt(format_args!($($t)*)) };
}
