//! Events, timers and task priority levels (UEFI 2.10 §7.1).
//!
//! Nothing here calls a notify function: the firmware asks
//! [`Events::next_notification`] for the next one, calls it with its lock
//! released, and asks again. That keeps notify functions free to call boot
//! services (which re-enter this state) and gives the spec's order: highest
//! TPL first, FIFO within a TPL, each run at its own TPL.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::fmt;
use core::num::NonZeroU64;

use crate::guid::{Guid, EVENT_GROUP_EXIT_BOOT_SERVICES, EVENT_GROUP_VIRTUAL_ADDRESS_CHANGE};
use crate::status::Status;

/// `EVT_TIMER`: the event is a timer.
pub const EVT_TIMER: u32 = 0x8000_0000;
/// `EVT_RUNTIME`: the event is allocated from runtime memory.
pub const EVT_RUNTIME: u32 = 0x4000_0000;
/// `EVT_NOTIFY_WAIT`: the notify function is queued while someone waits.
pub const EVT_NOTIFY_WAIT: u32 = 0x0000_0100;
/// `EVT_NOTIFY_SIGNAL`: the notify function is queued when signaled.
pub const EVT_NOTIFY_SIGNAL: u32 = 0x0000_0200;
/// `EVT_SIGNAL_EXIT_BOOT_SERVICES` (legacy form of the EBS group).
pub const EVT_SIGNAL_EXIT_BOOT_SERVICES: u32 = 0x0000_0201;
/// `EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE` (legacy form of the VA-change group).
pub const EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE: u32 = 0x6000_0202;

/// The event types `CreateEvent` accepts; anything else is
/// `EFI_INVALID_PARAMETER`. Same whitelist as the reference implementation
/// (EDK2), so firmware and loaders agree on what is legal.
const VALID_TYPES: [u32; 10] = [
    EVT_TIMER | EVT_NOTIFY_SIGNAL,
    0,
    EVT_NOTIFY_WAIT,
    EVT_NOTIFY_SIGNAL,
    EVT_SIGNAL_EXIT_BOOT_SERVICES,
    EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE,
    EVT_RUNTIME | EVT_NOTIFY_SIGNAL,
    EVT_TIMER,
    EVT_TIMER | EVT_NOTIFY_WAIT,
    EVT_TIMER | EVT_RUNTIME | EVT_NOTIFY_SIGNAL,
];

/// Most live events; past this `CreateEvent` returns `EFI_OUT_OF_RESOURCES`.
pub const MAX_EVENTS: usize = 8192;
/// First event value handed out; values are spaced 16 apart so they look
/// like aligned pointers and never collide with handle values.
pub const EVENT_BASE: u64 = 0x0000_4600_0000_0000;
const EVENT_LIMIT: u64 = 0x0000_4700_0000_0000;
/// Period used for `TimerPeriodic` with a trigger time of 0 ("every timer
/// tick"): 10 ms in 100 ns units, like common platform timers.
pub const DEFAULT_TICK_100NS: u64 = 100_000;

/// A task priority level (`EFI_TPL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Tpl(pub usize);

impl Tpl {
    /// `TPL_APPLICATION`.
    pub const APPLICATION: Tpl = Tpl(4);
    /// `TPL_CALLBACK`.
    pub const CALLBACK: Tpl = Tpl(8);
    /// `TPL_NOTIFY`.
    pub const NOTIFY: Tpl = Tpl(16);
    /// `TPL_HIGH_LEVEL`: interrupts off; the highest level.
    pub const HIGH_LEVEL: Tpl = Tpl(31);

    fn index(self) -> Option<usize> {
        (self <= Tpl::HIGH_LEVEL).then_some(self.0)
    }
}

/// An event, as an opaque non-zero value the firmware can hand out as
/// `EFI_EVENT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(NonZeroU64);

impl EventId {
    /// The value given to the guest.
    pub fn raw(self) -> u64 {
        self.0.get()
    }
    /// Wraps a guest-supplied value; `None` for 0 (a NULL event). Whether
    /// it names a live event is checked by each operation.
    pub fn from_raw(v: u64) -> Option<EventId> {
        NonZeroU64::new(v).map(EventId)
    }
}

