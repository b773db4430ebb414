//! The 8259A programmable interrupt controller, and the master/slave pair
//! of a PC (the slave cascaded on the master's IR2).
//!
//! Modelled: the initialisation sequence (ICW1–ICW4), the mask (OCW1),
//! non-specific and specific EOI with and without rotation, set-priority
//! and automatic EOI (OCW2), reading IRR or ISR and the poll command
//! (OCW3), special mask mode, edge- and level-triggered inputs, and the
//! interrupt acknowledge that turns the highest-priority request into a
//! vector. Not modelled: 8080/8085 mode, buffered mode, special
//! fully nested mode (a PC does not use them).

/// Master command port.
pub const MASTER_CMD: u16 = 0x20;
/// Master data port.
pub const MASTER_DATA: u16 = 0x21;
/// Slave command port.
pub const SLAVE_CMD: u16 = 0xa0;
/// Slave data port.
pub const SLAVE_DATA: u16 = 0xa1;

/// Where an initialisation sequence stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Init {
    /// Not initialising: data writes set the mask.
    Ready,
    /// Next data write is ICW2; then ICW3 if `cascade`, ICW4 if `icw4`.
    Icw2 {
        cascade: bool,
        icw4: bool,
    },
    Icw3 {
        icw4: bool,
    },
    Icw4,
}

/// One 8259A.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pic {
    /// Interrupt request register.
    irr: u8,
    /// In-service register.
    isr: u8,
    /// Interrupt mask register.
    imr: u8,
    /// Input line levels (for edge detection and level mode).
    lines: u8,
    /// Vector of IR0 (ICW2, low three bits clear).
    base: u8,
    /// The lowest-priority level; IR(lowest + 1) is the highest.
    lowest: u8,
    /// OCW3: a command-port read returns ISR (else IRR).
    read_isr: bool,
    /// OCW3 poll: the next command-port read is a poll.
    poll: bool,
    /// Special mask mode.
    special_mask: bool,
    /// ICW4 automatic EOI.
    auto_eoi: bool,
    /// Rotate in automatic-EOI mode.
    rotate_on_auto_eoi: bool,
    /// ICW1 LTIM: every input level-triggered.
    level: bool,
    init: Init,
}

impl Default for Pic {
    fn default() -> Self {
        Self::new()
    }
}

impl Pic {
    /// As after power-on: everything masked, no vector base.
    pub const fn new() -> Self {
        Self {
            irr: 0,
            isr: 0,
            imr: 0xff,
            lines: 0,
            base: 0,
            lowest: 7,
            read_isr: false,
            poll: false,
            special_mask: false,
            auto_eoi: false,
            rotate_on_auto_eoi: false,
            level: false,
            init: Init::Ready,
        }
    }

    /// The levels in priority order, highest first.
    fn by_priority(&self) -> impl Iterator<Item = u8> {
        let first = (self.lowest + 1) & 7;
        (0..8).map(move |i| (first + i) & 7)
    }

    /// The highest-priority unmasked request that may interrupt what is
    /// in service, if any.
    fn pending(&self) -> Option<u8> {
        let requests = self.irr & !self.imr;
        for level in self.by_priority() {
            let bit = 1 << level;
            if self.isr & bit != 0 && !self.special_mask {
                // Something of higher or equal priority is in service.
                return None;
            }
            if requests & bit != 0 {
                return Some(level);
            }
        }
        None
    }

    /// Whether the INT output is asserted.
    pub fn interrupt(&self) -> bool {
        self.pending().is_some()
    }

    /// Sets input line `level` (0–7) high or low: a rising edge (or a high
    /// level in level mode) requests an interrupt.
    pub fn set_line(&mut self, level: u8, high: bool) {
        let bit = 1 << (level & 7);
        let was = self.lines & bit != 0;
        if high {
            self.lines |= bit;
            if !was || self.level {
                self.irr |= bit;
            }
        } else {
            self.lines &= !bit;
            if self.level {
                self.irr &= !bit;
            }
        }
    }

