// SPDX-License-Identifier: GPL-2.0

//! The 16-byte in-band block header of the large-block allocator.
//!
//! Layout (four little `u32` words at the block start):
//!
//! | word | meaning                                                        |
//! |------|----------------------------------------------------------------|
//! | 0    | block size in bytes (multiple of 16, header included) + state bits (bit 0 used, bit 1 slab span, bit 2 cached) |
//! | 1    | size of the previous physical block (boundary tag, 0 for the first block) |
//! | 2    | requested size for used large blocks, 0 otherwise            |
//! | 3    | check word: `BLOCK_MAGIC` mixed with the offset and words 0 and 2 |
//!
//! The check word includes the block's own offset, so a header copied to
//! another place, a stale pointer or a pointer into the middle of a block
//! fails the check. There is no footer: the boundary tag is the previous
//! block's size kept in the next block's header. Free blocks keep their
//! next/prev free-list links (region offsets, 0 = none) in payload words 4
//! and 5, which is why the minimum block is 32 bytes.
//!
//! Sharing with the per-CPU fast path (`large_cache`). A used large block
//! may sit in a CPU's cache of freed blocks, marked by the *cached* bit,
//! which the fast path sets and clears with a compare-and-swap on word 0
//! without the heap lock; for a block it hands out it also rewrites words
//! 2 and 3 together, as one 64-bit store. The locked heap, for its part,
//! changes nothing in the header of a used block it does not own but the
//! boundary tag (word 1, when a neighbour splits or merges). So the check
//! word covers neither the cached bit nor word 1, words 2 and 3 are read
//! and written as one atomic `u64`, and each side writes only words the
//! other one never writes: no update is lost and no check word is ever
//! seen half written. A damaged boundary tag is still found, as a
//! `BoundaryTagMismatch` against the previous block's verified size.

use core::sync::atomic::Ordering::Relaxed;

use super::config::{BLOCK_MAGIC, HEADER_SIZE, MIN_BLOCK};
use super::error::{Corruption, CorruptionKind};
use super::heap::Heap;

/// State bit: block is allocated.
const F_USED: u32 = 1;
/// State bit: block is a slab span.
const F_SLAB: u32 = 2;
/// State bit: a used large block held by a per-CPU cache (`large_cache`);
/// not covered by the check word.
pub(super) const F_CACHED: u32 = 4;
/// Mask of the state bits in word 0.
const F_MASK: u32 = 0xf;

/// Decoded block header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Block {
    /// Region offset of the header.
    pub(super) off: usize,
    /// Block size including the header.
    pub(super) size: usize,
    /// Allocated (large allocation or slab span).
    pub(super) used: bool,
    /// Slab span.
    pub(super) slab: bool,
    /// Size of the previous physical block, 0 for the first one.
    pub(super) prev_size: usize,
    /// Requested size of a used large block.
    pub(super) req: u32,
    /// Held by a per-CPU cache (used, but not live for its user).
    pub(super) cached: bool,
}

impl Block {
    /// A free block at `off` of `size` bytes whose predecessor has
    /// `prev_size` bytes (no slab, no request, not parked).
    pub(super) fn free(off: usize, size: usize, prev_size: usize) -> Block {
        Block {
            off,
            size,
            used: false,
            slab: false,
            prev_size,
            req: 0,
            cached: false,
        }
    }

    /// Offset just past the block.
    pub(super) fn end(&self) -> usize {
        self.off.wrapping_add(self.size)
    }

    /// Payload offset.
    pub(super) fn payload(&self) -> usize {
        self.off.wrapping_add(HEADER_SIZE)
    }

    /// Payload size.
    pub(super) fn payload_size(&self) -> usize {
        self.size.saturating_sub(HEADER_SIZE)
    }
}

/// Check word of a header at `off` with words 0 and 2 (the cached bit of
/// word 0 left out; see the module doc). Public for the tests that forge
/// a header the check word cannot tell apart.
pub fn header_check_word(off: usize, w0: u32, w2: u32) -> u32 {
    let w0 = w0 & !F_CACHED;
    let mut h = BLOCK_MAGIC ^ (off as u32).wrapping_mul(0x9e37_79b1);
    h ^= w0.rotate_left(5).wrapping_mul(0x85eb_ca6b);
    h ^= w2.rotate_left(21).wrapping_mul(0x27d4_eb2f);
    h ^ (h >> 16)
}

/// Words 2 and 3 of a header as the one `u64` they are stored in.
pub(super) fn req_check_pair(off: usize, w0: u32, w2: u32) -> u64 {
    u64::from(w2) | u64::from(header_check_word(off, w0, w2)) << 32
}

