//! The command parser: one line of text to a [`Command`].

use core::fmt;

/// A domain id as the shell reads and prints it (decimal, `0..=65535`).
pub type DomainId = u16;

/// Longest manifest name, in bytes.
pub const NAME_MAX: usize = 16;

/// Longest piece of user input quoted in an error message, in characters;
/// longer input is cut and ends with `...`.
pub const QUOTE_MAX: usize = 24;

/// A parsed shell command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// `list`: every domain, one row each.
    List,
    /// `status ID`: one domain in detail.
    Status(DomainId),
    /// `start NAME`: start the manifest domain `NAME` (a valid name, see
    /// [`is_name`]).
    Start(&'a str),
    /// `stop ID`: stop a domain.
    Stop(DomainId),
    /// `destroy ID`: destroy a domain.
    Destroy(DomainId),
    /// `dump ID`: a domain's vCPU registers.
    Dump(DomainId),
    /// `mem`: free memory and each domain's grant.
    Mem,
    /// `help`: the command list.
    Help,
    /// `shutdown`: stop everything.
    Shutdown,
}

/// What a command takes after its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arg {
    None,
    Id,
    Name,
}

/// One command's entry in the help text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandHelp {
    /// The command word.
    pub name: &'static str,
    /// The command word with its argument placeholder (`stop ID`).
    pub usage: &'static str,
    /// What it does, in one line.
    pub description: &'static str,
}

/// Every command, in the order `help` prints them.
pub const COMMANDS: [CommandHelp; 9] = {
    const fn c(name: &'static str, usage: &'static str, description: &'static str) -> CommandHelp {
        CommandHelp {
            name,
            usage,
            description,
        }
    }
    [
        c(
            "list",
            "list",
            "list every domain: id, name, state, priority, memory, exits",
        ),
        c(
            "status",
            "status ID",
            "show one domain's state, priority, memory and exit counts",
        ),
        c(
            "start",
            "start NAME",
            "start the manifest domain NAME; prints its id",
        ),
        c("stop", "stop ID", "stop domain ID (it keeps its memory)"),
        c(
            "destroy",
            "destroy ID",
            "destroy domain ID and free its memory",
        ),
        c("dump", "dump ID", "print domain ID's vCPU registers"),
        c(
            "mem",
            "mem",
            "show free memory and the memory granted to each domain",
        ),
        c("help", "help", "show this list"),
        c("shutdown", "shutdown", "stop every domain and power off"),
    ]
};

/// The argument each entry of [`COMMANDS`] takes, in the same order.
const ARGS: [Arg; 9] = [
    Arg::None,
    Arg::Id,
    Arg::Name,
    Arg::Id,
    Arg::Id,
    Arg::Id,
    Arg::None,
    Arg::None,
    Arg::None,
];

/// Why a line is not a command. Its `Display` is a one-line message for
/// the user (no trailing newline); user input in it is quoted and escaped
/// by [`Quoted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError<'a> {
    /// The line is empty or only whitespace (the shell prints nothing).
    Empty,
    /// The first word is not a command.
    UnknownCommand(&'a str),
    /// The command needs an argument and has none.
    MissingArgument {
        /// The command word.
        command: &'static str,
    },
    /// The command has more words than it takes.
    TooManyArguments {
        /// The command word.
        command: &'static str,
    },
    /// The argument is not a decimal number.
    NotAnId {
        /// The command word.
        command: &'static str,
        /// The argument as typed.
        got: &'a str,
    },
    /// The argument is a decimal number above [`DomainId::MAX`].
    IdOutOfRange {
        /// The command word.
        command: &'static str,
        /// The argument as typed.
        got: &'a str,
    },
    /// The argument is not a manifest name (see [`is_name`]).
    NotAName {
        /// The command word.
        command: &'static str,
        /// The argument as typed.
        got: &'a str,
    },
}

impl fmt::Display for ParseError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ParseError::Empty => f.write_str("empty line"),
            ParseError::UnknownCommand(word) => {
                write!(f, "unknown command {}; type help", Quoted(word))
            }
            ParseError::MissingArgument { command } => {
                let what = match arg_of(command) {
                    Arg::Name => "manifest name",
                    _ => "domain id",
                };
                write!(f, "{command}: missing {what}; usage: {}", usage_of(command))
            }
            ParseError::TooManyArguments { command } => {
                write!(
                    f,
                    "{command}: too many arguments; usage: {}",
                    usage_of(command)
                )
            }
            ParseError::NotAnId { command, got } => {
                write!(f, "{command}: expected a domain id, got {}", Quoted(got))
            }
            ParseError::IdOutOfRange { command, got } => write!(
                f,
                "{command}: domain id {} is out of range (0-{})",
                Quoted(got),
                DomainId::MAX
            ),
            ParseError::NotAName { command, got } => write!(
                f,
                "{command}: expected a manifest name (1-{NAME_MAX} of a-z 0-9 _ -), got {}",
                Quoted(got)
            ),
        }
    }
}

