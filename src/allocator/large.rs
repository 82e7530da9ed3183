// SPDX-License-Identifier: GPL-2.0

//! TLSF (two-level segregated fit) large-block allocator.
//!
//! Free blocks are kept in `FL_COUNT x SL_COUNT` segregated lists. The first
//! level is the power of two of the size (all sizes below 512 bytes share
//! first-level class 0, split linearly in steps of 16), the second level
//! divides each power-of-two range into 32 equal parts. A first-level bitmap
//! and one second-level bitmap per first-level class say which lists are
//! non-empty, so finding a list is a few `trailing_zeros` and alloc/free are
//! O(1) regardless of the number of free blocks.
//!
//! Placement, "own class first, then good fit": the head of the request's
//! own (unrounded) list is taken if it is large enough; otherwise the
//! request is rounded up to the next second-level class, so any block in
//! the first non-empty list found is large enough and only its head is
//! taken. Both steps look at one list head, so alloc stays O(1). Trying the
//! own list first reuses a freed block of about the same size instead of
//! splitting a larger one; plain TLSF, which tries the own list only as a
//! last resort, leaves more holes: on the mixed trace of `kalloc-replay`
//! the heap needed per peak live byte drops from 1.234 to 1.094 with this
//! order (Documentation/performance-log.md, trace replay). When neither
//! step finds a block, the own list is walked for the first block that
//! holds the request (only on the way to out of memory; bounded by the
//! free count), so the largest free block can always be allocated exactly,
//! even when a smaller block of its class heads the list. Blocks are
//! split when the remainder can hold a minimum block (32 bytes), the
//! allocation keeping the low end, and coalesced immediately with both
//! physical neighbours through the boundary tags.
//!
//! Realloc of a large block (see `Heap::realloc`) grows in place into a
//! free successor when it can; else it moves down into a free predecessor
//! (with the successor, if free) when the three together are large enough,
//! the payload moved with `memmove` ([`Heap::large_resize_backward_begin`]); else
//! it allocates a new block with [`Placement::LowAddress`]: of the heads
//! of the first [`LOW_ADDRESS_LISTS`] non-empty lists from the rounded-up
//! class on, the one at the lowest address (head offsets compared, so at
//! most 16 bitmap searches and 16 word reads, beside a copy of the whole
//! payload). Growing buffers are what leaves the largest holes; moving
//! them down keeps the top of the heap free. On the realloc trace and five
//! more seeds of its generator the highest block byte per peak live byte
//! went from 1.400 on average to 1.310 (mixed trace family: 1.237 to
//! 1.094); fresh allocations keep the good fit, which is better for them
//! (with `LowAddress` for all of them the mixed family rises to 1.13).
//!
//! Alignment above 16 is done by over-allocating `size + align + 32` and
//! splitting the leading gap off into its own free block (the gap is at
//! least 32 bytes; the block before a free block is always used, so the gap
//! never needs merging). Every link followed is bounds-checked and its
//! header verified; damage is returned as [`Corruption`]. A header is
//! verified once per operation: rewriting the boundary tag of a block the
//! operation has read already ([`Heap::set_prev_size_of`]) does not read
//! it again, and an allocation leaves the tag after its block as it found
//! it unless it splits (the successor is checked when it is next touched).

use core::sync::atomic::Ordering::Relaxed;

use super::block::Block;
use super::config::{BLOCK_ALIGN, FL_COUNT, FL_SHIFT, HEADER_SIZE, MIN_BLOCK, SL_COUNT, SL_LOG};
use super::debug::DebugFlags;
use super::error::{AllocError, Corruption, CorruptionKind};
use super::heap::Heap;

/// Offset of the first-level bitmap in the metadata area.
const FL_BITMAP_OFF: usize = 0;
/// Offset of the second-level bitmaps.
const SL_BITMAP_OFF: usize = 4;
/// Offset of the list heads.
const HEADS_OFF: usize = 128;
/// Bytes of the TLSF index in the metadata area.
pub(super) const TLSF_INDEX_BYTES: usize = HEADS_OFF + FL_COUNT * SL_COUNT * 4;

/// A free list: its first- and second-level index `(fl, sl)`.
type FreeList = (usize, usize);

/// How many non-empty lists [`Placement::LowAddress`] compares (the
/// bound that keeps it O(1)).
pub(super) const LOW_ADDRESS_LISTS: usize = 16;

