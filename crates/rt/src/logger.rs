//! The `defmt` global logger (feature `defmt`): each record becomes one
//! encoded frame in a one-page log ring in this domain's own memory, and
//! the core drains the ring (`LOG_FLUSH`) as the record ends, printing every
//! frame as a `defmt:NAME:HEX` line that the host decodes with this
//! domain's ELF (`cargo xtask run` does). What is still in the ring when the
//! domain faults is printed by the core as it stops.
//!
//! One flush per record costs one VM exit, as a `LOG_WRITE` line does.
//! Holding frames back to flush them in bursts before the domain blocks was
//! tried and dropped: the check before every blocking call cost more (about
//! 50 emulated instructions per channel round trip, docs/BENCHMARKS.md)
//! than services' few records save.
//!
//! A domain runs one vCPU and takes no interrupts, so the logger's state
//! is only ever touched from one flow of control; `acquire` still refuses
//! re-entry (a `Format` impl that logs) by panicking, as defmt requires.

#![cfg_attr(not(target_os = "none"), allow(dead_code, unused_imports))]

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use hypercall_abi::{LOG_FRAME_MAX, LOG_RING_BYTES};

const RING: usize = LOG_RING_BYTES as usize;

#[repr(C, align(4096))]
struct Page(UnsafeCell<[u8; RING]>);

// SAFETY: only touched through `STATE`'s owner (see below).
unsafe impl Sync for Page {}

static PAGE: Page = Page(UnsafeCell::new([0; RING]));

struct State {
    producer: Option<shm_ring::Producer<'static>>,
    encoder: defmt::Encoder,
    frame: [u8; LOG_FRAME_MAX],
    len: usize,
    /// The frame being written outgrew [`LOG_FRAME_MAX`].
    too_long: bool,
    /// Frames dropped (too long, or no room even in a fresh ring),
    /// reported as a text line by the flush that follows.
    dropped: u32,
}

struct StateCell(UnsafeCell<State>);

// SAFETY: a domain is one flow of control (one vCPU, no interrupts); every
// access goes through `with`, which `TAKEN` keeps from nesting.
unsafe impl Sync for StateCell {}

static STATE: StateCell = StateCell(UnsafeCell::new(State {
    producer: None,
    encoder: defmt::Encoder::new(),
    frame: [0; LOG_FRAME_MAX],
    len: 0,
    too_long: false,
    dropped: 0,
}));

/// Held from `acquire` to `release`.
static TAKEN: AtomicBool = AtomicBool::new(false);

fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    // SAFETY: see `StateCell`; callers hold `TAKEN`.
    f(unsafe { &mut *STATE.0.get() })
}

impl State {
    fn producer(&mut self) -> Option<&shm_ring::Producer<'static>> {
        if self.producer.is_none() {
            // SAFETY: `PAGE` is page-aligned, lives forever, and is used
            // only through this one producer (the core reads its copy).
            let ring = unsafe { shm_ring::Ring::init_raw(PAGE.0.get().cast(), RING) };
            self.producer = ring.ok().map(shm_ring::Ring::into_producer);
        }
        self.producer.as_ref()
    }

    /// Hands the ring to the core. A ring the core found corrupt (nothing
    /// but this domain writes it) is formatted afresh.
    fn flush(&mut self) {
        if self.producer.is_some() {
            let gpa = PAGE.0.get() as u64;
            let (rax, _) = crate::arch::vmcall(hypercall_abi::Call::LogFlush as u64, gpa, 0, 0, 0);
            if rax != 0 {
                self.producer = None;
            }
        }
        if self.dropped != 0 {
            let n = core::mem::take(&mut self.dropped);
            let line = crate::Line::format(format_args!("{n} defmt frame(s) dropped"));
            let _ = crate::log_bytes(line.as_bytes());
        }
    }

    /// Runs `f` with the encoder and a sink into the frame buffer.
    fn encode(&mut self, f: impl FnOnce(&mut defmt::Encoder, &mut Sink<'_>)) {
        let State {
            encoder,
            frame,
            len,
            too_long,
            ..
        } = self;
        f(
            encoder,
            &mut Sink {
                frame,
                len,
                too_long,
            },
        );
    }

    /// Puts the finished frame into the ring and flushes it.
    fn publish(&mut self) {
        let len = self.len;
        if self.too_long || len == 0 {
            self.dropped += 1;
        } else {
            let frame = self.frame;
            let sent = self
                .producer()
                .is_some_and(|p| p.push_bytes(&frame[..len]).is_ok());
            if !sent {
                // Full (the core never drained it) or unusable: start over.
                self.producer = None;
                let retried = self
                    .producer()
                    .is_some_and(|p| p.push_bytes(&frame[..len]).is_ok());
                if !retried {
                    self.dropped += 1;
                }
            }
        }
        self.flush();
    }
}

