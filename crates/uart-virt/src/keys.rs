//! Keys typed for one guest and not yet taken by its receiver
//! ([`KeyQueue`]), kept where a restarted service finds them.

/// Keys one queue holds; beyond that, new keys are dropped.
pub const KEYS_MAX: usize = 256;

/// Bytes of memory one [`KeyQueue`] lives in: a 4-byte header (where the
/// oldest key is, how many wait) and [`KEYS_MAX`] bytes of keys.
pub const KEY_QUEUE_LEN: usize = 4 + KEYS_MAX;

/// A bounded FIFO of typed keys over memory the caller provides (the UART
/// service's state pages, which the core keeps when it restarts the
/// service): what one run queued, the next run delivers.
///
/// Layout (little-endian): the index of the oldest key (`u16`, below
/// [`KEYS_MAX`]) and the number waiting (`u16`, at most [`KEYS_MAX`]), then
/// the keys in a ring of [`KEYS_MAX`] bytes. All-zero memory is an empty
/// queue. A key is stored before the header that counts it, and the header
/// is one aligned 4-byte store, so a service that dies between two calls
/// leaves a queue whose header is whole; a header no queue could have (the
/// memory was never a queue, or was overwritten) is read as empty and
/// rewritten so.
#[derive(Debug)]
pub struct KeyQueue<'m> {
    mem: &'m mut [u8; KEY_QUEUE_LEN],
    head: usize,
    len: usize,
}

impl<'m> KeyQueue<'m> {
    /// The queue kept in `mem` (what an earlier run left there).
    pub fn over(mem: &'m mut [u8; KEY_QUEUE_LEN]) -> KeyQueue<'m> {
        let head = usize::from(u16::from_le_bytes([mem[0], mem[1]]));
        let len = usize::from(u16::from_le_bytes([mem[2], mem[3]]));
        let mut q = KeyQueue { mem, head, len };
        if head >= KEYS_MAX || len > KEYS_MAX {
            q.head = 0;
            q.len = 0;
            q.store();
        }
        q
    }

    /// Keys waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no key waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `key` behind the others; false (and the key dropped) when
    /// [`KEYS_MAX`] keys wait already.
    pub fn push(&mut self, key: u8) -> bool {
        if self.len >= KEYS_MAX {
            return false;
        }
        self.mem[4 + (self.head + self.len) % KEYS_MAX] = key;
        self.len += 1;
        self.store();
        true
    }

    /// The oldest keys that lie in one run of memory (all of them unless
    /// the ring wraps; empty only when none waits).
    pub fn front(&self) -> &[u8] {
        let run = self.len.min(KEYS_MAX - self.head);
        &self.mem[4 + self.head..4 + self.head + run]
    }

    /// Drops the `n` oldest keys (all of them if fewer wait).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.len -= n;
        self.head = if self.len == 0 {
            0
        } else {
            (self.head + n) % KEYS_MAX
        };
        self.store();
    }

    /// Drops every key.
    pub fn clear(&mut self) {
        self.consume(self.len);
    }

    /// Hands the keys, oldest first, to `take`, which returns how many of
    /// those it was offered it took; stops at the first offer not taken
    /// whole. Returns how many were taken in all.
    pub fn deliver(&mut self, mut take: impl FnMut(&[u8]) -> usize) -> usize {
        let mut total = 0;
        while !self.is_empty() {
            let offered = self.front().len();
            let n = take(self.front()).min(offered);
            self.consume(n);
            total += n;
            if n < offered {
                break;
            }
        }
        total
    }

