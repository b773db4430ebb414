//! The ring itself and its two halves.

use core::cell::Cell;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Corruption, RingError, Stats};
use crate::shared::Shared;
use crate::sync::Ordering;
use crate::{frame_size, FRAME_ALIGN, LEN_PREFIX};

/// One ring over shared memory, before it is split into its
/// [`Producer`] and [`Consumer`] halves.
///
/// A process that talks to a peer in another domain keeps only one half
/// ([`Ring::into_producer`] or [`Ring::into_consumer`]); a host test keeps
/// both ([`Ring::split`]).
pub struct Ring<'a> {
    shared: Shared<'a>,
    /// Indices validated at attach/init: (producer, consumer).
    start: (u32, u32),
}

impl<'a> Ring<'a> {
    /// Formats `mem` as an empty ring (fresh header, indices 0) using the
    /// largest power-of-two data area that fits after the header. Only one
    /// side calls this; the other [`attach`](Ring::attach)es.
    ///
    /// Errors: [`RingError::Layout`] when `mem` is not aligned to
    /// [`ALIGN`](crate::ALIGN) or shorter than
    /// [`HEADER_LEN`](crate::HEADER_LEN) + [`MIN_DATA_SIZE`](crate::MIN_DATA_SIZE).
    #[cfg(not(loom))]
    pub fn init(mem: &'a mut [u8]) -> Result<Self, RingError> {
        // SAFETY: the exclusive borrow makes `mem` valid for reads and
        // writes for `'a` with no other access at all.
        unsafe { Self::init_raw(mem.as_mut_ptr(), mem.len()) }
    }

    /// Checks the header already in `mem` (magic, layout version, size
    /// fitting `mem`, indices consistent) and adopts it. Errors:
    /// [`RingError::Layout`] as for [`Ring::init`], [`RingError::Corrupt`]
    /// for a header that fails a check.
    #[cfg(not(loom))]
    pub fn attach(mem: &'a mut [u8]) -> Result<Self, RingError> {
        // SAFETY: as in `init`.
        unsafe { Self::attach_raw(mem.as_mut_ptr(), mem.len()) }
    }

    /// [`Ring::init`] over raw shared memory (a domain's mapping of a
    /// channel's pages).
    ///
    /// # Safety
    ///
    /// For all of `'a`: `ptr` is valid for reads and writes of `len` bytes
    /// and is not deallocated or unmapped; it is aligned to
    /// [`ALIGN`](crate::ALIGN) (page alignment is expected); the memory is
    /// shared with at most one peer, and any access to it from this address
    /// space other than through this ring is atomic. Each side then uses
    /// one half only ([`Ring::into_producer`] on one, [`Ring::into_consumer`]
    /// on the other; [`Ring::split`] keeps both in one process). The peer may write
    /// anything at any time: that is handled, not undefined behaviour.
    #[cfg(not(loom))]
    pub unsafe fn init_raw(ptr: *mut u8, len: usize) -> Result<Self, RingError> {
        let size = crate::shared::data_size_for(ptr as usize, len)?;
        // SAFETY: `data_size_for` checked alignment and that
        // `HEADER_LEN + size <= len`; the rest is the caller's contract.
        let shared = unsafe { Shared::from_raw(ptr, size) };
        shared.write_fresh_header();
        Ok(Self {
            shared,
            start: (0, 0),
        })
    }

    /// [`Ring::attach`] over raw shared memory.
    ///
    /// # Safety
    ///
    /// As for [`Ring::init_raw`].
    #[cfg(not(loom))]
    pub unsafe fn attach_raw(ptr: *mut u8, len: usize) -> Result<Self, RingError> {
        crate::shared::data_size_for(ptr as usize, len)?;
        // SAFETY: alignment and `HEADER_LEN <= len` were checked; the rest
        // is the caller's contract.
        let (magic, size) = unsafe { Shared::peek(ptr) };
        if magic != crate::MAGIC {
            return Err(Corruption::BadMagic { found: magic }.into());
        }
        if !crate::shared::size_fits(size, len) {
            return Err(Corruption::BadSize { found: size }.into());
        }
        // SAFETY: `HEADER_LEN + size <= len` was just checked.
        let shared = unsafe { Shared::from_raw(ptr, size) };
        let start = shared.check_header()?;
        Ok(Self { shared, start })
    }

    /// A ring over loom-modelled memory (model checking only).
    #[cfg(loom)]
    pub fn init_loom(mem: &'a crate::LoomMem) -> Self {
        let shared = Shared::from_loom(mem);
        shared.write_fresh_header();
        Self {
            shared,
            start: (0, 0),
        }
    }

