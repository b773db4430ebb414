//! VMX root operation and the first guests: turning VMX on, building a
//! guest's memory, EPT and VMCS, running it with the `vcpu` run loop, and
//! tearing it all down again.

use core::fmt;

use ept::{Access, Ept, EptError, MemoryType};
use vcpu::{GuestSetup, HostState, LineSource, Platform, StopReason, Vcpu, Vmcs};
use vmx::arch::{InveptType, InvvpidType};
use vmx::caps::{self, CapabilityMsrs, FeatureControl};
use vmx::VmFail;

use crate::arch::{self, cpu::Selectors};
use crate::cmdline::{Options, Scenario};
use crate::frames::{Frames, FRAME};

/// Guest-physical memory size of a first guest.
pub const GUEST_RAM: u64 = 4 << 20;
/// Guest-physical address where the guest image is loaded and entered.
pub const GUEST_IMAGE: u64 = 0x20_0000;
/// Initial guest stack pointer (the stack grows down from here).
pub const GUEST_STACK_TOP: u64 = 0x1f_f000;
/// Guest page tables: PML4, PDPT, PD (identity map of the first GiB).
const GUEST_PML4: u64 = 0x1000;
const GUEST_PDPT: u64 = 0x2000;
const GUEST_PD: u64 = 0x3000;
/// Guest GDT: null, unused, 64-bit code, data, a 16-byte TSS descriptor
/// (the selectors of `vcpu::selectors`).
const GUEST_GDT: u64 = 0x5000;
const GUEST_GDT_LIMIT: u16 = vcpu::selectors::TSS + 15;
/// The VPID of first guests (0 is the core's).
const GUEST_VPID: u16 = 1;

const CR4_VMXE: u64 = 1 << 13;
const CR4_OSFXSR: u64 = 1 << 9;

/// Why VMX could not be used.
#[derive(Debug)]
pub enum VmxError {
    /// CPUID.1:ECX.VMX is clear.
    NotAvailable,
    /// Firmware locked IA32_FEATURE_CONTROL with VMX off.
    DisabledByFirmware,
    /// The CPU's VMX has no EPT (or no secondary controls).
    NoEpt,
    /// No memory for the VMXON region.
    OutOfMemory,
    /// VMXON failed.
    VmxOn(VmFail),
}

impl fmt::Display for VmxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmxError::NotAvailable => f.write_str(
                "VMX is not available on this CPU (CPUID.1:ECX.VMX[bit 5] = 0); \
                 Bulkhead needs Intel VT-x: use Bochs, or QEMU/KVM with nested VMX",
            ),
            VmxError::DisabledByFirmware => f.write_str(
                "VMX is disabled by the firmware (IA32_FEATURE_CONTROL is locked without VMX)",
            ),
            VmxError::NoEpt => {
                f.write_str("this CPU's VMX has no EPT (extended page tables); Bulkhead needs it")
            }
            VmxError::OutOfMemory => f.write_str("no memory for the VMXON region"),
            VmxError::VmxOn(e) => write!(f, "VMXON failed: {e}"),
        }
    }
}

/// The core in VMX root operation.
pub struct Vmx {
    /// The capability MSRs read at VMXON.
    pub caps: CapabilityMsrs,
}

