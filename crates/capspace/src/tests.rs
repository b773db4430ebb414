//! Unit tests: one per operation and per error.

use super::*;

const ALL: Rights = Rights::all();

fn obj(kind: ObjectType, index: u16) -> ObjectRef {
    ObjectRef {
        kind,
        index,
        generation: 0,
    }
}

fn cap(kind: ObjectType, index: u16, rights: Rights) -> Capability {
    Capability::new(obj(kind, index), rights)
}

fn always(_: ObjectRef) -> bool {
    true
}

fn never(_: ObjectRef) -> bool {
    false
}

// ---- CapError ----

#[test]
fn errors_map_to_statuses() {
    assert_eq!(Status::from(CapError::InvalidSlot), Status::InvalidSlot);
    assert_eq!(Status::from(CapError::EmptySlot), Status::EmptySlot);
    assert_eq!(Status::from(CapError::Stale), Status::StaleCapability);
    assert_eq!(Status::from(CapError::WrongType), Status::WrongType);
    assert_eq!(
        Status::from(CapError::InsufficientRights),
        Status::InsufficientRights
    );
    assert_eq!(Status::from(CapError::Full), Status::OutOfResources);
    assert_eq!(Status::from(CapError::Occupied), Status::InvalidArgument);
}

#[test]
fn errors_display() {
    assert_eq!(CapError::Stale.to_string(), "stale capability");
    assert_eq!(CapError::Full.to_string(), "no free slot");
}

// ---- CSpace ----

#[test]
fn new_space_is_empty() {
    const S: CSpace<4> = CSpace::new();
    assert_eq!(S.capacity(), 4);
    assert_eq!(S.len(), 0);
    assert!(S.is_empty());
    assert_eq!(S.iter().count(), 0);
    let z: CSpace<0> = CSpace::default();
    assert_eq!(z.get(0), Err(CapError::InvalidSlot));
}

#[test]
fn get_returns_the_capability() {
    let mut s = CSpace::<4>::new();
    let c = cap(ObjectType::Channel, 3, Rights::READ);
    assert_eq!(s.insert(c), Ok(0));
    assert_eq!(s.get(0), Ok(c));
    assert_eq!(s.len(), 1);
    assert!(!s.is_empty());
}

#[test]
fn get_invalid_slot() {
    let s = CSpace::<4>::new();
    for slot in [4, 5, 1 << 16, 1 << 32, u64::MAX] {
        assert_eq!(s.get(slot), Err(CapError::InvalidSlot));
    }
}

#[test]
fn get_empty_slot() {
    let s = CSpace::<4>::new();
    assert_eq!(s.get(3), Err(CapError::EmptySlot));
}

#[test]
fn lookup_succeeds() {
    let mut s = CSpace::<4>::new();
    let c = cap(ObjectType::MemRegion, 1, Rights::READ | Rights::MAP);
    s.insert(c).unwrap();
    assert_eq!(
        s.lookup(0, ObjectType::MemRegion, Rights::MAP, always),
        Ok(c)
    );
    assert_eq!(
        s.lookup(0, ObjectType::MemRegion, Rights::empty(), always),
        Ok(c)
    );
}

#[test]
fn lookup_invalid_slot() {
    let s = CSpace::<4>::new();
    assert_eq!(
        s.lookup(u64::MAX, ObjectType::Domain, ALL, never),
        Err(CapError::InvalidSlot)
    );
}

#[test]
fn lookup_empty_slot() {
    let s = CSpace::<4>::new();
    assert_eq!(
        s.lookup(0, ObjectType::Domain, ALL, never),
        Err(CapError::EmptySlot)
    );
}

#[test]
fn lookup_stale_before_type_and_rights() {
    let mut s = CSpace::<4>::new();
    s.insert(cap(ObjectType::Domain, 0, Rights::empty()))
        .unwrap();
    assert_eq!(
        s.lookup(0, ObjectType::Channel, ALL, never),
        Err(CapError::Stale)
    );
}

#[test]
fn lookup_wrong_type_before_rights() {
    let mut s = CSpace::<4>::new();
    s.insert(cap(ObjectType::Domain, 0, Rights::empty()))
        .unwrap();
    assert_eq!(
        s.lookup(0, ObjectType::Channel, ALL, always),
        Err(CapError::WrongType)
    );
}

