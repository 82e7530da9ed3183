// SPDX-License-Identifier: GPL-2.0

//! Debug features in the spirit of `slub_debug`: red zones (`Z`), poisoning
//! (`P`), owner tracking (`U`) and sanity checks on every operation (`F`).
//!
//! Flags are per cache (stored in bits 8..12 of the cache descriptor's flag
//! word) and heap-wide for large blocks ([`Heap::with_debug`]); new caches
//! start with the heap-wide flags. A cache's flags can only change while it
//! has no slab, because the slot layout is derived from them when a slab is
//! created. With no flag set nothing here runs: the hot paths test one flag
//! word and the object layout is the plain one.
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

use core::fmt;

use super::block::Block;
use super::cache::{CacheDesc, CacheId};
use super::config::{class_size, HEADER_SIZE, NUM_CACHES, TOTAL_CACHES};
use super::error::{AllocError, CacheError, Corruption, CorruptionKind, FreeError};
use super::heap::Heap;
use super::slab::slab_geometry_lead;

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
const LINK_BYTES: usize = 8;
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
    fn redzones(&self) -> [(isize, usize); 3] {
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
        (self.flags >> C_LINK_SHIFT) as usize
    }

    /// Bytes of the left red zone before each object (0 without `Z`).
    pub(super) fn lead(&self) -> usize {
        self.layout().lead
    }

    /// Usable size of an object: its size with a debug layout, else the stride.
    #[inline(always)]
    pub(super) fn usable(&self) -> usize {
        if self.flags & C_DEBUG_MASK == 0 {
            self.stride as usize
        } else {
            self.layout().size
        }
    }

    /// The plain (non-debug) stride of this cache's objects.
    fn plain_stride(&self, builtin_idx: Option<usize>) -> usize {
        match builtin_idx {
            Some(i) => class_size(i),
            None => {
                let a = (self.align as usize).max(8);
                (self.object_size as usize).max(8).next_multiple_of(a)
            }
        }
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

    /// Sets the debug flags and derives stride, capacity, span size and
    /// link offset from them (only valid while the cache has no slab).
    pub(super) fn apply_debug(&mut self, flags: DebugFlags, builtin_idx: Option<usize>) {
        let plain = self.plain_stride(builtin_idx);
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

/// Heap-wide debug state.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct DebugState {
    /// Flags for large blocks and the default of new caches.
    pub(super) flags: DebugFlags,
    /// Next owner-tracking sequence number.
    pub(super) seq: u64,
    /// Clock for owner tracking (ns), if the caller gave one.
    pub(super) clock: Option<fn() -> u64>,
}

/// Owner record of a tracked allocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    /// Caller tag (0 = untagged; the module stores debugfs handle ID + 1).
    pub tag: u64,
    /// Allocation sequence number (1, 2, ... per heap).
    pub seq: u64,
    /// Time of the allocation from the heap's clock (ns; 0 without clock).
    pub time: u64,
}

