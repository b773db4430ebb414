//! `uart-virt` is the logic of Bulkhead's UART service, the service domain
//! that owns the physical COM1 and gives every other domain a virtual
//! 16550A. Its parts:
//!
//! - [`Uart16550`]: the 16550A register model one guest sees, bus-agnostic
//!   (`read(offset)`, `write(offset, value)`), with its interrupt line and
//!   its transmitted bytes injected through [`Trigger`] and [`Sink`], and
//!   its state as a plain [`UartState`] for snapshots.
//! - [`Console`]: every guest's output multiplexed onto the one physical
//!   port, line by line, with a bounded buffer per guest and counted drops.
//! - [`InputSwitch`]: keyboard input to the domain manager's shell or to a
//!   chosen guest, switched by Ctrl-A and a digit.
//! - [`KeyQueue`] and [`Kept`]: the keys typed for one guest that its
//!   receiver has not taken yet, and each guest's 16550 settings and
//!   received bytes, in memory that outlives the service.
//! - [`Snapshot`]: the consoles' unprinted output and the ioreq ring
//!   position, kept crash-consistent in memory that outlives the service.
//!
//! It owns register semantics and buffering policy, nothing else: it never
//! touches an I/O port, never allocates (every buffer is a fixed array),
//! and never panics on anything a guest writes or types — every offset,
//! value, byte and restored state is either handled or refused.
//!
//! `docs/UART.md` describes what is modelled, the console policy, the key
//! sequence, and how the model was compared with `vm-superio`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

mod console;
mod input;
mod kept;
mod keys;
mod snapshot;
mod uart;

pub use console::{Console, ConsoleId, ConsoleStats, CONSOLE_BUFFER, LINE_MAX, NAME_MAX};
pub use input::{Fed, InputSwitch, ESCAPE, FOCUS_LEN, SHELL};
pub use kept::{kept_len, Kept, KEPT_GUESTS_MAX};
pub use keys::{KeyQueue, KEYS_MAX, KEY_QUEUE_LEN};
pub use snapshot::{slot_len, snapshot_len, Loaded, Snapshot, SLOT_HEADER, SNAPSHOT_MAGIC};
pub use uart::{
    Changes, Sink, StateError, Trigger, Uart16550, UartState, DEFAULT_DIVISOR,
    EXTERNAL_MODEM_LINES, RECEIVED_LEN, RX_FIFO_LEN, SETTINGS_LEN,
};

/// Register offsets and bits of the 16550A (PC16550D datasheet, section 8
/// and table 2).
pub mod regs {
    /// Receiver buffer (read, DLAB = 0).
    pub const RBR: u8 = 0;
    /// Transmitter holding register (write, DLAB = 0).
    pub const THR: u8 = 0;
    /// Divisor latch, low byte (DLAB = 1).
    pub const DLL: u8 = 0;
    /// Interrupt enable register (DLAB = 0).
    pub const IER: u8 = 1;
    /// Divisor latch, high byte (DLAB = 1).
    pub const DLM: u8 = 1;
    /// Interrupt identification register (read).
    pub const IIR: u8 = 2;
    /// FIFO control register (write).
    pub const FCR: u8 = 2;
    /// Line control register.
    pub const LCR: u8 = 3;
    /// Modem control register.
    pub const MCR: u8 = 4;
    /// Line status register.
    pub const LSR: u8 = 5;
    /// Modem status register.
    pub const MSR: u8 = 6;
    /// Scratch register.
    pub const SCR: u8 = 7;

    /// IER bit 0: received data available interrupt (ERBFI).
    pub const IER_RDA: u8 = 1 << 0;
    /// IER bit 1: THR empty interrupt (ETBEI).
    pub const IER_THRE: u8 = 1 << 1;
    /// IER bit 2: receiver line status interrupt (ELSI).
    pub const IER_RLS: u8 = 1 << 2;
    /// IER bit 3: modem status interrupt (EDSSI).
    pub const IER_MS: u8 = 1 << 3;
    /// The IER bits that exist; bits 4-7 read 0.
    pub const IER_MASK: u8 = 0x0f;

