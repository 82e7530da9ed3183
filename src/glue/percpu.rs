// SPDX-License-Identifier: GPL-2.0

//! Per-CPU object caches: the fast path of the built-in size classes.
//!
//! One [`CpuCache`] (a magazine per size class, see
//! `allocator/magazine.rs`) per possible CPU, each behind its own IRQ-safe
//! spinlock. The fast path picks the cache of the CPU it runs on
//! (`CpuId::current()`; a stale id after migration only means a rare
//! remote, still correct, use of another CPU's cache), so the lock is
//! uncontended and its cache line stays local; the heap lock is taken only
//! to refill an empty magazine or drain a full one, in batches.
//!
//! Lock order: CPU cache, then heap. Two CPU cache locks are never held
//! together.
//!
//! Exact reports. [`PerCpu::quiesce`] pauses the fast path (a counter read
//! under each CPU lock: once the pauser has taken and dropped every CPU
//! lock, no fast operation is in flight and none starts), folds every
//! CPU's events into the heap and checks the magazine contents, then runs
//! its closure on the locked heap. `stats`, `caches`, `validate`,
//! `heapmap`, `shrink` and module exit use it, so what they show is exact.
//! While paused, allocations and frees take the locked slow path.

use crate::allocator::{
    size_class_for, AllocError, Corruption, CpuCache, FastFree, FastView, Flags, Heap,
};
use core::pin::Pin;
use core::ptr::NonNull;
use kernel::{
    cpu::{nr_cpu_ids, CpuId},
    new_spinlock_irq,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        SpinLockIrq,
    },
};

/// The per-CPU caches of one heap.
pub(crate) struct PerCpu {
    cpus: KVec<Pin<KBox<SpinLockIrq<CpuCache>>>>,
    view: FastView,
    /// Low 32 bits: number of callers that paused the fast path. Bit
    /// `32 + c`: size class `c` has debug flags and takes the locked path.
    /// One word, so the fast path reads both with one load.
    gate: Atomic<u64>,
}

/// The pause count in [`PerCpu::gate`].
const PAUSED: u64 = 0xffff_ffff;

impl PerCpu {
    /// Creates one empty cache per possible CPU, or none when `enabled` is
    /// false (every operation then takes the locked slow path). Bit `c` of
    /// `slow` sends size class `c` to the locked path (debug flags).
    ///
    /// # Safety
    ///
    /// `view` must stay valid (its heap alive) as long as the result lives.
    pub(crate) unsafe fn new(view: FastView, enabled: bool, slow: u32) -> Result<Self> {
        let n = if enabled { nr_cpu_ids() as usize } else { 0 };
        let mut cpus = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            let c = KBox::pin_init(
                new_spinlock_irq!(CpuCache::new(), "ikos_kalloc_cpu_cache"),
                GFP_KERNEL,
            )?;
            cpus.push(c, GFP_KERNEL)?;
        }
        Ok(PerCpu {
            cpus,
            view,
            gate: Atomic::new(u64::from(slow) << 32),
        })
    }

    /// Sends size class `class` to the locked path (`slow`) or back to the
    /// fast path. Callers flush the magazines afterwards (see
    /// `Kalloc::set_cache_debug`).
    pub(crate) fn set_slow(&self, class: usize, slow: bool) {
        let bit = 1u64 << (32 + (class & 31));
        let mut old = self.gate.load(Relaxed);
        loop {
            let new = if slow { old | bit } else { old & !bit };
            match self.gate.cmpxchg(old, new, Relaxed) {
                Ok(_) => return,
                Err(cur) => old = cur,
            }
        }
    }

    /// Whether the fast path exists (the `percpu` module parameter).
    pub(crate) fn enabled(&self) -> bool {
        !self.cpus.is_empty()
    }

    fn local(&self) -> Option<&SpinLockIrq<CpuCache>> {
        let cpu = CpuId::current().as_u32() as usize;
        self.cpus.get(cpu).map(|c| &**c)
    }

    /// Allocates on the fast path if the request fits it. `None` means
    /// "use the slow path" (not a size class, DMA, paused, disabled, or
    /// the heap could not refill the magazine).
    pub(crate) fn alloc(
        &self,
        heap: &SpinLockIrq<Heap>,
        size: usize,
        align: usize,
        flags: Flags,
    ) -> Option<Result<NonNull<u8>, AllocError>> {
        if flags.contains(Flags::DMA) {
            return None;
        }
        let class = size_class_for(size, align)?;
        let mut cpu = self.local()?.lock();
        let gate = self.gate.load(Relaxed);
        if gate & PAUSED != 0 || gate >> 32 & (1 << class) != 0 {
            return None;
        }
        let zero = flags.contains(Flags::ZERO);
        match cpu.alloc_with(&self.view, class, size, zero, |c| {
            heap.lock().magazine_refill(c, class)
        }) {
            Ok(p) => Some(Ok(p)),
            // Out of memory: the slow path first takes back what other
            // CPUs' magazines hold (see `alloc_slow` in state.rs).
            Err(AllocError::OutOfMemory) => None,
            // Damage: counted once, as a failed allocation.
            Err(e) => Some(Err(heap.lock().fail_alloc(e))),
        }
    }

    /// Frees on the fast path. False means "use the slow path" (not a live
    /// standard size-class object, paused or disabled); nothing changed.
    pub(crate) fn free(&self, heap: &SpinLockIrq<Heap>, ptr: *const u8) -> bool {
        // Large blocks and custom-cache objects skip the CPU cache entirely;
        // the page map is read once, here.
        let Some(at) = self.view.locate_ptr(ptr) else {
            return false;
        };
        let Some(cpu) = self.local() else {
            return false;
        };
        let mut cpu = cpu.lock();
        // Slabs of a class with debug flags carry no fast tag, so only the
        // pause matters here.
        if self.gate.load(Relaxed) & PAUSED != 0 {
            return false;
        }
        let r = cpu.free_located_with(&self.view, at, |c, class, keep| {
            if let Err(e) = heap.lock().magazine_drain(c, class, keep) {
                pr_err!("magazine drain: {}\n", crate::glue::errors::Shown(&e));
            }
        });
        r == FastFree::Done
    }

    /// Pauses the fast path, absorbs every CPU's events (and with `flush`
    /// returns all magazine objects to the slabs), checks every magazine,
    /// then runs `f` on the locked heap with the result of the checks
    /// (objects checked, or the first damage found).
    pub(crate) fn quiesce<R>(
        &self,
        heap: &SpinLockIrq<Heap>,
        flush: bool,
        f: impl FnOnce(&mut Heap, Result<usize, Corruption>) -> R,
    ) -> R {
        self.gate.fetch_add(1, Relaxed);
        let mut checked: Result<usize, Corruption> = Ok(0);
        for c in self.cpus.iter() {
            let mut cpu = c.lock();
            let mut h = heap.lock();
            h.magazine_absorb(&mut cpu);
            if flush {
                if let Err(e) = h.magazine_flush(&mut cpu) {
                    pr_err!("magazine flush: {}\n", crate::glue::errors::Shown(&e));
                }
            }
            match (h.magazine_check(&cpu), &mut checked) {
                (Ok(n), Ok(total)) => *total += n,
                (Err(e), Ok(_)) => checked = Err(e),
                _ => {}
            }
        }
        let r = f(&mut heap.lock(), checked);
        self.gate.fetch_sub(1, Relaxed);
        r
    }
}
