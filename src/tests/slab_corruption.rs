// SPDX-License-Identifier: GPL-2.0

//! The slab paths' own checks against damaged metadata, one test per
//! check: each damages one word so that only the check under test can see
//! it, and asserts the error's exact kind, offset and detail, and that
//! nothing was handed out or given back. (`corruption.rs` damages a live
//! heap and checks that the damage is found at all; `validate.rs` tests
//! `validate`'s checks.) Written for mutants of `slab.rs` that no test
//! caught (`make mutants`, README "Mutation testing").
//!
//! A slab descriptor is twelve `u32` at span + 16: magic, cache, next,
//! prev, free head, inuse, capacity, bump, first object, stride, state,
//! bitmap words. The first slab of a fresh heap starts at
//! `metadata_bytes()`; a 64-byte slab has 253 objects in 16,336 bytes.

mod common;

use common::cache_desc;
use common::slab_desc::{CACHE, CAPACITY, FREE_HEAD, INUSE, OBJ_START, STATE, STRIDE};
use common::{alloc_corruption, fast_alloc, view, TestHeap};
use ikos_kalloc::allocator::{
    header_check_word, magazine_capacity, slab_geometry, CacheError, Corruption, CorruptionKind,
    CpuCache, DebugFlags, FreeError,
};

/// The 64-byte class.
const CLASS: usize = 3;

fn triple(c: Corruption) -> (CorruptionKind, usize, u64) {
    (c.kind, c.offset, c.detail)
}

/// A slab descriptor whose objects would reach outside its span (damaged
/// capacity, stride or first object, each alone, with a valid magic)
/// makes the allocation that would take an object from it fail with
/// `SlabCountMismatch` at the span, the stride as detail, before the free
/// list is followed; `usable_size` of its live objects is refused too.
#[test]
fn a_slab_whose_objects_would_leave_its_span_hands_out_nothing() {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(64).unwrap();
    let b = h.alloc(64).unwrap();
    let c = h.alloc(64).unwrap();
    let big = h.alloc(10_000).unwrap();
    h.free(b.as_ptr()).unwrap(); // the next 64-byte allocation reuses b
    let span = h.metadata_bytes();
    // 253 objects of 64 bytes end exactly at the next block's header.
    assert_eq!(h.peek32(span + CAPACITY), 253);
    assert_eq!(
        h.peek32(span + OBJ_START) as usize + 253 * 64,
        h.off(big) - 16
    );
    let cases = [
        ("one object more than the span holds", CAPACITY, 254, 64),
        ("a stride below the usable size", STRIDE, 32, 32),
        (
            "objects starting at the span's header",
            OBJ_START,
            span as u32,
            64,
        ),
    ];
    for (what, field, v, detail) in cases {
        let saved = h.peek32(span + field);
        h.poke32(span + field, v);
        let got = alloc_corruption(&mut h, 64);
        assert_eq!(
            got,
            (CorruptionKind::SlabCountMismatch, span, detail),
            "{what}"
        );
        assert_eq!(h.usable_size(a.as_ptr()), None, "{what}");
        h.poke32(span + field, saved);
        h.validate().expect(what);
    }
    assert_eq!(h.alloc(64), Some(b));
    for p in [a, b, c, big] {
        h.free(p.as_ptr()).unwrap();
    }
    h.validate().unwrap();
}

