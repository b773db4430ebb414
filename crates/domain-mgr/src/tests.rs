//! Shell tests against a fake supervisor, and the end-to-end proptests.

use super::*;
use proptest::prelude::*;

/// A supervisor in memory: a manifest of startable names, a domain table,
/// a free pool.
struct Fake {
    manifest: &'static [&'static str],
    domains: Vec<DomainInfo>,
    free_kib: u64,
    lost_kib: u64,
    can_shut_down: bool,
    shut_down: bool,
    dump_error: Option<Error>,
}

fn info(id: DomainId, name: &str, state: DomainState, priority: u8, mem_kib: u64) -> DomainInfo {
    DomainInfo {
        id,
        name: Name::new_or_none(name),
        state,
        priority,
        mem_kib,
        exits: ExitCounts {
            hypercall: 100 * u64::from(id) + 10,
            io: 5,
            ept: 2,
            other: 1,
        },
    }
}

impl Fake {
    fn new() -> Fake {
        Fake {
            manifest: &["domain-mgr", "uart", "net", "first"],
            domains: vec![
                info(0, "domain-mgr", DomainState::Running, 3, 2048),
                info(1, "uart", DomainState::Blocked, 2, 1024),
                info(2, "first", DomainState::Stopped, 1, 4096),
            ],
            free_kib: 65536,
            lost_kib: 0,
            can_shut_down: true,
            shut_down: false,
            dump_error: None,
        }
    }

    fn find(&mut self, id: DomainId) -> Result<&mut DomainInfo, Error> {
        self.domains
            .iter_mut()
            .find(|d| d.id == id)
            .ok_or(Error::NoSuchDomain)
    }
}

impl Supervisor for Fake {
    fn list(&mut self, out: &mut dyn FnMut(DomainRow)) {
        for d in &self.domains {
            out(DomainRow {
                id: d.id,
                name: d.name,
                state: d.state,
                priority: d.priority,
                mem_kib: d.mem_kib,
                exits: d.exits.total(),
            });
        }
    }

    fn status(&mut self, id: DomainId) -> Result<DomainInfo, Error> {
        self.find(id).copied()
    }

    fn start(&mut self, name: &str) -> Result<DomainId, Error> {
        if !self.manifest.contains(&name) {
            return Err(Error::NoSuchName);
        }
        if let Some(d) = self.domains.iter().find(|d| d.name.as_str() == name) {
            return Err(Error::AlreadyRunning(d.id));
        }
        if self.free_kib < 1024 {
            return Err(Error::Hypercall(Status::OutOfResources));
        }
        let id = self.domains.iter().map(|d| d.id + 1).max().unwrap_or(0);
        self.free_kib -= 1024;
        self.domains
            .push(info(id, name, DomainState::Running, 1, 1024));
        Ok(id)
    }

    fn stop(&mut self, id: DomainId) -> Result<(), Error> {
        let d = self.find(id)?;
        if id == 0 {
            return Err(Error::Protected);
        }
        if d.state == DomainState::Stopped {
            return Err(Error::NotRunning);
        }
        d.state = DomainState::Stopped;
        Ok(())
    }

    fn destroy(&mut self, id: DomainId) -> Result<(), Error> {
        let kib = self.find(id)?.mem_kib;
        if id == 0 {
            return Err(Error::Protected);
        }
        self.domains.retain(|d| d.id != id);
        self.free_kib += kib;
        Ok(())
    }

    fn dump(&mut self, id: DomainId, out: &mut dyn FnMut(Register)) -> Result<(), Error> {
        self.find(id)?;
        let regs = [
            ("rip", 0x10_1234),
            ("rsp", 0x7ff0),
            ("rflags", 0x202),
            ("rax", 0),
            ("cr3", 0x1000),
        ];
        for (name, value) in regs {
            out(Register { name, value });
        }
        self.dump_error.map_or(Ok(()), Err)
    }

    fn dump_exits(&mut self, id: DomainId, out: &mut dyn FnMut(u16, u64)) -> Result<(), Error> {
        self.find(id)?;
        out(18, 1234);
        out(30, 7);
        out(77, 1);
        Ok(())
    }

    fn dump_log(&mut self, id: DomainId, out: &mut dyn FnMut(&str)) -> Result<(), Error> {
        self.find(id)?;
        out("started");
        out("count 2");
        Ok(())
    }

