//! The Bulkhead core: the one binary that runs in VMX root mode.
//!
//! It owns the machine's boot (Multiboot2 from GRUB, long mode, its own
//! GDT/TSS/IDT), physical memory (a frame allocator over the boot memory map
//! that never hands out the core, the boot information or the modules), VMX
//! root operation, and the guests' EPT and VMCS. Guests reach it only through
//! VM exits, which the `vcpu` crate decodes and handles.
//!
//! It must never trust a guest or panic because of one: every guest value is
//! checked, a misbehaving guest is stopped and reported, and an exception in
//! the core itself prints the vector, error code and RIP and stops the
//! machine with a failing status. Everything here that touches hardware
//! lives in the `arch` module; `cmdline` and `frames` are pure logic and
//! unit-test on the host, where the binary itself is only a stub.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg_attr(not(target_os = "none"), allow(dead_code))]
mod cmdline;
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
mod corelog;
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
mod frames;
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
mod system;

/// Ends a `quiet` boot's silence (the domains are about to run): the
/// logger's level goes back to informational lines. A `quiet` boot lowers
/// it to warnings while the boot report is made.
#[cfg(target_os = "none")]
fn boot_report_done() {
    log::set_max_level(log::LevelFilter::Info);
}

#[cfg(target_os = "none")]
mod arch;
#[cfg(target_os = "none")]
mod domains;
#[cfg(target_os = "none")]
mod vmm;

/// On the host the core is only a placeholder: it runs on bare metal.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "the Bulkhead core runs on bare metal (x86_64-unknown-none); \
         build it with `cargo xtask build` and boot it with `cargo xtask run`"
    );
    std::process::exit(2);
}

#[cfg(target_os = "none")]
mod core_main {
    use multiboot2::{BootInformation, BootInformationHeader, MemoryAreaType};

    use crate::arch::{self, Status};
    use crate::cmdline::{self, Problem};
    use crate::frames::{Frames, Range};
    use crate::{domains, vmm};

    const MULTIBOOT2_MAGIC: u32 = 0x36d7_6289;
    const MIB: u64 = 1 << 20;

    struct Logger;

    impl log::Log for Logger {
        fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
            metadata.level() <= log::Level::Info
        }

        fn log(&self, record: &log::Record<'_>) {
            if !self.enabled(record.metadata()) {
                return;
            }
            let level = match record.level() {
                log::Level::Error => "error: ",
                log::Level::Warn => "warning: ",
                _ => "",
            };
            domains::console_line(format_args!("bulkhead: {level}{}", record.args()));
        }

