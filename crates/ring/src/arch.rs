//! The ring's only CPU-specific code: two cache hints.
//!
//! Neither is a memory access in the language's sense: they never fault,
//! have no architectural effect and cannot race with the peer's writes;
//! they only move cache lines. They pay where producer and consumer run on
//! different cores (host threads). Bulkhead's domains run one at a time on
//! the core's one CPU, where the lines are already local, so bare-metal
//! builds leave both out: there the test and the address arithmetic around
//! the prefetch cost the virtual UART's round trip 33 emulated
//! instructions for nothing (docs/BENCHMARKS.md). Other architectures and
//! loom get nothing either.

/// Whether [`prefetch_read`] and [`demote`] do anything in this build
/// (callers skip the address arithmetic when they do not).
pub(crate) const HINTS: bool = cfg!(all(target_arch = "x86_64", not(target_os = "none")));

/// Asks for the cache line holding `addr` to be brought into this core's
/// caches for reading.
#[inline(always)]
pub(crate) fn prefetch_read(addr: *const u8) {
    #[cfg(all(target_arch = "x86_64", not(target_os = "none")))]
    // SAFETY: PREFETCHT0 is a hint: it never faults, whatever the address,
    // and changes no register or memory contents.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(addr.cast())
    };
    #[cfg(not(all(target_arch = "x86_64", not(target_os = "none"))))]
    let _ = addr;
}

/// Asks for the cache line holding `addr` to be moved out of this core's
/// private caches into the shared last-level cache (CLDEMOTE), where the
/// other core finds it without a snoop of ours. CLDEMOTE is encoded in the
/// space x86 reserves for hint NOPs (`0F 1C /0`), so a CPU without it
/// executes it as a NOP; no feature test is needed.
#[inline(always)]
pub(crate) fn demote(addr: *const u8) {
    #[cfg(all(target_arch = "x86_64", not(target_os = "none")))]
    // SAFETY: CLDEMOTE is a hint: it never faults, whatever the address,
    // changes no register, flag or memory contents and touches no stack.
    unsafe {
        core::arch::asm!(
            "cldemote byte ptr [{}]",
            in(reg) addr,
            options(nostack, preserves_flags, readonly)
        )
    };
    #[cfg(not(all(target_arch = "x86_64", not(target_os = "none"))))]
    let _ = addr;
}
