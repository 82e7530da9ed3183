// SPDX-License-Identifier: GPL-2.0

//! Heap statistics.
//!
//! Byte accounting partitions the region exactly:
//! `used_bytes + free_bytes + overhead_bytes == heap_size`, where
//!
//! * `used_bytes`: usable bytes of live allocations (payload of used large
//!   blocks, stride of live slab objects);
//! * `free_bytes`: payload of free large blocks plus free object slots of
//!   existing slabs, including objects held by per-CPU magazines;
//! * `overhead_bytes`: the metadata area, every 16-byte block header (used
//!   and free), and per slab the descriptor, bitmap, alignment padding and
//!   unused tail (span size minus `capacity * stride`).
//!
//! `requested_bytes` is the sum of requested sizes of live allocations:
//! exact for large blocks (the request is stored in the header) and for
//! custom-cache objects (the object size); a size-class object counts its
//! class size, because remembering each object's request would cost 2 bytes
//! per object (25 % for the 8-byte class). Internal fragmentation over the
//! whole run is exact through `requested_total` / `usable_total`.

use super::config::{class_size, HEADER_SIZE, NUM_CACHES, TOTAL_CACHES};
use super::heap::Heap;

/// Snapshot of the heap counters. All integers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Region size.
    pub heap_size: usize,
    /// Bytes of the metadata area (TLSF index, cache descriptors, page map).
    pub metadata_bytes: usize,
    /// Usable bytes of live allocations.
    pub used_bytes: usize,
    /// Free payload bytes (large free blocks and free slab object slots).
    pub free_bytes: usize,
    /// Metadata, headers, slab descriptors/bitmaps/padding/tails.
    pub overhead_bytes: usize,
    /// Requested bytes of live allocations (see the module doc).
    pub requested_bytes: u64,
    /// Usable bytes of live allocations (equals `used_bytes`).
    pub usable_bytes: usize,
    /// Sum of exact requested sizes of all successful allocations ever
    /// (realloc in place not included).
    pub requested_total: u64,
    /// Sum of usable sizes of all successful allocations ever.
    pub usable_total: u64,
    /// Largest payload of a single free block: allocatable as a large
    /// block (above 4 KiB; a smaller request takes a size class).
    pub largest_free_block: usize,
    /// `largest_free_block` right after initialisation.
    pub initial_largest_free_block: usize,
    /// External fragmentation in percent: `100 * (1 - largest / total free)`
    /// over free large blocks; 0 when nothing is free.
    pub fragmentation_pct: u32,
    /// The same in basis points (1/100 of a percent).
    pub fragmentation_bp: u32,
    /// Successful allocations (realloc that moves counts one alloc and one free).
    pub total_allocs: u64,
    /// Successful frees.
    pub total_frees: u64,
    /// Live allocations.
    pub active_allocs: u64,
    /// Failed allocations (all reasons).
    pub failed_allocs: u64,
    /// Double frees detected.
    pub double_frees: u64,
    /// Frees of pointers outside the heap, interior or not allocated, and
    /// frees to destroyed caches.
    pub invalid_frees: u64,
    /// `cache_free` with the wrong cache.
    pub wrong_cache_frees: u64,
    /// Metadata corruptions detected (by operations or `validate`).
    pub corruptions: u64,
    /// Allocations refused because `Flags::DMA` was requested.
    pub dma_refusals: u64,
    /// Slab spans.
    pub slabs_total: usize,
    /// Bytes held by slab spans (headers included): what `shrink` can give
    /// back to the large-block pool when the slabs are empty.
    pub slab_bytes: usize,
    /// Empty slabs.
    pub slabs_empty: usize,
    /// Partial slabs.
    pub slabs_partial: usize,
    /// Full slabs.
    pub slabs_full: usize,
    /// Slab allocations.
    pub slab_allocs: u64,
    /// Slab allocations served by a previously freed object.
    pub object_reuses: u64,
    /// `100 * object_reuses / slab_allocs` (0 when no slab allocation).
    pub reuse_pct: u32,
    /// Physical blocks of the large-block allocator (free and used).
    pub blocks_total: usize,
    /// Free large blocks.
    pub blocks_free: usize,
    /// Live large allocations.
    pub large_allocs: usize,
    /// Objects held by per-CPU magazines and large blocks parked in
    /// per-CPU caches (free, ready for the fast path).
    pub magazine_objects: u64,
    /// Bytes of those objects and payload bytes of those blocks (counted
    /// in `free_bytes`).
    pub magazine_bytes: u64,
    /// Of `magazine_objects`, those parked in the magazine depot between
    /// the CPUs' magazines (`depot.rs`).
    pub depot_objects: u64,
    /// Allocations served by the per-CPU fast path.
    pub fast_allocs: u64,
    /// Frees taken by the per-CPU fast path.
    pub fast_frees: u64,
    /// Magazine refills from the depot or the slabs (each under the heap
    /// lock).
    pub magazine_refills: u64,
    /// Magazine drains to the depot or back to the slabs (each under the
    /// heap lock).
    pub magazine_drains: u64,
    /// Red zones found overwritten (debug `Z`; also in `corruptions`).
    pub redzone_errors: u64,
    /// Poison found overwritten, i.e. writes after free (debug `P`; also
    /// in `corruptions`).
    pub poison_errors: u64,
    /// Failed sanity checks of debug `F` (also in `corruptions`).
    pub sanity_errors: u64,
}

