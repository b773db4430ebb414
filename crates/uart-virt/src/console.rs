//! Several guests' output multiplexed onto one physical port ([`Console`]).

/// Identifies a guest console (and an [`InputSwitch`](crate::InputSwitch)
/// target).
pub type ConsoleId = u8;

/// Bytes buffered per guest.
pub const CONSOLE_BUFFER: usize = 4096;

/// Longest line, in bytes without its `\n`, before a line end is inserted.
pub const LINE_MAX: usize = 200;

/// Longest guest name in a prefix, in bytes; longer names are cut at a
/// character boundary.
pub const NAME_MAX: usize = 16;

const PREFIX_MAX: usize = NAME_MAX + 3;

/// What happened to one guest's output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsoleStats {
    /// Bytes taken into the buffer.
    pub accepted: u64,
    /// Bytes dropped because the buffer was full (or the line they belong
    /// to was already cut).
    pub dropped: u64,
    /// Lines written to the port, each with its `\n`.
    pub lines: u64,
    /// Line ends the console inserted (at [`LINE_MAX`] or by
    /// [`Console::flush`]).
    pub inserted_breaks: u64,
}

#[derive(Debug, Clone, Copy)]
struct Stream {
    buf: [u8; CONSOLE_BUFFER],
    head: usize,
    len: usize,
    /// Bytes of the unterminated line at the tail.
    partial: usize,
    /// Line ends in the buffer.
    complete: usize,
    /// Dropping until the guest's next `\n`.
    cutting: bool,
    name: [u8; NAME_MAX],
    name_len: usize,
    /// The name from [`Console::hand_over`], taken once the `renamed_after`
    /// complete lines buffered before it are written (0: none pending).
    next_name: [u8; NAME_MAX],
    next_name_len: usize,
    renamed_after: usize,
    stats: ConsoleStats,
}

impl Stream {
    const EMPTY: Stream = Stream {
        buf: [0; CONSOLE_BUFFER],
        head: 0,
        len: 0,
        partial: 0,
        complete: 0,
        cutting: false,
        name: [0; NAME_MAX],
        name_len: 0,
        next_name: [0; NAME_MAX],
        next_name_len: 0,
        renamed_after: 0,
        stats: ConsoleStats {
            accepted: 0,
            dropped: 0,
            lines: 0,
            inserted_breaks: 0,
        },
    };

    fn free(&self) -> usize {
        CONSOLE_BUFFER - self.len
    }

    fn put(&mut self, byte: u8) {
        let tail = (self.head + self.len) % CONSOLE_BUFFER;
        self.buf[tail] = byte;
        self.len += 1;
    }

    fn end_line(&mut self) {
        self.put(b'\n');
        self.partial = 0;
        self.complete += 1;
    }

    fn prefix(&self) -> ([u8; PREFIX_MAX], usize) {
        let mut p = [0u8; PREFIX_MAX];
        let n = self.name_len.min(NAME_MAX);
        p[0] = b'[';
        p[1..=n].copy_from_slice(&self.name[..n]);
        p[n + 1] = b']';
        p[n + 2] = b' ';
        (p, n + 3)
    }
}

/// Keeps at most [`NAME_MAX`] bytes of `name` in `dst` (cut at a character
/// boundary, control characters as `?`); returns how many.
fn store_name(dst: &mut [u8; NAME_MAX], name: &str) -> usize {
    let mut end = name.len().min(NAME_MAX);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    for (d, &b) in dst.iter_mut().zip(&name.as_bytes()[..end]) {
        *d = if b.is_ascii_control() { b'?' } else { b };
    }
    end
}

/// The line being written to the port.
#[derive(Debug, Clone, Copy)]
struct Active {
    id: usize,
    prefix: [u8; PREFIX_MAX],
    prefix_len: usize,
    prefix_pos: usize,
}

