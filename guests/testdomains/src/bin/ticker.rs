//! Wakes every `PERIOD` TSC ticks ten times and reports how late it was.
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod domain {
    rt::entry!(main);

    /// Ticks between wake-ups.
    const PERIOD: u64 = 2_000_000;
    /// Lateness beyond which the rhythm counts as broken: two default
    /// preemption slices.
    const LATE_LIMIT: u64 = 600_000;

    fn main(_: &'static rt::StartInfo) -> u64 {
        let start = rt::now();
        let mut worst = 0;
        for k in 1..=10u64 {
            let due = start + k * PERIOD;
            let now = rt::now();
            if now < due {
                rt::sleep(due - now);
            }
            let late = rt::now().saturating_sub(due);
            worst = worst.max(late);
            rt::log!("tick {k} late by {late} ticks");
        }
        if worst <= LATE_LIMIT {
            rt::log!("rhythm kept: 10 ticks, worst lateness {worst} ticks (limit {LATE_LIMIT})");
            0
        } else {
            rt::log!("rhythm broken: worst lateness {worst} ticks (limit {LATE_LIMIT})");
            1
        }
    }
}
