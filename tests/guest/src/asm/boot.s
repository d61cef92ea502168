# PVH entry, page tables, GDT and TSSs, and the switch to CPL3 (BSP and APs).
# Runs at CPL0, where every instruction is emulated on PVM hosts: keep it short
# and use only plain integer instructions.

.set KERNEL_BASE, {KERNEL_BASE}
.set KERNEL_END, {KERNEL_END}
.set MAX_CPUS, {MAX_CPUS}
.set KSTACK_SIZE, {KSTACK_SIZE}
.set AP_USTACK_SIZE, {AP_USTACK_SIZE}
.set TSS_STRIDE, 0x70
.set KERNEL_CS, 0x08
.set KERNEL_DS, 0x10
.set USER_DS, 0x23
.set USER_CS, 0x2b
.set TSS_SEL0, 0x40
.set CR0_VALUE, 0x80010033      # PG | WP | NE | ET | MP | PE
.set CR4_VALUE, 0x620           # OSXMMEXCPT | OSFXSR | PAE
.set MSR_EFER, 0xc0000080
.set EFER_LME, 0x100

# Xen PVH note: 32-bit physical entry point (8-byte descriptor, as QEMU reads it).
.pushsection .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 8
    .long 18
    .asciz "Xen"
    .quad pvh_start32
.popsection

.pushsection .k.text.entry, "ax", @progbits
.code32
# PVH entry: protected mode, paging off, %ebx = physical address of hvm_start_info.
.globl pvh_start32
pvh_start32:
    mov %ebx, %edi
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
    lgdt gdt_ptr
    ljmp $KERNEL_CS, $bsp_long_mode

.code64
bsp_long_mode:
    mov %edi, %edi
    mov $KERNEL_DS, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    lidt idt_ptr
    # Mask both 8259 PICs before interrupts are first enabled (at the iretq):
    # firmware may have left the PIT running through a PIC whose vectors
    # overlap the exceptions (SeaBIOS: IRQ0 -> vector 8).
    mov $0xff, %al
    out %al, $0x21
    out %al, $0xa1
    mov $kernel_stacks + KSTACK_SIZE, %esp
    xor %ecx, %ecx
    call load_tss
    push $USER_DS
    push $__bsp_user_stack_top - 8
    push $0x202
    push $USER_CS
    push ${BSP_MAIN}
    iretq

# Long-mode entry of application processors (reached from the real-mode trampoline).
.globl ap_long_mode
ap_long_mode:
    mov $KERNEL_DS, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    lidt idt_ptr
    mov $1, %ecx
    lock xadd %ecx, ap_next_index
    cmp $MAX_CPUS, %ecx
    jae 2f
    lea 1(%ecx), %eax
    shl $12, %eax
    lea kernel_stacks(%rax), %rsp
    call load_tss
    mov %ecx, %edi
    mov %ecx, %eax
    imul $AP_USTACK_SIZE, %eax
    lea {AP_STACKS} - 8(%rax), %rax
    push $USER_DS
    push %rax
    push $0x202
    push $USER_CS
    push ${AP_MAIN}
    iretq
2:  hlt
    jmp 2b

# Fill this CPU's TSS descriptor (GDT slot TSS_SEL0 + 16 * %ecx) and load TR.
# The TSSs share one I/O bitmap placed after the array; the limit covers it.
# Clobbers rax, rdx, r8, r9.
load_tss:
    mov %ecx, %edx
    imul $TSS_STRIDE, %edx
    add $tss_array, %edx
    mov $MAX_CPUS, %r8d
    sub %ecx, %r8d
    imul $TSS_STRIDE, %r8d
    add $0x2000, %r8d
    mov %edx, %eax
    and $0xffffff, %eax
    shl $16, %rax
    or %r8, %rax
    mov $0x89, %r9d
    shl $40, %r9
    or %r9, %rax
    mov %edx, %r9d
    shr $24, %r9d
    shl $56, %r9
    or %r9, %rax
    mov %ecx, %r9d
    shl $4, %r9d
    mov %rax, gdt + TSS_SEL0(%r9)
    movq $0, gdt + TSS_SEL0 + 8(%r9)
    lea TSS_SEL0(%r9), %eax
    ltr %ax
    ret
