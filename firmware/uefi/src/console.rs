//! EFI text console on the serial line: SimpleTextOutput writes UTF-8 with
//! ANSI control sequences; SimpleTextInput(Ex) decodes the terminal's bytes
//! (escape sequences included) into UEFI keys.

use crate::machine::machine;
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use core::ffi::c_void;
use ember_term::{Key, KeyDecoder};
use r_efi::efi::{Boolean, Event, Status};
use r_efi::protocols::{simple_text_input, simple_text_input_ex, simple_text_output};
use spin::Mutex;

const COLS: usize = 80;
const ROWS: usize = 25;

/// ConOut: the protocol table and its mode, in one allocation.
#[repr(C)]
pub struct TextOut {
    pub proto: simple_text_output::Protocol,
    pub mode: simple_text_output::Mode,
}

/// Build ConOut. The mode pointer is fixed up once the box has its address.
pub fn new_text_out() -> Box<TextOut> {
    let mut t = Box::new(TextOut {
        proto: simple_text_output::Protocol {
            reset: out_reset,
            output_string: out_string,
            test_string: out_test,
            query_mode: out_query_mode,
            set_mode: out_set_mode,
            set_attribute: out_set_attribute,
            clear_screen: out_clear,
            set_cursor_position: out_set_cursor,
            enable_cursor: out_enable_cursor,
            mode: core::ptr::null_mut(),
        },
        mode: simple_text_output::Mode {
            // One mode: 80x25, like a serial terminal's lowest common denominator.
            max_mode: 1,
            mode: 0,
            attribute: 0x07,
            cursor_column: 0,
            cursor_row: 0,
            cursor_visible: Boolean::TRUE,
        },
    });
    t.proto.mode = &mut t.mode;
    t
}

/// # Safety
/// `this` must be Ember's ConOut protocol.
unsafe fn out<'a>(this: *mut simple_text_output::Protocol) -> Option<&'a mut TextOut> {
    // SAFETY: `proto` is the first field of the #[repr(C)] TextOut.
    (!this.is_null()).then(|| unsafe { &mut *(this as *mut TextOut) })
}

extern "efiapi" fn out_reset(this: *mut simple_text_output::Protocol, _ext: Boolean) -> Status {
    out_set_attribute(this, 0x07);
    out_clear(this)
}

extern "efiapi" fn out_string(this: *mut simple_text_output::Protocol, s: *mut u16) -> Status {
    // SAFETY: the caller passes Ember's ConOut.
    let Some(me) = (unsafe { out(this) }) else {
        return Status::INVALID_PARAMETER;
    };
    if s.is_null() {
        return Status::INVALID_PARAMETER;
    }
    let mut i = 0usize;
    let units = core::iter::from_fn(|| {
        // SAFETY: a NUL-terminated UCS-2 string (UEFI contract); the
        // consumer stops at the NUL and after 64 Ki units.
        let u = unsafe { *s.add(i) };
        i += 1;
        Some(u)
    });
    let mut col = me.mode.cursor_column as usize;
    let mut row = me.mode.cursor_row as usize;
    ember_term::ucs2_to_utf8(units, 65536, |b| {
        match b {
            b"\r" => col = 0,
            b"\n" => row = (row + 1).min(ROWS - 1),
            b"\x08" => col = col.saturating_sub(1),
            _ => {
                col += 1;
                if col >= COLS {
                    col = 0;
                    row = (row + 1).min(ROWS - 1);
                }
            }
        }
        machine().console_write(b);
    });
    me.mode.cursor_column = col as i32;
    me.mode.cursor_row = row as i32;
    Status::SUCCESS
}

extern "efiapi" fn out_test(this: *mut simple_text_output::Protocol, s: *mut u16) -> Status {
    if this.is_null() || s.is_null() {
        return Status::INVALID_PARAMETER;
    }
    // Every UCS-2 character can be sent to the terminal as UTF-8.
    Status::SUCCESS
}

extern "efiapi" fn out_query_mode(
    this: *mut simple_text_output::Protocol,
    mode: usize,
    cols: *mut usize,
    rows: *mut usize,
) -> Status {
    if this.is_null() || cols.is_null() || rows.is_null() {
        return Status::INVALID_PARAMETER;
    }
    if mode != 0 {
        return Status::UNSUPPORTED;
    }
    // SAFETY: out pointers checked.
    unsafe {
        *cols = COLS;
        *rows = ROWS;
    }
    Status::SUCCESS
}

extern "efiapi" fn out_set_mode(this: *mut simple_text_output::Protocol, mode: usize) -> Status {
    if mode != 0 {
        return Status::UNSUPPORTED;
    }
    out_clear(this)
}

