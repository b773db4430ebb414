//! Linux x86 boot-protocol loader for Bulkhead guests.
//!
//! This crate owns one job: turning an untrusted Linux `bzImage`, an initrd
//! and a command line into a guest's initial memory and the state of its
//! first instruction, following the x86 boot protocol's 64-bit entry (the
//! setup header in the image, `boot_params` — the "zero page" — built by the
//! loader, the kernel entered in long mode at its load address + 0x200 with
//! RSI pointing at the zero page).
//!
//! [`BzImage::parse`] validates the setup header: the boot flag, the `HdrS`
//! magic, a protocol version of at least [`MIN_PROTOCOL`], a kernel that
//! loads high, the setup and protected-mode sizes against the file. Then
//! [`BzImage::layout`] places everything in a guest of a given memory size
//! without touching memory: the kernel at its preferred address (or, if it
//! is relocatable and that does not fit, at the lowest aligned address that
//! does) with room for its `init_size`, the initrd as high as
//! `initrd_addr_max` and the memory allow, the zero page and the command
//! line at fixed low addresses ([`ZERO_PAGE`], [`CMDLINE`]). [`BzImage::load`]
//! checks the layout against the memory it is given and only then writes
//! the kernel, the initrd, the command line and the zero page (with the
//! [`e820`] map of the guest's memory), so a failed load writes nothing.
//!
//! The image is hostile input: every size and offset read from it is
//! checked before use with checked arithmetic, every slice access is
//! bounds-checked, and a malformed image is a [`BzError`], never a panic.
//! The crate never allocates and has no unsafe code.
//!
//! What the caller (the domain manager) still does: map the memory, give
//! the guest page tables that identity-map at least the kernel's
//! `init_size` range, the zero page and the command line, and a GDT whose
//! selector 0x10 is a flat 64-bit code segment and 0x18 a flat data
//! segment ([`BOOT_CS`], [`BOOT_DS`]), and start the vCPU at
//! [`Layout::entry`] with RSI = [`ZERO_PAGE`] and interrupts disabled.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use core::fmt;

/// Oldest boot-protocol version accepted by [`BzImage::parse`] (2.06: the
/// header carries `cmdline_size`).
pub const MIN_PROTOCOL: u16 = 0x0206;
/// Oldest version with a 64-bit entry point (`xloadflags`), which
/// [`BzImage::layout`] needs: Bulkhead starts guests in long mode.
pub const ENTRY_64_PROTOCOL: u16 = 0x020c;
/// Guest-physical address of the zero page (`boot_params`).
pub const ZERO_PAGE: u64 = 0x7000;
/// Guest-physical address of the command line.
pub const CMDLINE: u64 = 0x8000;
/// Longest command line [`BzImage::layout`] accepts, without its NUL
/// (it must also fit the kernel's own `cmdline_size`).
pub const CMDLINE_MAX: usize = 0x7fff;
/// Lowest address the kernel or the initrd may occupy: the first MiB holds
/// the core's page tables and GDT, the zero page, the command line and
/// the legacy areas the e820 map reserves.
pub const HIGH_MEMORY: u64 = 0x10_0000;
/// Code selector the 64-bit entry expects (a flat 64-bit code segment).
pub const BOOT_CS: u16 = 0x10;
/// Data selector the 64-bit entry expects (a flat data segment).
pub const BOOT_DS: u16 = 0x18;
/// Offset of the 64-bit entry from the kernel's load address.
pub const ENTRY_64_OFFSET: u64 = 0x200;
/// Size of the zero page.
pub const ZERO_PAGE_LEN: usize = 4096;

