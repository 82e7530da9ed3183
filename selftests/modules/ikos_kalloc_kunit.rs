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
//! the KTAP at `/sys/kernel/debug/kunit/ikos_kalloc/results`. The module
//! does not need `ikos_kalloc.ko`: it has no heap of its own.
//!
//! `fail_case=N` skews the scratch heap's block counter before case N
//! (1-based, in the order of `selftest::TESTS`), so that `validate()`
//! finds the heap inconsistent and that case must be reported as failed:
//! the VM selftest loads it once that way to show a failure reaches KUnit.

use kernel::prelude::*;

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

#[kunit_tests(ikos_kalloc)]
mod tests {
    use crate::{
        allocator::{Counter, Heap},
        region::VmallocRegion,
        selftest::{MIN_HEAP, TESTS},
    };
    use kernel::prelude::*;

    /// Runs the self-test `name` on a fresh scratch heap; logs why it
    /// failed, if it did. The cases return this `Result` and never
    /// assert: a failed KUnit assertion ends the case's kthread without
    /// running destructors, which would leak the scratch region. KUnit's
    /// own check of the returned value runs after it was freed.
    fn run_case(name: &str) -> Result {
        let Some((i, test)) = TESTS.iter().enumerate().find(|(_, t)| t.name == name) else {
            pr_err!("no self-test named {}\n", name);
            return Err(EINVAL);
        };
        let region = VmallocRegion::new(MIN_HEAP)?;
        // SAFETY: `region` is owned by this function and outlives `heap`,
        // which is dropped first (declared later); nothing else uses the
        // memory.
        let mut heap = unsafe { Heap::new(region.start(), region.len()) }.map_err(|_| EINVAL)?;
        let n = i + 1;
        if usize::try_from(crate::module_parameters::fail_case.value()) == Ok(n) {
            heap.inject_counter(Counter::Blocks, 1);
        }
        test.run_checked(&mut heap).map_err(|e| {
            pr_err!(
                "self-test {} ({}) failed: {} (value {})\n",
                n,
                name,
                e.what,
                e.value
            );
            EINVAL
        })
    }

    #[test]
    fn basic() -> Result {
        run_case("basic")
    }

    #[test]
    fn alignment() -> Result {
        run_case("alignment")
    }

    #[test]
    fn slab_reuse_and_lists() -> Result {
        run_case("slab_reuse_and_lists")
    }

    #[test]
    fn large_split_coalesce() -> Result {
        run_case("large_split_coalesce")
    }

    #[test]
    fn edge_cases() -> Result {
        run_case("edge_cases")
    }

    #[test]
    fn statistics() -> Result {
        run_case("statistics")
    }

    #[test]
    fn custom_cache() -> Result {
        run_case("custom_cache")
    }

    #[test]
    fn stress() -> Result {
        run_case("stress")
    }
}
