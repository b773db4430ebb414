//! The shell: commands executed against a [`Supervisor`], results printed.

use core::fmt::{self, Write};

use hypercall_abi::{DomainState, Status};

use crate::editor::LineEditor;
use crate::parse::{is_name, parse, Command, DomainId, ParseError, COMMANDS, NAME_MAX};

/// The prompt the shell prints before every line it reads.
pub const PROMPT: &str = "bulkhead> ";

/// Capacity of the shell's line editor, in bytes.
pub const LINE_MAX: usize = 80;

/// Rows in [`MemInfo::grants`]: one per domain the core can hold.
pub const MAX_DOMAINS: usize = 8;

/// A manifest name held by value: 1 to [`NAME_MAX`] bytes of `a-z`, `0-9`,
/// `_`, `-`, or [`Name::NONE`] (printed `-`) for a domain without one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Name {
    bytes: [u8; NAME_MAX],
    len: u8,
}

impl Name {
    /// No name (a domain created at run time without one).
    pub const NONE: Name = Name {
        bytes: [0; NAME_MAX],
        len: 0,
    };

    /// `s` as a name, or `None` if it is not a manifest name
    /// ([`is_name`]).
    pub fn new(s: &str) -> Option<Name> {
        if !is_name(s) {
            return None;
        }
        let mut name = Name::NONE;
        name.bytes.get_mut(..s.len())?.copy_from_slice(s.as_bytes());
        name.len = u8::try_from(s.len()).ok()?;
        Some(name)
    }

    /// `s` as a name, or [`Name::NONE`] if it is not one.
    pub fn new_or_none(s: &str) -> Name {
        Name::new(s).unwrap_or(Name::NONE)
    }

    /// The name; empty for [`Name::NONE`].
    pub fn as_str(&self) -> &str {
        self.bytes
            .get(..usize::from(self.len))
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({:?})", self.as_str())
    }
}

/// Prints the name, or `-` for [`Name::NONE`]; honours width and alignment.
impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            "" => f.pad("-"),
            s => f.pad(s),
        }
    }
}

/// VM exits of one domain since it started, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExitCounts {
    /// `VMCALL` exits.
    pub hypercall: u64,
    /// Port I/O exits.
    pub io: u64,
    /// EPT violations and misconfigurations.
    pub ept: u64,
    /// Every other reason.
    pub other: u64,
}

impl ExitCounts {
    /// The sum of all reasons (saturating).
    pub fn total(&self) -> u64 {
        self.hypercall
            .saturating_add(self.io)
            .saturating_add(self.ept)
            .saturating_add(self.other)
    }
}

/// One row of `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainRow {
    /// Domain id.
    pub id: DomainId,
    /// Manifest name.
    pub name: Name,
    /// Scheduling state.
    pub state: DomainState,
    /// Scheduling priority (higher runs first).
    pub priority: u8,
    /// Memory the domain holds, in KiB.
    pub mem_kib: u64,
    /// VM exits since it started, all reasons.
    pub exits: u64,
}

/// What `status` shows about one domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainInfo {
    /// Domain id.
    pub id: DomainId,
    /// Manifest name.
    pub name: Name,
    /// Scheduling state.
    pub state: DomainState,
    /// Scheduling priority (higher runs first).
    pub priority: u8,
    /// Memory the domain holds, in KiB.
    pub mem_kib: u64,
    /// VM exits since it started, by reason.
    pub exits: ExitCounts,
}

/// Memory granted to one domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemGrant {
    /// Domain id.
    pub id: DomainId,
    /// Manifest name.
    pub name: Name,
    /// Memory granted, in KiB.
    pub kib: u64,
}

/// What `mem` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInfo {
    /// Memory not granted to any domain, in KiB.
    pub free_kib: u64,
    /// One entry per domain holding memory; `None` entries are skipped.
    pub grants: [Option<MemGrant>; MAX_DOMAINS],
    /// Memory the broker dropped because it came back in another shape
    /// than it was lent, in KiB (shown only when not 0).
    pub lost_kib: u64,
}

impl MemInfo {
    /// No free memory and no grants.
    pub const EMPTY: MemInfo = MemInfo {
        free_kib: 0,
        grants: [None; MAX_DOMAINS],
        lost_kib: 0,
    };

    /// The sum of all grants, in KiB (saturating).
    pub fn granted_kib(&self) -> u64 {
        self.grants
            .iter()
            .flatten()
            .fold(0u64, |sum, g| sum.saturating_add(g.kib))
    }
}

/// One vCPU register in a `dump`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Register {
    /// Its name, lower case (`rip`, `cr3`).
    pub name: &'static str,
    /// Its value.
    pub value: u64,
}

