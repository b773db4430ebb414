//! Reads lines typed on its console (its virtual UART) and answers each
//! with `echo from NAME: LINE`, to show that input reaches only the console
//! it was switched to.
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod domain {
    use testdomains::arch::{inb, outb};
    rt::entry!(main);

    const COM1: u16 = 0x3f8;

    fn put(bytes: &[u8]) {
        for &b in bytes {
            while inb(COM1 + 5) & 0x20 == 0 {}
            outb(COM1, b);
        }
    }

    fn main(info: &'static rt::StartInfo) -> u64 {
        // 8N1, FIFOs on (typing ahead is kept).
        outb(COM1 + 3, 0x03);
        outb(COM1 + 2, 0x07);
        put(b"ready for input\n");
        let mut line = [0u8; 64];
        let mut len = 0;
        loop {
            if inb(COM1 + 5) & 1 == 0 {
                rt::sleep(200_000);
                continue;
            }
            match inb(COM1) {
                b'\r' | b'\n' => {
                    put(b"echo from ");
                    put(info.name().as_bytes());
                    put(b": ");
                    put(&line[..len]);
                    put(b"\n");
                    len = 0;
                }
                b if len < line.len() && (0x20..0x7f).contains(&b) => {
                    line[len] = b;
                    len += 1;
                }
                _ => {}
            }
        }
    }
}
