//! The CPUID policy: what a guest sees is the host's CPU filtered down to
//! what the core virtualises, the same for every domain.
//!
//! - Kept: the vendor, family/model/stepping, the cache descriptors (as a
//!   single core), the instruction-set extensions that need nothing from
//!   the core (SSE up to 4.2, AES, POPCNT, BMI, RDRAND, ...), long mode,
//!   NX, 1 GiB pages, SYSCALL.
//! - Hidden: VMX and SMX, the local APIC and x2APIC (a guest gets the
//!   8259 PIC and the 8254 PIT, no APIC), MTRRs, machine checks, thermal
//!   and power management (leaf 6: no APERF/MPERF), the performance
//!   monitor (leaf 0xA), debug stores, MONITOR/MWAIT, XSAVE and AVX (the
//!   core does not switch their state yet), PCID and INVPCID, RDTSCP,
//!   TSX, and every speculation-control bit of leaf 7.
//! - Added: the hypervisor bit (leaf 1 ECX 31), Bulkhead's signature leaf
//!   (0x4000_0000), an invariant TSC (0x8000_0007), and, when the core
//!   measured it, the TSC frequency (leaves 0x15 and 0x16), so that Linux
//!   need not calibrate it against a timer.

use hypercall_abi::{CPUID_MAX_LEAF, CPUID_SIGNATURE_LEAF};

/// Highest basic leaf a guest sees.
pub const MAX_BASIC: u32 = 0x16;
/// Highest extended leaf a guest sees.
pub const MAX_EXTENDED: u32 = 0x8000_0008;

const fn bits(list: &[u32]) -> u32 {
    let mut v = 0;
    let mut i = 0;
    while i < list.len() {
        v |= 1 << list[i];
        i += 1;
    }
    v
}

/// Leaf 1 EDX kept: FPU, VME, DE, PSE, TSC, MSR, PAE, CX8, SEP, PGE, CMOV,
/// PAT, PSE36, CLFSH, MMX, FXSR, SSE, SSE2.
pub const LEAF1_EDX: u32 = bits(&[
    0, 1, 2, 3, 4, 5, 6, 8, 11, 13, 15, 16, 17, 19, 23, 24, 25, 26,
]);
/// Leaf 1 ECX kept: SSE3, PCLMULQDQ, SSSE3, CX16, SSE4.1, SSE4.2, MOVBE,
/// POPCNT, AES, RDRAND.
pub const LEAF1_ECX: u32 = bits(&[0, 1, 9, 13, 19, 20, 22, 23, 25, 30]);
/// Leaf 1 ECX bit 31: running under a hypervisor.
pub const HYPERVISOR: u32 = 1 << 31;
/// Leaf 7 EBX kept: BMI1, SMEP, BMI2, ERMS, RDSEED, ADX, SMAP.
pub const LEAF7_EBX: u32 = bits(&[3, 7, 8, 9, 18, 19, 20]);
/// Leaf 0x8000_0001 ECX kept: LAHF/SAHF in long mode, LZCNT, PREFETCHW.
pub const EXT1_ECX: u32 = bits(&[0, 5, 8]);
/// Leaf 0x8000_0001 EDX kept: SYSCALL, NX, 1 GiB pages, long mode.
pub const EXT1_EDX: u32 = bits(&[11, 20, 26, 29]);
/// Leaf 0x8000_0007 EDX bit 8: the TSC is invariant.
pub const INVARIANT_TSC: u32 = 1 << 8;