/// Enters VMX root operation.
pub fn enable(frames: &mut Frames) -> Result<Vmx, VmxError> {
    let [_, _, ecx, _] = arch::cpuid(1, 0);
    if ecx & (1 << 5) == 0 {
        return Err(VmxError::NotAvailable);
    }
    // SAFETY: IA32_FEATURE_CONTROL exists on every CPU with VMX.
    let fc = unsafe { arch::rdmsr(caps::IA32_FEATURE_CONTROL) };
    match caps::feature_control(fc) {
        FeatureControl::LockedEnabled => {}
        FeatureControl::LockedDisabled => return Err(VmxError::DisabledByFirmware),
        FeatureControl::Unlocked => {
            // SAFETY: setting lock + VMX-outside-SMX is the documented way to
            // allow VMXON when the firmware left the MSR unlocked.
            unsafe { arch::wrmsr(caps::IA32_FEATURE_CONTROL, fc | 1 | 4) }
        }
    }
    // SAFETY: the VMX capability MSRs exist when CPUID reports VMX; the TRUE_*,
    // secondary and EPT/VPID MSRs are read only when IA32_VMX_BASIC and the
    // control MSRs say they exist (`read_all` checks).
    let caps = CapabilityMsrs::read_all(|msr| unsafe { arch::rdmsr(msr) });
    let ept = vmx::controls::SecondaryProcBased::ENABLE_EPT.bits();
    if caps.secondary_allowed().may_be_one & ept == 0 {
        return Err(VmxError::NoEpt);
    }
    // SAFETY: the fixed bits only force what VMX operation requires (CR0.NE,
    // PE, PG are already set; CR4.VMXE); paging stays as it is.
    // `enable_avx` runs once, here at boot, before any VMCS records the
    // host's CR4 and before any domain runs (its contract).
    unsafe {
        arch::set_cr0(caps.fixed_cr0(arch::cr0(), false));
        // OSFXSR: FXSAVE/FXRSTOR move the SSE state too (the core switches
        // PC guests' FPU state with them).
        arch::set_cr4(caps.fixed_cr4(arch::cr4() | CR4_VMXE | CR4_OSFXSR));
        // Before the host state is recorded: CR4.OSXSAVE is part of it.
        if arch::enable_avx() {
            log::info!("AVX on for the core's memory zeroing (XCR0 = x87|SSE|AVX)");
        }
    }
    let region = frames.allocate(FRAME, FRAME).ok_or(VmxError::OutOfMemory)?;
    write_revision(region, caps.basic.revision_id());
    // SAFETY: CR0/CR4 satisfy the fixed bits, the region is a fresh page
    // with the revision id, reserved for VMX for the rest of the core's life.
    unsafe { vmx::arch::vmxon(region) }.map_err(VmxError::VmxOn)?;
    log::info!(
        "VMX enabled: revision id {:#x} (IA32_VMX_BASIC {:#x}), VMCS size {} bytes, VMXON region at {region:#x}",
        caps.basic.revision_id(),
        caps.basic.0,
        caps.basic.vmcs_size()
    );
    let e = caps.ept_vpid;
    log::info!(
        "VMX features: EPT 4-level {} 2M pages {} 1G pages {}, VPID {}, INVEPT single {} all {}, preemption timer rate TSC/{}",
        yes(e.page_walk_4()),
        yes(e.pages_2m()),
        yes(e.pages_1g()),
        yes(e.invvpid()),
        yes(e.invept_single_context()),
        yes(e.invept_all_context()),
        1u64 << caps.misc.preemption_timer_shift()
    );
    Ok(Vmx { caps })
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// Zeroes `page` and writes the VMCS revision id into it.
pub(crate) fn write_revision(page: u64, revision: u32) {
    // SAFETY: `page` is a frame just allocated for this purpose.
    let bytes = unsafe { arch::phys_mut(page, FRAME as usize) };
    bytes.fill(0);
    bytes[..4].copy_from_slice(&(revision & 0x7fff_ffff).to_le_bytes());
}

/// Makes `page` a fresh VMCS and the current one: revision id, VMCLEAR,
/// VMPTRLD. On failure, names the instruction that failed.
///
/// # Safety
/// Must run in VMX root operation; `page` must be a frame reserved for this
/// VMCS and used for nothing else.
pub(crate) unsafe fn load_fresh_vmcs(vmx: &Vmx, page: u64) -> Result<(), (&'static str, VmFail)> {
    write_revision(page, vmx.caps.basic.revision_id());
    // SAFETY: the caller guarantees VMX root operation and the region.
    unsafe { vmx::arch::vmclear(page) }.map_err(|e| ("VMCLEAR", e))?;
    // SAFETY: as above, with the revision id written.
    unsafe { vmx::arch::vmptrld(page) }.map_err(|e| ("VMPTRLD", e))
}

/// Frame allocation for EPT tables, over the core's frame allocator and the
/// identity map.
struct CoreFrames<'a>(&'a mut Frames);

