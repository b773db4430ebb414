//! The core's objects and the hypercalls that act on them: domains, memory
//! regions, channels and I/O port ranges in fixed, bounded tables, one
//! capability space per domain, and the scheduler's choice of what runs.
//!
//! Everything here is pure: page tables go through [`ept`] over the
//! [`Machine`]'s frame allocator, and the few effects on hardware (TLB
//! invalidation, returning memory) are [`Machine`] calls. So every hypercall
//! and every error it documents is unit-tested on the host. Every argument
//! from a domain is checked before use; a table that is full answers
//! `OutOfResources`; nothing here panics on a domain's input.

use capspace::{CSpace, CapError, Capability, ObjectRef, ObjectTable};
use ept::{Access, Ept, EptError, FrameAllocator, MemoryType};
use hypercall_abi::{Call, DomainState, ObjectType, Rights, Status, SLOT_SELF};

/// Most domains at once (device services keep a model per table slot).
pub const MAX_DOMAINS: usize = hypercall_abi::ioreq::GUESTS;
/// Most memory regions at once.
pub const MAX_REGIONS: usize = 32;
/// Most channels at once.
pub const MAX_CHANNELS: usize = 16;
/// Most I/O port ranges at once.
pub const MAX_PORTS: usize = 16;
/// Slots in each domain's capability space.
pub const CSPACE_SLOTS: usize = 32;
/// Most places one region may be mapped at once.
pub const MAX_MAPPINGS: usize = 4;
/// Guest-physical addresses a domain can use (its paging maps 1 GiB).
pub const DOMAIN_GPA_LIMIT: u64 = 1 << 30;
/// Page size.
pub const PAGE: u64 = 4096;
/// Priorities a domain may have (0 to `manifest::MAX_PRIORITY`).
const PRIORITIES: usize = manifest::MAX_PRIORITY as usize + 1;

/// A device a service domain emulates for other domains: the core
/// forwards their port I/O on its ports over the service's own ioreq
/// channel (`hypercall_abi::ioreq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// The virtual 16550 at 0x3F8 (every domain).
    Uart,
    /// The legacy PC devices of PC guests (PIC, PIT, ...).
    Platform,
}

impl Device {
    /// Both.
    pub const ALL: [Device; 2] = [Device::Uart, Device::Platform];

    /// Its place in per-device arrays.
    pub const fn index(self) -> usize {
        match self {
            Device::Uart => 0,
            Device::Platform => 1,
        }
    }
}

/// What a device service was told about a domain (`ioreq::Request::Attach`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// Nothing since the domain was created or restarted: with its next
    /// access the service is told to start a fresh device for it (a
    /// domain that reuses a table slot must not find its predecessor's
    /// registers, buffered input or scratch byte).
    New,
    /// The service restarted since it was told: it is told again, and keeps
    /// whatever it already holds for the slot (queued accesses, output
    /// saved across the restart).
    Again,
    /// Told.
    Done,
}

/// What the objects need from the machine.
pub trait Machine {
    /// Frames for EPT tables.
    type Frames: FrameAllocator;
    /// The allocator EPT tables come from.
    fn frames(&mut self) -> &mut Self::Frames;
    /// Drops cached translations of `eptp` and `vpid` (INVEPT/INVVPID).
    fn invalidate(&mut self, eptp: u64, vpid: u16);
    /// Returns memory that backed a region (domain memory, channel pages).
    fn release_memory(&mut self, hpa: u64, len: u64);
    /// Writes zeroes over host memory `(hpa, len)`, which belongs to a
    /// region mapped into no domain.
    fn zero_memory(&mut self, hpa: u64, len: u64);
    /// Returns a domain's hardware frames (VMCS, I/O bitmaps).
    fn release_domain(&mut self, hw: &DomainHw);
    /// Hardware frames (VMCS, I/O bitmaps closed to every port) for a new
    /// domain with this VPID; `None` when the core pool is exhausted.
    fn allocate_domain(&mut self, vpid: u16) -> Option<DomainHw>;
    /// Opens ports `first..=last` in a domain's I/O bitmaps.
    fn open_ports(&mut self, hw: &DomainHw, first: u16, last: u16);
    /// Hands every answer `device`'s service left on its ioreq response ring
    /// to `answer` (guest's table slot, read's sequence number, value),
    /// which reports whether it matched a waiting read; returns how many
    /// did not. A machine without the ring has none.
    fn device_answers(
        &mut self,
        device: Device,
        answer: &mut dyn FnMut(u8, u32, u8) -> bool,
    ) -> u32 {
        let _ = (device, answer);
        0
    }
    /// The domain in table slot `guest` stopped: the writes to `device`
    /// the core still holds for it (posted, see `ioreq::Posted`) go to the service
    /// now, before its slot can go to another domain.
    fn device_stopped(&mut self, device: Device, guest: u8) {
        let _ = (device, guest);
    }
    /// `device`'s service stopped: what it shared with the core alone
    /// (the UART service's console ring) is the core's again.
    fn service_stopped(&mut self, device: Device) {
        let _ = device;
    }
}

/// The hardware resources of a domain, owned by the core's VMX code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DomainHw {
    /// The VMCS region.
    pub vmcs: u64,
    /// I/O bitmaps A and B.
    pub io_bitmaps: (u64, u64),
    /// The VPID.
    pub vpid: u16,
}

/// Whether a domain may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Ready to run.
    Runnable,
    /// Waiting for a channel notification and/or a deadline (TSC).
    Blocked {
        /// The channel waited on (`None` for a sleep).
        channel: Option<ObjectRef>,
        /// When the wait ends anyway.
        deadline: Option<u64>,
    },
    /// Stopped for good (until destroyed).
    Stopped,
    /// Created by a hypercall and not started yet.
    Created,
}

/// A domain.
#[derive(Debug)]
pub struct Domain {
    /// Its name (from the manifest).
    pub name: &'static str,
    /// 0 (lowest) to 7.
    pub priority: u8,
    /// Whether it may run.
    pub state: RunState,
    /// Its EPT; `None` once stopped (its memory is unmapped from it).
    pub ept: Option<Ept>,
    /// Its own memory region.
    pub memory: Option<ObjectRef>,
    /// A hypercall result to deliver when it next runs (after a wait).
    pub pending: Option<(Status, Option<u64>)>,
    /// Hardware resources.
    pub hw: DomainHw,
    /// Hypercalls of this domain the core refused.
    pub refused: u64,
    /// Initial RIP, RSP and RDI of a domain created by a hypercall (the
    /// core's VMX code sets its VMCS up when it first runs).
    pub initial: Option<[u64; 3]>,
    /// Most capability slots it may use.
    pub slot_limit: u16,
    /// The device and sequence number of its forwarded read, while it waits.
    pub io_wait: Option<(Device, u32)>,
    /// The answer to that read, to deliver when it next runs.
    pub pending_in: Option<u8>,
    /// What each device service was told about it (by [`Device::index`]).
    pub attach: [Attach; 2],
    /// A PC guest (`DOMAIN_SET_PLATFORM`): see `vcpu::Vcpu::pc`.
    pub pc: bool,
    /// Halted, waiting for an interrupt (a PC guest).
    pub idle: bool,
    /// Exit counts (hypercalls, port I/O, EPT violations, all), copied from
    /// its vCPU by the core's VMX code after it runs.
    pub exits: [u64; 4],
    /// For a domain its manifest marks `restart`: the mappings it had when
    /// the boot finished, which `revive` rebuilds ((region, gpa, rights)).
    pub boot_maps: Option<[Option<(ObjectRef, u64, Rights)>; MAX_BOOT_MAPS]>,
    /// Revived: the core's VMX code gives it a fresh vCPU before it next
    /// runs.
    pub fresh_vcpu: bool,
    /// Times it was revived.
    pub restarts: u32,
    /// It was stopped for a fault or a violation (not by a supervisor or
    /// by exiting); cleared when it is revived.
    pub faulted: bool,
    /// Its wait ([`System::hold`]) follows an instruction the core already
    /// completed: waking it completes nothing.
    pub wakes_bare: bool,
}

impl Domain {
    /// A domain that has not run yet: no pending results, no exits, new to
    /// every device service.
    fn new(
        name: &'static str,
        priority: u8,
        state: RunState,
        ept: Ept,
        memory: Option<ObjectRef>,
        hw: DomainHw,
        slot_limit: u16,
    ) -> Domain {
        Domain {
            name,
            priority,
            state,
            ept: Some(ept),
            memory,
            pending: None,
            hw,
            refused: 0,
            initial: None,
            slot_limit,
            io_wait: None,
            pending_in: None,
            attach: [Attach::New; 2],
            pc: false,
            idle: false,
            exits: [0; 4],
            boot_maps: None,
            fresh_vcpu: false,
            restarts: 0,
            faulted: false,
            wakes_bare: false,
        }
    }
}

/// Most boot-time mappings a restartable domain can have rebuilt (its
/// memory, its channels, the ioreq pages).
pub const MAX_BOOT_MAPS: usize = 8;

