//! `LOG_FLUSH`: the core's side of a domain's log ring.
//!
//! A domain writes encoded log records (`rt` writes `defmt` frames) into a
//! one-page `shm-ring` ring in its own memory and asks the core to drain it.
//! The core copies the page out through the EPT, reads it with the ring's
//! own defensive consumer (the domain may have written anything there), prints
//! every frame as one console line `defmt:NAME:HEX`, and writes only the new
//! consumer index back. Nothing of the domain's is trusted or kept except the
//! ring's address, so that frames still waiting when the domain stops are
//! printed too ([`drain_on_stop`]).

use hypercall_abi::{Status, LOG_FRAME_MAX, LOG_FRAME_TOKEN as TOKEN, LOG_RING_BYTES};
use shm_ring::{Ring, RingError, OFF_CONSUMER};

use crate::{LineSource, Platform, Vcpu};

const RING: usize = LOG_RING_BYTES as usize;

/// A copy of the domain's ring page, aligned as the ring code requires.
#[repr(C, align(64))]
struct Page([u8; RING]);

/// Longest console line a frame becomes: the token, a 16-byte name, `:`,
/// two hex digits per byte.
const LINE_MAX: usize = TOKEN.len() + 16 + 1 + 2 * LOG_FRAME_MAX;

/// Drains the ring at `gpa` and remembers it. Returns the frames printed.
/// Out of line: its page-sized buffer must not weigh on the exit path's
/// stack frame.
#[inline(never)]
pub(crate) fn flush(
    vcpu: &mut Vcpu,
    platform: &mut impl Platform,
    gpa: u64,
) -> Result<u64, Status> {
    if !gpa.is_multiple_of(LOG_RING_BYTES) {
        return Err(Status::InvalidAddress);
    }
    let mut page = Page([0; RING]);
    if !platform.read_guest(gpa, &mut page.0) {
        return Err(Status::InvalidAddress);
    }
    // The consumer index goes back at the end; check now that it can, by
    // writing back what was just read (the domain is not running).
    let consumer_at = gpa + OFF_CONSUMER as u64;
    let old = [
        page.0[OFF_CONSUMER],
        page.0[OFF_CONSUMER + 1],
        page.0[OFF_CONSUMER + 2],
        page.0[OFF_CONSUMER + 3],
    ];
    if !platform.write_guest(consumer_at, &old) {
        return Err(Status::InvalidAddress);
    }
    let mut printed = 0;
    let outcome = drain(vcpu, platform, &mut page, &mut printed);
    // Whatever was consumed (also before a corruption was found) is released.
    let new = &page.0[OFF_CONSUMER..OFF_CONSUMER + 4];
    if new != old {
        let _ = platform.write_guest(consumer_at, new);
    }
    match outcome {
        Ok(()) => {
            vcpu.log_ring = Some(gpa);
            Ok(printed)
        }
        Err(_) => {
            vcpu.log_ring = None;
            Err(Status::InvalidArgument)
        }
    }
}

/// Prints what is left in the ring the domain last flushed, if any: called
/// when the domain stops, so its last records (a fault's cause, say) are
/// not lost. A ring that no longer reads is left alone.
#[cold]
#[inline(never)]
pub(crate) fn drain_on_stop(vcpu: &mut Vcpu, platform: &mut impl Platform) {
    if let Some(gpa) = vcpu.log_ring {
        let _ = flush(vcpu, platform, gpa);
    }
}

fn drain(
    vcpu: &mut Vcpu,
    platform: &mut impl Platform,
    page: &mut Page,
    printed: &mut u64,
) -> Result<(), RingError> {
    let consumer = Ring::attach(&mut page.0)?.into_consumer();
    let mut frame = [0u8; LOG_FRAME_MAX];
    loop {
        match consumer.pop_bytes(&mut frame) {
            Ok(Some(len)) => {
                print_frame(vcpu, platform, &frame[..len]);
                *printed += 1;
            }
            Ok(None) => return Ok(()),
            Err(RingError::BufferTooSmall { needed }) => {
                consumer.skip()?;
                let mut line = TextLine::<96>::new();
                line.push_str("log frame of ");
                line.push_number(needed as u64);
                line.push_str(" bytes skipped (longer than LOG_FRAME_MAX)");
                vcpu.recent.push(line.as_bytes());
                platform.guest_line(vcpu.name, LineSource::Hypercall, line.as_str());
            }
            Err(e) => return Err(e),
        }
    }
}

