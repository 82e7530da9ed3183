/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ikos_kalloc: the kernel API exported by ikos_kalloc.ko (EXPORT_SYMBOL_GPL).
 *
 * Every function may be called from any context kmalloc(GFP_ATOMIC) may be
 * called from, including atomic context, interrupt handlers and with
 * interrupts disabled: the allocator never sleeps; its per-CPU fast path
 * runs with preemption disabled (an interrupt that lands in it uses the
 * locked heap), the rest under an IRQ-safe spinlock_t. As for kmalloc, that
 * excludes hard-irq-only contexts such as HRTIMER_MODE_HARD callbacks,
 * where PREEMPT_RT cannot take a spinlock_t (lockdep reports an invalid
 * wait context there on every kernel). When the heap is full, an
 * allocation by a preemptible caller takes back every CPU's cached objects
 * (an IPI to each) and retries; any other caller, e.g. one holding a
 * spinlock, only its own CPU's.
 *
 * ikos_kalloc_get_stats() and ikos_kalloc_validate_heap() are exact
 * because they visit every CPU's caches with an IPI. Where that is not
 * allowed, that is outside task context (hard or soft interrupt handlers,
 * timer callbacks, tasklets) or with interrupts disabled, and while a CPU
 * is being brought online or offline, they return -EWOULDBLOCK (-EAGAIN);
 * with the module parameter percpu=0 there are no caches to visit and they
 * never refuse. As with on_each_cpu(), they must not be called while
 * holding a lock that other CPUs take with interrupts disabled.
 *
 * Memory comes from the module's vmalloc heap: it is virtually contiguous,
 * not physically contiguous, and not DMA-capable.
 * Before the module has finished loading, and after it began unloading,
 * allocations return NULL.
 */
#ifndef _IKOS_KALLOC_H
#define _IKOS_KALLOC_H

#include <linux/types.h>

/* Allocation flags (values of the IKOS design document). */
#define KALLOC_ATOMIC	0x01	/* must not sleep: always true, accepted */
#define KALLOC_ZERO	0x02	/* zero the usable size */
#define KALLOC_DMA	0x04	/* refused: a vmalloc heap is not DMA-capable */
#define KALLOC_HIGH	0x08	/* accepted, no effect: no highmem on x86_64 */

/* Size classes and limits. */
#define KALLOC_NUM_CACHES	10
#define KALLOC_MIN_SIZE		8
#define KALLOC_MAX_SIZE		4096

/* Opaque handle of a custom object cache. */
struct ikos_kalloc_cache;

/* A snapshot of the allocator's statistics (see the debugfs ABI document). */
struct ikos_kalloc_stats {
	u64 heap_size;
	u64 used_bytes;
	u64 free_bytes;
	u64 requested_bytes;
	u64 usable_bytes;
	u64 overhead_bytes;
	u64 largest_free_block;
	u64 fragmentation_pct;
	u64 total_allocs;
	u64 total_frees;
	u64 active_allocs;
	u64 failed_allocs;
	u64 double_frees;
	u64 invalid_frees;
	u64 corruptions;
	u64 slabs_total;
};

/* Allocate @size bytes (8-byte aligned at least); NULL on failure or size 0. */
void *ikos_kalloc(size_t size);
/* Free memory from ikos_kalloc*(); NULL is a no-op; bad pointers are
 * reported in dmesg and counted, never followed. */
void ikos_kfree(void *ptr);
/* Allocate @size bytes aligned to @align (a power of two, 8 .. heap size). */
void *ikos_kalloc_aligned(size_t size, size_t align);
/* Allocate @size bytes with KALLOC_* @flags; NULL for KALLOC_DMA and for
 * unknown flag bits (reported in dmesg). */
void *ikos_kalloc_flags(size_t size, u32 flags);
/* Resize @ptr to @new_size bytes, as krealloc() does: in place when it
 * can, else into a new allocation (with ikos_kalloc()'s alignment, not the
 * one @ptr may have had from ikos_kalloc_aligned()) that receives the old
 * contents, after which @ptr is freed. NULL @ptr allocates; @new_size 0
 * frees @ptr and returns NULL. On failure returns NULL and @ptr is
 * untouched; a bad @ptr is reported in dmesg and counted, like a bad free. */
void *ikos_krealloc(void *ptr, size_t new_size);

/* Create a cache of @object_size-byte objects (1 .. 4096) aligned to
 * @align (a power of two, 8 .. 4096). @name: 1 to 32 printable ASCII
 * characters, no space (debugfs `caches` can name only [A-Za-z0-9_.-]).
 * NULL on error (name taken or invalid, bad size or alignment, table full,
 * module not loaded). */
struct ikos_kalloc_cache *ikos_kalloc_cache_create(const char *name,
						    size_t object_size,
						    size_t align);
void *ikos_kalloc_cache_alloc(struct ikos_kalloc_cache *cache);
void ikos_kalloc_cache_free(struct ikos_kalloc_cache *cache, void *ptr);
/* 0, -EBUSY while objects are live, -ENOENT for a stale handle, -EINVAL
 * for a built-in size class, -EIO if its slabs are found damaged (dmesg),
 * -ENODEV if the module is not available. */
int ikos_kalloc_cache_destroy(struct ikos_kalloc_cache *cache);

/* Usable size of a live allocation, 0 for anything else. */
size_t ikos_kalloc_usable_size(const void *ptr);
/* True only for the start of a live allocation. */
bool ikos_kalloc_is_valid_pointer(const void *ptr);
/* 0 if the heap is consistent, -EIO if validation found damage (details in
 * dmesg), -ENODEV if the heap is not available, -EWOULDBLOCK in a context
 * that cannot wait for other CPUs or during CPU hotplug (see the top of
 * this file). */
int ikos_kalloc_validate_heap(void);
/* Fill @out; 0, or -ENODEV / -EINVAL / -EWOULDBLOCK (as above). */
int ikos_kalloc_get_stats(struct ikos_kalloc_stats *out);

#endif /* _IKOS_KALLOC_H */
