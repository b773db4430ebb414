//! The domain manager: the supervisor and the front desk. It serves the
//! shell of `crates/domain-mgr` on its virtual UART (which the UART service
//! connects to the keyboard by default) and acts on the domains the
//! manifest gave it CONTROL over, through hypercalls.
//!
//! It owns no device and no memory but its own; it must never trust what
//! is typed (the shell's parser refuses anything malformed with a one-line
//! error) and never stops serving the shell because a command failed.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the domain manager runs as a Bulkhead domain; see `cargo xtask run`");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
mod service {
    use core::fmt;

    use domain_mgr::{
        DomainId, DomainInfo, DomainRow, Error, ExitCounts, MemGrant, MemInfo, Name, Register,
        Shell, Supervisor,
    };
    use hypercall_abi::{ObjectType, StartSlot};
    use mem_broker::proto::{Request, Response, VERSION};
    use rt::{Rights, Status, SLOT_SELF};

    rt::entry!(main);

    /// Sleep between looks at the virtual UART right after something was
    /// typed (milliseconds)...
    const IDLE_MIN_MS: u64 = 4;
    /// ...doubling while nothing is, up to this. Each look is a VM exit
    /// and a round trip through the UART service, and under Bochs a VM
    /// exit costs the running guest its TLB: looking every 4 ms during a
    /// Linux guest's boot cost it about 0.6 s of 8 (docs/BENCHMARKS.md).
    /// A fallen service is restarted at the next look, so within this.
    const IDLE_MAX_MS: u64 = 64;
    /// How long `shutdown` waits for queued console output to be printed.
    const SHUTDOWN_GRACE_MS: u64 = 40;
    /// How long to wait for the memory broker's answer (milliseconds).
    const BROKER_TIMEOUT_MS: u64 = 4_000;
    /// Where a new guest's memory is mapped while its image is loaded.
    const LOAD_WINDOW: u64 = 0x2000_0000;
    /// The most memory a guest may have: what fits the load window.
    const LOAD_MAX: u64 = 0x1000_0000;
    /// Where a guest image is mapped (read-only) while it is loaded.
    const IMAGE_WINDOW: u64 = 0x3000_0000;
    /// The most guests started from the shell that exist at once.
    const MAX_GUESTS: usize = 4;
    /// Capability slots a guest may use.
    const GUEST_SLOTS: u16 = 8;

    /// A guest this manager started.
    #[derive(Clone, Copy)]
    struct Guest {
        /// Its image in the start info (name `guest:NAME`).
        image: &'static StartSlot,
        /// The domain capability.
        domain: u64,
        /// The memory region the broker granted (this manager's slot).
        region: u64,
        /// The memory, in KiB.
        kib: u64,
        /// The broker's tag for the grant.
        tag: u8,
    }

    /// The domains this manager supervises: those the manifest named in
    /// its `control` list, numbered from 1 in that order, then the guests it
    /// started, numbered after them.
    struct Domains {
        info: &'static rt::StartInfo,
        broker: Option<Broker>,
        guests: [Option<Guest>; MAX_GUESTS],
        /// Per controlled domain (by id): left alone when stopped.
        watch: [Watch; WATCHED],
        /// The tag of the next grant asked of the broker.
        next_tag: u8,
        /// [`SHUTDOWN_GRACE_MS`] in TSC ticks.
        shutdown_grace: u64,
    }

    /// How many controlled domains the manager watches for faults.
    const WATCHED: usize = 16;
    /// Restarts of one service before the manager gives up on it.
    const MAX_RESTARTS: u8 = 5;

    /// What the manager knows of a controlled domain's stops.
    #[derive(Clone, Copy, Default)]
    struct Watch {
        /// Stopped with `stop`, not restartable, or given up on.
        left_alone: bool,
        restarts: u8,
    }

    /// The channel to the memory broker.
    struct Broker {
        slot: u64,
        end: shm_ring::End<'static>,
        /// [`BROKER_TIMEOUT_MS`] in TSC ticks.
        timeout: u64,
    }

