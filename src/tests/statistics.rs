// SPDX-License-Identifier: GPL-2.0

//! Statistics test: exact counters, byte partition, fragmentation, reuse.

mod common;

use common::{assert_partition, TestHeap};
use ikos_kalloc::allocator::FreeError;

#[test]
fn initial_stats() {
    let h = TestHeap::new(1 << 20);
    let s = h.stats();
    assert_eq!(s.heap_size, 1 << 20);
    assert_eq!(s.used_bytes, 0);
    assert_eq!(s.total_allocs, 0);
    assert_eq!(s.blocks_total, 1);
    assert_eq!(s.overhead_bytes, s.metadata_bytes + 16);
    assert_eq!(s.largest_free_block, s.free_bytes);
    assert_eq!(s.largest_free_block, s.initial_largest_free_block);
    assert_partition(&s);
}

#[test]
fn exact_counters() {
    let mut h = TestHeap::new(2 << 20);
    let a = h.alloc(10).unwrap(); // class 16
    let b = h.alloc(100).unwrap(); // class 128
    let c = h.alloc(10_000).unwrap(); // large
    let s = h.stats();
    assert_eq!(s.total_allocs, 3);
    assert_eq!(s.active_allocs, 3);
    assert_eq!(s.requested_bytes, 16 + 128 + 10_000);
    assert_eq!(s.requested_total, 10 + 100 + 10_000, "exact requests");
    assert_eq!(s.used_bytes, 16 + 128 + h.usable_size(c.as_ptr()).unwrap());
    assert_eq!(s.usable_bytes, s.used_bytes);
    assert_eq!(s.slabs_total, 2);
    assert_eq!(s.slabs_partial, 2);
    assert_eq!(s.large_allocs, 1);
    assert_partition(&s);
    assert_eq!(h.free(b.as_ptr()), Ok(()));
    assert_eq!(h.free(b.as_ptr()), Err(FreeError::DoubleFree));
    assert!(h.alloc(0).is_none());
    let s = h.stats();
    assert_eq!(s.total_frees, 1);
    assert_eq!(s.double_frees, 1);
    assert_eq!(s.failed_allocs, 1);
    assert_eq!(s.active_allocs, 2);
    assert_eq!(s.slabs_total, 1, "the emptied 128 slab went back");
    let k16 = h.cache_info(1).unwrap();
    assert_eq!((k16.allocs, k16.frees, k16.active_objs), (1, 0, 1));
    let k128 = h.cache_info(4).unwrap();
    assert_eq!((k128.allocs, k128.frees, k128.active_objs), (1, 1, 0));
    h.free(a.as_ptr()).unwrap();
    h.free(c.as_ptr()).unwrap();
    let s = h.stats();
    assert_eq!(s.requested_bytes, 0);
    assert_eq!(s.used_bytes, 0);
    assert_eq!(s.largest_free_block, s.initial_largest_free_block);
    assert_partition(&s);
    h.validate().unwrap();
}

#[test]
fn overhead_definition_is_exact() {
    let mut h = TestHeap::new(2 << 20);
    let p = h.alloc(64).unwrap();
    let q = h.alloc(20_000).unwrap();
    let s = h.stats();
    let k64 = h.cache_info(3).unwrap();
    let slab_overhead = k64.slab_bytes - k64.objs_per_slab * 64;
    // metadata + 3 block headers (slab span, large block, free rest) + slab overhead
    assert_eq!(
        s.overhead_bytes,
        s.metadata_bytes + 3 * 16 + (slab_overhead - 16)
    );
    assert_eq!(
        s.free_bytes,
        (k64.objs_per_slab - 1) * 64 + s.largest_free_block
    );
    assert_partition(&s);
    h.free(p.as_ptr()).unwrap();
    h.free(q.as_ptr()).unwrap();
}

#[test]
fn fragmentation_and_reuse() {
    let mut h = TestHeap::new(1 << 20);
    let v: Vec<_> = (0..20).map(|_| h.alloc(20_000).unwrap()).collect();
    for p in v.iter().step_by(2) {
        h.free(p.as_ptr()).unwrap();
    }
    let s = h.stats();
    let total_free_blocks = s.blocks_free;
    assert_eq!(total_free_blocks, 11);
    // 10 holes of 20 016 bytes + the tail.
    let hole = 20_000usize.next_multiple_of(16) + 16;
    let tail = s.largest_free_block + 16;
    let total = 10 * hole + tail;
    assert_eq!(s.fragmentation_bp as usize, (total - tail) * 10_000 / total);
    assert_eq!(s.fragmentation_pct as usize, (total - tail) * 100 / total);
    for p in v.iter().skip(1).step_by(2) {
        h.free(p.as_ptr()).unwrap();
    }
    // Reuse rate.
    let a = h.alloc(32).unwrap();
    h.free(a.as_ptr()).unwrap();
    let keep = h.alloc(32).unwrap();
    let b = h.alloc(32).unwrap();
    h.free(b.as_ptr()).unwrap();
    let b2 = h.alloc(32).unwrap();
    assert_eq!(b, b2);
    let s = h.stats();
    assert_eq!(s.slab_allocs, 4);
    assert_eq!(s.object_reuses, 1);
    assert_eq!(s.reuse_pct, 25);
    h.free(keep.as_ptr()).unwrap();
    h.free(b2.as_ptr()).unwrap();
    h.validate().unwrap();
}
