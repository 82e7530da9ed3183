// SPDX-License-Identifier: GPL-2.0

//! Corruption injection (`Heap::inject_*`, debugfs `inject`): each kind
//! damages exactly the metadata it names, `validate()` reports it precisely,
//! the next operation that touches it fails with an error value instead of
//! following the damage, and `corruptions` counts it.

mod common;

use common::{view, TestHeap};
use ikos_kalloc::allocator::{
    AllocError, CorruptionKind, CpuCache, FastFree, Flags, FreeError, InjectError,
};

/// `validate()` must report `kind` at `offset` and bump `corruptions`.
fn detected(h: &mut TestHeap, kind: CorruptionKind, offset: usize) {
    let before = h.stats().corruptions;
    let c = h.validate().expect_err("injected damage must be detected");
    assert_eq!((c.kind, c.offset), (kind, offset), "{c}");
    assert_eq!(h.stats().corruptions, before + 1);
    println!("detected: {c}");
}

#[test]
fn header_of_a_large_block() {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(10_000).unwrap();
    let b = h.alloc(10_000).unwrap();
    let at = h.off(a) - 16;
    let w0 = h.peek32(at);
    let inj = h.inject_header(a.as_ptr()).unwrap();
    assert_eq!((inj.offset, inj.len), (at, 4));
    assert_eq!(h.peek32(at), w0 ^ 0x100, "one bit of the size flipped");
    detected(&mut h, CorruptionKind::BadMagic, at);
    // The live-handle free names the damage; a blind free only refuses.
    let before = h.stats().corruptions;
    let e = h.free_live(a.as_ptr(), None).unwrap_err();
    assert!(
        matches!(e, FreeError::Corrupted(c) if c.kind == CorruptionKind::BadMagic),
        "{e:?}"
    );
    assert_eq!(h.stats().corruptions, before + 1);
    // The neighbour cannot coalesce across the damaged header either.
    assert!(matches!(h.free(b.as_ptr()), Err(FreeError::Corrupted(_))));
}

#[test]
fn header_of_a_slab_object() {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(64).unwrap();
    let span = h.metadata_bytes();
    let magic = h.peek32(span + 16);
    let inj = h.inject_header(a.as_ptr()).unwrap();
    assert_eq!((inj.offset, inj.len), (span + 16, 4));
    assert_eq!(h.peek32(span + 16), magic ^ 0x0101_0101);
    detected(&mut h, CorruptionKind::SlabBadMagic, span);
    assert!(matches!(
        h.free_live(a.as_ptr(), None),
        Err(FreeError::Corrupted(c)) if c.kind == CorruptionKind::SlabBadMagic
    ));
    assert!(matches!(
        h.alloc_flags(64, 8, Flags::NONE),
        Err(AllocError::Corrupted(_))
    ));
}

#[test]
fn boundary_tag_in_front_of_a_parked_block() {
    // The block after the damaged tag sits in a per-CPU cache: rewriting
    // its header keeps it parked (the cached bit, which its check word
    // leaves out), so only the tag disagrees.
    let mut h = TestHeap::new(1 << 20);
    let v = view(&h);
    let mut cpu = CpuCache::new();
    let a = h.alloc(8_000).unwrap();
    let b = h.alloc(8_000).unwrap();
    let _c = h.alloc(8_000).unwrap();
    assert_eq!(cpu.free_large(&v, b.as_ptr()), FastFree::Done);
    h.magazine_absorb(&mut cpu);
    h.inject_boundary(a.as_ptr()).unwrap();
    let at = h.off(b) - 16;
    detected(&mut h, CorruptionKind::BoundaryTagMismatch, at);
    assert_eq!(h.stats().magazine_objects, 1, "still parked");
}

#[test]
fn boundary_tag_of_a_large_block() {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(10_000).unwrap();
    let b = h.alloc(10_000).unwrap();
    h.inject_boundary(a.as_ptr()).unwrap();
    let at = h.off(b) - 16;
    detected(&mut h, CorruptionKind::BoundaryTagMismatch, at);
    let e = h.free_live(a.as_ptr(), None).unwrap_err();
    assert!(
        matches!(e, FreeError::Corrupted(c) if c.kind == CorruptionKind::BoundaryTagMismatch),
        "{e:?}"
    );
    // b's own header still checks; its free walks back through the bad tag.
    assert!(matches!(
        h.free_live(b.as_ptr(), None),
        Err(FreeError::Corrupted(_))
    ));
}

