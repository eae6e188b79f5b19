//! PCI enumeration for Ember.
//!
//! The firmware supplies raw configuration-space access through
//! [`ConfigSpace`] (CF8/CFC port I/O or ECAM, in its own unsafe code); this
//! crate walks the bus hierarchy, sizes BARs, assigns the ones a minimal
//! boot environment (qboot, microvm) left at zero, numbers unconfigured
//! bridges and turns on decoding and bus mastering. Everything here is safe
//! code: a lying config space can only produce a wrong device list.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

mod caps;
pub use caps::{read_cap_bytes, vendor_capabilities, Capabilities, Capability, CAP_ID_VENDOR};

/// Bus/device/function address of a PCI function.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Bdf {
    /// Bus number (0..=255).
    pub bus: u8,
    /// Device number (0..32).
    pub device: u8,
    /// Function number (0..8).
    pub function: u8,
}

impl Bdf {
    /// Build an address; `device` and `function` are masked to 5 and 3 bits.
    pub const fn new(bus: u8, device: u8, function: u8) -> Self {
        Bdf {
            bus,
            device: device & 0x1f,
            function: function & 0x7,
        }
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

/// Raw access to PCI configuration space, implemented by the firmware.
///
/// This crate only ever passes dword-aligned offsets to `read32`/`write32`;
/// the narrower accessors are derived from them. Reads of absent functions
/// must return all ones, as the hardware does.
pub trait ConfigSpace {
    /// Read the dword at `offset` (4-byte aligned) of `addr`'s config space.
    fn read32(&mut self, addr: Bdf, offset: u16) -> u32;
    /// Write the dword at `offset` (4-byte aligned) of `addr`'s config space.
    fn write32(&mut self, addr: Bdf, offset: u16, value: u32);

    /// Read a 16-bit field (`offset` 2-byte aligned) from its dword.
    fn read16(&mut self, addr: Bdf, offset: u16) -> u16 {
        let dword = self.read32(addr, offset & !3);
        (dword >> ((offset & 2) * 8)) as u16
    }
    /// Read a byte from its dword.
    fn read8(&mut self, addr: Bdf, offset: u16) -> u8 {
        let dword = self.read32(addr, offset & !3);
        (dword >> ((offset & 3) * 8)) as u8
    }
    /// Write a 16-bit field by read-modify-write of its dword.
    ///
    /// Beware registers sharing the dword with write-one-to-clear bits (the
    /// status registers): the rewrite clears any such bit that read as one.
    fn write16(&mut self, addr: Bdf, offset: u16, value: u16) {
        let shift = (offset & 2) * 8;
        let old = self.read32(addr, offset & !3);
        let new = (old & !(0xffff << shift)) | (u32::from(value) << shift);
        self.write32(addr, offset & !3, new);
    }
    /// Write a byte by read-modify-write of its dword (same caveat as `write16`).
    fn write8(&mut self, addr: Bdf, offset: u16, value: u8) {
        let shift = (offset & 3) * 8;
        let old = self.read32(addr, offset & !3);
        let new = (old & !(0xff << shift)) | (u32::from(value) << shift);
        self.write32(addr, offset & !3, new);
    }
}

impl<C: ConfigSpace + ?Sized> ConfigSpace for &mut C {
    fn read32(&mut self, addr: Bdf, offset: u16) -> u32 {
        (**self).read32(addr, offset)
    }
    fn write32(&mut self, addr: Bdf, offset: u16, value: u32) {
        (**self).write32(addr, offset, value)
    }
}

/// Standard configuration header offsets.
pub mod regs {
    /// Vendor ID (16 bits).
    pub const VENDOR_ID: u16 = 0x00;
    /// Device ID (16 bits).
    pub const DEVICE_ID: u16 = 0x02;
    /// Command register (16 bits).
    pub const COMMAND: u16 = 0x04;
    /// Status register (16 bits, write-one-to-clear bits).
    pub const STATUS: u16 = 0x06;
    /// Revision ID (8 bits).
    pub const REVISION: u16 = 0x08;
    /// Programming interface (8 bits).
    pub const PROG_IF: u16 = 0x09;
    /// Subclass (8 bits).
    pub const SUBCLASS: u16 = 0x0a;
    /// Class code (8 bits).
    pub const CLASS: u16 = 0x0b;
    /// Header type (8 bits; bit 7 = multi-function).
    pub const HEADER_TYPE: u16 = 0x0e;
    /// First BAR.
    pub const BAR0: u16 = 0x10;
    /// Type 1: primary/secondary/subordinate bus numbers and secondary latency.
    pub const BUS_NUMBERS: u16 = 0x18;
    /// Type 1: I/O base, I/O limit, secondary status.
    pub const IO_BASE_LIMIT: u16 = 0x1c;
    /// Type 1: memory base and limit.
    pub const MEM_BASE_LIMIT: u16 = 0x20;
    /// Type 1: prefetchable memory base and limit.
    pub const PREF_BASE_LIMIT: u16 = 0x24;
    /// Type 1: prefetchable base, upper 32 bits.
    pub const PREF_BASE_UPPER: u16 = 0x28;
    /// Type 1: prefetchable limit, upper 32 bits.
    pub const PREF_LIMIT_UPPER: u16 = 0x2c;
    /// Type 1: I/O base and limit, upper 16 bits each.
    pub const IO_UPPER: u16 = 0x30;
    /// Capability list pointer (type 0 and type 1 headers).
    pub const CAP_PTR: u16 = 0x34;

    /// Command: respond to I/O space accesses.
    pub const CMD_IO: u16 = 1 << 0;
    /// Command: respond to memory space accesses.
    pub const CMD_MEM: u16 = 1 << 1;
    /// Command: allow the function to master the bus (DMA).
    pub const CMD_BUS_MASTER: u16 = 1 << 2;
    /// Status: a capability list is present.
    pub const STATUS_CAP_LIST: u16 = 1 << 4;
}

use regs::*;

/// How a BAR decodes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BarKind {
    /// 32-bit memory space.
    Mem32,
    /// 64-bit memory space (occupies two BAR slots).
    Mem64,
    /// I/O port space.
    Io,
}

/// A sized (and, if it was zero, assigned) base address register.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Bar {
    /// Bus address; identity mapped by the firmware for memory BARs.
    pub addr: u64,
    /// Size in bytes (a power of two).
    pub size: u64,
    /// Decoding type.
    pub kind: BarKind,
    /// Prefetchable memory (no read side effects).
    pub prefetchable: bool,
}

