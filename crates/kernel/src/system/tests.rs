//! Host tests of the objects and of every documented hypercall error.

use super::*;
use hypercall_abi::SLOT_NONE;
use std::collections::BTreeMap;
use std::vec::Vec;

/// EPT tables in a map; memory is never touched.
#[derive(Default)]
struct Arena {
    next: u64,
    tables: BTreeMap<u64, Box<[u64; 512]>>,
}

impl FrameAllocator for Arena {
    fn allocate_frame(&mut self) -> Option<u64> {
        self.next += 1;
        let hpa = 0x4000_0000 + self.next * PAGE;
        self.tables.insert(hpa, Box::new([0; 512]));
        Some(hpa)
    }
    fn deallocate_frame(&mut self, hpa: u64) {
        self.tables.remove(&hpa);
    }
    fn table(&self, hpa: u64) -> &[u64; 512] {
        &self.tables[&hpa]
    }
    fn table_mut(&mut self, hpa: u64) -> &mut [u64; 512] {
        self.tables.get_mut(&hpa).unwrap()
    }
}

#[derive(Default)]
struct FakeMachine {
    arena: Arena,
    invalidations: usize,
    released: Vec<(u64, u64)>,
    zeroed: Vec<(u64, u64)>,
    released_domains: usize,
    pool_exhausted: bool,
    opened: Vec<(u16, u16)>,
    /// Answers waiting on the fake ioreq response ring: (guest, seq, value).
    uart_answers: Vec<(u8, u32, u8)>,
    /// Table slots whose posted UART writes the core was told to hand over.
    uart_stopped: Vec<u8>,
}

impl Machine for FakeMachine {
    type Frames = Arena;
    fn frames(&mut self) -> &mut Arena {
        &mut self.arena
    }
    fn invalidate(&mut self, _eptp: u64, _vpid: u16) {
        self.invalidations += 1;
    }
    fn release_memory(&mut self, hpa: u64, len: u64) {
        self.released.push((hpa, len));
    }
    fn zero_memory(&mut self, hpa: u64, len: u64) {
        self.zeroed.push((hpa, len));
    }
    fn release_domain(&mut self, _hw: &DomainHw) {
        self.released_domains += 1;
    }
    fn device_answers(
        &mut self,
        _device: Device,
        answer: &mut dyn FnMut(u8, u32, u8) -> bool,
    ) -> u32 {
        let answers = std::mem::take(&mut self.uart_answers);
        answers
            .into_iter()
            .filter(|&(g, s, v)| !answer(g, s, v))
            .count() as u32
    }
    fn device_stopped(&mut self, _device: Device, guest: u8) {
        self.uart_stopped.push(guest);
    }
    fn allocate_domain(&mut self, vpid: u16) -> Option<DomainHw> {
        if self.pool_exhausted {
            return None;
        }
        Some(DomainHw {
            vmcs: 0x9000_0000 + vpid as u64 * PAGE,
            io_bitmaps: (0, 0),
            vpid,
        })
    }
    fn open_ports(&mut self, _hw: &DomainHw, first: u16, last: u16) {
        self.opened.push((first, last));
    }
}

const MIB: u64 = 1 << 20;

struct World {
    sys: Box<System>,
    m: FakeMachine,
    a: ObjectRef,
    b: ObjectRef,
    a_mem: u64,
    chan_a: u64,
    chan_b: u64,
}

fn world() -> World {
    let mut sys = Box::new(System::new());
    let mut m = FakeMachine::default();
    let (a, a_mem) = sys
        .create_domain(&mut m, "a", 3, (0x100_0000, 2 * MIB), DomainHw::default())
        .unwrap();
    let (b, _) = sys
        .create_domain(&mut m, "b", 3, (0x200_0000, 2 * MIB), DomainHw::default())
        .unwrap();
    let (_, sa, sb) = sys
        .create_channel(&mut m, a, b, (0x300_0000, PAGE), 0x1000_0000, 0x1000_0000)
        .unwrap();
    World {
        sys,
        m,
        a,
        b,
        a_mem: a_mem as u64,
        chan_a: sa as u64,
        chan_b: sb as u64,
    }
}

impl World {
    /// A fresh, unmapped region of `len` bytes at `hpa` owned by `owner`,
    /// with every right in a slot of `to`'s space: its object and the slot.
    fn region(
        &mut self,
        to: ObjectRef,
        hpa: u64,
        len: u64,
        owner: Option<ObjectRef>,
    ) -> (ObjectRef, u64) {
        let r = self
            .sys
            .regions
            .allocate(ObjectType::MemRegion, Region::new(hpa, len, owner))
            .unwrap();
        let slot = self.sys.cspaces[to.index as usize]
            .insert(Capability::new(r, Rights::all()))
            .unwrap() as u64;
        (r, slot)
    }
    fn call(&mut self, who: ObjectRef, call: Call, a: [u64; 4]) -> Outcome {
        let outcome = self.sys.hypercall(&mut self.m, who, call, a, 1000);
        assert!(
            self.sys.runnable_in_step(),
            "runnable set out of step after {call:?}"
        );
        outcome
    }
    fn status(&mut self, who: ObjectRef, call: Call, a: [u64; 4]) -> Status {
        match self.call(who, call, a) {
            Outcome::Return(s, _) => s,
            other => panic!("{other:?}"),
        }
    }
    fn value(&mut self, who: ObjectRef, call: Call, a: [u64; 4]) -> u64 {
        match self.call(who, call, a) {
            Outcome::Return(Status::Ok, Some(v)) => v,
            other => panic!("{other:?}"),
        }
    }
    fn translate(&self, d: ObjectRef, gpa: u64) -> Option<ept::Translation> {
        self.sys
            .domains
            .get(d)?
            .ept
            .as_ref()?
            .translate(&self.m.arena, gpa)
    }
}

#[test]
fn each_domain_sees_its_own_memory_and_the_channel_only() {
    let w = world();
    assert_eq!(w.translate(w.a, 0x1234).unwrap().hpa, 0x100_1234);
    assert_eq!(w.translate(w.b, 0x1234).unwrap().hpa, 0x200_1234);
    assert!(w.translate(w.a, 2 * MIB).is_none());
    assert_eq!(w.translate(w.a, 0x1000_0008).unwrap().hpa, 0x300_0008);
    assert_eq!(w.translate(w.b, 0x1000_0008).unwrap().hpa, 0x300_0008);
    let t = w.translate(w.a, 0x1000_0000).unwrap();
    assert!(
        !t.access.contains(Access::EXECUTE),
        "channel pages are not executable"
    );
}

#[test]
fn inspect_reports_type_and_rights_and_refuses_bad_slots() {
    let mut w = world();
    let v = w.value(w.a, Call::CapInspect, [w.a_mem, 0, 0, 0]);
    assert_eq!(v & 0xff, ObjectType::MemRegion as u64);
    assert!(Rights::from_bits_truncate((v >> 8) as u8).contains(Rights::MAP));
    assert_eq!(
        w.status(w.a, Call::CapInspect, [9999, 0, 0, 0]),
        Status::InvalidSlot
    );
    assert_eq!(
        w.status(w.a, Call::CapInspect, [u64::MAX - 1, 0, 0, 0]),
        Status::InvalidSlot
    );
    assert_eq!(
        w.status(w.a, Call::CapInspect, [20, 0, 0, 0]),
        Status::EmptySlot
    );
    assert_eq!(w.sys.stats.refused, 3);
    assert_eq!(
        w.sys.domains.get(w.a).unwrap().refused,
        3,
        "the domain's own count (`status`, and what the core logs) agrees"
    );
    // The fast path answers exactly as the general dispatch does.
    for slot in [w.a_mem, w.chan_a, 9999, 20, u64::MAX] {
        let general = match w.call(w.a, Call::CapInspect, [slot, 0, 0, 0]) {
            Outcome::Return(Status::Ok, v) => Ok(v.unwrap()),
            Outcome::Return(s, _) => Err(s),
            other => panic!("{other:?}"),
        };
        assert_eq!(w.sys.cap_inspect(w.a, slot), general, "slot {slot}");
    }
    w.sys.destroy_domain(&mut w.m, w.b);
    assert_eq!(
        w.sys.cap_inspect(w.b, 0),
        Err(Status::EmptySlot),
        "a destroyed domain's space is empty"
    );
}

