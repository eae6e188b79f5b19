//! The protocol handler services: install/reinstall/uninstall (single and
//! multiple), HandleProtocol, OpenProtocol attribute rules, CloseProtocol,
//! OpenProtocolInformation, ProtocolsPerHandle, LocateHandle(Buffer),
//! LocateProtocol, RegisterProtocolNotify, LocateDevicePath.

use crate::out::{check, expect_eq, expect_status};
use crate::util::{bs, guid, image, vendor_dp};
use core::ffi::c_void;
use core::ptr::null_mut;
use r_efi::efi;

const G1: efi::Guid = guid(
    0x6e1c_0a01,
    0x5d2b,
    0x4c7a,
    [0x8e, 0x11, 0x3f, 0x42, 0x9a, 0x0c, 0x71, 0x01],
);
const G2: efi::Guid = guid(
    0x6e1c_0a02,
    0x5d2b,
    0x4c7a,
    [0x8e, 0x11, 0x3f, 0x42, 0x9a, 0x0c, 0x71, 0x02],
);
const G3: efi::Guid = guid(
    0x6e1c_0a03,
    0x5d2b,
    0x4c7a,
    [0x8e, 0x11, 0x3f, 0x42, 0x9a, 0x0c, 0x71, 0x03],
);
const G4: efi::Guid = guid(
    0x6e1c_0a04,
    0x5d2b,
    0x4c7a,
    [0x8e, 0x11, 0x3f, 0x42, 0x9a, 0x0c, 0x71, 0x04],
);
const G5: efi::Guid = guid(
    0x6e1c_0a05,
    0x5d2b,
    0x4c7a,
    [0x8e, 0x11, 0x3f, 0x42, 0x9a, 0x0c, 0x71, 0x05],
);
const GVENDOR: efi::Guid = guid(
    0x6e1c_0a06,
    0x5d2b,
    0x4c7a,
    [0x8e, 0x11, 0x3f, 0x42, 0x9a, 0x0c, 0x71, 0x06],
);
const GMISSING: efi::Guid = guid(
    0x6e1c_0aff,
    0x5d2b,
    0x4c7a,
    [0x8e, 0x11, 0x3f, 0x42, 0x9a, 0x0c, 0x71, 0xff],
);

// Interfaces are only compared by address.
static I1: u64 = 0x11;
static I2: u64 = 0x22;
static I3: u64 = 0x33;
static I4: u64 = 0x44;

fn p<T>(x: &'static T) -> *mut c_void {
    x as *const T as *mut c_void
}

type Install3 = unsafe extern "efiapi" fn(
    *mut efi::Handle,
    *mut efi::Guid,
    *mut c_void,
    *mut c_void,
) -> efi::Status;
type Install5 = unsafe extern "efiapi" fn(
    *mut efi::Handle,
    *mut efi::Guid,
    *mut c_void,
    *mut efi::Guid,
    *mut c_void,
    *mut c_void,
) -> efi::Status;
type Uninstall3 =
    unsafe extern "efiapi" fn(efi::Handle, *mut efi::Guid, *mut c_void, *mut c_void) -> efi::Status;
type Uninstall5 = unsafe extern "efiapi" fn(
    efi::Handle,
    *mut efi::Guid,
    *mut c_void,
    *mut efi::Guid,
    *mut c_void,
    *mut c_void,
) -> efi::Status;

