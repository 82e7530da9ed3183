// SPDX-License-Identifier: GPL-2.0

//! Per-CPU caches of freed large blocks: a parked block is reused on the
//! fast path, stays refused by every "is it live" question, keeps the
//! statistics and `validate` exact, survives the locked path rewriting its
//! boundary tag, and goes back to the TLSF lists on a flush.

mod common;

use std::collections::BTreeMap;
use std::ptr::NonNull;

use common::{check, fill, release_model, view, TestHeap};
use ikos_kalloc::allocator::{
    size_class_for, AllocError, CorruptionKind, CpuCache, DebugFlags, FastFree, FastView, Flags,
    FreeError, Heap, LARGE_CACHE_BYTES, LARGE_CACHE_MAX_BLOCK, LARGE_SLOTS,
};
use proptest::prelude::*;

/// Any allocation as the kernel glue makes it: a size class through the
/// magazine, a large block from the parked ones, else the locked heap.
fn alloc(h: &mut Heap, v: &FastView, cpu: &mut CpuCache, size: usize) -> NonNull<u8> {
    match size_class_for(size, 8) {
        Some(class) => cpu
            .alloc_with(v, class, size, false, |c| h.magazine_refill(c, class))
            .expect("fast alloc"),
        None => match cpu.alloc_large(v, size, 16, false) {
            Some(p) => p,
            None => h.alloc(size).expect("large alloc"),
        },
    }
}

/// Any free as the kernel glue makes it.
fn free(h: &mut Heap, v: &FastView, cpu: &mut CpuCache, p: *mut u8) -> Result<(), FreeError> {
    let r = cpu.free_with(v, p, |c, class, keep| {
        h.magazine_drain(c, class, keep).expect("drain");
    });
    if r == FastFree::Done {
        return Ok(());
    }
    let r = cpu.free_large_with(v, p, |c| {
        h.large_cache_evict(c).expect("evict");
    });
    if r == FastFree::Done {
        return Ok(());
    }
    h.free(p)
}

#[test]
fn a_parked_block_is_reused_and_reports_stay_exact() {
    let mut h = TestHeap::new(1 << 20);
    let v = view(&h);
    let mut cpu = CpuCache::new();
    let first = h.alloc(16384).unwrap();
    assert_eq!(cpu.free_large(&v, first.as_ptr()), FastFree::Done);
    assert_eq!(cpu.large_held(), 1);
    // Parked: refused as a live pointer, and a second free is a double free.
    assert!(!h.is_valid_pointer(first.as_ptr()));
    assert_eq!(h.usable_size(first.as_ptr()), None);
    assert_eq!(cpu.free_large(&v, first.as_ptr()), FastFree::Slow);
    assert_eq!(h.free(first.as_ptr()), Err(FreeError::DoubleFree));
    assert!(h.realloc(first.as_ptr(), 100).is_err());
    for _ in 0..1000 {
        let p = cpu.alloc_large(&v, 16384, 16, false).expect("parked block");
        assert_eq!(p, first);
        assert_eq!(h.usable_size(p.as_ptr()), Some(16384));
        assert_eq!(cpu.free_large(&v, p.as_ptr()), FastFree::Done);
    }
    assert_eq!(h.stats().total_allocs, 1, "fast events not absorbed yet");
    h.magazine_absorb(&mut cpu);
    let s = h.stats();
    assert_eq!(
        (s.total_allocs, s.total_frees, s.active_allocs),
        (1001, 1001, 0)
    );
    assert_eq!((s.fast_allocs, s.fast_frees), (1000, 1001));
    assert_eq!((s.double_frees, s.invalid_frees), (2, 0));
    assert_eq!(s.large_allocs, 0, "a parked block is not a live allocation");
    assert_eq!((s.magazine_objects, s.magazine_bytes), (1, 16384));
    assert_eq!((s.used_bytes, s.requested_bytes), (0, 0));
    assert_eq!(s.used_bytes + s.free_bytes + s.overhead_bytes, s.heap_size);
    h.validate().expect("valid with a parked block");
    assert_eq!(h.magazine_flush(&mut cpu), Ok(1));
    let s = h.stats();
    assert_eq!((s.magazine_objects, s.blocks_total), (0, 1));
    assert_eq!(s.largest_free_block, s.initial_largest_free_block);
    h.validate().unwrap();
}