/// Where the good-fit step of [`Heap::take_block`] looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Placement {
    /// The head of the first non-empty list of the rounded-up class.
    GoodFit,
    /// The head at the lowest address among the first
    /// [`LOW_ADDRESS_LISTS`] non-empty lists from the rounded-up class on
    /// (used for the new block of a moving realloc; see the module doc).
    LowAddress,
}

/// Rounds `x` up to a multiple of 16, `None` on overflow.
pub(super) fn round16(x: usize) -> Option<usize> {
    Some(x.checked_add(BLOCK_ALIGN - 1)? & !(BLOCK_ALIGN - 1))
}

/// List indices `(fl, sl)` of a free block of `size` bytes. Public for the
/// tests that place a block on a list by hand.
pub fn mapping(size: usize) -> Option<(usize, usize)> {
    if size < (1usize << FL_SHIFT) {
        return Some((0, size / BLOCK_ALIGN));
    }
    let msb = usize::BITS - 1 - size.leading_zeros();
    let fl = (msb - FL_SHIFT + 1) as usize;
    let sl = (size >> (msb - SL_LOG)) & (SL_COUNT - 1);
    if fl >= FL_COUNT {
        return None;
    }
    Some((fl, sl))
}

/// Block size rounded up so that every block of its list fits it.
fn round_to_class(size: usize) -> Option<usize> {
    if size < (1usize << FL_SHIFT) {
        return Some(size);
    }
    let msb = usize::BITS - 1 - size.leading_zeros();
    let step = (1usize << (msb - SL_LOG)) - 1;
    Some(size.checked_add(step)? & !step)
}

/// The list index after `(fl, sl)`, `None` after the last list.
fn next_list(fl: usize, sl: usize) -> Option<(usize, usize)> {
    if sl + 1 < SL_COUNT {
        Some((fl, sl + 1))
    } else if fl + 1 < FL_COUNT {
        Some((fl + 1, 0))
    } else {
        None
    }
}

impl Heap {
    fn fl_bitmap(&self) -> u32 {
        self.mem.rd32(FL_BITMAP_OFF)
    }

    fn sl_bitmap(&self, fl: usize) -> u32 {
        self.mem.rd32(SL_BITMAP_OFF + fl * 4)
    }

    /// Head of free list `(fl, sl)`.
    pub(super) fn list_head(&self, fl: usize, sl: usize) -> usize {
        self.mem.rd32(HEADS_OFF + (fl * SL_COUNT + sl) * 4) as usize
    }

    fn set_list_head(&mut self, fl: usize, sl: usize, off: usize) {
        self.mem
            .wr32(HEADS_OFF + (fl * SL_COUNT + sl) * 4, off as u32);
    }

    /// Whether bit `(fl, sl)` is set in the bitmaps (both levels).
    pub(super) fn list_bit(&self, fl: usize, sl: usize) -> (bool, bool) {
        let slb = self.sl_bitmap(fl) & (1u32 << sl) != 0;
        let flb = self.fl_bitmap() & (1u32 << fl) != 0;
        (flb, slb)
    }

    /// Free-list links `(next, prev)` of a free block.
    pub(super) fn links(&self, off: usize) -> (usize, usize) {
        self.mem
            .pair32(off.wrapping_add(HEADER_SIZE))
            .map_or((0, 0), |(n, p)| {
                (n.load(Relaxed) as usize, p.load(Relaxed) as usize)
            })
    }

    fn set_links(&mut self, off: usize, next: usize, prev: usize) {
        if let Some((n, p)) = self.mem.pair32(off.wrapping_add(HEADER_SIZE)) {
            n.store(next as u32, Relaxed);
            p.store(prev as u32, Relaxed);
        }
    }

    /// Checks that `off` is a free block usable as a list neighbour.
    fn free_neighbour(&self, off: usize) -> Result<Block, Corruption> {
        let b = self.block(off).map_err(|c| {
            if c.kind == CorruptionKind::BadMagic {
                Corruption::new(CorruptionKind::FreeListMismatch, off, c.detail)
            } else {
                c
            }
        })?;
        if b.used {
            return Err(Corruption::new(CorruptionKind::FreeListMismatch, off, 1));
        }
        Ok(b)
    }

