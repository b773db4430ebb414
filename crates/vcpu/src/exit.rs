//! Dispatch of VM exits to one handler per exit reason.

use core::fmt;

use hypercall_abi::{Call, Status, LOG_WRITE_MAX};
use vmx::exit::{
    CrAccess, CrAccessType, EptViolation, ExitInfo, ExitReason, IoDirection, IoQualification,
};
use vmx::{fields, VmFail};

use crate::{CoreCall, GuestRegisters, LineSource, Platform, UartAnswer, Vcpu, Vmcs};

/// The raw exit reason of VMCALL (basic reason 18, no flags).
pub(crate) const VMCALL_EXIT: u32 = 18;

/// COM1's eight registers, emulated minimally by the core for now.
const COM1: core::ops::RangeInclusive<u16> = 0x3F8..=0x3FF;

/// Number of distinct basic exit reasons counted individually.
const COUNTED_REASONS: usize = 80;

/// Exit counts by basic exit reason.
#[derive(Debug, Clone)]
pub struct ExitStats {
    counts: [u64; COUNTED_REASONS],
    other: u64,
    total: u64,
}

impl Default for ExitStats {
    fn default() -> Self {
        ExitStats {
            counts: [0; COUNTED_REASONS],
            other: 0,
            total: 0,
        }
    }
}

impl ExitStats {
    #[inline]
    fn record(&mut self, basic: u16) {
        self.total += 1;
        match self.counts.get_mut(basic as usize) {
            Some(c) => *c += 1,
            None => self.other += 1,
        }
    }

    /// How many exits of `reason` were seen.
    pub fn count(&self, reason: ExitReason) -> u64 {
        self.counts
            .get(reason.basic() as usize)
            .copied()
            .unwrap_or(self.other)
    }

    /// How many exits had basic reason `basic` (0 for reasons beyond the
    /// counted ones: those are only in the total).
    pub fn count_basic(&self, basic: u16) -> u64 {
        self.counts.get(basic as usize).copied().unwrap_or(0)
    }

    /// Hypercalls, port I/O, EPT violations and all exits: what the core
    /// reports to supervisors. Cheap (the scheduler copies it after every
    /// event).
    #[inline]
    pub fn summary(&self) -> [u64; 4] {
        const VMCALL: usize = 18;
        const IO: usize = 30;
        const EPT_VIOLATION: usize = 48;
        [
            self.counts[VMCALL],
            self.counts[IO],
            self.counts[EPT_VIOLATION],
            self.total,
        ]
    }

    /// All exits seen (kept as a running count: the scheduler reads it
    /// after every event).
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// What the run loop does after an exit was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Enter the guest again.
    Resume,
    /// Stop the guest for good.
    Stop(StopReason),
    /// A hypercall the core owns changed what should run (the caller
    /// blocked, yielded, woke another domain, or is gone): the scheduler
    /// picks again.
    Reschedule,
    /// The preemption timer expired within the budget: the core may run
    /// another domain before resuming this one.
    Preempted,
    /// A PC guest halted with interrupts enabled: it waits until an
    /// interrupt is queued for it.
    Idle,
}

/// Why a guest was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The guest asked to stop with the `EXIT` hypercall and this code.
    Exited(u64),
    /// The guest executed HLT with nothing to wake it.
    Halted,
    /// The guest touched guest-physical memory it has no mapping or right for.
    EptViolation {
        /// The guest-physical address accessed.
        gpa: u64,
        /// The decoded exit qualification.
        violation: EptViolation,
        /// The guest RIP of the access.
        rip: u64,
    },
    /// The guest used up its preemption-timer budget.
    BudgetExhausted {
        /// Slices consumed.
        slices: u64,
    },
    /// The guest triple-faulted.
    TripleFault {
        /// The guest RIP at the time.
        rip: u64,
    },
    /// The guest accessed an I/O port it has no access to.
    PortDenied {
        /// The port.
        port: u16,
        /// Read or write.
        direction: IoDirection,
        /// The guest RIP of the instruction.
        rip: u64,
    },
    /// VM entry failed while checking or loading guest state (exit reason
    /// with bit 31 set).
    EntryFailed {
        /// The basic exit reason (33 invalid guest state, 34 MSR loading, 41
        /// machine check).
        reason: ExitReason,
        /// The exit qualification (which check failed).
        qualification: u64,
    },
    /// VMLAUNCH/VMRESUME or a VMREAD/VMWRITE the handler needed failed.
    EntryInstruction(VmFail),
    /// The guest executed a VMX instruction (nested VMX is not offered).
    VmxInstruction {
        /// The instruction's exit reason.
        reason: ExitReason,
        /// The guest RIP.
        rip: u64,
    },
    /// The guest wrote a control register bit the core owns (masked in the
    /// VMCS: CR4.VMXE, CR4.OSXSAVE, the bits VMX fixes), or executed CLTS
    /// or LMSW on one. A guest cannot change them: it is stopped.
    CoreOwnedCr {
        /// The control register (0 for CLTS and LMSW).
        cr: u8,
        /// The guest RIP of the instruction.
        rip: u64,
    },
    /// An exit the core does not handle (its VMCS was dumped to the log).
    Unhandled {
        /// The exit reason.
        reason: ExitReason,
        /// The exit qualification.
        qualification: u64,
        /// The guest RIP.
        rip: u64,
    },
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            StopReason::Exited(code) => write!(f, "exited with code {code}"),
            StopReason::Halted => f.write_str("halted"),
            StopReason::EptViolation {
                gpa,
                violation,
                rip,
            } => write!(
                f,
                "EPT violation at guest-physical address {gpa:#x} ({violation}), RIP {rip:#x}"
            ),
            StopReason::BudgetExhausted { slices } => write!(
                f,
                "preempted {slices} times by the VMX-preemption timer, budget exhausted"
            ),
            StopReason::TripleFault { rip } => write!(f, "triple fault at RIP {rip:#x}"),
            StopReason::PortDenied {
                port,
                direction,
                rip,
            } => write!(
                f,
                "{} port {port:#x} is not bound to this guest, RIP {rip:#x}",
                match direction {
                    IoDirection::In => "read from",
                    IoDirection::Out => "write to",
                }
            ),
            StopReason::EntryFailed {
                reason,
                qualification,
            } => write!(
                f,
                "VM entry failed: {reason} (qualification {qualification:#x})"
            ),
            StopReason::EntryInstruction(fail) => write!(f, "VM entry instruction failed: {fail}"),
            StopReason::VmxInstruction { reason, rip } => write!(
                f,
                "executed the VMX instruction {} at RIP {rip:#x}; nested VMX is not offered",
                reason.name()
            ),
            StopReason::CoreOwnedCr { cr, rip } => write!(
                f,
                "tried to change a bit of CR{cr} that the core owns, RIP {rip:#x}"
            ),
            StopReason::Unhandled {
                reason,
                qualification,
                rip,
            } => write!(
                f,
                "unhandled exit {reason} (qualification {qualification:#x}), RIP {rip:#x}"
            ),
        }
    }
}

