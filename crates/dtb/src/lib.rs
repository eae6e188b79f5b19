//! Setting properties of `/chosen` in a flattened device tree (DTB), as the
//! arm64 Linux boot protocol needs: `bootargs`, `linux,initrd-start`,
//! `linux,initrd-end`. The VMM's DTB is input Ember did not make: every
//! offset and length is checked, the walk is bounded by the input's size,
//! and failures are typed. No allocation: the result is written into a
//! caller's buffer (Ember's aarch64 firmware has no heap before it boots).
//!
//! Layout written: header, the memory reservation block, the structure
//! block with `/chosen`'s given properties replaced (or `/chosen` added at
//! the end of the root node), then the strings block with any new names.
#![no_std]
#![forbid(unsafe_code)]

use core::fmt;

const MAGIC: u32 = 0xd00d_feed;
const HEADER_LEN: usize = 40;
const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;

/// Why a DTB could not be edited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtbError {
    /// No FDT magic at the start.
    BadMagic,
    /// A header field or a token points outside the blob.
    Truncated { what: &'static str, offset: usize },
    /// A token the format does not define.
    BadToken { token: u32, offset: usize },
    /// Node nesting that does not close, or content after the root.
    BadStructure { offset: usize },
    /// The output buffer is too small for the result.
    OutputTooSmall { needed: usize },
}

impl fmt::Display for DtbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DtbError::BadMagic => f.write_str("not a device tree (bad magic)"),
            DtbError::Truncated { what, offset } => {
                write!(f, "device tree truncated: {what} at offset {offset:#x}")
            }
            DtbError::BadToken { token, offset } => write!(
                f,
                "device tree: unknown token {token:#x} at offset {offset:#x}"
            ),
            DtbError::BadStructure { offset } => write!(
                f,
                "device tree: malformed node structure at offset {offset:#x}"
            ),
            DtbError::OutputTooSmall { needed } => {
                write!(f, "device tree: result needs {needed} bytes")
            }
        }
    }
}

fn be32(b: &[u8], off: usize, what: &'static str) -> Result<u32, DtbError> {
    b.get(off..off + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(DtbError::Truncated { what, offset: off })
}

fn align4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

/// The NUL-terminated string at `off` in `b`.
fn cstr<'a>(b: &'a [u8], off: usize, what: &'static str) -> Result<&'a [u8], DtbError> {
    let rest = b
        .get(off..)
        .ok_or(DtbError::Truncated { what, offset: off })?;
    let n = rest
        .iter()
        .position(|&c| c == 0)
        .ok_or(DtbError::Truncated { what, offset: off })?;
    Ok(&rest[..n])
}

/// A bounded writer over the caller's buffer.
struct Out<'a> {
    buf: &'a mut [u8],
    len: usize,
    /// Bytes that did not fit (the result's size is still counted).
    overflow: bool,
}

impl Out<'_> {
    fn bytes(&mut self, b: &[u8]) {
        match self.buf.get_mut(self.len..self.len + b.len()) {
            Some(dst) => dst.copy_from_slice(b),
            None => self.overflow = true,
        }
        self.len += b.len();
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_be_bytes());
    }
    fn pad(&mut self) {
        while !self.len.is_multiple_of(4) {
            self.bytes(&[0]);
        }
    }
    fn put_u32_at(&mut self, at: usize, v: u32) {
        if let Some(dst) = self.buf.get_mut(at..at + 4) {
            dst.copy_from_slice(&v.to_be_bytes());
        }
    }
}

/// Where each new property's name lives in the output strings block.
struct Names<'p> {
    props: &'p [(&'p str, &'p [u8])],
    strings: &'p [u8],
}

impl Names<'_> {
    /// Offset of an existing string equal to `name`, at a string start.
    fn existing(&self, name: &str) -> Option<usize> {
        let mut off = 0;
        while off < self.strings.len() {
            let s = cstr(self.strings, off, "string").ok()?;
            if s == name.as_bytes() {
                return Some(off);
            }
            off += s.len() + 1;
        }
        None
    }

    /// Offsets for every property, appending missing names after the
    /// original strings; returns (offsets, total length of appended names).
    fn offsets(&self, into: &mut [u32; 8]) -> usize {
        let mut appended = 0;
        for (i, (name, _)) in self.props.iter().enumerate().take(into.len()) {
            into[i] = match self.existing(name) {
                Some(o) => o as u32,
                None => {
                    let o = self.strings.len() + appended;
                    appended += name.len() + 1;
                    o as u32
                }
            };
        }
        appended
    }
}