    /// Size of the data area in bytes (a power of two).
    pub fn data_size(&self) -> u32 {
        self.shared.size
    }

    /// Both halves, for two threads of one process (tests, benchmarks).
    pub fn split(self) -> (Producer<'a>, Consumer<'a>) {
        (
            Producer::new(self.shared, self.start),
            Consumer::new(self.shared, self.start),
        )
    }

    /// The producer half only (this side writes, the peer reads).
    pub fn into_producer(self) -> Producer<'a> {
        Producer::new(self.shared, self.start)
    }

    /// The consumer half only (the peer writes, this side reads).
    pub fn into_consumer(self) -> Consumer<'a> {
        Consumer::new(self.shared, self.start)
    }
}

/// A message with a protocol version in front, the wire form used by
/// [`Producer::push_versioned`] and [`Consumer::pop_versioned`]: postcard
/// encodes it as the version (varint) followed by the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// Protocol version of the body's type.
    pub version: u16,
    /// The message.
    pub body: T,
}

/// State both halves keep privately.
struct Local {
    fault: Cell<Option<Corruption>>,
    stats: Cell<Stats>,
}

impl Local {
    fn new() -> Self {
        Self {
            fault: Cell::new(None),
            stats: Cell::new(Stats::default()),
        }
    }

    fn stat(&self, f: impl FnOnce(&mut Stats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }

    /// Records a corruption (sticky) and returns it as an error.
    fn fail(&self, what: Corruption) -> RingError {
        if self.fault.get().is_none() {
            self.fault.set(Some(what));
            self.stat(|s| s.corrupt += 1);
        }
        RingError::Corrupt { what }
    }

    /// Refuses to run when faulted.
    #[inline]
    fn check(&self) -> Result<(), RingError> {
        match self.fault.get() {
            Some(what) => Err(RingError::Corrupt { what }),
            None => Ok(()),
        }
    }

    /// Checks the constant header words (the producer with every read of
    /// the consumer's index, the consumer when a read of the producer's
    /// index finds nothing new: our copy of the size is what we use, so a
    /// peer that rewrites them harms nobody but is caught soon).
    #[inline]
    fn check_constants(&self, shared: &Shared<'_>) -> Result<(), RingError> {
        shared.check_constants().map_err(|w| self.fail(w))
    }
}

/// The writing half of a ring. `Send` but not `Sync`: exactly one thread
/// produces.
pub struct Producer<'a> {
    shared: Shared<'a>,
    /// Our producer index: authoritative, never read back from shared memory.
    tail: Cell<u32>,
    /// Last consumer index read and validated.
    head: Cell<u32>,
    /// Whether to demote the lines a frame completes: only where the CPU
    /// has CLDEMOTE ([`crate::arch::can_demote`]).
    demote: Hint<bool>,
    local: Local,
}

impl<'a> Producer<'a> {
    fn new(shared: Shared<'a>, (tail, head): (u32, u32)) -> Self {
        Self {
            shared,
            tail: Cell::new(tail),
            head: Cell::new(head),
            demote: Hint::new(demotes()),
            local: Local::new(),
        }
    }

    /// Largest payload (encoded message) one frame can carry: data size
    /// minus the 4-byte length prefix.
    pub fn max_message(&self) -> usize {
        (self.shared.size - LEN_PREFIX) as usize
    }

    /// Size of the data area in bytes.
    pub fn data_size(&self) -> u32 {
        self.shared.size
    }

    /// Free bytes as of the cached consumer index (no shared read).
    fn cached_free(&self) -> u32 {
        self.shared.size - self.tail.get().wrapping_sub(self.head.get())
    }

    /// Reads the consumer index (Acquire: the consumer's reads of the
    /// space it hands back happened before) and validates it: a multiple
    /// of [`FRAME_ALIGN`] that may only move forward, and never past our
    /// producer index.
    fn refresh(&self) -> Result<u32, RingError> {
        self.local.check_constants(&self.shared)?;
        let found = self.shared.consumer.load(Ordering::Acquire);
        let (last, tail) = (self.head.get(), self.tail.get());
        if found.wrapping_sub(last) > tail.wrapping_sub(last) || !found.is_multiple_of(FRAME_ALIGN)
        {
            return Err(self.local.fail(Corruption::ConsumerIndex {
                producer: tail,
                last,
                found,
            }));
        }
        self.head.set(found);
        Ok(self.cached_free())
    }

    /// Free bytes in the data area now (a frame needs
    /// [`frame_size`](crate::frame_size) of its payload).
    pub fn free_space(&self) -> Result<u32, RingError> {
        self.local.check()?;
        self.refresh()
    }

