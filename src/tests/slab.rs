// SPDX-License-Identifier: GPL-2.0

//! SLAB cache test: object reuse, list movement, reserve, custom caches.

mod common;

use common::{check, fill, TestHeap};
use ikos_kalloc::allocator::config::{
    class_align, class_size, CLASS_MAX_ALIGN, MAX_SIZE, NUM_CACHES, SLAB_MIN_OBJECTS,
    SLAB_TARGET_BYTES,
};
use ikos_kalloc::allocator::{
    size_class_for, slab_geometry, AllocError, CacheError, CacheId, Flags, FreeError,
};

#[test]
fn slab_size_table() {
    println!("class  align  objs/slab  span bytes  overhead");
    for i in 0..NUM_CACHES {
        let (n, span) = slab_geometry(class_size(i), class_align(i));
        let waste = span - n * class_size(i);
        println!(
            "{:5}  {:5}  {:9}  {:10}  {:4} B ({}.{:02}%)",
            class_size(i),
            class_align(i),
            n,
            span,
            waste,
            waste * 100 / span,
            waste * 10000 / span % 100
        );
        assert!(n >= 8);
        assert!(span > 4096, "spans must exceed a page for the page map");
        // Per-slab overhead stays small even for the big classes.
        assert!(waste * 100 <= span * 2, "class {}", class_size(i));
    }
}

/// The table of the `slab` module doc, (objects, span bytes) per class.
#[test]
fn built_in_class_geometry_is_the_documented_table() {
    let table: Vec<_> = (0..NUM_CACHES)
        .map(|i| slab_geometry(class_size(i), class_align(i)))
        .collect();
    assert_eq!(
        table,
        [
            (2008, 16384),
            (1012, 16384),
            (507, 16368),
            (253, 16336),
            (127, 16384),
            (63, 16256),
            (31, 16000),
            (15, 15488),
            (8, 16512),
            (8, 32896)
        ]
    );
}

/// Bytes a span needs for `n` objects of `stride` (block header, 48-byte
/// descriptor, bitmap words and the worst-case padding of `align`),
/// before rounding to 16: the rule the `slab` module doc states.
fn span_need(n: usize, stride: usize, align: usize) -> usize {
    64 + align.saturating_sub(16) + n.div_ceil(64) * 8 + n * stride
}

/// The geometry rule for every stride up to the largest object and every
/// alignment (and alignments past the target span, where only the
/// minimum count is left): as many objects as fit in `SLAB_TARGET_BYTES`,
/// at least `SLAB_MIN_OBJECTS`, in a span trimmed to what they need.
/// Checked against a plain search for the largest count that fits.
#[test]
fn geometry_is_the_largest_count_that_fits_the_target() {
    for align in (3..=16).map(|s| 1usize << s) {
        for stride in 1..=4096 {
            let fits = (0..)
                .take_while(|&n| span_need(n, stride, align) <= SLAB_TARGET_BYTES)
                .last()
                .unwrap_or(0);
            let n = fits.max(SLAB_MIN_OBJECTS);
            assert_eq!(
                slab_geometry(stride, align),
                (n, span_need(n, stride, align).next_multiple_of(16)),
                "stride {stride}, align {align}"
            );
        }
    }
}

#[test]
fn freed_object_is_reused_lifo() {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(100).unwrap();
    let _b = h.alloc(100).unwrap();
    h.free(a.as_ptr()).unwrap();
    let c = h.alloc(120).unwrap();
    assert_eq!(a, c, "the freed 128-byte object is handed out again");
    let st = h.stats();
    assert_eq!(st.object_reuses, 1);
    let info = h.cache_info(4).unwrap();
    assert_eq!(info.name(), "size-128");
    assert_eq!(info.reuses, 1);
}

