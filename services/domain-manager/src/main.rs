//! The domain manager: the supervisor and the front desk. It serves the
//! shell of `crates/domain-mgr` on its virtual UART (which the UART service
//! connects to the keyboard by default) and acts on the domains the
//! manifest gave it CONTROL over, through hypercalls.
//!
//! It owns no device and no memory but its own; it must never trust what
//! is typed (the shell's parser refuses anything malformed with a one-line
//! error) and never stops serving the shell because a command failed.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the domain manager runs as a Bulkhead domain; see `cargo xtask run`");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
mod service {
    use core::fmt;

    use domain_mgr::{
        DomainId, DomainInfo, DomainRow, Error, ExitCounts, MemGrant, MemInfo, Name, Register,
        Shell, Supervisor,
    };
    use hypercall_abi::ObjectType;

    rt::entry!(main);

    /// Sleep between looks at the virtual UART when nothing was typed.
    const IDLE: u64 = 200_000;
    /// How long `shutdown` waits for queued console output to be printed.
    const SHUTDOWN_GRACE: u64 = 2_000_000;

    /// The domains this manager controls: those the manifest named in its
    /// `control` list, numbered from 1 in that order.
    struct Domains {
        info: &'static rt::StartInfo,
    }

    impl Domains {
        fn all(&self) -> impl Iterator<Item = (DomainId, &'static hypercall_abi::StartSlot)> + '_ {
            let n = (self.info.slot_count as usize).min(self.info.slots.len());
            self.info.slots[..n]
                .iter()
                .filter(|s| s.kind == ObjectType::Domain as u8)
                .enumerate()
                .map(|(i, s)| (i as DomainId + 1, s))
        }

        fn slot(&self, id: DomainId) -> Result<&'static hypercall_abi::StartSlot, Error> {
            self.all()
                .find(|(i, _)| *i == id)
                .map(|(_, s)| s)
                .ok_or(Error::NoSuchDomain)
        }
    }

    fn hc(s: rt::Status) -> Error {
        Error::Hypercall(s)
    }

    impl Supervisor for Domains {
        fn list(&mut self, out: &mut dyn FnMut(DomainRow)) {
            for (id, slot) in self.all() {
                let Ok(info) = rt::domain_info(slot.slot as u64) else {
                    continue;
                };
                out(DomainRow {
                    id,
                    name: Name::new_or_none(slot.name()),
                    state: info.state.unwrap_or(rt::DomainState::Stopped),
                    priority: info.priority,
                    mem_kib: info.memory_kib as u64,
                    exits: rt::domain_exits(slot.slot as u64).map_or(0, |e| e[3]),
                });
            }
        }

        fn status(&mut self, id: DomainId) -> Result<DomainInfo, Error> {
            let slot = self.slot(id)?;
            let info = rt::domain_info(slot.slot as u64).map_err(hc)?;
            Ok(DomainInfo {
                id,
                name: Name::new_or_none(slot.name()),
                state: info.state.unwrap_or(rt::DomainState::Stopped),
                priority: info.priority,
                mem_kib: info.memory_kib as u64,
                exits: match rt::domain_exits(slot.slot as u64) {
                    Ok([hypercall, io, ept, all]) => ExitCounts {
                        hypercall,
                        io,
                        ept,
                        other: all.saturating_sub(hypercall + io + ept),
                    },
                    Err(_) => ExitCounts::default(),
                },
            })
        }

        fn start(&mut self, _name: &str) -> Result<DomainId, Error> {
            Err(Error::Unsupported)
        }

        fn stop(&mut self, id: DomainId) -> Result<(), Error> {
            rt::domain_stop(self.slot(id)?.slot as u64).map_err(hc)
        }

        fn destroy(&mut self, id: DomainId) -> Result<(), Error> {
            rt::domain_destroy(self.slot(id)?.slot as u64).map_err(hc)
        }

        fn dump(&mut self, _id: DomainId, _out: &mut dyn FnMut(Register)) -> Result<(), Error> {
            Err(Error::Unsupported)
        }

        /// Memory held by each controlled domain (true figures from the
        /// core). There is no memory broker yet, so free memory reads 0.
        fn mem(&mut self) -> MemInfo {
            let mut m = MemInfo::EMPTY;
            for ((id, slot), grant) in self.all().zip(m.grants.iter_mut()) {
                if let Ok(info) = rt::domain_info(slot.slot as u64) {
                    *grant = Some(MemGrant {
                        id,
                        name: Name::new_or_none(slot.name()),
                        kib: info.memory_kib as u64,
                    });
                }
            }
            m
        }

        fn shutdown(&mut self) -> Result<(), Error> {
            // Give the UART service time to print what is still queued for
            // the console (the shell's last lines) before everything stops.
            rt::sleep(SHUTDOWN_GRACE);
            rt::shutdown().map_err(hc)
        }
    }

    /// The shell's output: the virtual UART's transmitter.
    struct Uart;

    impl fmt::Write for Uart {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            rt::com1::write(s.as_bytes());
            Ok(())
        }
    }

    fn main(info: &'static rt::StartInfo) -> u64 {
        let mut domains = Domains { info };
        let mut shell: Shell = Shell::new();
        rt::com1::init();
        rt::log!(
            "ready: {} domain(s) under control; shell on the console",
            domains.all().count()
        );
        shell.prompt(&mut Uart);
        loop {
            match rt::com1::read_byte() {
                Some(byte) => {
                    if shell.feed(byte, &mut domains, &mut Uart) == domain_mgr::Flow::Shutdown {
                        return 0;
                    }
                }
                None => rt::sleep(IDLE),
            }
        }
    }
}
