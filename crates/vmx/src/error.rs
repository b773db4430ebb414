//! Failures of VMX instructions (SDM Vol. 3C §31.2 "Conventions", §31.4
//! "VM Instruction Error Numbers").

use core::fmt;

/// How a VMX instruction failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmFail {
    /// VMfailInvalid: CF set; there is no current VMCS to hold an error number.
    Invalid,
    /// VMfailValid: ZF set; the VM-instruction error field of the current VMCS
    /// says why.
    Valid(InstructionError),
}

/// A VM-instruction error number, read from the VMCS field
/// `VM_INSTRUCTION_ERROR` after a VMfailValid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstructionError(pub u32);

impl InstructionError {
    /// The SDM's description of this error number (§31.4, table 31-1).
    pub fn description(self) -> &'static str {
        match self.0 {
            1 => "VMCALL executed in VMX root operation",
            2 => "VMCLEAR with invalid physical address",
            3 => "VMCLEAR with VMXON pointer",
            4 => "VMLAUNCH with non-clear VMCS",
            5 => "VMRESUME with non-launched VMCS",
            6 => "VMRESUME after VMXOFF",
            7 => "VM entry with invalid control field(s)",
            8 => "VM entry with invalid host-state field(s)",
            9 => "VMPTRLD with invalid physical address",
            10 => "VMPTRLD with VMXON pointer",
            11 => "VMPTRLD with incorrect VMCS revision identifier",
            12 => "VMREAD/VMWRITE from/to unsupported VMCS component",
            13 => "VMWRITE to read-only VMCS component",
            15 => "VMXON executed in VMX root operation",
            16 => "VM entry with invalid executive-VMCS pointer",
            17 => "VM entry with non-launched executive VMCS",
            18 => "VM entry with executive-VMCS pointer not VMXON pointer",
            19 => "VMCALL with non-clear VMCS",
            20 => "VMCALL with invalid VM-exit control fields",
            22 => "VMCALL with incorrect MSEG revision identifier",
            23 => "VMXOFF under dual-monitor treatment of SMIs and SMM",
            24 => "VMCALL with invalid SMM-monitor features",
            25 => "VM entry with invalid VM-execution control fields in executive VMCS",
            26 => "VM entry with events blocked by MOV SS",
            28 => "invalid operand to INVEPT/INVVPID",
            _ => "unknown VM-instruction error",
        }
    }
}

impl fmt::Display for InstructionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VM-instruction error {} ({})",
            self.0,
            self.description()
        )
    }
}

impl fmt::Display for VmFail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmFail::Invalid => f.write_str("VMfailInvalid (no current VMCS)"),
            VmFail::Valid(e) => write!(f, "VMfailValid: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_name_the_sdm_errors() {
        assert_eq!(
            InstructionError(7).description(),
            "VM entry with invalid control field(s)"
        );
        assert_eq!(
            InstructionError(5).description(),
            "VMRESUME with non-launched VMCS"
        );
        assert_eq!(
            InstructionError(99).description(),
            "unknown VM-instruction error"
        );
        extern crate std;
        use std::string::ToString;
        assert!(VmFail::Valid(InstructionError(8))
            .to_string()
            .contains("host-state"));
        assert!(VmFail::Invalid.to_string().contains("VMfailInvalid"));
    }
}
