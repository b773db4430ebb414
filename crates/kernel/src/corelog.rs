//! The core's console lines on their way to the serial port.
//!
//! While the UART service takes them from the console ring
//! (`ioreq::LOG_GPA`, mapped into it alone), a line is one frame on that
//! ring and the core never waits for the port: the service prints the
//! lines between its own rounds. Before the service first waits for
//! requests, once it has stopped (the core prints what it left on the
//! ring first), in a system without one, or when the service has
//! corrupted the ring, the caller prints lines straight to the port. The
//! ring is bounded: a line that finds it full is counted, and the count is
//! put on the ring as a line of its own when there is room again.
//!
//! Printing straight to the port keeps the core there for as long as the
//! port takes (at 115,200 baud a 256-byte `LOG_WRITE` line is 22 ms). The
//! time that domains' lines take that way (their `LOG_WRITE`s, log frames
//! and COM1 lines) is held to a share of the CPU ([`PortShare`]): a domain
//! that goes over it waits (a call completing when it wakes, a COM1 write
//! at once), so a domain printing in a loop slows itself down instead of
//! the whole machine. Nothing is dropped.

use core::fmt::{self, Write};

use hypercall_abi::ioreq::LOG_LINE_MAX;
use shm_ring::{Consumer, Producer, RingError};

use crate::system::MAX_DOMAINS;

/// A line being formatted: at most [`LOG_LINE_MAX`] bytes, cut with `...`.
pub struct Line {
    buf: [u8; LOG_LINE_MAX],
    len: usize,
    cut: bool,
}

impl Line {
    /// `args` formatted.
    pub fn format(args: fmt::Arguments<'_>) -> Line {
        let mut line = Line {
            buf: [0; LOG_LINE_MAX],
            len: 0,
            cut: false,
        };
        let _ = line.write_fmt(args);
        if line.cut {
            line.buf[LOG_LINE_MAX - 3..].copy_from_slice(b"...");
        }
        line
    }

    /// The text.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = LOG_LINE_MAX - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        self.cut |= n < s.len();
        Ok(())
    }
}

/// The core's end of the console ring.
pub struct Sink<'a> {
    tx: Producer<'a>,
    live: bool,
    lost: u64,
}

impl<'a> Sink<'a> {
    /// A sink over the producer half of a fresh console ring; not live
    /// until the service is ([`Sink::set_live`]).
    pub fn new(tx: Producer<'a>) -> Self {
        Sink {
            tx,
            live: false,
            lost: 0,
        }
    }

    /// Whether lines go on the ring.
    pub fn live(&self) -> bool {
        self.live
    }

    /// The service takes lines (it waits for requests), or no longer
    /// does (it stopped). A ring the service corrupted stays unused.
    pub fn set_live(&mut self, on: bool) {
        self.live = on && self.tx.free_space().is_ok();
    }

    /// Lines lost to a full ring and not yet reported.
    #[cfg(test)]
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Puts `line` on the ring. False when the caller must print it
    /// itself: the sink is not live, or the ring turned out corrupt (the
    /// sink is then no longer live). A full ring drops the line and counts
    /// it (true).
    pub fn put(&mut self, line: &[u8]) -> bool {
        if !self.live {
            return false;
        }
        if self.lost > 0 {
            let note = Line::format(format_args!(
                "bulkhead: warning: {} console line(s) lost: the UART service fell behind",
                self.lost
            ));
            match self.tx.push_bytes(note.bytes()) {
                Ok(()) => self.lost = 0,
                Err(RingError::Full) => {
                    self.lost += 1;
                    return true;
                }
                Err(_) => {
                    self.live = false;
                    return false;
                }
            }
        }
        match self.tx.push_bytes(&line[..line.len().min(LOG_LINE_MAX)]) {
            Ok(()) => true,
            Err(RingError::Full) => {
                self.lost += 1;
                true
            }
            Err(_) => {
                self.live = false;
                false
            }
        }
    }
}

/// The share of the CPU that printing domains' lines straight to the port
/// may take: one tick in [`PORT_SHARE`].
pub const PORT_SHARE: u64 = 4;

/// How much port time may be spent at once before anyone waits: 50 ms
/// ([`PortShare::burst`]).
pub const PORT_BURST_PER_SECOND: u64 = 20;

/// The port time domains may still spend: it refills at one tick for
/// every [`PORT_SHARE`] ticks that pass, up to a burst of
/// 1/[`PORT_BURST_PER_SECOND`] of a second, and a line printed when it
/// is spent puts it in debt, which the domain that printed waits off:
/// all of it, or, when it has printed less than that since the account
/// was last out of debt, the part it printed. A domain printing a line
/// now and then beside one printing all the time waits for its own line,
/// not for the other's debt; the heavy printer pays for both.
pub struct PortShare {
    /// Ticks left (negative: owed).
    credit: i64,
    /// TSC of the last refill (none yet: the first charge starts it).
    since: Option<u64>,
    /// Port time each domain (by table slot) has spent since the account
    /// was last out of debt.
    spent_in_debt: [u64; MAX_DOMAINS],
}

