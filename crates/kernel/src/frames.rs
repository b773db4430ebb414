//! The core's physical memory allocator: free ranges taken from the
//! Multiboot2 memory map, minus everything that is in use at boot (the first
//! mebibyte, the core's image, the boot information, the modules).
//!
//! It is a bounded first-fit list of free ranges: allocations carve from a
//! range with any alignment, frees merge with their neighbours. It never
//! touches the memory it manages, so it unit-tests on the host.

/// Size of a frame.
pub const FRAME: u64 = 4096;
/// Most free ranges tracked; a free that would need more is refused.
pub const MAX_RANGES: usize = 64;

/// A half-open physical range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl Range {
    /// Bytes in the range.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
}

/// Why a range could not be returned to the allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeError {
    /// The range overlaps memory that is already free (a double free).
    Overlap,
    /// The range list is full.
    Full,
    /// The range is empty, unaligned or wraps around.
    Invalid,
}

/// Free physical memory.
#[derive(Debug, Clone)]
pub struct Frames {
    ranges: [Range; MAX_RANGES],
    count: usize,
}

impl Default for Frames {
    fn default() -> Self {
        Self::new()
    }
}

impl Frames {
    /// An allocator with no memory.
    pub const fn new() -> Frames {
        Frames {
            ranges: [Range { start: 0, end: 0 }; MAX_RANGES],
            count: 0,
        }
    }

    /// Builds the allocator from `available` ranges minus `reserved` ones,
    /// limited to `[floor, ceiling)`. Ranges are shrunk to whole frames.
    /// Ranges beyond [`MAX_RANGES`] are dropped (and counted in the result).
    pub fn from_map(
        available: impl Iterator<Item = Range>,
        reserved: &[Range],
        floor: u64,
        ceiling: u64,
    ) -> (Frames, usize) {
        let mut frames = Frames::new();
        let mut dropped = 0;
        for area in available {
            let start = align_up(area.start.max(floor), FRAME);
            let end = area.end.min(ceiling) & !(FRAME - 1);
            if start >= end {
                continue;
            }
            // Subtract the reserved ranges one piece at a time.
            let mut pieces = [Range { start, end }; MAX_RANGES];
            let mut n = 1;
            for r in reserved {
                let r_start = r.start & !(FRAME - 1);
                let r_end = align_up(r.end, FRAME);
                let mut next = [Range { start: 0, end: 0 }; MAX_RANGES];
                let mut m = 0;
                for p in &pieces[..n] {
                    for q in [
                        Range {
                            start: p.start,
                            end: p.end.min(r_start),
                        },
                        Range {
                            start: p.start.max(r_end),
                            end: p.end,
                        },
                    ] {
                        if q.start < q.end {
                            if m < MAX_RANGES {
                                next[m] = q;
                                m += 1;
                            } else {
                                dropped += 1;
                            }
                        }
                    }
                }
                pieces = next;
                n = m;
            }
            for p in &pieces[..n] {
                if frames.free(p.start, p.len()).is_err() {
                    dropped += 1;
                }
            }
        }
        (frames, dropped)
    }

    /// The free ranges, sorted by address.
    pub fn ranges(&self) -> &[Range] {
        &self.ranges[..self.count]
    }

    /// Total free bytes.
    pub fn free_bytes(&self) -> u64 {
        self.ranges().iter().map(Range::len).sum()
    }

    /// Allocates `size` bytes (a multiple of [`FRAME`]) aligned to `align`
    /// (a power of two, at least [`FRAME`]). `None` when no range fits or
    /// splitting a range would exceed [`MAX_RANGES`].
    pub fn allocate(&mut self, size: u64, align: u64) -> Option<u64> {
        if size == 0 || !size.is_multiple_of(FRAME) || !align.is_power_of_two() || align < FRAME {
            return None;
        }
        for i in 0..self.count {
            let r = self.ranges[i];
            let start = align_up_checked(r.start, align)?;
            let Some(end) = start.checked_add(size) else {
                continue;
            };
            if end > r.end {
                continue;
            }
            let before = Range {
                start: r.start,
                end: start,
            };
            let after = Range {
                start: end,
                end: r.end,
            };
            match (before.len() > 0, after.len() > 0) {
                (false, false) => self.remove(i),
                (true, false) => self.ranges[i] = before,
                (false, true) => self.ranges[i] = after,
                (true, true) => {
                    if self.count == MAX_RANGES {
                        continue;
                    }
                    self.ranges[i] = before;
                    self.insert(i + 1, after);
                }
            }
            return Some(start);
        }
        None
    }

