// SPDX-License-Identifier: GPL-2.0

//! Model-based property test: random operation sequences against a
//! reference model of live allocations. After every step: no overlap,
//! alignment, contents intact, `validate()` passes and the statistics equal
//! what the model computes. `PROPTEST_CASES` overrides the case count (256).

mod common;

use std::collections::BTreeMap;
use std::ptr::NonNull;

use common::{check, fill, TestHeap};
use ikos_kalloc::allocator::{AllocError, CacheId, Flags, FreeError, ReallocError};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Alloc {
        size: usize,
        align_log: u32,
        flags: u32,
    },
    Free {
        idx: usize,
    },
    Realloc {
        idx: usize,
        size: usize,
    },
    CacheCreate {
        size: usize,
        align_log: u32,
    },
    CacheAlloc {
        cidx: usize,
    },
    CacheFree {
        idx: usize,
        wrong: bool,
    },
    CacheDestroy {
        cidx: usize,
    },
    DoubleFree {
        idx: usize,
    },
    InteriorFree {
        idx: usize,
        delta: usize,
    },
    OutsideFree,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..=20_000, 3u32..=13, 0u32..16)
            .prop_map(|(size, align_log, flags)| Op::Alloc { size, align_log, flags }),
        3 => (1usize..=300, 3u32..=7, 0u32..16)
            .prop_map(|(size, align_log, flags)| Op::Alloc { size, align_log, flags }),
        5 => any::<usize>().prop_map(|idx| Op::Free { idx }),
        2 => (any::<usize>(), 1usize..=20_000).prop_map(|(idx, size)| Op::Realloc { idx, size }),
        1 => (1usize..=4096, 3u32..=12).prop_map(|(size, align_log)| Op::CacheCreate { size, align_log }),
        3 => any::<usize>().prop_map(|cidx| Op::CacheAlloc { cidx }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(idx, wrong)| Op::CacheFree { idx, wrong }),
        1 => any::<usize>().prop_map(|cidx| Op::CacheDestroy { cidx }),
        1 => any::<usize>().prop_map(|idx| Op::DoubleFree { idx }),
        1 => (any::<usize>(), 1usize..64).prop_map(|(idx, delta)| Op::InteriorFree { idx, delta }),
        1 => Just(Op::OutsideFree),
    ]
}

#[derive(Clone, Copy, Debug)]
struct Live {
    ptr: NonNull<u8>,
    /// Bytes owned (pattern length).
    len: usize,
    seed: u8,
    /// Requested bytes as the heap accounts them.
    req: u64,
    slab: bool,
    cache: Option<CacheId>,
}

#[derive(Default, Debug, PartialEq, Eq)]
struct Counters {
    allocs: u64,
    frees: u64,
    failed: u64,
    double: u64,
    invalid: u64,
    wrong: u64,
    dma: u64,
    requested: u64,
}

struct Model {
    live: Vec<Live>,
    ranges: BTreeMap<usize, usize>,
    caches: Vec<(CacheId, usize)>,
    c: Counters,
    seed: u8,
    names: usize,
}

/// Requested size accounted for a kmalloc-style request.
fn accounted(size: usize, align: usize) -> (u64, bool) {
    if size <= 4096 && align <= 64 {
        (size.max(align).max(8).next_power_of_two() as u64, true)
    } else {
        (size as u64, false)
    }
}

impl Model {
    fn insert(&mut self, h: &TestHeap, l: Live) {
        let start = l.ptr.as_ptr() as usize;
        let usable = h
            .usable_size(l.ptr.as_ptr())
            .expect("live pointer is valid");
        assert!(usable >= l.len);
        let end = start + usable;
        let base = h.region().as_ptr() as usize;
        assert!(start >= base && end <= base + h.len(), "inside region");
        if let Some((&s, &e)) = self.ranges.range(..end).next_back() {
            assert!(
                e <= start || s >= end,
                "overlap {s:#x}..{e:#x} vs {start:#x}..{end:#x}"
            );
        }
        self.ranges.insert(start, end);
        fill(l.ptr, l.len, l.seed);
        self.live.push(l);
    }