#[test]
fn lists_move_full_partial_empty() {
    let mut h = TestHeap::new(2 << 20);
    let class = 7; // 1024 bytes
    let per = h.cache_info(class).unwrap().objs_per_slab;
    let mut objs = Vec::new();
    for i in 0..per {
        let p = h.alloc(1024).unwrap();
        fill(p, 1024, i as u8);
        objs.push(p);
        let info = h.cache_info(class).unwrap();
        if i + 1 < per {
            assert_eq!((info.slabs_partial, info.slabs_full), (1, 0));
        }
    }
    let info = h.cache_info(class).unwrap();
    assert_eq!(
        (info.slabs_empty, info.slabs_partial, info.slabs_full),
        (0, 0, 1)
    );
    // One more object: partial first, then empty, then a new slab.
    let extra = h.alloc(1000).unwrap();
    let info = h.cache_info(class).unwrap();
    assert_eq!((info.slabs_partial, info.slabs_full), (1, 1));
    h.free(objs.pop().unwrap().as_ptr()).unwrap();
    let info = h.cache_info(class).unwrap();
    assert_eq!((info.slabs_partial, info.slabs_full), (2, 0));
    h.free(extra.as_ptr()).unwrap();
    let info = h.cache_info(class).unwrap();
    assert_eq!(
        (info.slabs_empty, info.slabs_partial, info.slabs_full),
        (1, 1, 0),
        "one empty slab kept as reserve while the cache is in use"
    );
    // Next allocation prefers the partial slab over the empty one.
    let again = h.alloc(1024).unwrap();
    let info = h.cache_info(class).unwrap();
    assert_eq!((info.slabs_empty, info.slabs_full), (1, 1));
    h.free(again.as_ptr()).unwrap();
    for (i, p) in objs.into_iter().enumerate() {
        assert!(check(p, 1024, i as u8));
        h.free(p.as_ptr()).unwrap();
    }
    let info = h.cache_info(class).unwrap();
    assert_eq!(info.slabs_empty + info.slabs_partial + info.slabs_full, 0);
    assert_eq!(h.stats().slabs_total, 0);
    h.validate().unwrap();
}

#[test]
fn reserve_is_bounded() {
    let mut h = TestHeap::new(4 << 20);
    let keep = h.alloc(64).unwrap();
    let per = h.cache_info(3).unwrap().objs_per_slab;
    let v: Vec<_> = (0..per * 4).map(|_| h.alloc(64).unwrap()).collect();
    assert!(h.stats().slabs_total >= 4);
    for p in v {
        h.free(p.as_ptr()).unwrap();
    }
    let info = h.cache_info(3).unwrap();
    assert!(info.slabs_empty <= 1, "{info:?}");
    assert_eq!(info.slabs_partial, 1);
    h.free(keep.as_ptr()).unwrap();
    assert_eq!(h.stats().slabs_total, 0);
    h.validate().unwrap();
}

#[test]
fn shrink_releases_reserve() {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(32).unwrap();
    let per = h.cache_info(2).unwrap().objs_per_slab;
    let v: Vec<_> = (0..per).map(|_| h.alloc(32).unwrap()).collect();
    for p in v {
        h.free(p.as_ptr()).unwrap();
    }
    assert_eq!(h.cache_info(2).unwrap().slabs_empty, 1);
    let held = h.stats().slab_bytes;
    assert_eq!(h.shrink().unwrap(), 1);
    let after = h.stats().slab_bytes;
    assert!(
        held - after >= 16 * 1024 - 64,
        "a whole span goes back: {held} -> {after}"
    );
    h.free(a.as_ptr()).unwrap();
    h.validate().unwrap();
}

