//! The entry stub and the instructions a domain executes to reach the core.

use core::arch::asm;

#[cfg(target_os = "none")]
core::arch::global_asm!(
    r#"
    .section .text.entry, "ax"
    .global _start
_start:
    lea rsp, [rip + rt_stack_top]
    call rt_domain_main
2:
    hlt
    jmp 2b

    .section .bss.rt_stack, "aw", @nobits
    .balign 16
rt_stack:
    .skip 65536
rt_stack_top:
"#
);

/// VMCALL: RAX = `number`, RDI/RSI/RDX/R10 = arguments; returns (RAX, RDX).
#[inline]
pub fn vmcall(number: u64, a0: u64, a1: u64, a2: u64, a3: u64) -> (u64, u64) {
    let (rax, rdx): (u64, u64);
    // SAFETY: VMCALL traps to the core, which by the hypercall ABI changes
    // only RAX and RDX and reads only the memory the arguments name.
    unsafe {
        asm!("vmcall",
             inlateout("rax") number => rax, in("rdi") a0, in("rsi") a1,
             inlateout("rdx") a2 => rdx, in("r10") a3, options(nostack));
    }
    (rax, rdx)
}

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// CPUID leaf `leaf` (subleaf 0) as EAX, EBX, ECX, EDX: the core's filtered
/// view (it always exits).
#[inline]
pub fn cpuid(leaf: u32) -> [u32; 4] {
    let r = core::arch::x86_64::__cpuid(leaf);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// Reads an I/O port. Ports the domain holds pass through to hardware; the
/// virtual UART's are forwarded by the core; any other stops the domain.
#[inline]
pub fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: port I/O from a domain either reaches a port its capabilities
    // open, or exits to the core, which emulates, forwards or refuses it.
    unsafe { asm!("in al, dx", in("dx") port, out("al") v, options(nostack, nomem)) }
    v
}

/// Writes an I/O port (see [`inb`]).
#[inline]
pub fn outb(port: u16, value: u8) {
    // SAFETY: as in `inb`.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nostack, nomem)) }
}

/// Halts the vCPU (the core treats it as a stop).
pub fn halt() {
    // SAFETY: HLT exits to the core.
    unsafe { asm!("hlt", options(nostack, nomem)) }
}

/// Faults on purpose: an undefined opcode. The domain has no IDT, so the
/// core sees a triple fault and stops it for a violation (what a crashing
/// service looks like to its supervisor).
pub fn fault() -> ! {
    // SAFETY: UD2 only raises #UD; nothing in this domain's state is
    // touched and control never comes back.
    unsafe { asm!("ud2", options(nostack, nomem, noreturn)) }
}
