//! VMX capability MSRs (SDM Vol. 3C appendix A) and the reconciliation of
//! requested controls and CR0/CR4 values with what the processor allows.
//!
//! Nothing here executes RDMSR: [`CapabilityMsrs::read_all`] takes the MSR
//! reader as a closure so that the logic runs on recorded values in tests.

use core::fmt;

/// `IA32_FEATURE_CONTROL`: lock bit and VMXON enables.
pub const IA32_FEATURE_CONTROL: u32 = 0x3A;
/// `IA32_VMX_BASIC`: VMCS revision, size and memory type (A.1).
pub const IA32_VMX_BASIC: u32 = 0x480;
/// `IA32_VMX_PINBASED_CTLS`: allowed pin-based controls (A.3.1).
pub const IA32_VMX_PINBASED_CTLS: u32 = 0x481;
/// `IA32_VMX_PROCBASED_CTLS`: allowed primary processor-based controls (A.3.2).
pub const IA32_VMX_PROCBASED_CTLS: u32 = 0x482;
/// `IA32_VMX_EXIT_CTLS`: allowed VM-exit controls (A.4).
pub const IA32_VMX_EXIT_CTLS: u32 = 0x483;
/// `IA32_VMX_ENTRY_CTLS`: allowed VM-entry controls (A.5).
pub const IA32_VMX_ENTRY_CTLS: u32 = 0x484;
/// `IA32_VMX_MISC`: miscellaneous data (A.6).
pub const IA32_VMX_MISC: u32 = 0x485;
/// `IA32_VMX_CR0_FIXED0`: CR0 bits that must be 1 in VMX operation (A.7).
pub const IA32_VMX_CR0_FIXED0: u32 = 0x486;
/// `IA32_VMX_CR0_FIXED1`: CR0 bits that may be 1 in VMX operation (A.7).
pub const IA32_VMX_CR0_FIXED1: u32 = 0x487;
/// `IA32_VMX_CR4_FIXED0`: CR4 bits that must be 1 in VMX operation (A.8).
pub const IA32_VMX_CR4_FIXED0: u32 = 0x488;
/// `IA32_VMX_CR4_FIXED1`: CR4 bits that may be 1 in VMX operation (A.8).
pub const IA32_VMX_CR4_FIXED1: u32 = 0x489;
/// `IA32_VMX_VMCS_ENUM`: highest VMCS field index (A.9).
pub const IA32_VMX_VMCS_ENUM: u32 = 0x48A;
/// `IA32_VMX_PROCBASED_CTLS2`: allowed secondary processor-based controls (A.3.3).
pub const IA32_VMX_PROCBASED_CTLS2: u32 = 0x48B;
/// `IA32_VMX_EPT_VPID_CAP`: EPT and VPID capabilities (A.10).
pub const IA32_VMX_EPT_VPID_CAP: u32 = 0x48C;
/// `IA32_VMX_TRUE_PINBASED_CTLS`: allowed pin-based controls, without
/// default-1 bits forced (A.3.1).
pub const IA32_VMX_TRUE_PINBASED_CTLS: u32 = 0x48D;
/// `IA32_VMX_TRUE_PROCBASED_CTLS`: allowed primary processor-based controls,
/// without default-1 bits forced (A.3.2).
pub const IA32_VMX_TRUE_PROCBASED_CTLS: u32 = 0x48E;
/// `IA32_VMX_TRUE_EXIT_CTLS`: allowed VM-exit controls, without default-1
/// bits forced (A.4).
pub const IA32_VMX_TRUE_EXIT_CTLS: u32 = 0x48F;
/// `IA32_VMX_TRUE_ENTRY_CTLS`: allowed VM-entry controls, without default-1
/// bits forced (A.5).
pub const IA32_VMX_TRUE_ENTRY_CTLS: u32 = 0x490;

/// `IA32_FEATURE_CONTROL` bit 0: the MSR is locked until reset.
pub const FEATURE_CONTROL_LOCKED: u64 = 1 << 0;
/// `IA32_FEATURE_CONTROL` bit 1: VMXON allowed inside SMX operation.
pub const FEATURE_CONTROL_VMXON_INSIDE_SMX: u64 = 1 << 1;
/// `IA32_FEATURE_CONTROL` bit 2: VMXON allowed outside SMX operation.
pub const FEATURE_CONTROL_VMXON_OUTSIDE_SMX: u64 = 1 << 2;

/// CR0.PE (protection enable).
const CR0_PE: u64 = 1 << 0;
/// CR0.PG (paging).
const CR0_PG: u64 = 1 << 31;

