//! The memory broker: the service domain that owns all the memory left free
//! at boot (the region capability `free` in its start info) and hands it to
//! the domain manager on request over the channel `broker`, in regions of
//! the size asked for. Memory comes back when the manager destroys a guest;
//! every page is zeroed before it can be granted again. The allocation
//! logic lives in `crates/mem-broker`; this file only wires it to the
//! hypercalls and the ring.
//!
//! It trusts nothing the manager sends: frames that do not decode are
//! skipped, a corrupted ring is re-attached, and every request is checked
//! by the logic crate against its own books.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the memory broker runs as a Bulkhead domain; see `cargo xtask run`");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
mod service {
    use mem_broker::proto::{Request, Response, VERSION};
    use mem_broker::{Broker, Ops};
    use rt::{Rights, Status};

    rt::entry!(main);

    /// The hypercalls behind the broker's books.
    struct Hypercalls {
        channel: u64,
    }

    fn slot32(v: u64) -> Result<u32, Status> {
        u32::try_from(v).map_err(|_| Status::InvalidSlot)
    }

    impl Ops for Hypercalls {
        fn split(&mut self, slot: u32, offset: u64) -> Result<u32, Status> {
            slot32(rt::mem_split(slot as u64, offset)?)
        }
        fn grant(&mut self, slot: u32) -> Result<u32, Status> {
            let rights = Rights::READ | Rights::WRITE | Rights::EXECUTE | Rights::MAP;
            slot32(rt::cap_grant(
                self.channel,
                slot as u64,
                rights | Rights::CONTROL | Rights::GRANT,
            )?)
        }
        fn delete(&mut self, slot: u32) -> Result<(), Status> {
            rt::cap_delete(slot as u64)
        }
        fn zero(&mut self, slot: u32, offset: u64, len: u64) -> Result<(), Status> {
            rt::mem_zero(slot as u64, offset, len)
        }
        fn identify(&mut self, slot: u32) -> Result<u32, Status> {
            let info = rt::cap_inspect(slot as u64)?;
            if info.kind != Some(rt::ObjectType::MemRegion) {
                return Err(Status::WrongType);
            }
            Ok(info.index)
        }
        fn length(&mut self, slot: u32) -> Result<u64, Status> {
            rt::mem_size(slot as u64)
        }
        fn merge(&mut self, slot: u32, next: u32) -> Result<(), Status> {
            rt::mem_merge(slot as u64, next as u64)
        }
    }

    fn main(info: &'static rt::StartInfo) -> u64 {
        let (Some(free), Some(ch)) = (info.find("free"), info.find("broker")) else {
            defmt::error!("needs a `free` region and a `broker` channel in its start info");
            return 1;
        };
        let mut ops = Hypercalls {
            channel: ch.slot as u64,
        };
        let mut broker = Broker::new(free.slot, free.size);
        if let Err(s) = broker.zero_all(&mut ops) {
            defmt::error!("could not zero the free memory: {}", s);
            return 1;
        }
        defmt::info!("ready: {=u64} KiB free", broker.free_bytes() / 1024);
        let (slot, gpa, len) = (ch.slot as u64, ch.gpa, ch.size as usize);
        let mut end: Option<shm_ring::End<'static>> = None;
        let mut scratch = [0u8; 128];
        let mut thrown_away = 0u32;
        loop {
            if rt::channel_wait(slot, u64::MAX).is_err() {
                defmt::info!(
                    "the domain manager is gone; {=u32} bad frame(s) seen",
                    thrown_away
                );
                return 0;
            }
            if end.is_none() {
                // SAFETY: the channel's pages are mapped at `gpa` for this
                // domain and the manager only.
                end = unsafe { shm_ring::Channel::attach_raw(gpa as *mut u8, len) }
                    .ok()
                    .map(|c| c.into_responder());
            }
            let Some(e) = end.as_ref() else {
                thrown_away += 1;
                continue;
            };
            let mut answered = false;
            loop {
                match e.rx().pop_versioned::<Request>(VERSION, &mut scratch) {
                    Ok(Some(request)) => {
                        let response: Response = broker.handle(request, &mut ops);
                        if e.tx().push_versioned(VERSION, &response).is_err() {
                            thrown_away += 1;
                        }
                        answered = true;
                    }
                    Ok(None) => break,
                    Err(shm_ring::RingError::Version { .. }) => {
                        thrown_away += 1;
                    }
                    Err(_) => {
                        // A corrupted ring: lay hands on it afresh next time.
                        thrown_away += 1;
                        end = None;
                        break;
                    }
                }
            }
            if answered {
                let _ = rt::channel_notify(slot);
            }
        }
    }
}
