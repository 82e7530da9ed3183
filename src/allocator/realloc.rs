// SPDX-License-Identifier: GPL-2.0

//! Resizing an allocation: [`Heap::realloc`], and [`Heap::resize_in_place`]
//! for a caller that makes the move itself.
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
//! call, so it must not copy a large payload through `realloc`, with
//! interrupts off: it calls `resize_in_place`, which never moves data,
//! and makes a move itself, as `krealloc` does (allocate, copy without the
//! lock, free).

use core::ptr::NonNull;

use super::block::Block;
use super::config::{MAX_SIZE, MIN_SIZE};
use super::error::{AllocError, FreeError, ReallocError};
use super::flags::Flags;
use super::heap::Heap;
use super::large::Placement;

/// What a resize without a copy came to.
enum Step {
    /// Resized in place (or moved down with `memmove`): the pointer.
    Done(NonNull<u8>),
    /// Needs a new allocation; the old one, at region offset `off`, has
    /// `usable` bytes and is unchanged.
    Move { off: usize, usable: usize },
}

impl Heap {
    /// Resizes an allocation; in place when possible (a large block also
    /// moves down into a free predecessor, see `large`), otherwise
    /// allocates, placing a large block as low as cheaply possible, copies
    /// and frees. On failure the old allocation is untouched; if freeing it
    /// after the copy finds damage (debug checks), the new block is freed
    /// again (one allocation and one free in the counters) and the error
    /// returned. A null
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
            Step::Move { .. } => Ok(None),
        }
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
                            match self.large_resize_backward(b, new_size, req) {
                                Ok(Some(nb)) => {
                                    self.count_backward_move(&b, &nb, new_size);
                                    return Ok(Step::Done(self.mem.ptr(nb.payload())));
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

    /// Counts a realloc that moved block `old` down to `new` (holding
    /// `new_size` bytes) as one allocation plus one free, like any moved
    /// realloc.
    fn count_backward_move(&mut self, old: &Block, new: &Block, new_size: usize) {
        let c = &mut self.ctr;
        c.total_allocs = c.total_allocs.wrapping_add(1);
        c.total_frees = c.total_frees.wrapping_add(1);
        c.requested_live = c
            .requested_live
            .wrapping_sub(u64::from(old.req))
            .wrapping_add(new_size as u64);
        c.requested_total = c.requested_total.wrapping_add(new_size as u64);
        c.usable_total = c.usable_total.wrapping_add(new.payload_size() as u64);
    }
}
