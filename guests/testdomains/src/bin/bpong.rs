//! Answers every notification on the channel `bench` with one back.
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod domain {
    rt::entry!(main);

    fn main(info: &'static rt::StartInfo) -> u64 {
        let Some(slot) = info.find("bench").map(|s| s.slot as u64) else {
            return 1;
        };
        // Warm-up plus timed rounds of the `bping` domain.
        for _ in 0..10_100 {
            if rt::channel_wait(slot, u64::MAX).is_err() || rt::channel_notify(slot).is_err() {
                return 2;
            }
        }
        0
    }
}
