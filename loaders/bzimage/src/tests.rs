//! Host tests: synthetic images for every check, the real Debian kernel
//! the build fetched (`BULKHEAD_TEST_BZIMAGE`), corrupted copies of it, and
//! random images.

use super::*;
use proptest::prelude::*;
use std::path::PathBuf;
use std::vec::Vec;

const MIB: u64 = 1 << 20;
const FILL: u8 = 0xcc;

/// What a synthetic image is made of.
#[derive(Clone, Copy)]
struct Spec {
    setup_sects: u8,
    version: u16,
    loadflags: u8,
    syssize: u32,
    initrd_addr_max: u32,
    kernel_alignment: u32,
    relocatable: bool,
    xloadflags: u16,
    cmdline_size: u32,
    pref_address: u64,
    init_size: u32,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            setup_sects: 4,
            version: 0x020f,
            loadflags: LOADED_HIGH,
            syssize: 0x100, // 4 KiB of kernel
            initrd_addr_max: 0x7fff_ffff,
            kernel_alignment: 2 << 20,
            relocatable: true,
            xloadflags: XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G,
            cmdline_size: 0x7ff,
            pref_address: 16 * MIB,
            init_size: 8 << 20,
        }
    }
}

/// A bzImage with `spec`'s header, the jump at 0x200 ending the header at
/// 0x26c, and kernel bytes counting up.
fn image(spec: Spec) -> Vec<u8> {
    let sects = if spec.setup_sects == 0 {
        4
    } else {
        spec.setup_sects
    };
    let setup_len = (usize::from(sects) + 1) * 512;
    let kernel_len = spec.syssize as usize * 16;
    let mut b = std::vec![0u8; setup_len + kernel_len];
    b[OFF_SETUP_SECTS] = spec.setup_sects;
    b[OFF_SYSSIZE..OFF_SYSSIZE + 4].copy_from_slice(&spec.syssize.to_le_bytes());
    b[OFF_BOOT_FLAG..OFF_BOOT_FLAG + 2].copy_from_slice(&BOOT_FLAG.to_le_bytes());
    b[OFF_JUMP] = 0xeb;
    b[OFF_JUMP + 1] = (0x26c - OFF_MAGIC) as u8;
    b[OFF_MAGIC..OFF_MAGIC + 4].copy_from_slice(b"HdrS");
    b[OFF_VERSION..OFF_VERSION + 2].copy_from_slice(&spec.version.to_le_bytes());
    b[OFF_LOADFLAGS] = spec.loadflags;
    b[OFF_INITRD_ADDR_MAX..OFF_INITRD_ADDR_MAX + 4]
        .copy_from_slice(&spec.initrd_addr_max.to_le_bytes());
    b[OFF_KERNEL_ALIGNMENT..OFF_KERNEL_ALIGNMENT + 4]
        .copy_from_slice(&spec.kernel_alignment.to_le_bytes());
    b[OFF_RELOCATABLE] = u8::from(spec.relocatable);
    b[OFF_MIN_ALIGNMENT] = 21;
    b[OFF_XLOADFLAGS..OFF_XLOADFLAGS + 2].copy_from_slice(&spec.xloadflags.to_le_bytes());
    b[OFF_CMDLINE_SIZE..OFF_CMDLINE_SIZE + 4].copy_from_slice(&spec.cmdline_size.to_le_bytes());
    b[OFF_PREF_ADDRESS..OFF_PREF_ADDRESS + 8].copy_from_slice(&spec.pref_address.to_le_bytes());
    b[OFF_INIT_SIZE..OFF_INIT_SIZE + 4].copy_from_slice(&spec.init_size.to_le_bytes());
    for (i, byte) in b[setup_len..].iter_mut().enumerate() {
        *byte = (i % 251) as u8;
    }
    b
}

fn with(f: impl FnOnce(&mut Spec)) -> Vec<u8> {
    let mut s = Spec::default();
    f(&mut s);
    image(s)
}

