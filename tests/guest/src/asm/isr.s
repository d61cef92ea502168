# IDT, interrupt stubs, the int3 service call and the exception reporter (CPL0).

.set SPURIOUS_VECTOR, 0xff
.set LAPIC_EOI, 0xfee000b0
.set COM1, 0x3f8
# Exceptions for which the CPU pushes an error code: 8, 10-14, 17, 21, 29, 30.
.set ERRCODE_MASK, 0x60227d00

# One 16-byte stub per vector. Exceptions push (error code, vector) and report;
# vector 3 is the CPL3 service call; 32-255 count the interrupt and return.
.pushsection .k.isr, "ax", @progbits
.balign 4096
.globl isr_stubs
isr_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if vec == 3
    jmp service_call
    .elseif vec < 32
    .if ((ERRCODE_MASK >> vec) & 1) == 0
    push $0
    .endif
    push $vec
    jmp exception_entry
    .else
    push %rax
    mov $vec, %eax
    jmp irq_entry
    .endif
    .set vec, vec + 1
    .endr
    .balign 16
.globl isr_stubs_end
isr_stubs_end:

# %eax = vector, %rax saved on the stack. Count, acknowledge, return.
irq_entry:
    lock incq {IRQ_COUNTS}(, %rax, 8)
    lock incq {EVENT_COUNT}
    cmp $SPURIOUS_VECTOR, %eax
    je 1f
    mov $LAPIC_EOI, %eax
    movl $0, (%rax)
1:  pop %rax
    iretq

# int3 from CPL3 through a DPL3 gate (interrupts are off on entry).
# %rax = service: 0 idle-wait (%rdi = event count last seen), 1 triple fault,
# 2 park this CPU for good, 3 return popcnt(%rdi) in %rax computed at CPL0 (an
# instruction PVM hosts cannot emulate: it tests the VMM's report of that).
# Unknown services return at once.
service_call:
    test %rax, %rax
    jz 1f
    cmp $1, %rax
    je triple_fault
    cmp $2, %rax
    je 3f
    cmp $3, %rax
    je 4f
    iretq
4:  .byte 0xf3, 0x48, 0x0f, 0xb8, 0xc7    # popcnt %rdi, %rax
    iretq
1:  cmp {EVENT_COUNT}, %rdi
    jne 2f
    sti
    hlt
2:  iretq
3:  hlt
    jmp 3b

# Stack: vector, error code, then the CPU's frame (rip, cs, rflags, rsp, ss).
exception_entry:
    mov $msg_exception, %esi
    call kputs
    mov 0(%rsp), %rax
    call kputhex
    mov $msg_error, %esi
    call kputs
    mov 8(%rsp), %rax
    call kputhex
    mov $msg_rip, %esi
    call kputs
    mov 16(%rsp), %rax
    call kputhex
    mov $msg_cr2, %esi
    call kputs
    mov %cr2, %rax
    call kputhex
    mov $10, %bl
    call kputc
    mov $0xfe, %al
    out %al, $0x64
triple_fault:
    lidt null_idt_ptr
    ud2

# Write %bl to COM1 once the transmitter is empty. Clobbers rax, rdx.
kputc:
    mov $COM1 + 5, %dx
1:  in %dx, %al
    test $0x20, %al
    jz 1b
    mov $COM1, %dx
    mov %bl, %al
    out %al, %dx
    ret

# Write the NUL-terminated string at %rsi. Clobbers rax, rbx, rdx, rsi.
kputs:
1:  mov (%rsi), %bl
    test %bl, %bl
    jz 2f
    call kputc
    inc %rsi
    jmp 1b
2:  ret

# Write %rax in lowercase hex without leading zeros. Clobbers rax, rbx, rcx, rdx, rdi.
kputhex:
    mov %rax, %rdi
    mov $60, %ecx
1:  mov %rdi, %rax
    shr %cl, %rax
    test $0xf, %al
    jnz 2f
    test %ecx, %ecx
    jz 2f
    sub $4, %ecx
    jmp 1b
2:  mov %rdi, %rax
    shr %cl, %rax
    and $0xf, %eax
    mov hex_digits(%rax), %bl
    call kputc
    sub $4, %ecx
    jns 2b
    ret
.popsection

.pushsection .k.rodata, "a", @progbits
msg_exception: .asciz "reprise-guest: EXCEPTION vector="
msg_error: .asciz " error="
msg_rip: .asciz " rip="
msg_cr2: .asciz " cr2="
hex_digits: .ascii "0123456789abcdef"

.balign 8
null_idt_ptr:
    .word 0
    .quad 0
idt_ptr:
    .word 256 * 16 - 1
    .quad idt

# 64-bit interrupt gates, kernel CS; only vector 3 (the service call) is DPL3.
.balign 4096
idt:
    .set vec, 0
    .rept 256
    .word isr_offset_lo + vec * 16
    .word KERNEL_CS
    .byte 0
    .if vec == 3
    .byte 0xee
    .else
    .byte 0x8e
    .endif
    .word isr_offset_mid
    .long 0
    .long 0
    .set vec, vec + 1
    .endr
.popsection
