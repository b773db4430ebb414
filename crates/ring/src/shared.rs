//! Views of the shared header and data area, and the wrapping copies.
//!
//! Every access to shared memory goes through an atomic (`AtomicU32` for
//! header words, `AtomicU8` with `Relaxed` ordering for data bytes), so a
//! peer writing concurrently, even maliciously, can change the values we
//! read but never causes undefined behaviour on our side. Payload bytes
//! are copied once into private memory before anything interprets them.

use crate::error::Corruption;
#[cfg(not(loom))]
use crate::error::{LayoutError, RingError};
use crate::sync::{AtomicU32, AtomicU8, Ordering};
#[cfg(not(loom))]
use crate::{
    ALIGN, HEADER_LEN, MAX_DATA_SIZE, MIN_DATA_SIZE, OFF_CONSUMER, OFF_MAGIC, OFF_PRODUCER,
    OFF_SIZE, OFF_VERSION,
};
use crate::{LAYOUT_VERSION, MAGIC};

/// References into one ring's shared memory plus the data size this side
/// validated (never re-read from the peer).
#[derive(Clone, Copy)]
pub(crate) struct Shared<'a> {
    pub(crate) magic: &'a AtomicU32,
    pub(crate) version: &'a AtomicU32,
    pub(crate) size_word: &'a AtomicU32,
    pub(crate) producer: &'a AtomicU32,
    pub(crate) consumer: &'a AtomicU32,
    data: &'a [AtomicU8],
    /// Data size (a power of two); `data.len() == size`.
    pub(crate) size: u32,
}

#[cfg(not(loom))]
/// Largest power-of-two data size that fits `len` bytes of memory, or an
/// error when the memory is misaligned or too small.
pub(crate) fn data_size_for(addr: usize, len: usize) -> Result<u32, RingError> {
    if !addr.is_multiple_of(ALIGN) {
        return Err(RingError::Layout {
            what: LayoutError::Misaligned,
        });
    }
    let avail = len.saturating_sub(HEADER_LEN);
    if avail < MIN_DATA_SIZE as usize {
        return Err(RingError::Layout {
            what: LayoutError::TooSmall,
        });
    }
    let avail = avail.min(MAX_DATA_SIZE as usize);
    // `avail` >= 16, so ilog2 is defined and the shift stays below 2^31.
    Ok(1u32 << avail.ilog2())
}

#[cfg(not(loom))]
/// Whether `size` is an acceptable data size for `len` bytes of memory.
pub(crate) fn size_fits(size: u32, len: usize) -> bool {
    size.is_power_of_two()
        && (MIN_DATA_SIZE..=MAX_DATA_SIZE).contains(&size)
        && (size as usize) <= len.saturating_sub(HEADER_LEN)
}