#[test]
fn a_good_image_parses_and_reports_its_header() {
    let img = image(Spec::default());
    let bz = BzImage::parse(&img).unwrap();
    let h = bz.header();
    assert_eq!(h.version, 0x020f);
    assert_eq!(h.setup_sects, 4);
    assert_eq!(h.init_size, 8 << 20);
    assert_eq!(h.pref_address, 16 * MIB);
    assert_eq!(bz.kernel().len(), 0x1000);
    assert_eq!(bz.kernel(), &img[2560..]);
    // setup_sects 0 means 4.
    let img = with(|s| s.setup_sects = 0);
    assert_eq!(BzImage::parse(&img).unwrap().header().setup_sects, 4);
}

#[test]
fn every_header_check_has_its_error() {
    let good = image(Spec::default());
    assert_eq!(
        BzImage::parse(&good[..0x200]).err(),
        Some(BzError::Truncated {
            needed: 0x23c,
            len: 0x200
        })
    );
    let mut b = good.clone();
    b[OFF_BOOT_FLAG] = 0;
    assert_eq!(BzImage::parse(&b).err(), Some(BzError::BadBootFlag(0xaa00)));
    let mut b = good.clone();
    b[OFF_MAGIC] = b'X';
    assert!(matches!(BzImage::parse(&b), Err(BzError::BadMagic(_))));
    let b = with(|s| s.version = 0x0205);
    assert_eq!(BzImage::parse(&b).err(), Some(BzError::OldProtocol(0x0205)));
    let b = with(|s| s.loadflags = 0);
    assert_eq!(BzImage::parse(&b).err(), Some(BzError::NotLoadedHigh));
    // The setup sectors announced are not in the file.
    let b = with(|s| s.setup_sects = 200);
    let cut = &b[..3000];
    assert_eq!(
        BzImage::parse(cut).err(),
        Some(BzError::Truncated {
            needed: 201 * 512,
            len: 3000
        })
    );
    // The header's end (the jump) before its fields or past the setup.
    let mut b = good.clone();
    b[OFF_JUMP + 1] = 0x10;
    assert!(matches!(
        BzImage::parse(&b),
        Err(BzError::BadHeaderLength(_))
    ));
    let b = with(|s| s.syssize = 0);
    assert_eq!(BzImage::parse(&b).err(), Some(BzError::NoKernel));
    // syssize says more than the file has.
    let mut b = good.clone();
    b[OFF_SYSSIZE..OFF_SYSSIZE + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        BzImage::parse(&b).err(),
        Some(BzError::Truncated {
            needed: 2560 + u64::from(u32::MAX) * 16,
            len: good.len() as u64
        })
    );
    // Every error reads as a sentence.
    for e in [
        BzError::NoKernel,
        BzError::No64BitEntry,
        BzError::OldProtocol(0x0201),
        BzError::MemoryTooSmall {
            needed: 3 * MIB,
            memory: MIB,
        },
    ] {
        assert!(!std::format!("{e}").is_empty());
    }
}

#[test]
fn the_kernel_goes_to_its_preferred_address_when_it_fits() {
    let img = image(Spec::default());
    let bz = BzImage::parse(&img).unwrap();
    let l = bz.layout(64 * MIB, 0, 10).unwrap();
    assert_eq!(l.kernel, 16 * MIB);
    assert_eq!(l.entry, 16 * MIB + 0x200);
    assert_eq!(l.kernel_end, 24 * MIB);
    assert_eq!((l.initrd, l.initrd_len), (0, 0));
    assert_eq!((l.zero_page, l.cmdline), (ZERO_PAGE, CMDLINE));
}

#[test]
fn a_relocatable_kernel_moves_down_when_memory_is_short() {
    let img = image(Spec::default());
    let bz = BzImage::parse(&img).unwrap();
    // 16 MiB + 8 MiB does not fit 20 MiB; 2 MiB + 8 MiB does.
    let l = bz.layout(20 * MIB, 0, 0).unwrap();
    assert_eq!(l.kernel, 2 * MIB);
    assert_eq!(
        bz.layout(9 * MIB, 0, 0).err(),
        Some(BzError::MemoryTooSmall {
            needed: 10 * MIB,
            memory: 9 * MIB
        })
    );
    // Not relocatable: only the preferred address.
    let img = with(|s| s.relocatable = false);
    let bz = BzImage::parse(&img).unwrap();
    assert_eq!(
        bz.layout(20 * MIB, 0, 0).err(),
        Some(BzError::MemoryTooSmall {
            needed: 24 * MIB,
            memory: 20 * MIB
        })
    );
    // A relocatable kernel with a nonsense alignment.
    let img = with(|s| s.kernel_alignment = 3000);
    let bz = BzImage::parse(&img).unwrap();
    assert_eq!(
        bz.layout(20 * MIB, 0, 0).err(),
        Some(BzError::BadAlignment(3000))
    );
}

