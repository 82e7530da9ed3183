// SPDX-License-Identifier: GPL-2.0

//! Preemption off and the current CPU number, inline (x86-64).
//!
//! The per-CPU fast path (`percpu.rs`) needs what C spells
//! `preempt_disable_notrace()`, `this_cpu_ptr()` and
//! `preempt_enable_notrace()`. The kernel crate offers them only as
//! out-of-line helpers (`rust/helpers/`, one call each; interrupt disabling
//! is a refcounted helper that calls into the kernel again), and in this
//! module's benchmark those calls cost more than the magazine work itself:
//! 64-byte pairs ran at 2.7 times SLUB with them, 2.0 times with the
//! instructions below in their place (same VM run, `make bench`).
//!
//! On x86-64 each of them is one instruction on a per-CPU variable,
//! addressed `%gs:var(%rip)` as `arch/x86/include/asm/percpu.h` does, and
//! this file emits exactly those instructions:
//!
//! * `__preempt_count` (`arch/x86/include/asm/preempt.h`): `inc` and `dec`,
//!   64-bit with `CONFIG_HAS_SEPARATE_PREEMPT_RESCHED_BITS` (the inverted
//!   need-resched bit is then bit 63), 32-bit otherwise. When the `dec`
//!   reaches zero a reschedule is due, and the same asm block calls
//!   `preempt_schedule_notrace_thunk` (through the static call
//!   `__SCT__preempt_schedule_notrace` under `CONFIG_PREEMPT_DYNAMIC`), as
//!   `preempt_enable_notrace()` does. The thunk (`arch/x86/entry/thunk.S`)
//!   saves every register the C ABI lets a callee clobber, so the block
//!   clobbers only the flags and the compiler keeps no values in
//!   callee-saved registers for it: a plain call would make every caller of
//!   the fast path save and restore them, for a call that almost never
//!   happens.
//! * `this_cpu_off` (`arch/x86/include/asm/percpu.h`): the offset
//!   `this_cpu_ptr()` adds to a per-CPU address (`percpu_var.rs`).
//!
//! Without `CONFIG_PREEMPT_COUNT` the kernel cannot preempt (and the count
//! does not exist): disabling preemption is a compiler barrier, as in C.

#[cfg(not(target_arch = "x86_64"))]
compile_error!("ikos_kalloc's fast path is written for x86-64 (src/glue/preempt.rs)");

use core::{
    marker::PhantomData,
    sync::atomic::{compiler_fence, Ordering},
};

extern "C" {
    /// `DECLARE_PER_CPU_CACHE_HOT(unsigned long, this_cpu_off)`; only ever
    /// addressed through `%gs`, never read directly.
    static this_cpu_off: u64;
    /// `DECLARE_PER_CPU_CACHE_HOT(unsigned long, __preempt_count)`; as above.
    #[cfg(CONFIG_PREEMPT_COUNT)]
    static __preempt_count: u64;
    /// `preempt_schedule_notrace()` behind a thunk that saves the
    /// caller-clobbered registers; only called from asm.
    #[cfg(all(CONFIG_PREEMPTION, not(CONFIG_PREEMPT_DYNAMIC)))]
    fn preempt_schedule_notrace_thunk();
    /// The static-call trampoline of `preempt_schedule_notrace` (which
    /// points at the thunk above, or returns when the boot-time preemption
    /// mode has none); only called from asm.
    #[cfg(all(CONFIG_PREEMPTION, CONFIG_PREEMPT_DYNAMIC))]
    #[allow(non_snake_case)]
    fn __SCT__preempt_schedule_notrace();
}

