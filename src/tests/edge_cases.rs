// SPDX-License-Identifier: GPL-2.0

//! Edge cases: zero size, null/invalid/double free, interior pointers,
//! wrong and destroyed caches, overflowing sizes, DMA, out of memory.
//! Every error must leave the heap unchanged (validate passes, only the
//! matching error counter moves) and have a distinct value.

mod common;

use common::{check, fill, TestHeap};
use ikos_kalloc::allocator::{AllocError, Flags, FreeError, ReallocError, Resize, Stats};

/// Stats with the error counters cleared, to compare "heap unchanged".
fn core_of(s: &Stats) -> Stats {
    Stats {
        failed_allocs: 0,
        double_frees: 0,
        invalid_frees: 0,
        wrong_cache_frees: 0,
        dma_refusals: 0,
        ..*s
    }
}

struct Fixture {
    h: TestHeap,
    small: std::ptr::NonNull<u8>,
    large: std::ptr::NonNull<u8>,
}

fn fixture() -> Fixture {
    let mut h = TestHeap::new(1 << 20);
    let small = h.alloc(64).unwrap();
    let large = h.alloc(20_000).unwrap();
    fill(small, 64, 1);
    fill(large, 20_000, 2);
    Fixture { h, small, large }
}

/// Runs `op`, checks that it failed without changing the heap.
fn unchanged<T: std::fmt::Debug>(f: &mut Fixture, op: impl FnOnce(&mut TestHeap) -> T) -> T {
    let before = core_of(&f.h.stats());
    let r = op(&mut f.h);
    f.h.validate().unwrap();
    assert_eq!(core_of(&f.h.stats()), before, "{r:?}");
    assert!(check(f.small, 64, 1));
    assert!(check(f.large, 20_000, 2));
    r
}

#[test]
fn zero_size() {
    let mut f = fixture();
    let r = unchanged(&mut f, |h| h.alloc_flags(0, 8, Flags::NONE));
    assert_eq!(r, Err(AllocError::ZeroSize));
    assert!(unchanged(&mut f, |h| h.alloc(0)).is_none());
    assert_eq!(f.h.stats().failed_allocs, 2);
}

#[test]
fn null_free_is_noop() {
    let mut f = fixture();
    let r = unchanged(&mut f, |h| h.free(std::ptr::null_mut()));
    assert_eq!(r, Ok(()));
    assert_eq!(f.h.stats().invalid_frees, 0);
    assert_eq!(f.h.stats().total_frees, 0);
}

#[test]
fn outside_heap() {
    let mut f = fixture();
    let mut local = 0u8;
    let p: *mut u8 = &mut local;
    assert_eq!(
        unchanged(&mut f, |h| h.free(p)),
        Err(FreeError::OutsideHeap)
    );
    let meta = f.h.region().as_ptr();
    assert_eq!(
        unchanged(&mut f, |h| h.free(meta)),
        Err(FreeError::OutsideHeap)
    );
    assert!(!f.h.is_valid_pointer(p));
    assert_eq!(f.h.stats().invalid_frees, 2);
}

#[test]
fn interior_pointers() {
    let mut f = fixture();
    // SAFETY: pointers stay inside the allocations.
    let (mid_s, mid_l) = unsafe { (f.small.as_ptr().add(8), f.large.as_ptr().add(4096)) };
    assert_eq!(
        unchanged(&mut f, |h| h.free(mid_s)),
        Err(FreeError::Interior)
    );
    assert_eq!(
        unchanged(&mut f, |h| h.free(mid_l)),
        Err(FreeError::NotAllocated)
    );
    assert!(!f.h.is_valid_pointer(mid_s));
    assert_eq!(f.h.usable_size(mid_l), None);
    assert_eq!(f.h.stats().invalid_frees, 2);
}