impl ept::FrameAllocator for CoreFrames<'_> {
    fn allocate_frame(&mut self) -> Option<u64> {
        let frame = self.0.allocate(FRAME, FRAME)?;
        // SAFETY: the frame was just allocated and is owned by the EPT.
        unsafe { arch::phys_mut(frame, FRAME as usize) }.fill(0);
        Some(frame)
    }

    fn deallocate_frame(&mut self, hpa: u64) {
        if let Err(e) = self.0.free(hpa, FRAME) {
            log::warn!("EPT table frame {hpa:#x} could not be freed: {e:?}");
        }
    }

    fn table(&self, hpa: u64) -> &[u64; 512] {
        // SAFETY: the ept crate only passes addresses it got from
        // `allocate_frame`: page-aligned, identity-mapped frames it owns.
        unsafe { arch::phys_table(hpa) }
    }

    fn table_mut(&mut self, hpa: u64) -> &mut [u64; 512] {
        // SAFETY: as in `table`; `&mut self` makes the access exclusive.
        unsafe { arch::phys_table_mut(hpa) }
    }
}

/// VMREAD/VMWRITE on the current VMCS.
pub(crate) struct HardwareVmcs(pub(crate) ());

impl Vmcs for HardwareVmcs {
    fn read(&self, field: u32) -> Result<u64, VmFail> {
        // SAFETY: a `HardwareVmcs` exists only while the core is in VMX root
        // operation with the guest's VMCS current (see `run_guest`).
        unsafe { vmx::arch::vmread(field) }
    }

    fn write(&mut self, field: u32, value: u64) -> Result<(), VmFail> {
        // SAFETY: as in `read`; the vcpu crate writes only guest-state and
        // control fields after setup, never host state.
        unsafe { vmx::arch::vmwrite(field, value) }
    }
}

/// Enters the guest of the current VMCS with `fast` as the world switch's
/// fast exit handler (see [`vmx::arch::enter_guest`]).
///
/// # Safety
/// The VMCS that [`HardwareVmcs`] accesses must be current and fully set up
/// with the core's host state, and `launched` must be its launch state.
pub(crate) unsafe fn enter<P: Platform>(
    regs: &mut vcpu::GuestRegisters,
    launched: bool,
    fast: &mut vcpu::FastPath<'_, HardwareVmcs, P>,
) -> Result<(), VmFail> {
    let ctx = (fast as *mut vcpu::FastPath<'_, HardwareVmcs, P>).cast::<u8>();
    let calls = vcpu::FastPath::<HardwareVmcs, P>::CALLS;
    // SAFETY: the caller vouches for the VMCS; `fast_exit::<P>` is called
    // with `regs` and the `FastPath` behind `ctx`, both alive until
    // `enter_guest` returns, and touches only VMREAD/VMWRITE on the current
    // VMCS.
    unsafe { vmx::arch::enter_guest(regs, launched, fast_exit::<P>, ctx, calls) }
}

/// The [`vmx::arch::FastExit`] handler: a [`vcpu::FastPath`] behind `ctx`.
///
/// # Safety
/// `regs` must be valid and `ctx` must point to a live
/// `vcpu::FastPath<HardwareVmcs, P>`, neither used elsewhere meanwhile (as
/// [`enter`] arranges).
unsafe extern "C" fn fast_exit<P: Platform>(regs: *mut vcpu::GuestRegisters, ctx: *mut u8) -> u64 {
    // SAFETY: per the contract above.
    let (regs, fast) = unsafe {
        (
            &mut *regs,
            &mut *ctx.cast::<vcpu::FastPath<'_, HardwareVmcs, P>>(),
        )
    };
    u64::from(!fast.handle(regs))
}

/// What exit handlers may do to the rest of the machine.
pub(crate) struct GuestPlatform<'a, F: ept::FrameAllocator> {
    pub(crate) ept: Option<&'a Ept>,
    pub(crate) tables: &'a F,
}

