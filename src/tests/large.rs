// SPDX-License-Identifier: GPL-2.0

//! Large-block test: split, coalesce back to one block, O(1) sanity.

mod common;

use std::ptr::NonNull;

use common::{check, fill, Rng, TestHeap};
use ikos_kalloc::allocator::{AllocError, FreeError, MoveDown, ReallocError, Resize};

#[test]
fn split_and_coalesce_back_to_one_block() {
    let mut h = TestHeap::new(4 << 20);
    let initial = h.stats();
    assert_eq!(initial.blocks_total, 1);
    assert_eq!(
        initial.largest_free_block,
        initial.initial_largest_free_block
    );
    let sizes = [5000, 8192, 10_000, 70_000, 4097, 123_456, 6000, 9000];
    let ptrs: Vec<_> = sizes.iter().map(|&s| h.alloc(s).unwrap()).collect();
    for (p, &s) in ptrs.iter().zip(&sizes) {
        fill(*p, s, s as u8);
    }
    assert_eq!(h.stats().blocks_total, sizes.len() + 1);
    // Free every other block: no merging possible yet.
    for p in ptrs.iter().step_by(2) {
        h.free(p.as_ptr()).unwrap();
    }
    h.validate().unwrap();
    let mid = h.stats();
    assert!(mid.blocks_free >= 4);
    assert!(mid.fragmentation_bp > 0);
    for (p, &s) in ptrs.iter().zip(&sizes).skip(1).step_by(2) {
        assert!(check(*p, s, s as u8));
        h.free(p.as_ptr()).unwrap();
    }
    let end = h.stats();
    assert_eq!(end.blocks_total, 1);
    assert_eq!(end.blocks_free, 1);
    assert_eq!(end.largest_free_block, initial.largest_free_block);
    assert_eq!(end.fragmentation_bp, 0);
    h.validate().unwrap();
}

#[test]
fn coalesce_with_both_neighbours() {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(10_000).unwrap();
    let b = h.alloc(10_000).unwrap();
    let c = h.alloc(10_000).unwrap();
    let guard = h.alloc(10_000).unwrap();
    h.free(a.as_ptr()).unwrap();
    h.free(c.as_ptr()).unwrap();
    let before = h.stats().blocks_total;
    h.free(b.as_ptr()).unwrap();
    assert_eq!(
        h.stats().blocks_total,
        before - 2,
        "merged with prev and next"
    );
    h.validate().unwrap();
    h.free(guard.as_ptr()).unwrap();
    assert_eq!(h.stats().blocks_total, 1);
}

#[test]
fn largest_block_can_be_allocated_exactly() {
    let mut h = TestHeap::new(1 << 20);
    let largest = h.stats().largest_free_block;
    let p = h.alloc(largest).expect("whole heap in one block");
    assert_eq!(h.stats().blocks_free, 0);
    assert!(h.alloc(5000).is_none());
    h.free(p.as_ptr()).unwrap();
    assert_eq!(h.stats().largest_free_block, largest);
}

/// The largest free block stays allocatable when a smaller block of the
/// same list heads it: neither the head nor a rounded-up class holds the
/// request, so the own list is walked.
#[test]
fn largest_block_behind_a_smaller_head_of_its_list_is_allocatable() {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(20_400).unwrap();
    let _s1 = h.alloc(5000).unwrap();
    let b = h.alloc(20_000).unwrap();
    let _s2 = h.alloc(5000).unwrap();
    let all = h.stats().largest_free_block;
    let rest = h.alloc(all).unwrap();
    h.free(a.as_ptr()).unwrap();
    // b, freed last, heads the list that also holds the larger a.
    h.free(b.as_ptr()).unwrap();
    let largest = h.stats().largest_free_block;
    assert_eq!(largest, 20_400);
    let p = h.alloc(largest).expect("the largest free block");
    assert_eq!(p, a, "a's block, behind b in the list");
    assert_eq!(h.stats().largest_free_block, 20_000);
    h.validate().unwrap();
    h.free(p.as_ptr()).unwrap();
    h.free(rest.as_ptr()).unwrap();
    h.validate().unwrap();
}

