//! Tests: a real guest ELF, synthetic valid and hostile images, and property
//! tests over mutated and random inputs.

use super::*;
use proptest::prelude::*;
use std::path::PathBuf;

// ---------------------------------------------------------------------------
// A tiny ELF64 writer (header + program headers), independent of the parser.
// ---------------------------------------------------------------------------

const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;

#[derive(Clone, Copy, Debug)]
struct Phdr {
    p_type: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
}

fn load_seg(flags: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> Phdr {
    Phdr {
        p_type: PT_LOAD,
        flags,
        offset,
        vaddr,
        filesz,
        memsz,
    }
}

/// Writes an ELF64 little-endian x86-64 ET_EXEC header with `phdrs` at
/// offset 64, zero-padded to `len` bytes (at least header + table).
fn write_elf(entry: u64, phdrs: &[Phdr], len: usize) -> Vec<u8> {
    let table_end = 64 + 56 * phdrs.len();
    let mut v = vec![0u8; len.max(table_end)];
    v[..4].copy_from_slice(b"\x7fELF");
    v[4] = 2; // ELFCLASS64
    v[5] = 1; // ELFDATA2LSB
    v[6] = 1; // EV_CURRENT
    put16(&mut v, 16, 2); // ET_EXEC
    put16(&mut v, 18, 62); // EM_X86_64
    put32(&mut v, 20, 1); // e_version
    put64(&mut v, 24, entry);
    put64(&mut v, 32, 64); // e_phoff
    put64(&mut v, 40, 0); // e_shoff
    put16(&mut v, 52, 64); // e_ehsize
    put16(&mut v, 54, 56); // e_phentsize
    put16(&mut v, 56, u16::try_from(phdrs.len()).unwrap());
    put16(&mut v, 58, 64); // e_shentsize
    for (i, p) in phdrs.iter().enumerate() {
        let o = 64 + 56 * i;
        put32(&mut v, o, p.p_type);
        put32(&mut v, o + 4, p.flags);
        put64(&mut v, o + 8, p.offset);
        put64(&mut v, o + 16, p.vaddr);
        put64(&mut v, o + 24, p.vaddr); // p_paddr
        put64(&mut v, o + 32, p.filesz);
        put64(&mut v, o + 40, p.memsz);
        put64(&mut v, o + 48, 0x1000);
    }
    v
}

fn put16(v: &mut [u8], o: usize, x: u16) {
    v[o..o + 2].copy_from_slice(&x.to_le_bytes());
}
fn put32(v: &mut [u8], o: usize, x: u32) {
    v[o..o + 4].copy_from_slice(&x.to_le_bytes());
}
fn put64(v: &mut [u8], o: usize, x: u64) {
    v[o..o + 8].copy_from_slice(&x.to_le_bytes());
}
fn get16(v: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(v[o..o + 2].try_into().unwrap())
}
fn get32(v: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(v[o..o + 4].try_into().unwrap())
}
fn get64(v: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(v[o..o + 8].try_into().unwrap())
}

/// Offset of program header `i`'s field at `field` within the image.
fn ph(i: usize, field: usize) -> usize {
    64 + 56 * i + field
}
const PH_FLAGS: usize = 4;
const PH_OFFSET: usize = 8;
const PH_VADDR: usize = 16;
const PH_FILESZ: usize = 32;
const PH_MEMSZ: usize = 40;

const BASE: u64 = 0x20_0000;
const MEM: usize = 0x1_0000;
const FILL: u8 = 0xAA;

/// The reference valid image, loaded at BASE into MEM bytes:
/// - phdr 0: PT_NOTE (ignored),
/// - phdr 1: code, R+X, file 0x100..0x140 -> BASE+0x1000, no bss,
/// - phdr 2: data, R+W, file 0x140..0x160 -> BASE+0x3000, memsz 0x100 (bss).
///
/// The file ends exactly at the end of the data segment's bytes, so every
/// truncation cuts something the loader needs.
fn valid_image() -> Vec<u8> {
    let phdrs = [
        Phdr {
            p_type: PT_NOTE,
            flags: PF_R,
            offset: 0,
            vaddr: 0,
            filesz: 0,
            memsz: 0,
        },
        load_seg(PF_R | PF_X, 0x100, BASE + 0x1000, 0x40, 0x40),
        load_seg(PF_R | PF_W, 0x140, BASE + 0x3000, 0x20, 0x100),
    ];
    let mut v = write_elf(BASE + 0x1010, &phdrs, 0x160);
    for (i, b) in v[0x100..0x160].iter_mut().enumerate() {
        *b = 0x10 + u8::try_from(i).unwrap();
    }
    v
}

fn fresh_memory() -> Vec<u8> {
    vec![FILL; MEM]
}

/// Loads `image` and asserts it fails with `expected`, leaving memory as it was.
fn assert_rejected(image: &[u8], expected: ElfError) {
    let mut mem = fresh_memory();
    assert_eq!(load(image, &mut mem, BASE), Err(expected));
    assert!(mem.iter().all(|&b| b == FILL), "failed load wrote memory");
    assert_eq!(inspect(image, BASE, MEM as u64), Err(expected));
}

// ---------------------------------------------------------------------------
// (1) The real guest ELF built by the project.
// ---------------------------------------------------------------------------

#[test]
fn real_guest_elf_loads() {
    let path = match std::env::var_os("BULKHEAD_TEST_ELF") {
        Some(p) => PathBuf::from(p),
        None => {
            let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/x86_64-unknown-none/release/first");
            if !p.exists() {
                println!(
                    "real_guest_elf_loads: BULKHEAD_TEST_ELF unset and {} missing; not checked",
                    p.display()
                );
                return;
            }
            p
        }
    };
    let image = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));

    let mut mem = vec![FILL; 4 << 20];
    let loaded = load(&image, &mut mem, 0).expect("real guest ELF must load");
    assert_eq!(loaded.entry, 0x20_0000);
    assert_eq!(inspect(&image, 0, 4 << 20), Ok(loaded));

    // Walk the program headers with the test's own reader and compare.
    let phoff = usize::try_from(get64(&image, 32)).unwrap();
    let phnum = usize::from(get16(&image, 56));
    let mut loads = 0;
    let mut covered = vec![false; mem.len()];
    for i in 0..phnum {
        let o = phoff + 56 * i;
        if get32(&image, o) != PT_LOAD {
            continue;
        }
        loads += 1;
        let off = usize::try_from(get64(&image, o + 8)).unwrap();
        let vaddr = usize::try_from(get64(&image, o + 16)).unwrap();
        let filesz = usize::try_from(get64(&image, o + 32)).unwrap();
        let memsz = usize::try_from(get64(&image, o + 40)).unwrap();
        assert_eq!(
            &mem[vaddr..vaddr + filesz],
            &image[off..off + filesz],
            "segment {i} bytes"
        );
        assert!(
            mem[vaddr + filesz..vaddr + memsz].iter().all(|&b| b == 0),
            "segment {i} bss"
        );
        covered[vaddr..vaddr + memsz]
            .iter_mut()
            .for_each(|c| *c = true);
        let lo = u64::try_from(vaddr).unwrap();
        assert!(loaded.lowest <= lo);
        assert!(u64::try_from(vaddr + memsz).unwrap() <= loaded.highest);
    }
    assert_eq!(loaded.segments, loads);
    assert!(mem.iter().zip(&covered).all(|(&b, &c)| c || b == FILL));
}

