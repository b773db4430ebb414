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

/// Halts the vCPU (the core treats it as a stop).
pub fn halt() {
    // SAFETY: HLT exits to the core.
    unsafe { asm!("hlt", options(nostack, nomem)) }
}
