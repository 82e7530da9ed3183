// SPDX-License-Identifier: GPL-2.0

//! The C API of `include/ikos_kalloc.h`, for other kernel modules.
//!
//! The functions are `#[no_mangle] extern "C"` here and exported with
//! `EXPORT_SYMBOL_GPL` by `src/ikos_kalloc_export.c`. They reach the heap
//! through [`CURRENT`], which module init publishes once the state is
//! complete and module exit clears before tearing it down. A module that
//! calls them holds a reference on ikos_kalloc (symbol dependency), so
//! ikos_kalloc cannot be unloaded while such a caller is loaded.
//!
//! Nothing here sleeps (the fast path runs with preemption off and falls
//! back to the locked heap when it interrupted itself, the rest runs under
//! the heap's IRQ-safe spinlock), so every function may be called
//! from any context kmalloc may be called from; statistics and validation also wait for the other
//! CPUs (IPIs, see `percpu`), so they answer `EAGAIN` where that is not
//! allowed and while CPU hotplug is in progress. Pointers passed in are only ever compared against
//! the heap and checked by the allocator, never followed blindly: a bad
//! pointer is reported and counted, not dereferenced.

use super::{
    errors::{cache_errno, rate_limited, Shown},
    state::Kalloc,
};
use crate::allocator::{CacheError, CacheId, Corruption, Flags, Heap, HeldSums, ReallocError};
use core::{
    ffi::c_void,
    ptr,
    sync::atomic::{AtomicPtr, Ordering},
};
use kernel::{prelude::*, sync::Arc};

/// The loaded module's state, or null outside its lifetime. A core atomic:
/// every C API call loads it, and the kernel's `Atomic` load is an
/// out-of-line helper call (as for the busy flags in `percpu`).
static CURRENT: AtomicPtr<Kalloc> = AtomicPtr::new(ptr::null_mut());

/// Makes `state` reachable through the C API. Called by init once the
/// state is built, before the debugfs files are created.
pub(crate) fn publish(state: &Arc<Kalloc>) {
    CURRENT.store(Arc::as_ptr(state).cast_mut(), Ordering::Release);
}

/// Makes the C API return errors from now on. Called at exit once the
/// debugfs files are gone, and by an init that fails after publishing.
pub(crate) fn retract() {
    CURRENT.store(ptr::null_mut(), Ordering::Release);
}

/// The module state, or `None` when it is not available.
fn state() -> Option<&'static Kalloc> {
    let p = CURRENT.load(Ordering::Acquire);
    // SAFETY: a non-null `CURRENT` points into the `Arc<Kalloc>` held by the
    // module: published once init has built it (and cleared again if init
    // then fails), cleared before exit drops it. Callers are other modules
    // holding a reference on this one, so exit cannot run while they are
    // inside these functions, and this module's own `bench` and `stress`,
    // whose debugfs files are removed before the state is cleared.
    unsafe { p.as_ref() }
}

/// Runs `f` on the locked heap, or returns `None` when it is not available.
fn with_heap<R>(f: impl FnOnce(&mut Heap) -> R) -> Option<R> {
    Some(f(&mut state()?.heap.lock()))
}

/// Runs `f` on the locked heap with the fast path paused and every CPU's
/// counters folded in (exact statistics and validation). `ENODEV` when the
/// heap is not available, `EAGAIN` (`EWOULDBLOCK`) where the context cannot
/// wait for the other CPUs (interrupts disabled, interrupt handler) or a
/// CPU is being brought online or offline.
fn with_quiesced<R>(f: impl FnOnce(&mut Heap, Result<HeldSums, Corruption>) -> R) -> Result<R> {
    state()
        .ok_or(ENODEV)?
        .try_quiesced(false, f)
        .ok_or_else(|| {
            rate_limited(
                &"statistics and validation need a context that can wait for other CPUs (and no CPU hotplug in progress)",
            );
            EAGAIN
        })
}

/// Encodes a cache id as the opaque C handle (never null).
fn cache_handle(id: CacheId) -> *mut c_void {
    (id.to_raw() as usize + 1) as *mut c_void
}

