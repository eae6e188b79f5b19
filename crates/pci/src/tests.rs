extern crate std;

use super::*;
use std::vec;

/// One modelled function. Its bus is dynamic: 0 at the root, else whatever
/// secondary bus its parent bridge is currently programmed with.
#[derive(Clone)]
struct FakeFn {
    parent: Option<usize>,
    device: u8,
    function: u8,
    regs: [u32; 64],
    /// Writable bits of each BAR dword (0 = unimplemented slot).
    bar_masks: [u32; 6],
}

impl FakeFn {
    fn new(device: u8, function: u8, vendor: u16, id: u16, class: u8, sub: u8) -> Self {
        let mut regs = [0; 64];
        regs[0] = u32::from(vendor) | (u32::from(id) << 16);
        regs[2] = (u32::from(class) << 24) | (u32::from(sub) << 16);
        FakeFn {
            parent: None,
            device,
            function,
            regs,
            bar_masks: [0; 6],
        }
    }
    fn bridge(device: u8) -> Self {
        let mut f = Self::new(device, 0, 0x8086, 0x1234, 0x06, 0x04);
        f.regs[3] = 1 << 16; // header type 1
                             // 32-bit I/O and 64-bit prefetchable window support.
        f.regs[7] = 0x0101;
        f.regs[9] = 0x0001_0001;
        f
    }
    fn behind(mut self, parent: usize) -> Self {
        self.parent = Some(parent);
        self
    }
    fn multifunction(mut self) -> Self {
        self.regs[3] |= 0x80 << 16;
        self
    }
    fn mem32(mut self, slot: usize, size: u32, addr: u32) -> Self {
        self.bar_masks[slot] = !(size - 1);
        self.regs[4 + slot] = addr;
        self
    }
    fn mem64_pref(mut self, slot: usize, size: u64, addr: u64) -> Self {
        let mask = !(size - 1);
        self.bar_masks[slot] = mask as u32;
        self.bar_masks[slot + 1] = (mask >> 32) as u32;
        self.regs[4 + slot] = (addr as u32) | 0b1100;
        self.regs[5 + slot] = (addr >> 32) as u32;
        self
    }
    fn io(mut self, slot: usize, size: u32) -> Self {
        // 16-bit decoder: upper half reads back zero.
        self.bar_masks[slot] = !(size - 1) & 0xffff;
        self.regs[4 + slot] = 1;
        self
    }
    fn caps(mut self, list: &[(u8, u8, u8)]) -> Self {
        self.regs[1] |= u32::from(STATUS_CAP_LIST) << 16;
        self.regs[0x34 / 4] = u32::from(list[0].1);
        for &(id, off, next) in list {
            let i = usize::from(off) / 4;
            self.regs[i] = (self.regs[i] & !0xffff) | u32::from(id) | (u32::from(next) << 8);
        }
        self
    }
}

#[derive(Default)]
struct FakeCfg {
    fns: Vec<FakeFn>,
    /// Set if a BAR was probed with all ones while its function decoded memory.
    probed_while_decoding: bool,
}

impl FakeCfg {
    fn add(&mut self, f: FakeFn) -> usize {
        self.fns.push(f);
        self.fns.len() - 1
    }
    fn bus_of(&self, i: usize, depth: usize) -> Option<u8> {
        match self.fns[i].parent {
            None => Some(0),
            Some(_) if depth > 8 => None,
            Some(p) => {
                self.bus_of(p, depth + 1)?;
                let secondary = (self.fns[p].regs[6] >> 8) as u8;
                (secondary != 0).then_some(secondary)
            }
        }
    }
    fn find(&self, bdf: Bdf) -> Option<usize> {
        (0..self.fns.len()).find(|&i| {
            let f = &self.fns[i];
            f.device == bdf.device
                && f.function == bdf.function
                && self.bus_of(i, 0) == Some(bdf.bus)
        })
    }
}

