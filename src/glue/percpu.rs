// SPDX-License-Identifier: GPL-2.0

//! Per-CPU object caches: the fast path of the built-in size classes.
//!
//! One [`CpuCache`] (a magazine per size class, see
//! `allocator/magazine.rs`) per possible CPU, in a per-CPU variable
//! (`percpu_var.rs`). A CPU touches only its own
//! cache, with preemption disabled and the cache's *busy* flag taken, so
//! the fast path takes no lock and leaves interrupts enabled: preemption
//! off (`preempt.rs`), pick the cache of the CPU it runs on, take its busy
//! flag, pop or push, release both. This is what SLUB's per-CPU sheaves do
//! with `local_trylock()`. An interrupt handler that allocates or frees
//! while the interrupted code holds the flag finds it taken and uses the
//! locked heap instead. The heap lock is taken only to refill an empty
//! magazine or drain a full one, in batches, from and to the shared
//! magazine depot first (`allocator/depot.rs`).
//!
//! Whatever needs another CPU's cache runs *on* that CPU, in an IPI
//! (`smp_call_function_single`), whose handler takes the busy flag like
//! the fast path; when the IPI interrupted a fast operation (flag taken)
//! the caller sends it again once that operation has finished. The
//! handler takes no lock: it moves the cache's events (and, to flush, its
//! objects) into a scratch cache, which the caller then works on under the
//! heap lock. The cache of an offline CPU is not in use and is reached
//! directly. SLUB once flushed its per-CPU slabs the same way (`flush_all`
//! with `on_each_cpu_cond`), with the same constraint: the caller must be
//! able to wait for other CPUs (interrupts enabled, task context).
//!
//! Each cache also parks up to 16 freed large blocks of at most 64 KiB
//! (`allocator/large_cache.rs`): a large allocation on the same CPU takes
//! one back without the heap lock, as `kmalloc` takes pages from the page
//! allocator's per-CPU lists.
//!
//! Exact reports. [`PerCpu::quiesce`] holds off CPU hotplug and, on each
//! CPU in turn, folds the cache's events into the heap, returns its parked
//! large blocks to the heap, checks (or with `flush` empties) its
//! magazines and pauses it ([`CpuCache::pause`]), in the same IPI; then it
//! runs its closure on the locked heap and resumes every cache in a second
//! round of IPIs. `stats`, `caches`, `validate`, `heapmap`, `shrink` and
//! module exit use it, so what they show is exact. A paused cache's
//! magazines read as empty to a pop and as full to a push, so the fast
//! path declines by the bounds tests it makes anyway and reads no pause
//! flag; everything after it tests the pause ([`PerCpu::local`]) and
//! takes the locked heap.

use super::{hotplug::NoHotplug, percpu_var::PerCpuVar, preempt::NoPreempt};
use crate::allocator::{
    size_class_for, AllocError, Corruption, CpuCache, FastFree, FastView, Flags, Heap, HeldSums,
    Pop, LARGE_CACHE_MAX_BLOCK,
};
use core::{
    cell::UnsafeCell,
    ffi::{c_int, c_void},
    pin::Pin,
    ptr::NonNull,
    sync::atomic::{compiler_fence, AtomicBool, AtomicU32, Ordering},
};
use kernel::{
    bindings,
    cpu::CpuId,
    new_spinlock,
    prelude::*,
    sync::{SpinLock, SpinLockIrq},
};

extern "C" {
    /// Whether the caller may wait for other CPUs (`src/ikos_kalloc_cpu.c`).
    fn ikos_kalloc_can_sync_cpus() -> bool;
    fn ikos_kalloc_preemptible() -> bool;
}

/// The cache of one CPU.
///
/// # Invariants
///
/// `cache` is accessed only on the CPU it belongs to, by whoever set `busy`
/// there (the fast path with preemption disabled, or an IPI handler), or
/// by the holder of the quiesce lock while that CPU is offline and CPU
/// hotplug is held off.
struct CpuSlot {
    cache: UnsafeCell<CpuCache>,
    /// Taken while the cache is in use. Only its own CPU sets it, so a
    /// plain load and store (with compiler barriers) suffice: whoever finds
    /// it set interrupted its holder and must not wait for it.
    busy: AtomicBool,
}

// SAFETY: by the type invariant, accesses to the cache are serialised by the
// busy flag of its CPU, and only that CPU takes it.
unsafe impl Sync for CpuSlot {}

