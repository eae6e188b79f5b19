// The parts of the UEFI calling convention stable Rust cannot express, for
// AArch64 (AAPCS64, which UEFI uses unchanged).

    .section .text.efi_abi, "ax"

// usize efi_call_image(entry, image_handle, system_table, stack_top, jmp_slot)
//   (x0 .. x4)
// Runs an image's entry point on its own stack. Returns the entry point's
// status, or the status given to efi_exit_image() by the image's Exit().
// *jmp_slot receives the stack pointer to resume at.
    .global efi_call_image
efi_call_image:
    stp     x29, x30, [sp, #-16]!
    stp     x27, x28, [sp, #-16]!
    stp     x25, x26, [sp, #-16]!
    stp     x23, x24, [sp, #-16]!
    stp     x21, x22, [sp, #-16]!
    stp     x19, x20, [sp, #-16]!
    stp     d14, d15, [sp, #-16]!
    stp     d12, d13, [sp, #-16]!
    stp     d10, d11, [sp, #-16]!
    stp     d8, d9, [sp, #-16]!
    mov     x9, sp
    str     x9, [x4]                // resume point for Exit()
    mov     x19, x4                 // callee-saved: the slot
    mov     sp, x3                  // the image's stack (16-byte aligned)
    mov     x9, x0
    mov     x0, x1                  // ImageHandle
    mov     x1, x2                  // SystemTable
    mov     x29, xzr                // end of the frame chain
    blr     x9
    ldr     x9, [x19]
    mov     sp, x9
    b       efi_restore

// ! efi_exit_image(resume_sp, status)   (x0, x1)
// Abandons the image's stack and returns `status` from the matching
// efi_call_image().
    .global efi_exit_image
efi_exit_image:
    mov     sp, x0
    mov     x0, x1
efi_restore:
    ldp     d8, d9, [sp], #16
    ldp     d10, d11, [sp], #16
    ldp     d12, d13, [sp], #16
    ldp     d14, d15, [sp], #16
    ldp     x19, x20, [sp], #16
    ldp     x21, x22, [sp], #16
    ldp     x23, x24, [sp], #16
    ldp     x25, x26, [sp], #16
    ldp     x27, x28, [sp], #16
    ldp     x29, x30, [sp], #16
    ret

// Install/UninstallMultipleProtocolInterfaces are C-variadic: (Handle*,
// GUID*, Interface*, ..., NULL). AAPCS64 passes the first eight in x0-x7
// and the rest on the stack, starting at the caller's stack pointer. Storing
// x0-x7 right below that pointer makes the whole list one array, which Rust
// can then walk.
    .macro varargs_shim name, target
    .global \name
\name:
    stp     x6, x7, [sp, #-16]!
    stp     x4, x5, [sp, #-16]!
    stp     x2, x3, [sp, #-16]!
    stp     x0, x1, [sp, #-16]!
    mov     x0, sp                  // arg 0: pointer to the argument array
    stp     x29, x30, [sp, #-16]!
    mov     x29, sp
    bl      \target
    ldp     x29, x30, [sp], #16
    add     sp, sp, #64
    ret
    .endm

    varargs_shim efi_install_multiple_shim, efi_install_multiple_impl
    varargs_shim efi_uninstall_multiple_shim, efi_uninstall_multiple_impl
