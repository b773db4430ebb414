//! The 8254 programmable interval timer and the PC's port 0x61 (channel
//! 2's gate and output, the speaker bit, the refresh toggle).
//!
//! Time is the caller's TSC; the model converts it to the PIT's 1,193,182
//! Hz clock with the TSC frequency it was given, so nothing ticks between
//! calls: a count read is computed from the time the count started, and
//! the caller asks [`Pit::take_irq0_edges`] how many times channel 0's
//! output rose (its IRQ 0 requests) and [`Pit::next_irq0`] when it rises
//! next.
//!
//! Modelled: the control word (channel, access LSB / MSB / LSB-then-MSB,
//! modes 0–5, counter latch, read-back of counts and status), modes 0
//! (interrupt on terminal count), 2 (rate generator), 3 (square wave) and
//! 4 (software strobe) exactly for what a guest can observe through OUT
//! and the counts (mode 3's count is read as mode 2's, at half the real
//! step), modes 1 and 5 started by a rising gate (channel 2 only: the
//! others' gates are tied high). BCD counting is accepted and counted in
//! binary.

/// The PIT's input clock.
pub const PIT_HZ: u64 = 1_193_182;
/// Channel 0 (IRQ 0).
pub const PORT_COUNTER0: u16 = 0x40;
/// Channel 1 (DRAM refresh on old PCs).
pub const PORT_COUNTER1: u16 = 0x41;
/// Channel 2 (the speaker; its gate and output are in port 0x61).
pub const PORT_COUNTER2: u16 = 0x42;
/// The control word.
pub const PORT_CONTROL: u16 = 0x43;
/// Port 0x61: bit 0 gate 2, bit 1 speaker data, bit 4 refresh toggle,
/// bit 5 OUT 2.
pub const PORT_SPEAKER: u16 = 0x61;

/// Which bytes of the count an access moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Lsb,
    Msb,
    Word,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Channel {
    mode: u8,
    access: Access,
    bcd: bool,
    /// The count loaded (1..=65536).
    reload: u64,
    /// PIT-clock time the current count started; `None`: no count loaded
    /// (or waiting for its gate).
    start: Option<u64>,
    /// A count is loaded and starts on the next rising gate (modes 1, 5).
    armed: bool,
    /// LSB written, waiting for the MSB (word access).
    half: Option<u8>,
    /// Reading the MSB next (word access).
    read_msb: bool,
    /// A latched count (and which byte comes next).
    latched: Option<(u16, bool)>,
    /// A latched status byte, read before the count.
    status: Option<u8>,
    /// Rising edges of OUT already reported (channel 0).
    edges_taken: u64,
}

impl Channel {
    const fn new() -> Self {
        Self {
            mode: 0,
            access: Access::Word,
            bcd: false,
            reload: 0x1_0000,
            start: None,
            armed: false,
            half: None,
            read_msb: false,
            latched: None,
            status: None,
            edges_taken: 0,
        }
    }

    fn elapsed(&self, now: u64) -> Option<u64> {
        self.start.map(|s| now.saturating_sub(s))
    }

    fn periodic(&self) -> bool {
        matches!(self.mode, 2 | 3)
    }

    /// The count as a read would see it.
    fn count(&self, now: u64) -> u16 {
        let Some(e) = self.elapsed(now) else {
            return self.reload as u16;
        };
        let value = if self.periodic() {
            self.reload - e % self.reload
        } else {
            // Counts on past 0, wrapping at 16 bits.
            self.reload.wrapping_sub(e) & 0xffff
        };
        value as u16
    }

    /// The OUT pin.
    fn out(&self, now: u64) -> bool {
        let Some(e) = self.elapsed(now) else {
            // Modes 0 (after the control word) start low; the others high.
            return self.mode != 0;
        };
        match self.mode {
            0 | 1 => e >= self.reload,
            2 => e % self.reload != self.reload - 1,
            3 => e % self.reload < self.reload.div_ceil(2),
            // Modes 4, 5: low for one clock at terminal count.
            _ => e != self.reload,
        }
    }

