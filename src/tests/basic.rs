// SPDX-License-Identifier: GPL-2.0

//! Basic allocation test: alloc/free cycles with pattern write/read.

mod common;

use std::ptr::NonNull;

use common::{assert_partition, check, fill, TestHeap, PAGE};
use ikos_kalloc::allocator::config::{MAX_HEAP_SIZE, MIN_HEAP_SIZE};
use ikos_kalloc::allocator::{Flags, Heap, InitError};

#[test]
fn heap_struct_is_small_and_send() {
    fn is_send<T: Send>() {}
    is_send::<Heap>();
    let size = std::mem::size_of::<Heap>();
    println!("size_of::<Heap>() = {size}");
    assert!(size <= 1024, "{size}");
}

#[test]
fn init_rejects_bad_regions() {
    let h = TestHeap::new(1 << 20);
    let base = h.region();
    // SAFETY: `Heap::new` validates the arguments before touching memory and
    // all of these are rejected.
    unsafe {
        let mis = NonNull::new_unchecked(base.as_ptr().add(16));
        assert_eq!(Heap::new(mis, 1 << 16).err(), Some(InitError::Misaligned));
        assert_eq!(Heap::new(base, 65537).err(), Some(InitError::BadLength));
        assert_eq!(
            Heap::new(base, MIN_HEAP_SIZE - PAGE).err(),
            Some(InitError::TooSmall)
        );
        assert_eq!(
            Heap::new(base, MAX_HEAP_SIZE + PAGE).err(),
            Some(InitError::TooLarge)
        );
    }
    for e in [
        InitError::Misaligned,
        InitError::BadLength,
        InitError::TooSmall,
        InitError::TooLarge,
    ] {
        assert!(!e.to_string().is_empty());
    }
}

/// The flag set of the C API: raw bits in and out, unknown bits dropped,
/// union, difference and containment.
#[test]
fn flags_are_a_bit_set() {
    assert_eq!(Flags::from_bits_truncate(0xffff_fff0), Flags::NONE);
    assert_eq!(Flags::from_bits_truncate(0xffff_ffff), Flags::ALL);
    assert_eq!(Flags::from_bits_truncate(0x12), Flags::ZERO);
    assert_eq!(Flags::ALL.bits(), 0xf);
    assert_eq!((Flags::ZERO | Flags::DMA).bits(), 0x6);
    assert_eq!(Flags::ZERO | Flags::ZERO, Flags::ZERO);
    let f = Flags::ATOMIC | Flags::HIGH;
    assert!(f.contains(Flags::HIGH) && f.contains(Flags::NONE));
    assert!(!f.contains(Flags::ZERO) && !f.contains(Flags::ALL));
    // `without`: what the kernel's locked path passes the heap (ZERO is
    // done after the unlock).
    assert_eq!(Flags::ALL.without(Flags::ZERO).bits(), 0xd);
    assert_eq!(
        (Flags::ZERO | Flags::ATOMIC).without(Flags::ZERO),
        Flags::ATOMIC
    );
    assert_eq!(f.without(Flags::ZERO), f);
    assert_eq!(Flags::NONE.without(Flags::ZERO), Flags::NONE);
}

#[test]
fn minimum_heap_works() {
    let mut h = TestHeap::new(MIN_HEAP_SIZE);
    assert_eq!(h.len(), MIN_HEAP_SIZE);
    assert!(!h.is_empty());
    let p = h.alloc(4096).unwrap();
    fill(p, 4096, 1);
    let q = h.alloc(100).unwrap();
    fill(q, 100, 2);
    assert!(check(p, 4096, 1) && check(q, 100, 2));
    h.free(p.as_ptr()).unwrap();
    h.free(q.as_ptr()).unwrap();
    h.validate().unwrap();
}

