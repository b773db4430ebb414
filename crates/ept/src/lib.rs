//! Extended Page Tables (Intel SDM Vol. 3C §28.3) for one Bulkhead domain.
//!
//! This crate owns the four-level EPT paging structures (PML4, PDPT, PD, PT)
//! that translate one domain's guest-physical addresses to host-physical
//! addresses: it builds, edits, walks and tears them down, and computes the
//! EPT pointer (EPTP) that the VMCS holds. Every page-table frame comes from,
//! goes back to, and is accessed through a caller-supplied [`FrameAllocator`].
//! It must never touch physical memory directly (it contains no `unsafe` and
//! never dereferences an address; the allocator decides how a frame is
//! reached), never decide policy (which memory a domain gets, with which
//! rights and memory type, whether the CPU supports 1 GiB pages or
//! execute-only mappings, and when to run `INVEPT` are the caller's
//! business), and never panic on bad input: every malformed request is
//! reported as an [`EptError`] and leaves the structures unchanged.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use core::fmt;

use bitflags::bitflags;

/// Number of 64-bit entries in every EPT paging structure.
pub const ENTRIES_PER_TABLE: usize = 512;

/// Size in bytes of one paging-structure frame (and of the smallest page).
pub const FRAME_SIZE: u64 = 4096;

/// First guest-physical address that a four-level EPT cannot translate
/// (guest-physical addresses are 48 bits wide).
pub const GPA_LIMIT: u64 = 1 << 48;

/// First host-physical address that an EPT entry cannot encode (entries hold
/// address bits 51:12, the architectural maximum physical-address width).
pub const HPA_LIMIT: u64 = 1 << 52;

/// Raw bit layout of EPT entries (SDM Vol. 3C, Tables 28-1 to 28-6).
mod bits {
    /// Read, write and execute permission bits (2:0). An entry is present
    /// iff any of them is set.
    pub const RWX: u64 = 0b111;
    /// Shift of the EPT memory-type field (bits 5:3) in leaf entries.
    pub const MT_SHIFT: u32 = 3;
    /// Mask of the EPT memory-type field.
    pub const MT_MASK: u64 = 0b111 << MT_SHIFT;
    /// "Maps a page" bit (7) in PDPT and PD entries.
    pub const LARGE: u64 = 1 << 7;
    /// Physical-address bits 51:12.
    pub const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;
}

/// Level of the root table (PML4); level 0 is the page table (PT).
const ROOT_LEVEL: usize = 3;

/// Source and sink of page-table frames, and the only way this crate reaches
/// their contents.
///
/// In the hypervisor core the frames are identity-mapped; in tests they live
/// in an in-memory arena. The crate never dereferences a host-physical
/// address itself.
pub trait FrameAllocator {
    /// Allocates one 4 KiB frame and returns its host-physical address, or
    /// `None` when memory is exhausted. The frame should be zeroed; the crate
    /// zeroes it again before use so a stale frame can never leak mappings.
    fn allocate_frame(&mut self) -> Option<u64>;

    /// Returns a frame previously handed out by
    /// [`allocate_frame`](Self::allocate_frame).
    fn deallocate_frame(&mut self, hpa: u64);

    /// Views the frame at `hpa` as a table of 512 entries.
    fn table(&self, hpa: u64) -> &[u64; ENTRIES_PER_TABLE];

    /// Views the frame at `hpa` as a mutable table of 512 entries.
    fn table_mut(&mut self, hpa: u64) -> &mut [u64; ENTRIES_PER_TABLE];
}

bitflags! {
    /// Guest access rights held in bits 2:0 of an EPT entry.
    ///
    /// EPT forbids write without read (an EPT misconfiguration); this crate
    /// refuses such rights. Execute-only (`EXECUTE` alone) is accepted; the
    /// caller must check that the CPU supports it
    /// (`IA32_VMX_EPT_VPID_CAP` bit 0).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Access: u64 {
        /// The guest may read.
        const READ = 1;
        /// The guest may write (requires `READ`).
        const WRITE = 2;
        /// The guest may fetch instructions.
        const EXECUTE = 4;
        /// Read and write.
        const RW = Self::READ.bits() | Self::WRITE.bits();
        /// Read, write and execute.
        const RWX = Self::READ.bits() | Self::WRITE.bits() | Self::EXECUTE.bits();
    }
}

