// SPDX-License-Identifier: GPL-2.0

//! Full heap consistency check.
//!
//! [`Heap::validate`] walks every physical block, every TLSF free list,
//! every slab (descriptor, bitmap, object free list), every cache list and
//! the page map, and compares the totals with the statistics counters. All
//! walks are bounded, so damaged metadata ends the walk with a
//! [`Corruption`] instead of a crash or an endless loop.

use super::block::Block;
use super::config::{FL_COUNT, MIN_BLOCK, NUM_CACHES, PAGE_SIZE, SL_COUNT, TOTAL_CACHES};
use super::error::{Corruption, CorruptionKind};
use super::heap::Heap;
use super::large::mapping;
use super::magazine_heap::{held_hash, HeldSums};
use super::pagemap::GHOST;
use super::slab::{SlabState, BITMAP_OFF};

/// What a successful [`Heap::validate`] checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ValidationReport {
    /// Physical blocks walked.
    pub blocks_checked: usize,
    /// Free blocks among them.
    pub free_blocks: usize,
    /// Used blocks (large allocations and slab spans).
    pub used_blocks: usize,
    /// TLSF free-list links followed.
    pub free_list_links: usize,
    /// Slabs checked.
    pub slabs_checked: usize,
    /// Slab object slots checked against the bitmaps.
    pub objects_checked: usize,
    /// Slab object free-list links followed.
    pub slab_free_links: usize,
    /// Page-map entries checked.
    pub pages_checked: usize,
    /// Bytes covered by the block walk plus the metadata area (== heap size).
    pub bytes_accounted: usize,
    /// Magazine depot entries checked (`depot.rs`).
    pub depot_objects_checked: usize,
}

/// Per-cache tallies gathered during the block walk.
#[derive(Clone, Copy, Default)]
struct Tally {
    states: [u32; 3],
    /// Taken objects (live or held by a magazine).
    inuse: u32,
    /// Live objects (bitmap bits set).
    live: u32,
    cap: u32,
    /// The sum of `held_hash` over the taken objects that are not live.
    held_hash: u64,
}

/// Totals gathered during the block walk.
#[derive(Default)]
struct Walk {
    free_count: usize,
    free_bytes: usize,
    spans: usize,
    span_bytes: usize,
    cap_bytes: usize,
    slab_used: usize,
    large_count: usize,
    large_req: u64,
    /// Used large blocks parked in per-CPU caches.
    large_parked: u64,
    large_parked_bytes: u64,
}

fn err(kind: CorruptionKind, off: usize, detail: u64) -> Corruption {
    Corruption::new(kind, off, detail)
}

impl Heap {
    /// Checks the whole heap; on damage bumps the corruption counter.
    pub fn validate(&mut self) -> Result<ValidationReport, Corruption> {
        self.validate_with(&HeldSums::default())
    }

    /// [`Heap::validate`], told what the CPU caches hold (`cpus`, gathered
    /// with [`Heap::add_magazine_sums`] while they are paused). For every
    /// size class whose held objects are all accounted for, by the depot
    /// and `cpus` together, the held objects must be exactly the objects
    /// its slabs handed out but to no caller, each once (a copied entry
    /// holds one object twice with the counts still right). `validate`
    /// makes that check for the classes whose held objects are all in the
    /// depot.
    pub fn validate_with(&mut self, cpus: &HeldSums) -> Result<ValidationReport, Corruption> {
        self.validate_inner(cpus)
            .map_err(|c| self.note_corruption(c))
    }

    /// True when `validate` finds damage.
    pub fn check_corruption(&mut self) -> bool {
        self.validate().is_err()
    }

    /// The consistency check of `validate` for the one slab `span` (debug
    /// `F` runs it on every operation).
    pub(super) fn sanity_slab(&self, span: usize) -> Result<(), Corruption> {
        let b = self.block(span)?;
        let mut tally = [Tally::default(); TOTAL_CACHES];
        self.check_slab(
            &b,
            &mut ValidationReport::default(),
            &mut Walk::default(),
            &mut tally,
        )
    }

