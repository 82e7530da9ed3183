// SPDX-License-Identifier: GPL-2.0

//! Memory targets. Overhead is `Stats::overhead_bytes / heap_size`, where
//! `overhead_bytes` = metadata area (TLSF index, cache descriptors, page
//! map) + every 16-byte block header (used and free) + per slab the
//! descriptor, bitmap, alignment padding and unused tail. Free object slots
//! in slabs count as free, not overhead. Figures are printed in basis
//! points (run with `--nocapture`).

mod common;

use common::{Rng, TestHeap};
use ikos_kalloc::allocator::config::{class_size, NUM_CACHES};
use ikos_kalloc::allocator::Stats;

fn bp(s: &Stats) -> usize {
    s.overhead_bytes * 10_000 / s.heap_size
}

fn report(what: &str, s: &Stats) {
    println!(
        "{what}: heap {} KiB, used {} B ({}%), overhead {} B = {}.{:02}% (metadata area {} B), slabs {}",
        s.heap_size / 1024,
        s.used_bytes,
        s.used_bytes * 100 / s.heap_size,
        s.overhead_bytes,
        bp(s) / 100,
        bp(s) % 100,
        s.metadata_bytes,
        s.slabs_total
    );
}

#[test]
fn mixed_size_classes_at_half_fill() {
    let mut h = TestHeap::new(64 << 20);
    let target = h.len() / 2;
    let per_class = target / NUM_CACHES;
    let mut rng = Rng::new(5);
    let mut bytes = [0usize; NUM_CACHES];
    let mut live = Vec::new();
    // Equal byte share per class; request sizes spread over each class range.
    while bytes.iter().sum::<usize>() < target {
        let c = rng.range(0, NUM_CACHES - 1);
        if bytes[c] >= per_class {
            continue;
        }
        let hi = class_size(c);
        let lo = if c == 0 { 1 } else { hi / 2 + 1 };
        let p = h.alloc(rng.range(lo, hi)).unwrap();
        bytes[c] += hi;
        live.push(p);
    }
    let s = h.stats();
    report("mixed 10 classes, 50% fill", &s);
    assert!(bp(&s) <= 200, "overhead {} bp > 2%", bp(&s));
    let internal = 10_000 - s.requested_total * 10_000 / s.usable_total;
    println!(
        "  internal fragmentation (requested vs usable, cumulative): {}.{:02}%",
        internal / 100,
        internal % 100
    );
    // Free a random half: slots become free, overhead does not grow.
    for i in (0..live.len()).rev() {
        if rng.range(0, 1) == 0 {
            h.free(live.swap_remove(i).as_ptr()).unwrap();
        }
    }
    let s2 = h.stats();
    report("  after freeing a random half", &s2);
    assert!(bp(&s2) <= 200);
    h.validate().unwrap();
}

#[test]
fn heap_full_of_16k_blocks() {
    let mut h = TestHeap::new(64 << 20);
    let mut n = 0;
    while h.alloc(16 * 1024).is_some() {
        n += 1;
    }
    let s = h.stats();
    report(&format!("{n} blocks of 16 KiB"), &s);
    assert!(bp(&s) <= 50, "overhead {} bp > 0.5%", bp(&s));
    h.validate().unwrap();
}

#[test]
fn per_class_slab_overhead() {
    for c in 0..NUM_CACHES {
        let mut h = TestHeap::new(16 << 20);
        let size = class_size(c);
        let count = (h.len() / 2) / size;
        for _ in 0..count {
            h.alloc(size).unwrap();
        }
        let s = h.stats();
        let info = h.cache_info(c).unwrap();
        let slab_oh = s.overhead_bytes - s.metadata_bytes;
        println!(
            "class {size:5}: {} objs/slab, slab {} B, overhead without metadata area {}.{:02}%",
            info.objs_per_slab,
            info.slab_bytes,
            slab_oh * 10_000 / s.heap_size / 100,
            slab_oh * 10_000 / s.heap_size % 100
        );
        assert!(slab_oh * 100 <= s.heap_size * 2);
    }
}
