//! Host tests over an in-memory frame arena.

use super::*;
use std::collections::{BTreeMap, HashMap};

const BASE: u64 = 0x1000_0000;
const K4: u64 = 0x1000;
const M2: u64 = 0x20_0000;
const G1: u64 = 0x4000_0000;

/// In-memory frame allocator handing out fake HPAs `BASE + n * 4096`.
struct Arena {
    live: HashMap<u64, Box<[u64; ENTRIES_PER_TABLE]>>,
    free: Vec<u64>,
    next: u64,
    limit: Option<usize>,
    /// Hand out frames full of garbage instead of zeroes.
    poison: bool,
}

impl Arena {
    fn new() -> Self {
        Arena {
            live: HashMap::new(),
            free: Vec::new(),
            next: BASE,
            limit: None,
            poison: false,
        }
    }

    fn with_limit(limit: usize) -> Self {
        Arena {
            limit: Some(limit),
            ..Arena::new()
        }
    }

    fn live(&self) -> usize {
        self.live.len()
    }

    fn snapshot(&self) -> BTreeMap<u64, [u64; ENTRIES_PER_TABLE]> {
        self.live.iter().map(|(&a, t)| (a, **t)).collect()
    }
}

impl FrameAllocator for Arena {
    fn allocate_frame(&mut self) -> Option<u64> {
        if self.limit.is_some_and(|l| self.live.len() >= l) {
            return None;
        }
        let addr = self.free.pop().unwrap_or_else(|| {
            let a = self.next;
            self.next += FRAME_SIZE;
            a
        });
        let fill = if self.poison { u64::MAX } else { 0 };
        assert!(self
            .live
            .insert(addr, Box::new([fill; ENTRIES_PER_TABLE]))
            .is_none());
        Some(addr)
    }

    fn deallocate_frame(&mut self, hpa: u64) {
        assert!(self.live.remove(&hpa).is_some(), "double free of {hpa:#x}");
        self.free.push(hpa);
    }

    fn table(&self, hpa: u64) -> &[u64; ENTRIES_PER_TABLE] {
        self.live
            .get(&hpa)
            .expect("access to a frame not allocated")
    }

    fn table_mut(&mut self, hpa: u64) -> &mut [u64; ENTRIES_PER_TABLE] {
        self.live
            .get_mut(&hpa)
            .expect("access to a frame not allocated")
    }
}

fn setup() -> (Arena, Ept) {
    let mut a = Arena::new();
    let e = Ept::new(&mut a).unwrap();
    (a, e)
}

/// Raw entry at `level` on the walk for `gpa` (3 = PML4).
fn raw_entry(a: &Arena, ept: &Ept, gpa: u64, level: usize) -> u64 {
    let mut table = ept.root();
    let mut l = ROOT_LEVEL;
    loop {
        let e = a.table(table)[index(gpa, l)];
        if l == level {
            return e;
        }
        table = e & bits::ADDR_MASK;
        l -= 1;
    }
}

#[test]
fn new_allocates_zeroed_root() {
    let (a, ept) = setup();
    assert_eq!(a.live(), 1);
    assert_eq!(ept.table_frames(&a), 1);
    assert_eq!(ept.root(), BASE);
    assert!(a.table(ept.root()).iter().all(|&e| e == 0));
}

#[test]
fn new_out_of_frames() {
    let mut a = Arena::with_limit(0);
    assert_eq!(Ept::new(&mut a).unwrap_err(), EptError::OutOfFrames);
    assert_eq!(a.live(), 0);
}

#[test]
fn eptp_value() {
    let (_a, ept) = setup();
    assert_eq!(ept.eptp(false), BASE | 0x1e);
    assert_eq!(ept.eptp(true), BASE | 0x5e);
}

#[test]
fn page_size_bytes_and_memory_type_raw() {
    assert_eq!(PageSize::Size4K.bytes(), 4096);
    assert_eq!(PageSize::Size2M.bytes(), 2 << 20);
    assert_eq!(PageSize::Size1G.bytes(), 1 << 30);
    for mt in [
        MemoryType::Uncacheable,
        MemoryType::WriteCombining,
        MemoryType::WriteThrough,
        MemoryType::WriteProtected,
        MemoryType::WriteBack,
    ] {
        assert_eq!(MemoryType::from_raw(mt as u8), Some(mt));
    }
    for raw in [2, 3, 7, 8] {
        assert_eq!(MemoryType::from_raw(raw), None);
    }
}

