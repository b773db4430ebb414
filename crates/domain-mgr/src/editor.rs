//! The line editor: bytes typed on the console in, complete lines out.

use core::fmt;

/// What the caller writes back to erase the character left of the cursor
/// (backspace, space, backspace).
pub const ERASE: &str = "\x08 \x08";

/// What the caller writes back for a byte refused because the line is full.
pub const BELL: &str = "\x07";

/// What the caller writes back when a line ends.
pub const NEWLINE: &str = "\n";

/// A line was longer than the editor's capacity. The whole line is
/// discarded: running a command cut short (`destroy 12` as `destroy 1`)
/// would be worse than running none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow {
    /// The capacity that was exceeded, in bytes.
    pub max: usize,
}

impl fmt::Display for Overflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line too long (more than {} bytes); discarded", self.max)
    }
}

/// Where the editor is inside a terminal escape sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// Not in a sequence.
    None,
    /// After ESC.
    Esc,
    /// After ESC `[` (CSI): parameters until a final byte 0x40..=0x7e.
    Csi,
    /// After ESC `O` (SS3): one more byte.
    Ss3,
}

/// A line editor with room for `N` bytes, fed one input byte at a time.
///
/// [`feed`](Self::feed) takes the byte and a callback that receives the
/// echo, the text the caller writes back to the terminal so that the user
/// sees what the line holds. Byte by byte:
///
/// - printable ASCII (0x20..=0x7e) is appended and echoed;
/// - a tab is appended and echoed as a space (it separates words, as
///   a space does, in text pasted into the console);
/// - a byte 0x80..=0xff is appended and echoed as `?` (commands are ASCII,
///   and a visible placeholder cannot silently join two digits);
/// - backspace (0x08) and DEL (0x7f) remove the last byte and echo
///   [`ERASE`]; on an empty line they do nothing;
/// - CR or LF ends the line: the echo is [`NEWLINE`] and `feed` returns
///   the line. An LF right after a CR is dropped, so CRLF ends one line;
/// - ESC sequences (CSI `ESC [ ... final`, SS3 `ESC O x`, `ESC x`), as sent
///   by arrow and function keys, are swallowed whole;
/// - every other control byte is ignored.
///
/// A byte that would make the line longer than `N` is dropped and echoes
/// [`BELL`]; the line is then marked overflowed, and when it ends `feed`
/// returns [`Overflow`] instead of the line (backspacing does not clear the
/// mark: the user cannot know what was dropped from a paste).
///
/// The returned line is always ASCII, at most `N` bytes, and holds no
/// control byte. The editor never allocates and never panics.
#[derive(Debug, Clone)]
pub struct LineEditor<const N: usize> {
    buf: [u8; N],
    len: usize,
    overflowed: bool,
    after_cr: bool,
    escape: Escape,
}

impl<const N: usize> Default for LineEditor<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LineEditor<N> {
    /// An editor with an empty line.
    pub const fn new() -> Self {
        LineEditor {
            buf: [0; N],
            len: 0,
            overflowed: false,
            after_cr: false,
            escape: Escape::None,
        }
    }

    /// The line typed so far (not yet ended).
    pub fn pending(&self) -> &str {
        as_str(&self.buf[..self.len])
    }

    /// Forgets the line typed so far, without echo.
    pub fn clear(&mut self) {
        self.len = 0;
        self.overflowed = false;
        self.escape = Escape::None;
    }

