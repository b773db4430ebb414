//! Reads lines typed on its console (its virtual UART) and answers each
//! with `echo from NAME: LINE`, to show that input reaches only the console
//! it was switched to. The line `exit` ends it (after a `bye` line).
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod domain {
    use rt::com1::{self, write as put};
    rt::entry!(main);

    fn main(info: &'static rt::StartInfo) -> u64 {
        com1::init();
        put(b"ready for input\n");
        let mut line = [0u8; 64];
        let mut len = 0;
        loop {
            let Some(byte) = com1::read_byte() else {
                rt::sleep(200_000);
                continue;
            };
            match byte {
                b'\r' | b'\n' => {
                    put(b"echo from ");
                    put(info.name().as_bytes());
                    put(b": ");
                    put(&line[..len]);
                    put(b"\n");
                    if &line[..len] == b"exit" {
                        put(b"bye\n");
                        return 0;
                    }
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
