// SPDX-License-Identifier: GPL-2.0

//! Per-CPU magazines: the lock-free fast path of the built-in size classes.
//!
//! A [`CpuCache`] holds, per size class, a *magazine* (Bonwick): a small
//! stack of free objects taken from the slabs in batches. The kernel glue
//! keeps one `CpuCache` per CPU, used only by that CPU with preemption off
//! and a per-CPU busy flag, no lock; the heap lock is only taken to refill an empty magazine or
//! drain a full one, through the magazine depot (`depot`) when it has
//! objects or room. A `CpuCache` also parks freed large blocks
//! (`large_cache`).
//!
//! Object states. A slab object is *free* (on its slab's free list or
//! beyond the bump index), *cached* (held by a magazine or the depot) or
//! *live* (owned by a user). Slab counts (`inuse`, `active_objs`, `used_bytes`) count cached
//! and live objects alike, so a slab holding magazine objects is never
//! released. The slab bitmap bit means *live*: the fast path sets it on
//! alloc and clears it on free with one atomic bit operation, so
//!
//! * double-free detection stays exact: a free of an object whose bit is
//!   clear (cached or free) is handed to the locked slow path, which
//!   classifies and counts it exactly as before;
//! * `usable_size`/`is_valid_pointer` stay exact, also across CPUs.
//!
//! The fast free path needs only the page-map entry of the object's page
//! (`fast_view`). The refills, drains and the rest of what the heap does
//! with a `CpuCache` under its lock are in `magazine_heap`.
//!
//! Accounting. Fast-path allocations (and their requested bytes) are
//! counted in the `CpuCache`; frees and reuses are not counted one by one
//! but follow from how the magazine changed (see [`ClassEvents`]). Both are
//! folded into the heap counters by [`Heap::magazine_absorb`]; the heap also knows
//! how many objects it handed to magazines (`magazine_objects`). Once every
//! `CpuCache` is absorbed (the glue does that before `stats`, `validate`,
//! `caches` and `heapmap`, with the fast path paused), the statistics are
//! exact and `validate` checks per class that the taken objects without a
//! live bit are exactly the magazine objects.
//!
//! Limit, as in every allocator with a lock-free free path: a double free
//! racing on another CPU with the release of the object's (then empty) slab
//! may flip a bit in memory that slab no longer owns. Sequential double
//! frees, including ones after the slab was released, are detected.

use core::ptr::NonNull;

use super::config::{class_size, MIN_SIZE, NUM_CACHES};
use super::error::AllocError;
use super::fast_view::{bitmap_to_last_object, FastView, Located};
#[cfg(doc)]
use super::heap::Heap;
use super::large_cache::LargeCache;

/// Slots of a magazine (the most any class uses).
pub const MAGAZINE_SLOTS: usize = 128;

/// Objects the magazine of class `class` holds: 128, but at most 64 KiB of
/// objects (64 for 1024 bytes, 32 for 2048, 16 for 4096), so a CPU holds at
/// most 319 KiB in magazines (`shrink` and an allocation that would fail
/// take them back). 0 for a class that does not exist.
pub const fn magazine_capacity(class: usize) -> usize {
    if class >= NUM_CACHES {
        return 0;
    }
    // 64 KiB / class_size(class), without a division that could trap.
    let n = (64 * 1024 / MIN_SIZE) >> class;
    if n > MAGAZINE_SLOTS {
        MAGAZINE_SLOTS
    } else {
        n
    }
}

const MASK27: u64 = (1 << 27) - 1;

/// Bits of the distance from an object back to its bitmap word, in 8-byte
/// units, in a depot entry: the bitmap lies before the objects in the
/// same span.
const DELTA_BITS: u32 = 13;
const MASK_DELTA: u64 = (1 << DELTA_BITS) - 1;

/// Where the check tag of a depot entry starts (bits 47..64).
const TAG_SHIFT: u32 = 47;
const MASK_UNTAGGED: u64 = (1 << TAG_SHIFT) - 1;

// Every class's distance from bitmap to last object fits the field.
const _: () = {
    let mut c = 0;
    while c < NUM_CACHES {
        assert!(bitmap_to_last_object(c) >> 3 < 1 << DELTA_BITS);
        c += 1;
    }
};

/// One magazine slot: the object, its bitmap word and bit, and whether it
/// was used before, packed in 64 bits (offsets are 8-aligned and below
/// 1 GiB, so 27 bits each).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(super) struct Entry(u64);

