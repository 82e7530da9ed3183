// SPDX-License-Identifier: GPL-2.0

//! Error values of the allocator core. Every error leaves the heap unchanged.

use core::fmt;

/// Why [`Heap::new`](super::Heap::new) refused a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// The region base is not `PAGE_SIZE` aligned.
    Misaligned,
    /// The length is not a multiple of `PAGE_SIZE`.
    BadLength,
    /// The region is smaller than `MIN_HEAP_SIZE`.
    TooSmall,
    /// The region is larger than `MAX_HEAP_SIZE` (1 GiB).
    TooLarge,
}

/// Why an allocation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// A size of zero was requested.
    ZeroSize,
    /// The size overflows when rounded up for headers or alignment.
    SizeOverflow,
    /// The alignment is not a power of two or exceeds the heap.
    BadAlign,
    /// `Flags::DMA` was requested; the core cannot provide DMA memory.
    DmaUnsupported,
    /// No free block is large enough.
    OutOfMemory,
    /// The cache id does not name a live cache.
    BadCache,
    /// Damaged metadata was found; nothing was allocated.
    Corrupted(Corruption),
}

/// Why a free (or realloc of an existing pointer) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeError {
    /// The pointer is outside the heap's block area.
    OutsideHeap,
    /// Inside the heap, but not the start of any live allocation.
    NotAllocated,
    /// Points into the middle of a slab object.
    Interior,
    /// The allocation was already freed.
    DoubleFree,
    /// `cache_free` with a cache that does not own the object.
    WrongCache,
    /// `cache_free` with a destroyed (or never created) cache.
    DestroyedCache,
    /// Damaged metadata was found; nothing was changed.
    Corrupted(Corruption),
}

/// Why a realloc failed; the old allocation is untouched in every case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReallocError {
    /// The old pointer is not a live allocation.
    Free(FreeError),
    /// No memory (or a bad size) for the new allocation.
    Alloc(AllocError),
}

/// Why a cache operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheError {
    /// A live cache already has this name (EEXIST).
    NameExists,
    /// Empty, too long or non-printable name.
    InvalidName,
    /// Object size zero or above `MAX_CUSTOM_OBJECT`.
    InvalidSize,
    /// Alignment not a power of two in 8..=4096.
    BadAlign,
    /// All custom cache slots are used.
    TooMany,
    /// The cache still has live objects.
    Busy,
    /// The id names a destroyed or never created cache.
    NoSuchCache,
    /// Built-in size-class caches cannot be destroyed.
    BuiltIn,
    /// Damaged metadata was found while releasing slabs.
    Corrupted(Corruption),
}

/// Kind of metadata damage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CorruptionKind {
    /// A block header check word does not match.
    BadMagic,
    /// A block size is not a multiple of 16, too small or leaves the region.
    BadSize,
    /// The previous-size boundary tag disagrees with the neighbour.
    BoundaryTagMismatch,
    /// Two physically adjacent blocks are both free.
    UncoalescedFree,
    /// A free-list link points outside the block area.
    FreeListOutOfBounds,
    /// A free list does not terminate within the step bound.
    FreeListLoop,
    /// A free list is inconsistent (prev/next, wrong class, used block, count).
    FreeListMismatch,
    /// A TLSF bitmap bit disagrees with its list.
    BitmapMismatch,
    /// A slab descriptor magic is wrong.
    SlabBadMagic,
    /// Slab counters disagree with its bitmap or geometry.
    SlabCountMismatch,
    /// A slab object free list is out of bounds, looping or inconsistent.
    SlabFreeList,
    /// A slab sits on the wrong cache list or a list is malformed.
    SlabListMismatch,
    /// The page map disagrees with the slab spans.
    PageMapMismatch,
    /// A cache descriptor is inconsistent.
    CacheMismatch,
    /// Totals from the walk disagree with the statistics counters.
    StatsMismatch,
    /// A per-CPU magazine holds something that is not a cached object of
    /// its class (see `magazine`).
    MagazineEntry,
    /// A red zone around an object or block was overwritten (debug `Z`);
    /// `offset` is the first bad byte, `detail` the bytes found (see
    /// [`Corruption::found_bytes`]).
    RedZone,
    /// Poison of freed memory was overwritten: a write after free (debug
    /// `P`); `offset` and `detail` as for `RedZone`.
    Poison,
}

/// Description of detected metadata damage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corruption {
    /// What is wrong.
    pub kind: CorruptionKind,
    /// Region offset of the damaged structure.
    pub offset: usize,
    /// Kind-specific detail (a size, a count, an expected value).
    pub detail: u64,
}