/// Handles the exit that just happened on the current VMCS.
#[inline]
pub fn handle_exit(vcpu: &mut Vcpu, vmcs: &mut impl Vmcs, platform: &mut impl Platform) -> Action {
    let raw = vm!(vmcs.read(fields::VM_EXIT_REASON)) as u32;
    let basic = raw as u16;
    vcpu.stats.record(basic);
    // The hottest exit first, before the full decode (SDM C: VMCALL = 18).
    if raw == VMCALL_EXIT {
        return vmcall(vcpu, vmcs, platform);
    }
    let info = ExitInfo::from_raw(raw);
    if info.entry_failure {
        let qualification = vm!(vmcs.read(fields::EXIT_QUALIFICATION));
        dump_vmcs(vcpu, vmcs);
        return Action::Stop(StopReason::EntryFailed {
            reason: info.reason,
            qualification,
        });
    }
    match info.reason {
        ExitReason::Vmcall => vmcall(vcpu, vmcs, platform),
        ExitReason::Cpuid => cpuid(vcpu, vmcs, platform),
        ExitReason::Hlt if vcpu.pc => {
            vm!(skip_instruction(vmcs));
            if !vm!(crate::irq::can_wake(vmcs)) {
                // Interrupts off: nothing can ever wake it.
                Action::Stop(StopReason::Halted)
            } else if vcpu.interrupts.pending() {
                Action::Resume
            } else {
                Action::Idle
            }
        }
        ExitReason::Hlt => Action::Stop(StopReason::Halted),
        // The guest enabled interrupts: the next entry injects.
        ExitReason::InterruptWindow => Action::Resume,
        ExitReason::Rdmsr => crate::msr::rdmsr(vcpu, vmcs, platform),
        ExitReason::Wrmsr => crate::msr::wrmsr(vcpu, vmcs, platform),
        ExitReason::IoInstruction => io(vcpu, vmcs, platform),
        ExitReason::EptViolation => Action::Stop(StopReason::EptViolation {
            gpa: vm!(vmcs.read(fields::GUEST_PHYSICAL_ADDRESS)),
            violation: EptViolation::decode(vm!(vmcs.read(fields::EXIT_QUALIFICATION))),
            rip: vm!(vmcs.read(fields::GUEST_RIP)),
        }),
        ExitReason::PreemptionTimer => {
            vcpu.slices += 1;
            match vcpu.slice_budget {
                Some(budget) if vcpu.slices >= budget => {
                    Action::Stop(StopReason::BudgetExhausted {
                        slices: vcpu.slices,
                    })
                }
                _ => {
                    // The saved timer is 0 now: give the next slice in full.
                    vm!(vmcs.write(fields::VMX_PREEMPTION_TIMER_VALUE, vcpu.slice as u64));
                    Action::Preempted
                }
            }
        }
        ExitReason::Vmxon
        | ExitReason::Vmxoff
        | ExitReason::Vmclear
        | ExitReason::Vmptrld
        | ExitReason::Vmptrst
        | ExitReason::Vmread
        | ExitReason::Vmwrite
        | ExitReason::Vmlaunch
        | ExitReason::Vmresume
        | ExitReason::Invept
        | ExitReason::Invvpid
        | ExitReason::Vmfunc => Action::Stop(StopReason::VmxInstruction {
            reason: info.reason,
            rip: vm!(vmcs.read(fields::GUEST_RIP)),
        }),
        // A write to CR0 or CR4 exits only when it changes a masked bit
        // (CR3 and CR8 exiting are off; anything else is unexpected).
        ExitReason::CrAccess => {
            let qualification = vm!(vmcs.read(fields::EXIT_QUALIFICATION));
            let access = CrAccess::decode(qualification);
            let rip = vm!(vmcs.read(fields::GUEST_RIP));
            if matches!(access.cr, 0 | 4) && access.access != CrAccessType::MovFromCr {
                Action::Stop(StopReason::CoreOwnedCr { cr: access.cr, rip })
            } else {
                dump_vmcs(vcpu, vmcs);
                Action::Stop(StopReason::Unhandled {
                    reason: ExitReason::CrAccess,
                    qualification,
                    rip,
                })
            }
        }
        ExitReason::TripleFault => Action::Stop(StopReason::TripleFault {
            rip: vm!(vmcs.read(fields::GUEST_RIP)),
        }),
        reason => {
            dump_vmcs(vcpu, vmcs);
            Action::Stop(StopReason::Unhandled {
                reason,
                qualification: vm!(vmcs.read(fields::EXIT_QUALIFICATION)),
                rip: vm!(vmcs.read(fields::GUEST_RIP)),
            })
        }
    }
}

/// Moves the guest past the instruction that exited.
#[inline]
pub(crate) fn skip_instruction(vmcs: &mut impl Vmcs) -> Result<(), VmFail> {
    let rip = vmcs.read(fields::GUEST_RIP)?;
    let len = vmcs.read(fields::VM_EXIT_INSTRUCTION_LEN)?;
    vmcs.write(fields::GUEST_RIP, rip.wrapping_add(len))
}

/// The fast path, called by the world switch before it returns to Rust for
/// VMCALL exits whose call number is in [`crate::FastPath::CALLS`]: answers
/// `NULL` and the calls [`Platform::fast_hypercall`] takes, and reports
/// `false` for the rest, which then reach [`handle_exit`] without having
/// been counted.
///
/// Reads only the caller-saved registers of `regs` (RAX, RDI, RDX) and
/// writes only RAX and RDX. If a VMCS access fails it reports `false`; the
/// slow path then meets the same failure and stops the guest.
#[inline]
pub(crate) fn fast_exit(
    regs: &mut GuestRegisters,
    stats: &mut ExitStats,
    vmcs: &mut impl Vmcs,
    platform: &mut impl Platform,
) -> bool {
    let (status, value) = match Call::from_raw(regs.rax) {
        Some(Call::Null) => (Status::Ok, regs.rdx),
        Some(call) => match platform.fast_hypercall(call, regs) {
            Some(answer) => answer,
            None => return false,
        },
        None => return false,
    };
    if skip_instruction(vmcs).is_err() {
        return false;
    }
    stats.record(VMCALL_EXIT as u16);
    regs.rax = status.raw();
    regs.rdx = value;
    true
}