#[test]
fn a_parked_block_serves_requests_within_an_eighth_and_alignment() {
    let mut h = TestHeap::new(1 << 20);
    let v = view(&h);
    let mut cpu = CpuCache::new();
    let p = h.alloc(16384).unwrap();
    fill(p, 16384, 7);
    let aligned = (p.as_ptr() as usize).is_multiple_of(4096);
    assert_eq!(cpu.free_large(&v, p.as_ptr()), FastFree::Done);
    // Too large, or more than an eighth smaller: not served.
    assert_eq!(cpu.alloc_large(&v, 16385, 16, false), None);
    assert_eq!(cpu.alloc_large(&v, 14000, 16, false), None);
    if !aligned {
        assert_eq!(cpu.alloc_large(&v, 16384, 4096, false), None);
    }
    // Smaller within an eighth: served, with the new requested size.
    let q = cpu.alloc_large(&v, 15000, 16, true).expect("fits");
    assert_eq!(q, p);
    // SAFETY: `q` holds 16384 bytes.
    let bytes = unsafe { std::slice::from_raw_parts(q.as_ptr(), 16384) };
    assert!(bytes.iter().all(|&b| b == 0), "zeroed");
    h.magazine_absorb(&mut cpu);
    let s = h.stats();
    assert_eq!((s.requested_bytes, s.large_allocs), (15000, 1));
    h.validate().expect("header carries the new requested size");
    // The locked path takes it from here.
    let r = h.realloc(q.as_ptr(), 20000).unwrap();
    h.free(r.as_ptr()).unwrap();
    h.validate().unwrap();
    assert_eq!(h.stats().active_allocs, 0);
}

#[test]
fn a_parked_block_refuses_what_the_locked_heap_refuses() {
    let mut h = TestHeap::new(1 << 20);
    let v = view(&h);
    let mut cpu = CpuCache::new();
    // An alignment above the classes' makes a large block of the minimum
    // size: the block a size 0 would fit.
    let p = h.alloc_flags(16, 128, Flags::NONE).unwrap();
    assert_eq!(cpu.free_large(&v, p.as_ptr()), FastFree::Done);
    assert_eq!(cpu.alloc_large(&v, 0, 8, false), None, "size 0 is ZeroSize");
    assert_eq!(
        cpu.alloc_large(&v, 16, 3, false),
        None,
        "align 3 is BadAlign"
    );
    assert_eq!(h.alloc_flags(0, 8, Flags::NONE), Err(AllocError::ZeroSize));
    // The same block still serves a request that the heap would accept.
    assert_eq!(cpu.alloc_large(&v, 16, 8, false), Some(p));
    h.magazine_absorb(&mut cpu);
    h.free(p.as_ptr()).unwrap();
    h.validate().unwrap();
    assert_eq!(h.stats().active_allocs, 0);
}

#[test]
fn the_cache_is_bounded_and_small_or_huge_blocks_go_slow() {
    let mut h = TestHeap::new(4 << 20);
    let v = view(&h);
    let mut cpu = CpuCache::new();
    let small: Vec<_> = (0..=LARGE_SLOTS).map(|_| h.alloc(5000).unwrap()).collect();
    for (i, p) in small.iter().enumerate() {
        let want = if i < LARGE_SLOTS {
            FastFree::Done
        } else {
            FastFree::LargeFull
        };
        assert_eq!(cpu.free_large(&v, p.as_ptr()), want, "block {i}");
    }
    h.free(small[LARGE_SLOTS].as_ptr()).unwrap();
    h.magazine_flush(&mut cpu).unwrap();
    // A 4 MiB heap: a budget of 256 KiB, blocks of up to 64 KiB.
    assert_eq!(
        (v.large_cache_budget(), v.large_cache_max_block()),
        (256 * 1024, LARGE_CACHE_MAX_BLOCK)
    );
    let big = LARGE_CACHE_MAX_BLOCK - 16;
    let n = v.large_cache_budget() / LARGE_CACHE_MAX_BLOCK;
    let bigs: Vec<_> = (0..=n).map(|_| h.alloc(big).unwrap()).collect();
    for (i, p) in bigs.iter().enumerate() {
        let want = if i < n {
            FastFree::Done
        } else {
            FastFree::LargeFull
        };
        assert_eq!(cpu.free_large(&v, p.as_ptr()), want, "big block {i}");
    }
    h.free(bigs[n].as_ptr()).unwrap();
    let huge = h.alloc(big + 16).unwrap();
    assert_eq!(cpu.free_large(&v, huge.as_ptr()), FastFree::Slow);
    h.free(huge.as_ptr()).unwrap();
    // Slab objects and foreign pointers are never parked.
    let obj = h.alloc(4096).unwrap();
    assert_eq!(cpu.free_large(&v, obj.as_ptr()), FastFree::Slow);
    let mut local = [0u8; 64];
    assert_eq!(cpu.free_large(&v, local.as_mut_ptr()), FastFree::Slow);
    h.free(obj.as_ptr()).unwrap();
    h.magazine_flush(&mut cpu).unwrap();
    h.validate().unwrap();
    let s = h.stats();
    assert_eq!(s.active_allocs, 0);
    assert_eq!(s.largest_free_block, s.initial_largest_free_block);
}