impl Bar {
    /// Whether this BAR lives in memory space.
    pub fn is_memory(&self) -> bool {
        self.kind != BarKind::Io
    }
}

/// One PCI function found by [`enumerate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// Its address.
    pub bdf: Bdf,
    /// Vendor ID.
    pub vendor_id: u16,
    /// Device ID.
    pub device_id: u16,
    /// Revision ID.
    pub revision: u8,
    /// Class code.
    pub class: u8,
    /// Subclass code.
    pub subclass: u8,
    /// Programming interface.
    pub prog_if: u8,
    /// Header layout (0 = endpoint, 1 = PCI-PCI bridge), multi-function bit removed.
    pub header_type: u8,
    /// BARs by slot; the upper half of a 64-bit BAR is `None`. Only BARs that
    /// decode (sized and assigned) appear.
    pub bars: [Option<Bar>; 6],
    /// For bridges, the bus number behind them.
    pub secondary_bus: Option<u8>,
    /// The command register as left by enumeration.
    pub command: u16,
}

impl Device {
    /// Walk this function's capability list.
    pub fn capabilities<'a, C: ConfigSpace + ?Sized>(&self, cfg: &'a mut C) -> Capabilities<'a, C> {
        Capabilities::new(cfg, self.bdf)
    }

    /// The BAR in `index`, if present.
    pub fn bar(&self, index: u8) -> Option<Bar> {
        self.bars.get(usize::from(index)).copied().flatten()
    }
}

/// Address ranges from which unassigned BARs (and bridge windows) are carved.
///
/// Allocation moves each range's `start` forward, so after [`enumerate`]
/// the ranges describe what is still free.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BarWindows {
    /// Below 4 GiB: 32-bit and non-prefetchable BARs.
    pub mem32: Range<u64>,
    /// Anywhere: 64-bit prefetchable BARs (falls back to `mem32` if empty or full).
    pub mem64: Range<u64>,
    /// I/O ports.
    pub io: Range<u32>,
}

