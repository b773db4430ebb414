//! Fuzz target: `elf_loader::load` on arbitrary bytes never panics, agrees
//! with `inspect`, and never writes outside the reported segment span.
//!
//! Inputs whose first byte is odd are not images but the makings of one:
//! the harness writes a well-formed ELF64 x86-64 executable header and
//! places the rest after it as the program headers and the file body,
//! with every address field taken relative to the guest's base. Random
//! bytes alone almost never pass the identification checks, and so never
//! reach the segment checks that decide what is written where.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;

const BASE: u64 = 0x20_0000;
const MEM: usize = 1 << 20;
const FILL: u8 = 0xA5;

thread_local! {
    // One guest memory for every input, and what it holds between them.
    // Allocating, filling and scanning a fresh MiB per input held the
    // fuzzer to a few hundred inputs a second under its sanitizer; the
    // comparisons below are `memcmp`s, and only the span a load reported
    // is refilled.
    static MEMORY: RefCell<Vec<u8>> = RefCell::new(vec![FILL; MEM]);
    static PRISTINE: Vec<u8> = vec![FILL; MEM];
}

fuzz_target!(|data: &[u8]| {
    let built;
    let image = match data.split_first() {
        Some((mode, rest)) if mode & 1 == 1 => {
            built = assemble(rest);
            &built[..]
        }
        _ => data,
    };
    MEMORY.with(|memory| {
        PRISTINE.with(|pristine| {
            let memory = &mut memory.borrow_mut()[..];
            let result = elf_loader::load(image, memory, BASE);
            assert_eq!(result, elf_loader::inspect(image, BASE, MEM as u64));
            let (lo, hi) = match result {
                Ok(l) => (
                    usize::try_from(l.lowest - BASE).unwrap(),
                    usize::try_from(l.highest - BASE).unwrap(),
                ),
                Err(_) => (MEM, MEM),
            };
            assert!(memory[..lo] == pristine[..lo], "a write below the span");
            assert!(memory[hi..] == pristine[hi..], "a write above the span");
            memory[lo..hi].copy_from_slice(&pristine[lo..hi]);
        })
    })
});

/// Size of the ELF64 file header and of one program header.
const EHDR: usize = 64;
const PHDR: usize = 56;

/// An executable from `parts`: byte 0 the number of program headers, bytes
/// 1..9 the entry point's offset from [`BASE`], the rest the file from the
/// end of the header on (program headers first). Each program header's
/// `p_vaddr` is read as an offset from [`BASE`] too (wrapping, so that
/// every address stays reachable).
fn assemble(parts: &[u8]) -> Vec<u8> {
    let byte = |i: usize| parts.get(i).copied().unwrap_or(0);
    let phnum = u16::from(byte(0));
    let mut entry = [0u8; 8];
    for (i, b) in entry.iter_mut().enumerate() {
        *b = byte(1 + i);
    }
    let entry = BASE.wrapping_add(u64::from_le_bytes(entry));
    let body = parts.get(9..).unwrap_or(&[]);

    let mut image = Vec::with_capacity(EHDR + body.len());
    image.extend_from_slice(b"\x7fELF");
    image.extend_from_slice(&[2, 1, 1, 0]); // 64-bit, little-endian, version 1, System V
    image.extend_from_slice(&[0; 8]);
    image.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    image.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    image.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    image.extend_from_slice(&entry.to_le_bytes());
    image.extend_from_slice(&(EHDR as u64).to_le_bytes()); // e_phoff
    image.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    image.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    image.extend_from_slice(&(EHDR as u16).to_le_bytes());
    image.extend_from_slice(&(PHDR as u16).to_le_bytes());
    image.extend_from_slice(&phnum.to_le_bytes());
    image.extend_from_slice(&[0; 6]); // no section headers
    debug_assert_eq!(image.len(), EHDR);
    image.extend_from_slice(body);

    for i in 0..usize::from(phnum) {
        let at = EHDR + i * PHDR + 16;
        if let Some(field) = image.get_mut(at..at + 8) {
            let raw = u64::from_le_bytes(field.try_into().unwrap());
            field.copy_from_slice(&BASE.wrapping_add(raw).to_le_bytes());
        }
    }
    image
}
