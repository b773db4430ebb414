//! `vmx` owns everything about Intel VMX that is data: VMCS field encodings,
//! the execution-control bitflags, the adjustment of requested controls against
//! the capability MSRs, the CR0/CR4 fixed bits, exit reasons and the decoding of
//! exit qualifications (Intel SDM Vol. 3C, chapters 24–28 and appendices A–C).
//!
//! The VMX instructions themselves (VMXON, VMCLEAR, VMPTRLD, VMREAD, VMWRITE,
//! VMLAUNCH/VMRESUME, INVEPT, INVVPID) live in the one [`arch`] module as
//! `unsafe fn`s that return typed errors. Nothing outside `arch` executes a
//! privileged instruction, so the rest of the crate unit-tests on the host.
//! This crate must never decide policy (which controls a guest gets, what an
//! exit means for a domain): that belongs to `vcpu` and the core.
#![cfg_attr(not(test), no_std)]

#[cfg(target_arch = "x86_64")]
pub mod arch;
pub mod caps;
pub mod controls;
pub mod error;
pub mod exit;
pub mod fields;
pub mod regs;

pub use error::{InstructionError, VmFail};
pub use regs::GuestRegisters;