#[test]
fn map_translate_4k() {
    let (mut a, mut ept) = setup();
    let gpa = 0x1234_5000;
    let hpa = 0x8000_0000;
    ept.map(
        &mut a,
        gpa,
        hpa,
        PageSize::Size4K,
        Access::RW,
        MemoryType::WriteBack,
    )
    .unwrap();
    assert_eq!(a.live(), 4);
    assert_eq!(ept.table_frames(&a), 4);
    let t = ept.translate(&a, gpa + 0x123).unwrap();
    assert_eq!(
        t,
        Translation {
            hpa: hpa + 0x123,
            access: Access::RW,
            memory_type: MemoryType::WriteBack,
            page_size: PageSize::Size4K,
        }
    );
    assert_eq!(ept.translate(&a, gpa + K4), None);
    assert_eq!(ept.translate(&a, gpa - 1), None);
    // Leaf encoding: address | rights | MT in 5:3, no bit 7.
    assert_eq!(raw_entry(&a, &ept, gpa, 0), hpa | 0b011 | (6 << 3));
    // Intermediate entries: address | RWX only.
    for level in 1..=3 {
        let e = raw_entry(&a, &ept, gpa, level);
        assert_eq!(e & !bits::ADDR_MASK, 0b111);
    }
}

#[test]
fn map_translate_2m() {
    let (mut a, mut ept) = setup();
    let gpa = G1 + M2;
    let hpa = 0x2_0000_0000;
    let rx = Access::READ | Access::EXECUTE;
    ept.map(
        &mut a,
        gpa,
        hpa,
        PageSize::Size2M,
        rx,
        MemoryType::Uncacheable,
    )
    .unwrap();
    assert_eq!(a.live(), 3);
    let t = ept.translate(&a, gpa + 0x1_2345).unwrap();
    assert_eq!(t.hpa, hpa + 0x1_2345);
    assert_eq!(t.access, rx);
    assert_eq!(t.memory_type, MemoryType::Uncacheable);
    assert_eq!(t.page_size, PageSize::Size2M);
    assert_eq!(ept.translate(&a, gpa + M2 - 1).unwrap().hpa, hpa + M2 - 1);
    assert_eq!(ept.translate(&a, gpa + M2), None);
    assert_eq!(raw_entry(&a, &ept, gpa, 1), hpa | 0b101 | (1 << 7));
}

#[test]
fn map_translate_1g() {
    let (mut a, mut ept) = setup();
    let gpa = 3 * G1;
    let hpa = 5 * G1;
    ept.map(
        &mut a,
        gpa,
        hpa,
        PageSize::Size1G,
        Access::RWX,
        MemoryType::WriteThrough,
    )
    .unwrap();
    assert_eq!(a.live(), 2);
    let t = ept.translate(&a, gpa + 0x3456_789a).unwrap();
    assert_eq!(t.hpa, hpa + 0x3456_789a);
    assert_eq!(t.page_size, PageSize::Size1G);
    assert_eq!(t.memory_type, MemoryType::WriteThrough);
    assert_eq!(ept.unmap(&mut a, gpa, PageSize::Size1G), Ok(hpa));
    assert_eq!(a.live(), 1);
}

#[test]
fn rights_are_anded_across_levels() {
    let (mut a, mut ept) = setup();
    let gpa = 0x40_0000;
    ept.map(
        &mut a,
        gpa,
        0x9000_0000,
        PageSize::Size4K,
        Access::RWX,
        MemoryType::WriteBack,
    )
    .unwrap();
    ept.map(
        &mut a,
        G1 - M2,
        0xA000_0000,
        PageSize::Size2M,
        Access::RWX,
        MemoryType::WriteBack,
    )
    .unwrap();
    // Drop WRITE on the PDPT entry (covers both mappings).
    let pml4e = a.table(ept.root())[index(gpa, 3)];
    let pdpt = pml4e & bits::ADDR_MASK;
    a.table_mut(pdpt)[index(gpa, 2)] &= !Access::WRITE.bits();
    let rx = Access::READ | Access::EXECUTE;
    assert_eq!(ept.translate(&a, gpa).unwrap().access, rx);
    assert_eq!(ept.translate(&a, G1 - 1).unwrap().access, rx);
    // Drop EXECUTE on the PML4 entry.
    a.table_mut(ept.root())[index(gpa, 3)] &= !Access::EXECUTE.bits();
    assert_eq!(ept.translate(&a, gpa).unwrap().access, Access::READ);
    // The leaf itself still holds RWX.
    assert_eq!(raw_entry(&a, &ept, gpa, 0) & 0b111, 0b111);
    // Leaf restriction also ANDs in.
    a.table_mut(ept.root())[index(gpa, 3)] |= 0b111;
    ept.protect(&mut a, gpa, PageSize::Size4K, Access::EXECUTE)
        .unwrap();
    assert_eq!(ept.translate(&a, gpa).unwrap().access, Access::EXECUTE);
}

