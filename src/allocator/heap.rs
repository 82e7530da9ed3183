// SPDX-License-Identifier: GPL-2.0

//! The [`Heap`] facade: initialisation, kmalloc-style allocation, free,
//! custom-cache object allocation and pointer queries (resizing is in
//! `realloc`).
//!
//! Routing: requests of at most `MAX_SIZE` bytes with an alignment of at most
//! 64 go to the smallest size class whose size is at least
//! `max(size, align)` (class objects are naturally aligned up to 64 bytes:
//! 8, 16, 32, then 64 for all larger classes). Larger requests and larger
//! alignments go to the TLSF large-block allocator, which supports any
//! power-of-two alignment up to the heap size.

use core::ptr::NonNull;

use super::block::Block;
use super::cache::{CacheDesc, CacheId};
use super::config::{
    CLASS_MAX_ALIGN, HEADER_SIZE, MAX_HEAP_SIZE, MAX_SIZE, MIN_HEAP_SIZE, MIN_SIZE, PAGE_SIZE,
    TOTAL_CACHES,
};
use super::debug::{count_kind, DebugState};
use super::depot::depot_bytes;
use super::error::{AllocError, Corruption, CorruptionKind, FreeError, InitError};
use super::flags::Flags;
use super::large::{round16, Placement, TLSF_INDEX_BYTES};
use super::magazine_heap::MagazineCounters;
use super::pagemap::ENTRY_BYTES;
use super::region::Region;

/// Counters of the large-block allocator.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct TlsfCounters {
    /// Physical blocks (free and used).
    pub(super) block_count: usize,
    /// Free blocks.
    pub(super) free_count: usize,
    /// Sum of free block sizes (headers included).
    pub(super) free_bytes: usize,
}

/// Counters of the slab layer.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct SlabCounters {
    /// Slab spans.
    pub(super) spans: usize,
    /// Sum of span block sizes.
    pub(super) span_bytes: usize,
    /// Sum of `capacity * stride` over all spans.
    pub(super) cap_bytes: usize,
    /// Sum of strides of live objects.
    pub(super) used_bytes: usize,
}

/// Event counters reported by [`Heap::stats`](Heap::stats).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Counters {
    pub(super) total_allocs: u64,
    pub(super) total_frees: u64,
    pub(super) failed_allocs: u64,
    pub(super) double_frees: u64,
    pub(super) invalid_frees: u64,
    pub(super) wrong_cache_frees: u64,
    pub(super) corruptions: u64,
    pub(super) dma_refusals: u64,
    pub(super) slab_allocs: u64,
    pub(super) reuses: u64,
    pub(super) requested_live: u64,
    pub(super) requested_total: u64,
    pub(super) usable_total: u64,
    pub(super) redzone_errors: u64,
    pub(super) poison_errors: u64,
    pub(super) sanity_errors: u64,
}

/// A heap managing one caller-supplied region.
///
/// All metadata (TLSF index, cache descriptors, page map, magazine depot) lives in a
/// metadata area at the start of the region; the struct itself only holds
/// the region and a few counters, so it is small and may be moved freely.
pub struct Heap {
    pub(super) mem: Region,
    pub(super) blocks_start: usize,
    pub(super) caches_off: usize,
    pub(super) pagemap_off: usize,
    /// Offset of the magazine depot's entries (`depot.rs`).
    pub(super) depot_off: usize,
    pub(super) npages: usize,
    pub(super) initial_largest: usize,
    pub(super) tlsf: TlsfCounters,
    pub(super) slabs: SlabCounters,
    pub(super) ctr: Counters,
    pub(super) mags: MagazineCounters,
    pub(super) dbg: DebugState,
}

// SAFETY: the heap exclusively owns its region (contract of `Heap::new`);
// nothing in it is tied to a thread, and every access needs `&mut self` or
// `&self`, so moving it to another thread is sound.
unsafe impl Send for Heap {}