#[test]
fn realloc_in_place_grow_and_shrink() {
    let mut h = TestHeap::new(1 << 20);
    let p = h.alloc(10_000).unwrap();
    fill(p, 10_000, 3);
    let q = h.realloc(p.as_ptr(), 20_000).unwrap();
    assert_eq!(p, q, "grows into the free successor");
    let r = h.realloc(q.as_ptr(), 6000).unwrap();
    assert_eq!(q, r, "shrinks in place");
    assert!(check(r, 6000, 3));
    assert_eq!(h.stats().requested_bytes, 6000);
    h.free(r.as_ptr()).unwrap();
    h.validate().unwrap();
}

/// Allocates and frees `n` 5000-byte blocks in pairs; each must succeed and
/// leave the free-block count where it was.
fn churn_pairs(h: &mut TestHeap, n: usize) {
    let free_before = h.stats().blocks_free;
    for _ in 0..n {
        let p = h.alloc(5000).unwrap();
        h.free(p.as_ptr()).unwrap();
    }
    assert_eq!(h.stats().blocks_free, free_before);
}

/// Thousands of free blocks of many sizes in the TLSF index: alloc and free
/// stay correct and leave the index as they found it. (That their cost does
/// not grow with the number of free blocks is measured by the benchmarks,
/// not asserted by a timed unit test.)
#[test]
fn many_free_blocks_in_the_index() {
    let mut big = TestHeap::new(64 << 20);
    let mut rng = Rng::new(99);
    let mut v = Vec::new();
    while let Some(p) = big.alloc(rng.range(4200, 12_000)) {
        v.push(p);
        if v.len() > 8000 {
            break;
        }
    }
    for p in v.iter().step_by(2) {
        big.free(p.as_ptr()).unwrap();
    }
    let free_blocks = big.stats().blocks_free;
    assert!(free_blocks > 3000, "{free_blocks}");
    churn_pairs(&mut big, 20_000);
    big.validate().unwrap();
    for p in v.iter().skip(1).step_by(2) {
        big.free(p.as_ptr()).unwrap();
    }
    let end = big.stats();
    assert_eq!(end.blocks_total, 1);
    assert_eq!(end.blocks_free, 1);
}

#[test]
fn one_gib_heap_boundaries() {
    use ikos_kalloc::allocator::config::MAX_HEAP_SIZE;
    use ikos_kalloc::allocator::{Heap, InitError};
    use std::alloc::{alloc_zeroed, dealloc, Layout};
    // Over-allocate with a small alignment so the allocator hands out lazily
    // zeroed pages (calloc/mmap), then align by hand: only touched pages
    // (metadata, headers) become resident.
    let layout = Layout::from_size_align(MAX_HEAP_SIZE + 4096, 16).unwrap();
    // SAFETY: non-zero size.
    let raw = unsafe { alloc_zeroed(layout) };
    assert!(!raw.is_null());
    let base = std::ptr::NonNull::new(((raw as usize + 4095) & !4095) as *mut u8).unwrap();
    // SAFETY: the aligned window of MAX_HEAP_SIZE bytes lies inside `raw`.
    let too_big = unsafe { Heap::new(base, MAX_HEAP_SIZE + 4096) };
    assert_eq!(too_big.err(), Some(InitError::TooLarge));
    // SAFETY: as above; the heap is dropped before `raw` is freed.
    let mut h = unsafe { Heap::new(base, MAX_HEAP_SIZE) }.unwrap();
    let s = h.stats();
    assert!(s.largest_free_block > MAX_HEAP_SIZE - (3 << 20));
    let big = h.alloc(512 << 20).unwrap();
    let aligned = h.alloc_aligned(100 << 20, 64 << 20).unwrap();
    assert_eq!(aligned.as_ptr() as usize % (64 << 20), 0);
    let small = h.alloc(24).unwrap();
    h.validate().unwrap();
    for p in [big, aligned, small] {
        h.free(p.as_ptr()).unwrap();
    }
    let end = h.stats();
    assert_eq!(end.blocks_total, 1);
    assert_eq!(end.largest_free_block, s.largest_free_block);
    let all = h.alloc(end.largest_free_block).unwrap();
    h.free(all.as_ptr()).unwrap();
    h.validate().unwrap();
    // SAFETY: allocated above with this layout; `h` is not used any more.
    unsafe { dealloc(raw, layout) };
}

