//! Two host threads over a heap buffer: order and content of 100k
//! messages, raw and typed, and a request/response channel.

mod common;

use std::thread;

use common::{pattern, Msg};
use shm_ring::{Channel, Ring, RingError, HEADER_LEN};

const COUNT: u64 = 100_000;

#[repr(C, align(4096))]
struct Area([u8; HEADER_LEN + 4096]);

fn spin() {
    // Two cores: let the other side run.
    thread::yield_now();
}

#[test]
fn hundred_thousand_raw_frames_in_order() {
    let mut area = Box::new(Area([0; HEADER_LEN + 4096]));
    let (tx, rx) = Ring::init(&mut area.0).unwrap().split();
    thread::scope(|s| {
        s.spawn(move || {
            for i in 0..COUNT {
                let msg = pattern(i, (i % 61) as usize);
                loop {
                    match tx.push_bytes(&msg) {
                        Ok(()) => break,
                        Err(RingError::Full) => spin(),
                        Err(e) => panic!("push {i}: {e}"),
                    }
                }
            }
        });
        let mut out = [0u8; 64];
        for i in 0..COUNT {
            let n = loop {
                match rx.pop_bytes(&mut out) {
                    Ok(Some(n)) => break n,
                    Ok(None) => spin(),
                    Err(e) => panic!("pop {i}: {e}"),
                }
            };
            assert_eq!(&out[..n], &pattern(i, (i % 61) as usize)[..], "message {i}");
        }
        assert_eq!(rx.stats().frames, COUNT);
        assert_eq!(rx.stats().bad_frames, 0);
    });
}

#[test]
fn hundred_thousand_typed_messages_in_order() {
    let mut area = Box::new(Area([0; HEADER_LEN + 4096]));
    let (tx, rx) = Ring::init(&mut area.0).unwrap().split();
    let make = |i: u64| match i % 3 {
        0 => Msg::Ping(i as u32),
        1 => Msg::Data {
            id: i as u16,
            bytes: pattern(i, (i % 40) as usize),
        },
        _ => Msg::Pair(i, (i % 100) as i8),
    };
    thread::scope(|s| {
        s.spawn(move || {
            for i in 0..COUNT {
                let msg = make(i);
                while let Err(e) = tx.push_versioned(1, &msg) {
                    assert_eq!(e, RingError::Full, "push {i}");
                    spin();
                }
            }
        });
        let mut scratch = [0u8; 128];
        for i in 0..COUNT {
            let got = loop {
                match rx.pop_versioned::<Msg>(1, &mut scratch) {
                    Ok(Some(m)) => break m,
                    Ok(None) => spin(),
                    Err(e) => panic!("pop {i}: {e}"),
                }
            };
            assert_eq!(got, make(i));
        }
    });
}

#[test]
fn channel_request_response() {
    #[repr(C, align(4096))]
    struct Pages([u8; 8192]);
    let mut pages = Box::new(Pages([0; 8192]));
    let (client, server) = Channel::init(&mut pages.0).unwrap().split();
    thread::scope(|s| {
        s.spawn(move || {
            let mut scratch = [0u8; 256];
            let mut served = 0;
            while served < 10_000 {
                match server.rx().pop::<Msg>(&mut scratch) {
                    Ok(Some(Msg::Ping(n))) => {
                        while server.tx().push(&Msg::Pair(u64::from(n), 1)) == Err(RingError::Full)
                        {
                            spin();
                        }
                        served += 1;
                    }
                    Ok(Some(other)) => panic!("unexpected {other:?}"),
                    Ok(None) => spin(),
                    Err(e) => panic!("{e}"),
                }
            }
        });
        let mut scratch = [0u8; 256];
        // Keep up to 8 requests in flight.
        let (mut sent, mut received) = (0u32, 0u32);
        while received < 10_000 {
            if sent < 10_000 && sent - received < 8 {
                client.tx().push(&Msg::Ping(sent)).unwrap();
                sent += 1;
            }
            match client.rx().pop::<Msg>(&mut scratch) {
                Ok(Some(m)) => {
                    assert_eq!(m, Msg::Pair(u64::from(received), 1));
                    received += 1;
                }
                Ok(None) => spin(),
                Err(e) => panic!("{e}"),
            }
        }
    });
}
