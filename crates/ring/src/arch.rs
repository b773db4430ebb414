//! The ring's only CPU-specific code: two cache hints, the CPUID question
//! behind one of them, and a 16-byte load.
//!
//! The hints are not memory accesses in the language's sense: they never
//! fault, have no architectural effect and cannot race with the peer's
//! writes; they only move cache lines. They pay where producer and
//! consumer run on different cores (host threads). Bulkhead's domains run
//! one at a time on the core's one CPU, where the lines are already local,
//! so bare-metal builds leave them out: there the test and the address
//! arithmetic around the prefetch cost the virtual UART's round trip 33
//! emulated instructions for nothing (docs/BENCHMARKS.md). The wide load
//! saves a host consumer 44–56 instructions per 64-byte payload (counted
//! with valgrind, docs/BENCHMARKS.md); bare-metal builds (no SSE
//! registers in the kernel's target) keep their word loads, and their
//! text does not change. Other architectures and loom get none of it.

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

/// Whether this CPU has CLDEMOTE (CPUID leaf 7, ECX bit 25), asked once
/// and remembered: on one without it [`demote`] is a NOP, and callers
/// skip the loops around it (AMD processors, for one, have none).
#[inline(always)]
pub(crate) fn can_demote() -> bool {
    #[cfg(all(target_arch = "x86_64", not(target_os = "none")))]
    {
        use core::sync::atomic::{AtomicU8, Ordering};
        // 0: not asked yet, 1: no, 2: yes.
        static CLDEMOTE: AtomicU8 = AtomicU8::new(0);
        #[cold]
        fn ask() -> bool {
            use core::arch::x86_64::{__cpuid_count, __get_cpuid_max};
            // SAFETY: CPUID is available on every x86-64 CPU and reads
            // only identification registers (newer toolchains declare
            // these functions safe, older ones unsafe).
            #[allow(unused_unsafe)]
            let has =
                unsafe { __get_cpuid_max(0).0 >= 7 && __cpuid_count(7, 0).ecx & 1 << 25 != 0 };
            CLDEMOTE.store(if has { 2 } else { 1 }, Ordering::Relaxed);
            has
        }
        match CLDEMOTE.load(Ordering::Relaxed) {
            0 => ask(),
            v => v == 2,
        }
    }
    #[cfg(not(all(target_arch = "x86_64", not(target_os = "none"))))]
    false
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

/// Whether [`load16`] is one instruction in this build (host x86-64);
/// elsewhere it is sixteen byte loads and callers use word loads instead.
pub(crate) const WIDE_LOADS: bool = HINTS;

/// The 16 bytes of `cells`, read with one unaligned 16-byte load
/// (`MOVDQU`) on host x86-64 builds. Its effect is that of sixteen
/// relaxed byte loads, which is all the bytes promise: a peer writing
/// them at the same time can leave a mix of old and new bytes, never
/// undefined behaviour (an inline-assembly load is not a Rust access, so
/// it cannot race in the language's sense). Other builds load the bytes
/// one by one.
#[inline(always)]
pub(crate) fn load16(cells: &[core::sync::atomic::AtomicU8; 16]) -> [u8; 16] {
    #[cfg(all(target_arch = "x86_64", not(target_os = "none")))]
    {
        let v: core::arch::x86_64::__m128i;
        // SAFETY: the sixteen bytes at the address are readable for the
        // borrow's lifetime (`cells`); MOVDQU needs no alignment, writes
        // only the output register and touches neither the stack nor
        // the flags. Host x86-64 always has SSE2. `__m128i` is sixteen
        // plain bytes, so reading it as `[u8; 16]` is sound.
        unsafe {
            core::arch::asm!(
                "movdqu {v}, xmmword ptr [{p}]",
                p = in(reg) cells.as_ptr(),
                v = out(xmm_reg) v,
                options(nostack, preserves_flags, readonly)
            );
            core::mem::transmute::<core::arch::x86_64::__m128i, [u8; 16]>(v)
        }
    }
    #[cfg(not(all(target_arch = "x86_64", not(target_os = "none"))))]
    core::array::from_fn(|i| cells[i].load(core::sync::atomic::Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    /// The answer CPUID gives agrees with the kernel's list of the CPU's
    /// features, asked twice (the second answer is the remembered one).
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn cldemote_is_found_where_the_kernel_lists_it() {
        let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
            return;
        };
        let listed = info
            .lines()
            .find(|l| l.starts_with("flags"))
            .is_some_and(|l| l.split_whitespace().any(|f| f == "cldemote"));
        assert_eq!(super::can_demote(), listed);
        assert_eq!(super::can_demote(), listed);
    }

    #[test]
    fn a_wide_load_reads_the_sixteen_bytes() {
        use core::sync::atomic::AtomicU8;
        let cells: [AtomicU8; 17] = core::array::from_fn(|i| AtomicU8::new(i as u8 * 3));
        let run: &[AtomicU8; 16] = cells[1..].try_into().unwrap();
        let want: [u8; 16] = core::array::from_fn(|i| (i as u8 + 1) * 3);
        assert_eq!(super::load16(run), want);
    }
}