/// EPT memory type of a leaf entry (bits 5:3); values 2, 3 and 7 are
/// reserved and never produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MemoryType {
    /// Uncacheable (UC).
    Uncacheable = 0,
    /// Write combining (WC).
    WriteCombining = 1,
    /// Write through (WT).
    WriteThrough = 4,
    /// Write protected (WP).
    WriteProtected = 5,
    /// Write back (WB).
    WriteBack = 6,
}

impl MemoryType {
    /// Decodes a raw memory-type value; `None` for the reserved values.
    pub const fn from_raw(raw: u8) -> Option<Self> {
        match raw {
            0 => Some(Self::Uncacheable),
            1 => Some(Self::WriteCombining),
            4 => Some(Self::WriteThrough),
            5 => Some(Self::WriteProtected),
            6 => Some(Self::WriteBack),
            _ => None,
        }
    }
}

/// Size of a page mapped by one leaf entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PageSize {
    /// 4 KiB page, mapped by a PT entry.
    Size4K,
    /// 2 MiB page, mapped by a PD entry with bit 7 set.
    Size2M,
    /// 1 GiB page, mapped by a PDPT entry with bit 7 set. The caller must
    /// check that the CPU supports it (`IA32_VMX_EPT_VPID_CAP` bit 17);
    /// [`Ept::map_range`] never picks it on its own.
    Size1G,
}

impl PageSize {
    /// Number of bytes the page covers.
    pub const fn bytes(self) -> u64 {
        level_size(self.level())
    }

    /// Paging-structure level holding the leaf entry (0 = PT).
    const fn level(self) -> usize {
        match self {
            Self::Size4K => 0,
            Self::Size2M => 1,
            Self::Size1G => 2,
        }
    }

    /// Page size mapped by a leaf at `level` (only called for levels 0..=2).
    const fn from_level(level: usize) -> Self {
        match level {
            0 => Self::Size4K,
            1 => Self::Size2M,
            _ => Self::Size1G,
        }
    }
}

/// Why an EPT operation was refused. A refused operation changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EptError {
    /// An address (or, for range operations, a length) is not aligned to the
    /// page size the operation needs.
    Misaligned {
        /// The offending address or length.
        addr: u64,
    },
    /// The guest-physical range reaches beyond 48 bits, or the host-physical
    /// address it would map reaches beyond 52 bits.
    OutOfRange {
        /// Guest-physical address of the request.
        gpa: u64,
    },
    /// Part of the requested guest-physical range is already mapped.
    AlreadyMapped {
        /// Guest-physical address of the page that could not be mapped.
        gpa: u64,
    },
    /// Nothing is mapped at the given guest-physical address.
    NotMapped {
        /// The unmapped guest-physical address.
        gpa: u64,
    },
    /// The frame allocator ran out of frames for page tables.
    OutOfFrames,
    /// Empty rights, unknown bits, or write without read (which EPT treats
    /// as a misconfiguration).
    InvalidAccess,
    /// An address computation overflowed 64 bits.
    Overflow,
    /// The request's page size differs from the size of the mapping found
    /// (e.g. a 4 KiB request inside a 2 MiB page, or vice versa).
    SizeMismatch {
        /// Guest-physical address of the request.
        gpa: u64,
    },
}

impl fmt::Display for EptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Misaligned { addr } => write!(f, "address or length {addr:#x} is misaligned"),
            Self::OutOfRange { gpa } => {
                write!(f, "mapping at guest-physical {gpa:#x} is out of range")
            }
            Self::AlreadyMapped { gpa } => {
                write!(f, "guest-physical {gpa:#x} is already mapped")
            }
            Self::NotMapped { gpa } => write!(f, "guest-physical {gpa:#x} is not mapped"),
            Self::OutOfFrames => f.write_str("out of frames for EPT paging structures"),
            Self::InvalidAccess => f.write_str("invalid EPT access rights"),
            Self::Overflow => f.write_str("address arithmetic overflow"),
            Self::SizeMismatch { gpa } => {
                write!(f, "page size does not match the mapping at {gpa:#x}")
            }
        }
    }
}

impl core::error::Error for EptError {}

/// Result of walking the EPT for one guest-physical address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Translation {
    /// Host-physical address, including the offset within the page.
    pub hpa: u64,
    /// Effective rights: the AND of the rights at every level of the walk.
    pub access: Access,
    /// Memory type of the leaf entry.
    pub memory_type: MemoryType,
    /// Size of the page containing the address.
    pub page_size: PageSize,
}