#[test]
fn derive_never_adds_rights_and_delete_empties() {
    let mut w = world();
    let ro = w.value(
        w.a,
        Call::CapDerive,
        [w.a_mem, (Rights::READ | Rights::MAP).bits() as u64, 0, 0],
    );
    assert_eq!(
        w.status(
            w.a,
            Call::CapDerive,
            [ro, Rights::all().bits() as u64, 0, 0]
        ),
        Status::InsufficientRights
    );
    assert_eq!(
        w.status(w.a, Call::CapDerive, [ro, 0x1_00, 0, 0]),
        Status::InvalidArgument
    );
    assert_eq!(
        w.status(w.a, Call::CapDerive, [ro, 0x80, 0, 0]),
        Status::InvalidArgument
    );
    assert_eq!(w.status(w.a, Call::CapDelete, [ro, 0, 0, 0]), Status::Ok);
    assert_eq!(
        w.status(w.a, Call::CapDelete, [ro, 0, 0, 0]),
        Status::EmptySlot
    );
    assert_eq!(
        w.status(w.a, Call::CapDelete, [1 << 40, 0, 0, 0]),
        Status::InvalidSlot
    );
}

#[test]
fn derive_fills_the_space_then_answers_out_of_resources() {
    let mut w = world();
    let mut last = Status::Ok;
    for _ in 0..CSPACE_SLOTS {
        last = match w.call(
            w.a,
            Call::CapDerive,
            [w.a_mem, Rights::READ.bits() as u64, 0, 0],
        ) {
            Outcome::Return(s, _) => s,
            _ => unreachable!(),
        };
    }
    assert_eq!(last, Status::OutOfResources);
}

#[test]
fn mem_map_checks_rights_type_and_addresses() {
    let mut w = world();
    let rw = (Rights::READ | Rights::WRITE).bits() as u64;
    let ro = w.value(
        w.a,
        Call::CapDerive,
        [w.a_mem, (Rights::READ | Rights::MAP).bits() as u64, 0, 0],
    );
    // Too few rights on the region.
    assert_eq!(
        w.status(w.a, Call::MemMap, [SLOT_SELF, ro, 0x2000_0000, rw]),
        Status::InsufficientRights
    );
    // Not a region.
    assert_eq!(
        w.status(w.a, Call::MemMap, [SLOT_SELF, w.chan_a, 0x2000_0000, 1]),
        Status::WrongType
    );
    // Not a domain.
    assert_eq!(
        w.status(w.a, Call::MemMap, [w.a_mem, ro, 0x2000_0000, 1]),
        Status::WrongType
    );
    // Empty slot.
    assert_eq!(
        w.status(w.a, Call::MemMap, [SLOT_SELF, 21, 0x2000_0000, 1]),
        Status::EmptySlot
    );
    // Bad rights argument: empty, unknown bits, write without read.
    assert_eq!(
        w.status(w.a, Call::MemMap, [SLOT_SELF, ro, 0x2000_0000, 0]),
        Status::InvalidArgument
    );
    assert_eq!(
        w.status(w.a, Call::MemMap, [SLOT_SELF, ro, 0x2000_0000, 0x8]),
        Status::InvalidArgument
    );
    assert_eq!(
        w.status(w.a, Call::MemMap, [SLOT_SELF, w.a_mem, 0x2000_0000, 2]),
        Status::InvalidArgument
    );
    // Addresses: unaligned, beyond the domain's GPA space, overflowing, overlapping.
    assert_eq!(
        w.status(w.a, Call::MemMap, [SLOT_SELF, ro, 0x2000_0010, 1]),
        Status::InvalidAddress
    );
    assert_eq!(
        w.status(w.a, Call::MemMap, [SLOT_SELF, ro, DOMAIN_GPA_LIMIT, 1]),
        Status::InvalidAddress
    );
    assert_eq!(
        w.status(w.a, Call::MemMap, [SLOT_SELF, ro, !0xfff, 1]),
        Status::InvalidAddress
    );
    assert_eq!(
        w.status(w.a, Call::MemMap, [SLOT_SELF, ro, 0x1000_0000 - MIB, 1]),
        Status::InvalidAddress
    );
    // A good alias, read-only.
    assert_eq!(
        w.status(w.a, Call::MemMap, [SLOT_SELF, ro, 0x2000_0000, 1]),
        Status::Ok
    );
    let t = w.translate(w.a, 0x2000_0040).unwrap();
    assert_eq!(t.hpa, 0x100_0040);
    assert_eq!(t.access, Access::READ);
    // A domain it holds no capability for cannot be mapped into (slot empty),
    // and the region's mapping list is bounded.
    assert_eq!(
        w.status(w.a, Call::MemMap, [SLOT_SELF, ro, 0x2100_0000, 1]),
        Status::Ok
    );
    assert_eq!(
        w.status(w.a, Call::MemMap, [SLOT_SELF, ro, 0x2200_0000, 1]),
        Status::Ok
    );
    assert_eq!(
        w.status(w.a, Call::MemMap, [SLOT_SELF, ro, 0x2300_0000, 1]),
        Status::OutOfResources
    );
}

#[test]
fn mem_split_needs_control_an_unmapped_region_and_a_page_offset() {
    let mut w = world();
    assert_eq!(
        w.status(w.a, Call::MemSplit, [w.a_mem, PAGE, 0, 0]),
        Status::InsufficientRights
    );
    // Give the core's view a fresh, unmapped region with CONTROL to split.
    let (r, slot) = w.region(w.a, 0x800_0000, 4 * PAGE, Some(w.a));
    assert_eq!(
        w.status(w.a, Call::MemSplit, [slot, 0, 0, 0]),
        Status::InvalidArgument
    );
    assert_eq!(
        w.status(w.a, Call::MemSplit, [slot, 4 * PAGE, 0, 0]),
        Status::InvalidArgument
    );
    assert_eq!(
        w.status(w.a, Call::MemSplit, [slot, 100, 0, 0]),
        Status::InvalidArgument
    );
    let tail = w.value(w.a, Call::MemSplit, [slot, PAGE, 0, 0]);
    let tail_obj = w.sys.cspaces[w.a.index as usize].get(tail).unwrap().object;
    assert_eq!(w.sys.regions.get(tail_obj).unwrap().hpa, 0x800_0000 + PAGE);
    assert_eq!(w.sys.regions.get(r).unwrap().len, PAGE);
    // Mapped regions cannot be split.
    assert_eq!(
        w.status(w.a, Call::MemMap, [SLOT_SELF, tail, 0x2000_0000, 1]),
        Status::Ok
    );
    assert_eq!(
        w.status(w.a, Call::MemSplit, [tail, PAGE, 0, 0]),
        Status::Denied
    );
    // A stale region capability is refused.
    w.sys.regions.remove(r);
    assert_eq!(
        w.status(w.a, Call::MemSplit, [slot, PAGE, 0, 0]),
        Status::StaleCapability
    );
}

#[test]
fn channels_notify_wake_and_time_out() {
    let mut w = world();
    // Pending notification is consumed without blocking.
    assert_eq!(
        w.status(w.a, Call::ChannelNotify, [w.chan_a, 0, 0, 0]),
        Status::Ok
    );
    assert_eq!(
        w.status(w.b, Call::ChannelWait, [w.chan_b, u64::MAX, 0, 0]),
        Status::Ok
    );
    // Poll with nothing pending.
    assert_eq!(
        w.status(w.b, Call::ChannelWait, [w.chan_b, 0, 0, 0]),
        Status::TimedOut
    );
    // Block, then be woken by the peer.
    assert_eq!(
        w.call(w.b, Call::ChannelWait, [w.chan_b, u64::MAX, 0, 0]),
        Outcome::Block
    );
    assert!(matches!(
        w.sys.domains.get(w.b).unwrap().state,
        RunState::Blocked { .. }
    ));
    assert_eq!(
        w.status(w.a, Call::ChannelNotify, [w.chan_a, 0, 0, 0]),
        Status::Ok
    );
    let b = w.sys.domains.get(w.b).unwrap();
    assert_eq!(
        (b.state, b.pending),
        (RunState::Runnable, Some((Status::Ok, None)))
    );
    // A timed wait expires.
    assert_eq!(
        w.call(w.b, Call::ChannelWait, [w.chan_b, 500, 0, 0]),
        Outcome::Block
    );
    assert_eq!(w.sys.earliest_deadline(), Some(1500));
    w.sys.wake_expired(1499);
    assert!(matches!(
        w.sys.domains.get(w.b).unwrap().state,
        RunState::Blocked { .. }
    ));
    w.sys.wake_expired(1500);
    assert_eq!(
        w.sys.domains.get(w.b).unwrap().pending,
        Some((Status::TimedOut, None))
    );
    // Rights: a read-only copy cannot notify; a write-only one cannot wait.
    let ro = w.value(
        w.a,
        Call::CapDerive,
        [w.chan_a, Rights::READ.bits() as u64, 0, 0],
    );
    assert_eq!(
        w.status(w.a, Call::ChannelNotify, [ro, 0, 0, 0]),
        Status::InsufficientRights
    );
    let wo = w.value(
        w.a,
        Call::CapDerive,
        [w.chan_a, Rights::WRITE.bits() as u64, 0, 0],
    );
    assert_eq!(
        w.status(w.a, Call::ChannelWait, [wo, 0, 0, 0]),
        Status::InsufficientRights
    );
    assert_eq!(
        w.status(w.a, Call::ChannelNotify, [w.a_mem, 0, 0, 0]),
        Status::WrongType
    );
}

