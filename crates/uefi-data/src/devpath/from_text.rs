//! `EFI_DEVICE_PATH_FROM_TEXT_PROTOCOL` for the node forms [`super::to_text`]
//! prints (except the messaging nodes other than SCSI/SATA): the inverse
//! of the text conversion. Text that is not `Name(args)` of a known node
//! is a File Path node, as in EDK2.

use super::*;

fn bad(pos: usize, reason: &'static str) -> DevPathError {
    DevPathError::BadText { pos, reason }
}

/// `0x`-prefixed hex or decimal, as the spec's text forms use.
fn num(s: &str, pos: usize) -> Result<u64, DevPathError> {
    let s = s.trim();
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse::<u64>(),
    };
    r.map_err(|_| bad(pos, "expected a number (decimal or 0x-prefixed hex)"))
}

fn num32(s: &str, pos: usize) -> Result<u32, DevPathError> {
    u32::try_from(num(s, pos)?).map_err(|_| bad(pos, "number does not fit in 32 bits"))
}

fn num16(s: &str, pos: usize) -> Result<u16, DevPathError> {
    u16::try_from(num(s, pos)?).map_err(|_| bad(pos, "number does not fit in 16 bits"))
}

fn num8(s: &str, pos: usize) -> Result<u8, DevPathError> {
    u8::try_from(num(s, pos)?).map_err(|_| bad(pos, "number does not fit in 8 bits"))
}

fn hex_data(s: &str, pos: usize) -> Result<Vec<u8>, DevPathError> {
    let s = s.trim().as_bytes();
    if !s.len().is_multiple_of(2) {
        return Err(bad(pos, "hex data needs an even number of digits"));
    }
    s.chunks_exact(2)
        .map(|p| {
            core::str::from_utf8(p)
                .ok()
                .and_then(|t| u8::from_str_radix(t, 16).ok())
                .ok_or(bad(pos, "hex data has a non-hex digit"))
        })
        .collect()
}

fn guid(s: &str, pos: usize) -> Result<Guid, DevPathError> {
    Guid::parse(s.trim()).map_err(|_| bad(pos, "expected a GUID (8-4-4-4-12 hex digits)"))
}

/// Arguments of `Name(a,b,...)` with the text position of the node.
struct Args<'t> {
    list: Vec<&'t str>,
    pos: usize,
}

impl<'t> Args<'t> {
    fn get(&self, i: usize) -> Result<&'t str, DevPathError> {
        self.list
            .get(i)
            .copied()
            .ok_or(bad(self.pos, "too few arguments for this node"))
    }

    fn exactly(&self, n: usize) -> Result<(), DevPathError> {
        if self.list.len() == n {
            Ok(())
        } else {
            Err(bad(self.pos, "wrong number of arguments for this node"))
        }
    }
}

/// One node from its text.
pub fn node_from_text(text: &str) -> Result<Vec<u8>, DevPathError> {
    node_at(text, 0)
}

