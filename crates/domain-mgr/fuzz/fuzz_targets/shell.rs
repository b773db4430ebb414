//! The domain manager's requests: whatever is typed on its console is fed
//! to the shell byte by byte, against a supervisor that refuses or
//! answers everything; the line editor, the parser and every command must
//! never panic and must always come back to a prompt.
#![no_main]

use core::fmt;
use domain_mgr::{
    DomainId, DomainInfo, DomainRow, Error, MemInfo, Register, Shell, Status, Supervisor,
};
use libfuzzer_sys::fuzz_target;

/// Answers from the first input byte: refuse everything, or report a
/// little of everything.
struct Sup(u8);

impl Supervisor for Sup {
    fn list(&mut self, _out: &mut dyn FnMut(DomainRow)) {}
    fn status(&mut self, _id: DomainId) -> Result<DomainInfo, Error> {
        Err(Error::NoSuchDomain)
    }
    fn start(&mut self, _name: &str) -> Result<DomainId, Error> {
        if self.0 & 1 == 0 {
            Err(Error::Hypercall(Status::OutOfResources))
        } else {
            Ok(DomainId::from(self.0))
        }
    }
    fn stop(&mut self, _id: DomainId) -> Result<(), Error> {
        Err(Error::Protected)
    }
    fn destroy(&mut self, _id: DomainId) -> Result<(), Error> {
        Ok(())
    }
    fn dump(&mut self, _id: DomainId, out: &mut dyn FnMut(Register)) -> Result<(), Error> {
        out(Register {
            name: "rip",
            value: u64::from(self.0),
        });
        Ok(())
    }
    fn dump_exits(&mut self, _id: DomainId, out: &mut dyn FnMut(u16, u64)) -> Result<(), Error> {
        out(u16::from(self.0), u64::MAX);
        Ok(())
    }
    fn dump_log(&mut self, _id: DomainId, out: &mut dyn FnMut(&str)) -> Result<(), Error> {
        out("a line");
        Ok(())
    }
    fn mem(&mut self) -> MemInfo {
        MemInfo::EMPTY
    }
    fn shutdown(&mut self) -> Result<(), Error> {
        Err(Error::Unsupported)
    }
}

/// Output that is thrown away.
struct Sink;
impl fmt::Write for Sink {
    fn write_str(&mut self, _s: &str) -> fmt::Result {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, typed)) = data.split_first() else {
        return;
    };
    let mut sup = Sup(mode);
    let mut shell: Shell = Shell::new();
    for &byte in typed {
        shell.feed(byte, &mut sup, &mut Sink);
    }
});