    /// Marks `b` free and pushes it on its list. Its neighbours must not be free.
    pub(super) fn insert_free(&mut self, mut b: Block) -> Result<(), Corruption> {
        let Some((fl, sl)) = mapping(b.size) else {
            return Err(Corruption::new(
                CorruptionKind::BadSize,
                b.off,
                b.size as u64,
            ));
        };
        let head = self.list_head(fl, sl);
        if head != 0 {
            self.free_neighbour(head)?;
        }
        b.used = false;
        b.slab = false;
        b.req = 0;
        b.cached = false;
        self.set_block(&b);
        self.set_links(b.off, head, 0);
        if head != 0 {
            let (hn, _) = self.links(head);
            self.set_links(head, hn, b.off);
        }
        self.set_list_head(fl, sl, b.off);
        let slb = self.sl_bitmap(fl) | (1u32 << sl);
        self.mem.wr32(SL_BITMAP_OFF + fl * 4, slb);
        let flb = self.fl_bitmap() | (1u32 << fl);
        self.mem.wr32(FL_BITMAP_OFF, flb);
        self.tlsf.free_count = self.tlsf.free_count.wrapping_add(1);
        self.tlsf.free_bytes = self.tlsf.free_bytes.wrapping_add(b.size);
        Ok(())
    }

    /// Checks that the free block `b` can be unlinked (its links are sane);
    /// returns its list index.
    fn check_unlink(&self, b: &Block) -> Result<(usize, usize), Corruption> {
        let Some((fl, sl)) = mapping(b.size) else {
            return Err(Corruption::new(
                CorruptionKind::BadSize,
                b.off,
                b.size as u64,
            ));
        };
        let (next, prev) = self.links(b.off);
        if next != 0 {
            let n = self.free_neighbour(next)?;
            if self.links(n.off).1 != b.off {
                return Err(Corruption::new(CorruptionKind::FreeListMismatch, next, 2));
            }
        }
        if prev != 0 {
            let p = self.free_neighbour(prev)?;
            if self.links(p.off).0 != b.off {
                return Err(Corruption::new(CorruptionKind::FreeListMismatch, prev, 3));
            }
        } else if self.list_head(fl, sl) != b.off {
            return Err(Corruption::new(CorruptionKind::FreeListMismatch, b.off, 4));
        }
        Ok((fl, sl))
    }

    /// Unlinks the free block `b` from its list.
    pub(super) fn remove_free(&mut self, b: &Block) -> Result<(), Corruption> {
        let list = self.check_unlink(b)?;
        self.unlink_checked(b, list);
        Ok(())
    }

    /// [`Heap::check_unlink`] of `b` if it is a free block, for a merge:
    /// the block with its list, or `None` when `b` is used or absent.
    fn check_mergeable(&self, b: Option<Block>) -> Result<Option<(Block, FreeList)>, Corruption> {
        b.filter(|b| !b.used)
            .map(|b| self.check_unlink(&b).map(|list| (b, list)))
            .transpose()
    }

    /// Unlinks the free block `b` from its list `(fl, sl)`, which
    /// [`Heap::check_unlink`] returned for it. Callers that check several
    /// blocks before changing anything (a merge with both neighbours) use
    /// it so that no block is checked twice: their own unlinks in between
    /// keep the lists consistent, and the links are read again here.
    fn unlink_checked(&mut self, b: &Block, (fl, sl): FreeList) {
        let (next, prev) = self.links(b.off);
        if next != 0 {
            let nn = self.links(next).0;
            self.set_links(next, nn, prev);
        }
        if prev != 0 {
            let pp = self.links(prev).1;
            self.set_links(prev, next, pp);
        } else {
            self.set_list_head(fl, sl, next);
            if next == 0 {
                let slb = self.sl_bitmap(fl) & !(1u32 << sl);
                self.mem.wr32(SL_BITMAP_OFF + fl * 4, slb);
                if slb == 0 {
                    let flb = self.fl_bitmap() & !(1u32 << fl);
                    self.mem.wr32(FL_BITMAP_OFF, flb);
                }
            }
        }
        self.set_links(b.off, 0, 0);
        self.tlsf.free_count = self.tlsf.free_count.wrapping_sub(1);
        self.tlsf.free_bytes = self.tlsf.free_bytes.wrapping_sub(b.size);
    }

