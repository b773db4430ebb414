//! The `@NAME@` service: a Bulkhead service domain made by
//! `cargo xtask new-service @NAME@`. It answers every `u64` it receives on
//! the request ring of its channel `ring` with the number plus one on the
//! response ring. Replace the loop body with the service's own protocol.
//!
//! Like every service it owns only what its manifest entry gives it, and it
//! trusts nothing that arrives on the ring: a frame that does not decode is
//! skipped and counted by the ring, never followed.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("this service runs as a Bulkhead domain; see `cargo xtask run`");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
mod service {
    rt::entry!(main);

    fn main(info: &'static rt::StartInfo) -> u64 {
        let Some(ch) = info.find("ring") else {
            defmt::error!("no channel named ring in my manifest entry");
            return 1;
        };
        let (slot, gpa, len) = (ch.slot as u64, ch.gpa, ch.size as usize);
        // Log records are defmt frames, decoded on the host by `cargo xtask run`.
        defmt::info!("{=str} ready: answering on channel ring", info.name());
        // The client lays the rings out, then notifies once.
        if rt::channel_wait(slot, u64::MAX).is_err() {
            return 2;
        }
        // SAFETY: the channel's pages are mapped at `gpa` for this domain
        // and its one peer only, for the domain's whole life.
        let Ok(channel) = (unsafe { shm_ring::Channel::attach_raw(gpa as *mut u8, len) }) else {
            return 3;
        };
        let end = channel.into_responder();
        let mut scratch = [0u8; 64];
        loop {
            // Notifications may coalesce: answer everything queued, then wait.
            while let Ok(Some(n)) = end.rx().pop::<u64>(&mut scratch) {
                if end.tx().push(&n.wrapping_add(1)).is_err() || rt::channel_notify(slot).is_err() {
                    return 4;
                }
            }
            if rt::channel_wait(slot, u64::MAX).is_err() {
                return 0;
            }
        }
    }
}
