// SPDX-License-Identifier: GPL-2.0

//! `GlobalAlloc` adapter over a [`Heap`] behind a `std::sync::Mutex`, with
//! two cache layers in front of it:
//!
//! * per-thread object caches ([`ThreadCache`], `thread_cache`): size-class
//!   requests of 16 bytes and more (smaller ones are served from the
//!   16-byte class) are taken from and freed to the calling thread's lists
//!   without any lock or atomic read-modify-write;
//! * one shared [`CpuCache`] behind its own mutex (the kernel's per-CPU
//!   layer with a single "CPU"): it refills and drains the thread lists in
//!   batches, and parks large blocks of up to 64 KiB.
//!
//! The fast paths (a size-class `alloc` or `dealloc` on a thread that
//! holds a slot index) make no call that returns: refills, drains, the
//! claim of a slot index and blocks that are not size-class objects are
//! cold functions reached by tail calls, so an out-of-line `alloc` or
//! `dealloc` (the `#[global_allocator]` shim) saves no register.
//!
//! The heap mutex is taken only to refill or drain the shared magazines
//! and for the other large blocks. Objects on a thread's lists count as
//! allocated in the heap's statistics (as glibc's tcache chunks count as
//! in use); [`KallocGlobal::with`] first returns the calling thread's, so a
//! single-threaded caller sees exact figures. Errors the heap detects on a
//! free (double free, foreign pointer) abort the process: `dealloc` cannot
//! report them.
//!
//! The region (`len` bytes, 64 KiB aligned, zeroed) is taken from
//! [`std::alloc::System`] on first use, so the adapter works both as a
//! `#[global_allocator]` (it never allocates through the global allocator
//! itself) and as a plain value called directly (benches). The region is
//! returned to the system when the adapter is dropped.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::hash::{BuildHasher, RandomState};
use std::io::Write;
use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard, OnceLock};

use super::thread_cache::{
    held_slot, thread_capacity, thread_class, thread_slot, CacheKey, Put, Take, ThreadCache,
    THREAD_SLOTS,
};
use crate::allocator::config::{class_size, NUM_CACHES};
use crate::allocator::{CpuCache, FastFree, FastView, Flags, Heap, LARGE_CACHE_MAX_BLOCK};

/// Alignment of the region handed to the heap.
const REGION_ALIGN: usize = 64 * 1024;

/// The heap and the system allocation backing it.
struct Inner {
    heap: Heap,
    layout: Layout,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // SAFETY: the region was allocated in `KallocGlobal::with_heap` with
        // this layout; the heap is never used again after its owner is
        // dropped (it is a plain struct without a destructor touching the
        // region).
        unsafe { System.dealloc(self.heap.base().as_ptr(), self.layout) }
    }
}

/// What the lock-free paths need of the heap, set when it is created.
struct Fast {
    view: FastView,
    key: CacheKey,
}

/// One thread slot's cache, on its own cache lines.
#[repr(align(128))]
struct Slot(UnsafeCell<ThreadCache>);

// SAFETY: the cache of slot `i` is only accessed by the thread that holds
// slot index `i` (`thread_cache::thread_slot`, exclusive until the thread
// exits; the index is handed on with release/acquire ordering).
unsafe impl Sync for Slot {}

/// A lazily initialised heap usable as a [`GlobalAlloc`].
pub struct KallocGlobal {
    heap: Mutex<Option<Inner>>,
    /// The shared magazines (lock order: `cache`, then `heap`).
    cache: Mutex<CpuCache>,
    /// Fast-path view and thread-cache key, set when the heap is created.
    fast: OnceLock<Fast>,
    /// One thread cache per thread slot index.
    slots: [Slot; THREAD_SLOTS],
    len: usize,
}

/// Writes `msg` to stderr and aborts: a broken heap invariant found where
/// no error can be returned (and nothing may be allocated).
#[cold]
#[inline(never)]
fn fatal(msg: &str) -> ! {
    let _ = std::io::stderr().write_all(msg.as_bytes());
    std::process::abort()
}

impl KallocGlobal {
    /// An adapter whose heap will manage `len` bytes (a multiple of 4096,
    /// 64 KiB ..= 1 GiB), allocated on first use.
    pub const fn new(len: usize) -> Self {
        KallocGlobal {
            heap: Mutex::new(None),
            cache: Mutex::new(CpuCache::new()),
            fast: OnceLock::new(),
            slots: [const { Slot(UnsafeCell::new(ThreadCache::new())) }; THREAD_SLOTS],
            len,
        }
    }

