//! The MSR policy: every `RDMSR` and `WRMSR` of a guest exits (no MSR
//! bitmap), and nothing reaches a host MSR except through this table.
//!
//! - Guest state the VMCS holds (EFER, FS and GS base, the SYSENTER MSRs)
//!   is read and written there; EFER keeps long mode as it is and takes
//!   only SCE and NXE from the guest.
//! - The MSRs 64-bit system calls and `SWAPGS` use in hardware
//!   ([`AREA`]: KERNEL_GS_BASE, STAR, LSTAR, CSTAR, SFMASK, TSC_AUX) live
//!   in the vCPU's [`MsrArea`]: once the guest writes one, the VMCS loads
//!   the area into the CPU at every VM entry and stores it back at every
//!   exit (`SWAPGS` changes KERNEL_GS_BASE without an exit), so each
//!   domain runs with its own values; the core clears them before a domain
//!   without an area of its own runs. Non-canonical addresses are refused
//!   (they would make the entry fail).
//! - A few MSRs read a fixed, sane value (IA32_MISC_ENABLE has fast
//!   strings; IA32_FEATURE_CONTROL is locked with VMX off; the APIC base,
//!   the MTRR capabilities and the microcode revision read 0); the TSC
//!   reads the host's TSC, PAT and MISC_ENABLE keep what the guest wrote.
//! - Anything else reads 0 and ignores writes; both are counted
//!   ([`MsrStats`]) and the first few are logged.

use crate::Vmcs;
use vmx::fields;

use crate::exit::skip_instruction;
use crate::{Action, Platform, Vcpu};

/// IA32_TIME_STAMP_COUNTER.
pub const TSC: u32 = 0x10;
/// IA32_APIC_BASE.
pub const APIC_BASE: u32 = 0x1b;
/// IA32_FEATURE_CONTROL.
pub const FEATURE_CONTROL: u32 = vmx::caps::IA32_FEATURE_CONTROL;
/// IA32_BIOS_SIGN_ID (microcode revision).
pub const BIOS_SIGN_ID: u32 = 0x8b;
/// IA32_MTRRCAP.
pub const MTRRCAP: u32 = 0xfe;
/// IA32_SYSENTER_CS.
pub const SYSENTER_CS: u32 = 0x174;
/// IA32_SYSENTER_ESP.
pub const SYSENTER_ESP: u32 = 0x175;
/// IA32_SYSENTER_EIP.
pub const SYSENTER_EIP: u32 = 0x176;
/// IA32_MISC_ENABLE.
pub const MISC_ENABLE: u32 = 0x1a0;
/// IA32_PAT.
pub const PAT: u32 = 0x277;
/// IA32_EFER.
pub const EFER: u32 = 0xc000_0080;
/// IA32_STAR.
pub const STAR: u32 = 0xc000_0081;
/// IA32_LSTAR.
pub const LSTAR: u32 = 0xc000_0082;
/// IA32_CSTAR.
pub const CSTAR: u32 = 0xc000_0083;
/// IA32_FMASK.
pub const SFMASK: u32 = 0xc000_0084;
/// IA32_FS_BASE.
pub const FS_BASE: u32 = 0xc000_0100;
/// IA32_GS_BASE.
pub const GS_BASE: u32 = 0xc000_0101;
/// IA32_KERNEL_GS_BASE.
pub const KERNEL_GS_BASE: u32 = 0xc000_0102;
/// IA32_TSC_AUX.
pub const TSC_AUX: u32 = 0xc000_0103;

/// The MSRs kept in the vCPU's [`MsrArea`], in its order.
pub const AREA: [u32; 6] = [KERNEL_GS_BASE, STAR, LSTAR, CSTAR, SFMASK, TSC_AUX];

