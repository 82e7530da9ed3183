// SPDX-License-Identifier: GPL-2.0

//! Preemption off and the current CPU number, inline (x86-64).
//!
//! The per-CPU fast path (`percpu.rs`) needs what C spells
//! `preempt_disable_notrace()`, `raw_smp_processor_id()` and
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
//!   reaches zero a reschedule is due and `preempt_schedule_notrace()` runs,
//!   as in `preempt_enable_notrace()`.
//! * `cpu_number` (`arch/x86/include/asm/smp.h`): `raw_smp_processor_id()`.
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
    /// `DECLARE_PER_CPU_CACHE_HOT(int, cpu_number)`; only ever addressed
    /// through `%gs`, never read directly.
    static cpu_number: u32;
    /// `DECLARE_PER_CPU_CACHE_HOT(unsigned long, __preempt_count)`; as above.
    #[cfg(CONFIG_PREEMPT_COUNT)]
    static __preempt_count: u64;
    #[cfg(CONFIG_PREEMPTION)]
    fn preempt_schedule_notrace();
}

/// Preemption is disabled while this lives, so the task stays on the CPU
/// [`NoPreempt::cpu`] names. Interrupts stay enabled: an interrupt handler
/// on this CPU may run in between (see the busy flag in `percpu.rs`).
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

    /// The CPU this runs on (`raw_smp_processor_id()`), stable while `self`
    /// lives.
    #[inline(always)]
    pub(crate) fn cpu(&self) -> usize {
        let cpu: u32;
        // SAFETY: reads this CPU's `cpu_number`, a per-CPU variable set at
        // boot and never changed.
        unsafe {
            core::arch::asm!("mov {cpu:e}, dword ptr gs:[rip + {var}]", cpu = out(reg) cpu,
                var = sym cpu_number, options(nostack, readonly, preserves_flags));
        }
        cpu as usize
    }
}

impl Drop for NoPreempt {
    /// `preempt_enable_notrace()`.
    #[inline(always)]
    fn drop(&mut self) {
        compiler_fence(Ordering::SeqCst);
        #[cfg(CONFIG_PREEMPT_COUNT)]
        {
            let zero: u8;
            #[cfg(CONFIG_HAS_SEPARATE_PREEMPT_RESCHED_BITS)]
            // SAFETY: undoes the increment of `new` on the same CPU (the
            // task could not migrate while the count was raised).
            unsafe {
                core::arch::asm!("dec qword ptr gs:[rip + {pc}]", "sete {z}",
                    pc = sym __preempt_count, z = out(reg_byte) zero, options(nostack));
            }
            #[cfg(not(CONFIG_HAS_SEPARATE_PREEMPT_RESCHED_BITS))]
            // SAFETY: as above, for the 32-bit count.
            unsafe {
                core::arch::asm!("dec dword ptr gs:[rip + {pc}]", "sete {z}",
                    pc = sym __preempt_count, z = out(reg_byte) zero, options(nostack));
            }
            #[cfg(CONFIG_PREEMPTION)]
            if zero != 0 {
                // SAFETY: the count just dropped to zero with a reschedule
                // pending; this is the call `preempt_enable_notrace` makes.
                unsafe { preempt_schedule_notrace() };
            }
            #[cfg(not(CONFIG_PREEMPTION))]
            let _ = zero;
        }
    }
}
