//! Two rings over one memory area: a request ring and a response ring.

use crate::error::RingError;
use crate::ring::{Consumer, Producer, Ring};

/// A bidirectional channel: the memory area is cut in two halves (the
/// first rounded down to a multiple of 64 bytes); the first half is the
/// request ring (initiator → responder), the second the response ring
/// (responder → initiator).
pub struct Channel<'a> {
    request: Ring<'a>,
    response: Ring<'a>,
}

/// Where the second half starts in a channel area of `len` bytes.
fn half(len: usize) -> usize {
    (len / 2) & !63
}

impl<'a> Channel<'a> {
    /// Formats both rings in `mem` (only one side calls this).
    pub fn init(mem: &'a mut [u8]) -> Result<Self, RingError> {
        let (a, b) = mem.split_at_mut(half(mem.len()));
        Ok(Self {
            request: Ring::init(a)?,
            response: Ring::init(b)?,
        })
    }

    /// Checks and adopts both rings' headers in `mem`.
    pub fn attach(mem: &'a mut [u8]) -> Result<Self, RingError> {
        let (a, b) = mem.split_at_mut(half(mem.len()));
        Ok(Self {
            request: Ring::attach(a)?,
            response: Ring::attach(b)?,
        })
    }

    /// [`Channel::init`] over raw shared memory.
    ///
    /// # Safety
    ///
    /// As for [`Ring::init_raw`] over the whole area.
    pub unsafe fn init_raw(ptr: *mut u8, len: usize) -> Result<Self, RingError> {
        let h = half(len);
        // SAFETY: both halves lie inside the caller's area and do not
        // overlap; `h` is a multiple of 64 so the second stays aligned.
        unsafe {
            Ok(Self {
                request: Ring::init_raw(ptr, h)?,
                response: Ring::init_raw(ptr.add(h), len - h)?,
            })
        }
    }

    /// [`Channel::attach`] over raw shared memory.
    ///
    /// # Safety
    ///
    /// As for [`Ring::init_raw`] over the whole area.
    pub unsafe fn attach_raw(ptr: *mut u8, len: usize) -> Result<Self, RingError> {
        let h = half(len);
        // SAFETY: as in `init_raw`.
        unsafe {
            Ok(Self {
                request: Ring::attach_raw(ptr, h)?,
                response: Ring::attach_raw(ptr.add(h), len - h)?,
            })
        }
    }

    /// Both ends, for two threads of one process: `(initiator, responder)`.
    pub fn split(self) -> (End<'a>, End<'a>) {
        let (req_tx, req_rx) = self.request.split();
        let (resp_tx, resp_rx) = self.response.split();
        (
            End {
                tx: req_tx,
                rx: resp_rx,
            },
            End {
                tx: resp_tx,
                rx: req_rx,
            },
        )
    }

    /// The initiator's end: sends requests, receives responses.
    pub fn into_initiator(self) -> End<'a> {
        End {
            tx: self.request.into_producer(),
            rx: self.response.into_consumer(),
        }
    }

    /// The responder's end: receives requests, sends responses.
    pub fn into_responder(self) -> End<'a> {
        End {
            tx: self.response.into_producer(),
            rx: self.request.into_consumer(),
        }
    }
}

/// One side of a [`Channel`]: the ring it sends on and the ring it
/// receives on.
pub struct End<'a> {
    tx: Producer<'a>,
    rx: Consumer<'a>,
}

impl<'a> End<'a> {
    /// The ring this side sends on.
    pub fn tx(&self) -> &Producer<'a> {
        &self.tx
    }

    /// The ring this side receives on.
    pub fn rx(&self) -> &Consumer<'a> {
        &self.rx
    }

    /// `(tx, rx)` by value, e.g. to move them to different threads.
    pub fn into_parts(self) -> (Producer<'a>, Consumer<'a>) {
        (self.tx, self.rx)
    }

    /// Resets both rings ([`Producer::reset`]; same rule on who may call
    /// it: the side that called [`Channel::init`], with the peer quiet).
    pub fn reset(&self) {
        self.tx.reset();
        self.rx.reset();
    }

    /// Re-adopts both rings' headers after the peer's [`End::reset`].
    pub fn resync(&self) -> Result<(), RingError> {
        self.tx.resync()?;
        self.rx.resync()
    }
}
