//! Domains from the boot manifest: building each one (memory, ELF image,
//! EPT, VMCS, I/O bitmap, capabilities, start-info page) and the scheduler
//! loop that runs them until every one has stopped.

use core::fmt;

use capspace::ObjectRef;
use hypercall_abi::{
    ObjectType, Rights, StartInfo, StartSlot, IMAGE_FLOOR, START_INFO_GPA, START_MAGIC, START_SLOTS,
};
use manifest::Manifest;
use vcpu::{Action, GuestSetup, StopReason, Vmcs};

use vmx::fields;

use crate::arch::{self, cpu::Selectors};
use crate::frames::{Frames, Pool, FRAME};
use crate::system::{
    Attach, Device, Domain, DomainHw, Machine, Outcome, Region, RunState, System, PAGE,
};
use crate::vmm::{self, GuestPlatform, HardwareVmcs, Vmx};

/// Frames reserved for the core's pool (VMCS, I/O bitmaps, EPT tables).
pub const POOL_FRAMES: usize = 1024;

/// Refused hypercalls the core logs for each domain; later ones are only
/// counted.
const REFUSALS_LOGGED: u64 = 16;

/// Why the system in the manifest could not be built.
#[derive(Debug)]
pub enum BootError {
    /// No memory for the pool.
    NoPool,
    /// A domain could not be built.
    Domain(&'static str, &'static str),
    /// A domain's image is not a loadable ELF for it.
    Image(&'static str, elf_loader::ElfError),
    /// A channel could not be built.
    Channel(&'static str, &'static str),
    /// A capability could not be given.
    Capability(&'static str, hypercall_abi::Status),
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootError::NoPool => write!(f, "no memory for the core pool"),
            BootError::Domain(name, why) => write!(f, "domain {name:?}: {why}"),
            BootError::Image(name, e) => write!(f, "domain {name:?}: image: {e}"),
            BootError::Channel(name, why) => write!(f, "channel {name:?}: {why}"),
            BootError::Capability(name, s) => write!(f, "domain {name:?}: capability: {s}"),
        }
    }
}

/// Pool frames for EPT tables.
pub struct PoolFrames<'a>(pub &'a mut Pool);

impl ept::FrameAllocator for PoolFrames<'_> {
    fn allocate_frame(&mut self) -> Option<u64> {
        let f = self.0.allocate()?;
        // SAFETY: the frame was just taken from the pool for this table.
        unsafe { arch::phys_mut(f, FRAME as usize) }.fill(0);
        Some(f)
    }

    fn deallocate_frame(&mut self, hpa: u64) {
        if !self.0.free(hpa) {
            log::warn!("pool: frame {hpa:#x} freed twice or not from the pool");
        }
    }

    fn table(&self, hpa: u64) -> &[u64; 512] {
        // SAFETY: the ept crate passes only frames it got from
        // `allocate_frame`: pool frames, identity-mapped, owned by the EPT.
        unsafe { arch::phys_table(hpa) }
    }

    fn table_mut(&mut self, hpa: u64) -> &mut [u64; 512] {
        // SAFETY: as in `table`; `&mut self` makes the access exclusive.
        unsafe { arch::phys_table_mut(hpa) }
    }
}

/// The machine as the objects see it.
struct Hw<'a> {
    vmx: &'a Vmx,
    pool: PoolFrames<'a>,
    frames: &'a mut Frames,
}

impl<'a> Machine for Hw<'a> {
    type Frames = PoolFrames<'a>;

    fn frames(&mut self) -> &mut PoolFrames<'a> {
        &mut self.pool
    }

    fn invalidate(&mut self, eptp: u64, vpid: u16) {
        vmm::invalidate(self.vmx, eptp, vpid);
    }

    fn release_memory(&mut self, hpa: u64, len: u64) {
        if let Err(e) = self.frames.free(hpa, len) {
            log::warn!("memory {hpa:#x}+{len:#x} could not be freed: {e:?}");
        }
    }

    fn zero_memory(&mut self, hpa: u64, len: u64) {
        // SAFETY: the objects call this only for a region's own frames
        // (identity-mapped host memory) while no domain maps them, with
        // page-aligned offsets and lengths (MEM_ZERO's checks) in regions
        // of whole frames; CR4.OSFXSR was set before any domain ran.
        unsafe { arch::zero_phys(hpa, len as usize) };
    }

    fn device_answers(
        &mut self,
        device: Device,
        answer: &mut dyn FnMut(u8, u32, u8) -> bool,
    ) -> u32 {
        ioreq(device)
            .lock()
            .as_mut()
            .map_or(0, |io| pop_answers(io, answer))
    }

    fn device_stopped(&mut self, device: Device, guest: u8) {
        use hypercall_abi::ioreq::{Request, VERSION};
        let mut guard = ioreq(device).lock();
        let Some(io) = guard.as_mut() else {
            return;
        };
        if !io.flush(guest) {
            // The ring stayed full: the slot may go to another domain, so
            // its posted writes cannot wait any longer.
            let lost = io.posted[guest as usize % crate::system::MAX_DOMAINS].len();
            io.posted[guest as usize % crate::system::MAX_DOMAINS].clear();
            drop(guard);
            log::warn!(
                "{lost} posted write(s) of a stopped domain to {device:?} dropped: the ioreq ring is full"
            );
            return;
        }
        // After its last writes, the service hears it is gone and drops
        // what it kept for it (its 16550, its PC; the UART service hands
        // the keyboard back to the shell if it had it). With no room on
        // the ring, the next domain's fresh Attach in the slot replaces
        // that state all the same.
        let _ = io
            .end
            .tx()
            .push_versioned(VERSION, &Request::Detach { guest });
    }

    fn service_stopped(&mut self, device: Device) {
        if device == Device::Uart {
            console_stop();
        }
    }

    fn allocate_domain(&mut self, vpid: u16) -> Option<DomainHw> {
        let vmcs = self.pool.0.allocate()?;
        let Some(a) = self.pool.0.allocate() else {
            self.pool.0.free(vmcs);
            return None;
        };
        let Some(b) = self.pool.0.allocate() else {
            self.pool.0.free(vmcs);
            self.pool.0.free(a);
            return None;
        };
        for page in [a, b] {
            // SAFETY: fresh pool frames for the domain's I/O bitmaps: every
            // port exits until a capability opens it.
            unsafe { arch::phys_mut(page, FRAME as usize) }.fill(0xff);
        }
        Some(DomainHw {
            vmcs,
            io_bitmaps: (a, b),
            vpid,
        })
    }

    fn open_ports(&mut self, hw: &DomainHw, first: u16, last: u16) {
        open_ports(hw.io_bitmaps, first, last);
    }

    fn release_domain(&mut self, hw: &DomainHw) {
        // SAFETY: VMX root operation; the VMCS is no longer used.
        let _ = unsafe { vmx::arch::vmclear(hw.vmcs) };
        for f in [hw.vmcs, hw.io_bitmaps.0, hw.io_bitmaps.1] {
            self.pool.0.free(f);
        }
    }
}

static MANIFEST: spin::Once<Manifest> = spin::Once::new();
/// The core's end of the ioreq channel of each device service (requests
/// out, answers in; see `Device`), when the system has that service.
static IOREQ: [spin::Mutex<Option<IoReq>>; 2] = [spin::Mutex::new(None), spin::Mutex::new(None)];

/// The core's end of the console ring it shares with the UART service
/// (`crate::corelog`), and the ring's memory (address, length).
static CONSOLE: spin::Mutex<Option<(crate::corelog::Sink<'static>, (u64, usize))>> =
    spin::Mutex::new(None);
/// Whether console lines go on that ring: read without the lock for every
/// line and every `IOREQ_WAIT` of the UART service.
static CONSOLE_LIVE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Prints one console line of the core's (its log, guests' `LOG_WRITE`s
/// and log frames): on the console ring while the UART service takes
/// lines from it, else straight to COM1.
pub fn console_line(args: fmt::Arguments<'_>) {
    let line = crate::corelog::Line::format(args);
    if !on_console_ring(&line) {
        print_direct(line.bytes());
    }
}

/// Puts `line` on the console ring if the UART service takes lines from
/// it; false when the caller must print it.
fn on_console_ring(line: &crate::corelog::Line) -> bool {
    use core::sync::atomic::Ordering::Relaxed;
    if CONSOLE_LIVE.load(Relaxed) {
        // Never waits: a line logged while the ring is being drained (a
        // fault in the middle, say) goes straight out.
        if let Some(mut guard) = CONSOLE.try_lock() {
            if let Some((sink, _)) = guard.as_mut() {
                if sink.put(line.bytes()) {
                    return true;
                }
                CONSOLE_LIVE.store(sink.live(), Relaxed);
            }
        }
    }
    false
}

/// Domains (by table slot) told once that they wait for the port.
static HELD: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The domain (table slot + 1; 0: none) that the port share blocked in
/// the exit being handled (a hypercall or a COM1 write;
/// `vcpu::Platform::console_hold`). A static, not a field of the exit
/// handlers' view: that is set up at every switch.
static HOLDING: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// The port time domains' lines printed by the core may still take
/// (`corelog::PortShare`).
static PORT_TIME: spin::Mutex<crate::corelog::PortShare> =
    spin::Mutex::new(crate::corelog::PortShare::new());

/// Writes a line to COM1, waiting for the port.
fn print_direct(bytes: &[u8]) {
    for &b in bytes {
        if b == b'\n' {
            arch::serial::write_byte(b'\r');
        }
        arch::serial::write_byte(b);
    }
    arch::serial::write_byte(b'\r');
    arch::serial::write_byte(b'\n');
}

/// The UART service waits for requests: it takes console lines from now
/// on (unless it corrupted the ring before).
#[cold]
fn console_start() {
    if let Some((sink, _)) = CONSOLE.lock().as_mut() {
        sink.set_live(true);
        CONSOLE_LIVE.store(sink.live(), core::sync::atomic::Ordering::Relaxed);
    }
}

/// The UART service stopped (or the run ended): the lines it left on the
/// ring are printed here, in order, and the core prints directly again.
pub fn console_stop() {
    CONSOLE_LIVE.store(false, core::sync::atomic::Ordering::Relaxed);
    let Some(mut guard) = CONSOLE.try_lock() else {
        return;
    };
    let Some((sink, (addr, len))) = guard.as_mut() else {
        return;
    };
    sink.set_live(false);
    // SAFETY: the ring's pages are core frames shared with the stopped
    // service alone; nobody else consumes from them while the core runs,
    // and the ring's code reads them defensively (the service may have
    // written anything there).
    if let Ok(ring) = unsafe { shm_ring::Ring::attach_raw(*addr as *mut u8, *len) } {
        crate::corelog::drain(&ring.into_consumer(), &mut print_direct);
    }
}

/// The ioreq channel of `device`'s service.
fn ioreq(device: Device) -> &'static spin::Mutex<Option<IoReq>> {
    &IOREQ[device as usize]
}

