//! The PC's CMOS real-time clock (ports 0x70/0x71): the time for the UEFI
//! runtime services and the alarm behind Get/SetWakeupTime. Port I/O only,
//! so it works at any virtual address after SetVirtualAddressMap.

use crate::arch::io::{inb, outb};
use ember_uefi::machine::Wakeup;
use ember_uefi::runtime::unix_seconds;
use r_efi::efi::{self, Status, Time};
use spin::Mutex;

fn cmos(reg: u8) -> u8 {
    // SAFETY: the RTC's index/data ports; NMI-disable bit left clear.
    unsafe {
        outb(0x70, reg);
        inb(0x71)
    }
}

fn cmos_write(reg: u8, v: u8) {
    // SAFETY: as above.
    unsafe {
        outb(0x70, reg);
        outb(0x71, v);
    }
}

fn from_bcd(v: u8, bcd: bool) -> u8 {
    if bcd {
        (v >> 4) * 10 + (v & 0xf)
    } else {
        v
    }
}

fn to_bcd(v: u8, bcd: bool) -> u8 {
    if bcd {
        ((v / 10) << 4) | (v % 10)
    } else {
        v
    }
}

pub fn read_rtc() -> Option<Time> {
    if cmos(0x0a) == 0xff {
        return None; // no RTC decodes these ports
    }
    // Wait (bounded) for an update cycle not to be in progress.
    for _ in 0..100_000 {
        if cmos(0x0a) & 0x80 == 0 {
            break;
        }
    }
    let b = cmos(0x0b);
    let bcd = b & 0x04 == 0;
    let h24 = b & 0x02 != 0;
    let raw_hour = cmos(0x04);
    let mut hour = from_bcd(raw_hour & 0x7f, bcd);
    if !h24 {
        let pm = raw_hour & 0x80 != 0;
        hour %= 12;
        if pm {
            hour += 12;
        }
    }
    let century = match from_bcd(cmos(0x32), bcd) {
        c @ 19..=21 => u16::from(c),
        _ => 20,
    };
    Some(Time {
        year: century * 100 + u16::from(from_bcd(cmos(0x09), bcd)),
        month: from_bcd(cmos(0x08), bcd),
        day: from_bcd(cmos(0x07), bcd),
        hour,
        minute: from_bcd(cmos(0x02), bcd),
        second: from_bcd(cmos(0x00), bcd),
        pad1: 0,
        nanosecond: 0,
        timezone: efi::UNSPECIFIED_TIMEZONE,
        daylight: 0,
        pad2: 0,
    })
}

/// The wake-up time last set: the CMOS alarm holds only hour, minute and
/// second, so the date comes from here (volatile, like the alarm's enable).
static WAKE: Mutex<Option<Time>> = Mutex::new(None);

/// CMOS register B: alarm interrupt enable; register C: alarm flag.
const RTC_B_AIE: u8 = 0x20;
const RTC_C_AF: u8 = 0x20;

/// The time of day in the RTC's own format (BCD or binary, 12 or 24 h).
fn rtc_hour(hour: u8, b: u8) -> u8 {
    let bcd = b & 0x04 == 0;
    if b & 0x02 != 0 {
        return to_bcd(hour, bcd);
    }
    let h12 = match hour % 12 {
        0 => 12,
        h => h,
    };
    to_bcd(h12, bcd) | if hour >= 12 { 0x80 } else { 0 }
}

/// The alarm's state; reading register C clears its flags.
pub fn wakeup_get() -> Result<Wakeup, Status> {
    let now = read_rtc().ok_or(Status::DEVICE_ERROR)?;
    let b = cmos(0x0b);
    let bcd = b & 0x04 == 0;
    // Reading register C clears its flags, as a handled alarm should.
    let fired = cmos(0x0c) & RTC_C_AF != 0;
    let raw_hour = cmos(0x05);
    let mut hour = from_bcd(raw_hour & 0x7f, bcd);
    if b & 0x02 == 0 {
        hour = hour % 12 + if raw_hour & 0x80 != 0 { 12 } else { 0 };
    }
    let alarm = Time {
        hour,
        minute: from_bcd(cmos(0x03), bcd),
        second: from_bcd(cmos(0x01), bcd),
        ..now
    };
    let t = match *WAKE.lock() {
        Some(w) if (w.hour, w.minute, w.second) == (alarm.hour, alarm.minute, alarm.second) => w,
        _ => alarm,
    };

    Ok(Wakeup {
        enabled: b & RTC_B_AIE != 0,
        pending: fired,
        time: t,
    })
}

/// Write a valid time to the clock.
pub fn write(t: &Time) -> Status {
    if cmos(0x0a) == 0xff {
        return Status::DEVICE_ERROR;
    }
    let b = cmos(0x0b);
    let bcd = b & 0x04 == 0;
    cmos_write(0x0b, b | 0x80); // hold updates while writing
    cmos_write(0x00, to_bcd(t.second, bcd));
    cmos_write(0x02, to_bcd(t.minute, bcd));
    cmos_write(
        0x04,
        to_bcd(t.hour, bcd)
            | if b & 0x02 == 0 && t.hour >= 12 {
                0x80
            } else {
                0
            },
    );
    cmos_write(0x07, to_bcd(t.day, bcd));
    cmos_write(0x08, to_bcd(t.month, bcd));
    cmos_write(0x09, to_bcd((t.year % 100) as u8, bcd));
    cmos_write(0x32, to_bcd((t.year / 100) as u8, bcd));
    cmos_write(0x0b, b & !0x80);
    Status::SUCCESS
}

/// Arm or disarm the CMOS alarm. The alarm matches hour, minute and second,
/// so only a time within the next 24 hours can be honoured; a later one is
/// UNSUPPORTED (the spec's answer for a platform that cannot wake then).
pub fn wakeup_set(enable: bool, t: Option<&Time>) -> Status {
    let Some(now) = read_rtc() else {
        return Status::DEVICE_ERROR;
    };
    let b = cmos(0x0b);
    if !enable {
        cmos_write(0x0b, b & !RTC_B_AIE);
        *WAKE.lock() = None;
        return Status::SUCCESS;
    }
    let Some(&t) = t else {
        return Status::INVALID_PARAMETER;
    };
    let ahead = unix_seconds(&t) - unix_seconds(&now);
    if !(0..=86_400).contains(&ahead) {
        return Status::UNSUPPORTED;
    }
    let bcd = b & 0x04 == 0;
    cmos_write(0x01, to_bcd(t.second, bcd));
    cmos_write(0x03, to_bcd(t.minute, bcd));
    cmos_write(0x05, rtc_hour(t.hour, b));
    cmos_write(0x0b, b | RTC_B_AIE);
    *WAKE.lock() = Some(t);
    Status::SUCCESS
}