#[test]
fn lookup_insufficient_rights() {
    let mut s = CSpace::<4>::new();
    s.insert(cap(ObjectType::Domain, 0, Rights::READ | Rights::WRITE))
        .unwrap();
    assert_eq!(
        s.lookup(
            0,
            ObjectType::Domain,
            Rights::READ | Rights::CONTROL,
            always
        ),
        Err(CapError::InsufficientRights)
    );
}

#[test]
fn lookup_passes_the_object_to_live() {
    let mut s = CSpace::<4>::new();
    let c = cap(ObjectType::IoPorts, 9, Rights::READ);
    s.insert(c).unwrap();
    let only = |o: ObjectRef| o == c.object;
    assert!(s.lookup(0, ObjectType::IoPorts, Rights::READ, only).is_ok());
    s.delete(0).unwrap();
    s.insert(cap(ObjectType::IoPorts, 8, Rights::READ)).unwrap();
    assert_eq!(
        s.lookup(0, ObjectType::IoPorts, Rights::READ, only),
        Err(CapError::Stale)
    );
}

#[test]
fn insert_uses_the_lowest_free_slot() {
    let mut s = CSpace::<3>::new();
    let c = cap(ObjectType::Domain, 0, ALL);
    assert_eq!(s.insert(c), Ok(0));
    assert_eq!(s.insert(c), Ok(1));
    assert_eq!(s.insert(c), Ok(2));
    s.delete(1).unwrap();
    assert_eq!(s.insert(c), Ok(1));
}

#[test]
fn insert_full() {
    let mut s = CSpace::<2>::new();
    let c = cap(ObjectType::Domain, 0, ALL);
    s.insert(c).unwrap();
    s.insert(c).unwrap();
    assert_eq!(s.insert(c), Err(CapError::Full));
    let mut z = CSpace::<0>::new();
    assert_eq!(z.insert(c), Err(CapError::Full));
}

#[test]
fn insert_at_places_exactly() {
    let mut s = CSpace::<8>::new();
    let c = cap(ObjectType::Channel, 2, Rights::WRITE);
    assert_eq!(s.insert_at(5, c), Ok(()));
    assert_eq!(s.get(5), Ok(c));
    assert_eq!(s.get(0), Err(CapError::EmptySlot));
    assert_eq!(s.insert(c), Ok(0));
}

#[test]
fn insert_at_invalid_slot() {
    let mut s = CSpace::<8>::new();
    let c = cap(ObjectType::Channel, 2, Rights::WRITE);
    assert_eq!(s.insert_at(8, c), Err(CapError::InvalidSlot));
    assert_eq!(s.insert_at(u64::MAX, c), Err(CapError::InvalidSlot));
    assert!(s.is_empty());
}

#[test]
fn insert_at_occupied() {
    let mut s = CSpace::<8>::new();
    let a = cap(ObjectType::Channel, 2, Rights::WRITE);
    let b = cap(ObjectType::Domain, 1, ALL);
    s.insert_at(3, a).unwrap();
    assert_eq!(s.insert_at(3, b), Err(CapError::Occupied));
    assert_eq!(s.get(3), Ok(a));
}

#[test]
fn derive_copies_with_fewer_rights() {
    let mut s = CSpace::<4>::new();
    let c = cap(ObjectType::MemRegion, 0, Rights::READ | Rights::WRITE);
    s.insert(c).unwrap();
    assert_eq!(s.derive(0, Rights::READ, always), Ok(1));
    assert_eq!(
        s.get(1),
        Ok(Capability::new(c.object, Rights::READ)),
        "copy has exactly the asked rights"
    );
    assert_eq!(s.get(0), Ok(c), "source unchanged");
    assert_eq!(s.derive(0, c.rights, always), Ok(2), "equal rights allowed");
}