// The *Multiple* services are C variadic; on the x64 UEFI (Microsoft) ABI a
// variadic callee reads its pointer arguments from the same registers and
// stack slots as a fixed-arity one, so calling through a fixed prototype
// with the NULL terminator as the last argument is equivalent.
unsafe fn install_multiple_1(h: &mut efi::Handle, g: &efi::Guid, i: *mut c_void) -> efi::Status {
    let f: Install3 = core::mem::transmute(bs().install_multiple_protocol_interfaces);
    let mut g = *g;
    f(h, &mut g, i, null_mut())
}
unsafe fn install_multiple_2(
    h: &mut efi::Handle,
    g1: &efi::Guid,
    i1: *mut c_void,
    g2: &efi::Guid,
    i2: *mut c_void,
) -> efi::Status {
    let f: Install5 = core::mem::transmute(bs().install_multiple_protocol_interfaces);
    let (mut g1, mut g2) = (*g1, *g2);
    f(h, &mut g1, i1, &mut g2, i2, null_mut())
}
unsafe fn uninstall_multiple_1(h: efi::Handle, g: &efi::Guid, i: *mut c_void) -> efi::Status {
    let f: Uninstall3 = core::mem::transmute(bs().uninstall_multiple_protocol_interfaces);
    let mut g = *g;
    f(h, &mut g, i, null_mut())
}
unsafe fn uninstall_multiple_2(
    h: efi::Handle,
    g1: &efi::Guid,
    i1: *mut c_void,
    g2: &efi::Guid,
    i2: *mut c_void,
) -> efi::Status {
    let f: Uninstall5 = core::mem::transmute(bs().uninstall_multiple_protocol_interfaces);
    let (mut g1, mut g2) = (*g1, *g2);
    f(h, &mut g1, i1, &mut g2, i2, null_mut())
}

unsafe fn install(h: &mut efi::Handle, g: &efi::Guid, i: *mut c_void) -> efi::Status {
    let mut g = *g;
    (bs().install_protocol_interface)(h, &mut g, efi::NATIVE_INTERFACE, i)
}
unsafe fn uninstall(h: efi::Handle, g: &efi::Guid, i: *mut c_void) -> efi::Status {
    let mut g = *g;
    (bs().uninstall_protocol_interface)(h, &mut g, i)
}
unsafe fn handle_protocol(h: efi::Handle, g: &efi::Guid) -> (efi::Status, *mut c_void) {
    let mut g = *g;
    let mut out = null_mut();
    let s = (bs().handle_protocol)(h, &mut g, &mut out);
    (s, out)
}
unsafe fn open(
    h: efi::Handle,
    g: &efi::Guid,
    out: *mut *mut c_void,
    agent: efi::Handle,
    ctl: efi::Handle,
    attr: u32,
) -> efi::Status {
    let mut g = *g;
    (bs().open_protocol)(h, &mut g, out, agent, ctl, attr)
}
unsafe fn close(
    h: efi::Handle,
    g: &efi::Guid,
    agent: efi::Handle,
    ctl: efi::Handle,
) -> efi::Status {
    let mut g = *g;
    (bs().close_protocol)(h, &mut g, agent, ctl)
}
/// LocateHandle into a Vec; the status of the sizing call is returned too.
unsafe fn locate_handle(
    kind: u32,
    g: Option<&efi::Guid>,
    key: *mut c_void,
) -> (efi::Status, usize, alloc::vec::Vec<efi::Handle>) {
    let mut gg = g.copied().unwrap_or(GMISSING);
    let gp = if g.is_some() {
        &mut gg as *mut _
    } else {
        null_mut()
    };
    let mut size = 0usize;
    let s0 = (bs().locate_handle)(kind, gp, key, &mut size, null_mut());
    if s0 != efi::Status::BUFFER_TOO_SMALL {
        return (s0, size, alloc::vec::Vec::new());
    }
    let mut v = alloc::vec![null_mut(); size / 8];
    let mut size2 = size;
    let s = (bs().locate_handle)(kind, gp, key, &mut size2, v.as_mut_ptr());
    if s != efi::Status::SUCCESS {
        return (s, size, alloc::vec::Vec::new());
    }
    v.truncate(size2 / 8);
    (s0, size, v)
}

pub unsafe fn run() {
    single();
    multiple();
    open_rules();
    notify();
    connect();
    driver_model();
    locate_all();
}

