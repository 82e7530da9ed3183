// SPDX-License-Identifier: GPL-2.0

//! The magazine depot: drains park objects there and refills take them
//! back without touching the slabs; its size; flushes; damage.

mod common;

use std::ptr::NonNull;

use common::{fast_alloc, fast_free, view, TestHeap};
use ikos_kalloc::allocator::{
    depot_capacity, depot_tag, held_hash, magazine_capacity, size_class_for, CorruptionKind,
    CpuCache, Heap, HeldSums, DEPOT_MAX_BYTES, DEPOT_MAX_ENTRIES,
};

const MIB: usize = 1 << 20;

/// Objects of the size-64 cache taken from their slabs (live or cached).
fn taken64(h: &Heap) -> u64 {
    let class = size_class_for(64, 8).unwrap();
    let c = h.cache_info(class).unwrap();
    (c.active_objs + c.magazine_objs) as u64
}

/// `rounds` times: `n` 64-byte fast allocations, then their frees.
fn batches(h: &mut Heap, cpu: &mut CpuCache, n: usize, rounds: usize) {
    let v = view(h);
    for _ in 0..rounds {
        let ps: Vec<_> = (0..n).map(|_| fast_alloc(h, &v, cpu, 64)).collect();
        for p in ps {
            fast_free(h, &v, cpu, p.as_ptr()).unwrap();
        }
    }
}

/// An 8 MiB heap and a cache after one batch of 1,000 (absorbed).
fn after_one_batch() -> (TestHeap, CpuCache) {
    let mut h = TestHeap::new(8 * MIB);
    let mut cpu = CpuCache::new();
    batches(&mut h, &mut cpu, 1000, 1);
    h.magazine_absorb(&mut cpu);
    (h, cpu)
}

/// Address of the top entry of the size-64 depot, the next one a refill
/// takes, when `parked` objects are parked.
fn top_depot_entry(h: &TestHeap, parked: usize) -> usize {
    let class = size_class_for(64, 8).unwrap();
    let first: usize = (0..class).map(|c| depot_capacity(c, 8 * MIB)).sum();
    h.depot_area().0 + (first + parked - 1) * 8
}

/// Empties the size-64 magazine, then allocates once more, so that a refill
/// takes the depot's top batch, dropping (and counting) one damaged entry.
/// Returns every object allocated.
fn drain_then_refill_past_damage(h: &mut TestHeap, cpu: &mut CpuCache) -> Vec<NonNull<u8>> {
    let class = size_class_for(64, 8).unwrap();
    let v = view(h);
    let mut live: Vec<_> = (0..cpu.held(class))
        .map(|_| cpu.alloc(&v, class, 64, false).unwrap())
        .collect();
    let before = h.stats().corruptions;
    live.push(fast_alloc(h, &v, cpu, 64));
    assert_eq!(h.stats().corruptions, before + 1, "the refill dropped it");
    live
}

#[test]
fn depot_size_is_bounded_by_entries_bytes_and_region() {
    let full: Vec<_> = (0..10).map(|c| depot_capacity(c, 8 * MIB)).collect();
    assert_eq!(full, [1024, 1024, 1024, 1024, 512, 256, 128, 64, 32, 16]);
    assert_eq!(depot_capacity(10, 8 * MIB), 0);
    for c in 0..10 {
        assert!(depot_capacity(c, 1 << 30) <= DEPOT_MAX_ENTRIES);
        assert!(depot_capacity(c, 1 << 30) * (8 << c) <= DEPOT_MAX_BYTES);
    }
    let h = TestHeap::new(8 * MIB);
    assert_eq!(h.depot_area().1, 40_832);
    let small: usize = (0..10).map(|c| depot_capacity(c, 64 << 10)).sum();
    assert_eq!(small, 39);
    // Never more than 0.5% of the region.
    let mut len = 64 << 10;
    while len <= 1 << 30 {
        let entries: usize = (0..10).map(|c| depot_capacity(c, len)).sum();
        assert!(entries * 8 * 200 <= len, "{len}: {entries} entries");
        len *= 2;
    }
}

