//! The domain manager's frames as the broker decodes them: any bytes are
//! decoded as requests and handled against a fake core; decoding and the
//! books must never panic, and memory must balance after every request.
#![no_main]

use std::collections::HashMap;

use hypercall_abi::Status;
use libfuzzer_sys::fuzz_target;
use mem_broker::proto::Request;
use mem_broker::{Broker, Ops};

/// A core that says yes to everything within reason and makes up slots;
/// it keeps the lengths of the regions it split, so that a region handed
/// back under its own slot is filed and any other is refused.
struct Core {
    next: u32,
    lengths: HashMap<u32, u64>,
}

impl Ops for Core {
    fn split(&mut self, slot: u32, offset: u64) -> Result<u32, Status> {
        self.next += 1;
        let len = self.lengths.get(&slot).copied().unwrap_or(0);
        self.lengths.insert(slot, offset);
        self.lengths.insert(self.next, len.saturating_sub(offset));
        Ok(self.next)
    }
    fn grant(&mut self, slot: u32) -> Result<u32, Status> {
        Ok(slot + 1000)
    }
    fn delete(&mut self, _slot: u32) -> Result<(), Status> {
        Ok(())
    }
    fn zero(&mut self, _slot: u32, _offset: u64, _len: u64) -> Result<(), Status> {
        Ok(())
    }
    fn identify(&mut self, slot: u32) -> Result<u32, Status> {
        if slot % 7 == 0 {
            Err(Status::WrongType)
        } else {
            Ok(slot)
        }
    }
    fn length(&mut self, slot: u32) -> Result<u64, Status> {
        // A made-up slot gets a made-up length.
        Ok(self
            .lengths
            .get(&slot)
            .copied()
            .unwrap_or(u64::from(slot % 9) << 20))
    }
    fn merge(&mut self, slot: u32, next: u32) -> Result<(), Status> {
        if (slot ^ next) % 5 == 0 {
            Err(Status::Denied)
        } else {
            let more = self.lengths.get(&next).copied().unwrap_or(0);
            *self.lengths.entry(slot).or_insert(0) += more;
            Ok(())
        }
    }
}

const TOTAL: u64 = 64 << 20;

fuzz_target!(|data: &[u8]| {
    let mut core = Core {
        next: 1,
        lengths: HashMap::from([(1, TOTAL)]),
    };
    let mut broker = Broker::new(1, TOTAL);
    let mut rest = data;
    while !rest.is_empty() {
        match postcard::take_from_bytes::<Request>(rest) {
            Ok((request, tail)) => {
                broker.handle(request, &mut core);
                assert_eq!(broker.free_bytes() + broker.granted_bytes(), TOTAL);
                rest = tail;
            }
            Err(_) => rest = &rest[1..],
        }
    }
});