#[test]
fn custom_cache_lifecycle() {
    let mut h = TestHeap::new(2 << 20);
    let id = h.cache_create("inode_cache", 200, 64).unwrap();
    assert_eq!(h.cache_by_name("inode_cache"), Some(id));
    // The raw value (the C API's handle) names the same cache.
    assert_eq!(CacheId::from_raw(id.to_raw()), id);
    assert_ne!(id.to_raw(), h.size_class(0).unwrap().to_raw());
    assert_eq!(
        h.cache_create("inode_cache", 8, 8),
        Err(CacheError::NameExists)
    );
    assert_eq!(h.cache_create("", 8, 8), Err(CacheError::InvalidName));
    assert_eq!(
        h.cache_create("a-very-long-cache-name-over-32-bytes", 8, 8),
        Err(CacheError::InvalidName)
    );
    assert_eq!(h.cache_create("x", 0, 8), Err(CacheError::InvalidSize));
    assert_eq!(h.cache_create("x", 5000, 8), Err(CacheError::InvalidSize));
    assert_eq!(h.cache_create("x", 8, 24), Err(CacheError::BadAlign));
    assert_eq!(h.cache_create("x", 8, 4), Err(CacheError::BadAlign));
    let mut objs = Vec::new();
    for i in 0..500 {
        let p = h.cache_alloc(id).unwrap();
        assert_eq!(p.as_ptr() as usize % 64, 0);
        fill(p, 200, i as u8);
        objs.push(p);
    }
    assert_eq!(h.cache_destroy(id), Err(CacheError::Busy));
    let info = h.caches().find(|c| c.id == id).unwrap();
    assert_eq!(info.active_objs, 500);
    assert_eq!(info.stride, 256);
    for (i, p) in objs.into_iter().enumerate() {
        assert!(check(p, 200, i as u8));
        h.cache_free(id, p.as_ptr()).unwrap();
    }
    h.cache_destroy(id).unwrap();
    assert_eq!(h.cache_by_name("inode_cache"), None);
    assert_eq!(h.cache_destroy(id), Err(CacheError::NoSuchCache));
    assert!(h.cache_alloc(id).is_err());
    h.validate().unwrap();
    let st = h.stats();
    assert_eq!(st.blocks_total, 1);
    assert_eq!(st.largest_free_block, st.initial_largest_free_block);
    // Builtin caches cannot be destroyed.
    let k8 = h.size_class(0).unwrap();
    assert_eq!(h.cache_destroy(k8), Err(CacheError::BuiltIn));
}

#[test]
fn too_many_caches_and_slot_reuse() {
    let mut h = TestHeap::new(2 << 20);
    let mut ids = Vec::new();
    loop {
        match h.cache_create(&format!("c{}", ids.len()), 16, 8) {
            Ok(id) => ids.push(id),
            Err(e) => {
                assert_eq!(e, CacheError::TooMany);
                break;
            }
        }
    }
    assert_eq!(ids.len(), ikos_kalloc::allocator::config::MAX_CUSTOM_CACHES);
    let old = ids[0];
    let p = h.cache_alloc(old).unwrap();
    h.cache_free(old, p.as_ptr()).unwrap();
    h.cache_destroy(old).unwrap();
    let new = h.cache_create("reused", 16, 8).unwrap();
    assert_eq!(new.index(), old.index());
    assert_ne!(new, old, "generation distinguishes the new cache");
    let q = h.cache_alloc(new).unwrap();
    assert_eq!(
        h.cache_free(old, q.as_ptr()),
        Err(FreeError::DestroyedCache)
    );
    h.cache_free(new, q.as_ptr()).unwrap();
    h.validate().unwrap();
}

#[test]
fn generic_free_of_cache_object_is_allowed() {
    let mut h = TestHeap::new(1 << 20);
    let id = h.cache_create("objs", 48, 16).unwrap();
    let p = h.cache_alloc(id).unwrap();
    assert_eq!(h.usable_size(p.as_ptr()), Some(48));
    h.free(p.as_ptr()).unwrap();
    h.validate().unwrap();
}