#[test]
fn overlapping_maps_are_refused_and_change_nothing() {
    let (mut a, mut ept) = setup();
    let wb = MemoryType::WriteBack;
    ept.map(
        &mut a,
        4 * M2,
        0x1_0000_0000,
        PageSize::Size2M,
        Access::RW,
        wb,
    )
    .unwrap();
    ept.map(
        &mut a,
        6 * M2 + K4,
        0x1_4000_0000,
        PageSize::Size4K,
        Access::RW,
        wb,
    )
    .unwrap();
    ept.map(
        &mut a,
        2 * G1,
        0x2_0000_0000,
        PageSize::Size1G,
        Access::RW,
        wb,
    )
    .unwrap();
    let before = a.snapshot();

    let cases = [
        // 4K inside a 2M page.
        (4 * M2 + 5 * K4, PageSize::Size4K),
        (4 * M2, PageSize::Size4K),
        // 2M over a page table holding a 4K page.
        (6 * M2, PageSize::Size2M),
        // Same 4K twice.
        (6 * M2 + K4, PageSize::Size4K),
        // Same 2M twice.
        (4 * M2, PageSize::Size2M),
        // 1G over a PD with entries.
        (0, PageSize::Size1G),
        // 2M and 4K inside a 1G page.
        (2 * G1 + 3 * M2, PageSize::Size2M),
        (2 * G1 + 7 * K4, PageSize::Size4K),
    ];
    for (gpa, size) in cases {
        assert_eq!(
            ept.map(&mut a, gpa, 0x3_0000_0000, size, Access::RW, wb),
            Err(EptError::AlreadyMapped { gpa }),
            "{gpa:#x} {size:?}"
        );
        assert_eq!(a.snapshot(), before);
    }
}

#[test]
fn large_page_replaces_emptied_table() {
    let (mut a, mut ept) = setup();
    let wb = MemoryType::WriteBack;
    ept.map(&mut a, M2 + K4, 0x5000, PageSize::Size4K, Access::RW, wb)
        .unwrap();
    ept.map(&mut a, 2 * M2, 0x6000, PageSize::Size4K, Access::RW, wb)
        .unwrap();
    assert_eq!(a.live(), 5);
    assert_eq!(ept.unmap(&mut a, M2 + K4, PageSize::Size4K), Ok(0x5000));
    assert_eq!(a.live(), 4, "emptied PT freed, PD kept");
    ept.map(&mut a, M2, 0x40_0000, PageSize::Size2M, Access::RW, wb)
        .unwrap();
    assert_eq!(a.live(), 4);
    assert_eq!(ept.translate(&a, M2 + 7).unwrap().hpa, 0x40_0007);
}

#[test]
fn unmap_frees_empty_tables() {
    let (mut a, mut ept) = setup();
    let wb = MemoryType::WriteBack;
    let pages = [
        (0, PageSize::Size4K),
        (K4, PageSize::Size4K),
        (M2, PageSize::Size2M),
        (1 << 39, PageSize::Size4K),
        ((1 << 47) + 5 * G1, PageSize::Size2M),
        (7 * G1, PageSize::Size1G),
    ];
    for (i, &(gpa, size)) in pages.iter().enumerate() {
        let hpa = (i as u64 + 1) << 30;
        ept.map(&mut a, gpa, hpa, size, Access::RW, wb).unwrap();
    }
    assert_eq!(ept.table_frames(&a), a.live());
    for (i, &(gpa, size)) in pages.iter().enumerate() {
        assert_eq!(ept.unmap(&mut a, gpa, size), Ok((i as u64 + 1) << 30));
        assert_eq!(ept.translate(&a, gpa), None);
        assert_eq!(ept.table_frames(&a), a.live());
    }
    assert_eq!(a.live(), 1);
    assert!(a.table(ept.root()).iter().all(|&e| e == 0));
}

