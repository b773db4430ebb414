//! The 16550A register model one guest sees ([`Uart16550`]).

use crate::regs::*;

/// The interrupt output of the UART (the chip's INTR pin).
///
/// The model calls [`Trigger::set_level`] only when the level changes, so an
/// implementation can map it onto a level-triggered line (IOAPIC) or send an
/// edge on `true` only (an edge-triggered line).
pub trait Trigger {
    /// Drives the interrupt line high (`true`: an enabled interrupt is
    /// pending) or low (`false`: none is).
    fn set_level(&mut self, high: bool);
}

/// Receives the bytes the guest transmits.
///
/// The sink must accept every byte: the model has no transmit back-pressure
/// (THRE is 1 again right after each write). A sink that cannot keep up
/// buffers or drops, and says so (the [`Console`](crate::Console) counts).
pub trait Sink {
    /// Takes one transmitted byte.
    fn write_byte(&mut self, byte: u8);
}

impl<T: Trigger + ?Sized> Trigger for &mut T {
    fn set_level(&mut self, high: bool) {
        (**self).set_level(high);
    }
}

impl<S: Sink + ?Sized> Sink for &mut S {
    fn write_byte(&mut self, byte: u8) {
        (**self).write_byte(byte);
    }
}

/// Bytes the receive FIFO holds when FIFOs are enabled (FCR bit 0).
pub const RX_FIFO_LEN: usize = 16;

/// Divisor latch value after [`Uart16550::new`]: 12, i.e. 9600 baud from the
/// PC's 1.8432 MHz clock (the datasheet leaves the latch undefined at reset).
pub const DEFAULT_DIVISOR: u16 = 12;

/// The modem input lines a guest sees outside loopback: CTS, DSR and DCD
/// asserted, RI not — a peer that is always there and always ready.
pub const EXTERNAL_MODEM_LINES: u8 = MSR_CTS | MSR_DSR | MSR_DCD;

/// Everything guest-visible about one UART, as a plain value: what
/// [`Uart16550::snapshot`] returns and [`Uart16550::restore`] takes.
///
/// LSR, IIR and the MSR line bits are not stored: they are computed from
/// these fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UartState {
    /// Divisor latch, low byte (DLL).
    pub dll: u8,
    /// Divisor latch, high byte (DLM).
    pub dlm: u8,
    /// Interrupt enable register (bits 0-3; bits 4-7 read 0).
    pub ier: u8,
    /// The programmed FCR bits: FIFO enable (0), DMA mode (3), receive
    /// trigger level (6-7). The self-clearing reset bits are never stored;
    /// 0 when FIFOs are disabled.
    pub fcr: u8,
    /// Line control register.
    pub lcr: u8,
    /// Modem control register (bits 0-4; bits 5-7 read 0).
    pub mcr: u8,
    /// Scratch register.
    pub scr: u8,
    /// LSR bit 1: a received byte was lost since LSR was last read.
    pub overrun: bool,
    /// The THR-empty interrupt is pending (cleared by writing THR or by
    /// reading IIR while it is the reported source).
    pub thre_pending: bool,
    /// MSR delta bits 0-3 (DCTS, DDSR, TERI, DDCD), cleared by reading MSR.
    pub msr_delta: u8,
    /// The last byte read from RBR: what RBR returns while nothing was
    /// received.
    pub rbr: u8,
    /// The receive FIFO, oldest byte first.
    pub rx: [u8; RX_FIFO_LEN],
    /// Bytes used in `rx`.
    pub rx_len: u8,
}

impl UartState {
    /// The state after a master reset (datasheet table 5: every register 0
    /// except IIR = 0x01 and LSR = 0x60), with the divisor latch at
    /// [`DEFAULT_DIVISOR`].
    pub const RESET: UartState = UartState {
        dll: DEFAULT_DIVISOR.to_le_bytes()[0],
        dlm: DEFAULT_DIVISOR.to_le_bytes()[1],
        ier: 0,
        fcr: 0,
        lcr: 0,
        mcr: 0,
        scr: 0,
        overrun: false,
        thre_pending: false,
        msr_delta: 0,
        rbr: 0,
        rx: [0; RX_FIFO_LEN],
        rx_len: 0,
    };

    /// The registers a driver programs and then relies on (IER, LCR, MCR,
    /// FCR, the divisor latch) in [`SETTINGS_LEN`] bytes, checked, for a
    /// restarted emulator to find again ([`UartState::from_settings`]).
    /// The received bytes have their own record ([`UartState::received`]);
    /// the rest is transient and not kept: line and modem deltas, the
    /// scratch byte.
    pub fn settings(&self) -> [u8; SETTINGS_LEN] {
        let mut out = [
            SETTINGS_MARK,
            self.ier,
            self.lcr,
            self.mcr,
            self.fcr,
            self.dll,
            self.dlm,
            0,
        ];
        out[SETTINGS_LEN - 1] = record_check(&out);
        out
    }

    /// The state after reset with the settings in `bytes` (from
    /// [`UartState::settings`]): `None` for bytes that are not such a
    /// record (never written, cleared, torn by a writer that died). As on
    /// the chip, an enabled THR-empty interrupt is pending at once: THR is
    /// empty. [`Uart16550::restore`] still checks the values.
    pub fn from_settings(bytes: &[u8; SETTINGS_LEN]) -> Option<UartState> {
        if bytes[0] != SETTINGS_MARK || bytes[SETTINGS_LEN - 1] != record_check(bytes) {
            return None;
        }
        let [_, ier, lcr, mcr, fcr, dll, dlm, _] = *bytes;
        Some(UartState {
            ier,
            lcr,
            mcr,
            fcr,
            dll,
            dlm,
            thre_pending: ier & IER_THRE != 0,
            ..UartState::RESET
        })
    }
}

/// Bytes of [`UartState::settings`].
pub const SETTINGS_LEN: usize = 8;

/// Bytes of [`UartState::received`]: a mark, the count, the receiver's
/// bytes, a check byte.
pub const RECEIVED_LEN: usize = RX_FIFO_LEN + 3;

/// First byte of a received-bytes record (an all-zero record is none).
const RECEIVED_MARK: u8 = 0x3c;

