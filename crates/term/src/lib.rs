//! What Ember's UEFI console needs to speak to a serial terminal, without
//! touching hardware: decoding the bytes a terminal sends into UEFI key
//! strokes (scan code or character), mapping UEFI text attributes to ANSI
//! colours, and turning UCS-2 output strings into UTF-8.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

/// UEFI scan codes (UEFI spec, "EFI Scan Codes for EFI_SIMPLE_TEXT_INPUT_PROTOCOL").
pub mod scan {
    pub const NULL: u16 = 0x00;
    pub const UP: u16 = 0x01;
    pub const DOWN: u16 = 0x02;
    pub const RIGHT: u16 = 0x03;
    pub const LEFT: u16 = 0x04;
    pub const HOME: u16 = 0x05;
    pub const END: u16 = 0x06;
    pub const INSERT: u16 = 0x07;
    pub const DELETE: u16 = 0x08;
    pub const PAGE_UP: u16 = 0x09;
    pub const PAGE_DOWN: u16 = 0x0a;
    pub const F1: u16 = 0x0b;
    pub const F2: u16 = 0x0c;
    pub const F3: u16 = 0x0d;
    pub const F4: u16 = 0x0e;
    pub const F5: u16 = 0x0f;
    pub const F6: u16 = 0x10;
    pub const F7: u16 = 0x11;
    pub const F8: u16 = 0x12;
    pub const F9: u16 = 0x13;
    pub const F10: u16 = 0x14;
    pub const F11: u16 = 0x15;
    pub const F12: u16 = 0x16;
    pub const ESC: u16 = 0x17;
}

/// One decoded key stroke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    pub scan_code: u16,
    pub unicode_char: u16,
}

impl Key {
    const fn scan(s: u16) -> Key {
        Key {
            scan_code: s,
            unicode_char: 0,
        }
    }
    const fn ch(c: u16) -> Key {
        Key {
            scan_code: scan::NULL,
            unicode_char: c,
        }
    }
}

/// Turns the terminal's byte stream into keys. Escape sequences arrive a
/// byte at a time; a lone ESC is only reported once the caller says no more
/// bytes came within its timeout ([`KeyDecoder::flush`]).
#[derive(Default, Debug)]
pub struct KeyDecoder {
    buf: [u8; 8],
    len: usize,
    /// Pending UTF-8 continuation bytes of a multi-byte character.
    utf8_need: u8,
    utf8_acc: u32,
}

impl KeyDecoder {
    pub const fn new() -> Self {
        KeyDecoder {
            buf: [0; 8],
            len: 0,
            utf8_need: 0,
            utf8_acc: 0,
        }
    }

    /// Whether a partial escape sequence is pending.
    pub fn pending(&self) -> bool {
        self.len > 0
    }

    /// Feed one byte; returns a key when one is complete.
    pub fn push(&mut self, b: u8) -> Option<Key> {
        if self.len == 0 {
            if self.utf8_need > 0 {
                return self.push_utf8(b);
            }
            return match b {
                0x1b => {
                    self.buf[0] = b;
                    self.len = 1;
                    None
                }
                // Terminals send CR for Enter and DEL for Backspace.
                b'\r' | b'\n' => Some(Key::ch(0x0d)),
                0x7f | 0x08 => Some(Key::ch(0x08)),
                b'\t' => Some(Key::ch(0x09)),
                0x00..=0x1f => None,
                0x20..=0x7e => Some(Key::ch(u16::from(b))),
                0xc0..=0xdf => self.start_utf8(b & 0x1f, 1),
                0xe0..=0xef => self.start_utf8(b & 0x0f, 2),
                _ => None, // 4-byte UTF-8 has no UCS-2 form; stray bytes dropped
            };
        }
        if self.len >= self.buf.len() {
            self.len = 0; // overlong: drop it
            return None;
        }
        self.buf[self.len] = b;
        self.len += 1;
        let seq = &self.buf[1..self.len];
        match decode_escape(seq) {
            Decoded::Done(k) => {
                self.len = 0;
                Some(k)
            }
            Decoded::Incomplete => None,
            Decoded::Unknown => {
                self.len = 0;
                None
            }
        }
    }

    /// No further byte arrived: a pending lone ESC is the Escape key.
    pub fn flush(&mut self) -> Option<Key> {
        let k = (self.len == 1).then_some(Key::scan(scan::ESC));
        self.len = 0;
        k
    }

    fn start_utf8(&mut self, bits: u8, need: u8) -> Option<Key> {
        self.utf8_acc = u32::from(bits);
        self.utf8_need = need;
        None
    }

