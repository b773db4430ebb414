//! The first Bulkhead guest: a tiny 64-bit program that exercises the core's
//! exit handlers for real. The core enters it at its load address in 64-bit
//! mode with identity paging, interrupts off, and a scenario number in RDI:
//!
//! - 0 `first`: checks the hypervisor signature from CPUID leaf
//!   0x4000_0000, prints a message through the `LOG_WRITE` hypercall, then
//!   writes to a guest-physical page the core never mapped (8 MiB), which
//!   must end in an EPT violation that stops this guest;
//! - 1 `portio`: prints a line by writing COM1's transmit register (port
//!   0x3F8), polling the line status register like a real driver, then exits;
//! - 2 `spin`: loops forever, so only the VMX-preemption timer returns the
//!   CPU to the core;
//! - 3 `bench`: times 100,000 null hypercalls with RDTSC and prints the
//!   average round trip.
//!
//! It owns nothing but its own memory and must never assume the core answers
//! correctly: it checks what it is told and reports mismatches.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the first guest runs under the Bulkhead core; see `cargo xtask run`");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
mod arch;

#[cfg(target_os = "none")]
mod guest {
    use core::fmt::{self, Write as _};

    use hypercall_abi::{Call, Status, CPUID_SIGNATURE_LEAF, SIGNATURE};

    use crate::arch;

    /// Guest-physical address the core never maps.
    const UNMAPPED: u64 = 0x80_0000;
    /// Null hypercalls timed by the benchmark.
    const BENCH_CALLS: u64 = 100_000;

    /// A line being formatted for `LOG_WRITE`.
    struct Line {
        bytes: [u8; 200],
        len: usize,
    }

    impl fmt::Write for Line {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let room = self.bytes.len() - self.len;
            let n = s.len().min(room);
            self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
            self.len += n;
            Ok(())
        }
    }

    fn log(args: fmt::Arguments<'_>) -> u64 {
        let mut line = Line {
            bytes: [0; 200],
            len: 0,
        };
        let _ = line.write_fmt(args);
        // Identity paging: the virtual address is the guest-physical one.
        let (status, _) = arch::vmcall(
            Call::LogWrite as u64,
            line.bytes.as_ptr() as u64,
            line.len as u64,
        );
        status
    }

    macro_rules! log {
        ($($t:tt)*) => { log(format_args!($($t)*)) };
    }

    fn exit(code: u64) -> ! {
        arch::vmcall(Call::Exit as u64, code, 0);
        // The core never resumes a guest after EXIT; if it did, stop here.
        loop {
            arch::halt();
        }
    }

    #[unsafe(no_mangle)]
    extern "C" fn guest_main(scenario: u64) -> ! {
        match scenario {
            0 => first(),
            1 => port_io(),
            2 => spin(),
            3 => bench(),
            other => {
                log!("unknown scenario {other}");
                exit(2)
            }
        }
    }

    fn first() -> ! {
        let [max, b, c, d] = arch::cpuid(CPUID_SIGNATURE_LEAF);
        let mut seen = [0u8; 12];
        seen[..4].copy_from_slice(&b.to_le_bytes());
        seen[4..8].copy_from_slice(&c.to_le_bytes());
        seen[8..].copy_from_slice(&d.to_le_bytes());
        let text = core::str::from_utf8(&seen).unwrap_or("(not UTF-8)");
        if seen != SIGNATURE {
            log!("CPUID {CPUID_SIGNATURE_LEAF:#x}: unexpected hypervisor signature {text:?}");
            exit(1);
        }
        log!(
            "CPUID {CPUID_SIGNATURE_LEAF:#x}: hypervisor signature \"{text}\" (max leaf {max:#x})"
        );
        let status = log!("hello from the first guest through the LOG_WRITE hypercall");
        if status != Status::Ok.raw() {
            exit(1);
        }
        // A hypercall the core does not know must be refused, not crash it.
        let (status, _) = arch::vmcall(0xbad, 0, 0);
        log!(
            "unknown hypercall answered with status {status} ({})",
            Status::from_raw(status).map_or("?", Status::description)
        );
        log!("writing to unmapped guest-physical address {UNMAPPED:#x}");
        arch::write_u64(UNMAPPED, 0x1bad_c0de);
        log!("the write to {UNMAPPED:#x} did not fault");
        exit(3)
    }

    fn port_io() -> ! {
        for &byte in b"hello from the guest over port 0x3f8\n" {
            // Wait for the transmit holding register to be empty (LSR bit 5).
            while arch::inb(0x3fd) & 0x20 == 0 {}
            arch::outb(0x3f8, byte);
        }
        exit(0)
    }

    fn spin() -> ! {
        log!("spinning with no exits; only the preemption timer can stop me");
        loop {
            core::hint::spin_loop();
        }
    }

    fn bench() -> ! {
        // Warm up, then time the calls.
        for _ in 0..1000 {
            arch::vmcall(Call::Null as u64, 0, 0);
        }
        let start = arch::rdtsc();
        for _ in 0..BENCH_CALLS {
            arch::vmcall(Call::Null as u64, 0, 0);
        }
        let ticks = arch::rdtsc().wrapping_sub(start);
        log!(
            "bench: null hypercall round trip: {} TSC ticks per call ({} calls, {} ticks in all)",
            ticks / BENCH_CALLS,
            BENCH_CALLS,
            ticks
        );
        exit(0)
    }

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
        log!("first guest panicked");
        exit(255)
    }
}
