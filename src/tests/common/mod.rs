// SPDX-License-Identifier: GPL-2.0

//! Helpers shared by the host test binaries: an owned page-aligned region
//! with a heap on it, byte patterns and a small deterministic PRNG.

#![allow(dead_code)]

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use ikos_kalloc::allocator::{
    size_class_for, AllocError, CorruptionKind, CpuCache, DebugFlags, FastFree, FastView, Flags,
    FreeError, Heap, Stats,
};
use proptest::test_runner::TestCaseError;

/// Page size used for test regions.
pub(crate) const PAGE: usize = 4096;

/// Offsets from a slab span of its descriptor's fields (the descriptor,
/// twelve `u32`, follows the 16-byte block header): the layout the tests
/// that damage one field poke.
pub(crate) mod slab_desc {
    pub(crate) const MAGIC: usize = 16;
    pub(crate) const CACHE: usize = 20;
    pub(crate) const NEXT: usize = 24;
    pub(crate) const PREV: usize = 28;
    pub(crate) const FREE_HEAD: usize = 32;
    pub(crate) const INUSE: usize = 36;
    pub(crate) const CAPACITY: usize = 40;
    pub(crate) const BUMP: usize = 44;
    pub(crate) const OBJ_START: usize = 48;
    pub(crate) const STRIDE: usize = 52;
    pub(crate) const STATE: usize = 56;
    pub(crate) const WORDS: usize = 60;
}

/// Offsets from `Heap::cache_desc_offset(i)` of a cache descriptor's
/// fields (`u32` from offset 32 on; the name comes first).
pub(crate) mod cache_desc {
    pub(crate) const OBJECT_SIZE: usize = 44;
    pub(crate) const ALIGN: usize = 48;
    pub(crate) const STRIDE: usize = 52;
    pub(crate) const CAPACITY: usize = 56;
    pub(crate) const SPAN_SIZE: usize = 60;
    /// The heads of the empty, partial and full slab lists.
    pub(crate) const HEAD_EMPTY: usize = 64;
    pub(crate) const HEAD_PARTIAL: usize = 68;
    pub(crate) const HEAD_FULL: usize = 72;
    /// The lengths of those lists.
    pub(crate) const COUNT_EMPTY: usize = 76;
    pub(crate) const COUNT_PARTIAL: usize = 80;
    pub(crate) const COUNT_FULL: usize = 84;
    pub(crate) const ACTIVE_OBJS: usize = 88;
    pub(crate) const TOTAL_OBJS: usize = 92;
}

/// A heap together with the region it manages; frees the region on drop.
pub(crate) struct TestHeap {
    heap: Option<Heap>,
    region: NonNull<u8>,
    layout: Layout,
}

impl TestHeap {
    /// Creates a heap over a fresh region of `len` bytes (64 KiB aligned so
    /// that alignment tests do not depend on luck).
    pub(crate) fn new(len: usize) -> Self {
        Self::with_debug(len, DebugFlags::NONE)
    }

    /// Like [`TestHeap::new`] with debug `flags` (`Heap::with_debug`).
    pub(crate) fn with_debug(len: usize, flags: DebugFlags) -> Self {
        let layout = Layout::from_size_align(len, 64 * 1024).unwrap();
        // SAFETY: non-zero size.
        let region = NonNull::new(unsafe { alloc_zeroed(layout) }).expect("region");
        let heap = if flags.is_empty() {
            // SAFETY: the region is freshly allocated and owned by this
            // struct, which outlives the heap (dropped first in `Drop`).
            unsafe { Heap::new(region, len) }
        } else {
            // SAFETY: as above.
            unsafe { Heap::with_debug(region, len, flags) }
        }
        .expect("heap init");
        TestHeap {
            heap: Some(heap),
            region,
            layout,
        }
    }

    /// Region base.
    pub(crate) fn region(&self) -> NonNull<u8> {
        self.region
    }

    /// Offset of `p` in the region.
    pub(crate) fn off(&self, p: NonNull<u8>) -> usize {
        p.as_ptr() as usize - self.region.as_ptr() as usize
    }

    /// Writes a raw u32 into the region (corruption tests).
    pub(crate) fn poke32(&mut self, off: usize, v: u32) {
        assert!(off + 4 <= self.layout.size());
        // SAFETY: in bounds of the owned region.
        unsafe {
            self.region
                .as_ptr()
                .add(off)
                .cast::<u32>()
                .write_unaligned(v)
        }
    }

    /// Writes `len` bytes `byte` at region offset `off` (a buggy user).
    pub(crate) fn poke(&mut self, off: usize, len: usize, byte: u8) {
        assert!(off + len <= self.layout.size());
        // SAFETY: in bounds of the owned region.
        unsafe { self.region.as_ptr().add(off).write_bytes(byte, len) }
    }

