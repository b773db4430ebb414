//! `capspace` is the pure capability logic of Bulkhead's core: the
//! per-domain capability spaces ([`CSpace`]) that the kernel consults on
//! every hypercall, and the generation-checked object tables
//! ([`ObjectTable`]) that tell whether a capability still names a live
//! object.
//!
//! It owns slots, rights and generations, and nothing else: it knows no
//! domains, memory or channels, only [`ObjectRef`]s. It must never create
//! rights that were not granted (every copy — [`CSpace::derive`],
//! [`CSpace::grant`] — holds a subset of its source's rights), never panic on
//! any slot number, object reference or sequence of operations, and never
//! allocate: every space and table is a fixed-size array sized by a const
//! generic.
//!
//! # Checking order
//!
//! [`CSpace::lookup`] checks, in this order, the order the hypercall ABI
//! documents: slot in range ([`CapError::InvalidSlot`]), slot occupied
//! ([`CapError::EmptySlot`]), object still live ([`CapError::Stale`]), type
//! ([`CapError::WrongType`]), rights ([`CapError::InsufficientRights`]).
//!
//! # Staleness
//!
//! An [`ObjectRef`] carries the generation of its table slot. Removing an
//! object bumps that generation, so every capability still naming the old
//! object fails the `live` check ([`ObjectTable::is_live`]) and is reported
//! as [`CapError::Stale`], even after the slot is reused. A slot whose
//! generation would wrap is retired instead of reused, so an old reference
//! can never become valid again.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use core::fmt;

pub use hypercall_abi::{ObjectType, Rights, Status};

/// The most slots a [`CSpace`] or [`ObjectTable`] may have: slot numbers and
/// object indices are `u16`.
pub const MAX_SLOTS: usize = 1 << 16;

/// Names one object: its type, its index in its [`ObjectTable`] and the
/// generation of that table slot when the object was allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectRef {
    /// The object's type.
    pub kind: ObjectType,
    /// The slot of the object in its table.
    pub index: u16,
    /// The generation of that slot when the object was allocated.
    pub generation: u32,
}

/// A reference to an object together with what it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    /// The object the capability names.
    pub object: ObjectRef,
    /// What the capability allows on the object.
    pub rights: Rights,
}

impl Capability {
    /// A capability naming `object` with `rights`.
    pub const fn new(object: ObjectRef, rights: Rights) -> Self {
        Self { object, rights }
    }
}

/// Why a capability operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CapError {
    /// The slot number is beyond the space.
    InvalidSlot,
    /// The slot holds no capability.
    EmptySlot,
    /// The capability names an object that no longer exists.
    Stale,
    /// The capability names an object of another type.
    WrongType,
    /// The capability lacks a needed right, or a copy asked for rights the
    /// source does not hold.
    InsufficientRights,
    /// No free slot is left (in the space or the table).
    Full,
    /// [`CSpace::insert_at`] was given a slot that already holds a
    /// capability.
    Occupied,
}

impl CapError {
    /// A short description for logs.
    pub const fn description(self) -> &'static str {
        match self {
            CapError::InvalidSlot => "invalid slot",
            CapError::EmptySlot => "empty slot",
            CapError::Stale => "stale capability",
            CapError::WrongType => "wrong object type",
            CapError::InsufficientRights => "insufficient rights",
            CapError::Full => "no free slot",
            CapError::Occupied => "slot already occupied",
        }
    }
}

impl fmt::Display for CapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl From<CapError> for Status {
    fn from(e: CapError) -> Status {
        match e {
            CapError::InvalidSlot => Status::InvalidSlot,
            CapError::EmptySlot => Status::EmptySlot,
            CapError::Stale => Status::StaleCapability,
            CapError::WrongType => Status::WrongType,
            CapError::InsufficientRights => Status::InsufficientRights,
            CapError::Full => Status::OutOfResources,
            CapError::Occupied => Status::InvalidArgument,
        }
    }
}

/// Converts a slot number to an array index, or `None` when it is not below
/// `n`. Never truncates: a `u64` beyond `usize` is out of range.
fn slot_index(slot: u64, n: usize) -> Option<usize> {
    usize::try_from(slot).ok().filter(|&i| i < n)
}