impl Entry {
    pub(super) fn new(obj: usize, word: usize, bit: usize, reused: bool) -> Entry {
        Entry(
            ((obj as u64 >> 3) & MASK27)
                | (((word as u64 >> 3) & MASK27) << 27)
                | ((bit as u64 & 63) << 54)
                | (u64::from(reused) << 60),
        )
    }

    pub(super) fn obj(self) -> usize {
        ((self.0 & MASK27) << 3) as usize
    }

    pub(super) fn word(self) -> usize {
        (((self.0 >> 27) & MASK27) << 3) as usize
    }

    pub(super) fn mask(self) -> u64 {
        1 << ((self.0 >> 54) & 63)
    }

    fn reused(self) -> bool {
        self.0 >> 60 & 1 != 0
    }

    /// The entry as the depot stores it, inside the region: the object
    /// (27 bits), the distance back to its bitmap word (13 bits), the bit
    /// (6), `reused` (1) and a 17-bit check tag of those 47 bits.
    pub(super) fn to_depot(self) -> u64 {
        let delta = (self.obj().wrapping_sub(self.word()) as u64 >> 3) & MASK_DELTA;
        let v = (self.0 & MASK27)
            | delta << 27
            | ((self.0 >> 54) & 63) << 40
            | u64::from(self.reused()) << 46;
        v | depot_tag(v) << TAG_SHIFT
    }

    /// An entry the depot stored with [`Entry::to_depot`], `None` when its
    /// check tag does not match (damage to the metadata area).
    pub(super) fn from_depot(bits: u64) -> Option<Entry> {
        let v = bits & MASK_UNTAGGED;
        if depot_tag(v) != bits >> TAG_SHIFT {
            return None;
        }
        let obj = ((v & MASK27) << 3) as usize;
        let word = obj.wrapping_sub((((v >> 27) & MASK_DELTA) << 3) as usize);
        Some(Entry::new(
            obj,
            word,
            (v >> 40 & 63) as usize,
            v >> 46 & 1 != 0,
        ))
    }
}

/// The check tag of the 47 bits `v` of a depot entry: a multiplicative
/// hash, so damage to any of them changes it (but for one case in 2^17).
/// Public for the tests that forge an entry the tag cannot tell apart.
pub fn depot_tag(v: u64) -> u64 {
    (v ^ 0x2f0b_3c5e_9d14).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> TAG_SHIFT
}

/// A stack of free objects of one class.
#[derive(Clone, Copy)]
pub(super) struct Magazine {
    pub(super) count: usize,
    pub(super) slots: [Entry; MAGAZINE_SLOTS],
}

/// Fast-path events of one class, not yet folded into the heap.
///
/// The fast path counts only allocations. A magazine changes in four ways:
/// refill and drain (under the heap lock, which record them here), fast
/// allocations (counted) and fast frees, so at absorb time the frees are
/// `count + allocs - expect`. Frees push only used objects, so the
/// allocations of never-used objects (the rest are reuses) are
/// `expect_fresh - fresh entries now held`.
#[derive(Clone, Copy, Default)]
pub(super) struct ClassEvents {
    pub(super) allocs: u64,
    pub(super) requested: u64,
    /// Objects the magazine would hold without fast allocations and frees
    /// since the last absorb: its count then, plus refilled, minus drained
    /// or dropped objects (wrapping).
    pub(super) expect: u64,
    /// The same for never-used objects (entries without `reused`).
    pub(super) expect_fresh: u64,
}

impl ClassEvents {
    /// No pending events, for a magazine as it is now.
    pub(super) fn settled(m: &Magazine) -> Self {
        ClassEvents {
            allocs: 0,
            requested: 0,
            expect: m.count as u64,
            expect_fresh: m.fresh() as u64,
        }
    }

    /// Records objects entering `m` other than by a free (a refill): the
    /// entries `from..to`.
    pub(super) fn note_added(&mut self, m: &Magazine, from: usize, to: usize) {
        self.expect = self.expect.wrapping_add((to - from) as u64);
        self.expect_fresh = self.expect_fresh.wrapping_add(m.fresh_in(from, to) as u64);
    }

    /// Records objects leaving `m` other than by allocation (drained or
    /// dropped): the entries `from..to`.
    pub(super) fn note_removed(&mut self, m: &Magazine, from: usize, to: usize) {
        self.expect = self.expect.wrapping_sub((to - from) as u64);
        self.expect_fresh = self.expect_fresh.wrapping_sub(m.fresh_in(from, to) as u64);
    }
}

impl Magazine {
    /// Never-used objects held.
    fn fresh(&self) -> usize {
        self.fresh_in(0, self.count)
    }

