//! The UART service's console snapshot: every guest's unprinted output and
//! the ioreq ring position it reflects, kept in memory that survives a
//! restart of the service.
//!
//! The memory holds two slots. A save writes the slot that does not hold
//! the latest snapshot, clears its magic first and writes it last, so a
//! service that dies in the middle of a save leaves the previous snapshot
//! whole; the next service loads the valid slot with the higher sequence
//! number. A round that changed no console only moves the ring position,
//! with one aligned 4-byte store into the latest slot. Loading checks
//! every length: the memory is the service's own, but it may have died
//! anywhere.
//!
//! Slot layout (little-endian): magic (8 bytes), sequence number (8), ring
//! position (4), reserved (4), one 2-byte length per console, then
//! [`CONSOLE_BUFFER`] bytes per console from [`SLOT_HEADER`] on.

use crate::{Console, ConsoleId, CONSOLE_BUFFER};

/// Marks a slot as a whole snapshot.
pub const SNAPSHOT_MAGIC: u64 = 0x5541_5254_5354_4154;
/// Bytes before the first console's data in a slot.
pub const SLOT_HEADER: usize = 64;
const SEQ: usize = 8;
const POSITION: usize = 16;
const LENGTHS: usize = 24;

/// Bytes of one slot for `consoles` consoles.
pub const fn slot_len(consoles: usize) -> usize {
    SLOT_HEADER + consoles * CONSOLE_BUFFER
}

/// Bytes of memory the snapshot of `consoles` consoles needs (two slots).
pub const fn snapshot_len(consoles: usize) -> usize {
    2 * slot_len(consoles)
}

/// Where the latest snapshot stands; kept by the service between saves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// Sequence number of the latest whole slot (0: none).
    pub seq: u64,
    /// The ring position it reflects (`None`: no snapshot).
    pub position: Option<u32>,
}

/// A snapshot read back: its place and each console's saved bytes.
#[derive(Debug)]
pub struct Loaded<'m> {
    /// The snapshot's sequence number and ring position.
    pub snapshot: Snapshot,
    slot: &'m [u8],
    consoles: usize,
}

impl Loaded<'_> {
    /// Console `id`'s saved (unprinted) bytes, empty for an unknown id.
    pub fn bytes(&self, id: ConsoleId) -> &[u8] {
        let id = usize::from(id);
        if id >= self.consoles {
            return &[];
        }
        let len = LENGTHS + 2 * id;
        let n = usize::from(u16::from_le_bytes([self.slot[len], self.slot[len + 1]]));
        let at = SLOT_HEADER + id * CONSOLE_BUFFER;
        &self.slot[at..at + n.min(CONSOLE_BUFFER)]
    }
}

fn slot_range(seq: u64, consoles: usize) -> core::ops::Range<usize> {
    let start = (seq % 2) as usize * slot_len(consoles);
    start..start + slot_len(consoles)
}

/// The largest sequence number a snapshot is believed to carry.
const MAX_SEQ: u64 = 1 << 62;

impl Snapshot {
    /// Saves every console's unprinted output (after a drain: the partial
    /// line) and `position` as the next snapshot. Memory shorter than
    /// [`snapshot_len`] saves nothing.
    pub fn save<const N: usize>(&mut self, mem: &mut [u8], console: &Console<N>, position: u32) {
        if LENGTHS + 2 * N > SLOT_HEADER {
            return;
        }
        // `load` believes nothing beyond MAX_SEQ, so this cannot overflow
        // for a loaded snapshot (and no run saves 2^62 times).
        let seq = self.seq.saturating_add(1);
        let Some(slot) = mem.get_mut(slot_range(seq, N)) else {
            return;
        };
        slot[..SEQ].fill(0);
        for id in 0..N {
            let at = SLOT_HEADER + id * CONSOLE_BUFFER;
            let n = console.copy_pending(id as ConsoleId, &mut slot[at..at + CONSOLE_BUFFER]);
            let len = LENGTHS + 2 * id;
            slot[len..len + 2].copy_from_slice(&(n as u16).to_le_bytes());
        }
        slot[SEQ..POSITION].copy_from_slice(&seq.to_le_bytes());
        slot[POSITION..POSITION + 4].copy_from_slice(&position.to_le_bytes());
        // Whole only now: the slot the next load picks.
        slot[..SEQ].copy_from_slice(&SNAPSHOT_MAGIC.to_le_bytes());
        self.seq = seq;
        self.position = Some(position);
    }

    /// Moves the latest snapshot's ring position (its consoles unchanged).
    /// Does nothing before the first save.
    pub fn move_to<const N: usize>(&mut self, mem: &mut [u8], position: u32) {
        if self.seq == 0 {
            return;
        }
        let at = slot_range(self.seq, N).start + POSITION;
        if let Some(word) = mem.get_mut(at..at + 4) {
            word.copy_from_slice(&position.to_le_bytes());
            self.position = Some(position);
        }
    }

