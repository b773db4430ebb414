//! Filling a fresh VMCS: execution controls adjusted to what the CPU offers,
//! the core's host state, and a 64-bit guest's initial state.

use core::fmt;

use vmx::caps::{adjust, CapabilityMsrs, ControlError};
use vmx::controls::{EntryControls, ExitControls, PinBased, PrimaryProcBased, SecondaryProcBased};
use vmx::{fields, VmFail};

use crate::Vmcs;

/// The core's own state, loaded by the processor on every VM exit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostState {
    /// CR0 of the core.
    pub cr0: u64,
    /// CR3 of the core (its page tables).
    pub cr3: u64,
    /// CR4 of the core (with VMXE).
    pub cr4: u64,
    /// Code segment selector (must not be 0).
    pub cs: u16,
    /// Stack segment selector.
    pub ss: u16,
    /// Data segment selector used for DS, ES, FS and GS.
    pub ds: u16,
    /// Task register selector (must not be 0).
    pub tr: u16,
    /// FS base.
    pub fs_base: u64,
    /// GS base.
    pub gs_base: u64,
    /// Base of the core's TSS.
    pub tr_base: u64,
    /// Base of the core's GDT.
    pub gdtr_base: u64,
    /// Base of the core's IDT.
    pub idtr_base: u64,
    /// IA32_EFER of the core.
    pub efer: u64,
}

/// The initial state of a 64-bit guest and the resources of its VMCS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestSetup {
    /// Entry point (guest-virtual = guest-physical under the identity map).
    pub rip: u64,
    /// Initial stack pointer.
    pub rsp: u64,
    /// Guest CR3: the guest's own page tables, in guest-physical memory.
    pub cr3: u64,
    /// Guest GDT base (guest-physical) and limit.
    pub gdtr: (u64, u16),
    /// The EPT pointer for the guest's memory.
    pub eptp: u64,
    /// Virtual-processor identifier (non-zero) when VPID is used.
    pub vpid: u16,
    /// Host-physical addresses of I/O bitmaps A and B; `None` exits on every
    /// port.
    pub io_bitmaps: Option<(u64, u64)>,
    /// VMX-preemption timer value for each slice; `None` disables the timer.
    pub preemption_timer: Option<u32>,
}

/// The guest selectors the initial GDT must provide. Code and data are
/// where the Linux boot protocol's 64-bit entry wants them (`__BOOT_CS`
/// 0x10, `__BOOT_DS` 0x18), so every domain, Linux or not, starts alike.
pub mod selectors {
    /// 64-bit code segment.
    pub const CODE: u16 = 0x10;
    /// Data segment.
    pub const DATA: u16 = 0x18;
    /// Task state segment.
    pub const TSS: u16 = 0x20;
}

/// The controls chosen for a guest, after adjustment against the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Controls {
    /// Pin-based controls.
    pub pin: u32,
    /// Primary processor-based controls.
    pub primary: u32,
    /// Secondary processor-based controls.
    pub secondary: u32,
    /// VM-exit controls.
    pub exit: u32,
    /// VM-entry controls.
    pub entry: u32,
    /// EPT is on (always: the core refuses CPUs without it).
    pub ept: bool,
    /// VPID is on.
    pub vpid: bool,
    /// Unrestricted guest is on.
    pub unrestricted: bool,
    /// The VMX-preemption timer is on.
    pub preemption_timer: bool,
}

/// Why a VMCS could not be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupError {
    /// A control the core needs is missing on this CPU.
    Control(&'static str, ControlError),
    /// The CPU lacks a feature the core needs.
    Missing(&'static str),
    /// VMWRITE failed.
    Vmcs(u32, VmFail),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Control(which, e) => write!(f, "{which} controls: {e}"),
            SetupError::Missing(what) => write!(f, "this CPU does not offer {what}"),
            SetupError::Vmcs(field, e) => write!(
                f,
                "VMWRITE {} failed: {e}",
                fields::name(*field).unwrap_or("unknown field")
            ),
        }
    }
}