/// A range of host-physical memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// First byte.
    pub hpa: u64,
    /// Length in bytes (page multiple).
    pub len: u64,
    /// The domain whose memory this is (`None`: the core's, e.g. channel
    /// pages).
    pub owner: Option<ObjectRef>,
    /// Where it is mapped: (domain, guest-physical address).
    pub mappings: [Option<(ObjectRef, u64)>; MAX_MAPPINGS],
    /// For a guest image handed out at boot: the guest's name, which a
    /// domain created with this image takes.
    pub label: Option<&'static str>,
}

impl Region {
    /// A region of `len` bytes at host-physical `hpa`, mapped nowhere yet.
    pub fn new(hpa: u64, len: u64, owner: Option<ObjectRef>) -> Region {
        Region {
            hpa,
            len,
            owner,
            mappings: [None; MAX_MAPPINGS],
            label: None,
        }
    }
}

/// Shared pages between two domains plus a notification each way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channel {
    /// The two ends.
    pub ends: [ObjectRef; 2],
    /// The shared pages.
    pub pages: ObjectRef,
    /// A notification is pending for end 0 / end 1.
    pub pending: [bool; 2],
    /// The end has been destroyed.
    pub gone: [bool; 2],
}

/// A range of I/O ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// First port.
    pub first: u16,
    /// Last port (inclusive).
    pub last: u16,
}

/// Counters for the boot summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Hypercalls answered with an error status.
    pub refused: u64,
    /// Domains stopped for a violation (EPT, port, VMX instruction, fault).
    pub violations: u64,
}

/// What the run loop does after a hypercall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Complete the call now with this status and RDX value.
    Return(Status, Option<u64>),
    /// The caller blocked; its result is delivered when it wakes.
    Block,
    /// Complete with `Ok` and let others run.
    Yield,
    /// The caller is gone (it destroyed or stopped itself).
    Gone,
}

/// All objects of the core.
pub struct System {
    /// Domains.
    pub domains: ObjectTable<Domain, MAX_DOMAINS>,
    /// One capability space per domain table slot.
    pub cspaces: [CSpace<CSPACE_SLOTS>; MAX_DOMAINS],
    /// Memory regions.
    pub regions: ObjectTable<Region, MAX_REGIONS>,
    /// Channels.
    pub channels: ObjectTable<Channel, MAX_CHANNELS>,
    /// I/O port ranges.
    pub ports: ObjectTable<Ports, MAX_PORTS>,
    /// Counters.
    pub stats: Stats,
    /// Set when a hypercall woke a blocked domain (the scheduler should
    /// choose again); cleared by whoever acts on it.
    pub woke: bool,
    /// The UART service: the domain that owns COM1 and serves every other
    /// domain's virtual UART over the ioreq channel.
    pub uart: Option<ObjectRef>,
    /// The UART service is blocked in `IOREQ_WAIT`.
    pub uart_waiting: bool,
    /// The platform service: it serves PC guests' legacy devices (PIC,
    /// PIT, ...) over its own ioreq channel and raises their interrupts.
    pub platform: Option<ObjectRef>,
    /// The platform service is blocked in `IOREQ_WAIT`.
    pub platform_waiting: bool,
    /// A domain asked for the system to end (`SHUTDOWN`).
    pub shutdown_requested: bool,
    /// The domain `pick` chose last at each priority: equals take turns
    /// after it. One per priority, so that a higher-priority domain that
    /// wakes often does not set every round back to the same place (the
    /// equals after its slot would always win, those before it never).
    last_run: [Option<u16>; PRIORITIES],
    /// Bit i set: the domain in table slot i is runnable (kept in step with
    /// every state change by `sync`, so that `pick` never scans the table).
    runnable: u32,
    /// The priority of the domain in each table slot.
    prio: [u8; MAX_DOMAINS],
    /// No blocked domain's deadline is earlier than this (`None`: no
    /// deadline is set). A lower bound: waking a domain early does not
    /// raise it, so [`Self::wake_expired`] skips its scan until `now`
    /// reaches it.
    pub(crate) next_deadline: Option<u64>,
}

impl Default for System {
    fn default() -> Self {
        Self::new()
    }
}

fn live_in(
    domains: &ObjectTable<Domain, MAX_DOMAINS>,
    regions: &ObjectTable<Region, MAX_REGIONS>,
    channels: &ObjectTable<Channel, MAX_CHANNELS>,
    ports: &ObjectTable<Ports, MAX_PORTS>,
    o: ObjectRef,
) -> bool {
    match o.kind {
        ObjectType::Domain => domains.is_live(o),
        ObjectType::MemRegion => regions.is_live(o),
        ObjectType::Channel => channels.is_live(o),
        ObjectType::IoPorts => ports.is_live(o),
    }
}

/// The channel named by `c` and which end of it `caller` is.
fn channel_end(
    channels: &mut ObjectTable<Channel, MAX_CHANNELS>,
    c: ObjectRef,
    caller: ObjectRef,
) -> Result<(&mut Channel, usize), Status> {
    let ch = channels.get_mut(c).ok_or(Status::StaleCapability)?;
    let me = ch
        .ends
        .iter()
        .position(|&e| e == caller)
        .ok_or(Status::Denied)?;
    Ok((ch, me))
}

fn st(e: CapError) -> Status {
    e.into()
}

fn ept_status(e: EptError) -> Status {
    match e {
        EptError::OutOfFrames => Status::OutOfResources,
        EptError::InvalidAccess => Status::InvalidArgument,
        _ => Status::InvalidAddress,
    }
}

fn access(rights: Rights) -> Access {
    let mut a = Access::empty();
    if rights.contains(Rights::READ) {
        a |= Access::READ;
    }
    if rights.contains(Rights::WRITE) {
        a |= Access::WRITE;
    }
    if rights.contains(Rights::EXECUTE) {
        a |= Access::EXECUTE;
    }
    a
}

/// Rights named by a hypercall argument: only the defined bits.
fn rights_arg(raw: u64) -> Result<Rights, Status> {
    u8::try_from(raw)
        .ok()
        .and_then(Rights::from_bits)
        .ok_or(Status::InvalidArgument)
}

impl System {
    /// No objects.
    pub const fn new() -> System {
        System {
            domains: ObjectTable::new(),
            cspaces: [const { CSpace::new() }; MAX_DOMAINS],
            regions: ObjectTable::new(),
            channels: ObjectTable::new(),
            ports: ObjectTable::new(),
            stats: Stats {
                refused: 0,
                violations: 0,
            },
            woke: false,
            uart: None,
            uart_waiting: false,
            platform: None,
            platform_waiting: false,
            shutdown_requested: false,
            last_run: [None; PRIORITIES],
            runnable: 0,
            prio: [0; MAX_DOMAINS],
            next_deadline: None,
        }
    }

    /// Whether `o` names a live object.
    #[cfg(test)]
    pub fn is_live(&self, o: ObjectRef) -> bool {
        live_in(&self.domains, &self.regions, &self.channels, &self.ports, o)
    }

    // ----- creation (boot, from the manifest) -----

    /// Creates a stopped-until-started domain owning `memory` (host-physical
    /// `(hpa, len)`) mapped RWX at guest-physical 0. Returns the domain and
    /// the slot of its memory capability.
    pub fn create_domain<M: Machine>(
        &mut self,
        m: &mut M,
        name: &'static str,
        priority: u8,
        memory: (u64, u64),
        hw: DomainHw,
    ) -> Result<(ObjectRef, u16), Status> {
        let ept = Ept::new(m.frames()).map_err(ept_status)?;
        let domain = Domain::new(
            name,
            priority.min(7),
            RunState::Runnable,
            ept,
            None,
            hw,
            CSPACE_SLOTS as u16,
        );
        let d = match self.domains.allocate(ObjectType::Domain, domain) {
            Ok(d) => d,
            Err(e) => {
                // The table is full: the EPT inside the refused value is
                // dropped with it; allocate a fresh one only on success.
                return Err(st(e));
            }
        };
        self.cspaces[d.index as usize] = CSpace::new();
        self.prio[d.index as usize] = priority;
        self.sync(d);
        let region = Region::new(memory.0, memory.1, Some(d));
        let r = match self.regions.allocate(ObjectType::MemRegion, region) {
            Ok(r) => r,
            Err(e) => {
                self.discard_domain(m, d);
                return Err(st(e));
            }
        };
        if let Some(dom) = self.domains.get_mut(d) {
            dom.memory = Some(r);
        }
        if let Err(s) = self.map_region(m, d, r, 0, Rights::READ | Rights::WRITE | Rights::EXECUTE)
        {
            self.regions.remove(r);
            self.discard_domain(m, d);
            return Err(s);
        }
        let rights = Rights::READ | Rights::WRITE | Rights::EXECUTE | Rights::MAP | Rights::GRANT;
        let slot = self.cspaces[d.index as usize]
            .insert(Capability::new(r, rights))
            .map_err(st)?;
        Ok((d, slot))
    }