#[test]
fn the_initrd_goes_high_but_below_its_limit() {
    let img = image(Spec::default());
    let bz = BzImage::parse(&img).unwrap();
    let l = bz.layout(64 * MIB, 5000, 0).unwrap();
    assert_eq!(l.initrd, 64 * MIB - 8192);
    assert_eq!(l.initrd % 4096, 0);
    assert!(l.initrd + l.initrd_len <= 64 * MIB);
    // Without XLF_CAN_BE_LOADED_ABOVE_4G, initrd_addr_max is the limit.
    let img = with(|s| {
        s.xloadflags = XLF_KERNEL_64;
        s.initrd_addr_max = (32 * MIB - 1) as u32;
    });
    let bz = BzImage::parse(&img).unwrap();
    let l = bz.layout(64 * MIB, MIB, 0).unwrap();
    assert_eq!(l.initrd, 31 * MIB);
    // It must not reach into the kernel's init_size range.
    assert_eq!(
        bz.layout(64 * MIB, 9 * MIB, 0).err(),
        Some(BzError::InitrdTooLarge {
            len: 9 * MIB,
            room: 8 * MIB
        })
    );
    assert!(matches!(
        bz.layout(64 * MIB, u64::MAX, 0),
        Err(BzError::InitrdTooLarge { .. })
    ));
}

#[test]
fn kernels_without_a_64_bit_entry_or_with_bad_sizes_are_refused() {
    let img = with(|s| s.xloadflags = 0);
    let bz = BzImage::parse(&img).unwrap();
    assert_eq!(bz.layout(64 * MIB, 0, 0).err(), Some(BzError::No64BitEntry));
    let img = with(|s| s.version = 0x020b);
    let bz = BzImage::parse(&img).unwrap();
    assert_eq!(bz.header().xloadflags, 0, "a 2.11 header has no xloadflags");
    assert_eq!(bz.layout(64 * MIB, 0, 0).err(), Some(BzError::No64BitEntry));
    let img = with(|s| s.init_size = 100);
    let bz = BzImage::parse(&img).unwrap();
    assert_eq!(
        bz.layout(64 * MIB, 0, 0).err(),
        Some(BzError::BadInitSize(100))
    );
}

#[test]
fn the_command_line_is_bounded_by_the_kernel_and_the_loader() {
    let img = image(Spec::default());
    let bz = BzImage::parse(&img).unwrap();
    assert!(bz.layout(64 * MIB, 0, 0x7ff).is_ok());
    assert_eq!(
        bz.layout(64 * MIB, 0, 0x800).err(),
        Some(BzError::CmdlineTooLong {
            len: 0x800,
            max: 0x7ff
        })
    );
    let img = with(|s| s.cmdline_size = u32::MAX);
    let bz = BzImage::parse(&img).unwrap();
    assert_eq!(
        bz.layout(64 * MIB, 0, CMDLINE_MAX + 1).err(),
        Some(BzError::CmdlineTooLong {
            len: CMDLINE_MAX + 1,
            max: CMDLINE_MAX
        })
    );
}

/// Reads a little-endian u32 of the zero page.
fn zp32(zp: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(zp[off..off + 4].try_into().unwrap())
}

