//! The ring's only CPU-specific code: a cache prefetch hint.
//!
//! A prefetch is not a memory access in the language's sense: it never
//! faults, has no architectural effect and cannot race with the peer's
//! writes; it only asks the CPU to start moving a cache line towards this
//! core early. It pays where the producer runs on another core (host
//! threads). Bulkhead's domains run one at a time on the core's one CPU,
//! where the lines are already local, so bare-metal builds leave it out:
//! there the test and the address arithmetic around it cost the virtual
//! UART's round trip 33 emulated instructions for nothing
//! (docs/BENCHMARKS.md). Other architectures and loom get nothing either.

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