    /// Creates a domain (state [`RunState::Created`]) whose memory is the
    /// existing region `r`, mapped RWX at guest-physical 0; the region
    /// becomes its own. Its space gets the memory capability in slot 0.
    fn create_child<M: Machine>(
        &mut self,
        m: &mut M,
        r: ObjectRef,
        priority: u8,
        budget: u16,
        name: Option<&'static str>,
    ) -> Result<ObjectRef, Status> {
        const NAMES: [&str; MAX_DOMAINS] = [
            "domain-0", "domain-1", "domain-2", "domain-3", "domain-4", "domain-5", "domain-6",
            "domain-7",
        ];
        let region = *self.regions.get(r).ok_or(Status::StaleCapability)?;
        if region.len < hypercall_abi::IMAGE_FLOOR + PAGE {
            return Err(Status::InvalidArgument);
        }
        if self.is_domain_memory(r) {
            return Err(Status::Denied);
        }
        let Some(index) =
            (0..MAX_DOMAINS).find(|&i| !self.domains.iter().any(|(d, _)| d.index as usize == i))
        else {
            return Err(Status::OutOfResources);
        };
        let hw = m
            .allocate_domain(index as u16 + 1)
            .ok_or(Status::OutOfResources)?;
        let ept = match Ept::new(m.frames()) {
            Ok(e) => e,
            Err(e) => {
                m.release_domain(&hw);
                return Err(ept_status(e));
            }
        };
        let domain = Domain::new(
            name.unwrap_or(NAMES[index]),
            priority,
            RunState::Created,
            ept,
            Some(r),
            hw,
            budget,
        );
        let d = match self.domains.allocate(ObjectType::Domain, domain) {
            Ok(d) => d,
            Err(e) => {
                m.release_domain(&hw);
                return Err(st(e));
            }
        };
        self.cspaces[d.index as usize] = CSpace::new();
        self.prio[d.index as usize] = priority;
        self.sync(d);
        if let Some(dom) = self.domains.get_mut(d) {
            // The VPID follows the table slot actually given (normally the
            // one predicted above).
            dom.hw.vpid = d.index + 1;
        }
        if let Err(s) = self.map_region(m, d, r, 0, Rights::READ | Rights::WRITE | Rights::EXECUTE)
        {
            self.discard_domain(m, d);
            m.release_domain(&hw);
            return Err(s);
        }
        let rights = Rights::READ | Rights::WRITE | Rights::EXECUTE | Rights::MAP;
        let _ = self.cspaces[d.index as usize].insert(Capability::new(r, rights));
        Ok(d)
    }

    fn discard_domain<M: Machine>(&mut self, m: &mut M, d: ObjectRef) {
        if let Some(mut dom) = self.domains.remove(d) {
            if let Some(ept) = dom.ept.take() {
                ept.destroy(m.frames());
            }
        }
        self.sync(d);
    }

    /// Creates a channel over `pages` (host-physical `(hpa, len)`) between
    /// `a` and `b`, mapped read/write at `gpa_a` in `a` and `gpa_b` in `b`.
    /// Returns the channel and the slots of the two ends' capabilities.
    pub fn create_channel<M: Machine>(
        &mut self,
        m: &mut M,
        a: ObjectRef,
        b: ObjectRef,
        pages: (u64, u64),
        gpa_a: u64,
        gpa_b: u64,
    ) -> Result<(ObjectRef, u16, u16), Status> {
        if a == b || !self.domains.is_live(a) || !self.domains.is_live(b) {
            return Err(Status::InvalidArgument);
        }
        let region = Region::new(pages.0, pages.1, None);
        let r = self
            .regions
            .allocate(ObjectType::MemRegion, region)
            .map_err(st)?;
        let result = self.create_channel_over(m, a, b, r, gpa_a, gpa_b);
        if result.is_err() {
            self.regions.remove(r);
        }
        result
    }

    /// Creates a channel between `a` and `b` over the existing region `r`.
    fn create_channel_over<M: Machine>(
        &mut self,
        m: &mut M,
        a: ObjectRef,
        b: ObjectRef,
        r: ObjectRef,
        gpa_a: u64,
        gpa_b: u64,
    ) -> Result<(ObjectRef, u16, u16), Status> {
        if a == b || !self.domains.is_live(a) || !self.domains.is_live(b) {
            return Err(Status::InvalidArgument);
        }
        // Both ends need a free slot within their budget before anything
        // is mapped.
        for d in [a, b] {
            let cs = &self.cspaces[d.index as usize];
            let limit = self.domains.get(d).map_or(0, |x| x.slot_limit as usize);
            if cs.len() >= limit.min(cs.capacity()) {
                return Err(Status::OutOfResources);
            }
        }
        let before = self.regions.get(r).map(|x| x.mappings);
        let rw = Rights::READ | Rights::WRITE;
        self.map_region(m, a, r, gpa_a, rw)?;
        if let Err(s) = self.map_region(m, b, r, gpa_b, rw) {
            self.unmap_from(m, r, a);
            if let (Some(reg), Some(before)) = (self.regions.get_mut(r), before) {
                reg.mappings = before;
            }
            return Err(s);
        }
        let channel = Channel {
            ends: [a, b],
            pages: r,
            pending: [false; 2],
            gone: [false; 2],
        };
        let c = match self.channels.allocate(ObjectType::Channel, channel) {
            Ok(c) => c,
            Err(e) => {
                self.unmap_from(m, r, a);
                self.unmap_from(m, r, b);
                return Err(st(e));
            }
        };
        let rights = Rights::READ | Rights::WRITE | Rights::GRANT;
        let sa = self.cspaces[a.index as usize]
            .insert(Capability::new(c, rights))
            .map_err(st)?;
        let sb = self.cspaces[b.index as usize]
            .insert(Capability::new(c, rights))
            .map_err(st)?;
        Ok((c, sa, sb))
    }

    /// Unmaps region `r` from domain `d` only.
    fn unmap_from<M: Machine>(&mut self, m: &mut M, r: ObjectRef, d: ObjectRef) {
        let Some(region) = self.regions.get(r).copied() else {
            return;
        };
        for (i, mapping) in region.mappings.iter().enumerate() {
            if let Some((md, gpa)) = mapping {
                if *md != d {
                    continue;
                }
                if let Some(dom) = self.domains.get_mut(d) {
                    if let Some(ept) = dom.ept.as_mut() {
                        let _ = ept.unmap_range(m.frames(), *gpa, region.len);
                        m.invalidate(ept.eptp(false), dom.hw.vpid);
                    }
                }
                if let Some(reg) = self.regions.get_mut(r) {
                    reg.mappings[i] = None;
                }
            }
        }
    }

    /// Inserts `cap` into `d`'s space within its slot budget.
    fn insert_limited(&mut self, d: ObjectRef, cap: Capability) -> Result<u16, Status> {
        let limit = self.domains.get(d).map_or(0, |x| x.slot_limit);
        let cs = &mut self.cspaces[d.index as usize];
        let slot = cs.insert(cap).map_err(st)?;
        if slot >= limit {
            let _ = cs.delete(slot as u64);
            return Err(Status::OutOfResources);
        }
        Ok(slot)
    }

    /// Gives `holder` a capability with `rights` on domain `target`.
    pub fn grant_domain(
        &mut self,
        holder: ObjectRef,
        target: ObjectRef,
        rights: Rights,
    ) -> Result<u16, Status> {
        if !self.domains.is_live(holder) || !self.domains.is_live(target) {
            return Err(Status::InvalidArgument);
        }
        self.cspaces[holder.index as usize]
            .insert(Capability::new(target, rights))
            .map_err(st)
    }

    /// Gives `holder` an unmapped region of host memory `(hpa, len)` that it
    /// owns, with every right (it is freed when `holder` is destroyed).
    pub fn grant_region(&mut self, holder: ObjectRef, memory: (u64, u64)) -> Result<u16, Status> {
        self.grant_memory(holder, memory, true)
    }

    /// Like [`System::grant_region`]; with `owned` false the region (and
    /// every part split off it) belongs to no domain, so destroying the
    /// holder does not free it: the memory broker's free memory, parts of
    /// which back running guests.
    pub fn grant_memory(
        &mut self,
        holder: ObjectRef,
        memory: (u64, u64),
        owned: bool,
    ) -> Result<u16, Status> {
        let region = Region::new(memory.0, memory.1, owned.then_some(holder));
        self.grant_new_region(holder, region, Rights::all())
    }

    /// Puts `region` in the table and a capability with `rights` on it in
    /// `holder`'s space (nothing is kept when either is full).
    fn grant_new_region(
        &mut self,
        holder: ObjectRef,
        region: Region,
        rights: Rights,
    ) -> Result<u16, Status> {
        if !self.domains.is_live(holder) {
            return Err(Status::InvalidArgument);
        }
        let r = self
            .regions
            .allocate(ObjectType::MemRegion, region)
            .map_err(st)?;
        self.cspaces[holder.index as usize]
            .insert(Capability::new(r, rights))
            .map_err(|e| {
                self.regions.remove(r);
                st(e)
            })
    }

    /// Gives `holder` a read-only, mappable capability over the boot module
    /// at `(hpa, len)` holding guest `label`'s image. The region belongs to
    /// nobody (it is never freed) and a domain created with it takes
    /// `label` as its name.
    pub fn grant_image(
        &mut self,
        holder: ObjectRef,
        image: (u64, u64),
        label: &'static str,
    ) -> Result<u16, Status> {
        let mut region = Region::new(image.0, image.1, None);
        region.label = Some(label);
        self.grant_new_region(holder, region, Rights::READ | Rights::MAP)
    }