    fn validate_inner(&self, cpus: &HeldSums) -> Result<ValidationReport, Corruption> {
        let mut rep = ValidationReport::default();
        let mut w = Walk::default();
        let mut tally = [Tally::default(); TOTAL_CACHES];
        self.walk_blocks(&mut rep, &mut w, &mut tally)?;
        self.check_free_lists(&mut rep, &w)?;
        self.check_caches(&w, &tally)?;
        let mut held = *cpus;
        rep.depot_objects_checked = self.depot_check_into(&mut held)?;
        self.check_held(&tally, &held)?;
        self.check_pagemap(&mut rep)?;
        self.check_stats(&w, &tally)?;
        Ok(rep)
    }

    fn walk_blocks(
        &self,
        rep: &mut ValidationReport,
        w: &mut Walk,
        tally: &mut [Tally; TOTAL_CACHES],
    ) -> Result<(), Corruption> {
        let len = self.mem.len();
        let max_blocks = (len / MIN_BLOCK).saturating_add(1);
        let mut off = self.blocks_start;
        let mut prev_size = 0usize;
        let mut prev_free = false;
        while off < len {
            if rep.blocks_checked > max_blocks {
                return Err(err(CorruptionKind::BadSize, off, 0));
            }
            let b = self.block(off)?;
            if b.prev_size != prev_size {
                return Err(err(
                    CorruptionKind::BoundaryTagMismatch,
                    off,
                    b.prev_size as u64,
                ));
            }
            rep.blocks_checked += 1;
            if b.used {
                rep.used_blocks += 1;
                if b.slab {
                    self.check_slab(&b, rep, w, tally)?;
                    self.tally_held(&b, tally)?;
                } else if b.cached {
                    w.large_parked += 1;
                    w.large_parked_bytes = w.large_parked_bytes.wrapping_add(b.size as u64);
                } else {
                    w.large_count += 1;
                    w.large_req = w.large_req.wrapping_add(u64::from(b.req));
                }
            } else {
                if prev_free {
                    return Err(err(CorruptionKind::UncoalescedFree, off, 0));
                }
                rep.free_blocks += 1;
                w.free_count += 1;
                w.free_bytes = w.free_bytes.wrapping_add(b.size);
            }
            // Red zones and poison after the block's structure: a damaged
            // slab bitmap is reported as such, not as the red zones of an
            // object it wrongly marks live.
            self.debug_validate_block(&b)?;
            prev_free = !b.used;
            prev_size = b.size;
            off = b.end();
        }
        if off != len {
            return Err(err(CorruptionKind::BadSize, off, len as u64));
        }
        rep.bytes_accounted = off;
        if rep.blocks_checked != self.tlsf.block_count {
            return Err(err(
                CorruptionKind::StatsMismatch,
                0,
                rep.blocks_checked as u64,
            ));
        }
        Ok(())
    }

