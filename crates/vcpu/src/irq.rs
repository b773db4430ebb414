//! External interrupts for PC guests (an unmodified Linux): the device
//! models outside the core decide which vector is due (the 8259A PIC
//! acknowledges it there), the core queues it on the vCPU and injects it
//! at a VM entry once the guest can take it.
//!
//! - A vector is injected when RFLAGS.IF is set and no STI or MOV SS
//!   blocking is in effect, one per entry, in the order they came; while
//!   any wait, interrupt-window exiting brings the vCPU back as soon as
//!   the guest enables interrupts.
//! - An injected interrupt whose delivery a VM exit cut short (the
//!   IDT-vectoring information says so) is injected again at the next
//!   entry, before anything else.
//! - `HLT` waits for the next interrupt ([`Action::Idle`](crate::Action))
//!   when interrupts are enabled; with them disabled nothing can ever wake
//!   the guest, so it stops (how Linux powers off without ACPI).

use vmx::controls::PrimaryProcBased;
use vmx::{fields, VmFail};

use crate::{Vcpu, Vmcs};

/// Vectors a vCPU holds before more are refused (the PIC pair has 16
/// levels, each delivered at most once until its end of interrupt).
pub const QUEUE: usize = 16;
/// VM-entry interruption information: valid.
const VALID: u64 = 1 << 31;
/// ... error code delivered.
const ERROR_CODE: u64 = 1 << 11;
/// RFLAGS.IF.
const IF: u64 = 1 << 9;
/// Interruptibility: blocking by STI, blocking by MOV SS.
const BLOCKING: u64 = 0b11;

/// The interrupts waiting for one vCPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Interrupts {
    queue: [u8; QUEUE],
    head: usize,
    len: usize,
    /// Interrupt-window exiting is on.
    window: bool,
    /// An interrupt was injected at the last entry (its delivery may need
    /// to be repeated).
    in_flight: bool,
    /// Vectors refused because the queue was full.
    pub dropped: u64,
    /// Vectors injected.
    pub injected: u64,
}

impl Interrupts {
    /// Queues `vector`; `false` (counted in [`Interrupts::dropped`]) when
    /// [`QUEUE`] are waiting already.
    pub fn push(&mut self, vector: u8) -> bool {
        if self.len == QUEUE {
            self.dropped += 1;
            return false;
        }
        self.queue[(self.head + self.len) % QUEUE] = vector;
        self.len += 1;
        true
    }

    /// Whether any vector waits.
    pub fn pending(&self) -> bool {
        self.len > 0
    }

    fn pop(&mut self) -> Option<u8> {
        if self.len == 0 {
            return None;
        }
        let v = self.queue[self.head];
        self.head = (self.head + 1) % QUEUE;
        self.len -= 1;
        Some(v)
    }
}

fn set_window(vcpu: &mut Vcpu, vmcs: &mut impl Vmcs, on: bool) -> Result<(), VmFail> {
    if vcpu.interrupts.window == on {
        return Ok(());
    }
    let bit = u64::from(PrimaryProcBased::INTERRUPT_WINDOW_EXITING.bits());
    let controls = vmcs.read(fields::CPU_BASED_VM_EXEC_CONTROL)?;
    let controls = if on { controls | bit } else { controls & !bit };
    vmcs.write(fields::CPU_BASED_VM_EXEC_CONTROL, controls)?;
    vcpu.interrupts.window = on;
    Ok(())
}

/// Before a VM entry: injects the next waiting vector if the guest can
/// take it, and asks for an interrupt-window exit while any still wait.
/// Nothing to do (no VMCS access) when none wait.
pub fn prepare_entry(vcpu: &mut Vcpu, vmcs: &mut impl Vmcs) -> Result<(), VmFail> {
    if !vcpu.interrupts.pending() && !vcpu.interrupts.window {
        return Ok(());
    }
    if vcpu.interrupts.pending() {
        // An event being delivered again goes first.
        let busy = vmcs.read(fields::VM_ENTRY_INTR_INFO_FIELD)? & VALID != 0;
        let open = vmcs.read(fields::GUEST_RFLAGS)? & IF != 0
            && vmcs.read(fields::GUEST_INTERRUPTIBILITY_INFO)? & BLOCKING == 0;
        if !busy && open {
            if let Some(vector) = vcpu.interrupts.pop() {
                // Type 0: external interrupt.
                vmcs.write(fields::VM_ENTRY_INTR_INFO_FIELD, VALID | u64::from(vector))?;
                vcpu.interrupts.in_flight = true;
                vcpu.interrupts.injected += 1;
            }
        }
    }
    let waiting = vcpu.interrupts.pending();
    set_window(vcpu, vmcs, waiting)
}