/// `EFI_TIMER_DELAY`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerDelay {
    /// `TimerCancel` (0).
    Cancel,
    /// `TimerPeriodic` (1).
    Periodic,
    /// `TimerRelative` (2).
    Relative,
}

impl TimerDelay {
    /// Converts the raw enum; `None` (→ `EFI_INVALID_PARAMETER`) otherwise.
    pub fn from_raw(v: u32) -> Option<TimerDelay> {
        match v {
            0 => Some(TimerDelay::Cancel),
            1 => Some(TimerDelay::Periodic),
            2 => Some(TimerDelay::Relative),
            _ => None,
        }
    }
}

/// A notify function the firmware must call now: `function(event, context)`
/// at TPL `tpl` (already set as the current TPL), with its lock released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notification {
    /// The event being notified (first argument).
    pub event: EventId,
    /// The guest's `EFI_EVENT_NOTIFY` function.
    pub function: usize,
    /// The guest's `NotifyContext` (second argument).
    pub context: usize,
    /// The TPL it runs at.
    pub tpl: Tpl,
}

/// A misuse of `RaiseTPL`/`RestoreTPL`. The spec leaves the behaviour
/// undefined; the firmware may treat these as fatal. The TPL is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TplError {
    /// The requested TPL is above `TPL_HIGH_LEVEL` (31).
    OutOfRange(Tpl),
    /// `RaiseTPL` to a level below the current one.
    RaiseBelowCurrent {
        /// Current TPL.
        current: Tpl,
        /// Requested TPL.
        requested: Tpl,
    },
    /// `RestoreTPL` to a level above the current one.
    RestoreAboveCurrent {
        /// Current TPL.
        current: Tpl,
        /// Requested TPL.
        requested: Tpl,
    },
}

impl fmt::Display for TplError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TplError::OutOfRange(t) => write!(f, "TPL {} is above TPL_HIGH_LEVEL (31)", t.0),
            TplError::RaiseBelowCurrent { current, requested } => write!(
                f,
                "RaiseTPL({}) is below the current TPL {}; a caller forgot a RestoreTPL or passed the wrong level",
                requested.0, current.0
            ),
            TplError::RestoreAboveCurrent { current, requested } => write!(
                f,
                "RestoreTPL({}) is above the current TPL {}; RestoreTPL must get the value RaiseTPL returned",
                requested.0, current.0
            ),
        }
    }
}

impl core::error::Error for TplError {}

/// Why `WaitForEvent` stopped without an event: the status to return and,
/// when one event caused it, the index to store in `*Index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitError {
    /// `EFI_UNSUPPORTED` or `EFI_INVALID_PARAMETER`.
    pub status: Status,
    /// The offending event's index in the caller's array.
    pub index: Option<usize>,
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "WaitForEvent: event {i}: {}", self.status),
            None => write!(f, "WaitForEvent: {}", self.status),
        }
    }
}

impl core::error::Error for WaitError {}

#[derive(Clone, Copy, Debug)]
struct Timer {
    trigger: u64,
    period: u64,
    seq: u64,
}

#[derive(Debug)]
struct Event {
    kind: u32,
    notify_tpl: Tpl,
    notify: Option<(usize, usize)>,
    group: Option<Guid>,
    signaled: bool,
    queued: bool,
    timer: Option<Timer>,
}

/// All events, the pending-notification queues and the current TPL.
#[derive(Debug)]
pub struct Events {
    events: BTreeMap<EventId, Event>,
    // One FIFO per TPL 0..=31; an event is in at most one, at most once.
    queues: [VecDeque<EventId>; 32],
    current: Tpl,
    next_id: u64,
    timer_seq: u64,
    tick_100ns: u64,
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    /// No events, TPL_APPLICATION.
    pub fn new() -> Events {
        Events {
            events: BTreeMap::new(),
            queues: core::array::from_fn(|_| VecDeque::new()),
            current: Tpl::APPLICATION,
            next_id: EVENT_BASE,
            timer_seq: 0,
            tick_100ns: DEFAULT_TICK_100NS,
        }
    }

