//! The UEFI variable store (UEFI spec 8.2): `GetVariable`,
//! `GetNextVariableName`, `SetVariable` and `QueryVariableInfo` rules over
//! an in-memory map.
//!
//! Volatile for now: `NON_VOLATILE` variables are accepted and reported
//! with that attribute but live only until reset.
//!
//! Sizes: a variable's size is its name in bytes including the NUL plus
//! its data (as EDK2 counts, header aside). It is limited by
//! [`VarLimits::max_var_size`] and all variables together by
//! [`VarLimits::total`].

use crate::{status, Guid};
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::fmt;
use core::ops::Bound;

/// `EFI_VARIABLE_NON_VOLATILE`.
pub const NON_VOLATILE: u32 = 0x01;
/// `EFI_VARIABLE_BOOTSERVICE_ACCESS`.
pub const BOOTSERVICE_ACCESS: u32 = 0x02;
/// `EFI_VARIABLE_RUNTIME_ACCESS`.
pub const RUNTIME_ACCESS: u32 = 0x04;
/// `EFI_VARIABLE_HARDWARE_ERROR_RECORD`.
pub const HARDWARE_ERROR_RECORD: u32 = 0x08;
/// `EFI_VARIABLE_AUTHENTICATED_WRITE_ACCESS` (deprecated in UEFI 2.10).
pub const AUTHENTICATED_WRITE_ACCESS: u32 = 0x10;
/// `EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS`.
pub const TIME_BASED_AUTHENTICATED_WRITE_ACCESS: u32 = 0x20;
/// `EFI_VARIABLE_APPEND_WRITE`: a `SetVariable` flag, never stored.
pub const APPEND_WRITE: u32 = 0x40;
/// `EFI_VARIABLE_ENHANCED_AUTHENTICATED_ACCESS`.
pub const ENHANCED_AUTHENTICATED_ACCESS: u32 = 0x80;

/// Every attribute bit the spec defines; others are reserved.
const DEFINED: u32 = 0xFF;

/// `EFI_GLOBAL_VARIABLE` (spec 3.3): vendor GUID of `Boot####`, `BootOrder`, ...
pub const EFI_GLOBAL_VARIABLE: Guid = Guid::from_str_const("8be4df61-93ca-11d2-aa0d-00e098032b8c");

/// Why a variable service call failed; [`VarError::efi_status`] is the
/// status to return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VarError {
    /// No such (visible) variable, or the end of the enumeration.
    NotFound,
    /// The caller's buffer is too small; `needed` bytes are required.
    BufferTooSmall { needed: usize },
    /// The arguments break a rule of the spec; the text says which.
    InvalidParameter(&'static str),
    /// The attribute is not supported by Ember.
    Unsupported(&'static str),
    /// Authenticated writes cannot be verified (Ember has no key store).
    SecurityViolation,
    /// The variable is read-only (firmware-owned, or volatile after
    /// `ExitBootServices`).
    WriteProtected,
    /// The store quota would be exceeded.
    OutOfResources { needed: usize, available: usize },
}

impl VarError {
    /// The `EFI_STATUS` for this error.
    pub fn efi_status(&self) -> usize {
        match self {
            VarError::NotFound => status::NOT_FOUND,
            VarError::BufferTooSmall { .. } => status::BUFFER_TOO_SMALL,
            VarError::InvalidParameter(_) => status::INVALID_PARAMETER,
            VarError::Unsupported(_) => status::UNSUPPORTED,
            VarError::SecurityViolation => status::SECURITY_VIOLATION,
            VarError::WriteProtected => status::WRITE_PROTECTED,
            VarError::OutOfResources { .. } => status::OUT_OF_RESOURCES,
        }
    }
}

impl fmt::Display for VarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VarError::NotFound => f.write_str("variable not found"),
            VarError::BufferTooSmall { needed } => {
                write!(f, "buffer too small: {needed} bytes needed")
            }
            VarError::InvalidParameter(why) => write!(f, "invalid parameter: {why}"),
            VarError::Unsupported(why) => write!(f, "unsupported: {why}"),
            VarError::SecurityViolation => f.write_str(
                "authenticated variable write refused: Ember cannot verify time-based or enhanced authentication",
            ),
            VarError::WriteProtected => f.write_str("variable is read-only"),
            VarError::OutOfResources { needed, available } => write!(
                f,
                "variable store full: {needed} bytes needed, {available} available (delete variables or raise the quota)"
            ),
        }
    }
}