/// User input inside an error message: in double quotes, at most
/// [`QUOTE_MAX`] characters (then `...`), printable ASCII as is (`"` and
/// `\` escaped), everything else escaped (`\n`, `\u{e9}`), so a message
/// always stays on one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for (i, c) in self.0.chars().enumerate() {
            if i == QUOTE_MAX {
                f.write_str("...")?;
                break;
            }
            match c {
                '"' | '\\' => write!(f, "{}", c.escape_default())?,
                ' '..='~' => write!(f, "{c}")?,
                _ if c.is_ascii() => write!(f, "{}", c.escape_default())?,
                _ => write!(f, "{}", c.escape_unicode())?,
            }
        }
        f.write_str("\"")
    }
}

/// The help entry and argument kind of command word `word`.
fn lookup(word: &str) -> Option<(&'static CommandHelp, Arg)> {
    COMMANDS.iter().zip(ARGS).find(|(c, _)| c.name == word)
}

fn arg_of(command: &str) -> Arg {
    lookup(command).map_or(Arg::None, |(_, arg)| arg)
}

fn usage_of(command: &str) -> &'static str {
    lookup(command).map_or("", |(c, _)| c.usage)
}

/// Whether `s` is a manifest name: 1 to [`NAME_MAX`] bytes of `a-z`,
/// `0-9`, `_` and `-`.
pub fn is_name(s: &str) -> bool {
    (1..=NAME_MAX).contains(&s.len())
        && s.bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
}

/// Parses a domain id: decimal digits only (no sign, no prefix; leading
/// zeros are fine).
fn parse_id<'a>(command: &'static str, got: &'a str) -> Result<DomainId, ParseError<'a>> {
    if got.is_empty() || !got.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::NotAnId { command, got });
    }
    let mut value: u32 = 0;
    for b in got.bytes() {
        value = value * 10 + u32::from(b - b'0');
        if value > u32::from(DomainId::MAX) {
            return Err(ParseError::IdOutOfRange { command, got });
        }
    }
    DomainId::try_from(value).map_err(|_| ParseError::IdOutOfRange { command, got })
}

