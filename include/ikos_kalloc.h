/* SPDX-License-Identifier: GPL-2.0 */
/**
 * DOC: ikos_kalloc kernel API
 *
 * The functions ikos_kalloc.ko exports (EXPORT_SYMBOL_GPL) to other modules.
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

/**
 * struct ikos_kalloc_stats - A snapshot of the allocator's statistics.
 * @heap_size: Bytes in the vmalloc region.
 * @used_bytes: Usable bytes of live allocations.
 * @free_bytes: Payload of free large blocks, free object slots of existing
 *	slabs and objects held by per-CPU magazines.
 * @requested_bytes: Sum of the sizes requested by live allocations (a
 *	size-class object counts at its class size).
 * @usable_bytes: Sum of the usable sizes of live allocations.
 * @overhead_bytes: Metadata: the region's metadata area, block headers, slab
 *	descriptors, bitmaps and unusable slab tails.
 * @largest_free_block: Largest single free block (payload bytes).
 * @fragmentation_pct: External fragmentation of the large-block free lists,
 *	100 * (1 - largest free block / all free blocks).
 * @total_allocs: Successful allocations since load.
 * @total_frees: Successful frees since load.
 * @active_allocs: Live allocations.
 * @failed_allocs: Allocations that failed (out of memory, bad request).
 * @double_frees: Frees of something already free.
 * @invalid_frees: Frees of pointers that are not a live allocation start.
 * @corruptions: Damaged metadata found by an operation or a validation.
 * @slabs_total: Slabs in all caches.
 *
 * The keys of the same names in debugfs ``stats``
 * (Documentation/debugfs-ikos_kalloc.rst), which shows more. In a snapshot
 * @used_bytes + @free_bytes + @overhead_bytes == @heap_size and
 * @active_allocs == @total_allocs - @total_frees.
 */
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

/**
 * ikos_kalloc() - Allocate memory from the ikos_kalloc heap.
 * @size: Bytes to allocate.
 *
 * The memory is aligned to 8 bytes at least; its contents are undefined.
 *
 * Context: Any context kmalloc(GFP_ATOMIC) may be called from (DOC above).
 * Return: The allocation, or NULL when the heap is full, for @size 0 and
 * when the module is not loaded.
 */
void *ikos_kalloc(size_t size);

/**
 * ikos_kfree() - Free memory from ikos_kalloc*() or ikos_krealloc().
 * @ptr: The allocation, or NULL (a no-op).
 *
 * A pointer that is not the start of a live allocation (freed already,
 * inside an allocation, outside the heap) is reported in dmesg and counted
 * in &ikos_kalloc_stats.double_frees or .invalid_frees, and never followed.
 *
 * Context: Any context kmalloc(GFP_ATOMIC) may be called from.
 */
void ikos_kfree(void *ptr);

/**
 * ikos_kalloc_aligned() - Allocate aligned memory.
 * @size: Bytes to allocate.
 * @align: Alignment, a power of two up to the heap size (less than 8
 *	counts as 8).
 *
 * Context: Any context kmalloc(GFP_ATOMIC) may be called from.
 * Return: The allocation, or NULL on failure (as ikos_kalloc()) and for a
 * bad @align (counted in &ikos_kalloc_stats.failed_allocs).
 */
void *ikos_kalloc_aligned(size_t size, size_t align);

/**
 * ikos_kalloc_flags() - Allocate memory with KALLOC_* flags.
 * @size: Bytes to allocate.
 * @flags: %KALLOC_ZERO zeroes the usable size; %KALLOC_ATOMIC and
 *	%KALLOC_HIGH are accepted and change nothing; %KALLOC_DMA is refused.
 *
 * Context: Any context kmalloc(GFP_ATOMIC) may be called from.
 * Return: The allocation, or NULL on failure (as ikos_kalloc()), for
 * %KALLOC_DMA (a vmalloc heap is not DMA-capable; counted in
 * &ikos_kalloc_stats.failed_allocs) and for unknown flag bits (reported in
 * dmesg).
 */
void *ikos_kalloc_flags(size_t size, u32 flags);

/**
 * ikos_krealloc() - Resize an allocation, as krealloc() does.
 * @ptr: The allocation, or NULL to allocate.
 * @new_size: The new size; 0 frees @ptr.
 *
 * Resizes in place when it can; otherwise moves the contents to a new
 * allocation, with ikos_kalloc()'s alignment, not the one @ptr may have
 * had from ikos_kalloc_aligned(), and frees @ptr.
 *
 * Context: Any context kmalloc(GFP_ATOMIC) may be called from.
 * Return: The resized allocation; NULL after freeing @ptr for @new_size 0;
 * NULL on failure, @ptr untouched. A bad @ptr is reported in dmesg and
 * counted, like a bad free, and NULL returned; so is a @ptr whose debug
 * checks (red zone, poison, sanity) find damage when a move frees it, and
 * then the new allocation is freed again and @ptr stays allocated.
 */
