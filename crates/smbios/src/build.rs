//! Minimal SMBIOS 3.3 tables for VMMs that provide none.

use alloc::format;
use alloc::vec::Vec;
use core::mem::size_of;

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromZeros, Immutable, IntoBytes};

use crate::entry::{EntryPoint30, Header, ANCHOR_30};
use crate::types::*;
use crate::{checksum, Error, SMBIOS_DOCREV, SMBIOS_MAJOR, SMBIOS_MINOR};

/// Strings longer than this many bytes (after trimming) are cut, at a
/// character boundary. SMBIOS 2.7+ sets no limit, but 64 is the old
/// "significant characters" limit and more only bloats the table.
pub const MAX_STRING_BYTES: usize = 64;

/// Memory devices are made larger than [`Platform::max_memory_device_mib`]
/// when that would otherwise give more than this many type 17 structures.
pub const MAX_MEMORY_DEVICES: u64 = 1024;

const KIB: u64 = 1024;
const MIB: u64 = 1 << 20;
/// Handles 0..=FEFFh are usable; FF00h and up are reserved.
const MAX_STRUCTURES: usize = 0xff00;
/// Type 17 `extended_size` holds MiB in bits 30:0.
const MAX_DEVICE_MIB: u64 = 0x7fff_ffff;
/// Largest KiB-granular type 17 `size` (7FFFh is the extended marker).
const MAX_DEVICE_KIB_FIELD: u64 = 0x7ffe;
/// Type 16 `max_capacity` value meaning "see the extended field".
const CAPACITY_EXTENDED: u32 = 0x8000_0000;
/// Type 19 start/end value meaning "see the extended fields".
const ADDRESS_EXTENDED: u32 = 0xffff_ffff;
/// Type 16/17 memory error handle: no error information provided.
const HANDLE_NOT_PROVIDED: u16 = 0xfffe;
/// Handle reference to nothing (e.g. no cache structure).
const HANDLE_NONE: u16 = 0xffff;
/// "Unknown" for type 17 widths.
const WIDTH_UNKNOWN: u16 = 0xffff;

/// One processor socket.
#[derive(Debug, Clone, Copy)]
pub struct Cpu<'a> {
    /// Manufacturer, e.g. the CPUID vendor (`GenuineIntel`, `AuthenticAMD`)
    /// or a name (`Intel(R) Corporation`); also picks the processor family.
    pub manufacturer: &'a str,
    /// Version; on x86 the CPUID brand string (surrounding blanks trimmed).
    pub version: &'a str,
    /// Processor ID; on x86 CPUID leaf 1 EAX (signature) in bits 31:0 and
    /// EDX (feature flags) in bits 63:32.
    pub processor_id: u64,
    /// SMBIOS processor family code to use instead of deriving one from
    /// `manufacturer`, `version` and `processor_id`.
    pub family: Option<u16>,
    /// External (bus) clock in MHz; 0 unknown.
    pub external_clock_mhz: u16,
    /// Maximum speed in MHz; 0 unknown.
    pub max_speed_mhz: u16,
    /// Current speed in MHz; 0 unknown.
    pub current_speed_mhz: u16,
    /// Cores in this socket (all enabled); 0 unknown, at most FFFEh.
    pub cores: u16,
    /// Threads in this socket; 0 unknown, at most FFFEh, not below `cores`.
    pub threads: u16,
    /// The processor can run 64-bit code.
    pub is_64bit: bool,
}

impl Default for Cpu<'_> {
    fn default() -> Self {
        Cpu {
            manufacturer: "",
            version: "",
            processor_id: 0,
            family: None,
            external_clock_mhz: 0,
            max_speed_mhz: 0,
            current_speed_mhz: 0,
            cores: 1,
            threads: 1,
            is_64bit: true,
        }
    }
}

