//! The end-to-end verdict: a run passes when the console shows every
//! expected line in order, no forbidden line, and the emulator ended the way
//! the test expects.

use std::fmt;
use std::time::Duration;

use crate::emulator::{Outcome, Run};

/// Lines of console shown when a test fails.
pub const TAIL_LINES: usize = 40;

/// How the emulator must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// With status 0 (Bochs: the core's success path via port 0x8900).
    Success,
    /// With this status.
    Status(i32),
}

/// One end-to-end test.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Test name.
    pub name: &'static str,
    /// The core's command line.
    pub cmdline: &'static str,
    /// Substrings that must appear in this order (each after the previous
    /// match, on the same line or a later one).
    pub expect: Vec<String>,
    /// Substrings that must appear somewhere, in any order (for output of
    /// domains that run concurrently).
    pub anywhere: Vec<String>,
    /// Substrings that must appear on no line.
    pub forbid: Vec<String>,
    /// The system manifest booted with it (relative to the workspace).
    pub system: Option<&'static str>,
    /// Console input: each `(wait, send)` types `send` once `wait` was
    /// printed (COM1 then runs over a socket).
    pub input: Vec<(String, String)>,
    /// Markers of a figure that must change and come back (memory handed
    /// out and returned): the console lines containing each marker, in
    /// order, must be at least three, the last equal to the first and some
    /// line between them different.
    pub returns: Vec<String>,
    /// A numbered sequence that must have no gap: on the console lines
    /// containing this marker, the number at the end of each line must be
    /// one more than on the previous one (at least two lines).
    pub sequence: Option<&'static str>,
    /// How the emulator must end.
    pub exit: Exit,
    /// Hard limit on the run.
    pub timeout: Duration,
}

/// Lines no healthy run prints.
pub fn default_forbidden() -> Vec<String> {
    ["bulkhead: error:", "panic", "CPU exception"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Why a run failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The first reason.
    pub reason: String,
    /// Elapsed time.
    pub elapsed: Duration,
    /// The last lines of the console.
    pub tail: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.reason)?;
        writeln!(
            f,
            "after {:.1} s; last {} console lines:",
            self.elapsed.as_secs_f64(),
            self.tail.len()
        )?;
        for line in &self.tail {
            writeln!(f, "  | {line}")?;
        }
        Ok(())
    }
}

/// Judges a finished run against `spec`.
pub fn judge(spec: &Spec, run: &Run) -> Result<(), Failure> {
    let lines: Vec<&str> = run.console.lines().collect();
    let fail = |reason: String| Failure {
        reason,
        elapsed: run.elapsed,
        tail: lines[lines.len().saturating_sub(TAIL_LINES)..]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    for line in &lines {
        if let Some(bad) = spec.forbid.iter().find(|f| line.contains(f.as_str())) {
            return Err(fail(format!("forbidden output {bad:?} in line: {line}")));
        }
    }
    // Each expectation must appear after the end of the previous match
    // (possibly later on the same line).
    let mut next = 0;
    let mut at = 0;
    while next < spec.expect.len() {
        match run.console[at..].find(spec.expect[next].as_str()) {
            Some(pos) => {
                at += pos + spec.expect[next].len();
                next += 1;
            }
            None => break,
        }
    }
    if next == spec.expect.len() {
        if let Some(missing) = spec
            .anywhere
            .iter()
            .find(|a| !run.console.contains(a.as_str()))
        {
            return Err(fail(format!(
                "expected output not seen anywhere: {missing:?}"
            )));
        }
    }
    if next == spec.expect.len() {
        for marker in &spec.returns {
            let seen: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| l.contains(marker.as_str()))
                .collect();
            let comes_back = seen.len() >= 3
                && seen.first() == seen.last()
                && seen.iter().any(|l| Some(l) != seen.first());
            if !comes_back {
                return Err(fail(format!(
                    "the lines with {marker:?} do not change and come back: {seen:?}"
                )));
            }
        }
    }
    if let (true, Some(marker)) = (next == spec.expect.len(), spec.sequence) {
        check_sequence(&lines, marker).map_err(fail)?;
    }
    if next < spec.expect.len() {
        let why = match run.outcome {
            Outcome::TimedOut => format!(
                "the emulator did not finish within {} s (killed)",
                spec.timeout.as_secs()
            ),
            Outcome::Exited(code) => format!("the emulator exited with {code:?}"),
            Outcome::Stopped => "xtask stopped the emulator".to_string(),
        };
        return Err(fail(format!(
            "expectation {} of {} not seen: {:?} ({why})",
            next + 1,
            spec.expect.len(),
            spec.expect[next]
        )));
    }
    let wanted = match spec.exit {
        Exit::Success => 0,
        Exit::Status(s) => s,
    };
    match run.outcome {
        Outcome::TimedOut => Err(fail(format!(
            "every expectation was seen but the emulator did not exit within {} s",
            spec.timeout.as_secs()
        ))),
        Outcome::Exited(Some(code)) if code == wanted => Ok(()),
        // Bochs now and then dies by a signal while tearing itself down
        // after the core asked it to quit (seen once in a few dozen runs,
        // in its display thread). When the core's own last word was a
        // clean shutdown, the run is judged by that.
        Outcome::Exited(None) if spec.exit == Exit::Success && clean_shutdown(&lines) => Ok(()),
        Outcome::Exited(code) => Err(fail(format!(
            "the emulator exited with {code:?}, expected {wanted}"
        ))),
        Outcome::Stopped => Err(fail("xtask stopped the emulator before it exited".into())),
    }
}