/// Smallest size class index holding `n` bytes, `None` above the largest
/// class.
#[inline]
fn class_index(n: usize) -> Option<usize> {
    if n <= MIN_SIZE {
        return Some(0);
    }
    if n > MAX_SIZE {
        return None;
    }
    // `n - 1` has `bits` significant bits: 4 for 9..=16 bytes (class 1).
    let bits = (usize::BITS - (n - 1).leading_zeros()) as usize;
    Some(bits.saturating_sub(3))
}

/// Result of a successful internal allocation.
struct Got {
    off: usize,
    usable: usize,
    /// Requested bytes as accounted in `requested_bytes` (class size for
    /// size-class objects).
    req: u64,
    /// The exact request, for the cumulative `requested_total`.
    exact: u64,
}

impl Heap {
    /// Creates a heap over `region..region + len`.
    ///
    /// The region must be `PAGE_SIZE` aligned, `len` a multiple of
    /// `PAGE_SIZE`, at least [`MIN_HEAP_SIZE`] and at most 1 GiB.
    ///
    /// # Safety
    ///
    /// The region must be valid for reads and writes and exclusively owned by
    /// the returned heap for its whole lifetime (no other access to it while
    /// the heap lives, except through pointers the heap hands out).
    pub unsafe fn new(region: NonNull<u8>, len: usize) -> Result<Heap, InitError> {
        if !(region.as_ptr() as usize).is_multiple_of(PAGE_SIZE) {
            return Err(InitError::Misaligned);
        }
        if !len.is_multiple_of(PAGE_SIZE) {
            return Err(InitError::BadLength);
        }
        if len < MIN_HEAP_SIZE {
            return Err(InitError::TooSmall);
        }
        if len > MAX_HEAP_SIZE {
            return Err(InitError::TooLarge);
        }
        // SAFETY: forwarded from the caller's contract; alignment checked.
        let mem = unsafe { Region::new(region, len) };
        let (caches_off, pagemap_off) = Self::metadata_layout();
        let npages = len / PAGE_SIZE;
        let depot_off = Self::depot_offset_for(len).ok_or(InitError::TooLarge)?;
        let blocks_start = Self::metadata_bytes_for(len).ok_or(InitError::TooLarge)?;
        let mut heap = Heap {
            mem,
            blocks_start,
            caches_off,
            pagemap_off,
            depot_off,
            npages,
            initial_largest: 0,
            tlsf: TlsfCounters::default(),
            slabs: SlabCounters::default(),
            ctr: Counters::default(),
            mags: MagazineCounters::default(),
            dbg: DebugState::default(),
        };
        heap.mem.fill(0, blocks_start, 0);
        heap.init_builtin_caches();
        let first = Block::free(blocks_start, len - blocks_start, 0);
        heap.tlsf.block_count = 1;
        heap.insert_free(first).map_err(|_| InitError::TooSmall)?;
        heap.initial_largest = heap.largest_free_block_size().saturating_sub(HEADER_SIZE);
        Ok(heap)
    }

    /// Offsets of the cache descriptors and of the page map in the
    /// metadata area (the TLSF index comes first, at offset 0).
    fn metadata_layout() -> (usize, usize) {
        let caches_off = TLSF_INDEX_BYTES.next_multiple_of(8);
        let pagemap_off = caches_off
            .wrapping_add(TOTAL_CACHES * core::mem::size_of::<CacheDesc>())
            .next_multiple_of(8);
        (caches_off, pagemap_off)
    }

    /// Offset of the depot area of a heap of `len` bytes: after the page
    /// map, one entry per page of the region. `None` on overflow.
    fn depot_offset_for(len: usize) -> Option<usize> {
        let (_, pagemap_off) = Self::metadata_layout();
        let entries = (len / PAGE_SIZE).checked_mul(ENTRY_BYTES)?;
        pagemap_off.checked_add(entries)
    }

