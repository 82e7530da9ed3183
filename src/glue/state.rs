// SPDX-License-Identifier: GPL-2.0

//! The module's state: the heap behind an IRQ-safe spinlock, the table of
//! debugfs handles, and the results of the last self-test run.
//!
//! Lock order: `handles` (a mutex, may sleep) before `heap` (a spinlock with
//! interrupts off, never held across anything that sleeps or allocates).

use super::{
    bench::BenchLog,
    debug,
    errors::{self, Shown},
    region::VmallocRegion,
    selftest::SelftestLog,
    stress::StressLog,
};
use crate::allocator::{CacheId, DebugFlags, FreeError, Heap};
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
    /// Builds the state over `region`.
    pub(crate) fn new(region: VmallocRegion, flags: DebugFlags) -> impl PinInit<Self, Error> {
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
        try_pin_init!(Self {
            heap <- new_spinlock_irq!(heap?, "ikos_kalloc_heap"),
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

    /// Frees the memory behind handle `id`. On damaged metadata or a
    /// damaged red zone the free is refused (`EIO`), reported once in dmesg
    /// and counted in `corruptions`.
    pub(crate) fn release(&self, id: u64, h: &Handle) -> Result {
        let p = self.at(h.offset).as_ptr();
        let mut heap = self.heap.lock();
        // A handle is a known live allocation: a refusal means damage.
        let r = match h.origin {
            Origin::Cache(id) => heap.free_live(p, Some(id)),
            Origin::Class(_) | Origin::Large => heap.free_live(p, None),
        };
        r.map_err(|e| {
            pr_err!(
                "free of a handle at offset {} failed: {}\n",
                h.offset,
                Shown(&e)
            );
            if let FreeError::Corrupted(c) = e {
                debug::report_handle_damage(id, h.offset, &c);
            }
            errors::free_errno(e)
        })
    }
}

#[pinned_drop]
impl PinnedDrop for Kalloc {
    fn drop(self: Pin<&mut Self>) {
        // Module exit: free every outstanding handle, then check the heap one
        // last time before the region goes back to vmalloc.
        let mut handles = self.handles.lock();
        debug::exit_summary(&self.heap.lock());
        let mut freed = 0usize;
        let mut failed = 0usize;
        for (id, h) in handles.iter() {
            match self.release(*id, h) {
                Ok(()) => freed += 1,
                Err(_) => failed += 1,
            }
        }
        *handles = RBTree::new();
        drop(handles);
        let mut heap = self.heap.lock();
        let active = heap.stats().active_allocs;
        match heap.validate() {
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
