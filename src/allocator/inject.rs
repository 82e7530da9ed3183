// SPDX-License-Identifier: GPL-2.0

//! Corruption injection: damage exactly one piece of metadata of a live
//! allocation, for tests that prove the damage is detected (debugfs
//! `inject`, present only with `fault_injection=1`; host tests in
//! `src/tests/inject.rs`).
//!
//! Only the core knows its layout, so the damage is done here. Each
//! injection changes one thing and leaves everything else intact:
//!
//! | kind       | large block                         | slab object                          |
//! |------------|-------------------------------------|--------------------------------------|
//! | `header`   | size word of its block header (the check word is left stale): `bad block magic` at the header | magic of the slab descriptor of its span: `bad slab magic` at the span |
//! | `boundary` | boundary tag (previous size) in the next block's header, with a fresh check word: `boundary tag mismatch` at the next block | the same for the slab span holding it |
//! | `freelist` | frees it, then the next link of the free block now holding it: `free-list link out of bounds` | frees it, then its slab free-list link: `slab free-list damage` (or the large free block if its slab was returned) |
//! | `overflow` | complements N bytes past the usable size (the next block's header) | complements N bytes past the object (the next object: detected only if that one is free and linked, or if it reaches slab metadata) |
//!
//! [`Heap::inject_counter`] (core API only, for the host tests of
//! `validate`) skews one of the heap's own counters instead: an accounting
//! bug, not damage to the region, which `validate` reports as a
//! statistics mismatch.
//!
//! Injection never follows damaged metadata itself: every lookup it needs
//! is checked, and a heap that is already damaged there refuses with
//! [`InjectError::Corrupted`].

use super::block::Block;
use super::config::HEADER_SIZE;
use super::error::{Corruption, FreeError};
use super::heap::Heap;
use super::slab::SlabDesc;

/// A free-list link value that lies outside every heap (the region is at
/// most 1 GiB).
const BAD_LINK: u32 = 0xffff_fff0;

/// Why an injection was refused; the heap is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectError {
    /// The pointer is not the start of a live allocation.
    NotLive,
    /// `boundary`: the block is the last one in the heap, it has no
    /// successor carrying a boundary tag.
    NoNeighbour,
    /// `overflow`: N is 0 or the bytes would leave the heap.
    OutOfRange,
    /// `freelist`: the free itself failed.
    Free(FreeError),
    /// The metadata to damage is already damaged.
    Corrupted(Corruption),
}

impl core::fmt::Display for InjectError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InjectError::NotLive => f.write_str("not a live allocation"),
            InjectError::NoNeighbour => f.write_str("last block of the heap: no boundary tag"),
            InjectError::OutOfRange => f.write_str("overflow length is 0 or leaves the heap"),
            InjectError::Free(e) => write!(f, "free before damage failed: {e}"),
            InjectError::Corrupted(c) => write!(f, "already damaged: {c}"),
        }
    }
}

impl From<Corruption> for InjectError {
    fn from(c: Corruption) -> Self {
        InjectError::Corrupted(c)
    }
}

/// What an injection damaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Injected {
    /// The structure that was damaged.
    pub what: &'static str,
    /// Region offset of the first damaged byte.
    pub offset: usize,
    /// Number of damaged bytes.
    pub len: usize,
}

/// A counter of the heap's own accounting, kept outside the region, that
/// [`Heap::inject_counter`] skews. `validate` compares each with what its
/// walk counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Physical blocks.
    Blocks,
    /// Free blocks.
    FreeBlocks,
    /// Bytes of free blocks.
    FreeBytes,
    /// Slab spans.
    SlabSpans,
    /// Bytes of slab spans.
    SlabSpanBytes,
    /// Bytes of slab object slots.
    SlabCapacityBytes,
    /// Bytes of taken slab object slots.
    SlabUsedBytes,
    /// Allocations made (live = made - freed).
    TotalAllocs,
    /// Requested bytes of live allocations.
    RequestedLive,
    /// Large blocks parked in per-CPU caches.
    ParkedBlocks,
    /// Bytes of parked large blocks.
    ParkedBytes,
}

