// SPDX-License-Identifier: GPL-2.0

//! The test groups: one function per group of the design document, plus
//! custom caches and a stress run.

use super::util::{check, ensure, fill, Failure, Rng};
use crate::allocator::{
    config::{MAX_SIZE, NUM_CACHES},
    AllocError, CacheError, Flags, FreeError, Heap,
};
use core::ptr::NonNull;

type TestResult = Result<(), Failure>;

fn alloc(heap: &mut Heap, size: usize, align: usize) -> Result<NonNull<u8>, Failure> {
    heap.alloc_flags(size, align, Flags::NONE)
        .map_err(|_| Failure::new("allocation failed", size as u64))
}

fn free(heap: &mut Heap, p: NonNull<u8>) -> TestResult {
    heap.free(p.as_ptr()).map_err(|_| {
        Failure::new(
            "free of a live allocation failed",
            p.as_ptr() as u64 & 0xfff,
        )
    })
}

fn usable(heap: &Heap, p: NonNull<u8>) -> usize {
    heap.usable_size(p.as_ptr()).unwrap_or(0)
}

/// Basic allocation: sizes across both allocators, pattern write and read.
pub(super) fn basic(heap: &mut Heap) -> TestResult {
    const SIZES: [usize; 10] = [1, 8, 13, 64, 100, 1000, 4096, 4097, 5000, 65536];
    let mut ptrs = [None; SIZES.len()];
    for (i, &size) in SIZES.iter().enumerate() {
        let p = alloc(heap, size, 8)?;
        ensure(
            usable(heap, p) >= size,
            "usable size below the request",
            size as u64,
        )?;
        ensure(
            heap.is_valid_pointer(p.as_ptr()),
            "live pointer not valid",
            size as u64,
        )?;
        // SAFETY: `p` is a live allocation of at least `size` bytes.
        unsafe { fill(p, size, i as u8) };
        ptrs[i] = Some(p);
    }
    for (i, &size) in SIZES.iter().enumerate() {
        let p = ptrs[i].ok_or(Failure::new("lost pointer", i as u64))?;
        // SAFETY: `p` is still live and `size` bytes long.
        let intact = unsafe { check(p, size, i as u8) };
        ensure(intact, "pattern damaged", size as u64)?;
        free(heap, p)?;
        ensure(
            !heap.is_valid_pointer(p.as_ptr()),
            "freed pointer still valid",
            size as u64,
        )?;
    }
    Ok(())
}

/// Every power-of-two alignment from 8 to 64 KiB, for small and large sizes,
/// all live at once so they interleave.
pub(super) fn alignment(heap: &mut Heap) -> TestResult {
    const SIZES: [usize; 4] = [1, 24, 100, 5000];
    let mut live = [None; 14 * SIZES.len()];
    let mut n = 0;
    for shift in 3..17 {
        let align = 1usize << shift;
        for &size in &SIZES {
            let p = alloc(heap, size, align)?;
            ensure(
                (p.as_ptr() as usize).is_multiple_of(align),
                "misaligned pointer",
                align as u64,
            )?;
            // SAFETY: `p` is a live allocation of `size` bytes.
            unsafe { fill(p, size, shift as u8) };
            if let Some(slot) = live.get_mut(n) {
                *slot = Some((p, size, shift as u8));
                n += 1;
            }
        }
    }
    for &(p, size, seed) in live.iter().take(n).flatten() {
        // SAFETY: `p` is live and `size` bytes long.
        let intact = unsafe { check(p, size, seed) };
        ensure(intact, "aligned block damaged", size as u64)?;
        free(heap, p)?;
    }
    Ok(())
}

