//! Events, timers, TPL and Stall.

use crate::out::{check, expect_eq, expect_status};
use crate::util::{bs, guid};
use core::ffi::c_void;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicU32, Ordering};
use r_efi::efi;

const GROUP: efi::Guid = guid(
    0x9d0b_7a31,
    0x1e6f,
    0x4b53,
    [0xa2, 0x8d, 0x5c, 0x07, 0x3e, 0xf1, 0x64, 0x2b],
);

static COUNTS: [AtomicU32; 3] = [AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)];

/// Notify function; the context is the index of the counter to bump.
extern "efiapi" fn bump(_e: efi::Event, ctx: *mut c_void) {
    if let Some(c) = COUNTS.get(ctx.addr()) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

fn count(i: usize) -> u32 {
    COUNTS[i].load(Ordering::Relaxed)
}

pub unsafe fn run() {
    create_rules();
    signal_check();
    groups();
    memory_map_group();
    tpl();
    timers();
}

unsafe fn create(
    ty: u32,
    tpl: efi::Tpl,
    f: Option<efi::EventNotify>,
    ctx: usize,
) -> (efi::Status, efi::Event) {
    let mut e = null_mut();
    let s = (bs().create_event)(ty, tpl, f, core::ptr::without_provenance_mut(ctx), &mut e);
    (s, e)
}

unsafe fn create_rules() {
    let (s, _) = create(
        efi::EVT_NOTIFY_SIGNAL | efi::EVT_NOTIFY_WAIT,
        efi::TPL_CALLBACK,
        Some(bump),
        0,
    );
    expect_status(
        "CreateEvent with both NOTIFY_SIGNAL and NOTIFY_WAIT is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
    let (s, _) = create(efi::EVT_NOTIFY_SIGNAL, efi::TPL_CALLBACK, None, 0);
    expect_status(
        "CreateEvent NOTIFY_SIGNAL without a NotifyFunction is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
    let (s, _) = create(efi::EVT_NOTIFY_WAIT, efi::TPL_CALLBACK, None, 0);
    expect_status(
        "CreateEvent NOTIFY_WAIT without a NotifyFunction is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
    let (s, _) = create(0x0000_0001, efi::TPL_CALLBACK, Some(bump), 0);
    expect_status(
        "CreateEvent with an undefined Type bit is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
    let (s, _) = create(
        efi::EVT_NOTIFY_SIGNAL,
        efi::TPL_HIGH_LEVEL + 1,
        Some(bump),
        0,
    );
    expect_status(
        "CreateEvent with an invalid NotifyTpl is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
    let s = (bs().create_event)(0, 0, None, null_mut(), null_mut());
    expect_status(
        "CreateEvent with a NULL Event is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
    let mut e = null_mut();
    let mut g = GROUP;
    let s = (bs().create_event_ex)(
        efi::EVT_SIGNAL_EXIT_BOOT_SERVICES,
        efi::TPL_CALLBACK,
        Some(bump),
        null_mut(),
        &mut g,
        &mut e,
    );
    expect_status(
        "CreateEventEx with EVT_SIGNAL_EXIT_BOOT_SERVICES and an EventGroup is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
}

unsafe fn signal_check() {
    let bs = bs();
    let (s, e) = create(0, 0, None, 0);
    expect_status("CreateEvent of a plain event", s, efi::Status::SUCCESS);
    expect_status(
        "CheckEvent of an unsignalled event is NOT_READY",
        (bs.check_event)(e),
        efi::Status::NOT_READY,
    );
    expect_status("SignalEvent", (bs.signal_event)(e), efi::Status::SUCCESS);
    expect_status(
        "CheckEvent of a signalled event is SUCCESS",
        (bs.check_event)(e),
        efi::Status::SUCCESS,
    );
    expect_status(
        "CheckEvent clears the signalled state",
        (bs.check_event)(e),
        efi::Status::NOT_READY,
    );
    (bs.signal_event)(e);
    let mut idx = 99usize;
    let mut list = [e];
    let s = (bs.wait_for_event)(1, list.as_mut_ptr(), &mut idx);
    check(
        "WaitForEvent on a signalled event returns at once with its index",
        s == efi::Status::SUCCESS && idx == 0,
        format_args!("{} index {idx}", crate::out::St(s)),
    );
    expect_status("CloseEvent", (bs.close_event)(e), efi::Status::SUCCESS);

    let (_, ns) = create(efi::EVT_NOTIFY_SIGNAL, efi::TPL_CALLBACK, Some(bump), 2);
    let (_, plain) = create(0, 0, None, 0);
    let mut list = [plain, ns];
    let mut idx = 99usize;
    let s = (bs.wait_for_event)(2, list.as_mut_ptr(), &mut idx);
    check(
        "WaitForEvent on a NOTIFY_SIGNAL event is INVALID_PARAMETER with Index naming it",
        s == efi::Status::INVALID_PARAMETER && idx == 1,
        format_args!("{} index {idx}", crate::out::St(s)),
    );
    let (s, _) = create(efi::EVT_NOTIFY_WAIT, efi::TPL_CALLBACK, Some(bump), 2);
    expect_status("CreateEvent NOTIFY_WAIT", s, efi::Status::SUCCESS);
    let (_, nw) = create(efi::EVT_NOTIFY_WAIT, efi::TPL_CALLBACK, Some(bump), 1);
    let before = count(1);
    let s = (bs.check_event)(nw);
    check(
        "CheckEvent on a NOTIFY_WAIT event runs its notify function",
        s == efi::Status::NOT_READY && count(1) > before,
        format_args!(
            "{} notify ran {} times",
            crate::out::St(s),
            count(1) - before
        ),
    );
    let s = (bs.check_event)(ns);
    expect_status(
        "CheckEvent on a NOTIFY_SIGNAL event is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
    let old = (bs.raise_tpl)(efi::TPL_CALLBACK);
    let mut list = [plain];
    let s = (bs.wait_for_event)(1, list.as_mut_ptr(), &mut idx);
    (bs.restore_tpl)(old);
    expect_status(
        "WaitForEvent above TPL_APPLICATION is UNSUPPORTED",
        s,
        efi::Status::UNSUPPORTED,
    );
    for e in [ns, plain, nw] {
        (bs.close_event)(e);
    }
}

unsafe fn groups() {
    let bs = bs();
    let mut a = null_mut();
    let mut b = null_mut();
    let mut g = GROUP;
    let s1 = (bs.create_event_ex)(
        efi::EVT_NOTIFY_SIGNAL,
        efi::TPL_CALLBACK,
        Some(bump),
        core::ptr::without_provenance(0),
        &mut g,
        &mut a,
    );
    let s2 = (bs.create_event_ex)(
        efi::EVT_NOTIFY_SIGNAL,
        efi::TPL_CALLBACK,
        Some(bump),
        core::ptr::without_provenance(1),
        &mut g,
        &mut b,
    );
    expect_status("CreateEventEx in an event group", s1, efi::Status::SUCCESS);
    expect_status(
        "CreateEventEx of a second event in the group",
        s2,
        efi::Status::SUCCESS,
    );
    let (c0, c1) = (count(0), count(1));
    (bs.signal_event)(a);
    check(
        "SignalEvent on one group member runs every member's notify",
        count(0) == c0 + 1 && count(1) == c1 + 1,
        format_args!(
            "member notifies ran {} and {} times",
            count(0) - c0,
            count(1) - c1
        ),
    );
    (bs.close_event)(a);
    let (c0, c1) = (count(0), count(1));
    (bs.signal_event)(b);
    expect_eq(
        "A closed event leaves its group",
        (count(0), count(1)),
        (c0, c1 + 1),
    );
    (bs.close_event)(b);
}

/// The firmware signals EFI_EVENT_GROUP_MEMORY_MAP_CHANGE whenever the map changes.
unsafe fn memory_map_group() {
    let bs = bs();
    let mut e = null_mut();
    let mut g = efi::EVENT_GROUP_MEMORY_MAP_CHANGE;
    let s = (bs.create_event_ex)(
        efi::EVT_NOTIFY_SIGNAL,
        efi::TPL_CALLBACK,
        Some(bump),
        core::ptr::without_provenance(2),
        &mut g,
        &mut e,
    );
    expect_status(
        "CreateEventEx in EFI_EVENT_GROUP_MEMORY_MAP_CHANGE",
        s,
        efi::Status::SUCCESS,
    );
    let c = count(2);
    let mut a = 0u64;
    let s = (bs.allocate_pages)(efi::ALLOCATE_ANY_PAGES, efi::BOOT_SERVICES_DATA, 7, &mut a);
    check(
        "AllocatePages signals EFI_EVENT_GROUP_MEMORY_MAP_CHANGE",
        s == efi::Status::SUCCESS && count(2) > c,
        format_args!("{}, notify ran {} times", crate::out::St(s), count(2) - c),
    );
    if s == efi::Status::SUCCESS {
        (bs.free_pages)(a, 7);
    }
    (bs.close_event)(e);
}

unsafe fn tpl() {
    let bs = bs();
    let (_, e) = create(efi::EVT_NOTIFY_SIGNAL, efi::TPL_CALLBACK, Some(bump), 2);
    let old = (bs.raise_tpl)(efi::TPL_NOTIFY);
    let c = count(2);
    (bs.signal_event)(e);
    let during = count(2);
    (bs.restore_tpl)(old);
    let after = count(2);
    expect_eq(
        "RaiseTPL returns the previous level TPL_APPLICATION",
        old,
        efi::TPL_APPLICATION,
    );
    check(
        "A TPL_CALLBACK notify does not run while at TPL_NOTIFY",
        during == c,
        format_args!("ran during TPL_NOTIFY"),
    );
    check(
        "RestoreTPL runs the pending notify",
        after == c + 1,
        format_args!("ran {} times", after - c),
    );
    let cur = (bs.raise_tpl)(efi::TPL_HIGH_LEVEL);
    (bs.restore_tpl)(cur);
    expect_eq(
        "RaiseTPL(HIGH_LEVEL) from the application reports TPL_APPLICATION",
        cur,
        efi::TPL_APPLICATION,
    );
    (bs.close_event)(e);
}

unsafe fn timers() {
    let bs = bs();
    let (s, t) = create(efi::EVT_TIMER, 0, None, 0);
    expect_status("CreateEvent(EVT_TIMER)", s, efi::Status::SUCCESS);
    // 100 ms in 100 ns units.
    expect_status(
        "SetTimer(TimerRelative)",
        (bs.set_timer)(t, efi::TIMER_RELATIVE, 1_000_000),
        efi::Status::SUCCESS,
    );
    let mut list = [t];
    let mut idx = 9usize;
    let s = (bs.wait_for_event)(1, list.as_mut_ptr(), &mut idx);
    check(
        "WaitForEvent returns when a relative timer expires",
        s == efi::Status::SUCCESS && idx == 0,
        format_args!("{} index {idx}", crate::out::St(s)),
    );

    // Stall must last (about) its argument: a 250 ms timer armed just
    // before a 400 ms stall has to have fired when the stall returns. The
    // margin absorbs late timer delivery on a loaded host (OVMF's timer
    // events ride an emulated timer interrupt).
    (bs.set_timer)(t, efi::TIMER_RELATIVE, 2_500_000);
    let s = (bs.stall)(400_000);
    expect_status("Stall(400 ms)", s, efi::Status::SUCCESS);
    expect_status(
        "Stall lasts at least as long as asked (a shorter timer fired)",
        (bs.check_event)(t),
        efi::Status::SUCCESS,
    );

    // Cancel: a cancelled timer never fires.
    (bs.set_timer)(t, efi::TIMER_RELATIVE, 500_000);
    expect_status(
        "SetTimer(TimerCancel)",
        (bs.set_timer)(t, efi::TIMER_CANCEL, 0),
        efi::Status::SUCCESS,
    );
    (bs.stall)(100_000);
    expect_status(
        "A cancelled timer does not fire",
        (bs.check_event)(t),
        efi::Status::NOT_READY,
    );

    // Periodic: fires repeatedly.
    let (_, p) = create(
        efi::EVT_TIMER | efi::EVT_NOTIFY_SIGNAL,
        efi::TPL_CALLBACK,
        Some(bump),
        0,
    );
    let c = count(0);
    (bs.set_timer)(p, efi::TIMER_PERIODIC, 200_000);
    (bs.stall)(300_000);
    (bs.set_timer)(p, efi::TIMER_CANCEL, 0);
    let n = count(0) - c;
    check(
        "A 20 ms periodic timer fires repeatedly during a 300 ms stall",
        n >= 2,
        format_args!("fired {n} times"),
    );
    let (_, plain) = create(0, 0, None, 0);
    expect_status(
        "SetTimer on an event without EVT_TIMER is INVALID_PARAMETER",
        (bs.set_timer)(plain, efi::TIMER_RELATIVE, 10),
        efi::Status::INVALID_PARAMETER,
    );
    for e in [t, p, plain] {
        (bs.close_event)(e);
    }
}
