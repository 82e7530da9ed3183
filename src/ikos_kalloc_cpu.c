// SPDX-License-Identifier: GPL-2.0
/*
 * Context query for src/glue/percpu.rs: irqs_disabled() and in_task() are
 * macros, which Rust cannot call.
 */
#include <linux/irqflags.h>
#include <linux/preempt.h>

bool ikos_kalloc_can_sync_cpus(void);

/*
 * Whether the caller may wait for other CPUs with smp_call_function_single()
 * (interrupts enabled, task context), as the exact reports need.
 */
bool ikos_kalloc_can_sync_cpus(void)
{
	return !irqs_disabled() && in_task();
}
