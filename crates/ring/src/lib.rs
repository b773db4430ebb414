//! `shm-ring` is Bulkhead's single-producer single-consumer message ring
//! over shared memory: the byte layout of a ring in a channel's pages, the
//! producer and consumer halves that move postcard-encoded messages through
//! it, and [`Channel`], two rings (request and response) over one area.
//!
//! It owns only the ring protocol; it never maps memory, never notifies the
//! peer (that is `CHANNEL_NOTIFY`/`CHANNEL_WAIT` in `rt`) and never trusts
//! what the peer wrote: every index and length prefix read from shared
//! memory is bounds-checked before use and a violation becomes
//! [`RingError::Corrupt`]. It must never read or write outside the area it
//! was given, never panic on any contents of that area, and never overwrite
//! a frame the consumer has not released.
//!
//! # Layout
//!
//! | offset            | size   | field                                         |
//! |-------------------|--------|-----------------------------------------------|
//! | 0                 | 4      | magic [`MAGIC`] (`"BkRg"`, little-endian u32) |
//! | 4                 | 4      | layout version [`LAYOUT_VERSION`]             |
//! | 8                 | 4      | data size `N` (power of two, ≥ 16)            |
//! | 64                | 4      | producer index (own 64-byte line)             |
//! | 128               | 4      | consumer index (own 64-byte line)             |
//! | 192 ([`HEADER_LEN`]) | `N` | data area                                     |
//!
//! Indices are free-running wrapping `u32` byte counters, always multiples
//! of [`FRAME_ALIGN`] (8); a byte at index `i` lives at `HEADER_LEN + i %
//! N`. A frame is a little-endian `u32` payload length followed by the
//! payload, padded with zero bytes to a multiple of 8 ([`frame_size`]), so
//! the length and the first 4 payload bytes share one 64-bit word and every
//! frame is copied in whole aligned words. Frames are packed back to back
//! and wrap around the end of the data area only between words (`N` is a
//! multiple of 8; there is no padding marker). `producer - consumer` is the
//! number of published, unread bytes and is always `<= N`.
//!
//! # Ordering
//!
//! The producer writes the payload and prefix, then stores the producer
//! index with `Release`; the consumer loads it with `Acquire`, copies the
//! frame out, then stores the consumer index with `Release` (once it has
//! reached the last frame it knows of, or a quarter of the data area
//! since its last store: [`Consumer::unreleased`]); the producer
//! loads that with `Acquire` before reusing the space. Data is accessed
//! as `Relaxed` atomics (64-bit words; bytes only where a large message
//! is encoded straight into the ring) so a misbehaving peer cannot cause a
//! data race on our side. Under `--cfg
//! loom` the atomics come from `loom` (see `tests/loom.rs`).
//!
//! Each half keeps its own index privately and only publishes it; it never
//! reads its own index back from shared memory.
//!
//! In host builds a consumer whose next frame ends inside the cache line
//! its producer is still filling waits a few spins for the producer to
//! finish that line before reading it (and stops waiting for a while
//! when a wait runs out); the frames it returns, their order and the
//! checks they pass are the same as without the wait.
#![cfg_attr(not(test), no_std)]

#[cfg(loom)]
extern crate std;

#[cfg(not(loom))]
mod arch;
#[cfg(not(loom))]
mod channel;
mod error;
mod ring;
mod shared;
mod sync;

#[cfg(not(loom))]
pub use channel::{Channel, End};
pub use error::{Corruption, LayoutError, RingError, Stats};
pub use ring::{Consumer, Envelope, Producer, Ring};

/// Magic word at offset 0: `"BkRg"` read as a little-endian `u32`.
pub const MAGIC: u32 = u32::from_le_bytes(*b"BkRg");
/// Layout version at offset 4; bumped on any change to this layout.
pub const LAYOUT_VERSION: u32 = 2;
/// Offset of the magic word.
pub const OFF_MAGIC: usize = 0;
/// Offset of the layout version.
pub const OFF_VERSION: usize = 4;
/// Offset of the data size.
pub const OFF_SIZE: usize = 8;
/// Offset of the producer index (second cache line).
pub const OFF_PRODUCER: usize = 64;
/// Offset of the consumer index (third cache line).
pub const OFF_CONSUMER: usize = 128;
/// Size of the header; the data area starts here.
pub const HEADER_LEN: usize = 192;
/// Required alignment of the memory (that of `AtomicU64`, the unit frames
/// are copied in; domains hand in page-aligned memory, which also keeps
/// the indices on their own lines).
pub const ALIGN: usize = 8;
/// Smallest data area.
pub const MIN_DATA_SIZE: u32 = 16;
/// Largest data area (indices must be able to tell full from empty).
pub const MAX_DATA_SIZE: u32 = 1 << 31;
/// Bytes of the length prefix in front of every frame.
pub const LEN_PREFIX: u32 = 4;
/// Every frame starts at an index that is a multiple of this, and takes
/// a multiple of this many bytes.
pub const FRAME_ALIGN: u32 = 8;

/// Bytes a frame with `len` payload bytes takes in the data area: the
/// prefix and the payload rounded up to [`FRAME_ALIGN`]. `len` must be at
/// most [`MAX_DATA_SIZE`] − [`LEN_PREFIX`] (larger never fits a ring).
pub const fn frame_size(len: u32) -> u32 {
    (len + LEN_PREFIX + (FRAME_ALIGN - 1)) & !(FRAME_ALIGN - 1)
}

/// Memory for one ring whose words and bytes are loom atomics (loom cannot
/// overlay its atomics on raw memory). Model checking only.
#[cfg(loom)]
pub struct LoomMem {
    words: [sync::AtomicU32; 5],
    data: std::boxed::Box<[sync::AtomicU8]>,
}

#[cfg(loom)]
impl LoomMem {
    /// Memory with a data area of `size` bytes (a power of two >= 16).
    pub fn new(size: u32) -> Self {
        assert!(size.is_power_of_two() && size >= MIN_DATA_SIZE);
        Self {
            words: core::array::from_fn(|_| sync::AtomicU32::new(0)),
            data: (0..size).map(|_| sync::AtomicU8::new(0)).collect(),
        }
    }
}

#[cfg(test)]
mod tests;