/// What [`build`] describes. Empty strings become "no string" (string
/// number 0), as the spec requires.
#[derive(Debug, Clone, Copy)]
pub struct Platform<'a> {
    /// BIOS vendor (type 0). Default `Ember`.
    pub bios_vendor: &'a str,
    /// BIOS version (type 0).
    pub bios_version: &'a str,
    /// BIOS release date, `MM/DD/YYYY` or empty (type 0).
    pub bios_date: &'a str,
    /// System BIOS major/minor release (type 0); `None` stores FFh/FFh.
    pub bios_release: Option<(u8, u8)>,
    /// Size of the firmware image in bytes, rounded up to what type 0 can
    /// express (64 KiB steps below 16 MiB, then MiB or GiB).
    pub bios_rom_size: u64,
    /// The firmware offers UEFI services (type 0 extension byte 2 bit 3).
    pub uefi: bool,
    /// The platform has ACPI tables (type 0 extension byte 1 bit 0).
    pub acpi: bool,
    /// The platform has PCI (type 0 characteristics bit 7).
    pub pci: bool,
    /// System and chassis manufacturer (types 1 and 3). Default `Ember`.
    pub system_manufacturer: &'a str,
    /// Product name (type 1). Default `Virtual Machine`.
    pub product: &'a str,
    /// Product version (type 1).
    pub version: &'a str,
    /// System serial number (type 1).
    pub serial: &'a str,
    /// System UUID in RFC 4122 (textual, big-endian) byte order; it is
    /// stored with the first three fields little endian as SMBIOS 2.6+
    /// requires. All zeros means "not set".
    pub uuid: [u8; 16],
    /// SKU number (type 1).
    pub sku: &'a str,
    /// Product family (type 1).
    pub family: &'a str,
    /// One type 4 per socket.
    pub cpus: &'a [Cpu<'a>],
    /// RAM ranges `(start, end)` with `end` exclusive: KiB aligned,
    /// non-empty, ascending and disjoint. One type 19 each; their total is
    /// split over the type 17 devices.
    pub ram: &'a [(u64, u64)],
    /// Largest type 17 device in MiB (the total is split into devices of
    /// this size plus a remainder); 0 means as large as SMBIOS can express,
    /// which is one device for any realistic VM.
    pub max_memory_device_mib: u32,
}

impl Default for Platform<'_> {
    fn default() -> Self {
        Platform {
            bios_vendor: "Ember",
            bios_version: "",
            bios_date: "",
            bios_release: None,
            bios_rom_size: 64 * KIB,
            uefi: false,
            acpi: true,
            pci: true,
            system_manufacturer: "Ember",
            product: "Virtual Machine",
            version: "",
            serial: "",
            uuid: [0; 16],
            sku: "",
            family: "",
            cpus: &[],
            ram: &[],
            max_memory_device_mib: 0,
        }
    }
}

/// A built structure table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    /// The structure table, ending with the End-of-Table structure.
    pub bytes: Vec<u8>,
    /// Number of structures, End-of-Table included.
    pub count: u16,
    /// Size of the largest structure, strings included.
    pub max_structure_size: u16,
}

impl Tables {
    /// A checksummed SMBIOS 3.0 entry point for this table placed at
    /// `table_addr`.
    pub fn entry_point_30(&self, table_addr: u64) -> [u8; 24] {
        let mut ep = EntryPoint30 {
            anchor: ANCHOR_30,
            checksum: 0,
            length: size_of::<EntryPoint30>() as u8,
            major: SMBIOS_MAJOR,
            minor: SMBIOS_MINOR,
            docrev: SMBIOS_DOCREV,
            revision: 1,
            reserved: 0,
            // `build` keeps tables far below 4 GiB (bounded structure count
            // and sizes), so this never saturates.
            table_max_size: U32::new(u32::try_from(self.bytes.len()).unwrap_or(u32::MAX)),
            table_address: U64::new(table_addr),
        };
        ep.checksum = checksum(ep.as_bytes());
        let mut out = [0u8; 24];
        out.copy_from_slice(ep.as_bytes());
        out
    }
}