#[test]
fn unmap_errors_change_nothing() {
    let (mut a, mut ept) = setup();
    let wb = MemoryType::WriteBack;
    ept.map(&mut a, 0, 0, PageSize::Size2M, Access::RW, wb)
        .unwrap();
    ept.map(&mut a, M2 + K4, 0, PageSize::Size4K, Access::RW, wb)
        .unwrap();
    let before = a.snapshot();
    let cases = [
        (K4, PageSize::Size4K, EptError::SizeMismatch { gpa: K4 }),
        (M2, PageSize::Size2M, EptError::SizeMismatch { gpa: M2 }),
        (0, PageSize::Size1G, EptError::SizeMismatch { gpa: 0 }),
        (M2, PageSize::Size4K, EptError::NotMapped { gpa: M2 }),
        (G1, PageSize::Size4K, EptError::NotMapped { gpa: G1 }),
        (
            2 * M2,
            PageSize::Size2M,
            EptError::NotMapped { gpa: 2 * M2 },
        ),
        (
            0x800,
            PageSize::Size4K,
            EptError::Misaligned { addr: 0x800 },
        ),
        (K4, PageSize::Size2M, EptError::Misaligned { addr: K4 }),
        (
            GPA_LIMIT,
            PageSize::Size4K,
            EptError::OutOfRange { gpa: GPA_LIMIT },
        ),
    ];
    for (gpa, size, err) in cases {
        assert_eq!(ept.unmap(&mut a, gpa, size), Err(err));
        assert_eq!(a.snapshot(), before);
    }
}

#[test]
fn misaligned_maps() {
    let (mut a, mut ept) = setup();
    let wb = MemoryType::WriteBack;
    let cases = [
        (0x1001, 0, PageSize::Size4K, 0x1001),
        (0x1000, 0x10, PageSize::Size4K, 0x10),
        (K4, 0, PageSize::Size2M, K4),
        (0, K4, PageSize::Size2M, K4),
        (M2, 0, PageSize::Size1G, M2),
        (0, M2, PageSize::Size1G, M2),
    ];
    for (gpa, hpa, size, addr) in cases {
        assert_eq!(
            ept.map(&mut a, gpa, hpa, size, Access::RW, wb),
            Err(EptError::Misaligned { addr })
        );
    }
    assert_eq!(a.live(), 1);
}

#[test]
fn out_of_range() {
    let (mut a, mut ept) = setup();
    let wb = MemoryType::WriteBack;
    for gpa in [GPA_LIMIT, GPA_LIMIT + M2, !(G1 - 1)] {
        assert_eq!(
            ept.map(&mut a, gpa, 0, PageSize::Size4K, Access::RW, wb),
            Err(EptError::OutOfRange { gpa })
        );
        assert_eq!(ept.translate(&a, gpa), None);
    }
    assert_eq!(
        ept.map(&mut a, 0, HPA_LIMIT, PageSize::Size4K, Access::RW, wb),
        Err(EptError::OutOfRange { gpa: 0 })
    );
    assert_eq!(a.live(), 1);
    // The very last pages are fine.
    ept.map(
        &mut a,
        GPA_LIMIT - M2,
        HPA_LIMIT - M2,
        PageSize::Size2M,
        Access::RW,
        wb,
    )
    .unwrap();
    let t = ept.translate(&a, GPA_LIMIT - 1).unwrap();
    assert_eq!(t.hpa, HPA_LIMIT - 1);
    ept.map(
        &mut a,
        GPA_LIMIT - 2 * G1,
        0,
        PageSize::Size1G,
        Access::RW,
        wb,
    )
    .unwrap();
}

#[test]
fn invalid_access() {
    let (mut a, mut ept) = setup();
    let wb = MemoryType::WriteBack;
    for access in [
        Access::empty(),
        Access::WRITE,
        Access::WRITE | Access::EXECUTE,
        Access::from_bits_retain(0x9),
    ] {
        assert_eq!(
            ept.map(&mut a, 0, 0, PageSize::Size4K, access, wb),
            Err(EptError::InvalidAccess)
        );
        assert_eq!(
            ept.map_range(&mut a, 0, 0, K4, access, wb),
            Err(EptError::InvalidAccess)
        );
    }
    assert_eq!(a.live(), 1);
    ept.map(&mut a, 0, 0, PageSize::Size4K, Access::EXECUTE, wb)
        .unwrap();
    assert_eq!(
        ept.protect(&mut a, 0, PageSize::Size4K, Access::WRITE),
        Err(EptError::InvalidAccess)
    );
    assert_eq!(
        ept.protect(&mut a, 0, PageSize::Size4K, Access::empty()),
        Err(EptError::InvalidAccess)
    );
    assert_eq!(ept.translate(&a, 0).unwrap().access, Access::EXECUTE);
}

