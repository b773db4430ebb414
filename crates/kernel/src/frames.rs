//! The core's physical memory allocator: a bitmap of the 4 KiB frames below
//! [`LIMIT`], marked free from the Multiboot2 memory map minus everything in
//! use at boot (the first mebibyte, the core's image, the boot information,
//! the modules).
//!
//! Allocations take any power-of-two alignment; frees are checked (a frame
//! freed twice or never managed is refused, not corrupted) and never fail
//! for lack of space, so memory given back is never lost. It never touches
//! the memory it manages, so it unit-tests on the host.

/// Size of a frame.
pub const FRAME: u64 = 4096;
/// Physical memory at and above this address is not managed (the boot
/// identity map ends there).
pub const LIMIT: u64 = 4 << 30;
const FRAMES: usize = (LIMIT / FRAME) as usize;
const WORDS: usize = FRAMES / 64;

/// A half-open physical range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// Why a range could not be returned to the allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeError {
    /// Part of the range is already free (a double free).
    AlreadyFree,
    /// The range is empty, unaligned, wraps around or lies beyond [`LIMIT`].
    Invalid,
}

/// Free physical memory: one bit per frame, set when the frame is free.
pub struct Frames {
    bits: [u64; WORDS],
    free_frames: usize,
}

impl Default for Frames {
    fn default() -> Self {
        Self::new()
    }
}

impl Frames {
    /// An allocator with no memory. (Large: keep it in a static.)
    pub const fn new() -> Frames {
        Frames {
            bits: [0; WORDS],
            free_frames: 0,
        }
    }

    /// Marks `available` ranges free, minus `reserved` ones, limited to
    /// `[floor, LIMIT)` and shrunk to whole frames. Frees on top of what is
    /// already free are ignored (overlapping map entries are harmless).
    pub fn add_available(
        &mut self,
        available: impl Iterator<Item = Range>,
        reserved: &[Range],
        floor: u64,
    ) {
        for area in available {
            let start = align_up(area.start.max(floor), FRAME);
            let end = area.end.min(LIMIT) & !(FRAME - 1);
            let mut frame = start;
            while frame < end {
                let taken = reserved
                    .iter()
                    .any(|r| frame < r.end && r.start < frame + FRAME);
                if !taken && !self.is_free(index(frame)) {
                    self.set(index(frame), true);
                    self.free_frames += 1;
                }
                frame += FRAME;
            }
        }
    }

    /// Total free bytes.
    pub fn free_bytes(&self) -> u64 {
        self.free_frames as u64 * FRAME
    }

    /// The free memory as maximal runs of frames, in address order.
    pub fn runs(&self) -> impl Iterator<Item = Range> + '_ {
        let mut i = 0usize;
        core::iter::from_fn(move || {
            while i < FRAMES && !self.is_free(i) {
                // Skip whole words of used frames.
                if i.is_multiple_of(64) && self.bits[i / 64] == 0 {
                    i += 64;
                } else {
                    i += 1;
                }
            }
            if i == FRAMES {
                return None;
            }
            let start = i;
            while i < FRAMES && self.is_free(i) {
                i += 1;
            }
            Some(Range {
                start: start as u64 * FRAME,
                end: i as u64 * FRAME,
            })
        })
    }

    /// Allocates `size` bytes (a multiple of [`FRAME`]) aligned to `align`
    /// (a power of two, at least [`FRAME`]); first fit from low addresses.
    pub fn allocate(&mut self, size: u64, align: u64) -> Option<u64> {
        if size == 0 || !size.is_multiple_of(FRAME) || !align.is_power_of_two() || align < FRAME {
            return None;
        }
        let n = usize::try_from(size / FRAME).ok()?;
        let step = usize::try_from(align / FRAME).ok()?;
        if n > self.free_frames {
            return None;
        }
        let mut i = 0usize;
        while i.checked_add(n)? <= FRAMES {
            match self.first_used(i, n) {
                None => {
                    for f in i..i + n {
                        self.set(f, false);
                    }
                    self.free_frames -= n;
                    return Some(i as u64 * FRAME);
                }
                Some(used) => i = (used + 1).div_ceil(step).checked_mul(step)?,
            }
        }
        None
    }

    /// Returns `[start, start + size)` to the allocator. Nothing changes
    /// when any frame of it is already free.
    pub fn free(&mut self, start: u64, size: u64) -> Result<(), FreeError> {
        let end = start.checked_add(size).ok_or(FreeError::Invalid)?;
        if size == 0 || !start.is_multiple_of(FRAME) || !size.is_multiple_of(FRAME) || end > LIMIT {
            return Err(FreeError::Invalid);
        }
        let (first, n) = (index(start), (size / FRAME) as usize);
        if (first..first + n).any(|f| self.is_free(f)) {
            return Err(FreeError::AlreadyFree);
        }
        for f in first..first + n {
            self.set(f, true);
        }
        self.free_frames += n;
        Ok(())
    }

    fn is_free(&self, frame: usize) -> bool {
        self.bits[frame / 64] & (1 << (frame % 64)) != 0
    }

    fn set(&mut self, frame: usize, free: bool) {
        let (w, b) = (frame / 64, frame % 64);
        if free {
            self.bits[w] |= 1 << b;
        } else {
            self.bits[w] &= !(1 << b);
        }
    }

    /// The first frame in `[from, from + n)` that is not free.
    fn first_used(&self, from: usize, n: usize) -> Option<usize> {
        let end = from + n;
        let mut f = from;
        while f < end {
            if f.is_multiple_of(64) && f + 64 <= end {
                let w = self.bits[f / 64];
                if w == u64::MAX {
                    f += 64;
                    continue;
                }
                return Some(f + w.trailing_ones() as usize);
            }
            if !self.is_free(f) {
                return Some(f);
            }
            f += 1;
        }
        None
    }
}

