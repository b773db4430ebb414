//! Test memory shared by the integration tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use serde::{Deserialize, Serialize};
use shm_ring::{Ring, RingError, HEADER_LEN};

/// Memory a test can scribble on (as "the peer") while a ring uses it:
/// interior-mutable 64-bit words (aligned as a ring needs), followed by
/// guard words that must stay intact.
pub struct Mem {
    words: Box<[AtomicU64]>,
    len: usize,
}

pub const GUARD: u64 = 0xDEAD_BEEF_DEAD_BEEF;

impl Mem {
    /// `HEADER_LEN + size` zeroed bytes.
    pub fn with_size(size: u32) -> Self {
        let len = HEADER_LEN + size as usize;
        let words = (0..len / 8 + 8)
            .map(|i| AtomicU64::new(if i < len / 8 { 0 } else { GUARD }))
            .collect();
        Self { words, len }
    }

    pub fn ptr(&self) -> *mut u8 {
        self.words.as_ptr().cast::<u8>().cast_mut()
    }

    pub fn init(&self) -> Ring<'_> {
        // SAFETY: the words live as long as the borrow of `self`, are
        // aligned to 8 and only ever accessed atomically.
        unsafe { Ring::init_raw(self.ptr(), self.len) }.unwrap()
    }

    pub fn attach(&self) -> Result<Ring<'_>, RingError> {
        // SAFETY: as in `init`.
        unsafe { Ring::attach_raw(self.ptr(), self.len) }
    }

    /// Number of 32-bit words in the area (guards excluded).
    pub fn words(&self) -> usize {
        self.len / 4
    }

    /// Stores the little-endian `u32` `v` as the area's `i`-th 32-bit word.
    pub fn set_word_at(&self, i: usize, v: u32) {
        let w = &self.words[i / 2];
        let mut b = w.load(SeqCst).to_le_bytes();
        b[(i % 2) * 4..][..4].copy_from_slice(&v.to_le_bytes());
        w.store(u64::from_le_bytes(b), SeqCst);
    }

    pub fn guards_intact(&self) -> bool {
        self.words[self.len / 8..]
            .iter()
            .all(|w| w.load(SeqCst) == GUARD)
    }
}

/// A message type with variable-size variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Msg {
    Ping(u32),
    Data { id: u16, bytes: Vec<u8> },
    Text(String),
    Pair(u64, i8),
}

/// Deterministic payload bytes.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seed.wrapping_mul(31).wrapping_add(i as u64 * 7)) as u8)
        .collect()
}
