//! Where keyboard input goes ([`InputSwitch`]).

use crate::console::ConsoleId;

/// The escape byte: Ctrl-A.
pub const ESCAPE: u8 = 0x01;

/// The console id of the domain manager's shell, where input goes first.
pub const SHELL: ConsoleId = 0;

/// Bytes of [`InputSwitch::focus_record`].
pub const FOCUS_LEN: usize = 4;

/// First and last byte of a focus record (all zeroes is none).
const FOCUS_MARK: u8 = 0xa7;

/// What one typed byte did ([`InputSwitch::feed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fed {
    /// Deliver this byte to this console.
    Deliver(ConsoleId, u8),
    /// Ctrl-A and a digit: input goes to this console from now on.
    Switched(ConsoleId),
    /// Ctrl-A and a digit naming a console with no domain (or beyond the
    /// switch's consoles): dropped, input stays where it was.
    NoConsole(u8),
    /// A byte of the key sequence, or one it drops.
    Nothing,
}

impl Fed {
    /// The byte to deliver and where, if any.
    pub fn delivery(self) -> Option<(ConsoleId, u8)> {
        match self {
            Fed::Deliver(to, byte) => Some((to, byte)),
            _ => None,
        }
    }
}

/// Routes each input byte to the shell or to one guest console.
///
/// # Key sequence
///
/// | typed                 | effect                                          |
/// |-----------------------|-------------------------------------------------|
/// | Ctrl-A, digit `d`     | input goes to console `d` from now on (0 = the domain manager's shell); a digit naming no present console is dropped and nothing changes |
/// | Ctrl-A, Ctrl-A        | one literal Ctrl-A (0x01) to the current target |
/// | Ctrl-A, any other byte| both dropped                                    |
/// | any other byte        | to the current target                           |
///
/// A console is present when a domain has it: [`InputSwitch::new`] starts
/// with all of them present, [`InputSwitch::shell_only`] with the shell
/// alone, and [`InputSwitch::set_present`] follows domains as they come
/// and go. The shell is always present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputSwitch {
    current: ConsoleId,
    targets: u8,
    /// Bit `d` set: console `d` has a domain.
    present: u16,
    escaped: bool,
}

