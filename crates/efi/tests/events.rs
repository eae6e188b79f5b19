//! Event, timer and TPL services against UEFI 2.10 §7.1.

use ember_efi::events::*;
use ember_efi::guid::{EVENT_GROUP_EXIT_BOOT_SERVICES, EVENT_GROUP_VIRTUAL_ADDRESS_CHANGE};
use ember_efi::{Guid, Status};

const MY_GROUP: Guid = Guid::from_fields(
    0x2335_905b,
    0xc3b9,
    0x4221,
    [0xa3, 0x71, 0x0e, 0x5b, 0x45, 0xc0, 0x56, 0x91],
);

fn sig(e: &mut Events, tpl: Tpl, f: usize) -> EventId {
    e.create_event(EVT_NOTIFY_SIGNAL, tpl, Some((f, f + 1000)), None)
        .unwrap()
}

/// Drains notifications down to `target` (no re-entrancy): (function, tpl while running).
fn drain(e: &mut Events, target: Tpl) -> Vec<(usize, Tpl)> {
    let mut out = Vec::new();
    while let Some(n) = e.next_notification(target) {
        assert_eq!(
            e.tpl(),
            n.tpl,
            "the notification's TPL is current while it runs"
        );
        out.push((n.function, n.tpl));
    }
    assert_eq!(e.tpl(), target);
    out
}

fn restore(e: &mut Events, old: Tpl) -> Vec<(usize, Tpl)> {
    e.restore_tpl(old).unwrap();
    drain(e, old)
}

#[test]
fn create_event_validation() {
    let mut e = Events::new();
    let f = Some((0x1000, 0));
    for bad in [
        1,
        EVT_RUNTIME,
        EVT_NOTIFY_WAIT | EVT_NOTIFY_SIGNAL,
        EVT_TIMER | EVT_RUNTIME,
        0x400,
        0xffff_ffff,
    ] {
        assert_eq!(
            e.create_event(bad, Tpl::CALLBACK, f, None),
            Err(Status::INVALID_PARAMETER),
            "{bad:#x}"
        );
    }
    for kind in [
        EVT_NOTIFY_SIGNAL,
        EVT_NOTIFY_WAIT,
        EVT_TIMER | EVT_NOTIFY_SIGNAL,
        EVT_SIGNAL_EXIT_BOOT_SERVICES,
    ] {
        // Notify types need a function...
        assert_eq!(
            e.create_event(kind, Tpl::CALLBACK, None, None),
            Err(Status::INVALID_PARAMETER)
        );
        assert_eq!(
            e.create_event(kind, Tpl::CALLBACK, Some((0, 5)), None),
            Err(Status::INVALID_PARAMETER)
        );
        // ...and a TPL a notification can run at.
        for tpl in [
            Tpl(0),
            Tpl::APPLICATION,
            Tpl::HIGH_LEVEL,
            Tpl(32),
            Tpl(usize::MAX),
        ] {
            assert_eq!(
                e.create_event(kind, tpl, f, None),
                Err(Status::INVALID_PARAMETER)
            );
        }
        assert!(e.create_event(kind, Tpl::CALLBACK, f, None).is_ok());
        assert!(e.create_event(kind, Tpl::NOTIFY, f, None).is_ok());
    }
    // Non-notify types ignore the TPL and function.
    assert!(e.create_event(0, Tpl(12345), None, None).is_ok());
    assert!(e
        .create_event(EVT_TIMER, Tpl(0), Some((0, 0)), None)
        .is_ok());
    // Legacy group types cannot also name a group.
    assert_eq!(
        e.create_event(
            EVT_SIGNAL_EXIT_BOOT_SERVICES,
            Tpl::CALLBACK,
            f,
            Some(MY_GROUP)
        ),
        Err(Status::INVALID_PARAMETER)
    );
    assert_eq!(
        e.create_event(
            EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE,
            Tpl::NOTIFY,
            f,
            Some(EVENT_GROUP_VIRTUAL_ADDRESS_CHANGE)
        ),
        Err(Status::INVALID_PARAMETER)
    );
    let a = e.create_event(0, Tpl(0), None, None).unwrap();
    let b = e.create_event(0, Tpl(0), None, None).unwrap();
    assert_ne!(a, b);
    assert_eq!(a.raw() % 16, 0);
}