#[test]
fn a_hold_wakes_to_the_next_instruction_with_no_result() {
    let mut w = world();
    assert!(w.sys.hold(w.a, 1050));
    assert_eq!(w.sys.earliest_deadline(), Some(1050));
    w.sys.wake_expired(1049);
    assert!(matches!(
        w.sys.domains.get(w.a).unwrap().state,
        RunState::Blocked { .. }
    ));
    w.sys.wake_expired(1050);
    let a = w.sys.domains.get(w.a).unwrap();
    assert_eq!((a.state, a.pending), (RunState::Runnable, None));
    // Only that wait: a later sleep completes as ever.
    assert_eq!(w.call(w.a, Call::Sleep, [100, 0, 0, 0]), Outcome::Block);
    w.sys.wake_expired(1200);
    assert_eq!(
        w.sys.domains.get(w.a).unwrap().pending,
        Some((Status::Ok, None))
    );
    // A hold lifted at once leaves nothing behind for the next wait.
    assert!(w.sys.hold(w.a, 5000));
    w.sys.unblock(w.a);
    let a = w.sys.domains.get(w.a).unwrap();
    assert_eq!((a.state, a.wakes_bare), (RunState::Runnable, false));
    // No such domain: nothing held.
    let gone = ObjectRef {
        kind: ObjectType::Domain,
        index: 7,
        generation: 9,
    };
    assert!(!w.sys.hold(gone, 1));
}

#[test]
fn sleep_blocks_until_the_deadline() {
    let mut w = world();
    assert_eq!(w.status(w.a, Call::Sleep, [0, 0, 0, 0]), Status::Ok);
    assert_eq!(w.call(w.a, Call::Sleep, [100, 0, 0, 0]), Outcome::Block);
    assert_eq!(w.call(w.a, Call::Yield, [0; 4]), Outcome::Yield);
    w.sys.wake_expired(1100);
    assert_eq!(
        w.sys.domains.get(w.a).unwrap().pending,
        Some((Status::Ok, None))
    );
}

#[test]
fn grant_sends_a_weaker_copy_to_the_peer() {
    let mut w = world();
    let r = Rights::READ | Rights::MAP;
    let slot = w.value(w.a, Call::CapGrant, [w.chan_a, w.a_mem, r.bits() as u64, 0]);
    let got = w.sys.cspaces[w.b.index as usize].get(slot).unwrap();
    assert_eq!(got.rights, r);
    // More rights than held, a source without GRANT, a non-channel.
    assert_eq!(
        w.status(
            w.a,
            Call::CapGrant,
            [w.chan_a, w.a_mem, Rights::all().bits() as u64, 0]
        ),
        Status::InsufficientRights
    );
    let weak = w.value(
        w.a,
        Call::CapDerive,
        [w.a_mem, Rights::READ.bits() as u64, 0, 0],
    );
    assert_eq!(
        w.status(
            w.a,
            Call::CapGrant,
            [w.chan_a, weak, Rights::READ.bits() as u64, 0]
        ),
        Status::InsufficientRights
    );
    assert_eq!(
        w.status(
            w.a,
            Call::CapGrant,
            [w.a_mem, w.a_mem, Rights::READ.bits() as u64, 0]
        ),
        Status::WrongType
    );
    // b maps what it was given, read-only, and sees a's memory there.
    assert_eq!(
        w.status(w.b, Call::MemMap, [SLOT_SELF, slot, 0x2000_0000, 1]),
        Status::Ok
    );
    assert_eq!(w.translate(w.b, 0x2000_0000).unwrap().hpa, 0x100_0000);
}

#[test]
fn grant_is_refused_when_the_peer_is_gone_or_full() {
    let mut w = world();
    let r = Rights::READ.bits() as u64;
    // Fill b's space.
    while w.sys.cspaces[w.b.index as usize]
        .insert(Capability::new(w.b, Rights::READ))
        .is_ok()
    {}
    assert_eq!(
        w.status(w.a, Call::CapGrant, [w.chan_a, w.a_mem, r, 0]),
        Status::OutOfResources
    );
    w.sys.destroy_domain(&mut w.m, w.b);
    assert_eq!(
        w.status(w.a, Call::CapGrant, [w.chan_a, w.a_mem, r, 0]),
        Status::Denied
    );
}

#[test]
fn stop_and_destroy_need_control() {
    let mut w = world();
    let read_only = w.sys.grant_domain(w.a, w.b, Rights::READ).unwrap() as u64;
    assert_eq!(
        w.status(w.a, Call::DomainStop, [read_only, 0, 0, 0]),
        Status::InsufficientRights
    );
    assert_eq!(
        w.status(w.a, Call::DomainDestroy, [read_only, 0, 0, 0]),
        Status::InsufficientRights
    );
    assert_eq!(
        w.status(w.a, Call::DomainStop, [30, 0, 0, 0]),
        Status::EmptySlot
    );
    assert_eq!(
        w.status(w.a, Call::DomainDestroy, [1 << 20, 0, 0, 0]),
        Status::InvalidSlot
    );
    assert_eq!(w.sys.domains.get(w.b).unwrap().state, RunState::Runnable);
}

#[test]
fn destroy_makes_capabilities_stale_and_returns_memory() {
    let mut w = world();
    let ctl = w
        .sys
        .grant_domain(w.a, w.b, Rights::CONTROL | Rights::READ)
        .unwrap() as u64;
    assert_eq!(
        w.value(w.a, Call::DomainStatus, [ctl, 0, 0, 0]),
        DomainState::Running as u64 | 3 << 8 | 2048 << 16
    );
    assert_eq!(
        w.status(w.b, Call::DomainStop, [w.chan_b, 0, 0, 0]),
        Status::WrongType
    );
    assert_eq!(
        w.status(w.a, Call::DomainDestroy, [ctl, 0, 0, 0]),
        Status::Ok
    );
    assert_eq!(
        w.status(w.a, Call::DomainStatus, [ctl, 0, 0, 0]),
        Status::StaleCapability
    );
    assert_eq!(
        w.status(w.a, Call::DomainStop, [ctl, 0, 0, 0]),
        Status::StaleCapability
    );
    assert_eq!(
        w.status(w.a, Call::CapInspect, [ctl, 0, 0, 0]),
        Status::StaleCapability
    );
    assert!(w.m.released.contains(&(0x200_0000, 2 * MIB)));
    assert_eq!(w.m.released_domains, 1);
    // The peer is gone: notify is refused.
    assert_eq!(
        w.status(w.a, Call::ChannelNotify, [w.chan_a, 0, 0, 0]),
        Status::Denied
    );
    // A new domain reusing the slot is not reachable through the old cap.
    let (c, _) = w
        .sys
        .create_domain(&mut w.m, "c", 1, (0x500_0000, 2 * MIB), DomainHw::default())
        .unwrap();
    assert_eq!(c.index, w.b.index);
    assert_eq!(
        w.status(w.a, Call::DomainStatus, [ctl, 0, 0, 0]),
        Status::StaleCapability
    );
}

#[test]
fn stop_unmaps_everything_and_status_needs_read() {
    let mut w = world();
    let ctl = w.sys.grant_domain(w.a, w.b, Rights::CONTROL).unwrap() as u64;
    assert_eq!(
        w.status(w.a, Call::DomainStatus, [ctl, 0, 0, 0]),
        Status::InsufficientRights
    );
    let before = w.m.invalidations;
    assert_eq!(w.status(w.a, Call::DomainStop, [ctl, 0, 0, 0]), Status::Ok);
    assert!(w.m.invalidations > before);
    assert!(w.sys.domains.get(w.b).unwrap().ept.is_none());
    assert_eq!(
        w.value(w.a, Call::DomainStatus, [SLOT_SELF, 0, 0, 0]) & 0xff,
        DomainState::Running as u64
    );
    // Mapping into a stopped domain is refused.
    let ctl2 = w.sys.grant_domain(w.a, w.b, Rights::CONTROL).unwrap() as u64;
    assert_eq!(
        w.status(w.a, Call::MemMap, [ctl2, w.a_mem, 0x2000_0000, 1]),
        Status::Denied
    );
}

