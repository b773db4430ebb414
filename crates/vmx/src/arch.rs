//! The VMX instructions, and nothing else that touches the processor.
//!
//! Each instruction is an `unsafe fn` that reports the SDM's two failure
//! conventions as a typed [`VmFail`]: `VMfailInvalid` (CF = 1, no current
//! VMCS) and `VMfailValid` (ZF = 1, the VM-instruction error field says why).
//! The world switch [`enter_guest`] saves the host's callee-saved registers,
//! loads the guest's general registers from a [`GuestRegisters`], enters the
//! guest with VMLAUNCH or VMRESUME, and on VM exit first offers the exit to a
//! fast handler with only the caller-saved guest registers stored (a handled
//! exit resumes the guest without returning), then stores every guest general
//! register back before returning to Rust.

use core::arch::{asm, naked_asm};

use crate::error::{InstructionError, VmFail};
use crate::fields;
use crate::regs::GuestRegisters;

/// Turns the flags left by a VMX instruction into a result.
///
/// # Safety
/// Must run in VMX operation (after a successful VMXON) when `valid` is set,
/// because it then reads the VM-instruction error field.
unsafe fn check(cf: u8, zf: u8) -> Result<(), VmFail> {
    if cf != 0 {
        Err(VmFail::Invalid)
    } else if zf != 0 {
        // SAFETY: ZF = 1 means VMfailValid, so there is a current VMCS whose
        // VM-instruction error field is readable.
        let error = unsafe { vmread(fields::VM_INSTRUCTION_ERROR) }.unwrap_or(0);
        Err(VmFail::Valid(InstructionError(error as u32)))
    } else {
        Ok(())
    }
}

/// Enters VMX root operation with the VMXON region at host-physical `region`.
///
/// # Safety
/// CR4.VMXE must be set, CR0/CR4 must satisfy the fixed-bit MSRs, and
/// `region` must be a 4 KiB-aligned page that holds the VMCS revision id and
/// is never used for anything else while VMX operation lasts.
pub unsafe fn vmxon(region: u64) -> Result<(), VmFail> {
    let (cf, zf): (u8, u8);
    // SAFETY: the caller upholds the VMXON preconditions; the operand is a
    // pointer to a local holding the region's physical address.
    unsafe {
        asm!("vmxon qword ptr [{0}]", "setc {1}", "setz {2}",
             in(reg) &region, out(reg_byte) cf, out(reg_byte) zf, options(nostack));
    }
    // VMXON's VMfailValid happens only in VMX root operation, where the
    // error field is readable.
    // SAFETY: see above.
    unsafe { check(cf, zf) }
}

/// Leaves VMX operation.
///
/// # Safety
/// Must run in VMX root operation; no guest may be entered afterwards.
pub unsafe fn vmxoff() -> Result<(), VmFail> {
    let (cf, zf): (u8, u8);
    // SAFETY: the caller guarantees VMX root operation.
    unsafe {
        asm!("vmxoff", "setc {0}", "setz {1}", out(reg_byte) cf, out(reg_byte) zf,
             options(nostack));
        check(cf, zf)
    }
}

/// Clears the VMCS at host-physical `vmcs` (initialises its launch state).
///
/// # Safety
/// Must run in VMX root operation; `vmcs` must be a 4 KiB-aligned page
/// reserved for that VMCS.
pub unsafe fn vmclear(vmcs: u64) -> Result<(), VmFail> {
    let (cf, zf): (u8, u8);
    // SAFETY: the caller guarantees VMX root operation and a valid region.
    unsafe {
        asm!("vmclear qword ptr [{0}]", "setc {1}", "setz {2}",
             in(reg) &vmcs, out(reg_byte) cf, out(reg_byte) zf, options(nostack));
        check(cf, zf)
    }
}

/// Makes the VMCS at host-physical `vmcs` current.
///
/// # Safety
/// Must run in VMX root operation; `vmcs` must hold the right revision id
/// and be reserved for that VMCS.
pub unsafe fn vmptrld(vmcs: u64) -> Result<(), VmFail> {
    let (cf, zf): (u8, u8);
    // SAFETY: the caller guarantees VMX root operation and a valid region.
    unsafe {
        asm!("vmptrld qword ptr [{0}]", "setc {1}", "setz {2}",
             in(reg) &vmcs, out(reg_byte) cf, out(reg_byte) zf, options(nostack));
        check(cf, zf)
    }
}

