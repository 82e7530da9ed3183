// SPDX-License-Identifier: GPL-2.0

//! Per-CPU caches of freed large blocks: the fast path above 4 KiB.
//!
//! Each [`CpuCache`] also keeps up to [`LARGE_SLOTS`] freed large blocks of
//! at most [`LARGE_CACHE_MAX_BLOCK`] bytes, [`LARGE_CACHE_BYTES`] in all
//! (on a smaller heap, a sixteenth of the region in blocks of up to half
//! that: [`large_cache_budget`]).
//! A free of such a block on a CPU whose cache has room parks the block
//! there instead of returning it to the TLSF lists; a later allocation on
//! that CPU takes a parked block whose size fits the request within 1/8
//! (and whose payload has the requested alignment). Both run without the
//! heap lock, like the magazines of the size classes. A free that finds
//! the cache full returns its oldest blocks to the TLSF lists under the
//! heap lock until at most half the slots and bytes are left
//! ([`Heap::large_cache_evict`], as a full magazine is drained) and parks
//! the new one, so the cache follows the sizes in use instead of keeping
//! blocks that no later request fits. Large blocks are
//! what the page allocator serves for `kmalloc`, so this is the path that
//! competes with `alloc_pages` (the README's `pair16k` benchmark).
//!
//! The sizes. Random sizes of 4 KiB to 64 KiB (the kernel benchmark's
//! `mixed-large`) fit a parked block within 1/8 about one time in seven
//! with 8 slots, blocks of up to 32 KiB and 128 KiB per CPU, and most of
//! the blocks parked were returned by an eviction later, so the cache
//! cost more than it saved there (1.37x kmalloc); with 16 slots, 64 KiB
//! and 512 KiB nearly one allocation in two reuses a parked block, and
//! `mixed-large` is at 0.98x (Documentation/performance-log.md). The
//! budget is a sixteenth of the region at most, so that the caches of a
//! few CPUs cannot hold most of a small heap; an allocation that would
//! fail takes the parked blocks back first in any case.
//!
//! Block states. For the TLSF a parked block is an ordinary used block, so
//! its neighbours never merge with it. Its header carries the *cached* bit
//! (see `block`), which the fast path sets on free and clears on alloc with
//! a compare-and-swap on header word 0, so
//!
//! * a second free of a parked block fails the swap and goes to the locked
//!   path, which reports `DoubleFree`, also when the two frees race on two
//!   CPUs; `usable_size`, `is_valid_pointer` and `realloc` refuse it too;
//! * the fast path identifies a large block by its header alone: the check
//!   word, keyed by the header's offset, must match (the locked path does
//!   the same once the page map says no slab owns the pointer).
//!
//! A block handed out again gets its new requested size and check word in
//! one 64-bit store. `block` explains why the locked heap and the fast path
//! can share headers this way.
//!
//! Accounting. Fast allocations and frees are counted in the cache and
//! folded into the heap counters by [`Heap::magazine_absorb`], together
//! with the magazines' events; the heap also tracks how many blocks (and
//! bytes) are parked. The statistics count parked blocks as free memory
//! (in `magazine_objects`/`magazine_bytes` and `free_bytes`, not in
//! `large_allocs`), and `validate` checks that the blocks marked cached
//! are exactly the parked ones. The kernel glue returns every parked block
//! to the TLSF lists whenever it pauses the fast path for a report, so
//! `stats`, `validate` and `heapmap` show the heap as if nothing was
//! parked; only an allocation that fails before such a flush can be
//! affected, and it flushes and retries like the magazines.

use core::ptr::NonNull;
use core::sync::atomic::Ordering::Relaxed;

use super::block::{decode_w0, header_check_word, req_check_pair, used_large_w0, F_CACHED};
use super::config::{HEADER_SIZE, MIN_BLOCK};
use super::error::{Corruption, CorruptionKind};
use super::fast_view::FastView;
use super::heap::Heap;
use super::magazine::{CpuCache, FastFree};

