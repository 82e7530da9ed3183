// SPDX-License-Identifier: GPL-2.0

//! `validate()` itself: its report counts exactly what it walked, and each
//! of its checks fails on damage that only that check can see, with the
//! kind, offset and detail it documents. (`corruption.rs` damages a live
//! heap and checks that the damage is found at all.)
//!
//! The fixture is a fresh 1 MiB heap with one 64-byte slab (objects a, b,
//! c; b freed), a 10,000-byte block after it and the free rest:
//!
//! * slab span at the start of the block area; its descriptor at span +
//!   16: twelve `u32`, magic, cache, next, prev, free head, inuse (2),
//!   capacity (253), bump (3), first object, stride (64), state,
//!   bitmap words (4); the bitmap at span + 64;
//! * the span's objects end exactly where the large block's header starts.
//!
//! Layouts the tests poke: the TLSF index (first-level bitmap at 0, the
//! second-level bitmaps from 4, list heads from 128; the size-to-list
//! mapping is the allocator's own, `free_list_of`), cache descriptors
//! (`Heap::cache_desc_offset`) and page-map entries
//! (`Heap::pagemap_entry_offset`). The heap's own counters, kept outside
//! the region, are skewed with `Heap::inject_counter`.
//!
//! Each test here was written for mutants that no test caught (`make
//! mutants`, README "Mutation testing"): of `validate.rs`, and two of the
//! header and page-map code it relies on (a forged header's size, the
//! free path's page-map lookup).

mod common;

use common::cache_desc::{ACTIVE_OBJS, COUNT_PARTIAL, HEAD_EMPTY, SPAN_SIZE, TOTAL_OBJS};
use common::slab_desc::{BUMP, CACHE, CAPACITY, INUSE, OBJ_START, PREV, STRIDE, WORDS};
use common::{cache_desc, TestHeap};
use ikos_kalloc::allocator::config::{PAGE_SIZE, SL_COUNT, TOTAL_CACHES};
use ikos_kalloc::allocator::{
    free_list_of, header_check_word, size_class_for, AllocError, CorruptionKind, Counter, Flags,
    FreeError, ValidationReport,
};

/// The fixture: the heap, the slab span, the large block's header and the
/// free block after it.
fn fixture() -> (TestHeap, usize, usize, usize) {
    let mut h = TestHeap::new(1 << 20);
    let _a = h.alloc(64).unwrap();
    let b = h.alloc(64).unwrap();
    let _c = h.alloc(64).unwrap();
    let big = h.alloc(10_000).unwrap();
    h.free(b.as_ptr()).unwrap();
    let span = h.metadata_bytes();
    let large = h.off(big) - 16;
    let free = h.off(big) + h.usable_size(big.as_ptr()).unwrap();
    (h, span, large, free)
}

/// Writes `v` at `off`, runs `validate`, restores the old value and checks
/// that the heap is valid again; returns what `validate` reported.
fn damaged(h: &mut TestHeap, off: usize, v: u32) -> (CorruptionKind, usize, u64) {
    let saved = h.peek32(off);
    h.poke32(off, v);
    let c = h.validate().expect_err("damage must be detected");
    h.poke32(off, saved);
    h.validate().expect("valid once restored");
    (c.kind, c.offset, c.detail)
}

#[test]
fn the_report_counts_what_was_walked() {
    let (mut h, ..) = fixture();
    let r = h.validate().unwrap();
    assert_eq!(
        r,
        ValidationReport {
            blocks_checked: 3,
            free_blocks: 1,
            used_blocks: 2,
            free_list_links: 1,
            slabs_checked: 1,
            objects_checked: 253,
            slab_free_links: 1,
            pages_checked: 256,
            bytes_accounted: 1 << 20,
            depot_objects_checked: 0,
        }
    );
}