/// The core's end of the ioreq channel.
struct IoReq {
    end: shm_ring::End<'static>,
    next_seq: u32,
    /// The channel's pages (host-physical, length), freed at teardown.
    pages: (u64, u64),
    /// Each domain's posted writes to the device (by table slot): an `OUT` is
    /// accepted at once and kept here until the domain reads a register or
    /// leaves the CPU, when they go to the service in one request.
    posted: [hypercall_abi::ioreq::Posted; crate::system::MAX_DOMAINS],
}

impl IoReq {
    /// Hands the writes posted by the domain in table slot `guest` to the
    /// service (one request without a read). `false` when the request
    /// ring has no room: they stay, to be handed over later.
    fn flush(&mut self, guest: u8) -> bool {
        use hypercall_abi::ioreq::{Request, VERSION};
        let Some(posted) = self.posted.get_mut(guest as usize) else {
            return true;
        };
        if posted.is_empty() {
            return true;
        }
        let request = Request::Accesses {
            seq: 0,
            guest,
            writes: *posted,
            read: None,
        };
        if self.end.tx().push_versioned(VERSION, &request).is_err() {
            return false;
        }
        posted.clear();
        true
    }
}

// SAFETY: the ring's memory is core-owned pages shared only with the UART
// service; the core is single-threaded and takes the mutex to use it.
unsafe impl Send for IoReq {}
static SYSTEM: spin::Mutex<System> = spin::Mutex::new(System::new());
/// The vCPU of each domain, by domain table index (kept apart from the
/// objects so that exit handlers can reach the objects while a vCPU runs).
static VCPUS: spin::Mutex<[Option<(ObjectRef, vcpu::Vcpu)>; crate::system::MAX_DOMAINS]> =
    spin::Mutex::new([const { None }; crate::system::MAX_DOMAINS]);

/// What `DOMAIN_RESTART` reloads a restartable boot domain from: its image
/// (a boot module, reserved for the core's life) and the start-info page
/// the boot wrote for it.
static RESTART: spin::Mutex<[Option<RestartRecord>; crate::system::MAX_DOMAINS]> =
    spin::Mutex::new([None; crate::system::MAX_DOMAINS]);

