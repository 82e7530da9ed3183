// SPDX-License-Identifier: GPL-2.0

//! Debug features in the spirit of `slub_debug`: red zones (`Z`), poisoning
//! (`P`), owner tracking (`U`) and sanity checks on every operation (`F`).
//!
//! Flags are per cache (stored in bits 8..12 of the cache descriptor's flag
//! word) and heap-wide for large blocks ([`Heap::with_debug`]); new caches
//! start with the heap-wide flags. A cache's flags can only change while it
//! has no slab, because the slot layout is derived from them when a slab is
//! created. With no flag set nothing here runs and the object layout is the
//! plain one: a slab alloc or free tests the cache's flag word once (a
//! debug cache is dispatched to `debug_slab_alloc` as a whole); a large
//! alloc or free tests the heap-wide flags once, plus once per split of a
//! free block (`split_tail`, for the `P` bookkeeping).
//!
//! Slot layout of a slab object when any of `Z`, `P`, `U` is set (offsets
//! relative to the object pointer; `S` is the object size, `L` the left red
//! zone, `max(align, 8)` with `Z` else 0):
//!
//! ```text
//! | left red zone L | object S | right red zone | link 8 | track 24 (U) | tail red zone |
//! -L                0          S                R        R+8            R+8(+24)   stride-L
//! ```
//!
//! `R = round_up(S, 8) + 8` with `Z`, `round_up(S, 8)` without. The free-list
//! link moves out of the object (into `link`) so poison covers the whole
//! object. The usable size is `S`. Red zones hold [`RED_ACTIVE`] while the
//! object is live and [`RED_INACTIVE`] while it is free; a free object holds
//! [`POISON_FREE`] with [`POISON_END`] as its last byte.
//!
//! Large blocks (heap-wide flags): `| header 16 | object | red zone >= 16 (Z)
//! | track 24 (U) |`; the block header before the payload is the left guard
//! (its check word catches an underflow). With `P` every free block's
//! payload after its two link words is poison; stale headers of absorbed
//! blocks (kept for double-free detection) are recognised and skipped.
//!
//! Detection: red zones are checked on free (damage refuses the free and
//! leaves the heap unchanged) and when an object is handed out; poison when
//! an object or block is handed out (damage fails that allocation, the
//! poison is restored and the object stays free); both by
//! [`Heap::validate`]. Reports are [`CorruptionKind::RedZone`] and
//! [`CorruptionKind::Poison`] at the first bad byte, with the bytes found
//! ([`Corruption::found_bytes`]), counted in `redzone_errors` /
//! `poison_errors` and `corruptions`. `F` runs the slab consistency check
//! of `validate` on the slab of every alloc and free (and checks both
//! neighbours of a large block); failures count in `sanity_errors`.
//!
//! This file: flags, layouts, the per-cache and heap-wide settings. The
//! checks and hooks are in `debug_check`, owner records in `debug_track`.

use core::fmt;

use super::cache::{CacheDesc, CacheId, C_BUILTIN};
use super::config::{class_align, class_size, HEADER_SIZE, NUM_CACHES};
use super::error::{CacheError, Corruption, CorruptionKind};
use super::heap::Heap;
use super::slab::{slab_geometry_lead, SlabDesc};

/// Red-zone byte of a live object (`SLUB_RED_ACTIVE`).
pub const RED_ACTIVE: u8 = 0xcc;
/// Red-zone byte of a free object (`SLUB_RED_INACTIVE`).
pub const RED_INACTIVE: u8 = 0xbb;
/// Poison of freed memory (`POISON_FREE`).
pub const POISON_FREE: u8 = 0x6b;
/// Last byte of a poisoned slab object (`POISON_END`).
pub const POISON_END: u8 = 0xa5;
/// Bytes of an owner-tracking record: tag, sequence number, time (u64 each).
pub const TRACK_BYTES: usize = 24;
/// Bytes of the out-of-object free-list link of a debug slot.
pub(super) const LINK_BYTES: usize = 8;
/// Right red zone of a slab object beyond its 8-byte rounding.
const SLAB_RZ: usize = 8;
/// Minimum red zone after a large block's object.
pub const LARGE_RZ: usize = 16;