#[test]
fn batches_go_through_the_depot_not_the_slabs() {
    let (mut h, mut cpu) = after_one_batch();
    let class = size_class_for(64, 8).unwrap();
    let s = h.stats();
    // Every drain went to the depot (room for 1,024): nothing went back
    // to a slab, so every object taken is cached.
    assert_eq!(s.active_allocs, 0);
    assert_eq!(s.depot_objects + cpu.held(class) as u64, taken64(&h));
    assert!(s.depot_objects >= 1000 - magazine_capacity(class) as u64);
    assert_eq!(s.magazine_objects, taken64(&h));
    let taken = taken64(&h);
    let refills = s.magazine_refills;
    // Nine more rounds take the same objects back and forth: no slab
    // object is taken or given back, and the counters stay exact.
    batches(&mut h, &mut cpu, 1000, 9);
    h.magazine_absorb(&mut cpu);
    let s = h.stats();
    assert_eq!(taken64(&h), taken);
    assert_eq!((s.total_allocs, s.total_frees), (10_000, 10_000));
    assert_eq!(s.object_reuses, 10_000 - taken);
    assert!(
        s.magazine_refills >= refills + 9 * 14,
        "{}",
        s.magazine_refills
    );
    let r = h.validate().unwrap();
    assert_eq!(r.depot_objects_checked as u64, s.depot_objects);
    // A flush returns the depot's objects too.
    h.magazine_flush(&mut cpu).unwrap();
    let s = h.stats();
    assert_eq!(
        (s.depot_objects, s.magazine_objects, taken64(&h)),
        (0, 0, 0)
    );
    assert_eq!(s.largest_free_block, s.initial_largest_free_block);
    h.validate().unwrap();
}

#[test]
fn a_full_depot_sends_the_rest_to_the_slabs() {
    // 1 MiB: room for 128 objects of 64 bytes.
    let mut h = TestHeap::new(MIB);
    let mut cpu = CpuCache::new();
    let class = size_class_for(64, 8).unwrap();
    let room = depot_capacity(class, MIB);
    assert_eq!(room, 128);
    batches(&mut h, &mut cpu, 1000, 2);
    h.magazine_absorb(&mut cpu);
    let s = h.stats();
    assert_eq!(s.depot_objects, room as u64);
    assert_eq!(taken64(&h), (room + cpu.held(class)) as u64);
    h.validate().unwrap();
    h.magazine_flush(&mut cpu).unwrap();
    let s = h.stats();
    assert_eq!(s.largest_free_block, s.initial_largest_free_block);
}

#[test]
fn damaged_depot_entries_are_reported_and_never_handed_out() {
    let (mut h, mut cpu) = after_one_batch();
    let class = size_class_for(64, 8).unwrap();
    let parked = h.stats().depot_objects as usize;
    assert!(parked > 100);
    // The top entry of the size-64 depot: the next one a refill takes.
    let top = top_depot_entry(&h, parked);
    // Its object moved by 64 bytes: still an object start (of another
    // cached object), but not the one its bitmap word and bit name.
    let lo = h.peek32(top);
    h.poke32(top, lo ^ (64 >> 3));
    let e = h.validate().unwrap_err();
    assert_eq!(format!("{}", e.kind), "bad magazine entry");
    // Empty the magazine; the refill drops the damaged entry and hands out
    // the ones below it.
    let mut live = drain_then_refill_past_damage(&mut h, &mut cpu);
    let v = view(&h);
    let refilled = cpu.held(class) + 1;
    assert_eq!(refilled, magazine_capacity(class) / 2);
    while cpu.held(class) > 0 {
        live.push(cpu.alloc(&v, class, 64, false).unwrap());
    }
    // The object the damaged entry names has an entry of its own: handing
    // it out from both would give it to two users.
    let mut offs: Vec<_> = live.iter().map(|&p| h.off(p)).collect();
    offs.sort_unstable();
    offs.dedup();
    assert_eq!(offs.len(), live.len(), "an object was handed out twice");
    for p in live {
        fast_free(&mut h, &v, &mut cpu, p.as_ptr()).unwrap();
    }
    assert_eq!(h.stats().depot_objects as usize, parked - 1 - refilled + 64);
}

#[test]
fn an_object_lost_with_a_dropped_depot_entry_stays_reported() {
    let (mut h, mut cpu) = after_one_batch();
    let class = size_class_for(64, 8).unwrap();
    let parked = h.stats().depot_objects as usize;
    let top = top_depot_entry(&h, parked);
    // A bit of the top entry's check tag flipped: the next refill drops it.
    let hi = h.peek32(top + 4);
    h.poke32(top + 4, hi ^ 0x8000_0000);
    let live = drain_then_refill_past_damage(&mut h, &mut cpu);
    let v = view(&h);
    for p in live {
        fast_free(&mut h, &v, &mut cpu, p.as_ptr()).unwrap();
    }
    h.magazine_absorb(&mut cpu);
    // The dropped entry's object is still taken from its slab, and no
    // magazine or depot entry holds it: with every cache's sums, and after
    // a flush without them, validate says so.
    let mut sums = HeldSums::default();
    h.add_magazine_sums(&cpu, &mut sums);
    let c = h.validate_with(&sums).unwrap_err();
    assert_eq!(
        (c.kind, c.offset),
        (CorruptionKind::MagazineEntry, class),
        "{c}"
    );
    h.magazine_flush(&mut cpu).unwrap();
    assert_eq!(
        h.stats().magazine_objects,
        0,
        "no object is counted as cached"
    );
    let c = h.validate().unwrap_err();
    assert_eq!(
        (c.kind, c.offset),
        (CorruptionKind::MagazineEntry, class),
        "{c}"
    );
}

