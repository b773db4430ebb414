//! The Multiboot2 header and the 32-bit entry point: identity-map the first
//! 4 GiB with 2 MiB pages, enable long mode, and call `kernel_main` with the
//! Multiboot2 magic and the address of the boot information.

core::arch::global_asm!(
    r#"
    .section .multiboot2_header, "a"
    .balign 8
mb2_header_start:
    .long 0xE85250D6
    .long 0
    .long mb2_header_end - mb2_header_start
    .long 0x100000000 - (0xE85250D6 + (mb2_header_end - mb2_header_start))
    /* end tag */
    .word 0
    .word 0
    .long 8
mb2_header_end:

    .section .text.boot, "ax"
    .code32
    .global _start
_start:
    cli
    cld
    mov esp, offset boot_stack_top
    mov edi, eax
    mov esi, ebx

    /* Long mode available? (CPUID 0x80000001 EDX bit 29) */
    mov eax, 0x80000000
    cpuid
    cmp eax, 0x80000001
    jb no_long_mode
    mov eax, 0x80000001
    cpuid
    test edx, 0x20000000
    jz no_long_mode

    /* PML4[0] -> PDPT; PDPT[0..4] -> PD0..PD3; PDs map 2 MiB pages. */
    mov eax, offset boot_pdpt
    or eax, 3
    mov dword ptr [boot_pml4], eax
    mov dword ptr [boot_pml4 + 4], 0
    xor ecx, ecx
1:
    mov eax, ecx
    shl eax, 12
    add eax, offset boot_pd
    or eax, 3
    mov dword ptr [boot_pdpt + ecx * 8], eax
    mov dword ptr [boot_pdpt + ecx * 8 + 4], 0
    inc ecx
    cmp ecx, 4
    jb 1b
    xor ecx, ecx
2:
    mov eax, ecx
    shl eax, 21
    or eax, 0x83
    mov dword ptr [boot_pd + ecx * 8], eax
    mov dword ptr [boot_pd + ecx * 8 + 4], 0
    inc ecx
    cmp ecx, 2048
    jb 2b

    mov eax, offset boot_pml4
    mov cr3, eax
    mov eax, cr4
    or eax, 0x20
    mov cr4, eax
    mov ecx, 0xC0000080
    rdmsr
    or eax, 0x100
    wrmsr
    mov eax, cr0
    or eax, 0x80000001
    mov cr0, eax
    lgdt [boot_gdt_pointer]
    mov eax, offset boot_long_mode
    push 0x08
    push eax
    retf

no_long_mode:
    mov esi, offset boot_no_long_mode_message
3:
    mov al, byte ptr [esi]
    test al, al
    jz 5f
    mov dx, 0x3FD
4:
    in al, dx
    test al, 0x20
    jz 4b
    mov al, byte ptr [esi]
    mov dx, 0x3F8
    out dx, al
    inc esi
    jmp 3b
5:
    hlt
    jmp 5b

    .code64
boot_long_mode:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov rsp, offset boot_stack_top
    mov edi, edi
    mov esi, esi
    call kernel_main
6:
    cli
    hlt
    jmp 6b

    .section .rodata.boot, "a"
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF
    .quad 0x00CF92000000FFFF
boot_gdt_end:
boot_gdt_pointer:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt
boot_no_long_mode_message:
    .asciz "bulkhead: this CPU has no long mode; stopping\r\n"

    .section .bss.boot, "aw", @nobits
    .balign 4096
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
    .global boot_pd
boot_pd:
    .skip 4096 * 4
    .global boot_stack_bottom
boot_stack_bottom:
    .skip 0x20000
boot_stack_top:
"#
);