/// A partial slab whose bump index has reached its capacity and whose
/// free list is empty has no object to give, whatever its in-use count
/// says: the allocation fails instead of handing out the object past the
/// last one (the next block's header). Both ways an object is taken:
/// without debug flags, and with them (`F`, which keeps the layout), where
/// the object is looked at before it is taken (`slab_peek`).
#[test]
fn a_slab_with_nothing_left_to_bump_or_reuse_is_a_count_mismatch() {
    for mut h in [
        TestHeap::new(1 << 20),
        TestHeap::with_debug(1 << 20, DebugFlags::SANITY),
    ] {
        let objs: Vec<_> = (0..253).map(|_| h.alloc(64).unwrap()).collect();
        let span = h.metadata_bytes();
        h.free(objs[5].as_ptr()).unwrap();
        assert_eq!(h.peek32(span + FREE_HEAD) as usize, h.off(objs[5]));
        h.poke32(span + FREE_HEAD, 0);
        assert_eq!(
            alloc_corruption(&mut h, 64),
            (CorruptionKind::SlabCountMismatch, span, 252)
        );
        h.poke32(span + FREE_HEAD, h.off(objs[5]) as u32);
        h.validate().unwrap();
        assert_eq!(h.alloc(64), Some(objs[5]));
        for p in objs {
            h.free(p.as_ptr()).unwrap();
        }
        assert_eq!(h.stats().slabs_total, 0);
    }
}

/// A new slab is sized by its cache's descriptor; a capacity of 0, or a
/// span too small for the capacity, is refused before the slab exists,
/// and the block taken for it goes back.
#[test]
fn a_new_slab_is_not_built_from_a_damaged_cache_descriptor() {
    let mut h = TestHeap::new(1 << 20);
    let initial = h.stats();
    let desc = h.cache_desc_offset(CLASS);
    assert_eq!(h.peek32(desc + cache_desc::CAPACITY), 253);
    assert_eq!(h.peek32(desc + cache_desc::SPAN_SIZE), 16_336);
    for (field, v, detail) in [
        (cache_desc::CAPACITY, 0, 0),
        (cache_desc::SPAN_SIZE, 8192, 253),
    ] {
        let saved = h.peek32(desc + field);
        h.poke32(desc + field, v);
        assert_eq!(
            alloc_corruption(&mut h, 64),
            (CorruptionKind::CacheMismatch, CLASS, detail)
        );
        h.poke32(desc + field, saved);
        let s = h.stats();
        assert_eq!((s.slabs_total, s.blocks_total), (0, 1));
        assert_eq!(s.largest_free_block, initial.largest_free_block);
    }
    let p = h.alloc(64).unwrap();
    h.validate().unwrap();
    h.free(p.as_ptr()).unwrap();
}

/// `shrink` gives an empty slab back only if it is one: a slab on the
/// empty list that still counts a live object, or whose block header is
/// not a slab's, stays where it is.
#[test]
fn only_an_empty_slab_is_released() {
    let mut h = TestHeap::new(1 << 20);
    let objs: Vec<_> = (0..254).map(|_| h.alloc(64).unwrap()).collect();
    h.free(objs[253].as_ptr()).unwrap(); // the second slab is empty
    let span = h.metadata_bytes() + slab_geometry(64, 64).1;
    assert_eq!(h.cache_info(CLASS).unwrap().slabs_empty, 1);
    let w0 = h.peek32(span);
    let w2 = h.peek32(span + 8);
    let check = h.peek32(span + 12);
    h.poke32(span + INUSE, 1);
    let e = h.shrink().expect_err("inuse 1");
    assert_eq!(triple(e), (CorruptionKind::SlabCountMismatch, span, 1));
    h.poke32(span + INUSE, 0);
    // The header of a used block that is not a slab (bit 1 of word 0
    // clear), with a valid check word.
    let plain = w0 & !2;
    h.poke32(span, plain);
    h.poke32(span + 12, header_check_word(span, plain, w2));
    let e = h.shrink().expect_err("not a slab");
    assert_eq!(triple(e), (CorruptionKind::SlabCountMismatch, span, 0));
    h.poke32(span, w0);
    h.poke32(span + 12, check);
    assert_eq!(h.stats().slabs_total, 2);
    h.validate().unwrap();
    assert_eq!(h.shrink(), Ok(1));
    for p in &objs[..253] {
        h.free(p.as_ptr()).unwrap();
    }
    h.validate().unwrap();
}