/// The strings of one structure being built.
#[derive(Default)]
struct StringSet {
    /// Each string followed by its NUL.
    buf: Vec<u8>,
    count: u8,
}

impl StringSet {
    /// Add `s` and return its string number (0 if it is empty after
    /// trimming). Identical strings share a number.
    fn add(&mut self, field: &'static str, s: &str) -> Result<u8, Error> {
        if s.contains('\0') {
            return Err(Error::NulInString { field });
        }
        let mut s = s.trim();
        if s.len() > MAX_STRING_BYTES {
            let mut cut = MAX_STRING_BYTES;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s = s.get(..cut).unwrap_or_default().trim_end();
        }
        if s.is_empty() {
            return Ok(0);
        }
        let existing = self
            .buf
            .split(|&b| b == 0)
            .take(usize::from(self.count))
            .position(|e| e == s.as_bytes());
        if let Some(i) = existing {
            // `i < count <= u8::MAX`.
            return Ok(u8::try_from(i + 1).unwrap_or(0));
        }
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        // Structures here have at most six string fields, far from 255.
        self.count = self.count.saturating_add(1);
        Ok(self.count)
    }
}

struct Out {
    bytes: Vec<u8>,
    count: u16,
    max: usize,
}

impl Out {
    /// The handle the next structure gets: handles are simply 0, 1, 2...
    fn handle(&self) -> u16 {
        self.count
    }

    fn push<T: IntoBytes + Immutable>(&mut self, formatted: &T, strings: &StringSet) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(formatted.as_bytes());
        if strings.buf.is_empty() {
            self.bytes.extend_from_slice(&[0, 0]);
        } else {
            self.bytes.extend_from_slice(&strings.buf);
            self.bytes.push(0);
        }
        self.max = self.max.max(self.bytes.len() - start);
        // `build` checks the structure count against the handle space first.
        self.count = self.count.wrapping_add(1);
    }
}

fn header<T>(kind: u8, handle: u16) -> Header {
    // Every formatted area here is well under 256 bytes (size asserts in
    // `types`).
    Header::new(kind, size_of::<T>() as u8, handle)
}

/// Build the structure table for `p`: types 0, 1, 3, one 4 per CPU socket,
/// 16, 17 (one or more), one 19 per RAM range, 32 and 127, with handles
/// 0, 1, 2... in that order.
///
/// Strings are trimmed, cut to [`MAX_STRING_BYTES`], and rejected if they
/// contain NUL; empty ones are stored as string number 0.
pub fn build(p: &Platform) -> Result<Tables, Error> {
    if !p.bios_date.is_empty() && !valid_date(p.bios_date) {
        return Err(Error::BadDate);
    }
    let total_kib = ram_total(p.ram)? / KIB;
    let devices = split_devices(total_kib, p.max_memory_device_mib);
    let count = 3 + p.cpus.len() + 1 + devices.len() + p.ram.len() + 2;
    if count > MAX_STRUCTURES {
        return Err(Error::TooManyStructures { count });
    }
    let mut out = Out {
        bytes: Vec::new(),
        count: 0,
        max: 0,
    };
    bios(&mut out, p)?;
    system(&mut out, p)?;
    chassis(&mut out, p)?;
    for (i, cpu) in p.cpus.iter().enumerate() {
        processor(&mut out, i, cpu)?;
    }
    let array = memory(&mut out, total_kib, &devices)?;
    for &(start, end) in p.ram {
        mapped_range(&mut out, array, start, end);
    }
    let mut t32 = Type32::new_zeroed();
    t32.header = header::<Type32>(TYPE_SYSTEM_BOOT, out.handle());
    out.push(&t32, &StringSet::default());
    let end = header::<Header>(TYPE_END_OF_TABLE, out.handle());
    out.push(&end, &StringSet::default());
    Ok(Tables {
        bytes: out.bytes,
        count: out.count,
        max_structure_size: u16::try_from(out.max).unwrap_or(u16::MAX),
    })
}