    /// Takes one input byte, passes the echo (if any) to `echo`, and returns
    /// the line when `byte` ends one: `Ok(line)` (possibly empty), or
    /// `Err(Overflow)` if the line was longer than `N` bytes.
    pub fn feed(&mut self, byte: u8, mut echo: impl FnMut(&str)) -> Option<Result<&str, Overflow>> {
        let after_cr = core::mem::replace(&mut self.after_cr, false);
        match self.escape {
            Escape::None => {}
            Escape::Esc => {
                self.escape = match byte {
                    b'[' => Escape::Csi,
                    b'O' => Escape::Ss3,
                    _ => Escape::None,
                };
                if (0x20..=0x7e).contains(&byte) {
                    return None;
                }
            }
            Escape::Csi => {
                if (0x20..=0x3f).contains(&byte) {
                    return None;
                }
                self.escape = Escape::None;
                if (0x40..=0x7e).contains(&byte) {
                    return None;
                }
            }
            Escape::Ss3 => {
                self.escape = Escape::None;
                if (0x20..=0x7e).contains(&byte) {
                    return None;
                }
            }
        }
        match byte {
            b'\n' if after_cr => None,
            b'\r' | b'\n' => {
                self.after_cr = byte == b'\r';
                echo(NEWLINE);
                let len = core::mem::replace(&mut self.len, 0);
                if core::mem::replace(&mut self.overflowed, false) {
                    Some(Err(Overflow { max: N }))
                } else {
                    Some(Ok(as_str(&self.buf[..len])))
                }
            }
            0x08 | 0x7f => {
                if self.len > 0 {
                    self.len -= 1;
                    echo(ERASE);
                }
                None
            }
            0x1b => {
                self.escape = Escape::Esc;
                None
            }
            b'\t' | 0x20..=0x7e | 0x80..=0xff => {
                let stored = match byte {
                    b'\t' => b' ',
                    0x20..=0x7e => byte,
                    _ => b'?',
                };
                match self.buf.get_mut(self.len) {
                    Some(slot) => {
                        *slot = stored;
                        self.len += 1;
                        echo(as_str(core::slice::from_ref(slot)));
                    }
                    None => {
                        self.overflowed = true;
                        echo(BELL);
                    }
                }
                None
            }
            _ => None,
        }
    }
}

