//! Views of the shared header and data area, and the wrapping copies.
//!
//! Every access to shared memory goes through an atomic (`AtomicU32` for
//! header words, `Relaxed` `AtomicU8` bytes and, inside long runs,
//! `AtomicU64` words for data), so a
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
use crate::{FRAME_ALIGN, LAYOUT_VERSION, LEN_PREFIX, MAGIC};
#[cfg(not(loom))]
use core::sync::atomic::AtomicU64;

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

    /// Full header check (attach, resync): magic, layout version, size,
    /// both indices multiples of 8 and `producer - consumer <= size`. Returns `(producer, consumer)`.
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
        if producer.wrapping_sub(consumer) > self.size
            || !producer.is_multiple_of(FRAME_ALIGN)
            || !consumer.is_multiple_of(FRAME_ALIGN)
        {
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

    /// The `len` data bytes from position `idx % size` when they do not
    /// wrap around the end (the usual case for a short run).
    #[inline]
    fn unwrapped(&self, idx: u32, len: usize) -> Option<&'a [AtomicU8]> {
        let start = (idx & (self.size.wrapping_sub(1))) as usize;
        self.data.get(start..start.checked_add(len)?)
    }

    /// The data area as its two runs from position `idx % size`: to the
    /// end, then from 0, cut to `len` bytes in all (at most `size`).
    #[inline]
    fn runs(&self, idx: u32, len: usize) -> (&'a [AtomicU8], &'a [AtomicU8]) {
        let start = (idx & (self.size.wrapping_sub(1))) as usize;
        // As in `from`: never panics.
        let (a, b) = self.data.split_at(start.min(self.data.len()));
        let first = len.min(b.len());
        let second = (len - first).min(a.len());
        (&b[..first], &a[..second])
    }

    /// Copies `bytes` into the data area starting at index `idx`, wrapping
    /// at the end. Writes at most `size` bytes.
    #[inline]
    pub(crate) fn write(&self, idx: u32, bytes: &[u8]) {
        if bytes.len() < SMALL {
            match self.unwrapped(idx, bytes.len()) {
                Some(cells) => {
                    for (cell, b) in cells.iter().zip(bytes) {
                        cell.store(*b, Ordering::Relaxed);
                    }
                }
                None => {
                    for (cell, b) in self.from(idx).zip(bytes) {
                        cell.store(*b, Ordering::Relaxed);
                    }
                }
            }
        } else {
            self.write_long(idx, bytes);
        }
    }

    /// [`Shared::write`] of a long run: in words where it can.
    #[inline(never)]
    fn write_long(&self, idx: u32, bytes: &[u8]) {
        let (one, two) = self.runs(idx, bytes.len());
        let (b1, b2) = bytes.split_at(one.len());
        store_run(one, b1);
        if !two.is_empty() {
            store_run(two, b2);
        }
    }

    /// The data word holding index `idx` (rounded down to a multiple of 8).
    #[cfg(not(loom))]
    #[inline]
    fn word(&self, idx: u32) -> &'a AtomicU64 {
        let pos = (idx & self.size.wrapping_sub(1) & !7) as usize;
        // SAFETY: `size` is a power of two >= 16 and `data` holds exactly
        // `size` cells (or none when `size == 0`, the header-only view that
        // never reaches here), so `pos + 8 <= size`; the data area starts
        // at `HEADER_LEN` (a multiple of 8) from memory aligned to `ALIGN`
        // (8), so the word is aligned.
        unsafe { word64(self.data.get_unchecked(pos..pos + 8)) }
    }

    /// The `n` data words from index `idx` (a multiple of 8; the low bits
    /// are ignored) when they do not wrap around the end of the data area:
    /// the common case, copied without index arithmetic per word.
    #[cfg(not(loom))]
    #[inline]
    fn contiguous_words(&self, idx: u32, n: usize) -> Option<&'a [AtomicU64]> {
        let pos = (idx & self.size.wrapping_sub(1) & !7) as usize;
        let cells = self.data.get(pos..pos.checked_add(n.checked_mul(8)?)?)?;
        // SAFETY: `pos` is a multiple of 8 and the data area starts 8-aligned
        // (as in `word`), so the run is `n` aligned words inside `data`;
        // `AtomicU64` has the layout of `[AtomicU8; 8]` at that alignment
        // and both allow shared mutation.
        Some(unsafe { core::slice::from_raw_parts(cells.as_ptr().cast::<AtomicU64>(), n) })
    }

    /// Hints the CPU to fetch the cache line holding index `idx` (no
    /// access in the memory model's sense; nothing under loom).
    #[inline]
    pub(crate) fn prefetch(&self, idx: u32) {
        #[cfg(not(loom))]
        crate::arch::prefetch_read(self.word(idx).as_ptr().cast_const().cast());
        #[cfg(loom)]
        let _ = idx;
    }

    /// Hints the CPU to move every cache line of the data area that the
    /// index range `from..to` completes out of this core's private caches
    /// (no access in the memory model's sense; nothing under loom or on
    /// bare metal; the halves call it only where the CPU has CLDEMOTE, on
    /// others the loop would run NOPs). A line counts as complete once the
    /// range reaches its end: the line holding `to` itself, which the next
    /// frame continues, is left alone, since demoting a line this core
    /// writes or reads again right after costs more than it saves
    /// (docs/BENCHMARKS.md).
    /// Lines are those of the index space, which are the CPU's when the
    /// data area starts on a 64-byte boundary (page-aligned ring memory);
    /// otherwise the hint lands a little off, which costs time but never
    /// correctness.
    #[inline]
    pub(crate) fn demote_lines(&self, from: u32, to: u32) {
        #[cfg(not(loom))]
        if crate::arch::HINTS {
            for line in completed_lines(from, to) {
                crate::arch::demote(self.word(line).as_ptr().cast_const().cast());
            }
        }
        #[cfg(loom)]
        let _ = (from, to);
    }

    /// Hints the CPU to move the cache line holding index `idx` out of
    /// this core's private caches when `idx` falls inside the line rather
    /// than at its start (nothing under loom or on bare metal): the line a
    /// caught-up consumer stopped in, which the producer fills next.
    #[inline]
    pub(crate) fn demote_line_within(&self, idx: u32) {
        // The range from `idx` to the last byte of its line completes
        // that line, and is empty when `idx` is the line's start.
        #[cfg(not(loom))]
        self.demote_lines(idx, idx.wrapping_add(LINE - 1));
        #[cfg(loom)]
        let _ = idx;
    }

    /// Whether the index `end` lies inside the cache line that the index
    /// `tail` (at or past `end`) has not yet reached the end of: a frame
    /// ending at `end`, with the producer at `tail`, ends in the line the
    /// producer fills next. Always false under loom.
    #[inline]
    pub(crate) fn in_open_line(&self, end: u32, tail: u32) -> bool {
        #[cfg(not(loom))]
        return ends_in_open_line(end, tail);
        #[cfg(loom)]
        {
            let _ = (end, tail);
            false
        }
    }

    /// Stores the little-endian word `value` at index `idx` (a multiple
    /// of 8; the low bits are ignored).
    #[inline]
    pub(crate) fn store_word(&self, idx: u32, value: u64) {
        #[cfg(not(loom))]
        self.word(idx).store(value.to_le(), Ordering::Relaxed);
        #[cfg(loom)]
        for (cell, b) in self.from(idx & !7).zip(value.to_le_bytes()) {
            cell.store(b, Ordering::Relaxed);
        }
    }

    /// Loads the little-endian word at index `idx` (a multiple of 8; the
    /// low bits are ignored).
    #[inline]
    pub(crate) fn load_word(&self, idx: u32) -> u64 {
        #[cfg(not(loom))]
        return u64::from_le(self.word(idx).load(Ordering::Relaxed));
        #[cfg(loom)]
        {
            let mut b = [0u8; 8];
            for (cell, b) in self.from(idx & !7).zip(&mut b) {
                *b = cell.load(Ordering::Relaxed);
            }
            u64::from_le_bytes(b)
        }
    }

    /// Writes one whole frame at index `idx` (a multiple of 8): the length
    /// of `bytes` as the prefix, `bytes`, zero padding to a multiple of 8,
    /// all in word stores. The caller checked that
    /// [`frame_size`](crate::frame_size)`(bytes.len())` bytes are free.
    #[inline]
    pub(crate) fn write_frame(&self, idx: u32, bytes: &[u8]) {
        let words = (bytes.len() + LEN_PREFIX as usize).div_ceil(8);
        #[cfg(not(loom))]
        if words > CONTIGUOUS_FROM {
            if let Some(cells) = self.contiguous_words(idx, words) {
                return write_words(cells, bytes);
            }
        }
        let mut at = idx;
        for i in 0..words {
            self.store_word(at, frame_word(bytes, i));
            at = at.wrapping_add(8);
        }
    }

    /// Copies the payload of the frame at index `idx` (a multiple of 8),
    /// whose first word `first_word` was already loaded, into `out` (the
    /// payload's length, validated by the caller), in word loads, or in
    /// 16-byte loads on the host when the payload is long enough and does
    /// not wrap.
    #[inline]
    pub(crate) fn read_frame(&self, idx: u32, first_word: u64, out: &mut [u8]) {
        let len = out.len();
        let head = (first_word >> 32).to_le_bytes();
        if len >= 4 {
            out[..4].copy_from_slice(&head[..4]);
        } else {
            for (o, b) in out.iter_mut().zip(head) {
                *o = b;
            }
            return;
        }
        #[cfg(not(loom))]
        {
            // The payload after its first four bytes starts at the frame's
            // second word.
            let rest = len - 4;
            if crate::arch::WIDE_LOADS && rest >= 16 {
                let pos = (idx & self.size.wrapping_sub(1) & !7) as usize + 8;
                if let Some(cells) = self.data.get(pos..pos + rest) {
                    return read_wide(cells, &mut out[4..]);
                }
            }
            let words = (len + LEN_PREFIX as usize).div_ceil(8);
            if words > CONTIGUOUS_FROM {
                if let Some(cells) = self.contiguous_words(idx, words) {
                    return read_words(&cells[1..], &mut out[4..]);
                }
            }
        }
        // Payload bytes `8 * i - 4 ..` are in word `i` of the frame.
        let mut o = 4;
        let mut at = idx.wrapping_add(8);
        while o + 8 <= len {
            let w = self.load_word(at).to_le_bytes();
            out[o..o + 8].copy_from_slice(&w);
            o += 8;
            at = at.wrapping_add(8);
        }
        if o < len {
            let w = self.load_word(at).to_le_bytes();
            for (o, b) in out[o..].iter_mut().zip(w) {
                *o = b;
            }
        }
    }
}