fn valid_date(d: &str) -> bool {
    let &[m1, m2, b'/', d1, d2, b'/', y1, y2, y3, y4] = d.as_bytes() else {
        return false;
    };
    if ![m1, m2, d1, d2, y1, y2, y3, y4]
        .iter()
        .all(u8::is_ascii_digit)
    {
        return false;
    }
    let month = (m1 - b'0') * 10 + (m2 - b'0');
    let day = (d1 - b'0') * 10 + (d2 - b'0');
    (1..=12).contains(&month) && (1..=31).contains(&day)
}

/// Total bytes in `ram`, after checking the ranges.
fn ram_total(ram: &[(u64, u64)]) -> Result<u64, Error> {
    if ram.is_empty() {
        return Err(Error::NoRam);
    }
    let mut prev_end = 0u64;
    let mut total = 0u64;
    for (index, &(start, end)) in ram.iter().enumerate() {
        let bad = |reason| Error::BadRamRange {
            index,
            start,
            end,
            reason,
        };
        if start >= end {
            return Err(bad("empty or inverted"));
        }
        // Type 19 counts in KiB.
        if !start.is_multiple_of(KIB) || !end.is_multiple_of(KIB) {
            return Err(bad("not KiB aligned"));
        }
        if index > 0 && start < prev_end {
            return Err(bad("overlaps or precedes the previous range"));
        }
        prev_end = end;
        // Disjoint ranges inside the 64-bit space cannot overflow, but
        // stay checked.
        total = total
            .checked_add(end - start)
            .ok_or(bad("total size overflows"))?;
    }
    Ok(total)
}

/// Device sizes in KiB summing to `total_kib`: whole-MiB devices of at most
/// `max_mib` (raised to keep the count near [`MAX_MEMORY_DEVICES`]), and a
/// sub-MiB remainder folded into a final small device when it fits the
/// KiB-granular size field, else given its own.
fn split_devices(total_kib: u64, max_mib: u32) -> Vec<u64> {
    let wanted = match max_mib {
        0 => MAX_DEVICE_MIB,
        n => u64::from(n),
    };
    let floor = total_kib.div_ceil(1024).div_ceil(MAX_MEMORY_DEVICES);
    let cap_kib = wanted.max(floor).clamp(1, MAX_DEVICE_MIB) * 1024;
    let mut devices = Vec::new();
    let mut left = total_kib;
    while left > 0 {
        let mut take = left.min(cap_kib);
        if !take.is_multiple_of(1024) && take > MAX_DEVICE_KIB_FIELD {
            // Too big for KiB granularity: whole MiB now, the rest next.
            take -= take % 1024;
        }
        devices.push(take);
        left -= take;
    }
    devices
}

fn bios(out: &mut Out, p: &Platform) -> Result<(), Error> {
    let mut s = StringSet::default();
    let mut t = Type0::new_zeroed();
    t.header = header::<Type0>(TYPE_BIOS, out.handle());
    t.vendor = s.add("bios_vendor", p.bios_vendor)?;
    t.bios_version = s.add("bios_version", p.bios_version)?;
    t.release_date = s.add("bios_date", p.bios_date)?;
    // Segment 0: no legacy BIOS image in the F-segment.
    t.starting_segment = U16::new(0);
    let (rom, ext_rom) = rom_size(p.bios_rom_size);
    t.rom_size = rom;
    t.extended_rom_size = U16::new(ext_rom);
    // The firmware cannot be reflashed from the guest, can choose the boot
    // device, and has no legacy services to advertise.
    let mut chars = BIOS_CHAR_SELECTABLE_BOOT;
    if p.pci {
        chars |= BIOS_CHAR_PCI;
    }
    t.characteristics = U64::new(chars);
    t.characteristics_ext1 = if p.acpi { BIOS_EXT1_ACPI } else { 0 };
    t.characteristics_ext2 = BIOS_EXT2_VIRTUAL_MACHINE | if p.uefi { BIOS_EXT2_UEFI } else { 0 };
    (t.bios_major, t.bios_minor) = p.bios_release.unwrap_or((0xff, 0xff));
    // No embedded controller.
    t.ec_major = 0xff;
    t.ec_minor = 0xff;
    out.push(&t, &s);
    Ok(())
}