/// Object reuse and movement between the empty, partial and full lists.
pub(super) fn slab_reuse_and_lists(heap: &mut Heap) -> TestResult {
    let id = heap
        .size_class(3)
        .ok_or(Failure::new("no 64-byte class", 64))?;
    let reuses0 = heap.cache_info(id.index()).map_or(0, |c| c.reuses);
    // Keep a neighbour live so the slab stays partial and the freed object
    // goes through the free list (an emptied slab is reset instead).
    let keep = alloc(heap, 64, 8)?;
    let p = alloc(heap, 64, 8)?;
    free(heap, p)?;
    let q = alloc(heap, 64, 8)?;
    ensure(p == q, "freed object not reused first", 64)?;
    free(heap, q)?;
    free(heap, keep)?;

    let info = heap
        .cache_info(id.index())
        .ok_or(Failure::new("no cache info", 64))?;
    let per_slab = info.objs_per_slab;
    ensure(
        (2..=4096).contains(&per_slab),
        "implausible objects per slab",
        per_slab as u64,
    )?;
    // Allocate until at least one more slab is full.
    let base_full = info.slabs_full;
    let mut count = 0;
    // Objects are chained through their own memory: no table needed.
    let mut head: Option<NonNull<u8>> = None;
    while heap.cache_info(id.index()).map_or(0, |c| c.slabs_full) == base_full || count < per_slab {
        let o = alloc(heap, 64, 8)?;
        // SAFETY: `o` is a live 64-byte object; it stores the previous head.
        unsafe {
            o.as_ptr()
                .cast::<usize>()
                .write_unaligned(head.map_or(0, |h| h.as_ptr() as usize))
        };
        head = Some(o);
        count += 1;
        ensure(
            count <= 2 * per_slab + 1,
            "slab never became full",
            count as u64,
        )?;
    }
    let after = heap
        .cache_info(id.index())
        .ok_or(Failure::new("no cache info", 64))?;
    ensure(
        after.slabs_full > base_full,
        "no full slab after filling one",
        count as u64,
    )?;
    ensure(
        after.active_objs >= count,
        "active objects undercounted",
        after.active_objs as u64,
    )?;
    // Free everything: the slabs must end empty (or be returned to the pool).
    let mut freed = 0;
    while let Some(o) = head {
        // SAFETY: `o` is live; its first word is the next pointer we stored.
        let next = unsafe { o.as_ptr().cast::<usize>().read_unaligned() };
        free(heap, o)?;
        freed += 1;
        head = NonNull::new(next as *mut u8);
    }
    ensure(freed == count, "chain lost objects", freed as u64)?;
    let end = heap
        .cache_info(id.index())
        .ok_or(Failure::new("no cache info", 64))?;
    ensure(
        end.active_objs == 0,
        "objects still active",
        end.active_objs as u64,
    )?;
    ensure(
        end.slabs_full == 0 && end.slabs_partial == 0,
        "slab not back on the empty list",
        end.slabs_partial as u64,
    )?;
    ensure(end.reuses > reuses0, "reuse not counted", end.reuses)?;
    Ok(())
}

/// Large blocks: splitting, coalescing of both neighbours, one block again.
pub(super) fn large_split_coalesce(heap: &mut Heap) -> TestResult {
    let initial = heap.stats();
    let a = alloc(heap, 16384, 16)?;
    let b = alloc(heap, 16384, 16)?;
    let c = alloc(heap, 16384, 16)?;
    let split = heap.stats();
    ensure(
        split.largest_free_block < initial.largest_free_block,
        "no split",
        split.largest_free_block as u64,
    )?;
    for (i, p) in [a, b, c].into_iter().enumerate() {
        // SAFETY: each is a live 16 KiB block.
        unsafe { fill(p, 16384, 0x40 + i as u8) };
    }
    free(heap, b)?;
    free(heap, a)?;
    free(heap, c)?;
    let end = heap.stats();
    ensure(
        end.largest_free_block == initial.largest_free_block,
        "free space not coalesced",
        end.largest_free_block as u64,
    )?;
    ensure(
        end.blocks_free == initial.blocks_free,
        "free block count changed",
        end.blocks_free as u64,
    )?;
    // A request bigger than the slab maximum never lands in a slab.
    let big = alloc(heap, MAX_SIZE + 1, 8)?;
    let in_slabs = heap.stats().slabs_total;
    ensure(
        in_slabs == end.slabs_total,
        "large request created a slab",
        in_slabs as u64,
    )?;
    free(heap, big)?;
    Ok(())
}

