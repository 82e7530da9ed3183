// SPDX-License-Identifier: GPL-2.0

//! Bodies of the coverage-guided fuzz targets in `src/fuzz/` (cargo-fuzz),
//! kept here so that the stable test `src/tests/fuzz_replay.rs` runs the
//! same code on the committed seeds and on pseudo-random inputs.
//!
//! Each turns an arbitrary byte string into a heap (64 KiB to 1 MiB, debug
//! flags from the input) and a sequence of operations on it, through the
//! locked [`Heap`] API and through a [`CpuCache`] as the module's fast path
//! uses it: allocations with every flag and alignment, frees through the
//! magazine, the large-block cache or the heap, realloc, custom caches,
//! shrink, validate, invalid frees, and, for [`heap_damage`], arbitrary
//! writes into the region (metadata, headers, slab descriptors, bitmaps,
//! the page map, free objects).
//!
//! What must hold, always: nothing panics (overflow checks are on in fuzz
//! builds), the heap never touches memory outside its region (the fuzzer's
//! AddressSanitizer sees the region as one heap allocation), and every
//! block it hands out lies inside the region. Without damage
//! ([`heap_ops`]) also: blocks are aligned and do not overlap, contents
//! survive until freed, invalid frees are refused, `validate` passes, and
//! freeing everything returns the heap to one free block.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::collections::BTreeMap;
use std::format;
use std::ptr::NonNull;
use std::vec::Vec;
use std::{assert, assert_eq, panic};

use crate::allocator::{
    config::MIN_SIZE, size_class_for, AllocError, CacheId, CpuCache, DebugFlags, FastFree,
    FastView, Flags, FreeError, Heap, HeldSums, ReallocError, Resize,
};

/// Fuzz target `heap_ops`: well-formed and invalid operations, with the
/// full set of checks.
pub fn heap_ops(data: &[u8]) {
    Driver::run(data, false);
}

/// Fuzz target `heap_damage`: operations interleaved with arbitrary writes
/// into the region; the heap must stay memory safe.
pub fn heap_damage(data: &[u8]) {
    Driver::run(data, true);
}

/// Reads the input as little-endian integers; zeros once it is used up.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) | u16::from(self.u8()) << 8
    }

    fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | u32::from(self.u16()) << 16
    }

    /// An index below `n` (0 if `n` is 0).
    fn index(&mut self, n: usize) -> usize {
        usize::from(self.u16()) % n.max(1)
    }

    /// A request size: mostly size classes, sometimes large blocks.
    fn size(&mut self) -> usize {
        let b = self.u8();
        let s = usize::from(self.u16());
        match b % 4 {
            0 => s % 64 + 1,
            1 => s % 4096 + 1,
            2 => s % 40_000 + 1,
            _ => s * 4 + 1,
        }
    }
}

/// A live allocation the driver owns.
#[derive(Clone, Copy)]
struct Live {
    len: usize,
    seed: u8,
    /// The custom cache it came from.
    cache: Option<CacheId>,
}

/// Most operations per input (the fuzzer's inputs are short anyway).
const MAX_OPS: usize = 2000;

struct Driver {
    heap: Heap,
    view: FastView,
    cpu: CpuCache,
    region: NonNull<u8>,
    layout: Layout,
    live: BTreeMap<usize, Live>,
    /// Freed addresses not handed out again (double-free candidates).
    freed: Vec<usize>,
    caches: Vec<CacheId>,
    damage: bool,
    damaged: bool,
    seed: u8,
}

impl Driver {
    fn run(data: &[u8], damage: bool) {
        let mut input = Input(data);
        let len = (usize::from(input.u8() % 16) + 1) * 64 * 1024;
        let flags = DebugFlags::from_bits_truncate(input.u8() & DebugFlags::ALL.bits());
        // Aligned to the largest alignment an operation asks for (8 KiB),
        // so that where an aligned block starts does not depend on where
        // the system allocator put the region: an input does the same
        // every time it runs.
        let Ok(layout) = Layout::from_size_align(len, 8192) else {
            return;
        };
        // SAFETY: non-zero size.
        let Some(region) = NonNull::new(unsafe { alloc_zeroed(layout) }) else {
            return;
        };
        // SAFETY: the region is freshly allocated and freed only in the
        // driver's `Drop`, after its last use of the heap and the view
        // (whose own drops do not touch the region).
        let heap = match unsafe { Heap::with_debug(region, len, flags) } {
            Ok(h) => h,
            Err(e) => panic!("heap of {len} bytes: {e:?}"),
        };
        // SAFETY: the view is used only while the driver owns the region.
        let view = unsafe { heap.fast_view() };
        let mut d = Driver {
            heap,
            view,
            cpu: CpuCache::new(),
            region,
            layout,
            live: BTreeMap::new(),
            freed: Vec::new(),
            caches: Vec::new(),
            damage,
            damaged: false,
            seed: 0,
        };
        for _ in 0..MAX_OPS {
            if input.0.is_empty() {
                break;
            }
            d.step(&mut input);
        }
        d.finish();
    }