    impl Broker {
        /// Sends `request` and waits for its answer. Answers to earlier
        /// requests that timed out are passed over ([`Broker::late`]).
        fn call(&self, request: &Request) -> Result<Response, Error> {
            let mut scratch = [0u8; 128];
            // Anything left over is stale (an answer that came too late).
            while let Ok(Some(r)) = self
                .end
                .rx()
                .pop_versioned::<Response>(VERSION, &mut scratch)
            {
                self.late(r);
            }
            self.end
                .tx()
                .push_versioned(VERSION, request)
                .map_err(|_| Error::Hypercall(Status::OutOfResources))?;
            rt::channel_notify(self.slot).map_err(hc)?;
            let deadline = rt::now().saturating_add(self.timeout);
            loop {
                match self
                    .end
                    .rx()
                    .pop_versioned::<Response>(VERSION, &mut scratch)
                {
                    Ok(Some(r)) if r.answers(request) => return Ok(r),
                    Ok(Some(r)) => self.late(r),
                    Ok(None) => {}
                    Err(_) => return Err(Error::Hypercall(Status::InvalidArgument)),
                }
                let now = rt::now();
                if now >= deadline {
                    return Err(Error::Hypercall(Status::TimedOut));
                }
                match rt::channel_wait(self.slot, deadline - now) {
                    Ok(()) | Err(Status::TimedOut) => {}
                    Err(s) => return Err(hc(s)),
                }
            }
        }

        /// An answer nobody waits for any more. A grant that came after
        /// its `start` gave up goes straight back to the broker (its
        /// `Returned` is passed over in turn); anything else is dropped.
        fn late(&self, response: Response) {
            let Response::Granted { tag, slot, kib } = response else {
                return;
            };
            defmt::warn!(
                "the memory broker granted {} KiB (tag {}) after the start gave up; giving it back",
                kib,
                tag
            );
            if let Ok(back) = self.hand_back(tag, u64::from(slot)) {
                if self.end.tx().push_versioned(VERSION, &back).is_ok() {
                    let _ = rt::channel_notify(self.slot);
                }
            }
        }

        /// Sends the region at `region` to the broker and drops this
        /// domain's copy; the `Return` that tells the broker of it.
        fn hand_back(&self, tag: u8, region: u64) -> Result<Request, Status> {
            let theirs = rt::cap_grant(self.slot, region, Rights::all())?;
            let _ = rt::cap_delete(region);
            Ok(Request::Return {
                tag,
                slot: theirs as u32,
            })
        }
    }

    impl Domains {
        fn all(&self) -> impl Iterator<Item = (DomainId, &'static StartSlot)> + '_ {
            let n = (self.info.slot_count as usize).min(self.info.slots.len());
            self.info.slots[..n]
                .iter()
                .filter(|s| s.kind == ObjectType::Domain as u8)
                .enumerate()
                .map(|(i, s)| (i as DomainId + 1, s))
        }

        /// The supervisor's watch, run whenever the shell is idle: a
        /// controlled domain the core reports stopped by a fault
        /// (`DOMAIN_STATUS` bit 63) is restarted (`DOMAIN_RESTART`, which
        /// the core allows for domains the manifest marks `restart`), at
        /// most MAX_RESTARTS times.
        fn restart_fallen(&mut self) {
            let mut fallen = [None; WATCHED];
            for ((id, s), out) in self.all().zip(fallen.iter_mut()) {
                *out = Some((id, s.slot as u64, s.name()));
            }
            for (id, slot, name) in fallen.into_iter().flatten() {
                let Some(w) = self.watch.get_mut(id as usize) else {
                    continue;
                };
                if w.left_alone {
                    continue;
                }
                // Only a fault: a domain that exited or was stopped by a
                // supervisor stays stopped.
                let faulted = rt::domain_info(slot)
                    .is_ok_and(|i| i.state == Some(rt::DomainState::Stopped) && i.faulted);
                if !faulted {
                    continue;
                }
                if w.restarts >= MAX_RESTARTS {
                    defmt::error!(
                        "{=str} (domain {}) stopped again; giving up after {} restarts",
                        name,
                        id,
                        MAX_RESTARTS
                    );
                    w.left_alone = true;
                    continue;
                }
                match rt::domain_restart(slot) {
                    Ok(()) => {
                        w.restarts += 1;
                        defmt::warn!(
                            "{=str} (domain {}) stopped by a fault; restarted it",
                            name,
                            id
                        );
                    }
                    Err(s) => {
                        defmt::error!(
                            "{=str} (domain {}) stopped and cannot be restarted: {}",
                            name,
                            id,
                            s
                        );
                        w.left_alone = true;
                    }
                }
            }
        }

        fn first_guest_id(&self) -> DomainId {
            self.all().count() as DomainId + 1
        }

        fn guests(&self) -> impl Iterator<Item = (DomainId, Guest)> + '_ {
            let first = self.first_guest_id();
            self.guests
                .iter()
                .enumerate()
                .filter_map(move |(i, g)| g.map(|g| (first + i as DomainId, g)))
        }

