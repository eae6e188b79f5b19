//! UEFI boot-services bookkeeping for Ember: the handle database with its
//! protocol services, events, timers and task priority levels, with the
//! UEFI 2.10 semantics and status codes (§7.1, §7.3).
//!
//! There are no pointers here. Handles, events and registration keys are
//! opaque non-zero integers chosen by this crate; interfaces, notify
//! functions and contexts are integers chosen by the guest. The firmware's
//! `extern "efiapi"` functions lock a [`BootState`], translate pointers to
//! these values, call in, and translate the results back.
//!
//! Notify functions never run inside this crate: the firmware drains
//! [`Events::next_notification`] with its lock released after any call
//! that may have queued one (see [`BootState::dispatch`]'s docs), so notify
//! functions may call boot services.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod devpath;
pub mod events;
pub mod guid;
pub mod handles;
pub mod status;

use alloc::vec::Vec;

pub use events::{EventId, Events, Notification, TimerDelay, Tpl, TplError, WaitError};
pub use guid::Guid;
pub use handles::{Handle, HandleDb, Installed, OpenInfo, Registration, Search};
pub use status::Status;

/// Everything the boot services keep between calls.
#[derive(Debug, Default)]
pub struct BootState {
    /// Handles and protocols.
    pub handles: HandleDb,
    /// Events, timers, pending notifications and the current TPL.
    pub events: Events,
}

impl BootState {
    /// Empty database, no events, TPL_APPLICATION.
    pub fn new() -> BootState {
        BootState::default()
    }

    /// The current TPL.
    pub fn tpl(&self) -> Tpl {
        self.events.tpl()
    }

    fn signal_all(&mut self, events: &[EventId]) {
        for ev in events {
            // Registrations die with their event, so these are live.
            let _ = self.events.signal_event(*ev);
        }
    }

    /// `InstallProtocolInterface`, signaling protocol-notify events.
    /// Afterwards the firmware drains notifications at the entry TPL.
    pub fn install_protocol(
        &mut self,
        handle: Option<Handle>,
        guid: Guid,
        interface: usize,
    ) -> Result<Handle, Status> {
        let done = self.handles.install_protocol(handle, guid, interface)?;
        self.signal_all(&done.notify);
        Ok(done.handle)
    }

    /// `InstallMultipleProtocolInterfaces` (see [`HandleDb::install_multiple`]),
    /// signaling protocol-notify events.
    pub fn install_multiple<'a>(
        &mut self,
        handle: Option<Handle>,
        pairs: &[(Guid, usize)],
        device_path_of: impl FnMut(usize) -> Option<&'a [u8]>,
    ) -> Result<Handle, Status> {
        let done = self
            .handles
            .install_multiple(handle, pairs, device_path_of)?;
        self.signal_all(&done.notify);
        Ok(done.handle)
    }

    /// `ReinstallProtocolInterface`, signaling protocol-notify events.
    pub fn reinstall_protocol(
        &mut self,
        h: Handle,
        guid: &Guid,
        old: usize,
        new: usize,
    ) -> Result<(), Status> {
        let notify = self.handles.reinstall_protocol(h, guid, old, new)?;
        self.signal_all(&notify);
        Ok(())
    }

    /// `RegisterProtocolNotify`. `EFI_INVALID_PARAMETER` for an unknown event.
    pub fn register_protocol_notify(
        &mut self,
        guid: Guid,
        event: EventId,
    ) -> Result<Registration, Status> {
        if !self.events.is_valid(event) {
            return Err(Status::INVALID_PARAMETER);
        }
        self.handles.register_protocol_notify(guid, event)
    }

    /// `CloseEvent`, including its protocol-notify registrations.
    pub fn close_event(&mut self, ev: EventId) -> Result<(), Status> {
        self.events.close_event(ev)?;
        self.handles.unregister_event(ev);
        Ok(())
    }

    /// Next notification to run above `target`; see
    /// [`Events::next_notification`]. The firmware's pattern, used by
    /// RestoreTPL (with the restored level) and after every service that
    /// can signal (with the TPL it was entered at):
    ///
    /// ```
    /// # use ember_efi::{BootState, Tpl};
    /// # let mut st = BootState::new();
    /// let entry_tpl = st.tpl();
    /// // ... st.events.signal_event(ev) etc. ...
    /// while let Some(n) = st.dispatch(entry_tpl) {
    ///     // release the lock, call n.function(n.event, n.context), relock
    /// #   let _ = n;
    /// }
    /// ```
    pub fn dispatch(&mut self, target: Tpl) -> Option<Notification> {
        self.events.next_notification(target)
    }

    /// `LocateHandle`; see [`HandleDb::locate_handle`].
    pub fn locate_handle(&mut self, search: Search) -> Result<Vec<Handle>, Status> {
        self.handles.locate_handle(search)
    }
}