// ---------------------------------------------------------------------------
// (2) Synthetic images.
// ---------------------------------------------------------------------------

#[test]
fn valid_image_loads_and_zeroes_bss() {
    let image = valid_image();
    let mut mem = fresh_memory();
    let loaded = load(&image, &mut mem, BASE).unwrap();
    assert_eq!(
        loaded,
        Loaded {
            entry: BASE + 0x1010,
            lowest: BASE + 0x1000,
            highest: BASE + 0x3100,
            segments: 2,
        }
    );
    assert_eq!(inspect(&image, BASE, MEM as u64), Ok(loaded));
    assert_eq!(&mem[0x1000..0x1040], &image[0x100..0x140]);
    assert_eq!(&mem[0x3000..0x3020], &image[0x140..0x160]);
    assert!(mem[0x3020..0x3100].iter().all(|&b| b == 0));
    assert!(mem[..0x1000].iter().all(|&b| b == FILL));
    assert!(mem[0x1040..0x3000].iter().all(|&b| b == FILL));
    assert!(mem[0x3100..].iter().all(|&b| b == FILL));
}

#[test]
fn segment_may_end_exactly_at_window_end() {
    let end = BASE + MEM as u64;
    let image = write_elf(
        end - 0x10,
        &[load_seg(PF_R | PF_X, 0, end - 0x10, 0x10, 0x10)],
        0x100,
    );
    let mut mem = fresh_memory();
    let loaded = load(&image, &mut mem, BASE).unwrap();
    assert_eq!(loaded.highest, end);
    assert_eq!(&mem[MEM - 0x10..], &image[..0x10]);
}