/// Type 0 ROM size byte and extended size for `bytes`, rounded up.
fn rom_size(bytes: u64) -> (u8, u16) {
    let blocks = bytes.div_ceil(64 * KIB).max(1);
    // The byte holds 64 KiB * (n + 1) for n up to FEh; FFh defers to the
    // extended field.
    if let Ok(n) = u8::try_from(blocks - 1) {
        if n != 0xff {
            return (n, 0);
        }
    }
    let mib = bytes.div_ceil(MIB);
    if mib <= 0x3fff {
        (0xff, mib as u16)
    } else {
        let gib = bytes.div_ceil(1 << 30).min(0x3fff);
        (0xff, (1 << 14) | gib as u16)
    }
}

fn system(out: &mut Out, p: &Platform) -> Result<(), Error> {
    let mut s = StringSet::default();
    let mut t = Type1::new_zeroed();
    t.header = header::<Type1>(TYPE_SYSTEM, out.handle());
    t.manufacturer = s.add("system_manufacturer", p.system_manufacturer)?;
    t.product = s.add("product", p.product)?;
    t.version = s.add("version", p.version)?;
    t.serial = s.add("serial", p.serial)?;
    t.uuid = smbios_uuid(p.uuid);
    t.wake_up_type = 0x06; // power switch
    t.sku = s.add("sku", p.sku)?;
    t.family = s.add("family", p.family)?;
    out.push(&t, &s);
    Ok(())
}

/// RFC 4122 byte order to SMBIOS 2.6+ order: time_low, time_mid and
/// time_hi_and_version become little endian.
fn smbios_uuid(u: [u8; 16]) -> [u8; 16] {
    let mut o = u;
    o[..4].reverse();
    o[4..6].reverse();
    o[6..8].reverse();
    o
}

fn chassis(out: &mut Out, p: &Platform) -> Result<(), Error> {
    let mut s = StringSet::default();
    let mut t = Type3::new_zeroed();
    t.header = header::<Type3>(TYPE_CHASSIS, out.handle());
    t.manufacturer = s.add("system_manufacturer", p.system_manufacturer)?;
    t.chassis_type = 0x01; // other: a VM has no physical enclosure
    t.boot_up_state = 0x03; // safe
    t.power_supply_state = 0x03;
    t.thermal_state = 0x03;
    t.security_status = 0x03; // none
    out.push(&t, &s);
    Ok(())
}

/// Processor family codes (DSP0134 table "Processor Family field").
mod family {
    pub const OTHER: u16 = 0x01;
    pub const UNKNOWN: u16 = 0x02;
    pub const PENTIUM: u16 = 0x0b;
    pub const CELERON: u16 = 0x0f;
    pub const ATOM: u16 = 0x2b;
    pub const AMD_ZEN: u16 = 0x6b;
    pub const XEON: u16 = 0xb3;
    pub const CORE_I7: u16 = 0xc6;
    pub const CORE_I5: u16 = 0xcd;
    pub const CORE_I3: u16 = 0xce;
    pub const CORE_I9: u16 = 0xcf;
}