/// The reset value of IA32_PAT.
const PAT_RESET: u64 = 0x0007_0406_0007_0406;
/// IA32_MISC_ENABLE as the guest first reads it: fast strings on.
const MISC_ENABLE_RESET: u64 = 1;
/// EFER bits a guest may change: SCE (0) and NXE (11).
const EFER_GUEST_BITS: u64 = (1 << 0) | (1 << 11);
/// Unknown MSRs logged per vCPU before the rest are only counted.
const LOG_UNKNOWN: u64 = 8;

/// One entry of a VM-entry MSR-load / VM-exit MSR-store list.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsrEntry {
    /// The MSR.
    pub index: u32,
    /// Must be 0.
    pub reserved: u32,
    /// Its value.
    pub value: u64,
}

/// The [`AREA`] MSRs of one vCPU, laid out as the VMCS's MSR lists want
/// them (16-byte aligned). The core points the VM-entry load list and the
/// VM-exit store list at it (see [`MsrArea::in_use`]).
#[repr(C, align(16))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsrArea {
    /// The entries, in [`AREA`] order.
    pub entries: [MsrEntry; AREA.len()],
    /// Whether the guest has written any of them: only then do the lists
    /// need to be active (a domain that never does pays nothing).
    pub in_use: bool,
}

impl MsrArea {
    /// All zero.
    pub const fn new() -> Self {
        let mut entries = [MsrEntry {
            index: 0,
            reserved: 0,
            value: 0,
        }; AREA.len()];
        let mut i = 0;
        while i < AREA.len() {
            entries[i].index = AREA[i];
            i += 1;
        }
        Self {
            entries,
            in_use: false,
        }
    }

    fn slot(&mut self, msr: u32) -> Option<&mut u64> {
        self.entries
            .iter_mut()
            .find(|e| e.index == msr)
            .map(|e| &mut e.value)
    }
}

impl Default for MsrArea {
    fn default() -> Self {
        Self::new()
    }
}

/// MSRs the policy keeps for the guest, and its counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsrStats {
    /// IA32_PAT as the guest wrote it.
    pub pat: u64,
    /// IA32_MISC_ENABLE as the guest wrote it.
    pub misc_enable: u64,
    /// Reads of MSRs outside the policy (answered 0).
    pub unknown_reads: u64,
    /// Writes to MSRs outside the policy (ignored).
    pub unknown_writes: u64,
    /// Writes refused (a non-canonical address, a reserved bit).
    pub refused_writes: u64,
}

impl Default for MsrStats {
    fn default() -> Self {
        Self {
            pat: PAT_RESET,
            misc_enable: MISC_ENABLE_RESET,
            unknown_reads: 0,
            unknown_writes: 0,
            refused_writes: 0,
        }
    }
}

/// Whether `v` is a canonical 48-bit address.
fn canonical(v: u64) -> bool {
    ((v as i64) << 16 >> 16) as u64 == v
}

/// Turns the area's lists on in the VMCS: its physical address (the
/// vCPU stays where it is while it runs) and the counts.
fn activate(
    vcpu: &mut Vcpu,
    vmcs: &mut impl Vmcs,
    platform: &impl Platform,
) -> Result<(), vmx::VmFail> {
    if !vcpu.msr_area.in_use {
        vcpu.msr_area.in_use = true;
        let at = platform.physical(core::ptr::addr_of!(vcpu.msr_area).cast());
        vmcs.write(fields::VM_ENTRY_MSR_LOAD_ADDR, at)?;
        vmcs.write(fields::VM_EXIT_MSR_STORE_ADDR, at)?;
        vmcs.write(fields::VM_ENTRY_MSR_LOAD_COUNT, AREA.len() as u64)?;
        vmcs.write(fields::VM_EXIT_MSR_STORE_COUNT, AREA.len() as u64)?;
    }
    Ok(())
}

fn log_unknown(vcpu: &Vcpu, what: &str, msr: u32, count: u64) {
    if count <= LOG_UNKNOWN {
        log::info!(
            "guest {}: {what} of MSR {msr:#x} outside the policy (reads 0, writes ignored){}",
            vcpu.name,
            if count == LOG_UNKNOWN {
                "; more are only counted"
            } else {
                ""
            }
        );
    }
}

