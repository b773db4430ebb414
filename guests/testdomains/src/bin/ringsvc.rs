//! A ring service that must survive a hostile peer: it answers every `u64`
//! on its channel `ring` with the number plus one, counts what it had to
//! throw away (corrupt rings, frames that do not decode), and re-attaches
//! whenever the peer lays the rings out again.
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod domain {
    rt::entry!(main);

    fn main(info: &'static rt::StartInfo) -> u64 {
        let Some(ch) = info.find("ring") else {
            return 1;
        };
        let (slot, gpa, len) = (ch.slot as u64, ch.gpa, ch.size as usize);
        let mut end: Option<shm_ring::End<'static>> = None;
        let (mut corrupt, mut answered) = (0u32, 0u32);
        let mut scratch = [0u8; 64];
        loop {
            if rt::channel_wait(slot, u64::MAX).is_err() {
                // The peer is gone.
                rt::log!(
                    "peer gone: answered {answered}, threw away {corrupt} corrupt ring state(s)"
                );
                return 0;
            }
            // Twice: a corruption found on the first pass may be a fresh
            // layout the old attachment does not know yet.
            for _ in 0..2 {
                if end.is_none() {
                    // SAFETY: the channel's pages are mapped at `gpa` for
                    // this domain and its one peer only.
                    end = unsafe { shm_ring::Channel::attach_raw(gpa as *mut u8, len) }
                        .ok()
                        .map(|c| c.into_responder());
                }
                let Some(e) = end.as_ref() else {
                    corrupt += 1;
                    break;
                };
                let mut broken = false;
                loop {
                    match e.rx().pop::<u64>(&mut scratch) {
                        Ok(Some(n)) => {
                            if e.tx().push(&n.wrapping_add(1)).is_ok() {
                                answered += 1;
                                let _ = rt::channel_notify(slot);
                            }
                        }
                        Ok(None) => break,
                        // Longer than any request: skipped, not taken
                        // for a broken ring (it would stay at the head).
                        Err(shm_ring::RingError::BufferTooSmall { .. })
                            if e.rx().skip().is_ok() => {}
                        Err(_) => {
                            corrupt += 1;
                            broken = true;
                            break;
                        }
                    }
                }
                if !broken {
                    break;
                }
                end = None;
            }
        }
    }
}