#[test]
fn each_slab_descriptor_check_fails_on_its_own() {
    use CorruptionKind::{CacheMismatch, SlabCountMismatch};
    let (mut h, span, large, _) = fixture();
    assert_eq!(h.peek32(span + OBJ_START) as usize + 253 * 64, large);
    let first = h.peek32(span + OBJ_START);
    // The first object may not start inside the bitmap: span + 64 + 4
    // words of 8 bytes.
    let bitmap_end = (span + 64 + 4 * 8) as u32;
    let cases = [
        (
            "cache index past the table",
            CACHE,
            TOTAL_CACHES as u32,
            (CacheMismatch, TOTAL_CACHES as u64),
        ),
        ("cache slot not in use", CACHE, 10, (CacheMismatch, 10)),
        ("stride", STRIDE, 56, (SlabCountMismatch, 1)),
        ("capacity", CAPACITY, 252, (SlabCountMismatch, 1)),
        ("bitmap words", WORDS, 5, (SlabCountMismatch, 1)),
        (
            "first object inside the bitmap",
            OBJ_START,
            bitmap_end - 8,
            (SlabCountMismatch, 1),
        ),
        (
            "objects past the span",
            OBJ_START,
            first + 8,
            (SlabCountMismatch, 1),
        ),
        ("bump past the capacity", BUMP, 254, (SlabCountMismatch, 2)),
        (
            "more in use than handed out",
            INUSE,
            4,
            (SlabCountMismatch, 2),
        ),
    ];
    for (what, field, v, (kind, detail)) in cases {
        assert_eq!(
            damaged(&mut h, span + field, v),
            (kind, span, detail),
            "{what}"
        );
    }
}

#[test]
fn a_live_bit_beyond_the_bump_index_in_a_later_bitmap_word() {
    // Bit 0 of the second word is object 64, past the 3 ever handed out:
    // reported as such (detail 4), not as one live bit too many (3).
    let (mut h, span, ..) = fixture();
    let got = damaged(&mut h, span + 64 + 8, 1);
    assert_eq!(got, (CorruptionKind::SlabCountMismatch, span, 4));
}

#[test]
fn a_slab_page_whose_map_entry_lost_it() {
    // Page 5 lies inside the span (pages 3 to 7): its `first` entry must
    // name the span.
    let (mut h, span, ..) = fixture();
    assert_eq!(
        (span / PAGE_SIZE, (span + 253 * 64 + 144) / PAGE_SIZE),
        (3, 7)
    );
    let e = h.pagemap_entry_offset(5);
    let got = damaged(&mut h, e, 0);
    assert_eq!(got, (CorruptionKind::PageMapMismatch, span, 5));
}

#[test]
fn page_map_entries_that_name_the_wrong_block() {
    let (mut h, span, large, _) = fixture();
    let page_of_large = (large + 4096) / PAGE_SIZE;
    let past_span = (large + PAGE_SIZE) / PAGE_SIZE;
    let cases = [
        // A used block that is not a slab.
        ("first: a large block", page_of_large, 0, large),
        // The slab, for a page it does not cover.
        ("first: a page past the slab", past_span, 0, span),
        // As starting inside a page it starts before.
        ("start: a page after the slab's start", 4, 4, span),
        // As starting inside a page it starts after.
        ("start: a page before the slab", 2, 4, span),
    ];
    for (what, page, half, cand) in cases {
        let e = h.pagemap_entry_offset(page) + half;
        let got = damaged(&mut h, e, cand as u32);
        assert_eq!(
            got,
            (CorruptionKind::PageMapMismatch, cand, page as u64),
            "{what}"
        );
    }
}

#[test]
fn a_free_block_whose_back_link_is_wrong() {
    // The only free block heads its list, so its back link must be 0.
    let (mut h, .., free) = fixture();
    let size = (1 << 20) - free;
    let got = damaged(&mut h, free + 20, 16);
    assert_eq!(got, (CorruptionKind::FreeListMismatch, free, size as u64));
}