/// `RDMSR`: ECX names the MSR; EDX:EAX get its value.
pub(crate) fn rdmsr(vcpu: &mut Vcpu, vmcs: &mut impl Vmcs, platform: &mut impl Platform) -> Action {
    let msr = vcpu.regs.rcx as u32;
    let value = match msr {
        TSC => platform.host_rdtsc(),
        EFER => vm!(vmcs.read(fields::GUEST_IA32_EFER)),
        FS_BASE => vm!(vmcs.read(fields::GUEST_FS_BASE)),
        GS_BASE => vm!(vmcs.read(fields::GUEST_GS_BASE)),
        SYSENTER_CS => vm!(vmcs.read(fields::GUEST_SYSENTER_CS)),
        SYSENTER_ESP => vm!(vmcs.read(fields::GUEST_SYSENTER_ESP)),
        SYSENTER_EIP => vm!(vmcs.read(fields::GUEST_SYSENTER_EIP)),
        PAT => vcpu.msrs.pat,
        MISC_ENABLE => vcpu.msrs.misc_enable,
        // Locked, VMX off inside and outside SMX.
        FEATURE_CONTROL => 1,
        APIC_BASE | BIOS_SIGN_ID | MTRRCAP => 0,
        _ => match vcpu.msr_area.slot(msr) {
            Some(v) => *v,
            None => {
                vcpu.msrs.unknown_reads += 1;
                let n = vcpu.msrs.unknown_reads;
                log_unknown(vcpu, "read", msr, n);
                0
            }
        },
    };
    vcpu.regs.rax = value & 0xffff_ffff;
    vcpu.regs.rdx = value >> 32;
    vm!(skip_instruction(vmcs));
    Action::Resume
}

