# Ember's entry points. Three ways in, one way on:
#  - PVH (Xen PHYS32_ENTRY note): 32-bit protected mode, paging off,
#    %ebx = hvm_start_info. QEMU -kernel, Cloud Hypervisor, Firecracker.
#  - Reset vector (`ember-x86_64.bin` as -bios or pflash): the stub at the
#    end of the flash image enters 32-bit mode, copies the image to its link
#    address and comes in at reset_entry32 with no boot information.
#  - Linux 64-bit boot protocol (offset 0x200, as a bzImage's startup_64):
#    long mode on the loader's identity map, %rsi = zero page.
# Each sets %ebp to the boot source, builds identity page tables for the low
# 4 GiB (1 GiB pages where the CPU has them, else 2 MiB), enters long mode
# with Linux's GDT selectors, enables SSE (EFI payloads and Linux's EFI
# stub expect it) and calls rust_start(info, source).

    .set SOURCE_PVH, 0
    .set SOURCE_RESET, 1
    .set SOURCE_LINUX64, 2

# Zero .bss and fill boot_pml4/pdpt/pd. Clobbers eax, ebx, ecx, edx, edi;
# assembles the same in 32- and 64-bit mode (addresses are below 2 GiB).
.macro build_boot_tables
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
6:
.endm

# The image header, at the image's first byte: `cargo xtask build` reads it
# to cut the flash image and the bzImage out of the linked ELF.
    .section .text.head, "ax"
    .global ember_header
ember_header:
    .ascii "EMBERX64"
    .long 1                                 # header version
    .long __image_start                     # link (load) address
    .long __load_end                        # end of initialised contents
    .long __image_end                       # end including .bss
    .long reset_stub_start                  # flash stub: start ...
    .long reset_stub_end                    # ... and end (the reset vector is its last 16 bytes)
    .long linux64_entry                     # Linux 64-bit entry (load address + 0x200)
    .long pvh_entry32
    .long bz_trampoline_start               # relocating trampoline of the bzImage form
    .long bz_trampoline_end

    .org 0x200
    .code64
    .global linux64_entry
linux64_entry:
    cli
    cld
    movq %rsi, %r12                 # zero page; cpuid spares r12
    build_boot_tables
    movabsq $boot_stack_top, %rsp   # the loader's stack may be anywhere
    movl $boot_pml4, %eax
    movq %rax, %cr3
    movq %cr0, %rax
    orq $(1 << 16), %rax            # WP
    movq %rax, %cr0
    lgdt gdt64_ptr64
    pushq $0x10
    leaq 1f(%rip), %rax
    pushq %rax
    lretq
1:  movl %r12d, %esi
    movl $SOURCE_LINUX64, %ebp
    jmp long_entry64

    .section .text.entry32, "ax"
    .code32
    .global pvh_entry32
pvh_entry32:
    movl $SOURCE_PVH, %ebp
    jmp entry32

    .global reset_entry32
reset_entry32:
    xorl %ebx, %ebx
    movl $SOURCE_RESET, %ebp

entry32:
    cli
    cld
    movl %ebx, %esi                 # keep start_info across the setup
    build_boot_tables

    movl $boot_pml4, %eax
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

    movl %esi, %edi                 # arg 0: start_info / zero page (zero-extended)
    movl %ebp, %esi                 # arg 1: boot source
    xorl %ebp, %ebp
    call rust_start
3:  cli
    hlt
    jmp 3b

# The bzImage form's entry. Loaders may place a relocatable bzImage
# anywhere (Ember's own loader does, so one Ember can start another); this
# code, copied by `cargo xtask build` to offset 0x200 of the bzImage's
# protected-mode part (X), moves the image to its link address and enters
# linux64_entry. It is position-independent: X is found from %rip. xtask
# writes the image's length, link address, entry and end (with .bss) at
# X+0x100.. and lays the image out at X+0x1000; six pages of temporary page
# tables go above both the image at X and its final place with .bss (the
# loader's own tables may live where the image goes, and linux64_entry
# zeroes .bss). Uses no stack.
    .section .text.bztramp, "ax"
    .code64
    .global bz_trampoline_start
