//! Prints a numbered line on its virtual 16550 at a steady pace, forever:
//! `NAME count N`. A guest to launch from the shell, and a witness that no
//! console output is lost (every number must appear).
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod domain {
    use rt::com1;
    rt::entry!(main);

    /// TSC ticks between lines.
    const PERIOD: u64 = 3_000_000;

    fn main(info: &'static rt::StartInfo) -> u64 {
        com1::init();
        let line = rt::Line::format(format_args!(
            "{} up with {} KiB\n",
            info.name(),
            info.memory_bytes / 1024
        ));
        com1::write(line.as_bytes());
        let mut n: u64 = 0;
        loop {
            n += 1;
            let line = rt::Line::format(format_args!("{} count {n}\n", info.name()));
            com1::write(line.as_bytes());
            rt::sleep(PERIOD);
        }
    }
}