    fn base(&self) -> usize {
        self.region.as_ptr() as usize
    }

    /// Panics unless `a..a + len` lies inside the region.
    fn check_in_region(&self, a: usize, len: usize) {
        let end = self.base() + self.layout.size();
        assert!(
            a >= self.base() && a.checked_add(len).is_some_and(|e| e <= end),
            "block {a:#x}+{len} outside the region {:#x}..{end:#x}",
            self.base()
        );
    }

    /// Checks a block the heap handed out and takes ownership of it.
    fn took(&mut self, p: NonNull<u8>, len: usize, align: usize, cache: Option<CacheId>) {
        let a = p.as_ptr() as usize;
        self.check_in_region(a, len);
        self.freed.retain(|&f| f != a);
        if self.damaged {
            // Blocks may overlap once the metadata is damaged; only keep
            // pointers (for frees), never write through them.
            self.live.insert(
                a,
                Live {
                    len: 0,
                    seed: 0,
                    cache,
                },
            );
            return;
        }
        assert_eq!(a % align, 0, "block {a:#x} not {align} aligned");
        if let Some((&b, l)) = self.live.range(..a.saturating_add(len)).next_back() {
            assert!(b + l.len <= a, "{a:#x}+{len} overlaps {b:#x}+{}", l.len);
        }
        self.seed = self.seed.wrapping_add(1);
        // SAFETY: the block is `len` bytes inside the region (checked) and
        // not part of any other live block (checked).
        unsafe { core::ptr::write_bytes(p.as_ptr(), self.seed, len) };
        self.live.insert(
            a,
            Live {
                len,
                seed: self.seed,
                cache,
            },
        );
    }

    /// Removes `a` from the live set, checking its contents.
    fn release(&mut self, a: usize) -> Option<Live> {
        let l = self.live.remove(&a)?;
        if !self.damaged && l.len > 0 {
            // SAFETY: the block was handed out with `len` bytes in the
            // region and is still owned by the driver.
            let s = unsafe { core::slice::from_raw_parts(a as *const u8, l.len) };
            assert!(
                s.iter().all(|&b| b == l.seed),
                "contents of {a:#x}+{} changed",
                l.len
            );
        }
        Some(l)
    }

    fn pick(&mut self, input: &mut Input<'_>) -> Option<usize> {
        let i = input.index(self.live.len());
        self.live.keys().nth(i).copied()
    }

    fn step(&mut self, input: &mut Input<'_>) {
        match input.u8() % 16 {
            0..=2 => self.alloc(input),
            3..=5 => self.free(input),
            6 => self.realloc(input),
            7 => self.cache_op(input),
            8 => self.invalid_free(input),
            9 => self.maintain(input),
            10 if self.damage => self.write_region(input),
            _ => self.fast_alloc(input),
        }
    }

    fn alloc(&mut self, input: &mut Input<'_>) {
        let size = input.size();
        let align = 1usize << (input.u8() % 14);
        let flags = Flags::from_bits_truncate(u32::from(input.u8()));
        if let Ok(p) = self.heap.alloc_flags(size, align, flags) {
            self.took(p, size, align.max(8), None);
        }
    }

    /// An allocation through the per-CPU cache, as the module's fast path
    /// does it: a magazine for a size class, else a parked large block,
    /// else the heap.
    fn fast_alloc(&mut self, input: &mut Input<'_>) {
        let size = input.size();
        let zero = input.u8() & 1 != 0;
        let (heap, cpu, view) = (&mut self.heap, &mut self.cpu, &self.view);
        let flags = if zero { Flags::ZERO } else { Flags::NONE };
        let p = match size_class_for(size, 8) {
            // A class with debug flags cannot refill (`BadCache`): the
            // module sends those to the locked path before trying.
            Some(c) => cpu
                .alloc_with(view, c, size, zero, |cc| heap.magazine_refill(cc, c))
                .or_else(|_| heap.alloc_flags(size, 8, flags))
                .ok(),
            None => cpu
                .alloc_large(view, size, 8, zero)
                .or_else(|| heap.alloc_flags(size, 8, flags).ok()),
        };
        if let Some(p) = p {
            if zero && !self.damaged {
                let a = p.as_ptr() as usize;
                self.check_in_region(a, size);
                // SAFETY: `size` bytes inside the region (checked), just
                // handed out.
                let s = unsafe { core::slice::from_raw_parts(p.as_ptr(), size) };
                assert!(s.iter().all(|&b| b == 0), "zeroed block {a:#x} is not zero");
            }
            self.took(p, size, 8, None);
        }
    }

