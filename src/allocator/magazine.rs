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
//! The fast free path needs only the page-map entry of the object's page:
//! its fast tag names the class of a standard-geometry slab, from which the
//! object index and bitmap word follow by arithmetic ([`FastView::locate`]).
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
use core::sync::atomic::{AtomicU64, Ordering};

use super::cache::CacheDesc;
use super::config::{class_align, class_size, MIN_SIZE, NUM_CACHES, PAGE_SIZE};
use super::debug::C_DEBUG_MASK;
use super::error::{AllocError, Corruption, CorruptionKind};
use super::heap::Heap;
use super::large_cache::LargeCache;
use super::pagemap::{ENTRY_BYTES, GHOST, TAG_MASK};
use super::region::Region;
use super::slab::{slab_geometry, BITMAP_OFF};

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

/// Geometry of a standard slab of a built-in class, known without reading
/// its descriptor.
#[derive(Clone, Copy)]
struct ClassGeom {
    /// log2 of the object size.
    shift: u32,
    /// Objects per slab.
    cap: usize,
    /// Offset of the first byte after the bitmap from the span start.
    data_off: usize,
    /// Object alignment.
    align: usize,
}

const fn class_geom(class: usize) -> ClassGeom {
    let size = class_size(class);
    let (cap, _) = slab_geometry(size, class_align(class));
    ClassGeom {
        shift: size.trailing_zeros(),
        cap,
        data_off: BITMAP_OFF + cap.div_ceil(64) * 8,
        align: class_align(class),
    }
}

const GEOM: [ClassGeom; NUM_CACHES] = {
    let mut g = [class_geom(0); NUM_CACHES];
    let mut i = 1;
    while i < NUM_CACHES {
        g[i] = class_geom(i);
        i += 1;
    }
    g
};

/// What [`FastView::locate`] needs of a class, packed in one word so that
/// the free path reads it with one load: log2 of the object size (bits
/// 0..6), log2 of the alignment (6..12), the magazine capacity (12..20),
/// `data_off + align - 1` (20..40; the first object is at
/// `(span + first_pad) & align_mask`) and the objects per slab (40..64).
#[derive(Clone, Copy)]
struct TagGeom(u64);

impl TagGeom {
    const fn new(class: usize) -> TagGeom {
        let g = GEOM[class];
        let first_pad = g.data_off + g.align - 1;
        let mag_cap = magazine_capacity(class);
        assert!(first_pad < 1 << 20 && mag_cap < 1 << 8 && g.cap < 1 << 24);
        TagGeom(
            g.shift as u64
                | (g.align.trailing_zeros() as u64) << 6
                | (mag_cap as u64) << 12
                | (first_pad as u64) << 20
                | (g.cap as u64) << 40,
        )
    }

    fn shift(self) -> u32 {
        (self.0 & 63) as u32
    }

    fn align_mask(self) -> usize {
        usize::MAX << (self.0 >> 6 & 63)
    }

    fn mag_cap(self) -> usize {
        (self.0 >> 12 & 0xff) as usize
    }

    fn first_pad(self) -> usize {
        (self.0 >> 20 & 0xf_ffff) as usize
    }

    fn cap(self) -> usize {
        (self.0 >> 40) as usize
    }
}

/// [`TagGeom`] by page-map tag, for every value `TAG_MASK` allows (so the
/// lookup needs no bounds check): tag `c + 1` is class `c`; tag 0 and tags
/// of no class are 0, whose `cap` 0 locates nothing.
const TAG_GEOM: [TagGeom; TAG_MASK + 1] = {
    let mut t = [TagGeom(0); TAG_MASK + 1];
    let mut class = 0;
    while class < NUM_CACHES {
        t[class + 1] = TagGeom::new(class);
        class += 1;
    }
    t
};