    /// Runs `f` on the heap under the lock, creating the heap first if
    /// needed, after returning the calling thread's cached objects, folding
    /// the shared magazine's counters into the heap and returning its
    /// parked large blocks (so that, with no other thread holding objects,
    /// its statistics are exact and show the heap as the kernel's reports
    /// do).
    pub fn with<R>(&self, f: impl FnOnce(&mut Heap) -> R) -> R {
        self.with_thread_cache(|tc| self.flush_thread(tc));
        let mut cache = self.lock_cache();
        self.with_heap(|h| {
            h.magazine_absorb(&mut cache);
            // Damage is counted by the heap and shown by `validate`.
            let _ = h.large_cache_flush(&mut cache);
            f(h)
        })
    }

    /// Gives the heap back everything the calling thread's cache and the
    /// shared magazines hold, and releases empty slabs (`malloc_trim`):
    /// with no live allocation and no other thread holding objects, the
    /// heap is one free block again. Returns how many objects, blocks and
    /// slabs went back; damage the heap found is counted there.
    pub fn trim(&self) -> usize {
        self.with_thread_cache(|tc| self.flush_thread(tc));
        let mut cache = self.lock_cache();
        self.with_heap(|h| {
            let n = h.magazine_flush(&mut cache).unwrap_or(0);
            n + h.shrink().unwrap_or(0)
        })
    }

    /// Objects on the calling thread's lists (0 without a slot).
    pub fn thread_cached(&self) -> usize {
        self.with_thread_cache(|tc| tc.held_total()).unwrap_or(0)
    }

    /// Runs `f` on the calling thread's cache, claiming a slot index first
    /// if the thread holds none; `None` when it cannot get one.
    #[inline(always)]
    fn with_thread_cache<R>(&self, f: impl FnOnce(&mut ThreadCache) -> R) -> Option<R> {
        self.with_cache_at(thread_slot(), f)
    }

    /// Runs `f` on the calling thread's cache if the thread holds a slot
    /// index already (the fast paths: no claim, so no call that returns);
    /// `None` otherwise.
    #[inline(always)]
    fn with_held_cache<R>(&self, f: impl FnOnce(&mut ThreadCache) -> R) -> Option<R> {
        self.with_cache_at(held_slot(), f)
    }

    /// Runs `f` on the cache of `slot`, the slot index the calling thread
    /// holds (`thread_slot` or `held_slot`).
    #[inline(always)]
    fn with_cache_at<R>(
        &self,
        slot: Option<usize>,
        f: impl FnOnce(&mut ThreadCache) -> R,
    ) -> Option<R> {
        let slot = self.slots.get(slot?)?;
        // SAFETY: this thread holds the slot's index, so no other thread
        // uses the cache; the adapter never calls `with_cache_at` while
        // `f` of an outer call runs (the `&mut` is unique).
        Some(f(unsafe { &mut *slot.0.get() }))
    }

    fn lock_cache(&self) -> MutexGuard<'_, CpuCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fast-path state, creating the heap first if needed.
    fn fast(&self) -> &Fast {
        if let Some(f) = self.fast.get() {
            return f;
        }
        self.with_heap(|_| ());
        match self.fast.get() {
            Some(f) => f,
            None => fatal("kalloc: no fast-path state after heap creation\n"),
        }
    }

    /// Allocates `size` bytes (at least 1) aligned to `align`: size-class
    /// requests from the calling thread's cache, else through
    /// [`KallocGlobal::alloc_class`] or [`KallocGlobal::alloc_large`].
    #[inline(always)]
    fn alloc_layout(&self, size: usize, align: usize, zero: bool) -> *mut u8 {
        let Some(class) = thread_class(size, align) else {
            return self.alloc_large(size, align, zero);
        };
        match self.with_held_cache(|tc| self.alloc_listed(tc, class, size, zero)) {
            Some(p) => p,
            None => self.alloc_unheld(class, size, zero),
        }
    }

