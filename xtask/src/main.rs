//! `cargo xtask`: Bulkhead's build tool. It owns the developer workflow:
//! building the core and guests for bare metal, making the GRUB ISO, booting
//! it under Bochs (VMX in software) or QEMU, the end-to-end tests with a
//! verdict, and the benchmarks. It runs on the host with std and must never
//! leave generated files in the source tree (everything goes to `target/` or
//! a temporary directory), nor report success for a check it did not run.

mod bins;
mod e2e;
mod emulator;
mod harness;
mod image;
mod linux;
mod loc;
mod logs;
mod newservice;
mod prereq;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use clap::{Parser, Subcommand};

use emulator::Emulator;
use prereq::Need;

/// Errors carry their own explanation.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The command line the default system boots with.
pub const DEFAULT_CMDLINE: &str = "run=first,portio";
/// The manifest of the default system.
pub const DEFAULT_SYSTEM: &str = "systems/default.toml";

/// Resolves `--system`: `none`, a path relative to the current directory,
/// or one relative to the workspace root.
fn system_path(arg: &str) -> Result<Option<PathBuf>> {
    if arg == "none" {
        return Ok(None);
    }
    let p = PathBuf::from(arg);
    if p.is_file() {
        return Ok(Some(p));
    }
    let q = workspace_root().join(arg);
    if q.is_file() {
        return Ok(Some(q));
    }
    Err(
        format!("system manifest {arg:?} not found (give a TOML file under systems/, or `none`)")
            .into(),
    )
}

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, run, test and benchmark Bulkhead"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check the system, build the core, the first guest and the packages
    /// of its images, and make the GRUB ISO.
    Build {
        /// The core's command line.
        #[arg(long, default_value = DEFAULT_CMDLINE)]
        cmdline: String,
        /// The system manifest (TOML) whose domains the core starts, or `none`.
        #[arg(long, default_value = DEFAULT_SYSTEM)]
        system: String,
    },
    /// Build and boot the default system with its console on this terminal.
    Run {
        /// Emulator to boot in.
        #[arg(long, value_enum, default_value = "bochs")]
        emulator: Emulator,
        /// Hardware acceleration (QEMU only): `kvm` on a host with nested VMX.
        #[arg(long, value_parser = ["kvm"])]
        accel: Option<String>,
        /// The core's command line.
        #[arg(long, default_value = DEFAULT_CMDLINE)]
        cmdline: String,
        /// The system manifest (TOML) whose domains the core starts, or `none`.
        #[arg(long, default_value = DEFAULT_SYSTEM)]
        system: String,
        /// Stop the emulator after this many seconds (default: none when
        /// the console is a terminal, else 300).
        #[arg(long)]
        timeout: Option<u64>,
        /// Boot the default services with this Linux kernel as guest
        /// `linux` (start it with `start linux`); replaces --system.
        #[arg(long)]
        bzimage: Option<PathBuf>,
        /// Its initrd (with --bzimage).
        #[arg(long, requires = "bzimage")]
        initrd: Option<PathBuf>,
        /// Its command line (with --bzimage).
        #[arg(long = "linux-cmdline", requires = "bzimage", default_value = manifest::LINUX_DEFAULT_CMDLINE)]
        linux_cmdline: String,
        /// Its memory in MiB (with --bzimage).
        #[arg(long, requires = "bzimage", default_value_t = 128)]
        memory: u32,
    },
    /// Host unit tests of every crate, then the end-to-end tests.
    Test {
        /// Only the host unit tests.
        #[arg(long, conflicts_with = "e2e_only")]
        host_only: bool,
        /// Only the end-to-end tests.
        #[arg(long)]
        e2e_only: bool,
        /// Run only end-to-end tests whose name contains this.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Measure: hypercall, channel, ring and virtual-UART round trips and a
    /// guest's start inside Bochs, the host ring against `rtrb`, a Linux
    /// guest's boot against the same boot bare, and the core's size.
    Bench {
        /// Only the Linux guest's boot against the same boot bare (the
        /// longest figure to take, and the noisiest: it is wall-clock time).
        #[arg(long)]
        linux_only: bool,
    },
    /// Boot the Linux test guest bare in Bochs, without Bulkhead (GRUB,
    /// Debian's cloud kernel, the busybox initramfs): the reference the
    /// bench compares a Bulkhead guest with.
    LinuxBare {
        /// Linux's command line.
        #[arg(long, default_value = linux::CMDLINE)]
        cmdline: String,
        /// Stop the emulator after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Create `services/NAME` from the template and add it to the workspace.
    NewService {
        /// The service's name (a-z first, then a-z, 0-9, '-', not ending in '-'; at most 16;
        /// not the name of another binary of the workspace).
        name: String,
    },
}

/// Prints a progress line.
pub fn step(message: &str) {
    eprintln!("xtask: {message}");
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Build { cmdline, system } => build(&cmdline, &system),
        Cmd::LinuxBare { cmdline, timeout } => {
            linux_bare(&cmdline, timeout, linux::DONE, true).map(|_| ExitCode::SUCCESS)
        }
        Cmd::Run {
            emulator,
            accel,
            cmdline,
            system,
            timeout,
            bzimage,
            initrd,
            linux_cmdline,
            memory,
        } => match bzimage {
            Some(k) => {
                linux::system_for(&k, initrd.as_deref(), &linux_cmdline, memory).and_then(|path| {
                    run(
                        emulator,
                        accel.is_some(),
                        &cmdline,
                        &path.to_string_lossy(),
                        timeout,
                    )
                })
            }
            None => run(emulator, accel.is_some(), &cmdline, &system, timeout),
        },
        Cmd::Test {
            host_only,
            e2e_only,
            filter,
        } => test(!e2e_only, !host_only, filter.as_deref()),
        Cmd::Bench { linux_only } => bench(linux_only),
        Cmd::NewService { name } => newservice::run(&name).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn build(cmdline: &str, system: &str) -> Result<ExitCode> {
    let system = system_path(system)?;
    prereq::ensure(&[Need::BareMetalTarget, Need::Grub])?;
    let iso = image::build("bulkhead", cmdline, system.as_deref())?;
    step(&format!("boot image: {}", image::display(&iso)));
    Ok(ExitCode::SUCCESS)
}

fn run(
    emulator: Emulator,
    kvm: bool,
    cmdline: &str,
    system: &str,
    timeout: Option<u64>,
) -> Result<ExitCode> {
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    // A day stands for no limit at a terminal: `shutdown` in the shell or
    // Ctrl-C ends the session.
    let timeout = timeout.unwrap_or(if interactive { 86_400 } else { 300 });
    if kvm && emulator != Emulator::Qemu {
        return Err("--accel kvm needs --emulator qemu".into());
    }
    let system = system_path(system)?;
    let mut needs = vec![Need::BareMetalTarget, Need::Grub];
    needs.push(match emulator {
        Emulator::Bochs => Need::Bochs,
        Emulator::Qemu => Need::Qemu,
    });
    prereq::ensure(&needs)?;
    let iso = image::build("bulkhead", cmdline, system.as_deref())?;
    step(&format!(
        "booting {} under {emulator:?} (console below; {})",
        image::display(&iso),
        if interactive {
            "type `shutdown` at the bulkhead> prompt to end, Ctrl-A then a digit to switch consoles"
                .to_string()
        } else {
            format!("stops by itself, or after {timeout} s")
        }
    ));
    let run = emulator::run(
        &iso,
        &emulator::Options {
            emulator,
            kvm,
            timeout: Duration::from_secs(timeout),
            live: true,
            // Typing goes to COM1 when there is someone to type.
            input: if interactive {
                emulator::Input::Interactive
            } else {
                emulator::Input::None
            },
            logs: image::log_decoder(&image::domains_dir(), system.as_deref())?,
            stop_on: None,
        },
    )?;
    let status = run.console.lines().rev().find_map(|l| {
        l.split_once("bulkhead: shutdown status=")
            .map(|(_, s)| s.trim().to_owned())
    });
    if run.console.contains("VMX is not available on this CPU") {
        let hint = if emulator == Emulator::Qemu && !kvm {
            "QEMU's TCG does not emulate VMX: use `cargo xtask run` (Bochs), or \
             `cargo xtask run --emulator qemu --accel kvm` on a host with nested VMX"
        } else {
            "this CPU (or its hypervisor) does not offer VT-x to the core"
        };
        eprintln!("xtask: the core stopped cleanly: VMX is not available on this CPU. {hint}.");
        return Ok(ExitCode::from(2));
    }
    match (run.outcome, status.as_deref()) {
        (_, Some("0")) => {
            step(&format!(
                "the core shut down cleanly after {:.1} s",
                run.elapsed.as_secs_f64()
            ));
            Ok(ExitCode::SUCCESS)
        }
        (emulator::Outcome::TimedOut, _) => Err(format!(
            "stopped the emulator after {timeout} s (use --timeout to wait longer); \
             its files are in {}",
            run.scratch.display()
        )
        .into()),
        (_, Some(s)) => Err(format!("the core shut down with status {s}").into()),
        (outcome, None) => Err(format!(
            "the emulator ended ({outcome:?}) without the core's shutdown line; \
             its files are in {}",
            run.scratch.display()
        )
        .into()),
    }
}

/// Every `fuzz` directory of a crate, loader or service.
fn fuzz_dirs() -> Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for group in ["crates", "loaders", "services"] {
        let Ok(entries) = std::fs::read_dir(workspace_root().join(group)) else {
            continue;
        };
        for e in entries {
            let fuzz = e?.path().join("fuzz");
            if fuzz.join("Cargo.toml").is_file() {
                dirs.push(fuzz);
            }
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// The virtualisation overhead: the same kernel, initramfs and command
/// line booted bare in Bochs and as a Bulkhead guest, back to back, wall
/// clock from the emulator's start to /init's marker line; and the guest's
/// VM exits by reason during its boot.
fn linux_overhead(bins: &image::Binaries, options: &emulator::Options) -> Result<()> {
    step("Linux: bare boot in Bochs (GRUB, the same kernel, initramfs and command line)");
    let bare = linux_bare(linux::CMDLINE, 300, linux::MARKER, false)?;
    let bare_s = bare.elapsed.as_secs_f64();
    step("Linux: the same as a Bulkhead guest (systems/bench-linux.toml, `start linux`)");
    let path = workspace_root().join("systems/bench-linux.toml");
    let spec = e2e::bench_linux_spec();
    let iso = image::make_iso(bins, "bench-linux", spec.cmdline, Some(&path))?;
    let run = emulator::run(
        &iso,
        &emulator::Options {
            timeout: spec.timeout,
            input: emulator::Input::Script(spec.input.clone()),
            logs: image::log_decoder(&bins.domains, Some(&path))?,
            ..options.clone()
        },
    )?;
    harness::judge(&spec, &run).map_err(|f| format!("benchmark run failed: {f}"))?;
    let guest_s = run
        .marks
        .iter()
        .find(|(wait, _)| wait == linux::MARKER)
        .map(|(_, t)| t.as_secs_f64())
        .ok_or("the Linux guest's marker was not seen")?;
    println!(
        "Linux boot to /init's marker, wall clock under Bochs (same kernel, initramfs, command line {:?}):",
        linux::CMDLINE
    );
    let prompt_s = run.marks.first().map_or(0.0, |(_, t)| t.as_secs_f64());
    println!("  bare (GRUB):       {bare_s:>6.1} s");
    println!(
        "  Bulkhead guest:    {guest_s:>6.1} s   (from the emulator's start: the core, the services and `start linux` included)"
    );
    println!(
        "  ratio:             {:>6.2}     goal <= 1.15",
        guest_s / bare_s
    );
    println!(
        "    of which the core and the services up to the shell's prompt took {prompt_s:.1} s, `start linux` to the marker {:.1} s",
        guest_s - prompt_s
    );
    println!("  the guest's VM exits by reason during its boot:");
    let lines: Vec<&str> = run.console.lines().collect();
    if let Some(at) = lines.iter().position(|l| l.contains("exits by reason:")) {
        // The dump's lines (the guest's own output may come between).
        for l in lines[at + 1..]
            .iter()
            .filter(|l| l.starts_with("[manager/uart]"))
            .take_while(|l| !l.contains("recent log lines") && !l.contains("bulkhead>"))
        {
            println!("  {}", l.trim_start_matches("[manager/uart]"));
        }
    }
    Ok(())
}

/// Boots the Linux test guest bare in Bochs until the console shows
/// `stop` (its marker, or the line `/init` ends with); returns the run
/// (console, time).
fn linux_bare(cmdline: &str, timeout: u64, stop: &str, live: bool) -> Result<emulator::Run> {
    prereq::ensure(&[Need::Grub, Need::Bochs])?;
    let assets = linux::assets()?;
    let initrd = linux::busybox_initramfs()?;
    let iso = image::make_linux_iso("linux-bare", &assets.bzimage, &initrd, cmdline)?;
    step(&format!(
        "booting {} bare in Bochs",
        image::display(&assets.bzimage)
    ));
    let run = emulator::run(
        &iso,
        &emulator::Options {
            emulator: Emulator::Bochs,
            kvm: false,
            timeout: Duration::from_secs(timeout),
            live,
            input: emulator::Input::None,
            logs: None,
            stop_on: Some(stop.to_string()),
        },
    )?;
    match run.outcome {
        emulator::Outcome::Stopped if run.console.contains(linux::MARKER) => {
            step(&format!(
                "Linux's /init reached {stop:?} after {:.1} s",
                run.elapsed.as_secs_f64()
            ));
            Ok(run)
        }
        other => Err(format!(
            "Linux did not finish its /init ({other:?} after {:.1} s); files in {}",
            run.elapsed.as_secs_f64(),
            run.scratch.display()
        )
        .into()),
    }
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(workspace_root());
    c
}

fn test(host: bool, e2e: bool, filter: Option<&str>) -> Result<ExitCode> {
    let mut bins = None;
    if e2e {
        prereq::ensure(&[Need::BareMetalTarget, Need::Grub, Need::Bochs, Need::Qemu])?;
        // Built first so that host tests can load real images too.
        bins = Some(image::build_binaries()?);
    }
    if host {
        // The bzImage loader's tests load Debian's real kernel.
        let kernel = linux::assets()?;
        step("host unit tests (every crate, host target)");
        let mut cmd = cargo();
        cmd.args(["test", "--workspace"]);
        cmd.env("BULKHEAD_TEST_BZIMAGE", &kernel.bzimage);
        if let Some(b) = &bins {
            // The ELF loader's tests load a real domain image.
            cmd.env("BULKHEAD_TEST_ELF", b.domains.join("first"));
            // xtask's own tests decode the log frames of a real service.
            cmd.env("BULKHEAD_TEST_DOMAINS", &b.domains);
        }
        if !cmd.status()?.success() {
            return Err("host unit tests failed".into());
        }
        step("model check of the ring's memory ordering (loom)");
        let mut cmd = cargo();
        cmd.args([
            "test",
            "-q",
            "-p",
            "shm-ring",
            "--release",
            "--test",
            "loom",
        ])
        .env("RUSTFLAGS", "--cfg loom")
        // Its own target directory: the flag changes every crate's build.
        .env("CARGO_TARGET_DIR", workspace_root().join("target/loom"));
        if !cmd.status()?.success() {
            return Err("the loom model check of the ring failed".into());
        }
        step("fuzz targets compile (running them needs nightly: see each fuzz directory)");
        for dir in fuzz_dirs()? {
            let mut cmd = cargo();
            cmd.args(["check", "-q", "--manifest-path"])
                .arg(dir.join("Cargo.toml"))
                // One target directory for all of them (they share most
                // dependencies); each fuzz directory is its own workspace.
                .env(
                    "CARGO_TARGET_DIR",
                    workspace_root().join("target/fuzz-check"),
                );
            if !cmd.status()?.success() {
                return Err(format!("the fuzz targets in {} do not compile", dir.display()).into());
            }
        }
    }
    if let Some(bins) = bins {
        let failed = e2e::run_all(&bins, filter)?;
        if failed > 0 {
            return Err(format!("{failed} end-to-end test(s) failed").into());
        }
    }
    step("all tests passed");
    Ok(ExitCode::SUCCESS)
}

fn bench(linux_only: bool) -> Result<ExitCode> {
    prereq::ensure(&[Need::BareMetalTarget, Need::Grub, Need::Bochs])?;
    let bins = image::build_binaries()?;
    let options = emulator::Options {
        emulator: Emulator::Bochs,
        kvm: false,
        timeout: Duration::from_secs(300),
        live: false,
        input: emulator::Input::None,
        logs: None,
        stop_on: None,
    };
    if linux_only {
        linux_overhead(&bins, &options)?;
        return Ok(ExitCode::SUCCESS);
    }
    step("making the benchmark images");
    let first = image::make_iso(&bins, "bench", "run=bench", None)?;
    let system_path = workspace_root().join("systems/bench.toml");
    let system = image::make_iso(&bins, "bench-system", "run=", Some(&system_path))?;
    let ring_path = workspace_root().join("systems/bench-ring.toml");
    let ring_system = image::make_iso(&bins, "bench-ring", "run=", Some(&ring_path))?;
    let uart_path = workspace_root().join("systems/bench-uart.toml");
    let uart_system = image::make_iso(&bins, "bench-uart", "run=", Some(&uart_path))?;
    let start_path = workspace_root().join("systems/bench-start.toml");
    let start_system = image::make_iso(&bins, "bench-start", "run=", Some(&start_path))?;
    step("running 100,000 null hypercalls in the first guest inside Bochs");
    let run = emulator::run(&first, &options)?;
    harness::judge(&e2e::bench_spec(), &run).map_err(|f| format!("benchmark run failed: {f}"))?;
    let null = e2e::parse_figure(&run.console, "[first] bench: null hypercall round trip: ")
        .ok_or("no benchmark line in the console")?;
    step("running the capability-checked hypercall and channel benchmarks inside Bochs");
    let run = emulator::run(&system, &options)?;
    harness::judge(&e2e::bench_system_spec(), &run)
        .map_err(|f| format!("benchmark run failed: {f}"))?;
    let figure = |prefix: &str| {
        e2e::parse_figure(&run.console, prefix).ok_or(format!("no line {prefix:?} in the console"))
    };
    let domain_null = figure("[benchcaps] bench: null hypercall round trip: ")?;
    let checked =
        figure("[benchcaps] bench: capability-checked hypercall (cap_inspect) round trip: ")?;
    let channel = figure("[bping] bench: notify -> wake -> reply round trip: ")?;
    step("running the ring benchmark inside Bochs");
    let ring_run = emulator::run(&ring_system, &options)?;
    harness::judge(&e2e::bench_ring_spec(), &ring_run)
        .map_err(|f| format!("benchmark run failed: {f}"))?;
    let ring = e2e::parse_figure(
        &ring_run.console,
        "[rping] bench: ring message round trip: ",
    )
    .ok_or("no ring benchmark line in the console")?;
    step("running the virtual-UART benchmark inside Bochs");
    let uart_run = emulator::run(&uart_system, &options)?;
    harness::judge(&e2e::bench_uart_spec(), &uart_run)
        .map_err(|f| format!("benchmark run failed: {f}"))?;
    let uart = e2e::parse_figure(
        &uart_run.console,
        "[benchuart] bench: virtual UART write and read back: ",
    )
    .ok_or("no virtual-UART benchmark line in the console")?;
    step("starting a 16 MiB guest from the domain manager's shell inside Bochs");
    let start_spec = e2e::bench_start_spec();
    let start_run = emulator::run(
        &start_system,
        &emulator::Options {
            input: emulator::Input::Script(start_spec.input.clone()),
            logs: image::log_decoder(&bins.domains, Some(&start_path))?,
            ..options.clone()
        },
    )?;
    harness::judge(&start_spec, &start_run).map_err(|f| format!("benchmark run failed: {f}"))?;
    let start = e2e::parse_figure(&start_run.console, "[manager] bench: start big: ")
        .ok_or("no start benchmark line in the console")?;
    println!("Round trips in emulated instructions (RDTSC in Bochs; the TSC counts instructions):");
    println!("  null hypercall, first guest (VMCALL -> core -> VMRESUME): {null:>6}   goal < 200");
    println!("  null hypercall, manifest domain:                           {domain_null:>6}");
    println!(
        "  capability-checked hypercall (CAP_INSPECT):                {checked:>6}   goal <= 150"
    );
    println!(
        "  channel notify -> wake -> reply (two domains):             {channel:>6}   goal <= 2500"
    );
    println!("  ring message round trip (encode, notify, switch, decode, reply): {ring:>6}   goal <= 2500");
    println!(
        "  virtual UART write + read back (through the UART service): {uart:>6}   goal <= 3000"
    );
    println!(
        "  start of a 16 MiB guest (broker grant, ELF load, create, start): {start:>8}   goal <= 1000000"
    );
    step("host ring throughput against rtrb (64-byte messages, two threads)");
    let out = cargo()
        .args([
            "run",
            "-q",
            "-p",
            "shm-ring",
            "--release",
            "--example",
            "bench",
            "4000000",
        ])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // One line per ring size (and the lines for information), then the
    // smallest ratio, held to the goal.
    for line in text
        .lines()
        .filter(|l| l.starts_with("64-byte messages, ") || l.starts_with("60-byte messages "))
    {
        println!("  {line}");
    }
    match text.lines().find(|l| l.starts_with("64-byte messages:")) {
        Some(line) => println!("  {line}   goal: ratio >= 1.0"),
        None => return Err(format!("the ring benchmark printed no result:\n{text}").into()),
    }
    linux_overhead(&bins, &options)?;
    let loc = loc::count(&workspace_root())?;
    println!("Core size (non-blank, non-comment Rust lines, tests excluded):");
    for (name, lines) in &loc.crates {
        println!("  {name:<14} {lines:>6}");
    }
    println!(
        "  {:<14} {:>6}   (anchor: Hedron, about 11,000)",
        "total", loc.total
    );
    Ok(ExitCode::SUCCESS)
}