    /// Rising edges of OUT from the start up to `now`.
    fn edges(&self, now: u64) -> u64 {
        let Some(e) = self.elapsed(now) else {
            return 0;
        };
        match self.mode {
            0 | 1 => u64::from(e >= self.reload),
            // Mode 2 rises after its one low clock, mode 3 at each period.
            2 | 3 => e / self.reload,
            _ => u64::from(e > self.reload),
        }
    }

    /// PIT-clock time of the next rising edge of OUT after `now`.
    fn next_edge(&self, now: u64) -> Option<u64> {
        let start = self.start?;
        let e = now.saturating_sub(start);
        match self.mode {
            0 | 1 => (e < self.reload).then(|| start + self.reload),
            2 | 3 => Some(start + (e / self.reload + 1) * self.reload),
            _ => (e <= self.reload).then(|| start + self.reload + 1),
        }
    }

    fn status_byte(&self, now: u64) -> u8 {
        let rw = match self.access {
            Access::Lsb => 1,
            Access::Msb => 2,
            Access::Word => 3,
        };
        (u8::from(self.out(now)) << 7)
            | (u8::from(self.start.is_none() && !self.armed) << 6)
            | (rw << 4)
            | (self.mode << 1)
            | u8::from(self.bcd)
    }

    fn load(&mut self, count: u16, now: u64, gate: bool) {
        self.reload = if count == 0 {
            0x1_0000
        } else {
            u64::from(count)
        };
        self.edges_taken = 0;
        if matches!(self.mode, 1 | 5) {
            self.armed = true;
            self.start = None;
        } else if gate {
            self.start = Some(now);
        } else {
            self.start = None;
            self.armed = true;
        }
    }
}

/// The three channels and port 0x61.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pit {
    channels: [Channel; 3],
    tsc_hz: u64,
    /// Port 0x61 bits 0 (gate 2) and 1 (speaker data).
    port61: u8,
}

impl Pit {
    /// A PIT whose time is a TSC running at `tsc_hz` (at least 1).
    pub const fn new(tsc_hz: u64) -> Self {
        Self {
            channels: [Channel::new(), Channel::new(), Channel::new()],
            tsc_hz: if tsc_hz == 0 { 1 } else { tsc_hz },
            port61: 0,
        }
    }

    /// TSC ticks to PIT clocks.
    fn pit_time(&self, tsc: u64) -> u64 {
        (u128::from(tsc) * u128::from(PIT_HZ) / u128::from(self.tsc_hz)) as u64
    }

    /// PIT clocks to TSC ticks (rounded up: the event has happened by then).
    fn tsc_time(&self, pit: u64) -> u64 {
        let t = (u128::from(pit) * u128::from(self.tsc_hz)).div_ceil(u128::from(PIT_HZ));
        u64::try_from(t).unwrap_or(u64::MAX)
    }

    fn gate(&self, channel: usize) -> bool {
        channel != 2 || self.port61 & 1 != 0
    }

    /// A guest's `OUT` to ports 0x40–0x43 or 0x61 at TSC time `now`.
    pub fn write(&mut self, port: u16, value: u8, now: u64) {
        let t = self.pit_time(now);
        match port {
            PORT_COUNTER0..=PORT_COUNTER2 => {
                let i = usize::from(port - PORT_COUNTER0);
                let gate = self.gate(i);
                let c = &mut self.channels[i];
                match c.access {
                    Access::Lsb => c.load(u16::from(value), t, gate),
                    Access::Msb => c.load(u16::from(value) << 8, t, gate),
                    Access::Word => match c.half.take() {
                        None => {
                            c.half = Some(value);
                            // Mode 0 stops counting while a new count is
                            // half written.
                            if c.mode == 0 {
                                c.start = None;
                            }
                        }
                        Some(lsb) => c.load(u16::from(lsb) | u16::from(value) << 8, t, gate),
                    },
                }
            }
            PORT_CONTROL => self.control(value, t),
            PORT_SPEAKER => {
                let rising = value & 1 != 0 && self.port61 & 1 == 0;
                let falling = value & 1 == 0 && self.port61 & 1 != 0;
                self.port61 = value & 0x03;
                let c = &mut self.channels[2];
                if rising && (c.armed || matches!(c.mode, 1 | 5) && c.start.is_some()) {
                    c.armed = false;
                    c.start = Some(t);
                    c.edges_taken = 0;
                }
                if falling && !matches!(c.mode, 1 | 5) && c.start.is_some() {
                    // Counting stops while the gate is low; it resumes
                    // from the reload (a simplification of the real pause).
                    c.start = None;
                    c.armed = true;
                }
            }
            _ => {}
        }
    }

