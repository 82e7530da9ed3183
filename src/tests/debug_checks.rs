// SPDX-License-Identifier: GPL-2.0

//! Debug flags (`Heap::with_debug`, per cache `set_cache_debug`): red zones
//! (`Z`), poisoning (`P`), owner tracking (`U`) and sanity checks (`F`).
//! Each detection is provoked on purpose and must name the first bad byte
//! and the bytes found, count in its stats counter and `corruptions`, and
//! leave a consistent heap; with every flag off the layout is the old one.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::{cache_desc, check, fill, Rng, TestHeap};
use ikos_kalloc::allocator::{
    AllocError, CacheError, Corruption, CorruptionKind, DebugFlags, Flags, FreeError, InjectError,
    ReallocError, POISON_END, POISON_FREE, RED_ACTIVE, RED_INACTIVE,
};
use proptest::prelude::*;

const HEAP: usize = 1 << 20;

fn flags(s: &str) -> DebugFlags {
    DebugFlags::parse(s.as_bytes()).unwrap()
}

/// The bytes a red-zone or poison report found.
fn found(c: &Corruption) -> Vec<u8> {
    let (b, n) = c.found_bytes();
    b[..n].to_vec()
}

#[test]
fn flags_parse_and_print() {
    assert_eq!(flags("ZPUF"), DebugFlags::ALL);
    assert_eq!(flags("FUPZ"), DebugFlags::ALL);
    assert_eq!(flags("ZZ"), DebugFlags::REDZONE);
    assert_eq!(flags("-"), DebugFlags::NONE);
    assert_eq!(flags(""), DebugFlags::NONE);
    assert_eq!(DebugFlags::parse(b"ZX"), Err(b'X'));
    assert_eq!(DebugFlags::parse(b"z"), Err(b'z'));
    assert_eq!(DebugFlags::parse(b"-Z"), Err(b'-'));
    assert_eq!(flags("UZ").to_string(), "ZU");
    assert_eq!(DebugFlags::ALL.to_string(), "ZPUF");
    assert_eq!(DebugFlags::NONE.to_string(), "-");
}

#[test]
fn debug_off_keeps_the_exact_layout() {
    let plain = TestHeap::new(HEAP);
    let off = TestHeap::with_debug(HEAP, DebugFlags::NONE);
    let f_only = TestHeap::with_debug(HEAP, DebugFlags::SANITY);
    let want: Vec<_> = plain
        .caches()
        .map(|c| (c.stride, c.objs_per_slab, c.slab_bytes))
        .collect();
    // The table of src/allocator/slab.rs.
    let objs: Vec<_> = want.iter().map(|w| w.1).collect();
    assert_eq!(objs, [2008, 1012, 507, 253, 127, 63, 31, 15, 8, 8]);
    for h in [&off, &f_only] {
        let got: Vec<_> = h
            .caches()
            .map(|c| (c.stride, c.objs_per_slab, c.slab_bytes))
            .collect();
        assert_eq!(got, want);
        assert_eq!(h.metadata_bytes(), plain.metadata_bytes());
        assert_eq!(h.stats(), plain.stats());
    }
    // Same addresses for the same operations, usable sizes as before.
    let mut a = TestHeap::new(HEAP);
    let mut b = TestHeap::with_debug(HEAP, DebugFlags::SANITY);
    for size in [1, 8, 60, 64, 100, 4000, 5000, 70_000] {
        let pa = a.alloc(size).unwrap();
        let pb = b.alloc(size).unwrap();
        assert_eq!(a.off(pa), b.off(pb));
        assert_eq!(a.usable_size(pa.as_ptr()), b.usable_size(pb.as_ptr()));
    }
    assert_eq!(a.stats(), b.stats());
}

#[test]
fn debug_layout_geometry() {
    let h = TestHeap::with_debug(HEAP, flags("ZPU"));
    let s64 = h.caches().nth(3).unwrap();
    assert_eq!(s64.debug, flags("ZPU"));
    // 64 left red zone + 64 object + 8 red zone + 8 link + 24 track -> 192.
    assert_eq!((s64.object_size, s64.stride), (64, 192));
    let s8 = h.caches().next().unwrap();
    // 8 + 8 + 8 + 8 + 24 = 56.
    assert_eq!(s8.stride, 56);
    let p = h.caches().nth(9).unwrap();
    assert_eq!(p.stride, 4224);
    assert!(p.objs_per_slab >= 8);
}

