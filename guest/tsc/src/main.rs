//! `tsc`: print the time-stamp counter in decimal and exit.
//!
//! The test guest's `/init` runs this at its marker. Under QEMU with
//! `-icount shift=0,sleep=off` the TSC counts virtual nanoseconds since reset,
//! so the value is a deterministic boot time. Busybox cannot read the TSC,
//! hence this helper: no libc, raw syscalls, linked static with no start files.
#![no_std]
#![no_main]

use core::arch::asm;

const SYS_WRITE: usize = 1;
const SYS_EXIT: usize = 60;

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

fn exit(code: usize) -> ! {
    // SAFETY: exit(2) does not return and touches no memory of ours.
    unsafe {
        asm!("syscall", in("rax") SYS_EXIT, in("rdi") code, options(noreturn, nostack));
    }
}

fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: rdtsc has no memory effects; user mode may execute it unless the
    // kernel sets CR4.TSD, which Linux does not by default.
    unsafe {
        asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack));
    }
    (u64::from(hi) << 32) | u64::from(lo)
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
#[unsafe(naked)]
#[no_mangle]
extern "C" fn _start() -> ! {
    core::arch::naked_asm!("xor ebp, ebp", "call {main}", "ud2", main = sym main)
}

extern "C" fn main() -> ! {
    let t = rdtsc();
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
