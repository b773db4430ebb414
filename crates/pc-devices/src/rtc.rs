//! The CMOS real-time clock at ports 0x70 (index; bit 7 masks NMI) and
//! 0x71 (data), as much as Linux reads at boot: the time and date in BCD,
//! 24-hour mode, status registers A–D with no update in progress and a
//! valid battery. There is no host clock to follow: the date is fixed and
//! the time of day counts the guest's seconds from midnight. The other
//! bytes of CMOS memory read back what was written.

/// Index port.
pub const PORT_INDEX: u16 = 0x70;
/// Data port.
pub const PORT_DATA: u16 = 0x71;

/// The date the clock shows: year (within the century), month, day, and
/// the century.
const DATE: (u8, u8, u8, u8) = (26, 12, 2, 20);

/// The CMOS clock and its 128 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtc {
    index: u8,
    ram: [u8; 128],
    tsc_hz: u64,
}

fn bcd(v: u64) -> u8 {
    let v = (v % 100) as u8;
    (v / 10) << 4 | (v % 10)
}

impl Rtc {
    /// A clock whose seconds are TSC ticks at `tsc_hz` (at least 1).
    pub fn new(tsc_hz: u64) -> Self {
        Self {
            index: 0,
            ram: [0; 128],
            tsc_hz: tsc_hz.max(1),
        }
    }

    /// An `OUT` to 0x70 or 0x71.
    pub fn write(&mut self, port: u16, value: u8) {
        match port {
            PORT_INDEX => self.index = value & 0x7f,
            PORT_DATA => self.ram[usize::from(self.index)] = value,
            _ => {}
        }
    }

    /// An `IN` from 0x70 (reads 0xff) or 0x71 at TSC time `now`.
    pub fn read(&self, port: u16, now: u64) -> u8 {
        if port != PORT_DATA {
            return 0xff;
        }
        let secs = now / self.tsc_hz;
        let day = secs % 86_400;
        match self.index {
            0x00 => bcd(day % 60),
            0x02 => bcd(day / 60 % 60),
            0x04 => bcd(day / 3600),
            // Day of week (1 = Sunday): 2026-12-02 is a Wednesday.
            0x06 => 4,
            0x07 => bcd(u64::from(DATE.2)),
            0x08 => bcd(u64::from(DATE.1)),
            0x09 => bcd(u64::from(DATE.0)),
            0x32 => bcd(u64::from(DATE.3)),
            // Status A: 32.768 kHz time base, no update in progress.
            0x0a => 0x26,
            // Status B: 24-hour mode, BCD, no interrupts.
            0x0b => 0x02,
            // Status C: no interrupt flags.
            0x0c => 0x00,
            // Status D: the battery is good.
            0x0d => 0x80,
            i => self.ram[usize::from(i)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_reads_bcd_time_and_sane_status() {
        let mut r = Rtc::new(1000);
        let at = |r: &mut Rtc, i: u8, now: u64| {
            r.write(PORT_INDEX, 0x80 | i);
            r.read(PORT_DATA, now)
        };
        // 1 h 2 min 3 s after midnight.
        let now = (3600 + 120 + 3) * 1000;
        assert_eq!(at(&mut r, 0x00, now), 0x03);
        assert_eq!(at(&mut r, 0x02, now), 0x02);
        assert_eq!(at(&mut r, 0x04, now), 0x01);
        assert_eq!(at(&mut r, 0x09, now), 0x26);
        assert_eq!(at(&mut r, 0x08, now), 0x12);
        assert_eq!(at(&mut r, 0x07, now), 0x02);
        assert_eq!(at(&mut r, 0x32, now), 0x20);
        assert_eq!(at(&mut r, 0x0a, now) & 0x80, 0, "no update in progress");
        assert_eq!(at(&mut r, 0x0b, now), 0x02);
        assert_eq!(at(&mut r, 0x0d, now), 0x80);
        // Other bytes are memory.
        r.write(PORT_INDEX, 0x40);
        r.write(PORT_DATA, 0x5a);
        assert_eq!(r.read(PORT_DATA, 0), 0x5a);
        assert_eq!(r.read(PORT_INDEX, 0), 0xff);
        assert_eq!(
            Rtc::new(0).read(PORT_DATA, 5),
            0x05,
            "a zero frequency is taken as 1 Hz"
        );
    }
}