    /// Never-used objects among the entries `from..to`.
    fn fresh_in(&self, from: usize, to: usize) -> usize {
        self.slots
            .get(from..to)
            .map_or(0, |s| s.iter().filter(|e| !e.reused()).count())
    }
}

/// The per-CPU object cache: one magazine per built-in size class and the
/// fast-path event counts.
pub struct CpuCache {
    pub(super) mags: [Magazine; NUM_CACHES],
    pub(super) events: [ClassEvents; NUM_CACHES],
    pub(super) refills: u64,
    pub(super) drains: u64,
    pub(super) corruptions: u64,
    /// Parked large blocks (`large_cache`).
    pub(super) large: LargeCache,
    /// The magazine counts while the cache is paused ([`CpuCache::pause`]).
    paused: Option<[usize; NUM_CACHES]>,
}

/// The count of every magazine of a paused cache: past every slot, so
/// [`CpuCache::pop`] finds nothing to take and [`CpuCache::free_located`]
/// no room, whatever capacity a (possibly damaged) fast tag names.
const PAUSED_COUNT: usize = usize::MAX;

impl Default for CpuCache {
    fn default() -> Self {
        Self::new()
    }
}

/// Outcome of [`CpuCache::pop`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pop {
    /// The allocated object.
    Object(NonNull<u8>),
    /// The magazine is empty.
    Empty,
    /// The top entry is damaged (its object is marked live): the caller
    /// falls back to [`CpuCache::alloc`], which drops and counts it.
    Damaged,
}

/// Outcome of [`CpuCache::free`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastFree {
    /// The object is in the magazine.
    Done,
    /// The magazine of this class is full: drain it under the heap lock
    /// ([`Heap::magazine_drain`]) and retry.
    Full(usize),
    /// The large-block cache is full: return its oldest blocks under the
    /// heap lock ([`Heap::large_cache_evict`]) and retry.
    LargeFull,
    /// Not a live object of a standard built-in slab: free it through the
    /// locked heap, which classifies any error exactly.
    Slow,
}

impl CpuCache {
    /// An empty cache.
    pub const fn new() -> Self {
        CpuCache {
            mags: [Magazine {
                count: 0,
                slots: [Entry(0); MAGAZINE_SLOTS],
            }; NUM_CACHES],
            events: [ClassEvents {
                allocs: 0,
                requested: 0,
                expect: 0,
                expect_fresh: 0,
            }; NUM_CACHES],
            refills: 0,
            drains: 0,
            corruptions: 0,
            large: LargeCache::new(),
            paused: None,
        }
    }

    /// Writes an empty cache, the value of [`CpuCache::new`], to `p` field
    /// by field, so that no 10 KiB value passes through the stack: the
    /// kernel glue's per-CPU caches are built in place with it (the KASAN
    /// build kept two such temporaries in module init's frame, 23 KiB).
    ///
    /// # Safety
    ///
    /// `p` must be valid for writes of a `CpuCache` and aligned for it.
    pub unsafe fn init_in_place(p: *mut CpuCache) {
        const NO_EVENTS: ClassEvents = ClassEvents {
            allocs: 0,
            requested: 0,
            expect: 0,
            expect_fresh: 0,
        };
        // SAFETY: `p` is valid for writes (the contract); every field is
        // written once through a raw place, no reference to the
        // uninitialised value is made. All-zero bytes are an empty
        // magazine's slots (`Entry(0)`, a plain integer).
        unsafe {
            for i in 0..NUM_CACHES {
                core::ptr::addr_of_mut!((*p).mags[i].count).write(0);
                core::ptr::addr_of_mut!((*p).mags[i].slots).write_bytes(0, 1);
                core::ptr::addr_of_mut!((*p).events[i]).write(NO_EVENTS);
            }
            core::ptr::addr_of_mut!((*p).refills).write(0);
            core::ptr::addr_of_mut!((*p).drains).write(0);
            core::ptr::addr_of_mut!((*p).corruptions).write(0);
            core::ptr::addr_of_mut!((*p).large).write(LargeCache::new());
            core::ptr::addr_of_mut!((*p).paused).write(None);
        }
    }

