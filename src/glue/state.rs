// SPDX-License-Identifier: GPL-2.0

//! The module's state: the heap behind an IRQ-safe spinlock, the table of
//! debugfs handles, and the results of the last self-test run.
//!
//! Lock order: `handles` (a mutex, may sleep), then the quiesce scratch
//! lock (see `percpu`; the per-CPU caches themselves have no lock), then
//! `heap` (a spinlock with interrupts off, never held across anything that
//! sleeps or allocates).
//!
//! Allocations and frees go through [`Kalloc::alloc`] (or `alloc_ptr`) and
//! [`Kalloc::free_fast`] then `free_slow`:
//! the per-CPU fast path for size classes and for large blocks a CPU has
//! parked, the locked heap otherwise.
//! Reports go through [`Kalloc::quiesced`], which makes them exact.

use super::{
    bench::BenchLog,
    debug,
    errors::{self, Shown},
    percpu::PerCpu,
    region::VmallocRegion,
    selftest::SelftestLog,
    stress::StressLog,
};
use crate::allocator::{
    config::{MAX_SIZE, MIN_SIZE, NUM_CACHES},
    size_class_for, AllocError, CacheError, CacheId, Corruption, DebugFlags, Flags, FreeError,
    Heap, HeldSums, ReallocError, Resize,
};
use core::ptr::NonNull;
use kernel::{
    new_mutex, new_spinlock_irq,
    prelude::*,
    rbtree::RBTree,
    sync::{atomic::Atomic, Mutex, SpinLockIrq},
};

/// Where a handle's memory came from.
#[derive(Clone, Copy)]
pub(crate) enum Origin {
    /// A built-in size class (index 0 = `size-8` .. 9 = `size-4096`).
    Class(usize),
    /// The large-block allocator.
    Large,
    /// A custom cache (`alloc ID cache=NAME`).
    Cache(CacheId),
}

impl Origin {
    /// Where a kmalloc-style request of `size` bytes aligned to `align`
    /// goes: its size class, or the large-block allocator.
    pub(crate) fn sized(size: usize, align: usize) -> Origin {
        size_class_for(size, align).map_or(Origin::Large, Origin::Class)
    }
}

/// One live allocation made through the `alloc` file.
pub(crate) struct Handle {
    /// Offset of the allocation from the heap start.
    pub(crate) offset: usize,
    /// Requested size.
    pub(crate) size: usize,
    /// Requested alignment.
    pub(crate) align: usize,
    /// Usable size reported by the allocator.
    pub(crate) usable: usize,
    /// Which allocator or cache holds it.
    pub(crate) origin: Origin,
}

/// Everything the module owns while it is loaded.
#[pin_data(PinnedDrop)]
pub(crate) struct Kalloc {
    /// The allocator. IRQ-safe so that every operation may run in any context.
    #[pin]
    pub(crate) heap: SpinLockIrq<Heap>,
    /// The per-CPU caches (fast path) of `heap`.
    pcpu: PerCpu,
    /// Live handles by ID.
    #[pin]
    pub(crate) handles: Mutex<RBTree<u64, Handle>>,
    /// Results of the last self-test run.
    #[pin]
    pub(crate) selftest: Mutex<SelftestLog>,
    /// Slabs and bytes the last `shrink` gave back.
    #[pin]
    pub(crate) last_shrink: Mutex<(usize, usize)>,
    /// Results of the last benchmark run.
    #[pin]
    pub(crate) bench: Mutex<BenchLog>,
    /// Results of the last stress run.
    #[pin]
    pub(crate) stress: Mutex<StressLog>,
    /// `leaks` lists tracked live allocations older than this (ms).
    pub(crate) leaks_threshold_ms: Atomic<u32>,
    /// The heap's memory. Declared last: it is freed after everything above.
    region: VmallocRegion,
}