/// Zero size, null, invalid, interior and double frees, out of memory.
pub(super) fn edge_cases(heap: &mut Heap) -> TestResult {
    let s0 = heap.stats();
    ensure(heap.alloc(0).is_none(), "alloc(0) returned memory", 0)?;
    ensure(
        matches!(
            heap.alloc_flags(usize::MAX, 8, Flags::NONE),
            Err(AllocError::SizeOverflow)
        ),
        "usize::MAX did not overflow",
        0,
    )?;
    ensure(
        matches!(
            heap.alloc_flags(8, 24, Flags::NONE),
            Err(AllocError::BadAlign)
        ),
        "align 24 accepted",
        24,
    )?;
    ensure(
        matches!(
            heap.alloc_flags(8, 8, Flags::DMA),
            Err(AllocError::DmaUnsupported)
        ),
        "DMA accepted",
        0,
    )?;
    let huge = heap.len();
    ensure(
        matches!(
            heap.alloc_flags(huge, 8, Flags::NONE),
            Err(AllocError::OutOfMemory)
        ),
        "heap-sized alloc succeeded",
        huge as u64,
    )?;
    ensure(heap.validate().is_ok(), "heap damaged by out-of-memory", 0)?;

    // Like kfree(NULL): a no-op that succeeds and counts nothing.
    let before_null = heap.stats();
    ensure(
        heap.free(core::ptr::null_mut()).is_ok(),
        "free(NULL) is not a no-op",
        0,
    )?;
    let after_null = heap.stats();
    ensure(
        after_null.total_frees == before_null.total_frees
            && after_null.invalid_frees == before_null.invalid_frees,
        "free(NULL) was counted",
        after_null.total_frees,
    )?;
    let mut outside = 0u64;
    ensure(
        matches!(
            heap.free(core::ptr::from_mut(&mut outside).cast()),
            Err(FreeError::OutsideHeap)
        ),
        "stack pointer accepted",
        0,
    )?;

    let p = alloc(heap, 128, 8)?;
    // SAFETY: pointer arithmetic inside the live 128-byte object.
    let interior = unsafe { p.as_ptr().add(8) };
    ensure(
        matches!(heap.free(interior), Err(FreeError::Interior)),
        "interior slab pointer accepted",
        8,
    )?;
    free(heap, p)?;
    ensure(
        matches!(heap.free(p.as_ptr()), Err(FreeError::DoubleFree)),
        "slab double free not detected",
        128,
    )?;

    let l = alloc(heap, 20000, 8)?;
    // SAFETY: inside the live 20000-byte block.
    let interior = unsafe { l.as_ptr().add(4096) };
    ensure(
        heap.free(interior).is_err(),
        "interior large pointer accepted",
        4096,
    )?;
    free(heap, l)?;
    ensure(
        matches!(heap.free(l.as_ptr()), Err(FreeError::DoubleFree)),
        "large double free not detected",
        20000,
    )?;

    let s1 = heap.stats();
    ensure(
        s1.double_frees == s0.double_frees + 2,
        "double_frees not counted",
        s1.double_frees,
    )?;
    ensure(
        s1.invalid_frees >= s0.invalid_frees + 3,
        "invalid_frees not counted",
        s1.invalid_frees,
    )?;
    ensure(
        s1.dma_refusals == s0.dma_refusals + 1,
        "dma_refusals not counted",
        s1.dma_refusals,
    )?;
    ensure(
        s1.failed_allocs > s0.failed_allocs,
        "failed_allocs not counted",
        s1.failed_allocs,
    )?;
    ensure(
        s1.total_allocs == s0.total_allocs + 2,
        "failed allocs counted as successes",
        s1.total_allocs,
    )?;
    Ok(())
}