#[test]
fn double_free_slab_and_large() {
    let mut f = fixture();
    let a = f.h.alloc(64).unwrap();
    let b = f.h.alloc(30_000).unwrap();
    let c = f.h.alloc(30_000).unwrap();
    let d = f.h.alloc(30_000).unwrap();
    f.h.free(a.as_ptr()).unwrap();
    f.h.free(b.as_ptr()).unwrap();
    f.h.free(c.as_ptr()).unwrap(); // merges with b (prev)
    f.h.free(d.as_ptr()).unwrap(); // merges with prev and next
    for p in [a, b, c, d] {
        assert_eq!(
            unchanged(&mut f, |h| h.free(p.as_ptr())),
            Err(FreeError::DoubleFree)
        );
    }
    assert_eq!(f.h.stats().double_frees, 4);
}

#[test]
fn wrong_and_destroyed_cache() {
    let mut f = fixture();
    let c1 = f.h.cache_create("c1", 64, 8).unwrap();
    let c2 = f.h.cache_create("c2", 64, 8).unwrap();
    let o = f.h.cache_alloc(c1).unwrap();
    assert_eq!(
        unchanged(&mut f, |h| h.cache_free(c2, o.as_ptr())),
        Err(FreeError::WrongCache)
    );
    let large = f.large;
    assert_eq!(
        unchanged(&mut f, |h| h.cache_free(c2, large.as_ptr())),
        Err(FreeError::WrongCache)
    );
    let small = f.small;
    let k64 = f.h.size_class(3).unwrap();
    assert_eq!(
        unchanged(&mut f, |h| h.cache_free(c1, small.as_ptr())),
        Err(FreeError::WrongCache)
    );
    assert_eq!(f.h.stats().wrong_cache_frees, 3);
    f.h.cache_free(c1, o.as_ptr()).unwrap();
    f.h.cache_destroy(c2).unwrap();
    assert_eq!(
        unchanged(&mut f, |h| h.cache_free(c2, o.as_ptr())),
        Err(FreeError::DestroyedCache)
    );
    assert_eq!(
        unchanged(&mut f, |h| h.cache_alloc(c2)),
        Err(AllocError::BadCache)
    );
    // Freeing a size-class object through its size-class id works.
    f.h.cache_free(k64, small.as_ptr()).unwrap();
}

#[test]
fn overflowing_sizes_and_bad_align() {
    let mut f = fixture();
    for (size, align) in [
        (usize::MAX, 8),
        (usize::MAX - 15, 8),
        (usize::MAX - 4096, 4096),
        (usize::MAX - (1 << 20), 1 << 20),
    ] {
        assert_eq!(
            unchanged(&mut f, |h| h.alloc_flags(size, align, Flags::NONE)),
            Err(AllocError::SizeOverflow),
            "{size:#x} {align}"
        );
    }
    for align in [0, 3, 24, 1 << 21] {
        assert_eq!(
            unchanged(&mut f, |h| h.alloc_flags(10, align, Flags::NONE)),
            Err(AllocError::BadAlign)
        );
    }
}

#[test]
fn dma_refused_high_and_atomic_accepted() {
    let mut f = fixture();
    assert_eq!(
        unchanged(&mut f, |h| h.alloc_flags(100, 8, Flags::DMA)),
        Err(AllocError::DmaUnsupported)
    );
    assert_eq!(f.h.stats().dma_refusals, 1);
    let p =
        f.h.alloc_flags(100, 8, Flags::HIGH | Flags::ATOMIC)
            .unwrap();
    f.h.free(p.as_ptr()).unwrap();
}

#[test]
fn out_of_memory_leaves_heap_intact() {
    let mut f = fixture();
    assert_eq!(
        unchanged(&mut f, |h| h.alloc_flags(2 << 20, 8, Flags::NONE)),
        Err(AllocError::OutOfMemory)
    );
    // Fill the heap completely with 4 KiB objects and large blocks.
    let mut v = Vec::new();
    while let Some(p) = f.h.alloc(50_000) {
        v.push(p);
    }
    while let Some(p) = f.h.alloc(4096) {
        v.push(p);
    }
    while let Some(p) = f.h.alloc(8) {
        v.push(p);
    }
    assert!(unchanged(&mut f, |h| h.alloc(8)).is_none());
    assert!(unchanged(&mut f, |h| h.alloc(100_000)).is_none());
    let small = f.small;
    let r = unchanged(&mut f, |h| h.realloc(small.as_ptr(), 100_000));
    assert!(matches!(
        r,
        Err(ReallocError::Alloc(AllocError::OutOfMemory))
    ));
    for p in v {
        f.h.free(p.as_ptr()).unwrap();
    }
    f.h.validate().unwrap();
    assert!(f.h.stats().failed_allocs >= 4);
}

