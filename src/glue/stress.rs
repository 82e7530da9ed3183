// SPDX-License-Identifier: GPL-2.0

//! The debugfs `stress` file: runs the in-kernel stress test of
//! `src/ikos_kalloc_stress.c` (one kthread per online CPU on the C API,
//! objects freed across CPUs) and shows the last results.

use super::errors;
use kernel::ffi::{c_int, c_uint};
use kernel::{fmt, prelude::*};

/// `struct ikos_stress_result` of `src/ikos_kalloc_stress.h`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct StressResult {
    threads: u32,
    seconds: u32,
    ops: u64,
    allocs: u64,
    frees: u64,
    cross_cpu_frees: u64,
    irq_ops: u64,
    reallocs: u64,
    reallocs_moved_down: u64,
    alloc_failures: u64,
    verify_failures: u64,
    free_errors: u64,
    leaked: u64,
}

extern "C" {
    fn ikos_stress_run(seconds: c_uint, res: *mut StressResult) -> c_int;
}

/// The last run's results, if any.
#[derive(Default)]
pub(crate) struct StressLog {
    last: Option<StressResult>,
}

/// Runs the stress test for `seconds` and keeps the results. Process
/// context only; sleeps for the whole run. `EIO` if the run found a
/// problem (a changed pattern, a refused free, a leak); the C side's
/// errno, logged, if it could not run (`ENOMEM`, a kthread error,
/// `EWOULDBLOCK` during CPU hotplug, `ENODEV`).
pub(crate) fn run(log: &mut StressLog, seconds: u32) -> Result {
    let mut res = StressResult::default();
    // SAFETY: `res` is a valid, writable `struct ikos_stress_result`; the
    // call is made from process context as it requires.
    let rc = unsafe { ikos_stress_run(seconds, &mut res) };
    if rc != 0 {
        return Err(errors::reject(
            "stress",
            Error::from_errno(rc),
            &"the run could not start or finish (no memory, no thread, or CPU hotplug)",
        ));
    }
    log.last = Some(res);
    if res.verify_failures != 0 || res.free_errors != 0 || res.leaked != 0 {
        pr_err!(
            "stress: {} verify failures, {} refused frees or corruptions, {} leaked\n",
            res.verify_failures,
            res.free_errors,
            res.leaked
        );
        return Err(EIO);
    }
    Ok(())
}

impl StressLog {
    /// Writes the results as `key: value` lines (see the debugfs ABI).
    pub(crate) fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(r) = &self.last else {
            return writeln!(f, "# no stress run yet: echo run [SECONDS] > stress");
        };
        let rows: [(&str, u64); 13] = [
            ("threads", u64::from(r.threads)),
            ("seconds", u64::from(r.seconds)),
            ("ops", r.ops),
            ("allocs", r.allocs),
            ("frees", r.frees),
            ("cross_cpu_frees", r.cross_cpu_frees),
            ("irq_ops", r.irq_ops),
            ("reallocs", r.reallocs),
            ("reallocs_moved_down", r.reallocs_moved_down),
            ("alloc_failures", r.alloc_failures),
            ("verify_failures", r.verify_failures),
            ("free_errors", r.free_errors),
            ("leaked", r.leaked),
        ];
        for (key, value) in rows {
            writeln!(f, "{key}: {value}")?;
        }
        Ok(())
    }
}
