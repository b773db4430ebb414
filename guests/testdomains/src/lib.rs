//! Small domains that exercise the core from the inside, each a binary in
//! `src/bin`: `ping`/`pong` (a channel), `victim`/`hostile` (isolation),
//! `ticker`/`spinner` (scheduling), `crasher`/`survivor` (faults), `chaos`
//! (random hypercalls and domains running random bytes), `scribbler`
//! (garbage over a ring peer's pages). The random ones repeat the same
//! draws under Bochs unless built with another seed ([`build_seed`]).
//! They own only their own memory and must never assume an attack fails:
//! they report what the core answered, and the end-to-end tests judge it.
//! The few instructions that attack the core directly live in [`arch`].
#![no_std]

pub mod arch;

/// Reads a channel message: a length byte then text, at `gpa`.
pub fn read_message(gpa: u64, buf: &mut [u8; 64]) -> &str {
    let len = (arch::read_u8(gpa) as usize).min(63);
    for (i, b) in buf.iter_mut().take(len).enumerate() {
        *b = arch::read_u8(gpa + 1 + i as u64);
    }
    core::str::from_utf8(&buf[..len]).unwrap_or("?")
}

/// Writes a channel message (see [`read_message`]).
pub fn write_message(gpa: u64, text: &str) {
    let bytes = &text.as_bytes()[..text.len().min(63)];
    for (i, &b) in bytes.iter().enumerate() {
        arch::write_u8(gpa + 1 + i as u64, b);
    }
    arch::write_u8(gpa, bytes.len() as u8);
}

/// The seed given at build time in `BULKHEAD_TEST_SEED` (decimal, or hex
/// after `0x`), for the domains that draw random values: `None` when it is
/// unset, `Some(None)` when it is not a number.
pub fn build_seed() -> Option<Option<u64>> {
    option_env!("BULKHEAD_TEST_SEED").map(parse_seed)
}

/// Parses a seed: decimal, or hex after `0x`.
pub fn parse_seed(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_seed;

    #[test]
    fn seeds_parse_as_decimal_or_hex_and_nothing_else() {
        assert_eq!(parse_seed("7"), Some(7));
        assert_eq!(parse_seed("0xdeadbeef"), Some(0xdead_beef));
        assert_eq!(parse_seed("18446744073709551615"), Some(u64::MAX));
        for bad in ["", "0x", "-1", "12a", "0xg", " 7", "18446744073709551616"] {
            assert_eq!(parse_seed(bad), None, "{bad:?}");
        }
    }
}
