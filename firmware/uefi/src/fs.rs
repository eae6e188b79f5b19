//! EFI_SIMPLE_FILE_SYSTEM_PROTOCOL and EFI_FILE_PROTOCOL over `ember-fat`.
//!
//! Every open file is a heap object whose first field is the protocol table
//! the caller holds; the volume (one FAT filesystem on one partition) is
//! shared by all files opened from it.

use super::block::SharedDisk;
use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::ffi::c_void;
use ember_block::Slice;
use ember_fat::{DirEntry, FatError, FileSystem, Timestamp};
use r_efi::efi::{Guid, Status, Time};
use r_efi::protocols::{file, simple_file_system};

pub type FatFs = FileSystem<Slice<SharedDisk>>;

/// One mounted FAT volume.
pub struct Volume {
    fs: RefCell<FatFs>,
    read_only: bool,
}

#[repr(C)]
pub struct SfsInstance {
    pub proto: simple_file_system::Protocol,
    vol: Rc<Volume>,
}

enum Node {
    File(ember_fat::File),
    Dir {
        entries: Option<Vec<DirEntry>>,
        next: usize,
    },
}

#[repr(C)]
struct FileInstance {
    proto: file::Protocol,
    vol: Rc<Volume>,
    /// Absolute path with `\` separators, without a leading one ("" = root).
    path: String,
    node: Node,
    pos: u64,
    writable: bool,
}

fn fat_status(e: &FatError) -> Status {
    match e {
        FatError::NotFound(_) => Status::NOT_FOUND,
        FatError::ReadOnly => Status::WRITE_PROTECTED,
        FatError::Device { .. } => Status::DEVICE_ERROR,
        FatError::IsADirectory(_) | FatError::NotADirectory(_) | FatError::InvalidName(_) => {
            Status::INVALID_PARAMETER
        }
        FatError::AlreadyExists(_) | FatError::DirectoryNotEmpty(_) => Status::ACCESS_DENIED,
        FatError::RootDirectoryFull | FatError::NoSpace => Status::VOLUME_FULL,
        FatError::FileTooLarge | FatError::TooLarge { .. } => Status::BAD_BUFFER_SIZE,
        // Everything else means the on-disk structures are damaged.
        _ => Status::VOLUME_CORRUPTED,
    }
}

/// Mount `part` and return a SimpleFileSystem instance for it.
pub fn mount(part: Slice<SharedDisk>) -> Result<Box<SfsInstance>, FatError> {
    let read_only = ember_block::BlockDevice::read_only(&part);
    let fs = FileSystem::mount(part)?;
    Ok(Box::new(SfsInstance {
        proto: simple_file_system::Protocol {
            revision: simple_file_system::REVISION,
            open_volume,
        },
        vol: Rc::new(Volume {
            fs: RefCell::new(fs),
            read_only,
        }),
    }))
}

fn new_file(vol: Rc<Volume>, path: String, node: Node, writable: bool) -> *mut file::Protocol {
    let f = Box::new(FileInstance {
        proto: file::Protocol {
            revision: file::REVISION2,
            open: f_open,
            close: f_close,
            delete: f_delete,
            read: f_read,
            write: f_write,
            get_position: f_get_position,
            set_position: f_set_position,
            get_info: f_get_info,
            set_info: f_set_info,
            flush: f_flush,
            open_ex: f_open_ex,
            read_ex: f_read_ex,
            write_ex: f_write_ex,
            flush_ex: f_flush_ex,
        },
        vol,
        path,
        node,
        pos: 0,
        writable,
    });
    Box::into_raw(f) as *mut file::Protocol
}

