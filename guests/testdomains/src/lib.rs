//! Small domains that exercise the core from the inside, each a binary in
//! `src/bin`: `ping`/`pong` (a channel), `victim`/`hostile` (isolation),
//! `ticker`/`spinner` (scheduling), `crasher`/`survivor` (faults), `chaos`
//! (random hypercalls and domains running random bytes).
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