impl UartState {
    /// The bytes the receiver holds (the guest has not read them yet) in
    /// [`RECEIVED_LEN`] bytes, checked, for a restarted emulator to hand
    /// the guest still ([`UartState::with_received`]): with the settings,
    /// what a restart keeps. Only `rx` and `rx_len`: the overrun flag and
    /// the last byte read are not.
    pub fn received(&self) -> [u8; RECEIVED_LEN] {
        let mut out = [0; RECEIVED_LEN];
        out[0] = RECEIVED_MARK;
        out[1] = self.rx_len;
        out[2..2 + RX_FIFO_LEN].copy_from_slice(&self.rx);
        out[RECEIVED_LEN - 1] = record_check(&out);
        out
    }

    /// This state with the receiver's bytes from `bytes` (from
    /// [`UartState::received`]): `None` for bytes that are not such a
    /// record (never written, cleared, torn) or hold more than the mode
    /// this state's FCR selects takes (16 with FIFOs, 1 without).
    pub fn with_received(self, bytes: &[u8; RECEIVED_LEN]) -> Option<UartState> {
        let len = bytes[1];
        let cap = if self.fcr & FCR_ENABLE != 0 {
            RX_FIFO_LEN
        } else {
            1
        };
        if bytes[0] != RECEIVED_MARK
            || bytes[RECEIVED_LEN - 1] != record_check(bytes)
            || usize::from(len) > cap
        {
            return None;
        }
        let mut rx = [0; RX_FIFO_LEN];
        rx.copy_from_slice(&bytes[2..2 + RX_FIFO_LEN]);
        Some(UartState {
            rx,
            rx_len: len,
            ..self
        })
    }
}

/// What [`Uart16550::take_changes`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Changes(u8);

impl Changes {
    /// Nothing changed.
    pub const NONE: Changes = Changes(0);
    const SETTINGS: u8 = 1 << 0;
    const RECEIVED: u8 = 1 << 1;

    /// Whether anything changed.
    pub fn any(self) -> bool {
        self.0 != 0
    }

    /// A register of [`UartState::settings`] was written.
    pub fn settings(self) -> bool {
        self.0 & Changes::SETTINGS != 0
    }

    /// The receiver's bytes changed ([`UartState::received`]).
    pub fn received(self) -> bool {
        self.0 & Changes::RECEIVED != 0
    }
}

/// First byte of a settings record (an all-zero record is none).
const SETTINGS_MARK: u8 = 0xc5;

/// The last byte of a kept record: the others folded together, so that a
/// record torn half-way (its writer died) is refused.
pub(crate) fn record_check(bytes: &[u8]) -> u8 {
    bytes[..bytes.len().saturating_sub(1)]
        .iter()
        .fold(0x5a, |acc, &b| acc.rotate_left(1) ^ b)
}

impl Default for UartState {
    fn default() -> Self {
        UartState::RESET
    }
}

/// Why [`Uart16550::restore`] refused a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateError {
    /// `rx_len` exceeds what the receiver holds in the mode `fcr` selects
    /// (16 with FIFOs, 1 without).
    RxTooLong,
    /// A register holds bits the hardware cannot hold (IER bits 4-7, MCR
    /// bits 5-7, FCR bits 1, 2, 4, 5, MSR delta bits 4-7, or trigger-level
    /// and DMA bits while FIFOs are disabled).
    ReservedBits,
}

/// The interrupt sources of table 4, highest priority first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    LineStatus,
    RxData,
    CharTimeout,
    ThrEmpty,
    ModemStatus,
}

impl Source {
    const fn iir(self) -> u8 {
        match self {
            Source::LineStatus => IIR_LINE_STATUS,
            Source::RxData => IIR_RX_DATA,
            Source::CharTimeout => IIR_CHAR_TIMEOUT,
            Source::ThrEmpty => IIR_THR_EMPTY,
            Source::ModemStatus => IIR_MODEM_STATUS,
        }
    }
}

/// A 16550A UART as one guest sees it: registers at offsets 0..8, a
/// 16-byte receive FIFO, interrupts through `T`, transmitted bytes to `S`.
///
/// Bus-agnostic: the caller decodes the guest's port (or MMIO) access into
/// an offset and calls [`read`](Self::read) or [`write`](Self::write).
/// Nothing the guest writes or the host enqueues can make it panic.
///
/// Register semantics follow the PC16550D datasheet (section 8, "Registers",
/// and table 4, "Interrupt Control Functions"). What a virtual line cannot
/// produce is never reported: no parity, framing or break errors, and a
/// transmitter that hands each byte to the [`Sink`] at once, so THRE and
/// TEMT read 1 whenever the guest can look.
#[derive(Debug)]
pub struct Uart16550<T: Trigger, S: Sink> {
    s: UartState,
    level: bool,
    /// What changed since [`Uart16550::take_changes`] last looked.
    changes: Changes,
    trigger: T,
    sink: S,
}

impl<T: Trigger, S: Sink> Uart16550<T, S> {
    /// A UART in its reset state ([`UartState::RESET`]), interrupt line low.
    pub const fn new(trigger: T, sink: S) -> Self {
        Uart16550 {
            s: UartState::RESET,
            level: false,
            changes: Changes::NONE,
            trigger,
            sink,
        }
    }

    /// What changed since the last call: a register of
    /// [`UartState::settings`] (IER, LCR, MCR, FCR, the divisor latch)
    /// written, or the receiver's bytes ([`UartState::received`]) taken in,
    /// read or cleared (a [`reset`](Self::reset) reports both). The
    /// moments to keep them for a restart.
    pub fn take_changes(&mut self) -> Changes {
        core::mem::take(&mut self.changes)
    }

    /// Master reset: every register to [`UartState::RESET`] (divisor latch
    /// included), the receive FIFO emptied, the interrupt line lowered.
    pub fn reset(&mut self) {
        self.s = UartState::RESET;
        self.changes.0 |= Changes::SETTINGS | Changes::RECEIVED;
        self.update_irq();
    }

    /// The transmitted-byte sink.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// The transmitted-byte sink, mutably (e.g. to drain a buffer).
    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// The interrupt trigger.
    pub fn trigger(&self) -> &T {
        &self.trigger
    }

    /// The level the model last drove on the interrupt line.
    pub fn interrupt_level(&self) -> bool {
        self.level
    }

    /// Gives back the trigger and the sink.
    pub fn into_parts(self) -> (T, S) {
        (self.trigger, self.sink)
    }

    /// The guest-visible state as a plain value.
    pub fn snapshot(&self) -> UartState {
        self.s
    }

