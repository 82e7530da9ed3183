// SPDX-License-Identifier: GPL-2.0

//! Debug checks (see `debug` for the layouts): red zones (`Z`) and poison
//! (`P`) of slab objects and large blocks, sanity checks (`F`), the hooks
//! that `slab`, `large` and `heap` call when a cache or the heap has debug
//! flags, and the debug part of `validate`.

use super::block::Block;
use super::config::HEADER_SIZE;
use super::debug::{
    large_payload, DebugFlags, SlotLayout, LINK_BYTES, POISON_END, POISON_FREE, RED_ACTIVE,
    RED_INACTIVE, TRACK_BYTES,
};
use super::error::{AllocError, Corruption, CorruptionKind, FreeError};
use super::heap::Heap;
use super::slab::SlabState;

impl Heap {
    fn count_sanity(&mut self, c: Corruption) -> Corruption {
        self.ctr.sanity_errors = self.ctr.sanity_errors.wrapping_add(1);
        c
    }

    /// First byte of `from..from + len` that is not `want`, as a report.
    /// Whole aligned words are compared where they fit; a word that does
    /// not fit or does not match falls to the byte step, which decides.
    fn find_bad(&self, from: usize, len: usize, want: u8) -> Option<(usize, u64)> {
        let end = from.saturating_add(len);
        let word = u64::from_ne_bytes([want; 8]);
        let mut at = from;
        while at < end {
            if at.is_multiple_of(8) && at + 8 <= end && self.mem.read::<u64>(at) == Some(word) {
                at += 8;
            } else if self.mem.read::<u8>(at) == Some(want) {
                at += 1;
            } else {
                return Some((at, self.found(at, end)));
            }
        }
        None
    }

    /// Packs up to 7 bytes at `at..end` with their count in the top byte.
    fn found(&self, at: usize, end: usize) -> u64 {
        let n = end.saturating_sub(at).min(7);
        let mut v = (n as u64) << 56;
        for i in 0..n {
            let b = self.mem.read::<u8>(at + i).unwrap_or(0);
            v |= u64::from(b) << (8 * i);
        }
        v
    }

    /// Checks the red zones of the slot of `obj` against `want`.
    fn check_redzones(&self, l: &SlotLayout, obj: usize, want: u8) -> Result<(), Corruption> {
        for (rel, len) in l.redzones() {
            let from = obj.wrapping_add_signed(rel);
            if let Some((at, found)) = self.find_bad(from, len, want) {
                return Err(Corruption::new(CorruptionKind::RedZone, at, found));
            }
        }
        Ok(())
    }

    fn fill_redzones(&mut self, l: &SlotLayout, obj: usize, byte: u8) {
        for (rel, len) in l.redzones() {
            self.mem.fill(obj.wrapping_add_signed(rel), len, byte);
        }
    }

    /// Checks the poison of the free slab object `obj`.
    fn check_poison(&self, l: &SlotLayout, obj: usize) -> Result<(), Corruption> {
        let body = l.size.saturating_sub(1);
        let bad = |(at, found)| Corruption::new(CorruptionKind::Poison, at, found);
        if let Some(r) = self.find_bad(obj, body, POISON_FREE) {
            return Err(bad(r));
        }
        match self.find_bad(obj + body, 1, POISON_END) {
            Some(r) => Err(bad(r)),
            None => Ok(()),
        }
    }

    fn poison(&mut self, l: &SlotLayout, obj: usize) {
        self.mem.fill(obj, l.size, POISON_FREE);
        self.mem
            .fill(obj.wrapping_add(l.size.saturating_sub(1)), 1, POISON_END);
    }

    /// Puts the free state (inactive red zones, poison) into the slots of a
    /// new slab of cache `c`.
    #[cold]
    #[inline(never)]
    pub(super) fn debug_slab_init(&mut self, ci: usize, obj_start: usize, cap: usize) {
        let c = *self.cache(ci);
        let d = c.debug();
        let l = c.layout();
        for i in 0..cap {
            let obj = obj_start.wrapping_add(i.wrapping_mul(l.stride));
            if d.contains(DebugFlags::REDZONE) {
                self.fill_redzones(&l, obj, RED_INACTIVE);
            }
            if d.contains(DebugFlags::POISON) {
                self.poison(&l, obj);
            }
        }
    }