    fn control(&mut self, value: u8, t: u64) {
        let select = value >> 6;
        if select == 3 {
            // Read-back: bit 5 clear latches counts, bit 4 clear status.
            for i in 0..3 {
                if value & (2 << i) == 0 {
                    continue;
                }
                let c = &mut self.channels[i];
                if value & 0x10 == 0 && c.status.is_none() {
                    c.status = Some(c.status_byte(t));
                }
                if value & 0x20 == 0 && c.latched.is_none() {
                    c.latched = Some((c.count(t), false));
                }
            }
            return;
        }
        let c = &mut self.channels[usize::from(select)];
        let access = match (value >> 4) & 3 {
            0 => {
                // Counter latch command.
                if c.latched.is_none() {
                    c.latched = Some((c.count(t), false));
                }
                return;
            }
            1 => Access::Lsb,
            2 => Access::Msb,
            _ => Access::Word,
        };
        let mode = match (value >> 1) & 7 {
            6 => 2,
            7 => 3,
            m => m,
        };
        *c = Channel {
            mode,
            access,
            bcd: value & 1 != 0,
            ..Channel::new()
        };
    }

    /// A guest's `IN` from ports 0x40–0x43 or 0x61 at TSC time `now`
    /// (0x43 and other ports read 0xff).
    pub fn read(&mut self, port: u16, now: u64) -> u8 {
        let t = self.pit_time(now);
        match port {
            PORT_COUNTER0..=PORT_COUNTER2 => {
                let c = &mut self.channels[usize::from(port - PORT_COUNTER0)];
                if let Some(s) = c.status.take() {
                    return s;
                }
                if let Some((count, msb)) = c.latched {
                    let [lo, hi] = count.to_le_bytes();
                    return match c.access {
                        Access::Lsb => {
                            c.latched = None;
                            lo
                        }
                        Access::Msb => {
                            c.latched = None;
                            hi
                        }
                        Access::Word if !msb => {
                            c.latched = Some((count, true));
                            lo
                        }
                        Access::Word => {
                            c.latched = None;
                            hi
                        }
                    };
                }
                let [lo, hi] = c.count(t).to_le_bytes();
                match c.access {
                    Access::Lsb => lo,
                    Access::Msb => hi,
                    Access::Word => {
                        c.read_msb = !c.read_msb;
                        if c.read_msb {
                            lo
                        } else {
                            hi
                        }
                    }
                }
            }
            PORT_SPEAKER => {
                // The refresh toggle flips every 15.085 µs (18 clocks).
                let refresh = u8::from((t / 18) % 2 == 1) << 4;
                let out2 = u8::from(self.channels[2].out(t) && self.gate(2)) << 5;
                self.port61 | refresh | out2
            }
            _ => 0xff,
        }
    }

    /// IRQ 0 requests (rising edges of channel 0's OUT) since the last
    /// call, up to TSC time `now`. A caller that is late gets them all at
    /// once and may deliver one.
    pub fn take_irq0_edges(&mut self, now: u64) -> u64 {
        let t = self.pit_time(now);
        let c = &mut self.channels[0];
        let edges = c.edges(t);
        let new = edges.saturating_sub(c.edges_taken);
        c.edges_taken = edges;
        new
    }

    /// TSC time of channel 0's next IRQ 0 request after `now`, if one is
    /// coming.
    pub fn next_irq0(&self, now: u64) -> Option<u64> {
        let t = self.pit_time(now);
        self.channels[0].next_edge(t).map(|p| self.tsc_time(p))
    }