impl InputSwitch {
    /// A switch over consoles `0..targets` (clamped to 1..=10: a digit
    /// names one), all of them present, sending input to the [`SHELL`]
    /// first.
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
            present: (1u16 << targets) - 1,
            escaped: false,
        }
    }

    /// A switch over consoles `0..targets` (clamped as in [`new`](Self::new))
    /// where only the shell is present until [`set_present`](Self::set_present)
    /// says otherwise.
    pub const fn shell_only(targets: u8) -> Self {
        let mut s = Self::new(targets);
        s.present = 1 << SHELL;
        s
    }

    /// Takes one input byte and says what it did.
    pub fn feed(&mut self, byte: u8) -> Fed {
        if !self.escaped {
            if byte == ESCAPE {
                self.escaped = true;
                return Fed::Nothing;
            }
            return Fed::Deliver(self.current, byte);
        }
        self.escaped = false;
        match byte {
            ESCAPE => Fed::Deliver(self.current, ESCAPE),
            b'0'..=b'9' => {
                let id = byte - b'0';
                if self.select(id) {
                    Fed::Switched(id)
                } else {
                    Fed::NoConsole(id)
                }
            }
            _ => Fed::Nothing,
        }
    }

    /// Sends input to `id` from now on; false (and no change) when there is
    /// no such console or it is not present.
    pub fn select(&mut self, id: ConsoleId) -> bool {
        if self.is_present(id) {
            self.current = id;
            true
        } else {
            false
        }
    }

    /// Whether console `id` is one of the switch's and has a domain.
    pub fn is_present(&self, id: ConsoleId) -> bool {
        id < self.targets && self.present & (1 << id) != 0
    }

    /// Records whether console `id` has a domain (the shell always has;
    /// ids beyond the switch's are ignored). When the console that has the
    /// keyboard goes, input returns to the shell and this returns true.
    pub fn set_present(&mut self, id: ConsoleId, present: bool) -> bool {
        if id == SHELL || id >= self.targets {
            return false;
        }
        if present {
            self.present |= 1 << id;
            return false;
        }
        self.present &= !(1 << id);
        if self.current == id {
            self.current = SHELL;
            return true;
        }
        false
    }

    /// Where input goes now.
    pub fn current(&self) -> ConsoleId {
        self.current
    }

    /// Where input goes, as [`FOCUS_LEN`] bytes for a restarted switch
    /// to find ([`InputSwitch::resume`]).
    pub fn focus_record(&self) -> [u8; FOCUS_LEN] {
        [FOCUS_MARK, self.current, !self.current, FOCUS_MARK]
    }

    /// Sends input to the console `record` (from
    /// [`InputSwitch::focus_record`]) names, taken to be present: its
    /// domain is still there unless it is later said to be gone
    /// ([`set_present`](Self::set_present), which hands input back to the
    /// shell). Returns that console; `None`, and no change, for the shell,
    /// a console beyond the switch's, or bytes that are not such a record
    /// (never written, cleared, torn).
    pub fn resume(&mut self, record: &[u8; FOCUS_LEN]) -> Option<ConsoleId> {
        let [mark, id, check, end] = *record;
        if mark != FOCUS_MARK || end != FOCUS_MARK || check != !id || id == SHELL {
            return None;
        }
        if id >= self.targets {
            return None;
        }
        self.present |= 1 << id;
        self.current = id;
        Some(id)
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
        bytes.iter().filter_map(|&b| s.feed(b).delivery()).collect()
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
    fn a_restarted_switch_resumes_where_input_went() {
        let mut before = InputSwitch::shell_only(8);
        before.set_present(3, true);
        assert_eq!(before.feed(ESCAPE), Fed::Nothing);
        assert_eq!(before.feed(b'3'), Fed::Switched(3));
        let record = before.focus_record();
        let mut after = InputSwitch::shell_only(8);
        assert_eq!(after.resume(&record), Some(3));
        assert_eq!(feed_all(&mut after, b"ls"), [(3, b'l'), (3, b's')]);
        // Its domain turns out to be gone: input back to the shell.
        assert!(after.set_present(3, false));
        assert_eq!(after.current(), SHELL);
    }

    #[test]
    fn no_focus_record_or_the_shell_resumes_nothing() {
        let shell = InputSwitch::shell_only(8).focus_record();
        let mut beyond = InputSwitch::new(10);
        beyond.select(9);
        let beyond = beyond.focus_record();
        let mut s = InputSwitch::shell_only(4);
        for record in [[0; FOCUS_LEN], shell, beyond] {
            assert_eq!(s.resume(&record), None, "{record:?}");
            assert_eq!(s.current(), SHELL);
            assert!((1..4).all(|c| !s.is_present(c)), "nothing made present");
        }
        let mut two = InputSwitch::new(4);
        two.select(2);
        let good = two.focus_record();
        for i in 0..FOCUS_LEN {
            let mut torn = good;
            torn[i] ^= 0x20;
            assert_eq!(s.resume(&torn), None, "byte {i}");
        }
        assert_eq!(s.resume(&good), Some(2));
    }

    #[test]
    fn ctrl_a_twice_sends_a_literal_ctrl_a() {
        let mut s = InputSwitch::new(2);
        s.feed(ESCAPE);
        assert!(s.escape_pending());
        assert_eq!(s.feed(ESCAPE), Fed::Deliver(0, ESCAPE));
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

    #[test]
    fn what_each_byte_did() {
        let mut s = InputSwitch::new(3);
        assert_eq!(s.feed(b'a'), Fed::Deliver(0, b'a'));
        assert_eq!(s.feed(ESCAPE), Fed::Nothing);
        assert_eq!(s.feed(b'2'), Fed::Switched(2));
        assert_eq!(s.feed(ESCAPE), Fed::Nothing);
        assert_eq!(s.feed(b'7'), Fed::NoConsole(7));
        assert_eq!(s.current(), 2);
        assert_eq!(s.feed(ESCAPE), Fed::Nothing);
        assert_eq!(s.feed(b'x'), Fed::Nothing);
        assert_eq!(s.feed(b'b'), Fed::Deliver(2, b'b'));
    }

    #[test]
    fn only_present_consoles_take_the_keyboard() {
        let mut s = InputSwitch::shell_only(8);
        assert!(s.is_present(SHELL));
        assert_eq!(s.feed(ESCAPE), Fed::Nothing);
        assert_eq!(s.feed(b'5'), Fed::NoConsole(5));
        assert_eq!(s.current(), SHELL);
        assert!(!s.set_present(5, true));
        assert_eq!(feed_all(&mut s, b"\x015hi"), [(5, b'h'), (5, b'i')]);
        // Its domain goes while it has the keyboard: back to the shell.
        assert!(s.set_present(5, false));
        assert_eq!(s.current(), SHELL);
        assert_eq!(feed_all(&mut s, b"\x015x"), [(0, b'x')]);
        // Another console going leaves the keyboard where it is.
        s.set_present(3, true);
        s.select(3);
        assert!(!s.set_present(5, false));
        assert_eq!(s.current(), 3);
        // The shell never goes; ids beyond the switch are ignored.
        assert!(!s.set_present(SHELL, false));
        assert!(s.select(SHELL));
        assert!(!s.set_present(9, true));
        assert!(!s.is_present(9));
        assert!(!s.select(9));
    }

    /// One step of a random session: a typed byte, or a domain coming or
    /// going.
    #[derive(Debug, Clone)]
    enum Step {
        Key(u8),
        Present(u8, bool),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            // Mostly the bytes that matter: Ctrl-A and digits.
            4 => prop_oneof![Just(ESCAPE), b'0'..=b'9', any::<u8>()].prop_map(Step::Key),
            1 => (0u8..12, any::<bool>()).prop_map(|(id, on)| Step::Present(id, on)),
        ]
    }

    proptest::proptest! {
        /// Whatever is typed and whoever comes and goes, input only ever
        /// goes to a present console, every byte outside the key sequence
        /// is delivered there, and the switch agrees with a plain model.
        #[test]
        fn input_goes_only_to_present_consoles(
            targets in 0u8..12,
            steps in proptest::collection::vec(step(), 0..300),
        ) {
            let mut s = InputSwitch::shell_only(targets);
            let n = targets.clamp(1, 10);
            let mut present = [false; 16];
            present[0] = true;
            let (mut current, mut escaped) = (0u8, false);
            for st in steps {
                match st {
                    Step::Present(id, on) => {
                        let back = s.set_present(id, on);
                        if id != 0 && id < n {
                            present[id as usize] = on;
                        }
                        let expect_back = !on && id != 0 && id < n && current == id;
                        proptest::prop_assert_eq!(back, expect_back);
                        if expect_back {
                            current = 0;
                        }
                    }
                    Step::Key(b) => {
                        let fed = s.feed(b);
                        let expect = if !escaped {
                            if b == ESCAPE {
                                escaped = true;
                                Fed::Nothing
                            } else {
                                Fed::Deliver(current, b)
                            }
                        } else {
                            escaped = false;
                            match b {
                                ESCAPE => Fed::Deliver(current, ESCAPE),
                                b'0'..=b'9' => {
                                    let d = b - b'0';
                                    if d < n && present[d as usize] {
                                        current = d;
                                        Fed::Switched(d)
                                    } else {
                                        Fed::NoConsole(d)
                                    }
                                }
                                _ => Fed::Nothing,
                            }
                        };
                        proptest::prop_assert_eq!(fed, expect);
                    }
                }
                proptest::prop_assert_eq!(s.current(), current);
                proptest::prop_assert!(s.is_present(s.current()));
            }
        }
    }
}