/// A request goes to the smallest class that holds both its size and its
/// alignment (at least 8); a size of 0 or above 4,096, or an alignment
/// that is not a power of two or above 64, has no class. Checked for
/// every size and alignment through `size_class_for`, and through
/// `alloc_aligned` at each class's edges (its size, one byte less and one
/// more), where the object's usable size and the class's live count tell
/// which class served it.
#[test]
fn every_request_goes_to_the_smallest_class_that_holds_it() {
    let smallest = |n: usize| (0..NUM_CACHES).find(|&i| class_size(i) >= n);
    for align in (0..=6).map(|b| 1usize << b) {
        assert_eq!(size_class_for(0, align), None);
        for size in 1..=MAX_SIZE {
            assert_eq!(
                size_class_for(size, align),
                smallest(size.max(align)),
                "{size} bytes aligned to {align}"
            );
        }
        assert_eq!(size_class_for(MAX_SIZE + 1, align), None);
    }
    assert_eq!(size_class_for(8, CLASS_MAX_ALIGN * 2), None);
    assert_eq!(size_class_for(8, 24), None);
    // What `alloc_flags` refuses as `BadAlign`, the fast path's routing must
    // not take either (before, `align.max(8)` made these 8).
    let mut h = TestHeap::new(1 << 20);
    for align in [0, 3, 5, 6, 7] {
        assert_eq!(size_class_for(16, align), None, "align {align}");
        assert_eq!(
            h.alloc_flags(16, align, Flags::NONE).err(),
            Some(AllocError::BadAlign),
            "align {align}"
        );
    }
    for i in 0..NUM_CACHES {
        let edge = class_size(i);
        for size in [edge - 1, edge, edge + 1] {
            for align in [8, 16, CLASS_MAX_ALIGN] {
                let Some(want) = smallest(size.max(align)) else {
                    continue;
                };
                let p = h.alloc_aligned(size, align).unwrap();
                assert_eq!(
                    h.usable_size(p.as_ptr()),
                    Some(class_size(want)),
                    "{size} bytes aligned to {align}"
                );
                assert_eq!(h.cache_info(want).unwrap().active_objs, 1);
                h.free(p.as_ptr()).unwrap();
            }
        }
    }
    h.validate().unwrap();
}

/// The built-in classes are named "size-N" after their object size (the
/// debugfs ABI), found by that name, and their ids have generation 0.
#[test]
fn built_in_classes_are_named_by_their_size() {
    let h = TestHeap::new(1 << 20);
    for i in 0..NUM_CACHES {
        let info = h.cache_info(i).unwrap();
        assert_eq!(info.name(), format!("size-{}", class_size(i)));
        assert_eq!(Some(info.id), h.size_class(i));
        assert_eq!(info.id.to_raw() >> 16, 0);
        assert_eq!(h.cache_by_name(info.name()), Some(info.id));
    }
}

/// The cache API at its boundaries (written for `cache.rs` mutants no
/// test caught): the longest name and the largest object are accepted,
/// one more is not; a cache whose only slab is full is busy; the size
/// classes end at 9; `cache_info` tells built-in from custom caches; a
/// slot's generation starts at 1 and wraps from 0xffff to 1, never 0.
#[test]
fn cache_api_at_its_boundaries() {
    let mut h = TestHeap::new(2 << 20);
    let name32 = "n".repeat(32);
    let id = h.cache_create(&name32, 4096, 8).unwrap();
    assert_eq!(h.cache_by_name(&name32), Some(id));
    assert_eq!(
        h.cache_create(&"n".repeat(33), 8, 8),
        Err(CacheError::InvalidName)
    );
    assert_eq!(h.cache_create("big", 4097, 8), Err(CacheError::InvalidSize));
    let info = h.caches().find(|c| c.id == id).unwrap();
    assert!(!info.builtin);
    assert!(h.cache_info(0).unwrap().builtin);
    // One full slab and nothing else.
    let objs: Vec<_> = (0..info.objs_per_slab)
        .map(|_| h.cache_alloc(id).unwrap())
        .collect();
    let info = h.caches().find(|c| c.id == id).unwrap();
    assert_eq!((info.slabs_partial, info.slabs_full), (0, 1));
    assert_eq!(h.cache_destroy(id), Err(CacheError::Busy));
    for p in objs {
        h.cache_free(id, p.as_ptr()).unwrap();
    }
    h.cache_destroy(id).unwrap();
    assert!(h.size_class(9).is_some());
    assert_eq!(h.size_class(10), None);
    // Generations of one slot: the first cache above had 1.
    assert_eq!(info.id.to_raw() >> 16, 1);
    let mut id = h.cache_create("g", 16, 8).unwrap();
    assert_eq!(id.index(), info.id.index());
    assert_eq!(id.to_raw() >> 16, 2);
    for _ in 2..0xffff {
        h.cache_destroy(id).unwrap();
        id = h.cache_create("g", 16, 8).unwrap();
    }
    assert_eq!(id.to_raw() >> 16, 0xffff);
    h.cache_destroy(id).unwrap();
    let id = h.cache_create("g", 16, 8).unwrap();
    assert_eq!(id.to_raw() >> 16, 1);
    h.cache_destroy(id).unwrap();
    h.validate().unwrap();
}
