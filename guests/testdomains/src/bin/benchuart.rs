//! Times a port write to the virtual UART and a read back (scratch
//! register), both served by the UART service through the core.
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod domain {
    use testdomains::arch::{inb, outb};
    rt::entry!(main);

    const ROUNDS: u64 = 2_000;
    const SCR: u16 = 0x3ff;

    fn main(_: &'static rt::StartInfo) -> u64 {
        for n in 0..50u8 {
            outb(SCR, n);
            if inb(SCR) != n {
                rt::log!("scratch register mismatch");
                return 1;
            }
        }
        let start = rt::now();
        for n in 0..ROUNDS {
            outb(SCR, n as u8);
            if inb(SCR) != n as u8 {
                rt::log!("scratch register mismatch");
                return 1;
            }
        }
        let per = (rt::now() - start) / ROUNDS;
        rt::log!(
            "bench: virtual UART write and read back: {per} TSC ticks per pair ({ROUNDS} pairs)"
        );
        0
    }
}
