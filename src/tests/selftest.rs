// SPDX-License-Identifier: GPL-2.0

//! Runs the module's self-tests (`src/selftest/`) on the host, on a heap of
//! the size the module uses, and checks that the checks around each test
//! (`SelfTest::run_checked`, which the module's `selftest` file and the KUnit
//! suite both use) report a broken heap, a leak and a failed test.

mod common;

use ikos_kalloc::allocator::{Counter, DebugFlags, Heap};
use ikos_kalloc::selftest::{run_all, write_tap_line, Failure, SelfTest, MIN_HEAP, TESTS};

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
fn all_self_tests_pass_with_every_debug_flag_on() {
    // Red zones, poison, owner records and sanity checks change layouts
    // and paths; the self-tests assert behaviour, not layout.
    let mut h = common::TestHeap::with_debug(MIN_HEAP, DebugFlags::ALL);
    let mut tap = String::new();
    let failed = run_all(&mut h, |n, name, r| {
        write_tap_line(&mut tap, n, name, &r).unwrap();
    });
    assert_eq!(failed, 0, "{tap}");
    assert_eq!(h.stats().active_allocs, 0);
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

fn passes(_: &mut Heap) -> Result<(), Failure> {
    Ok(())
}

fn leaks_one(h: &mut Heap) -> Result<(), Failure> {
    h.alloc(64)
        .map(|_| ())
        .ok_or(Failure::new("alloc failed", 64))
}

fn fails(_: &mut Heap) -> Result<(), Failure> {
    Err(Failure::new("the test's own failure", 7))
}

#[test]
fn run_checked_reports_a_broken_heap_a_leak_and_a_failure() {
    let mut h = common::TestHeap::new(MIN_HEAP);
    let t = |run| SelfTest { name: "t", run };
    assert_eq!(t(passes).run_checked(&mut h), Ok(()));
    assert_eq!(
        t(leaks_one).run_checked(&mut h),
        Err(Failure::new("test leaked allocations", 1))
    );
    // The leak check is relative: the leaked object is not the next test's.
    assert_eq!(t(passes).run_checked(&mut h), Ok(()));
    assert_eq!(
        t(fails).run_checked(&mut h),
        Err(Failure::new("the test's own failure", 7))
    );
    // What the KUnit module's fail_case does: a skewed block counter makes
    // validate() fail after a test that itself passed.
    h.inject_counter(Counter::Blocks, 1);
    assert_eq!(
        t(passes).run_checked(&mut h),
        Err(Failure::new("heap invalid after the test", 0))
    );
}

#[test]
fn run_all_fails_every_test_on_a_heap_whose_accounting_is_skewed() {
    let mut h = common::TestHeap::new(MIN_HEAP);
    h.inject_counter(Counter::Blocks, 1);
    let mut reported = Vec::new();
    let failed = run_all(&mut h, |n, name, r| reported.push((n, name, r.is_err())));
    assert_eq!(failed, TESTS.len());
    let expected: Vec<_> = TESTS
        .iter()
        .enumerate()
        .map(|(i, t)| (i + 1, t.name, true))
        .collect();
    assert_eq!(reported, expected);
}