/// Why the supervisor could not do what a command asked. `Display` gives
/// the reason in a few words; the shell adds the command in front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// No domain has this id.
    NoSuchDomain,
    /// The manifest has no domain of this name.
    NoSuchName,
    /// The manifest domain is already running, with this id.
    AlreadyRunning(DomainId),
    /// The domain is already stopped.
    NotRunning,
    /// The domain is one the domain manager must not stop or destroy
    /// (itself, and the services the system runs on: the UART service,
    /// the memory broker, the platform service).
    Protected,
    /// The supervisor cannot do this (for example `shutdown` without the
    /// capability to stop the machine).
    Unsupported,
    /// The guest asks for more memory than the supervisor can give one
    /// guest.
    GuestTooLarge {
        /// What the guest asks for, in KiB.
        kib: u64,
        /// The most one guest may have, in KiB.
        max_kib: u64,
    },
    /// As many guests as the supervisor keeps exist already.
    TooManyGuests(u16),
    /// A hypercall failed with this status.
    Hypercall(Status),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoSuchDomain => f.write_str("no such domain"),
            Error::NoSuchName => f.write_str("no such domain in the manifest"),
            Error::AlreadyRunning(id) => write!(f, "already running as domain {id}"),
            Error::NotRunning => f.write_str("not running"),
            Error::Protected => f.write_str("protected service domain"),
            Error::Unsupported => f.write_str("not supported"),
            Error::GuestTooLarge { kib, max_kib } => write!(
                f,
                "the guest needs {kib} KiB; a guest may have at most {max_kib} KiB"
            ),
            Error::TooManyGuests(n) => {
                write!(
                    f,
                    "{n} guests exist, the most there may be; destroy one first"
                )
            }
            Error::Hypercall(status) => write!(f, "hypercall failed: {status}"),
        }
    }
}

/// What the shell acts on. The domain manager service implements it over
/// hypercalls and rings; tests use a fake. Every method reports failure as
/// an [`Error`]; none may panic.
pub trait Supervisor {
    /// Calls `out` once per domain, in id order.
    fn list(&mut self, out: &mut dyn FnMut(DomainRow));
    /// One domain's details.
    fn status(&mut self, id: DomainId) -> Result<DomainInfo, Error>;
    /// Starts the manifest domain `name` (always a valid manifest name) and
    /// returns its id.
    fn start(&mut self, name: &str) -> Result<DomainId, Error>;
    /// Stops domain `id`.
    fn stop(&mut self, id: DomainId) -> Result<(), Error>;
    /// Destroys domain `id` and frees its memory.
    fn destroy(&mut self, id: DomainId) -> Result<(), Error>;
    /// Calls `out` once per vCPU register of domain `id`, in display order.
    fn dump(&mut self, id: DomainId, out: &mut dyn FnMut(Register)) -> Result<(), Error>;
    /// Calls `out` with (basic exit reason, count) for each reason domain
    /// `id` has exited for, in reason order. A supervisor without exit
    /// counts by reason reports none.
    fn dump_exits(&mut self, id: DomainId, out: &mut dyn FnMut(u16, u64)) -> Result<(), Error> {
        let _ = (id, out);
        Ok(())
    }
    /// Calls `out` with each of the last lines domain `id` logged, oldest
    /// first. A supervisor that keeps no log reports none.
    fn dump_log(&mut self, id: DomainId, out: &mut dyn FnMut(&str)) -> Result<(), Error> {
        let _ = (id, out);
        Ok(())
    }
    /// Free memory and the grants.
    fn mem(&mut self) -> MemInfo;
    /// Stops every domain and the machine. A supervisor that really shuts
    /// down may not return.
    fn shutdown(&mut self) -> Result<(), Error>;
}

/// What the caller does after a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading input.
    Continue,
    /// `shutdown` succeeded: stop reading input.
    Shutdown,
}

/// The console shell: a [`LineEditor`] of `N` bytes and the command
/// interpreter.
///
/// Output goes to a [`core::fmt::Write`]; lines end in `\n` (turning that
/// into CRLF for a raw terminal is the port's business). A write error
/// from the output is ignored: the console is lossy, and the command has
/// run either way.
#[derive(Debug, Clone)]
pub struct Shell<const N: usize = LINE_MAX> {
    editor: LineEditor<N>,
}

impl<const N: usize> Default for Shell<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// The state as `list` and `status` print it.
fn state_name(state: DomainState) -> &'static str {
    match state {
        DomainState::Running => "running",
        DomainState::Blocked => "blocked",
        DomainState::Stopped => "stopped",
    }
}

/// Registers per line in a `dump`.
const DUMP_COLUMNS: usize = 3;

