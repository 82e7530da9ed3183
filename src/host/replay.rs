// SPDX-License-Identifier: GPL-2.0

//! Replays a parsed trace against the ikos core or the system allocator.
//!
//! IDs are first mapped to dense slots so that the timed loop does no
//! hashing. An operation that cannot be carried out (allocation failure,
//! free or resize of an ID that is not live, allocation of an ID that is
//! still live) is skipped and counted as failed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::ptr::NonNull;
use std::time::Instant;
use std::vec::Vec;

use super::trace::Op;
use crate::allocator::config::{class_size, MAX_SIZE, MIN_HEAP_SIZE, MIN_SIZE, PAGE_SIZE};
use crate::allocator::{size_class_for, CacheError, CacheId, Heap};

#[derive(Clone, Copy, Debug)]
enum Step {
    Alloc {
        slot: usize,
        size: usize,
        align: usize,
    },
    Free {
        slot: usize,
    },
    Realloc {
        slot: usize,
        size: usize,
    },
}

/// A trace with IDs mapped to dense slots.
#[derive(Clone, Debug)]
pub struct Prepared {
    steps: Vec<Step>,
    slots: usize,
}

impl Prepared {
    /// Maps the IDs of `ops` to slots.
    pub fn new(ops: &[Op]) -> Self {
        let mut ids: HashMap<u64, usize> = HashMap::new();
        let mut slot = |id: u64| {
            let n = ids.len();
            *ids.entry(id).or_insert(n)
        };
        let steps = ops
            .iter()
            .map(|op| match *op {
                Op::Alloc { id, size, align } => Step::Alloc {
                    slot: slot(id),
                    size,
                    align,
                },
                Op::Free { id } => Step::Free { slot: slot(id) },
                Op::Realloc { id, size } => Step::Realloc {
                    slot: slot(id),
                    size,
                },
            })
            .collect();
        Prepared {
            steps,
            slots: ids.len(),
        }
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// True for a trace without operations.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// Result of one replay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Operations replayed (failed ones included).
    pub ops: usize,
    /// Operations that failed or were skipped.
    pub failed: usize,
    /// Wall time of the replay loop in nanoseconds.
    pub elapsed_ns: u128,
    /// Peak of the sum of requested sizes of live allocations.
    pub peak_live: usize,
    /// Highest end (offset + usable size) of any allocation, relative to
    /// the heap start; `None` where not measurable.
    pub footprint: Option<usize>,
}

impl Report {
    /// Nanoseconds per operation (0 for an empty trace).
    pub fn ns_per_op(&self) -> u128 {
        match self.ops {
            0 => 0,
            n => self.elapsed_ns / n as u128,
        }
    }

    /// `footprint / peak_live` in thousandths, when both are known.
    pub fn fragmentation_milli(&self) -> Option<u128> {
        let f = self.footprint?;
        let live = self.peak_live as u128;
        (live > 0).then(|| (f as u128 * 1000 + live / 2) / live)
    }
}

/// What the replayer needs from an allocator.
trait Backend {
    fn alloc(&mut self, size: usize, align: usize) -> Option<NonNull<u8>>;
    /// # Safety
    /// `p` came from this backend with this size and alignment.
    unsafe fn free(&mut self, p: NonNull<u8>, size: usize, align: usize);
    /// # Safety
    /// `p` came from this backend with this size and alignment.
    unsafe fn realloc(
        &mut self,
        p: NonNull<u8>,
        size: usize,
        align: usize,
        new: usize,
    ) -> Option<NonNull<u8>>;
    /// Called after every successful allocation when tracking.
    fn observe(&mut self, _p: NonNull<u8>) {}
}

#[derive(Clone, Copy)]
struct Live {
    p: NonNull<u8>,
    size: usize,
    align: usize,
}

fn run<B: Backend>(b: &mut B, p: &Prepared, track: bool) -> Report {
    let mut live: Vec<Option<Live>> = std::vec![None; p.slots];
    let (mut failed, mut cur, mut peak) = (0usize, 0usize, 0usize);
    let t = Instant::now();
    for step in &p.steps {
        match *step {
            Step::Alloc { slot, size, align } => {
                if live[slot].is_some() {
                    failed += 1;
                    continue;
                }
                match b.alloc(size, align) {
                    Some(q) => {
                        if track {
                            b.observe(q);
                        }
                        live[slot] = Some(Live { p: q, size, align });
                        cur += size;
                        peak = peak.max(cur);
                    }
                    None => failed += 1,
                }
            }
            Step::Free { slot } => match live[slot].take() {
                Some(l) => {
                    // SAFETY: `l` is a live allocation of this backend.
                    unsafe { b.free(l.p, l.size, l.align) };
                    cur -= l.size;
                }
                None => failed += 1,
            },
            Step::Realloc { slot, size } => {
                let Some(l) = live[slot] else {
                    failed += 1;
                    continue;
                };
                // SAFETY: `l` is a live allocation of this backend.
                match unsafe { b.realloc(l.p, l.size, l.align, size) } {
                    Some(q) => {
                        if track {
                            b.observe(q);
                        }
                        live[slot] = Some(Live { p: q, size, ..l });
                        cur = cur - l.size + size;
                        peak = peak.max(cur);
                    }
                    None => failed += 1,
                }
            }
        }
    }
    let elapsed_ns = t.elapsed().as_nanos();
    for l in live.into_iter().flatten() {
        // SAFETY: still live allocations of this backend.
        unsafe { b.free(l.p, l.size, l.align) };
    }
    Report {
        ops: p.len(),
        failed,
        elapsed_ns,
        peak_live: peak,
        footprint: None,
    }
}

/// A what-if size class of [`replay_ikos_with_classes`]: a custom cache
/// of `size`-byte objects.
struct Extra {
    size: usize,
    id: CacheId,
}

struct Ikos<'a> {
    heap: &'a mut Heap,
    top: usize,
    /// What-if classes, ascending by size.
    extra: Vec<Extra>,
    /// Live objects of the what-if classes: address to index in `extra`.
    owner: HashMap<usize, usize>,
}

