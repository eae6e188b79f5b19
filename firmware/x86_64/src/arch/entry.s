# PVH entry: the VMM starts us in 32-bit protected mode, paging off,
# %ebx = physical address of hvm_start_info. We build identity page tables
# for the low 4 GiB (1 GiB pages where the CPU has them, else 2 MiB), enter
# long mode, enable SSE (EFI payloads and Linux's EFI stub expect it) and
# call into Rust.

    .section .text.entry32, "ax"
    .code32
    .global pvh_entry32
pvh_entry32:
    cli
    cld
    movl %ebx, %esi                 # keep start_info across the setup

    # Zero .bss (the loader may not have).
    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    xorl %eax, %eax
    rep stosb

    # PML4[0] -> PDPT; PDPT[0..4] -> four page directories.
    movl $boot_pdpt, %eax
    orl $0x3, %eax
    movl %eax, boot_pml4
    movl $boot_pd, %eax
    orl $0x3, %eax
    xorl %ecx, %ecx
1:  movl %eax, boot_pdpt(,%ecx,8)
    addl $0x1000, %eax
    incl %ecx
    cmpl $4, %ecx
    jne 1b

    # With 1 GiB pages (CPUID 0x80000001 EDX[26]) four PDPT entries map it
    # all; otherwise 2048 x 2 MiB entries in the page directories.
    movl $0x80000000, %eax
    cpuid
    cmpl $0x80000001, %eax
    jb 4f
    movl $0x80000001, %eax
    cpuid
    testl $(1 << 26), %edx
    jz 4f
    xorl %ecx, %ecx
5:  movl %ecx, %eax
    shll $30, %eax
    orl $0x83, %eax                 # present, writable, 1 GiB page
    movl %eax, boot_pdpt(,%ecx,8)
    incl %ecx
    cmpl $4, %ecx
    jne 5b
    jmp 6f

4:  xorl %ecx, %ecx
2:  movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax
    movl %eax, boot_pd(,%ecx,8)
    incl %ecx
    cmpl $2048, %ecx
    jne 2b

6:  movl $boot_pml4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $(1 << 5), %eax             # PAE
    movl %eax, %cr4
    movl $0xC0000080, %ecx          # EFER
    rdmsr
    orl $(1 << 8), %eax             # LME
    wrmsr
    movl %cr0, %eax
    orl $((1 << 31) | (1 << 16) | 1), %eax   # PG, WP, PE
    movl %eax, %cr0

    lgdt gdt64_ptr
    ljmpl $0x10, $long_entry64

    .code64
long_entry64:
    movw $0x18, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movabsq $boot_stack_top, %rsp

    # SSE on: CR0.EM=0, CR0.MP=1, CR4.OSFXSR|OSXMMEXCPT.
    movq %cr0, %rax
    andq $~(1 << 2), %rax
    orq $(1 << 1), %rax
    movq %rax, %cr0
    movq %cr4, %rax
    orq $((1 << 9) | (1 << 10)), %rax
    movq %rax, %cr4

    movl %esi, %edi                 # arg 0: start_info (zero-extended)
    xorl %ebp, %ebp
    call rust_start
3:  cli
    hlt
    jmp 3b

    .section .rodata.gdt, "a"
    .p2align 3
    .global gdt64
# Selectors follow Linux's boot protocol (__BOOT_CS = 0x10, __BOOT_DS =
# 0x18), so the hand-off to a 64-bit kernel needs no GDT switch. The
# accessed bits are preset: the CPU would otherwise write them on a segment
# load, and this table ends up in read-only memory.
gdt64:
    .quad 0
    .quad 0
    .quad 0x00AF9B000000FFFF        # 0x10: 64-bit code (accessed)
    .quad 0x00CF93000000FFFF        # 0x18: data (accessed)
gdt64_end:
gdt64_ptr:
    .word gdt64_end - gdt64 - 1
    .long gdt64

    .section .bss.boot, "aw", @nobits
    .p2align 12
    .global boot_pml4
boot_pml4:  .skip 4096
boot_pdpt:  .skip 4096
boot_pd:    .skip 4 * 4096
    # Unmapped once Ember protects itself: a stack overflow faults here.
    .global boot_stack_guard
boot_stack_guard:
    .skip 4096
    .global boot_stack_bottom
boot_stack_bottom:
    .skip 128 * 1024
    .global boot_stack_top
boot_stack_top:
    # Page faults and double faults run here (TSS IST1): a fault caused by
    # a broken stack can still be reported.
    .p2align 4
fault_stack_bottom:
    .skip 16 * 1024
    .global fault_stack_top
fault_stack_top:

    # Xen PVH note: XEN_ELFNOTE_PHYS32_ENTRY (18) names the 32-bit entry.
    .section .note.Xen, "a", @note
    .p2align 2
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .p2align 2
    .long pvh_entry32
