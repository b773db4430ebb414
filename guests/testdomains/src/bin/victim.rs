//! Holds a secret in its memory while hostile domains attack, then checks it:
//! after a few sleeps, or, when it controls domains, once they have all
//! stopped.
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod domain {
    use core::sync::atomic::{AtomicU64, Ordering};
    rt::entry!(main);

    static SECRET: AtomicU64 = AtomicU64::new(0);
    const VALUE: u64 = 0x5ec2_e7c0_ffee_d00d;

    fn main(info: &'static rt::StartInfo) -> u64 {
        SECRET.store(VALUE, Ordering::SeqCst);
        rt::log!(
            "secret stored at guest-physical {:#x}",
            SECRET.as_ptr() as u64
        );
        // Watches the domains it controls (the `chaos` system's) until
        // they have stopped; without any, sleeps a while.
        let n = (info.slot_count as usize).min(info.slots.len());
        let watched = info.slots[..n]
            .iter()
            .filter(|s| s.kind == rt::ObjectType::Domain as u8);
        let mut any = false;
        for d in watched {
            any = true;
            while let Ok(Some(state)) = rt::domain_status(d.slot as u64) {
                if state == rt::DomainState::Stopped {
                    break;
                }
                rt::sleep(2_000_000);
            }
        }
        if !any {
            for _ in 0..4 {
                rt::sleep(4_000_000);
            }
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