impl Kalloc {
    /// Builds the state over `region`; `percpu` enables the per-CPU caches,
    /// `flags` are the heap-wide debug flags (`debug=`).
    pub(crate) fn new(
        region: VmallocRegion,
        percpu: bool,
        flags: DebugFlags,
    ) -> impl PinInit<Self, Error> {
        // SAFETY: `region` is owned by the `Kalloc` being built and outlives
        // the heap (it is dropped after it); nothing else uses its memory.
        let heap = unsafe { Heap::with_debug(region.start(), region.len(), flags) }
            .map(|mut h| {
                h.set_clock(debug::now_ns);
                h
            })
            .map_err(|e| {
                pr_err!("heap init failed: {}\n", Shown(&e));
                EINVAL
            });
        let pcpu = heap.as_ref().map_err(|e| *e).and_then(|h| {
            // Size classes with debug flags take the locked path.
            let slow = (0..NUM_CACHES)
                .filter(|&c| {
                    h.size_class(c)
                        .and_then(|id| h.cache_debug(id))
                        .is_some_and(|d| !d.is_empty())
                })
                .fold(0u32, |m, c| m | 1 << c);
            // SAFETY: the view is of the heap's region, which `Kalloc` owns
            // and drops after `pcpu` (it is the last field).
            unsafe { PerCpu::new(h.fast_view(), percpu, slow) }
        });
        try_pin_init!(Self {
            heap <- new_spinlock_irq!(heap?, "ikos_kalloc_heap"),
            pcpu: pcpu?,
            handles <- new_mutex!(RBTree::new(), "ikos_kalloc_handles"),
            selftest <- new_mutex!(SelftestLog::new(), "ikos_kalloc_selftest"),
            bench <- new_mutex!(BenchLog::default(), "ikos_kalloc_bench"),
            last_shrink <- new_mutex!((0, 0), "ikos_kalloc_shrink"),
            stress <- new_mutex!(StressLog::default(), "ikos_kalloc_stress"),
            leaks_threshold_ms: Atomic::new(0),
            region,
        }? Error)
    }

    /// Address of the byte at `offset` in the heap.
    pub(crate) fn at(&self, offset: usize) -> NonNull<u8> {
        // SAFETY: handle offsets come from `Heap::region_offset` and are
        // therefore inside the region, so the result stays in bounds.
        unsafe { self.region.start().add(offset) }
    }

    /// Allocates `size` bytes aligned to `align`: size classes and large
    /// blocks parked on this CPU on the per-CPU fast path, everything else
    /// (and everything while reports pause the fast path) on the locked
    /// heap. When the heap runs out, the objects and blocks cached by every
    /// CPU (only this CPU's where the caller is not preemptible, e.g. holds
    /// a spinlock, or CPU hotplug is in progress) are given back and the request
    /// is retried once before it fails (unless it is larger than the whole
    /// heap, which no reclaim can satisfy).
    ///
    /// Only the magazine pop is inlined into callers; everything else is in
    /// an out-of-line function, so the common case is one short function
    /// without calls (see the C API in `export.rs`).
    #[inline(always)]
    pub(crate) fn alloc(
        &self,
        size: usize,
        align: usize,
        flags: Flags,
    ) -> Result<NonNull<u8>, AllocError> {
        match self.pcpu.alloc_fast(size, align, flags) {
            Some(p) => Ok(p),
            None => self.alloc_slow(size, align, flags),
        }
    }

    /// [`Kalloc::alloc`] for the C API: the allocation or null (failures
    /// are counted by the heap). The slow part returns the pointer too, so
    /// the inlined part ends in a tail call and needs no stack frame.
    #[inline(always)]
    pub(crate) fn alloc_ptr(&self, size: usize, align: usize, flags: Flags) -> *mut u8 {
        match self.pcpu.alloc_fast(size, align, flags) {
            Some(p) => p.as_ptr(),
            None => self.alloc_ptr_slow(size, align, flags),
        }
    }

