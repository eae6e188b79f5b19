//! A monotonic clock from the TSC, calibrated once at start.
//!
//! Sources, cheapest first: CPUID leaf 0x15/0x16, the hypervisor timing leaf
//! 0x40000010, then a 2 ms measurement against PIT channel 2 (about 2400 PIT
//! ticks: better than 0.1%, plenty for timestamps and Stall, and it is boot
//! time). The PIT is not present on every VMM, so its result is sanity-checked.

use crate::arch::io::{cpuid, inb, outb, rdtsc};
use core::sync::atomic::{AtomicU64, Ordering};

static START_TSC: AtomicU64 = AtomicU64::new(0);
/// TSC ticks per microsecond, scaled by 1024 for precision.
static TICKS_PER_US_X1024: AtomicU64 = AtomicU64::new(1024 * 1000);
static SOURCE: AtomicU64 = AtomicU64::new(0);

/// Record the start of time (first thing Ember does).
pub fn mark_start() {
    START_TSC.store(rdtsc(), Ordering::Relaxed);
}

/// TSC value at Ember's first instruction in Rust.
pub fn start_tsc() -> u64 {
    START_TSC.load(Ordering::Relaxed)
}

/// Where the calibration came from.
pub fn source() -> &'static str {
    match SOURCE.load(Ordering::Relaxed) {
        1 => "cpuid 0x15",
        2 => "cpuid 0x16",
        3 => "hypervisor leaf 0x40000010",
        4 => "PIT",
        _ => "assumed 1 GHz",
    }
}

/// TSC frequency in kHz.
pub fn tsc_khz() -> u64 {
    TICKS_PER_US_X1024.load(Ordering::Relaxed) * 1000 / 1024
}

fn set_khz(khz: u64, source: u64) {
    TICKS_PER_US_X1024.store((khz * 1024 / 1000).max(1), Ordering::Relaxed);
    SOURCE.store(source, Ordering::Relaxed);
}

/// Find the TSC frequency.
pub fn calibrate() {
    let max = cpuid(0, 0).eax;
    if max >= 0x15 {
        let l = cpuid(0x15, 0);
        if l.eax != 0 && l.ebx != 0 && l.ecx != 0 {
            set_khz(
                u64::from(l.ecx) * u64::from(l.ebx) / u64::from(l.eax) / 1000,
                1,
            );
            return;
        }
    }
    if max >= 0x16 {
        let mhz = cpuid(0x16, 0).eax & 0xffff;
        if mhz != 0 {
            set_khz(u64::from(mhz) * 1000, 2);
            return;
        }
    }
    if cpuid(1, 0).ecx & (1 << 31) != 0 && cpuid(0x4000_0000, 0).eax >= 0x4000_0010 {
        let khz = cpuid(0x4000_0010, 0).eax;
        if khz != 0 {
            set_khz(u64::from(khz), 3);
            return;
        }
    }
    if let Some(khz) = pit_measure() {
        set_khz(khz, 4);
    }
}

/// Count TSC ticks across 2 ms of PIT channel 2 (1.193182 MHz).
fn pit_measure() -> Option<u64> {
    const PIT_HZ: u64 = 1_193_182;
    const MS: u64 = 2;
    let count = (PIT_HZ * MS / 1000) as u16;
    // SAFETY: port 0x61 gate bits and PIT channel 2 belong to the speaker,
    // which nothing else uses; we leave the speaker disconnected.
    unsafe {
        let p61 = inb(0x61);
        if p61 == 0xff {
            return None; // no ISA bus decode: no PIT
        }
        outb(0x61, (p61 & !0x02) | 0x01); // gate on, speaker off
        outb(0x43, 0xb0); // channel 2, lo/hi, mode 0
        outb(0x42, count as u8);
        outb(0x42, (count >> 8) as u8);
        let t0 = rdtsc();
        // Bounded by TSC ticks: even at 10 GHz this is well past 2 ms.
        let mut done = false;
        while rdtsc().wrapping_sub(t0) < 50_000_000_000 {
            if inb(0x61) & 0x20 != 0 {
                done = true;
                break;
            }
        }
        let t1 = rdtsc();
        outb(0x61, p61);
        let khz = (t1 - t0) / MS;
        // Plausible CPU clocks only (10 MHz .. 10 GHz).
        (done && (10_000..10_000_000).contains(&khz)).then_some(khz)
    }
}

/// Convert TSC ticks to nanoseconds.
pub fn ticks_to_ns(ticks: u64) -> u64 {
    (u128::from(ticks) * 1024 * 1000 / u128::from(TICKS_PER_US_X1024.load(Ordering::Relaxed)))
        as u64
}

/// Nanoseconds since Ember started.
pub fn now_ns() -> u64 {
    ticks_to_ns(rdtsc().wrapping_sub(start_tsc()))
}

/// Microseconds since Ember started.
pub fn since_start_us() -> u64 {
    now_ns() / 1000
}

/// Busy-wait for `us` microseconds.
pub fn stall_us(us: u64) {
    let end = now_ns().saturating_add(us.saturating_mul(1000));
    while now_ns() < end {
        core::hint::spin_loop();
    }
}

/// Microseconds since the CPU came out of reset: the clock systemd's loader
/// interface uses. Behind another firmware (PVH, the Linux entry) the TSC
/// counts from reset, whoever ran before Ember. As the firmware itself Ember
/// ran first, so its own start is the reset — and the TSC is no guide then:
/// QEMU's TCG does not zero it on a warm reset (a reboot), so it would count
/// the previous boot too.
pub fn since_reset_us() -> u64 {
    if crate::platform::as_firmware() {
        return since_start_us();
    }
    ticks_to_ns(rdtsc()) / 1000
}