#[test]
fn each_cache_table_check_fails_on_its_own() {
    use CorruptionKind::{CacheMismatch, SlabCountMismatch, SlabListMismatch};
    let (mut h, span, large, _) = fixture();
    let c64 = h.cache_desc_offset(3);
    let span_bytes = (large - span) as u32;
    // The span is an exact fit for the class's span size.
    assert_eq!(h.peek32(c64 + SPAN_SIZE), span_bytes);
    let inactive = h.cache_desc_offset(10);
    let cases = [
        // The span is smaller than the class's spans, or a whole minimum
        // block (32 bytes) larger.
        (
            "span smaller",
            c64 + SPAN_SIZE,
            span_bytes + 16,
            (SlabCountMismatch, span, 1),
        ),
        (
            "span larger",
            c64 + SPAN_SIZE,
            span_bytes - 32,
            (SlabCountMismatch, span, 1),
        ),
        // One partial slab, counted as two.
        (
            "list count",
            c64 + COUNT_PARTIAL,
            2,
            (SlabListMismatch, 3, 1),
        ),
        (
            "active objects",
            c64 + ACTIVE_OBJS,
            3,
            (CacheMismatch, 3, 3),
        ),
        (
            "total objects",
            c64 + TOTAL_OBJS,
            254,
            (CacheMismatch, 3, 2),
        ),
        // A slot not in use with a list head.
        (
            "inactive slot's list head",
            inactive + HEAD_EMPTY,
            span as u32,
            (CacheMismatch, 10, 0),
        ),
        // The only slab on its list has no predecessor.
        (
            "slab back link",
            span + PREV,
            16,
            (SlabListMismatch, span, 3),
        ),
    ];
    for (what, off, v, want) in cases {
        assert_eq!(damaged(&mut h, off, v), want, "{what}");
    }
}

#[test]
fn a_slab_on_the_list_of_a_twin_cache() {
    // A custom cache with the geometry of size-64: a slab of size-64 that
    // names it passes every per-slab check, and only the list walk of
    // size-64 finds a slab of another cache on it.
    let (mut h, span, ..) = fixture();
    let twin = h.cache_create("twin64", 64, 64).unwrap();
    let idx = twin.index() as u32;
    let got = damaged(&mut h, span + CACHE, idx);
    assert_eq!(got, (CorruptionKind::SlabListMismatch, span, 3));
}

#[test]
fn a_list_bit_without_a_list_names_the_list() {
    // Second-level bitmaps are `u32`s after the first-level one; first
    // level 11, second level 5 is an empty list of this heap.
    let (mut h, ..) = fixture();
    let word = 4 + 11 * 4;
    let v = h.peek32(word) | 1 << 5;
    let got = damaged(&mut h, word, v);
    let list = (11 * SL_COUNT + 5) as u64;
    assert_eq!(got, (CorruptionKind::BitmapMismatch, 0, list));
}

#[test]
fn each_counter_the_walk_recounts_is_checked() {
    use Counter::*;
    let (mut h, ..) = fixture();
    // The detail names the check: the walk's block count (3 blocks), then
    // 1 for the large blocks' counters, 2 the slabs', 3 the live count, 4
    // the requested bytes, 6 the parked blocks.
    let cases = [
        (Blocks, 3),
        (FreeBlocks, 1),
        (FreeBytes, 1),
        (SlabSpans, 2),
        (SlabSpanBytes, 2),
        (SlabCapacityBytes, 2),
        (SlabUsedBytes, 2),
        (TotalAllocs, 3),
        (RequestedLive, 4),
        (ParkedBlocks, 6),
        (ParkedBytes, 6),
    ];
    for (c, detail) in cases {
        h.inject_counter(c, 1);
        let e = h.validate().expect_err("a skewed counter must be found");
        h.inject_counter(c, -1);
        assert_eq!(
            (e.kind, e.offset, e.detail),
            (CorruptionKind::StatsMismatch, 0, detail),
            "{c:?}"
        );
        h.validate().expect("valid once restored");
    }
}

