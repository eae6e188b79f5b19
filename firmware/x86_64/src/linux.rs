//! Native Linux boot: load a bzImage and its initrds straight to their final
//! addresses, build a fresh zero page and jump to the 64-bit entry.

use crate::{memory, phys, time};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::convert::Infallible;
use ember_block::BlockDevice;
use ember_fat::{File, FileSystem};
use ember_linux::{BootInputs, BzImage};
use ember_mem::{E820Entry, MemKind, Strategy, PAGE_SIZE};

fn pages(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE_SIZE)
}

fn report(what: &str, addr: u64, len: u64, t0: u64) {
    let ns = (time::now_ns() - t0).max(1);
    log::info!(
        "loaded {what}: {} KiB at {addr:#x} in {} ms ({} MiB/s)",
        len / 1024,
        ns / 1_000_000,
        (u128::from(len) * 1_000_000_000 / u128::from(ns) / (1 << 20)) as u64
    );
}

/// Where a kernel and its initrds come from: files on a disk, or QEMU's
/// `-kernel/-initrd` through fw_cfg.
pub trait KernelSource {
    /// What to call the kernel in messages.
    fn kernel_name(&self) -> String;
    /// The kernel file's size.
    fn kernel_size(&self) -> u64;
    /// Read `dst.len()` bytes of the kernel file from `offset`.
    fn read_kernel(&mut self, offset: u64, dst: &mut [u8]) -> Result<(), String>;
    /// Total size of the initrds, each padded to 4 bytes.
    fn initrd_size(&self) -> u64;
    /// Read the initrds, concatenated and padded, into `dst` (of `initrd_size` bytes).
    fn read_initrds(&mut self, dst: &mut [u8]) -> Result<(), String>;
}

/// A kernel and initrds on a FAT filesystem.
struct FatSource<'a, D: BlockDevice> {
    fs: &'a mut FileSystem<D>,
    kernel: &'a str,
    kfile: File,
    initrds: Vec<(&'a String, File)>,
}

impl<D: BlockDevice> KernelSource for FatSource<'_, D> {
    fn kernel_name(&self) -> String {
        String::from(self.kernel)
    }
    fn kernel_size(&self) -> u64 {
        self.kfile.size()
    }
    fn read_kernel(&mut self, offset: u64, dst: &mut [u8]) -> Result<(), String> {
        let n = self
            .fs
            .read_at(&self.kfile, offset, dst)
            .map_err(|e| format!("{}: {e}", self.kernel))?;
        if n != dst.len() {
            return Err(format!(
                "{}: short read ({n} of {} bytes)",
                self.kernel,
                dst.len()
            ));
        }
        Ok(())
    }
    fn initrd_size(&self) -> u64 {
        self.initrds
            .iter()
            .map(|(_, f)| f.size().next_multiple_of(4))
            .sum()
    }
    fn read_initrds(&mut self, dst: &mut [u8]) -> Result<(), String> {
        let mut at = 0usize;
        for (p, f) in &self.initrds {
            let len = f.size() as usize;
            let t0 = time::now_ns();
            let d = dst
                .get_mut(at..at + len)
                .ok_or("initrds larger than their allocation")?;
            let n = self.fs.read_at(f, 0, d).map_err(|e| format!("{p}: {e}"))?;
            if n != len {
                return Err(format!("{p}: short read ({n} of {len} bytes)"));
            }
            report(p, d.as_ptr() as u64, len as u64, t0);
            at += len.next_multiple_of(4);
        }
        Ok(())
    }
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
    // Initrds must exist before anything is allocated.
    let mut files = vec![];
    for p in initrds {
        let f = fs.open(p).map_err(|e| format!("{p}: {e}"))?;
        files.push((p, f));
    }
    let mut src = FatSource {
        fs,
        kernel,
        kfile,
        initrds: files,
    };
    boot_from(&mut src, cmdline, rsdp)
}