    /// First non-empty list at or above `(fl, sl)` (`fl` below
    /// `FL_COUNT`). A first-level bit past the index, or one whose
    /// second-level bitmap is empty, is damage: `BitmapMismatch` with the
    /// index of that level's first list as the detail.
    fn find_list(&self, fl: usize, sl: usize) -> Result<Option<FreeList>, Corruption> {
        let sl_map = self.sl_bitmap(fl) & (!0u32).checked_shl(sl as u32).unwrap_or(0);
        if sl_map != 0 {
            return Ok(Some((fl, sl_map.trailing_zeros() as usize)));
        }
        let fl_map = self.fl_bitmap() & (!0u32).checked_shl(fl as u32 + 1).unwrap_or(0);
        if fl_map == 0 {
            return Ok(None);
        }
        let fl = fl_map.trailing_zeros() as usize;
        let sl_map = if fl < FL_COUNT { self.sl_bitmap(fl) } else { 0 };
        if sl_map == 0 {
            return Err(Corruption::new(
                CorruptionKind::BitmapMismatch,
                0,
                (fl * SL_COUNT) as u64,
            ));
        }
        Ok(Some((fl, sl_map.trailing_zeros() as usize)))
    }

    /// Of the first `max` non-empty lists at or after `first` (itself
    /// non-empty), the one whose head has the lowest address. Compares the
    /// head offsets only; the caller checks the head it takes.
    fn lowest_head_list(&self, first: FreeList, max: usize) -> Result<FreeList, Corruption> {
        let mut best = first;
        let mut best_off = self.list_head(first.0, first.1);
        let mut cur = first;
        for _ in 1..max {
            let Some((fl, sl)) = next_list(cur.0, cur.1) else {
                break;
            };
            let Some((fl, sl)) = self.find_list(fl, sl)? else {
                break;
            };
            let head = self.list_head(fl, sl);
            if head < best_off {
                best = (fl, sl);
                best_off = head;
            }
            cur = (fl, sl);
        }
        Ok(best)
    }

    /// Finds and unlinks a free block of at least `need` bytes: the head of
    /// `need`'s own list if it is large enough, else a head of a list of
    /// the rounded-up class or above, chosen by `placement` (see the module
    /// doc).
    fn take_block(
        &mut self,
        need: usize,
        placement: Placement,
    ) -> Result<Option<Block>, Corruption> {
        // First choice: the head of the request's own list, if big enough
        // (`remove_free` checks that its size belongs to that list).
        if let Some((fl, sl)) = mapping(need) {
            let head = self.list_head(fl, sl);
            if head != 0 {
                let b = self.free_neighbour(head)?;
                if b.size >= need {
                    self.remove_free(&b)?;
                    return Ok(Some(b));
                }
            }
        }
        let Some((fl, sl)) = round_to_class(need).and_then(mapping) else {
            return self.take_from_own_list(need);
        };
        let Some((fl, sl)) = self.find_list(fl, sl)? else {
            return self.take_from_own_list(need);
        };
        let (fl, sl) = match placement {
            Placement::LowAddress => self.lowest_head_list((fl, sl), LOW_ADDRESS_LISTS)?,
            Placement::GoodFit => (fl, sl),
        };
        let head = self.list_head(fl, sl);
        if head == 0 {
            return Err(Corruption::new(
                CorruptionKind::BitmapMismatch,
                0,
                (fl * SL_COUNT + sl) as u64,
            ));
        }
        let b = self.free_neighbour(head)?;
        if b.size < need || mapping(b.size) != Some((fl, sl)) {
            return Err(Corruption::new(
                CorruptionKind::FreeListMismatch,
                head,
                b.size as u64,
            ));
        }
        self.remove_free(&b)?;
        Ok(Some(b))
    }

    /// The last resort of [`Self::take_block`], when no list of the
    /// rounded-up class or above has a block: the first block of `need`'s
    /// own list that holds `need` (its head did not). A walk of one list,
    /// bounded by the free count like `largest_free_block_size`, and only
    /// on the way to out of memory; it makes the reported largest free
    /// block always allocatable.
    fn take_from_own_list(&mut self, need: usize) -> Result<Option<Block>, Corruption> {
        let Some((fl, sl)) = mapping(need) else {
            return Ok(None);
        };
        let mut cur = self.list_head(fl, sl);
        let mut steps = 0;
        while cur != 0 && steps <= self.tlsf.free_count {
            let b = self.free_neighbour(cur)?;
            if b.size >= need {
                self.remove_free(&b)?;
                return Ok(Some(b));
            }
            cur = self.links(cur).0;
            steps += 1;
        }
        Ok(None)
    }

