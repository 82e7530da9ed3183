// SPDX-License-Identifier: GPL-2.0

//! Compile-time constants of the allocator core: size classes, TLSF
//! geometry, slab span sizing, limits and magic values.

/// Number of built-in size-class caches (8, 16, ... 4096 bytes).
pub const NUM_CACHES: usize = 10;
/// Smallest size class in bytes.
pub const MIN_SIZE: usize = 8;
/// Largest size class in bytes; bigger requests go to the large-block allocator.
pub const MAX_SIZE: usize = 4096;
/// Page size assumed for region alignment and the page map.
pub const PAGE_SIZE: usize = 4096;
/// Smallest region accepted by [`Heap::new`](super::Heap::new).
pub const MIN_HEAP_SIZE: usize = 64 * 1024;
/// Largest region accepted (all in-region offsets are `u32`).
pub const MAX_HEAP_SIZE: usize = 1 << 30;
/// Number of custom cache slots besides the built-in size classes.
pub const MAX_CUSTOM_CACHES: usize = 22;
/// Total number of cache descriptors in the metadata area.
pub const TOTAL_CACHES: usize = NUM_CACHES + MAX_CUSTOM_CACHES;
/// Maximum cache name length in bytes.
pub const CACHE_NAME_LEN: usize = 32;
/// Largest object size of a custom cache.
pub const MAX_CUSTOM_OBJECT: usize = MAX_SIZE;
/// Largest alignment a custom cache accepts.
pub const MAX_CUSTOM_ALIGN: usize = 4096;
/// Empty slabs each cache keeps instead of returning them to the large pool.
pub const EMPTY_SLAB_RESERVE: u32 = 1;

/// Granule of the large-block allocator (block sizes and offsets).
pub const BLOCK_ALIGN: usize = 16;
/// In-band block header size.
pub const HEADER_SIZE: usize = 16;
/// Smallest block: header plus the two free-list links, rounded to 16.
pub const MIN_BLOCK: usize = 32;
/// log2 of the number of second-level TLSF lists per first-level class.
pub const SL_LOG: u32 = 5;
/// Number of second-level lists per first-level class.
pub const SL_COUNT: usize = 1 << SL_LOG;
/// Sizes below `1 << FL_SHIFT` live in first-level class 0 (linear, 16 apart).
pub const FL_SHIFT: u32 = SL_LOG + 4;
/// Number of first-level classes (blocks are smaller than 1 GiB).
pub const FL_COUNT: usize = 30 - FL_SHIFT as usize + 1;

/// Target payload of a slab span for the classes up to 512 bytes.
pub const SLAB_TARGET_BYTES: usize = 16 * 1024;
/// Minimum number of objects per slab.
pub const SLAB_MIN_OBJECTS: usize = 8;
/// Largest natural alignment given to built-in class objects.
pub const CLASS_MAX_ALIGN: usize = 64;

/// Magic mixed into every block header check word.
pub const BLOCK_MAGIC: u32 = 0x6b61_6c62; // "kalb"
/// Magic mixed into every slab descriptor.
pub const SLAB_MAGIC: u32 = 0x5ab1_c0de;
/// Marker left in the list links of a released slab's descriptor.
pub const SLAB_DEAD: u32 = 0xdead_5ab1;

/// Size in bytes of built-in class `idx` (0 => 8 ... 9 => 4096).
pub const fn class_size(idx: usize) -> usize {
    MIN_SIZE << idx
}

/// Natural alignment of built-in class `idx` objects: `min(size, 64)`.
pub const fn class_align(idx: usize) -> usize {
    let s = class_size(idx);
    if s < CLASS_MAX_ALIGN {
        s
    } else {
        CLASS_MAX_ALIGN
    }
}