/// Writes the frame carrying `bytes` into `cells`, exactly its
/// `(4 + bytes.len()).div_ceil(8)` words: the prefix with the first four
/// payload bytes, whole words of payload, the last word zero-padded.
#[cfg(not(loom))]
#[inline]
fn write_words(cells: &[AtomicU64], bytes: &[u8]) {
    let Some((first, rest)) = cells.split_first() else {
        return;
    };
    first.store(frame_word(bytes, 0).to_le(), Ordering::Relaxed);
    let body = bytes.get(LEN_PREFIX as usize..).unwrap_or(&[]);
    let whole = body.len() / 8;
    let (full, tail) = rest.split_at(whole.min(rest.len()));
    // By value, equal lengths: one counter, no check per word.
    for (chunk, cell) in body.chunks_exact(8).zip(full) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        cell.store(u64::from_ne_bytes(w), Ordering::Relaxed);
    }
    if let (Some(cell), false) = (tail.first(), body.len() % 8 == 0) {
        cell.store(
            frame_word(bytes, cells.len() - 1).to_le(),
            Ordering::Relaxed,
        );
    }
}

/// Copies payload words `cells` (the frame's words after the first) into
/// `out` (the payload after its first four bytes), the last word cut to
/// what `out` has room for.
#[cfg(not(loom))]
#[inline]
fn read_words(cells: &[AtomicU64], out: &mut [u8]) {
    let whole = out.len() / 8;
    let (full, tail) = cells.split_at(whole.min(cells.len()));
    // By value, equal lengths: one counter, no check per word.
    for (chunk, cell) in out.chunks_exact_mut(8).zip(full) {
        chunk.copy_from_slice(&cell.load(Ordering::Relaxed).to_ne_bytes());
    }
    let r = out.len() % 8;
    let Some(cell) = tail.first().filter(|_| r > 0) else {
        return;
    };
    let n = out.len();
    put_head(
        &mut out[n - r..],
        cell.load(Ordering::Relaxed).to_ne_bytes(),
    );
}