#[test]
fn the_core_s_own_calls_and_dead_callers_are_refused() {
    let mut w = world();
    assert_eq!(w.status(w.a, Call::Null, [0; 4]), Status::InvalidArgument);
    w.sys.destroy_domain(&mut w.m, w.b);
    assert_eq!(w.status(w.b, Call::Yield, [0; 4]), Status::Denied);
}

#[test]
fn the_scheduler_prefers_priority_and_rotates_equals() {
    let mut w = world();
    let (c, _) = w
        .sys
        .create_domain(&mut w.m, "c", 5, (0x500_0000, 2 * MIB), DomainHw::default())
        .unwrap();
    assert_eq!(w.sys.pick(), Some(c));
    assert_eq!(w.sys.pick(), Some(c));
    assert!(w.sys.block(c, None, Some(10)));
    let first = w.sys.pick().unwrap();
    let second = w.sys.pick().unwrap();
    assert_ne!(first, second, "equal priorities take turns");
    assert_eq!(w.sys.pick(), Some(first));
    w.sys.wake_expired(10);
    assert_eq!(
        w.sys.pick(),
        Some(c),
        "a woken high-priority domain runs next"
    );
    for d in [w.a, w.b, c] {
        w.sys.stop_domain(&mut w.m, d);
    }
    assert_eq!(w.sys.pick(), None);
    assert!(!w.sys.any_alive());
}

#[test]
fn a_busy_higher_priority_domain_does_not_pin_the_turns_of_equals() {
    let mut w = world();
    let prio = w.sys.domains.get(w.a).unwrap().priority;
    assert_eq!(prio, w.sys.domains.get(w.b).unwrap().priority);
    // A service above them sits in the table between a, b and d.
    let (c, _) = w
        .sys
        .create_domain(&mut w.m, "c", 5, (0x500_0000, 2 * MIB), DomainHw::default())
        .unwrap();
    let (d, _) = w
        .sys
        .create_domain(
            &mut w.m,
            "d",
            prio,
            (0x700_0000, 2 * MIB),
            DomainHw::default(),
        )
        .unwrap();
    assert_eq!(w.sys.pick(), Some(c));
    let mut seen = [0u32; 3];
    // c wakes between every two choices among the equals, as a service
    // with a fast timer does.
    for round in 0..6u64 {
        assert!(w.sys.block(c, None, Some(10 + round)));
        let who = w.sys.pick().unwrap();
        let k = [w.a, w.b, d].iter().position(|&x| x == who).unwrap();
        seen[k] += 1;
        w.sys.wake_expired(10 + round);
        assert_eq!(w.sys.pick(), Some(c));
    }
    assert_eq!(seen, [2, 2, 2], "each equal gets its turn");
}

#[test]
fn tables_are_bounded() {
    let mut sys = Box::new(System::new());
    let mut m = FakeMachine::default();
    let mut n = 0;
    loop {
        match sys.create_domain(
            &mut m,
            "d",
            1,
            (0x100_0000 * (n + 1), 2 * MIB),
            DomainHw::default(),
        ) {
            Ok(_) => n += 1,
            Err(s) => {
                assert_eq!(s, Status::OutOfResources);
                break;
            }
        }
    }
    assert_eq!(n as usize, MAX_DOMAINS);
}

mod hostile {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any call with any arguments from any domain: no panic, and a
        /// domain never gains a capability with rights it was not given.
        #[test]
        fn any_hypercall_sequence_is_safe(
            calls in proptest::collection::vec((0usize..16, any::<bool>(), proptest::array::uniform4(prop_oneof![0u64..40, any::<u64>()])), 1..40)
        ) {
            let mut w = world();
            for (n, from_a, args) in calls {
                let who = if from_a { w.a } else { w.b };
                let call = Call::ALL[n];
                let _ = w.sys.hypercall(&mut w.m, who, call, args, 1000);
                w.sys.wake_expired(args[0]);
                // The scheduler's runnable set never drifts from the states.
                prop_assert!(w.sys.runnable_in_step());
                for cs in w.sys.cspaces.iter() {
                    for (_, cap) in cs.iter() {
                        // No space ever holds CONTROL: nobody was given it.
                        prop_assert!(!cap.rights.contains(Rights::CONTROL));
                    }
                }
            }
        }
    }
}

/// Which domain [`give_region`] gives to.
const A: bool = true;

/// A region of `len` bytes with every right, in a's space (or b's).
fn give_region(w: &mut World, to_a: bool, hpa: u64, len: u64) -> u64 {
    let d = if to_a { w.a } else { w.b };
    w.region(d, hpa, len, Some(d)).1
}

#[test]
fn a_domain_creates_configures_and_starts_a_child() {
    let mut w = world();
    let spare = give_region(&mut w, A, 0x800_0000, 2 * MIB);
    // Argument checks.
    assert_eq!(
        w.status(w.a, Call::DomainCreate, [spare, 8, 4, SLOT_NONE]),
        Status::InvalidArgument
    );
    assert_eq!(
        w.status(w.a, Call::DomainCreate, [spare, 1, 0, SLOT_NONE]),
        Status::InvalidArgument
    );
    assert_eq!(
        w.status(w.a, Call::DomainCreate, [spare, 1, 33, SLOT_NONE]),
        Status::InvalidArgument
    );
    assert_eq!(
        w.status(w.a, Call::DomainCreate, [spare, 4, 4, SLOT_NONE]),
        Status::Denied,
        "above the creator's priority"
    );
    assert_eq!(
        w.status(w.a, Call::DomainCreate, [w.a_mem, 1, 4, SLOT_NONE]),
        Status::InsufficientRights
    );
    assert_eq!(
        w.status(w.a, Call::DomainCreate, [w.chan_a, 1, 4, SLOT_NONE]),
        Status::WrongType
    );
    let child_slot = w.value(w.a, Call::DomainCreate, [spare, 2, 4, SLOT_NONE]);
    let child = w.sys.cspaces[w.a.index as usize]
        .get(child_slot)
        .unwrap()
        .object;
    assert_eq!(w.sys.domains.get(child).unwrap().state, RunState::Created);
    assert_eq!(w.translate(child, 0x10_0010).unwrap().hpa, 0x810_0010);
    assert_eq!(
        w.sys.pick().map(|d| d != child),
        Some(true),
        "not runnable before start"
    );
    // Start needs the vCPU state; the entry must be inside its memory.
    assert_eq!(
        w.status(w.a, Call::DomainStart, [child_slot, 0, 0, 0]),
        Status::Denied
    );
    assert_eq!(
        w.status(w.a, Call::DomainSetVcpu, [child_slot, 0x1000, 0, 0]),
        Status::InvalidAddress
    );
    assert_eq!(
        w.status(w.a, Call::DomainSetVcpu, [child_slot, 2 * MIB, 0, 0]),
        Status::InvalidAddress
    );
    assert_eq!(
        w.status(
            w.a,
            Call::DomainSetVcpu,
            [child_slot, 0x10_0000, 0x1f_0000, 7]
        ),
        Status::Ok
    );
    // The platform: a PC guest, or back; nothing else.
    assert!(!w.sys.domains.get(child).unwrap().pc);
    assert_eq!(
        w.status(w.a, Call::DomainSetPlatform, [child_slot, 2, 0, 0]),
        Status::InvalidArgument
    );
    assert_eq!(
        w.status(w.a, Call::DomainSetPlatform, [w.chan_a, 1, 0, 0]),
        Status::WrongType
    );
    assert_eq!(
        w.status(w.a, Call::DomainSetPlatform, [child_slot, 1, 0, 0]),
        Status::Ok
    );
    assert!(w.sys.domains.get(child).unwrap().pc);
    assert_eq!(
        w.status(w.a, Call::DomainStart, [child_slot, 0, 0, 0]),
        Status::Ok
    );
    assert_eq!(
        w.status(w.a, Call::DomainSetPlatform, [child_slot, 0, 0, 0]),
        Status::Denied,
        "not once started"
    );
    assert!(w.sys.woke);
    assert_eq!(
        w.status(w.a, Call::DomainStart, [child_slot, 0, 0, 0]),
        Status::Denied,
        "started twice"
    );
    assert_eq!(
        w.status(w.a, Call::DomainSetVcpu, [child_slot, 0x10_0000, 0, 0]),
        Status::Denied
    );
    assert_eq!(
        w.sys.domains.get(child).unwrap().initial,
        Some([0x10_0000, 0x1f_0000, 7])
    );
    // The region cannot back a second domain while the first exists.
    assert_eq!(
        w.status(w.a, Call::DomainCreate, [spare, 1, 4, SLOT_NONE]),
        Status::Denied
    );
    // Nor be zeroed or unmapped from it.
    assert_eq!(
        w.status(w.a, Call::MemZero, [spare, 0, PAGE, 0]),
        Status::Denied
    );
    // Destroying the child unmaps the region but leaves it with its
    // holder, who can use it again.
    assert_eq!(
        w.status(w.a, Call::DomainDestroy, [child_slot, 0, 0, 0]),
        Status::Ok
    );
    assert!(!w.m.released.contains(&(0x800_0000, 2 * MIB)));
    assert_eq!(
        w.status(w.a, Call::CapInspect, [spare, 0, 0, 0]),
        Status::Ok
    );
    assert!(w
        .sys
        .regions
        .iter()
        .all(|(_, r)| r.mappings.iter().all(|m| m.is_none_or(|(d, _)| d != child))));
    assert_eq!(
        w.status(w.a, Call::MemZero, [spare, 0, 2 * MIB, 0]),
        Status::Ok
    );
    assert_eq!(w.m.zeroed, [(0x800_0000, 2 * MIB)]);
    let again = w.value(w.a, Call::DomainCreate, [spare, 1, 4, SLOT_NONE]);
    assert_ne!(again, child_slot);
}