#[test]
fn load_writes_the_kernel_initrd_command_line_and_zero_page_and_nothing_else() {
    let img = image(Spec::default());
    let bz = BzImage::parse(&img).unwrap();
    let initrd: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    let cmdline = b"console=ttyS0 quiet";
    let l = bz
        .layout(32 * MIB, initrd.len() as u64, cmdline.len())
        .unwrap();
    let mut mem = std::vec![FILL; 32 * MIB as usize];
    bz.load(&l, &mut mem, &initrd, cmdline).unwrap();
    let k = l.kernel as usize;
    assert_eq!(&mem[k..k + 0x1000], bz.kernel());
    let i = l.initrd as usize;
    assert_eq!(&mem[i..i + initrd.len()], &initrd[..]);
    let c = CMDLINE as usize;
    assert_eq!(&mem[c..c + cmdline.len()], cmdline);
    assert_eq!(mem[c + cmdline.len()], 0);
    let zp = &mem[ZERO_PAGE as usize..ZERO_PAGE as usize + ZERO_PAGE_LEN];
    assert_eq!(zp[OFF_TYPE_OF_LOADER], 0xff);
    assert_eq!(zp32(zp, OFF_RAMDISK_IMAGE) as u64, l.initrd);
    assert_eq!(zp32(zp, OFF_RAMDISK_SIZE), 5000);
    assert_eq!(zp32(zp, OFF_CMD_LINE_PTR) as u64, CMDLINE);
    assert_eq!(zp32(zp, OFF_EXT_RAMDISK_IMAGE), 0);
    // The setup header is the image's.
    assert_eq!(&zp[OFF_MAGIC..OFF_MAGIC + 4], b"HdrS");
    assert_eq!(zp32(zp, OFF_INIT_SIZE), 8 << 20);
    assert_eq!(zp[OFF_LOADFLAGS], LOADED_HIGH);
    // The e820 map.
    assert_eq!(zp[OFF_E820_ENTRIES], 4);
    let entry = |n: usize| {
        let at = OFF_E820_TABLE + n * 20;
        (
            u64::from_le_bytes(zp[at..at + 8].try_into().unwrap()),
            u64::from_le_bytes(zp[at + 8..at + 16].try_into().unwrap()),
            zp32(zp, at + 16),
        )
    };
    assert_eq!(entry(0), (0, 0x9_fc00, E820_RAM));
    assert_eq!(entry(1), (0x9_fc00, 0x400, E820_RESERVED));
    assert_eq!(entry(2), (0xf_0000, 0x1_0000, E820_RESERVED));
    assert_eq!(entry(3), (MIB, 31 * MIB, E820_RAM));
    // Nothing outside the named ranges was touched.
    let named = [
        (l.kernel, 0x1000),
        (l.initrd, initrd.len() as u64),
        (CMDLINE, cmdline.len() as u64 + 1),
        (ZERO_PAGE, ZERO_PAGE_LEN as u64),
    ];
    for (a, b) in mem.iter().enumerate() {
        let a = a as u64;
        if !named.iter().any(|&(s, n)| a >= s && a < s + n) {
            assert_eq!(*b, FILL, "byte {a:#x} written");
        }
    }
}

#[test]
fn a_load_that_does_not_match_its_layout_writes_nothing() {
    let img = image(Spec::default());
    let bz = BzImage::parse(&img).unwrap();
    let l = bz.layout(32 * MIB, 100, 3).unwrap();
    let mut mem = std::vec![FILL; 32 * MIB as usize];
    // Another initrd length, another command line, short memory.
    assert_eq!(
        bz.load(&l, &mut mem, &[1; 99], b"abc"),
        Err(BzError::LayoutMismatch)
    );
    assert_eq!(
        bz.load(&l, &mut mem, &[1; 100], b"ab"),
        Err(BzError::LayoutMismatch)
    );
    assert_eq!(
        bz.load(&l, &mut mem[..16 * MIB as usize], &[1; 100], b"abc"),
        Err(BzError::LayoutMismatch)
    );
    // A forged layout (the kernel past the memory).
    let forged = Layout {
        kernel: 31 * MIB,
        ..l
    };
    assert_eq!(
        bz.load(&forged, &mut mem, &[1; 100], b"abc"),
        Err(BzError::LayoutMismatch)
    );
    assert!(mem.iter().all(|&b| b == FILL));
}

#[test]
fn small_guests_get_a_short_e820_map() {
    let (map, n) = e820(512 * 1024);
    assert_eq!(n, 1);
    assert_eq!(
        map[0],
        E820Entry {
            addr: 0,
            size: 512 * 1024,
            kind: E820_RAM
        }
    );
    let (map, n) = e820(256 * MIB);
    assert_eq!(n, 4);
    assert_eq!(map[3].addr + map[3].size, 256 * MIB);
}