    /// Allocates an object of `class` for `size` bytes from `tc`, the
    /// calling thread's cache, refilling it if it is empty.
    #[inline(always)]
    fn alloc_listed(&self, tc: &mut ThreadCache, class: usize, size: usize, zero: bool) -> *mut u8 {
        match tc.pop(class) {
            Take::Object(p) => {
                if zero {
                    // SAFETY: the object has at least `size` bytes and now
                    // belongs to the caller.
                    unsafe { p.as_ptr().write_bytes(0, size) };
                }
                p.as_ptr()
            }
            Take::Empty => self.refill_and_alloc(tc, class, size, zero),
            Take::Damaged(_) => fatal("kalloc: thread cache object damaged (write after free)\n"),
        }
    }

    /// [`KallocGlobal::alloc_layout`] of a size-class request when the
    /// calling thread holds no slot index: claims one and allocates from
    /// its cache, or (none left) on the shared path.
    #[cold]
    #[inline(never)]
    fn alloc_unheld(&self, class: usize, size: usize, zero: bool) -> *mut u8 {
        match self.with_thread_cache(|tc| self.alloc_listed(tc, class, size, zero)) {
            Some(p) => p,
            None => self.alloc_class(class, size, zero, None),
        }
    }

    /// Refills the `class` list of `tc` to half its capacity from the
    /// shared magazine (binding `tc` to the heap on first use), then
    /// allocates from it (or on the shared path if nothing could be taken).
    #[cold]
    #[inline(never)]
    fn refill_and_alloc(
        &self,
        tc: &mut ThreadCache,
        class: usize,
        size: usize,
        zero: bool,
    ) -> *mut u8 {
        let f = self.fast();
        tc.set_key(f.key);
        let want = (thread_capacity(class) / 2).max(1);
        {
            let mut cache = self.lock_cache();
            for _ in 0..want {
                let r = cache.alloc_with(&f.view, class, class_size(class), false, |c| {
                    self.with_heap(|h| h.magazine_refill(c, class))
                });
                let Ok(p) = r else { break };
                // SAFETY: an object of `class` just allocated for us; it is
                // live for the heap and counted as allocated.
                if unsafe { tc.list(class, p) } != Put::Done {
                    // Cannot happen (the list was empty): give it back.
                    // SAFETY: as above.
                    unsafe { f.key.mark(p, true) };
                    self.free_shared(&mut cache, &f.view, p.as_ptr());
                    break;
                }
            }
        }
        match tc.pop(class) {
            Take::Object(p) => {
                if zero {
                    // SAFETY: as in `alloc_layout`.
                    unsafe { p.as_ptr().write_bytes(0, size) };
                }
                p.as_ptr()
            }
            _ => self.alloc_class(class, size, zero, Some(tc)),
        }
    }

    /// Allocates an object of size class `class` for `size` bytes through
    /// the shared magazine, else on the heap; when the heap is out of
    /// memory, the shared magazines (and `tc`, the calling thread's cache,
    /// if given) are emptied into it and the request retried.
    fn alloc_class(
        &self,
        class: usize,
        size: usize,
        zero: bool,
        tc: Option<&mut ThreadCache>,
    ) -> *mut u8 {
        let f = self.fast();
        let csize = class_size(class);
        // The cache lock is dropped at the end of this statement.
        let p = self
            .lock_cache()
            .alloc_with(&f.view, class, csize, false, |c| {
                self.with_heap(|h| h.magazine_refill(c, class))
            })
            .ok();
        // Out of memory in the slabs: the shared magazines go back, then
        // the calling thread's objects.
        let p = p
            .or_else(|| self.alloc_after_flush(csize, 8, Flags::NONE))
            .or_else(|| {
                let tc = tc.filter(|tc| tc.held_total() > 0)?;
                self.flush_thread(tc);
                self.alloc_after_flush(csize, 8, Flags::NONE)
            });
        let Some(p) = p else {
            return std::ptr::null_mut();
        };
        // SAFETY: an object of `class` (16 bytes at least) now owned by the
        // caller: it leaves without the key, zeroed if asked.
        unsafe {
            f.key.mark(p, false);
            if zero {
                p.as_ptr().write_bytes(0, size);
            }
        }
        p.as_ptr()
    }

    /// Allocates a large block (not a size-class request): from a parked
    /// block when one fits, else on the heap; when the heap is out of
    /// memory, the shared magazines are emptied into it and the request
    /// retried.
    fn alloc_large(&self, size: usize, align: usize, zero: bool) -> *mut u8 {
        let flags = if zero { Flags::ZERO } else { Flags::NONE };
        if size < LARGE_CACHE_MAX_BLOCK {
            let v = &self.fast().view;
            if let Some(p) = self.lock_cache().alloc_large(v, size, align, zero) {
                return p.as_ptr();
            }
        }
        self.with_heap(|h| h.alloc_flags(size, align, flags))
            .ok()
            .or_else(|| self.alloc_after_flush(size, align, flags))
            .map_or(std::ptr::null_mut(), NonNull::as_ptr)
    }

