// SPDX-License-Identifier: GPL-2.0

//! The `GlobalAlloc` adapter's per-thread caches (`host::thread_cache`) and
//! the adapter used as a value (not as this binary's global allocator):
//! the lists (LIFO, bounded, key and link checks), the adapter's reuse,
//! class routing and realloc, threads handing objects to each other and
//! giving their slots back, detected double frees and writes after free
//! (in a child process: the adapter aborts), and a proptest model of
//! random operations with contents, alignment and overlap checked and the
//! heap back to one free block at the end.

mod common;

use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::ptr::NonNull;
use std::sync::Arc;

use common::{check, fill, TestHeap};
use ikos_kalloc::allocator::config::class_size;
use ikos_kalloc::host::global_alloc::KallocGlobal;
use ikos_kalloc::host::thread_cache::{
    thread_capacity, thread_class, CacheKey, Put, Take, ThreadCache, FIRST_CLASS, THREAD_SLOTS,
};
use proptest::prelude::*;

const CLASS64: usize = 3;

/// A heap, a thread cache bound to it and `n` live 64-byte objects.
fn bound(n: usize) -> (TestHeap, ThreadCache, Vec<NonNull<u8>>) {
    let mut h = TestHeap::new(1 << 20);
    let mut tc = ThreadCache::new();
    tc.set_key(CacheKey::new(h.region(), 1 << 20, 0x5eed));
    let objs = (0..n).map(|_| h.alloc(64).expect("object")).collect();
    (h, tc, objs)
}

#[test]
fn classes_follow_the_layout() {
    assert_eq!(thread_class(1, 1), Some(FIRST_CLASS));
    assert_eq!(thread_class(8, 8), Some(FIRST_CLASS));
    assert_eq!(thread_class(16, 1), Some(1));
    assert_eq!(thread_class(17, 1), Some(2));
    assert_eq!(thread_class(40, 64), Some(CLASS64));
    assert_eq!(thread_class(4096, 8), Some(9));
    assert_eq!(thread_class(4097, 8), None);
    assert_eq!(thread_class(64, 128), None);
    for class in FIRST_CLASS..10 {
        assert_eq!(thread_class(class_size(class), 8), Some(class));
    }
    // The magazine capacity: 128 objects, at most 64 KiB of them.
    assert_eq!(thread_capacity(0), 0);
    assert_eq!(thread_capacity(CLASS64), 128);
    assert_eq!(thread_capacity(6), 128);
    assert_eq!(thread_capacity(7), 64);
    assert_eq!(thread_capacity(9), 16);
}

#[test]
fn lists_are_lifo_bounded_and_keyed() {
    let cap = thread_capacity(CLASS64);
    let (_h, mut tc, objs) = bound(cap + 8);
    let k = *tc.key();
    for (i, &p) in objs.iter().enumerate() {
        // SAFETY: live 64-byte objects of the heap the cache is bound to.
        let r = unsafe { tc.push(CLASS64, p) };
        if i < cap {
            assert_eq!(r, Put::Done, "object {i}");
            // SAFETY: as above.
            assert!(unsafe { k.is_marked(p) });
        } else {
            assert_eq!(r, Put::Full, "object {i}");
        }
    }
    assert_eq!(tc.held(CLASS64), cap);
    assert_eq!(tc.held_total(), cap);
    // A second free of a listed object is found by its key.
    // SAFETY: as above (the object is listed: nothing changes).
    assert_eq!(unsafe { tc.push(CLASS64, objs[5]) }, Put::Listed);
    for i in (0..cap).rev() {
        assert_eq!(tc.pop(CLASS64), Take::Object(objs[i]));
        // SAFETY: the popped object is ours again.
        assert!(!unsafe { k.is_marked(objs[i]) });
    }
    assert_eq!(tc.pop(CLASS64), Take::Empty);
    assert_eq!(tc.held_total(), 0);
}

#[test]
fn taken_objects_keep_the_key() {
    let (_h, mut tc, objs) = bound(8);
    let k = *tc.key();
    for &p in &objs {
        // SAFETY: live objects of the bound heap.
        assert_eq!(unsafe { tc.push(CLASS64, p) }, Put::Done);
    }
    let mut out = Vec::new();
    assert_eq!(tc.take(CLASS64, 5, |p| out.push(p)), Ok(5));
    assert_eq!(out, objs[3..].iter().rev().copied().collect::<Vec<_>>());
    assert_eq!(tc.held(CLASS64), 3);
    // Back in the heap they still read as free: freeing one again is a
    // double free.
    for &p in &out {
        // SAFETY: as above.
        assert!(unsafe { k.is_marked(p) });
        // SAFETY: as above.
        assert_eq!(unsafe { tc.push(CLASS64, p) }, Put::Listed);
    }
    assert_eq!(tc.take(CLASS64, usize::MAX, |_| {}), Ok(3));
}

