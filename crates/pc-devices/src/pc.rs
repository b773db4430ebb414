//! One PC guest's legacy devices behind their ports: what the platform
//! service runs per guest.

use crate::{PicPair, Pit, Rtc};

/// The ports the platform serves; a request's register index is a
/// position in this table (the ioreq protocol's).
pub use hypercall_abi::ioreq::PC_PORTS as PORTS;

/// A PC's PIC pair, PIT, CMOS clock and edge/level control register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pc {
    /// The interrupt controllers.
    pub pics: PicPair,
    /// The timer.
    pub pit: Pit,
    /// The clock.
    pub rtc: Rtc,
    /// ELCR (0x4D0, 0x4D1): kept, every line stays edge-triggered.
    elcr: [u8; 2],
    /// Timer ticks not delivered yet (see [`Pc::tick`]).
    missed: u64,
}

/// Most timer ticks kept for later delivery: a guest that did not run for
/// longer than that loses the rest rather than racing through them.
pub const MAX_MISSED_TICKS: u64 = 1000;

impl Pc {
    /// A PC as after reset, its time a TSC at `tsc_hz`.
    pub fn new(tsc_hz: u64) -> Self {
        Self {
            pics: PicPair::new(),
            pit: Pit::new(tsc_hz),
            rtc: Rtc::new(tsc_hz),
            elcr: [0; 2],
            missed: 0,
        }
    }

    /// An `OUT` to the port of register `index` (see [`PORTS`]) at TSC
    /// time `now`; unknown indices are ignored.
    pub fn write(&mut self, index: u8, value: u8, now: u64) {
        let Some(&port) = PORTS.get(usize::from(index)) else {
            return;
        };
        match port {
            0x20 | 0x21 | 0xa0 | 0xa1 => self.pics.write(port, value),
            0x40..=0x43 | 0x61 => self.pit.write(port, value, now),
            0x70 | 0x71 => self.rtc.write(port, value),
            0x4d0 | 0x4d1 => self.elcr[usize::from(port - 0x4d0)] = value,
            // No keyboard controller: writes go nowhere.
            _ => {}
        }
    }

    /// An `IN` from the port of register `index` at TSC time `now`
    /// (unknown indices and absent devices read 0xff).
    pub fn read(&mut self, index: u8, now: u64) -> u8 {
        let Some(&port) = PORTS.get(usize::from(index)) else {
            return 0xff;
        };
        match port {
            0x20 | 0x21 | 0xa0 | 0xa1 => self.pics.read(port),
            0x40..=0x43 | 0x61 => self.pit.read(port, now),
            0x70 | 0x71 => self.rtc.read(port, now),
            0x4d0 | 0x4d1 => self.elcr[usize::from(port - 0x4d0)],
            // No i8042: its status reads all ones, as on a PC without one.
            _ => 0xff,
        }
    }

    /// Brings the timer up to `now`: channel 0's ticks since the last call
    /// are counted, and one becomes an IRQ 0 edge whenever IRQ 0 is
    /// neither requested nor in service. A tick that comes while the last
    /// is not handled yet is delivered after it (up to
    /// [`MAX_MISSED_TICKS`]), so the guest's tick count keeps up with the
    /// time even when it runs late (Linux checks its TSC against it).
    pub fn tick(&mut self, now: u64) {
        let new = self.pit.take_irq0_edges(now);
        self.missed = self.missed.saturating_add(new).min(MAX_MISSED_TICKS);
        if self.missed > 0 && !self.pics.busy(0) {
            self.pics.pulse(0);
            self.missed -= 1;
        }
    }

    /// Ticks counted but not delivered yet.
    pub fn ticks_waiting(&self) -> u64 {
        self.missed
    }

    /// The vector of the next interrupt to deliver, acknowledged at the
    /// PIC (in service from now on), or `None`.
    pub fn next_vector(&mut self) -> Option<u8> {
        self.pics.acknowledge()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PIT_HZ;

    #[test]
    fn linux_s_timer_setup_leads_to_ticks_and_vectors() {
        let hz = PIT_HZ * 10;
        let mut pc = Pc::new(hz);
        let idx = |p: u16| PORTS.iter().position(|&x| x == p).unwrap() as u8;
        for (port, v) in [
            (0x21, 0xff),
            (0xa1, 0xff),
            (0x20, 0x11),
            (0x21, 0x30),
            (0x21, 0x04),
            (0x21, 0x01),
            (0xa0, 0x11),
            (0xa1, 0x38),
            (0xa1, 0x02),
            (0xa1, 0x01),
            (0x21, 0xfa),
            (0x43, 0x34),
            (0x40, 0x9d),
            (0x40, 0x12),
        ] {
            pc.write(idx(port), v, 0);
        }
        assert_eq!(pc.next_vector(), None);
        let tick = 0x129d * 10;
        assert_eq!(pc.pit.next_irq0(0), Some(tick));
        pc.tick(tick);
        assert_eq!(pc.next_vector(), Some(0x30));
        // In service until the EOI: the next two ticks wait, none is lost.
        pc.tick(3 * tick);
        assert_eq!(pc.next_vector(), None);
        assert_eq!(pc.ticks_waiting(), 2);
        pc.write(idx(0x20), 0x60, 3 * tick);
        pc.tick(3 * tick);
        assert_eq!(pc.next_vector(), Some(0x30));
        pc.write(idx(0x20), 0x60, 3 * tick);
        pc.tick(3 * tick);
        assert_eq!(pc.next_vector(), Some(0x30));
        assert_eq!(pc.ticks_waiting(), 0);
        pc.write(idx(0x20), 0x60, 3 * tick);
        pc.tick(3 * tick);
        assert_eq!(pc.next_vector(), None);
        // A long absence is not replayed in full.
        pc.tick(5000 * tick);
        assert_eq!(pc.ticks_waiting(), MAX_MISSED_TICKS - 1);
        assert_eq!(pc.read(idx(0x21), 0), 0xfa);
        assert_eq!(pc.read(idx(0x64), 0), 0xff);
        assert_eq!(pc.read(99, 0), 0xff);
        pc.write(99, 1, 0);
    }

    proptest::proptest! {
        /// Whatever a guest writes and reads, however time moves and its
        /// lines go: no panic, and every vector offered comes from an ICW2
        /// base (the stable counterpart of the `ports` fuzz target).
        #[test]
        fn any_guest_is_safe(
            ops in proptest::collection::vec((0u8..4, 0u8..20, proptest::prelude::any::<u8>()), 0..300),
        ) {
            let mut pc = Pc::new(PIT_HZ * 3);
            let mut now = 0u64;
            for (kind, index, value) in ops {
                match kind {
                    0 => pc.write(index, value, now),
                    1 => {
                        pc.read(index, now);
                    }
                    2 => now += u64::from(value) * u64::from(index) * 97,
                    _ => pc.pics.set_irq(index % 16, value & 1 == 1),
                }
                pc.tick(now);
                for _ in 0..16 {
                    let Some(vector) = pc.next_vector() else { break };
                    let bases = [pc.pics.master.base(), pc.pics.slave.base()];
                    proptest::prop_assert!(bases.iter().any(|b| vector.wrapping_sub(*b) < 8));
                }
            }
        }
    }
}
