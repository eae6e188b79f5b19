//! The handle database and protocol services (UEFI 2.10 §7.3).
//!
//! Handles, interfaces and registration keys are opaque integers; this
//! crate never dereferences anything. Work that needs other boot services
//! (DisconnectController before an exclusive open or an uninstall,
//! ConnectController after a reinstall, signaling notify events) is left to
//! the caller, with the data it needs returned or exposed here.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::num::NonZeroU64;

use crate::devpath::{first_instance, END_ENTIRE};
use crate::events::EventId;
use crate::guid::{Guid, DEVICE_PATH_PROTOCOL};
use crate::status::Status;

/// `EFI_OPEN_PROTOCOL_BY_HANDLE_PROTOCOL`.
pub const OPEN_BY_HANDLE_PROTOCOL: u32 = 0x01;
/// `EFI_OPEN_PROTOCOL_GET_PROTOCOL`.
pub const OPEN_GET_PROTOCOL: u32 = 0x02;
/// `EFI_OPEN_PROTOCOL_TEST_PROTOCOL`.
pub const OPEN_TEST_PROTOCOL: u32 = 0x04;
/// `EFI_OPEN_PROTOCOL_BY_CHILD_CONTROLLER`.
pub const OPEN_BY_CHILD_CONTROLLER: u32 = 0x08;
/// `EFI_OPEN_PROTOCOL_BY_DRIVER`.
pub const OPEN_BY_DRIVER: u32 = 0x10;
/// `EFI_OPEN_PROTOCOL_EXCLUSIVE`.
pub const OPEN_EXCLUSIVE: u32 = 0x20;
/// `BY_DRIVER | EXCLUSIVE`.
pub const OPEN_BY_DRIVER_EXCLUSIVE: u32 = OPEN_BY_DRIVER | OPEN_EXCLUSIVE;

/// Opens that uninstall/reinstall simply drop.
const PASSIVE_OPENS: u32 = OPEN_BY_HANDLE_PROTOCOL | OPEN_GET_PROTOCOL | OPEN_TEST_PROTOCOL;

/// Most live handles.
pub const MAX_HANDLES: usize = 1 << 16;
/// Most protocols on one handle.
pub const MAX_PROTOCOLS_PER_HANDLE: usize = 128;
/// Most distinct open records on one protocol interface.
pub const MAX_OPENS_PER_PROTOCOL: usize = 1024;
/// Most live protocol-notify registrations.
pub const MAX_REGISTRATIONS: usize = 4096;
/// First handle value; values are 16 apart so they look like aligned
/// pointers, in a range distinct from events and registrations.
pub const HANDLE_BASE: u64 = 0x0000_4500_0000_0000;
const HANDLE_LIMIT: u64 = 0x0000_4600_0000_0000;
/// First registration key value.
pub const REGISTRATION_BASE: u64 = 0x0000_4700_0000_0000;
const REGISTRATION_LIMIT: u64 = 0x0000_4800_0000_0000;

/// An `EFI_HANDLE`, as an opaque non-zero value chosen by [`HandleDb`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Handle(NonZeroU64);

impl Handle {
    /// The value given to the guest.
    pub fn raw(self) -> u64 {
        self.0.get()
    }
    /// Wraps a guest value; `None` for NULL. Validity is checked per call.
    pub fn from_raw(v: u64) -> Option<Handle> {
        NonZeroU64::new(v).map(Handle)
    }
}

/// A `RegisterProtocolNotify` registration key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Registration(NonZeroU64);

impl Registration {
    /// The value given to the guest.
    pub fn raw(self) -> u64 {
        self.0.get()
    }
    /// Wraps a guest value; `None` for NULL.
    pub fn from_raw(v: u64) -> Option<Registration> {
        NonZeroU64::new(v).map(Registration)
    }
}

/// `EFI_LOCATE_SEARCH_TYPE` with its argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Search {
    /// `AllHandles` (0).
    AllHandles,
    /// `ByRegisterNotify` (1): the next handle newly given the
    /// registration's protocol, one per call.
    ByRegisterNotify(Registration),
    /// `ByProtocol` (2).
    ByProtocol(Guid),
}