#[test]
fn realloc_errors_leave_old_block() {
    let mut f = fixture();
    let small = f.small;
    // SAFETY: stays in the allocation.
    let mid = unsafe { small.as_ptr().add(4) };
    let r = unchanged(&mut f, |h| h.realloc(mid, 10));
    assert_eq!(r, Err(ReallocError::Free(FreeError::Interior)));
    let r = unchanged(&mut f, |h| h.realloc(small.as_ptr(), 0));
    assert_eq!(r, Err(ReallocError::Alloc(AllocError::ZeroSize)));
    let r = unchanged(&mut f, |h| h.realloc(small.as_ptr(), usize::MAX));
    assert_eq!(r, Err(ReallocError::Alloc(AllocError::SizeOverflow)));
}

#[test]
fn error_messages_are_one_line() {
    let all_free = [
        FreeError::OutsideHeap,
        FreeError::NotAllocated,
        FreeError::Interior,
        FreeError::DoubleFree,
        FreeError::WrongCache,
        FreeError::DestroyedCache,
    ];
    let all_alloc = [
        AllocError::ZeroSize,
        AllocError::SizeOverflow,
        AllocError::BadAlign,
        AllocError::DmaUnsupported,
        AllocError::OutOfMemory,
        AllocError::BadCache,
    ];
    let mut seen = std::collections::HashSet::new();
    for m in all_free
        .iter()
        .map(|e| e.to_string())
        .chain(all_alloc.iter().map(|e| e.to_string()))
    {
        assert!(!m.contains('\n') && !m.is_empty());
        assert!(seen.insert(m), "messages are distinct");
    }
    // A realloc's error says which half failed.
    for (e, inner) in [
        (
            ReallocError::Free(FreeError::DoubleFree),
            FreeError::DoubleFree.to_string(),
        ),
        (
            ReallocError::Alloc(AllocError::OutOfMemory),
            AllocError::OutOfMemory.to_string(),
        ),
    ] {
        assert_eq!(e.to_string(), format!("realloc: {inner}"));
    }
}

#[test]
fn cache_errors_leave_heap_unchanged() {
    use ikos_kalloc::allocator::CacheError;
    let mut f = fixture();
    let id = f.h.cache_create("dup", 32, 8).unwrap();
    let o = f.h.cache_alloc(id).unwrap();
    let cases: [(&str, usize, usize, CacheError); 6] = [
        ("dup", 32, 8, CacheError::NameExists),
        ("", 32, 8, CacheError::InvalidName),
        ("has space", 32, 8, CacheError::InvalidName),
        ("x", 0, 8, CacheError::InvalidSize),
        ("x", 4097, 8, CacheError::InvalidSize),
        ("x", 32, 8192, CacheError::BadAlign),
    ];
    for (name, size, align, want) in cases {
        assert_eq!(
            unchanged(&mut f, |h| h.cache_create(name, size, align)),
            Err(want)
        );
    }
    assert_eq!(
        unchanged(&mut f, |h| h.cache_destroy(id)),
        Err(CacheError::Busy)
    );
    let k8 = f.h.size_class(0).unwrap();
    assert_eq!(
        unchanged(&mut f, |h| h.cache_destroy(k8)),
        Err(CacheError::BuiltIn)
    );
    f.h.cache_free(id, o.as_ptr()).unwrap();
    f.h.cache_destroy(id).unwrap();
    assert_eq!(
        unchanged(&mut f, |h| h.cache_destroy(id)),
        Err(CacheError::NoSuchCache)
    );
    for e in [
        CacheError::NameExists,
        CacheError::InvalidName,
        CacheError::InvalidSize,
        CacheError::BadAlign,
        CacheError::TooMany,
        CacheError::Busy,
        CacheError::NoSuchCache,
        CacheError::BuiltIn,
    ] {
        assert!(!e.to_string().is_empty() && !e.to_string().contains('\n'));
    }
}