fn print_frame(vcpu: &mut Vcpu, platform: &mut impl Platform, frame: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut line = TextLine::<LINE_MAX>::new();
    line.push_str(TOKEN);
    line.push_str(vcpu.name);
    line.push_str(":");
    for &b in frame {
        line.push_byte(HEX[(b >> 4) as usize]);
        line.push_byte(HEX[(b & 15) as usize]);
    }
    vcpu.recent.push(line.as_bytes());
    platform.guest_line(vcpu.name, LineSource::Hypercall, line.as_str());
}

/// A bounded line of printable ASCII built on the stack (what does not fit
/// is cut).
struct TextLine<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> TextLine<N> {
    fn new() -> Self {
        Self {
            bytes: [0; N],
            len: 0,
        }
    }

    fn push_byte(&mut self, b: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = if (0x20..=0x7e).contains(&b) { b } else { b'.' };
            self.len += 1;
        }
    }

    fn push_str(&mut self, s: &str) {
        s.bytes().for_each(|b| self.push_byte(b));
    }

    fn push_number(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        digits[i..].iter().for_each(|&d| self.push_byte(d));
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    fn as_str(&self) -> &str {
        // Only printable ASCII is ever stored.
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakePlatform;
    use std::string::String;
    use std::vec::Vec;

    const AT: u64 = 0x2000;

    /// Guest memory with a fresh log ring at [`AT`] holding `frames`.
    fn memory_with(frames: &[&[u8]]) -> FakePlatform {
        let mut page = Page([0; RING]);
        let producer = Ring::init(&mut page.0).unwrap().into_producer();
        for f in frames {
            producer.push_bytes(f).unwrap();
        }
        let mut memory = std::vec![0u8; 0x4000];
        memory[AT as usize..AT as usize + RING].copy_from_slice(&page.0);
        FakePlatform {
            memory,
            ..Default::default()
        }
    }

    fn texts(p: &FakePlatform) -> Vec<String> {
        p.lines.iter().map(|(_, _, t)| t.clone()).collect()
    }

    fn consumer_index(p: &FakePlatform) -> u32 {
        let at = AT as usize + OFF_CONSUMER;
        u32::from_le_bytes(p.memory[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn frames_are_printed_as_hex_and_released() {
        let mut p = memory_with(&[&[0x01, 0xab], &[], &[0xff; 3]]);
        let mut vcpu = Vcpu::new("svc");
        assert_eq!(flush(&mut vcpu, &mut p, AT), Ok(3));
        assert_eq!(
            texts(&p),
            ["defmt:svc:01ab", "defmt:svc:", "defmt:svc:ffffff"]
        );
        assert!(p
            .lines
            .iter()
            .all(|(n, s, _)| n == "svc" && *s == LineSource::Hypercall));
        // Three frames of 8 bytes each (prefix and payload, padded).
        assert_eq!(consumer_index(&p), 24);
        assert_eq!(vcpu.log_ring, Some(AT));
        assert!(vcpu.recent.bytes().ends_with(b"defmt:svc:ffffff\n"));
        // Nothing twice.
        assert_eq!(flush(&mut vcpu, &mut p, AT), Ok(0));
        assert_eq!(p.lines.len(), 3);
    }

    #[test]
    fn a_frame_longer_than_the_limit_is_skipped_and_reported() {
        let long = [7u8; LOG_FRAME_MAX + 1];
        let mut p = memory_with(&[&long, &[0x42]]);
        let mut vcpu = Vcpu::new("svc");
        assert_eq!(flush(&mut vcpu, &mut p, AT), Ok(1));
        let t = texts(&p);
        assert!(t[0].contains("129 bytes skipped"), "{t:?}");
        assert_eq!(t[1], "defmt:svc:42");
        let longest = [9u8; LOG_FRAME_MAX];
        let mut p = memory_with(&[&longest]);
        assert_eq!(flush(&mut vcpu, &mut p, AT), Ok(1));
        assert_eq!(texts(&p)[0].len(), "defmt:svc:".len() + 2 * LOG_FRAME_MAX);
    }

    #[test]
    fn bad_addresses_are_refused_before_anything_is_read() {
        let mut p = memory_with(&[&[1]]);
        let mut vcpu = Vcpu::new("svc");
        for gpa in [AT + 8, 0x4000, !0xfff] {
            assert_eq!(
                flush(&mut vcpu, &mut p, gpa),
                Err(Status::InvalidAddress),
                "{gpa:#x}"
            );
        }
        assert!(p.lines.is_empty());
        assert_eq!(vcpu.log_ring, None);
    }

    #[test]
    fn a_corrupt_ring_is_refused_and_forgotten() {
        let mut vcpu = Vcpu::new("svc");
        let mut p = memory_with(&[&[1], &[2]]);
        assert_eq!(flush(&mut vcpu, &mut p, AT), Ok(2));
        // The producer index jumps past the data size.
        let at = AT as usize + shm_ring::OFF_PRODUCER;
        p.memory[at..at + 4].copy_from_slice(&0x10_0000u32.to_le_bytes());
        assert_eq!(flush(&mut vcpu, &mut p, AT), Err(Status::InvalidArgument));
        assert_eq!(vcpu.log_ring, None);
        // A length prefix larger than what was published.
        let mut p = memory_with(&[&[1, 2, 3]]);
        let at = AT as usize + shm_ring::HEADER_LEN;
        p.memory[at..at + 4].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(flush(&mut vcpu, &mut p, AT), Err(Status::InvalidArgument));
        // No ring at all.
        let mut p = FakePlatform {
            memory: std::vec![0u8; 0x4000],
            ..Default::default()
        };
        assert_eq!(flush(&mut vcpu, &mut p, AT), Err(Status::InvalidArgument));
        assert!(p.lines.is_empty());
    }

    #[test]
    fn what_is_left_is_printed_when_the_domain_stops() {
        let mut vcpu = Vcpu::new("svc");
        drain_on_stop(&mut vcpu, &mut FakePlatform::default());
        let mut p = memory_with(&[]);
        assert_eq!(flush(&mut vcpu, &mut p, AT), Ok(0));
        // The domain writes one more frame and faults before flushing.
        let mut page = Page([0; RING]);
        page.0
            .copy_from_slice(&p.memory[AT as usize..AT as usize + RING]);
        let producer = Ring::attach(&mut page.0).unwrap().into_producer();
        producer.push_bytes(&[0xde, 0xad]).unwrap();
        p.memory[AT as usize..AT as usize + RING].copy_from_slice(&page.0);
        drain_on_stop(&mut vcpu, &mut p);
        assert_eq!(texts(&p), ["defmt:svc:dead"]);
    }

    #[test]
    fn any_page_contents_are_survived() {
        // Deterministic pseudo-random pages: never a panic, never a line
        // longer than the bound, never more frames than fit.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut vcpu = Vcpu::new("svc");
        for round in 0..2000 {
            let mut p = memory_with(&[&[1, 2, 3], &[4; 40]]);
            let n = 1 + round % 24;
            for _ in 0..n {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = AT as usize + (seed as usize % 256);
                p.memory[at] = (seed >> 32) as u8;
            }
            let _ = flush(&mut vcpu, &mut p, AT);
            assert!(p.lines.len() <= RING / 4);
            assert!(p.lines.iter().all(|(_, _, t)| t.len() <= LINE_MAX));
        }
    }
}
