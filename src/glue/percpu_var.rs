// SPDX-License-Identifier: GPL-2.0

//! A per-CPU variable allocated at run time: `alloc_percpu()` for Rust.
//!
//! The kernel crate has no per-CPU allocation, and `alloc_percpu`,
//! `per_cpu_ptr` and `cpu_possible` are C macros, so `src/ikos_kalloc_cpu.c`
//! wraps them. The access that matters for speed, this CPU's instance, is
//! `this_cpu_ptr()`: on x86-64 the per-CPU address plus `this_cpu_off`,
//! one `%gs`-relative load ([`NoPreempt::this_cpu_offset`]), so the fast
//! path finds its CPU's cache without the CPU number, an array or a bounds
//! check.

use super::preempt::NoPreempt;
use core::{ffi::c_void, marker::PhantomData, mem};
use kernel::{cpu::nr_cpu_ids, prelude::*};

extern "C" {
    fn ikos_kalloc_percpu_alloc(size: usize, align: usize) -> *mut c_void;
    fn ikos_kalloc_percpu_free(p: *mut c_void);
    fn ikos_kalloc_percpu_ptr(p: *mut c_void, cpu: u32) -> *mut c_void;
}

/// One `T` per possible CPU.
///
/// # Invariants
///
/// `pcpu` is a live `alloc_percpu` allocation of `T`, initialised on every
/// possible CPU, freed (after dropping each `T`) only by `Drop`.
pub(crate) struct PerCpuVar<T> {
    /// The per-CPU address (not a pointer: add a CPU's offset first).
    pcpu: *mut c_void,
    _t: PhantomData<T>,
}

// SAFETY: the instances are reached as `&T` on any CPU, as by a `&[T]`.
unsafe impl<T: Sync> Sync for PerCpuVar<T> {}
// SAFETY: owning it is owning a set of `T`, which may move between threads.
unsafe impl<T: Send> Send for PerCpuVar<T> {}

impl<T> PerCpuVar<T> {
    /// Allocates the variable and initialises it on every possible CPU by
    /// `init`, which gets the address of that CPU's instance (so a large
    /// `T` is built in place, not on the stack).
    ///
    /// # Safety
    ///
    /// `init` must initialise the `T` at its argument (valid for writes,
    /// aligned, uninitialised) completely.
    pub(crate) unsafe fn new(init: impl Fn(*mut T)) -> Result<Self> {
        // SAFETY: a plain allocation; null on failure.
        let pcpu = unsafe { ikos_kalloc_percpu_alloc(mem::size_of::<T>(), mem::align_of::<T>()) };
        if pcpu.is_null() {
            return Err(ENOMEM);
        }
        for cpu in 0..nr_cpu_ids() {
            // SAFETY: `pcpu` is a live per-CPU allocation.
            let p = unsafe { ikos_kalloc_percpu_ptr(pcpu, cpu) }.cast::<T>();
            if !p.is_null() {
                // This CPU's instance: `size_of::<T>()` bytes aligned for
                // `T`, not initialised yet, not reachable by anyone else;
                // `init` initialises it (the function's contract).
                init(p);
            }
        }
        Ok(PerCpuVar {
            pcpu,
            _t: PhantomData,
        })
    }

    /// The instance of the CPU `pin` keeps this task on (`this_cpu_ptr()`).
    ///
    /// # Safety
    ///
    /// The result must not be used after `pin` is dropped (the task may
    /// then run on another CPU). Its lifetime is not tied to `pin` so that
    /// a caller can keep both in one struct, as `percpu`'s `LocalCache`
    /// does.
    #[inline(always)]
    pub(crate) unsafe fn local<'a>(&'a self, pin: &NoPreempt) -> &'a T {
        let p = self
            .pcpu
            .wrapping_byte_add(pin.this_cpu_offset())
            .cast::<T>();
        // SAFETY: the per-CPU address plus this CPU's offset is this CPU's
        // instance, initialised (type invariant) and alive while `self` is.
        unsafe { &*p }
    }

    /// The instance of `cpu`, `None` for a CPU that is not possible.
    pub(crate) fn get(&self, cpu: usize) -> Option<&T> {
        let cpu = u32::try_from(cpu).ok()?;
        // SAFETY: `pcpu` is a live per-CPU allocation (type invariant); the
        // helper checks `cpu`.
        let p = unsafe { ikos_kalloc_percpu_ptr(self.pcpu, cpu) }.cast::<T>();
        // SAFETY: non-null means a possible CPU's instance, initialised and
        // alive while `self` is (type invariant).
        unsafe { p.as_ref() }
    }

    /// One past the highest CPU number (`nr_cpu_ids`): the range to pass
    /// to [`PerCpuVar::get`].
    pub(crate) fn cpus(&self) -> usize {
        nr_cpu_ids() as usize
    }
}

impl<T> Drop for PerCpuVar<T> {
    fn drop(&mut self) {
        for cpu in 0..nr_cpu_ids() {
            // SAFETY: `pcpu` is still live.
            let p = unsafe { ikos_kalloc_percpu_ptr(self.pcpu, cpu) }.cast::<T>();
            if !p.is_null() {
                // SAFETY: an initialised instance, dropped once: `&mut self`
                // means no reference to it is left.
                unsafe { p.drop_in_place() };
            }
        }
        // SAFETY: allocated by `ikos_kalloc_percpu_alloc`, not used again.
        unsafe { ikos_kalloc_percpu_free(self.pcpu) };
    }
}
