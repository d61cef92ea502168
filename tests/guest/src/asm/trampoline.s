# Real-mode start-up code for application processors. CPL3 code copies the bytes
# between ap_trampoline_start and ap_trampoline_end to TRAMPOLINE_BASE (a 4 KiB
# page below 1 MiB) and sends INIT-SIPI-SIPI with vector TRAMPOLINE_BASE >> 12.
# 16-bit -> 32-bit protected mode -> long mode -> ap_long_mode (boot.s).

.set TRAMPOLINE_BASE, {TRAMPOLINE_BASE}

.pushsection .rodata.ap_trampoline, "a", @progbits
.globl ap_trampoline_start
ap_trampoline_start:
.code16
    cli
    mov %cs, %ax
    mov %ax, %ds
    lgdtl tramp_gdt_ptr - ap_trampoline_start
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl $0x30, $(TRAMPOLINE_BASE + tramp_protected - ap_trampoline_start)
.code32
tramp_protected:
    mov $KERNEL_DS, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov $CR4_VALUE, %eax
    mov %eax, %cr4
    mov $pml4, %eax
    mov %eax, %cr3
    mov $MSR_EFER, %ecx
    rdmsr
    or $EFER_LME, %eax
    wrmsr
    mov $CR0_VALUE, %eax
    mov %eax, %cr0
    ljmp $KERNEL_CS, $ap_long_mode
.balign 4
tramp_gdt_ptr:
    .word gdt_end - gdt - 1
    .long gdt
.globl ap_trampoline_end
ap_trampoline_end:
.code64
.popsection
