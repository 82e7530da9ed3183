// SPDX-License-Identifier: GPL-2.0
/*
 * C macros the per-CPU glue needs, as functions: the context query of
 * src/glue/percpu.rs (irqs_disabled(), in_task()) and the per-CPU
 * allocation of src/glue/percpu_var.rs (alloc_percpu(), per_cpu_ptr(),
 * cpu_possible()).
 */
#include <linux/cpumask.h>
#include <linux/irqflags.h>
#include <linux/percpu.h>
#include <linux/preempt.h>
#include "ikos_kalloc_cpu.h"

/*
 * Whether the caller may wait for other CPUs with smp_call_function_single()
 * (interrupts enabled, task context), as the exact reports need.
 */
bool ikos_kalloc_can_sync_cpus(void)
{
	return !irqs_disabled() && in_task();
}

/*
 * Whether the caller is preemptible (task context, interrupts and
 * preemption enabled, so it holds no spinlock): only then may an
 * allocation that ran out of memory wait for every CPU to give back its
 * caches. A caller holding a spinlock that another CPU is spinning on with
 * interrupts disabled would wait for an IPI that CPU never takes.
 */
bool ikos_kalloc_preemptible(void)
{
	return preemptible();
}

/* alloc_percpu() for src/glue/percpu_var.rs: zeroed, GFP_KERNEL. */
void __percpu *ikos_kalloc_percpu_alloc(size_t size, size_t align)
{
	return __alloc_percpu(size, align);
}

void ikos_kalloc_percpu_free(void __percpu *p)
{
	free_percpu(p);
}

/* per_cpu_ptr(), or NULL for a CPU that is not possible (no instance). */
void *ikos_kalloc_percpu_ptr(void __percpu *p, unsigned int cpu)
{
	if (cpu >= nr_cpu_ids || !cpu_possible(cpu))
		return NULL;
	return per_cpu_ptr(p, cpu);
}