impl<F: ept::FrameAllocator> Platform for GuestPlatform<'_, F> {
    fn host_rdtsc(&mut self) -> u64 {
        arch::rdtsc()
    }

    fn tsc_hz(&self) -> Option<u64> {
        arch::tsc_hz()
    }

    fn host_cpuid(&mut self, leaf: u32, subleaf: u32) -> [u32; 4] {
        arch::cpuid(leaf, subleaf)
    }

    fn read_guest(&mut self, gpa: u64, buf: &mut [u8]) -> bool {
        let mut done = 0usize;
        while done < buf.len() {
            let Some(addr) = gpa.checked_add(done as u64) else {
                return false;
            };
            let Some(t) = self.ept.and_then(|e| e.translate(self.tables, addr)) else {
                return false;
            };
            if !t.access.contains(Access::READ) {
                return false;
            }
            let in_page = (FRAME - (addr % FRAME)) as usize;
            let n = in_page.min(buf.len() - done);
            // SAFETY: the EPT maps `addr` to `t.hpa`, a frame of this guest's
            // memory (owned by the core, identity-mapped); `n` stays inside
            // that 4 KiB page.
            let src = unsafe { arch::phys(t.hpa, n) };
            buf[done..done + n].copy_from_slice(src);
            done += n;
        }
        true
    }

    fn write_guest(&mut self, gpa: u64, bytes: &[u8]) -> bool {
        // Every page is checked before anything is written.
        let Some(end) = gpa.checked_add(bytes.len() as u64) else {
            return false;
        };
        let mut page = gpa & !(FRAME - 1);
        while page < end {
            let writable = self
                .ept
                .and_then(|e| e.translate(self.tables, page))
                .is_some_and(|t| t.access.contains(Access::WRITE));
            if !writable {
                return false;
            }
            page += FRAME;
        }
        let mut done = 0usize;
        while done < bytes.len() {
            let addr = gpa + done as u64;
            let Some(t) = self.ept.and_then(|e| e.translate(self.tables, addr)) else {
                return false;
            };
            let in_page = (FRAME - (addr % FRAME)) as usize;
            let n = in_page.min(bytes.len() - done);
            // SAFETY: the EPT maps `addr` writable to `t.hpa`, a frame of
            // this guest's memory (owned by the core, identity-mapped); `n`
            // stays inside that 4 KiB page. The guest is not running.
            let dst = unsafe { arch::phys_mut(t.hpa, n) };
            dst.copy_from_slice(&bytes[done..done + n]);
            done += n;
        }
        true
    }

    fn guest_line(&mut self, guest: &str, source: LineSource, text: &str) {
        crate::domains::console_line(format_args!("[{guest}{}] {text}", source.tag()));
    }
}

/// Why a guest could not be started.
#[derive(Debug)]
pub enum GuestError {
    /// The frame allocator could not supply the guest's memory or VMCS.
    OutOfMemory,
    /// The image does not fit between its load address and the end of RAM.
    ImageTooLarge(usize),
    /// Building the EPT failed.
    Ept(EptError),
    /// A VMX instruction failed while preparing the VMCS.
    Vmx(&'static str, VmFail),
    /// The VMCS could not be set up.
    Setup(vcpu::SetupError),
}

impl fmt::Display for GuestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuestError::OutOfMemory => f.write_str("out of memory"),
            GuestError::ImageTooLarge(n) => write!(
                f,
                "image of {n} bytes does not fit at {GUEST_IMAGE:#x} in {} KiB of guest memory",
                GUEST_RAM / 1024
            ),
            GuestError::Ept(e) => write!(f, "EPT: {e}"),
            GuestError::Vmx(what, e) => write!(f, "{what}: {e}"),
            GuestError::Setup(e) => write!(f, "VMCS setup: {e}"),
        }
    }
}