unsafe fn single() {
    let mut h: efi::Handle = null_mut();
    let s = install(&mut h, &G1, p(&I1));
    expect_status(
        "InstallProtocolInterface on a new handle",
        s,
        efi::Status::SUCCESS,
    );
    check(
        "InstallProtocolInterface creates a handle",
        !h.is_null(),
        format_args!("handle is NULL"),
    );
    let s = install(&mut h, &G1, p(&I2));
    expect_status(
        "InstallProtocolInterface of a protocol already on the handle is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
    let (s, i) = handle_protocol(h, &G1);
    check(
        "HandleProtocol returns the installed interface",
        s == efi::Status::SUCCESS && i == p(&I1),
        format_args!("{} {i:p}", crate::out::St(s)),
    );
    let (s, _) = handle_protocol(h, &GMISSING);
    expect_status(
        "HandleProtocol of a missing protocol is UNSUPPORTED",
        s,
        efi::Status::UNSUPPORTED,
    );
    let mut gp = G1;
    let s = (bs().handle_protocol)(h, &mut gp, null_mut());
    expect_status(
        "HandleProtocol with a NULL Interface is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );

    // ProtocolsPerHandle
    let mut arr: *mut *mut efi::Guid = null_mut();
    let mut n = 0usize;
    let s = (bs().protocols_per_handle)(h, &mut arr, &mut n);
    expect_status("ProtocolsPerHandle succeeds", s, efi::Status::SUCCESS);
    if s == efi::Status::SUCCESS {
        let list = core::slice::from_raw_parts(arr, n);
        check(
            "ProtocolsPerHandle lists exactly the installed protocol",
            n == 1 && *list[0] == G1,
            format_args!("{n} entries"),
        );
        (bs().free_pool)(arr.cast());
    }

    // LocateHandle(ByProtocol), sizing first.
    let (s0, size, v) = locate_handle(efi::BY_PROTOCOL, Some(&G1), null_mut());
    expect_status(
        "LocateHandle with a zero buffer is BUFFER_TOO_SMALL",
        s0,
        efi::Status::BUFFER_TOO_SMALL,
    );
    expect_eq(
        "LocateHandle BUFFER_TOO_SMALL reports the size of one handle",
        size,
        8,
    );
    expect_eq(
        "LocateHandle(ByProtocol) finds the handle",
        v.as_slice(),
        &[h][..],
    );
    let mut n = 0usize;
    let mut buf: *mut efi::Handle = null_mut();
    let mut g = G1;
    let s = (bs().locate_handle_buffer)(efi::BY_PROTOCOL, &mut g, null_mut(), &mut n, &mut buf);
    expect_status(
        "LocateHandleBuffer(ByProtocol) succeeds",
        s,
        efi::Status::SUCCESS,
    );
    if s == efi::Status::SUCCESS {
        expect_eq(
            "LocateHandleBuffer returns the one handle",
            core::slice::from_raw_parts(buf, n),
            &[h][..],
        );
        (bs().free_pool)(buf.cast());
    }
    let mut g = GMISSING;
    let s = (bs().locate_handle_buffer)(efi::BY_PROTOCOL, &mut g, null_mut(), &mut n, &mut buf);
    expect_status(
        "LocateHandleBuffer of an absent protocol is NOT_FOUND",
        s,
        efi::Status::NOT_FOUND,
    );
    let mut g = G1;
    let mut i = null_mut();
    let s = (bs().locate_protocol)(&mut g, null_mut(), &mut i);
    check(
        "LocateProtocol returns the interface",
        s == efi::Status::SUCCESS && i == p(&I1),
        format_args!("{}", crate::out::St(s)),
    );
    let mut g = GMISSING;
    let s = (bs().locate_protocol)(&mut g, null_mut(), &mut i);
    expect_status(
        "LocateProtocol of an absent protocol is NOT_FOUND",
        s,
        efi::Status::NOT_FOUND,
    );
    check(
        "LocateProtocol sets Interface to NULL on failure",
        i.is_null(),
        format_args!("{i:p}"),
    );

    // Reinstall
    let mut g = G1;
    let s = (bs().reinstall_protocol_interface)(h, &mut g, p(&I3), p(&I2));
    expect_status(
        "ReinstallProtocolInterface with a wrong OldInterface is NOT_FOUND",
        s,
        efi::Status::NOT_FOUND,
    );
    let s = (bs().reinstall_protocol_interface)(h, &mut g, p(&I1), p(&I2));
    expect_status(
        "ReinstallProtocolInterface succeeds",
        s,
        efi::Status::SUCCESS,
    );
    let (_, i) = handle_protocol(h, &G1);
    check(
        "ReinstallProtocolInterface: HandleProtocol sees the new interface",
        i == p(&I2),
        format_args!("{i:p}"),
    );

    // Uninstall
    expect_status(
        "UninstallProtocolInterface with a wrong Interface is NOT_FOUND",
        uninstall(h, &G1, p(&I1)),
        efi::Status::NOT_FOUND,
    );
    expect_status(
        "UninstallProtocolInterface succeeds",
        uninstall(h, &G1, p(&I2)),
        efi::Status::SUCCESS,
    );
    let (s, _, _) = locate_handle(efi::BY_PROTOCOL, Some(&G1), null_mut());
    expect_status(
        "LocateHandle after the last uninstall is NOT_FOUND",
        s,
        efi::Status::NOT_FOUND,
    );
}

unsafe fn multiple() {
    let mut h: efi::Handle = null_mut();
    let s = install_multiple_2(&mut h, &G1, p(&I1), &G2, p(&I2));
    expect_status(
        "InstallMultipleProtocolInterfaces of two protocols",
        s,
        efi::Status::SUCCESS,
    );
    let (s1, i1) = handle_protocol(h, &G1);
    let (s2, i2) = handle_protocol(h, &G2);
    check(
        "InstallMultipleProtocolInterfaces installs both",
        s1 == efi::Status::SUCCESS && s2 == efi::Status::SUCCESS && i1 == p(&I1) && i2 == p(&I2),
        format_args!("{} {}", crate::out::St(s1), crate::out::St(s2)),
    );
    // Atomic failure: G3 is new but G1 is already there; nothing may remain.
    let s = install_multiple_2(&mut h, &G3, p(&I3), &G1, p(&I4));
    expect_status(
        "InstallMultipleProtocolInterfaces with a duplicate protocol is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
    let (s, _) = handle_protocol(h, &G3);
    expect_status(
        "InstallMultipleProtocolInterfaces failure installs nothing",
        s,
        efi::Status::UNSUPPORTED,
    );

    // Two handles with the same device path.
    let dp = alloc::boxed::Box::leak(vendor_dp(&GVENDOR).into_boxed_slice());
    let dp2 = alloc::boxed::Box::leak(vendor_dp(&GVENDOR).into_boxed_slice());
    let mut hd: efi::Handle = null_mut();
    let s = install_multiple_1(
        &mut hd,
        &efi::protocols::device_path::PROTOCOL_GUID,
        dp.as_mut_ptr().cast(),
    );
    expect_status(
        "InstallMultipleProtocolInterfaces of a device path",
        s,
        efi::Status::SUCCESS,
    );
    let mut hd2: efi::Handle = null_mut();
    let s = install_multiple_2(
        &mut hd2,
        &G4,
        p(&I4),
        &efi::protocols::device_path::PROTOCOL_GUID,
        dp2.as_mut_ptr().cast(),
    );
    expect_status(
        "InstallMultipleProtocolInterfaces of a duplicate device path is ALREADY_STARTED",
        s,
        efi::Status::ALREADY_STARTED,
    );
    let (s, _, _) = locate_handle(efi::BY_PROTOCOL, Some(&G4), null_mut());
    expect_status(
        "InstallMultipleProtocolInterfaces ALREADY_STARTED installs nothing",
        s,
        efi::Status::NOT_FOUND,
    );

    // LocateDevicePath finds the handle and moves the path to the end node.
    let mut rest = dp2.as_mut_ptr() as *mut efi::protocols::device_path::Protocol;
    let mut found: efi::Handle = null_mut();
    let mut g = efi::protocols::device_path::PROTOCOL_GUID;
    let s = (bs().locate_device_path)(&mut g, &mut rest, &mut found);
    expect_status("LocateDevicePath succeeds", s, efi::Status::SUCCESS);
    expect_eq(
        "LocateDevicePath returns the handle with that path",
        found,
        hd,
    );
    check(
        "LocateDevicePath advances DevicePath to the unmatched rest (the end node)",
        rest as *mut u8 == dp2.as_mut_ptr().add(20) && (*rest).r#type == 0x7f,
        format_args!(
            "rest at offset {}",
            (rest as usize).wrapping_sub(dp2.as_ptr() as usize)
        ),
    );
    let mut rest = dp2.as_mut_ptr() as *mut efi::protocols::device_path::Protocol;
    let mut g = GMISSING;
    let s = (bs().locate_device_path)(&mut g, &mut rest, &mut found);
    expect_status(
        "LocateDevicePath of an absent protocol is NOT_FOUND",
        s,
        efi::Status::NOT_FOUND,
    );
    let s = uninstall_multiple_1(
        hd,
        &efi::protocols::device_path::PROTOCOL_GUID,
        dp.as_mut_ptr().cast(),
    );
    expect_status(
        "UninstallMultipleProtocolInterfaces of the device path",
        s,
        efi::Status::SUCCESS,
    );

    // Uninstall atomicity: G2 matches, G1 with the wrong interface does not.
    let s = uninstall_multiple_2(h, &G2, p(&I2), &G1, p(&I4));
    expect_status(
        "UninstallMultipleProtocolInterfaces with a wrong interface is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
    let (s, i) = handle_protocol(h, &G2);
    check(
        "UninstallMultipleProtocolInterfaces failure reinstalls what it removed",
        s == efi::Status::SUCCESS && i == p(&I2),
        format_args!("{}", crate::out::St(s)),
    );
    let s = uninstall_multiple_2(h, &G1, p(&I1), &G2, p(&I2));
    expect_status(
        "UninstallMultipleProtocolInterfaces succeeds",
        s,
        efi::Status::SUCCESS,
    );
}

unsafe fn open_rules() {
    let mut h: efi::Handle = null_mut();
    install(&mut h, &G1, p(&I1));
    // A second agent: any valid handle will do for the open-list rules.
    let mut agent2: efi::Handle = null_mut();
    install(&mut agent2, &G5, p(&I1));
    let me = image();
    let mut i = null_mut();
    let s = open(
        h,
        &G1,
        &mut i,
        me,
        null_mut(),
        efi::OPEN_PROTOCOL_GET_PROTOCOL,
    );
    check(
        "OpenProtocol(GET_PROTOCOL) returns the interface",
        s == efi::Status::SUCCESS && i == p(&I1),
        format_args!("{}", crate::out::St(s)),
    );
    let s = open(
        h,
        &G1,
        null_mut(),
        me,
        null_mut(),
        efi::OPEN_PROTOCOL_TEST_PROTOCOL,
    );
    expect_status(
        "OpenProtocol(TEST_PROTOCOL) with a NULL Interface",
        s,
        efi::Status::SUCCESS,
    );
    let s = open(
        h,
        &GMISSING,
        null_mut(),
        me,
        null_mut(),
        efi::OPEN_PROTOCOL_TEST_PROTOCOL,
    );
    expect_status(
        "OpenProtocol(TEST_PROTOCOL) of an absent protocol is UNSUPPORTED",
        s,
        efi::Status::UNSUPPORTED,
    );
    let s = open(
        h,
        &G1,
        null_mut(),
        me,
        null_mut(),
        efi::OPEN_PROTOCOL_GET_PROTOCOL,
    );
    expect_status(
        "OpenProtocol(GET_PROTOCOL) with a NULL Interface is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
    let s = open(h, &G1, &mut i, me, null_mut(), 0);
    expect_status(
        "OpenProtocol with Attributes 0 is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
    let s = open(h, &G1, &mut i, me, null_mut(), efi::OPEN_PROTOCOL_BY_DRIVER);
    expect_status(
        "OpenProtocol(BY_DRIVER) without a ControllerHandle is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );

    let s = open(h, &G1, &mut i, me, h, efi::OPEN_PROTOCOL_BY_DRIVER);
    expect_status("OpenProtocol(BY_DRIVER)", s, efi::Status::SUCCESS);
    let s = open(h, &G1, &mut i, me, h, efi::OPEN_PROTOCOL_BY_DRIVER);
    expect_status(
        "OpenProtocol(BY_DRIVER) twice by the same agent is ALREADY_STARTED",
        s,
        efi::Status::ALREADY_STARTED,
    );
    check(
        "OpenProtocol ALREADY_STARTED still returns the interface",
        i == p(&I1),
        format_args!("{i:p}"),
    );
    let s = open(h, &G1, &mut i, agent2, h, efi::OPEN_PROTOCOL_BY_DRIVER);
    expect_status(
        "OpenProtocol(BY_DRIVER) by another agent is ACCESS_DENIED",
        s,
        efi::Status::ACCESS_DENIED,
    );

    let mut info: *mut efi::OpenProtocolInformationEntry = null_mut();
    let mut n = 0usize;
    let mut g = G1;
    let s = (bs().open_protocol_information)(h, &mut g, &mut info, &mut n);
    expect_status("OpenProtocolInformation succeeds", s, efi::Status::SUCCESS);
    if s == efi::Status::SUCCESS {
        let e = core::slice::from_raw_parts(info, n);
        let by_driver = e
            .iter()
            .find(|e| e.attributes == efi::OPEN_PROTOCOL_BY_DRIVER)
            .map(|e| (e.agent_handle, e.controller_handle));
        check(
            "OpenProtocolInformation lists the BY_DRIVER open with its agent and controller",
            by_driver == Some((me, h)),
            format_args!("{n} entries, BY_DRIVER entry {by_driver:?}"),
        );
        (bs().free_pool)(info.cast());
    }
    expect_status(
        "UninstallProtocolInterface of a protocol opened BY_DRIVER by a non-driver is ACCESS_DENIED",
        uninstall(h, &G1, p(&I1)),
        efi::Status::ACCESS_DENIED,
    );
    expect_status("CloseProtocol", close(h, &G1, me, h), efi::Status::SUCCESS);
    expect_status(
        "CloseProtocol of an open that is gone is NOT_FOUND",
        close(h, &G1, me, h),
        efi::Status::NOT_FOUND,
    );

    let ex = efi::OPEN_PROTOCOL_BY_DRIVER | efi::OPEN_PROTOCOL_EXCLUSIVE;
    let s = open(h, &G1, &mut i, me, h, ex);
    expect_status("OpenProtocol(BY_DRIVER|EXCLUSIVE)", s, efi::Status::SUCCESS);
    let s = open(h, &G1, &mut i, me, h, ex);
    expect_status(
        "OpenProtocol(BY_DRIVER|EXCLUSIVE) twice by the same agent is ALREADY_STARTED",
        s,
        efi::Status::ALREADY_STARTED,
    );
    let s = open(h, &G1, &mut i, agent2, h, efi::OPEN_PROTOCOL_BY_DRIVER);
    expect_status(
        "OpenProtocol(BY_DRIVER) while opened EXCLUSIVE is ACCESS_DENIED",
        s,
        efi::Status::ACCESS_DENIED,
    );
    let s = open(h, &G1, &mut i, agent2, h, efi::OPEN_PROTOCOL_EXCLUSIVE);
    expect_status(
        "OpenProtocol(EXCLUSIVE) while opened EXCLUSIVE is ACCESS_DENIED",
        s,
        efi::Status::ACCESS_DENIED,
    );
    let s = open(
        h,
        &G1,
        &mut i,
        agent2,
        null_mut(),
        efi::OPEN_PROTOCOL_GET_PROTOCOL,
    );
    expect_status(
        "OpenProtocol(GET_PROTOCOL) while opened EXCLUSIVE still succeeds",
        s,
        efi::Status::SUCCESS,
    );
    expect_status(
        "CloseProtocol of the EXCLUSIVE open",
        close(h, &G1, me, h),
        efi::Status::SUCCESS,
    );
    // The GET_PROTOCOL open of agent2 goes away with the uninstall.
    expect_status(
        "UninstallProtocolInterface after the opens are closed",
        uninstall(h, &G1, p(&I1)),
        efi::Status::SUCCESS,
    );
    uninstall(agent2, &G5, p(&I1));
}

static NOTIFY_COUNT: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

extern "efiapi" fn count_notify(_e: efi::Event, _ctx: *mut c_void) {
    NOTIFY_COUNT.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
}

unsafe fn notify() {
    let bs = bs();
    let mut ev: efi::Event = null_mut();
    let s = (bs.create_event)(
        efi::EVT_NOTIFY_SIGNAL,
        efi::TPL_CALLBACK,
        Some(count_notify),
        null_mut(),
        &mut ev,
    );
    expect_status(
        "CreateEvent for a protocol notification",
        s,
        efi::Status::SUCCESS,
    );
    let mut reg: *mut c_void = null_mut();
    let mut g = G3;
    let s = (bs.register_protocol_notify)(&mut g, ev, &mut reg);
    expect_status("RegisterProtocolNotify", s, efi::Status::SUCCESS);
    let (s, _, _) = locate_handle(efi::BY_REGISTER_NOTIFY, None, reg);
    expect_status(
        "LocateHandle(ByRegisterNotify) before any install is NOT_FOUND",
        s,
        efi::Status::NOT_FOUND,
    );
    let before = NOTIFY_COUNT.load(core::sync::atomic::Ordering::Relaxed);
    let mut h: efi::Handle = null_mut();
    install(&mut h, &G3, p(&I3));
    let after = NOTIFY_COUNT.load(core::sync::atomic::Ordering::Relaxed);
    check(
        "RegisterProtocolNotify: installing the protocol signals the event",
        after > before,
        format_args!("notify ran {} times", after - before),
    );
    // ByRegisterNotify returns one handle per call.
    let mut one: efi::Handle = null_mut();
    let mut size = 8usize;
    let s = (bs.locate_handle)(
        efi::BY_REGISTER_NOTIFY,
        null_mut(),
        reg,
        &mut size,
        &mut one,
    );
    check(
        "LocateHandle(ByRegisterNotify) returns the newly installed handle",
        s == efi::Status::SUCCESS && one == h && size == 8,
        format_args!("{} size {size}", crate::out::St(s)),
    );
    let (s, _, _) = locate_handle(efi::BY_REGISTER_NOTIFY, None, reg);
    expect_status(
        "LocateHandle(ByRegisterNotify) a second time is NOT_FOUND",
        s,
        efi::Status::NOT_FOUND,
    );
    expect_status(
        "CloseEvent of the notification event",
        (bs.close_event)(ev),
        efi::Status::SUCCESS,
    );
    uninstall(h, &G3, p(&I3));
}

/// ConnectController/DisconnectController on a handle no driver can manage.
unsafe fn connect() {
    let bs = bs();
    let mut h: efi::Handle = null_mut();
    install(&mut h, &G2, p(&I2));
    let s = (bs.connect_controller)(h, null_mut(), null_mut(), false.into());
    expect_status(
        "ConnectController with no driver for the handle is NOT_FOUND",
        s,
        efi::Status::NOT_FOUND,
    );
    let s = (bs.connect_controller)(null_mut(), null_mut(), null_mut(), false.into());
    expect_status(
        "ConnectController(NULL) is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
    let s = (bs.disconnect_controller)(h, null_mut(), null_mut());
    expect_status(
        "DisconnectController of a handle no driver manages",
        s,
        efi::Status::SUCCESS,
    );
    uninstall(h, &G2, p(&I2));
}

const G_DRV: efi::Guid = guid(
    0x6e1c_0a0d,
    0x5d2b,
    0x4c7a,
    [0x8e, 0x11, 0x3f, 0x42, 0x9a, 0x0c, 0x71, 0x0d],
);
static I_DRV: u64 = 0xd7;
static STARTS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
static STOPS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

extern "efiapi" fn drv_supported(
    _this: *mut r_efi::protocols::driver_binding::Protocol,
    ctrl: efi::Handle,
    _rem: *mut r_efi::protocols::device_path::Protocol,
) -> efi::Status {
    let mut g = G_DRV;
    let mut i: *mut c_void = null_mut();
    // SAFETY: boot services are live while the app runs.
    unsafe { (bs().handle_protocol)(ctrl, &mut g, &mut i) }
}

extern "efiapi" fn drv_start(
    this: *mut r_efi::protocols::driver_binding::Protocol,
    ctrl: efi::Handle,
    _rem: *mut r_efi::protocols::device_path::Protocol,
) -> efi::Status {
    let mut g = G_DRV;
    let mut i: *mut c_void = null_mut();
    // SAFETY: `this` is our own binding; a driver opens its controller BY_DRIVER.
    let s = unsafe {
        (bs().open_protocol)(
            ctrl,
            &mut g,
            &mut i,
            (*this).driver_binding_handle,
            ctrl,
            efi::OPEN_PROTOCOL_BY_DRIVER,
        )
    };
    if s == efi::Status::SUCCESS {
        STARTS.fetch_add(1, core::sync::atomic::Ordering::SeqCst);
    }
    s
}

extern "efiapi" fn drv_stop(
    this: *mut r_efi::protocols::driver_binding::Protocol,
    ctrl: efi::Handle,
    _n: usize,
    _children: *mut efi::Handle,
) -> efi::Status {
    let mut g = G_DRV;
    // SAFETY: as in drv_start.
    let s = unsafe { (bs().close_protocol)(ctrl, &mut g, (*this).driver_binding_handle, ctrl) };
    if s == efi::Status::SUCCESS {
        STOPS.fetch_add(1, core::sync::atomic::Ordering::SeqCst);
    }
    s
}

/// The driver model: a driver binding of our own is started by
/// ConnectController, and stopped when its controller's protocol is
/// uninstalled (UninstallProtocolInterface disconnects BY_DRIVER agents).
unsafe fn driver_model() {
    use core::sync::atomic::Ordering::SeqCst;
    let bs = bs();
    let db = alloc::boxed::Box::leak(alloc::boxed::Box::new(
        r_efi::protocols::driver_binding::Protocol {
            supported: drv_supported,
            start: drv_start,
            stop: drv_stop,
            version: 0x10,
            image_handle: image(),
            driver_binding_handle: null_mut(),
        },
    ));
    let mut dh: efi::Handle = null_mut();
    let mut g = r_efi::protocols::driver_binding::PROTOCOL_GUID;
    if !expect_status(
        "InstallProtocolInterface(DriverBinding)",
        (bs.install_protocol_interface)(
            &mut dh,
            &mut g,
            efi::NATIVE_INTERFACE,
            db as *mut _ as *mut c_void,
        ),
        efi::Status::SUCCESS,
    ) {
        return;
    }
    db.driver_binding_handle = dh;
    let mut ctrl: efi::Handle = null_mut();
    install(&mut ctrl, &G_DRV, p(&I_DRV));
    let s = (bs.connect_controller)(ctrl, null_mut(), null_mut(), false.into());
    expect_status(
        "ConnectController starts a driver whose Supported() accepts",
        s,
        efi::Status::SUCCESS,
    );
    expect_eq("the driver's Start() ran once", STARTS.load(SeqCst), 1);
    let s = uninstall(ctrl, &G_DRV, p(&I_DRV));
    expect_status(
        "UninstallProtocolInterface disconnects the BY_DRIVER driver, then succeeds",
        s,
        efi::Status::SUCCESS,
    );
    expect_eq("the driver's Stop() ran once", STOPS.load(SeqCst), 1);
    let mut g = r_efi::protocols::driver_binding::PROTOCOL_GUID;
    (bs.uninstall_protocol_interface)(dh, &mut g, db as *mut _ as *mut c_void);
}

unsafe fn locate_all() {
    let (s0, size, v) = locate_handle(efi::ALL_HANDLES, None, null_mut());
    expect_status(
        "LocateHandle(AllHandles) with a zero buffer is BUFFER_TOO_SMALL",
        s0,
        efi::Status::BUFFER_TOO_SMALL,
    );
    check(
        "LocateHandle(AllHandles) includes this image's handle",
        v.contains(&image()) && size == v.len() * 8,
        format_args!("{} handles, size {size}", v.len()),
    );
    let mut n = 0usize;
    let mut buf: *mut efi::Handle = null_mut();
    let s = (bs().locate_handle_buffer)(efi::ALL_HANDLES, null_mut(), null_mut(), &mut n, &mut buf);
    expect_status("LocateHandleBuffer(AllHandles)", s, efi::Status::SUCCESS);
    if s == efi::Status::SUCCESS {
        expect_eq(
            "LocateHandleBuffer(AllHandles) agrees with LocateHandle",
            n,
            v.len(),
        );
        (bs().free_pool)(buf.cast());
    }
    let mut size = 0usize;
    let s = (bs().locate_handle)(
        efi::BY_PROTOCOL,
        null_mut(),
        null_mut(),
        &mut size,
        null_mut(),
    );
    expect_status(
        "LocateHandle(ByProtocol) with a NULL Protocol is INVALID_PARAMETER",
        s,
        efi::Status::INVALID_PARAMETER,
    );
}