fn align_up(value: u64, align: u64) -> Option<u64> {
    debug_assert!(align.is_power_of_two());
    value.checked_add(align - 1).map(|v| v & !(align - 1))
}

/// Take a naturally aligned `size`-byte block from the front of `range`.
fn alloc_from(range: &mut Range<u64>, size: u64) -> Option<u64> {
    let base = align_up(range.start, size)?;
    let end = base.checked_add(size)?;
    if end > range.end {
        return None;
    }
    range.start = end;
    Some(base)
}

const MAX_DEPTH: usize = 32;
const BRIDGE_MEM_ALIGN: u64 = 1 << 20;
const BRIDGE_IO_ALIGN: u64 = 1 << 12;
const FOUR_GIB: u64 = 1 << 32;

/// Enumerate every function reachable from bus 0.
///
/// Sizes and, where zero, assigns BARs from `windows`; numbers bridges whose
/// secondary bus is unset and programs their forwarding windows; enables
/// memory/I/O decoding (when all such BARs got addresses) and bus mastering.
/// Bounded: each bus is scanned at most once, bridges nest at most 32 deep.
pub fn enumerate<C: ConfigSpace + ?Sized>(cfg: &mut C, windows: &mut BarWindows) -> Vec<Device> {
    let mut e = Enumerator {
        cfg,
        windows,
        devices: Vec::new(),
        visited: [false; 256],
        next_bus: 1,
    };
    e.scan_bus(0, 0);
    e.devices
}

struct Enumerator<'a, C: ConfigSpace + ?Sized> {
    cfg: &'a mut C,
    windows: &'a mut BarWindows,
    devices: Vec<Device>,
    visited: [bool; 256],
    /// Next bus number free for an unconfigured bridge (u16 so 256 = exhausted).
    next_bus: u16,
}

/// Cursor positions of the three allocators, to derive a bridge's windows.
#[derive(Clone, Copy)]
struct Cursors {
    mem32: u64,
    mem64: u64,
    io: u64,
}

