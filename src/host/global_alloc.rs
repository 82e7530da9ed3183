// SPDX-License-Identifier: GPL-2.0

//! `GlobalAlloc` adapter over a [`Heap`] behind a `std::sync::Mutex`, with
//! a magazine layer in front of it: size-class requests and large blocks of
//! up to 32 KiB go through one [`CpuCache`] behind its own mutex (the
//! kernel's per-CPU path with a single "CPU"), so the heap mutex is taken
//! only to refill or drain magazines and for the other large blocks.
//!
//! The region (`len` bytes, 64 KiB aligned, zeroed) is taken from
//! [`std::alloc::System`] on first use, so the adapter works both as a
//! `#[global_allocator]` (it never allocates through the global allocator
//! itself) and as a plain value called directly (benches). The region is
//! returned to the system when the adapter is dropped.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::NonNull;
use std::sync::{Mutex, OnceLock};

use crate::allocator::{
    size_class_for, CpuCache, FastFree, FastView, Flags, Heap, LARGE_CACHE_MAX_BLOCK,
};

/// Alignment of the region handed to the heap.
const REGION_ALIGN: usize = 64 * 1024;

/// The heap and the system allocation backing it.
struct Inner {
    heap: Heap,
    layout: Layout,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // SAFETY: the region was allocated in `KallocGlobal::with` with this
        // layout; the heap is never used again after its owner is dropped
        // (it is a plain struct without a destructor touching the region).
        unsafe { System.dealloc(self.heap.base().as_ptr(), self.layout) }
    }
}

/// A lazily initialised heap usable as a [`GlobalAlloc`].
pub struct KallocGlobal {
    heap: Mutex<Option<Inner>>,
    /// The magazines (lock order: `cache`, then `heap`).
    cache: Mutex<CpuCache>,
    /// Fast-path view of the heap, set when the heap is created.
    view: OnceLock<FastView>,
    len: usize,
}

impl KallocGlobal {
    /// An adapter whose heap will manage `len` bytes (a multiple of 4096,
    /// 64 KiB ..= 1 GiB), allocated on first use.
    pub const fn new(len: usize) -> Self {
        KallocGlobal {
            heap: Mutex::new(None),
            cache: Mutex::new(CpuCache::new()),
            view: OnceLock::new(),
            len,
        }
    }

    /// Runs `f` on the heap under the lock, creating the heap first if
    /// needed, after folding the magazine's counters into it and returning
    /// its parked large blocks (so its statistics are exact and show the
    /// heap as the kernel's reports do).
    pub fn with<R>(&self, f: impl FnOnce(&mut Heap) -> R) -> R {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        self.with_heap(|h| {
            h.magazine_absorb(&mut cache);
            // Damage is counted by the heap and shown by `validate`.
            let _ = h.large_cache_flush(&mut cache);
            f(h)
        })
    }

    /// The fast-path view, creating the heap first if needed.
    fn view(&self) -> &FastView {
        if let Some(v) = self.view.get() {
            return v;
        }
        self.with_heap(|_| ());
        match self.view.get() {
            Some(v) => v,
            None => std::process::abort(),
        }
    }

    /// Allocates through the magazine when `size`/`align` is a size class,
    /// from a parked block when one fits, else on the heap; when the heap is
    /// out of memory, the cache is emptied into it and the request retried.
    fn alloc_fast(&self, size: usize, align: usize, flags: Flags) -> *mut u8 {
        let zero = flags.contains(Flags::ZERO);
        let class = size_class_for(size, align);
        if class.is_none() && size < LARGE_CACHE_MAX_BLOCK {
            let v = self.view();
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(p) = cache.alloc_large(v, size, align, zero) {
                return p.as_ptr();
            }
        }
        if let Some(class) = class {
            let v = self.view();
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            let r = cache.alloc_with(v, class, size, zero, |c| {
                self.with_heap(|h| h.magazine_refill(c, class))
            });
            if let Ok(p) = r {
                return p.as_ptr();
            }
            // Out of memory in the slabs: give the magazine back, retry
            // below on the heap.
            self.with_heap(|h| {
                let _ = h.magazine_flush(&mut cache);
            });
        }
        let p = self.with_heap(|h| h.alloc_flags(size, align, flags));
        if let Ok(p) = p {
            return p.as_ptr();
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        self.with_heap(|h| {
            let _ = h.magazine_flush(&mut cache);
            h.alloc_flags(size, align, flags)
                .map_or(std::ptr::null_mut(), NonNull::as_ptr)
        })
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
                    // SAFETY: the view lives in `self` with the heap; both
                    // go away together when the adapter is dropped.
                    let _ = self.view.set(unsafe { heap.fast_view() });
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
// least the requested size or null; frees only pointers it handed out.
unsafe impl GlobalAlloc for KallocGlobal {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        self.alloc_fast(l.size().max(1), l.align(), Flags::NONE)
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        self.alloc_fast(l.size().max(1), l.align(), Flags::ZERO)
    }

    unsafe fn dealloc(&self, p: *mut u8, _l: Layout) {
        let v = self.view();
        if let Some(at) = v.locate_ptr(p) {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            let r = cache.free_located_with(v, at, |c, class, keep| {
                let _ = self.with_heap(|h| h.magazine_drain(c, class, keep));
            });
            if r == FastFree::Done {
                return;
            }
        } else {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.free_large(v, p) == FastFree::Done {
                return;
            }
        }
        if self.with_heap(|h| h.free(p)).is_err() {
            // No allocation possible here; abort on a broken invariant.
            std::process::abort();
        }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if l.align() <= 8 {
            // On the heap directly: an object from the magazine is live for
            // the heap as well, and a moved one is freed through the heap.
            return self.with_heap(|h| {
                h.realloc(p, new.max(1))
                    .map_or(std::ptr::null_mut(), NonNull::as_ptr)
            });
        }
        // SAFETY: forwarded contract; copy then free the old block.
        unsafe {
            let n = self.alloc(Layout::from_size_align_unchecked(new, l.align()));
            if !n.is_null() {
                std::ptr::copy_nonoverlapping(p, n, l.size().min(new));
                self.dealloc(p, l);
            }
            n
        }
    }
}