/// Converts an array index known to be below [`MAX_SLOTS`] to a slot number.
fn to_u16(i: usize) -> u16 {
    // Callers only pass indices of arrays of at most MAX_SLOTS entries
    // (checked at compile time in `new`); saturate rather than panic anyway.
    u16::try_from(i).unwrap_or(u16::MAX)
}

/// A domain's capability space: `N` slots, each empty or holding one
/// [`Capability`]. Slots are numbered from 0; `N` is at most [`MAX_SLOTS`]
/// (checked at compile time).
#[derive(Debug, Clone)]
pub struct CSpace<const N: usize> {
    slots: [Option<Capability>; N],
}

impl<const N: usize> Default for CSpace<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> CSpace<N> {
    /// An empty space.
    pub const fn new() -> Self {
        const { assert!(N <= MAX_SLOTS, "a CSpace has at most 65536 slots") };
        Self { slots: [None; N] }
    }

    /// The number of slots (`N`): valid slot numbers are `0..capacity()`.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// The number of occupied slots.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// Whether no slot holds a capability.
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    /// The capability in `slot`, without any liveness, type or rights check.
    pub fn get(&self, slot: u64) -> Result<Capability, CapError> {
        let i = slot_index(slot, N).ok_or(CapError::InvalidSlot)?;
        self.slots[i].ok_or(CapError::EmptySlot)
    }

    /// The capability in `slot`, if it names a live object (`live` decides,
    /// usually [`ObjectTable::is_live`]).
    fn get_live(
        &self,
        slot: u64,
        live: impl Fn(ObjectRef) -> bool,
    ) -> Result<Capability, CapError> {
        let cap = self.get(slot)?;
        if live(cap.object) {
            Ok(cap)
        } else {
            Err(CapError::Stale)
        }
    }

    /// The check every hypercall makes: the capability in `slot` must name a
    /// live object (as `live` reports) of type `kind` and hold every right in
    /// `needed`. Checked in the order slot range, empty, stale, type, rights.
    pub fn lookup(
        &self,
        slot: u64,
        kind: ObjectType,
        needed: Rights,
        live: impl Fn(ObjectRef) -> bool,
    ) -> Result<Capability, CapError> {
        let cap = self.get_live(slot, live)?;
        if cap.object.kind != kind {
            return Err(CapError::WrongType);
        }
        if !cap.rights.contains(needed) {
            return Err(CapError::InsufficientRights);
        }
        Ok(cap)
    }

    /// Puts `cap` in the lowest free slot and returns that slot, or
    /// [`CapError::Full`].
    ///
    /// This is how the core hands out a capability it has just created; it
    /// does not (cannot) check where the rights came from.
    pub fn insert(&mut self, cap: Capability) -> Result<u16, CapError> {
        let i = self
            .slots
            .iter()
            .position(Option::is_none)
            .ok_or(CapError::Full)?;
        self.slots[i] = Some(cap);
        Ok(to_u16(i))
    }

    /// Puts `cap` in exactly `slot`, for a boot-time layout.
    /// [`CapError::InvalidSlot`] when out of range, [`CapError::Occupied`]
    /// when the slot already holds a capability (it is left unchanged).
    pub fn insert_at(&mut self, slot: u64, cap: Capability) -> Result<(), CapError> {
        let i = slot_index(slot, N).ok_or(CapError::InvalidSlot)?;
        match &mut self.slots[i] {
            Some(_) => Err(CapError::Occupied),
            s @ None => {
                *s = Some(cap);
                Ok(())
            }
        }
    }

    /// Copies the capability in `slot` into the lowest free slot with
    /// `rights`, which must be a subset of the source's rights. The source
    /// must name a live object. Returns the new slot.
    ///
    /// Errors, in order: [`CapError::InvalidSlot`], [`CapError::EmptySlot`],
    /// [`CapError::Stale`], [`CapError::InsufficientRights`],
    /// [`CapError::Full`].
    pub fn derive(
        &mut self,
        slot: u64,
        rights: Rights,
        live: impl Fn(ObjectRef) -> bool,
    ) -> Result<u16, CapError> {
        let src = self.get_live(slot, live)?;
        let copy = attenuate(src, rights)?;
        self.insert(copy)
    }