    fn mem(&mut self) -> MemInfo {
        let mut m = MemInfo::EMPTY;
        m.free_kib = self.free_kib;
        m.lost_kib = self.lost_kib;
        for (slot, d) in m.grants.iter_mut().zip(&self.domains) {
            *slot = Some(MemGrant {
                id: d.id,
                name: d.name,
                kib: d.mem_kib,
            });
        }
        m
    }

    fn shutdown(&mut self) -> Result<(), Error> {
        if !self.can_shut_down {
            return Err(Error::Unsupported);
        }
        self.shut_down = true;
        Ok(())
    }
}

/// Executes one line against `sup`, returning the output and the flow.
fn exec(sup: &mut Fake, line: &str) -> (String, Flow) {
    let mut out = String::new();
    let flow = Shell::execute(line, sup, &mut out);
    (out, flow)
}

fn out(sup: &mut Fake, line: &str) -> String {
    exec(sup, line).0
}

#[test]
fn list_prints_an_aligned_table() {
    let mut f = Fake::new();
    assert_eq!(
        out(&mut f, "list"),
        "   ID  NAME              STATE    PRIO     MEM KiB         EXITS\n\
        \x20   0  domain-mgr        running     3        2048            18\n\
        \x20   1  uart              blocked     2        1024           118\n\
        \x20   2  first             stopped     1        4096           218\n"
    );
}

#[test]
fn list_without_domains() {
    let mut f = Fake::new();
    f.domains.clear();
    assert_eq!(out(&mut f, "list"), "no domains\n");
}

#[test]
fn list_prints_unnamed_domains_as_dash() {
    let mut f = Fake::new();
    f.domains.truncate(1);
    f.domains[0].name = Name::NONE;
    assert_eq!(
        out(&mut f, " list ").lines().nth(1),
        Some("    0  -                 running     3        2048            18")
    );
}

#[test]
fn status_prints_one_domain() {
    let mut f = Fake::new();
    assert_eq!(
        out(&mut f, "status 1"),
        "domain 1 (uart)\n\
        \x20 state     blocked\n\
        \x20 priority  2\n\
        \x20 memory    1024 KiB\n\
        \x20 exits     118 (hypercall 110, io 5, ept 2, other 1)\n"
    );
    assert_eq!(out(&mut f, "status 9"), "error: status 9: no such domain\n");
}

#[test]
fn start_prints_the_new_id() {
    let mut f = Fake::new();
    assert_eq!(out(&mut f, "start net"), "started net as domain 3\n");
    assert_eq!(f.domains.len(), 4);
    assert_eq!(
        out(&mut f, "start net"),
        "error: start net: already running as domain 3\n"
    );
    assert_eq!(
        out(&mut f, "start disk"),
        "error: start disk: no such domain in the manifest\n"
    );
    f.free_kib = 0;
    f.domains.retain(|d| d.id != 3);
    assert_eq!(
        out(&mut f, "start net"),
        "error: start net: hypercall failed: out of resources\n"
    );
}

#[test]
fn stop_and_its_errors() {
    let mut f = Fake::new();
    assert_eq!(out(&mut f, "stop 1"), "stopped domain 1\n");
    assert_eq!(f.domains[1].state, DomainState::Stopped);
    assert_eq!(out(&mut f, "stop 1"), "error: stop 1: not running\n");
    assert_eq!(
        out(&mut f, "stop 0"),
        "error: stop 0: protected service domain\n"
    );
    assert_eq!(out(&mut f, "stop 42"), "error: stop 42: no such domain\n");
}

#[test]
fn destroy_and_its_errors() {
    let mut f = Fake::new();
    assert_eq!(out(&mut f, "destroy 2"), "destroyed domain 2\n");
    assert_eq!(f.domains.len(), 2);
    assert_eq!(f.free_kib, 65536 + 4096);
    assert_eq!(
        out(&mut f, "destroy 2"),
        "error: destroy 2: no such domain\n"
    );
    assert_eq!(
        out(&mut f, "destroy 0"),
        "error: destroy 0: protected service domain\n"
    );
}

