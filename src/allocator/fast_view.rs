// SPDX-License-Identifier: GPL-2.0

//! The lock-free view of a heap: where a pointer is, from its page-map
//! entry alone.
//!
//! The fast free path ([`super::magazine`]) needs only the page-map entry
//! of the object's page: its fast tag names the class of a
//! standard-geometry slab, from which the object index and bitmap word
//! follow by arithmetic ([`FastView::locate`]), with no descriptor read and
//! no lock. A slab gets a fast tag ([`fast_tag`]) only when its class has
//! the standard geometry and no debug flags; every other object is freed
//! through the locked heap.

use core::sync::atomic::{AtomicU64, Ordering};

use super::cache::CacheDesc;
use super::config::{class_align, class_size, NUM_CACHES, PAGE_SIZE};
use super::debug::C_DEBUG_MASK;
use super::heap::Heap;
use super::large_cache::{large_cache_budget, large_cache_max_block};
use super::magazine::magazine_capacity;
#[cfg(doc)]
use super::magazine::CpuCache;
use super::pagemap::{ENTRY_BYTES, GHOST, TAG_MASK};
use super::region::Region;
use super::slab::{slab_geometry, BITMAP_OFF};

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

/// Farthest a standard slab of class `class` puts an object end from its
/// bitmap: the bound of the bitmap-word distance a depot entry stores.
pub(super) const fn bitmap_to_last_object(class: usize) -> usize {
    let g = GEOM[class];
    g.data_off + g.align + (g.cap << g.shift)
}

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

/// An object start in a standard built-in slab, with its class and bitmap
/// word and bit: what [`FastView::locate_ptr`] found for a pointer.
#[derive(Clone, Copy, Debug)]
pub struct Located {
    pub(super) class: usize,
    /// The magazine capacity of `class`.
    pub(super) cap: usize,
    pub(super) obj: usize,
    pub(super) word: usize,
    pub(super) bit: usize,
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
    /// Bytes of large blocks one CPU's cache parks at most on this region
    /// (`large_cache_budget`).
    pub(super) large_budget: usize,
}

// SAFETY: a `FastView` only performs atomic word accesses on the region
// (page-map loads, bitmap bit updates) and writes to objects it just took
// ownership of; the contract of `Heap::fast_view` keeps the region alive.
unsafe impl Send for FastView {}
// SAFETY: see `Send`; every method takes `&self` and is data-race free.
unsafe impl Sync for FastView {}

impl FastView {
    /// Bytes of large blocks one CPU's cache parks at most on this heap
    /// (`large_cache_budget` of the region's length).
    pub fn large_cache_budget(&self) -> usize {
        self.large_budget
    }

    /// Largest block (header included) a CPU's cache parks on this heap.
    pub fn large_cache_max_block(&self) -> usize {
        large_cache_max_block(self.large_budget)
    }

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
            large_budget: large_cache_budget(self.mem.len()),
        }
    }
}
