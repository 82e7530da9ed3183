// SPDX-License-Identifier: GPL-2.0

//! The magazine depot: free objects of the built-in size classes parked
//! under the heap lock between the per-CPU magazines (Bonwick's depot,
//! SLUB's barn of full sheaves).
//!
//! A drain of a full magazine moves its top half (the most recently freed
//! objects) here instead of giving each object back to its slab, and a
//! refill of an empty magazine takes the most recently parked objects from
//! here, in the order they were parked, before it takes any from the
//! slabs. Both are copies of magazine entries (object, bitmap word and bit,
//! reused): no free-list or bitmap checks and no descriptor, list or
//! counter updates per object, and one bounds check per batch
//! (`Region::words`) rather than per entry.
//! That is what a workload pays that allocates more objects than a
//! magazine holds and then frees them (the benchmark's `batch64`).
//!
//! Depot objects are *cached* like magazine objects: taken from their
//! slabs, bitmap bit clear, counted in `magazine_objects`; `validate`
//! checks every entry ([`Heap::depot_check`]) and that per class the taken
//! objects without a live bit are exactly the magazine and depot objects.
//! Every flush ([`Heap::magazine_flush`]: `shrink`, module exit, an
//! allocation that would fail) returns them to their slabs.
//!
//! The entries live in the metadata area, after the page map: per class
//! at most [`DEPOT_MAX_ENTRIES`] entries and [`DEPOT_MAX_BYTES`] of
//! objects (1,024 of 64 bytes, 16 of 4 KiB), 5,104 entries in all, so
//! 40,832 bytes (0.49%) on the default 8 MiB heap; regions below 8 MiB get
//! a proportional share (39 entries on a 64 KiB one). Being inside the
//! region, an entry carries a check tag (`Entry::to_depot`): a refill
//! drops one whose tag does not match, so a damaged entry is never handed
//! out.

use super::config::{class_size, NUM_CACHES};
use super::error::{Corruption, CorruptionKind};
use super::heap::Heap;
use super::magazine::Entry;
use super::magazine_heap::HeldSums;

/// Most entries the depot keeps per class.
pub const DEPOT_MAX_ENTRIES: usize = 1024;

/// Most bytes of objects the depot keeps per class.
pub const DEPOT_MAX_BYTES: usize = 64 * 1024;

/// Regions of at least this size get the whole depot; smaller ones a
/// proportional share, so that its entries never take more than 0.5% of
/// the region.
const DEPOT_FULL_REGION: usize = 8 << 20;

/// Bytes of one depot entry.
const ENTRY_BYTES: usize = 8;

/// Entries the depot of a heap of `len` bytes keeps for class `class`:
/// `min(1024, 64 KiB / class size)`, scaled by `len / 8 MiB` below 8 MiB.
pub const fn depot_capacity(class: usize, len: usize) -> usize {
    if class >= NUM_CACHES {
        return 0;
    }
    let by_bytes = DEPOT_MAX_BYTES / class_size(class);
    let full = if by_bytes < DEPOT_MAX_ENTRIES {
        by_bytes
    } else {
        DEPOT_MAX_ENTRIES
    };
    if len >= DEPOT_FULL_REGION {
        full
    } else {
        // Both factors are small (1,024 and 128 at most): no overflow.
        full * (len >> 16) / (DEPOT_FULL_REGION >> 16)
    }
}

/// Index of the first entry of class `class` in the depot area (for
/// `class == NUM_CACHES`: the number of entries of all classes).
const fn depot_first(class: usize, len: usize) -> usize {
    let mut i = 0;
    let mut n = 0;
    while i < class && i < NUM_CACHES {
        n += depot_capacity(i, len);
        i += 1;
    }
    n
}

/// Bytes of the depot area of a heap of `len` bytes.
pub(super) const fn depot_bytes(len: usize) -> usize {
    depot_first(NUM_CACHES, len) * ENTRY_BYTES
}

impl Heap {
    /// Offset of the first entry of class `class` in the depot area.
    fn depot_base(&self, class: usize) -> usize {
        let first = depot_first(class, self.mem.len());
        self.depot_off.wrapping_add(first.wrapping_mul(ENTRY_BYTES))
    }

    /// The stored words of entries `from..from + n` of class `class`, with
    /// one bounds check (empty if they were outside the region, which the
    /// layout rules out: every entry then reads as damaged).
    fn depot_words(&self, class: usize, from: usize, n: usize) -> &[u64] {
        let at = self
            .depot_base(class)
            .wrapping_add(from.wrapping_mul(ENTRY_BYTES));
        self.mem.words(at, n).unwrap_or(&[])
    }

    /// Objects of class `class` in the depot.
    pub(super) fn depot_count(&self, class: usize) -> usize {
        self.mags.depot.get(class).map_or(0, |&n| n as usize)
    }

    /// Objects in the depot, all classes.
    pub(super) fn depot_total(&self) -> u64 {
        self.mags.depot.iter().map(|&n| u64::from(n)).sum()
    }

