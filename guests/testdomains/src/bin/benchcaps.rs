//! Times the null hypercall and a capability-checked one (`CAP_INSPECT` of
//! its memory capability) with RDTSC.
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod domain {
    rt::entry!(main);

    const CALLS: u64 = 100_000;

    fn time(mut f: impl FnMut()) -> u64 {
        for _ in 0..1000 {
            f();
        }
        let start = rt::now();
        for _ in 0..CALLS {
            f();
        }
        (rt::now() - start) / CALLS
    }

    fn main(info: &'static rt::StartInfo) -> u64 {
        let Some(memory) = info.find("memory").map(|s| s.slot as u64) else {
            return 1;
        };
        if rt::cap_inspect(memory).is_err() {
            rt::log!("cap_inspect of my memory capability failed");
            return 2;
        }
        // The loops issue the raw VMCALL so that the figure is the core's
        // round trip, not the runtime's result decoding.
        let null = time(|| {
            rt::raw_call(rt::Call::Null as u64, 0, 0, 0, 0);
        });
        rt::log!("bench: null hypercall round trip: {null} TSC ticks per call ({CALLS} calls)");
        let checked = time(|| {
            rt::raw_call(rt::Call::CapInspect as u64, memory, 0, 0, 0);
        });
        rt::log!(
            "bench: capability-checked hypercall (cap_inspect) round trip: {checked} TSC ticks per call ({CALLS} calls)"
        );
        0
    }
}