    /// Splits `b` (not on any list) after `size` bytes when the remainder can
    /// hold a minimum block; the remainder becomes a free block (merged with
    /// a free successor). Returns the possibly shrunk `b` (header not
    /// written). The boundary tag after the returned block is right if the
    /// one after `b` was: it is the remainder's own (written here) or
    /// unchanged, so callers need not rewrite it.
    fn split_tail(&mut self, mut b: Block, size: usize) -> Result<Block, Corruption> {
        let rest = b.size.saturating_sub(size);
        if rest < MIN_BLOCK {
            return Ok(b);
        }
        let next = self.next_block(&b)?;
        let merge = self.check_mergeable(next)?;
        // The block after a merged successor gets its boundary tag below:
        // read (and checked) before anything changes.
        let after_merge = match &merge {
            Some((n, _)) => self.next_block(n)?,
            None => None,
        };
        b.size = size;
        let mut r = Block::free(b.off.wrapping_add(size), rest, size);
        self.tlsf.block_count = self.tlsf.block_count.wrapping_add(1);
        match (merge, next) {
            (Some((n, list)), _) => {
                self.swallow_checked(&n, list);
                r.size = rest.wrapping_add(n.size);
                if let Some(nn) = after_merge {
                    self.set_prev_size_of(&nn, r.size);
                }
            }
            (None, Some(n)) => self.set_prev_size_of(&n, rest),
            (None, None) => {}
        }
        if self.dbg.flags.contains(DebugFlags::POISON) {
            // The remainder's links are about to cut into poisoned memory.
            self.poison_stale_at_links(&r);
        }
        self.insert_free(r)?;
        Ok(b)
    }

    /// Marks the absorbed header of `b` (read by this locked operation) as
    /// free but leaves it intact, so that a later free of the same pointer
    /// is still reported as a double free.
    fn scrub_header(&mut self, b: &Block) {
        // The other fields are a free header's already for an absorbed
        // free block; a block that a backward resize moves is a used,
        // uncached large block (`large_at` refuses others), and only
        // `used` is read of a header that no walk reaches any more.
        self.set_block(&Block { used: false, ..*b });
    }

    /// Block size needed for `payload` bytes.
    pub(super) fn block_size_for(payload: usize) -> Option<usize> {
        let s = round16(payload.checked_add(HEADER_SIZE)?)?;
        Some(s.max(MIN_BLOCK))
    }

    /// Allocates a block with at least `payload` bytes whose payload address
    /// is `align` aligned. Returns the block (header written, used).
    pub(super) fn large_alloc(
        &mut self,
        payload: usize,
        align: usize,
        req: u32,
        slab: bool,
    ) -> Result<Block, AllocError> {
        self.large_alloc_at(payload, align, req, slab, Placement::GoodFit)
    }

    /// [`Heap::large_alloc`] with the good-fit step chosen by `placement`.
    pub(super) fn large_alloc_at(
        &mut self,
        payload: usize,
        align: usize,
        req: u32,
        slab: bool,
        placement: Placement,
    ) -> Result<Block, AllocError> {
        let need = Self::block_size_for(payload).ok_or(AllocError::SizeOverflow)?;
        let search = if align > BLOCK_ALIGN {
            need.checked_add(align)
                .and_then(|s| s.checked_add(MIN_BLOCK))
                .ok_or(AllocError::SizeOverflow)?
        } else {
            need
        };
        if search > self.mem.len() {
            return Err(AllocError::OutOfMemory);
        }
        let Some(mut b) = self.take_block(search, placement)? else {
            return Err(AllocError::OutOfMemory);
        };
        // Put back on its list if the split below refuses (see there).
        let mut taken = Some(b);
        if align > BLOCK_ALIGN {
            let p0 = self.mem.addr(b.payload());
            let mut gap = p0.wrapping_add(align - 1) & !(align - 1);
            gap = gap.wrapping_sub(p0);
            if gap != 0 && gap < MIN_BLOCK {
                gap = gap.wrapping_add(align);
            }
            if gap != 0 {
                taken = None;
                let g = Block::free(b.off, gap, b.prev_size);
                b = Block {
                    off: b.off.wrapping_add(gap),
                    size: b.size.wrapping_sub(gap),
                    used: true,
                    slab,
                    prev_size: gap,
                    req,
                    cached: false,
                };
                self.tlsf.block_count = self.tlsf.block_count.wrapping_add(1);
                self.set_block(&b);
                self.set_prev_size_at(b.end(), b.size)?;
                self.insert_free(g)?;
            }
        }
        let mut b = match self.split_tail(b, need) {
            Ok(b) => b,
            Err(c) => {
                // The split checks the blocks it reads before it changes
                // anything (but for the list head `insert_free` meets last),
                // so the block goes back on its list (at the head) and the
                // failed allocation leaves the heap as it was. Not after an
                // alignment gap was carved from it: that stays (the
                // README's "Seen by the reviews and left").
                if let Some(t) = taken {
                    let _ = self.insert_free(t);
                }
                return Err(c.into());
            }
        };
        b.used = true;
        b.slab = slab;
        b.req = req;
        self.set_block(&b);
        Ok(b)
    }