        fn flush(&self) {}
    }

    static LOGGER: Logger = Logger;

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        // What the UART service had not printed yet first, then the panic,
        // straight to the port.
        domains::console_stop();
        log::error!("panic in the core: {info}");
        arch::shutdown(Status::CoreFault)
    }

    /// Entered from the boot code in long mode with the Multiboot2 magic and
    /// the physical address of the boot information.
    #[unsafe(no_mangle)]
    extern "C" fn kernel_main(magic: u32, mbi: u32) -> ! {
        arch::serial::init();
        let _ = log::set_logger(&LOGGER);
        log::set_max_level(log::LevelFilter::Info);
        log::info!("Bulkhead core {} starting", env!("CARGO_PKG_VERSION"));
        let selectors = arch::cpu::init();
        arch::mask_pic();
        match arch::calibrate_tsc() {
            Some(hz) => log::info!("TSC: {} kHz (measured against the PIT)", hz / 1000),
            None => log::info!("TSC: frequency unknown (the PIT did not count)"),
        }
        if arch::apic::init() {
            log::info!("local APIC TSC-deadline timer: the core halts when nothing can run");
        } else {
            log::info!("no local APIC TSC-deadline timer: the core spins when nothing can run");
        }

        if magic != MULTIBOOT2_MAGIC {
            log::error!("not booted by a Multiboot2 loader (magic {magic:#x})");
            arch::shutdown(Status::BadBoot);
        }
        // SAFETY: the magic says `mbi` is the Multiboot2 information GRUB
        // built; it stays in memory the frame allocator never hands out.
        let boot = match unsafe { BootInformation::load(mbi as *const BootInformationHeader) } {
            Ok(boot) => boot,
            Err(e) => {
                log::error!("unusable Multiboot2 information at {mbi:#x}: {e:?}");
                arch::shutdown(Status::BadBoot);
            }
        };

        let line = boot
            .command_line_tag()
            .and_then(|t| t.cmdline().ok())
            .unwrap_or("");
        log::info!("command line: {line:?}");
        let options = cmdline::parse(line, |problem| match problem {
            Problem::UnknownKey(k) => log::warn!("command line: unknown key {k:?} ignored"),
            Problem::BadValue(k, v) => {
                log::warn!("command line: bad value {v:?} for {k:?} ignored")
            }
            Problem::TooManyRuns => log::warn!(
                "command line: more than {} runs; the rest are ignored",
                cmdline::MAX_RUNS
            ),
        });
        if options.quiet {
            log::set_max_level(log::LevelFilter::Warn);
        }

        let Some(map) = boot.memory_map_tag() else {
            log::error!("the boot loader gave no memory map");
            arch::shutdown(Status::BadBoot);
        };
        log::info!("memory map ({} entries):", map.memory_areas().len());
        for area in map.memory_areas() {
            log::info!(
                "  {:#012x}-{:#012x} {:>10} KiB {:?}",
                area.start_address(),
                area.end_address(),
                area.size() / 1024,
                area.typ()
            );
        }

        let mut reserved = [Range { start: 0, end: 0 }; 34];
        let (kernel_start, kernel_end) = arch::kernel_image();
        reserved[0] = Range {
            start: kernel_start,
            end: kernel_end,
        };
        reserved[1] = Range {
            start: boot.start_address() as u64,
            end: boot.end_address() as u64,
        };
        let mut n_reserved = 2;
        let mut modules = 0;
        for (i, m) in boot.module_tags().enumerate() {
            let (start, end) = (m.start_address() as u64, m.end_address() as u64);
            log::info!(
                "module {i}: {start:#x}-{end:#x} {:?} ({} bytes)",
                m.cmdline().unwrap_or("?"),
                end.saturating_sub(start)
            );
            modules += 1;
            if n_reserved < reserved.len() {
                reserved[n_reserved] = Range { start, end };
                n_reserved += 1;
            } else {
                log::error!("too many boot modules (at most {})", reserved.len() - 2);
                arch::shutdown(Status::BadBoot);
            }
        }
        log::info!("{modules} boot module(s)");
        log::info!(
            "core image {kernel_start:#x}-{kernel_end:#x}, boot information {:#x}-{:#x}",
            boot.start_address(),
            boot.end_address()
        );

        let available = map
            .memory_areas()
            .iter()
            .filter(|a| a.typ() == MemoryAreaType::Available)
            .map(|a| Range {
                start: a.start_address(),
                end: a.end_address(),
            });
        // The bitmap is large (128 KiB): it lives in a static, not on the
        // boot stack, and is only ever used from this one thread.
        static FRAMES: spin::Mutex<Frames> = spin::Mutex::new(Frames::new());
        let mut frames = FRAMES.lock();
        frames.add_available(available, &reserved[..n_reserved], MIB);
        log::info!(
            "frame allocator: {} KiB free in {} range(s)",
            frames.free_bytes() / 1024,
            frames.runs().count()
        );

        if options.fault_selftest {
            log::info!(
                "selftest: reading unmapped address {:#x} in root mode",
                arch::SELFTEST_FAULT_ADDRESS
            );
            arch::provoke_page_fault();
        }

        let vmx = match vmm::enable(&mut frames) {
            Ok(vmx) => vmx,
            Err(e) => {
                log::error!("{e}");
                arch::shutdown(Status::Unsupported);
            }
        };

        let image = boot
            .module_tags()
            .find(|m| m.cmdline().ok().and_then(|c| c.split_whitespace().next()) == Some("first"));
        let mut failures = 0;
        if options.runs.iter().any(Option::is_some) {
            crate::boot_report_done();
        }
        for &scenario in options.runs.iter().flatten() {
            let Some(module) = image else {
                log::error!(
                    "no boot module named \"first\": cannot run scenario {}",
                    scenario.name()
                );
                failures += 1;
                break;
            };
            let (start, end) = (module.start_address() as u64, module.end_address() as u64);
            // SAFETY: GRUB loaded the module there; its range is reserved in
            // the frame allocator and is only ever read.
            let bytes = unsafe { arch::phys(start, end.saturating_sub(start) as usize) };
            let free_before = frames.free_bytes();
            match vmm::run_guest(
                &vmx,
                &mut frames,
                &selectors,
                "first",
                bytes,
                scenario,
                &options,
            ) {
                Ok(_) => {}
                Err(e) => {
                    log::error!(
                        "guest first: could not run scenario {}: {e}",
                        scenario.name()
                    );
                    failures += 1;
                }
            }
            if frames.free_bytes() != free_before {
                log::error!(
                    "guest first: {} bytes of memory were not returned",
                    free_before.saturating_sub(frames.free_bytes())
                );
                failures += 1;
            }
        }
        let module = |name: &str| {
            boot.module_tags()
                .find(|m| m.cmdline().ok().and_then(|c| c.split_whitespace().next()) == Some(name))
                .map(|m| {
                    let (start, end) = (m.start_address() as u64, m.end_address() as u64);
                    // SAFETY: GRUB loaded the module there; its range is
                    // reserved in the frame allocator and only ever read.
                    unsafe { arch::phys(start, end.saturating_sub(start) as usize) }
                })
        };
        if let Some(bytes) = module("manifest") {
            match manifest::decode(bytes) {
                Err(e) => {
                    log::error!("boot manifest ({} bytes): {e}", bytes.len());
                    failures += 1;
                }
                Ok(m) => {
                    log::info!(
                        "boot manifest: {} domain(s), {} channel(s), {} guest(s)",
                        m.domains.len(),
                        m.channels.len(),
                        m.guests.len()
                    );
                    if let Err(e) = domains::run_system(
                        &vmx,
                        &mut frames,
                        &selectors,
                        m,
                        module,
                        options.slice,
                        options.domain_budget,
                    ) {
                        log::error!("boot manifest: {e}");
                        failures += 1;
                    }
                }
            }
        }
        log::info!(
            "all guests have stopped; the core is still running with {} KiB free",
            frames.free_bytes() / 1024
        );
        arch::shutdown(if failures == 0 {
            Status::Success
        } else {
            Status::BadBoot
        })
    }
}