    /// Gives `holder` an I/O port range.
    pub fn grant_ports(&mut self, holder: ObjectRef, first: u16, last: u16) -> Result<u16, Status> {
        if first > last || !self.domains.is_live(holder) {
            return Err(Status::InvalidArgument);
        }
        let p = self
            .ports
            .allocate(ObjectType::IoPorts, Ports { first, last })
            .map_err(st)?;
        self.cspaces[holder.index as usize]
            .insert(Capability::new(p, Rights::READ | Rights::WRITE))
            .map_err(st)
    }

    fn map_region<M: Machine>(
        &mut self,
        m: &mut M,
        d: ObjectRef,
        r: ObjectRef,
        gpa: u64,
        rights: Rights,
    ) -> Result<(), Status> {
        let region = *self.regions.get(r).ok_or(Status::StaleCapability)?;
        let end = gpa.checked_add(region.len).ok_or(Status::InvalidAddress)?;
        if !gpa.is_multiple_of(PAGE) || end > DOMAIN_GPA_LIMIT {
            return Err(Status::InvalidAddress);
        }
        let Some(free) = region.mappings.iter().position(Option::is_none) else {
            return Err(Status::OutOfResources);
        };
        let dom = self.domains.get_mut(d).ok_or(Status::StaleCapability)?;
        let ept = dom.ept.as_mut().ok_or(Status::Denied)?;
        ept.map_range(
            m.frames(),
            gpa,
            region.hpa,
            region.len,
            access(rights),
            MemoryType::WriteBack,
        )
        .map_err(ept_status)?;
        if let Some(reg) = self.regions.get_mut(r) {
            reg.mappings[free] = Some((d, gpa));
        }
        Ok(())
    }

    /// Whether region `r` is the memory of a domain not yet destroyed.
    fn is_domain_memory(&self, r: ObjectRef) -> bool {
        self.domains.iter().any(|(_, d)| d.memory == Some(r))
    }

    /// Removes every mapping of region `r` from domain `d`; `false` when it
    /// had none there.
    fn unmap_region_from<M: Machine>(&mut self, m: &mut M, r: ObjectRef, d: ObjectRef) -> bool {
        self.unmap_region(m, r, Some(d))
    }

    fn unmap_region_everywhere<M: Machine>(&mut self, m: &mut M, r: ObjectRef) {
        self.unmap_region(m, r, None);
    }

    /// Removes the mappings of region `r` from domain `only` (every domain
    /// when `None`), dropping cached translations; whether there were any.
    fn unmap_region<M: Machine>(
        &mut self,
        m: &mut M,
        r: ObjectRef,
        only: Option<ObjectRef>,
    ) -> bool {
        let Some(region) = self.regions.get(r).copied() else {
            return false;
        };
        let mut found = false;
        for (i, mapping) in region.mappings.iter().enumerate() {
            let Some((d, gpa)) = *mapping else { continue };
            if only.is_some_and(|o| o != d) {
                continue;
            }
            found = true;
            if let Some(dom) = self.domains.get_mut(d) {
                if let Some(ept) = dom.ept.as_mut() {
                    let _ = ept.unmap_range(m.frames(), gpa, region.len);
                    m.invalidate(ept.eptp(false), dom.hw.vpid);
                }
            }
            if let Some(reg) = self.regions.get_mut(r) {
                reg.mappings[i] = None;
            }
        }
        found
    }

    /// Maps core-owned pages `(hpa, len)` read/write into `d` at `gpa`
    /// (e.g. the ioreq channel of the UART service).
    pub fn share_with<M: Machine>(
        &mut self,
        m: &mut M,
        d: ObjectRef,
        pages: (u64, u64),
        gpa: u64,
    ) -> Result<(), Status> {
        let region = Region::new(pages.0, pages.1, None);
        let r = self
            .regions
            .allocate(ObjectType::MemRegion, region)
            .map_err(st)?;
        if let Err(s) = self.map_region(m, d, r, gpa, Rights::READ | Rights::WRITE) {
            self.regions.remove(r);
            return Err(s);
        }
        Ok(())
    }

    /// Domain `d`, if it was created and not started yet (its vCPU state
    /// and platform may still be set): else `Denied`.
    fn created_mut(&mut self, d: ObjectRef) -> Result<&mut Domain, Status> {
        let dom = self.domains.get_mut(d).ok_or(Status::StaleCapability)?;
        if dom.state != RunState::Created {
            return Err(Status::Denied);
        }
        Ok(dom)
    }

    /// PC guest `d` halted with interrupts enabled: it waits for the next
    /// interrupt queued for it ([`System::irq_wake`]).
    pub fn idle(&mut self, d: ObjectRef) {
        if self.block(d, None, None) {
            if let Some(dom) = self.domains.get_mut(d) {
                dom.idle = true;
            }
        }
    }

    /// An interrupt was queued for `d`: an idle PC guest runs again (the
    /// core injects it at the entry). Returns whether it was idle.
    pub fn irq_wake(&mut self, d: ObjectRef) -> bool {
        let Some(dom) = self.domains.get_mut(d) else {
            return false;
        };
        if !core::mem::take(&mut dom.idle) || !matches!(dom.state, RunState::Blocked { .. }) {
            return false;
        }
        dom.state = RunState::Runnable;
        self.woke = true;
        self.sync(d);
        true
    }

    /// The domain serving `device`.
    pub fn service(&self, device: Device) -> Option<ObjectRef> {
        match device {
            Device::Uart => self.uart,
            Device::Platform => self.platform,
        }
    }

    /// Which device `d` serves, if any.
    pub fn device_of(&self, d: ObjectRef) -> Option<Device> {
        Device::ALL
            .into_iter()
            .find(|&dev| self.service(dev) == Some(d))
    }

    fn waiting(&mut self, device: Device) -> &mut bool {
        match device {
            Device::Uart => &mut self.uart_waiting,
            Device::Platform => &mut self.platform_waiting,
        }
    }

    /// A device service waits for requests (`IOREQ_WAIT` with none
    /// queued), at most until `deadline`.
    pub fn service_block(&mut self, device: Device, service: ObjectRef, deadline: Option<u64>) {
        if self.block(service, None, deadline) {
            *self.waiting(device) = true;
        }
    }

    /// Requests were queued: wake `device`'s service if it waits for them.
    pub fn kick_service(&mut self, device: Device) {
        if !core::mem::take(self.waiting(device)) {
            return;
        }
        let service = self.service(device);
        if let Some(d) = service.and_then(|u| self.domains.get_mut(u)) {
            if matches!(d.state, RunState::Blocked { .. }) {
                d.state = RunState::Runnable;
                d.pending = Some((Status::Ok, None));
                self.woke = true;
            }
        }
        if let Some(u) = service {
            self.sync(u);
        }
    }

    /// `d` waits for the answer to its read `seq` forwarded to `device`.
    pub fn wait_for_read(&mut self, device: Device, d: ObjectRef, seq: u32) {
        if let Some(dom) = self.domains.get_mut(d) {
            dom.io_wait = Some((device, seq));
            dom.state = RunState::Blocked {
                channel: None,
                deadline: None,
            };
        }
        self.sync(d);
    }

    /// `device`'s service answered read `seq` of the domain in table slot
    /// `guest` with `value`: wake it. Answers that match no waiting read
    /// (a confused or hostile service) are ignored; returns whether one
    /// matched.
    pub fn answer_read(&mut self, device: Device, guest: u8, seq: u32, value: u8) -> bool {
        let Some((d, dom)) = self
            .domains
            .iter_mut()
            .find(|(d, _)| d.index == guest as u16)
        else {
            return false;
        };
        if dom.io_wait != Some((device, seq)) {
            return false;
        }
        dom.io_wait = None;
        dom.pending_in = Some(value);
        if matches!(dom.state, RunState::Blocked { .. }) {
            dom.state = RunState::Runnable;
        }
        self.sync(d);
        self.woke = true;
        true
    }

    // ----- life cycle -----

    /// [`System::stop_domain`] for a fault or a violation: counted in the
    /// summary, and `d` reads as faulted (`DOMAIN_STATUS` bit 63), so that
    /// a supervisor restarts it if it may.
    pub fn stop_faulted<M: Machine>(&mut self, m: &mut M, d: ObjectRef) {
        self.stats.violations += 1;
        if let Some(dom) = self.domains.get_mut(d) {
            dom.faulted = true;
        }
        self.stop_domain(m, d);
    }

