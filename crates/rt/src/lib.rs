//! `rt` is the runtime every Bulkhead domain links: the entry point (its own
//! stack, then the domain's `main` with its [`StartInfo`]), a typed wrapper
//! for every hypercall returning `Result<_, Status>`, console logging through
//! `LOG_WRITE`, and a panic handler that reports and stops the domain.
//!
//! It owns nothing in the core and must never assume a call succeeds: every
//! wrapper decodes the status the core returned (an unknown status becomes
//! [`Status::InvalidArgument`]). The one instruction that leaves the domain
//! (`VMCALL`) and the entry stub live in the `arch` module.
//!
//! A domain binary uses it like this:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! rt::entry!(main);
//! fn main(info: &'static rt::StartInfo) -> u64 { rt::log!("hello from {}", info.name()); 0 }
//! ```
#![cfg_attr(not(test), no_std)]

pub mod arch;
#[cfg(feature = "ioreq")]
pub mod ioreq;
#[cfg(feature = "defmt")]
mod logger;

use core::fmt::{self, Write as _};

pub use hypercall_abi::{
    Call, DomainState, ObjectType, Rights, StartInfo, Status, IMAGE_FLOOR, PLATFORM_PC, SLOT_NONE,
    SLOT_SELF,
};

/// Turns RAX/RDX after a hypercall into a result.
#[inline]
pub fn result(rax: u64, rdx: u64) -> Result<u64, Status> {
    match Status::from_raw(rax) {
        Some(Status::Ok) => Ok(rdx),
        Some(err) => Err(err),
        None => Err(Status::InvalidArgument),
    }
}

#[inline]
fn call(c: Call, a0: u64, a1: u64, a2: u64, a3: u64) -> Result<u64, Status> {
    let (rax, rdx) = arch::vmcall(c as u64, a0, a1, a2, a3);
    result(rax, rdx)
}

/// Any hypercall number with raw arguments; returns (RAX, RDX). For tests
/// that probe the core with values the typed wrappers would not produce.
#[inline]
pub fn raw_call(number: u64, a0: u64, a1: u64, a2: u64, a3: u64) -> (u64, u64) {
    arch::vmcall(number, a0, a1, a2, a3)
}

/// `NULL`.
pub fn null() -> Result<(), Status> {
    call(Call::Null, 0, 0, 0, 0).map(drop)
}

/// `LOG_WRITE` of raw bytes (at most 256).
pub fn log_bytes(bytes: &[u8]) -> Result<(), Status> {
    call(
        Call::LogWrite,
        bytes.as_ptr() as u64,
        bytes.len() as u64,
        0,
        0,
    )
    .map(drop)
}

/// `EXIT`: stops this domain with `code`.
pub fn exit(code: u64) -> ! {
    let _ = call(Call::Exit, code, 0, 0, 0);
    loop {
        arch::halt();
    }
}

/// `YIELD`.
pub fn yield_now() {
    let _ = call(Call::Yield, 0, 0, 0, 0);
}

/// What `CAP_INSPECT` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapInfo {
    /// The object's type.
    pub kind: Option<ObjectType>,
    /// The rights held.
    pub rights: Rights,
    /// The object's index in its table.
    pub index: u32,
}

/// `CAP_INSPECT`.
pub fn cap_inspect(slot: u64) -> Result<CapInfo, Status> {
    let v = call(Call::CapInspect, slot, 0, 0, 0)?;
    Ok(CapInfo {
        kind: ObjectType::from_raw(v & 0xff),
        rights: Rights::from_bits_truncate((v >> 8) as u8),
        index: (v >> 32) as u32,
    })
}

/// `CAP_DERIVE`: a copy with `rights`; returns the new slot.
pub fn cap_derive(slot: u64, rights: Rights) -> Result<u64, Status> {
    call(Call::CapDerive, slot, rights.bits() as u64, 0, 0)
}

/// `CAP_DELETE`.
pub fn cap_delete(slot: u64) -> Result<(), Status> {
    call(Call::CapDelete, slot, 0, 0, 0).map(drop)
}

/// `CAP_GRANT`: sends a copy of `slot` with `rights` to the peer of
/// `channel`; returns the slot it arrived in on the peer's side.
pub fn cap_grant(channel: u64, slot: u64, rights: Rights) -> Result<u64, Status> {
    call(Call::CapGrant, channel, slot, rights.bits() as u64, 0)
}

