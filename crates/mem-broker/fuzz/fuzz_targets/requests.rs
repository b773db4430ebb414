//! The domain manager's frames as the broker decodes them: any bytes are
//! decoded as requests and handled against a fake core; decoding and the
//! books must never panic, and memory must balance after every request.
#![no_main]

use hypercall_abi::Status;
use libfuzzer_sys::fuzz_target;
use mem_broker::proto::Request;
use mem_broker::{Broker, Ops};

/// A core that says yes to everything within reason and makes up slots.
struct Core {
    next: u32,
}

impl Ops for Core {
    fn split(&mut self, _slot: u32, _offset: u64) -> Result<u32, Status> {
        self.next += 1;
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
    fn merge(&mut self, slot: u32, next: u32) -> Result<(), Status> {
        if (slot ^ next) % 5 == 0 {
            Err(Status::Denied)
        } else {
            Ok(())
        }
    }
}

const TOTAL: u64 = 64 << 20;

fuzz_target!(|data: &[u8]| {
    let mut core = Core { next: 1 };
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
