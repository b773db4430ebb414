//! The end-to-end tests: each boots its own image under Bochs (or QEMU) and
//! judges the console with [`crate::harness`].

use std::time::{Duration, Instant};

use crate::emulator::{self, Emulator};
use crate::harness::{self, default_forbidden, Exit, Spec};
use crate::{image, step, Result};

fn s(items: &[&str]) -> Vec<String> {
    items.iter().map(|x| x.to_string()).collect()
}

fn forbid(extra: &[&str]) -> Vec<String> {
    let mut f = default_forbidden();
    f.extend(s(extra));
    f
}

/// The Bochs tests.
pub fn specs() -> Vec<Spec> {
    let timeout = Duration::from_secs(120);
    vec![
        Spec {
            name: "boot",
            cmdline: "run=",
            expect: s(&[
                "bulkhead: Bulkhead core",
                "bulkhead: command line: \"run=\"",
                "bulkhead: memory map (",
                "Available",
                "bulkhead: module 0: ",
                "\"first\"",
                "bulkhead: 1 boot module(s)",
                "bulkhead: frame allocator: ",
                // Bochs reports VMX revision 0x2b in IA32_VMX_BASIC.
                "bulkhead: VMX enabled: revision id 0x2b (IA32_VMX_BASIC 0x",
                "bulkhead: all guests have stopped; the core is still running",
                "bulkhead: shutdown status=0",
            ]),
            anywhere: Vec::new(),
            system: None,
            input: Vec::new(),
            forbid: forbid(&["guest first"]),
            returns: Vec::new(),
            sequence: None,
            exit: Exit::Success,
            timeout,
        },
        Spec {
            name: "first-guest",
            cmdline: "run=first",
            expect: s(&[
                "bulkhead: VMX enabled",
                "bulkhead: guest first: starting scenario first",
                "[first] CPUID 0x40000000: hypervisor signature \"BulkheadCore\"",
                "[first] hello from the first guest through the LOG_WRITE hypercall",
                "[first] unknown hypercall answered with status 1 (unknown hypercall)",
                "[first] writing to unmapped guest-physical address 0x800000",
                "bulkhead: guest first: stopped: EPT violation at guest-physical address 0x800000 (write access",
                "bulkhead: all guests have stopped; the core is still running",
                "bulkhead: shutdown status=0",
            ]),
            anywhere: Vec::new(),
            system: None,
            input: Vec::new(),
            forbid: forbid(&["did not fault", "unexpected hypervisor signature"]),
            returns: Vec::new(),
            sequence: None,
            exit: Exit::Success,
            timeout,
        },
        Spec {
            name: "port-io",
            cmdline: "run=portio",
            expect: s(&[
                "bulkhead: guest first: starting scenario portio",
                "[first:com1] hello from the guest over port 0x3f8",
                "bulkhead: guest first: stopped: exited with code 0",
                "bulkhead: all guests have stopped; the core is still running",
                "bulkhead: shutdown status=0",
            ]),
            anywhere: Vec::new(),
            system: None,
            input: Vec::new(),
            forbid: default_forbidden(),
            returns: Vec::new(),
            sequence: None,
            exit: Exit::Success,
            timeout,
        },
        Spec {
            name: "preemption-timer",
            cmdline: "run=spin budget=8 slice=65536",
            expect: s(&[
                "bulkhead: guest first: starting scenario spin",
                "[first] spinning with no exits",
                "bulkhead: guest first: stopped: preempted 8 times by the VMX-preemption timer, budget exhausted",
                "bulkhead: all guests have stopped; the core is still running",
                "bulkhead: shutdown status=0",
            ]),
            anywhere: Vec::new(),
            system: None,
            input: Vec::new(),
            forbid: default_forbidden(),
            returns: Vec::new(),
            sequence: None,
            exit: Exit::Success,
            timeout,
        },
        Spec {
            name: "core-fault",
            cmdline: "run= selftest=fault",
            expect: s(&[
                "bulkhead: selftest: reading unmapped address 0x4000000000 in root mode",
                "bulkhead: error: CPU exception 14 (page fault) in the core: error code 0x0, RIP 0x",
                "CR2 0x4000000000",
                "bulkhead: shutdown status=3",
            ]),
            anywhere: Vec::new(),
            system: None,
            input: Vec::new(),
            forbid: s(&["VMX enabled", "panic"]),
            // Bochs exits 1 when the core writes `Shutdown` to port 0x8900.
            returns: Vec::new(),
            sequence: None,
            exit: Exit::Status(1),
            timeout,
        },
        Spec {
            name: "channel",
            cmdline: "run=",
            expect: s(&[
                "bulkhead: boot manifest: 2 domain(s), 1 channel(s), 0 guest(s)",
                "bulkhead: domain ping: 2048 KiB at ",
                "bulkhead: domain pong: 2048 KiB at ",
                "bulkhead: channel ping-pong: 1 page(s) between ping (at 0x10000000) and pong (at 0x20000000)",
                "bulkhead: 2 domain(s) built; core pool: ",
                "[ping] channel ping-pong in slot 1 at 0x10000000",
                "[ping] sent \"ping 1\"",
                "[pong] received \"ping 1\"",
                "[ping] received \"pong 1\"",
                "[ping] sent \"ping 2\"",
                "[pong] received \"ping 2\"",
                "[ping] received \"pong 2\"",
                "[ping] sent \"ping 3\"",
                "[pong] received \"ping 3\"",
                "[ping] received \"pong 3\"",
                "[ping] done after 3 round trips",
                "bulkhead: summary: 2 domain(s); 0 hypercall(s) refused; 0 domain(s) stopped for a violation",
                "bulkhead: shutdown status=0",
            ]),
            anywhere: s(&[
                "[pong] done after 3 answers",
                "bulkhead: domain ping: stopped: exited with code 0",
                "bulkhead: domain pong: stopped: exited with code 0",
            ]),
            system: Some("systems/pingpong.toml"),
            input: Vec::new(),
            forbid: forbid(&["failed", "refused:"]),
            returns: Vec::new(),
            sequence: None,
            exit: Exit::Success,
            timeout,
        },
        Spec {
            name: "isolation",
            cmdline: "run=",
            expect: s(&[
                "bulkhead: boot manifest: 7 domain(s), 0 channel(s), 0 guest(s)",
                "[victim] secret stored at guest-physical 0x",
                "bulkhead: summary: 7 domain(s); 11 hypercall(s) refused; 5 domain(s) stopped for a violation",
                "bulkhead: shutdown status=0",
            ]),
            anywhere: s(&[
                "[hostile] attempt forged slot 9999: refused with InvalidSlot",
                "[hostile] attempt forged slot 2^63: refused with InvalidSlot",
                "[hostile] attempt empty slot 20: refused with EmptySlot",
                "[hostile] attempt map memory through an empty slot: refused with EmptySlot",
                "[hostile] attempt use my memory capability as a domain: refused with WrongType",
                "[hostile] attempt map a read-only copy writable: refused with InsufficientRights",
                "[hostile] attempt derive more rights than held: refused with InsufficientRights",
                "[hostile] attempt read another domain's memory by guessing its guest-physical address: refused with InvalidAddress",
                "[hostile] attempt read memory by guessing a host-physical address (16 MiB): refused with InvalidAddress",
                "[hostile] destroyed the decoy domain I control",
                "bulkhead: domain decoy: destroyed by hostile",
                "[hostile] attempt use the capability of the destroyed decoy: refused with StaleCapability",
                "[hostile] attempt unknown hypercall 999: refused with UnknownCall",
                "bulkhead: domain hostile: stopped: EPT violation at guest-physical address 0x30000000 (read access",
                "bulkhead: domain hostile-port: stopped: read from port 0x60 is not bound to this guest",
                "bulkhead: domain hostile-vmxon: stopped: executed the VMX instruction VMXON",
                "bulkhead: domain hostile-vmread: stopped: executed the VMX instruction VMREAD",
                "bulkhead: domain hostile-osxsave: stopped: tried to change a bit of CR4 that the core owns",
                "[victim] still running after the attacks; secret intact",
                "bulkhead: domain victim: stopped: exited with code 0",
            ]),
            system: Some("systems/isolation.toml"),
            input: Vec::new(),
            forbid: forbid(&["UNEXPECTED", "secret was changed"]),
            returns: Vec::new(),
            sequence: None,
            exit: Exit::Success,
            timeout,
        },
        Spec {
            name: "scheduling",
            cmdline: "run= domain-budget=120",
            expect: s(&[
                "bulkhead: boot manifest: 2 domain(s), 0 channel(s), 0 guest(s)",
                "[spinner] spinning",
                "[ticker] tick 1 late by ",
                "[ticker] tick 5 late by ",
                "[ticker] tick 10 late by ",
                "[ticker] rhythm kept: 10 ticks",
                "bulkhead: domain ticker: stopped: exited with code 0",
                "bulkhead: domain spinner: stopped: preempted 120 times by the VMX-preemption timer, budget exhausted",
                "bulkhead: summary: 2 domain(s); 0 hypercall(s) refused; 0 domain(s) stopped for a violation",
                "bulkhead: shutdown status=0",
            ]),
            anywhere: Vec::new(),
            system: Some("systems/scheduling.toml"),
            input: Vec::new(),
            forbid: forbid(&["rhythm broken"]),
            returns: Vec::new(),
            sequence: None,
            exit: Exit::Success,
            timeout,
        },
        Spec {
            // No UART service: the core prints the flooder's COM1 lines
            // itself, in time no domain's slice is charged for; the port
            // share holds that to a quarter of the CPU, so the worker at
            // the same priority still has most of it.
            name: "port-flood",
            cmdline: "run=",
            expect: s(&[
                "bulkhead: boot manifest: 2 domain(s), 0 channel(s), 0 guest(s)",
                "bulkhead: summary: 2 domain(s); 0 hypercall(s) refused; 0 domain(s) stopped for a violation",
                "bulkhead: shutdown status=0",
            ]),
            anywhere: s(&[
                "[flooder:com1] flooder line 1",
                "bulkhead: domain flooder: waits before its next console line",
                "[worker] worker: had ",
                "bulkhead: domain worker: stopped: exited with code 0",
                "[flooder:com1] flooder line 600",
                "[flooder] flooder: done: 600 lines",
                "bulkhead: domain flooder: stopped: exited with code 0",
            ]),
            system: Some("systems/flood.toml"),
            input: Vec::new(),
            forbid: forbid(&["starved"]),
            returns: Vec::new(),
            sequence: Some("[flooder:com1] flooder line "),
            exit: Exit::Success,
            timeout,
        },
        Spec {
            name: "domain-fault",
            cmdline: "run=",
            expect: s(&[
                "bulkhead: boot manifest: 2 domain(s), 0 channel(s), 0 guest(s)",
                "[crasher] about to triple-fault",
                "bulkhead: domain crasher: stopped: triple fault at RIP 0x",
                "[survivor] survivor still running (1)",
                "[survivor] survivor still running (3)",
                "bulkhead: domain survivor: stopped: exited with code 0",
                "bulkhead: summary: 2 domain(s); 0 hypercall(s) refused; 1 domain(s) stopped for a violation",
                "bulkhead: shutdown status=0",
            ]),
            anywhere: Vec::new(),
            system: Some("systems/fault.toml"),
            input: Vec::new(),
            forbid: default_forbidden(),
            returns: Vec::new(),
            sequence: None,
            exit: Exit::Success,
            timeout,
        },
        Spec {
            name: "create-domain",
            cmdline: "run=",
            expect: s(&[
                "bulkhead: boot manifest: 1 domain(s), 0 channel(s), 0 guest(s)",
                "[parent] wrote a ",
                "[parent] created and started a domain (slot ",
                "bulkhead: domain domain-1: started with 2048 KiB at ",
                "[domain-1] hello from a domain created by a hypercall",
                "[parent] received \"hello from a domain created by a hypercall\"",
                "bulkhead: domain domain-1: stopped: exited with code 0",
                "bulkhead: domain domain-1: destroyed by parent",
                "[parent] destroyed the child; its capability is stale and its memory went back",
                "bulkhead: domain parent: stopped: exited with code 0",
                "bulkhead: summary: 1 domain(s); 1 hypercall(s) refused; 0 domain(s) stopped for a violation",
                "bulkhead: shutdown status=0",
            ]),
            anywhere: Vec::new(),
            system: Some("systems/create.toml"),
            input: Vec::new(),
            forbid: forbid(&["failed:", "UNEXPECTED"]),
            returns: Vec::new(),
            sequence: None,
            exit: Exit::Success,
            timeout,
        },
        Spec {
            name: "uart-service",
            cmdline: "run=",
            expect: s(&[
                "bulkhead: boot manifest: 3 domain(s), 0 channel(s), 0 guest(s)",
                "bulkhead: domain uart serves the virtual UARTs (ports 0x3f8-0x3ff) over the ioreq channel at 0x3f000000",
                "[uart] uart: serving virtual UARTs over the ioreq channel",
                "bulkhead: only the UART service is left, waiting for work: stopping",
                "bulkhead: summary: 3 domain(s); 0 hypercall(s) refused; 0 domain(s) stopped for a violation",
                "bulkhead: shutdown status=0",
            ]),
            anywhere: s(&[
                "[guest-a/uart] hello 1 over the virtual 16550 from guest-a",
                "[guest-a/uart] hello 2 over the virtual 16550 from guest-a",
                "[guest-a/uart] hello 3 over the virtual 16550 from guest-a",
                "[guest-b/uart] hello 1 over the virtual 16550 from guest-b",
                "[guest-b/uart] hello 3 over the virtual 16550 from guest-b",
                "[guest-a] scratch register round trip ok; 3 lines written",
                "[guest-b] scratch register round trip ok; 3 lines written",
            ]),
            system: Some("systems/uart.toml"),
            input: Vec::new(),
            forbid: forbid(&["refused:", "[guest-a:com1]", "[guest-b:com1]", "unanswered"]),
            returns: Vec::new(),
            sequence: None,
            exit: Exit::Success,
            timeout,
        },
        Spec {
            name: "shell",
            cmdline: "run=",
            expect: s(&[
                "bulkhead: boot manifest: 3 domain(s), 0 channel(s), 0 guest(s)",
                "[manager] ready: 2 domain(s) under control, 0 guest image(s), memory broker absent; shell on the console",
                "bulkhead> ",
                "list",
                "shutdown",
                "uart",
                "demo",
                "error: unknown command",
                "stopped",
                "shutting down",
                "bulkhead: shutdown requested by a domain: stopping every domain",
                "bulkhead: shutdown status=0",
            ]),
            anywhere: Vec::new(),
            system: Some("systems/shell.toml"),
            input: vec![
                ("bulkhead> ".into(), "help\r".into()),
                ("bulkhead> ".into(), "list\r".into()),
                ("bulkhead> ".into(), "bogus\r".into()),
                ("bulkhead> ".into(), "stop 2\r".into()),
                ("bulkhead> ".into(), "status 2\r".into()),
                ("bulkhead> ".into(), "shutdown\r".into()),
            ],
            forbid: forbid(&["refused:"]),
            returns: Vec::new(),
            sequence: None,
            exit: Exit::Success,
            timeout: Duration::from_secs(45),
        },
        Spec {
            name: "services",
            cmdline: "run=",
            expect: s(&[
                "bulkhead: boot manifest: 3 domain(s), 1 channel(s), 4 guest(s)",
                "bulkhead: guest demo: image \"counter\"",
                "bulkhead: domain mem-broker holds the free memory: ",
                "[manager] ready: 2 domain(s) under control, 4 guest image(s), memory broker connected",
                // (a) the three services are listed.
                "list",
                "    0  manager",
                "    1  uart",
                "    2  mem-broker",
                // (b) a guest launched from the shell, with true figures.
                "mem",
                "free ",
                "start demo",
                "started demo as domain 3",
                "[demo/uart] demo up with 4096 KiB",
                "[demo/uart] demo count 2",
                "status 3",
                "domain 3 (demo)",
                "memory    4096 KiB",
                "exits ",
                "dump 3",
                "domain 3 registers:",
                "rip 00000000001",
                "exits by reason:",
                "vmcall",
                "port i/o",
                "dump 2",
                "domain 2 registers:",
                "recent log lines:",
                "  mem-broker: ready: ",
                // The services the system runs on stay up, and so does
                // the shell.
                "stop 1",
                "error: stop 1: protected service domain",
                "destroy 2",
                "error: destroy 2: protected service domain",
                "dump 0",
                "error: dump 0: not supported",
                "mem",
                "free ",
                "demo",
                "stop 3",
                "stopped domain 3",
                "stop 3",
                "error: stop 3: not running",
                "destroy 3",
                "destroyed domain 3",
                "mem",
                "free ",
                "start nosuch",
                "error: start nosuch: no such domain in the manifest",
                "start serial",
                "started serial as domain 3",
                "[serial/uart] scratch register held 0x00 at start",
                "[serial/uart] hello 3 over the virtual 16550 from serial",
                // The next domain in the slot gets a 16550 fresh from
                // reset, not the one `serial` left (scratch byte 0x5a).
                "destroy 3",
                "destroyed domain 3",
                "start serial",
                "started serial as domain 3",
                "[serial/uart] scratch register held 0x00 at start",
                "[serial/uart] hello 3 over the virtual 16550 from serial",
                "shutdown",
                "bulkhead: shutdown status=0",
            ]),
            anywhere: s(&["[mem-broker] ready: "]),
            system: Some("systems/default.toml"),
            input: vec![
                ("bulkhead> ".into(), "list\r".into()),
                ("mem-broker".into(), "mem\r".into()),
                ("granted".into(), "start demo\r".into()),
                ("demo count 2".into(), "status 3\r".into()),
                ("exits ".into(), "dump 3\r".into()),
                ("port i/o".into(), "dump 2\r".into()),
                ("recent log lines".into(), "stop 1\r".into()),
                ("protected service domain".into(), "destroy 2\r".into()),
                ("protected service domain".into(), "dump 0\r".into()),
                ("not supported".into(), "mem\r".into()),
                ("granted".into(), "stop 3\r".into()),
                ("stopped domain 3".into(), "stop 3\r".into()),
                ("not running".into(), "destroy 3\r".into()),
                ("destroyed domain 3".into(), "mem\r".into()),
                ("granted".into(), "start nosuch\r".into()),
                ("no such domain".into(), "start serial\r".into()),
                ("hello 3 over".into(), "destroy 3\r".into()),
                ("destroyed domain 3".into(), "start serial\r".into()),
                ("hello 3 over".into(), "shutdown\r".into()),
            ],
            forbid: forbid(&["refused:", "could not give", "held 0x5a at start"]),
            returns: s(&["free     "]),
            sequence: None,
            exit: Exit::Success,
            timeout: Duration::from_secs(90),
        },
        Spec {
            // (c) two guests launched at once keep separate consoles, and
            // input switched to one reaches only it, while a third prints.
            name: "guest-consoles",
            cmdline: "run=",
            expect: s(&[
                "started demo as domain 3",
                "started echo-a as domain 4",
                "started echo-b as domain 5",
                "[echo-b/uart] echo from echo-b: hello b",
                "[echo-a/uart] echo from echo-a: hello a",
                // `exit` typed into echo-a's console ends it: the
                // keyboard goes back to the shell by itself.
                "[echo-a/uart] bye",
                "[uart] console 4: its domain stopped; input goes to the shell",
                "list",
                "    3  demo              ",
                "    4  echo-a            stopped",
                "    5  echo-b            ",
                "shutdown",
                "bulkhead: shutdown status=0",
            ]),
            anywhere: s(&[
                "[echo-a/uart] ready for input",
                "[echo-b/uart] ready for input",
                "bulkhead: domain echo-a: stopped: exited with code 0",
            ]),
            system: Some("systems/default.toml"),
            input: vec![
                ("bulkhead> ".into(), "start demo\r".into()),
                ("demo count 1".into(), "start echo-a\r".into()),
                ("[echo-a/uart] ready for input".into(), "start echo-b\r".into()),
                ("[echo-b/uart] ready for input".into(), "\u{1}5hello b\r".into()),
                ("echo from echo-b: hello b".into(), "\u{1}4hello a\r".into()),
                ("echo from echo-a: hello a".into(), "exit\r".into()),
                ("input goes to the shell".into(), "list\r".into()),
                ("echo-b   ".into(), "shutdown\r".into()),
            ],
            forbid: forbid(&["echo-a: hello b", "echo-b: hello a", "refused:", "error:"]),
            returns: Vec::new(),
            sequence: None,
            exit: Exit::Success,
            timeout: Duration::from_secs(90),
        },
        // (d) the UART service faults (Ctrl-A !) and the domain manager
        // restarts it while a guest prints a numbered sequence: no number
        // is missing.
        uart_fault_spec(
            "uart-restart",
            '!',
            &[
                "[uart] warning: fault requested from the console (Ctrl-A !)",
                "bulkhead: domain uart: stopped: ",
                "bulkhead: domain uart: restarted by manager (restart 1)",
                "[uart] uart: serving virtual UARTs",
                "[manager] warning: uart (domain 1) stopped by a fault; restarted it",
            ],
            "restarted it",
            Some("[demo"),
            &["matched no waiting read"],
        ),
        // The UART service leaves its request ring corrupt and serves on
        // (Ctrl-A #): the core stops it as faulted at its next IOREQ
        // call, starts the ring over when the manager restarts it, and
        // the guest's output resumes (requests in the ring are lost: no
        // sequence check).
        uart_fault_spec(
            "uart-ring-reset",
            '#',
            &[
                "[uart] warning: request ring corrupted from the console (Ctrl-A #); serving on",
                "bulkhead: warning: Uart service: its request ring is broken (ring corrupt: ConsumerIndex",
                "bulkhead: domain uart: stopped: broke its request ring (counted as a fault)",
                "bulkhead: warning: Uart service: its request ring was corrupt; started it over for the restart",
                "bulkhead: domain uart: restarted by manager (restart 1)",
                "[uart] uart: serving virtual UARTs",
            ],
            "started it over",
            None,
            &[],
        ),
        Spec {
            // Keys typed for a guest just before the UART service faults
            // (in the same burst as Ctrl-A !, so still queued in the
            // service or waiting in the guest's 16550) reach the guest
            // after the restart: none lost, none twice. And input stays
            // with the guest: what is typed after the restart, without a
            // Ctrl-A, goes to it, not to the shell.
            name: "uart-restart-keys",
            cmdline: "run=",
            expect: s(&[
                "started echo-a as domain 3",
                "[uart] warning: fault requested from the console (Ctrl-A !)",
                "bulkhead: domain uart: restarted by manager (restart 1)",
                "[echo-a/uart] echo from echo-a: hello a",
                "[echo-a/uart] bye",
                "shutdown",
                "bulkhead: shutdown status=0",
            ]),
            anywhere: s(&[
                "[echo-a/uart] ready for input",
                "[uart] input stays with console 3 across the restart",
            ]),
            system: Some("systems/default.toml"),
            input: vec![
                ("bulkhead> ".into(), "start echo-a\r".into()),
                (
                    "[echo-a/uart] ready for input".into(),
                    "\u{1}3hel\u{1}!".into(),
                ),
                ("restarted it".into(), "lo a\r".into()),
                ("echo from echo-a: ".into(), "exit\r".into()),
                ("input goes to the shell".into(), "shutdown\r".into()),
            ],
            forbid: forbid(&[
                "echo from echo-a: lo a",
                "echo from echo-a: helhel",
                "unknown command",
                "refused:",
                "giving up",
            ]),
            returns: Vec::new(),
            sequence: None,
            exit: Exit::Success,
            timeout: Duration::from_secs(120),
        },
        Spec {
            name: "minimal-system",
            cmdline: "run=",
            expect: s(&[
                "bulkhead: boot manifest: 2 domain(s), 0 channel(s), 0 guest(s)",
                "[manager] ready: 1 domain(s) under control, 0 guest image(s), memory broker absent",
                "list",
                "uart",
                "start demo",
                "error: start demo: no such domain in the manifest",
                "shutdown",
                "bulkhead: summary: 2 domain(s)",
                "bulkhead: shutdown status=0",
            ]),
            anywhere: Vec::new(),
            system: Some("systems/minimal.toml"),
            input: vec![
                ("bulkhead> ".into(), "list\r".into()),
                ("uart".into(), "start demo\r".into()),
                ("no such domain".into(), "shutdown\r".into()),
            ],
            forbid: forbid(&["refused:", "mem-broker", "[demo"]),
            returns: Vec::new(),
            sequence: None,
            exit: Exit::Success,
            timeout: Duration::from_secs(45),
        },
        Spec {
            name: "consoles",
            cmdline: "run=",
            expect: s(&[
                "bulkhead: boot manifest: 4 domain(s), 0 channel(s), 0 guest(s)",
                "[echo-b/uart] echo from echo-b: hello b",
                "[echo-a/uart] echo from echo-a: hello a",
                "stopping every domain",
                "bulkhead: shutdown status=0",
            ]),
            anywhere: s(&[
                "[echo-a/uart] ready for input",
                "[echo-b/uart] ready for input",
                // No domain 7: the keyboard stays with echo-a.
                "[uart] warning: Ctrl-A 7: no domain has console 7; input stays with console 2",
            ]),
            system: Some("systems/consoles.toml"),
            input: vec![
                // A domain has its console once it has used its UART.
                ("[echo-b/uart] ready for input".into(), "\u{1}3hello b\r".into()),
                ("echo from echo-b: hello b".into(), "\u{1}2hello a\r".into()),
                (
                    "echo from echo-a: hello a".into(),
                    "\u{1}7\u{1}0shutdown\r".into(),
                ),
            ],
            forbid: forbid(&["echo-a: hello b", "echo-b: hello a", "refused:"]),
            returns: Vec::new(),
            sequence: None,
            exit: Exit::Success,
            timeout: Duration::from_secs(90),
        },
        Spec {
            name: "hostile-ring",
            cmdline: "run=",
            expect: s(&[
                "bulkhead: boot manifest: 2 domain(s), 1 channel(s), 0 guest(s)",
                "[scribbler] peer survived: answered 42 after 100 rounds of garbage",
                "bulkhead: summary: 2 domain(s); 0 hypercall(s) refused; 0 domain(s) stopped for a violation",
                "bulkhead: shutdown status=0",
            ]),
            anywhere: s(&[
                "[ringsvc] peer gone: answered ",
                "bulkhead: domain ringsvc: stopped: exited with code 0",
            ]),
            system: Some("systems/hostile-ring.toml"),
            input: Vec::new(),
            forbid: default_forbidden(),
            returns: Vec::new(),
            sequence: None,
            exit: Exit::Success,
            timeout,
        },
        Spec {
            name: "chaos",
            cmdline: "run=",
            expect: s(&[
                "bulkhead: boot manifest: 5 domain(s), 0 channel(s), 0 guest(s)",
                "[platform] platform: serving PC guests'",
                "bulkhead: summary: 5 domain(s); ",
                "bulkhead: shutdown status=0",
            ]),
            anywhere: s(&[
                "[chaos] chaos: done: 100000 calls, 200 domains run on random bytes: every call answered with a status; my memory is intact",
                "[chaos-2] chaos: done: 100000 calls, 200 domains run on random bytes: every call answered with a status; my memory is intact",
                "bulkhead: domain chaos: stopped: exited with code 0",
                "bulkhead: domain chaos-2: stopped: exited with code 0",
                "bulkhead: domain chaos: refused 17 hypercalls; further refusals are only counted (summary line)",
                "[victim] still running after the attacks; secret intact",
                "bulkhead: domain victim: stopped: exited with code 0",
                // No UART service here: chaos's random LOG_WRITEs go
                // straight to the port, past the domains' share of it,
                // and it waits (its calls still complete).
                "bulkhead: domain chaos: waits before its next console line",
            ]),
            system: Some("systems/chaos.toml"),
            input: Vec::new(),
            // Not the default list: a LOG_WRITE of random bytes of its own
            // memory may print `panic` from the domain's own strings. What
            // the core prints when it fails is forbidden all the same.
            forbid: s(&[
                "bulkhead: error:",
                "panic in the core",
                "CPU exception",
                "still in use after every domain was destroyed",
            ]),
            returns: Vec::new(),
            sequence: None,
            exit: Exit::Success,
            timeout: Duration::from_secs(240),
        },
        Spec {
            // The `chaos` domain as a guest the domain manager starts next
            // to the demo, with the services running: its random calls and
            // UART register accesses must cost the demo no line and leave
            // the services and the shell working.
            name: "hostile-guest",
            cmdline: "run=",
            expect: s(&[
                "started demo as domain 3",
                "started chaos as domain 4",
                "[chaos] chaos: done: 100000 calls, 0 domains run on random bytes: every call answered with a status; my memory is intact",
                "bulkhead: domain chaos: stopped: exited with code 0",
                "list",
                "    1  uart              ",
                "    3  demo              ",
                "    4  chaos             stopped",
                "shutdown",
                "bulkhead: shutdown status=0",
            ]),
            anywhere: Vec::new(),
            system: Some("systems/hostile-guest.toml"),
            input: vec![
                ("bulkhead> ".into(), "start demo\r".into()),
                ("demo count 2".into(), "start chaos\r".into()),
                ("chaos: done: 100000 calls".into(), "list\r".into()),
                ("4  chaos".into(), "shutdown\r".into()),
            ],
            // As for `chaos`: its random LOG_WRITEs may print its own
            // strings, `panic` among them.
            forbid: s(&[
                "bulkhead: error:",
                "panic in the core",
                "CPU exception",
                "matched no waiting read",
                "uart              stopped",
                "demo              stopped",
                "bulkhead: domain uart: stopped",
                "bulkhead: domain demo: stopped",
            ]),
            returns: Vec::new(),
            sequence: Some("[demo"),
            exit: Exit::Success,
            timeout: Duration::from_secs(180),
        },
        linux_spec(),
        linux_uart_restart_spec(),
    ]
}