void *ikos_krealloc(void *ptr, size_t new_size);

/**
 * ikos_kalloc_cache_create() - Create a custom object cache.
 * @name: 1 to 32 printable ASCII characters, no space (debugfs ``caches``
 *	can name only [A-Za-z0-9_.-]); unique among the caches.
 * @object_size: Object size in bytes, 1 to %KALLOC_MAX_SIZE.
 * @align: Object alignment, a power of two from 8 to 4096.
 *
 * Context: Any context kmalloc(GFP_ATOMIC) may be called from.
 * Return: The cache's handle, or NULL on error: name taken or invalid, bad
 * size or alignment, cache table full (each reported in dmesg; a NULL or
 * non-UTF-8 @name is not), module not loaded.
 */
struct ikos_kalloc_cache *ikos_kalloc_cache_create(const char *name,
						   size_t object_size,
						   size_t align);

/**
 * ikos_kalloc_cache_alloc() - Allocate an object from a custom cache.
 * @cache: A handle from ikos_kalloc_cache_create().
 *
 * Context: Any context kmalloc(GFP_ATOMIC) may be called from.
 * Return: The object, or NULL when the heap is full, for a stale or NULL
 * @cache and when the module is not loaded.
 */
void *ikos_kalloc_cache_alloc(struct ikos_kalloc_cache *cache);

/**
 * ikos_kalloc_cache_free() - Free an object of a custom cache.
 * @cache: The cache @ptr came from.
 * @ptr: The object.
 *
 * An object of another cache, or a bad @ptr, is reported in dmesg and
 * counted (as for ikos_kfree()), and not freed.
 *
 * Context: Any context kmalloc(GFP_ATOMIC) may be called from.
 */
void ikos_kalloc_cache_free(struct ikos_kalloc_cache *cache, void *ptr);

/**
 * ikos_kalloc_cache_destroy() - Destroy an empty custom cache.
 * @cache: A handle from ikos_kalloc_cache_create().
 *
 * Context: Any context kmalloc(GFP_ATOMIC) may be called from.
 * Return: 0; -EBUSY while objects are live; -ENOENT for a stale handle;
 * -EINVAL for a built-in size class; -EIO if its slabs are found damaged
 * (reported in dmesg); -ENODEV if the module is not available.
 */
int ikos_kalloc_cache_destroy(struct ikos_kalloc_cache *cache);

/**
 * ikos_kalloc_usable_size() - Usable size of an allocation.
 * @ptr: Any pointer.
 *
 * Context: Any context kmalloc(GFP_ATOMIC) may be called from.
 * Return: The usable size of the live allocation that starts at @ptr
 * (at least its requested size), 0 for anything else.
 */
size_t ikos_kalloc_usable_size(const void *ptr);

/**
 * ikos_kalloc_is_valid_pointer() - Whether a pointer starts an allocation.
 * @ptr: Any pointer.
 *
 * Context: Any context kmalloc(GFP_ATOMIC) may be called from.
 * Return: True only for the start of a live allocation.
 */
bool ikos_kalloc_is_valid_pointer(const void *ptr);

/**
 * ikos_kalloc_validate_heap() - Check every block, slab and cache.
 *
 * Exact: it visits every CPU's caches with an IPI (DOC above).
 *
 * Context: Any context kmalloc(GFP_ATOMIC) may be called from, not holding
 * a lock that other CPUs take with interrupts disabled. It answers
 * -EWOULDBLOCK outside task context, with interrupts disabled and during
 * CPU hotplug (never with the module parameter percpu=0).
 * Return: 0 if the heap is consistent; -EIO if validation found damage
 * (details in dmesg); -ENODEV if the heap is not available; -EWOULDBLOCK
 * in a context that cannot wait for other CPUs or during CPU hotplug.
 */
int ikos_kalloc_validate_heap(void);

/**
 * ikos_kalloc_get_stats() - Take a snapshot of the statistics.
 * @out: Filled on success.
 *
 * Context: As ikos_kalloc_validate_heap().
 * Return: 0; -EINVAL for a NULL @out; -ENODEV / -EWOULDBLOCK as
 * ikos_kalloc_validate_heap().
 */
int ikos_kalloc_get_stats(struct ikos_kalloc_stats *out);

#endif /* _IKOS_KALLOC_H */