extern "efiapi" fn out_set_attribute(
    this: *mut simple_text_output::Protocol,
    attr: usize,
) -> Status {
    // SAFETY: the caller passes Ember's ConOut.
    let Some(me) = (unsafe { out(this) }) else {
        return Status::INVALID_PARAMETER;
    };
    if attr & !0x7f != 0 {
        return Status::UNSUPPORTED;
    }
    let mut b = [0u8; 16];
    let n = ember_term::attribute_sgr(attr, &mut b);
    machine().console_write(&b[..n]);
    me.mode.attribute = attr as i32;
    Status::SUCCESS
}

extern "efiapi" fn out_clear(this: *mut simple_text_output::Protocol) -> Status {
    // SAFETY: the caller passes Ember's ConOut.
    let Some(me) = (unsafe { out(this) }) else {
        return Status::INVALID_PARAMETER;
    };
    machine().console_write(b"\x1b[2J\x1b[H");
    me.mode.cursor_column = 0;
    me.mode.cursor_row = 0;
    Status::SUCCESS
}

extern "efiapi" fn out_set_cursor(
    this: *mut simple_text_output::Protocol,
    col: usize,
    row: usize,
) -> Status {
    // SAFETY: the caller passes Ember's ConOut.
    let Some(me) = (unsafe { out(this) }) else {
        return Status::INVALID_PARAMETER;
    };
    if col >= COLS || row >= ROWS {
        return Status::UNSUPPORTED;
    }
    let s = alloc::format!("\x1b[{};{}H", row + 1, col + 1);
    machine().console_write(s.as_bytes());
    me.mode.cursor_column = col as i32;
    me.mode.cursor_row = row as i32;
    Status::SUCCESS
}

extern "efiapi" fn out_enable_cursor(
    this: *mut simple_text_output::Protocol,
    on: Boolean,
) -> Status {
    // SAFETY: the caller passes Ember's ConOut.
    let Some(me) = (unsafe { out(this) }) else {
        return Status::INVALID_PARAMETER;
    };
    machine().console_write(if on.into() {
        b"\x1b[?25h"
    } else {
        b"\x1b[?25l"
    });
    me.mode.cursor_visible = on;
    Status::SUCCESS
}

// ---- input -----------------------------------------------------------------

struct Input {
    decoder: KeyDecoder,
    keys: VecDeque<Key>,
    /// When the last byte of a pending escape sequence arrived.
    esc_at_ns: u64,
}

static INPUT: Mutex<Input> = Mutex::new(Input {
    decoder: KeyDecoder::new(),
    keys: VecDeque::new(),
    esc_at_ns: 0,
});

/// How long a lone ESC waits for the rest of a sequence.
const ESC_TIMEOUT_NS: u64 = 50_000_000;

/// Drain the UART into the key queue, then run the key-notify functions
/// registered for the new keys (with no lock held: they may call us back).
pub fn poll_keys() {
    let mut fresh = alloc::vec::Vec::new();
    {
        let mut inp = INPUT.lock();
        while let Some(b) = machine().console_read() {
            inp.esc_at_ns = crate::machine::machine().now_ns();
            if let Some(k) = inp.decoder.push(b) {
                fresh.push(k);
            }
        }
        if inp.decoder.pending()
            && crate::machine::machine()
                .now_ns()
                .saturating_sub(inp.esc_at_ns)
                > ESC_TIMEOUT_NS
        {
            if let Some(k) = inp.decoder.flush() {
                fresh.push(k);
            }
        }
        inp.keys.extend(fresh.iter().copied());
    }
    for k in fresh {
        let calls: alloc::vec::Vec<usize> = NOTIFIES
            .lock()
            .iter()
            .filter(|(d, f)| {
                *f != 0 && d.key.scan_code == k.scan_code && d.key.unicode_char == k.unicode_char
            })
            .map(|(_, f)| *f)
            .collect();
        for f in calls {
            let mut data = simple_text_input_ex::KeyData {
                key: simple_text_input::InputKey {
                    scan_code: k.scan_code,
                    unicode_char: k.unicode_char,
                },
                key_state: simple_text_input_ex::KeyState {
                    key_shift_state: 0,
                    key_toggle_state: 0,
                },
            };
            // SAFETY: `f` was registered through RegisterKeyNotify as a
            // KeyNotifyFunction; `data` lives across the call.
            let func: simple_text_input_ex::KeyNotifyFunction = unsafe { core::mem::transmute(f) };
            func(&mut data);
        }
    }
}

/// Whether a key is waiting (for WaitForKey's notify function).
pub fn key_available() -> bool {
    poll_keys();
    !INPUT.lock().keys.is_empty()
}

fn pop_key() -> Option<Key> {
    poll_keys();
    INPUT.lock().keys.pop_front()
}

