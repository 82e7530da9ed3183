// SPDX-License-Identifier: GPL-2.0

//! Slab spans: layout, descriptor, object free list and per-cache lists.
//!
//! A slab is one used large block (a "span") flagged as slab in its header:
//!
//! ```text
//! | block header 16 | SlabDesc 48 | bitmap (u64 words) | pad to align | objects ... | tail |
//! ```
//!
//! The bitmap has one bit per object (1 = allocated) and makes double-free
//! detection exact. Objects are handed out from a bump index first, then
//! from an intrusive LIFO free list whose links (region offsets of the next
//! free object, 0 = end) live in the first four bytes of free objects.
//!
//! Spans are *page-map addressable* rather than page aligned: with in-band
//! 16-byte headers a page-aligned, page-multiple span would waste one whole
//! object per 2048/4096 slab, so spans are sized to fit their objects
//! exactly and the owner of a pointer is found through the page map.
//!
//! Span sizing ([`slab_geometry`]): as many objects as fit in a 16 KiB span
//! (header, descriptor, bitmap and worst-case alignment padding included),
//! but at least 8 objects; the span is then trimmed to exactly what those
//! objects need, so built-in classes have no tail waste. The span size
//! includes the worst-case padding for the class alignment (`align - 16`).
//! Resulting table (span = block incl. its 16-byte header; overhead =
//! header + descriptor + bitmap + worst-case padding):
//!
//! | class | align | objects | span bytes | overhead |
//! |------:|------:|--------:|-----------:|---------:|
//! |     8 |     8 |    2008 |      16384 |  320 (1.95 %) |
//! |    16 |    16 |    1012 |      16384 |  192 (1.17 %) |
//! |    32 |    32 |     507 |      16368 |  144 (0.87 %) |
//! |    64 |    64 |     253 |      16336 |  144 (0.88 %) |
//! |   128 |    64 |     127 |      16384 |  128 (0.78 %) |
//! |   256 |    64 |      63 |      16256 |  128 (0.78 %) |
//! |   512 |    64 |      31 |      16000 |  128 (0.80 %) |
//! |  1024 |    64 |      15 |      15488 |  128 (0.82 %) |
//! |  2048 |    64 |       8 |      16512 |  128 (0.77 %) |
//! |  4096 |    64 |       8 |      32896 |  128 (0.38 %) |
//!
//! Custom caches use the same rule with `stride = round_up(max(size, 8),
//! align)`. Debug flags `Z`/`P`/`U` (see `debug`) give a cache a longer
//! stride, a left red zone before the first object and the free-list link
//! outside the object; the geometry rule is the same. A span may be up to 16 bytes larger than listed when the TLSF
//! block it came from could not be split (the remainder is counted as
//! overhead).

use super::block::Block;
use super::cache::C_ACTIVE;
use super::config::{
    EMPTY_SLAB_RESERVE, HEADER_SIZE, SLAB_DEAD, SLAB_MAGIC, SLAB_MIN_OBJECTS, SLAB_TARGET_BYTES,
};
use super::debug::{link_off, DebugFlags, C_DEBUG_MASK};
use super::error::{AllocError, Corruption, CorruptionKind, FreeError};
use super::fast_view::fast_tag;
use super::heap::Heap;
use super::region::Pod;

/// An object taken from a slab by [`Heap::slab_take`].
#[derive(Clone, Copy, Debug)]
pub(super) struct Taken {
    /// Region offset of the object.
    pub(super) obj: usize,
    /// Whether it was freed before (came from the free list).
    pub(super) reused: bool,
    /// Offset of its slab span.
    pub(super) span: usize,
    /// Its index in the slab (its bitmap bit).
    pub(super) idx: usize,
}

/// Bytes of the slab descriptor.
pub(super) const DESC_BYTES: usize = 48;
/// Offset of the bitmap from the span start.
pub(super) const BITMAP_OFF: usize = HEADER_SIZE + DESC_BYTES;

/// Which cache list a slab is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SlabState {
    /// No live objects.
    Empty = 0,
    /// Some live objects.
    Partial = 1,
    /// No free object.
    Full = 2,
}