/// Chooses the controls for a guest from the capability MSRs.
///
/// Required: EPT, HLT and I/O exiting, a 64-bit host, EFER load/save.
/// Used when offered: VPID, unrestricted guest, the preemption timer (when
/// `want_timer`).
pub fn choose_controls(caps: &CapabilityMsrs, want_timer: bool) -> Result<Controls, SetupError> {
    let pin_allowed = caps.pin_allowed();
    let timer = want_timer && pin_allowed.may_be_one & PinBased::PREEMPTION_TIMER.bits() != 0;
    let pin = adjust(
        if timer {
            PinBased::PREEMPTION_TIMER.bits()
        } else {
            0
        },
        0,
        pin_allowed,
    )
    .map_err(|e| SetupError::Control("pin-based", e))?;

    let primary = adjust(
        (PrimaryProcBased::HLT_EXITING
            | PrimaryProcBased::UNCONDITIONAL_IO_EXITING
            | PrimaryProcBased::ACTIVATE_SECONDARY_CONTROLS)
            .bits(),
        0,
        caps.primary_allowed(),
    )
    .map_err(|e| SetupError::Control("primary processor-based", e))?;
    // With unconditional I/O exiting, I/O bitmaps are off unless asked for.
    let primary = primary & !PrimaryProcBased::USE_IO_BITMAPS.bits();

    let secondary_allowed = caps.secondary_allowed();
    if secondary_allowed.may_be_one & SecondaryProcBased::ENABLE_EPT.bits() == 0 {
        return Err(SetupError::Missing("EPT"));
    }
    let optional = SecondaryProcBased::ENABLE_VPID | SecondaryProcBased::UNRESTRICTED_GUEST;
    let secondary = adjust(
        SecondaryProcBased::ENABLE_EPT.bits(),
        optional.bits(),
        secondary_allowed,
    )
    .map_err(|e| SetupError::Control("secondary processor-based", e))?;

    // Saving the timer makes a slice span exits the core handles quickly
    // (hypercalls, CPUID): a domain cannot dodge preemption by exiting often.
    let save_timer = if timer {
        ExitControls::SAVE_PREEMPTION_TIMER.bits()
    } else {
        0
    };
    let exit = adjust(
        (ExitControls::HOST_ADDRESS_SPACE_SIZE | ExitControls::SAVE_EFER | ExitControls::LOAD_EFER)
            .bits(),
        save_timer,
        caps.exit_allowed(),
    )
    .map_err(|e| SetupError::Control("VM-exit", e))?;
    let entry = adjust(
        (EntryControls::IA32E_MODE_GUEST | EntryControls::LOAD_EFER).bits(),
        0,
        caps.entry_allowed(),
    )
    .map_err(|e| SetupError::Control("VM-entry", e))?;

    Ok(Controls {
        pin,
        primary,
        secondary,
        exit,
        entry,
        ept: true,
        vpid: secondary & SecondaryProcBased::ENABLE_VPID.bits() != 0,
        unrestricted: secondary & SecondaryProcBased::UNRESTRICTED_GUEST.bits() != 0,
        preemption_timer: timer,
    })
}

/// CR0 bits of the initial guest: PE, MP, ET, NE, WP, PG.
const GUEST_CR0: u64 = (1 << 0) | (1 << 1) | (1 << 4) | (1 << 5) | (1 << 16) | (1 << 31);
/// CR4 bits of the initial guest: PAE.
const GUEST_CR4: u64 = 1 << 5;
/// EFER of the initial guest: LME, LMA.
const GUEST_EFER: u64 = (1 << 8) | (1 << 10);
/// CR4.VMXE, which VMX operation forces on but the guest must not see.
const CR4_VMXE: u64 = 1 << 13;
/// CR4.OSXSAVE: the core's (it may turn on AVX for itself, and the YMM
/// state is not switched between domains); a guest reads 0 and one that
/// sets it exits and is stopped (CPUID says there is no XSAVE).
const CR4_OSXSAVE: u64 = 1 << 18;

