//! Everything in the core that touches the processor or a device directly:
//! the boot code, COM1, the descriptor tables, MSRs and control registers,
//! CPUID, physical memory through the boot identity map, and the way out.

pub mod apic;
pub mod boot;
pub mod cpu;
pub mod serial;

use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::Msr;

/// How the machine stops. The numbers are what the core reports; the
/// emulators turn them into their exit status (see [`shutdown`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// Everything the core was asked to do was done.
    Success = 0,
    /// The CPU cannot run the core (no VMX, VMX disabled, no EPT).
    Unsupported = 2,
    /// The core hit an exception or a panic.
    CoreFault = 3,
    /// The boot information or the configuration was unusable.
    BadBoot = 4,
}

/// Ends the machine: prints the final status line, drains COM1, then asks the
/// emulator to exit. QEMU's `isa-debug-exit` (port 0xf4) exits with
/// `status * 2 + 1`. Bochs: `D` on port 0x8900 enters its debugger, which
/// reads `quit` from the rc file and exits 0 (success); `Shutdown` on port
/// 0x8900 exits 1 (failure). On real hardware the CPU halts for good.
pub fn shutdown(status: Status) -> ! {
    // Every console line from here on goes straight to the port.
    crate::domains::console_stop();
    // Printed even in a `quiet` boot that ends before its domains run.
    crate::boot_report_done();
    log::info!("shutdown status={}", status as u8);
    serial::drain();
    // SAFETY: writes to ports no device of the core's uses; on hardware
    // without these exits they are ignored.
    unsafe {
        Port::<u32>::new(0xf4).write(status as u32);
        let mut bochs = Port::<u8>::new(0x8900);
        if status == Status::Success {
            bochs.write(b'D');
        } else {
            for &b in b"Shutdown" {
                bochs.write(b);
            }
        }
    }
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// Masks every line of both 8259 PICs: the core runs with interrupts off.
pub fn mask_pic() {
    // SAFETY: the PIC data ports; masking all lines has no other effect.
    unsafe {
        Port::<u8>::new(0x21).write(0xff);
        Port::<u8>::new(0xa1).write(0xff);
    }
}

/// CPUID on the host.
pub fn cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    // CPUID is available on every x86_64 CPU.
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// Reads an MSR.
///
/// # Safety
/// The MSR must exist on this CPU (reading a missing one faults).
pub unsafe fn rdmsr(index: u32) -> u64 {
    // SAFETY: the caller guarantees the MSR exists.
    unsafe { Msr::new(index).read() }
}

/// Writes an MSR.
///
/// # Safety
/// The MSR must exist and the value must be valid and safe for the core.
pub unsafe fn wrmsr(index: u32, value: u64) {
    // SAFETY: the caller guarantees the MSR and value are valid.
    unsafe { Msr::new(index).write(value) }
}

/// Reads CR0.
pub fn cr0() -> u64 {
    x86_64::registers::control::Cr0::read_raw()
}

/// Writes CR0.
///
/// # Safety
/// Must keep paging, protection and the core's invariants intact.
pub unsafe fn set_cr0(value: u64) {
    // SAFETY: the caller keeps the core's invariants.
    unsafe { x86_64::registers::control::Cr0::write_raw(value) }
}

/// Reads CR3.
pub fn cr3() -> u64 {
    let (frame, flags) = x86_64::registers::control::Cr3::read_raw();
    frame.start_address().as_u64() | flags as u64
}

/// Saves the x87/SSE state into `area` (FXSAVE64).
pub fn fxsave(area: &mut vcpu::FpuArea) {
    // SAFETY: the area is 512 bytes, 16-byte aligned (its type says so);
    // FXSAVE writes only there. CR4.OSFXSR is set (vmm::enable).
    unsafe {
        core::arch::asm!("fxsave64 [{}]", in(reg) area.0.as_mut_ptr(), options(nostack));
    }
}

/// Loads the x87/SSE state from `area` (FXRSTOR64), which FXSAVE wrote.
pub fn fxrstor(area: &vcpu::FpuArea) {
    // SAFETY: as in `fxsave`; the area holds what FXSAVE stored (reserved
    // MXCSR bits clear), so FXRSTOR cannot fault.
    unsafe {
        core::arch::asm!("fxrstor64 [{}]", in(reg) area.0.as_ptr(), options(nostack));
    }
}

/// Puts the x87/SSE state in its initial state (FNINIT, MXCSR 0x1F80).
pub fn fpu_reset() {
    let mxcsr: u32 = 0x1f80;
    // SAFETY: FNINIT and LDMXCSR with the reset value change only the
    // FPU state, which the core itself never uses.
    unsafe {
        core::arch::asm!("fninit", "ldmxcsr [{}]", in(reg) &mxcsr, options(nostack));
    }
}

/// Reads CR4.
pub fn cr4() -> u64 {
    x86_64::registers::control::Cr4::read_raw()
}

/// Writes CR4.
///
/// # Safety
/// Must keep paging and the core's invariants intact.
pub unsafe fn set_cr4(value: u64) {
    // SAFETY: the caller keeps the core's invariants.
    unsafe { x86_64::registers::control::Cr4::write_raw(value) }
}

/// The base addresses of the current GDT and IDT.
pub fn descriptor_table_bases() -> (u64, u64) {
    let gdt = x86_64::instructions::tables::sgdt();
    let idt = x86_64::instructions::tables::sidt();
    (gdt.base.as_u64(), idt.base.as_u64())
}

/// Identity-mapped physical memory below this address is reachable.
pub const IDENTITY_MAP_END: u64 = 4 << 30;

// The frame allocator only hands out memory the identity map covers.
const _: () = assert!(crate::frames::LIMIT <= IDENTITY_MAP_END);

/// A mutable view of physical memory.
///
/// # Safety
/// `[phys, phys + len)` must lie below [`IDENTITY_MAP_END`], be memory the
/// caller owns (allocated from the frame allocator and not aliased), and stay
/// owned for `'a`.
pub unsafe fn phys_mut<'a>(phys: u64, len: usize) -> &'a mut [u8] {
    // SAFETY: the caller guarantees ownership and that the range is mapped
    // (identity) by the boot page tables.
    unsafe { core::slice::from_raw_parts_mut(phys as *mut u8, len) }
}

/// Whether [`zero_phys`] uses 32-byte AVX stores ([`enable_avx`]).
static AVX: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// CR4.OSXSAVE: XSETBV/XGETBV and the state components XCR0 enables.
const CR4_OSXSAVE: u64 = 1 << 18;

/// Lets the core use AVX registers, for [`zero_phys`] only, when the CPU
/// has XSAVE and AVX: sets CR4.OSXSAVE and XCR0 = x87 | SSE | AVX. Returns
/// whether it did. Guests never see it: CPUID hides XSAVE, AVX and
/// OSXSAVE, and CR4.OSXSAVE is the core's (`vcpu::setup`: a guest that
/// sets it is stopped), so a guest cannot use the YMM state the core does
/// not switch.
///
/// # Safety
/// Once, at boot, before VMX host state is recorded from CR4 and before
/// any domain runs.
pub unsafe fn enable_avx() -> bool {
    let features = core::arch::x86_64::__cpuid(1);
    let (xsave, avx) = (features.ecx & (1 << 26) != 0, features.ecx & (1 << 28) != 0);
    // Leaf 0xD, subleaf 0, EAX: the XCR0 bits the CPU supports.
    if !xsave || !avx || core::arch::x86_64::__cpuid_count(0xd, 0).eax & 0b111 != 0b111 {
        return false;
    }
    // SAFETY: the CPU has XSAVE (so CR4.OSXSAVE is valid) and supports
    // these XCR0 bits; nothing else changes.
    unsafe {
        set_cr4(cr4() | CR4_OSXSAVE);
        core::arch::asm!("xsetbv", in("ecx") 0u32, in("eax") 0b111u32, in("edx") 0u32,
            options(nostack, nomem));
    }
    AVX.store(true, core::sync::atomic::Ordering::Relaxed);
    true
}

/// Zeroes `len` bytes of physical memory at `phys` (both multiples of
/// 256), 256 bytes to a loop: with 32-byte AVX stores when [`enable_avx`]
/// turned them on, else 16-byte SSE stores. It is the core's bulk zeroing
/// (`MEM_ZERO`, up to 4 MiB a call); Bochs runs the SSE loop about twice
/// as fast as `memset`'s `REP STOSQ` and the AVX one in about half the
/// instructions again (docs/BENCHMARKS.md). The single frames the core
/// zeroes as it sets domains up keep `fill(0)`: they are small.
///
/// # Safety
/// As [`phys_mut`]: the caller owns the range and it is identity-mapped;
/// `phys` and `len` are multiples of 256 (else the loop writes past the
/// end); CR4.OSFXSR is set (`vmm::enable`), without which the stores
/// fault.
pub unsafe fn zero_phys(phys: u64, len: usize) {
    assert!(phys.is_multiple_of(256) && len.is_multiple_of(256));
    if len == 0 {
        return;
    }
    let mut save = [0u64; 2];
    // SAFETY: the caller's contract; each loop writes exactly `len` bytes
    // upwards from `phys` (aligned to 256, so to both store sizes). XMM0
    // may hold a guest's value (the core switches SSE state lazily), so it
    // is saved in `save` and restored. YMM0's upper half and every other
    // YMM register's are nobody's (no domain may use AVX): VZEROUPPER
    // clears them. CR4.OSFXSR is set (the caller's contract), CR4.OSXSAVE
    // and XCR0's AVX bit when `AVX` is (`enable_avx`).
    unsafe {
        if AVX.load(core::sync::atomic::Ordering::Relaxed) {
            core::arch::asm!(
                "movdqu [{save}], xmm0",
                "vpxor xmm0, xmm0, xmm0",
                "2:",
                "vmovdqa [{p}], ymm0",
                "vmovdqa [{p} + 32], ymm0",
                "vmovdqa [{p} + 64], ymm0",
                "vmovdqa [{p} + 96], ymm0",
                "vmovdqa [{p} + 128], ymm0",
                "vmovdqa [{p} + 160], ymm0",
                "vmovdqa [{p} + 192], ymm0",
                "vmovdqa [{p} + 224], ymm0",
                "add {p}, 256",
                "sub {n}, 256",
                "ja 2b",
                "vzeroupper",
                "movdqu xmm0, [{save}]",
                p = inout(reg) phys => _,
                n = inout(reg) len => _,
                save = in(reg) save.as_mut_ptr(),
                options(nostack)
            );
            return;
        }
        core::arch::asm!(
            "movdqu [{save}], xmm0",
            "pxor xmm0, xmm0",
            "2:",
            "movdqa [{p}], xmm0",
            "movdqa [{p} + 16], xmm0",
            "movdqa [{p} + 32], xmm0",
            "movdqa [{p} + 48], xmm0",
            "movdqa [{p} + 64], xmm0",
            "movdqa [{p} + 80], xmm0",
            "movdqa [{p} + 96], xmm0",
            "movdqa [{p} + 112], xmm0",
            "movdqa [{p} + 128], xmm0",
            "movdqa [{p} + 144], xmm0",
            "movdqa [{p} + 160], xmm0",
            "movdqa [{p} + 176], xmm0",
            "movdqa [{p} + 192], xmm0",
            "movdqa [{p} + 208], xmm0",
            "movdqa [{p} + 224], xmm0",
            "movdqa [{p} + 240], xmm0",
            "add {p}, 256",
            "sub {n}, 256",
            "ja 2b",
            "movdqu xmm0, [{save}]",
            p = inout(reg) phys => _,
            n = inout(reg) len => _,
            save = in(reg) save.as_mut_ptr(),
            options(nostack)
        );
    }
}

/// A read-only view of physical memory.
///
/// # Safety
/// As [`phys_mut`], except that shared access suffices.
pub unsafe fn phys<'a>(phys: u64, len: usize) -> &'a [u8] {
    // SAFETY: see `phys_mut`.
    unsafe { core::slice::from_raw_parts(phys as *const u8, len) }
}

/// A page-table frame as 512 entries.
///
/// # Safety
/// `frame` must be a page-aligned frame below [`IDENTITY_MAP_END`] owned by
/// the caller, with no live mutable reference to it for `'a`.
pub unsafe fn phys_table<'a>(frame: u64) -> &'a [u64; 512] {
    // SAFETY: the caller guarantees alignment, ownership and no aliasing.
    unsafe { &*(frame as *const [u64; 512]) }
}

/// A page-table frame as 512 mutable entries.
///
/// # Safety
/// As [`phys_table`], and no other reference to it may live for `'a`.
pub unsafe fn phys_table_mut<'a>(frame: u64) -> &'a mut [u64; 512] {
    // SAFETY: the caller guarantees alignment, ownership and exclusivity.
    unsafe { &mut *(frame as *mut [u64; 512]) }
}

/// The physical range the core's image occupies (from the linker script).
pub fn kernel_image() -> (u64, u64) {
    unsafe extern "C" {
        static __kernel_start: u8;
        static __kernel_end: u8;
    }
    // Only the addresses of the linker symbols are taken, never their bytes.
    (
        core::ptr::addr_of!(__kernel_start) as u64,
        core::ptr::addr_of!(__kernel_end) as u64,
    )
}

/// An address the boot page tables do not map (above [`IDENTITY_MAP_END`]).
pub const SELFTEST_FAULT_ADDRESS: u64 = 0x40_0000_0000;

/// Reads [`SELFTEST_FAULT_ADDRESS`]; the page fault handler reports it and
/// stops the machine. Used by `selftest=fault` to test that path.
pub fn provoke_page_fault() -> ! {
    // SAFETY: the read faults before it returns anything; the exception
    // handler never returns, so no value is ever produced.
    let _ = unsafe { core::ptr::read_volatile(SELFTEST_FAULT_ADDRESS as *const u64) };
    unreachable!("the page fault handler returned")
}

/// The time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The TSC frequency [`calibrate_tsc`] measured (0: not measured).
static TSC_HZ: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The TSC frequency in Hz, if [`calibrate_tsc`] measured it.
pub fn tsc_hz() -> Option<u64> {
    match TSC_HZ.load(core::sync::atomic::Ordering::Relaxed) {
        0 => None,
        hz => Some(hz),
    }
}

/// Measures the TSC against the 8254 PIT's channel 2 (1,193,182 Hz) for
/// about 10 ms and keeps the result for [`tsc_hz`]. Gives up (leaving it
/// unmeasured) when the PIT does not count down in time.
pub fn calibrate_tsc() -> Option<u64> {
    const PIT_HZ: u64 = 1_193_182;
    const COUNT: u16 = 11_932; // 10 ms
    let mut gate = Port::<u8>::new(0x61);
    let mut command = Port::<u8>::new(0x43);
    let mut channel2 = Port::<u8>::new(0x42);
    // SAFETY: the PIT's channel 2 and its gate (port 0x61: bit 0 gate,
    // bit 1 speaker off); the core owns them and nothing else uses them.
    let ticks = unsafe {
        let g = gate.read();
        gate.write((g & !0x02) | 0x01);
        // Channel 2, low then high byte, mode 0 (interrupt on terminal
        // count: OUT goes high when the count reaches 0), binary.
        command.write(0b1011_0000);
        channel2.write(COUNT as u8);
        channel2.write((COUNT >> 8) as u8);
        let start = rdtsc();
        let mut spins = 0u64;
        // OUT2 is bit 5 of port 0x61.
        while gate.read() & 0x20 == 0 {
            spins += 1;
            if spins > 50_000_000 {
                return None;
            }
        }
        rdtsc() - start
    };
    let hz = ticks * PIT_HZ / u64::from(COUNT);
    TSC_HZ.store(hz, core::sync::atomic::Ordering::Relaxed);
    Some(hz)
}

/// Waits until the TSC reaches `deadline` (nothing can run before then):
/// halted until the local APIC's deadline timer fires, or, on a CPU without
/// one, spinning with PAUSE.
pub fn idle_until(deadline: u64) {
    if apic::halt_until(deadline) {
        return;
    }
    while rdtsc() < deadline {
        core::hint::spin_loop();
    }
}

/// Makes the 2 MiB page of the boot identity map that holds `addr`
/// uncacheable (for MMIO).
pub fn uncache_2m(addr: u64) {
    unsafe extern "C" {
        static mut boot_pd: [u64; 2048];
    }
    let index = (addr >> 21) as usize;
    if index >= 2048 {
        return;
    }
    // SAFETY: `boot_pd` is the boot page directory (4 tables of 512 2 MiB
    // entries); setting PCD|PWT on one entry and flushing its translation
    // changes only the caching of that range.
    unsafe {
        let pd = core::ptr::addr_of_mut!(boot_pd);
        (*pd)[index] |= (1 << 3) | (1 << 4);
        core::arch::asm!("invlpg [{0}]", in(reg) addr, options(nostack));
    }
}
