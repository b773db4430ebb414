//! Property tests: random sequences of capability operations across two
//! spaces and an object table never create rights, never panic, and make
//! every capability naming a destroyed object stale.

use capspace::{CSpace, CapError, Capability, ObjectRef, ObjectTable, MAX_SLOTS};
use hypercall_abi::{ObjectType, Rights};
use proptest::prelude::*;

const A_SLOTS: usize = 8;
const B_SLOTS: usize = 6;
const OBJECTS: usize = 6;

#[derive(Debug, Clone)]
enum Op {
    /// The core hands out the original capability of a given object again.
    Insert {
        in_a: bool,
        which: usize,
    },
    Derive {
        in_a: bool,
        slot: u64,
        rights: u8,
    },
    Delete {
        in_a: bool,
        slot: u64,
    },
    Grant {
        from_a: bool,
        slot: u64,
        rights: u8,
    },
    RemoveObject {
        in_a: bool,
        which: usize,
    },
    Destroy {
        which: usize,
    },
    Create {
        kind: ObjectType,
        rights: u8,
        in_a: bool,
    },
    Lookup {
        in_a: bool,
        slot: u64,
        kind: ObjectType,
        needed: u8,
    },
}

fn kind() -> impl Strategy<Value = ObjectType> {
    prop_oneof![
        Just(ObjectType::Domain),
        Just(ObjectType::MemRegion),
        Just(ObjectType::Channel),
        Just(ObjectType::IoPorts),
    ]
}

/// Mostly slots in or near range, sometimes any `u64`.
fn slot() -> impl Strategy<Value = u64> {
    prop_oneof![3 => 0u64..10, 1 => any::<u64>()]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (any::<bool>(), any::<usize>()).prop_map(|(in_a, which)| Op::Insert { in_a, which }),
        3 => (any::<bool>(), slot(), any::<u8>())
            .prop_map(|(in_a, slot, rights)| Op::Derive { in_a, slot, rights }),
        2 => (any::<bool>(), slot()).prop_map(|(in_a, slot)| Op::Delete { in_a, slot }),
        3 => (any::<bool>(), slot(), any::<u8>())
            .prop_map(|(from_a, slot, rights)| Op::Grant { from_a, slot, rights }),
        1 => (any::<bool>(), any::<usize>())
            .prop_map(|(in_a, which)| Op::RemoveObject { in_a, which }),
        1 => any::<usize>().prop_map(|which| Op::Destroy { which }),
        1 => (kind(), any::<u8>(), any::<bool>())
            .prop_map(|(kind, rights, in_a)| Op::Create { kind, rights, in_a }),
        2 => (any::<bool>(), slot(), kind(), any::<u8>())
            .prop_map(|(in_a, slot, kind, needed)| Op::Lookup { in_a, slot, kind, needed }),
    ]
}

struct World {
    table: ObjectTable<u32, OBJECTS>,
    a: CSpace<A_SLOTS>,
    b: CSpace<B_SLOTS>,
    /// Every object ever given out, with the rights it was given out with.
    given: Vec<(ObjectRef, Rights)>,
    destroyed: Vec<ObjectRef>,
}

/// The outcome a copy out of `src` should have, given the destination's
/// free-slot count: the reference model for derive and grant.
fn expected_copy(
    src: Result<Capability, CapError>,
    live: bool,
    need_grant: bool,
    rights: Rights,
    dest_full: bool,
) -> Result<(), CapError> {
    let c = src?;
    if !live {
        return Err(CapError::Stale);
    }
    if need_grant && !c.rights.contains(Rights::GRANT) {
        return Err(CapError::InsufficientRights);
    }
    if !c.rights.contains(rights) {
        return Err(CapError::InsufficientRights);
    }
    if dest_full {
        return Err(CapError::Full);
    }
    Ok(())
}

impl World {
    fn new(initial: &[(ObjectType, u8)]) -> Self {
        let mut w = World {
            table: ObjectTable::new(),
            a: CSpace::new(),
            b: CSpace::new(),
            given: Vec::new(),
            destroyed: Vec::new(),
        };
        for (n, &(kind, r)) in initial.iter().enumerate() {
            let o = w.table.allocate(kind, n as u32).unwrap();
            let r0 = Rights::from_bits_truncate(r);
            w.given.push((o, r0));
            w.a.insert(Capability::new(o, r0)).unwrap();
        }
        w
    }

