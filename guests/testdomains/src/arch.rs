//! Direct memory access and the instructions hostile domains try.

use core::arch::asm;

/// Reads a byte of guest-physical memory (identity-mapped).
pub fn read_u8(gpa: u64) -> u8 {
    // SAFETY: the domain's paging identity-maps its first GiB; an address
    // the core did not map ends in an EPT violation the core handles.
    unsafe { core::ptr::read_volatile(gpa as *const u8) }
}

/// Writes a byte of guest-physical memory.
pub fn write_u8(gpa: u64, value: u8) {
    // SAFETY: as in `read_u8`.
    unsafe { core::ptr::write_volatile(gpa as *mut u8, value) }
}

pub use rt::arch::{inb, outb};

/// Executes VMXON with a pointer to zero.
pub fn vmxon() {
    let region: u64 = 0;
    // SAFETY: VMXON in a guest exits to the core unconditionally.
    unsafe { asm!("vmxon qword ptr [{0}]", in(reg) &region, options(nostack)) }
}

/// Executes VMREAD of the guest RIP field.
pub fn vmread() -> u64 {
    let v: u64;
    // SAFETY: VMREAD in a guest exits to the core (no VMCS shadowing).
    unsafe { asm!("vmread {0}, {1}", out(reg) v, in(reg) 0x681e_u64, options(nostack)) }
    v
}

/// Sets CR4.OSXSAVE (bit 18), which would let it use XSAVE state and,
/// with the core's XCR0, the AVX registers.
pub fn set_cr4_osxsave() {
    // SAFETY: only this domain's CR4 is affected; the core owns the bit
    // (masked in the VMCS), so the write exits.
    unsafe {
        asm!(
            "mov {0}, cr4",
            "bts {0}, 18",
            "mov cr4, {0}",
            out(reg) _,
            options(nostack)
        )
    }
}

/// Loads an empty IDT and raises an exception: with no handler, the CPU
/// escalates to a triple fault.
pub fn triple_fault() -> ! {
    let idtr: [u16; 5] = [0; 5];
    // SAFETY: only this domain's vCPU is affected; the core sees the triple
    // fault as a VM exit.
    unsafe {
        asm!("lidt [{0}]", "ud2", in(reg) &idtr, options(nostack, noreturn));
    }
}