    fn free(&mut self, input: &mut Input<'_>) {
        let Some(a) = self.pick(input) else {
            return;
        };
        let how = input.u8() % 3;
        let Some(l) = self.release(a) else {
            return;
        };
        self.freed.push(a);
        let ptr = a as *mut u8;
        let r = match (l.cache, how) {
            (Some(id), _) => self.heap.cache_free(id, ptr),
            (None, 0) => self.heap.free(ptr),
            (None, _) => self.fast_free(ptr),
        };
        assert!(
            r.is_ok() || self.damaged,
            "free of live {a:#x}+{} (path {how}, cache {:?}): {r:?}",
            l.len,
            l.cache
        );
    }

    /// Frees like the module's `ikos_kfree`: magazine, parked large block
    /// (making room in a full cache), then the heap.
    fn fast_free(&mut self, ptr: *mut u8) -> Result<(), FreeError> {
        let (heap, cpu, view) = (&mut self.heap, &mut self.cpu, &self.view);
        let r = cpu.free_with(view, ptr, |cc, class, keep| {
            let _ = heap.magazine_drain(cc, class, keep);
        });
        if r == FastFree::Done {
            return Ok(());
        }
        let r = cpu.free_large_with(view, ptr, |cc| {
            let _ = heap.large_cache_evict(cc);
        });
        if r == FastFree::Done {
            return Ok(());
        }
        heap.free(ptr)
    }

    fn realloc(&mut self, input: &mut Input<'_>) {
        let size = input.size();
        let Some(a) = self.pick(input) else {
            return;
        };
        if self.live.get(&a).is_some_and(|l| l.cache.is_some()) {
            return;
        }
        let Some(l) = self.release(a) else {
            return;
        };
        // Odd sizes take the kernel's steps (`Kalloc::realloc`), even ones
        // `Heap::realloc`; no input byte is spent on the choice, so the
        // committed seeds keep their meaning.
        let r = if size % 2 == 1 {
            self.realloc_in_steps(a, size, input)
        } else {
            self.heap.realloc(a as *mut u8, size)
        };
        match r {
            Ok(p) => {
                if !self.damaged {
                    let keep = l.len.min(size);
                    self.check_in_region(p.as_ptr() as usize, keep);
                    // SAFETY: `keep` bytes of the new block, inside the
                    // region (checked).
                    let s = unsafe { core::slice::from_raw_parts(p.as_ptr(), keep) };
                    assert!(
                        s.iter().all(|&b| b == l.seed),
                        "realloc lost the contents of {a:#x}"
                    );
                }
                if p.as_ptr() as usize != a {
                    self.freed.push(a);
                }
                self.took(p, size, 8, None);
            }
            Err(_) => {
                // Refused (out of memory): the old block stays live.
                self.live.insert(a, l);
            }
        }
    }