/// Copies `cells` into `out` (equal lengths, at least 16) in 16-byte
/// loads ([`crate::arch::load16`]): up to 64 bytes in two or four loads
/// without a loop (the later ones overlapping the earlier ones when the
/// length is not a multiple of 16), longer runs in a loop ending with one
/// such load. A peer writing the bytes meanwhile can leave a mix of old
/// and new ones in `out`, as byte loads could.
#[cfg(not(loom))]
#[inline]
fn read_wide(cells: &[AtomicU8], out: &mut [u8]) {
    let n = out.len().min(cells.len());
    debug_assert!(n >= 16 && n == out.len(), "a wide read of {n} bytes");
    let mut copy = |at: usize| {
        let run: &[AtomicU8; 16] = cells[at..at + 16].try_into().expect("16 bytes");
        out[at..at + 16].copy_from_slice(&crate::arch::load16(run));
    };
    match n {
        0..16 => {}
        16..=32 => {
            copy(0);
            copy(n - 16);
        }
        33..=64 => {
            copy(0);
            copy(16);
            copy(n - 32);
            copy(n - 16);
        }
        _ => {
            let mut at = 0;
            while at + 16 <= n {
                copy(at);
                at += 16;
            }
            if at < n {
                copy(n - 16);
            }
        }
    }
}