#[test]
fn retryable_allocation_leaves_out_of_memory_uncounted() {
    // What the kernel glue calls first: out of memory is returned without
    // being counted, the glue takes back the per-CPU caches and retries
    // with `alloc_flags`, which counts it. Other errors count at once.
    let mut f = fixture();
    assert_eq!(
        unchanged(&mut f, |h| h.alloc_flags_retryable(2 << 20, 8, Flags::NONE)),
        Err(AllocError::OutOfMemory)
    );
    assert_eq!(f.h.stats().failed_allocs, 0);
    assert_eq!(
        unchanged(&mut f, |h| h.alloc_flags_retryable(0, 8, Flags::NONE)),
        Err(AllocError::ZeroSize)
    );
    assert_eq!(f.h.stats().failed_allocs, 1);
    let p = f.h.alloc_flags_retryable(100, 8, Flags::ZERO).unwrap();
    // SAFETY: 100 bytes were just allocated at `p`.
    let bytes = unsafe { std::slice::from_raw_parts(p.as_ptr(), 100) };
    assert!(bytes.iter().all(|&b| b == 0));
    assert_eq!(f.h.stats().total_allocs, 3);
    f.h.free(p.as_ptr()).unwrap();
}

/// `op` (a resize that moves no data itself) refuses and counts what
/// `realloc` refuses: an interior pointer, null, size 0; nothing changes.
fn refuses_what_realloc_refuses<T: std::fmt::Debug + PartialEq>(
    f: &mut Fixture,
    op: impl Fn(&mut TestHeap, *mut u8, usize) -> Result<T, ReallocError>,
) {
    let small = f.small;
    // SAFETY: stays in the allocation.
    let mid = unsafe { small.as_ptr().add(4) };
    let r = unchanged(f, |h| op(h, mid, 10));
    assert_eq!(r, Err(ReallocError::Free(FreeError::Interior)));
    let r = unchanged(f, |h| op(h, std::ptr::null_mut(), 10));
    assert_eq!(r, Err(ReallocError::Free(FreeError::OutsideHeap)));
    let r = unchanged(f, |h| op(h, small.as_ptr(), 0));
    assert_eq!(r, Err(ReallocError::Alloc(AllocError::ZeroSize)));
    let s = f.h.stats();
    assert_eq!((s.invalid_frees, s.failed_allocs), (2, 1));
}

/// `resize_start` refuses and counts what `realloc` and `resize_in_place`
/// refuse; in place it is `Done`, a move it leaves to the caller (a slab
/// object, which is never moved down) is `Move` with the usable size,
/// nothing changed.
#[test]
fn resize_start_refuses_what_realloc_refuses() {
    let mut f = fixture();
    refuses_what_realloc_refuses(&mut f, |h, p, n| h.resize_start(p, n));
    let small = f.small;
    let r = unchanged(&mut f, |h| h.resize_start(small.as_ptr(), 100_000));
    assert_eq!(r, Ok(Resize::Move { usable: 64 }));
    assert_eq!(
        f.h.resize_start(small.as_ptr(), 64),
        Ok(Resize::Done(small))
    );
}

#[test]
fn resize_in_place_refuses_what_realloc_refuses() {
    let mut f = fixture();
    refuses_what_realloc_refuses(&mut f, |h, p, n| h.resize_in_place(p, n));
    let small = f.small;
    // A move it leaves to the caller, with nothing changed.
    let r = unchanged(&mut f, |h| h.resize_in_place(small.as_ptr(), 100));
    assert_eq!(r, Ok(None));
    assert_eq!(f.h.resize_in_place(small.as_ptr(), 64), Ok(Some(small)));
}