/// Word 0 of a used, non-slab large block of `size` bytes (not cached).
pub(super) fn used_large_w0(size: usize) -> u32 {
    (size as u32 & !F_MASK) | F_USED
}

/// Decodes word 0 into `(size, used, slab, cached)`.
pub(super) fn decode_w0(w0: u32) -> (usize, bool, bool, bool) {
    (
        (w0 & !F_MASK) as usize,
        w0 & F_USED != 0,
        w0 & F_SLAB != 0,
        w0 & F_CACHED != 0,
    )
}

impl Heap {
    /// Reads and checks the header at `off`.
    pub(super) fn block(&self, off: usize) -> Result<Block, Corruption> {
        let bad = |kind, detail| Err(Corruption::new(kind, off, detail));
        // `header` checks the alignment (16, `BLOCK_ALIGN`) and the bounds.
        let words = self.mem.header(off).filter(|_| off >= self.blocks_start);
        let Some((a0, a1, a23)) = words else {
            return bad(CorruptionKind::FreeListOutOfBounds, off as u64);
        };
        let w0 = a0.load(Relaxed);
        let w1 = a1.load(Relaxed);
        let w23 = a23.load(Relaxed);
        let (w2, w3) = (w23 as u32, (w23 >> 32) as u32);
        if header_check_word(off, w0, w2) != w3 {
            return bad(CorruptionKind::BadMagic, u64::from(w3));
        }
        let (size, used, slab, cached) = decode_w0(w0);
        let fits = off.checked_add(size).is_some_and(|e| e <= self.mem.len());
        if size < MIN_BLOCK || !fits {
            return bad(CorruptionKind::BadSize, size as u64);
        }
        Ok(Block {
            off,
            size,
            used,
            slab,
            prev_size: w1 as usize,
            req: w2,
            cached,
        })
    }

    /// Writes the header of `b` (with a fresh check word).
    pub(super) fn set_block(&mut self, b: &Block) {
        let mut w0 = (b.size as u32) & !F_MASK;
        if b.used {
            w0 |= F_USED;
        }
        if b.slab {
            w0 |= F_SLAB;
        }
        if b.cached {
            w0 |= F_CACHED;
        }
        let off = b.off;
        if let Some((a0, a1, a23)) = self.mem.header(off) {
            a0.store(w0, Relaxed);
            a1.store(b.prev_size as u32, Relaxed);
            a23.store(req_check_pair(off, w0, b.req), Relaxed);
        }
    }

    /// The block physically after `b`, if any.
    pub(super) fn next_block(&self, b: &Block) -> Result<Option<Block>, Corruption> {
        let end = b.end();
        if end >= self.mem.len() {
            return Ok(None);
        }
        let n = self.block(end)?;
        if n.prev_size != b.size {
            return Err(Corruption::new(
                CorruptionKind::BoundaryTagMismatch,
                end,
                n.prev_size as u64,
            ));
        }
        Ok(Some(n))
    }

    /// The block physically before `b`, if any (through the boundary tag).
    pub(super) fn prev_block(&self, b: &Block) -> Result<Option<Block>, Corruption> {
        if b.prev_size == 0 {
            if b.off == self.blocks_start {
                return Ok(None);
            }
            return Err(Corruption::new(
                CorruptionKind::BoundaryTagMismatch,
                b.off,
                0,
            ));
        }
        let Some(p) = b
            .off
            .checked_sub(b.prev_size)
            .filter(|&p| p >= self.blocks_start)
        else {
            return Err(Corruption::new(
                CorruptionKind::BoundaryTagMismatch,
                b.off,
                b.prev_size as u64,
            ));
        };
        let pb = self.block(p)?;
        if pb.size != b.prev_size {
            return Err(Corruption::new(
                CorruptionKind::BoundaryTagMismatch,
                b.off,
                b.prev_size as u64,
            ));
        }
        Ok(Some(pb))
    }

    /// Rewrites the boundary tag of the block starting at `off` (if any),
    /// after checking its header. Only word 1 is written: the block may be
    /// used and owned by a user or a per-CPU cache, which change words 0, 2
    /// and 3 without the lock.
    pub(super) fn set_prev_size_at(
        &mut self,
        off: usize,
        prev_size: usize,
    ) -> Result<(), Corruption> {
        if off >= self.mem.len() {
            return Ok(());
        }
        let n = self.block(off)?;
        self.set_prev_size_of(&n, prev_size);
        Ok(())
    }

    /// Rewrites the boundary tag (word 1 only, as above) of `n`, a block
    /// this locked operation has already read with [`Heap::block`]: its
    /// header is not checked a second time.
    pub(super) fn set_prev_size_of(&mut self, n: &Block, prev_size: usize) {
        self.mem.wr32(n.off.wrapping_add(4), prev_size as u32);
    }
}