    /// Empties `slot` and returns what it held.
    pub fn delete(&mut self, slot: u64) -> Result<Capability, CapError> {
        let i = slot_index(slot, N).ok_or(CapError::InvalidSlot)?;
        self.slots[i].take().ok_or(CapError::EmptySlot)
    }

    /// Copies the capability in `slot` into the lowest free slot of `dest`
    /// with `rights`. The source must name a live object and hold
    /// [`Rights::GRANT`]; `rights` must be a subset of the source's rights
    /// (so the copy may carry `GRANT` on). Returns the slot in `dest`.
    ///
    /// Errors, in order: [`CapError::InvalidSlot`], [`CapError::EmptySlot`],
    /// [`CapError::Stale`], [`CapError::InsufficientRights`] (no `GRANT`,
    /// or rights not a subset), [`CapError::Full`] (`dest` is full).
    ///
    /// The right to send through a particular channel is the kernel's check
    /// (a [`lookup`](Self::lookup) of the channel slot), not this one's.
    pub fn grant<const M: usize>(
        &self,
        slot: u64,
        rights: Rights,
        live: impl Fn(ObjectRef) -> bool,
        dest: &mut CSpace<M>,
    ) -> Result<u16, CapError> {
        let src = self.get_live(slot, live)?;
        if !src.rights.contains(Rights::GRANT) {
            return Err(CapError::InsufficientRights);
        }
        let copy = attenuate(src, rights)?;
        dest.insert(copy)
    }

    /// Deletes every capability in this space that names exactly `obj`
    /// (same type, index and generation); returns how many were deleted.
    pub fn remove_object(&mut self, obj: ObjectRef) -> usize {
        let mut n = 0;
        for s in &mut self.slots {
            if s.is_some_and(|c| c.object == obj) {
                *s = None;
                n += 1;
            }
        }
        n
    }

    /// Every occupied slot and its capability, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (u16, Capability)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.map(|c| (to_u16(i), c)))
    }
}

/// A copy of `src` with `rights`, if they are a subset of its rights.
fn attenuate(src: Capability, rights: Rights) -> Result<Capability, CapError> {
    if src.rights.contains(rights) {
        Ok(Capability::new(src.object, rights))
    } else {
        Err(CapError::InsufficientRights)
    }
}

/// One slot of an [`ObjectTable`].
#[derive(Debug, Clone)]
struct Entry<T> {
    /// The generation of the current (or next) occupant.
    generation: u32,
    /// Set when the generation can no longer be bumped: never reused.
    retired: bool,
    /// The occupant, if any, with its type.
    occupant: Option<(ObjectType, T)>,
}

impl<T> Entry<T> {
    const FREE: Self = Entry {
        generation: 0,
        retired: false,
        occupant: None,
    };
}

/// A fixed table of `N` objects of type `T` (`N` at most [`MAX_SLOTS`],
/// checked at compile time). Each slot has a generation counter: an
/// [`ObjectRef`] is valid only while its slot holds an object of its type
/// allocated at its generation.
///
/// One table may hold objects of several [`ObjectType`]s; the type is part
/// of the reference and checked on every access.
///
/// Generations start at 0 and are bumped by [`remove`](Self::remove). A slot
/// whose generation is `u32::MAX` when its object is removed is retired: it
/// is never handed out again, so generations never wrap and no old
/// reference can become valid again. `T` needs no bounds.
#[derive(Debug, Clone)]
pub struct ObjectTable<T, const N: usize> {
    entries: [Entry<T>; N],
}

impl<T, const N: usize> Default for ObjectTable<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> ObjectTable<T, N> {
    /// An empty table.
    pub const fn new() -> Self {
        const { assert!(N <= MAX_SLOTS, "an ObjectTable has at most 65536 slots") };
        Self {
            entries: [const { Entry::FREE }; N],
        }
    }

