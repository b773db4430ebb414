//! ELF64 loader for Bulkhead domain images.
//!
//! This crate owns one job: turning an untrusted ELF image (an
//! `x86_64-unknown-none` executable linked at fixed guest-physical addresses,
//! for example 0x200000) into a domain's initial memory contents and its
//! entry point. [`inspect`] validates an image against a guest-physical
//! window without touching memory; [`load`] validates it the same way and
//! then copies every `PT_LOAD` segment's file bytes into the caller's buffer
//! and zeroes the remainder of the segment (`.bss`).
//!
//! The image is hostile input. The loader never trusts any size, offset,
//! count or address found in it: every computation is checked arithmetic and
//! every slice access is bounds-checked, so a malformed image produces an
//! [`ElfError`] rather than a panic. The loader never allocates, and it never
//! writes outside the memory it is given; it validates the whole image before
//! the first write, so a failed [`load`] leaves `memory` exactly as it was.
//!
//! Parsing of the header and program-header records is delegated to the
//! `elf` crate (no_std, zero-allocation, no unsafe code); the policy checks
//! and the copying live here. Only the program-header table is consulted;
//! section headers are ignored. Segment placement uses `p_vaddr`, which for
//! the identity-linked images Bulkhead runs equals `p_paddr`. Segment
//! alignment (`p_align`) is not checked, and non-`PT_LOAD` segments are
//! ignored.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use core::fmt;

use elf::abi;
use elf::endian::LittleEndian;
use elf::file::{Class, FileHeader};
use elf::segment::{ProgramHeader, SegmentTable};
use elf::ParseError;

/// The most `PT_LOAD` segments an image may have.
pub const MAX_LOAD_SEGMENTS: usize = 16;

/// Size of the ELF64 file header in bytes.
const EHDR_SIZE: usize = 64;
/// Size of one ELF64 program header in bytes.
const PHDR_SIZE: usize = 56;

/// What a successful [`load`] or [`inspect`] found in the image.
///
/// All addresses are guest-physical.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// The entry point (`e_entry`); guaranteed to lie inside an executable
    /// `PT_LOAD` segment.
    pub entry: u64,
    /// The lowest address covered by a non-empty `PT_LOAD` segment.
    pub lowest: u64,
    /// One past the last address covered by a non-empty `PT_LOAD` segment.
    pub highest: u64,
    /// Number of `PT_LOAD` segments in the image (including empty ones).
    pub segments: usize,
}

