/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Interface between src/ikos_kalloc_debugfs.c and src/glue/debugfs_dir.rs,
 * which declares and defines the same functions in its extern "C" blocks.
 */
#ifndef _IKOS_KALLOC_DEBUGFS_H
#define _IKOS_KALLOC_DEBUGFS_H

#include <linux/compiler_types.h>
#include <linux/types.h>

struct dentry;
struct seq_file;

/* Implemented in Rust; @data is the file's inode private data. */
int ikos_debugfs_show(struct seq_file *m, void *unused);
ssize_t ikos_debugfs_write(void *data, const char __user *buf, size_t count);
size_t ikos_debugfs_size_hint(void *data);

/* Implemented in C, called from Rust. */
struct dentry *ikos_debugfs_create_dir(const char *name);
struct dentry *ikos_debugfs_create_file(const char *name, bool read, bool write,
					struct dentry *dir, void *data);
void ikos_debugfs_remove(struct dentry *dir);

#endif
