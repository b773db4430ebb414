//! `vcpu` owns one virtual CPU of a domain: its register file, the setup of
//! its VMCS (host state, guest state, execution controls), the run loop that
//! enters the guest, and the dispatch of every VM exit to one handler.
//!
//! It reaches the hardware only through two narrow doors, so that all of it
//! unit-tests on the host: the [`Vmcs`] trait (VMREAD/VMWRITE on the current
//! VMCS) and the `enter` closure given to [`run`] (the world switch). What the
//! handlers need from the rest of the core (host CPUID, reading guest memory
//! through the domain's EPT, the console) comes through [`Platform`].
//!
//! It must never trust the guest: every register value, address and length a
//! guest hands over is checked before use, and an exit this crate does not
//! understand stops that guest with a dump of the VMCS; it never panics.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

/// `?` for VMCS access inside a handler: a failed VMREAD/VMWRITE stops the
/// guest (defined before the modules so that every handler can use it).
macro_rules! vm {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(fail) => return $crate::Action::Stop($crate::StopReason::EntryInstruction(fail)),
        }
    };
}

pub mod cpuid;
mod exit;
pub mod irq;
mod logring;
pub mod msr;
mod setup;
mod uart;

pub use exit::{complete_hypercall, complete_in, handle_exit, Action, ExitStats, StopReason};
pub use setup::{selectors, setup_vmcs, Controls, GuestSetup, HostState, SetupError};
pub use uart::{LineBuffer, RecentLog};
pub use vmx::GuestRegisters;

use vmx::VmFail;

/// Access to the current VMCS.
///
/// The core implements it with VMREAD/VMWRITE; tests implement it with a map.
pub trait Vmcs {
    /// Reads a field.
    fn read(&self, field: u32) -> Result<u64, VmFail>;
    /// Writes a field.
    fn write(&mut self, field: u32, value: u64) -> Result<(), VmFail>;
}

/// Where a line of guest output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineSource {
    /// The guest's `LOG_WRITE` hypercall.
    Hypercall,
    /// The guest's writes to the emulated COM1 transmit register.
    Uart,
}

impl LineSource {
    /// What follows the domain's name in the console prefix: nothing, or
    /// `:com1`.
    pub const fn tag(self) -> &'static str {
        match self {
            LineSource::Hypercall => "",
            LineSource::Uart => ":com1",
        }
    }
}

/// The core's answer to a hypercall it owns (see [`Platform::core_hypercall`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreCall {
    /// Complete the call (RAX = status, RDX = value when given) and resume.
    Return(hypercall_abi::Status, Option<u64>),
    /// Complete the call, then let the scheduler choose what runs.
    Switch(hypercall_abi::Status, Option<u64>),
    /// The caller waits; the call is completed when it wakes.
    Block,
    /// The caller no longer exists or was stopped.
    Gone,
}

/// How a virtual-UART access is completed (see [`Platform::uart_access`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UartAnswer {
    /// This crate emulates it.
    Emulate,
    /// Done: a write was forwarded, or a read has this value.
    Done(u8),
    /// A read was forwarded; the core completes it later with
    /// [`complete_in`], and the scheduler runs something else meanwhile.
    Wait,
    /// The forwarding queue is full: the instruction is retried later.
    Busy,
}

/// What the exit handlers need from the rest of the core.
pub trait Platform {
    /// Handles a hypercall this crate does not own (capabilities, memory,
    /// domains, channels, yield, sleep); its arguments are in `regs` (RDI,
    /// RSI, RDX, R10). Without a core behind it, every such call is refused.
    fn core_hypercall(&mut self, call: hypercall_abi::Call, regs: &GuestRegisters) -> CoreCall {
        let _ = (call, regs);
        CoreCall::Return(hypercall_abi::Status::Denied, None)
    }
    /// The hypercalls [`Self::fast_hypercall`] may answer: bit `n` for call
    /// number `n`. The world switch offers only these (and `NULL`) to the
    /// fast path.
    const FAST_CALLS: u64 = 0;