/// Size limits of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VarLimits {
    /// Largest single variable: name bytes (with NUL) plus data.
    pub max_var_size: usize,
    /// All variables together.
    pub total: usize,
}

impl Default for VarLimits {
    fn default() -> Self {
        VarLimits {
            max_var_size: 64 * 1024,
            total: 256 * 1024,
        }
    }
}

/// `QueryVariableInfo` results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VarInfo {
    /// `MaximumVariableStorageSize`.
    pub max_storage: u64,
    /// `RemainingVariableStorageSize`.
    pub remaining: u64,
    /// `MaximumVariableSize`.
    pub max_var_size: u64,
}

#[derive(Clone, Debug)]
struct Var {
    attrs: u32,
    data: Vec<u8>,
}

type Key = (Vec<u16>, Guid);

/// Name bytes with NUL plus data bytes, saturating.
fn var_size(name: &[u16], data_len: usize) -> usize {
    name.len()
        .saturating_add(1)
        .saturating_mul(2)
        .saturating_add(data_len)
}

/// The name in a `CHAR16` buffer handed over by a caller: the units before
/// the first NUL. No NUL inside the buffer is `EFI_INVALID_PARAMETER`
/// (spec 8.2.2, GetNextVariableName).
pub fn name_from_buffer(units: &[u16]) -> Result<&[u16], VarError> {
    let end = units
        .iter()
        .position(|&u| u == 0)
        .ok_or(VarError::InvalidParameter(
            "variable name has no NUL terminator within its buffer",
        ))?;
    Ok(units.get(..end).unwrap_or(&[]))
}

/// The variable store.
#[derive(Clone, Debug, Default)]
pub struct VarStore {
    vars: BTreeMap<Key, Var>,
    read_only: BTreeSet<Key>,
    limits: VarLimits,
    used: usize,
    runtime: bool,
}

impl VarStore {
    /// An empty store with the given limits.
    pub fn new(limits: VarLimits) -> Self {
        VarStore {
            limits,
            ..Self::default()
        }
    }

    /// Switches to runtime rules (after `ExitBootServices`): only
    /// `RUNTIME_ACCESS` variables are visible and only non-volatile
    /// runtime variables can be written.
    pub fn exit_boot_services(&mut self) {
        self.runtime = true;
    }

    /// Whether runtime rules apply.
    pub fn is_runtime(&self) -> bool {
        self.runtime
    }

