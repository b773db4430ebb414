//! Fuzz target: `elf_loader::load` on arbitrary bytes never panics, agrees
//! with `inspect`, and never writes outside the reported segment span.

#![no_main]

use libfuzzer_sys::fuzz_target;

const BASE: u64 = 0x20_0000;
const MEM: usize = 1 << 20;
const FILL: u8 = 0xA5;

fuzz_target!(|data: &[u8]| {
    let mut memory = vec![FILL; MEM];
    let result = elf_loader::load(data, &mut memory, BASE);
    assert_eq!(result, elf_loader::inspect(data, BASE, MEM as u64));
    let (lo, hi) = match result {
        Ok(l) => (
            usize::try_from(l.lowest - BASE).unwrap(),
            usize::try_from(l.highest - BASE).unwrap(),
        ),
        Err(_) => (MEM, MEM),
    };
    assert!(memory[..lo].iter().all(|&b| b == FILL));
    assert!(memory[hi..].iter().all(|&b| b == FILL));
});