/// The allocation behind a pointer.
enum Owner {
    /// A large block.
    Large(Block),
    /// A slab object; the span holding it.
    Slab(Block),
}

impl Heap {
    /// The live allocation starting at `ptr`.
    fn owner(&self, ptr: *const u8) -> Result<(usize, Owner), InjectError> {
        let off = self
            .region_offset(ptr)
            .filter(|&o| o >= self.blocks_start)
            .ok_or(InjectError::NotLive)?;
        self.usable_size(ptr).ok_or(InjectError::NotLive)?;
        if let Some(span) = self.pagemap_lookup(off)? {
            return Ok((off, Owner::Slab(span)));
        }
        let b = self.block(off.wrapping_sub(HEADER_SIZE))?;
        Ok((off, Owner::Large(b)))
    }

    /// Adds `delta` (wrapping) to the counter `c`: the heap's accounting
    /// no longer matches its memory, as after an accounting bug. Adding
    /// `-delta` undoes it.
    pub fn inject_counter(&mut self, c: Counter, delta: i64) {
        let d = delta as isize;
        match c {
            Counter::Blocks => skew(&mut self.tlsf.block_count, d),
            Counter::FreeBlocks => skew(&mut self.tlsf.free_count, d),
            Counter::FreeBytes => skew(&mut self.tlsf.free_bytes, d),
            Counter::SlabSpans => skew(&mut self.slabs.spans, d),
            Counter::SlabSpanBytes => skew(&mut self.slabs.span_bytes, d),
            Counter::SlabCapacityBytes => skew(&mut self.slabs.cap_bytes, d),
            Counter::SlabUsedBytes => skew(&mut self.slabs.used_bytes, d),
            Counter::TotalAllocs => skew64(&mut self.ctr.total_allocs, delta),
            Counter::RequestedLive => skew64(&mut self.ctr.requested_live, delta),
            Counter::ParkedBlocks => skew64(&mut self.mags.large_cached, delta),
            Counter::ParkedBytes => skew64(&mut self.mags.large_cached_bytes, delta),
        }
    }

    /// Damages the header of the allocation at `ptr`: the block header's
    /// size word (large) or the slab descriptor's magic (slab object).
    pub fn inject_header(&mut self, ptr: *const u8) -> Result<Injected, InjectError> {
        match self.owner(ptr)?.1 {
            Owner::Large(b) => {
                let w0 = self.mem.rd32(b.off);
                self.mem.wr32(b.off, w0 ^ 0x100);
                Ok(Injected {
                    what: "block header size word",
                    offset: b.off,
                    len: 4,
                })
            }
            Owner::Slab(span) => {
                let at = span.off.wrapping_add(HEADER_SIZE);
                let magic = self.mem.rd32(at);
                self.mem.wr32(at, magic ^ 0x0101_0101);
                Ok(Injected {
                    what: "slab descriptor magic",
                    offset: at,
                    len: 4,
                })
            }
        }
    }

    /// Damages the boundary tag that describes the allocation at `ptr` (or
    /// the slab span holding it): the previous-size word in the next
    /// block's header (which the check word does not cover), so that exactly
    /// the tag disagrees.
    pub fn inject_boundary(&mut self, ptr: *const u8) -> Result<Injected, InjectError> {
        let b = match self.owner(ptr)?.1 {
            Owner::Large(b) | Owner::Slab(b) => b,
        };
        let Some(mut n) = self.next_block(&b)? else {
            return Err(InjectError::NoNeighbour);
        };
        n.prev_size = b.size.wrapping_add(16);
        self.set_block(&n);
        Ok(Injected {
            what: "boundary tag of the next block",
            offset: n.off.wrapping_add(4),
            len: 4,
        })
    }

