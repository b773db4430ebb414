//! A hostile bzImage (alone, or in a guest bundle): parsing it, laying it
//! out in a small guest and loading it must never panic, and a load that
//! succeeds writes only inside the guest's memory (the guard after it
//! stays intact).
#![no_main]

use bzimage_loader::{Bundle, BzImage};
use libfuzzer_sys::fuzz_target;

const MEMORY: usize = 24 << 20;

fuzz_target!(|data: &[u8]| {
    if Bundle::is_bundle(data) {
        if let Ok(b) = Bundle::parse(data) {
            if let Ok(bz) = BzImage::parse(b.bzimage) {
                if let Ok(layout) = bz.layout(MEMORY as u64, b.initrd.len() as u64, b.cmdline.len()) {
                    let mut mem = vec![0u8; MEMORY];
                    bz.load(&layout, &mut mem, b.initrd, b.cmdline).expect("its own layout loads");
                }
            }
        }
        return;
    }
    // The first bytes choose the initrd and command-line lengths.
    let (knobs, image) = data.split_at(data.len().min(4));
    let mut k = [0u8; 4];
    k[..knobs.len()].copy_from_slice(knobs);
    let initrd_len = usize::from(u16::from_le_bytes([k[0], k[1]])) * 16;
    let cmdline_len = usize::from(u16::from_le_bytes([k[2], k[3]]) & 0xfff);
    let Ok(bz) = BzImage::parse(image) else {
        return;
    };
    let Ok(layout) = bz.layout(MEMORY as u64, initrd_len as u64, cmdline_len) else {
        return;
    };
    let mut mem = vec![0u8; MEMORY + 4096];
    let (guest, guard) = mem.split_at_mut(MEMORY);
    guard.fill(0xa5);
    let initrd = vec![1u8; initrd_len];
    let cmdline = vec![b'x'; cmdline_len];
    bz.load(&layout, guest, &initrd, &cmdline).expect("a load of its own layout succeeds");
    assert!(mem[MEMORY..].iter().all(|&b| b == 0xa5));
});
