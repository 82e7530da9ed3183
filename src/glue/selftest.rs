// SPDX-License-Identifier: GPL-2.0

//! Running the self-tests (`src/selftest/`) in the kernel: on a scratch heap
//! of its own in a fresh vmalloc region, so the main heap is never touched,
//! with the verdict in dmesg and the TAP kept for the `selftest` file.

use super::{errors::Shown, region::VmallocRegion};
use crate::{
    allocator::Heap,
    selftest::{self, Failure, TESTS},
};
use kernel::{fmt, prelude::*};

/// Results of the last run, one entry per test of [`TESTS`].
pub(crate) struct SelftestLog {
    results: [Option<Result<(), Failure>>; TESTS.len()],
    runs: u64,
}

impl SelftestLog {
    /// No run yet.
    pub(crate) fn new() -> Self {
        Self {
            results: [None; TESTS.len()],
            runs: 0,
        }
    }

    /// Writes the TAP of the last run (see the debugfs ABI document).
    pub(crate) fn write_tap(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.runs == 0 {
            return writeln!(f, "# no self-test run yet");
        }
        writeln!(f, "1..{}", TESTS.len())?;
        let mut failed = 0;
        for (i, (t, r)) in TESTS.iter().zip(self.results.iter()).enumerate() {
            let r = r.unwrap_or(Err(Failure::new("did not run", 0)));
            failed += usize::from(r.is_err());
            selftest::write_tap_line(f, i + 1, t.name, &r)?;
        }
        writeln!(f, "# passed: {} failed: {}", TESTS.len() - failed, failed)
    }
}

/// Size of the scratch heap.
const SCRATCH_HEAP: usize = selftest::MIN_HEAP;

/// Runs every self-test on a fresh scratch heap, logs the verdict and stores
/// the results in `log`. Returns the number of failed tests. Process context
/// only (allocates with `GFP_KERNEL`); takes no lock of the main heap.
pub(crate) fn run(log: &mut SelftestLog) -> Result<usize> {
    let region = VmallocRegion::new(SCRATCH_HEAP)?;
    // SAFETY: `region` is owned by this function and outlives `heap`, which
    // is dropped first (declared later); nothing else uses the memory.
    let mut heap = unsafe { Heap::new(region.start(), region.len()) }.map_err(|_| EINVAL)?;
    log.results = [None; TESTS.len()];
    let failed = selftest::run_all(&mut heap, |n, name, r| {
        if let Err(e) = &r {
            pr_err!("KALLOC: self-test {} ({}) failed: {}\n", n, name, Shown(e));
        }
        if let Some(slot) = log.results.get_mut(n - 1) {
            *slot = Some(r);
        }
    });
    log.runs += 1;
    if failed == 0 {
        pr_info!("KALLOC: All tests completed successfully\n");
    } else {
        pr_err!("KALLOC: {} of {} tests failed\n", failed, TESTS.len());
    }
    Ok(failed)
}