#[test]
fn damaged_link_or_key_is_reported_not_followed() {
    for word in 0..2 {
        let (_h, mut tc, objs) = bound(2);
        for &p in &objs {
            // SAFETY: live objects of the bound heap.
            assert_eq!(unsafe { tc.push(CLASS64, p) }, Put::Done);
        }
        // A write after free into the top object: its link or its key.
        // SAFETY: the object belongs to the heap's region (test damage).
        unsafe {
            objs[1]
                .cast::<usize>()
                .add(word)
                .write(0x4242_4242_4242_4242)
        };
        assert_eq!(tc.pop(CLASS64), Take::Damaged(objs[1]), "word {word}");
        assert_eq!(tc.held(CLASS64), 2, "nothing taken");
        assert_eq!(tc.take(CLASS64, 2, |_| {}), Err(objs[1]), "word {word}");
    }
}

#[test]
fn an_unbound_cache_finds_nothing() {
    let tc = ThreadCache::new();
    let x = 0u128;
    assert_eq!(tc.key().object(std::ptr::from_ref(&x) as usize), None);
    assert_eq!(tc.key().object(0), None);
}

/// Frees `p` of `layout` through `g`.
fn free(g: &KallocGlobal, p: *mut u8, layout: Layout) {
    // SAFETY: allocated by `g` with this layout and not freed yet.
    unsafe { g.dealloc(p, layout) }
}

/// Allocates `layout` through `g`.
fn alloc(g: &KallocGlobal, layout: Layout) -> *mut u8 {
    // SAFETY: every layout of these tests has a non-zero size.
    unsafe { g.alloc(layout) }
}

#[test]
fn pairs_reuse_the_thread_cache_without_the_heap() {
    let g = KallocGlobal::new(1 << 20);
    let l = Layout::from_size_align(64, 8).unwrap();
    let before = g.with(|h| h.stats());
    let first = alloc(&g, l);
    free(&g, first, l);
    for _ in 0..10_000 {
        let p = alloc(&g, l);
        assert_eq!(p, first, "the list's top object comes back");
        free(&g, p, l);
    }
    let half = thread_capacity(CLASS64) / 2;
    assert_eq!(g.thread_cached(), half, "one refill of half a list");
    let after = g.with(|h| {
        h.validate().expect("valid");
        h.stats()
    });
    assert_eq!(g.thread_cached(), 0, "with() returns the thread's objects");
    // 10,000 pairs never reached the heap: one refill of half a list, the
    // same objects returned by with().
    assert_eq!(after.total_allocs - before.total_allocs, half as u64);
    assert_eq!(after.total_frees - before.total_frees, half as u64);
    assert_eq!(after.active_allocs, 0);
    assert!(g.trim() > 0);
    let s = g.with(|h| h.stats());
    assert_eq!(s.largest_free_block, s.initial_largest_free_block);
}

#[test]
fn small_requests_come_from_the_16_byte_class_aligned() {
    let g = KallocGlobal::new(1 << 20);
    for (size, align, usable) in [
        (1, 1, 16),
        (8, 8, 16),
        (16, 16, 16),
        (24, 8, 32),
        (40, 64, 64),
        (100, 32, 128),
        (4096, 64, 4096),
    ] {
        let l = Layout::from_size_align(size, align).unwrap();
        let p = alloc(&g, l);
        assert!(!p.is_null());
        assert!((p as usize).is_multiple_of(align.max(16)), "{size}/{align}");
        assert_eq!(g.with(|h| h.usable_size(p)), Some(usable), "{size}/{align}");
        free(&g, p, l);
    }
    // Large and over-aligned requests are large blocks.
    for (size, align) in [(4097, 8), (64, 128), (100, 4096)] {
        let l = Layout::from_size_align(size, align).unwrap();
        let p = alloc(&g, l);
        assert!((p as usize).is_multiple_of(align));
        assert!(g.with(|h| h.usable_size(p)).unwrap() >= size);
        free(&g, p, l);
    }
    g.trim();
    let s = g.with(|h| h.stats());
    assert_eq!(
        (s.active_allocs, s.largest_free_block),
        (0, s.initial_largest_free_block)
    );
}