    /// `slab_alloc` for a cache with debug flags: finds the object the
    /// plain path will hand out, checks it (sanity, red zones, poison; on
    /// damage its free state is restored, it stays free and the damage is
    /// returned), lets the plain path take it, then switches it to the live
    /// state (active red zones, owner record).
    #[cold]
    #[inline(never)]
    pub(super) fn debug_slab_alloc(&mut self, ci: usize) -> Result<(usize, bool), AllocError> {
        let (span, obj) = self.slab_peek(ci)?;
        let c = *self.cache(ci);
        let d = c.debug();
        if d.contains(DebugFlags::SANITY) {
            self.sanity_slab(span).map_err(|e| self.count_sanity(e))?;
        }
        let l = c.layout();
        let mut r = Ok(());
        if d.contains(DebugFlags::REDZONE) {
            r = self.check_redzones(&l, obj, RED_INACTIVE);
        }
        if r.is_ok() && d.contains(DebugFlags::POISON) {
            r = self.check_poison(&l, obj);
        }
        if let Err(e) = r {
            if d.contains(DebugFlags::REDZONE) {
                self.fill_redzones(&l, obj, RED_INACTIVE);
            }
            if d.contains(DebugFlags::POISON) {
                self.poison(&l, obj);
            }
            return Err(e.into());
        }
        let (got, reused) = self.slab_alloc_in::<false>(ci)?;
        if got != obj {
            // The plain path must take what it was seen to take.
            return Err(Corruption::new(CorruptionKind::SlabFreeList, got, obj as u64).into());
        }
        if d.contains(DebugFlags::REDZONE) {
            self.fill_redzones(&l, obj, RED_ACTIVE);
        }
        if d.contains(DebugFlags::TRACK) {
            let t = obj.wrapping_add(l.link + LINK_BYTES);
            self.write_track(t);
        }
        Ok((obj, reused))
    }

    /// The slab and object `slab_alloc` will take next from cache `ci`
    /// (creating a slab if it has none with room), without taking it.
    fn slab_peek(&mut self, ci: usize) -> Result<(usize, usize), AllocError> {
        let c = self.cache(ci);
        let mut span = c.heads[SlabState::Partial as usize] as usize;
        if span == 0 {
            span = c.heads[SlabState::Empty as usize] as usize;
        }
        if span == 0 {
            span = self.slab_new(ci)?;
        }
        let d = self.slab_desc(span)?;
        if d.free_head != 0 {
            let obj = d.free_head as usize;
            self.check_free_obj(span, &d, obj)?;
            return Ok((span, obj));
        }
        if d.bump < d.capacity {
            let obj = (d.obj_start as usize)
                .wrapping_add((d.bump as usize).wrapping_mul(d.stride as usize));
            return Ok((span, obj));
        }
        Err(Corruption::new(CorruptionKind::SlabCountMismatch, span, u64::from(d.inuse)).into())
    }

    /// Checks of a live debug object `obj` of `span` before it is freed,
    /// and its switch to the free state. On damage nothing changes.
    #[cold]
    #[inline(never)]
    pub(super) fn debug_slab_release(
        &mut self,
        ci: usize,
        span: usize,
        obj: usize,
    ) -> Result<(), Corruption> {
        let c = *self.cache(ci);
        let d = c.debug();
        if d.contains(DebugFlags::SANITY) {
            self.sanity_slab(span).map_err(|e| self.count_sanity(e))?;
        }
        let l = c.layout();
        if d.contains(DebugFlags::REDZONE) {
            self.check_redzones(&l, obj, RED_ACTIVE)?;
            self.fill_redzones(&l, obj, RED_INACTIVE);
        }
        if d.contains(DebugFlags::POISON) {
            self.poison(&l, obj);
        }
        Ok(())
    }

    /// Usable size of the large block `b` (its request with a debug layout).
    pub(super) fn large_usable(&self, b: &Block) -> usize {
        if self.dbg.flags.changes_layout() && self.dbg.flags != DebugFlags::POISON {
            b.req as usize
        } else {
            b.payload_size()
        }
    }

    /// The red zone `(from, len)` of the large block `b` (empty without `Z`).
    fn large_redzone(&self, b: &Block) -> (usize, usize) {
        if !self.dbg.flags.contains(DebugFlags::REDZONE) {
            return (0, 0);
        }
        let track = if self.dbg.flags.contains(DebugFlags::TRACK) {
            TRACK_BYTES
        } else {
            0
        };
        let from = b.payload().wrapping_add(b.req as usize);
        (from, b.end().saturating_sub(track).saturating_sub(from))
    }