    /// Replaces the state with `state` (e.g. from [`snapshot`](Self::snapshot)
    /// on another instance) and drives the interrupt line to match.
    ///
    /// A state the hardware could not be in is refused and nothing changes.
    pub fn restore(&mut self, state: &UartState) -> Result<(), StateError> {
        let fifo = state.fcr & FCR_ENABLE != 0;
        let cap = if fifo { RX_FIFO_LEN } else { 1 };
        if usize::from(state.rx_len) > cap {
            return Err(StateError::RxTooLong);
        }
        let fcr_ok = if fifo {
            state.fcr & !FCR_STORED == 0
        } else {
            state.fcr == 0
        };
        if state.ier & !IER_MASK != 0
            || state.mcr & !MCR_MASK != 0
            || state.msr_delta & !MSR_DELTA_MASK != 0
            || !fcr_ok
        {
            return Err(StateError::ReservedBits);
        }
        self.s = *state;
        self.update_irq();
        Ok(())
    }

    /// Reads the register at `offset` as the guest would, with the read's
    /// side effects (RBR pops the FIFO, LSR clears OE, MSR clears the delta
    /// bits, IIR clears a reported THR-empty interrupt). Offsets 8 and above
    /// read 0xff.
    pub fn read(&mut self, offset: u8) -> u8 {
        let dlab = self.s.lcr & LCR_DLAB != 0;
        let value = match offset {
            RBR if dlab => self.s.dll,
            DLM if dlab => self.s.dlm,
            RBR => self.pop_rx(),
            IER => self.s.ier,
            IIR => self.read_iir(),
            LCR => self.s.lcr,
            MCR => self.s.mcr,
            LSR => {
                let lsr = self.lsr();
                self.s.overrun = false;
                lsr
            }
            MSR => {
                let msr = self.modem_lines() | self.s.msr_delta;
                self.s.msr_delta = 0;
                msr
            }
            SCR => self.s.scr,
            _ => return 0xff,
        };
        self.update_irq();
        value
    }

    /// Writes `value` to the register at `offset` as the guest would.
    /// Writes to LSR, MSR and offsets 8 and above are ignored.
    pub fn write(&mut self, offset: u8, value: u8) {
        let dlab = self.s.lcr & LCR_DLAB != 0;
        // Only the arms that change a setting mark it: a THR or scratch
        // write (the common ones) pays nothing for it.
        match offset {
            DLL if dlab => {
                self.s.dll = value;
                self.changes.0 |= Changes::SETTINGS;
            }
            DLM if dlab => {
                self.s.dlm = value;
                self.changes.0 |= Changes::SETTINGS;
            }
            THR => self.transmit(value),
            IER => {
                self.changes.0 |= Changes::SETTINGS;
                let old = self.s.ier;
                self.s.ier = value & IER_MASK;
                // Enabling ETBEI while THR is empty (always, here) raises
                // the THR-empty interrupt at once (datasheet 8.4).
                if old & IER_THRE == 0 && self.s.ier & IER_THRE != 0 {
                    self.s.thre_pending = true;
                }
            }
            FCR => {
                self.changes.0 |= Changes::SETTINGS;
                self.write_fcr(value);
            }
            LCR => {
                self.changes.0 |= Changes::SETTINGS;
                self.s.lcr = value;
            }
            MCR => {
                self.changes.0 |= Changes::SETTINGS;
                let before = self.modem_lines();
                self.s.mcr = value & MCR_MASK;
                self.modem_lines_changed(before);
            }
            SCR => self.s.scr = value,
            _ => return,
        }
        self.update_irq();
    }

    /// Delivers `bytes` from the line to the receiver; returns how many it
    /// took, oldest first.
    ///
    /// When they do not all fit, the rest is not taken and the guest sees an
    /// overrun (LSR OE, and a line-status interrupt if enabled): a host that
    /// wants no loss offers at most [`rx_space`](Self::rx_space) bytes and
    /// keeps the remainder. In loopback mode the receiver is disconnected
    /// from the line: nothing is taken and no overrun is reported.
    pub fn enqueue_input(&mut self, bytes: &[u8]) -> usize {
        if self.loopback() || bytes.is_empty() {
            return 0;
        }
        let mut taken = 0;
        for &b in bytes {
            if !self.receive(b) {
                break;
            }
            taken += 1;
        }
        self.update_irq();
        taken
    }

    /// Bytes held by the receiver (the guest has not read them yet).
    pub fn rx_len(&self) -> usize {
        usize::from(self.s.rx_len)
    }

    /// What the receiver holds in its current mode: [`RX_FIFO_LEN`] with
    /// FIFOs enabled, 1 (the RBR alone) without.
    pub fn rx_capacity(&self) -> usize {
        if self.fifo_enabled() {
            RX_FIFO_LEN
        } else {
            1
        }
    }

    /// How many bytes [`enqueue_input`](Self::enqueue_input) would take now
    /// without an overrun (0 in loopback mode).
    pub fn rx_space(&self) -> usize {
        if self.loopback() {
            0
        } else {
            self.rx_capacity().saturating_sub(self.rx_len())
        }
    }

    fn fifo_enabled(&self) -> bool {
        self.s.fcr & FCR_ENABLE != 0
    }

    fn loopback(&self) -> bool {
        self.s.mcr & MCR_LOOP != 0
    }

    /// Puts a byte into the receiver; false (and OE) when it is full.
    fn receive(&mut self, byte: u8) -> bool {
        let len = self.rx_len();
        if len >= self.rx_capacity() {
            self.s.overrun = true;
            return false;
        }
        if let Some(slot) = self.s.rx.get_mut(len) {
            *slot = byte;
            self.s.rx_len = self.s.rx_len.saturating_add(1);
            self.changes.0 |= Changes::RECEIVED;
            true
        } else {
            self.s.overrun = true;
            false
        }
    }

    fn pop_rx(&mut self) -> u8 {
        let len = self.rx_len().min(RX_FIFO_LEN);
        if len > 0 {
            self.s.rbr = self.s.rx[0];
            self.s.rx.copy_within(1..len, 0);
            self.s.rx_len = (len - 1) as u8;
            self.changes.0 |= Changes::RECEIVED;
        }
        self.s.rbr
    }

    fn clear_rx(&mut self) {
        if self.s.rx_len != 0 {
            self.s.rx_len = 0;
            self.changes.0 |= Changes::RECEIVED;
        }
    }

    fn transmit(&mut self, byte: u8) {
        self.s.thre_pending = false;
        if self.loopback() {
            // Loopback (datasheet 8.6, MCR bit 4): the transmitter output
            // goes to the receiver, the serial output pin stays idle.
            self.receive(byte);
        } else {
            self.sink.write_byte(byte);
        }
        // The byte left at once: THR is empty again.
        self.s.thre_pending = true;
    }

