//! The UEFI driver model: ConnectController and DisconnectController drive
//! the EFI_DRIVER_BINDING_PROTOCOL instances that images install (Ember's
//! own devices are bound at start-up and need none). Also the spec's
//! "disconnect, then retry" steps for UninstallProtocolInterface and
//! exclusive OpenProtocol.

use super::{guid, handle_of, handle_ptr, with};
use alloc::vec::Vec;
use ember_efi::Handle as DbHandle;
use r_efi::efi::{Handle, Status};
use r_efi::protocols::{device_path, driver_binding};

const BY_CHILD_CONTROLLER: u32 = 0x08;
const BY_DRIVER: u32 = 0x10;

/// Every driver binding in the database, highest version first.
fn all_bindings() -> Vec<*mut driver_binding::Protocol> {
    let g = guid(&driver_binding::PROTOCOL_GUID);
    let mut v: Vec<*mut driver_binding::Protocol> = with(|e| {
        let hs =
            e.st.handles
                .peek_locate_handle(ember_efi::Search::ByProtocol(g))
                .unwrap_or_default();
        hs.iter()
            .filter_map(|h| e.st.handles.protocol_interface(*h, &g))
            .map(|i| i as *mut driver_binding::Protocol)
            .collect()
    });
    // SAFETY: interfaces installed under the driver-binding GUID.
    v.sort_by_key(|&d| core::cmp::Reverse(unsafe { (*d).version }));
    v
}

fn binding_of(h: DbHandle) -> Option<*mut driver_binding::Protocol> {
    let g = guid(&driver_binding::PROTOCOL_GUID);
    with(|e| e.st.handles.protocol_interface(h, &g)).map(|i| i as *mut driver_binding::Protocol)
}

/// Open records on any protocol of `ctrl` with `attr` set: (agent, controller).
fn opens(ctrl: DbHandle, attr: u32) -> Vec<(DbHandle, Option<DbHandle>)> {
    with(|e| {
        let mut out = Vec::new();
        for g in e.st.handles.protocols_per_handle(ctrl).unwrap_or_default() {
            for o in
                e.st.handles
                    .open_protocol_information(ctrl, &g)
                    .unwrap_or_default()
            {
                if o.attributes & attr != 0 && !out.contains(&(o.agent, o.controller)) {
                    out.push((o.agent, o.controller));
                }
            }
        }
        out
    })
}

pub extern "efiapi" fn connect_controller(
    ctrl: Handle,
    drivers: *mut Handle,
    remaining: *mut device_path::Protocol,
    recursive: r_efi::efi::Boolean,
) -> Status {
    let Some(c) = handle_of(ctrl) else {
        return Status::INVALID_PARAMETER;
    };
    if !with(|e| e.st.handles.is_valid(c)) {
        return Status::INVALID_PARAMETER;
    }
    connect(c, drivers, remaining, recursive.into(), 0)
}

fn connect(
    c: DbHandle,
    drivers: *mut Handle,
    remaining: *mut device_path::Protocol,
    recursive: bool,
    depth: u32,
) -> Status {
    // A NULL-terminated list of driver image handles, tried first, in order.
    let mut bindings = Vec::new();
    if !drivers.is_null() {
        for i in 0..256 {
            // SAFETY: the caller's NULL-terminated handle list.
            let h = unsafe { *drivers.add(i) };
            let Some(h) = handle_of(h) else { break };
            bindings.extend(binding_of(h));
        }
    }
    for b in all_bindings() {
        if !bindings.contains(&b) {
            bindings.push(b);
        }
    }
    let mut started = false;
    for b in bindings {
        // SAFETY: a driver binding installed by an image; its functions are
        // called with no lock held, as they call back into boot services.
        unsafe {
            if ((*b).supported)(b, handle_ptr(c), remaining) == Status::SUCCESS
                && ((*b).start)(b, handle_ptr(c), remaining) == Status::SUCCESS
            {
                started = true;
            }
        }
    }
    if recursive && depth < 16 {
        for (child, _) in opens(c, BY_CHILD_CONTROLLER)
            .into_iter()
            .filter_map(|(_, ctl)| ctl.map(|x| (x, ())))
        {
            let _ = connect(
                child,
                core::ptr::null_mut(),
                core::ptr::null_mut(),
                true,
                depth + 1,
            );
        }
    }
    if started {
        Status::SUCCESS
    } else {
        Status::NOT_FOUND
    }
}

pub extern "efiapi" fn disconnect_controller(
    ctrl: Handle,
    driver: Handle,
    child: Handle,
) -> Status {
    let Some(c) = handle_of(ctrl) else {
        return Status::INVALID_PARAMETER;
    };
    if !with(|e| e.st.handles.is_valid(c)) {
        return Status::INVALID_PARAMETER;
    }
    let only_driver = handle_of(driver);
    let only_child = handle_of(child);
    if (!driver.is_null() && only_driver.is_none()) || (!child.is_null() && only_child.is_none()) {
        return Status::INVALID_PARAMETER;
    }
    disconnect(c, only_driver, only_child)
}

/// Stop the drivers managing `c` (all, or `only_driver`), their children
/// first, as DisconnectController requires.
pub fn disconnect(
    c: DbHandle,
    only_driver: Option<DbHandle>,
    only_child: Option<DbHandle>,
) -> Status {
    let mut agents: Vec<DbHandle> = opens(c, BY_DRIVER).into_iter().map(|(a, _)| a).collect();
    agents.dedup();
    if let Some(d) = only_driver {
        agents.retain(|a| *a == d);
    }
    for agent in agents {
        let Some(b) = binding_of(agent) else { continue };
        let children: Vec<Handle> = opens(c, BY_CHILD_CONTROLLER)
            .into_iter()
            .filter(|(a, ctl)| *a == agent && ctl.is_some())
            .filter_map(|(_, ctl)| ctl)
            .filter(|ch| only_child.is_none_or(|o| o == *ch))
            .map(handle_ptr)
            .collect();
        let mut list = children.clone();
        // SAFETY: the driver's own binding; children as the spec passes them.
        unsafe {
            if !list.is_empty() {
                let st = ((*b).stop)(b, handle_ptr(c), list.len(), list.as_mut_ptr());
                if st != Status::SUCCESS {
                    return st;
                }
            }
            // With all children gone (or none asked for), stop the driver on the controller.
            if only_child.is_none() {
                let st = ((*b).stop)(b, handle_ptr(c), 0, core::ptr::null_mut());
                if st != Status::SUCCESS {
                    return st;
                }
            }
        }
    }
    Status::SUCCESS
}