/// `MEM_SPLIT`: returns the slot of the part from `offset` on.
pub fn mem_split(region: u64, offset: u64) -> Result<u64, Status> {
    call(Call::MemSplit, region, offset, 0, 0)
}

/// `MEM_MERGE`: `region` grows to cover `next`, which starts where it
/// ends; `next`'s slot is emptied.
pub fn mem_merge(region: u64, next: u64) -> Result<(), Status> {
    call(Call::MemMerge, region, next, 0, 0).map(drop)
}

/// `MEM_SIZE`: the length of the region at `region`, in bytes.
pub fn mem_size(region: u64) -> Result<u64, Status> {
    call(Call::MemSize, region, 0, 0, 0)
}

/// `IRQ_LINE` (device services): line `line` of the domain in table slot
/// `guest` goes `high` or low.
pub fn irq_line(guest: u8, line: u8, high: bool) -> Result<(), Status> {
    call(
        Call::IrqLine,
        u64::from(guest),
        u64::from(line),
        u64::from(high),
        0,
    )
    .map(drop)
}

/// `IRQ_RAISE` (platform service only): interrupt `vector` for the PC
/// guest in domain-table slot `guest`.
pub fn irq_raise(guest: u8, vector: u8) -> Result<(), Status> {
    call(Call::IrqRaise, u64::from(guest), u64::from(vector), 0, 0).map(drop)
}

/// `DOMAIN_SET_PLATFORM`: domain `slot` (created, not started) runs on
/// `platform` (`hypercall_abi::PLATFORM_PC` for an unmodified Linux).
pub fn domain_set_platform(slot: u64, platform: u64) -> Result<(), Status> {
    call(Call::DomainSetPlatform, slot, platform, 0, 0).map(drop)
}

/// `MEM_MAP`: maps `region` into `domain` (or [`SLOT_SELF`]) at `gpa`.
pub fn mem_map(domain: u64, region: u64, gpa: u64, rights: Rights) -> Result<(), Status> {
    call(Call::MemMap, domain, region, gpa, rights.bits() as u64).map(drop)
}

/// `DOMAIN_STOP`.
pub fn domain_stop(domain: u64) -> Result<(), Status> {
    call(Call::DomainStop, domain, 0, 0, 0).map(drop)
}

/// `DOMAIN_RESTART`: a stopped domain the manifest marks `restart` starts
/// again from its image, with the same capabilities.
pub fn domain_restart(domain: u64) -> Result<(), Status> {
    call(Call::DomainRestart, domain, 0, 0, 0).map(drop)
}

/// `DOMAIN_DESTROY`.
pub fn domain_destroy(domain: u64) -> Result<(), Status> {
    call(Call::DomainDestroy, domain, 0, 0, 0).map(drop)
}

/// What `DOMAIN_STATUS` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainStatus {
    /// Running, blocked or stopped (`None` for a value this runtime does not
    /// know).
    pub state: Option<DomainState>,
    /// Its priority.
    pub priority: u8,
    /// Its own memory in KiB.
    pub memory_kib: u32,
    /// Stopped by a fault or a violation.
    pub faulted: bool,
}

/// `DOMAIN_STATUS` with every figure.
pub fn domain_info(domain: u64) -> Result<DomainStatus, Status> {
    let v = call(Call::DomainStatus, domain, 0, 0, 0)?;
    Ok(DomainStatus {
        state: match v & 0xff {
            1 => Some(DomainState::Running),
            2 => Some(DomainState::Blocked),
            3 => Some(DomainState::Stopped),
            _ => None,
        },
        priority: (v >> 8) as u8,
        memory_kib: (v >> 16) as u32,
        faulted: v >> 63 == 1,
    })
}

/// `DOMAIN_STATUS`: just the state.
pub fn domain_status(domain: u64) -> Result<Option<DomainState>, Status> {
    domain_info(domain).map(|i| i.state)
}

/// `DOMAIN_EXITS` count `k` (0 hypercalls, 1 port I/O, 2 EPT violations,
/// 3 all) in full.
pub fn domain_exit_count(domain: u64, k: u64) -> Result<u64, Status> {
    call(Call::DomainExits, domain, 1 + k, 0, 0)
}

/// `DOMAIN_PEEK`: one register or exit count of another domain (items in
/// [`hypercall_abi::peek`]).
pub fn domain_peek(domain: u64, item: u64) -> Result<u64, Status> {
    call(Call::DomainPeek, domain, item, 0, 0)
}