/// The EPT paging structures of one domain, identified by the host-physical
/// address of their PML4.
///
/// `Ept` owns its page-table frames but holds no allocator; every operation
/// takes the allocator the tables came from. Dropping an `Ept` without
/// calling [`destroy`](Self::destroy) leaks its tables. Changes to existing
/// mappings (`unmap`, `protect`) need an `INVEPT` by the caller before they
/// are guaranteed to take effect.
///
/// Intermediate entries created by this crate grant read, write and execute;
/// rights are enforced at the leaf. The processor, however, uses the AND of
/// the rights at every level, and so does [`translate`](Self::translate).
#[derive(Debug)]
pub struct Ept {
    root: u64,
}

/// Bytes covered by one entry at `level`.
const fn level_size(level: usize) -> u64 {
    1 << (12 + 9 * level)
}

/// Index into the table at `level` for `gpa`.
const fn index(gpa: u64, level: usize) -> usize {
    ((gpa >> (12 + 9 * level)) & 0x1ff) as usize
}

/// Whether an entry is present (any of bits 2:0 set).
const fn is_present(entry: u64) -> bool {
    entry & bits::RWX != 0
}

/// Whether a present entry at `level` maps a page.
const fn is_leaf(entry: u64, level: usize) -> bool {
    level == 0 || (level < ROOT_LEVEL && entry & bits::LARGE != 0)
}

/// Whether a present entry at `level` references a lower-level table.
const fn is_table(entry: u64, level: usize) -> bool {
    level > 0 && entry & bits::LARGE == 0
}

/// Page-frame bits of a leaf entry at `level`.
const fn leaf_frame(entry: u64, level: usize) -> u64 {
    entry & bits::ADDR_MASK & !(level_size(level) - 1)
}

/// Whether a table has no present entry. The scan starts just after
/// `cleared` (the entry the caller has just zeroed) and wraps around: a
/// range unmapped in ascending order finds its next entry at once, so
/// unmapping n pages costs O(n), not O(n x 512).
fn table_is_empty(alloc: &impl FrameAllocator, table: u64, cleared: usize) -> bool {
    let t = alloc.table(table);
    let start = (cleared + 1) % t.len();
    t[start..]
        .iter()
        .chain(&t[..start])
        .all(|&e| !is_present(e))
}

/// Checks rights for a leaf entry.
fn check_access(access: Access) -> Result<(), EptError> {
    let raw = access.bits();
    if raw == 0
        || raw & !bits::RWX != 0
        || (access.contains(Access::WRITE) && !access.contains(Access::READ))
    {
        return Err(EptError::InvalidAccess);
    }
    Ok(())
}

/// Checks that `gpa` is in range and aligned to `size`.
fn check_gpa(gpa: u64, size: PageSize) -> Result<(), EptError> {
    if gpa >= GPA_LIMIT {
        return Err(EptError::OutOfRange { gpa });
    }
    if !gpa.is_multiple_of(size.bytes()) {
        return Err(EptError::Misaligned { addr: gpa });
    }
    Ok(())
}

/// Allocates a table frame, checks it can be referenced by an entry, and
/// zeroes it.
fn allocate_table(alloc: &mut impl FrameAllocator) -> Option<u64> {
    let frame = alloc.allocate_frame()?;
    if !frame.is_multiple_of(FRAME_SIZE) || frame >= HPA_LIMIT {
        alloc.deallocate_frame(frame);
        return None;
    }
    alloc.table_mut(frame).fill(0);
    Some(frame)
}

/// Frees the table at `table` (a table at `level`) and every table below it.
fn free_tree(alloc: &mut impl FrameAllocator, table: u64, level: usize) {
    if level > 0 {
        for i in 0..ENTRIES_PER_TABLE {
            let entry = alloc.table(table)[i];
            if is_present(entry) && is_table(entry, level) {
                free_tree(alloc, entry & bits::ADDR_MASK, level - 1);
            }
        }
    }
    alloc.deallocate_frame(table);
}

