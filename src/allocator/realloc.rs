// SPDX-License-Identifier: GPL-2.0

//! Resizing an allocation: [`Heap::realloc`], and for a caller that makes
//! the data move itself, [`Heap::resize_in_place`] and the three steps
//! [`Heap::resize_start`], [`Heap::resize_finish`] and
//! [`Heap::alloc_moved_retryable`].
//!
//! `realloc` resizes in place when it can: a slab object while the new size
//! fits its usable size; a large block shrunk (the tail split off) or grown
//! into a free successor; a large block moved down into a free predecessor
//! (with the successor, if free) when the three together are large enough,
//! the payload moved with `memmove` (see `large`). Otherwise it allocates
//! the new block as low in the heap as cheaply possible
//! ([`Placement::LowAddress`]), copies and frees, all with `&mut self`.
//!
//! The kernel glue holds the heap's IRQ-safe spinlock for every `Heap`
//! call, so it must not copy a large payload inside one, with interrupts
//! off. It makes the same moves in steps, as `krealloc` does, and copies
//! without the lock: `resize_start` resizes in place or begins the move
//! down (the merged block is already the caller's, so nothing else can be
//! placed in it while the lock is dropped), the caller moves the payload,
//! and `resize_finish` cuts the block to size; or the caller allocates
//! with `alloc_moved_retryable` (the same low placement), copies and frees.
//! `realloc` is these steps run back to back, so a growing buffer moves in
//! the kernel as in the host's trace replay.

use core::ptr::NonNull;

use super::block::Block;
use super::config::{MAX_SIZE, MIN_SIZE};
use super::error::{AllocError, Corruption, FreeError, ReallocError};
use super::flags::Flags;
use super::heap::Heap;
use super::large::Placement;

/// A resize that [`Heap::resize_start`] began by moving a large block down
/// into its free predecessor. The new block, from [`MoveDown::dst`], is
/// live and spans the old one; the caller moves [`MoveDown::count`] bytes
/// from [`MoveDown::src`] to `dst` (the ranges overlap: `memmove`), then
/// hands this back to [`Heap::resize_finish`], which cuts the block to
/// size. The heap may be used (and its lock dropped) in between.
#[must_use = "move the payload, then pass this to Heap::resize_finish"]
#[derive(Debug, PartialEq, Eq)]
pub struct MoveDown {
    /// The merged block (used, header written, not yet cut to size).
    block: Block,
    /// The block size it is cut to.
    need: usize,
    /// Region offset of the payload before the move.
    src_off: usize,
    src: NonNull<u8>,
    dst: NonNull<u8>,
    len: usize,
}

impl MoveDown {
    /// Where the payload is now (the old pointer).
    pub fn src(&self) -> *mut u8 {
        self.src.as_ptr()
    }

    /// Where it goes: the resized allocation.
    pub fn dst(&self) -> NonNull<u8> {
        self.dst
    }

    /// How many bytes to move (the old block's payload).
    pub fn count(&self) -> usize {
        self.len
    }
}

/// What [`Heap::resize_start`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Resize {
    /// Resized in place: the pointer, unchanged.
    Done(NonNull<u8>),
    /// Moved down: the caller moves the payload (see [`MoveDown`]).
    MoveDown(MoveDown),
    /// Needs a new allocation; nothing changed. The caller allocates
    /// ([`Heap::alloc_moved_retryable`]), copies `min(usable, new_size)`
    /// bytes and frees the old pointer.
    Move {
        /// Usable bytes of the old allocation.
        usable: usize,
    },
}

/// What a resize without a copy came to.
enum Step {
    /// Resized in place: the pointer.
    Done(NonNull<u8>),
    /// Moved down, the payload not yet.
    MoveDown(MoveDown),
    /// Needs a new allocation; the old one, at region offset `off`, has
    /// `usable` bytes and is unchanged.
    Move { off: usize, usable: usize },
}