#[test]
fn out_of_frames_leaks_nothing() {
    let wb = MemoryType::WriteBack;
    // Root plus one frame: a 4K map needs three.
    let mut a = Arena::with_limit(2);
    let mut ept = Ept::new(&mut a).unwrap();
    assert_eq!(
        ept.map(&mut a, 0, 0, PageSize::Size4K, Access::RW, wb),
        Err(EptError::OutOfFrames)
    );
    assert_eq!(a.live(), 1);
    assert!(a.table(ept.root()).iter().all(|&e| e == 0));

    // With some tables already present only the missing ones are needed.
    a.limit = Some(4);
    ept.map(&mut a, 0, 0, PageSize::Size4K, Access::RW, wb)
        .unwrap();
    let before = a.snapshot();
    a.limit = Some(6);
    assert_eq!(
        ept.map(&mut a, 1 << 39, 0, PageSize::Size4K, Access::RW, wb),
        Err(EptError::OutOfFrames)
    );
    assert_eq!(a.snapshot(), before);
    // Same PML4 entry, new PDPT entry: needs PD + PT = 2 frames.
    ept.map(&mut a, G1, 0, PageSize::Size4K, Access::RW, wb)
        .unwrap();
    assert_eq!(a.live(), 6);
    assert_eq!(ept.table_frames(&a), 6);
}

#[test]
fn allocator_garbage_is_zeroed() {
    let mut a = Arena::new();
    a.poison = true;
    let mut ept = Ept::new(&mut a).unwrap();
    assert_eq!(ept.translate(&a, 0), None);
    ept.map(
        &mut a,
        0,
        0x7000,
        PageSize::Size4K,
        Access::RW,
        MemoryType::WriteBack,
    )
    .unwrap();
    assert_eq!(ept.translate(&a, 0).unwrap().hpa, 0x7000);
    assert_eq!(ept.translate(&a, K4), None);
    assert_eq!(ept.translate(&a, M2), None);
    assert_eq!(ept.table_frames(&a), 4);
}

#[test]
fn map_range_picks_2m_pages() {
    let (mut a, mut ept) = setup();
    let wb = MemoryType::WriteBack;
    let gpa = M2 - 2 * K4;
    let hpa = 0x1_0000_0000 - 2 * K4;
    let len = 2 * K4 + 2 * M2 + 3 * K4;
    ept.map_range(&mut a, gpa, hpa, len, Access::RW, wb)
        .unwrap();
    let mut expected = Vec::new();
    let mut off = 0;
    while off < len {
        let t = ept.translate(&a, gpa + off).unwrap();
        assert_eq!(t.hpa, hpa + off);
        expected.push(t.page_size);
        off += t.page_size.bytes();
    }
    use PageSize::*;
    assert_eq!(
        expected,
        [Size4K, Size4K, Size2M, Size2M, Size4K, Size4K, Size4K]
    );
    assert_eq!(ept.translate(&a, gpa + len), None);
    assert_eq!(ept.translate(&a, gpa - 1), None);

    // Different alignment of gpa and hpa: 4K pages only.
    ept.map_range(&mut a, G1, G1 + K4, 2 * M2, Access::RW, wb)
        .unwrap();
    let mut off = 0;
    while off < 2 * M2 {
        let t = ept.translate(&a, G1 + off).unwrap();
        assert_eq!(t.page_size, Size4K);
        assert_eq!(t.hpa, G1 + K4 + off);
        off += K4;
    }
    // Zero length is a no-op.
    let before = a.snapshot();
    ept.map_range(&mut a, 2 * G1, 0, 0, Access::RW, wb).unwrap();
    assert_eq!(a.snapshot(), before);
}

