// SPDX-License-Identifier: GPL-2.0

//! The self-tests of the design document, written against the allocator core
//! only, so the same source runs in the kernel (at load and on a `selftest`
//! write, on a scratch heap of its own), as the KUnit suites `ikos_kalloc`
//! and `ikos_kalloc_debug` (`selftests/modules/ikos_kalloc_kunit.rs`) and on
//! the host (`cargo test`).
//!
//! Every test leaves the heap as it found it: all its allocations are freed,
//! `validate()` passes and `active_allocs` is back to its starting value.

mod groups;
mod util;

use crate::allocator::Heap;
use core::fmt;

pub use util::{Failure, Rng};

/// A self-test: name and body.
pub struct SelfTest {
    /// Short name, printed in the TAP line.
    pub name: &'static str,
    /// The test. Runs on a heap of at least [`MIN_HEAP`] bytes.
    pub run: fn(&mut Heap) -> Result<(), Failure>,
}

/// Smallest heap the self-tests are written for (the stress test keeps
/// 1,000+ allocations live).
pub const MIN_HEAP: usize = 4 * 1024 * 1024;

/// All self-tests, in the order they run.
pub const TESTS: &[SelfTest] = &[
    SelfTest {
        name: "basic",
        run: groups::basic,
    },
    SelfTest {
        name: "alignment",
        run: groups::alignment,
    },
    SelfTest {
        name: "slab_reuse_and_lists",
        run: groups::slab_reuse_and_lists,
    },
    SelfTest {
        name: "large_split_coalesce",
        run: groups::large_split_coalesce,
    },
    SelfTest {
        name: "edge_cases",
        run: groups::edge_cases,
    },
    SelfTest {
        name: "statistics",
        run: groups::statistics,
    },
    SelfTest {
        name: "custom_cache",
        run: groups::custom_cache,
    },
    SelfTest {
        name: "stress",
        run: groups::stress,
    },
];

impl SelfTest {
    /// Runs the test on `heap`; after it, `validate()` must pass and the
    /// live allocation count must be back where it was, else the test
    /// fails.
    pub fn run_checked(&self, heap: &mut Heap) -> Result<(), Failure> {
        let before = heap.stats().active_allocs;
        (self.run)(heap)?;
        if heap.validate().is_err() {
            return Err(Failure::new("heap invalid after the test", 0));
        }
        let after = heap.stats().active_allocs;
        if after != before {
            return Err(Failure::new(
                "test leaked allocations",
                after.wrapping_sub(before),
            ));
        }
        Ok(())
    }
}

/// Runs every test on `heap` ([`SelfTest::run_checked`]), calling
/// `report(number, name, result)` after each (numbers start at 1).
/// Returns the number of failed tests.
pub fn run_all(
    heap: &mut Heap,
    mut report: impl FnMut(usize, &'static str, Result<(), Failure>),
) -> usize {
    let mut failed = 0;
    for (i, t) in TESTS.iter().enumerate() {
        let result = t.run_checked(heap);
        if result.is_err() {
            failed += 1;
        }
        report(i + 1, t.name, result);
    }
    failed
}

/// Writes `ok N name` / `not ok N name` with a `# reason` line on failure.
pub fn write_tap_line(
    f: &mut impl fmt::Write,
    n: usize,
    name: &str,
    result: &Result<(), Failure>,
) -> fmt::Result {
    match result {
        Ok(()) => writeln!(f, "ok {n} {name}"),
        Err(e) => writeln!(f, "not ok {n} {name}\n# {e}"),
    }
}