/// Reads the field `field` of the current VMCS.
///
/// # Safety
/// Must run in VMX root operation with a current VMCS.
#[inline]
pub unsafe fn vmread(field: u32) -> Result<u64, VmFail> {
    let value: u64;
    let ok: u8;
    // SAFETY: the caller guarantees VMX root operation; VMREAD writes only the
    // output register. VMsucceed leaves CF = ZF = 0 ("above").
    unsafe {
        asm!("vmread {0}, {1}", "seta {2}",
             out(reg) value, in(reg) field as u64, out(reg_byte) ok,
             options(nostack, nomem));
    }
    if ok != 0 {
        Ok(value)
    } else {
        // SAFETY: as above.
        Err(unsafe { vmread_failure(field) })
    }
}

/// Classifies a failed VMREAD by executing it again (VMREAD has no side
/// effect, so it fails the same way) and reading CF and ZF.
///
/// # Safety
/// As [`vmread`].
#[cold]
#[inline(never)]
unsafe fn vmread_failure(field: u32) -> VmFail {
    let (cf, zf): (u8, u8);
    // SAFETY: as in `vmread`.
    unsafe {
        asm!("vmread {0}, {1}", "setc {2}", "setz {3}",
             out(reg) _, in(reg) field as u64, out(reg_byte) cf, out(reg_byte) zf,
             options(nostack, nomem));
    }
    if cf != 0 || zf == 0 || field == fields::VM_INSTRUCTION_ERROR {
        return VmFail::Invalid;
    }
    // SAFETY: ZF = 1 means a VMCS is current and its error field readable.
    let error = unsafe { vmread(fields::VM_INSTRUCTION_ERROR) }.unwrap_or(0);
    VmFail::Valid(InstructionError(error as u32))
}

/// Writes `value` to the field `field` of the current VMCS.
///
/// # Safety
/// Must run in VMX root operation with a current VMCS; the value must keep
/// the VMCS consistent with how the core uses it (host state especially).
#[inline]
pub unsafe fn vmwrite(field: u32, value: u64) -> Result<(), VmFail> {
    let ok: u8;
    // SAFETY: the caller guarantees VMX root operation and a sane value.
    unsafe {
        asm!("vmwrite {0}, {1}", "seta {2}",
             in(reg) field as u64, in(reg) value, out(reg_byte) ok,
             options(nostack));
    }
    if ok != 0 {
        Ok(())
    } else {
        // SAFETY: as above.
        Err(unsafe { vmwrite_failure(field, value) })
    }
}

/// Classifies a failed VMWRITE by executing it again: a failed VMWRITE
/// changed nothing, so it fails the same way.
///
/// # Safety
/// As [`vmwrite`].
#[cold]
#[inline(never)]
unsafe fn vmwrite_failure(field: u32, value: u64) -> VmFail {
    let (cf, zf): (u8, u8);
    // SAFETY: as in `vmwrite`.
    unsafe {
        asm!("vmwrite {0}, {1}", "setc {2}", "setz {3}",
             in(reg) field as u64, in(reg) value, out(reg_byte) cf, out(reg_byte) zf,
             options(nostack));
        match check(cf, zf) {
            Err(fail) => fail,
            // It succeeded this time: report what the first attempt saw.
            Ok(()) => VmFail::Invalid,
        }
    }
}

/// INVEPT invalidation types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InveptType {
    /// Mappings tagged with one EPTP.
    SingleContext = 1,
    /// Mappings tagged with every EPTP.
    AllContext = 2,
}

/// Invalidates cached EPT translations derived from `eptp`.
///
/// # Safety
/// Must run in VMX root operation on a CPU that supports INVEPT of that type.
pub unsafe fn invept(kind: InveptType, eptp: u64) -> Result<(), VmFail> {
    let descriptor: [u64; 2] = [eptp, 0];
    let (cf, zf): (u8, u8);
    // SAFETY: the caller guarantees support; the descriptor is a local.
    unsafe {
        asm!("invept {0}, [{1}]", "setc {2}", "setz {3}",
             in(reg) kind as u64, in(reg) &descriptor, out(reg_byte) cf, out(reg_byte) zf,
             options(nostack));
        check(cf, zf)
    }
}

/// INVVPID invalidation types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvvpidType {
    /// One linear address of one VPID.
    IndividualAddress = 0,
    /// Everything tagged with one VPID.
    SingleContext = 1,
    /// Everything tagged with any VPID but 0.
    AllContext = 2,
}

/// Invalidates cached linear translations tagged with `vpid`.
///
/// # Safety
/// Must run in VMX root operation on a CPU that supports INVVPID of that type.
pub unsafe fn invvpid(kind: InvvpidType, vpid: u16, address: u64) -> Result<(), VmFail> {
    let descriptor: [u64; 2] = [vpid as u64, address];
    let (cf, zf): (u8, u8);
    // SAFETY: the caller guarantees support; the descriptor is a local.
    unsafe {
        asm!("invvpid {0}, [{1}]", "setc {2}", "setz {3}",
             in(reg) kind as u64, in(reg) &descriptor, out(reg_byte) cf, out(reg_byte) zf,
             options(nostack));
        check(cf, zf)
    }
}