    fn push_utf8(&mut self, b: u8) -> Option<Key> {
        if b & 0xc0 != 0x80 {
            self.utf8_need = 0;
            return self.push(b);
        }
        self.utf8_acc = (self.utf8_acc << 6) | u32::from(b & 0x3f);
        self.utf8_need -= 1;
        if self.utf8_need > 0 {
            return None;
        }
        u16::try_from(self.utf8_acc)
            .ok()
            .filter(|c| !(0xd800..0xe000).contains(c))
            .map(Key::ch)
    }
}

enum Decoded {
    Done(Key),
    Incomplete,
    Unknown,
}

/// Decode the bytes after ESC (VT100/xterm sequences).
fn decode_escape(seq: &[u8]) -> Decoded {
    use Decoded::*;
    match seq {
        [] => Incomplete,
        [b'['] | [b'O'] => Incomplete,
        [b'[', b'A'] | [b'O', b'A'] => Done(Key::scan(scan::UP)),
        [b'[', b'B'] | [b'O', b'B'] => Done(Key::scan(scan::DOWN)),
        [b'[', b'C'] | [b'O', b'C'] => Done(Key::scan(scan::RIGHT)),
        [b'[', b'D'] | [b'O', b'D'] => Done(Key::scan(scan::LEFT)),
        [b'[', b'H'] | [b'O', b'H'] => Done(Key::scan(scan::HOME)),
        [b'[', b'F'] | [b'O', b'F'] => Done(Key::scan(scan::END)),
        [b'O', b'P'] => Done(Key::scan(scan::F1)),
        [b'O', b'Q'] => Done(Key::scan(scan::F2)),
        [b'O', b'R'] => Done(Key::scan(scan::F3)),
        [b'O', b'S'] => Done(Key::scan(scan::F4)),
        [b'O', _] => Unknown,
        [b'[', rest @ ..] => {
            // CSI <number> ~ : editing and function keys.
            let Some((&last, num)) = rest.split_last() else {
                return Incomplete;
            };
            if last.is_ascii_digit() {
                return if num.len() < 3 { Incomplete } else { Unknown };
            }
            if last != b'~' || num.is_empty() || !num.iter().all(u8::is_ascii_digit) {
                return Unknown;
            }
            let n = num.iter().fold(0u32, |a, d| a * 10 + u32::from(d - b'0'));
            let s = match n {
                1 | 7 => scan::HOME,
                2 => scan::INSERT,
                3 => scan::DELETE,
                4 | 8 => scan::END,
                5 => scan::PAGE_UP,
                6 => scan::PAGE_DOWN,
                11 => scan::F1,
                12 => scan::F2,
                13 => scan::F3,
                14 => scan::F4,
                15 => scan::F5,
                17 => scan::F6,
                18 => scan::F7,
                19 => scan::F8,
                20 => scan::F9,
                21 => scan::F10,
                23 => scan::F11,
                24 => scan::F12,
                _ => return Unknown,
            };
            Done(Key::scan(s))
        }
        // ESC followed by an ordinary key: report Escape; the key is lost,
        // as terminals use this form for Alt+key, which UEFI cannot express.
        _ => Done(Key::scan(scan::ESC)),
    }
}

/// ANSI SGR sequence for a UEFI text attribute (foreground in bits 0-3,
/// background in bits 4-6). Writes into `out`, returns the length used.
pub fn attribute_sgr(attr: usize, out: &mut [u8; 16]) -> usize {
    // UEFI colour order: black, blue, green, cyan, red, magenta, brown, lightgray;
    // ANSI order: black, red, green, yellow, blue, magenta, cyan, white.
    const ANSI: [u8; 8] = [0, 4, 2, 6, 1, 5, 3, 7];
    let fg = attr & 0x0f;
    let bg = (attr >> 4) & 0x07;
    let bright = fg & 0x08 != 0;
    let f = 30 + ANSI[fg & 7];
    let b = 40 + ANSI[bg];
    let mut n = 0;
    let mut put = |s: &[u8]| {
        for &c in s {
            if n < out.len() {
                out[n] = c;
                n += 1;
            }
        }
    };
    put(b"\x1b[");
    put(if bright { b"1;" } else { b"0;" });
    put(&[
        b'0' + f / 10,
        b'0' + f % 10,
        b';',
        b'0' + b / 10,
        b'0' + b % 10,
        b'm',
    ]);
    n
}