#[test]
fn a_heap_with_debug_flags_parks_nothing() {
    let mut h = TestHeap::with_debug(1 << 20, DebugFlags::POISON);
    let v = view(&h);
    let mut cpu = CpuCache::new();
    let p = h.alloc(16384).unwrap();
    assert_eq!(cpu.free_large(&v, p.as_ptr()), FastFree::Slow);
    h.free(p.as_ptr()).unwrap();
    assert_eq!(cpu.alloc_large(&v, 16384, 16, false), None);
}

#[test]
fn neighbours_change_around_a_parked_block() {
    let mut h = TestHeap::new(1 << 20);
    let v = view(&h);
    let mut cpu = CpuCache::new();
    let a = h.alloc(20000).unwrap();
    let b = h.alloc(16384).unwrap();
    let c = h.alloc(20000).unwrap();
    assert_eq!(cpu.free_large(&v, b.as_ptr()), FastFree::Done);
    // Free both neighbours: they must not merge with the parked block.
    h.free(a.as_ptr()).unwrap();
    h.free(c.as_ptr()).unwrap();
    h.magazine_absorb(&mut cpu);
    h.validate().expect("parked block between free neighbours");
    // A split of the block before it rewrites its boundary tag.
    let a2 = h.alloc(8000).unwrap();
    assert_eq!(a2, a);
    h.validate().unwrap();
    let b2 = cpu.alloc_large(&v, 16384, 16, false).expect("still parked");
    assert_eq!(b2, b);
    h.magazine_absorb(&mut cpu);
    h.validate().unwrap();
    h.free(a2.as_ptr()).unwrap();
    h.free(b2.as_ptr()).unwrap();
    h.validate().unwrap();
    assert_eq!(h.stats().blocks_total, 1);
}

#[test]
fn damage_to_a_parked_header_is_caught() {
    let mut h = TestHeap::new(1 << 20);
    let v = view(&h);
    let mut cpu = CpuCache::new();
    let p = h.alloc(16384).unwrap();
    let _guard = h.alloc(16384).unwrap();
    assert_eq!(cpu.free_large(&v, p.as_ptr()), FastFree::Done);
    let hdr = h.off(p) - 16;
    // An overflow of the block before reaches word 0 first.
    let saved = h.peek32(hdr);
    h.poke32(hdr, saved ^ 0x100);
    assert_eq!(cpu.alloc_large(&v, 16384, 16, false), None, "dropped");
    assert_eq!(cpu.large_held(), 0);
    h.magazine_absorb(&mut cpu);
    assert_eq!(h.stats().corruptions, 1);
    assert!(h.validate().is_err(), "a damaged, cached block is reported");
    // Damage to the check word found by a flush.
    h.poke32(hdr, saved);
    let mut cpu2 = CpuCache::new();
    let q = h.alloc(16384).unwrap();
    assert_eq!(cpu2.free_large(&v, q.as_ptr()), FastFree::Done);
    let qh = h.off(q) - 16;
    h.poke32(qh + 12, h.peek32(qh + 12) ^ 0x100);
    assert!(h.magazine_flush(&mut cpu2).is_err());
}