#[test]
fn mem_unmap_and_mem_zero_check_their_arguments() {
    let mut w = world();
    let spare = give_region(&mut w, A, 0x800_0000, 2 * MIB);
    assert_eq!(
        w.status(w.a, Call::MemUnmap, [SLOT_SELF, spare, 0, 0]),
        Status::InvalidArgument,
        "not mapped"
    );
    assert_eq!(
        w.status(w.a, Call::MemMap, [SLOT_SELF, spare, 0x3000_0000, 3]),
        Status::Ok
    );
    assert_eq!(
        w.status(w.a, Call::MemZero, [spare, 0, PAGE, 0]),
        Status::Denied,
        "mapped"
    );
    assert_eq!(
        w.status(w.b, Call::MemUnmap, [SLOT_SELF, spare, 0, 0]),
        Status::EmptySlot,
        "b holds no such capability"
    );
    assert_eq!(
        w.status(w.a, Call::MemUnmap, [SLOT_SELF, w.a_mem, 0, 0]),
        Status::Denied,
        "a domain's own memory stays"
    );
    let invalidations = w.m.invalidations;
    assert_eq!(
        w.status(w.a, Call::MemUnmap, [SLOT_SELF, spare, 0, 0]),
        Status::Ok
    );
    assert!(w.m.invalidations > invalidations);
    assert!(w
        .sys
        .regions
        .iter()
        .all(|(_, r)| r.hpa != 0x800_0000 || r.mappings.iter().all(Option::is_none)));
    for (args, why) in [
        ([spare, 0, 0, 0], "empty"),
        ([spare, 1, PAGE, 0], "unaligned offset"),
        ([spare, 0, 100, 0], "unaligned length"),
        ([spare, 2 * MIB, PAGE, 0], "past the end"),
        ([spare, u64::MAX - 4095, PAGE, 0], "overflow"),
        (
            [spare, 0, hypercall_abi::MEM_ZERO_MAX + PAGE, 0],
            "too long",
        ),
    ] {
        assert_eq!(
            w.status(w.a, Call::MemZero, args),
            Status::InvalidArgument,
            "{why}"
        );
    }
    let ro = w.value(
        w.a,
        Call::CapDerive,
        [spare, Rights::READ.bits() as u64, 0, 0],
    );
    assert_eq!(
        w.status(w.a, Call::MemZero, [ro, 0, PAGE, 0]),
        Status::InsufficientRights
    );
    assert!(w.m.zeroed.is_empty());
    assert_eq!(
        w.status(w.a, Call::MemZero, [spare, PAGE, PAGE, 0]),
        Status::Ok
    );
    assert_eq!(w.m.zeroed, [(0x800_0000 + PAGE, PAGE)]);
}

#[test]
fn a_domain_created_from_a_guest_image_takes_its_name() {
    let mut w = world();
    let spare = give_region(&mut w, A, 0x800_0000, 2 * MIB);
    let image = give_region(&mut w, A, 0xa00_0000, PAGE);
    assert_eq!(
        w.status(w.a, Call::DomainCreate, [spare, 1, 4, image]),
        Status::InvalidArgument,
        "not a guest image"
    );
    let r = w.sys.cspaces[w.a.index as usize].get(image).unwrap().object;
    w.sys.regions.get_mut(r).unwrap().label = Some("demo");
    let slot = w.value(w.a, Call::DomainCreate, [spare, 1, 4, image]);
    let child = w.sys.cspaces[w.a.index as usize].get(slot).unwrap().object;
    assert_eq!(w.sys.domains.get(child).unwrap().name, "demo");
}

#[test]
fn create_is_bounded_by_the_pool_and_the_budget() {
    let mut w = world();
    let spare = give_region(&mut w, A, 0x800_0000, 2 * MIB);
    w.m.pool_exhausted = true;
    assert_eq!(
        w.status(w.a, Call::DomainCreate, [spare, 1, 4, SLOT_NONE]),
        Status::OutOfResources
    );
    w.m.pool_exhausted = false;
    // A child with a one-slot budget cannot receive a channel.
    let child_slot = w.value(w.a, Call::DomainCreate, [spare, 1, 1, SLOT_NONE]);
    let pages = give_region(&mut w, A, 0xa00_0000, PAGE);
    assert_eq!(
        w.status(
            w.a,
            Call::ChannelCreate,
            [SLOT_SELF, child_slot, pages, 0x3000_0000]
        ),
        Status::OutOfResources
    );
}

#[test]
fn bind_ports_opens_the_bitmap_and_copies_the_capability() {
    let mut w = world();
    let spare = give_region(&mut w, A, 0x800_0000, 2 * MIB);
    let child_slot = w.value(w.a, Call::DomainCreate, [spare, 1, 4, SLOT_NONE]);
    let ports = w.sys.grant_ports(w.a, 0x3f8, 0x3ff).unwrap() as u64;
    assert_eq!(
        w.status(w.a, Call::DomainBindPorts, [child_slot, ports, 0, 0]),
        Status::InsufficientRights
    );
    let p = w.sys.cspaces[w.a.index as usize].get(ports).unwrap().object;
    let grantable = w.sys.cspaces[w.a.index as usize]
        .insert(Capability::new(
            p,
            Rights::READ | Rights::WRITE | Rights::GRANT,
        ))
        .unwrap() as u64;
    assert_eq!(
        w.status(w.a, Call::DomainBindPorts, [child_slot, grantable, 0, 0]),
        Status::Ok
    );
    assert_eq!(w.m.opened, [(0x3f8, 0x3ff)]);
    assert_eq!(
        w.status(w.a, Call::DomainBindPorts, [child_slot, w.a_mem, 0, 0]),
        Status::WrongType
    );
}

#[test]
fn channel_create_connects_two_domains_over_a_region() {
    let mut w = world();
    let pages = give_region(&mut w, A, 0xa00_0000, PAGE);
    let ctl_b = w.sys.grant_domain(w.a, w.b, Rights::CONTROL).unwrap() as u64;
    assert_eq!(
        w.status(
            w.a,
            Call::ChannelCreate,
            [SLOT_SELF, SLOT_SELF, pages, 0x3000_0000]
        ),
        Status::InvalidArgument
    );
    assert_eq!(
        w.status(
            w.a,
            Call::ChannelCreate,
            [SLOT_SELF, ctl_b, pages, 0x3000_0010]
        ),
        Status::InvalidAddress
    );
    assert_eq!(
        w.status(
            w.a,
            Call::ChannelCreate,
            [SLOT_SELF, ctl_b, pages, 0x1000_0000]
        ),
        Status::InvalidAddress,
        "overlaps the existing channel"
    );
    let v = w.value(
        w.a,
        Call::ChannelCreate,
        [SLOT_SELF, ctl_b, pages, 0x3000_0000],
    );
    let (sa, sb) = (v & 0xffff, v >> 16);
    assert_eq!(w.translate(w.a, 0x3000_0000).unwrap().hpa, 0xa00_0000);
    assert_eq!(w.translate(w.b, 0x3000_0000).unwrap().hpa, 0xa00_0000);
    assert_eq!(
        w.status(w.a, Call::ChannelNotify, [sa, 0, 0, 0]),
        Status::Ok
    );
    assert_eq!(w.status(w.b, Call::ChannelWait, [sb, 0, 0, 0]), Status::Ok);
    // A failed create left no half mapping behind.
    assert!(w.translate(w.a, 0x3000_0000 + 2 * PAGE).is_none());
}