    /// Returns `[start, start + size)` to the free list.
    pub fn free(&mut self, start: u64, size: u64) -> Result<(), FreeError> {
        let end = start.checked_add(size).ok_or(FreeError::Invalid)?;
        if size == 0 || !start.is_multiple_of(FRAME) || !size.is_multiple_of(FRAME) {
            return Err(FreeError::Invalid);
        }
        let i = self.ranges().partition_point(|r| r.end <= start);
        if i < self.count && self.ranges[i].start < end {
            return Err(FreeError::Overlap);
        }
        let merge_left = i > 0 && self.ranges[i - 1].end == start;
        let merge_right = i < self.count && self.ranges[i].start == end;
        match (merge_left, merge_right) {
            (true, true) => {
                self.ranges[i - 1].end = self.ranges[i].end;
                self.remove(i);
            }
            (true, false) => self.ranges[i - 1].end = end,
            (false, true) => self.ranges[i].start = start,
            (false, false) => {
                if self.count == MAX_RANGES {
                    return Err(FreeError::Full);
                }
                self.insert(i, Range { start, end });
            }
        }
        Ok(())
    }

    fn remove(&mut self, i: usize) {
        self.ranges.copy_within(i + 1..self.count, i);
        self.count -= 1;
    }

    fn insert(&mut self, i: usize, r: Range) {
        self.ranges.copy_within(i..self.count, i + 1);
        self.ranges[i] = r;
        self.count += 1;
    }
}

fn align_up(x: u64, align: u64) -> u64 {
    align_up_checked(x, align).unwrap_or(!(align - 1))
}

fn align_up_checked(x: u64, align: u64) -> Option<u64> {
    Some(x.checked_add(align - 1)? & !(align - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn r(start: u64, end: u64) -> Range {
        Range { start, end }
    }

    #[test]
    fn reserved_ranges_floor_and_ceiling_are_never_free() {
        let map = [r(0, 0x9fc00), r(MIB, 128 * MIB)];
        let reserved = [
            r(MIB, 3 * MIB + 5),
            r(10 * MIB, 11 * MIB),
            r(0x9000, 0x9500),
        ];
        let (f, dropped) = Frames::from_map(map.into_iter(), &reserved, MIB, 64 * MIB);
        assert_eq!(dropped, 0);
        assert_eq!(
            f.ranges(),
            [r(3 * MIB + FRAME, 10 * MIB), r(11 * MIB, 64 * MIB)]
        );
    }

    #[test]
    fn allocations_are_aligned_disjoint_and_inside_free_memory() {
        let (mut f, _) = Frames::from_map([r(MIB, 64 * MIB)].into_iter(), &[], 0, u64::MAX);
        let a = f.allocate(FRAME, FRAME).unwrap();
        let b = f.allocate(4 * MIB, 2 * MIB).unwrap();
        let c = f.allocate(FRAME, FRAME).unwrap();
        assert_eq!(b % (2 * MIB), 0);
        assert!(a + FRAME <= b || b + 4 * MIB <= a);
        assert!(c != a && (c < b || c >= b + 4 * MIB));
        assert_eq!(f.free_bytes(), 63 * MIB - 4 * MIB - 2 * FRAME);
        f.free(b, 4 * MIB).unwrap();
        f.free(a, FRAME).unwrap();
        f.free(c, FRAME).unwrap();
        assert_eq!(f.ranges(), [r(MIB, 64 * MIB)], "frees merge back");
    }

    #[test]
    fn bad_requests_and_double_frees_are_refused() {
        let (mut f, _) = Frames::from_map([r(MIB, 2 * MIB)].into_iter(), &[], 0, u64::MAX);
        assert_eq!(f.allocate(0, FRAME), None);
        assert_eq!(f.allocate(100, FRAME), None);
        assert_eq!(f.allocate(FRAME, 3 * FRAME), None);
        assert_eq!(f.allocate(2 * MIB, FRAME), None);
        assert_eq!(f.free(MIB, FRAME), Err(FreeError::Overlap));
        assert_eq!(
            f.free(u64::MAX - FRAME + 1, 2 * FRAME),
            Err(FreeError::Invalid)
        );
        assert_eq!(f.free(5, FRAME), Err(FreeError::Invalid));
        let all = f.allocate(MIB, FRAME).unwrap();
        assert_eq!(f.allocate(FRAME, FRAME), None);
        f.free(all, MIB).unwrap();
    }

    #[test]
    fn the_range_list_is_bounded() {
        let mut f = Frames::new();
        for i in 0..MAX_RANGES as u64 {
            f.free(i * 2 * FRAME, FRAME).unwrap();
        }
        assert_eq!(f.free(1000 * FRAME, FRAME), Err(FreeError::Full));
        // Merging still works when full.
        f.free(FRAME, FRAME).unwrap();
    }

    #[test]
    fn random_allocate_free_sequences_conserve_memory() {
        let total = 32 * MIB;
        let (mut f, _) = Frames::from_map([r(0, total)].into_iter(), &[], 0, u64::MAX);
        let mut live: Vec<(u64, u64)> = Vec::new();
        let mut seed = 0x1234_5678_9abc_def0u64;
        for _ in 0..5000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if !seed.is_multiple_of(3) || live.is_empty() {
                let size = FRAME * (1 + seed % 64);
                let align = FRAME << (seed % 5);
                if let Some(a) = f.allocate(size, align) {
                    assert_eq!(a % align, 0);
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
    }
}