/// `WRMSR`: ECX names the MSR, EDX:EAX hold the value.
pub(crate) fn wrmsr(vcpu: &mut Vcpu, vmcs: &mut impl Vmcs, platform: &impl Platform) -> Action {
    let msr = vcpu.regs.rcx as u32;
    let value = (vcpu.regs.rdx << 32) | (vcpu.regs.rax & 0xffff_ffff);
    let address = |v: u64| canonical(v).then_some(v);
    match msr {
        EFER => {
            let now = vm!(vmcs.read(fields::GUEST_IA32_EFER));
            let new = (now & !EFER_GUEST_BITS) | (value & EFER_GUEST_BITS);
            vm!(vmcs.write(fields::GUEST_IA32_EFER, new));
        }
        FS_BASE | GS_BASE | SYSENTER_ESP | SYSENTER_EIP => match address(value) {
            Some(v) => {
                let field = match msr {
                    FS_BASE => fields::GUEST_FS_BASE,
                    GS_BASE => fields::GUEST_GS_BASE,
                    SYSENTER_ESP => fields::GUEST_SYSENTER_ESP,
                    _ => fields::GUEST_SYSENTER_EIP,
                };
                vm!(vmcs.write(field, v));
            }
            None => vcpu.msrs.refused_writes += 1,
        },
        SYSENTER_CS => vm!(vmcs.write(fields::GUEST_SYSENTER_CS, value & 0xffff_ffff)),
        PAT => vcpu.msrs.pat = value,
        MISC_ENABLE => vcpu.msrs.misc_enable = value,
        // The TSC, the microcode signature, the APIC base: ignored.
        TSC | BIOS_SIGN_ID | APIC_BASE | FEATURE_CONTROL | MTRRCAP => {}
        _ => {
            let ok = match msr {
                KERNEL_GS_BASE | LSTAR | CSTAR => canonical(value),
                // Bits 63:32 of TSC_AUX are reserved.
                TSC_AUX => value >> 32 == 0,
                _ => true,
            };
            match vcpu.msr_area.slot(msr) {
                Some(slot) if ok => {
                    *slot = value;
                    vm!(activate(vcpu, vmcs, platform));
                }
                Some(_) => vcpu.msrs.refused_writes += 1,
                None => {
                    vcpu.msrs.unknown_writes += 1;
                    let n = vcpu.msrs.unknown_writes;
                    log_unknown(vcpu, "write", msr, n);
                }
            }
        }
    }
    vm!(skip_instruction(vmcs));
    Action::Resume
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakePlatform, FakeVmcs};
    use vmx::exit::ExitReason;

    fn exit(reason: ExitReason) -> FakeVmcs {
        let mut v = FakeVmcs::default();
        v.set(fields::VM_EXIT_REASON, reason.basic() as u64);
        v.set(fields::VM_EXIT_INSTRUCTION_LEN, 2);
        v.set(fields::GUEST_RIP, 0x1000);
        v.set(fields::GUEST_IA32_EFER, (1 << 8) | (1 << 10));
        v
    }

    fn wr(vcpu: &mut Vcpu, vmcs: &mut FakeVmcs, p: &mut FakePlatform, msr: u32, value: u64) {
        vcpu.regs.rcx = msr as u64;
        vcpu.regs.rax = value & 0xffff_ffff;
        vcpu.regs.rdx = value >> 32;
        assert_eq!(wrmsr(vcpu, vmcs, p), Action::Resume);
    }

    fn rd(vcpu: &mut Vcpu, vmcs: &mut FakeVmcs, p: &mut FakePlatform, msr: u32) -> u64 {
        vcpu.regs.rcx = msr as u64;
        assert_eq!(rdmsr(vcpu, vmcs, p), Action::Resume);
        assert_eq!(vcpu.regs.rax >> 32, 0);
        (vcpu.regs.rdx << 32) | vcpu.regs.rax
    }

    #[test]
    fn vmcs_backed_msrs_go_to_the_vmcs() {
        let (mut v, mut m, mut p) = (
            Vcpu::new("g"),
            exit(ExitReason::Wrmsr),
            FakePlatform::default(),
        );
        wr(&mut v, &mut m, &mut p, GS_BASE, 0xffff_8880_0000_1000);
        assert_eq!(m.get(fields::GUEST_GS_BASE), 0xffff_8880_0000_1000);
        assert_eq!(
            m.get(fields::GUEST_RIP),
            0x1002,
            "the instruction is skipped"
        );
        wr(&mut v, &mut m, &mut p, FS_BASE, 0x7f00_0000_0000);
        assert_eq!(rd(&mut v, &mut m, &mut p, FS_BASE), 0x7f00_0000_0000);
        wr(&mut v, &mut m, &mut p, SYSENTER_CS, 0xffff_ffff_0000_0010);
        assert_eq!(m.get(fields::GUEST_SYSENTER_CS), 0x10);
        // A non-canonical base would fail the next VM entry: refused.
        wr(&mut v, &mut m, &mut p, GS_BASE, 0x8000_0000_0000_0000);
        assert_eq!(m.get(fields::GUEST_GS_BASE), 0xffff_8880_0000_1000);
        assert_eq!(v.msrs.refused_writes, 1);
    }

    #[test]
    fn efer_takes_only_sce_and_nxe() {
        let (mut v, mut m, mut p) = (
            Vcpu::new("g"),
            exit(ExitReason::Wrmsr),
            FakePlatform::default(),
        );
        // Clearing LME/LMA and setting SVME (12) are ignored.
        wr(
            &mut v,
            &mut m,
            &mut p,
            EFER,
            (1 << 0) | (1 << 11) | (1 << 12),
        );
        assert_eq!(
            m.get(fields::GUEST_IA32_EFER),
            (1 << 0) | (1 << 8) | (1 << 10) | (1 << 11)
        );
        assert_eq!(rd(&mut v, &mut m, &mut p, EFER), 0xd01);
    }

    #[test]
    fn syscall_msrs_live_in_the_area_and_turn_its_lists_on() {
        let (mut v, mut m, mut p) = (
            Vcpu::new("g"),
            exit(ExitReason::Wrmsr),
            FakePlatform::default(),
        );
        assert!(!v.msr_area.in_use);
        assert_eq!(rd(&mut v, &mut m, &mut p, LSTAR), 0);
        assert_eq!(
            m.get(fields::VM_ENTRY_MSR_LOAD_COUNT),
            0,
            "reading does not turn them on"
        );
        wr(&mut v, &mut m, &mut p, LSTAR, 0xffff_ffff_8100_0000);
        assert!(v.msr_area.in_use);
        assert_eq!(m.get(fields::VM_ENTRY_MSR_LOAD_COUNT), AREA.len() as u64);
        assert_eq!(m.get(fields::VM_EXIT_MSR_STORE_COUNT), AREA.len() as u64);
        let at = core::ptr::addr_of!(v.msr_area) as u64;
        assert_eq!(m.get(fields::VM_ENTRY_MSR_LOAD_ADDR), at);
        assert_eq!(m.get(fields::VM_EXIT_MSR_STORE_ADDR), at);
        assert_eq!(rd(&mut v, &mut m, &mut p, LSTAR), 0xffff_ffff_8100_0000);
        let lstar = v
            .msr_area
            .entries
            .iter()
            .find(|e| e.index == LSTAR)
            .unwrap();
        assert_eq!(lstar.value, 0xffff_ffff_8100_0000);
        // STAR takes anything; a non-canonical KERNEL_GS_BASE and a
        // TSC_AUX with reserved bits are refused.
        wr(&mut v, &mut m, &mut p, STAR, u64::MAX);
        assert_eq!(rd(&mut v, &mut m, &mut p, STAR), u64::MAX);
        wr(&mut v, &mut m, &mut p, KERNEL_GS_BASE, 1 << 50);
        wr(&mut v, &mut m, &mut p, TSC_AUX, 1 << 40);
        assert_eq!(rd(&mut v, &mut m, &mut p, KERNEL_GS_BASE), 0);
        assert_eq!(v.msrs.refused_writes, 2);
        // The area is laid out as the VMCS lists want it.
        assert_eq!(core::mem::size_of::<MsrEntry>(), 16);
        assert_eq!(core::mem::align_of::<MsrArea>(), 16);
        assert!(v.msr_area.entries.iter().all(|e| e.reserved == 0));
    }

    #[test]
    fn fixed_values_and_unknown_msrs() {
        let (mut v, mut m, mut p) = (
            Vcpu::new("g"),
            exit(ExitReason::Rdmsr),
            FakePlatform::default(),
        );
        assert_eq!(rd(&mut v, &mut m, &mut p, MISC_ENABLE), 1);
        assert_eq!(rd(&mut v, &mut m, &mut p, FEATURE_CONTROL), 1);
        assert_eq!(rd(&mut v, &mut m, &mut p, APIC_BASE), 0);
        assert_eq!(rd(&mut v, &mut m, &mut p, PAT), PAT_RESET);
        p.tsc = 0x1_2345_6789;
        assert_eq!(rd(&mut v, &mut m, &mut p, TSC), 0x1_2345_6789);
        wr(&mut v, &mut m, &mut p, PAT, 0x0606_0606_0606_0606);
        assert_eq!(rd(&mut v, &mut m, &mut p, PAT), 0x0606_0606_0606_0606);
        // Unknown: 0, ignored, counted.
        for _ in 0..20 {
            assert_eq!(rd(&mut v, &mut m, &mut p, 0xc4), 0);
            wr(&mut v, &mut m, &mut p, 0x1234, 5);
        }
        assert_eq!((v.msrs.unknown_reads, v.msrs.unknown_writes), (20, 20));
        // Nothing was turned on by any of this.
        assert!(!v.msr_area.in_use);
    }
}