/// Descriptor flag bits holding the debug flags.
pub(super) const C_DEBUG_SHIFT: u32 = 8;
/// Mask of the debug flags in the descriptor flag word.
pub(super) const C_DEBUG_MASK: u32 = 0xf << C_DEBUG_SHIFT;
/// Descriptor flag bits holding the link offset of a debug slot.
const C_LINK_SHIFT: u32 = 16;

/// Link offset (see [`CacheDesc::link_off`]) from a descriptor flag word.
#[inline(always)]
pub(super) fn link_off(cache_flags: u32) -> usize {
    (cache_flags >> C_LINK_SHIFT) as usize
}

/// A set of debug flags (`Z`, `P`, `U`, `F`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DebugFlags(u8);

impl DebugFlags {
    /// No debugging.
    pub const NONE: DebugFlags = DebugFlags(0);
    /// `Z`: red zones around every object and block.
    pub const REDZONE: DebugFlags = DebugFlags(1);
    /// `P`: poison freed memory, check it when handed out again.
    pub const POISON: DebugFlags = DebugFlags(2);
    /// `U`: owner tracking (tag, sequence number, time) per allocation.
    pub const TRACK: DebugFlags = DebugFlags(4);
    /// `F`: sanity checks of the owning slab or block on every operation.
    pub const SANITY: DebugFlags = DebugFlags(8);
    /// All flags.
    pub const ALL: DebugFlags = DebugFlags(0xf);
    /// The flags that change the object layout.
    const LAYOUT: DebugFlags = DebugFlags(7);

    const LETTERS: [(u8, DebugFlags); 4] = [
        (b'Z', Self::REDZONE),
        (b'P', Self::POISON),
        (b'U', Self::TRACK),
        (b'F', Self::SANITY),
    ];

    /// Raw bits (Z = 1, P = 2, U = 4, F = 8).
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Flags from raw bits; unknown bits are dropped.
    pub const fn from_bits_truncate(bits: u8) -> DebugFlags {
        DebugFlags(bits & Self::ALL.0)
    }

    /// True when every flag of `other` is set.
    pub const fn contains(self, other: DebugFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Union of two sets.
    pub const fn union(self, other: DebugFlags) -> DebugFlags {
        DebugFlags(self.0 | other.0)
    }

    /// Whether the flags change the object layout (`Z`, `P` or `U`).
    pub const fn changes_layout(self) -> bool {
        self.0 & Self::LAYOUT.0 != 0
    }

    /// Parses letters of `ZPUF` (any order, repeats allowed); `-` or an
    /// empty string is no flag. Returns the first bad byte on error.
    pub fn parse(s: &[u8]) -> Result<DebugFlags, u8> {
        if s == b"-" {
            return Ok(Self::NONE);
        }
        let mut f = Self::NONE;
        for &b in s {
            match Self::LETTERS.iter().find(|(l, _)| *l == b) {
                Some(&(_, bit)) => f = f.union(bit),
                None => return Err(b),
            }
        }
        Ok(f)
    }
}

impl fmt::Display for DebugFlags {
    /// The letters in `ZPUF` order, or `-` for none.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        for (l, bit) in Self::LETTERS {
            if self.contains(bit) {
                write!(f, "{}", l as char)?;
            }
        }
        Ok(())
    }
}

/// Slot layout of a debug slab object, relative to the object pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SlotLayout {
    /// Left red zone (bytes before the object in its slot).
    pub(super) lead: usize,
    /// Object (usable) size.
    pub(super) size: usize,
    /// Offset of the free-list link; the right red zone is `size..link`.
    pub(super) link: usize,
    /// End of the metadata (link and track); the tail red zone follows.
    pub(super) meta_end: usize,
    /// Distance between objects.
    pub(super) stride: usize,
}

impl SlotLayout {
    /// Layout for `object_size`-byte objects aligned to `align` with the
    /// plain stride `plain` under `flags`.
    pub(super) fn new(flags: DebugFlags, object_size: usize, align: usize, plain: usize) -> Self {
        if !flags.changes_layout() {
            return SlotLayout {
                lead: 0,
                size: plain,
                link: 0,
                meta_end: 0,
                stride: plain,
            };
        }
        let a = align.max(8);
        let z = flags.contains(DebugFlags::REDZONE);
        let lead = if z { a } else { 0 };
        let link = object_size.next_multiple_of(8) + if z { SLAB_RZ } else { 0 };
        let track = if flags.contains(DebugFlags::TRACK) {
            TRACK_BYTES
        } else {
            0
        };
        let meta_end = link + LINK_BYTES + track;
        SlotLayout {
            lead,
            size: object_size,
            link,
            meta_end,
            stride: (lead + meta_end).next_multiple_of(a),
        }
    }