bz_trampoline_start:
    cli
    cld
    movq %rsi, %r12                 # zero page
    leaq bz_trampoline_start(%rip), %rbx
    subq $0x200, %rbx               # X
    # Temporary identity map of 4 GiB in 2 MiB pages, after the image:
    # PML4, PDPT, four page directories.
    movq 0x100(%rbx), %r13          # image length
    leaq 0x1fff(%rbx,%r13), %r14
    andq $~0xfff, %r14              # tables: after the image at X ...
    movq 0x118(%rbx), %rax          # ... and after its final place with .bss
    cmpq %rax, %r14
    cmovbq %rax, %r14
    movq %r14, %rdi
    movl $(6 * 4096 / 8), %ecx
    xorl %eax, %eax
    rep stosq
    leaq 0x1003(%r14), %rax         # PML4[0] -> PDPT
    movq %rax, (%r14)
    leaq 0x2003(%r14), %rax         # PDPT[0..4] -> PDs
    xorl %ecx, %ecx
1:  movq %rax, 0x1000(%r14,%rcx,8)
    addq $0x1000, %rax
    incl %ecx
    cmpl $4, %ecx
    jne 1b
    xorl %ecx, %ecx
2:  movq %rcx, %rax
    shlq $21, %rax
    orq $0x83, %rax                 # present, writable, 2 MiB
    movq %rax, 0x2000(%r14,%rcx,8)
    incl %ecx
    cmpl $2048, %ecx
    jne 2b
    movq %r14, %cr3
    # Copy the image down (forward: its destination is below its source,
    # and clear of the tables above it).
    leaq 0x1000(%rbx), %rsi
    movq 0x108(%rbx), %rdi
    movq %r13, %rcx
    rep movsb
    movq %r12, %rsi
    jmpq *0x110(%rbx)
    .global bz_trampoline_end
bz_trampoline_end:

# The reset stub. `cargo xtask build` copies these bytes to the very end of
# the flash image, which QEMU maps so that it ends at 4 GiB: the CPU starts
# at 0xFFFFFFF0 (the last 16 bytes) in real mode with CS.base = 0xFFFF0000.
# Everything here is therefore addressed relative to reset_stub_end, which
# sits at 2^32: `sym - reset_stub_end` is sym's flash address modulo 2^32
# (and modulo 2^16 inside the reset code segment). The image itself sits
# right below the stub in flash.
    .section .text.reset, "ax"
    .p2align 4
    .global reset_stub_start
reset_stub_start:
reset_gdt:
    .quad 0
    .quad 0x00CF9B000000FFFF        # 0x08: flat 32-bit code
    .quad 0x00CF93000000FFFF        # 0x10: flat data
reset_gdt_end:
reset_gdt_ptr:
    .word reset_gdt_end - reset_gdt - 1
    .long reset_gdt - reset_stub_end

    .code16
reset16:
    cli
    cld
    # Fast A20 (port 0x92), for machines that start with it masked.
    inb $0x92, %al
    orb $2, %al
    andb $0xfe, %al
    outb %al, $0x92
    lgdtl %cs:(reset_gdt_ptr - reset_stub_end)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x08, $(reset32 - reset_stub_end)

    .code32
reset32:
    movl $0x10, %eax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    # Copy the image from flash (just below this stub) to its link address,
    # a dword at a time (the tail rounds up into .bss, zeroed later).
    movl $__load_end, %ecx
    subl $__image_start, %ecx
    movl $(reset_stub_start - reset_stub_end), %esi
    subl %ecx, %esi
    movl $__image_start, %edi
    addl $3, %ecx
    shrl $2, %ecx
    rep movsl
    movl $reset_entry32, %eax
    jmp *%eax

    # The reset vector: the last 16 bytes of the flash.
    .p2align 4
    .code16
reset_vector:
    jmp reset16
    .p2align 4, 0xf4
    .global reset_stub_end
reset_stub_end:

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
    .p2align 3
gdt64_ptr64:                        # lgdt in long mode reads an 8-byte base
    .word gdt64_end - gdt64 - 1
    .quad gdt64

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