// Setup header fields: offsets in the image, the same in the zero page.
const OFF_SETUP_SECTS: usize = 0x1f1;
const OFF_SYSSIZE: usize = 0x1f4;
const OFF_BOOT_FLAG: usize = 0x1fe;
const OFF_JUMP: usize = 0x200;
const OFF_MAGIC: usize = 0x202;
const OFF_VERSION: usize = 0x206;
const OFF_TYPE_OF_LOADER: usize = 0x210;
const OFF_LOADFLAGS: usize = 0x211;
const OFF_RAMDISK_IMAGE: usize = 0x218;
const OFF_RAMDISK_SIZE: usize = 0x21c;
const OFF_CMD_LINE_PTR: usize = 0x228;
const OFF_INITRD_ADDR_MAX: usize = 0x22c;
const OFF_KERNEL_ALIGNMENT: usize = 0x230;
const OFF_RELOCATABLE: usize = 0x234;
const OFF_MIN_ALIGNMENT: usize = 0x235;
const OFF_XLOADFLAGS: usize = 0x236;
const OFF_CMDLINE_SIZE: usize = 0x238;
const OFF_PREF_ADDRESS: usize = 0x258;
const OFF_INIT_SIZE: usize = 0x260;
/// The setup header in the zero page ends here (the fields after it).
const ZERO_PAGE_HEADER_END: usize = 0x290;
// Zero-page fields outside the setup header.
const OFF_EXT_RAMDISK_IMAGE: usize = 0x0c0;
const OFF_EXT_RAMDISK_SIZE: usize = 0x0c4;
const OFF_EXT_CMD_LINE_PTR: usize = 0x0c8;
const OFF_E820_ENTRIES: usize = 0x1e8;
const OFF_E820_TABLE: usize = 0x2d0;
/// Entries the zero page's e820 table holds.
const E820_MAX: usize = 128;

/// "HdrS" as a little-endian u32.
const HDRS: u32 = u32::from_le_bytes(*b"HdrS");
const BOOT_FLAG: u16 = 0xaa55;
/// `loadflags` bit 0: the protected-mode code loads at 0x100000 or above.
const LOADED_HIGH: u8 = 1;
/// `xloadflags` bit 0: the kernel has the 64-bit entry at +0x200.
const XLF_KERNEL_64: u16 = 1;
/// `xloadflags` bit 1: the kernel and its initrd may be above 4 GiB.
const XLF_CAN_BE_LOADED_ABOVE_4G: u16 = 1 << 1;
/// `type_of_loader` for a boot loader without an assigned id.
const LOADER_UNDEFINED: u8 = 0xff;
const PAGE: u64 = 4096;

/// e820 memory types.
pub const E820_RAM: u32 = 1;
/// Reserved (the legacy areas below 1 MiB).
pub const E820_RESERVED: u32 = 2;

/// Why an image, an initrd or a command line was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BzError {
    /// The image is too short to hold what its header describes (the setup
    /// header itself, the setup sectors, or the protected-mode kernel
    /// `syssize` announces).
    Truncated {
        /// Bytes the header needs.
        needed: u64,
        /// Bytes in the image.
        len: u64,
    },
    /// No 0xAA55 boot flag at 0x1fe.
    BadBootFlag(u16),
    /// No `HdrS` magic at 0x202 (not a bzImage, or protocol < 2.00).
    BadMagic(u32),
    /// Boot-protocol version older than [`MIN_PROTOCOL`].
    OldProtocol(u16),
    /// The kernel does not load high (a zImage).
    NotLoadedHigh,
    /// The header ends beyond the setup sectors, or before its own
    /// version's fields.
    BadHeaderLength(usize),
    /// `syssize` is 0: no protected-mode kernel.
    NoKernel,
    /// No 64-bit entry point (protocol < 2.12, or `xloadflags` bit 0
    /// clear).
    No64BitEntry,
    /// A relocatable kernel's alignment is not a power of two of at least
    /// 4 KiB.
    BadAlignment(u32),
    /// `init_size` is smaller than the kernel it has to hold.
    BadInitSize(u32),
    /// The command line is longer than the kernel's `cmdline_size` or
    /// [`CMDLINE_MAX`].
    CmdlineTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The guest's memory cannot hold the kernel and its `init_size`.
    MemoryTooSmall {
        /// Bytes needed (load address + `init_size`).
        needed: u64,
        /// The guest's memory.
        memory: u64,
    },
    /// The initrd does not fit between the kernel and the highest address
    /// the kernel accepts for it (`initrd_addr_max`, the memory's end).
    InitrdTooLarge {
        /// Its length.
        len: u64,
        /// Room there is for it.
        room: u64,
    },
    /// The memory given to [`BzImage::load`] is shorter than the layout's
    /// guest memory, or the initrd or command line differ from the ones
    /// the layout was made for.
    LayoutMismatch,
}