#[test]
fn derive_more_rights_refused() {
    let mut s = CSpace::<4>::new();
    s.insert(cap(ObjectType::MemRegion, 0, Rights::READ))
        .unwrap();
    assert_eq!(
        s.derive(0, Rights::READ | Rights::WRITE, always),
        Err(CapError::InsufficientRights)
    );
    assert_eq!(
        s.derive(0, Rights::from_bits_retain(0x80), always),
        Err(CapError::InsufficientRights),
        "unknown bits are rights too"
    );
    assert_eq!(s.len(), 1);
}

#[test]
fn derive_slot_errors() {
    let mut s = CSpace::<2>::new();
    assert_eq!(
        s.derive(2, Rights::empty(), always),
        Err(CapError::InvalidSlot)
    );
    assert_eq!(
        s.derive(1, Rights::empty(), always),
        Err(CapError::EmptySlot)
    );
}

#[test]
fn derive_stale_refused() {
    let mut s = CSpace::<2>::new();
    s.insert(cap(ObjectType::Domain, 0, ALL)).unwrap();
    assert_eq!(s.derive(0, Rights::empty(), never), Err(CapError::Stale));
    assert_eq!(s.len(), 1);
}

#[test]
fn derive_full() {
    let mut s = CSpace::<1>::new();
    s.insert(cap(ObjectType::Domain, 0, ALL)).unwrap();
    assert_eq!(s.derive(0, Rights::READ, always), Err(CapError::Full));
}

#[test]
fn delete_empties_the_slot() {
    let mut s = CSpace::<2>::new();
    let c = cap(ObjectType::Domain, 0, ALL);
    s.insert(c).unwrap();
    assert_eq!(s.delete(0), Ok(c));
    assert_eq!(s.get(0), Err(CapError::EmptySlot));
    assert!(s.is_empty());
}

#[test]
fn delete_errors() {
    let mut s = CSpace::<2>::new();
    assert_eq!(s.delete(0), Err(CapError::EmptySlot));
    assert_eq!(s.delete(2), Err(CapError::InvalidSlot));
    assert_eq!(s.delete(u64::MAX), Err(CapError::InvalidSlot));
}

#[test]
fn grant_copies_into_the_other_space() {
    let mut a = CSpace::<4>::new();
    let mut b = CSpace::<2>::new();
    let c = cap(ObjectType::Channel, 1, Rights::READ | Rights::GRANT);
    a.insert(c).unwrap();
    assert_eq!(a.grant(0, Rights::READ, always, &mut b), Ok(0));
    assert_eq!(b.get(0), Ok(Capability::new(c.object, Rights::READ)));
    assert_eq!(
        a.grant(0, Rights::READ | Rights::GRANT, always, &mut b),
        Ok(1),
        "GRANT may be passed on"
    );
    assert_eq!(b.get(1), Ok(c));
    assert_eq!(a.len(), 1, "source space unchanged");
}

#[test]
fn grant_without_grant_right_refused() {
    let mut a = CSpace::<4>::new();
    let mut b = CSpace::<2>::new();
    a.insert(cap(ObjectType::Channel, 1, Rights::READ)).unwrap();
    assert_eq!(
        a.grant(0, Rights::READ, always, &mut b),
        Err(CapError::InsufficientRights)
    );
    assert!(b.is_empty());
}

#[test]
fn grant_more_rights_refused() {
    let mut a = CSpace::<4>::new();
    let mut b = CSpace::<2>::new();
    a.insert(cap(ObjectType::Channel, 1, Rights::READ | Rights::GRANT))
        .unwrap();
    assert_eq!(
        a.grant(0, Rights::WRITE, always, &mut b),
        Err(CapError::InsufficientRights)
    );
    assert!(b.is_empty());
}

#[test]
fn grant_slot_and_stale_errors() {
    let mut a = CSpace::<4>::new();
    let mut b = CSpace::<2>::new();
    assert_eq!(
        a.grant(4, Rights::empty(), always, &mut b),
        Err(CapError::InvalidSlot)
    );
    assert_eq!(
        a.grant(0, Rights::empty(), always, &mut b),
        Err(CapError::EmptySlot)
    );
    a.insert(cap(ObjectType::Channel, 1, ALL)).unwrap();
    assert_eq!(
        a.grant(0, Rights::empty(), never, &mut b),
        Err(CapError::Stale)
    );
    assert!(b.is_empty());
}

