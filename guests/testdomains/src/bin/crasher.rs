//! Triple-faults on purpose.
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod domain {
    rt::entry!(main);

    fn main(_: &'static rt::StartInfo) -> u64 {
        rt::log!("about to triple-fault");
        testdomains::arch::triple_fault()
    }
}
