//! The platform service: a deprivileged domain that gives every PC guest
//! (an unmodified Linux) the legacy devices of a PC without ACPI, one set
//! per guest (`pc_devices::Pc`): the 8259A PIC pair, the 8254 PIT with
//! port 0x61, the CMOS clock, the ELCR. The core forwards a PC guest's
//! accesses to those ports (`hypercall_abi::ioreq::PC_PORTS`) as requests
//! on this service's ioreq channel, as it does for the UART service; this
//! service answers the reads, keeps the timers, and hands each interrupt
//! the PIC acknowledges to the core with `IRQ_RAISE`, which injects it.
//!
//! It sleeps in `IOREQ_WAIT` until requests come or the earliest timer of
//! any guest is due. It trusts nothing on the ring: malformed frames are
//! skipped by the ring, unknown registers read 0xff.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the platform service runs as a Bulkhead domain; see `cargo xtask run`");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
mod service {
    use hypercall_abi::ioreq::{Request, Response, GPA, GUESTS};
    use hypercall_abi::Status;
    use pc_devices::Pc;
    use rt::ioreq::Next;

    rt::entry!(main);

    /// Most interrupts handed to the core for one guest in one go: as many
    /// as the core queues for a guest (`IRQ_RAISE`). A guest that sets its
    /// PIC to level-triggered lines with automatic EOI and holds a line high
    /// (its 16550's transmitter interrupt, say) makes the PIC offer the same
    /// interrupt without end, as hardware would; the service moves on.
    const RAISE_MAX: usize = 16;

    /// The shortest sleep between two looks at a guest's periodic timer,
    /// in microseconds. A guest may program its PIT for a period of a
    /// clock or two (0.84 us each); waking at every edge would keep this
    /// service, which runs above the domain manager and the memory broker,
    /// on the CPU for good. Edges that come sooner are counted and handed
    /// over at the next look (at most `pc_devices::MAX_MISSED_TICKS` of
    /// them), as ticks a busy host could not deliver in time. One-shot
    /// counts are waited for as they are: each costs the guest a port
    /// write. (Linux's periodic tick is 1 to 10 ms.)
    const MIN_PERIOD_US: u64 = 500;

    /// Hands guest `guest` the interrupts its PIC has for it now (at most
    /// [`RAISE_MAX`]), and forgets the guest (its devices go) once the core
    /// says no PC guest is there any more (it was stopped or destroyed).
    /// `warned` keeps a full queue at the core to one warning until an
    /// interrupt gets through again.
    fn deliver(guest: usize, slot: &mut Option<Pc>, warned: &mut bool) {
        let Some(pc) = slot else {
            return;
        };
        for _ in 0..RAISE_MAX {
            let Some(vector) = pc.next_vector() else {
                return;
            };
            match rt::irq_raise(guest as u8, vector) {
                Ok(()) => *warned = false,
                // The guest set its PIC's vector base among the CPU's
                // exceptions, which the core refuses to inject: this
                // interrupt is lost (the rest wait for the next round:
                // a level-triggered line with auto-EOI would come back at
                // once), the guest and its devices stay.
                Err(Status::InvalidArgument) if vector < 0x20 => {
                    if !core::mem::replace(warned, true) {
                        defmt::warn!(
                            "guest {}: vector {=u8:#x} is an exception's; not raised (said once until one gets through)",
                            guest,
                            vector
                        );
                    }
                    return;
                }
                Err(Status::InvalidArgument) => {
                    *slot = None;
                    return;
                }
                Err(s) => {
                    if !core::mem::replace(warned, true) {
                        defmt::warn!(
                            "IRQ_RAISE {=u8:#x} for guest {}: {} (said once until one gets through)",
                            vector,
                            guest,
                            defmt::Display2Format(&s)
                        );
                    }
                    return;
                }
            }
        }
    }

    fn main(info: &'static rt::StartInfo) -> u64 {
        // SAFETY: this is the platform service: the core maps its ioreq
        // channel at GPA for it alone before starting it; attached once.
        let Ok(mut server) = (unsafe { rt::ioreq::Server::attach() }) else {
            defmt::error!("the ioreq channel is not laid out at {=u64:#x}", GPA);
            return 1;
        };
        let hz = rt::tsc_hz();
        let min_period = (hz / 1_000_000).saturating_mul(MIN_PERIOD_US).max(1);
        defmt::info!(
            "{=str}: serving PC guests' PIC, PIT and CMOS clock (TSC {} kHz)",
            info.name(),
            hz / 1000
        );
        let mut pcs: [Option<Pc>; GUESTS] = [const { None }; GUESTS];
        let mut warned = [false; GUESTS];
        let mut scratch = [0u8; 128];
        loop {
            // Timers first: ticks that came due, and when the next is.
            let now = rt::now();
            let mut next: Option<u64> = None;
            for (guest, (slot, warned)) in pcs.iter_mut().zip(&mut warned).enumerate() {
                if let Some(pc) = slot {
                    pc.tick(now);
                }
                deliver(guest, slot, warned);
                if let Some(pc) = slot.as_ref() {
                    if let Some(t) = pc.pit.next_irq0(now) {
                        let t = match pc.pit.irq0_period() {
                            Some(p) if p < min_period => t.max(now.saturating_add(min_period)),
                            _ => t,
                        };
                        next = Some(next.map_or(t, |n| n.min(t)));
                    }
                }
            }
            let timeout = next.map_or(0, |t| t.saturating_sub(now).max(1));
            if server.wait(timeout).is_err() {
                defmt::error!("IOREQ_WAIT refused; stopping");
                return 2;
            }
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
                    Request::Attach { guest, fresh, .. } => {
                        // A new guest in this slot: a PC as after reset.
                        // After a restart of this service, a guest whose
                        // accesses came first keeps the PC they set up.
                        let g = guest as usize;
                        if let (Some(slot), Some(warned)) = (pcs.get_mut(g), warned.get_mut(g)) {
                            if fresh || slot.is_none() {
                                *slot = Some(Pc::new(hz));
                                *warned = false;
                            }
                        }
                    }
                    Request::Detach { guest } => {
                        if let Some(slot) = pcs.get_mut(guest as usize) {
                            *slot = None;
                        }
                    }
                    Request::Line { guest, line, high } => {
                        let g = guest as usize;
                        if let (Some(slot), Some(warned)) = (pcs.get_mut(g), warned.get_mut(g)) {
                            if let Some(pc) = slot {
                                pc.pics.set_irq(line, high);
                            }
                            deliver(g, slot, warned);
                        }
                    }
                    Request::Accesses {
                        seq,
                        guest,
                        writes,
                        read,
                    } => {
                        let g = guest as usize;
                        let (Some(slot), Some(warned)) = (pcs.get_mut(g), warned.get_mut(g)) else {
                            continue;
                        };
                        let pc = slot.get_or_insert_with(|| Pc::new(hz));
                        let now = rt::now();
                        for (index, value) in writes.iter() {
                            pc.write(index, value, now);
                        }
                        if let Some(index) = read {
                            let value = pc.read(index, now);
                            if !server.answer(Response { seq, guest, value }) {
                                defmt::warn!("ioreq response ring full; a read goes unanswered");
                            }
                        }
                        // An unmask or an end of interrupt may let one through.
                        pc.tick(now);
                        deliver(g, slot, warned);
                    }
                }
            }
        }
    }
}
