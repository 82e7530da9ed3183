// SPDX-License-Identifier: GPL-2.0

//! Page map: O(1) lookup of the slab span owning a pointer.
//!
//! One 8-byte entry per page of the region, in the metadata area:
//! `first` is the slab span containing the page's first byte and `start` is
//! the slab span that starts strictly inside the page (both region offsets
//! of the span's block header, 0 = none). Spans are not page aligned, but
//! every span is larger than a page, so at most one span can start inside a
//! page and the two candidates are unambiguous.
//!
//! When a slab is released its entries are not cleared but marked as
//! *ghosts* (bit 31, offsets are below 1 GiB). Ghosts are ignored by the
//! owner lookup; they only let `free` recognise a second free of an object
//! whose slab was already returned to the large pool (the released
//! descriptor keeps a `SLAB_DEAD` marker until the memory is reused), so
//! such a double free is still reported as `DoubleFree`.
//!
//! The low four bits of an entry (span offsets are 16-byte aligned) carry a
//! *fast tag*: `class + 1` for a slab of built-in size class `class` with
//! the standard geometry, 0 otherwise. The lock-free free path
//! ([`super::magazine`]) needs nothing but this word to find an object's
//! class, index and bitmap word, so it never reads a slab descriptor.

use super::block::Block;
use super::config::PAGE_SIZE;
use super::error::{Corruption, CorruptionKind};
use super::heap::Heap;

/// Bytes of one page-map entry.
pub(super) const ENTRY_BYTES: usize = 8;
/// Entry bit marking a released (ghost) span.
pub(super) const GHOST: usize = 1 << 31;
/// Entry bits holding the fast tag (see the module doc).
pub(super) const TAG_MASK: usize = 0xf;

impl Heap {
    /// Region offset of the entry of page `page` (one `u64`: `first` in
    /// the low half, `start` in the high half). Public for the tests that
    /// damage it.
    pub fn pagemap_entry_offset(&self, page: usize) -> usize {
        self.pagemap_off
            .wrapping_add(page.wrapping_mul(ENTRY_BYTES))
    }

    /// The `(first, start)` entry of `page` with the fast tags kept. An
    /// entry is one `u64` (`first` in the low half), always read and
    /// written whole and atomically: the fast path reads it without the
    /// heap lock.
    pub(super) fn pagemap_tagged(&self, page: usize) -> (usize, usize) {
        let e = self.mem.load64(self.pagemap_entry_offset(page));
        ((e & 0xffff_ffff) as usize, (e >> 32) as usize)
    }

    fn pagemap_store(&mut self, page: usize, first: usize, start: usize) {
        let e = (first as u64 & 0xffff_ffff) | ((start as u64 & 0xffff_ffff) << 32);
        self.mem.store64(self.pagemap_entry_offset(page), e);
    }

    /// The `(first, start)` entry of `page` (span offsets, ghost bit kept).
    pub(super) fn pagemap_entry(&self, page: usize) -> (usize, usize) {
        let (first, start) = self.pagemap_tagged(page);
        (first & !TAG_MASK, start & !TAG_MASK)
    }

    /// Records (or, with `set == false`, erases) the span `span` of `size`
    /// bytes; `tag` is its fast tag (ignored when erasing).
    pub(super) fn pagemap_update(&mut self, span: usize, size: usize, set: bool, tag: usize) {
        let first = span / PAGE_SIZE;
        let last = span.wrapping_add(size).saturating_sub(1) / PAGE_SIZE;
        let val = if set {
            (span | (tag & TAG_MASK)) as u32
        } else {
            (span | GHOST) as u32
        };
        let mut page = first;
        while page <= last && page < self.npages {
            let (mut f, mut st) = self.pagemap_tagged(page);
            if page == first && !span.is_multiple_of(PAGE_SIZE) {
                if set || st & !TAG_MASK == span {
                    st = val as usize;
                }
            } else {
                if set || f & !TAG_MASK == span {
                    f = val as usize;
                }
                // A span recorded as starting inside this page but within
                // our range can only be a stale ghost: drop it.
                let old = st & !(GHOST | TAG_MASK);
                if set && old > span && old < span.wrapping_add(size) {
                    st = 0;
                }
            }
            self.pagemap_store(page, f, st);
            page += 1;
        }
    }

    /// The slab span containing region offset `off`, if any.
    pub(super) fn pagemap_lookup(&self, off: usize) -> Result<Option<Block>, Corruption> {
        let (first, start) = self.pagemap_entry(off / PAGE_SIZE);
        for cand in [first, start] {
            if cand == 0 || cand & GHOST != 0 || cand > off {
                continue;
            }
            let b = self.block(cand).map_err(|c| {
                Corruption::new(CorruptionKind::PageMapMismatch, cand, c.offset as u64)
            })?;
            if !b.used || !b.slab {
                return Err(Corruption::new(CorruptionKind::PageMapMismatch, cand, 0));
            }
            if off < b.end() {
                return Ok(Some(b));
            }
        }
        Ok(None)
    }

    /// Whether `off` is an object start of a released (ghost) span whose
    /// page-map entry and dead descriptor both survive.
    pub(super) fn pagemap_ghost_object(&self, off: usize) -> bool {
        let (first, start) = self.pagemap_entry(off / PAGE_SIZE);
        [start, first]
            .into_iter()
            .filter(|&c| c & GHOST != 0)
            .map(|c| c & !GHOST)
            .any(|c| c != 0 && c <= off && self.slab_ghost_object(c, off))
    }
}
