// SPDX-License-Identifier: GPL-2.0

//! Corruption detection: raw writes damage headers, free-list links, slab
//! descriptors, object free lists and bitmaps. `validate()` and the next
//! operation touching the damage report it as an error value; nothing
//! crashes, and undoing the damage makes the heap valid again.

mod common;

use common::{alloc_corruption, Rng, TestHeap};
use ikos_kalloc::allocator::{header_check_word, AllocError, CorruptionKind, Flags, FreeError};

fn expect_kind(h: &mut TestHeap, kinds: &[CorruptionKind]) {
    let before = h.stats().corruptions;
    let c = h.validate().expect_err("damage must be detected");
    assert!(kinds.contains(&c.kind), "{c}");
    assert!(h.check_corruption());
    assert!(h.stats().corruptions >= before + 2);
    println!("detected: {c}");
}

#[test]
fn damaged_large_header() {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(10_000).unwrap();
    let b = h.alloc(10_000).unwrap();
    let c = h.alloc(10_000).unwrap();
    let hb = h.off(b) - 16;
    let saved = h.peek32(hb);
    h.poke32(hb, saved ^ 0x100); // grow the size field
    expect_kind(&mut h, &[CorruptionKind::BadMagic]);
    assert_eq!(h.free(b.as_ptr()), Err(FreeError::NotAllocated));
    assert!(matches!(h.free(a.as_ptr()), Err(FreeError::Corrupted(_))));
    assert!(matches!(h.free(c.as_ptr()), Err(FreeError::Corrupted(_))));
    assert!(h.is_valid_pointer(a.as_ptr()));
    h.poke32(hb, saved);
    h.validate().unwrap();
    for p in [a, b, c] {
        h.free(p.as_ptr()).unwrap();
    }
    h.validate().unwrap();
    assert_eq!(h.stats().blocks_total, 1);
}

#[test]
fn damaged_boundary_tag_word() {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(10_000).unwrap();
    let b = h.alloc(10_000).unwrap();
    let hb = h.off(b) - 16;
    let saved = h.peek32(hb + 4);
    h.poke32(hb + 4, saved + 16); // previous-size boundary tag
                                  // The check word covers the tag, so raw damage shows as a bad magic.
    expect_kind(
        &mut h,
        &[
            CorruptionKind::BadMagic,
            CorruptionKind::BoundaryTagMismatch,
        ],
    );
    assert!(matches!(h.free(a.as_ptr()), Err(FreeError::Corrupted(_))));
    h.poke32(hb + 4, saved);
    h.free(a.as_ptr()).unwrap();
    h.free(b.as_ptr()).unwrap();
    h.validate().unwrap();
}

#[test]
fn free_list_link_out_of_bounds() {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(10_000).unwrap();
    let _guard = h.alloc(10_000).unwrap();
    h.free(a.as_ptr()).unwrap();
    let link = h.off(a); // next link is the first payload word of a free block
    let saved = h.peek32(link);
    h.poke32(link, 0xffff_fff0);
    expect_kind(&mut h, &[CorruptionKind::FreeListOutOfBounds]);
    // 9000 bytes rounds to a list below a's, so the search takes a.
    let r = h.alloc_flags(9000, 8, Flags::NONE);
    assert!(matches!(r, Err(AllocError::Corrupted(_))), "{r:?}");
    h.poke32(link, 0x10); // inside the metadata area
    expect_kind(&mut h, &[CorruptionKind::FreeListOutOfBounds]);
    h.poke32(link, saved);
    h.validate().unwrap();
    let p = h.alloc(9000).unwrap();
    h.free(p.as_ptr()).unwrap();
    h.validate().unwrap();
}

