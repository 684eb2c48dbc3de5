# KVM canary: a boot sector that SeaBIOS loads at 0x7c00. It waits for two
# BIOS timer ticks with sti/hlt (a halted vCPU must be woken by the timer),
# then goes from real mode through protected mode to long mode and writes
# "solstice-canary-ok" to the debug console port 0x402.
#
# Rebuild canary.bin (the test checks they match):
#   as --64 -o canary.o canary.S && objcopy -O binary canary.o canary.bin
        .code16
        .org 0
start:
        cli
        xor %ax, %ax
        mov %ax, %ds
        mov %ax, %es
        mov %ax, %ss
        mov $0x7c00, %sp
        sti
        mov 0x46c, %bx            # BIOS tick counter
        add $2, %bx
1:      hlt
        cmp 0x46c, %bx
        ja 1b
        cli
        # identity-map the first 2 MiB: PML4 0x1000, PDPT 0x2000, PD 0x3000
        mov $0x1000, %di
        mov $0x1800, %cx
        xor %ax, %ax
        rep stosw
        movl $0x2003, 0x1000
        movl $0x3003, 0x2000
        movl $0x0083, 0x3000
        lgdtl gdtr - start + 0x7c00
        mov %cr0, %eax
        or $1, %eax
        mov %eax, %cr0
        ljmpl $0x08, $(pm32 - start + 0x7c00)

        .code32
pm32:
        mov $0x10, %ax
        mov %ax, %ds
        mov %ax, %es
        mov %ax, %ss
        mov %cr4, %eax
        or $0x20, %eax            # PAE
        mov %eax, %cr4
        mov $0x1000, %eax
        mov %eax, %cr3
        mov $0xC0000080, %ecx     # EFER.LME
        rdmsr
        or $0x100, %eax
        wrmsr
        mov %cr0, %eax
        or $0x80000000, %eax      # paging on: long mode
        mov %eax, %cr0
        ljmp $0x18, $(lm64 - start + 0x7c00)

        .code64
lm64:
        mov $(msg - start + 0x7c00), %rsi
        mov $0x402, %dx
2:      lodsb
        test %al, %al
        jz 3f
        out %al, %dx
        jmp 2b
3:      hlt
        jmp 3b

        .p2align 3
gdt:
        .quad 0
        .quad 0x00cf9a000000ffff  # 0x08: 32-bit code
        .quad 0x00cf92000000ffff  # 0x10: data
        .quad 0x00af9a000000ffff  # 0x18: 64-bit code
gdtr:
        .word gdtr - gdt - 1
        .long gdt - start + 0x7c00
msg:
        .asciz "solstice-canary-ok\n"
        .org 510
        .word 0xaa55