    /// Free bytes, refreshing the consumer index only if the cached value
    /// is short of `need`.
    #[inline]
    fn space_for(&self, need: u32) -> Result<u32, RingError> {
        let free = self.cached_free();
        if free >= need {
            Ok(free)
        } else {
            self.refresh()
        }
    }

    /// Publishes the frame of `len` payload bytes written at our index
    /// (Release: the frame's stores happen before the index store). The
    /// lines the frame completed are demoted first: a consumer on another
    /// core then reads them from the shared cache instead of snooping
    /// them out of ours (docs/BENCHMARKS.md).
    #[inline]
    fn publish(&self, len: u32) {
        let start = self.tail.get();
        let tail = start.wrapping_add(frame_size(len));
        self.tail.set(tail);
        if self.demote.get() {
            self.shared.demote_lines(start, tail);
        }
        self.shared.producer.store(tail, Ordering::Release);
        self.local.stat(|s| {
            s.frames += 1;
            s.bytes += u64::from(len);
        });
    }

    fn full(&self) -> RingError {
        self.local.stat(|s| s.full += 1);
        RingError::Full
    }

    /// Pushes raw payload bytes as one frame. Errors: [`RingError::Full`]
    /// (nothing written), [`RingError::TooLarge`], [`RingError::Corrupt`].
    #[cfg_attr(target_os = "none", inline)]
    // Always inlined on the host. Called out of line, a producer thread is
    // slow enough for its consumer to keep up with it, and a consumer that
    // reads each frame as soon as it is published takes the lines the
    // producer is still filling: half the messages per second, and the
    // demotion in `publish` made the call too big for the compiler to
    // inline by itself (docs/BENCHMARKS.md). Bare-metal builds (one domain
    // at a time on one CPU) leave the choice to the compiler.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    pub fn push_bytes(&self, bytes: &[u8]) -> Result<(), RingError> {
        let max = self.max_message();
        if bytes.len() > max {
            return Err(RingError::TooLarge {
                len: bytes.len(),
                max,
            });
        }
        self.local.check()?;
        let len = bytes.len() as u32; // <= max < 2^31
        if self.space_for(frame_size(len))? < frame_size(len) {
            return Err(self.full());
        }
        self.shared.write_frame(self.tail.get(), bytes);
        self.publish(len);
        Ok(())
    }

    /// Encodes `msg` with postcard and pushes it as one frame: through a
    /// 32-byte buffer on the stack when it fits there, else straight into
    /// the ring (no copy of a large message). Errors as for
    /// [`Producer::push_bytes`], plus [`RingError::Encode`].
    pub fn push<T: Serialize + ?Sized>(&self, msg: &T) -> Result<(), RingError> {
        // Small messages (the usual case) are encoded on the stack and
        // copied in with one write: postcard hands a message over a field
        // at a time, and each piece written into the ring costs its own
        // index arithmetic.
        let mut small = [0u8; SMALL_MESSAGE];
        if let Ok(bytes) = postcard::to_slice(msg, &mut small) {
            let n = bytes.len();
            return self.push_bytes(&small[..n]);
        }
        self.local.check()?;
        let mut free = self.cached_free();
        let mut refreshed = false;
        loop {
            let writer = FrameWriter {
                shared: &self.shared,
                start: self.tail.get().wrapping_add(LEN_PREFIX),
                len: 0,
                limit: free.saturating_sub(LEN_PREFIX),
            };
            match postcard::serialize_with_flavor(msg, writer) {
                Ok(len) if free >= LEN_PREFIX => {
                    // The payload is in place (`len <= free - 4`, and
                    // `free` is a multiple of 8, so the padded frame fits
                    // too): add the prefix and the zero padding.
                    let tail = self.tail.get();
                    self.shared.write(tail, &len.to_le_bytes());
                    let pad = (frame_size(len) - LEN_PREFIX - len) as usize;
                    self.shared
                        .write(tail.wrapping_add(LEN_PREFIX + len), &[0; 8][..pad]);
                    self.publish(len);
                    return Ok(());
                }
                Ok(_) | Err(postcard::Error::SerializeBufferFull) => {}
                Err(_) => return Err(RingError::Encode),
            }
            if !refreshed && free < self.shared.size {
                refreshed = true;
                let now = self.refresh()?;
                if now > free {
                    free = now;
                    continue;
                }
            }
            // Out of room: tell "never fits" from "not now".
            let len =
                postcard::serialize_with_flavor(msg, Counter(0)).map_err(|_| RingError::Encode)?;
            let max = self.max_message();
            return Err(if len > max {
                RingError::TooLarge { len, max }
            } else {
                self.full()
            });
        }
    }

    /// Pushes `msg` wrapped in an [`Envelope`] carrying `version`.
    pub fn push_versioned<T: Serialize + ?Sized>(
        &self,
        version: u16,
        msg: &T,
    ) -> Result<(), RingError> {
        self.push(&Envelope { version, body: msg })
    }

    /// This half's counters.
    pub fn stats(&self) -> Stats {
        self.local.stats.get()
    }

    /// Re-reads the header and adopts its indices, clearing a fault: what
    /// the peer does after the owner called [`reset`](Producer::reset)
    /// (or to retry after a transient fault). Fails with
    /// [`RingError::Corrupt`] if the header is still bad.
    pub fn resync(&self) -> Result<(), RingError> {
        let (p, c) = self.shared.check_header()?;
        self.tail.set(p);
        self.head.set(c);
        self.local.fault.set(None);
        Ok(())
    }

    /// Rewrites the header as freshly initialised (both indices 0, unread
    /// frames discarded) and clears this half's fault; counters are kept.
    ///
    /// Who may call it: the side that owns the ring, i.e. the one that
    /// called `init` (in Bulkhead, the domain that created the channel),
    /// and only while the peer is not using the ring (it was stopped, or
    /// told over another path and waits). The peer then calls `resync`
    /// before touching its half again. Calling it while the peer is active
    /// is memory-safe but makes the peer see corruption.
    pub fn reset(&self) {
        self.shared.write_fresh_header();
        self.tail.set(0);
        self.head.set(0);
        self.local.fault.set(None);
    }
}