/// A Linux guest at its shell while the UART service faults and is
/// restarted: the keyboard reaches it again and its shell answers.
pub fn linux_uart_restart_spec() -> Spec {
    Spec {
        name: "linux-uart-restart",
        cmdline: "run=",
        expect: s(&[
            "start linux",
            "started linux as domain 4",
            "[linux/uart] BULKHEAD-LINUX-SHELL",
            "[linux/uart] hello-42",
            "[uart] warning: fault requested from the console (Ctrl-A !)",
            "bulkhead: domain uart: restarted by manager (restart 1)",
            "[linux/uart] again-48",
            "shutdown",
            "bulkhead: shutdown status=0",
        ]),
        anywhere: Vec::new(),
        system: Some("systems/linux.toml"),
        input: vec![
            ("bulkhead> ".into(), "start linux\r".into()),
            ("BULKHEAD-LINUX-SHELL".into(), "\u{1}4".into()),
            ("# ".into(), "echo hello-$((6*7))\r".into()),
            ("hello-42".into(), "\u{1}!".into()),
            ("restarted it".into(), "\u{1}4".into()),
            ("".into(), "echo again-$((6*8))\r".into()),
            ("again-48".into(), "\u{1}0shutdown\r".into()),
        ],
        forbid: forbid(&["refused:", "Kernel panic", "no domain has console"]),
        returns: Vec::new(),
        sequence: None,
        exit: Exit::Success,
        timeout: Duration::from_secs(300),
    }
}