    /// Sets the period of a `TimerPeriodic` timer armed with 0 (clamped to ≥ 1).
    pub fn set_tick_period(&mut self, tick_100ns: u64) {
        self.tick_100ns = tick_100ns.max(1);
    }

    /// `CreateEvent`/`CreateEventEx`. `notify` is `(function, context)`;
    /// a zero function counts as none.
    ///
    /// `EFI_INVALID_PARAMETER`: unknown type; a notify type without a
    /// function or with a TPL not strictly between APPLICATION and
    /// HIGH_LEVEL; a group given with the legacy EXIT_BOOT_SERVICES or
    /// VIRTUAL_ADDRESS_CHANGE types (those types imply their group).
    pub fn create_event(
        &mut self,
        kind: u32,
        notify_tpl: Tpl,
        notify: Option<(usize, usize)>,
        group: Option<Guid>,
    ) -> Result<EventId, Status> {
        if !VALID_TYPES.contains(&kind) {
            return Err(Status::INVALID_PARAMETER);
        }
        let group = match (group, kind) {
            (Some(_), EVT_SIGNAL_EXIT_BOOT_SERVICES | EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE) => {
                return Err(Status::INVALID_PARAMETER)
            }
            (None, EVT_SIGNAL_EXIT_BOOT_SERVICES) => Some(EVENT_GROUP_EXIT_BOOT_SERVICES),
            (None, EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE) => Some(EVENT_GROUP_VIRTUAL_ADDRESS_CHANGE),
            (g, _) => g,
        };
        let (notify_tpl, notify) = if kind & (EVT_NOTIFY_WAIT | EVT_NOTIFY_SIGNAL) != 0 {
            let Some((func, ctx)) = notify.filter(|(func, _)| *func != 0) else {
                return Err(Status::INVALID_PARAMETER);
            };
            // A notify at APPLICATION could never run (dispatch only runs
            // levels above the one being restored to).
            if notify_tpl <= Tpl::APPLICATION || notify_tpl >= Tpl::HIGH_LEVEL {
                return Err(Status::INVALID_PARAMETER);
            }
            (notify_tpl, Some((func, ctx)))
        } else {
            // The spec says these are ignored for other types.
            (Tpl(0), None)
        };
        if self.events.len() >= MAX_EVENTS || self.next_id >= EVENT_LIMIT {
            return Err(Status::OUT_OF_RESOURCES);
        }
        let id = EventId(NonZeroU64::new(self.next_id).ok_or(Status::OUT_OF_RESOURCES)?);
        self.next_id += 16;
        let ev = Event {
            kind,
            notify_tpl,
            notify,
            group,
            signaled: false,
            queued: false,
            timer: None,
        };
        self.events.insert(id, ev);
        Ok(id)
    }

    /// True when `ev` names a live event.
    pub fn is_valid(&self, ev: EventId) -> bool {
        self.events.contains_key(&ev)
    }

    /// The event's type bits, for the firmware (e.g. `EVT_RUNTIME`).
    pub fn kind(&self, ev: EventId) -> Option<u32> {
        self.events.get(&ev).map(|e| e.kind)
    }

    /// The event's group, including the implied group of the legacy types.
    pub fn group(&self, ev: EventId) -> Option<Guid> {
        self.events.get(&ev).and_then(|e| e.group)
    }

    /// Live events, in creation order.
    pub fn all(&self) -> Vec<EventId> {
        self.events.keys().copied().collect()
    }

    /// `CloseEvent`: cancels its timer and drops a pending notification.
    /// The caller must also drop protocol-notify registrations
    /// ([`crate::HandleDb::unregister_event`]; [`crate::BootState`] does).
    pub fn close_event(&mut self, ev: EventId) -> Result<(), Status> {
        let e = self.events.remove(&ev).ok_or(Status::INVALID_PARAMETER)?;
        if e.queued {
            if let Some(q) = e.notify_tpl.index().and_then(|i| self.queues.get_mut(i)) {
                q.retain(|x| *x != ev);
            }
        }
        Ok(())
    }