/// After a VM exit: an interrupt whose delivery the exit cut short is
/// queued for injection again, as it was.
pub fn after_exit(vcpu: &mut Vcpu, vmcs: &mut impl Vmcs) -> Result<(), VmFail> {
    if !core::mem::take(&mut vcpu.interrupts.in_flight) {
        return Ok(());
    }
    let info = vmcs.read(fields::IDT_VECTORING_INFO_FIELD)?;
    if info & VALID != 0 {
        // Bit 12 is undefined in the vectoring information.
        vmcs.write(fields::VM_ENTRY_INTR_INFO_FIELD, info & !(1 << 12))?;
        if info & ERROR_CODE != 0 {
            let code = vmcs.read(fields::IDT_VECTORING_ERROR_CODE)?;
            vmcs.write(fields::VM_ENTRY_EXCEPTION_ERROR_CODE, code)?;
        }
        vcpu.interrupts.in_flight = true;
    }
    Ok(())
}

/// Whether a halted guest can ever be woken: interrupts are enabled.
pub fn can_wake(vmcs: &mut impl Vmcs) -> Result<bool, VmFail> {
    Ok(vmcs.read(fields::GUEST_RFLAGS)? & IF != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeVmcs;

    fn vmcs(rflags: u64) -> FakeVmcs {
        let mut v = FakeVmcs::default();
        v.set(fields::GUEST_RFLAGS, rflags);
        v
    }

    #[test]
    fn nothing_waiting_touches_nothing() {
        let mut vcpu = Vcpu::new("g");
        let mut v = FakeVmcs::default();
        prepare_entry(&mut vcpu, &mut v).unwrap();
        assert!(v.fields.is_empty());
    }

    #[test]
    fn a_vector_is_injected_when_interrupts_are_enabled() {
        let mut vcpu = Vcpu::new("g");
        let mut v = vmcs(0x202);
        assert!(vcpu.interrupts.push(0x30));
        assert!(vcpu.interrupts.push(0x31));
        prepare_entry(&mut vcpu, &mut v).unwrap();
        assert_eq!(v.get(fields::VM_ENTRY_INTR_INFO_FIELD), VALID | 0x30);
        // The second waits for a window.
        let window = u64::from(PrimaryProcBased::INTERRUPT_WINDOW_EXITING.bits());
        assert_ne!(v.get(fields::CPU_BASED_VM_EXEC_CONTROL) & window, 0);
        // The entry consumed the first (the CPU clears the valid bit).
        v.set(fields::VM_ENTRY_INTR_INFO_FIELD, 0);
        after_exit(&mut vcpu, &mut v).unwrap();
        prepare_entry(&mut vcpu, &mut v).unwrap();
        assert_eq!(v.get(fields::VM_ENTRY_INTR_INFO_FIELD), VALID | 0x31);
        assert_eq!(
            v.get(fields::CPU_BASED_VM_EXEC_CONTROL) & window,
            0,
            "window off again"
        );
        assert_eq!(vcpu.interrupts.injected, 2);
    }

    #[test]
    fn masked_or_blocked_guests_get_a_window_instead() {
        let window = u64::from(PrimaryProcBased::INTERRUPT_WINDOW_EXITING.bits());
        for (rflags, blocking) in [(0x2, 0), (0x202, 1), (0x202, 2)] {
            let mut vcpu = Vcpu::new("g");
            let mut v = vmcs(rflags);
            v.set(fields::GUEST_INTERRUPTIBILITY_INFO, blocking);
            vcpu.interrupts.push(0x30);
            prepare_entry(&mut vcpu, &mut v).unwrap();
            assert_eq!(v.get(fields::VM_ENTRY_INTR_INFO_FIELD), 0);
            assert_ne!(v.get(fields::CPU_BASED_VM_EXEC_CONTROL) & window, 0);
            assert!(vcpu.interrupts.pending());
        }
    }

    #[test]
    fn an_interrupted_delivery_is_repeated() {
        let mut vcpu = Vcpu::new("g");
        let mut v = vmcs(0x202);
        vcpu.interrupts.push(0x30);
        vcpu.interrupts.push(0x33);
        prepare_entry(&mut vcpu, &mut v).unwrap();
        // The entry started delivering 0x30; an exit cut it short.
        v.set(fields::VM_ENTRY_INTR_INFO_FIELD, 0);
        v.set(fields::IDT_VECTORING_INFO_FIELD, VALID | 0x30 | 1 << 12);
        after_exit(&mut vcpu, &mut v).unwrap();
        assert_eq!(v.get(fields::VM_ENTRY_INTR_INFO_FIELD), VALID | 0x30);
        // 0x33 waits behind it.
        prepare_entry(&mut vcpu, &mut v).unwrap();
        assert_eq!(v.get(fields::VM_ENTRY_INTR_INFO_FIELD), VALID | 0x30);
        assert!(vcpu.interrupts.pending());
    }

    #[test]
    fn the_queue_is_bounded() {
        let mut q = Interrupts::default();
        for i in 0..QUEUE {
            assert!(q.push(i as u8));
        }
        assert!(!q.push(0xff));
        assert_eq!(q.dropped, 1);
        for i in 0..QUEUE {
            assert_eq!(q.pop(), Some(i as u8));
        }
        assert_eq!(q.pop(), None);
    }
}