impl<C: ConfigSpace + ?Sized> Enumerator<'_, C> {
    fn scan_bus(&mut self, bus: u8, depth: usize) {
        if self.visited[usize::from(bus)] {
            return;
        }
        self.visited[usize::from(bus)] = true;
        for dev in 0..32 {
            let f0 = Bdf::new(bus, dev, 0);
            if !present(self.cfg, f0) {
                continue;
            }
            let functions = if self.cfg.read8(f0, HEADER_TYPE) & 0x80 != 0 {
                8
            } else {
                1
            };
            for func in 0..functions {
                let bdf = Bdf::new(bus, dev, func);
                if func == 0 || present(self.cfg, bdf) {
                    self.probe_function(bdf, depth);
                }
            }
        }
    }

    fn probe_function(&mut self, bdf: Bdf, depth: usize) {
        let id = self.cfg.read32(bdf, VENDOR_ID);
        let class = self.cfg.read32(bdf, REVISION);
        let header_type = self.cfg.read8(bdf, HEADER_TYPE) & 0x7f;
        let bar_count = match header_type {
            0 => 6,
            1 => 2,
            _ => 0, // CardBus and unknown layouts: leave alone.
        };
        let old_cmd = self.cfg.read16(bdf, COMMAND);
        // Stop decoding while BARs temporarily hold all-ones, so the probe
        // pattern can never claim someone else's addresses.
        write_command(self.cfg, bdf, old_cmd & !(CMD_IO | CMD_MEM));
        let probe = self.probe_bars(bdf, bar_count);

        let mut cmd = (old_cmd & !(CMD_IO | CMD_MEM)) | CMD_BUS_MASTER;
        if probe.has_mem && !probe.mem_failed {
            cmd |= CMD_MEM;
        }
        if probe.has_io && !probe.io_failed {
            cmd |= CMD_IO;
        }
        let mut device = Device {
            bdf,
            vendor_id: id as u16,
            device_id: (id >> 16) as u16,
            revision: class as u8,
            prog_if: (class >> 8) as u8,
            subclass: (class >> 16) as u8,
            class: (class >> 24) as u8,
            header_type,
            bars: probe.bars,
            secondary_bus: None,
            command: cmd,
        };
        let index = self.devices.len();
        if header_type == 1 {
            // A bridge must decode to forward; its own BARs may still be unset.
            if !probe.mem_failed {
                cmd |= CMD_MEM;
            }
            if !probe.io_failed {
                cmd |= CMD_IO;
            }
            device.command = cmd;
            self.devices.push(device);
            let secondary = self.scan_bridge(bdf, depth);
            self.devices[index].secondary_bus = secondary;
        } else {
            self.devices.push(device);
        }
        write_command(self.cfg, bdf, cmd);
    }

    fn probe_bars(&mut self, bdf: Bdf, count: u16) -> BarProbe {
        let mut out = BarProbe::default();
        let mut i = 0u16;
        while i < count {
            let off = BAR0 + i * 4;
            let orig = self.cfg.read32(bdf, off);
            if orig & 1 == 1 {
                self.cfg.write32(bdf, off, 0xffff_ffff);
                let probed = self.cfg.read32(bdf, off);
                self.cfg.write32(bdf, off, orig);
                let mut mask = probed & !0x3;
                if mask != 0 {
                    // 16-bit I/O decoders read the upper half back as zero.
                    if mask & 0xffff_0000 == 0 {
                        mask |= 0xffff_0000;
                    }
                    let size = u64::from(mask & mask.wrapping_neg());
                    let mut addr = u64::from(orig & !0x3);
                    out.has_io = true;
                    if addr == 0 {
                        let mut io =
                            u64::from(self.windows.io.start)..u64::from(self.windows.io.end);
                        match alloc_from(&mut io, size) {
                            Some(a) => {
                                self.windows.io.start = io.start as u32;
                                addr = a;
                                self.cfg.write32(bdf, off, (a as u32) | 1);
                            }
                            None => {
                                log::warn!("pci {bdf}: no I/O space for BAR{i} ({size:#x} bytes)")
                            }
                        }
                    }
                    if addr != 0 {
                        out.bars[usize::from(i)] = Some(Bar {
                            addr,
                            size,
                            kind: BarKind::Io,
                            prefetchable: false,
                        });
                    } else {
                        out.io_failed = true;
                    }
                }
                i += 1;
                continue;
            }
            let prefetchable = orig & 0x8 != 0;
            let is64 = (orig >> 1) & 3 == 2 && i + 1 < count;
            let (orig_hi, probed) = if is64 {
                let orig_hi = self.cfg.read32(bdf, off + 4);
                self.cfg.write32(bdf, off, 0xffff_ffff);
                self.cfg.write32(bdf, off + 4, 0xffff_ffff);
                let lo = self.cfg.read32(bdf, off);
                let hi = self.cfg.read32(bdf, off + 4);
                self.cfg.write32(bdf, off, orig);
                self.cfg.write32(bdf, off + 4, orig_hi);
                (orig_hi, (u64::from(hi) << 32) | u64::from(lo & !0xf))
            } else {
                self.cfg.write32(bdf, off, 0xffff_ffff);
                let lo = self.cfg.read32(bdf, off);
                self.cfg.write32(bdf, off, orig);
                (0, u64::from(lo & !0xf))
            };
            let slots = if is64 { 2 } else { 1 };
            if probed & 0xffff_ffff != 0 || (is64 && probed != 0) {
                let mask = if is64 {
                    probed
                } else {
                    probed | 0xffff_ffff_0000_0000
                };
                // Lowest writable bit = size; robust even to a non-contiguous mask.
                let size = mask & mask.wrapping_neg();
                let mut addr = (u64::from(orig_hi) << 32) | u64::from(orig & !0xf);
                out.has_mem = true;
                if addr == 0 {
                    let assigned = if is64 && prefetchable {
                        alloc_from(&mut self.windows.mem64, size)
                            .or_else(|| alloc_below_4g(&mut self.windows.mem32, size))
                    } else {
                        alloc_below_4g(&mut self.windows.mem32, size)
                    };
                    match assigned {
                        Some(a) => {
                            addr = a;
                            self.cfg.write32(bdf, off, (a as u32) | (orig & 0xf));
                            if is64 {
                                self.cfg.write32(bdf, off + 4, (a >> 32) as u32);
                            }
                        }
                        None => {
                            log::warn!("pci {bdf}: no memory space for BAR{i} ({size:#x} bytes)")
                        }
                    }
                }
                if addr != 0 {
                    let kind = if is64 { BarKind::Mem64 } else { BarKind::Mem32 };
                    out.bars[usize::from(i)] = Some(Bar {
                        addr,
                        size,
                        kind,
                        prefetchable,
                    });
                } else {
                    out.mem_failed = true;
                }
            }
            i += slots;
        }
        out
    }

    /// Scan behind a bridge; returns its secondary bus if it was scanned.
    fn scan_bridge(&mut self, bdf: Bdf, depth: usize) -> Option<u8> {
        if depth >= MAX_DEPTH {
            log::warn!("pci {bdf}: bridges nested too deep, not scanning behind");
            return None;
        }
        let buses = self.cfg.read32(bdf, BUS_NUMBERS);
        let secondary = (buses >> 8) as u8;
        let subordinate = (buses >> 16) as u8;
        let configured = secondary > bdf.bus && !self.visited[usize::from(secondary)];
        let target = if configured {
            let after = u16::from(subordinate.max(secondary)) + 1;
            self.next_bus = self.next_bus.max(after);
            secondary
        } else {
            while self.next_bus < 256 && self.visited[usize::from(self.next_bus)] {
                self.next_bus += 1;
            }
            if self.next_bus >= 256 {
                log::warn!("pci {bdf}: out of bus numbers");
                return None;
            }
            let target = self.next_bus as u8;
            self.next_bus += 1;
            // Subordinate 0xff while scanning so deeper buses are reachable.
            let value = (buses & 0xff00_0000)
                | (0xff << 16)
                | (u32::from(target) << 8)
                | u32::from(bdf.bus);
            self.cfg.write32(bdf, BUS_NUMBERS, value);
            target
        };

        let start = self.align_cursors();
        self.scan_bus(target, depth + 1);
        let end = self.align_cursors();

        if !configured {
            let last = (self.next_bus - 1).max(u16::from(target)) as u8;
            let value = (buses & 0xff00_0000)
                | (u32::from(last) << 16)
                | (u32::from(target) << 8)
                | u32::from(bdf.bus);
            self.cfg.write32(bdf, BUS_NUMBERS, value);
        }
        self.program_windows(bdf, start, end, !configured);
        Some(target)
    }

    /// Round allocation cursors to bridge window granularity.
    fn align_cursors(&mut self) -> Cursors {
        let w = &mut *self.windows;
        w.mem32.start = align_up(w.mem32.start, BRIDGE_MEM_ALIGN)
            .unwrap_or(w.mem32.end)
            .min(w.mem32.end);
        w.mem64.start = align_up(w.mem64.start, BRIDGE_MEM_ALIGN)
            .unwrap_or(w.mem64.end)
            .min(w.mem64.end);
        let io = align_up(u64::from(w.io.start), BRIDGE_IO_ALIGN)
            .unwrap_or(u64::MAX)
            .min(u64::from(w.io.end));
        w.io.start = io as u32;
        Cursors {
            mem32: w.mem32.start,
            mem64: w.mem64.start,
            io,
        }
    }

    /// Set a bridge's windows to cover what was allocated behind it.
    ///
    /// For a bridge we just numbered, power-on windows (base 0, limit 0 =
    /// "1 MiB at 0") are bogus: unused windows get disabled. For a bridge set
    /// up by earlier firmware, windows are only widened to also cover our
    /// new allocations.
    fn program_windows(&mut self, bdf: Bdf, start: Cursors, end: Cursors, fresh: bool) {
        let cfg = &mut *self.cfg;
        // Non-prefetchable memory window: 1 MiB granularity, 32-bit.
        let mem = cfg.read32(bdf, MEM_BASE_LIMIT);
        let old = (
            u64::from(mem & 0xfff0) << 16,
            (u64::from(mem >> 16 & 0xfff0) << 16) | 0xf_ffff,
        );
        if let Some((base, limit)) = window(start.mem32, end.mem32, old, fresh) {
            let v = ((base >> 16) as u32 & 0xfff0) | (((limit >> 16) as u32 & 0xfff0) << 16);
            cfg.write32(bdf, MEM_BASE_LIMIT, v);
        }
        // Prefetchable window: 64-bit capable.
        let pref = cfg.read32(bdf, PREF_BASE_LIMIT);
        let pref64 = pref & 0xf == 1;
        let (bu, lu) = if pref64 {
            (
                cfg.read32(bdf, PREF_BASE_UPPER),
                cfg.read32(bdf, PREF_LIMIT_UPPER),
            )
        } else {
            (0, 0)
        };
        let old = (
            (u64::from(bu) << 32) | (u64::from(pref & 0xfff0) << 16),
            (u64::from(lu) << 32) | (u64::from(pref >> 16 & 0xfff0) << 16) | 0xf_ffff,
        );
        let new = window(start.mem64, end.mem64, old, fresh);
        match new {
            Some((base, limit)) if pref64 || limit < FOUR_GIB => {
                let v = ((base >> 16) as u32 & 0xfff0) | (((limit >> 16) as u32 & 0xfff0) << 16);
                cfg.write32(bdf, PREF_BASE_LIMIT, v);
                if pref64 {
                    cfg.write32(bdf, PREF_BASE_UPPER, (base >> 32) as u32);
                    cfg.write32(bdf, PREF_LIMIT_UPPER, (limit >> 32) as u32);
                }
            }
            Some(_) => log::warn!("pci {bdf}: bridge cannot forward 64-bit prefetchable window"),
            None => {}
        }
        // I/O window: 4 KiB granularity, 16 or 32 bits. The dword also holds
        // the write-one-to-clear secondary status, written as zero.
        let io = cfg.read32(bdf, IO_BASE_LIMIT);
        let io32 = io & 0xf == 1;
        let upper = if io32 { cfg.read32(bdf, IO_UPPER) } else { 0 };
        let old = (
            (u64::from(upper & 0xffff) << 16) | (u64::from(io & 0xf0) << 8),
            (u64::from(upper >> 16) << 16) | (u64::from(io >> 8 & 0xf0) << 8) | 0xfff,
        );
        if let Some((base, limit)) = window(start.io, end.io, old, fresh) {
            let v =
                (io & 0x0f0f) | ((base >> 8) as u32 & 0xf0) | (((limit >> 8) as u32 & 0xf0) << 8);
            cfg.write32(bdf, IO_BASE_LIMIT, v);
            if io32 {
                cfg.write32(
                    bdf,
                    IO_UPPER,
                    ((base >> 16) as u32 & 0xffff) | (((limit >> 16) as u32) << 16),
                );
            }
        }
    }
}

