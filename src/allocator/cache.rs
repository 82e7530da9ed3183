// SPDX-License-Identifier: GPL-2.0

//! Cache descriptors: the ten built-in size classes and custom caches.
//!
//! Descriptors live in the metadata area at the start of the region. Each
//! keeps the geometry of its slabs, the heads and lengths of its empty,
//! partial and full slab lists and per-cache counters. A [`CacheId`] carries
//! a generation so an id of a destroyed cache is never confused with a new
//! cache reusing the slot.

use super::config::{
    class_align, class_size, CACHE_NAME_LEN, MAX_CUSTOM_ALIGN, MAX_CUSTOM_OBJECT, NUM_CACHES,
    TOTAL_CACHES,
};
use super::debug::DebugFlags;
use super::error::{CacheError, Corruption};
use super::heap::Heap;
use super::region::Pod;
use super::slab::{slab_geometry, SlabState};

/// Descriptor flag: slot in use.
pub(super) const C_ACTIVE: u32 = 1;
/// Descriptor flag: built-in size class.
pub(super) const C_BUILTIN: u32 = 2;

/// A cache descriptor as stored in the metadata area.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct CacheDesc {
    pub(super) name: [u8; CACHE_NAME_LEN],
    pub(super) name_len: u32,
    pub(super) flags: u32,
    pub(super) gen: u32,
    pub(super) object_size: u32,
    pub(super) align: u32,
    pub(super) stride: u32,
    pub(super) capacity: u32,
    pub(super) span_size: u32,
    pub(super) heads: [u32; 3],
    pub(super) counts: [u32; 3],
    pub(super) active_objs: u32,
    pub(super) total_objs: u32,
    pub(super) allocs: u64,
    pub(super) frees: u64,
    pub(super) failures: u64,
    pub(super) reuses: u64,
    pub(super) requested_total: u64,
}

// SAFETY: `repr(C)`, only integer fields and arrays, no padding (136 bytes,
// the u64 fields start at offset 96), every bit pattern is valid.
unsafe impl Pod for CacheDesc {}

impl CacheDesc {
    /// An all-zero (inactive) descriptor.
    pub(super) const ZERO: CacheDesc = CacheDesc {
        name: [0; CACHE_NAME_LEN],
        name_len: 0,
        flags: 0,
        gen: 0,
        object_size: 0,
        align: 0,
        stride: 0,
        capacity: 0,
        span_size: 0,
        heads: [0; 3],
        counts: [0; 3],
        active_objs: 0,
        total_objs: 0,
        allocs: 0,
        frees: 0,
        failures: 0,
        reuses: 0,
        requested_total: 0,
    };

    /// Whether the slot holds a live cache.
    pub(super) fn active(&self) -> bool {
        self.flags & C_ACTIVE != 0
    }

    fn name_bytes(&self) -> &[u8] {
        let n = (self.name_len as usize).min(CACHE_NAME_LEN);
        self.name.get(..n).unwrap_or(&[])
    }
}

/// Handle of a cache (slot index plus generation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CacheId(u32);

impl CacheId {
    pub(super) fn new(index: usize, gen: u32) -> Self {
        CacheId((index as u32 & 0xffff) | (gen << 16))
    }

    /// Slot index of the cache (0..10 are the built-in size classes).
    pub fn index(self) -> usize {
        (self.0 & 0xffff) as usize
    }

    pub(super) fn gen(self) -> u32 {
        self.0 >> 16
    }

    /// Raw value (for passing through C-like interfaces).
    pub fn to_raw(self) -> u32 {
        self.0
    }

    /// Rebuilds an id from [`CacheId::to_raw`]; validated on every use.
    pub fn from_raw(raw: u32) -> Self {
        CacheId(raw)
    }
}

/// Snapshot of one cache for reporting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheInfo {
    /// Id of the cache.
    pub id: CacheId,
    /// Name bytes (first `name_len` are valid UTF-8).
    pub name: [u8; CACHE_NAME_LEN],
    /// Length of the name.
    pub name_len: usize,
    /// Built-in size class.
    pub builtin: bool,
    /// Object size asked for at creation.
    pub object_size: usize,
    /// Object alignment.
    pub align: usize,
    /// Distance between objects in a slab.
    pub stride: usize,
    /// Objects per slab.
    pub objs_per_slab: usize,
    /// Size of one slab span (block header included).
    pub slab_bytes: usize,
    /// Live objects.
    pub active_objs: usize,
    /// Free objects held by per-CPU magazines (built-in classes only).
    pub magazine_objs: usize,
    /// Object capacity of all slabs.
    pub total_objs: usize,
    /// Empty slabs.
    pub slabs_empty: usize,
    /// Partially used slabs.
    pub slabs_partial: usize,
    /// Full slabs.
    pub slabs_full: usize,
    /// Successful allocations.
    pub allocs: u64,
    /// Successful frees.
    pub frees: u64,
    /// Failed allocations.
    pub failures: u64,
    /// Allocations served from a previously freed object.
    pub reuses: u64,
    /// Sum of requested sizes of all successful allocations.
    pub requested_total: u64,
    /// Debug flags of the cache.
    pub debug: DebugFlags,
}

