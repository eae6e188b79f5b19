# The parts of the UEFI calling convention stable Rust cannot express.

    .section .text.efi_abi, "ax"
    .code64

# u64 efi_call_image(entry, image_handle, system_table, stack_top, jmp_slot)
#   (System V: rdi, rsi, rdx, rcx, r8)
# Runs an image's entry point on its own stack. Returns the entry point's
# status, or the status given to efi_exit_image() by the image's Exit().
# *jmp_slot receives the stack pointer to resume at.
    .global efi_call_image
efi_call_image:
    pushq %rbx
    pushq %rbp
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%r8)            # resume point for Exit()
    movq %r8, %r12              # r12 is callee-saved in the MS ABI too
    movq %rcx, %rsp             # the image's stack (16-byte aligned)
    subq $32, %rsp              # MS ABI shadow space
    movq %rdi, %rax
    movq %rsi, %rcx             # MS ABI arg 0: ImageHandle
                                # MS ABI arg 1: SystemTable, already in rdx
    callq *%rax
    movq (%r12), %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbp
    popq %rbx
    retq

# ! efi_exit_image(resume_rsp, status)   (System V: rdi, rsi)
# Abandons the image's stack and returns `status` from the matching
# efi_call_image().
    .global efi_exit_image
efi_exit_image:
    movq %rdi, %rsp
    movq %rsi, %rax
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbp
    popq %rbx
    retq

# Install/UninstallMultipleProtocolInterfaces are C-variadic: (Handle*, GUID*,
# Interface*, ..., NULL). In the MS x64 ABI the caller reserves 32 bytes of
# home space above the return address for the four register arguments, and
# further arguments follow on the stack; spilling rcx/rdx/r8/r9 into that
# space turns the whole list into an array, which Rust can then walk.
    .macro varargs_shim name, target
    .global \name
\name:
    movq %rcx, 8(%rsp)
    movq %rdx, 16(%rsp)
    movq %r8, 24(%rsp)
    movq %r9, 32(%rsp)
    leaq 8(%rsp), %rcx          # arg 0: pointer to the argument array
    # A frame of our own: the target may spill into *its* home space, which
    # must not be the one now holding the arguments. 40 bytes keeps the
    # 16-byte alignment the call expects.
    subq $40, %rsp
    callq \target
    addq $40, %rsp
    retq
    .endm

    varargs_shim efi_install_multiple_shim, efi_install_multiple_impl
    varargs_shim efi_uninstall_multiple_shim, efi_uninstall_multiple_impl