#[test]
fn zeroed_objects_are_zero_after_reuse() {
    let g = KallocGlobal::new(1 << 20);
    let l = Layout::from_size_align(200, 8).unwrap();
    let p = alloc(&g, l);
    // SAFETY: 200 bytes owned.
    unsafe { p.write_bytes(0xee, 200) };
    free(&g, p, l);
    // SAFETY: non-zero size.
    let q = unsafe { g.alloc_zeroed(l) };
    assert_eq!(q, p, "reused from the list");
    // SAFETY: 200 bytes owned.
    assert!((0..200).all(|i| unsafe { q.add(i).read() } == 0));
    free(&g, q, l);
}

#[test]
fn realloc_keeps_every_object_in_its_layouts_class() {
    // Test builds check on every free that the pointer is an object of
    // the layout's class (debug assertions); a realloc that left an object
    // in the wrong class would abort there.
    let g = KallocGlobal::new(4 << 20);
    let mut l = Layout::from_size_align(8, 8).unwrap();
    let mut p = alloc(&g, l);
    fill(NonNull::new(p).unwrap(), 8, 3);
    for new in [
        12, 16, 20, 64, 40, 33, 1000, 5000, 100_000, 6000, 4096, 100, 9, 3000,
    ] {
        // SAFETY: `p` was allocated with `l`.
        let q = unsafe { g.realloc(p, l, new) };
        assert!(!q.is_null());
        let kept = l.size().min(new);
        assert!(
            check(NonNull::new(q).unwrap(), kept, 3),
            "{} -> {new}",
            l.size()
        );
        l = Layout::from_size_align(new, 8).unwrap();
        fill(NonNull::new(q).unwrap(), new, 3);
        p = q;
    }
    free(&g, p, l);
    g.trim();
    let s = g.with(|h| {
        h.validate().expect("valid");
        h.stats()
    });
    assert_eq!(
        (s.active_allocs, s.largest_free_block),
        (0, s.initial_largest_free_block)
    );
}

#[test]
fn threads_hand_objects_to_each_other() {
    let g = Arc::new(KallocGlobal::new(8 << 20));
    let l = Layout::from_size_align(48, 8).unwrap();
    let workers = 4;
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..workers)
        .map(|_| std::sync::mpsc::channel::<Vec<usize>>())
        .unzip();
    let handles: Vec<_> = rxs
        .into_iter()
        .enumerate()
        .map(|(t, rx)| {
            let g = Arc::clone(&g);
            let tx = txs[(t + 1) % workers].clone();
            std::thread::spawn(move || {
                for round in 0..50u8 {
                    let mine: Vec<usize> = (0..100)
                        .map(|_| {
                            let p = alloc(&g, l);
                            fill(NonNull::new(p).unwrap(), 48, round);
                            p as usize
                        })
                        .collect();
                    tx.send(mine).unwrap();
                    for p in rx.recv().unwrap() {
                        assert!(check(NonNull::new(p as *mut u8).unwrap(), 48, round));
                        free(&g, p as *mut u8, l);
                    }
                }
            })
        })
        .collect();
    drop(txs);
    for h in handles {
        h.join().unwrap();
    }
    // The exited threads' lists still hold objects (live for the heap);
    // the heap is consistent whatever they hold.
    let s = g.with(|h| {
        h.validate().expect("valid");
        h.stats()
    });
    let cap = thread_capacity(thread_class(48, 8).unwrap());
    assert!(s.active_allocs <= (workers * cap) as u64, "{s:?}");
}

#[test]
fn exited_threads_give_their_slots_back() {
    // More threads, one after the other, than there are slots: each gets a
    // slot (its free lands on its list) only if exited threads gave theirs
    // back.
    let g = Arc::new(KallocGlobal::new(1 << 20));
    let l = Layout::from_size_align(32, 8).unwrap();
    for t in 0..THREAD_SLOTS + 44 {
        let g = Arc::clone(&g);
        let cached = std::thread::spawn(move || {
            let p = alloc(&g, l);
            free(&g, p, l);
            g.thread_cached()
        })
        .join()
        .unwrap();
        assert!(cached > 0, "thread {t} had no slot");
    }
    g.with(|h| h.validate().expect("valid"));
}