/// A restartable domain's boot image and start-info page.
type RestartRecord = (&'static [u8], StartInfo);

/// Builds the domains of `manifest` from the boot `modules` and runs them
/// until all have stopped. `modules` finds a module's bytes by name.
pub fn run_system<'m>(
    vmx: &Vmx,
    frames: &mut Frames,
    selectors: &Selectors,
    manifest: Manifest,
    module: impl Fn(&str) -> Option<&'m [u8]>,
    slice: u32,
    budget: Option<u64>,
) -> Result<(), BootError> {
    let manifest: &'static Manifest = MANIFEST.call_once(|| manifest);
    let pool_base = frames
        .allocate(POOL_FRAMES as u64 * FRAME, FRAME)
        .ok_or(BootError::NoPool)?;
    let mut pool = Pool::new(pool_base, POOL_FRAMES);
    log::info!(
        "core pool: {} KiB at {:#x} for VMCS regions, I/O bitmaps and EPT tables",
        POOL_FRAMES as u64 * FRAME / 1024,
        pool.base()
    );
    let mut sys = SYSTEM.lock();
    let mut vcpus = VCPUS.lock();
    let mut hw = Hw {
        vmx,
        pool: PoolFrames(&mut pool),
        frames,
    };
    let host = vmm::host_state(selectors);
    let mut refs: [Option<ObjectRef>; manifest::MAX_DOMAINS] = [None; manifest::MAX_DOMAINS];
    let mut infos: [Option<(u64, StartInfo)>; manifest::MAX_DOMAINS] =
        [None; manifest::MAX_DOMAINS];

    for (i, spec) in manifest.domains.iter().enumerate() {
        let name: &'static str = spec.name.as_str();
        let image = module(spec.image.as_str())
            .ok_or(BootError::Domain(name, "no boot module with its image"))?;
        let size = (spec.memory_kib as u64 * 1024).next_multiple_of(PAGE);
        let loaded = elf_loader::inspect(image, 0, size).map_err(|e| BootError::Image(name, e))?;
        if loaded.lowest < IMAGE_FLOOR {
            return Err(BootError::Domain(
                name,
                "image starts below 1 MiB, where the core keeps the domain's tables",
            ));
        }
        let mem = hw
            .frames
            .allocate(size, 2 << 20)
            .ok_or(BootError::Domain(name, "not enough free memory"))?;
        // SAFETY: `mem` is `size` bytes just allocated for this domain.
        let bytes = unsafe { arch::phys_mut(mem, size as usize) };
        bytes.fill(0);
        vmm::write_guest_tables(bytes);
        let loaded = elf_loader::load(image, bytes, 0).map_err(|e| BootError::Image(name, e))?;

        let (Some(vmcs), Some(io_a), Some(io_b)) = (
            hw.pool.0.allocate(),
            hw.pool.0.allocate(),
            hw.pool.0.allocate(),
        ) else {
            return Err(BootError::Domain(name, "core pool exhausted"));
        };
        for page in [io_a, io_b] {
            // SAFETY: fresh pool frames for this domain's I/O bitmaps. All
            // ones: every port exits unless a capability opens it below.
            unsafe { arch::phys_mut(page, FRAME as usize) }.fill(0xff);
        }
        let vpid = i as u16 + 1;
        let dhw = DomainHw {
            vmcs,
            io_bitmaps: (io_a, io_b),
            vpid,
        };
        let (d, memory_slot) = sys
            .create_domain(&mut hw, name, spec.priority, (mem, size), dhw)
            .map_err(|s| BootError::Capability(name, s))?;
        refs[i] = Some(d);
        let mut info = start_info(name, size, spec.priority);
        add_slot(
            &mut info,
            "memory",
            ObjectType::MemRegion,
            Rights::all() - Rights::CONTROL,
            memory_slot,
            0,
            size,
        );
        infos[i] = Some((mem, info));

        // SAFETY: VMX root operation; `vmcs` is this domain's fresh pool frame.
        unsafe { vmm::load_fresh_vmcs(vmx, vmcs) }
            .map_err(|(what, _)| BootError::Domain(name, what))?;
        let eptp = sys
            .domains
            .get(d)
            .and_then(|dom| dom.ept.as_ref())
            .map(|e| e.eptp(false))
            .unwrap_or(0);
        let (cr3, gdt, gdt_limit) = vmm::GUEST_TABLES;
        let setup = GuestSetup {
            rip: loaded.entry,
            rsp: IMAGE_FLOOR,
            cr3,
            gdtr: (gdt, gdt_limit),
            eptp,
            vpid,
            io_bitmaps: Some((io_a, io_b)),
            preemption_timer: Some(slice),
        };
        let mut vmcs_access = HardwareVmcs(());
        vcpu::setup_vmcs(&mut vmcs_access, &vmx.caps, &host, &setup)
            .map_err(|_| BootError::Domain(name, "VMCS setup failed"))?;
        let mut v = vcpu::Vcpu::new(name);
        v.regs.rdi = START_INFO_GPA;
        v.slice = slice;
        v.slice_budget = budget;
        vcpus[d.index as usize] = Some((d, v));
        log::info!(
            "domain {name}: {} KiB at {mem:#x}, priority {}, image {:?} entry {:#x} ({} segments)",
            size / 1024,
            spec.priority,
            spec.image.as_str(),
            loaded.entry,
            loaded.segments
        );
    }
    let index_of = |n: &str| manifest.domains.iter().position(|d| d.name.as_str() == n);

    for (i, spec) in manifest.domains.iter().enumerate() {
        let name: &'static str = spec.name.as_str();
        let Some(d) = refs[i] else { continue };
        for target in spec.control.iter() {
            let Some((j, t)) = index_of(target.as_str()).and_then(|j| Some((j, refs[j]?))) else {
                return Err(BootError::Domain(name, "controls an unknown domain"));
            };
            let slot = sys
                .grant_domain(d, t, Rights::CONTROL | Rights::READ)
                .map_err(|s| BootError::Capability(name, s))?;
            if let Some((_, info)) = infos[i].as_mut() {
                add_slot(
                    info,
                    target.as_str(),
                    ObjectType::Domain,
                    Rights::CONTROL | Rights::READ,
                    slot,
                    role_of(&manifest.domains[j]),
                    0,
                );
            }
        }
        if spec.spare_kib > 0 {
            let len = spec.spare_kib as u64 * 1024;
            let align = if len >= 2 << 20 { 2 << 20 } else { FRAME };
            let spare = hw.frames.allocate(len, align).ok_or(BootError::Domain(
                name,
                "not enough free memory for spare_kib",
            ))?;
            // SAFETY: fresh frames for this domain's spare region.
            unsafe { arch::phys_mut(spare, len as usize) }.fill(0);
            let slot = sys
                .grant_region(d, (spare, len))
                .map_err(|s| BootError::Capability(name, s))?;
            if let Some((_, info)) = infos[i].as_mut() {
                add_slot(
                    info,
                    "spare",
                    ObjectType::MemRegion,
                    Rights::all(),
                    slot,
                    0,
                    len,
                );
            }
        }
        for range in spec.io_ports.iter() {
            let slot = sys
                .grant_ports(d, range.first, range.last)
                .map_err(|s| BootError::Capability(name, s))?;
            if let Some(dom) = sys.domains.get(d) {
                open_ports(dom.hw.io_bitmaps, range.first, range.last);
            }
            if let Some((_, info)) = infos[i].as_mut() {
                add_slot(
                    info,
                    "ports",
                    ObjectType::IoPorts,
                    Rights::READ | Rights::WRITE,
                    slot,
                    range.first as u64,
                    (range.last - range.first) as u64 + 1,
                );
            }
        }
    }

    for spec in manifest.channels.iter() {
        let name: &'static str = spec.name.as_str();
        let (Some(ia), Some(ib)) = (index_of(spec.a.as_str()), index_of(spec.b.as_str())) else {
            return Err(BootError::Channel(name, "names an unknown domain"));
        };
        let (Some(a), Some(b)) = (refs[ia], refs[ib]) else {
            return Err(BootError::Channel(name, "an end was not built"));
        };
        let len = spec.pages as u64 * PAGE;
        let pages = hw
            .frames
            .allocate(len, FRAME)
            .ok_or(BootError::Channel(name, "not enough free memory"))?;
        // SAFETY: fresh frames for the channel's shared pages.
        unsafe { arch::phys_mut(pages, len as usize) }.fill(0);
        let (_, sa, sb) = sys
            .create_channel(&mut hw, a, b, (pages, len), spec.a_gpa, spec.b_gpa)
            .map_err(|_| {
                BootError::Channel(
                    name,
                    "cannot be mapped at its addresses (below 1 GiB, not overlapping)",
                )
            })?;
        let rights = Rights::READ | Rights::WRITE | Rights::GRANT;
        if let Some((_, info)) = infos[ia].as_mut() {
            add_slot(info, name, ObjectType::Channel, rights, sa, spec.a_gpa, len);
        }
        if let Some((_, info)) = infos[ib].as_mut() {
            add_slot(info, name, ObjectType::Channel, rights, sb, spec.b_gpa, len);
        }
        log::info!(
            "channel {name}: {} page(s) between {} (at {:#x}) and {} (at {:#x})",
            spec.pages,
            spec.a.as_str(),
            spec.a_gpa,
            spec.b.as_str(),
            spec.b_gpa
        );
    }

    // The UART service: the domain given all of COM1's ports.
    if let Some(i) = manifest.domains.iter().position(serves_com1) {
        let name = manifest.domains[i].name.as_str();
        let d = refs[i].ok_or(BootError::Domain(name, "was not built"))?;
        serve(&mut sys, &mut hw, Device::Uart, d, name)?;
        sys.uart = Some(d);
        log::info!(
            "domain {name} serves the virtual UARTs (ports {:#x}-{:#x}) over the ioreq channel at {:#x}",
            COM1.0,
            COM1.1,
            hypercall_abi::ioreq::GPA
        );
    }

    // The platform service: PC guests' legacy devices.
    if let Some(i) = manifest.domains.iter().position(|d| d.platform) {
        let name = manifest.domains[i].name.as_str();
        let d = refs[i].ok_or(BootError::Domain(name, "was not built"))?;
        serve(&mut sys, &mut hw, Device::Platform, d, name)?;
        sys.platform = Some(d);
        log::info!(
            "domain {name} serves PC guests' legacy devices (PIC, PIT, ...) over its ioreq channel at {:#x}",
            hypercall_abi::ioreq::GPA
        );
    }

    // The launcher: a read-only capability on every guest's image.
    if let Some(i) = manifest.domains.iter().position(|d| d.launcher) {
        let name = manifest.domains[i].name.as_str();
        let d = refs[i].ok_or(BootError::Domain(name, "was not built"))?;
        for guest in manifest.guests.iter() {
            let gname: &'static str = guest.name.as_str();
            let image = module(guest.image.as_str()).ok_or(BootError::Domain(
                gname,
                "no boot module with the guest's image",
            ))?;
            let start = image.as_ptr() as u64;
            if !start.is_multiple_of(FRAME) || image.is_empty() {
                return Err(BootError::Domain(
                    gname,
                    "the guest image module is not page-aligned",
                ));
            }
            let len = (image.len() as u64).next_multiple_of(FRAME);
            let slot = sys
                .grant_image(d, (start, len), gname)
                .map_err(|s| BootError::Capability(name, s))?;
            if let Some((_, info)) = infos[i].as_mut() {
                let mut label = [0u8; 24];
                let text = b"guest:";
                label[..text.len()].copy_from_slice(text);
                let n = gname.len().min(label.len() - text.len());
                label[text.len()..text.len() + n].copy_from_slice(&gname.as_bytes()[..n]);
                let label = core::str::from_utf8(&label[..text.len() + n]).unwrap_or("guest:");
                add_slot(
                    info,
                    label,
                    ObjectType::MemRegion,
                    Rights::READ | Rights::MAP,
                    slot,
                    guest.memory_kib as u64 * 1024,
                    image.len() as u64,
                );
                let last = info.slot_count as usize - 1;
                if let Some(s) = info.slots.get_mut(last) {
                    s.priority = guest.priority;
                }
            }
            log::info!(
                "guest {gname}: image {:?} ({} bytes) handed to {name}",
                guest.image.as_str(),
                image.len()
            );
        }
    }

    // The memory broker: one region over the largest run of free memory.
    if let Some(i) = manifest.domains.iter().position(|d| d.free_memory) {
        let name = manifest.domains[i].name.as_str();
        let d = refs[i].ok_or(BootError::Domain(name, "was not built"))?;
        // The largest free run, from its first 2 MiB boundary: the broker
        // grants from the front of its pieces, so guests asking for 2 MiB
        // multiples get 2 MiB-aligned memory, mapped with large pages.
        const LARGE: u64 = 2 << 20;
        let len = hw
            .frames
            .runs()
            .map(|r| {
                let start = r.start.next_multiple_of(LARGE);
                r.end.saturating_sub(start) / FRAME * FRAME
            })
            .max()
            .unwrap_or(0);
        let free = hw
            .frames
            .allocate(len, LARGE)
            .filter(|_| len > 0)
            .ok_or(BootError::Domain(
                name,
                "no free memory left for free_memory",
            ))?;
        let slot = sys
            .grant_memory(d, (free, len), false)
            .map_err(|s| BootError::Capability(name, s))?;
        if let Some((_, info)) = infos[i].as_mut() {
            add_slot(
                info,
                "free",
                ObjectType::MemRegion,
                Rights::all(),
                slot,
                0,
                len,
            );
        }
        log::info!(
            "domain {name} holds the free memory: {} KiB at {free:#x}",
            len / 1024
        );
    }

    for (mem, info) in infos.iter().flatten() {
        // SAFETY: the start-info page lies inside the domain's memory (below
        // IMAGE_FLOOR, which the image was checked not to use).
        let page =
            unsafe { arch::phys_mut(mem + START_INFO_GPA, core::mem::size_of::<StartInfo>()) };
        page.copy_from_slice(start_info_bytes(info));
    }
    // Restartable domains: remember their mappings, image and start info.
    for (i, spec) in manifest.domains.iter().enumerate() {
        let (true, Some(d), Some((_, info))) = (spec.restart, refs[i], infos[i].as_ref()) else {
            continue;
        };
        let name = spec.name.as_str();
        let image = module(spec.image.as_str())
            .ok_or(BootError::Domain(name, "no boot module with its image"))?;
        // SAFETY: boot modules stay reserved and unchanged for the core's
        // whole life; the core only reads them.
        let image: &'static [u8] = unsafe { arch::phys(image.as_ptr() as u64, image.len()) };
        if !sys.mark_restartable(d) {
            return Err(BootError::Domain(
                name,
                "too many mappings to be restartable",
            ));
        }
        RESTART.lock()[d.index as usize] = Some((image, *info));
    }
    let domains = manifest.domains.len();
    log::info!(
        "{domains} domain(s) built; core pool: {} of {} frames used ({} per domain on average: VMCS, 2 I/O bitmap pages, EPT tables); object tables: {} domains, {} regions, {} channels, {} port ranges",
        hw.pool.0.used(),
        hw.pool.0.capacity(),
        hw.pool.0.used() / domains.max(1),
        crate::system::MAX_DOMAINS,
        crate::system::MAX_REGIONS,
        crate::system::MAX_CHANNELS,
        crate::system::MAX_PORTS,
    );

    crate::boot_report_done();
    schedule(&mut sys, &mut vcpus, &mut hw, &host, slice, budget);
    // Nothing runs any more: the UART service's unprinted console lines
    // come out here, and the summary after them.
    console_stop();
    log::info!(
        "summary: {domains} domain(s); {} hypercall(s) refused; {} domain(s) stopped for a violation",
        sys.stats.refused,
        sys.stats.violations
    );
    // Tear everything down: every frame goes back where it came from.
    let mut all = [None; crate::system::MAX_DOMAINS];
    for (i, (d, _)) in sys.domains.iter().enumerate() {
        all[i] = Some(d);
    }
    for d in all.into_iter().flatten() {
        sys.destroy_domain(&mut hw, d);
    }
    for device in Device::ALL {
        if let Some(io) = ioreq(device).lock().take() {
            let _ = hw.frames.free(io.pages.0, io.pages.1);
        }
    }
    let pool_left = hw.pool.0.used();
    if pool_left != 0 {
        log::warn!("core pool: {pool_left} frame(s) still in use after every domain was destroyed");
    }
    let _ = hw.frames.free(pool_base, POOL_FRAMES as u64 * FRAME);
    Ok(())
}

/// COM1's first and last port: the virtual UART's range.
const COM1: (u16, u16) = (
    hypercall_abi::ioreq::PORT_BASE,
    hypercall_abi::ioreq::PORT_BASE + hypercall_abi::ioreq::PORTS - 1,
);

/// Whether the manifest gives domain `d` all of COM1's ports: the UART
/// service.
fn serves_com1(d: &manifest::DomainSpec) -> bool {
    d.io_ports
        .iter()
        .any(|r| r.first <= COM1.0 && r.last >= COM1.1)
}