/// Raw result of [`enter_guest_raw`]: 0 = the guest ran and exited,
/// 1 = VMfailInvalid, 2 = VMfailValid.
type RawEntry = u64;

/// The fast exit handler [`enter_guest`] calls, before it returns to Rust,
/// on every VMCALL exit whose call number (guest RAX) is one of the `calls`
/// given to `enter_guest`: `regs` is the guest register file and `ctx` the
/// pointer given to `enter_guest`. It returns 0 when it handled the exit
/// completely (the guest is resumed at once, without leaving the world
/// switch) and anything else to have `enter_guest` return.
///
/// While it runs, only the caller-saved registers in `regs` are current (RAX,
/// RCX, RDX, RSI, RDI, R8–R11): the guest's RBX, RBP and R12–R15 are still
/// live in the processor (the handler's own prologue saves and its epilogue
/// restores them, as the System V ABI requires of every function), and the
/// saved CR2 is stale. It may change only the caller-saved registers.
pub type FastExit = unsafe extern "C" fn(regs: *mut GuestRegisters, ctx: *mut u8) -> u64;

/// Runs the guest of the current VMCS until an exit that `fast` does not
/// handle.
///
/// Loads every general register from `regs` (and CR2), executes VMLAUNCH
/// when `launched` is false and VMRESUME otherwise. On each VM exit it
/// stores the guest's caller-saved registers into `regs`; when the exit is a
/// VMCALL whose RAX is below 64 with bit RAX of `calls` set, it calls
/// `fast(regs, ctx)` (see [`FastExit`]), and when that returns 0 it reloads
/// them and resumes the guest. Otherwise it stores the rest of the register
/// file and CR2 and returns `Ok(())`: read the exit reason from the VMCS (it
/// may be a failed VM entry with bit 31 set). `Err` means VMLAUNCH/VMRESUME
/// itself failed; the register file is then not meaningful.
///
/// # Safety
/// Must run in VMX root operation with a current VMCS whose host state is
/// this core's (CR3, GDT/IDT/TR, segment selectors, FS/GS bases), whose guest
/// state and controls are valid, and which was launched exactly when
/// `launched` is true. HOST_RSP and HOST_RIP are written by this function.
/// `fast` must be safe to call with `regs` and `ctx` on every exit, and must
/// not touch the VMCS pointer or leave VMX operation.
pub unsafe fn enter_guest(
    regs: &mut GuestRegisters,
    launched: bool,
    fast: FastExit,
    ctx: *mut u8,
    calls: u64,
) -> Result<(), VmFail> {
    // SAFETY: the caller upholds the VMCS preconditions and those of `fast`;
    // `regs` is a valid, exclusive reference for the duration of the call.
    let raw = unsafe { enter_guest_raw(regs, launched as u64, fast, ctx, calls) };
    match raw {
        0 => Ok(()),
        1 => Err(VmFail::Invalid),
        _ => {
            // SAFETY: VMfailValid means a VMCS is current.
            let error = unsafe { vmread(fields::VM_INSTRUCTION_ERROR) }.unwrap_or(0);
            Err(VmFail::Valid(InstructionError(error as u32)))
        }
    }
}