/// Counts the table at `table` (a table at `level`) and every table below it.
fn count_tree(alloc: &impl FrameAllocator, table: u64, level: usize) -> usize {
    let mut count = 1;
    if level > 0 {
        for &entry in alloc.table(table).iter() {
            if is_present(entry) && is_table(entry, level) {
                count += count_tree(alloc, entry & bits::ADDR_MASK, level - 1);
            }
        }
    }
    count
}

/// Page size `map_range` uses at `gpa`/`hpa` with `remaining` bytes left.
fn range_step(gpa: u64, hpa: u64, remaining: u64) -> PageSize {
    let big = PageSize::Size2M.bytes();
    if gpa.is_multiple_of(big) && hpa.is_multiple_of(big) && remaining >= big {
        PageSize::Size2M
    } else {
        PageSize::Size4K
    }
}

/// Checks a 4 KiB-granular range and returns its (exclusive) end.
fn check_range(gpa: u64, len: u64) -> Result<u64, EptError> {
    if !gpa.is_multiple_of(FRAME_SIZE) {
        return Err(EptError::Misaligned { addr: gpa });
    }
    if !len.is_multiple_of(FRAME_SIZE) {
        return Err(EptError::Misaligned { addr: len });
    }
    let end = gpa.checked_add(len).ok_or(EptError::Overflow)?;
    if end > GPA_LIMIT {
        return Err(EptError::OutOfRange { gpa });
    }
    Ok(end)
}

impl Ept {
    /// Creates empty paging structures by allocating a zeroed PML4.
    pub fn new(alloc: &mut impl FrameAllocator) -> Result<Ept, EptError> {
        let root = allocate_table(alloc).ok_or(EptError::OutOfFrames)?;
        Ok(Ept { root })
    }

    /// Host-physical address of the PML4.
    pub fn root(&self) -> u64 {
        self.root
    }

    /// EPT pointer for the VMCS: write-back paging-structure memory type
    /// (bits 2:0 = 6), page-walk length 4 (bits 5:3 = 3), accessed/dirty
    /// flags enabled if `accessed_dirty` (bit 6), and the PML4 address.
    pub fn eptp(&self, accessed_dirty: bool) -> u64 {
        const WALK_LENGTH_4: u64 = 3 << 3;
        let ad = if accessed_dirty { 1 << 6 } else { 0 };
        self.root | ad | WALK_LENGTH_4 | MemoryType::WriteBack as u64
    }

    /// Maps the page of `size` at `gpa` to `hpa` with `access` and memory
    /// type `mt`.
    ///
    /// Both addresses must be aligned to `size`. Refuses any overlap with an
    /// existing mapping (`AlreadyMapped`). Missing intermediate tables are
    /// allocated with full rights; existing intermediate entries are left
    /// as they are. On error nothing is changed.
    pub fn map(
        &mut self,
        alloc: &mut impl FrameAllocator,
        gpa: u64,
        hpa: u64,
        size: PageSize,
        access: Access,
        mt: MemoryType,
    ) -> Result<(), EptError> {
        check_access(access)?;
        check_gpa(gpa, size)?;
        if !hpa.is_multiple_of(size.bytes()) {
            return Err(EptError::Misaligned { addr: hpa });
        }
        if hpa >= HPA_LIMIT {
            return Err(EptError::OutOfRange { gpa });
        }
        let leaf = size.level();

        // Walk down as far as tables exist, without changing anything.
        let mut table = self.root;
        let mut level = ROOT_LEVEL;
        while level > leaf {
            let entry = alloc.table(table)[index(gpa, level)];
            if !is_present(entry) {
                break;
            }
            if !is_table(entry, level) {
                return Err(EptError::AlreadyMapped { gpa });
            }
            table = entry & bits::ADDR_MASK;
            level -= 1;
        }

        // At the leaf level the slot must be free, or reference a table
        // that maps nothing (which the new leaf then replaces).
        let mut stale = None;
        if level == leaf {
            let entry = alloc.table(table)[index(gpa, leaf)];
            if is_present(entry) {
                if !is_table(entry, leaf) {
                    return Err(EptError::AlreadyMapped { gpa });
                }
                let child = entry & bits::ADDR_MASK;
                if !table_is_empty(alloc, child, 0) {
                    return Err(EptError::AlreadyMapped { gpa });
                }
                stale = Some(child);
            }
        }

        // Allocate every missing table before touching the structures.
        let needed = level - leaf;
        let mut fresh = [0u64; ROOT_LEVEL];
        let mut got = 0;
        while got < needed {
            match allocate_table(alloc) {
                Some(frame) => {
                    fresh[got] = frame;
                    got += 1;
                }
                None => {
                    for &frame in &fresh[..got] {
                        alloc.deallocate_frame(frame);
                    }
                    return Err(EptError::OutOfFrames);
                }
            }
        }

        for &frame in &fresh[..needed] {
            alloc.table_mut(table)[index(gpa, level)] = frame | bits::RWX;
            table = frame;
            level -= 1;
        }
        let large = if leaf > 0 { bits::LARGE } else { 0 };
        alloc.table_mut(table)[index(gpa, leaf)] =
            hpa | access.bits() | ((mt as u64) << bits::MT_SHIFT) | large;
        if let Some(child) = stale {
            alloc.deallocate_frame(child);
        }
        Ok(())
    }