    /// Bytes of the metadata area of a heap of `len` bytes (what
    /// [`Heap::metadata_bytes`] returns for it): the TLSF index and cache
    /// descriptors, fixed, one page-map entry per page of the region and
    /// the magazine depot (`depot.rs`: at most 40,832 bytes, 0.49% of
    /// the region), rounded to 16. `None` on overflow.
    pub fn metadata_bytes_for(len: usize) -> Option<usize> {
        let end = Self::depot_offset_for(len)?.checked_add(depot_bytes(len))?;
        round16(end)
    }

    /// Base address of the region.
    pub fn base(&self) -> NonNull<u8> {
        self.mem.base()
    }

    /// Length of the region in bytes.
    pub fn len(&self) -> usize {
        self.mem.len()
    }

    /// Always false: a heap is never empty (it owns at least 64 KiB).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Offset of `ptr` from the heap base if it lies in the region (for
    /// printing without leaking raw kernel addresses).
    pub fn region_offset(&self, ptr: *const u8) -> Option<usize> {
        self.mem.offset_of(ptr)
    }

    /// Bytes of the metadata area at the start of the region.
    pub fn metadata_bytes(&self) -> usize {
        self.blocks_start
    }

    /// Offset and bytes of the magazine depot's entries (`depot.rs`), the
    /// last part of the metadata area.
    pub fn depot_area(&self) -> (usize, usize) {
        (self.depot_off, depot_bytes(self.mem.len()))
    }

    /// Records detected corruption and passes it through.
    pub(super) fn note_corruption(&mut self, c: Corruption) -> Corruption {
        self.ctr.corruptions = self.ctr.corruptions.wrapping_add(1);
        count_kind(self, &c);
        c
    }

