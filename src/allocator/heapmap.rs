// SPDX-License-Identifier: GPL-2.0

//! A page-level picture of the region (the debugfs `heapmap` file).
//!
//! [`Heap::for_each_page`] walks the physical blocks once and reports, for
//! every page, what holds the majority of its bytes: the metadata area, a
//! free block, a large allocation, or a slab of some cache. Slab spans are
//! exact-fit blocks rather than page-aligned, so a page at a span boundary is
//! shared; the majority rule keeps the picture readable. Read-only, linear in
//! blocks plus pages, and bounded like `validate()`: damaged metadata ends
//! the walk with the [`Corruption`] it met.

use super::{
    config::{NUM_CACHES, PAGE_SIZE},
    error::Corruption,
    heap::Heap,
};

/// What holds the majority of a page's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageUse {
    /// The metadata area at the start of the region.
    Metadata,
    /// A free large block.
    Free,
    /// A live large allocation.
    Large,
    /// A slab of built-in size class `n` (0 = size-8 ... 9 = size-4096).
    Class(usize),
    /// A slab of the custom cache in slot `n`.
    Custom(usize),
}

impl PageUse {
    /// One character per kind, as printed by the `heapmap` file: `M` metadata,
    /// `.` free, `L` large, `0`..`9` size classes, `c` custom caches.
    pub fn symbol(self) -> char {
        match self {
            Self::Metadata => 'M',
            Self::Free => '.',
            Self::Large => 'L',
            Self::Class(n) => char::from_digit(n as u32, 10).unwrap_or('?'),
            Self::Custom(_) => 'c',
        }
    }
}

/// One slab and how full it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlabOccupancy {
    /// Offset of the slab span from the heap start.
    pub offset: usize,
    /// Cache slot (0..10 are the size classes).
    pub cache: usize,
    /// Objects in use.
    pub inuse: usize,
    /// Objects the slab holds.
    pub capacity: usize,
}

/// The page being filled: its number and the largest contribution so far.
struct Pending {
    page: usize,
    best: PageUse,
    best_bytes: usize,
}

impl Heap {
    /// What a physical block at `off` is, and the slab it is, if one.
    fn block_use(&self, off: usize) -> Result<(PageUse, usize, Option<SlabOccupancy>), Corruption> {
        let b = self.block(off)?;
        if !b.used {
            return Ok((PageUse::Free, b.end(), None));
        }
        if !b.slab {
            return Ok((PageUse::Large, b.end(), None));
        }
        let d = self.slab_desc(off)?;
        let cache = d.cache as usize;
        let kind = if cache < NUM_CACHES {
            PageUse::Class(cache)
        } else {
            PageUse::Custom(cache)
        };
        let occ = SlabOccupancy {
            offset: off,
            cache,
            inuse: d.inuse as usize,
            capacity: d.capacity as usize,
        };
        Ok((kind, b.end(), Some(occ)))
    }

    /// Calls `page(n, use)` for every page of the region in order (`use`
    /// holds most of the page's bytes; a tie goes to the lower address), and
    /// `slab(occupancy)` for every slab in address order.
    pub fn for_each_page(
        &self,
        mut page: impl FnMut(usize, PageUse),
        mut slab: impl FnMut(SlabOccupancy),
    ) -> Result<(), Corruption> {
        let mut pending: Option<Pending> = None;
        // Adds `bytes` of `kind` to page `p`, emitting finished pages.
        let mut add = |p: usize, kind: PageUse, bytes: usize| match &mut pending {
            Some(cur) if cur.page == p => {
                if bytes > cur.best_bytes {
                    cur.best = kind;
                    cur.best_bytes = bytes;
                }
            }
            _ => {
                if let Some(done) = pending.take() {
                    page(done.page, done.best);
                }
                pending = Some(Pending {
                    page: p,
                    best: kind,
                    best_bytes: bytes,
                });
            }
        };
        // Spreads `start..end` of `kind` over the pages it touches.
        let mut cover = |start: usize, end: usize, kind: PageUse| {
            let mut at = start;
            while at < end {
                let p = at / PAGE_SIZE;
                let page_end = (p + 1).saturating_mul(PAGE_SIZE).min(end);
                add(p, kind, page_end - at);
                at = page_end;
            }
        };
        cover(0, self.blocks_start, PageUse::Metadata);
        let len = self.len();
        let mut off = self.blocks_start;
        // `block` refuses a block shorter than `MIN_BLOCK` or past the
        // region's end, so each step moves up and the walk ends.
        while off < len {
            let (kind, end, occ) = self.block_use(off)?;
            cover(off, end, kind);
            if let Some(o) = occ {
                slab(o);
            }
            off = end;
        }
        if let Some(done) = pending {
            page(done.page, done.best);
        }
        Ok(())
    }
}