/// The default system with the demo printing while the UART service is
/// made to fault with Ctrl-A `key`: `between` must be seen after the
/// demo's second line and before its next, `settled` says the restart is
/// done; then `list` shows the service alive and the system shuts down.
fn uart_fault_spec(
    name: &'static str,
    key: char,
    between: &[&str],
    settled: &str,
    sequence: Option<&'static str>,
    also_forbid: &[&str],
) -> Spec {
    let mut expect = s(&["started demo as domain 3", "[demo/uart] demo count 2"]);
    expect.extend(s(between));
    expect.extend(s(&[
        "[demo/uart] demo count",
        "list",
        // Alive again (running or waiting for requests).
        "    1  uart              ",
        "shutdown",
        "bulkhead: shutdown status=0",
    ]));
    let mut forbidden = vec!["refused:", "giving up", "1  uart              stopped"];
    forbidden.extend_from_slice(also_forbid);
    Spec {
        name,
        cmdline: "run=",
        expect,
        anywhere: Vec::new(),
        system: Some("systems/default.toml"),
        input: vec![
            ("bulkhead> ".into(), "start demo\r".into()),
            ("demo count 2".into(), format!("\u{1}{key}")),
            (settled.into(), "".into()),
            ("demo count".into(), "list\r".into()),
            ("mem-broker".into(), "shutdown\r".into()),
        ],
        forbid: forbid(&forbidden),
        returns: Vec::new(),
        sequence,
        exit: Exit::Success,
        timeout: Duration::from_secs(90),
    }
}