/// Copies the first `out.len()` (< 8) bytes of `word` into `out` with at
/// most three fixed-size stores. Neither a byte loop nor a rewrite of the
/// whole last word of `out`: reading back eight bytes of `out` that
/// straddle the copy's last store cannot be forwarded from it and stalls.
#[cfg(not(loom))]
#[inline]
fn put_head(out: &mut [u8], word: [u8; 8]) {
    let r = out.len();
    let mut k = 0;
    if r & 4 != 0 {
        out[..4].copy_from_slice(&word[..4]);
        k = 4;
    }
    if r & 2 != 0 {
        out[k..k + 2].copy_from_slice(&word[k..k + 2]);
        k += 2;
    }
    if r & 1 != 0 {
        out[k] = word[k];
    }
}

/// Word `i` of the frame carrying `bytes`: the prefix and the first four
/// bytes for `i == 0`, then eight payload bytes each, the last one padded
/// with zeros. Fixed-size copies only (no call to `memcpy` for a few bytes).
#[inline]
fn frame_word(bytes: &[u8], i: usize) -> u64 {
    let len = bytes.len();
    if i == 0 {
        let mut head = [0u8; 4];
        if len >= 4 {
            head.copy_from_slice(&bytes[..4]);
        } else {
            for (h, b) in head.iter_mut().zip(bytes) {
                *h = *b;
            }
        }
        return u64::from(len as u32) | u64::from(u32::from_le_bytes(head)) << 32;
    }
    let o = 8 * i - 4;
    if let Some(w) = bytes.get(o..o + 8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        return u64::from_le_bytes(b);
    }
    // The last, partial word: `1..8` bytes from `o`.
    let left = len.saturating_sub(o);
    if len >= 8 {
        // The payload's last eight bytes, shifted down past those that
        // belong to the word before.
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[len - 8..]);
        u64::from_le_bytes(b) >> (8 * (8 - left))
    } else {
        let mut b = [0u8; 8];
        for (d, s) in b.iter_mut().zip(bytes.get(o..).unwrap_or(&[])) {
            *d = *s;
        }
        u64::from_le_bytes(b)
    }
}

/// Cache line size of the x86 processors the hints are tuned for (bytes).
#[cfg(not(loom))]
const LINE: u32 = 64;

/// The first index of every line that the index range `from..to`
/// reaches the end of (indices run on modulo 2^32): from the line holding
/// `from` up to, not including, the line holding `to`.
#[cfg(not(loom))]
#[inline]
fn completed_lines(from: u32, to: u32) -> impl Iterator<Item = u32> {
    let first = from & !(LINE - 1);
    let lines = (to & !(LINE - 1)).wrapping_sub(first) / LINE;
    (0..lines).map(move |i| first.wrapping_add(i * LINE))
}

/// [`Shared::in_open_line`]: `end` is past the start of the line holding
/// `tail`, and `tail` is not itself at a line's start (then every line
/// before it is complete).
#[cfg(not(loom))]
#[inline]
fn ends_in_open_line(end: u32, tail: u32) -> bool {
    let into = tail & (LINE - 1);
    into != 0 && tail.wrapping_sub(end) < into
}

/// Frames of more words than this are copied as one run when they do not
/// wrap; shorter ones word by word (the small requests and answers of
/// domains: setting up the run costs more than it saves, as the virtual
/// UART's round trip in emulated instructions shows, docs/BENCHMARKS.md).
#[cfg(not(loom))]
const CONTIGUOUS_FROM: usize = 3;