#[test]
fn a_double_free_racing_on_two_cpus_parks_once() {
    let mut h = TestHeap::new(1 << 20);
    let v = view(&h);
    let (mut a, mut b) = (CpuCache::new(), CpuCache::new());
    let p = h.alloc(10000).unwrap();
    assert_eq!(a.free_large(&v, p.as_ptr()), FastFree::Done);
    assert_eq!(b.free_large(&v, p.as_ptr()), FastFree::Slow);
    assert_eq!(h.free(p.as_ptr()), Err(FreeError::DoubleFree));
    assert_eq!(b.large_held(), 0);
    h.magazine_flush(&mut a).unwrap();
    h.magazine_flush(&mut b).unwrap();
    h.validate().unwrap();
}

/// One step of the property test.
#[derive(Clone, Debug)]
enum Op {
    Alloc { cpu: usize, size: usize },
    Free { cpu: usize, idx: usize },
    SlowFree { idx: usize },
    Flush { cpu: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..2usize, prop_oneof![1..=4096usize, 4097..=40_000usize, Just(16384usize)])
            .prop_map(|(cpu, size)| Op::Alloc { cpu, size }),
        5 => (0..2usize, any::<usize>()).prop_map(|(cpu, idx)| Op::Free { cpu, idx }),
        1 => any::<usize>().prop_map(|idx| Op::SlowFree { idx }),
        1 => (0..2usize).prop_map(|cpu| Op::Flush { cpu }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(256)
    ))]

    /// Random allocations and frees of every size on two CPU caches, mixed
    /// with locked frees and flushes: contents survive, and after each step
    /// (caches absorbed) the statistics match and `validate` passes.
    #[test]
    fn parked_blocks_match_the_model(ops in proptest::collection::vec(op(), 1..200)) {
        let mut h = TestHeap::new(4 << 20);
        let v = view(&h);
        let mut cpus = [CpuCache::new(), CpuCache::new()];
        let mut live: BTreeMap<usize, (NonNull<u8>, usize, u8)> = BTreeMap::new();
        let mut next = 0usize;
        for op in ops {
            match op {
                Op::Alloc { cpu, size } => {
                    let p = alloc(&mut h, &v, &mut cpus[cpu], size);
                    fill(p, size, next as u8);
                    live.insert(next, (p, size, next as u8));
                    next += 1;
                }
                Op::Free { idx, .. } | Op::SlowFree { idx } if !live.is_empty() => {
                    let key = *live.keys().nth(idx % live.len()).unwrap();
                    let (p, size, tag) = live.remove(&key).unwrap();
                    prop_assert!(check(p, size, tag));
                    match op {
                        Op::Free { cpu, .. } => free(&mut h, &v, &mut cpus[cpu], p.as_ptr()),
                        _ => h.free(p.as_ptr()),
                    }
                    .unwrap();
                }
                Op::Flush { cpu } => {
                    h.magazine_flush(&mut cpus[cpu]).unwrap();
                }
                _ => {}
            }
            for c in cpus.iter_mut() {
                h.magazine_absorb(c);
            }
            let s = h.stats();
            prop_assert_eq!(s.active_allocs, live.len() as u64);
            let held: usize = cpus.iter().map(|c| c.held_total() + c.large_held()).sum();
            prop_assert_eq!(s.magazine_objects, held as u64);
            prop_assert_eq!(s.used_bytes + s.free_bytes + s.overhead_bytes, s.heap_size);
            prop_assert!(h.validate().is_ok());
        }
        release_model(&mut h, &live, &mut cpus)?;
    }
}