    /// Maps `len` bytes at `gpa` to `hpa`, using 2 MiB pages wherever both
    /// addresses are 2 MiB aligned and at least 2 MiB remain, 4 KiB pages
    /// otherwise (never 1 GiB pages).
    ///
    /// `gpa`, `hpa` and `len` must be 4 KiB aligned. On error everything
    /// mapped so far is unmapped again.
    pub fn map_range(
        &mut self,
        alloc: &mut impl FrameAllocator,
        gpa: u64,
        hpa: u64,
        len: u64,
        access: Access,
        mt: MemoryType,
    ) -> Result<(), EptError> {
        check_access(access)?;
        check_range(gpa, len)?;
        if !hpa.is_multiple_of(FRAME_SIZE) {
            return Err(EptError::Misaligned { addr: hpa });
        }
        let hpa_end = hpa.checked_add(len).ok_or(EptError::Overflow)?;
        if hpa_end > HPA_LIMIT {
            return Err(EptError::OutOfRange { gpa });
        }

        let mut done = 0;
        while done < len {
            let size = range_step(gpa + done, hpa + done, len - done);
            if let Err(err) = self.map(alloc, gpa + done, hpa + done, size, access, mt) {
                self.unmap_mapped(alloc, gpa, hpa, done);
                return Err(err);
            }
            done += size.bytes();
        }
        Ok(())
    }

    /// Undoes the first `done` bytes of a `map_range(gpa, hpa, ..)`.
    fn unmap_mapped(&mut self, alloc: &mut impl FrameAllocator, gpa: u64, hpa: u64, done: u64) {
        let mut off = 0;
        while off < done {
            let size = range_step(gpa + off, hpa + off, done - off);
            // Cannot fail: this exact page was mapped by the caller.
            let _ = self.unmap(alloc, gpa + off, size);
            off += size.bytes();
        }
    }

    /// Finds the tables on the path to the leaf entry for (`gpa`, `size`).
    /// `path[l]` is the table at level `l`, for `l >= size.level()`.
    fn locate(
        &self,
        alloc: &impl FrameAllocator,
        gpa: u64,
        size: PageSize,
    ) -> Result<[u64; ROOT_LEVEL + 1], EptError> {
        check_gpa(gpa, size)?;
        let leaf = size.level();
        let mut path = [0u64; ROOT_LEVEL + 1];
        let mut table = self.root;
        let mut level = ROOT_LEVEL;
        loop {
            path[level] = table;
            let entry = alloc.table(table)[index(gpa, level)];
            if !is_present(entry) {
                return Err(EptError::NotMapped { gpa });
            }
            if level == leaf {
                if is_leaf(entry, level) {
                    return Ok(path);
                }
                if is_table(entry, level) && table_is_empty(alloc, entry & bits::ADDR_MASK, 0) {
                    return Err(EptError::NotMapped { gpa });
                }
                return Err(EptError::SizeMismatch { gpa });
            }
            if !is_table(entry, level) {
                return Err(EptError::SizeMismatch { gpa });
            }
            table = entry & bits::ADDR_MASK;
            level -= 1;
        }
    }