#[test]
fn every_truncation_is_rejected_without_panic_or_write() {
    let image = valid_image();
    for len in 0..image.len() {
        let mut mem = fresh_memory();
        let r = load(&image[..len], &mut mem, BASE);
        assert!(r.is_err(), "truncated to {len} bytes loaded: {r:?}");
        assert!(mem.iter().all(|&b| b == FILL), "truncated to {len}: wrote");
        assert!(inspect(&image[..len], BASE, MEM as u64).is_err());
    }
    assert_rejected(&[], ElfError::Truncated);
    assert_rejected(&image[..63], ElfError::Truncated);
    assert_rejected(&image[..64 + 56], ElfError::ProgramHeadersOutsideFile);
    assert_rejected(&image[..0x15f], ElfError::SegmentOutsideFile { index: 2 });
}

#[test]
fn bad_identification_and_header_fields() {
    let good = valid_image();
    let with = |o: usize, b: u8| {
        let mut v = good.clone();
        v[o] = b;
        v
    };
    assert_rejected(&with(0, 0x7e), ElfError::BadMagic);
    assert_rejected(&with(3, b'G'), ElfError::BadMagic);
    assert_rejected(&with(4, 1), ElfError::NotElf64); // ELFCLASS32
    assert_rejected(&with(4, 7), ElfError::NotElf64);
    assert_rejected(&with(5, 2), ElfError::NotLittleEndian); // ELFDATA2MSB
    assert_rejected(&with(5, 0), ElfError::NotLittleEndian);
    assert_rejected(&with(6, 2), ElfError::UnsupportedVersion(2));

    let mut v = good.clone();
    put32(&mut v, 20, 0);
    assert_rejected(&v, ElfError::UnsupportedVersion(0));

    let mut v = good.clone();
    put16(&mut v, 18, 3); // EM_386
    assert_rejected(&v, ElfError::WrongMachine(3));

    let mut v = good.clone();
    put16(&mut v, 16, 3); // ET_DYN
    assert_rejected(&v, ElfError::NotExecutable(3));

    let mut v = good.clone();
    put16(&mut v, 54, 32);
    assert_rejected(&v, ElfError::BadProgramHeaderSize(32));

    let mut v = good.clone();
    put64(&mut v, 32, u64::MAX - 10); // e_phoff
    assert_rejected(&v, ElfError::ProgramHeadersOutsideFile);

    let mut v = good.clone();
    put16(&mut v, 56, 0xffff); // e_phnum = PN_XNUM
    assert_rejected(&v, ElfError::ProgramHeadersOutsideFile);

    let mut v = good.clone();
    put16(&mut v, 56, 0);
    assert_rejected(&v, ElfError::NoLoadableSegments);

    let mut v = good;
    put64(&mut v, 32, 0);
    assert_rejected(&v, ElfError::NoLoadableSegments);
}

