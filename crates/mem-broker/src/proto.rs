//! The messages on the channel `broker` between the domain manager (the
//! initiator) and the memory broker (the responder). Frames carry
//! [`VERSION`] in front (the ring's versioned push and pop), so a broker
//! and a manager built from different protocol versions refuse each other
//! instead of misreading fields.

use serde::{Deserialize, Serialize};

/// The protocol version; bump it on any change to these types.
pub const VERSION: u16 = 2;

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
    /// Free memory, the grants as (tag, KiB), and the memory lost to
    /// returns in another shape than lent.
    Totals {
        /// Free memory (all of it zeroed).
        free_kib: u64,
        /// The grants as (tag, KiB), in no particular order.
        grants: [Option<(u8, u32)>; MAX_GRANTS],
        /// Memory returned joined with other memory or cut short, which
        /// the broker dropped rather than file under the wrong length.
        lost_kib: u64,
    },
}

impl Response {
    /// Whether this is the answer to `request`: the same tag for a grant or
    /// a return, totals for totals. An answer that came after its request
    /// timed out is not the answer to the next one.
    pub fn answers(&self, request: &Request) -> bool {
        match (request, *self) {
            (
                Request::Grant { tag, .. },
                Response::Granted { tag: t, .. } | Response::Refused { tag: t, .. },
            )
            | (
                Request::Return { tag, .. },
                Response::Returned { tag: t, .. } | Response::Refused { tag: t, .. },
            ) => *tag == t,
            (Request::Totals, Response::Totals { .. }) => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_match_requests_by_kind_and_tag() {
        let grant = Request::Grant { tag: 3, kib: 64 };
        let give = Request::Return { tag: 3, slot: 9 };
        let granted = |tag| Response::Granted {
            tag,
            slot: 5,
            kib: 64,
        };
        let refused = |tag| Response::Refused {
            tag,
            status: 1,
            free_kib: 0,
        };
        let returned = |tag| Response::Returned { tag, kib: 64 };
        let totals = Response::Totals {
            free_kib: 0,
            grants: [None; MAX_GRANTS],
            lost_kib: 0,
        };
        assert!(granted(3).answers(&grant));
        assert!(refused(3).answers(&grant));
        assert!(!granted(2).answers(&grant), "a late grant of another tag");
        assert!(!returned(3).answers(&grant));
        assert!(!totals.answers(&grant));
        assert!(returned(3).answers(&give));
        assert!(refused(3).answers(&give));
        assert!(!returned(4).answers(&give));
        assert!(!granted(3).answers(&give));
        assert!(totals.answers(&Request::Totals));
        assert!(!refused(0).answers(&Request::Totals));
        assert!(!granted(0).answers(&Request::Totals));
    }
}