impl SlabState {
    /// State of a slab with `inuse` of `cap` objects live.
    pub(super) fn of(inuse: u32, cap: u32) -> SlabState {
        if inuse == 0 {
            SlabState::Empty
        } else if inuse >= cap {
            SlabState::Full
        } else {
            SlabState::Partial
        }
    }
}

/// The slab descriptor stored right after the span's block header.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct SlabDesc {
    pub(super) magic: u32,
    pub(super) cache: u32,
    pub(super) next: u32,
    pub(super) prev: u32,
    pub(super) free_head: u32,
    pub(super) inuse: u32,
    pub(super) capacity: u32,
    pub(super) bump: u32,
    pub(super) obj_start: u32,
    pub(super) stride: u32,
    pub(super) state: u32,
    pub(super) bitmap_words: u32,
}

// SAFETY: `repr(C)` struct of twelve `u32`, no padding, any bit pattern valid.
unsafe impl Pod for SlabDesc {}

/// Number of u64 bitmap words for `n` objects.
const fn bitmap_words(n: usize) -> usize {
    n.div_ceil(64)
}

/// Worst-case padding to align the first object (span payloads are 16 aligned).
const fn max_pad(align: usize) -> usize {
    align.saturating_sub(16)
}

/// Objects per slab and span size (block header included) for `stride`/`align`.
pub const fn slab_geometry(stride: usize, align: usize) -> (usize, usize) {
    slab_geometry_lead(stride, align, 0)
}

/// [`slab_geometry`] with `lead` bytes (a debug left red zone) before the
/// first object.
pub(super) const fn slab_geometry_lead(stride: usize, align: usize, lead: usize) -> (usize, usize) {
    let fixed = BITMAP_OFF + max_pad(align) + lead;
    // Every 64 objects take one bitmap word: whole groups of 64 objects and
    // their word first, then as many objects as the rest holds after one
    // more word. Exact for any stride, with no estimate to correct.
    let stride = if stride == 0 { 1 } else { stride };
    let avail = SLAB_TARGET_BYTES.saturating_sub(fixed);
    let group = 64 * stride + 8;
    let mut n = avail / group * 64 + (avail % group).saturating_sub(8) / stride;
    if n < SLAB_MIN_OBJECTS {
        n = SLAB_MIN_OBJECTS;
    }
    let span = fixed + bitmap_words(n) * 8 + n * stride;
    (n, (span + 15) & !15)
}

impl Heap {
    /// Reads and checks the descriptor of span `span`.
    pub(super) fn slab_desc(&self, span: usize) -> Result<SlabDesc, Corruption> {
        let d: SlabDesc = self
            .mem
            .read(span.wrapping_add(HEADER_SIZE))
            .ok_or(Corruption::new(CorruptionKind::SlabBadMagic, span, 0))?;
        if d.magic != SLAB_MAGIC ^ (span as u32) {
            return Err(Corruption::new(
                CorruptionKind::SlabBadMagic,
                span,
                u64::from(d.magic),
            ));
        }
        Ok(d)
    }

    fn set_slab_desc(&mut self, span: usize, d: &SlabDesc) {
        self.mem.write(span.wrapping_add(HEADER_SIZE), *d);
    }

    /// Region offset of the bitmap word and the bit of object `idx` of `span`.
    pub(super) fn bit_pos(span: usize, idx: usize) -> (usize, u64) {
        let word = span.wrapping_add(BITMAP_OFF).wrapping_add((idx / 64) * 8);
        (word, 1u64 << (idx % 64))
    }

    /// Whether object `idx` of `span` is allocated.
    pub(super) fn slab_bit(&self, span: usize, idx: usize) -> bool {
        let (w, m) = Self::bit_pos(span, idx);
        self.mem.load64(w) & m != 0
    }

    /// Sets or clears the bit of object `idx`.
    fn set_slab_bit(&mut self, span: usize, idx: usize, on: bool) {
        let (w, m) = Self::bit_pos(span, idx);
        self.mem.update64(w, m, on);
    }