    /// The three red zones `(from, len)` relative to the object.
    pub(super) fn redzones(&self) -> [(isize, usize); 3] {
        let lead = self.lead as isize;
        let tail = self.stride.saturating_sub(self.lead + self.meta_end);
        [
            (-lead, self.lead),
            (self.size as isize, self.link.saturating_sub(self.size)),
            (self.meta_end as isize, tail),
        ]
    }
}

impl CacheDesc {
    /// The cache's debug flags.
    pub(super) fn debug(&self) -> DebugFlags {
        DebugFlags::from_bits_truncate(((self.flags & C_DEBUG_MASK) >> C_DEBUG_SHIFT) as u8)
    }

    /// Offset of the free-list link from the object (0 without debug layout).
    #[inline(always)]
    pub(super) fn link_off(&self) -> usize {
        link_off(self.flags)
    }

    /// Bytes of the left red zone before each object (0 without `Z`).
    pub(super) fn lead(&self) -> usize {
        self.layout().lead
    }

    /// Usable size of an object: its size with a debug layout, else the stride.
    #[inline(always)]
    pub(super) fn usable(&self) -> usize {
        // A debug layout always has its link after the object (offset > 0).
        if link_off(self.flags) == 0 {
            self.stride as usize
        } else {
            self.object_size as usize
        }
    }

    /// The plain (non-debug) stride of this cache's objects: the object
    /// size, at least 8, rounded up to the alignment (for a built-in class,
    /// whose alignment divides its size, the class size).
    fn plain_stride(&self) -> usize {
        let a = (self.align as usize).max(8);
        (self.object_size as usize).max(8).next_multiple_of(a)
    }

    /// The slot layout under the cache's current flags.
    pub(super) fn layout(&self) -> SlotLayout {
        let d = self.debug();
        let plain = if d.changes_layout() {
            (self.object_size as usize).next_multiple_of(8)
        } else {
            self.stride as usize
        };
        SlotLayout::new(d, self.object_size as usize, self.align as usize, plain)
    }

    /// Whether stride, capacity and span size are what the object size,
    /// alignment and debug flags give ([`CacheDesc::apply_debug`]), and for
    /// built-in class `ci` whether size and alignment are the class's:
    /// damage there would give slabs whose objects overlap, which no other
    /// check sees. For `validate` and `slab_new`.
    pub(super) fn geometry_is_derived(&self, ci: usize) -> bool {
        if self.flags & C_BUILTIN != 0
            && (ci >= NUM_CACHES
                || self.object_size as usize != class_size(ci)
                || self.align as usize != class_align(ci))
        {
            return false;
        }
        if self.object_size == 0 || !self.align.is_power_of_two() {
            return false;
        }
        let mut d = *self;
        d.apply_debug(self.debug());
        (d.stride, d.capacity, d.span_size) == (self.stride, self.capacity, self.span_size)
    }

    /// Sets the debug flags and derives stride, capacity, span size and
    /// link offset from them (only valid while the cache has no slab).
    pub(super) fn apply_debug(&mut self, flags: DebugFlags) {
        let plain = self.plain_stride();
        let l = SlotLayout::new(flags, self.object_size as usize, self.align as usize, plain);
        let (cap, span) = slab_geometry_lead(l.stride, self.align as usize, l.lead);
        self.stride = l.stride as u32;
        self.capacity = cap as u32;
        self.span_size = span as u32;
        let keep = self.flags & !(C_DEBUG_MASK | (0xffff << C_LINK_SHIFT));
        self.flags = keep
            | (u32::from(flags.bits()) << C_DEBUG_SHIFT)
            | ((l.link as u32 & 0xffff) << C_LINK_SHIFT);
    }
}

/// How many released slabs heap-wide `P` remembers (`DebugState::ghosts`).
pub(super) const GHOST_SLABS: usize = 4;

