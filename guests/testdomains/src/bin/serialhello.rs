//! Talks to its virtual 16550 like a driver: checks the scratch register,
//! then prints lines polling the line status register before each byte.
//! Its first line tells what the scratch register held at start: 0 on a
//! 16550 fresh from reset, never what a domain before it in the same
//! table slot left there.
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod domain {
    use rt::arch::{inb, outb};
    use rt::com1;
    rt::entry!(main);

    const COM1: u16 = 0x3f8;

    fn main(info: &'static rt::StartInfo) -> u64 {
        let found = inb(COM1 + 7);
        outb(COM1 + 7, 0x5a);
        let scratch = inb(COM1 + 7);
        if scratch != 0x5a {
            rt::log!("scratch register read {scratch:#x}, wrote 0x5a");
            return 1;
        }
        com1::init();
        let line = rt::Line::format(format_args!(
            "scratch register held {found:#04x} at start\n"
        ));
        com1::write(line.as_bytes());
        for n in 1..=3 {
            let line = rt::Line::format(format_args!(
                "hello {n} over the virtual 16550 from {}\n",
                info.name()
            ));
            com1::write(line.as_bytes());
        }
        rt::log!("scratch register round trip ok; 3 lines written");
        0
    }
}
