// SPDX-License-Identifier: GPL-2.0

//! Small helpers of the self-tests: failure values, a PRNG, pattern fill and
//! check over raw allocations.

use core::{fmt, ptr::NonNull};

/// Why a self-test failed: what went wrong and one number for context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What was expected and did not happen.
    pub what: &'static str,
    /// A value for context (a size, an offset, a count).
    pub value: u64,
}

impl Failure {
    /// A failure with a context value.
    pub const fn new(what: &'static str, value: u64) -> Self {
        Self { what, value }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (value {})", self.what, self.value)
    }
}

/// Fails with `what` unless `cond` holds.
pub(super) fn ensure(cond: bool, what: &'static str, value: u64) -> Result<(), Failure> {
    if cond {
        Ok(())
    } else {
        Err(Failure::new(what, value))
    }
}

/// xorshift64*: deterministic, tiny, good enough to pick sizes. The one PRNG
/// of the project: the host tests and benches use it too.
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed.
    pub const fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `lo..=hi` (`lo <= hi`).
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        let span = (hi - lo) as u64 + 1;
        lo + (self.next_u64() % span) as usize
    }
}

/// Fills `len` bytes at `p` with the pattern of `seed`.
///
/// # Safety
///
/// `p` must be valid for writes of `len` bytes.
pub(super) unsafe fn fill(p: NonNull<u8>, len: usize, seed: u8) {
    for i in 0..len {
        // SAFETY: `i < len` and the caller guarantees `len` writable bytes.
        unsafe { p.as_ptr().add(i).write(seed.wrapping_add(i as u8)) };
    }
}

/// Checks the pattern written by [`fill`].
///
/// # Safety
///
/// `p` must be valid for reads of `len` bytes.
pub(super) unsafe fn check(p: NonNull<u8>, len: usize, seed: u8) -> bool {
    // SAFETY: the caller guarantees `len` readable bytes at `p`.
    let bytes = unsafe { core::slice::from_raw_parts(p.as_ptr(), len) };
    bytes
        .iter()
        .enumerate()
        .all(|(i, &b)| b == seed.wrapping_add(i as u8))
}