    /// `SignalEvent`. If the event belongs to a group, every member of the
    /// group is signaled (members' notify functions run in creation order
    /// within a TPL).
    pub fn signal_event(&mut self, ev: EventId) -> Result<(), Status> {
        let e = self.events.get(&ev).ok_or(Status::INVALID_PARAMETER)?;
        match e.group {
            Some(g) => {
                self.signal_group(&g);
            }
            None => self.signal_one(ev),
        }
        Ok(())
    }

    /// The notification functions of the signal-type events in group `g`,
    /// as `(event, function, context)` in dispatch order (higher notify TPL
    /// first, then creation order). For a group the firmware signals when
    /// there is no dispatcher any more: `EVENT_GROUP_VIRTUAL_ADDRESS_CHANGE`,
    /// at SetVirtualAddressMap, after ExitBootServices.
    pub fn group_notifies(&self, g: &Guid) -> Vec<(EventId, usize, usize)> {
        let mut v: Vec<(Tpl, EventId, usize, usize)> = self
            .events
            .iter()
            .filter(|(_, e)| e.group.as_ref() == Some(g) && e.kind & EVT_NOTIFY_SIGNAL != 0)
            .filter_map(|(id, e)| e.notify.map(|(f, c)| (e.notify_tpl, *id, f, c)))
            .collect();
        v.sort_by_key(|&(tpl, id, _, _)| (core::cmp::Reverse(tpl.0), id.raw()));
        v.into_iter().map(|(_, id, f, c)| (id, f, c)).collect()
    }

    /// Signals every event in group `g` (e.g. at ExitBootServices).
    /// Returns how many events were in the group.
    pub fn signal_group(&mut self, g: &Guid) -> usize {
        let members: Vec<EventId> = self
            .events
            .iter()
            .filter(|(_, e)| e.group.as_ref() == Some(g))
            .map(|(id, _)| *id)
            .collect();
        for id in &members {
            self.signal_one(*id);
        }
        members.len()
    }

    fn signal_one(&mut self, ev: EventId) {
        let Some(e) = self.events.get_mut(&ev) else {
            return;
        };
        if e.signaled {
            // Already signaled: its notification (if any) is still pending.
            return;
        }
        e.signaled = true;
        if e.kind & EVT_NOTIFY_SIGNAL != 0 {
            self.enqueue(ev);
        }
    }

    fn enqueue(&mut self, ev: EventId) {
        let Some(e) = self.events.get_mut(&ev) else {
            return;
        };
        if e.queued || e.notify.is_none() {
            return;
        }
        if let Some(q) = e.notify_tpl.index().and_then(|i| self.queues.get_mut(i)) {
            q.push_back(ev);
            e.queued = true;
        }
    }

    /// `CheckEvent`. For an unsignaled `EVT_NOTIFY_WAIT` event this queues
    /// its notify function and returns `EFI_NOT_READY`; the firmware then
    /// dispatches notifications and calls [`Events::take_signal`] to see
    /// whether the notify function signaled it (the spec's CheckEvent
    /// returns SUCCESS in that case).
    ///
    /// `EFI_INVALID_PARAMETER` for unknown and `EVT_NOTIFY_SIGNAL` events.
    pub fn check_event(&mut self, ev: EventId) -> Result<(), Status> {
        let e = self.events.get(&ev).ok_or(Status::INVALID_PARAMETER)?;
        if e.kind & EVT_NOTIFY_SIGNAL != 0 {
            return Err(Status::INVALID_PARAMETER);
        }
        if !e.signaled && e.kind & EVT_NOTIFY_WAIT != 0 {
            self.enqueue(ev);
        }
        self.take_signal(ev)
    }