/// A free checks that the object's slab can take it back (a live count,
/// a cache in use, a sound free-list head) before it changes anything.
#[test]
fn a_free_checks_that_the_slab_can_take_the_object_back() {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(64).unwrap();
    let b = h.alloc(64).unwrap();
    let span = h.metadata_bytes();
    let cases = [
        (
            "a free head that is live",
            FREE_HEAD,
            h.off(a) as u32,
            (CorruptionKind::SlabFreeList, h.off(a), span as u64),
        ),
        (
            "no object in use",
            INUSE,
            0,
            (CorruptionKind::SlabCountMismatch, span, 0),
        ),
        (
            "a cache slot not in use",
            CACHE,
            10,
            (CorruptionKind::CacheMismatch, span, 10),
        ),
    ];
    for (what, field, v, want) in cases {
        let saved = h.peek32(span + field);
        h.poke32(span + field, v);
        match h.free(b.as_ptr()) {
            Err(FreeError::Corrupted(c)) => assert_eq!(triple(c), want, "{what}"),
            r => panic!("{what}: {r:?}"),
        }
        h.poke32(span + field, saved);
        assert_eq!(h.usable_size(b.as_ptr()), Some(64), "{what}: still live");
        h.validate().expect(what);
    }
    for p in [a, b] {
        h.free(p.as_ptr()).unwrap();
    }
    h.validate().unwrap();
}

/// A magazine refill that meets a damaged free-list link after taking an
/// object keeps that object (in the magazine, counted), stops, and reports
/// the damage once in `corruptions`, instead of failing with the object
/// taken.
#[test]
fn a_refill_keeps_what_it_took_before_the_damage() {
    let mut h = TestHeap::new(1 << 20);
    let mut cpu = CpuCache::new();
    let a = h.alloc(64).unwrap();
    let b = h.alloc(64).unwrap();
    let c = h.alloc(64).unwrap();
    h.free(a.as_ptr()).unwrap();
    h.free(b.as_ptr()).unwrap(); // free list: b -> a
    h.poke32(h.off(a), 0xffff_fff0);
    assert_eq!(h.magazine_refill(&mut cpu, CLASS), Ok(1));
    assert_eq!(cpu.held(CLASS), 1);
    assert_eq!(h.stats().corruptions, 1);
    h.poke32(h.off(a), 0);
    h.validate().unwrap();
    assert_eq!(h.magazine_flush(&mut cpu), Ok(1));
    h.free(c.as_ptr()).unwrap();
    let s = h.stats();
    assert_eq!((s.slabs_total, s.active_allocs), (0, 0));
}

/// A flush gives a magazine object back to its slab only if it is not
/// marked live: an object a copy of the magazine handed out (the top,
/// returned last) stops the flush with the damage.
#[test]
fn a_flush_stops_at_an_object_marked_live() {
    let mut h = TestHeap::new(1 << 20);
    let v = view(&h);
    let mut cpu = CpuCache::new();
    let mut copy = CpuCache::new();
    fast_alloc(&mut h, &v, &mut cpu, 64);
    cpu.detach_into(&mut copy, false);
    let top = copy.alloc(&v, CLASS, 64, false).unwrap();
    let span = h.metadata_bytes();
    let e = h.magazine_flush(&mut cpu).expect_err("a live object");
    assert_eq!(
        triple(e),
        (CorruptionKind::SlabFreeList, h.off(top), span as u64)
    );
    assert_eq!(cpu.held(CLASS), 0);
}

/// A flush gives a magazine object back only while its slab counts a
/// live object for it: a count that runs out before the magazine does
/// stops the flush at the next object. The refill took objects 0 to
/// half - 1 in that order and handed out the last.
#[test]
fn a_flush_stops_where_the_slab_live_count_runs_out() {
    let half = magazine_capacity(CLASS) / 2;
    let mut h = TestHeap::new(1 << 20);
    let v = view(&h);
    let mut cpu = CpuCache::new();
    let p = fast_alloc(&mut h, &v, &mut cpu, 64);
    let first = h.off(p) - (half - 1) * 64;
    let span = h.metadata_bytes();
    h.poke32(span + INUSE, 1);
    let e = h.magazine_flush(&mut cpu).expect_err("inuse 1");
    assert_eq!(
        triple(e),
        (CorruptionKind::SlabFreeList, first + 64, span as u64)
    );
}