impl ConfigSpace for FakeCfg {
    fn read32(&mut self, addr: Bdf, offset: u16) -> u32 {
        assert_eq!(offset % 4, 0, "unaligned config read");
        match self.find(addr) {
            Some(i) => self.fns[i].regs[usize::from(offset / 4)],
            None => 0xffff_ffff,
        }
    }
    fn write32(&mut self, addr: Bdf, offset: u16, value: u32) {
        assert_eq!(offset % 4, 0, "unaligned config write");
        let Some(i) = self.find(addr) else { return };
        let f = &mut self.fns[i];
        let idx = usize::from(offset / 4);
        match offset {
            0x00 | 0x08 | 0x0c => {} // read-only identification
            0x10..=0x24 => {
                let slot = idx - 4;
                let bar_count = if (f.regs[3] >> 16) & 0x7f == 1 { 2 } else { 6 };
                if slot >= bar_count {
                    f.regs[idx] = value;
                    return;
                }
                if value == 0xffff_ffff && f.regs[1] & u32::from(CMD_MEM | CMD_IO) != 0 {
                    self.probed_while_decoding = true;
                }
                let f = &mut self.fns[i];
                let mask = f.bar_masks[slot];
                // Low type bits of a BAR's first dword are read-only.
                let is_low =
                    slot == 0 || f.bar_masks[slot - 1] == 0 || f.regs[idx - 1] & 0b111 != 0b100;
                let ro = if is_low {
                    if f.regs[idx] & 1 == 1 {
                        0x3
                    } else {
                        0xf
                    }
                } else {
                    0
                };
                f.regs[idx] = (f.regs[idx] & ro) | (value & mask & !ro);
            }
            0x04 => f.regs[1] = (f.regs[1] & 0xffff_0000) | (value & 0xffff),
            _ => f.regs[idx] = value,
        }
    }
}

fn windows() -> BarWindows {
    BarWindows {
        mem32: 0xc000_0000..0xfe00_0000,
        mem64: 0x80_0000_0000..0x100_0000_0000,
        io: 0x1000..0x10000,
    }
}

fn dev(list: &[Device], bus: u8, d: u8, f: u8) -> &Device {
    list.iter()
        .find(|x| x.bdf == Bdf::new(bus, d, f))
        .expect("device enumerated")
}

#[test]
fn enumerates_functions_and_assigns_bars() {
    let mut cfg = FakeCfg::default();
    cfg.add(FakeFn::new(0, 0, 0x8086, 0x29c0, 0x06, 0x00));
    // Multi-function device with functions 0 and 3 only.
    cfg.add(
        FakeFn::new(2, 0, 0x1234, 0x1111, 0x01, 0x06)
            .multifunction()
            .mem32(5, 0x1000, 0),
    );
    cfg.add(FakeFn::new(2, 3, 0x1234, 0x1113, 0x0c, 0x05).io(4, 0x20));
    // virtio-like: small 32-bit BAR, 64-bit prefetchable BAR, I/O BAR, all unassigned.
    cfg.add(
        FakeFn::new(3, 0, 0x1af4, 0x1042, 0x01, 0x00)
            .mem32(1, 0x1000, 0)
            .mem64_pref(4, 0x4000, 0)
            .io(0, 0x40),
    );
    // Pre-assigned BAR is kept.
    cfg.add(FakeFn::new(4, 0, 0x1b36, 0x0001, 0x02, 0x00).mem32(0, 0x10_0000, 0xfeb0_0000));

    // Decoding on at entry (as earlier firmware may leave it): probing must turn it off.
    cfg.fns[3].regs[1] |= 0x3;
    cfg.fns[4].regs[1] |= 0x2;
    let mut w = windows();
    let list = enumerate(&mut cfg, &mut w);
    assert_eq!(list.len(), 5);
    assert!(!cfg.probed_while_decoding);

    let f3 = dev(&list, 0, 2, 3);
    assert_eq!(
        (f3.vendor_id, f3.device_id, f3.class, f3.subclass),
        (0x1234, 0x1113, 0x0c, 0x05)
    );

    let v = dev(&list, 0, 3, 0);
    let b1 = v.bars[1].unwrap();
    let b4 = v.bars[4].unwrap();
    let b0 = v.bars[0].unwrap();
    assert_eq!((b1.kind, b1.size), (BarKind::Mem32, 0x1000));
    assert_eq!(
        (b4.kind, b4.size, b4.prefetchable),
        (BarKind::Mem64, 0x4000, true)
    );
    assert_eq!(v.bars[5], None);
    assert_eq!((b0.kind, b0.size), (BarKind::Io, 0x40));
    assert!(b4.addr >= 0x80_0000_0000 && b4.addr.is_multiple_of(0x4000));
    assert!(b1.addr >= 0xc000_0000 && b1.addr.is_multiple_of(0x1000));
    assert!(b0.addr >= 0x1000 && b0.addr.is_multiple_of(0x40));
    assert_eq!(
        v.command & (CMD_MEM | CMD_IO | CMD_BUS_MASTER),
        CMD_MEM | CMD_IO | CMD_BUS_MASTER
    );
    // Assigned addresses were written to the device.
    let regs = cfg.fns[3].regs;
    assert_eq!(u64::from(regs[5] & !0xf), b1.addr);
    assert_eq!(
        (u64::from(regs[9]) << 32) | u64::from(regs[8] & !0xf),
        b4.addr
    );
    assert_eq!(regs[8] & 0xf, 0b1100, "type bits preserved");
    assert_eq!(regs[1] & 0x7, 0x7);

    let kept = dev(&list, 0, 4, 0).bars[0].unwrap();
    assert_eq!(kept.addr, 0xfeb0_0000);

    // All memory BARs are disjoint.
    let mut mems: Vec<(u64, u64)> = list
        .iter()
        .flat_map(|d| d.bars.iter().flatten())
        .filter(|b| b.is_memory())
        .map(|b| (b.addr, b.size))
        .collect();
    mems.sort();
    for pair in mems.windows(2) {
        assert!(pair[0].0 + pair[0].1 <= pair[1].0, "overlap: {pair:x?}");
    }
}