impl Heap {
    /// Computes the statistics (O(number of caches), no heap walk).
    pub fn stats(&self) -> Stats {
        let len = self.mem.len();
        let t = &self.tlsf;
        let s = &self.slabs;
        let used_blocks = t.block_count.saturating_sub(t.free_count);
        // Used large blocks, parked ones (per-CPU caches) included.
        let large_blocks = used_blocks.saturating_sub(s.spans);
        let parked = self.mags.large_cached as usize;
        let parked_bytes = self.mags.large_cached_bytes as usize;
        let parked_payload = parked_bytes.saturating_sub(parked.saturating_mul(HEADER_SIZE));
        let large_count = large_blocks.saturating_sub(parked);
        let block_area = len.saturating_sub(self.blocks_start);
        let large_bytes = block_area
            .saturating_sub(t.free_bytes)
            .saturating_sub(s.span_bytes)
            .saturating_sub(parked_bytes);
        let large_used = large_bytes.saturating_sub(large_count.saturating_mul(HEADER_SIZE));
        let (mag_objs, mag_bytes) = (0..NUM_CACHES).fold((0u64, 0usize), |(n, b), c| {
            let k = self.magazine_cached(c);
            (
                n.saturating_add(u64::from(k)),
                b.saturating_add((k as usize).saturating_mul(class_size(c))),
            )
        });
        // Magazine objects are taken from their slabs but free for users.
        let slab_live = s.used_bytes.saturating_sub(mag_bytes);
        let used = large_used.saturating_add(slab_live);
        let free = t
            .free_bytes
            .saturating_sub(t.free_count.saturating_mul(HEADER_SIZE))
            .saturating_add(s.cap_bytes.saturating_sub(slab_live))
            .saturating_add(parked_payload);
        let overhead = self
            .blocks_start
            .saturating_add(t.free_count.saturating_mul(HEADER_SIZE))
            .saturating_add(large_blocks.saturating_mul(HEADER_SIZE))
            .saturating_add(s.span_bytes.saturating_sub(s.cap_bytes));
        let largest_block = self.largest_free_block_size();
        let frag_bp = if t.free_bytes == 0 {
            0
        } else {
            let rest = t.free_bytes.saturating_sub(largest_block) as u64;
            (rest.saturating_mul(10_000) / t.free_bytes as u64) as u32
        };
        let mut st = Stats {
            heap_size: len,
            metadata_bytes: self.blocks_start,
            used_bytes: used,
            free_bytes: free,
            overhead_bytes: overhead,
            requested_bytes: self.ctr.requested_live,
            usable_bytes: used,
            requested_total: self.ctr.requested_total,
            usable_total: self.ctr.usable_total,
            largest_free_block: largest_block.saturating_sub(HEADER_SIZE),
            initial_largest_free_block: self.initial_largest,
            fragmentation_pct: frag_bp / 100,
            fragmentation_bp: frag_bp,
            total_allocs: self.ctr.total_allocs,
            total_frees: self.ctr.total_frees,
            active_allocs: self.ctr.total_allocs.saturating_sub(self.ctr.total_frees),
            failed_allocs: self.ctr.failed_allocs,
            double_frees: self.ctr.double_frees,
            invalid_frees: self.ctr.invalid_frees,
            wrong_cache_frees: self.ctr.wrong_cache_frees,
            corruptions: self.ctr.corruptions,
            dma_refusals: self.ctr.dma_refusals,
            slabs_total: s.spans,
            slab_bytes: s.span_bytes,
            slab_allocs: self.ctr.slab_allocs,
            object_reuses: self.ctr.reuses,
            reuse_pct: (self.ctr.reuses.saturating_mul(100))
                .checked_div(self.ctr.slab_allocs)
                .unwrap_or(0) as u32,
            blocks_total: t.block_count,
            blocks_free: t.free_count,
            large_allocs: large_count,
            magazine_objects: mag_objs.saturating_add(parked as u64),
            magazine_bytes: (mag_bytes as u64).saturating_add(parked_payload as u64),
            depot_objects: self.depot_total(),
            fast_allocs: self.mags.fast_allocs,
            fast_frees: self.mags.fast_frees,
            magazine_refills: self.mags.refills,
            magazine_drains: self.mags.drains,
            redzone_errors: self.ctr.redzone_errors,
            poison_errors: self.ctr.poison_errors,
            sanity_errors: self.ctr.sanity_errors,
            ..Stats::default()
        };
        for i in 0..TOTAL_CACHES {
            let c = self.cache(i);
            if c.active() {
                st.slabs_empty = st.slabs_empty.saturating_add(c.counts[0] as usize);
                st.slabs_partial = st.slabs_partial.saturating_add(c.counts[1] as usize);
                st.slabs_full = st.slabs_full.saturating_add(c.counts[2] as usize);
            }
        }
        st
    }
}