    /// The number of slots (`N`).
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Stores `value` as an object of type `kind` in the lowest free slot
    /// (retired slots are skipped) and returns its reference, or
    /// [`CapError::Full`] (the value is dropped).
    pub fn allocate(&mut self, kind: ObjectType, value: T) -> Result<ObjectRef, CapError> {
        let i = self
            .entries
            .iter()
            .position(|e| e.occupant.is_none() && !e.retired)
            .ok_or(CapError::Full)?;
        let e = &mut self.entries[i];
        e.occupant = Some((kind, value));
        Ok(ObjectRef {
            kind,
            index: to_u16(i),
            generation: e.generation,
        })
    }

    /// The entry `obj` names, if it is live.
    fn entry(&self, obj: ObjectRef) -> Option<&Entry<T>> {
        self.entries
            .get(usize::from(obj.index))
            .filter(|e| Self::matches(e, obj))
    }

    fn matches(e: &Entry<T>, obj: ObjectRef) -> bool {
        e.generation == obj.generation && matches!(&e.occupant, Some((k, _)) if *k == obj.kind)
    }

    /// Whether `obj` names a live object: its slot is occupied, by an object
    /// of its type, at its generation.
    pub fn is_live(&self, obj: ObjectRef) -> bool {
        self.entry(obj).is_some()
    }

    /// The live object in slot `index`, whatever its generation.
    pub fn at(&self, index: usize) -> Option<&T> {
        self.entries.get(index)?.occupant.as_ref().map(|(_, v)| v)
    }

    /// The reference to the live object in slot `index`, if any.
    pub fn ref_at(&self, index: usize) -> Option<ObjectRef> {
        let e = self.entries.get(index)?;
        e.occupant.as_ref().map(|(kind, _)| ObjectRef {
            kind: *kind,
            index: to_u16(index),
            generation: e.generation,
        })
    }

    /// The object `obj` names, or `None` if it is not live.
    pub fn get(&self, obj: ObjectRef) -> Option<&T> {
        self.entry(obj)
            .and_then(|e| e.occupant.as_ref())
            .map(|(_, v)| v)
    }

    /// The object `obj` names, mutably, or `None` if it is not live.
    pub fn get_mut(&mut self, obj: ObjectRef) -> Option<&mut T> {
        self.entries
            .get_mut(usize::from(obj.index))
            .filter(|e| Self::matches(e, obj))
            .and_then(|e| e.occupant.as_mut())
            .map(|(_, v)| v)
    }

    /// Removes the object `obj` names and returns it, or `None` if it is not
    /// live. The slot's generation is bumped, so `obj` and every copy of it
    /// are stale from now on; a slot whose generation cannot be bumped is
    /// retired.
    pub fn remove(&mut self, obj: ObjectRef) -> Option<T> {
        let e = self
            .entries
            .get_mut(usize::from(obj.index))
            .filter(|e| Self::matches(e, obj))?;
        match e.generation.checked_add(1) {
            Some(g) => e.generation = g,
            None => e.retired = true,
        }
        e.occupant.take().map(|(_, v)| v)
    }

    /// Every live object with its reference, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (ObjectRef, &T)> + '_ {
        self.entries.iter().enumerate().filter_map(|(i, e)| {
            e.occupant.as_ref().map(|(kind, v)| {
                (
                    ObjectRef {
                        kind: *kind,
                        index: to_u16(i),
                        generation: e.generation,
                    },
                    v,
                )
            })
        })
    }

    /// Every live object with its reference, mutably, in slot order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (ObjectRef, &mut T)> + '_ {
        self.entries.iter_mut().enumerate().filter_map(|(i, e)| {
            let generation = e.generation;
            e.occupant.as_mut().map(|(kind, v)| {
                (
                    ObjectRef {
                        kind: *kind,
                        index: to_u16(i),
                        generation,
                    },
                    v,
                )
            })
        })
    }

    /// The number of live objects.
    pub fn count(&self) -> usize {
        self.entries.iter().filter(|e| e.occupant.is_some()).count()
    }
}

#[cfg(test)]
mod tests;