#[test]
fn no_load_segments() {
    let mut v = valid_image();
    put32(&mut v, ph(1, 0), PT_NOTE);
    put32(&mut v, ph(2, 0), 6); // PT_PHDR
    assert_rejected(&v, ElfError::NoLoadableSegments);
}

#[test]
fn segment_beyond_memory() {
    let mut v = valid_image();
    put64(&mut v, ph(2, PH_VADDR), BASE + MEM as u64 - 0xff);
    assert_rejected(
        &v,
        ElfError::SegmentOutsideMemory {
            index: 2,
            vaddr: BASE + MEM as u64 - 0xff,
            memsz: 0x100,
        },
    );
    // Below the window.
    let mut v = valid_image();
    put64(&mut v, ph(2, PH_VADDR), BASE - 0x10);
    assert_rejected(
        &v,
        ElfError::SegmentOutsideMemory {
            index: 2,
            vaddr: BASE - 0x10,
            memsz: 0x100,
        },
    );
}

#[test]
fn vaddr_plus_memsz_overflows() {
    let mut v = valid_image();
    put64(&mut v, ph(2, PH_VADDR), u64::MAX - 0x10);
    assert_rejected(
        &v,
        ElfError::SegmentOutsideMemory {
            index: 2,
            vaddr: u64::MAX - 0x10,
            memsz: 0x100,
        },
    );
    // Even with a window reaching the top of the address space.
    let image = write_elf(
        u64::MAX - 0x10,
        &[load_seg(PF_R | PF_X, 0, u64::MAX - 0x10, 0x10, 0x20)],
        0x100,
    );
    let err = inspect(&image, u64::MAX - 0x1000, 0x2000).unwrap_err();
    assert_eq!(
        err,
        ElfError::SegmentOutsideMemory {
            index: 0,
            vaddr: u64::MAX - 0x10,
            memsz: 0x20
        }
    );
}

#[test]
fn file_range_beyond_image() {
    let mut v = valid_image();
    put64(&mut v, ph(1, PH_OFFSET), 0x150);
    assert_rejected(&v, ElfError::SegmentOutsideFile { index: 1 });

    let mut v = valid_image();
    put64(&mut v, ph(1, PH_OFFSET), u64::MAX - 8); // offset + filesz overflows
    assert_rejected(&v, ElfError::SegmentOutsideFile { index: 1 });
}

#[test]
fn filesz_exceeds_memsz() {
    let mut v = valid_image();
    put64(&mut v, ph(1, PH_FILESZ), 0x41);
    assert_rejected(&v, ElfError::FileSizeExceedsMemorySize { index: 1 });
}

#[test]
fn overlapping_segments() {
    let mut v = valid_image();
    // Data segment starts in the last byte of the code segment.
    put64(&mut v, ph(2, PH_VADDR), BASE + 0x103f);
    assert_rejected(
        &v,
        ElfError::OverlappingSegments {
            first: 1,
            second: 2,
        },
    );

    // Data segment entirely contains the code segment.
    let mut v = valid_image();
    put64(&mut v, ph(2, PH_VADDR), BASE + 0x800);
    put64(&mut v, ph(2, PH_MEMSZ), 0x2000);
    assert_rejected(
        &v,
        ElfError::OverlappingSegments {
            first: 1,
            second: 2,
        },
    );

    // Adjacent is fine.
    let mut v = valid_image();
    put64(&mut v, ph(2, PH_VADDR), BASE + 0x1040);
    let mut mem = fresh_memory();
    assert!(load(&v, &mut mem, BASE).is_ok());

    // Shared file bytes are fine: only memory overlap matters.
    let mut v = valid_image();
    put64(&mut v, ph(2, PH_OFFSET), 0x100);
    assert!(load(&v, &mut fresh_memory(), BASE).is_ok());
}