#[test]
fn map_range_argument_errors() {
    let (mut a, mut ept) = setup();
    let wb = MemoryType::WriteBack;
    let rw = Access::RW;
    assert_eq!(
        ept.map_range(&mut a, 0, 0, 0x1800, rw, wb),
        Err(EptError::Misaligned { addr: 0x1800 })
    );
    assert_eq!(
        ept.map_range(&mut a, 0x10, 0, K4, rw, wb),
        Err(EptError::Misaligned { addr: 0x10 })
    );
    assert_eq!(
        ept.map_range(&mut a, 0, 0x10, K4, rw, wb),
        Err(EptError::Misaligned { addr: 0x10 })
    );
    assert_eq!(
        ept.map_range(&mut a, GPA_LIMIT - K4, 0, !(K4 - 1), rw, wb),
        Err(EptError::Overflow)
    );
    assert_eq!(
        ept.map_range(&mut a, 0, 2 * K4, !(K4 - 1), rw, wb),
        Err(EptError::OutOfRange { gpa: 0 })
    );
    assert_eq!(
        ept.map_range(&mut a, 0, !(K4 - 1), 2 * K4, rw, wb),
        Err(EptError::Overflow)
    );
    assert_eq!(
        ept.map_range(&mut a, GPA_LIMIT - K4, 0, 2 * K4, rw, wb),
        Err(EptError::OutOfRange {
            gpa: GPA_LIMIT - K4
        })
    );
    assert_eq!(
        ept.map_range(&mut a, 0, HPA_LIMIT - K4, 2 * K4, rw, wb),
        Err(EptError::OutOfRange { gpa: 0 })
    );
    assert_eq!(a.live(), 1);
}

#[test]
fn map_range_rolls_back() {
    let (mut a, mut ept) = setup();
    let wb = MemoryType::WriteBack;
    let blocker = G1 + 3 * M2 + 5 * K4;
    ept.map(&mut a, blocker, 0, PageSize::Size4K, Access::RW, wb)
        .unwrap();
    let before = a.snapshot();
    assert_eq!(
        ept.map_range(
            &mut a,
            G1 - 3 * K4,
            0x5_0000_0000 - 3 * K4,
            5 * M2,
            Access::RW,
            wb
        ),
        Err(EptError::AlreadyMapped { gpa: G1 + 3 * M2 })
    );
    assert_eq!(a.snapshot(), before);

    // Running out of frames half-way also rolls back.
    let mut a = Arena::with_limit(3);
    let mut ept = Ept::new(&mut a).unwrap();
    assert_eq!(
        ept.map_range(&mut a, G1 - M2, 0, 3 * M2, Access::RW, wb),
        Err(EptError::OutOfFrames)
    );
    assert_eq!(a.live(), 1);
}

#[test]
fn unmap_range_mixed_sizes() {
    let (mut a, mut ept) = setup();
    let wb = MemoryType::WriteBack;
    let gpa = M2 - 2 * K4;
    let len = 2 * K4 + 2 * M2 + 3 * K4;
    ept.map_range(&mut a, gpa, gpa, len, Access::RW, wb)
        .unwrap();
    let before = a.snapshot();
    // Partially covering a 2M page.
    assert_eq!(
        ept.unmap_range(&mut a, gpa, 2 * K4 + M2 - K4),
        Err(EptError::SizeMismatch { gpa: M2 })
    );
    assert_eq!(
        ept.unmap_range(&mut a, M2 + K4, K4),
        Err(EptError::SizeMismatch { gpa: M2 + K4 })
    );
    // Running into a hole.
    assert_eq!(
        ept.unmap_range(&mut a, gpa, len + K4),
        Err(EptError::NotMapped { gpa: gpa + len })
    );
    assert_eq!(
        ept.unmap_range(&mut a, gpa, K4 + 1),
        Err(EptError::Misaligned { addr: K4 + 1 })
    );
    assert_eq!(a.snapshot(), before);
    ept.unmap_range(&mut a, gpa, len).unwrap();
    assert_eq!(a.live(), 1);
    ept.unmap_range(&mut a, gpa, 0).unwrap();
}

