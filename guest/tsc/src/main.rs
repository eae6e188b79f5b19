//! `tsc`: print the time since reset in decimal and exit (x86_64: the
//! time-stamp counter; arm64: the virtual counter in nanoseconds).
//!
//! The test guest's `/init` runs this at its marker. Under QEMU with
//! `-icount shift=0,sleep=off` the TSC counts virtual nanoseconds since reset,
//! so the value is a deterministic boot time. Busybox cannot read the TSC,
//! hence this helper: no libc, raw syscalls, linked static with no start files.
#![no_std]
#![no_main]

use core::arch::asm;

#[cfg(target_arch = "x86_64")]
const SYS_WRITE: usize = 1;
#[cfg(target_arch = "x86_64")]
const SYS_EXIT: usize = 60;

#[cfg(target_arch = "x86_64")]
fn write(fd: usize, buf: &[u8]) -> isize {
    let ret: isize;
    // SAFETY: write(2) only reads `buf.len()` bytes from a live slice; the
    // registers the kernel clobbers (rcx, r11) are declared.
    unsafe {
        asm!("syscall",
            inlateout("rax") SYS_WRITE => ret,
            in("rdi") fd, in("rsi") buf.as_ptr(), in("rdx") buf.len(),
            lateout("rcx") _, lateout("r11") _,
            options(nostack, readonly));
    }
    ret
}

#[cfg(target_arch = "x86_64")]
fn exit(code: usize) -> ! {
    // SAFETY: exit(2) does not return and touches no memory of ours.
    unsafe {
        asm!("syscall", in("rax") SYS_EXIT, in("rdi") code, options(noreturn, nostack));
    }
}

/// Virtual nanoseconds since reset: the TSC under `-icount shift=0`.
#[cfg(target_arch = "x86_64")]
fn now() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: rdtsc has no memory effects; user mode may execute it unless the
    // kernel sets CR4.TSD, which Linux does not by default.
    unsafe {
        asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

#[cfg(target_arch = "aarch64")]
fn write(fd: usize, buf: &[u8]) -> isize {
    let ret: isize;
    // SAFETY: write(2) (number 64 on arm64) only reads `buf.len()` bytes
    // from a live slice.
    unsafe {
        asm!("svc #0",
            in("x8") 64usize,
            inlateout("x0") fd => ret, in("x1") buf.as_ptr(), in("x2") buf.len(),
            options(nostack, readonly));
    }
    ret
}

#[cfg(target_arch = "aarch64")]
fn exit(code: usize) -> ! {
    // SAFETY: exit(2) (number 93 on arm64) does not return.
    unsafe {
        asm!("svc #0", in("x8") 93usize, in("x0") code, options(noreturn, nostack));
    }
}

/// Nanoseconds of the virtual counter, which QEMU starts at reset (Linux
/// lets user mode read it, for the vDSO).
#[cfg(target_arch = "aarch64")]
fn now() -> u64 {
    let (cnt, freq): (u64, u64);
    // SAFETY: reading the generic timer's virtual count and frequency.
    unsafe {
        asm!("mrs {}, cntvct_el0", out(reg) cnt, options(nomem, nostack));
        asm!("mrs {}, cntfrq_el0", out(reg) freq, options(nomem, nostack));
    }
    if freq == 0 {
        return 0;
    }
    (u128::from(cnt) * 1_000_000_000 / u128::from(freq)) as u64
}

/// Format `v` in decimal followed by a newline into `buf`; returns the used tail.
fn format(mut v: u64, buf: &mut [u8; 24]) -> &[u8] {
    let mut i = buf.len() - 1;
    buf[i] = b'\n';
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Process entry. The kernel enters with `rsp` 16-byte aligned, but Rust
/// functions expect the post-`call` alignment (rsp = 8 mod 16), so a plain
/// `extern "C" fn _start` would fault on its first aligned SSE store.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
#[no_mangle]
extern "C" fn _start() -> ! {
    core::arch::naked_asm!("xor ebp, ebp", "call {main}", "ud2", main = sym main)
}

/// Process entry on arm64: `sp` is 16-byte aligned, as AAPCS64 wants.
#[cfg(target_arch = "aarch64")]
#[no_mangle]
extern "C" fn _start() -> ! {
    main()
}

extern "C" fn main() -> ! {
    let t = now();
    let mut buf = [0u8; 24];
    let code = if write(1, format(t, &mut buf)) < 0 {
        1
    } else {
        0
    };
    exit(code)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(101)
}