/// Pick a family from the vendor and brand string. Only families that
/// the brand names unambiguously are used (newer Intel "Core 5"/"Core
/// Ultra" codes postdate SMBIOS 3.3); everything else is "Other".
fn derive_family(cpu: &Cpu) -> u16 {
    let (m, v) = (cpu.manufacturer, cpu.version);
    if m.trim().is_empty() {
        return family::UNKNOWN;
    }
    if m.contains("Intel") {
        let brands = [
            ("Xeon", family::XEON),
            ("Core(TM) i3", family::CORE_I3),
            ("Core(TM) i5", family::CORE_I5),
            ("Core(TM) i7", family::CORE_I7),
            ("Core(TM) i9", family::CORE_I9),
            ("Celeron", family::CELERON),
            ("Pentium", family::PENTIUM),
            ("Atom", family::ATOM),
        ];
        return brands
            .iter()
            .find(|(b, _)| v.contains(b))
            .map_or(family::OTHER, |&(_, f)| f);
    }
    if m.contains("AMD") || m.contains("Advanced Micro Devices") {
        // CPUID family 17h and later are all Zen cores.
        let eax = cpu.processor_id as u32;
        let base = (eax >> 8) & 0xf;
        let fam = if base == 0xf {
            base + ((eax >> 20) & 0xff)
        } else {
            base
        };
        if fam >= 0x17 {
            return family::AMD_ZEN;
        }
    }
    family::OTHER
}

fn processor(out: &mut Out, index: usize, cpu: &Cpu) -> Result<(), Error> {
    let bad = |reason| Error::BadCpu { index, reason };
    if cpu.cores == 0xffff || cpu.threads == 0xffff {
        return Err(bad("core and thread counts FFFFh are reserved"));
    }
    if cpu.cores != 0 && cpu.threads != 0 && cpu.threads < cpu.cores {
        return Err(bad("fewer threads than cores"));
    }
    let fam = cpu.family.unwrap_or_else(|| derive_family(cpu));
    // 0 is undefined, FEh/FFh are the "see family 2"/reserved markers,
    // FFFEh/FFFFh are reserved.
    if matches!(fam, 0 | 0xfe | 0xff | 0xfffe | 0xffff) {
        return Err(bad("reserved processor family code"));
    }
    let mut s = StringSet::default();
    let mut t = Type4::new_zeroed();
    t.header = header::<Type4>(TYPE_PROCESSOR, out.handle());
    t.socket = s.add("cpu socket", &format!("CPU {index}"))?;
    t.processor_type = 0x03; // central processor
    t.family = u8::try_from(fam).unwrap_or(0xfe);
    t.family2 = U16::new(fam);
    t.manufacturer = s.add("cpu manufacturer", cpu.manufacturer)?;
    t.processor_id = U64::new(cpu.processor_id);
    t.version = s.add("cpu version", cpu.version)?;
    t.external_clock = U16::new(cpu.external_clock_mhz);
    t.max_speed = U16::new(cpu.max_speed_mhz);
    t.current_speed = U16::new(cpu.current_speed_mhz);
    t.status = 0x41; // socket populated, CPU enabled
    t.upgrade = 0x01; // other: a virtual socket
    t.l1_cache = U16::new(HANDLE_NONE);
    t.l2_cache = U16::new(HANDLE_NONE);
    t.l3_cache = U16::new(HANDLE_NONE);
    // The byte fields saturate at FFh, which tells readers to use the
    // 16-bit "2" fields.
    let byte = |n: u16| u8::try_from(n).unwrap_or(0xff);
    t.core_count = byte(cpu.cores);
    t.core_enabled = byte(cpu.cores);
    t.thread_count = byte(cpu.threads);
    t.core_count2 = U16::new(cpu.cores);
    t.core_enabled2 = U16::new(cpu.cores);
    t.thread_count2 = U16::new(cpu.threads);
    let mut chars = 0;
    if cpu.is_64bit {
        chars |= CPU_CHAR_64BIT;
    }
    if cpu.cores > 1 {
        chars |= CPU_CHAR_MULTI_CORE;
    }
    if cpu.threads > cpu.cores && cpu.cores != 0 {
        chars |= CPU_CHAR_HARDWARE_THREAD;
    }
    t.characteristics = U16::new(chars);
    out.push(&t, &s);
    Ok(())
}

