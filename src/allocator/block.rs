// SPDX-License-Identifier: GPL-2.0

//! The 16-byte in-band block header of the large-block allocator.
//!
//! Layout (four little `u32` words at the block start):
//!
//! | word | meaning                                                        |
//! |------|----------------------------------------------------------------|
//! | 0    | block size in bytes (multiple of 16, header included) + state bits (bit 0 used, bit 1 slab span) |
//! | 1    | size of the previous physical block (boundary tag, 0 for the first block) |
//! | 2    | requested size for used large blocks, 0 otherwise            |
//! | 3    | check word: `BLOCK_MAGIC` mixed with the offset and words 0-2  |
//!
//! The check word includes the block's own offset, so a header copied to
//! another place, a stale pointer or a pointer into the middle of a block
//! fails the check. There is no footer: the boundary tag is the previous
//! block's size kept in the next block's header. Free blocks keep their
//! next/prev free-list links (region offsets, 0 = none) in payload words 4
//! and 5, which is why the minimum block is 32 bytes.

use super::config::{BLOCK_ALIGN, BLOCK_MAGIC, HEADER_SIZE, MIN_BLOCK};
use super::error::{Corruption, CorruptionKind};
use super::heap::Heap;

/// State bit: block is allocated.
const F_USED: u32 = 1;
/// State bit: block is a slab span.
const F_SLAB: u32 = 2;
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
}

impl Block {
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

/// Check word of a header at `off` with words 0..=2.
fn check_word(off: usize, w0: u32, w1: u32, w2: u32) -> u32 {
    let mut h = BLOCK_MAGIC ^ (off as u32).wrapping_mul(0x9e37_79b1);
    h ^= w0.rotate_left(5).wrapping_mul(0x85eb_ca6b);
    h ^= w1.rotate_left(13).wrapping_mul(0xc2b2_ae35);
    h ^= w2.rotate_left(21).wrapping_mul(0x27d4_eb2f);
    h ^ (h >> 16)
}

impl Heap {
    /// Reads and checks the header at `off`.
    pub(super) fn block(&self, off: usize) -> Result<Block, Corruption> {
        let bad = |kind, detail| Err(Corruption::new(kind, off, detail));
        if off < self.blocks_start || !off.is_multiple_of(BLOCK_ALIGN) {
            return bad(CorruptionKind::FreeListOutOfBounds, off as u64);
        }
        let (Some(w0), Some(w1), Some(w2), Some(w3)) = (
            self.mem.read::<u32>(off),
            self.mem.read::<u32>(off.wrapping_add(4)),
            self.mem.read::<u32>(off.wrapping_add(8)),
            self.mem.read::<u32>(off.wrapping_add(12)),
        ) else {
            return bad(CorruptionKind::FreeListOutOfBounds, off as u64);
        };
        if check_word(off, w0, w1, w2) != w3 {
            return bad(CorruptionKind::BadMagic, u64::from(w3));
        }
        let size = (w0 & !F_MASK) as usize;
        let fits = off.checked_add(size).is_some_and(|e| e <= self.mem.len());
        if size < MIN_BLOCK || !fits {
            return bad(CorruptionKind::BadSize, size as u64);
        }
        Ok(Block {
            off,
            size,
            used: w0 & F_USED != 0,
            slab: w0 & F_SLAB != 0,
            prev_size: w1 as usize,
            req: w2,
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
        let w1 = b.prev_size as u32;
        let w2 = b.req;
        let off = b.off;
        self.mem.wr32(off, w0);
        self.mem.wr32(off.wrapping_add(4), w1);
        self.mem.wr32(off.wrapping_add(8), w2);
        self.mem
            .wr32(off.wrapping_add(12), check_word(off, w0, w1, w2));
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

    /// Rewrites the boundary tag of the block starting at `off` (if any).
    pub(super) fn set_prev_size_at(
        &mut self,
        off: usize,
        prev_size: usize,
    ) -> Result<(), Corruption> {
        if off >= self.mem.len() {
            return Ok(());
        }
        let mut n = self.block(off)?;
        n.prev_size = prev_size;
        self.set_block(&n);
        Ok(())
    }
}