extern "efiapi" fn open_volume(
    this: *mut simple_file_system::Protocol,
    root: *mut *mut file::Protocol,
) -> Status {
    if this.is_null() || root.is_null() {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: `proto` is the first field of the #[repr(C)] SfsInstance the caller got.
    let me = unsafe { &*(this as *const SfsInstance) };
    let f = new_file(
        me.vol.clone(),
        String::new(),
        Node::Dir {
            entries: None,
            next: 0,
        },
        !me.vol.read_only,
    );
    // SAFETY: `root` is the caller's out pointer.
    unsafe { *root = f };
    Status::SUCCESS
}

/// # Safety
/// `this` must be a file handle Ember returned and that is not closed.
unsafe fn me<'a>(this: *mut file::Protocol) -> Option<&'a mut FileInstance> {
    // SAFETY: per the contract, `proto` is the first field of a live FileInstance.
    (!this.is_null()).then(|| unsafe { &mut *(this as *mut FileInstance) })
}

/// Read a NUL-terminated UCS-2 string (bounded).
///
/// # Safety
/// `p` must point at a NUL-terminated UCS-2 string.
pub unsafe fn read_ucs2(p: *const u16, max: usize) -> Option<String> {
    if p.is_null() {
        return None;
    }
    let mut units = Vec::new();
    for i in 0..max {
        // SAFETY: the string is NUL-terminated within `max` units (caller).
        let u = unsafe { *p.add(i) };
        if u == 0 {
            return String::from_utf16(&units).ok();
        }
        units.push(u);
    }
    None
}

/// Resolve `name` against `base`: `\` starts at the root, `.` and `..` walk.
fn resolve(base: &str, name: &str) -> Option<String> {
    let mut parts: Vec<&str> = if name.starts_with('\\') || name.starts_with('/') {
        Vec::new()
    } else {
        base.split('\\').filter(|s| !s.is_empty()).collect()
    };
    for seg in name.split(['\\', '/']) {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(parts.join("\\"))
}

fn fat_path(p: &str) -> String {
    alloc::format!("\\{p}")
}

extern "efiapi" fn f_open(
    this: *mut file::Protocol,
    out: *mut *mut file::Protocol,
    name: *mut u16,
    mode: u64,
    attrs: u64,
) -> Status {
    // SAFETY: `this` came from Ember (UEFI contract).
    let Some(me) = (unsafe { me(this) }) else {
        return Status::INVALID_PARAMETER;
    };
    if out.is_null() {
        return Status::INVALID_PARAMETER;
    }
    let valid = [
        file::MODE_READ,
        file::MODE_READ | file::MODE_WRITE,
        file::MODE_READ | file::MODE_WRITE | file::MODE_CREATE,
    ];
    if !valid.contains(&mode) || attrs & !file::VALID_ATTR != 0 {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: the caller passes a NUL-terminated file name.
    let Some(name) = (unsafe { read_ucs2(name, 4096) }) else {
        return Status::INVALID_PARAMETER;
    };
    let Some(path) = resolve(&me.path, &name) else {
        return Status::NOT_FOUND;
    };
    let writable = mode & file::MODE_WRITE != 0;
    if writable && me.vol.read_only {
        return Status::WRITE_PROTECTED;
    }
    let vol = me.vol.clone();
    let Ok(mut fs) = vol.fs.try_borrow_mut() else {
        return Status::DEVICE_ERROR;
    };
    let node = if path.is_empty() {
        Node::Dir {
            entries: None,
            next: 0,
        }
    } else {
        match fs.stat(&fat_path(&path)) {
            Ok(e) if e.is_dir => Node::Dir {
                entries: None,
                next: 0,
            },
            Ok(_) => match fs.open(&fat_path(&path)) {
                Ok(f) => Node::File(f),
                Err(e) => return fat_status(&e),
            },
            Err(FatError::NotFound(_)) if mode & file::MODE_CREATE != 0 => {
                if attrs & file::DIRECTORY != 0 {
                    if let Err(e) = fs.mkdir(&fat_path(&path)) {
                        return fat_status(&e);
                    }
                    Node::Dir {
                        entries: None,
                        next: 0,
                    }
                } else {
                    match fs.create_file(&fat_path(&path)) {
                        Ok(f) => Node::File(f),
                        Err(e) => return fat_status(&e),
                    }
                }
            }
            Err(e) => return fat_status(&e),
        }
    };
    drop(fs);
    let f = new_file(vol, path, node, writable);
    // SAFETY: `out` is the caller's out pointer (checked non-null).
    unsafe { *out = f };
    Status::SUCCESS
}

extern "efiapi" fn f_close(this: *mut file::Protocol) -> Status {
    if this.is_null() {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: handles are boxes Ember leaked in `new_file`; Close ends them.
    let f = unsafe { Box::from_raw(this as *mut FileInstance) };
    if f.writable {
        if let Ok(mut fs) = f.vol.fs.try_borrow_mut() {
            let _ = fs.flush();
        }
    }
    Status::SUCCESS
}

extern "efiapi" fn f_delete(this: *mut file::Protocol) -> Status {
    if this.is_null() {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: as in Close: Delete also closes the handle.
    let f = unsafe { Box::from_raw(this as *mut FileInstance) };
    if !f.writable || f.path.is_empty() {
        return Status::WARN_DELETE_FAILURE;
    }
    let Ok(mut fs) = f.vol.fs.try_borrow_mut() else {
        return Status::WARN_DELETE_FAILURE;
    };
    match fs.remove(&fat_path(&f.path)).and_then(|_| fs.flush()) {
        Ok(()) => Status::SUCCESS,
        Err(_) => Status::WARN_DELETE_FAILURE,
    }
}

/// Bytes of an EFI_FILE_INFO for `name`.
fn file_info_size(name: &str) -> usize {
    80 + (name.encode_utf16().count() + 1) * 2
}

fn efi_time(t: &Timestamp) -> Time {
    Time {
        year: 1980 + (t.date >> 9),
        month: ((t.date >> 5) & 0xf) as u8,
        day: (t.date & 0x1f) as u8,
        hour: (t.time >> 11) as u8,
        minute: ((t.time >> 5) & 0x3f) as u8,
        second: ((t.time & 0x1f) * 2) as u8 + t.tenths / 100,
        pad1: 0,
        nanosecond: u32::from(t.tenths % 100) * 10_000_000,
        timezone: 0x07ff, // EFI_UNSPECIFIED_TIMEZONE
        daylight: 0,
        pad2: 0,
    }
}

fn time_bytes(t: &Time) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..2].copy_from_slice(&t.year.to_le_bytes());
    b[2] = t.month;
    b[3] = t.day;
    b[4] = t.hour;
    b[5] = t.minute;
    b[6] = t.second;
    b[8..12].copy_from_slice(&t.nanosecond.to_le_bytes());
    b[12..14].copy_from_slice(&t.timezone.to_le_bytes());
    b[14] = t.daylight;
    b
}

/// What EFI_FILE_INFO says about a file or directory.
struct Meta {
    size: u64,
    attributes: u8,
    is_dir: bool,
    created: Timestamp,
    accessed: Timestamp,
    modified: Timestamp,
}

impl Meta {
    fn of(e: &DirEntry) -> Meta {
        Meta {
            size: e.size,
            attributes: e.attributes,
            is_dir: e.is_dir,
            created: e.created,
            accessed: e.accessed,
            modified: e.modified,
        }
    }
    /// The root directory has no entry of its own.
    fn root() -> Meta {
        let t = Timestamp::default();
        Meta {
            size: 0,
            attributes: 0x10,
            is_dir: true,
            created: t,
            accessed: t,
            modified: t,
        }
    }
}

/// Serialise EFI_FILE_INFO (UEFI spec 13.5.16).
fn file_info(m: &Meta, name: &str, cluster: u64) -> Vec<u8> {
    let size = file_info_size(name);
    let mut b = Vec::with_capacity(size);
    b.extend_from_slice(&(size as u64).to_le_bytes());
    b.extend_from_slice(&m.size.to_le_bytes());
    b.extend_from_slice(&m.size.next_multiple_of(cluster.max(1)).to_le_bytes());
    b.extend_from_slice(&time_bytes(&efi_time(&m.created)));
    b.extend_from_slice(&time_bytes(&efi_time(&m.accessed)));
    b.extend_from_slice(&time_bytes(&efi_time(&m.modified)));
    let mut attr = u64::from(m.attributes) & file::VALID_ATTR;
    if m.is_dir {
        attr |= file::DIRECTORY;
    }
    b.extend_from_slice(&attr.to_le_bytes());
    for u in name.encode_utf16().chain(core::iter::once(0)) {
        b.extend_from_slice(&u.to_le_bytes());
    }
    b
}

/// Copy `data` out through a UEFI (size, buffer) pair.
///
/// # Safety
/// `size` must be valid; `buf` must have `*size` writable bytes.
unsafe fn give(data: &[u8], size: *mut usize, buf: *mut c_void) -> Status {
    // SAFETY: caller contract.
    unsafe {
        if *size < data.len() {
            *size = data.len();
            return Status::BUFFER_TOO_SMALL;
        }
        if buf.is_null() {
            return Status::INVALID_PARAMETER;
        }
        core::ptr::copy_nonoverlapping(data.as_ptr(), buf as *mut u8, data.len());
        *size = data.len();
    }
    Status::SUCCESS
}

extern "efiapi" fn f_read(this: *mut file::Protocol, size: *mut usize, buf: *mut c_void) -> Status {
    // SAFETY: `this` came from Ember.
    let Some(me) = (unsafe { me(this) }) else {
        return Status::INVALID_PARAMETER;
    };
    if size.is_null() {
        return Status::INVALID_PARAMETER;
    }
    let Ok(mut fs) = me.vol.fs.try_borrow_mut() else {
        return Status::DEVICE_ERROR;
    };
    let cluster = u64::from(fs.cluster_size());
    match &mut me.node {
        Node::File(f) => {
            if me.pos > f.size() {
                return Status::DEVICE_ERROR;
            }
            // SAFETY: `size` is valid (checked) per the caller.
            let want = unsafe { *size };
            if want == 0 {
                return Status::SUCCESS;
            }
            if buf.is_null() {
                return Status::INVALID_PARAMETER;
            }
            // SAFETY: the caller provides `*size` writable bytes.
            let b = unsafe { core::slice::from_raw_parts_mut(buf as *mut u8, want) };
            match fs.read_at(f, me.pos, b) {
                Ok(n) => {
                    me.pos += n as u64;
                    // SAFETY: as above.
                    unsafe { *size = n };
                    Status::SUCCESS
                }
                Err(e) => fat_status(&e),
            }
        }
        Node::Dir { entries, next } => {
            if entries.is_none() {
                match fs.read_dir(&fat_path(&me.path)) {
                    Ok(l) => {
                        *entries = Some(
                            l.into_iter()
                                .filter(|e| e.name != "." && e.name != "..")
                                .collect(),
                        )
                    }
                    Err(e) => return fat_status(&e),
                }
            }
            let list = entries.as_deref().unwrap_or(&[]);
            let Some(e) = list.get(*next) else {
                // End of directory: zero bytes, success.
                // SAFETY: `size` valid per the caller.
                unsafe { *size = 0 };
                return Status::SUCCESS;
            };
            let info = file_info(&Meta::of(e), &e.name, cluster);
            // SAFETY: (size, buf) per the caller.
            let st = unsafe { give(&info, size, buf) };
            if st == Status::SUCCESS {
                *next += 1;
            }
            st
        }
    }
}

extern "efiapi" fn f_write(
    this: *mut file::Protocol,
    size: *mut usize,
    buf: *mut c_void,
) -> Status {
    // SAFETY: `this` came from Ember.
    let Some(me) = (unsafe { me(this) }) else {
        return Status::INVALID_PARAMETER;
    };
    if size.is_null() {
        return Status::INVALID_PARAMETER;
    }
    let Node::File(f) = &mut me.node else {
        return Status::UNSUPPORTED;
    };
    if me.vol.read_only {
        return Status::WRITE_PROTECTED;
    }
    if !me.writable {
        return Status::ACCESS_DENIED;
    }
    // SAFETY: `size` valid per the caller.
    let n = unsafe { *size };
    if n == 0 {
        return Status::SUCCESS;
    }
    if buf.is_null() {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: the caller provides `n` readable bytes.
    let data = unsafe { core::slice::from_raw_parts(buf as *const u8, n) };
    let Ok(mut fs) = me.vol.fs.try_borrow_mut() else {
        return Status::DEVICE_ERROR;
    };
    match fs.write_at(f, me.pos, data) {
        Ok(w) => {
            me.pos += w as u64;
            // SAFETY: as above.
            unsafe { *size = w };
            Status::SUCCESS
        }
        Err(e) => fat_status(&e),
    }
}

extern "efiapi" fn f_get_position(this: *mut file::Protocol, pos: *mut u64) -> Status {
    // SAFETY: `this` came from Ember.
    let Some(me) = (unsafe { me(this) }) else {
        return Status::INVALID_PARAMETER;
    };
    if pos.is_null() {
        return Status::INVALID_PARAMETER;
    }
    if matches!(me.node, Node::Dir { .. }) {
        return Status::UNSUPPORTED;
    }
    // SAFETY: out pointer checked.
    unsafe { *pos = me.pos };
    Status::SUCCESS
}

extern "efiapi" fn f_set_position(this: *mut file::Protocol, pos: u64) -> Status {
    // SAFETY: `this` came from Ember.
    let Some(me) = (unsafe { me(this) }) else {
        return Status::INVALID_PARAMETER;
    };
    match &mut me.node {
        Node::File(f) => {
            me.pos = if pos == u64::MAX { f.size() } else { pos };
            Status::SUCCESS
        }
        // Directories may only be rewound.
        Node::Dir { next, .. } if pos == 0 => {
            *next = 0;
            Status::SUCCESS
        }
        Node::Dir { .. } => Status::UNSUPPORTED,
    }
}

fn guid_eq(p: *mut Guid, g: &Guid) -> bool {
    // SAFETY: callers pass a valid GUID pointer (checked non-null first).
    !p.is_null() && unsafe { (*p).as_bytes() == g.as_bytes() }
}

fn label_of(fs: &FatFs) -> String {
    fs.volume_label().map(String::from).unwrap_or_default()
}

extern "efiapi" fn f_get_info(
    this: *mut file::Protocol,
    ty: *mut Guid,
    size: *mut usize,
    buf: *mut c_void,
) -> Status {
    // SAFETY: `this` came from Ember.
    let Some(me) = (unsafe { me(this) }) else {
        return Status::INVALID_PARAMETER;
    };
    if size.is_null() || ty.is_null() {
        return Status::INVALID_PARAMETER;
    }
    let Ok(mut fs) = me.vol.fs.try_borrow_mut() else {
        return Status::DEVICE_ERROR;
    };
    let data = if guid_eq(ty, &file::INFO_ID) {
        let meta = if me.path.is_empty() {
            Meta::root()
        } else {
            match fs.stat(&fat_path(&me.path)) {
                Ok(e) => Meta::of(&e),
                Err(e) => return fat_status(&e),
            }
        };
        let name = me.path.rsplit('\\').next().unwrap_or("");
        file_info(&meta, name, u64::from(fs.cluster_size()))
    } else if guid_eq(ty, &file::SYSTEM_INFO_ID) {
        let label = label_of(&fs);
        let cluster = u64::from(fs.cluster_size());
        let dev = fs.device_mut();
        let total = ember_block::BlockDevice::size_bytes(dev);
        let free = fs
            .free_clusters()
            .map(|c| u64::from(c) * cluster)
            .unwrap_or(0);
        let mut b = Vec::new();
        let sz = 36 + (label.encode_utf16().count() + 1) * 2;
        b.extend_from_slice(&(sz as u64).to_le_bytes());
        b.push(u8::from(me.vol.read_only));
        b.extend_from_slice(&[0; 7]);
        b.extend_from_slice(&total.to_le_bytes());
        b.extend_from_slice(&free.to_le_bytes());
        b.extend_from_slice(&(cluster as u32).to_le_bytes());
        for u in label.encode_utf16().chain(core::iter::once(0)) {
            b.extend_from_slice(&u.to_le_bytes());
        }
        b
    } else if guid_eq(ty, &file::SYSTEM_VOLUME_LABEL_ID) {
        let mut b = Vec::new();
        for u in label_of(&fs).encode_utf16().chain(core::iter::once(0)) {
            b.extend_from_slice(&u.to_le_bytes());
        }
        b
    } else {
        return Status::UNSUPPORTED;
    };
    // SAFETY: (size, buf) per the caller.
    unsafe { give(&data, size, buf) }
}

/// EFI_TIME (16 bytes) to a FAT timestamp; None for an all-zero time,
/// which SetInfo callers pass to mean "leave unchanged", or a date FAT
/// cannot hold.
fn fat_time(b: &[u8]) -> Option<Timestamp> {
    if b.iter().all(|&x| x == 0) || b.len() < 16 {
        return None;
    }
    let year = u16::from_le_bytes([b[0], b[1]]);
    let (month, day, hour, minute, second) = (b[2], b[3], b[4], b[5], b[6]);
    let nanos = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
    if !(1980..=2107).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    Some(Timestamp {
        date: ((year - 1980) << 9) | (u16::from(month) << 5) | u16::from(day),
        time: (u16::from(hour) << 11) | (u16::from(minute) << 5) | u16::from(second / 2),
        tenths: (second % 2) * 100 + (nanos / 10_000_000).min(99) as u8,
    })
}

fn ucs2_units(b: &[u8]) -> Vec<u16> {
    b.chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect()
}

extern "efiapi" fn f_set_info(
    this: *mut file::Protocol,
    ty: *mut Guid,
    size: usize,
    buf: *mut c_void,
) -> Status {
    // SAFETY: `this` came from Ember.
    let Some(me) = (unsafe { me(this) }) else {
        return Status::INVALID_PARAMETER;
    };
    if ty.is_null() || buf.is_null() {
        return Status::INVALID_PARAMETER;
    }
    if me.vol.read_only {
        return Status::WRITE_PROTECTED;
    }
    // SAFETY: the caller provides `size` bytes of the info structure.
    let info = unsafe { core::slice::from_raw_parts(buf as *const u8, size) };
    let Ok(mut fs) = me.vol.fs.try_borrow_mut() else {
        return Status::DEVICE_ERROR;
    };
    let label_from =
        |units: Vec<u16>| String::from_utf16(&units).map_err(|_| Status::INVALID_PARAMETER);
    if guid_eq(ty, &file::SYSTEM_INFO_ID) || guid_eq(ty, &file::SYSTEM_VOLUME_LABEL_ID) {
        // Of the file-system info, only the volume label can change.
        let at = if guid_eq(ty, &file::SYSTEM_INFO_ID) {
            36
        } else {
            0
        };
        let Some(raw) = info.get(at..) else {
            return Status::BAD_BUFFER_SIZE;
        };
        let label = match label_from(ucs2_units(raw)) {
            Ok(l) => l,
            Err(s) => return s,
        };
        return match fs.set_volume_label(&label).and_then(|_| fs.flush()) {
            Ok(()) => Status::SUCCESS,
            Err(e) => fat_status(&e),
        };
    }
    if !guid_eq(ty, &file::INFO_ID) {
        return Status::UNSUPPORTED;
    }
    if size < 82 {
        return Status::BAD_BUFFER_SIZE;
    }
    if !me.writable {
        return Status::ACCESS_DENIED;
    }
    if me.path.is_empty() {
        // The root has no directory entry to change.
        return Status::ACCESS_DENIED;
    }
    let new_size = u64::from_le_bytes(info[8..16].try_into().unwrap_or([0; 8]));
    let attr = u64::from_le_bytes(info[72..80].try_into().unwrap_or([0; 8]));
    let Ok(name) = String::from_utf16(&ucs2_units(&info[80..])) else {
        return Status::INVALID_PARAMETER;
    };
    if name.is_empty() || attr & !file::VALID_ATTR != 0 {
        return Status::INVALID_PARAMETER;
    }
    let is_dir = matches!(me.node, Node::Dir { .. });
    if (attr & file::DIRECTORY != 0) != is_dir {
        return Status::ACCESS_DENIED; // a file cannot become a directory or back
    }
    // A file marked read-only may change only its Attribute (as EDK2's FAT
    // driver rules; the spec says the same of files opened read-only).
    let cur = match fs.stat(&fat_path(&me.path)) {
        Ok(e) => e,
        Err(e) => return fat_status(&e),
    };
    let cur_name = me.path.rsplit('\\').next().unwrap_or("");
    if cur.attributes & 0x01 != 0 && (name != cur_name || (!is_dir && new_size != cur.size)) {
        return Status::ACCESS_DENIED;
    }
    // Rename or move: a name with separators is a path (relative to the
    // file's directory, or absolute with a leading `\`).
    if name != cur_name {
        let dir = me.path.rsplit_once('\\').map_or("", |(d, _)| d);
        let Some(dest) = resolve(dir, &name) else {
            return Status::ACCESS_DENIED;
        };
        if let Err(e) = fs.rename(&fat_path(&me.path), &fat_path(&dest)) {
            return fat_status(&e);
        }
        me.path = dest;
    }
    let path = fat_path(&me.path);
    if let Node::File(f) = &mut me.node {
        if new_size != f.size() {
            if let Err(e) = fs.set_len(f, new_size) {
                return fat_status(&e);
            }
        }
    }
    let created = fat_time(&info[24..40]);
    let accessed = fat_time(&info[40..56]);
    let modified = fat_time(&info[56..72]);
    let r = fs
        .set_attributes(&path, attr as u8 & ember_fat::SETTABLE_ATTRIBUTES)
        .and_then(|_| fs.set_times(&path, created, modified, accessed))
        .and_then(|_| fs.flush());
    match r {
        Ok(()) => Status::SUCCESS,
        Err(e) => fat_status(&e),
    }
}

extern "efiapi" fn f_flush(this: *mut file::Protocol) -> Status {
    // SAFETY: `this` came from Ember.
    let Some(me) = (unsafe { me(this) }) else {
        return Status::INVALID_PARAMETER;
    };
    if !me.writable {
        return Status::ACCESS_DENIED;
    }
    let Ok(mut fs) = me.vol.fs.try_borrow_mut() else {
        return Status::DEVICE_ERROR;
    };
    match fs.flush() {
        Ok(()) => Status::SUCCESS,
        Err(e) => fat_status(&e),
    }
}

/// Complete an asynchronous request synchronously: Ember has no background I/O.
///
/// # Safety
/// `token` must be null or a caller-owned EFI_FILE_IO_TOKEN.
unsafe fn complete(token: *mut file::IoToken, st: Status) -> Status {
    if token.is_null() {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: caller contract.
    unsafe {
        (*token).status = st;
        super::signal_event_raw((*token).event);
    }
    Status::SUCCESS
}

extern "efiapi" fn f_open_ex(
    this: *mut file::Protocol,
    out: *mut *mut file::Protocol,
    name: *mut u16,
    mode: u64,
    attrs: u64,
    token: *mut file::IoToken,
) -> Status {
    let st = f_open(this, out, name, mode, attrs);
    // SAFETY: token per the caller.
    unsafe { complete(token, st) }
}

extern "efiapi" fn f_read_ex(this: *mut file::Protocol, token: *mut file::IoToken) -> Status {
    if token.is_null() {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: the caller's token.
    let st = unsafe { f_read(this, &mut (*token).buffer_size, (*token).buffer) };
    // SAFETY: as above.
    unsafe { complete(token, st) }
}

extern "efiapi" fn f_write_ex(this: *mut file::Protocol, token: *mut file::IoToken) -> Status {
    if token.is_null() {
        return Status::INVALID_PARAMETER;
    }
    // SAFETY: the caller's token.
    let st = unsafe { f_write(this, &mut (*token).buffer_size, (*token).buffer) };
    // SAFETY: as above.
    unsafe { complete(token, st) }
}

extern "efiapi" fn f_flush_ex(this: *mut file::Protocol, token: *mut file::IoToken) -> Status {
    let st = f_flush(this);
    // SAFETY: token per the caller.
    unsafe { complete(token, st) }
}