#[cfg(target_os = "none")]
#[defmt::global_logger]
struct Logger;

#[cfg(target_os = "none")]
// SAFETY: `acquire` takes `TAKEN` (panicking on re-entry) and `release`
// gives it back; `write`/`flush` are only called in between, as the trait
// requires.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        if TAKEN.swap(true, Ordering::Acquire) {
            panic!("defmt logger entered twice");
        }
        with(|s| {
            s.len = 0;
            s.too_long = false;
            s.encode(|e, sink| e.start_frame(|b| sink.append(b)));
        });
    }

    unsafe fn flush() {
        with(State::flush);
    }

    unsafe fn release() {
        with(|s| {
            s.encode(|e, sink| e.end_frame(|b| sink.append(b)));
            s.publish();
        });
        TAKEN.store(false, Ordering::Release);
    }

    unsafe fn write(bytes: &[u8]) {
        with(|s| s.encode(|e, sink| e.write(bytes, |b| sink.append(b))));
    }
}

/// The frame buffer, borrowed apart from the encoder that writes into it.
struct Sink<'a> {
    frame: &'a mut [u8; LOG_FRAME_MAX],
    len: &'a mut usize,
    too_long: &'a mut bool,
}

impl Sink<'_> {
    fn append(&mut self, bytes: &[u8]) {
        let end = (*self.len).saturating_add(bytes.len());
        match self.frame.get_mut(*self.len..end) {
            Some(dst) if !*self.too_long => {
                dst.copy_from_slice(bytes);
                *self.len += bytes.len();
            }
            _ => *self.too_long = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_assembled_and_a_too_long_one_marked() {
        let mut frame = [0u8; LOG_FRAME_MAX];
        let (mut len, mut too_long) = (0, false);
        let mut sink = Sink {
            frame: &mut frame,
            len: &mut len,
            too_long: &mut too_long,
        };
        sink.append(&[1, 2]);
        sink.append(&[]);
        sink.append(&[3]);
        assert_eq!((*sink.len, *sink.too_long), (3, false));
        sink.append(&[0; LOG_FRAME_MAX - 3]);
        assert_eq!((*sink.len, *sink.too_long), (LOG_FRAME_MAX, false));
        sink.append(&[9]);
        assert!(*sink.too_long);
        // Nothing more is taken once the frame is marked.
        assert_eq!(*sink.len, LOG_FRAME_MAX);
        assert_eq!(&frame[..3], &[1, 2, 3]);
    }

    #[test]
    fn an_encoded_frame_fits_the_buffer() {
        // Encoding a frame the way `acquire`/`write`/`release` do.
        let mut encoder = defmt::Encoder::new();
        let mut frame = [0u8; LOG_FRAME_MAX];
        let (mut len, mut too_long) = (0, false);
        let mut sink = Sink {
            frame: &mut frame,
            len: &mut len,
            too_long: &mut too_long,
        };
        encoder.start_frame(|b| sink.append(b));
        encoder.write(&[5, 0, 0, 0], |b| sink.append(b));
        encoder.end_frame(|b| sink.append(b));
        assert!(!*sink.too_long);
        assert!(*sink.len > 0 && *sink.len < 16);
    }
}
