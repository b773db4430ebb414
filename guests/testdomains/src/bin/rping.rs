//! Times ring message round trips over the channel `ring`: encode a message
//! onto the request ring, notify, switch to the peer, which decodes it and
//! answers on the response ring; then decode the answer.
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod domain {
    rt::entry!(main);

    const ROUNDS: u64 = 5_000;
    const WARMUP: u64 = 100;

    fn main(info: &'static rt::StartInfo) -> u64 {
        let Some(ch) = info.find("ring") else {
            return 1;
        };
        let (slot, gpa, len) = (ch.slot as u64, ch.gpa, ch.size as usize);
        // SAFETY: the channel's pages are mapped at `gpa` for this domain
        // and its one peer only; this side lays the rings out.
        let Ok(channel) = (unsafe { shm_ring::Channel::init_raw(gpa as *mut u8, len) }) else {
            return 2;
        };
        let end = channel.into_initiator();
        // Tell the peer the rings are laid out.
        if rt::channel_notify(slot).is_err() {
            return 3;
        }
        let mut scratch = [0u8; 64];
        let mut round = |n: u64| -> bool {
            end.tx().push(&n).is_ok()
                && rt::channel_notify(slot).is_ok()
                && rt::channel_wait(slot, u64::MAX).is_ok()
                && matches!(end.rx().pop::<u64>(&mut scratch), Ok(Some(m)) if m == n + 1)
        };
        for n in 0..WARMUP {
            if !round(n) {
                rt::log!("warm-up round {n} failed");
                return 4;
            }
        }
        let start = rt::now();
        for n in 0..ROUNDS {
            if !round(n) {
                rt::log!("round {n} failed");
                return 5;
            }
        }
        let per = (rt::now() - start) / ROUNDS;
        rt::log!(
            "bench: ring message round trip: {per} TSC ticks per round trip ({ROUNDS} round trips)"
        );
        0
    }
}
