// Ember's aarch64 entry on QEMU `virt` (-bios: the CPU starts here, at
// physical 0, in flash). The MMU and caches go on before any data access:
// with the MMU off, data accesses bypass the caches, and under KVM that
// forces the host to clean and invalidate guest memory to the point of
// coherency. The translation tables are baked into the image (flash is
// read-only, and the table walker only reads them), so nothing needs to be
// written first. WXN is on from the same instruction: every writable
// mapping is execute-never.
//
// Until `msr sctlr_el1` below only register, system-register, barrier,
// TLB and branch instructions may appear: `cargo xtask test` decodes this
// stretch of the flash image and fails on anything else (docs/aarch64.md).

// Block descriptors (4 KiB granule). AttrIndx 0 = Device-nGnRE, 1 = Normal
// write-back. AF set; SH inner shareable for normal memory.
.set RAM_1G,      0x0060000000000705   // normal, read-write, PXN|UXN
.set DEVICE_1G,   0x0060000000000401   // device, read-write, PXN|UXN
.set FLASH_2M,    0x0040000000000785   // normal, read-only, EL1-executable
.set DEVICE_2M,   0x0060000000000401

.section .text.entry, "ax"
.global _start
_start:
    // From EL2 (a VMM with virtualization on), continue at EL1.
    mrs     x0, CurrentEL
    cmp     x0, #8
    b.ne    1f
    movz    x0, #0x8000, lsl #16        // HCR_EL2.RW: EL1 is AArch64
    msr     hcr_el2, x0
    movz    x0, #0x3c5                  // EL1h, DAIF masked
    msr     spsr_el2, x0
    adr     x0, 1f
    msr     elr_el2, x0
    eret
1:
    movz    x1, #0x30, lsl #16          // CPACR_EL1.FPEN: FP/SIMD without traps (Rust uses NEON)
    msr     cpacr_el1, x1
    movz    x1, #0xff04                 // MAIR: attr0 Device-nGnRE, attr1 Normal WB
    msr     mair_el1, x1
    // TCR: T0SZ 24 (1 TiB, walks from level 0), walks inner/outer WB
    // cacheable and inner shareable, 4 KiB granule, TTBR1 walks off,
    // 40-bit physical addresses.
    movz    x1, #0x3518
    movk    x1, #0x8080, lsl #16
    movk    x1, #0x2, lsl #32
    msr     tcr_el1, x1
    adrp    x1, l0_table
    msr     ttbr0_el1, x1
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    // SCTLR: RES1 bits, M (MMU), C (data cache), SA (stack alignment),
    // I (instruction cache), WXN.
    movz    x1, #0x180d
    movk    x1, #0x30d8, lsl #16
    msr     sctlr_el1, x1
    isb
    // From here on memory may be written. Exceptions go to Ember's report.
    adrp    x1, ember_vectors
    add     x1, x1, :lo12:ember_vectors
    msr     vbar_el1, x1
    isb
    adrp    x1, __data_lma
    add     x1, x1, :lo12:__data_lma
    adrp    x2, __data_start
    add     x2, x2, :lo12:__data_start
    adrp    x3, __data_end
    add     x3, x3, :lo12:__data_end
2:  cmp     x2, x3
    b.hs    3f
    ldp     x4, x5, [x1], #16
    stp     x4, x5, [x2], #16
    b       2b
3:  adrp    x2, __bss_start
    add     x2, x2, :lo12:__bss_start
    adrp    x3, __bss_end
    add     x3, x3, :lo12:__bss_end
4:  cmp     x2, x3
    b.hs    5f
    stp     xzr, xzr, [x2], #16
    b       4b
5:  adrp    x1, __stack_top
    add     x1, x1, :lo12:__stack_top
    mov     sp, x1
    movz    x0, #0x4000, lsl #16        // the device tree: QEMU's, at the start of RAM
    bl      rust_main
6:  wfe
    b       6b

// The translation tables: level 0 splits 1 TiB in two halves, each a
// level 1 table of 1 GiB blocks; the first GiB goes through a level 2
// table of 2 MiB blocks.
.section .rodata.pagetables, "a"
.balign 4096
l0_table:
    .quad   l1_table + 3                // [0, 512 GiB)
    .quad   l1_high + 3                 // [512 GiB, 1 TiB): virt's 64-bit PCIe window
    .fill   510, 8, 0
.balign 4096
l1_high:
    .set    addr, 0x8000000000
    .rept   512
    .quad   addr + DEVICE_1G
    .set    addr, addr + 0x40000000
    .endr
.balign 4096
l1_table:
    .quad   l2_low + 3                  // [0, 1 GiB): table
    .set    addr, 0x40000000
    .rept   255                         // [1 GiB, 256 GiB): RAM (virt's limit)
    .quad   addr + RAM_1G
    .set    addr, addr + 0x40000000
    .endr
    .rept   256                         // [256 GiB, 512 GiB): high ECAM and MMIO
    .quad   addr + DEVICE_1G
    .set    addr, addr + 0x40000000
    .endr
.balign 4096
l2_low:
    .set    addr, 0
    .rept   32                          // [0, 64 MiB): flash 0, this image
    .quad   addr + FLASH_2M
    .set    addr, addr + 0x200000
    .endr
    .rept   480                         // [64 MiB, 1 GiB): flash 1, devices
    .quad   addr + DEVICE_2M
    .set    addr, addr + 0x200000
    .endr

// ember_enter_linux(entry, dtb): leave for the kernel as the arm64 boot
// protocol asks — MMU and data cache off (linux.rs cleaned what the kernel
// reads), instruction cache invalidated, x0 = device tree, x1-x3 = 0. Runs
// from flash, which stays where it is with the MMU off.
.section .text.ember_enter_linux, "ax"
.global ember_enter_linux
ember_enter_linux:
    mov     x19, x0
    mov     x20, x1
    mrs     x2, sctlr_el1
    bic     x2, x2, #1                  // M
    bic     x2, x2, #4                  // C
    bic     x2, x2, #(1 << 19)          // WXN
    msr     sctlr_el1, x2
    isb
    ic      iallu
    dsb     nsh
    isb
    mov     x0, x20
    mov     x1, xzr
    mov     x2, xzr
    mov     x3, xzr
    br      x19

// The exception vector table: every entry reports the exception through
// ember_exception (main.rs), which does not return.
.macro ember_vector n
    .balign 128
    mov     x0, #\n
    b       ember_exception_common
.endm

.section .text.vectors, "ax"
.balign 2048
ember_vectors:
    ember_vector 0
    ember_vector 1
    ember_vector 2
    ember_vector 3
    ember_vector 4
    ember_vector 5
    ember_vector 6
    ember_vector 7
    ember_vector 8
    ember_vector 9
    ember_vector 10
    ember_vector 11
    ember_vector 12
    ember_vector 13
    ember_vector 14
    ember_vector 15
ember_exception_common:
    mrs     x1, esr_el1
    mrs     x2, elr_el1
    mrs     x3, far_el1
    bl      ember_exception
1:  wfe
    b       1b