/// The Debian kernel `cargo xtask test` fetched, if it says where.
fn real_kernel() -> Option<Vec<u8>> {
    let path = PathBuf::from(std::env::var_os("BULKHEAD_TEST_BZIMAGE")?);
    Some(std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())))
}

#[test]
fn the_real_debian_kernel_loads() {
    let Some(img) = real_kernel() else {
        std::println!(
            "the_real_debian_kernel_loads: BULKHEAD_TEST_BZIMAGE unset; run `cargo xtask test`"
        );
        return;
    };
    let bz = BzImage::parse(&img).expect("Debian's bzImage parses");
    let h = *bz.header();
    assert!(h.version >= ENTRY_64_PROTOCOL, "version {:#x}", h.version);
    assert!(h.relocatable);
    assert!(h.init_size as usize >= bz.kernel().len());
    let initrd = std::vec![0x5a; 3 << 20];
    let cmdline = b"console=ttyS0 cryptomgr.notests quiet acpi=off";
    let memory = 256 * MIB;
    let l = bz
        .layout(memory, initrd.len() as u64, cmdline.len())
        .unwrap();
    assert_eq!(l.kernel, h.pref_address);
    assert_eq!(l.kernel % u64::from(h.kernel_alignment), 0);
    assert!(l.initrd >= l.kernel_end);
    let mut mem = std::vec![0u8; memory as usize];
    bz.load(&l, &mut mem, &initrd, cmdline).unwrap();
    let k = l.kernel as usize;
    assert_eq!(&mem[k..k + bz.kernel().len()], bz.kernel());
    // The 64-bit entry is code: `startup_64` of the decompressor.
    assert_ne!(&mem[l.entry as usize..l.entry as usize + 16], &[0; 16]);
    // Too little memory for its init_size.
    assert!(matches!(
        bz.layout(32 * MIB, 0, 0),
        Err(BzError::MemoryTooSmall { .. })
    ));
}

#[test]
fn corrupted_copies_of_the_real_kernel_are_refused_cleanly() {
    let Some(img) = real_kernel() else {
        std::println!("corrupted_copies...: BULKHEAD_TEST_BZIMAGE unset; run `cargo xtask test`");
        return;
    };
    // Truncated at points across the header, the setup and the kernel.
    for cut in [
        0,
        0x1f0,
        0x203,
        0x23b,
        0x260,
        4096,
        img.len() / 2,
        img.len() - 2000,
    ] {
        assert!(
            matches!(BzImage::parse(&img[..cut]), Err(BzError::Truncated { .. })),
            "cut at {cut}"
        );
    }
    let corrupt = |off: usize, bytes: &[u8]| {
        let mut b = img.clone();
        b[off..off + bytes.len()].copy_from_slice(bytes);
        b
    };
    assert!(matches!(
        BzImage::parse(&corrupt(OFF_MAGIC, b"HdrX")),
        Err(BzError::BadMagic(_))
    ));
    assert!(matches!(
        BzImage::parse(&corrupt(OFF_BOOT_FLAG, &[0, 0])),
        Err(BzError::BadBootFlag(0))
    ));
    assert!(matches!(
        BzImage::parse(&corrupt(OFF_SYSSIZE, &u32::MAX.to_le_bytes())),
        Err(BzError::Truncated { .. })
    ));
    assert!(matches!(
        BzImage::parse(&corrupt(OFF_SETUP_SECTS, &[255])),
        Ok(_) | Err(BzError::Truncated { .. })
    ));
    let huge_init = corrupt(OFF_INIT_SIZE, &u32::MAX.to_le_bytes());
    let bz = BzImage::parse(&huge_init).unwrap();
    assert!(matches!(
        bz.layout(256 * MIB, 0, 0),
        Err(BzError::MemoryTooSmall { .. })
    ));
    let huge_pref = corrupt(OFF_PREF_ADDRESS, &u64::MAX.to_le_bytes());
    let bz = BzImage::parse(&huge_pref).unwrap();
    // Relocatable: it goes low instead.
    assert_eq!(bz.layout(256 * MIB, 0, 0).unwrap().kernel, 2 * MIB);
    let small_cmdline = corrupt(OFF_CMDLINE_SIZE, &[4, 0, 0, 0]);
    let bz = BzImage::parse(&small_cmdline).unwrap();
    assert_eq!(
        bz.layout(256 * MIB, 0, 5).err(),
        Some(BzError::CmdlineTooLong { len: 5, max: 4 })
    );
}