/// Boot the kernel `src` provides; returns only on failure.
pub fn boot_from(
    src: &mut dyn KernelSource,
    cmdline: &str,
    rsdp: u64,
) -> Result<Infallible, String> {
    let kernel = src.kernel_name();
    let ksize = src.kernel_size();
    let mut head = vec![0u8; (BzImage::HEADER_BYTES as u64).min(ksize) as usize];
    src.read_kernel(0, &mut head)?;
    let bz = BzImage::parse(&head, ksize).map_err(|e| format!("{kernel}: {e}"))?;
    let total = src.initrd_size();

    let mut guard = memory::MAP.lock();
    let map = guard.map_mut();
    let kaddr = ember_linux::place_kernel(&bz, map).map_err(|e| format!("{kernel}: {e}"))?;
    let iaddr = if total > 0 {
        ember_linux::place_initrd(total, &bz, map)
            .map_err(|e| format!("initrd ({} MiB): {e}", total >> 20))?
    } else {
        0
    };
    let cmd_len = cmdline.len() as u64 + 1;
    if cmd_len > u64::from(bz.cmdline_size()) + 1 {
        return Err(format!(
            "command line of {} bytes exceeds the kernel's limit of {}",
            cmdline.len(),
            bz.cmdline_size()
        ));
    }
    let cmd_addr = map
        .allocate_in_range(
            pages(cmd_len),
            PAGE_SIZE,
            1 << 20,
            u64::from(u32::MAX),
            MemKind::Loader,
            Strategy::TopDown,
        )
        .map_err(|e| format!("command line: {e}"))?;
    let bp_addr = map
        .allocate_in_range(
            1,
            PAGE_SIZE,
            1 << 20,
            u64::from(u32::MAX),
            MemKind::BootParams,
            Strategy::TopDown,
        )
        .map_err(|e| format!("boot parameters: {e}"))?;
    drop(guard);

    let t0 = time::now_ns();
    // SAFETY: `[kaddr, +kernel_size)` was allocated in the memory map for
    // the kernel just above and nothing else refers to it.
    let kdst = unsafe { phys::bytes_mut(kaddr, bz.kernel_size() as usize) };
    src.read_kernel(bz.kernel_offset(), kdst)?;
    report(&kernel, kaddr, bz.kernel_size(), t0);
    if total > 0 {
        // SAFETY: allocated above for the initrds.
        let idst = unsafe { phys::bytes_mut(iaddr, total as usize) };
        src.read_initrds(idst)?;
    }
    // SAFETY: allocated above as Loader memory for the command line.
    let c = unsafe { phys::bytes_mut(cmd_addr, cmd_len as usize) };
    c[..cmdline.len()].copy_from_slice(cmdline.as_bytes());
    c[cmdline.len()] = 0;

    let mut e820 = [E820Entry::new(0, 0, 0); 128];
    let guard = memory::MAP.lock();
    let map = guard.map();
    if map.e820_len() > e820.len() {
        log::warn!(
            "memory map has {} entries; Linux gets the first {}",
            map.e820_len(),
            e820.len()
        );
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
    let bp = ember_linux::build_boot_params(&bz, &head, &inputs)
        .map_err(|e| format!("{kernel}: {e}"))?;
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

/// QEMU's `-kernel/-initrd` through fw_cfg. QEMU splits the bzImage into
/// its setup part (with a header it patched for its own loader; Ember
/// builds its own zero page) and the protected-mode kernel, which is DMAed
/// straight to where Ember placed it.
pub struct FwCfgKernel<'a> {
    fw: &'a mut crate::fwcfg::FwCfg,
    setup: Vec<u8>,
    kernel_size: u32,
    initrd_size: u32,
}

impl<'a> FwCfgKernel<'a> {
    pub fn new(
        fw: &'a mut crate::fwcfg::FwCfg,
        setup_size: u32,
        kernel_size: u32,
        initrd_size: u32,
    ) -> Self {
        let mut setup = vec![0u8; setup_size.min(64 * 1024) as usize];
        fw.read(ember_fwcfg::SETUP_DATA, &mut setup);
        FwCfgKernel {
            fw,
            setup,
            kernel_size,
            initrd_size,
        }
    }
}

impl KernelSource for FwCfgKernel<'_> {
    fn kernel_name(&self) -> String {
        String::from("-kernel")
    }
    fn kernel_size(&self) -> u64 {
        self.setup.len() as u64 + u64::from(self.kernel_size)
    }
    fn read_kernel(&mut self, offset: u64, dst: &mut [u8]) -> Result<(), String> {
        let setup = self.setup.len() as u64;
        if offset + dst.len() as u64 <= setup {
            dst.copy_from_slice(&self.setup[offset as usize..offset as usize + dst.len()]);
            return Ok(());
        }
        if offset != setup || dst.len() as u64 != u64::from(self.kernel_size) {
            return Err(format!(
                "-kernel: QEMU split the image at {setup:#x}, not at {offset:#x}"
            ));
        }
        // SAFETY: `dst` is the kernel's allocation (boot_from's contract).
        unsafe {
            self.fw.read_to_phys(
                ember_fwcfg::KERNEL_DATA,
                dst.as_mut_ptr() as u64,
                self.kernel_size,
            )
        }
        .map_err(|e| format!("-kernel: {e}"))
    }
    fn initrd_size(&self) -> u64 {
        u64::from(self.initrd_size).next_multiple_of(4)
    }
    fn read_initrds(&mut self, dst: &mut [u8]) -> Result<(), String> {
        let t0 = time::now_ns();
        let len = self.initrd_size as usize;
        let d = dst
            .get_mut(..len)
            .ok_or("-initrd larger than its allocation")?;
        // SAFETY: `d` is the initrd's allocation.
        unsafe {
            self.fw.read_to_phys(
                ember_fwcfg::INITRD_DATA,
                d.as_mut_ptr() as u64,
                self.initrd_size,
            )
        }
        .map_err(|e| format!("-initrd: {e}"))?;
        report("-initrd", d.as_ptr() as u64, len as u64, t0);
        Ok(())
    }
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
