// SPDX-License-Identifier: GPL-2.0

//! cargo-fuzz target `heap_ops`: see `ikos_kalloc::host::fuzz::heap_ops`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ikos_kalloc::host::fuzz::heap_ops(data));