const fn bit(value: u64, n: u32) -> bool {
    (value >> n) & 1 != 0
}

/// `IA32_VMX_BASIC` (SDM A.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VmxBasic(pub u64);

impl VmxBasic {
    /// VMCS revision identifier (bits 30:0); written to the first dword of
    /// the VMXON region and of every VMCS.
    pub const fn revision_id(self) -> u32 {
        (self.0 & 0x7fff_ffff) as u32
    }

    /// Bytes to allocate for the VMXON region and each VMCS (bits 44:32,
    /// at most 4096).
    pub const fn vmcs_size(self) -> u16 {
        ((self.0 >> 32) & 0x1fff) as u16
    }

    /// Bit 48: the VMXON region, VMCS and the structures they point to must
    /// lie below 4 GiB.
    pub const fn physical_address_width_32(self) -> bool {
        bit(self.0, 48)
    }

    /// The memory type for VMCS accesses (bits 53:50): 0 = UC, 6 = WB.
    pub const fn memory_type(self) -> u8 {
        ((self.0 >> 50) & 0xf) as u8
    }

    /// Whether the VMCS memory type is write-back (bits 53:50 = 6).
    pub const fn memory_type_write_back(self) -> bool {
        self.memory_type() == 6
    }

    /// Bit 54: INS/OUTS exits report instruction information.
    pub const fn io_exit_info(self) -> bool {
        bit(self.0, 54)
    }

    /// Bit 55: the `IA32_VMX_TRUE_*_CTLS` MSRs exist and default-1 controls
    /// may be cleared where they allow it.
    pub const fn true_controls(self) -> bool {
        bit(self.0, 55)
    }
}

/// `IA32_VMX_MISC` (SDM A.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VmxMisc(pub u64);

impl VmxMisc {
    /// Bits 4:0: the VMX-preemption timer counts down by one every time bit
    /// `shift` of the TSC changes, i.e. once every 2^shift TSC ticks.
    pub const fn preemption_timer_shift(self) -> u8 {
        (self.0 & 0x1f) as u8
    }

    /// Bit 5: VM exits store IA32_EFER.LMA into the "IA-32e mode guest"
    /// VM-entry control.
    pub const fn stores_lma(self) -> bool {
        bit(self.0, 5)
    }

    /// Bit 6: the HLT activity state is supported.
    pub const fn activity_hlt(self) -> bool {
        bit(self.0, 6)
    }

    /// Bit 7: the shutdown activity state is supported.
    pub const fn activity_shutdown(self) -> bool {
        bit(self.0, 7)
    }

    /// Bit 8: the wait-for-SIPI activity state is supported.
    pub const fn activity_wait_for_sipi(self) -> bool {
        bit(self.0, 8)
    }

    /// Bits 24:16: number of CR3-target values supported.
    pub const fn cr3_target_count(self) -> u16 {
        ((self.0 >> 16) & 0x1ff) as u16
    }

    /// Recommended maximum number of entries in each MSR load/store list:
    /// 512 × (N + 1), N in bits 27:25.
    pub const fn max_msr_list_entries(self) -> u32 {
        512 * ((((self.0 >> 25) & 0x7) as u32) + 1)
    }

    /// Bit 29: VMWRITE may write the VM-exit information fields.
    pub const fn vmwrite_any_field(self) -> bool {
        bit(self.0, 29)
    }