#[test]
fn slab_overflow_into_the_right_red_zone() {
    let mut h = TestHeap::with_debug(HEAP, DebugFlags::REDZONE);
    let a = h.alloc(64).unwrap();
    let b = h.alloc(64).unwrap();
    assert_eq!(h.usable_size(a.as_ptr()), Some(64));
    let o = h.off(a);
    assert_eq!(h.peek(o + 64), RED_ACTIVE);
    assert_eq!(h.peek(o - 1), RED_ACTIVE);
    h.validate().unwrap();
    h.poke(o + 64, 4, 0x42);
    let c = h.validate().unwrap_err();
    assert_eq!((c.kind, c.offset), (CorruptionKind::RedZone, o + 64), "{c}");
    assert_eq!(found(&c), [0x42, 0x42, 0x42, 0x42, 0xcc, 0xcc, 0xcc]);
    assert_eq!(
        c.to_string(),
        format!(
            "heap corruption: red zone overwritten at offset {:#x} (bytes found: 42 42 42 42 cc cc cc)",
            o + 64
        )
    );
    let e = h.free(a.as_ptr()).unwrap_err();
    assert_eq!(e, FreeError::Corrupted(c));
    // Refused: the heap is unchanged, the object still live.
    assert_eq!(h.usable_size(a.as_ptr()), Some(64));
    let s = h.stats();
    assert_eq!(
        (s.redzone_errors, s.corruptions, s.active_allocs),
        (2, 2, 2)
    );
    // The neighbour is unaffected.
    h.free(b.as_ptr()).unwrap();
}