/// Compute a bridge window `(base, limit)` (inclusive) to program, if any.
///
/// `start..end` is what was allocated behind the bridge; `old` the current
/// window. A disabled window is encoded as base > limit.
fn window(start: u64, end: u64, old: (u64, u64), fresh: bool) -> Option<(u64, u64)> {
    let used = end > start;
    match (used, fresh) {
        (true, true) => Some((start, end - 1)),
        (true, false) if old.0 <= old.1 => Some((old.0.min(start), old.1.max(end - 1))),
        (true, false) => Some((start, end - 1)),
        // Disable: a base that encodes above a zero limit in every window format.
        (false, true) => Some((0xffff_f000, 0)),
        (false, false) => None,
    }
}

fn alloc_below_4g(range: &mut Range<u64>, size: u64) -> Option<u64> {
    let mut below = range.start..range.end.min(FOUR_GIB);
    let a = alloc_from(&mut below, size)?;
    range.start = below.start;
    Some(a)
}

#[derive(Default)]
struct BarProbe {
    bars: [Option<Bar>; 6],
    has_mem: bool,
    has_io: bool,
    mem_failed: bool,
    io_failed: bool,
}

fn present<C: ConfigSpace + ?Sized>(cfg: &mut C, bdf: Bdf) -> bool {
    let vendor = cfg.read16(bdf, VENDOR_ID);
    vendor != 0xffff && vendor != 0
}

/// Write the command register without touching the status register.
///
/// A read-modify-write of the dword would write back status bits that read
/// one, clearing them (they are write-one-to-clear); zeros are harmless.
pub fn write_command<C: ConfigSpace + ?Sized>(cfg: &mut C, bdf: Bdf, command: u16) {
    cfg.write32(bdf, COMMAND, u32::from(command));
}

#[cfg(test)]
mod tests;