/// Placement: a free block of the request's own TLSF list that is large
/// enough is taken before any larger block (plain TLSF rounds the request
/// up to the next list and would split the larger block instead).
#[test]
fn own_list_head_is_taken_before_a_larger_block() {
    let mut h = TestHeap::new(1 << 20);
    // Blocks of 10,128 and 10,016 bytes (payload + 16-byte header) share
    // the list 9,984..10,240; the 50,000-byte block is in a higher list.
    let a = h.alloc(10_100).unwrap();
    let g1 = h.alloc(64 << 10).unwrap();
    let b = h.alloc(50_000).unwrap();
    let g2 = h.alloc(64 << 10).unwrap();
    h.free(b.as_ptr()).unwrap();
    h.free(a.as_ptr()).unwrap();
    let p = h.alloc(10_000).unwrap();
    assert_eq!(p, a, "the own-list block is reused, not the larger one");
    // The 112-byte tail of the reused block was split off as a free block.
    assert_eq!(h.stats().blocks_free, 3);
    h.validate().unwrap();
    for q in [p, g1, g2] {
        h.free(q.as_ptr()).unwrap();
    }
    assert_eq!(h.stats().blocks_total, 1);
}

/// Placement: when the head of the own list is too small, the good-fit
/// search of the rounded-up class is used.
#[test]
fn own_list_head_too_small_falls_back_to_good_fit() {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(10_000).unwrap();
    let g1 = h.alloc(64 << 10).unwrap();
    let b = h.alloc(50_000).unwrap();
    let g2 = h.alloc(64 << 10).unwrap();
    h.free(b.as_ptr()).unwrap();
    h.free(a.as_ptr()).unwrap();
    // 10,100 bytes need a 10,128-byte block: same list as the free
    // 10,016-byte block, which is too small.
    let p = h.alloc(10_100).unwrap();
    assert_eq!(p, b, "the larger block is split");
    let q = h.alloc(10_000).unwrap();
    assert_eq!(q, a, "the exact block is still there for its own size");
    h.validate().unwrap();
    for r in [p, q, g1, g2] {
        h.free(r.as_ptr()).unwrap();
    }
    assert_eq!(h.stats().blocks_total, 1);
}

/// A 10,000-byte block `p` filled with seed 7, between a free 8,016-byte
/// block `a` before it and a free 6,016-byte block after it, then a 64 KiB
/// `guard`: returns `(a, p, guard)`.
fn between_free_neighbours(h: &mut TestHeap) -> (NonNull<u8>, NonNull<u8>, NonNull<u8>) {
    let a = h.alloc(8_000).unwrap();
    let p = h.alloc(10_000).unwrap();
    let n = h.alloc(6_000).unwrap();
    let guard = h.alloc(64 << 10).unwrap();
    fill(p, 10_000, 7);
    h.free(a.as_ptr()).unwrap();
    h.free(n.as_ptr()).unwrap();
    (a, p, guard)
}

/// `resize_start` of `p` to 20,000 bytes, which must begin a move down.
fn start_move_down(h: &mut TestHeap, p: NonNull<u8>) -> MoveDown {
    match h.resize_start(p.as_ptr(), 20_000) {
        Ok(Resize::MoveDown(m)) => m,
        r => panic!("no move down: {r:?}"),
    }
}

/// The caller's part of a move down: the payload moved.
fn move_payload(m: &MoveDown) {
    // SAFETY: both ranges lie in the live block `m` describes.
    unsafe { std::ptr::copy(m.src(), m.dst().as_ptr(), m.count()) };
}