    /// A core hypercall answered on the shortest path, inside the world
    /// switch (see [`FastPath`]), for the calls in [`Self::FAST_CALLS`]:
    /// `Some((status, RDX))`, or `None` to go through
    /// [`Self::core_hypercall`]. Only for calls that never block,
    /// never reschedule and touch no guest memory. Only the caller-saved
    /// registers of `regs` are current here (RAX, RCX, RDX, RSI, RDI,
    /// R8–R11); the hypercall arguments are all among them.
    #[inline]
    fn fast_hypercall(
        &mut self,
        call: hypercall_abi::Call,
        regs: &GuestRegisters,
    ) -> Option<(hypercall_abi::Status, u64)> {
        let _ = (call, regs);
        None
    }
    /// A guest's one-byte access to register `offset` (0–7) of its virtual
    /// COM1. The default lets this crate emulate a minimal line printer;
    /// the core answers [`UartAnswer::Wait`] or [`UartAnswer::Done`] when a
    /// UART service domain owns the virtual UARTs.
    fn uart_access(&mut self, offset: u8, write: bool, value: u8) -> UartAnswer {
        let _ = (offset, write, value);
        UartAnswer::Emulate
    }
    /// A PC guest's one-byte access to legacy port
    /// `hypercall_abi::ioreq::PC_PORTS[index]`. The default (no platform
    /// service) is [`UartAnswer::Emulate`]: the port is absent.
    fn pc_access(&mut self, index: u8, write: bool, value: u8) -> UartAnswer {
        let _ = (index, write, value);
        UartAnswer::Emulate
    }
    /// Executes CPUID on the host.
    fn host_cpuid(&mut self, leaf: u32, subleaf: u32) -> [u32; 4];
    /// The host's time-stamp counter (what a guest's `RDTSC` reads too).
    fn host_rdtsc(&mut self) -> u64;
    /// The TSC's frequency in Hz, if the core measured it (CPUID leaves
    /// 0x15 and 0x16 tell guests).
    fn tsc_hz(&self) -> Option<u64> {
        None
    }
    /// The physical address of the core's memory at `virt` (for VMCS
    /// fields that point into it); the core runs identity-mapped, which
    /// is the default.
    fn physical(&self, virt: *const u8) -> u64 {
        virt as u64
    }
    /// Copies guest-physical memory starting at `gpa` into `buf`, through the
    /// domain's EPT. Returns `false` (and copies nothing useful) when any byte
    /// is not mapped readable for the guest.
    fn read_guest(&mut self, gpa: u64, buf: &mut [u8]) -> bool;
    /// Copies `bytes` into guest-physical memory at `gpa`, through the
    /// domain's EPT. Returns `false` (and writes nothing) when any byte is
    /// not mapped writable for the guest.
    fn write_guest(&mut self, gpa: u64, bytes: &[u8]) -> bool;
    /// Prints one line of guest output on the console.
    fn guest_line(&mut self, guest: &str, source: LineSource, text: &str);
    /// Asked after every `LOG_WRITE` and `LOG_FLUSH` (`done`: it
    /// succeeded) and every write to the emulated COM1's transmit register
    /// that printed a line (`done` true): whether the platform made the
    /// caller wait (printing its lines took more than its share of the
    /// CPU) and blocked it. A held call completes when the caller wakes
    /// (status `Ok`, as for `SLEEP`), not now; a held COM1 write completes
    /// now, and the caller wakes to its next instruction. A failed call is
    /// never held: the platform lifts the wait.
    fn console_hold(&mut self, done: bool) -> bool {
        let _ = done;
        false
    }
}

/// One virtual CPU and everything the core tracks about it.
#[derive(Debug)]
pub struct Vcpu {
    /// The domain's name, used as the prefix of its console lines.
    pub name: &'static str,
    /// The general registers not held in the VMCS.
    pub regs: GuestRegisters,
    /// Whether VMLAUNCH succeeded once (VMRESUME from then on).
    pub launched: bool,
    /// Exit counts by reason.
    pub stats: ExitStats,
    /// Preemption-timer slices consumed so far.
    pub slices: u64,
    /// Slices after which the guest is stopped (`None`: unbounded).
    pub slice_budget: Option<u64>,
    /// VMX-preemption timer value of one slice, reloaded after each
    /// preemption.
    pub slice: u32,
    /// The guest's partial line on the emulated COM1.
    pub uart: LineBuffer,
    /// The divisor-latch access bit of the emulated COM1 line control.
    pub uart_dlab: bool,
    /// The emulated COM1 scratch register.
    pub uart_scratch: u8,
    /// Its last `LOG_WRITE` lines (for a supervisor's `dump`).
    pub recent: RecentLog,
    /// Hypercalls this crate answered itself (unknown numbers, `LOG_WRITE`)
    /// with an error status; the core counts refusals of its own calls.
    pub refused: u64,
    /// Guest-physical address of the log ring it last flushed
    /// (`LOG_FLUSH`), drained once more when it stops.
    pub log_ring: Option<u64>,
    /// The MSRs its system calls use in hardware, as the VMCS's MSR
    /// lists load and store them (see [`msr`]).
    pub msr_area: msr::MsrArea,
    /// The other MSRs the policy keeps, and its counters.
    pub msrs: msr::MsrStats,
    /// A PC guest (an unmodified Linux): it takes external interrupts,
    /// its `HLT` waits for one, and ports it has no binding for read as
    /// absent (all ones) instead of stopping it.
    pub pc: bool,
    /// Interrupts waiting to be injected (PC guests).
    pub interrupts: irq::Interrupts,
    /// Port accesses of a PC guest to ports nothing serves (reads answered
    /// with all ones, writes ignored).
    pub absent_ports: u64,
    /// A PC guest's x87/SSE state while another PC guest has the FPU
    /// (`None` until it was first switched out).
    pub fpu: Option<FpuArea>,
}

