//! A fake firmware driving `BootState` the way the `efiapi` wrappers will:
//! notify functions run with the "lock" released and call boot services.

use ember_efi::events::{EVT_NOTIFY_SIGNAL, EVT_NOTIFY_WAIT};
use ember_efi::{BootState, EventId, Guid, Notification, Search, Status, Tpl};

const PROTO: Guid = Guid::from_fields(0x1111_2222, 0x3333, 0x4444, [5, 5, 6, 6, 7, 7, 8, 8]);

// Notify function ids.
const OUTER: usize = 1; // at NOTIFY: signals CB and N2
const CB: usize = 2; // at CALLBACK: signals N3 (preempts it)
const N2: usize = 3;
const N3: usize = 4;
const WAITER: usize = 5; // wait notify: signals its own event
const INSTALLER: usize = 6; // installs PROTO
const ON_PROTO: usize = 7; // protocol notify: collects new handles

struct Fw {
    st: BootState,
    log: Vec<String>,
    ev: Vec<EventId>, // index = function id
    key: Option<ember_efi::Registration>,
    found: Vec<ember_efi::Handle>,
}

impl Fw {
    fn new() -> Fw {
        Fw {
            st: BootState::new(),
            log: Vec::new(),
            ev: vec![EventId::from_raw(1).unwrap(); 8],
            key: None,
            found: Vec::new(),
        }
    }

    fn create(&mut self, kind: u32, tpl: Tpl, f: usize) {
        self.ev[f] = self
            .st
            .events
            .create_event(kind, tpl, Some((f, 0)), None)
            .unwrap();
    }

    // The wrapper pattern: run queued notifications down to the entry TPL.
    fn drain(&mut self, entry: Tpl) {
        while let Some(n) = self.st.dispatch(entry) {
            self.call(n);
        }
    }

    fn signal(&mut self, f: usize) {
        let entry = self.st.tpl();
        self.st.events.signal_event(self.ev[f]).unwrap();
        self.drain(entry);
    }

    fn raise(&mut self, t: Tpl) -> Tpl {
        self.st.events.raise_tpl(t).unwrap()
    }

    fn restore(&mut self, old: Tpl) {
        self.st.events.restore_tpl(old).unwrap();
        self.drain(old);
        assert_eq!(self.st.tpl(), old);
    }

    fn check(&mut self, ev: EventId) -> Result<(), Status> {
        let entry = self.st.tpl();
        match self.st.events.check_event(ev) {
            Err(Status::NOT_READY) => {
                self.drain(entry);
                self.st.events.take_signal(ev)
            }
            r => r,
        }
    }

    fn call(&mut self, n: Notification) {
        assert_eq!(self.st.tpl(), n.tpl);
        self.log.push(format!("{}@{}", n.function, n.tpl.0));
        match n.function {
            OUTER => {
                self.signal(CB);
                self.signal(N2);
                // Raise/restore inside a notify function.
                let old = self.raise(Tpl::HIGH_LEVEL);
                assert_eq!(old, Tpl::NOTIFY);
                self.restore(old);
            }
            CB => {
                self.signal(N3);
                self.log.push("cb-end".into());
            }
            WAITER => {
                self.st.events.signal_event(n.event).unwrap();
            }
            INSTALLER => {
                let entry = self.st.tpl();
                self.st.install_protocol(None, PROTO, 0x5000).unwrap();
                self.drain(entry);
            }
            ON_PROTO => {
                let key = self.key.unwrap();
                while let Ok(hs) = self.st.handles.locate_handle(Search::ByRegisterNotify(key)) {
                    self.found.extend(hs);
                }
            }
            _ => {}
        }
        // Every notify function returns at the TPL it was called at.
        assert_eq!(self.st.tpl(), n.tpl);
    }
}

#[test]
fn nested_signals_run_in_priority_order() {
    let mut fw = Fw::new();
    fw.create(EVT_NOTIFY_SIGNAL, Tpl::NOTIFY, OUTER);
    fw.create(EVT_NOTIFY_SIGNAL, Tpl::CALLBACK, CB);
    fw.create(EVT_NOTIFY_SIGNAL, Tpl::NOTIFY, N2);
    fw.create(EVT_NOTIFY_SIGNAL, Tpl::NOTIFY, N3);
    // Signaled at APPLICATION: runs at once.
    fw.signal(OUTER);
    // OUTER(16) queues CB(8) and N2(16): neither preempts it. Then N2 runs
    // (higher TPL first), then CB, whose signal of N3(16) preempts CB.
    assert_eq!(fw.log, ["1@16", "3@16", "2@8", "4@16", "cb-end"]);
    assert_eq!(fw.st.tpl(), Tpl::APPLICATION);
}

