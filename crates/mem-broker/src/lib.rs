//! `mem-broker` is the logic of Bulkhead's memory broker, the service
//! domain that owns the memory left free at boot and lends it to the
//! domain manager for guests. It keeps two bounded books:
//!
//! - the free pieces: memory-region capabilities in the broker's own
//!   capability space, every byte of them zeroed;
//! - the grants: which region went out under which tag, identified by the
//!   core's object index so that a region coming back can be recognised
//!   whatever slot it arrives in.
//!
//! A grant takes the best-fitting free piece, splits the rest off after
//! the requested size (MEM_SPLIT), hands the front part to the manager
//! (CAP_GRANT over the channel) and drops the broker's own copy. A return checks that the
//! region is one it granted, zeroes it (MEM_ZERO, in chunks the core
//! accepts) and files it as a free piece. Every page is therefore zeroed
//! before it is granted again; the broker zeroes its whole free memory
//! once at start, so the first grant is clean too. A region that comes
//! back in another length than lent is dropped unfiled and its grant
//! counted as lost memory ([`Broker::lost_bytes`]), which frees the
//! grant's record and tag.
//!
//! The hypercalls sit behind [`Ops`], so the books are tested on the host
//! against a fake; nothing here trusts a request: sizes, tags and slots
//! are all checked, and no request makes the broker panic or forget
//! memory it holds.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod proto;

use hypercall_abi::{Status, MEM_ZERO_MAX};
use proto::{Request, Response, MAX_GRANTS};

/// The granularity of every grant.
pub const PAGE: u64 = 4096;

/// The most bytes one zeroing call covers.
pub const ZERO_CHUNK: u64 = MEM_ZERO_MAX;

/// How many free pieces the broker keeps books for. A returned region is
/// joined with the free pieces it touches (`MEM_MERGE`), so memory lent
/// in parts comes back whole; a return that still finds the list full is
/// refused and the region stays on the grant's books until a later grant
/// makes room (see [`Broker::settle`]).
pub const MAX_PIECES: usize = 32;

/// The hypercalls the broker's books are kept with. Slots are the
/// broker's own capability slots.
pub trait Ops {
    /// Splits the region at `slot` at byte `offset`; the original keeps
    /// the first part; returns the slot of the second.
    fn split(&mut self, slot: u32, offset: u64) -> Result<u32, Status>;
    /// Sends a copy of the region at `slot` to the domain manager; returns
    /// the slot it arrived in, in the manager's space.
    fn grant(&mut self, slot: u32) -> Result<u32, Status>;
    /// Drops the capability at `slot`.
    fn delete(&mut self, slot: u32) -> Result<(), Status>;
    /// Zeroes `len` bytes at `offset` in the region at `slot` (page-aligned,
    /// at most [`ZERO_CHUNK`]).
    fn zero(&mut self, slot: u32, offset: u64, len: u64) -> Result<(), Status>;
    /// The core's object index of the region at `slot`
    /// ([`Status::WrongType`] if the slot holds something else).
    fn identify(&mut self, slot: u32) -> Result<u32, Status>;
    /// The length in bytes of the region at `slot` (`MEM_SIZE`).
    fn length(&mut self, slot: u32) -> Result<u64, Status>;
    /// Joins the region at `next`, which starts where the one at `slot`
    /// ends, into it (`MEM_MERGE`); `next`'s slot is emptied.
    fn merge(&mut self, slot: u32, next: u32) -> Result<(), Status>;
}

#[derive(Debug, Clone, Copy)]
struct Piece {
    slot: u32,
    bytes: u64,
    /// Where it starts, as an offset into the memory the broker got at
    /// boot: pieces that touch can be joined.
    at: u64,
}

#[derive(Debug, Clone, Copy)]
struct Grant {
    tag: u8,
    bytes: u64,
    /// As [`Piece::at`].
    at: u64,
    object: u32,
    /// Back in the broker's space (at this slot) but not yet zeroed and
    /// filed: zeroing failed or the free list was full.
    held: Option<u32>,
}

/// The broker's books.
#[derive(Debug)]
pub struct Broker {
    pieces: [Option<Piece>; MAX_PIECES],
    grants: [Option<Grant>; MAX_GRANTS],
    /// Bytes lent and returned in another shape (joined with another
    /// region, or cut short): dropped, never filed again, and counted here
    /// instead of on a grant's books, so that they take neither a grant
    /// record nor a tag.
    lost: u64,
}

fn to_kib(bytes: u64) -> u32 {
    u32::try_from(bytes / 1024).unwrap_or(u32::MAX)
}

impl Broker {
    /// Books with one free piece: the region at `slot`, `bytes` long (the
    /// `free` region of the broker's start info). A region shorter than a
    /// page, or not a whole number of pages, is used up to its last whole
    /// page.
    pub fn new(slot: u32, bytes: u64) -> Broker {
        let mut b = Broker {
            pieces: [None; MAX_PIECES],
            grants: [None; MAX_GRANTS],
            lost: 0,
        };
        let whole = bytes & !(PAGE - 1);
        if whole > 0 {
            b.pieces[0] = Some(Piece {
                slot,
                bytes: whole,
                at: 0,
            });
        }
        b
    }