impl PortShare {
    /// Nothing spent yet (the first charge fills the burst).
    pub const fn new() -> Self {
        PortShare {
            credit: 0,
            since: None,
            spent_in_debt: [0; MAX_DOMAINS],
        }
    }

    fn burst(hz: u64) -> i64 {
        i64::try_from(hz / PORT_BURST_PER_SECOND).unwrap_or(i64::MAX)
    }

    /// Charges `spent` ticks of port time that domain `who` (its table
    /// slot) took, ending at TSC `now` (`hz` ticks a second).
    /// `Some(ticks)`: the credit is spent, and `who` waits that long
    /// before it prints again (until the debt, or its part of it, is paid
    /// back); `None`: it goes on.
    pub fn charge(&mut self, now: u64, hz: u64, spent: u64, who: usize) -> Option<u64> {
        let burst = Self::burst(hz);
        let since = match self.since {
            Some(since) => since,
            None => {
                self.since = Some(now);
                self.credit = burst;
                now
            }
        };
        let gained = now.saturating_sub(since) / PORT_SHARE;
        if gained > 0 {
            // What is left of a share's worth of ticks counts next time.
            self.since = Some(since + gained * PORT_SHARE);
            self.credit = self
                .credit
                .saturating_add(i64::try_from(gained).unwrap_or(i64::MAX))
                .min(burst);
        }
        if self.credit >= 0 {
            self.spent_in_debt = [0; MAX_DOMAINS];
        }
        self.credit = self
            .credit
            .saturating_sub(i64::try_from(spent).unwrap_or(i64::MAX));
        if self.credit >= 0 {
            return None;
        }
        let own = &mut self.spent_in_debt[who % MAX_DOMAINS];
        *own = own.saturating_add(spent);
        Some(
            self.credit
                .unsigned_abs()
                .min(*own)
                .saturating_mul(PORT_SHARE),
        )
    }
}

