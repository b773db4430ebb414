//! COM1 (a 16550 at 0x3F8): the core's console.

use x86_64::instructions::port::Port;

const BASE: u16 = 0x3F8;

/// Programs COM1 for 115200 baud, 8N1, FIFOs on, interrupts off.
pub fn init() {
    // SAFETY: these are COM1's own registers; the core is the only user of
    // the port and nothing else is mapped there.
    unsafe {
        Port::<u8>::new(BASE + 1).write(0x00);
        Port::<u8>::new(BASE + 3).write(0x80);
        Port::<u8>::new(BASE).write(0x01);
        Port::<u8>::new(BASE + 1).write(0x00);
        Port::<u8>::new(BASE + 3).write(0x03);
        Port::<u8>::new(BASE + 2).write(0xC7);
        Port::<u8>::new(BASE + 4).write(0x03);
    }
}

fn line_status() -> u8 {
    // SAFETY: reading COM1's line status register has no side effect.
    unsafe { Port::<u8>::new(BASE + 5).read() }
}

/// Sends one byte, waiting for room in the transmitter.
pub fn write_byte(byte: u8) {
    while line_status() & 0x20 == 0 {
        core::hint::spin_loop();
    }
    // SAFETY: writing the transmit holding register of COM1.
    unsafe { Port::<u8>::new(BASE).write(byte) }
}

/// Waits until every byte written has left the transmitter (LSR.TEMT).
pub fn drain() {
    // Bounded so a missing UART cannot hang the shutdown path.
    for _ in 0..10_000_000u32 {
        if line_status() & 0x40 != 0 {
            return;
        }
        core::hint::spin_loop();
    }
}