/// Multiplexes the output of up to `N` guests (ids `0..N`, `N` at most 256)
/// onto one port, line by line.
///
/// # Policy
///
/// - **Whole lines.** Each guest's bytes wait in its own ring of
///   [`CONSOLE_BUFFER`] bytes until a line feed ends the line; only then is
///   the line written, as `[name] ` followed by the line and its `\n`. Once
///   a line has started on the port, it is finished before any other
///   guest's line starts, so lines never interleave.
/// - **Long lines and prompts.** A line reaching [`LINE_MAX`] bytes is ended
///   by an inserted `\n` and continues on a new prefixed line.
///   [`Console::flush`] ends a partial line the same way (for a prompt
///   that waits for input, say on an idle timer).
/// - **Fairness.** Guests with complete lines take turns, one line each.
/// - **Slow port.** [`Console::drain`] stops at the first byte the port
///   refuses and resumes with that same byte next time.
/// - **Full buffer.** Nothing is overwritten: a byte that does not fit is
///   dropped and counted in [`ConsoleStats::dropped`], and so is the rest of
///   that line up to its `\n` (the line is cut short, never holed). One byte
///   is kept free for the `\n` that ends the cut line, so it still ends and
///   the next line starts clean.
#[derive(Debug, Clone)]
pub struct Console<const N: usize> {
    streams: [Stream; N],
    active: Option<Active>,
    next: usize,
}

impl<const N: usize> Default for Console<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Console<N> {
    /// An empty console; guest `i` is named by its number until
    /// [`set_name`](Self::set_name).
    pub const fn new() -> Self {
        const { assert!(N <= 256, "console ids are u8") };
        let mut streams = [Stream::EMPTY; N];
        let mut i = 0;
        while i < N {
            // The decimal id, at most three digits.
            let s = &mut streams[i];
            if i >= 100 {
                s.name[s.name_len] = b'0' + (i / 100) as u8;
                s.name_len += 1;
            }
            if i >= 10 {
                s.name[s.name_len] = b'0' + (i / 10 % 10) as u8;
                s.name_len += 1;
            }
            s.name[s.name_len] = b'0' + (i % 10) as u8;
            s.name_len += 1;
            i += 1;
        }
        Console {
            streams,
            active: None,
            next: 0,
        }
    }

    /// Names guest `id`: its lines are prefixed `[name] ` from the next line
    /// on. At most [`NAME_MAX`] bytes are kept (cut at a character
    /// boundary); control characters become `?`. False for an unknown id.
    pub fn set_name(&mut self, id: ConsoleId, name: &str) -> bool {
        let Some(s) = self.streams.get_mut(usize::from(id)) else {
            return false;
        };
        s.name_len = store_name(&mut s.name, name);
        s.renamed_after = 0;
        true
    }

    /// Gives console `id` to a new writer named `name` (a domain new in
    /// the slot whose console this is): the unfinished line of the one
    /// before is ended, the lines it left buffered are still written
    /// under its name, and the lines written from now on under `name`.
    /// Names as for [`set_name`](Self::set_name). False for an unknown id.
    pub fn hand_over(&mut self, id: ConsoleId, name: &str) -> bool {
        self.flush(id);
        let Some(s) = self.streams.get_mut(usize::from(id)) else {
            return false;
        };
        // Every buffered line is complete now (the one being written to
        // the port among them).
        let before = s.complete;
        if before == 0 {
            return self.set_name(id, name);
        }
        s.next_name_len = store_name(&mut s.next_name, name);
        s.renamed_after = before;
        true
    }

    /// Takes one byte of guest `id`'s output. False when it was dropped
    /// (counted in [`ConsoleStats::dropped`]) or the id is unknown (not
    /// counted anywhere: there is no such guest).
    pub fn push(&mut self, id: ConsoleId, byte: u8) -> bool {
        let Some(s) = self.streams.get_mut(usize::from(id)) else {
            return false;
        };
        if byte == b'\n' {
            s.cutting = false;
            // A line with bytes in the buffer always has room for its end.
            if s.free() >= 1 {
                s.end_line();
                s.stats.accepted += 1;
                return true;
            }
            s.stats.dropped += 1;
            return false;
        }
        let wrap = s.partial >= LINE_MAX;
        // Keep one byte for the `\n` ending this line (two if one is inserted).
        let need = if wrap { 3 } else { 2 };
        if s.cutting || s.free() < need {
            s.cutting = true;
            s.stats.dropped += 1;
            return false;
        }
        if wrap {
            s.end_line();
            s.stats.inserted_breaks += 1;
        }
        s.put(byte);
        s.partial += 1;
        s.stats.accepted += 1;
        true
    }