impl fmt::Display for BzError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated { needed, len } => {
                write!(
                    f,
                    "image is truncated: its header needs {needed} bytes, it has {len}"
                )
            }
            Self::BadBootFlag(v) => {
                write!(f, "boot flag is {v:#06x}, not 0xaa55: not a Linux kernel")
            }
            Self::BadMagic(v) => {
                write!(
                    f,
                    "setup header magic is {v:#010x}, not \"HdrS\": not a bzImage"
                )
            }
            Self::OldProtocol(v) => write!(
                f,
                "boot protocol {}.{:02} is older than {}.{:02}",
                v >> 8,
                v & 0xff,
                MIN_PROTOCOL >> 8,
                MIN_PROTOCOL & 0xff
            ),
            Self::NotLoadedHigh => f.write_str("kernel does not load high (a zImage)"),
            Self::BadHeaderLength(n) => write!(f, "setup header length {n} is out of range"),
            Self::NoKernel => f.write_str("syssize is 0: no protected-mode kernel"),
            Self::No64BitEntry => f.write_str(
                "kernel has no 64-bit entry point (needs boot protocol 2.12, XLF_KERNEL_64)",
            ),
            Self::BadAlignment(a) => {
                write!(
                    f,
                    "kernel alignment {a:#x} is not a power of two of at least 4 KiB"
                )
            }
            Self::BadInitSize(s) => write!(f, "init_size {s:#x} is smaller than the kernel"),
            Self::CmdlineTooLong { len, max } => {
                write!(f, "command line of {len} bytes is longer than {max}")
            }
            Self::MemoryTooSmall { needed, memory } => write!(
                f,
                "the kernel needs {} KiB of guest memory, the guest has {} KiB",
                needed.div_ceil(1024),
                memory / 1024
            ),
            Self::InitrdTooLarge { len, room } => {
                write!(
                    f,
                    "initrd of {len} bytes does not fit ({room} bytes of room above the kernel)"
                )
            }
            Self::LayoutMismatch => {
                f.write_str("memory, initrd or command line do not match the layout")
            }
        }
    }
}

/// The setup-header fields the loader uses, as read from the image.
/// Fields newer than the image's protocol version read as 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetupHeader {
    /// 512-byte setup sectors after the boot sector (0 reads as 4).
    pub setup_sects: u8,
    /// Size of the protected-mode kernel in 16-byte units.
    pub syssize: u32,
    /// Boot-protocol version (major << 8 | minor).
    pub version: u16,
    /// `loadflags`.
    pub loadflags: u8,
    /// Highest address the initrd may end at (inclusive).
    pub initrd_addr_max: u32,
    /// Alignment a relocatable kernel must be loaded at.
    pub kernel_alignment: u32,
    /// Whether the kernel may be loaded away from `pref_address`.
    pub relocatable: bool,
    /// log2 of the smallest alignment a relocatable kernel accepts.
    pub min_alignment: u8,
    /// `xloadflags`.
    pub xloadflags: u16,
    /// Longest command line, without its NUL.
    pub cmdline_size: u32,
    /// Preferred load address.
    pub pref_address: u64,
    /// Bytes the kernel needs from its load address to decompress and run
    /// its early code.
    pub init_size: u32,
}

/// A validated bzImage.
#[derive(Clone, Copy, Debug)]
pub struct BzImage<'a> {
    image: &'a [u8],
    header: SetupHeader,
    /// Offset one past the setup header in the image.
    header_end: usize,
    /// Bytes of the real-mode part (boot sector and setup sectors).
    setup_len: usize,
    /// Bytes of the protected-mode kernel (`syssize` * 16).
    kernel_len: usize,
}