/// Why an image was rejected.
///
/// Segment indices (`index`, `first`, `second`) are positions in the
/// image's program-header table, counting every entry, not only `PT_LOAD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// The image is too short to hold the ELF identification or file header.
    Truncated,
    /// The image does not start with `\x7fELF`.
    BadMagic,
    /// The image is not a 64-bit (ELFCLASS64) object.
    NotElf64,
    /// The image is not little-endian (ELFDATA2LSB).
    NotLittleEndian,
    /// The identification or header version is not `EV_CURRENT` (1).
    UnsupportedVersion(u32),
    /// `e_machine` is not x86-64 (62); carries the value found.
    WrongMachine(u16),
    /// `e_type` is not `ET_EXEC`; carries the value found.
    NotExecutable(u16),
    /// `e_phentsize` is not 56, the size of an ELF64 program header; carries
    /// the value found.
    BadProgramHeaderSize(u16),
    /// The program-header table does not lie inside the image.
    ProgramHeadersOutsideFile,
    /// The image has no `PT_LOAD` segment.
    NoLoadableSegments,
    /// The image has more than [`MAX_LOAD_SEGMENTS`] `PT_LOAD` segments.
    TooManySegments,
    /// A segment's file bytes (`p_offset .. p_offset + p_filesz`) do not lie
    /// inside the image.
    SegmentOutsideFile {
        /// Program-header index of the segment.
        index: usize,
    },
    /// A segment's memory range (`p_vaddr .. p_vaddr + p_memsz`) does not lie
    /// inside the guest-physical window given to the loader.
    SegmentOutsideMemory {
        /// Program-header index of the segment.
        index: usize,
        /// The segment's `p_vaddr`.
        vaddr: u64,
        /// The segment's `p_memsz`.
        memsz: u64,
    },
    /// A segment has `p_filesz > p_memsz`.
    FileSizeExceedsMemorySize {
        /// Program-header index of the segment.
        index: usize,
    },
    /// Two `PT_LOAD` segments share memory.
    OverlappingSegments {
        /// Program-header index of the earlier segment.
        first: usize,
        /// Program-header index of the later segment.
        second: usize,
    },
    /// The entry point is not inside a `PT_LOAD` segment with the execute flag.
    EntryOutsideCode {
        /// The image's `e_entry`.
        entry: u64,
    },
    /// The parser rejected a structure; the text names what it was.
    Parse(&'static str),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated => f.write_str("image is truncated"),
            Self::BadMagic => f.write_str("image does not start with the ELF magic"),
            Self::NotElf64 => f.write_str("image is not ELF64"),
            Self::NotLittleEndian => f.write_str("image is not little-endian"),
            Self::UnsupportedVersion(v) => write!(f, "unsupported ELF version {v}"),
            Self::WrongMachine(m) => write!(f, "machine {m} is not x86-64 (62)"),
            Self::NotExecutable(t) => write!(f, "type {t} is not ET_EXEC (2)"),
            Self::BadProgramHeaderSize(s) => {
                write!(f, "program header entry size {s} is not {PHDR_SIZE}")
            }
            Self::ProgramHeadersOutsideFile => {
                f.write_str("program header table lies outside the image")
            }
            Self::NoLoadableSegments => f.write_str("image has no PT_LOAD segment"),
            Self::TooManySegments => write!(
                f,
                "image has more than {MAX_LOAD_SEGMENTS} PT_LOAD segments"
            ),
            Self::SegmentOutsideFile { index } => {
                write!(f, "segment {index}: file bytes lie outside the image")
            }
            Self::SegmentOutsideMemory {
                index,
                vaddr,
                memsz,
            } => write!(
                f,
                "segment {index}: {vaddr:#x} + {memsz:#x} lies outside guest memory"
            ),
            Self::FileSizeExceedsMemorySize { index } => {
                write!(f, "segment {index}: file size exceeds memory size")
            }
            Self::OverlappingSegments { first, second } => {
                write!(f, "segments {first} and {second} overlap in memory")
            }
            Self::EntryOutsideCode { entry } => write!(
                f,
                "entry point {entry:#x} is not inside an executable segment"
            ),
            Self::Parse(what) => write!(f, "malformed {what}"),
        }
    }
}

/// One validated `PT_LOAD` segment; all offsets are known to be in range.
#[derive(Clone, Copy, Default)]
struct Segment {
    /// Program-header index, for error reports.
    index: usize,
    /// Start of the file bytes within the image.
    file_offset: u64,
    /// Number of file bytes.
    filesz: u64,
    /// Start of the segment relative to the window's base.
    mem_offset: u64,
    /// Number of memory bytes (`>= filesz`).
    memsz: u64,
}

/// The result of validation: what to report and what to copy.
struct Plan {
    loaded: Loaded,
    segments: [Segment; MAX_LOAD_SEGMENTS],
    count: usize,
}

/// Validates `image` for loading into the guest-physical window
/// `[base, base + size)` and returns what [`load`] would report, without
/// copying anything.
///
/// `base + size` may exceed `u64::MAX` in principle; the window is then
/// treated as reaching the top of the address space.
///
/// # Errors
///
/// Returns the first [`ElfError`] found; see the variants for the checks.
pub fn inspect(image: &[u8], base: u64, size: u64) -> Result<Loaded, ElfError> {
    plan(image, base, size).map(|p| p.loaded)
}