    /// Checks the poison of `from..end` in free large-block memory: stale
    /// headers of absorbed free blocks (and their links) are skipped.
    fn check_large_poison(&self, from: usize, end: usize) -> Result<(), Corruption> {
        let mut at = from;
        // Each pass moves `at` up by at least 9 bytes; `find_bad` of an
        // empty range (`at` at or past `end`) finds nothing.
        loop {
            let Some((bad, found)) = self.find_bad(at, end.saturating_sub(at), POISON_FREE) else {
                return Ok(());
            };
            // The first bad byte of a stale header lies in its 16 bytes
            // (the header is not poison); the header and its links are
            // skipped together.
            let h = bad & !15;
            let stale = h >= from.saturating_sub(8) && self.block(h).is_ok_and(|s| !s.used);
            if !stale {
                return Err(Corruption::new(CorruptionKind::Poison, bad, found));
            }
            at = h + HEADER_SIZE + LINK_BYTES;
        }
    }

    /// Poisons the payload of the large block `b` right before it is freed
    /// (a large allocation, or a slab span given back) with `P` on. If that
    /// free then fails on damaged metadata the contents are lost.
    #[cold]
    #[inline(never)]
    pub(super) fn poison_large(&mut self, b: &Block) {
        self.mem.fill(b.payload(), b.payload_size(), POISON_FREE);
    }

    /// Called by `split_tail` with `P` on, before `insert_free` writes the
    /// links of the new free remainder `b` (the only new free block whose
    /// payload start was not just poisoned or already held links): a stale header at the payload start would be
    /// half overwritten by them (and no longer recognisable), so it is
    /// poisoned whole, with its links; that in turn may cut a stale header
    /// 16 bytes further, and so on: the whole chain is poisoned.
    #[cold]
    #[inline(never)]
    pub(super) fn poison_stale_at_links(&mut self, b: &Block) {
        let from = b.payload();
        let mut end = from.wrapping_add(LINK_BYTES);
        let mut at = from;
        while at < end && at < b.end() {
            if self.block(at).is_ok_and(|s| !s.used) {
                end = end.max(at.wrapping_add(HEADER_SIZE + LINK_BYTES));
            }
            at = at.wrapping_add(HEADER_SIZE);
        }
        let end = end.min(b.end());
        self.mem.fill(from, end.saturating_sub(from), POISON_FREE);
    }

    /// Debug checks and setup of a freshly allocated large block `b`
    /// holding `size` requested bytes. On poison damage the block goes back
    /// to the free pool (poisoned again) and the damage is returned.
    /// The large-block allocation of `alloc` with heap-wide debug flags:
    /// room for the red zone and owner record, checks and setup. Returns
    /// the block and its usable size.
    #[cold]
    #[inline(never)]
    pub(super) fn debug_large_alloc(
        &mut self,
        size: usize,
        align: usize,
        req: u32,
    ) -> Result<(Block, usize), AllocError> {
        let payload = large_payload(self.dbg.flags, size).ok_or(AllocError::SizeOverflow)?;
        let b = self.large_alloc(payload, align, req, false)?;
        self.debug_large_take(&b)?;
        Ok((b, self.large_usable(&b)))
    }

    #[cold]
    #[inline(never)]
    pub(super) fn debug_large_take(&mut self, b: &Block) -> Result<(), AllocError> {
        let f = self.dbg.flags;
        if f.contains(DebugFlags::SANITY) {
            if let Err(e) = self.sanity_large(b) {
                return Err(self.count_sanity(e).into());
            }
        }
        if f.contains(DebugFlags::POISON) {
            let from = b.payload().wrapping_add(LINK_BYTES);
            if let Err(e) = self.check_large_poison(from, b.end()) {
                self.poison_large(b);
                self.large_free(*b)?;
                return Err(e.into());
            }
        }
        let (rz, len) = self.large_redzone(b);
        self.mem.fill(rz, len, RED_ACTIVE);
        if f.contains(DebugFlags::TRACK) {
            let t = b.end().wrapping_sub(TRACK_BYTES);
            self.write_track(t);
        }
        Ok(())
    }

