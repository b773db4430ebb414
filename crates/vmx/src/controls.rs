//! The VM-execution, VM-exit and VM-entry control fields as bit sets
//! (SDM Vol. 3C §25.6.1–25.6.2, §25.7.1, §25.8.1; appendix A.3–A.5).
//!
//! These types name the bits; they do not decide which ones a guest gets.
//! Before a value is written to the VMCS it must be reconciled with what the
//! processor allows, see [`crate::caps::adjust`].

use bitflags::bitflags;

bitflags! {
    /// Pin-based VM-execution controls (VMCS field
    /// `PIN_BASED_VM_EXEC_CONTROL`, SDM table 25-5).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct PinBased: u32 {
        /// External interrupts cause VM exits.
        const EXTERNAL_INTERRUPT_EXITING = 1 << 0;
        /// Non-maskable interrupts cause VM exits.
        const NMI_EXITING = 1 << 3;
        /// NMIs are never blocked and the "blocking by NMI" bit tracks
        /// virtual-NMI blocking instead.
        const VIRTUAL_NMIS = 1 << 5;
        /// Activate the VMX-preemption timer.
        const PREEMPTION_TIMER = 1 << 6;
        /// Process posted interrupts.
        const POSTED_INTERRUPTS = 1 << 7;
    }
}

bitflags! {
    /// Primary processor-based VM-execution controls (VMCS field
    /// `CPU_BASED_VM_EXEC_CONTROL`, SDM table 25-6).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct PrimaryProcBased: u32 {
        /// Exit at the start of any instruction once RFLAGS.IF = 1 and
        /// nothing else blocks interrupts.
        const INTERRUPT_WINDOW_EXITING = 1 << 2;
        /// Add the TSC offset to guest reads of the TSC.
        const USE_TSC_OFFSETTING = 1 << 3;
        /// HLT causes VM exits.
        const HLT_EXITING = 1 << 7;
        /// INVLPG causes VM exits.
        const INVLPG_EXITING = 1 << 9;
        /// MWAIT causes VM exits.
        const MWAIT_EXITING = 1 << 10;
        /// RDPMC causes VM exits.
        const RDPMC_EXITING = 1 << 11;
        /// RDTSC and RDTSCP cause VM exits.
        const RDTSC_EXITING = 1 << 12;
        /// MOV to CR3 causes VM exits (unless the value is a CR3 target).
        const CR3_LOAD_EXITING = 1 << 15;
        /// MOV from CR3 causes VM exits.
        const CR3_STORE_EXITING = 1 << 16;
        /// MOV to CR8 causes VM exits.
        const CR8_LOAD_EXITING = 1 << 19;
        /// MOV from CR8 causes VM exits.
        const CR8_STORE_EXITING = 1 << 20;
        /// Use the TPR shadow in the virtual-APIC page.
        const USE_TPR_SHADOW = 1 << 21;
        /// Exit at the start of any instruction once there is no virtual-NMI
        /// blocking.
        const NMI_WINDOW_EXITING = 1 << 22;
        /// MOV DR causes VM exits.
        const MOV_DR_EXITING = 1 << 23;
        /// Every I/O instruction causes a VM exit (ignored when
        /// `USE_IO_BITMAPS` is set).
        const UNCONDITIONAL_IO_EXITING = 1 << 24;
        /// Use the I/O bitmaps to decide which ports exit.
        const USE_IO_BITMAPS = 1 << 25;
        /// Monitor trap flag: exit after each guest instruction.
        const MONITOR_TRAP_FLAG = 1 << 27;
        /// Use the MSR bitmaps to decide which RDMSR/WRMSR exit.
        const USE_MSR_BITMAPS = 1 << 28;
        /// MONITOR causes VM exits.
        const MONITOR_EXITING = 1 << 29;
        /// PAUSE causes VM exits.
        const PAUSE_EXITING = 1 << 30;
        /// Use the secondary processor-based controls.
        const ACTIVATE_SECONDARY_CONTROLS = 1 << 31;
    }
}

bitflags! {
    /// Secondary processor-based VM-execution controls (VMCS field
    /// `SECONDARY_VM_EXEC_CONTROL`, SDM table 25-7). Only in effect when
    /// [`PrimaryProcBased::ACTIVATE_SECONDARY_CONTROLS`] is set.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct SecondaryProcBased: u32 {
        /// Accesses to the APIC-access page are treated specially.
        const VIRTUALIZE_APIC_ACCESSES = 1 << 0;
        /// Enable extended page tables.
        const ENABLE_EPT = 1 << 1;
        /// LGDT, LIDT, LLDT, LTR, SGDT, SIDT, SLDT and STR cause VM exits.
        const DESCRIPTOR_TABLE_EXITING = 1 << 2;
        /// RDTSCP does not raise #UD.
        const ENABLE_RDTSCP = 1 << 3;
        /// x2APIC MSR accesses to the TPR go to the virtual-APIC page.
        const VIRTUALIZE_X2APIC = 1 << 4;
        /// Tag cached translations with the VPID.
        const ENABLE_VPID = 1 << 5;
        /// WBINVD and WBNOINVD cause VM exits.
        const WBINVD_EXITING = 1 << 6;
        /// The guest may run in unpaged protected mode or real mode.
        const UNRESTRICTED_GUEST = 1 << 7;
        /// Virtualize APIC register reads and writes.
        const APIC_REGISTER_VIRTUALIZATION = 1 << 8;
        /// Evaluate and deliver pending virtual interrupts.
        const VIRTUAL_INTERRUPT_DELIVERY = 1 << 9;
        /// Exit when a PAUSE loop runs longer than the PLE window.
        const PAUSE_LOOP_EXITING = 1 << 10;
        /// RDRAND causes VM exits.
        const RDRAND_EXITING = 1 << 11;
        /// INVPCID does not raise #UD.
        const ENABLE_INVPCID = 1 << 12;
        /// Enable VM functions (VMFUNC).
        const ENABLE_VMFUNC = 1 << 13;
        /// VMREAD/VMWRITE in the guest may access a shadow VMCS.
        const VMCS_SHADOWING = 1 << 14;
        /// RDSEED causes VM exits.
        const RDSEED_EXITING = 1 << 16;
        /// EPT violations may raise #VE instead of exiting.
        const EPT_VIOLATION_VE = 1 << 18;
        /// XSAVES and XRSTORS do not raise #UD.
        const ENABLE_XSAVES = 1 << 20;
    }
}

