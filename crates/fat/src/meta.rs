//! Changing what a directory entry says about a file: its name and place
//! (rename/move), its attributes and timestamps, and the volume's label.
//! These back UEFI's `EFI_FILE_PROTOCOL.SetInfo`.

use crate::bpb::{BpbCommon, BpbExt16, BpbExt32};
use crate::dir::DELETED;
use crate::dir::{self, RawEntry, ATTR_DIRECTORY, ATTR_VOLUME_ID};
use crate::{read_bytes, write_bytes, DirRef, FatError, FatType, FileSystem, Resolved, Timestamp};
use alloc::string::{String, ToString};
use core::mem::{offset_of, size_of};
use ember_block::BlockDevice;
use zerocopy::{FromBytes, IntoBytes};

/// Attribute bits a caller may change (read-only, hidden, system, archive).
pub const SETTABLE_ATTRIBUTES: u8 = 0x01 | 0x02 | 0x04 | 0x20;

impl<D: BlockDevice> FileSystem<D> {
    fn entry_offset(&mut self, path: &str) -> Result<(DirRef, crate::DirEntry, u64), FatError> {
        let Resolved::Entry { parent, entry } = self.resolve(path)? else {
            return Err(FatError::InvalidName(path.to_string()));
        };
        let d = self.load_dir(parent)?;
        let off = self
            .slot_offset(&d, entry.slots.short)
            .ok_or(FatError::Internal("slot"))?;
        Ok((parent, entry, off))
    }

    fn read_raw(&mut self, off: u64) -> Result<RawEntry, FatError> {
        let mut b = [0u8; 32];
        read_bytes(&mut self.dev, off, &mut b)?;
        RawEntry::read_from_bytes(&b).map_err(|_| FatError::Internal("entry"))
    }

    fn write_raw(&mut self, off: u64, raw: &RawEntry) -> Result<(), FatError> {
        if self.dev.read_only() {
            return Err(FatError::ReadOnly);
        }
        write_bytes(&mut self.dev, off, raw.as_bytes())
    }

    /// Set the changeable attribute bits (see [`SETTABLE_ATTRIBUTES`]) of
    /// the file or directory at `path`; the directory bit cannot change.
    pub fn set_attributes(&mut self, path: &str, attributes: u8) -> Result<(), FatError> {
        let (_, _, off) = self.entry_offset(path)?;
        let mut raw = self.read_raw(off)?;
        raw.attr = (raw.attr & !SETTABLE_ATTRIBUTES) | (attributes & SETTABLE_ATTRIBUTES);
        self.write_raw(off, &raw)
    }

    /// Set creation, modification and access timestamps (any of them).
    pub fn set_times(
        &mut self,
        path: &str,
        created: Option<Timestamp>,
        modified: Option<Timestamp>,
        accessed: Option<Timestamp>,
    ) -> Result<(), FatError> {
        let (_, _, off) = self.entry_offset(path)?;
        let mut raw = self.read_raw(off)?;
        if let Some(t) = created {
            raw.create_date = t.date.into();
            raw.create_time = t.time.into();
            raw.create_tenths = t.tenths.min(199);
        }
        if let Some(t) = modified {
            raw.write_date = t.date.into();
            raw.write_time = t.time.into();
        }
        if let Some(t) = accessed {
            raw.access_date = t.date.into();
        }
        self.write_raw(off, &raw)
    }