    /// The last resort before out of memory: empties the shared magazines
    /// (objects and parked blocks) into the heap and allocates there.
    fn alloc_after_flush(&self, size: usize, align: usize, flags: Flags) -> Option<NonNull<u8>> {
        let mut cache = self.lock_cache();
        self.with_heap(|h| {
            let _ = h.magazine_flush(&mut cache);
            h.alloc_flags(size, align, flags).ok()
        })
    }

    /// Frees `obj`, an object of `class` (the layout's), into the calling
    /// thread's cache; false if the cache is not bound to the heap yet (or
    /// `obj` is outside it).
    #[inline(always)]
    fn free_thread(&self, tc: &mut ThreadCache, class: usize, p: *mut u8) -> bool {
        let Some(obj) = tc.key().object(p as usize) else {
            return false;
        };
        #[cfg(debug_assertions)]
        if self
            .fast
            .get()
            .and_then(|f| f.view.locate_ptr(p))
            .map(|at| at.class())
            != Some(class)
        {
            fatal("kalloc: freed pointer is not an object of its layout's size class\n");
        }
        // SAFETY: `obj` is an object of `class` handed out by the adapter
        // that the caller gives up (the `GlobalAlloc` contract).
        match unsafe { tc.push(class, obj) } {
            Put::Done => {}
            Put::Full => self.drain_and_push(tc, class, obj),
            Put::Listed => fatal("kalloc: double free (object already freed)\n"),
        }
        true
    }

    /// [`GlobalAlloc::dealloc`] of a block that is not a size-class object
    /// (its layout is larger than 4096 bytes or aligned to more than 64).
    #[cold]
    #[inline(never)]
    fn free_large(&self, p: *mut u8) {
        self.free_shared(&mut self.lock_cache(), &self.fast().view, p);
    }

    /// [`GlobalAlloc::dealloc`] of an object of `class` when the calling
    /// thread's cache did not take it: claims a slot index if the thread
    /// holds none, binds the cache to the heap and retries, or (no thread
    /// cache) frees it to the shared magazine, marked as free.
    #[cold]
    #[inline(never)]
    fn free_class_slow(&self, class: usize, p: *mut u8) {
        let f = self.fast();
        let Some(obj) = f.key.object(p as usize) else {
            fatal("kalloc: invalid free (pointer outside the heap)\n");
        };
        let done = self.with_thread_cache(|tc| {
            tc.set_key(f.key);
            self.free_thread(tc, class, p)
        });
        if done == Some(true) {
            return;
        }
        // SAFETY: `obj` is an object of `class` (16 bytes at least) that
        // the caller gives up.
        unsafe {
            if f.key.is_marked(obj) {
                fatal("kalloc: double free (object already freed)\n");
            }
            f.key.mark(obj, true);
        }
        self.free_shared(&mut self.lock_cache(), &f.view, p);
    }

    /// Frees `p` (a live object) through the shared magazine, or on the
    /// heap; aborts on an error the heap reports.
    fn free_shared(&self, cache: &mut CpuCache, v: &FastView, p: *mut u8) {
        if let Some(at) = v.locate_ptr(p) {
            let r = cache.free_located_with(v, at, |c, class, keep| {
                let _ = self.with_heap(|h| h.magazine_drain(c, class, keep));
            });
            if r == FastFree::Done {
                return;
            }
        } else if cache.free_large(v, p) == FastFree::Done {
            return;
        }
        if self.with_heap(|h| h.free(p)).is_err() {
            fatal("kalloc: invalid free (double free, foreign or interior pointer)\n");
        }
    }

    /// Moves half of the full `class` list of `tc` to the shared magazine,
    /// then lists `p`.
    #[cold]
    #[inline(never)]
    fn drain_and_push(&self, tc: &mut ThreadCache, class: usize, p: NonNull<u8>) {
        self.drain_class(tc, class, thread_capacity(class) / 2);
        // SAFETY: forwarded from `free_thread`: an object of `class` that
        // the caller gives up.
        if unsafe { tc.push(class, p) } != Put::Done {
            fatal("kalloc: thread cache refused an object after draining\n");
        }
    }