    /// Checks that the objects of the slab in `span` (descriptor `d`), each
    /// `usable` bytes, lie inside the span: whatever damage the metadata
    /// took, no object or usable size handed to a caller may reach past
    /// its span, let alone the region.
    pub(super) fn check_slab_fits(
        &self,
        span: &Block,
        d: &SlabDesc,
        usable: usize,
    ) -> Result<(), Corruption> {
        let end = (d.capacity as usize)
            .checked_mul(d.stride as usize)
            .and_then(|n| n.checked_add(d.obj_start as usize));
        let fits = d.stride != 0
            && usable <= d.stride as usize
            && d.obj_start as usize > span.off
            && end.is_some_and(|e| e <= span.end());
        if !fits {
            return Err(Corruption::new(
                CorruptionKind::SlabCountMismatch,
                span.off,
                u64::from(d.stride),
            ));
        }
        Ok(())
    }

    /// Usable bytes of the live object `obj` of the slab in `span`, or the
    /// free error describing why it is not one.
    pub(super) fn slab_live_usable(&self, span: &Block, obj: usize) -> Result<usize, FreeError> {
        let d = self.slab_desc(span.off)?;
        let idx = Self::slab_obj_index(&d, obj)?;
        if !self.slab_bit(span.off, idx) {
            return Err(FreeError::DoubleFree);
        }
        let usable = self.cache(d.cache as usize).usable();
        self.check_slab_fits(span, &d, usable)?;
        Ok(usable)
    }

    /// Index of the object at `obj`, or the free error describing why it is not one.
    pub(super) fn slab_obj_index(d: &SlabDesc, obj: usize) -> Result<usize, FreeError> {
        let start = d.obj_start as usize;
        let stride = d.stride.max(1) as usize;
        let Some(rel) = obj.checked_sub(start) else {
            return Err(FreeError::NotAllocated);
        };
        // The built-in classes have power-of-two strides: a shift and a
        // mask instead of a division (a helper call under TCG).
        let (idx, interior) = if stride.is_power_of_two() {
            (rel >> stride.trailing_zeros(), rel & (stride - 1))
        } else {
            (rel / stride, rel % stride)
        };
        if idx >= d.capacity as usize {
            return Err(FreeError::NotAllocated);
        }
        if interior != 0 {
            return Err(FreeError::Interior);
        }
        if idx >= d.bump as usize {
            return Err(FreeError::NotAllocated);
        }
        Ok(idx)
    }

    /// Checks that `obj` is a valid free-list entry of `span`; returns its
    /// index.
    pub(super) fn check_free_obj(
        &self,
        span: usize,
        d: &SlabDesc,
        obj: usize,
    ) -> Result<usize, Corruption> {
        match Self::slab_obj_index(d, obj) {
            Ok(idx) if !self.slab_bit(span, idx) => Ok(idx),
            _ => Err(Corruption::new(
                CorruptionKind::SlabFreeList,
                obj,
                span as u64,
            )),
        }
    }

    /// [`Heap::check_free_obj`] of a free-list link: the end of the list
    /// (0) passes as index 0.
    fn check_link(&self, span: usize, d: &SlabDesc, link: usize) -> Result<usize, Corruption> {
        match link {
            0 => Ok(0),
            obj => self.check_free_obj(span, d, obj),
        }
    }