#[test]
fn signal_queues_notify_once() {
    let mut e = Events::new();
    let old = e.raise_tpl(Tpl::HIGH_LEVEL).unwrap();
    let a = sig(&mut e, Tpl::CALLBACK, 1);
    e.signal_event(a).unwrap();
    e.signal_event(a).unwrap();
    let n = e.next_notification(old).unwrap();
    assert_eq!(
        (n.event, n.function, n.context, n.tpl),
        (a, 1, 1001, Tpl::CALLBACK)
    );
    assert_eq!(e.next_notification(old), None);
    // Signaled state was cleared at dispatch: a new signal queues again.
    e.signal_event(a).unwrap();
    assert_eq!(drain(&mut e, Tpl::APPLICATION), vec![(1, Tpl::CALLBACK)]);
    assert_eq!(
        e.signal_event(EventId::from_raw(0x99).unwrap()),
        Err(Status::INVALID_PARAMETER)
    );
}

#[test]
fn notifications_run_highest_tpl_first_fifo_within() {
    let mut e = Events::new();
    let c1 = sig(&mut e, Tpl::CALLBACK, 1);
    let n1 = sig(&mut e, Tpl::NOTIFY, 2);
    let c2 = sig(&mut e, Tpl::CALLBACK, 3);
    let n2 = sig(&mut e, Tpl::NOTIFY, 4);
    let mid = sig(&mut e, Tpl(10), 5);
    let old = e.raise_tpl(Tpl::HIGH_LEVEL).unwrap();
    assert_eq!(old, Tpl::APPLICATION);
    for ev in [c2, n2, c1, mid, n1] {
        e.signal_event(ev).unwrap();
    }
    // Restoring to NOTIFY runs nothing (nothing is above 16).
    assert_eq!(restore(&mut e, Tpl::NOTIFY), vec![]);
    assert!(e.pending_above(Tpl::APPLICATION));
    // Restoring to CALLBACK runs only the TPL_NOTIFY ones and the TPL 10 one.
    assert_eq!(
        restore(&mut e, Tpl::CALLBACK),
        vec![(4, Tpl::NOTIFY), (2, Tpl::NOTIFY), (5, Tpl(10))]
    );
    assert_eq!(
        restore(&mut e, old),
        vec![(3, Tpl::CALLBACK), (1, Tpl::CALLBACK)]
    );
    assert!(!e.pending_above(Tpl(0)));
}

#[test]
fn signal_below_notify_tpl_waits_for_restore() {
    let mut e = Events::new();
    let c = sig(&mut e, Tpl::CALLBACK, 1);
    e.raise_tpl(Tpl::NOTIFY).unwrap();
    e.signal_event(c).unwrap();
    // The service's own dispatch at TPL_NOTIFY runs nothing.
    assert_eq!(e.next_notification(Tpl::NOTIFY), None);
    assert_eq!(e.tpl(), Tpl::NOTIFY);
    // A target above the current TPL is refused without side effects.
    assert_eq!(e.next_notification(Tpl::HIGH_LEVEL), None);
    assert_eq!(e.tpl(), Tpl::NOTIFY);
    assert_eq!(restore(&mut e, Tpl::APPLICATION), vec![(1, Tpl::CALLBACK)]);
}

