//! LoadedImage, LoadedImageDevicePath, DevicePathToText, DevicePathUtilities,
//! and LoadImage/StartImage/Exit/UnloadImage with a copy of this very image.

use crate::out::{check, expect_eq, expect_status};
use crate::util::{self, bs, handle_protocol, image, locate_protocol, st, u16z};
use crate::{CHILD_EXIT_STATUS, CHILD_EXIT_TEXT, CHILD_MARKER};
use alloc::vec::Vec;
use core::ffi::c_void;
use core::ptr::null_mut;
use r_efi::efi;
use r_efi::protocols::{
    device_path, device_path_to_text, device_path_utilities, loaded_image, loaded_image_device_path,
};

/// Whether this instance was started by the parent's LoadImage/StartImage.
pub unsafe fn is_child() -> bool {
    let Some(li) = handle_protocol::<loaded_image::Protocol>(image(), &loaded_image::PROTOCOL_GUID)
    else {
        return false;
    };
    let (p, n) = (
        (*li).load_options as *const u8,
        (*li).load_options_size as usize,
    );
    !p.is_null() && n == CHILD_MARKER.len() && core::slice::from_raw_parts(p, n) == CHILD_MARKER
}

/// The load options as text (UCS-2, as Ember and shells pass them), if any.
pub unsafe fn options_text() -> Option<alloc::string::String> {
    let li = handle_protocol::<loaded_image::Protocol>(image(), &loaded_image::PROTOCOL_GUID)?;
    let (p, n) = (
        (*li).load_options as *const u16,
        (*li).load_options_size as usize / 2,
    );
    if p.is_null() || n == 0 {
        return None;
    }
    let units = core::slice::from_raw_parts(p, n);
    let end = units.iter().position(|&u| u == 0).unwrap_or(n);
    alloc::string::String::from_utf16(&units[..end]).ok()
}

/// The child's whole job: `Exit` with a known status and exit data.
pub unsafe fn child_exit() -> ! {
    let text = u16z(CHILD_EXIT_TEXT);
    let bytes = text.len() * 2;
    let mut data: *mut c_void = null_mut();
    (bs().allocate_pool)(efi::BOOT_SERVICES_DATA, bytes, &mut data);
    core::ptr::copy_nonoverlapping(text.as_ptr(), data.cast(), text.len());
    (bs().exit)(image(), CHILD_EXIT_STATUS, bytes, data.cast());
    // Exit does not return for a running image.
    loop {
        core::hint::spin_loop();
    }
}

pub unsafe fn run() {
    let Some(li) = handle_protocol::<loaded_image::Protocol>(image(), &loaded_image::PROTOCOL_GUID)
    else {
        check(
            "HandleProtocol(LoadedImage) on the image handle",
            false,
            format_args!("absent"),
        );
        return;
    };
    check(
        "HandleProtocol(LoadedImage) on the image handle",
        true,
        format_args!(""),
    );
    let li = &*li;
    expect_eq(
        "LoadedImage Revision is 0x1000",
        li.revision,
        loaded_image::REVISION,
    );
    expect_eq(
        "LoadedImage SystemTable is the one passed to efi_main",
        li.system_table,
        st(),
    );
    check(
        "LoadedImage DeviceHandle is set",
        !li.device_handle.is_null(),
        format_args!("NULL"),
    );
    check(
        "LoadedImage FilePath is set",
        !li.file_path.is_null(),
        format_args!("NULL"),
    );
    let here = run as unsafe fn() as usize;
    let base = li.image_base as usize;
    check(
        "LoadedImage ImageBase/ImageSize cover the running code",
        base <= here && here < base + li.image_size as usize,
        format_args!("code at {here:#x}, image {base:#x}+{:#x}", li.image_size),
    );
    expect_eq(
        "LoadedImage ImageCodeType is EfiLoaderCode",
        li.image_code_type,
        efi::LOADER_CODE,
    );
    expect_eq(
        "LoadedImage ImageDataType is EfiLoaderData",
        li.image_data_type,
        efi::LOADER_DATA,
    );

    let lidp =
        handle_protocol::<device_path::Protocol>(image(), &loaded_image_device_path::PROTOCOL_GUID);
    check(
        "LoadedImageDevicePath is on the image handle",
        lidp.is_some(),
        format_args!("absent"),
    );
    if let Some(dp) = lidp {
        to_text(dp);
        utilities(dp);
    }
    load_start_exit(li);
}