impl<const N: usize> Shell<N> {
    /// A shell with an empty line.
    pub const fn new() -> Self {
        Shell {
            editor: LineEditor::new(),
        }
    }

    /// Prints [`PROMPT`]. Call once when the console starts; [`feed`]
    /// prints it again after every line.
    ///
    /// [`feed`]: Self::feed
    pub fn prompt<W: Write + ?Sized>(&self, out: &mut W) {
        let _ = out.write_str(PROMPT);
    }

    /// Takes one input byte: writes its echo to `out`, and when it ends a
    /// line, executes the line ([`Shell::execute`]) and prints the
    /// prompt again unless the line shut the system down. A line longer
    /// than `N` bytes is not executed; it prints
    /// `error: line too long (more than N bytes); discarded`.
    pub fn feed<S: Supervisor + ?Sized, W: Write + ?Sized>(
        &mut self,
        byte: u8,
        sup: &mut S,
        out: &mut W,
    ) -> Flow {
        let line = self.editor.feed(byte, |echo| {
            let _ = out.write_str(echo);
        });
        let flow = match line {
            None => return Flow::Continue,
            Some(Ok(line)) => Shell::execute(line, sup, out),
            Some(Err(overflow)) => {
                let _ = writeln!(out, "error: {overflow}");
                Flow::Continue
            }
        };
        if flow == Flow::Continue {
            let _ = out.write_str(PROMPT);
        }
        flow
    }
}

/// `execute` does not depend on the editor's size, so it lives on the
/// default `Shell` and is called as `Shell::execute(line, sup, out)`.
impl Shell {
    /// Parses and executes one line, printing the result to `out`.
    ///
    /// A blank line prints nothing. Every other line prints at least one
    /// line: the result, or one `error: ...` line for a parse error or a
    /// supervisor error (then the shell simply continues). Returns
    /// [`Flow::Shutdown`] only after a successful `shutdown`.
    pub fn execute<S: Supervisor + ?Sized, W: Write + ?Sized>(
        line: &str,
        sup: &mut S,
        out: &mut W,
    ) -> Flow {
        match parse(line) {
            Err(ParseError::Empty) => Flow::Continue,
            Err(e) => {
                let _ = writeln!(out, "error: {e}");
                Flow::Continue
            }
            Ok(command) => run(command, sup, out).unwrap_or(Flow::Continue),
        }
    }
}

/// Executes a parsed command; `Err` only for a write error.
fn run<S: Supervisor + ?Sized, W: Write + ?Sized>(
    command: Command<'_>,
    sup: &mut S,
    out: &mut W,
) -> Result<Flow, fmt::Error> {
    match command {
        Command::List => list(sup, out)?,
        Command::Status(id) => match sup.status(id) {
            Ok(info) => status(&info, out)?,
            Err(e) => writeln!(out, "error: status {id}: {e}")?,
        },
        Command::Start(name) => match sup.start(name) {
            Ok(id) => writeln!(out, "started {name} as domain {id}")?,
            Err(e) => writeln!(out, "error: start {name}: {e}")?,
        },
        Command::Stop(id) => match sup.stop(id) {
            Ok(()) => writeln!(out, "stopped domain {id}")?,
            Err(e) => writeln!(out, "error: stop {id}: {e}")?,
        },
        Command::Destroy(id) => match sup.destroy(id) {
            Ok(()) => writeln!(out, "destroyed domain {id}")?,
            Err(e) => writeln!(out, "error: destroy {id}: {e}")?,
        },
        Command::Dump(id) => dump(id, sup, out)?,
        Command::Mem => mem(&sup.mem(), out)?,
        Command::Help => help(out)?,
        Command::Shutdown => {
            // Printed first: a real shutdown does not return.
            writeln!(out, "shutting down")?;
            match sup.shutdown() {
                Ok(()) => return Ok(Flow::Shutdown),
                Err(e) => writeln!(out, "error: shutdown: {e}")?,
            }
        }
    }
    Ok(Flow::Continue)
}

fn list<S: Supervisor + ?Sized, W: Write + ?Sized>(sup: &mut S, out: &mut W) -> fmt::Result {
    let mut rows = 0usize;
    let mut result = Ok(());
    sup.list(&mut |row| {
        if rows == 0 {
            result = result.and_then(|()| {
                writeln!(
                    out,
                    "{:>5}  {:<16}  {:<7}  {:>4}  {:>10}  {:>12}",
                    "ID", "NAME", "STATE", "PRIO", "MEM KiB", "EXITS"
                )
            });
        }
        rows += 1;
        result = result.and_then(|()| {
            writeln!(
                out,
                "{:>5}  {:<16}  {:<7}  {:>4}  {:>10}  {:>12}",
                row.id,
                row.name,
                state_name(row.state),
                row.priority,
                row.mem_kib,
                row.exits
            )
        });
    });
    result?;
    if rows == 0 {
        writeln!(out, "no domains")?;
    }
    Ok(())
}