#[test]
fn numbers_unconfigured_bridge_and_programs_windows() {
    let mut cfg = FakeCfg::default();
    cfg.add(FakeFn::new(0, 0, 0x8086, 0x29c0, 0x06, 0x00));
    let br = cfg.add(FakeFn::bridge(0x1c));
    let br2 = cfg.add(FakeFn::bridge(0).behind(br));
    cfg.add(
        FakeFn::new(0, 0, 0x1af4, 0x1041, 0x02, 0x00)
            .behind(br2)
            .mem64_pref(4, 0x4000, 0)
            .mem32(1, 0x10_0000, 0),
    );
    cfg.add(
        FakeFn::new(3, 0, 0x1af4, 0x1042, 0x01, 0x00)
            .behind(br)
            .mem32(0, 0x2000, 0),
    );
    cfg.add(FakeFn::new(5, 0, 0x1af4, 0x1042, 0x01, 0x00).mem32(0, 0x2000, 0));

    let mut w = windows();
    let list = enumerate(&mut cfg, &mut w);
    assert_eq!(list.len(), 6);

    let b = dev(&list, 0, 0x1c, 0);
    assert_eq!(b.secondary_bus, Some(1));
    assert_eq!(dev(&list, 1, 0, 0).secondary_bus, Some(2));
    // primary 0, secondary 1, subordinate 2 (includes the nested bridge's bus).
    assert_eq!(cfg.fns[br].regs[6] & 0xff_ffff, 0x02_01_00);
    assert_eq!(cfg.fns[br2].regs[6] & 0xff_ffff, 0x02_02_01);

    let nic = dev(&list, 2, 0, 0);
    let deep = dev(&list, 1, 3, 0).bars[0].unwrap();
    let m32 = nic.bars[1].unwrap();
    let m64 = nic.bars[4].unwrap();

    // The outer bridge's non-prefetchable window covers both 32-bit BARs.
    let mem = cfg.fns[br].regs[8];
    let (base, limit) = (
        u64::from(mem & 0xfff0) << 16,
        (u64::from(mem >> 16 & 0xfff0) << 16) | 0xf_ffff,
    );
    for bar in [m32, deep] {
        assert!(
            bar.addr >= base && bar.addr + bar.size - 1 <= limit,
            "{bar:x?} outside {base:#x}..={limit:#x}"
        );
    }
    // The prefetchable window covers the 64-bit BAR, with upper halves set.
    let r = &cfg.fns[br2].regs;
    let pbase = (u64::from(r[10]) << 32) | (u64::from(r[9] & 0xfff0) << 16);
    let plimit = (u64::from(r[11]) << 32) | (u64::from(r[9] >> 16 & 0xfff0) << 16) | 0xf_ffff;
    assert!(m64.addr >= pbase && m64.addr + m64.size - 1 <= plimit);
    // Unused I/O window disabled (base above limit).
    let io = cfg.fns[br].regs[7];
    assert!((io & 0xf0) > (io >> 8 & 0xf0));
    // The sibling on bus 0 does not fall inside the bridge's window.
    let sib = dev(&list, 0, 5, 0).bars[0].unwrap();
    assert!(sib.addr > limit || sib.addr + sib.size <= base);
    assert!(cfg.fns[br].regs[1] & u32::from(CMD_MEM) != 0);
}

#[test]
fn follows_configured_bridge_and_never_rescans_a_bus() {
    let mut cfg = FakeCfg::default();
    let a = cfg.add(FakeFn::bridge(1));
    cfg.fns[a].regs[6] = 0x05_05_00; // secondary 5, subordinate 5
                                     // A second bridge (lying) that also claims bus 5.
    let b = cfg.add(FakeFn::bridge(2));
    cfg.fns[b].regs[6] = 0x05_05_00;
    let c = cfg.add(FakeFn::bridge(3));
    cfg.add(
        FakeFn::new(7, 0, 0x1af4, 0x1042, 0x01, 0x00)
            .behind(a)
            .mem32(0, 0x1000, 0),
    );
    let list = enumerate(&mut cfg, &mut windows());
    assert_eq!(list.iter().filter(|d| d.vendor_id == 0x1af4).count(), 1);
    assert!(list.iter().any(|d| d.bdf == Bdf::new(5, 7, 0)));
    // The duplicate claim got a fresh bus; the unconfigured bridge the next one.
    assert_eq!(cfg.fns[b].regs[6] >> 8 & 0xff, 6);
    assert_eq!(cfg.fns[c].regs[6] >> 8 & 0xff, 7);
}