impl Heap {
    /// Resizes an allocation; in place when possible (a large block also
    /// moves down into a free predecessor, see `large`), otherwise
    /// allocates, placing a large block as low as cheaply possible, copies
    /// and frees: [`Heap::resize_start`], then the move down and
    /// [`Heap::resize_finish`], or a new block placed as by
    /// [`Heap::alloc_moved_retryable`] (a failure counted). On failure the old
    /// allocation is untouched; if freeing it after the copy finds damage
    /// (debug checks), the new block is freed again (one allocation and
    /// one free in the counters) and the error returned. Damage found when
    /// cutting a block moved down to size leaves it whole (counted in
    /// `corruptions`), and it is returned: the payload has moved. A null
    /// `ptr` behaves like `alloc`. A moved block has the default alignment
    /// of `alloc` (16, or 8 for sizes up to 8); the original alignment is
    /// kept only when resized in place. A moved allocation counts as one
    /// allocation plus one free in the statistics.
    pub fn realloc(&mut self, ptr: *mut u8, new_size: usize) -> Result<NonNull<u8>, ReallocError> {
        if ptr.is_null() {
            return self
                .alloc_flags(new_size, MIN_SIZE, Flags::NONE)
                .map_err(ReallocError::Alloc);
        }
        let (off, old_usable) = match self.resize_step(ptr, new_size, true)? {
            Step::Done(p) => return Ok(p),
            Step::MoveDown(m) => {
                self.mem.copy(m.src_off, m.block.payload(), m.len);
                // Damage found when cutting the block to size leaves it
                // whole, still the resized allocation (counted in
                // `corruptions`).
                let p = m.dst;
                let _ = self.resize_finish(m);
                return Ok(p);
            }
            Step::Move { off, usable } => (off, usable),
        };
        // The new block goes as low as cheaply possible: a growing buffer
        // left high up would set the footprint (see `large`).
        let new = self
            .alloc_placed(new_size, Placement::LowAddress)
            .map_err(ReallocError::Alloc)?;
        let new_off = self.block_area_offset(new.as_ptr()).unwrap_or(0);
        self.mem.copy(off, new_off, old_usable.min(new_size));
        if let Err(e) = self.free(ptr) {
            // The old block's debug checks (red zone, poison, sanity) found
            // damage only now: give the new block back, so the caller, who
            // keeps `ptr`, loses nothing.
            let _ = self.free(new.as_ptr());
            return Err(ReallocError::Free(e));
        }
        Ok(new)
    }

    /// Resizes the live allocation at `ptr` to `new_size` bytes if that
    /// needs no data moved: a slab object whose usable size holds
    /// `new_size`, a large block shrunk or grown into a free successor.
    /// `Some(ptr)` when done, `None` when it takes a new allocation
    /// (nothing changed: the caller allocates, copies
    /// `min(usable_size(ptr), new_size)` bytes and frees `ptr`). Errors as
    /// [`Heap::realloc`]: a pointer that is not a live allocation (null
    /// included) is refused and counted as an invalid free, a `new_size`
    /// of 0 as a failed allocation.
    pub fn resize_in_place(
        &mut self,
        ptr: *mut u8,
        new_size: usize,
    ) -> Result<Option<NonNull<u8>>, ReallocError> {
        match self.resize_step(ptr, new_size, false)? {
            Step::Done(p) => Ok(Some(p)),
            // Not begun without `backward`.
            Step::MoveDown(_) | Step::Move { .. } => Ok(None),
        }
    }

    /// The first step of a resize whose data move the caller makes (see
    /// the module doc): in place as [`Heap::resize_in_place`]; else a
    /// large block grown to more than [`MAX_SIZE`] bytes is moved down into
    /// a free predecessor, as [`Heap::realloc`] does, and the caller moves
    /// the payload and calls [`Heap::resize_finish`] ([`Resize::MoveDown`]);
    /// else [`Resize::Move`], nothing changed. Errors as for `realloc`.
    pub fn resize_start(&mut self, ptr: *mut u8, new_size: usize) -> Result<Resize, ReallocError> {
        Ok(match self.resize_step(ptr, new_size, true)? {
            Step::Done(p) => Resize::Done(p),
            Step::MoveDown(m) => Resize::MoveDown(m),
            Step::Move { usable, .. } => Resize::Move { usable },
        })
    }

    /// The last step of a move down, once the payload is at `m.dst()`:
    /// cuts the block to size and gives the resized allocation (`m.dst()`).
    /// Counts the block's usable size (`usable_total`). If its header or
    /// the block after it was damaged meanwhile, the block stays whole,
    /// still the resized allocation at `m.dst()`, and the damage is
    /// counted in `corruptions` and returned.
    pub fn resize_finish(&mut self, m: MoveDown) -> Result<NonNull<u8>, Corruption> {
        let (r, usable) = match self.large_resize_backward_finish(m.block, m.need) {
            Ok(b) => (Ok(m.dst), b.payload_size()),
            Err(c) => (Err(self.note_corruption(c)), m.block.payload_size()),
        };
        self.ctr.usable_total = self.ctr.usable_total.wrapping_add(usable as u64);
        r
    }