    /// Resizes `a` as the kernel's `Kalloc::realloc` does, with the data
    /// moves made between the heap's calls (where the kernel drops the
    /// lock): `resize_start`, then the move down and `resize_finish`, or a
    /// new block from `alloc_moved_retryable` (`alloc_flags` when that runs
    /// out), the copy and the free. While the payload moves down, what
    /// another CPU may do meanwhile: a `validate`, and an allocation or a
    /// free chosen by the input.
    fn realloc_in_steps(
        &mut self,
        a: usize,
        size: usize,
        input: &mut Input<'_>,
    ) -> Result<NonNull<u8>, ReallocError> {
        match self.heap.resize_start(a as *mut u8, size)? {
            Resize::Done(p) => Ok(p),
            Resize::MoveDown(m) => {
                assert_eq!(m.src() as usize, a, "a move down starts at the old pointer");
                self.check_in_region(m.dst().as_ptr() as usize, m.count());
                self.check_in_region(a, m.count());
                // Consistent while the payload waits to be moved (as a
                // `validate` on another CPU would find it).
                self.validate();
                // SAFETY: both ranges are inside the region (checked) and
                // inside the block the heap merged for this resize.
                unsafe { core::ptr::copy(m.src(), m.dst().as_ptr(), m.count()) };
                let dst = m.dst();
                // Live again (not a double-free candidate) before the other
                // "CPU" runs: an allocation that overlapped it would change
                // its contents, which its release checks.
                self.freed.retain(|&f| f != dst.as_ptr() as usize);
                match input.u8() % 3 {
                    0 => self.alloc(input),
                    1 => self.free(input),
                    _ => {}
                }
                let r = self.heap.resize_finish(m);
                assert!(r.is_ok() || self.damaged, "resize_finish: {r:?}");
                Ok(dst)
            }
            Resize::Move { usable } => {
                let new = match self.heap.alloc_moved_retryable(size) {
                    Err(AllocError::OutOfMemory) => {
                        self.heap.alloc_flags(size, MIN_SIZE, Flags::NONE)
                    }
                    r => r,
                }
                .map_err(ReallocError::Alloc)?;
                let keep = usable.min(size);
                self.check_in_region(a, keep);
                self.check_in_region(new.as_ptr() as usize, keep);
                // SAFETY: two live blocks inside the region (checked),
                // which do not overlap unless the heap is damaged, when
                // `copy` is still defined.
                unsafe { core::ptr::copy(a as *const u8, new.as_ptr(), keep) };
                let r = self.heap.free(a as *mut u8);
                assert!(r.is_ok() || self.damaged, "free after the copy: {r:?}");
                Ok(new)
            }
        }
    }

    fn cache_op(&mut self, input: &mut Input<'_>) {
        let op = input.u8() % 4;
        let ci = input.index(self.caches.len());
        match (op, self.caches.get(ci).copied()) {
            (0, _) => {
                let size = usize::from(input.u16()) % 4200 + 1;
                let align = 1usize << (input.u8() % 13);
                let name = format!("fz{}", self.caches.len());
                if let Ok(id) = self.heap.cache_create(&name, size, align) {
                    self.caches.push(id);
                }
            }
            (1 | 2, Some(id)) => {
                let zero = op == 2;
                let r = if zero {
                    self.heap.cache_zalloc(id)
                } else {
                    self.heap.cache_alloc(id)
                };
                if let (Ok(p), Some(info)) = (r, self.heap.cache_info(id.index())) {
                    // The object's bytes are its usable size, which the
                    // heap bounds by its slab; the descriptor's object size
                    // is only metadata, which a damaged heap may report
                    // as anything.
                    let usable = self.heap.usable_size(p.as_ptr());
                    let len = if self.damaged {
                        usable.unwrap_or(0)
                    } else {
                        assert!(
                            usable.is_some_and(|u| u >= info.object_size),
                            "cache object {p:?}: usable {usable:?} below {}",
                            info.object_size
                        );
                        info.object_size
                    };
                    self.took(p, len, info.align.max(8), Some(id));
                }
            }
            (3, Some(id)) if self.heap.cache_destroy(id).is_ok() => {
                self.caches.swap_remove(ci);
                assert!(
                    self.damaged || !self.live.values().any(|l| l.cache == Some(id)),
                    "destroyed a cache with live objects"
                );
            }
            _ => {}
        }
    }

    /// Frees that must be refused: interior pointers, double frees,
    /// pointers outside the region, a live object to the wrong cache.
    fn invalid_free(&mut self, input: &mut Input<'_>) {
        let kind = input.u8() % 4;
        let delta = usize::from(input.u8() % 63) + 1;
        let ptr = match kind {
            0 => match self.pick(input) {
                Some(a) => a + delta,
                None => return,
            },
            1 => match self.freed.get(input.index(self.freed.len())) {
                Some(&a) => a,
                None => return,
            },
            2 => self.base() + self.layout.size() + delta * 16,
            _ => {
                let (Some(a), Some(&id)) = (
                    self.pick(input),
                    self.caches.get(input.index(self.caches.len())),
                ) else {
                    return;
                };
                if self.live.get(&a).is_some_and(|l| l.cache == Some(id)) {
                    return;
                }
                let r = self.heap.cache_free(id, a as *mut u8);
                assert!(
                    r.is_err() || self.damaged,
                    "wrong-cache free of {a:#x} accepted"
                );
                return;
            }
        };
        // An interior pointer may be the start of another live block.
        if self.live.contains_key(&ptr) {
            return;
        }
        let ok = if input.u8() & 1 == 0 {
            self.heap.free(ptr as *mut u8).is_ok()
        } else {
            self.fast_free(ptr as *mut u8).is_ok()
        };
        assert!(
            !ok || self.damaged,
            "invalid free of {ptr:#x} (kind {kind}) accepted"
        );
    }