fn index(addr: u64) -> usize {
    (addr / FRAME) as usize
}

fn align_up(x: u64, align: u64) -> u64 {
    x.checked_add(align - 1)
        .map_or(!(align - 1), |v| v & !(align - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn r(start: u64, end: u64) -> Range {
        Range { start, end }
    }

    fn frames(available: &[Range], reserved: &[Range], floor: u64) -> Box<Frames> {
        let mut f = Box::new(Frames::new());
        f.add_available(available.iter().copied(), reserved, floor);
        f
    }

    #[test]
    fn reserved_ranges_the_floor_and_the_limit_are_never_free() {
        let map = [
            r(0, 0x9fc00),
            r(MIB, 128 * MIB),
            r(LIMIT - MIB, LIMIT + MIB),
        ];
        let reserved = [
            r(MIB, 3 * MIB + 5),
            r(10 * MIB, 11 * MIB),
            r(0x9000, 0x9500),
        ];
        let f = frames(&map, &reserved, MIB);
        let runs: Vec<_> = f.runs().collect();
        assert_eq!(
            runs,
            [
                r(3 * MIB + FRAME, 10 * MIB),
                r(11 * MIB, 128 * MIB),
                r(LIMIT - MIB, LIMIT)
            ]
        );
        assert_eq!(f.free_bytes(), 7 * MIB - FRAME + 117 * MIB + MIB);
    }

    #[test]
    fn overlapping_map_entries_count_once() {
        let f = frames(&[r(MIB, 4 * MIB), r(2 * MIB, 5 * MIB)], &[], 0);
        assert_eq!(f.free_bytes(), 4 * MIB);
    }

    #[test]
    fn allocations_are_aligned_disjoint_and_inside_free_memory() {
        let mut f = frames(&[r(MIB, 64 * MIB)], &[], 0);
        let a = f.allocate(FRAME, FRAME).unwrap();
        let b = f.allocate(4 * MIB, 2 * MIB).unwrap();
        let c = f.allocate(FRAME, FRAME).unwrap();
        assert_eq!(a, MIB);
        assert_eq!(b % (2 * MIB), 0);
        assert!(a + FRAME <= b || b + 4 * MIB <= a);
        assert!(c != a && (c < b || c >= b + 4 * MIB));
        assert_eq!(f.free_bytes(), 63 * MIB - 4 * MIB - 2 * FRAME);
        f.free(b, 4 * MIB).unwrap();
        f.free(a, FRAME).unwrap();
        f.free(c, FRAME).unwrap();
        assert_eq!(f.runs().collect::<Vec<_>>(), [r(MIB, 64 * MIB)]);
    }

    #[test]
    fn bad_requests_and_double_frees_are_refused() {
        let mut f = frames(&[r(MIB, 2 * MIB)], &[], 0);
        assert_eq!(f.allocate(0, FRAME), None);
        assert_eq!(f.allocate(100, FRAME), None);
        assert_eq!(f.allocate(FRAME, 3 * FRAME), None);
        assert_eq!(f.allocate(2 * MIB, FRAME), None);
        assert_eq!(f.allocate(!(FRAME - 1), FRAME), None);
        assert_eq!(f.free(MIB, FRAME), Err(FreeError::AlreadyFree));
        assert_eq!(
            f.free(u64::MAX - FRAME + 1, 2 * FRAME),
            Err(FreeError::Invalid)
        );
        assert_eq!(f.free(5, FRAME), Err(FreeError::Invalid));
        assert_eq!(f.free(LIMIT, FRAME), Err(FreeError::Invalid));
        let all = f.allocate(MIB, FRAME).unwrap();
        assert_eq!(f.allocate(FRAME, FRAME), None);
        // A free that overlaps free memory changes nothing.
        f.free(all, FRAME).unwrap();
        assert_eq!(f.free(all, 2 * FRAME), Err(FreeError::AlreadyFree));
        assert_eq!(f.free_bytes(), FRAME);
    }

    #[test]
    fn random_allocate_free_sequences_conserve_memory() {
        let total = 32 * MIB;
        let mut f = frames(&[r(0, total)], &[], 0);
        let mut live: Vec<(u64, u64)> = Vec::new();
        let mut seed = 0x1234_5678_9abc_def0u64;
        for _ in 0..3000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if !seed.is_multiple_of(3) || live.is_empty() {
                let size = FRAME * (1 + seed % 64);
                let align = FRAME << (seed % 6);
                if let Some(a) = f.allocate(size, align) {
                    assert_eq!(a % align, 0);
                    assert!(a + size <= total);
                    for &(s, l) in &live {
                        assert!(a + size <= s || s + l <= a, "overlap");
                    }
                    live.push((a, size));
                }
            } else {
                let (s, l) = live.swap_remove((seed as usize / 3) % live.len());
                f.free(s, l).unwrap();
            }
            let used: u64 = live.iter().map(|x| x.1).sum();
            assert_eq!(f.free_bytes() + used, total);
        }
        for (s, l) in live.drain(..) {
            f.free(s, l).unwrap();
        }
        assert_eq!(f.runs().collect::<Vec<_>>(), [r(0, total)]);
    }
}

/// The core's pool: a small, contiguous range reserved at boot for VMCS
/// regions, I/O bitmaps and EPT tables, so that domains' memory can never
/// starve the core of what it needs to manage them.
pub struct Pool {
    base: u64,
    frames: usize,
    bits: [u64; POOL_WORDS],
    used: usize,
}

const POOL_WORDS: usize = 16;
/// Most frames a pool can hold.
pub const POOL_MAX_FRAMES: usize = POOL_WORDS * 64;

impl Pool {
    /// A pool over `frames` frames from `base` (at most [`POOL_MAX_FRAMES`]).
    pub fn new(base: u64, frames: usize) -> Pool {
        let frames = frames.min(POOL_MAX_FRAMES);
        let mut bits = [0u64; POOL_WORDS];
        for f in 0..frames {
            bits[f / 64] |= 1 << (f % 64);
        }
        Pool {
            base,
            frames,
            bits,
            used: 0,
        }
    }

    /// First byte of the pool.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Frames in the pool.
    pub fn capacity(&self) -> usize {
        self.frames
    }

    /// Frames handed out.
    pub fn used(&self) -> usize {
        self.used
    }

    /// One frame, or `None` when the pool is exhausted.
    pub fn allocate(&mut self) -> Option<u64> {
        let w = self.bits.iter().position(|&w| w != 0)?;
        let b = self.bits[w].trailing_zeros() as usize;
        self.bits[w] &= !(1 << b);
        self.used += 1;
        Some(self.base + ((w * 64 + b) as u64) * FRAME)
    }

    /// Returns a frame; `false` (and no change) if it is not one of the
    /// pool's frames in use.
    pub fn free(&mut self, frame: u64) -> bool {
        let Some(offset) = frame.checked_sub(self.base) else {
            return false;
        };
        if !offset.is_multiple_of(FRAME) || offset / FRAME >= self.frames as u64 {
            return false;
        }
        let f = (offset / FRAME) as usize;
        if self.bits[f / 64] & (1 << (f % 64)) != 0 {
            return false;
        }
        self.bits[f / 64] |= 1 << (f % 64);
        self.used -= 1;
        true
    }
}

#[cfg(test)]
mod pool_tests {
    use super::*;

    #[test]
    fn the_pool_hands_out_each_frame_once_and_takes_back_only_its_own() {
        let mut p = Pool::new(0x10_0000, 3);
        let a = p.allocate().unwrap();
        let b = p.allocate().unwrap();
        let c = p.allocate().unwrap();
        assert_eq!(p.allocate(), None);
        assert_eq!((a, b, c), (0x10_0000, 0x10_1000, 0x10_2000));
        assert_eq!(p.used(), 3);
        assert!(p.free(b));
        assert!(!p.free(b), "double free refused");
        assert!(!p.free(0x10_3000), "beyond the pool");
        assert!(!p.free(0x0f_f000), "below the pool");
        assert!(!p.free(0x10_0010), "unaligned");
        assert_eq!(p.allocate(), Some(b));
        assert_eq!(Pool::new(0, 10_000).capacity(), POOL_MAX_FRAMES);
    }
}