    /// Creates a new empty slab for cache `ci` and puts it on the empty list.
    pub(super) fn slab_new(&mut self, ci: usize) -> Result<usize, AllocError> {
        // What the new slab needs of the descriptor (not a copy of it).
        let c = self.cache(ci);
        if !c.geometry_is_derived(ci) {
            return Err(
                Corruption::new(CorruptionKind::CacheMismatch, ci, u64::from(c.capacity)).into(),
            );
        }
        let (span_size, cap, stride) = (c.span_size as usize, c.capacity as usize, c.stride);
        let (align, usable, tag) = ((c.align as usize).max(8), c.usable(), fast_tag(ci, c));
        let debug = c.flags & C_DEBUG_MASK != 0;
        let lead = if debug { c.lead() } else { 0 };
        let b = self.large_alloc(span_size.saturating_sub(HEADER_SIZE), 16, 0, true)?;
        let span = b.off;
        let words = bitmap_words(cap);
        let first = self
            .mem
            .addr(span.wrapping_add(BITMAP_OFF + words * 8 + lead));
        let pad = (align.wrapping_sub(first % align)) % align;
        let obj_start = span.wrapping_add(BITMAP_OFF + words * 8 + lead + pad);
        let d = SlabDesc {
            magic: SLAB_MAGIC ^ (span as u32),
            cache: ci as u32,
            next: 0,
            prev: 0,
            free_head: 0,
            inuse: 0,
            capacity: cap as u32,
            bump: 0,
            obj_start: obj_start as u32,
            stride,
            state: SlabState::Empty as u32,
            bitmap_words: words as u32,
        };
        // A damaged descriptor must not size the slab: its capacity bounds
        // the loops below (with interrupts off in the kernel).
        if cap == 0 || self.check_slab_fits(&b, &d, usable).is_err() {
            self.large_free(b)?;
            return Err(Corruption::new(CorruptionKind::CacheMismatch, ci, cap as u64).into());
        }
        self.set_slab_desc(span, &d);
        self.mem.fill(span.wrapping_add(BITMAP_OFF), words * 8, 0);
        if debug {
            self.debug_slab_init(ci, obj_start, cap);
        }
        self.pagemap_update(span, b.size, true, tag);
        self.slabs.spans = self.slabs.spans.wrapping_add(1);
        self.slabs.span_bytes = self.slabs.span_bytes.wrapping_add(b.size);
        self.slabs.cap_bytes = self
            .slabs
            .cap_bytes
            .wrapping_add(cap.wrapping_mul(stride as usize));
        if let Some(c) = self.cache_mut(ci) {
            c.total_objs = c.total_objs.wrapping_add(cap as u32);
        }
        self.slab_list_push(ci, SlabState::Empty, span)?;
        Ok(span)
    }

    /// Gives the empty slab `span` of cache `ci` back to the large-block pool.
    pub(super) fn slab_release(&mut self, ci: usize, span: usize) -> Result<(), Corruption> {
        let d = self.slab_desc(span)?;
        let b = self.block(span)?;
        if d.inuse != 0 || !b.slab || !b.used {
            return Err(Corruption::new(
                CorruptionKind::SlabCountMismatch,
                span,
                u64::from(d.inuse),
            ));
        }
        if d.state != SlabState::Empty as u32 {
            return Err(Corruption::new(
                CorruptionKind::SlabListMismatch,
                span,
                u64::from(d.state),
            ));
        }
        self.slab_list_unlink(ci, span, &d)?;
        self.pagemap_update(span, b.size, false, 0);
        // Leave a dead marker in `prev`, past the free links the large free
        // writes over the descriptor's first words, for double-free
        // detection (`slab_ghost_object`). Nothing else reads the dead
        // descriptor: the page map no longer names the span, and its
        // lookup checks the span's header (now a free block's) first.
        let dead = SlabDesc {
            prev: SLAB_DEAD ^ (span as u32),
            ..d
        };
        self.set_slab_desc(span, &dead);
        self.slabs.spans = self.slabs.spans.wrapping_sub(1);
        self.slabs.span_bytes = self.slabs.span_bytes.wrapping_sub(b.size);
        self.slabs.cap_bytes = self
            .slabs
            .cap_bytes
            .wrapping_sub((d.capacity as usize).wrapping_mul(d.stride as usize));
        if let Some(c) = self.cache_mut(ci) {
            c.total_objs = c.total_objs.wrapping_sub(d.capacity);
        }
        if self.dbg.flags.contains(DebugFlags::POISON) {
            // Heap-wide `P`: free large-block memory is poison, the dead
            // descriptor too, so a copy of it is kept outside the region.
            self.remember_ghost(dead);
            self.poison_large(&b);
        }
        self.large_free(b)
    }

    /// Keeps a copy of the dead descriptor `dead` in `DebugState::ghosts`,
    /// replacing one of the same span (the same dead marker).
    fn remember_ghost(&mut self, dead: SlabDesc) {
        let ring = &mut self.dbg.ghosts;
        let slot = match ring.iter().position(|e| e.prev == dead.prev) {
            Some(i) => i,
            None => {
                // `ghost_next` counts releases; taken modulo the ring.
                let i = self.dbg.ghost_next % ring.len();
                self.dbg.ghost_next = self.dbg.ghost_next.wrapping_add(1);
                i
            }
        };
        if let Some(e) = ring.get_mut(slot) {
            *e = dead;
        }
    }

