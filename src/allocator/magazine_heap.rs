// SPDX-License-Identifier: GPL-2.0

//! The heap's side of the per-CPU magazines, under the heap lock: refills
//! and drains (through the magazine depot, `depot`), folding a
//! `CpuCache`'s events into the heap counters, flushes and checks. The
//! lock-free side is [`super::magazine`].

use super::config::{class_size, NUM_CACHES};
use super::error::{AllocError, Corruption, CorruptionKind};
use super::fast_view::fast_tag;
use super::heap::Heap;
use super::magazine::{magazine_capacity, ClassEvents, CpuCache, Entry};

/// Per size class, how many objects magazines (or the depot) hold and the
/// sum of [`held_hash`] over them: what [`Heap::validate_with`] compares
/// with the objects the slabs handed out but to no caller. The counts
/// alone agree when one object is held twice in place of another (a
/// copied magazine or depot entry); the sums do not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeldSums {
    pub(super) count: [usize; NUM_CACHES],
    pub(super) hash: [u64; NUM_CACHES],
}

impl HeldSums {
    /// Objects counted, over all classes.
    pub fn objects(&self) -> usize {
        self.count.iter().sum()
    }

    /// Counts object `obj` (a region offset) of class `class`.
    pub(super) fn add(&mut self, class: usize, obj: usize) {
        if let (Some(c), Some(h)) = (self.count.get_mut(class), self.hash.get_mut(class)) {
            *c += 1;
            *h = h.wrapping_add(held_hash(obj));
        }
    }
}

