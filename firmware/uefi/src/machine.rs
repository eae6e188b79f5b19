//! What the UEFI layer needs from the machine it runs on: the console, the
//! clock, page attributes, the real-time clock, the variable flash, reset
//! and power-off, the random-number source and, for SetVirtualAddressMap,
//! the image's relocation. Each firmware (x86_64, aarch64) implements
//! [`Machine`] once and names it with [`machine!`](crate::machine!).
//!
//! The implementation is reached through a link-time constant, not a
//! pointer set at run time: runtime services run after
//! SetVirtualAddressMap, when Ember's image has been relocated, and only
//! pointers the linker recorded are adjusted then.

use alloc::vec::Vec;
use r_efi::efi::{Status, Time};

/// Page attributes, as the UEFI memory attributes RP, XP and RO.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attrs {
    pub read_protect: bool,
    pub exec_protect: bool,
    pub read_only: bool,
}

impl Attrs {
    pub const NONE: Attrs = Attrs {
        read_protect: false,
        exec_protect: false,
        read_only: false,
    };
    pub const ALL: Attrs = Attrs {
        read_protect: true,
        exec_protect: true,
        read_only: true,
    };
}

/// The wake-up alarm's state (GetWakeupTime).
#[derive(Clone, Copy, Debug)]
pub struct Wakeup {
    pub enabled: bool,
    pub pending: bool,
    pub time: Time,
}

/// The machine below the UEFI layer. Methods that run after
/// ExitBootServices (time, variables' flash, reset) must touch only
/// runtime memory, MMIO the OS maps for runtime services, or I/O ports.
pub trait Machine: Sync {
    // ---- console and clock ----
    /// Write bytes to the firmware console.
    fn console_write(&self, bytes: &[u8]);
    /// A byte from the console's input, if one is waiting.
    fn console_read(&self) -> Option<u8>;
    /// A monotonic clock in nanoseconds.
    fn now_ns(&self) -> u64;
    /// Microseconds since the machine was reset (for LoaderTimeInitUSec).
    fn since_reset_us(&self) -> u64;
    /// Microseconds since Ember started.
    fn since_start_us(&self) -> u64;
    /// ExitBootServices succeeded: from now on only runtime memory, and
    /// what the OS maps for runtime services, may be touched (a console
    /// the OS does not map must go quiet).
    fn boot_services_exited(&self) {}

    // ---- page tables ----
    /// Whether execute protection can be applied (x86: EFER.NXE).
    fn nx_enabled(&self) -> bool;
    /// Turn execute protection on if the CPU has it; whether it is on.
    fn enable_nx(&self) -> bool;
    /// Set `set` and clear `clear` on every page of `[start, end)`.
    ///
    /// # Safety
    /// The range must be RAM the caller owns (an image it loaded, pages it
    /// allocated); nothing Ember itself runs from may lose its access.
    unsafe fn update_attributes(&self, start: u64, end: u64, set: Attrs, clear: Attrs) -> bool;
    /// The attributes all pages of `[start, end)` share, if they do.
    fn attributes(&self, start: u64, end: u64) -> Option<Attrs>;
    /// Make code just written to `[start, start + len)` visible to
    /// instruction fetch (a no-op where caches are coherent).
    fn code_written(&self, start: u64, len: u64);
    /// Around a loaded image's run: unmap the guard page below its stack,
    /// and map page 0 (which holds legacy data on PCs) while images run.
    fn image_running(&self, stack_guard: u64, running: bool);
    /// Ember's image as [code, read-only data, data], for the memory
    /// attributes table and SetVirtualAddressMap.
    fn image_ranges(&self) -> [(u64, u64); 3];

    // ---- the real-time clock ----
    fn rtc_get(&self) -> Result<Time, Status>;
    /// `t` has been checked to be a valid time.
    fn rtc_set(&self, t: &Time) -> Status;
    fn wakeup_get(&self) -> Result<Wakeup, Status>;
    /// `t` (when enabling) has been checked to be a valid time.
    fn wakeup_set(&self, enable: bool, t: Option<&Time>) -> Status;
    /// Whether the wake-up services do more than answer UNSUPPORTED.
    fn has_wakeup(&self) -> bool;

    // ---- variables, reset, tables ----
    /// The variable flash, if the machine has one (QEMU pflash unit 1).
    fn var_flash(&self) -> Option<crate::flash::Pflash>;
    fn reset(&self) -> !;
    fn poweroff(&self) -> !;
    /// SMBIOS entry points Ember built, as (64-bit, address).
    fn smbios_tables(&self) -> Vec<(bool, u64)>;
    /// Whether the PC BIOS area (0xf0000..) may hold SMBIOS entry points.
    fn has_legacy_bios_area(&self) -> bool;

    // ---- randomness ----
    /// Which EFI_RNG algorithms the CPU provides: (SP800-90 CTR DRBG, raw).
    fn rng_algorithms(&self) -> (bool, bool);
    /// One random value from the DRBG (`raw` false) or the entropy source.
    fn rng_draw(&self, raw: bool) -> Option<u64>;

    // ---- SetVirtualAddressMap ----
    /// How many pointers the relocation table lists; `None` when the image
    /// cannot be relocated (SetVirtualAddressMap then fails cleanly).
    fn relocations(&self) -> Option<usize>;
    /// Add `delta` to every listed pointer.
    ///
    /// # Safety
    /// Called once, as the last step of SetVirtualAddressMap; afterwards
    /// only code and data reached at their new addresses may be used.
    unsafe fn relocate(&self, delta: u64);
}

// The firmware defines the symbol with `machine!`.
extern "Rust" {
    #[link_name = "ember_uefi_machine"]
    static MACHINE: &'static dyn Machine;
}

/// The machine the firmware named.
pub fn machine() -> &'static dyn Machine {
    // SAFETY: the firmware binary defines the symbol with `machine!` as an
    // immutable static of this type, initialised at link time.
    unsafe { MACHINE }
}

/// Name the firmware's [`Machine`]: `ember_uefi::machine!(X86);` with
/// `X86` a constant expression.
#[macro_export]
macro_rules! machine {
    ($m:expr) => {
        #[export_name = "ember_uefi_machine"]
        static EMBER_UEFI_MACHINE: &'static dyn $crate::machine::Machine = &$m;
    };
}

/// Text to the console, like `print!`.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::machine::print_fmt(format_args!($($arg)*))
    };
}

struct Out;

impl core::fmt::Write for Out {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        machine().console_write(s.as_bytes());
        Ok(())
    }
}

#[doc(hidden)]
pub fn print_fmt(args: core::fmt::Arguments) {
    let _ = core::fmt::Write::write_fmt(&mut Out, args);
}