/// The reading half of a ring. `Send` but not `Sync`: exactly one thread
/// consumes.
pub struct Consumer<'a> {
    shared: Shared<'a>,
    /// Our consumer index: authoritative, never read back from shared memory.
    head: Cell<u32>,
    /// Last producer index read and validated.
    tail: Cell<u32>,
    /// Consumed frames stay unreleased until [`Consumer::release`].
    deferred: Cell<bool>,
    /// The consumer index last stored to shared memory.
    released: Cell<u32>,
    /// Whether the last read of the producer index found it close ahead
    /// (see [`Consumer::consume`]).
    close: Hint<bool>,
    /// Frames left before the consumer waits for a line again after a
    /// wait that ran out ([`Consumer::wait_for_line`]).
    line_waits_off: Hint<u32>,
    /// As for [`Producer`]: whether to demote the lines read.
    demote: Hint<bool>,
    local: Local,
}

impl<'a> Consumer<'a> {
    fn new(shared: Shared<'a>, (tail, head): (u32, u32)) -> Self {
        Self {
            shared,
            head: Cell::new(head),
            tail: Cell::new(tail),
            deferred: Cell::new(false),
            released: Cell::new(head),
            close: Hint::new(false),
            line_waits_off: Hint::new(0),
            demote: Hint::new(demotes()),
            local: Local::new(),
        }
    }

    /// With `true`, frames this half consumes are not handed back to the
    /// producer (the shared consumer index does not move) until
    /// [`Consumer::release`]. A consumer that must not lose what it took
    /// if it dies before acting on it (a service that keeps a snapshot of
    /// its state, say) releases only once that state is saved; a new
    /// consumer attached after it died then finds those frames again.
    pub fn defer_release(&self, on: bool) {
        self.deferred.set(on);
        if !on {
            self.release();
        }
    }

    /// Hands every frame consumed so far back to the producer (Release:
    /// our reads of them happen before the producer may reuse the space).
    pub fn release(&self) {
        let head = self.head.get();
        self.released.set(head);
        self.shared.consumer.store(head, Ordering::Release);
    }

    /// Bytes consumed but not yet handed back to the producer: those of
    /// deferred frames, or less than a quarter of the data area otherwise
    /// (and 0 whenever the ring is found empty).
    pub fn unreleased(&self) -> u32 {
        self.head.get().wrapping_sub(self.released.get())
    }

    /// This half's consumer index: where the next frame starts (counting
    /// frames consumed but not yet released).
    pub fn position(&self) -> u32 {
        self.head.get()
    }