#[test]
fn shutdown_needs_control_of_every_other_live_domain() {
    let mut w = world();
    assert_eq!(w.status(w.a, Call::Shutdown, [0; 4]), Status::Denied);
    assert!(!w.sys.shutdown_requested);
    w.sys.grant_domain(w.a, w.b, Rights::CONTROL).unwrap();
    assert_eq!(w.call(w.a, Call::Shutdown, [0; 4]), Outcome::Yield);
    assert!(w.sys.shutdown_requested);
}

#[test]
fn exit_counts_are_reported_packed_or_in_full_and_need_read() {
    let mut w = world();
    w.sys.domains.get_mut(w.b).unwrap().exits = [3, 70_000, 1, 70_005];
    let ctl = w.sys.grant_domain(w.a, w.b, Rights::READ).unwrap() as u64;
    let v = w.value(w.a, Call::DomainExits, [ctl, 0, 0, 0]);
    assert_eq!(v, 3 | 0xffff << 16 | 1 << 32 | 0xffff << 48);
    // One count in full.
    for (k, count) in [3, 70_000, 1, 70_005].into_iter().enumerate() {
        let v = w.value(w.a, Call::DomainExits, [ctl, 1 + k as u64, 0, 0]);
        assert_eq!(v, count);
    }
    assert_eq!(
        w.status(w.a, Call::DomainExits, [ctl, 5, 0, 0]),
        Status::InvalidArgument
    );
    assert_eq!(
        w.status(w.a, Call::DomainExits, [ctl, u64::MAX, 0, 0]),
        Status::InvalidArgument
    );
    let no_read = w.sys.grant_domain(w.a, w.b, Rights::CONTROL).unwrap() as u64;
    assert_eq!(
        w.status(w.a, Call::DomainExits, [no_read, 0, 0, 0]),
        Status::InsufficientRights
    );
    assert_eq!(w.value(w.a, Call::DomainExits, [SLOT_SELF, 0, 0, 0]), 0);
}

#[test]
fn waiting_on_a_channel_whose_peer_is_gone_is_refused() {
    let mut w = world();
    w.sys.stop_domain(&mut w.m, w.b);
    assert_eq!(
        w.status(w.a, Call::ChannelWait, [w.chan_a, u64::MAX, 0, 0]),
        Status::Denied
    );
    w.sys.destroy_domain(&mut w.m, w.b);
    assert_eq!(
        w.status(w.a, Call::ChannelWait, [w.chan_a, u64::MAX, 0, 0]),
        Status::Denied
    );
}

#[test]
fn deadlines_wake_in_order_and_an_early_wake_leaves_no_stale_deadline() {
    let mut w = world();
    assert!(w.sys.block(w.a, None, Some(200)));
    assert!(w.sys.block(w.b, None, Some(100)));
    w.sys.wake_expired(99);
    assert!(matches!(
        w.sys.domains.get(w.b).unwrap().state,
        RunState::Blocked { .. }
    ));
    w.sys.wake_expired(150);
    assert_eq!(w.sys.domains.get(w.b).unwrap().state, RunState::Runnable);
    assert!(matches!(
        w.sys.domains.get(w.a).unwrap().state,
        RunState::Blocked { .. }
    ));
    assert_eq!(w.sys.earliest_deadline(), Some(200));
    // `a` is woken by something else before its deadline, then blocks
    // again without one: passing the old deadline wakes nobody.
    w.sys.domains.get_mut(w.a).unwrap().state = RunState::Runnable;
    assert!(w.sys.block(w.a, None, None));
    w.sys.wake_expired(1_000);
    assert!(matches!(
        w.sys.domains.get(w.a).unwrap().state,
        RunState::Blocked { .. }
    ));
    // A later, shorter deadline is seen even after a scan found none.
    assert!(w.sys.block(w.b, None, Some(2_000)));
    assert!(w.sys.block(w.b, None, Some(1_500)));
    w.sys.wake_expired(1_500);
    assert_eq!(w.sys.domains.get(w.b).unwrap().state, RunState::Runnable);
    assert!(!w.sys.block(
        ObjectRef {
            kind: ObjectType::Domain,
            index: 7,
            generation: 9
        },
        None,
        Some(1)
    ));
}

#[test]
fn domain_peek_checks_its_target_and_item_before_the_vmx_code_reads() {
    use hypercall_abi::peek;
    let mut w = world();
    let ctl = w.sys.grant_domain(w.a, w.b, Rights::CONTROL).unwrap() as u64;
    let read = w.sys.grant_domain(w.a, w.b, Rights::READ).unwrap() as u64;
    assert_eq!(
        w.sys.peek_target(w.a, ctl, 0),
        Err(Status::InsufficientRights)
    );
    assert_eq!(w.sys.peek_target(w.a, read, 0), Ok(w.b));
    assert_eq!(w.sys.peek_target(w.a, read, 20), Ok(w.b));
    assert_eq!(w.sys.peek_target(w.a, read, peek::EXITS + 79), Ok(w.b));
    assert_eq!(w.sys.peek_target(w.a, read, peek::LOG), Ok(w.b));
    assert_eq!(w.sys.peek_target(w.a, read, peek::LOG + 32), Ok(w.b));
    for bad in [
        21,
        peek::EXITS - 1,
        peek::EXITS + 80,
        peek::LOG + 33,
        u64::MAX,
    ] {
        assert_eq!(
            w.sys.peek_target(w.a, read, bad),
            Err(Status::InvalidArgument),
            "item {bad:#x}"
        );
    }
    // Not itself (its vCPU is the one running), not a bad slot.
    assert_eq!(
        w.sys.peek_target(w.a, SLOT_SELF, 0),
        Err(Status::InvalidSlot)
    );
    assert_eq!(w.sys.peek_target(w.a, w.a_mem, 0), Err(Status::WrongType));
    // A stopped domain can still be read (its last state); a destroyed
    // one cannot.
    assert_eq!(w.status(w.a, Call::DomainStop, [ctl, 0, 0, 0]), Status::Ok);
    assert_eq!(w.sys.peek_target(w.a, read, 16), Ok(w.b));
    let ctl2 = w.sys.grant_domain(w.a, w.b, Rights::CONTROL).unwrap() as u64;
    assert_eq!(
        w.status(w.a, Call::DomainDestroy, [ctl2, 0, 0, 0]),
        Status::Ok
    );
    assert_eq!(
        w.sys.peek_target(w.a, read, 16),
        Err(Status::StaleCapability)
    );
    // Without the VMX code behind it the call itself is unknown.
    assert_eq!(
        w.status(w.a, Call::DomainPeek, [read, 0, 0, 0]),
        Status::UnknownCall
    );
}

#[test]
fn a_restartable_domain_is_revived_with_its_boot_mappings() {
    let mut w = world();
    let ctl = w.sys.grant_domain(w.a, w.b, Rights::CONTROL).unwrap() as u64;
    // Not marked restartable: refused.
    w.status(w.a, Call::DomainStop, [ctl, 0, 0, 0]);
    assert_eq!(w.sys.revive(&mut w.m, w.a, ctl), Err(Status::Denied));
    let mut w = world();
    let ctl = w.sys.grant_domain(w.a, w.b, Rights::CONTROL).unwrap() as u64;
    let read = w.sys.grant_domain(w.a, w.b, Rights::READ).unwrap() as u64;
    assert!(w.sys.mark_restartable(w.b));
    // Running: refused; READ only: refused.
    assert_eq!(w.sys.revive(&mut w.m, w.a, ctl), Err(Status::Denied));
    assert_eq!(
        w.sys.revive(&mut w.m, w.a, read),
        Err(Status::InsufficientRights)
    );
    assert_eq!(w.status(w.a, Call::DomainStop, [ctl, 0, 0, 0]), Status::Ok);
    assert!(w.translate(w.b, 0x1000_0000).is_none());
    assert_eq!(w.sys.revive(&mut w.m, w.a, ctl), Ok(w.b));
    let dom = w.sys.domains.get(w.b).unwrap();
    assert_eq!(dom.state, RunState::Runnable);
    assert!(dom.fresh_vcpu && !dom.faulted);
    assert_eq!(dom.restarts, 1);
    // Its memory and its channel are back where they were.
    assert_eq!(w.translate(w.b, 0).unwrap().hpa, 0x200_0000);
    assert_eq!(w.translate(w.b, 0x1000_0000).unwrap().hpa, 0x300_0000);
    // The channel still works between the two.
    assert_eq!(
        w.status(w.a, Call::ChannelNotify, [w.chan_a, 0, 0, 0]),
        Status::Ok
    );
    // Once is enough: it is running again.
    assert_eq!(w.sys.revive(&mut w.m, w.a, ctl), Err(Status::Denied));
    // Without the VMX code behind it the call itself is unknown.
    assert_eq!(
        w.status(w.a, Call::DomainRestart, [ctl, 0, 0, 0]),
        Status::UnknownCall
    );
}

