//! Holds a secret in its memory while hostile domains attack, then checks it.
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod domain {
    use core::sync::atomic::{AtomicU64, Ordering};
    rt::entry!(main);

    static SECRET: AtomicU64 = AtomicU64::new(0);
    const VALUE: u64 = 0x5ec2_e7c0_ffee_d00d;

    fn main(_: &'static rt::StartInfo) -> u64 {
        SECRET.store(VALUE, Ordering::SeqCst);
        rt::log!(
            "secret stored at guest-physical {:#x}",
            SECRET.as_ptr() as u64
        );
        for _ in 0..4 {
            rt::sleep(4_000_000);
        }
        if SECRET.load(Ordering::SeqCst) == VALUE {
            rt::log!("still running after the attacks; secret intact");
            0
        } else {
            rt::log!("secret was changed");
            1
        }
    }
}
