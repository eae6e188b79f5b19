	.text
	.globl _start
_start:
	lea msg(%rip), %rax
	movabs $msg, %rax
	ret
	.data
	.balign 8
ptr64:	.quad msg
	.quad _start
	.quad ptr64
msg:	.asciz "ember"
	.section .osrel, "a"
	.ascii "ID=ember\n"
	.section .cmdline, "a"
	.asciz "console=ttyS0"
	.section .linux, "a"
	.ascii "fake kernel"