    /// Channel 0's period in TSC ticks while it counts in a periodic mode
    /// (2 or 3), else `None` (stopped, or a one-shot mode).
    pub fn irq0_period(&self) -> Option<u64> {
        let c = &self.channels[0];
        (c.start.is_some() && c.periodic()).then(|| self.tsc_time(c.reload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A TSC at exactly 10 × the PIT clock keeps the arithmetic readable.
    const HZ: u64 = PIT_HZ * 10;

    #[test]
    fn the_period_is_told_for_periodic_modes_only() {
        let mut p = Pit::new(HZ);
        assert_eq!(p.irq0_period(), None, "not counting");
        p.write(PORT_CONTROL, 0x34, 0);
        p.write(PORT_COUNTER0, 1, 0);
        p.write(PORT_COUNTER0, 0, 0);
        assert_eq!(p.irq0_period(), Some(10), "mode 2, reload 1");
        p.write(PORT_CONTROL, 0x36, 0);
        p.write(PORT_COUNTER0, 0, 0);
        p.write(PORT_COUNTER0, 0, 0);
        assert_eq!(p.irq0_period(), Some(0x1_0000 * 10), "mode 3, count 0");
        p.write(PORT_CONTROL, 0x30, 0);
        p.write(PORT_COUNTER0, 5, 0);
        p.write(PORT_COUNTER0, 0, 0);
        assert_eq!(p.irq0_period(), None, "mode 0 is one-shot");
    }

    #[test]
    fn a_periodic_tick_counts_its_edges_and_says_when_the_next_comes() {
        let mut p = Pit::new(HZ);
        // Linux's setup for HZ = 250: mode 2, LSB then MSB, 4773.
        p.write(PORT_CONTROL, 0x34, 0);
        p.write(PORT_COUNTER0, (4773u16 & 0xff) as u8, 0);
        p.write(PORT_COUNTER0, (4773u16 >> 8) as u8, 100);
        let start = 100 / 10;
        assert_eq!(p.take_irq0_edges(100), 0);
        assert_eq!(p.next_irq0(100), Some((start + 4773) * 10));
        // A second later: 250 ticks (1193182 / 4773 = 249.99).
        let later = 100 + HZ;
        assert_eq!(p.take_irq0_edges(later), 249);
        assert_eq!(p.take_irq0_edges(later), 0, "taken once");
        assert_eq!(p.take_irq0_edges(later + 4773 * 10), 1);
    }

    #[test]
    fn a_one_shot_fires_once_and_the_count_runs_down() {
        let mut p = Pit::new(HZ);
        p.write(PORT_CONTROL, 0x30, 0); // channel 0, word, mode 0
        p.write(PORT_COUNTER0, 0x00, 0);
        p.write(PORT_COUNTER0, 0x10, 0); // 4096
        p.write(PORT_CONTROL, 0x00, 1000); // latch at 100 clocks
        let lo = p.read(PORT_COUNTER0, 5000);
        let hi = p.read(PORT_COUNTER0, 5000);
        assert_eq!(
            u16::from_le_bytes([lo, hi]),
            4096 - 100,
            "the latched value"
        );
        assert_eq!(p.next_irq0(0), Some(4096 * 10));
        assert_eq!(p.take_irq0_edges(4095 * 10), 0);
        assert_eq!(p.take_irq0_edges(5000 * 10), 1);
        assert_eq!(p.take_irq0_edges(90000 * 10), 0, "one shot");
        assert_eq!(p.next_irq0(90000 * 10), None);
    }

    #[test]
    fn channel_2_runs_with_its_gate_and_shows_out_in_port_61() {
        let mut p = Pit::new(HZ);
        // The calibration dance: gate high, speaker off, mode 0, 11932.
        p.write(PORT_SPEAKER, 0x01, 0);
        p.write(PORT_CONTROL, 0xb0, 0);
        p.write(PORT_COUNTER2, (11932u16 & 0xff) as u8, 0);
        p.write(PORT_COUNTER2, (11932u16 >> 8) as u8, 0);
        assert_eq!(p.read(PORT_SPEAKER, 11931 * 10) & 0x20, 0);
        assert_eq!(p.read(PORT_SPEAKER, 11932 * 10) & 0x20, 0x20);
        assert_eq!(p.read(PORT_SPEAKER, 11932 * 10) & 0x03, 0x01);
        // With the gate low the count does not run.
        p.write(PORT_SPEAKER, 0x00, 20000 * 10);
        p.write(PORT_CONTROL, 0xb0, 20000 * 10);
        p.write(PORT_COUNTER2, 0x10, 20000 * 10);
        p.write(PORT_COUNTER2, 0x00, 20000 * 10);
        assert_eq!(p.read(PORT_SPEAKER, 90000 * 10) & 0x20, 0);
        p.write(PORT_SPEAKER, 0x01, 90000 * 10);
        assert_eq!(p.read(PORT_SPEAKER, 90000 * 10 + 16 * 10) & 0x20, 0x20);
    }

    #[test]
    fn read_back_gives_status_then_count() {
        let mut p = Pit::new(HZ);
        p.write(PORT_CONTROL, 0x36, 0); // channel 0, word, mode 3
        p.write(PORT_COUNTER0, 0x00, 0);
        p.write(PORT_COUNTER0, 0x01, 0); // 256
                                         // Read-back of channel 0: status and count.
        p.write(PORT_CONTROL, 0xc2, 10 * 10);
        let status = p.read(PORT_COUNTER0, 10 * 10);
        assert_eq!(status & 0x3f, (3 << 4) | (3 << 1));
        assert_eq!(status & 0x80, 0x80, "mode 3 starts with OUT high");
        let lo = p.read(PORT_COUNTER0, 999);
        let hi = p.read(PORT_COUNTER0, 999);
        assert_eq!(u16::from_le_bytes([lo, hi]), 256 - 10);
        // Unlatched reads follow the clock.
        assert_eq!(
            p.read(PORT_COUNTER0, 20 * 10),
            256u16.wrapping_sub(20) as u8
        );
    }

    #[test]
    fn lsb_and_msb_access_and_a_zero_count() {
        let mut p = Pit::new(HZ);
        p.write(PORT_CONTROL, 0x14, 0); // channel 0, LSB only, mode 2
        p.write(PORT_COUNTER0, 100, 0);
        assert_eq!(p.next_irq0(0), Some(1000));
        p.write(PORT_CONTROL, 0x24, 0); // MSB only
        p.write(PORT_COUNTER0, 0x01, 0);
        assert_eq!(p.next_irq0(0), Some(2560));
        p.write(PORT_CONTROL, 0x34, 0);
        p.write(PORT_COUNTER0, 0, 0);
        p.write(PORT_COUNTER0, 0, 0);
        assert_eq!(p.next_irq0(0), Some(65536 * 10), "0 means 65536");
        assert_eq!(p.read(PORT_CONTROL, 0), 0xff);
    }

    proptest! {
        /// Any accesses at any times (and a TSC of any frequency): no
        /// panic, no overflow, edges never go backwards.
        #[test]
        fn any_access_sequence_is_safe(
            hz in 0u64..u64::MAX,
            ops in proptest::collection::vec((0u16..8, any::<u8>(), any::<u64>()), 0..100),
        ) {
            let mut p = Pit::new(hz);
            let mut now = 0u64;
            for (port, v, dt) in ops {
                now = now.saturating_add(dt % 1_000_000_000);
                let port = [0x40, 0x41, 0x42, 0x43, 0x61, 0x43, 0x40, 0x80][port as usize];
                if v & 1 == 0 {
                    p.write(port, v, now);
                } else {
                    p.read(port, now);
                }
                let _ = p.take_irq0_edges(now);
                if let Some(next) = p.next_irq0(now) {
                    prop_assert!(next >= now.saturating_sub(1) || next == u64::MAX || hz < PIT_HZ);
                }
            }
        }
    }
}
