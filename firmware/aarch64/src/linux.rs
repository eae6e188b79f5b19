//! QEMU's `-kernel/-initrd/-append` through fw_cfg, started with the arm64
//! Linux boot protocol (Documentation/arch/arm64/booting.rst): the Image at
//! a 2 MiB-aligned base plus its `text_offset`, the initrd and a device
//! tree whose `/chosen` carries the command line and the initrd, caches
//! cleaned to the point of coherency, then the MMU off and a jump to the
//! Image with x0 = the device tree.

use crate::fwcfg::{self, FwCfg};
use crate::pl011::Pl011;
use crate::rt::LOAD_BASE;
use core::fmt::Write;
use ember_linux::arm64::{self, Arm64Error, ImageHeader, DTB_MAX};

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

/// Check an Image's header (`ember_linux::arm64`).
pub fn parse_header(head: &[u8], file_len: usize) -> Result<ImageHeader, &'static str> {
    ImageHeader::parse(head, file_len as u64).map_err(|e| match e {
        Arm64Error::Truncated | Arm64Error::BadMagic => "not an arm64 Image (no ARM\\x64 magic)",
        Arm64Error::BigEndian => "a big-endian arm64 Image",
        _ => "arm64 Image header: unusable text_offset or image_size",
    })
}

/// Where kernel, initrd and device tree go: (kernel, initrd, device tree).
pub fn place(
    hdr: &ImageHeader,
    initrd_size: usize,
    ram: (usize, usize),
) -> Result<(usize, usize, usize), &'static str> {
    let ram = (ram.0 as u64, (ram.0 as u64).saturating_add(ram.1 as u64));
    let p = arm64::place(hdr, initrd_size as u64, LOAD_BASE as u64, ram)
        .map_err(|_| "kernel, initrd and device tree do not fit in RAM")?;
    Ok((p.kernel as usize, p.initrd as usize, p.dtb as usize))
}

/// QEMU's device tree at `dtb`, as bytes.
///
/// # Safety
/// `dtb` must be the device tree QEMU placed at the start of RAM (its
/// header validated by the caller); its totalsize, capped, bounds the slice.
pub unsafe fn qemu_dtb<'a>(dtb: usize) -> &'a [u8] {
    // SAFETY: the caller's promise.
    unsafe {
        let total = u32::from_be(core::ptr::read_volatile((dtb + 4) as *const u32)) as usize;
        core::slice::from_raw_parts(dtb as *const u8, total.min(DTB_MAX as usize))
    }
}

/// Give the kernel (already at `kernel`, `kernel_len` bytes, and its initrd
/// at `initrd`) a copy of the device tree `src` with `bootargs`
/// (NUL-terminated) and the initrd in `/chosen`, then start it. Returns
/// only on failure.
pub fn start(
    kernel: usize,
    kernel_len: usize,
    initrd: (usize, usize),
    bootargs: &[u8],
    src: &[u8],
    dtb_new: usize,
    out: &mut Pl011,
) -> Result<(), &'static str> {
    let (initrd, initrd_size) = initrd;
    // SAFETY: the 2 MiB `place` reserved above the initrd, inside RAM.
    let dst = unsafe { core::slice::from_raw_parts_mut(dtb_new as *mut u8, DTB_MAX as usize) };
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
    let dtb_len = ember_dtb::set_chosen(src, props, dst).map_err(|_| {
        "cannot edit the device tree's /chosen (not a valid device tree, or too large)"
    })?;
    let cmd = bootargs.strip_suffix(&[0]).unwrap_or(bootargs);
    let _ = writeln!(
        out,
        "Linux: Image {kernel_len} B at {kernel:#x}, initrd {initrd_size} B at {initrd:#x}, device tree {dtb_len} B at {dtb_new:#x}"
    );
    let _ = writeln!(
        out,
        "Linux: command line {:?}",
        core::str::from_utf8(cmd).unwrap_or("(not UTF-8)")
    );
    clean_to_poc(kernel, kernel_len);
    clean_to_poc(initrd, initrd_size);
    clean_to_poc(dtb_new, dtb_len);
    let _ = writeln!(out, "Linux: starting at {kernel:#x} with the MMU off");
    // SAFETY: the Image, initrd and device tree are in place and cleaned to
    // the point of coherency; nothing of Ember's runs after this.
    unsafe { ember_enter_linux(kernel, dtb_new) }
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
    // The Image's header first, to learn where it wants to be.
    let mut head = [0u8; 64];
    // SAFETY: `head` is ours for the transfer.
    unsafe { fw.dma_read(fwcfg::KERNEL_DATA, head.as_mut_ptr() as usize, 64)? };
    let hdr = parse_header(&head, kernel_size)?;
    let (kernel, initrd, dtb_new) = place(&hdr, initrd_size, ram)?;
    // SAFETY: RAM `place` reserved: the kernel's whole image_size, then the
    // initrd, both below the end of RAM.
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
    start(
        kernel,
        kernel_size,
        (initrd, initrd_size),
        &cmdline[..cmd_len + 1],
        // SAFETY: the caller passes QEMU's validated device tree.
        unsafe { qemu_dtb(dtb) },
        dtb_new,
        out,
    )
}