/// Runs `image` as a guest named `name` until it stops, then frees
/// everything it used.
pub fn run_guest(
    vmx: &Vmx,
    frames: &mut Frames,
    selectors: &Selectors,
    name: &'static str,
    image: &[u8],
    scenario: Scenario,
    options: &Options,
) -> Result<StopReason, GuestError> {
    let image_room = (GUEST_RAM - GUEST_IMAGE) as usize;
    if image.len() > image_room {
        return Err(GuestError::ImageTooLarge(image.len()));
    }
    let ram = frames
        .allocate(GUEST_RAM, 2 << 20)
        .ok_or(GuestError::OutOfMemory)?;
    let Some(vmcs) = frames.allocate(FRAME, FRAME) else {
        free(frames, ram, GUEST_RAM);
        return Err(GuestError::OutOfMemory);
    };
    build_guest_memory(ram, image);
    let mut tables = CoreFrames(frames);
    let result = (|| {
        let mut ept = Ept::new(&mut tables).map_err(GuestError::Ept)?;
        let mapped = ept.map_range(
            &mut tables,
            0,
            ram,
            GUEST_RAM,
            Access::RWX,
            MemoryType::WriteBack,
        );
        let result = mapped.map_err(GuestError::Ept).and_then(|()| {
            run_on_vmcs(
                vmx,
                &ept,
                &mut tables,
                vmcs,
                selectors,
                name,
                scenario,
                options,
            )
        });
        invalidate(vmx, ept.eptp(false), GUEST_VPID);
        ept.destroy(&mut tables);
        result
    })();
    free(frames, vmcs, FRAME);
    free(frames, ram, GUEST_RAM);
    result
}

#[allow(clippy::too_many_arguments)]
fn run_on_vmcs(
    vmx: &Vmx,
    ept: &Ept,
    tables: &mut CoreFrames<'_>,
    vmcs_page: u64,
    selectors: &Selectors,
    name: &'static str,
    scenario: Scenario,
    options: &Options,
) -> Result<StopReason, GuestError> {
    // SAFETY: VMX root operation; the page is this guest's VMCS region.
    unsafe { load_fresh_vmcs(vmx, vmcs_page) }.map_err(|(what, e)| GuestError::Vmx(what, e))?;
    let host = host_state(selectors);
    let setup = GuestSetup {
        rip: GUEST_IMAGE,
        rsp: GUEST_STACK_TOP,
        cr3: GUEST_PML4,
        gdtr: (GUEST_GDT, GUEST_GDT_LIMIT),
        eptp: ept.eptp(false),
        vpid: GUEST_VPID,
        io_bitmaps: None,
        preemption_timer: Some(options.slice),
    };
    let mut vmcs = HardwareVmcs(());
    let controls =
        vcpu::setup_vmcs(&mut vmcs, &vmx.caps, &host, &setup).map_err(GuestError::Setup)?;
    log::info!(
        "guest {name}: starting scenario {} with {} KiB at GPA 0 (EPT{}{}{}), budget {} slices of {} timer ticks",
        scenario.name(),
        GUEST_RAM / 1024,
        if controls.vpid { ", VPID" } else { "" },
        if controls.unrestricted { ", unrestricted guest" } else { "" },
        if controls.preemption_timer { ", preemption timer" } else { "" },
        options.budget,
        options.slice
    );
    let mut vcpu = Vcpu::new(name);
    vcpu.regs.rdi = scenario.code();
    vcpu.slice_budget = Some(options.budget);
    vcpu.slice = options.slice;
    let mut platform = GuestPlatform {
        ept: Some(ept),
        tables: &*tables,
    };
    let stop = vcpu::run(
        &mut vcpu,
        &mut vmcs,
        &mut platform,
        |regs, launched, fast| {
            // SAFETY: the guest's VMCS is current and fully set up (host state is
            // the core's own), and `launched` tracks its launch state.
            unsafe { enter(regs, launched, fast) }
        },
    );
    log::info!("guest {name}: stopped: {stop}");
    log::info!(
        "guest {name}: {} exits, {} preemption-timer slices",
        vcpu.stats.total(),
        vcpu.slices
    );
    // SAFETY: the VMCS is no longer used; clearing flushes it to memory.
    if let Err(e) = unsafe { vmx::arch::vmclear(vmcs_page) } {
        log::warn!("guest {name}: VMCLEAR after stop failed: {e}");
    }
    Ok(stop)
}