/// An FXSAVE area: the x87 and SSE state of a vCPU.
#[repr(C, align(16))]
#[derive(Debug, Clone, Copy)]
pub struct FpuArea(pub [u8; 512]);

impl Default for FpuArea {
    fn default() -> Self {
        Self([0; 512])
    }
}

impl Vcpu {
    /// A vCPU that has not run yet.
    pub fn new(name: &'static str) -> Vcpu {
        Vcpu {
            name,
            regs: GuestRegisters::default(),
            launched: false,
            stats: ExitStats::default(),
            slices: 0,
            slice_budget: None,
            slice: 0,
            uart: LineBuffer::new(),
            uart_dlab: false,
            uart_scratch: 0,
            recent: RecentLog::new(),
            refused: 0,
            log_ring: None,
            msr_area: msr::MsrArea::new(),
            msrs: msr::MsrStats::default(),
            pc: false,
            interrupts: irq::Interrupts::default(),
            absent_ports: 0,
            fpu: None,
        }
    }
}

/// The exit handler the world switch calls before it returns to Rust: the
/// state the shortest path needs, borrowed for one entry.
///
/// The core's world switch stores only the guest's caller-saved registers on
/// a VM exit and calls [`FastPath::handle`]; when that handles the exit (a
/// `NULL` or a call [`Platform::fast_hypercall`] answers), the guest resumes
/// without the rest of the register file being stored and reloaded.
/// Everything else returns to [`run_until_event`], which handles it with
/// [`handle_exit`].
pub struct FastPath<'a, V, P> {
    stats: &'a mut ExitStats,
    vmcs: &'a mut V,
    platform: &'a mut P,
}

impl<V: Vmcs, P: Platform> FastPath<'_, V, P> {
    /// The call numbers the world switch offers to [`Self::handle`] (bit `n`
    /// for call `n`): `NULL` and the platform's [`Platform::FAST_CALLS`].
    pub const CALLS: u64 = 1 << hypercall_abi::Call::Null as u64 | P::FAST_CALLS;

    /// Handles a VMCALL exit whose call number (RAX) is in [`Self::CALLS`]
    /// if it is one of the cheapest; `true` means the guest may be resumed
    /// at once. Reads only the caller-saved registers of `regs` and changes
    /// only RAX and RDX. The world switch calls it for no other exit.
    #[inline]
    pub fn handle(&mut self, regs: &mut GuestRegisters) -> bool {
        exit::fast_exit(regs, self.stats, self.vmcs, self.platform)
    }
}