impl CacheInfo {
    /// The cache name.
    pub fn name(&self) -> &str {
        let n = self.name_len.min(CACHE_NAME_LEN);
        core::str::from_utf8(self.name.get(..n).unwrap_or(&[])).unwrap_or("?")
    }
}

/// Names of the built-in classes, as in the debugfs ABI (a test checks
/// them against `class_size`).
pub const BUILTIN_NAMES: [&str; NUM_CACHES] = [
    "size-8",
    "size-16",
    "size-32",
    "size-64",
    "size-128",
    "size-256",
    "size-512",
    "size-1024",
    "size-2048",
    "size-4096",
];

/// A descriptor's name field and length for `name` (at most
/// `CACHE_NAME_LEN` bytes are kept; callers check the length first).
fn name_field(name: &[u8]) -> ([u8; CACHE_NAME_LEN], u32) {
    let mut field = [0u8; CACHE_NAME_LEN];
    for (d, s) in field.iter_mut().zip(name) {
        *d = *s;
    }
    (field, name.len().min(CACHE_NAME_LEN) as u32)
}

impl Heap {
    /// Region offset of cache descriptor `idx` in the metadata area (a
    /// `repr(C)` `CacheDesc` of 136 bytes: the name, then `u32` fields from
    /// offset 32 on: name length, flags, generation, object size,
    /// alignment, stride, capacity, span size, the three list heads, the
    /// three list counts, active and total objects; then the `u64`
    /// counters). Public for the tests that damage it.
    pub fn cache_desc_offset(&self, idx: usize) -> usize {
        self.caches_off
            .wrapping_add(idx.wrapping_mul(core::mem::size_of::<CacheDesc>()))
    }

    /// Descriptor `idx` (an inactive one when out of range), in place: a
    /// copy would be a 136-byte `memcpy` (slow under emulation) to read a
    /// field or two.
    pub(super) fn cache(&self, idx: usize) -> &CacheDesc {
        if idx >= TOTAL_CACHES {
            return &CacheDesc::ZERO;
        }
        self.mem
            .get(self.cache_desc_offset(idx))
            .unwrap_or(&CacheDesc::ZERO)
    }

    /// Descriptor `idx` in place for writing, `None` when out of range.
    pub(super) fn cache_mut(&mut self, idx: usize) -> Option<&mut CacheDesc> {
        if idx >= TOTAL_CACHES {
            return None;
        }
        let off = self.cache_desc_offset(idx);
        self.mem.get_mut(off)
    }

    /// The flag word of descriptor `idx` alone (0 when out of range): the
    /// hot free path needs only it, not a copy of the whole descriptor.
    pub(super) fn cache_flags(&self, idx: usize) -> u32 {
        if idx >= TOTAL_CACHES {
            return 0;
        }
        let at = self
            .cache_desc_offset(idx)
            .wrapping_add(core::mem::offset_of!(CacheDesc, flags));
        self.mem.rd32(at)
    }

    /// Writes descriptor `idx`.
    pub(super) fn set_cache(&mut self, idx: usize, c: &CacheDesc) {
        if let Some(d) = self.cache_mut(idx) {
            *d = *c;
        }
    }

    /// Resolves `id` to a live slot index (`cache` gives an inactive
    /// descriptor for an index out of range).
    pub(super) fn resolve(&self, id: CacheId) -> Option<usize> {
        let idx = id.index();
        let c = self.cache(idx);
        (c.active() && c.gen == id.gen()).then_some(idx)
    }

    /// Sets up the built-in size-class descriptors (at init).
    pub(super) fn init_builtin_caches(&mut self) {
        for idx in 0..NUM_CACHES {
            let size = class_size(idx);
            let align = class_align(idx);
            let (cap, span) = slab_geometry(size, align);
            let (name, name_len) = name_field(BUILTIN_NAMES.get(idx).map_or(&[], |n| n.as_bytes()));
            // Generation 0 (from `ZERO`): `size_class` hands out
            // `CacheId::new(idx, 0)`.
            let c = CacheDesc {
                name,
                name_len,
                flags: C_ACTIVE | C_BUILTIN,
                object_size: size as u32,
                align: align as u32,
                stride: size as u32,
                capacity: cap as u32,
                span_size: span as u32,
                ..CacheDesc::ZERO
            };
            self.set_cache(idx, &c);
        }
    }

