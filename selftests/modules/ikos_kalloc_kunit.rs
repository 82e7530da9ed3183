// SPDX-License-Identifier: GPL-2.0

//! ikos_kalloc_kunit: the allocator core's self-tests as a KUnit suite.
//!
//! A test-only module (never installed). It compiles the allocator core
//! (`src/allocator/`) and the self-tests (`src/selftest/`) from the same
//! files as `ikos_kalloc.ko` and the host crate, and registers the KUnit
//! suite `ikos_kalloc`: one case per self-test, each on a scratch heap of
//! its own in a fresh vmalloc region (the same checks as the `selftest`
//! file: the test passes, then `validate()` passes and no allocation is
//! left live). KUnit runs the suite when the module is loaded and keeps
//! the KTAP at `/sys/kernel/debug/kunit/ikos_kalloc/results`. A second
//! suite, `ikos_kalloc_debug`, runs the same cases on heaps with every debug
//! flag on (red zones, poison, owner records, sanity checks: `debug=ZPUF`).
//! The module does not need `ikos_kalloc.ko`: it has no heap of its own.
//!
//! `fail_case=N` skews the scratch heap's block counter before case N
//! (1-based, in the order of `selftest::TESTS`) of both suites, so that `validate()`
//! finds the heap inconsistent and that case must be reported as failed:
//! the VM selftest loads it once that way to show a failure reaches KUnit.

use allocator::{Counter, DebugFlags, Heap};
use kernel::prelude::*;
use region::VmallocRegion;
use selftest::{MIN_HEAP, TESTS};

#[path = "../../src/allocator/mod.rs"]
pub mod allocator;
#[path = "../../src/glue/region.rs"]
mod region;
#[path = "../../src/selftest/mod.rs"]
pub mod selftest;

module! {
    type: IkosKallocKunit,
    name: "ikos_kalloc_kunit",
    authors: ["ikos_kalloc developers"],
    description: "KUnit suite ikos_kalloc: the allocator core's self-tests (tests only)",
    license: "GPL",
    params: {
        fail_case: u32 {
            default: 0,
            description: "Make self-test case N (1-based) fail on purpose by skewing its heap's accounting (tests only; default 0: none)",
        },
    },
}

struct IkosKallocKunit;

impl kernel::Module for IkosKallocKunit {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // KUnit runs the suite once the module is live; nothing to set up.
        Ok(Self)
    }
}

/// Runs the self-test `name` on a fresh scratch heap with debug `flags`;
/// logs why it failed, if it did. The cases return this `Result` and never
/// assert: a failed KUnit assertion ends the case's kthread without
/// running destructors, which would leak the scratch region. KUnit's own
/// check of the returned value runs after it was freed.
fn run_case(name: &str, flags: DebugFlags) -> Result {
    let Some((i, test)) = TESTS.iter().enumerate().find(|(_, t)| t.name == name) else {
        pr_err!("no self-test named {}\n", name);
        return Err(EINVAL);
    };
    let region = VmallocRegion::new(MIN_HEAP)?;
    // SAFETY: `region` is owned by this function and outlives `heap`, which
    // is dropped first (declared later); nothing else uses the memory.
    let mut heap =
        unsafe { Heap::with_debug(region.start(), region.len(), flags) }.map_err(|_| EINVAL)?;
    let n = i + 1;
    if usize::try_from(module_parameters::fail_case.value()) == Ok(n) {
        heap.inject_counter(Counter::Blocks, 1);
    }
    test.run_checked(&mut heap).map_err(|e| {
        pr_err!(
            "self-test {} ({}) with debug flags {:#x} failed: {} (value {})\n",
            n,
            name,
            flags.bits(),
            e.what,
            e.value
        );
        EINVAL
    })
}

/// A KUnit suite `$suite` (in module `$module`) of one case per self-test,
/// each on a heap with debug flags `$flags`. `#[kunit_tests]` needs the
/// cases as `#[test]` functions of the module itself, so they are spelled
/// out here once for both suites.
macro_rules! self_test_suite {
    ($suite:ident, $module:ident, $flags:expr) => {
        #[kunit_tests($suite)]
        mod $module {
            use kernel::prelude::*;

            fn run(name: &str) -> Result {
                crate::run_case(name, $flags)
            }

            #[test]
            fn basic() -> Result {
                run("basic")
            }

            #[test]
            fn alignment() -> Result {
                run("alignment")
            }

            #[test]
            fn slab_reuse_and_lists() -> Result {
                run("slab_reuse_and_lists")
            }

            #[test]
            fn large_split_coalesce() -> Result {
                run("large_split_coalesce")
            }

            #[test]
            fn edge_cases() -> Result {
                run("edge_cases")
            }

            #[test]
            fn statistics() -> Result {
                run("statistics")
            }

            #[test]
            fn custom_cache() -> Result {
                run("custom_cache")
            }

            #[test]
            fn stress() -> Result {
                run("stress")
            }
        }
    };
}

self_test_suite!(ikos_kalloc, tests, crate::DebugFlags::NONE);
self_test_suite!(ikos_kalloc_debug, tests_debug, crate::DebugFlags::ALL);