#[test]
fn entry_outside_executable_segment() {
    // In the data segment (not executable).
    let mut v = valid_image();
    put64(&mut v, 24, BASE + 0x3000);
    assert_rejected(
        &v,
        ElfError::EntryOutsideCode {
            entry: BASE + 0x3000,
        },
    );

    // One past the end of the code segment.
    let mut v = valid_image();
    put64(&mut v, 24, BASE + 0x1040);
    assert_rejected(
        &v,
        ElfError::EntryOutsideCode {
            entry: BASE + 0x1040,
        },
    );

    // In no segment at all.
    let mut v = valid_image();
    put64(&mut v, 24, 0);
    assert_rejected(&v, ElfError::EntryOutsideCode { entry: 0 });

    // Code segment loses its execute flag.
    let mut v = valid_image();
    put32(&mut v, ph(1, PH_FLAGS), PF_R);
    assert_rejected(
        &v,
        ElfError::EntryOutsideCode {
            entry: BASE + 0x1010,
        },
    );
}

fn many_segments(n: usize) -> Vec<u8> {
    let phdrs: Vec<Phdr> = (0..n)
        .map(|i| {
            let i = u64::try_from(i).unwrap();
            load_seg(PF_R | PF_X, 0x800, BASE + 0x100 * i, 0x10, 0x80)
        })
        .collect();
    write_elf(BASE, &phdrs, 0x810)
}

#[test]
fn sixteen_segments_load_seventeen_do_not() {
    let mut mem = fresh_memory();
    let loaded = load(&many_segments(16), &mut mem, BASE).unwrap();
    assert_eq!(loaded.segments, 16);
    assert_eq!(loaded.highest, BASE + 0xf80);
    assert_rejected(&many_segments(17), ElfError::TooManySegments);
}

#[test]
fn huge_memsz() {
    for memsz in [u64::MAX, u64::MAX - 0x1000, 1 << 40, MEM as u64 + 1] {
        let mut v = valid_image();
        put64(&mut v, ph(2, PH_MEMSZ), memsz);
        assert_rejected(
            &v,
            ElfError::SegmentOutsideMemory {
                index: 2,
                vaddr: BASE + 0x3000,
                memsz,
            },
        );
    }
    // Huge filesz and memsz together: the file check fires first.
    let mut v = valid_image();
    put64(&mut v, ph(2, PH_MEMSZ), u64::MAX);
    put64(&mut v, ph(2, PH_FILESZ), u64::MAX);
    assert_rejected(&v, ElfError::SegmentOutsideFile { index: 2 });
}

#[test]
fn empty_segment_does_not_count_for_bounds() {
    let mut v = valid_image();
    put32(&mut v, ph(0, 0), PT_LOAD); // the empty PT_NOTE becomes PT_LOAD at vaddr 0
                                      // vaddr 0 is below the window: rejected even though empty.
    assert!(matches!(
        inspect(&v, BASE, MEM as u64),
        Err(ElfError::SegmentOutsideMemory { index: 0, .. })
    ));
    put64(&mut v, ph(0, PH_VADDR), BASE + 0x1020); // inside the code segment, empty
    let loaded = inspect(&v, BASE, MEM as u64).unwrap();
    assert_eq!(loaded.segments, 3);
    assert_eq!(loaded.lowest, BASE + 0x1000);
}

#[test]
fn errors_display() {
    let all = [
        ElfError::Truncated,
        ElfError::BadMagic,
        ElfError::NotElf64,
        ElfError::NotLittleEndian,
        ElfError::UnsupportedVersion(2),
        ElfError::WrongMachine(3),
        ElfError::NotExecutable(3),
        ElfError::BadProgramHeaderSize(1),
        ElfError::ProgramHeadersOutsideFile,
        ElfError::NoLoadableSegments,
        ElfError::TooManySegments,
        ElfError::SegmentOutsideFile { index: 1 },
        ElfError::SegmentOutsideMemory {
            index: 1,
            vaddr: 2,
            memsz: 3,
        },
        ElfError::FileSizeExceedsMemorySize { index: 1 },
        ElfError::OverlappingSegments {
            first: 1,
            second: 2,
        },
        ElfError::EntryOutsideCode { entry: 0x10 },
        ElfError::Parse("thing"),
    ];
    for e in all {
        assert!(!format!("{e}").is_empty());
    }
    assert_eq!(
        format!("{}", ElfError::EntryOutsideCode { entry: 0x10 }),
        "entry point 0x10 is not inside an executable segment"
    );
}

