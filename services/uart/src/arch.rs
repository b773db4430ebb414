//! The physical COM1, which the manifest gives this domain.

use core::arch::asm;

const COM1: u16 = 0x3f8;

fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: the port is COM1's, passed through to this domain's I/O
    // bitmap by its IoPorts capability.
    unsafe { asm!("in al, dx", in("dx") port, out("al") v, options(nostack, nomem)) }
    v
}

fn outb(port: u16, v: u8) {
    // SAFETY: as in `inb`.
    unsafe { asm!("out dx, al", in("dx") port, in("al") v, options(nostack, nomem)) }
}

/// Writes one byte, waiting for the transmitter (turning `\n` into `\r\n`).
pub fn com1_write(byte: u8) {
    if byte == b'\n' {
        com1_write(b'\r');
    }
    while inb(COM1 + 5) & 0x20 == 0 {
        core::hint::spin_loop();
    }
    outb(COM1, byte);
}

/// A byte received on COM1, if one is waiting (LSR.DR).
pub fn com1_read() -> Option<u8> {
    (inb(COM1 + 5) & 1 != 0).then(|| inb(COM1))
}