    /// Stops `d`: it never runs again, its EPT is torn down (so all memory
    /// is unmapped from it) and cached translations are dropped. Peers
    /// blocked on a channel with it are woken with `Denied`.
    pub fn stop_domain<M: Machine>(&mut self, m: &mut M, d: ObjectRef) {
        let Some(dom) = self.domains.get_mut(d) else {
            return;
        };
        dom.state = RunState::Stopped;
        let vpid = dom.hw.vpid;
        if let Some(ept) = dom.ept.take() {
            let eptp = ept.eptp(false);
            ept.destroy(m.frames());
            m.invalidate(eptp, vpid);
        }
        for (_, region) in self.regions.iter_mut() {
            for mapping in region.mappings.iter_mut() {
                if mapping.is_some_and(|(md, _)| md == d) {
                    *mapping = None;
                }
            }
        }
        let mut wake = [None; MAX_CHANNELS];
        for (i, (c, ch)) in self.channels.iter().enumerate() {
            if let Some(e) = ch.ends.iter().position(|&x| x == d) {
                wake[i] = Some((c, ch.ends[1 - e]));
            }
        }
        for (c, peer) in wake.into_iter().flatten() {
            if let Some(p) = self.domains.get_mut(peer) {
                if p.state
                    == (RunState::Blocked {
                        channel: Some(c),
                        deadline: match p.state {
                            RunState::Blocked { deadline, .. } => deadline,
                            _ => None,
                        },
                    })
                {
                    p.state = RunState::Runnable;
                    p.pending = Some((Status::Denied, None));
                }
            }
            self.sync(peer);
        }
        for device in Device::ALL {
            if self.service(device).is_some_and(|u| u != d) {
                m.device_stopped(device, d.index as u8);
                // Its last writes and its Detach are queued.
                self.kick_service(device);
            }
        }
        if let Some(device) = self.device_of(d) {
            // Reads it answered before it stopped get their answers; the
            // rest will never be answered: they read 0xFF (no device), and
            // the guests go on.
            m.device_answers(device, &mut |guest, seq, value| {
                self.answer_read(device, guest, seq, value)
            });
            m.service_stopped(device);
            let mut woken = false;
            for (_, x) in self.domains.iter_mut() {
                if x.io_wait.is_some_and(|(dev, _)| dev == device) {
                    x.io_wait = None;
                    x.pending_in = Some(0xff);
                    if matches!(x.state, RunState::Blocked { .. }) {
                        x.state = RunState::Runnable;
                        woken = true;
                    }
                }
            }
            if woken {
                self.resync_all();
            }
        }
        self.sync(d);
    }

    /// Destroys `d`: stops it, frees its memory (unmapping it from every
    /// domain it was shared with), its hardware frames, and its table slot;
    /// every capability naming it becomes stale.
    pub fn destroy_domain<M: Machine>(&mut self, m: &mut M, d: ObjectRef) {
        if !self.domains.is_live(d) {
            return;
        }
        self.stop_domain(m, d);
        let mut owned = [None; MAX_REGIONS];
        for (i, (r, region)) in self.regions.iter().enumerate() {
            if region.owner == Some(d) {
                owned[i] = Some(r);
            }
        }
        for r in owned.into_iter().flatten() {
            self.unmap_region_everywhere(m, r);
            if let Some(region) = self.regions.remove(r) {
                m.release_memory(region.hpa, region.len);
            }
        }
        let mut dead_channels = [None; MAX_CHANNELS];
        for (i, (c, ch)) in self.channels.iter_mut().enumerate() {
            if let Some(e) = ch.ends.iter().position(|&x| x == d) {
                ch.gone[e] = true;
                if ch.gone == [true, true] {
                    dead_channels[i] = Some((c, ch.pages));
                }
            }
        }
        for (c, pages) in dead_channels.into_iter().flatten() {
            self.channels.remove(c);
            self.unmap_region_everywhere(m, pages);
            if let Some(region) = self.regions.remove(pages) {
                m.release_memory(region.hpa, region.len);
            }
        }
        if let Some(dom) = self.domains.remove(d) {
            m.release_domain(&dom.hw);
        }
        self.cspaces[d.index as usize] = CSpace::new();
        self.sync(d);
    }

    // ----- scheduling -----

    /// Blocks `d` until a notification on `channel` (when given) or until
    /// `deadline` (when given); `false` when `d` does not exist.
    pub fn block(
        &mut self,
        d: ObjectRef,
        channel: Option<ObjectRef>,
        deadline: Option<u64>,
    ) -> bool {
        let Some(dom) = self.domains.get_mut(d) else {
            return false;
        };
        dom.state = RunState::Blocked { channel, deadline };
        if let Some(t) = deadline {
            self.next_deadline = Some(self.next_deadline.map_or(t, |n| n.min(t)));
        }
        self.sync(d);
        true
    }

    /// Blocks `d` until `deadline` after an instruction of its that the
    /// core has already completed (a COM1 write that printed a line over
    /// the port share): it wakes to its next instruction, with no
    /// hypercall result. `false` when `d` does not exist.
    pub fn hold(&mut self, d: ObjectRef, deadline: u64) -> bool {
        if let Some(dom) = self.domains.get_mut(d) {
            dom.wakes_bare = true;
        }
        self.block(d, None, Some(deadline))
    }

    /// Lifts a wait `d` was put in by [`System::block`] in the call being
    /// handled, which completes now instead (no pending completion).
    pub fn unblock(&mut self, d: ObjectRef) {
        if let Some(dom) = self.domains.get_mut(d) {
            if matches!(dom.state, RunState::Blocked { .. }) {
                dom.state = RunState::Runnable;
            }
            dom.wakes_bare = false;
        }
        self.sync(d);
    }

    /// Wakes every blocked domain whose deadline is at or before `now`.
    /// Called before every scheduling decision, so it looks at the domains
    /// only when the earliest deadline may have passed.
    pub fn wake_expired(&mut self, now: u64) {
        if self.next_deadline.is_none_or(|t| t > now) {
            return;
        }
        let mut next = None::<u64>;
        let mut woken = false;
        for (_, dom) in self.domains.iter_mut() {
            if let RunState::Blocked {
                channel,
                deadline: Some(t),
            } = dom.state
            {
                if t <= now {
                    dom.state = RunState::Runnable;
                    woken = true;
                    let status = if channel.is_some() {
                        Status::TimedOut
                    } else {
                        Status::Ok
                    };
                    dom.pending = (!core::mem::take(&mut dom.wakes_bare)).then_some((status, None));
                } else {
                    next = Some(next.map_or(t, |n| n.min(t)));
                }
            }
        }
        self.next_deadline = next;
        if woken {
            self.resync_all();
        }
    }

    /// The earliest deadline of a blocked domain.
    pub fn earliest_deadline(&self) -> Option<u64> {
        self.domains
            .iter()
            .filter_map(|(_, d)| match d.state {
                RunState::Blocked { deadline, .. } => deadline,
                _ => None,
            })
            .min()
    }

    /// The deadline the platform service sleeps until, when it is blocked
    /// with one: when the next tick of a PC guest is due.
    pub fn platform_deadline(&self) -> Option<u64> {
        match self.domains.get(self.platform?)?.state {
            RunState::Blocked { deadline, .. } => deadline,
            _ => None,
        }
    }

    /// Whether any domain is runnable or blocked (not every one stopped).
    pub fn any_alive(&self) -> bool {
        self.domains
            .iter()
            .any(|(_, d)| d.state != RunState::Stopped)
    }

    /// Whether every domain still alive is a device service waiting for
    /// requests (and there is one): nobody is left to send any.
    pub fn only_services_waiting(&self) -> bool {
        let mut any = false;
        for (d, dom) in self.domains.iter() {
            if matches!(dom.state, RunState::Stopped) {
                continue;
            }
            let waiting = match self.device_of(d) {
                Some(Device::Uart) => self.uart_waiting,
                Some(Device::Platform) => self.platform_waiting,
                None => false,
            };
            if !waiting {
                return false;
            }
            any = true;
        }
        any
    }

    /// How many domains are not stopped.
    pub fn alive_count(&self) -> usize {
        self.domains
            .iter()
            .filter(|(_, d)| !matches!(d.state, RunState::Stopped))
            .count()
    }

    /// Chooses the next domain: the highest priority among the runnable
    /// ones; among equals, round-robin after the one that ran last.
    pub fn pick(&mut self) -> Option<ObjectRef> {
        let mask = self.runnable;
        if mask == 0 {
            return None;
        }
        let mut best = 0u8;
        let mut m = mask;
        while m != 0 {
            best = best.max(self.prio[m.trailing_zeros() as usize % MAX_DOMAINS]);
            m &= m - 1;
        }
        let mut candidates = 0u32;
        let mut m = mask;
        while m != 0 {
            let i = m.trailing_zeros();
            if self.prio[i as usize % MAX_DOMAINS] == best {
                candidates |= 1 << i;
            }
            m &= m - 1;
        }
        // Round robin among equals: the first after the last one of this
        // priority run.
        let last = &mut self.last_run[usize::from(best) % PRIORITIES];
        let start = last.map_or(0, |i| u32::from(i) + 1);
        let after = candidates & u32::MAX.checked_shl(start).unwrap_or(0);
        let i = if after != 0 { after } else { candidates }.trailing_zeros();
        *last = Some(i as u16);
        self.domains.ref_at(i as usize)
    }

    /// Whether the hypercall `caller` just made must give way to the
    /// scheduler: it woke a domain (`woke`, cleared here) that may run
    /// before the caller resumes, i.e. one of at least its priority (equals
    /// take turns). Waking only lower-priority domains changes nothing for
    /// the caller: it keeps the CPU and the scheduler sees them when it
    /// next chooses.
    pub fn should_switch(&mut self, caller: ObjectRef) -> bool {
        if !core::mem::take(&mut self.woke) {
            return false;
        }
        let me = caller.index as usize % MAX_DOMAINS;
        let mine = self.prio[me];
        let mut others = self.runnable & !(1u32 << me);
        while others != 0 {
            if self.prio[others.trailing_zeros() as usize % MAX_DOMAINS] >= mine {
                return true;
            }
            others &= others - 1;
        }
        false
    }

