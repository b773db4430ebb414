//! Random hypercalls through the real VM exit path: numbers known and
//! unknown, arguments drawn from the slots it holds and gets back, from
//! addresses inside and outside its memory, from small numbers and from
//! any 64-bit value. Every 500 calls it starts a domain from a piece of
//! its spare memory (when it has some) on random bytes (whatever those do,
//! the core must contain it; now and then, as a PC guest, on code that
//! sets its PIT ticking at the fastest rate there is, which the platform
//! service must not let starve everyone), and every 1,000 it reads and
//! writes its virtual UART's registers at random; random calls may build more
//! domains, and stop, peek at or destroy the domains it controls. The core
//! must answer every call with a status and keep everyone else's memory
//! and its own intact; the end-to-end tests `chaos` and `hostile-guest`
//! judge the lines it prints at the end. Under Bochs a run repeats itself:
//! the seed comes from the TSC, which counts instructions there, and the
//! domain's name, and is printed. To draw other calls, build with
//! `BULKHEAD_TEST_SEED` set to a number (decimal or `0x` hex), which
//! takes the TSC's place, e.g. `BULKHEAD_TEST_SEED=7 cargo xtask test
//! --e2e-only --filter chaos`.
//!
//! Left out, as they end the test rather than probe the core: `EXIT`,
//! `SHUTDOWN`, and stopping or destroying itself. Waits are bounded.
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod domain {
    use core::sync::atomic::{AtomicU64, Ordering};
    use rt::{Call, Rights, Status, IMAGE_FLOOR, SLOT_NONE, SLOT_SELF};
    rt::entry!(main);

    /// Calls made.
    const CALLS: u32 = 100_000;
    /// Most domains it keeps track of (to destroy them at the end).
    const MAX_CHILDREN: usize = 16;
    /// Most slots it remembers as worth using again.
    const MAX_POOL: usize = 48;
    /// Longest bounded wait (TSC ticks) for `SLEEP` and `CHANNEL_WAIT`.
    const MAX_WAIT: u64 = 200_000;
    /// Every this many calls it also starts a domain running random bytes.
    const SPAWN_EVERY: u32 = 500;
    /// The memory of such a domain: its image floor and 64 KiB.
    const PIECE: u64 = IMAGE_FLOOR + (64 << 10);
    /// Random bytes written from its image floor on.
    const CODE: u64 = 16 << 10;
    /// Where it maps that memory to write them (outside the range its
    /// random addresses mostly fall in).
    const WINDOW: u64 = 0x3800_0000;
    /// Code a PC domain now and then starts at instead of random bytes:
    /// PIT channel 0 in mode 2 with reload 1 (`mov al, 0x34; out 0x43, al;
    /// mov al, 1; out 0x40, al; mov al, 0; out 0x40, al`), an edge every
    /// 0.84 us, then `jmp $`. The platform service, above every domain
    /// here, must not stay awake for those edges.
    const PIT_STORM: [u8; 14] = [
        0xb0, 0x34, 0xe6, 0x43, 0xb0, 0x01, 0xe6, 0x40, 0xb0, 0x00, 0xe6, 0x40, 0xeb, 0xfe,
    ];

    /// Every this many calls it also reads and writes its UART's ports at
    /// random, this many times.
    const STORM_EVERY: u32 = 1_000;
    const STORM: u32 = 64;
    /// Its virtual UART's first port.
    const COM1: u16 = 0x3f8;

    /// A value the core has no business changing.
    static SECRET: AtomicU64 = AtomicU64::new(0);
    const VALUE: u64 = 0xc4a0_5eed_0bad_f00d;

    /// xorshift64*: small, fast, and good enough to spread the arguments.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// What an argument is drawn as.
    #[derive(Clone, Copy)]
    enum Arg {
        /// A slot it holds (mostly), or any slot number.
        Slot,
        /// A domain: [`SLOT_SELF`] or a slot.
        Domain,
        /// An address in its memory (mostly), in the channel window, or any.
        Address,
        /// A length or offset of whole pages.
        Pages,
        /// Below the number.
        Below(u64),
        /// An entry point or stack in a new domain's memory.
        Entry,
        /// A guest image for `DOMAIN_CREATE`: mostly [`SLOT_NONE`].
        Image,
        /// Anything [`Chaos::argument`] draws.
        Any,
    }

    struct Chaos {
        rng: Rng,
        /// The spare region's slot and the bytes still in it.
        spare: Option<(u64, u64)>,
        /// The memory `spawn` runs domains in, once cut.
        piece: Option<u64>,
        /// The domain running random bytes.
        runner: Option<u64>,
        memory: u64,
        pool: [u64; MAX_POOL],
        pooled: usize,
        children: [u64; MAX_CHILDREN],
        child_count: usize,
    }

    impl Chaos {
        /// Runs a new domain on random bytes: destroys the one it ran
        /// before and takes its memory back, or cuts a piece off its spare
        /// memory the first time; fills the start of the image area with
        /// random bytes and starts the domain at one of them.
        fn spawn(&mut self) -> Result<(), Status> {
            // Domains random calls built have had their chance: they would
            // fill the core's domain table.
            for &child in &self.children[..self.child_count] {
                let _ = rt::domain_destroy(child);
            }
            self.child_count = 0;
            if let Some(child) = self.runner.take() {
                // Stopped or not, it goes; its memory stays ours.
                let _ = rt::domain_destroy(child);
            }
            let piece = match self.piece {
                Some(piece) => piece,
                None => {
                    let (spare, left) = self.spare.ok_or(Status::EmptySlot)?;
                    if left < 2 * PIECE {
                        return Err(Status::OutOfResources);
                    }
                    let piece = rt::mem_split(spare, left - PIECE)?;
                    self.spare = Some((spare, left - PIECE));
                    self.piece = Some(piece);
                    piece
                }
            };
            // Half of them as PC guests: ports nothing serves read as
            // absent, `HLT` waits for an interrupt, and the PIC, PIT and
            // CMOS ports go to the platform service when one runs. One PC
            // guest in four runs PIT_STORM.
            let pc = self.rng.below(2) == 0;
            let storm = pc && self.rng.below(4) == 0;
            let entry = IMAGE_FLOOR + self.rng.below(CODE - PIT_STORM.len() as u64);
            rt::mem_map(SLOT_SELF, piece, WINDOW, Rights::READ | Rights::WRITE)?;
            for i in 0..CODE {
                testdomains::arch::write_u8(WINDOW + IMAGE_FLOOR + i, self.rng.next() as u8);
            }
            if storm {
                for (i, &b) in PIT_STORM.iter().enumerate() {
                    testdomains::arch::write_u8(WINDOW + entry + i as u64, b);
                }
            }
            rt::mem_unmap(SLOT_SELF, piece)?;
            let child = rt::domain_create(piece, 2 + self.rng.below(2) as u8, 8)?;
            self.runner = Some(child);
            self.remember(child);
            if pc {
                rt::domain_set_platform(child, rt::PLATFORM_PC)?;
            }
            rt::domain_set_vcpu(child, entry, PIECE - 0x1000, self.rng.next())?;
            rt::domain_start(child)
        }

        /// Random reads and writes of its virtual 16550's registers (the
        /// UART service's model when one runs, else the core's own).
        fn storm(&mut self) {
            for _ in 0..STORM {
                let port = COM1 + self.rng.below(8) as u16;
                if self.rng.below(2) == 0 {
                    testdomains::arch::outb(port, self.rng.next() as u8);
                } else {
                    let _ = testdomains::arch::inb(port);
                }
            }
        }

        fn remember(&mut self, slot: u64) {
            if slot < 64 && !self.pool[..self.pooled].contains(&slot) && self.pooled < MAX_POOL {
                self.pool[self.pooled] = slot;
                self.pooled += 1;
            }
        }

        fn slot(&mut self) -> u64 {
            match self.rng.below(20) {
                0..=13 if self.pooled > 0 => self.pool[self.rng.below(self.pooled as u64) as usize],
                14 => SLOT_SELF,
                15 => SLOT_NONE,
                16..=18 => self.rng.below(40),
                _ => self.rng.next(),
            }
        }

        fn address(&mut self) -> u64 {
            let page = self.rng.below(self.memory / 4096) * 4096;
            match self.rng.below(10) {
                0..=3 => page,
                4 => page + self.rng.below(4096),
                5..=6 => 0x1000_0000 + self.rng.below(0x2000_0000 / 4096) * 4096,
                7 => self.memory - self.rng.below(8),
                _ => self.rng.next(),
            }
        }

        fn argument(&mut self) -> u64 {
            match self.rng.below(8) {
                0..=2 => self.slot(),
                3..=4 => self.address(),
                5 => self.rng.below(64),
                6 => (self.rng.below(1024) + 1) * 4096,
                _ => self.rng.next(),
            }
        }

        fn draw(&mut self, kind: Arg) -> u64 {
            match kind {
                Arg::Slot => self.slot(),
                Arg::Domain => {
                    if self.rng.below(4) == 0 {
                        SLOT_SELF
                    } else {
                        self.slot()
                    }
                }
                Arg::Address => self.address(),
                Arg::Pages => (self.rng.below(2048) + 1) * 4096,
                Arg::Below(n) => self.rng.below(n),
                Arg::Entry => IMAGE_FLOOR + self.rng.below(8 << 20),
                Arg::Image => {
                    if self.rng.below(4) == 0 {
                        self.slot()
                    } else {
                        SLOT_NONE
                    }
                }
                Arg::Any => self.argument(),
            }
        }

        /// The arguments of `call`: half the time each drawn as what the
        /// call expects there (so that calls get past the first check and
        /// build on each other), else anything.
        fn arguments(&mut self, call: Option<Call>) -> [u64; 4] {
            use Arg::*;
            let shape = match call {
                Some(Call::LogWrite) => [Address, Below(300), Any, Any],
                Some(Call::CapDerive) => [Slot, Below(256), Any, Any],
                Some(Call::CapGrant) => [Slot, Slot, Below(256), Any],
                Some(Call::MemSplit) => [Slot, Pages, Any, Any],
                Some(Call::MemMap) => [Domain, Slot, Address, Below(8)],
                Some(Call::ChannelWait) => [Slot, Below(MAX_WAIT), Any, Any],
                Some(Call::Sleep) => [Below(MAX_WAIT), Any, Any, Any],
                Some(Call::DomainCreate) => [Slot, Below(5), Below(34), Image],
                Some(Call::DomainSetVcpu) => [Slot, Entry, Entry, Any],
                Some(Call::DomainBindPorts | Call::MemMerge) => [Slot, Slot, Any, Any],
                Some(Call::ChannelCreate) => [Domain, Domain, Slot, Address],
                Some(Call::DomainExits) => [Domain, Below(6), Any, Any],
                Some(Call::MemUnmap) => [Domain, Slot, Any, Any],
                Some(Call::MemZero) => [Slot, Pages, Pages, Any],
                Some(Call::DomainPeek) => [Slot, Below(0x210), Any, Any],
                Some(Call::LogFlush) => [Address, Any, Any, Any],
                Some(Call::DomainSetPlatform) => [Slot, Below(3), Any, Any],
                Some(Call::IrqRaise | Call::IrqLine) => [Below(10), Below(300), Below(3), Any],
                _ => [Slot, Any, Any, Any],
            };
            let typed = self.rng.below(2) == 0;
            shape.map(|kind| self.draw(if typed { kind } else { Any }))
        }

        /// One call; returns its number and RAX.
        fn one(&mut self) -> (u64, u64) {
            loop {
                let number = match self.rng.below(50) {
                    0 => self.rng.next(),
                    1 => Call::ALL.len() as u64 + self.rng.below(1000),
                    _ => self.rng.below(Call::ALL.len() as u64),
                };
                let mut a = self.arguments(Call::from_raw(number));
                // The memory `spawn` uses is its own business.
                if self.spare.is_some_and(|(spare, _)| a.contains(&spare))
                    || self.piece.is_some_and(|piece| a.contains(&piece))
                {
                    continue;
                }
                match Call::from_raw(number) {
                    Some(Call::Exit | Call::Shutdown) => continue,
                    Some(Call::DomainStop | Call::DomainDestroy) if a[0] == SLOT_SELF => continue,
                    Some(Call::CapDelete)
                        if self.children[..self.child_count].contains(&a[0])
                            || self.runner == Some(a[0]) =>
                    {
                        continue
                    }
                    Some(Call::Sleep) => a[0] %= MAX_WAIT,
                    Some(Call::ChannelWait) => a[1] %= MAX_WAIT,
                    Some(Call::IoReqWait) => a[0] = a[0] % MAX_WAIT + 1,
                    _ => {}
                }
                let (rax, rdx) = rt::raw_call(number, a[0], a[1], a[2], a[3]);
                if rax == Status::Ok.raw() {
                    self.learn(Call::from_raw(number), rdx);
                }
                return (number, rax);
            }
        }

        /// Keeps the slots a successful call handed back.
        fn learn(&mut self, call: Option<Call>, rdx: u64) {
            match call {
                Some(Call::CapDerive | Call::CapGrant | Call::MemSplit) => self.remember(rdx),
                Some(Call::DomainCreate) => {
                    self.remember(rdx);
                    if self.child_count < MAX_CHILDREN {
                        self.children[self.child_count] = rdx;
                        self.child_count += 1;
                    }
                }
                Some(Call::ChannelCreate) => {
                    self.remember(rdx & 0xffff);
                    self.remember((rdx >> 16) & 0xffff);
                }
                _ => {}
            }
        }
    }

    fn main(info: &'static rt::StartInfo) -> u64 {
        SECRET.store(VALUE, Ordering::SeqCst);
        // Bochs runs the same way every time, so the TSC adds little: the
        // name makes domains of this image draw different calls, and a
        // seed given at build time makes runs differ.
        let base = match testdomains::build_seed() {
            Some(Some(v)) => v,
            Some(None) => {
                rt::log!("chaos: BULKHEAD_TEST_SEED is not a number (decimal or 0x hex)");
                return 2;
            }
            None => rt::now(),
        };
        let seed = info.name().bytes().fold(base | 1, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        rt::log!("chaos: {CALLS} random hypercalls, seed {seed:#x}");
        let mut c = Chaos {
            rng: Rng(seed),
            spare: None,
            piece: None,
            runner: None,
            memory: info.memory_bytes.max(4096),
            pool: [0; MAX_POOL],
            pooled: 0,
            children: [0; MAX_CHILDREN],
            child_count: 0,
        };
        let n = (info.slot_count as usize).min(info.slots.len());
        for s in &info.slots[..n] {
            // The spare region is kept for `spawn`: no random call names
            // its slot.
            if s.name() == "spare" {
                // A third of it for the random calls to play with.
                let third = s.size / 3 / 4096 * 4096;
                if let Ok(play) = rt::mem_split(s.slot as u64, s.size - third) {
                    c.remember(play);
                }
                c.spare = Some((s.slot as u64, s.size - third));
            } else {
                c.remember(s.slot as u64);
            }
        }
        let (mut ok, mut refused, mut unknown, mut no_status) = (0u32, 0u32, 0u32, 0u32);
        let mut created = 0u32;
        let mut started = 0u32;
        let (mut spawned, mut spawn_failures) = (0u32, 0u32);
        for i in 0..CALLS {
            // Without spare memory (a guest the domain manager started)
            // it makes the calls and the port accesses only.
            if i % SPAWN_EVERY == 0 && c.spare.is_some() {
                match c.spawn() {
                    Ok(()) => spawned += 1,
                    Err(e) => {
                        spawn_failures += 1;
                        if spawn_failures <= 3 {
                            rt::log!("chaos: could not start a domain on random bytes: {e:?}");
                        }
                    }
                }
            }
            if i % STORM_EVERY == 0 {
                c.storm();
            }
            let (number, rax) = c.one();
            match Status::from_raw(rax) {
                Some(Status::Ok) => {
                    ok += 1;
                    match Call::from_raw(number) {
                        Some(Call::DomainCreate) => created += 1,
                        Some(Call::DomainStart) => started += 1,
                        _ => {}
                    }
                }
                Some(Status::UnknownCall) => unknown += 1,
                Some(_) => refused += 1,
                None => {
                    no_status += 1;
                    if no_status <= 4 {
                        rt::log!("chaos: call {number:#x} answered RAX {rax:#x}, no status");
                    }
                }
            }
        }
        // The domains it made may still run: they go with it.
        for &child in &c.children[..c.child_count] {
            let _ = rt::domain_destroy(child);
        }
        if let Some(child) = c.runner {
            let _ = rt::domain_destroy(child);
        }
        rt::log!(
            "chaos: {ok} answered Ok, {refused} refused, {unknown} unknown; \
             {created} domain(s) created and {started} started by random calls"
        );
        let intact = SECRET.load(Ordering::SeqCst) == VALUE;
        if no_status == 0 && intact {
            // Formatted, so that no LOG_WRITE of its own memory at a random
            // address can print this line before it is true.
            rt::log!(
                "chaos: done: {CALLS} calls, {spawned} domains run on random bytes: \
                 every call answered with a status; my memory is intact"
            );
            0
        } else {
            rt::log!("chaos: {no_status} answer(s) were no status; memory intact: {intact}");
            1
        }
    }
}
