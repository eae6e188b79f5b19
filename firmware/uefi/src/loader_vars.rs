//! systemd's Boot Loader Interface: when Ember itself starts an entry it is
//! the boot loader, and it sets the variables a loader sets, so that
//! `systemd-analyze` reports firmware and loader time and systemd knows the
//! partition it booted from. Volatile, boot-service and runtime access,
//! under the loader vendor GUID 4A67B082-0A4C-41CF-B6C7-440B29BB8C4F.
//! Loaders Ember starts (systemd-boot) overwrite them with their own.

use super::runtime;
use alloc::format;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use ember_uefi_data::vars::{BOOTSERVICE_ACCESS as BS, RUNTIME_ACCESS as RT};
use r_efi::efi::Guid;

const LOADER_GUID: Guid = Guid::from_fields(
    0x4a67_b082,
    0x0a4c,
    0x41cf,
    0xb6,
    0xc7,
    &[0x44, 0x0b, 0x29, 0xbb, 0x8c, 0x4f],
);

/// When Ember began looking for boot entries (µs since reset).
static INIT_US: AtomicU64 = AtomicU64::new(0);

/// Record the start of the boot-loader part of Ember's work.
pub fn mark_init() {
    INIT_US.store(
        crate::machine::machine().since_reset_us(),
        Ordering::Relaxed,
    );
}

fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain(core::iter::once(0))
        .flat_map(u16::to_le_bytes)
        .collect()
}

fn set(name: &str, value: &str) {
    runtime::set_volatile(name, &LOADER_GUID, BS | RT, &utf16z(value));
}

/// Set the loader variables just before Ember starts `path` from the
/// partition `part_uuid`.
pub fn publish(part_uuid: Option<&ember_part::Guid>, path: &str) {
    let init = INIT_US.load(Ordering::Relaxed);
    set("LoaderTimeInitUSec", &format!("{init}"));
    set(
        "LoaderTimeExecUSec",
        &format!("{}", crate::machine::machine().since_reset_us()),
    );
    set(
        "LoaderInfo",
        &format!("Ember {}", env!("CARGO_PKG_VERSION")),
    );
    set(
        "LoaderFirmwareInfo",
        &format!("Ember {}", env!("CARGO_PKG_VERSION")),
    );
    set("LoaderFirmwareType", "UEFI 2.70");
    set("LoaderImageIdentifier", &path.replace('/', "\\"));
    if let Some(g) = part_uuid {
        set("LoaderDevicePartUUID", &format!("{g}").to_lowercase());
    }
}