impl CpuSlot {
    /// Takes the busy flag; false if it is taken (by the code this
    /// interrupted).
    ///
    /// # Safety
    ///
    /// Only on the slot's CPU, with preemption disabled until the flag is
    /// released: the load and store below are not one atomic operation,
    /// which is safe only against interrupts on the same CPU.
    #[inline(always)]
    unsafe fn try_take(&self) -> bool {
        if self.busy.load(Ordering::Relaxed) {
            return false;
        }
        // An interrupt between the load and the store runs to completion
        // first and leaves the flag clear again, as `local_trylock` relies on.
        self.busy.store(true, Ordering::Relaxed);
        // Nothing that uses the cache moves above the store.
        compiler_fence(Ordering::SeqCst);
        true
    }

    /// Releases the busy flag taken by [`CpuSlot::try_take`].
    #[inline(always)]
    fn release(&self) {
        compiler_fence(Ordering::SeqCst);
        self.busy.store(false, Ordering::Relaxed);
    }
}

/// Exclusive use of the cache of the CPU this runs on: preemption is
/// disabled and the slot's busy flag is taken until this is dropped.
struct LocalCache<'a> {
    slot: &'a CpuSlot,
    _pin: NoPreempt,
}

impl LocalCache<'_> {
    #[inline(always)]
    fn cache(&mut self) -> &mut CpuCache {
        // SAFETY: the busy flag of this CPU's slot is held by `self`, and
        // preemption is disabled, so nothing else accesses the cache while
        // the result (tied to `&mut self`) lives (`CpuSlot` invariant).
        unsafe { &mut *self.slot.cache.get() }
    }
}

impl Drop for LocalCache<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        // Before `_pin` re-enables preemption.
        self.slot.release();
    }
}

/// The per-CPU caches of one heap.
pub(crate) struct PerCpu {
    cpus: PerCpuVar<CpuSlot>,
    /// Whether the fast path is used (module parameter `percpu`). Without
    /// it every cache stays paused (so the fast path needs no test of its
    /// own) and empty.
    enabled: bool,
    view: FastView,
    /// Bit `c`: size class `c` has debug flags and takes the locked path.
    /// Read where a magazine is refilled, not by the fast path: the
    /// magazines of such a class are emptied when its flags are set, and
    /// its slabs carry no fast tag (see [`Kalloc::set_cache_debug`]). A
    /// core atomic, as in the allocator core (the kernel's `Atomic` would
    /// be an out-of-line helper call).
    ///
    /// [`Kalloc::set_cache_debug`]: super::state::Kalloc::set_cache_debug
    slow_classes: AtomicU32,
    /// Where [`PerCpu::quiesce`] puts what it takes from one CPU; its lock
    /// also serialises quiescers.
    scratch: Pin<KBox<SpinLock<CpuCache>>>,
}

impl PerCpu {
    /// Creates one empty cache per possible CPU, used only if `enabled`
    /// (otherwise every operation takes the locked slow path). Bit `c` of
    /// `slow` sends size class `c` to the locked path (debug flags).
    ///
    /// # Safety
    ///
    /// `view` must stay valid (its heap alive) as long as the result lives.
    pub(crate) unsafe fn new(view: FastView, enabled: bool, slow: u32) -> Result<Self> {
        // The caches (10 KiB each) are built in place: by value, the KASAN
        // build kept two of them in module init's stack frame (23 KiB).
        let init_slot = |slot: *mut CpuSlot| {
            // SAFETY: `slot` is valid for writes and aligned (the contract
            // of `PerCpuVar::new`); the cache is initialised before the
            // reference that pauses it is made.
            unsafe {
                let cache = UnsafeCell::raw_get(&raw const (*slot).cache);
                CpuCache::init_in_place(cache);
                if !enabled {
                    (*cache).pause();
                }
                (&raw mut (*slot).busy).write(AtomicBool::new(false));
            }
        };
        // SAFETY: `init_slot` initialises both fields of the slot.
        let cpus = unsafe { PerCpuVar::new(init_slot) }?;
        let init_cache = |p: *mut CpuCache| {
            // SAFETY: `p` is valid for writes and aligned (the contract of
            // `pin_init_from_closure`).
            unsafe { CpuCache::init_in_place(p) };
            Ok::<(), core::convert::Infallible>(())
        };
        // SAFETY: `init_cache` initialises the cache completely and cannot
        // fail.
        let empty = unsafe { pin_init::pin_init_from_closure(init_cache) };
        let scratch = KBox::pin_init(new_spinlock!(empty, "ikos_kalloc_quiesce"), GFP_KERNEL)?;
        Ok(PerCpu {
            cpus,
            enabled,
            view,
            slow_classes: AtomicU32::new(slow),
            scratch,
        })
    }

