//! What the UART service keeps of each guest's 16550 across a restart of
//! the service ([`Kept`]), in memory that outlives it.

use crate::uart::{record_check, Changes, UartState, RECEIVED_LEN, SETTINGS_LEN};

/// The most guests one [`Kept`] holds (one bit each in a `u32`).
pub const KEPT_GUESTS_MAX: usize = 32;

/// Bytes of memory [`Kept::over`] needs for `guests` guests.
pub const fn kept_len(guests: usize) -> usize {
    guests * (SETTINGS_LEN + 2 * RECEIVED_LEN + OWNER_LEN)
}

/// Bytes of an owner record: a mark, the incarnation (`u64`), a check.
const OWNER_LEN: usize = 10;

/// First byte of an owner record (all zeroes is none).
const OWNER_MARK: u8 = 0x9e;

/// Per guest: the 16550 settings its driver programmed
/// ([`UartState::settings`]) and the bytes its receiver holds
/// ([`UartState::received`]), each saved when the model reports a change
/// ([`Uart16550::take_changes`](crate::Uart16550::take_changes)).
///
/// The received bytes a restarted service finds must match the ring
/// position it serves requests again from: it serves again every request
/// after the last saved position, so a read of RBR served in the round the
/// old service died in would pop the FIFO a second time and lose a byte.
/// So a change a request made ([`Kept::save`]) goes to a pending record and
/// becomes the kept one only at [`Kept::commit`], which the service calls
/// once the round's ring position is saved; a change made between rounds,
/// which no request repeats (keys handed to a receiver), is kept at once
/// ([`Kept::save_now`]). Settings are kept at once either way: writing
/// them again changes nothing.
///
/// What is kept for a slot belongs to one domain in one run of it, its
/// incarnation (`ioreq::Request::Attach`): [`Kept::claim`] gives it to the
/// domain that attaches only when the incarnation matches, so a new domain
/// whose fresh `Attach` was lost (the core started the ring over) never
/// finds its predecessor's settings, received bytes or keys.
///
/// Layout: `guests` settings records, then `guests` kept received
/// records, then `guests` pending ones, then `guests` owner records. Every
/// record carries a mark and a check byte: memory never written, cleared
/// or torn reads as none.
#[derive(Debug)]
pub struct Kept<'m> {
    settings: &'m mut [u8],
    received: &'m mut [u8],
    pending: &'m mut [u8],
    owners: &'m mut [u8],
    /// Bit `g`: guest `g`'s pending record is newer than its kept one.
    newer: u32,
}