/// The QEMU (no VMX under TCG) test.
pub fn qemu_spec() -> Spec {
    Spec {
        name: "qemu-no-vmx",
        cmdline: "run=first",
        expect: s(&[
            "bulkhead: Bulkhead core",
            "bulkhead: memory map (",
            "bulkhead: error: VMX is not available on this CPU",
            "bulkhead: shutdown status=2",
        ]),
        anywhere: Vec::new(),
        system: None,
        input: Vec::new(),
        forbid: s(&["panic", "CPU exception"]),
        // isa-debug-exit: (2 << 1) | 1.
        returns: Vec::new(),
        sequence: None,
        exit: Exit::Status(5),
        timeout: Duration::from_secs(120),
    }
}

/// The benchmark run, judged like a test.
pub fn bench_spec() -> Spec {
    Spec {
        name: "bench",
        cmdline: "run=bench",
        expect: s(&[
            "[first] bench: null hypercall round trip: ",
            "bulkhead: guest first: stopped: exited with code 0",
            "bulkhead: shutdown status=0",
        ]),
        anywhere: Vec::new(),
        system: None,
        input: Vec::new(),
        forbid: default_forbidden(),
        returns: Vec::new(),
        sequence: None,
        exit: Exit::Success,
        timeout: Duration::from_secs(300),
    }
}

