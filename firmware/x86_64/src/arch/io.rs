//! x86 port I/O. Port access can reprogram any device, so every accessor is
//! `unsafe`; callers say which device they own.

use core::arch::asm;

/// # Safety
/// The caller must own the device behind `port` and know the write is valid for it.
pub unsafe fn outb(port: u16, v: u8) {
    // SAFETY: forwarded to the caller's contract.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags))
    }
}

/// # Safety
/// As [`outb`]; reads may have side effects on the device.
pub unsafe fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: forwarded to the caller's contract.
    unsafe {
        asm!("in al, dx", out("al") v, in("dx") port, options(nomem, nostack, preserves_flags))
    }
    v
}

/// # Safety
/// As [`outb`].
pub unsafe fn outw(port: u16, v: u16) {
    // SAFETY: forwarded to the caller's contract.
    unsafe {
        asm!("out dx, ax", in("dx") port, in("ax") v, options(nomem, nostack, preserves_flags))
    }
}

/// # Safety
/// As [`outb`].
pub unsafe fn outl(port: u16, v: u32) {
    // SAFETY: forwarded to the caller's contract.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") v, options(nomem, nostack, preserves_flags))
    }
}

/// # Safety
/// As [`inb`].
pub unsafe fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: forwarded to the caller's contract.
    unsafe {
        asm!("in eax, dx", out("eax") v, in("dx") port, options(nomem, nostack, preserves_flags))
    }
    v
}

/// Stop this CPU for good.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: disabling interrupts and halting touches no memory.
        unsafe { asm!("cli; hlt", options(nomem, nostack)) }
    }
}

/// Read the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads a counter; it is available on every x86_64 CPU.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// CPUID leaf/subleaf.
pub fn cpuid(leaf: u32, sub: u32) -> core::arch::x86_64::CpuidResult {
    core::arch::x86_64::__cpuid_count(leaf, sub)
}

/// What the CPU says about itself (for SMBIOS).
pub struct CpuIdentity {
    pub vendor: alloc::string::String,
    pub brand: alloc::string::String,
    /// SMBIOS processor ID: CPUID.1 EAX (signature) and EDX (features).
    pub signature: u64,
}

pub fn cpu_identity() -> CpuIdentity {
    let words = |regs: &[u32]| -> alloc::string::String {
        let bytes: alloc::vec::Vec<u8> = regs
            .iter()
            .flat_map(|r| r.to_le_bytes())
            .filter(|&b| b != 0)
            .collect();
        alloc::string::String::from_utf8_lossy(&bytes).trim().into()
    };
    let l0 = cpuid(0, 0);
    let vendor = words(&[l0.ebx, l0.edx, l0.ecx]);
    let l1 = cpuid(1, 0);
    let brand = if cpuid(0x8000_0000, 0).eax >= 0x8000_0004 {
        let r: alloc::vec::Vec<u32> = (0x8000_0002..=0x8000_0004)
            .flat_map(|l| {
                let c = cpuid(l, 0);
                [c.eax, c.ebx, c.ecx, c.edx]
            })
            .collect();
        words(&r)
    } else {
        alloc::string::String::new()
    };
    CpuIdentity {
        vendor,
        brand,
        signature: u64::from(l1.eax) | u64::from(l1.edx) << 32,
    }
}