/// VMCALL on the slow path: this crate's own calls (`NULL`, `LOG_WRITE`, `LOG_FLUSH`,
/// `EXIT`, unknown numbers) out of line, the rest to the core.
#[inline]
fn vmcall(vcpu: &mut Vcpu, vmcs: &mut impl Vmcs, platform: &mut impl Platform) -> Action {
    match Call::from_raw(vcpu.regs.rax) {
        None | Some(Call::Null | Call::Exit | Call::LogWrite | Call::LogFlush) => {
            own_call(vcpu, vmcs, platform)
        }
        Some(call) => core_call(vcpu, vmcs, platform, call),
    }
}

/// A hypercall the core owns, handed to [`Platform::core_hypercall`].
#[inline(never)]
fn core_call(
    vcpu: &mut Vcpu,
    vmcs: &mut impl Vmcs,
    platform: &mut impl Platform,
    call: Call,
) -> Action {
    let (status, value, then) = match platform.core_hypercall(call, &vcpu.regs) {
        CoreCall::Return(s, v) => (s, v, Action::Resume),
        CoreCall::Switch(s, v) => (s, v, Action::Reschedule),
        // Completed later (on wake-up), or never (the caller is gone).
        CoreCall::Block | CoreCall::Gone => return Action::Reschedule,
    };
    vcpu.regs.rax = status.raw();
    if let Some(v) = value {
        vcpu.regs.rdx = v;
    }
    vm!(skip_instruction(vmcs));
    then
}

/// The hypercalls this crate answers itself, other than `NULL`.
#[inline(never)]
fn own_call(vcpu: &mut Vcpu, vmcs: &mut impl Vmcs, platform: &mut impl Platform) -> Action {
    let regs = &vcpu.regs;
    let call = Call::from_raw(regs.rax);
    let status = match call {
        Some(Call::Exit) => return Action::Stop(StopReason::Exited(regs.rdi)),
        Some(Call::LogWrite) => log_write(vcpu, platform),
        Some(Call::LogFlush) => {
            let gpa = regs.rdi;
            match crate::logring::flush(vcpu, platform, gpa) {
                Ok(printed) => {
                    vcpu.regs.rdx = printed;
                    Status::Ok
                }
                Err(s) => s,
            }
        }
        Some(Call::Null) => Status::Ok,
        _ => Status::UnknownCall,
    };
    // A call that printed may have put its caller on hold: it completes
    // on wake-up (`LOG_FLUSH`'s RDX stays). A failed one (frames printed
    // before its ring turned out corrupt) is never held: its error goes
    // back now.
    if matches!(call, Some(Call::LogWrite | Call::LogFlush))
        && platform.console_hold(status == Status::Ok)
    {
        return Action::Reschedule;
    }
    if status != Status::Ok {
        vcpu.refused += 1;
    }
    vcpu.regs.rax = status.raw();
    vm!(skip_instruction(vmcs));
    Action::Resume
}

/// Finishes a hypercall the core dispatched: RAX = `status`, RDX = `value`
/// (when given), and the guest moves past its VMCALL.
pub fn complete_hypercall(
    vcpu: &mut Vcpu,
    vmcs: &mut impl Vmcs,
    status: Status,
    value: Option<u64>,
) -> Result<(), VmFail> {
    vcpu.regs.rax = status.raw();
    if let Some(v) = value {
        vcpu.regs.rdx = v;
    }
    skip_instruction(vmcs)
}

/// `LOG_WRITE`: copies at most [`LOG_WRITE_MAX`] bytes from guest memory and
/// prints them as one line (control bytes masked). Kept out of line so its
/// buffers do not weigh on the hot exit path.
#[inline(never)]
fn log_write(vcpu: &mut Vcpu, platform: &mut impl Platform) -> Status {
    let (name, gpa, len) = (vcpu.name, vcpu.regs.rdi, vcpu.regs.rsi);
    if len > LOG_WRITE_MAX {
        return Status::InvalidArgument;
    }
    let mut buf = [0u8; LOG_WRITE_MAX as usize];
    let buf = &mut buf[..len as usize];
    if gpa.checked_add(len).is_none() || !platform.read_guest(gpa, buf) {
        return Status::InvalidAddress;
    }
    let mut text = [0u8; LOG_WRITE_MAX as usize];
    let mut n = 0;
    for &b in buf.iter() {
        if b == b'\n' || b == b'\r' {
            continue;
        }
        text[n] = if (0x20..=0x7e).contains(&b) { b } else { b'.' };
        n += 1;
    }
    vcpu.recent.push(&text[..n]);
    let text = core::str::from_utf8(&text[..n]).unwrap_or("");
    platform.guest_line(name, LineSource::Hypercall, text);
    Status::Ok
}

#[inline(never)]
fn cpuid(vcpu: &mut Vcpu, vmcs: &mut impl Vmcs, platform: &mut impl Platform) -> Action {
    let leaf = vcpu.regs.rax as u32;
    let subleaf = vcpu.regs.rcx as u32;
    // The host is asked only for the leaves the policy passes on.
    let host = match leaf {
        0x4000_0000..=0x4fff_ffff => [0; 4],
        _ => platform.host_cpuid(leaf, subleaf),
    };
    let [a, b, c, d] = crate::cpuid::policy(leaf, subleaf, host, platform.tsc_hz());
    let regs = &mut vcpu.regs;
    regs.rax = a as u64;
    regs.rbx = b as u64;
    regs.rcx = c as u64;
    regs.rdx = d as u64;
    vm!(skip_instruction(vmcs));
    Action::Resume
}