/// Runs `scenario` in a child process (this test binary, filtered to the
/// test `name`), which must abort with `msg` on stderr.
fn child_aborts(name: &str, scenario: &str, msg: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--test-threads=1", "--nocapture"])
        .env("KALLOC_CHILD", scenario)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(6),
        "{scenario}: {:?} {err}",
        out.status
    );
    assert!(err.contains(msg), "{scenario}: {err}");
}

/// Runs `f` on a new thread while other threads hold every slot index, so
/// that `f`'s thread has none. Only in a child process: the other tests'
/// threads would find no slot either.
fn with_every_slot_taken(f: impl FnOnce() + Send + 'static) {
    std::thread::spawn(move || {
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        let parked: Vec<_> = (0..THREAD_SLOTS)
            .map(|_| {
                let rx = std::sync::mpsc::channel::<()>();
                let hold = hold_tx.clone();
                let t = std::thread::spawn(move || {
                    let _ = ikos_kalloc::host::thread_cache::thread_slot();
                    hold.send(()).unwrap();
                    let _ = rx.1.recv();
                });
                (rx.0, t)
            })
            .collect();
        for _ in 0..THREAD_SLOTS {
            hold_rx.recv().unwrap();
        }
        assert_eq!(ikos_kalloc::host::thread_cache::thread_slot(), None);
        f();
        drop(parked);
    })
    .join()
    .unwrap();
}

#[test]
fn a_thread_without_a_slot_uses_the_shared_path() {
    const NAME: &str = "a_thread_without_a_slot_uses_the_shared_path";
    if child().is_none() {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--test-threads=1", "--nocapture"])
            .env("KALLOC_CHILD", "no-slot")
            .output()
            .unwrap();
        let (o, e) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{:?} {o} {e}", out.status);
        // The child really ran the scenario (not zero tests).
        assert!(o.contains("no-slot: 400 allocations checked"), "{o}");
        return;
    }
    let g = Arc::new(KallocGlobal::new(1 << 20));
    let gg = Arc::clone(&g);
    with_every_slot_taken(move || {
        let mut live = Vec::new();
        for (i, size) in [16, 64, 4096, 5000]
            .into_iter()
            .cycle()
            .take(400)
            .enumerate()
        {
            let l = Layout::from_size_align(size, 8).unwrap();
            let p = alloc(&gg, l);
            assert!(!p.is_null());
            // SAFETY: `p` has `size` bytes.
            unsafe { p.write_bytes(i as u8, size) };
            live.push((p, l, i as u8));
        }
        // Nothing went to a thread cache: this thread has none.
        assert_eq!(gg.thread_cached(), 0);
        for (p, l, v) in live {
            // SAFETY: `p` is live with `l.size()` bytes.
            let bytes = unsafe { std::slice::from_raw_parts(p, l.size()) };
            assert!(bytes.iter().all(|&b| b == v));
            free(&gg, p, l);
        }
        println!("no-slot: 400 allocations checked");
    });
    g.trim();
    g.with(|h| {
        assert_eq!(h.stats().active_allocs, 0);
        h.validate().expect("valid");
    });
}

/// The scenario the parent asked this process to run, if any.
fn child() -> Option<String> {
    std::env::var("KALLOC_CHILD").ok()
}

#[test]
fn double_free_aborts() {
    let Some(scenario) = child() else {
        for s in ["listed", "back-in-heap", "no-slot-thread"] {
            child_aborts("double_free_aborts", s, "kalloc: double free");
        }
        return;
    };
    let g = KallocGlobal::new(1 << 20);
    let l = Layout::from_size_align(128, 8).unwrap();
    let p = alloc(&g, l);
    free(&g, p, l);
    match scenario.as_str() {
        "listed" => {}
        // with() moves the thread's objects back to the shared magazine.
        "back-in-heap" => g.with(|_| ()),
        // Every slot taken by other threads: this one frees on the shared
        // path, where the key is checked too.
        _ => {
            let g = Arc::new(KallocGlobal::new(1 << 20));
            let q = alloc(&g, l) as usize;
            free(&g, q as *mut u8, l);
            g.with(|_| ());
            with_every_slot_taken(move || free(&g, q as *mut u8, l));
            return;
        }
    }
    free(&g, p, l);
    unreachable!("the second free must abort");
}

#[test]
fn write_after_free_into_a_listed_object_aborts() {
    let Some(_) = child() else {
        child_aborts(
            "write_after_free_into_a_listed_object_aborts",
            "write",
            "kalloc: thread cache object damaged",
        );
        return;
    };
    let g = KallocGlobal::new(1 << 20);
    let l = Layout::from_size_align(64, 8).unwrap();
    let p = alloc(&g, l);
    free(&g, p, l);
    // SAFETY: test damage: the first word of a freed object.
    unsafe { p.cast::<usize>().write(0x1234_5678) };
    let _ = alloc(&g, l);
    unreachable!("the allocation must abort");
}

