//! Unit tests: layout, fill/drain, wrap-around, errors, corruption, reset.

extern crate std;

use std::boxed::Box;
use std::string::String;
use std::vec;
use std::vec::Vec;

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

use serde::{Deserialize, Serialize};

use crate::*;

/// Test memory the test can scribble on (as "the peer") while a ring uses
/// it: interior-mutable 64-bit words (aligned as a ring needs), with guard
/// words after the area.
struct Mem {
    words: Box<[AtomicU64]>,
    len: usize,
}

const GUARD: u64 = 0xDEAD_BEEF_DEAD_BEEF;

impl Mem {
    fn new(len: usize) -> Self {
        let words = (0..len.div_ceil(8) + 8)
            .map(|_| AtomicU64::new(GUARD))
            .collect();
        let m = Self { words, len };
        for w in &m.words[..len / 8] {
            w.store(0, SeqCst);
        }
        m
    }

    /// A ring with a `size`-byte data area.
    fn with_size(size: u32) -> Self {
        Self::new(HEADER_LEN + size as usize)
    }

    fn ptr(&self) -> *mut u8 {
        self.words.as_ptr().cast::<u8>().cast_mut()
    }

    fn init(&self) -> Ring<'_> {
        // SAFETY: the words live as long as the borrow of `self`, are
        // aligned to 8 and only ever accessed atomically.
        unsafe { Ring::init_raw(self.ptr(), self.len) }.unwrap()
    }

    fn attach(&self) -> Result<Ring<'_>, RingError> {
        // SAFETY: as in `init`.
        unsafe { Ring::attach_raw(self.ptr(), self.len) }
    }

    /// The little-endian `u32` at byte offset `off` (a multiple of 4).
    fn word(&self, off: usize) -> u32 {
        let b = self.words[off / 8].load(SeqCst).to_le_bytes();
        let i = off % 8;
        u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
    }

    fn set_word(&self, off: usize, v: u32) {
        for (i, b) in v.to_le_bytes().into_iter().enumerate() {
            self.set_byte(off + i, b);
        }
    }

    fn set_byte(&self, off: usize, v: u8) {
        let w = &self.words[off / 8];
        let mut b = w.load(SeqCst).to_le_bytes();
        b[off % 8] = v;
        w.store(u64::from_le_bytes(b), SeqCst);
    }

    /// Data byte at index `i` (mod size).
    fn set_data(&self, size: u32, i: u32, v: u8) {
        self.set_byte(HEADER_LEN + (i % size) as usize, v);
    }

    fn guards_intact(&self) -> bool {
        self.words[self.len.div_ceil(8)..]
            .iter()
            .all(|w| w.load(SeqCst) == GUARD)
    }
}

fn corrupt(what: Corruption) -> RingError {
    RingError::Corrupt { what }
}

fn pattern(seed: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seed as usize * 31 + i * 7) as u8)
        .collect()
}

#[test]
fn layout_and_sizes() {
    let m = Mem::new(4096);
    let r = m.init();
    assert_eq!(r.data_size(), 2048);
    assert_eq!(m.word(OFF_MAGIC), MAGIC);
    assert_eq!(m.word(OFF_VERSION), LAYOUT_VERSION);
    assert_eq!(m.word(OFF_SIZE), 2048);
    assert_eq!(Mem::new(HEADER_LEN + 16).init().data_size(), 16);
    assert_eq!(Mem::new(HEADER_LEN + 31).init().data_size(), 16);
    assert_eq!(Mem::new(HEADER_LEN + 4096).init().data_size(), 4096);
    // SAFETY: the pointer is valid for `len` bytes for the call.
    let small = unsafe { Ring::init_raw(m.ptr(), HEADER_LEN + 15) };
    assert_eq!(
        small.err(),
        Some(RingError::Layout {
            what: LayoutError::TooSmall
        })
    );
    // SAFETY: as above, one byte further in, still in bounds.
    let odd = unsafe { Ring::init_raw(m.ptr().add(1), 1024) };
    assert_eq!(
        odd.err(),
        Some(RingError::Layout {
            what: LayoutError::Misaligned
        })
    );
    // The indices sit on their own cache lines.
    assert_eq!(OFF_PRODUCER % 64, 0);
    assert_eq!(OFF_CONSUMER - OFF_PRODUCER, 64);
    assert_eq!(HEADER_LEN - OFF_CONSUMER, 64);
}