impl<'a> Shared<'a> {
    /// Views `HEADER_LEN + size` bytes at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` is aligned to [`ALIGN`] and valid for reads and writes of
    /// `HEADER_LEN + size` bytes for `'a`; during `'a` every other access
    /// to those bytes from this address space is atomic (another domain's
    /// accesses are outside this program and may be anything).
    #[cfg(not(loom))]
    pub(crate) unsafe fn from_raw(ptr: *mut u8, size: u32) -> Self {
        let word = |off: usize| -> &'a AtomicU32 {
            // SAFETY: `off` is one of the header offsets (a multiple of 4,
            // `off + 4 <= HEADER_LEN`), so the word is in bounds and aligned
            // because `ptr` is; the caller guarantees validity for `'a` and
            // that all concurrent accesses are atomic.
            unsafe { AtomicU32::from_ptr(ptr.add(off).cast::<u32>()) }
        };
        // SAFETY: `HEADER_LEN + size` bytes are valid per the caller;
        // `AtomicU8` has the size and alignment of `u8`, and all concurrent
        // accesses are atomic per the caller.
        let data = unsafe {
            core::slice::from_raw_parts(ptr.add(HEADER_LEN).cast::<AtomicU8>(), size as usize)
        };
        Self {
            magic: word(OFF_MAGIC),
            version: word(OFF_VERSION),
            size_word: word(OFF_SIZE),
            producer: word(OFF_PRODUCER),
            consumer: word(OFF_CONSUMER),
            data,
            size,
        }
    }

    /// Reads the magic (Acquire) and size words of the header at `ptr`
    /// (used before the data size is known).
    ///
    /// # Safety
    ///
    /// As for [`Shared::from_raw`] with `size = 0`.
    #[cfg(not(loom))]
    pub(crate) unsafe fn peek(ptr: *mut u8) -> (u32, u32) {
        // SAFETY: forwarded contract; the header alone is in bounds.
        let h = unsafe { Self::from_raw(ptr, 0) };
        (
            h.magic.load(Ordering::Acquire),
            h.size_word.load(Ordering::Relaxed),
        )
    }

    #[cfg(loom)]
    pub(crate) fn from_loom(mem: &'a crate::LoomMem) -> Self {
        Self {
            magic: &mem.words[0],
            version: &mem.words[1],
            size_word: &mem.words[2],
            producer: &mem.words[3],
            consumer: &mem.words[4],
            data: &mem.data,
            size: mem.data.len() as u32,
        }
    }

    /// Writes a fresh header: both indices 0, then the magic last (Release)
    /// so a peer that sees the magic (Acquire) sees the rest.
    pub(crate) fn write_fresh_header(&self) {
        self.magic.store(0, Ordering::Relaxed);
        self.version.store(LAYOUT_VERSION, Ordering::Relaxed);
        self.size_word.store(self.size, Ordering::Relaxed);
        self.producer.store(0, Ordering::Relaxed);
        self.consumer.store(0, Ordering::Relaxed);
        self.magic.store(MAGIC, Ordering::Release);
    }

    /// Cheap per-operation check that the peer has not rewritten the
    /// constant header words.
    #[inline]
    pub(crate) fn check_constants(&self) -> Result<(), Corruption> {
        let found = self.magic.load(Ordering::Relaxed);
        if found != MAGIC {
            return Err(Corruption::BadMagic { found });
        }
        let found = self.size_word.load(Ordering::Relaxed);
        if found != self.size {
            return Err(Corruption::BadSize { found });
        }
        Ok(())
    }

    /// Full header check (attach, resync): magic, layout version, size and
    /// `producer - consumer <= size`. Returns `(producer, consumer)`.
    pub(crate) fn check_header(&self) -> Result<(u32, u32), Corruption> {
        let found = self.magic.load(Ordering::Acquire);
        if found != MAGIC {
            return Err(Corruption::BadMagic { found });
        }
        let found = self.version.load(Ordering::Relaxed);
        if found != LAYOUT_VERSION {
            return Err(Corruption::BadLayoutVersion { found });
        }
        self.check_constants()?;
        let consumer = self.consumer.load(Ordering::Acquire);
        let producer = self.producer.load(Ordering::Acquire);
        if producer.wrapping_sub(consumer) > self.size {
            return Err(Corruption::ProducerIndex {
                consumer,
                last: consumer,
                found: producer,
            });
        }
        Ok((producer, consumer))
    }

    /// The data bytes from position `idx % size` onwards, then from 0:
    /// exactly `size` bytes, wrapping once.
    #[inline]
    fn from(&self, idx: u32) -> impl Iterator<Item = &'a AtomicU8> {
        let start = (idx & (self.size.wrapping_sub(1))) as usize;
        // `start < size == data.len()` (and `data` is empty only when
        // `size == 0`, where `start == 0`), so this split never panics.
        let (a, b) = self.data.split_at(start.min(self.data.len()));
        b.iter().chain(a.iter())
    }

    /// Copies `bytes` into the data area starting at index `idx`, wrapping
    /// at the end. Writes at most `size` bytes.
    #[inline]
    pub(crate) fn write(&self, idx: u32, bytes: &[u8]) {
        for (cell, b) in self.from(idx).zip(bytes) {
            cell.store(*b, Ordering::Relaxed);
        }
    }

    /// Copies from the data area starting at index `idx` into `out`,
    /// wrapping at the end. Reads at most `size` bytes.
    #[inline]
    pub(crate) fn read(&self, idx: u32, out: &mut [u8]) {
        for (cell, b) in self.from(idx).zip(out) {
            *b = cell.load(Ordering::Relaxed);
        }
    }

    /// Little-endian u32 at index `idx` (wrapping).
    #[inline]
    pub(crate) fn read_u32(&self, idx: u32) -> u32 {
        let mut b = [0u8; 4];
        self.read(idx, &mut b);
        u32::from_le_bytes(b)
    }
}
