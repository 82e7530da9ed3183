// SPDX-License-Identifier: GPL-2.0

//! `kalloc-fuzz`: hostile-input and concurrency driver for the
//! ikos_kalloc debugfs ABI, run inside the test VM (a static binary copied
//! into the initramfs by `scripts/run-vm.sh`).
//!
//! ```text
//! kalloc-fuzz fuzz  [--seconds S] [--seed N] [--dir D]
//! kalloc-fuzz churn [--seconds S] [--seed N] [--dir D] --ids BASE
//! kalloc-fuzz read  [--seconds S] [--dir D]
//! kalloc-fuzz insmod-nth K MODULE.ko [PARAMS]
//! ```
//!
//! * `fuzz` writes generated lines (random bytes, overlong lines, NULs,
//!   non-UTF-8, huge/negative/overflowing numbers, bad alignments, unknown
//!   flags and commands, whitespace and case variants, valid commands) to
//!   every writable file, one `write(2)` each, and prints the seed, the
//!   number of lines and the errno histogram. It keeps a model of the
//!   bytes it filled and fails if a `verify` it expects to pass does not.
//! * `churn` allocates, fills, verifies, frees and "reallocs" (alloc new,
//!   copy pattern, verify old, free old) handles `BASE..BASE+64` only.
//! * `read` reads `stats`, `caches`, `handles` and `validate` in a loop
//!   and fails if `validate` ever reports `corrupt`.
//!
//! * `insmod-nth` loads a module with the K-th allocation of the load
//!   failing (the kernel's fail-nth) and says whether that fault fired.
//!
//! Every mode is bounded in time, prints one `kalloc-fuzz: ...` summary
//! line per figure and exits 1 on any failure.

mod churn;
mod gen;
mod kfile;
mod nth;

use std::process::ExitCode;
use std::time::Duration;

/// Options common to all modes.
pub(crate) struct Opts {
    pub(crate) seconds: u64,
    pub(crate) seed: u64,
    pub(crate) dir: String,
    pub(crate) ids: u64,
}

const USAGE: &str =
    "usage: kalloc-fuzz fuzz|churn|read [--seconds S] [--seed N] [--dir D] [--ids BASE]";

fn parse(args: &[String]) -> Result<(String, Opts), String> {
    let mode = args.first().ok_or(USAGE)?.clone();
    let mut o = Opts {
        seconds: 10,
        seed: 0,
        dir: "/sys/kernel/debug/ikos_kalloc".into(),
        ids: 1_000_000,
    };
    let mut it = args[1..].iter();
    while let Some(k) = it.next() {
        let v = it.next().ok_or(USAGE)?;
        let num = || v.parse::<u64>().map_err(|e| format!("{k} {v}: {e}"));
        match k.as_str() {
            "--seconds" => o.seconds = num()?,
            "--seed" => o.seed = num()?,
            "--ids" => o.ids = num()?,
            "--dir" => o.dir = v.clone(),
            _ => return Err(USAGE.into()),
        }
    }
    if o.seed == 0 {
        // Deterministic unless asked otherwise: the seed is always printed.
        o.seed = 0x1c05_ca11_f022;
    }
    Ok((mode, o))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("insmod-nth") {
        let k = args.get(1).and_then(|k| k.parse().ok());
        return match (k, args.get(2)) {
            (Some(k), Some(ko)) => {
                let params = args.get(3).map_or("", String::as_str);
                if nth::insmod_nth(k, ko, params) {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            _ => {
                eprintln!("usage: kalloc-fuzz insmod-nth K MODULE.ko [PARAMS]");
                ExitCode::from(2)
            }
        };
    }
    let (mode, o) = match parse(&args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let limit = Duration::from_secs(o.seconds);
    let ok = match mode.as_str() {
        "fuzz" => gen::fuzz(&o, limit),
        "churn" => churn::churn(&o, limit),
        "read" => churn::read(&o, limit),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
