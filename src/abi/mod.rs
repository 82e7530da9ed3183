// SPDX-License-Identifier: GPL-2.0

//! The debugfs ABI, minus the kernel: parsing of the command lines written to
//! `/sys/kernel/debug/ikos_kalloc/*` and nothing else.
//!
//! Plain `no_std` code (like `allocator/`), compiled into the module and into
//! the host crate, where property tests feed it arbitrary bytes. The ABI itself
//! is documented in `Documentation/debugfs-ikos_kalloc.rst`.

pub mod command;

pub use command::{
    debug_flags, parse_alloc, parse_bench, parse_byte_cmd, parse_caches, parse_free, parse_inject,
    parse_leaks, parse_realloc, parse_run, parse_scribble, parse_stress, AllocCmd, AllocFlags,
    ByteCmd, CachesCmd, InjectCmd, ParseError, ReallocCmd, ScribbleCmd, BENCH_DEFAULT_OPS,
    BENCH_OPS, INJECT_MAX_OVERFLOW, MAX_LINE, MAX_NAME, SCRIBBLE_BYTE, SCRIBBLE_MAX_LEN,
    STRESS_DEFAULT_SECONDS, STRESS_SECONDS,
};