/// An allocation that takes a free block whole (no split) leaves the tag
/// after it as it found it: a tag damaged while the block was free is not
/// rewritten on the way (which would hide the damage) but reported by
/// `validate` and by the free.
#[test]
fn boundary_tag_after_a_reused_hole() {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(10_000).unwrap();
    let s = h.alloc(10_000).unwrap();
    h.free(a.as_ptr()).unwrap();
    let at = h.off(s) - 16;
    let hole = h.peek32(h.off(a) - 16) & !0xf;
    assert_eq!(
        h.peek32(at + 4),
        hole,
        "the separator's tag is the hole's size"
    );
    h.poke32(at + 4, hole + 16);
    let again = h.alloc(10_000).unwrap();
    assert_eq!(again, a, "the hole is reused whole");
    assert_eq!(h.peek32(h.off(a) - 16) & !0xf, hole, "no split");
    assert_eq!(
        h.peek32(at + 4),
        hole + 16,
        "the damaged tag is left as it was"
    );
    detected(&mut h, CorruptionKind::BoundaryTagMismatch, at);
    assert!(matches!(
        h.free_live(again.as_ptr(), None),
        Err(FreeError::Corrupted(c)) if c.kind == CorruptionKind::BoundaryTagMismatch
    ));
}

#[test]
fn boundary_tag_of_a_slab_span() {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(64).unwrap();
    let span = h.metadata_bytes();
    h.inject_boundary(a.as_ptr()).unwrap();
    let (n, _) = slab_span_end(&mut h, span);
    detected(&mut h, CorruptionKind::BoundaryTagMismatch, n);
    // Freeing the only object returns the span to the large pool, which
    // checks its neighbour's tag.
    assert!(matches!(
        h.free_live(a.as_ptr(), None),
        Err(FreeError::Corrupted(c)) if c.kind == CorruptionKind::BoundaryTagMismatch
    ));
}

/// Offset just past the span at `span` (its block size is header word 0).
fn slab_span_end(h: &mut TestHeap, span: usize) -> (usize, usize) {
    let size = (h.peek32(span) & !0xf) as usize;
    (span + size, size)
}

#[test]
fn freelist_link_of_a_large_block() {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(10_000).unwrap();
    let _guard = h.alloc(10_000).unwrap();
    let frees = h.stats().total_frees;
    let inj = h.inject_freelist(a.as_ptr()).unwrap();
    assert_eq!(h.stats().total_frees, frees + 1, "the handle was freed");
    assert_eq!(inj.offset, h.off(a));
    let at = h.off(a) - 16;
    detected(&mut h, CorruptionKind::FreeListOutOfBounds, at);
    // 9000 bytes maps to a list below a's: the search takes a.
    let r = h.alloc_flags(9000, 8, Flags::NONE);
    assert!(matches!(r, Err(AllocError::Corrupted(_))), "{r:?}");
}

#[test]
fn freelist_link_of_a_slab_object() {
    let mut h = TestHeap::new(1 << 20);
    let _a = h.alloc(64).unwrap();
    let b = h.alloc(64).unwrap();
    let _c = h.alloc(64).unwrap();
    let inj = h.inject_freelist(b.as_ptr()).unwrap();
    assert_eq!((inj.offset, inj.what), (h.off(b), "slab free-list link"));
    let c = h.validate().expect_err("detected");
    assert_eq!(c.kind, CorruptionKind::SlabFreeList, "{c}");
    // The next 64-byte allocation pops b and must not follow its link.
    let r = h.alloc_flags(64, 8, Flags::NONE);
    assert!(matches!(r, Err(AllocError::Corrupted(_))), "{r:?}");
}

#[test]
fn freelist_of_the_last_object_damages_the_large_block() {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(64).unwrap();
    let inj = h.inject_freelist(a.as_ptr()).unwrap();
    assert_eq!(inj.what, "free-list next link of a free block");
    let c = h.validate().expect_err("detected");
    assert_eq!(
        (c.kind, c.offset, c.detail),
        (
            CorruptionKind::FreeListOutOfBounds,
            inj.offset - 16,
            0xffff_fff0
        ),
        "{c}"
    );
    let r = h.alloc_flags(100_000, 8, Flags::NONE);
    assert!(matches!(r, Err(AllocError::Corrupted(_))), "{r:?}");
}