/// Blocks one CPU's cache parks at most.
pub const LARGE_SLOTS: usize = 16;
/// Largest block (header included) the cache parks: 64 KiB of payload.
pub const LARGE_CACHE_MAX_BLOCK: usize = 64 * 1024 + HEADER_SIZE;
/// Bytes of blocks one CPU's cache parks at most, on a region of at least
/// 16 times as much (8 MiB, the module's default heap); a smaller region
/// allows a sixteenth of its size ([`FastView::large_cache_budget`]).
pub const LARGE_CACHE_BYTES: usize = 512 * 1024;

/// The per-CPU byte budget of the large cache on a region of `len` bytes:
/// [`LARGE_CACHE_BYTES`], or a sixteenth of the region if that is less,
/// so that the caches of a few CPUs cannot hold most of a small heap.
pub(super) fn large_cache_budget(len: usize) -> usize {
    (len / 16).min(LARGE_CACHE_BYTES)
}

/// The largest block parked under a byte budget of `budget`:
/// [`LARGE_CACHE_MAX_BLOCK`], or half the budget if that is less, so that
/// the eviction of a full cache (down to half the budget) always makes
/// room for the block being freed.
pub(super) fn large_cache_max_block(budget: usize) -> usize {
    (budget / 2).min(LARGE_CACHE_MAX_BLOCK)
}

/// A parked block: header offset and block size.
#[derive(Clone, Copy, Default)]
struct Slot {
    off: u32,
    size: u32,
}

/// Fast-path events of the large cache, not yet folded into the heap.
#[derive(Clone, Copy, Default)]
struct LargeEvents {
    allocs: u64,
    frees: u64,
    /// Requested bytes of the allocations.
    requested: u64,
    /// Requested bytes (header word 2) of the freed blocks.
    freed_req: u64,
    /// Block bytes (headers included) allocated and freed.
    alloc_bytes: u64,
    free_bytes: u64,
}

/// The large-block part of a [`CpuCache`].
#[derive(Clone, Copy, Default)]
pub(super) struct LargeCache {
    count: usize,
    bytes: usize,
    slots: [Slot; LARGE_SLOTS],
    ev: LargeEvents,
    corruptions: u64,
}

impl LargeCache {
    /// An empty cache.
    pub(super) const fn new() -> Self {
        LargeCache {
            count: 0,
            bytes: 0,
            slots: [Slot { off: 0, size: 0 }; LARGE_SLOTS],
            ev: LargeEvents {
                allocs: 0,
                frees: 0,
                requested: 0,
                freed_req: 0,
                alloc_bytes: 0,
                free_bytes: 0,
            },
            corruptions: 0,
        }
    }

    /// Moves everything (events and parked blocks) into `out`, leaving this
    /// cache empty; `out` must hold no blocks.
    pub(super) fn detach_into(&mut self, out: &mut LargeCache) {
        *out = core::mem::replace(self, LargeCache::new());
    }
}

/// A verified header of a used, uncached large block the cache may park.
struct Parkable {
    hdr: usize,
    w0: u32,
    size: usize,
    req: u32,
}

impl FastView {
    /// The header of the live large block whose payload starts at region
    /// offset `off`, if it checks out and the block is small enough to park.
    #[inline(always)]
    fn parkable(&self, off: usize) -> Option<Parkable> {
        let hdr = off.checked_sub(HEADER_SIZE)?;
        if hdr < self.blocks_start {
            return None;
        }
        // `header` checks the bounds and the alignment (16, `BLOCK_ALIGN`).
        let (a0, _, a23) = self.mem.header(hdr)?;
        let w0 = a0.load(Relaxed);
        let w23 = a23.load(Relaxed);
        let (req, w3) = (w23 as u32, (w23 >> 32) as u32);
        if header_check_word(hdr, w0, req) != w3 {
            return None;
        }
        let (size, used, slab, cached) = decode_w0(w0);
        let fits = hdr.checked_add(size).is_some_and(|e| e <= self.mem.len());
        if !used
            || slab
            || cached
            || !fits
            || !(MIN_BLOCK..=self.large_cache_max_block()).contains(&size)
        {
            return None;
        }
        Some(Parkable { hdr, w0, size, req })
    }
}

impl CpuCache {
    /// Blocks parked in the large cache.
    pub fn large_held(&self) -> usize {
        self.large.count
    }