    /// Debug checks of the live large block at `off` before it is freed.
    #[cold]
    #[inline(never)]
    pub(super) fn debug_large_release(&mut self, off: usize) -> Result<(), FreeError> {
        // Re-read here, so the hot caller need not keep the block in memory.
        let b = &self.block(off)?;
        if self.dbg.flags.contains(DebugFlags::SANITY) {
            if let Err(e) = self.sanity_large(b) {
                return Err(self.count_sanity(e).into());
            }
        }
        let (rz, len) = self.large_redzone(b);
        if let Some((at, found)) = self.find_bad(rz, len, RED_ACTIVE) {
            return Err(Corruption::new(CorruptionKind::RedZone, at, found).into());
        }
        if self.dbg.flags.contains(DebugFlags::POISON) {
            // Before `large_free` writes the links of the merged block.
            self.poison_large(b);
        }
        Ok(())
    }

    /// `F` for a large block: both physical neighbours and their boundary tags.
    fn sanity_large(&self, b: &Block) -> Result<(), Corruption> {
        self.next_block(b)?;
        self.prev_block(b)?;
        Ok(())
    }

    /// Debug part of `validate` for block `b`: red zones of live objects and
    /// blocks, poison and red zones of free objects and free blocks.
    pub(super) fn debug_validate_block(&self, b: &Block) -> Result<(), Corruption> {
        if b.slab {
            let d = self.slab_desc(b.off)?;
            let c = self.cache(d.cache as usize);
            let f = c.debug();
            if !f.contains(DebugFlags::REDZONE) && !f.contains(DebugFlags::POISON) {
                return Ok(());
            }
            let l = c.layout();
            for i in 0..d.capacity as usize {
                let obj = (d.obj_start as usize).wrapping_add(i.wrapping_mul(l.stride));
                // Bits at and past the bump index are clear (a new slab's
                // bitmap is zeroed; `validate` checks that before this).
                let live = self.slab_bit(b.off, i);
                if f.contains(DebugFlags::REDZONE) {
                    let want = if live { RED_ACTIVE } else { RED_INACTIVE };
                    self.check_redzones(&l, obj, want)?;
                }
                if !live && f.contains(DebugFlags::POISON) {
                    self.check_poison(&l, obj)?;
                }
            }
            return Ok(());
        }
        if b.used {
            let (rz, len) = self.large_redzone(b);
            if let Some((at, found)) = self.find_bad(rz, len, RED_ACTIVE) {
                return Err(Corruption::new(CorruptionKind::RedZone, at, found));
            }
        } else if self.dbg.flags.contains(DebugFlags::POISON) {
            self.check_large_poison(b.payload().wrapping_add(LINK_BYTES), b.end())?;
        }
        Ok(())
    }

    /// The object (region offset of its start) whose slot or block contains
    /// region offset `off`, live or free: to name the allocation behind a
    /// red-zone or poison report.
    pub fn object_at(&self, off: usize) -> Option<usize> {
        if let Ok(Some(span)) = self.pagemap_lookup(off) {
            let d = self.slab_desc(span.off).ok()?;
            let c = self.cache(d.cache as usize);
            let first = (d.obj_start as usize).checked_sub(c.lead())?;
            let idx = off.checked_sub(first)? / (d.stride as usize).max(1);
            return (idx < d.capacity as usize)
                .then(|| (d.obj_start as usize).wrapping_add(idx * d.stride as usize));
        }
        // Each step moves at least `MIN_BLOCK` bytes up (`block` checks
        // it), and `next_block` ends at the region's end.
        let mut b = self.block(self.blocks_start).ok()?;
        while b.end() <= off {
            b = self.next_block(&b).ok()??;
        }
        (off >= b.payload()).then(|| b.payload())
    }

    /// Bounds `(from, to)` of the slot or block of the live allocation at
    /// region offset `off` (for `scribble`).
    pub(super) fn slot_bounds(&self, off: usize) -> Option<(usize, usize)> {
        match self.pagemap_lookup(off).ok()? {
            Some(span) => {
                let d = self.slab_desc(span.off).ok()?;
                let c = self.cache(d.cache as usize);
                let from = off.checked_sub(c.lead())?;
                Some((from, from.wrapping_add(d.stride as usize)))
            }
            None => {
                let b = self.block(off.checked_sub(HEADER_SIZE)?).ok()?;
                Some((b.payload(), b.end()))
            }
        }
    }
}
