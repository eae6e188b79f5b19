//! QEMU's `-kernel/-initrd/-append` through fw_cfg, started with the arm64
//! Linux boot protocol (Documentation/arch/arm64/booting.rst): the Image at
//! a 2 MiB-aligned base plus its `text_offset`, the initrd and a device
//! tree whose `/chosen` carries the command line and the initrd, caches
//! cleaned to the point of coherency, then the MMU off and a jump to the
//! Image with x0 = the device tree.

use crate::fwcfg::{self, FwCfg};
use crate::pl011::Pl011;
use core::fmt::Write;

const MIB2: usize = 2 << 20;
/// "ARM\x64" at offset 56 of an arm64 Image.
const IMAGE_MAGIC: u32 = 0x644d_5241;
/// Ember's own RAM (data, stack) ends below this; everything it loads goes
/// above.
const LOAD_BASE: usize = 0x4040_0000;
/// The device tree Linux gets: at most 2 MiB (booting.rst).
const DTB_MAX: usize = 2 << 20;

fn align_up(v: usize, a: usize) -> usize {
    v.div_ceil(a) * a
}

extern "C" {
    /// entry.s: MMU and caches off, then `br entry` with x0 = `dtb`.
    fn ember_enter_linux(entry: usize, dtb: usize) -> !;
}

/// Clean `[start, start + len)` from the data cache to the point of
/// coherency, so the kernel sees it with its MMU off.
fn clean_to_poc(start: usize, len: usize) {
    let ctr: u64;
    // SAFETY: reading the cache type register.
    unsafe { core::arch::asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
    let line = 4usize << ((ctr >> 16) & 0xf);
    let mut a = start & !(line - 1);
    while a < start + len {
        // SAFETY: cache maintenance by address on mapped RAM; no data change.
        unsafe { core::arch::asm!("dc cvac, {}", in(reg) a, options(nostack)) };
        a += line;
    }
    // SAFETY: a barrier.
    unsafe { core::arch::asm!("dsb sy", options(nostack)) };
}

/// Load and start the kernel QEMU holds in fw_cfg. Returns (with the
/// reason) only if there is none or it cannot be started.
pub fn boot(
    fw: &FwCfg,
    dtb: usize,
    ram: (usize, usize),
    out: &mut Pl011,
) -> Result<(), &'static str> {
    let kernel_size = fw.read_u32(fwcfg::KERNEL_SIZE) as usize;
    if kernel_size == 0 {
        return Err("no -kernel");
    }
    if !fw.has_dma() {
        return Err("fw_cfg has no DMA interface");
    }
    let initrd_size = fw.read_u32(fwcfg::INITRD_SIZE) as usize;
    let cmdline_size = (fw.read_u32(fwcfg::CMDLINE_SIZE) as usize).min(4096);
    let (ram_base, ram_size) = ram;
    let ram_end = ram_base + ram_size;
    // The Image's header first, to learn where it wants to be.
    let mut head = [0u8; 64];
    // SAFETY: `head` is ours for the transfer.
    unsafe { fw.dma_read(fwcfg::KERNEL_DATA, head.as_mut_ptr() as usize, 64)? };
    let le64 = |o: usize| u64::from_le_bytes(head[o..o + 8].try_into().unwrap_or([0; 8]));
    if u32::from_le_bytes([head[56], head[57], head[58], head[59]]) != IMAGE_MAGIC {
        return Err("-kernel is not an arm64 Image (no ARM\\x64 magic)");
    }
    let text_offset = le64(8) as usize;
    let image_size = le64(16) as usize;
    if image_size == 0 || image_size < kernel_size || text_offset >= MIB2 {
        return Err("arm64 Image header: unusable text_offset or image_size");
    }
    let kernel = LOAD_BASE + text_offset;
    let kernel_end = kernel + image_size;
    let initrd = align_up(kernel_end, MIB2);
    let dtb_new = align_up(initrd + initrd_size, MIB2);
    if dtb_new + DTB_MAX > ram_end || LOAD_BASE < ram_base {
        return Err("kernel, initrd and device tree do not fit in RAM");
    }
    // SAFETY: RAM above Ember's own, below the end of RAM, reserved for
    // the kernel (its whole image_size), then the initrd.
    unsafe {
        fw.dma_read(fwcfg::KERNEL_DATA, kernel, kernel_size as u32)?;
        if initrd_size > 0 {
            fw.dma_read(fwcfg::INITRD_DATA, initrd, initrd_size as u32)?;
        }
    }
    let mut cmdline = [0u8; 4097];
    if cmdline_size > 0 {
        // SAFETY: `cmdline` is ours and larger than the clamped size.
        unsafe {
            fw.dma_read(
                fwcfg::CMDLINE_DATA,
                cmdline.as_mut_ptr() as usize,
                cmdline_size as u32,
            )?
        };
    }
    let cmd_len = cmdline[..cmdline_size]
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(cmdline_size);
    let bootargs = &cmdline[..cmd_len + 1]; // with its NUL
                                            // The VMM's device tree, edited into place.
                                            // SAFETY: QEMU's device tree at the start of RAM (validated by the
                                            // caller); its header's totalsize bounds the slice.
    let src = unsafe {
        let total = u32::from_be(core::ptr::read_volatile((dtb + 4) as *const u32)) as usize;
        core::slice::from_raw_parts(dtb as *const u8, total.min(DTB_MAX))
    };
    // SAFETY: the 2 MiB above the initrd, inside RAM (checked above).
    let dst = unsafe { core::slice::from_raw_parts_mut(dtb_new as *mut u8, DTB_MAX) };
    let start = (initrd as u64).to_be_bytes();
    let end = ((initrd + initrd_size) as u64).to_be_bytes();
    let with_initrd: [(&str, &[u8]); 3] = [
        ("bootargs", bootargs),
        ("linux,initrd-start", &start),
        ("linux,initrd-end", &end),
    ];
    let props = if initrd_size > 0 {
        &with_initrd[..]
    } else {
        &with_initrd[..1]
    };
    let dtb_len = ember_dtb::set_chosen(src, props, dst)
        .map_err(|_| "cannot edit the device tree's /chosen")?;
    let _ = writeln!(
        out,
        "Linux: Image {kernel_size} B at {kernel:#x} (text_offset {text_offset:#x}, {image_size} B in memory), initrd {initrd_size} B at {initrd:#x}, device tree {dtb_len} B at {dtb_new:#x}"
    );
    let _ = writeln!(
        out,
        "Linux: command line {:?}",
        core::str::from_utf8(&cmdline[..cmd_len]).unwrap_or("(not UTF-8)")
    );
    clean_to_poc(kernel, kernel_size);
    clean_to_poc(initrd, initrd_size);
    clean_to_poc(dtb_new, dtb_len);
    let _ = writeln!(out, "Linux: starting at {kernel:#x} with the MMU off");
    // SAFETY: the Image, initrd and device tree are in place and cleaned to
    // the point of coherency; nothing of Ember's runs after this.
    unsafe { ember_enter_linux(kernel, dtb_new) }
}