    /// Moves past every frame up to `position`, as if they had been
    /// consumed (they are released when the consumer releases); returns
    /// how many. `Ok(None)`, with nothing moved, when `position` is not
    /// the start of a frame within what the producer has published (a
    /// position saved before the ring was reset, say). Errors:
    /// [`RingError::Corrupt`].
    pub fn skip_to(&self, position: u32) -> Result<Option<u32>, RingError> {
        self.local.check()?;
        let head = self.head.get();
        let wanted = position.wrapping_sub(head);
        if wanted > self.tail.get().wrapping_sub(head) {
            self.refresh()?;
        }
        if wanted > self.tail.get().wrapping_sub(head) {
            return Ok(None);
        }
        if !position.is_multiple_of(FRAME_ALIGN) {
            return Ok(None);
        }
        // Walk the frames' length prefixes without consuming anything
        // (`left` is a nonzero multiple of 8, so a prefix is there).
        let (mut at, mut frames, mut bytes) = (head, 0u32, 0u64);
        while at != position {
            let left = position.wrapping_sub(at);
            let len = self.shared.load_word(at) as u32;
            if len > left - LEN_PREFIX {
                return Ok(None);
            }
            at = at.wrapping_add(frame_size(len));
            frames += 1;
            bytes += u64::from(len);
        }
        self.head.set(position);
        if !self.deferred.get() {
            self.release();
        }
        self.local.stat(|s| {
            s.frames += u64::from(frames);
            s.bytes += bytes;
        });
        Ok(Some(frames))
    }

    /// Size of the data area in bytes.
    pub fn data_size(&self) -> u32 {
        self.shared.size
    }

    /// Reads the producer index (Acquire: the payload stores before the
    /// producer's Release are visible) and validates it: a multiple of
    /// [`FRAME_ALIGN`] that may only move forward, and at most `size`
    /// bytes ahead of our consumer index.
    #[inline]
    fn refresh(&self) -> Result<u32, RingError> {
        let found = self.shared.producer.load(Ordering::Acquire);
        let (head, last) = (self.head.get(), self.tail.get());
        let avail = found.wrapping_sub(head);
        if avail > self.shared.size
            || avail < last.wrapping_sub(head)
            || !found.is_multiple_of(FRAME_ALIGN)
        {
            return Err(self.local.fail(Corruption::ProducerIndex {
                consumer: head,
                last,
                found,
            }));
        }
        self.tail.set(found);
        self.close.set(avail < self.shared.size / CLOSE_PARTS);
        if avail == 0 {
            // Only when nothing new came: a consumer keeping up with its
            // producer reads the index once per frame, and the constant
            // words guard nothing we use (our copy of the size is).
            self.local.check_constants(&self.shared)?;
        }
        Ok(avail)
    }

    /// Length of the next frame's payload and the frame's first word,
    /// `None` when nothing is published. Validates the prefix against what
    /// was published.
    #[inline]
    fn next_frame(&self) -> Result<Option<(u32, u64)>, RingError> {
        self.local.check()?;
        let head = self.head.get();
        let mut avail = self.tail.get().wrapping_sub(head);
        if avail == 0 {
            avail = self.refresh()?;
            if avail == 0 {
                return Ok(None);
            }
        }
        // A consumer behind its producer reads lines the producer's core
        // wrote last; asking for those a few frames ahead lets the fetches
        // overlap instead of each frame waiting for its own (the address
        // of the next frame depends on this one's length). Two lines per
        // frame, as a frame may be longer than one.
        if avail >= PREFETCH_AHEAD + 2 * 64 {
            self.shared.prefetch(head.wrapping_add(PREFETCH_AHEAD));
            self.shared.prefetch(head.wrapping_add(PREFETCH_AHEAD + 64));
        }
        // Both indices are multiples of 8, so `avail >= 8` here: the
        // prefix is published.
        let word = self.shared.load_word(head);
        let len = word as u32;
        if len > avail - LEN_PREFIX {
            return Err(self.local.fail(Corruption::BadLength {
                len,
                available: avail - LEN_PREFIX,
            }));
        }
        if LINE_WAIT {
            let end = head.wrapping_add(frame_size(len));
            if self.shared.in_open_line(end, self.tail.get()) {
                let off = self.line_waits_off.get();
                if off > 0 {
                    self.line_waits_off.set(off - 1);
                } else if !self.wait_for_line(end) {
                    self.line_waits_off.set(LINE_WAIT_OFF_FRAMES);
                }
            }
        }
        Ok(Some((len, word)))
    }

