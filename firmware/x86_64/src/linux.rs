//! Native Linux boot: load a bzImage and its initrds straight to their final
//! addresses, build a fresh zero page and jump to the 64-bit entry.

use crate::{memory, phys, time};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use core::convert::Infallible;
use ember_block::BlockDevice;
use ember_fat::{File, FileSystem};
use ember_linux::{BootInputs, BzImage};
use ember_mem::{E820Entry, MemKind, Strategy, PAGE_SIZE};

fn pages(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE_SIZE)
}

/// Read all of `file` from `offset` into physical memory at `addr`.
fn load<D: BlockDevice>(fs: &mut FileSystem<D>, file: &File, path: &str, offset: u64, addr: u64, len: u64) -> Result<(), String> {
    let t0 = time::now_ns();
    // SAFETY: `[addr, addr+len)` was allocated in the memory map for this
    // file just before this call and nothing else refers to it.
    let dst = unsafe { phys::bytes_mut(addr, len as usize) };
    let n = fs.read_at(file, offset, dst).map_err(|e| format!("{path}: {e}"))?;
    if n as u64 != len {
        return Err(format!("{path}: short read ({n} of {len} bytes)"));
    }
    let ns = (time::now_ns() - t0).max(1);
    log::info!(
        "loaded {path}: {} KiB at {addr:#x} in {} ms ({} MiB/s)",
        len / 1024,
        ns / 1_000_000,
        (u128::from(len) * 1_000_000_000 / u128::from(ns) / (1 << 20)) as u64
    );
    Ok(())
}

/// Boot `kernel` with `initrds` and `cmdline` from `fs`; returns only on failure.
pub fn boot<D: BlockDevice>(
    fs: &mut FileSystem<D>,
    kernel: &str,
    initrds: &[String],
    cmdline: &str,
    rsdp: u64,
) -> Result<Infallible, String> {
    let kfile = fs.open(kernel).map_err(|e| format!("{kernel}: {e}"))?;
    let ksize = kfile.size();
    let mut head = vec![0u8; (BzImage::HEADER_BYTES as u64).min(ksize) as usize];
    fs.read_at(&kfile, 0, &mut head).map_err(|e| format!("{kernel}: {e}"))?;
    let bz = BzImage::parse(&head, ksize).map_err(|e| format!("{kernel}: {e}"))?;

    // Initrd sizes first: nothing is allocated until everything is known to exist.
    let mut files = vec![];
    let mut total = 0u64;
    for p in initrds {
        let f = fs.open(p).map_err(|e| format!("{p}: {e}"))?;
        total = total.checked_add(f.size().next_multiple_of(4)).ok_or("initrds too large")?;
        files.push((p, f));
    }

    let mut guard = memory::MAP.lock();
    let map = guard.map_mut();
    let kaddr = ember_linux::place_kernel(&bz, map).map_err(|e| format!("{kernel}: {e}"))?;
    let iaddr = if total > 0 {
        ember_linux::place_initrd(total, &bz, map).map_err(|e| format!("initrd ({} MiB): {e}", total >> 20))?
    } else {
        0
    };
    let cmd_len = cmdline.len() as u64 + 1;
    if cmd_len > u64::from(bz.cmdline_size()) + 1 {
        return Err(format!("command line of {} bytes exceeds the kernel's limit of {}", cmdline.len(), bz.cmdline_size()));
    }
    let cmd_addr = map
        .allocate_in_range(pages(cmd_len), PAGE_SIZE, 1 << 20, u64::from(u32::MAX), MemKind::Loader, Strategy::TopDown)
        .map_err(|e| format!("command line: {e}"))?;
    let bp_addr = map
        .allocate_in_range(1, PAGE_SIZE, 1 << 20, u64::from(u32::MAX), MemKind::BootParams, Strategy::TopDown)
        .map_err(|e| format!("boot parameters: {e}"))?;
    drop(guard);

    load(fs, &kfile, kernel, bz.kernel_offset(), kaddr, bz.kernel_size())?;
    let mut at = iaddr;
    for (p, f) in &files {
        load(fs, f, p, 0, at, f.size())?;
        at += f.size().next_multiple_of(4);
    }
    // SAFETY: allocated above as Loader memory for the command line.
    let c = unsafe { phys::bytes_mut(cmd_addr, cmd_len as usize) };
    c[..cmdline.len()].copy_from_slice(cmdline.as_bytes());
    c[cmdline.len()] = 0;

    let mut e820 = [E820Entry::new(0, 0, 0); 128];
    let guard = memory::MAP.lock();
    let map = guard.map();
    if map.e820_len() > e820.len() {
        log::warn!("memory map has {} entries; Linux gets the first {}", map.e820_len(), e820.len());
    }
    let n = map.to_e820(&mut e820);
    drop(guard);
    let inputs = BootInputs {
        cmdline_addr: cmd_addr,
        cmdline_len: cmdline.len() as u32,
        initrd_addr: iaddr,
        initrd_size: total,
        rsdp_addr: rsdp,
        e820: &e820[..n],
    };
    let bp = ember_linux::build_boot_params(&bz, &head, &inputs).map_err(|e| format!("{kernel}: {e}"))?;
    // SAFETY: the zero page allocated above.
    unsafe { phys::bytes_mut(bp_addr, PAGE_SIZE as usize) }.copy_from_slice(bp.as_bytes());

    let entry = ember_linux::entry64(kaddr);
    log::info!(
        "starting Linux: kernel at {kaddr:#x}, initrd {} KiB at {iaddr:#x}, cmdline \"{cmdline}\" (Ember took {} ms)",
        total / 1024,
        time::since_start_us() / 1000
    );
    // Linux reads the BIOS data area in page 0 early on.
    crate::arch::protect::map_page0();
    // SAFETY: the kernel, initrd, command line and zero page are in place and
    // recorded in the E820 map given to Linux; the 64-bit boot protocol wants
    // %rsi = zero page, interrupts off, identity mapping (ours covers all RAM)
    // and the __BOOT_CS/__BOOT_DS selectors, which entry.s set up.
    unsafe { jump(entry, bp_addr) }
}

/// # Safety
/// `entry` must be a loaded kernel's 64-bit entry and `boot_params` its zero page.
unsafe fn jump(entry: u64, boot_params: u64) -> ! {
    // SAFETY: per the caller; control never returns.
    unsafe {
        core::arch::asm!(
            "cli",
            "xor ebp, ebp",
            "jmp rax",
            // A fixed register: a compiler-chosen one could be rbp, cleared above.
            in("rax") entry,
            in("rsi") boot_params,
            options(noreturn)
        )
    }
}