    /// The new allocation of a resize that has to move (after
    /// [`Resize::Move`]): `new_size` bytes with the default alignment, as
    /// [`Heap::alloc_flags_retryable`] (running out of memory is returned
    /// uncounted, for the caller's reclaim and retry), but a large block is
    /// placed as low as cheaply possible, as `realloc` places it.
    pub fn alloc_moved_retryable(&mut self, new_size: usize) -> Result<NonNull<u8>, AllocError> {
        self.alloc_retryable(new_size, MIN_SIZE, Flags::NONE, Placement::LowAddress)
    }

    /// The part of a resize that needs no new allocation; with `backward`,
    /// a large block may move down into a free predecessor.
    fn resize_step(
        &mut self,
        ptr: *mut u8,
        new_size: usize,
        backward: bool,
    ) -> Result<Step, ReallocError> {
        if new_size == 0 {
            return Err(ReallocError::Alloc(self.fail_alloc(AllocError::ZeroSize)));
        }
        let Some(off) = self.block_area_offset(ptr) else {
            return Err(ReallocError::Free(self.reject_free(FreeError::OutsideHeap)));
        };
        let usable = match self.pagemap_lookup(off) {
            Ok(Some(span)) => match self.slab_live_usable(&span, off) {
                Ok(usable) if new_size <= usable => return Ok(Step::Done(self.mem.ptr(off))),
                r => r,
            },
            Ok(None) => match self.large_at(off) {
                // A debug layout (red zone, owner record) is never resized in place.
                Ok(b) if self.dbg.flags.changes_layout() => Ok(self.large_usable(&b)),
                Ok(b) => {
                    let req = new_size.min(u32::MAX as usize) as u32;
                    match self.large_resize_in_place(b, new_size, req) {
                        Ok(Some(nb)) => {
                            self.ctr.requested_live = self
                                .ctr
                                .requested_live
                                .wrapping_sub(u64::from(b.req))
                                .wrapping_add(new_size as u64);
                            return Ok(Step::Done(self.mem.ptr(nb.payload())));
                        }
                        // Only to a size a fresh allocation would also give
                        // a large block, so the accounting is a move's.
                        Ok(None) if backward && new_size > MAX_SIZE => {
                            match self.large_resize_backward_begin(b, new_size, req) {
                                Ok(Some((m, need))) => {
                                    self.count_backward_move(&b, new_size);
                                    return Ok(Step::MoveDown(MoveDown {
                                        block: m,
                                        need,
                                        src_off: b.payload(),
                                        src: self.mem.ptr(b.payload()),
                                        dst: self.mem.ptr(m.payload()),
                                        len: b.payload_size(),
                                    }));
                                }
                                Ok(None) => Ok(b.payload_size()),
                                Err(c) => Err(FreeError::Corrupted(c)),
                            }
                        }
                        Ok(None) => Ok(b.payload_size()),
                        Err(c) => Err(FreeError::Corrupted(c)),
                    }
                }
                Err(e) => Err(e),
            },
            Err(c) => Err(FreeError::Corrupted(c)),
        };
        match usable {
            Ok(usable) => Ok(Step::Move { off, usable }),
            Err(e) => Err(ReallocError::Free(self.reject_free(e))),
        }
    }

    /// Counts a realloc that moves block `old` down (to hold `new_size`
    /// bytes) as one allocation plus one free, like any moved realloc; the
    /// usable size is counted by [`Heap::resize_finish`], which cuts the
    /// block to it.
    fn count_backward_move(&mut self, old: &Block, new_size: usize) {
        let c = &mut self.ctr;
        c.total_allocs = c.total_allocs.wrapping_add(1);
        c.total_frees = c.total_frees.wrapping_add(1);
        c.requested_live = c
            .requested_live
            .wrapping_sub(u64::from(old.req))
            .wrapping_add(new_size as u64);
        c.requested_total = c.requested_total.wrapping_add(new_size as u64);
    }
}