/// Parses one line. Words are separated by any run of ASCII whitespace;
/// leading and trailing whitespace is ignored. Command words are lower
/// case. Never panics, whatever the input.
pub fn parse(line: &str) -> Result<Command<'_>, ParseError<'_>> {
    let mut words = line.split_ascii_whitespace();
    let Some(word) = words.next() else {
        return Err(ParseError::Empty);
    };
    let Some((help, kind)) = lookup(word) else {
        return Err(ParseError::UnknownCommand(word));
    };
    let command = help.name;
    let arg = match kind {
        Arg::None => None,
        Arg::Id | Arg::Name => Some(
            words
                .next()
                .ok_or(ParseError::MissingArgument { command })?,
        ),
    };
    if words.next().is_some() {
        return Err(ParseError::TooManyArguments { command });
    }
    let id = || parse_id(command, arg.unwrap_or(""));
    Ok(match command {
        "list" => Command::List,
        "status" => Command::Status(id()?),
        "start" => {
            let name = arg.unwrap_or("");
            if !is_name(name) {
                return Err(ParseError::NotAName { command, got: name });
            }
            Command::Start(name)
        }
        "stop" => Command::Stop(id()?),
        "destroy" => Command::Destroy(id()?),
        "dump" => Command::Dump(id()?),
        "mem" => Command::Mem,
        "help" => Command::Help,
        _ => Command::Shutdown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn err(line: &str) -> String {
        parse(line).unwrap_err().to_string()
    }

    #[test]
    fn every_command() {
        assert_eq!(parse("list"), Ok(Command::List));
        assert_eq!(parse("status 3"), Ok(Command::Status(3)));
        assert_eq!(parse("start net-1_a"), Ok(Command::Start("net-1_a")));
        assert_eq!(parse("stop 0"), Ok(Command::Stop(0)));
        assert_eq!(parse("destroy 65535"), Ok(Command::Destroy(65535)));
        assert_eq!(parse("dump 7"), Ok(Command::Dump(7)));
        assert_eq!(parse("mem"), Ok(Command::Mem));
        assert_eq!(parse("help"), Ok(Command::Help));
        assert_eq!(parse("shutdown"), Ok(Command::Shutdown));
    }

    #[test]
    fn whitespace_is_flexible() {
        assert_eq!(parse("   stop    12   "), Ok(Command::Stop(12)));
        assert_eq!(parse("\tlist\t"), Ok(Command::List));
        assert_eq!(parse("status 0003\r\n"), Ok(Command::Status(3)));
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(parse("  \t "), Err(ParseError::Empty));
    }

    #[test]
    fn names() {
        assert!(is_name("a"));
        assert!(is_name("abcdefghijklmnop"));
        assert!(!is_name("abcdefghijklmnopq"));
        assert!(!is_name(""));
        assert!(!is_name("Net"));
        assert!(!is_name("a.b"));
        assert!(!is_name("é"));
    }

    #[test]
    fn unknown_command() {
        assert_eq!(err("foo"), r#"unknown command "foo"; type help"#);
        assert_eq!(err("LIST"), r#"unknown command "LIST"; type help"#);
        assert_eq!(err("  foo bar"), r#"unknown command "foo"; type help"#);
    }

    #[test]
    fn not_an_id() {
        assert_eq!(err("status x"), r#"status: expected a domain id, got "x""#);
        assert_eq!(err("stop -1"), r#"stop: expected a domain id, got "-1""#);
        assert_eq!(
            err("destroy +1"),
            r#"destroy: expected a domain id, got "+1""#
        );
        assert_eq!(err("dump 0x1"), r#"dump: expected a domain id, got "0x1""#);
        assert_eq!(
            err("status ３"),
            r#"status: expected a domain id, got "\u{ff13}""#
        );
    }

    #[test]
    fn id_out_of_range() {
        assert_eq!(
            err("status 65536"),
            r#"status: domain id "65536" is out of range (0-65535)"#
        );
        assert_eq!(
            err("stop 99999999999999999999999999999999"),
            r#"stop: domain id "999999999999999999999999..." is out of range (0-65535)"#
        );
    }

    #[test]
    fn missing_argument() {
        assert_eq!(err("status"), "status: missing domain id; usage: status ID");
        assert_eq!(err("stop "), "stop: missing domain id; usage: stop ID");
        assert_eq!(
            err("destroy"),
            "destroy: missing domain id; usage: destroy ID"
        );
        assert_eq!(err("dump"), "dump: missing domain id; usage: dump ID");
        assert_eq!(
            err("start"),
            "start: missing manifest name; usage: start NAME"
        );
    }

    #[test]
    fn too_many_arguments() {
        assert_eq!(err("stop 1 2"), "stop: too many arguments; usage: stop ID");
        assert_eq!(err("list all"), "list: too many arguments; usage: list");
        assert_eq!(err("mem x"), "mem: too many arguments; usage: mem");
        assert_eq!(err("help me"), "help: too many arguments; usage: help");
        assert_eq!(
            err("shutdown now"),
            "shutdown: too many arguments; usage: shutdown"
        );
        assert_eq!(
            err("start a b"),
            "start: too many arguments; usage: start NAME"
        );
        // Counted before the argument is checked.
        assert_eq!(
            err("status x y"),
            "status: too many arguments; usage: status ID"
        );
    }

    #[test]
    fn not_a_name() {
        assert_eq!(
            err("start Net"),
            r#"start: expected a manifest name (1-16 of a-z 0-9 _ -), got "Net""#
        );
        assert_eq!(
            err("start abcdefghijklmnopq"),
            r#"start: expected a manifest name (1-16 of a-z 0-9 _ -), got "abcdefghijklmnopq""#
        );
    }

    #[test]
    fn empty_message() {
        assert_eq!(err(""), "empty line");
    }

    #[test]
    fn quoting_escapes_and_cuts() {
        assert_eq!(Quoted("a\"b\\c").to_string(), r#""a\"b\\c""#);
        assert_eq!(Quoted("\x07\x7f").to_string(), r#""\u{7}\u{7f}""#);
        assert_eq!(Quoted("é\u{2028}").to_string(), r#""\u{e9}\u{2028}""#);
        assert_eq!(
            Quoted("abcdefghijklmnopqrstuvwxyz").to_string(),
            r#""abcdefghijklmnopqrstuvwx...""#
        );
        assert_eq!(err("fo\x07o"), r#"unknown command "fo\u{7}o"; type help"#);
    }

    #[test]
    fn every_help_entry_parses() {
        for c in COMMANDS {
            let line = c.usage.replace("ID", "1").replace("NAME", "x");
            assert!(parse(&line).is_ok(), "{line}");
            assert!(c.usage.starts_with(c.name));
        }
    }

    proptest! {
        #[test]
        fn never_panics_and_messages_are_one_line(s in any::<String>()) {
            if let Err(e) = parse(&s) {
                let m = e.to_string();
                prop_assert!(!m.is_empty());
                prop_assert!(m.bytes().all(|b| (0x20..0x7f).contains(&b)), "{m:?}");
            }
        }

        #[test]
        fn never_panics_on_bytes(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let s = String::from_utf8_lossy(&b);
            let _ = parse(&s);
        }

        #[test]
        fn ids_round_trip(id in any::<u16>(), pad in 0usize..4) {
            let line = format!("{:pad$}dump{:pad$} {id}{:pad$}", "", "", "");
            prop_assert_eq!(parse(&line), Ok(Command::Dump(id)));
        }

        #[test]
        fn valid_names_parse(name in "[a-z0-9_-]{1,16}") {
            let line = format!("start {name}");
            prop_assert_eq!(parse(&line), Ok(Command::Start(name.as_str())));
        }
    }
}