    fn live(&self) -> impl Fn(ObjectRef) -> bool + '_ {
        |o| self.table.is_live(o)
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Insert { in_a, which } => {
                if self.given.is_empty() {
                    return Ok(());
                }
                let (o, r0) = self.given[which % self.given.len()];
                let c = Capability::new(o, r0);
                let r = if in_a {
                    self.a.insert(c)
                } else {
                    self.b.insert(c)
                };
                let full = if in_a {
                    self.a.len() == A_SLOTS
                } else {
                    self.b.len() == B_SLOTS
                };
                prop_assert!(r.is_ok() || (full && r == Err(CapError::Full)));
            }
            Op::Derive { in_a, slot, rights } => {
                let rights = Rights::from_bits_retain(rights);
                let (src, full) = if in_a {
                    (self.a.get(slot), self.a.len() == A_SLOTS)
                } else {
                    (self.b.get(slot), self.b.len() == B_SLOTS)
                };
                let live = src.is_ok_and(|c| self.table.is_live(c.object));
                let expect = expected_copy(src, live, false, rights, full);
                let table = &self.table;
                let is_live = |o| table.is_live(o);
                let r = if in_a {
                    self.a.derive(slot, rights, is_live)
                } else {
                    self.b.derive(slot, rights, is_live)
                };
                prop_assert_eq!(r.map(|_| ()), expect);
                if let Ok(new) = r {
                    let c = if in_a {
                        self.a.get(new.into())
                    } else {
                        self.b.get(new.into())
                    };
                    let src = src.unwrap();
                    prop_assert_eq!(c, Ok(Capability::new(src.object, rights)));
                }
            }
            Op::Delete { in_a, slot } => {
                let before = if in_a {
                    self.a.get(slot)
                } else {
                    self.b.get(slot)
                };
                let r = if in_a {
                    self.a.delete(slot)
                } else {
                    self.b.delete(slot)
                };
                prop_assert_eq!(r, before);
                let after = if in_a {
                    self.a.get(slot)
                } else {
                    self.b.get(slot)
                };
                if before.is_ok() {
                    prop_assert_eq!(after, Err(CapError::EmptySlot));
                }
            }
            Op::Grant {
                from_a,
                slot,
                rights,
            } => {
                let rights = Rights::from_bits_retain(rights);
                let (src, full) = if from_a {
                    (self.a.get(slot), self.b.len() == B_SLOTS)
                } else {
                    (self.b.get(slot), self.a.len() == A_SLOTS)
                };
                let live = src.is_ok_and(|c| self.table.is_live(c.object));
                let expect = expected_copy(src, live, true, rights, full);
                let table = &self.table;
                let is_live = |o| table.is_live(o);
                let (r, got) = if from_a {
                    let r = self.a.grant(slot, rights, is_live, &mut self.b);
                    (r, r.map(|n| self.b.get(n.into())))
                } else {
                    let r = self.b.grant(slot, rights, is_live, &mut self.a);
                    (r, r.map(|n| self.a.get(n.into())))
                };
                prop_assert_eq!(r.map(|_| ()), expect);
                if let Ok(got) = got {
                    prop_assert_eq!(got, Ok(Capability::new(src.unwrap().object, rights)));
                }
            }
            Op::RemoveObject { in_a, which } => {
                if self.given.is_empty() {
                    return Ok(());
                }
                let (o, _) = self.given[which % self.given.len()];
                let before = if in_a {
                    self.a.iter().filter(|(_, c)| c.object == o).count()
                } else {
                    self.b.iter().filter(|(_, c)| c.object == o).count()
                };
                let n = if in_a {
                    self.a.remove_object(o)
                } else {
                    self.b.remove_object(o)
                };
                prop_assert_eq!(n, before);
                let left = if in_a {
                    self.a.iter().filter(|(_, c)| c.object == o).count()
                } else {
                    self.b.iter().filter(|(_, c)| c.object == o).count()
                };
                prop_assert_eq!(left, 0);
            }
            Op::Destroy { which } => {
                if self.given.is_empty() {
                    return Ok(());
                }
                let (o, _) = self.given[which % self.given.len()];
                let was_live = self.table.is_live(o);
                let r = self.table.remove(o);
                prop_assert_eq!(r.is_some(), was_live);
                prop_assert!(!self.table.is_live(o));
                if was_live {
                    self.destroyed.push(o);
                }
            }
            Op::Create { kind, rights, in_a } => {
                let count = self.table.count();
                match self.table.allocate(kind, 0) {
                    Ok(o) => {
                        prop_assert!(count < OBJECTS);
                        prop_assert!(
                            !self.given.iter().any(|(g, _)| *g == o),
                            "a reference is never handed out twice"
                        );
                        let r0 = Rights::from_bits_truncate(rights);
                        self.given.push((o, r0));
                        let c = Capability::new(o, r0);
                        let _ = if in_a {
                            self.a.insert(c)
                        } else {
                            self.b.insert(c)
                        };
                    }
                    Err(e) => {
                        prop_assert_eq!(e, CapError::Full);
                        prop_assert_eq!(count, OBJECTS);
                    }
                }
            }
            Op::Lookup {
                in_a,
                slot,
                kind,
                needed,
            } => {
                let needed = Rights::from_bits_retain(needed);
                let live = self.live();
                let (got, r) = if in_a {
                    (self.a.get(slot), self.a.lookup(slot, kind, needed, live))
                } else {
                    (self.b.get(slot), self.b.lookup(slot, kind, needed, live))
                };
                let expect = got.and_then(|c| {
                    if !self.table.is_live(c.object) {
                        Err(CapError::Stale)
                    } else if c.object.kind != kind {
                        Err(CapError::WrongType)
                    } else if !c.rights.contains(needed) {
                        Err(CapError::InsufficientRights)
                    } else {
                        Ok(c)
                    }
                });
                prop_assert_eq!(r, expect);
            }
        }
        Ok(())
    }

    /// The invariants that hold after every operation.
    fn check(&self) -> Result<(), TestCaseError> {
        let caps: Vec<(bool, u16, Capability)> = self
            .a
            .iter()
            .map(|(s, c)| (true, s, c))
            .chain(self.b.iter().map(|(s, c)| (false, s, c)))
            .collect();
        for &(in_a, slot, c) in &caps {
            // Every capability names an object that was given out, with a
            // subset of the rights it was given out with.
            let r0 = self.given.iter().find(|(o, _)| *o == c.object).map(|g| g.1);
            prop_assert!(r0.is_some(), "capability names an unknown object: {:?}", c);
            let r0 = r0.unwrap();
            prop_assert!(r0.contains(c.rights), "{:?} exceeds {:?}", c, r0);

            // Every capability naming a destroyed object is stale, for any
            // type and rights asked, and cannot be copied.
            if self.destroyed.contains(&c.object) {
                let slot = u64::from(slot);
                for kind in [
                    ObjectType::Domain,
                    ObjectType::MemRegion,
                    ObjectType::Channel,
                    ObjectType::IoPorts,
                ] {
                    let r = if in_a {
                        self.a.lookup(slot, kind, Rights::empty(), self.live())
                    } else {
                        self.b.lookup(slot, kind, Rights::empty(), self.live())
                    };
                    prop_assert_eq!(r, Err(CapError::Stale));
                }
                let (mut a, mut b) = (self.a.clone(), self.b.clone());
                let live = self.live();
                let (d, g) = if in_a {
                    (
                        a.derive(slot, Rights::empty(), &live),
                        a.grant(slot, Rights::empty(), &live, &mut b),
                    )
                } else {
                    (
                        b.derive(slot, Rights::empty(), &live),
                        b.grant(slot, Rights::empty(), &live, &mut a),
                    )
                };
                prop_assert_eq!(d, Err(CapError::Stale));
                prop_assert_eq!(g, Err(CapError::Stale));
            }
        }
        for &o in &self.destroyed {
            prop_assert!(!self.table.is_live(o));
            prop_assert!(self.table.get(o).is_none());
        }
        prop_assert!(self.table.count() <= OBJECTS);
        prop_assert_eq!(self.table.iter().count(), self.table.count());
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_sequence_creates_rights_or_revives_objects(
        initial in prop::collection::vec((kind(), any::<u8>()), 1..=4),
        ops in prop::collection::vec(op(), 0..60),
    ) {
        let mut w = World::new(&initial);
        w.check()?;
        for op in &ops {
            w.apply(op)?;
            w.check()?;
        }
    }

    #[test]
    fn space_operations_never_panic_on_any_slot(
        slot in any::<u64>(),
        rights in any::<u8>(),
        kind in kind(),
    ) {
        let r = Rights::from_bits_retain(rights);
        let o = ObjectRef { kind, index: 0, generation: 0 };
        let mut a = CSpace::<4>::new();
        let mut b = CSpace::<2>::new();
        a.insert(Capability::new(o, Rights::all())).unwrap();
        let ok = slot == 0;
        prop_assert_eq!(a.get(slot).is_ok(), ok);
        let _ = a.lookup(slot, kind, r, |_| true);
        let _ = a.derive(slot, r, |_| true);
        let _ = a.grant(slot, r, |_| true, &mut b);
        let _ = a.insert_at(slot, Capability::new(o, r));
        let _ = a.delete(slot);
        let mut z = CSpace::<0>::new();
        prop_assert_eq!(z.get(slot), Err(CapError::InvalidSlot));
        prop_assert_eq!(z.delete(slot), Err(CapError::InvalidSlot));
        prop_assert_eq!(z.derive(slot, r, |_| true), Err(CapError::InvalidSlot));
        prop_assert_eq!(z.insert_at(slot, Capability::new(o, r)), Err(CapError::InvalidSlot));
    }

    #[test]
    fn table_accepts_any_reference(
        kind in kind(),
        index in any::<u16>(),
        generation in any::<u32>(),
    ) {
        let mut t = ObjectTable::<u8, 4>::new();
        let real = t.allocate(ObjectType::Domain, 1).unwrap();
        let o = ObjectRef { kind, index, generation };
        let same = o == real;
        prop_assert_eq!(t.is_live(o), same);
        prop_assert_eq!(t.get(o).is_some(), same);
        prop_assert_eq!(t.get_mut(o).is_some(), same);
        prop_assert_eq!(t.remove(o).is_some(), same);
        prop_assert_eq!(t.is_live(real), !same);
    }
}

#[test]
fn max_slots_is_the_u16_range() {
    assert_eq!(MAX_SLOTS, usize::from(u16::MAX) + 1);
}