/// The benchmark system run, judged like a test.
pub fn bench_system_spec() -> Spec {
    Spec {
        name: "bench-system",
        cmdline: "run=",
        expect: s(&[
            "[benchcaps] bench: null hypercall round trip: ",
            "[benchcaps] bench: capability-checked hypercall (cap_inspect) round trip: ",
            "[bping] bench: notify -> wake -> reply round trip: ",
            "bulkhead: shutdown status=0",
        ]),
        anywhere: s(&[
            "bulkhead: domain benchcaps: stopped: exited with code 0",
            "bulkhead: domain bping: stopped: exited with code 0",
            "bulkhead: domain bpong: stopped: exited with code 0",
        ]),
        system: Some("systems/bench.toml"),
        input: Vec::new(),
        forbid: default_forbidden(),
        returns: Vec::new(),
        sequence: None,
        exit: Exit::Success,
        timeout: Duration::from_secs(300),
    }
}

/// The ring benchmark run, judged like a test.
pub fn bench_ring_spec() -> Spec {
    Spec {
        name: "bench-ring",
        cmdline: "run=",
        expect: s(&[
            "[rping] bench: ring message round trip: ",
            "bulkhead: shutdown status=0",
        ]),
        anywhere: s(&[
            "bulkhead: domain rping: stopped: exited with code 0",
            "bulkhead: domain rpong: stopped: exited with code 0",
        ]),
        system: Some("systems/bench-ring.toml"),
        input: Vec::new(),
        forbid: default_forbidden(),
        returns: Vec::new(),
        sequence: None,
        exit: Exit::Success,
        timeout: Duration::from_secs(300),
    }
}

