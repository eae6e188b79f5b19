# Exception entry stubs for vectors 0-31. Each pushes (error code, vector)
# into one frame layout and jumps to a common path that saves the general
# registers and calls `exception_handler` in Rust, which reports and stops.

    .section .text.isr, "ax"
    .code64

    .macro isr_noerr n
isr_\n:
    pushq $0
    pushq $\n
    jmp isr_common
    .endm

    .macro isr_err n
isr_\n:
    pushq $\n
    jmp isr_common
    .endm

    .irp n, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31
    isr_noerr \n
    .endr
    .irp n, 8,10,11,12,13,14,17,21,29,30
    isr_err \n
    .endr

isr_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    andq $-16, %rsp
    call exception_handler
1:  cli
    hlt
    jmp 1b

    .section .rodata.isr, "a"
    .p2align 3
    .global isr_table
isr_table:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad isr_\n
    .endr