    /// IIR: no interrupt pending (bit 0 set).
    pub const IIR_NONE: u8 = 0x01;
    /// IIR: receiver line status (priority 1).
    pub const IIR_LINE_STATUS: u8 = 0x06;
    /// IIR: received data available (priority 2).
    pub const IIR_RX_DATA: u8 = 0x04;
    /// IIR: character timeout (priority 2, FIFO mode).
    pub const IIR_CHAR_TIMEOUT: u8 = 0x0c;
    /// IIR: THR empty (priority 3).
    pub const IIR_THR_EMPTY: u8 = 0x02;
    /// IIR: modem status (priority 4).
    pub const IIR_MODEM_STATUS: u8 = 0x00;
    /// IIR bits 6-7: set while FIFOs are enabled.
    pub const IIR_FIFO_BITS: u8 = 0xc0;

    /// FCR bit 0: FIFO enable.
    pub const FCR_ENABLE: u8 = 1 << 0;
    /// FCR bit 1: receive FIFO reset (self-clearing).
    pub const FCR_RX_RESET: u8 = 1 << 1;
    /// FCR bit 2: transmit FIFO reset (self-clearing).
    pub const FCR_TX_RESET: u8 = 1 << 2;
    /// FCR bit 3: DMA mode select (kept, no effect).
    pub const FCR_DMA_MODE: u8 = 1 << 3;
    /// FCR bits 6-7: receive trigger level (1, 4, 8, 14 bytes).
    pub const FCR_TRIGGER_MASK: u8 = 0xc0;
    /// The FCR bits the UART keeps.
    pub const FCR_STORED: u8 = FCR_ENABLE | FCR_DMA_MODE | FCR_TRIGGER_MASK;

    /// LCR bit 7: divisor latch access.
    pub const LCR_DLAB: u8 = 1 << 7;

    /// MCR bit 0: DTR.
    pub const MCR_DTR: u8 = 1 << 0;
    /// MCR bit 1: RTS.
    pub const MCR_RTS: u8 = 1 << 1;
    /// MCR bit 2: OUT1.
    pub const MCR_OUT1: u8 = 1 << 2;
    /// MCR bit 3: OUT2.
    pub const MCR_OUT2: u8 = 1 << 3;
    /// MCR bit 4: loopback.
    pub const MCR_LOOP: u8 = 1 << 4;
    /// The MCR bits that exist; bits 5-7 read 0.
    pub const MCR_MASK: u8 = 0x1f;

    /// LSR bit 0: data ready.
    pub const LSR_DR: u8 = 1 << 0;
    /// LSR bit 1: overrun error.
    pub const LSR_OE: u8 = 1 << 1;
    /// LSR bit 5: THR empty.
    pub const LSR_THRE: u8 = 1 << 5;
    /// LSR bit 6: transmitter empty.
    pub const LSR_TEMT: u8 = 1 << 6;

    /// MSR bit 0: delta CTS.
    pub const MSR_DCTS: u8 = 1 << 0;
    /// MSR bit 1: delta DSR.
    pub const MSR_DDSR: u8 = 1 << 1;
    /// MSR bit 2: trailing edge of RI.
    pub const MSR_TERI: u8 = 1 << 2;
    /// MSR bit 3: delta DCD.
    pub const MSR_DDCD: u8 = 1 << 3;
    /// The MSR delta bits.
    pub const MSR_DELTA_MASK: u8 = 0x0f;
    /// MSR bit 4: CTS.
    pub const MSR_CTS: u8 = 1 << 4;
    /// MSR bit 5: DSR.
    pub const MSR_DSR: u8 = 1 << 5;
    /// MSR bit 6: RI.
    pub const MSR_RI: u8 = 1 << 6;
    /// MSR bit 7: DCD.
    pub const MSR_DCD: u8 = 1 << 7;
}