#[test]
fn grant_full_destination() {
    let mut a = CSpace::<4>::new();
    let mut b = CSpace::<0>::new();
    a.insert(cap(ObjectType::Channel, 1, ALL)).unwrap();
    assert_eq!(a.grant(0, ALL, always, &mut b), Err(CapError::Full));
}

#[test]
fn remove_object_deletes_every_copy() {
    let mut s = CSpace::<8>::new();
    let target = obj(ObjectType::Domain, 2);
    let other_gen = ObjectRef {
        generation: 1,
        ..target
    };
    let other_kind = obj(ObjectType::Channel, 2);
    s.insert(Capability::new(target, ALL)).unwrap();
    s.insert(Capability::new(other_gen, ALL)).unwrap();
    s.derive(0, Rights::READ, always).unwrap();
    s.insert(Capability::new(other_kind, ALL)).unwrap();
    s.insert_at(7, Capability::new(target, Rights::empty()))
        .unwrap();
    assert_eq!(s.remove_object(target), 3);
    assert_eq!(s.len(), 2);
    assert!(s.iter().all(|(_, c)| c.object != target));
    assert_eq!(s.remove_object(target), 0);
}

#[test]
fn iter_lists_occupied_slots_in_order() {
    let mut s = CSpace::<8>::new();
    let a = cap(ObjectType::Domain, 0, ALL);
    let b = cap(ObjectType::Channel, 1, Rights::READ);
    s.insert_at(6, b).unwrap();
    s.insert_at(2, a).unwrap();
    let v: Vec<_> = s.iter().collect();
    assert_eq!(v, vec![(2, a), (6, b)]);
}

#[test]
fn largest_space_numbers_every_slot() {
    // The space is built on the stack before boxing: give it room.
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(|| {
            let mut s: Box<CSpace<MAX_SLOTS>> = Box::default();
            let c = cap(ObjectType::Domain, 0, ALL);
            s.insert_at(u64::from(u16::MAX), c).unwrap();
            assert_eq!(s.iter().next(), Some((u16::MAX, c)));
            assert_eq!(s.insert_at(MAX_SLOTS as u64, c), Err(CapError::InvalidSlot));
            assert_eq!(s.derive(u64::from(u16::MAX), ALL, always), Ok(0));
        })
        .unwrap()
        .join()
        .unwrap();
}

// ---- ObjectTable ----

#[test]
fn new_table_is_empty() {
    const T: ObjectTable<String, 4> = ObjectTable::new();
    assert_eq!(T.capacity(), 4);
    assert_eq!(T.count(), 0);
    assert_eq!(T.iter().count(), 0);
}

#[test]
fn allocate_and_get() {
    let mut t = ObjectTable::<String, 4>::new();
    let a = t.allocate(ObjectType::Domain, "a".into()).unwrap();
    let b = t.allocate(ObjectType::Channel, "b".into()).unwrap();
    assert_eq!(a, obj(ObjectType::Domain, 0));
    assert_eq!(b, obj(ObjectType::Channel, 1));
    assert_eq!(t.get(a).map(String::as_str), Some("a"));
    assert_eq!(t.get(b).map(String::as_str), Some("b"));
    assert!(t.is_live(a));
    assert_eq!(t.count(), 2);
}

#[test]
fn allocate_full() {
    let mut t = ObjectTable::<u8, 1>::new();
    t.allocate(ObjectType::Domain, 1).unwrap();
    assert_eq!(t.allocate(ObjectType::Domain, 2), Err(CapError::Full));
    let mut z = ObjectTable::<u8, 0>::new();
    assert_eq!(z.allocate(ObjectType::Domain, 2), Err(CapError::Full));
}

#[test]
fn get_mut_changes_the_object() {
    let mut t = ObjectTable::<u32, 2>::new();
    let a = t.allocate(ObjectType::MemRegion, 1).unwrap();
    *t.get_mut(a).unwrap() = 7;
    assert_eq!(t.get(a), Some(&7));
}