fn node_at(text: &str, pos: usize) -> Result<Vec<u8>, DevPathError> {
    let parsed = text.split_once('(').and_then(|(name, rest)| {
        let args = rest.strip_suffix(')')?;
        let ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric());
        ok.then_some((name, args))
    });
    let Some((name, args)) = parsed else {
        return file_path(text);
    };
    let a = Args {
        list: if args.is_empty() {
            Vec::new()
        } else {
            args.split(',').collect()
        },
        pos,
    };
    let vendor = |a: &Args<'_>| -> Result<(Guid, Vec<u8>), DevPathError> {
        let g = guid(a.get(0)?, pos)?;
        let d = match a.list.len() {
            1 => Vec::new(),
            2 => hex_data(a.get(1)?, pos)?,
            _ => return Err(bad(pos, "vendor nodes take a GUID and optional hex data")),
        };
        Ok((g, d))
    };
    match name {
        "PciRoot" => {
            a.exactly(1)?;
            Ok(pci_root(num32(a.get(0)?, pos)?))
        }
        "PcieRoot" => {
            a.exactly(1)?;
            Ok(pcie_root(num32(a.get(0)?, pos)?))
        }
        "Acpi" => {
            a.exactly(2)?;
            let h = a.get(0)?.trim();
            let hid = match h.strip_prefix("PNP") {
                Some(p) => eisa_pnp_id(
                    u16::from_str_radix(p, 16)
                        .map_err(|_| bad(pos, "PNP id needs 4 hex digits"))?,
                ),
                None => num32(h, pos)?,
            };
            Ok(acpi(hid, num32(a.get(1)?, pos)?))
        }
        "Pci" => {
            a.exactly(2)?;
            Ok(pci(num8(a.get(0)?, pos)?, num8(a.get(1)?, pos)?))
        }
        "MemoryMapped" => {
            a.exactly(3)?;
            Ok(memory_mapped(
                num32(a.get(0)?, pos)?,
                num(a.get(1)?, pos)?,
                num(a.get(2)?, pos)?,
            ))
        }
        "VenHw" => {
            let (g, d) = vendor(&a)?;
            vendor_hw(g, &d)
        }
        "VenMedia" => {
            let (g, d) = vendor(&a)?;
            vendor_media(g, &d)
        }
        "VenMsg" => {
            let (g, d) = vendor(&a)?;
            let mut data = Vec::from(g.as_bytes());
            data.extend_from_slice(&d);
            node(TYPE_MESSAGING, MSG_VENDOR, &data)
        }
        "HD" => {
            a.exactly(5)?;
            let part = num32(a.get(0)?, pos)?;
            let sig = match a.get(1)?.trim() {
                "GPT" => PartitionSignature::Gpt(guid(a.get(2)?, pos)?),
                "MBR" => PartitionSignature::Mbr(num32(a.get(2)?, pos)?),
                _ => return Err(bad(pos, "HD signature type must be GPT or MBR")),
            };
            Ok(hard_drive(
                part,
                num(a.get(3)?, pos)?,
                num(a.get(4)?, pos)?,
                sig,
            ))
        }
        "CDROM" => {
            a.exactly(3)?;
            Ok(cdrom(
                num32(a.get(0)?, pos)?,
                num(a.get(1)?, pos)?,
                num(a.get(2)?, pos)?,
            ))
        }
        "Scsi" => {
            a.exactly(2)?;
            let d = ScsiData {
                pun: U16::new(num16(a.get(0)?, pos)?),
                lun: U16::new(num16(a.get(1)?, pos)?),
            };
            Ok(fixed_node(TYPE_MESSAGING, MSG_SCSI, &d))
        }
        "Sata" => {
            a.exactly(3)?;
            let d = SataData {
                hba_port: U16::new(num16(a.get(0)?, pos)?),
                multiplier_port: U16::new(num16(a.get(1)?, pos)?),
                lun: U16::new(num16(a.get(2)?, pos)?),
            };
            Ok(fixed_node(TYPE_MESSAGING, MSG_SATA, &d))
        }
        "Path" => {
            if a.list.len() < 2 || a.list.len() > 3 {
                return Err(bad(pos, "Path takes type, subtype and optional hex data"));
            }
            let data = match a.list.get(2) {
                Some(h) => hex_data(h, pos)?,
                None => Vec::new(),
            };
            node(num8(a.get(0)?, pos)?, num8(a.get(1)?, pos)?, &data)
        }
        _ => file_path(text),
    }
}

/// `ConvertTextToDevicePath`: nodes split on `/`, instances on `,`
/// outside parentheses. The result is validated like any other path.
pub fn from_text(text: &str) -> Result<Vec<u8>, DevPathError> {
    if text.len() > MAX_PATH_SIZE {
        return Err(DevPathError::TooLarge { size: text.len() });
    }
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0usize;
    let bytes = text.as_bytes();
    for i in 0..=bytes.len() {
        let c = bytes.get(i).copied();
        match c {
            Some(b'(') => depth += 1,
            Some(b')') => {
                depth = depth.checked_sub(1).ok_or(bad(i, "unbalanced ')'"))?;
            }
            Some(b'/') | Some(b',') | None if depth == 0 => {
                let piece = text
                    .get(start..i)
                    .ok_or(bad(start, "not on a character boundary"))?;
                if !piece.is_empty() {
                    out.extend_from_slice(&node_at(piece, start)?);
                } else if c == Some(b'/') {
                    return Err(bad(i, "empty node"));
                }
                if c == Some(b',') {
                    out.extend_from_slice(&end_instance());
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(bad(text.len(), "unbalanced '('"));
    }
    out.extend_from_slice(&end_entire());
    DevicePath::parse(&out)?;
    Ok(out)
}
