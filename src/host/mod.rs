// SPDX-License-Identifier: GPL-2.0

//! Host-only helpers (cargo feature `std`, on by default; the kernel never
//! builds this module): the `GlobalAlloc` adapter shared by the tests, the
//! benches and the replay tool, with its per-thread object caches; the
//! allocation-trace format with its replayer; the bodies of the cargo-fuzz
//! targets; and the fragmented-index fixture of the large-block benches.

pub mod fuzz;
pub mod global_alloc;
pub mod holes;
pub mod replay;
pub mod thread_cache;
pub mod trace;