#[test]
fn protect_changes_leaf_rights_only() {
    let (mut a, mut ept) = setup();
    let wb = MemoryType::WriteBack;
    ept.map(
        &mut a,
        M2,
        0x4000_0000,
        PageSize::Size2M,
        Access::RWX,
        MemoryType::WriteCombining,
    )
    .unwrap();
    ept.map(&mut a, K4, 0x7000, PageSize::Size4K, Access::RW, wb)
        .unwrap();
    ept.protect(&mut a, M2, PageSize::Size2M, Access::READ)
        .unwrap();
    let t = ept.translate(&a, M2 + 0x10).unwrap();
    assert_eq!(t.access, Access::READ);
    assert_eq!(t.hpa, 0x4000_0010);
    assert_eq!(t.memory_type, MemoryType::WriteCombining);
    assert_eq!(t.page_size, PageSize::Size2M);
    ept.protect(&mut a, K4, PageSize::Size4K, Access::RWX)
        .unwrap();
    assert_eq!(ept.translate(&a, K4).unwrap().access, Access::RWX);

    let before = a.snapshot();
    assert_eq!(
        ept.protect(&mut a, M2 + K4, PageSize::Size4K, Access::RW),
        Err(EptError::SizeMismatch { gpa: M2 + K4 })
    );
    assert_eq!(
        ept.protect(&mut a, 0, PageSize::Size2M, Access::RW),
        Err(EptError::SizeMismatch { gpa: 0 })
    );
    assert_eq!(
        ept.protect(&mut a, 2 * K4, PageSize::Size4K, Access::RW),
        Err(EptError::NotMapped { gpa: 2 * K4 })
    );
    assert_eq!(a.snapshot(), before);
}

#[test]
fn destroy_frees_every_table() {
    let (mut a, mut ept) = setup();
    let wb = MemoryType::WriteBack;
    ept.map_range(&mut a, 0, 0, 4 * M2 + 5 * K4, Access::RW, wb)
        .unwrap();
    ept.map(&mut a, 1 << 40, 0, PageSize::Size4K, Access::RW, wb)
        .unwrap();
    ept.map(&mut a, 9 * G1, 0, PageSize::Size1G, Access::RW, wb)
        .unwrap();
    assert_eq!(ept.table_frames(&a), a.live());
    assert!(a.live() > 5);
    ept.destroy(&mut a);
    assert_eq!(a.live(), 0);
}

#[test]
fn errors_display() {
    let errs = [
        EptError::Misaligned { addr: 1 },
        EptError::OutOfRange { gpa: 2 },
        EptError::AlreadyMapped { gpa: 3 },
        EptError::NotMapped { gpa: 4 },
        EptError::OutOfFrames,
        EptError::InvalidAccess,
        EptError::Overflow,
        EptError::SizeMismatch { gpa: 5 },
    ];
    let texts: std::collections::BTreeSet<String> = errs.iter().map(|e| e.to_string()).collect();
    assert_eq!(texts.len(), errs.len());
    assert!(texts.iter().all(|t| !t.is_empty()));
}