/// Loads `image` into `memory`, which holds guest-physical
/// `[base, base + memory.len())`.
///
/// Every `PT_LOAD` segment's file bytes are copied to its address and the
/// rest of the segment (up to `p_memsz`) is zeroed. Bytes of `memory` that no
/// segment covers are left untouched.
///
/// # Errors
///
/// Returns the first [`ElfError`] found. The image is fully validated before
/// anything is written, so on error `memory` is unchanged.
pub fn load(image: &[u8], memory: &mut [u8], base: u64) -> Result<Loaded, ElfError> {
    let size = u64::try_from(memory.len()).map_err(|_| ElfError::Parse("memory size"))?;
    let plan = plan(image, base, size)?;

    // Second pass: turn every validated segment into concrete slice ranges.
    // Nothing here can fail for a plan built against this buffer, but every
    // step is still checked so that no panic path exists and nothing is
    // written unless all ranges resolved.
    let mut ranges = [(0usize, 0usize, 0usize, 0usize); MAX_LOAD_SEGMENTS];
    for (seg, out) in plan.segments.iter().take(plan.count).zip(ranges.iter_mut()) {
        let src_start = to_usize(seg.file_offset)?;
        let filesz = to_usize(seg.filesz)?;
        let dst_start = to_usize(seg.mem_offset)?;
        let memsz = to_usize(seg.memsz)?;
        let src_end = src_start.checked_add(filesz).ok_or(INTERNAL)?;
        let dst_end = dst_start.checked_add(memsz).ok_or(INTERNAL)?;
        if src_end > image.len() || dst_end > memory.len() || filesz > memsz {
            return Err(INTERNAL);
        }
        *out = (src_start, src_end, dst_start, dst_end);
    }

    // Third pass: write. All ranges were verified above.
    for &(src_start, src_end, dst_start, dst_end) in ranges.iter().take(plan.count) {
        let (Some(src), Some(dst)) = (
            image.get(src_start..src_end),
            memory.get_mut(dst_start..dst_end),
        ) else {
            continue;
        };
        if let Some((data, bss)) = dst.split_at_mut_checked(src.len()) {
            data.copy_from_slice(src);
            bss.fill(0);
        }
    }

    Ok(plan.loaded)
}

/// Error for an internal inconsistency that validation should have excluded.
const INTERNAL: ElfError = ElfError::Parse("segment range (internal)");

fn to_usize(v: u64) -> Result<usize, ElfError> {
    usize::try_from(v).map_err(|_| INTERNAL)
}

/// Maps the parser's identification errors to ours.
fn ident_error(e: ParseError) -> ElfError {
    match e {
        ParseError::BadMagic(_) => ElfError::BadMagic,
        ParseError::UnsupportedElfClass(_) => ElfError::NotElf64,
        ParseError::UnsupportedElfEndianness(_) => ElfError::NotLittleEndian,
        ParseError::UnsupportedVersion((found, _)) => {
            ElfError::UnsupportedVersion(u32::try_from(found).unwrap_or(u32::MAX))
        }
        ParseError::SliceReadError(_) | ParseError::TryFromSliceError(_) => ElfError::Truncated,
        _ => ElfError::Parse("ELF identification"),
    }
}

