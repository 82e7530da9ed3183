// SPDX-License-Identifier: GPL-2.0
/*
 * The file_operations of ikos_kalloc's debugfs files, for
 * src/glue/debugfs_dir.rs, which implements the two callbacks below.
 *
 * They exist for .owner = THIS_MODULE: debugfs takes a reference on the
 * owner while a file is open, so the module cannot be unloaded under an
 * open file. The kernel crate's debugfs files (rust/kernel/debugfs/, Linux
 * 7.3) leave .owner NULL; then `exec 3< stats; rmmod ikos_kalloc; exec 3<&-`
 * calls the release of file_operations that went away with the module
 * (KASAN: vmalloc-out-of-bounds in full_proxy_release, then an Oops).
 */
#include <linux/debugfs.h>
#include <linux/err.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/seq_file.h>
#include "ikos_kalloc_debugfs.h"

/*
 * A file whose contents grow with the heap gets its whole buffer now, so
 * its show callback (a walk under the heap lock, with the per-CPU fast
 * path paused) runs once instead of once per doubling of the buffer.
 */
static int ikos_debugfs_seq_open(struct inode *inode, struct file *file)
{
	size_t size = ikos_debugfs_size_hint(inode->i_private);

	if (size)
		return single_open_size(file, ikos_debugfs_show, inode->i_private, size);
	return single_open(file, ikos_debugfs_show, inode->i_private);
}

static ssize_t ikos_debugfs_seq_write(struct file *file, const char __user *buf,
				      size_t count, loff_t *ppos)
{
	struct seq_file *m = file->private_data;

	return ikos_debugfs_write(m->private, buf, count);
}

static ssize_t ikos_debugfs_wo_write(struct file *file, const char __user *buf,
				     size_t count, loff_t *ppos)
{
	return ikos_debugfs_write(file->private_data, buf, count);
}

static const struct file_operations ikos_debugfs_ro_fops = {
	.owner = THIS_MODULE,
	.open = ikos_debugfs_seq_open,
	.read = seq_read,
	.llseek = seq_lseek,
	.release = single_release,
};

static const struct file_operations ikos_debugfs_rw_fops = {
	.owner = THIS_MODULE,
	.open = ikos_debugfs_seq_open,
	.read = seq_read,
	.write = ikos_debugfs_seq_write,
	.llseek = seq_lseek,
	.release = single_release,
};

static const struct file_operations ikos_debugfs_wo_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.write = ikos_debugfs_wo_write,
	.llseek = noop_llseek,
};

/* An ERR_PTR on failure, which the other two accept (debugfs convention). */
struct dentry *ikos_debugfs_create_dir(const char *name)
{
	return debugfs_create_dir(name, NULL);
}

/* A file of mode 0400, 0600 or 0200 whose callbacks get @data. */
struct dentry *ikos_debugfs_create_file(const char *name, bool read, bool write,
					struct dentry *dir, void *data)
{
	if (read && write)
		return debugfs_create_file(name, 0600, dir, data, &ikos_debugfs_rw_fops);
	if (read)
		return debugfs_create_file(name, 0400, dir, data, &ikos_debugfs_ro_fops);
	return debugfs_create_file(name, 0200, dir, data, &ikos_debugfs_wo_fops);
}

/* Removes @dir and its files; waits for reads and writes in progress. */
void ikos_debugfs_remove(struct dentry *dir)
{
	debugfs_remove(dir);
}