    /// Frees the used block `b`, coalescing with both neighbours.
    pub(super) fn large_free(&mut self, b: Block) -> Result<(), Corruption> {
        let after = self.next_block(&b)?;
        let before = self.prev_block(&b)?;
        // Both checked before anything changes, then unlinked unchecked.
        let next = self.check_mergeable(after)?;
        let prev = self.check_mergeable(before)?;
        // The block after a merged successor gets its boundary tag below.
        let after_next = match &next {
            Some((n, _)) => self.next_block(n)?,
            None => None,
        };
        // Marked free at once: if `b` merges into its predecessor, this
        // header stays behind, and a later free of `b` must read it as a
        // plain free block's (not a slab's, not parked in a per-CPU cache).
        let mut m = Block::free(b.off, b.size, b.prev_size);
        self.set_block(&m);
        if let Some((n, list)) = next {
            self.unlink_checked(&n, list);
            m.size = m.size.wrapping_add(n.size);
            self.tlsf.block_count = self.tlsf.block_count.wrapping_sub(1);
        }
        if let Some((p, list)) = prev {
            self.unlink_checked(&p, list);
            m.off = p.off;
            m.prev_size = p.prev_size;
            m.size = m.size.wrapping_add(p.size);
            self.tlsf.block_count = self.tlsf.block_count.wrapping_sub(1);
        }
        match after {
            // Merged: the block after it, read above (none at the end).
            Some(n) if !n.used => {
                if let Some(nn) = after_next {
                    self.set_prev_size_of(&nn, m.size);
                }
            }
            // The used successor, read above.
            Some(n) => self.set_prev_size_of(&n, m.size),
            None => {}
        }
        self.insert_free(m)
    }

    /// Resizes the used block `b` in place to hold `payload` bytes if
    /// possible (shrinking, or growing into a free successor).
    pub(super) fn large_resize_in_place(
        &mut self,
        b: Block,
        payload: usize,
        req: u32,
    ) -> Result<Option<Block>, Corruption> {
        let Some(need) = Self::block_size_for(payload) else {
            return Ok(None);
        };
        let mut b = b;
        if need > b.size {
            let Some(n) = self.next_block(&b)?.filter(|n| !n.used) else {
                return Ok(None);
            };
            if b.size.saturating_add(n.size) < need {
                return Ok(None);
            }
            // The block after `n` gets its boundary tag below: read (and
            // checked) before `n` is swallowed.
            let after_n = self.next_block(&n)?;
            self.swallow_free(&n)?;
            b.size = b.size.wrapping_add(n.size);
            self.set_block(&b);
            if let Some(nn) = after_n {
                self.set_prev_size_of(&nn, b.size);
            }
        }
        self.finish_resize(b, need, req).map(Some)
    }

    /// Unlinks the free block `n`, which a neighbour takes over, and
    /// scrubs its header (one block fewer).
    fn swallow_free(&mut self, n: &Block) -> Result<(), Corruption> {
        let list = self.check_unlink(n)?;
        self.swallow_checked(n, list);
        Ok(())
    }

    /// [`Heap::swallow_free`] of a block already checked by
    /// [`Heap::check_unlink`] (see [`Heap::unlink_checked`]).
    fn swallow_checked(&mut self, n: &Block, list: FreeList) {
        self.unlink_checked(n, list);
        self.scrub_header(n);
        self.tlsf.block_count = self.tlsf.block_count.wrapping_sub(1);
    }