    /// Interrupt acknowledge: the level being serviced, moved from IRR to
    /// ISR (unless automatic EOI), or `None` (a spurious IR7 on hardware).
    fn acknowledge(&mut self) -> Option<u8> {
        let level = self.pending()?;
        let bit = 1 << level;
        if !self.level {
            self.irr &= !bit;
        }
        if self.auto_eoi {
            if self.rotate_on_auto_eoi {
                self.lowest = level;
            }
        } else {
            self.isr |= bit;
        }
        Some(level)
    }

    /// The highest-priority level in service.
    fn highest_in_service(&self) -> Option<u8> {
        self.by_priority().find(|l| self.isr & (1 << l) != 0)
    }

    fn write_command(&mut self, value: u8) {
        if value & 0x10 != 0 {
            // ICW1.
            self.imr = 0;
            self.isr = 0;
            self.irr = 0;
            self.lowest = 7;
            self.read_isr = false;
            self.poll = false;
            self.special_mask = false;
            self.auto_eoi = false;
            self.rotate_on_auto_eoi = false;
            self.level = value & 0x08 != 0;
            self.init = Init::Icw2 {
                cascade: value & 0x02 == 0,
                icw4: value & 0x01 != 0,
            };
        } else if value & 0x08 == 0 {
            self.ocw2(value);
        } else {
            // OCW3.
            if value & 0x02 != 0 {
                self.read_isr = value & 0x01 != 0;
            }
            self.poll = value & 0x04 != 0;
            if value & 0x40 != 0 {
                self.special_mask = value & 0x20 != 0;
            }
        }
    }

    fn ocw2(&mut self, value: u8) {
        let level = value & 7;
        match value >> 5 {
            // Non-specific EOI (and with rotation).
            0b001 | 0b101 => {
                if let Some(l) = self.highest_in_service() {
                    self.isr &= !(1 << l);
                    if value >> 5 == 0b101 {
                        self.lowest = l;
                    }
                }
            }
            // Specific EOI (and with rotation).
            0b011 | 0b111 => {
                self.isr &= !(1 << level);
                if value >> 5 == 0b111 {
                    self.lowest = level;
                }
            }
            0b100 => self.rotate_on_auto_eoi = true,
            0b000 => self.rotate_on_auto_eoi = false,
            // Set priority.
            0b110 => self.lowest = level,
            _ => {}
        }
    }

    fn write_data(&mut self, value: u8) {
        self.init = match self.init {
            Init::Ready => {
                self.imr = value;
                Init::Ready
            }
            Init::Icw2 { cascade, icw4 } => {
                self.base = value & 0xf8;
                if cascade {
                    Init::Icw3 { icw4 }
                } else if icw4 {
                    Init::Icw4
                } else {
                    Init::Ready
                }
            }
            // The cascade wiring is fixed on a PC: nothing to keep.
            Init::Icw3 { icw4 } => {
                if icw4 {
                    Init::Icw4
                } else {
                    Init::Ready
                }
            }
            Init::Icw4 => {
                self.auto_eoi = value & 0x02 != 0;
                Init::Ready
            }
        };
    }

    fn read_command(&mut self) -> u8 {
        if core::mem::take(&mut self.poll) {
            return match self.acknowledge() {
                Some(level) => 0x80 | level,
                None => 0,
            };
        }
        if self.read_isr {
            self.isr
        } else {
            self.irr
        }
    }

    /// The vector base programmed by ICW2.
    pub fn base(&self) -> u8 {
        self.base
    }

    /// The mask register.
    pub fn mask(&self) -> u8 {
        self.imr
    }
}

/// The PC's two 8259As: the slave's INT drives the master's IR2.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PicPair {
    /// The master (IRQ 0–7).
    pub master: Pic,
    /// The slave (IRQ 8–15).
    pub slave: Pic,
}

impl PicPair {
    /// Both as after power-on.
    pub const fn new() -> Self {
        Self {
            master: Pic::new(),
            slave: Pic::new(),
        }
    }

    fn cascade(&mut self) {
        let int = self.slave.interrupt();
        self.master.set_line(2, int);
    }

    /// Sets IRQ line `irq` (0–15) high or low. A pulse (high then low)
    /// is how an edge-triggered device such as the PIT requests.
    pub fn set_irq(&mut self, irq: u8, high: bool) {
        if irq & 15 < 8 {
            self.master.set_line(irq & 7, high);
        } else {
            self.slave.set_line(irq & 7, high);
            self.cascade();
        }
    }