    /// Pushes `span` on list `state` of cache `ci`.
    fn slab_list_push(
        &mut self,
        ci: usize,
        state: SlabState,
        span: usize,
    ) -> Result<(), Corruption> {
        let head = self.cache(ci).heads[state as usize] as usize;
        let mut d = self.slab_desc(span)?;
        if head != 0 {
            let mut h = self.slab_desc(head)?;
            h.prev = span as u32;
            self.set_slab_desc(head, &h);
        }
        d.next = head as u32;
        d.prev = 0;
        d.state = state as u32;
        self.set_slab_desc(span, &d);
        if let Some(c) = self.cache_mut(ci) {
            c.heads[state as usize] = span as u32;
            c.counts[state as usize] = c.counts[state as usize].wrapping_add(1);
        }
        Ok(())
    }

    /// Removes `span` (descriptor `d`) from its list in cache `ci`.
    fn slab_list_unlink(&mut self, ci: usize, span: usize, d: &SlabDesc) -> Result<(), Corruption> {
        let st = (d.state as usize).min(2);
        let bad = |o: usize| Corruption::new(CorruptionKind::SlabListMismatch, o, span as u64);
        let next = if d.next != 0 {
            let n = self.slab_desc(d.next as usize)?;
            if n.prev as usize != span {
                return Err(bad(d.next as usize));
            }
            Some(n)
        } else {
            None
        };
        let prev = if d.prev != 0 {
            let p = self.slab_desc(d.prev as usize)?;
            if p.next as usize != span {
                return Err(bad(d.prev as usize));
            }
            Some(p)
        } else {
            if self.cache(ci).heads[st] as usize != span {
                return Err(bad(span));
            }
            None
        };
        if let Some(mut n) = next {
            n.prev = d.prev;
            self.set_slab_desc(d.next as usize, &n);
        }
        if let Some(mut p) = prev {
            p.next = d.next;
            self.set_slab_desc(d.prev as usize, &p);
        }
        if let Some(c) = self.cache_mut(ci) {
            if prev.is_none() {
                c.heads[st] = d.next;
            }
            c.counts[st] = c.counts[st].wrapping_sub(1);
        }
        Ok(())
    }

    /// Moves `span` to the list matching its counts, if it changed.
    fn slab_relist(&mut self, ci: usize, span: usize) -> Result<(), Corruption> {
        let d = self.slab_desc(span)?;
        let want = SlabState::of(d.inuse, d.capacity);
        if d.state == want as u32 {
            return Ok(());
        }
        self.slab_list_unlink(ci, span, &d)?;
        self.slab_list_push(ci, want, span)
    }

    /// Takes up to `n` objects from cache `ci` and hands each to `put`;
    /// returns how many. Taken objects count as in use
    /// (slab `inuse`, cache `active_objs`, `used_bytes`) but their bitmap
    /// bits stay clear: the caller either marks them live ([`Heap::slab_alloc`])
    /// or keeps them in a per-CPU magazine. Slabs are consumed one at a time
    /// with one descriptor read and write each, so a batch is cheap. If
    /// damage is found after some objects were taken, those stay taken, the
    /// taking stops and the count is returned (the damage is counted once);
    /// with none taken the damage is the error.
    pub(super) fn slab_take(
        &mut self,
        ci: usize,
        n: usize,
        mut put: impl FnMut(Taken),
    ) -> Result<usize, AllocError> {
        let mut got = 0usize;
        while got < n {
            let damage = match self.slab_take_one_slab(ci, n - got, &mut put) {
                Ok((k, damage)) => {
                    got += k;
                    damage
                }
                Err(e) if got == 0 => return Err(e),
                Err(AllocError::Corrupted(c)) => Some(c),
                Err(_) => break,
            };
            if let Some(c) = damage {
                self.note_corruption(c);
                break;
            }
        }
        Ok(got)
    }