/// The core's state as the VMCS host-state area needs it.
pub(crate) fn host_state(selectors: &Selectors) -> HostState {
    let (gdtr_base, idtr_base) = arch::descriptor_table_bases();
    // SAFETY: EFER, FS_BASE and GS_BASE exist on every x86_64 CPU.
    let (efer, fs_base, gs_base) = unsafe {
        (
            arch::rdmsr(vcpu::msr::EFER),
            arch::rdmsr(vcpu::msr::FS_BASE),
            arch::rdmsr(vcpu::msr::GS_BASE),
        )
    };
    HostState {
        cr0: arch::cr0(),
        cr3: arch::cr3(),
        cr4: arch::cr4(),
        cs: selectors.code.0,
        ss: selectors.data.0,
        ds: 0,
        tr: selectors.tss.0,
        fs_base,
        gs_base,
        tr_base: arch::cpu::tss_base(),
        gdtr_base,
        idtr_base,
        efer,
    }
}

/// Drops every cached translation of a guest that is going away.
pub(crate) fn invalidate(vmx: &Vmx, eptp: u64, vpid: u16) {
    let e = vmx.caps.ept_vpid;
    // SAFETY: VMX root operation; each type is used only when the CPU
    // reports it.
    unsafe {
        if e.invept_single_context() {
            let _ = vmx::arch::invept(InveptType::SingleContext, eptp);
        } else if e.invept_all_context() {
            let _ = vmx::arch::invept(InveptType::AllContext, 0);
        }
        if e.invvpid_single_context() {
            let _ = vmx::arch::invvpid(InvvpidType::SingleContext, vpid, 0);
        } else if e.invvpid_all_context() {
            let _ = vmx::arch::invvpid(InvvpidType::AllContext, 0, 0);
        }
    }
}

fn free(frames: &mut Frames, start: u64, len: u64) {
    if let Err(e) = frames.free(start, len) {
        log::warn!("could not free {start:#x}+{len:#x}: {e:?}");
    }
}

/// Zeroes guest memory, writes the guest's page tables and GDT, and copies
/// the image to [`GUEST_IMAGE`].
fn build_guest_memory(ram: u64, image: &[u8]) {
    // SAFETY: `ram` is GUEST_RAM bytes just allocated for this guest.
    let mem = unsafe { arch::phys_mut(ram, GUEST_RAM as usize) };
    mem.fill(0);
    write_guest_tables(mem);
    let at = GUEST_IMAGE as usize;
    mem[at..at + image.len()].copy_from_slice(image);
}

/// Writes a guest's initial page tables (identity map of the first GiB with
/// 2 MiB pages at [`GUEST_PML4`]) and GDT (at [`GUEST_GDT`]) into the first
/// 24 KiB of its memory.
pub(crate) fn write_guest_tables(mem: &mut [u8]) {
    let mut put = |gpa: u64, value: u64| {
        let at = gpa as usize;
        if let Some(slot) = mem.get_mut(at..at + 8) {
            slot.copy_from_slice(&value.to_le_bytes());
        }
    };
    // Present + writable (+ user for the upper levels).
    put(GUEST_PML4, GUEST_PDPT | 0x7);
    put(GUEST_PDPT, GUEST_PD | 0x7);
    for i in 0..512u64 {
        // 2 MiB pages: present, writable, PS.
        put(GUEST_PD + i * 8, (i << 21) | 0x83);
    }
    // Null, unused, then the selectors of `vcpu::selectors`: 64-bit code
    // at 0x10 and data at 0x18 (the Linux boot protocol's), the TSS at 0x20.
    put(GUEST_GDT, 0);
    put(GUEST_GDT + 8, 0);
    let entry = |selector: u16| GUEST_GDT + u64::from(selector);
    put(entry(vcpu::selectors::CODE), 0x00af_9b00_0000_ffff);
    put(entry(vcpu::selectors::DATA), 0x00cf_9300_0000_ffff);
    // 64-bit TSS at base 0, limit 0x67, busy.
    put(entry(vcpu::selectors::TSS), 0x0000_8b00_0000_0067);
    put(entry(vcpu::selectors::TSS) + 8, 0);
}

/// Guest CR3 and GDT as written by [`write_guest_tables`].
pub(crate) const GUEST_TABLES: (u64, u64, u16) = (GUEST_PML4, GUEST_GDT, GUEST_GDT_LIMIT);