/// A live tracked allocation, as listed by [`Heap::for_each_live`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveAlloc {
    /// Region offset of the object.
    pub offset: usize,
    /// Usable size.
    pub size: usize,
    /// Cache slot index, `None` for a large block.
    pub cache: Option<usize>,
    /// Its owner record.
    pub owner: Owner,
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
            let mut c = h.cache(idx);
            c.apply_debug(flags, Some(idx));
            h.set_cache(idx, &c);
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
        let mut c = self.cache(idx);
        if c.counts != [0; 3] || c.active_objs != 0 {
            return Err(CacheError::Busy);
        }
        c.apply_debug(flags, (idx < NUM_CACHES).then_some(idx));
        self.set_cache(idx, &c);
        Ok(())
    }

    /// Debug flags of cache `id`.
    pub fn cache_debug(&self, id: CacheId) -> Option<DebugFlags> {
        self.resolve(id).map(|i| self.cache(i).debug())
    }

    fn now(&self) -> u64 {
        self.dbg.clock.map_or(0, |c| c())
    }

    fn count_sanity(&mut self, c: Corruption) -> Corruption {
        self.ctr.sanity_errors = self.ctr.sanity_errors.wrapping_add(1);
        c
    }

    /// First byte of `from..from + len` that is not `want`, as a report.
    fn find_bad(&self, from: usize, len: usize, want: u8) -> Option<(usize, u64)> {
        let end = from.saturating_add(len);
        let word = u64::from_ne_bytes([want; 8]);
        let mut at = from;
        while at < end {
            if at.is_multiple_of(8) && at + 8 <= end {
                if self.mem.read::<u64>(at) == Some(word) {
                    at += 8;
                    continue;
                }
            } else if self.mem.read::<u8>(at) == Some(want) {
                at += 1;
                continue;
            }
            // Byte-wise from here to find the exact spot.
            while at < end && self.mem.read::<u8>(at) == Some(want) {
                at += 1;
            }
            if at < end {
                return Some((at, self.found(at, end)));
            }
        }
        None
    }

    /// Packs up to 7 bytes at `at..end` with their count in the top byte.
    fn found(&self, at: usize, end: usize) -> u64 {
        let n = end.saturating_sub(at).min(7);
        let mut v = (n as u64) << 56;
        for i in 0..n {
            let b = self.mem.read::<u8>(at + i).unwrap_or(0);
            v |= u64::from(b) << (8 * i);
        }
        v
    }

    /// Checks the red zones of the slot of `obj` against `want`.
    fn check_redzones(&self, l: &SlotLayout, obj: usize, want: u8) -> Result<(), Corruption> {
        for (rel, len) in l.redzones() {
            let from = obj.wrapping_add_signed(rel);
            if let Some((at, found)) = self.find_bad(from, len, want) {
                return Err(Corruption::new(CorruptionKind::RedZone, at, found));
            }
        }
        Ok(())
    }

    fn fill_redzones(&mut self, l: &SlotLayout, obj: usize, byte: u8) {
        for (rel, len) in l.redzones() {
            self.mem.fill(obj.wrapping_add_signed(rel), len, byte);
        }
    }

    /// Checks the poison of the free slab object `obj`.
    fn check_poison(&self, l: &SlotLayout, obj: usize) -> Result<(), Corruption> {
        let body = l.size.saturating_sub(1);
        let bad = |(at, found)| Corruption::new(CorruptionKind::Poison, at, found);
        if let Some(r) = self.find_bad(obj, body, POISON_FREE) {
            return Err(bad(r));
        }
        match self.find_bad(obj + body, 1, POISON_END) {
            Some(r) => Err(bad(r)),
            None => Ok(()),
        }
    }

    fn poison(&mut self, l: &SlotLayout, obj: usize) {
        self.mem.fill(obj, l.size, POISON_FREE);
        self.mem
            .fill(obj.wrapping_add(l.size.saturating_sub(1)), 1, POISON_END);
    }

    /// Puts the free state (inactive red zones, poison) into the slots of a
    /// new slab of cache `c`.
    pub(super) fn debug_slab_init(&mut self, c: &CacheDesc, obj_start: usize, cap: usize) {
        let d = c.debug();
        let l = c.layout();
        for i in 0..cap {
            let obj = obj_start.wrapping_add(i.wrapping_mul(l.stride));
            if d.contains(DebugFlags::REDZONE) {
                self.fill_redzones(&l, obj, RED_INACTIVE);
            }
            if d.contains(DebugFlags::POISON) {
                self.poison(&l, obj);
            }
        }
    }

    /// Checks of a free debug object `obj` of `span` (cache `c`) before it
    /// is handed out, and its switch to the live state. On damage the free
    /// state is restored (the object stays free) and the damage returned.
    pub(super) fn debug_slab_take(
        &mut self,
        c: &CacheDesc,
        span: usize,
        obj: usize,
    ) -> Result<(), Corruption> {
        let d = c.debug();
        if d.contains(DebugFlags::SANITY) {
            self.sanity_slab(span).map_err(|e| self.count_sanity(e))?;
        }
        let l = c.layout();
        let mut r = Ok(());
        if d.contains(DebugFlags::REDZONE) {
            r = self.check_redzones(&l, obj, RED_INACTIVE);
        }
        if r.is_ok() && d.contains(DebugFlags::POISON) {
            r = self.check_poison(&l, obj);
        }
        if let Err(e) = r {
            if d.contains(DebugFlags::REDZONE) {
                self.fill_redzones(&l, obj, RED_INACTIVE);
            }
            if d.contains(DebugFlags::POISON) {
                self.poison(&l, obj);
            }
            return Err(e);
        }
        if d.contains(DebugFlags::REDZONE) {
            self.fill_redzones(&l, obj, RED_ACTIVE);
        }
        if d.contains(DebugFlags::TRACK) {
            let t = obj.wrapping_add(l.link + LINK_BYTES);
            self.write_track(t);
        }
        Ok(())
    }

    /// Checks of a live debug object `obj` of `span` before it is freed,
    /// and its switch to the free state. On damage nothing changes.
    pub(super) fn debug_slab_release(
        &mut self,
        c: &CacheDesc,
        span: usize,
        obj: usize,
    ) -> Result<(), Corruption> {
        let d = c.debug();
        if d.contains(DebugFlags::SANITY) {
            self.sanity_slab(span).map_err(|e| self.count_sanity(e))?;
        }
        let l = c.layout();
        if d.contains(DebugFlags::REDZONE) {
            self.check_redzones(&l, obj, RED_ACTIVE)?;
            self.fill_redzones(&l, obj, RED_INACTIVE);
        }
        if d.contains(DebugFlags::POISON) {
            self.poison(&l, obj);
        }
        Ok(())
    }

    fn write_track(&mut self, at: usize) {
        self.dbg.seq = self.dbg.seq.wrapping_add(1);
        let (seq, time) = (self.dbg.seq, self.now());
        self.mem.write::<u64>(at, 0);
        self.mem.write::<u64>(at.wrapping_add(8), seq);
        self.mem.write::<u64>(at.wrapping_add(16), time);
    }

    fn read_track(&self, at: usize) -> Owner {
        Owner {
            tag: self.mem.read::<u64>(at).unwrap_or(0),
            seq: self.mem.read::<u64>(at.wrapping_add(8)).unwrap_or(0),
            time: self.mem.read::<u64>(at.wrapping_add(16)).unwrap_or(0),
        }
    }

    /// Usable size of the large block `b` (its request with a debug layout).
    pub(super) fn large_usable(&self, b: &Block) -> usize {
        if self.dbg.flags.changes_layout() && self.dbg.flags != DebugFlags::POISON {
            b.req as usize
        } else {
            b.payload_size()
        }
    }

    /// The red zone `(from, len)` of the large block `b` (empty without `Z`).
    fn large_redzone(&self, b: &Block) -> (usize, usize) {
        if !self.dbg.flags.contains(DebugFlags::REDZONE) {
            return (0, 0);
        }
        let track = if self.dbg.flags.contains(DebugFlags::TRACK) {
            TRACK_BYTES
        } else {
            0
        };
        let from = b.payload().wrapping_add(b.req as usize);
        (from, b.end().saturating_sub(track).saturating_sub(from))
    }

    /// Checks the poison of `from..end` in free large-block memory: stale
    /// headers of absorbed free blocks (and their links) are skipped.
    fn check_large_poison(&self, from: usize, end: usize) -> Result<(), Corruption> {
        let mut at = from;
        while at < end {
            let Some((bad, found)) = self.find_bad(at, end - at, POISON_FREE) else {
                return Ok(());
            };
            let h = bad & !15;
            let stale = h >= from.saturating_sub(8)
                && self.block(h).is_ok_and(|s| !s.used)
                && bad < h + HEADER_SIZE + LINK_BYTES;
            if !stale {
                return Err(Corruption::new(CorruptionKind::Poison, bad, found));
            }
            at = h + HEADER_SIZE + LINK_BYTES;
        }
        Ok(())
    }

    /// Poisons the payload of the large block `b` being freed (before its
    /// links are written). Called by `large_free` with `P` on.
    pub(super) fn poison_large(&mut self, b: &Block) {
        self.mem.fill(b.payload(), b.payload_size(), POISON_FREE);
    }

    /// Called by `insert_free` with `P` on, before it writes the links of
    /// the free block `b`: a stale header at the payload start would be
    /// half overwritten by them (and no longer recognisable), so it is
    /// poisoned whole, with its links; that in turn may cut a stale header
    /// 16 bytes further, and so on: the whole chain is poisoned.
    pub(super) fn poison_stale_at_links(&mut self, b: &Block) {
        let from = b.payload();
        let mut end = from.wrapping_add(LINK_BYTES);
        let mut at = from;
        while at < end && at < b.end() {
            if self.block(at).is_ok_and(|s| !s.used) {
                end = end.max(at.wrapping_add(HEADER_SIZE + LINK_BYTES));
            }
            at = at.wrapping_add(HEADER_SIZE);
        }
        let end = end.min(b.end());
        self.mem.fill(from, end.saturating_sub(from), POISON_FREE);
    }

    /// Debug checks and setup of a freshly allocated large block `b`
    /// holding `size` requested bytes. On poison damage the block goes back
    /// to the free pool (poisoned again) and the damage is returned.
    pub(super) fn debug_large_take(&mut self, b: &Block) -> Result<(), AllocError> {
        let f = self.dbg.flags;
        if f.contains(DebugFlags::SANITY) {
            if let Err(e) = self.sanity_large(b) {
                return Err(self.count_sanity(e).into());
            }
        }
        if f.contains(DebugFlags::POISON) {
            let from = b.payload().wrapping_add(LINK_BYTES);
            if let Err(e) = self.check_large_poison(from, b.end()) {
                self.large_free(*b)?;
                return Err(e.into());
            }
        }
        let (rz, len) = self.large_redzone(b);
        self.mem.fill(rz, len, RED_ACTIVE);
        if f.contains(DebugFlags::TRACK) {
            let t = b.end().wrapping_sub(TRACK_BYTES);
            self.write_track(t);
        }
        Ok(())
    }

    /// Debug checks of the live large block `b` before it is freed.
    pub(super) fn debug_large_release(&mut self, b: &Block) -> Result<(), FreeError> {
        if self.dbg.flags.contains(DebugFlags::SANITY) {
            if let Err(e) = self.sanity_large(b) {
                return Err(self.count_sanity(e).into());
            }
        }
        let (rz, len) = self.large_redzone(b);
        if let Some((at, found)) = self.find_bad(rz, len, RED_ACTIVE) {
            return Err(Corruption::new(CorruptionKind::RedZone, at, found).into());
        }
        Ok(())
    }

    /// `F` for a large block: both physical neighbours and their boundary tags.
    fn sanity_large(&self, b: &Block) -> Result<(), Corruption> {
        self.next_block(b)?;
        self.prev_block(b)?;
        Ok(())
    }

    /// Debug part of `validate` for block `b`: red zones of live objects and
    /// blocks, poison and red zones of free objects and free blocks.
    pub(super) fn debug_validate_block(&self, b: &Block) -> Result<(), Corruption> {
        if b.slab {
            let d = self.slab_desc(b.off)?;
            let c = self.cache(d.cache as usize);
            let f = c.debug();
            if !f.contains(DebugFlags::REDZONE) && !f.contains(DebugFlags::POISON) {
                return Ok(());
            }
            let l = c.layout();
            for i in 0..d.capacity as usize {
                let obj = (d.obj_start as usize).wrapping_add(i.wrapping_mul(l.stride));
                let live = i < d.bump as usize && self.slab_bit(b.off, i);
                if f.contains(DebugFlags::REDZONE) {
                    let want = if live { RED_ACTIVE } else { RED_INACTIVE };
                    self.check_redzones(&l, obj, want)?;
                }
                if !live && f.contains(DebugFlags::POISON) {
                    self.check_poison(&l, obj)?;
                }
            }
            return Ok(());
        }
        if b.used {
            let (rz, len) = self.large_redzone(b);
            if let Some((at, found)) = self.find_bad(rz, len, RED_ACTIVE) {
                return Err(Corruption::new(CorruptionKind::RedZone, at, found));
            }
        } else if self.dbg.flags.contains(DebugFlags::POISON) {
            self.check_large_poison(b.payload().wrapping_add(LINK_BYTES), b.end())?;
        }
        Ok(())
    }

    /// Region offset of the owner record of the live allocation at `off`.
    fn track_at(&self, off: usize) -> Option<usize> {
        match self.pagemap_lookup(off).ok()? {
            Some(span) => {
                let d = self.slab_desc(span.off).ok()?;
                let c = self.cache(d.cache as usize);
                let idx = Self::slab_obj_index(&d, off).ok()?;
                (c.debug().contains(DebugFlags::TRACK) && self.slab_bit(span.off, idx))
                    .then(|| off.wrapping_add(c.link_off() + LINK_BYTES))
            }
            None => {
                let b = self.block(off.checked_sub(HEADER_SIZE)?).ok()?;
                (b.used && !b.slab && self.dbg.flags.contains(DebugFlags::TRACK))
                    .then(|| b.end().wrapping_sub(TRACK_BYTES))
            }
        }
    }

    /// Sets the caller tag of the tracked live allocation at `ptr`; false
    /// if it is not one (not live, or its cache does not track owners).
    pub fn set_owner(&mut self, ptr: *const u8, tag: u64) -> bool {
        let Some(off) = self.region_offset(ptr).filter(|&o| o >= self.blocks_start) else {
            return false;
        };
        match self.track_at(off) {
            Some(t) => {
                self.mem.write::<u64>(t, tag);
                true
            }
            None => false,
        }
    }

    /// The owner record of the tracked live allocation at `ptr`.
    pub fn owner_of(&self, ptr: *const u8) -> Option<Owner> {
        let off = self
            .region_offset(ptr)
            .filter(|&o| o >= self.blocks_start)?;
        self.track_at(off).map(|t| self.read_track(t))
    }

    /// Whether any cache or the large blocks track owners.
    pub fn tracking(&self) -> bool {
        self.dbg.flags.contains(DebugFlags::TRACK)
            || (0..TOTAL_CACHES).any(|i| {
                let c = self.cache(i);
                c.active() && c.debug().contains(DebugFlags::TRACK)
            })
    }

    /// Calls `f` for every live allocation whose owner is tracked, in
    /// address order. Returns how many; stops at damaged metadata.
    pub fn for_each_live(&self, mut f: impl FnMut(&LiveAlloc)) -> Result<usize, Corruption> {
        let mut n = 0usize;
        let mut off = self.blocks_start;
        let mut steps = 0usize;
        while off < self.mem.len() {
            if steps > self.tlsf.block_count {
                return Err(Corruption::new(CorruptionKind::BadSize, off, 0));
            }
            steps += 1;
            let b = self.block(off)?;
            if b.used && b.slab {
                let d = self.slab_desc(b.off)?;
                let c = self.cache(d.cache as usize);
                if c.debug().contains(DebugFlags::TRACK) {
                    let stride = d.stride as usize;
                    for i in 0..(d.bump as usize).min(d.capacity as usize) {
                        if !self.slab_bit(b.off, i) {
                            continue;
                        }
                        let obj = (d.obj_start as usize).wrapping_add(i.wrapping_mul(stride));
                        let t = obj.wrapping_add(c.link_off() + LINK_BYTES);
                        f(&LiveAlloc {
                            offset: obj,
                            size: c.usable(),
                            cache: Some(d.cache as usize),
                            owner: self.read_track(t),
                        });
                        n += 1;
                    }
                }
            } else if b.used && self.dbg.flags.contains(DebugFlags::TRACK) {
                f(&LiveAlloc {
                    offset: b.payload(),
                    size: self.large_usable(&b),
                    cache: None,
                    owner: self.read_track(b.end().wrapping_sub(TRACK_BYTES)),
                });
                n += 1;
            }
            off = b.end();
        }
        Ok(n)
    }

    /// The object (region offset of its start) whose slot or block contains
    /// region offset `off`, live or free: to name the allocation behind a
    /// red-zone or poison report.
    pub fn object_at(&self, off: usize) -> Option<usize> {
        if let Ok(Some(span)) = self.pagemap_lookup(off) {
            let d = self.slab_desc(span.off).ok()?;
            let c = self.cache(d.cache as usize);
            let first = (d.obj_start as usize).checked_sub(c.lead())?;
            let idx = off.checked_sub(first)? / (d.stride as usize).max(1);
            return (idx < d.capacity as usize)
                .then(|| (d.obj_start as usize).wrapping_add(idx * d.stride as usize));
        }
        let mut b = self.block(self.blocks_start).ok()?;
        let mut steps = 0usize;
        while b.end() <= off {
            b = self.next_block(&b).ok()??;
            steps += 1;
            if steps > self.tlsf.block_count {
                return None;
            }
        }
        (off >= b.payload()).then(|| b.payload())
    }

    /// Bounds `(from, to)` of the slot or block of the live allocation at
    /// region offset `off` (for `scribble`).
    pub(super) fn slot_bounds(&self, off: usize) -> Option<(usize, usize)> {
        match self.pagemap_lookup(off).ok()? {
            Some(span) => {
                let d = self.slab_desc(span.off).ok()?;
                let c = self.cache(d.cache as usize);
                let from = off.checked_sub(c.lead())?;
                Some((from, from.wrapping_add(d.stride as usize)))
            }
            None => {
                let b = self.block(off.checked_sub(HEADER_SIZE)?).ok()?;
                Some((b.payload(), b.end()))
            }
        }
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