.popsection

# Identity map of 0-4 GiB. Accessed/dirty bits are preset so the MMU never writes
# the tables (keeps dirty logging of guest RAM free of page-table noise).
.set PT_USER_4K, 0x67            # P | RW | US | A | D
.set PT_KERN_4K, 0x63            # P | RW | A | D
.set PD_USER_2M, 0xe7            # P | RW | US | A | D | PS
.set PD_MMIO_2M, 0xff            # P | RW | US | PWT | PCD | A | D | PS
.set PT_TABLE, 0x27              # P | RW | US | A

.pushsection .k.pagetables, "aw", @progbits
.balign 4096
pml4:
    .quad pdpt + PT_TABLE
    .fill 511, 8, 0
pdpt:
    .quad pd0 + PT_TABLE
    .quad pd1 + PT_TABLE
    .quad pd2 + PT_TABLE
    .quad pd3 + PT_TABLE
    .fill 508, 8, 0
# 0-2 MiB in 4 KiB pages, the kernel region supervisor-only. Page 0 is mapped:
# loaders put start-info data there (QEMU's pvh.bin puts the memory map at 0x500).
pt0:
    .set addr, 0
    .rept 512
    .if (addr >= KERNEL_BASE) && (addr < KERNEL_END)
    .quad addr + PT_KERN_4K
    .else
    .quad addr + PT_USER_4K
    .endif
    .set addr, addr + 0x1000
    .endr
pd0:
    .quad pt0 + PT_TABLE
    .set addr, 0x200000
    .rept 511
    .quad addr + PD_USER_2M
    .set addr, addr + 0x200000
    .endr
pd1:
    .rept 512
    .quad addr + PD_USER_2M
    .set addr, addr + 0x200000
    .endr
pd2:
    .rept 512
    .quad addr + PD_USER_2M
    .set addr, addr + 0x200000
    .endr
# 3-4 GiB: MMIO (virtio-mmio, IOAPICs, LAPIC), uncached.
pd3:
    .rept 512
    .quad addr + PD_MMIO_2M
    .set addr, addr + 0x200000
    .endr
.popsection

.pushsection .k.data, "aw", @progbits
.balign 16
gdt:
    .quad 0
    .quad 0x00af9a000000ffff    # 0x08 kernel code, 64-bit
    .quad 0x00cf92000000ffff    # 0x10 kernel data
    .quad 0x00cffa000000ffff    # 0x18 user code, 32-bit (unused)
    .quad 0x00cff2000000ffff    # 0x20 user data
    .quad 0x00affa000000ffff    # 0x28 user code, 64-bit
    .quad 0x00cf9a000000ffff    # 0x30 kernel code, 32-bit (AP trampoline)
    .quad 0
    .fill MAX_CPUS * 2, 8, 0    # 0x40 + 16 * cpu: TSS descriptors
gdt_end:
.globl gdt_ptr
gdt_ptr:
    .word gdt_end - gdt - 1
    .quad gdt

# Next free CPU index for application processors (the BSP is 0).
ap_next_index:
    .long 1

# One 0x68-byte TSS per CPU (RSP0 = top of that CPU's kernel stack), then one
# shared I/O bitmap that allows every port at CPL3.
.balign 16
tss_array:
    .set cpu, 0
    .rept MAX_CPUS
    .long 0
    .quad kernel_stacks + (cpu + 1) * KSTACK_SIZE
    .fill 11, 8, 0
    .word 0
    .word (MAX_CPUS - cpu) * TSS_STRIDE
    .fill TSS_STRIDE - 0x68, 1, 0
    .set cpu, cpu + 1
    .endr
io_bitmap:
    .fill 0x2000, 1, 0
    .byte 0xff
.popsection

.pushsection .k.bss, "aw", @nobits
.balign 4096
kernel_stacks:
    .skip MAX_CPUS * KSTACK_SIZE
.popsection
.code64
