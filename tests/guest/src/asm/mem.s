# memcpy/memmove/memset/memcmp/bcmp for the CPL3 Rust code. Written in assembly
# so that the compiler cannot lower them into calls to themselves.

.text
.globl memcpy
.type memcpy, @function
memcpy:
    mov %rdi, %rax
    mov %rdx, %rcx
    rep movsb
    ret

.globl memmove
.type memmove, @function
memmove:
    mov %rdi, %rax
    mov %rdx, %rcx
    mov %rdi, %r8
    sub %rsi, %r8
    cmp %rdx, %r8
    jb 1f
    rep movsb
    ret
1:  lea -1(%rdi, %rdx), %rdi
    lea -1(%rsi, %rdx), %rsi
    std
    rep movsb
    cld
    ret

.globl memset
.type memset, @function
memset:
    mov %rdi, %r8
    mov %esi, %eax
    mov %rdx, %rcx
    rep stosb
    mov %r8, %rax
    ret

.globl memcmp
.type memcmp, @function
.globl bcmp
.type bcmp, @function
memcmp:
bcmp:
    xor %eax, %eax
    mov %rdx, %rcx
    test %rcx, %rcx
    jz 1f
    repe cmpsb
    je 1f
    movzbl -1(%rdi), %eax
    movzbl -1(%rsi), %ecx
    sub %ecx, %eax
1:  ret