#[test]
fn dump_prints_registers_three_a_line() {
    let mut f = Fake::new();
    assert_eq!(
        out(&mut f, "dump 1"),
        "domain 1 registers:\n\
        \x20  rip 0000000000101234     rsp 0000000000007ff0  rflags 0000000000000202\n\
        \x20  rax 0000000000000000     cr3 0000000000001000\n\
        exits by reason:\n\
        \x20  18 vmcall                       1234\n\
        \x20  30 port i/o                        7\n\
        \x20  77 other                           1\n\
        recent log lines:\n\
        \x20 started\n\
        \x20 count 2\n"
    );
    assert_eq!(out(&mut f, "dump 5"), "error: dump 5: no such domain\n");
}

#[test]
fn dump_failing_half_way_ends_the_line_then_the_error() {
    let mut f = Fake::new();
    f.dump_error = Some(Error::Hypercall(Status::Denied));
    let text = out(&mut f, "dump 1");
    assert!(
        text.ends_with("     cr3 0000000000001000\nerror: dump 1: hypercall failed: denied\n")
            && !text.contains("exits by reason"),
        "{text}"
    );
}

/// A supervisor whose domains have no registers to show.
#[test]
fn dump_with_no_registers() {
    struct Empty(Fake);
    impl Supervisor for Empty {
        fn list(&mut self, out: &mut dyn FnMut(DomainRow)) {
            self.0.list(out)
        }
        fn status(&mut self, id: DomainId) -> Result<DomainInfo, Error> {
            self.0.status(id)
        }
        fn start(&mut self, name: &str) -> Result<DomainId, Error> {
            self.0.start(name)
        }
        fn stop(&mut self, id: DomainId) -> Result<(), Error> {
            self.0.stop(id)
        }
        fn destroy(&mut self, id: DomainId) -> Result<(), Error> {
            self.0.destroy(id)
        }
        fn dump(&mut self, _: DomainId, _: &mut dyn FnMut(Register)) -> Result<(), Error> {
            Ok(())
        }
        fn mem(&mut self) -> MemInfo {
            self.0.mem()
        }
        fn shutdown(&mut self) -> Result<(), Error> {
            self.0.shutdown()
        }
    }
    let mut s = Empty(Fake::new());
    let mut text = String::new();
    Shell::execute("dump 1", &mut s, &mut text);
    assert_eq!(text, "domain 1: no registers\n");
}

#[test]
fn mem_prints_free_granted_and_each_grant() {
    let mut f = Fake::new();
    assert_eq!(
        out(&mut f, "mem"),
        "free          65536 KiB\n\
         granted        7168 KiB\n\
        \x20  ID  NAME                     KiB\n\
        \x20   0  domain-mgr              2048\n\
        \x20   1  uart                    1024\n\
        \x20   2  first                   4096\n"
    );
    f.domains.clear();
    assert_eq!(
        out(&mut f, "mem"),
        "free          65536 KiB\ngranted           0 KiB\n"
    );
}

#[test]
fn mem_shows_lost_memory_only_when_there_is_some() {
    let mut f = Fake::new();
    f.domains.clear();
    assert!(!out(&mut f, "mem").contains("lost"));
    f.lost_kib = 2048;
    assert_eq!(
        out(&mut f, "mem"),
        "free          65536 KiB\ngranted           0 KiB\n\
         lost           2048 KiB (returned to the broker in another shape than lent)\n"
    );
}

#[test]
fn mem_granted_saturates() {
    let mut m = MemInfo::EMPTY;
    m.grants[0] = Some(MemGrant {
        id: 0,
        name: Name::NONE,
        kib: u64::MAX,
    });
    m.grants[7] = m.grants[0];
    assert_eq!(m.granted_kib(), u64::MAX);
}

#[test]
fn help_lists_every_command() {
    let mut f = Fake::new();
    let text = out(&mut f, "help");
    assert_eq!(
        text,
        "commands:\n\
        \x20 list          list every domain: id, name, state, priority, memory, exits\n\
        \x20 status ID     show one domain's state, priority, memory and exit counts\n\
        \x20 start NAME    start the manifest domain NAME; prints its id\n\
        \x20 stop ID       stop domain ID (it keeps its memory)\n\
        \x20 destroy ID    destroy domain ID and free its memory\n\
        \x20 dump ID       print domain ID's vCPU registers\n\
        \x20 mem           show free memory and the memory granted to each domain\n\
        \x20 help          show this list\n\
        \x20 shutdown      stop every domain and power off\n"
    );
}