    /// MSEG revision identifier (bits 63:32).
    pub const fn mseg_revision_id(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

/// `IA32_VMX_EPT_VPID_CAP` (SDM A.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EptVpidCap(pub u64);

impl EptVpidCap {
    /// Bit 0: execute-only EPT translations are supported.
    pub const fn execute_only(self) -> bool {
        bit(self.0, 0)
    }
    /// Bit 6: a page-walk length of 4 is supported.
    pub const fn page_walk_4(self) -> bool {
        bit(self.0, 6)
    }
    /// Bit 8: the EPT paging structures may be uncacheable.
    pub const fn memory_type_uc(self) -> bool {
        bit(self.0, 8)
    }
    /// Bit 14: the EPT paging structures may be write-back.
    pub const fn memory_type_wb(self) -> bool {
        bit(self.0, 14)
    }
    /// Bit 16: 2-MiB EPT pages (PDE with bit 7 set) are supported.
    pub const fn pages_2m(self) -> bool {
        bit(self.0, 16)
    }
    /// Bit 17: 1-GiB EPT pages (PDPTE with bit 7 set) are supported.
    pub const fn pages_1g(self) -> bool {
        bit(self.0, 17)
    }
    /// Bit 20: INVEPT is supported.
    pub const fn invept(self) -> bool {
        bit(self.0, 20)
    }
    /// Bit 21: EPT accessed and dirty flags are supported.
    pub const fn accessed_dirty(self) -> bool {
        bit(self.0, 21)
    }
    /// Bit 25: single-context INVEPT is supported.
    pub const fn invept_single_context(self) -> bool {
        bit(self.0, 25)
    }
    /// Bit 26: all-context INVEPT is supported.
    pub const fn invept_all_context(self) -> bool {
        bit(self.0, 26)
    }
    /// Bit 32: INVVPID is supported.
    pub const fn invvpid(self) -> bool {
        bit(self.0, 32)
    }
    /// Bit 40: individual-address INVVPID is supported.
    pub const fn invvpid_individual_address(self) -> bool {
        bit(self.0, 40)
    }
    /// Bit 41: single-context INVVPID is supported.
    pub const fn invvpid_single_context(self) -> bool {
        bit(self.0, 41)
    }
    /// Bit 42: all-context INVVPID is supported.
    pub const fn invvpid_all_context(self) -> bool {
        bit(self.0, 42)
    }
    /// Bit 43: single-context-retaining-globals INVVPID is supported.
    pub const fn invvpid_single_context_retaining_globals(self) -> bool {
        bit(self.0, 43)
    }
}

/// The allowed settings of a 32-bit control field, from one of the
/// `IA32_VMX_*_CTLS` MSRs (SDM A.3–A.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Allowed {
    /// Bits that must be 1 (the allowed 0-settings are 0 there): the MSR's
    /// low 32 bits.
    pub must_be_one: u32,
    /// Bits that may be 1 (the allowed 1-settings): the MSR's high 32 bits.
    pub may_be_one: u32,
}

impl Allowed {
    /// Splits a capability MSR value into its two halves.
    pub const fn from_msr(value: u64) -> Allowed {
        Allowed {
            must_be_one: value as u32,
            may_be_one: (value >> 32) as u32,
        }
    }
}

/// Required control bits that the processor cannot set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlError {
    /// The required bits that are 0 in the allowed 1-settings.
    pub unsupported: u32,
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "required VM-execution control bits {:#x} are not supported by this CPU",
            self.unsupported
        )
    }
}

impl core::error::Error for ControlError {}

/// The value to write to a control field: every bit the processor forces to
/// 1, every `required` bit, and the `optional` bits the processor allows.
///
/// Fails, naming the bits, if a `required` bit cannot be 1. Bits of
/// `optional` that cannot be 1 are silently dropped; callers that care can
/// compare the result with `optional` or use [`supports`].
pub const fn adjust(required: u32, optional: u32, allowed: Allowed) -> Result<u32, ControlError> {
    let unsupported = required & !allowed.may_be_one;
    if unsupported != 0 {
        return Err(ControlError { unsupported });
    }
    Ok(allowed.must_be_one | required | (optional & allowed.may_be_one))
}

/// Whether every bit of `bits` may be 1.
pub const fn supports(allowed: Allowed, bits: u32) -> bool {
    bits & !allowed.may_be_one == 0
}

/// How the firmware left `IA32_FEATURE_CONTROL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureControl {
    /// Locked with VMXON outside SMX allowed: VMXON may be used.
    LockedEnabled,
    /// Locked with VMXON outside SMX disallowed: VMX is off until reset
    /// (usually disabled in the firmware setup).
    LockedDisabled,
    /// Not locked: VMXON raises #GP until the MSR is written with
    /// [`FEATURE_CONTROL_LOCKED`] | [`FEATURE_CONTROL_VMXON_OUTSIDE_SMX`].
    Unlocked,
}

/// Classifies a value of `IA32_FEATURE_CONTROL` (bit 0 lock, bit 2 VMXON
/// outside SMX).
pub const fn feature_control(value: u64) -> FeatureControl {
    if value & FEATURE_CONTROL_LOCKED == 0 {
        FeatureControl::Unlocked
    } else if value & FEATURE_CONTROL_VMXON_OUTSIDE_SMX != 0 {
        FeatureControl::LockedEnabled
    } else {
        FeatureControl::LockedDisabled
    }
}