#[test]
fn bar_that_does_not_fit_leaves_memory_decoding_off() {
    let mut cfg = FakeCfg::default();
    cfg.add(FakeFn::new(1, 0, 0x1af4, 0x1042, 0x01, 0x00).mem32(0, 0x1000_0000, 0));
    let mut w = BarWindows {
        mem32: 0xc000_0000..0xc100_0000,
        mem64: 0..0,
        io: 0..0,
    };
    let list = enumerate(&mut cfg, &mut w);
    assert_eq!(list[0].bars[0], None);
    assert_eq!(list[0].command & CMD_MEM, 0);
    assert_eq!(cfg.fns[0].regs[4], 0);
}

#[test]
fn pref64_falls_back_below_4g_when_no_high_window() {
    let mut cfg = FakeCfg::default();
    cfg.add(FakeFn::new(1, 0, 0x1af4, 0x1042, 0x01, 0x00).mem64_pref(2, 0x10_0000, 0));
    let mut w = BarWindows {
        mem32: 0xc000_0000..0xd000_0000,
        mem64: 0..0,
        io: 0..0,
    };
    let list = enumerate(&mut cfg, &mut w);
    let bar = list[0].bars[2].unwrap();
    assert_eq!(bar.addr, 0xc000_0000);
    assert_eq!(w.mem32.start, 0xc010_0000);
}

#[test]
fn capability_walk_stops_on_loop() {
    let mut cfg = FakeCfg::default();
    cfg.add(
        FakeFn::new(0, 0, 0x1af4, 0x1042, 0x01, 0x00)
            .caps(&[(0x09, 0x40, 0x50), (0x11, 0x50, 0x40)]),
    );
    let caps: Vec<Capability> = Capabilities::new(&mut cfg, Bdf::new(0, 0, 0)).collect();
    assert_eq!(
        caps,
        vec![
            Capability {
                id: 0x09,
                offset: 0x40
            },
            Capability {
                id: 0x11,
                offset: 0x50
            }
        ]
    );
}

#[test]
fn capability_walk_rejects_header_pointers_and_reads_vendor_bodies() {
    let mut cfg = FakeCfg::default();
    let i = cfg.add(FakeFn::new(0, 0, 0x1af4, 0x1042, 0x01, 0x00).caps(&[
        (0x05, 0x48, 0x60),
        (0x09, 0x60, 0x70),
        (0x09, 0x70, 0x10),
    ]));
    cfg.fns[i].regs[0x60 / 4] |= 0x10 << 16 | 0x01 << 24; // cap_len 16, cfg_type 1
    cfg.fns[i].regs[0x68 / 4] = 0x1234_5678;
    let bdf = Bdf::new(0, 0, 0);
    let vendor: Vec<Capability> = vendor_capabilities(&mut cfg, bdf).collect();
    assert_eq!(
        vendor.iter().map(|c| c.offset).collect::<Vec<_>>(),
        vec![0x60, 0x70]
    );
    let mut body = [0u8; 12];
    read_cap_bytes(&mut cfg, bdf, 0x60, &mut body);
    assert_eq!(
        body,
        [0x09, 0x70, 0x10, 0x01, 0, 0, 0, 0, 0x78, 0x56, 0x34, 0x12]
    );
    let mut tail = [0xaau8; 8];
    read_cap_bytes(&mut cfg, bdf, 0xfc, &mut tail);
    assert_eq!(&tail[4..], &[0, 0, 0, 0]);
    // No capability list bit: nothing.
    cfg.fns[i].regs[1] = 0;
    assert_eq!(Capabilities::new(&mut cfg, bdf).count(), 0);
}

#[test]
fn narrow_accessors_modify_only_their_field() {
    let mut cfg = FakeCfg::default();
    cfg.add(FakeFn::new(0, 0, 0x1af4, 0x1042, 0x01, 0x00));
    let bdf = Bdf::new(0, 0, 0);
    cfg.write32(bdf, 0x40, 0x4433_2211);
    cfg.write8(bdf, 0x42, 0xaa);
    cfg.write16(bdf, 0x40, 0xbbcc);
    assert_eq!(cfg.read32(bdf, 0x40), 0x44aa_bbcc);
    assert_eq!(cfg.read8(bdf, 0x43), 0x44);
    assert_eq!(cfg.read16(bdf, 0x42), 0x44aa);
    assert_eq!(std::format!("{bdf}"), "00:00.0");
}
