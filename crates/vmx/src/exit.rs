//! Exit reasons (SDM Vol. 3C appendix C) and decoders for the exit
//! qualification and interruption-information fields (§28.2).
//!
//! Every decoder is total: any bit pattern decodes to something (or to
//! `None` where the SDM reserves the encoding) and never panics, because a
//! buggy or hostile guest must not be able to crash the hypervisor through
//! the values the processor reports about it.

use core::fmt;

macro_rules! exit_reasons {
    ($( $(#[$doc:meta])* $variant:ident = $num:literal => $name:literal, )*) => {
        /// The basic exit reason: bits 15:0 of the `VM_EXIT_REASON` field
        /// (SDM appendix C, table C-1).
        ///
        /// [`ExitReason::from_basic`] is the canonical constructor: it never
        /// produces `Unknown(n)` for a number that has a named variant.
        #[non_exhaustive]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ExitReason {
            $( $(#[$doc])* $variant, )*
            /// A basic exit reason this crate does not know (reserved or
            /// newer than this table).
            Unknown(u16),
        }

        impl ExitReason {
            /// The exit reason for basic exit-reason number `basic`.
            #[inline]
            pub const fn from_basic(basic: u16) -> Self {
                match basic {
                    $( $num => Self::$variant, )*
                    other => Self::Unknown(other),
                }
            }

            /// The basic exit-reason number.
            #[inline]
            pub const fn basic(&self) -> u16 {
                match self {
                    $( Self::$variant => $num, )*
                    Self::Unknown(n) => *n,
                }
            }

            /// A short human-readable name, as the SDM titles the reason.
            pub const fn name(&self) -> &'static str {
                match self {
                    $( Self::$variant => $name, )*
                    Self::Unknown(_) => "unknown exit reason",
                }
            }
        }
    };
}

exit_reasons! {
    /// Exception (including #DB/#BP from INT1/INT3) or NMI.
    ExceptionOrNmi = 0 => "exception or NMI",
    /// External interrupt.
    ExternalInterrupt = 1 => "external interrupt",
    /// Triple fault.
    TripleFault = 2 => "triple fault",
    /// INIT signal.
    InitSignal = 3 => "INIT signal",
    /// Start-up IPI in wait-for-SIPI state.
    Sipi = 4 => "SIPI",
    /// SMI right after an I/O instruction (dual-monitor treatment).
    IoSmi = 5 => "I/O SMI",
    /// Other SMI (dual-monitor treatment).
    OtherSmi = 6 => "other SMI",
    /// Interrupt window opened.
    InterruptWindow = 7 => "interrupt window",
    /// NMI window opened.
    NmiWindow = 8 => "NMI window",
    /// Task switch.
    TaskSwitch = 9 => "task switch",
    /// CPUID.
    Cpuid = 10 => "CPUID",
    /// GETSEC.
    Getsec = 11 => "GETSEC",
    /// HLT.
    Hlt = 12 => "HLT",
    /// INVD.
    Invd = 13 => "INVD",
    /// INVLPG.
    Invlpg = 14 => "INVLPG",
    /// RDPMC.
    Rdpmc = 15 => "RDPMC",
    /// RDTSC.
    Rdtsc = 16 => "RDTSC",
    /// RSM in SMM.
    Rsm = 17 => "RSM",
    /// VMCALL.
    Vmcall = 18 => "VMCALL",
    /// VMCLEAR.
    Vmclear = 19 => "VMCLEAR",
    /// VMLAUNCH.
    Vmlaunch = 20 => "VMLAUNCH",
    /// VMPTRLD.
    Vmptrld = 21 => "VMPTRLD",
    /// VMPTRST.
    Vmptrst = 22 => "VMPTRST",
    /// VMREAD.
    Vmread = 23 => "VMREAD",
    /// VMRESUME.
    Vmresume = 24 => "VMRESUME",
    /// VMWRITE.
    Vmwrite = 25 => "VMWRITE",
    /// VMXOFF.
    Vmxoff = 26 => "VMXOFF",
    /// VMXON.
    Vmxon = 27 => "VMXON",
    /// MOV to/from CR, CLTS or LMSW (see [`CrAccess`]).
    CrAccess = 28 => "control-register access",
    /// MOV to/from DR.
    DrAccess = 29 => "MOV DR",
    /// IN, OUT, INS or OUTS (see [`IoQualification`]).
    IoInstruction = 30 => "I/O instruction",
    /// RDMSR.
    Rdmsr = 31 => "RDMSR",
    /// WRMSR.
    Wrmsr = 32 => "WRMSR",
    /// VM-entry failure due to invalid guest state.
    InvalidGuestState = 33 => "invalid guest state",
    /// VM-entry failure due to MSR loading.
    MsrLoading = 34 => "MSR loading failure",
    /// MWAIT.
    Mwait = 36 => "MWAIT",
    /// Monitor trap flag.
    MonitorTrapFlag = 37 => "monitor trap flag",
    /// MONITOR.
    Monitor = 39 => "MONITOR",
    /// PAUSE (or PAUSE-loop exiting).
    Pause = 40 => "PAUSE",
    /// VM-entry failure due to a machine-check event.
    MachineCheck = 41 => "machine-check event",
    /// TPR below threshold.
    TprBelowThreshold = 43 => "TPR below threshold",
    /// Access to the APIC-access page.
    ApicAccess = 44 => "APIC access",
    /// EOI virtualization with the vector's EOI-exit bit set.
    VirtualizedEoi = 45 => "virtualized EOI",
    /// LGDT, LIDT, SGDT or SIDT.
    GdtrIdtr = 46 => "access to GDTR or IDTR",
    /// LLDT, LTR, SLDT or STR.
    LdtrTr = 47 => "access to LDTR or TR",
    /// EPT violation (see [`EptViolation`]).
    EptViolation = 48 => "EPT violation",
    /// EPT misconfiguration.
    EptMisconfig = 49 => "EPT misconfiguration",
    /// INVEPT.
    Invept = 50 => "INVEPT",
    /// RDTSCP.
    Rdtscp = 51 => "RDTSCP",
    /// VMX-preemption timer expired.
    PreemptionTimer = 52 => "VMX-preemption timer expired",
    /// INVVPID.
    Invvpid = 53 => "INVVPID",
    /// WBINVD or WBNOINVD.
    Wbinvd = 54 => "WBINVD or WBNOINVD",
    /// XSETBV.
    Xsetbv = 55 => "XSETBV",
    /// APIC write (trap-like, after APIC-register virtualization).
    ApicWrite = 56 => "APIC write",
    /// RDRAND.
    Rdrand = 57 => "RDRAND",
    /// INVPCID.
    Invpcid = 58 => "INVPCID",
    /// VMFUNC failure.
    Vmfunc = 59 => "VMFUNC",
    /// ENCLS.
    Encls = 60 => "ENCLS",
    /// RDSEED.
    Rdseed = 61 => "RDSEED",
    /// Page-modification log full.
    PmlFull = 62 => "page-modification log full",
    /// XSAVES.
    Xsaves = 63 => "XSAVES",
    /// XRSTORS.
    Xrstors = 64 => "XRSTORS",
    /// PCONFIG.
    Pconfig = 65 => "PCONFIG",
    /// Sub-page-permission (SPP) related event.
    SppEvent = 66 => "SPP-related event",
    /// UMWAIT.
    Umwait = 67 => "UMWAIT",
    /// TPAUSE.
    Tpause = 68 => "TPAUSE",
    /// LOADIWKEY.
    Loadiwkey = 69 => "LOADIWKEY",
    /// ENCLV.
    Enclv = 70 => "ENCLV",
    /// ENQCMD PASID translation failure.
    EnqcmdPasidFailure = 72 => "ENQCMD PASID translation failure",
    /// ENQCMDS PASID translation failure.
    EnqcmdsPasidFailure = 73 => "ENQCMDS PASID translation failure",
    /// Bus lock (after the instruction that acquired it).
    BusLock = 74 => "bus lock",
    /// Instruction timeout (notify VM exit).
    InstructionTimeout = 75 => "instruction timeout",
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.basic())
    }
}