#[test]
fn slab_underflow_into_the_left_red_zone() {
    let mut h = TestHeap::with_debug(HEAP, DebugFlags::REDZONE);
    let a = h.alloc(100).unwrap();
    let o = h.off(a);
    h.poke(o - 3, 1, 0);
    let e = h.free(a.as_ptr()).unwrap_err();
    match e {
        FreeError::Corrupted(c) => {
            assert_eq!((c.kind, c.offset), (CorruptionKind::RedZone, o - 3));
            assert_eq!(found(&c), [0, 0xcc, 0xcc]);
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(h.stats().redzone_errors, 1);
}

#[test]
fn custom_cache_red_zone_starts_at_the_object_size() {
    let mut h = TestHeap::with_debug(HEAP, DebugFlags::REDZONE);
    let id = h.cache_create("obj", 200, 64).unwrap();
    assert_eq!(h.cache_debug(id), Some(DebugFlags::REDZONE));
    let a = h.cache_alloc(id).unwrap();
    assert_eq!(h.usable_size(a.as_ptr()), Some(200));
    fill(a, 200, 7);
    h.validate().unwrap();
    h.poke(h.off(a) + 200, 1, 0x11);
    let e = h.cache_free(id, a.as_ptr()).unwrap_err();
    assert!(
        matches!(e, FreeError::Corrupted(c) if c.kind == CorruptionKind::RedZone && c.offset == h.off(a) + 200),
        "{e:?}"
    );
    assert!(check(a, 200, 7));
}

/// The padding that rounds a red-zoned slot up to its alignment, after
/// the free-list link, is a red zone as well: for the 64-byte class a
/// 64-byte left zone, the object, an 8-byte right zone, the link, then
/// 48 bytes to the 192-byte stride.
#[test]
fn the_padding_at_the_end_of_a_slot_is_a_red_zone_too() {
    let mut h = TestHeap::with_debug(HEAP, DebugFlags::REDZONE);
    assert_eq!(h.cache_info(3).unwrap().stride, 192);
    let a = h.alloc(64).unwrap();
    let o = h.off(a);
    assert_eq!((h.peek(o + 80), h.peek(o + 127)), (RED_ACTIVE, RED_ACTIVE));
    h.poke(o + 127, 1, 0x42);
    match h.free(a.as_ptr()) {
        Err(FreeError::Corrupted(c)) => {
            assert_eq!((c.kind, c.offset), (CorruptionKind::RedZone, o + 127));
            assert_eq!(found(&c), [0x42]);
        }
        r => panic!("{r:?}"),
    }
    h.poke(o + 127, 1, RED_ACTIVE);
    h.free(a.as_ptr()).unwrap();
    h.validate().unwrap();
}

/// Debug flags of the heap as created, and a cache's flags changed twice:
/// the second change derives the free-list link afresh (a link left from
/// the red-zoned layout would point into the next object).
#[test]
fn flags_changed_twice_leave_the_layout_of_the_last() {
    assert_eq!(TestHeap::new(HEAP).debug_flags(), DebugFlags::NONE);
    assert_eq!(
        TestHeap::with_debug(HEAP, flags("ZP")).debug_flags(),
        flags("ZP")
    );
    let mut h = TestHeap::new(HEAP);
    let id = h.cache_create("t", 40, 8).unwrap();
    h.set_cache_debug(id, DebugFlags::REDZONE).unwrap();
    assert_eq!(h.caches().find(|c| c.id == id).unwrap().stride, 64);
    h.set_cache_debug(id, DebugFlags::NONE).unwrap();
    assert_eq!(h.caches().find(|c| c.id == id).unwrap().stride, 40);
    let objs: Vec<_> = (0..3).map(|_| h.cache_alloc(id).unwrap()).collect();
    for (i, p) in objs.iter().enumerate() {
        fill(*p, 40, i as u8);
    }
    h.cache_free(id, objs[0].as_ptr()).unwrap();
    assert!(check(objs[1], 40, 1), "the next object is intact");
    for p in &objs[1..] {
        h.cache_free(id, p.as_ptr()).unwrap();
    }
    h.validate().unwrap();
}

/// A cache's debug flags change only while it has no slab: a cache with a
/// slab is busy even when its live count says no object is live.
#[test]
fn a_cache_with_a_slab_is_busy_whatever_its_live_count_says() {
    let mut h = TestHeap::new(HEAP);
    let id = h.cache_create("t", 40, 8).unwrap();
    let p = h.cache_alloc(id).unwrap();
    let at = h.cache_desc_offset(id.index()) + cache_desc::ACTIVE_OBJS;
    h.poke32(at, 0);
    assert_eq!(
        h.set_cache_debug(id, DebugFlags::REDZONE),
        Err(CacheError::Busy)
    );
    h.poke32(at, 1);
    h.cache_free(id, p.as_ptr()).unwrap();
    h.set_cache_debug(id, DebugFlags::REDZONE).unwrap();
    h.validate().unwrap();
}

#[test]
fn large_block_overflow() {
    let mut h = TestHeap::with_debug(HEAP, DebugFlags::REDZONE);
    let a = h.alloc(10_000).unwrap();
    let b = h.alloc(10_001).unwrap();
    assert_eq!(h.usable_size(a.as_ptr()), Some(10_000));
    assert_eq!(h.usable_size(b.as_ptr()), Some(10_001));
    let o = h.off(b);
    h.poke(o + 10_001, 2, 0x42);
    let c = h.validate().unwrap_err();
    assert_eq!((c.kind, c.offset), (CorruptionKind::RedZone, o + 10_001));
    assert_eq!(found(&c)[..3], [0x42, 0x42, 0xcc]);
    assert!(matches!(
        h.free(b.as_ptr()),
        Err(FreeError::Corrupted(c)) if c.kind == CorruptionKind::RedZone
    ));
    h.free(a.as_ptr()).unwrap();
    assert_eq!(h.stats().redzone_errors, 2);
}

#[test]
fn zeroed_allocation_keeps_its_red_zone() {
    let mut h = TestHeap::with_debug(HEAP, flags("ZP"));
    let _keep = h.alloc(64).unwrap();
    let a = h.alloc_flags(50, 8, Flags::ZERO).unwrap();
    let o = h.off(a);
    assert_eq!(h.usable_size(a.as_ptr()), Some(64));
    assert!((0..64).all(|i| h.peek(o + i) == 0));
    assert_eq!(h.peek(o + 64), RED_ACTIVE);
    h.validate().unwrap();
    h.free(a.as_ptr()).unwrap();
    assert_eq!(h.peek(o + 64), RED_INACTIVE);
}

#[test]
fn slab_write_after_free_is_caught_by_validate_and_the_next_alloc() {
    let mut h = TestHeap::with_debug(HEAP, DebugFlags::POISON);
    let keep = h.alloc(64).unwrap();
    let a = h.alloc(64).unwrap();
    let o = h.off(a);
    // A fresh object is poisoned too: P hands out 0x6b ... 0xa5.
    assert_eq!(h.peek(o), POISON_FREE);
    assert_eq!(h.peek(o + 63), POISON_END);
    fill(a, 64, 1);
    h.free(a.as_ptr()).unwrap();
    assert!((0..63).all(|i| h.peek(o + i) == POISON_FREE));
    assert_eq!(h.peek(o + 63), POISON_END);
    h.validate().unwrap();
    h.poke(o + 10, 2, 0x42);
    let c = h.validate().unwrap_err();
    assert_eq!((c.kind, c.offset), (CorruptionKind::Poison, o + 10), "{c}");
    assert_eq!(found(&c), [0x42, 0x42, 0x6b, 0x6b, 0x6b, 0x6b, 0x6b]);
    // The object is the head of the free list: the allocation fails...
    let e = h.alloc_flags(64, 8, Flags::NONE).unwrap_err();
    assert_eq!(e, AllocError::Corrupted(c));
    // ... the poison is restored and the object is handed out next.
    h.validate().unwrap();
    let again = h.alloc(64).unwrap();
    assert_eq!(again, a);
    let s = h.stats();
    assert_eq!((s.poison_errors, s.corruptions, s.failed_allocs), (2, 2, 1));
    assert_eq!(s.active_allocs, 2);
    h.free(again.as_ptr()).unwrap();
    h.free(keep.as_ptr()).unwrap();
    h.validate().unwrap();
}

#[test]
fn a_second_free_after_the_slab_went_back_is_a_double_free_with_and_without_p() {
    // Freeing a cache's last object returns its slab to the large pool.
    // The released descriptor keeps a dead marker, so an immediate second
    // free is still a double free. Heap-wide `P` poisons the released span,
    // marker included; the heap then remembers the span's geometry outside
    // the region (the last 4 released spans).
    for f in ["", "ZUF", "P", "ZPUF"] {
        let mut h = TestHeap::with_debug(HEAP, flags(f));
        let p = h.alloc(128).unwrap();
        h.free(p.as_ptr()).unwrap();
        assert_eq!(h.stats().slabs_total, 0, "{f}: the slab went back");
        let before = h.stats();
        assert_eq!(h.free(p.as_ptr()), Err(FreeError::DoubleFree), "{f}");
        let after = h.stats();
        assert_eq!(after.double_frees, before.double_frees + 1, "{f}");
        assert_eq!(after.invalid_frees, before.invalid_frees, "{f}");
        assert_eq!(after.free_bytes, before.free_bytes, "{f}");
        h.validate().unwrap();
    }
}

#[test]
fn with_p_a_released_span_is_remembered_until_its_memory_is_reused() {
    let mut h = TestHeap::with_debug(HEAP, DebugFlags::POISON);
    // Five caches' last objects: the ring holds the last four spans.
    let sizes = [16, 32, 64, 128, 256];
    let ptrs: Vec<_> = sizes.iter().map(|&s| h.alloc(s).unwrap()).collect();
    for p in &ptrs {
        h.free(p.as_ptr()).unwrap();
    }
    assert_eq!(h.stats().slabs_total, 0);
    // The oldest release fell out of the ring: its poisoned descriptor
    // leaves nothing to tell, so that second free is `NotAllocated`.
    assert_eq!(h.free(ptrs[0].as_ptr()), Err(FreeError::NotAllocated));
    for p in &ptrs[1..] {
        assert_eq!(h.free(p.as_ptr()), Err(FreeError::DoubleFree));
    }
    // A slot never handed out is not a double free.
    // SAFETY: inside the released span (its second object slot).
    let unused = unsafe { ptrs[4].as_ptr().add(256) };
    assert_eq!(h.free(unused), Err(FreeError::NotAllocated));
    // Reusing the memory ends it once it is written over (as without `P`,
    // where the new owner's data overwrites the dead descriptor): a large
    // block over the released spans, filled.
    let big = h.alloc(200_000).unwrap();
    assert!(big.as_ptr() <= ptrs[0].as_ptr());
    fill(big, 200_000, 0x5a);
    for p in &ptrs[1..] {
        assert_ne!(h.free(p.as_ptr()), Err(FreeError::DoubleFree));
    }
    h.free(big.as_ptr()).unwrap();
    h.validate().unwrap();
    let s = h.stats();
    assert_eq!((s.double_frees, s.active_allocs), (4, 0));
}

#[test]
fn large_write_after_free() {
    let mut h = TestHeap::with_debug(HEAP, DebugFlags::POISON);
    let a = h.alloc(10_000).unwrap();
    let b = h.alloc(10_000).unwrap();
    let o = h.off(a);
    h.free(a.as_ptr()).unwrap();
    h.validate().unwrap();
    h.poke(o + 100, 1, 0x42);
    let c = h.validate().unwrap_err();
    assert_eq!((c.kind, c.offset), (CorruptionKind::Poison, o + 100), "{c}");
    // Allocations of the same size until the heap is full: the block is
    // handed out last (good fit prefers larger classes), and fails then.
    let mut live = Vec::new();
    let mut failed = 0;
    for _ in 0..200 {
        match h.alloc_flags(10_000, 16, Flags::NONE) {
            Ok(p) => live.push(p),
            Err(AllocError::Corrupted(c)) => {
                assert_eq!((c.kind, c.offset), (CorruptionKind::Poison, o + 100));
                failed += 1;
            }
            Err(AllocError::OutOfMemory) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(failed, 1);
    h.validate().unwrap();
    for p in live {
        h.free(p.as_ptr()).unwrap();
    }
    h.free(b.as_ptr()).unwrap();
    h.validate().unwrap();
    assert_eq!(h.stats().poison_errors, 2);
    assert_eq!(
        h.stats().largest_free_block,
        h.stats().initial_largest_free_block
    );
}

#[test]
fn coalesced_large_blocks_stay_poisoned() {
    let mut h = TestHeap::with_debug(HEAP, flags("ZP"));
    let ps: Vec<_> = (0..6).map(|i| h.alloc(5000 + i * 700).unwrap()).collect();
    for p in &ps {
        fill(*p, 5000, 3);
    }
    for i in [1, 3, 2, 0, 5, 4] {
        h.free(ps[i].as_ptr()).unwrap();
        h.validate().unwrap();
    }
    assert_eq!(h.stats().corruptions, 0);
}

/// The poison check of a large block taken from the free pool skips the
/// stale header (and its links) that a merge left inside the block, and
/// goes on past it: a write after free further on is still found.
#[test]
fn poison_damage_past_a_stale_header_is_found() {
    let mut h = TestHeap::with_debug(HEAP, DebugFlags::POISON);
    let a = h.alloc(8_000).unwrap();
    let b = h.alloc(8_000).unwrap();
    let _guard = h.alloc(8_000).unwrap();
    h.free(a.as_ptr()).unwrap();
    // `b` merges into the free `a`; its header stays behind, stale.
    h.free(b.as_ptr()).unwrap();
    let stale = h.off(b) - 16;
    assert_ne!(h.peek(stale), POISON_FREE);
    h.validate().unwrap();
    let bad = h.off(b) + 100;
    h.poke(bad, 1, 0x42);
    match h.alloc_flags(12_000, 16, Flags::NONE) {
        Err(AllocError::Corrupted(c)) => {
            assert_eq!((c.kind, c.offset), (CorruptionKind::Poison, bad));
            assert_eq!(found(&c)[0], 0x42);
        }
        r => panic!("{r:?}"),
    }
    h.poke(bad, 1, POISON_FREE);
    let p = h.alloc(12_000).unwrap();
    assert_eq!(p, a, "the merged block");
    h.free(p.as_ptr()).unwrap();
    h.validate().unwrap();
}

/// `object_at` names the object whose slot or block holds an offset:
/// in a large block's payload (live or free) its start, in its header
/// nothing; in a slab the slot's object, and nothing in the slack after
/// the last object.
#[test]
fn object_at_names_the_slot_or_block_of_an_offset() {
    let mut h = TestHeap::new(HEAP);
    let a = h.alloc(10_000).unwrap();
    let b = h.alloc(20_000).unwrap();
    let c = h.alloc(64).unwrap();
    let (oa, ob) = (h.off(a), h.off(b));
    assert_eq!(h.object_at(oa), Some(oa));
    assert_eq!(h.object_at(oa + 9_999), Some(oa));
    assert_eq!(h.object_at(ob + 19_999), Some(ob));
    assert_eq!(h.object_at(ob - 1), None, "b's header");
    assert_eq!(h.object_at(ob - 16), None, "b's header");
    h.free(a.as_ptr()).unwrap();
    assert_eq!(h.object_at(oa + 100), Some(oa), "a free block");
    // The 64-byte slab: 253 objects from span + 96, 48 bytes of slack.
    let info = h.cache_info(3).unwrap();
    let span = h.off(c) - 96;
    let last = span + 96 + (info.objs_per_slab - 1) * 64;
    assert_eq!(span + info.slab_bytes - (last + 64), 48);
    assert_eq!(h.object_at(last + 63), Some(last));
    assert_eq!(h.object_at(last + 64), None, "the slack");
    assert_eq!(h.object_at(h.off(c) + 5), Some(h.off(c)));
}

static CLOCK: AtomicU64 = AtomicU64::new(1_000);

fn fake_clock() -> u64 {
    CLOCK.fetch_add(10, Ordering::Relaxed)
}

#[test]
fn owner_tracking_and_live_listing() {
    let mut h = TestHeap::with_debug(HEAP, DebugFlags::TRACK);
    h.set_clock(fake_clock);
    let a = h.alloc(64).unwrap();
    let b = h.alloc(20_000).unwrap();
    let c = h.alloc(8).unwrap();
    let oa = h.owner_of(a.as_ptr()).unwrap();
    let ob = h.owner_of(b.as_ptr()).unwrap();
    let oc = h.owner_of(c.as_ptr()).unwrap();
    assert_eq!((oa.seq, ob.seq, oc.seq), (1, 2, 3));
    assert_eq!(oa.tag, 0);
    assert!(oa.time >= 1_000 && ob.time > oa.time && oc.time > ob.time);
    assert!(h.set_owner(b.as_ptr(), 42));
    assert_eq!(h.owner_of(b.as_ptr()).unwrap().tag, 42);
    assert_eq!(h.usable_size(b.as_ptr()), Some(20_000));
    h.free(c.as_ptr()).unwrap();
    assert!(!h.set_owner(c.as_ptr(), 1), "freed");
    assert_eq!(h.owner_of(c.as_ptr()), None);
    let d = h.alloc(30_000).unwrap();
    assert!(h.owner_of(d.as_ptr()).is_some());
    h.free(d.as_ptr()).unwrap();
    assert_eq!(h.owner_of(d.as_ptr()), None, "a freed large block");
    let mut live = Vec::new();
    let n = h.for_each_live(|l| live.push(*l)).unwrap();
    assert_eq!(n, 2);
    live.sort_by_key(|l| l.owner.seq);
    assert_eq!(live[0].offset, h.off(a));
    assert_eq!((live[0].size, live[0].cache), (64, Some(3)));
    assert_eq!((live[0].owner.seq, live[0].owner.time), (oa.seq, oa.time));
    assert_eq!((live[1].owner.seq, live[1].owner.time), (ob.seq, ob.time));
    assert_eq!(live[1].offset, h.off(b));
    assert_eq!(
        (live[1].size, live[1].cache, live[1].owner.tag),
        (20_000, None, 42)
    );
    assert!(h.tracking());
    h.free(a.as_ptr()).unwrap();
    h.free(b.as_ptr()).unwrap();
    assert_eq!(h.for_each_live(|_| {}).unwrap(), 0);
    h.validate().unwrap();
}

#[test]
fn no_tracking_without_u() {
    let mut h = TestHeap::with_debug(HEAP, flags("ZP"));
    let a = h.alloc(64).unwrap();
    assert!(!h.tracking());
    assert!(!h.set_owner(a.as_ptr(), 1));
    assert_eq!(h.for_each_live(|_| {}).unwrap(), 0);
    // One cache that tracks owners is enough.
    let k8 = h.size_class(0).unwrap();
    h.set_cache_debug(k8, DebugFlags::TRACK).unwrap();
    assert!(h.tracking());
}

#[test]
fn sanity_checks_catch_damage_plain_operations_miss() {
    for f in [DebugFlags::NONE, DebugFlags::SANITY] {
        let mut h = TestHeap::with_debug(HEAP, f);
        let a = h.alloc(64).unwrap();
        let b = h.alloc(64).unwrap();
        let span = h.metadata_bytes();
        // Mark a never-used object allocated in the slab bitmap.
        let word = h.peek32(span + 68);
        h.poke32(span + 68, word | 1 << 8);
        let r = h.free(b.as_ptr());
        if f.is_empty() {
            r.unwrap();
            assert_eq!(h.stats().sanity_errors, 0);
        } else {
            let e = r.unwrap_err();
            assert!(
                matches!(e, FreeError::Corrupted(c) if c.kind == CorruptionKind::SlabCountMismatch),
                "{e:?}"
            );
            let s = h.stats();
            assert_eq!((s.sanity_errors, s.corruptions), (1, 1));
            assert!(matches!(
                h.alloc_flags(64, 8, Flags::NONE),
                Err(AllocError::Corrupted(_))
            ));
            assert_eq!(h.stats().sanity_errors, 2);
        }
        let _ = a;
    }
}

#[test]
fn sanity_checks_on_large_blocks() {
    let mut h = TestHeap::with_debug(HEAP, DebugFlags::SANITY);
    let a = h.alloc(10_000).unwrap();
    let b = h.alloc(10_000).unwrap();
    let _c = h.alloc(10_000).unwrap();
    // Break the boundary tag of b's successor: freeing b must notice.
    h.inject_boundary(b.as_ptr()).unwrap();
    assert!(matches!(h.free(b.as_ptr()), Err(FreeError::Corrupted(_))));
    assert_eq!(h.stats().sanity_errors, 1);
    h.free(a.as_ptr()).unwrap();
}

#[test]
fn per_cache_switching() {
    let mut h = TestHeap::new(HEAP);
    let size64 = h.size_class(3).unwrap();
    let before = h.cache_info(3).unwrap();
    h.set_cache_debug(size64, flags("ZP")).unwrap();
    let info = h.cache_info(3).unwrap();
    assert_eq!(info.debug, flags("ZP"));
    // 64 left red zone + 64 object + 8 red zone + 8 link, rounded to 64.
    assert_eq!(info.stride, 192);
    let a = h.alloc(64).unwrap();
    // Busy while the cache has a slab.
    assert_eq!(
        h.set_cache_debug(size64, DebugFlags::NONE),
        Err(CacheError::Busy)
    );
    // Other caches stay plain: an overflow of size-128 goes unnoticed.
    let p = h.alloc(128).unwrap();
    assert_eq!(h.cache_info(4).unwrap().stride, 128);
    assert_eq!(h.cache_info(4).unwrap().debug, DebugFlags::NONE);
    h.poke(h.off(a) + 64, 1, 0);
    assert!(matches!(
        h.free(a.as_ptr()),
        Err(FreeError::Corrupted(c)) if c.kind == CorruptionKind::RedZone
    ));
    h.poke(h.off(a) + 64, 1, RED_ACTIVE);
    h.free(a.as_ptr()).unwrap();
    h.free(p.as_ptr()).unwrap();
    // No slab left (the last free returned it): switching back works.
    h.set_cache_debug(size64, DebugFlags::NONE).unwrap();
    let after = h.cache_info(3).unwrap();
    assert_eq!(
        (
            after.stride,
            after.objs_per_slab,
            after.slab_bytes,
            after.debug
        ),
        (
            before.stride,
            before.objs_per_slab,
            before.slab_bytes,
            before.debug
        )
    );
    // Custom caches: with and without live objects, and unknown ids.
    let id = h.cache_create("obj", 200, 64).unwrap();
    assert_eq!(h.cache_debug(id), Some(DebugFlags::NONE));
    h.set_cache_debug(id, DebugFlags::ALL).unwrap();
    let o = h.cache_alloc(id).unwrap();
    assert_eq!(h.usable_size(o.as_ptr()), Some(200));
    assert!(h.owner_of(o.as_ptr()).is_some());
    assert_eq!(
        h.set_cache_debug(id, DebugFlags::NONE),
        Err(CacheError::Busy)
    );
    h.cache_free(id, o.as_ptr()).unwrap();
    h.cache_destroy(id).unwrap();
    assert_eq!(
        h.set_cache_debug(id, DebugFlags::NONE),
        Err(CacheError::NoSuchCache)
    );
    h.validate().unwrap();
}

#[test]
fn busy_after_the_last_free_until_shrink() {
    // A cache with live objects keeps one empty slab in reserve.
    let mut h = TestHeap::new(HEAP);
    let id = h.size_class(0).unwrap();
    let ps: Vec<_> = (0..2009).map(|_| h.alloc(8).unwrap()).collect();
    for p in &ps[..2008] {
        h.free(p.as_ptr()).unwrap();
    }
    assert_eq!(
        h.set_cache_debug(id, DebugFlags::ALL),
        Err(CacheError::Busy)
    );
    h.free(ps[2008].as_ptr()).unwrap();
    h.shrink().unwrap();
    h.set_cache_debug(id, DebugFlags::ALL).unwrap();
}

#[test]
fn scribble_stays_in_the_slot_and_provokes_detection() {
    let mut h = TestHeap::with_debug(HEAP, flags("ZP"));
    let a = h.alloc(64).unwrap();
    let b = h.alloc(64).unwrap();
    let slot = h.cache_info(3).unwrap().stride as isize;
    // Left red zone is 64 bytes; the slot ends at stride - 64.
    assert_eq!(
        h.scribble(a.as_ptr(), -65, 1, 0x42, false),
        Err(InjectError::OutOfRange)
    );
    assert_eq!(
        h.scribble(a.as_ptr(), slot - 64, 1, 0x42, false),
        Err(InjectError::OutOfRange)
    );
    assert_eq!(
        h.scribble(a.as_ptr(), 0, 0, 0x42, false),
        Err(InjectError::OutOfRange)
    );
    // The slot's first and last bytes are in range (written with the red
    // zone's own byte, so nothing is damaged).
    let first = h.scribble(a.as_ptr(), -64, 1, RED_ACTIVE, false).unwrap();
    let last = h
        .scribble(a.as_ptr(), slot - 65, 1, RED_ACTIVE, false)
        .unwrap();
    assert_eq!(first.offset, h.off(a) - 64);
    assert_eq!(last.offset, h.off(a) + slot as usize - 65);
    h.validate().unwrap();
    let inj = h.scribble(a.as_ptr(), 64, 3, 0x42, false).unwrap();
    assert_eq!((inj.offset, inj.len), (h.off(a) + 64, 3));
    assert!(matches!(
        h.free(a.as_ptr()),
        Err(FreeError::Corrupted(c)) if c.kind == CorruptionKind::RedZone
    ));
    let inj = h.scribble(b.as_ptr(), 8, 4, 0x42, true).unwrap();
    assert_eq!(inj.offset, h.off(b) + 8);
    assert_eq!(h.usable_size(b.as_ptr()), None, "freed first");
    let c = h.validate().unwrap_err();
    // validate meets a's red zone first (lower address).
    assert_eq!(c.kind, CorruptionKind::RedZone);
    assert_eq!(h.object_at(c.offset), Some(h.off(a)));
    assert_eq!(h.object_at(h.off(b) + 8), Some(h.off(b)));
    let e = h.alloc_flags(64, 8, Flags::NONE).unwrap_err();
    assert!(
        matches!(e, AllocError::Corrupted(c) if c.kind == CorruptionKind::Poison && c.offset == h.off(b) + 8),
        "{e:?}"
    );
}

#[test]
fn realloc_with_debug_layouts() {
    let mut h = TestHeap::with_debug(HEAP, DebugFlags::ALL);
    let mut p = h.alloc(10).unwrap();
    fill(p, 10, 9);
    for size in [16, 16, 100, 5000, 70_000, 300, 5] {
        let keep = size.min(10);
        p = h.realloc(p.as_ptr(), size).unwrap();
        assert!(check(p, keep, 9));
        assert!(h.usable_size(p.as_ptr()).unwrap() >= size);
        h.validate().unwrap();
    }
    h.free(p.as_ptr()).unwrap();
    assert_eq!(h.stats().corruptions, 0);
}

/// A move whose free of the old object finds its red zone overwritten
/// (only after the new block was allocated and filled) gives the new block
/// back: no live allocation and no bytes are added, the old object stays.
#[test]
fn realloc_that_finds_the_old_red_zone_damaged_leaks_nothing() {
    let mut h = TestHeap::with_debug(1 << 20, DebugFlags::REDZONE);
    let p = h.alloc(100).unwrap();
    let usable = h.usable_size(p.as_ptr()).unwrap();
    // SAFETY: one byte past the usable size is the object's red zone,
    // inside the heap's region.
    unsafe { p.as_ptr().add(usable).write(0) };
    let before = h.stats();
    let e = h.realloc(p.as_ptr(), 10_000).unwrap_err();
    assert!(
        matches!(e, ReallocError::Free(FreeError::Corrupted(c)) if c.kind == CorruptionKind::RedZone),
        "{e:?}"
    );
    let after = h.stats();
    assert_eq!(after.active_allocs, before.active_allocs);
    assert_eq!(after.used_bytes, before.used_bytes);
    assert_eq!(after.large_allocs, before.large_allocs);
    assert_eq!(after.corruptions, before.corruptions + 1);
    assert_eq!(h.usable_size(p.as_ptr()), Some(usable));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random operations with every flag on: contents stay intact, nothing
    /// is reported, `validate` passes after every step, freeing everything
    /// gives the initial free block back.
    #[test]
    fn random_operations_with_all_flags(seed in any::<u64>(), spec in 0u8..16) {
        let f = DebugFlags::from_bits_truncate(spec);
        let mut h = TestHeap::with_debug(4 << 20, f);
        let mut rng = Rng::new(seed);
        let id = h.cache_create("prop", 1 + (seed % 300) as usize, 32).unwrap();
        let mut live: Vec<(std::ptr::NonNull<u8>, usize, u8, bool)> = Vec::new();
        for step in 0..200u32 {
            let r = rng.range(0, 99);
            if r < 55 || live.is_empty() {
                let (p, size, cached) = if r < 10 {
                    match h.cache_alloc(id) {
                        Ok(p) => (p, h.usable_size(p.as_ptr()).unwrap(), true),
                        Err(AllocError::OutOfMemory) => continue,
                        Err(e) => panic!("{e:?}"),
                    }
                } else {
                    let size = if r < 45 { rng.range(1, 4096) } else { rng.range(4097, 44_096) };
                    match h.alloc_flags(size, 8, Flags::NONE) {
                        Ok(p) => (p, size, false),
                        Err(AllocError::OutOfMemory) => continue,
                        Err(e) => panic!("{e:?}"),
                    }
                };
                let seed = step as u8;
                fill(p, size, seed);
                live.push((p, size, seed, cached));
            } else {
                let i = rng.range(0, live.len() - 1);
                let (p, size, seed, cached) = live.swap_remove(i);
                prop_assert!(check(p, size, seed));
                if cached {
                    h.cache_free(id, p.as_ptr()).unwrap();
                } else {
                    h.free(p.as_ptr()).unwrap();
                }
            }
            if step % 10 == 0 {
                h.validate().unwrap();
            }
        }
        for (p, size, seed, cached) in live {
            prop_assert!(check(p, size, seed));
            if cached {
                h.cache_free(id, p.as_ptr()).unwrap();
            } else {
                h.free(p.as_ptr()).unwrap();
            }
        }
        h.validate().unwrap();
        h.cache_destroy(id).unwrap();
        let s = h.stats();
        prop_assert_eq!(s.corruptions, 0);
        prop_assert_eq!(s.redzone_errors + s.poison_errors + s.sanity_errors, 0);
        prop_assert_eq!(s.largest_free_block, s.initial_largest_free_block);
    }
}

/// Seed of [`long_churn_with_all_flags`].
const LONG_CHURN_SEED: u64 = 0x5eed_d3b6;

/// A long churn with every flag on and varied sizes and alignments:
/// nothing is reported, `validate` passes throughout, everything comes back.
#[test]
fn long_churn_with_all_flags() {
    let mut h = TestHeap::with_debug(8 << 20, DebugFlags::ALL);
    h.set_clock(fake_clock);
    let mut rng = Rng::new(LONG_CHURN_SEED);
    let mut live: Vec<(std::ptr::NonNull<u8>, usize, u8)> = Vec::new();
    for step in 0..20_000u32 {
        if rng.range(0, 99) < 52 || live.is_empty() {
            let size = match rng.range(0, 9) {
                0..=6 => rng.range(1, 512),
                7 | 8 => rng.range(513, 4096),
                _ => rng.range(4097, 70_000),
            };
            let align = 8 << rng.range(0, 6);
            match h.alloc_flags(size, align, Flags::NONE) {
                Ok(p) => {
                    assert_eq!(p.as_ptr() as usize % align, 0);
                    fill(p, size, step as u8);
                    live.push((p, size, step as u8));
                }
                Err(AllocError::OutOfMemory) => {}
                Err(e) => panic!("step {step}: {e:?}"),
            }
        } else {
            let (p, size, seed) = live.swap_remove(rng.range(0, live.len() - 1));
            assert!(check(p, size, seed), "step {step}");
            h.free(p.as_ptr()).unwrap();
        }
        if step % 100 == 0 {
            h.validate().unwrap();
        }
    }
    assert_eq!(h.for_each_live(|_| {}).unwrap(), live.len());
    for (p, size, seed) in live {
        assert!(check(p, size, seed));
        h.free(p.as_ptr()).unwrap();
    }
    h.validate().unwrap();
    let s = h.stats();
    assert_eq!(s.corruptions, 0);
    assert_eq!(s.largest_free_block, s.initial_largest_free_block);
}