    fn check_slab(
        &self,
        b: &Block,
        rep: &mut ValidationReport,
        w: &mut Walk,
        tally: &mut [Tally; TOTAL_CACHES],
    ) -> Result<(), Corruption> {
        let span = b.off;
        let d = self.slab_desc(span)?;
        let ci = d.cache as usize;
        let c = self.cache(ci);
        let bad = |detail: u64| err(CorruptionKind::SlabCountMismatch, span, detail);
        if ci >= TOTAL_CACHES || !c.active() {
            return Err(err(CorruptionKind::CacheMismatch, span, ci as u64));
        }
        let cap = d.capacity as usize;
        let stride = d.stride as usize;
        let words = d.bitmap_words as usize;
        let area_end = (d.obj_start as usize).saturating_add(cap.saturating_mul(stride));
        if d.stride != c.stride
            || d.capacity != c.capacity
            || b.size < c.span_size as usize
            || b.size >= (c.span_size as usize).saturating_add(MIN_BLOCK)
            || words != cap.div_ceil(64)
            || (d.obj_start as usize) < span + BITMAP_OFF + words * 8
            || area_end > b.end()
        {
            return Err(bad(1));
        }
        if d.bump > d.capacity || d.inuse > d.bump {
            return Err(bad(2));
        }
        let mut pop = 0u32;
        for i in 0..words {
            let word: u64 = self.mem.read(span + BITMAP_OFF + i * 8).ok_or(bad(3))?;
            // Bits at or beyond `bump` must be clear.
            let lo = i * 64;
            let valid = (d.bump as usize).saturating_sub(lo).min(64);
            let mask = if valid >= 64 {
                !0u64
            } else {
                (1u64 << valid) - 1
            };
            if word & !mask != 0 {
                return Err(bad(4));
            }
            pop = pop.wrapping_add(word.count_ones());
        }
        rep.objects_checked += cap;
        // Taken objects without a live bit are magazine objects; their
        // number per class is checked in `check_caches`.
        if pop > d.inuse {
            return Err(bad(u64::from(pop)));
        }
        // Object free list: every handed-out free object exactly once.
        let want = d.bump.wrapping_sub(d.inuse) as usize;
        let mut n = 0usize;
        let mut cur = d.free_head as usize;
        while cur != 0 {
            if n >= want {
                return Err(err(CorruptionKind::SlabFreeList, cur, n as u64));
            }
            match Self::slab_obj_index(&d, cur) {
                Ok(idx) if !self.slab_bit(span, idx) => {}
                _ => return Err(err(CorruptionKind::SlabFreeList, cur, span as u64)),
            }
            n += 1;
            cur = self.mem.rd32(cur.wrapping_add(c.link_off())) as usize;
        }
        rep.slab_free_links += n;
        if n != want {
            return Err(err(CorruptionKind::SlabFreeList, span, n as u64));
        }
        if d.state != SlabState::of(d.inuse, d.capacity) as u32 {
            return Err(err(
                CorruptionKind::SlabListMismatch,
                span,
                u64::from(d.state),
            ));
        }
        // The page map must lead back to this span from every page it touches.
        let mut page = span / PAGE_SIZE;
        let last = b.end().saturating_sub(1) / PAGE_SIZE;
        while page <= last {
            let (first, start) = self.pagemap_entry(page);
            let ok = if page == span / PAGE_SIZE && !span.is_multiple_of(PAGE_SIZE) {
                start == span
            } else {
                first == span
            };
            if !ok {
                return Err(err(CorruptionKind::PageMapMismatch, span, page as u64));
            }
            page += 1;
        }
        rep.slabs_checked += 1;
        w.spans += 1;
        w.span_bytes = w.span_bytes.wrapping_add(b.size);
        w.cap_bytes = w.cap_bytes.wrapping_add(cap.wrapping_mul(stride));
        w.slab_used = w
            .slab_used
            .wrapping_add((d.inuse as usize).wrapping_mul(stride));
        if let Some(t) = tally.get_mut(ci) {
            let st = (d.state as usize).min(2);
            if let Some(s) = t.states.get_mut(st) {
                *s = s.wrapping_add(1);
            }
            t.inuse = t.inuse.wrapping_add(d.inuse);
            t.live = t.live.wrapping_add(pop);
            t.cap = t.cap.wrapping_add(d.capacity);
        }
        Ok(())
    }

    fn check_free_lists(&self, rep: &mut ValidationReport, w: &Walk) -> Result<(), Corruption> {
        let flb = self.mem.rd32(0);
        if flb.checked_shr(FL_COUNT as u32).unwrap_or(0) != 0 {
            return Err(err(CorruptionKind::BitmapMismatch, 0, u64::from(flb)));
        }
        let mut listed = 0usize;
        for fl in 0..FL_COUNT {
            let mut any = false;
            for sl in 0..SL_COUNT {
                let head = self.list_head(fl, sl);
                let (flbit, slbit) = self.list_bit(fl, sl);
                if slbit != (head != 0) {
                    return Err(err(
                        CorruptionKind::BitmapMismatch,
                        head,
                        (fl * SL_COUNT + sl) as u64,
                    ));
                }
                if slbit && !flbit {
                    return Err(err(CorruptionKind::BitmapMismatch, 0, fl as u64));
                }
                any |= slbit;
                let mut prev = 0usize;
                let mut cur = head;
                while cur != 0 {
                    // Bounds first, so that a wild link in the last listed
                    // block is reported as such, not as a loop. The offset
                    // is the block carrying the bad link (0: a list head in
                    // the TLSF index), the detail the link itself.
                    let b = self.block(cur).map_err(|c| {
                        if c.kind == CorruptionKind::BadMagic {
                            err(CorruptionKind::FreeListMismatch, cur, c.detail)
                        } else {
                            err(CorruptionKind::FreeListOutOfBounds, prev, cur as u64)
                        }
                    })?;
                    if listed >= w.free_count {
                        return Err(err(CorruptionKind::FreeListLoop, cur, listed as u64));
                    }
                    let (next, back) = self.links(cur);
                    if b.used || mapping(b.size) != Some((fl, sl)) || back != prev {
                        return Err(err(CorruptionKind::FreeListMismatch, cur, b.size as u64));
                    }
                    // A listed block must be a real physical block, not a stale header.
                    self.next_block(&b)?;
                    self.prev_block(&b)?;
                    listed += 1;
                    rep.free_list_links += 1;
                    prev = cur;
                    cur = next;
                }
            }
            let (flbit, _) = self.list_bit(fl, 0);
            if flbit != any {
                return Err(err(CorruptionKind::BitmapMismatch, 0, fl as u64));
            }
        }
        if listed != w.free_count {
            return Err(err(CorruptionKind::FreeListMismatch, 0, listed as u64));
        }
        Ok(())
    }

