// SPDX-License-Identifier: GPL-2.0

//! Mapping of allocator errors to errnos, and the rate-limited dmesg line
//! that accompanies every rejected debugfs write.

use crate::allocator::{AllocError, CacheError, FreeError, InjectError};
use kernel::{
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

/// errno for a failed allocation.
pub(crate) fn alloc_errno(e: AllocError) -> Error {
    match e {
        AllocError::ZeroSize | AllocError::SizeOverflow | AllocError::BadAlign => EINVAL,
        AllocError::DmaUnsupported => EOPNOTSUPP,
        AllocError::OutOfMemory => ENOMEM,
        AllocError::BadCache => ENOENT,
        AllocError::Corrupted(_) => EIO,
    }
}

/// errno for a failed free.
pub(crate) fn free_errno(e: FreeError) -> Error {
    match e {
        FreeError::Corrupted(_) => EIO,
        _ => EINVAL,
    }
}

/// errno for a refused injection.
pub(crate) fn inject_errno(e: InjectError) -> Error {
    match e {
        // The handle table says live, the allocator says not: damage.
        InjectError::NotLive | InjectError::Corrupted(_) => EIO,
        InjectError::Free(e) => free_errno(e),
        InjectError::NoNeighbour | InjectError::OutOfRange => ERANGE,
    }
}

/// errno for a failed cache operation.
pub(crate) fn cache_errno(e: CacheError) -> Error {
    match e {
        CacheError::NameExists => EEXIST,
        CacheError::InvalidName
        | CacheError::InvalidSize
        | CacheError::BadAlign
        | CacheError::BuiltIn => EINVAL,
        CacheError::TooMany => ENOSPC,
        CacheError::Busy => EBUSY,
        CacheError::NoSuchCache => ENOENT,
        CacheError::Corrupted(_) => EIO,
    }
}

/// The errno's name for the dmesg line. `Error`'s own `Debug` needs
/// CONFIG_SYMBOLIC_ERRNAME; these are all the errnos this module returns.
struct ErrnoName(Error);

impl core::fmt::Display for ErrnoName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let e = self.0;
        let name = [
            (EINVAL, "EINVAL"),
            (ENOENT, "ENOENT"),
            (EEXIST, "EEXIST"),
            (ENOMEM, "ENOMEM"),
            (EBUSY, "EBUSY"),
            (EOPNOTSUPP, "EOPNOTSUPP"),
            (EIO, "EIO"),
            (ENOSPC, "ENOSPC"),
            (EFAULT, "EFAULT"),
            (ENODEV, "ENODEV"),
            (ERANGE, "ERANGE"),
        ]
        .into_iter()
        .find(|(x, _)| *x == e)
        .map(|(_, n)| n);
        match name {
            Some(n) => f.write_str(n),
            None => write!(f, "errno {}", -e.to_errno()),
        }
    }
}

/// Rejections logged so far; after [`LOG_BURST`] only every
/// [`LOG_EVERY`]th is, so a fuzzer cannot flood the log.
static REJECTIONS: Atomic<u64> = Atomic::new(0);
const LOG_BURST: u64 = 100;
const LOG_EVERY: u64 = 10_000;

/// Whether the `n`th rejection (from 0, so rejection #`n + 1`) is logged.
fn logged(n: u64) -> bool {
    n < LOG_BURST || (n + 1) % LOG_EVERY == 0
}

/// Logs one line for a rejected write to `file` and returns `err`.
pub(crate) fn reject(file: &str, err: Error, why: &dyn core::fmt::Display) -> Error {
    reject_then(file, err, why, || {})
}

/// [`reject`], and `more` (further lines about the same rejection) when
/// the line is logged: under the same rate limit.
pub(crate) fn reject_then(
    file: &str,
    err: Error,
    why: &dyn core::fmt::Display,
    more: impl FnOnce(),
) -> Error {
    let n = REJECTIONS.fetch_add(1, Relaxed);
    if logged(n) {
        pr_info!(
            "{}: rejected ({}): {} [rejection #{}]\n",
            file,
            Shown(&ErrnoName(err)),
            Shown(why),
            n + 1
        );
        more();
    }
    err
}

/// Logs one line for a misuse of the C API (a bad pointer, a stale cache),
/// under the same rate limit.
pub(crate) fn rate_limited(what: &dyn core::fmt::Display) {
    let n = REJECTIONS.fetch_add(1, Relaxed);
    if logged(n) {
        pr_err!("C API: {} [rejection #{}]\n", Shown(what), n + 1);
    }
}

/// Lets `pr_*!` print values of the core (which implement
/// `core::fmt::Display`, the kernel's macros want `kernel::fmt::Display`).
pub(crate) struct Shown<'a, T: ?Sized>(pub(crate) &'a T);

impl<T: core::fmt::Display + ?Sized> kernel::fmt::Display for Shown<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self.0, f)
    }
}