#[derive(Clone, Debug)]
enum Op {
    Alloc {
        size: usize,
        align_log: u32,
        zero: bool,
    },
    Free {
        idx: usize,
    },
    Realloc {
        idx: usize,
        size: usize,
    },
    With,
}

fn op() -> impl Strategy<Value = Op> {
    let size = prop_oneof![1usize..=64, 1usize..=4096, 4097usize..=40_000];
    prop_oneof![
        4 => (size.clone(), 0u32..=7, any::<bool>())
            .prop_map(|(size, align_log, zero)| Op::Alloc { size, align_log, zero }),
        3 => any::<usize>().prop_map(|idx| Op::Free { idx }),
        2 => (any::<usize>(), size).prop_map(|(idx, size)| Op::Realloc { idx, size }),
        1 => Just(Op::With),
    ]
}

/// No two live allocations overlap.
fn disjoint(live: &BTreeMap<usize, (Layout, u8)>) -> bool {
    live.iter()
        .zip(live.iter().skip(1))
        .all(|((&a, (la, _)), (&b, _))| a + la.size() <= b)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random operations through the adapter, also past the heap's end
    /// (null is allowed then): every block aligned, disjoint and intact
    /// until freed, zeroed ones zero, `validate` passing; freeing everything
    /// and trimming gives one free block back.
    #[test]
    fn adapter_model(ops in proptest::collection::vec(op(), 1..300)) {
        let g = KallocGlobal::new(512 << 10);
        let mut live: BTreeMap<usize, (Layout, u8)> = BTreeMap::new();
        let mut tag = 0u8;
        for op in ops {
            tag = tag.wrapping_add(1);
            match op {
                Op::Alloc { size, align_log, zero } => {
                    let l = Layout::from_size_align(size, 1 << align_log).unwrap();
                    // SAFETY: non-zero size.
                    let p = unsafe { if zero { g.alloc_zeroed(l) } else { g.alloc(l) } };
                    let Some(nn) = NonNull::new(p) else { continue };
                    prop_assert!((p as usize).is_multiple_of(l.align()));
                    if zero {
                        // SAFETY: `size` bytes owned.
                        let zeroed = (0..size).all(|i| unsafe { p.add(i).read() } == 0);
                        prop_assert!(zeroed);
                    }
                    fill(nn, size, tag);
                    live.insert(p as usize, (l, tag));
                }
                Op::Free { idx } => {
                    let Some(&p) = live.keys().nth(idx % live.len().max(1)) else { continue };
                    let (l, t) = live.remove(&p).unwrap();
                    prop_assert!(check(NonNull::new(p as *mut u8).unwrap(), l.size(), t));
                    free(&g, p as *mut u8, l);
                }
                Op::Realloc { idx, size } => {
                    let Some(&p) = live.keys().nth(idx % live.len().max(1)) else { continue };
                    let (l, t) = live[&p];
                    // SAFETY: allocated with `l`, non-zero new size.
                    let q = unsafe { g.realloc(p as *mut u8, l, size) };
                    let Some(nq) = NonNull::new(q) else { continue };
                    live.remove(&p);
                    prop_assert!(check(nq, l.size().min(size), t));
                    prop_assert!((q as usize).is_multiple_of(l.align()));
                    fill(nq, size, tag);
                    live.insert(q as usize, (Layout::from_size_align(size, l.align()).unwrap(), tag));
                }
                Op::With => {
                    // The thread's list went back: the heap counts exactly
                    // the live allocations.
                    let active = g.with(|h| {
                        h.validate().map(|_| h.stats().active_allocs)
                    });
                    prop_assert_eq!(active, Ok(live.len() as u64));
                }
            }
            prop_assert!(disjoint(&live));
        }
        for (&p, &(l, t)) in &live {
            prop_assert!(check(NonNull::new(p as *mut u8).unwrap(), l.size(), t));
            free(&g, p as *mut u8, l);
        }
        g.trim();
        let s = g.with(|h| {
            h.validate().expect("valid");
            h.stats()
        });
        prop_assert_eq!(s.active_allocs, 0);
        prop_assert_eq!(s.largest_free_block, s.initial_largest_free_block);
    }
}