#[test]
fn bundles_split_into_their_parts_and_refuse_bad_lengths() {
    let mut b = Bundle::header(3, 5, 2).to_vec();
    b.extend_from_slice(b"abc");
    b.extend_from_slice(b"12345");
    b.extend_from_slice(b"xy");
    let p = Bundle::parse(&b).unwrap();
    assert_eq!(
        (p.cmdline, p.bzimage, p.initrd),
        (&b"abc"[..], &b"12345"[..], &b"xy"[..])
    );
    // No initrd.
    let mut n = Bundle::header(0, 1, 0).to_vec();
    n.push(7);
    assert_eq!(Bundle::parse(&n).unwrap().initrd, &[] as &[u8]);
    assert_eq!(Bundle::parse(b"\x7fELF"), Err(BundleError::NotABundle));
    assert!(!Bundle::is_bundle(b"BKLINUX"));
    // One byte short or long, a header cut, lengths that overflow, the
    // reserved word set.
    assert_eq!(
        Bundle::parse(&b[..b.len() - 1]),
        Err(BundleError::BadLengths)
    );
    let mut long = b.clone();
    long.push(0);
    assert_eq!(Bundle::parse(&long), Err(BundleError::BadLengths));
    assert_eq!(Bundle::parse(&b[..20]), Err(BundleError::BadLengths));
    let mut huge = Bundle::header(0, u64::MAX, 2).to_vec();
    huge.extend_from_slice(&[0; 8]);
    assert_eq!(Bundle::parse(&huge), Err(BundleError::BadLengths));
    let mut reserved = b.clone();
    reserved[12] = 1;
    assert_eq!(Bundle::parse(&reserved), Err(BundleError::BadLengths));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Random changes to the header bytes of a good image: every call
    /// returns, and a load that succeeds writes only inside the memory it
    /// was given and matches its layout.
    #[test]
    fn mutated_headers_never_panic(
        edits in proptest::collection::vec((0x1f0usize..0x270, any::<u8>()), 0..12),
        memory_mib in 1u64..48,
        initrd_len in 0u64..(40 << 20),
        cmdline_len in 0usize..3000,
    ) {
        let mut img = image(Spec::default());
        for (off, v) in edits {
            img[off] = v;
        }
        if let Ok(bz) = BzImage::parse(&img) {
            let memory = memory_mib * MIB;
            if let Ok(l) = bz.layout(memory, initrd_len, cmdline_len) {
                prop_assert!(l.kernel_end <= memory);
                prop_assert!(l.kernel >= HIGH_MEMORY);
                prop_assert!(l.initrd_len == 0 || (l.initrd >= l.kernel_end && l.initrd + l.initrd_len <= memory));
                if memory <= 40 * MIB && initrd_len <= 4 * MIB {
                    let mut mem = std::vec![0u8; memory as usize];
                    let initrd = std::vec![1u8; initrd_len as usize];
                    let cmdline = std::vec![b'a'; cmdline_len];
                    prop_assert_eq!(bz.load(&l, &mut mem, &initrd, &cmdline), Ok(()));
                }
            }
        }
    }

    /// Arbitrary bytes are refused or parsed, never a panic; as a bundle
    /// too (behind a real magic, to get past the first check).
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        if let Ok(bz) = BzImage::parse(&bytes) {
            let _ = bz.layout(64 * MIB, 4096, 10);
        }
        let mut b = BUNDLE_MAGIC.to_vec();
        b.extend_from_slice(&bytes);
        if let Ok(p) = Bundle::parse(&b) {
            prop_assert_eq!(
                BUNDLE_HEADER_LEN + p.cmdline.len() + p.bzimage.len() + p.initrd.len(),
                b.len()
            );
        }
    }
}