    /// Brings the bit of `d`'s table slot in the runnable set in step with
    /// the state of the domain in that slot (clear when it is empty).
    #[inline]
    fn sync(&mut self, d: ObjectRef) {
        // Whoever holds the slot now: `d` may be stale (a destroyed
        // domain whose slot was given to another).
        let bit = 1u32 << (d.index as u32 % 32);
        let runnable = self
            .domains
            .at(d.index as usize)
            .is_some_and(|x| x.state == RunState::Runnable);
        if runnable {
            self.runnable |= bit;
        } else {
            self.runnable &= !bit;
        }
    }

    /// Rebuilds the runnable set from every domain's state.
    fn resync_all(&mut self) {
        self.runnable = self
            .domains
            .iter()
            .filter(|(_, x)| x.state == RunState::Runnable)
            .fold(0, |m, (r, _)| m | 1 << (r.index as u32 % 32));
    }

    /// Whether the runnable set matches the domains' states (tests).
    #[cfg(test)]
    pub fn runnable_in_step(&self) -> bool {
        let want = self
            .domains
            .iter()
            .filter(|(_, x)| x.state == RunState::Runnable)
            .fold(0u32, |m, (r, _)| m | 1 << r.index);
        want == self.runnable
    }

    // ----- hypercalls -----

    /// `CAP_INSPECT`, the capability check with nothing else around it: the
    /// value [`Call::CapInspect`] returns for `slot` of domain `caller`.
    /// Kept small and out of the general dispatch because it is the core's
    /// cheapest capability-checked call (see docs/BENCHMARKS.md).
    #[inline]
    pub fn cap_inspect(&mut self, caller: ObjectRef, slot: u64) -> Result<u64, Status> {
        // No liveness check of the caller: a destroyed domain's space is
        // emptied (see `destroy_domain`), so every slot of it reads empty.
        let result = match self
            .cspaces
            .get(caller.index as usize)
            .map(|cs| cs.get(slot))
        {
            Some(Ok(cap)) => {
                if live_in(
                    &self.domains,
                    &self.regions,
                    &self.channels,
                    &self.ports,
                    cap.object,
                ) {
                    Ok(cap.object.kind as u64
                        | (cap.rights.bits() as u64) << 8
                        | (cap.object.index as u64) << 32)
                } else {
                    Err(Status::StaleCapability)
                }
            }
            Some(Err(e)) => Err(st(e)),
            None => Err(Status::Denied),
        };
        if result.is_err() {
            // The domain's own count is the caller's to keep (out of this
            // path, which every successful call takes).
            self.stats.refused += 1;
        }
        result
    }

    /// Looks `slot` up in the space of domain table index `ci`: type and
    /// rights checked, stale objects refused.
    fn lookup(
        &self,
        ci: usize,
        slot: u64,
        kind: ObjectType,
        needed: Rights,
    ) -> Result<Capability, Status> {
        let live =
            |o: ObjectRef| live_in(&self.domains, &self.regions, &self.channels, &self.ports, o);
        self.cspaces[ci]
            .lookup(slot, kind, needed, live)
            .map_err(st)
    }

    /// The domain named by `slot` (or the caller for [`SLOT_SELF`] when
    /// `allow_self`), with `needed` rights.
    fn target(
        &self,
        ci: usize,
        caller: ObjectRef,
        slot: u64,
        needed: Rights,
        allow_self: bool,
    ) -> Result<ObjectRef, Status> {
        if allow_self && slot == SLOT_SELF {
            return Ok(caller);
        }
        Ok(self.lookup(ci, slot, ObjectType::Domain, needed)?.object)
    }

    /// Records the mappings `d` has now (at the end of the boot) so that
    /// [`System::revive`] can rebuild them: its own memory read, write and
    /// execute, everything else (channel and ioreq pages) read and write.
    /// Returns false if it has more than [`MAX_BOOT_MAPS`].
    pub fn mark_restartable(&mut self, d: ObjectRef) -> bool {
        let own = self.domains.get(d).and_then(|x| x.memory);
        let mut maps = [None; MAX_BOOT_MAPS];
        let mut n = 0;
        for (r, region) in self.regions.iter() {
            for (md, gpa) in region.mappings.iter().flatten() {
                if *md != d {
                    continue;
                }
                let Some(slot) = maps.get_mut(n) else {
                    return false;
                };
                let rights = if Some(r) == own {
                    Rights::READ | Rights::WRITE | Rights::EXECUTE
                } else {
                    Rights::READ | Rights::WRITE
                };
                *slot = Some((r, *gpa, rights));
                n += 1;
            }
        }
        match self.domains.get_mut(d) {
            Some(dom) => {
                dom.boot_maps = Some(maps);
                true
            }
            None => false,
        }
    }

    /// `DOMAIN_RESTART`, the part on the objects: the stopped, restartable
    /// domain named by `slot` (CONTROL; not the caller) gets a fresh EPT
    /// with its boot mappings, its forwarded-UART and wait state cleared,
    /// and becomes runnable at `entry` with the start-info page at
    /// `START_INFO_GPA` (the caller rewrites its memory first). Capabilities
    /// are kept as they are. Returns the domain.
    pub fn revive<M: Machine>(
        &mut self,
        m: &mut M,
        caller: ObjectRef,
        slot: u64,
    ) -> Result<ObjectRef, Status> {
        let t = self.target(caller.index as usize, caller, slot, Rights::CONTROL, false)?;
        if t == caller {
            return Err(Status::Denied);
        }
        let dom = self.domains.get(t).ok_or(Status::StaleCapability)?;
        let maps = dom.boot_maps.ok_or(Status::Denied)?;
        if dom.state != RunState::Stopped || dom.ept.is_some() {
            return Err(Status::Denied);
        }
        let ept = Ept::new(m.frames()).map_err(|_| Status::OutOfResources)?;
        if let Some(dom) = self.domains.get_mut(t) {
            dom.ept = Some(ept);
        }
        for (r, gpa, rights) in maps.into_iter().flatten() {
            if let Err(s) = self.map_region(m, t, r, gpa, rights) {
                // Leave it stopped, without the half-built address space.
                self.stop_domain(m, t);
                return Err(s);
            }
        }
        for (_, ch) in self.channels.iter_mut() {
            if let Some(e) = ch.ends.iter().position(|&x| x == t) {
                ch.pending[e] = false;
            }
        }
        if let Some(device) = self.device_of(t) {
            // A new service knows no guest yet: each attaches again on its
            // next access.
            *self.waiting(device) = false;
            for (_, d) in self.domains.iter_mut() {
                let a = &mut d.attach[device.index()];
                if *a == Attach::Done {
                    *a = Attach::Again;
                }
            }
        }
        let dom = self.domains.get_mut(t).ok_or(Status::StaleCapability)?;
        dom.state = RunState::Runnable;
        dom.pending = None;
        dom.io_wait = None;
        dom.pending_in = None;
        dom.attach = [Attach::New; 2];
        dom.fresh_vcpu = true;
        dom.faulted = false;
        dom.wakes_bare = false;
        dom.idle = false;
        dom.restarts = dom.restarts.saturating_add(1);
        self.sync(t);
        Ok(t)
    }

    /// The checks of `DOMAIN_PEEK` that need no vCPU: the domain named by
    /// `slot` (READ; never the caller itself, whose vCPU is running) and a
    /// known item. The core's VMX
    /// code reads the value from that domain's vCPU.
    pub fn peek_target(
        &self,
        caller: ObjectRef,
        slot: u64,
        item: u64,
    ) -> Result<ObjectRef, Status> {
        use hypercall_abi::peek;
        let target = self.target(caller.index as usize, caller, slot, Rights::READ, false)?;
        if target == caller {
            return Err(Status::Denied);
        }
        let register = item < peek::REGISTERS.len() as u64;
        let exits = item
            .checked_sub(peek::EXITS)
            .is_some_and(|n| n < peek::EXIT_REASONS);
        let log = item
            .checked_sub(peek::LOG)
            .is_some_and(|n| n <= peek::LOG_BYTES / 8);
        if !register && !exits && !log {
            return Err(Status::InvalidArgument);
        }
        match self.domains.get(target).map(|d| d.state) {
            None => Err(Status::StaleCapability),
            Some(RunState::Created) => Err(Status::Denied),
            Some(_) => Ok(target),
        }
    }

    /// Dispatches a hypercall of `caller` (the calls the `vcpu` crate does
    /// not own). `a` holds RDI, RSI, RDX, R10; `now` is the TSC.
    pub fn hypercall<M: Machine>(
        &mut self,
        m: &mut M,
        caller: ObjectRef,
        call: Call,
        a: [u64; 4],
        now: u64,
    ) -> Outcome {
        if matches!(call, Call::ChannelNotify | Call::ChannelWait) {
            // The two calls of every channel round trip skip the big match.
            return self.channel_call(caller, call, a[0], a[1], now);
        }
        match self.dispatch(m, caller, call, a, now) {
            Err(s) => self.refusal(caller, s, None),
            Ok(Outcome::Return(s, v)) if s != Status::Ok => self.refusal(caller, s, v),
            Ok(o) => o,
        }
    }

    /// Counts a refused call of `caller` (in the summary and the domain's
    /// own count) and answers it with `status`.
    #[cold]
    fn refusal(&mut self, caller: ObjectRef, status: Status, value: Option<u64>) -> Outcome {
        self.count_refusal(caller);
        Outcome::Return(status, value)
    }