/// Where [`BzImage::layout`] put everything (guest-physical addresses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The guest's memory size the layout was made for.
    pub memory: u64,
    /// Load address of the protected-mode kernel.
    pub kernel: u64,
    /// Bytes of kernel copied there.
    pub kernel_len: u64,
    /// One past the kernel's `init_size` range.
    pub kernel_end: u64,
    /// The 64-bit entry point (RIP).
    pub entry: u64,
    /// Where the initrd starts (0 when there is none).
    pub initrd: u64,
    /// Its length.
    pub initrd_len: u64,
    /// The zero page (RSI at entry).
    pub zero_page: u64,
    /// The command line.
    pub cmdline: u64,
    /// Its length without the NUL.
    pub cmdline_len: usize,
}

/// One entry of the e820 map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    /// First address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// [`E820_RAM`] or [`E820_RESERVED`].
    pub kind: u32,
}

/// The e820 map of a guest with `memory` bytes at guest-physical 0, as
/// Bulkhead gives it to Linux: RAM below the EBDA, the EBDA and the BIOS
/// area reserved (nothing is there, but a PC has them), RAM from 1 MiB to
/// the end. A guest smaller than 1 MiB gets its one low entry cut short.
pub fn e820(memory: u64) -> ([E820Entry; 4], usize) {
    const EBDA: u64 = 0x9_fc00;
    const BIOS: u64 = 0xf_0000;
    let low = E820Entry {
        addr: 0,
        size: EBDA.min(memory),
        kind: E820_RAM,
    };
    let map = [
        low,
        E820Entry {
            addr: EBDA,
            size: 0xa_0000 - EBDA,
            kind: E820_RESERVED,
        },
        E820Entry {
            addr: BIOS,
            size: HIGH_MEMORY - BIOS,
            kind: E820_RESERVED,
        },
        E820Entry {
            addr: HIGH_MEMORY,
            size: memory.saturating_sub(HIGH_MEMORY),
            kind: E820_RAM,
        },
    ];
    let n = if memory > HIGH_MEMORY { 4 } else { 1 };
    (map, n)
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from(u32_at(b, off)) | u64::from(u32_at(b, off + 4)) << 32
}

fn put(b: &mut [u8], off: usize, bytes: &[u8]) {
    b[off..off + bytes.len()].copy_from_slice(bytes);
}

/// Rounds `v` up to `align` (a power of two); `None` on overflow.
fn align_up(v: u64, align: u64) -> Option<u64> {
    Some(v.checked_add(align - 1)? & !(align - 1))
}