unsafe fn to_text(dp: *mut device_path::Protocol) {
    let Some(t) =
        locate_protocol::<device_path_to_text::Protocol>(&device_path_to_text::PROTOCOL_GUID)
    else {
        check(
            "DevicePathToText protocol is present",
            false,
            format_args!("absent"),
        );
        return;
    };
    let s = ((*t).convert_device_path_to_text)(dp, false.into(), false.into());
    let text = util::from_u16z(s);
    if !s.is_null() {
        (bs().free_pool)(s.cast());
    }
    check(
        "DevicePathToText of the image's path has HD( and the file name",
        text.contains("HD(") && text.to_ascii_uppercase().contains("BOOTX64.EFI"),
        format_args!("\"{text}\""),
    );
}

unsafe fn utilities(dp: *mut device_path::Protocol) {
    let Some(u) =
        locate_protocol::<device_path_utilities::Protocol>(&device_path_utilities::PROTOCOL_GUID)
    else {
        check(
            "DevicePathUtilities protocol is present",
            false,
            format_args!("absent"),
        );
        return;
    };
    let u = &*u;
    let bytes = util::dp_bytes(dp);
    let size = (u.get_device_path_size)(dp);
    expect_eq(
        "GetDevicePathSize counts every node and the end node",
        size,
        bytes.len(),
    );
    let dup = (u.duplicate_device_path)(dp);
    check(
        "DuplicateDevicePath copies the path",
        !dup.is_null() && util::dp_bytes(dup) == bytes,
        format_args!("copy differs or NULL"),
    );
    let both = (u.append_device_path)(dp, dup);
    if !both.is_null() {
        let joined = util::dp_bytes(both);
        let mut want: Vec<u8> = bytes[..bytes.len() - 4].to_vec();
        want.extend_from_slice(&bytes);
        check(
            "AppendDevicePath joins the paths with one end node",
            joined == want && (u.get_device_path_size)(both) == 2 * size - 4,
            format_args!("{} bytes, expected {}", joined.len(), want.len()),
        );
        (bs().free_pool)(both.cast());
    } else {
        check(
            "AppendDevicePath joins the paths with one end node",
            false,
            format_args!("NULL"),
        );
    }
    if !dup.is_null() {
        (bs().free_pool)(dup.cast());
    }
}

/// Read this image's own file into a buffer through SimpleFileSystem.
pub unsafe fn read_own_file(li: &loaded_image::Protocol) -> Option<Vec<u8>> {
    let root = crate::media::open_root(li.device_handle)?;
    let f = crate::media::open(
        root,
        "\\EFI\\BOOT\\BOOTX64.EFI",
        efi::protocols::file::MODE_READ,
        0,
    )
    .ok()?;
    let data = crate::media::read_all(f);
    ((*f).close)(f);
    ((*root).close)(root);
    data
}