#[test]
fn overflow_into_the_next_block_header() {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(10_000).unwrap();
    let b = h.alloc(10_000).unwrap();
    let usable = h.usable_size(a.as_ptr()).unwrap();
    let inj = h.inject_overflow(a.as_ptr(), 8).unwrap();
    assert_eq!((inj.offset, inj.len), (h.off(a) + usable, 8));
    let at = h.off(b) - 16;
    detected(&mut h, CorruptionKind::BadMagic, at);
    assert!(matches!(
        h.free_live(a.as_ptr(), None),
        Err(FreeError::Corrupted(_))
    ));
    assert!(matches!(
        h.free_live(b.as_ptr(), None),
        Err(FreeError::Corrupted(c)) if c.kind == CorruptionKind::BadMagic
    ));
}

#[test]
fn overflow_into_a_free_slab_object() {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(64).unwrap();
    let b = h.alloc(64).unwrap();
    h.free(b.as_ptr()).unwrap();
    h.inject_overflow(a.as_ptr(), 4).unwrap();
    let c = h.validate().expect_err("detected");
    assert_eq!(c.kind, CorruptionKind::SlabFreeList, "{c}");
    // The next allocation pops b, whose link is now garbage.
    let r = h.alloc_flags(64, 8, Flags::NONE);
    assert!(matches!(r, Err(AllocError::Corrupted(_))), "{r:?}");
}

#[test]
fn overflow_into_a_live_slab_object_is_not_detectable() {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(64).unwrap();
    let b = h.alloc(64).unwrap();
    h.inject_overflow(a.as_ptr(), 64).unwrap();
    h.validate().expect("user data of b: no metadata was hit");
    h.free(a.as_ptr()).unwrap();
    h.free(b.as_ptr()).unwrap();
    h.validate().unwrap();
}

#[test]
fn refusals_leave_the_heap_unchanged() {
    let mut h = TestHeap::new(64 << 10);
    let a = h.alloc(100).unwrap();
    let bogus = a.as_ptr().wrapping_add(8);
    assert_eq!(h.inject_header(bogus), Err(InjectError::NotLive));
    assert_eq!(
        h.inject_overflow(a.as_ptr(), 0),
        Err(InjectError::OutOfRange)
    );
    assert_eq!(
        h.inject_overflow(a.as_ptr(), usize::MAX),
        Err(InjectError::OutOfRange)
    );
    assert_eq!(
        h.inject_overflow(a.as_ptr(), 64 << 10),
        Err(InjectError::OutOfRange)
    );
    // Up to the region's last byte is allowed; complementing twice
    // restores the bytes.
    let to_end = (64 << 10) - h.off(a) - h.usable_size(a.as_ptr()).unwrap();
    for _ in 0..2 {
        let inj = h.inject_overflow(a.as_ptr(), to_end).unwrap();
        assert_eq!(inj.offset + inj.len, 64 << 10);
    }
    h.validate().unwrap();
    h.free(a.as_ptr()).unwrap();
    assert_eq!(h.inject_freelist(a.as_ptr()), Err(InjectError::NotLive));
    // A block that fills the heap up to its end has no successor.
    let big = h.stats().largest_free_block;
    let p = h.alloc(big).unwrap();
    assert_eq!(h.inject_boundary(p.as_ptr()), Err(InjectError::NoNeighbour));
    h.validate().unwrap();
    h.free(p.as_ptr()).unwrap();
    h.validate().unwrap();
}

#[test]
fn refusal_messages_are_one_line_and_distinct() {
    let all = [
        InjectError::NotLive,
        InjectError::NoNeighbour,
        InjectError::OutOfRange,
        InjectError::Free(FreeError::DoubleFree),
    ];
    let msgs: std::collections::HashSet<_> = all.iter().map(|e| e.to_string()).collect();
    assert_eq!(msgs.len(), all.len());
    assert!(msgs.iter().all(|m| !m.is_empty() && !m.contains('\n')));
    assert!(msgs.contains(&format!(
        "free before damage failed: {}",
        FreeError::DoubleFree
    )));
}

#[test]
fn free_live_of_an_intact_allocation_is_a_plain_free() {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(64).unwrap();
    let b = h.alloc(10_000).unwrap();
    h.free_live(a.as_ptr(), None).unwrap();
    h.free_live(b.as_ptr(), None).unwrap();
    assert_eq!(h.stats().corruptions, 0);
    h.validate().unwrap();
}
