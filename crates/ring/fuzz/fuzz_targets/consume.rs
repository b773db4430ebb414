//! Hostile shared memory: the input becomes a ring area (header and data as
//! a peer may have written them); attaching and draining it as a consumer,
//! raw and as the UART service's ioreq requests, must never panic or reach
//! outside the area.
#![no_main]

use hypercall_abi::ioreq::{Request, VERSION};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut mem = data.to_vec();
    let mut guard = vec![0xa5u8; 64];
    mem.resize(mem.len().max(256), 0);
    mem.append(&mut guard);
    let len = mem.len() - 64;
    if let Ok(ring) = shm_ring::Ring::attach(&mut mem[..len]) {
        let (_tx, rx) = ring.split();
        let mut scratch = [0u8; 256];
        for _ in 0..64 {
            match rx.pop_versioned::<Request>(VERSION, &mut scratch) {
                Ok(None) => break,
                Ok(Some(_)) | Err(_) => {}
            }
            let _ = rx.pop_bytes(&mut scratch);
        }
    }
    assert!(mem[len..].iter().all(|&b| b == 0xa5), "wrote past the area");
});