/// What domain `d` serves the others (`hypercall_abi::role` bits), for
/// the start info of a domain that controls it.
fn role_of(d: &manifest::DomainSpec) -> u64 {
    use hypercall_abi::role;
    let mut r = 0;
    if serves_com1(d) {
        r |= role::CONSOLE;
    }
    if d.free_memory {
        r |= role::MEMORY;
    }
    if d.platform {
        r |= role::PLATFORM;
    }
    r
}

/// A start-info page with no named capabilities yet.
fn start_info(name: &str, memory_bytes: u64, priority: u8) -> StartInfo {
    let n = name.len().min(16);
    let mut info = StartInfo {
        magic: START_MAGIC,
        memory_bytes,
        name: [0; 16],
        name_len: n as u8,
        slot_count: 0,
        priority,
        reserved: [0; 5],
        slots: [StartSlot::default(); START_SLOTS],
    };
    info.name[..n].copy_from_slice(&name.as_bytes()[..n]);
    info
}

const _: () = assert!(
    core::mem::size_of::<StartInfo>() == 40 + START_SLOTS * core::mem::size_of::<StartSlot>()
        && core::mem::size_of::<StartSlot>() == 48
);

/// The bytes of a start-info page, as the domain reads them.
fn start_info_bytes(info: &StartInfo) -> &[u8] {
    // SAFETY: `StartInfo` is `repr(C)` plain integers and byte arrays with
    // no padding (checked by the assertion below), so every byte is
    // initialised; viewing it as bytes for the borrow's lifetime is sound.
    unsafe {
        core::slice::from_raw_parts(
            info as *const StartInfo as *const u8,
            core::mem::size_of::<StartInfo>(),
        )
    }
}

#[allow(clippy::too_many_arguments)]
fn add_slot(
    info: &mut StartInfo,
    name: &str,
    kind: ObjectType,
    rights: Rights,
    slot: u16,
    gpa: u64,
    size: u64,
) {
    let n = info.slot_count as usize;
    if n >= START_SLOTS {
        log::warn!("start info: more than {START_SLOTS} named capabilities; {name:?} left out");
        return;
    }
    let s = &mut info.slots[n];
    let len = name.len().min(s.name.len());
    s.name[..len].copy_from_slice(&name.as_bytes()[..len]);
    s.name_len = len as u8;
    s.kind = kind as u8;
    s.rights = rights.bits();
    s.slot = slot as u32;
    s.gpa = gpa;
    s.size = size;
    info.slot_count += 1;
}

/// Clears the bits of `first..=last` in the I/O bitmaps (A: 0–0x7fff,
/// B: 0x8000–0xffff), letting the domain use those ports directly.
fn open_ports(bitmaps: (u64, u64), first: u16, last: u16) {
    for port in first..=last {
        let (page, bit) = if port < 0x8000 {
            (bitmaps.0, port as usize)
        } else {
            (bitmaps.1, port as usize - 0x8000)
        };
        // SAFETY: the bitmap pages are this domain's, from the pool.
        let bytes = unsafe { arch::phys_mut(page, FRAME as usize) };
        bytes[bit / 8] &= !(1 << (bit % 8));
    }
}

fn is_violation(reason: &StopReason) -> bool {
    !matches!(
        reason,
        StopReason::Exited(_) | StopReason::BudgetExhausted { .. } | StopReason::Halted
    )
}

/// Exit handlers' view of the machine while domain `caller` runs: its
/// EPT for guest memory, and the objects for the core's hypercalls.
struct SysPlatform<'s, 'h, 'a> {
    sys: &'s mut System,
    hw: &'h mut Hw<'a>,
    caller: ObjectRef,
    /// The scheduler's vCPU table, for DOMAIN_PEEK (reads) and
    /// DOMAIN_RESTART (drops the restarted domain's vCPU). Only entries
    /// other than the caller's are touched through it (the caller's is
    /// borrowed mutably by the run loop meanwhile).
    vcpus: *mut Option<(ObjectRef, vcpu::Vcpu)>,
}

/// One `DOMAIN_PEEK` item of a vCPU whose VMCS is current: a register
/// (general ones from `regs`, the rest from the VMCS), an exit count or
/// eight bytes of the recent log.
fn peek_item(v: &vcpu::Vcpu, item: u64) -> Option<u64> {
    use hypercall_abi::peek;
    let (regs, stats) = (&v.regs, &v.stats);
    if let Some(n) = item.checked_sub(peek::LOG) {
        let log = v.recent.bytes();
        let Some(k) = n.checked_sub(1) else {
            return Some(log.len() as u64);
        };
        let mut word = [0u8; 8];
        let from = (k as usize).saturating_mul(8).min(log.len());
        let to = from.saturating_add(8).min(log.len());
        word[..to - from].copy_from_slice(&log[from..to]);
        return Some(u64::from_le_bytes(word));
    }
    let vmcs = HardwareVmcs(());
    let field = |f| vmcs.read(f).ok();
    Some(match item {
        0 => regs.rax,
        1 => regs.rbx,
        2 => regs.rcx,
        3 => regs.rdx,
        4 => regs.rsi,
        5 => regs.rdi,
        6 => regs.rbp,
        7 => field(fields::GUEST_RSP)?,
        8 => regs.r8,
        9 => regs.r9,
        10 => regs.r10,
        11 => regs.r11,
        12 => regs.r12,
        13 => regs.r13,
        14 => regs.r14,
        15 => regs.r15,
        16 => field(fields::GUEST_RIP)?,
        17 => field(fields::GUEST_RFLAGS)?,
        18 => field(fields::GUEST_CR0)?,
        19 => field(fields::GUEST_CR3)?,
        20 => field(fields::GUEST_CR4)?,
        _ => stats.count_basic(u16::try_from(item.checked_sub(peek::EXITS)?).ok()?),
    })
}