#[test]
fn raised_tpl_defers_until_restore() {
    let mut fw = Fw::new();
    fw.create(EVT_NOTIFY_SIGNAL, Tpl::NOTIFY, OUTER);
    fw.create(EVT_NOTIFY_SIGNAL, Tpl::CALLBACK, CB);
    fw.create(EVT_NOTIFY_SIGNAL, Tpl::NOTIFY, N2);
    fw.create(EVT_NOTIFY_SIGNAL, Tpl::NOTIFY, N3);
    let old = fw.raise(Tpl::CALLBACK);
    fw.signal(CB);
    fw.signal(OUTER);
    // OUTER (16) preempts at CALLBACK; CB waits for the restore.
    assert_eq!(fw.log, ["1@16", "3@16"]);
    fw.restore(old);
    assert_eq!(fw.log, ["1@16", "3@16", "2@8", "4@16", "cb-end"]);
}

#[test]
fn check_event_runs_wait_notify_that_signals() {
    let mut fw = Fw::new();
    fw.create(EVT_NOTIFY_WAIT, Tpl::CALLBACK, WAITER);
    let ev = fw.ev[WAITER];
    assert_eq!(fw.check(ev), Ok(()));
    assert_eq!(fw.log, ["5@8"]);
    // WaitForEvent loop built on poll_wait.
    let mut rounds = 0;
    let idx = loop {
        rounds += 1;
        assert!(rounds < 10);
        match fw.st.events.poll_wait(&[ev]) {
            Ok(Some(i)) => break i,
            Ok(None) => fw.drain(Tpl::APPLICATION),
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!((idx, rounds), (0, 2));
}

#[test]
fn protocol_notify_from_inside_a_notify_function() {
    let mut fw = Fw::new();
    fw.create(EVT_NOTIFY_SIGNAL, Tpl::CALLBACK, INSTALLER);
    fw.create(EVT_NOTIFY_SIGNAL, Tpl::NOTIFY, ON_PROTO);
    fw.key = Some(
        fw.st
            .register_protocol_notify(PROTO, fw.ev[ON_PROTO])
            .unwrap(),
    );
    fw.signal(INSTALLER);
    assert_eq!(fw.log, ["6@8", "7@16"]);
    assert_eq!(fw.found.len(), 1);
    assert_eq!(
        fw.st.handles.protocol_interface(fw.found[0], &PROTO),
        Some(0x5000)
    );
    // Closing the event drops the registration.
    fw.st.close_event(fw.ev[ON_PROTO]).unwrap();
    fw.signal(INSTALLER);
    assert_eq!(fw.log, ["6@8", "7@16", "6@8"]);
    assert_eq!(
        fw.st
            .handles
            .locate_handle(Search::ByRegisterNotify(fw.key.unwrap())),
        Err(Status::INVALID_PARAMETER)
    );
    let bogus = EventId::from_raw(0x10).unwrap();
    assert_eq!(
        fw.st.register_protocol_notify(PROTO, bogus),
        Err(Status::INVALID_PARAMETER)
    );
}

#[test]
fn reinstall_signals_registered_events() {
    let mut st = BootState::new();
    let ev = st.events.create_event(0, Tpl(0), None, None).unwrap();
    let h = st.install_protocol(None, PROTO, 1).unwrap();
    let key = st.register_protocol_notify(PROTO, ev).unwrap();
    assert_eq!(st.events.check_event(ev), Err(Status::NOT_READY));
    st.reinstall_protocol(h, &PROTO, 1, 2).unwrap();
    assert_eq!(st.events.check_event(ev), Ok(()));
    assert_eq!(st.handles.locate_protocol(&PROTO, Some(key)), Ok(2));
    let h2 = st.install_multiple(None, &[(PROTO, 3)], |_| None).unwrap();
    assert_eq!(st.events.check_event(ev), Ok(()));
    assert_eq!(
        st.locate_handle(Search::ByRegisterNotify(key)),
        Ok(vec![h2])
    );
}