unsafe fn load_start_exit(li: &loaded_image::Protocol) {
    let bs = bs();
    let Some(mut file) = read_own_file(li) else {
        check(
            "LoadImage: read this image's file",
            false,
            format_args!("could not read \\EFI\\BOOT\\BOOTX64.EFI"),
        );
        return;
    };
    check(
        "LoadImage: this image's file starts with MZ",
        file.starts_with(b"MZ"),
        format_args!("not a PE image"),
    );
    let mut child: efi::Handle = null_mut();
    let s = (bs.load_image)(
        false.into(),
        image(),
        null_mut(),
        file.as_mut_ptr().cast(),
        file.len(),
        &mut child,
    );
    expect_status("LoadImage from a source buffer", s, efi::Status::SUCCESS);
    if s != efi::Status::SUCCESS {
        return;
    }
    let Some(cli) = handle_protocol::<loaded_image::Protocol>(child, &loaded_image::PROTOCOL_GUID)
    else {
        check(
            "LoadImage: the new handle has LoadedImage",
            false,
            format_args!("absent"),
        );
        return;
    };
    expect_eq(
        "LoadImage: child ParentHandle is the caller",
        (*cli).parent_handle,
        image(),
    );
    check(
        "LoadImage: child image is a separate copy",
        (*cli).image_base != li.image_base && (*cli).image_size == li.image_size,
        format_args!("base {:p} size {:#x}", (*cli).image_base, (*cli).image_size),
    );
    // Tell the copy it is the child (load options are the caller's to set).
    (*cli).load_options = CHILD_MARKER.as_ptr() as *mut c_void;
    (*cli).load_options_size = CHILD_MARKER.len() as u32;
    let mut size = 0usize;
    let mut data: *mut u16 = null_mut();
    let s = (bs.start_image)(child, &mut size, &mut data);
    expect_status(
        "StartImage returns the child's Exit status",
        s,
        CHILD_EXIT_STATUS,
    );
    let text = util::from_u16z(data);
    check(
        "StartImage returns the child's ExitData",
        size == (CHILD_EXIT_TEXT.len() + 1) * 2 && text == CHILD_EXIT_TEXT,
        format_args!("size {size}, \"{text}\""),
    );
    if !data.is_null() {
        expect_status(
            "ExitData is pool memory the caller frees",
            (bs.free_pool)(data.cast()),
            efi::Status::SUCCESS,
        );
    }
    let s = (bs.unload_image)(child);
    expect_status(
        "UnloadImage of an application that has exited is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );

    // A second copy that is never started can be unloaded.
    let mut c2: efi::Handle = null_mut();
    let s = (bs.load_image)(
        false.into(),
        image(),
        null_mut(),
        file.as_mut_ptr().cast(),
        file.len(),
        &mut c2,
    );
    expect_status("LoadImage of a second copy", s, efi::Status::SUCCESS);
    if s == efi::Status::SUCCESS {
        expect_status(
            "UnloadImage of an image that was not started",
            (bs.unload_image)(c2),
            efi::Status::SUCCESS,
        );
        let left = util::handles_with(&loaded_image::PROTOCOL_GUID);
        check(
            "UnloadImage removes the image's handle",
            !left.contains(&c2),
            format_args!("handle still has LoadedImage"),
        );
    }
    let mut junk = [0u8; 512];
    junk[0] = b'M';
    junk[1] = b'Z';
    let mut c3: efi::Handle = null_mut();
    let s = (bs.load_image)(
        false.into(),
        image(),
        null_mut(),
        junk.as_mut_ptr().cast(),
        junk.len(),
        &mut c3,
    );
    // The spec has LOAD_ERROR for a corrupt image and UNSUPPORTED for an
    // unsupported type; a header with no PE signature can be read as either
    // (OVMF says UNSUPPORTED).
    check(
        "LoadImage of a corrupt image fails with LOAD_ERROR or UNSUPPORTED",
        s == efi::Status::LOAD_ERROR || s == efi::Status::UNSUPPORTED,
        format_args!("returned {}", crate::out::St(s)),
    );
    let s = (bs.load_image)(false.into(), image(), null_mut(), null_mut(), 0, &mut c3);
    // UEFI 2.10 lists NOT_FOUND for this; OVMF returns INVALID_PARAMETER,
    // which older revisions' "a parameter is invalid" also covers.
    check(
        "LoadImage with neither a path nor a buffer fails",
        s == efi::Status::INVALID_PARAMETER || s == efi::Status::NOT_FOUND,
        format_args!("returned {}", crate::out::St(s)),
    );
}
