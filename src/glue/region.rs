// SPDX-License-Identifier: GPL-2.0

//! The heap's backing store: one page-aligned region carved from vmalloc.
//!
//! [`VmallocRegion`] owns the mapping and `vfree`s it on drop, so every exit
//! path of module init (and module exit) releases it exactly once.

use core::{alloc::Layout, ptr::NonNull};
use kernel::{
    alloc::{allocator::Vmalloc, Allocator, NumaNode},
    page::PAGE_SIZE,
    prelude::*,
};

/// A vmalloc'd, page-aligned region of `len` bytes owned by the module.
pub(crate) struct VmallocRegion {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: The region is plain memory owned by this value, with no thread
// affinity. Its contents are accessed by the heap under the heap lock, by
// the per-CPU fast path with atomic word operations and on objects it owns
// (`FastView`), and by the owners of live allocations; none through this
// value.
unsafe impl Send for VmallocRegion {}
// SAFETY: `&VmallocRegion` only exposes the pointer and length, never the
// contents, so sharing it between threads is sound.
unsafe impl Sync for VmallocRegion {}

impl VmallocRegion {
    /// Allocates `len` bytes (a non-zero multiple of `PAGE_SIZE`).
    ///
    /// Fails with `EINVAL` for a bad length and `ENOMEM` when vmalloc cannot
    /// satisfy it. `__GFP_NOWARN` keeps a too-large request from dumping an
    /// allocation-failure warning: the caller reports it in one line instead.
    pub(crate) fn new(len: usize) -> Result<Self> {
        if len == 0 || len % PAGE_SIZE != 0 {
            return Err(EINVAL);
        }
        let layout = Layout::from_size_align(len, PAGE_SIZE).map_err(|_| EINVAL)?;
        let ptr = Vmalloc::alloc(layout, GFP_KERNEL | __GFP_NOWARN, NumaNode::NO_NODE)
            .map_err(|_| ENOMEM)?;
        Ok(Self {
            ptr: ptr.cast(),
            layout,
        })
    }

    /// Start of the region (page aligned).
    pub(crate) fn start(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Length of the region in bytes.
    pub(crate) fn len(&self) -> usize {
        self.layout.size()
    }
}

impl Drop for VmallocRegion {
    fn drop(&mut self) {
        // SAFETY: `ptr` was returned by `Vmalloc::alloc` with `layout` and is
        // freed only here, once.
        unsafe { Vmalloc::free(self.ptr, self.layout) };
    }
}