/// Validates everything and records what to copy.
fn plan(image: &[u8], base: u64, size: u64) -> Result<Plan, ElfError> {
    // --- File header -------------------------------------------------------
    let ident = image.get(..abi::EI_NIDENT).ok_or(ElfError::Truncated)?;
    let ident = elf::file::parse_ident::<LittleEndian>(ident).map_err(ident_error)?;
    if ident.1 != Class::ELF64 {
        return Err(ElfError::NotElf64);
    }
    let tail = image
        .get(abi::EI_NIDENT..EHDR_SIZE)
        .ok_or(ElfError::Truncated)?;
    let ehdr = FileHeader::parse_tail(ident, tail).map_err(|_| ElfError::Parse("ELF header"))?;
    if ehdr.version != u32::from(abi::EV_CURRENT) {
        return Err(ElfError::UnsupportedVersion(ehdr.version));
    }
    if ehdr.e_machine != abi::EM_X86_64 {
        return Err(ElfError::WrongMachine(ehdr.e_machine));
    }
    if ehdr.e_type != abi::ET_EXEC {
        return Err(ElfError::NotExecutable(ehdr.e_type));
    }

    // --- Program-header table ----------------------------------------------
    if ehdr.e_phoff == 0 || ehdr.e_phnum == 0 {
        return Err(ElfError::NoLoadableSegments);
    }
    if usize::from(ehdr.e_phentsize) != PHDR_SIZE {
        return Err(ElfError::BadProgramHeaderSize(ehdr.e_phentsize));
    }
    let phnum = usize::from(ehdr.e_phnum);
    let table_start =
        usize::try_from(ehdr.e_phoff).map_err(|_| ElfError::ProgramHeadersOutsideFile)?;
    let table_end = PHDR_SIZE
        .checked_mul(phnum)
        .and_then(|len| table_start.checked_add(len))
        .ok_or(ElfError::ProgramHeadersOutsideFile)?;
    let table_bytes = image
        .get(table_start..table_end)
        .ok_or(ElfError::ProgramHeadersOutsideFile)?;
    let table: SegmentTable<'_, LittleEndian> =
        SegmentTable::new(LittleEndian, Class::ELF64, table_bytes);

    // --- Segments ----------------------------------------------------------
    let image_len = u64::try_from(image.len()).map_err(|_| ElfError::Parse("image size"))?;
    let mut segments = [Segment::default(); MAX_LOAD_SEGMENTS];
    let mut count = 0usize;
    let mut lowest = u64::MAX;
    let mut highest = 0u64;
    let mut entry_ok = false;

    for index in 0..phnum {
        let ph: ProgramHeader = table
            .get(index)
            .map_err(|_| ElfError::Parse("program header"))?;
        if ph.p_type != abi::PT_LOAD {
            continue;
        }
        if count >= MAX_LOAD_SEGMENTS {
            return Err(ElfError::TooManySegments);
        }
        if ph.p_filesz > ph.p_memsz {
            return Err(ElfError::FileSizeExceedsMemorySize { index });
        }
        match ph.p_offset.checked_add(ph.p_filesz) {
            Some(end) if end <= image_len => {}
            _ => return Err(ElfError::SegmentOutsideFile { index }),
        }
        let outside = ElfError::SegmentOutsideMemory {
            index,
            vaddr: ph.p_vaddr,
            memsz: ph.p_memsz,
        };
        let mem_offset = ph.p_vaddr.checked_sub(base).ok_or(outside)?;
        match mem_offset.checked_add(ph.p_memsz) {
            Some(end) if end <= size => {}
            _ => return Err(outside),
        }
        // `vaddr + memsz` cannot overflow: it equals base + (offset + memsz),
        // and the window check above keeps that within base + size; still,
        // compute it checked.
        let seg_end = ph.p_vaddr.checked_add(ph.p_memsz).ok_or(outside)?;

        let seg = Segment {
            index,
            file_offset: ph.p_offset,
            filesz: ph.p_filesz,
            mem_offset,
            memsz: ph.p_memsz,
        };
        if seg.memsz != 0 {
            for other in segments.iter().take(count) {
                if overlaps(other, &seg) {
                    return Err(ElfError::OverlappingSegments {
                        first: other.index,
                        second: index,
                    });
                }
            }
            lowest = lowest.min(ph.p_vaddr);
            highest = highest.max(seg_end);
        }
        if ph.p_flags & abi::PF_X != 0 {
            if let Some(into) = ehdr.e_entry.checked_sub(ph.p_vaddr) {
                entry_ok |= into < ph.p_memsz;
            }
        }
        if let Some(slot) = segments.get_mut(count) {
            *slot = seg;
        }
        count += 1;
    }

    if count == 0 {
        return Err(ElfError::NoLoadableSegments);
    }
    if !entry_ok {
        return Err(ElfError::EntryOutsideCode {
            entry: ehdr.e_entry,
        });
    }

    Ok(Plan {
        loaded: Loaded {
            entry: ehdr.e_entry,
            lowest,
            highest,
            segments: count,
        },
        segments,
        count,
    })
}

/// Whether two segments share at least one byte of memory. Empty segments
/// never overlap anything. Both ranges are known not to overflow.
fn overlaps(a: &Segment, b: &Segment) -> bool {
    let (a_end, b_end) = (
        a.mem_offset.saturating_add(a.memsz),
        b.mem_offset.saturating_add(b.memsz),
    );
    a.memsz != 0 && b.memsz != 0 && a.mem_offset < b_end && b.mem_offset < a_end
}

#[cfg(test)]
mod tests;
