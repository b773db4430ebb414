//! Model check of the ring's memory ordering with loom.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p shm-ring --release --test loom`
//!
//! Producer and consumer run on two loom threads over a 16-byte ring; the
//! frames (8, 16 and 8 bytes with prefix and padding) add up to more than
//! the ring holds, so the producer must wait for space and the second frame
//! wraps. Data bytes are loom atomics accessed
//! `Relaxed`, so if publication were not Release/Acquire loom would find an
//! execution where the consumer reads stale payload bytes (a partially
//! written frame) or a stale prefix (reads beyond what was published), and
//! the content assertions or a `Corrupt` error would fire.
#![cfg(loom)]

use loom::thread;
use shm_ring::{LoomMem, Ring, RingError};

fn model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let mut b = loom::model::Builder::new();
    // Keep the state space small on a 2-core machine
    // (LOOM_MAX_PREEMPTIONS overrides).
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(4);
    }
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    b.check(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        f();
    });
    println!(
        "{name}: {} executions explored",
        runs.load(Ordering::Relaxed)
    );
}

fn ring() -> (shm_ring::Producer<'static>, shm_ring::Consumer<'static>) {
    ring_of(16)
}

fn ring_of(size: u32) -> (shm_ring::Producer<'static>, shm_ring::Consumer<'static>) {
    // loom threads need 'static; one small allocation per execution.
    let mem: &'static LoomMem = Box::leak(Box::new(LoomMem::new(size)));
    Ring::init_loom(mem).split()
}

const MSGS: [&[u8]; 3] = [&[1, 2, 3], &[4, 5, 6, 7, 8], &[9, 10]];

/// Pushes `msgs` from a second loom thread (retrying while the ring is
/// full) and pops them on this one (retrying while it is empty), checking
/// that each arrives whole and in order.
fn exchange(
    tx: shm_ring::Producer<'static>,
    rx: &shm_ring::Consumer<'static>,
    msgs: &'static [&'static [u8]],
) {
    let producer = thread::spawn(move || {
        for m in msgs {
            loop {
                match tx.push_bytes(m) {
                    Ok(()) => break,
                    Err(RingError::Full) => thread::yield_now(),
                    Err(e) => panic!("producer: {e}"),
                }
            }
        }
    });
    let mut out = [0u8; 64];
    for m in msgs {
        loop {
            match rx.pop_bytes(&mut out) {
                Ok(Some(n)) => {
                    assert_eq!(&out[..n], *m, "torn or misordered frame");
                    break;
                }
                Ok(None) => thread::yield_now(),
                Err(e) => panic!("consumer: {e}"),
            }
        }
    }
    producer.join().unwrap();
}

#[test]
fn frames_arrive_whole_and_in_order() {
    model("frames", || {
        let (tx, rx) = ring();
        exchange(tx, &rx, &MSGS);
        assert_eq!(rx.is_empty(), Ok(true));
        assert_eq!(rx.stats().frames, 3);
    });
}

#[test]
fn typed_messages_and_free_space() {
    model("typed", || {
        let (tx, rx) = ring();
        let producer = thread::spawn(move || {
            for v in [0x0102_0304u32, 7] {
                loop {
                    // Never reports more room than the consumer released.
                    let free = tx.free_space().unwrap();
                    assert!(free <= 16);
                    match tx.push(&v) {
                        Ok(()) => break,
                        Err(RingError::Full) => thread::yield_now(),
                        Err(e) => panic!("producer: {e}"),
                    }
                }
            }
        });
        let mut scratch = [0u8; 16];
        let mut got = Vec::new();
        while got.len() < 2 {
            match rx.pop::<u32>(&mut scratch) {
                Ok(Some(v)) => got.push(v),
                Ok(None) => thread::yield_now(),
                Err(e) => panic!("consumer: {e}"),
            }
        }
        producer.join().unwrap();
        assert_eq!(got, [0x0102_0304, 7]);
        assert_eq!(rx.stats().bad_frames, 0);
    });
}

/// A consumer hands space back in batches (a quarter of the ring, or when
/// it reaches the last frame it knows of): over a 64-byte ring, frames of
/// 8, 8 and 48 bytes fill it, and the fourth needs space the consumer may
/// still hold unreleased (the first 8-byte frame alone is under a
/// quarter); the producer is never stuck and every frame arrives whole and
/// in order.
#[test]
fn batched_release_never_strands_the_producer() {
    const BATCH: [&[u8]; 4] = [&[1; 4], &[2; 4], &[3; 44], &[4; 4]];
    model("batched", || {
        let (tx, rx) = ring_of(64);
        exchange(tx, &rx, &BATCH);
        assert_eq!(rx.is_empty(), Ok(true));
        assert_eq!(rx.unreleased(), 0);
    });
}