/// The whole `VM_EXIT_REASON` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    /// The basic exit reason (bits 15:0).
    pub reason: ExitReason,
    /// Bit 31: VM entry failed (reasons 33, 34 and 41); the guest never ran.
    pub entry_failure: bool,
    /// The raw field value, for the other flag bits.
    pub raw: u32,
}

impl ExitInfo {
    /// Decodes a `VM_EXIT_REASON` value.
    #[inline]
    pub const fn from_raw(raw: u32) -> Self {
        ExitInfo {
            reason: ExitReason::from_basic(raw as u16),
            entry_failure: raw & (1 << 31) != 0,
            raw,
        }
    }

    /// Bit 26: a monitor-trap-flag exit is pending after this one.
    pub const fn pending_mtf(&self) -> bool {
        self.raw & (1 << 26) != 0
    }

    /// Bit 27: the exit happened from enclave mode.
    pub const fn from_enclave(&self) -> bool {
        self.raw & (1 << 27) != 0
    }

    /// Bit 29: the exit came from VMX root operation (SMM monitor only).
    pub const fn from_vmx_root(&self) -> bool {
        self.raw & (1 << 29) != 0
    }
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.entry_failure {
            write!(f, "VM-entry failure: {}", self.reason)
        } else {
            fmt::Display::fmt(&self.reason, f)
        }
    }
}