/// A move down that finds the block after the merged range damaged (here
/// the one after the free successor it would take) refuses before
/// changing anything: the allocation stays where it is, live, with its
/// contents, and the heap is whole once the header is repaired.
#[test]
fn a_move_down_that_finds_damage_changes_nothing() {
    let mut h = TestHeap::new(1 << 20);
    let (a, p, guard) = between_free_neighbours(&mut h);
    let hdr = h.off(guard) - 16;
    let saved = h.peek32(hdr);
    h.poke32(hdr, saved ^ 0x100);
    let before = h.stats();
    assert!(matches!(
        h.resize_start(p.as_ptr(), 20_000),
        Err(ReallocError::Free(FreeError::Corrupted(_)))
    ));
    h.poke32(hdr, saved);
    let after = h.stats();
    assert_eq!(after.corruptions, before.corruptions + 1);
    assert_eq!(
        (after.blocks_total, after.blocks_free, after.total_allocs),
        (before.blocks_total, before.blocks_free, before.total_allocs)
    );
    assert!(h.is_valid_pointer(p.as_ptr()));
    assert!(check(p, 10_000, 7));
    h.validate().unwrap();
    let q = h.realloc(p.as_ptr(), 20_000).unwrap();
    assert_eq!(q, a, "moved down once repaired");
    for x in [q, guard] {
        h.free(x.as_ptr()).unwrap();
    }
    assert_eq!(h.stats().blocks_total, 1);
}

/// The usable size a move down counts (`usable_total`) is the block's
/// after the cut: all of it when the rest is under a minimum block (32
/// bytes), else what was asked for.
#[test]
fn a_move_down_counts_the_usable_size_after_the_cut() {
    for (rest, extra) in [(16usize, 16usize), (32, 0)] {
        let mut h = TestHeap::new(1 << 20);
        let a = h.alloc(8_000).unwrap();
        let p = h.alloc(10_000).unwrap();
        let guard = h.alloc(10_000).unwrap();
        h.free(a.as_ptr()).unwrap();
        // Blocks of 8,016 and 10,016 bytes, `rest` of them left over.
        let new = 8_016 + 10_016 - rest - 16;
        let before = h.stats();
        let q = h.realloc(p.as_ptr(), new).unwrap();
        assert_eq!(q, a, "moved down");
        assert_eq!(h.usable_size(q.as_ptr()), Some(new + extra));
        assert_eq!(
            h.stats().usable_total,
            before.usable_total + (new + extra) as u64
        );
        h.validate().unwrap();
        for x in [q, guard] {
            h.free(x.as_ptr()).unwrap();
        }
        assert_eq!(h.stats().blocks_total, 1);
    }
}

/// The kernel's krealloc makes `realloc`'s move down in steps, with the
/// heap lock dropped for the copy: `resize_start` merges the block with
/// its free neighbours and says what to move; the heap is consistent in
/// between (the merged block is live, the counters already a move's);
/// `resize_finish` cuts the block to size. The result is the heap
/// `realloc` leaves, block for block and counter for counter.
#[test]
fn resize_start_and_finish_are_realloc_s_move_down_in_steps() {
    let mut h = TestHeap::new(1 << 20);
    let mut r = TestHeap::new(1 << 20);
    let (a, p, guard) = between_free_neighbours(&mut h);
    let (_, rp, _) = between_free_neighbours(&mut r);
    let m = start_move_down(&mut h, p);
    assert_eq!((m.src(), m.dst(), m.count()), (p.as_ptr(), a, 10_000));
    h.validate().unwrap();
    assert!(!h.is_valid_pointer(p.as_ptr()), "the old pointer is dead");
    assert_eq!(h.usable_size(a.as_ptr()), Some(8_016 + 10_016 + 6_016 - 16));
    assert!(check(p, 10_000, 7), "the payload has not moved yet");
    move_payload(&m);
    assert_eq!(h.resize_finish(m), Ok(a));
    assert!(check(a, 10_000, 7), "contents moved");
    let q = r.realloc(rp.as_ptr(), 20_000).unwrap();
    assert_eq!(h.off(a), r.off(q));
    assert_eq!(h.stats(), r.stats());
    h.validate().unwrap();
    for x in [a, guard] {
        h.free(x.as_ptr()).unwrap();
    }
    assert_eq!(h.stats().blocks_total, 1);
}