    fn write_fcr(&mut self, value: u8) {
        let enable = value & FCR_ENABLE != 0;
        if enable != self.fifo_enabled() {
            // Changing the FIFO mode clears both FIFOs.
            self.clear_rx();
        }
        if !enable {
            // The other bits are only programmed together with bit 0.
            self.s.fcr = 0;
            return;
        }
        if value & FCR_RX_RESET != 0 {
            self.clear_rx();
        }
        // FCR_TX_RESET: the transmit FIFO is always empty here.
        self.s.fcr = value & FCR_STORED;
    }

    fn trigger_level(&self) -> usize {
        match self.s.fcr & FCR_TRIGGER_MASK {
            0x00 => 1,
            0x40 => 4,
            0x80 => 8,
            _ => 14,
        }
    }

    fn lsr(&self) -> u8 {
        let mut lsr = LSR_THRE | LSR_TEMT;
        if self.s.rx_len > 0 {
            lsr |= LSR_DR;
        }
        if self.s.overrun {
            lsr |= LSR_OE;
        }
        lsr
    }

    /// MSR bits 4-7: the modem inputs, from MCR in loopback (DTR→DSR,
    /// RTS→CTS, OUT1→RI, OUT2→DCD), else [`EXTERNAL_MODEM_LINES`].
    fn modem_lines(&self) -> u8 {
        if !self.loopback() {
            return EXTERNAL_MODEM_LINES;
        }
        let mcr = self.s.mcr;
        let mut msr = 0;
        if mcr & MCR_DTR != 0 {
            msr |= MSR_DSR;
        }
        if mcr & MCR_RTS != 0 {
            msr |= MSR_CTS;
        }
        if mcr & MCR_OUT1 != 0 {
            msr |= MSR_RI;
        }
        if mcr & MCR_OUT2 != 0 {
            msr |= MSR_DCD;
        }
        msr
    }

    fn modem_lines_changed(&mut self, before: u8) {
        let after = self.modem_lines();
        let changed = before ^ after;
        if changed & MSR_CTS != 0 {
            self.s.msr_delta |= MSR_DCTS;
        }
        if changed & MSR_DSR != 0 {
            self.s.msr_delta |= MSR_DDSR;
        }
        if changed & MSR_DCD != 0 {
            self.s.msr_delta |= MSR_DDCD;
        }
        // TERI: RI went from on to off (trailing edge).
        if before & MSR_RI != 0 && after & MSR_RI == 0 {
            self.s.msr_delta |= MSR_TERI;
        }
    }

    /// The highest-priority enabled pending interrupt (table 4).
    fn pending(&self) -> Option<Source> {
        let ier = self.s.ier;
        if ier & IER_RLS != 0 && self.s.overrun {
            return Some(Source::LineStatus);
        }
        let len = self.rx_len();
        if ier & IER_RDA != 0 && len > 0 {
            // Data below the trigger level raises the character timeout:
            // there is no time here, so the four character times have
            // always passed.
            if self.fifo_enabled() && len < self.trigger_level() {
                return Some(Source::CharTimeout);
            }
            return Some(Source::RxData);
        }
        if ier & IER_THRE != 0 && self.s.thre_pending {
            return Some(Source::ThrEmpty);
        }
        if ier & IER_MS != 0 && self.s.msr_delta != 0 {
            return Some(Source::ModemStatus);
        }
        None
    }

    fn read_iir(&mut self) -> u8 {
        let fifo_bits = if self.fifo_enabled() {
            IIR_FIFO_BITS
        } else {
            0
        };
        match self.pending() {
            None => IIR_NONE | fifo_bits,
            Some(src) => {
                if src == Source::ThrEmpty {
                    // Reading IIR clears a THR-empty interrupt it reports.
                    self.s.thre_pending = false;
                }
                src.iir() | fifo_bits
            }
        }
    }

    fn update_irq(&mut self) {
        let level = self.pending().is_some();
        if level != self.level {
            self.level = level;
            self.trigger.set_level(level);
        }
    }
}

#[cfg(test)]
mod settings_tests {
    use super::*;
    use proptest::prelude::*;

    struct Line(bool);
    impl Trigger for Line {
        fn set_level(&mut self, high: bool) {
            self.0 = high;
        }
    }

    #[test]
    fn a_programmed_uart_comes_back_with_its_settings_and_nothing_else() {
        let mut u = Uart16550::new(Line(false), Vec::new());
        u.write(LCR, LCR_DLAB);
        u.write(DLL, 1);
        u.write(DLM, 0);
        u.write(LCR, 0x03);
        u.write(FCR, FCR_ENABLE | 0xc0);
        u.write(MCR, 0x0b);
        u.write(IER, IER_RDA | IER_THRE);
        assert!(u.take_changes().settings());
        assert_eq!(u.take_changes(), Changes::NONE, "taken");
        u.write(SCR, 0x77);
        u.write(THR, b'x');
        assert!(
            !u.take_changes().any(),
            "data and scratch writes change nothing kept"
        );
        u.enqueue_input(b"ab");
        let saved = u.snapshot().settings();
        let mut again = Uart16550::new(Line(false), Vec::new());
        let state = UartState::from_settings(&saved).expect("a record");
        again.restore(&state).unwrap();
        assert_eq!(again.read(IER), IER_RDA | IER_THRE);
        assert_eq!(again.read(LCR), 0x03);
        assert_eq!(again.read(MCR), 0x0b);
        // THR is empty and its interrupt enabled: pending at once, so an
        // interrupt-driven driver's transmitter goes on.
        assert!(again.trigger().0);
        assert_eq!(again.read(IIR) & 0x0f, IIR_THR_EMPTY);
        // Transient state starts over.
        assert_eq!(again.read(SCR), 0);
        assert_eq!(again.rx_len(), 0);
        again.write(LCR, LCR_DLAB);
        assert_eq!((again.read(DLL), again.read(DLM)), (1, 0));
    }

    #[test]
    fn no_record_cleared_or_torn_bytes_give_nothing() {
        assert_eq!(UartState::from_settings(&[0; SETTINGS_LEN]), None);
        let good = UartState::RESET.settings();
        for i in 0..SETTINGS_LEN {
            let mut torn = good;
            torn[i] ^= 0x10;
            assert_eq!(UartState::from_settings(&torn), None, "byte {i}");
        }
    }