    /// Pauses the fast path of this cache until [`CpuCache::resume`]:
    /// every magazine then reads as empty to [`CpuCache::pop`] and as full
    /// to [`CpuCache::free_located`], which decline and change nothing, by
    /// the bounds tests they make anyway (the counts are set past the
    /// slots and kept aside). So a paused fast path costs the fast path no
    /// test of its own: the kernel glue pauses every CPU's cache while it
    /// reports, and the fast path reads no shared pause flag. While
    /// paused, a cache may only be popped, pushed to, asked
    /// [`CpuCache::held`], [`CpuCache::held_total`] and
    /// [`CpuCache::is_paused`], and resumed; callers of everything else
    /// (refills, drains, parking, absorbing, checks, detaching) test
    /// [`CpuCache::is_paused`] first. Pausing a paused cache changes
    /// nothing.
    pub fn pause(&mut self) {
        if self.paused.is_some() {
            return;
        }
        let mut counts = [0; NUM_CACHES];
        for (c, m) in counts.iter_mut().zip(self.mags.iter_mut()) {
            *c = core::mem::replace(&mut m.count, PAUSED_COUNT);
        }
        self.paused = Some(counts);
    }

    /// Ends a [`CpuCache::pause`]: the magazines hold what they held
    /// before it. Nothing to do on a cache that is not paused.
    pub fn resume(&mut self) {
        if let Some(counts) = self.paused.take() {
            for (m, c) in self.mags.iter_mut().zip(counts) {
                m.count = c;
            }
        }
    }

    /// Whether the cache is paused ([`CpuCache::pause`]).
    pub fn is_paused(&self) -> bool {
        self.paused.is_some()
    }

    /// Moves this cache's pending events into `out` and gives `out` its
    /// magazine contents: moved with `objects` (this cache is left empty),
    /// otherwise copied, for [`Heap::magazine_check`] only (they still
    /// belong to this cache). Parked large blocks always move (the caller
    /// returns them with [`Heap::large_cache_flush`]). Whatever `out` held is
    /// overwritten, so it must own no objects. The kernel glue runs this on
    /// the owning CPU (in an IPI, which must not take the heap lock) and
    /// absorbs, checks or flushes `out` under the heap lock afterwards.
    pub fn detach_into(&mut self, out: &mut CpuCache, objects: bool) {
        self.large.detach_into(&mut out.large);
        out.mags = self.mags;
        out.events = self.events;
        for (m, ev) in self.mags.iter_mut().zip(self.events.iter_mut()) {
            if objects {
                m.count = 0;
            }
            // What stays here is as if absorbed: `out` carries the events.
            *ev = ClassEvents::settled(m);
        }
        out.refills = core::mem::take(&mut self.refills);
        out.drains = core::mem::take(&mut self.drains);
        out.corruptions = core::mem::take(&mut self.corruptions);
    }

    /// Objects of class `class` held.
    pub fn held(&self, class: usize) -> usize {
        match &self.paused {
            Some(counts) => counts.get(class).copied().unwrap_or(0),
            None => self.mags.get(class).map_or(0, |m| m.count),
        }
    }

    /// Objects held over all classes.
    pub fn held_total(&self) -> usize {
        (0..NUM_CACHES).map(|c| self.held(c)).sum()
    }

    /// Allocates an object of built-in class `class` (`size` is the request,
    /// for the statistics) from the magazine, or `None` when it is empty:
    /// then refill it under the heap lock ([`Heap::magazine_refill`]) and
    /// retry. With `zero` the object is cleared.
    pub fn alloc(
        &mut self,
        v: &FastView,
        class: usize,
        size: usize,
        zero: bool,
    ) -> Option<NonNull<u8>> {
        loop {
            match self.pop(v, class, size, zero) {
                Pop::Object(p) => return Some(p),
                Pop::Empty => return None,
                Pop::Damaged => self.drop_top(class),
            }
        }
    }

    /// Takes the top object of the `class` magazine: [`CpuCache::alloc`]
    /// without its handling of damage, the part callers inline. A damaged
    /// top entry is left in place and reported as [`Pop::Damaged`]; only
    /// [`CpuCache::alloc`] drops it (out of line, so that callers of `pop`
    /// need no call).
    #[inline(always)]
    pub fn pop(&mut self, v: &FastView, class: usize, size: usize, zero: bool) -> Pop {
        let Some(m) = self.mags.get_mut(class) else {
            return Pop::Empty;
        };
        let Some(top) = m.count.checked_sub(1) else {
            return Pop::Empty;
        };
        let Some(&e) = m.slots.get(top) else {
            return Pop::Empty;
        };
        if v.mem.update64(e.word(), e.mask(), true) & e.mask() != 0 {
            // Already marked, so the update changed nothing.
            return Pop::Damaged;
        }
        m.count = top;
        if let Some(ev) = self.events.get_mut(class) {
            ev.allocs = ev.allocs.wrapping_add(1);
            ev.requested = ev.requested.wrapping_add(size as u64);
        }
        if zero {
            v.zero(e.obj(), class_size(class));
        }
        Pop::Object(v.mem.ptr(e.obj()))
    }

