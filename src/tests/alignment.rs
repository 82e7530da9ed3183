// SPDX-License-Identifier: GPL-2.0

//! Alignment test: every power of two from 8 to 64 KiB, small and large.

mod common;

use common::{check, fill, TestHeap};

#[test]
fn all_powers_of_two_up_to_64k() {
    let mut h = TestHeap::new(8 << 20);
    let initial = h.stats().largest_free_block;
    let mut live = Vec::new();
    let mut align = 8;
    while align <= 64 * 1024 {
        for size in [1, 8, 24, 100, 4096, 5000, 70_000] {
            let p = h
                .alloc_aligned(size, align)
                .unwrap_or_else(|| panic!("size {size} align {align}"));
            assert_eq!(p.as_ptr() as usize % align, 0, "size {size} align {align}");
            assert!(h.usable_size(p.as_ptr()).unwrap() >= size);
            fill(p, size, align.trailing_zeros() as u8);
            live.push((p, size, align));
        }
        align *= 2;
    }
    h.validate().unwrap();
    for (p, size, align) in live {
        assert!(check(p, size, align.trailing_zeros() as u8));
        h.free(p.as_ptr()).unwrap();
    }
    h.validate().unwrap();
    let st = h.stats();
    assert_eq!(st.largest_free_block, initial);
    assert_eq!(st.blocks_total, 1);
}

#[test]
fn huge_alignment_and_bad_alignment() {
    let mut h = TestHeap::new(4 << 20);
    let p = h.alloc_aligned(100, 1 << 20).unwrap();
    assert_eq!(p.as_ptr() as usize % (1 << 20), 0);
    assert!(h.alloc_aligned(100, 3).is_none());
    assert!(h.alloc_aligned(100, 0).is_none());
    assert!(h.alloc_aligned(100, 8 << 20).is_none());
    h.free(p.as_ptr()).unwrap();
    h.validate().unwrap();
}

#[test]
fn mixed_alignments_interleaved() {
    let mut h = TestHeap::new(4 << 20);
    let mut rng = common::Rng::new(7);
    let mut live = Vec::new();
    for i in 0..2000 {
        let align = 8usize << rng.range(0, 10);
        let size = rng.range(1, 9000);
        if let Some(p) = h.alloc_aligned(size, align) {
            assert_eq!(p.as_ptr() as usize % align, 0);
            fill(p, size, i as u8);
            live.push((p, size, i as u8));
        }
        if i % 3 == 0 && !live.is_empty() {
            let k = rng.range(0, live.len() - 1);
            let (p, s, seed) = live.swap_remove(k);
            assert!(check(p, s, seed));
            h.free(p.as_ptr()).unwrap();
        }
    }
    h.validate().unwrap();
    for (p, s, seed) in live {
        assert!(check(p, s, seed));
        h.free(p.as_ptr()).unwrap();
    }
    h.validate().unwrap();
    assert_eq!(h.stats().blocks_total, 1 + h.stats().slabs_total);
}

#[test]
fn custom_cache_alignment() {
    let mut h = TestHeap::new(4 << 20);
    let mut align = 8;
    while align <= 4096 {
        let name = format!("align-{align}");
        let id = h.cache_create(&name, 40, align).unwrap();
        for _ in 0..20 {
            let p = h.cache_alloc(id).unwrap();
            assert_eq!(p.as_ptr() as usize % align, 0, "{name}");
        }
        align *= 2;
    }
    h.validate().unwrap();
}