impl<'a> BzImage<'a> {
    /// Validates `image`'s setup header and sizes. Errors: see [`BzError`].
    pub fn parse(image: &'a [u8]) -> Result<Self, BzError> {
        let len = image.len() as u64;
        // The fixed part of the header, up to the 2.06 fields.
        const FIXED_END: usize = OFF_CMDLINE_SIZE + 4;
        if image.len() < FIXED_END {
            return Err(BzError::Truncated {
                needed: FIXED_END as u64,
                len,
            });
        }
        let boot_flag = u16_at(image, OFF_BOOT_FLAG);
        if boot_flag != BOOT_FLAG {
            return Err(BzError::BadBootFlag(boot_flag));
        }
        let magic = u32_at(image, OFF_MAGIC);
        if magic != HDRS {
            return Err(BzError::BadMagic(magic));
        }
        let version = u16_at(image, OFF_VERSION);
        if version < MIN_PROTOCOL {
            return Err(BzError::OldProtocol(version));
        }
        let loadflags = image[OFF_LOADFLAGS];
        if loadflags & LOADED_HIGH == 0 {
            return Err(BzError::NotLoadedHigh);
        }
        let setup_sects = match image[OFF_SETUP_SECTS] {
            0 => 4,
            n => n,
        };
        // At most 256 sectors: no overflow.
        let setup_len = (usize::from(setup_sects) + 1) * 512;
        if image.len() < setup_len {
            return Err(BzError::Truncated {
                needed: setup_len as u64,
                len,
            });
        }
        // The header ends where the jump at 0x200 lands.
        let header_end = OFF_MAGIC + usize::from(image[OFF_JUMP + 1]);
        let needed_end = if version >= 0x020a {
            OFF_INIT_SIZE + 4
        } else {
            FIXED_END
        };
        if header_end < needed_end || header_end > setup_len {
            return Err(BzError::BadHeaderLength(
                header_end.saturating_sub(OFF_SETUP_SECTS),
            ));
        }
        let syssize = u32_at(image, OFF_SYSSIZE);
        if syssize == 0 {
            return Err(BzError::NoKernel);
        }
        let kernel_len = u64::from(syssize) * 16;
        let needed = setup_len as u64 + kernel_len;
        if needed > len {
            return Err(BzError::Truncated { needed, len });
        }
        let at_least = |v: u16, read: u64| if version >= v { read } else { 0 };
        let header = SetupHeader {
            setup_sects,
            syssize,
            version,
            loadflags,
            initrd_addr_max: u32_at(image, OFF_INITRD_ADDR_MAX),
            kernel_alignment: u32_at(image, OFF_KERNEL_ALIGNMENT),
            relocatable: image[OFF_RELOCATABLE] != 0,
            min_alignment: at_least(0x020a, u64::from(image[OFF_MIN_ALIGNMENT])) as u8,
            xloadflags: at_least(0x020c, u64::from(u16_at(image, OFF_XLOADFLAGS))) as u16,
            cmdline_size: u32_at(image, OFF_CMDLINE_SIZE),
            pref_address: at_least(0x020a, u64_at(image, OFF_PREF_ADDRESS)),
            init_size: at_least(0x020a, u64::from(u32_at(image, OFF_INIT_SIZE))) as u32,
        };
        Ok(Self {
            image,
            header,
            header_end,
            setup_len,
            // <= len, so it fits a usize.
            kernel_len: kernel_len as usize,
        })
    }

    /// The setup header as read.
    pub fn header(&self) -> &SetupHeader {
        &self.header
    }

