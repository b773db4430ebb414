//! The domain manager's virtual UART (COM1 as this domain sees it: every
//! access goes to the UART service through the core).

use core::arch::asm;

const COM1: u16 = 0x3f8;

fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: port I/O on the virtual UART exits to the core, which
    // forwards it to the UART service; it cannot reach hardware.
    unsafe { asm!("in al, dx", in("dx") port, out("al") v, options(nostack, nomem)) }
    v
}

fn outb(port: u16, v: u8) {
    // SAFETY: as in `inb`.
    unsafe { asm!("out dx, al", in("dx") port, in("al") v, options(nostack, nomem)) }
}

/// A byte typed on this domain's console, if one is waiting.
pub fn uart_read() -> Option<u8> {
    (inb(COM1 + 5) & 1 != 0).then(|| inb(COM1))
}

/// Writes one byte to the console.
pub fn uart_write(byte: u8) {
    while inb(COM1 + 5) & 0x20 == 0 {
        core::hint::spin_loop();
    }
    outb(COM1, byte);
}

/// 8N1 at 115200 baud with the 16-byte FIFOs on, so that typing ahead is
/// not lost while a command runs.
pub fn uart_init() {
    outb(COM1 + 3, 0x80);
    outb(COM1, 1);
    outb(COM1 + 1, 0);
    outb(COM1 + 3, 0x03);
    outb(COM1 + 2, 0x07);
}
