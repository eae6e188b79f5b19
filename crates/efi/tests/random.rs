//! Random sequences of boot-service calls with hostile values: no panics,
//! and the database's invariants hold throughout.

use ember_efi::events::*;
use ember_efi::handles::*;
use ember_efi::{BootState, EventId, Guid, Status, Tpl};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn guid(n: u64) -> Guid {
    Guid::from_fields(n as u32, 0, 0, [0; 8])
}

#[test]
fn random_calls_never_panic_and_keep_invariants() {
    let mut r = Rng(0x1234_5678_9abc_def1);
    let mut st = BootState::new();
    let mut handles: Vec<Handle> = Vec::new();
    let mut events: Vec<EventId> = Vec::new();
    let mut keys: Vec<Registration> = Vec::new();
    let mut now = 0u64;
    let kinds = [
        0,
        EVT_TIMER,
        EVT_NOTIFY_SIGNAL,
        EVT_NOTIFY_WAIT,
        EVT_TIMER | EVT_NOTIFY_SIGNAL,
        0x300,
        7,
    ];
    for step in 0..10_000 {
        // Mostly known values, sometimes garbage.
        let h = if r.below(8) == 0 || handles.is_empty() {
            Handle::from_raw(r.next() | 1).unwrap()
        } else {
            handles[r.below(handles.len() as u64) as usize]
        };
        let h2 = handles
            .get(r.below(handles.len() as u64 + 1) as usize)
            .copied();
        let ev = if r.below(8) == 0 || events.is_empty() {
            EventId::from_raw(r.next() | 1).unwrap()
        } else {
            events[r.below(events.len() as u64) as usize]
        };
        let g = guid(r.below(4));
        let iface = r.below(3) as usize;
        let attrs = [1, 2, 4, 8, 0x10, 0x20, 0x30, 0, 0x3f][r.below(9) as usize];
        match r.below(16) {
            0 => {
                if let Ok(x) =
                    st.install_protocol(if r.below(2) == 0 { None } else { Some(h) }, g, iface)
                {
                    if !handles.contains(&x) {
                        handles.push(x);
                    }
                }
            }
            1 => {
                let _ = st.handles.uninstall_protocol(h, &g, iface);
            }
            2 => {
                let _ = st.handles.open_protocol(h, &g, h2, h2, attrs);
            }
            3 => {
                let _ = st.handles.close_protocol(h, &g, h2, h2);
            }
            4 => {
                let _ = st.reinstall_protocol(h, &g, iface, iface + 1);
            }
            5 => {
                let tpl = Tpl([0, 4, 8, 16, 31, 99][r.below(6) as usize]);
                let kind = kinds[r.below(kinds.len() as u64) as usize];
                if let Ok(e) =
                    st.events
                        .create_event(kind, tpl, Some((r.below(3) as usize, 0)), None)
                {
                    events.push(e);
                }
            }
            6 => {
                let _ = st.events.signal_event(ev);
            }
            7 => {
                let _ = st.events.check_event(ev);
            }
            8 => {
                let _ = st.close_event(ev);
            }
            9 => {
                let d = TimerDelay::from_raw(r.below(4) as u32);
                if let Some(d) = d {
                    let _ = st.events.set_timer(ev, d, r.below(100), now);
                }
            }
            10 => {
                now += r.below(60);
                st.events.tick(now);
            }
            11 => {
                if let Ok(k) = st.register_protocol_notify(g, ev) {
                    keys.push(k);
                }
            }
            12 => {
                let s = match r.below(3) {
                    0 => Search::AllHandles,
                    1 => Search::ByProtocol(g),
                    _ => Search::ByRegisterNotify(
                        keys.last()
                            .copied()
                            .unwrap_or(Registration::from_raw(9).unwrap()),
                    ),
                };
                match st.handles.locate_handle(s) {
                    Ok(v) => assert!(!v.is_empty()),
                    Err(e) => assert!(e == Status::NOT_FOUND || e == Status::INVALID_PARAMETER),
                }
            }
            13 => {
                let t = Tpl(r.below(40) as usize);
                if r.below(2) == 0 {
                    let _ = st.events.raise_tpl(t);
                } else if st.events.restore_tpl(t).is_ok() {
                    let mut n = 0;
                    while st.dispatch(t).is_some() {
                        n += 1;
                        assert!(n <= events.len(), "each event is queued at most once");
                    }
                    assert_eq!(st.tpl(), t);
                }
            }
            14 => {
                let _ = st.events.poll_wait(&[ev, ev]);
            }
            _ => {
                let path: Vec<u8> = (0..r.below(24)).map(|_| r.below(256) as u8).collect();
                let _ = st
                    .handles
                    .locate_device_path(&g, &path, |_| Some(&path[..]));
            }
        }
        // Invariants: every live handle has protocols; TPL stays in range.
        if step % 64 == 0 {
            for x in st.handles.all_handles() {
                assert!(!st.handles.protocols_per_handle(x).unwrap().is_empty());
            }
        }
        assert!(st.tpl() <= Tpl::HIGH_LEVEL);
        handles.retain(|x| st.handles.is_valid(*x));
        events.retain(|x| st.events.is_valid(*x));
    }
}
