//! The core's command line (from GRUB): which guests to run and their limits.
//!
//! Syntax: space-separated `key=value` words. Unknown keys and bad values are
//! reported, never fatal: the core keeps its defaults.

/// Guest programs the first guest image can run (passed to it in RDI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// CPUID signature check, a VMCALL message, then an unmapped access.
    First,
    /// Writes a line to COM1 through port I/O, then exits.
    PortIo,
    /// Spins forever; only the preemption timer gets the CPU back.
    Spin,
    /// Times 100,000 null hypercalls with RDTSC and reports the average.
    Bench,
}

impl Scenario {
    /// Parses a scenario name.
    pub fn parse(name: &str) -> Option<Scenario> {
        Some(match name {
            "first" => Scenario::First,
            "portio" => Scenario::PortIo,
            "spin" => Scenario::Spin,
            "bench" => Scenario::Bench,
            _ => return None,
        })
    }

    /// The value the guest receives in RDI.
    pub fn code(self) -> u64 {
        match self {
            Scenario::First => 0,
            Scenario::PortIo => 1,
            Scenario::Spin => 2,
            Scenario::Bench => 3,
        }
    }

    /// The name used on the command line and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::First => "first",
            Scenario::PortIo => "portio",
            Scenario::Spin => "spin",
            Scenario::Bench => "bench",
        }
    }
}

/// Most scenarios one boot runs in sequence.
pub const MAX_RUNS: usize = 8;

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Scenarios to run, in order, each in a fresh guest.
    pub runs: [Option<Scenario>; MAX_RUNS],
    /// Preemption-timer slices a guest may use before it is stopped.
    pub budget: u64,
    /// VMX-preemption timer value per slice (in timer ticks).
    pub slice: u32,
    /// `domain-budget=N`: preemption-timer slices each manifest domain may
    /// use before it is stopped (default: unbounded).
    pub domain_budget: Option<u64>,
    /// `selftest=fault`: after the boot report, the core reads an unmapped
    /// address on purpose, to show how a fault in root mode is reported.
    pub fault_selftest: bool,
    /// `quiet`: the boot report's informational lines (memory map,
    /// modules, VMX features, each domain built) are not printed; warnings
    /// and errors are, and so is everything once the domains run. At
    /// 115,200 baud the full report (about 3,000 characters) keeps the
    /// core waiting on COM1 for about a quarter of a second.
    pub quiet: bool,
}

impl Default for Options {
    fn default() -> Self {
        let mut runs = [None; MAX_RUNS];
        runs[0] = Some(Scenario::First);
        runs[1] = Some(Scenario::PortIo);
        Options {
            runs,
            budget: 16,
            slice: 0x4_0000,
            fault_selftest: false,
            domain_budget: None,
            quiet: false,
        }
    }
}

/// A problem in the command line, reported by the core at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem<'a> {
    /// A key the core does not know.
    UnknownKey(&'a str),
    /// A value that does not parse for its key.
    BadValue(&'a str, &'a str),
    /// More than [`MAX_RUNS`] scenarios.
    TooManyRuns,
}

/// Parses `line`, calling `report` for each problem.
pub fn parse<'a>(line: &'a str, mut report: impl FnMut(Problem<'a>)) -> Options {
    let mut options = Options::default();
    for word in line.split_ascii_whitespace() {
        let (key, value) = word.split_once('=').unwrap_or((word, ""));
        match key {
            "run" => {
                let mut runs = [None; MAX_RUNS];
                let mut n = 0;
                let mut ok = true;
                for name in value.split(',').filter(|s| !s.is_empty()) {
                    match Scenario::parse(name) {
                        Some(s) if n < MAX_RUNS => {
                            runs[n] = Some(s);
                            n += 1;
                        }
                        Some(_) => {
                            report(Problem::TooManyRuns);
                            break;
                        }
                        None => {
                            report(Problem::BadValue(key, name));
                            ok = false;
                        }
                    }
                }
                if ok || n > 0 {
                    options.runs = runs;
                }
            }
            "budget" => match value.parse::<u64>() {
                Ok(v) if v > 0 => options.budget = v,
                _ => report(Problem::BadValue(key, value)),
            },
            "slice" => match value.parse::<u32>() {
                Ok(v) if v > 0 => options.slice = v,
                _ => report(Problem::BadValue(key, value)),
            },
            "domain-budget" => match value.parse::<u64>() {
                Ok(v) if v > 0 => options.domain_budget = Some(v),
                _ => report(Problem::BadValue(key, value)),
            },
            "quiet" if word == "quiet" => options.quiet = true,
            "quiet" => report(Problem::BadValue(key, value)),
            "selftest" => match value {
                "fault" => options.fault_selftest = true,
                _ => report(Problem::BadValue(key, value)),
            },
            _ => report(Problem::UnknownKey(key)),
        }
    }
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(line: &str) -> (Options, Vec<String>) {
        let mut problems = Vec::new();
        let o = parse(line, |p| problems.push(format!("{p:?}")));
        (o, problems)
    }

    #[test]
    fn empty_line_gives_defaults() {
        let (o, p) = parse_all("");
        assert_eq!(o, Options::default());
        assert!(p.is_empty());
    }

    #[test]
    fn quiet_is_a_bare_word() {
        let (o, p) = parse_all("run= quiet");
        assert!(o.quiet && p.is_empty());
        let (o, p) = parse_all("quiet=1 quiet=");
        assert!(!o.quiet);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(!parse_all("run=").0.quiet);
    }

    #[test]
    fn runs_budget_and_slice_parse() {
        let (o, p) = parse_all("run=spin,bench budget=3 slice=4096");
        assert!(p.is_empty());
        assert_eq!(
            o.runs[..3],
            [Some(Scenario::Spin), Some(Scenario::Bench), None]
        );
        assert_eq!((o.budget, o.slice), (3, 4096));
        assert!(!o.fault_selftest);
        let (o, _) = parse_all("domain-budget=7");
        assert_eq!(o.domain_budget, Some(7));
        let (o, p) = parse_all("domain-budget=0");
        assert_eq!((o.domain_budget, p.len()), (None, 1));
        let (o, p) = parse_all("selftest=fault");
        assert!(o.fault_selftest && p.is_empty());
        let (_, p) = parse_all("selftest=other");
        assert_eq!(p.len(), 1);
        let (o, _) = parse_all("run=");
        assert!(o.runs.iter().all(Option::is_none), "run= means no guest");
    }

    #[test]
    fn problems_are_reported_and_defaults_kept() {
        let (o, p) = parse_all("run=nope budget=0 slice=x frob");
        assert_eq!(o, Options::default());
        assert_eq!(p.len(), 4, "{p:?}");
        let (o, p) = parse_all("run=first,first,first,first,first,first,first,first,first");
        assert_eq!(o.runs.iter().flatten().count(), MAX_RUNS);
        assert_eq!(p, ["TooManyRuns"]);
    }
}
