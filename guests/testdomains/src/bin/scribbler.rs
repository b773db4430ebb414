//! A hostile ring peer: lays out the rings of its channel `ring`, then
//! overwrites the shared pages (headers and data) with pseudo-random bytes
//! and notifies, many times; finally lays the rings out again and checks
//! that the service on the other side still answers a real request. The
//! bytes are the same every run unless it is built with
//! `BULKHEAD_TEST_SEED` set (see `testdomains::build_seed`).
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod domain {
    use testdomains::arch::write_u8;
    rt::entry!(main);

    const ROUNDS: u32 = 100;

    fn main(info: &'static rt::StartInfo) -> u64 {
        let Some(ch) = info.find("ring") else {
            return 1;
        };
        let (slot, gpa, len) = (ch.slot as u64, ch.gpa, ch.size as usize);
        // Xorshift never leaves zero, hence `| 1`.
        let mut seed = match testdomains::build_seed() {
            Some(Some(v)) => {
                rt::log!("scribbling with seed {v:#x} (BULKHEAD_TEST_SEED)");
                v | 1
            }
            Some(None) => {
                rt::log!("BULKHEAD_TEST_SEED is not a number (decimal or 0x hex)");
                return 5;
            }
            None => 0x9e37_79b9_7f4a_7c15u64,
        };
        for round in 0..ROUNDS {
            // Sometimes a valid layout with garbage frames, sometimes pure
            // garbage over everything.
            if round % 3 == 0 {
                // SAFETY: the channel's pages are mapped at `gpa` for this
                // domain and its one peer only.
                let _ = unsafe { shm_ring::Channel::init_raw(gpa as *mut u8, len) };
            }
            let start = if round % 3 == 0 { 192 } else { 0 };
            for i in (start..len).step_by(7) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                write_u8(gpa + i as u64, seed as u8);
            }
            let _ = rt::channel_notify(slot);
            rt::yield_now();
        }
        // SAFETY: as above.
        let Ok(channel) = (unsafe { shm_ring::Channel::init_raw(gpa as *mut u8, len) }) else {
            return 2;
        };
        let end = channel.into_initiator();
        if end.tx().push(&41u64).is_err() || rt::channel_notify(slot).is_err() {
            return 3;
        }
        let mut scratch = [0u8; 64];
        for _ in 0..100 {
            if rt::channel_wait(slot, 5_000_000).is_err() {
                break;
            }
            if let Ok(Some(answer)) = end.rx().pop::<u64>(&mut scratch) {
                rt::log!("peer survived: answered {answer} after {ROUNDS} rounds of garbage");
                return 0;
            }
        }
        rt::log!("the peer did not answer after the garbage");
        4
    }
}