/// Copy `dtb` into `out` with each of `props` (at most 8) set in `/chosen`,
/// creating `/chosen` if needed. Returns the new blob's length.
pub fn set_chosen(dtb: &[u8], props: &[(&str, &[u8])], out: &mut [u8]) -> Result<usize, DtbError> {
    if be32(dtb, 0, "magic")? != MAGIC {
        return Err(DtbError::BadMagic);
    }
    let total = be32(dtb, 4, "totalsize")? as usize;
    let dtb = dtb.get(..total).ok_or(DtbError::Truncated {
        what: "blob (totalsize)",
        offset: total,
    })?;
    let off_struct = be32(dtb, 8, "off_dt_struct")? as usize;
    let off_strings = be32(dtb, 12, "off_dt_strings")? as usize;
    let off_rsv = be32(dtb, 16, "off_mem_rsvmap")? as usize;
    let version = be32(dtb, 20, "version")?;
    let last_comp = be32(dtb, 24, "last_comp_version")?;
    let boot_cpu = be32(dtb, 28, "boot_cpuid_phys")?;
    let size_strings = be32(dtb, 32, "size_dt_strings")? as usize;
    let size_struct = be32(dtb, 36, "size_dt_struct")? as usize;
    let strings = dtb
        .get(off_strings..off_strings.saturating_add(size_strings))
        .ok_or(DtbError::Truncated {
            what: "strings block",
            offset: off_strings,
        })?;
    let structure = dtb
        .get(off_struct..off_struct.saturating_add(size_struct))
        .ok_or(DtbError::Truncated {
            what: "structure block",
            offset: off_struct,
        })?;
    // The reservation map: 16-byte entries up to an all-zero one.
    let mut rsv_end = off_rsv;
    loop {
        let e = dtb.get(rsv_end..rsv_end + 16).ok_or(DtbError::Truncated {
            what: "memory reservation map",
            offset: rsv_end,
        })?;
        rsv_end += 16;
        if e.iter().all(|&b| b == 0) {
            break;
        }
    }
    let props = &props[..props.len().min(8)];
    let names = Names { props, strings };
    let mut name_off = [0u32; 8];
    let appended = names.offsets(&mut name_off);

    let mut o = Out {
        buf: out,
        len: 0,
        overflow: false,
    };
    o.bytes(&[0; HEADER_LEN]);
    let new_rsv = o.len;
    o.bytes(&dtb[off_rsv..rsv_end]);
    let new_struct = o.len;
    let emit_props = |o: &mut Out<'_>| {
        for (i, (_, value)) in props.iter().enumerate() {
            o.u32(PROP);
            o.u32(value.len() as u32);
            o.u32(name_off[i]);
            o.bytes(value);
            o.pad();
        }
    };
    // Walk the structure block.
    let mut at = 0usize;
    let mut depth = 0usize;
    let mut in_chosen = false;
    let mut chosen_seen = false;
    let mut ended = false;
    while at < structure.len() {
        let tok_at = at;
        let tok = be32(structure, at, "token")?;
        at += 4;
        match tok {
            BEGIN_NODE => {
                let name = cstr(structure, at, "node name")?;
                at = align4(at + name.len() + 1);
                depth += 1;
                if depth == 2 && (name == b"chosen" || name.starts_with(b"chosen@")) {
                    in_chosen = true;
                    chosen_seen = true;
                }
                o.u32(BEGIN_NODE);
                o.bytes(name);
                o.bytes(&[0]);
                o.pad();
            }
            END_NODE => {
                if depth == 0 {
                    return Err(DtbError::BadStructure {
                        offset: off_struct + tok_at,
                    });
                }
                if in_chosen && depth == 2 {
                    emit_props(&mut o);
                    in_chosen = false;
                }
                if depth == 1 && !chosen_seen {
                    o.u32(BEGIN_NODE);
                    o.bytes(b"chosen\0\0");
                    emit_props(&mut o);
                    o.u32(END_NODE);
                    chosen_seen = true;
                }
                depth -= 1;
                o.u32(END_NODE);
            }
            PROP => {
                let len = be32(structure, at, "property length")? as usize;
                let nameoff = be32(structure, at + 4, "property name offset")? as usize;
                let value = structure.get(at + 8..(at + 8).saturating_add(len)).ok_or(
                    DtbError::Truncated {
                        what: "property value",
                        offset: off_struct + at + 8,
                    },
                )?;
                at = align4(at + 8 + len);
                let name = cstr(strings, nameoff, "property name")?;
                let replaced =
                    in_chosen && depth == 2 && props.iter().any(|(n, _)| n.as_bytes() == name);
                if !replaced {
                    o.u32(PROP);
                    o.u32(len as u32);
                    o.u32(nameoff as u32);
                    o.bytes(value);
                    o.pad();
                }
            }
            NOP => {}
            END => {
                if depth != 0 {
                    return Err(DtbError::BadStructure {
                        offset: off_struct + tok_at,
                    });
                }
                o.u32(END);
                ended = true;
                break;
            }
            t => {
                return Err(DtbError::BadToken {
                    token: t,
                    offset: off_struct + tok_at,
                })
            }
        }
    }
    if !ended {
        return Err(DtbError::Truncated {
            what: "structure block (no FDT_END)",
            offset: off_struct + at,
        });
    }
    let struct_len = o.len - new_struct;
    let new_strings = o.len;
    o.bytes(strings);
    for (i, (name, _)) in props.iter().enumerate() {
        if name_off[i] as usize >= strings.len() {
            o.bytes(name.as_bytes());
            o.bytes(&[0]);
        }
    }
    let strings_len = strings.len() + appended;
    let total_out = o.len;
    if o.overflow {
        return Err(DtbError::OutputTooSmall { needed: total_out });
    }
    for (i, v) in [
        MAGIC,
        total_out as u32,
        new_struct as u32,
        new_strings as u32,
        new_rsv as u32,
        version,
        last_comp,
        boot_cpu,
        strings_len as u32,
        struct_len as u32,
    ]
    .into_iter()
    .enumerate()
    {
        o.put_u32_at(i * 4, v);
    }
    Ok(total_out)
}

#[cfg(test)]
mod tests;