/// The free list `(fl, sl)` of a free block of `size` bytes, and the
/// region offsets of its second-level bitmap word and list head in the
/// TLSF index.
fn list_of(size: usize) -> (usize, usize, usize, usize) {
    let (fl, sl) = free_list_of(size).expect("a size the index maps");
    (fl, sl, 4 + fl * 4, 128 + (fl * SL_COUNT + sl) * 4)
}

#[test]
fn a_used_block_on_the_free_list_of_its_size() {
    // Listed where its size belongs, with links that fit: only "used"
    // is wrong, and the list walk says so at the block.
    let (mut h, _, large, free) = fixture();
    let size = free - large;
    let (fl, sl, sl_word, head) = list_of(size);
    let saved: Vec<_> = [0, sl_word, head, large + 16, large + 20]
        .iter()
        .map(|&o| (o, h.peek32(o)))
        .collect();
    h.poke32(0, saved[0].1 | 1 << fl);
    h.poke32(sl_word, saved[1].1 | 1 << sl);
    h.poke32(head, large as u32);
    h.poke32(large + 16, 0);
    h.poke32(large + 20, 0);
    let e = h.validate().expect_err("a used block on a free list");
    assert_eq!(
        (e.kind, e.offset, e.detail),
        (CorruptionKind::FreeListMismatch, large, size as u64)
    );
    for (o, v) in saved {
        h.poke32(o, v);
    }
    h.validate().unwrap();
}

#[test]
fn page_map_entries_at_page_boundaries() {
    // A 6,016-byte block first, so that the 64-byte slab after it starts
    // exactly on a page (20,480); with 6,064 bytes the slab (16,336
    // bytes) ends exactly on one (36,864).
    for (pad, span, what) in [(6016, 20480, "starts"), (6064, 20528, "ends")] {
        let mut h = TestHeap::new(1 << 20);
        let p = h.alloc(pad).unwrap();
        let _o = h.alloc(64).unwrap();
        let after_pad = h.off(p) + h.usable_size(p.as_ptr()).unwrap();
        assert_eq!((h.off(p) - 16, after_pad), (h.metadata_bytes(), span));
        assert_eq!(h.peek32(span + CACHE), 3, "the slab of size-64 is there");
        let end = span + 16336;
        let cases: Vec<(usize, usize)> = if what == "starts" {
            // "Starting inside" the page it starts exactly on, or the page
            // before, which it starts exactly after.
            vec![(span / PAGE_SIZE, 4), (span / PAGE_SIZE - 1, 4)]
        } else {
            // "Covering the first byte" of the page it ends exactly before.
            assert_eq!(end % PAGE_SIZE, 0);
            vec![(end / PAGE_SIZE, 0)]
        };
        for (page, half) in cases {
            let e = h.pagemap_entry_offset(page) + half;
            let got = damaged(&mut h, e, span as u32);
            let want = (CorruptionKind::PageMapMismatch, span, page as u64);
            assert_eq!(got, want, "slab {what} on a page: page {page}, half {half}");
        }
    }
}

#[test]
fn a_forged_header_with_a_size_that_cannot_be() {
    // The free block's header rewritten with a valid check word: smaller
    // than the smallest block (32 bytes), or reaching past the region.
    let (mut h, .., free) = fixture();
    let saved: Vec<u32> = (0..4).map(|i| h.peek32(free + 4 * i)).collect();
    for size in [16u32, 2 << 20] {
        h.poke32(free, size);
        h.poke32(free + 8, 0);
        h.poke32(free + 12, header_check_word(free, size, 0));
        let e = h.validate().expect_err("a size no block can have");
        let got = (e.kind, e.offset, e.detail);
        assert_eq!(got, (CorruptionKind::BadSize, free, u64::from(size)));
    }
    for (i, v) in saved.into_iter().enumerate() {
        h.poke32(free + 4 * i, v);
    }
    h.validate().unwrap();
}