#[test]
fn a_full_cache_returns_its_oldest_blocks_and_parks_the_new_one() {
    let mut h = TestHeap::new(4 << 20);
    let v = view(&h);
    let mut cpu = CpuCache::new();
    // Eight parked blocks of 5,000 bytes: the cache is full, and none of
    // them fits a 16 KiB request.
    let small: Vec<_> = (0..LARGE_SLOTS).map(|_| h.alloc(5000).unwrap()).collect();
    for p in &small {
        assert_eq!(cpu.free_large(&v, p.as_ptr()), FastFree::Done);
    }
    let big = h.alloc(16384).unwrap();
    assert_eq!(cpu.free_large(&v, big.as_ptr()), FastFree::LargeFull);
    let mut evicted = None;
    let r = cpu.free_large_with(&v, big.as_ptr(), |c| {
        evicted = Some(h.large_cache_evict(c).unwrap());
    });
    assert_eq!(r, FastFree::Done);
    // Half went back (the oldest four), the 16 KiB block is parked.
    assert_eq!(evicted, Some(LARGE_SLOTS / 2));
    assert_eq!(cpu.large_held(), LARGE_SLOTS / 2 + 1);
    h.magazine_absorb(&mut cpu);
    let s = h.stats();
    assert_eq!(s.active_allocs, 0);
    h.validate().unwrap();
    // The next 16 KiB request takes it without the heap.
    let again = cpu.alloc_large(&v, 16384, 8, false).unwrap();
    assert_eq!(again, big);
    // The blocks left are the four freed last.
    let mut left: Vec<_> = (0..LARGE_SLOTS / 2)
        .map(|_| cpu.alloc_large(&v, 5000, 8, false).unwrap())
        .collect();
    let mut want = small[LARGE_SLOTS / 2..].to_vec();
    left.sort_unstable();
    want.sort_unstable();
    assert_eq!(left, want);
    assert_eq!(cpu.large_held(), 0);
    for p in left {
        h.free(p.as_ptr()).unwrap();
    }
    h.free(again.as_ptr()).unwrap();
    h.magazine_flush(&mut cpu).unwrap();
    h.validate().unwrap();
    let s = h.stats();
    assert_eq!(s.active_allocs, 0);
    assert_eq!(s.largest_free_block, s.initial_largest_free_block);
}

#[test]
fn the_fit_window_and_the_byte_bound_are_inclusive() {
    // 16 slots, 64 KiB of payload at most, 512 KiB of blocks per CPU on a
    // heap of 8 MiB (the module's default) or more.
    assert_eq!(
        (LARGE_SLOTS, LARGE_CACHE_MAX_BLOCK, LARGE_CACHE_BYTES),
        (16, 64 * 1024 + 16, 512 * 1024)
    );
    let mut h = TestHeap::new(8 << 20);
    let v = view(&h);
    assert_eq!(
        (v.large_cache_budget(), v.large_cache_max_block()),
        (LARGE_CACHE_BYTES, LARGE_CACHE_MAX_BLOCK)
    );
    let mut cpu = CpuCache::new();
    // A block of 18,432 bytes serves a request whose block (16,384 bytes)
    // is exactly an eighth smaller, and not one 16 bytes smaller still.
    let p = h.alloc(18_432 - 16).unwrap();
    assert_eq!(cpu.free_large(&v, p.as_ptr()), FastFree::Done);
    assert_eq!(cpu.alloc_large(&v, 16_384 - 32, 16, false), None);
    // Alignments that are not a power of two are refused.
    assert_eq!(cpu.alloc_large(&v, 16_384 - 16, 3, false), None);
    assert_eq!(cpu.alloc_large(&v, 16_384 - 16, 0, false), None);
    let q = cpu.alloc_large(&v, 16_384 - 16, 16, false).expect("fits");
    assert_eq!(q, p);
    h.free(q.as_ptr()).unwrap();
    // Eight blocks of 64 KiB fill the 512 KiB exactly; a ninth does not fit.
    let blocks: Vec<_> = (0..9).map(|_| h.alloc(64 * 1024 - 16).unwrap()).collect();
    for (i, b) in blocks.iter().enumerate() {
        let want = if i < 8 {
            FastFree::Done
        } else {
            FastFree::LargeFull
        };
        assert_eq!(cpu.free_large(&v, b.as_ptr()), want, "block {i}");
    }
    assert_eq!(cpu.large_held(), 8);
    // Full by bytes (half the slots used): an eviction returns the oldest
    // blocks until half the bytes are left, and the ninth fits then.
    assert_eq!(h.large_cache_evict(&mut cpu), Ok(4));
    assert_eq!(cpu.large_held(), 4);
    assert_eq!(cpu.free_large(&v, blocks[8].as_ptr()), FastFree::Done);
    h.magazine_flush(&mut cpu).unwrap();
    h.validate().unwrap();
    let s = h.stats();
    assert_eq!((s.active_allocs, s.total_allocs, s.fast_allocs), (0, 11, 1));
    assert_eq!(s.largest_free_block, s.initial_largest_free_block);
}