    /// Bytes in use.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Every non-volatile variable, read-only ones included: (name, GUID,
    /// attributes, data). For mirroring the store to a newly attached medium.
    pub fn iter_non_volatile(&self) -> impl Iterator<Item = (&[u16], &Guid, u32, &[u8])> + '_ {
        self.vars
            .iter()
            .filter(|(_, v)| v.attrs & NON_VOLATILE != 0)
            .map(|((n, g), v)| (n.as_slice(), g, v.attrs, v.data.as_slice()))
    }

    fn visible(&self, v: &Var) -> bool {
        !self.runtime || v.attrs & RUNTIME_ACCESS != 0
    }

    /// `GetVariable`: the attributes and data, if `buf_len` bytes hold them.
    pub fn get(&self, name: &[u16], guid: &Guid, buf_len: usize) -> Result<(u32, &[u8]), VarError> {
        let v = self
            .vars
            .get(&(name.to_vec(), *guid))
            .filter(|v| self.visible(v))
            .ok_or(VarError::NotFound)?;
        if buf_len < v.data.len() {
            return Err(VarError::BufferTooSmall {
                needed: v.data.len(),
            });
        }
        Ok((v.attrs, &v.data))
    }

    /// `GetNextVariableName`: the variable after (`prev`, `prev_guid`) in
    /// a stable order (name, then GUID); an empty `prev` starts over.
    /// `buf_len` is the caller's buffer in bytes; the name needs
    /// `2 * (len + 1)` with its NUL.
    pub fn next_name(
        &self,
        prev: &[u16],
        prev_guid: &Guid,
        buf_len: usize,
    ) -> Result<(&[u16], Guid), VarError> {
        let mut iter = if prev.is_empty() {
            self.vars.range::<Key, _>(..)
        } else {
            let key = (prev.to_vec(), *prev_guid);
            // Spec 2.8+: a name/GUID that is not an existing variable is
            // EFI_INVALID_PARAMETER (it was undefined before).
            match self.vars.get(&key) {
                Some(v) if self.visible(v) => {}
                _ => {
                    return Err(VarError::InvalidParameter(
                        "previous name and GUID are not an existing variable",
                    ))
                }
            }
            self.vars.range((Bound::Excluded(key), Bound::Unbounded))
        };
        let ((name, guid), _) = iter
            .find(|(_, v)| self.visible(v))
            .ok_or(VarError::NotFound)?;
        let needed = name.len().saturating_add(1).saturating_mul(2);
        if buf_len < needed {
            return Err(VarError::BufferTooSmall { needed });
        }
        Ok((name, *guid))
    }

    /// Checks attribute bits common to `SetVariable` and
    /// `QueryVariableInfo` (spec 8.2.6 and 8.2.5).
    fn check_attrs(&self, attrs: u32) -> Result<(), VarError> {
        if attrs & !DEFINED != 0 {
            return Err(VarError::InvalidParameter(
                "reserved attribute bits are set",
            ));
        }
        if attrs & AUTHENTICATED_WRITE_ACCESS != 0 {
            // UEFI 2.10 8.2.6: the attribute is deprecated; EFI_UNSUPPORTED.
            return Err(VarError::Unsupported(
                "EFI_VARIABLE_AUTHENTICATED_WRITE_ACCESS is deprecated (UEFI 2.10)",
            ));
        }
        if attrs & RUNTIME_ACCESS != 0 && attrs & BOOTSERVICE_ACCESS == 0 {
            return Err(VarError::InvalidParameter(
                "RUNTIME_ACCESS requires BOOTSERVICE_ACCESS",
            ));
        }
        if attrs & HARDWARE_ERROR_RECORD != 0
            && attrs & (NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS)
                != NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS
        {
            return Err(VarError::InvalidParameter(
                "HARDWARE_ERROR_RECORD requires NON_VOLATILE, BOOTSERVICE_ACCESS and RUNTIME_ACCESS",
            ));
        }
        Ok(())
    }

    /// `SetVariable` (spec 8.2.6): create, replace, append to or delete.
    ///
    /// - Empty data without `APPEND_WRITE`, or no access attributes,
    ///   deletes (`NotFound` if absent); empty data with `APPEND_WRITE`
    ///   changes nothing.
    /// - Rewriting with different attributes is `InvalidParameter`.
    /// - Time-based and enhanced authenticated writes are refused with
    ///   `SecurityViolation`: Ember cannot verify their signatures, and
    ///   that is the status the spec gives for authentication that does
    ///   not pass.
    /// - A variable larger than `max_var_size` is `InvalidParameter` (the
    ///   spec's "DataSize exceeds the maximum allowed"); exceeding the
    ///   store quota is `OutOfResources`.
    pub fn set(
        &mut self,
        name: &[u16],
        guid: &Guid,
        attrs: u32,
        data: &[u8],
    ) -> Result<(), VarError> {
        if name.is_empty() {
            return Err(VarError::InvalidParameter("variable name is empty"));
        }
        if name.contains(&0) {
            return Err(VarError::InvalidParameter("variable name contains NUL"));
        }
        self.check_attrs(attrs)?;
        if attrs & (TIME_BASED_AUTHENTICATED_WRITE_ACCESS | ENHANCED_AUTHENTICATED_ACCESS) != 0 {
            return Err(VarError::SecurityViolation);
        }
        let key = (name.to_vec(), *guid);
        let existing = self.vars.get(&key).filter(|v| self.visible(v));
        if self.runtime {
            // Spec 8.2: after ExitBootServices only NV+RT variables can be
            // set; volatile runtime variables become read-only.
            if attrs & RUNTIME_ACCESS == 0 {
                return Err(VarError::InvalidParameter(
                    "after ExitBootServices only RUNTIME_ACCESS variables can be set",
                ));
            }
            if existing.is_some_and(|v| v.attrs & NON_VOLATILE == 0) {
                return Err(VarError::WriteProtected);
            }
            if attrs & NON_VOLATILE == 0 {
                return Err(VarError::InvalidParameter(
                    "after ExitBootServices volatile variables cannot be created",
                ));
            }
        }
        if self.read_only.contains(&key) {
            return Err(VarError::WriteProtected);
        }
        let append = attrs & APPEND_WRITE != 0;
        let stored_attrs = attrs & !APPEND_WRITE;
        let delete =
            (data.is_empty() && !append) || attrs & (BOOTSERVICE_ACCESS | RUNTIME_ACCESS) == 0;
        if delete {
            let old = existing.ok_or(VarError::NotFound)?;
            let old_size = var_size(name, old.data.len());
            self.vars.remove(&key);
            self.used = self.used.saturating_sub(old_size);
            return Ok(());
        }
        if let Some(old) = existing {
            if old.attrs != stored_attrs {
                return Err(VarError::InvalidParameter(
                    "an existing variable cannot change attributes; delete it first",
                ));
            }
        }
        if append && data.is_empty() {
            return Ok(());
        }
        let old_len = existing.map_or(0, |v| v.data.len());
        let new_len = if append {
            old_len.saturating_add(data.len())
        } else {
            data.len()
        };
        let new_size = var_size(name, new_len);
        if new_size > self.limits.max_var_size {
            return Err(VarError::InvalidParameter(
                "variable (name plus data) exceeds the maximum variable size",
            ));
        }
        let old_size = existing.map_or(0, |v| var_size(name, v.data.len()));
        let others = self.used.saturating_sub(old_size);
        let available = self.limits.total.saturating_sub(others);
        if new_size > available {
            return Err(VarError::OutOfResources {
                needed: new_size,
                available,
            });
        }
        match self.vars.get_mut(&key) {
            Some(v) if append => v.data.extend_from_slice(data),
            Some(v) => v.data = data.to_vec(),
            None => {
                self.vars.insert(
                    key,
                    Var {
                        attrs: stored_attrs,
                        data: data.to_vec(),
                    },
                );
            }
        }
        self.used = others.saturating_add(new_size);
        Ok(())
    }

    /// Creates or replaces a firmware-owned variable and makes it
    /// read-only to `SetVariable` (e.g. `SecureBoot`,
    /// `OsIndicationsSupported`). Attribute and size rules still apply.
    pub fn set_read_only(
        &mut self,
        name: &[u16],
        guid: &Guid,
        attrs: u32,
        data: &[u8],
    ) -> Result<(), VarError> {
        if data.is_empty() || attrs & APPEND_WRITE != 0 {
            return Err(VarError::InvalidParameter(
                "a read-only variable needs data and cannot be appended to",
            ));
        }
        let key = (name.to_vec(), *guid);
        let was_ro = self.read_only.remove(&key);
        let old = self.vars.remove(&key);
        let old_size = old.as_ref().map_or(0, |v| var_size(name, v.data.len()));
        self.used = self.used.saturating_sub(old_size);
        let runtime = core::mem::replace(&mut self.runtime, false);
        let r = self.set(name, guid, attrs, data);
        self.runtime = runtime;
        match r {
            Ok(()) => {
                self.read_only.insert(key);
                Ok(())
            }
            Err(e) => {
                // Put the previous state back.
                if let Some(v) = old {
                    self.used = self.used.saturating_add(old_size);
                    self.vars.insert(key.clone(), v);
                }
                if was_ro {
                    self.read_only.insert(key);
                }
                Err(e)
            }
        }
    }

    /// `QueryVariableInfo` for variables with `attrs` (spec 8.2.5).
    pub fn query_info(&self, attrs: u32) -> Result<VarInfo, VarError> {
        if attrs & (BOOTSERVICE_ACCESS | RUNTIME_ACCESS) == 0 {
            return Err(VarError::InvalidParameter("no access attribute given"));
        }
        self.check_attrs(attrs)?;
        if attrs & (TIME_BASED_AUTHENTICATED_WRITE_ACCESS | ENHANCED_AUTHENTICATED_ACCESS) != 0 {
            return Err(VarError::Unsupported(
                "authenticated variables are not supported",
            ));
        }
        if self.runtime && attrs & RUNTIME_ACCESS == 0 {
            return Err(VarError::InvalidParameter(
                "after ExitBootServices only RUNTIME_ACCESS can be queried",
            ));
        }
        Ok(VarInfo {
            max_storage: self.limits.total as u64,
            remaining: self.limits.total.saturating_sub(self.used) as u64,
            max_var_size: self.limits.max_var_size as u64,
        })
    }
}