/// What a guest's `CPUID` with `leaf` and `subleaf` returns, given what
/// the host returns for the same (`host`) and the TSC frequency in Hz the
/// core measured (`None`: unknown, leaves 0x15 and 0x16 read 0).
pub fn policy(leaf: u32, subleaf: u32, host: [u32; 4], tsc_hz: Option<u64>) -> [u32; 4] {
    let [a, b, c, d] = host;
    match leaf {
        // Always 0x16, even when the host stops lower: leaves 0x15 and
        // 0x16 are the policy's own (Linux reads the TSC frequency there
        // only if leaf 0 says they exist).
        0 => [MAX_BASIC, b, c, d],
        // EBX: keep the CLFLUSH line size and brand index; one logical
        // processor, APIC ID 0.
        1 => [a, b & 0xffff, (c & LEAF1_ECX) | HYPERVISOR, d & LEAF1_EDX],
        2 => host,
        // Deterministic cache parameters, for a single core and thread.
        4 => [a & 0x3fff, b, c, d],
        7 if subleaf == 0 => [0, b & LEAF7_EBX, 0, 0],
        0x15 => match tsc_hz.and_then(|hz| u32::try_from(hz).ok()) {
            // TSC = crystal * EBX / EAX, crystal in ECX (Hz).
            Some(hz) if hz > 0 => [1, 1, hz, 0],
            _ => [0; 4],
        },
        0x16 => match tsc_hz {
            Some(hz) if hz >= 1_000_000 => {
                let mhz = (hz / 1_000_000).min(0xffff) as u32;
                [mhz, mhz, 0, 0]
            }
            _ => [0; 4],
        },
        CPUID_SIGNATURE_LEAF => {
            let (b, c, d) = hypercall_abi::signature_registers();
            [CPUID_MAX_LEAF, b, c, d]
        }
        0x8000_0000 => [a.min(MAX_EXTENDED), b, c, d],
        0x8000_0001 => [a, b, c & EXT1_ECX, d & EXT1_EDX],
        // The brand string and the L2 cache descriptor.
        0x8000_0002..=0x8000_0004 | 0x8000_0006 => host,
        0x8000_0007 => [0, 0, 0, INVARIANT_TSC],
        // Address sizes only.
        0x8000_0008 => [a & 0xffff, 0, 0, 0],
        // Thermal and power (6), the PMU (0xA), topology (0xB, 0x1F),
        // XSAVE (0xD) and everything else.
        _ => [0; 4],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Haswell as Bochs models it (leaf 1, 7, 0x8000_0001).
    const L1: [u32; 4] = [0x0003_06c3, 0x0102_0800, 0x7ffa_fbff, 0xbfeb_fbff];
    const L7: [u32; 4] = [0, 0x0000_27ab, 0, 0x9c00_0400];
    const E1: [u32; 4] = [0, 0, 0x0000_0121, 0x2c10_0800];

    #[test]
    fn leaf_1_hides_what_the_core_does_not_virtualise() {
        let [a, b, c, d] = policy(1, 0, L1, None);
        assert_eq!(a, L1[0]);
        assert_eq!(b >> 16, 0, "one logical processor, APIC ID 0");
        assert_eq!(b & 0xff00, 0x0800, "CLFLUSH line size kept");
        for (bit, what) in [
            (5, "VMX"),
            (6, "SMX"),
            (21, "x2APIC"),
            (24, "TSC deadline"),
            (26, "XSAVE"),
            (27, "OSXSAVE"),
            (28, "AVX"),
            (3, "MONITOR"),
        ] {
            assert_eq!(c & (1 << bit), 0, "{what}");
        }
        assert_ne!(c & HYPERVISOR, 0);
        assert_ne!(c & (1 << 20), 0, "SSE4.2 kept");
        for (bit, what) in [
            (9, "APIC"),
            (12, "MTRR"),
            (7, "MCE"),
            (14, "MCA"),
            (22, "ACPI"),
            (28, "HTT"),
            (29, "TM"),
        ] {
            assert_eq!(d & (1 << bit), 0, "{what}");
        }
        for (bit, what) in [
            (0, "FPU"),
            (4, "TSC"),
            (6, "PAE"),
            (24, "FXSR"),
            (25, "SSE"),
            (26, "SSE2"),
        ] {
            assert_ne!(d & (1 << bit), 0, "{what}");
        }
    }

    #[test]
    fn leaf_7_and_the_extended_leaves() {
        let [a, b, c, d] = policy(7, 0, L7, None);
        assert_eq!((a, c, d), (0, 0, 0), "no subleaves, no ECX/EDX features");
        assert_eq!(b & (1 << 5), 0, "AVX2");
        assert_eq!(b & (1 << 10), 0, "INVPCID");
        assert_eq!(b & (1 << 11), 0, "RTM");
        assert_ne!(b & (1 << 3), 0, "BMI1 kept");
        assert_eq!(policy(7, 1, L7, None), [0; 4]);
        let [_, _, c, d] = policy(0x8000_0001, 0, E1, None);
        assert_eq!(c, 0x121);
        assert_eq!(d & (1 << 27), 0, "RDTSCP");
        for bit in [11, 20, 29] {
            assert_ne!(d & (1 << bit), 0, "bit {bit}");
        }
        assert_eq!(
            policy(0x8000_0007, 0, [1, 2, 3, 0xffff], None),
            [0, 0, 0, INVARIANT_TSC]
        );
        assert_eq!(
            policy(0x8000_0000, 0, [0x8000_0020, 1, 2, 3], None)[0],
            MAX_EXTENDED
        );
        assert_eq!(policy(0, 0, [0x20, 1, 2, 3], None), [MAX_BASIC, 1, 2, 3]);
        assert_eq!(
            policy(0, 0, [0xd, 1, 2, 3], None)[0],
            MAX_BASIC,
            "0x15 exists"
        );
    }

    #[test]
    fn power_pmu_topology_and_xsave_leaves_are_empty() {
        for leaf in [6, 0xa, 0xb, 0xd, 0x1f, 0x12, 0x8000_0009, 0x4000_0001] {
            assert_eq!(policy(leaf, 0, [7; 4], None), [0; 4], "leaf {leaf:#x}");
        }
    }

    #[test]
    fn the_tsc_frequency_is_given_when_known() {
        assert_eq!(policy(0x15, 0, [9; 4], None), [0; 4]);
        assert_eq!(
            policy(0x15, 0, [9; 4], Some(50_000_000)),
            [1, 1, 50_000_000, 0]
        );
        assert_eq!(policy(0x16, 0, [9; 4], Some(50_000_000)), [50, 50, 0, 0]);
        // Too fast for the crystal field: left out rather than wrong.
        assert_eq!(policy(0x15, 0, [9; 4], Some(5_000_000_000)), [0; 4]);
        assert_eq!(policy(0x16, 0, [9; 4], Some(999)), [0; 4]);
    }

    #[test]
    fn the_signature_leaf_names_bulkhead() {
        let [a, b, c, d] = policy(CPUID_SIGNATURE_LEAF, 0, [0; 4], None);
        assert_eq!(a, CPUID_MAX_LEAF);
        assert_eq!((b, c, d), hypercall_abi::signature_registers());
    }
}
