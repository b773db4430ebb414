//! Prints numbered lines on its COM1 as fast as it can, `LINES` of them,
//! then exits. In a system without a UART service the core prints each
//! line itself, waiting for the port; the port share keeps that to a
//! quarter of the CPU (e2e test `port-flood`, with `worker`).
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod domain {
    use rt::com1;
    rt::entry!(main);

    /// Lines printed before it exits.
    const LINES: u32 = 600;

    fn main(info: &'static rt::StartInfo) -> u64 {
        com1::init();
        for n in 1..=LINES {
            let line = rt::Line::format(format_args!("{} line {n}\n", info.name()));
            com1::write(line.as_bytes());
        }
        rt::log!("flooder: done: {LINES} lines");
        0
    }
}