    /// Unmaps the page of `size` at `gpa` and returns the host-physical
    /// address it mapped. Page tables left empty (PT, PD, PDPT; never the
    /// PML4) are freed. On error nothing is changed.
    pub fn unmap(
        &mut self,
        alloc: &mut impl FrameAllocator,
        gpa: u64,
        size: PageSize,
    ) -> Result<u64, EptError> {
        let path = self.locate(alloc, gpa, size)?;
        let leaf = size.level();
        let slot = &mut alloc.table_mut(path[leaf])[index(gpa, leaf)];
        let entry = *slot;
        *slot = 0;

        let mut level = leaf;
        while level < ROOT_LEVEL && table_is_empty(alloc, path[level], index(gpa, level)) {
            alloc.table_mut(path[level + 1])[index(gpa, level + 1)] = 0;
            alloc.deallocate_frame(path[level]);
            level += 1;
        }
        Ok(leaf_frame(entry, leaf))
    }

    /// Unmaps every page in `len` bytes at `gpa`, whatever their sizes.
    ///
    /// `gpa` and `len` must be 4 KiB aligned; the whole range must be mapped
    /// (`NotMapped` otherwise) by pages lying entirely inside it
    /// (`SizeMismatch` otherwise). The range is checked before anything is
    /// unmapped, so on error nothing is changed.
    pub fn unmap_range(
        &mut self,
        alloc: &mut impl FrameAllocator,
        gpa: u64,
        len: u64,
    ) -> Result<(), EptError> {
        check_range(gpa, len)?;
        let mut off = 0;
        while off < len {
            let at = gpa + off;
            let size = self
                .translate(alloc, at)
                .ok_or(EptError::NotMapped { gpa: at })?
                .page_size;
            if !at.is_multiple_of(size.bytes()) || len - off < size.bytes() {
                return Err(EptError::SizeMismatch { gpa: at });
            }
            off += size.bytes();
        }
        off = 0;
        while off < len {
            let at = gpa + off;
            let size = self
                .translate(alloc, at)
                .ok_or(EptError::NotMapped { gpa: at })?
                .page_size;
            self.unmap(alloc, at, size)?;
            off += size.bytes();
        }
        Ok(())
    }

    /// Replaces the rights of the page of `size` at `gpa` with `access`,
    /// keeping its host-physical address and memory type. On error nothing
    /// is changed.
    pub fn protect(
        &mut self,
        alloc: &mut impl FrameAllocator,
        gpa: u64,
        size: PageSize,
        access: Access,
    ) -> Result<(), EptError> {
        check_access(access)?;
        let path = self.locate(alloc, gpa, size)?;
        let leaf = size.level();
        let slot = &mut alloc.table_mut(path[leaf])[index(gpa, leaf)];
        *slot = (*slot & !bits::RWX) | access.bits();
        Ok(())
    }

    /// Walks the structures for `gpa` as the processor would.
    ///
    /// Returns `None` if `gpa` is not mapped (or is beyond 48 bits, or the
    /// walk meets an entry the processor would treat as a misconfiguration,
    /// such as a reserved memory type). The returned rights are the AND of
    /// the rights at every level.
    pub fn translate(&self, alloc: &impl FrameAllocator, gpa: u64) -> Option<Translation> {
        if gpa >= GPA_LIMIT {
            return None;
        }
        let mut rights = bits::RWX;
        let mut table = self.root;
        let mut level = ROOT_LEVEL;
        loop {
            let entry = alloc.table(table)[index(gpa, level)];
            if !is_present(entry) {
                return None;
            }
            rights &= entry;
            if is_leaf(entry, level) {
                let raw_mt = ((entry & bits::MT_MASK) >> bits::MT_SHIFT) as u8;
                let memory_type = MemoryType::from_raw(raw_mt)?;
                let offset = gpa & (level_size(level) - 1);
                return Some(Translation {
                    hpa: leaf_frame(entry, level) | offset,
                    access: Access::from_bits_truncate(rights),
                    memory_type,
                    page_size: PageSize::from_level(level),
                });
            }
            if !is_table(entry, level) {
                return None;
            }
            table = entry & bits::ADDR_MASK;
            level -= 1;
        }
    }

    /// Frees every paging-structure frame, including the PML4. Mapped frames
    /// are not freed; they were never the crate's.
    pub fn destroy(self, alloc: &mut impl FrameAllocator) {
        free_tree(alloc, self.root, ROOT_LEVEL);
    }

    /// Number of paging-structure frames in use, including the PML4.
    pub fn table_frames(&self, alloc: &impl FrameAllocator) -> usize {
        count_tree(alloc, self.root, ROOT_LEVEL)
    }
}

#[cfg(test)]
mod tests;