    /// The second half of `CheckEvent`: clears the signaled state and returns
    /// SUCCESS if set, `EFI_NOT_READY` if not. Never queues anything.
    pub fn take_signal(&mut self, ev: EventId) -> Result<(), Status> {
        let e = self.events.get_mut(&ev).ok_or(Status::INVALID_PARAMETER)?;
        if e.kind & EVT_NOTIFY_SIGNAL != 0 {
            return Err(Status::INVALID_PARAMETER);
        }
        if e.signaled {
            e.signaled = false;
            Ok(())
        } else {
            Err(Status::NOT_READY)
        }
    }

    /// One pass of `WaitForEvent`: checks the events in order and returns
    /// the index of the first signaled one (clearing it), or `None` if none
    /// is signaled yet. The firmware loops: tick timers, dispatch
    /// notifications (wait notify functions queued here), poll again.
    ///
    /// Errors: `EFI_UNSUPPORTED` unless the TPL is APPLICATION;
    /// `EFI_INVALID_PARAMETER` for an empty list, or (with its index) for an
    /// unknown or `EVT_NOTIFY_SIGNAL` event met before a signaled one.
    pub fn poll_wait(&mut self, events: &[EventId]) -> Result<Option<usize>, WaitError> {
        if self.current != Tpl::APPLICATION {
            return Err(WaitError {
                status: Status::UNSUPPORTED,
                index: None,
            });
        }
        if events.is_empty() {
            return Err(WaitError {
                status: Status::INVALID_PARAMETER,
                index: None,
            });
        }
        for (i, ev) in events.iter().enumerate() {
            match self.check_event(*ev) {
                Ok(()) => return Ok(Some(i)),
                Err(Status::NOT_READY) => {}
                Err(status) => {
                    return Err(WaitError {
                        status,
                        index: Some(i),
                    })
                }
            }
        }
        Ok(None)
    }

    /// `SetTimer`: times are in 100 ns units; `now_100ns` is the caller's
    /// clock. A relative timer of 0 fires at the next [`Events::tick`]; a
    /// periodic timer of 0 fires every tick period
    /// ([`Events::set_tick_period`]).
    ///
    /// `EFI_INVALID_PARAMETER` for unknown or non-`EVT_TIMER` events.
    pub fn set_timer(
        &mut self,
        ev: EventId,
        delay: TimerDelay,
        trigger_100ns: u64,
        now_100ns: u64,
    ) -> Result<(), Status> {
        let tick = self.tick_100ns;
        let e = self.events.get_mut(&ev).ok_or(Status::INVALID_PARAMETER)?;
        if e.kind & EVT_TIMER == 0 {
            return Err(Status::INVALID_PARAMETER);
        }
        self.timer_seq = self.timer_seq.wrapping_add(1);
        let seq = self.timer_seq;
        e.timer = match delay {
            TimerDelay::Cancel => None,
            TimerDelay::Relative => Some(Timer {
                trigger: now_100ns.saturating_add(trigger_100ns),
                period: 0,
                seq,
            }),
            TimerDelay::Periodic => {
                let period = if trigger_100ns == 0 {
                    tick
                } else {
                    trigger_100ns
                };
                Some(Timer {
                    trigger: now_100ns.saturating_add(period),
                    period,
                    seq,
                })
            }
        };
        Ok(())
    }

    /// The earliest armed timer's trigger time, so the firmware knows how
    /// long it may idle.
    pub fn next_deadline(&self) -> Option<u64> {
        self.events
            .values()
            .filter_map(|e| e.timer.map(|t| t.trigger))
            .min()
    }

