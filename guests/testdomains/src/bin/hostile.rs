//! Attacks the core and its neighbours. What it tries depends on its name:
//! `hostile` tries hypercall attacks and ends reading a guessed address;
//! `hostile-port` reads an unowned port; `hostile-vmxon` and
//! `hostile-vmread` execute VMX instructions; `hostile-osxsave` sets
//! CR4.OSXSAVE, which is the core's.
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod domain {
    use rt::{Rights, Status, SLOT_SELF};
    use testdomains::arch;
    rt::entry!(main);

    fn report(what: &str, got: Result<u64, Status>, expected: Status) {
        match got {
            Err(s) if s == expected => rt::log!("attempt {what}: refused with {s:?}"),
            Err(s) => rt::log!("attempt {what}: UNEXPECTED status {s:?} (expected {expected:?})"),
            Ok(v) => rt::log!("attempt {what}: UNEXPECTEDLY succeeded ({v:#x})"),
        }
    }

    fn main(info: &'static rt::StartInfo) -> u64 {
        match info.name() {
            "hostile-port" => {
                rt::log!("attempt: read port 0x60, which I do not own");
                let v = arch::inb(0x60);
                rt::log!("port read UNEXPECTEDLY returned {v:#x}");
                1
            }
            "hostile-vmxon" => {
                rt::log!("attempt: VMXON");
                arch::vmxon();
                rt::log!("VMXON UNEXPECTEDLY returned");
                1
            }
            "hostile-vmread" => {
                rt::log!("attempt: VMREAD");
                let v = arch::vmread();
                rt::log!("VMREAD UNEXPECTEDLY returned {v:#x}");
                1
            }
            "hostile-osxsave" => {
                rt::log!("attempt: set CR4.OSXSAVE");
                arch::set_cr4_osxsave();
                rt::log!("CR4.OSXSAVE UNEXPECTEDLY set");
                1
            }
            _ => capability_attacks(info),
        }
    }

    fn capability_attacks(info: &'static rt::StartInfo) -> u64 {
        let memory = info.find("memory").map(|s| s.slot as u64).unwrap_or(0);
        let decoy = info.find("decoy").map(|s| s.slot as u64);
        let mem_bytes = info.memory_bytes;

        report(
            "forged slot 9999",
            rt::cap_inspect(9999).map(|_| 0),
            Status::InvalidSlot,
        );
        report(
            "forged slot 2^63",
            rt::cap_inspect(1 << 63).map(|_| 0),
            Status::InvalidSlot,
        );
        report(
            "empty slot 20",
            rt::cap_inspect(20).map(|_| 0),
            Status::EmptySlot,
        );
        report(
            "map memory through an empty slot",
            rt::mem_map(SLOT_SELF, 21, 0x2000_0000, Rights::READ).map(|_| 0),
            Status::EmptySlot,
        );
        report(
            "use my memory capability as a domain",
            rt::domain_stop(memory).map(|_| 0),
            Status::WrongType,
        );
        let read_only = rt::cap_derive(memory, Rights::READ | Rights::MAP);
        match read_only {
            Ok(ro) => {
                report(
                    "map a read-only copy writable",
                    rt::mem_map(SLOT_SELF, ro, 0x2000_0000, Rights::READ | Rights::WRITE)
                        .map(|_| 0),
                    Status::InsufficientRights,
                );
                report(
                    "derive more rights than held",
                    rt::cap_derive(ro, Rights::READ | Rights::WRITE | Rights::MAP),
                    Status::InsufficientRights,
                );
            }
            Err(e) => rt::log!("attempt derive: UNEXPECTED status {e:?}"),
        }
        report(
            "read another domain's memory by guessing its guest-physical address",
            log_write_at(mem_bytes + 0x10_0000),
            Status::InvalidAddress,
        );
        report(
            "read memory by guessing a host-physical address (16 MiB)",
            log_write_at(0x100_0000),
            Status::InvalidAddress,
        );
        if let Some(decoy) = decoy {
            match rt::domain_destroy(decoy) {
                Ok(()) => rt::log!("destroyed the decoy domain I control"),
                Err(e) => rt::log!("destroying the decoy: UNEXPECTED status {e:?}"),
            }
            report(
                "use the capability of the destroyed decoy",
                rt::domain_status(decoy).map(|_| 0),
                Status::StaleCapability,
            );
        }
        report(
            "unknown hypercall 999",
            rt::result(rt::raw_call(999, 0, 0, 0, 0).0, 0),
            Status::UnknownCall,
        );
        let guess = 0x3000_0000u64;
        rt::log!("attempt: read guessed guest-physical address {guess:#x} directly");
        let v = arch::read_u8(guess);
        rt::log!("direct read UNEXPECTEDLY returned {v:#x}");
        1
    }

    /// `LOG_WRITE` of 16 bytes at an address this domain does not own.
    fn log_write_at(gpa: u64) -> Result<u64, Status> {
        let (rax, rdx) = rt::raw_call(rt::Call::LogWrite as u64, gpa, 16, 0, 0);
        rt::result(rax, rdx)
    }
}