impl Search {
    /// Builds a search from LocateHandle's raw arguments;
    /// `EFI_INVALID_PARAMETER` for an unknown type or a missing argument.
    pub fn from_raw(
        search_type: u32,
        protocol: Option<Guid>,
        key: Option<Registration>,
    ) -> Result<Search, Status> {
        match (search_type, protocol, key) {
            (0, _, _) => Ok(Search::AllHandles),
            (1, _, Some(k)) => Ok(Search::ByRegisterNotify(k)),
            (2, Some(g), _) => Ok(Search::ByProtocol(g)),
            _ => Err(Status::INVALID_PARAMETER),
        }
    }
}

/// One `EFI_OPEN_PROTOCOL_INFORMATION_ENTRY`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenInfo {
    /// The agent (image or driver) that opened the protocol.
    pub agent: Handle,
    /// The controller it opened it for, if any.
    pub controller: Option<Handle>,
    /// The `OPEN_*` attributes.
    pub attributes: u32,
    /// How many identical opens this record stands for.
    pub open_count: u32,
}

/// What an install did: the handle, and the protocol-notify events the
/// caller must now signal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    /// The handle the protocols are on (new if none was given).
    pub handle: Handle,
    /// Events registered with `RegisterProtocolNotify` for these protocols.
    pub notify: Vec<EventId>,
}

#[derive(Debug)]
struct Interface {
    guid: Guid,
    interface: usize,
    // Install order across the database: ByProtocol results follow it.
    seq: u64,
    opens: Vec<OpenInfo>,
}

#[derive(Debug, Default)]
struct HandleEntry {
    protocols: Vec<Interface>,
}

#[derive(Debug)]
struct NotifyReg {
    guid: Guid,
    event: EventId,
    // Handles given the protocol since registration and not yet returned.
    pending: VecDeque<Handle>,
}

/// The handle database.
#[derive(Debug)]
pub struct HandleDb {
    handles: BTreeMap<Handle, HandleEntry>,
    regs: BTreeMap<Registration, NotifyReg>,
    next_handle: u64,
    next_reg: u64,
    seq: u64,
    firmware_agent: Option<Handle>,
}

impl Default for HandleDb {
    fn default() -> Self {
        Self::new()
    }
}

impl HandleDb {
    /// An empty database.
    pub fn new() -> HandleDb {
        HandleDb {
            handles: BTreeMap::new(),
            regs: BTreeMap::new(),
            next_handle: HANDLE_BASE,
            next_reg: REGISTRATION_BASE,
            seq: 0,
            firmware_agent: None,
        }
    }

    /// Sets the agent recorded for [`HandleDb::handle_protocol`] opens (the
    /// firmware's own image handle), as the reference implementation does.
    pub fn set_firmware_agent(&mut self, agent: Option<Handle>) {
        self.firmware_agent = agent;
    }

    /// True when `h` is a live handle.
    pub fn is_valid(&self, h: Handle) -> bool {
        self.handles.contains_key(&h)
    }

    /// All live handles in creation order.
    pub fn all_handles(&self) -> Vec<Handle> {
        self.handles.keys().copied().collect()
    }

    fn new_handle(&mut self) -> Result<Handle, Status> {
        if self.handles.len() >= MAX_HANDLES || self.next_handle >= HANDLE_LIMIT {
            return Err(Status::OUT_OF_RESOURCES);
        }
        let h = Handle(NonZeroU64::new(self.next_handle).ok_or(Status::OUT_OF_RESOURCES)?);
        self.next_handle += 16;
        Ok(h)
    }

    fn find(&self, h: Handle, guid: &Guid) -> Option<&Interface> {
        self.handles
            .get(&h)?
            .protocols
            .iter()
            .find(|p| p.guid == *guid)
    }

    fn find_mut(&mut self, h: Handle, guid: &Guid) -> Option<&mut Interface> {
        self.handles
            .get_mut(&h)?
            .protocols
            .iter_mut()
            .find(|p| p.guid == *guid)
    }

    // Queues `h` on every registration for `guid`; returns their events.
    fn notify(&mut self, h: Handle, guid: &Guid) -> Vec<EventId> {
        let mut events = Vec::new();
        for r in self.regs.values_mut().filter(|r| r.guid == *guid) {
            if !r.pending.contains(&h) {
                r.pending.push_back(h);
            }
            if !events.contains(&r.event) {
                events.push(r.event);
            }
        }
        events
    }