/// A bijective mix of an object's offset (SplitMix64's finalizer), so two
/// different objects never have the same hash: a multiset of objects with
/// one held twice in place of another always has another sum.
pub fn held_hash(obj: usize) -> u64 {
    let mut x = (obj as u64) ^ 0x9e37_79b9_7f4a_7c15;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Counters of the per-CPU layer kept by the heap.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct MagazineCounters {
    /// Objects handed to magazines and not (yet known to be) returned or
    /// allocated, per class; exact once every `CpuCache` is absorbed.
    pub(super) cached: [u32; NUM_CACHES],
    pub(super) fast_allocs: u64,
    pub(super) fast_frees: u64,
    pub(super) refills: u64,
    pub(super) drains: u64,
    /// Large blocks parked in per-CPU caches, and their bytes (headers
    /// included); exact once every `CpuCache` is absorbed.
    pub(super) large_cached: u64,
    pub(super) large_cached_bytes: u64,
    /// Objects in the depot, per class (also counted in `cached`).
    pub(super) depot: [u32; NUM_CACHES],
}

impl Heap {
    /// Fills the magazine of `class` in `cpu` to half its capacity (at least
    /// one object) with objects taken from the slabs. Returns how many were
    /// added; an error only when none could be taken (not counted: see
    /// [`Heap::fail_alloc`]): [`AllocError::BadCache`] for a class that
    /// does not exist or whose objects must take the locked path (debug
    /// flags: red zones and poison are kept by the locked path only).
    pub fn magazine_refill(
        &mut self,
        cpu: &mut CpuCache,
        class: usize,
    ) -> Result<usize, AllocError> {
        let m = cpu.mags.get_mut(class).ok_or(AllocError::BadCache)?;
        if fast_tag(class, self.cache(class)) == 0 {
            return Err(AllocError::BadCache);
        }
        let cap = magazine_capacity(class);
        let want = (cap / 2).max(1).saturating_sub(m.count);
        if want == 0 {
            return Ok(0);
        }
        let start = m.count;
        // Objects parked in the depot first: a copy of entries, and they
        // are already counted as cached.
        let from_depot = match m.slots.get_mut(start..start + want) {
            Some(out) => self.depot_take(class, out).0,
            None => 0,
        };
        let got = if from_depot > 0 {
            m.count += from_depot;
            from_depot
        } else {
            let got = self.slab_take(class, want, |t| {
                let (word, _) = Heap::bit_pos(t.span, t.idx);
                if let Some(slot) = m.slots.get_mut(m.count) {
                    *slot = Entry::new(t.obj, word, t.idx % 64, t.reused);
                    m.count += 1;
                }
            });
            // A failure is not counted here: the caller either falls back
            // to the slow path (out of memory) or counts it with
            // `fail_alloc`.
            let got = got?;
            if let Some(n) = self.mags.cached.get_mut(class) {
                *n = n.wrapping_add(got as u32);
            }
            got
        };
        if let Some(ev) = cpu.events.get_mut(class) {
            ev.note_added(m, start, m.count);
        }
        cpu.refills = cpu.refills.wrapping_add(1);
        Ok(got)
    }

    /// Moves the most recently freed objects of the `class` magazine of
    /// `cpu` to the depot (`depot.rs`), and what it has no room for back to
    /// their slabs in one batch (see `Heap::slab_put_many`), until at most
    /// `keep` remain (the top of the stack leaves, as a whole magazine does
    /// in Bonwick's and SLUB's exchanges, so nothing is moved down).
    /// Returns how many left the magazine. At an entry whose slab does not
    /// take it back (damage) the batch stops: that entry and the rest of
    /// the batch are dropped (never handed out again) and the damage is
    /// counted in `corruptions` and returned.
    pub fn magazine_drain(
        &mut self,
        cpu: &mut CpuCache,
        class: usize,
        keep: usize,
    ) -> Result<usize, Corruption> {
        self.magazine_release(cpu, class, keep, true)
    }

    /// [`Heap::magazine_drain`]; without `to_depot` every object goes back
    /// to its slab (a flush).
    fn magazine_release(
        &mut self,
        cpu: &mut CpuCache,
        class: usize,
        keep: usize,
        to_depot: bool,
    ) -> Result<usize, Corruption> {
        let Some(m) = cpu.mags.get_mut(class) else {
            return Ok(0);
        };
        let n = m.count.saturating_sub(keep);
        let from = m.count - n;
        if let Some(ev) = cpu.events.get_mut(class) {
            ev.note_removed(m, from, m.count);
        }
        let top = m.slots.get(from..m.count).unwrap_or(&[]);
        let parked = if to_depot {
            self.depot_put(class, top)
        } else {
            0
        };
        let objs = top.iter().skip(parked).map(|e| e.obj());
        let (done, damage) = self.slab_put_many(objs);
        // On damage the entries after the bad one cannot be trusted either:
        // they are dropped with it (leaked, never handed out again).
        m.count = from;
        // Parked objects stay cached.
        if let Some(c) = self.mags.cached.get_mut(class) {
            *c = c.wrapping_sub((n - parked) as u32);
        }
        cpu.drains = cpu.drains.wrapping_add(1);
        match damage {
            Some(c) => Err(self.note_corruption(c)),
            None => Ok(parked + done),
        }
    }

    /// Folds the fast-path events of `cpu` into the heap counters and
    /// resets them. After every `CpuCache` is absorbed the statistics are
    /// exact.
    pub fn magazine_absorb(&mut self, cpu: &mut CpuCache) {
        for (class, (ev, m)) in cpu.events.iter_mut().zip(cpu.mags.iter()).enumerate() {
            let now = ClassEvents::settled(m);
            let allocs = ev.allocs;
            let frees = now.expect.wrapping_add(allocs).wrapping_sub(ev.expect);
            let fresh_allocs = ev.expect_fresh.wrapping_sub(now.expect_fresh);
            let reuses = allocs.wrapping_sub(fresh_allocs);
            let requested = ev.requested;
            *ev = now;
            if allocs == 0 && frees == 0 {
                continue;
            }
            let size = class_size(class) as u64;
            let (alloc_bytes, free_bytes) = (allocs.wrapping_mul(size), frees.wrapping_mul(size));
            self.count_fast(
                allocs,
                frees,
                requested,
                alloc_bytes,
                (alloc_bytes, free_bytes),
            );
            let ctr = &mut self.ctr;
            ctr.slab_allocs = ctr.slab_allocs.wrapping_add(allocs);
            ctr.reuses = ctr.reuses.wrapping_add(reuses);
            let mg = &mut self.mags;
            if let Some(n) = mg.cached.get_mut(class) {
                *n = n.wrapping_add(frees as u32).wrapping_sub(allocs as u32);
            }
            if let Some(c) = self.cache_mut(class) {
                c.allocs = c.allocs.wrapping_add(allocs);
                c.frees = c.frees.wrapping_add(frees);
                c.reuses = c.reuses.wrapping_add(reuses);
                c.requested_total = c.requested_total.wrapping_add(requested);
            }
        }
        let mg = &mut self.mags;
        mg.refills = mg.refills.wrapping_add(core::mem::take(&mut cpu.refills));
        mg.drains = mg.drains.wrapping_add(core::mem::take(&mut cpu.drains));
        let bad = core::mem::take(&mut cpu.corruptions);
        self.ctr.corruptions = self.ctr.corruptions.wrapping_add(bad);
        self.large_cache_absorb(&mut cpu.large);
    }

    /// Folds fast-path allocations and frees into the heap-wide counters
    /// (the part the magazines and the large-block cache share): totals,
    /// requested and usable bytes of the allocations, the live requested
    /// bytes (`live.0` added, `live.1` taken) and the fast-path counts.
    pub(super) fn count_fast(
        &mut self,
        allocs: u64,
        frees: u64,
        requested: u64,
        usable: u64,
        live: (u64, u64),
    ) {
        let ctr = &mut self.ctr;
        ctr.total_allocs = ctr.total_allocs.wrapping_add(allocs);
        ctr.total_frees = ctr.total_frees.wrapping_add(frees);
        ctr.requested_total = ctr.requested_total.wrapping_add(requested);
        ctr.usable_total = ctr.usable_total.wrapping_add(usable);
        ctr.requested_live = ctr.requested_live.wrapping_add(live.0).wrapping_sub(live.1);
        let mg = &mut self.mags;
        mg.fast_allocs = mg.fast_allocs.wrapping_add(allocs);
        mg.fast_frees = mg.fast_frees.wrapping_add(frees);
    }

    /// Absorbs `cpu` and returns all its objects, and those of the depot,
    /// to the slabs (empty slabs then go back to the large pool as usual)
    /// and its parked large blocks to the TLSF lists. Returns how many
    /// objects and blocks went back.
    pub fn magazine_flush(&mut self, cpu: &mut CpuCache) -> Result<usize, Corruption> {
        self.magazine_absorb(cpu);
        let (mut n, mut first_err) = match self.large_cache_flush(cpu) {
            Ok(k) => (k, None),
            Err(c) => (0, Some(c)),
        };
        for class in 0..NUM_CACHES {
            match self.magazine_release(cpu, class, 0, false) {
                Ok(k) => n += k,
                Err(c) => {
                    first_err.get_or_insert(c);
                }
            }
        }
        match self.depot_flush() {
            Ok(k) => n += k,
            Err(c) => {
                first_err.get_or_insert(c);
            }
        }
        match first_err {
            Some(c) => Err(c),
            None => Ok(n),
        }
    }

    /// Adds the objects `cpu`'s magazines hold to `sums` (once
    /// [`Heap::magazine_check`] accepted them), for [`Heap::validate_with`].
    pub fn add_magazine_sums(&self, cpu: &CpuCache, sums: &mut HeldSums) {
        for (class, m) in cpu.mags.iter().enumerate() {
            // `held`: a paused cache keeps its counts aside.
            for e in m.slots.iter().take(cpu.held(class)) {
                sums.add(class, e.obj());
            }
        }
    }

    /// Checks every object `cpu` holds: a start of an object of the right
    /// class in a live slab, not marked live. Returns how many were checked;
    /// damage is counted in `corruptions`.
    pub fn magazine_check(&mut self, cpu: &CpuCache) -> Result<usize, Corruption> {
        self.magazine_check_inner(cpu)
            .map_err(|c| self.note_corruption(c))
    }

    fn magazine_check_inner(&self, cpu: &CpuCache) -> Result<usize, Corruption> {
        let mut n = 0usize;
        for (class, m) in cpu.mags.iter().enumerate() {
            for &e in m.slots.iter().take(m.count) {
                self.check_cached_entry(class, e)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Checks a magazine or depot entry of class `class`: the start of an
    /// object of that class in a live slab, with its bitmap word and bit,
    /// not marked live.
    pub(super) fn check_cached_entry(&self, class: usize, e: Entry) -> Result<(), Corruption> {
        let obj = e.obj();
        let bad = |d: u64| Corruption::new(CorruptionKind::MagazineEntry, obj, d);
        let span = self.pagemap_lookup(obj)?.ok_or(bad(0))?.off;
        let d = self.slab_desc(span)?;
        if d.cache as usize != class {
            return Err(bad(u64::from(d.cache)));
        }
        let idx = Self::slab_obj_index(&d, obj).map_err(|_| bad(span as u64))?;
        let (word, mask) = Heap::bit_pos(span, idx);
        if word != e.word() || mask != e.mask() || self.slab_bit(span, idx) {
            return Err(bad(span as u64));
        }
        Ok(())
    }

    /// Objects the heap has handed to magazines, per class (exact once
    /// every `CpuCache` is absorbed).
    pub(super) fn magazine_cached(&self, class: usize) -> u32 {
        self.mags.cached.get(class).copied().unwrap_or(0)
    }
}