    /// [`Kalloc::alloc_ptr`] after the inlined magazine pop missed.
    #[inline(never)]
    fn alloc_ptr_slow(&self, size: usize, align: usize, flags: Flags) -> *mut u8 {
        self.alloc_slow(size, align, flags)
            .map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    /// [`Kalloc::alloc`] after the inlined magazine pop missed.
    #[inline(never)]
    fn alloc_slow(
        &self,
        size: usize,
        align: usize,
        flags: Flags,
    ) -> Result<NonNull<u8>, AllocError> {
        if let Some(r) = self.pcpu.alloc(&self.heap, size, align, flags) {
            return r;
        }
        // ZERO is done below, after the heap lock is dropped: a large block
        // may be megabytes, and the lock keeps interrupts off.
        let p = self.alloc_locked(size, align, flags.without(Flags::ZERO))?;
        if flags.contains(Flags::ZERO) {
            let usable = self.heap.lock().usable_size(p.as_ptr()).unwrap_or(size);
            // SAFETY: `p` is a live allocation of `usable` bytes (its usable
            // size, read under the lock) that nobody else knows of yet.
            unsafe { core::ptr::write_bytes(p.as_ptr(), 0, usable) };
        }
        Ok(p)
    }

    /// [`Kalloc::alloc_slow`] on the locked heap: when it runs out, the
    /// per-CPU caches are given back and the request retried once.
    fn alloc_locked(
        &self,
        size: usize,
        align: usize,
        flags: Flags,
    ) -> Result<NonNull<u8>, AllocError> {
        let r = self.heap.lock().alloc_flags_retryable(size, align, flags);
        match r {
            Err(AllocError::OutOfMemory) if self.pcpu.enabled() && size <= self.region.len() => {
                let retry = |h: &mut Heap| h.alloc_flags(size, align, flags);
                match self.pcpu.try_reclaim(&self.heap, |h, _| retry(h)) {
                    Some(r) => r,
                    // Not preemptible: only this CPU's magazines can be had.
                    None => {
                        self.pcpu.flush_local(&self.heap);
                        retry(&mut self.heap.lock())
                    }
                }
            }
            Err(AllocError::OutOfMemory) => {
                Err(self.heap.lock().fail_alloc(AllocError::OutOfMemory))
            }
            r => r,
        }
    }

    /// Resizes `ptr` to `new_size` bytes, as `krealloc` does: a null `ptr`
    /// allocates (like `alloc` with the default alignment), a `new_size` of
    /// 0 frees `ptr` and gives `Ok(None)`. The moves of [`Heap::realloc`],
    /// with every copy made without the heap lock (a payload may be
    /// megabytes, and the lock keeps interrupts off): in place when no
    /// data has to move; a large block moved down into a free predecessor
    /// ([`Heap::resize_start`], the `memmove`, [`Heap::resize_finish`]);
    /// else a new allocation (a large block placed low in the heap by
    /// [`Heap::alloc_moved_retryable`], or, for a size class and when that
    /// runs out of memory, [`Kalloc::alloc`] with its per-CPU caches and
    /// reclaim), the copy, then the old allocation freed. On failure `ptr`
    /// is untouched.
    pub(crate) fn realloc(
        &self,
        ptr: *mut u8,
        new_size: usize,
    ) -> Result<Option<NonNull<u8>>, ReallocError> {
        if ptr.is_null() {
            return self
                .alloc(new_size, MIN_SIZE, Flags::NONE)
                .map(Some)
                .map_err(ReallocError::Alloc);
        }
        if new_size == 0 {
            return self.free(ptr).map(|()| None).map_err(ReallocError::Free);
        }
        // The guard goes at the end of the statement, before any copy.
        let started = self.heap.lock().resize_start(ptr, new_size)?;
        let old_usable = match started {
            Resize::Done(p) => return Ok(Some(p)),
            Resize::MoveDown(m) => {
                // SAFETY: `m` describes one live large block that the heap
                // made of the caller's allocation and its free neighbours
                // for this resize: `count` bytes from `src` (the old payload)
                // and from `dst` (its start) lie inside it, and nothing
                // else is placed in it until `resize_finish`. The ranges
                // overlap, hence `copy` (memmove).
                unsafe { core::ptr::copy(m.src(), m.dst().as_ptr(), m.count()) };
                let dst = m.dst();
                // The guard goes at the end of the statement, before the log.
                let finished = self.heap.lock().resize_finish(m);
                if let Err(c) = finished {
                    errors::rate_limited(&format_args!(
                        "realloc: the moved block is kept whole: {c}"
                    ));
                }
                return Ok(Some(dst));
            }
            Resize::Move { usable } => usable,
        };
        let new = self.alloc_moved(new_size).map_err(ReallocError::Alloc)?;
        // SAFETY: `ptr` is a live allocation of `old_usable` bytes (checked
        // just now under the lock; the caller owns it until it is freed
        // below) and `new` one of at least `new_size`, so both ranges are
        // valid, and two live allocations do not overlap.
        unsafe {
            core::ptr::copy_nonoverlapping(ptr, new.as_ptr(), old_usable.min(new_size));
        }
        // Live a moment ago: a refusal now means that a debug check (red
        // zone, poison, sanity) found damage at the free, or a racing free
        // by the caller; the heap counted it. As `Heap::realloc` does, give
        // the new block back and fail: the caller keeps `ptr`, and the
        // heap holds no allocation that nobody owns.
        if let Err(e) = self.free(ptr) {
            let _ = self.free(new.as_ptr());
            return Err(ReallocError::Free(e));
        }
        Ok(Some(new))
    }

    /// The new allocation of a moving [`Kalloc::realloc`]: a large block
    /// from the locked heap, placed as low as cheaply possible, as the
    /// host's `Heap::realloc` places it (growing buffers left high up
    /// would fragment the heap); a size class, or a large block when that
    /// finds no room, through [`Kalloc::alloc`] (per-CPU caches, reclaim,
    /// the failure counted once).
    fn alloc_moved(&self, new_size: usize) -> Result<NonNull<u8>, AllocError> {
        if new_size > MAX_SIZE {
            match self.heap.lock().alloc_moved_retryable(new_size) {
                Err(AllocError::OutOfMemory) => {}
                r => return r,
            }
        }
        self.alloc(new_size, MIN_SIZE, Flags::NONE)
    }

    /// Frees `ptr` (kfree semantics), the inlined part: the magazine push,
    /// when `ptr` is a live size-class object. False when it declined
    /// (nothing changed) and [`Kalloc::free_slow`] must follow, which parks
    /// large blocks or frees through the locked heap; the heap also
    /// classifies and counts every invalid free. Split in two for the C API
    /// (`ikos_kfree`), whose common case then needs no stack frame.
    #[inline(always)]
    pub(crate) fn free_fast(&self, ptr: *mut u8) -> bool {
        self.pcpu.free_fast(ptr)
    }

    /// Frees `ptr` (kfree semantics): [`Kalloc::free_fast`], then
    /// [`Kalloc::free_slow`] if it declined.
    pub(crate) fn free(&self, ptr: *mut u8) -> Result<(), FreeError> {
        if self.free_fast(ptr) {
            Ok(())
        } else {
            self.free_slow(ptr)
        }
    }

    /// Frees `ptr` after [`Kalloc::free_fast`] declined.
    #[inline(never)]
    pub(crate) fn free_slow(&self, ptr: *mut u8) -> Result<(), FreeError> {
        if ptr.is_null() || self.pcpu.free(&self.heap, ptr) {
            return Ok(());
        }
        self.heap.lock().free(ptr)
    }

    /// Runs `f` on the locked heap after pausing the fast path and folding
    /// every CPU's counters into the heap, so statistics and `validate` are
    /// exact; with `flush` the magazines are emptied into the slabs first.
    /// `f` also gets the result of checking every magazine entry. Task
    /// context with interrupts enabled only (debugfs, module exit): see
    /// [`PerCpu::quiesce`]; other contexts use [`Kalloc::try_quiesced`].
    pub(crate) fn quiesced<R>(
        &self,
        flush: bool,
        f: impl FnOnce(&mut Heap, Result<HeldSums, Corruption>) -> R,
    ) -> R {
        self.pcpu.quiesce(&self.heap, flush, f)
    }

    /// [`Kalloc::quiesced`] where the context allows it, `None` elsewhere
    /// (interrupts disabled or interrupt context, with the fast path on).
    pub(crate) fn try_quiesced<R>(
        &self,
        flush: bool,
        f: impl FnOnce(&mut Heap, Result<HeldSums, Corruption>) -> R,
    ) -> Option<R> {
        self.pcpu.try_quiesce(&self.heap, flush, f)
    }

    /// Sets the debug flags of cache `id` (`caches` write `debug NAME
    /// FLAGS`). A size class is first sent to the locked path and its
    /// objects are taken back from every CPU's magazines (a cache must have
    /// no slabs to change its layout); it returns to the fast path only
    /// without debug flags.
    pub(crate) fn set_cache_debug(&self, id: CacheId, flags: DebugFlags) -> Result<(), CacheError> {
        let class = (id.index() < NUM_CACHES).then_some(id.index());
        // A size class with live objects refuses (`Busy`): found without
        // emptying the magazines, which a refused write must not do (the
        // counters are exact once folded). Only an allocation racing with
        // this write makes it fail below, after the flush.
        if let Some(c) = class {
            let live = self.quiesced(false, |heap, _| heap.cache_info(c).map(|i| i.active_objs));
            if live.is_some_and(|n| n != 0) {
                return Err(CacheError::Busy);
            }
        }
        let was_slow = self
            .heap
            .lock()
            .cache_debug(id)
            .is_some_and(|d| !d.is_empty());
        if let Some(c) = class {
            self.pcpu.set_slow(c, true);
        }
        let r = self.quiesced(class.is_some(), |heap, _| heap.set_cache_debug(id, flags));
        if let Some(c) = class {
            let slow = if r.is_ok() {
                !flags.is_empty()
            } else {
                was_slow
            };
            self.pcpu.set_slow(c, slow);
        }
        r
    }

    /// Frees the memory behind handle `h`. On damaged metadata or a
    /// damaged red zone the free is refused and counted in `corruptions`;
    /// the caller reports it.
    pub(crate) fn release(&self, h: &Handle) -> Result<(), FreeError> {
        let p = self.at(h.offset).as_ptr();
        // A handle is a known live allocation: a refusal means damage.
        match h.origin {
            Origin::Cache(id) => self.heap.lock().free_live(p, Some(id)),
            Origin::Class(_) | Origin::Large if self.pcpu.free(&self.heap, p) => Ok(()),
            Origin::Class(_) | Origin::Large => self.heap.lock().free_live(p, None),
        }
    }
}

#[pinned_drop]
impl PinnedDrop for Kalloc {
    fn drop(self: Pin<&mut Self>) {
        // Module exit: free every outstanding handle, then check the heap one
        // last time before the region goes back to vmalloc.
        let mut handles = self.handles.lock();
        self.quiesced(false, |heap, _| debug::exit_summary(heap));
        let mut freed = 0usize;
        let mut failed = 0usize;
        for (id, h) in handles.iter() {
            match self.release(h) {
                Ok(()) => freed += 1,
                Err(e) => {
                    pr_err!(
                        "free of a handle at offset {} failed: {}\n",
                        h.offset,
                        Shown(&e)
                    );
                    if let FreeError::Corrupted(c) = e {
                        debug::report_handle_damage(*id, h.offset, &c);
                    }
                    failed += 1;
                }
            }
        }
        *handles = RBTree::new();
        drop(handles);
        let (active, result) = self.quiesced(true, |heap, mags| {
            (
                heap.stats().active_allocs,
                mags.and_then(|m| heap.validate_with(&m)),
            )
        });
        match result {
            Ok(_) if failed == 0 && active == 0 => {
                pr_info!("exit: freed {} live handles, heap consistent\n", freed)
            }
            Ok(_) => pr_err!(
                "exit: freed {} handles, {} frees failed, {} allocations still live\n",
                freed,
                failed,
                active
            ),
            Err(c) => pr_err!("exit: heap corrupt: {}\n", Shown(&c)),
        }
    }
}