/// Fast tag of a new slab of cache `ci` (see `pagemap`): `ci + 1` for a
/// built-in class with the standard geometry and no debug flags, 0 for
/// anything else (its frees take the locked path and its checks).
pub(super) fn fast_tag(ci: usize, c: &CacheDesc) -> usize {
    match GEOM.get(ci) {
        Some(g)
            if c.flags & C_DEBUG_MASK == 0
                && c.stride as usize == class_size(ci)
                && c.align as usize == g.align
                && c.capacity as usize == g.cap =>
        {
            ci + 1
        }
        _ => 0,
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
        let g = GEOM[c];
        assert!((g.data_off + g.align + (g.cap << g.shift)) >> 3 < 1 << DELTA_BITS);
        c += 1;
    }
};

// A zero word is not a valid depot entry: an entry the depot cannot read
// counts as damaged.
const _: () = assert!(depot_tag(0) != 0);

/// One magazine slot: the object, its bitmap word and bit, and whether it
/// was used before, packed in 64 bits (offsets are 8-aligned and below
/// 1 GiB, so 27 bits each).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(super) struct Entry(u64);

impl Entry {
    fn new(obj: usize, word: usize, bit: usize, reused: bool) -> Entry {
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

    fn word(self) -> usize {
        (((self.0 >> 27) & MASK27) << 3) as usize
    }

    fn mask(self) -> u64 {
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
const fn depot_tag(v: u64) -> u64 {
    (v ^ 0x2f0b_3c5e_9d14).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> TAG_SHIFT
}

/// A stack of free objects of one class.
#[derive(Clone, Copy)]
struct Magazine {
    count: usize,
    slots: [Entry; MAGAZINE_SLOTS],
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
struct ClassEvents {
    allocs: u64,
    requested: u64,
    /// Objects the magazine would hold without fast allocations and frees
    /// since the last absorb: its count then, plus refilled, minus drained
    /// or dropped objects (wrapping).
    expect: u64,
    /// The same for never-used objects (entries without `reused`).
    expect_fresh: u64,
}

impl ClassEvents {
    /// No pending events, for a magazine as it is now.
    fn settled(m: &Magazine) -> Self {
        ClassEvents {
            allocs: 0,
            requested: 0,
            expect: m.count as u64,
            expect_fresh: m.fresh() as u64,
        }
    }

    /// Records objects entering `m` other than by a free (a refill): the
    /// entries `from..to`.
    fn note_added(&mut self, m: &Magazine, from: usize, to: usize) {
        self.expect = self.expect.wrapping_add((to - from) as u64);
        self.expect_fresh = self.expect_fresh.wrapping_add(m.fresh_in(from, to) as u64);
    }

    /// Records objects leaving `m` other than by allocation (drained or
    /// dropped): the entries `from..to`.
    fn note_removed(&mut self, m: &Magazine, from: usize, to: usize) {
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
    mags: [Magazine; NUM_CACHES],
    events: [ClassEvents; NUM_CACHES],
    refills: u64,
    drains: u64,
    corruptions: u64,
    /// Parked large blocks (`large_cache`).
    pub(super) large: LargeCache,
}

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
        }
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
        self.mags.get(class).map_or(0, |m| m.count)
    }

    /// Objects held over all classes.
    pub fn held_total(&self) -> usize {
        self.mags.iter().map(|m| m.count).sum()
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

/// An object start in a standard built-in slab, with its class and bitmap
/// word and bit: what [`FastView::locate_ptr`] found for a pointer.
#[derive(Clone, Copy, Debug)]
pub struct Located {
    class: usize,
    /// The magazine capacity of `class`.
    cap: usize,
    obj: usize,
    word: usize,
    bit: usize,
}

impl Located {
    /// The built-in size class of the object.
    pub fn class(&self) -> usize {
        self.class
    }
}

/// What the fast path needs of a heap: the region and the page map, read
/// and changed only with atomic word operations, so it is used without the
/// heap lock. Obtained from [`Heap::fast_view`].
pub struct FastView {
    pub(super) mem: Region,
    /// The page map (`npages` entries inside the region).
    pagemap: *const AtomicU64,
    npages: usize,
    /// Start of the block area (large-block headers lie at or above it).
    pub(super) blocks_start: usize,
    /// Whether large blocks may be parked (no heap-wide debug flags).
    pub(super) large_ok: bool,
}

// SAFETY: a `FastView` only performs atomic word accesses on the region
// (page-map loads, bitmap bit updates) and writes to objects it just took
// ownership of; the contract of `Heap::fast_view` keeps the region alive.
unsafe impl Send for FastView {}
// SAFETY: see `Send`; every method takes `&self` and is data-race free.
unsafe impl Sync for FastView {}

impl FastView {
    /// Class, object offset, bitmap word offset and bit of the object
    /// starting at region offset `off`, if it lies in a standard built-in
    /// slab.
    #[inline(always)]
    fn locate(&self, off: usize) -> Option<Located> {
        let page = off / PAGE_SIZE;
        if page >= self.npages {
            return None;
        }
        // SAFETY: `page < npages`, and the page map has `npages` entries
        // inside the region, which outlives the view (`Heap::fast_view`).
        // Both words of the entry in one load: `first` low, `start` high.
        let e = unsafe { (*self.pagemap.add(page)).load(Ordering::Relaxed) };
        let (first, start) = ((e & 0xffff_ffff) as usize, (e >> 32) as usize);
        // A span starting inside the page owns everything from its start.
        let cand = if start != 0 && start & !(GHOST | TAG_MASK) <= off {
            start
        } else {
            first
        };
        if cand & GHOST != 0 {
            return None;
        }
        let tag = cand & TAG_MASK;
        let g = TAG_GEOM[tag];
        let span = cand & !TAG_MASK;
        // The region base is page aligned, so offsets align like addresses.
        let obj_start = (span + g.first_pad()) & g.align_mask();
        let rel = off.checked_sub(obj_start)?;
        let idx = rel >> g.shift();
        // Tags of no class have `cap` 0.
        if idx >= g.cap() || rel & ((1 << g.shift()) - 1) != 0 {
            return None;
        }
        let (word, _) = Heap::bit_pos(span, idx);
        Some(Located {
            class: tag - 1,
            cap: g.mag_cap(),
            obj: off,
            word,
            bit: idx % 64,
        })
    }

    /// Where `ptr` is, if it is an object start in a standard built-in slab
    /// (live or not). Reads one page-map word, no lock needed; the result
    /// goes to [`CpuCache::free_located`].
    #[inline(always)]
    pub fn locate_ptr(&self, ptr: *const u8) -> Option<Located> {
        // Below the base the offset wraps to a huge value, whose page
        // `locate` rejects like any beyond the last.
        self.locate((ptr as usize).wrapping_sub(self.mem.addr(0)))
    }

    /// Clears `len` bytes of the object at `off`, which the caller owns.
    pub(super) fn zero(&self, off: usize, len: usize) {
        if off
            .checked_add(len)
            .is_some_and(|end| end <= self.mem.len())
        {
            // SAFETY: in bounds (checked); the object was just handed to
            // the caller by `CpuCache::alloc`, nothing else accesses it.
            unsafe { core::ptr::write_bytes(self.mem.ptr(off).as_ptr(), 0, len) }
        }
    }
}

/// Counters of the per-CPU layer kept by the heap.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct MagazineCounters {
    /// Objects handed to magazines and not (yet known to be) returned or
    /// allocated, per class; exact once every `CpuCache` is absorbed.
    pub(super) cached: [u32; NUM_CACHES],
    pub(super) fast_allocs: u64,
    pub(super) fast_frees: u64,
    pub(super) refills: u64,
    pub(super) drains: u64,
    /// Large blocks parked in per-CPU caches, and their bytes (headers
    /// included); exact once every `CpuCache` is absorbed.
    pub(super) large_cached: u64,
    pub(super) large_cached_bytes: u64,
    /// Objects in the depot, per class (also counted in `cached`).
    pub(super) depot: [u32; NUM_CACHES],
}

impl Heap {
    /// A view of this heap for the lock-free fast path.
    ///
    /// # Safety
    ///
    /// The view must not be used after this heap is dropped or its region
    /// is freed.
    pub unsafe fn fast_view(&self) -> FastView {
        // The page map lies inside the region (checked, so that `locate`
        // may index it without a bounds check); a view without it locates
        // nothing and every free takes the locked path.
        let map_end = self
            .npages
            .checked_mul(ENTRY_BYTES)
            .and_then(|b| b.checked_add(self.pagemap_off));
        let npages = match map_end {
            Some(end) if end <= self.mem.len() && self.pagemap_off.is_multiple_of(ENTRY_BYTES) => {
                self.npages
            }
            _ => 0,
        };
        FastView {
            // SAFETY: same region as the heap's, valid as long as the caller
            // promises; the view only makes atomic word accesses to shared
            // metadata and writes to objects it owns.
            mem: unsafe { Region::new(self.mem.base(), self.mem.len()) },
            pagemap: self
                .mem
                .base()
                .as_ptr()
                .wrapping_add(self.pagemap_off)
                .cast::<AtomicU64>(),
            npages,
            blocks_start: self.blocks_start,
            large_ok: self.dbg.flags.is_empty(),
        }
    }

    /// Fills the magazine of `class` in `cpu` to half its capacity (at least
    /// one object) with objects taken from the slabs. Returns how many were
    /// added; an error only when none could be taken (not counted: see
    /// [`Heap::fail_alloc`]): [`AllocError::BadCache`] for a class that
    /// does not exist or whose objects must take the locked path (debug
    /// flags: red zones and poison are kept by the locked path only).
    pub fn magazine_refill(
        &mut self,
        cpu: &mut CpuCache,
        class: usize,
    ) -> Result<usize, AllocError> {
        let m = cpu.mags.get_mut(class).ok_or(AllocError::BadCache)?;
        if fast_tag(class, self.cache(class)) == 0 {
            return Err(AllocError::BadCache);
        }
        let cap = magazine_capacity(class);
        let want = (cap / 2).max(1).saturating_sub(m.count);
        if want == 0 {
            return Ok(0);
        }
        let start = m.count;
        // Objects parked in the depot first: a copy of entries, and they
        // are already counted as cached.
        let from_depot = match m.slots.get_mut(start..start + want) {
            Some(out) => self.depot_take(class, out).0,
            None => 0,
        };
        let got = if from_depot > 0 {
            m.count += from_depot;
            from_depot
        } else {
            let got = self.slab_take(class, want, |t| {
                let (word, _) = Heap::bit_pos(t.span, t.idx);
                if let Some(slot) = m.slots.get_mut(m.count) {
                    *slot = Entry::new(t.obj, word, t.idx % 64, t.reused);
                    m.count += 1;
                }
            });
            // A failure is not counted here: the caller either falls back
            // to the slow path (out of memory) or counts it with
            // `fail_alloc`.
            let got = got?;
            if let Some(n) = self.mags.cached.get_mut(class) {
                *n = n.wrapping_add(got as u32);
            }
            got
        };
        if let Some(ev) = cpu.events.get_mut(class) {
            ev.note_added(m, start, m.count);
        }
        cpu.refills = cpu.refills.wrapping_add(1);
        Ok(got)
    }

    /// Moves the most recently freed objects of the `class` magazine of
    /// `cpu` to the depot (`depot.rs`), and what it has no room for back to
    /// their slabs in one batch (see `Heap::slab_put_many`), until at most
    /// `keep` remain (the top of the stack leaves, as a whole magazine does
    /// in Bonwick's and SLUB's exchanges, so nothing is moved down).
    /// Returns how many left the magazine. At an entry whose slab does not
    /// take it back (damage) the batch stops: that entry and the rest of
    /// the batch are dropped (never handed out again) and the damage is
    /// counted in `corruptions` and returned.
    pub fn magazine_drain(
        &mut self,
        cpu: &mut CpuCache,
        class: usize,
        keep: usize,
    ) -> Result<usize, Corruption> {
        self.magazine_release(cpu, class, keep, true)
    }

    /// [`Heap::magazine_drain`]; without `to_depot` every object goes back
    /// to its slab (a flush).
    fn magazine_release(
        &mut self,
        cpu: &mut CpuCache,
        class: usize,
        keep: usize,
        to_depot: bool,
    ) -> Result<usize, Corruption> {
        let Some(m) = cpu.mags.get_mut(class) else {
            return Ok(0);
        };
        let n = m.count.saturating_sub(keep);
        let from = m.count - n;
        if let Some(ev) = cpu.events.get_mut(class) {
            ev.note_removed(m, from, m.count);
        }
        let top = m.slots.get(from..m.count).unwrap_or(&[]);
        let parked = if to_depot {
            self.depot_put(class, top)
        } else {
            0
        };
        let objs = top.iter().skip(parked).map(|e| e.obj());
        let (done, damage) = self.slab_put_many(objs);
        // On damage the entries after the bad one cannot be trusted either:
        // they are dropped with it (leaked, never handed out again).
        m.count = from;
        // Parked objects stay cached.
        if let Some(c) = self.mags.cached.get_mut(class) {
            *c = c.wrapping_sub((n - parked) as u32);
        }
        cpu.drains = cpu.drains.wrapping_add(1);
        match damage {
            Some(c) => Err(self.note_corruption(c)),
            None => Ok(parked + done),
        }
    }

    /// Folds the fast-path events of `cpu` into the heap counters and
    /// resets them. After every `CpuCache` is absorbed the statistics are
    /// exact.
    pub fn magazine_absorb(&mut self, cpu: &mut CpuCache) {
        for (class, (ev, m)) in cpu.events.iter_mut().zip(cpu.mags.iter()).enumerate() {
            let now = ClassEvents::settled(m);
            let allocs = ev.allocs;
            let frees = now.expect.wrapping_add(allocs).wrapping_sub(ev.expect);
            let fresh_allocs = ev.expect_fresh.wrapping_sub(now.expect_fresh);
            let reuses = allocs.wrapping_sub(fresh_allocs);
            let requested = ev.requested;
            *ev = now;
            if allocs == 0 && frees == 0 {
                continue;
            }
            let size = class_size(class) as u64;
            let (alloc_bytes, free_bytes) = (allocs.wrapping_mul(size), frees.wrapping_mul(size));
            self.count_fast(
                allocs,
                frees,
                requested,
                alloc_bytes,
                (alloc_bytes, free_bytes),
            );
            let ctr = &mut self.ctr;
            ctr.slab_allocs = ctr.slab_allocs.wrapping_add(allocs);
            ctr.reuses = ctr.reuses.wrapping_add(reuses);
            let mg = &mut self.mags;
            if let Some(n) = mg.cached.get_mut(class) {
                *n = n.wrapping_add(frees as u32).wrapping_sub(allocs as u32);
            }
            if let Some(c) = self.cache_mut(class) {
                c.allocs = c.allocs.wrapping_add(allocs);
                c.frees = c.frees.wrapping_add(frees);
                c.reuses = c.reuses.wrapping_add(reuses);
                c.requested_total = c.requested_total.wrapping_add(requested);
            }
        }
        let mg = &mut self.mags;
        mg.refills = mg.refills.wrapping_add(core::mem::take(&mut cpu.refills));
        mg.drains = mg.drains.wrapping_add(core::mem::take(&mut cpu.drains));
        let bad = core::mem::take(&mut cpu.corruptions);
        self.ctr.corruptions = self.ctr.corruptions.wrapping_add(bad);
        self.large_cache_absorb(&mut cpu.large);
    }

    /// Folds fast-path allocations and frees into the heap-wide counters
    /// (the part the magazines and the large-block cache share): totals,
    /// requested and usable bytes of the allocations, the live requested
    /// bytes (`live.0` added, `live.1` taken) and the fast-path counts.
    pub(super) fn count_fast(
        &mut self,
        allocs: u64,
        frees: u64,
        requested: u64,
        usable: u64,
        live: (u64, u64),
    ) {
        let ctr = &mut self.ctr;
        ctr.total_allocs = ctr.total_allocs.wrapping_add(allocs);
        ctr.total_frees = ctr.total_frees.wrapping_add(frees);
        ctr.requested_total = ctr.requested_total.wrapping_add(requested);
        ctr.usable_total = ctr.usable_total.wrapping_add(usable);
        ctr.requested_live = ctr.requested_live.wrapping_add(live.0).wrapping_sub(live.1);
        let mg = &mut self.mags;
        mg.fast_allocs = mg.fast_allocs.wrapping_add(allocs);
        mg.fast_frees = mg.fast_frees.wrapping_add(frees);
    }

    /// Absorbs `cpu` and returns all its objects, and those of the depot,
    /// to the slabs (empty slabs then go back to the large pool as usual)
    /// and its parked large blocks to the TLSF lists. Returns how many
    /// objects and blocks went back.
    pub fn magazine_flush(&mut self, cpu: &mut CpuCache) -> Result<usize, Corruption> {
        self.magazine_absorb(cpu);
        let (mut n, mut first_err) = match self.large_cache_flush(cpu) {
            Ok(k) => (k, None),
            Err(c) => (0, Some(c)),
        };
        for class in 0..NUM_CACHES {
            match self.magazine_release(cpu, class, 0, false) {
                Ok(k) => n += k,
                Err(c) => {
                    first_err.get_or_insert(c);
                }
            }
        }
        match self.depot_flush() {
            Ok(k) => n += k,
            Err(c) => {
                first_err.get_or_insert(c);
            }
        }
        match first_err {
            Some(c) => Err(c),
            None => Ok(n),
        }
    }

    /// Checks every object `cpu` holds: a start of an object of the right
    /// class in a live slab, not marked live. Returns how many were checked;
    /// damage is counted in `corruptions`.
    pub fn magazine_check(&mut self, cpu: &CpuCache) -> Result<usize, Corruption> {
        self.magazine_check_inner(cpu)
            .map_err(|c| self.note_corruption(c))
    }

    fn magazine_check_inner(&self, cpu: &CpuCache) -> Result<usize, Corruption> {
        let mut n = 0usize;
        for (class, m) in cpu.mags.iter().enumerate() {
            for &e in m.slots.iter().take(m.count) {
                self.check_cached_entry(class, e)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Checks a magazine or depot entry of class `class`: the start of an
    /// object of that class in a live slab, with its bitmap word and bit,
    /// not marked live.
    pub(super) fn check_cached_entry(&self, class: usize, e: Entry) -> Result<(), Corruption> {
        let obj = e.obj();
        let bad = |d: u64| Corruption::new(CorruptionKind::MagazineEntry, obj, d);
        let span = self.pagemap_lookup(obj)?.ok_or(bad(0))?.off;
        let d = self.slab_desc(span)?;
        if d.cache as usize != class {
            return Err(bad(u64::from(d.cache)));
        }
        let idx = Self::slab_obj_index(&d, obj).map_err(|_| bad(span as u64))?;
        let (word, mask) = Heap::bit_pos(span, idx);
        if word != e.word() || mask != e.mask() || self.slab_bit(span, idx) {
            return Err(bad(span as u64));
        }
        Ok(())
    }

    /// Objects the heap has handed to magazines, per class (exact once
    /// every `CpuCache` is absorbed).
    pub(super) fn magazine_cached(&self, class: usize) -> u32 {
        self.mags.cached.get(class).copied().unwrap_or(0)
    }
}
