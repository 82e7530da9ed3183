// SPDX-License-Identifier: GPL-2.0

//! `Heap::for_each_page`: the page picture behind the debugfs `heapmap`.

mod common;

use common::TestHeap;
use ikos_kalloc::allocator::{Heap, PageUse, SlabOccupancy};

const PAGE: usize = 4096;

fn picture(h: &Heap) -> (String, Vec<SlabOccupancy>) {
    let mut s = String::new();
    let mut slabs = Vec::new();
    let mut next = 0;
    h.for_each_page(
        |p, u| {
            assert_eq!(p, next, "pages come in order, each once");
            next += 1;
            s.push(u.symbol());
        },
        |o| slabs.push(o),
    )
    .unwrap();
    (s, slabs)
}

#[test]
fn fresh_heap_is_metadata_then_free() {
    let h = TestHeap::new(1 << 20);
    let (s, slabs) = picture(&h);
    assert_eq!(s.len(), (1 << 20) / PAGE);
    let meta = h.metadata_bytes();
    // Pages wholly inside the metadata area are M; everything after is free.
    assert!(s[..meta / PAGE].chars().all(|c| c == 'M'), "{s}");
    assert!(s[meta.div_ceil(PAGE)..].chars().all(|c| c == '.'), "{s}");
    assert!(slabs.is_empty());
}

#[test]
fn slabs_and_large_blocks_show_up_and_go_away() {
    let mut h = TestHeap::new(1 << 20);
    let (before, _) = picture(&h);
    let small = h.alloc(64).unwrap();
    let large = h.alloc(5 * PAGE).unwrap();
    let (s, slabs) = picture(&h);
    // size-64 is class 3; its span is about 16 KiB, so 3 or more pages.
    assert!(s.matches('3').count() >= 3, "{s}");
    // A 20 KiB block covers at least 4 pages by majority.
    assert!(s.matches('L').count() >= 4, "{s}");
    assert_eq!(slabs.len(), 1);
    assert_eq!(
        (slabs[0].cache, slabs[0].inuse, slabs[0].capacity),
        (3, 1, 253)
    );
    assert_eq!(
        PageUse::Class(3).symbol(),
        '3',
        "class digits are the size-class index"
    );
    h.free(small.as_ptr()).unwrap();
    h.free(large.as_ptr()).unwrap();
    let (after, slabs) = picture(&h);
    assert_eq!(
        after, before,
        "freeing everything gives the fresh picture back"
    );
    assert!(slabs.is_empty());
}

#[test]
fn custom_cache_pages_are_marked() {
    let mut h = TestHeap::new(1 << 20);
    let id = h.cache_create("pic", 300, 64).unwrap();
    let o = h.cache_alloc(id).unwrap();
    let (s, slabs) = picture(&h);
    assert!(s.contains('c'), "{s}");
    assert_eq!(slabs.len(), 1);
    assert_eq!(slabs[0].cache, id.index());
    h.cache_free(id, o.as_ptr()).unwrap();
    h.cache_destroy(id).unwrap();
}

/// The picture, page by page, against a reference computed here from the
/// known layout: the metadata, one 64-byte slab, one large block ending
/// exactly in the middle of a page (a tie: the lower use wins), the free
/// rest. Each page shows the use holding most of its bytes.
#[test]
fn each_page_shows_its_majority_use() {
    let mut h = TestHeap::new(1 << 20);
    let meta = h.metadata_bytes();
    let _small = h.alloc(64).unwrap();
    let span = h.cache_info(3).unwrap().slab_bytes;
    let large_at = meta + span;
    // A payload that ends the block 2,048 bytes into a page, two pages on.
    let tie_page = large_at / PAGE + 3;
    let size = tie_page * PAGE + PAGE / 2 - large_at - 16;
    let large = h.alloc(size).unwrap();
    assert_eq!(h.off(large), large_at + 16);
    let uses = [
        (0, meta, 'M'),
        (meta, large_at, '3'),
        (large_at, tie_page * PAGE + PAGE / 2, 'L'),
        (tie_page * PAGE + PAGE / 2, 1 << 20, '.'),
    ];
    let want: String = (0..(1 << 20) / PAGE)
        .map(|p| {
            let (lo, hi) = (p * PAGE, (p + 1) * PAGE);
            let mut best = ('?', 0);
            for &(from, to, c) in &uses {
                let bytes = to.min(hi).saturating_sub(from.max(lo));
                if bytes > best.1 {
                    best = (c, bytes);
                }
            }
            best.0
        })
        .collect();
    let (got, _) = picture(&h);
    assert_eq!(got, want);
    assert_eq!(
        got.as_bytes()[tie_page],
        b'L',
        "a tie goes to the lower use"
    );
    assert_ne!(meta % PAGE, 0, "the metadata ends inside a page");
}