/// While the kernel copies without the heap lock, other CPUs go on: the
/// block before the merged one may be freed and merge with its own free
/// predecessor, which rewrites the merged block's boundary tag. That is
/// not damage: `resize_finish` cuts the block to size and keeps the new
/// tag (found by the in-kernel stress test's move-down steps).
#[test]
fn resize_finish_accepts_a_new_boundary_tag() {
    let mut h = TestHeap::new(1 << 20);
    let w = h.alloc(5_000).unwrap();
    let x = h.alloc(5_000).unwrap();
    let (a, p, guard) = between_free_neighbours(&mut h);
    h.free(w.as_ptr()).unwrap();
    let m = start_move_down(&mut h, p);
    move_payload(&m);
    // Meanwhile x is freed: it merges with w, the block before `m` grows.
    h.free(x.as_ptr()).unwrap();
    let before = h.stats().corruptions;
    assert_eq!(h.resize_finish(m), Ok(a));
    assert_eq!(h.stats().corruptions, before);
    assert_eq!(h.usable_size(a.as_ptr()), Some(20_000));
    assert!(check(a, 10_000, 7));
    h.validate().unwrap();
    for q in [a, guard] {
        h.free(q.as_ptr()).unwrap();
    }
    assert_eq!(h.stats().blocks_total, 1);
}

/// Damage that `resize_finish` finds (here the header of the block after
/// the merged one, overwritten while the lock was dropped) leaves the
/// merged block whole: still the live, resized allocation, the damage
/// counted and returned. Damage to the merged block's own header is found
/// too, before anything changes.
#[test]
fn resize_finish_keeps_the_block_whole_on_damage() {
    for own_header in [false, true] {
        let mut h = TestHeap::new(1 << 20);
        let (a, p, guard) = between_free_neighbours(&mut h);
        let m = start_move_down(&mut h, p);
        move_payload(&m);
        let hdr = if own_header { h.off(a) } else { h.off(guard) } - 16;
        let saved = h.peek32(hdr);
        h.poke32(hdr, saved ^ 0x100);
        let before = h.stats().corruptions;
        assert!(h.resize_finish(m).is_err());
        assert_eq!(h.stats().corruptions, before + 1);
        h.poke32(hdr, saved);
        assert_eq!(h.usable_size(a.as_ptr()), Some(8_016 + 10_016 + 6_016 - 16));
        assert!(check(a, 10_000, 7));
        h.validate().unwrap();
        for x in [a, guard] {
            h.free(x.as_ptr()).unwrap();
        }
        assert_eq!(h.stats().blocks_total, 1);
    }
}

/// The new block of a move that the caller makes (`alloc_moved_retryable`)
/// is placed as `realloc` places it: the lowest candidate, where `alloc`
/// takes the first list that fits. Running out of memory is not counted
/// (the caller falls back to its own path, which counts); a size class is
/// served as `alloc` serves it.
#[test]
fn alloc_moved_retryable_places_low_and_leaves_running_out_uncounted() {
    let mut h = TestHeap::new(1 << 20);
    let low = h.alloc(200_000).unwrap();
    let g1 = h.alloc(10_000).unwrap();
    let mid = h.alloc(100_000).unwrap();
    let g2 = h.alloc(10_000).unwrap();
    h.free(low.as_ptr()).unwrap();
    h.free(mid.as_ptr()).unwrap();
    let fit = h.alloc(60_000).unwrap();
    assert_eq!(fit, mid, "alloc: the first list that fits");
    h.free(fit.as_ptr()).unwrap();
    let moved = h.alloc_moved_retryable(60_000).unwrap();
    assert_eq!(moved, low, "the move: the lowest candidate");
    let before = h.stats();
    assert_eq!(
        h.alloc_moved_retryable(2 << 20),
        Err(AllocError::OutOfMemory)
    );
    assert_eq!(h.stats().failed_allocs, before.failed_allocs);
    let small = h.alloc_moved_retryable(100).unwrap();
    assert_eq!(h.usable_size(small.as_ptr()), Some(128));
    assert_eq!(h.stats().total_allocs, before.total_allocs + 1);
    h.validate().unwrap();
    for x in [moved, g1, g2, small] {
        h.free(x.as_ptr()).unwrap();
    }
    h.validate().unwrap();
}

