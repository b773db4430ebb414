//! Where keyboard input goes ([`InputSwitch`]).

use crate::console::ConsoleId;

/// The escape byte: Ctrl-A.
pub const ESCAPE: u8 = 0x01;

/// The console id of the domain manager's shell, where input goes first.
pub const SHELL: ConsoleId = 0;

/// Routes each input byte to the shell or to one guest console.
///
/// # Key sequence
///
/// | typed                 | effect                                          |
/// |-----------------------|-------------------------------------------------|
/// | Ctrl-A, digit `d`     | input goes to console `d` from now on (0 = the domain manager's shell); a digit with no such console is dropped and nothing changes |
/// | Ctrl-A, Ctrl-A        | one literal Ctrl-A (0x01) to the current target |
/// | Ctrl-A, any other byte| both dropped                                    |
/// | any other byte        | to the current target                           |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputSwitch {
    current: ConsoleId,
    targets: u8,
    escaped: bool,
}

impl InputSwitch {
    /// A switch over consoles `0..targets` (clamped to 1..=10: a digit
    /// names one), sending input to the [`SHELL`] first.
    pub const fn new(targets: u8) -> Self {
        let targets = if targets == 0 {
            1
        } else if targets > 10 {
            10
        } else {
            targets
        };
        InputSwitch {
            current: SHELL,
            targets,
            escaped: false,
        }
    }

    /// Takes one input byte: `Some((target, byte))` when it is to be
    /// delivered, `None` when it was part of the key sequence or dropped.
    pub fn feed(&mut self, byte: u8) -> Option<(ConsoleId, u8)> {
        if !self.escaped {
            if byte == ESCAPE {
                self.escaped = true;
                return None;
            }
            return Some((self.current, byte));
        }
        self.escaped = false;
        match byte {
            ESCAPE => Some((self.current, ESCAPE)),
            b'0'..=b'9' => {
                self.select(byte - b'0');
                None
            }
            _ => None,
        }
    }

    /// Sends input to `id` from now on; false (and no change) when there is
    /// no such console.
    pub fn select(&mut self, id: ConsoleId) -> bool {
        if id < self.targets {
            self.current = id;
            true
        } else {
            false
        }
    }

    /// Where input goes now.
    pub fn current(&self) -> ConsoleId {
        self.current
    }

    /// True after a Ctrl-A that awaits its second byte.
    pub fn escape_pending(&self) -> bool {
        self.escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn feed_all(s: &mut InputSwitch, bytes: &[u8]) -> Vec<(u8, u8)> {
        bytes.iter().filter_map(|&b| s.feed(b)).collect()
    }

    #[test]
    fn starts_at_the_shell_and_passes_bytes() {
        let mut s = InputSwitch::new(4);
        assert_eq!(s.current(), SHELL);
        assert_eq!(
            feed_all(&mut s, b"ls\r"),
            [(0, b'l'), (0, b's'), (0, b'\r')]
        );
    }

    #[test]
    fn ctrl_a_digit_switches() {
        let mut s = InputSwitch::new(4);
        assert_eq!(feed_all(&mut s, b"\x012ab"), [(2, b'a'), (2, b'b')]);
        assert_eq!(s.current(), 2);
        assert_eq!(feed_all(&mut s, b"\x010x"), [(0, b'x')]);
        assert_eq!(s.current(), 0);
        assert!(s.select(3));
        assert_eq!(s.current(), 3);
    }

    #[test]
    fn ctrl_a_twice_sends_a_literal_ctrl_a() {
        let mut s = InputSwitch::new(2);
        s.feed(ESCAPE);
        assert!(s.escape_pending());
        assert_eq!(s.feed(ESCAPE), Some((0, ESCAPE)));
        assert!(!s.escape_pending());
        assert_eq!(
            feed_all(&mut s, b"\x01\x01\x01\x011"),
            [(0, 1), (0, 1), (0, b'1')]
        );
        assert_eq!(s.current(), 0, "the '1' after two literal Ctrl-A is data");
    }

    #[test]
    fn other_bytes_after_ctrl_a_are_dropped() {
        let mut s = InputSwitch::new(3);
        assert_eq!(feed_all(&mut s, b"\x01xy\x01\r\n"), [(0, b'y'), (0, b'\n')]);
        assert_eq!(s.current(), 0);
    }

    #[test]
    fn digits_without_a_console_are_dropped() {
        let mut s = InputSwitch::new(3);
        assert_eq!(feed_all(&mut s, b"\x011\x019z"), [(1, b'z')]);
        assert_eq!(s.current(), 1);
        assert!(!s.select(3));
        let mut all = InputSwitch::new(200);
        assert_eq!(feed_all(&mut all, b"\x019."), [(9, b'.')]);
        let mut none = InputSwitch::new(0);
        assert_eq!(feed_all(&mut none, b"\x011."), [(0, b'.')]);
    }
}