#[test]
fn tpl_misuse_is_reported_and_ignored() {
    let mut e = Events::new();
    assert_eq!(e.raise_tpl(Tpl(32)), Err(TplError::OutOfRange(Tpl(32))));
    assert_eq!(e.raise_tpl(Tpl::NOTIFY), Ok(Tpl::APPLICATION));
    assert_eq!(
        e.raise_tpl(Tpl::CALLBACK),
        Err(TplError::RaiseBelowCurrent {
            current: Tpl::NOTIFY,
            requested: Tpl::CALLBACK
        })
    );
    assert_eq!(
        e.restore_tpl(Tpl::HIGH_LEVEL),
        Err(TplError::RestoreAboveCurrent {
            current: Tpl::NOTIFY,
            requested: Tpl::HIGH_LEVEL
        })
    );
    assert_eq!(e.restore_tpl(Tpl(99)), Err(TplError::OutOfRange(Tpl(99))));
    assert_eq!(e.tpl(), Tpl::NOTIFY);
    assert!(TplError::RaiseBelowCurrent {
        current: Tpl::NOTIFY,
        requested: Tpl::CALLBACK
    }
    .to_string()
    .contains("RaiseTPL(8)"));
    // Raising to the current level is allowed.
    assert_eq!(e.raise_tpl(Tpl::NOTIFY), Ok(Tpl::NOTIFY));
}

#[test]
fn check_event_rules() {
    let mut e = Events::new();
    let s = sig(&mut e, Tpl::CALLBACK, 1);
    assert_eq!(e.check_event(s), Err(Status::INVALID_PARAMETER));
    assert_eq!(
        e.check_event(EventId::from_raw(5).unwrap()),
        Err(Status::INVALID_PARAMETER)
    );
    let plain = e.create_event(0, Tpl(0), None, None).unwrap();
    assert_eq!(e.check_event(plain), Err(Status::NOT_READY));
    e.signal_event(plain).unwrap();
    assert_eq!(e.check_event(plain), Ok(()));
    // Success clears the signal.
    assert_eq!(e.check_event(plain), Err(Status::NOT_READY));

    let w = e
        .create_event(EVT_NOTIFY_WAIT, Tpl::NOTIFY, Some((7, 70)), None)
        .unwrap();
    e.raise_tpl(Tpl::HIGH_LEVEL).unwrap();
    assert_eq!(e.check_event(w), Err(Status::NOT_READY));
    assert_eq!(e.check_event(w), Err(Status::NOT_READY));
    // Queued once although checked twice.
    assert_eq!(restore(&mut e, Tpl::APPLICATION), vec![(7, Tpl::NOTIFY)]);
    // The wait notify function would signal it; CheckEvent's second half sees that.
    e.signal_event(w).unwrap();
    assert_eq!(e.take_signal(w), Ok(()));
    assert_eq!(e.take_signal(w), Err(Status::NOT_READY));
    // Signaling a wait event never queues its notify function.
    e.signal_event(w).unwrap();
    assert!(!e.pending_above(Tpl(0)));
    assert_eq!(e.check_event(w), Ok(()));
    assert!(
        !e.pending_above(Tpl(0)),
        "signaled wait events do not queue their notify"
    );
}

#[test]
fn wait_for_event_rules() {
    let mut e = Events::new();
    let plain = e.create_event(0, Tpl(0), None, None).unwrap();
    let plain2 = e.create_event(EVT_TIMER, Tpl(0), None, None).unwrap();
    let s = sig(&mut e, Tpl::CALLBACK, 1);
    assert_eq!(
        e.poll_wait(&[]),
        Err(WaitError {
            status: Status::INVALID_PARAMETER,
            index: None
        })
    );
    assert_eq!(e.poll_wait(&[plain, plain2]), Ok(None));
    assert_eq!(
        e.poll_wait(&[plain, s]),
        Err(WaitError {
            status: Status::INVALID_PARAMETER,
            index: Some(1)
        })
    );
    let bogus = EventId::from_raw(0x4242).unwrap();
    assert_eq!(
        e.poll_wait(&[bogus]),
        Err(WaitError {
            status: Status::INVALID_PARAMETER,
            index: Some(0)
        })
    );
    e.signal_event(plain2).unwrap();
    assert_eq!(e.poll_wait(&[plain, plain2]), Ok(Some(1)));
    assert_eq!(e.poll_wait(&[plain, plain2]), Ok(None));
    // A signaled event before a bad one wins, as events are checked in order.
    e.signal_event(plain).unwrap();
    assert_eq!(e.poll_wait(&[plain, s]), Ok(Some(0)));
    // Only at TPL_APPLICATION.
    e.raise_tpl(Tpl::CALLBACK).unwrap();
    assert_eq!(
        e.poll_wait(&[plain]),
        Err(WaitError {
            status: Status::UNSUPPORTED,
            index: None
        })
    );
}