#[test]
fn shutdown_stops_the_shell() {
    let mut f = Fake::new();
    assert_eq!(
        exec(&mut f, "shutdown"),
        ("shutting down\n".into(), Flow::Shutdown)
    );
    assert!(f.shut_down);
}

#[test]
fn failed_shutdown_continues() {
    let mut f = Fake::new();
    f.can_shut_down = false;
    assert_eq!(
        exec(&mut f, "shutdown"),
        (
            "shutting down\nerror: shutdown: not supported\n".into(),
            Flow::Continue
        )
    );
}

#[test]
fn parse_errors_become_one_error_line() {
    let mut f = Fake::new();
    assert_eq!(
        exec(&mut f, "foo"),
        (
            "error: unknown command \"foo\"; type help\n".into(),
            Flow::Continue
        )
    );
    assert_eq!(
        out(&mut f, "status x"),
        "error: status: expected a domain id, got \"x\"\n"
    );
    assert_eq!(
        out(&mut f, "stop 1 2"),
        "error: stop: too many arguments; usage: stop ID\n"
    );
    // Nothing was stopped.
    assert_eq!(f.domains[1].state, DomainState::Blocked);
}

#[test]
fn blank_lines_print_nothing() {
    let mut f = Fake::new();
    assert_eq!(exec(&mut f, ""), (String::new(), Flow::Continue));
    assert_eq!(exec(&mut f, " \t "), (String::new(), Flow::Continue));
}

#[test]
fn every_error_reads_well() {
    let cases = [
        (Error::NoSuchDomain, "no such domain"),
        (Error::NoSuchName, "no such domain in the manifest"),
        (Error::AlreadyRunning(4), "already running as domain 4"),
        (Error::NotRunning, "not running"),
        (Error::Protected, "protected service domain"),
        (Error::Unsupported, "not supported"),
        (
            Error::GuestTooLarge {
                kib: 524288,
                max_kib: 262144,
            },
            "the guest needs 524288 KiB; a guest may have at most 262144 KiB",
        ),
        (
            Error::TooManyGuests(4),
            "4 guests exist, the most there may be; destroy one first",
        ),
        (
            Error::Hypercall(Status::StaleCapability),
            "hypercall failed: stale capability",
        ),
    ];
    for (e, text) in cases {
        assert_eq!(e.to_string(), text);
    }
}

#[test]
fn names() {
    assert_eq!(Name::new("net").map(|n| n.to_string()), Some("net".into()));
    assert_eq!(Name::new("Net"), None);
    assert_eq!(Name::new("abcdefghijklmnopq"), None);
    assert_eq!(Name::new_or_none("a b"), Name::NONE);
    assert_eq!(Name::NONE.as_str(), "");
    assert_eq!(format!("[{:<4}]", Name::NONE), "[-   ]");
    assert_eq!(format!("{:?}", Name::new_or_none("uart")), "Name(\"uart\")");
}

/// Feeds bytes to a shell, returning the output and the last flow.
fn type_bytes(shell: &mut Shell<16>, sup: &mut Fake, input: &[u8]) -> (String, Flow) {
    let mut text = String::new();
    let mut flow = Flow::Continue;
    for &b in input {
        flow = shell.feed(b, sup, &mut text);
    }
    (text, flow)
}

#[test]
fn feed_echoes_executes_and_prompts() {
    let mut f = Fake::new();
    let mut shell = Shell::<16>::new();
    let mut text = String::new();
    shell.prompt(&mut text);
    assert_eq!(text, "bulkhead> ");
    let (text, flow) = type_bytes(&mut shell, &mut f, b"stoq\x7fp 1\r\n");
    assert_eq!(text, "stoq\x08 \x08p 1\nstopped domain 1\nbulkhead> ");
    assert_eq!(flow, Flow::Continue);
    let (text, _) = type_bytes(&mut shell, &mut f, b"\r");
    assert_eq!(text, "\nbulkhead> ");
}

#[test]
fn feed_discards_an_overlong_line() {
    let mut f = Fake::new();
    let mut shell = Shell::<16>::new();
    let (text, _) = type_bytes(&mut shell, &mut f, b"destroy 2       9\r");
    assert_eq!(
        text,
        "destroy 2       \x07\n\
         error: line too long (more than 16 bytes); discarded\n\
         bulkhead> "
    );
    assert_eq!(f.domains.len(), 3);
}