/// Whether the last shutdown line of the core reports success.
pub fn clean_shutdown(lines: &[&str]) -> bool {
    lines
        .iter()
        .rev()
        .find_map(|l| l.split_once("bulkhead: shutdown status="))
        .is_some_and(|(_, status)| status.trim() == "0")
}

/// Checks that the numbers ending the lines with `marker` count up by one.
fn check_sequence(lines: &[&str], marker: &str) -> std::result::Result<(), String> {
    let mut numbers = Vec::new();
    for line in lines.iter().filter(|l| l.contains(marker)) {
        let digits: String = line
            .trim_end()
            .chars()
            .rev()
            .take_while(char::is_ascii_digit)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if let Ok(n) = digits.parse::<u64>() {
            numbers.push(n);
        }
    }
    if numbers.len() < 2 {
        return Err(format!("fewer than two lines with {marker:?}: {numbers:?}"));
    }
    match numbers.windows(2).find(|w| w[1] != w[0] + 1) {
        Some(w) => Err(format!(
            "the sequence {marker:?} jumps from {} to {}: {numbers:?}",
            w[0], w[1]
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn spec(expect: &[&str]) -> Spec {
        Spec {
            name: "t",
            cmdline: "",
            expect: expect.iter().map(|s| s.to_string()).collect(),
            anywhere: Vec::new(),
            forbid: default_forbidden(),
            system: None,
            input: Vec::new(),
            returns: Vec::new(),
            sequence: None,
            exit: Exit::Success,
            timeout: Duration::from_secs(5),
        }
    }

    fn run(console: &str, outcome: Outcome) -> Run {
        Run {
            console: console.into(),
            outcome,
            elapsed: Duration::from_millis(1500),
            scratch: PathBuf::new(),
            marks: Vec::new(),
        }
    }

    const GOOD: &str =
        "bulkhead: VMX enabled: revision id 0x2b\n[first] hello\nbulkhead: shutdown status=0\n";

    #[test]
    fn a_numbered_sequence_must_have_no_gap() {
        let mut s = spec(&["bulkhead: shutdown status=0"]);
        s.sequence = Some("count ");
        let console = |ns: &[&str]| {
            let mut c = String::new();
            for n in ns {
                c.push_str(&format!("[demo/uart] demo count {n}\nother 9\n"));
            }
            c + GOOD
        };
        let ok = |ns: &[&str]| judge(&s, &run(&console(ns), Outcome::Exited(Some(0)))).is_ok();
        assert!(ok(&["1", "2", "3"]));
        assert!(ok(&["4", "5"]));
        assert!(!ok(&["1", "3"]));
        assert!(!ok(&["1", "2", "2"]));
        assert!(!ok(&["1"]));
        assert!(
            ok(&["1", "x", "2"]),
            "lines without a number are not part of it"
        );
        assert!(!ok(&["1", "x", "3"]));
    }

    #[test]
    fn a_figure_must_change_and_come_back() {
        let mut s = spec(&["bulkhead: shutdown status=0"]);
        s.returns = vec!["free ".into()];
        let console = |frees: &[&str]| {
            let mut c = String::new();
            for f in frees {
                c.push_str(&format!("free {f} KiB\n"));
            }
            c + GOOD
        };
        assert!(judge(
            &s,
            &run(&console(&["10", "6", "10"]), Outcome::Exited(Some(0)))
        )
        .is_ok());
        for bad in [
            &["10", "6", "8"][..],
            &["10", "10", "10"],
            &["10", "10"],
            &[],
        ] {
            assert!(
                judge(&s, &run(&console(bad), Outcome::Exited(Some(0)))).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn matching_output_passes() {
        let s = spec(&["VMX enabled", "[first] hello", "shutdown status=0"]);
        assert_eq!(judge(&s, &run(GOOD, Outcome::Exited(Some(0)))), Ok(()));
    }

    #[test]
    fn a_wrong_expectation_fails_and_names_it() {
        let s = spec(&["VMX enabled", "[first] goodbye", "shutdown status=0"]);
        let f = judge(&s, &run(GOOD, Outcome::Exited(Some(0)))).unwrap_err();
        assert!(f.reason.contains("expectation 2 of 3"), "{}", f.reason);
        assert!(f.reason.contains("[first] goodbye"));
        assert_eq!(f.tail.len(), 3);
        let shown = f.to_string();
        assert!(
            shown.contains("1.5 s") && shown.contains("| [first] hello"),
            "{shown}"
        );
    }

    #[test]
    fn expectations_must_come_in_order() {
        let s = spec(&["[first] hello", "VMX enabled"]);
        assert!(judge(&s, &run(GOOD, Outcome::Exited(Some(0)))).is_err());
    }

    #[test]
    fn forbidden_lines_timeouts_and_bad_exits_fail() {
        let s = spec(&["VMX enabled"]);
        let bad = format!("{GOOD}bulkhead: error: CPU exception 13\n");
        assert!(judge(&s, &run(&bad, Outcome::Exited(Some(0))))
            .unwrap_err()
            .reason
            .contains("forbidden"));
        assert!(judge(&s, &run(GOOD, Outcome::TimedOut))
            .unwrap_err()
            .reason
            .contains("did not exit"));
        let f = judge(&spec(&["never"]), &run(GOOD, Outcome::TimedOut)).unwrap_err();
        assert!(f.reason.contains("did not finish"), "{}", f.reason);
        assert!(judge(&s, &run(GOOD, Outcome::Exited(Some(1)))).is_err());
        // Killed by a signal: accepted only after the core's clean shutdown.
        assert_eq!(judge(&s, &run(GOOD, Outcome::Exited(None))), Ok(()));
        let unclean = GOOD.replace("status=0", "status=3");
        assert!(judge(&s, &run(&unclean, Outcome::Exited(None))).is_err());
        let mut failing = spec(&["VMX enabled"]);
        failing.exit = Exit::Status(1);
        assert!(judge(&failing, &run(GOOD, Outcome::Exited(None))).is_err());
    }

    #[test]
    fn unordered_expectations_must_all_appear() {
        let mut s = spec(&["VMX enabled"]);
        s.anywhere = vec!["shutdown status=0".into(), "[first] hello".into()];
        assert_eq!(judge(&s, &run(GOOD, Outcome::Exited(Some(0)))), Ok(()));
        s.anywhere.push("[second] hi".into());
        let f = judge(&s, &run(GOOD, Outcome::Exited(Some(0)))).unwrap_err();
        assert!(f.reason.contains("[second] hi"), "{}", f.reason);
    }

    #[test]
    fn empty_console_fails() {
        let f = judge(&spec(&["VMX enabled"]), &run("", Outcome::Exited(Some(0)))).unwrap_err();
        assert!(f.reason.contains("not seen"));
    }

    #[test]
    fn a_missing_emulator_is_an_error_with_the_install_command() {
        let options = crate::emulator::Options {
            emulator: crate::emulator::Emulator::Bochs,
            kvm: false,
            timeout: Duration::from_secs(1),
            live: false,
            input: crate::emulator::Input::None,
            logs: None,
            stop_on: None,
        };
        let saved = std::env::var_os("PATH");
        // Only this test touches PATH in this process's test binary.
        std::env::set_var("PATH", "/nonexistent");
        let result = crate::emulator::run(std::path::Path::new("/none.iso"), &options);
        if let Some(p) = saved {
            std::env::set_var("PATH", p);
        }
        let e = result.unwrap_err().to_string();
        assert!(
            e.contains("bochs is not installed") && e.contains("apt-get install"),
            "{e}"
        );
    }
}
