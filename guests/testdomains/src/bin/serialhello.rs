//! Talks to its virtual 16550 like a driver: checks the scratch register,
//! then prints lines polling the line status register before each byte.
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod domain {
    use testdomains::arch::{inb, outb};
    use testdomains::Text;
    rt::entry!(main);

    const COM1: u16 = 0x3f8;

    fn put(byte: u8) {
        while inb(COM1 + 5) & 0x20 == 0 {}
        outb(COM1, byte);
    }

    fn main(info: &'static rt::StartInfo) -> u64 {
        outb(COM1 + 7, 0x5a);
        let scratch = inb(COM1 + 7);
        if scratch != 0x5a {
            rt::log!("scratch register read {scratch:#x}, wrote 0x5a");
            return 1;
        }
        // 8N1, divisor 1 (115200 baud), FIFOs on.
        outb(COM1 + 3, 0x80);
        outb(COM1, 1);
        outb(COM1 + 1, 0);
        outb(COM1 + 3, 0x03);
        outb(COM1 + 2, 0x07);
        for n in 1..=3 {
            let line = Text::new(format_args!(
                "hello {n} over the virtual 16550 from {}\n",
                info.name()
            ));
            for &b in line.as_str().as_bytes() {
                put(b);
            }
        }
        rt::log!("scratch register round trip ok; 3 lines written");
        0
    }
}