    /// One step of [`Heap::slab_take`]: up to `n` objects from one slab,
    /// and the damage that stopped it after it took some.
    fn slab_take_one_slab(
        &mut self,
        ci: usize,
        n: usize,
        put: &mut impl FnMut(Taken),
    ) -> Result<(usize, Option<Corruption>), AllocError> {
        let c = self.cache(ci);
        let (link, usable) = (link_off(c.flags), c.usable());
        let mut span = c.heads[SlabState::Partial as usize] as usize;
        if span == 0 {
            span = c.heads[SlabState::Empty as usize] as usize;
        }
        if span == 0 {
            span = self.slab_new(ci)?;
        }
        let mut d = self.slab_desc(span)?;
        if d.cache as usize != ci {
            return Err(Corruption::new(
                CorruptionKind::SlabListMismatch,
                span,
                u64::from(d.cache),
            )
            .into());
        }
        self.check_slab_fits(&self.block(span)?, &d, usable)?;
        let count_err = |d: &SlabDesc| {
            Corruption::new(CorruptionKind::SlabCountMismatch, span, u64::from(d.inuse))
        };
        if d.inuse >= d.capacity {
            return Err(count_err(&d).into());
        }
        let mut took = 0usize;
        let mut damage = None;
        // The index of the free-list head, checked once: every later head
        // is checked as its predecessor's link before it is followed.
        let mut head_idx = self.check_link(span, &d, d.free_head as usize);
        while took < n && d.inuse < d.capacity {
            let (obj, reused, idx) = if d.free_head != 0 {
                let obj = d.free_head as usize;
                let next = self.mem.rd32(obj.wrapping_add(link)) as usize;
                let checked = head_idx.and_then(|idx| Ok((idx, self.check_link(span, &d, next)?)));
                let idx = match checked {
                    Ok((idx, next_idx)) => {
                        head_idx = Ok(next_idx);
                        idx
                    }
                    Err(c) => {
                        damage = Some(c);
                        break;
                    }
                };
                d.free_head = next as u32;
                (obj, true, idx)
            } else if d.bump < d.capacity {
                let idx = d.bump as usize;
                let obj = (d.obj_start as usize).wrapping_add(idx.wrapping_mul(d.stride as usize));
                d.bump = d.bump.wrapping_add(1);
                (obj, false, idx)
            } else {
                damage = Some(count_err(&d));
                break;
            };
            d.inuse = d.inuse.wrapping_add(1);
            took += 1;
            put(Taken {
                obj,
                reused,
                span,
                idx,
            });
        }
        // Every pass of the loop took an object or found damage.
        if let (Some(c), 0) = (damage, took) {
            return Err(c.into());
        }
        self.slab_commit(ci, span, &d, took, true, 0)?;
        Ok((took, damage))
    }

    /// Allocates one object from cache `ci`. Returns `(offset, reused)`.
    pub(super) fn slab_alloc(&mut self, ci: usize) -> Result<(usize, bool), AllocError> {
        self.slab_alloc_in::<true>(ci)
    }

    /// [`Heap::slab_alloc`]; with `DEBUG` a cache with debug flags goes to
    /// `debug_slab_alloc` (one flag test), which calls back with `false`.
    #[inline(always)]
    pub(super) fn slab_alloc_in<const DEBUG: bool>(
        &mut self,
        ci: usize,
    ) -> Result<(usize, bool), AllocError> {
        if DEBUG && self.cache_flags(ci) & C_DEBUG_MASK != 0 {
            return self.debug_slab_alloc(ci);
        }
        let mut got = None;
        self.slab_take(ci, 1, |t| got = Some(t))?;
        let t = got.ok_or(AllocError::OutOfMemory)?;
        self.set_slab_bit(t.span, t.idx, true);
        Ok((t.obj, t.reused))
    }

    /// Frees object `obj` of slab `span`. `want` is the cache the caller
    /// named (for `cache_free`), `None` for a generic free.
    pub(super) fn slab_free(
        &mut self,
        span: &Block,
        obj: usize,
        want: Option<usize>,
    ) -> Result<usize, FreeError> {
        let span = span.off;
        let d = self.slab_desc(span)?;
        let ci = d.cache as usize;
        if obj < d.obj_start as usize {
            return Err(FreeError::NotAllocated);
        }
        let idx = Self::slab_obj_index(&d, obj)?;
        if let Some(w) = want {
            if w != ci {
                return Err(FreeError::WrongCache);
            }
        }
        if !self.slab_bit(span, idx) {
            return Err(FreeError::DoubleFree);
        }
        self.slab_check_return(span, &d, ci)?;
        if self.cache_flags(ci) & C_DEBUG_MASK != 0 {
            self.debug_slab_release(ci, span, obj)?;
        }
        self.set_slab_bit(span, idx, false);
        self.slab_return(span, d, ci, obj)?;
        Ok(d.stride as usize)
    }