    fn next_seq(&mut self) -> u64 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// `InstallProtocolInterface`. `interface` may be 0 (a NULL interface
    /// is legal). With `handle` `None` a new handle is created.
    ///
    /// `EFI_INVALID_PARAMETER`: `handle` is not a live handle, or the
    /// protocol is already on it. `EFI_OUT_OF_RESOURCES`: limits reached.
    pub fn install_protocol(
        &mut self,
        handle: Option<Handle>,
        guid: Guid,
        interface: usize,
    ) -> Result<Installed, Status> {
        self.install_multiple(handle, &[(guid, interface)], |_| None)
    }

    /// `InstallMultipleProtocolInterfaces`: all or nothing.
    ///
    /// `device_path_of(interface)` returns the bytes of a device path
    /// interface (the firmware sizes it with
    /// [`crate::devpath::device_path_size`]); it is asked for the device
    /// path being installed and for those already in the database. If an
    /// identical device path is already on some handle the call fails with
    /// `EFI_ALREADY_STARTED`, as the spec requires.
    ///
    /// `EFI_INVALID_PARAMETER`: empty list with no handle, unknown handle,
    /// or a protocol already on the handle or listed twice.
    pub fn install_multiple<'a>(
        &mut self,
        handle: Option<Handle>,
        pairs: &[(Guid, usize)],
        mut device_path_of: impl FnMut(usize) -> Option<&'a [u8]>,
    ) -> Result<Installed, Status> {
        // Validate everything before changing anything.
        if let Some(h) = handle {
            let entry = self.handles.get(&h).ok_or(Status::INVALID_PARAMETER)?;
            if pairs
                .iter()
                .any(|(g, _)| entry.protocols.iter().any(|p| p.guid == *g))
            {
                return Err(Status::INVALID_PARAMETER);
            }
            if entry.protocols.len().saturating_add(pairs.len()) > MAX_PROTOCOLS_PER_HANDLE {
                return Err(Status::OUT_OF_RESOURCES);
            }
        } else if pairs.is_empty() {
            return Err(Status::INVALID_PARAMETER);
        } else if pairs.len() > MAX_PROTOCOLS_PER_HANDLE {
            return Err(Status::OUT_OF_RESOURCES);
        }
        for (i, (g, _)) in pairs.iter().enumerate() {
            if pairs.iter().skip(i + 1).any(|(g2, _)| g2 == g) {
                return Err(Status::INVALID_PARAMETER);
            }
        }
        for (g, iface) in pairs {
            if *g != DEVICE_PATH_PROTOCOL {
                continue;
            }
            let Some(path) = device_path_of(*iface) else {
                continue;
            };
            if let Ok((_, consumed)) =
                self.locate_device_path(&DEVICE_PATH_PROTOCOL, path, &mut device_path_of)
            {
                // A full match (nothing left but the final end node) means
                // this device path is already installed.
                let whole =
                    first_instance(path).map(|i| i.len == consumed && i.end.sub_type == END_ENTIRE);
                if whole == Ok(true) {
                    return Err(Status::ALREADY_STARTED);
                }
            }
        }
        let h = match handle {
            Some(h) => h,
            None => {
                let h = self.new_handle()?;
                self.handles.insert(h, HandleEntry::default());
                h
            }
        };
        let mut notify = Vec::new();
        for (g, iface) in pairs {
            let seq = self.next_seq();
            if let Some(entry) = self.handles.get_mut(&h) {
                entry.protocols.push(Interface {
                    guid: *g,
                    interface: *iface,
                    seq,
                    opens: Vec::new(),
                });
            }
            for ev in self.notify(h, g) {
                if !notify.contains(&ev) {
                    notify.push(ev);
                }
            }
        }
        Ok(Installed { handle: h, notify })
    }

    // Spec rule shared by uninstall and reinstall: only GET/BY_HANDLE/TEST
    // opens may remain (they are dropped); anything else means a driver or
    // child still uses the interface.
    fn check_removable(&self, h: Handle, guid: &Guid, interface: usize) -> Result<(), Status> {
        if !self.is_valid(h) {
            return Err(Status::INVALID_PARAMETER);
        }
        let p = self
            .find(h, guid)
            .filter(|p| p.interface == interface)
            .ok_or(Status::NOT_FOUND)?;
        if p.opens.iter().any(|o| o.attributes & !PASSIVE_OPENS != 0) {
            return Err(Status::ACCESS_DENIED);
        }
        Ok(())
    }

    fn remove(&mut self, h: Handle, guid: &Guid) {
        let Some(entry) = self.handles.get_mut(&h) else {
            return;
        };
        entry.protocols.retain(|p| p.guid != *guid);
        if entry.protocols.is_empty() {
            self.handles.remove(&h);
        }
    }

    /// `UninstallProtocolInterface`. Removes the handle with its last
    /// protocol.
    ///
    /// Before calling, the firmware disconnects the drivers in
    /// [`HandleDb::by_driver_agents`] (DisconnectController); if any open
    /// other than BY_HANDLE/GET/TEST remains this returns
    /// `EFI_ACCESS_DENIED` and changes nothing (the firmware then
    /// reconnects with ConnectController).
    ///
    /// `EFI_INVALID_PARAMETER`: unknown handle. `EFI_NOT_FOUND`: that
    /// protocol with that interface is not on the handle.
    pub fn uninstall_protocol(
        &mut self,
        h: Handle,
        guid: &Guid,
        interface: usize,
    ) -> Result<(), Status> {
        self.check_removable(h, guid, interface)?;
        self.remove(h, guid);
        Ok(())
    }

    /// `UninstallMultipleProtocolInterfaces`: all or nothing; any failure is
    /// `EFI_INVALID_PARAMETER` as the spec says.
    pub fn uninstall_multiple(&mut self, h: Handle, pairs: &[(Guid, usize)]) -> Result<(), Status> {
        for (i, (g, iface)) in pairs.iter().enumerate() {
            let dup = pairs.iter().skip(i + 1).any(|(g2, _)| g2 == g);
            if dup || self.check_removable(h, g, *iface).is_err() {
                return Err(Status::INVALID_PARAMETER);
            }
        }
        for (g, _) in pairs {
            self.remove(h, g);
        }
        Ok(())
    }

    /// `ReinstallProtocolInterface`: swaps `old` for `new` (same rules as
    /// uninstall for open records), counts as a new install for
    /// `ByRegisterNotify`, and returns the notify events to signal. The
    /// firmware then calls ConnectController on the handle.
    pub fn reinstall_protocol(
        &mut self,
        h: Handle,
        guid: &Guid,
        old: usize,
        new: usize,
    ) -> Result<Vec<EventId>, Status> {
        self.check_removable(h, guid, old)?;
        let seq = self.next_seq();
        if let Some(p) = self.find_mut(h, guid) {
            p.opens.clear();
            p.interface = new;
            p.seq = seq;
        }
        Ok(self.notify(h, guid))
    }

    /// The interface of `guid` on `h` without recording an open (for the
    /// `*Interface` OpenProtocol returns alongside `EFI_ALREADY_STARTED`).
    pub fn protocol_interface(&self, h: Handle, guid: &Guid) -> Option<usize> {
        self.find(h, guid).map(|p| p.interface)
    }

    /// `HandleProtocol`: an open BY_HANDLE_PROTOCOL on behalf of the
    /// firmware agent ([`HandleDb::set_firmware_agent`]).
    pub fn handle_protocol(&mut self, h: Handle, guid: &Guid) -> Result<usize, Status> {
        let agent = self.firmware_agent;
        self.open_protocol(h, guid, agent, None, OPEN_BY_HANDLE_PROTOCOL)
    }

    /// `OpenProtocol`. Returns the interface.
    ///
    /// `EFI_INVALID_PARAMETER`: unknown `h`; attributes not one of the
    /// seven legal values; BY_CHILD_CONTROLLER, BY_DRIVER and
    /// BY_DRIVER|EXCLUSIVE without a live agent and controller, EXCLUSIVE
    /// without a live agent, BY_CHILD_CONTROLLER with `controller == h`.
    /// `EFI_UNSUPPORTED`: the protocol is not on `h`.
    /// `EFI_ALREADY_STARTED`: the same agent already has it open with the
    /// same BY_DRIVER or BY_DRIVER|EXCLUSIVE attributes (the interface is
    /// still available from [`HandleDb::protocol_interface`]).
    /// `EFI_ACCESS_DENIED`: BY_DRIVER while another BY_DRIVER or any
    /// EXCLUSIVE open exists; EXCLUSIVE or BY_DRIVER|EXCLUSIVE while an
    /// EXCLUSIVE open exists, or while BY_DRIVER opens exist — for the
    /// latter the firmware disconnects [`HandleDb::by_driver_agents`] and
    /// retries once, as the spec's DisconnectController step.
    ///
    /// With `agent` `None` (legal for BY_HANDLE/GET/TEST) nothing is
    /// recorded; otherwise an identical earlier open has its count raised.
    pub fn open_protocol(
        &mut self,
        h: Handle,
        guid: &Guid,
        agent: Option<Handle>,
        controller: Option<Handle>,
        attributes: u32,
    ) -> Result<usize, Status> {
        if !self.is_valid(h) {
            return Err(Status::INVALID_PARAMETER);
        }
        let live = |x: Option<Handle>| x.is_some_and(|x| self.is_valid(x));
        let ok = match attributes {
            OPEN_BY_CHILD_CONTROLLER => live(agent) && live(controller) && controller != Some(h),
            OPEN_BY_DRIVER | OPEN_BY_DRIVER_EXCLUSIVE => live(agent) && live(controller),
            OPEN_EXCLUSIVE => live(agent),
            OPEN_BY_HANDLE_PROTOCOL | OPEN_GET_PROTOCOL | OPEN_TEST_PROTOCOL => true,
            _ => false,
        };
        if !ok {
            return Err(Status::INVALID_PARAMETER);
        }
        let p = self.find_mut(h, guid).ok_or(Status::UNSUPPORTED)?;
        let (mut by_driver, mut exclusive) = (false, false);
        for o in &p.opens {
            if o.attributes & OPEN_BY_DRIVER != 0 {
                by_driver = true;
                if Some(o.agent) == agent && o.attributes == attributes {
                    return Err(Status::ALREADY_STARTED);
                }
            }
            if o.attributes & OPEN_EXCLUSIVE != 0 {
                exclusive = true;
            }
        }
        if attributes & (OPEN_BY_DRIVER | OPEN_EXCLUSIVE) != 0 {
            if exclusive {
                return Err(Status::ACCESS_DENIED);
            }
            if by_driver {
                // BY_DRIVER: only one driver. EXCLUSIVE kinds: the caller
                // must first disconnect the BY_DRIVER agents.
                return Err(Status::ACCESS_DENIED);
            }
        }
        let interface = p.interface;
        let Some(agent) = agent else {
            return Ok(interface);
        };
        if let Some(o) = p
            .opens
            .iter_mut()
            .find(|o| o.agent == agent && o.controller == controller && o.attributes == attributes)
        {
            o.open_count = o.open_count.saturating_add(1);
            return Ok(interface);
        }
        if p.opens.len() >= MAX_OPENS_PER_PROTOCOL {
            return Err(Status::OUT_OF_RESOURCES);
        }
        p.opens.push(OpenInfo {
            agent,
            controller,
            attributes,
            open_count: 1,
        });
        Ok(interface)
    }

    /// Agents holding `guid` on `h` open BY_DRIVER (with or without
    /// EXCLUSIVE), each once: what the firmware must DisconnectController
    /// before an EXCLUSIVE open, an uninstall or a reinstall.
    pub fn by_driver_agents(&self, h: Handle, guid: &Guid) -> Vec<Handle> {
        let mut v: Vec<Handle> = Vec::new();
        for o in self
            .find(h, guid)
            .map(|p| p.opens.as_slice())
            .unwrap_or(&[])
        {
            if o.attributes & OPEN_BY_DRIVER != 0 && !v.contains(&o.agent) {
                v.push(o.agent);
            }
        }
        v
    }

    /// `CloseProtocol`: removes every open record of `agent` for
    /// `controller` on that protocol.
    ///
    /// `EFI_INVALID_PARAMETER`: `h` or `agent` unknown or NULL, or a
    /// non-NULL `controller` unknown. `EFI_NOT_FOUND`: the protocol is not
    /// on `h`, or it is not open by that agent for that controller.
    pub fn close_protocol(
        &mut self,
        h: Handle,
        guid: &Guid,
        agent: Option<Handle>,
        controller: Option<Handle>,
    ) -> Result<(), Status> {
        let agent = agent
            .filter(|a| self.is_valid(*a))
            .ok_or(Status::INVALID_PARAMETER)?;
        if !self.is_valid(h) || controller.is_some_and(|c| !self.is_valid(c)) {
            return Err(Status::INVALID_PARAMETER);
        }
        let p = self.find_mut(h, guid).ok_or(Status::NOT_FOUND)?;
        let before = p.opens.len();
        p.opens
            .retain(|o| !(o.agent == agent && o.controller == controller));
        if p.opens.len() == before {
            return Err(Status::NOT_FOUND);
        }
        Ok(())
    }

    /// `OpenProtocolInformation`. `EFI_NOT_FOUND` if `h` does not support
    /// the protocol (or is unknown).
    pub fn open_protocol_information(
        &self,
        h: Handle,
        guid: &Guid,
    ) -> Result<Vec<OpenInfo>, Status> {
        self.find(h, guid)
            .map(|p| p.opens.clone())
            .ok_or(Status::NOT_FOUND)
    }

    /// `ProtocolsPerHandle`, in install order. `EFI_INVALID_PARAMETER` for
    /// an unknown handle.
    pub fn protocols_per_handle(&self, h: Handle) -> Result<Vec<Guid>, Status> {
        let e = self.handles.get(&h).ok_or(Status::INVALID_PARAMETER)?;
        Ok(e.protocols.iter().map(|p| p.guid).collect())
    }

    fn by_protocol(&self, guid: &Guid) -> Vec<Handle> {
        let mut v: Vec<(u64, Handle)> = self
            .handles
            .iter()
            .filter_map(|(h, e)| {
                e.protocols
                    .iter()
                    .find(|p| p.guid == *guid)
                    .map(|p| (p.seq, *h))
            })
            .collect();
        v.sort_unstable();
        v.into_iter().map(|(_, h)| h).collect()
    }

    // Front of a registration's queue that still has its protocol; with
    // `consume` the handle (and stale ones before it) are removed.
    fn reg_next(&mut self, key: Registration, consume: bool) -> Result<Option<Handle>, Status> {
        let reg = self.regs.get_mut(&key).ok_or(Status::INVALID_PARAMETER)?;
        let handles = &self.handles;
        let guid = reg.guid;
        let still_has = |h: &Handle| {
            handles
                .get(h)
                .is_some_and(|e| e.protocols.iter().any(|p| p.guid == guid))
        };
        if consume {
            while let Some(h) = reg.pending.pop_front() {
                if still_has(&h) {
                    return Ok(Some(h));
                }
            }
            Ok(None)
        } else {
            Ok(reg.pending.iter().find(|h| still_has(h)).copied())
        }
    }

    /// `LocateHandle` without side effects: what [`HandleDb::locate_handle`]
    /// would return. The firmware uses it to answer `EFI_BUFFER_TOO_SMALL`
    /// without consuming a `ByRegisterNotify` result.
    pub fn peek_locate_handle(&mut self, search: Search) -> Result<Vec<Handle>, Status> {
        self.locate(search, false)
    }

    /// `LocateHandle`/`LocateHandleBuffer`. `ByRegisterNotify` returns one
    /// handle and advances the registration.
    ///
    /// `EFI_NOT_FOUND` when nothing matches; `EFI_INVALID_PARAMETER` for an
    /// unknown registration key.
    pub fn locate_handle(&mut self, search: Search) -> Result<Vec<Handle>, Status> {
        self.locate(search, true)
    }

    fn locate(&mut self, search: Search, consume: bool) -> Result<Vec<Handle>, Status> {
        let v = match search {
            Search::AllHandles => self.all_handles(),
            Search::ByProtocol(g) => self.by_protocol(&g),
            Search::ByRegisterNotify(k) => self.reg_next(k, consume)?.into_iter().collect(),
        };
        if v.is_empty() {
            Err(Status::NOT_FOUND)
        } else {
            Ok(v)
        }
    }

    /// `LocateProtocol`: the first interface of `guid` (install order), or
    /// with a registration the next newly installed one for it (the
    /// registration's protocol is used, as in the reference implementation).
    /// `EFI_NOT_FOUND` when there is none or the key is unknown.
    pub fn locate_protocol(
        &mut self,
        guid: &Guid,
        registration: Option<Registration>,
    ) -> Result<usize, Status> {
        let (h, g) = match registration {
            Some(k) => {
                let g = self.regs.get(&k).map(|r| r.guid).ok_or(Status::NOT_FOUND)?;
                (self.reg_next(k, true)?.ok_or(Status::NOT_FOUND)?, g)
            }
            None => (
                *self.by_protocol(guid).first().ok_or(Status::NOT_FOUND)?,
                *guid,
            ),
        };
        self.protocol_interface(h, &g).ok_or(Status::NOT_FOUND)
    }

    /// `RegisterProtocolNotify`: `event` will be returned by later installs
    /// and reinstalls of `guid`. Handles already carrying `guid` are not
    /// reported. The caller checks that `event` is live ([`crate::BootState`] does).
    pub fn register_protocol_notify(
        &mut self,
        guid: Guid,
        event: EventId,
    ) -> Result<Registration, Status> {
        if self.regs.len() >= MAX_REGISTRATIONS || self.next_reg >= REGISTRATION_LIMIT {
            return Err(Status::OUT_OF_RESOURCES);
        }
        let key = Registration(NonZeroU64::new(self.next_reg).ok_or(Status::OUT_OF_RESOURCES)?);
        self.next_reg += 16;
        self.regs.insert(
            key,
            NotifyReg {
                guid,
                event,
                pending: VecDeque::new(),
            },
        );
        Ok(key)
    }

    /// Drops every registration that signals `event` (CloseEvent's hook).
    /// Returns how many were dropped.
    pub fn unregister_event(&mut self, event: EventId) -> usize {
        let before = self.regs.len();
        self.regs.retain(|_, r| r.event != event);
        before - self.regs.len()
    }

    /// `LocateDevicePath`: among handles supporting `guid` that also carry a
    /// device path, the one whose path is the longest node-wise prefix of
    /// the first instance of `path` (end nodes ignored). Returns it and how
    /// many bytes of `path` it matched; the firmware advances the caller's
    /// pointer by that much.
    ///
    /// `device_path_of(interface)` yields the bytes of a handle's device
    /// path interface; handles whose paths are unreadable or malformed are
    /// skipped. `EFI_INVALID_PARAMETER`: `path` is malformed.
    /// `EFI_NOT_FOUND`: no handle matches.
    pub fn locate_device_path<'a>(
        &self,
        guid: &Guid,
        path: &[u8],
        mut device_path_of: impl FnMut(usize) -> Option<&'a [u8]>,
    ) -> Result<(Handle, usize), Status> {
        let src = first_instance(path).map_err(|_| Status::INVALID_PARAMETER)?;
        let src_nodes = path.get(..src.len).ok_or(Status::INVALID_PARAMETER)?;
        let mut best: Option<(Handle, usize)> = None;
        for h in self.by_protocol(guid) {
            let Some(dp) = self.protocol_interface(h, &DEVICE_PATH_PROTOCOL) else {
                continue;
            };
            let Some(bytes) = device_path_of(dp) else {
                continue;
            };
            let Ok(inst) = first_instance(bytes) else {
                continue;
            };
            // Multi-instance handle paths never match a single instance.
            if inst.end.sub_type != END_ENTIRE {
                continue;
            }
            let Some(nodes) = bytes.get(..inst.len) else {
                continue;
            };
            // Both sides are well-formed node sequences, so a byte prefix
            // that ends where the handle's nodes end is a node-wise prefix.
            if src_nodes.starts_with(nodes) && best.is_none_or(|(_, n)| inst.len > n) {
                best = Some((h, inst.len));
            }
        }
        best.ok_or(Status::NOT_FOUND)
    }
}