    /// Cuts the used block `b` to `need` bytes and writes its header with
    /// the requested size `req` (the end of a resize).
    fn finish_resize(&mut self, b: Block, need: usize, req: u32) -> Result<Block, Corruption> {
        let mut b = self.split_tail(b, need)?;
        b.req = req;
        self.set_block(&b);
        Ok(b)
    }

    /// Begins growing the used block `b` to hold `payload` bytes by moving
    /// it down into its free predecessor, also taking a free successor,
    /// when the three together are large enough (the caller has tried
    /// growing in place first). The three become one used block `m` from
    /// the predecessor on, header written with `req`, so the heap is
    /// consistent and nothing else can be placed in the range; the old
    /// header is marked free, so it never passes as a live block again (a
    /// later free of the old pointer is refused). The payload is not moved
    /// and `m` not cut to size: the caller moves `b.payload_size()` bytes
    /// from `b.payload()` to `m.payload()` (`memmove`, the ranges overlap),
    /// then calls [`Heap::large_resize_backward_finish`] with `m` and the
    /// returned block size. `None` when there is not enough room (nothing
    /// changed).
    pub(super) fn large_resize_backward_begin(
        &mut self,
        b: Block,
        payload: usize,
        req: u32,
    ) -> Result<Option<(Block, usize)>, Corruption> {
        let Some(need) = Self::block_size_for(payload) else {
            return Ok(None);
        };
        let Some(p) = self.prev_block(&b)?.filter(|p| !p.used) else {
            return Ok(None);
        };
        let succ = self.next_block(&b)?;
        let next = succ.filter(|n| !n.used);
        let total = p
            .size
            .saturating_add(b.size)
            .saturating_add(next.map_or(0, |n| n.size));
        if total < need {
            return Ok(None);
        }
        // Check both links, and the block after the merged one (whose
        // boundary tag changes), before changing anything (and only then):
        // on damage nothing has changed.
        let after = match next {
            Some(n) => self.next_block(&n)?,
            None => succ,
        };
        let p_list = self.check_unlink(&p)?;
        let next = self.check_mergeable(next)?;
        self.unlink_checked(&p, p_list);
        if let Some((n, list)) = next {
            self.swallow_checked(&n, list);
        }
        self.tlsf.block_count = self.tlsf.block_count.wrapping_sub(1);
        // Mark the old header free before the move (the moved bytes may
        // overwrite it), so it never describes a live block again.
        self.scrub_header(&b);
        let m = Block {
            off: p.off,
            size: total,
            used: true,
            slab: false,
            prev_size: p.prev_size,
            req,
            cached: false,
        };
        self.set_block(&m);
        if let Some(a) = after {
            self.set_prev_size_of(&a, m.size);
        }
        Ok(Some((m, need)))
    }

    /// Ends a backward resize once the payload has moved: cuts the block
    /// `m` that [`Heap::large_resize_backward_begin`] made to `need` bytes.
    /// Its header is read again first: the heap lock may have been dropped
    /// for the move, and meanwhile the block before it may have changed
    /// (freed and merged, or split), which rewrites `m`'s boundary tag; the
    /// rest of the header is `m`'s own. On damage `m` stays whole, a live
    /// block all the same.
    pub(super) fn large_resize_backward_finish(
        &mut self,
        m: Block,
        need: usize,
    ) -> Result<Block, Corruption> {
        let now = self.block(m.off)?;
        if now
            != (Block {
                prev_size: now.prev_size,
                ..m
            })
        {
            return Err(Corruption::new(
                CorruptionKind::BadSize,
                m.off,
                now.size as u64,
            ));
        }
        self.finish_resize(now, need, now.req)
    }

    /// Size of the largest free block (header included), 0 if none.
    pub(super) fn largest_free_block_size(&self) -> usize {
        let flb = self.fl_bitmap();
        if flb == 0 {
            return 0;
        }
        let fl = (31 - flb.leading_zeros()) as usize;
        let slb = self.sl_bitmap(fl);
        if slb == 0 || fl >= FL_COUNT {
            return 0;
        }
        let sl = (31 - slb.leading_zeros()) as usize;
        // Blocks of one list differ in size; scan it (bounded by the free count).
        let mut best = 0;
        let mut cur = self.list_head(fl, sl);
        let mut steps = 0;
        while cur != 0 && steps <= self.tlsf.free_count {
            let Ok(b) = self.block(cur) else { break };
            best = best.max(b.size);
            cur = self.links(cur).0;
            steps += 1;
        }
        best
    }
}
