// SPDX-License-Identifier: GPL-2.0

//! CPU hotplug held off: `cpus_read_lock()` as a guard.
//!
//! [`PerCpu::quiesce`](super::percpu::PerCpu::quiesce) pauses every CPU's
//! cache and reaches the cache of an offline CPU directly; no CPU may come
//! online or go offline until it has resumed them all.

use core::marker::PhantomData;
use kernel::bindings;

/// CPU hotplug is held off (`cpu_hotplug_lock` held for reading) while
/// this lives. Not `Send`: released by the task that took it.
pub(crate) struct NoHotplug(PhantomData<*mut ()>);

impl NoHotplug {
    /// `cpus_read_lock()`: waits for a hotplug operation in progress.
    ///
    /// # Safety
    ///
    /// The caller may sleep (task context, no spinlock held, interrupts
    /// enabled).
    pub(crate) unsafe fn new() -> Self {
        // SAFETY: the caller may sleep, by the function's contract.
        unsafe { bindings::cpus_read_lock() };
        NoHotplug(PhantomData)
    }

    /// `cpus_read_trylock()`: `None` while a hotplug operation is in
    /// progress. Never sleeps.
    pub(crate) fn try_new() -> Option<Self> {
        // SAFETY: a trylock of a percpu rwsem, allowed in any task context.
        (unsafe { bindings::cpus_read_trylock() } != 0).then_some(NoHotplug(PhantomData))
    }
}

impl Drop for NoHotplug {
    fn drop(&mut self) {
        // SAFETY: taken by `new` or `try_new`, in this task (`!Send`).
        unsafe { bindings::cpus_read_unlock() };
    }
}