/// The virtual-UART benchmark run, judged like a test.
pub fn bench_uart_spec() -> Spec {
    Spec {
        name: "bench-uart",
        cmdline: "run=",
        expect: s(&[
            "[benchuart] bench: virtual UART write and read back: ",
            "bulkhead: domain benchuart: stopped: exited with code 0",
            "bulkhead: shutdown status=0",
        ]),
        anywhere: Vec::new(),
        system: Some("systems/bench-uart.toml"),
        input: Vec::new(),
        forbid: default_forbidden(),
        returns: Vec::new(),
        sequence: None,
        exit: Exit::Success,
        timeout: Duration::from_secs(300),
    }
}

/// Issue 5: an unmodified Linux (Debian's cloud kernel, the busybox
/// initramfs) launched from the shell next to a Rust guest: its boot
/// messages and /init's marker come through its virtual 16550, a command
/// typed into its console runs in busybox, `list` shows it, and `stop`
/// and `destroy` give its memory back.
pub fn linux_spec() -> Spec {
    Spec {
        name: "linux",
        cmdline: "run=",
        expect: s(&[
            "started demo as domain 4",
            "mem",
            "start linux",
            "linux: kernel at 0x",
            "started linux as domain 5",
            "[linux/uart] BULKHEAD-LINUX-INIT",
            "[linux/uart] kernel: ",
            "[linux/uart] BULKHEAD-LINUX-SHELL",
            "[linux/uart] hello-42",
            "mem",
            "linux ",
            "list",
            "    5  linux             ",
            "stop 5",
            "stopped domain 5",
            "destroy 5",
            "destroyed domain 5",
            "mem",
            "shutdown",
            "bulkhead: shutdown status=0",
        ]),
        anywhere: s(&["[demo/uart] demo count 5"]),
        system: Some("systems/linux.toml"),
        input: vec![
            ("bulkhead> ".into(), "start demo\r".into()),
            ("demo count 1".into(), "mem\r".into()),
            ("granted".into(), "start linux\r".into()),
            ("BULKHEAD-LINUX-SHELL".into(), "\u{1}5".into()),
            // The shell's prompt, then a command only a shell computes.
            ("# ".into(), "echo hello-$((6*7))\r".into()),
            ("hello-42".into(), "\u{1}0mem\r".into()),
            ("granted".into(), "list\r".into()),
            ("linux  ".into(), "stop 5\r".into()),
            ("stopped domain 5".into(), "destroy 5\r".into()),
            ("destroyed domain 5".into(), "mem\r".into()),
            ("granted".into(), "shutdown\r".into()),
        ],
        forbid: forbid(&["refused:", "could not give", "Kernel panic"]),
        returns: s(&["free     "]),
        sequence: None,
        exit: Exit::Success,
        timeout: Duration::from_secs(300),
    }
}