/// ConIn: SimpleTextInput and SimpleTextInputEx share the key queue.
#[repr(C)]
pub struct TextIn {
    pub proto: simple_text_input::Protocol,
    pub proto_ex: simple_text_input_ex::Protocol,
}

/// Build ConIn; `wait_for_key` is an EVT_NOTIFY_WAIT event whose notify
/// function polls the UART (see `efi::key_wait_notify`).
pub fn new_text_in(wait_for_key: Event) -> Box<TextIn> {
    Box::new(TextIn {
        proto: simple_text_input::Protocol {
            reset: in_reset,
            read_key_stroke: in_read,
            wait_for_key,
        },
        proto_ex: simple_text_input_ex::Protocol {
            reset: in_reset_ex,
            read_key_stroke_ex: in_read_ex,
            wait_for_key_ex: wait_for_key,
            set_state: in_set_state,
            register_key_notify: in_register,
            unregister_key_notify: in_unregister,
        },
    })
}

fn discard_keys() -> Status {
    poll_keys();
    INPUT.lock().keys.clear();
    Status::SUCCESS
}

extern "efiapi" fn in_reset(this: *mut simple_text_input::Protocol, _ext: Boolean) -> Status {
    if this.is_null() {
        return Status::INVALID_PARAMETER;
    }
    discard_keys()
}

extern "efiapi" fn in_reset_ex(this: *mut simple_text_input_ex::Protocol, _ext: Boolean) -> Status {
    if this.is_null() {
        return Status::INVALID_PARAMETER;
    }
    discard_keys()
}

extern "efiapi" fn in_read(
    this: *mut simple_text_input::Protocol,
    key: *mut simple_text_input::InputKey,
) -> Status {
    if this.is_null() || key.is_null() {
        return Status::INVALID_PARAMETER;
    }
    match pop_key() {
        Some(k) => {
            // SAFETY: out pointer checked.
            unsafe {
                *key = simple_text_input::InputKey {
                    scan_code: k.scan_code,
                    unicode_char: k.unicode_char,
                }
            };
            Status::SUCCESS
        }
        None => Status::NOT_READY,
    }
}

extern "efiapi" fn in_read_ex(
    this: *mut simple_text_input_ex::Protocol,
    data: *mut simple_text_input_ex::KeyData,
) -> Status {
    if this.is_null() || data.is_null() {
        return Status::INVALID_PARAMETER;
    }
    match pop_key() {
        Some(k) => {
            // SAFETY: out pointer checked. A serial line reports no shift or
            // toggle state, so both "valid" bits stay clear (as the spec allows).
            unsafe {
                *data = simple_text_input_ex::KeyData {
                    key: simple_text_input::InputKey {
                        scan_code: k.scan_code,
                        unicode_char: k.unicode_char,
                    },
                    key_state: simple_text_input_ex::KeyState {
                        key_shift_state: 0,
                        key_toggle_state: 0,
                    },
                };
            }
            Status::SUCCESS
        }
        None => Status::NOT_READY,
    }
}

extern "efiapi" fn in_set_state(
    this: *mut simple_text_input_ex::Protocol,
    state: *mut u8,
) -> Status {
    if this.is_null() || state.is_null() {
        return Status::INVALID_PARAMETER;
    }
    // A terminal has no lock LEDs to set: accepting the state is all there is.
    Status::SUCCESS
}

/// Registered key-notify callbacks: (key, function), polled with the queue.
static NOTIFIES: Mutex<alloc::vec::Vec<(simple_text_input_ex::KeyData, usize)>> =
    Mutex::new(alloc::vec::Vec::new());

extern "efiapi" fn in_register(
    this: *mut simple_text_input_ex::Protocol,
    data: *mut simple_text_input_ex::KeyData,
    func: simple_text_input_ex::KeyNotifyFunction,
    handle: *mut *mut c_void,
) -> Status {
    if this.is_null() || data.is_null() || handle.is_null() {
        return Status::INVALID_PARAMETER;
    }
    let mut n = NOTIFIES.lock();
    // SAFETY: the caller's key description.
    let kd = unsafe { *data };
    n.push((kd, func as usize));
    // The registration handle is the entry's 1-based index, never null.
    // SAFETY: out pointer checked.
    unsafe { *handle = n.len() as *mut c_void };
    Status::SUCCESS
}

extern "efiapi" fn in_unregister(
    this: *mut simple_text_input_ex::Protocol,
    handle: *mut c_void,
) -> Status {
    if this.is_null() {
        return Status::INVALID_PARAMETER;
    }
    let mut n = NOTIFIES.lock();
    let i = handle as usize;
    match n.get_mut(i.wrapping_sub(1)) {
        Some(e) if e.1 != 0 => {
            e.1 = 0; // keep indices stable
            Status::SUCCESS
        }
        _ => Status::INVALID_PARAMETER,
    }
}