    /// As the module's `validate` does: fold the per-CPU counters in,
    /// return the parked large blocks, check the magazine entries, then
    /// walk the heap.
    fn validate(&mut self) {
        self.heap.magazine_absorb(&mut self.cpu);
        let r = self.heap.large_cache_flush(&mut self.cpu);
        assert!(r.is_ok() || self.damaged, "large cache flush: {r:?}");
        let r = self.heap.magazine_check(&self.cpu);
        assert!(r.is_ok() || self.damaged, "magazine check: {r:?}");
        let mut sums = HeldSums::default();
        self.heap.add_magazine_sums(&self.cpu, &mut sums);
        let r = self.heap.validate_with(&sums);
        assert!(r.is_ok() || self.damaged, "validate: {r:?}");
    }

    fn maintain(&mut self, input: &mut Input<'_>) {
        match input.u8() % 6 {
            0 => self.validate(),
            1 => {
                let _ = self.heap.shrink();
            }
            2 => {
                self.heap.magazine_absorb(&mut self.cpu);
                let s = self.heap.stats();
                assert!(
                    self.damaged || s.active_allocs == self.live.len() as u64,
                    "active_allocs {} for {} live",
                    s.active_allocs,
                    self.live.len()
                );
            }
            3 => {
                let r = self.heap.magazine_flush(&mut self.cpu);
                assert!(r.is_ok() || self.damaged, "magazine flush: {r:?}");
                let r = self.heap.large_cache_flush(&mut self.cpu);
                assert!(r.is_ok() || self.damaged, "large cache flush: {r:?}");
            }
            4 => {
                if let Some(a) = self.pick(input) {
                    let valid = self.heap.is_valid_pointer(a as *const u8);
                    let usable = self.heap.usable_size(a as *const u8);
                    let len = self.live.get(&a).map_or(0, |l| l.len);
                    assert!(self.damaged || valid && usable.is_some_and(|u| u >= len));
                }
            }
            _ => {
                let _ = self.heap.check_corruption();
            }
        }
    }

    /// Overwrites up to 8 bytes of the region: in the metadata area, near a
    /// live block's start, or anywhere.
    fn write_region(&mut self, input: &mut Input<'_>) {
        let len = self.layout.size();
        let off = match input.u8() % 3 {
            0 => input.u32() as usize % self.heap.metadata_bytes().max(1),
            1 => match self.pick(input) {
                Some(a) => (a - self.base())
                    .wrapping_sub(32)
                    .wrapping_add(usize::from(input.u8() % 64)),
                None => return,
            },
            _ => input.u32() as usize,
        } % (len - 8);
        let bytes = input.u32().to_le_bytes();
        let n = usize::from(input.u8() % 4) + 1;
        // SAFETY: `off + n <= len - 4`: inside the region the driver owns;
        // nothing holds a reference into it across this call.
        unsafe {
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.region.as_ptr().add(off), n);
        }
        self.damaged = true;
    }

    /// Frees everything and checks that the heap is whole again.
    fn finish(mut self) {
        let mag = self.heap.magazine_flush(&mut self.cpu);
        let large = self.heap.large_cache_flush(&mut self.cpu);
        let live: Vec<usize> = self.live.keys().copied().collect();
        for a in live {
            if let Some(l) = self.release(a) {
                let r = match l.cache {
                    Some(id) => self.heap.cache_free(id, a as *mut u8).is_ok(),
                    None => self.heap.free(a as *mut u8).is_ok(),
                };
                assert!(r || self.damaged, "final free of {a:#x} refused");
            }
        }
        for id in std::mem::take(&mut self.caches) {
            let r = self.heap.cache_destroy(id);
            assert!(
                r.is_ok() || self.damaged,
                "destroy of an empty cache: {r:?}"
            );
        }
        let shrunk = self.heap.shrink();
        let valid = self.heap.validate();
        if self.damaged {
            return;
        }
        assert!(
            mag.is_ok() && large.is_ok() && shrunk.is_ok(),
            "flush/shrink: {mag:?} {large:?} {shrunk:?}"
        );
        assert!(valid.is_ok(), "validate at the end: {valid:?}");
        let s = self.heap.stats();
        assert_eq!(s.active_allocs, 0, "allocations left");
        assert_eq!(
            s.largest_free_block, s.initial_largest_free_block,
            "the heap is not one free block again"
        );
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // SAFETY: allocated in `run` with this layout; the heap and the
        // view are plain structs whose drops do not touch the region.
        unsafe { dealloc(self.region.as_ptr(), self.layout) }
    }
}