/// `cargo xtask bench`: the Linux guest started from the shell with the
/// bare boot's command line; at its marker, its exit counts (`dump`).
pub fn bench_linux_spec() -> Spec {
    Spec {
        name: "bench-linux",
        // `quiet` as for the bare kernel: the core's boot report would
        // keep it waiting on COM1 (docs/BENCHMARKS.md).
        cmdline: "run= quiet",
        expect: s(&[
            "started linux as domain 4",
            crate::linux::MARKER,
            "dump 4",
            "exits by reason:",
            "shutdown",
            "bulkhead: shutdown status=0",
        ]),
        anywhere: Vec::new(),
        system: Some("systems/bench-linux.toml"),
        input: vec![
            ("bulkhead> ".into(), "start linux\r".into()),
            (crate::linux::MARKER.into(), "\u{1}0dump 4\r".into()),
            // The prompt after the dump.
            ("bulkhead> ".into(), "shutdown\r".into()),
        ],
        forbid: forbid(&["Kernel panic"]),
        returns: Vec::new(),
        sequence: None,
        exit: Exit::Success,
        timeout: Duration::from_secs(300),
    }
}

/// The `start` benchmark run: a 16 MiB guest launched from the shell.
pub fn bench_start_spec() -> Spec {
    Spec {
        name: "bench-start",
        cmdline: "run=",
        expect: s(&[
            "[manager] ready: ",
            "start big",
            "[manager] bench: start big: ",
            "started big as domain 3",
            "[big/uart] hello 3 over the virtual 16550 from big",
            "shutdown",
            "bulkhead: shutdown status=0",
        ]),
        anywhere: Vec::new(),
        system: Some("systems/bench-start.toml"),
        input: vec![
            ("bulkhead> ".into(), "start big\r".into()),
            ("hello 3 over".into(), "shutdown\r".into()),
        ],
        forbid: default_forbidden(),
        returns: Vec::new(),
        sequence: None,
        exit: Exit::Success,
        timeout: Duration::from_secs(120),
    }
}