/// The world switch. System V ABI: RDI = `regs`, RSI = `launched`,
/// RDX = `fast`, RCX = `ctx`, R8 = `calls`.
///
/// Stack while the guest runs (HOST_RSP points at the lowest slot, which is
/// 16-byte aligned so that `fast` can be called from it):
/// `[regs] [calls] [fast] [ctx] [padding] [r15] [r14] [r13] [r12] [rbx] [rbp]
/// [return address]`.
#[unsafe(naked)]
unsafe extern "C" fn enter_guest_raw(
    regs: *mut GuestRegisters,
    launched: u64,
    fast: FastExit,
    ctx: *mut u8,
    calls: u64,
) -> RawEntry {
    naked_asm!(
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "sub rsp, 8",
        "push rcx",
        "push rdx",
        "push r8",
        "push rdi",
        // HOST_RSP = current stack, HOST_RIP = the exit label below.
        "mov rax, {host_rsp}",
        "vmwrite rax, rsp",
        "lea rdx, [rip + 2f]",
        "mov rax, {host_rip}",
        "vmwrite rax, rdx",
        // CR2 is not in the VMCS.
        "mov rax, [rdi + {cr2}]",
        "mov cr2, rax",
        // Decide VMLAUNCH vs VMRESUME before the guest's values are loaded;
        // MOV does not change the flags.
        "test rsi, rsi",
        "mov rax, [rdi + {rax}]",
        "mov rbx, [rdi + {rbx}]",
        "mov rcx, [rdi + {rcx}]",
        "mov rdx, [rdi + {rdx}]",
        "mov rsi, [rdi + {rsi}]",
        "mov rbp, [rdi + {rbp}]",
        "mov r8, [rdi + {r8}]",
        "mov r9, [rdi + {r9}]",
        "mov r10, [rdi + {r10}]",
        "mov r11, [rdi + {r11}]",
        "mov r12, [rdi + {r12}]",
        "mov r13, [rdi + {r13}]",
        "mov r14, [rdi + {r14}]",
        "mov r15, [rdi + {r15}]",
        "mov rdi, [rdi + {rdi}]",
        "jnz 3f",
        "vmlaunch",
        "jmp 4f",
        "3:",
        "vmresume",
        // Reached only when VMLAUNCH/VMRESUME failed: CF = invalid, ZF = valid.
        "4:",
        "mov eax, 1",
        "jc 5f",
        "mov eax, 2",
        "5:",
        "add rsp, 40",
        "jmp 6f",
        // VM exit: RSP = HOST_RSP, guest registers still live. Store the
        // caller-saved ones and offer a VMCALL of one of `calls` to the fast
        // handler; the guest's callee-saved registers stay where they are.
        "2:",
        "push rdi",
        "mov rdi, [rsp + 8]",
        "mov [rdi + {rax}], rax",
        "mov [rdi + {rcx}], rcx",
        "mov [rdi + {rdx}], rdx",
        "mov [rdi + {rsi}], rsi",
        "mov [rdi + {r8}], r8",
        "mov [rdi + {r9}], r9",
        "mov [rdi + {r10}], r10",
        "mov [rdi + {r11}], r11",
        "pop rax",
        "mov [rdi + {rdi}], rax",
        // A failed VMREAD leaves RAX (the field number, not 18) unchanged.
        "mov eax, {exit_reason}",
        "vmread rax, rax",
        "cmp eax, {vmcall}",
        "jne 7f",
        "mov rax, [rdi + {rax}]",
        "cmp rax, 63",
        "ja 7f",
        "mov rcx, [rsp + 8]",
        "bt rcx, rax",
        "jnc 7f",
        "mov rsi, [rsp + 24]",
        "call [rsp + 16]",
        "test rax, rax",
        "jnz 7f",
        // Handled: reload the caller-saved registers and resume.
        "mov rdi, [rsp]",
        "mov rax, [rdi + {rax}]",
        "mov rcx, [rdi + {rcx}]",
        "mov rdx, [rdi + {rdx}]",
        "mov rsi, [rdi + {rsi}]",
        "mov r8, [rdi + {r8}]",
        "mov r9, [rdi + {r9}]",
        "mov r10, [rdi + {r10}]",
        "mov r11, [rdi + {r11}]",
        "mov rdi, [rdi + {rdi}]",
        "vmresume",
        "jmp 4b",
        // Not handled: store the rest and return to Rust.
        "7:",
        "mov rdi, [rsp]",
        "mov [rdi + {rbx}], rbx",
        "mov [rdi + {rbp}], rbp",
        "mov [rdi + {r12}], r12",
        "mov [rdi + {r13}], r13",
        "mov [rdi + {r14}], r14",
        "mov [rdi + {r15}], r15",
        "mov rax, cr2",
        "mov [rdi + {cr2}], rax",
        "add rsp, 40",
        "xor eax, eax",
        "6:",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "ret",
        host_rsp = const fields::HOST_RSP,
        host_rip = const fields::HOST_RIP,
        exit_reason = const fields::VM_EXIT_REASON,
        vmcall = const 18,
        rax = const crate::regs::offsets::RAX,
        rbx = const crate::regs::offsets::RBX,
        rcx = const crate::regs::offsets::RCX,
        rdx = const crate::regs::offsets::RDX,
        rsi = const crate::regs::offsets::RSI,
        rdi = const crate::regs::offsets::RDI,
        rbp = const crate::regs::offsets::RBP,
        r8 = const crate::regs::offsets::R8,
        r9 = const crate::regs::offsets::R9,
        r10 = const crate::regs::offsets::R10,
        r11 = const crate::regs::offsets::R11,
        r12 = const crate::regs::offsets::R12,
        r13 = const crate::regs::offsets::R13,
        r14 = const crate::regs::offsets::R14,
        r15 = const crate::regs::offsets::R15,
        cr2 = const crate::regs::offsets::CR2,
    )
}