/// Runs `vcpu` alone until one of its exits stops it; preemption and
/// rescheduling just resume it. (The core's scheduler uses
/// [`run_until_event`].)
///
/// `enter` performs the world switch (in the core: [`vmx::arch::enter_guest`]
/// via the VMCS that `vmcs` accesses), offering each exit to the
/// [`FastPath`] it is given before it returns. A failure of VMLAUNCH/VMRESUME itself
/// stops the guest with [`StopReason::EntryInstruction`].
pub fn run<V, P, E>(vcpu: &mut Vcpu, vmcs: &mut V, platform: &mut P, mut enter: E) -> StopReason
where
    V: Vmcs,
    P: Platform,
    E: FnMut(&mut GuestRegisters, bool, &mut FastPath<'_, V, P>) -> Result<(), VmFail>,
{
    loop {
        if let Action::Stop(reason) = run_until_event(vcpu, vmcs, platform, &mut enter) {
            return reason;
        }
    }
}

/// Runs `vcpu` until an exit needs the scheduler: a preemption, a hypercall
/// that changed what should run, or a stop. Every other exit (CPUID, COM1,
/// hypercalls answered at once, including the core's through
/// [`Platform::core_hypercall`]) resumes the guest directly.
pub fn run_until_event<V, P, E>(
    vcpu: &mut Vcpu,
    vmcs: &mut V,
    platform: &mut P,
    mut enter: E,
) -> Action
where
    V: Vmcs,
    P: Platform,
    E: FnMut(&mut GuestRegisters, bool, &mut FastPath<'_, V, P>) -> Result<(), VmFail>,
{
    loop {
        // Only PC guests take interrupts.
        if vcpu.pc {
            if let Err(fail) = irq::prepare_entry(vcpu, vmcs) {
                return Action::Stop(StopReason::EntryInstruction(fail));
            }
        }
        let mut fast = FastPath {
            stats: &mut vcpu.stats,
            vmcs: &mut *vmcs,
            platform: &mut *platform,
        };
        if let Err(fail) = enter(&mut vcpu.regs, vcpu.launched, &mut fast) {
            return Action::Stop(StopReason::EntryInstruction(fail));
        }
        vcpu.launched = true;
        if vcpu.pc {
            if let Err(fail) = irq::after_exit(vcpu, vmcs) {
                return Action::Stop(StopReason::EntryInstruction(fail));
            }
        }
        match handle_exit(vcpu, vmcs, platform) {
            Action::Resume => {}
            Action::Stop(reason) => {
                vcpu.uart.flush(vcpu.name, platform);
                // Its last log records too (a fault's cause, say).
                logring::drain_on_stop(vcpu, platform);
                return Action::Stop(reason);
            }
            other => return other,
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A fake VMCS and platform for host tests.
    use super::*;
    use std::collections::BTreeMap;
    use std::string::String;
    use std::vec::Vec;

    /// A VMCS held in a map; unknown fields read as 0.
    #[derive(Default, Debug)]
    pub struct FakeVmcs {
        pub fields: BTreeMap<u32, u64>,
    }

    impl Vmcs for FakeVmcs {
        fn read(&self, field: u32) -> Result<u64, VmFail> {
            Ok(self.fields.get(&field).copied().unwrap_or(0))
        }
        fn write(&mut self, field: u32, value: u64) -> Result<(), VmFail> {
            self.fields.insert(field, value);
            Ok(())
        }
    }

    impl FakeVmcs {
        pub fn get(&self, field: u32) -> u64 {
            self.fields.get(&field).copied().unwrap_or(0)
        }
        pub fn set(&mut self, field: u32, value: u64) {
            self.fields.insert(field, value);
        }
    }

    /// Guest memory as a byte vector starting at GPA 0.
    #[derive(Default)]
    pub struct FakePlatform {
        pub memory: Vec<u8>,
        pub lines: Vec<(String, LineSource, String)>,
        pub core_answer: Option<CoreCall>,
        pub core_calls: Vec<(hypercall_abi::Call, [u64; 4])>,
        pub uart_answer: Option<UartAnswer>,
        pub uart_accesses: Vec<(u8, bool, u8)>,
        pub fast_answer: Option<(hypercall_abi::Status, u64)>,
        pub fast_calls: Vec<(hypercall_abi::Call, u64)>,
        pub tsc: u64,
        pub pc_answer: Option<UartAnswer>,
        pub pc_accesses: Vec<(u8, bool, u8)>,
        /// What `console_hold` answers.
        pub hold: bool,
    }

    impl FakePlatform {
        /// The bytes `gpa..gpa + len` of the memory, if inside it.
        fn span(&self, gpa: u64, len: usize) -> Option<std::ops::Range<usize>> {
            let start = usize::try_from(gpa).ok()?;
            let end = start.checked_add(len)?;
            (end <= self.memory.len()).then_some(start..end)
        }
    }

    impl Platform for FakePlatform {
        const FAST_CALLS: u64 = 1 << hypercall_abi::Call::CapInspect as u64;

        fn fast_hypercall(
            &mut self,
            call: hypercall_abi::Call,
            regs: &GuestRegisters,
        ) -> Option<(hypercall_abi::Status, u64)> {
            self.fast_calls.push((call, regs.rdi));
            self.fast_answer
        }

        fn uart_access(&mut self, offset: u8, write: bool, value: u8) -> UartAnswer {
            self.uart_accesses.push((offset, write, value));
            self.uart_answer.unwrap_or(UartAnswer::Emulate)
        }

        fn core_hypercall(&mut self, call: hypercall_abi::Call, r: &GuestRegisters) -> CoreCall {
            self.core_calls.push((call, [r.rdi, r.rsi, r.rdx, r.r10]));
            self.core_answer
                .unwrap_or(CoreCall::Return(hypercall_abi::Status::Denied, None))
        }

        fn host_rdtsc(&mut self) -> u64 {
            self.tsc
        }

        fn pc_access(&mut self, index: u8, write: bool, value: u8) -> UartAnswer {
            self.pc_accesses.push((index, write, value));
            self.pc_answer.unwrap_or(UartAnswer::Emulate)
        }

        fn host_cpuid(&mut self, leaf: u32, _subleaf: u32) -> [u32; 4] {
            match leaf {
                1 => [0x306c3, 0, 0x7ffa_fbff, 0xbfeb_fbff],
                _ => [leaf, 0x11, 0x22, 0x33],
            }
        }
        fn read_guest(&mut self, gpa: u64, buf: &mut [u8]) -> bool {
            let Some(at) = self.span(gpa, buf.len()) else {
                return false;
            };
            buf.copy_from_slice(&self.memory[at]);
            true
        }
        fn write_guest(&mut self, gpa: u64, bytes: &[u8]) -> bool {
            let Some(at) = self.span(gpa, bytes.len()) else {
                return false;
            };
            self.memory[at].copy_from_slice(bytes);
            true
        }
        fn guest_line(&mut self, guest: &str, source: LineSource, text: &str) {
            self.lines.push((guest.into(), source, text.into()));
        }
        fn console_hold(&mut self, done: bool) -> bool {
            self.hold && done
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use vmx::exit::ExitReason;
    use vmx::fields;

    #[test]
    fn run_launches_once_then_resumes_and_stops_on_exit_hypercall() {
        let mut vcpu = Vcpu::new("t");
        let mut vmcs = FakeVmcs::default();
        vmcs.set(fields::VM_EXIT_REASON, ExitReason::Vmcall.basic() as u64);
        vmcs.set(fields::VM_EXIT_INSTRUCTION_LEN, 3);
        vmcs.set(fields::GUEST_RIP, 0x1000);
        let mut platform = FakePlatform::default();
        let mut entries = Vec::new();
        let reason = run(&mut vcpu, &mut vmcs, &mut platform, |regs, launched, _| {
            entries.push(launched);
            // First entry: a null hypercall; second: exit(7).
            regs.rax = if entries.len() == 1 { 0 } else { 2 };
            regs.rdi = 7;
            Ok(())
        });
        // The fake VMCS reports VMCALL for every exit.
        assert_eq!(entries, [false, true]);
        assert_eq!(reason, StopReason::Exited(7));
        assert_eq!(
            vmcs.get(fields::GUEST_RIP),
            0x1003,
            "the null call advanced RIP"
        );
        assert_eq!(vcpu.stats.count(ExitReason::Vmcall), 2);
    }

    #[test]
    fn run_reports_a_failing_entry_instruction() {
        let mut vcpu = Vcpu::new("t");
        let mut vmcs = FakeVmcs::default();
        let mut platform = FakePlatform::default();
        let reason = run(&mut vcpu, &mut vmcs, &mut platform, |_, _, _| {
            Err(VmFail::Invalid)
        });
        assert_eq!(reason, StopReason::EntryInstruction(VmFail::Invalid));
        assert!(!vcpu.launched);
    }

    #[test]
    fn run_until_event_returns_when_the_core_reschedules() {
        let mut vcpu = Vcpu::new("t");
        let mut vmcs = FakeVmcs::default();
        vmcs.set(fields::VM_EXIT_REASON, ExitReason::Vmcall.basic() as u64);
        let mut platform = FakePlatform {
            core_answer: Some(CoreCall::Switch(hypercall_abi::Status::Ok, None)),
            ..Default::default()
        };
        let mut n = 0;
        let action = run_until_event(&mut vcpu, &mut vmcs, &mut platform, |regs, _, _| {
            n += 1;
            regs.rax = if n < 3 {
                0
            } else {
                hypercall_abi::Call::Yield as u64
            };
            Ok(())
        });
        assert_eq!(action, Action::Reschedule);
        assert_eq!(n, 3);
    }

    /// The world switch as the core's assembly runs it: enter, and offer
    /// each VMCALL exit of one of the fast calls to the fast path; resume at
    /// once when it was handled. `guest` plays the guest up to its next
    /// exit (always a VMCALL here); a slow exit's registers are then all
    /// "stored" (they are already in `regs`).
    fn switch<V: Vmcs, P: Platform>(
        regs: &mut GuestRegisters,
        fast: &mut FastPath<'_, V, P>,
        mut guest: impl FnMut(&mut GuestRegisters),
    ) -> Result<(), VmFail> {
        loop {
            guest(regs);
            let offered = regs.rax < 64 && FastPath::<V, P>::CALLS & 1 << regs.rax != 0;
            if !offered || !fast.handle(regs) {
                return Ok(());
            }
        }
    }

    #[test]
    fn the_fast_path_answers_null_and_fast_calls_without_leaving_the_switch() {
        use hypercall_abi::{Call, Status};
        let mut vcpu = Vcpu::new("t");
        let mut vmcs = FakeVmcs::default();
        vmcs.set(fields::VM_EXIT_REASON, ExitReason::Vmcall.basic() as u64);
        vmcs.set(fields::VM_EXIT_INSTRUCTION_LEN, 3);
        vmcs.set(fields::GUEST_RIP, 0x1000);
        let mut platform = FakePlatform {
            fast_answer: Some((Status::Ok, 0x55)),
            core_answer: Some(CoreCall::Switch(Status::Ok, None)),
            ..Default::default()
        };
        let mut entries = 0;
        let mut seen = Vec::new();
        let action = run_until_event(&mut vcpu, &mut vmcs, &mut platform, |regs, _, fast| {
            entries += 1;
            let mut step = 0;
            switch(regs, fast, |r| {
                step += 1;
                seen.push((r.rax, r.rdx));
                (r.rax, r.rdi, r.rdx) = match step {
                    1 => (Call::Null as u64, 0, 9),
                    2 => (Call::CapInspect as u64, 4, 9),
                    _ => (Call::Yield as u64, 0, 9),
                };
            })
        });
        assert_eq!(action, Action::Reschedule, "YIELD went the slow way");
        assert_eq!(entries, 1, "NULL and CAP_INSPECT resumed inside the switch");
        // What the guest saw after each exit: NULL leaves RDX alone,
        // CAP_INSPECT returns its value in RDX.
        assert_eq!(seen[1], (Status::Ok.raw(), 9));
        assert_eq!(seen[2], (Status::Ok.raw(), 0x55));
        assert_eq!(
            platform.fast_calls,
            [(Call::CapInspect, 4)],
            "YIELD not offered"
        );
        assert_eq!(platform.core_calls.len(), 1, "only YIELD reached the core");
        assert_eq!(
            vcpu.stats.count(ExitReason::Vmcall),
            3,
            "each exit counted once"
        );
        assert_eq!(vmcs.get(fields::GUEST_RIP), 0x1009, "three VMCALLs skipped");
    }

    #[test]
    fn calls_the_fast_path_declines_go_the_slow_way_uncounted() {
        use hypercall_abi::{Call, Status};
        let mut vcpu = Vcpu::new("t");
        let mut vmcs = FakeVmcs::default();
        let mut platform = FakePlatform::default();
        let mut fast = FastPath {
            stats: &mut vcpu.stats,
            vmcs: &mut vmcs,
            platform: &mut platform,
        };
        let mut regs = GuestRegisters {
            rax: Call::CapInspect as u64,
            rdx: 5,
            ..Default::default()
        };
        assert!(!fast.handle(&mut regs), "the platform declined it");
        regs.rax = 0xdead;
        assert!(
            !fast.handle(&mut regs),
            "unknown numbers are the slow path's"
        );
        assert_eq!((regs.rax, regs.rdx), (0xdead, 5), "nothing written");
        assert_eq!(vcpu.stats.total(), 0, "nothing counted");
        assert_eq!(vmcs.get(fields::GUEST_RIP), 0, "RIP untouched");
        assert_eq!(
            FastPath::<FakeVmcs, FakePlatform>::CALLS,
            1 << Call::Null as u64 | 1 << Call::CapInspect as u64
        );
        let _ = Status::Ok;
    }
}