/// The VMX capability MSRs of one processor.
///
/// MSRs the processor does not implement (per the rules in
/// [`CapabilityMsrs::read_all`]) are 0, which reads as "nothing allowed".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapabilityMsrs {
    /// `IA32_VMX_BASIC`.
    pub basic: VmxBasic,
    /// `IA32_VMX_PINBASED_CTLS`.
    pub pinbased: u64,
    /// `IA32_VMX_PROCBASED_CTLS`.
    pub procbased: u64,
    /// `IA32_VMX_EXIT_CTLS`.
    pub exit: u64,
    /// `IA32_VMX_ENTRY_CTLS`.
    pub entry: u64,
    /// `IA32_VMX_MISC`.
    pub misc: VmxMisc,
    /// `IA32_VMX_CR0_FIXED0`.
    pub cr0_fixed0: u64,
    /// `IA32_VMX_CR0_FIXED1`.
    pub cr0_fixed1: u64,
    /// `IA32_VMX_CR4_FIXED0`.
    pub cr4_fixed0: u64,
    /// `IA32_VMX_CR4_FIXED1`.
    pub cr4_fixed1: u64,
    /// `IA32_VMX_PROCBASED_CTLS2`, or 0 if secondary controls cannot be
    /// activated.
    pub procbased2: u64,
    /// `IA32_VMX_EPT_VPID_CAP`, or 0 if neither EPT nor VPID can be enabled.
    pub ept_vpid: EptVpidCap,
    /// `IA32_VMX_TRUE_PINBASED_CTLS`, or 0 without true controls.
    pub true_pinbased: u64,
    /// `IA32_VMX_TRUE_PROCBASED_CTLS`, or 0 without true controls.
    pub true_procbased: u64,
    /// `IA32_VMX_TRUE_EXIT_CTLS`, or 0 without true controls.
    pub true_exit: u64,
    /// `IA32_VMX_TRUE_ENTRY_CTLS`, or 0 without true controls.
    pub true_entry: u64,
}

impl CapabilityMsrs {
    /// Reads every capability MSR through `rdmsr`, touching only MSRs that
    /// exist on this processor (reading a missing one raises #GP):
    /// the `TRUE_*` MSRs only when `IA32_VMX_BASIC` bit 55 is set,
    /// `IA32_VMX_PROCBASED_CTLS2` only when the primary controls allow
    /// "activate secondary controls", and `IA32_VMX_EPT_VPID_CAP` only when
    /// the secondary controls allow "enable EPT" or "enable VPID".
    pub fn read_all(mut rdmsr: impl FnMut(u32) -> u64) -> Self {
        let basic = VmxBasic(rdmsr(IA32_VMX_BASIC));
        let pinbased = rdmsr(IA32_VMX_PINBASED_CTLS);
        let procbased = rdmsr(IA32_VMX_PROCBASED_CTLS);
        let exit = rdmsr(IA32_VMX_EXIT_CTLS);
        let entry = rdmsr(IA32_VMX_ENTRY_CTLS);
        let misc = VmxMisc(rdmsr(IA32_VMX_MISC));
        let cr0_fixed0 = rdmsr(IA32_VMX_CR0_FIXED0);
        let cr0_fixed1 = rdmsr(IA32_VMX_CR0_FIXED1);
        let cr4_fixed0 = rdmsr(IA32_VMX_CR4_FIXED0);
        let cr4_fixed1 = rdmsr(IA32_VMX_CR4_FIXED1);

        let procbased2 = if bit(procbased, 32 + 31) {
            rdmsr(IA32_VMX_PROCBASED_CTLS2)
        } else {
            0
        };
        let ept_vpid = if bit(procbased2, 32 + 1) || bit(procbased2, 32 + 5) {
            rdmsr(IA32_VMX_EPT_VPID_CAP)
        } else {
            0
        };
        let (true_pinbased, true_procbased, true_exit, true_entry) = if basic.true_controls() {
            (
                rdmsr(IA32_VMX_TRUE_PINBASED_CTLS),
                rdmsr(IA32_VMX_TRUE_PROCBASED_CTLS),
                rdmsr(IA32_VMX_TRUE_EXIT_CTLS),
                rdmsr(IA32_VMX_TRUE_ENTRY_CTLS),
            )
        } else {
            (0, 0, 0, 0)
        };

        CapabilityMsrs {
            basic,
            pinbased,
            procbased,
            exit,
            entry,
            misc,
            cr0_fixed0,
            cr0_fixed1,
            cr4_fixed0,
            cr4_fixed1,
            procbased2,
            ept_vpid: EptVpidCap(ept_vpid),
            true_pinbased,
            true_procbased,
            true_exit,
            true_entry,
        }
    }