#[test]
fn free_list_loop() {
    let mut h = TestHeap::new(1 << 20);
    let v: Vec<_> = (0..6).map(|_| h.alloc(10_000).unwrap()).collect();
    h.free(v[0].as_ptr()).unwrap();
    h.free(v[2].as_ptr()).unwrap();
    h.free(v[4].as_ptr()).unwrap();
    // List (same class): v4 -> v2 -> v0. Point v0 back at v4.
    let l0 = h.off(v[0]);
    let saved = h.peek32(l0);
    h.poke32(l0, (h.off(v[4]) - 16) as u32);
    expect_kind(
        &mut h,
        &[
            CorruptionKind::FreeListLoop,
            CorruptionKind::FreeListMismatch,
        ],
    );
    h.poke32(l0, saved);
    h.validate().unwrap();
}

#[test]
fn slab_descriptor_magic() {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(64).unwrap();
    let b = h.alloc(64).unwrap();
    let span = h.metadata_bytes(); // first block of a fresh heap
    let saved = h.peek32(span + 16);
    h.poke32(span + 16, saved ^ 1);
    expect_kind(&mut h, &[CorruptionKind::SlabBadMagic]);
    assert!(matches!(h.free(a.as_ptr()), Err(FreeError::Corrupted(_))));
    assert!(matches!(
        h.alloc_flags(64, 8, Flags::NONE),
        Err(AllocError::Corrupted(_))
    ));
    assert_eq!(h.usable_size(b.as_ptr()), None);
    h.poke32(span + 16, saved);
    h.validate().unwrap();
    h.free(a.as_ptr()).unwrap();
    h.free(b.as_ptr()).unwrap();
    h.validate().unwrap();
}

#[test]
fn slab_object_free_list() {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(64).unwrap();
    let b = h.alloc(64).unwrap();
    let c = h.alloc(64).unwrap();
    h.free(b.as_ptr()).unwrap();
    h.free(c.as_ptr()).unwrap(); // free list: c -> b
    let saved = h.peek32(h.off(c));
    for bad in [0xffff_fff0u32, h.off(a) as u32, h.off(b) as u32 + 8] {
        h.poke32(h.off(c), bad);
        expect_kind(&mut h, &[CorruptionKind::SlabFreeList]);
        let r = h.alloc_flags(64, 8, Flags::NONE);
        assert!(matches!(r, Err(AllocError::Corrupted(_))), "{r:?}");
    }
    // A loop: b -> c -> b.
    h.poke32(h.off(c), saved);
    h.poke32(h.off(b), h.off(c) as u32);
    expect_kind(&mut h, &[CorruptionKind::SlabFreeList]);
    h.poke32(h.off(b), 0);
    h.validate().unwrap();
    h.free(a.as_ptr()).unwrap();
    h.validate().unwrap();
}

#[test]
fn tlsf_bitmap_and_slab_bitmap() {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(64).unwrap();
    let saved = h.peek32(0);
    h.poke32(0, saved | 1 << 20); // first-level bit without a list
    expect_kind(&mut h, &[CorruptionKind::BitmapMismatch]);
    h.poke32(0, saved);
    h.validate().unwrap();
    // Second-level bit of an empty list (first level 11, second level 5):
    // a 600 000-byte request rounds up to exactly that list.
    let sl11 = h.peek32(4 + 11 * 4);
    h.poke32(4 + 11 * 4, sl11 | 1 << 5);
    expect_kind(&mut h, &[CorruptionKind::BitmapMismatch]);
    // The search finds the list by its bit and then no head: the list's
    // index, first level * 32 + second level, is the detail.
    assert_eq!(
        alloc_corruption(&mut h, 600_000),
        (CorruptionKind::BitmapMismatch, 0, 11 * 32 + 5)
    );
    h.poke32(4 + 11 * 4, sl11);
    h.validate().unwrap();
    // Slab object bitmap: mark a never-used object as allocated.
    let span = h.metadata_bytes();
    let bm = span + 64;
    let w = h.peek32(bm);
    h.poke32(bm, w | 0b10);
    expect_kind(&mut h, &[CorruptionKind::SlabCountMismatch]);
    h.poke32(bm, w);
    h.free(a.as_ptr()).unwrap();
    h.validate().unwrap();
}

