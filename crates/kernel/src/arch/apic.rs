//! The local APIC, used for one thing only: a TSC-deadline timer interrupt
//! that wakes the core from HLT when nothing can run until a deadline.

use core::sync::atomic::{AtomicU64, Ordering};

/// Vector of the deadline timer.
pub const TIMER_VECTOR: u8 = 0x40;
/// Vector of spurious interrupts.
pub const SPURIOUS_VECTOR: u8 = 0xff;

const IA32_APIC_BASE: u32 = 0x1b;
const IA32_TSC_DEADLINE: u32 = 0x6e0;
const SVR: u64 = 0xf0;
const LVT_TIMER: u64 = 0x320;
const EOI: u64 = 0xb0;

/// Address of the EOI register, read by the timer stub (0: no APIC timer).
#[unsafe(no_mangle)]
static APIC_EOI_ADDRESS: AtomicU64 = AtomicU64::new(0);

/// Enables the local APIC's TSC-deadline timer if the CPU has one; returns
/// whether it did.
pub fn init() -> bool {
    let [_, _, ecx, edx] = super::cpuid(1, 0);
    if edx & (1 << 9) == 0 || ecx & (1 << 24) == 0 {
        return false;
    }
    // SAFETY: IA32_APIC_BASE exists when CPUID reports an APIC.
    let base_msr = unsafe { super::rdmsr(IA32_APIC_BASE) };
    if base_msr & (1 << 11) == 0 || base_msr & (1 << 10) != 0 {
        // Disabled, or in x2APIC mode: not worth supporting here.
        return false;
    }
    let base = base_msr & 0xf_ffff_f000;
    if base >= super::IDENTITY_MAP_END {
        return false;
    }
    super::uncache_2m(base);
    // SAFETY: `base` is the APIC's MMIO page, identity-mapped uncached;
    // these are its documented registers.
    unsafe {
        write(base, SVR, 0x100 | SPURIOUS_VECTOR as u32);
        write(base, LVT_TIMER, (0b10 << 17) | TIMER_VECTOR as u32);
    }
    APIC_EOI_ADDRESS.store(base + EOI, Ordering::Release);
    true
}

/// Writes an APIC register.
///
/// # Safety
/// `base` must be the local APIC's MMIO base, mapped uncached.
unsafe fn write(base: u64, reg: u64, value: u32) {
    // SAFETY: the caller guarantees the mapping.
    unsafe { core::ptr::write_volatile((base + reg) as *mut u32, value) }
}

/// Halts until the TSC reaches `deadline`, with interrupts enabled only
/// for the HLT. Returns false (without waiting) if there is no APIC timer.
pub fn halt_until(deadline: u64) -> bool {
    if APIC_EOI_ADDRESS.load(Ordering::Acquire) == 0 {
        return false;
    }
    while super::rdtsc() < deadline {
        // SAFETY: arming the deadline timer; the MSR exists (checked at
        // init). STI;HLT is atomic (the STI shadow), so the interrupt cannot
        // fire between them and be missed.
        unsafe {
            super::wrmsr(IA32_TSC_DEADLINE, deadline);
            core::arch::asm!("sti", "hlt", "cli", options(nomem, nostack));
        }
    }
    // SAFETY: disarms the timer so no interrupt is left pending while a
    // guest runs.
    unsafe { super::wrmsr(IA32_TSC_DEADLINE, 0) };
    true
}

// The timer stub acknowledges the interrupt and returns; HLT then returns.
core::arch::global_asm!(
    r#"
    .section .text
    .global apic_timer_stub
apic_timer_stub:
    push rax
    mov rax, qword ptr [rip + APIC_EOI_ADDRESS]
    mov dword ptr [rax], 0
    pop rax
    iretq
    .global apic_spurious_stub
apic_spurious_stub:
    iretq
"#
);