#[test]
fn groups_signal_every_member() {
    let mut e = Events::new();
    let f = |n: usize| Some((n, 0));
    let g1 = e
        .create_event(EVT_NOTIFY_SIGNAL, Tpl::CALLBACK, f(1), Some(MY_GROUP))
        .unwrap();
    let g2 = e.create_event(0, Tpl(0), None, Some(MY_GROUP)).unwrap();
    let g3 = e
        .create_event(EVT_NOTIFY_SIGNAL, Tpl::CALLBACK, f(3), Some(MY_GROUP))
        .unwrap();
    let other = e
        .create_event(EVT_NOTIFY_SIGNAL, Tpl::CALLBACK, f(4), None)
        .unwrap();
    let lone = e.create_event(0, Tpl(0), None, None).unwrap();
    e.raise_tpl(Tpl::HIGH_LEVEL).unwrap();
    e.signal_event(g3).unwrap();
    assert_eq!(e.check_event(g2), Ok(()));
    assert_eq!(e.check_event(lone), Err(Status::NOT_READY));
    assert_eq!(
        restore(&mut e, Tpl::APPLICATION),
        vec![(1, Tpl::CALLBACK), (3, Tpl::CALLBACK)]
    );
    // Each round signals each member once.
    e.signal_event(g2).unwrap();
    e.signal_event(g1).unwrap();
    assert_eq!(
        drain(&mut e, Tpl::APPLICATION),
        vec![(1, Tpl::CALLBACK), (3, Tpl::CALLBACK)]
    );
    let _ = other;

    // Legacy EXIT_BOOT_SERVICES type and CreateEventEx with its group are one group.
    let legacy = e
        .create_event(EVT_SIGNAL_EXIT_BOOT_SERVICES, Tpl::NOTIFY, f(10), None)
        .unwrap();
    let ex = e
        .create_event(
            EVT_NOTIFY_SIGNAL,
            Tpl::CALLBACK,
            f(11),
            Some(EVENT_GROUP_EXIT_BOOT_SERVICES),
        )
        .unwrap();
    let vac = e
        .create_event(EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE, Tpl::NOTIFY, f(12), None)
        .unwrap();
    assert_eq!(e.group(legacy), Some(EVENT_GROUP_EXIT_BOOT_SERVICES));
    assert_eq!(e.group(vac), Some(EVENT_GROUP_VIRTUAL_ADDRESS_CHANGE));
    assert_eq!(e.kind(vac), Some(EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE));
    assert_eq!(e.signal_group(&EVENT_GROUP_EXIT_BOOT_SERVICES), 2);
    assert_eq!(
        drain(&mut e, Tpl::APPLICATION),
        vec![(10, Tpl::NOTIFY), (11, Tpl::CALLBACK)]
    );
    e.signal_event(ex).unwrap();
    assert_eq!(
        drain(&mut e, Tpl::APPLICATION),
        vec![(10, Tpl::NOTIFY), (11, Tpl::CALLBACK)]
    );
    e.signal_event(vac).unwrap();
    assert_eq!(drain(&mut e, Tpl::APPLICATION), vec![(12, Tpl::NOTIFY)]);
}