    /// Whether IRQ `irq` is requested or in service (a new edge on it now
    /// would be lost).
    pub fn busy(&self, irq: u8) -> bool {
        let (pic, bit) = if irq & 15 < 8 {
            (&self.master, 1u8 << (irq & 7))
        } else {
            (&self.slave, 1u8 << (irq & 7))
        };
        (pic.irr | pic.isr) & bit != 0
    }

    /// Requests IRQ `irq` with an edge (raises and lowers the line).
    pub fn pulse(&mut self, irq: u8) {
        self.set_irq(irq, true);
        self.set_irq(irq, false);
    }

    /// Whether an interrupt is waiting to be delivered to the CPU.
    pub fn interrupt(&self) -> bool {
        self.master.interrupt()
    }

    /// The CPU takes the interrupt: its vector, or `None` when nothing is
    /// pending (the caller delivers nothing).
    pub fn acknowledge(&mut self) -> Option<u8> {
        let level = self.master.acknowledge()?;
        if level == 2 {
            let vector = self.slave.acknowledge().map(|l| self.slave.base | l);
            self.cascade();
            // Spurious on the slave: its IR7.
            return Some(vector.unwrap_or(self.slave.base | 7));
        }
        Some(self.master.base | level)
    }

    /// A guest's `OUT` to one of the four ports; other ports are ignored.
    pub fn write(&mut self, port: u16, value: u8) {
        match port {
            MASTER_CMD => self.master.write_command(value),
            MASTER_DATA => self.master.write_data(value),
            SLAVE_CMD => self.slave.write_command(value),
            SLAVE_DATA => self.slave.write_data(value),
            _ => return,
        }
        self.cascade();
    }