impl Corruption {
    pub(crate) const fn new(kind: CorruptionKind, offset: usize, detail: u64) -> Self {
        Corruption {
            kind,
            offset,
            detail,
        }
    }
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            InitError::Misaligned => "heap region is not page aligned",
            InitError::BadLength => "heap length is not a multiple of the page size",
            InitError::TooSmall => "heap region is smaller than the minimum",
            InitError::TooLarge => "heap region is larger than 1 GiB",
        };
        f.write_str(s)
    }
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocError::ZeroSize => f.write_str("zero-size allocation"),
            AllocError::SizeOverflow => f.write_str("allocation size overflows"),
            AllocError::BadAlign => f.write_str("bad alignment"),
            AllocError::DmaUnsupported => f.write_str("DMA memory not supported"),
            AllocError::OutOfMemory => f.write_str("out of memory"),
            AllocError::BadCache => f.write_str("no such cache"),
            AllocError::Corrupted(c) => write!(f, "allocation aborted: {c}"),
        }
    }
}

impl fmt::Display for FreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FreeError::OutsideHeap => f.write_str("pointer outside the heap"),
            FreeError::NotAllocated => f.write_str("pointer is not a live allocation"),
            FreeError::Interior => f.write_str("pointer into the middle of an object"),
            FreeError::DoubleFree => f.write_str("double free"),
            FreeError::WrongCache => f.write_str("object freed to the wrong cache"),
            FreeError::DestroyedCache => f.write_str("free to a destroyed cache"),
            FreeError::Corrupted(c) => write!(f, "free aborted: {c}"),
        }
    }
}

impl fmt::Display for ReallocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReallocError::Free(e) => write!(f, "realloc: {e}"),
            ReallocError::Alloc(e) => write!(f, "realloc: {e}"),
        }
    }
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheError::NameExists => f.write_str("cache name already exists"),
            CacheError::InvalidName => f.write_str("invalid cache name"),
            CacheError::InvalidSize => f.write_str("invalid object size"),
            CacheError::BadAlign => f.write_str("invalid cache alignment"),
            CacheError::TooMany => f.write_str("too many caches"),
            CacheError::Busy => f.write_str("cache has live objects"),
            CacheError::NoSuchCache => f.write_str("no such cache"),
            CacheError::BuiltIn => f.write_str("built-in caches cannot be destroyed"),
            CacheError::Corrupted(c) => write!(f, "cache operation aborted: {c}"),
        }
    }
}

impl fmt::Display for CorruptionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            CorruptionKind::BadMagic => "bad block magic",
            CorruptionKind::BadSize => "bad block size",
            CorruptionKind::BoundaryTagMismatch => "boundary tag mismatch",
            CorruptionKind::UncoalescedFree => "adjacent free blocks",
            CorruptionKind::FreeListOutOfBounds => "free-list link out of bounds",
            CorruptionKind::FreeListLoop => "free-list loop",
            CorruptionKind::FreeListMismatch => "free-list mismatch",
            CorruptionKind::BitmapMismatch => "bitmap mismatch",
            CorruptionKind::SlabBadMagic => "bad slab magic",
            CorruptionKind::SlabCountMismatch => "slab count mismatch",
            CorruptionKind::SlabFreeList => "slab free-list damage",
            CorruptionKind::SlabListMismatch => "slab list mismatch",
            CorruptionKind::PageMapMismatch => "page map mismatch",
            CorruptionKind::CacheMismatch => "cache descriptor mismatch",
            CorruptionKind::StatsMismatch => "statistics mismatch",
            CorruptionKind::MagazineEntry => "bad magazine entry",
            CorruptionKind::RedZone => "red zone overwritten",
            CorruptionKind::Poison => "poison overwritten (write after free)",
        };
        f.write_str(s)
    }
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if matches!(self.kind, CorruptionKind::RedZone | CorruptionKind::Poison) {
            write!(
                f,
                "heap corruption: {} at offset {:#x} (bytes found:",
                self.kind, self.offset
            )?;
            let (b, n) = self.found_bytes();
            for x in b.iter().take(n) {
                write!(f, " {x:02x}")?;
            }
            return f.write_str(")");
        }
        write!(
            f,
            "heap corruption: {} at offset {:#x} (detail {:#x})",
            self.kind, self.offset, self.detail
        )
    }
}

impl From<Corruption> for AllocError {
    fn from(c: Corruption) -> Self {
        AllocError::Corrupted(c)
    }
}

impl From<Corruption> for FreeError {
    fn from(c: Corruption) -> Self {
        FreeError::Corrupted(c)
    }
}

impl From<Corruption> for CacheError {
    fn from(c: Corruption) -> Self {
        CacheError::Corrupted(c)
    }
}