#[test]
fn close_event_drops_pending_notification() {
    let mut e = Events::new();
    let a = sig(&mut e, Tpl::CALLBACK, 1);
    let b = sig(&mut e, Tpl::CALLBACK, 2);
    e.raise_tpl(Tpl::HIGH_LEVEL).unwrap();
    e.signal_event(a).unwrap();
    e.signal_event(b).unwrap();
    e.close_event(a).unwrap();
    assert_eq!(e.close_event(a), Err(Status::INVALID_PARAMETER));
    assert_eq!(e.signal_event(a), Err(Status::INVALID_PARAMETER));
    assert_eq!(restore(&mut e, Tpl::APPLICATION), vec![(2, Tpl::CALLBACK)]);
    assert_eq!(e.all(), vec![b]);
}

#[test]
fn relative_and_cancel_timers() {
    let mut e = Events::new();
    let t = e.create_event(EVT_TIMER, Tpl(0), None, None).unwrap();
    let plain = e.create_event(0, Tpl(0), None, None).unwrap();
    assert_eq!(
        e.set_timer(plain, TimerDelay::Relative, 10, 0),
        Err(Status::INVALID_PARAMETER)
    );
    assert_eq!(TimerDelay::from_raw(3), None);
    assert_eq!(TimerDelay::from_raw(2), Some(TimerDelay::Relative));
    e.set_timer(t, TimerDelay::Relative, 100, 1000).unwrap();
    assert_eq!(e.next_deadline(), Some(1100));
    assert_eq!(e.tick(1099), 0);
    assert_eq!(e.check_event(t), Err(Status::NOT_READY));
    assert_eq!(e.tick(1100), 1);
    assert_eq!(e.check_event(t), Ok(()));
    // One-shot.
    assert_eq!(e.tick(5000), 0);
    assert_eq!(e.next_deadline(), None);
    // Cancel.
    e.set_timer(t, TimerDelay::Relative, 10, 0).unwrap();
    e.set_timer(t, TimerDelay::Cancel, 0, 5).unwrap();
    assert_eq!(e.tick(100), 0);
    assert_eq!(e.check_event(t), Err(Status::NOT_READY));
    // Relative 0 fires at the next tick.
    e.set_timer(t, TimerDelay::Relative, 0, 700).unwrap();
    assert_eq!(e.tick(700), 1);
    // Re-arming replaces the old schedule.
    e.set_timer(t, TimerDelay::Relative, 10, 0).unwrap();
    e.set_timer(t, TimerDelay::Relative, 50, 0).unwrap();
    assert_eq!(e.tick(20), 0);
    assert_eq!(e.tick(50), 1);
    // Closing a timer event cancels it.
    e.set_timer(t, TimerDelay::Relative, 10, 0).unwrap();
    e.close_event(t).unwrap();
    assert_eq!(e.tick(1_000_000), 0);
    // Saturating at the end of time rather than wrapping.
    let t2 = e.create_event(EVT_TIMER, Tpl(0), None, None).unwrap();
    e.set_timer(t2, TimerDelay::Relative, u64::MAX, 10).unwrap();
    assert_eq!(e.next_deadline(), Some(u64::MAX));
    assert_eq!(e.tick(u64::MAX - 1), 0);
}