#[test]
fn random_damage_never_crashes() {
    let mut rng = Rng::new(42);
    let mut detected = 0;
    // Enough rounds that the rate hardly moves when the heap layout does
    // (50 to 57% over seeds with 300 rounds).
    const ROUNDS: usize = 1000;
    for round in 0..ROUNDS {
        let mut h = TestHeap::new(256 << 10);
        let mut live = Vec::new();
        for _ in 0..40 {
            let s = if rng.range(0, 3) == 0 {
                rng.range(4097, 20_000)
            } else {
                rng.range(1, 2048)
            };
            if let Some(p) = h.alloc(s) {
                live.push(p);
            }
        }
        for p in live.iter().step_by(3) {
            h.free(p.as_ptr()).unwrap();
        }
        // Damage 1-3 random words in the metadata area (not the depot's
        // slots, unused without per-CPU caches) or near a block start.
        let meta = h.depot_area().0;
        for _ in 0..rng.range(1, 3) {
            let off = if rng.range(0, 1) == 0 {
                rng.range(0, meta / 4 - 1) * 4
            } else {
                let p = live[rng.range(0, live.len() - 1)];
                (h.off(p) - 16 + rng.range(0, 7) * 4).min((256 << 10) - 4)
            };
            let v = h.peek32(off) ^ (1 << rng.range(0, 31));
            h.poke32(off, v);
        }
        if h.validate().is_err() {
            detected += 1;
        }
        // Operations on a damaged heap return values, never crash.
        for p in &live {
            let _ = h.free(p.as_ptr());
        }
        for _ in 0..40 {
            let _ = h.alloc_flags(rng.range(1, 30_000), 8 << rng.range(0, 6), Flags::NONE);
        }
        let _ = h.shrink();
        let _ = h.validate();
        let _ = h.stats();
        let _ = round;
    }
    println!("random damage: {detected}/{ROUNDS} rounds detected by validate()");
    assert!(detected > ROUNDS * 45 / 100);
}

/// Aims the next link of the one free block of a fresh heap (at the start
/// of the block area) at `wild`; returns that block's offset and what
/// `validate` reports. The caller puts the link back to 0.
fn with_wild_next_link(h: &mut TestHeap, wild: usize) -> (usize, (CorruptionKind, usize, u64)) {
    let blk = h.metadata_bytes();
    h.poke32(blk + 16, wild as u32);
    let c = h.validate().expect_err("detected");
    (blk, (c.kind, c.offset, c.detail))
}

#[test]
fn wild_link_in_the_last_listed_block_is_out_of_bounds_not_a_loop() {
    // A fresh heap has one free block; a wild next link in it used to be
    // reported as a free-list loop at the wild offset.
    let mut h = TestHeap::new(1 << 20);
    let (blk, c) = with_wild_next_link(&mut h, 0xffff_fff0);
    assert_eq!(c, (CorruptionKind::FreeListOutOfBounds, blk, 0xffff_fff0));
    h.poke32(blk + 16, 0);
    h.validate().unwrap();
}

#[test]
fn a_link_that_is_not_16_byte_aligned_is_out_of_bounds() {
    // Block headers are 16-byte aligned; a link 8 bytes off is refused
    // before its "header" is read (reading it would find a bad check word
    // and report a different kind).
    let mut h = TestHeap::new(1 << 20);
    let wild = h.metadata_bytes() + 64 + 8;
    let (blk, c) = with_wild_next_link(&mut h, wild);
    assert_eq!(c, (CorruptionKind::FreeListOutOfBounds, blk, wild as u64));
    h.poke32(blk + 16, 0);
    h.validate().unwrap();
}

#[test]
fn a_link_to_where_no_header_is_names_the_link() {
    // A free block's next link aimed at a 16-aligned offset inside its
    // own payload, where no header is: the neighbour check reports a
    // free-list mismatch at the link's target (not a bad block magic there,
    // which would point at a block that does not exist).
    let mut h = TestHeap::new(1 << 20);
    let wild = h.metadata_bytes() + 64;
    let (blk, c) = with_wild_next_link(&mut h, wild);
    let want = (CorruptionKind::FreeListMismatch, wild, 0);
    assert_eq!(c, want);
    // An allocation unlinks the block and checks its neighbour the same way.
    assert_eq!(alloc_corruption(&mut h, 100_000), want);
    h.poke32(blk + 16, 0);
    h.validate().unwrap();
    assert_eq!(h.stats().corruptions, 2);
}

