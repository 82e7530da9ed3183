// SPDX-License-Identifier: GPL-2.0

//! `ikos_kalloc` allocator core: SLAB caches over an O(1) TLSF large-block
//! allocator, managing one caller-supplied memory region.
//!
//! This is plain `no_std` Rust (only `core`), compiled both into the kernel
//! module and into the host crate for `cargo test`. The core is
//! single-threaded (`&mut self` everywhere); the kernel wraps it in a
//! spinlock. It never sleeps and never panics on bad input: every error is a
//! value, leaves the heap unchanged and bumps a counter.
//!
//! Layout of the region:
//!
//! ```text
//! | metadata area: TLSF index | cache descriptors | page map | blocks ... |
//! ```
//!
//! * `large`: TLSF allocator over 16-byte in-band headers (`block`);
//!   O(1) alloc/free, immediate coalescing, any power-of-two alignment up to
//!   the heap size.
//! * `magazine`, `large_cache`: the per-CPU caches of the lock-free fast
//!   path (size-class magazines; parked large blocks up to 64 KiB).
//! * `slab`: slab spans carved from the large allocator; per-cache empty,
//!   partial and full lists (`cache`); O(1) owner lookup on free through
//!   the page map (`pagemap`).
//! * `realloc`: [`Heap::realloc`], and for a caller that moves the data
//!   without the heap lock, [`Heap::resize_in_place`] and the steps
//!   [`Heap::resize_start`] / [`Heap::resize_finish`] /
//!   [`Heap::alloc_moved_retryable`] that `realloc` is made of.
//! * `stats` and `validate`: exact accounting and a full consistency walk.
//! * `region`: the only place that dereferences region memory; every access
//!   is bounds- and alignment-checked.
//! * `debug`, `debug_check`, `debug_track`: `slub_debug`-like flags per
//!   cache and heap-wide ([`Heap::with_debug`], [`Heap::set_cache_debug`]):
//!   red zones (`Z`), poisoning (`P`), owner tracking (`U`, listed by
//!   [`Heap::for_each_live`]) and sanity checks on every operation (`F`).
//!   With no flag set the layout is the plain one and the slab hot paths
//!   test one flag word (callgrind: 948 instructions per 64 B alloc+free
//!   pair against 999 before the debug code; see the README).
//!
//! Routing: a request of at most 4096 bytes with an alignment of at most 64
//! goes to the smallest size class `>= max(size, align)` (class objects are
//! naturally aligned up to 64 bytes); everything else, including every
//! alignment above 64, goes to the large-block allocator.
//!
//! Empty-slab policy: while a cache has live objects it keeps at most one
//! empty slab in reserve and returns the others to the large pool; when its
//! last object is freed all its empty slabs go back, so freeing everything
//! leaves one free block whose size equals the initial largest free block.
//! [`Heap::shrink`] drops the reserves explicitly.
//!
//! Debug detections (red zone, poison) are [`CorruptionKind::RedZone`] and
//! [`CorruptionKind::Poison`] naming the first bad byte and the bytes
//! found. A damaged red zone refuses the free (heap unchanged, like every
//! other error); damaged poison fails the allocation that would hand the
//! memory out, restores the poison and leaves the object free.
//!
//! Double-free detection is exact while the object's slab exists (per-slab
//! bitmap) and for large blocks (the header, even when absorbed by a
//! neighbour, stays marked free). After a slab was returned, its page-map
//! entries become "ghosts" and its descriptor keeps a dead marker, so an
//! immediate second free is still `DoubleFree`; once that memory is reused
//! the pointer is reported as `NotAllocated` (still an error, heap unchanged).
//! Heap-wide `P` poisons the released span, dead marker included; the heap
//! then keeps copies of the last four dead descriptors outside the region
//! (`DebugState::ghosts`), so the immediate second free stays `DoubleFree`.
//!
//! Deviations from the original brief, by design:
//!
//! * Slab spans are page-map addressable instead of page aligned: with
//!   in-band 16-byte headers a page-aligned, page-multiple span wastes a
//!   whole object per 2048/4096 slab.
//! * The event counters live in the `Heap` struct (about 100 bytes), not in
//!   the metadata area, so reporting them never touches the region.
//! * `requested_bytes` counts a size-class object at its class size (see
//!   `stats`); it is exact for large blocks and custom caches, and the
//!   cumulative `requested_total` is exact for every allocation.
//! * Raw damage to a header's boundary tag (word 1, which the check word
//!   does not cover, see `block`) is reported as `BoundaryTagMismatch`
//!   against the previous block's verified size; damage to the words the
//!   check word covers as `BadMagic`.

mod block;
mod cache;
pub mod config;
mod debug;
mod debug_check;
mod debug_track;
mod depot;
mod error;
mod fast_view;
mod flags;
mod heap;
mod heapmap;
mod inject;
mod large;
mod large_cache;
mod magazine;
mod magazine_heap;
mod pagemap;
mod realloc;
mod region;
mod slab;
mod stats;
mod validate;

pub use block::header_check_word;
pub use cache::{CacheId, CacheInfo, BUILTIN_NAMES};
pub use debug::{
    DebugFlags, LARGE_RZ, POISON_END, POISON_FREE, RED_ACTIVE, RED_INACTIVE, TRACK_BYTES,
};
pub use debug_track::{LiveAlloc, Owner};
pub use depot::{depot_capacity, DEPOT_MAX_BYTES, DEPOT_MAX_ENTRIES};
pub use error::{
    AllocError, CacheError, Corruption, CorruptionKind, FreeError, InitError, ReallocError,
};
pub use fast_view::{FastView, Located};
pub use flags::Flags;
pub use heap::{size_class_for, Heap};
pub use heapmap::{PageUse, SlabOccupancy};
pub use inject::{Counter, InjectError, Injected};
pub use large::mapping as free_list_of;
pub use large_cache::{LARGE_CACHE_BYTES, LARGE_CACHE_MAX_BLOCK, LARGE_SLOTS};
pub use magazine::{depot_tag, magazine_capacity, CpuCache, FastFree, Pop, MAGAZINE_SLOTS};
pub use magazine_heap::{held_hash, HeldSums};
pub use realloc::{MoveDown, Resize};
pub use slab::slab_geometry;
pub use stats::Stats;
pub use validate::ValidationReport;
