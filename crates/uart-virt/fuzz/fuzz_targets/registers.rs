//! A guest drives its virtual 16550 with any sequence of register reads,
//! writes and input: the model (the UART service's request handler) must
//! never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uart_virt::{Sink, Trigger, Uart16550};

struct Line;
impl Trigger for Line {
    fn set_level(&mut self, _high: bool) {}
}
struct Out;
impl Sink for Out {
    fn write_byte(&mut self, _byte: u8) {}
}

fuzz_target!(|data: &[u8]| {
    let mut uart = Uart16550::new(Line, Out);
    for op in data.chunks(2) {
        match op {
            [kind, value] if kind % 3 == 0 => uart.write(kind >> 2, *value),
            [kind, _] if kind % 3 == 1 => {
                uart.read(kind >> 2);
            }
            [_, value] => {
                uart.enqueue_input(&[*value]);
            }
            _ => {}
        }
    }
});