    /// Sends size class `class` to the locked path (`slow`) or back to the
    /// fast path. Callers flush the magazines afterwards (see
    /// `Kalloc::set_cache_debug`).
    pub(crate) fn set_slow(&self, class: usize, slow: bool) {
        let bit = 1u32 << (class & 31);
        if slow {
            self.slow_classes.fetch_or(bit, Ordering::Relaxed);
        } else {
            self.slow_classes.fetch_and(!bit, Ordering::Relaxed);
        }
    }

    /// Whether the fast path exists (the `percpu` module parameter).
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// The cache of the CPU this runs on, for the fast path's pop and
    /// push only, which a paused cache declines by itself; `None` when it
    /// is in use by the code this interrupted. A pause is made on this CPU
    /// with the busy flag taken (in an IPI), so an operation that takes
    /// the flag after it sees the paused cache.
    #[inline(always)]
    fn local_fast(&self) -> Option<LocalCache<'_>> {
        let pin = NoPreempt::new();
        // SAFETY: `slot` is used only inside the `LocalCache` that also
        // holds `pin`, and not after it.
        let slot = unsafe { self.cpus.local(&pin) };
        // SAFETY: `slot` is this CPU's (`local`), and `pin` keeps
        // preemption off until the `LocalCache` releases the flag.
        if !unsafe { slot.try_take() } {
            return None;
        }
        Some(LocalCache { slot, _pin: pin })
    }

    /// [`PerCpu::local_fast`] for everything else: also `None` when the
    /// cache is paused (reports in progress, or no fast path).
    fn local(&self) -> Option<LocalCache<'_>> {
        let mut local = self.local_fast()?;
        if local.cache().is_paused() {
            return None;
        }
        Some(local)
    }

    /// Allocates from this CPU's magazine: the inlined fast path. `None`
    /// when the request is not for a size class, the magazine is empty, the
    /// fast path is paused or off: then [`PerCpu::alloc`] (refill, parked
    /// large blocks) and the locked heap follow.
    #[inline(always)]
    pub(crate) fn alloc_fast(
        &self,
        size: usize,
        align: usize,
        flags: Flags,
    ) -> Option<NonNull<u8>> {
        if flags.contains(Flags::DMA) {
            return None;
        }
        let class = size_class_for(size, align)?;
        // A class with debug flags has empty magazines, and a paused cache
        // reads as empty: both miss.
        let mut local = self.local_fast()?;
        let zero = flags.contains(Flags::ZERO);
        // A damaged entry also goes to the miss path, which drops it.
        match local.cache().pop(&self.view, class, size, zero) {
            Pop::Object(p) => Some(p),
            Pop::Empty | Pop::Damaged => None,
        }
    }

    /// Frees into this CPU's magazine: the inlined fast path. False when
    /// `ptr` is not a live standard size-class object, the magazine is
    /// full, the fast path is paused or off: then [`PerCpu::free`] (drain,
    /// parking large blocks) and the locked heap follow. Nothing changed.
    #[inline(always)]
    pub(crate) fn free_fast(&self, ptr: *const u8) -> bool {
        let Some(at) = self.view.locate_ptr(ptr) else {
            return false;
        };
        let Some(mut local) = self.local_fast() else {
            return false;
        };
        // Slabs of a class with debug flags carry no fast tag, and a paused
        // cache reads as full: both decline.
        local.cache().free_located(&self.view, at) == FastFree::Done
    }

    /// Allocates on the per-CPU layer after [`PerCpu::alloc_fast`] missed:
    /// refills an empty magazine under the heap lock, or takes a parked
    /// large block. `None` means "use the locked heap" (not a size class
    /// or parkable size, DMA, paused, disabled, or the heap could not
    /// refill the magazine). It repeats the size-class computation and the
    /// pop attempt of the fast path, which is cheap next to a refill and
    /// keeps the inlined part free of everything else.
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
        let Some(class) = size_class_for(size, align) else {
            return self.alloc_large(size, align, flags);
        };
        // An early out only: flags set after this read make the heap refuse
        // the refill (`BadCache`, below).
        if self.slow_classes.load(Ordering::Relaxed) & (1 << class) != 0 {
            return None;
        }
        let mut local = self.local()?;
        let zero = flags.contains(Flags::ZERO);
        let cpu = local.cache();
        match cpu.alloc_with(&self.view, class, size, zero, |c| refill(heap, c, class)) {
            Ok(p) => Some(Ok(p)),
            // Out of memory: the slow path first takes back what other
            // CPUs' magazines hold (see `alloc_slow` in state.rs).
            Err(AllocError::OutOfMemory) => None,
            // The class got debug flags since `slow_classes` was read: its
            // objects take the locked path.
            Err(AllocError::BadCache) => None,
            // Damage: counted once, as a failed allocation.
            Err(e) => Some(Err(heap.lock().fail_alloc(e))),
        }
    }

    /// Allocates a large block from the blocks parked in this CPU's cache
    /// (`allocator/large_cache.rs`), `None` when none fits. No lock: a
    /// miss goes to the locked heap.
    fn alloc_large(
        &self,
        size: usize,
        align: usize,
        flags: Flags,
    ) -> Option<Result<NonNull<u8>, AllocError>> {
        if size >= LARGE_CACHE_MAX_BLOCK {
            return None;
        }
        self.local()?
            .cache()
            .alloc_large(&self.view, size, align, flags.contains(Flags::ZERO))
            .map(Ok)
    }

    /// Frees on the per-CPU layer after [`PerCpu::free_fast`] declined:
    /// drains a full magazine under the heap lock, or parks a large block.
    /// False means "use the locked heap" (not a live standard size-class
    /// object or parkable large block, paused or disabled); nothing changed.
    pub(crate) fn free(&self, heap: &SpinLockIrq<Heap>, ptr: *const u8) -> bool {
        // The page map is read again (after `free_fast`, only on this
        // slower path); what no standard slab owns may be a large block.
        let Some(at) = self.view.locate_ptr(ptr) else {
            return self.free_large(heap, ptr);
        };
        let Some(mut local) = self.local() else {
            return false;
        };
        // Slabs of a class with debug flags carry no fast tag.
        let r = local
            .cache()
            .free_located_with(&self.view, at, |c, class, keep| drain(heap, c, class, keep));
        r == FastFree::Done
    }

    /// Parks the large block at `ptr` in this CPU's cache if it is live,
    /// returning the cache's oldest blocks to the heap under its lock first
    /// when the cache is full (`allocator/large_cache.rs`).
    fn free_large(&self, heap: &SpinLockIrq<Heap>, ptr: *const u8) -> bool {
        self.local().is_some_and(|mut local| {
            local
                .cache()
                .free_large_with(&self.view, ptr, |c| evict(heap, c))
                == FastFree::Done
        })
    }

    /// Pauses every CPU's cache after taking its events (and with `flush`
    /// all its magazine objects, returned to the slabs) and checking its
    /// magazines, runs `f` on the locked heap with the result of the checks
    /// (objects checked, or the first damage found), then resumes them.
    ///
    /// Each CPU detaches its cache into the scratch cache and pauses it in
    /// one IPI (which must not take the heap's `spinlock_t` in hard
    /// interrupt context); the heap work is done here, under the heap
    /// lock. CPU hotplug is held off throughout, so the cache of an offline
    /// CPU can be reached directly and stays paused.
    ///
    /// Task context with interrupts enabled that may sleep (it waits for
    /// IPIs on other CPUs and for a hotplug operation in progress):
    /// debugfs handlers, module exit. Elsewhere use [`PerCpu::try_quiesce`].
    pub(crate) fn quiesce<R>(
        &self,
        heap: &SpinLockIrq<Heap>,
        flush: bool,
        f: impl FnOnce(&mut Heap, Result<HeldSums, Corruption>) -> R,
    ) -> R {
        if !self.enabled {
            return f(&mut heap.lock(), Ok(HeldSums::default()));
        }
        // SAFETY: the caller may sleep, by the function's contract.
        let _hotplug = unsafe { NoHotplug::new() };
        self.quiesce_held(heap, flush, f)
    }

    /// [`PerCpu::quiesce`] where the context allows waiting for other CPUs
    /// and no hotplug operation is in progress, `None` elsewhere
    /// (interrupts disabled, interrupt handler, hotplug). Never sleeps.
    pub(crate) fn try_quiesce<R>(
        &self,
        heap: &SpinLockIrq<Heap>,
        flush: bool,
        f: impl FnOnce(&mut Heap, Result<HeldSums, Corruption>) -> R,
    ) -> Option<R> {
        if !self.enabled {
            return Some(self.quiesce(heap, flush, f));
        }
        // SAFETY: a query without side effects.
        if !unsafe { ikos_kalloc_can_sync_cpus() } {
            return None;
        }
        let _hotplug = NoHotplug::try_new()?;
        Some(self.quiesce_held(heap, flush, f))
    }

    /// [`PerCpu::try_quiesce`] for an allocation that ran out of memory,
    /// only where the caller is preemptible: an allocation may be made
    /// under a spinlock (like `kmalloc(GFP_ATOMIC)`), and another CPU
    /// spinning on that lock with interrupts off would never take the IPI.
    /// The reports (`stats`, `validate`) state that rule for their callers
    /// instead; an allocation cannot.
    pub(crate) fn try_reclaim<R>(
        &self,
        heap: &SpinLockIrq<Heap>,
        f: impl FnOnce(&mut Heap, Result<HeldSums, Corruption>) -> R,
    ) -> Option<R> {
        // SAFETY: a query without side effects.
        if !unsafe { ikos_kalloc_preemptible() } {
            return None;
        }
        self.try_quiesce(heap, true, f)
    }

    /// [`PerCpu::quiesce`] once CPU hotplug is held off.
    fn quiesce_held<R>(
        &self,
        heap: &SpinLockIrq<Heap>,
        flush: bool,
        f: impl FnOnce(&mut Heap, Result<HeldSums, Corruption>) -> R,
    ) -> R {
        let mut scratch = self.scratch.lock();
        // What the CPU caches hold, for an exact `validate_with`.
        let mut checked: Result<HeldSums, Corruption> = Ok(HeldSums::default());
        // A CPU number that is not possible has no cache: skipped, or the
        // scratch would be absorbed and checked again as if it were its.
        for cpu in (0..self.cpus.cpus()).filter(|&c| self.cpus.get(c).is_some()) {
            let out = &mut *scratch;
            self.on_cpu(
                cpu,
                Work::DetachAndPause {
                    out,
                    objects: flush,
                },
            );
            let mut h = heap.lock();
            h.magazine_absorb(&mut scratch);
            if flush {
                flush_cache(&mut h, &mut scratch);
            } else if let Err(e) = h.large_cache_flush(&mut scratch) {
                pr_err!("large cache flush: {}\n", crate::glue::errors::Shown(&e));
            }
            match (h.magazine_check(&scratch), &mut checked) {
                (Ok(_), Ok(sums)) => h.add_magazine_sums(&scratch, sums),
                (Err(e), Ok(_)) => checked = Err(e),
                _ => {}
            }
        }
        let r = f(&mut heap.lock(), checked);
        for cpu in 0..self.cpus.cpus() {
            self.on_cpu(cpu, Work::Resume);
        }
        r
    }

    /// Does `work` on the cache of `cpu`, on that CPU, or here if it is
    /// offline. CPU hotplug is held off, and the caller holds the scratch
    /// lock (one quiescer at a time).
    fn on_cpu(&self, cpu: usize, work: Work<'_>) {
        let Ok(id) = c_int::try_from(cpu) else {
            return;
        };
        let mut job = CpuJob {
            pcpu: self,
            cpu,
            work,
            interrupted_user: false,
        };
        loop {
            // SAFETY: `job_on_cpu` matches `smp_call_func_t`; `job` outlives
            // the call, which waits for the handler (`wait` is true).
            let r = unsafe {
                bindings::smp_call_function_single(
                    id,
                    Some(job_on_cpu),
                    (&raw mut job).cast(),
                    true,
                )
            };
            if r != 0 {
                // Offline (-ENXIO): its cache is not in use, and it stays
                // offline while hotplug is held off.
                // SAFETY: as just said, access is exclusive (`CpuSlot`).
                unsafe { job.run() };
                return;
            }
            if !job.interrupted_user {
                return;
            }
            // The IPI landed inside an operation on the cache, which
            // finishes as soon as the handler returns.
            job.interrupted_user = false;
            core::hint::spin_loop();
        }
    }

    /// Returns the magazine objects of the CPU this runs on to the slabs
    /// (for an allocation that ran out of memory where [`PerCpu::quiesce`]
    /// cannot run). Nothing to do when there is no fast path, while the
    /// cache is paused (another task is quiescing), or when this
    /// interrupted an operation on the cache (it is in use).
    pub(crate) fn flush_local(&self, heap: &SpinLockIrq<Heap>) {
        if let Some(mut local) = self.local() {
            flush_cache(&mut heap.lock(), local.cache());
        }
    }
}