impl SysPlatform<'_, '_, '_> {
    /// `DOMAIN_RESTART`: the objects rebuild the domain's address space
    /// (`System::revive`); here its memory is zeroed and loaded afresh from
    /// its boot image with its boot start-info page, and it gets a fresh
    /// vCPU at the image's entry point before it next runs.
    #[cold]
    #[inline(never)]
    fn restart(&mut self, slot: u64) -> vcpu::CoreCall {
        use hypercall_abi::Status;
        let answer = (|| {
            // `revive` checks the capability and refuses the caller itself
            // and every domain not marked restartable at boot, which is
            // exactly those with a record here.
            let t = self.sys.revive(self.hw, self.caller, slot)?;
            let Some((image, info)) = RESTART.lock().get(t.index as usize).copied().flatten()
            else {
                self.sys.stop_domain(self.hw, t);
                return Err(Status::Denied);
            };
            // First of all, drop its old vCPU (whose VMCS names the EPT
            // just freed): the scheduler builds a fresh one before the
            // domain next runs, whatever happens below.
            // SAFETY: as in `peek`: `t.index` is below MAX_DOMAINS (it has
            // a RESTART record) and `t` is not the caller (`revive` refuses
            // it), so this is another domain's entry of the scheduler's
            // table, which nothing else touches during this hypercall.
            unsafe { *self.vcpus.add(t.index as usize) = None };
            let reload = (|| {
                let region = self
                    .sys
                    .domains
                    .get(t)
                    .and_then(|d| d.memory)
                    .and_then(|r| self.sys.regions.get(r))
                    .copied()
                    .ok_or(Status::StaleCapability)?;
                // SAFETY: the region is this domain's own memory, mapped
                // only into it, and it is not running (the caller is).
                let bytes = unsafe { arch::phys_mut(region.hpa, region.len as usize) };
                bytes.fill(0);
                vmm::write_guest_tables(bytes);
                // Checked at boot; fails only if the module was corrupted.
                let loaded =
                    elf_loader::load(image, bytes, 0).map_err(|_| Status::InvalidArgument)?;
                let at = START_INFO_GPA as usize;
                let src = start_info_bytes(&info);
                bytes[at..at + src.len()].copy_from_slice(src);
                let dom = self.sys.domains.get_mut(t).ok_or(Status::StaleCapability)?;
                dom.initial = Some([loaded.entry, IMAGE_FLOOR, START_INFO_GPA]);
                Ok(())
            })();
            if let Err(s) = reload {
                self.sys.stop_domain(self.hw, t);
                return Err(s);
            }
            if let Some(device) = self.sys.device_of(t) {
                // A service may have left the request ring's header corrupt
                // (a consumer index no producer could have let it reach):
                // the core's half then refuses every push for good, and
                // the restarted service would never be sent a request (the
                // e2e test `uart-ring-reset` saw the guest's output stay
                // off the service). The service is stopped now and no read
                // waits on it (those were answered when it stopped), so the
                // core, which owns the ring, starts it over for the new run.
                if let Some(io) = ioreq(device).lock().as_mut() {
                    if io.end.tx().free_space().is_err() {
                        io.end.tx().reset();
                        log::warn!(
                            "{device:?} service: its request ring was corrupt; started it over for the restart"
                        );
                    }
                }
                reattach(self.sys, device);
            }
            let by = self.sys.domains.get(self.caller).map_or("?", |d| d.name);
            let dom = self.sys.domains.get(t).ok_or(Status::StaleCapability)?;
            log::info!(
                "domain {}: restarted by {by} (restart {}): fresh memory from its image, same capabilities",
                dom.name,
                dom.restarts
            );
            Ok(())
        })();
        match answer {
            Ok(()) => {
                // The restarted domain may outrank the caller.
                vcpu::CoreCall::Switch(Status::Ok, None)
            }
            Err(s) => {
                self.refuse(hypercall_abi::Call::DomainRestart, s);
                vcpu::CoreCall::Return(s, None)
            }
        }
    }

    /// `IRQ_LINE`: a device service drives a line of a PC guest's PIC,
    /// which the platform service models: passed on as a request.
    fn irq_line(&mut self, guest: u64, line: u64, level: u64) -> vcpu::CoreCall {
        use hypercall_abi::ioreq::{Request, VERSION};
        use hypercall_abi::Status;
        let call = hypercall_abi::Call::IrqLine;
        if self.sys.device_of(self.caller).is_none() {
            self.refuse(call, Status::Denied);
            return vcpu::CoreCall::Return(Status::Denied, None);
        }
        let (Ok(line @ 0..=15), Ok(level @ 0..=1)) = (u8::try_from(line), u8::try_from(level))
        else {
            self.refuse(call, Status::InvalidArgument);
            return vcpu::CoreCall::Return(Status::InvalidArgument, None);
        };
        let pc_guest = usize::try_from(guest)
            .ok()
            .and_then(|i| self.sys.domains.at(i))
            .is_some_and(|dom| dom.pc);
        if !pc_guest || self.sys.platform.is_none() {
            // No PIC: the line goes nowhere.
            return vcpu::CoreCall::Return(Status::Ok, None);
        }
        let request = Request::Line {
            guest: guest as u8,
            line,
            high: level == 1,
        };
        let pushed = ioreq(Device::Platform)
            .lock()
            .as_mut()
            .is_some_and(|io| io.end.tx().push_versioned(VERSION, &request).is_ok());
        self.sys.kick_service(Device::Platform);
        if !pushed {
            return vcpu::CoreCall::Return(Status::OutOfResources, None);
        }
        if self.sys.should_switch(self.caller) {
            vcpu::CoreCall::Switch(Status::Ok, None)
        } else {
            vcpu::CoreCall::Return(Status::Ok, None)
        }
    }

    /// `IRQ_RAISE`: the platform service queues `vector` for PC guest
    /// `guest` (a domain-table slot).
    fn irq_raise(&mut self, guest: u64, vector: u64) -> vcpu::CoreCall {
        use hypercall_abi::Status;
        let call = hypercall_abi::Call::IrqRaise;
        if self.sys.platform != Some(self.caller) {
            self.refuse(call, Status::Denied);
            return vcpu::CoreCall::Return(Status::Denied, None);
        }
        let target = usize::try_from(guest)
            .ok()
            .filter(|&i| i < crate::system::MAX_DOMAINS && i != self.caller.index as usize)
            .filter(|&i| self.sys.domains.at(i).is_some_and(|dom| dom.pc))
            .and_then(|i| self.sys.domains.ref_at(i));
        let (Some(t), Ok(vector @ 0x20..=0xff)) = (target, u8::try_from(vector)) else {
            self.refuse(call, Status::InvalidArgument);
            return vcpu::CoreCall::Return(Status::InvalidArgument, None);
        };
        // SAFETY: as in `peek`: the table has MAX_DOMAINS entries and `t`
        // is not the caller, whose entry is the one borrowed while it runs.
        let entry = unsafe { &mut *self.vcpus.add(t.index as usize) };
        match entry.as_mut().filter(|(owner, _)| *owner == t) {
            Some((_, v)) => {
                if !v.interrupts.push(vector) {
                    return vcpu::CoreCall::Return(Status::OutOfResources, None);
                }
            }
            // Not run yet: it gets its vCPU (and interrupts) when it starts.
            None => return vcpu::CoreCall::Return(Status::InvalidArgument, None),
        }
        self.sys.irq_wake(t);
        if self.sys.should_switch(self.caller) {
            vcpu::CoreCall::Switch(Status::Ok, None)
        } else {
            vcpu::CoreCall::Return(Status::Ok, None)
        }
    }

    /// `DOMAIN_PEEK` (of another domain: the capability check refuses the
    /// caller itself): its saved registers and exit counts, and its VMCS,
    /// made current for the read and the caller's made current again.
    #[cold]
    #[inline(never)]
    fn peek(&mut self, slot: u64, item: u64) -> vcpu::CoreCall {
        use hypercall_abi::Status;
        let answer = self.sys.peek_target(self.caller, slot, item).and_then(|t| {
            // `peek_target` refuses the caller itself.
            if t == self.caller || t.index as usize >= crate::system::MAX_DOMAINS {
                return Err(Status::Denied);
            }
            // SAFETY: `vcpus` points to the scheduler's table of
            // MAX_DOMAINS entries, derived from its borrow for this run loop
            // iteration; `t.index` is in range and not the caller's entry,
            // the only one borrowed mutably while the caller runs.
            let entry = unsafe { &*self.vcpus.add(t.index as usize) };
            let Some((_, other)) = entry.as_ref().filter(|(owner, _)| *owner == t) else {
                // A domain created by a hypercall gets its vCPU when it
                // first runs.
                return Err(Status::Denied);
            };
            let vmcs = self
                .sys
                .domains
                .get(t)
                .ok_or(Status::StaleCapability)?
                .hw
                .vmcs;
            let own_vmcs = self
                .sys
                .domains
                .get(self.caller)
                .ok_or(Status::StaleCapability)?
                .hw
                .vmcs;
            // SAFETY: VMX root operation; `vmcs` is that live domain's VMCS,
            // set up when its vCPU was. The caller's VMCS is made current
            // again before its hypercall completes; VMPTRLD keeps each
            // VMCS's launch state.
            unsafe {
                if vmx::arch::vmptrld(vmcs).is_err() {
                    let _ = vmx::arch::vmptrld(own_vmcs);
                    return Err(Status::Denied);
                }
                let value = peek_item(other, item);
                if vmx::arch::vmptrld(own_vmcs).is_err() {
                    // The caller cannot resume on another domain's VMCS.
                    return Ok(None);
                }
                value.map(Some).ok_or(Status::InvalidArgument)
            }
        });
        match answer {
            Ok(Some(v)) => vcpu::CoreCall::Return(Status::Ok, Some(v)),
            Ok(None) => {
                log::error!("VMPTRLD of the caller's VMCS failed after DOMAIN_PEEK; stopping it");
                self.sys.stop_domain(self.hw, self.caller);
                vcpu::CoreCall::Gone
            }
            Err(s) => {
                self.refuse(hypercall_abi::Call::DomainPeek, s);
                vcpu::CoreCall::Return(s, None)
            }
        }
    }

    /// Forwards a domain's one-byte access to register `offset` of
    /// `device` to its service (see `vcpu::Platform::uart_access`).
    fn forward(&mut self, device: Device, offset: u8, write: bool, value: u8) -> vcpu::UartAnswer {
        use hypercall_abi::ioreq::{Request, VERSION};
        let Some(service) = self.sys.service(device) else {
            return vcpu::UartAnswer::Emulate;
        };
        let serving = self
            .sys
            .domains
            .get(service)
            .is_some_and(|d| d.state != crate::system::RunState::Stopped);
        if service == self.caller || !serving {
            // The service itself never exits on its own ports; with the
            // service stopped or gone, the core's own minimal emulation
            // takes over (requests would only pile up).
            return vcpu::UartAnswer::Emulate;
        }
        let mut guard = ioreq(device).lock();
        let Some(io) = guard.as_mut() else {
            return vcpu::UartAnswer::Emulate;
        };
        let guest = self.caller.index as u8;
        let Some(dom) = self.sys.domains.get_mut(self.caller) else {
            return vcpu::UartAnswer::Emulate;
        };
        let attach = &mut dom.attach[device.index()];
        if *attach != Attach::Done {
            let fresh = *attach == Attach::New;
            if !send_attach(io, guest, dom.name, fresh, self.caller, dom.restarts) {
                self.sys.kick_service(device);
                return vcpu::UartAnswer::Busy;
            }
            *attach = Attach::Done;
        }
        let slot = guest as usize % crate::system::MAX_DOMAINS;
        if write {
            // Posted: the service sees it with the domain's next read, or
            // when the domain leaves the CPU (no request, no switch now).
            if io.posted[slot].push(offset, value) {
                POSTED.fetch_or(
                    posted_bit(device, slot),
                    core::sync::atomic::Ordering::Relaxed,
                );
                return vcpu::UartAnswer::Done(0);
            }
            // A FIFO's worth is waiting: hand it over first.
            let flushed = io.flush(guest) && io.posted[slot].push(offset, value);
            drop(guard);
            self.sys.kick_service(device);
            return if flushed {
                vcpu::UartAnswer::Done(0)
            } else {
                // The ring is full: the guest retries the instruction later.
                vcpu::UartAnswer::Busy
            };
        }
        let seq = io.next_seq;
        let request = Request::Accesses {
            seq,
            guest,
            writes: io.posted[slot],
            read: Some(offset),
        };
        if io.end.tx().push_versioned(VERSION, &request).is_err() {
            // Full (or broken): the guest retries the instruction later.
            drop(guard);
            self.sys.kick_service(device);
            return vcpu::UartAnswer::Busy;
        }
        io.posted[slot].clear();
        POSTED.fetch_and(
            !posted_bit(device, slot),
            core::sync::atomic::Ordering::Relaxed,
        );
        io.next_seq = seq.wrapping_add(1);
        drop(guard);
        self.sys.kick_service(device);
        self.sys.wait_for_read(device, self.caller, seq);
        vcpu::UartAnswer::Wait
    }

    /// A device service broke its request ring (`e`, found when it next
    /// asked for requests): it is stopped as faulted, as if it had taken
    /// an exception, so that a supervisor restarts it (the restart starts
    /// the ring over) instead of it serving on while its guests' requests
    /// can no longer reach it. Its guests' reads are answered as for any
    /// stopped service.
    #[cold]
    #[inline(never)]
    fn ring_broken(&mut self, device: Device, e: shm_ring::RingError) -> vcpu::CoreCall {
        let name = self.sys.domains.get(self.caller).map_or("?", |d| d.name);
        log::warn!("{device:?} service: its request ring is broken ({e})");
        log::info!("domain {name}: stopped: broke its request ring (counted as a fault)");
        self.sys.stop_faulted(self.hw, self.caller);
        vcpu::CoreCall::Gone
    }

    /// Whether the port share blocked the caller in this hypercall:
    /// `HOLDING` names it and it is blocked on nothing but a deadline (a
    /// name left by a domain that stopped as it printed, whose slot went to
    /// another, does not count).
    fn holding(&self) -> bool {
        HOLDING.load(core::sync::atomic::Ordering::Relaxed) == u32::from(self.caller.index) + 1
            && self.sys.domains.get(self.caller).is_some_and(|d| {
                matches!(
                    d.state,
                    RunState::Blocked {
                        channel: None,
                        deadline: Some(_)
                    }
                )
            })
    }

    /// `IOREQ_WAIT` and `IOREQ_DONE`, for the device services only.
    fn ioreq_call(
        &mut self,
        call: hypercall_abi::Call,
        timeout: u64,
        answer: u64,
    ) -> vcpu::CoreCall {
        use hypercall_abi::Status;
        let Some(device) = self.sys.device_of(self.caller) else {
            self.refuse(call, Status::Denied);
            return vcpu::CoreCall::Return(Status::Denied, None);
        };
        if device == Device::Uart && !CONSOLE_LIVE.load(core::sync::atomic::Ordering::Relaxed) {
            console_start();
        }
        let mut guard = ioreq(device).lock();
        let Some(io) = guard.as_mut() else {
            return vcpu::CoreCall::Return(Status::Denied, None);
        };
        // Both calls first complete every read the service has answered,
        // on the ring and then the one in RSI (so a service that answers
        // and then waits makes one call).
        let sys = &mut *self.sys;
        let mut bad = pop_answers(io, &mut |guest, seq, value| {
            sys.answer_read(device, guest, seq, value)
        });
        // Writes still posted (the ring was full when their domain left
        // the CPU) go now; `POSTED` says whose, usually nobody's.
        let mut waiting =
            POSTED.load(core::sync::atomic::Ordering::Relaxed) >> (device as u32 * 8) & 0xff;
        while waiting != 0 {
            let slot = waiting.trailing_zeros() as usize;
            waiting &= waiting - 1;
            if io.flush(slot as u8) {
                POSTED.fetch_and(
                    !posted_bit(device, slot),
                    core::sync::atomic::Ordering::Relaxed,
                );
            }
        }
        match hypercall_abi::ioreq::Response::from_word(answer) {
            Ok(None) => {}
            Ok(Some(r)) => bad += u32::from(!sys.answer_read(device, r.guest, r.seq, r.value)),
            Err(()) => bad += 1,
        }
        // Reading the consumer index also checks it: a service that left
        // it where no consumer could have moved it has broken the ring,
        // and the core's half refuses every request from then on.
        let free = io.end.tx().free_space();
        let queued = free.map_or(true, |free| free != io.end.tx().data_size());
        drop(guard);
        if bad > 0 {
            log::warn!(
                "{device:?} service: {bad} answer(s) matched no waiting read or were malformed"
            );
        }
        if let Err(e) = free {
            return self.ring_broken(device, e);
        }
        if call == hypercall_abi::Call::IoReqWait && !queued {
            let deadline = (timeout != 0).then(|| arch::rdtsc().saturating_add(timeout));
            self.sys.service_block(device, self.caller, deadline);
            return vcpu::CoreCall::Block;
        }
        if self.sys.should_switch(self.caller) {
            vcpu::CoreCall::Switch(Status::Ok, None)
        } else {
            vcpu::CoreCall::Return(Status::Ok, None)
        }
    }

    /// Logs a refused call of the caller, already counted: the first
    /// [`REFUSALS_LOGGED`] of each domain, then one line saying the rest
    /// are only counted. A domain issuing bad calls in a loop would
    /// otherwise fill the core's bounded log, and lines of others would be
    /// lost with its own.
    #[cold]
    fn refused(&self, call: hypercall_abi::Call, status: hypercall_abi::Status) {
        let Some(d) = self.sys.domains.get(self.caller) else {
            return;
        };
        if d.refused <= REFUSALS_LOGGED {
            log::info!("domain {}: {} refused: {status}", d.name, call.name());
        } else if d.refused == REFUSALS_LOGGED + 1 {
            log::info!(
                "domain {}: refused {} hypercalls; further refusals are only counted (summary line)",
                d.name,
                d.refused
            );
        }
    }

    /// A refused `CAP_INSPECT` (the fast path): `System::cap_inspect`
    /// counted it in the summary; the domain's own count and the log are
    /// done here, out of that path.
    #[cold]
    #[inline(never)]
    fn inspect_refused(&mut self, status: hypercall_abi::Status) {
        if let Some(d) = self.sys.domains.get_mut(self.caller) {
            d.refused += 1;
        }
        self.refused(hypercall_abi::Call::CapInspect, status);
    }

    /// Counts and logs a refusal the core's dispatch in [`System`] did not
    /// see (the calls this file answers itself).
    #[cold]
    fn refuse(&mut self, call: hypercall_abi::Call, status: hypercall_abi::Status) {
        self.sys.count_refusal(self.caller);
        self.refused(call, status);
    }

    /// `CHANNEL_NOTIFY` and `CHANNEL_WAIT`, the calls of every round trip,
    /// without the general dispatch.
    #[inline]
    fn channel_call(
        &mut self,
        call: hypercall_abi::Call,
        slot: u64,
        timeout: u64,
    ) -> vcpu::CoreCall {
        let outcome = self
            .sys
            .channel_call(self.caller, call, slot, timeout, arch::rdtsc());
        self.answer(call, outcome)
    }

    /// Every core hypercall but the fast ones, kept out of line so that the
    /// fast path stays small.
    #[inline(never)]
    fn general(&mut self, call: hypercall_abi::Call, args: [u64; 4]) -> vcpu::CoreCall {
        let target = (call == hypercall_abi::Call::DomainDestroy)
            .then(|| {
                self.sys.cspaces[self.caller.index as usize]
                    .get(args[0])
                    .ok()
                    .and_then(|c| self.sys.domains.get(c.object))
                    .map(|t| t.name)
            })
            .flatten();
        let outcome = self
            .sys
            .hypercall(self.hw, self.caller, call, args, arch::rdtsc());
        if let (Outcome::Return(hypercall_abi::Status::Ok, _), Some(t)) = (&outcome, target) {
            let name = self.sys.domains.get(self.caller).map_or("?", |d| d.name);
            log::info!("domain {t}: destroyed by {name}");
        }
        self.answer(call, outcome)
    }

    /// What the vCPU makes of a core hypercall's outcome: a refusal is
    /// logged; a call that woke a domain which should run first switches.
    #[inline]
    fn answer(&mut self, call: hypercall_abi::Call, outcome: Outcome) -> vcpu::CoreCall {
        match outcome {
            Outcome::Return(status, value) => {
                if status != hypercall_abi::Status::Ok {
                    self.refused(call, status);
                }
                if self.sys.should_switch(self.caller) {
                    vcpu::CoreCall::Switch(status, value)
                } else {
                    vcpu::CoreCall::Return(status, value)
                }
            }
            Outcome::Yield => vcpu::CoreCall::Switch(hypercall_abi::Status::Ok, None),
            Outcome::Block => vcpu::CoreCall::Block,
            Outcome::Gone => vcpu::CoreCall::Gone,
        }
    }
}