        /// Domain `id`'s capability slot and name; 0 is the domain manager
        /// itself.
        fn domain(&self, id: DomainId) -> Result<(u64, Name), Error> {
            if id == 0 {
                return Ok((SLOT_SELF, Name::new_or_none(self.info.name())));
            }
            if let Some((_, s)) = self.all().find(|(i, _)| *i == id) {
                return Ok((s.slot as u64, Name::new_or_none(s.name())));
            }
            self.guests()
                .find(|(i, _)| *i == id)
                .map(|(_, g)| (g.domain, guest_name(g.image)))
                .ok_or(Error::NoSuchDomain)
        }

        /// Whether the shell must leave domain `id` alone: the manager
        /// itself, and the services the system runs on (the start info
        /// marks them with `hypercall_abi::role` bits). Stopping the UART
        /// service from its own console would leave nobody to read the
        /// keyboard.
        fn protected(&self, id: DomainId) -> bool {
            use hypercall_abi::role;
            let services = role::CONSOLE | role::MEMORY | role::PLATFORM;
            id == 0 || self.all().any(|(i, s)| i == id && s.gpa & services != 0)
        }

        fn broker(&self) -> Result<&Broker, Error> {
            self.broker.as_ref().ok_or(Error::Unsupported)
        }

        /// Loads guest `image` into `region` (`bytes` long) through the two
        /// windows: an ELF image, or a Linux guest's bundle (bzImage,
        /// initrd, command line). Returns its entry point, the value its
        /// vCPU starts with in RDI and RSI (start info, zero page), and its
        /// platform (`hypercall_abi::PLATFORM_*`).
        fn load(
            &self,
            image: &StartSlot,
            region: u64,
            bytes: u64,
        ) -> Result<(u64, u64, u64), Error> {
            rt::mem_map(SLOT_SELF, image.slot as u64, IMAGE_WINDOW, Rights::READ).map_err(hc)?;
            let loaded =
                match rt::mem_map(SLOT_SELF, region, LOAD_WINDOW, Rights::READ | Rights::WRITE) {
                    Ok(()) => {
                        // SAFETY: the image region is mapped read-only at
                        // IMAGE_WINDOW and holds `image.size` bytes; the guest's
                        // memory is mapped read/write at LOAD_WINDOW, `bytes`
                        // long (at most LOAD_MAX, so the windows do not meet),
                        // and nothing else in this domain uses either range.
                        let (elf, memory) = unsafe {
                            (
                                core::slice::from_raw_parts(
                                    IMAGE_WINDOW as *const u8,
                                    image.size as usize,
                                ),
                                core::slice::from_raw_parts_mut(
                                    LOAD_WINDOW as *mut u8,
                                    bytes as usize,
                                ),
                            )
                        };
                        let loaded = if bzimage_loader::Bundle::is_bundle(elf) {
                            load_linux(image, elf, memory)
                        } else {
                            load_elf(image, elf, memory)
                        };
                        let _ = rt::mem_unmap(SLOT_SELF, region);
                        loaded
                    }
                    Err(s) => Err(hc(s)),
                };
            let _ = rt::mem_unmap(SLOT_SELF, image.slot as u64);
            loaded
        }