    /// Parks as many of `entries` (objects of class `class` taken from a
    /// magazine) as the depot has room for, from the first; returns how
    /// many.
    pub(super) fn depot_put(&mut self, class: usize, entries: &[Entry]) -> usize {
        let have = self.depot_count(class);
        let room = depot_capacity(class, self.mem.len()).saturating_sub(have);
        let n = entries.len().min(room);
        let at = self
            .depot_base(class)
            .wrapping_add(have.wrapping_mul(ENTRY_BYTES));
        // The depot area ends before the first block, inside the region, so
        // this finds the words (else they stay unwritten and the take
        // reports them as damaged).
        if let Some(words) = self.mem.words_mut(at, n) {
            for (w, e) in words.iter_mut().zip(entries) {
                *w = e.to_depot();
            }
        }
        if let Some(c) = self.mags.depot.get_mut(class) {
            *c += n as u32;
        }
        n
    }

    /// Takes up to `out.len()` objects of class `class` from the depot
    /// (the most recently parked ones) into `out`; returns how many, and
    /// the first damage found. An entry whose check tag does not match
    /// (damage to the metadata area) is dropped, never handed out, and
    /// counted in `corruptions`; it no longer counts as cached, so its
    /// object (which the heap cannot name: it stays taken from its slab and
    /// is leaked) leaves the slabs' count of objects held for magazines one
    /// above `cached`, and `validate` keeps reporting the loss.
    pub(super) fn depot_take(
        &mut self,
        class: usize,
        out: &mut [Entry],
    ) -> (usize, Option<Corruption>) {
        let mut have = self.depot_count(class);
        let mut n = 0usize;
        // Dropped entries: how many, and the index of the first.
        let (mut bad, mut first_bad) = (0usize, None);
        // Each round takes the top `k` entries, at least one; a round after
        // the first happens only when entries were dropped.
        while n < out.len() && have > 0 {
            let k = (out.len() - n).min(have);
            have -= k;
            let words = self.depot_words(class, have, k);
            // In the order they were parked: the last one parked ends on top
            // of the magazine, the next to be handed out.
            for i in 0..k {
                let e = words.get(i).and_then(|&w| Entry::from_depot(w));
                match (e, out.get_mut(n)) {
                    (Some(e), Some(slot)) => {
                        *slot = e;
                        n += 1;
                    }
                    _ => {
                        bad += 1;
                        first_bad.get_or_insert(have + i);
                    }
                }
            }
        }
        if let Some(c) = self.mags.depot.get_mut(class) {
            *c = have as u32;
        }
        if let Some(c) = self.mags.cached.get_mut(class) {
            *c = c.wrapping_sub(bad as u32);
        }
        let mut damage = None;
        for _ in 0..bad {
            let at = first_bad.unwrap_or(0) as u64;
            let c = Corruption::new(CorruptionKind::MagazineEntry, class, at);
            damage.get_or_insert(self.note_corruption(c));
        }
        (n, damage)
    }

    /// Returns every depot object to its slab (see
    /// `Heap::slab_put_many`), in batches taken with [`Heap::depot_take`];
    /// returns how many went back. At damage the class's remaining entries
    /// are dropped (never handed out again) and the first damage is
    /// counted and returned.
    pub(super) fn depot_flush(&mut self) -> Result<usize, Corruption> {
        let mut done = 0usize;
        let mut first_err = None;
        let mut batch = [Entry::default(); 64];
        for class in 0..NUM_CACHES {
            // Taken out of the depot (the takes already uncounted the
            // entries they dropped).
            let mut taken = 0usize;
            // Each take removes at least one entry, so this ends.
            while self.depot_count(class) > 0 {
                let (k, bad) = self.depot_take(class, &mut batch);
                taken += k;
                if let Some(c) = bad {
                    first_err.get_or_insert(c);
                }
                let objs = batch.iter().take(k).map(|e| e.obj());
                let (back, damage) = self.slab_put_many(objs);
                done += back;
                if let Some(c) = damage {
                    first_err.get_or_insert(self.note_corruption(c));
                    break;
                }
            }
            // After damage, the entries left are dropped with the rest.
            let left = self.depot_count(class);
            if let Some(c) = self.mags.cached.get_mut(class) {
                *c = c.wrapping_sub((taken + left) as u32);
            }
            if let Some(c) = self.mags.depot.get_mut(class) {
                *c = 0;
            }
        }
        match first_err {
            Some(c) => Err(c),
            None => Ok(done),
        }
    }

    /// Checks every depot entry like a magazine entry (see
    /// `Heap::check_cached_entry`); returns how many were checked.
    pub fn depot_check(&self) -> Result<usize, Corruption> {
        self.depot_check_into(&mut HeldSums::default())
    }

    /// [`Heap::depot_check`], adding the entries to `sums`.
    pub(super) fn depot_check_into(&self, sums: &mut HeldSums) -> Result<usize, Corruption> {
        let mut n = 0usize;
        for class in 0..NUM_CACHES {
            let have = self.depot_count(class);
            if have > depot_capacity(class, self.mem.len()) {
                return Err(Corruption::new(
                    CorruptionKind::MagazineEntry,
                    class,
                    have as u64,
                ));
            }
            let words = self.depot_words(class, 0, have);
            for i in 0..have {
                let bad = Corruption::new(CorruptionKind::MagazineEntry, class, i as u64);
                let e = words.get(i).and_then(|&w| Entry::from_depot(w));
                let e = e.ok_or(bad)?;
                self.check_cached_entry(class, e)?;
                sums.add(class, e.obj());
                n += 1;
            }
        }
        Ok(n)
    }
}