#[test]
fn a_small_heap_parks_a_sixteenth_of_itself_in_blocks_of_up_to_half_that() {
    // 1 MiB: a budget of 64 KiB, so blocks of up to 32 KiB, and an
    // eviction (down to 32 KiB) always makes room for the block freed.
    let mut h = TestHeap::new(1 << 20);
    let v = view(&h);
    assert_eq!(
        (v.large_cache_budget(), v.large_cache_max_block()),
        (64 * 1024, 32 * 1024)
    );
    let mut cpu = CpuCache::new();
    let over = h.alloc(32 * 1024).unwrap();
    assert_eq!(cpu.free_large(&v, over.as_ptr()), FastFree::Slow);
    h.free(over.as_ptr()).unwrap();
    let blocks: Vec<_> = (0..3).map(|_| h.alloc(32 * 1024 - 16).unwrap()).collect();
    assert_eq!(cpu.free_large(&v, blocks[0].as_ptr()), FastFree::Done);
    assert_eq!(cpu.free_large(&v, blocks[1].as_ptr()), FastFree::Done);
    assert_eq!(cpu.free_large(&v, blocks[2].as_ptr()), FastFree::LargeFull);
    let mut evicted = None;
    let r = cpu.free_large_with(&v, blocks[2].as_ptr(), |c| {
        evicted = Some(h.large_cache_evict(c).unwrap());
    });
    assert_eq!((r, evicted, cpu.large_held()), (FastFree::Done, Some(1), 2));
    h.magazine_flush(&mut cpu).unwrap();
    h.validate().unwrap();
    assert_eq!(h.stats().active_allocs, 0);
    // The smallest heap the module accepts, 64 KiB: a budget of 4 KiB
    // parks no large block at all.
    let mut tiny = TestHeap::new(64 << 10);
    let tv = view(&tiny);
    assert_eq!(
        (tv.large_cache_budget(), tv.large_cache_max_block()),
        (4096, 2048)
    );
    let p = tiny.alloc(5000).unwrap();
    assert_eq!(cpu.free_large(&tv, p.as_ptr()), FastFree::Slow);
    tiny.free(p.as_ptr()).unwrap();
    tiny.validate().unwrap();
}

#[test]
fn a_detach_moves_the_parked_blocks() {
    // What quiesce does on each CPU: the parked blocks and their events
    // move to a scratch cache, which the heap then takes back.
    let mut h = TestHeap::new(1 << 20);
    let v = view(&h);
    let mut cpu = CpuCache::new();
    let mut scratch = CpuCache::new();
    let p = h.alloc(16384).unwrap();
    assert_eq!(cpu.free_large(&v, p.as_ptr()), FastFree::Done);
    cpu.detach_into(&mut scratch, false);
    assert_eq!((cpu.large_held(), scratch.large_held()), (0, 1));
    assert_eq!(cpu.alloc_large(&v, 16384, 16, false), None);
    h.magazine_absorb(&mut cpu);
    assert_eq!(h.stats().fast_frees, 0, "the events moved too");
    h.magazine_absorb(&mut scratch);
    assert_eq!(h.stats().fast_frees, 1);
    assert_eq!(h.large_cache_flush(&mut scratch), Ok(1));
    h.validate().unwrap();
    let s = h.stats();
    assert_eq!((s.active_allocs, s.total_frees), (0, 1));
    assert_eq!(s.largest_free_block, s.initial_largest_free_block);
}

#[test]
fn a_flush_keeps_a_block_that_no_longer_reads_as_parked() {
    // Word 0 back to "used" while parked (a stray write of the value it
    // had): its check word still matches, so only the state tells. The
    // flush must not free what may be someone's live block.
    let mut h = TestHeap::new(1 << 20);
    let v = view(&h);
    let mut cpu = CpuCache::new();
    let p = h.alloc(16384).unwrap();
    let _guard = h.alloc(16384).unwrap();
    let hdr = h.off(p) - 16;
    let used = h.peek32(hdr);
    assert_eq!(cpu.free_large(&v, p.as_ptr()), FastFree::Done);
    assert_ne!(h.peek32(hdr), used, "parked: word 0 has the cached bit");
    h.poke32(hdr, used);
    let c = h.magazine_flush(&mut cpu).expect_err("not a parked block");
    assert_eq!(
        (c.kind, c.offset, c.detail),
        (CorruptionKind::MagazineEntry, hdr, 16384 + 16),
        "{c}"
    );
    assert_eq!(cpu.large_held(), 0);
    // It was left alone: still a used block, which its owner can free.
    assert_eq!(h.usable_size(p.as_ptr()), Some(16384));
    h.free(p.as_ptr()).unwrap();
    assert_eq!(h.stats().corruptions, 1);
}