/// Runs shorter than this are copied byte by byte: for the small messages
/// domains exchange, splitting into words costs more than it saves (the
/// ring round trip in emulated instructions, docs/BENCHMARKS.md).
const SMALL: usize = 24;

/// How many leading bytes of `cells` lie before an 8-aligned address, at
/// most `n`.
#[cfg(not(loom))]
#[inline]
fn head_len(cells: &[AtomicU8], n: usize) -> usize {
    ((cells.as_ptr() as usize).wrapping_neg() & 7).min(n)
}

/// The 8 cells of `chunk` as one atomic word.
///
/// # Safety
///
/// `chunk` is 8 cells at an 8-aligned address.
#[cfg(not(loom))]
#[inline]
unsafe fn word64(chunk: &[AtomicU8]) -> &AtomicU64 {
    // SAFETY: per the contract the 8 bytes are `chunk` and aligned for
    // `AtomicU64`, which has the layout of `u64`; both types allow shared
    // mutation, so the reference adds no exclusivity.
    unsafe { &*chunk.as_ptr().cast::<AtomicU64>() }
}

/// Copies `src` into `cells` (`src.len() <= cells.len()`): single bytes up
/// to an 8-aligned address, whole 64-bit words, then the last bytes; every
/// store is a relaxed atomic. Accesses of different sizes to the same
/// bytes (a frame written byte by byte, read by words) never race: the
/// index handshake (Release store, Acquire load) orders every write of a
/// byte before the peer's reads of it and every read before its reuse.
#[cfg(not(loom))]
#[inline]
fn store_run(cells: &[AtomicU8], src: &[u8]) {
    let n = src.len().min(cells.len());
    let (cells, src) = (&cells[..n], &src[..n]);
    let (head_c, cells) = cells.split_at(head_len(cells, n));
    let (head_s, src) = src.split_at(head_c.len());
    for (c, b) in head_c.iter().zip(head_s) {
        c.store(*b, Ordering::Relaxed);
    }
    let words = cells.chunks_exact(8);
    let tail_c = words.remainder();
    let mut src_words = src.chunks_exact(8);
    for (c, s) in words.zip(&mut src_words) {
        let mut w = [0u8; 8];
        w.copy_from_slice(s);
        // SAFETY: after the head, every 8-cell chunk is 8-aligned.
        unsafe { word64(c) }.store(u64::from_ne_bytes(w), Ordering::Relaxed);
    }
    for (c, b) in tail_c.iter().zip(src_words.remainder()) {
        c.store(*b, Ordering::Relaxed);
    }
}

