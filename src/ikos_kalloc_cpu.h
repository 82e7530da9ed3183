/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Interface between src/ikos_kalloc_cpu.c and the per-CPU glue
 * (src/glue/percpu.rs, src/glue/percpu_var.rs), which declares the same
 * functions in its extern "C" blocks.
 */
#ifndef _IKOS_KALLOC_CPU_H
#define _IKOS_KALLOC_CPU_H

#include <linux/compiler_types.h>
#include <linux/types.h>

bool ikos_kalloc_can_sync_cpus(void);
bool ikos_kalloc_preemptible(void);
void __percpu *ikos_kalloc_percpu_alloc(size_t size, size_t align);
void ikos_kalloc_percpu_free(void __percpu *p);
void *ikos_kalloc_percpu_ptr(void __percpu *p, unsigned int cpu);

#endif