    /// A guest's `IN` from one of the four ports (others read 0xff).
    pub fn read(&mut self, port: u16) -> u8 {
        let value = match port {
            MASTER_CMD => self.master.read_command(),
            MASTER_DATA => self.master.imr,
            SLAVE_CMD => self.slave.read_command(),
            SLAVE_DATA => self.slave.imr,
            _ => 0xff,
        };
        self.cascade();
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What Linux's `init_8259A` writes: vectors 0x30 and 0x38, the slave
    /// on IR2, 8086 mode, normal EOI.
    fn linux_init(p: &mut PicPair) {
        for (port, v) in [
            (MASTER_DATA, 0xff),
            (SLAVE_DATA, 0xff),
            (MASTER_CMD, 0x11),
            (MASTER_DATA, 0x30),
            (MASTER_DATA, 0x04),
            (MASTER_DATA, 0x01),
            (SLAVE_CMD, 0x11),
            (SLAVE_DATA, 0x38),
            (SLAVE_DATA, 0x02),
            (SLAVE_DATA, 0x01),
            (MASTER_DATA, 0xfb),
            (SLAVE_DATA, 0xff),
        ] {
            p.write(port, v);
        }
    }

    #[test]
    fn the_linux_init_sequence_programs_bases_and_masks() {
        let mut p = PicPair::new();
        linux_init(&mut p);
        assert_eq!((p.master.base(), p.slave.base()), (0x30, 0x38));
        assert_eq!((p.read(MASTER_DATA), p.read(SLAVE_DATA)), (0xfb, 0xff));
        assert!(!p.interrupt());
    }

    #[test]
    fn a_timer_tick_is_acknowledged_and_ended() {
        let mut p = PicPair::new();
        linux_init(&mut p);
        // Unmask IRQ0, tick.
        p.write(MASTER_DATA, 0xfa);
        p.pulse(0);
        assert!(p.interrupt());
        assert_eq!(p.acknowledge(), Some(0x30));
        assert!(!p.interrupt(), "in service now");
        // A second tick while the first is in service waits.
        p.pulse(0);
        assert!(!p.interrupt());
        // Read ISR through OCW3.
        p.write(MASTER_CMD, 0x0b);
        assert_eq!(p.read(MASTER_CMD), 0x01);
        // Linux's specific EOI (0x60 + irq).
        p.write(MASTER_CMD, 0x60);
        assert!(p.interrupt());
        assert_eq!(p.acknowledge(), Some(0x30));
        p.write(MASTER_CMD, 0x20); // non-specific EOI
        assert!(!p.interrupt());
        assert_eq!(p.acknowledge(), None);
    }

    #[test]
    fn masked_lines_wait_and_priority_orders_requests() {
        let mut p = PicPair::new();
        linux_init(&mut p);
        p.write(MASTER_DATA, 0x00);
        p.write(SLAVE_DATA, 0x00);
        p.pulse(4);
        p.pulse(1);
        p.pulse(12);
        // IR1 first, then the slave's (through IR2), then IR4.
        assert_eq!(p.acknowledge(), Some(0x31));
        p.write(MASTER_CMD, 0x20);
        assert_eq!(p.acknowledge(), Some(0x38 + 4));
        // The slave's request ends on both.
        p.write(SLAVE_CMD, 0x20);
        p.write(MASTER_CMD, 0x20);
        assert_eq!(p.acknowledge(), Some(0x34));
        p.write(MASTER_CMD, 0x20);
        // A masked request stays in IRR until unmasked.
        p.write(MASTER_DATA, 0x08);
        p.pulse(3);
        assert!(!p.interrupt());
        p.write(MASTER_CMD, 0x0a);
        assert_eq!(p.read(MASTER_CMD) & 0x08, 0x08, "IRR shows it");
        p.write(MASTER_DATA, 0x00);
        assert_eq!(p.acknowledge(), Some(0x33));
    }

    #[test]
    fn auto_eoi_poll_and_level_mode() {
        let mut p = PicPair::new();
        // ICW4 with AEOI.
        for (port, v) in [
            (MASTER_CMD, 0x11),
            (MASTER_DATA, 0x20),
            (MASTER_DATA, 0x04),
            (MASTER_DATA, 0x03),
        ] {
            p.write(port, v);
        }
        p.pulse(5);
        assert_eq!(p.acknowledge(), Some(0x25));
        p.pulse(5);
        assert_eq!(p.acknowledge(), Some(0x25), "nothing stays in service");
        // Poll: the next command read acknowledges.
        p.pulse(6);
        p.write(MASTER_CMD, 0x0c);
        assert_eq!(p.read(MASTER_CMD), 0x86);
        assert_eq!(p.read(MASTER_CMD), 0, "back to reading IRR");
        // Level-triggered: the request lasts while the line is high.
        let mut l = Pic::new();
        l.write_command(0x19);
        l.write_data(0x40);
        l.write_data(0x00);
        l.set_line(3, true);
        assert_eq!(l.acknowledge(), Some(3));
        l.write_command(0x20);
        assert!(l.interrupt(), "still high");
        l.set_line(3, false);
        assert!(!l.interrupt());
    }

    #[test]
    fn rotation_and_set_priority() {
        let mut p = Pic::new();
        p.write_command(0x13);
        p.write_data(0x08);
        p.write_data(0x01);
        p.write_data(0x00);
        // Lowest = 3: IR4 is now the highest.
        p.write_command(0xc3);
        p.set_line(0, true);
        p.set_line(5, true);
        assert_eq!(p.acknowledge(), Some(5));
        // Rotate on non-specific EOI: 5 becomes lowest, 6 highest.
        p.write_command(0xa0);
        assert_eq!(p.lowest, 5);
        assert_eq!(p.acknowledge(), Some(0));
    }

    proptest! {
        /// Any port writes and reads in any order: no panic, and an
        /// acknowledged vector always comes from a programmed base.
        #[test]
        fn any_access_sequence_is_safe(ops in proptest::collection::vec((0u8..6, any::<u8>()), 0..200)) {
            let mut p = PicPair::new();
            for (op, v) in ops {
                match op {
                    0 => p.write([MASTER_CMD, MASTER_DATA, SLAVE_CMD, SLAVE_DATA][(v & 3) as usize], v),
                    1 => { p.read([MASTER_CMD, MASTER_DATA, SLAVE_CMD, SLAVE_DATA][(v & 3) as usize]); }
                    2 => p.pulse(v & 15),
                    3 => p.set_irq(v & 15, v & 0x80 != 0),
                    4 => {
                        if let Some(vector) = p.acknowledge() {
                            prop_assert!(vector & 0xf8 == p.master.base() || vector & 0xf8 == p.slave.base());
                        }
                    }
                    _ => p.write(v as u16, v),
                }
            }
        }
    }
}