/// `SHUTDOWN`: ends the system (needs CONTROL over every other domain).
pub fn shutdown() -> Result<(), Status> {
    call(Call::Shutdown, 0, 0, 0, 0).map(drop)
}

/// `DOMAIN_CREATE` from a memory region; returns the new domain's slot.
pub fn domain_create(region: u64, priority: u8, slots: u16) -> Result<u64, Status> {
    call(
        Call::DomainCreate,
        region,
        priority as u64,
        slots as u64,
        hypercall_abi::SLOT_NONE,
    )
}

/// `DOMAIN_CREATE` of guest `image` (a guest-image capability from the
/// start info): the new domain takes the guest's name.
pub fn domain_create_guest(
    region: u64,
    priority: u8,
    slots: u16,
    image: u64,
) -> Result<u64, Status> {
    call(
        Call::DomainCreate,
        region,
        priority as u64,
        slots as u64,
        image,
    )
}

/// `MEM_UNMAP`: removes `region`'s mappings from `domain` (or
/// [`SLOT_SELF`]).
pub fn mem_unmap(domain: u64, region: u64) -> Result<(), Status> {
    call(Call::MemUnmap, domain, region, 0, 0).map(drop)
}

/// `MEM_ZERO`: zeroes `len` bytes of `region` from `offset` (at most
/// [`hypercall_abi::MEM_ZERO_MAX`] per call).
pub fn mem_zero(region: u64, offset: u64, len: u64) -> Result<(), Status> {
    call(Call::MemZero, region, offset, len, 0).map(drop)
}

/// `DOMAIN_SET_VCPU`: entry point, stack pointer and the value for RDI.
pub fn domain_set_vcpu(domain: u64, rip: u64, rsp: u64, rdi: u64) -> Result<(), Status> {
    call(Call::DomainSetVcpu, domain, rip, rsp, rdi).map(drop)
}

/// `DOMAIN_BIND_PORTS`.
pub fn domain_bind_ports(domain: u64, ports: u64) -> Result<(), Status> {
    call(Call::DomainBindPorts, domain, ports, 0, 0).map(drop)
}

/// `DOMAIN_START`.
pub fn domain_start(domain: u64) -> Result<(), Status> {
    call(Call::DomainStart, domain, 0, 0, 0).map(drop)
}

/// `CHANNEL_CREATE` between two domains (or [`SLOT_SELF`]) over a region,
/// mapped at `gpa` in both; returns (first slot | second slot << 16).
pub fn channel_create(a: u64, b: u64, region: u64, gpa: u64) -> Result<u64, Status> {
    call(Call::ChannelCreate, a, b, region, gpa)
}

/// `CHANNEL_NOTIFY`.
pub fn channel_notify(channel: u64) -> Result<(), Status> {
    call(Call::ChannelNotify, channel, 0, 0, 0).map(drop)
}

/// `CHANNEL_WAIT` with a timeout in TSC ticks (`u64::MAX`: forever).
pub fn channel_wait(channel: u64, timeout: u64) -> Result<(), Status> {
    call(Call::ChannelWait, channel, timeout, 0, 0).map(drop)
}

/// `SLEEP` for `ticks` TSC ticks.
pub fn sleep(ticks: u64) {
    let _ = call(Call::Sleep, ticks, 0, 0, 0);
}

/// The time-stamp counter.
pub fn now() -> u64 {
    arch::rdtsc()
}

/// The TSC frequency used when CPUID does not give one (1 GHz).
pub const FALLBACK_TSC_HZ: u64 = 1_000_000_000;

/// The TSC frequency in Hz as the core's CPUID reports it (leaf 0x15,
/// which the core fills in from its measurement at boot), or
/// [`FALLBACK_TSC_HZ`] when the leaf reads 0.
pub fn tsc_hz() -> u64 {
    let [a, b, c, _] = arch::cpuid(0x15);
    if a != 0 && b != 0 && c != 0 {
        u64::from(c) * u64::from(b) / u64::from(a)
    } else {
        FALLBACK_TSC_HZ
    }
}

/// `ms` milliseconds in TSC ticks at `hz`.
pub const fn ms_to_ticks(ms: u64, hz: u64) -> u64 {
    ms.saturating_mul(hz) / 1000
}

