// SPDX-License-Identifier: GPL-2.0

//! The debugfs `bench` file: runs the in-kernel benchmark of
//! `src/ikos_kalloc_bench.c` (ikos_kalloc against kmalloc on identical
//! operation sequences, same run) and shows the last results.

use kernel::ffi::{c_char, c_int, c_uint};
use kernel::{fmt, prelude::*};

/// Number of workloads (`IKOS_BENCH_WORKLOADS`).
pub(crate) const WORKLOADS: usize = 7;

/// `struct ikos_bench_result` of `src/ikos_kalloc_bench.h`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct BenchResult {
    ops: u64,
    ikos_ns: u64,
    slub_ns: u64,
    ikos_failed: u64,
    slub_failed: u64,
}

extern "C" {
    fn ikos_bench_run(ops: u64, res: *mut BenchResult) -> c_int;
    fn ikos_bench_name(i: c_uint) -> *const c_char;
}

/// The last run's results, if any.
#[derive(Default)]
pub(crate) struct BenchLog {
    last: Option<(u64, [BenchResult; WORKLOADS])>,
}

/// Runs every workload with `ops` operations and keeps the results.
/// Process context only; takes the heap lock once per allocation.
pub(crate) fn run(log: &mut BenchLog, ops: u64) -> Result {
    let mut res = [BenchResult::default(); WORKLOADS];
    // SAFETY: `res` has room for the IKOS_BENCH_WORKLOADS results the C side
    // writes; the call is made from process context as it requires.
    let rc = unsafe { ikos_bench_run(ops, res.as_mut_ptr()) };
    if rc != 0 {
        return Err(Error::from_errno(rc));
    }
    log.last = Some((ops, res));
    Ok(())
}

/// Prints `x/y` as a decimal with two places (integer arithmetic).
struct Ratio(u64, u64);

impl core::fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.1 == 0 {
            return f.write_str("n/a");
        }
        let x100 = self.0.saturating_mul(100) / self.1;
        write!(f, "{}.{:02}", x100 / 100, x100 % 100)
    }
}

impl BenchLog {
    /// Writes the results table (see the debugfs ABI document).
    pub(crate) fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((ops, res)) = &self.last else {
            return writeln!(f, "# no benchmark run yet: echo run [OPS] > bench");
        };
        writeln!(
            f,
            "# ikos_kalloc vs kmalloc (SLUB), {ops} iterations per workload, same run"
        )?;
        writeln!(
            f,
            "# ns per operation (an alloc or a free); under TCG emulation only the ratio means anything"
        )?;
        writeln!(
            f,
            "workload ops ikos_ns_per_op slub_ns_per_op ratio ikos_failed slub_failed"
        )?;
        for (i, r) in res.iter().enumerate() {
            // SAFETY: `ikos_bench_name` returns a static NUL-terminated
            // string for every index below IKOS_BENCH_WORKLOADS.
            let name = unsafe { CStr::from_char_ptr(ikos_bench_name(i as c_uint)) };
            let ops = r.ops.max(1);
            writeln!(
                f,
                "{} {} {} {} {} {} {}",
                name.to_str().unwrap_or("?"),
                r.ops,
                Ratio(r.ikos_ns, ops),
                Ratio(r.slub_ns, ops),
                Ratio(r.ikos_ns, r.slub_ns),
                r.ikos_failed,
                r.slub_failed
            )?;
        }
        Ok(())
    }
}