impl SysPlatform<'_, '_, '_> {
    /// The caller's memory, through its EPT.
    fn caller_memory(&self) -> GuestPlatform<'_, PoolFrames<'_>> {
        let ept = self
            .sys
            .domains
            .get(self.caller)
            .and_then(|d| d.ept.as_ref());
        GuestPlatform {
            ept,
            tables: &self.hw.pool,
        }
    }
}

/// Which domains may have writes posted to which device: bit
/// `device * 8 + slot`, set when a write is posted, cleared when they are
/// handed over, so that the scheduler's check for a domain leaving the CPU
/// is one load.
static POSTED: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// `POSTED`'s bit for `device` and domain-table slot `slot`.
fn posted_bit(device: Device, slot: usize) -> u32 {
    1 << ((device as u32 * 8 + slot as u32) % 32)
}

/// Hands the device writes `d` posted to their services and wakes them.
fn flush_posted(sys: &mut System, d: ObjectRef) {
    use core::sync::atomic::Ordering::Relaxed;
    let slot = d.index as usize % crate::system::MAX_DOMAINS;
    let bits = Device::ALL
        .into_iter()
        .fold(0, |b, dev| b | posted_bit(dev, slot));
    if POSTED.load(Relaxed) & bits == 0 {
        return;
    }
    for device in Device::ALL {
        if POSTED.load(Relaxed) & posted_bit(device, slot) == 0 {
            continue;
        }
        let mut guard = ioreq(device).lock();
        let Some(io) = guard.as_mut() else {
            continue;
        };
        let guest = d.index as u8;
        if io.posted[guest as usize % crate::system::MAX_DOMAINS].is_empty() {
            POSTED.fetch_and(!posted_bit(device, slot), Relaxed);
            continue;
        }
        // Left posted if the ring is full: the service's next IOREQ_WAIT
        // takes them.
        if io.flush(guest) {
            POSTED.fetch_and(!posted_bit(device, slot), Relaxed);
        }
        drop(guard);
        sys.kick_service(device);
    }
}

/// The `Attach` request that names domain `name` in table slot `guest` to
/// a device service (`fresh`: a new domain in the slot, not one the
/// service knew before it restarted).
#[inline]
fn attach_request(
    guest: u8,
    name: &str,
    fresh: bool,
    incarnation: [u32; 2],
) -> hypercall_abi::ioreq::Request {
    let mut bytes = [0u8; 16];
    let n = name.len().min(16);
    bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
    hypercall_abi::ioreq::Request::Attach {
        guest,
        name: bytes,
        len: n as u8,
        fresh,
        incarnation,
    }
}

/// Puts domain `d`'s `Attach` (table index `guest`, `restarts` restarts)
/// on `io`'s request ring; false when it has no room. Out of line: once
/// per domain and service run, and kept off the code of every other
/// access.
#[cold]
#[inline(never)]
fn send_attach(
    io: &mut IoReq,
    guest: u8,
    name: &str,
    fresh: bool,
    d: ObjectRef,
    restarts: u32,
) -> bool {
    let request = attach_request(guest, name, fresh, [d.generation, restarts]);
    io.end
        .tx()
        .push_versioned(hypercall_abi::ioreq::VERSION, &request)
        .is_ok()
}