/// The first number after `prefix` in the console.
pub fn parse_figure(console: &str, prefix: &str) -> Option<u64> {
    console.lines().find_map(|l| {
        let rest = l.split_once(prefix)?.1;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The name of the end-to-end test of `cargo xtask new-service`.
const NEW_SERVICE: &str = "new-service";

/// Runs every end-to-end test (matching `filter`); returns how many failed.
pub fn run_all(bins: &image::Binaries, filter: Option<&str>) -> Result<usize> {
    let mut tests: Vec<(Spec, Emulator)> =
        specs().into_iter().map(|s| (s, Emulator::Bochs)).collect();
    tests.push((qemu_spec(), Emulator::Qemu));
    tests.retain(|(s, _)| filter.is_none_or(|f| s.name.contains(f)));
    // Not an emulator spec of its own: it boots a system built in a copy of
    // the tree (see `newservice::check_in_copy`).
    let new_service = filter.is_none_or(|f| NEW_SERVICE.contains(f));
    if tests.is_empty() && !new_service {
        return Err(format!("no end-to-end test matches {filter:?}").into());
    }
    let mut failed = 0;
    let total = tests.len() + usize::from(new_service);
    for (i, (spec, emulator)) in tests.into_iter().enumerate() {
        step(&format!(
            "e2e {}/{total} {} under {emulator:?} (command line {:?})",
            i + 1,
            spec.name,
            spec.cmdline
        ));
        let started = Instant::now();
        let system = spec.system.map(|s| crate::workspace_root().join(s));
        let iso = image::make_iso(
            bins,
            &format!("e2e-{}", spec.name),
            spec.cmdline,
            system.as_deref(),
        )?;
        let run = emulator::run(
            &iso,
            &emulator::Options {
                emulator,
                kvm: false,
                timeout: spec.timeout,
                live: false,
                input: if spec.input.is_empty() {
                    crate::emulator::Input::None
                } else {
                    crate::emulator::Input::Script(spec.input.clone())
                },
                logs: image::log_decoder(&bins.domains, system.as_deref())?,
                stop_on: None,
            },
        )?;
        match harness::judge(&spec, &run) {
            Ok(()) => {
                if run.outcome == emulator::Outcome::Exited(None) {
                    step("note: the emulator ended by a signal after the core shut down cleanly");
                }
                step(&format!(
                    "e2e {} passed ({:.1} s)",
                    spec.name,
                    started.elapsed().as_secs_f64()
                ));
                if std::env::var_os("XTASK_KEEP").is_some() {
                    step(&format!("emulator files kept in {}", run.scratch.display()));
                } else {
                    let _ = std::fs::remove_dir_all(&run.scratch);
                }
            }
            Err(failure) => {
                failed += 1;
                eprintln!(
                    "xtask: e2e {} FAILED: {failure}xtask: emulator files kept in {}",
                    spec.name,
                    run.scratch.display()
                );
            }
        }
    }
    if new_service {
        step(&format!(
            "e2e {total}/{total} {NEW_SERVICE}: cargo xtask new-service hello in a copy of the tree, then boot it"
        ));
        let started = Instant::now();
        match crate::newservice::check_in_copy() {
            Ok(()) => step(&format!(
                "e2e {NEW_SERVICE} passed ({:.1} s)",
                started.elapsed().as_secs_f64()
            )),
            Err(why) => {
                failed += 1;
                eprintln!("xtask: e2e {NEW_SERVICE} FAILED: {why}");
            }
        }
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_line_parses() {
        let c =
            "x\n[first] bench: null hypercall round trip: 142 TSC ticks per call (100000 calls)\n";
        let p = "[first] bench: null hypercall round trip: ";
        assert_eq!(parse_figure(c, p), Some(142));
        assert_eq!(parse_figure("nothing", p), None);
    }

    #[test]
    fn test_names_are_unique() {
        let mut names: Vec<_> = specs().iter().map(|s| s.name).collect();
        names.push(qemu_spec().name);
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}
