//! Keeps running while another domain crashes, then says so.
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod domain {
    rt::entry!(main);

    fn main(info: &'static rt::StartInfo) -> u64 {
        for i in 1..=3 {
            rt::sleep(3_000_000);
            rt::log!("{} still running ({i})", info.name());
        }
        0
    }
}