/// Counters move by exactly what happened; the byte accounting adds up.
pub(super) fn statistics(heap: &mut Heap) -> TestResult {
    let s0 = heap.stats();
    let mut ptrs = [None; NUM_CACHES + 2];
    for (i, slot) in ptrs.iter_mut().enumerate() {
        *slot = Some(alloc(heap, 8usize << i.min(NUM_CACHES + 1), 8)?);
    }
    let s1 = heap.stats();
    let n = ptrs.len() as u64;
    ensure(
        s1.total_allocs == s0.total_allocs + n,
        "total_allocs",
        s1.total_allocs,
    )?;
    ensure(
        s1.active_allocs == s0.active_allocs + n,
        "active_allocs",
        s1.active_allocs,
    )?;
    ensure(
        s1.used_bytes + s1.free_bytes + s1.overhead_bytes == s1.heap_size,
        "used + free + overhead != heap_size",
        s1.heap_size as u64,
    )?;
    ensure(
        s1.usable_bytes >= s0.usable_bytes + (8usize << (NUM_CACHES + 2)) - 8,
        "usable_bytes too small",
        s1.usable_bytes as u64,
    )?;
    ensure(
        s1.requested_total >= s0.requested_total + (8u64 << (NUM_CACHES + 2)) - 8,
        "requested_total too small",
        s1.requested_total,
    )?;
    for p in ptrs.into_iter().flatten() {
        free(heap, p)?;
    }
    let s2 = heap.stats();
    ensure(
        s2.total_frees == s0.total_frees + n,
        "total_frees",
        s2.total_frees,
    )?;
    ensure(
        s2.active_allocs == s0.active_allocs,
        "active_allocs after free",
        s2.active_allocs,
    )?;
    ensure(
        s2.usable_bytes == s0.usable_bytes,
        "usable_bytes after free",
        s2.usable_bytes as u64,
    )?;
    ensure(
        s2.used_bytes + s2.free_bytes + s2.overhead_bytes == s2.heap_size,
        "accounting after free",
        s2.heap_size as u64,
    )?;
    Ok(())
}

/// Custom caches: create, alignment, alloc/free, busy destroy, destroy.
pub(super) fn custom_cache(heap: &mut Heap) -> TestResult {
    let id = heap
        .cache_create("selftest-obj", 200, 64)
        .map_err(|_| Failure::new("cache_create failed", 200))?;
    ensure(
        matches!(
            heap.cache_create("selftest-obj", 8, 8),
            Err(CacheError::NameExists)
        ),
        "duplicate name accepted",
        0,
    )?;
    let mut objs = [None; 40];
    for (i, slot) in objs.iter_mut().enumerate() {
        let o = heap
            .cache_alloc(id)
            .map_err(|_| Failure::new("cache_alloc failed", i as u64))?;
        ensure(
            (o.as_ptr() as usize).is_multiple_of(64),
            "cache object misaligned",
            i as u64,
        )?;
        // SAFETY: a live 200-byte object.
        unsafe { fill(o, 200, i as u8) };
        *slot = Some(o);
    }
    ensure(
        matches!(heap.cache_destroy(id), Err(CacheError::Busy)),
        "destroy of a busy cache accepted",
        40,
    )?;
    let other = heap
        .size_class(5)
        .ok_or(Failure::new("no 256-byte class", 256))?;
    if let Some(o) = objs[0] {
        ensure(
            matches!(
                heap.cache_free(other, o.as_ptr()),
                Err(FreeError::WrongCache)
            ),
            "free to the wrong cache accepted",
            0,
        )?;
    }
    for (i, o) in objs.iter().enumerate() {
        let o = o.ok_or(Failure::new("lost object", i as u64))?;
        // SAFETY: still live and 200 bytes long.
        let intact = unsafe { check(o, 200, i as u8) };
        ensure(intact, "cache object damaged", i as u64)?;
        heap.cache_free(id, o.as_ptr())
            .map_err(|_| Failure::new("cache_free failed", i as u64))?;
    }
    heap.cache_destroy(id)
        .map_err(|_| Failure::new("destroy of an idle cache failed", 0))?;
    ensure(
        heap.cache_by_name("selftest-obj").is_none(),
        "destroyed cache still found",
        0,
    )?;
    Ok(())
}