    /// Rename or move `from` to `to` (whose parent must exist). Fails with
    /// `AlreadyExists` if `to` exists, and refuses to move a directory into
    /// itself. The entry keeps its data, attributes and timestamps.
    pub fn rename(&mut self, from: &str, to: &str) -> Result<(), FatError> {
        if self.dev.read_only() {
            return Err(FatError::ReadOnly);
        }
        let (old_parent, entry, old_off) = self.entry_offset(from)?;
        let norm = |p: &str| {
            p.trim_matches(['/', '\\'])
                .replace('\\', "/")
                .to_ascii_lowercase()
        };
        let (nf, nt) = (norm(from), norm(to));
        if nf == nt {
            return Ok(());
        }
        if entry.is_dir && nt.starts_with(&(nf.clone() + "/")) {
            return Err(FatError::InvalidName(to.to_string()));
        }
        let old = self.read_raw(old_off)?;
        let (new_parent, new_name) = self.parent_and_name(to)?;
        let new_name: String = new_name.to_string();
        // The new entry first: a failure leaves the old one in place.
        let new_off = self.add_entry(new_parent, &new_name, old.attr, entry.first_cluster)?;
        let mut raw = self.read_raw(new_off)?;
        let name = raw.name;
        raw = old;
        raw.name = name;
        raw.nt_res = 0; // case flags described the old short name
        self.write_raw(new_off, &raw)?;
        let d = self.load_dir(old_parent)?;
        for i in entry.slots.first..=entry.slots.short {
            let off = self.slot_offset(&d, i).ok_or(FatError::Internal("slot"))?;
            write_bytes(&mut self.dev, off, &[DELETED])?;
        }
        // A moved directory's ".." must name its new parent (0 for the root).
        if entry.is_dir && new_parent != old_parent {
            let sub = self.subdir_ref(&entry)?;
            let d = self.load_dir(sub)?;
            let listing = dir::parse(&d.data);
            if let Some(dotdot) = listing.entries.iter().find(|e| e.short_name == "..") {
                let off = self
                    .slot_offset(&d, dotdot.slots.short)
                    .ok_or(FatError::Internal("slot"))?;
                let mut r = self.read_raw(off)?;
                let c = match new_parent {
                    DirRef::Chain(c) if Some(c) != self.root_cluster() => c,
                    _ => 0,
                };
                r.cluster_hi = ((c >> 16) as u16).into();
                r.cluster_lo = (c as u16).into();
                self.write_raw(off, &r)?;
            }
        }
        Ok(())
    }

    /// Set the volume label (up to 11 characters of printable ASCII; stored
    /// upper-case, as FAT labels are): in the root's label entry (created if
    /// missing) and in the boot sector's copy.
    pub fn set_volume_label(&mut self, label: &str) -> Result<(), FatError> {
        if self.dev.read_only() {
            return Err(FatError::ReadOnly);
        }
        if label.len() > 11
            || !label
                .bytes()
                .all(|b| (0x20..0x7f).contains(&b) && !b"\"*+,./:;<=>?[\\]|".contains(&b))
        {
            return Err(FatError::InvalidName(label.to_string()));
        }
        let mut name = [b' '; 11];
        for (d, s) in name.iter_mut().zip(label.bytes()) {
            *d = s.to_ascii_uppercase();
        }
        // Root label entry.
        let root = self.root();
        let d = self.load_dir(root)?;
        let mut found = None;
        for i in 0..d.data.len() / 32 {
            let e = d
                .data
                .get(i * 32..i * 32 + 32)
                .ok_or(FatError::Internal("slot"))?;
            if e[0] == 0 {
                break;
            }
            let raw = RawEntry::read_from_bytes(e).map_err(|_| FatError::Internal("entry"))?;
            if e[0] != DELETED
                && raw.attr & (ATTR_VOLUME_ID | ATTR_DIRECTORY) == ATTR_VOLUME_ID
                && raw.attr != 0x0f
            {
                found = Some(self.slot_offset(&d, i).ok_or(FatError::Internal("slot"))?);
                break;
            }
        }
        match found {
            Some(off) => {
                let mut raw = self.read_raw(off)?;
                raw.name = name;
                self.write_raw(off, &raw)?;
            }
            None => {
                let off = self.add_label_entry(root)?;
                let raw = RawEntry {
                    name,
                    attr: ATTR_VOLUME_ID,
                    write_date: self.now.date.into(),
                    write_time: self.now.time.into(),
                    ..RawEntry::default()
                };
                self.write_raw(off, &raw)?;
            }
        }
        // Boot-sector copy (only where the extended BPB carries one).
        let ext = size_of::<BpbCommon>()
            + if self.fat_type() == FatType::Fat32 {
                offset_of!(BpbExt32, tail)
            } else {
                0
            };
        let mut sig = [0u8; 1];
        read_bytes(
            &mut self.dev,
            (ext + offset_of!(BpbExt16, boot_signature)) as u64,
            &mut sig,
        )?;
        if sig[0] == 0x29 {
            write_bytes(
                &mut self.dev,
                (ext + offset_of!(BpbExt16, volume_label)) as u64,
                &name,
            )?;
        }
        self.set_label_cache(label.trim_end().to_ascii_uppercase());
        Ok(())
    }
}