    fn check_caches(&self, w: &Walk, tally: &[Tally; TOTAL_CACHES]) -> Result<(), Corruption> {
        for (ci, t) in tally.iter().enumerate() {
            let c = self.cache(ci);
            if !c.active() {
                if c.heads != [0; 3] || t.cap != 0 {
                    return Err(err(CorruptionKind::CacheMismatch, ci, 0));
                }
                continue;
            }
            if !c.geometry_is_derived(ci) {
                return Err(err(
                    CorruptionKind::CacheMismatch,
                    ci,
                    u64::from(c.capacity),
                ));
            }
            for st in 0..3 {
                let mut n = 0u32;
                let mut prev = 0usize;
                let mut cur = c.heads.get(st).copied().unwrap_or(0) as usize;
                while cur != 0 {
                    if n as usize >= w.spans {
                        return Err(err(CorruptionKind::SlabListMismatch, cur, ci as u64));
                    }
                    let d = self.slab_desc(cur)?;
                    if d.state as usize != st || d.cache as usize != ci || d.prev as usize != prev {
                        return Err(err(CorruptionKind::SlabListMismatch, cur, ci as u64));
                    }
                    n += 1;
                    prev = cur;
                    cur = d.next as usize;
                }
                let counted = c.counts.get(st).copied().unwrap_or(0);
                let walked = t.states.get(st).copied().unwrap_or(0);
                if n != counted || n != walked {
                    return Err(err(CorruptionKind::SlabListMismatch, ci, u64::from(n)));
                }
            }
            if c.active_objs != t.inuse || c.total_objs != t.cap {
                return Err(err(
                    CorruptionKind::CacheMismatch,
                    ci,
                    u64::from(c.active_objs),
                ));
            }
            let cached = t.inuse.wrapping_sub(t.live);
            if cached != self.magazine_cached(ci) {
                return Err(err(CorruptionKind::MagazineEntry, ci, u64::from(cached)));
            }
        }
        Ok(())
    }

    /// Adds the [`held_hash`] of every object of slab `b` that is taken
    /// but not live (held by a magazine or the depot) to its class's
    /// tally. Every object below `bump` is live, on the free list or held;
    /// `check_slab` accepted the slab, so its bitmap and free list are
    /// sound.
    ///
    /// Only classes with held objects: custom caches have no magazines,
    /// and a class with none has nothing to compare. The cost is of the
    /// order of the free-list walk of `check_slab` (one hash per object
    /// that is not live, found word by word in the bitmap, and one per
    /// free-list link).
    fn tally_held(&self, b: &Block, tally: &mut [Tally; TOTAL_CACHES]) -> Result<(), Corruption> {
        let d = self.slab_desc(b.off)?;
        let ci = d.cache as usize;
        if ci >= NUM_CACHES || self.magazine_cached(ci) == 0 {
            return Ok(());
        }
        let Some(t) = tally.get_mut(ci) else {
            return Ok(());
        };
        let link = self.cache(ci).link_off();
        let mut sum = t.held_hash;
        let bump = d.bump as usize;
        for i in 0..bump.div_ceil(64) {
            let word: u64 = self.mem.read(b.off + BITMAP_OFF + i * 8).ok_or(err(
                CorruptionKind::SlabCountMismatch,
                b.off,
                3,
            ))?;
            let below = (bump - i * 64).min(64);
            let mask = if below == 64 {
                !0u64
            } else {
                (1u64 << below) - 1
            };
            let mut free = !word & mask;
            while free != 0 {
                let idx = i * 64 + free.trailing_zeros() as usize;
                free &= free - 1;
                let obj = (d.obj_start as usize).wrapping_add(idx.wrapping_mul(d.stride as usize));
                sum = sum.wrapping_add(held_hash(obj));
            }
        }
        // `check_slab` walked this list just now: it ends, within `bump`.
        let mut cur = d.free_head as usize;
        while cur != 0 {
            sum = sum.wrapping_sub(held_hash(cur));
            cur = self.mem.rd32(cur.wrapping_add(link)) as usize;
        }
        t.held_hash = sum;
        Ok(())
    }