    /// Zeroes every free piece (once, at start: the memory may hold
    /// anything the firmware or a boot loader left).
    pub fn zero_all(&mut self, ops: &mut dyn Ops) -> Result<(), Status> {
        for p in self.pieces.iter().flatten() {
            zero(ops, p.slot, p.bytes)?;
        }
        Ok(())
    }

    /// Free bytes (every one of them zeroed).
    pub fn free_bytes(&self) -> u64 {
        self.pieces.iter().flatten().map(|p| p.bytes).sum()
    }

    /// Bytes out on grants (including regions back but not yet filed).
    pub fn granted_bytes(&self) -> u64 {
        self.grants.iter().flatten().map(|g| g.bytes).sum()
    }

    /// Bytes returned in another shape than lent, and dropped.
    pub fn lost_bytes(&self) -> u64 {
        self.lost
    }

    /// Free pieces on the books.
    pub fn piece_count(&self) -> usize {
        self.pieces.iter().flatten().count()
    }

    /// Answers one request.
    pub fn handle(&mut self, request: Request, ops: &mut dyn Ops) -> Response {
        self.settle(ops);
        match request {
            Request::Grant { tag, kib } => self.grant(tag, kib, ops),
            Request::Return { tag, slot } => self.take_back(tag, slot, ops),
            Request::Totals => {
                let mut grants = [None; MAX_GRANTS];
                for (out, g) in grants.iter_mut().zip(self.grants.iter().flatten()) {
                    *out = Some((g.tag, to_kib(g.bytes)));
                }
                Response::Totals {
                    free_kib: self.free_bytes() / 1024,
                    grants,
                    lost_kib: self.lost / 1024,
                }
            }
        }
    }

    /// Files regions that came back but could not be filed then (zeroing
    /// failed or no room in the free list); called before every request.
    pub fn settle(&mut self, ops: &mut dyn Ops) {
        for i in 0..MAX_GRANTS {
            let Some(g) = self.grants[i] else { continue };
            let Some(slot) = g.held else { continue };
            match self.file(slot, g.bytes, g.at, ops) {
                Ok(()) => self.grants[i] = None,
                Err(Status::InvalidArgument) => self.drop_misshapen(i, slot, ops),
                Err(_) => {}
            }
        }
    }

    fn refuse(&self, tag: u8, status: Status) -> Response {
        Response::Refused {
            tag,
            status: status.raw() as u8,
            free_kib: self.free_bytes() / 1024,
        }
    }