/// Why [`VarStore::restore`] refused a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotError {
    /// Not a snapshot: wrong magic.
    Magic,
    /// The bytes end inside a record (the offset where one was expected).
    Truncated(usize),
    /// A record breaks a store rule (empty name, NUL in it, a name listed
    /// twice, or more than the limits allow).
    Invalid(&'static str),
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::Magic => write!(f, "not a variable snapshot"),
            SnapshotError::Truncated(at) => write!(f, "snapshot truncated at byte {at}"),
            SnapshotError::Invalid(why) => write!(f, "snapshot record invalid: {why}"),
        }
    }
}

const SNAPSHOT_MAGIC: &[u8; 8] = b"EMBVARS1";
const SNAPSHOT_RUNTIME: u32 = 1;
const RECORD_READ_ONLY: u32 = 1;

/// Little-endian reader over a snapshot that fails instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        let end = self
            .at
            .checked_add(n)
            .ok_or(SnapshotError::Truncated(self.at))?;
        let s = self
            .bytes
            .get(self.at..end)
            .ok_or(SnapshotError::Truncated(self.at))?;
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

impl VarStore {
    /// The whole store (every variable, read-only marks, the runtime rules
    /// flag; not the limits) as position-independent bytes: Ember
    /// rebuilds its store from them at the virtual address the OS gives
    /// it (`SetVirtualAddressMap`), where the old heap's pointers mean
    /// nothing.
    ///
    /// Layout, little-endian: magic `EMBVARS1`, flags (`u32`, bit 0:
    /// runtime rules), record count (`u32`); per record: name length in
    /// UCS-2 units, attributes, flags (bit 0: read-only) and data length
    /// (`u32` each), the GUID (16 bytes), the name, the data.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.used + self.vars.len() * 32);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        let flags = if self.runtime { SNAPSHOT_RUNTIME } else { 0 };
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&(self.vars.len() as u32).to_le_bytes());
        for (key, v) in &self.vars {
            let (name, guid) = key;
            let ro = if self.read_only.contains(key) {
                RECORD_READ_ONLY
            } else {
                0
            };
            for x in [name.len() as u32, v.attrs, ro, v.data.len() as u32] {
                out.extend_from_slice(&x.to_le_bytes());
            }
            out.extend_from_slice(&guid.0);
            for unit in name {
                out.extend_from_slice(&unit.to_le_bytes());
            }
            out.extend_from_slice(&v.data);
        }
        out
    }

    /// The store a [`snapshot`](Self::snapshot) describes, under `limits`.
    /// Hostile bytes give an error, never a panic: every length is checked
    /// against what is left.
    pub fn restore(limits: VarLimits, bytes: &[u8]) -> Result<VarStore, SnapshotError> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(8)? != SNAPSHOT_MAGIC {
            return Err(SnapshotError::Magic);
        }
        let flags = r.u32()?;
        let count = r.u32()?;
        let mut store = VarStore::new(limits);
        for _ in 0..count {
            let (units, attrs, ro, len) = (r.u32()?, r.u32()?, r.u32()?, r.u32()?);
            let mut guid = [0u8; 16];
            guid.copy_from_slice(r.take(16)?);
            let name_bytes = r.take((units as usize).saturating_mul(2))?;
            let name: Vec<u16> = name_bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            let data = r.take(len as usize)?;
            if name.is_empty() || name.contains(&0) {
                return Err(SnapshotError::Invalid("empty name or NUL in a name"));
            }
            let size = var_size(&name, data.len());
            if size > limits.max_var_size {
                return Err(SnapshotError::Invalid("a variable over the size limit"));
            }
            store.used = store.used.saturating_add(size);
            if store.used > limits.total {
                return Err(SnapshotError::Invalid("more data than the store holds"));
            }
            let key = (name, Guid(guid));
            if ro & RECORD_READ_ONLY != 0 {
                store.read_only.insert(key.clone());
            }
            let var = Var {
                attrs,
                data: data.to_vec(),
            };
            if store.vars.insert(key, var).is_some() {
                return Err(SnapshotError::Invalid("a variable listed twice"));
            }
        }
        if r.at != bytes.len() {
            return Err(SnapshotError::Invalid("bytes after the last record"));
        }
        store.runtime = flags & SNAPSHOT_RUNTIME != 0;
        Ok(store)
    }
}

#[cfg(test)]
mod tests;