/// Live allocations kept by the stress test.
const LIVE: usize = 1200;
/// Free-and-reallocate operations of the stress test.
const OPS: usize = 12_000;

/// One live allocation of the stress test.
#[derive(Clone, Copy)]
struct Live {
    ptr: usize,
    size: u32,
    seed: u8,
}

/// 1,200 live allocations of random sizes, 12,000 random frees and
/// reallocations with pattern checks, validation every 3,000 operations.
/// The bookkeeping table itself is allocated from the heap under test.
pub(super) fn stress(heap: &mut Heap) -> TestResult {
    let table_bytes = LIVE * core::mem::size_of::<Live>();
    let table_ptr = alloc(heap, table_bytes, 16)?;
    // SAFETY: a fresh allocation of `LIVE` `Live` entries, 16-byte aligned;
    // zeroed entries (ptr == 0) mean "empty slot". Only this function uses it.
    let table = unsafe {
        core::ptr::write_bytes(table_ptr.as_ptr(), 0, table_bytes);
        core::slice::from_raw_parts_mut(table_ptr.as_ptr().cast::<Live>(), LIVE)
    };
    let result = stress_on(heap, table);
    // Free whatever is still live, even after a failure.
    for e in table.iter_mut().filter(|e| e.ptr != 0) {
        let _ = heap.free(e.ptr as *mut u8);
        e.ptr = 0;
    }
    free(heap, table_ptr)?;
    result
}

fn stress_on(heap: &mut Heap, table: &mut [Live]) -> TestResult {
    let mut rng = Rng::new(0x1c05_ca11_0c00_0001);
    let pick_size = |rng: &mut Rng| -> usize {
        match rng.next_u64() % 16 {
            0 => rng.range(4097, 16384),
            1..=3 => rng.range(513, 4096),
            _ => rng.range(1, 512),
        }
    };
    for (i, e) in table.iter_mut().enumerate() {
        let size = pick_size(&mut rng);
        let p = alloc(heap, size, 8)?;
        // SAFETY: live allocation of `size` bytes.
        unsafe { fill(p, size, i as u8) };
        *e = Live {
            ptr: p.as_ptr() as usize,
            size: size as u32,
            seed: i as u8,
        };
    }
    for op in 0..OPS {
        let i = rng.range(0, table.len() - 1);
        let e = table[i];
        let p = NonNull::new(e.ptr as *mut u8).ok_or(Failure::new("empty slot", i as u64))?;
        // SAFETY: `p` is live with `e.size` bytes of pattern.
        let intact = unsafe { check(p, e.size as usize, e.seed) };
        ensure(intact, "stress pattern damaged", op as u64)?;
        free(heap, p)?;
        let size = pick_size(&mut rng);
        let seed = (op as u8) ^ 0x5a;
        let q = alloc(heap, size, 8)?;
        // SAFETY: live allocation of `size` bytes.
        unsafe { fill(q, size, seed) };
        table[i] = Live {
            ptr: q.as_ptr() as usize,
            size: size as u32,
            seed,
        };
        if op % 3000 == 2999 {
            heap.validate()
                .map_err(|_| Failure::new("validate failed during stress", op as u64))?;
        }
    }
    let s = heap.stats();
    ensure(
        s.active_allocs >= table.len() as u64,
        "live allocations undercounted",
        s.active_allocs,
    )?;
    for (i, e) in table.iter_mut().enumerate() {
        let p = NonNull::new(e.ptr as *mut u8).ok_or(Failure::new("empty slot", i as u64))?;
        // SAFETY: `p` is live with `e.size` bytes of pattern.
        let intact = unsafe { check(p, e.size as usize, e.seed) };
        ensure(intact, "final pattern damaged", i as u64)?;
        free(heap, p)?;
        e.ptr = 0;
    }
    Ok(())
}
