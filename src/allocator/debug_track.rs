// SPDX-License-Identifier: GPL-2.0

//! Owner tracking (debug `U`): a record (caller tag, sequence number,
//! time) per allocation in the slot or block (see `debug` for where),
//! written when it is handed out; [`Heap::set_owner`] tags it afterwards,
//! [`Heap::for_each_live`] lists the live ones (debugfs `leaks`, the
//! module's unload summary).

use super::config::{HEADER_SIZE, TOTAL_CACHES};
use super::debug::{DebugFlags, LINK_BYTES, TRACK_BYTES};
use super::error::Corruption;
use super::heap::Heap;

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

impl Heap {
    fn now(&self) -> u64 {
        self.dbg.clock.map_or(0, |c| c())
    }

    pub(super) fn write_track(&mut self, at: usize) {
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
        // `block` refuses a block shorter than `MIN_BLOCK` or past the
        // region's end, so the walk ends within `len / MIN_BLOCK` steps.
        while off < self.mem.len() {
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
}
