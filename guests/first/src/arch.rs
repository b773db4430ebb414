//! The guest's privileged and trapping instructions, each in one place.

use core::arch::{asm, global_asm};

// Entry: the core sets RSP and passes the scenario in RDI.
global_asm!(
    r#"
    .section .text.entry, "ax"
    .global _start
_start:
    and rsp, -16
    call guest_main
2:
    hlt
    jmp 2b
"#
);

/// VMCALL with RAX = `call`, RDI = `a0`, RSI = `a1`; returns (RAX, RDX).
pub fn vmcall(call: u64, a0: u64, a1: u64) -> (u64, u64) {
    let (status, value): (u64, u64);
    // SAFETY: VMCALL traps to the core, which changes only RAX and RDX as the
    // hypercall ABI says; no guest memory is touched on its behalf except
    // what the arguments name.
    unsafe {
        asm!("vmcall",
             inlateout("rax") call => status, in("rdi") a0, in("rsi") a1,
             lateout("rdx") value, options(nostack));
    }
    (status, value)
}

/// CPUID with ECX = 0.
pub fn cpuid(leaf: u32) -> [u32; 4] {
    let r = core::arch::x86_64::__cpuid_count(leaf, 0);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Writes a byte to an I/O port.
pub fn outb(port: u16, value: u8) {
    // SAFETY: port I/O in a guest exits to the core, which emulates or
    // refuses it; it cannot reach hardware.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nostack, nomem)) }
}

/// Reads a byte from an I/O port.
pub fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: as for `outb`.
    unsafe { asm!("in al, dx", in("dx") port, out("al") value, options(nostack, nomem)) }
    value
}

/// Writes to a guest-physical address (identity-mapped by the core).
pub fn write_u64(address: u64, value: u64) {
    // SAFETY: deliberately writes an address that may be unmapped in the
    // EPT: the point is that the core sees and handles the violation.
    unsafe { core::ptr::write_volatile(address as *mut u64, value) }
}

/// Halts the vCPU.
pub fn halt() {
    // SAFETY: HLT exits to the core.
    unsafe { asm!("hlt", options(nostack, nomem)) }
}