    /// Waits, a few spins at most, for the producer to move past the
    /// cache line the frame ending at `end` ends in, which it is still
    /// filling: the next frame goes on in that line. Read now, the line
    /// crosses to this core, back to the producer's for its next frame,
    /// and here again for that frame; read once the producer is past it,
    /// it crosses once. A 64-byte message's 72-byte frame ends inside a
    /// line every time, so a consumer that keeps up with its producer
    /// paid that for nearly every message (docs/BENCHMARKS.md). The wait
    /// is bounded, so a producer that has stopped costs the frame a few
    /// hundred nanoseconds, and a wait that runs out turns waiting off for
    /// the next [`LINE_WAIT_OFF_FRAMES`] frames that would wait: a peer
    /// that sends one message and waits for the answer is not made to pay
    /// it on every message. Frames consumed before the wait are handed
    /// back first, so a producer waiting for room is not kept waiting.
    /// Host builds only ([`LINE_WAIT`]); the frame is already validated,
    /// and only the time it is copied out changes. Returns whether the
    /// producer moved past the line.
    #[cold]
    #[inline(never)]
    fn wait_for_line(&self, end: u32) -> bool {
        if !self.deferred.get() && self.head.get() != self.released.get() {
            self.release();
        }
        for _ in 0..LINE_WAIT_SPINS {
            core::hint::spin_loop();
            // A hint only: what is read is validated by the next refresh.
            let found = self.shared.producer.load(Ordering::Relaxed);
            if !self.shared.in_open_line(end, found) {
                return true;
            }
        }
        false
    }

    /// Moves past the frame of `len` payload bytes at the head and hands
    /// consumed space back to the producer when this frame was the last
    /// one published as far as we know, or a quarter of the data area has
    /// been consumed since the last release: a consumer that has fallen
    /// behind then stores its index (a cache line the producer reads)
    /// once per quarter instead of once per frame, and the producer
    /// refills space well away from the lines being read. A consumer that
    /// stops, finding nothing more, has released everything.
    #[inline]
    fn consume(&self, len: u32) {
        let start = self.head.get();
        let head = start.wrapping_add(frame_size(len));
        self.head.set(head);
        let caught_up = head == self.tail.get();
        if self.demote.get() {
            // Lines read to their end go to the shared cache, where the
            // producer's core rewrites them without invalidating ours.
            self.shared.demote_lines(start, head);
            // Caught up with a producer that was close ahead: its next
            // frame goes on in the line we stopped in, so that line goes
            // to the shared cache too. Without this a consumer that
            // catches up stays caught up, taking each line as the
            // producer fills it, and the pair runs at half speed; further
            // behind, the line is read again at once and is better left
            // where it is (docs/BENCHMARKS.md).
            if self.close.get() && caught_up {
                self.shared.demote_line_within(head);
            }
        }
        if !self.deferred.get()
            && (caught_up
                || head.wrapping_sub(self.released.get()) >= self.shared.size / RELEASE_PARTS)
        {
            self.release();
        }
        self.local.stat(|s| {
            s.frames += 1;
            s.bytes += u64::from(len);
        });
    }

    /// Copies the next frame's payload into `out` and consumes it.
    /// `Ok(None)`: nothing published. Errors: [`RingError::BufferTooSmall`]
    /// (the frame stays), [`RingError::Corrupt`].
    #[inline]
    pub fn pop_bytes(&self, out: &mut [u8]) -> Result<Option<usize>, RingError> {
        let Some((len, word)) = self.next_frame()? else {
            return Ok(None);
        };
        let n = len as usize;
        let Some(dst) = out.get_mut(..n) else {
            return Err(RingError::BufferTooSmall { needed: n });
        };
        self.shared.read_frame(self.head.get(), word, dst);
        self.consume(len);
        Ok(Some(n))
    }