    /// Allocates `size` bytes (a large request) aligned to `align` (a power
    /// of two) from a parked block whose size fits within 1/8, the most
    /// recently parked first; `None` when none fits (use the locked heap).
    /// With `zero` the payload is cleared.
    pub fn alloc_large(
        &mut self,
        v: &FastView,
        size: usize,
        align: usize,
        zero: bool,
    ) -> Option<NonNull<u8>> {
        let l = &mut self.large;
        // Nothing is parked where `v.large_ok` is false (`free_large`).
        // What the locked heap refuses is refused here too, before any
        // block could fit (size 0's block is the minimum block, which a
        // parked block of that size fits).
        if l.count == 0 || Heap::check_request(size, align, v.mem.len()).is_err() {
            return None;
        }
        let need = Heap::block_size_for(size)?;
        let req = u32::try_from(size).ok()?;
        let mut i = l.count;
        while i > 0 {
            i -= 1;
            let s = *l.slots.get(i)?;
            let bsize = s.size as usize;
            let hdr = s.off as usize;
            let pay = hdr.wrapping_add(HEADER_SIZE);
            if bsize < need || bsize - need > need / 8 || v.mem.addr(pay) & (align - 1) != 0 {
                continue;
            }
            // Take slot `i` out; the last slot (already looked at) moves in.
            l.count -= 1;
            l.bytes = l.bytes.wrapping_sub(bsize);
            let last = *l.slots.get(l.count)?;
            *l.slots.get_mut(i)? = last;
            let w0 = used_large_w0(bsize);
            if !v.mem.cas32(hdr, w0 | F_CACHED, w0) {
                // Word 0 damaged while parked: dropped, never handed out
                // (`validate` reports the block).
                l.corruptions = l.corruptions.wrapping_add(1);
                continue;
            }
            // The new requested size and check word (word 0 was just
            // verified, words 2 and 3 are rewritten whole).
            v.mem
                .store64(hdr.wrapping_add(8), req_check_pair(hdr, w0, req));
            let ev = &mut l.ev;
            ev.allocs = ev.allocs.wrapping_add(1);
            ev.requested = ev.requested.wrapping_add(size as u64);
            ev.alloc_bytes = ev.alloc_bytes.wrapping_add(bsize as u64);
            if zero {
                v.zero(pay, bsize - HEADER_SIZE);
            }
            return Some(v.mem.ptr(pay));
        }
        None
    }

    /// Parks the large block whose payload is `ptr` if it is live, small
    /// enough and the cache has room; `LargeFull` when the cache has no
    /// room for it, `Slow` otherwise (in both cases nothing changed; `Slow`
    /// means: free it through the locked heap, which reports any error).
    pub fn free_large(&mut self, v: &FastView, ptr: *const u8) -> FastFree {
        let l = &mut self.large;
        if !v.large_ok {
            return FastFree::Slow;
        }
        let Some(p) = v.mem.offset_of(ptr).and_then(|o| v.parkable(o)) else {
            return FastFree::Slow;
        };
        if l.count >= LARGE_SLOTS || l.bytes.saturating_add(p.size) > v.large_budget {
            return FastFree::LargeFull;
        }
        // Fails if another CPU parked it first (a racing double free) or
        // the header changed since it was read.
        if !v.mem.cas32(p.hdr, p.w0, p.w0 | F_CACHED) {
            return FastFree::Slow;
        }
        if let Some(s) = l.slots.get_mut(l.count) {
            *s = Slot {
                off: p.hdr as u32,
                size: p.size as u32,
            };
            l.count += 1;
            l.bytes = l.bytes.wrapping_add(p.size);
        }
        let ev = &mut l.ev;
        ev.frees = ev.frees.wrapping_add(1);
        ev.freed_req = ev.freed_req.wrapping_add(u64::from(p.req));
        ev.free_bytes = ev.free_bytes.wrapping_add(p.size as u64);
        FastFree::Done
    }

    /// [`CpuCache::free_large`], making room through `evict` (which locks
    /// the heap and calls [`Heap::large_cache_evict`]) and retrying once
    /// when the cache is full. Returns `Done` or `Slow`.
    pub fn free_large_with(
        &mut self,
        v: &FastView,
        ptr: *const u8,
        evict: impl FnOnce(&mut CpuCache),
    ) -> FastFree {
        match self.free_large(v, ptr) {
            FastFree::LargeFull => {
                evict(self);
                match self.free_large(v, ptr) {
                    FastFree::Done => FastFree::Done,
                    _ => FastFree::Slow,
                }
            }
            r => r,
        }
    }
}