#[test]
fn the_header_check_word_tells_offsets_and_single_bit_changes_apart() {
    // A header copied to any other 16-byte offset of a 1 MiB region
    // (65,536 places) keeps none of its check words, and changing one bit of its size, flags (but the cached bit,
    // which the check word leaves out) or requested size changes it.
    let (w0, w2) = (0x3000 | 1, 10_000u32);
    let words: std::collections::HashSet<u32> = (0..65_536)
        .map(|i| header_check_word(i * 16, w0, w2))
        .collect();
    assert_eq!(words.len(), 65_536);
    for off in [16, 0x4000, 0x3ff_fff0] {
        let base = header_check_word(off, w0, w2);
        for bit in (0..32).filter(|&b| b != 2) {
            let flipped = header_check_word(off, w0 ^ 1 << bit, w2);
            assert_ne!(flipped, base, "word 0 bit {bit} at {off:#x}");
            assert_ne!(
                header_check_word(off, w0, w2 ^ 1 << bit),
                base,
                "word 2 bit {bit}"
            );
        }
        assert_eq!(
            header_check_word(off, w0 | 4, w2),
            base,
            "the cached bit is left out"
        );
    }
}

/// The good-fit search takes the head of the list it found only if the
/// head's size belongs to that list. A free block whose header (forged,
/// with a valid check word) claims a size of a higher list, large enough
/// for the request, is refused with that size as the detail.
#[test]
fn a_list_head_whose_size_belongs_to_another_list_is_refused() {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(20_000).unwrap();
    let guard = h.alloc(20_000).unwrap();
    h.free(a.as_ptr()).unwrap();
    let hdr = h.off(a) - 16;
    let saved: Vec<u32> = (0..4).map(|i| h.peek32(hdr + 4 * i)).collect();
    let forged = saved[0] + 4096;
    h.poke32(hdr, forged);
    h.poke32(hdr + 12, header_check_word(hdr, forged, saved[2]));
    // 15,000 bytes: an empty list of its own, and a's list is the first
    // non-empty one of the rounded-up class.
    assert_eq!(
        alloc_corruption(&mut h, 15_000),
        (CorruptionKind::FreeListMismatch, hdr, u64::from(forged))
    );
    for (i, v) in saved.into_iter().enumerate() {
        h.poke32(hdr + 4 * i, v);
    }
    h.validate().unwrap();
    h.free(guard.as_ptr()).unwrap();
    h.validate().unwrap();
}

/// A first-level bitmap bit whose level has no non-empty list (its
/// second-level bitmap is empty, or the level is past the index) stops
/// the search with `BitmapMismatch` and that level's first list index as
/// the detail, instead of reading past the index or reporting plain
/// out-of-memory.
#[test]
fn a_first_level_bit_without_lists_stops_the_search() {
    let mut h = TestHeap::new(1 << 20);
    let saved = h.peek32(0);
    // Level 5 has no free block; a 5,000-byte request (level 4, empty)
    // searches up from level 5. A request larger than the only free
    // block searches past level 11 (where that block is) to level 22,
    // the first past the index, or 25. The word after the last
    // second-level bitmap (at 4 + 22 * 4) is not level 22's: a bit
    // planted there must not be read as one.
    let past = h.stats().largest_free_block + 64;
    h.poke32(4 + 22 * 4, 1 << 3);
    for (bit, size) in [(5u32, 5000), (22, past), (25, past)] {
        h.poke32(0, saved | 1 << bit);
        assert_eq!(
            alloc_corruption(&mut h, size),
            (CorruptionKind::BitmapMismatch, 0, u64::from(bit) * 32),
            "level {bit}"
        );
        h.poke32(0, saved);
    }
    h.poke32(4 + 22 * 4, 0);
    h.validate().unwrap();
    assert_eq!(h.stats().blocks_total, 1);
}