impl<'m> Kept<'m> {
    /// The records for `guests` guests at the start of `mem` (what an
    /// earlier run left there); `None` when `mem` is shorter than
    /// [`kept_len`] or `guests` exceeds [`KEPT_GUESTS_MAX`]. Pending
    /// records an earlier run left are ignored: its round did not end.
    pub fn over(mem: &'m mut [u8], guests: usize) -> Option<Kept<'m>> {
        if guests > KEPT_GUESTS_MAX {
            return None;
        }
        let mem = mem.get_mut(..kept_len(guests))?;
        let (settings, rest) = mem.split_at_mut(guests * SETTINGS_LEN);
        let (received, rest) = rest.split_at_mut(guests * RECEIVED_LEN);
        let (pending, owners) = rest.split_at_mut(guests * RECEIVED_LEN);
        Some(Kept {
            settings,
            received,
            pending,
            owners,
            newer: 0,
        })
    }

    /// The state to give `guest`'s new 16550: after reset with the kept
    /// settings and received bytes on it ([`UartState::RESET`] when none
    /// are kept, or for a guest beyond the records).
    pub fn state(&self, guest: u8) -> UartState {
        let at = usize::from(guest);
        let settings = record::<SETTINGS_LEN>(self.settings, at)
            .and_then(UartState::from_settings)
            .unwrap_or(UartState::RESET);
        record::<RECEIVED_LEN>(self.received, at)
            .and_then(|r| settings.with_received(r))
            .unwrap_or(settings)
    }

    /// Domain `incarnation` attaches to slot `guest` (`fresh` as the core
    /// said): returns whether what is kept for the slot is its own, kept
    /// from before a restart of the service. When it is not (a fresh
    /// `Attach`, another incarnation, or none recorded), everything kept
    /// for the slot is dropped and the caller starts it afresh. The slot
    /// is the domain's from now on, either way.
    pub fn claim(&mut self, guest: u8, incarnation: u64, fresh: bool) -> bool {
        let at = usize::from(guest);
        let same = !fresh && self.owner(at) == Some(incarnation);
        if !same {
            self.forget(guest);
        }
        if let Some(rec) = record_mut::<OWNER_LEN>(self.owners, at) {
            rec[0] = OWNER_MARK;
            rec[1..9].copy_from_slice(&incarnation.to_le_bytes());
            rec[OWNER_LEN - 1] = record_check(&rec[..]);
        }
        same
    }

    /// The incarnation recorded as slot `at`'s owner, if any.
    fn owner(&self, at: usize) -> Option<u64> {
        let rec = record::<OWNER_LEN>(self.owners, at)?;
        if rec[0] != OWNER_MARK || rec[OWNER_LEN - 1] != record_check(rec) {
            return None;
        }
        Some(u64::from_le_bytes(rec[1..9].try_into().ok()?))
    }

    /// Saves what `changes` says a request changed in `state` for
    /// `guest`: the settings at once, the received bytes as pending until
    /// [`Kept::commit`].
    pub fn save(&mut self, guest: u8, state: &UartState, changes: Changes) {
        let at = usize::from(guest);
        if changes.settings() {
            if let Some(kept) = record_mut::<SETTINGS_LEN>(self.settings, at) {
                *kept = state.settings();
            }
        }
        if changes.received() {
            if let Some(kept) = record_mut::<RECEIVED_LEN>(self.pending, at) {
                *kept = state.received();
                self.newer |= 1 << at;
            }
        }
    }

    /// Saves what `changes` says changed in `state` for `guest` between
    /// rounds, all of it at once.
    pub fn save_now(&mut self, guest: u8, state: &UartState, changes: Changes) {
        self.save(guest, state, changes);
        self.commit();
    }

    /// Whether received bytes saved since the last [`Kept::commit`] wait
    /// for it.
    pub fn has_pending(&self) -> bool {
        self.newer != 0
    }

    /// Makes the pending received records the kept ones: call once the
    /// ring position of the requests that made them is saved.
    pub fn commit(&mut self) {
        let mut newer = core::mem::take(&mut self.newer);
        while newer != 0 {
            let at = newer.trailing_zeros() as usize;
            newer &= newer - 1;
            if let (Some(kept), Some(new)) = (
                record_mut::<RECEIVED_LEN>(self.received, at),
                record::<RECEIVED_LEN>(self.pending, at),
            ) {
                *kept = *new;
            }
        }
    }

    /// Drops everything kept for `guest`: its slot goes to another domain,
    /// or its domain stopped.
    pub fn forget(&mut self, guest: u8) {
        let at = usize::from(guest);
        if let Some(kept) = record_mut::<SETTINGS_LEN>(self.settings, at) {
            *kept = [0; SETTINGS_LEN];
        }
        for area in [&mut *self.received, &mut *self.pending] {
            if let Some(kept) = record_mut::<RECEIVED_LEN>(area, at) {
                *kept = [0; RECEIVED_LEN];
            }
        }
        if let Some(kept) = record_mut::<OWNER_LEN>(self.owners, at) {
            *kept = [0; OWNER_LEN];
        }
        if at < KEPT_GUESTS_MAX {
            self.newer &= !(1 << at);
        }
    }
}

/// Record `at` of `N`-byte records in `area` (none past its end).
fn record<const N: usize>(area: &[u8], at: usize) -> Option<&[u8; N]> {
    area.get(at.checked_mul(N)?..)?.first_chunk::<N>()
}

/// [`record`], to write.
fn record_mut<const N: usize>(area: &mut [u8], at: usize) -> Option<&mut [u8; N]> {
    area.get_mut(at.checked_mul(N)?..)?.first_chunk_mut::<N>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regs::*;
    use crate::{Trigger, Uart16550};

    struct Line;
    impl Trigger for Line {
        fn set_level(&mut self, _high: bool) {}
    }

    const GUESTS: usize = 8;

    /// A guest's 16550 with FIFOs on and `bytes` received.
    fn uart_with(bytes: &[u8]) -> Uart16550<Line, Vec<u8>> {
        let mut u = Uart16550::new(Line, Vec::new());
        u.write(FCR, FCR_ENABLE);
        u.write(IER, IER_RDA);
        u.enqueue_input(bytes);
        u
    }

    fn keep(kept: &mut Kept<'_>, guest: u8, u: &mut Uart16550<Line, Vec<u8>>, now: bool) {
        let changes = u.take_changes();
        if now {
            kept.save_now(guest, &u.snapshot(), changes);
        } else {
            kept.save(guest, &u.snapshot(), changes);
        }
    }

    /// What a restarted service's 16550 for `guest` reads from RBR until
    /// it is empty.
    fn drain(mem: &mut [u8], guest: u8) -> Vec<u8> {
        let kept = Kept::over(mem, GUESTS).unwrap();
        let mut u = Uart16550::new(Line, Vec::new());
        u.restore(&kept.state(guest)).unwrap();
        (0..u.rx_len()).map(|_| u.read(RBR)).collect()
    }

    #[test]
    fn never_written_memory_keeps_nothing() {
        let mut mem = [0u8; kept_len(GUESTS)];
        let kept = Kept::over(&mut mem, GUESTS).unwrap();
        for g in 0..GUESTS as u8 + 2 {
            assert_eq!(kept.state(g), UartState::RESET);
        }
        assert!(Kept::over(&mut mem[..kept_len(GUESTS) - 1], GUESTS).is_none());
        let mut big = vec![0u8; kept_len(KEPT_GUESTS_MAX + 1)];
        assert!(Kept::over(&mut big, KEPT_GUESTS_MAX + 1).is_none());
    }

    #[test]
    fn a_read_in_a_round_that_did_not_end_is_not_kept() {
        let mut mem = [0u8; kept_len(GUESTS)];
        {
            let mut kept = Kept::over(&mut mem, GUESTS).unwrap();
            let mut u = uart_with(b"");
            // Keys handed over between rounds: kept at once.
            u.enqueue_input(b"abc");
            keep(&mut kept, 2, &mut u, true);
            // A round: the guest reads `a`; the service dies before the
            // round's position is saved.
            assert_eq!(u.read(RBR), b'a');
            keep(&mut kept, 2, &mut u, false);
            assert!(kept.has_pending());
        }
        // The read is served again: it must find `a` still there.
        assert_eq!(drain(&mut mem, 2), b"abc");
    }

    #[test]
    fn a_read_in_a_round_that_ended_is_kept() {
        let mut mem = [0u8; kept_len(GUESTS)];
        {
            let mut kept = Kept::over(&mut mem, GUESTS).unwrap();
            let mut u = uart_with(b"abc");
            keep(&mut kept, 5, &mut u, true);
            assert_eq!(u.read(RBR), b'a');
            keep(&mut kept, 5, &mut u, false);
            kept.commit();
            assert!(!kept.has_pending());
        }
        assert_eq!(drain(&mut mem, 5), b"bc");
        // The settings came back with them.
        let mut kept = Kept::over(&mut mem, GUESTS).unwrap();
        assert_eq!(kept.state(5).ier, IER_RDA);
        // Other guests have nothing.
        assert_eq!(kept.state(4), UartState::RESET);
        kept.forget(5);
        assert_eq!(kept.state(5), UartState::RESET);
    }

    #[test]
    fn forgetting_drops_what_is_pending_too() {
        let mut mem = [0u8; kept_len(GUESTS)];
        let mut kept = Kept::over(&mut mem, GUESTS).unwrap();
        let mut u = uart_with(b"xy");
        keep(&mut kept, 7, &mut u, false);
        kept.forget(7);
        assert!(!kept.has_pending());
        kept.commit();
        assert_eq!(kept.state(7), UartState::RESET);
        // Out of range: nothing happens, nothing panics.
        kept.save(200, &u.snapshot(), u.take_changes());
        kept.forget(200);
        assert_eq!(kept.state(200), UartState::RESET);
    }

    #[test]
    fn only_the_same_incarnation_finds_what_was_kept() {
        let mut mem = [0u8; kept_len(GUESTS)];
        let (a, a_restarted, b) = (7u64 << 32, (7u64 << 32) | 1, 8u64 << 32);
        {
            let mut kept = Kept::over(&mut mem, GUESTS).unwrap();
            assert!(!kept.claim(3, a, true), "a fresh Attach keeps nothing");
            let mut u = uart_with(b"secret");
            keep(&mut kept, 3, &mut u, true);
        }
        let before = mem;
        // The service restarted: domain `a` attaches again, not fresh.
        let mut kept = Kept::over(&mut mem, GUESTS).unwrap();
        assert!(kept.claim(3, a, false));
        assert_eq!(kept.state(3).rx_len, 6);
        // Its fresh Attach lost, a new domain in the slot (or the same
        // domain restarted) is told without `fresh`: it finds nothing.
        for other in [b, a_restarted] {
            let mut mem2 = before;
            let mut kept = Kept::over(&mut mem2, GUESTS).unwrap();
            assert!(!kept.claim(3, other, false));
            assert_eq!(kept.state(3), UartState::RESET);
            // ...and owns the slot from then on.
            assert!(kept.claim(3, other, false));
        }
        // A slot never claimed (or forgotten) belongs to nobody.
        assert!(!kept.claim(4, a, false));
        kept.forget(3);
        assert!(!kept.claim(3, a, false));
        // A torn owner record is none.
        let mut mem3 = [0u8; kept_len(GUESTS)];
        let mut kept = Kept::over(&mut mem3, GUESTS).unwrap();
        kept.claim(1, a, true);
        let owners = GUESTS * (SETTINGS_LEN + 2 * RECEIVED_LEN);
        mem3[owners + OWNER_LEN + 4] ^= 1;
        let mut kept = Kept::over(&mut mem3, GUESTS).unwrap();
        assert!(!kept.claim(1, a, false));
    }

    #[test]
    fn torn_records_read_as_none() {
        let mut mem = [0u8; kept_len(GUESTS)];
        {
            let mut kept = Kept::over(&mut mem, GUESTS).unwrap();
            let mut u = uart_with(b"q");
            keep(&mut kept, 0, &mut u, true);
        }
        // Tear the kept received record (after the settings records).
        mem[GUESTS * SETTINGS_LEN + 3] ^= 0xff;
        let kept = Kept::over(&mut mem, GUESTS).unwrap();
        let state = kept.state(0);
        assert_eq!((state.rx_len, state.fcr), (0, FCR_ENABLE));
    }
}