    fn pick(&self, plain: u64, true_msr: u64) -> Allowed {
        Allowed::from_msr(if self.basic.true_controls() {
            true_msr
        } else {
            plain
        })
    }

    /// Allowed pin-based controls (`TRUE_PINBASED` when available).
    pub fn pin_allowed(&self) -> Allowed {
        self.pick(self.pinbased, self.true_pinbased)
    }

    /// Allowed primary processor-based controls (`TRUE_PROCBASED` when
    /// available).
    pub fn primary_allowed(&self) -> Allowed {
        self.pick(self.procbased, self.true_procbased)
    }

    /// Allowed VM-exit controls (`TRUE_EXIT` when available).
    pub fn exit_allowed(&self) -> Allowed {
        self.pick(self.exit, self.true_exit)
    }

    /// Allowed VM-entry controls (`TRUE_ENTRY` when available).
    pub fn entry_allowed(&self) -> Allowed {
        self.pick(self.entry, self.true_entry)
    }

    /// Allowed secondary processor-based controls; nothing at all when the
    /// secondary controls cannot be activated.
    pub fn secondary_allowed(&self) -> Allowed {
        if self.primary_allowed().may_be_one & (1 << 31) != 0 {
            Allowed::from_msr(self.procbased2)
        } else {
            Allowed::default()
        }
    }

    /// The CR0 bits exempt from the fixed-bit rules: PE and PG with
    /// "unrestricted guest" (SDM §26.3.1.1), none otherwise.
    const fn cr0_exempt(unrestricted_guest: bool) -> u64 {
        if unrestricted_guest {
            CR0_PE | CR0_PG
        } else {
            0
        }
    }

    /// `value` with every CR0 bit that must be 1 in VMX operation set and
    /// every bit that must be 0 cleared. With `unrestricted_guest`, PE and
    /// PG are left as they are in `value`.
    pub fn fixed_cr0(&self, value: u64, unrestricted_guest: bool) -> u64 {
        let exempt = Self::cr0_exempt(unrestricted_guest);
        let fixed = (value | self.cr0_fixed0) & self.cr0_fixed1;
        (fixed & !exempt) | (value & exempt)
    }

    /// `value` with every CR4 bit that must be 1 in VMX operation (VMXE) set
    /// and every bit that must be 0 cleared.
    pub fn fixed_cr4(&self, value: u64) -> u64 {
        (value | self.cr4_fixed0) & self.cr4_fixed1
    }

    /// The CR0 bits of `value` that break the fixed-bit rules (0 if none),
    /// PE and PG exempt with `unrestricted`. Only the fixed bits are
    /// checked, not the other VM-entry checks on CR0 (such as PG requiring
    /// PE).
    pub fn cr0_violations(&self, value: u64, unrestricted: bool) -> u64 {
        let wrong = (self.cr0_fixed0 & !value) | (value & !self.cr0_fixed1);
        wrong & !Self::cr0_exempt(unrestricted)
    }