/// Tells `device`'s service, just restarted and not yet running, of every
/// live domain its previous run knew (`Attach::Again`), so that it has
/// them all before any touches the device again: a domain waiting for
/// input (a shell at its prompt, for the UART) would otherwise not count
/// as present, and Ctrl-A could not switch the keyboard to it. Those the
/// ring has no room for attach with their next access, as before.
fn reattach(sys: &mut System, device: Device) {
    let mut guard = ioreq(device).lock();
    let Some(io) = guard.as_mut() else {
        return;
    };
    for (d, dom) in sys.domains.iter_mut() {
        if matches!(dom.state, RunState::Stopped | RunState::Created) {
            continue;
        }
        let attach = &mut dom.attach[device.index()];
        if *attach != Attach::Again {
            continue;
        }
        if !send_attach(io, d.index as u8, dom.name, false, d, dom.restarts) {
            return;
        }
        *attach = Attach::Done;
    }
}

/// Hands every answer a device service left on its ioreq response ring to
/// `answer` (see [`Machine::device_answers`]); returns how many matched no
/// waiting read (a corrupted ring is started over and counts as one).
fn pop_answers(io: &mut IoReq, answer: &mut dyn FnMut(u8, u32, u8) -> bool) -> u32 {
    use hypercall_abi::ioreq::{Response, VERSION};
    let mut scratch = [0u8; 64];
    let mut bad = 0u32;
    loop {
        match io.end.rx().pop_versioned::<Response>(VERSION, &mut scratch) {
            Ok(Some(r)) => {
                if !answer(r.guest, r.seq, r.value) {
                    bad += 1;
                }
            }
            Ok(None) => return bad,
            Err(_) => {
                // A corrupted response ring: start it over; waiting
                // guests are answered when they retry.
                io.end.rx().reset();
                return bad + 1;
            }
        }
    }
}

impl vcpu::Platform for SysPlatform<'_, '_, '_> {
    const FAST_CALLS: u64 = 1 << hypercall_abi::Call::CapInspect as u64;

    #[inline]
    fn fast_hypercall(
        &mut self,
        call: hypercall_abi::Call,
        regs: &vcpu::GuestRegisters,
    ) -> Option<(hypercall_abi::Status, u64)> {
        if call != hypercall_abi::Call::CapInspect {
            return None;
        }
        Some(match self.sys.cap_inspect(self.caller, regs.rdi) {
            Ok(v) => (hypercall_abi::Status::Ok, v),
            Err(s) => {
                self.inspect_refused(s);
                (s, regs.rdx)
            }
        })
    }

    fn core_hypercall(
        &mut self,
        call: hypercall_abi::Call,
        regs: &vcpu::GuestRegisters,
    ) -> vcpu::CoreCall {
        match call {
            hypercall_abi::Call::ChannelNotify | hypercall_abi::Call::ChannelWait => {
                self.channel_call(call, regs.rdi, regs.rsi)
            }
            hypercall_abi::Call::IoReqWait | hypercall_abi::Call::IoReqDone => {
                self.ioreq_call(call, regs.rdi, regs.rsi)
            }
            hypercall_abi::Call::DomainPeek => self.peek(regs.rdi, regs.rsi),
            hypercall_abi::Call::IrqRaise => self.irq_raise(regs.rdi, regs.rsi),
            hypercall_abi::Call::IrqLine => self.irq_line(regs.rdi, regs.rsi, regs.rdx),
            hypercall_abi::Call::DomainRestart => self.restart(regs.rdi),
            _ => self.general(call, [regs.rdi, regs.rsi, regs.rdx, regs.r10]),
        }
    }

    fn uart_access(&mut self, offset: u8, write: bool, value: u8) -> vcpu::UartAnswer {
        self.forward(Device::Uart, offset, write, value)
    }

    fn pc_access(&mut self, index: u8, write: bool, value: u8) -> vcpu::UartAnswer {
        self.forward(Device::Platform, index, write, value)
    }

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
        self.caller_memory().read_guest(gpa, buf)
    }

    fn write_guest(&mut self, gpa: u64, bytes: &[u8]) -> bool {
        self.caller_memory().write_guest(gpa, bytes)
    }

    fn guest_line(&mut self, guest: &str, source: vcpu::LineSource, text: &str) {
        let line = crate::corelog::Line::format(format_args!("[{guest}{}] {text}", source.tag()));
        if on_console_ring(&line) {
            return;
        }
        let start = arch::rdtsc();
        print_direct(line.bytes());
        let end = arch::rdtsc();
        // Domains' lines printed here (their `LOG_WRITE`s, log frames and
        // COM1 lines) are held to a share of port time: the core prints
        // them synchronously, in time no domain's slice is charged for.
        use core::sync::atomic::Ordering::Relaxed;
        let hz = arch::tsc_hz().unwrap_or(1_000_000_000);
        let spent = end.saturating_sub(start);
        let who = usize::from(self.caller.index);
        let Some(wait) = PORT_TIME.lock().charge(end, hz, spent, who) else {
            return;
        };
        // The caller waits its debt off: its call completed on wake-up
        // (`console_hold`), a later line of the same call waiting longer;
        // its COM1 write is complete already, and it wakes to its next
        // instruction (`System::hold`).
        let held = self.holding();
        let running = self
            .sys
            .domains
            .get(self.caller)
            .is_some_and(|d| d.state == RunState::Runnable);
        if running || held {
            let until = end.saturating_add(wait);
            if source == vcpu::LineSource::Uart {
                self.sys.hold(self.caller, until);
            } else {
                self.sys.block(self.caller, None, Some(until));
            }
            HOLDING.store(u32::from(self.caller.index) + 1, Relaxed);
            let bit = 1 << (self.caller.index % 64);
            if !held && HELD.fetch_or(bit, Relaxed) & bit == 0 {
                log::info!(
                    "domain {guest}: waits before its next console line: domains' lines printed straight to the port have had their 1/{} of the CPU (said once)",
                    crate::corelog::PORT_SHARE
                );
            }
        }
    }

    fn console_hold(&mut self, done: bool) -> bool {
        let held = self.holding();
        HOLDING.store(0, core::sync::atomic::Ordering::Relaxed);
        if held && !done {
            // The call failed and returns its error now: the caller runs on
            // (the debt stays on the shared account).
            self.sys.unblock(self.caller);
            return false;
        }
        held
    }
}

/// Gives device service `d` its ioreq channel (and the state pages after
/// it) at `ioreq::GPA`.
fn serve(
    sys: &mut System,
    hw: &mut Hw<'_>,
    device: Device,
    d: ObjectRef,
    name: &'static str,
) -> Result<(), BootError> {
    let ring_len = hypercall_abi::ioreq::PAGES * FRAME;
    let state_end = ring_len + hypercall_abi::ioreq::STATE_PAGES * FRAME;
    // The UART service also gets the core's console ring.
    let console_len = if device == Device::Uart {
        hypercall_abi::ioreq::LOG_PAGES * FRAME
    } else {
        0
    };
    let len = state_end + console_len;
    let pages = hw
        .frames
        .allocate(len, FRAME)
        .ok_or(BootError::Domain(name, "no memory for the ioreq channel"))?;
    // SAFETY: fresh core frames, identity-mapped, shared only with the
    // service (mapped below) for the rest of the core's life.
    let channel = unsafe {
        arch::phys_mut(pages, len as usize).fill(0);
        shm_ring::Channel::init_raw(pages as *mut u8, ring_len as usize)
    }
    .map_err(|_| BootError::Domain(name, "the ioreq channel could not be laid out"))?;
    sys.share_with(hw, d, (pages, len), hypercall_abi::ioreq::GPA)
        .map_err(|s| BootError::Capability(name, s))?;
    if console_len > 0 {
        let at = pages + state_end;
        // SAFETY: the last LOG_PAGES of the fresh, zeroed frames above,
        // shared with the service only.
        let ring = unsafe { shm_ring::Ring::init_raw(at as *mut u8, console_len as usize) }
            .map_err(|_| BootError::Domain(name, "the console ring could not be laid out"))?;
        *CONSOLE.lock() = Some((
            crate::corelog::Sink::new(ring.into_producer()),
            (at, console_len as usize),
        ));
    }
    *ioreq(device).lock() = Some(IoReq {
        end: channel.into_initiator(),
        next_seq: 0,
        pages: (pages, len),
        posted: [hypercall_abi::ioreq::Posted::new(); crate::system::MAX_DOMAINS],
    });
    Ok(())
}

/// Sets up the VMCS and vCPU of a domain created by a hypercall, the first
/// time it is picked: its page tables, GDT and start-info page go into the
/// first 24 KiB of its memory, below the image its creator wrote.
fn setup_child(
    sys: &System,
    hw: &Hw<'_>,
    d: ObjectRef,
    host: &vcpu::HostState,
    slice: u32,
    budget: Option<u64>,
    write_low: bool,
) -> Option<vcpu::Vcpu> {
    let dom = sys.domains.get(d)?;
    let region = dom.memory.and_then(|r| sys.regions.get(r))?;
    let [rip, rsp, arg] = dom.initial?;
    let eptp = dom.ept.as_ref()?.eptp(false);
    if write_low {
        write_child_low(sys, d, dom, region);
    }

    // SAFETY: VMX root operation; the VMCS is this domain's fresh pool frame.
    unsafe { vmm::load_fresh_vmcs(hw.vmx, dom.hw.vmcs) }.ok()?;
    let (cr3, gdt, gdt_limit) = vmm::GUEST_TABLES;
    let setup = GuestSetup {
        rip,
        rsp,
        cr3,
        gdtr: (gdt, gdt_limit),
        eptp,
        vpid: dom.hw.vpid,
        io_bitmaps: Some(dom.hw.io_bitmaps),
        preemption_timer: Some(slice),
    };
    vcpu::setup_vmcs(&mut HardwareVmcs(()), &hw.vmx.caps, host, &setup).ok()?;
    let mut v = vcpu::Vcpu::new(dom.name);
    // In RDI for a Rust domain, in RSI for Linux (its zero page).
    v.regs.rdi = arg;
    v.regs.rsi = arg;
    v.pc = dom.pc;
    v.slice = slice;
    v.slice_budget = budget;
    log::info!(
        "domain {}: started with {} KiB at {:#x}, priority {}, entry {rip:#x}",
        dom.name,
        region.len / 1024,
        region.hpa,
        dom.priority
    );
    Some(v)
}