#[test]
fn device_services_learn_which_domains_are_new_in_their_slot() {
    let mut w = world();
    // A domain that never touched a device, and one the UART service was
    // told about.
    assert_eq!(w.sys.domains.get(w.a).unwrap().attach, [Attach::New; 2]);
    w.sys.domains.get_mut(w.a).unwrap().attach = [Attach::Done, Attach::New];
    // The UART service (`b`) restarts: `a` is told again, as the same
    // domain; the platform service did not restart.
    w.sys.uart = Some(w.b);
    assert!(w.sys.mark_restartable(w.b));
    let ctl = w.sys.grant_domain(w.a, w.b, Rights::CONTROL).unwrap() as u64;
    assert_eq!(w.status(w.a, Call::DomainStop, [ctl, 0, 0, 0]), Status::Ok);
    assert_eq!(w.sys.revive(&mut w.m, w.a, ctl), Ok(w.b));
    assert_eq!(
        w.sys.domains.get(w.a).unwrap().attach,
        [Attach::Again, Attach::New]
    );
    // A restarted domain is new to every service.
    w.sys.domains.get_mut(w.b).unwrap().attach = [Attach::Done; 2];
    assert_eq!(w.status(w.a, Call::DomainStop, [ctl, 0, 0, 0]), Status::Ok);
    assert_eq!(w.sys.revive(&mut w.m, w.a, ctl), Ok(w.b));
    assert_eq!(w.sys.domains.get(w.b).unwrap().attach, [Attach::New; 2]);
    // So is a domain created in the slot of a destroyed one.
    let spare = give_region(&mut w, A, 0x800_0000, 2 * MIB);
    let c1 = w.value(w.a, Call::DomainCreate, [spare, 2, 4, SLOT_NONE]);
    let first = w.sys.cspaces[w.a.index as usize].get(c1).unwrap().object;
    w.sys.domains.get_mut(first).unwrap().attach = [Attach::Done; 2];
    assert_eq!(
        w.status(w.a, Call::DomainDestroy, [c1, 0, 0, 0]),
        Status::Ok
    );
    let c2 = w.value(w.a, Call::DomainCreate, [spare, 2, 4, SLOT_NONE]);
    let second = w.sys.cspaces[w.a.index as usize].get(c2).unwrap().object;
    assert_eq!(second.index, first.index);
    assert_eq!(w.sys.domains.get(second).unwrap().attach, [Attach::New; 2]);
}

#[test]
fn a_stale_peer_never_hides_the_domain_now_in_its_slot() {
    let mut w = world();
    let spare = give_region(&mut w, A, 0x800_0000, 2 * MIB);
    let pages = give_region(&mut w, A, 0x900_0000, PAGE);
    let c1 = w.value(w.a, Call::DomainCreate, [spare, 2, 4, SLOT_NONE]);
    assert_eq!(
        w.status(
            w.a,
            Call::ChannelCreate,
            [SLOT_SELF, c1, pages, 0x2000_0000]
        ),
        Status::Ok
    );
    assert_eq!(
        w.status(w.a, Call::DomainDestroy, [c1, 0, 0, 0]),
        Status::Ok
    );
    // A second child takes the first one's table slot and runs.
    let c2 = w.value(w.a, Call::DomainCreate, [spare, 2, 4, SLOT_NONE]);
    assert_eq!(
        w.status(w.a, Call::DomainSetVcpu, [c2, 0x10_0000, 0x1f_0000, 0]),
        Status::Ok
    );
    assert_eq!(w.status(w.a, Call::DomainStart, [c2, 0, 0, 0]), Status::Ok);
    let child = w.sys.cspaces[w.a.index as usize].get(c2).unwrap().object;
    // `a` stops: its channel's stale end must not clear the new child's bit.
    let a = w.a;
    w.sys.stop_domain(&mut w.m, a);
    assert!(w.sys.runnable_in_step());
    let b = w.b;
    w.sys.stop_domain(&mut w.m, b);
    assert_eq!(w.sys.pick(), Some(child));
}

#[test]
fn reads_waiting_on_a_stopped_uart_service_read_0xff() {
    let mut w = world();
    w.sys.uart = Some(w.b);
    w.sys.wait_for_read(Device::Uart, w.a, 7);
    assert!(matches!(
        w.sys.domains.get(w.a).unwrap().state,
        RunState::Blocked { .. }
    ));
    let b = w.b;
    w.sys.stop_domain(&mut w.m, b);
    let a = w.sys.domains.get(w.a).unwrap();
    assert_eq!(a.state, RunState::Runnable);
    assert_eq!((a.io_wait, a.pending_in), (None, Some(0xff)));
    assert!(w.sys.runnable_in_step());
}

#[test]
fn reads_the_stopped_uart_service_had_answered_get_their_answers() {
    let mut w = world();
    w.sys.uart = Some(w.b);
    w.sys.wait_for_read(Device::Uart, w.a, 7);
    // The service answered read 7 with 0x41 (and something stale) before
    // it stopped.
    w.m.uart_answers = vec![(w.a.index as u8, 7, 0x41), (w.a.index as u8, 99, 0)];
    let b = w.b;
    w.sys.stop_domain(&mut w.m, b);
    let a = w.sys.domains.get(w.a).unwrap();
    assert_eq!(a.state, RunState::Runnable);
    assert_eq!((a.io_wait, a.pending_in), (None, Some(0x41)));
    assert!(w.m.uart_answers.is_empty());
    assert!(w.sys.runnable_in_step());
}

#[test]
fn a_stopped_guest_hands_over_its_posted_uart_writes_first() {
    let mut w = world();
    let a = w.a;
    // No UART service: nothing to hand over.
    w.sys.stop_domain(&mut w.m, a);
    assert!(w.m.uart_stopped.is_empty());
    let mut w = world();
    w.sys.uart = Some(w.b);
    w.sys.stop_domain(&mut w.m, a);
    assert_eq!(w.m.uart_stopped, [a.index as u8]);
    // The service itself posts nothing.
    let b = w.b;
    w.sys.stop_domain(&mut w.m, b);
    assert_eq!(w.m.uart_stopped, [a.index as u8]);
}

#[test]
fn an_idle_pc_guest_wakes_for_an_interrupt_only() {
    let mut w = world();
    let a = w.a;
    // Not idle: a wake does nothing.
    assert!(!w.sys.irq_wake(a));
    w.sys.idle(a);
    assert!(matches!(
        w.sys.domains.get(a).unwrap().state,
        RunState::Blocked { .. }
    ));
    assert!(w.sys.runnable_in_step());
    assert_ne!(w.sys.pick(), Some(a));
    assert!(w.sys.irq_wake(a));
    assert_eq!(w.sys.domains.get(a).unwrap().state, RunState::Runnable);
    assert!(w.sys.runnable_in_step());
    assert!(!w.sys.irq_wake(a), "once");
    // A domain blocked on a channel is not woken by an interrupt.
    assert!(matches!(
        w.call(a, Call::ChannelWait, [w.chan_a, u64::MAX, 0, 0]),
        Outcome::Block
    ));
    assert!(!w.sys.irq_wake(a));
}

#[test]
fn a_wake_gives_way_only_to_domains_of_at_least_the_callers_priority() {
    let mut w = world();
    // `b` (priority 3, like `a`) waits on the channel; `a` notifies it.
    assert!(matches!(
        w.call(w.b, Call::ChannelWait, [w.chan_b, u64::MAX, 0, 0]),
        Outcome::Block
    ));
    assert_eq!(
        w.status(w.a, Call::ChannelNotify, [w.chan_a, 0, 0, 0]),
        Status::Ok
    );
    assert!(w.sys.should_switch(w.a), "an equal takes its turn");
    assert!(!w.sys.should_switch(w.a), "the wake is acted on once");
    // A higher-priority caller waking `b` keeps the CPU.
    let (hi, _) = w
        .sys
        .create_domain(
            &mut w.m,
            "hi",
            6,
            (0x500_0000, 2 * MIB),
            DomainHw::default(),
        )
        .unwrap();
    assert!(matches!(
        w.call(w.b, Call::ChannelWait, [w.chan_b, u64::MAX, 0, 0]),
        Outcome::Block
    ));
    assert!(w.sys.block(w.a, None, None));
    assert_eq!(
        w.status(w.a, Call::ChannelNotify, [w.chan_a, 0, 0, 0]),
        Status::Ok
    );
    assert!(!w.sys.should_switch(hi), "only lower priorities woke");
    // Nothing woke: no switch whatever runs.
    assert!(!w.sys.should_switch(w.b));
}