    /// Takes a run of guest `id`'s output; returns how many bytes were
    /// taken (the others were dropped and counted).
    pub fn push_bytes(&mut self, id: ConsoleId, bytes: &[u8]) -> usize {
        bytes.iter().filter(|&&b| self.push(id, b)).count()
    }

    /// Ends guest `id`'s partial line, if any, so it can be written (e.g. a
    /// prompt, after the guest was quiet for a while). False when there was
    /// none or the id is unknown.
    pub fn flush(&mut self, id: ConsoleId) -> bool {
        let Some(s) = self.streams.get_mut(usize::from(id)) else {
            return false;
        };
        if s.partial == 0 || s.free() == 0 {
            return false;
        }
        s.end_line();
        s.stats.inserted_breaks += 1;
        true
    }

    /// Writes buffered lines to the port through `out`, which returns false
    /// when it did not take the byte (the port is full). Stops there; the
    /// next call starts with that same byte. Returns the bytes written.
    pub fn drain(&mut self, out: &mut impl FnMut(u8) -> bool) -> usize {
        let mut written = 0;
        loop {
            let mut a = match self.active {
                Some(a) => a,
                None => match self.pick() {
                    Some(a) => a,
                    None => return written,
                },
            };
            let Some(s) = self.streams.get_mut(a.id) else {
                self.active = None;
                return written;
            };
            let byte = if a.prefix_pos < a.prefix_len {
                a.prefix[a.prefix_pos]
            } else if s.len > 0 {
                s.buf[s.head]
            } else {
                // Cannot happen (a line is only started when complete);
                // give the port up rather than stall it.
                self.active = None;
                continue;
            };
            if !out(byte) {
                self.active = Some(a);
                return written;
            }
            written += 1;
            if a.prefix_pos < a.prefix_len {
                a.prefix_pos += 1;
                self.active = Some(a);
                continue;
            }
            s.head = (s.head + 1) % CONSOLE_BUFFER;
            s.len -= 1;
            if byte == b'\n' {
                s.complete = s.complete.saturating_sub(1);
                s.stats.lines += 1;
                if s.renamed_after > 0 {
                    s.renamed_after -= 1;
                    if s.renamed_after == 0 {
                        s.name = s.next_name;
                        s.name_len = s.next_name_len;
                    }
                }
                self.active = None;
                self.next = (a.id + 1) % N.max(1);
            } else {
                self.active = Some(a);
            }
        }
    }

    /// The next guest, round-robin from `self.next`, with a complete line.
    fn pick(&self) -> Option<Active> {
        (0..N)
            .map(|k| (self.next + k) % N)
            .find(|&id| self.streams[id].complete > 0)
            .map(|id| {
                let (prefix, prefix_len) = self.streams[id].prefix();
                Active {
                    id,
                    prefix,
                    prefix_len,
                    prefix_pos: 0,
                }
            })
    }

    /// What happened to guest `id`'s output (zeros for an unknown id).
    pub fn stats(&self, id: ConsoleId) -> ConsoleStats {
        self.streams
            .get(usize::from(id))
            .map_or(ConsoleStats::default(), |s| s.stats)
    }

    /// Bytes of guest `id` still buffered (complete lines and the partial
    /// one).
    pub fn pending(&self, id: ConsoleId) -> usize {
        self.streams.get(usize::from(id)).map_or(0, |s| s.len)
    }

    /// Copies guest `id`'s buffered bytes (complete lines, then the
    /// partial one), oldest first, into `out`; returns how many (at most
    /// `out.len()`, 0 for an unknown id). Pushing them into a fresh console
    /// rebuilds the same lines: how a restarted UART service keeps what the
    /// old one had not printed.
    pub fn copy_pending(&self, id: ConsoleId, out: &mut [u8]) -> usize {
        let Some(s) = self.streams.get(usize::from(id)) else {
            return 0;
        };
        let n = s.len.min(out.len());
        for (k, b) in out[..n].iter_mut().enumerate() {
            *b = s.buf[(s.head + k) % CONSOLE_BUFFER];
        }
        n
    }

