//! The UART service: a deprivileged domain that owns COM1 (the manifest
//! gives it ports 0x3F8–0x3FF) and gives every other domain a virtual
//! 16550A. The core forwards each domain's accesses to its virtual UART as
//! requests on the ioreq channel; this service runs one `uart_virt`
//! register model per domain, answers the reads, and writes every domain's
//! output, a line at a time with the domain's name as prefix, to the
//! physical port, after the core's own console lines, which it takes from
//! the core's console ring (docs/UART.md).
//!
//! It trusts nothing it reads from the ring (malformed frames are skipped by
//! the ring and counted) and never blocks the core: when the physical port
//! is busy, output waits in the console's bounded per-domain buffers.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the UART service runs as a Bulkhead domain; see `cargo xtask run`");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
mod service {
    use hypercall_abi::ioreq::{
        Request, Response, GPA, GUESTS, LOG_GPA, LOG_LINE_MAX, LOG_PAGES, STATE_GPA, STATE_PAGES,
    };
    use rt::ioreq::Next;
    use uart_virt::{
        kept_len, snapshot_len, Changes, Console, Fed, InputSwitch, Kept, KeyQueue, Sink, Snapshot,
        Trigger, Uart16550, UartState, FOCUS_LEN, KEY_QUEUE_LEN,
    };

    rt::entry!(main);

    /// How long the service sleeps at most between looks at the keyboard
    /// (milliseconds).
    const INPUT_POLL_MS: u64 = 6;
    /// Rounds without output from the focused console before its partial
    /// line is shown...
    const FLUSH_AFTER: u32 = 3;
    /// ...and milliseconds since its last output (rounds come fast when
    /// other guests print, and a guest's line can arrive in pieces: its
    /// writes are posted and handed over when it leaves the CPU).
    const FLUSH_AFTER_MS: u64 = 40;

    /// Writes a byte to the port, `\n` as `\r\n`.
    fn put(byte: u8) {
        if byte == b'\n' {
            rt::com1::write_byte(b'\r');
        }
        rt::com1::write_byte(byte);
    }

    /// Prints the core's console lines waiting on its console ring, oldest
    /// first, each released once it is out (a line the service dies in the
    /// middle of is printed again by the core).
    fn print_core_lines(rx: &shm_ring::Consumer<'_>) {
        let mut line = [0u8; LOG_LINE_MAX];
        loop {
            let n = match rx.pop_bytes(&mut line) {
                Ok(Some(n)) => n,
                // Longer than any line the core writes: not one of its.
                Err(shm_ring::RingError::BufferTooSmall { .. }) if rx.skip().is_ok() => {
                    rx.release();
                    continue;
                }
                _ => return,
            };
            line[..n].iter().for_each(|&b| put(b));
            put(b'\n');
            rx.release();
        }
    }

    /// The 16550's interrupt output, on IRQ line 4 of its guest: the core
    /// passes it to a PC guest's PIC (the platform service) and ignores it
    /// for a domain without one. The model reports changes only.
    struct Irq4(u8);
    impl Trigger for Irq4 {
        fn set_level(&mut self, high: bool) {
            if rt::irq_line(self.0, 4, high).is_err() {
                defmt::warn!("IRQ 4 of guest {} could not be set", self.0);
            }
        }
    }

    /// Bytes a guest transmitted during one access.
    #[derive(Default)]
    struct Out {
        bytes: [u8; 4],
        len: usize,
    }
    impl Sink for Out {
        fn write_byte(&mut self, byte: u8) {
            if self.len < self.bytes.len() {
                self.bytes[self.len] = byte;
                self.len += 1;
            }
        }
    }

