// SPDX-License-Identifier: GPL-2.0

//! Stress test: 200 000 random operations with more than 1 000 live
//! allocations, pattern verification, validation at checkpoints and at the
//! end; freeing everything gives back one block of the initial size.

mod common;

use common::{check, fill, Rng, TestHeap};

#[derive(Clone, Copy)]
struct Live {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
    seed: u8,
}

#[test]
fn random_operations() {
    const OPS: usize = 200_000;
    let mut h = TestHeap::new(64 << 20);
    let initial = h.stats().largest_free_block;
    let mut rng = Rng::new(0x1234_5678);
    let mut live: Vec<Live> = Vec::new();
    let mut max_live = 0;
    let mut failures = 0;
    let caches: Vec<_> = (0..4)
        .map(|i| {
            h.cache_create(&format!("stress{i}"), 24 + i * 100, 8 << i)
                .unwrap()
        })
        .collect();
    let mut cache_objs: Vec<(usize, Live)> = Vec::new();
    for i in 0..OPS {
        let r = rng.range(0, 99);
        let target_live = if (i / 20_000) % 2 == 0 { 3000 } else { 1200 };
        if r < 55 && live.len() < target_live || live.is_empty() {
            let size = match rng.range(0, 9) {
                0..=5 => rng.range(1, 512),
                6..=7 => rng.range(513, 4096),
                8 => rng.range(4097, 32_768),
                _ => rng.range(32_769, 200_000),
            };
            let align = if rng.range(0, 9) == 0 {
                8 << rng.range(0, 10)
            } else {
                8
            };
            match h.alloc_aligned(size, align) {
                Some(p) => {
                    assert_eq!(p.as_ptr() as usize % align, 0);
                    let seed = i as u8;
                    fill(p, size.min(256), seed);
                    live.push(Live {
                        ptr: p,
                        len: size.min(256),
                        seed,
                    });
                }
                None => failures += 1,
            }
        } else if r < 90 {
            let k = rng.range(0, live.len() - 1);
            let l = live.swap_remove(k);
            assert!(check(l.ptr, l.len, l.seed), "op {i}");
            h.free(l.ptr.as_ptr()).unwrap();
        } else if r < 95 {
            let k = rng.range(0, live.len() - 1);
            let l = live[k];
            let n = rng.range(1, 20_000);
            if let Ok(p) = h.realloc(l.ptr.as_ptr(), n) {
                let keep = l.len.min(n);
                assert!(check(p, keep, l.seed));
                live[k] = Live {
                    ptr: p,
                    len: keep,
                    seed: l.seed,
                };
            }
        } else {
            let c = rng.range(0, caches.len() - 1);
            if rng.range(0, 1) == 0 || cache_objs.is_empty() {
                let p = h.cache_alloc(caches[c]).unwrap();
                fill(p, 24, i as u8);
                cache_objs.push((
                    c,
                    Live {
                        ptr: p,
                        len: 24,
                        seed: i as u8,
                    },
                ));
            } else {
                let k = rng.range(0, cache_objs.len() - 1);
                let (c, l) = cache_objs.swap_remove(k);
                assert!(check(l.ptr, l.len, l.seed));
                h.cache_free(caches[c], l.ptr.as_ptr()).unwrap();
            }
        }
        max_live = max_live.max(live.len() + cache_objs.len());
        if i % 25_000 == 0 {
            h.validate().unwrap();
        }
    }
    let rep = h.validate().unwrap();
    let s = h.stats();
    println!(
        "stress: {OPS} ops, max live {max_live}, failures {failures}, {rep:?}, frag {}bp, reuse {}%",
        s.fragmentation_bp, s.reuse_pct
    );
    assert!(max_live >= 1000);
    assert_eq!(s.active_allocs as usize, live.len() + cache_objs.len());
    assert_eq!(s.used_bytes + s.free_bytes + s.overhead_bytes, s.heap_size);
    for l in live {
        assert!(check(l.ptr, l.len, l.seed));
        h.free(l.ptr.as_ptr()).unwrap();
    }
    for (c, l) in cache_objs {
        h.cache_free(caches[c], l.ptr.as_ptr()).unwrap();
    }
    for c in caches {
        h.cache_destroy(c).unwrap();
    }
    h.validate().unwrap();
    let s = h.stats();
    assert_eq!(s.blocks_total, 1, "one free block again");
    assert_eq!(s.largest_free_block, initial);
    assert_eq!(s.corruptions + s.double_frees + s.invalid_frees, 0);
}