/// The page tables and the start-info page of domain `d` (`dom`), created
/// by a hypercall, below IMAGE_FLOOR in its memory `region`.
fn write_child_low(sys: &System, d: ObjectRef, dom: &Domain, region: &Region) {
    let (hpa, len) = (region.hpa, region.len);
    // SAFETY: the region is this domain's memory (its creator gave it up
    // for this purpose), at least IMAGE_FLOOR + a page long; the core
    // writes only below IMAGE_FLOOR.
    let low = unsafe { arch::phys_mut(hpa, IMAGE_FLOOR as usize) };
    vmm::write_guest_tables(low);
    let mut info = start_info(dom.name, len, dom.priority);
    for (slot, cap) in sys.cspaces[d.index as usize].iter() {
        let name = match cap.object.kind {
            ObjectType::MemRegion if Some(cap.object) == dom.memory => "memory",
            ObjectType::Channel => "channel",
            ObjectType::IoPorts => "ports",
            _ => continue,
        };
        add_slot(&mut info, name, cap.object.kind, cap.rights, slot, 0, 0);
    }
    let src = start_info_bytes(&info);
    let at = START_INFO_GPA as usize;
    low[at..at + src.len()].copy_from_slice(src);
}

/// Gives PC guest `to` the FPU: the x87/SSE state of `from` (if it is
/// still the vCPU in its slot) is saved, `to`'s restored, or reset when it
/// has none saved yet.
fn switch_fpu(
    vcpus: &mut [Option<(ObjectRef, vcpu::Vcpu)>; crate::system::MAX_DOMAINS],
    from: Option<ObjectRef>,
    to: ObjectRef,
) {
    if let Some(o) = from {
        save_fpu(vcpus, o);
    }
    match vcpus[to.index as usize % crate::system::MAX_DOMAINS]
        .as_ref()
        .and_then(|(_, v)| v.fpu.as_ref())
    {
        Some(area) => arch::fxrstor(area),
        None => arch::fpu_reset(),
    }
}

/// Gives the CPU a clean x87/SSE state (a restarted PC guest's first run;
/// kept out of the scheduler loop, whose every switch it would lengthen).
#[cold]
#[inline(never)]
fn clean_fpu() {
    arch::fxrstor(&vcpu::FpuArea::default());
    arch::fpu_reset();
}

/// Saves the x87/SSE state in the CPU into `owner`'s vCPU, if it is still
/// the vCPU in its slot.
fn save_fpu(
    vcpus: &mut [Option<(ObjectRef, vcpu::Vcpu)>; crate::system::MAX_DOMAINS],
    owner: ObjectRef,
) {
    if let Some((_, v)) = vcpus[owner.index as usize % crate::system::MAX_DOMAINS]
        .as_mut()
        .filter(|(o, _)| *o == owner)
    {
        arch::fxsave(v.fpu.get_or_insert_with(vcpu::FpuArea::default));
    }
}

/// Runs domains until none can ever run again.
fn schedule(
    sys: &mut System,
    vcpus: &mut [Option<(ObjectRef, vcpu::Vcpu)>; crate::system::MAX_DOMAINS],
    hw: &mut Hw<'_>,
    host: &vcpu::HostState,
    slice: u32,
    budget: Option<u64>,
) {
    let mut current_vmcs = None;
    // The PC guest whose x87/SSE state is in the CPU (the core and Rust
    // domains never touch it).
    let mut fpu_owner: Option<ObjectRef> = None;
    // Whether the CPU holds a domain's `vcpu::msr::AREA` MSRs (its VM exits
    // store them but load nothing back).
    let mut area_msrs_held = false;
    loop {
        if sys.shutdown_requested {
            log::info!("shutdown requested by a domain: stopping every domain");
            break;
        }
        sys.wake_expired(arch::rdtsc());
        let Some(d) = sys.pick() else {
            // Checked only when nothing can run (off the switch path).
            if sys.only_services_waiting() {
                if sys.alive_count() == 1 && sys.uart_waiting {
                    log::info!("only the UART service is left, waiting for work: stopping");
                } else {
                    log::info!("only device services are left, waiting for work: stopping");
                }
                break;
            }
            match sys.earliest_deadline() {
                Some(t) => {
                    arch::idle_until(t);
                    continue;
                }
                None => {
                    if sys.any_alive() {
                        log::warn!(
                            "every remaining domain waits with no deadline and nobody to wake it"
                        );
                    }
                    break;
                }
            }
        };
        let slot = &mut vcpus[d.index as usize];
        if slot.as_ref().is_none_or(|(owner, _)| *owner != d) {
            // A domain created by a hypercall runs for the first time, or a
            // restarted one runs again (its memory was rewritten and its
            // old vCPU dropped).
            let fresh = sys.domains.get(d).is_some_and(|x| x.fresh_vcpu);
            match setup_child(sys, hw, d, host, slice, budget, !fresh) {
                Some(v) => {
                    if fpu_owner == Some(d) {
                        // The x87/SSE state in the CPU is its previous
                        // life's: a restarted domain starts with a clean one.
                        fpu_owner = None;
                        clean_fpu();
                    }
                    if let Some(x) = sys.domains.get_mut(d) {
                        x.fresh_vcpu = false;
                    }
                    *slot = Some((d, v));
                    current_vmcs = sys.domains.get(d).map(|x| x.hw.vmcs);
                }
                None => {
                    let name = sys.domains.get(d).map_or("?", |x| x.name);
                    log::error!("domain {name}: its VMCS could not be set up; stopping it");
                    sys.stats.violations += 1;
                    sys.stop_domain(hw, d);
                    continue;
                }
            }
        }
        let pc = vcpus[d.index as usize].as_ref().is_some_and(|(_, v)| v.pc);
        if pc {
            if fpu_owner != Some(d) {
                switch_fpu(vcpus, fpu_owner, d);
                fpu_owner = Some(d);
            }
        } else if let Some(owner) = fpu_owner.take() {
            // A domain that is no PC guest never uses the FPU, but could
            // read a guest's registers (FNSAVE): it gets a clean one.
            save_fpu(vcpus, owner);
            arch::fxrstor(&vcpu::FpuArea::default());
            arch::fpu_reset();
        }
        // A domain with its own syscall MSRs loads them at entry; one
        // without would run with the last one's (SWAPGS would hand it a
        // Linux kernel's GS base): clear them first.
        let own_area = vcpus[d.index as usize]
            .as_ref()
            .is_some_and(|(_, v)| v.msr_area.in_use);
        if own_area {
            area_msrs_held = true;
        } else if area_msrs_held {
            for msr in vcpu::msr::AREA {
                // SAFETY: a VM entry loaded these MSRs from an area, so the
                // CPU has every one of them; 0 is valid for each.
                unsafe { arch::wrmsr(msr, 0) };
            }
            area_msrs_held = false;
        }
        // Every vCPU, for DOMAIN_PEEK to read the others: derived from
        // `vcpus` before the running one is borrowed below, and used only
        // for other entries.
        let all_vcpus = vcpus.as_mut_ptr();
        let tick_due = if pc { sys.platform_deadline() } else { None };
        let (Some(dom), Some((_, vcpu))) =
            (sys.domains.get_mut(d), vcpus[d.index as usize].as_mut())
        else {
            continue;
        };
        let mut vmcs = HardwareVmcs(());
        if current_vmcs != Some(dom.hw.vmcs) {
            // SAFETY: VMX root operation; this domain's VMCS was set up at boot.
            if unsafe { vmx::arch::vmptrld(dom.hw.vmcs) }.is_err() {
                log::error!("domain {}: VMPTRLD failed; stopping it", dom.name);
                sys.stop_domain(hw, d);
                continue;
            }
            current_vmcs = Some(dom.hw.vmcs);
            // A fresh slice for a domain switched in.
            let _ = vmcs.write(fields::VMX_PREEMPTION_TIMER_VALUE, vcpu.slice as u64);
        }
        if vcpu.pc {
            // A PC guest's ticks come from the platform service, which
            // sleeps until the next one is due: end the slice by then, so
            // that they are not late (Linux checks its TSC against them).
            // Only that deadline: another domain's timer (a service's
            // keyboard poll, say) is served when the slice ends, as for
            // every other domain, instead of costing the guest an exit of
            // its own (under Bochs every VM exit and entry empties the
            // TLB, which the guest then refills).
            if let Some(t) = tick_due {
                let shift = hw.vmx.caps.misc.preemption_timer_shift();
                let until = (t.saturating_sub(arch::rdtsc()) >> shift).max(1);
                if until < vcpu.slice as u64 {
                    let _ = vmcs.write(fields::VMX_PREEMPTION_TIMER_VALUE, until);
                }
            }
        }
        if let Some((status, value)) = dom.pending.take() {
            let _ = vcpu::complete_hypercall(vcpu, &mut vmcs, status, value);
        }
        if let Some(value) = dom.pending_in.take() {
            let _ = vcpu::complete_in(vcpu, &mut vmcs, value);
        }
        let name = dom.name;
        let refused_before = vcpu.refused;
        let action = {
            let mut platform = SysPlatform {
                sys: &mut *sys,
                hw: &mut *hw,
                caller: d,
                vcpus: all_vcpus,
            };
            vcpu::run_until_event(vcpu, &mut vmcs, &mut platform, |regs, launched, fast| {
                // SAFETY: this domain's VMCS is current and fully set up with
                // the core's host state; `launched` tracks its launch state.
                unsafe { crate::vmm::enter(regs, launched, fast) }
            })
        };
        // The domain leaves the CPU: the UART writes it posted go to the
        // service now, so that they exist only while their domain runs.
        flush_posted(sys, d);
        // Refusals of calls the vcpu crate answers itself (LOG_WRITE, unknown
        // numbers); the core's own are counted by the objects.
        sys.stats.refused += vcpu.refused - refused_before;
        if let Some(dom) = sys.domains.get_mut(d) {
            dom.exits = vcpu.stats.summary();
        }
        if matches!(action, Action::Idle) {
            sys.idle(d);
        }
        if let Action::Stop(reason) = action {
            log::info!("domain {name}: stopped: {reason}");
            if is_violation(&reason) {
                sys.stop_faulted(hw, d);
            } else {
                sys.stop_domain(hw, d);
            }
        }
    }
}
