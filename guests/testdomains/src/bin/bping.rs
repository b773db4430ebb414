//! Times notify -> wake -> reply round trips over the channel `bench`.
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod domain {
    rt::entry!(main);

    /// Round trips timed (bpong answers exactly this many plus the warm-up).
    pub const ROUNDS: u64 = 10_000;
    const WARMUP: u64 = 100;

    fn round(slot: u64) -> bool {
        rt::channel_notify(slot).is_ok() && rt::channel_wait(slot, u64::MAX).is_ok()
    }

    fn main(info: &'static rt::StartInfo) -> u64 {
        let Some(slot) = info.find("bench").map(|s| s.slot as u64) else {
            return 1;
        };
        for _ in 0..WARMUP {
            if !round(slot) {
                return 2;
            }
        }
        let start = rt::now();
        for _ in 0..ROUNDS {
            if !round(slot) {
                return 3;
            }
        }
        let per = (rt::now() - start) / ROUNDS;
        rt::log!(
            "bench: notify -> wake -> reply round trip: {per} TSC ticks per round trip ({ROUNDS} round trips)"
        );
        0
    }
}
