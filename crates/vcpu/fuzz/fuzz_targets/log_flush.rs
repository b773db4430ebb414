//! A domain's log ring as the domain may have written it: the input
//! becomes the page the domain hands to `LOG_FLUSH` (and the address it
//! passes). The core must never panic, never write anywhere but the ring's
//! consumer index, and never print a line longer than its bound.
#![no_main]

use hypercall_abi::{Call, LOG_FRAME_MAX, LOG_FRAME_TOKEN, LOG_RING_BYTES};
use libfuzzer_sys::fuzz_target;
use vcpu::{handle_exit, LineSource, Platform, Vcpu, Vmcs};
use vmx::exit::ExitReason;
use vmx::{fields, VmFail};

const PAGE: usize = LOG_RING_BYTES as usize;

struct Memory {
    bytes: Vec<u8>,
    lines: usize,
    longest: usize,
}

impl Platform for Memory {
    fn host_rdtsc(&mut self) -> u64 {
        0
    }
    fn host_cpuid(&mut self, _: u32, _: u32) -> [u32; 4] {
        [0; 4]
    }
    fn read_guest(&mut self, gpa: u64, buf: &mut [u8]) -> bool {
        let Some(at) = span(gpa, buf.len(), self.bytes.len()) else {
            return false;
        };
        buf.copy_from_slice(&self.bytes[at]);
        true
    }
    fn write_guest(&mut self, gpa: u64, bytes: &[u8]) -> bool {
        // Only the ring's consumer index.
        assert_eq!(bytes.len(), 4, "the core writes the consumer index only");
        assert_eq!(gpa as usize % PAGE, shm_ring::OFF_CONSUMER);
        let Some(at) = span(gpa, bytes.len(), self.bytes.len()) else {
            return false;
        };
        self.bytes[at].copy_from_slice(bytes);
        true
    }
    fn guest_line(&mut self, _: &str, _: LineSource, text: &str) {
        self.lines += 1;
        self.longest = self.longest.max(text.len());
    }
}

/// The bytes `gpa..gpa + len` of a memory of `size` bytes, if inside it.
fn span(gpa: u64, len: usize, size: usize) -> Option<std::ops::Range<usize>> {
    let start = usize::try_from(gpa).ok()?;
    let end = start.checked_add(len)?;
    (end <= size).then_some(start..end)
}

#[derive(Default)]
struct Exit(std::collections::BTreeMap<u32, u64>);

impl Vmcs for Exit {
    fn read(&self, field: u32) -> Result<u64, VmFail> {
        Ok(self.0.get(&field).copied().unwrap_or(0))
    }
    fn write(&mut self, field: u32, value: u64) -> Result<(), VmFail> {
        self.0.insert(field, value);
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let (addr, page) = data.split_at(data.len().min(2));
    let mut bytes = page.to_vec();
    bytes.resize(2 * PAGE, 0);
    let mut memory = Memory {
        bytes,
        lines: 0,
        longest: 0,
    };
    let mut vcpu = Vcpu::new("fuzz");
    // Twice: a second flush of the same ring must be as safe as the first.
    for _ in 0..2 {
        vcpu.regs.rax = Call::LogFlush as u64;
        vcpu.regs.rdi = match addr {
            [a, b] => u64::from(u16::from_le_bytes([*a, *b])) % (3 * PAGE as u64),
            _ => 0,
        };
        let mut exit = Exit::default();
        exit.0
            .insert(fields::VM_EXIT_REASON, ExitReason::Vmcall.basic() as u64);
        exit.0.insert(fields::VM_EXIT_INSTRUCTION_LEN, 3);
        let _ = handle_exit(&mut vcpu, &mut exit, &mut memory);
    }
    assert!(memory.lines <= 2 * PAGE / 4);
    assert!(memory.longest <= LOG_FRAME_TOKEN.len() + 16 + 1 + 2 * LOG_FRAME_MAX);
});