#[test]
fn safe_constructor_and_attach() {
    #[repr(C, align(64))]
    struct Buf([u8; HEADER_LEN + 64]);
    let mut buf = Box::new(Buf([0; HEADER_LEN + 64]));
    assert_eq!(
        Ring::attach(&mut buf.0).err(),
        Some(corrupt(Corruption::BadMagic { found: 0 }))
    );
    {
        let (tx, _rx) = Ring::init(&mut buf.0).unwrap().split();
        tx.push_bytes(b"hello").unwrap();
        tx.push(&42u64).unwrap();
    }
    // The other side attaches later and finds both frames.
    let (_tx, rx) = Ring::attach(&mut buf.0).unwrap().split();
    let mut out = [0u8; 60];
    assert_eq!(rx.pop_bytes(&mut out), Ok(Some(5)));
    assert_eq!(&out[..5], b"hello");
    assert_eq!(rx.pop::<u64>(&mut out), Ok(Some(42)));
    assert_eq!(rx.pop::<u64>(&mut out), Ok(None));
}

#[test]
fn fill_and_drain() {
    let m = Mem::with_size(256);
    let (tx, rx) = m.init().split();
    assert_eq!(tx.free_space(), Ok(256));
    assert_eq!(rx.is_empty(), Ok(true));
    let mut n = 0u32;
    loop {
        match tx.push_bytes(&pattern(n, 10)) {
            Ok(()) => n += 1,
            Err(RingError::Full) => break,
            Err(e) => panic!("{e}"),
        }
    }
    // 4 + 10 bytes padded to 16.
    assert_eq!(frame_size(10), 16);
    assert_eq!(n, 256 / 16);
    assert_eq!(tx.free_space(), Ok(0));
    assert_eq!(tx.stats().full, 1);
    assert_eq!(rx.is_empty(), Ok(false));
    let mut out = [0u8; 32];
    for i in 0..n {
        assert_eq!(rx.pop_bytes(&mut out), Ok(Some(10)));
        assert_eq!(&out[..10], &pattern(i, 10)[..]);
    }
    assert_eq!(rx.pop_bytes(&mut out), Ok(None));
    assert_eq!(rx.is_empty(), Ok(true));
    assert_eq!(tx.free_space(), Ok(256));
    assert_eq!(rx.stats().frames, u64::from(n));
    assert_eq!(rx.stats().bytes, u64::from(n) * 10);
    assert!(m.guards_intact());
}

#[test]
fn full_never_overwrites_unread_data() {
    let m = Mem::with_size(32);
    let (tx, rx) = m.init().split();
    tx.push_bytes(&[1; 12]).unwrap(); // 16 bytes
    tx.push_bytes(&[2; 3]).unwrap(); // 7 padded to 8 bytes, 8 left
    assert_eq!(tx.push_bytes(&[3; 5]), Err(RingError::Full)); // 9 -> 16
    assert_eq!(tx.push_bytes(&[]), Ok(())); // an empty frame fits exactly
    assert_eq!(tx.push_bytes(&[]), Err(RingError::Full));
    assert_eq!(tx.push(&()), Err(RingError::Full));
    let mut out = [0u8; 32];
    assert_eq!(rx.pop_bytes(&mut out), Ok(Some(12)));
    assert_eq!(&out[..12], &[1; 12]);
    // 16 bytes free now; a 13-byte payload does not fit, 12 does.
    assert_eq!(tx.push_bytes(&[4; 13]), Err(RingError::Full));
    tx.push_bytes(&[4; 12]).unwrap();
    assert_eq!(rx.pop_bytes(&mut out), Ok(Some(3)));
    assert_eq!(&out[..3], &[2; 3]);
    assert_eq!(rx.pop_bytes(&mut out), Ok(Some(0)));
    assert_eq!(rx.pop_bytes(&mut out), Ok(Some(12)));
    assert_eq!(&out[..12], &[4; 12]);
    assert_eq!(tx.stats().full, 4);
}

