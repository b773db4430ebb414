//! A guest drives its virtual 16550 with any sequence of register reads,
//! writes and input: the model (the UART service's request handler) must
//! never panic. And `Kept`, fed each change the model reports as the
//! service feeds it, gives back at every round's end the settings and the
//! received bytes of the live model.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uart_virt::{kept_len, Kept, Sink, Trigger, Uart16550};

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
    let mut mem = [0u8; kept_len(1)];
    let mut kept = Kept::over(&mut mem, 1).expect("room for one guest");
    for op in data.chunks(2) {
        match op {
            [kind, value] if kind % 4 == 0 => uart.write(kind >> 2, *value),
            [kind, _] if kind % 4 == 1 => {
                uart.read(kind >> 2);
            }
            [kind, value] if kind % 4 == 2 => {
                uart.enqueue_input(&[*value]);
            }
            _ => {
                // The round ends.
                kept.commit();
                let (k, live) = (kept.state(0), uart.snapshot());
                let n = usize::from(live.rx_len);
                assert_eq!(
                    (k.ier, k.lcr, k.mcr, k.fcr, k.dll, k.dlm, k.rx_len),
                    (live.ier, live.lcr, live.mcr, live.fcr, live.dll, live.dlm, live.rx_len)
                );
                assert_eq!(k.rx[..n], live.rx[..n]);
            }
        }
        let changes = uart.take_changes();
        if changes.any() {
            kept.save(0, &uart.snapshot(), changes);
        }
    }
});
