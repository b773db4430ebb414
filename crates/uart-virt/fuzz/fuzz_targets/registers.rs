//! A guest drives its virtual 16550 with any sequence of register reads,
//! writes and input: the model (the UART service's request handler) must
//! never panic, and the records the service keeps for a restart, taken at
//! each change the model reports, always rebuild its settings and the
//! bytes its receiver holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uart_virt::{Sink, Trigger, Uart16550, UartState, RECEIVED_LEN, SETTINGS_LEN};

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
    let (mut settings, mut received) = ([0; SETTINGS_LEN], [0; RECEIVED_LEN]);
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
        let changes = uart.take_changes();
        let live = uart.snapshot();
        if changes.settings() {
            settings = live.settings();
        }
        if changes.received() {
            received = live.received();
        }
        let base = UartState::from_settings(&settings).unwrap_or(UartState::RESET);
        let kept = base.with_received(&received).unwrap_or(base);
        let n = usize::from(live.rx_len);
        assert_eq!(
            (kept.ier, kept.lcr, kept.mcr, kept.fcr, kept.dll, kept.dlm),
            (live.ier, live.lcr, live.mcr, live.fcr, live.dll, live.dlm)
        );
        assert_eq!(kept.rx_len, live.rx_len);
        assert_eq!(kept.rx[..n], live.rx[..n]);
    }
});
