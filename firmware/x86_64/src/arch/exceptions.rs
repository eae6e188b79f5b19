//! The IDT: every CPU exception is reported on the console (vector, error
//! code, RIP, CR2, registers) and Ember stops. Never a silent triple fault.

use super::culprit;
use core::arch::{asm, global_asm};
use core::mem::size_of;
use spin::Once;

global_asm!(include_str!("isr.s"), options(att_syntax));

extern "C" {
    static isr_table: [u64; 32];
}

#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Gate {
    offset_lo: u16,
    selector: u16,
    ist: u8,
    flags: u8,
    offset_mid: u16,
    offset_hi: u32,
    _reserved: u32,
}
const _: () = assert!(size_of::<Gate>() == 16);

#[repr(C, packed)]
struct IdtPtr {
    limit: u16,
    base: u64,
}

static IDT: Once<[Gate; 32]> = Once::new();

/// Register frame built by `isr_common` (lowest address first).
#[repr(C)]
pub struct Frame {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rbp: u64,
    rdi: u64,
    rsi: u64,
    rdx: u64,
    rcx: u64,
    rbx: u64,
    rax: u64,
    vector: u64,
    error: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

const NAMES: [&str; 32] = [
    "divide error",
    "debug",
    "NMI",
    "breakpoint",
    "overflow",
    "bound range",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor overrun",
    "invalid TSS",
    "segment not present",
    "stack fault",
    "general protection",
    "page fault",
    "reserved",
    "x87 FP",
    "alignment check",
    "machine check",
    "SIMD FP",
    "virtualization",
    "control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "hypervisor injection",
    "VMM communication",
    "security",
    "reserved",
];

/// Load the IDT.
pub fn init() {
    super::protect::load_tss();
    let idt = IDT.call_once(|| {
        let mut t = [Gate::default(); 32];
        for (i, g) in t.iter_mut().enumerate() {
            // SAFETY: `isr_table` is an immutable table emitted by isr.s.
            let h = unsafe { isr_table[i] };
            // Faults that a bad stack causes get a stack of their own.
            let ist = if matches!(i, 8 | 12 | 14) {
                super::protect::FAULT_IST
            } else {
                0
            };
            *g = Gate {
                offset_lo: h as u16,
                selector: 0x10,
                ist,
                flags: 0x8e, // present, interrupt gate
                offset_mid: (h >> 16) as u16,
                offset_hi: (h >> 32) as u32,
                _reserved: 0,
            };
        }
        t
    });
    let ptr = IdtPtr {
        limit: (size_of::<[Gate; 32]>() - 1) as u16,
        base: idt.as_ptr() as u64,
    };
    // SAFETY: the IDT lives in a static that is never freed or changed again,
    // and every gate points at a stub in isr.s.
    unsafe { asm!("lidt [{}]", in(reg) &ptr, options(readonly, nostack, preserves_flags)) }
}

#[no_mangle]
extern "C" fn exception_handler(f: &Frame) -> ! {
    let cr2: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack, preserves_flags)) }
    let name = NAMES.get(f.vector as usize).copied().unwrap_or("?");
    crate::print!(
        "\n!!! Ember: CPU exception {} ({}) error={:#x}\n    RIP={:#018x} CS={:#x} RFLAGS={:#x} RSP={:#018x} CR2={:#018x}\n",
        f.vector, name, f.error, f.rip, f.cs, f.rflags, f.rsp, cr2
    );
    if f.vector == 14 {
        let what = if f.error & 0x10 != 0 {
            "executing"
        } else if f.error & 0x2 != 0 {
            "writing"
        } else {
            "reading"
        };
        let why = if f.error & 1 == 0 {
            "not mapped"
        } else {
            "protection violation"
        };
        crate::print!("    page fault {what} {cr2:#x} ({why}): ");
        culprit::describe(cr2);
        crate::print!("\n");
    }
    crate::print!("    faulting code: ");
    culprit::describe(f.rip);
    crate::print!("\n");
    if f.vector == 14 && f.error & 0x10 != 0 {
        // Executing data: the culprit is whoever called or jumped there.
        // SAFETY: RSP was a stack the faulting code was using; read one
        // word, which is the return address if it got there with a call.
        let ret = unsafe { core::ptr::read_volatile(f.rsp as *const u64) };
        crate::print!("    called from {ret:#x}: ");
        culprit::describe(ret);
        crate::print!("\n");
    }
    crate::print!(
        "    RAX={:#x} RBX={:#x} RCX={:#x} RDX={:#x} RSI={:#x} RDI={:#x} RBP={:#x}\n    R8={:#x} R9={:#x} R10={:#x} R11={:#x} R12={:#x} R13={:#x} R14={:#x} R15={:#x}\n",
        f.rax, f.rbx, f.rcx, f.rdx, f.rsi, f.rdi, f.rbp, f.r8, f.r9, f.r10, f.r11, f.r12, f.r13, f.r14, f.r15
    );
    crate::print!("!!! Ember stopped.\n");
    crate::arch::io::halt_forever()
}