#[inline(never)]
fn io(vcpu: &mut Vcpu, vmcs: &mut impl Vmcs, platform: &mut impl Platform) -> Action {
    let qualification = vm!(vmcs.read(fields::EXIT_QUALIFICATION));
    let rip = vm!(vmcs.read(fields::GUEST_RIP));
    let Some(io) = IoQualification::decode(qualification) else {
        dump_vmcs(vcpu, vmcs);
        return Action::Stop(StopReason::Unhandled {
            reason: ExitReason::IoInstruction,
            qualification,
            rip,
        });
    };
    if !COM1.contains(&io.port) && vcpu.pc && !io.string && !io.rep {
        // A legacy device the platform service emulates (byte accesses).
        let served = hypercall_abi::ioreq::PC_PORTS
            .iter()
            .position(|&p| p == io.port);
        if let (Some(index), 1) = (served, io.size) {
            let write = io.direction == IoDirection::Out;
            match platform.pc_access(index as u8, write, vcpu.regs.rax as u8) {
                UartAnswer::Emulate => {}
                UartAnswer::Done(value) => {
                    if !write {
                        set_in_value(&mut vcpu.regs.rax, 1, value);
                    }
                    vm!(skip_instruction(vmcs));
                    return Action::Resume;
                }
                UartAnswer::Wait | UartAnswer::Busy => return Action::Reschedule,
            }
        }
        // Nothing serves this port: as on a PC without the device, reads
        // float to all ones and writes go nowhere.
        vcpu.absent_ports += 1;
        if io.direction == IoDirection::In {
            set_in_value(&mut vcpu.regs.rax, io.size, u32::MAX);
        }
        vm!(skip_instruction(vmcs));
        return Action::Resume;
    }
    if !COM1.contains(&io.port) {
        return Action::Stop(StopReason::PortDenied {
            port: io.port,
            direction: io.direction,
            rip,
        });
    }
    if io.string || io.rep {
        // INS/OUTS are not emulated yet; refuse rather than guess.
        dump_vmcs(vcpu, vmcs);
        return Action::Stop(StopReason::Unhandled {
            reason: ExitReason::IoInstruction,
            qualification,
            rip,
        });
    }
    let offset = io.port - COM1.start();
    let write = io.direction == IoDirection::Out;
    match platform.uart_access(offset as u8, write, vcpu.regs.rax as u8) {
        UartAnswer::Emulate => {}
        UartAnswer::Done(value) => {
            if !write {
                set_in_value(&mut vcpu.regs.rax, io.size, value);
            }
            vm!(skip_instruction(vmcs));
            return Action::Resume;
        }
        UartAnswer::Wait | UartAnswer::Busy => return Action::Reschedule,
    }
    let mut held = false;
    match io.direction {
        IoDirection::Out => {
            let byte = vcpu.regs.rax as u8;
            match offset {
                0 if !vcpu.uart_dlab => {
                    // A line it completed may have put the guest on hold:
                    // the write is done, and the guest waits before its
                    // next instruction. Bytes that print nothing do not ask.
                    held = vcpu.uart.push(vcpu.name, byte, platform) && platform.console_hold(true);
                }
                3 => vcpu.uart_dlab = byte & 0x80 != 0,
                7 => vcpu.uart_scratch = byte,
                // Divisor, interrupt enable, FIFO and modem control writes are
                // accepted and have no effect on this minimal model.
                _ => {}
            }
        }
        IoDirection::In => {
            let value: u8 = match offset {
                // Line status: transmitter empty and holding register empty.
                5 => 0x60,
                // Interrupt identification: no interrupt pending.
                2 => 0x01,
                3 if vcpu.uart_dlab => 0x80,
                7 => vcpu.uart_scratch,
                _ => 0,
            };
            set_in_value(&mut vcpu.regs.rax, io.size, value);
        }
    }
    vm!(skip_instruction(vmcs));
    if held {
        Action::Reschedule
    } else {
        Action::Resume
    }
}

/// Puts what an `IN` of `size` bytes read (`value`, cut to that size) into
/// RAX: a 32-bit `IN` zero-extends into RAX; narrower ones keep the rest.
fn set_in_value(rax: &mut u64, size: u8, value: impl Into<u32>) {
    let mask: u64 = match size {
        1 => 0xff,
        2 => 0xffff,
        _ => 0xffff_ffff,
    };
    let value = u64::from(value.into()) & mask;
    *rax = if size == 4 {
        value
    } else {
        (*rax & !mask) | value
    };
}

/// Completes a forwarded `IN` (see [`UartAnswer::Wait`]): the value goes
/// into RAX as the instruction's size says, and the guest moves past it.
pub fn complete_in(vcpu: &mut Vcpu, vmcs: &mut impl Vmcs, value: u8) -> Result<(), VmFail> {
    let q = vmcs.read(fields::EXIT_QUALIFICATION)?;
    let size = IoQualification::decode(q).map_or(1, |io| io.size);
    set_in_value(&mut vcpu.regs.rax, size, value);
    skip_instruction(vmcs)
}