    /// Allocates `size` bytes aligned to 16 (8 for sizes up to 8).
    pub fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        self.alloc_flags(size, MIN_SIZE, Flags::NONE).ok()
    }

    /// Allocates `size` bytes aligned to `align` (a power of two).
    pub fn alloc_aligned(&mut self, size: usize, align: usize) -> Option<NonNull<u8>> {
        self.alloc_flags(size, align, Flags::NONE).ok()
    }

    /// Allocates with explicit alignment and flags.
    pub fn alloc_flags(
        &mut self,
        size: usize,
        align: usize,
        flags: Flags,
    ) -> Result<NonNull<u8>, AllocError> {
        let r = self.alloc_inner(size, align, flags, Placement::GoodFit);
        self.finish_alloc(r, flags)
    }

    /// Like [`Heap::alloc_flags`], except that running out of memory is
    /// returned without being counted as a failure: the caller reclaims
    /// (drains per-CPU magazines) and retries with `alloc_flags`.
    pub fn alloc_flags_retryable(
        &mut self,
        size: usize,
        align: usize,
        flags: Flags,
    ) -> Result<NonNull<u8>, AllocError> {
        self.alloc_retryable(size, align, flags, Placement::GoodFit)
    }

    /// The retryable allocations: out of memory is returned uncounted.
    pub(super) fn alloc_retryable(
        &mut self,
        size: usize,
        align: usize,
        flags: Flags,
        placement: Placement,
    ) -> Result<NonNull<u8>, AllocError> {
        match self.alloc_inner(size, align, flags, placement) {
            Err(AllocError::OutOfMemory) => Err(AllocError::OutOfMemory),
            r => self.finish_alloc(r, flags),
        }
    }

    /// A kmalloc-style allocation of `size` bytes (default alignment, no
    /// flags) whose large block is chosen by `placement`; counted like any.
    pub(super) fn alloc_placed(
        &mut self,
        size: usize,
        placement: Placement,
    ) -> Result<NonNull<u8>, AllocError> {
        let r = self.alloc_inner(size, MIN_SIZE, Flags::NONE, placement);
        self.finish_alloc(r, Flags::NONE)
    }

    /// Counts `e` as a failed allocation made outside the heap's own entry
    /// points (a failed magazine refill) and returns it.
    pub fn fail_alloc(&mut self, e: AllocError) -> AllocError {
        match self.finish_alloc(Err(e), Flags::NONE) {
            Err(e) => e,
            Ok(_) => e,
        }
    }

    fn finish_alloc(
        &mut self,
        r: Result<Got, AllocError>,
        flags: Flags,
    ) -> Result<NonNull<u8>, AllocError> {
        match r {
            Ok(g) => {
                self.ctr.total_allocs = self.ctr.total_allocs.wrapping_add(1);
                self.ctr.requested_live = self.ctr.requested_live.wrapping_add(g.req);
                self.ctr.requested_total = self.ctr.requested_total.wrapping_add(g.exact);
                self.ctr.usable_total = self.ctr.usable_total.wrapping_add(g.usable as u64);
                if flags.contains(Flags::ZERO) {
                    self.mem.fill(g.off, g.usable, 0);
                }
                Ok(self.mem.ptr(g.off))
            }
            Err(e) => {
                self.ctr.failed_allocs = self.ctr.failed_allocs.wrapping_add(1);
                match e {
                    AllocError::DmaUnsupported => {
                        self.ctr.dma_refusals = self.ctr.dma_refusals.wrapping_add(1)
                    }
                    AllocError::Corrupted(c) => {
                        self.ctr.corruptions = self.ctr.corruptions.wrapping_add(1);
                        count_kind(self, &c);
                    }
                    _ => {}
                }
                Err(e)
            }
        }
    }

    /// `placement` picks the good-fit step of a large block (see `large`).
    #[inline]
    /// What every allocation path refuses before it looks for memory, in a
    /// heap of `heap_len` bytes: size 0 and an alignment that is no power
    /// of two or exceeds the heap.
    pub(super) fn check_request(
        size: usize,
        align: usize,
        heap_len: usize,
    ) -> Result<(), AllocError> {
        if size == 0 {
            return Err(AllocError::ZeroSize);
        }
        if !align.is_power_of_two() || align > heap_len {
            return Err(AllocError::BadAlign);
        }
        Ok(())
    }

    fn alloc_inner(
        &mut self,
        size: usize,
        align: usize,
        flags: Flags,
        placement: Placement,
    ) -> Result<Got, AllocError> {
        if flags.contains(Flags::DMA) {
            return Err(AllocError::DmaUnsupported);
        }
        Self::check_request(size, align, self.mem.len())?;
        let align = align.max(MIN_SIZE);
        if align <= CLASS_MAX_ALIGN {
            if let Some(ci) = class_index(size.max(align)) {
                return self.cache_alloc_inner(ci, size as u64);
            }
        }
        // A successful large block is below 1 GiB, so its size fits in u32.
        let req = size.min(u32::MAX as usize) as u32;
        let (b, usable) = if self.dbg.flags.is_empty() {
            let b = self.large_alloc_at(size, align, req, false, placement)?;
            (b, b.payload_size())
        } else {
            self.debug_large_alloc(size, align, req)?
        };
        Ok(Got {
            off: b.payload(),
            usable,
            req: size as u64,
            exact: size as u64,
        })
    }

    /// Allocates from cache `ci`; `exact` is the caller's request size, or
    /// 0 for "the cache's object size".
    fn cache_alloc_inner(&mut self, ci: usize, exact: u64) -> Result<Got, AllocError> {
        match self.slab_alloc(ci) {
            Ok((off, reused)) => {
                if reused {
                    self.ctr.reuses = self.ctr.reuses.wrapping_add(1);
                }
                self.ctr.slab_allocs = self.ctr.slab_allocs.wrapping_add(1);
                // `slab_alloc` succeeded, so `ci` names a descriptor.
                let Some(c) = self.cache_mut(ci) else {
                    return Ok(Got {
                        off,
                        usable: 0,
                        req: 0,
                        exact,
                    });
                };
                let req = u64::from(c.object_size);
                let exact = if exact == 0 { req } else { exact };
                c.allocs = c.allocs.wrapping_add(1);
                c.requested_total = c.requested_total.wrapping_add(exact);
                if reused {
                    c.reuses = c.reuses.wrapping_add(1);
                }
                Ok(Got {
                    off,
                    usable: c.usable(),
                    req,
                    exact,
                })
            }
            Err(e) => {
                if let Some(c) = self.cache_mut(ci) {
                    c.failures = c.failures.wrapping_add(1);
                }
                Err(e)
            }
        }
    }

    /// Allocates one object from cache `id`.
    pub fn cache_alloc(&mut self, id: CacheId) -> Result<NonNull<u8>, AllocError> {
        self.cache_alloc_flags(id, Flags::NONE)
    }

    /// Allocates one zeroed object from cache `id`.
    pub fn cache_zalloc(&mut self, id: CacheId) -> Result<NonNull<u8>, AllocError> {
        self.cache_alloc_flags(id, Flags::ZERO)
    }

    fn cache_alloc_flags(&mut self, id: CacheId, flags: Flags) -> Result<NonNull<u8>, AllocError> {
        let r = match self.resolve(id) {
            Some(ci) => self.cache_alloc_inner(ci, 0),
            None => Err(AllocError::BadCache),
        };
        self.finish_alloc(r, flags)
    }

    /// Frees an allocation (kfree semantics: a null pointer is a no-op).
    pub fn free(&mut self, ptr: *mut u8) -> Result<(), FreeError> {
        if ptr.is_null() {
            return Ok(());
        }
        let r = self.free_inner(ptr, None);
        self.finish_free(r)
    }

    /// Frees an object of cache `id` (a null pointer is a no-op).
    pub fn cache_free(&mut self, id: CacheId, ptr: *mut u8) -> Result<(), FreeError> {
        if ptr.is_null() {
            return Ok(());
        }
        let r = match self.resolve(id) {
            Some(ci) => self.free_inner(ptr, Some(ci)),
            None => Err(FreeError::DestroyedCache),
        };
        self.finish_free(r)
    }

    /// Frees an allocation the caller knows to be live because it keeps its
    /// own record of it (the debugfs handle table does); `cache` as for
    /// [`Heap::cache_free`], `None` for [`Heap::free`]. For such a pointer a
    /// refusal that would mean "not a live allocation" (double free, not
    /// allocated, interior, outside) can only mean damaged metadata, so it
    /// is reported as [`FreeError::Corrupted`] naming the damage and counted
    /// in `corruptions` instead of `invalid_frees` or `double_frees`.
    pub fn free_live(&mut self, ptr: *mut u8, cache: Option<CacheId>) -> Result<(), FreeError> {
        let r = match cache {
            None => self.free_inner(ptr, None),
            Some(id) => match self.resolve(id) {
                Some(ci) => self.free_inner(ptr, Some(ci)),
                None => Err(FreeError::DestroyedCache),
            },
        };
        let r = match r {
            Err(
                FreeError::NotAllocated
                | FreeError::DoubleFree
                | FreeError::Interior
                | FreeError::OutsideHeap,
            ) => Err(FreeError::Corrupted(self.explain_refusal(ptr))),
            r => r,
        };
        self.finish_free(r)
    }

    /// The damage that makes the known-live allocation at `ptr` look dead.
    fn explain_refusal(&self, ptr: *const u8) -> Corruption {
        let off = self.mem.offset_of(ptr).unwrap_or(0);
        let hdr = off.saturating_sub(HEADER_SIZE);
        match self.pagemap_lookup(off) {
            Err(c) => c,
            Ok(Some(span)) => match self.slab_desc(span.off) {
                Err(c) => c,
                Ok(_) => Corruption::new(CorruptionKind::SlabCountMismatch, span.off, off as u64),
            },
            Ok(None) => match self.block(hdr) {
                Err(c) => c,
                Ok(b) => Corruption::new(CorruptionKind::BadMagic, hdr, u64::from(b.used)),
            },
        }
    }

    fn finish_free(&mut self, r: Result<(), FreeError>) -> Result<(), FreeError> {
        if let Err(FreeError::Corrupted(c)) = r {
            count_kind(self, &c);
        }
        let c = &mut self.ctr;
        match r {
            Ok(()) => c.total_frees = c.total_frees.wrapping_add(1),
            Err(FreeError::DoubleFree) => c.double_frees = c.double_frees.wrapping_add(1),
            Err(FreeError::WrongCache) => c.wrong_cache_frees = c.wrong_cache_frees.wrapping_add(1),
            Err(FreeError::Corrupted(_)) => c.corruptions = c.corruptions.wrapping_add(1),
            Err(_) => c.invalid_frees = c.invalid_frees.wrapping_add(1),
        }
        r
    }

    /// Counts a refused free and returns its error.
    pub(super) fn reject_free(&mut self, e: FreeError) -> FreeError {
        let _ = self.finish_free(Err(e));
        e
    }

    /// Region offset of `ptr` if it points into the block area.
    pub(super) fn block_area_offset(&self, ptr: *const u8) -> Option<usize> {
        self.mem.offset_of(ptr).filter(|&o| o >= self.blocks_start)
    }

    /// The live large block whose payload starts at `off`. (`block`
    /// refuses a header that is misaligned or below the block area.)
    pub(super) fn large_at(&self, off: usize) -> Result<Block, FreeError> {
        let hdr = off
            .checked_sub(HEADER_SIZE)
            .ok_or(FreeError::NotAllocated)?;
        let b = self.block(hdr).map_err(|_| FreeError::NotAllocated)?;
        if b.slab {
            return Err(FreeError::NotAllocated);
        }
        // A block in a per-CPU cache was freed already (`large_cache`).
        if !b.used || b.cached {
            return Err(FreeError::DoubleFree);
        }
        Ok(b)
    }

    fn free_inner(&mut self, ptr: *mut u8, want: Option<usize>) -> Result<(), FreeError> {
        let off = self.block_area_offset(ptr).ok_or(FreeError::OutsideHeap)?;
        if let Some(span) = self.pagemap_lookup(off)? {
            let ci = self.slab_desc(span.off)?.cache as usize;
            self.slab_free(&span, off, want)?;
            let req = u64::from(self.cache(ci).object_size);
            self.ctr.requested_live = self.ctr.requested_live.wrapping_sub(req);
            return Ok(());
        }
        let b = match self.large_at(off) {
            Ok(b) => b,
            Err(FreeError::NotAllocated) => {
                return if self.pagemap_ghost_object(off) {
                    Err(FreeError::DoubleFree)
                } else {
                    Err(FreeError::NotAllocated)
                };
            }
            Err(e) => return Err(e),
        };
        if want.is_some() {
            return Err(FreeError::WrongCache);
        }
        let req = u64::from(b.req);
        if !self.dbg.flags.is_empty() {
            self.debug_large_release(b.off)?;
        }
        self.large_free(b)?;
        self.ctr.requested_live = self.ctr.requested_live.wrapping_sub(req);
        Ok(())
    }

    /// Usable size of the live allocation starting at `ptr`.
    pub fn usable_size(&self, ptr: *const u8) -> Option<usize> {
        let off = self.block_area_offset(ptr)?;
        match self.pagemap_lookup(off) {
            Ok(Some(span)) => self.slab_live_usable(&span, off).ok(),
            Ok(None) => self.large_at(off).ok().map(|b| self.large_usable(&b)),
            Err(_) => None,
        }
    }

    /// True only for the start of a live allocation.
    pub fn is_valid_pointer(&self, ptr: *const u8) -> bool {
        self.usable_size(ptr).is_some()
    }
}

/// Size-class index used for a kmalloc-style request (exposed for tests).
#[inline]
pub fn size_class_for(size: usize, align: usize) -> Option<usize> {
    // The power-of-two check comes first: `alloc_flags` refuses 0, 3, ...
    // (`BadAlign`), so the fast paths that route on this must not take them.
    if size == 0 || !align.is_power_of_two() || align > CLASS_MAX_ALIGN {
        return None;
    }
    class_index(size.max(align.max(MIN_SIZE)))
}