#[test]
fn too_large() {
    let m = Mem::with_size(64);
    let (tx, rx) = m.init().split();
    assert_eq!(tx.max_message(), 60);
    assert_eq!(
        tx.push_bytes(&[0; 61]),
        Err(RingError::TooLarge { len: 61, max: 60 })
    );
    tx.push_bytes(&[0; 60]).unwrap();
    // Too large is reported as such even when the ring is full.
    let big: Vec<u8> = vec![7; 70];
    assert_eq!(tx.push(&big), Err(RingError::TooLarge { len: 71, max: 60 }));
    let mut out = [0u8; 64];
    assert_eq!(rx.pop_bytes(&mut out), Ok(Some(60)));
    assert_eq!(tx.push(&big), Err(RingError::TooLarge { len: 71, max: 60 }));
    let fits: Vec<u8> = vec![7; 59]; // 1-byte length + 59 = 60
    tx.push(&fits).unwrap();
    assert_eq!(rx.pop::<Vec<u8>>(&mut out), Ok(Some(fits)));
}

/// Advances a fresh ring so both indices sit at `N + k` for every frame
/// start `k`, then pushes and pops a message of every length.
#[test]
fn wrap_around_at_every_offset() {
    const N: u32 = 64;
    for k in (0..N).step_by(FRAME_ALIGN as usize) {
        let m = Mem::with_size(N);
        let (tx, rx) = m.init().split();
        let mut out = [0u8; N as usize];
        // Move by N + k bytes in one or two frames.
        for step in [N, k] {
            if step > 0 {
                tx.push_bytes(&pattern(0, (step - 4) as usize)).unwrap();
                assert!(rx.pop_bytes(&mut out).unwrap().is_some());
            }
        }
        assert_eq!(m.word(OFF_PRODUCER), N + k);
        for len in 0..=(N - 4) as usize {
            let msg = pattern(k * 100 + len as u32, len);
            tx.push_bytes(&msg).unwrap();
            assert_eq!(rx.pop_bytes(&mut out), Ok(Some(len)), "k={k} len={len}");
            assert_eq!(&out[..len], &msg[..], "k={k} len={len}");
        }
        // Typed messages across the boundary too.
        for v in [0u64, 1, u64::MAX, 0x1234_5678_9abc] {
            tx.push(&(v, String::from("wrap"))).unwrap();
            assert_eq!(
                rx.pop::<(u64, String)>(&mut out),
                Ok(Some((v, "wrap".into())))
            );
        }
        assert!(m.guards_intact());
    }
}