// ---------------------------------------------------------------------------
// (3) Property tests.
// ---------------------------------------------------------------------------

/// Loads `image` into a filled buffer and checks the loader's promises:
/// on error nothing changed; on success nothing outside [lowest, highest)
/// changed and `inspect` agrees.
fn check_contained(image: &[u8]) -> Result<(), TestCaseError> {
    let mut mem = fresh_memory();
    let result = load(image, &mut mem, BASE);
    prop_assert_eq!(result, inspect(image, BASE, MEM as u64));
    match result {
        Err(_) => prop_assert!(mem.iter().all(|&b| b == FILL)),
        Ok(l) => {
            prop_assert!(l.lowest >= BASE && l.lowest <= l.highest);
            prop_assert!(l.highest <= BASE + MEM as u64);
            let lo = usize::try_from(l.lowest - BASE).unwrap();
            let hi = usize::try_from(l.highest - BASE).unwrap();
            prop_assert!(mem[..lo].iter().all(|&b| b == FILL));
            prop_assert!(mem[hi..].iter().all(|&b| b == FILL));
            prop_assert!(l.segments >= 1 && l.segments <= MAX_LOAD_SEGMENTS);
        }
    }
    Ok(())
}

/// A program header with fields drawn near interesting boundaries.
fn arb_phdr() -> impl Strategy<Value = Phdr> {
    let size = prop_oneof![0u64..0x400, Just(u64::MAX), any::<u64>()];
    let addr = prop_oneof![
        (0u64..MEM as u64 + 0x100).prop_map(|o| BASE + o),
        any::<u64>()
    ];
    (
        prop_oneof![Just(PT_LOAD), Just(PT_LOAD), any::<u32>()],
        0u32..8,
        prop_oneof![0u64..0x500, any::<u64>()],
        addr,
        size.clone(),
        size,
    )
        .prop_map(|(p_type, flags, offset, vaddr, filesz, memsz)| Phdr {
            p_type,
            flags,
            offset,
            vaddr,
            filesz,
            memsz,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn mutated_valid_image(muts in proptest::collection::vec((0usize..0x160, any::<u8>()), 1..8)) {
        let mut image = valid_image();
        for (i, b) in muts {
            image[i] = b;
        }
        check_contained(&image)?;
    }

    #[test]
    fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_contained(&bytes)?;
    }

    #[test]
    fn random_header_prefix(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
        // A valid identification followed by random bytes reaches deeper checks.
        let mut image = valid_image()[..16].to_vec();
        image.extend_from_slice(&tail);
        check_contained(&image)?;
    }

    #[test]
    fn random_program_headers(
        phdrs in proptest::collection::vec(arb_phdr(), 0..20),
        entry in prop_oneof![(0u64..MEM as u64).prop_map(|o| BASE + o), any::<u64>()],
        len in 0usize..0x600,
    ) {
        let mut image = write_elf(entry, &phdrs, len);
        for (i, b) in image.iter_mut().enumerate().skip(64 + 56 * phdrs.len()) {
            *b = u8::try_from(i % 251).unwrap() | 1;
        }
        check_contained(&image)?;
    }
}

#[test]
fn flags_constants_match_abi() {
    assert_eq!(PF_X, abi::PF_X);
    assert_eq!(PF_W, abi::PF_W);
    assert_eq!(PT_LOAD, abi::PT_LOAD);
}
