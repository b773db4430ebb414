//! The guest's partial console line on the core's minimal COM1 emulation.

use crate::{LineSource, Platform};

/// Longest line kept before it is printed anyway.
pub const LINE_MAX: usize = 160;

/// Bytes a guest wrote to the transmit register, printed a line at a time so
/// that its output does not interleave with the core's mid-line.
#[derive(Debug, Clone)]
pub struct LineBuffer {
    bytes: [u8; LINE_MAX],
    len: usize,
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl LineBuffer {
    /// An empty line.
    pub const fn new() -> LineBuffer {
        LineBuffer {
            bytes: [0; LINE_MAX],
            len: 0,
        }
    }

    /// Adds one byte; prints the line on `\n` or when it is full, and
    /// says whether it did. Carriage returns are dropped, other control
    /// bytes shown as `.`.
    pub fn push(&mut self, guest: &str, byte: u8, platform: &mut impl Platform) -> bool {
        match byte {
            b'\n' => {
                self.emit(guest, platform);
                return true;
            }
            b'\r' => return false,
            0x20..=0x7e => self.bytes[self.len] = byte,
            _ => self.bytes[self.len] = b'.',
        }
        self.len += 1;
        if self.len == LINE_MAX {
            self.emit(guest, platform);
            return true;
        }
        false
    }

    /// Prints what is buffered, if anything.
    pub fn flush(&mut self, guest: &str, platform: &mut impl Platform) {
        if self.len > 0 {
            self.emit(guest, platform);
        }
    }

    fn emit(&mut self, guest: &str, platform: &mut impl Platform) {
        // Only printable ASCII is ever stored, so this cannot fail.
        let text = core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("");
        platform.guest_line(guest, LineSource::Uart, text);
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakePlatform;

    #[test]
    fn lines_are_split_on_newline_and_control_bytes_masked() {
        let mut p = FakePlatform::default();
        let mut b = LineBuffer::new();
        for &c in b"hi\r\n\x01x\n" {
            b.push("g", c, &mut p);
        }
        let texts: Vec<_> = p.lines.iter().map(|l| l.2.as_str()).collect();
        assert_eq!(texts, ["hi", ".x"]);
    }

    #[test]
    fn a_long_line_is_printed_in_bounded_pieces() {
        let mut p = FakePlatform::default();
        let mut b = LineBuffer::new();
        for _ in 0..LINE_MAX + 5 {
            b.push("g", b'a', &mut p);
        }
        b.flush("g", &mut p);
        assert_eq!(p.lines.len(), 2);
        assert_eq!(p.lines[0].2.len(), LINE_MAX);
        assert_eq!(p.lines[1].2.len(), 5);
        b.flush("g", &mut p);
        assert_eq!(p.lines.len(), 2, "flushing an empty line prints nothing");
    }
}

/// The last lines a domain logged, oldest first, each ended by `\n`, in a
/// fixed buffer: a new line that does not fit pushes the oldest whole lines
/// out; a line longer than [`RecentLog::LINE_MAX`] is cut there.
#[derive(Debug, Clone)]
pub struct RecentLog {
    buf: [u8; hypercall_abi::peek::LOG_BYTES as usize],
    len: usize,
}

impl Default for RecentLog {
    fn default() -> Self {
        RecentLog::new()
    }
}

impl RecentLog {
    /// The longest line kept.
    pub const LINE_MAX: usize = 96;

    /// Empty.
    pub const fn new() -> RecentLog {
        RecentLog {
            buf: [0; hypercall_abi::peek::LOG_BYTES as usize],
            len: 0,
        }
    }

    /// Appends `line` (without its end) and a `\n`.
    pub fn push(&mut self, line: &[u8]) {
        let line = &line[..line.len().min(Self::LINE_MAX)];
        let need = line.len() + 1;
        while self.len + need > self.buf.len() {
            // Drop the oldest line.
            let first = self.buf[..self.len]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(self.len, |i| i + 1);
            self.buf.copy_within(first..self.len, 0);
            self.len -= first;
        }
        self.buf[self.len..self.len + line.len()].copy_from_slice(line);
        self.buf[self.len + line.len()] = b'\n';
        self.len += need;
    }

    /// The kept lines.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}