    /// Gives back taken objects whose bitmap bits are clear (objects a
    /// per-CPU magazine held) to their slabs. Consecutive objects of the
    /// same slab share one descriptor read and write, one list update and
    /// one cache-counter update. Returns how many went back; stops at the first
    /// object its slab does not take back and reports that damage (the
    /// objects before it are back, the rest are not).
    pub(super) fn slab_put_many(
        &mut self,
        objs: impl Iterator<Item = usize>,
    ) -> (usize, Option<Corruption>) {
        let mut done = 0usize;
        // The slab being filled: span, descriptor, cache, objects pushed.
        let mut cur: Option<(usize, SlabDesc, usize, usize)> = None;
        let mut damage = None;
        for obj in objs {
            let bad = |detail: u64| Corruption::new(CorruptionKind::SlabFreeList, obj, detail);
            let same = cur.as_ref().is_some_and(|(_, d, _, _)| {
                let start = d.obj_start as usize;
                obj >= start && obj - start < (d.capacity as usize) * (d.stride as usize)
            });
            if !same {
                if let Some(c) = cur.take() {
                    if let Err(e) = self.slab_put_commit(c) {
                        damage = Some(e);
                        break;
                    }
                }
                let loaded = self
                    .pagemap_lookup(obj)
                    .and_then(|b| b.ok_or(bad(0)))
                    .and_then(|b| Ok((b.off, self.slab_desc(b.off)?)))
                    .and_then(|(span, d)| {
                        let ci = d.cache as usize;
                        self.slab_check_return(span, &d, ci)?;
                        Ok((span, d, ci, 0usize))
                    });
                match loaded {
                    Ok(c) => cur = Some(c),
                    Err(e) => {
                        damage = Some(e);
                        break;
                    }
                }
            }
            let Some((span, d, ci, n)) = cur.as_mut() else {
                break;
            };
            let ok = match Self::slab_obj_index(d, obj) {
                Ok(idx) => !self.slab_bit(*span, idx) && d.inuse > 0,
                Err(_) => false,
            };
            if !ok {
                damage = Some(bad(*span as u64));
                break;
            }
            // Magazines only hold objects of caches without debug flags,
            // whose link is at offset 0; take the cache's anyway.
            let link = link_off(self.cache_flags(*ci));
            self.mem.wr32(obj.wrapping_add(link), d.free_head);
            d.free_head = obj as u32;
            d.inuse = d.inuse.wrapping_sub(1);
            *n += 1;
            done += 1;
        }
        if let Some(c) = cur.take() {
            if let Err(e) = self.slab_put_commit(c) {
                damage.get_or_insert(e);
            }
        }
        (done, damage)
    }

    /// Writes back one slab of [`Heap::slab_put_many`].
    fn slab_put_commit(
        &mut self,
        (span, d, ci, n): (usize, SlabDesc, usize, usize),
    ) -> Result<(), Corruption> {
        if n == 0 {
            return Ok(());
        }
        self.slab_commit(ci, span, &d, n, false, 0)
    }

    /// Checks that slab `span` (descriptor `d`, cache `ci`) can take an
    /// object back.
    fn slab_check_return(&self, span: usize, d: &SlabDesc, ci: usize) -> Result<(), Corruption> {
        if d.inuse == 0 {
            return Err(Corruption::new(CorruptionKind::SlabCountMismatch, span, 0));
        }
        if self.cache_flags(ci) & C_ACTIVE == 0 {
            return Err(Corruption::new(
                CorruptionKind::CacheMismatch,
                span,
                ci as u64,
            ));
        }
        self.check_link(span, d, d.free_head as usize).map(|_| ())
    }

