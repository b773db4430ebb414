//! The guest register file: every general-purpose register that VM entry and
//! VM exit do not save in the VMCS (SDM Vol. 3C §27.3 lists what the processor
//! saves; RSP, RIP and RFLAGS are in the guest-state area, the rest is ours).

/// General-purpose registers of a guest vCPU, saved on every VM exit and
/// restored before every VM entry by [`crate::arch::enter_guest`].
///
/// The layout is fixed (`repr(C)`) because the world-switch assembly addresses
/// the fields by offset; the offsets are checked by a unit test.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuestRegisters {
    /// RAX.
    pub rax: u64,
    /// RBX.
    pub rbx: u64,
    /// RCX.
    pub rcx: u64,
    /// RDX.
    pub rdx: u64,
    /// RSI.
    pub rsi: u64,
    /// RDI.
    pub rdi: u64,
    /// RBP.
    pub rbp: u64,
    /// R8.
    pub r8: u64,
    /// R9.
    pub r9: u64,
    /// R10.
    pub r10: u64,
    /// R11.
    pub r11: u64,
    /// R12.
    pub r12: u64,
    /// R13.
    pub r13: u64,
    /// R14.
    pub r14: u64,
    /// R15.
    pub r15: u64,
    /// CR2 is not part of the VMCS guest state; it is switched by hand.
    pub cr2: u64,
}

impl GuestRegisters {
    /// The general-purpose register numbered `n` in the encoding used by exit
    /// qualifications (0 = RAX, 1 = RCX, 2 = RDX, 3 = RBX, 4 = RSP, 5 = RBP,
    /// 6 = RSI, 7 = RDI, 8–15 = R8–R15). RSP lives in the VMCS, so `4`
    /// returns `None`, as does any number above 15.
    pub fn gpr(&self, n: u8) -> Option<u64> {
        Some(match n {
            0 => self.rax,
            1 => self.rcx,
            2 => self.rdx,
            3 => self.rbx,
            5 => self.rbp,
            6 => self.rsi,
            7 => self.rdi,
            8 => self.r8,
            9 => self.r9,
            10 => self.r10,
            11 => self.r11,
            12 => self.r12,
            13 => self.r13,
            14 => self.r14,
            15 => self.r15,
            _ => return None,
        })
    }

    /// Sets the general-purpose register numbered `n` (see [`Self::gpr`]).
    /// Returns `false` for RSP (4) and for numbers above 15.
    pub fn set_gpr(&mut self, n: u8, value: u64) -> bool {
        let slot = match n {
            0 => &mut self.rax,
            1 => &mut self.rcx,
            2 => &mut self.rdx,
            3 => &mut self.rbx,
            5 => &mut self.rbp,
            6 => &mut self.rsi,
            7 => &mut self.rdi,
            8 => &mut self.r8,
            9 => &mut self.r9,
            10 => &mut self.r10,
            11 => &mut self.r11,
            12 => &mut self.r12,
            13 => &mut self.r13,
            14 => &mut self.r14,
            15 => &mut self.r15,
            _ => return false,
        };
        *slot = value;
        true
    }
}

/// Byte offsets of the fields, as used by the world-switch assembly.
pub mod offsets {
    /// Offset of `rax`.
    pub const RAX: usize = 0;
    /// Offset of `rbx`.
    pub const RBX: usize = 8;
    /// Offset of `rcx`.
    pub const RCX: usize = 16;
    /// Offset of `rdx`.
    pub const RDX: usize = 24;
    /// Offset of `rsi`.
    pub const RSI: usize = 32;
    /// Offset of `rdi`.
    pub const RDI: usize = 40;
    /// Offset of `rbp`.
    pub const RBP: usize = 48;
    /// Offset of `r8`.
    pub const R8: usize = 56;
    /// Offset of `r9`.
    pub const R9: usize = 64;
    /// Offset of `r10`.
    pub const R10: usize = 72;
    /// Offset of `r11`.
    pub const R11: usize = 80;
    /// Offset of `r12`.
    pub const R12: usize = 88;
    /// Offset of `r13`.
    pub const R13: usize = 96;
    /// Offset of `r14`.
    pub const R14: usize = 104;
    /// Offset of `r15`.
    pub const R15: usize = 112;
    /// Offset of `cr2`.
    pub const CR2: usize = 120;
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn offsets_match_layout() {
        assert_eq!(offset_of!(GuestRegisters, rax), offsets::RAX);
        assert_eq!(offset_of!(GuestRegisters, rbx), offsets::RBX);
        assert_eq!(offset_of!(GuestRegisters, rcx), offsets::RCX);
        assert_eq!(offset_of!(GuestRegisters, rdx), offsets::RDX);
        assert_eq!(offset_of!(GuestRegisters, rsi), offsets::RSI);
        assert_eq!(offset_of!(GuestRegisters, rdi), offsets::RDI);
        assert_eq!(offset_of!(GuestRegisters, rbp), offsets::RBP);
        assert_eq!(offset_of!(GuestRegisters, r8), offsets::R8);
        assert_eq!(offset_of!(GuestRegisters, r9), offsets::R9);
        assert_eq!(offset_of!(GuestRegisters, r10), offsets::R10);
        assert_eq!(offset_of!(GuestRegisters, r11), offsets::R11);
        assert_eq!(offset_of!(GuestRegisters, r12), offsets::R12);
        assert_eq!(offset_of!(GuestRegisters, r13), offsets::R13);
        assert_eq!(offset_of!(GuestRegisters, r14), offsets::R14);
        assert_eq!(offset_of!(GuestRegisters, r15), offsets::R15);
        assert_eq!(offset_of!(GuestRegisters, cr2), offsets::CR2);
        assert_eq!(core::mem::size_of::<GuestRegisters>(), 128);
    }

    #[test]
    fn gpr_numbering_follows_the_sdm() {
        let mut r = GuestRegisters::default();
        for n in 0..16u8 {
            if n == 4 {
                assert!(!r.set_gpr(n, 1));
                assert_eq!(r.gpr(n), None);
            } else {
                assert!(r.set_gpr(n, 0x100 + n as u64));
            }
        }
        assert_eq!(r.rax, 0x100);
        assert_eq!(r.rcx, 0x101);
        assert_eq!(r.rdx, 0x102);
        assert_eq!(r.rbx, 0x103);
        assert_eq!(r.rbp, 0x105);
        assert_eq!(r.rdi, 0x107);
        assert_eq!(r.r15, 0x10f);
        assert_eq!(r.gpr(16), None);
        assert!(!r.set_gpr(16, 0));
    }
}