    #[test]
    fn the_receiver_reports_each_change_of_its_bytes_and_nothing_else() {
        let mut u = Uart16550::new(Line(false), Vec::new());
        u.write(FCR, FCR_ENABLE);
        u.take_changes();
        assert_eq!(u.enqueue_input(b"ab"), 2);
        let c = u.take_changes();
        assert!(c.received() && !c.settings());
        // Reads of other registers, and of RBR with nothing received, do
        // not count.
        for offset in [IER, IIR, LCR, MCR, LSR, MSR, SCR] {
            u.read(offset);
        }
        assert!(!u.take_changes().any());
        assert_eq!(u.read(RBR), b'a');
        assert!(u.take_changes().received());
        assert_eq!(u.read(RBR), b'b');
        assert!(u.take_changes().received());
        assert_eq!(u.read(RBR), b'b', "nothing left: the last byte again");
        assert!(!u.take_changes().any());
        // A full receiver takes nothing more and reports nothing.
        assert_eq!(u.enqueue_input(&[7; RX_FIFO_LEN + 4]), RX_FIFO_LEN);
        u.take_changes();
        assert_eq!(u.enqueue_input(b"x"), 0);
        assert!(!u.take_changes().received());
        // Clearing the FIFO is a change; clearing an empty one is not.
        u.write(FCR, FCR_ENABLE | FCR_RX_RESET);
        assert!(u.take_changes().received());
        u.write(FCR, FCR_ENABLE | FCR_RX_RESET);
        assert!(!u.take_changes().received());
        // A byte looped back arrives in the receiver too.
        u.write(MCR, MCR_LOOP);
        u.take_changes();
        u.write(THR, b'z');
        assert!(u.take_changes().received());
        assert_eq!(u.snapshot().received()[1], 1);
    }

    #[test]
    fn received_bytes_come_back_in_order_behind_the_settings() {
        let mut u = Uart16550::new(Line(false), Vec::new());
        u.write(FCR, FCR_ENABLE | 0x80);
        u.write(IER, IER_RDA);
        u.enqueue_input(b"hello");
        assert_eq!(u.read(RBR), b'h');
        let s = u.snapshot();
        let (settings, received) = (s.settings(), s.received());
        let state = UartState::from_settings(&settings)
            .and_then(|st| st.with_received(&received))
            .expect("both records");
        let mut again = Uart16550::new(Line(false), Vec::new());
        again.restore(&state).unwrap();
        // Data waits, and its interrupt is raised at once.
        assert!(again.trigger().0);
        assert_eq!(again.read(LSR) & LSR_DR, LSR_DR);
        let got: Vec<u8> = (0..4).map(|_| again.read(RBR)).collect();
        assert_eq!(got, b"ello");
        assert_eq!(again.read(LSR) & LSR_DR, 0);
    }

    #[test]
    fn received_records_that_are_none_torn_or_too_long_give_nothing() {
        let fifo = UartState {
            fcr: FCR_ENABLE,
            ..UartState::RESET
        };
        assert_eq!(fifo.with_received(&[0; RECEIVED_LEN]), None);
        let good = UartState {
            rx_len: 3,
            rx: *b"abc\0\0\0\0\0\0\0\0\0\0\0\0\0",
            ..fifo
        }
        .received();
        assert_eq!(fifo.with_received(&good).map(|s| s.rx_len), Some(3));
        for i in 0..RECEIVED_LEN {
            let mut torn = good;
            torn[i] ^= 0x04;
            assert_eq!(fifo.with_received(&torn), None, "byte {i}");
        }
        // Three bytes cannot wait in a receiver without FIFOs (one byte).
        assert_eq!(UartState::RESET.with_received(&good), None);
        let one = UartState {
            rx_len: 1,
            ..UartState::RESET
        }
        .received();
        assert_eq!(
            UartState::RESET.with_received(&one).map(|s| s.rx_len),
            Some(1)
        );
    }