#[test]
fn a_drain_parks_the_top_and_a_refill_puts_it_back_on_top() {
    let mut h = TestHeap::new(8 * MIB);
    let mut cpu = CpuCache::new();
    let class = size_class_for(64, 8).unwrap();
    let cap = magazine_capacity(class);
    assert_eq!(cap, 128);
    let v = view(&h);
    let objs: Vec<_> = (0..=cap)
        .map(|_| fast_alloc(&mut h, &v, &mut cpu, 64))
        .collect();
    // An empty magazine and depot, and every object live.
    h.magazine_flush(&mut cpu).unwrap();
    assert_eq!((cpu.held(class), h.stats().depot_objects), (0, 0));
    let taken = taken64(&h);
    // The first `cap` frees fill the magazine; the last one drains the
    // most recently freed half (objects cap/2..cap) to the depot, and the
    // older half stays, with the last freed object on top of it.
    for p in &objs {
        fast_free(&mut h, &v, &mut cpu, p.as_ptr()).unwrap();
    }
    assert_eq!(cpu.held(class), cap / 2 + 1);
    assert_eq!(h.stats().depot_objects as usize, cap / 2);
    // Allocations: the magazine from its top, then a refill from the
    // depot, in the order they were parked, so again from the last freed.
    let again: Vec<_> = (0..=cap)
        .map(|_| fast_alloc(&mut h, &v, &mut cpu, 64))
        .collect();
    let mut want = vec![objs[cap]];
    want.extend(objs[..cap / 2].iter().rev());
    want.extend(objs[cap / 2..cap].iter().rev());
    assert_eq!(again, want);
    assert_eq!((cpu.held(class), h.stats().depot_objects), (0, 0));
    // All of it without a slab object taken or given back.
    h.magazine_absorb(&mut cpu);
    assert_eq!(taken64(&h), taken);
    for p in again {
        fast_free(&mut h, &v, &mut cpu, p.as_ptr()).unwrap();
    }
    h.magazine_flush(&mut cpu).unwrap();
    let s = h.stats();
    assert_eq!((s.active_allocs, taken64(&h)), (0, 0));
    h.validate().unwrap();
}

#[test]
fn a_flush_names_the_damaged_depot_entry() {
    let (mut h, mut cpu) = after_one_batch();
    let class = size_class_for(64, 8).unwrap();
    let parked = h.stats().depot_objects as usize;
    assert!(parked > 64, "more than one batch of 64 parked");
    // The entry just below the top batch of 64 that a flush takes first:
    // one bit of its object offset flipped, so its check tag no longer
    // matches.
    let first: usize = (0..class).map(|c| depot_capacity(c, 8 * MIB)).sum();
    let at = parked - 64 - 1;
    let word = h.depot_area().0 + (first + at) * 8;
    h.poke32(word, h.peek32(word) ^ 1 << 20);
    let corruptions = h.stats().corruptions;
    let c = h.magazine_flush(&mut cpu).expect_err("a damaged entry");
    assert_eq!(
        (c.kind, c.offset, c.detail),
        (CorruptionKind::MagazineEntry, class, at as u64),
        "{c}"
    );
    let s = h.stats();
    assert_eq!((s.corruptions, s.depot_objects), (corruptions + 1, 0));
}