    fn store(&mut self) {
        let header = (self.head as u32) | (self.len as u32) << 16;
        self.mem[..4].copy_from_slice(&header.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[test]
    fn zeroed_memory_is_an_empty_queue_and_keys_come_out_in_order() {
        let mut mem = [0u8; KEY_QUEUE_LEN];
        let mut q = KeyQueue::over(&mut mem);
        assert!(q.is_empty());
        assert_eq!(q.front(), b"");
        for &k in b"ls\r" {
            assert!(q.push(k));
        }
        assert_eq!(q.front(), b"ls\r");
        q.consume(1);
        assert_eq!((q.len(), q.front()), (2, &b"s\r"[..]));
    }

    #[test]
    fn a_later_run_finds_what_an_earlier_one_queued() {
        let mut mem = [0u8; KEY_QUEUE_LEN];
        {
            let mut q = KeyQueue::over(&mut mem);
            for &k in b"hello" {
                q.push(k);
            }
            q.consume(2);
        }
        let q = KeyQueue::over(&mut mem);
        assert_eq!(q.front(), b"llo");
    }

    #[test]
    fn a_full_queue_drops_new_keys_and_wraps_once_room_is_made() {
        let mut mem = [0u8; KEY_QUEUE_LEN];
        let mut q = KeyQueue::over(&mut mem);
        for i in 0..KEYS_MAX {
            assert!(q.push(i as u8));
        }
        assert!(!q.push(0xee), "full");
        q.consume(10);
        for i in 0..10u8 {
            assert!(q.push(0xa0 + i));
        }
        assert!(!q.push(0xee));
        // The oldest run ends at the end of the memory; the wrapped keys
        // follow.
        assert_eq!(q.front().len(), KEYS_MAX - 10);
        let mut out = Vec::new();
        assert_eq!(
            q.deliver(|b| {
                out.extend_from_slice(b);
                b.len()
            }),
            KEYS_MAX
        );
        let mut want: Vec<u8> = (10..KEYS_MAX).map(|i| i as u8).collect();
        want.extend(0xa0..0xaa);
        assert_eq!(out, want);
        assert!(q.is_empty());
    }

    #[test]
    fn delivery_stops_where_the_receiver_is_full() {
        let mut mem = [0u8; KEY_QUEUE_LEN];
        let mut q = KeyQueue::over(&mut mem);
        for &k in b"abcdef" {
            q.push(k);
        }
        let mut room = 4;
        let taken = q.deliver(|b| {
            let n = b.len().min(room);
            room -= n;
            n
        });
        assert_eq!(taken, 4);
        assert_eq!(q.front(), b"ef");
        assert_eq!(q.deliver(|_| 0), 0);
        assert_eq!(q.len(), 2);
        // A taker claiming more than it was offered takes what it was
        // offered.
        assert_eq!(q.deliver(|b| b.len() + 100), 2);
        assert!(q.is_empty());
    }

    #[test]
    fn impossible_headers_read_as_empty_and_are_rewritten() {
        for header in [[0, 1, 0, 0], [0, 0, 1, 1], [0xff; 4]] {
            let mut mem = [0x41u8; KEY_QUEUE_LEN];
            mem[..4].copy_from_slice(&header);
            assert!(KeyQueue::over(&mut mem).is_empty(), "{header:?}");
            assert_eq!(&mem[..4], &[0; 4]);
        }
        // The largest sound header: 256 keys from index 255.
        let mut mem = [0x41u8; KEY_QUEUE_LEN];
        mem[..4].copy_from_slice(&[0xff, 0, 0, 1]);
        let q = KeyQueue::over(&mut mem);
        assert_eq!((q.len(), q.front().len()), (KEYS_MAX, 1));
    }

    proptest! {
        /// Against a `VecDeque` model, any mix of pushes, partial
        /// deliveries, clears and reopenings of the memory.
        #[test]
        fn behaves_as_a_bounded_fifo(
            ops in proptest::collection::vec((0u8..5, any::<u8>()), 0..600),
            head in 0u16..300, len in 0u16..300, fill in any::<u8>(),
        ) {
            // Headers sound and not (head or count too large), over keys
            // an earlier run left.
            let mut mem = [fill; KEY_QUEUE_LEN];
            mem[..2].copy_from_slice(&head.to_le_bytes());
            mem[2..4].copy_from_slice(&len.to_le_bytes());
            // Whatever a sound header counts is where the model starts.
            let mut model: VecDeque<u8> = {
                let mut copy = mem;
                let mut all = Vec::new();
                KeyQueue::over(&mut copy).deliver(|b| {
                    all.extend_from_slice(b);
                    b.len()
                });
                all.into()
            };
            for (op, arg) in ops {
                let mut q = KeyQueue::over(&mut mem);
                match op {
                    0 | 1 => {
                        let took = q.push(arg);
                        prop_assert_eq!(took, model.len() < KEYS_MAX);
                        if took {
                            model.push_back(arg);
                        }
                    }
                    2 => {
                        let mut room = usize::from(arg % 40);
                        let mut got = Vec::new();
                        q.deliver(|b| {
                            let n = b.len().min(room);
                            room -= n;
                            got.extend_from_slice(&b[..n]);
                            n
                        });
                        let want: Vec<u8> = model.drain(..got.len()).collect();
                        prop_assert_eq!(got, want);
                    }
                    3 if arg < 8 => {
                        q.clear();
                        model.clear();
                    }
                    _ => {}
                }
                prop_assert_eq!(q.len(), model.len());
                prop_assert_eq!(q.is_empty(), q.front().is_empty());
            }
        }
    }
}