#[test]
fn alloc_free_every_size_class_and_large() {
    let mut h = TestHeap::new(4 << 20);
    let sizes = [
        1, 7, 8, 9, 16, 24, 32, 33, 64, 100, 128, 200, 256, 500, 512, 1000, 1024, 2000, 2048, 4000,
        4096, 4097, 5000, 8192, 16384, 65536, 300_000,
    ];
    let mut live = Vec::new();
    for (i, &s) in sizes.iter().enumerate() {
        let p = h.alloc(s).unwrap_or_else(|| panic!("alloc {s}"));
        assert!(h.usable_size(p.as_ptr()).unwrap() >= s);
        assert!(h.is_valid_pointer(p.as_ptr()));
        fill(p, s, i as u8);
        live.push((p, s, i as u8));
    }
    h.validate().unwrap();
    for &(p, s, seed) in &live {
        assert!(check(p, s, seed), "pattern of {s}");
    }
    for (p, _, _) in live {
        h.free(p.as_ptr()).unwrap();
        assert!(!h.is_valid_pointer(p.as_ptr()));
    }
    let st = h.stats();
    assert_eq!(st.active_allocs, 0);
    assert_partition(&st);
    h.validate().unwrap();
}

#[test]
fn repeated_cycles_keep_heap_clean() {
    let mut h = TestHeap::new(1 << 20);
    for round in 0..50u8 {
        let mut v = Vec::new();
        for s in (1..=12_000).step_by(397) {
            let p = h.alloc(s).unwrap();
            fill(p, s, round);
            v.push((p, s));
        }
        for (p, s) in v {
            assert!(check(p, s, round));
            h.free(p.as_ptr()).unwrap();
        }
    }
    h.validate().unwrap();
    let st = h.stats();
    assert_eq!(st.total_allocs, st.total_frees);
}

#[test]
fn zero_flag_and_realloc_keep_contents() {
    let mut h = TestHeap::new(1 << 20);
    let p = h.alloc(64).unwrap();
    fill(p, 64, 0xaa);
    h.free(p.as_ptr()).unwrap();
    let z = h.alloc_flags(64, 8, Flags::ZERO | Flags::ATOMIC).unwrap();
    let us = h.usable_size(z.as_ptr()).unwrap();
    // SAFETY: `us` usable bytes belong to the allocation.
    assert!((0..us).all(|i| unsafe { z.as_ptr().add(i).read() } == 0));
    fill(z, 64, 7);
    let mut p = z;
    for n in [100, 1000, 5000, 50_000, 3000, 20] {
        let q = h.realloc(p.as_ptr(), n).unwrap();
        assert!(check(q, 20, 7));
        p = q;
    }
    h.free(p.as_ptr()).unwrap();
    h.validate().unwrap();
    assert!(h.stats().active_allocs == 0);
    let r = h.realloc(std::ptr::null_mut(), 10).unwrap();
    h.free(r.as_ptr()).unwrap();
}

/// A realloc of a slab object to any size its class holds returns the
/// same object and counts nothing; one byte more moves it to the next
/// class, as one allocation plus one free.
#[test]
fn realloc_within_a_slab_object_stays_in_place() {
    let mut h = TestHeap::new(1 << 20);
    let p = h.alloc(40).unwrap();
    fill(p, 40, 3);
    let before = h.stats();
    for n in [1, 40, 63, 64] {
        assert_eq!(h.realloc(p.as_ptr(), n).unwrap(), p, "{n} bytes");
    }
    let after = h.stats();
    assert_eq!(
        (after.total_allocs, after.total_frees),
        (before.total_allocs, before.total_frees)
    );
    let q = h.realloc(p.as_ptr(), 65).unwrap();
    assert_ne!(q, p);
    assert!(check(q, 40, 3));
    assert_eq!(h.usable_size(q.as_ptr()), Some(128));
    assert!(!h.is_valid_pointer(p.as_ptr()));
    let moved = h.stats();
    assert_eq!(moved.total_allocs, after.total_allocs + 1);
    assert_eq!(moved.total_frees, after.total_frees + 1);
    h.free(q.as_ptr()).unwrap();
    h.validate().unwrap();
}

#[test]
fn heap_is_movable() {
    let mut h = TestHeap::new(1 << 20);
    let p = h.alloc(1000).unwrap();
    fill(p, 1000, 9);
    // Move the heap value itself around; all state lives in the region.
    let mut boxed: Vec<TestHeap> = Vec::new();
    boxed.push(h);
    let mut h = boxed.pop().unwrap();
    assert!(check(p, 1000, 9));
    h.free(p.as_ptr()).unwrap();
    h.validate().unwrap();
}