    fn grant(&mut self, tag: u8, kib: u32, ops: &mut dyn Ops) -> Response {
        if kib == 0 {
            return self.refuse(tag, Status::InvalidArgument);
        }
        let bytes = (kib as u64 * 1024).div_ceil(PAGE) * PAGE;
        if self.grants.iter().flatten().any(|g| g.tag == tag) {
            return self.refuse(tag, Status::Denied);
        }
        let Some(record) = self.grants.iter().position(Option::is_none) else {
            return self.refuse(tag, Status::OutOfResources);
        };
        let best = self
            .pieces
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.filter(|p| p.bytes >= bytes).map(|p| (i, p)))
            .min_by_key(|(_, p)| p.bytes);
        let Some((index, piece)) = best else {
            return self.refuse(tag, Status::OutOfResources);
        };
        // The part to hand out is the front of the piece, so that grants
        // in multiples of 2 MiB from a 2 MiB-aligned piece stay aligned
        // (the core then maps them with large pages); the rest, split off
        // it, takes the piece's place in the books.
        let part = piece.slot;
        if piece.bytes == bytes {
            self.pieces[index] = None;
        } else {
            match ops.split(piece.slot, bytes) {
                Ok(rest) => {
                    self.pieces[index] = Some(Piece {
                        slot: rest,
                        bytes: piece.bytes - bytes,
                        at: piece.at + bytes,
                    });
                }
                Err(s) => return self.refuse(tag, s),
            }
        }
        let handed = ops
            .identify(part)
            .and_then(|object| ops.grant(part).map(|theirs| (object, theirs)));
        match handed {
            Ok((object, theirs)) => {
                let _ = ops.delete(part);
                self.grants[record] = Some(Grant {
                    tag,
                    bytes,
                    at: piece.at,
                    object,
                    held: None,
                });
                Response::Granted {
                    tag,
                    slot: theirs,
                    kib: to_kib(bytes),
                }
            }
            Err(s) => {
                // Keep the part as a piece again (it is still zeroed); if
                // there is no room for it, it stays on the books as a
                // grant held back under this tag.
                if let Some(i) = self.keep(part, bytes, piece.at) {
                    self.join(i, ops);
                } else {
                    self.grants[record] = Some(Grant {
                        tag,
                        bytes,
                        at: piece.at,
                        object: u32::MAX,
                        held: Some(part),
                    });
                }
                self.refuse(tag, s)
            }
        }
    }

    fn take_back(&mut self, tag: u8, slot: u32, ops: &mut dyn Ops) -> Response {
        let object = match ops.identify(slot) {
            Ok(o) => o,
            Err(s) => return self.refuse(tag, s),
        };
        let Some(i) = self
            .grants
            .iter()
            .position(|g| g.is_some_and(|g| g.held.is_none() && g.object == object))
        else {
            // Not a region the broker lent: drop it so that a confused or
            // hostile manager cannot fill the broker's capability space,
            // unless the slot is one the books hold (a free piece, a
            // region held back), which must stay.
            let ours = self.pieces.iter().flatten().any(|p| p.slot == slot)
                || self.grants.iter().flatten().any(|g| g.held == Some(slot));
            if !ours {
                let _ = ops.delete(slot);
            }
            return self.refuse(tag, Status::Denied);
        };
        let Some(mut g) = self.grants[i] else {
            return self.refuse(tag, Status::Denied);
        };
        match self.file(slot, g.bytes, g.at, ops) {
            Ok(()) => {
                self.grants[i] = None;
                Response::Returned {
                    tag: g.tag,
                    kib: to_kib(g.bytes),
                }
            }
            Err(Status::InvalidArgument) => {
                self.drop_misshapen(i, slot, ops);
                self.refuse(tag, Status::InvalidArgument)
            }
            Err(s) => {
                g.held = Some(slot);
                self.grants[i] = Some(g);
                self.refuse(tag, s)
            }
        }
    }

    /// A region came back under grant `i` but is not the length lent
    /// (the manager joined it with another region or split part of it
    /// off): filing it would put memory on the books under the wrong
    /// length, and a later grant could hand out pages never zeroed. The
    /// capability is dropped and the grant's memory counted as lost (see
    /// [`Broker::lost_bytes`]); its record and tag are free again, so a
    /// manager that keeps doing this cannot run the books out of records.
    fn drop_misshapen(&mut self, i: usize, slot: u32, ops: &mut dyn Ops) {
        let _ = ops.delete(slot);
        if let Some(g) = self.grants[i].take() {
            self.lost = self.lost.saturating_add(g.bytes);
        }
    }

    /// Zeroes a region and files it as a free piece, joined with the free
    /// pieces it touches. [`Status::InvalidArgument`]: the region is not
    /// `bytes` long (the object index that identified it survives
    /// `MEM_MERGE` and `MEM_SPLIT`, so says nothing of its length).
    fn file(&mut self, slot: u32, bytes: u64, at: u64, ops: &mut dyn Ops) -> Result<(), Status> {
        if !self.pieces.iter().any(Option::is_none) {
            return Err(Status::OutOfResources);
        }
        if ops.length(slot)? != bytes {
            return Err(Status::InvalidArgument);
        }
        zero(ops, slot, bytes)?;
        let i = self.keep(slot, bytes, at).ok_or(Status::OutOfResources)?;
        self.join(i, ops);
        Ok(())
    }

    /// Files a free piece; its index in the books.
    fn keep(&mut self, slot: u32, bytes: u64, at: u64) -> Option<usize> {
        let i = self.pieces.iter().position(Option::is_none)?;
        self.pieces[i] = Some(Piece { slot, bytes, at });
        Some(i)
    }

    /// Joins piece `i` with the free pieces right before and after it, so
    /// that memory handed back in pieces can be granted whole again and
    /// the books do not fill with fragments. A join the core refuses
    /// leaves the pieces apart (the books stay right either way).
    fn join(&mut self, mut i: usize, ops: &mut dyn Ops) {
        let Some(mut p) = self.pieces[i] else { return };
        let before = self
            .pieces
            .iter()
            .position(|q| q.is_some_and(|q| q.at.checked_add(q.bytes) == Some(p.at)));
        if let Some(j) = before {
            if let Some(mut q) = self.pieces[j] {
                if ops.merge(q.slot, p.slot).is_ok() {
                    q.bytes += p.bytes;
                    self.pieces[j] = Some(q);
                    self.pieces[i] = None;
                    (i, p) = (j, q);
                }
            }
        }
        let after = self
            .pieces
            .iter()
            .position(|q| q.is_some_and(|q| p.at.checked_add(p.bytes) == Some(q.at)));
        if let Some(k) = after {
            if let Some(q) = self.pieces[k] {
                if ops.merge(p.slot, q.slot).is_ok() {
                    p.bytes += q.bytes;
                    self.pieces[i] = Some(p);
                    self.pieces[k] = None;
                }
            }
        }
    }
}

/// Zeroes `bytes` of the region at `slot`, [`ZERO_CHUNK`] at a time.
fn zero(ops: &mut dyn Ops, slot: u32, bytes: u64) -> Result<(), Status> {
    let mut offset = 0;
    while offset < bytes {
        let len = (bytes - offset).min(ZERO_CHUNK);
        ops.zero(slot, offset, len)?;
        offset += len;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