    /// The protected-mode kernel (what is copied to the load address).
    pub fn kernel(&self) -> &'a [u8] {
        &self.image[self.setup_len..self.setup_len + self.kernel_len]
    }

    /// Places the kernel, an initrd of `initrd_len` bytes (0: none), the
    /// zero page and a command line of `cmdline_len` bytes in a guest with
    /// `memory` bytes at guest-physical 0. Touches no memory.
    pub fn layout(
        &self,
        memory: u64,
        initrd_len: u64,
        cmdline_len: usize,
    ) -> Result<Layout, BzError> {
        let h = &self.header;
        if h.version < ENTRY_64_PROTOCOL || h.xloadflags & XLF_KERNEL_64 == 0 {
            return Err(BzError::No64BitEntry);
        }
        let max = CMDLINE_MAX.min(h.cmdline_size as usize);
        if cmdline_len > max {
            return Err(BzError::CmdlineTooLong {
                len: cmdline_len,
                max,
            });
        }
        let kernel_len = self.kernel_len as u64;
        if u64::from(h.init_size) < kernel_len {
            return Err(BzError::BadInitSize(h.init_size));
        }
        let init_size = u64::from(h.init_size);
        let fits = |at: u64| at.checked_add(init_size).is_some_and(|end| end <= memory);
        let preferred = h.pref_address.max(HIGH_MEMORY);
        let kernel = if fits(preferred) && preferred == h.pref_address {
            preferred
        } else if h.relocatable {
            let align = u64::from(h.kernel_alignment);
            if !align.is_power_of_two() || align < PAGE {
                return Err(BzError::BadAlignment(h.kernel_alignment));
            }
            align_up(HIGH_MEMORY, align).ok_or(BzError::BadAlignment(h.kernel_alignment))?
        } else {
            preferred
        };
        let kernel_end = kernel.saturating_add(init_size);
        if kernel_end > memory {
            return Err(BzError::MemoryTooSmall {
                needed: kernel_end,
                memory,
            });
        }
        let (initrd, initrd_len) = if initrd_len == 0 {
            (0, 0)
        } else {
            let limit = if h.xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G != 0 {
                memory
            } else {
                memory.min(u64::from(h.initrd_addr_max) + 1)
            };
            let room = limit.saturating_sub(kernel_end);
            let start = limit.checked_sub(initrd_len).map(|s| s & !(PAGE - 1));
            match start {
                Some(s) if s >= kernel_end => (s, initrd_len),
                _ => {
                    return Err(BzError::InitrdTooLarge {
                        len: initrd_len,
                        room,
                    })
                }
            }
        };
        Ok(Layout {
            memory,
            kernel,
            kernel_len,
            kernel_end,
            entry: kernel + ENTRY_64_OFFSET,
            initrd,
            initrd_len,
            zero_page: ZERO_PAGE,
            cmdline: CMDLINE,
            cmdline_len,
        })
    }

    /// The zero page for `layout`: the image's setup header with the
    /// loader's fields filled in (loader type, initrd, command line) and
    /// the [`e820`] map.
    pub fn zero_page(&self, layout: &Layout) -> [u8; ZERO_PAGE_LEN] {
        let mut zp = [0u8; ZERO_PAGE_LEN];
        let end = self.header_end.min(ZERO_PAGE_HEADER_END);
        zp[OFF_SETUP_SECTS..end].copy_from_slice(&self.image[OFF_SETUP_SECTS..end]);
        zp[OFF_TYPE_OF_LOADER] = LOADER_UNDEFINED;
        let lo = |v: u64| (v as u32).to_le_bytes();
        let hi = |v: u64| ((v >> 32) as u32).to_le_bytes();
        put(&mut zp, OFF_RAMDISK_IMAGE, &lo(layout.initrd));
        put(&mut zp, OFF_RAMDISK_SIZE, &lo(layout.initrd_len));
        put(&mut zp, OFF_EXT_RAMDISK_IMAGE, &hi(layout.initrd));
        put(&mut zp, OFF_EXT_RAMDISK_SIZE, &hi(layout.initrd_len));
        put(&mut zp, OFF_CMD_LINE_PTR, &lo(layout.cmdline));
        put(&mut zp, OFF_EXT_CMD_LINE_PTR, &hi(layout.cmdline));
        let (map, n) = e820(layout.memory);
        zp[OFF_E820_ENTRIES] = n.min(E820_MAX) as u8;
        for (i, e) in map[..n].iter().enumerate() {
            let at = OFF_E820_TABLE + i * 20;
            put(&mut zp, at, &e.addr.to_le_bytes());
            put(&mut zp, at + 8, &e.size.to_le_bytes());
            put(&mut zp, at + 16, &e.kind.to_le_bytes());
        }
        zp
    }

    /// Writes the kernel, `initrd`, `cmdline` (and its NUL) and the zero
    /// page into `memory` (guest-physical 0 at index 0) as `layout` says.
    /// Everything is checked first; on an error nothing is written.
    /// Memory the layout does not name (the rest of the kernel's
    /// `init_size`, say) is left as it is: a guest's memory comes zeroed.
    pub fn load(
        &self,
        layout: &Layout,
        memory: &mut [u8],
        initrd: &[u8],
        cmdline: &[u8],
    ) -> Result<(), BzError> {
        if *layout != self.layout(layout.memory, initrd.len() as u64, cmdline.len())?
            || (memory.len() as u64) < layout.memory
        {
            return Err(BzError::LayoutMismatch);
        }
        let zero_page = self.zero_page(layout);
        // The layout keeps every range inside `layout.memory`, hence
        // inside `memory`, and these casts inside usize.
        let span = |at: u64, len: usize| at as usize..at as usize + len;
        memory[span(layout.kernel, self.kernel_len)].copy_from_slice(self.kernel());
        memory[span(layout.initrd, initrd.len())].copy_from_slice(initrd);
        memory[span(layout.cmdline, cmdline.len())].copy_from_slice(cmdline);
        memory[layout.cmdline as usize + cmdline.len()] = 0;
        memory[span(layout.zero_page, ZERO_PAGE_LEN)].copy_from_slice(&zero_page);
        Ok(())
    }
}