/// The buffer as text; it only ever holds ASCII, so the fallback is never
/// taken.
fn as_str(bytes: &[u8]) -> &str {
    core::str::from_utf8(bytes).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds every byte, collecting the echo and the lines that ended.
    fn run<const N: usize>(
        editor: &mut LineEditor<N>,
        input: &[u8],
    ) -> (String, Vec<Result<String, Overflow>>) {
        let mut echo = String::new();
        let mut lines = Vec::new();
        for &b in input {
            if let Some(line) = editor.feed(b, |s| echo.push_str(s)) {
                lines.push(line.map(String::from));
            }
        }
        (echo, lines)
    }

    #[test]
    fn plain_line_with_cr() {
        let mut e = LineEditor::<16>::new();
        let (echo, lines) = run(&mut e, b"list\r");
        assert_eq!(echo, "list\n");
        assert_eq!(lines, [Ok("list".into())]);
        assert_eq!(e.pending(), "");
    }

    #[test]
    fn lf_alone_ends_a_line() {
        let mut e = LineEditor::<16>::new();
        let (_, lines) = run(&mut e, b"mem\nhelp\n");
        assert_eq!(lines, [Ok("mem".into()), Ok("help".into())]);
    }

    #[test]
    fn crlf_is_one_line_end() {
        let mut e = LineEditor::<16>::new();
        let (echo, lines) = run(&mut e, b"mem\r\nhelp\r\n");
        assert_eq!(lines, [Ok("mem".into()), Ok("help".into())]);
        assert_eq!(echo, "mem\nhelp\n");
    }

    #[test]
    fn cr_cr_and_lf_lf_are_two_lines() {
        let mut e = LineEditor::<16>::new();
        let (_, lines) = run(&mut e, b"a\r\rb\n\n");
        assert_eq!(
            lines,
            [Ok("a".into()), Ok("".into()), Ok("b".into()), Ok("".into())]
        );
    }

    #[test]
    fn lfcr_is_two_line_ends() {
        let mut e = LineEditor::<16>::new();
        let (_, lines) = run(&mut e, b"a\n\r");
        assert_eq!(lines, [Ok("a".into()), Ok("".into())]);
    }

    #[test]
    fn backspace_and_del_erase() {
        let mut e = LineEditor::<16>::new();
        let (echo, lines) = run(&mut e, b"lisx\x08t\x7f\x7ft\r");
        assert_eq!(echo, "lisx\x08 \x08t\x08 \x08\x08 \x08t\n");
        assert_eq!(lines, [Ok("lit".into())]);
    }

    #[test]
    fn backspace_on_empty_line_echoes_nothing() {
        let mut e = LineEditor::<16>::new();
        let (echo, lines) = run(&mut e, b"\x08\x7f\x08ok\r");
        assert_eq!(echo, "ok\n");
        assert_eq!(lines, [Ok("ok".into())]);
    }

    #[test]
    fn control_bytes_are_ignored() {
        let mut e = LineEditor::<16>::new();
        let (echo, lines) = run(&mut e, b"\x00m\x01e\x03\x07\x0bm\x15\x7f\x7f\x7fmem\r");
        assert_eq!(lines, [Ok("mem".into())]);
        assert_eq!(echo, "mem\x08 \x08\x08 \x08\x08 \x08mem\n");
    }

    #[test]
    fn a_tab_is_a_space() {
        let mut e = LineEditor::<16>::new();
        let (echo, lines) = run(&mut e, b"stop\t3\r");
        assert_eq!(lines, [Ok("stop 3".into())]);
        assert_eq!(echo, "stop 3\n");
    }

    #[test]
    fn escape_sequences_are_swallowed() {
        let mut e = LineEditor::<32>::new();
        // Up arrow (CSI A), Delete (CSI 3 ~), F1 (SS3 P), Alt-x, then text.
        let (echo, lines) = run(&mut e, b"\x1b[Al\x1b[3~i\x1bOPs\x1bxt\r");
        assert_eq!(lines, [Ok("list".into())]);
        assert_eq!(echo, "list\n");
    }

    #[test]
    fn escape_then_line_end_still_ends_the_line() {
        let mut e = LineEditor::<16>::new();
        let (_, lines) = run(&mut e, b"mem\x1b\r");
        assert_eq!(lines, [Ok("mem".into())]);
        let (_, lines) = run(&mut e, b"mem\x1b[1;5\r");
        assert_eq!(lines, [Ok("mem".into())]);
    }

    #[test]
    fn high_bytes_become_question_marks() {
        let mut e = LineEditor::<16>::new();
        let (echo, lines) = run(&mut e, "stop 1é\r".as_bytes());
        assert_eq!(echo, "stop 1??\n");
        assert_eq!(lines, [Ok("stop 1??".into())]);
    }

    #[test]
    fn overflow_rings_and_discards_the_line() {
        let mut e = LineEditor::<4>::new();
        let (echo, lines) = run(&mut e, b"abcdef\r");
        assert_eq!(echo, "abcd\x07\x07\n");
        assert_eq!(lines, [Err(Overflow { max: 4 })]);
        assert_eq!(
            Overflow { max: 4 }.to_string(),
            "line too long (more than 4 bytes); discarded"
        );
        // The next line is unaffected.
        let (_, lines) = run(&mut e, b"mem\r");
        assert_eq!(lines, [Ok("mem".into())]);
    }

    #[test]
    fn exactly_full_is_not_overflow() {
        let mut e = LineEditor::<4>::new();
        let (_, lines) = run(&mut e, b"abcd\r");
        assert_eq!(lines, [Ok("abcd".into())]);
    }

    #[test]
    fn overflow_mark_survives_backspace() {
        let mut e = LineEditor::<3>::new();
        let (_, lines) = run(&mut e, b"abcd\x7f\x7f\r");
        assert_eq!(lines, [Err(Overflow { max: 3 })]);
    }

    #[test]
    fn pending_and_clear() {
        let mut e = LineEditor::<8>::new();
        run(&mut e, b"sta");
        assert_eq!(e.pending(), "sta");
        e.clear();
        assert_eq!(e.pending(), "");
        let (_, lines) = run(&mut e, b"mem\r");
        assert_eq!(lines, [Ok("mem".into())]);
    }

    #[test]
    fn zero_capacity_editor_only_overflows() {
        let mut e = LineEditor::<0>::new();
        let (_, lines) = run(&mut e, b"\rx\r");
        assert_eq!(lines, [Ok("".into()), Err(Overflow { max: 0 })]);
    }
}