/// `dec` of the preemption count (64 or 32 bits), then, at zero, the
/// reschedule call of `preempt_enable_notrace()`, as one asm template.
macro_rules! dec_and_resched {
    ($dec:literal) => {
        #[cfg(all(CONFIG_PREEMPTION, not(CONFIG_PREEMPT_DYNAMIC)))]
        // SAFETY: undoes the increment of `NoPreempt::new` on the same CPU
        // (the task could not migrate while the count was raised); at zero
        // a reschedule is pending and the thunk runs it, saving every
        // register but the flags (`arch/x86/entry/thunk.S`).
        unsafe {
            core::arch::asm!($dec, "jnz 2f", "call {f}", "2:",
                pc = sym __preempt_count, f = sym preempt_schedule_notrace_thunk);
        }
        #[cfg(all(CONFIG_PREEMPTION, CONFIG_PREEMPT_DYNAMIC))]
        // SAFETY: as above, through the static-call trampoline.
        unsafe {
            core::arch::asm!($dec, "jnz 2f", "call {f}", "2:",
                pc = sym __preempt_count, f = sym __SCT__preempt_schedule_notrace);
        }
        #[cfg(not(CONFIG_PREEMPTION))]
        // SAFETY: undoes the increment of `NoPreempt::new`; without
        // `CONFIG_PREEMPTION` nothing is rescheduled here.
        unsafe {
            core::arch::asm!($dec, pc = sym __preempt_count, options(nostack));
        }
    };
}

/// Preemption is disabled while this lives, so the task stays on the CPU
/// whose per-CPU area [`NoPreempt::this_cpu_offset`] names. Interrupts stay
/// enabled: an interrupt handler on this CPU may run in between (see the
/// busy flag in `percpu.rs`).
///
/// Not `Send`: it must be dropped on the CPU that created it.
pub(crate) struct NoPreempt(PhantomData<*mut ()>);

impl NoPreempt {
    /// `preempt_disable_notrace()`.
    #[inline(always)]
    pub(crate) fn new() -> Self {
        #[cfg(all(CONFIG_PREEMPT_COUNT, CONFIG_HAS_SEPARATE_PREEMPT_RESCHED_BITS))]
        // SAFETY: increments this CPU's preemption count, which is what
        // `preempt_disable` does; `%gs` addresses this CPU's per-CPU area.
        unsafe {
            core::arch::asm!("inc qword ptr gs:[rip + {pc}]", pc = sym __preempt_count,
                options(nostack));
        }
        #[cfg(all(CONFIG_PREEMPT_COUNT, not(CONFIG_HAS_SEPARATE_PREEMPT_RESCHED_BITS)))]
        // SAFETY: as above, for the 32-bit count.
        unsafe {
            core::arch::asm!("inc dword ptr gs:[rip + {pc}]", pc = sym __preempt_count,
                options(nostack));
        }
        // `barrier()`: nothing below moves above the increment (the asm
        // already is one; this also covers `!CONFIG_PREEMPT_COUNT`).
        compiler_fence(Ordering::SeqCst);
        NoPreempt(PhantomData)
    }

    /// The offset of this CPU's per-CPU area (`this_cpu_off`, what
    /// `this_cpu_ptr()` adds to a per-CPU address), stable while `self`
    /// lives.
    #[inline(always)]
    pub(crate) fn this_cpu_offset(&self) -> usize {
        let off: usize;
        // SAFETY: reads this CPU's `this_cpu_off`, a per-CPU variable set at
        // boot and never changed.
        unsafe {
            core::arch::asm!("mov {off}, qword ptr gs:[rip + {var}]", off = out(reg) off,
                var = sym this_cpu_off, options(nostack, readonly, preserves_flags));
        }
        off
    }
}

impl Drop for NoPreempt {
    /// `preempt_enable_notrace()`.
    #[inline(always)]
    fn drop(&mut self) {
        compiler_fence(Ordering::SeqCst);
        #[cfg(all(CONFIG_PREEMPT_COUNT, CONFIG_HAS_SEPARATE_PREEMPT_RESCHED_BITS))]
        dec_and_resched!("dec qword ptr gs:[rip + {pc}]");
        #[cfg(all(CONFIG_PREEMPT_COUNT, not(CONFIG_HAS_SEPARATE_PREEMPT_RESCHED_BITS)))]
        dec_and_resched!("dec dword ptr gs:[rip + {pc}]");
    }
}