/// A Linux guest as one boot module (how `cargo xtask` hands a `linux`
/// guest of a manifest to the core, which passes guest images on without
/// looking inside): a 32-byte header, then the command line, the bzImage
/// and the initrd, back to back.
///
/// | offset | size | field |
/// |--------|------|-------|
/// | 0      | 8    | [`BUNDLE_MAGIC`] |
/// | 8      | 4    | command-line length (u32, little-endian) |
/// | 12     | 4    | 0 |
/// | 16     | 8    | bzImage length (u64) |
/// | 24     | 8    | initrd length (u64; 0 for none) |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bundle<'a> {
    /// The kernel command line (without a NUL).
    pub cmdline: &'a [u8],
    /// The bzImage.
    pub bzimage: &'a [u8],
    /// The initrd (may be empty).
    pub initrd: &'a [u8],
}

/// First bytes of a [`Bundle`].
pub const BUNDLE_MAGIC: [u8; 8] = *b"BKLINUX1";
/// Size of a [`Bundle`]'s header.
pub const BUNDLE_HEADER_LEN: usize = 32;

/// Why a boot module is not a [`Bundle`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BundleError {
    /// It does not start with [`BUNDLE_MAGIC`] (not a Linux guest).
    NotABundle,
    /// The header's lengths do not add up to the module's length, or the
    /// reserved word is not 0.
    BadLengths,
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotABundle => f.write_str("not a Linux guest bundle"),
            Self::BadLengths => {
                f.write_str("the Linux guest bundle's lengths do not match its size")
            }
        }
    }
}

impl<'a> Bundle<'a> {
    /// Whether `bytes` start like a bundle (the magic only).
    pub fn is_bundle(bytes: &[u8]) -> bool {
        bytes.starts_with(&BUNDLE_MAGIC)
    }

    /// Splits a bundle into its parts; every length is checked against
    /// the module's size.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BundleError> {
        if !Self::is_bundle(bytes) {
            return Err(BundleError::NotABundle);
        }
        let header = bytes
            .get(..BUNDLE_HEADER_LEN)
            .ok_or(BundleError::BadLengths)?;
        let cmdline_len = u64::from(u32_at(header, 8));
        let reserved = u32_at(header, 12);
        let bzimage_len = u64_at(header, 16);
        let initrd_len = u64_at(header, 24);
        let total = (BUNDLE_HEADER_LEN as u64)
            .checked_add(cmdline_len)
            .and_then(|n| n.checked_add(bzimage_len))
            .and_then(|n| n.checked_add(initrd_len));
        if reserved != 0 || total != Some(bytes.len() as u64) {
            return Err(BundleError::BadLengths);
        }
        // All three fit in `bytes`, so the casts and splits are exact.
        let rest = &bytes[BUNDLE_HEADER_LEN..];
        let (cmdline, rest) = rest.split_at(cmdline_len as usize);
        let (bzimage, initrd) = rest.split_at(bzimage_len as usize);
        Ok(Self {
            cmdline,
            bzimage,
            initrd,
        })
    }

    /// The header of a bundle with parts of these lengths (the writer
    /// appends the command line, the bzImage and the initrd after it).
    pub fn header(cmdline_len: u32, bzimage_len: u64, initrd_len: u64) -> [u8; BUNDLE_HEADER_LEN] {
        let mut h = [0u8; BUNDLE_HEADER_LEN];
        h[..8].copy_from_slice(&BUNDLE_MAGIC);
        h[8..12].copy_from_slice(&cmdline_len.to_le_bytes());
        h[16..24].copy_from_slice(&bzimage_len.to_le_bytes());
        h[24..32].copy_from_slice(&initrd_len.to_le_bytes());
        h
    }
}

#[cfg(test)]
mod tests;
