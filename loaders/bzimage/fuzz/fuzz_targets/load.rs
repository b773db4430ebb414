//! A hostile bzImage (alone, or in a guest bundle): parsing it, laying it
//! out in a small guest and loading it must never panic, and a load that
//! succeeds writes only inside the guest's memory (the guard after it
//! stays intact). Inputs are whole images, or (bit 15 of the second knob
//! set) only a setup header that the harness wraps in a signed image of
//! the length it claims: random bytes alone almost never pass the
//! signature checks.
#![no_main]

use bzimage_loader::{Bundle, BzImage};
use libfuzzer_sys::fuzz_target;

const MEMORY: usize = 24 << 20;

fuzz_target!(|data: &[u8]| {
    if Bundle::is_bundle(data) {
        if let Ok(b) = Bundle::parse(data) {
            if let Ok(bz) = BzImage::parse(b.bzimage) {
                if let Ok(layout) = bz.layout(MEMORY as u64, b.initrd.len() as u64, b.cmdline.len())
                {
                    let mut mem = vec![0u8; MEMORY];
                    bz.load(&layout, &mut mem, b.initrd, b.cmdline)
                        .expect("its own layout loads");
                }
            }
        }
        return;
    }
    // The first bytes choose the initrd and command-line lengths, and
    // whether the rest is the image or only its setup header.
    let (knobs, rest) = data.split_at(data.len().min(4));
    let mut k = [0u8; 4];
    k[..knobs.len()].copy_from_slice(knobs);
    let initrd_len = usize::from(u16::from_le_bytes([k[0], k[1]])) * 16;
    let high = u16::from_le_bytes([k[2], k[3]]);
    let cmdline_len = usize::from(high & 0xfff);
    let built;
    let image = if high & 0x8000 != 0 {
        built = from_header(rest);
        &built[..]
    } else {
        rest
    };
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
    bz.load(&layout, guest, &initrd, &cmdline)
        .expect("a load of its own layout succeeds");
    assert!(mem[MEMORY..].iter().all(|&b| b == 0xa5));
});

/// An image around `header`, the bytes of the setup header from its first
/// field (0x1f1) on: the boot flag and the `HdrS` magic set, the kernel
/// (at most 64 KiB of it) as long as the header says, so that most inputs
/// get past the signature and length checks a random image fails, and
/// the fuzzer works on the fields that decide the layout and the load.
fn from_header(header: &[u8]) -> Vec<u8> {
    const FIRST: usize = 0x1f1;
    let field = |off: usize| header.get(off - FIRST).copied().unwrap_or(0);
    let sects = match field(0x1f1) {
        0 => 4,
        n => usize::from(n),
    };
    let setup_len = (sects + 1) * 512;
    let syssize =
        u32::from_le_bytes([field(0x1f4), field(0x1f5), field(0x1f6), field(0x1f7)]) & 0xfff;
    let mut image = vec![0u8; setup_len + syssize as usize * 16];
    let n = header.len().min(setup_len - FIRST);
    image[FIRST..FIRST + n].copy_from_slice(&header[..n]);
    image[0x1f4..0x1f8].copy_from_slice(&syssize.to_le_bytes());
    image[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
    image[0x202..0x206].copy_from_slice(b"HdrS");
    image
}