/// Direction of an I/O instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IoDirection {
    /// IN / INS: the guest reads from the port.
    In,
    /// OUT / OUTS: the guest writes to the port.
    Out,
}

/// Exit qualification of an I/O-instruction exit (SDM table 28-5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IoQualification {
    /// Access size in bytes: 1, 2 or 4.
    pub size: u8,
    /// IN or OUT.
    pub direction: IoDirection,
    /// INS/OUTS rather than IN/OUT.
    pub string: bool,
    /// REP-prefixed.
    pub rep: bool,
    /// The port came from an immediate operand rather than DX.
    pub immediate: bool,
    /// The port number.
    pub port: u16,
}

impl IoQualification {
    /// Decodes the qualification; `None` for a reserved size encoding
    /// (bits 2:0 other than 0, 1 or 3).
    pub const fn decode(q: u64) -> Option<Self> {
        let size = match q & 0b111 {
            0 => 1,
            1 => 2,
            3 => 4,
            _ => return None,
        };
        Some(IoQualification {
            size,
            direction: if q & (1 << 3) != 0 {
                IoDirection::In
            } else {
                IoDirection::Out
            },
            string: q & (1 << 4) != 0,
            rep: q & (1 << 5) != 0,
            immediate: q & (1 << 6) != 0,
            port: (q >> 16) as u16,
        })
    }
}

/// Exit qualification of an EPT-violation exit (SDM table 28-7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EptViolation {
    /// Bit 0: the access was a data read.
    pub read: bool,
    /// Bit 1: the access was a data write.
    pub write: bool,
    /// Bit 2: the access was an instruction fetch.
    pub fetch: bool,
    /// Bit 3: the guest-physical address was readable.
    pub readable: bool,
    /// Bit 4: the guest-physical address was writable.
    pub writable: bool,
    /// Bit 5: the guest-physical address was executable (for supervisor-mode
    /// linear addresses when mode-based execute control is on).
    pub executable: bool,
    /// Bit 7: the guest-linear-address field is valid.
    pub gla_valid: bool,
    /// Bit 8 (only when bit 7 is set): the access was to the translation of
    /// a linear address; clear means it was to a guest paging-structure
    /// entry during a page walk or an accessed/dirty-bit update.
    pub caused_by_translation: bool,
    /// Bit 12: the exit happened during an IRET that unblocked NMIs; the
    /// hypervisor must re-establish blocking by NMI before resuming.
    pub nmi_unblocking: bool,
}