/// Hands every line left on the console ring, oldest first, to `print`
/// (the core does this when the service has stopped). Stops at the first
/// corrupt frame or index: what is left then cannot be read safely.
pub fn drain(rx: &Consumer<'_>, print: &mut dyn FnMut(&[u8])) -> usize {
    let mut buf = [0u8; LOG_LINE_MAX];
    let mut n = 0;
    loop {
        match rx.pop_bytes(&mut buf) {
            Ok(Some(len)) => {
                print(&buf[..len]);
                n += 1;
            }
            Ok(None) => return n,
            // A frame longer than any line the core writes: skip it.
            Err(RingError::BufferTooSmall { .. }) => {
                if rx.skip().is_err() {
                    return n;
                }
            }
            Err(_) => return n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shm_ring::{Ring, HEADER_LEN};

    fn ring(mem: &mut Vec<u64>) -> (Producer<'_>, Consumer<'_>) {
        let len = mem.len() * 8;
        // SAFETY: a u64 vector is valid as bytes; the borrow covers both halves.
        let bytes = unsafe { core::slice::from_raw_parts_mut(mem.as_mut_ptr().cast::<u8>(), len) };
        Ring::init(bytes).unwrap().split()
    }

    fn all(rx: &Consumer<'_>) -> Vec<String> {
        let mut v = Vec::new();
        drain(rx, &mut |l| v.push(String::from_utf8(l.to_vec()).unwrap()));
        v
    }

    #[test]
    fn lines_go_on_the_ring_only_while_live() {
        let mut mem = vec![0u64; (HEADER_LEN + 4096) / 8];
        let (tx, rx) = ring(&mut mem);
        let mut sink = Sink::new(tx);
        assert!(!sink.put(b"before the service"), "printed by the caller");
        sink.set_live(true);
        assert!(sink.put(b"one"));
        assert!(sink.put(b"two"));
        assert_eq!(all(&rx), ["one", "two"]);
        sink.set_live(false);
        assert!(!sink.put(b"after it stopped"));
        assert!(all(&rx).is_empty());
    }

    #[test]
    fn a_full_ring_counts_what_it_drops_and_says_so_later() {
        let mut mem = vec![0u64; (HEADER_LEN + 1024) / 8];
        let (tx, rx) = ring(&mut mem);
        let mut sink = Sink::new(tx);
        sink.set_live(true);
        let line = [b'x'; 100];
        let mut put = 0;
        while sink.lost() == 0 {
            assert!(sink.put(&line));
            put += 1;
        }
        let got = all(&rx);
        assert_eq!(got.len(), put - 1, "every line that fitted, in order");
        assert!(sink.put(b"after"));
        assert_eq!(
            all(&rx),
            [
                "bulkhead: warning: 1 console line(s) lost: the UART service fell behind",
                "after"
            ]
        );
        assert_eq!(sink.lost(), 0);
    }

    #[test]
    fn a_corrupt_ring_sends_lines_back_to_the_caller() {
        let mut mem = vec![0u64; (HEADER_LEN + 1024) / 8];
        let base = mem.as_mut_ptr();
        let (tx, _rx) = ring(&mut mem);
        let mut sink = Sink::new(tx);
        sink.set_live(true);
        assert!(sink.put(b"fine"));
        // The service writes a consumer index past the producer's.
        // SAFETY: the consumer index is the header's word at byte 128
        // (u64 16); the ring's halves only read it through atomics.
        unsafe { base.add(16).cast::<u32>().write_volatile(0x1000) };
        let line = [b'y'; 200];
        let mut last = true;
        for _ in 0..10 {
            last = sink.put(&line);
            if !last {
                break;
            }
        }
        assert!(!last, "the corruption is found when the ring looks full");
        assert!(!sink.live());
        sink.set_live(true);
        assert!(!sink.live(), "a corrupt ring stays unused");
    }

    #[test]
    fn port_time_is_held_to_a_share_and_debt_is_waited_off() {
        const HZ: u64 = 1_000_000;
        let burst = HZ / PORT_BURST_PER_SECOND;
        let mut p = PortShare::new();
        // Within the burst, nobody waits.
        assert_eq!(p.charge(1_000, HZ, burst / 2, 0), None);
        assert_eq!(p.charge(1_000, HZ, burst / 2, 0), None);
        // Past it, the domain that printed waits its debt off at the share.
        assert_eq!(p.charge(1_000, HZ, 100, 0), Some(100 * PORT_SHARE));
        // After waiting that long, it has paid back.
        let later = 1_000 + 100 * PORT_SHARE;
        assert_eq!(p.charge(later, HZ, 0, 0), None);
        // Printing all the time: a line of `t` ticks every `t` ticks owes
        // more and more; held to one line per PORT_SHARE lines' time it
        // does not.
        let mut now = later;
        for _ in 0..1_000 {
            now += 50;
            if let Some(wait) = p.charge(now, HZ, 50, 0) {
                now += wait;
            }
        }
        let end = now;
        assert!(
            p.charge(end, HZ, 0, 0).is_none(),
            "paid back after its waits"
        );
        // A long silence refills the burst, no more.
        let quiet = end + 100 * HZ;
        assert_eq!(p.charge(quiet, HZ, burst, 0), None);
        assert!(p.charge(quiet, HZ, 1, 0).is_some());
        // A TSC that went backwards gains nothing and breaks nothing.
        assert!(p.charge(0, HZ, 1, 0).is_some());
    }

    #[test]
    fn a_light_printer_waits_for_its_own_lines_not_a_heavy_ones_debt() {
        const HZ: u64 = 1_000_000;
        let burst = HZ / PORT_BURST_PER_SECOND;
        let mut p = PortShare::new();
        // Domain 1 spends the burst and 1,000 ticks more: its debt.
        assert_eq!(p.charge(1_000, HZ, burst, 1), None);
        assert_eq!(p.charge(1_000, HZ, 1_000, 1), Some(1_000 * PORT_SHARE));
        // While it waits, domain 2 prints a 10-tick line: it waits for
        // that line's share only.
        assert_eq!(p.charge(1_400, HZ, 10, 2), Some(10 * PORT_SHARE));
        // Domain 1, back when its own wait is over, owes the rest: the
        // 10 ticks domain 2 added are its to wait off.
        let back = 1_000 + 1_000 * PORT_SHARE;
        assert_eq!(p.charge(back, HZ, 0, 1), Some(10 * PORT_SHARE));
        // Once the account is out of debt, nobody owes anything.
        let clear = back + 10 * PORT_SHARE;
        assert_eq!(p.charge(clear, HZ, 0, 2), None);
        assert_eq!(p.charge(clear, HZ, 5, 2), Some(5 * PORT_SHARE));
        // Slots past the table wrap instead of reaching outside it.
        assert!(p.charge(clear, HZ, 1, usize::MAX).is_some());
    }

    #[test]
    fn long_lines_are_cut() {
        let long = "z".repeat(LOG_LINE_MAX + 10);
        let line = Line::format(format_args!("{long}"));
        assert_eq!(line.bytes().len(), LOG_LINE_MAX);
        assert!(line.bytes().ends_with(b"..."));
        assert_eq!(Line::format(format_args!("a {}", 1)).bytes(), b"a 1");
    }
}
