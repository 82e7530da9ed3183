// SPDX-License-Identifier: GPL-2.0

//! Runs the module's self-tests (`src/selftest/`) on the host, on a heap of
//! the size the module uses, and checks they also detect a broken heap.

mod common;

use ikos_kalloc::selftest::{run_all, write_tap_line, MIN_HEAP, TESTS};

#[test]
fn all_self_tests_pass_on_the_host() {
    let mut h = common::TestHeap::new(MIN_HEAP);
    let mut tap = String::new();
    let failed = run_all(&mut h, |n, name, r| {
        write_tap_line(&mut tap, n, name, &r).unwrap();
    });
    assert_eq!(failed, 0, "{tap}");
    assert_eq!(
        tap.lines().filter(|l| l.starts_with("ok ")).count(),
        TESTS.len()
    );
    let s = h.stats();
    assert_eq!(s.active_allocs, 0);
    assert_eq!(s.largest_free_block, s.initial_largest_free_block);
    h.validate().unwrap();
}

#[test]
fn leak_check_is_relative_to_the_starting_state() {
    // The module may run the suite on a heap that already holds allocations:
    // those must not be blamed on the tests, and must survive them intact.
    let mut h = common::TestHeap::new(MIN_HEAP);
    let live = h.alloc(100).unwrap();
    common::fill(live, 100, 0x5c);
    let failed = run_all(&mut h, |_, _, _| {});
    assert_eq!(
        failed, 0,
        "a pre-existing allocation is not the tests' leak"
    );
    assert!(
        common::check(live, 100, 0x5c),
        "the tests damaged a live allocation"
    );
    assert_eq!(h.stats().active_allocs, 1);
    h.free(live.as_ptr()).unwrap();
}