    /// The CR4 bits of `value` that break the fixed-bit rules (0 if none).
    pub fn cr4_violations(&self, value: u64) -> u64 {
        (self.cr4_fixed0 & !value) | (value & !self.cr4_fixed1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controls::{PinBased, PrimaryProcBased, SecondaryProcBased};

    /// A representative Skylake-class desktop part (values of the kind
    /// reported by real hardware; true controls, WB VMCS, EPT and VPID).
    fn skylake(msr: u32) -> u64 {
        match msr {
            IA32_VMX_BASIC => 0x00da_0400_0000_0004,
            IA32_VMX_PINBASED_CTLS => 0x0000_00ff_0000_0016,
            IA32_VMX_PROCBASED_CTLS => 0xfff9_fffe_0401_e172,
            IA32_VMX_EXIT_CTLS => 0x01ff_ffff_0003_6dff,
            IA32_VMX_ENTRY_CTLS => 0x0003_ffff_0000_11ff,
            IA32_VMX_MISC => 0x0000_0000_7004_c1e7,
            IA32_VMX_CR0_FIXED0 => 0x8000_0021,
            IA32_VMX_CR0_FIXED1 => 0xffff_ffff,
            IA32_VMX_CR4_FIXED0 => 0x2000,
            IA32_VMX_CR4_FIXED1 => 0x0037_27ff,
            IA32_VMX_PROCBASED_CTLS2 => 0x0055_3cfe_0000_0000,
            IA32_VMX_EPT_VPID_CAP => 0x0000_0f01_0673_4141,
            IA32_VMX_TRUE_PINBASED_CTLS => 0x0000_00ff_0000_0016,
            IA32_VMX_TRUE_PROCBASED_CTLS => 0xfff9_fffe_0400_6172,
            IA32_VMX_TRUE_EXIT_CTLS => 0x01ff_ffff_0003_6dfb,
            IA32_VMX_TRUE_ENTRY_CTLS => 0x0003_ffff_0000_11fb,
            other => panic!("unexpected RDMSR {other:#x}"),
        }
    }

    /// A Bochs-style emulated CPU: revision 0x2b, 4 KiB VMCS, true controls,
    /// but no secondary controls.
    fn bochs_like(msr: u32) -> u64 {
        match msr {
            IA32_VMX_BASIC => 0x00d8_1000_0000_002b,
            IA32_VMX_PINBASED_CTLS => 0x0000_003f_0000_0016,
            IA32_VMX_PROCBASED_CTLS => 0x7ff9_fffe_0401_e172,
            IA32_VMX_EXIT_CTLS => 0x003f_ffff_0003_6dff,
            IA32_VMX_ENTRY_CTLS => 0x0000_f3ff_0000_11ff,
            IA32_VMX_MISC => 0x0000_0000_0000_01e5,
            IA32_VMX_CR0_FIXED0 => 0x8000_0021,
            IA32_VMX_CR0_FIXED1 => 0xffff_ffff,
            IA32_VMX_CR4_FIXED0 => 0x2000,
            IA32_VMX_CR4_FIXED1 => 0x0016_67ff,
            IA32_VMX_TRUE_PINBASED_CTLS => 0x0000_003f_0000_0016,
            IA32_VMX_TRUE_PROCBASED_CTLS => 0x7ff9_fffe_0400_6172,
            IA32_VMX_TRUE_EXIT_CTLS => 0x003f_ffff_0003_6dfb,
            IA32_VMX_TRUE_ENTRY_CTLS => 0x0000_f3ff_0000_11fb,
            other => panic!("Bochs-like CPU has no MSR {other:#x}"),
        }
    }

    #[test]
    fn basic_fields() {
        let b = VmxBasic(bochs_like(IA32_VMX_BASIC));
        assert_eq!(b.revision_id(), 0x2b);
        assert_eq!(b.vmcs_size(), 4096);
        assert!(!b.physical_address_width_32());
        assert!(b.memory_type_write_back());
        assert!(b.io_exit_info());
        assert!(b.true_controls());

        let s = VmxBasic(skylake(IA32_VMX_BASIC));
        assert_eq!(s.revision_id(), 4);
        assert_eq!(s.vmcs_size(), 0x400);
        assert!(s.memory_type_write_back());
        assert!(s.true_controls());

        // Bit 31 is always 0 in the MSR, but must not leak into the id; bit 48.
        let odd = VmxBasic(0x0001_0000_8000_0001);
        assert_eq!(odd.revision_id(), 1);
        assert!(odd.physical_address_width_32());
        assert!(!odd.memory_type_write_back());
        assert!(!odd.true_controls());
    }

    #[test]
    fn misc_fields() {
        let m = VmxMisc(skylake(IA32_VMX_MISC));
        assert_eq!(m.preemption_timer_shift(), 7);
        assert!(m.stores_lma());
        assert!(m.activity_hlt());
        assert!(m.activity_shutdown());
        assert!(m.activity_wait_for_sipi());
        assert_eq!(m.cr3_target_count(), 4);
        assert_eq!(m.max_msr_list_entries(), 512);
        assert!(m.vmwrite_any_field());
        let b = VmxMisc(bochs_like(IA32_VMX_MISC));
        assert_eq!(b.preemption_timer_shift(), 5);
        assert_eq!(b.cr3_target_count(), 0);
        assert!(!b.vmwrite_any_field());
        assert_eq!(VmxMisc(0b011 << 25).max_msr_list_entries(), 2048);
    }

    #[test]
    fn ept_vpid_fields() {
        let e = EptVpidCap(skylake(IA32_VMX_EPT_VPID_CAP));
        assert!(e.execute_only());
        assert!(e.page_walk_4());
        assert!(e.memory_type_uc());
        assert!(e.memory_type_wb());
        assert!(e.pages_2m());
        assert!(e.pages_1g());
        assert!(e.invept());
        assert!(e.accessed_dirty());
        assert!(e.invept_single_context());
        assert!(e.invept_all_context());
        assert!(e.invvpid());
        assert!(e.invvpid_individual_address());
        assert!(e.invvpid_single_context());
        assert!(e.invvpid_all_context());
        assert!(e.invvpid_single_context_retaining_globals());
        let none = EptVpidCap(0);
        assert!(!none.invept() && !none.invvpid() && !none.pages_1g());
        let only_wb = EptVpidCap(1 << 14);
        assert!(only_wb.memory_type_wb() && !only_wb.memory_type_uc());
    }

    #[test]
    fn allowed_split() {
        let a = Allowed::from_msr(0x0000_007f_0000_0016);
        assert_eq!(a.must_be_one, 0x16);
        assert_eq!(a.may_be_one, 0x7f);
    }

    #[test]
    fn adjust_forces_default1_and_filters_optional() {
        let pin = Allowed::from_msr(skylake(IA32_VMX_TRUE_PINBASED_CTLS));
        let required = (PinBased::EXTERNAL_INTERRUPT_EXITING | PinBased::NMI_EXITING).bits();
        let optional = PinBased::PREEMPTION_TIMER.bits() | (1 << 20);
        assert_eq!(adjust(required, optional, pin), Ok(0x16 | 0x1 | 0x8 | 0x40));
        assert!(supports(pin, PinBased::POSTED_INTERRUPTS.bits()));
        assert!(!supports(pin, 1 << 8));
        assert!(supports(pin, 0));
    }

    #[test]
    fn adjust_fails_on_unsupported_required_bit() {
        // The Bochs-like CPU has no posted interrupts (may-be-one = 0x3f).
        let pin = Allowed::from_msr(bochs_like(IA32_VMX_TRUE_PINBASED_CTLS));
        let required = (PinBased::EXTERNAL_INTERRUPT_EXITING | PinBased::POSTED_INTERRUPTS).bits();
        let err = adjust(required, 0, pin).unwrap_err();
        assert_eq!(err, ControlError { unsupported: 0x80 });
        assert_eq!(
            format!("{err}"),
            "required VM-execution control bits 0x80 are not supported by this CPU"
        );
        // The same bit as optional is just dropped.
        assert_eq!(adjust(0x1, 0x80, pin), Ok(0x17));
    }

    #[test]
    fn read_all_skylake_uses_true_controls() {
        let mut reads = Vec::new();
        let caps = CapabilityMsrs::read_all(|msr| {
            reads.push(msr);
            skylake(msr)
        });
        for msr in IA32_VMX_BASIC..=IA32_VMX_TRUE_ENTRY_CTLS {
            assert_eq!(reads.contains(&msr), msr != IA32_VMX_VMCS_ENUM, "{msr:#x}");
        }
        assert_eq!(caps.basic.revision_id(), 4);
        assert_eq!(caps.ept_vpid, EptVpidCap(0x0000_0f01_0673_4141));

        // TRUE_PROCBASED lets CR3-load/store exiting (bits 15, 16) be 0.
        let primary = caps.primary_allowed();
        assert_eq!(primary.must_be_one, 0x0400_6172);
        let cr3 = (PrimaryProcBased::CR3_LOAD_EXITING | PrimaryProcBased::CR3_STORE_EXITING).bits();
        assert_eq!(primary.must_be_one & cr3, 0);
        assert_ne!(Allowed::from_msr(caps.procbased).must_be_one & cr3, 0);
        assert_eq!(caps.exit_allowed().must_be_one, 0x0003_6dfb);
        assert_eq!(caps.entry_allowed().must_be_one, 0x0000_11fb);
        assert_eq!(caps.pin_allowed(), Allowed::from_msr(0x0000_00ff_0000_0016));

        let secondary = caps.secondary_allowed();
        assert_eq!(secondary.must_be_one, 0);
        let wanted = SecondaryProcBased::ENABLE_EPT
            | SecondaryProcBased::ENABLE_VPID
            | SecondaryProcBased::UNRESTRICTED_GUEST;
        assert!(supports(secondary, wanted.bits()));
    }

    #[test]
    fn read_all_without_true_controls_or_secondary() {
        // Bochs-like values with bit 55 cleared: the TRUE MSRs must not be
        // read, and PROCBASED_CTLS2 / EPT_VPID_CAP do not exist.
        let mut reads = Vec::new();
        let caps = CapabilityMsrs::read_all(|msr| {
            reads.push(msr);
            let v = bochs_like(msr);
            if msr == IA32_VMX_BASIC {
                v & !(1 << 55)
            } else {
                v
            }
        });
        assert!(reads.iter().all(|&m| m <= IA32_VMX_CR4_FIXED1));
        assert_eq!(reads.len(), 10);
        assert_eq!((caps.true_pinbased, caps.true_procbased), (0, 0));
        assert_eq!((caps.true_exit, caps.true_entry), (0, 0));
        assert_eq!(caps.procbased2, 0);
        assert_eq!(caps.ept_vpid, EptVpidCap(0));
        assert_eq!(caps.primary_allowed().must_be_one, 0x0401_e172);
        assert_eq!(caps.exit_allowed().must_be_one, 0x0003_6dff);
        assert_eq!(caps.entry_allowed().must_be_one, 0x0000_11ff);
        assert_eq!(
            caps.secondary_allowed(),
            Allowed {
                must_be_one: 0,
                may_be_one: 0
            }
        );
        assert!(adjust(
            PrimaryProcBased::ACTIVATE_SECONDARY_CONTROLS.bits(),
            0,
            caps.primary_allowed()
        )
        .is_err());

        // With true controls the same CPU reads the TRUE MSRs but still no
        // secondary ones.
        let mut reads = Vec::new();
        let caps = CapabilityMsrs::read_all(|msr| {
            reads.push(msr);
            bochs_like(msr)
        });
        assert_eq!(reads.len(), 14);
        assert!(!reads.contains(&IA32_VMX_PROCBASED_CTLS2));
        assert_eq!(caps.primary_allowed().must_be_one, 0x0400_6172);
    }

    #[test]
    fn ept_vpid_cap_read_only_with_ept_or_vpid() {
        for (ctls2, expect_read) in [
            (0x0000_0002_0000_0000u64, true),
            (0x0000_0020_0000_0000, true),
            (0x0000_0001_0000_0000, false),
            (0x0000_0000_0000_0022, false),
        ] {
            let mut read_cap = false;
            let caps = CapabilityMsrs::read_all(|msr| match msr {
                IA32_VMX_PROCBASED_CTLS2 => ctls2,
                IA32_VMX_EPT_VPID_CAP => {
                    read_cap = true;
                    0x0000_0f01_0673_4141
                }
                _ => skylake(msr),
            });
            assert_eq!(read_cap, expect_read, "{ctls2:#x}");
            assert_eq!(caps.ept_vpid.invept(), expect_read);
        }
    }

    #[test]
    fn fixed_cr0_and_cr4() {
        let caps = CapabilityMsrs::read_all(skylake);
        // Real-mode-like CR0 (ET only): NE, PE and PG forced without
        // unrestricted guest.
        let real = 0x0000_0010;
        assert_eq!(caps.fixed_cr0(real, false), 0x8000_0031);
        assert_eq!(caps.cr0_violations(real, false), 0x8000_0001 | 0x20);
        // With unrestricted guest only NE is forced; PE/PG stay clear.
        assert_eq!(caps.fixed_cr0(real, true), 0x0000_0030);
        assert_eq!(caps.cr0_violations(real, true), 0x20);
        // A fully valid long-mode CR0 is unchanged either way.
        let long = 0x8005_0033;
        assert_eq!(caps.fixed_cr0(long, false), long);
        assert_eq!(caps.fixed_cr0(long, true), long);
        assert_eq!(caps.cr0_violations(long, false), 0);
        // Bits above 31 are not allowed by FIXED1.
        assert_eq!(caps.fixed_cr0(long | 1 << 40, false), long);
        assert_eq!(caps.cr0_violations(long | 1 << 40, true), 1 << 40);

        // CR4: VMXE forced, bits outside FIXED1 (e.g. bit 15, bit 24) cleared.
        let cr4 = 0x0000_0020 | 1 << 15 | 1 << 24;
        assert_eq!(caps.fixed_cr4(cr4), 0x2020);
        assert_eq!(caps.cr4_violations(cr4), 0x2000 | 1 << 15 | 1 << 24);
        assert_eq!(caps.cr4_violations(0x2020), 0);
    }

    #[test]
    fn feature_control_states() {
        assert_eq!(feature_control(0), FeatureControl::Unlocked);
        assert_eq!(feature_control(0b100), FeatureControl::Unlocked);
        assert_eq!(feature_control(0b101), FeatureControl::LockedEnabled);
        assert_eq!(feature_control(0b001), FeatureControl::LockedDisabled);
        // VMXON inside SMX only is still disabled for us.
        assert_eq!(feature_control(0b011), FeatureControl::LockedDisabled);
        assert_eq!(feature_control(u64::MAX), FeatureControl::LockedEnabled);
    }
}
