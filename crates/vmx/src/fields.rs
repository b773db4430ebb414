//! VMCS field encodings (SDM Vol. 3C §25.11.2 "VMREAD, VMWRITE, and Encodings
//! of VMCS Fields" and appendix B "Field Encoding in VMCS").
//!
//! A field encoding is a 32-bit value whose bits describe the field:
//!
//! | bits  | meaning                                                        |
//! |-------|----------------------------------------------------------------|
//! | 0     | access type: 0 = full, 1 = high 32 bits of a 64-bit field      |
//! | 9:1   | index                                                          |
//! | 11:10 | type: 0 = control, 1 = VM-exit information (read-only), 2 = guest state, 3 = host state |
//! | 12    | reserved (0)                                                   |
//! | 14:13 | width: 0 = 16-bit, 1 = 64-bit, 2 = 32-bit, 3 = natural width   |
//! | 31:15 | reserved (0)                                                   |
//!
//! The constant names follow the conventional spelling used by most
//! hypervisors (Linux's `enum vmcs_field`). [`ALL`] lists every constant of
//! this module with its name, so that a VMCS dump or an error message can
//! print a field by name ([`name`]).

/// The width of a VMCS field, from bits 14:13 of its encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Width {
    /// 16-bit field (encoding bits 14:13 = 0).
    Bits16,
    /// 64-bit field (encoding bits 14:13 = 1); on a 64-bit host it is read
    /// and written whole with the full encoding.
    Bits64,
    /// 32-bit field (encoding bits 14:13 = 2).
    Bits32,
    /// Natural-width field (encoding bits 14:13 = 3): 64 bits on processors
    /// that support Intel 64.
    Natural,
}

/// The kind of a VMCS field, from bits 11:10 of its encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// VM-execution, VM-exit or VM-entry control field (bits 11:10 = 0).
    Control,
    /// VM-exit information field; read-only unless the CPU reports
    /// "VMWRITE to any field" in `IA32_VMX_MISC` (bits 11:10 = 1).
    ReadOnlyData,
    /// Guest-state area (bits 11:10 = 2).
    GuestState,
    /// Host-state area (bits 11:10 = 3).
    HostState,
}

/// The width of the field with this encoding (bits 14:13).
pub const fn width(encoding: u32) -> Width {
    match (encoding >> 13) & 0b11 {
        0 => Width::Bits16,
        1 => Width::Bits64,
        2 => Width::Bits32,
        _ => Width::Natural,
    }
}

/// The type of the field with this encoding (bits 11:10).
pub const fn field_type(encoding: u32) -> FieldType {
    match (encoding >> 10) & 0b11 {
        0 => FieldType::Control,
        1 => FieldType::ReadOnlyData,
        2 => FieldType::GuestState,
        _ => FieldType::HostState,
    }
}

/// Whether the encoding selects the high 32 bits of a 64-bit field (access
/// type, bit 0). Only meaningful for [`Width::Bits64`] fields; a 64-bit
/// hypervisor uses the full encodings and never needs the high ones.
pub const fn is_high_access(encoding: u32) -> bool {
    encoding & 1 != 0
}

/// The index of the field within its width and type (bits 9:1).
pub const fn index(encoding: u32) -> u16 {
    ((encoding >> 1) & 0x1ff) as u16
}

/// Whether the reserved bits (12 and 31:15) of the encoding are clear.
/// VMREAD/VMWRITE fail with VM-instruction error 12 on anything else.
pub const fn is_well_formed(encoding: u32) -> bool {
    encoding & !0x6fff == 0
}

/// The name of the field with this encoding, if it is one of the constants of
/// this module.
pub fn name(encoding: u32) -> Option<&'static str> {
    ALL.iter()
        .find(|&&(value, _)| value == encoding)
        .map(|&(_, name)| name)
}

