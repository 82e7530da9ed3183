// SPDX-License-Identifier: GPL-2.0

//! Writing one line to a debugfs file in a single `write(2)`, and the errno
//! histogram.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;

/// Writes `line` to `dir/file` in one `write(2)`; `Ok` or the errno name
/// (`SHORT` for a partial write).
pub(crate) fn write(dir: &str, file: &str, line: &[u8]) -> Result<(), &'static str> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(format!("{dir}/{file}"))
        .map_err(|e| errno_name(e.raw_os_error()))?;
    // One write(2), never a retry: a command must arrive whole, and the
    // module consumes the whole buffer or fails it.
    match f.write(line) {
        Ok(n) if n == line.len() => Ok(()),
        Ok(_) => Err("SHORT"),
        Err(e) => Err(errno_name(e.raw_os_error())),
    }
}

/// Reads `dir/file` whole; `None` on error.
pub(crate) fn read(dir: &str, file: &str) -> Option<String> {
    std::fs::read_to_string(format!("{dir}/{file}")).ok()
}

/// Name of an errno (Linux x86_64 numbers).
pub(crate) fn errno_name(errno: Option<i32>) -> &'static str {
    match errno {
        Some(1) => "EPERM",
        Some(2) => "ENOENT",
        Some(5) => "EIO",
        Some(12) => "ENOMEM",
        Some(14) => "EFAULT",
        Some(16) => "EBUSY",
        Some(17) => "EEXIST",
        Some(19) => "ENODEV",
        Some(22) => "EINVAL",
        Some(28) => "ENOSPC",
        Some(34) => "ERANGE",
        Some(95) => "EOPNOTSUPP",
        _ => "OTHER",
    }
}

/// Counts of results by errno name (`OK` for success).
#[derive(Default)]
pub(crate) struct Histogram(BTreeMap<&'static str, u64>);

impl Histogram {
    /// Counts one result.
    pub(crate) fn add(&mut self, r: Result<(), &'static str>) {
        *self.0.entry(r.err().unwrap_or("OK")).or_default() += 1;
    }

    /// `OK=n EINVAL=n ...`.
    pub(crate) fn line(&self) -> String {
        let v: Vec<String> = self.0.iter().map(|(k, n)| format!("{k}={n}")).collect();
        v.join(" ")
    }

    /// Total results counted.
    pub(crate) fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

/// A small deterministic PRNG (xorshift64*).
pub(crate) struct Rng(u64);

impl Rng {
    /// Seeded generator (`seed` 0 is remapped).
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    /// Next 64 random bits.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `1/n`.
    pub(crate) fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// One element of `v`.
    pub(crate) fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
}