    /// Counts a refused call of `caller` in the summary and in the
    /// domain's own count.
    pub fn count_refusal(&mut self, caller: ObjectRef) {
        self.stats.refused += 1;
        if let Some(d) = self.domains.get_mut(caller) {
            d.refused += 1;
        }
    }

    /// `CHANNEL_NOTIFY` (RDI = `slot`) or `CHANNEL_WAIT` (RDI = `slot`, RSI
    /// = `timeout`) by `caller`, as [`System::hypercall`] answers them, for
    /// a caller that knows the call is one of the two (the core's exit path
    /// goes straight here: they are the calls of every round trip).
    #[inline]
    pub fn channel_call(
        &mut self,
        caller: ObjectRef,
        call: Call,
        slot: u64,
        timeout: u64,
        now: u64,
    ) -> Outcome {
        let result = if !self.domains.is_live(caller) {
            Err(Status::Denied)
        } else if call == Call::ChannelNotify {
            self.channel_notify(caller, slot)
        } else {
            self.channel_wait(caller, slot, timeout, now)
        };
        match result {
            Ok(o) => o,
            Err(s) => self.refusal(caller, s, None),
        }
    }

    /// `CHANNEL_NOTIFY` (kept out of `dispatch`: it is on every round trip).
    #[inline]
    fn channel_notify(&mut self, caller: ObjectRef, slot: u64) -> Result<Outcome, Status> {
        let ci = caller.index as usize;
        let cap = self.lookup(ci, slot, ObjectType::Channel, Rights::WRITE)?;
        let (ch, me) = channel_end(&mut self.channels, cap.object, caller)?;
        let peer_end = 1 - me;
        let peer = ch.ends[peer_end];
        if ch.gone[peer_end] {
            return Err(Status::Denied);
        }
        let Some(p) = self.domains.get_mut(peer) else {
            return Err(Status::Denied);
        };
        match p.state {
            RunState::Stopped => Err(Status::Denied),
            RunState::Blocked {
                channel: Some(c), ..
            } if c == cap.object => {
                p.state = RunState::Runnable;
                p.pending = Some((Status::Ok, None));
                self.woke = true;
                self.sync(peer);
                Ok(Outcome::Return(Status::Ok, None))
            }
            _ => {
                ch.pending[peer_end] = true;
                Ok(Outcome::Return(Status::Ok, None))
            }
        }
    }

    /// `CHANNEL_WAIT` (kept out of `dispatch`: it is on every round trip).
    #[inline]
    fn channel_wait(
        &mut self,
        caller: ObjectRef,
        slot: u64,
        timeout: u64,
        now: u64,
    ) -> Result<Outcome, Status> {
        let ci = caller.index as usize;
        let cap = self.lookup(ci, slot, ObjectType::Channel, Rights::READ)?;
        let (ch, me) = channel_end(&mut self.channels, cap.object, caller)?;
        if ch.pending[me] {
            ch.pending[me] = false;
            return Ok(Outcome::Return(Status::Ok, None));
        }
        // Nobody can ever notify: the peer is stopped or gone.
        let peer = ch.ends[1 - me];
        let peer_gone = ch.gone[1 - me];
        if peer_gone
            || self
                .domains
                .get(peer)
                .is_none_or(|p| p.state == RunState::Stopped)
        {
            return Err(Status::Denied);
        }
        if timeout == 0 {
            return Err(Status::TimedOut);
        }
        let deadline = (timeout != u64::MAX).then(|| now.saturating_add(timeout));
        self.block(caller, Some(cap.object), deadline);
        Ok(Outcome::Block)
    }