/// Returns every object of `cpu` to the slabs (after absorbing its events);
/// damage found on the way is logged (and counted by the heap).
fn flush_cache(h: &mut Heap, cpu: &mut CpuCache) {
    if let Err(e) = h.magazine_flush(cpu) {
        pr_err!("magazine flush: {}\n", crate::glue::errors::Shown(&e));
    }
}

/// Refills the magazine of `class` under the heap lock.
fn refill(heap: &SpinLockIrq<Heap>, cpu: &mut CpuCache, class: usize) -> Result<usize, AllocError> {
    heap.lock().magazine_refill(cpu, class)
}

/// Drains the magazine of `class` to `keep` objects under the heap lock.
fn drain(heap: &SpinLockIrq<Heap>, cpu: &mut CpuCache, class: usize, keep: usize) {
    if let Err(e) = heap.lock().magazine_drain(cpu, class, keep) {
        pr_err!("magazine drain: {}\n", crate::glue::errors::Shown(&e));
    }
}

/// Returns the oldest blocks of a full large-block cache to the heap under
/// its lock.
fn evict(heap: &SpinLockIrq<Heap>, cpu: &mut CpuCache) {
    if let Err(e) = heap.lock().large_cache_evict(cpu) {
        pr_err!("large cache eviction: {}\n", crate::glue::errors::Shown(&e));
    }
}