/// Logs the VMCS fields that explain an exit the core did not handle.
fn dump_vmcs(vcpu: &Vcpu, vmcs: &impl Vmcs) {
    const DUMPED: &[u32] = &[
        fields::VM_EXIT_REASON,
        fields::EXIT_QUALIFICATION,
        fields::VM_INSTRUCTION_ERROR,
        fields::VM_EXIT_INTR_INFO,
        fields::VM_EXIT_INSTRUCTION_LEN,
        fields::GUEST_PHYSICAL_ADDRESS,
        fields::GUEST_LINEAR_ADDRESS,
        fields::GUEST_RIP,
        fields::GUEST_RSP,
        fields::GUEST_RFLAGS,
        fields::GUEST_CR0,
        fields::GUEST_CR3,
        fields::GUEST_CR4,
        fields::GUEST_IA32_EFER,
        fields::GUEST_CS_SELECTOR,
        fields::GUEST_CS_AR_BYTES,
        fields::GUEST_ACTIVITY_STATE,
        fields::GUEST_INTERRUPTIBILITY_INFO,
    ];
    log::error!("guest {}: VMCS dump", vcpu.name);
    for &field in DUMPED {
        let name = fields::name(field).unwrap_or("?");
        match vmcs.read(field) {
            Ok(v) => log::error!("  {name:<28} {v:#018x}"),
            Err(e) => log::error!("  {name:<28} unreadable ({e})"),
        }
    }
    let r = &vcpu.regs;
    log::error!(
        "  rax {:#x} rbx {:#x} rcx {:#x} rdx {:#x} rsi {:#x} rdi {:#x} rbp {:#x}",
        r.rax,
        r.rbx,
        r.rcx,
        r.rdx,
        r.rsi,
        r.rdi,
        r.rbp
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakePlatform, FakeVmcs};

    fn exit(reason: ExitReason, qualification: u64) -> FakeVmcs {
        let mut vmcs = FakeVmcs::default();
        vmcs.set(fields::VM_EXIT_REASON, reason.basic() as u64);
        vmcs.set(fields::EXIT_QUALIFICATION, qualification);
        vmcs.set(fields::GUEST_RIP, 0x20_0000);
        vmcs.set(fields::VM_EXIT_INSTRUCTION_LEN, 2);
        vmcs
    }

    fn platform_with(memory: &[u8]) -> FakePlatform {
        FakePlatform {
            memory: memory.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn cpuid_signature_leaf_answers_bulkhead() {
        let mut vcpu = Vcpu::new("g");
        vcpu.regs.rax = 0x4000_0000;
        let mut vmcs = exit(ExitReason::Cpuid, 0);
        let mut p = FakePlatform::default();
        assert_eq!(handle_exit(&mut vcpu, &mut vmcs, &mut p), Action::Resume);
        let mut sig = Vec::new();
        for r in [vcpu.regs.rbx, vcpu.regs.rcx, vcpu.regs.rdx] {
            sig.extend_from_slice(&(r as u32).to_le_bytes());
        }
        assert_eq!(sig, b"BulkheadCore");
        assert_eq!(vcpu.regs.rax, 0x4000_0000);
        assert_eq!(vmcs.get(fields::GUEST_RIP), 0x20_0002);
    }

    #[test]
    fn cpuid_leaf_1_hides_vmx_and_sets_the_hypervisor_bit() {
        let mut vcpu = Vcpu::new("g");
        vcpu.regs.rax = 1;
        let mut vmcs = exit(ExitReason::Cpuid, 0);
        handle_exit(&mut vcpu, &mut vmcs, &mut FakePlatform::default());
        assert_eq!(vcpu.regs.rcx & (1 << 5), 0);
        assert_ne!(vcpu.regs.rcx & (1 << 31), 0);
        // Leaves go through the policy (the brand string passes through);
        // upper register halves are cleared.
        vcpu.regs.rax = 0xffff_ffff_8000_0002;
        vcpu.regs.rbx = u64::MAX;
        let mut vmcs = exit(ExitReason::Cpuid, 0);
        handle_exit(&mut vcpu, &mut vmcs, &mut FakePlatform::default());
        assert_eq!(vcpu.regs.rax, 0x8000_0002);
        assert_eq!(vcpu.regs.rbx, 0x11);
    }

    #[test]
    fn log_write_prints_the_guest_message() {
        let mut memory = vec![0u8; 0x2000];
        memory[0x1000..0x1000 + 7].copy_from_slice(b"hello\x07\n");
        let mut p = platform_with(&memory);
        let mut vcpu = Vcpu::new("g");
        vcpu.regs.rax = Call::LogWrite as u64;
        vcpu.regs.rdi = 0x1000;
        vcpu.regs.rsi = 7;
        let mut vmcs = exit(ExitReason::Vmcall, 0);
        assert_eq!(handle_exit(&mut vcpu, &mut vmcs, &mut p), Action::Resume);
        assert_eq!(vcpu.regs.rax, Status::Ok.raw());
        assert_eq!(
            p.lines,
            [("g".into(), LineSource::Hypercall, "hello.".into())]
        );
    }

    #[test]
    fn a_log_write_the_platform_holds_completes_on_wake_up() {
        let mut memory = vec![0u8; 0x2000];
        memory[0x1000..0x1000 + 5].copy_from_slice(b"hello");
        let mut p = platform_with(&memory);
        p.hold = true;
        let mut vcpu = Vcpu::new("g");
        vcpu.regs.rax = Call::LogWrite as u64;
        vcpu.regs.rdi = 0x1000;
        vcpu.regs.rsi = 5;
        let mut vmcs = exit(ExitReason::Vmcall, 0);
        let rip = vmcs.get(fields::GUEST_RIP);
        assert_eq!(
            handle_exit(&mut vcpu, &mut vmcs, &mut p),
            Action::Reschedule
        );
        assert_eq!(p.lines.len(), 1, "printed");
        // Not completed: neither RAX nor RIP moved (the wake-up does both).
        assert_eq!(vcpu.regs.rax, Call::LogWrite as u64);
        assert_eq!(vmcs.get(fields::GUEST_RIP), rip);
    }

    #[test]
    fn a_failed_log_flush_is_never_held() {
        let mut p = platform_with(&[0u8; 0x2000]);
        p.hold = true;
        let mut vcpu = Vcpu::new("g");
        vcpu.regs.rax = Call::LogFlush as u64;
        vcpu.regs.rdi = 0x1001; // unaligned
        let mut vmcs = exit(ExitReason::Vmcall, 0);
        let rip = vmcs.get(fields::GUEST_RIP);
        assert_eq!(handle_exit(&mut vcpu, &mut vmcs, &mut p), Action::Resume);
        assert_eq!(vcpu.regs.rax, Status::InvalidAddress.raw());
        assert_ne!(vmcs.get(fields::GUEST_RIP), rip, "completed now");
    }

    #[test]
    fn recent_log_keeps_the_last_whole_lines() {
        let mut r = crate::RecentLog::new();
        r.push(b"one");
        r.push(b"two");
        assert_eq!(r.bytes(), b"one\ntwo\n");
        let long = [b'x'; 200];
        r.push(&long);
        // 96 kept of the long line; everything fits in 256 still.
        assert_eq!(r.bytes().len(), 8 + crate::RecentLog::LINE_MAX + 1);
        for i in 0..40u8 {
            r.push(&[b'a' + i % 26; 20]);
        }
        let b = r.bytes();
        assert!(b.len() <= hypercall_abi::peek::LOG_BYTES as usize);
        assert!(b.ends_with(&[[b'a' + 39 % 26; 20].as_slice(), b"\n"].concat()));
        // Only whole lines: every line is 20 bytes.
        assert!(b
            .split(|&c| c == b'\n')
            .all(|l| l.is_empty() || l.len() == 20));
        r.push(b"");
        assert!(r.bytes().ends_with(b"\n\n"));
    }

    #[test]
    fn log_write_refuses_bad_lengths_and_addresses() {
        let mut p = platform_with(&[0u8; 0x1000]);
        let cases = [
            (0x0, LOG_WRITE_MAX + 1, Status::InvalidArgument),
            (0xff0, 0x20, Status::InvalidAddress),
            (u64::MAX - 2, 8, Status::InvalidAddress),
            (0x10_0000, 1, Status::InvalidAddress),
        ];
        for (gpa, len, expected) in cases {
            let mut vcpu = Vcpu::new("g");
            vcpu.regs.rax = Call::LogWrite as u64;
            vcpu.regs.rdi = gpa;
            vcpu.regs.rsi = len;
            let mut vmcs = exit(ExitReason::Vmcall, 0);
            assert_eq!(handle_exit(&mut vcpu, &mut vmcs, &mut p), Action::Resume);
            assert_eq!(vcpu.regs.rax, expected.raw(), "gpa {gpa:#x} len {len}");
        }
        assert!(p.lines.is_empty());
    }

    #[test]
    fn unknown_hypercalls_answer_unknown_call_and_exit_stops() {
        let mut vcpu = Vcpu::new("g");
        vcpu.regs.rax = 0xdead;
        let mut vmcs = exit(ExitReason::Vmcall, 0);
        let mut p = FakePlatform::default();
        assert_eq!(handle_exit(&mut vcpu, &mut vmcs, &mut p), Action::Resume);
        assert_eq!(vcpu.regs.rax, Status::UnknownCall.raw());
        assert_eq!(vcpu.refused, 1);
        vcpu.regs.rax = Call::Exit as u64;
        vcpu.regs.rdi = 3;
        let mut vmcs = exit(ExitReason::Vmcall, 0);
        assert_eq!(
            handle_exit(&mut vcpu, &mut vmcs, &mut p),
            Action::Stop(StopReason::Exited(3))
        );
    }

    /// Exit qualification of a one-byte OUT/IN with DX to `port`.
    fn io_qual(port: u16, input: bool) -> u64 {
        ((port as u64) << 16) | ((input as u64) << 3)
    }

    #[test]
    fn a_pc_guest_waits_in_hlt_and_a_rust_domain_stops() {
        let hlt = |pc: bool, rflags: u64, pending: bool| {
            let mut vcpu = Vcpu::new("g");
            vcpu.pc = pc;
            if pending {
                vcpu.interrupts.push(0x30);
            }
            let mut vmcs = exit(ExitReason::Hlt, 0);
            vmcs.set(fields::GUEST_RFLAGS, rflags);
            let action = handle_exit(&mut vcpu, &mut vmcs, &mut FakePlatform::default());
            (action, vmcs.get(fields::GUEST_RIP))
        };
        assert_eq!(hlt(true, 0x202, false), (Action::Idle, 0x20_0002));
        assert_eq!(hlt(true, 0x202, true), (Action::Resume, 0x20_0002));
        // Interrupts off: it can never wake (Linux's halt after poweroff).
        assert_eq!(hlt(true, 0x2, true).0, Action::Stop(StopReason::Halted));
        assert_eq!(hlt(false, 0x202, true).0, Action::Stop(StopReason::Halted));
    }

    #[test]
    fn a_pc_guest_finds_unserved_ports_absent() {
        let mut vcpu = Vcpu::new("g");
        vcpu.pc = true;
        vcpu.regs.rax = 0x1234_5600;
        let mut vmcs = exit(ExitReason::IoInstruction, io_qual(0x21, true));
        let mut p = FakePlatform::default();
        assert_eq!(handle_exit(&mut vcpu, &mut vmcs, &mut p), Action::Resume);
        assert_eq!(vcpu.regs.rax, 0x1234_56ff);
        // A 32-bit IN (size field 3) from the PCI data port.
        let mut vmcs = exit(ExitReason::IoInstruction, io_qual(0xcfc, true) | 3);
        vcpu.regs.rax = u64::MAX;
        assert_eq!(handle_exit(&mut vcpu, &mut vmcs, &mut p), Action::Resume);
        assert_eq!(vcpu.regs.rax, 0xffff_ffff);
        let mut vmcs = exit(ExitReason::IoInstruction, io_qual(0xcf8, false) | 3);
        assert_eq!(handle_exit(&mut vcpu, &mut vmcs, &mut p), Action::Resume);
        assert_eq!(vcpu.absent_ports, 3);
        // A Rust domain is stopped for the same access.
        let mut vcpu = Vcpu::new("g");
        let mut vmcs = exit(ExitReason::IoInstruction, io_qual(0x21, true));
        assert!(matches!(
            handle_exit(&mut vcpu, &mut vmcs, &mut p),
            Action::Stop(StopReason::PortDenied { port: 0x21, .. })
        ));
    }

    #[test]
    fn out_to_com1_is_emulated_and_printed_per_line() {
        let mut vcpu = Vcpu::new("g");
        let mut p = FakePlatform::default();
        for &b in b"ok\n" {
            vcpu.regs.rax = 0xffff_ff00 | b as u64;
            let mut vmcs = exit(ExitReason::IoInstruction, io_qual(0x3f8, false));
            assert_eq!(handle_exit(&mut vcpu, &mut vmcs, &mut p), Action::Resume);
        }
        assert_eq!(p.lines, [("g".into(), LineSource::Uart, "ok".into())]);
        // Reading LSR says the transmitter is empty; only AL changes.
        vcpu.regs.rax = 0x1234_5678;
        let mut vmcs = exit(ExitReason::IoInstruction, io_qual(0x3fd, true));
        handle_exit(&mut vcpu, &mut vmcs, &mut p);
        assert_eq!(vcpu.regs.rax, 0x1234_5660);
    }

    #[test]
    fn a_com1_write_that_puts_the_guest_on_hold_completes_first() {
        let mut vcpu = Vcpu::new("g");
        let mut p = FakePlatform {
            hold: true,
            ..Default::default()
        };
        vcpu.regs.rax = 0xffff_ff00 | b'\n' as u64;
        let mut vmcs = exit(ExitReason::IoInstruction, io_qual(0x3f8, false));
        assert_eq!(
            handle_exit(&mut vcpu, &mut vmcs, &mut p),
            Action::Reschedule
        );
        // Done: past the OUT, RAX as the guest left it.
        assert_eq!(vmcs.get(fields::GUEST_RIP), 0x20_0002);
        assert_eq!(vcpu.regs.rax, 0xffff_ff00 | b'\n' as u64);
        // Bytes that print no line, and other registers, are not asked
        // about.
        vcpu.regs.rax = u64::from(b'x');
        let mut vmcs = exit(ExitReason::IoInstruction, io_qual(0x3f8, false));
        assert_eq!(handle_exit(&mut vcpu, &mut vmcs, &mut p), Action::Resume);
        vcpu.regs.rax = 0x03;
        let mut vmcs = exit(ExitReason::IoInstruction, io_qual(0x3fb, false));
        assert_eq!(handle_exit(&mut vcpu, &mut vmcs, &mut p), Action::Resume);
    }

    #[test]
    fn uart_accesses_are_forwarded_when_the_core_says_so() {
        let mut vcpu = Vcpu::new("g");
        let mut p = FakePlatform {
            uart_answer: Some(UartAnswer::Done(0x60)),
            ..Default::default()
        };
        vcpu.regs.rax = 0xaabb_cc00;
        let mut vmcs = exit(ExitReason::IoInstruction, io_qual(0x3fd, true));
        assert_eq!(handle_exit(&mut vcpu, &mut vmcs, &mut p), Action::Resume);
        assert_eq!(vcpu.regs.rax, 0xaabb_cc60);
        assert_eq!(vmcs.get(fields::GUEST_RIP), 0x20_0002);
        vcpu.regs.rax = b'x' as u64;
        let mut vmcs = exit(ExitReason::IoInstruction, io_qual(0x3f8, false));
        assert_eq!(handle_exit(&mut vcpu, &mut vmcs, &mut p), Action::Resume);
        assert_eq!(p.uart_accesses, [(5, false, 0), (0, true, b'x')]);
        assert!(p.lines.is_empty(), "nothing emulated here");
        // A forwarded read waits and is completed later; a busy queue retries.
        p.uart_answer = Some(UartAnswer::Wait);
        let mut vmcs = exit(ExitReason::IoInstruction, io_qual(0x3fd, true));
        assert_eq!(
            handle_exit(&mut vcpu, &mut vmcs, &mut p),
            Action::Reschedule
        );
        assert_eq!(vmcs.get(fields::GUEST_RIP), 0x20_0000);
        complete_in(&mut vcpu, &mut vmcs, 0x21).unwrap();
        assert_eq!(vcpu.regs.rax & 0xff, 0x21);
        assert_eq!(vmcs.get(fields::GUEST_RIP), 0x20_0002);
        p.uart_answer = Some(UartAnswer::Busy);
        let mut vmcs = exit(ExitReason::IoInstruction, io_qual(0x3f8, false));
        assert_eq!(
            handle_exit(&mut vcpu, &mut vmcs, &mut p),
            Action::Reschedule
        );
        assert_eq!(vmcs.get(fields::GUEST_RIP), 0x20_0000, "retried");
    }

    #[test]
    fn other_ports_and_string_io_stop_the_guest() {
        let mut vcpu = Vcpu::new("g");
        let mut p = FakePlatform::default();
        let mut vmcs = exit(ExitReason::IoInstruction, io_qual(0x80, false));
        assert_eq!(
            handle_exit(&mut vcpu, &mut vmcs, &mut p),
            Action::Stop(StopReason::PortDenied {
                port: 0x80,
                direction: IoDirection::Out,
                rip: 0x20_0000
            })
        );
        let mut vmcs = exit(ExitReason::IoInstruction, io_qual(0x3f8, false) | 1 << 4);
        assert!(matches!(
            handle_exit(&mut vcpu, &mut vmcs, &mut p),
            Action::Stop(StopReason::Unhandled { .. })
        ));
    }

    #[test]
    fn kernel_hypercalls_are_handed_to_the_core_and_completed() {
        let mut vcpu = Vcpu::new("g");
        vcpu.regs.rax = Call::ChannelNotify as u64;
        vcpu.regs.rdi = 5;
        let mut p = FakePlatform {
            core_answer: Some(CoreCall::Return(Status::EmptySlot, Some(9))),
            ..Default::default()
        };
        let mut vmcs = exit(ExitReason::Vmcall, 0);
        assert_eq!(handle_exit(&mut vcpu, &mut vmcs, &mut p), Action::Resume);
        assert_eq!(p.core_calls, [(Call::ChannelNotify, [5, 0, 0, 0])]);
        assert_eq!((vcpu.regs.rax, vcpu.regs.rdx), (Status::EmptySlot.raw(), 9));
        assert_eq!(vmcs.get(fields::GUEST_RIP), 0x20_0002);
        assert_eq!(vcpu.refused, 0, "the core counts its own refusals");
        // Switch completes the call, then reschedules.
        vcpu.regs.rax = Call::Yield as u64;
        p.core_answer = Some(CoreCall::Switch(Status::Ok, None));
        let mut vmcs = exit(ExitReason::Vmcall, 0);
        assert_eq!(
            handle_exit(&mut vcpu, &mut vmcs, &mut p),
            Action::Reschedule
        );
        assert_eq!(vmcs.get(fields::GUEST_RIP), 0x20_0002);
        // Block leaves the call incomplete until complete_hypercall.
        vcpu.regs.rax = Call::ChannelWait as u64;
        p.core_answer = Some(CoreCall::Block);
        let mut vmcs = exit(ExitReason::Vmcall, 0);
        assert_eq!(
            handle_exit(&mut vcpu, &mut vmcs, &mut p),
            Action::Reschedule
        );
        assert_eq!(
            vmcs.get(fields::GUEST_RIP),
            0x20_0000,
            "RIP moves only on completion"
        );
        complete_hypercall(&mut vcpu, &mut vmcs, Status::TimedOut, None).unwrap();
        assert_eq!(vcpu.regs.rax, Status::TimedOut.raw());
        assert_eq!(vmcs.get(fields::GUEST_RIP), 0x20_0002);
    }

    #[test]
    fn vmx_instructions_in_a_guest_stop_it() {
        for reason in [ExitReason::Vmxon, ExitReason::Vmread, ExitReason::Vmlaunch] {
            let mut vcpu = Vcpu::new("g");
            let mut vmcs = exit(reason, 0);
            assert!(matches!(
                handle_exit(&mut vcpu, &mut vmcs, &mut FakePlatform::default()),
                Action::Stop(StopReason::VmxInstruction { .. })
            ));
        }
    }

    #[test]
    fn ept_violation_reports_the_address_and_stops() {
        let mut vcpu = Vcpu::new("g");
        let mut vmcs = exit(ExitReason::EptViolation, 0b010);
        vmcs.set(fields::GUEST_PHYSICAL_ADDRESS, 0x80_0000);
        let action = handle_exit(&mut vcpu, &mut vmcs, &mut FakePlatform::default());
        let Action::Stop(reason @ StopReason::EptViolation { gpa, violation, .. }) = action else {
            panic!("{action:?}");
        };
        assert_eq!(gpa, 0x80_0000);
        assert!(violation.write);
        let text = format!("{reason}");
        assert!(text.contains("0x800000"), "{text}");
    }

    #[test]
    fn preemption_timer_resumes_until_the_budget_is_used() {
        let mut vcpu = Vcpu::new("g");
        vcpu.slice_budget = Some(3);
        vcpu.slice = 77;
        let mut p = FakePlatform::default();
        for _ in 0..2 {
            let mut vmcs = exit(ExitReason::PreemptionTimer, 0);
            assert_eq!(handle_exit(&mut vcpu, &mut vmcs, &mut p), Action::Preempted);
            assert_eq!(
                vmcs.get(fields::VMX_PREEMPTION_TIMER_VALUE),
                77,
                "next slice is full"
            );
        }
        let mut vmcs = exit(ExitReason::PreemptionTimer, 0);
        assert_eq!(
            handle_exit(&mut vcpu, &mut vmcs, &mut p),
            Action::Stop(StopReason::BudgetExhausted { slices: 3 })
        );
        assert_eq!(vcpu.stats.count(ExitReason::PreemptionTimer), 3);
        assert_eq!(vcpu.stats.summary(), [0, 0, 0, 3]);
    }

    #[test]
    fn a_write_to_a_core_owned_control_register_bit_stops_the_guest() {
        let mut p = FakePlatform::default();
        let mut vcpu = Vcpu::new("g");
        // MOV to CR4 from RAX (qualification: CR 4, type 0, GPR 0).
        let mut vmcs = exit(ExitReason::CrAccess, 4);
        vmcs.set(fields::GUEST_RIP, 0x1234);
        let action = handle_exit(&mut vcpu, &mut vmcs, &mut p);
        assert_eq!(
            action,
            Action::Stop(StopReason::CoreOwnedCr { cr: 4, rip: 0x1234 })
        );
        if let Action::Stop(reason) = action {
            assert_eq!(
                reason.to_string(),
                "tried to change a bit of CR4 that the core owns, RIP 0x1234"
            );
        }
        // A CR3 access (its exiting is off) would be something else.
        let mut vmcs = exit(ExitReason::CrAccess, 3);
        assert!(matches!(
            handle_exit(&mut vcpu, &mut vmcs, &mut p),
            Action::Stop(StopReason::Unhandled { .. })
        ));
    }

    #[test]
    fn entry_failures_triple_faults_and_unknown_exits_stop_without_panicking() {
        let mut p = FakePlatform::default();
        let mut vcpu = Vcpu::new("g");
        let mut vmcs = exit(ExitReason::InvalidGuestState, 0);
        vmcs.set(fields::VM_EXIT_REASON, (1 << 31) | 33);
        assert_eq!(
            handle_exit(&mut vcpu, &mut vmcs, &mut p),
            Action::Stop(StopReason::EntryFailed {
                reason: ExitReason::InvalidGuestState,
                qualification: 0
            })
        );
        let mut vmcs = exit(ExitReason::TripleFault, 0);
        assert_eq!(
            handle_exit(&mut vcpu, &mut vmcs, &mut p),
            Action::Stop(StopReason::TripleFault { rip: 0x20_0000 })
        );
        // Every possible basic reason is either handled or stops the guest.
        for basic in 0..=u16::MAX {
            let mut vmcs = exit(ExitReason::from_basic(basic), 0);
            vmcs.set(fields::VM_EXIT_REASON, basic as u64);
            let _ = handle_exit(&mut vcpu, &mut vmcs, &mut p);
        }
    }
}

#[cfg(test)]
mod hostile {
    //! Whatever a guest leaves in its registers and whatever the VMCS says,
    //! the handlers answer or stop the guest; they never panic.
    use super::*;
    use crate::testing::{FakePlatform, FakeVmcs};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_exit_with_any_registers_is_handled_without_panic(
            raw_reason in prop_oneof![0u64..80, any::<u32>().prop_map(u64::from)],
            qualification in any::<u64>(),
            rip in any::<u64>(),
            len in any::<u64>(),
            gpa in any::<u64>(),
            regs in proptest::array::uniform16(any::<u64>()),
            call in prop_oneof![0u64..4, any::<u64>()],
            memory in proptest::collection::vec(any::<u8>(), 0..600),
            pc in any::<bool>(),
            rflags in any::<u64>(),
        ) {
            let mut vcpu = Vcpu::new("fuzz");
            vcpu.pc = pc;
            for (n, v) in regs.iter().enumerate() {
                vcpu.regs.set_gpr(n as u8, *v);
            }
            vcpu.regs.rax = call;
            vcpu.slice_budget = Some(2);
            let mut vmcs = FakeVmcs::default();
            vmcs.set(fields::VM_EXIT_REASON, raw_reason);
            vmcs.set(fields::EXIT_QUALIFICATION, qualification);
            vmcs.set(fields::GUEST_RIP, rip);
            vmcs.set(fields::VM_EXIT_INSTRUCTION_LEN, len);
            vmcs.set(fields::GUEST_PHYSICAL_ADDRESS, gpa);
            vmcs.set(fields::GUEST_RFLAGS, rflags);
            let mut platform = FakePlatform { memory, ..Default::default() };
            let action = handle_exit(&mut vcpu, &mut vmcs, &mut platform);
            if let Action::Preempted = action {
                prop_assert_eq!(ExitInfo::from_raw(raw_reason as u32).reason, ExitReason::PreemptionTimer);
            }
            if let Action::Resume = action {
                // Only exits the core handles resume the guest.
                let reason = ExitInfo::from_raw(raw_reason as u32);
                prop_assert!(!reason.entry_failure);
                prop_assert!(matches!(
                    reason.reason,
                    ExitReason::Vmcall
                        | ExitReason::Cpuid
                        | ExitReason::IoInstruction
                        | ExitReason::Rdmsr
                        | ExitReason::Wrmsr
                        | ExitReason::InterruptWindow
                ) || (pc && reason.reason == ExitReason::Hlt));
            }
            if let Action::Idle = action {
                prop_assert!(pc);
                prop_assert_eq!(ExitInfo::from_raw(raw_reason as u32).reason, ExitReason::Hlt);
            }
            for (_, _, text) in &platform.lines {
                prop_assert!(text.len() <= LOG_WRITE_MAX as usize);
                prop_assert!(text.bytes().all(|b| (0x20..0x7f).contains(&b)));
            }
        }
    }
}