    /// Drops the top entry of the `class` magazine, whose object is marked
    /// live: a caller wrote to freed memory's metadata or freed it behind
    /// our back. It is never handed out (`validate` will report the slab).
    #[cold]
    #[inline(never)]
    fn drop_top(&mut self, class: usize) {
        let (Some(m), Some(ev)) = (self.mags.get_mut(class), self.events.get_mut(class)) else {
            return;
        };
        let Some(top) = m.count.checked_sub(1) else {
            return;
        };
        ev.note_removed(m, top, m.count);
        m.count = top;
        self.corruptions = self.corruptions.wrapping_add(1);
    }

    /// Frees `ptr` into the magazine of its class if it is a live object of
    /// a standard built-in slab. [`FastView::locate_ptr`] tells before
    /// taking the cache's lock whether that can be the case.
    pub fn free(&mut self, v: &FastView, ptr: *const u8) -> FastFree {
        match v.locate_ptr(ptr) {
            Some(l) => self.free_located(v, l),
            None => FastFree::Slow,
        }
    }

    /// [`CpuCache::free`] of a pointer already located by
    /// [`FastView::locate_ptr`] (the page map is read once per free).
    #[inline(always)]
    pub fn free_located(&mut self, v: &FastView, l: Located) -> FastFree {
        let Located {
            class,
            cap,
            obj,
            word,
            bit,
        } = l;
        let Some(m) = self.mags.get_mut(class) else {
            return FastFree::Slow;
        };
        if m.count >= cap {
            return FastFree::Full(class);
        }
        let mask = 1u64 << bit;
        if v.mem.update64(word, mask, false) & mask == 0 {
            // Not live: a double free or never allocated. Nothing changed;
            // the heap reports it.
            return FastFree::Slow;
        }
        if let Some(slot) = m.slots.get_mut(m.count) {
            *slot = Entry::new(obj, word, bit, true);
            m.count += 1;
        }
        FastFree::Done
    }
}

impl CpuCache {
    /// [`CpuCache::alloc`], refilling once through `refill` (which locks
    /// the heap and calls [`Heap::magazine_refill`]) when the magazine is
    /// empty.
    pub fn alloc_with(
        &mut self,
        v: &FastView,
        class: usize,
        size: usize,
        zero: bool,
        refill: impl FnOnce(&mut CpuCache) -> Result<usize, AllocError>,
    ) -> Result<NonNull<u8>, AllocError> {
        if let Some(p) = self.alloc(v, class, size, zero) {
            return Ok(p);
        }
        refill(self)?;
        self.alloc(v, class, size, zero)
            .ok_or(AllocError::OutOfMemory)
    }

    /// [`CpuCache::free`], draining a full magazine to half its capacity
    /// through `drain` (which locks the heap and calls
    /// [`Heap::magazine_drain`] with the given class and `keep`) and
    /// retrying once. Returns `Done` or `Slow`.
    pub fn free_with(
        &mut self,
        v: &FastView,
        ptr: *const u8,
        drain: impl FnOnce(&mut CpuCache, usize, usize),
    ) -> FastFree {
        match v.locate_ptr(ptr) {
            Some(l) => self.free_located_with(v, l, drain),
            None => FastFree::Slow,
        }
    }

    /// [`CpuCache::free_with`] of a pointer already located.
    pub fn free_located_with(
        &mut self,
        v: &FastView,
        l: Located,
        drain: impl FnOnce(&mut CpuCache, usize, usize),
    ) -> FastFree {
        match self.free_located(v, l) {
            FastFree::Full(class) => self.drain_and_free(v, l, class, drain),
            r => r,
        }
    }

    /// The rest of [`CpuCache::free_located_with`] when the magazine of
    /// `class` is full, out of line so that the common case saves no
    /// registers for the drain call.
    #[cold]
    #[inline(never)]
    fn drain_and_free(
        &mut self,
        v: &FastView,
        l: Located,
        class: usize,
        drain: impl FnOnce(&mut CpuCache, usize, usize),
    ) -> FastFree {
        drain(self, class, magazine_capacity(class) / 2);
        match self.free_located(v, l) {
            FastFree::Done => FastFree::Done,
            _ => FastFree::Slow,
        }
    }
}
