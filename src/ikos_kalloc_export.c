// SPDX-License-Identifier: GPL-2.0
/*
 * Exports ikos_kalloc's C API (implemented in Rust, src/glue/export.rs) to
 * other modules: Rust code cannot emit EXPORT_SYMBOL_GPL entries itself.
 */
#include <linux/export.h>
#include <ikos_kalloc.h>

EXPORT_SYMBOL_GPL(ikos_kalloc);
EXPORT_SYMBOL_GPL(ikos_kfree);
EXPORT_SYMBOL_GPL(ikos_kalloc_aligned);
EXPORT_SYMBOL_GPL(ikos_kalloc_flags);
EXPORT_SYMBOL_GPL(ikos_krealloc);
EXPORT_SYMBOL_GPL(ikos_kalloc_cache_create);
EXPORT_SYMBOL_GPL(ikos_kalloc_cache_alloc);
EXPORT_SYMBOL_GPL(ikos_kalloc_cache_free);
EXPORT_SYMBOL_GPL(ikos_kalloc_cache_destroy);
EXPORT_SYMBOL_GPL(ikos_kalloc_usable_size);
EXPORT_SYMBOL_GPL(ikos_kalloc_is_valid_pointer);
EXPORT_SYMBOL_GPL(ikos_kalloc_validate_heap);
EXPORT_SYMBOL_GPL(ikos_kalloc_get_stats);
