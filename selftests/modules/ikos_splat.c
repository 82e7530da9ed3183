// SPDX-License-Identifier: GPL-2.0
/*
 * ikos_splat: a test-only module that plants one kernel warning when loaded.
 *
 * `make check` boots the VM once with it (run-vm.sh --plant warning) and
 * requires that run to fail: proof that the splat scanner really gates the
 * test verdict.
 */
#include <linux/bug.h>
#include <linux/module.h>

static int __init ikos_splat_init(void)
{
	WARN(1, "ikos_splat: planted warning (expected by the scanner test)\n");
	return 0;
}

static void __exit ikos_splat_exit(void)
{
}

module_init(ikos_splat_init);
module_exit(ikos_splat_exit);
MODULE_DESCRIPTION("Plants a kernel warning to test the VM log scanner");
MODULE_LICENSE("GPL");
