//! The messages on the channel `broker` between the domain manager (the
//! initiator) and the memory broker (the responder). Frames carry
//! [`VERSION`] in front (the ring's versioned push and pop), so a broker
//! and a manager built from different protocol versions refuse each other
//! instead of misreading fields.

use serde::{Deserialize, Serialize};

/// The protocol version; bump it on any change to these types.
pub const VERSION: u16 = 1;

/// How many grants the broker keeps books for at once.
pub const MAX_GRANTS: usize = 8;

/// What the domain manager asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// A region of at least `kib` KiB (rounded up to whole pages), granted
    /// to the manager's capability space and recorded under `tag` (the
    /// manager uses the domain's shell id). One grant per tag at a time.
    Grant {
        /// The manager's name for the grant.
        tag: u8,
        /// The size wanted.
        kib: u32,
    },
    /// The region granted under `tag` comes back; `slot` is where the
    /// manager's grant put it in the broker's capability space.
    Return {
        /// The tag it was granted under.
        tag: u8,
        /// The broker's slot holding it now.
        slot: u32,
    },
    /// The free total and every grant.
    Totals,
}

/// What the broker answers, one response per request, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The region is at `slot` in the manager's space, `kib` KiB long.
    Granted {
        /// The request's tag.
        tag: u8,
        /// The region's slot in the manager's capability space.
        slot: u32,
        /// Its size.
        kib: u32,
    },
    /// The region is back, zeroed and free again.
    Returned {
        /// The tag it had been granted under.
        tag: u8,
        /// Its size.
        kib: u32,
    },
    /// The request was refused: `status` is a `hypercall_abi::Status`
    /// number (`OutOfResources`: not enough free memory or no room in the
    /// books; `InvalidArgument`: a zero size; `Denied`: a tag that already
    /// holds a grant, or a region the broker did not grant), `free_kib` is
    /// what is free now.
    Refused {
        /// The request's tag.
        tag: u8,
        /// Why, as a status number.
        status: u8,
        /// Free memory now.
        free_kib: u64,
    },
    /// Free memory and the grants as (tag, KiB).
    Totals {
        /// Free memory (all of it zeroed).
        free_kib: u64,
        /// The grants as (tag, KiB), in no particular order.
        grants: [Option<(u8, u32)>; MAX_GRANTS],
    },
}