/// Convert a NUL-terminated UCS-2 string (as UEFI's OutputString receives
/// it) to UTF-8, calling `out` per chunk. Unpaired surrogates and
/// characters a serial terminal cannot show become `?`; UEFI box-drawing
/// characters pass through as their Unicode code points. Stops at NUL or
/// after `max` code units. Returns the number of code units consumed.
pub fn ucs2_to_utf8(
    s: impl IntoIterator<Item = u16>,
    max: usize,
    mut out: impl FnMut(&[u8]),
) -> usize {
    let mut n = 0;
    for u in s.into_iter().take(max) {
        if u == 0 {
            break;
        }
        n += 1;
        let c = char::from_u32(u32::from(u)).unwrap_or('?');
        let mut b = [0u8; 4];
        out(c.encode_utf8(&mut b).as_bytes());
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(input: &[u8]) -> ([Option<Key>; 16], usize) {
        let mut d = KeyDecoder::new();
        let mut out = [None; 16];
        let mut n = 0;
        for &b in input {
            if let Some(k) = d.push(b) {
                out[n] = Some(k);
                n += 1;
            }
        }
        if let Some(k) = d.flush() {
            out[n] = Some(k);
            n += 1;
        }
        (out, n)
    }

    #[test]
    fn arrows_and_editing_keys() {
        let (k, n) = keys(b"\x1b[A\x1b[B\x1bOC\x1b[D\x1b[3~\x1b[5~\x1b[6~\x1b[2~");
        assert_eq!(n, 8);
        let codes: [u16; 8] = [
            scan::UP,
            scan::DOWN,
            scan::RIGHT,
            scan::LEFT,
            scan::DELETE,
            scan::PAGE_UP,
            scan::PAGE_DOWN,
            scan::INSERT,
        ];
        for (i, c) in codes.iter().enumerate() {
            assert_eq!(k[i], Some(Key::scan(*c)), "key {i}");
        }
    }

    #[test]
    fn function_keys_both_encodings() {
        let (k, n) = keys(b"\x1bOP\x1b[12~\x1b[15~\x1b[24~");
        assert_eq!(n, 4);
        assert_eq!(k[0], Some(Key::scan(scan::F1)));
        assert_eq!(k[1], Some(Key::scan(scan::F2)));
        assert_eq!(k[2], Some(Key::scan(scan::F5)));
        assert_eq!(k[3], Some(Key::scan(scan::F12)));
    }

    #[test]
    fn plain_characters_enter_backspace() {
        let (k, n) = keys(b"a\r\x7f");
        assert_eq!(n, 3);
        assert_eq!(k[0], Some(Key::ch(u16::from(b'a'))));
        assert_eq!(k[1], Some(Key::ch(0x0d)));
        assert_eq!(k[2], Some(Key::ch(0x08)));
    }

    #[test]
    fn lone_escape_only_after_flush() {
        let mut d = KeyDecoder::new();
        assert_eq!(d.push(0x1b), None);
        assert!(d.pending());
        assert_eq!(d.flush(), Some(Key::scan(scan::ESC)));
        assert!(!d.pending());
    }

    #[test]
    fn garbage_sequences_do_not_wedge_the_decoder() {
        let mut d = KeyDecoder::new();
        for b in b"\x1b[999999999999~\x1b[Z\x1b[1;5A" {
            let _ = d.push(*b);
        }
        let _ = d.flush();
        assert_eq!(d.push(b'x'), Some(Key::ch(u16::from(b'x'))));
    }

    #[test]
    fn utf8_input_becomes_ucs2() {
        let (k, n) = keys("é€".as_bytes());
        assert_eq!(n, 2);
        assert_eq!(k[0], Some(Key::ch(0xe9)));
        assert_eq!(k[1], Some(Key::ch(0x20ac)));
    }

    #[test]
    fn sgr_for_default_and_bright_colours() {
        let mut b = [0u8; 16];
        // EFI_LIGHTGRAY on EFI_BLACK (0x07): normal white on black.
        let n = attribute_sgr(0x07, &mut b);
        assert_eq!(&b[..n], b"\x1b[0;37;40m");
        // EFI_YELLOW (0x0e) on EFI_BLUE (0x10): bright "brown" = yellow, blue background.
        let n = attribute_sgr(0x1e, &mut b);
        assert_eq!(&b[..n], b"\x1b[1;33;44m");
    }

    #[test]
    fn ucs2_output_stops_at_nul_and_bounds() {
        let mut s = std::vec::Vec::new();
        let src = [
            u16::from(b'h'),
            u16::from(b'i'),
            0x2500,
            0xd800,
            0,
            u16::from(b'x'),
        ];
        let n = ucs2_to_utf8(src, 16, |b| s.extend_from_slice(b));
        assert_eq!(n, 4);
        assert_eq!(core::str::from_utf8(&s).unwrap(), "hi─?");
        let mut t = std::vec::Vec::new();
        assert_eq!(ucs2_to_utf8([65u16; 100], 3, |b| t.extend_from_slice(b)), 3);
        assert_eq!(t, b"AAA");
    }
}