#[test]
fn indices_wrap_past_u32_max() {
    let m = Mem::with_size(64);
    let _ = m.init();
    let start = u32::MAX - 39; // 2^32 - 40, a frame start
    m.set_word(OFF_PRODUCER, start);
    m.set_word(OFF_CONSUMER, start);
    let (tx, rx) = m.attach().unwrap().split();
    let mut out = [0u8; 64];
    for i in 0..50u32 {
        let msg = pattern(i, (i % 27) as usize);
        tx.push_bytes(&msg).unwrap();
        tx.push_bytes(&msg).unwrap();
        assert_eq!(rx.pop_bytes(&mut out), Ok(Some(msg.len())));
        assert_eq!(&out[..msg.len()], &msg[..]);
        assert_eq!(rx.pop_bytes(&mut out), Ok(Some(msg.len())));
        assert_eq!(&out[..msg.len()], &msg[..]);
    }
    assert!(m.word(OFF_PRODUCER) < start);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Msg {
    Ping(u32),
    Data { id: u16, bytes: Vec<u8> },
    Text(String),
}

#[test]
fn bad_frames_are_skipped_and_counted() {
    let m = Mem::with_size(128);
    let (tx, rx) = m.init().split();
    let mut out = [0u8; 128];
    tx.push_bytes(&[0xff, 0xff, 0xff]).unwrap(); // truncated varint
    tx.push_bytes(&[9]).unwrap(); // no such variant
    tx.push(&Msg::Ping(5)).unwrap();
    tx.push_bytes(&[0, 1, 2]).unwrap(); // Ping(1) plus a trailing byte
    tx.push_bytes(&[]).unwrap();
    assert_eq!(rx.pop::<Msg>(&mut out), Ok(Some(Msg::Ping(5))));
    assert_eq!(rx.stats().bad_frames, 2);
    assert_eq!(rx.pop::<Msg>(&mut out), Ok(None));
    assert_eq!(rx.stats().bad_frames, 4);
    assert_eq!(rx.stats().frames, 5);

    // The borrowed variant reports each bad frame, then carries on.
    tx.push_bytes(&[3, 0xff]).unwrap(); // &str length 3, one byte
    tx.push(&"borrowed").unwrap();
    assert_eq!(rx.pop_borrowed::<&str>(&mut out), Err(RingError::BadFrame));
    assert_eq!(rx.pop_borrowed::<&str>(&mut out), Ok(Some("borrowed")));
    assert_eq!(rx.stats().bad_frames, 5);
}

#[test]
fn buffer_too_small_keeps_the_frame() {
    let m = Mem::with_size(64);
    let (tx, rx) = m.init().split();
    tx.push(&Msg::Data {
        id: 3,
        bytes: vec![1; 20],
    })
    .unwrap();
    tx.push(&Msg::Text("x".into())).unwrap();
    let mut small = [0u8; 8];
    assert_eq!(
        rx.pop::<Msg>(&mut small),
        Err(RingError::BufferTooSmall { needed: 23 })
    );
    let mut big = [0u8; 64];
    assert!(matches!(
        rx.pop::<Msg>(&mut big),
        Ok(Some(Msg::Data { id: 3, .. }))
    ));
    assert_eq!(
        rx.pop_bytes(&mut [0u8; 1]),
        Err(RingError::BufferTooSmall { needed: 3 })
    );
    assert_eq!(rx.skip(), Ok(true));
    assert_eq!(rx.skip(), Ok(false));
}

#[test]
fn versioning() {
    let m = Mem::with_size(128);
    let (tx, rx) = m.init().split();
    let mut out = [0u8; 128];
    tx.push_versioned(2, &Msg::Ping(1)).unwrap();
    tx.push_versioned(1, &Msg::Ping(2)).unwrap();
    tx.push(&Envelope {
        version: 2,
        body: Msg::Text("hi".into()),
    })
    .unwrap();
    tx.push_bytes(&[2, 7]).unwrap(); // version 2, bad body
    tx.push_bytes(&[0xff]).unwrap(); // not even a version
    assert_eq!(rx.pop_versioned::<Msg>(2, &mut out), Ok(Some(Msg::Ping(1))));
    assert_eq!(
        rx.pop_versioned::<Msg>(2, &mut out),
        Err(RingError::Version {
            expected: 2,
            found: 1
        })
    );
    assert_eq!(
        rx.pop_versioned::<Msg>(2, &mut out),
        Ok(Some(Msg::Text("hi".into())))
    );
    assert_eq!(rx.pop_versioned::<Msg>(2, &mut out), Ok(None));
    let s = rx.stats();
    assert_eq!((s.version_errors, s.bad_frames, s.frames), (1, 2, 5));
}

/// Each kind of header corruption is reported (without panicking), is
/// sticky, and `reset` + `resync` recover.
#[test]
fn corrupted_headers_are_detected_and_reset_recovers() {
    type Scribble = fn(&Mem);
    let cases: [(&str, Scribble, Corruption, bool); 9] = [
        (
            "magic",
            |m| m.set_word(OFF_MAGIC, 0x1234),
            Corruption::BadMagic { found: 0x1234 },
            true,
        ),
        (
            "size",
            |m| m.set_word(OFF_SIZE, 64),
            Corruption::BadSize { found: 64 },
            true,
        ),
        (
            "producer too far ahead",
            |m| m.set_word(OFF_PRODUCER, 16 + 33),
            Corruption::ProducerIndex {
                consumer: 16,
                last: 16,
                found: 49,
            },
            false,
        ),
        (
            "producer backwards",
            |m| m.set_word(OFF_PRODUCER, 8),
            Corruption::ProducerIndex {
                consumer: 16,
                last: 16,
                found: 8,
            },
            false,
        ),
        (
            "producer not a multiple of 8",
            |m| m.set_word(OFF_PRODUCER, 16 + 3),
            Corruption::ProducerIndex {
                consumer: 16,
                last: 16,
                found: 19,
            },
            false,
        ),
        (
            "length past published",
            |m| {
                m.set_data(32, 16, 9);
                m.set_word(OFF_PRODUCER, 16 + 8);
            },
            Corruption::BadLength {
                len: 9,
                available: 4,
            },
            false,
        ),
        (
            "huge length",
            |m| {
                for i in 16..20 {
                    m.set_data(32, i, 0xff);
                }
                m.set_word(OFF_PRODUCER, 16 + 16);
            },
            Corruption::BadLength {
                len: u32::MAX,
                available: 12,
            },
            false,
        ),
        (
            "consumer not a multiple of 8",
            |m| m.set_word(OFF_CONSUMER, 12),
            Corruption::ConsumerIndex {
                producer: 16,
                last: 0,
                found: 12,
            },
            true,
        ),
        (
            "consumer past producer",
            |m| m.set_word(OFF_CONSUMER, 40),
            Corruption::ConsumerIndex {
                producer: 16,
                last: 0,
                found: 40,
            },
            true,
        ),
    ];
    for (name, scribble, what, producer_sees) in cases {
        let m = Mem::with_size(32);
        let (tx, rx) = m.init().split();
        let mut out = [0u8; 32];
        // Move both indices to 16 first.
        tx.push_bytes(&[0; 12]).unwrap();
        assert_eq!(rx.pop_bytes(&mut out), Ok(Some(12)));
        scribble(&m);
        if producer_sees {
            assert_eq!(tx.push_bytes(&[0; 28]), Err(corrupt(what)), "{name}");
            assert_eq!(tx.push_bytes(&[1]), Err(corrupt(what)), "{name}: sticky");
            assert_eq!(tx.free_space(), Err(corrupt(what)), "{name}");
            assert_eq!(tx.stats().corrupt, 1);
        }
        if !matches!(what, Corruption::ConsumerIndex { .. }) {
            assert_eq!(rx.pop_bytes(&mut out), Err(corrupt(what)), "{name}");
            assert_eq!(rx.is_empty(), Err(corrupt(what)), "{name}: sticky");
            assert_eq!(rx.pop::<u8>(&mut out), Err(corrupt(what)), "{name}");
            assert_eq!(rx.stats().corrupt, 1);
        }
        assert!(m.guards_intact(), "{name}");
        // The owner resets while the peer is idle; the peer resyncs.
        tx.reset();
        rx.resync().unwrap();
        assert_eq!(m.word(OFF_PRODUCER), 0);
        tx.push_bytes(b"again").unwrap();
        assert_eq!(rx.pop_bytes(&mut out), Ok(Some(5)), "{name}");
        assert_eq!(&out[..5], b"again");
        // Either side may be the owner.
        rx.reset();
        tx.resync().unwrap();
        tx.push(&7u8).unwrap();
        assert_eq!(rx.pop::<u8>(&mut out), Ok(Some(7)), "{name}");
    }
}

#[test]
fn consumer_index_backwards() {
    let m = Mem::with_size(32);
    let (tx, rx) = m.init().split();
    let mut out = [0u8; 32];
    tx.push_bytes(&[0; 12]).unwrap();
    assert_eq!(rx.pop_bytes(&mut out), Ok(Some(12)));
    assert_eq!(tx.free_space(), Ok(32)); // producer has seen consumer = 16
    m.set_word(OFF_CONSUMER, 4);
    assert_eq!(
        tx.free_space(),
        Err(corrupt(Corruption::ConsumerIndex {
            producer: 16,
            last: 16,
            found: 4
        }))
    );
}

#[test]
fn attach_checks_every_header_field() {
    let m = Mem::with_size(64);
    let _ = m.init();
    assert!(m.attach().is_ok());
    let bad: [(usize, u32, Corruption); 7] = [
        (OFF_MAGIC, 0, Corruption::BadMagic { found: 0 }),
        (OFF_VERSION, 1, Corruption::BadLayoutVersion { found: 1 }),
        (OFF_SIZE, 48, Corruption::BadSize { found: 48 }),
        (OFF_SIZE, 128, Corruption::BadSize { found: 128 }),
        (OFF_SIZE, 8, Corruption::BadSize { found: 8 }),
        (OFF_SIZE, 0, Corruption::BadSize { found: 0 }),
        (
            OFF_PRODUCER,
            65,
            Corruption::ProducerIndex {
                consumer: 0,
                last: 0,
                found: 65,
            },
        ),
    ];
    for (off, v, what) in bad {
        let _ = m.init();
        m.set_word(off, v);
        assert_eq!(m.attach().err(), Some(corrupt(what)), "offset {off} = {v}");
    }
    // A resync against a bad header fails and leaves the half faulted.
    let (tx, _rx) = m.init().split();
    m.set_word(OFF_VERSION, 9);
    assert_eq!(
        tx.resync(),
        Err(corrupt(Corruption::BadLayoutVersion { found: 9 }))
    );
}

#[test]
fn own_index_is_never_read_back() {
    let m = Mem::with_size(64);
    let (tx, rx) = m.init().split();
    let mut out = [0u8; 64];
    tx.push_bytes(&[1, 2]).unwrap();
    // The consumer scribbles on the producer's index after reading it.
    assert_eq!(rx.pop_bytes(&mut out), Ok(Some(2)));
    m.set_word(OFF_PRODUCER, 0xAAAA_AAAA);
    tx.push_bytes(&[3]).unwrap(); // republished from the producer's own copy
    assert_eq!(m.word(OFF_PRODUCER), 16);
    assert_eq!(rx.pop_bytes(&mut out), Ok(Some(1)));
    assert_eq!(out[0], 3);
}

#[test]
fn channel_round_trip() {
    #[repr(C, align(4096))]
    struct Pages([u8; 8192]);
    let mut pages = Box::new(Pages([0; 8192]));
    let (a, b) = Channel::init(&mut pages.0).unwrap().split();
    assert_eq!(a.tx().data_size(), 2048);
    let mut scratch = [0u8; 256];
    a.tx().push(&Msg::Ping(1)).unwrap();
    assert_eq!(b.rx().pop::<Msg>(&mut scratch), Ok(Some(Msg::Ping(1))));
    b.tx().push(&Msg::Text("pong".into())).unwrap();
    assert_eq!(
        a.rx().pop::<Msg>(&mut scratch),
        Ok(Some(Msg::Text("pong".into())))
    );
    assert_eq!(a.rx().is_empty(), Ok(true));
    assert_eq!(b.rx().is_empty(), Ok(true));
    a.tx().push(&Msg::Ping(2)).unwrap();
    let _ = (a, b);

    // A responder attaching later sees the pending request.
    let ptr = pages.0.as_mut_ptr();
    // SAFETY: `pages` outlives `resp` and nothing else touches it meanwhile.
    let resp = unsafe { Channel::attach_raw(ptr, 8192) }
        .unwrap()
        .into_responder();
    assert_eq!(resp.rx().pop::<Msg>(&mut scratch), Ok(Some(Msg::Ping(2))));
    resp.reset();
    resp.resync().unwrap();
    let (tx, rx) = resp.into_parts();
    assert_eq!(rx.is_empty(), Ok(true));
    assert_eq!(tx.free_space(), Ok(2048));
}

#[test]
fn channel_of_odd_length_stays_aligned() {
    let m = Mem::new(1000);
    // SAFETY: `m` outlives the channel; accesses are atomic.
    let ch = unsafe { Channel::init_raw(m.ptr(), 1000) }.unwrap();
    let init = ch.into_initiator();
    // Halves of 448 and 552 bytes: 256 data bytes each.
    assert_eq!(init.tx().data_size(), 256);
    assert_eq!(init.rx().data_size(), 256);
    assert_eq!(m.word(448 + OFF_MAGIC), MAGIC);
    assert!(m.guards_intact());
}

#[test]
fn deferred_release_keeps_frames_for_a_consumer_that_dies() {
    let mem = Mem::with_size(64);
    let (tx, rx) = mem.init().split();
    rx.defer_release(true);
    for v in 1u8..=3 {
        tx.push_bytes(&[v; 4]).unwrap();
    }
    let mut out = [0u8; 8];
    assert_eq!(rx.pop_bytes(&mut out), Ok(Some(4)));
    assert_eq!(rx.pop_bytes(&mut out), Ok(Some(4)));
    // Nothing released: the shared index has not moved, the space is
    // still the producer's to wait for.
    assert_eq!(mem.word(OFF_CONSUMER), 0);
    assert_eq!(rx.position(), 16);
    assert_eq!(tx.free_space(), Ok(64 - 24));
    // The consumer dies here; a new one attaches and finds both again.
    let again = mem.attach().unwrap().into_consumer();
    assert_eq!(again.position(), 0);
    assert_eq!(again.pop_bytes(&mut out), Ok(Some(4)));
    assert_eq!(out[..4], [1; 4]);
    // Releasing hands the space back.
    rx.release();
    assert_eq!(mem.word(OFF_CONSUMER), 16);
    assert_eq!(tx.free_space(), Ok(64 - 8));
    // Turning deferral off releases what is pending and releases as it goes.
    assert_eq!(rx.pop_bytes(&mut out), Ok(Some(4)));
    rx.defer_release(false);
    assert_eq!(mem.word(OFF_CONSUMER), 24);
}

#[test]
fn skip_to_moves_only_to_a_frame_start_that_was_published() {
    let mem = Mem::with_size(64);
    let (tx, rx) = mem.init().split();
    rx.defer_release(true);
    tx.push_bytes(&[1; 4]).unwrap();
    tx.push_bytes(&[2; 6]).unwrap();
    tx.push_bytes(&[3; 2]).unwrap();
    // Not frame starts, or beyond what was published: nothing moves.
    // Frames of 8, 16 and 8 bytes: starts 0, 8, 24; the end 32.
    for bad in [3, 9, 16, 17, 30, 40, 100, u32::MAX] {
        assert_eq!(rx.skip_to(bad), Ok(None), "{bad}");
        assert_eq!(rx.position(), 0);
    }
    assert_eq!(rx.skip_to(0), Ok(Some(0)));
    // Past the first two frames.
    assert_eq!(rx.skip_to(24), Ok(Some(2)));
    assert_eq!(rx.position(), 24);
    assert_eq!(mem.word(OFF_CONSUMER), 0, "deferred: not released yet");
    let mut out = [0u8; 8];
    assert_eq!(rx.pop_bytes(&mut out), Ok(Some(2)));
    assert_eq!(out[..2], [3; 2]);
    assert_eq!(rx.stats().frames, 3);
    // Without deferral a skip releases at once; positions wrap.
    let mem = Mem::with_size(16);
    let (tx, rx) = mem.init().split();
    for v in 0..20u8 {
        tx.push_bytes(&[v; 2]).unwrap();
        let end = rx.position().wrapping_add(8);
        assert_eq!(rx.skip_to(end), Ok(Some(1)));
        assert_eq!(mem.word(OFF_CONSUMER), end);
    }
}

#[test]
fn consumed_space_returns_in_quarters_and_all_of_it_when_drained() {
    let mem = Mem::with_size(256);
    let (tx, rx) = mem.init().split();
    // Twelve 16-byte frames (192 of 256 bytes).
    for v in 0..12u8 {
        tx.push_bytes(&[v; 12]).unwrap();
    }
    let mut out = [0u8; 16];
    // The first three frames (48 bytes, under a quarter) stay with the
    // consumer: the shared index does not move.
    for v in 0..3u8 {
        assert_eq!(rx.pop_bytes(&mut out), Ok(Some(12)));
        assert_eq!(out[..12], [v; 12]);
        assert_eq!(mem.word(OFF_CONSUMER), 0);
        assert_eq!(rx.unreleased(), 16 * (u32::from(v) + 1));
    }
    assert_eq!(tx.free_space(), Ok(64));
    // The fourth makes a quarter: all four go back at once.
    assert_eq!(rx.pop_bytes(&mut out), Ok(Some(12)));
    assert_eq!(mem.word(OFF_CONSUMER), 64);
    assert_eq!(rx.unreleased(), 0);
    assert_eq!(tx.free_space(), Ok(128));
    // The last frame published hands everything back, however little.
    for _ in 4..11 {
        rx.pop_bytes(&mut out).unwrap();
    }
    assert_eq!(mem.word(OFF_CONSUMER), 128);
    assert_eq!(rx.pop_bytes(&mut out), Ok(Some(12)));
    assert_eq!(out[..12], [11; 12]);
    assert_eq!(mem.word(OFF_CONSUMER), 192);
    assert_eq!(tx.free_space(), Ok(256));
    assert_eq!(rx.pop_bytes(&mut out), Ok(None));
    // So does a frame that is the last one the consumer knows of even when
    // the producer has published more since.
    tx.push_bytes(&[1; 4]).unwrap();
    assert!(!rx.is_empty().unwrap());
    tx.push_bytes(&[2; 4]).unwrap();
    assert_eq!(rx.pop_bytes(&mut out), Ok(Some(4)));
    assert_eq!(mem.word(OFF_CONSUMER), 200);
    assert_eq!(rx.pop_bytes(&mut out), Ok(Some(4)));
    assert_eq!(mem.word(OFF_CONSUMER), 208);
    assert!(mem.guards_intact());
}