/// `cache_destroy` of a cache with no live object (by its count) still
/// refuses it while a slab sits on its partial or full list:
/// `CacheMismatch` at the descriptor, the number of such slabs as the
/// detail, and nothing released.
#[test]
fn destroy_refuses_a_cache_whose_lists_hold_slabs_in_use() {
    let mut h = TestHeap::new(1 << 20);
    let id = h.cache_create("objs", 64, 64).unwrap();
    let desc = h.cache_desc_offset(id.index());
    let cap = h.caches().find(|c| c.id == id).unwrap().objs_per_slab;
    let mut objs = Vec::new();
    // (objects, partial slabs, full slabs)
    for (n, partial, full) in [(1, 1, 0), (cap, 0, 1), (cap + 1, 1, 1)] {
        while objs.len() < n {
            objs.push(h.cache_alloc(id).unwrap());
        }
        let info = h.caches().find(|c| c.id == id).unwrap();
        assert_eq!((info.slabs_partial, info.slabs_full), (partial, full));
        let before = h.stats();
        let active = h.peek32(desc + cache_desc::ACTIVE_OBJS);
        h.poke32(desc + cache_desc::ACTIVE_OBJS, 0);
        let r = h.cache_destroy(id);
        h.poke32(desc + cache_desc::ACTIVE_OBJS, active);
        match r {
            Err(CacheError::Corrupted(c)) => assert_eq!(
                triple(c),
                (CorruptionKind::CacheMismatch, desc, (partial + full) as u64),
                "{n} objects"
            ),
            r => panic!("{n} objects: {r:?}"),
        }
        let after = h.stats();
        assert_eq!(after.slabs_total, before.slabs_total);
        assert_eq!(after.corruptions, before.corruptions + 1);
    }
    for p in objs {
        h.cache_free(id, p.as_ptr()).unwrap();
    }
    h.cache_destroy(id).unwrap();
    h.validate().unwrap();
    assert_eq!(h.stats().blocks_total, 1);
}

/// The release of empty slabs (`shrink`, `cache_destroy`, the trim after
/// a free) goes only as far as the empty list is counted, and only over
/// slabs that say they are empty: a head the count does not cover, or a
/// slab on the list whose state is not empty, is `SlabListMismatch`
/// (detail: the cache, or the state found), and nothing is released.
#[test]
fn empty_slabs_are_released_only_as_far_as_the_list_counts_them() {
    let mut h = TestHeap::new(1 << 20);
    let objs: Vec<_> = (0..254).map(|_| h.alloc(64).unwrap()).collect();
    h.free(objs[253].as_ptr()).unwrap(); // the second slab is empty
    let span = h.metadata_bytes() + slab_geometry(64, 64).1;
    let count = h.cache_desc_offset(CLASS) + cache_desc::COUNT_EMPTY;
    assert_eq!(h.peek32(count), 1);
    h.poke32(count, 0);
    let e = h.shrink().expect_err("a head with count 0");
    assert_eq!(
        triple(e),
        (CorruptionKind::SlabListMismatch, span, CLASS as u64)
    );
    h.poke32(count, 1);
    h.poke32(span + STATE, 1);
    let e = h.shrink().expect_err("a partial slab on the empty list");
    assert_eq!(triple(e), (CorruptionKind::SlabListMismatch, span, 1));
    h.poke32(span + STATE, 0);
    let s = h.stats();
    assert_eq!((s.slabs_total, s.corruptions), (2, 2));
    h.validate().unwrap();
    assert_eq!(h.shrink(), Ok(1));
    for p in &objs[..253] {
        h.free(p.as_ptr()).unwrap();
    }
    h.validate().unwrap();
    assert_eq!(h.stats().blocks_total, 1);
}