/// Realloc that cannot grow in place moves the block down into its free
/// predecessor (and free successor) when they are large enough together;
/// it counts as one allocation plus one free, and the old pointer is dead.
#[test]
fn realloc_grows_backwards_into_a_free_predecessor() {
    let mut h = TestHeap::new(1 << 20);
    let (a, p, guard) = between_free_neighbours(&mut h);
    let before = h.stats();
    // 10,016 + 6,016 < 20,016: forward growth alone cannot do it; with the
    // 8,016-byte predecessor it fits.
    let q = h.realloc(p.as_ptr(), 20_000).unwrap();
    assert_eq!(q, a, "moved down to the predecessor");
    assert!(check(q, 10_000, 7), "contents moved");
    let after = h.stats();
    assert_eq!(after.total_allocs, before.total_allocs + 1);
    assert_eq!(after.total_frees, before.total_frees + 1);
    assert_eq!(
        after.requested_bytes,
        before.requested_bytes - 10_000 + 20_000
    );
    assert_eq!(after.requested_total, before.requested_total + 20_000);
    assert_eq!(h.usable_size(q.as_ptr()), Some(20_000));
    // 8,016 + 10,016 + 6,016 - 20,016 = 4,032 bytes are left as one free
    // block before the guard; that and the top block are the free blocks.
    assert_eq!(after.blocks_free, 2);
    assert_eq!(after.blocks_total, 4);
    h.validate().unwrap();
    assert!(!h.is_valid_pointer(p.as_ptr()), "the old pointer is dead");
    assert!(h.free(p.as_ptr()).is_err());
    assert_eq!(h.stats().total_frees, after.total_frees);
    h.validate().unwrap();
    h.free(q.as_ptr()).unwrap();
    h.free(guard.as_ptr()).unwrap();
    assert_eq!(h.stats().blocks_total, 1);
    h.validate().unwrap();
}

/// `resize_in_place` grows into a free successor and shrinks, like
/// `realloc`, but never moves data: where `realloc` would move the block
/// down into its free predecessor it leaves the move to the caller, with
/// nothing changed.
#[test]
fn resize_in_place_never_moves_the_payload() {
    let mut h = TestHeap::new(1 << 20);
    let (_, p, guard) = between_free_neighbours(&mut h);
    let before = h.stats();
    assert_eq!(h.resize_in_place(p.as_ptr(), 20_000), Ok(None));
    let same = h.stats();
    assert_eq!(
        (same.total_allocs, same.total_frees, same.requested_bytes),
        (
            before.total_allocs,
            before.total_frees,
            before.requested_bytes
        )
    );
    assert_eq!(
        (same.blocks_total, same.blocks_free),
        (before.blocks_total, before.blocks_free)
    );
    assert!(check(p, 10_000, 7));
    // Forwards, into the 6,016-byte successor: in place (the 16 bytes
    // left are too few to split off).
    assert_eq!(h.resize_in_place(p.as_ptr(), 16_000), Ok(Some(p)));
    assert_eq!(h.usable_size(p.as_ptr()), Some(16_016));
    assert_eq!(
        h.stats().requested_bytes,
        before.requested_bytes - 10_000 + 16_000
    );
    // Shrunk: in place, the tail split off.
    assert_eq!(h.resize_in_place(p.as_ptr(), 5_000), Ok(Some(p)));
    assert_eq!(h.usable_size(p.as_ptr()), Some(5_008));
    assert!(check(p, 5_000, 7));
    h.validate().unwrap();
    for x in [p, guard] {
        h.free(x.as_ptr()).unwrap();
    }
    assert_eq!(h.stats().blocks_total, 1);
}