    /// Creates a custom cache of `object_size`-byte objects aligned to `align`.
    pub fn cache_create(
        &mut self,
        name: &str,
        object_size: usize,
        align: usize,
    ) -> Result<CacheId, CacheError> {
        let nb = name.as_bytes();
        if nb.is_empty() || nb.len() > CACHE_NAME_LEN || !nb.iter().all(|c| c.is_ascii_graphic()) {
            return Err(CacheError::InvalidName);
        }
        if object_size == 0 || object_size > MAX_CUSTOM_OBJECT {
            return Err(CacheError::InvalidSize);
        }
        if !align.is_power_of_two() || !(8..=MAX_CUSTOM_ALIGN).contains(&align) {
            return Err(CacheError::BadAlign);
        }
        if self.cache_by_name(name).is_some() {
            return Err(CacheError::NameExists);
        }
        let Some(idx) = (NUM_CACHES..TOTAL_CACHES).find(|&i| !self.cache(i).active()) else {
            return Err(CacheError::TooMany);
        };
        let stride = (object_size.max(8).wrapping_add(align - 1)) & !(align - 1);
        let (cap, span) = slab_geometry(stride, align);
        let (name, name_len) = name_field(nb);
        let gen = (self.cache(idx).gen.wrapping_add(1) & 0xffff).max(1);
        let mut c = CacheDesc {
            name,
            name_len,
            flags: C_ACTIVE,
            gen,
            object_size: object_size as u32,
            align: align as u32,
            stride: stride as u32,
            capacity: cap as u32,
            span_size: span as u32,
            ..CacheDesc::ZERO
        };
        if !self.dbg.flags.is_empty() {
            c.apply_debug(self.dbg.flags);
        }
        self.set_cache(idx, &c);
        Ok(CacheId::new(idx, gen))
    }

    /// Destroys a custom cache with no live objects, releasing its slabs.
    pub fn cache_destroy(&mut self, id: CacheId) -> Result<(), CacheError> {
        let Some(idx) = self.resolve(id) else {
            return Err(CacheError::NoSuchCache);
        };
        let c = *self.cache(idx);
        if c.flags & C_BUILTIN != 0 {
            return Err(CacheError::BuiltIn);
        }
        if c.active_objs != 0 {
            return Err(CacheError::Busy);
        }
        // No live object, so no slab may be partial or full: the detail is
        // the number of slabs those two lists count.
        let (partial, full) = (SlabState::Partial as usize, SlabState::Full as usize);
        if c.heads[partial] != 0 || c.heads[full] != 0 {
            let slabs = u64::from(c.counts[partial]) + u64::from(c.counts[full]);
            let e = Corruption::new(
                super::error::CorruptionKind::CacheMismatch,
                self.cache_desc_offset(idx),
                slabs,
            );
            return Err(self.note_corruption(e).into());
        }
        self.slab_release_empty(idx, 0)
            .map_err(|e| self.note_corruption(e))?;
        let gen = self.cache(idx).gen;
        let c = CacheDesc {
            gen,
            ..CacheDesc::ZERO
        };
        self.set_cache(idx, &c);
        Ok(())
    }

    /// Returns every empty slab of every cache to the large-block pool
    /// (like `kmem_cache_shrink`). Returns the number of slabs released.
    pub fn shrink(&mut self) -> Result<usize, Corruption> {
        let before = self.slabs.spans;
        for ci in 0..TOTAL_CACHES {
            if !self.cache(ci).active() {
                continue;
            }
            self.slab_release_empty(ci, 0)
                .map_err(|e| self.note_corruption(e))?;
        }
        Ok(before.saturating_sub(self.slabs.spans))
    }

    /// Looks a live cache up by name.
    pub fn cache_by_name(&self, name: &str) -> Option<CacheId> {
        (0..TOTAL_CACHES).find_map(|i| {
            let c = self.cache(i);
            (c.active() && c.name_bytes() == name.as_bytes()).then(|| CacheId::new(i, c.gen))
        })
    }

    /// Id of the built-in size class `idx` (0 => 8 bytes ... 9 => 4096).
    pub fn size_class(&self, idx: usize) -> Option<CacheId> {
        (idx < NUM_CACHES).then(|| CacheId::new(idx, 0))
    }

    /// Information about the cache in slot `slot` (0..`TOTAL_CACHES`), if live.
    pub fn cache_info(&self, slot: usize) -> Option<CacheInfo> {
        let c = self.cache(slot);
        if slot >= TOTAL_CACHES || !c.active() {
            return None;
        }
        Some(CacheInfo {
            id: CacheId::new(slot, c.gen),
            name: c.name,
            name_len: c.name_len as usize,
            builtin: c.flags & C_BUILTIN != 0,
            object_size: c.object_size as usize,
            align: c.align as usize,
            stride: c.stride as usize,
            objs_per_slab: c.capacity as usize,
            slab_bytes: c.span_size as usize,
            active_objs: c.active_objs.wrapping_sub(self.magazine_cached(slot)) as usize,
            magazine_objs: self.magazine_cached(slot) as usize,
            total_objs: c.total_objs as usize,
            slabs_empty: c.counts[0] as usize,
            slabs_partial: c.counts[1] as usize,
            slabs_full: c.counts[2] as usize,
            allocs: c.allocs,
            frees: c.frees,
            failures: c.failures,
            reuses: c.reuses,
            requested_total: c.requested_total,
            debug: c.debug(),
        })
    }

    /// Iterator over all live caches.
    pub fn caches(&self) -> impl Iterator<Item = CacheInfo> + '_ {
        (0..TOTAL_CACHES).filter_map(move |i| self.cache_info(i))
    }
}
