//! `decode` never panics, whatever bytes it is given.

mod common;

use manifest::{decode, ManifestError};
use proptest::prelude::*;

#[test]
fn every_truncation_is_an_error() {
    let bytes = common::encoded(&common::valid());
    for len in 0..bytes.len() {
        assert!(
            decode(&bytes[..len]).is_err(),
            "prefix of {len} bytes decoded"
        );
    }
    assert!(decode(&bytes).is_ok());
}

#[test]
fn empty_and_short_inputs() {
    assert_eq!(decode(&[]), Err(ManifestError::Malformed));
    assert_eq!(decode(b"BHM"), Err(ManifestError::Malformed));
    assert_eq!(decode(b"BHMF"), Err(ManifestError::Malformed));
}

#[test]
fn huge_lengths_are_rejected() {
    // Domain count varint far above the capacity of 8.
    let mut bytes = b"BHMF".to_vec();
    bytes.push(manifest::VERSION as u8);
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert_eq!(decode(&bytes), Err(ManifestError::Malformed));
    // Nine domains: one more than the capacity.
    let mut bytes = b"BHMF".to_vec();
    bytes.extend_from_slice(&[manifest::VERSION as u8, 0x09]);
    bytes.extend_from_slice(&[0; 64]);
    assert_eq!(decode(&bytes), Err(ManifestError::Malformed));
}

#[test]
fn random_bytes_never_panic() {
    // xorshift64*, deterministic.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut buf = [0u8; 512];
    for round in 0..20_000 {
        let len = (next() % 512) as usize;
        for b in buf[..len].iter_mut() {
            *b = next() as u8;
        }
        // Half of the inputs get a valid header so the body decoder is reached.
        if round % 2 == 0 && len >= 5 {
            buf[..5].copy_from_slice(b"BHMF\x02");
        }
        let _ = decode(&buf[..len]);
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), 0u8..8).prop_map(|(i, bit)| Mutation::Flip(i, bit)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    match *m {
        Mutation::Set(i, b) if !bytes.is_empty() => {
            let i = i % bytes.len();
            bytes[i] = b;
        }
        Mutation::Flip(i, bit) if !bytes.is_empty() => {
            let i = i % bytes.len();
            bytes[i] ^= 1 << bit;
        }
        Mutation::Insert(i, b) => {
            let i = i % (bytes.len() + 1);
            bytes.insert(i, b);
        }
        Mutation::Remove(i) if !bytes.is_empty() => {
            let i = i % bytes.len();
            bytes.remove(i);
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode(&bytes);
        let mut with_header = b"BHMF\x02".to_vec();
        with_header.extend_from_slice(&bytes);
        let _ = decode(&with_header);
    }

    #[test]
    fn mutated_encodings_never_panic(mutations in proptest::collection::vec(mutation(), 1..8)) {
        let mut bytes = common::encoded(&common::valid());
        for m in &mutations {
            apply(&mut bytes, m);
        }
        // Whatever decodes must also validate: decode never returns an invalid manifest.
        if let Ok(m) = decode(&bytes) {
            prop_assert_eq!(manifest::validate(&m), Ok(()));
        }
    }
}
