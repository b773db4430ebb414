//! The UART service's request decoder: whatever bytes a frame on the ioreq
//! ring holds, decoding it as a versioned `ioreq::Request` never panics,
//! and the writes of a decoded `Accesses` (at most `POSTED_MAX`) drive a
//! 16550 model without panicking either.
#![no_main]

use hypercall_abi::ioreq::{Request, POSTED_MAX, VERSION};
use libfuzzer_sys::fuzz_target;
use shm_ring::Ring;
use uart_virt::{Sink, Trigger, Uart16550};

struct Line;
impl Trigger for Line {
    fn set_level(&mut self, _high: bool) {}
}
struct Out;
impl Sink for Out {
    fn write_byte(&mut self, _byte: u8) {}
}

#[repr(C, align(4096))]
struct Page([u8; 4096]);

fuzz_target!(|data: &[u8]| {
    // Each input is one frame as the core would have pushed it.
    let mut page = Page([0; 4096]);
    let (tx, rx) = Ring::init(&mut page.0).unwrap().split();
    if tx.push_bytes(data).is_err() {
        return;
    }
    let mut scratch = [0u8; 256];
    let mut uart = Uart16550::new(Line, Out);
    while let Ok(Some(request)) = rx.pop_versioned::<Request>(VERSION, &mut scratch) {
        if let Request::Accesses { writes, read, .. } = request {
            assert!(writes.len() <= POSTED_MAX);
            for (offset, value) in writes.iter() {
                uart.write(offset, value);
            }
            if let Some(offset) = read {
                uart.read(offset);
            }
        }
    }
});
