//! Property tests: the ring against a `VecDeque` model, and random header
//! and data contents (never a panic, never a write outside the area).

mod common;

use std::collections::VecDeque;

use common::{Mem, Msg};
use proptest::collection::vec;
use proptest::prelude::*;
use shm_ring::{frame_size, RingError, LAYOUT_VERSION, MAGIC};

fn msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        any::<u32>().prop_map(Msg::Ping),
        (any::<u16>(), vec(any::<u8>(), 0..80)).prop_map(|(id, bytes)| Msg::Data { id, bytes }),
        "[a-z]{0,40}".prop_map(Msg::Text),
        (any::<u64>(), any::<i8>()).prop_map(|(a, b)| Msg::Pair(a, b)),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Push(usize),
    PushMsg(Msg),
    Pop,
    PopMsg,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..300).prop_map(Op::Push),
        2 => msg().prop_map(Op::PushMsg),
        3 => Just(Op::Pop),
        2 => Just(Op::PopMsg),
    ]
}

fn encode(m: &Msg) -> Vec<u8> {
    let mut buf = [0u8; 512];
    postcard::to_slice(m, &mut buf).unwrap().to_vec()
}

fn decode(b: &[u8]) -> Option<Msg> {
    match postcard::take_from_bytes::<Msg>(b) {
        Ok((m, [])) => Some(m),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn matches_vecdeque_model(size_log in 4u32..9, ops in vec(op(), 1..150)) {
        let size = 1u32 << size_log;
        let m = Mem::with_size(size);
        let (tx, rx) = m.init().split();
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let mut used = 0usize;
        let mut bad = 0u64;
        let mut out = vec![0u8; size as usize];
        let max = size as usize - 4;
        for (i, op) in ops.into_iter().enumerate() {
            // Space the consumer has read but not yet handed back.
            let held = rx.unreleased() as usize;
            match op {
                Op::Push(len) => {
                    let bytes = common::pattern(i as u64, len);
                    let r = tx.push_bytes(&bytes);
                    if len > max {
                        prop_assert_eq!(r, Err(RingError::TooLarge { len, max }));
                    } else if used + held + frame_size(len as u32) as usize > size as usize {
                        prop_assert_eq!(r, Err(RingError::Full));
                    } else {
                        prop_assert_eq!(r, Ok(()));
                        used += frame_size(len as u32) as usize;
                        model.push_back(bytes);
                    }
                }
                Op::PushMsg(msg) => {
                    let bytes = encode(&msg);
                    let len = bytes.len();
                    let r = tx.push(&msg);
                    if len > max {
                        prop_assert_eq!(r, Err(RingError::TooLarge { len, max }));
                    } else if used + held + frame_size(len as u32) as usize > size as usize {
                        prop_assert_eq!(r, Err(RingError::Full));
                    } else {
                        prop_assert_eq!(r, Ok(()));
                        used += frame_size(len as u32) as usize;
                        model.push_back(bytes);
                    }
                }
                Op::Pop => {
                    let r = rx.pop_bytes(&mut out);
                    match model.pop_front() {
                        None => prop_assert_eq!(r, Ok(None)),
                        Some(b) => {
                            prop_assert_eq!(r, Ok(Some(b.len())));
                            prop_assert_eq!(&out[..b.len()], &b[..]);
                            used -= frame_size(b.len() as u32) as usize;
                        }
                    }
                }
                Op::PopMsg => {
                    let r = rx.pop::<Msg>(&mut out);
                    let mut expect = None;
                    while let Some(b) = model.pop_front() {
                        used -= frame_size(b.len() as u32) as usize;
                        match decode(&b) {
                            Some(m) => { expect = Some(m); break; }
                            None => bad += 1,
                        }
                    }
                    prop_assert_eq!(r, Ok(expect));
                    prop_assert_eq!(rx.stats().bad_frames, bad);
                }
            }
            // Consumed space comes back in batches of under a quarter of
            // the ring, and all of it once the consumer has drained it.
            let held = rx.unreleased();
            prop_assert!(held < size / 4 || held == 0, "{} held", held);
            prop_assert_eq!(tx.free_space(), Ok(size - used as u32 - held));
            prop_assert_eq!(rx.is_empty(), Ok(model.is_empty()));
            if model.is_empty() {
                prop_assert_eq!(rx.unreleased(), 0);
            }
        }
        prop_assert!(m.guards_intact());
    }

    /// Random header words and data bytes, then random operations with the
    /// test scribbling on the memory in between: every call returns (any
    /// result), nothing outside the area is written, and nothing reported
    /// exceeds what the ring can hold.
    #[test]
    fn garbage_never_panics(
        size_log in 4u32..8,
        words in vec(any::<u32>(), 48 + 64),
        plausible in proptest::array::uniform4(proptest::bool::weighted(0.8)),
        lag in 0u32..300,
        ops in vec((0u8..9, any::<u32>(), any::<u32>()), 0..60),
    ) {
        let size = 1u32 << size_log;
        let m = Mem::with_size(size);
        for (i, w) in words.iter().take(m.words()).enumerate() {
            m.set_word_at(i, *w);
        }
        // Often make the header pass the constant checks so the index and
        // frame checks get exercised.
        if plausible[0] { m.set_word_at(0, MAGIC); }
        if plausible[1] { m.set_word_at(1, LAYOUT_VERSION); }
        if plausible[2] { m.set_word_at(2, size); }
        // Indices that are frame starts (multiples of 8), the producer a
        // little ahead or too far.
        if plausible[3] {
            let consumer = words[32] & !7;
            m.set_word_at(16, consumer.wrapping_add((lag % (size + 16)) & !7));
            m.set_word_at(32, consumer);
        }
        let ring = match m.attach() {
            Ok(r) => r,
            Err(_) => m.init(),
        };
        let (tx, rx) = ring.split();
        let mut out = vec![0u8; 300];
        let mut scratch = vec![0u8; 300];
        for (op, a, b) in ops {
            match op {
                0 => { let _ = tx.push_bytes(&common::pattern(u64::from(a), (a % (size + 8)) as usize)); }
                1 => { let _ = tx.push(&Msg::Data { id: b as u16, bytes: vec![1; (a % 64) as usize] }); }
                2 => {
                    if let Ok(Some(n)) = rx.pop_bytes(&mut out[..(a % 300) as usize]) {
                        prop_assert!(n <= size as usize - 4);
                    }
                }
                3 => { let _ = rx.pop::<Msg>(&mut scratch); }
                4 => { let _ = rx.pop_versioned::<Msg>(a as u16, &mut scratch); let _ = rx.pop_borrowed::<&str>(&mut scratch); }
                5 | 6 => m.set_word_at((a as usize) % m.words(), b),
                7 => {
                    if let Ok(free) = tx.free_space() { prop_assert!(free <= size); }
                    let _ = rx.is_empty();
                    let _ = rx.skip();
                }
                _ => {
                    if a % 2 == 0 { tx.reset(); let _ = rx.resync(); } else { let _ = tx.resync(); let _ = rx.resync(); }
                }
            }
            prop_assert!(m.guards_intact());
        }
    }
}