    fn main(info: &'static rt::StartInfo) -> u64 {
        // SAFETY: this is the UART service: the core maps its ioreq
        // channel at GPA for it alone before starting it; attached once.
        let Ok(mut server) = (unsafe { rt::ioreq::Server::attach() }) else {
            defmt::error!("the ioreq channel is not laid out at {=u64:#x}", GPA);
            return 1;
        };
        // Requests taken off the ring are handed back to the core only once
        // a snapshot that reflects them is saved (end of each round): if
        // this service dies in the middle of a round, the next one finds
        // them on the ring again.
        server.end().rx().defer_release(true);
        // SAFETY: the core maps its console ring (LOG_PAGES pages) at
        // LOG_GPA for this service alone, after the state pages; the core
        // produces, this service consumes, and the ring's code reads it
        // defensively.
        let core_lines =
            unsafe { shm_ring::Ring::attach_raw(LOG_GPA as *mut u8, (LOG_PAGES * 4096) as usize) }
                .map(|r| r.into_consumer());
        match &core_lines {
            Ok(rx) => rx.defer_release(true),
            Err(_) => defmt::error!("the core's console ring is not laid out; its lines are lost"),
        }
        defmt::info!(
            "{=str}: serving virtual UARTs over the ioreq channel",
            info.name()
        );
        let mut uarts: [Option<Uart16550<Irq4, Out>>; GUESTS] = [const { None }; GUESTS];
        let mut console: Console<GUESTS> = Console::new();
        let mut scratch = [0u8; 128];
        // Keyboard input goes to console 0 (the first domain of the
        // manifest: the domain manager's shell) until Ctrl-A N switches it
        // to a console that has a domain (one attached, or seen at work).
        let mut input = InputSwitch::shell_only(GUESTS as u8);
        // In TSC ticks (the constants above are times: 6 ms was 300,000
        // ticks under Bochs but 100 us on a 3 GHz CPU).
        let hz = rt::tsc_hz();
        let (input_poll, flush_after) = (
            rt::ms_to_ticks(INPUT_POLL_MS, hz),
            rt::ms_to_ticks(FLUSH_AFTER_MS, hz),
        );
        let mut focus_idle = 0u32;
        let mut focus_last = rt::now();
        let mut focus_flushed = false;
        // SAFETY: the core maps STATE_PAGES pages at STATE_GPA for this
        // domain alone, right after the ioreq channel, and keeps them when
        // it restarts this service; nothing else in this domain uses them.
        let state = unsafe {
            core::slice::from_raw_parts_mut(STATE_GPA as *mut u8, (STATE_PAGES * 4096) as usize)
        };
        // After the snapshot's two slots, what is kept for each guest: its
        // 16550 settings, the bytes its receiver holds and the keys typed
        // for it that its receiver has not taken yet; then where input
        // goes.
        let (state, rest) = state.split_at_mut(snapshot_len(GUESTS));
        let (kept, rest) = rest.split_at_mut(kept_len(GUESTS));
        let (keys, focus) = rest.split_at_mut(GUESTS * KEY_QUEUE_LEN);
        let (Some(mut kept), Ok(keys), Some(focus)) = (
            Kept::over(kept, GUESTS),
            <&mut [[u8; KEY_QUEUE_LEN]; GUESTS]>::try_from(keys.as_chunks_mut().0),
            focus.first_chunk_mut::<FOCUS_LEN>(),
        ) else {
            defmt::error!("the state pages are too small for what a restart keeps");
            return 1;
        };
        // Input stays with the console that had it: keys typed during the
        // outage, or just after, go where the user was typing, not to the
        // shell. Its domain attaches again in the first round (the core
        // queued that); if it does not, input goes back to the shell at the
        // end of that round.
        let mut resumed = input.resume(focus);
        if let Some(console) = resumed {
            defmt::info!("input stays with console {} across the restart", console);
        }
        let mut keys = keys.each_mut().map(KeyQueue::over);
        // Bit `g`: keys wait for guest `g` (one test per round when none do).
        let mut waiting: u32 = 0;
        for (guest, q) in keys.iter().enumerate() {
            if !q.is_empty() {
                waiting |= 1 << guest;
            }
        }
        if waiting != 0 {
            defmt::info!("keys typed before a restart wait for their guests");
        }
        // What a previous run of this service had not printed yet, and
        // where on the ring its snapshot stands.
        let (mut snapshot, kept_bytes) = restore(state, &kept, &mut console, &mut uarts);
        if let Some(position) = snapshot.position {
            // Requests up to there are in the snapshot already.
            if !matches!(server.end().rx().skip_to(position), Ok(Some(_))) {
                defmt::warn!("the snapshot's ring position is gone; serving the ring as it stands");
            }
        }
        if kept_bytes > 0 {
            defmt::info!(
                "{} byte(s) of console output kept from before a restart",
                kept_bytes
            );
        }
        let mut first_round = true;
        loop {
            while let Some(byte) = rt::com1::read_byte() {
                // Ctrl-A then `!`: fault on purpose, to exercise a
                // supervisor's restart. Ctrl-A then `#`: leave the request
                // ring's consumer index where no consumer could have moved
                // it and carry on serving, as a buggy service might; the
                // core is to notice at the next IOREQ call and stop this
                // domain as faulted. Both test-only, documented in
                // docs/UART.md. The switch tracks the escape (Ctrl-A
                // Ctrl-A is a literal Ctrl-A and arms nothing).
                if input.escape_pending() && byte == b'!' {
                    // The fault comes between rounds, with nothing in
                    // flight: the answer held for the core goes first.
                    server.done();
                    defmt::warn!("fault requested from the console (Ctrl-A !)");
                    rt::arch::fault();
                }
                if input.escape_pending() && byte == b'#' {
                    defmt::warn!("request ring corrupted from the console (Ctrl-A #); serving on");
                    // SAFETY: the ioreq channel is mapped at GPA for this
                    // domain (attached above), page-aligned, so the request
                    // ring's consumer index at OFF_CONSUMER is an aligned
                    // u32 that the ring itself accesses only atomically; the
                    // core reads it only while this domain is not running
                    // (one CPU).
                    unsafe {
                        (*((GPA as usize + shm_ring::OFF_CONSUMER)
                            as *const core::sync::atomic::AtomicU32))
                            .store(0xdead_beef, core::sync::atomic::Ordering::Release);
                    }
                    // The next IOREQ call, before this half releases
                    // anything and so writes a sound index over it.
                    server.done();
                }
                match input.feed(byte) {
                    Fed::Deliver(target, byte) => {
                        if let Some(q) = keys.get_mut(target as usize) {
                            q.push(byte);
                            waiting |= 1 << target;
                        }
                    }
                    Fed::NoConsole(id) => {
                        defmt::warn!(
                            "Ctrl-A {}: no domain has console {}; input stays with console {}",
                            id,
                            id,
                            input.current()
                        );
                    }
                    Fed::Switched(_) => *focus = input.focus_record(),
                    Fed::Nothing => {}
                }
            }
            // Typed keys wait until the guest's receiver has room.
            if waiting != 0 {
                waiting = deliver_keys(&mut keys, &mut uarts, &mut kept);
            }
            // Hands the core the answers of the last round (the reads on the
            // response ring, and the held one) and waits for requests.
            if server.wait(input_poll).is_err() {
                defmt::error!("IOREQ_WAIT refused; stopping");
                return 2;
            }
            let mut focus_wrote = false;
            let mut handed_back = None;
            // Whether the console's buffered output changed this round (the
            // state pages are brought up to date only then).
            let mut changed = false;
            loop {
                let request = match server.next(&mut scratch) {
                    Next::Request(r) => r,
                    Next::Empty => break,
                    Next::Reset(e) => {
                        defmt::warn!("ioreq ring: {}; reset it", defmt::Debug2Format(&e));
                        break;
                    }
                };
                match request {
                    Request::Attach {
                        guest,
                        name,
                        len,
                        fresh,
                        incarnation,
                    } => {
                        let (Some(slot), Some(q)) =
                            (uarts.get_mut(guest as usize), keys.get_mut(guest as usize))
                        else {
                            continue;
                        };
                        // Whether what this service keeps for the slot is
                        // this domain's (see `uart_virt::Kept::claim`).
                        let [generation, restarts] = incarnation;
                        let incarnation = u64::from(generation) << 32 | u64::from(restarts);
                        let same = kept.claim(guest, incarnation, fresh);
                        if resumed == Some(guest) {
                            resumed = None;
                            if !same {
                                // Another domain has the slot now.
                                input.select(uart_virt::SHELL);
                                *focus = input.focus_record();
                                defmt::info!(
                                    "console {}: a new domain has it; input goes to the shell",
                                    guest
                                );
                            }
                        }
                        if !same {
                            // A new domain in the slot: a 16550 as after
                            // reset. Nothing of the one before reaches it
                            // (registers, scratch byte, received bytes,
                            // keys typed for it); its output already
                            // buffered is still printed under its name
                            // (`hand_over` below), its last line ended.
                            q.clear();
                            waiting &= !(1 << guest);
                            *slot = None;
                        }
                        // A guest already known (its accesses arrived first,
                        // after a restart of this service) keeps its model
                        // and its buffered output; it only gets its name.
                        if slot.is_none() {
                            *slot = Some(model(&kept, guest));
                        }
                        input.set_present(guest, true);
                        let n = (len as usize).min(name.len());
                        let name = core::str::from_utf8(&name[..n]).unwrap_or("?");
                        let mut label = [0u8; 16];
                        let label = join(&mut label, name, "/uart");
                        if !same {
                            console.hand_over(guest, label);
                            changed = true;
                        } else {
                            console.set_name(guest, label);
                        }
                    }
                    // Interrupt lines are the platform service's.
                    Request::Line { .. } => {}
                    Request::Detach { guest } => {
                        // The domain stopped: its last line is printed,
                        // its 16550 and the keys typed for it go, and the
                        // keyboard, if it had it, returns to the shell.
                        if let (Some(slot), Some(q)) =
                            (uarts.get_mut(guest as usize), keys.get_mut(guest as usize))
                        {
                            changed |= console.flush(guest);
                            *slot = None;
                            q.clear();
                            waiting &= !(1 << guest);
                            kept.forget(guest);
                            if input.set_present(guest, false) {
                                *focus = input.focus_record();
                                // Said after this round's output, its
                                // last line among it.
                                handed_back = Some(guest);
                            }
                        }
                    }
                    Request::Accesses {
                        seq,
                        guest,
                        writes,
                        read,
                    } => {
                        let Some(slot) = uarts.get_mut(guest as usize) else {
                            continue;
                        };
                        // Accesses queued before this service (re)started
                        // come from guests it has not seen attach: serve
                        // them anyway, so that no output is dropped; the
                        // guest's Attach names it soon after.
                        let uart = slot.get_or_insert_with(|| {
                            console.set_name(guest, "guest/uart");
                            input.set_present(guest, true);
                            if resumed == Some(guest) {
                                resumed = None;
                            }
                            model(&kept, guest)
                        });
                        if !writes.is_empty() {
                            focus_wrote |= guest == input.current();
                        }
                        for (offset, value) in writes.iter() {
                            uart.write(offset, value);
                            let out = uart.sink_mut();
                            changed |= console.push_bytes(guest, &out.bytes[..out.len]) > 0;
                            out.len = 0;
                        }
                        if let Some(offset) = read {
                            let value = uart.read(offset);
                            if !server.answer(Response { seq, guest, value }) {
                                defmt::warn!("ioreq response ring full; a read goes unanswered");
                            }
                        }
                        // A driver setting the device up, or the guest
                        // reading a received byte (both rare): kept for a
                        // restart.
                        let changes = uart.take_changes();
                        if changes.any() {
                            keep(&mut kept, guest, &uart.snapshot(), changes);
                        }
                    }
                }
            }
            if focus_wrote {
                focus_idle = 0;
                focus_last = rt::now();
                focus_flushed = false;
            } else {
                focus_idle = focus_idle.saturating_add(1);
                // The clock is read only when the rest would flush.
                if focus_idle >= FLUSH_AFTER
                    && !focus_flushed
                    && rt::now().saturating_sub(focus_last) >= flush_after
                {
                    // The focused console stopped writing: show its partial
                    // line (a prompt, echoed keys) instead of waiting for a
                    // newline. One quiet round is not enough: a guest that
                    // polls the line status between bytes has those.
                    focus_flushed = true;
                    changed |= console.flush(input.current());
                }
            }
            // The core's lines of this round come before the guests'. The
            // poll is one load: every round trip of a guest's UART read
            // passes here.
            if let Ok(rx) = &core_lines {
                if rx.may_have_frames() {
                    print_core_lines(rx);
                }
            }
            // A drain empties everything ready (the port takes every byte),
            // so only a round that changed the buffered output (or the
            // first, with output kept from before a restart) has any.
            let drained = if changed || core::mem::take(&mut first_round) {
                console.drain(&mut |byte| {
                    put(byte);
                    true
                })
            } else {
                0
            };
            if let Some(guest) = handed_back {
                defmt::info!(
                    "console {}: its domain stopped; input goes to the shell",
                    guest
                );
            }
            // The first round after a restart tells whether the console that
            // had the keyboard still has its domain.
            if let Some(guest) = resumed.take() {
                give_up_focus(guest, &mut input, focus);
            }
            // Save what changed, then hand the requests taken this round
            // back to the core.
            let position = server.end().rx().position();
            if changed || drained > 0 {
                snapshot.save(state, &console, position);
            } else if snapshot.position != Some(position) {
                snapshot.move_to::<GUESTS>(state, position);
            }
            // Received bytes saved during the round now match the saved
            // ring position.
            if kept.has_pending() {
                kept.commit();
            }
            server.end().rx().release();
        }
    }

