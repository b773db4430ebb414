//! The `@NAME@` service: a Bulkhead service domain made by
//! `cargo xtask new-service @NAME@`. It answers every `u64` it receives on
//! the request ring of its channel `ring` with the number plus one on the
//! response ring. Replace the loop body in `answer_queued` with the
//! service's own protocol.
//!
//! Like every service it owns only what its manifest entry gives it, and it
//! trusts nothing that arrives on the ring: a frame that does not decode is
//! skipped and counted by the ring, never followed; rings the client has
//! scribbled over are dropped (the service keeps running) and attached
//! afresh when the client lays them out again; and a request is taken off
//! the ring only when there is room for its answer, so a client that is
//! slow to read its answers loses none.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("this service runs as a Bulkhead domain; see `cargo xtask run`");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
mod service {
    use shm_ring::{End, RingError};

    rt::entry!(main);

    /// Room one answer takes on the response ring at most (postcard
    /// writes a `u64` in at most 10 bytes).
    const ANSWER: u32 = shm_ring::frame_size(10);

    fn main(info: &'static rt::StartInfo) -> u64 {
        let Some(ch) = info.find("ring") else {
            defmt::error!("no channel named ring in my manifest entry");
            return 1;
        };
        let (slot, gpa, len) = (ch.slot as u64, ch.gpa, ch.size as usize);
        // Log records are defmt frames, decoded on the host by `cargo xtask run`.
        defmt::info!("{=str} ready: answering on channel ring", info.name());
        let mut end: Option<End<'static>> = None;
        // Whether the rings were found unusable since they last worked (one
        // warning per breakage, not one per notification).
        let mut broken = false;
        let mut scratch = [0u8; 64];
        loop {
            // The client lays the rings out, then notifies; it notifies
            // again after each request, and notifications coalesce.
            if rt::channel_wait(slot, u64::MAX).is_err() {
                return 0;
            }
            // Twice: what an old attachment takes for corruption may be a
            // fresh layout, to be attached and served at once.
            for _ in 0..2 {
                if end.is_none() {
                    // SAFETY: the channel's pages are mapped at `gpa` for
                    // this domain and its one peer only, for the domain's
                    // whole life.
                    end = unsafe { shm_ring::Channel::attach_raw(gpa as *mut u8, len) }
                        .ok()
                        .map(|c| c.into_responder());
                }
                let Some(e) = end.as_ref() else {
                    if !broken {
                        defmt::warn!("channel ring: no valid rings; waiting for the client");
                        broken = true;
                    }
                    break;
                };
                match serve(e, slot, &mut scratch) {
                    Ok(()) => {
                        broken = false;
                        break;
                    }
                    Err(_) => {
                        if !broken {
                            defmt::warn!("channel ring: corrupt rings dropped");
                            broken = true;
                        }
                        end = None;
                    }
                }
            }
        }
    }

    /// Answers the requests queued on `e` while the response ring has
    /// room for an answer (the others wait on the ring until the client
    /// has read its answers and notifies again), then notifies the client
    /// once if it answered any, even when it stopped at an error. An error
    /// means the rings are corrupt.
    fn serve(e: &End<'_>, slot: u64, scratch: &mut [u8]) -> Result<(), RingError> {
        let mut answered = false;
        let result = answer_queued(e, scratch, &mut answered);
        if answered {
            let _ = rt::channel_notify(slot);
        }
        result
    }

    /// The loop of [`serve`]: replace its body with the service's protocol.
    fn answer_queued(
        e: &End<'_>,
        scratch: &mut [u8],
        answered: &mut bool,
    ) -> Result<(), RingError> {
        while e.tx().free_space()? >= ANSWER {
            match e.rx().pop::<u64>(scratch) {
                Ok(Some(n)) => {
                    e.tx().push(&n.wrapping_add(1))?;
                    *answered = true;
                }
                Ok(None) => break,
                // Longer than any request: not one of ours, skipped.
                Err(RingError::BufferTooSmall { .. }) => {
                    e.rx().skip()?;
                }
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }
}