impl Heap {
    /// Folds the large cache's events into the heap counters (part of
    /// [`Heap::magazine_absorb`]).
    pub(super) fn large_cache_absorb(&mut self, l: &mut LargeCache) {
        let ev = core::mem::take(&mut l.ev);
        // Payload bytes: block bytes less one header per allocation.
        let usable = ev
            .alloc_bytes
            .wrapping_sub(ev.allocs.wrapping_mul(HEADER_SIZE as u64));
        self.count_fast(
            ev.allocs,
            ev.frees,
            ev.requested,
            usable,
            (ev.requested, ev.freed_req),
        );
        let ctr = &mut self.ctr;
        ctr.corruptions = ctr
            .corruptions
            .wrapping_add(core::mem::take(&mut l.corruptions));
        let mg = &mut self.mags;
        mg.large_cached = mg
            .large_cached
            .wrapping_add(ev.frees)
            .wrapping_sub(ev.allocs);
        mg.large_cached_bytes = mg
            .large_cached_bytes
            .wrapping_add(ev.free_bytes)
            .wrapping_sub(ev.alloc_bytes);
    }

    /// Returns the parked blocks of `cpu` to the TLSF lists (merged with
    /// free neighbours). Returns how many went back; a parked block whose
    /// header is damaged is dropped (still marked cached, so `validate`
    /// reports it) and the first such damage is counted and returned. The
    /// cache's events are left for [`Heap::magazine_absorb`]; the parked
    /// counts are wrapping sums, so the order of the two does not matter.
    pub fn large_cache_flush(&mut self, cpu: &mut CpuCache) -> Result<usize, Corruption> {
        self.large_cache_return(cpu, 0, 0)
    }

    /// Makes room in the full large-block cache of `cpu`: returns its
    /// oldest parked blocks to the TLSF lists, as
    /// [`Heap::large_cache_flush`] does, until at most half its slots and
    /// half its bytes are left.
    pub fn large_cache_evict(&mut self, cpu: &mut CpuCache) -> Result<usize, Corruption> {
        let half = large_cache_budget(self.mem.len()) / 2;
        self.large_cache_return(cpu, LARGE_SLOTS / 2, half)
    }

    /// Returns the oldest parked blocks of `cpu` (the first slots: a free
    /// appends, an allocation moves the last slot into the one it takes)
    /// until at most `keep` blocks and `keep_bytes` bytes are left.
    fn large_cache_return(
        &mut self,
        cpu: &mut CpuCache,
        keep: usize,
        keep_bytes: usize,
    ) -> Result<usize, Corruption> {
        let l = &mut cpu.large;
        // `count` never exceeds the slots (`free_large` stops there); the
        // bound keeps `copy_within` from panicking all the same.
        let count = l.count.min(l.slots.len());
        let (mut n, mut left) = (0usize, l.bytes);
        while n < count && (count - n > keep || left > keep_bytes) {
            left = left.saturating_sub(l.slots.get(n).map_or(0, |s| s.size as usize));
            n += 1;
        }
        let gone = l.slots;
        l.slots.copy_within(n..count, 0);
        l.count = count - n;
        l.bytes = left;
        let mut done = 0;
        let mut first_err = None;
        for s in gone.iter().take(n) {
            let off = s.off as usize;
            let r = self.block(off).and_then(|b| {
                if b.used && !b.slab && b.cached && b.size == s.size as usize {
                    self.large_free(b)
                } else {
                    Err(Corruption::new(
                        CorruptionKind::MagazineEntry,
                        off,
                        b.size as u64,
                    ))
                }
            });
            let mg = &mut self.mags;
            mg.large_cached = mg.large_cached.wrapping_sub(1);
            mg.large_cached_bytes = mg.large_cached_bytes.wrapping_sub(u64::from(s.size));
            match r {
                Ok(()) => done += 1,
                Err(c) => {
                    first_err.get_or_insert(c);
                }
            }
        }
        match first_err {
            Some(c) => Err(self.note_corruption(c)),
            None => Ok(done),
        }
    }
}