    /// Frees the allocation at `ptr`, then damages the free-list link it now
    /// carries: its slab free-list link, or the next link of the free large
    /// block that holds it (after coalescing, or after its slab went back to
    /// the large pool).
    pub fn inject_freelist(&mut self, ptr: *mut u8) -> Result<Injected, InjectError> {
        let (off, _) = self.owner(ptr)?;
        self.free(ptr).map_err(InjectError::Free)?;
        if let Some(span) = self.pagemap_lookup(off)? {
            // Still in a live slab: the object heads the slab's free list.
            let d: SlabDesc = self.slab_desc(span.off)?;
            if d.free_head as usize == off {
                let link = off.wrapping_add(self.cache(d.cache as usize).link_off());
                self.mem.wr32(link, BAD_LINK);
                return Ok(Injected {
                    what: "slab free-list link",
                    offset: link,
                    len: 4,
                });
            }
        }
        let b = self.block_containing(off)?;
        let at = b.off.wrapping_add(HEADER_SIZE);
        self.mem.wr32(at, BAD_LINK);
        Ok(Injected {
            what: "free-list next link of a free block",
            offset: at,
            len: 4,
        })
    }

    /// Complements `n` bytes right after the usable size of the allocation
    /// at `ptr`, as a buffer overflow by its user would.
    pub fn inject_overflow(&mut self, ptr: *const u8, n: usize) -> Result<Injected, InjectError> {
        let (off, _) = self.owner(ptr)?;
        let usable = self.usable_size(ptr).ok_or(InjectError::NotLive)?;
        let start = off.checked_add(usable).ok_or(InjectError::OutOfRange)?;
        let end = start.checked_add(n).ok_or(InjectError::OutOfRange)?;
        if n == 0 || end > self.mem.len() {
            return Err(InjectError::OutOfRange);
        }
        for at in start..end {
            let byte = self.mem.read::<u8>(at).unwrap_or(0);
            self.mem.write::<u8>(at, !byte);
        }
        Ok(Injected {
            what: "bytes past the usable size",
            offset: start,
            len: n,
        })
    }

    /// Writes `len` bytes `byte` at `offset` (may be negative) from the
    /// allocation at `ptr`, as a buggy user would: the range must stay in
    /// the allocation's slot (slab object, red zones included) or block
    /// payload, else [`InjectError::OutOfRange`]. With `after_free` the
    /// allocation is freed first (a write after free).
    pub fn scribble(
        &mut self,
        ptr: *mut u8,
        offset: isize,
        len: usize,
        byte: u8,
        after_free: bool,
    ) -> Result<Injected, InjectError> {
        let (off, _) = self.owner(ptr)?;
        let (lo, hi) = self.slot_bounds(off).ok_or(InjectError::NotLive)?;
        let start = off
            .checked_add_signed(offset)
            .ok_or(InjectError::OutOfRange)?;
        let end = start.checked_add(len).ok_or(InjectError::OutOfRange)?;
        if len == 0 || start < lo || end > hi {
            return Err(InjectError::OutOfRange);
        }
        if after_free {
            self.free(ptr).map_err(InjectError::Free)?;
        }
        self.mem.fill(start, len, byte);
        Ok(Injected {
            what: if after_free {
                "bytes of a freed allocation"
            } else {
                "bytes of a live allocation's slot"
            },
            offset: start,
            len,
        })
    }

    /// The physical block containing region offset `off` (a checked walk
    /// from the first block).
    fn block_containing(&self, off: usize) -> Result<Block, Corruption> {
        let mut b = self.block(self.blocks_start)?;
        while b.end() <= off {
            match self.next_block(&b)? {
                Some(n) => b = n,
                None => break,
            }
        }
        Ok(b)
    }
}

/// Adds `d` to `v`, wrapping.
fn skew(v: &mut usize, d: isize) {
    *v = v.wrapping_add_signed(d);
}

/// Adds `d` to `v`, wrapping.
fn skew64(v: &mut u64, d: i64) {
    *v = v.wrapping_add_signed(d);
}