    /// True when a complete line (or the rest of one) waits for the port.
    pub fn has_output(&self) -> bool {
        self.active.is_some() || self.streams.iter().any(|s| s.complete > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_bytes_copy_out_and_rebuild_the_same_lines() {
        let mut c: Console<2> = Console::new();
        c.set_name(1, "g");
        c.push_bytes(1, b"one\ntw");
        let mut buf = [0u8; 16];
        let n = c.copy_pending(1, &mut buf);
        assert_eq!(&buf[..n], b"one\ntw");
        let mut fresh: Console<2> = Console::new();
        fresh.set_name(1, "g");
        fresh.push_bytes(1, &buf[..n]);
        fresh.push_bytes(1, b"o\n");
        let mut out = Vec::new();
        fresh.drain(&mut |b| {
            out.push(b);
            true
        });
        assert_eq!(String::from_utf8(out).unwrap(), "[g] one\n[g] two\n");
        assert_eq!(c.copy_pending(5, &mut buf), 0);
        assert_eq!(c.copy_pending(1, &mut buf[..2]), 2);
    }
    use proptest::prelude::*;
    use std::string::String;
    use std::vec::Vec;

    fn drain_all<const N: usize>(c: &mut Console<N>) -> String {
        let mut v = Vec::new();
        c.drain(&mut |b| {
            v.push(b);
            true
        });
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn default_names_and_set_name() {
        let mut c = Console::<12>::new();
        c.push_bytes(11, b"hi\n");
        assert_eq!(drain_all(&mut c), "[11] hi\n");
        assert!(c.set_name(11, "net"));
        c.push_bytes(11, b"up\n");
        assert_eq!(drain_all(&mut c), "[net] up\n");
        assert!(c.set_name(3, "a-very-long-guest-name"));
        assert!(c.set_name(4, "ééééééééé")); // 18 bytes: cut to 16
        assert!(c.set_name(5, "x\x1by"));
        c.push_bytes(3, b"1\n");
        c.push_bytes(4, b"2\n");
        c.push_bytes(5, b"3\n");
        assert_eq!(
            drain_all(&mut c),
            "[a-very-long-gues] 1\n[éééééééé] 2\n[x?y] 3\n"
        );
        assert!(!c.set_name(12, "nope"));
        assert!(!c.push(12, b'x'));
        assert_eq!(c.stats(12), ConsoleStats::default());
    }

    #[test]
    fn a_handed_over_console_keeps_the_old_name_on_the_old_lines() {
        let mut c = Console::<2>::new();
        c.set_name(1, "old");
        c.push_bytes(1, b"one\ntwo\nthr");
        // The port takes the first bytes of "one" before the hand-over.
        let mut taken = 0;
        c.drain(&mut |_| {
            taken += 1;
            taken <= 8
        });
        assert!(c.hand_over(1, "new"));
        c.push_bytes(1, b"fresh\n");
        assert_eq!(drain_all(&mut c), "e\n[old] two\n[old] thr\n[new] fresh\n");
        // Nothing buffered: at once.
        assert!(c.hand_over(1, "newer"));
        c.push_bytes(1, b"x\n");
        assert_eq!(drain_all(&mut c), "[newer] x\n");
        // A plain rename in between wins.
        c.push_bytes(1, b"a\n");
        assert!(c.hand_over(1, "later"));
        assert!(c.set_name(1, "now"));
        c.push_bytes(1, b"b\n");
        assert_eq!(drain_all(&mut c), "[now] a\n[now] b\n");
        assert!(!c.hand_over(7, "nope"));
    }

    #[test]
    fn lines_never_interleave() {
        let mut c = Console::<3>::new();
        c.set_name(0, "a");
        c.set_name(1, "b");
        c.set_name(2, "c");
        // Interleaved byte by byte, as three vCPUs would write.
        let lines: [&[u8]; 3] = [b"alpha one\n", b"beta\n", b"gamma gamma\n"];
        let longest = lines.iter().map(|l| l.len()).max().unwrap();
        for i in 0..longest {
            for (id, l) in lines.iter().enumerate() {
                if let Some(&b) = l.get(i) {
                    c.push(id as u8, b);
                }
            }
        }
        c.push_bytes(1, b"partial");
        let out = drain_all(&mut c);
        assert_eq!(out, "[a] alpha one\n[b] beta\n[c] gamma gamma\n");
        assert!(!c.has_output());
        assert_eq!(c.pending(1), 7);
        c.push_bytes(1, b" done\n");
        assert_eq!(drain_all(&mut c), "[b] partial done\n");
    }

    #[test]
    fn round_robin_one_line_each() {
        let mut c = Console::<2>::new();
        c.push_bytes(0, b"a1\na2\na3\n");
        c.push_bytes(1, b"b1\n");
        assert_eq!(drain_all(&mut c), "[0] a1\n[1] b1\n[0] a2\n[0] a3\n");
    }

    #[test]
    fn slow_port_resumes_exactly() {
        let mut c = Console::<2>::new();
        c.push_bytes(0, b"first line\nsecond\n");
        c.push_bytes(1, b"other\n");
        let mut fast = c.clone();
        let expected = drain_all(&mut fast);
        // A port that takes 3 bytes per call.
        let mut got = Vec::new();
        let mut calls = 0;
        while c.has_output() {
            let mut budget = 3;
            let n = c.drain(&mut |b| {
                if budget == 0 {
                    return false;
                }
                budget -= 1;
                got.push(b);
                true
            });
            assert!(n <= 3);
            calls += 1;
            // New output arriving in the middle does not cut in.
            if calls == 2 {
                c.push_bytes(1, b"late\n");
            }
        }
        assert_eq!(String::from_utf8(got).unwrap(), expected + "[1] late\n");
        // A port that is full at once writes nothing and loses nothing.
        c.push_bytes(0, b"x\n");
        assert_eq!(c.drain(&mut |_| false), 0);
        assert_eq!(drain_all(&mut c), "[0] x\n");
    }

    #[test]
    fn long_lines_wrap_and_flush_ends_a_prompt() {
        let mut c = Console::<1>::new();
        let long = [b'x'; LINE_MAX + 5];
        c.push_bytes(0, &long);
        c.push(0, b'\n');
        let out = drain_all(&mut c);
        let expected = std::format!("[0] {}\n[0] {}\n", "x".repeat(LINE_MAX), "x".repeat(5));
        assert_eq!(out, expected);
        assert_eq!(c.stats(0).inserted_breaks, 1);
        c.push_bytes(0, b"login: ");
        assert_eq!(drain_all(&mut c), "");
        assert!(c.flush(0));
        assert!(!c.flush(0));
        assert_eq!(drain_all(&mut c), "[0] login: \n");
        assert_eq!(c.stats(0).lines, 3);
    }

    #[test]
    fn full_buffer_drops_are_counted_and_cut_lines_still_end() {
        let mut c = Console::<2>::new();
        // Fill guest 0 with complete lines of 99 bytes + '\n'.
        let line = [b'a'; 99];
        let mut accepted = 0;
        for _ in 0..(CONSOLE_BUFFER / 100) {
            accepted += c.push_bytes(0, &line);
            accepted += usize::from(c.push(0, b'\n'));
        }
        assert_eq!(accepted, 4000);
        // This line does not fit whole: it is cut, the rest counted.
        let n = c.push_bytes(0, &[b'b'; 150]);
        assert_eq!(n, CONSOLE_BUFFER - 4000 - 1);
        assert!(c.push(0, b'\n'), "the reserved byte ends the cut line");
        assert_eq!(c.pending(0), CONSOLE_BUFFER);
        assert!(!c.push(0, b'c'));
        assert!(!c.push(0, b'\n'));
        let st = c.stats(0);
        assert_eq!(st.dropped, (150 - n) as u64 + 2);
        assert_eq!(st.accepted as usize, CONSOLE_BUFFER);
        // Other guests are not affected.
        assert!(c.push_bytes(1, b"ok\n") == 3);
        let out = drain_all(&mut c);
        assert_eq!(out.lines().count(), 40 + 1 + 1);
        assert!(out.contains(&std::format!("[0] {}\n", "b".repeat(n))));
        assert!(out.contains("[1] ok\n"));
        // Space is back; cutting ended with the guest's '\n'.
        assert!(c.push_bytes(0, b"fresh\n") == 6);
        assert_eq!(drain_all(&mut c), "[0] fresh\n");
    }

    #[test]
    fn cutting_continues_until_the_guests_newline() {
        let mut c = Console::<1>::new();
        for _ in 0..27 {
            c.push_bytes(0, &[b'q'; 150]);
            c.push(0, b'\n');
        }
        assert_eq!(c.pending(0), 27 * 151);
        // 19 bytes free: 18 letters fit, one byte stays for the line end.
        assert_eq!(c.push_bytes(0, b"abcdefghijklmnopqrstuvwxyz"), 18);
        // Draining makes room, but the cut line stays cut...
        let mut budget = 400;
        c.drain(&mut |_| {
            budget -= 1;
            budget > 0
        });
        assert_eq!(c.push_bytes(0, b"XYZ"), 0);
        // ...until the guest ends it.
        assert!(c.push(0, b'\n'));
        assert_eq!(c.push_bytes(0, b"next\n"), 5);
        assert_eq!(c.stats(0).dropped, 8 + 3);
        let out = drain_all(&mut c);
        assert!(out.ends_with("[0] abcdefghijklmnopqr\n[0] next\n"), "{out}");
    }

    proptest! {
        /// Whatever the guests write and however slow the port, the output
        /// is a sequence of whole prefixed lines, each guest's lines in
        /// order, and every byte is written or counted as dropped.
        #[test]
        fn output_is_whole_lines_and_nothing_is_lost_silently(
            writes in proptest::collection::vec(
                (0u8..3, proptest::collection::vec(any::<u8>(), 0..600)),
                0..60),
            port in proptest::collection::vec(0usize..50, 1..20),
        ) {
            let mut c = Console::<3>::new();
            let mut out = Vec::new();
            let mut pushed = [0u64; 3];
            let mut ports = port.iter().cycle();
            for (id, raw) in &writes {
                // One byte in six is a line end, the others 'a'..='e'.
                let bytes: Vec<u8> = raw
                    .iter()
                    .map(|b| match b % 6 {
                        0 => b'\n',
                        k => b'a' + k - 1,
                    })
                    .collect();
                let bytes = &bytes;
                pushed[usize::from(*id)] += bytes.len() as u64;
                c.push_bytes(*id, bytes);
                let mut budget = *ports.next().unwrap();
                c.drain(&mut |b| {
                    if budget == 0 { return false; }
                    budget -= 1;
                    out.push(b);
                    true
                });
            }
            for id in 0..3 { c.flush(id); }
            c.drain(&mut |b| { out.push(b); true });
            prop_assert!(!c.has_output());
            let text = String::from_utf8(out).unwrap();
            prop_assert!(text.is_empty() || text.ends_with('\n'));
            let mut per_guest = [0u64; 3];
            for line in text.lines() {
                let rest = line.strip_prefix('[').unwrap();
                let (name, body) = rest.split_once("] ").unwrap();
                let id: usize = name.parse().unwrap();
                prop_assert!(id < 3);
                prop_assert!(body.len() <= LINE_MAX);
                prop_assert!(body.bytes().all(|b| (b'a'..=b'e').contains(&b)));
                per_guest[id] += body.len() as u64 + 1;
            }
            for id in 0..3u8 {
                let st = c.stats(id);
                prop_assert_eq!(st.accepted + st.dropped, pushed[usize::from(id)]);
                prop_assert_eq!(
                    per_guest[usize::from(id)],
                    st.accepted + st.inserted_breaks
                );
            }
        }
    }
}