impl Ikos<'_> {
    /// The smallest what-if class that holds `size` bytes and is smaller
    /// than the built-in power-of-two class the request would get.
    fn extra_for(&self, size: usize, align: usize) -> Option<usize> {
        // The what-if caches are 8-byte aligned.
        if align > MIN_SIZE {
            return None;
        }
        let builtin = class_size(size_class_for(size, align)?);
        self.extra
            .iter()
            .position(|e| size <= e.size && e.size < builtin)
    }
}

impl Backend for Ikos<'_> {
    fn alloc(&mut self, size: usize, align: usize) -> Option<NonNull<u8>> {
        match self.extra_for(size, align) {
            Some(i) => {
                let p = self.heap.cache_alloc(self.extra[i].id).ok()?;
                self.owner.insert(p.as_ptr() as usize, i);
                Some(p)
            }
            None => self.heap.alloc_aligned(size, align),
        }
    }
    unsafe fn free(&mut self, p: NonNull<u8>, _size: usize, _align: usize) {
        let _ = match self.owner.remove(&(p.as_ptr() as usize)) {
            Some(i) => self.heap.cache_free(self.extra[i].id, p.as_ptr()),
            None => self.heap.free(p.as_ptr()),
        };
    }
    unsafe fn realloc(
        &mut self,
        p: NonNull<u8>,
        size: usize,
        align: usize,
        new: usize,
    ) -> Option<NonNull<u8>> {
        let old = self.owner.get(&(p.as_ptr() as usize)).copied();
        let to = self.extra_for(new, align);
        match (old, to) {
            (None, None) => self.heap.realloc(p.as_ptr(), new).ok(),
            // Same what-if class: the object already holds `new` bytes.
            (Some(a), Some(b)) if a == b => Some(p),
            _ => {
                // Into or out of a what-if class: move, as the heap's
                // realloc moves between classes.
                let n = self.alloc(new, align)?;
                // SAFETY: both blocks hold at least `min(size, new)` bytes
                // and are distinct live allocations.
                unsafe { core::ptr::copy_nonoverlapping(p.as_ptr(), n.as_ptr(), size.min(new)) };
                // SAFETY: forwarded contract: `p` is live in this backend.
                unsafe { self.free(p, size, align) };
                Some(n)
            }
        }
    }
    fn observe(&mut self, p: NonNull<u8>) {
        let off = self.heap.region_offset(p.as_ptr()).unwrap_or(0);
        let usable = self.heap.usable_size(p.as_ptr()).unwrap_or(0);
        self.top = self.top.max(off + usable);
    }
}