    /// Moves `n` objects of the `class` list of `tc` to the shared magazine
    /// (they keep the key: they are free).
    fn drain_class(&self, tc: &mut ThreadCache, class: usize, n: usize) {
        let v = &self.fast().view;
        let mut cache = self.lock_cache();
        if tc
            .take(class, n, |q| self.free_shared(&mut cache, v, q.as_ptr()))
            .is_err()
        {
            fatal("kalloc: thread cache object damaged (write after free)\n");
        }
    }

    /// Returns every object of `tc` to the shared magazine.
    fn flush_thread(&self, tc: &mut ThreadCache) {
        for class in 0..NUM_CACHES {
            if tc.held(class) > 0 {
                self.drain_class(tc, class, usize::MAX);
            }
        }
    }

    /// Runs `f` on the locked heap, creating it first if needed. Aborts if
    /// the region cannot be obtained (no allocation is possible on that
    /// path, so there is nothing better to do).
    fn with_heap<R>(&self, f: impl FnOnce(&mut Heap) -> R) -> R {
        let mut g = self.heap.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_none() {
            let Ok(layout) = Layout::from_size_align(self.len, REGION_ALIGN) else {
                std::process::abort();
            };
            // SAFETY: non-zero size (checked by `Heap::new` below, and a
            // zero `len` fails `from_size_align` only for huge values).
            let base = unsafe { System.alloc_zeroed(layout) };
            let Some(base) = NonNull::new(base) else {
                std::process::abort();
            };
            // SAFETY: the region is freshly allocated, exclusively owned by
            // `Inner`, and freed only after the heap is gone.
            match unsafe { Heap::new(base, self.len) } {
                Ok(heap) => {
                    // A secret per heap: the hasher's random keys (from the
                    // OS, without allocating) over the region's address.
                    let seed = RandomState::new().hash_one(base.as_ptr() as usize);
                    let _ = self.fast.set(Fast {
                        // SAFETY: the view lives in `self` with the heap;
                        // both go away together when the adapter is dropped.
                        view: unsafe { heap.fast_view() },
                        key: CacheKey::new(base, self.len, seed),
                    });
                    *g = Some(Inner { heap, layout })
                }
                Err(_) => {
                    // SAFETY: allocated just above with this layout.
                    unsafe { System.dealloc(base.as_ptr(), layout) };
                    std::process::abort();
                }
            }
        }
        match g.as_mut() {
            Some(inner) => f(&mut inner.heap),
            None => std::process::abort(),
        }
    }
}

// SAFETY: the heap returns suitably aligned, non-overlapping blocks of at
// least the requested size or null; frees only pointers it handed out. An
// object on a thread cache's list is live for the heap and handed out again
// only by that list. Every pointer handed out for a layout with a size
// class (`thread_class`) is an object of exactly that class, also after
// `realloc`, so `dealloc` may take the class from the layout, as the
// `GlobalAlloc` contract allows.
unsafe impl GlobalAlloc for KallocGlobal {
    #[inline]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        self.alloc_layout(l.size().max(1), l.align(), false)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        self.alloc_layout(l.size().max(1), l.align(), true)
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        let Some(class) = thread_class(l.size().max(1), l.align()) else {
            return self.free_large(p);
        };
        if self.with_held_cache(|tc| self.free_thread(tc, class, p)) != Some(true) {
            self.free_class_slow(class, p);
        }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let align = l.align();
        let from = thread_class(l.size().max(1), align);
        match (from, thread_class(new.max(1), align)) {
            // The object already has room (and the class stays the layout's).
            (Some(a), Some(b)) if a == b => return p,
            // Large to large: in place when the heap can (16-aligned if moved).
            (None, None) if align <= 16 => {
                return self.with_heap(|h| {
                    h.realloc(p, new.max(1))
                        .map_or(std::ptr::null_mut(), NonNull::as_ptr)
                })
            }
            _ => {}
        }
        // SAFETY: forwarded contract; copy then free the old block.
        unsafe {
            let n = self.alloc(Layout::from_size_align_unchecked(new, align));
            if !n.is_null() {
                std::ptr::copy_nonoverlapping(p, n, l.size().min(new));
                self.dealloc(p, l);
            }
            n
        }
    }
}