impl EptViolation {
    /// Decodes the qualification.
    pub const fn decode(q: u64) -> Self {
        let gla_valid = q & (1 << 7) != 0;
        EptViolation {
            read: q & (1 << 0) != 0,
            write: q & (1 << 1) != 0,
            fetch: q & (1 << 2) != 0,
            readable: q & (1 << 3) != 0,
            writable: q & (1 << 4) != 0,
            executable: q & (1 << 5) != 0,
            gla_valid,
            caused_by_translation: gla_valid && q & (1 << 8) != 0,
            nmi_unblocking: q & (1 << 12) != 0,
        }
    }

    /// Whether the guest-physical address was not mapped at all (no read,
    /// write or execute permission).
    pub const fn not_present(&self) -> bool {
        !(self.readable || self.writable || self.executable)
    }
}

impl fmt::Display for EptViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (set, what) in [
            (self.read, "read"),
            (self.write, "write"),
            (self.fetch, "fetch"),
        ] {
            if set {
                if !first {
                    f.write_str("/")?;
                }
                f.write_str(what)?;
                first = false;
            }
        }
        if first {
            f.write_str("unknown")?;
        }
        if self.not_present() {
            f.write_str(" access to a page that is not present")?;
        } else {
            let r = if self.readable { 'r' } else { '-' };
            let w = if self.writable { 'w' } else { '-' };
            let x = if self.executable { 'x' } else { '-' };
            write!(f, " access to a page with {r}{w}{x} rights")?;
        }
        if self.gla_valid && !self.caused_by_translation {
            f.write_str(" (during a guest page walk)")?;
        }
        Ok(())
    }
}

/// The kind of a control-register access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrAccessType {
    /// MOV to CR.
    MovToCr,
    /// MOV from CR.
    MovFromCr,
    /// CLTS.
    Clts,
    /// LMSW.
    Lmsw,
}

/// Exit qualification of a control-register-access exit (SDM table 28-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CrAccess {
    /// Bits 3:0: the control register (0 for CLTS and LMSW).
    pub cr: u8,
    /// Bits 5:4: the kind of access.
    pub access: CrAccessType,
    /// Bits 11:8: for MOV CR, the general-purpose register in the encoding of
    /// [`crate::GuestRegisters::gpr`].
    pub gpr: u8,
    /// Bits 31:16: for LMSW, the source operand.
    pub lmsw_source: u16,
}

impl CrAccess {
    /// Decodes the qualification. Every bit pattern decodes.
    pub const fn decode(q: u64) -> Self {
        CrAccess {
            cr: (q & 0xf) as u8,
            access: match (q >> 4) & 0b11 {
                0 => CrAccessType::MovToCr,
                1 => CrAccessType::MovFromCr,
                2 => CrAccessType::Clts,
                _ => CrAccessType::Lmsw,
            },
            gpr: ((q >> 8) & 0xf) as u8,
            lmsw_source: (q >> 16) as u16,
        }
    }
}

/// The type of an event in an interruption-information field (SDM
/// table 25-17 for injection, §28.2.2 for exits).
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InterruptionType {
    /// External interrupt.
    External = 0,
    /// Type 1, reserved by the SDM.
    Reserved = 1,
    /// Non-maskable interrupt.
    Nmi = 2,
    /// Hardware exception (everything but #BP/#OF from INT3/INTO).
    HardwareException = 3,
    /// Software interrupt (INT n).
    SoftwareInterrupt = 4,
    /// Privileged software exception (INT1).
    PrivilegedSoftwareException = 5,
    /// Software exception (INT3, INTO).
    SoftwareException = 6,
    /// Other event (pending MTF on injection).
    Other = 7,
}