#[test]
fn feed_shutdown_prints_no_prompt() {
    let mut f = Fake::new();
    let mut shell = Shell::<16>::new();
    let (text, flow) = type_bytes(&mut shell, &mut f, b"shutdown\r");
    assert_eq!(text, "shutdown\nshutting down\n");
    assert_eq!(flow, Flow::Shutdown);
}

#[test]
fn write_errors_are_ignored() {
    struct Broken;
    impl core::fmt::Write for Broken {
        fn write_str(&mut self, _: &str) -> core::fmt::Result {
            Err(core::fmt::Error)
        }
    }
    let mut f = Fake::new();
    for line in ["list", "status 1", "dump 1", "mem", "help", "stop 1", "x"] {
        assert_eq!(Shell::execute(line, &mut f, &mut Broken), Flow::Continue);
    }
    // The command ran even though nothing could be printed.
    assert_eq!(f.domains[1].state, DomainState::Stopped);
    let mut shell = Shell::<8>::new();
    for &b in b"stop 2\r" {
        shell.feed(b, &mut f, &mut Broken);
    }
    assert_eq!(f.domains[2].state, DomainState::Stopped);
}

/// Lines built from the shell's own vocabulary, so the proptests reach
/// commands and their argument errors, not only "unknown command".
fn wordy_line() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        Just("list".to_string()),
        Just("status".to_string()),
        Just("start".to_string()),
        Just("stop".to_string()),
        Just("destroy".to_string()),
        Just("dump".to_string()),
        Just("mem".to_string()),
        Just("help".to_string()),
        Just("shutdown".to_string()),
        "[0-9]{1,6}",
        "[a-z0-9_-]{1,18}",
        "\\PC{0,5}",
    ];
    (proptest::collection::vec(word, 0..4), "[ \t]{1,3}").prop_map(|(w, sep)| w.join(&sep))
}

proptest! {
    #[test]
    fn any_bytes_through_editor_parser_and_shell(
        input in proptest::collection::vec(any::<u8>(), 0..200)
    ) {
        let mut f = Fake::new();
        let mut shell = Shell::<16>::new();
        let _ = type_bytes(&mut shell, &mut f, &input);
    }

    #[test]
    fn every_non_blank_line_prints_something(line in any::<String>()) {
        let mut f = Fake::new();
        let (text, _) = exec(&mut f, &line);
        let blank = line.chars().all(|c| c.is_ascii_whitespace());
        prop_assert_eq!(text.is_empty(), blank, "{:?} printed {:?}", line, text);
        prop_assert!(text.ends_with('\n') || text.is_empty());
    }

    #[test]
    fn vocabulary_lines_print_something_and_errors_are_one_line(line in wordy_line()) {
        let mut f = Fake::new();
        let (text, _) = exec(&mut f, &line);
        let blank = line.split_ascii_whitespace().next().is_none();
        prop_assert_eq!(text.is_empty(), blank);
        for l in text.lines().filter(|l| l.starts_with("error: ")) {
            prop_assert!(l.bytes().all(|b| (0x20..0x7f).contains(&b)), "{:?}", l);
        }
        if text.starts_with("error: ") {
            prop_assert_eq!(text.matches('\n').count(), 1);
        }
    }

    #[test]
    fn typed_lines_print_something(line in wordy_line()) {
        let mut f = Fake::new();
        let mut shell = Shell::<LINE_MAX>::new();
        let mut text = String::new();
        let mut flow = Flow::Continue;
        for b in line.bytes().chain([b'\r']) {
            flow = shell.feed(b, &mut f, &mut text);
        }
        // The echo, a newline, some output, then the prompt (unless shut down).
        prop_assert!(text.contains('\n'));
        if flow == Flow::Continue {
            prop_assert!(text.ends_with(PROMPT));
            let typed = line.bytes().any(|b| (0x21..0x7f).contains(&b) || b >= 0x80);
            let after_echo = &text[text.find('\n').unwrap() + 1..];
            prop_assert_eq!(after_echo.len() > PROMPT.len(), typed, "{:?}", text);
        }
    }
}
