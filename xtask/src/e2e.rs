//! The end-to-end tests: each boots its own image under Bochs (or QEMU) and
//! judges the console with [`crate::harness`].

use std::time::{Duration, Instant};

use crate::emulator::{self, Emulator};
use crate::harness::{self, default_forbidden, Exit, Spec};
use crate::{image, step, Result};

fn s(items: &[&str]) -> Vec<String> {
    items.iter().map(|x| x.to_string()).collect()
}

fn forbid(extra: &[&str]) -> Vec<String> {
    let mut f = default_forbidden();
    f.extend(s(extra));
    f
}

/// The Bochs tests.
pub fn specs() -> Vec<Spec> {
    let timeout = Duration::from_secs(120);
    vec![
        Spec {
            name: "boot",
            cmdline: "run=",
            expect: s(&[
                "bulkhead: Bulkhead core",
                "bulkhead: command line: \"run=\"",
                "bulkhead: memory map (",
                "Available",
                "bulkhead: module 0: ",
                "\"first\"",
                "bulkhead: 1 boot module(s)",
                "bulkhead: frame allocator: ",
                // Bochs reports VMX revision 0x2b in IA32_VMX_BASIC.
                "bulkhead: VMX enabled: revision id 0x2b (IA32_VMX_BASIC 0x",
                "bulkhead: all guests have stopped; the core is still running",
                "bulkhead: shutdown status=0",
            ]),
            forbid: forbid(&["guest first"]),
            exit: Exit::Success,
            timeout,
        },
        Spec {
            name: "first-guest",
            cmdline: "run=first",
            expect: s(&[
                "bulkhead: VMX enabled",
                "bulkhead: guest first: starting scenario first",
                "[first] CPUID 0x40000000: hypervisor signature \"BulkheadCore\"",
                "[first] hello from the first guest through the LOG_WRITE hypercall",
                "[first] unknown hypercall answered with status 1 (unknown hypercall)",
                "[first] writing to unmapped guest-physical address 0x800000",
                "bulkhead: guest first: stopped: EPT violation at guest-physical address 0x800000 (write access",
                "bulkhead: all guests have stopped; the core is still running",
                "bulkhead: shutdown status=0",
            ]),
            forbid: forbid(&["did not fault", "unexpected hypervisor signature"]),
            exit: Exit::Success,
            timeout,
        },
        Spec {
            name: "port-io",
            cmdline: "run=portio",
            expect: s(&[
                "bulkhead: guest first: starting scenario portio",
                "[first:com1] hello from the guest over port 0x3f8",
                "bulkhead: guest first: stopped: exited with code 0",
                "bulkhead: all guests have stopped; the core is still running",
                "bulkhead: shutdown status=0",
            ]),
            forbid: default_forbidden(),
            exit: Exit::Success,
            timeout,
        },
        Spec {
            name: "preemption-timer",
            cmdline: "run=spin budget=8 slice=65536",
            expect: s(&[
                "bulkhead: guest first: starting scenario spin",
                "[first] spinning with no exits",
                "bulkhead: guest first: stopped: preempted 8 times by the VMX-preemption timer, budget exhausted",
                "bulkhead: all guests have stopped; the core is still running",
                "bulkhead: shutdown status=0",
            ]),
            forbid: default_forbidden(),
            exit: Exit::Success,
            timeout,
        },
        Spec {
            name: "core-fault",
            cmdline: "run= selftest=fault",
            expect: s(&[
                "bulkhead: selftest: reading unmapped address 0x4000000000 in root mode",
                "bulkhead: error: CPU exception 14 (page fault) in the core: error code 0x0, RIP 0x",
                "CR2 0x4000000000",
                "bulkhead: shutdown status=3",
            ]),
            forbid: s(&["VMX enabled", "panic"]),
            // Bochs exits 1 when the core writes `Shutdown` to port 0x8900.
            exit: Exit::Status(1),
            timeout,
        },
    ]
}

/// The QEMU (no VMX under TCG) test.
pub fn qemu_spec() -> Spec {
    Spec {
        name: "qemu-no-vmx",
        cmdline: "run=first",
        expect: s(&[
            "bulkhead: Bulkhead core",
            "bulkhead: memory map (",
            "bulkhead: error: VMX is not available on this CPU",
            "bulkhead: shutdown status=2",
        ]),
        forbid: s(&["panic", "CPU exception"]),
        // isa-debug-exit: (2 << 1) | 1.
        exit: Exit::Status(5),
        timeout: Duration::from_secs(120),
    }
}

/// The benchmark run, judged like a test.
pub fn bench_spec() -> Spec {
    Spec {
        name: "bench",
        cmdline: "run=bench",
        expect: s(&[
            "[first] bench: null hypercall round trip: ",
            "bulkhead: guest first: stopped: exited with code 0",
            "bulkhead: shutdown status=0",
        ]),
        forbid: default_forbidden(),
        exit: Exit::Success,
        timeout: Duration::from_secs(300),
    }
}

/// The per-call figure from the benchmark line.
pub fn parse_bench(console: &str) -> Option<u64> {
    console.lines().find_map(|l| {
        let rest = l.split_once("bench: null hypercall round trip: ")?.1;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Runs every end-to-end test (matching `filter`); returns how many failed.
pub fn run_all(filter: Option<&str>) -> Result<usize> {
    let bins = image::build_binaries()?;
    let mut tests: Vec<(Spec, Emulator)> =
        specs().into_iter().map(|s| (s, Emulator::Bochs)).collect();
    tests.push((qemu_spec(), Emulator::Qemu));
    tests.retain(|(s, _)| filter.is_none_or(|f| s.name.contains(f)));
    if tests.is_empty() {
        return Err(format!("no end-to-end test matches {filter:?}").into());
    }
    let mut failed = 0;
    let total = tests.len();
    for (i, (spec, emulator)) in tests.into_iter().enumerate() {
        step(&format!(
            "e2e {}/{total} {} under {emulator:?} (command line {:?})",
            i + 1,
            spec.name,
            spec.cmdline
        ));
        let started = Instant::now();
        let iso = image::make_iso(&bins, &format!("e2e-{}", spec.name), spec.cmdline)?;
        let run = emulator::run(
            &iso,
            &emulator::Options {
                emulator,
                kvm: false,
                timeout: spec.timeout,
                live: false,
            },
        )?;
        match harness::judge(&spec, &run) {
            Ok(()) => {
                step(&format!(
                    "e2e {} passed ({:.1} s)",
                    spec.name,
                    started.elapsed().as_secs_f64()
                ));
                let _ = std::fs::remove_dir_all(&run.scratch);
            }
            Err(failure) => {
                failed += 1;
                eprintln!(
                    "xtask: e2e {} FAILED: {failure}xtask: emulator files kept in {}",
                    spec.name,
                    run.scratch.display()
                );
            }
        }
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_line_parses() {
        let c =
            "x\n[first] bench: null hypercall round trip: 142 TSC ticks per call (100000 calls)\n";
        assert_eq!(parse_bench(c), Some(142));
        assert_eq!(parse_bench("nothing"), None);
    }

    #[test]
    fn test_names_are_unique() {
        let mut names: Vec<_> = specs().iter().map(|s| s.name).collect();
        names.push(qemu_spec().name);
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}
