// SPDX-License-Identifier: GPL-2.0

//! Per-thread object caches of the `GlobalAlloc` adapter (host only).
//!
//! The kernel's fast path is a per-CPU magazine (`allocator::magazine`)
//! that keeps the slab bitmap exact: an object in a magazine is *not* live,
//! so every fast allocation and free flips the object's bitmap bit with one
//! atomic operation, and `stats`/`validate` reach every CPU's magazine
//! through an IPI. A user-space allocator has threads instead of CPUs and
//! no IPI, so the adapter puts a lighter layer in front of its magazine,
//! as glibc's tcache and mimalloc's thread-local free lists do:
//!
//! * A [`ThreadCache`] keeps, per size class from 16 bytes on
//!   ([`FIRST_CLASS`]), a LIFO list of freed objects linked through their
//!   first word. Objects on a list stay *live* for the heap (bitmap bit
//!   set, counted as allocated), so the heap and `validate` are consistent
//!   whatever the lists hold; the adapter moves objects between a list and
//!   its shared magazine in batches of half a list.
//! * Every free object of the adapter carries the adapter's secret key in
//!   its second word: a listed one, and one the adapter gave back to the
//!   heap (the slabs' free-list link is the first word, so the key stays
//!   while the object is free there). Every object the adapter hands out
//!   has that word cleared. So a free of an object that carries the key is
//!   a double free, whether the object is on a list or back in the heap.
//!   A listed object's link is stored XORed with the key, and an allocation
//!   checks the key and the decoded link (inside the region, 16-aligned)
//!   of the object it takes, so a write after free into a listed object is
//!   caught before a wild link is followed.
//! * Every thread owns one of [`THREAD_SLOTS`] slot indices, claimed on
//!   first use and released when the thread exits; an adapter has one
//!   `ThreadCache` per index, so a cache is only ever used by the thread
//!   holding its index. A slot's objects stay in it when its thread exits
//!   and serve the next thread that claims the index. Threads beyond the
//!   limit, and a thread whose thread-local storage is being torn down,
//!   use the shared path.

use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::allocator::config::NUM_CACHES;
use crate::allocator::{magazine_capacity, size_class_for};

/// Thread slot indices (threads beyond this many at once use the shared
/// path).
pub const THREAD_SLOTS: usize = 256;

/// The first size class with a thread cache (16 bytes): a listed object
/// needs two words, the link and the key. Smaller requests are served from
/// this class.
pub const FIRST_CLASS: usize = 1;

/// Objects a list of class `class` holds at most: the class's magazine
/// capacity (128, at most 64 KiB of objects); 0 below [`FIRST_CLASS`].
pub const fn thread_capacity(class: usize) -> usize {
    if class < FIRST_CLASS {
        0
    } else {
        magazine_capacity(class)
    }
}

/// The size class a thread cache serves `size` bytes (at least 1) aligned
/// to `align` (a power of two) from, or `None` when the request is not a
/// size-class request (larger than 4096 bytes or aligned to more than 64).
#[inline(always)]
pub fn thread_class(size: usize, align: usize) -> Option<usize> {
    size_class_for(size.max(16), align)
}

/// The heap a thread cache belongs to: its region (for the provenance and
/// bounds of objects) and the secret key.
#[derive(Clone, Copy, Debug)]
pub struct CacheKey {
    base: NonNull<u8>,
    len: usize,
    key: usize,
}

// SAFETY: a `CacheKey` is an address range and a number; it is only
// dereferenced by methods whose callers own the objects.
unsafe impl Send for CacheKey {}
// SAFETY: see `Send`; it is never written after creation.
unsafe impl Sync for CacheKey {}

impl CacheKey {
    /// The key of the heap over `base..base + len`, with `seed` (random,
    /// secret) as the key. The key is never 0, so that a cleared second
    /// word never reads as "free".
    pub fn new(base: NonNull<u8>, len: usize, seed: u64) -> Self {
        CacheKey {
            base,
            len,
            key: (seed as usize) | 1,
        }
    }

    /// The key of no heap: it finds no object (an unused thread cache).
    pub const fn none() -> Self {
        CacheKey {
            base: NonNull::dangling(),
            len: 0,
            key: 1,
        }
    }

    /// The object at address `addr`, if `addr` is 16-aligned and inside the
    /// region (0, the end of a list, is `None` too).
    #[inline(always)]
    pub fn object(&self, addr: usize) -> Option<NonNull<u8>> {
        let off = addr.wrapping_sub(self.base.as_ptr() as usize);
        if off >= self.len || addr & 15 != 0 {
            return None;
        }
        // SAFETY: inside the region, whose base is not null, so not null.
        Some(unsafe { NonNull::new_unchecked(self.base.as_ptr().add(off)) })
    }