        /// Gives a guest's memory back to the broker.
        fn give_back(&self, tag: u8, region: u64) -> Result<(), Error> {
            let broker = self.broker()?;
            match broker.call(&broker.hand_back(tag, region).map_err(hc)?)? {
                Response::Returned { .. } => Ok(()),
                Response::Refused { status, .. } => Err(hc(status_of(status))),
                _ => Err(Error::Hypercall(Status::InvalidArgument)),
            }
        }
    }

    /// An ELF guest: its segments, entry, and the start info in RDI.
    fn load_elf(
        image: &StartSlot,
        elf: &[u8],
        memory: &mut [u8],
    ) -> Result<(u64, u64, u64), Error> {
        let loaded = elf_loader::load(elf, memory, 0).map_err(|e| {
            defmt::error!(
                "guest image {=str}: {}",
                image.name(),
                defmt::Display2Format(&e)
            );
            Error::Hypercall(Status::InvalidArgument)
        })?;
        if loaded.lowest < rt::IMAGE_FLOOR {
            defmt::error!("guest image {=str} starts below 1 MiB", image.name());
            return Err(Error::Hypercall(Status::InvalidAddress));
        }
        Ok((
            loaded.entry,
            hypercall_abi::START_INFO_GPA,
            hypercall_abi::PLATFORM_BULKHEAD,
        ))
    }

    /// A Linux guest: the boot protocol's 64-bit entry, the zero page in
    /// RSI. The core gives every domain the page tables (the first GiB,
    /// identity-mapped) and the selectors that entry needs.
    fn load_linux(
        image: &StartSlot,
        bundle: &[u8],
        memory: &mut [u8],
    ) -> Result<(u64, u64, u64), Error> {
        let refuse = |what: &dyn core::fmt::Display| {
            defmt::error!(
                "guest {=str}: {}",
                image.name(),
                defmt::Display2Format(what)
            );
            Error::Hypercall(Status::InvalidArgument)
        };
        let parts = bzimage_loader::Bundle::parse(bundle).map_err(|e| refuse(&e))?;
        let kernel = bzimage_loader::BzImage::parse(parts.bzimage).map_err(|e| refuse(&e))?;
        let layout = kernel
            .layout(
                memory.len() as u64,
                parts.initrd.len() as u64,
                parts.cmdline.len(),
            )
            .map_err(|e| refuse(&e))?;
        kernel
            .load(&layout, memory, parts.initrd, parts.cmdline)
            .map_err(|e| refuse(&e))?;
        defmt::info!(
            "linux: kernel at {=u64:#x}, {} KiB initrd at {=u64:#x}, entry {=u64:#x}",
            layout.kernel,
            layout.initrd_len / 1024,
            layout.initrd,
            layout.entry
        );
        Ok((layout.entry, layout.zero_page, hypercall_abi::PLATFORM_PC))
    }

    fn guest_name(image: &StartSlot) -> Name {
        Name::new_or_none(image.name().strip_prefix("guest:").unwrap_or(""))
    }

    fn status_of(raw: u8) -> Status {
        Status::from_raw(raw as u64).unwrap_or(Status::InvalidArgument)
    }

    fn hc(s: Status) -> Error {
        Error::Hypercall(s)
    }

    /// A domain's exit counts in full (`DOMAIN_EXITS`' packed form
    /// saturates at 65535, a few seconds of a busy domain).
    fn exit_counts(slot: u64) -> ExitCounts {
        let count = |k| rt::domain_exit_count(slot, k).unwrap_or(0);
        let (hypercall, io, ept) = (count(0), count(1), count(2));
        // Last: a domain reading its own counts exits for each read.
        let all = count(3);
        ExitCounts {
            hypercall,
            io,
            ept,
            other: all.saturating_sub(hypercall + io + ept),
        }
    }

