//! Hostile shared memory: the input becomes a ring area (header and data as
//! a peer may have written them); attaching and draining it as a consumer,
//! raw and as the UART service's ioreq requests, must never panic or reach
//! outside the area.
#![no_main]

use hypercall_abi::ioreq::{Request, VERSION};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Backed by 64-bit words: a ring needs 8-byte alignment.
    let len = data.len().max(256).next_multiple_of(8);
    let mut words = vec![0u64; (len + 64) / 8];
    // SAFETY: the words are `len + 64` initialised bytes, u8 has no
    // alignment requirement, and `words` is not used while `mem` lives.
    let mem = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), len + 64) };
    mem[..data.len()].copy_from_slice(data);
    mem[len..].fill(0xa5);
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