    /// Whether the object `obj` carries the key (it is free).
    ///
    /// # Safety
    ///
    /// `obj` must be an object of at least 16 bytes, 16-aligned, of the
    /// heap this key belongs to, that the caller may read.
    #[inline(always)]
    pub unsafe fn is_marked(&self, obj: NonNull<u8>) -> bool {
        // SAFETY: forwarded from the caller.
        unsafe { obj.cast::<usize>().add(1).read() == self.key }
    }

    /// Writes the key into `obj` (before it goes back to the heap) or, with
    /// `on` false, clears it (before it is handed out).
    ///
    /// # Safety
    ///
    /// As for [`CacheKey::is_marked`], and the caller owns the object.
    #[inline(always)]
    pub unsafe fn mark(&self, obj: NonNull<u8>, on: bool) {
        let v = if on { self.key } else { 0 };
        // SAFETY: forwarded from the caller.
        unsafe { obj.cast::<usize>().add(1).write(v) }
    }
}

/// Outcome of [`ThreadCache::pop`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    /// The object (its key cleared by `pop`, kept by `take`).
    Object(NonNull<u8>),
    /// The list is empty: refill it.
    Empty,
    /// The top object's key or link was overwritten (a write after free):
    /// nothing was taken and the list must not be used again.
    Damaged(NonNull<u8>),
}

/// Outcome of [`ThreadCache::push`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Put {
    /// The object is on the list.
    Done,
    /// The list is full: move half of it out and retry.
    Full,
    /// The object carries the key: it is free already (a double free).
    Listed,
}

/// Most objects a list holds, per class.
const CAPACITY: [u32; NUM_CACHES] = {
    let mut c = [0; NUM_CACHES];
    let mut class = FIRST_CLASS;
    while class < NUM_CACHES {
        c[class] = thread_capacity(class) as u32;
        class += 1;
    }
    c
};

/// One thread's lists, one per size class from [`FIRST_CLASS`] on, and
/// the key of the heap they belong to.
#[derive(Debug)]
pub struct ThreadCache {
    /// Address of the top object per class, 0 when empty.
    heads: [usize; NUM_CACHES],
    counts: [u32; NUM_CACHES],
    key: CacheKey,
}

impl Default for ThreadCache {
    fn default() -> Self {
        Self::new()
    }
}

impl ThreadCache {
    /// Empty lists of no heap yet ([`ThreadCache::set_key`]).
    pub const fn new() -> Self {
        ThreadCache {
            heads: [0; NUM_CACHES],
            counts: [0; NUM_CACHES],
            key: CacheKey::none(),
        }
    }

    /// The key of the heap the lists belong to ([`CacheKey::none`] until
    /// set).
    #[inline(always)]
    pub fn key(&self) -> &CacheKey {
        &self.key
    }

    /// Binds the (empty) lists to a heap.
    pub fn set_key(&mut self, k: CacheKey) {
        if self.held_total() == 0 {
            self.key = k;
        }
    }

    /// Objects listed for `class`.
    pub fn held(&self, class: usize) -> usize {
        self.counts.get(class).map_or(0, |&n| n as usize)
    }

    /// Objects listed over all classes.
    pub fn held_total(&self) -> usize {
        self.counts.iter().map(|&n| n as usize).sum()
    }

    /// Takes the top object of `class`, checking its key and link, and
    /// clears its key: the object goes to a user.
    #[inline(always)]
    pub fn pop(&mut self, class: usize) -> Take {
        let t = self.unlist(class);
        if let Take::Object(obj) = t {
            // SAFETY: a listed object (16 bytes at least, 16-aligned) that
            // the caller now owns.
            unsafe { self.key.mark(obj, false) };
        }
        t
    }

    /// Takes the top object of `class` off the list, checking its key and
    /// link; the key stays (the object stays free).
    #[inline(always)]
    fn unlist(&mut self, class: usize) -> Take {
        let k = self.key;
        let (Some(head), Some(count)) = (self.heads.get_mut(class), self.counts.get_mut(class))
        else {
            return Take::Empty;
        };
        // The head is 0 or an object checked when it was listed or linked.
        let Some(obj) = NonNull::new(k.base.as_ptr().with_addr(*head)) else {
            return Take::Empty;
        };
        let words = obj.cast::<usize>();
        // SAFETY: `obj` is a listed object of this heap (listed by `list`
        // or reached through a link checked below on an earlier call): at
        // least 16 bytes, 16-aligned, owned by this list.
        let (link, key) = unsafe { (words.read(), words.add(1).read()) };
        let next = link ^ k.key;
        if key != k.key || (next != 0 && k.object(next).is_none()) {
            return Take::Damaged(obj);
        }
        *head = next;
        *count -= 1;
        Take::Object(obj)
    }