/// Writes every field a VM entry checks: controls, host state and the
/// guest's initial 64-bit state. Returns the controls in force.
pub fn setup_vmcs(
    vmcs: &mut impl Vmcs,
    caps: &CapabilityMsrs,
    host: &HostState,
    guest: &GuestSetup,
) -> Result<Controls, SetupError> {
    let mut controls = choose_controls(caps, guest.preemption_timer.is_some())?;
    if guest.vpid == 0 {
        // VPID 0 is the host's; without a tag, run untagged.
        controls.secondary &= !SecondaryProcBased::ENABLE_VPID.bits();
        controls.vpid = false;
    }
    let mut primary = controls.primary;
    if guest.io_bitmaps.is_some() {
        primary |= PrimaryProcBased::USE_IO_BITMAPS.bits();
        primary &= !PrimaryProcBased::UNCONDITIONAL_IO_EXITING.bits();
    }
    let mut w = |field: u32, value: u64| -> Result<(), SetupError> {
        vmcs.write(field, value)
            .map_err(|e| SetupError::Vmcs(field, e))
    };

    // Controls.
    w(fields::PIN_BASED_VM_EXEC_CONTROL, controls.pin as u64)?;
    w(fields::CPU_BASED_VM_EXEC_CONTROL, primary as u64)?;
    w(fields::SECONDARY_VM_EXEC_CONTROL, controls.secondary as u64)?;
    w(fields::VM_EXIT_CONTROLS, controls.exit as u64)?;
    w(fields::VM_ENTRY_CONTROLS, controls.entry as u64)?;
    w(fields::EXCEPTION_BITMAP, 0)?;
    w(fields::PAGE_FAULT_ERROR_CODE_MASK, 0)?;
    w(fields::PAGE_FAULT_ERROR_CODE_MATCH, 0)?;
    w(fields::CR3_TARGET_COUNT, 0)?;
    w(fields::VM_EXIT_MSR_STORE_COUNT, 0)?;
    w(fields::VM_EXIT_MSR_LOAD_COUNT, 0)?;
    w(fields::VM_ENTRY_MSR_LOAD_COUNT, 0)?;
    w(fields::VM_ENTRY_INTR_INFO_FIELD, 0)?;
    w(fields::EPT_POINTER, guest.eptp)?;
    if controls.vpid {
        w(fields::VIRTUAL_PROCESSOR_ID, guest.vpid as u64)?;
    }
    if let Some((a, b)) = guest.io_bitmaps {
        w(fields::IO_BITMAP_A, a)?;
        w(fields::IO_BITMAP_B, b)?;
    }
    if let (true, Some(value)) = (controls.preemption_timer, guest.preemption_timer) {
        w(fields::VMX_PREEMPTION_TIMER_VALUE, value as u64)?;
    }
    // The guest owns no CR0/CR4 bit that VMX fixes: those bits are masked and
    // the guest reads its own values from the shadows.
    let cr0 = caps.fixed_cr0(GUEST_CR0, controls.unrestricted);
    let cr4 = caps.fixed_cr4(GUEST_CR4);
    w(
        fields::CR0_GUEST_HOST_MASK,
        caps.cr0_fixed0 | !caps.cr0_fixed1,
    )?;
    w(fields::CR0_READ_SHADOW, GUEST_CR0)?;
    w(
        fields::CR4_GUEST_HOST_MASK,
        CR4_VMXE | CR4_OSXSAVE | caps.cr4_fixed0 | !caps.cr4_fixed1,
    )?;
    w(fields::CR4_READ_SHADOW, GUEST_CR4)?;
    w(fields::VMCS_LINK_POINTER, u64::MAX)?;

    // Host state.
    w(fields::HOST_CR0, host.cr0)?;
    w(fields::HOST_CR3, host.cr3)?;
    w(fields::HOST_CR4, host.cr4)?;
    w(fields::HOST_CS_SELECTOR, host.cs as u64)?;
    w(fields::HOST_SS_SELECTOR, host.ss as u64)?;
    for f in [
        fields::HOST_DS_SELECTOR,
        fields::HOST_ES_SELECTOR,
        fields::HOST_FS_SELECTOR,
        fields::HOST_GS_SELECTOR,
    ] {
        w(f, host.ds as u64)?;
    }
    w(fields::HOST_TR_SELECTOR, host.tr as u64)?;
    w(fields::HOST_FS_BASE, host.fs_base)?;
    w(fields::HOST_GS_BASE, host.gs_base)?;
    w(fields::HOST_TR_BASE, host.tr_base)?;
    w(fields::HOST_GDTR_BASE, host.gdtr_base)?;
    w(fields::HOST_IDTR_BASE, host.idtr_base)?;
    w(fields::HOST_IA32_EFER, host.efer)?;
    w(fields::HOST_IA32_SYSENTER_CS, 0)?;
    w(fields::HOST_IA32_SYSENTER_ESP, 0)?;
    w(fields::HOST_IA32_SYSENTER_EIP, 0)?;

    // Guest state: flat 64-bit segments from the guest's GDT.
    w(fields::GUEST_CR0, cr0)?;
    w(fields::GUEST_CR3, guest.cr3)?;
    w(fields::GUEST_CR4, cr4)?;
    w(fields::GUEST_IA32_EFER, GUEST_EFER)?;
    w(fields::GUEST_DR7, 0x400)?;
    w(fields::GUEST_RSP, guest.rsp)?;
    w(fields::GUEST_RIP, guest.rip)?;
    w(fields::GUEST_RFLAGS, 0x2)?;
    w(fields::GUEST_CS_SELECTOR, selectors::CODE as u64)?;
    w(fields::GUEST_CS_BASE, 0)?;
    w(fields::GUEST_CS_LIMIT, 0xffff_ffff)?;
    // Present, DPL 0, code execute/read accessed, L = 1, G = 1.
    w(fields::GUEST_CS_AR_BYTES, 0xa09b)?;
    for (sel, base, limit, ar) in [
        (
            fields::GUEST_SS_SELECTOR,
            fields::GUEST_SS_BASE,
            fields::GUEST_SS_LIMIT,
            fields::GUEST_SS_AR_BYTES,
        ),
        (
            fields::GUEST_DS_SELECTOR,
            fields::GUEST_DS_BASE,
            fields::GUEST_DS_LIMIT,
            fields::GUEST_DS_AR_BYTES,
        ),
        (
            fields::GUEST_ES_SELECTOR,
            fields::GUEST_ES_BASE,
            fields::GUEST_ES_LIMIT,
            fields::GUEST_ES_AR_BYTES,
        ),
        (
            fields::GUEST_FS_SELECTOR,
            fields::GUEST_FS_BASE,
            fields::GUEST_FS_LIMIT,
            fields::GUEST_FS_AR_BYTES,
        ),
        (
            fields::GUEST_GS_SELECTOR,
            fields::GUEST_GS_BASE,
            fields::GUEST_GS_LIMIT,
            fields::GUEST_GS_AR_BYTES,
        ),
    ] {
        w(sel, selectors::DATA as u64)?;
        w(base, 0)?;
        w(limit, 0xffff_ffff)?;
        // Present, DPL 0, data read/write accessed, D/B = 1, G = 1.
        w(ar, 0xc093)?;
    }
    w(fields::GUEST_TR_SELECTOR, selectors::TSS as u64)?;
    w(fields::GUEST_TR_BASE, 0)?;
    w(fields::GUEST_TR_LIMIT, 0x67)?;
    // Present, busy 64-bit TSS.
    w(fields::GUEST_TR_AR_BYTES, 0x8b)?;
    w(fields::GUEST_LDTR_SELECTOR, 0)?;
    w(fields::GUEST_LDTR_BASE, 0)?;
    w(fields::GUEST_LDTR_LIMIT, 0)?;
    // Unusable.
    w(fields::GUEST_LDTR_AR_BYTES, 1 << 16)?;
    w(fields::GUEST_GDTR_BASE, guest.gdtr.0)?;
    w(fields::GUEST_GDTR_LIMIT, guest.gdtr.1 as u64)?;
    w(fields::GUEST_IDTR_BASE, 0)?;
    w(fields::GUEST_IDTR_LIMIT, 0)?;
    w(fields::GUEST_SYSENTER_CS, 0)?;
    w(fields::GUEST_SYSENTER_ESP, 0)?;
    w(fields::GUEST_SYSENTER_EIP, 0)?;
    w(fields::GUEST_INTERRUPTIBILITY_INFO, 0)?;
    w(fields::GUEST_ACTIVITY_STATE, 0)?;
    w(fields::GUEST_PENDING_DBG_EXCEPTIONS, 0)?;
    w(fields::GUEST_IA32_DEBUGCTL, 0)?;

    controls.primary = primary;
    Ok(controls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeVmcs;
    use vmx::caps::{EptVpidCap, VmxBasic, VmxMisc};

    /// Capability MSRs shaped like a Haswell-class CPU with true controls.
    fn haswell() -> CapabilityMsrs {
        CapabilityMsrs {
            basic: VmxBasic(0x2b | (0x1000 << 32) | (6 << 50) | (1 << 54) | (1 << 55)),
            pinbased: 0x0000_007f_0000_0016,
            procbased: 0xfff9_fffe_0401_e172,
            exit: 0x01ff_ffff_0003_6dff,
            entry: 0x0003_ffff_0000_11ff,
            misc: VmxMisc(0x5),
            cr0_fixed0: 0x8000_0021,
            cr0_fixed1: 0xffff_ffff,
            cr4_fixed0: 0x2000,
            cr4_fixed1: 0x3727ff,
            procbased2: 0x0000_00ff_0000_0000,
            ept_vpid: EptVpidCap(0x000f_0106_4168),
            true_pinbased: 0x0000_007f_0000_0016,
            true_procbased: 0xfff9_fffe_0400_6172,
            true_exit: 0x01ff_ffff_0003_6dfb,
            true_entry: 0x0003_ffff_0000_11fb,
        }
    }

    fn host() -> HostState {
        HostState {
            cr0: 0x8000_0033,
            cr3: 0x10_0000,
            cr4: 0x2020,
            cs: 8,
            ss: 0x10,
            ds: 0x10,
            tr: 0x18,
            ..Default::default()
        }
    }

    fn guest() -> GuestSetup {
        GuestSetup {
            rip: 0x20_0000,
            rsp: 0x1f_f000,
            cr3: 0x1000,
            gdtr: (0x4000, 0x1f),
            eptp: 0x1234_5000 | 0x5e,
            vpid: 1,
            io_bitmaps: None,
            preemption_timer: Some(0x10000),
        }
    }

    #[test]
    fn controls_include_what_the_core_needs_and_the_cpu_requires() {
        let caps = haswell();
        let c = choose_controls(&caps, true).unwrap();
        assert!(c.ept && c.vpid && c.unrestricted && c.preemption_timer);
        assert_ne!(c.primary & PrimaryProcBased::HLT_EXITING.bits(), 0);
        assert_ne!(
            c.primary & PrimaryProcBased::UNCONDITIONAL_IO_EXITING.bits(),
            0
        );
        // Every must-be-one bit of the true MSRs is set.
        assert_eq!(c.primary & 0x0400_6172, 0x0400_6172);
        assert_eq!(c.exit & 0x0003_6dfb, 0x0003_6dfb);
        assert_ne!(c.exit & ExitControls::HOST_ADDRESS_SPACE_SIZE.bits(), 0);
        assert_ne!(c.entry & EntryControls::IA32E_MODE_GUEST.bits(), 0);
    }

    #[test]
    fn a_cpu_without_ept_or_secondary_controls_is_refused() {
        let mut caps = haswell();
        caps.procbased2 &= !(SecondaryProcBased::ENABLE_EPT.bits() as u64) << 32;
        assert_eq!(
            choose_controls(&caps, true),
            Err(SetupError::Missing("EPT"))
        );
        let mut caps = haswell();
        caps.true_procbased &= !(1u64 << 63);
        caps.procbased &= !(1u64 << 63);
        assert!(choose_controls(&caps, true).is_err());
    }

    #[test]
    fn optional_features_are_dropped_when_absent() {
        let mut caps = haswell();
        caps.procbased2 &= !(((SecondaryProcBased::ENABLE_VPID
            | SecondaryProcBased::UNRESTRICTED_GUEST)
            .bits() as u64)
            << 32);
        caps.true_pinbased &= !((PinBased::PREEMPTION_TIMER.bits() as u64) << 32);
        let c = choose_controls(&caps, true).unwrap();
        assert!(!c.vpid && !c.unrestricted && !c.preemption_timer);
    }

    #[test]
    fn setup_writes_a_consistent_64_bit_guest() {
        let caps = haswell();
        let mut vmcs = FakeVmcs::default();
        let c = setup_vmcs(&mut vmcs, &caps, &host(), &guest()).unwrap();
        assert_eq!(vmcs.get(fields::GUEST_RIP), 0x20_0000);
        assert_eq!(vmcs.get(fields::EPT_POINTER), 0x1234_505e);
        assert_eq!(vmcs.get(fields::VIRTUAL_PROCESSOR_ID), 1);
        assert_eq!(vmcs.get(fields::VMCS_LINK_POINTER), u64::MAX);
        assert_eq!(vmcs.get(fields::VMX_PREEMPTION_TIMER_VALUE), 0x10000);
        assert_eq!(
            caps.cr0_violations(vmcs.get(fields::GUEST_CR0), c.unrestricted),
            0
        );
        assert_eq!(caps.cr4_violations(vmcs.get(fields::GUEST_CR4)), 0);
        assert_eq!(vmcs.get(fields::CR4_READ_SHADOW) & CR4_VMXE, 0);
        // OSXSAVE is the core's: masked, reads 0, not set in the guest.
        assert_ne!(vmcs.get(fields::CR4_GUEST_HOST_MASK) & CR4_OSXSAVE, 0);
        assert_eq!(vmcs.get(fields::CR4_READ_SHADOW) & CR4_OSXSAVE, 0);
        assert_eq!(vmcs.get(fields::GUEST_CR4) & CR4_OSXSAVE, 0);
        assert_eq!(vmcs.get(fields::HOST_TR_SELECTOR), 0x18);
        assert_eq!(vmcs.get(fields::GUEST_CS_AR_BYTES), 0xa09b);
        // IA-32e guest: EFER.LMA matches the entry control.
        assert_ne!(vmcs.get(fields::GUEST_IA32_EFER) & (1 << 10), 0);
        assert_ne!(c.entry & EntryControls::IA32E_MODE_GUEST.bits(), 0);
    }

    #[test]
    fn io_bitmaps_replace_unconditional_exiting_and_vpid_0_runs_untagged() {
        let caps = haswell();
        let mut vmcs = FakeVmcs::default();
        let mut g = guest();
        g.io_bitmaps = Some((0x5000, 0x6000));
        g.vpid = 0;
        let c = setup_vmcs(&mut vmcs, &caps, &host(), &g).unwrap();
        let primary = vmcs.get(fields::CPU_BASED_VM_EXEC_CONTROL) as u32;
        assert_ne!(primary & PrimaryProcBased::USE_IO_BITMAPS.bits(), 0);
        assert_eq!(
            primary & PrimaryProcBased::UNCONDITIONAL_IO_EXITING.bits(),
            0
        );
        assert_eq!(vmcs.get(fields::IO_BITMAP_B), 0x6000);
        assert!(!c.vpid);
        assert_eq!(
            vmcs.get(fields::SECONDARY_VM_EXEC_CONTROL) as u32
                & SecondaryProcBased::ENABLE_VPID.bits(),
            0
        );
    }
}