/// A large block that cannot grow in place moves down into its free
/// predecessor only for a size that a fresh allocation would also give a
/// large block (above 4,096 bytes); a realloc to 4,096 bytes or less
/// becomes a slab object, like any allocation of that size.
#[test]
fn realloc_of_a_large_block_to_a_class_size_becomes_a_slab_object() {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(64 << 10).unwrap();
    // Aligned above 64, so a large block despite its size.
    let p = h.alloc_aligned(1_000, 128).unwrap();
    let guard = h.alloc(64 << 10).unwrap();
    h.free(a.as_ptr()).unwrap();
    fill(p, 1_000, 5);
    let q = h.realloc(p.as_ptr(), 4_096).unwrap();
    assert!(check(q, 1_000, 5));
    assert_eq!(h.usable_size(q.as_ptr()), Some(4_096));
    assert_eq!(h.cache_info(9).unwrap().active_objs, 1, "a slab object");
    let r = h.realloc(q.as_ptr(), 4_097).unwrap();
    assert!(check(r, 1_000, 5));
    assert_eq!(h.cache_info(9).unwrap().active_objs, 0);
    assert_eq!(h.stats().slabs_total, 0);
    h.free(r.as_ptr()).unwrap();
    h.free(guard.as_ptr()).unwrap();
    h.validate().unwrap();
    assert_eq!(h.stats().blocks_total, 1);
}

/// The layout of the placement tests below: a free block of `low` bytes
/// low in the heap, the block `p` of `mid` bytes between used guards, and
/// a free block of `high` bytes higher up. Returns `(low, p, high)`.
fn two_holes(h: &mut TestHeap, low: usize, mid: usize, high: usize) -> (usize, *mut u8, usize) {
    let lo = h.alloc(low).unwrap();
    let _g1 = h.alloc(1_000).unwrap();
    let p = h.alloc(mid).unwrap();
    let _g2 = h.alloc(5_000).unwrap();
    let hi = h.alloc(high).unwrap();
    let _g3 = h.alloc(5_000).unwrap();
    h.free(lo.as_ptr()).unwrap();
    h.free(hi.as_ptr()).unwrap();
    (h.off(lo), p.as_ptr(), h.off(hi))
}

/// A free 200,000-byte block low, `p` of 10,000 bytes, a free 30,000-byte
/// block higher up.
fn low_and_high_holes(h: &mut TestHeap) -> (usize, *mut u8, usize) {
    two_holes(h, 200_000, 10_000, 30_000)
}

/// A realloc that must move takes the lowest-addressed of the candidate
/// free blocks; a plain allocation of the same size takes the good fit.
#[test]
fn moving_realloc_prefers_the_lower_free_block() {
    let mut h = TestHeap::new(1 << 20);
    let (low, p, _) = low_and_high_holes(&mut h);
    let q = h.realloc(p, 20_000).unwrap();
    assert_eq!(h.off(q), low, "the realloc went to the low hole");
    h.validate().unwrap();

    let mut h = TestHeap::new(1 << 20);
    let (_, _, high) = low_and_high_holes(&mut h);
    let r = h.alloc(20_000).unwrap();
    assert_eq!(h.off(r), high, "a plain allocation takes the good fit");
    h.validate().unwrap();
}

/// The candidate lists of a moving realloc are walked in order: the next
/// list of the same first level, and from the last second-level list to
/// the next first level.
#[test]
fn moving_realloc_walks_the_candidate_lists_in_order() {
    // (low hole, p, high hole, new size of p). First: both holes in first
    // level 5, the high one (9,024-byte block) in the request's rounded-up
    // list (8,960 to 9,215), the low one (14,016) in a later list of the
    // same level. Second: the rounded-up list is the last of level 5
    // (16,128 to 16,383; the high hole's block is 16,216), the low hole
    // (20,016) in level 6.
    for (lo, mid, hi, new) in [
        (14_000, 8_000, 9_000, 8_800),
        (20_000, 15_000, 16_200, 16_000),
    ] {
        let mut h = TestHeap::new(1 << 20);
        let (low, p, high) = two_holes(&mut h, lo, mid, hi);
        assert!(low < high);
        let q = h.realloc(p, new).unwrap();
        assert_eq!(h.off(q), low, "realloc to {new} went to the low hole");
        h.validate().unwrap();
    }
}

