//! SimpleTextOutput, SimpleTextInput, UnicodeCollation2 and RNG.

use crate::out::{check, expect_eq, expect_status, info, St};
use crate::util::{guid, locate_protocol, st, u16z};
use core::ptr::null_mut;
use r_efi::efi;
use r_efi::protocols::{rng, simple_text_input};

pub unsafe fn run() {
    text_out();
    text_in();
    collation();
    rng();
}

unsafe fn text_out() {
    let con = (*st()).con_out;
    if !check(
        "SystemTable ConOut is set",
        !con.is_null(),
        format_args!("NULL"),
    ) {
        return;
    }
    let mut s = u16z("(OutputString check)\r\n");
    expect_status(
        "ConOut OutputString",
        ((*con).output_string)(con, s.as_mut_ptr()),
        efi::Status::SUCCESS,
    );
    let (mut cols, mut rows) = (0usize, 0usize);
    let r = ((*con).query_mode)(con, 0, &mut cols, &mut rows);
    check(
        "ConOut QueryMode(0) is 80x25",
        r == efi::Status::SUCCESS && (cols, rows) == (80, 25),
        format_args!("{} {cols}x{rows}", St(r)),
    );
    let mode = &*(*con).mode;
    check(
        "ConOut Mode.MaxMode >= 1",
        mode.max_mode >= 1,
        format_args!("MaxMode {}", mode.max_mode),
    );
    let r = ((*con).query_mode)(con, mode.max_mode as usize, &mut cols, &mut rows);
    expect_status(
        "ConOut QueryMode(MaxMode) is UNSUPPORTED",
        r,
        efi::Status::UNSUPPORTED,
    );
    // EFI_LIGHTGRAY | EFI_BACKGROUND_BLACK: the usual default, harmless to set.
    let r = ((*con).set_attribute)(con, 0x07);
    expect_status(
        "ConOut SetAttribute(LIGHTGRAY on BLACK)",
        r,
        efi::Status::SUCCESS,
    );
    expect_eq(
        "ConOut Mode.Attribute reflects SetAttribute",
        (*(*con).mode).attribute,
        0x07,
    );
    let mut bad = u16z("ok");
    let r = ((*con).test_string)(con, bad.as_mut_ptr());
    expect_status("ConOut TestString of ASCII", r, efi::Status::SUCCESS);
}

unsafe fn text_in() {
    let cin = (*st()).con_in;
    if !check(
        "SystemTable ConIn is set",
        !cin.is_null(),
        format_args!("NULL"),
    ) {
        return;
    }
    let mut key = simple_text_input::InputKey::default();
    let r = ((*cin).read_key_stroke)(cin, &mut key);
    expect_status(
        "ConIn ReadKeyStroke with no key pending is NOT_READY",
        r,
        efi::Status::NOT_READY,
    );
    let r = (crate::util::bs().check_event)((*cin).wait_for_key);
    expect_status(
        "ConIn WaitForKey is not signalled with no key pending",
        r,
        efi::Status::NOT_READY,
    );
}

/// EFI_UNICODE_COLLATION_PROTOCOL (UEFI 2.x, "UnicodeCollation2"); r-efi
/// does not define it.
#[repr(C)]
struct Collation {
    stri_coll: unsafe extern "efiapi" fn(*mut Collation, *mut u16, *mut u16) -> isize,
    metai_match: unsafe extern "efiapi" fn(*mut Collation, *mut u16, *mut u16) -> efi::Boolean,
    str_lwr: unsafe extern "efiapi" fn(*mut Collation, *mut u16),
    str_upr: unsafe extern "efiapi" fn(*mut Collation, *mut u16),
    fat_to_str: unsafe extern "efiapi" fn(*mut Collation, usize, *mut u8, *mut u16),
    str_to_fat: unsafe extern "efiapi" fn(*mut Collation, *mut u16, usize, *mut u8) -> efi::Boolean,
    supported_languages: *const u8,
}

const COLLATION2_GUID: efi::Guid = guid(
    0xa4c7_51fc,
    0x23ae,
    0x4c3e,
    [0x92, 0xe9, 0x49, 0x64, 0xcf, 0x63, 0xf3, 0x49],
);

unsafe fn collation() {
    let Some(c) = locate_protocol::<Collation>(&COLLATION2_GUID) else {
        check(
            "UnicodeCollation2 protocol is present",
            false,
            format_args!("absent"),
        );
        return;
    };
    check(
        "UnicodeCollation2 protocol is present",
        true,
        format_args!(""),
    );
    let (mut a, mut b) = (u16z("Hello World"), u16z("hELLO wORLD"));
    expect_eq(
        "UnicodeCollation2 StriColl ignores case",
        ((*c).stri_coll)(c, a.as_mut_ptr(), b.as_mut_ptr()),
        0,
    );
    let (mut a, mut b) = (u16z("abc"), u16z("ABD"));
    let r = ((*c).stri_coll)(c, a.as_mut_ptr(), b.as_mut_ptr());
    check(
        "UnicodeCollation2 StriColl orders abc before ABD",
        r < 0,
        format_args!("returned {r}"),
    );
    let (mut s, mut pat) = (u16z("BOOTX64.EFI"), u16z("*.efi"));
    let m = ((*c).metai_match)(c, s.as_mut_ptr(), pat.as_mut_ptr());
    check(
        "UnicodeCollation2 MetaiMatch(\"BOOTX64.EFI\", \"*.efi\")",
        m.into(),
        format_args!("no match"),
    );
    let mut u = u16z("MixedCase");
    ((*c).str_upr)(c, u.as_mut_ptr());
    expect_eq(
        "UnicodeCollation2 StrUpr",
        u.as_slice(),
        u16z("MIXEDCASE").as_slice(),
    );
    let lang_ok = if (*c).supported_languages.is_null() {
        false
    } else {
        let mut s = alloc::string::String::new();
        let mut i = 0;
        while *(*c).supported_languages.add(i) != 0 && i < 256 {
            s.push(char::from(*(*c).supported_languages.add(i)));
            i += 1;
        }
        s.split(';').any(|l| l.starts_with("en"))
    };
    check(
        "UnicodeCollation2 SupportedLanguages lists an English (RFC 4646) code",
        lang_ok,
        format_args!("no en*"),
    );
}

unsafe fn rng() {
    let Some(r) = locate_protocol::<rng::Protocol>(&rng::PROTOCOL_GUID) else {
        info(
            "rng",
            format_args!("EFI_RNG_PROTOCOL absent (optional); RNG checks skipped"),
        );
        return;
    };
    let mut size = 0usize;
    let s = ((*r).get_info)(r, &mut size, null_mut());
    check(
        "RNG GetInfo with a zero buffer is BUFFER_TOO_SMALL with the size",
        s == efi::Status::BUFFER_TOO_SMALL && size >= 16 && size.is_multiple_of(16),
        format_args!("{} size {size}", St(s)),
    );
    let mut out = [0u8; 32];
    let s = ((*r).get_rng)(r, null_mut(), out.len(), out.as_mut_ptr());
    expect_status(
        "RNG GetRNG with the default algorithm",
        s,
        efi::Status::SUCCESS,
    );
    check(
        "RNG GetRNG output is not all zero",
        out.iter().any(|&b| b != 0),
        format_args!("32 zero bytes"),
    );
}