    /// The latest whole snapshot of `N` consoles in `mem`, if any.
    pub fn load<const N: usize>(mem: &[u8]) -> Option<Loaded<'_>> {
        if LENGTHS + 2 * N > SLOT_HEADER {
            return None;
        }
        let whole = |seq: u64| -> Option<(u64, &[u8])> {
            let slot = mem.get(slot_range(seq, N))?;
            if slot[..SEQ] != SNAPSHOT_MAGIC.to_le_bytes() {
                return None;
            }
            let mut n = [0u8; 8];
            n.copy_from_slice(&slot[SEQ..POSITION]);
            let found = u64::from_le_bytes(n);
            // A slot holds the sequence numbers of its parity only, and no
            // run of the service saves 2^62 times: a larger number is
            // memory the faulted run scribbled on.
            (found % 2 == seq % 2 && found != 0 && found <= MAX_SEQ).then_some((found, slot))
        };
        let (seq, slot) = [whole(0), whole(1)]
            .into_iter()
            .flatten()
            .max_by_key(|&(seq, _)| seq)?;
        let mut p = [0u8; 4];
        p.copy_from_slice(&slot[POSITION..POSITION + 4]);
        Some(Loaded {
            snapshot: Snapshot {
                seq,
                position: Some(u32::from_le_bytes(p)),
            },
            slot,
            consoles: N,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: usize = 3;

    fn console(lines: &[(u8, &[u8])]) -> Console<N> {
        let mut c = Console::new();
        for &(id, bytes) in lines {
            c.push_bytes(id, bytes);
        }
        c
    }

    #[test]
    fn nothing_saved_loads_nothing() {
        let mem = vec![0u8; snapshot_len(N)];
        assert!(Snapshot::load::<N>(&mem).is_none());
        assert!(Snapshot::load::<N>(&mem[..10]).is_none());
    }

    #[test]
    fn a_save_comes_back_with_its_position_and_the_latest_wins() {
        let mut mem = vec![0u8; snapshot_len(N)];
        let mut s = Snapshot::default();
        s.save(&mut mem, &console(&[(0, b"one\npart"), (2, b"x")]), 40);
        let l = Snapshot::load::<N>(&mem).unwrap();
        assert_eq!(l.snapshot, s);
        assert_eq!(l.snapshot.position, Some(40));
        assert_eq!(l.bytes(0), b"one\npart");
        assert_eq!(l.bytes(1), b"");
        assert_eq!(l.bytes(2), b"x");
        assert_eq!(l.bytes(9), b"");
        s.save(&mut mem, &console(&[(1, b"two")]), 80);
        let l = Snapshot::load::<N>(&mem).unwrap();
        assert_eq!((l.snapshot.seq, l.snapshot.position), (2, Some(80)));
        assert_eq!(l.bytes(0), b"");
        assert_eq!(l.bytes(1), b"two");
        s.move_to::<N>(&mut mem, 96);
        assert_eq!(
            Snapshot::load::<N>(&mem).unwrap().snapshot.position,
            Some(96)
        );
    }

    #[test]
    fn an_absurd_sequence_number_is_not_believed() {
        let mut mem = vec![0u8; snapshot_len(N)];
        let mut s = Snapshot::default();
        s.save(&mut mem, &console(&[(0, b"old")]), 8);
        s.save(&mut mem, &console(&[(0, b"newer")]), 16);
        // The faulted run scribbled the largest number there is into the
        // first save's slot (its parity).
        let at = slot_range(1, N).start + SEQ;
        mem[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        let mut l = Snapshot::load::<N>(&mem).unwrap();
        assert_eq!((l.snapshot.seq, l.bytes(0)), (2, &b"newer"[..]));
        // Saving goes on from there, into the scribbled slot.
        l.snapshot.save(&mut mem, &console(&[(0, b"next")]), 24);
        let l = Snapshot::load::<N>(&mem).unwrap();
        assert_eq!((l.snapshot.seq, l.bytes(0)), (3, &b"next"[..]));
        // A snapshot value no load gives still saves without a panic.
        let mut top = Snapshot {
            seq: u64::MAX,
            position: None,
        };
        top.save(&mut mem, &console(&[]), 32);
    }

    #[test]
    fn a_save_cut_short_leaves_the_previous_snapshot() {
        let mut mem = vec![0u8; snapshot_len(N)];
        let mut s = Snapshot::default();
        s.save(&mut mem, &console(&[(0, b"kept")]), 8);
        let before = mem.clone();
        let mut t = s;
        t.save(&mut mem, &console(&[(0, b"newer")]), 16);
        // The service died at every byte of the second save: each prefix
        // of it, applied to the memory before it, still loads the first.
        let after = mem.clone();
        let second = slot_range(2, N);
        for cut in second.clone().step_by(97).chain([second.end - 1]) {
            let mut m = before.clone();
            m[second.start..cut].copy_from_slice(&after[second.start..cut]);
            // The magic is the first thing cleared and the last written:
            // at any point before the end it reads 0.
            m[second.start..second.start + 8].fill(0);
            let l = Snapshot::load::<N>(&m).unwrap();
            assert_eq!(l.snapshot.position, Some(8), "cut at {cut}");
            assert_eq!(l.bytes(0), b"kept");
        }
    }

    #[test]
    fn hostile_contents_never_panic_and_lengths_are_bounded() {
        let mut mem = vec![0xffu8; snapshot_len(N)];
        mem[..8].copy_from_slice(&SNAPSHOT_MAGIC.to_le_bytes());
        mem[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        // A sequence number of the wrong parity for its slot is refused.
        let _ = Snapshot::load::<N>(&mem);
        mem[8..16].copy_from_slice(&4u64.to_le_bytes());
        let l = Snapshot::load::<N>(&mem).unwrap();
        for id in 0..N as u8 {
            assert_eq!(l.bytes(id).len(), CONSOLE_BUFFER);
        }
        // Too many consoles for the header: nothing saved or loaded.
        let mut s = Snapshot::default();
        let big: Console<40> = Console::new();
        let mut m = vec![0u8; snapshot_len(40)];
        s.save(&mut m, &big, 1);
        assert_eq!(s, Snapshot::default());
        assert!(Snapshot::load::<40>(&m).is_none());
    }
}