/// Type 16 and the type 17 devices; returns the array's handle.
fn memory(out: &mut Out, total_kib: u64, devices: &[u64]) -> Result<u16, Error> {
    let array = out.handle();
    let mut t = Type16::new_zeroed();
    t.header = header::<Type16>(TYPE_MEMORY_ARRAY, array);
    t.location = 0x01; // other: not a board
    t.use_ = 0x03; // system memory
    t.error_correction = 0x03; // none
    match u32::try_from(total_kib) {
        Ok(kib) if kib < CAPACITY_EXTENDED => t.max_capacity = U32::new(kib),
        _ => {
            t.max_capacity = U32::new(CAPACITY_EXTENDED);
            t.extended_max_capacity = U64::new(total_kib * KIB);
        }
    }
    t.error_info_handle = U16::new(HANDLE_NOT_PROVIDED);
    // `build` bounds the structure count below 0xFF00.
    t.devices = U16::new(u16::try_from(devices.len()).unwrap_or(u16::MAX));
    out.push(&t, &StringSet::default());

    for (i, &kib) in devices.iter().enumerate() {
        let mut s = StringSet::default();
        let mut d = Type17::new_zeroed();
        d.header = header::<Type17>(TYPE_MEMORY_DEVICE, out.handle());
        d.array_handle = U16::new(array);
        d.error_info_handle = U16::new(HANDLE_NOT_PROVIDED);
        d.total_width = U16::new(WIDTH_UNKNOWN);
        d.data_width = U16::new(WIDTH_UNKNOWN);
        let (size, ext) = device_size(kib);
        d.size = U16::new(size);
        d.extended_size = U32::new(ext);
        d.form_factor = 0x01; // other
        d.device_locator = s.add("memory locator", &format!("DIMM {i}"))?;
        d.memory_type = 0x07; // RAM
        d.type_detail = U16::new(1 << 1); // other
        d.memory_technology = 0x03; // DRAM
        d.operating_mode_capability = U16::new(1 << 3); // volatile memory
        d.volatile_size = U64::new(kib * KIB);
        out.push(&d, &s);
    }
    Ok(array)
}

/// Type 17 `size` and `extended_size` for a device of `kib` KiB, as
/// produced by [`split_devices`] (sub-MiB sizes are at most 7FFEh KiB).
fn device_size(kib: u64) -> (u16, u32) {
    if !kib.is_multiple_of(1024) {
        let k = u16::try_from(kib.min(MAX_DEVICE_KIB_FIELD)).unwrap_or(0);
        return (MEMDEV_SIZE_KIB | k, 0);
    }
    let mib = kib / 1024;
    match u16::try_from(mib) {
        Ok(m) if m < MEMDEV_SIZE_EXTENDED => (m, 0),
        _ => (
            MEMDEV_SIZE_EXTENDED,
            u32::try_from(mib.min(MAX_DEVICE_MIB)).unwrap_or(0),
        ),
    }
}

fn mapped_range(out: &mut Out, array: u16, start: u64, end: u64) {
    let mut t = Type19::new_zeroed();
    t.header = header::<Type19>(TYPE_MEMORY_ARRAY_MAPPED_ADDRESS, out.handle());
    t.array_handle = U16::new(array);
    t.partition_width = 1;
    // KiB values from FFFF_FFFFh (i.e. at or above 4 TiB) need the
    // extended byte addresses; both ends then use them.
    let first = u32::try_from(start / KIB).ok();
    let last = u32::try_from(end / KIB - 1).ok();
    match (first, last) {
        (Some(f), Some(l)) if l < ADDRESS_EXTENDED => {
            t.start = U32::new(f);
            t.end = U32::new(l);
        }
        _ => {
            t.start = U32::new(ADDRESS_EXTENDED);
            t.end = U32::new(ADDRESS_EXTENDED);
            t.extended_start = U64::new(start);
            t.extended_end = U64::new(end - 1);
        }
    }
    out.push(&t, &StringSet::default());
}