mod model {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Map {
            gpa: u64,
            hpa_index: u64,
            size: PageSize,
            access: Access,
        },
        Unmap {
            gpa: u64,
            size: PageSize,
        },
        Protect {
            gpa: u64,
            size: PageSize,
            access: Access,
        },
    }

    fn size() -> impl Strategy<Value = PageSize> {
        prop_oneof![
            6 => Just(PageSize::Size4K),
            4 => Just(PageSize::Size2M),
            1 => Just(PageSize::Size1G),
        ]
    }

    fn access() -> impl Strategy<Value = Access> {
        prop::sample::select(vec![
            Access::READ,
            Access::RW,
            Access::READ | Access::EXECUTE,
            Access::RWX,
            Access::EXECUTE,
        ])
    }

    /// A small guest-physical space so operations collide often.
    fn gpa_for(size: PageSize) -> impl Strategy<Value = u64> {
        (0u64..2, 0u64..2, 0u64..3, 0u64..4).prop_map(move |(p, g, m, k)| {
            let raw = (p << 39) | (g << 30) | (m << 21) | (k << 12);
            raw & !(size.bytes() - 1)
        })
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (size(), 0u64..64, access())
                .prop_flat_map(|(s, h, acc)| (gpa_for(s), Just(s), Just(h), Just(acc)))
                .prop_map(|(gpa, size, hpa_index, access)| Op::Map { gpa, hpa_index, size, access }),
            3 => size()
                .prop_flat_map(|s| (gpa_for(s), Just(s)))
                .prop_map(|(gpa, size)| Op::Unmap { gpa, size }),
            1 => (size(), access())
                .prop_flat_map(|(s, acc)| (gpa_for(s), Just(s), Just(acc)))
                .prop_map(|(gpa, size, access)| Op::Protect { gpa, size, access }),
        ]
    }

    type Model = BTreeMap<u64, (u64, PageSize, Access)>;

    /// Mappings of the model intersecting `[gpa, gpa + len)`.
    fn overlapping(model: &Model, gpa: u64, len: u64) -> Vec<(u64, PageSize)> {
        let mut out: Vec<_> = model
            .range(gpa..gpa + len)
            .map(|(&g, &(_, s, _))| (g, s))
            .collect();
        if let Some((&g, &(_, s, _))) = model.range(..gpa).next_back() {
            if g + s.bytes() > gpa {
                out.push((g, s));
            }
        }
        out
    }

    fn lookup(model: &Model, addr: u64) -> Option<Translation> {
        let (&g, &(h, s, acc)) = model.range(..=addr).next_back()?;
        (addr < g + s.bytes()).then_some(Translation {
            hpa: h + (addr - g),
            access: acc,
            memory_type: MemoryType::WriteBack,
            page_size: s,
        })
    }

    /// Expected result of unmap/protect on the model.
    fn find_exact(model: &Model, gpa: u64, size: PageSize) -> Result<(), EptError> {
        let hits = overlapping(model, gpa, size.bytes());
        if hits.is_empty() {
            Err(EptError::NotMapped { gpa })
        } else if hits == [(gpa, size)] {
            Ok(())
        } else {
            Err(EptError::SizeMismatch { gpa })
        }
    }

    fn probes() -> Vec<u64> {
        let mut out = Vec::new();
        for p in 0..2u64 {
            for g in 0..2u64 {
                for m in 0..4u64 {
                    let base = (p << 39) | (g << 30) | (m << 21);
                    for k in 0..5u64 {
                        out.push(base | (k << 12) | 0x123);
                    }
                    out.push(base + M2 - 1);
                }
                out.push((p << 39) + (g << 30) + G1 - 1);
            }
        }
        out
    }

    fn check(ept: &Ept, a: &Arena, model: &Model) -> Result<(), TestCaseError> {
        for addr in probes() {
            prop_assert_eq!(
                ept.translate(a, addr),
                lookup(model, addr),
                "at {:#x}",
                addr
            );
        }
        prop_assert_eq!(ept.table_frames(a), a.live());
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn agrees_with_model(
            ops in prop::collection::vec(op(), 1..40),
            limit in prop::option::of(3usize..12),
        ) {
            let mut a = Arena::new();
            let mut ept = Ept::new(&mut a).unwrap();
            a.limit = limit;
            let mut model = Model::new();
            let wb = MemoryType::WriteBack;
            for op in ops {
                match op {
                    Op::Map { gpa, hpa_index, size, access } => {
                        let hpa = hpa_index * size.bytes();
                        let res = ept.map(&mut a, gpa, hpa, size, access, wb);
                        if !overlapping(&model, gpa, size.bytes()).is_empty() {
                            prop_assert_eq!(res, Err(EptError::AlreadyMapped { gpa }));
                        } else if res == Err(EptError::OutOfFrames) {
                            prop_assert!(limit.is_some());
                        } else {
                            prop_assert_eq!(res, Ok(()));
                            model.insert(gpa, (hpa, size, access));
                        }
                    }
                    Op::Unmap { gpa, size } => {
                        let res = ept.unmap(&mut a, gpa, size);
                        match find_exact(&model, gpa, size) {
                            Ok(()) => {
                                let (hpa, _, _) = model.remove(&gpa).unwrap();
                                prop_assert_eq!(res, Ok(hpa));
                            }
                            Err(e) => prop_assert_eq!(res, Err(e)),
                        }
                    }
                    Op::Protect { gpa, size, access } => {
                        let res = ept.protect(&mut a, gpa, size, access);
                        let expected = find_exact(&model, gpa, size);
                        prop_assert_eq!(res, expected);
                        if expected.is_ok() {
                            model.get_mut(&gpa).unwrap().2 = access;
                        }
                    }
                }
                check(&ept, &a, &model)?;
            }
            let all: Vec<_> = model.iter().map(|(&g, &(h, s, _))| (g, h, s)).collect();
            for (gpa, hpa, size) in all {
                prop_assert_eq!(ept.unmap(&mut a, gpa, size), Ok(hpa));
                model.remove(&gpa);
                check(&ept, &a, &model)?;
            }
            prop_assert_eq!(a.live(), 1);
            prop_assert_eq!(ept.table_frames(&a), 1);
            ept.destroy(&mut a);
            prop_assert_eq!(a.live(), 0);
        }
    }
}
