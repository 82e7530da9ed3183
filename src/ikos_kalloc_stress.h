/* SPDX-License-Identifier: GPL-2.0 */
/* Interface between src/ikos_kalloc_stress.c and src/glue/stress.rs. */
#ifndef _IKOS_KALLOC_STRESS_H
#define _IKOS_KALLOC_STRESS_H

#include <linux/types.h>

struct ikos_stress_result {
	u32 threads;		/* kthreads run, one per online CPU */
	u32 seconds;		/* requested run time */
	u64 ops;		/* allocations + frees through the C API */
	u64 allocs;
	u64 frees;
	u64 cross_cpu_frees;	/* frees of objects allocated on another CPU */
	u64 irq_ops;		/* allocs + frees from the softirq timers */
	u64 reallocs;		/* successful ikos_krealloc() calls (threads and timers) */
	u64 reallocs_moved_down; /* of those, moved down into free space before the block */
	u64 alloc_failures;	/* NULL returns (heap full): not an error */
	u64 verify_failures;	/* an object's pattern changed while live */
	u64 free_errors;	/* invalid_frees + double_frees + corruptions delta */
	u64 leaked;		/* allocs - frees: objects the run did not free */
};

/*
 * Runs one kthread per online CPU for @seconds, hammering the C API with
 * objects handed between CPUs through a shared ring; process context only.
 * 0, -ENOMEM, -ENODEV (no heap) or the error of kthread creation.
 */
int ikos_stress_run(unsigned int seconds, struct ikos_stress_result *res);

#endif