/// Byte by byte under loom (its atomics cannot be viewed as words).
#[cfg(loom)]
fn store_run(cells: &[AtomicU8], src: &[u8]) {
    for (c, b) in cells.iter().zip(src) {
        c.store(*b, Ordering::Relaxed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn completed_lines_are_those_a_range_reaches_the_end_of() {
        let lines = |from, to| completed_lines(from, to).collect::<std::vec::Vec<u32>>();
        // 72-byte frames from 0: each completes the line it started in.
        assert_eq!(lines(0, 72), [0]);
        assert_eq!(lines(72, 144), [64]);
        // Ending exactly on a boundary completes the last line too.
        assert_eq!(lines(0, 64), [0]);
        assert_eq!(lines(64, 256), [64, 128, 192]);
        // Inside one line, or an empty range: nothing.
        assert_eq!(lines(8, 16), []);
        assert_eq!(lines(200, 200), []);
        // Across the wrap of the free-running indices.
        assert_eq!(lines(u32::MAX - 71, 8), [u32::MAX - 127, u32::MAX - 63]);
    }

    #[test]
    fn a_frame_ends_in_an_open_line_only_inside_the_line_the_producer_fills() {
        // Producer at 80, inside the line 64..128.
        assert!(ends_in_open_line(72, 80));
        assert!(ends_in_open_line(80, 80));
        // Ending on the line's start, or in an earlier line: complete.
        assert!(!ends_in_open_line(64, 80));
        assert!(!ends_in_open_line(8, 80));
        // A producer on a line boundary has completed every line.
        assert!(!ends_in_open_line(128, 128));
        assert!(!ends_in_open_line(120, 128));
        // Across the wrap of the free-running indices.
        assert!(ends_in_open_line(u32::MAX - 15, u32::MAX - 7));
        assert!(!ends_in_open_line(u32::MAX - 7, 8));
        assert!(!ends_in_open_line(0, 8));
        assert!(!ends_in_open_line(u32::MAX - 7, 0));
    }

    #[test]
    fn wide_reads_copy_every_byte_and_nothing_more() {
        let cells: Vec<AtomicU8> = (0..256u32)
            .map(|i| AtomicU8::new((i as u8).wrapping_mul(53) ^ 0x3c))
            .collect();
        for start in 0..8 {
            for len in 16..=200 {
                let mut out = vec![0x11u8; len + 16];
                read_wide(&cells[start..start + len], &mut out[3..3 + len]);
                for (i, b) in out.iter().enumerate() {
                    let want = match i.checked_sub(3).filter(|&k| k < len) {
                        Some(k) => cells[start + k].load(Ordering::Relaxed),
                        None => 0x11,
                    };
                    assert_eq!(*b, want, "start {start} len {len} byte {i}");
                }
            }
        }
    }

    #[test]
    fn runs_copy_every_byte_at_every_alignment_and_length() {
        let cells: Vec<AtomicU8> = (0..64).map(|_| AtomicU8::new(0)).collect();
        for start in 0..16 {
            for len in 0..40 {
                cells.iter().for_each(|c| c.store(0xee, Ordering::Relaxed));
                let src: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37) ^ 0x5a).collect();
                store_run(&cells[start..], &src);
                let out: Vec<u8> = cells[start..start + len]
                    .iter()
                    .map(|c| c.load(Ordering::Relaxed))
                    .collect();
                assert_eq!(out, src, "start {start} len {len}");
                // Nothing outside the run was touched.
                for (i, c) in cells.iter().enumerate() {
                    if i < start || i >= start + len {
                        assert_eq!(c.load(Ordering::Relaxed), 0xee, "cell {i}");
                    }
                }
            }
        }
    }

    #[test]
    fn runs_never_pass_the_end_of_the_cells() {
        let cells: Vec<AtomicU8> = (0..12).map(|_| AtomicU8::new(1)).collect();
        store_run(&cells[3..], &[9; 20]);
        assert!(cells[3..].iter().all(|c| c.load(Ordering::Relaxed) == 9));
        assert_eq!(
            cells[..3]
                .iter()
                .filter(|c| c.load(Ordering::Relaxed) == 1)
                .count(),
            3
        );
    }

    /// Frames written and read back at every 8-aligned index of a small
    /// data area, wrapping or not, for every payload length that fits:
    /// the payload comes back, the padding is zero, nothing else changes,
    /// and `read_frame` touches nothing in `out` past the payload.
    #[test]
    fn frames_round_trip_at_every_index_and_length() {
        const SIZE: u32 = 64;
        let mut mem = vec![0u64; (HEADER_LEN + SIZE as usize) / 8];
        // SAFETY: the Vec is 8-aligned, `HEADER_LEN + SIZE` bytes long,
        // lives for the whole test and is accessed through `shared` only.
        let shared = unsafe { Shared::from_raw(mem.as_mut_ptr().cast::<u8>(), SIZE) };
        let byte = |i: u32| shared.data[i as usize].load(Ordering::Relaxed);
        for idx in (0..2 * SIZE).step_by(8) {
            for len in 0..=(SIZE - LEN_PREFIX) as usize {
                shared
                    .data
                    .iter()
                    .for_each(|c| c.store(0xee, Ordering::Relaxed));
                let src: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(29) ^ 0xa5).collect();
                shared.write_frame(idx, &src);
                let frame = crate::frame_size(len as u32);
                let word = shared.load_word(idx);
                assert_eq!(word as u32, len as u32, "idx {idx} len {len}");
                let mut out = vec![0x11u8; len + 9];
                shared.read_frame(idx, word, &mut out[..len]);
                assert_eq!(&out[..len], &src[..], "idx {idx} len {len}");
                assert!(out[len..].iter().all(|b| *b == 0x11), "idx {idx} len {len}");
                for i in 0..SIZE {
                    let at = i.wrapping_sub(idx) % SIZE;
                    let b = byte(i);
                    if at >= frame {
                        assert_eq!(b, 0xee, "idx {idx} len {len}: cell {i} outside");
                    } else if at >= LEN_PREFIX + len as u32 {
                        assert_eq!(b, 0, "idx {idx} len {len}: padding {i}");
                    }
                }
            }
        }
    }
}