    impl Domains {
        /// `start NAME`: memory from the broker, the image loaded into it,
        /// the domain created and started.
        fn launch(&mut self, name: &str) -> Result<DomainId, Error> {
            let n = (self.info.slot_count as usize).min(self.info.slots.len());
            let image = self.info.slots[..n]
                .iter()
                .find(|s| s.name().strip_prefix("guest:") == Some(name))
                .ok_or(Error::NoSuchName)?;
            if let Some((id, _)) = self.guests().find(|(_, g)| core::ptr::eq(g.image, image)) {
                return Err(Error::AlreadyRunning(id));
            }
            let index = self
                .guests
                .iter()
                .position(Option::is_none)
                .ok_or(Error::TooManyGuests(MAX_GUESTS as u16))?;
            let id = self.first_guest_id() + index as DomainId;
            let bytes = image.gpa;
            if bytes > LOAD_MAX {
                return Err(Error::GuestTooLarge {
                    kib: bytes / 1024,
                    max_kib: LOAD_MAX / 1024,
                });
            }
            let kib = u32::try_from(bytes / 1024).map_err(|_| hc(Status::InvalidArgument))?;
            // A fresh tag per launch: a grant that could not be given back
            // (the broker did not answer) keeps its tag busy, and must not
            // block later starts.
            let tag = self.next_tag;
            self.next_tag = self.next_tag.wrapping_add(1);
            let region = match self.broker()?.call(&Request::Grant { tag, kib })? {
                Response::Granted { slot, kib: got, .. } if got >= kib => slot as u64,
                Response::Granted { slot, kib: got, .. } => {
                    defmt::error!(
                        "the memory broker granted {} KiB for {} KiB; giving it back",
                        got,
                        kib
                    );
                    let _ = self.give_back(tag, slot as u64);
                    return Err(Error::Hypercall(Status::OutOfResources));
                }
                Response::Refused {
                    status, free_kib, ..
                } => {
                    defmt::warn!(
                        "the memory broker refused {} KiB ({} KiB free)",
                        kib,
                        free_kib
                    );
                    return Err(hc(status_of(status)));
                }
                _ => return Err(Error::Hypercall(Status::InvalidArgument)),
            };
            let built = self
                .load(image, region, bytes)
                .and_then(|(entry, arg, platform)| {
                    let domain = rt::domain_create_guest(
                        region,
                        image.priority,
                        GUEST_SLOTS,
                        image.slot as u64,
                    )
                    .map_err(hc)?;
                    let started = rt::domain_set_platform(domain, platform)
                        .and_then(|()| rt::domain_set_vcpu(domain, entry, rt::IMAGE_FLOOR, arg))
                        .and_then(|()| rt::domain_start(domain));
                    match started {
                        Ok(()) => Ok(domain),
                        Err(s) => {
                            let _ = rt::domain_destroy(domain);
                            let _ = rt::cap_delete(domain);
                            Err(hc(s))
                        }
                    }
                });
            match built {
                Ok(domain) => {
                    self.guests[index] = Some(Guest {
                        image,
                        domain,
                        region,
                        kib: kib as u64,
                        tag,
                    });
                    Ok(id)
                }
                Err(e) => {
                    if let Err(back) = self.give_back(tag, region) {
                        defmt::error!(
                            "could not give {} KiB back to the broker: {}",
                            kib,
                            defmt::Display2Format(&back)
                        );
                    }
                    Err(e)
                }
            }
        }
    }

