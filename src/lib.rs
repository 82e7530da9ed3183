// SPDX-License-Identifier: GPL-2.0

//! Host build of `ikos_kalloc`.
//!
//! This crate compiles exactly the same sources that the kernel module
//! builds (`src/ikos_kalloc.rs` is the module's crate root), as plain
//! `no_std` Rust, so that everything without kernel types is exercised with
//! `cargo test` on the host:
//!
//! - [`allocator`]: the allocator core;
//! - [`abi`]: parsing of the debugfs command lines;
//! - [`selftest`]: the self-tests the module runs at load;
//! - `host` (cargo feature `std`, default on; never in the kernel): the
//!   `GlobalAlloc` adapter and the trace replayer used by the tests, the
//!   benches and the `kalloc-replay` tool.
//!
//! The crate stays `#![no_std]`; only `host` links `std`.

#![no_std]

#[cfg(feature = "std")]
extern crate std;

pub mod abi;
pub mod allocator;
#[cfg(feature = "std")]
pub mod host;
pub mod selftest;