bitflags! {
    /// Primary VM-exit controls (VMCS field `VM_EXIT_CONTROLS`,
    /// SDM table 25-13).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct ExitControls: u32 {
        /// Save guest DR7 and IA32_DEBUGCTL on exit.
        const SAVE_DEBUG_CONTROLS = 1 << 2;
        /// The host runs in 64-bit mode after the exit.
        const HOST_ADDRESS_SPACE_SIZE = 1 << 9;
        /// Load IA32_PERF_GLOBAL_CTRL from the host-state area.
        const LOAD_PERF_GLOBAL_CTRL = 1 << 12;
        /// Acknowledge the interrupt controller on an external-interrupt exit
        /// and store the vector in the exit interruption information.
        const ACK_INTERRUPT_ON_EXIT = 1 << 15;
        /// Save guest IA32_PAT on exit.
        const SAVE_PAT = 1 << 18;
        /// Load host IA32_PAT on exit.
        const LOAD_PAT = 1 << 19;
        /// Save guest IA32_EFER on exit.
        const SAVE_EFER = 1 << 20;
        /// Load host IA32_EFER on exit.
        const LOAD_EFER = 1 << 21;
        /// Save the VMX-preemption timer value on exit.
        const SAVE_PREEMPTION_TIMER = 1 << 22;
    }
}

bitflags! {
    /// VM-entry controls (VMCS field `VM_ENTRY_CONTROLS`, SDM table 25-15).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct EntryControls: u32 {
        /// Load guest DR7 and IA32_DEBUGCTL on entry.
        const LOAD_DEBUG_CONTROLS = 1 << 2;
        /// The guest runs in IA-32e mode after entry (IA32_EFER.LMA = 1).
        const IA32E_MODE_GUEST = 1 << 9;
        /// Enter SMM (dual-monitor treatment only).
        const ENTRY_TO_SMM = 1 << 10;
        /// Load guest IA32_PERF_GLOBAL_CTRL on entry.
        const LOAD_PERF_GLOBAL_CTRL = 1 << 13;
        /// Load guest IA32_PAT on entry.
        const LOAD_PAT = 1 << 14;
        /// Load guest IA32_EFER on entry.
        const LOAD_EFER = 1 << 15;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_positions() {
        assert_eq!(PinBased::PREEMPTION_TIMER.bits(), 0x40);
        assert_eq!(PinBased::all().bits(), 0b1110_1001);
        assert_eq!(
            PrimaryProcBased::ACTIVATE_SECONDARY_CONTROLS.bits(),
            0x8000_0000
        );
        assert_eq!(PrimaryProcBased::USE_MSR_BITMAPS.bits(), 0x1000_0000);
        assert_eq!(PrimaryProcBased::HLT_EXITING.bits(), 0x80);
        assert_eq!(SecondaryProcBased::ENABLE_EPT.bits(), 0x2);
        assert_eq!(SecondaryProcBased::UNRESTRICTED_GUEST.bits(), 0x80);
        assert_eq!(SecondaryProcBased::ENABLE_XSAVES.bits(), 0x10_0000);
        assert_eq!(ExitControls::HOST_ADDRESS_SPACE_SIZE.bits(), 0x200);
        assert_eq!(ExitControls::ACK_INTERRUPT_ON_EXIT.bits(), 0x8000);
        assert_eq!(ExitControls::SAVE_PREEMPTION_TIMER.bits(), 0x40_0000);
        assert_eq!(EntryControls::IA32E_MODE_GUEST.bits(), 0x200);
        assert_eq!(EntryControls::LOAD_EFER.bits(), 0x8000);
    }

    #[test]
    fn flags_are_distinct() {
        fn check<I: Iterator<Item = u32>>(bits: I) {
            let mut seen = 0u32;
            for b in bits {
                assert_eq!(b.count_ones(), 1);
                assert_eq!(seen & b, 0);
                seen |= b;
            }
        }
        check(PinBased::all().iter().map(|f| f.bits()));
        check(PrimaryProcBased::all().iter().map(|f| f.bits()));
        check(SecondaryProcBased::all().iter().map(|f| f.bits()));
        check(ExitControls::all().iter().map(|f| f.bits()));
        check(EntryControls::all().iter().map(|f| f.bits()));
        assert_eq!(PrimaryProcBased::all().iter().count(), 21);
        assert_eq!(SecondaryProcBased::all().iter().count(), 18);
    }
}