impl InterruptionType {
    /// The type from the low 3 bits of `bits`.
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 0b111 {
            0 => Self::External,
            1 => Self::Reserved,
            2 => Self::Nmi,
            3 => Self::HardwareException,
            4 => Self::SoftwareInterrupt,
            5 => Self::PrivilegedSoftwareException,
            6 => Self::SoftwareException,
            _ => Self::Other,
        }
    }
}

/// An interruption-information field: `VM_EXIT_INTR_INFO`,
/// `IDT_VECTORING_INFO_FIELD` or `VM_ENTRY_INTR_INFO_FIELD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InterruptionInfo {
    /// Bits 7:0: vector.
    pub vector: u8,
    /// Bits 10:8: event type.
    pub kind: InterruptionType,
    /// Bit 11: an error code is delivered (or was, on exit).
    pub error_code_valid: bool,
    /// Bit 31: the field is valid.
    pub valid: bool,
}

impl InterruptionInfo {
    /// Decodes the field. Bit 12 (NMI unblocking on exit) and the reserved
    /// bits 30:13 are ignored.
    pub const fn decode(raw: u32) -> Self {
        InterruptionInfo {
            vector: raw as u8,
            kind: InterruptionType::from_bits((raw >> 8) as u8),
            error_code_valid: raw & (1 << 11) != 0,
            valid: raw & (1 << 31) != 0,
        }
    }

    /// The field value, e.g. for `VM_ENTRY_INTR_INFO_FIELD`.
    pub const fn encode(&self) -> u32 {
        self.vector as u32
            | (self.kind as u32) << 8
            | (self.error_code_valid as u32) << 11
            | (self.valid as u32) << 31
    }

    /// A valid hardware exception with vector `vector`, with or without an
    /// error code, for injection.
    pub const fn hardware_exception(vector: u8, error_code: bool) -> Self {
        InterruptionInfo {
            vector,
            kind: InterruptionType::HardwareException,
            error_code_valid: error_code,
            valid: true,
        }
    }

    /// A valid external interrupt with vector `vector`, for injection.
    pub const fn external_interrupt(vector: u8) -> Self {
        InterruptionInfo {
            vector,
            kind: InterruptionType::External,
            error_code_valid: false,
            valid: true,
        }
    }