/// Heap-wide debug state.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct DebugState {
    /// Flags for large blocks and the default of new caches.
    pub(super) flags: DebugFlags,
    /// Next owner-tracking sequence number.
    pub(super) seq: u64,
    /// Clock for owner tracking (ns), if the caller gave one.
    pub(super) clock: Option<fn() -> u64>,
    /// Copies of the dead descriptors of the last slabs released under
    /// heap-wide `P` (a ring): the release poisons the span, its dead
    /// descriptor included, so `Heap::slab_ghost_object` reads the copy.
    pub(super) ghosts: [SlabDesc; GHOST_SLABS],
    /// Spans recorded in `ghosts` so far; the next goes to slot
    /// `ghost_next % GHOST_SLABS`.
    pub(super) ghost_next: usize,
}

impl Corruption {
    /// For [`CorruptionKind::RedZone`] and [`CorruptionKind::Poison`]: the
    /// bytes found from the first bad one on (up to 7) and their count.
    pub fn found_bytes(&self) -> ([u8; 7], usize) {
        let mut b = [0u8; 7];
        let n = ((self.detail >> 56) as usize).min(7);
        for (i, slot) in b.iter_mut().enumerate().take(n) {
            *slot = (self.detail >> (8 * i)) as u8;
        }
        (b, n)
    }
}

/// Large-block payload needed for an object of `size` bytes under `flags`.
pub(super) fn large_payload(flags: DebugFlags, size: usize) -> Option<usize> {
    if !flags.changes_layout() || flags == DebugFlags::POISON {
        return Some(size);
    }
    let mut p = size.checked_next_multiple_of(8)?;
    if flags.contains(DebugFlags::REDZONE) {
        p = p.checked_add(LARGE_RZ)?;
    }
    if flags.contains(DebugFlags::TRACK) {
        p = p.checked_add(TRACK_BYTES)?;
    }
    Some(p)
}

impl Heap {
    /// Creates a heap like [`Heap::new`] with debug `flags` for the large
    /// blocks and as the initial flags of every cache (built-in and new).
    ///
    /// # Safety
    ///
    /// As for [`Heap::new`].
    pub unsafe fn with_debug(
        region: core::ptr::NonNull<u8>,
        len: usize,
        flags: DebugFlags,
    ) -> Result<Heap, super::error::InitError> {
        // SAFETY: forwarded from the caller's contract.
        let mut h = unsafe { Heap::new(region, len) }?;
        h.dbg.flags = flags;
        for idx in 0..NUM_CACHES {
            if let Some(c) = h.cache_mut(idx) {
                c.apply_debug(flags);
            }
        }
        if flags.contains(DebugFlags::POISON) {
            let from = h.blocks_start + HEADER_SIZE + LINK_BYTES;
            h.mem.fill(from, len.saturating_sub(from), POISON_FREE);
        }
        Ok(h)
    }

    /// Heap-wide debug flags (large blocks, default of new caches).
    pub fn debug_flags(&self) -> DebugFlags {
        self.dbg.flags
    }

    /// Gives owner tracking a clock (ns); without one, times are 0.
    pub fn set_clock(&mut self, clock: fn() -> u64) {
        self.dbg.clock = Some(clock);
    }

    /// Sets the debug flags of cache `id`. Only while it has no slab
    /// (`Busy` otherwise: free its objects, then `shrink`).
    pub fn set_cache_debug(&mut self, id: CacheId, flags: DebugFlags) -> Result<(), CacheError> {
        let idx = self.resolve(id).ok_or(CacheError::NoSuchCache)?;
        let Some(c) = self.cache_mut(idx) else {
            return Err(CacheError::NoSuchCache);
        };
        if c.counts != [0; 3] || c.active_objs != 0 {
            return Err(CacheError::Busy);
        }
        c.apply_debug(flags);
        Ok(())
    }

    /// Debug flags of cache `id`.
    pub fn cache_debug(&self, id: CacheId) -> Option<DebugFlags> {
        self.resolve(id).map(|i| self.cache(i).debug())
    }
}

/// Counts a detected corruption in the per-kind debug counters.
pub(super) fn count_kind(h: &mut Heap, c: &Corruption) {
    match c.kind {
        CorruptionKind::RedZone => h.ctr.redzone_errors = h.ctr.redzone_errors.wrapping_add(1),
        CorruptionKind::Poison => h.ctr.poison_errors = h.ctr.poison_errors.wrapping_add(1),
        _ => {}
    }
}