#[test]
fn mem_merge_joins_adjacent_unmapped_regions_of_one_owner() {
    let mut w = world();
    let (r, whole) = w.region(w.a, 0x800_0000, 4 * PAGE, None);
    let b = w.value(w.a, Call::MemSplit, [whole, PAGE, 0, 0]);
    let c = w.value(w.a, Call::MemSplit, [b, PAGE, 0, 0]);
    // Not in order, the same region, not adjacent.
    for (x, y) in [(b, whole), (whole, whole), (whole, c)] {
        assert_eq!(
            w.status(w.a, Call::MemMerge, [x, y, 0, 0]),
            Status::InvalidArgument,
            "{x} {y}"
        );
    }
    // Without CONTROL on either: refused before anything else.
    let weak = w.value(w.a, Call::CapDerive, [b, Rights::MAP.bits() as u64, 0, 0]);
    assert_eq!(
        w.status(w.a, Call::MemMerge, [whole, weak, 0, 0]),
        Status::InsufficientRights
    );
    // Mapped: refused; unmapped again: joined.
    assert_eq!(
        w.status(w.a, Call::MemMap, [SLOT_SELF, b, 0x2000_0000, 1]),
        Status::Ok
    );
    assert_eq!(
        w.status(w.a, Call::MemMerge, [whole, b, 0, 0]),
        Status::Denied
    );
    assert_eq!(
        w.status(w.a, Call::MemUnmap, [SLOT_SELF, b, 0, 0]),
        Status::Ok
    );
    let b_obj = w.sys.cspaces[w.a.index as usize].get(b).unwrap().object;
    assert_eq!(w.status(w.a, Call::MemMerge, [whole, b, 0, 0]), Status::Ok);
    assert_eq!(w.sys.regions.get(r).unwrap().len, 2 * PAGE);
    assert!(w.sys.regions.get(b_obj).is_none(), "the second is gone");
    assert_eq!(
        w.status(w.a, Call::CapInspect, [b, 0, 0, 0]),
        Status::EmptySlot
    );
    assert_eq!(
        w.status(w.a, Call::CapInspect, [weak, 0, 0, 0]),
        Status::StaleCapability
    );
    // A copy of the first region anywhere else would grow with it: refused
    // while one exists.
    let copy = w.value(
        w.a,
        Call::CapDerive,
        [whole, Rights::all().bits() as u64, 0, 0],
    );
    assert_eq!(
        w.status(w.a, Call::MemMerge, [whole, c, 0, 0]),
        Status::Denied
    );
    assert_eq!(w.status(w.a, Call::CapDelete, [copy, 0, 0, 0]), Status::Ok);
    // Different owners: refused. Then the rest joins back to the whole.
    let c_obj = w.sys.cspaces[w.a.index as usize].get(c).unwrap().object;
    w.sys.regions.get_mut(c_obj).unwrap().owner = Some(w.b);
    assert_eq!(
        w.status(w.a, Call::MemMerge, [whole, c, 0, 0]),
        Status::Denied
    );
    w.sys.regions.get_mut(c_obj).unwrap().owner = None;
    assert_eq!(w.status(w.a, Call::MemMerge, [whole, c, 0, 0]), Status::Ok);
    assert_eq!(w.sys.regions.get(r).unwrap().len, 4 * PAGE);
}

#[test]
fn mem_size_reports_a_regions_length_through_splits_and_merges() {
    let mut w = world();
    let (_, whole) = w.region(w.a, 0x800_0000, 4 * PAGE, None);
    assert_eq!(w.value(w.a, Call::MemSize, [whole, 0, 0, 0]), 4 * PAGE);
    let back = w.value(w.a, Call::MemSplit, [whole, PAGE, 0, 0]);
    assert_eq!(w.value(w.a, Call::MemSize, [whole, 0, 0, 0]), PAGE);
    assert_eq!(w.value(w.a, Call::MemSize, [back, 0, 0, 0]), 3 * PAGE);
    // Any rights will do: a copy that may only be mapped reads it too.
    let weak = w.value(
        w.a,
        Call::CapDerive,
        [back, Rights::MAP.bits() as u64, 0, 0],
    );
    assert_eq!(w.value(w.a, Call::MemSize, [weak, 0, 0, 0]), 3 * PAGE);
    assert_eq!(w.status(w.a, Call::CapDelete, [weak, 0, 0, 0]), Status::Ok);
    // The object index stays the same through the join; the length does not.
    let index = w.value(w.a, Call::CapInspect, [whole, 0, 0, 0]) >> 32;
    assert_eq!(
        w.status(w.a, Call::MemMerge, [whole, back, 0, 0]),
        Status::Ok
    );
    assert_eq!(
        w.value(w.a, Call::CapInspect, [whole, 0, 0, 0]) >> 32,
        index
    );
    assert_eq!(w.value(w.a, Call::MemSize, [whole, 0, 0, 0]), 4 * PAGE);
    // Nothing there; out of range (`SLOT_SELF` names no region here).
    assert_eq!(
        w.status(w.a, Call::MemSize, [back, 0, 0, 0]),
        Status::EmptySlot
    );
    assert_eq!(
        w.status(w.a, Call::MemSize, [SLOT_SELF, 0, 0, 0]),
        Status::InvalidSlot
    );
    assert_eq!(
        w.status(w.a, Call::MemSize, [u64::from(u32::MAX), 0, 0, 0]),
        Status::InvalidSlot
    );
}

#[test]
fn the_run_ends_when_only_waiting_device_services_are_left() {
    let mut w = world();
    w.sys.uart = Some(w.a);
    w.sys.platform = Some(w.b);
    assert!(!w.sys.only_services_waiting());
    let (a, b) = (w.a, w.b);
    w.sys.service_block(Device::Uart, a, None);
    assert!(!w.sys.only_services_waiting(), "the platform service runs");
    w.sys.service_block(Device::Platform, b, Some(1_000));
    assert!(w.sys.only_services_waiting());
    // A request for it: it has work again.
    w.sys.kick_service(Device::Platform);
    assert!(!w.sys.only_services_waiting());
    // Any other domain alive keeps the run going.
    w.sys.service_block(Device::Platform, b, None);
    let (c, _) = w
        .sys
        .create_domain(&mut w.m, "c", 3, (0x400_0000, 2 * MIB), DomainHw::default())
        .unwrap();
    assert!(!w.sys.only_services_waiting());
    w.sys.stop_domain(&mut w.m, c);
    // Its last writes and its Detach were queued for both services: they
    // run once more before the run can end, then wait again.
    assert!(!w.sys.only_services_waiting());
    for (device, s) in [(Device::Uart, a), (Device::Platform, b)] {
        assert_eq!(w.sys.domains.get(s).unwrap().state, RunState::Runnable);
        w.sys.service_block(device, s, None);
    }
    assert!(w.sys.only_services_waiting());
}

#[test]
fn a_pc_guest_s_slice_ends_at_the_platform_service_s_deadline_only() {
    let mut w = world();
    // No platform service: nothing to end a slice at.
    assert!(w.sys.block(w.a, None, Some(100)));
    assert_eq!(w.sys.platform_deadline(), None);
    w.sys.platform = Some(w.b);
    let b = w.b;
    // Another domain's earlier deadline (a keyboard poll, say) is not it.
    w.sys.service_block(Device::Platform, b, Some(500));
    assert_eq!(w.sys.earliest_deadline(), Some(100));
    assert_eq!(w.sys.platform_deadline(), Some(500));
    // Woken by a request, it has no deadline until it waits again, and a
    // wait without one leaves none (the lower bound the scheduler keeps
    // for its scans does not count).
    w.sys.kick_service(Device::Platform);
    assert_eq!(w.sys.platform_deadline(), None);
    w.sys.service_block(Device::Platform, b, None);
    assert_eq!(w.sys.platform_deadline(), None);
    w.sys.service_block(Device::Platform, b, Some(900));
    assert_eq!(w.sys.platform_deadline(), Some(900));
}