/// Decodes an opaque C handle; `None` for null or a value no handle has.
fn cache_id(handle: *mut c_void) -> Option<CacheId> {
    let raw = (handle as usize).checked_sub(1)?;
    u32::try_from(raw).ok().map(CacheId::from_raw)
}

fn out(p: Option<Option<core::ptr::NonNull<u8>>>) -> *mut c_void {
    p.flatten().map_or(ptr::null_mut(), |p| p.as_ptr().cast())
}

/// The allocation functions: the per-CPU pop inlined, then a tail call to
/// the rest (see [`Kalloc::alloc_ptr`]).
#[inline(always)]
fn alloc(size: usize, align: usize, flags: Flags) -> *mut c_void {
    match state() {
        Some(k) => k.alloc_ptr(size, align, flags).cast(),
        None => ptr::null_mut(),
    }
}

// The section of the two fast-path entry points, aligned to a page, so
// that they never straddle a page boundary whatever the rest of the
// module's text does (the functions carry `link_section`; together they
// are under 1 KiB). Under QEMU's TCG a jump to code on another guest page
// cannot be chained and takes a lookup: with identical machine code, a
// layout where `ikos_kalloc` crossed a page measured 1.09 to 1.11x
// kmalloc on pair64 against 0.99x (README, "In-kernel benchmark").
core::arch::global_asm!(
    ".pushsection .text.ikos_hot,\"ax\",@progbits",
    ".p2align 12",
    ".popsection",
);

#[no_mangle]
#[link_section = ".text.ikos_hot"]
extern "C" fn ikos_kalloc(size: usize) -> *mut c_void {
    alloc(size, 8, Flags::NONE)
}

#[no_mangle]
extern "C" fn ikos_kalloc_aligned(size: usize, align: usize) -> *mut c_void {
    alloc(size, align, Flags::NONE)
}

#[no_mangle]
extern "C" fn ikos_kalloc_flags(size: usize, flags: u32) -> *mut c_void {
    if flags & !Flags::ALL.bits() != 0 {
        rate_limited(&"ikos_kalloc_flags: unknown flag bits");
        return ptr::null_mut();
    }
    alloc(size, 8, Flags::from_bits_truncate(flags))
}

#[no_mangle]
#[link_section = ".text.ikos_hot"]
extern "C" fn ikos_kfree(p: *mut c_void) {
    if let Some(k) = state() {
        if !k.free_fast(p.cast()) {
            free_slow(k, p);
        }
    }
}

/// [`ikos_kfree`] after the inlined magazine push declined: out of line,
/// so the common case needs no stack frame.
#[inline(never)]
fn free_slow(k: &Kalloc, p: *mut c_void) {
    if let Err(e) = k.free_slow(p.cast()) {
        rate_limited(&e);
    }
}

/// `krealloc` for the heap: see `Kalloc::realloc`. Null for a size of 0
/// (after freeing `p`) and on failure (`p` untouched); a bad `p` is
/// reported in dmesg and counted, like a bad free.
#[no_mangle]
extern "C" fn ikos_krealloc(p: *mut c_void, new_size: usize) -> *mut c_void {
    let Some(k) = state() else {
        return ptr::null_mut();
    };
    match k.realloc(p.cast(), new_size) {
        Ok(q) => out(Some(q)),
        Err(ReallocError::Free(e)) => {
            rate_limited(&ReallocError::Free(e));
            ptr::null_mut()
        }
        // Counted by the heap, as a failed allocation is, and not logged.
        Err(ReallocError::Alloc(_)) => ptr::null_mut(),
    }
}

/// # Safety
///
/// `name` must be null or point to a NUL-terminated string.
#[no_mangle]
unsafe extern "C" fn ikos_kalloc_cache_create(
    name: *const c_char,
    object_size: usize,
    align: usize,
) -> *mut c_void {
    if name.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: non-null and NUL-terminated by the caller's contract.
    let name = unsafe { CStr::from_char_ptr(name) };
    let Ok(name) = name.to_str() else {
        return ptr::null_mut();
    };
    match with_heap(|h| h.cache_create(name, object_size, align)) {
        Some(Ok(id)) => cache_handle(id),
        Some(Err(e)) => {
            rate_limited(&e);
            ptr::null_mut()
        }
        None => ptr::null_mut(),
    }
}