    /// Pushes the taken object `obj` on its slab's free list and updates
    /// the counts, lists and empty-slab reserve.
    fn slab_return(
        &mut self,
        span: usize,
        mut d: SlabDesc,
        ci: usize,
        obj: usize,
    ) -> Result<(), Corruption> {
        let link = link_off(self.cache_flags(ci));
        self.mem.wr32(obj.wrapping_add(link), d.free_head);
        d.free_head = obj as u32;
        d.inuse = d.inuse.wrapping_sub(1);
        self.slab_commit(ci, span, &d, 1, false, 1)
    }

    /// Writes back slab `span` (descriptor `d`, cache `ci`) after `n` of
    /// its objects were taken (`taken`) or given back: the slab, cache and
    /// heap counts, its list, and the empty-slab reserve when it became
    /// empty. `frees` is added to the cache's free counter. The one place
    /// that keeps those counts in step, for single objects and batches.
    #[inline(always)]
    fn slab_commit(
        &mut self,
        ci: usize,
        span: usize,
        d: &SlabDesc,
        n: usize,
        taken: bool,
        frees: u64,
    ) -> Result<(), Corruption> {
        self.set_slab_desc(span, d);
        let bytes = n.wrapping_mul(d.stride as usize);
        if taken {
            self.slabs.used_bytes = self.slabs.used_bytes.wrapping_add(bytes);
        } else {
            self.slabs.used_bytes = self.slabs.used_bytes.wrapping_sub(bytes);
        }
        if let Some(c) = self.cache_mut(ci) {
            c.active_objs = if taken {
                c.active_objs.wrapping_add(n as u32)
            } else {
                c.active_objs.wrapping_sub(n as u32)
            };
            c.frees = c.frees.wrapping_add(frees);
        }
        self.slab_relist(ci, span)?;
        if !taken && d.inuse == 0 {
            self.slab_trim(ci)?;
        }
        Ok(())
    }

    /// Returns empty slabs of cache `ci` to the large pool: all of them when
    /// the cache has no live object (so freeing everything gives back one
    /// free block), otherwise all but `EMPTY_SLAB_RESERVE`.
    pub(super) fn slab_trim(&mut self, ci: usize) -> Result<(), Corruption> {
        let keep = if self.cache(ci).active_objs == 0 {
            0
        } else {
            EMPTY_SLAB_RESERVE
        };
        self.slab_release_empty(ci, keep)
    }

    /// Releases empty slabs of cache `ci` (`slab_release`) until `keep` are
    /// left. Each release takes the list's head off and one off its count
    /// (`slab_release` refuses a slab whose state is not empty), so the
    /// loop ends within the count's steps; a head left when the count says
    /// none is damage (`SlabListMismatch`, the head, the cache).
    pub(super) fn slab_release_empty(&mut self, ci: usize, keep: u32) -> Result<(), Corruption> {
        loop {
            let c = self.cache(ci);
            let head = c.heads[SlabState::Empty as usize] as usize;
            let count = c.counts[SlabState::Empty as usize];
            if head == 0 {
                return Ok(());
            }
            if count == 0 {
                return Err(Corruption::new(
                    CorruptionKind::SlabListMismatch,
                    head,
                    ci as u64,
                ));
            }
            if count <= keep {
                return Ok(());
            }
            self.slab_release(ci, head)?;
        }
    }

    /// Whether `obj` is an object start of the released slab `span` whose
    /// dead descriptor is still intact (a free of it is a double free), or,
    /// when heap-wide `P` poisoned that descriptor, whose copy in
    /// `DebugState::ghosts` says so while the span's header is still a
    /// free block's (its memory not reused).
    pub(super) fn slab_ghost_object(&self, span: usize, obj: usize) -> bool {
        let mark = SLAB_DEAD ^ (span as u32);
        let dead = |d: &SlabDesc| d.prev == mark;
        if let Some(d) = self
            .mem
            .read::<SlabDesc>(span.wrapping_add(HEADER_SIZE))
            .filter(dead)
        {
            return Self::slab_obj_index(&d, obj).is_ok();
        }
        self.dbg.ghosts.iter().find(|d| dead(d)).is_some_and(|d| {
            self.block(span).is_ok_and(|b| !b.used) && Self::slab_obj_index(d, obj).is_ok()
        })
    }
}