#[test]
fn a_depot_entry_with_a_valid_tag_and_the_wrong_bitmap_bit_is_reported() {
    // Damage the check tag cannot see (or a forged entry): the object is
    // right, its bitmap word or bit is not. The fast path would set the
    // wrong bit; the check compares both with the object's slab.
    let (mut h, _cpu) = after_one_batch();
    let class = size_class_for(64, 8).unwrap();
    let parked = h.stats().depot_objects as usize;
    let first: usize = (0..class).map(|c| depot_capacity(c, 8 * MIB)).sum();
    let at = h.depot_area().0 + (first + parked - 1) * 8;
    let read = |h: &TestHeap| u64::from(h.peek32(at)) | u64::from(h.peek32(at + 4)) << 32;
    let saved = read(&h);
    let v = saved & ((1 << 47) - 1);
    assert_eq!(
        saved >> 47,
        depot_tag(v),
        "the tag as the depot computes it"
    );
    let obj = ((v & ((1 << 27) - 1)) << 3) as usize;
    let mut spans = Vec::new();
    // The distance to the bitmap word (bits 27..40), then the bit (40..46).
    for damaged in [v + (1 << 27), v ^ 1 << 40] {
        let w = damaged | depot_tag(damaged) << 47;
        h.poke32(at, w as u32);
        h.poke32(at + 4, (w >> 32) as u32);
        let c = h.depot_check().expect_err("wrong bitmap word or bit");
        assert_eq!(
            (c.kind, c.offset),
            (CorruptionKind::MagazineEntry, obj),
            "{c}"
        );
        spans.push(c.detail);
    }
    assert_eq!(spans[0], spans[1], "both name the object's slab");
    assert!((spans[0] as usize) < obj);
    h.poke32(at, saved as u32);
    h.poke32(at + 4, (saved >> 32) as u32);
    assert_eq!(h.depot_check(), Ok(parked));
    h.validate().unwrap();
}

/// Copies depot entry 0 of the size-64 class over entry 1; returns what
/// entry 1 held.
fn copy_first_depot_entry(h: &mut TestHeap) -> (usize, u32, u32) {
    let class = size_class_for(64, 8).unwrap();
    let first: usize = (0..class).map(|c| depot_capacity(c, 8 * MIB)).sum();
    let (from, to) = (
        h.depot_area().0 + first * 8,
        h.depot_area().0 + (first + 1) * 8,
    );
    let saved = (to, h.peek32(to), h.peek32(to + 4));
    let copy = (h.peek32(from), h.peek32(from + 4));
    h.poke32(to, copy.0);
    h.poke32(to + 4, copy.1);
    saved
}

/// One depot entry copied over another holds one object twice and loses
/// another, with every entry well-formed and the counts right: `validate`
/// finds it by the objects' hash sums, told what the CPU cache holds
/// (`validate_with`, as the kernel glue does), or, with no object in a CPU
/// cache, on its own.
#[test]
fn a_depot_entry_copied_over_another_is_found() {
    let (mut h, mut cpu) = after_one_batch();
    let class = size_class_for(64, 8).unwrap();
    let mut sums = HeldSums::default();
    h.add_magazine_sums(&cpu, &mut sums);
    assert_eq!(sums.objects(), cpu.held(class));
    assert!(cpu.held(class) > 0);
    let parked = h.stats().depot_objects as usize;
    assert!(parked >= 2, "{parked}");
    h.validate_with(&sums).unwrap();
    let (at, lo, hi) = copy_first_depot_entry(&mut h);
    assert_eq!(h.depot_check(), Ok(parked), "every entry is well-formed");
    let c = h.validate_with(&sums).unwrap_err();
    assert_eq!(
        (c.kind, c.offset),
        (CorruptionKind::MagazineEntry, class),
        "{c}"
    );
    h.validate()
        .expect("not checked: the CPU cache's objects are unknown");
    h.poke32(at, lo);
    h.poke32(at + 4, hi);
    h.validate_with(&sums).unwrap();

    h.magazine_drain(&mut cpu, class, 0).unwrap();
    h.magazine_absorb(&mut cpu);
    assert_eq!(cpu.held(class), 0);
    h.validate().unwrap();
    let (at, lo, hi) = copy_first_depot_entry(&mut h);
    let c = h.validate().unwrap_err();
    assert_eq!(
        (c.kind, c.offset),
        (CorruptionKind::MagazineEntry, class),
        "{c}"
    );
    h.poke32(at, lo);
    h.poke32(at + 4, hi);
    h.validate().unwrap();
}

/// The held-object hash is SplitMix64's output function (a bijection, so
/// two objects never share a hash): its first outputs from seed 0 are the
/// hashes of 0, and of 2 and 3 times the increment (XOR-ed with it once).
#[test]
fn the_held_hash_is_splitmix64s_finalizer() {
    const G: u64 = 0x9e37_79b9_7f4a_7c15;
    assert_eq!(held_hash(0), 0xe220_a839_7b1d_cdaf);
    assert_eq!(
        held_hash((G.wrapping_mul(2) ^ G) as usize),
        0x6e78_9e6a_a1b9_65f4
    );
    assert_eq!(
        held_hash((G.wrapping_mul(3) ^ G) as usize),
        0x06c4_5d18_8009_454f
    );
}