    /// Reads one byte of the region.
    pub(crate) fn peek(&self, off: usize) -> u8 {
        assert!(off < self.layout.size());
        // SAFETY: in bounds of the owned region.
        unsafe { self.region.as_ptr().add(off).read() }
    }

    /// Reads a raw u32 from the region.
    pub(crate) fn peek32(&self, off: usize) -> u32 {
        assert!(off + 4 <= self.layout.size());
        // SAFETY: in bounds of the owned region.
        unsafe { self.region.as_ptr().add(off).cast::<u32>().read_unaligned() }
    }
}

impl Deref for TestHeap {
    type Target = Heap;
    fn deref(&self) -> &Heap {
        self.heap.as_ref().unwrap()
    }
}

impl DerefMut for TestHeap {
    fn deref_mut(&mut self) -> &mut Heap {
        self.heap.as_mut().unwrap()
    }
}

impl Drop for TestHeap {
    fn drop(&mut self) {
        self.heap = None;
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.region.as_ptr(), self.layout) }
    }
}

/// Fills `len` bytes at `p` with a pattern derived from `seed`.
pub(crate) fn fill(p: NonNull<u8>, len: usize, seed: u8) {
    for i in 0..len {
        // SAFETY: the caller owns `len` bytes at `p`.
        unsafe { p.as_ptr().add(i).write(seed.wrapping_add((i % 251) as u8)) }
    }
}

/// Checks the pattern written by [`fill`].
pub(crate) fn check(p: NonNull<u8>, len: usize, seed: u8) -> bool {
    (0..len).all(|i| {
        // SAFETY: the caller owns `len` bytes at `p`.
        unsafe { p.as_ptr().add(i).read() == seed.wrapping_add((i % 251) as u8) }
    })
}

/// The fast-path view of `h` (as the kernel glue takes it).
pub(crate) fn view(h: &Heap) -> FastView {
    // SAFETY: every test drops the view before the heap.
    unsafe { h.fast_view() }
}

/// The damage an allocation of `size` bytes (alignment 8, no flags) must
/// fail with, as (kind, offset, detail); panics if it does not fail so.
pub(crate) fn alloc_corruption(h: &mut Heap, size: usize) -> (CorruptionKind, usize, u64) {
    match h.alloc_flags(size, 8, Flags::NONE) {
        Err(AllocError::Corrupted(c)) => (c.kind, c.offset, c.detail),
        r => panic!("{r:?}"),
    }
}

/// Fast-path allocation with refill, as the kernel glue does it.
pub(crate) fn fast_alloc(
    h: &mut Heap,
    v: &FastView,
    cpu: &mut CpuCache,
    size: usize,
) -> NonNull<u8> {
    let class = size_class_for(size, 8).expect("class size");
    cpu.alloc_with(v, class, size, false, |cpu| h.magazine_refill(cpu, class))
        .expect("fast alloc")
}

/// Fast-path free with drain; falls back to the locked free like the glue.
pub(crate) fn fast_free(
    h: &mut Heap,
    v: &FastView,
    cpu: &mut CpuCache,
    p: *mut u8,
) -> Result<(), FreeError> {
    match cpu.free_with(v, p, |cpu, class, keep| {
        h.magazine_drain(cpu, class, keep).expect("drain");
    }) {
        FastFree::Done => Ok(()),
        _ => h.free(p),
    }
}

/// End of a per-CPU model test: checks and frees every live allocation
/// (key -> pointer, size, fill seed), flushes every cache, and checks that
/// the heap is back to its initial state.
pub(crate) fn release_model(
    h: &mut Heap,
    live: &BTreeMap<usize, (NonNull<u8>, usize, u8)>,
    cpus: &mut [CpuCache],
) -> Result<(), TestCaseError> {
    for (p, size, tag) in live.values() {
        proptest::prop_assert!(check(*p, *size, *tag));
        h.free(p.as_ptr()).unwrap();
    }
    for c in cpus.iter_mut() {
        h.magazine_flush(c).unwrap();
    }
    let s = h.stats();
    proptest::prop_assert_eq!(s.active_allocs, 0);
    proptest::prop_assert_eq!(s.largest_free_block, s.initial_largest_free_block);
    Ok(())
}

/// Asserts the exact byte partition of the heap.
pub(crate) fn assert_partition(s: &Stats) {
    assert_eq!(
        s.used_bytes + s.free_bytes + s.overhead_bytes,
        s.heap_size,
        "{s:?}"
    );
}

// Not every test binary that includes this module draws random numbers.
#[allow(unused_imports)]
pub(crate) use ikos_kalloc::selftest::Rng;