    /// A valid NMI (vector 2), for injection.
    pub const fn nmi() -> Self {
        InterruptionInfo {
            vector: 2,
            kind: InterruptionType::Nmi,
            error_code_valid: false,
            valid: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_reason_numbers_round_trip() {
        let mut known = 0;
        for n in 0..=u16::MAX {
            let r = ExitReason::from_basic(n);
            assert_eq!(r.basic(), n);
            if !matches!(r, ExitReason::Unknown(_)) {
                known += 1;
                assert!(n <= 75);
                assert_ne!(r.name(), "unknown exit reason");
            }
        }
        // 0..=75 minus the unused 35, 38, 42 and 71.
        assert_eq!(known, 72);
        for n in [35, 38, 42, 71, 76, 0xffff] {
            assert_eq!(ExitReason::from_basic(n), ExitReason::Unknown(n));
        }
    }

    #[test]
    fn exit_reason_spot_checks() {
        assert_eq!(ExitReason::from_basic(0), ExitReason::ExceptionOrNmi);
        assert_eq!(ExitReason::from_basic(10), ExitReason::Cpuid);
        assert_eq!(ExitReason::from_basic(12), ExitReason::Hlt);
        assert_eq!(ExitReason::from_basic(18), ExitReason::Vmcall);
        assert_eq!(ExitReason::from_basic(28), ExitReason::CrAccess);
        assert_eq!(ExitReason::from_basic(30), ExitReason::IoInstruction);
        assert_eq!(ExitReason::from_basic(33), ExitReason::InvalidGuestState);
        assert_eq!(ExitReason::from_basic(48), ExitReason::EptViolation);
        assert_eq!(ExitReason::from_basic(49), ExitReason::EptMisconfig);
        assert_eq!(ExitReason::from_basic(52), ExitReason::PreemptionTimer);
        assert_eq!(ExitReason::from_basic(55), ExitReason::Xsetbv);
        assert_eq!(ExitReason::from_basic(64), ExitReason::Xrstors);
        assert_eq!(ExitReason::from_basic(75), ExitReason::InstructionTimeout);
        assert_eq!(ExitReason::Cpuid.to_string(), "CPUID (10)");
        assert_eq!(
            ExitReason::Unknown(35).to_string(),
            "unknown exit reason (35)"
        );
    }

    #[test]
    fn exit_info() {
        let i = ExitInfo::from_raw(0x8000_0021);
        assert_eq!(i.reason, ExitReason::InvalidGuestState);
        assert!(i.entry_failure);
        assert_eq!(i.to_string(), "VM-entry failure: invalid guest state (33)");
        let i = ExitInfo::from_raw(0x0000_0030);
        assert_eq!(i.reason, ExitReason::EptViolation);
        assert!(!i.entry_failure && !i.pending_mtf() && !i.from_enclave());
        let i = ExitInfo::from_raw(0x2c00_000c);
        assert_eq!(i.reason, ExitReason::Hlt);
        assert!(i.pending_mtf() && i.from_enclave() && i.from_vmx_root());
        // Bits 30:16 never leak into the basic reason.
        assert_eq!(ExitInfo::from_raw(0x7fff_000a).reason, ExitReason::Cpuid);
    }

    #[test]
    fn io_qualification() {
        // OUT DX, AL on port 0x3f8.
        let q = IoQualification::decode(0x03f8_0000).unwrap();
        assert_eq!(
            q,
            IoQualification {
                size: 1,
                direction: IoDirection::Out,
                string: false,
                rep: false,
                immediate: false,
                port: 0x3f8,
            }
        );
        // IN EAX, 0x71 (immediate).
        let q = IoQualification::decode(0x0071_0000 | 1 << 6 | 1 << 3 | 3).unwrap();
        assert_eq!(
            (q.size, q.direction, q.immediate, q.port),
            (4, IoDirection::In, true, 0x71)
        );
        // REP INSW from port 0x1f0.
        let q = IoQualification::decode(0x01f0_0000 | 1 << 5 | 1 << 4 | 1 << 3 | 1).unwrap();
        assert_eq!((q.size, q.string, q.rep, q.port), (2, true, true, 0x1f0));
        // Sizes 3, 5, 6 and 7 (encodings 2, 4, 5, 6, 7) are reserved.
        for bad in [2u64, 4, 5, 6, 7] {
            assert_eq!(IoQualification::decode(0xffff_0000 | bad), None);
        }
        // High bits beyond 31 are ignored.
        assert_eq!(
            IoQualification::decode(0xffff_ffff_0060_0008).unwrap().port,
            0x60
        );
    }

    #[test]
    fn ept_violation() {
        // Write to an unmapped page, linear address valid, translation.
        let v = EptViolation::decode(0x182);
        assert!(v.write && !v.read && !v.fetch && v.gla_valid && v.caused_by_translation);
        assert!(v.not_present());
        assert_eq!(v.to_string(), "write access to a page that is not present");
        // Fetch from a read-only page.
        let v = EptViolation::decode(0x18c);
        assert!(v.fetch && v.readable && !v.writable && !v.executable);
        assert_eq!(v.to_string(), "fetch access to a page with r-- rights");
        // Read during a guest page walk (bit 7 set, bit 8 clear).
        let v = EptViolation::decode(0x081);
        assert!(!v.caused_by_translation);
        assert_eq!(
            v.to_string(),
            "read access to a page that is not present (during a guest page walk)"
        );
        // Bit 8 without bit 7 is not a translation; NMI unblocking.
        let v = EptViolation::decode(0x1000 | 0x100 | 0x3a);
        assert!(!v.gla_valid && !v.caused_by_translation && v.nmi_unblocking);
        assert_eq!(v.to_string(), "write access to a page with rwx rights");
        let v = EptViolation::decode(0x3 | 0x18);
        assert_eq!(v.to_string(), "read/write access to a page with rw- rights");
        assert_eq!(
            EptViolation::decode(0).to_string(),
            "unknown access to a page that is not present"
        );
    }

    #[test]
    fn cr_access() {
        // MOV CR3, RAX... as MOV to CR3 from RBX (gpr 3).
        let c = CrAccess::decode(0x0000_0303);
        assert_eq!(
            c,
            CrAccess {
                cr: 3,
                access: CrAccessType::MovToCr,
                gpr: 3,
                lmsw_source: 0
            }
        );
        // MOV R12, CR8.
        let c = CrAccess::decode(0x0000_0c18);
        assert_eq!((c.cr, c.access, c.gpr), (8, CrAccessType::MovFromCr, 12));
        // CLTS.
        assert_eq!(CrAccess::decode(0x20).access, CrAccessType::Clts);
        // LMSW with source 0x0001 (memory operand, bit 6).
        let c = CrAccess::decode(0x0001_0070);
        assert_eq!((c.cr, c.access, c.lmsw_source), (0, CrAccessType::Lmsw, 1));
    }

    #[test]
    fn interruption_info() {
        // #PF with error code, valid.
        let i = InterruptionInfo::decode(0x8000_0b0e);
        assert_eq!(i, InterruptionInfo::hardware_exception(14, true));
        assert_eq!(i.encode(), 0x8000_0b0e);
        // External interrupt 0x20.
        assert_eq!(
            InterruptionInfo::external_interrupt(0x20).encode(),
            0x8000_0020
        );
        assert_eq!(InterruptionInfo::nmi().encode(), 0x8000_0202);
        // INT3: software exception.
        assert_eq!(
            InterruptionInfo::decode(0x8000_0603).kind,
            InterruptionType::SoftwareException
        );
        // Type 1 is reserved; NMI-unblocking and reserved bits are dropped.
        let i = InterruptionInfo::decode(0x7fff_f1ff);
        assert_eq!(i.kind, InterruptionType::Reserved);
        assert!(!i.valid && !i.error_code_valid);
        assert_eq!(i.encode(), 0x01ff);
        assert!(!InterruptionInfo::decode(0).valid);
    }

    #[test]
    fn interruption_info_round_trips() {
        for kind in 0..8u8 {
            for flags in 0..4u32 {
                for vector in 0..=255u8 {
                    let raw =
                        vector as u32 | (kind as u32) << 8 | (flags & 1) << 11 | (flags >> 1) << 31;
                    let info = InterruptionInfo::decode(raw);
                    assert_eq!(info.encode(), raw);
                    assert_eq!(info.kind as u8, kind);
                    assert_eq!(InterruptionInfo::decode(info.encode()), info);
                }
            }
        }
    }

    /// Every decoder on single bits, pairs of bits, dense low patterns and
    /// pseudo-random values: nothing panics, and what decodes formats.
    #[test]
    fn decoders_never_panic() {
        fn exercise(q: u64) {
            let _ = ExitInfo::from_raw(q as u32).to_string();
            let _ = ExitReason::from_basic(q as u16).name();
            if let Some(io) = IoQualification::decode(q) {
                assert!(matches!(io.size, 1 | 2 | 4));
            }
            let _ = EptViolation::decode(q).to_string();
            let c = CrAccess::decode(q);
            assert!(c.cr < 16 && c.gpr < 16);
            let i = InterruptionInfo::decode(q as u32);
            assert_eq!(InterruptionInfo::decode(i.encode()), i);
        }
        for a in 0..64 {
            for b in 0..64 {
                exercise(1u64 << a | 1u64 << b);
                exercise(!(1u64 << a | 1u64 << b));
            }
        }
        for q in 0..=0x1_ffffu64 {
            exercise(q);
            exercise(q << 47 | q);
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000 {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            exercise(x);
        }
        exercise(0);
        exercise(u64::MAX);
    }
}