    impl Supervisor for Domains {
        fn list(&mut self, out: &mut dyn FnMut(DomainRow)) {
            let mut rows = [None; 16];
            // Itself first, as domain 0.
            let ids = core::iter::once((0, SLOT_SELF, Name::new_or_none(self.info.name())))
                .chain(
                    self.all()
                        .map(|(id, s)| (id, s.slot as u64, Name::new_or_none(s.name()))),
                )
                .chain(
                    self.guests()
                        .map(|(id, g)| (id, g.domain, guest_name(g.image))),
                );
            for (row, (id, slot, name)) in rows.iter_mut().zip(ids) {
                *row = Some((id, slot, name));
            }
            for (id, slot, name) in rows.into_iter().flatten() {
                let Ok(info) = rt::domain_info(slot) else {
                    continue;
                };
                out(DomainRow {
                    id,
                    name,
                    state: info.state.unwrap_or(rt::DomainState::Stopped),
                    priority: info.priority,
                    mem_kib: info.memory_kib as u64,
                    exits: rt::domain_exit_count(slot, 3).unwrap_or(0),
                });
            }
        }

        fn status(&mut self, id: DomainId) -> Result<DomainInfo, Error> {
            let (slot, name) = self.domain(id)?;
            let info = rt::domain_info(slot).map_err(hc)?;
            Ok(DomainInfo {
                id,
                name,
                state: info.state.unwrap_or(rt::DomainState::Stopped),
                priority: info.priority,
                mem_kib: info.memory_kib as u64,
                exits: exit_counts(slot),
            })
        }

        fn start(&mut self, name: &str) -> Result<DomainId, Error> {
            let began = rt::now();
            let id = self.launch(name)?;
            // The cost of a launch as the user sees it (memory from the
            // broker, ELF load, domain creation, first schedule not
            // included); `cargo xtask bench` reads this line.
            defmt::info!(
                "bench: start {=str}: {=u64} TSC ticks",
                name,
                rt::now().saturating_sub(began)
            );
            Ok(id)
        }

        fn stop(&mut self, id: DomainId) -> Result<(), Error> {
            if self.protected(id) {
                return Err(Error::Protected);
            }
            let slot = self.domain(id)?.0;
            if rt::domain_status(slot).map_err(hc)? == Some(rt::DomainState::Stopped) {
                return Err(Error::NotRunning);
            }
            if let Some(w) = self.watch.get_mut(id as usize) {
                w.left_alone = true;
            }
            rt::domain_stop(slot).map_err(hc)
        }

        fn destroy(&mut self, id: DomainId) -> Result<(), Error> {
            if self.protected(id) {
                return Err(Error::Protected);
            }
            let (slot, _) = self.domain(id)?;
            rt::domain_destroy(slot).map_err(hc)?;
            let first = self.first_guest_id();
            let Some(index) = id.checked_sub(first).map(|i| i as usize) else {
                return Ok(());
            };
            if let Some(g) = self.guests.get_mut(index).and_then(Option::take) {
                let _ = rt::cap_delete(g.domain);
                self.give_back(g.tag, g.region)?;
            }
            Ok(())
        }

        fn dump(&mut self, id: DomainId, out: &mut dyn FnMut(Register)) -> Result<(), Error> {
            if id == 0 {
                // Its own vCPU is the one running: the core has no saved
                // registers to show.
                return Err(Error::Unsupported);
            }
            let (slot, _) = self.domain(id)?;
            for (item, name) in hypercall_abi::peek::REGISTERS.iter().enumerate() {
                let value = rt::domain_peek(slot, item as u64).map_err(hc)?;
                out(Register { name, value });
            }
            Ok(())
        }

        fn dump_log(&mut self, id: DomainId, out: &mut dyn FnMut(&str)) -> Result<(), Error> {
            use hypercall_abi::peek::{LOG, LOG_BYTES};
            let (slot, _) = self.domain(id)?;
            let len = (rt::domain_peek(slot, LOG).map_err(hc)? as usize).min(LOG_BYTES as usize);
            let mut log = [0u8; LOG_BYTES as usize];
            for (k, chunk) in log[..len].chunks_mut(8).enumerate() {
                let word = rt::domain_peek(slot, LOG + 1 + k as u64).map_err(hc)?;
                chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
            }
            for line in log[..len].split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                out(core::str::from_utf8(line).unwrap_or("?"));
            }
            Ok(())
        }