#[no_mangle]
extern "C" fn ikos_kalloc_cache_alloc(cache: *mut c_void) -> *mut c_void {
    let Some(id) = cache_id(cache) else {
        return ptr::null_mut();
    };
    out(with_heap(|h| h.cache_alloc(id).ok()))
}

#[no_mangle]
extern "C" fn ikos_kalloc_cache_free(cache: *mut c_void, p: *mut c_void) {
    let Some(id) = cache_id(cache) else {
        rate_limited(&"ikos_kalloc_cache_free: null cache");
        return;
    };
    if let Some(Err(e)) = with_heap(|h| h.cache_free(id, p.cast())) {
        rate_limited(&e);
    }
}

#[no_mangle]
extern "C" fn ikos_kalloc_cache_destroy(cache: *mut c_void) -> c_int {
    let Some(id) = cache_id(cache) else {
        return ENOENT.to_errno();
    };
    match with_heap(|h| h.cache_destroy(id)) {
        Some(Ok(())) => 0,
        Some(Err(e)) => {
            if let CacheError::Corrupted(_) = e {
                rate_limited(&e);
            }
            cache_errno(e).to_errno()
        }
        None => ENODEV.to_errno(),
    }
}

#[no_mangle]
extern "C" fn ikos_kalloc_usable_size(p: *const c_void) -> usize {
    with_heap(|h| h.usable_size(p.cast()))
        .flatten()
        .unwrap_or(0)
}

#[no_mangle]
extern "C" fn ikos_kalloc_is_valid_pointer(p: *const c_void) -> bool {
    with_heap(|h| h.is_valid_pointer(p.cast())).unwrap_or(false)
}

#[no_mangle]
extern "C" fn ikos_kalloc_validate_heap() -> c_int {
    match with_quiesced(|h, mags| mags.and_then(|m| h.validate_with(&m))) {
        Ok(Ok(_)) => 0,
        Ok(Err(c)) => {
            pr_err!("ikos_kalloc_validate_heap: {}\n", Shown(&c));
            EIO.to_errno()
        }
        Err(e) => e.to_errno(),
    }
}

/// `struct ikos_kalloc_stats` of `include/ikos_kalloc.h`.
#[repr(C)]
struct CStats {
    heap_size: u64,
    used_bytes: u64,
    free_bytes: u64,
    requested_bytes: u64,
    usable_bytes: u64,
    overhead_bytes: u64,
    largest_free_block: u64,
    fragmentation_pct: u64,
    total_allocs: u64,
    total_frees: u64,
    active_allocs: u64,
    failed_allocs: u64,
    double_frees: u64,
    invalid_frees: u64,
    corruptions: u64,
    slabs_total: u64,
}

/// # Safety
///
/// `o` must be null or point to a writable `struct ikos_kalloc_stats`.
#[no_mangle]
unsafe extern "C" fn ikos_kalloc_get_stats(o: *mut CStats) -> c_int {
    if o.is_null() {
        return EINVAL.to_errno();
    }
    let s = match with_quiesced(|h, _| h.stats()) {
        Ok(s) => s,
        Err(e) => return e.to_errno(),
    };
    let c = CStats {
        heap_size: s.heap_size as u64,
        used_bytes: s.used_bytes as u64,
        free_bytes: s.free_bytes as u64,
        requested_bytes: s.requested_bytes,
        usable_bytes: s.usable_bytes as u64,
        overhead_bytes: s.overhead_bytes as u64,
        largest_free_block: s.largest_free_block as u64,
        fragmentation_pct: u64::from(s.fragmentation_pct),
        total_allocs: s.total_allocs,
        total_frees: s.total_frees,
        active_allocs: s.active_allocs,
        failed_allocs: s.failed_allocs,
        double_frees: s.double_frees,
        invalid_frees: s.invalid_frees,
        corruptions: s.corruptions,
        slabs_total: s.slabs_total as u64,
    };
    // SAFETY: non-null and writable by the caller's contract.
    unsafe { o.write(c) };
    0
}
