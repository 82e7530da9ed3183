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
//! - [`selftest`]: the self-tests the module runs at load.

#![no_std]

pub mod abi;
pub mod allocator;
pub mod selftest;