        fn dump_exits(&mut self, id: DomainId, out: &mut dyn FnMut(u16, u64)) -> Result<(), Error> {
            let (slot, _) = self.domain(id)?;
            for reason in 0..hypercall_abi::peek::EXIT_REASONS {
                let n = rt::domain_peek(slot, hypercall_abi::peek::EXITS + reason).map_err(hc)?;
                if n != 0 {
                    out(reason as u16, n);
                }
            }
            Ok(())
        }

        /// Free memory from the broker; each supervised domain's memory
        /// (the services' from the core, the guests' from the broker).
        fn mem(&mut self) -> MemInfo {
            let mut m = MemInfo::EMPTY;
            if let Some(Ok(Response::Totals {
                free_kib, lost_kib, ..
            })) = self.broker.as_ref().map(|b| b.call(&Request::Totals))
            {
                m.free_kib = free_kib;
                m.lost_kib = lost_kib;
            }
            let mut grants = m.grants.iter_mut();
            for (id, slot) in self.all() {
                if let (Ok(info), Some(grant)) = (rt::domain_info(slot.slot as u64), grants.next())
                {
                    *grant = Some(MemGrant {
                        id,
                        name: Name::new_or_none(slot.name()),
                        kib: info.memory_kib as u64,
                    });
                }
            }
            for (id, g) in self.guests() {
                if let Some(grant) = grants.next() {
                    *grant = Some(MemGrant {
                        id,
                        name: guest_name(g.image),
                        kib: g.kib,
                    });
                }
            }
            m
        }

        fn shutdown(&mut self) -> Result<(), Error> {
            // Give the UART service time to print what is still queued for
            // the console (the shell's last lines) before everything stops.
            rt::sleep(self.shutdown_grace);
            rt::shutdown().map_err(hc)
        }
    }

    /// The shell's output: the virtual UART's transmitter.
    struct Uart;

    impl fmt::Write for Uart {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            rt::com1::write(s.as_bytes());
            Ok(())
        }
    }

    fn main(info: &'static rt::StartInfo) -> u64 {
        // Timers are kept in milliseconds; the TSC counts at this rate.
        let hz = rt::tsc_hz();
        let broker = info.find("broker").and_then(|ch| {
            // SAFETY: the channel's pages are mapped at `ch.gpa` for this
            // domain and the broker only; this side lays the rings out.
            let channel =
                unsafe { shm_ring::Channel::init_raw(ch.gpa as *mut u8, ch.size as usize) };
            channel.ok().map(|c| Broker {
                timeout: rt::ms_to_ticks(BROKER_TIMEOUT_MS, hz),
                slot: ch.slot as u64,
                end: c.into_initiator(),
            })
        });
        let mut domains = Domains {
            info,
            broker,
            guests: [None; MAX_GUESTS],
            watch: [Watch::default(); WATCHED],
            next_tag: 0,
            shutdown_grace: rt::ms_to_ticks(SHUTDOWN_GRACE_MS, hz),
        };
        let mut shell: Shell = Shell::new();
        rt::com1::init();
        let images = (0..(info.slot_count as usize).min(info.slots.len()))
            .filter(|&i| info.slots[i].name().starts_with("guest:"))
            .count();
        defmt::info!(
            "ready: {} domain(s) under control, {} guest image(s), memory broker {=str}; shell on the console",
            domains.all().count(),
            images,
            if domains.broker.is_some() { "connected" } else { "absent" }
        );
        shell.prompt(&mut Uart);
        let (idle_min, idle_max) = (
            rt::ms_to_ticks(IDLE_MIN_MS, hz),
            rt::ms_to_ticks(IDLE_MAX_MS, hz),
        );
        let mut idle = idle_min;
        loop {
            match rt::com1::read_byte() {
                Some(byte) => {
                    idle = idle_min;
                    if shell.feed(byte, &mut domains, &mut Uart) == domain_mgr::Flow::Shutdown {
                        return 0;
                    }
                }
                None => {
                    domains.restart_fallen();
                    rt::sleep(idle);
                    idle = idle.saturating_mul(2).min(idle_max);
                }
            }
        }
    }
}