    const _: () = assert!(
        snapshot_len(GUESTS) + kept_len(GUESTS) + GUESTS * KEY_QUEUE_LEN + FOCUS_LEN
            <= (STATE_PAGES * 4096) as usize
    );
    const _: () = assert!(GUESTS <= 32, "one bit per guest in `waiting`");

    /// A 16550 for `guest`: with the settings and received bytes a
    /// previous run of this service kept for it, or as after reset. A
    /// driver programs its device once (an interrupt-driven one enables
    /// its interrupts) and relies on finding it so: without them, a Linux
    /// guest's shell never heard its keyboard again after a restart of
    /// this service.
    #[inline(never)]
    fn model(kept: &Kept<'_>, guest: u8) -> Uart16550<Irq4, Out> {
        let mut uart = Uart16550::new(Irq4(guest), Out::default());
        let state = kept.state(guest);
        if state != UartState::RESET && uart.restore(&state).is_err() {
            defmt::warn!("guest {}: kept 16550 state refused; as after reset", guest);
        }
        uart
    }

    /// Keeps what `changes` says a request changed for `guest` (see
    /// `uart_virt::Kept`).
    #[cold]
    #[inline(never)]
    fn keep(kept: &mut Kept<'_>, guest: u8, state: &UartState, changes: Changes) {
        kept.save(guest, state, changes);
    }

