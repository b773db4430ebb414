//! Answers every ring message on the channel `ring` with the number plus one.
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
        // The peer lays the rings out and then notifies once.
        if rt::channel_wait(slot, u64::MAX).is_err() {
            return 2;
        }
        // SAFETY: the channel's pages are mapped at `gpa` for this domain
        // and its one peer only.
        let Ok(channel) = (unsafe { shm_ring::Channel::attach_raw(gpa as *mut u8, len) }) else {
            return 3;
        };
        let end = channel.into_responder();
        let mut scratch = [0u8; 64];
        // Notifications do not count messages (several may arrive as one):
        // answer everything queued, then wait.
        let mut answered = 0;
        while answered < 5_100 {
            loop {
                match end.rx().pop::<u64>(&mut scratch) {
                    Ok(Some(n)) => {
                        if end.tx().push(&(n + 1)).is_err() || rt::channel_notify(slot).is_err() {
                            return 5;
                        }
                        answered += 1;
                    }
                    Ok(None) => break,
                    Err(_) => return 6,
                }
            }
            if answered < 5_100 && rt::channel_wait(slot, u64::MAX).is_err() {
                return 4;
            }
        }
        0
    }
}