    proptest! {
        /// Whatever a guest does (register reads and writes, loopback
        /// included) and whatever arrives, the records kept at each
        /// reported change rebuild the receiver and the settings exactly:
        /// no change goes unreported.
        #[test]
        fn records_kept_at_each_reported_change_match_the_live_uart(
            ops in proptest::collection::vec((0u8..4, 0u8..8, any::<u8>()), 0..300),
        ) {
            let mut u = Uart16550::new(Line(false), Vec::new());
            let (mut settings, mut received) = ([0; SETTINGS_LEN], [0; RECEIVED_LEN]);
            for (kind, offset, value) in ops {
                match kind {
                    0 => u.write(offset, value),
                    1 => {
                        u.read(offset);
                    }
                    2 => {
                        let n = usize::from(value % 20);
                        let bytes: Vec<u8> = (0..n as u8).map(|i| value ^ i).collect();
                        u.enqueue_input(&bytes[..n.min(u.rx_space())]);
                    }
                    _ => {
                        // DLAB off again now and then, so that offsets 0
                        // and 1 reach RBR, THR and IER.
                        u.write(LCR, value & !LCR_DLAB);
                    }
                }
                let changes = u.take_changes();
                let live = u.snapshot();
                if changes.settings() {
                    settings = live.settings();
                }
                if changes.received() {
                    received = live.received();
                }
                let base = UartState::from_settings(&settings).unwrap_or(UartState::RESET);
                let kept = base.with_received(&received).unwrap_or(base);
                prop_assert_eq!(
                    (kept.ier, kept.lcr, kept.mcr, kept.fcr, kept.dll, kept.dlm),
                    (live.ier, live.lcr, live.mcr, live.fcr, live.dll, live.dlm)
                );
                let n = usize::from(live.rx_len);
                prop_assert_eq!(kept.rx_len, live.rx_len);
                prop_assert_eq!(&kept.rx[..n], &live.rx[..n]);
            }
        }

        #[test]
        /// A record of any count up to the FIFO's comes back onto a
        /// state whose mode holds that many, and is refused by one that
        /// holds fewer; what comes back restores, byte for byte.
        #[test]
        fn received_records_fit_the_mode_they_come_back_to(
            rx_len in 0u8..=RX_FIFO_LEN as u8,
            rx in any::<[u8; RX_FIFO_LEN]>(),
            fifo in any::<bool>(), trigger in 0u8..4,
        ) {
            let record = UartState { rx_len, rx, ..UartState::RESET }.received();
            let fcr = if fifo { FCR_ENABLE | trigger << 6 } else { 0 };
            let base = UartState { fcr, ..UartState::RESET };
            let cap = if fifo { RX_FIFO_LEN } else { 1 };
            match base.with_received(&record) {
                Some(state) => {
                    prop_assert!(usize::from(rx_len) <= cap);
                    let mut u = Uart16550::new(Line(false), Vec::new());
                    prop_assert!(u.restore(&state).is_ok());
                    let got: Vec<u8> = (0..rx_len).map(|_| u.read(RBR)).collect();
                    prop_assert_eq!(&got[..], &rx[..usize::from(rx_len)]);
                    prop_assert_eq!(u.read(LSR) & LSR_DR, 0);
                }
                None => prop_assert!(usize::from(rx_len) > cap),
            }
        }

        #[test]
        fn reset_reports_both_records_changed(ops in any::<[u8; 4]>()) {
            let mut u = Uart16550::new(Line(false), Vec::new());
            u.write(FCR, FCR_ENABLE | (ops[0] & 0xc0));
            u.enqueue_input(&ops);
            u.take_changes();
            u.reset();
            let c = u.take_changes();
            prop_assert!(c.settings() && c.received());
        }

        #[test]
        fn settings_round_trip_whatever_the_state(
            ier in any::<u8>(), lcr in any::<u8>(), mcr in any::<u8>(),
            fcr in any::<u8>(), dll in any::<u8>(), dlm in any::<u8>(),
            scr in any::<u8>(),
        ) {
            let s = UartState { ier, lcr, mcr, fcr, dll, dlm, scr, ..UartState::RESET };
            let back = UartState::from_settings(&s.settings()).unwrap();
            prop_assert_eq!(
                (back.ier, back.lcr, back.mcr, back.fcr, back.dll, back.dlm, back.scr),
                (ier, lcr, mcr, fcr, dll, dlm, 0)
            );
        }

        #[test]
        fn any_bytes_either_decode_to_a_state_restore_checks_or_to_none(
            bytes in any::<[u8; SETTINGS_LEN]>(),
        ) {
            if let Some(state) = UartState::from_settings(&bytes) {
                let mut u = Uart16550::new(Line(false), Vec::new());
                // Refused or taken, never a panic.
                let _ = u.restore(&state);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    #[derive(Default, Debug)]
    struct Line {
        level: bool,
        changes: usize,
    }
    impl Trigger for Line {
        fn set_level(&mut self, high: bool) {
            assert_ne!(self.level, high, "set_level called without a change");
            self.level = high;
            self.changes += 1;
        }
    }
    impl Sink for Vec<u8> {
        fn write_byte(&mut self, byte: u8) {
            self.push(byte);
        }
    }

    fn uart() -> Uart16550<Line, Vec<u8>> {
        Uart16550::new(Line::default(), Vec::new())
    }

    fn fifo_uart() -> Uart16550<Line, Vec<u8>> {
        let mut u = uart();
        u.write(FCR, FCR_ENABLE);
        u
    }

    #[test]
    fn reset_values() {
        let mut u = uart();
        assert_eq!(u.read(IER), 0);
        assert_eq!(u.read(IIR), IIR_NONE);
        assert_eq!(u.read(LCR), 0);
        assert_eq!(u.read(MCR), 0);
        assert_eq!(u.read(LSR), LSR_THRE | LSR_TEMT);
        assert_eq!(u.read(MSR), EXTERNAL_MODEM_LINES);
        assert_eq!(u.read(SCR), 0);
        assert!(!u.interrupt_level());
    }

    #[test]
    fn dlab_switches_offsets_0_and_1_to_the_divisor() {
        let mut u = uart();
        u.write(IER, IER_RDA);
        u.write(LCR, LCR_DLAB | 0x03);
        assert_eq!(u.read(DLL), 12);
        assert_eq!(u.read(DLM), 0);
        u.write(DLL, 0x01);
        u.write(DLM, 0x02);
        u.write(THR, b'x'); // goes to DLL, not the line
        assert_eq!(u.read(DLL), b'x');
        assert_eq!(u.read(DLM), 0x02);
        assert!(u.sink().is_empty());
        u.write(LCR, 0x03);
        assert_eq!(u.read(IER), IER_RDA, "IER untouched by DLM writes");
        u.write(THR, b'y');
        assert_eq!(u.sink(), b"y");
        u.write(LCR, LCR_DLAB);
        assert_eq!((u.read(DLL), u.read(DLM)), (b'x', 0x02));
        // LCR itself and IIR stay reachable with DLAB set.
        assert_eq!(u.read(LCR), LCR_DLAB);
        assert_eq!(u.read(IIR), IIR_NONE);
    }

    #[test]
    fn scratch_holds_any_value() {
        let mut u = uart();
        for v in [0x00, 0x55, 0xaa, 0xff] {
            u.write(SCR, v);
            assert_eq!(u.read(SCR), v);
        }
    }

    #[test]
    fn reserved_bits_read_zero_and_high_offsets_read_ff() {
        let mut u = uart();
        u.write(IER, 0xff);
        assert_eq!(u.read(IER), 0x0f);
        u.write(MCR, 0xff);
        assert_eq!(u.read(MCR), 0x1f);
        u.write(MCR, 0);
        for off in [8u8, 9, 0x10, 0xff] {
            u.write(off, 0x12);
            assert_eq!(u.read(off), 0xff);
        }
        assert_eq!(u.read(SCR), 0);
    }

    #[test]
    fn writes_to_lsr_and_msr_are_ignored() {
        let mut u = uart();
        u.write(LSR, 0xff);
        u.write(MSR, 0xff);
        assert_eq!(u.read(LSR), LSR_THRE | LSR_TEMT);
        assert_eq!(u.read(MSR), EXTERNAL_MODEM_LINES);
    }

    #[test]
    fn lsr_data_ready_follows_the_fifo() {
        let mut u = fifo_uart();
        assert_eq!(u.enqueue_input(b"ab"), 2);
        assert_eq!(u.read(LSR), LSR_DR | LSR_THRE | LSR_TEMT);
        assert_eq!(u.read(RBR), b'a');
        assert_eq!(u.read(LSR) & LSR_DR, LSR_DR);
        assert_eq!(u.read(RBR), b'b');
        assert_eq!(u.read(LSR), LSR_THRE | LSR_TEMT);
        // An empty RBR keeps the last byte received.
        assert_eq!(u.read(RBR), b'b');
    }

    #[test]
    fn non_fifo_mode_holds_one_byte() {
        let mut u = uart();
        assert_eq!(u.rx_capacity(), 1);
        assert_eq!(u.enqueue_input(b"xy"), 1);
        assert_eq!(u.read(LSR), LSR_DR | LSR_OE | LSR_THRE | LSR_TEMT);
        assert_eq!(u.read(RBR), b'x');
        assert_eq!(u.read(IIR) & IIR_FIFO_BITS, 0);
    }

    #[test]
    fn fifo_holds_16_and_overrun_sets_oe_until_lsr_read() {
        let mut u = fifo_uart();
        let input: Vec<u8> = (0..20).collect();
        assert_eq!(u.rx_space(), 16);
        assert_eq!(u.enqueue_input(&input), 16);
        assert_eq!(u.rx_space(), 0);
        let lsr = u.read(LSR);
        assert_eq!(lsr & (LSR_DR | LSR_OE), LSR_DR | LSR_OE);
        assert_eq!(u.read(LSR) & LSR_OE, 0, "OE clears on read");
        assert_eq!(u.enqueue_input(&[99]), 0);
        assert_eq!(u.read(LSR) & LSR_OE, LSR_OE);
        // What was taken is intact, oldest first.
        for b in 0..16 {
            assert_eq!(u.read(RBR), b);
        }
        assert_eq!(u.read(LSR) & LSR_DR, 0);
        // Exactly what fits is no overrun.
        assert_eq!(u.enqueue_input(&input[..16]), 16);
        assert_eq!(u.read(LSR) & LSR_OE, 0);
        assert_eq!(u.enqueue_input(&[]), 0);
        assert_eq!(u.read(LSR) & LSR_OE, 0);
    }

    #[test]
    fn fcr_resets_and_mode_changes_clear_the_rx_fifo() {
        let mut u = fifo_uart();
        u.enqueue_input(b"abc");
        u.write(FCR, FCR_ENABLE | FCR_TX_RESET);
        assert_eq!(u.rx_len(), 3, "TX reset leaves RX alone");
        u.write(FCR, FCR_ENABLE | FCR_RX_RESET);
        assert_eq!(u.rx_len(), 0);
        assert_eq!(u.read(LSR) & LSR_DR, 0);
        // The reset bits are self-clearing.
        u.enqueue_input(b"abc");
        u.write(FCR, FCR_ENABLE);
        assert_eq!(u.rx_len(), 3);
        // Disabling FIFOs clears them.
        u.write(FCR, 0);
        assert_eq!(u.rx_len(), 0);
        assert_eq!(u.rx_capacity(), 1);
        // Bits other than 0 are ignored unless bit 0 is set in the same write.
        u.write(FCR, 0xc0 | FCR_RX_RESET);
        assert_eq!(u.snapshot().fcr, 0);
        u.write(FCR, 0xc9);
        assert_eq!(u.snapshot().fcr, 0xc9);
        assert_eq!(u.read(IIR), IIR_NONE | IIR_FIFO_BITS);
    }

    #[test]
    fn rx_interrupt_trigger_level_and_timeout() {
        let mut u = uart();
        u.write(FCR, FCR_ENABLE | 0x40); // trigger at 4
        u.write(IER, IER_RDA);
        assert!(!u.interrupt_level());
        u.enqueue_input(b"abc");
        assert!(u.interrupt_level());
        assert_eq!(u.read(IIR), IIR_CHAR_TIMEOUT | IIR_FIFO_BITS);
        u.enqueue_input(b"d");
        assert_eq!(u.read(IIR), IIR_RX_DATA | IIR_FIFO_BITS);
        // Reading IIR does not clear the data interrupt; reading RBR does,
        // once the FIFO is empty.
        assert_eq!(u.read(IIR), IIR_RX_DATA | IIR_FIFO_BITS);
        for _ in 0..4 {
            assert!(u.interrupt_level());
            u.read(RBR);
        }
        assert!(!u.interrupt_level());
        assert_eq!(u.read(IIR), IIR_NONE | IIR_FIFO_BITS);
    }

    #[test]
    fn thre_interrupt_cleared_by_iir_read_and_raised_by_thr_write() {
        let mut u = uart();
        u.write(IER, IER_THRE);
        assert!(u.interrupt_level(), "enabling ETBEI with THR empty");
        assert_eq!(u.read(IIR), IIR_THR_EMPTY);
        assert!(!u.interrupt_level());
        assert_eq!(u.read(IIR), IIR_NONE);
        u.write(THR, b'a');
        assert!(u.interrupt_level());
        assert_eq!(u.sink(), b"a");
        // Rewriting IER with ETBEI still set is not a new enable.
        u.read(IIR);
        u.write(IER, IER_THRE | IER_MS);
        assert!(!u.interrupt_level());
        // Toggling it is.
        u.write(IER, 0);
        u.write(IER, IER_THRE);
        assert_eq!(u.read(IIR), IIR_THR_EMPTY);
    }

    #[test]
    fn iir_priorities() {
        let mut u = fifo_uart();
        u.write(IER, IER_RDA | IER_THRE | IER_RLS | IER_MS);
        // THRE pending from the IER write; modem deltas from entering and
        // leaving loopback with every modem output off.
        u.write(MCR, MCR_LOOP);
        u.write(MCR, 0);
        u.enqueue_input(&[0; 17]); // data + overrun
        assert_eq!(u.read(IIR) & 0x0f, IIR_LINE_STATUS);
        u.read(LSR);
        assert_eq!(u.read(IIR) & 0x0f, IIR_RX_DATA);
        u.write(FCR, FCR_ENABLE | FCR_RX_RESET);
        assert_eq!(u.read(IIR) & 0x0f, IIR_THR_EMPTY);
        // That read cleared THRE; modem status is next.
        assert_eq!(u.read(IIR) & 0x0f, IIR_MODEM_STATUS);
        assert_eq!(u.read(IIR) & 0x0f, IIR_MODEM_STATUS, "IIR read keeps MS");
        u.read(MSR);
        assert_eq!(u.read(IIR) & 0x0f, IIR_NONE);
        assert!(!u.interrupt_level());
    }

    #[test]
    fn iir_read_keeps_thre_when_a_higher_source_is_reported() {
        let mut u = uart();
        u.write(IER, IER_RDA | IER_THRE);
        u.enqueue_input(b"z");
        assert_eq!(u.read(IIR), IIR_RX_DATA);
        u.read(RBR);
        assert_eq!(u.read(IIR), IIR_THR_EMPTY);
        assert_eq!(u.read(IIR), IIR_NONE);
    }

    #[test]
    fn disabled_sources_do_not_interrupt() {
        let mut u = fifo_uart();
        u.write(THR, b'a');
        u.enqueue_input(&[1; 20]);
        u.write(MCR, MCR_LOOP);
        assert_eq!(u.read(IIR), IIR_NONE | IIR_FIFO_BITS);
        assert!(!u.interrupt_level());
        assert_eq!(u.trigger().changes, 0);
    }

    #[test]
    fn loopback_routes_tx_to_rx_and_mcr_to_msr() {
        let mut u = fifo_uart();
        u.write(MCR, MCR_LOOP);
        // Entering loopback with every output off drops CTS, DSR and DCD.
        assert_eq!(u.read(MSR), MSR_DCTS | MSR_DDSR | MSR_DDCD);
        assert_eq!(u.read(MSR), 0, "deltas clear on read");
        u.write(THR, b'h');
        u.write(THR, b'i');
        assert!(u.sink().is_empty(), "the line stays idle in loopback");
        assert_eq!(u.read(LSR) & LSR_DR, LSR_DR);
        assert_eq!(u.read(RBR), b'h');
        assert_eq!(u.read(RBR), b'i');
        // The line is disconnected from the receiver.
        assert_eq!(u.rx_space(), 0);
        assert_eq!(u.enqueue_input(b"x"), 0);
        assert_eq!(u.read(LSR) & (LSR_DR | LSR_OE), 0);
        u.write(MCR, MCR_LOOP | MCR_DTR);
        assert_eq!(u.read(MSR), MSR_DSR | MSR_DDSR);
        u.write(MCR, MCR_LOOP | MCR_RTS);
        assert_eq!(u.read(MSR), MSR_CTS | MSR_DCTS | MSR_DDSR);
        u.write(MCR, MCR_LOOP | MCR_OUT1);
        assert_eq!(u.read(MSR), MSR_RI | MSR_DCTS);
        // RI falling sets TERI; rising does not.
        u.write(MCR, MCR_LOOP | MCR_OUT2);
        assert_eq!(u.read(MSR), MSR_DCD | MSR_TERI | MSR_DDCD);
        u.write(MCR, MCR_OUT2);
        assert_eq!(u.read(MSR), EXTERNAL_MODEM_LINES | MSR_DCTS | MSR_DDSR);
        u.write(THR, b'!');
        assert_eq!(u.sink(), b"!");
    }

    #[test]
    fn loopback_overrun() {
        let mut u = uart(); // non-FIFO: one byte
        u.write(MCR, MCR_LOOP);
        u.write(THR, 1);
        u.write(THR, 2);
        assert_eq!(u.read(LSR), LSR_DR | LSR_OE | LSR_THRE | LSR_TEMT);
        assert_eq!(u.read(RBR), 1);
    }

    #[test]
    fn line_status_interrupt_clears_on_lsr_read() {
        let mut u = uart();
        u.write(IER, IER_RLS);
        u.enqueue_input(b"ab");
        assert!(u.interrupt_level());
        assert_eq!(u.read(IIR), IIR_LINE_STATUS);
        u.read(LSR);
        assert!(!u.interrupt_level());
        assert_eq!(u.trigger().changes, 2);
    }

    #[test]
    fn snapshot_restore_round_trip() {
        let mut u = fifo_uart();
        u.write(IER, IER_RDA | IER_THRE);
        u.write(SCR, 0x5a);
        u.enqueue_input(b"hello");
        u.read(RBR);
        let snap = u.snapshot();
        let mut v = uart();
        v.restore(&snap).unwrap();
        assert!(v.interrupt_level());
        assert_eq!(v.snapshot(), snap);
        for off in 0..8 {
            assert_eq!(u.read(off), v.read(off), "offset {off}");
        }
        let mut bad = snap;
        bad.rx_len = 17;
        assert_eq!(v.restore(&bad), Err(StateError::RxTooLong));
        bad = snap;
        bad.fcr = 0;
        assert_eq!(v.restore(&bad), Err(StateError::RxTooLong));
        bad = snap;
        bad.ier = 0x10;
        assert_eq!(v.restore(&bad), Err(StateError::ReservedBits));
        bad = snap;
        bad.fcr = FCR_ENABLE | FCR_RX_RESET;
        assert_eq!(v.restore(&bad), Err(StateError::ReservedBits));
        assert_eq!(
            v.snapshot(),
            u.snapshot(),
            "refused restores change nothing"
        );
        v.reset();
        assert_eq!(v.snapshot(), UartState::RESET);
        assert!(!v.interrupt_level());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Read(u8),
        Write(u8, u8),
        Input(Vec<u8>),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..10).prop_map(Op::Read),
            (0u8..10, any::<u8>()).prop_map(|(o, v)| Op::Write(o, v)),
            proptest::collection::vec(any::<u8>(), 0..24).prop_map(Op::Input),
        ]
    }

    fn apply(u: &mut Uart16550<Line, Vec<u8>>, op: &Op) -> Option<u8> {
        match op {
            Op::Read(o) => Some(u.read(*o)),
            Op::Write(o, v) => {
                u.write(*o, *v);
                None
            }
            Op::Input(b) => Some(u.enqueue_input(b) as u8),
        }
    }

    proptest! {
        /// Any sequence keeps the invariants a guest relies on, and the
        /// interrupt line always matches IIR.
        #[test]
        fn never_panics_and_keeps_invariants(ops in proptest::collection::vec(op(), 0..64)) {
            let mut u = uart();
            for op in &ops {
                apply(&mut u, op);
                prop_assert!(u.rx_len() <= u.rx_capacity());
                prop_assert_eq!(u.trigger().level, u.interrupt_level());
                let s = u.snapshot();
                prop_assert_eq!(u.lsr() & !(LSR_DR | LSR_OE), LSR_THRE | LSR_TEMT);
                prop_assert_eq!(u.lsr() & LSR_DR != 0, s.rx_len > 0);
                prop_assert_eq!(u.pending().is_some(), u.interrupt_level());
                prop_assert!(u.restore(&s).is_ok());
            }
        }

        /// A restored copy behaves exactly like the original from then on.
        #[test]
        fn restored_copy_behaves_the_same(
            before in proptest::collection::vec(op(), 0..32),
            after in proptest::collection::vec(op(), 0..32),
        ) {
            let mut u = uart();
            for op in &before {
                apply(&mut u, op);
            }
            let mut v = uart();
            v.restore(&u.snapshot()).unwrap();
            prop_assert_eq!(v.interrupt_level(), u.interrupt_level());
            for op in &after {
                prop_assert_eq!(apply(&mut u, op), apply(&mut v, op));
                prop_assert_eq!(u.interrupt_level(), v.interrupt_level());
            }
            prop_assert_eq!(u.snapshot(), v.snapshot());
        }
    }
}