#[test]
fn get_refuses_free_slot_wrong_kind_wrong_generation_and_out_of_range() {
    let mut t = ObjectTable::<u32, 2>::new();
    let a = t.allocate(ObjectType::MemRegion, 1).unwrap();
    let free = obj(ObjectType::MemRegion, 1);
    let kind = ObjectRef {
        kind: ObjectType::Domain,
        ..a
    };
    let generation = ObjectRef { generation: 5, ..a };
    let range = obj(ObjectType::MemRegion, u16::MAX);
    for r in [free, kind, generation, range] {
        assert_eq!(t.get(r), None);
        assert_eq!(t.get_mut(r), None);
        assert!(!t.is_live(r));
        assert_eq!(t.remove(r), None);
    }
    assert_eq!(t.get(a), Some(&1), "failed removes left the object");
}

#[test]
fn remove_makes_references_stale_and_reuse_gets_a_new_generation() {
    let mut t = ObjectTable::<u32, 1>::new();
    let a = t.allocate(ObjectType::Domain, 1).unwrap();
    assert_eq!(t.remove(a), Some(1));
    assert!(!t.is_live(a));
    assert_eq!(t.get(a), None);
    assert_eq!(t.remove(a), None, "second remove is refused");
    assert_eq!(t.count(), 0);
    let b = t.allocate(ObjectType::Domain, 2).unwrap();
    assert_eq!(b.index, a.index);
    assert_ne!(b.generation, a.generation);
    assert!(!t.is_live(a));
    assert_eq!(t.get(b), Some(&2));
}

#[test]
fn slot_is_retired_rather_than_wrapping() {
    let mut t = ObjectTable::<u32, 2>::new();
    t.entries[0].generation = u32::MAX - 1;
    let a = t.allocate(ObjectType::Domain, 1).unwrap();
    assert_eq!(a.generation, u32::MAX - 1);
    t.remove(a).unwrap();
    let b = t.allocate(ObjectType::Domain, 2).unwrap();
    assert_eq!((b.index, b.generation), (0, u32::MAX));
    t.remove(b).unwrap();
    let c = t.allocate(ObjectType::Domain, 3).unwrap();
    assert_eq!(c.index, 1, "slot 0 is retired");
    t.remove(c).unwrap();
    let d = t.allocate(ObjectType::Domain, 4).unwrap();
    assert_eq!(d.index, 1);
    t.remove(d).unwrap();
    for g in [0, u32::MAX - 1, u32::MAX] {
        assert!(!t.is_live(ObjectRef { generation: g, ..a }));
    }
    t.entries[1].generation = u32::MAX;
    let e = t.allocate(ObjectType::Domain, 5).unwrap();
    t.remove(e).unwrap();
    assert_eq!(t.allocate(ObjectType::Domain, 6), Err(CapError::Full));
}

#[test]
fn table_iter_and_iter_mut() {
    let mut t = ObjectTable::<u32, 4>::new();
    let a = t.allocate(ObjectType::Domain, 1).unwrap();
    let b = t.allocate(ObjectType::Channel, 2).unwrap();
    let c = t.allocate(ObjectType::IoPorts, 3).unwrap();
    t.remove(b).unwrap();
    for (_, v) in t.iter_mut() {
        *v *= 10;
    }
    let v: Vec<_> = t.iter().map(|(r, v)| (r, *v)).collect();
    assert_eq!(v, vec![(a, 10), (c, 30)]);
    assert_eq!(t.count(), 2);
}

#[test]
fn table_and_space_together() {
    let mut t = ObjectTable::<(), 4>::new();
    let mut s = CSpace::<4>::new();
    let d = t.allocate(ObjectType::Domain, ()).unwrap();
    s.insert(Capability::new(d, Rights::CONTROL)).unwrap();
    let live = |o| t.is_live(o);
    assert!(s
        .lookup(0, ObjectType::Domain, Rights::CONTROL, live)
        .is_ok());
    t.remove(d).unwrap();
    let d2 = t.allocate(ObjectType::Domain, ()).unwrap();
    assert_eq!(d2.index, d.index);
    let live = |o| t.is_live(o);
    assert_eq!(
        s.lookup(0, ObjectType::Domain, Rights::CONTROL, live),
        Err(CapError::Stale)
    );
}