#[test]
fn periodic_timers_do_not_drift() {
    let mut e = Events::new();
    let t = e
        .create_event(
            EVT_TIMER | EVT_NOTIFY_SIGNAL,
            Tpl::CALLBACK,
            Some((1, 0)),
            None,
        )
        .unwrap();
    e.set_timer(t, TimerDelay::Periodic, 50, 0).unwrap();
    assert_eq!(e.tick(49), 0);
    assert_eq!(e.tick(50), 1);
    assert_eq!(drain(&mut e, Tpl::APPLICATION), vec![(1, Tpl::CALLBACK)]);
    assert_eq!(e.next_deadline(), Some(100));
    assert_eq!(e.tick(103), 1);
    // Late tick does not shift the phase.
    assert_eq!(e.next_deadline(), Some(150));
    // A very late tick fires once and skips the missed periods.
    assert_eq!(e.tick(262), 1);
    assert_eq!(e.next_deadline(), Some(300));
    assert_eq!(drain(&mut e, Tpl::APPLICATION), vec![(1, Tpl::CALLBACK)]);
    // Periodic 0 = every tick period.
    e.set_tick_period(40);
    e.set_timer(t, TimerDelay::Periodic, 0, 1000).unwrap();
    assert_eq!(e.next_deadline(), Some(1040));
    assert_eq!(e.tick(1040), 1);
    assert_eq!(e.next_deadline(), Some(1080));
}

#[test]
fn due_timers_fire_in_deadline_order() {
    let mut e = Events::new();
    let mk = |e: &mut Events, f| {
        e.create_event(
            EVT_TIMER | EVT_NOTIFY_SIGNAL,
            Tpl::CALLBACK,
            Some((f, 0)),
            None,
        )
        .unwrap()
    };
    let a = mk(&mut e, 1);
    let b = mk(&mut e, 2);
    let c = mk(&mut e, 3);
    e.set_timer(a, TimerDelay::Relative, 30, 0).unwrap();
    e.set_timer(b, TimerDelay::Relative, 10, 0).unwrap();
    e.set_timer(c, TimerDelay::Relative, 20, 0).unwrap();
    e.raise_tpl(Tpl::HIGH_LEVEL).unwrap();
    assert_eq!(e.tick(100), 3);
    assert_eq!(
        restore(&mut e, Tpl::APPLICATION),
        vec![(2, Tpl::CALLBACK), (3, Tpl::CALLBACK), (1, Tpl::CALLBACK)]
    );
}

#[test]
fn event_limit_gives_out_of_resources() {
    let mut e = Events::new();
    for _ in 0..MAX_EVENTS {
        e.create_event(0, Tpl(0), None, None).unwrap();
    }
    assert_eq!(
        e.create_event(0, Tpl(0), None, None),
        Err(Status::OUT_OF_RESOURCES)
    );
}

#[test]
fn virtual_address_change_notifies_in_dispatch_order() {
    // §7.1.1: EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE events and members of
    // EFI_EVENT_GROUP_VIRTUAL_ADDRESS_CHANGE are notified at
    // SetVirtualAddressMap, higher notify TPL first.
    let mut e = Events::new();
    let low = e
        .create_event(
            EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE,
            Tpl::CALLBACK,
            Some((1, 11)),
            None,
        )
        .unwrap();
    let high = e
        .create_event(
            EVT_NOTIFY_SIGNAL,
            Tpl::NOTIFY,
            Some((2, 22)),
            Some(EVENT_GROUP_VIRTUAL_ADDRESS_CHANGE),
        )
        .unwrap();
    let low2 = e
        .create_event(
            EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE,
            Tpl::CALLBACK,
            Some((3, 33)),
            None,
        )
        .unwrap();
    // Other groups and wait-only events are not included.
    e.create_event(
        EVT_SIGNAL_EXIT_BOOT_SERVICES,
        Tpl::NOTIFY,
        Some((4, 44)),
        None,
    )
    .unwrap();
    e.create_event(
        EVT_NOTIFY_WAIT,
        Tpl::NOTIFY,
        Some((5, 55)),
        Some(EVENT_GROUP_VIRTUAL_ADDRESS_CHANGE),
    )
    .unwrap();
    assert_eq!(
        e.group_notifies(&EVENT_GROUP_VIRTUAL_ADDRESS_CHANGE),
        vec![(high, 2, 22), (low, 1, 11), (low2, 3, 33)]
    );
    e.close_event(high).unwrap();
    assert_eq!(
        e.group_notifies(&EVENT_GROUP_VIRTUAL_ADDRESS_CHANGE).len(),
        2
    );
}