/// A line being formatted for the console (longer lines are cut at 200).
pub struct Line {
    bytes: [u8; 200],
    len: usize,
}

impl Line {
    /// An empty line.
    pub const fn new() -> Line {
        Line {
            bytes: [0; 200],
            len: 0,
        }
    }

    /// The bytes so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The text so far (a line cut inside a character reads up to it).
    pub fn as_str(&self) -> &str {
        match core::str::from_utf8(self.as_bytes()) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&self.bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }

    /// A line holding `args`, formatted.
    pub fn format(args: fmt::Arguments<'_>) -> Line {
        let mut line = Line::new();
        let _ = line.write_fmt(args);
        line
    }
}

impl Default for Line {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

pub mod com1 {
    //! COM1 as a domain sees it: its virtual 16550 (served by the UART
    //! service through the core), or the real one for the domain that holds
    //! its ports.
    use crate::arch::{inb, outb};

    /// COM1's first port.
    pub const BASE: u16 = 0x3f8;

    /// Writes one byte once the transmitter has room (LSR.THRE).
    pub fn write_byte(byte: u8) {
        while inb(BASE + 5) & 0x20 == 0 {
            core::hint::spin_loop();
        }
        outb(BASE, byte);
    }

    /// Writes every byte.
    pub fn write(bytes: &[u8]) {
        bytes.iter().for_each(|&b| write_byte(b));
    }

    /// A received byte, if one is waiting (LSR.DR).
    pub fn read_byte() -> Option<u8> {
        (inb(BASE + 5) & 1 != 0).then(|| inb(BASE))
    }

    /// 8N1 at 115200 baud with the 16-byte FIFOs on, so that typing ahead
    /// is kept while the domain is busy.
    pub fn init() {
        outb(BASE + 3, 0x80);
        outb(BASE, 1);
        outb(BASE + 1, 0);
        outb(BASE + 3, 0x03);
        outb(BASE + 2, 0x07);
    }
}

/// Formats and prints one line through `LOG_WRITE`.
pub fn log_fmt(args: fmt::Arguments<'_>) {
    let mut line = Line::new();
    let _ = line.write_fmt(args);
    let _ = log_bytes(line.as_bytes());
}

/// `log!("...", args)`: one console line, prefixed by the core with the
/// domain's name.
#[macro_export]
macro_rules! log {
    ($($t:tt)*) => { $crate::log_fmt(format_args!($($t)*)) };
}

/// Declares the domain's `main(info: &'static StartInfo) -> u64`; its return
/// value becomes the exit code.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(no_mangle)]
        extern "C" fn rt_domain_main(info: &'static $crate::StartInfo) -> ! {
            let f: fn(&'static $crate::StartInfo) -> u64 = $main;
            $crate::exit(f(info))
        }
    };
}

/// Reports a panic and stops the domain with exit code 255.
#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    log_fmt(format_args!("panic: {info}"));
    exit(255)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_become_ticks_at_any_frequency() {
        // Bochs's TSC (50 MHz), a 3 GHz CPU, the fallback.
        assert_eq!(ms_to_ticks(4, 50_000_000), 200_000);
        assert_eq!(ms_to_ticks(64, 3_000_000_000), 192_000_000);
        assert_eq!(ms_to_ticks(1, FALLBACK_TSC_HZ), 1_000_000);
        assert_eq!(ms_to_ticks(u64::MAX, 3_000_000_000), u64::MAX / 1000);
    }

    #[test]
    fn statuses_decode_and_unknown_ones_are_errors() {
        assert_eq!(result(0, 42), Ok(42));
        assert_eq!(result(Status::EmptySlot.raw(), 0), Err(Status::EmptySlot));
        assert_eq!(result(9999, 0), Err(Status::InvalidArgument));
    }

    #[test]
    fn lines_read_back_as_text_even_when_cut_inside_a_character() {
        let l = Line::format(format_args!("pong {}", 3));
        assert_eq!(l.as_str(), "pong 3");
        let mut l = Line::new();
        let _ = l.write_str(&"a".repeat(199));
        let _ = l.write_str("é");
        assert_eq!(l.as_str().len(), 199);
    }

    #[test]
    fn lines_are_bounded() {
        let mut l = Line::new();
        for _ in 0..100 {
            let _ = l.write_str("abcdef");
        }
        assert_eq!(l.as_bytes().len(), 200);
    }
}
