//! `domain-mgr` is the logic of the console shell of Bulkhead's domain
//! manager service, the service domain that starts, stops and inspects the
//! other domains at an operator's request. It has three parts:
//!
//! - [`LineEditor`]: console input bytes in, complete lines out, with
//!   backspace, a fixed capacity and the echo the caller writes back.
//! - [`parse`]: one line to a [`Command`], or a [`ParseError`] whose
//!   `Display` is a one-line message for the operator.
//! - [`Shell`]: executes commands against a [`Supervisor`] (implemented by
//!   the service over hypercalls and rings) and prints aligned tables and
//!   one-line messages to any [`core::fmt::Write`].
//!
//! It owns the console's syntax and output format, nothing else: it never
//! executes a hypercall itself, never trusts a line (every byte sequence is
//! either a command or an `error: ...` line), never panics on any input,
//! and never allocates (the line is a fixed array, names are fixed arrays,
//! output is streamed).
//!
//! `docs/SHELL.md` lists the commands, their output and the error format.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

mod editor;
mod parse;
mod shell;

pub use editor::{LineEditor, Overflow, BELL, ERASE, NEWLINE};
pub use parse::{
    is_name, parse, Command, CommandHelp, DomainId, ParseError, Quoted, COMMANDS, NAME_MAX,
    QUOTE_MAX,
};
pub use shell::{
    exit_reason_name, DomainInfo, DomainRow, Error, ExitCounts, Flow, MemGrant, MemInfo, Name,
    Register, Shell, Supervisor, LINE_MAX, MAX_DOMAINS, PROMPT,
};

/// Re-exported from `hypercall-abi`: the domain states and hypercall
/// statuses the supervisor reports.
pub use hypercall_abi::{DomainState, Status};

#[cfg(test)]
mod tests;