    /// The console input resumed to after a restart did not show itself
    /// in the first round (its domain is gone and the core's word of it
    /// was lost, or the core had no room on the ring for its `Attach`):
    /// input goes to the shell. Keys already typed for it stay queued: a
    /// domain that is alive gets them with its next access, and a new
    /// domain's fresh `Attach` in the slot drops them.
    #[cold]
    #[inline(never)]
    fn give_up_focus(guest: u8, input: &mut InputSwitch, focus: &mut [u8; FOCUS_LEN]) {
        if input.set_present(guest, false) {
            defmt::info!(
                "console {}: its domain did not show itself; input goes to the shell",
                guest
            );
        }
        *focus = input.focus_record();
    }

    /// Offers each guest with keys waiting as many as its receiver has
    /// room for (no more: a receiver offered more reports an overrun),
    /// keeping its received bytes before the keys leave their queue, so
    /// that a service that dies in between hands them over twice rather
    /// than never. Returns the guests whose keys still wait (one bit
    /// each): those without a receiver yet, or with a full one.
    #[cold]
    #[inline(never)]
    fn deliver_keys(
        keys: &mut [KeyQueue<'_>; GUESTS],
        uarts: &mut [Option<Uart16550<Irq4, Out>>; GUESTS],
        kept: &mut Kept<'_>,
    ) -> u32 {
        let mut waiting = 0;
        for (guest, (q, slot)) in keys.iter_mut().zip(uarts.iter_mut()).enumerate() {
            if let Some(uart) = slot {
                q.deliver(|offered| {
                    let room = uart.rx_space().min(offered.len());
                    let n = uart.enqueue_input(&offered[..room]);
                    let changes = uart.take_changes();
                    if changes.any() {
                        kept.save_now(guest as u8, &uart.snapshot(), changes);
                    }
                    n
                });
            }
            if !q.is_empty() {
                waiting |= 1 << guest;
            }
        }
        waiting
    }

    /// Feeds back the latest whole snapshot a previous run saved. Guests
    /// with output get a model now and their name when they attach again.
    /// Returns where the snapshot stands and the bytes fed back.
    fn restore(
        state: &[u8],
        kept: &Kept<'_>,
        console: &mut Console<GUESTS>,
        uarts: &mut [Option<Uart16550<Irq4, Out>>; GUESTS],
    ) -> (Snapshot, usize) {
        let Some(loaded) = Snapshot::load::<GUESTS>(state) else {
            return (Snapshot::default(), 0);
        };
        let mut fed = 0;
        for (guest, model) in uarts.iter_mut().enumerate() {
            let bytes = loaded.bytes(guest as u8);
            if bytes.is_empty() {
                continue;
            }
            if model.is_none() {
                console.set_name(guest as u8, "guest/uart");
                *model = Some(self::model(kept, guest as u8));
            }
            fed += console.push_bytes(guest as u8, bytes);
        }
        (loaded.snapshot, fed)
    }

    /// `a` followed by `b`, cut to the buffer.
    fn join<'b>(buf: &'b mut [u8; 16], a: &str, b: &str) -> &'b str {
        let mut n = 0;
        for &c in a.as_bytes().iter().chain(b.as_bytes()) {
            if n == buf.len() {
                break;
            }
            buf[n] = c;
            n += 1;
        }
        core::str::from_utf8(&buf[..n]).unwrap_or("?")
    }
}
