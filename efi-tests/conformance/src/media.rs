//! BlockIo and DiskIo on the boot disk and partition, and the
//! SimpleFileSystem/File protocols on the ESP the image was loaded from.

use crate::out::{check, expect_eq, expect_status, info, St};
use crate::util::{self, handle_protocol, image, u16z};
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::ptr::null_mut;
use r_efi::efi;
use r_efi::protocols::{block_io, device_path, disk_io, file, loaded_image, simple_file_system};

type File = *mut file::Protocol;

pub unsafe fn open_root(dev: efi::Handle) -> Option<File> {
    let fs =
        handle_protocol::<simple_file_system::Protocol>(dev, &simple_file_system::PROTOCOL_GUID)?;
    let mut root: File = null_mut();
    let s = ((*fs).open_volume)(fs, &mut root);
    (s == efi::Status::SUCCESS).then_some(root)
}

pub unsafe fn open(dir: File, name: &str, mode: u64, attr: u64) -> Result<File, efi::Status> {
    let mut n = u16z(name);
    let mut f: File = null_mut();
    let s = ((*dir).open)(dir, &mut f, n.as_mut_ptr(), mode, attr);
    if s == efi::Status::SUCCESS {
        Ok(f)
    } else {
        Err(s)
    }
}

pub unsafe fn read_all(f: File) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut chunk = alloc::vec![0u8; 64 * 1024];
    loop {
        let mut n = chunk.len();
        if ((*f).read)(f, &mut n, chunk.as_mut_ptr().cast()) != efi::Status::SUCCESS {
            return None;
        }
        if n == 0 {
            return Some(out);
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// GetInfo into a u64-aligned buffer, sizing it first.
unsafe fn get_info(f: File, id: &efi::Guid) -> (efi::Status, usize, Vec<u64>) {
    let mut g = *id;
    let mut size = 0usize;
    let s0 = ((*f).get_info)(f, &mut g, &mut size, null_mut());
    if s0 != efi::Status::BUFFER_TOO_SMALL {
        return (s0, size, Vec::new());
    }
    let mut buf = alloc::vec![0u64; size / 8 + 1];
    let mut size2 = size;
    let s = ((*f).get_info)(f, &mut g, &mut size2, buf.as_mut_ptr().cast());
    if s != efi::Status::SUCCESS {
        return (s, size, Vec::new());
    }
    (s0, size, buf)
}

/// EFI_FILE_INFO copied from `fi` with `name` as its FileName.
fn info_with_name(fi: &[u64], name: &str) -> Vec<u8> {
    let fixed: Vec<u8> = fi.iter().flat_map(|w| w.to_le_bytes()).take(80).collect();
    let mut b = fixed;
    for u in util::u16z(name) {
        b.extend_from_slice(&u.to_le_bytes());
    }
    let n = b.len() as u64;
    b[..8].copy_from_slice(&n.to_le_bytes());
    b
}

unsafe fn set_info(f: File, id: &efi::Guid, b: &mut [u8]) -> efi::Status {
    let mut g = *id;
    ((*f).set_info)(f, &mut g, b.len(), b.as_mut_ptr().cast())
}

/// SetInfo beyond sizes: renaming through FileName, the read-only
/// attribute, and the volume label (each restored afterwards).
unsafe fn set_info_checks(root: File, rw: u64) {
    let Ok(f) = open(root, "\\ember-conformance.txt", rw, 0) else {
        return;
    };
    let (_, _, fi) = get_info(f, &file::INFO_ID);
    if fi.is_empty() {
        ((*f).close)(f);
        return;
    }
    let mut b = info_with_name(&fi, "ember-renamed.txt");
    expect_status(
        "File SetInfo(EFI_FILE_INFO) with a new FileName renames the file",
        set_info(f, &file::INFO_ID, &mut b),
        efi::Status::SUCCESS,
    );
    ((*f).close)(f);
    let old = open(root, "\\ember-conformance.txt", file::MODE_READ, 0);
    check(
        "After the rename the old name is gone",
        old.is_err(),
        format_args!("old name still opens"),
    );
    if let Ok(o) = old {
        ((*o).close)(o);
    }
    let Ok(f) = open(root, "\\ember-renamed.txt", rw, 0) else {
        check(
            "After the rename the new name opens",
            false,
            format_args!("new name does not open"),
        );
        return;
    };
    let (_, _, fi) = get_info(f, &file::INFO_ID);
    let mut b = info_with_name(&fi, "ember-renamed.txt");
    let attr = u64::from_le_bytes(b[72..80].try_into().unwrap_or([0; 8]));
    b[72..80].copy_from_slice(&(attr | file::READ_ONLY).to_le_bytes());
    expect_status(
        "File SetInfo sets the READ_ONLY attribute",
        set_info(f, &file::INFO_ID, &mut b),
        efi::Status::SUCCESS,
    );
    let (_, _, fi2) = get_info(f, &file::INFO_ID);
    check(
        "EFI_FILE_INFO Attribute shows READ_ONLY after SetInfo",
        fi2.get(9).is_some_and(|a| a & file::READ_ONLY != 0),
        format_args!("attribute {:?}", fi2.get(9)),
    );
    // A read-only file may change only its Attribute.
    let mut b = info_with_name(&fi, "ember-conformance.txt");
    b[72..80].copy_from_slice(&(attr | file::READ_ONLY).to_le_bytes());
    expect_status(
        "File SetInfo renaming a READ_ONLY file is ACCESS_DENIED",
        set_info(f, &file::INFO_ID, &mut b),
        efi::Status::ACCESS_DENIED,
    );
    // Undo: clear READ_ONLY, then take the old name back.
    let mut b = info_with_name(&fi, "ember-renamed.txt");
    b[72..80].copy_from_slice(&(attr & !file::READ_ONLY).to_le_bytes());
    expect_status(
        "File SetInfo clears READ_ONLY",
        set_info(f, &file::INFO_ID, &mut b),
        efi::Status::SUCCESS,
    );
    let mut b = info_with_name(&fi, "ember-conformance.txt");
    b[72..80].copy_from_slice(&(attr & !file::READ_ONLY).to_le_bytes());
    expect_status(
        "File SetInfo renames back",
        set_info(f, &file::INFO_ID, &mut b),
        efi::Status::SUCCESS,
    );
    ((*f).close)(f);

    // The volume label, read back and restored.
    let (_, _, orig) = get_info(root, &file::SYSTEM_VOLUME_LABEL_ID);
    let mut label: Vec<u8> = util::u16z("EMBERTEST")
        .iter()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    expect_status(
        "File SetInfo(EFI_FILE_SYSTEM_VOLUME_LABEL) sets the label",
        set_info(root, &file::SYSTEM_VOLUME_LABEL_ID, &mut label),
        efi::Status::SUCCESS,
    );
    let (_, _, now) = get_info(root, &file::SYSTEM_VOLUME_LABEL_ID);
    let got = util::from_u16z(now.as_ptr() as *const u16);
    expect_eq("Volume label reads back", got.as_str(), "EMBERTEST");
    if !orig.is_empty() {
        let mut back: Vec<u8> = orig.iter().flat_map(|w| w.to_le_bytes()).collect();
        set_info(root, &file::SYSTEM_VOLUME_LABEL_ID, &mut back);
    }
}

/// The name in an EFI_FILE_INFO buffer (after the 80-byte fixed part).
unsafe fn info_name(buf: *const u8) -> String {
    util::from_u16z(buf.add(80) as *const u16)
}

pub unsafe fn run() {
    let Some(li) = handle_protocol::<loaded_image::Protocol>(image(), &loaded_image::PROTOCOL_GUID)
    else {
        return;
    };
    let dev = (*li).device_handle;
    block(dev);
    files(dev);
}

unsafe fn block(dev: efi::Handle) {
    let Some(part) = handle_protocol::<block_io::Protocol>(dev, &block_io::PROTOCOL_GUID) else {
        check(
            "BlockIo is on the image's device (the ESP)",
            false,
            format_args!("absent"),
        );
        return;
    };
    check(
        "BlockIo is on the image's device (the ESP)",
        true,
        format_args!(""),
    );
    let m = &*(*part).media;
    check(
        "ESP BlockIo Media.LogicalPartition is TRUE",
        m.logical_partition,
        format_args!("FALSE"),
    );
    expect_eq("ESP BlockIo Media.BlockSize is 512", m.block_size, 512);
    // Two blocks: the whole-disk read below takes LBA 0 and 1.
    let mut sector = alloc::vec![0u64; 128];
    let buf = sector.as_mut_ptr() as *mut u8;
    let s = ((*part).read_blocks)(part, m.media_id, 0, 512, buf.cast());
    expect_status("ESP BlockIo ReadBlocks(LBA 0)", s, efi::Status::SUCCESS);
    let boot = core::slice::from_raw_parts(buf, 512).to_vec();
    check(
        "ESP LBA 0 is a FAT boot sector (55 AA, FAT32 type string)",
        boot[510] == 0x55 && boot[511] == 0xAA && &boot[82..87] == b"FAT32",
        format_args!("signature {:02x}{:02x}", boot[510], boot[511]),
    );
    let s = ((*part).read_blocks)(part, m.media_id, 0, 100, buf.cast());
    expect_status(
        "BlockIo ReadBlocks of a partial block is BAD_BUFFER_SIZE",
        s,
        efi::Status::BAD_BUFFER_SIZE,
    );
    let s = ((*part).read_blocks)(part, m.media_id, m.last_block + 1, 512, buf.cast());
    expect_status(
        "BlockIo ReadBlocks past LastBlock is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
    // The spec wants MEDIA_CHANGED for a MediaId that is not the current
    // one, but OVMF's VirtioBlkDxe (and PartitionDxe above it) never look at
    // MediaId on fixed media, so this is reported, not judged.
    let s = ((*part).read_blocks)(part, m.media_id.wrapping_add(1), 0, 512, buf.cast());
    if s != efi::Status::MEDIA_CHANGED {
        info(
            "blockio-mediaid",
            format_args!("ReadBlocks with a stale MediaId returned {} (spec: EFI_MEDIA_CHANGED; OVMF ignores MediaId)", St(s)),
        );
    } else {
        check(
            "BlockIo ReadBlocks with a stale MediaId is MEDIA_CHANGED",
            true,
            format_args!(""),
        );
    }

    // DiskIo: an unaligned read agrees with BlockIo (the FAT OEM name).
    if let Some(dio) = handle_protocol::<disk_io::Protocol>(dev, &disk_io::PROTOCOL_GUID) {
        let mut oem = [0u8; 8];
        let s = ((*dio).read_disk)(dio, m.media_id, 3, 8, oem.as_mut_ptr().cast());
        expect_status(
            "DiskIo ReadDisk at an unaligned offset",
            s,
            efi::Status::SUCCESS,
        );
        expect_eq(
            "DiskIo ReadDisk bytes match BlockIo's",
            &oem[..],
            &boot[3..11],
        );
    } else {
        check("DiskIo is on the ESP handle", false, format_args!("absent"));
    }

    // The whole disk: the BlockIo handle whose path is a prefix of the ESP's.
    let Some(esp_dp) = handle_protocol::<device_path::Protocol>(dev, &device_path::PROTOCOL_GUID)
    else {
        check(
            "The ESP handle has a device path",
            false,
            format_args!("absent"),
        );
        return;
    };
    let esp = util::dp_bytes(esp_dp);
    let mut disk = None;
    for h in util::handles_with(&block_io::PROTOCOL_GUID) {
        let (Some(b), Some(dp)) = (
            handle_protocol::<block_io::Protocol>(h, &block_io::PROTOCOL_GUID),
            handle_protocol::<device_path::Protocol>(h, &device_path::PROTOCOL_GUID),
        ) else {
            continue;
        };
        let d = util::dp_bytes(dp);
        if !(*(*b).media).logical_partition
            && d.len() < esp.len()
            && esp.starts_with(&d[..d.len() - 4])
        {
            disk = Some(b);
        }
    }
    let Some(disk) = disk else {
        check(
            "The boot disk's BlockIo (parent of the ESP) is found",
            false,
            format_args!("no whole-disk BlockIo is a prefix of the ESP path"),
        );
        return;
    };
    check(
        "The boot disk's BlockIo (parent of the ESP) is found",
        true,
        format_args!(""),
    );
    let dm = &*(*disk).media;
    expect_eq("Disk BlockIo Media.BlockSize is 512", dm.block_size, 512);
    let s = ((*disk).read_blocks)(disk, dm.media_id, 0, 1024, buf.cast());
    expect_status(
        "Disk BlockIo ReadBlocks(LBA 0, 2 blocks)",
        s,
        efi::Status::SUCCESS,
    );
    let lba = core::slice::from_raw_parts(buf, 1024);
    check(
        "Disk LBA 0 is a protective MBR (55 AA, type EE)",
        lba[510] == 0x55 && lba[511] == 0xAA && lba[0x1BE + 4] == 0xEE,
        format_args!(
            "signature {:02x}{:02x} type {:02x}",
            lba[510],
            lba[511],
            lba[0x1BE + 4]
        ),
    );
    expect_eq(
        "Disk LBA 1 is the GPT header (EFI PART)",
        &lba[512..520],
        &b"EFI PART"[..],
    );
}

unsafe fn files(dev: efi::Handle) {
    let Some(root) = open_root(dev) else {
        check(
            "SimpleFileSystem OpenVolume on the ESP",
            false,
            format_args!("failed"),
        );
        return;
    };
    check(
        "SimpleFileSystem OpenVolume on the ESP",
        true,
        format_args!(""),
    );
    let rw = file::MODE_READ | file::MODE_WRITE;
    let rwc = rw | file::MODE_CREATE;

    let (s0, _, vi) = get_info(root, &file::SYSTEM_INFO_ID);
    expect_status(
        "File GetInfo(EFI_FILE_SYSTEM_INFO) with a zero buffer is BUFFER_TOO_SMALL",
        s0,
        efi::Status::BUFFER_TOO_SMALL,
    );
    if !vi.is_empty() {
        let p = vi.as_ptr() as *const u8;
        let info = &*(p as *const file::SystemInfo);
        let label = util::from_u16z(
            p.add(core::mem::offset_of!(file::SystemInfo, volume_label)) as *const u16
        );
        check(
            "EFI_FILE_SYSTEM_INFO: writable, BlockSize 512, FreeSpace <= VolumeSize",
            !bool::from(info.read_only)
                && info.block_size == 512
                && info.free_space <= info.volume_size
                && info.volume_size > 0,
            format_args!(
                "ro {:?} bs {} vol {} free {}",
                info.read_only, info.block_size, info.volume_size, info.free_space
            ),
        );
        expect_eq(
            "EFI_FILE_SYSTEM_INFO VolumeLabel is the FAT label",
            label.as_str(),
            "ESP",
        );
    }

    let e = open(root, "\\no-such-file.bin", file::MODE_READ, 0);
    expect_eq(
        "File Open of a missing file is NOT_FOUND",
        e.err(),
        Some(efi::Status::NOT_FOUND),
    );
    let e = open(root, "\\EFI", file::MODE_WRITE, 0);
    expect_eq(
        "File Open with OpenMode WRITE alone is INVALID_PARAMETER",
        e.err(),
        Some(efi::Status::INVALID_PARAMETER),
    );

    // Create, write, seek, read back.
    let name = "\\ember-conformance.txt";
    if let Ok(old) = open(root, name, rw, 0) {
        ((*old).delete)(old);
    }
    let f = match open(root, name, rwc, 0) {
        Ok(f) => f,
        Err(s) => {
            check(
                "File Open(CREATE) of a new file",
                false,
                format_args!("{}", St(s)),
            );
            return;
        }
    };
    check("File Open(CREATE) of a new file", true, format_args!(""));
    let text = b"Ember UEFI conformance\n";
    let mut n = text.len();
    let s = ((*f).write)(f, &mut n, text.as_ptr() as *mut c_void);
    check(
        "File Write writes every byte",
        s == efi::Status::SUCCESS && n == text.len(),
        format_args!("{} {n}", St(s)),
    );
    let mut pos = 0u64;
    ((*f).get_position)(f, &mut pos);
    expect_eq(
        "File GetPosition after Write is the length",
        pos,
        text.len() as u64,
    );
    expect_status(
        "File SetPosition(0)",
        ((*f).set_position)(f, 0),
        efi::Status::SUCCESS,
    );
    let mut back = [0u8; 64];
    let mut n = back.len();
    let s = ((*f).read)(f, &mut n, back.as_mut_ptr().cast());
    check(
        "File Read returns what was written",
        s == efi::Status::SUCCESS && &back[..n] == text,
        format_args!("{} {n} bytes", St(s)),
    );
    let mut n = back.len();
    let s = ((*f).read)(f, &mut n, back.as_mut_ptr().cast());
    check(
        "File Read at end of file returns 0 bytes",
        s == efi::Status::SUCCESS && n == 0,
        format_args!("{} {n}", St(s)),
    );
    ((*f).set_position)(f, u64::MAX);
    ((*f).get_position)(f, &mut pos);
    expect_eq(
        "File SetPosition(0xFFFFFFFFFFFFFFFF) seeks to end of file",
        pos,
        text.len() as u64,
    );
    expect_status("File Flush", ((*f).flush)(f), efi::Status::SUCCESS);

    let (s0, _, fi) = get_info(f, &file::INFO_ID);
    expect_status(
        "File GetInfo(EFI_FILE_INFO) with a zero buffer is BUFFER_TOO_SMALL",
        s0,
        efi::Status::BUFFER_TOO_SMALL,
    );
    if !fi.is_empty() {
        let mut fi = fi;
        let p = fi.as_mut_ptr() as *mut u8;
        let info = &mut *(p as *mut file::Info);
        check(
            "EFI_FILE_INFO: FileSize, not a directory, name",
            info.file_size == text.len() as u64
                && info.attribute & file::DIRECTORY == 0
                && info_name(p) == "ember-conformance.txt",
            format_args!(
                "size {} attr {:#x} name {}",
                info.file_size,
                info.attribute,
                info_name(p)
            ),
        );
        // SetInfo: truncate to 5 bytes.
        info.file_size = 5;
        let mut g = file::INFO_ID;
        let s = ((*f).set_info)(f, &mut g, info.size as usize, p.cast());
        expect_status(
            "File SetInfo(EFI_FILE_INFO) changes FileSize",
            s,
            efi::Status::SUCCESS,
        );
        let (_, _, fi2) = get_info(f, &file::INFO_ID);
        let size2 = fi2.get(1).copied();
        expect_eq("EFI_FILE_INFO FileSize after SetInfo", size2, Some(5));
    }
    ((*f).close)(f);

    // Directory: create one, list the root, delete.
    match open(root, "\\ember-dir", rwc, file::DIRECTORY) {
        Ok(d) => {
            check(
                "File Open(CREATE, DIRECTORY) creates a directory",
                true,
                format_args!(""),
            );
            let mut n = 1usize;
            let s = ((*d).write)(d, &mut n, b"x".as_ptr() as *mut c_void);
            expect_status(
                "File Write to a directory is UNSUPPORTED",
                s,
                efi::Status::UNSUPPORTED,
            );
            match open(d, "inner.txt", rwc, 0) {
                Ok(inner) => {
                    let s = ((*inner).delete)(inner);
                    expect_status("File Delete of a file", s, efi::Status::SUCCESS);
                    let e = open(d, "inner.txt", file::MODE_READ, 0);
                    expect_eq(
                        "A deleted file is gone",
                        e.err(),
                        Some(efi::Status::NOT_FOUND),
                    );
                }
                Err(s) => {
                    check(
                        "File Open(CREATE) relative to a directory",
                        false,
                        format_args!("{}", St(s)),
                    );
                }
            }
            let s = ((*d).delete)(d);
            expect_status("File Delete of an empty directory", s, efi::Status::SUCCESS);
        }
        Err(s) => {
            check(
                "File Open(CREATE, DIRECTORY) creates a directory",
                false,
                format_args!("{}", St(s)),
            );
        }
    }

    // Read the root directory: one EFI_FILE_INFO per Read, 0 bytes at the end.
    ((*root).set_position)(root, 0);
    let mut small = [0u64; 2];
    let mut n = 16usize;
    let s = ((*root).read)(root, &mut n, small.as_mut_ptr().cast());
    check(
        "Directory Read with a too-small buffer is BUFFER_TOO_SMALL with the size",
        s == efi::Status::BUFFER_TOO_SMALL && n > 80,
        format_args!("{} size {n}", St(s)),
    );
    ((*root).set_position)(root, 0);
    let mut names = Vec::new();
    let mut efi_is_dir = false;
    let mut buf = alloc::vec![0u64; 128];
    for _ in 0..64 {
        let mut n = buf.len() * 8;
        let s = ((*root).read)(root, &mut n, buf.as_mut_ptr().cast());
        if s != efi::Status::SUCCESS || n == 0 {
            break;
        }
        let p = buf.as_ptr() as *const u8;
        let name = info_name(p);
        if name.eq_ignore_ascii_case("EFI") {
            efi_is_dir = (*(p as *const file::Info)).attribute & file::DIRECTORY != 0;
        }
        names.push(name);
    }
    check(
        "Directory Read lists EFI (a directory) and the new file",
        efi_is_dir && names.iter().any(|n| n == "ember-conformance.txt"),
        format_args!("entries {names:?}"),
    );
    set_info_checks(root, rw);
    if let Ok(f) = open(root, name, rw, 0) {
        expect_status(
            "File Delete of the test file",
            ((*f).delete)(f),
            efi::Status::SUCCESS,
        );
    }
    expect_status(
        "File Close of the root",
        ((*root).close)(root),
        efi::Status::SUCCESS,
    );
}