/// Links the only free block of a fresh heap to itself (its next link);
/// returns the link's offset and old value, to put back with `poke32`.
fn loop_the_only_free_block(h: &mut TestHeap) -> (usize, u32) {
    let free = h.metadata_bytes();
    let next = h.peek32(free + 16);
    h.poke32(free + 16, free as u32);
    (free + 16, next)
}

/// The largest-free-block scan of the top list ends on a list that loops
/// (a free block linked to itself): it is bounded by the free-block count.
#[test]
fn a_looping_top_list_does_not_hang_the_largest_free_block_scan() {
    let mut h = TestHeap::new(1 << 20);
    let largest = h.stats().largest_free_block;
    let (at, next) = loop_the_only_free_block(&mut h);
    assert_eq!(h.stats().largest_free_block, largest);
    h.poke32(at, next);
    h.validate().unwrap();
}

/// The last-resort walk of a request's own list (`take_from_own_list`)
/// ends on a list that loops: a request just larger than the only free
/// block finds its head too small and no larger class, walks the list,
/// and fails with out-of-memory after the free-block count of steps.
#[test]
fn a_looping_own_list_does_not_hang_the_last_resort_walk() {
    let mut h = TestHeap::new(1 << 20);
    let largest = h.stats().largest_free_block;
    let (at, next) = loop_the_only_free_block(&mut h);
    assert_eq!(
        h.alloc_flags(largest + 16, 8, Flags::NONE).err(),
        Some(AllocError::OutOfMemory)
    );
    h.poke32(at, next);
    h.validate().unwrap();
}

/// A | B | C | D of 10,000 bytes each with B free; C's header damaged
/// (its size word, so its check word fails) while `op` runs, then
/// repaired. An operation that reaches C through the free block B must
/// fail without changing anything: the repaired heap validates, with the
/// same free bytes and blocks, and A can still be freed.
fn fails_untouched_past_a_free_block(op: impl FnOnce(&mut TestHeap, *mut u8) -> bool) {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(10_000).unwrap();
    let b = h.alloc(10_000).unwrap();
    let c = h.alloc(10_000).unwrap();
    let _d = h.alloc(10_000).unwrap();
    h.free(b.as_ptr()).unwrap();
    let hc = h.off(c) - 16;
    let saved = h.peek32(hc);
    h.poke32(hc, saved ^ 0x100);
    let before = h.stats();
    assert!(op(&mut h, a.as_ptr()), "the operation must fail");
    h.poke32(hc, saved);
    h.validate().unwrap();
    let after = h.stats();
    assert_eq!(
        (after.free_bytes, after.blocks_free, after.active_allocs),
        (before.free_bytes, before.blocks_free, before.active_allocs)
    );
    assert_eq!(h.usable_size(a.as_ptr()), Some(10_000));
    h.free(a.as_ptr()).unwrap();
    h.validate().unwrap();
}

#[test]
fn an_allocation_that_would_split_next_to_damage_changes_nothing() {
    fails_untouched_past_a_free_block(|h, _| {
        matches!(
            h.alloc_flags(5000, 8, Flags::NONE),
            Err(AllocError::Corrupted(_))
        )
    });
}

#[test]
fn a_free_that_would_merge_next_to_damage_changes_nothing() {
    fails_untouched_past_a_free_block(|h, a| matches!(h.free(a), Err(FreeError::Corrupted(_))));
}

#[test]
fn a_realloc_that_would_grow_next_to_damage_changes_nothing() {
    fails_untouched_past_a_free_block(|h, a| h.realloc(a, 15_000).is_err());
}

#[test]
fn a_realloc_that_would_shrink_next_to_damage_changes_nothing() {
    fails_untouched_past_a_free_block(|h, a| h.realloc(a, 5000).is_err());
}