/// What [`PerCpu::quiesce`] does to the cache of one CPU.
enum Work<'a> {
    /// Move its events (and with `objects` its magazine objects) and its
    /// parked large blocks into `out` ([`CpuCache::detach_into`]), then
    /// pause it ([`CpuCache::pause`]).
    DetachAndPause {
        out: &'a mut CpuCache,
        objects: bool,
    },
    /// Resume it ([`CpuCache::resume`]).
    Resume,
}

/// [`Work`] for one CPU, the argument of its IPI.
struct CpuJob<'a> {
    pcpu: &'a PerCpu,
    cpu: usize,
    work: Work<'a>,
    /// Set by the IPI handler when it found the cache in use by the code
    /// it interrupted: nothing was done, send it again.
    interrupted_user: bool,
}

impl CpuJob<'_> {
    /// Does the work on the cache of `self.cpu`.
    ///
    /// # Safety
    ///
    /// The caller has exclusive access to that cache: it holds the busy
    /// flag on that CPU, or the CPU is offline and hotplug is held off
    /// (`CpuSlot`).
    unsafe fn run(&mut self) {
        let Some(slot) = self.pcpu.cpus.get(self.cpu) else {
            return;
        };
        // SAFETY: exclusive by the function's contract.
        let cache = unsafe { &mut *slot.cache.get() };
        match &mut self.work {
            Work::DetachAndPause { out, objects } => {
                cache.detach_into(out, *objects);
                cache.pause();
            }
            Work::Resume => cache.resume(),
        }
    }
}

/// IPI handler of [`PerCpu::quiesce`]: runs [`CpuJob::run`] on the target
/// CPU, in hard interrupt context (no locks taken), unless it interrupted
/// an operation on the cache there.
///
/// # Safety
///
/// `info` points to a live `CpuJob` whose `cpu` is the CPU this runs on.
unsafe extern "C" fn job_on_cpu(info: *mut c_void) {
    // SAFETY: by the contract, `info` is the caller's `CpuJob`, which waits
    // for this handler and does not touch the job meanwhile.
    let job = unsafe { &mut *info.cast::<CpuJob<'_>>() };
    if CpuId::current().as_u32() as usize != job.cpu {
        return;
    }
    let Some(slot) = job.pcpu.cpus.get(job.cpu) else {
        return;
    };
    // SAFETY: the job's CPU is this one (checked above), and an interrupt
    // handler runs with preemption off until it releases the flag.
    if unsafe { slot.try_take() } {
        // SAFETY: on the job's CPU, holding its busy flag.
        unsafe { job.run() };
        slot.release();
    } else {
        job.interrupted_user = true;
    }
}
