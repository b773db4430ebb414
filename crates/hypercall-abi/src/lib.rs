//! `hypercall-abi` is the contract between a domain and Bulkhead's VM-exit
//! core: the hypercall numbers, the register convention, the status codes and
//! the CPUID signature a guest uses to detect that it runs on Bulkhead.
//!
//! It owns only numbers and their meaning, so both sides (the core and every
//! guest runtime) link the same definitions. It must never contain code that
//! executes a hypercall or trusts a value it decodes: [`Status::from_raw`] and
//! [`Call::from_raw`] return `None` for numbers they do not know.
//!
//! # Register convention
//!
//! A domain issues `VMCALL` with:
//!
//! | register | meaning                                   |
//! |----------|-------------------------------------------|
//! | RAX      | call number ([`Call`])                    |
//! | RDI      | argument 0                                |
//! | RSI      | argument 1                                |
//! | RDX      | argument 2                                |
//! | R10      | argument 3                                |
//! | R8       | argument 4                                |
//! | R9       | argument 5                                |
//!
//! On return RAX holds a [`Status`] (0 = success) and RDX holds a result
//! value where the call defines one. Every other register is preserved.
//! RCX and R11 are not used so that the convention stays compatible with a
//! `syscall`-style stub.
#![no_std]
#![forbid(unsafe_code)]

/// The CPUID leaf at which the core reports its signature.
pub const CPUID_SIGNATURE_LEAF: u32 = 0x4000_0000;

/// The 12-byte vendor signature returned in EBX, ECX, EDX (in that order) for
/// [`CPUID_SIGNATURE_LEAF`].
pub const SIGNATURE: [u8; 12] = *b"BulkheadCore";

/// The highest hypervisor CPUID leaf the core answers, returned in EAX for
/// [`CPUID_SIGNATURE_LEAF`].
pub const CPUID_MAX_LEAF: u32 = CPUID_SIGNATURE_LEAF;

/// The signature split into the three registers, as a guest reads them.
pub const fn signature_registers() -> (u32, u32, u32) {
    let s = SIGNATURE;
    (
        u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        u32::from_le_bytes([s[4], s[5], s[6], s[7]]),
        u32::from_le_bytes([s[8], s[9], s[10], s[11]]),
    )
}

/// Longest message, in bytes, that [`Call::LogWrite`] accepts in one call.
pub const LOG_WRITE_MAX: u64 = 256;

/// Hypercall numbers (RAX on entry).
#[repr(u64)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Does nothing and returns [`Status::Ok`]. Used to measure the cost of
    /// a round trip through the core.
    Null = 0,
    /// Prints a message on the core's console, prefixed with the domain's
    /// name. RDI = guest-physical address of the bytes, RSI = length
    /// (at most [`LOG_WRITE_MAX`]). Errors: [`Status::InvalidArgument`] when
    /// the length is too long, [`Status::InvalidAddress`] when any byte is
    /// outside the domain's readable memory.
    LogWrite = 1,
    /// Stops the calling domain. RDI = an exit code the core reports. Does
    /// not return.
    Exit = 2,
}

impl Call {
    /// Decodes a call number; `None` for numbers the ABI does not define.
    pub const fn from_raw(raw: u64) -> Option<Call> {
        Some(match raw {
            0 => Call::Null,
            1 => Call::LogWrite,
            2 => Call::Exit,
            _ => return None,
        })
    }

    /// A short name for logs.
    pub const fn name(self) -> &'static str {
        match self {
            Call::Null => "null",
            Call::LogWrite => "log_write",
            Call::Exit => "exit",
        }
    }
}

/// Status codes returned in RAX.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The call succeeded.
    Ok = 0,
    /// RAX held a number that is not a hypercall.
    UnknownCall = 1,
    /// An argument is out of range (a length too long, a reserved value).
    InvalidArgument = 2,
    /// A guest-physical address range is not inside the caller's memory or
    /// lacks the access the call needs.
    InvalidAddress = 3,
    /// The caller lacks the capability or right the call needs.
    Denied = 4,
    /// A bounded core resource is exhausted.
    OutOfResources = 5,
}

impl Status {
    /// Decodes a status value; `None` for values the ABI does not define.
    pub const fn from_raw(raw: u64) -> Option<Status> {
        Some(match raw {
            0 => Status::Ok,
            1 => Status::UnknownCall,
            2 => Status::InvalidArgument,
            3 => Status::InvalidAddress,
            4 => Status::Denied,
            5 => Status::OutOfResources,
            _ => return None,
        })
    }

    /// The value placed in RAX.
    pub const fn raw(self) -> u64 {
        self as u32 as u64
    }

    /// A short description for logs.
    pub const fn description(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::UnknownCall => "unknown hypercall",
            Status::InvalidArgument => "invalid argument",
            Status::InvalidAddress => "invalid guest-physical address",
            Status::Denied => "denied",
            Status::OutOfResources => "out of resources",
        }
    }
}

impl core::fmt::Display for Status {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.description())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_registers_spell_the_signature() {
        let (b, c, d) = signature_registers();
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&b.to_le_bytes());
        bytes[4..8].copy_from_slice(&c.to_le_bytes());
        bytes[8..].copy_from_slice(&d.to_le_bytes());
        assert_eq!(&bytes, b"BulkheadCore");
    }

    #[test]
    fn calls_round_trip_and_unknown_numbers_are_refused() {
        for call in [Call::Null, Call::LogWrite, Call::Exit] {
            assert_eq!(Call::from_raw(call as u64), Some(call));
        }
        assert_eq!(Call::from_raw(3), None);
        assert_eq!(Call::from_raw(u64::MAX), None);
    }

    #[test]
    fn statuses_round_trip_and_ok_is_zero() {
        assert_eq!(Status::Ok.raw(), 0);
        for raw in 0..6 {
            assert_eq!(Status::from_raw(raw).unwrap().raw(), raw);
        }
        assert_eq!(Status::from_raw(6), None);
        assert_eq!(Status::from_raw(1 << 40), None);
    }
}