    #[inline(never)]
    fn dispatch<M: Machine>(
        &mut self,
        m: &mut M,
        caller: ObjectRef,
        call: Call,
        a: [u64; 4],
        now: u64,
    ) -> Result<Outcome, Status> {
        if !self.domains.is_live(caller) {
            return Err(Status::Denied);
        }
        let ci = caller.index as usize;
        let ok = |v: Option<u64>| Ok(Outcome::Return(Status::Ok, v));
        // Disjoint borrows: the closure reads the tables, the spaces are
        // changed separately.
        let (domains, regions, channels, ports) =
            (&self.domains, &self.regions, &self.channels, &self.ports);
        let live = |o: ObjectRef| live_in(domains, regions, channels, ports, o);
        match call {
            Call::Null | Call::LogWrite | Call::LogFlush | Call::Exit => {
                Err(Status::InvalidArgument)
            }
            // Answered by the core's VMX code, which holds the ioreq rings,
            // and only for the UART service.
            Call::IoReqWait | Call::IoReqDone => Err(Status::Denied),
            Call::DomainExits => {
                let target = self.target(ci, caller, a[0], Rights::READ, true)?;
                let dom = self.domains.get(target).ok_or(Status::StaleCapability)?;
                let e = dom.exits;
                match a[1] {
                    0 => {
                        let field = |v: u64| v.min(0xffff);
                        ok(Some(
                            field(e[0]) | field(e[1]) << 16 | field(e[2]) << 32 | field(e[3]) << 48,
                        ))
                    }
                    k => match e.get(k as usize - 1) {
                        Some(&count) => ok(Some(count)),
                        None => Err(Status::InvalidArgument),
                    },
                }
            }
            Call::Shutdown => {
                // Only a domain that controls every other live domain may
                // end them all.
                let cs = &self.cspaces[ci];
                let controls = |d: ObjectRef| {
                    cs.iter()
                        .any(|(_, c)| c.object == d && c.rights.contains(Rights::CONTROL))
                };
                let all = self
                    .domains
                    .iter()
                    .filter(|(d, x)| *d != caller && x.state != RunState::Stopped)
                    .all(|(d, _)| controls(d));
                if !all {
                    return Err(Status::Denied);
                }
                self.shutdown_requested = true;
                Ok(Outcome::Yield)
            }
            Call::Yield => Ok(Outcome::Yield),
            Call::CapInspect => {
                let cap = self.cspaces[ci].get(a[0]).map_err(st)?;
                if !live(cap.object) {
                    return Err(Status::StaleCapability);
                }
                let v = cap.object.kind as u64
                    | (cap.rights.bits() as u64) << 8
                    | (cap.object.index as u64) << 32;
                ok(Some(v))
            }
            Call::CapDerive => {
                let rights = rights_arg(a[1])?;
                let slot = self.cspaces[ci].derive(a[0], rights, live).map_err(st)?;
                ok(Some(slot as u64))
            }
            Call::CapDelete => {
                self.cspaces[ci].delete(a[0]).map_err(st)?;
                ok(None)
            }
            Call::CapGrant => {
                let chan = self.lookup(ci, a[0], ObjectType::Channel, Rights::GRANT)?;
                let rights = rights_arg(a[2])?;
                let ch = *self
                    .channels
                    .get(chan.object)
                    .ok_or(Status::StaleCapability)?;
                let me = ch
                    .ends
                    .iter()
                    .position(|&e| e == caller)
                    .ok_or(Status::Denied)?;
                let peer = ch.ends[1 - me];
                if !self.domains.is_live(peer) || peer == caller {
                    return Err(Status::Denied);
                }
                let (pi, ci) = (peer.index as usize, ci);
                let (src, dst) = if ci < pi {
                    let (l, r) = self.cspaces.split_at_mut(pi);
                    (&l[ci], &mut r[0])
                } else {
                    let (l, r) = self.cspaces.split_at_mut(ci);
                    (&r[0], &mut l[pi])
                };
                let slot = src.grant(a[1], rights, live, dst).map_err(st)?;
                ok(Some(slot as u64))
            }
            Call::MemSplit => {
                let cap = self.lookup(ci, a[0], ObjectType::MemRegion, Rights::CONTROL)?;
                let region = *self
                    .regions
                    .get(cap.object)
                    .ok_or(Status::StaleCapability)?;
                let offset = a[1];
                if offset == 0 || offset >= region.len || !offset.is_multiple_of(PAGE) {
                    return Err(Status::InvalidArgument);
                }
                if region.mappings.iter().any(Option::is_some) {
                    return Err(Status::Denied);
                }
                let tail = Region::new(region.hpa + offset, region.len - offset, region.owner);
                let t = self
                    .regions
                    .allocate(ObjectType::MemRegion, tail)
                    .map_err(st)?;
                match self.cspaces[ci].insert(Capability::new(t, cap.rights)) {
                    Ok(slot) => {
                        if let Some(r) = self.regions.get_mut(cap.object) {
                            r.len = offset;
                        }
                        ok(Some(slot as u64))
                    }
                    Err(e) => {
                        self.regions.remove(t);
                        Err(st(e))
                    }
                }
            }
            Call::MemMap => {
                let target = self.target(ci, caller, a[0], Rights::CONTROL, true)?;
                let rights = rights_arg(a[3])?;
                let rwx = Rights::READ | Rights::WRITE | Rights::EXECUTE;
                if rights.is_empty()
                    || !rwx.contains(rights)
                    || (rights.contains(Rights::WRITE) && !rights.contains(Rights::READ))
                {
                    return Err(Status::InvalidArgument);
                }
                let region = self.lookup(ci, a[1], ObjectType::MemRegion, Rights::MAP | rights)?;
                self.map_region(m, target, region.object, a[2], rights)?;
                ok(None)
            }
            Call::DomainStop | Call::DomainDestroy => {
                let target = self.target(ci, caller, a[0], Rights::CONTROL, false)?;
                if call == Call::DomainStop {
                    self.stop_domain(m, target);
                } else {
                    self.destroy_domain(m, target);
                }
                if target == caller {
                    Ok(Outcome::Gone)
                } else {
                    ok(None)
                }
            }
            Call::DomainStatus => {
                let target = self.target(ci, caller, a[0], Rights::READ, true)?;
                let dom = self.domains.get(target).ok_or(Status::StaleCapability)?;
                let state = match dom.state {
                    RunState::Runnable => DomainState::Running,
                    RunState::Blocked { .. } => DomainState::Blocked,
                    RunState::Stopped | RunState::Created => DomainState::Stopped,
                };
                let kib = dom
                    .memory
                    .and_then(|r| self.regions.get(r))
                    .map_or(0, |r| r.len / 1024)
                    .min(u32::MAX as u64);
                let faulted = u64::from(dom.faulted) << 63;
                ok(Some(
                    state as u64 | (dom.priority as u64) << 8 | kib << 16 | faulted,
                ))
            }
            Call::ChannelNotify => self.channel_notify(caller, a[0]),
            Call::ChannelWait => self.channel_wait(caller, a[0], a[1], now),
            Call::DomainCreate => {
                let region = self
                    .lookup(
                        ci,
                        a[0],
                        ObjectType::MemRegion,
                        Rights::CONTROL | Rights::MAP,
                    )?
                    .object;
                let priority = u8::try_from(a[1]).map_err(|_| Status::InvalidArgument)?;
                let budget = u16::try_from(a[2]).map_err(|_| Status::InvalidArgument)?;
                if priority > 7 || budget == 0 || budget as usize > CSPACE_SLOTS {
                    return Err(Status::InvalidArgument);
                }
                if priority > self.domains.get(caller).map_or(0, |d| d.priority) {
                    return Err(Status::Denied);
                }
                if self.cspaces[ci].len()
                    >= self
                        .domains
                        .get(caller)
                        .map_or(0, |d| d.slot_limit as usize)
                {
                    return Err(Status::OutOfResources);
                }
                let name = if a[3] == hypercall_abi::SLOT_NONE {
                    None
                } else {
                    let image = self.lookup(ci, a[3], ObjectType::MemRegion, Rights::READ)?;
                    let label = self.regions.get(image.object).and_then(|r| r.label);
                    Some(label.ok_or(Status::InvalidArgument)?)
                };
                let child = self.create_child(m, region, priority, budget, name)?;
                match self.insert_limited(
                    caller,
                    Capability::new(child, Rights::CONTROL | Rights::READ | Rights::GRANT),
                ) {
                    Ok(slot) => ok(Some(slot as u64)),
                    Err(s) => {
                        self.destroy_domain(m, child);
                        Err(s)
                    }
                }
            }
            Call::MemUnmap => {
                let target = self.target(ci, caller, a[0], Rights::CONTROL, true)?;
                let region = self.lookup(ci, a[1], ObjectType::MemRegion, Rights::MAP)?;
                if self.domains.get(target).and_then(|d| d.memory) == Some(region.object) {
                    return Err(Status::Denied);
                }
                if !self.unmap_region_from(m, region.object, target) {
                    return Err(Status::InvalidArgument);
                }
                ok(None)
            }
            // Answered by the core's VMX code, which holds the vCPUs (see
            // `peek_target`); a machine without vCPUs has nothing to read.
            Call::DomainPeek | Call::DomainRestart | Call::IrqRaise | Call::IrqLine => {
                Err(Status::UnknownCall)
            }
            Call::MemMerge => {
                let first = self.lookup(ci, a[0], ObjectType::MemRegion, Rights::CONTROL)?;
                let second = self.lookup(ci, a[1], ObjectType::MemRegion, Rights::CONTROL)?;
                let (Some(x), Some(y)) = (
                    self.regions.get(first.object).copied(),
                    self.regions.get(second.object).copied(),
                ) else {
                    return Err(Status::StaleCapability);
                };
                if first.object == second.object || x.hpa.checked_add(x.len) != Some(y.hpa) {
                    return Err(Status::InvalidArgument);
                }
                let busy = |r: &Region| r.mappings.iter().any(Option::is_some) || r.label.is_some();
                // Whoever else held a capability to the first region would
                // gain the second's memory: only the caller's slot may name it.
                let holders = self
                    .cspaces
                    .iter()
                    .flat_map(|c| c.iter())
                    .filter(|(_, c)| c.object == first.object)
                    .count();
                if busy(&x)
                    || busy(&y)
                    || x.owner != y.owner
                    || holders != 1
                    || self.is_domain_memory(first.object)
                    || self.is_domain_memory(second.object)
                {
                    return Err(Status::Denied);
                }
                self.regions.remove(second.object);
                let _ = self.cspaces[ci].delete(a[1]);
                if let Some(r) = self.regions.get_mut(first.object) {
                    r.len += y.len;
                }
                ok(None)
            }
            Call::MemSize => {
                let cap = self.lookup(ci, a[0], ObjectType::MemRegion, Rights::empty())?;
                let region = self
                    .regions
                    .get(cap.object)
                    .ok_or(Status::StaleCapability)?;
                ok(Some(region.len))
            }
            Call::MemZero => {
                let cap = self.lookup(ci, a[0], ObjectType::MemRegion, Rights::WRITE)?;
                let region = *self
                    .regions
                    .get(cap.object)
                    .ok_or(Status::StaleCapability)?;
                let (offset, len) = (a[1], a[2]);
                let end = offset.checked_add(len).ok_or(Status::InvalidArgument)?;
                if len == 0
                    || len > hypercall_abi::MEM_ZERO_MAX
                    || !offset.is_multiple_of(PAGE)
                    || !len.is_multiple_of(PAGE)
                    || end > region.len
                {
                    return Err(Status::InvalidArgument);
                }
                if region.mappings.iter().any(Option::is_some) || self.is_domain_memory(cap.object)
                {
                    return Err(Status::Denied);
                }
                m.zero_memory(region.hpa + offset, len);
                ok(None)
            }
            Call::DomainSetVcpu => {
                let target = self.target(ci, caller, a[0], Rights::CONTROL, false)?;
                let memory = self
                    .domains
                    .get(target)
                    .and_then(|d| d.memory)
                    .and_then(|r| self.regions.get(r))
                    .map_or(0, |r| r.len);
                let dom = self.created_mut(target)?;
                if a[1] < hypercall_abi::IMAGE_FLOOR || a[1] >= memory {
                    return Err(Status::InvalidAddress);
                }
                dom.initial = Some([a[1], a[2], a[3]]);
                ok(None)
            }
            Call::DomainSetPlatform => {
                let target = self.target(ci, caller, a[0], Rights::CONTROL, false)?;
                let pc = match a[1] {
                    hypercall_abi::PLATFORM_BULKHEAD => false,
                    hypercall_abi::PLATFORM_PC => true,
                    _ => return Err(Status::InvalidArgument),
                };
                self.created_mut(target)?.pc = pc;
                ok(None)
            }
            Call::DomainBindPorts => {
                let target = self.target(ci, caller, a[0], Rights::CONTROL, false)?;
                let cap = self.lookup(ci, a[1], ObjectType::IoPorts, Rights::GRANT)?;
                let ports = *self.ports.get(cap.object).ok_or(Status::StaleCapability)?;
                let hw = self.domains.get(target).ok_or(Status::StaleCapability)?.hw;
                if self
                    .domains
                    .get(target)
                    .is_some_and(|d| d.state == RunState::Stopped)
                {
                    return Err(Status::Denied);
                }
                self.insert_limited(target, Capability::new(cap.object, cap.rights))?;
                m.open_ports(&hw, ports.first, ports.last);
                ok(None)
            }
            Call::DomainStart => {
                let target = self.target(ci, caller, a[0], Rights::CONTROL, false)?;
                let dom = self
                    .domains
                    .get_mut(target)
                    .ok_or(Status::StaleCapability)?;
                if dom.state != RunState::Created || dom.initial.is_none() {
                    return Err(Status::Denied);
                }
                dom.state = RunState::Runnable;
                self.woke = true;
                self.sync(target);
                ok(None)
            }
            Call::ChannelCreate => {
                let mut ends = [caller; 2];
                for (i, end) in ends.iter_mut().enumerate() {
                    if a[i] != SLOT_SELF {
                        *end = self.target(ci, caller, a[i], Rights::CONTROL, false)?;
                    }
                }
                let region = self
                    .lookup(
                        ci,
                        a[2],
                        ObjectType::MemRegion,
                        Rights::MAP | Rights::READ | Rights::WRITE,
                    )?
                    .object;
                if ends[0] == ends[1] {
                    return Err(Status::InvalidArgument);
                }
                let (_, sa, sb) =
                    self.create_channel_over(m, ends[0], ends[1], region, a[3], a[3])?;
                ok(Some(sa as u64 | (sb as u64) << 16))
            }
            Call::Sleep => {
                if a[0] == 0 {
                    return ok(None);
                }
                self.block(caller, None, Some(now.saturating_add(a[0])));
                Ok(Outcome::Block)
            }
        }
    }
}

#[cfg(test)]
mod tests;