    /// Lists `obj`, an object of class `class` that the caller frees;
    /// [`Put::Listed`] if it carries the key already (a double free).
    ///
    /// # Safety
    ///
    /// `obj` must be the start of an object of class `class` of this
    /// cache's heap, handed out by the adapter and owned by the caller,
    /// which does not use it again.
    #[inline(always)]
    pub unsafe fn push(&mut self, class: usize, obj: NonNull<u8>) -> Put {
        // SAFETY: forwarded from the caller (16 bytes at least, 16-aligned,
        // class >= FIRST_CLASS).
        if unsafe { self.key.is_marked(obj) } {
            return Put::Listed;
        }
        // SAFETY: forwarded from the caller.
        unsafe { self.list(class, obj) }
    }

    /// Lists `obj`, a free object of class `class` that the caller took
    /// from the heap to refill the list (it may carry the key from an
    /// earlier visit).
    ///
    /// # Safety
    ///
    /// `obj` must be the start of an object of class `class` of this
    /// cache's heap, live for the heap and owned by the caller.
    #[inline(always)]
    pub unsafe fn list(&mut self, class: usize, obj: NonNull<u8>) -> Put {
        let key = self.key.key;
        let (Some(head), Some(count), Some(&cap)) = (
            self.heads.get_mut(class),
            self.counts.get_mut(class),
            CAPACITY.get(class),
        ) else {
            return Put::Full;
        };
        if *count >= cap {
            return Put::Full;
        }
        let words = obj.cast::<usize>();
        // SAFETY: the caller hands over an object of at least 16 bytes,
        // 16-aligned.
        unsafe {
            words.write(*head ^ key);
            words.add(1).write(key);
        }
        *head = obj.as_ptr() as usize;
        *count += 1;
        Put::Done
    }

    /// Takes up to `n` objects of `class` off the list (they keep the key:
    /// they go back to the heap) and hands each to `f`. Returns how many
    /// were taken; stops at a damaged object, whose address it returns as
    /// the error.
    pub fn take(
        &mut self,
        class: usize,
        n: usize,
        mut f: impl FnMut(NonNull<u8>),
    ) -> Result<usize, NonNull<u8>> {
        for done in 0..n {
            match self.unlist(class) {
                Take::Object(p) => f(p),
                Take::Empty => return Ok(done),
                Take::Damaged(p) => return Err(p),
            }
        }
        Ok(n)
    }
}

/// Claimed slot indices, one bit each.
static SLOT_BITS: [AtomicU64; THREAD_SLOTS / 64] = [const { AtomicU64::new(0) }; THREAD_SLOTS / 64];

/// Releases the thread's slot index when the thread exits.
struct SlotGuard;

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let i = SLOT.with(|s| s.replace(THREAD_SLOTS));
        if let Some(bits) = SLOT_BITS.get(i / 64) {
            // Release: the next holder sees the lists as this thread left them.
            bits.fetch_and(!(1 << (i % 64)), Ordering::Release);
        }
    }
}

std::thread_local! {
    /// The thread's slot index, [`THREAD_SLOTS`] while it holds none. No
    /// destructor, so reading it is one load.
    static SLOT: Cell<usize> = const { Cell::new(THREAD_SLOTS) };
    /// Registered with the claim; its destructor gives the index back.
    static GUARD: SlotGuard = const { SlotGuard };
}

/// Claims a free slot index for the calling thread; `None` when all are
/// taken or the thread is exiting (its guard is gone: an index claimed now
/// would never be given back).
#[cold]
#[inline(never)]
fn claim() -> Option<usize> {
    // Touching the guard registers its destructor.
    GUARD.try_with(|_| ()).ok()?;
    for (w, bits) in SLOT_BITS.iter().enumerate() {
        let mut v = bits.load(Ordering::Relaxed);
        while v != u64::MAX {
            let bit = (!v).trailing_zeros();
            // Acquire: the slot's lists as the last holder left them.
            match bits.compare_exchange_weak(v, v | 1 << bit, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => {
                    let i = w * 64 + bit as usize;
                    SLOT.with(|s| s.set(i));
                    return Some(i);
                }
                Err(now) => v = now,
            }
        }
    }
    None
}

/// The calling thread's slot index if it holds one; never claims. The
/// adapter's fast paths use this, so that they make no call that returns
/// (a thread without an index takes the slow path, which claims one).
#[inline(always)]
pub fn held_slot() -> Option<usize> {
    let i = SLOT.with(Cell::get);
    (i < THREAD_SLOTS).then_some(i)
}

/// The calling thread's slot index, claimed on first use; `None` when all
/// are taken or the thread is exiting.
#[inline(always)]
pub fn thread_slot() -> Option<usize> {
    held_slot().or_else(claim)
}