    /// Fires every timer due at `now_100ns` (in trigger order), signaling
    /// its event. Periodic timers re-arm on their own schedule (trigger +
    /// k·period, the first such time after `now`), so late ticks do not
    /// make them drift. Returns how many timers fired.
    pub fn tick(&mut self, now_100ns: u64) -> usize {
        let mut due: Vec<(u64, u64, EventId)> = self
            .events
            .iter()
            .filter_map(|(id, e)| {
                e.timer
                    .filter(|t| t.trigger <= now_100ns)
                    .map(|t| (t.trigger, t.seq, *id))
            })
            .collect();
        due.sort_unstable();
        for (_, _, id) in &due {
            let Some(e) = self.events.get_mut(id) else {
                continue;
            };
            e.timer = e.timer.and_then(|t| {
                if t.period == 0 {
                    return None;
                }
                let missed = (now_100ns - t.trigger) / t.period;
                let next = t
                    .trigger
                    .saturating_add(t.period.saturating_mul(missed.saturating_add(1)));
                Some(Timer { trigger: next, ..t })
            });
            // Timer events may belong to groups too.
            let _ = self.signal_event(*id);
        }
        due.len()
    }

    /// The current TPL.
    pub fn tpl(&self) -> Tpl {
        self.current
    }

    /// `RaiseTPL`: returns the previous TPL.
    pub fn raise_tpl(&mut self, new: Tpl) -> Result<Tpl, TplError> {
        if new > Tpl::HIGH_LEVEL {
            return Err(TplError::OutOfRange(new));
        }
        if new < self.current {
            return Err(TplError::RaiseBelowCurrent {
                current: self.current,
                requested: new,
            });
        }
        let old = self.current;
        self.current = new;
        Ok(old)
    }

    /// `RestoreTPL`, first step: checks `old` (it must not be above the
    /// current TPL). The firmware then calls
    /// [`Events::next_notification`]`(old)` until it returns `None`, calling
    /// each notify function with its lock released; the final call sets the
    /// TPL to `old`:
    ///
    /// ```
    /// # use ember_efi::{Events, Tpl};
    /// # let mut ev = Events::new();
    /// # let old = ev.raise_tpl(Tpl::NOTIFY).unwrap();
    /// ev.restore_tpl(old).unwrap();
    /// while let Some(n) = ev.next_notification(old) {
    ///     // unlock; call n.function(n.event, n.context); lock again
    /// #   let _ = n;
    /// }
    /// assert_eq!(ev.tpl(), Tpl::APPLICATION);
    /// ```
    pub fn restore_tpl(&mut self, old: Tpl) -> Result<(), TplError> {
        if old > Tpl::HIGH_LEVEL {
            return Err(TplError::OutOfRange(old));
        }
        if old > self.current {
            return Err(TplError::RestoreAboveCurrent {
                current: self.current,
                requested: old,
            });
        }
        Ok(())
    }

    /// True if a notification above `tpl` is waiting.
    pub fn pending_above(&self, tpl: Tpl) -> bool {
        self.queues
            .iter()
            .enumerate()
            .any(|(i, q)| i > tpl.0 && !q.is_empty())
    }

    /// Pops the next notification with a TPL above `target` (highest TPL
    /// first, FIFO within a TPL), makes its TPL current and, for
    /// `EVT_NOTIFY_SIGNAL` events, clears the signaled state (wait events
    /// are only cleared by CheckEvent). With nothing left, sets the TPL to
    /// `target` and returns `None`.
    ///
    /// Also used after any boot service that may have queued work (e.g.
    /// SignalEvent at a TPL below the event's): call it with the TPL the
    /// service was entered at. A `target` above the current TPL is a caller
    /// bug and returns `None` without changing anything.
    pub fn next_notification(&mut self, target: Tpl) -> Option<Notification> {
        if target > self.current {
            return None;
        }
        for level in (target.0 + 1..self.queues.len()).rev() {
            let Some(q) = self.queues.get_mut(level) else {
                continue;
            };
            while let Some(id) = q.pop_front() {
                let Some(e) = self.events.get_mut(&id) else {
                    continue;
                };
                e.queued = false;
                if e.kind & EVT_NOTIFY_SIGNAL != 0 {
                    e.signaled = false;
                }
                let Some((function, context)) = e.notify else {
                    continue;
                };
                self.current = Tpl(level);
                return Some(Notification {
                    event: id,
                    function,
                    context,
                    tpl: Tpl(level),
                });
            }
        }
        self.current = target;
        None
    }
}
