//! Computes for 300 ms of its own time and says what share of the CPU it
//! had meanwhile: the time between its first and last look at the TSC,
//! against the time it ran (a gap of more than 4 ms between two looks is
//! time another domain, or the core for another domain, had). Beside
//! `flooder` at the same priority (e2e test `port-flood`) it must have
//! had at least half: the core's printing of the flooder's lines is held
//! to a quarter. Below half it says it was starved.
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod domain {
    rt::entry!(main);

    fn main(_: &'static rt::StartInfo) -> u64 {
        let hz = rt::tsc_hz();
        let want = rt::ms_to_ticks(300, hz);
        let gap = rt::ms_to_ticks(4, hz);
        let start = rt::now();
        let (mut last, mut ran, mut x) = (start, 0u64, 1u64);
        while ran < want {
            for _ in 0..1000 {
                x = core::hint::black_box(
                    x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1),
                );
            }
            let now = rt::now();
            let d = now.wrapping_sub(last);
            if d < gap {
                ran += d;
            }
            last = now;
        }
        let elapsed = last.wrapping_sub(start).max(1);
        let share = ran * 100 / elapsed;
        let ms = elapsed * 1000 / hz.max(1);
        if share >= 50 {
            rt::log!("worker: had {share}% of the CPU ({ms} ms for 300 ms of work)");
        } else {
            rt::log!("worker: starved: {share}% of the CPU ({ms} ms for 300 ms of work)");
        }
        0
    }
}