#[test]
fn a_pointer_moved_backwards_is_a_double_free_afterwards() {
    // The predecessor is large enough that the moved bytes do not reach
    // the old header, which now lies inside the new block: it must read
    // as free, so that a stale free is a double free and not the free of
    // a block inside a live one.
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(20_000).unwrap();
    let p = h.alloc(5_000).unwrap();
    let guard = h.alloc(5_000).unwrap();
    fill(p, 5_000, 3);
    h.free(a.as_ptr()).unwrap();
    let q = h.realloc(p.as_ptr(), 22_000).unwrap();
    assert_eq!(q, a, "moved down to the predecessor");
    assert!(check(q, 5_000, 3), "contents moved");
    assert_eq!(h.free(p.as_ptr()), Err(FreeError::DoubleFree));
    assert_eq!(h.usable_size(q.as_ptr()), Some(22_000));
    h.validate().unwrap();
    h.free(q.as_ptr()).unwrap();
    h.free(guard.as_ptr()).unwrap();
    assert_eq!(h.stats().blocks_total, 1);
    h.validate().unwrap();
}

/// A resize whose new block size equals the old one, or exactly what the
/// block and its free successor (growing in place) or its free
/// predecessor (moving down) hold together, is done there: the bounds
/// are inclusive. (Tests for `large.rs` mutants at those bounds.)
#[test]
fn realloc_to_exactly_what_the_neighbours_hold_stays_in_them() {
    let mut h = TestHeap::new(1 << 20);
    let a = h.alloc(10_000).unwrap();
    let p = h.alloc(10_000).unwrap();
    let n = h.alloc(10_000).unwrap();
    let guard = h.alloc(10_000).unwrap();
    let usable = |h: &TestHeap, q: std::ptr::NonNull<u8>| h.usable_size(q.as_ptr()).unwrap();
    let (ua, up, un) = (usable(&h, a), usable(&h, p), usable(&h, n));
    fill(p, up, 7);
    // The same block size, with a used successor.
    let q = h.realloc(p.as_ptr(), up).unwrap();
    assert_eq!(q, p, "same size");
    // Exactly the block and its free successor (each header is 16 bytes).
    h.free(n.as_ptr()).unwrap();
    let q = h.realloc(p.as_ptr(), up + 16 + un).unwrap();
    assert_eq!(q, p, "grown in place");
    assert!(check(p, up, 7));
    // Exactly the free predecessor and the block, moved down into it.
    h.free(a.as_ptr()).unwrap();
    let grown = up + 16 + un;
    let q = h.realloc(p.as_ptr(), ua + 16 + grown).unwrap();
    assert_eq!(q, a, "moved down");
    assert!(check(a, up, 7));
    h.free(q.as_ptr()).unwrap();
    h.free(guard.as_ptr()).unwrap();
    h.validate().unwrap();
    assert_eq!(h.stats().blocks_total, 1);
}

/// An aligned large allocation starts at the first aligned payload
/// address of the block it takes, or, when that leaves a gap too small
/// for a free block (under 32 bytes), at the next one; with no gap at
/// all it starts at the block itself. A block of 5,040 to 5,088 bytes
/// in front puts the free block at each of the four 16-byte offsets
/// modulo 64 (so at 64 the gaps are 0, 16, 32 and 48 bytes).
#[test]
fn an_aligned_block_starts_at_the_first_aligned_address_with_room_for_the_gap() {
    let mut gaps = Vec::new();
    for pre in [16usize, 32, 48, 64] {
        for align in [32usize, 64, 128, 4096] {
            let mut h = TestHeap::new(1 << 20);
            h.alloc(5000 + pre).unwrap();
            // The payload address of the free block a request takes.
            let probe = h.alloc(4100).unwrap();
            let p0 = probe.as_ptr() as usize;
            h.free(probe.as_ptr()).unwrap();
            let mut gap = p0.next_multiple_of(align) - p0;
            if align == 64 {
                gaps.push(gap);
            }
            if gap != 0 && gap < 32 {
                gap += align;
            }
            let p = h.alloc_aligned(5000, align).unwrap();
            assert_eq!(p.as_ptr() as usize, p0 + gap, "pre {pre}, align {align}");
            h.free(p.as_ptr()).unwrap();
            h.validate().unwrap();
        }
    }
    gaps.sort_unstable();
    assert_eq!(gaps, [0, 16, 32, 48]);
}
