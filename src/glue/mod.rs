// SPDX-License-Identifier: GPL-2.0

//! Kernel glue: the parts of ikos_kalloc that need the kernel.

pub(crate) mod bench;
pub(crate) mod debug;
pub(crate) mod debugfs;
pub(crate) mod debugfs_dir;
pub(crate) mod errors;
pub(crate) mod export;
pub(crate) mod heapmap;
pub(crate) mod hotplug;
pub(crate) mod percpu;
pub(crate) mod percpu_var;
pub(crate) mod preempt;
pub(crate) mod region;
pub(crate) mod selftest;
pub(crate) mod state;
pub(crate) mod stress;