    fn remove(&mut self, i: usize) -> Live {
        let l = self.live.swap_remove(i);
        assert!(check(l.ptr, l.len, l.seed), "contents intact");
        self.ranges.remove(&(l.ptr.as_ptr() as usize));
        l
    }

    /// Drops entry `i` without checking (its memory may be gone already).
    fn forget(&mut self, i: usize) {
        let l = self.live.swap_remove(i);
        self.ranges.remove(&(l.ptr.as_ptr() as usize));
    }

    fn next_seed(&mut self) -> u8 {
        self.seed = self.seed.wrapping_add(37);
        self.seed
    }

    fn count_free_err(&mut self, e: FreeError) {
        match e {
            FreeError::DoubleFree => self.c.double += 1,
            FreeError::WrongCache => self.c.wrong += 1,
            FreeError::Corrupted(c) => panic!("unexpected corruption {c}"),
            _ => self.c.invalid += 1,
        }
    }
}

fn run(ops: &[Op]) {
    run_on(ops, 4 << 20);
}

fn run_on(ops: &[Op], heap_len: usize) {
    let mut h = TestHeap::new(heap_len);
    let mut m = Model {
        live: Vec::new(),
        ranges: BTreeMap::new(),
        caches: Vec::new(),
        c: Counters::default(),
        seed: 1,
        names: 0,
    };
    for op in ops {
        match *op {
            Op::Alloc {
                size,
                align_log,
                flags,
            } => {
                let align = 1usize << align_log;
                let flags = Flags::from_bits_truncate(flags);
                match h.alloc_flags(size, align, flags) {
                    Ok(p) => {
                        assert!(!flags.contains(Flags::DMA));
                        assert_eq!(p.as_ptr() as usize % align, 0);
                        if flags.contains(Flags::ZERO) {
                            let u = h.usable_size(p.as_ptr()).unwrap();
                            // SAFETY: `u` usable bytes belong to the allocation.
                            assert!((0..u).all(|i| unsafe { p.as_ptr().add(i).read() } == 0));
                        }
                        let (req, slab) = accounted(size, align);
                        m.c.allocs += 1;
                        m.c.requested += req;
                        let seed = m.next_seed();
                        m.insert(
                            &h,
                            Live {
                                ptr: p,
                                len: size,
                                seed,
                                req,
                                slab,
                                cache: None,
                            },
                        );
                    }
                    Err(AllocError::DmaUnsupported) => {
                        assert!(flags.contains(Flags::DMA));
                        m.c.failed += 1;
                        m.c.dma += 1;
                    }
                    Err(AllocError::OutOfMemory) => m.c.failed += 1,
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            Op::Free { idx } => {
                if m.live.is_empty() {
                    continue;
                }
                let l = m.remove(idx % m.live.len());
                h.free(l.ptr.as_ptr()).unwrap();
                m.c.frees += 1;
                m.c.requested -= l.req;
            }
            Op::Realloc { idx, size } => {
                let Some(i) = (!m.live.is_empty()).then(|| idx % m.live.len()) else {
                    continue;
                };
                let l = m.live[i];
                if l.cache.is_some() {
                    continue;
                }
                assert!(check(l.ptr, l.len, l.seed));
                match h.realloc(l.ptr.as_ptr(), size) {
                    Ok(p) => {
                        let keep = l.len.min(size);
                        assert!(check(p, keep, l.seed), "realloc keeps contents");
                        m.forget(i);
                        let (req, slab) = if p == l.ptr {
                            if l.slab {
                                (l.req, true)
                            } else {
                                (size as u64, false)
                            }
                        } else {
                            m.c.allocs += 1;
                            m.c.frees += 1;
                            accounted(size, 8)
                        };
                        m.c.requested = m.c.requested - l.req + req;
                        let seed = m.next_seed();
                        m.insert(
                            &h,
                            Live {
                                ptr: p,
                                len: size,
                                seed,
                                req,
                                slab,
                                cache: None,
                            },
                        );
                    }
                    Err(ReallocError::Alloc(AllocError::OutOfMemory)) => m.c.failed += 1,
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            Op::CacheCreate { size, align_log } => {
                m.names += 1;
                let name = format!("cache-{}", m.names);
                if let Ok(id) = h.cache_create(&name, size, 1 << align_log) {
                    m.caches.push((id, size));
                }
            }
            Op::CacheAlloc { cidx } => {
                if m.caches.is_empty() {
                    continue;
                }
                let (id, size) = m.caches[cidx % m.caches.len()];
                match h.cache_alloc(id) {
                    Ok(p) => {
                        let info = h.cache_info(id.index()).unwrap();
                        assert_eq!(p.as_ptr() as usize % info.align, 0);
                        m.c.allocs += 1;
                        m.c.requested += size as u64;
                        let seed = m.next_seed();
                        m.insert(
                            &h,
                            Live {
                                ptr: p,
                                len: size,
                                seed,
                                req: size as u64,
                                slab: true,
                                cache: Some(id),
                            },
                        );
                    }
                    Err(AllocError::OutOfMemory) => m.c.failed += 1,
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            Op::CacheFree { idx, wrong } => {
                let Some(i) = (0..m.live.len())
                    .map(|k| (k + idx) % m.live.len().max(1))
                    .find(|&k| m.live[k].cache.is_some())
                else {
                    continue;
                };
                let l = m.live[i];
                let id = l.cache.unwrap();
                let other = m.caches.iter().map(|c| c.0).find(|&c| c != id);
                if wrong {
                    if let Some(o) = other {
                        assert_eq!(h.cache_free(o, l.ptr.as_ptr()), Err(FreeError::WrongCache));
                        m.c.wrong += 1;
                        continue;
                    }
                }
                m.remove(i);
                h.cache_free(id, l.ptr.as_ptr()).unwrap();
                m.c.frees += 1;
                m.c.requested -= l.req;
            }
            Op::CacheDestroy { cidx } => {
                if m.caches.is_empty() {
                    continue;
                }
                let k = cidx % m.caches.len();
                let id = m.caches[k].0;
                let busy = m.live.iter().any(|l| l.cache == Some(id));
                match h.cache_destroy(id) {
                    Ok(()) => {
                        assert!(!busy);
                        m.caches.swap_remove(k);
                        assert!(h.cache_alloc(id).is_err());
                        m.c.failed += 1;
                    }
                    Err(e) => {
                        assert!(busy, "{e}");
                    }
                }
            }
            Op::DoubleFree { idx } => {
                if m.live.is_empty() {
                    continue;
                }
                let l = m.remove(idx % m.live.len());
                h.free(l.ptr.as_ptr()).unwrap();
                m.c.frees += 1;
                m.c.requested -= l.req;
                let e = h.free(l.ptr.as_ptr()).unwrap_err();
                assert_eq!(e, FreeError::DoubleFree, "immediate double free is exact");
                m.count_free_err(e);
            }
            Op::InteriorFree { idx, delta } => {
                if m.live.is_empty() {
                    continue;
                }
                let l = m.live[idx % m.live.len()];
                let u = h.usable_size(l.ptr.as_ptr()).unwrap();
                let d = delta % u;
                if d == 0 {
                    continue;
                }
                // SAFETY: stays inside the allocation.
                let p = unsafe { l.ptr.as_ptr().add(d) };
                let e = h.free(p).unwrap_err();
                assert!(
                    matches!(
                        e,
                        FreeError::Interior | FreeError::NotAllocated | FreeError::DoubleFree
                    ),
                    "{e}"
                );
                m.count_free_err(e);
            }
            Op::OutsideFree => {
                let mut x = 0u64;
                let e = h.free(std::ptr::from_mut(&mut x).cast()).unwrap_err();
                assert_eq!(e, FreeError::OutsideHeap);
                m.count_free_err(e);
            }
        }
        let rep = h.validate().unwrap_or_else(|c| panic!("after {op:?}: {c}"));
        assert!(rep.blocks_checked >= 1);
        let s = h.stats();
        let got = Counters {
            allocs: s.total_allocs,
            frees: s.total_frees,
            failed: s.failed_allocs,
            double: s.double_frees,
            invalid: s.invalid_frees,
            wrong: s.wrong_cache_frees,
            dma: s.dma_refusals,
            requested: s.requested_bytes,
        };
        assert_eq!(got, m.c, "after {op:?}");
        assert_eq!(s.active_allocs, m.live.len() as u64);
        assert_eq!(s.corruptions, 0);
        assert_eq!(s.used_bytes + s.free_bytes + s.overhead_bytes, s.heap_size);
    }
    // Free everything: back to one block.
    while !m.live.is_empty() {
        let l = m.remove(0);
        h.free(l.ptr.as_ptr()).unwrap();
    }
    for (id, _) in m.caches.drain(..) {
        h.cache_destroy(id).unwrap();
    }
    h.validate().unwrap();
    let s = h.stats();
    assert_eq!(s.blocks_total, 1);
    assert_eq!(s.largest_free_block, s.initial_largest_free_block);
}

/// Regression: shrunk failure of an earlier version.
#[test]
fn regression_double_free_1() {
    run(&[
        Op::Alloc {
            size: 6961,
            align_log: 5,
            flags: 8,
        },
        Op::Alloc {
            size: 17409,
            align_log: 10,
            flags: 8,
        },
        Op::Alloc {
            size: 1,
            align_log: 3,
            flags: 0,
        },
        Op::Free { idx: 0 },
        Op::Alloc {
            size: 1,
            align_log: 3,
            flags: 0,
        },
        Op::CacheCreate {
            size: 1,
            align_log: 3,
        },
        Op::Free {
            idx: 7820755451168929547,
        },
        Op::CacheAlloc { cidx: 0 },
        Op::CacheAlloc { cidx: 0 },
        Op::Alloc {
            size: 7921,
            align_log: 3,
            flags: 8,
        },
        Op::CacheAlloc { cidx: 0 },
        Op::CacheFree {
            idx: 0,
            wrong: false,
        },
        Op::CacheCreate {
            size: 1,
            align_log: 3,
        },
        Op::Realloc {
            idx: 1148279392770140297,
            size: 1,
        },
        Op::Free {
            idx: 1107915939656330735,
        },
        Op::Free { idx: 0 },
        Op::CacheDestroy {
            cidx: 2774927317003338974,
        },
        Op::Free {
            idx: 2792322766986392362,
        },
        Op::Alloc {
            size: 8881,
            align_log: 3,
            flags: 0,
        },
        Op::Alloc {
            size: 1,
            align_log: 3,
            flags: 0,
        },
        Op::CacheAlloc {
            cidx: 1884925311196951657,
        },
        Op::CacheAlloc { cidx: 0 },
        Op::Alloc {
            size: 1,
            align_log: 3,
            flags: 8,
        },
        Op::Free { idx: 720916080302 },
        Op::DoubleFree { idx: 0 },
        Op::Alloc {
            size: 1,
            align_log: 3,
            flags: 0,
        },
        Op::Alloc {
            size: 1,
            align_log: 3,
            flags: 0,
        },
        Op::CacheAlloc { cidx: 0 },
        Op::Alloc {
            size: 1,
            align_log: 3,
            flags: 8,
        },
        Op::CacheAlloc {
            cidx: 89444593555159314,
        },
        Op::Alloc {
            size: 1,
            align_log: 3,
            flags: 0,
        },
        Op::CacheAlloc {
            cidx: 905222460574954268,
        },
        Op::CacheFree {
            idx: 8624287669371612737,
            wrong: false,
        },
        Op::DoubleFree {
            idx: 13765994518290675027,
        },
        Op::Free {
            idx: 4484474878066397863,
        },
        Op::Free {
            idx: 16458497906337016896,
        },
        Op::Free {
            idx: 14638927163761777843,
        },
        Op::Free {
            idx: 9017875363518838099,
        },
        Op::DoubleFree {
            idx: 8626896722908346472,
        },
    ]);
}

proptest! {
    #![proptest_config(ProptestConfig {
        max_shrink_iters: 2048,
        // Shrunk failures are kept as explicit regression tests above.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn model_matches_heap(ops in proptest::collection::vec(op(), 1..200)) {
        run(&ops);
    }

    /// A 256 KiB heap: out-of-memory paths, slab churn and reuse of
    /// released spans are exercised constantly.
    #[test]
    fn model_matches_small_heap(ops in proptest::collection::vec(op(), 1..150)) {
        run_on(&ops, 256 << 10);
    }
}