/// Defines every field constant and the [`ALL`] table from one list, so that
/// the table can never miss a constant.
macro_rules! vmcs_fields {
    ($( $(#[$doc:meta])* $name:ident = $value:expr; )*) => {
        $(
            $(#[$doc])*
            pub const $name: u32 = $value;
        )*

        /// Every field constant of this module with its name, in encoding
        /// order within each (width, type) group.
        pub const ALL: &[(u32, &str)] = &[
            $( ($name, stringify!($name)), )*
        ];
    };
}

vmcs_fields! {
    // ---- 16-bit control fields (0x0000) ----
    /// Virtual-processor identifier (VPID).
    VIRTUAL_PROCESSOR_ID = 0x0000;
    /// Posted-interrupt notification vector.
    POSTED_INTR_NV = 0x0002;
    /// EPTP index (for EPT-violation #VE and VMFUNC EPTP switching).
    EPTP_INDEX = 0x0004;

    // ---- 16-bit guest-state fields (0x0800) ----
    /// Guest ES selector.
    GUEST_ES_SELECTOR = 0x0800;
    /// Guest CS selector.
    GUEST_CS_SELECTOR = 0x0802;
    /// Guest SS selector.
    GUEST_SS_SELECTOR = 0x0804;
    /// Guest DS selector.
    GUEST_DS_SELECTOR = 0x0806;
    /// Guest FS selector.
    GUEST_FS_SELECTOR = 0x0808;
    /// Guest GS selector.
    GUEST_GS_SELECTOR = 0x080A;
    /// Guest LDTR selector.
    GUEST_LDTR_SELECTOR = 0x080C;
    /// Guest TR selector.
    GUEST_TR_SELECTOR = 0x080E;
    /// Guest interrupt status (RVI in bits 7:0, SVI in bits 15:8), used with
    /// virtual-interrupt delivery.
    GUEST_INTR_STATUS = 0x0810;
    /// PML index.
    GUEST_PML_INDEX = 0x0812;

    // ---- 16-bit host-state fields (0x0C00) ----
    /// Host ES selector.
    HOST_ES_SELECTOR = 0x0C00;
    /// Host CS selector.
    HOST_CS_SELECTOR = 0x0C02;
    /// Host SS selector.
    HOST_SS_SELECTOR = 0x0C04;
    /// Host DS selector.
    HOST_DS_SELECTOR = 0x0C06;
    /// Host FS selector.
    HOST_FS_SELECTOR = 0x0C08;
    /// Host GS selector.
    HOST_GS_SELECTOR = 0x0C0A;
    /// Host TR selector.
    HOST_TR_SELECTOR = 0x0C0C;

    // ---- 64-bit control fields (0x2000) ----
    /// Physical address of I/O bitmap A (ports 0x0000–0x7FFF).
    IO_BITMAP_A = 0x2000;
    /// Physical address of I/O bitmap B (ports 0x8000–0xFFFF).
    IO_BITMAP_B = 0x2002;
    /// Physical address of the MSR bitmaps.
    MSR_BITMAP = 0x2004;
    /// Physical address of the VM-exit MSR-store area.
    VM_EXIT_MSR_STORE_ADDR = 0x2006;
    /// Physical address of the VM-exit MSR-load area.
    VM_EXIT_MSR_LOAD_ADDR = 0x2008;
    /// Physical address of the VM-entry MSR-load area.
    VM_ENTRY_MSR_LOAD_ADDR = 0x200A;
    /// Executive-VMCS pointer (dual-monitor treatment of SMM).
    EXECUTIVE_VMCS_POINTER = 0x200C;
    /// Physical address of the page-modification log.
    PML_ADDRESS = 0x200E;
    /// TSC offset.
    TSC_OFFSET = 0x2010;
    /// Physical address of the virtual-APIC page.
    VIRTUAL_APIC_PAGE_ADDR = 0x2012;
    /// Physical address of the APIC-access page.
    APIC_ACCESS_ADDR = 0x2014;
    /// Physical address of the posted-interrupt descriptor.
    POSTED_INTR_DESC_ADDR = 0x2016;
    /// VM-function controls.
    VM_FUNCTION_CONTROL = 0x2018;
    /// Extended-page-table pointer (EPTP).
    EPT_POINTER = 0x201A;
    /// EOI-exit bitmap 0 (vectors 0–63).
    EOI_EXIT_BITMAP0 = 0x201C;
    /// EOI-exit bitmap 1 (vectors 64–127).
    EOI_EXIT_BITMAP1 = 0x201E;
    /// EOI-exit bitmap 2 (vectors 128–191).
    EOI_EXIT_BITMAP2 = 0x2020;
    /// EOI-exit bitmap 3 (vectors 192–255).
    EOI_EXIT_BITMAP3 = 0x2022;
    /// Physical address of the EPTP list (VMFUNC EPTP switching).
    EPTP_LIST_ADDRESS = 0x2024;
    /// Physical address of the VMREAD bitmap (VMCS shadowing).
    VMREAD_BITMAP = 0x2026;
    /// Physical address of the VMWRITE bitmap (VMCS shadowing).
    VMWRITE_BITMAP = 0x2028;
    /// Physical address of the virtualization-exception information area.
    VE_INFORMATION_ADDRESS = 0x202A;
    /// XSS-exiting bitmap.
    XSS_EXIT_BITMAP = 0x202C;
    /// ENCLS-exiting bitmap.
    ENCLS_EXITING_BITMAP = 0x202E;
    /// TSC multiplier.
    TSC_MULTIPLIER = 0x2032;

    // ---- 64-bit read-only data fields (0x2400) ----
    /// Guest-physical address of an EPT violation or misconfiguration.
    GUEST_PHYSICAL_ADDRESS = 0x2400;

    // ---- 64-bit guest-state fields (0x2800) ----
    /// VMCS link pointer (all ones unless VMCS shadowing is used).
    VMCS_LINK_POINTER = 0x2800;
    /// Guest IA32_DEBUGCTL.
    GUEST_IA32_DEBUGCTL = 0x2802;
    /// Guest IA32_PAT.
    GUEST_IA32_PAT = 0x2804;
    /// Guest IA32_EFER.
    GUEST_IA32_EFER = 0x2806;
    /// Guest IA32_PERF_GLOBAL_CTRL.
    GUEST_IA32_PERF_GLOBAL_CTRL = 0x2808;
    /// Guest PDPTE 0 (PAE paging with EPT).
    GUEST_PDPTR0 = 0x280A;
    /// Guest PDPTE 1.
    GUEST_PDPTR1 = 0x280C;
    /// Guest PDPTE 2.
    GUEST_PDPTR2 = 0x280E;
    /// Guest PDPTE 3.
    GUEST_PDPTR3 = 0x2810;
    /// Guest IA32_BNDCFGS.
    GUEST_BNDCFGS = 0x2812;

    // ---- 64-bit host-state fields (0x2C00) ----
    /// Host IA32_PAT.
    HOST_IA32_PAT = 0x2C00;
    /// Host IA32_EFER.
    HOST_IA32_EFER = 0x2C02;
    /// Host IA32_PERF_GLOBAL_CTRL.
    HOST_IA32_PERF_GLOBAL_CTRL = 0x2C04;

    // ---- 32-bit control fields (0x4000) ----
    /// Pin-based VM-execution controls (see `controls::PinBased`).
    PIN_BASED_VM_EXEC_CONTROL = 0x4000;
    /// Primary processor-based VM-execution controls
    /// (see `controls::PrimaryProcBased`).
    CPU_BASED_VM_EXEC_CONTROL = 0x4002;
    /// Exception bitmap: bit n set makes exception vector n exit.
    EXCEPTION_BITMAP = 0x4004;
    /// Page-fault error-code mask.
    PAGE_FAULT_ERROR_CODE_MASK = 0x4006;
    /// Page-fault error-code match.
    PAGE_FAULT_ERROR_CODE_MATCH = 0x4008;
    /// CR3-target count.
    CR3_TARGET_COUNT = 0x400A;
    /// Primary VM-exit controls (see `controls::ExitControls`).
    VM_EXIT_CONTROLS = 0x400C;
    /// Number of entries in the VM-exit MSR-store area.
    VM_EXIT_MSR_STORE_COUNT = 0x400E;
    /// Number of entries in the VM-exit MSR-load area.
    VM_EXIT_MSR_LOAD_COUNT = 0x4010;
    /// VM-entry controls (see `controls::EntryControls`).
    VM_ENTRY_CONTROLS = 0x4012;
    /// Number of entries in the VM-entry MSR-load area.
    VM_ENTRY_MSR_LOAD_COUNT = 0x4014;
    /// VM-entry interruption-information field (event injection).
    VM_ENTRY_INTR_INFO_FIELD = 0x4016;
    /// VM-entry exception error code.
    VM_ENTRY_EXCEPTION_ERROR_CODE = 0x4018;
    /// VM-entry instruction length (for injected software events).
    VM_ENTRY_INSTRUCTION_LEN = 0x401A;
    /// TPR threshold.
    TPR_THRESHOLD = 0x401C;
    /// Secondary processor-based VM-execution controls
    /// (see `controls::SecondaryProcBased`).
    SECONDARY_VM_EXEC_CONTROL = 0x401E;
    /// PAUSE-loop exiting gap.
    PLE_GAP = 0x4020;
    /// PAUSE-loop exiting window.
    PLE_WINDOW = 0x4022;

    // ---- 32-bit read-only data fields (0x4400) ----
    /// VM-instruction error number (valid after VMfailValid).
    VM_INSTRUCTION_ERROR = 0x4400;
    /// Exit reason (see `exit::ExitInfo`).
    VM_EXIT_REASON = 0x4402;
    /// VM-exit interruption information.
    VM_EXIT_INTR_INFO = 0x4404;
    /// VM-exit interruption error code.
    VM_EXIT_INTR_ERROR_CODE = 0x4406;
    /// IDT-vectoring information.
    IDT_VECTORING_INFO_FIELD = 0x4408;
    /// IDT-vectoring error code.
    IDT_VECTORING_ERROR_CODE = 0x440A;
    /// VM-exit instruction length.
    VM_EXIT_INSTRUCTION_LEN = 0x440C;
    /// VM-exit instruction information.
    VMX_INSTRUCTION_INFO = 0x440E;

    // ---- 32-bit guest-state fields (0x4800) ----
    /// Guest ES limit.
    GUEST_ES_LIMIT = 0x4800;
    /// Guest CS limit.
    GUEST_CS_LIMIT = 0x4802;
    /// Guest SS limit.
    GUEST_SS_LIMIT = 0x4804;
    /// Guest DS limit.
    GUEST_DS_LIMIT = 0x4806;
    /// Guest FS limit.
    GUEST_FS_LIMIT = 0x4808;
    /// Guest GS limit.
    GUEST_GS_LIMIT = 0x480A;
    /// Guest LDTR limit.
    GUEST_LDTR_LIMIT = 0x480C;
    /// Guest TR limit.
    GUEST_TR_LIMIT = 0x480E;
    /// Guest GDTR limit.
    GUEST_GDTR_LIMIT = 0x4810;
    /// Guest IDTR limit.
    GUEST_IDTR_LIMIT = 0x4812;
    /// Guest ES access rights.
    GUEST_ES_AR_BYTES = 0x4814;
    /// Guest CS access rights.
    GUEST_CS_AR_BYTES = 0x4816;
    /// Guest SS access rights.
    GUEST_SS_AR_BYTES = 0x4818;
    /// Guest DS access rights.
    GUEST_DS_AR_BYTES = 0x481A;
    /// Guest FS access rights.
    GUEST_FS_AR_BYTES = 0x481C;
    /// Guest GS access rights.
    GUEST_GS_AR_BYTES = 0x481E;
    /// Guest LDTR access rights.
    GUEST_LDTR_AR_BYTES = 0x4820;
    /// Guest TR access rights.
    GUEST_TR_AR_BYTES = 0x4822;
    /// Guest interruptibility state (blocking by STI / MOV SS / SMI / NMI).
    GUEST_INTERRUPTIBILITY_INFO = 0x4824;
    /// Guest activity state (0 active, 1 HLT, 2 shutdown, 3 wait-for-SIPI).
    GUEST_ACTIVITY_STATE = 0x4826;
    /// Guest SMBASE.
    GUEST_SMBASE = 0x4828;
    /// Guest IA32_SYSENTER_CS.
    GUEST_SYSENTER_CS = 0x482A;
    /// VMX-preemption timer value.
    VMX_PREEMPTION_TIMER_VALUE = 0x482E;

    // ---- 32-bit host-state field (0x4C00) ----
    /// Host IA32_SYSENTER_CS.
    HOST_IA32_SYSENTER_CS = 0x4C00;

    // ---- natural-width control fields (0x6000) ----
    /// CR0 guest/host mask: bits set here are owned by the host.
    CR0_GUEST_HOST_MASK = 0x6000;
    /// CR4 guest/host mask: bits set here are owned by the host.
    CR4_GUEST_HOST_MASK = 0x6002;
    /// CR0 read shadow: what the guest reads in host-owned CR0 bits.
    CR0_READ_SHADOW = 0x6004;
    /// CR4 read shadow: what the guest reads in host-owned CR4 bits.
    CR4_READ_SHADOW = 0x6006;
    /// CR3-target value 0.
    CR3_TARGET_VALUE0 = 0x6008;
    /// CR3-target value 1.
    CR3_TARGET_VALUE1 = 0x600A;
    /// CR3-target value 2.
    CR3_TARGET_VALUE2 = 0x600C;
    /// CR3-target value 3.
    CR3_TARGET_VALUE3 = 0x600E;

    // ---- natural-width read-only data fields (0x6400) ----
    /// Exit qualification (see the decoders in `exit`).
    EXIT_QUALIFICATION = 0x6400;
    /// I/O RCX (SMIs after I/O instructions).
    IO_RCX = 0x6402;
    /// I/O RSI.
    IO_RSI = 0x6404;
    /// I/O RDI.
    IO_RDI = 0x6406;
    /// I/O RIP.
    IO_RIP = 0x6408;
    /// Guest-linear address of the access that caused the exit.
    GUEST_LINEAR_ADDRESS = 0x640A;

    // ---- natural-width guest-state fields (0x6800) ----
    /// Guest CR0.
    GUEST_CR0 = 0x6800;
    /// Guest CR3.
    GUEST_CR3 = 0x6802;
    /// Guest CR4.
    GUEST_CR4 = 0x6804;
    /// Guest ES base.
    GUEST_ES_BASE = 0x6806;
    /// Guest CS base.
    GUEST_CS_BASE = 0x6808;
    /// Guest SS base.
    GUEST_SS_BASE = 0x680A;
    /// Guest DS base.
    GUEST_DS_BASE = 0x680C;
    /// Guest FS base.
    GUEST_FS_BASE = 0x680E;
    /// Guest GS base.
    GUEST_GS_BASE = 0x6810;
    /// Guest LDTR base.
    GUEST_LDTR_BASE = 0x6812;
    /// Guest TR base.
    GUEST_TR_BASE = 0x6814;
    /// Guest GDTR base.
    GUEST_GDTR_BASE = 0x6816;
    /// Guest IDTR base.
    GUEST_IDTR_BASE = 0x6818;
    /// Guest DR7.
    GUEST_DR7 = 0x681A;
    /// Guest RSP.
    GUEST_RSP = 0x681C;
    /// Guest RIP.
    GUEST_RIP = 0x681E;
    /// Guest RFLAGS.
    GUEST_RFLAGS = 0x6820;
    /// Guest pending debug exceptions.
    GUEST_PENDING_DBG_EXCEPTIONS = 0x6822;
    /// Guest IA32_SYSENTER_ESP.
    GUEST_SYSENTER_ESP = 0x6824;
    /// Guest IA32_SYSENTER_EIP.
    GUEST_SYSENTER_EIP = 0x6826;

    // ---- natural-width host-state fields (0x6C00) ----
    /// Host CR0.
    HOST_CR0 = 0x6C00;
    /// Host CR3.
    HOST_CR3 = 0x6C02;
    /// Host CR4.
    HOST_CR4 = 0x6C04;
    /// Host FS base.
    HOST_FS_BASE = 0x6C06;
    /// Host GS base.
    HOST_GS_BASE = 0x6C08;
    /// Host TR base.
    HOST_TR_BASE = 0x6C0A;
    /// Host GDTR base.
    HOST_GDTR_BASE = 0x6C0C;
    /// Host IDTR base.
    HOST_IDTR_BASE = 0x6C0E;
    /// Host IA32_SYSENTER_ESP.
    HOST_IA32_SYSENTER_ESP = 0x6C10;
    /// Host IA32_SYSENTER_EIP.
    HOST_IA32_SYSENTER_EIP = 0x6C12;
    /// Host RSP (loaded on every VM exit).
    HOST_RSP = 0x6C14;
    /// Host RIP (where every VM exit lands).
    HOST_RIP = 0x6C16;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The (width, type) a field must have, derived from its name alone,
    /// independently of the encodings above.
    fn expected(name: &str) -> (Width, FieldType) {
        const READ_ONLY: &[&str] = &[
            "GUEST_PHYSICAL_ADDRESS",
            "GUEST_LINEAR_ADDRESS",
            "VM_INSTRUCTION_ERROR",
            "VM_EXIT_REASON",
            "VM_EXIT_INTR_INFO",
            "VM_EXIT_INTR_ERROR_CODE",
            "IDT_VECTORING_INFO_FIELD",
            "IDT_VECTORING_ERROR_CODE",
            "VM_EXIT_INSTRUCTION_LEN",
            "VMX_INSTRUCTION_INFO",
            "EXIT_QUALIFICATION",
            "IO_RCX",
            "IO_RSI",
            "IO_RDI",
            "IO_RIP",
        ];
        let ty = if READ_ONLY.contains(&name) {
            FieldType::ReadOnlyData
        } else if name.starts_with("HOST_") {
            FieldType::HostState
        } else if name.starts_with("GUEST_")
            || name == "VMCS_LINK_POINTER"
            || name == "VMX_PREEMPTION_TIMER_VALUE"
        {
            FieldType::GuestState
        } else {
            FieldType::Control
        };

        const SIXTEEN: &[&str] = &[
            "VIRTUAL_PROCESSOR_ID",
            "POSTED_INTR_NV",
            "EPTP_INDEX",
            "GUEST_INTR_STATUS",
            "GUEST_PML_INDEX",
        ];
        const NATURAL: &[&str] = &[
            "GUEST_DR7",
            "GUEST_RSP",
            "GUEST_RIP",
            "GUEST_RFLAGS",
            "HOST_RSP",
            "HOST_RIP",
            "GUEST_PENDING_DBG_EXCEPTIONS",
            "EXIT_QUALIFICATION",
            "GUEST_LINEAR_ADDRESS",
            "IO_RCX",
            "IO_RSI",
            "IO_RDI",
            "IO_RIP",
        ];
        let is_cr_field = |n: &str| {
            ["GUEST_CR", "HOST_CR", "CR0_", "CR4_", "CR3_TARGET_VALUE"]
                .iter()
                .any(|p| n.starts_with(p))
        };
        let width = if name.ends_with("_SELECTOR") || SIXTEEN.contains(&name) {
            Width::Bits16
        } else if NATURAL.contains(&name)
            || name.ends_with("_BASE")
            || name.ends_with("SYSENTER_ESP")
            || name.ends_with("SYSENTER_EIP")
            || is_cr_field(name)
        {
            Width::Natural
        } else if name.ends_with("_ADDR")
            || name.ends_with("_ADDRESS")
            || name.ends_with("_POINTER")
            || name.contains("BITMAP")
            || name.contains("PDPTR")
            || (name.contains("IA32_") && !name.contains("SYSENTER"))
            || name.starts_with("TSC_")
            || name == "VM_FUNCTION_CONTROL"
            || name == "GUEST_BNDCFGS"
        {
            // EXCEPTION_BITMAP is the one 32-bit "bitmap".
            if name == "EXCEPTION_BITMAP" {
                Width::Bits32
            } else {
                Width::Bits64
            }
        } else {
            Width::Bits32
        };
        (width, ty)
    }

    #[test]
    fn width_and_type_bits_agree_with_names() {
        for &(enc, n) in ALL {
            assert_eq!(
                (width(enc), field_type(enc)),
                expected(n),
                "{n} = {enc:#06x}"
            );
            assert!(is_well_formed(enc), "{n}");
            assert!(!is_high_access(enc), "{n}");
        }
    }

    #[test]
    fn all_has_no_duplicates_and_names_resolve() {
        for (i, &(enc, n)) in ALL.iter().enumerate() {
            for &(other_enc, other_n) in &ALL[i + 1..] {
                assert_ne!(enc, other_enc, "{n} and {other_n} share an encoding");
                assert_ne!(n, other_n);
            }
            assert_eq!(name(enc), Some(n));
        }
        assert!(ALL.len() > 150);
        assert_eq!(name(0x7fff), None);
        assert_eq!(name(GUEST_RIP | 1), None);
    }

    #[test]
    fn known_encodings() {
        assert_eq!(GUEST_RIP, 0x681E);
        assert_eq!(VM_EXIT_REASON, 0x4402);
        assert_eq!(EPT_POINTER, 0x201A);
        assert_eq!(HOST_RIP, 0x6C16);
        assert_eq!(VMCS_LINK_POINTER, 0x2800);
        assert_eq!(SECONDARY_VM_EXEC_CONTROL, 0x401E);
        assert_eq!(EXIT_QUALIFICATION, 0x6400);
        assert_eq!(name(0x681E), Some("GUEST_RIP"));
    }

    #[test]
    fn decoding_helpers() {
        assert_eq!(width(EPT_POINTER), Width::Bits64);
        assert_eq!(field_type(EPT_POINTER), FieldType::Control);
        assert!(is_high_access(EPT_POINTER + 1));
        assert_eq!(width(EPT_POINTER + 1), Width::Bits64);
        assert_eq!(index(GUEST_RIP), 0x0F);
        assert_eq!(index(VIRTUAL_PROCESSOR_ID), 0);
        assert!(!is_well_formed(0x1000));
        assert!(!is_well_formed(0x8000));
        assert_eq!(field_type(GUEST_PHYSICAL_ADDRESS), FieldType::ReadOnlyData);
        assert_eq!(field_type(GUEST_LINEAR_ADDRESS), FieldType::ReadOnlyData);
    }
}