fn status<W: Write + ?Sized>(info: &DomainInfo, out: &mut W) -> fmt::Result {
    let e = &info.exits;
    writeln!(out, "domain {} ({})", info.id, info.name)?;
    writeln!(out, "  state     {}", state_name(info.state))?;
    writeln!(out, "  priority  {}", info.priority)?;
    writeln!(out, "  memory    {} KiB", info.mem_kib)?;
    writeln!(
        out,
        "  exits     {} (hypercall {}, io {}, ept {}, other {})",
        e.total(),
        e.hypercall,
        e.io,
        e.ept,
        e.other
    )
}

fn dump<S: Supervisor + ?Sized, W: Write + ?Sized>(
    id: DomainId,
    sup: &mut S,
    out: &mut W,
) -> fmt::Result {
    let mut count = 0usize;
    let mut result = Ok(());
    let outcome = sup.dump(id, &mut |reg| {
        result = result.and_then(|()| {
            if count == 0 {
                writeln!(out, "domain {id} registers:")?;
            }
            let sep = if count.is_multiple_of(DUMP_COLUMNS) {
                ""
            } else {
                "  "
            };
            write!(out, "{sep}{:>6} {:016x}", reg.name, reg.value)?;
            if count % DUMP_COLUMNS == DUMP_COLUMNS - 1 {
                writeln!(out)?;
            }
            Ok(())
        });
        count += 1;
    });
    result?;
    if !count.is_multiple_of(DUMP_COLUMNS) {
        writeln!(out)?;
    }
    match outcome {
        Err(e) => return writeln!(out, "error: dump {id}: {e}"),
        Ok(()) if count == 0 => writeln!(out, "domain {id}: no registers")?,
        Ok(()) => {}
    }
    let mut first = true;
    let outcome = sup.dump_exits(id, &mut |reason, n| {
        result = result.and_then(|()| {
            if core::mem::take(&mut first) {
                writeln!(out, "exits by reason:")?;
            }
            writeln!(
                out,
                "  {reason:>3} {:<20} {n:>12}",
                exit_reason_name(reason)
            )
        });
    });
    result?;
    if let Err(e) = outcome {
        return writeln!(out, "error: dump {id}: {e}");
    }
    let mut first = true;
    let outcome = sup.dump_log(id, &mut |line| {
        result = result.and_then(|()| {
            if core::mem::take(&mut first) {
                writeln!(out, "recent log lines:")?;
            }
            writeln!(out, "  {line}")
        });
    });
    result?;
    match outcome {
        Err(e) => writeln!(out, "error: dump {id}: {e}"),
        Ok(()) => Ok(()),
    }
}

/// The name of a basic VM-exit reason (Intel SDM volume 3, appendix C),
/// for the reasons a domain commonly exits for.
pub fn exit_reason_name(reason: u16) -> &'static str {
    match reason {
        0 => "exception or NMI",
        1 => "external interrupt",
        2 => "triple fault",
        7 => "interrupt window",
        10 => "cpuid",
        12 => "hlt",
        18 => "vmcall",
        28 => "control register",
        30 => "port i/o",
        31 => "rdmsr",
        32 => "wrmsr",
        33 => "bad guest state",
        48 => "ept violation",
        49 => "ept misconfiguration",
        52 => "preemption timer",
        55 => "xsetbv",
        _ => "other",
    }
}

fn mem<W: Write + ?Sized>(info: &MemInfo, out: &mut W) -> fmt::Result {
    writeln!(out, "free     {:>10} KiB", info.free_kib)?;
    writeln!(out, "granted  {:>10} KiB", info.granted_kib())?;
    if info.lost_kib > 0 {
        writeln!(
            out,
            "lost     {:>10} KiB (returned to the broker in another shape than lent)",
            info.lost_kib
        )?;
    }
    let mut grants = info.grants.iter().flatten().peekable();
    if grants.peek().is_some() {
        writeln!(out, "{:>5}  {:<16}  {:>10}", "ID", "NAME", "KiB")?;
    }
    for g in grants {
        writeln!(out, "{:>5}  {:<16}  {:>10}", g.id, g.name, g.kib)?;
    }
    Ok(())
}

fn help<W: Write + ?Sized>(out: &mut W) -> fmt::Result {
    writeln!(out, "commands:")?;
    for c in COMMANDS {
        writeln!(out, "  {:<12}  {}", c.usage, c.description)?;
    }
    Ok(())
}