/// Replays against `heap` twice: a timed pass, then (after the timed pass
/// freed everything) an untimed pass that records the footprint. Both
/// passes see the same allocator decisions, since the heap is deterministic
/// and returns to its initial free state in between.
pub fn replay_ikos(heap: &mut Heap, p: &Prepared) -> Report {
    let mut b = Ikos {
        heap,
        top: 0,
        extra: Vec::new(),
        owner: HashMap::new(),
    };
    replay_passes(&mut b, p)
}

/// [`replay_ikos`] with what-if size classes: a request that fits one of
/// `sizes` (multiples of 8 below 4096, not powers of two) and would round
/// up to a larger built-in class goes to a custom cache of that object
/// size instead (alignment at most 8). For measuring what a finer class
/// table would do to the footprint; the caches are destroyed afterwards.
pub fn replay_ikos_with_classes(
    heap: &mut Heap,
    p: &Prepared,
    sizes: &[usize],
) -> Result<Report, CacheError> {
    let mut sorted = sizes.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut extra = Vec::new();
    let mut created = Ok(());
    for size in sorted {
        if size > MAX_SIZE || size.is_power_of_two() || !size.is_multiple_of(MIN_SIZE) {
            created = Err(CacheError::InvalidSize);
            break;
        }
        match heap.cache_create(&std::format!("whatif-{size}"), size, MIN_SIZE) {
            Ok(id) => extra.push(Extra { size, id }),
            Err(e) => {
                created = Err(e);
                break;
            }
        }
    }
    let ids: Vec<CacheId> = extra.iter().map(|e| e.id).collect();
    let r = created.map(|()| {
        let mut b = Ikos {
            heap: &mut *heap,
            top: 0,
            extra,
            owner: HashMap::new(),
        };
        replay_passes(&mut b, p)
    });
    for id in ids {
        // Every object went back in `run`, so only damage can refuse.
        heap.cache_destroy(id)?;
    }
    r
}

/// The two passes of [`replay_ikos`].
fn replay_passes(b: &mut Ikos<'_>, p: &Prepared) -> Report {
    let mut r = run(b, p, false);
    let _ = b.heap.shrink();
    run(b, p, true);
    r.footprint = Some(b.top);
    r
}

struct Sys;

impl Backend for Sys {
    fn alloc(&mut self, size: usize, align: usize) -> Option<NonNull<u8>> {
        let l = Layout::from_size_align(size, align).ok()?;
        // SAFETY: `size` is non-zero (trace sizes are > 0).
        NonNull::new(unsafe { System.alloc(l) })
    }
    unsafe fn free(&mut self, p: NonNull<u8>, size: usize, align: usize) {
        // SAFETY: forwarded; the layout is the one used to allocate.
        unsafe { System.dealloc(p.as_ptr(), Layout::from_size_align_unchecked(size, align)) }
    }
    unsafe fn realloc(
        &mut self,
        p: NonNull<u8>,
        size: usize,
        align: usize,
        new: usize,
    ) -> Option<NonNull<u8>> {
        // A size that would overflow with this alignment fails like an
        // allocation failure instead of invoking undefined behaviour.
        Layout::from_size_align(new, align).ok()?;
        // SAFETY: forwarded; the layout is the one used to allocate and
        // `new` is non-zero and valid for `align`.
        NonNull::new(unsafe {
            System.realloc(
                p.as_ptr(),
                Layout::from_size_align_unchecked(size, align),
                new,
            )
        })
    }
}

/// Replays against the system allocator (footprint not measurable).
pub fn replay_system(p: &Prepared) -> Report {
    run(&mut Sys, p, false)
}

/// The size of the smallest heap region that holds a block area of
/// `block_top` bytes: a multiple of the page size, at least the minimum
/// heap size, with room for its own metadata area in front (which grows
/// with the region: one page-map entry per page). `None` on overflow.
///
/// `kalloc-replay` measures the footprint of a trace as this size for the
/// highest block byte it handed out, and then replays the trace on a heap
/// of that size to show that it is enough.
pub fn heap_bytes_for_block_top(block_top: usize) -> Option<usize> {
    let mut len = block_top.checked_next_multiple_of(PAGE_SIZE)?;
    // `metadata_bytes_for` grows by 8 bytes per page of `len`, so this
    // converges in a few steps; the bound is only a guard.
    for _ in 0..64 {
        let need = Heap::metadata_bytes_for(len)?
            .checked_add(block_top)?
            .checked_next_multiple_of(PAGE_SIZE)?
            .max(MIN_HEAP_SIZE);
        if need <= len {
            return Some(len);
        }
        len = need;
    }
    None
}
