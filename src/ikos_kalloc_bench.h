/* SPDX-License-Identifier: GPL-2.0 */
/* Interface between src/ikos_kalloc_bench.c and src/glue/bench.rs. */
#ifndef _IKOS_KALLOC_BENCH_H
#define _IKOS_KALLOC_BENCH_H

#include <linux/types.h>

#define IKOS_BENCH_WORKLOADS 7

struct ikos_bench_result {
	u64 ops;		/* allocations + frees performed */
	u64 ikos_ns;		/* fastest round with ikos_kalloc x rounds */
	u64 slub_ns;		/* fastest round with kmalloc x rounds */
	u64 ikos_failed;	/* allocations that returned NULL */
	u64 slub_failed;
};

/* Name of workload @i, or NULL. */
const char *ikos_bench_name(unsigned int i);
/*
 * Runs every workload with @ops operations on both allocators; process
 * context only (may sleep between workloads). 0 or -ENOMEM.
 */
int ikos_bench_run(u64 ops, struct ikos_bench_result *res);

#endif