    /// For every size class whose held objects `held` (depot and CPU
    /// caches) accounts for completely, the sum of their hashes must be
    /// that of the objects its slabs hold for magazines.
    fn check_held(&self, tally: &[Tally; TOTAL_CACHES], held: &HeldSums) -> Result<(), Corruption> {
        for class in 0..NUM_CACHES {
            let (Some(&n), Some(&h), Some(t)) = (
                held.count.get(class),
                held.hash.get(class),
                tally.get(class),
            ) else {
                continue;
            };
            if n == self.magazine_cached(class) as usize && h != t.held_hash {
                return Err(err(CorruptionKind::MagazineEntry, class, n as u64));
            }
        }
        Ok(())
    }

    fn check_pagemap(&self, rep: &mut ValidationReport) -> Result<(), Corruption> {
        for page in 0..self.npages {
            let (first, start) = self.pagemap_entry(page);
            let pstart = page * PAGE_SIZE;
            for (cand, is_start) in [(first, false), (start, true)] {
                if cand == 0 || cand & GHOST != 0 {
                    continue;
                }
                let b = self
                    .block(cand)
                    .map_err(|_| err(CorruptionKind::PageMapMismatch, cand, page as u64))?;
                let ok = b.used
                    && b.slab
                    && if is_start {
                        cand > pstart && cand < pstart + PAGE_SIZE
                    } else {
                        cand <= pstart && b.end() > pstart
                    };
                if !ok {
                    return Err(err(CorruptionKind::PageMapMismatch, cand, page as u64));
                }
            }
            rep.pages_checked += 1;
        }
        Ok(())
    }

    fn check_stats(&self, w: &Walk, tally: &[Tally; TOTAL_CACHES]) -> Result<(), Corruption> {
        let t = &self.tlsf;
        let s = &self.slabs;
        let mismatch = |what: u64| Err(err(CorruptionKind::StatsMismatch, 0, what));
        if t.free_count != w.free_count || t.free_bytes != w.free_bytes {
            return mismatch(1);
        }
        if s.spans != w.spans
            || s.span_bytes != w.span_bytes
            || s.cap_bytes != w.cap_bytes
            || s.used_bytes != w.slab_used
        {
            return mismatch(2);
        }
        let mut objs = 0u64;
        let mut req = w.large_req;
        for (ci, tl) in tally.iter().enumerate() {
            objs = objs.wrapping_add(u64::from(tl.live));
            let size = u64::from(self.cache(ci).object_size);
            req = req.wrapping_add(u64::from(tl.live).wrapping_mul(size));
        }
        let live = self.ctr.total_allocs.wrapping_sub(self.ctr.total_frees);
        if live != objs.wrapping_add(w.large_count as u64) {
            return mismatch(3);
        }
        if req != self.ctr.requested_live {
            return mismatch(4);
        }
        // Exact once every per-CPU cache is absorbed (see `large_cache`).
        if w.large_parked != self.mags.large_cached
            || w.large_parked_bytes != self.mags.large_cached_bytes
        {
            return mismatch(6);
        }
        let st = self.stats();
        if st
            .used_bytes
            .wrapping_add(st.free_bytes)
            .wrapping_add(st.overhead_bytes)
            != st.heap_size
        {
            return mismatch(5);
        }
        Ok(())
    }
}