#[test]
fn a_page_map_entry_naming_a_large_block_stops_a_free() {
    // Not only `validate`: the free path's page-map lookup refuses an
    // entry that names a used block that is not a slab, before it would
    // treat that block as one.
    let (mut h, _, large, _) = fixture();
    let big = h.region().as_ptr().wrapping_add(large + 16);
    let e = h.pagemap_entry_offset(large / PAGE_SIZE) + 4;
    h.poke32(e, large as u32);
    let err = h.free(big).expect_err("the entry is damaged");
    let FreeError::Corrupted(c) = err else {
        panic!("{err:?}");
    };
    assert_eq!(
        (c.kind, c.offset, c.detail),
        (CorruptionKind::PageMapMismatch, large, 0)
    );
    h.poke32(e, 0);
    h.free(big).unwrap();
    h.validate().unwrap();
}

/// A cache's stride, capacity or span size that its object size,
/// alignment and debug flags do not give is damage: with the stride of
/// `size-128` at 64, two 100-byte objects would overlap. `validate` finds
/// it with no slab yet, and no slab is made from it.
#[test]
fn a_damaged_cache_geometry_is_found_and_makes_no_slab() {
    for (field, value) in [
        (cache_desc::STRIDE, 64),
        (cache_desc::CAPACITY, 7),
        (cache_desc::SPAN_SIZE, 4096),
    ] {
        let mut h = TestHeap::new(1 << 20);
        let ci = size_class_for(100, 8).unwrap();
        let at = h.cache_desc_offset(ci) + field;
        let saved = h.peek32(at);
        h.poke32(at, value);
        let c = h.validate().unwrap_err();
        assert_eq!(
            (c.kind, c.offset),
            (CorruptionKind::CacheMismatch, ci),
            "field {field}"
        );
        let e = h.alloc_flags(100, 8, Flags::NONE).unwrap_err();
        assert!(
            matches!(e, AllocError::Corrupted(c) if c.kind == CorruptionKind::CacheMismatch),
            "field {field}: {e:?}"
        );
        assert_eq!(h.stats().slabs_total, 0);
        h.poke32(at, saved);
        h.validate().unwrap();
        let p = h.alloc(100).unwrap();
        h.free(p.as_ptr()).unwrap();
    }
}

/// A custom cache's object size of 0 or an alignment that is not a power
/// of two is damage even where the geometry they would give is unchanged
/// (an 8-byte object: sizes 0 to 8 give the same stride; an alignment of 0
/// is not one to compute with).
#[test]
fn a_damaged_custom_cache_size_or_alignment_is_found() {
    for (field, value) in [(cache_desc::OBJECT_SIZE, 0), (cache_desc::ALIGN, 0)] {
        let mut h = TestHeap::new(1 << 20);
        let id = h.cache_create("eight", 8, 8).unwrap();
        let at = h.cache_desc_offset(id.index()) + field;
        let saved = h.peek32(at);
        h.poke32(at, value);
        let c = h.validate().unwrap_err();
        assert_eq!(
            (c.kind, c.offset),
            (CorruptionKind::CacheMismatch, id.index()),
            "field {field}"
        );
        assert!(h.cache_alloc(id).is_err(), "field {field}");
        h.poke32(at, saved);
        h.validate().unwrap();
    }
}

/// A built-in class's object size that is not the class's is damage even
/// where the stride it gives is unchanged (60 bytes in `size-64`).
#[test]
fn a_built_in_class_with_another_object_size_is_found() {
    let mut h = TestHeap::new(1 << 20);
    let ci = size_class_for(64, 8).unwrap();
    let at = h.cache_desc_offset(ci) + cache_desc::OBJECT_SIZE;
    assert_eq!(h.peek32(at), 64);
    h.poke32(at, 60);
    let c = h.validate().unwrap_err();
    assert_eq!((c.kind, c.offset), (CorruptionKind::CacheMismatch, ci));
    h.poke32(at, 64);
    h.validate().unwrap();
}
