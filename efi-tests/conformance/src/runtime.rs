//! Runtime services callable during boot services: GetTime and variables.

use crate::out::{check, expect_eq, expect_status, St};
use crate::util::{guid, rt, u16z};
use alloc::vec::Vec;
use core::ffi::c_void;
use core::ptr::null_mut;
use r_efi::efi;

const VENDOR: efi::Guid = guid(
    0x2f4e_9c3d,
    0x7b10,
    0x4a66,
    [0xb8, 0x5e, 0x0d, 0x91, 0x27, 0xc3, 0x4a, 0xe8],
);
const BS_RT: u32 = efi::VARIABLE_BOOTSERVICE_ACCESS | efi::VARIABLE_RUNTIME_ACCESS;

pub unsafe fn run() {
    time();
    wakeup();
    variables();
}

/// Get/SetWakeupTime: arm the alarm an hour (or a minute, late in the
/// day) ahead, read it back, disarm it.
unsafe fn wakeup() {
    let mut now = efi::Time::default();
    if (rt().get_time)(&mut now, null_mut()) != efi::Status::SUCCESS {
        check(
            "GetWakeupTime: GetTime works first",
            false,
            format_args!("GetTime failed"),
        );
        return;
    }
    let mut t = now;
    t.nanosecond = 0;
    // Later today, so the date stays the same.
    let today = if t.hour < 23 {
        t.hour += 1;
        true
    } else if t.minute < 58 {
        t.minute += 1;
        true
    } else {
        crate::out::info(
            "SetWakeupTime",
            format_args!("arming skipped: 23:58 or later, the alarm would fall tomorrow"),
        );
        false
    };
    let mut en = efi::Boolean::FALSE;
    let mut pend = efi::Boolean::FALSE;
    let mut got = efi::Time::default();
    if today {
        let s = (rt().set_wakeup_time)(efi::Boolean::TRUE, &mut t);
        expect_status(
            "SetWakeupTime(TRUE, an hour ahead)",
            s,
            efi::Status::SUCCESS,
        );
        let s = (rt().get_wakeup_time)(&mut en, &mut pend, &mut got);
        expect_status("GetWakeupTime after arming", s, efi::Status::SUCCESS);
        check(
            "GetWakeupTime reports the alarm enabled",
            bool::from(en),
            format_args!("disabled"),
        );
        expect_eq(
            "GetWakeupTime returns the time set",
            (
                got.year, got.month, got.day, got.hour, got.minute, got.second,
            ),
            (t.year, t.month, t.day, t.hour, t.minute, t.second),
        );
    }
    let s = (rt().set_wakeup_time)(efi::Boolean::FALSE, null_mut());
    expect_status(
        "SetWakeupTime(FALSE, NULL) disarms",
        s,
        efi::Status::SUCCESS,
    );
    let s = (rt().get_wakeup_time)(&mut en, &mut pend, &mut got);
    expect_status("GetWakeupTime after disarming", s, efi::Status::SUCCESS);
    check(
        "GetWakeupTime reports the alarm disabled",
        !bool::from(en),
        format_args!("enabled"),
    );
    let s = (rt().set_wakeup_time)(efi::Boolean::TRUE, null_mut());
    expect_status(
        "SetWakeupTime(TRUE, NULL) is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
    let mut bad = now;
    bad.month = 13;
    let s = (rt().set_wakeup_time)(efi::Boolean::TRUE, &mut bad);
    expect_status(
        "SetWakeupTime with month 13 is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
    let s = (rt().get_wakeup_time)(null_mut(), &mut pend, &mut got);
    expect_status(
        "GetWakeupTime(NULL, ..) is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
}

unsafe fn time() {
    let mut t = efi::Time::default();
    let mut caps = efi::TimeCapabilities {
        resolution: 0,
        accuracy: 0,
        sets_to_zero: false.into(),
    };
    let s = (rt().get_time)(&mut t, &mut caps);
    expect_status("GetTime", s, efi::Status::SUCCESS);
    check(
        "GetTime returns a plausible date and time",
        (2020..2200).contains(&t.year)
            && (1..=12).contains(&t.month)
            && (1..=31).contains(&t.day)
            && t.hour < 24
            && t.minute < 60
            && t.second < 60
            && t.nanosecond < 1_000_000_000,
        format_args!(
            "{}-{}-{} {}:{}:{}",
            t.year, t.month, t.day, t.hour, t.minute, t.second
        ),
    );
    check(
        "GetTime timezone is in range or EFI_UNSPECIFIED_TIMEZONE",
        (-1440..=1440).contains(&t.timezone) || t.timezone == efi::UNSPECIFIED_TIMEZONE,
        format_args!("{}", t.timezone),
    );
    check(
        "GetTime Capabilities.Resolution is non-zero",
        caps.resolution > 0,
        format_args!("0"),
    );
    let s = (rt().get_time)(null_mut(), null_mut());
    expect_status(
        "GetTime(NULL) is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
}

unsafe fn get_var(name: &str, g: &efi::Guid) -> (efi::Status, u32, Vec<u8>) {
    let mut n = u16z(name);
    let mut g = *g;
    let mut attr = 0u32;
    let mut size = 0usize;
    let s = (rt().get_variable)(n.as_mut_ptr(), &mut g, &mut attr, &mut size, null_mut());
    if s != efi::Status::BUFFER_TOO_SMALL {
        return (s, attr, Vec::new());
    }
    let mut buf = alloc::vec![0u8; size];
    let s = (rt().get_variable)(
        n.as_mut_ptr(),
        &mut g,
        &mut attr,
        &mut size,
        buf.as_mut_ptr().cast(),
    );
    buf.truncate(size);
    (s, attr, buf)
}

unsafe fn set_var(name: &str, attr: u32, data: &[u8]) -> efi::Status {
    let mut n = u16z(name);
    let mut g = VENDOR;
    (rt().set_variable)(
        n.as_mut_ptr(),
        &mut g,
        attr,
        data.len(),
        data.as_ptr() as *mut c_void,
    )
}

unsafe fn variables() {
    let name = "EmberConformance";
    let data = b"volatile round trip";
    let s = set_var(name, BS_RT, data);
    expect_status(
        "SetVariable of a volatile BS+RT variable",
        s,
        efi::Status::SUCCESS,
    );
    let mut n = u16z(name);
    let mut g = VENDOR;
    let mut size = 0usize;
    let s = (rt().get_variable)(n.as_mut_ptr(), &mut g, null_mut(), &mut size, null_mut());
    check(
        "GetVariable with a zero buffer is BUFFER_TOO_SMALL with the data size",
        s == efi::Status::BUFFER_TOO_SMALL && size == data.len(),
        format_args!("{} size {size}", St(s)),
    );
    let (s, attr, got) = get_var(name, &VENDOR);
    check(
        "GetVariable returns the data and attributes set",
        s == efi::Status::SUCCESS && attr == BS_RT && got == data,
        format_args!("{} attr {attr:#x} {} bytes", St(s), got.len()),
    );

    // Walk every variable: the walk must end with NOT_FOUND and see ours.
    let mut buf = alloc::vec![0u16; 1];
    let mut g = efi::Guid::from_fields(0, 0, 0, 0, 0, &[0; 6]);
    let mut seen = 0usize;
    let mut found = false;
    let mut too_small_ok = true;
    let end = loop {
        let mut size = buf.len() * 2;
        let mut s = (rt().get_next_variable_name)(&mut size, buf.as_mut_ptr(), &mut g);
        if s == efi::Status::BUFFER_TOO_SMALL {
            too_small_ok &= size > buf.len() * 2 && size.is_multiple_of(2);
            buf.resize(size / 2, 0);
            s = (rt().get_next_variable_name)(&mut size, buf.as_mut_ptr(), &mut g);
        }
        if s != efi::Status::SUCCESS || seen > 10_000 {
            break s;
        }
        seen += 1;
        if g == VENDOR && crate::util::from_u16z(buf.as_ptr()) == name {
            found = true;
        }
    };
    expect_status(
        "GetNextVariableName ends with NOT_FOUND",
        end,
        efi::Status::NOT_FOUND,
    );
    check(
        "GetNextVariableName visits the new variable",
        found && seen > 1,
        format_args!("{seen} variables, ours found: {found}"),
    );
    check(
        "GetNextVariableName BUFFER_TOO_SMALL asks for a larger size",
        too_small_ok,
        format_args!("size not larger"),
    );

    let s = set_var(name, BS_RT, &[]);
    expect_status(
        "SetVariable with DataSize 0 deletes the variable",
        s,
        efi::Status::SUCCESS,
    );
    let (s, _, _) = get_var(name, &VENDOR);
    expect_status(
        "GetVariable of a deleted variable is NOT_FOUND",
        s,
        efi::Status::NOT_FOUND,
    );
    let s = set_var("", BS_RT, data);
    expect_status(
        "SetVariable with an empty name is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
    let s = set_var(name, efi::VARIABLE_RUNTIME_ACCESS, data);
    expect_status(
        "SetVariable with RUNTIME_ACCESS but not BOOTSERVICE_ACCESS is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );

    let (mut max, mut rem, mut maxvar) = (0u64, 0u64, 0u64);
    let s = (rt().query_variable_info)(BS_RT, &mut max, &mut rem, &mut maxvar);
    expect_status("QueryVariableInfo(BS+RT)", s, efi::Status::SUCCESS);
    check(
        "QueryVariableInfo: remaining <= maximum storage, max variable size > 0",
        rem <= max && maxvar > 0 && max > 0,
        format_args!("max {max} remaining {rem} max variable {maxvar}"),
    );
    let s = (rt().query_variable_info)(0, &mut max, &mut rem, &mut maxvar);
    expect_status(
        "QueryVariableInfo with Attributes 0 is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );

    // A variable every boot manager keeps: BootOrder may be absent on a
    // blank NVRAM, but the global PlatformLang-style ones are there.
    let (s, attr, lang) = get_var("PlatformLangCodes", &efi::GLOBAL_VARIABLE);
    check(
        "GetVariable(PlatformLangCodes) is BS+RT and lists languages",
        s == efi::Status::SUCCESS && attr & BS_RT == BS_RT && !lang.is_empty(),
        format_args!("{} attr {attr:#x}", St(s)),
    );
    expect_eq(
        "GetVariable of a missing variable is NOT_FOUND",
        get_var("EmberNoSuchVariable", &VENDOR).0,
        efi::Status::NOT_FOUND,
    );
}