    /// Discards the next frame unread; `Ok(false)` when nothing is
    /// published. The way out of [`RingError::BufferTooSmall`].
    pub fn skip(&self) -> Result<bool, RingError> {
        match self.next_frame()? {
            Some((len, _)) => {
                self.consume(len);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn bad_frame(&self) {
        self.local.stat(|s| s.bad_frames += 1);
    }

    /// Pops the next frame that decodes as `T`, using `scratch` (at least
    /// as long as the longest frame) for the copy. Frames that fail to
    /// decode (or leave trailing bytes) are consumed, counted in
    /// [`Stats::bad_frames`] and skipped. `Ok(None)`: nothing published.
    pub fn pop<T: DeserializeOwned>(&self, scratch: &mut [u8]) -> Result<Option<T>, RingError> {
        loop {
            let Some(n) = self.pop_bytes(scratch)? else {
                return Ok(None);
            };
            match decode(&scratch[..n]) {
                Some(v) => return Ok(Some(v)),
                None => self.bad_frame(),
            }
        }
    }

    /// Pops the next frame as a `T` that may borrow from `scratch`
    /// (zero-copy `&str`/`&[u8]` fields). A frame that fails to decode is
    /// consumed, counted and reported as [`RingError::BadFrame`] (call
    /// again for the next one).
    pub fn pop_borrowed<'s, T: Deserialize<'s>>(
        &self,
        scratch: &'s mut [u8],
    ) -> Result<Option<T>, RingError> {
        let Some(n) = self.pop_bytes(scratch)? else {
            return Ok(None);
        };
        let scratch: &'s [u8] = scratch;
        match decode(&scratch[..n]) {
            Some(v) => Ok(Some(v)),
            None => {
                self.bad_frame();
                Err(RingError::BadFrame)
            }
        }
    }

    /// Pops the next [`Envelope`] and checks its version: a frame with
    /// another version is consumed and reported as [`RingError::Version`]
    /// (counted in [`Stats::version_errors`]), so a peer speaking another
    /// protocol is refused cleanly. Frames that do not decode are skipped
    /// as in [`Consumer::pop`].
    pub fn pop_versioned<T: DeserializeOwned>(
        &self,
        expected: u16,
        scratch: &mut [u8],
    ) -> Result<Option<T>, RingError> {
        loop {
            let Some(n) = self.pop_bytes(scratch)? else {
                return Ok(None);
            };
            let Ok((found, rest)) = postcard::take_from_bytes::<u16>(&scratch[..n]) else {
                self.bad_frame();
                continue;
            };
            if found != expected {
                self.local.stat(|s| s.version_errors += 1);
                return Err(RingError::Version { expected, found });
            }
            match decode(rest) {
                Some(v) => return Ok(Some(v)),
                None => self.bad_frame(),
            }
        }
    }

    /// Whether anything may be waiting: a frame seen and not consumed, or
    /// a producer index other than the last one read. One load, no
    /// validation: for a poll on a hot path, before the checked
    /// [`pop_bytes`](Consumer::pop_bytes) and friends.
    #[inline]
    pub fn may_have_frames(&self) -> bool {
        self.head.get() != self.tail.get()
            || self.shared.producer.load(Ordering::Relaxed) != self.tail.get()
    }

    /// Whether no frame is published (reads the producer index).
    pub fn is_empty(&self) -> Result<bool, RingError> {
        self.local.check()?;
        if self.tail.get() != self.head.get() {
            return Ok(false);
        }
        Ok(self.refresh()? == 0)
    }

    /// This half's counters.
    pub fn stats(&self) -> Stats {
        self.local.stats.get()
    }

    /// As [`Producer::resync`].
    pub fn resync(&self) -> Result<(), RingError> {
        let (p, c) = self.shared.check_header()?;
        self.tail.set(p);
        self.head.set(c);
        self.released.set(c);
        self.local.fault.set(None);
        Ok(())
    }

    /// As [`Producer::reset`] (same rule on who may call it).
    pub fn reset(&self) {
        self.shared.write_fresh_header();
        self.tail.set(0);
        self.head.set(0);
        self.released.set(0);
        self.local.fault.set(None);
    }
}

/// Whether the consumer waits for its producer to fill the line a frame
/// ends in ([`Consumer::wait_for_line`]): in host builds only. Not on
/// bare metal, where domains run one at a time on one CPU and the
/// producer never runs while its consumer waits, nor under loom.
#[cfg(not(loom))]
const LINE_WAIT: bool = crate::arch::HINTS;

#[cfg(loom)]
const LINE_WAIT: bool = false;

/// How many times at most the consumer spins ([`core::hint::spin_loop`])
/// in that wait: 8 (about 200 ns on the host measured) did as well as 32
/// in the host bench, and better than 2 or 4.
const LINE_WAIT_SPINS: u32 = 8;

/// After a wait for a line that ran out, this many frames that would
/// wait do not ([`Consumer::wait_for_line`]).
const LINE_WAIT_OFF_FRAMES: u32 = 64;

/// How far ahead of the frame being read the consumer asks for cache
/// lines (bytes; best of 128-2048 in the host bench, 64-byte messages).
const PREFETCH_AHEAD: u32 = 384;

/// Whether the halves demote the cache lines they finish with: where the
/// CPU has CLDEMOTE ([`crate::arch::can_demote`]); never under loom.
fn demotes() -> bool {
    #[cfg(not(loom))]
    return crate::arch::can_demote();
    #[cfg(loom)]
    false
}

/// State only the cache hints use ([`crate::arch`]): a cell in builds
/// where they do something, nothing at all (always the default: false,
/// 0) elsewhere, so that bare-metal halves keep their layout and code.
/// Loom's memory has no cache lines either.
#[cfg(all(target_arch = "x86_64", not(target_os = "none"), not(loom)))]
type Hint<T> = Cell<T>;

#[cfg(not(all(target_arch = "x86_64", not(target_os = "none"), not(loom))))]
struct Hint<T>(core::marker::PhantomData<T>);

#[cfg(not(all(target_arch = "x86_64", not(target_os = "none"), not(loom))))]
impl<T: Default> Hint<T> {
    fn new(_: T) -> Self {
        Self(core::marker::PhantomData)
    }

    #[inline(always)]
    fn set(&self, _: T) {}

    #[inline(always)]
    fn get(&self) -> T {
        T::default()
    }
}

/// A consumer whose last read of the producer index found less than
/// `size / CLOSE_PARTS` bytes published counts as close behind its
/// producer ([`Consumer::consume`]); a quarter slowed 4 KiB rings, a
/// sixteenth helped larger ones less (docs/BENCHMARKS.md).
const CLOSE_PARTS: u32 = 8;

/// A consumer that is not deferring hands space back at least every
/// `size / RELEASE_PARTS` bytes (2, 4 and 8 came within 3 % of each other
/// in the host bench; a quarter keeps what a consumer holds back small).
const RELEASE_PARTS: u32 = 4;

/// Decodes exactly `bytes` (no trailing bytes) as a `T`.
fn decode<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Option<T> {
    match postcard::take_from_bytes(bytes) {
        Ok((v, [])) => Some(v),
        _ => None,
    }
}

/// Messages that encode to at most this many bytes go through a buffer on
/// the stack ([`Producer::push`]).
const SMALL_MESSAGE: usize = 32;

/// postcard flavor writing straight into the free part of the data area.
struct FrameWriter<'s, 'a> {
    shared: &'s Shared<'a>,
    start: u32,
    len: u32,
    limit: u32,
}

impl postcard::ser_flavors::Flavor for FrameWriter<'_, '_> {
    type Output = u32;

    fn try_push(&mut self, b: u8) -> postcard::Result<()> {
        self.try_extend(&[b])
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if data.len() > (self.limit - self.len) as usize {
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.shared.write(self.start.wrapping_add(self.len), data);
        self.len += data.len() as u32;
        Ok(())
    }

    fn finalize(self) -> postcard::Result<u32> {
        Ok(self.len)
    }
}

/// postcard flavor that only counts bytes.
struct Counter(usize);

impl postcard::ser_flavors::Flavor for Counter {
    type Output = usize;

    fn try_push(&mut self, _: u8) -> postcard::Result<()> {
        self.0 = self.0.saturating_add(1);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0 = self.0.saturating_add(data.len());
        Ok(())
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.0)
    }
}

#[cfg(all(test, target_arch = "x86_64", not(target_os = "none"), not(loom)))]
mod tests {
    use super::*;

    /// A page of ring memory (the ring needs 8-byte alignment; a page
    /// keeps the index lines the CPU's).
    #[repr(C, align(4096))]
    struct Page([u8; 4096]);

    /// With nobody filling the line a frame ends in, the wait runs out,
    /// the frame is delivered all the same, and the next frames that
    /// would wait do not, until the count runs down.
    #[test]
    fn a_wait_for_a_line_that_runs_out_turns_waiting_off_for_a_while() {
        let mut page = Page([0; 4096]);
        let (tx, rx) = Ring::init(&mut page.0).unwrap().split();
        let mut out = [0u8; 64];
        // 72-byte frames: each ends inside a line.
        tx.push_bytes(&[7; 64]).unwrap();
        assert_eq!(rx.pop_bytes(&mut out).unwrap(), Some(64));
        assert_eq!(out, [7; 64]);
        assert_eq!(rx.line_waits_off.get(), LINE_WAIT_OFF_FRAMES);
        tx.push_bytes(&[8; 64]).unwrap();
        assert_eq!(rx.pop_bytes(&mut out).unwrap(), Some(64));
        assert_eq!(out, [8; 64]);
        assert_eq!(rx.line_waits_off.get(), LINE_WAIT_OFF_FRAMES - 1);
        // Frames whose last line the producer has finished never wait:
        // 56 bytes of payload take the producer from 144 to 208, then 40
        // bytes to 256, a line's end.
        tx.push_bytes(&[9; 56]).unwrap();
        tx.push_bytes(&[9; 40]).unwrap();
        assert_eq!(rx.pop_bytes(&mut out).unwrap(), Some(56));
        assert_eq!(rx.line_waits_off.get(), LINE_WAIT_OFF_FRAMES - 1);
        assert_eq!(rx.pop_bytes(&mut out).unwrap(), Some(40));
        assert_eq!(rx.line_waits_off.get(), LINE_WAIT_OFF_FRAMES - 1);
    }
}
