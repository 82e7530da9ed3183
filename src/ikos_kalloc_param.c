// SPDX-License-Identifier: GPL-2.0
/*
 * The string module parameter `debug` (letters of ZPUF, like slub_debug):
 * the Rust module! macro only knows integer and bool parameters. Module
 * init (src/ikos_kalloc.rs) reads it through ikos_kalloc_debug_param() and
 * rejects bad letters with EINVAL.
 */
#include <linux/moduleparam.h>
#include "ikos_kalloc_param.h"

static char ikos_kalloc_debug[16];
module_param_string(debug, ikos_kalloc_debug, sizeof(ikos_kalloc_debug), 0444);
MODULE_PARM_DESC(debug,
		 "Debug flags for every cache and the large blocks: Z red zones, P poisoning, U owner tracking, F sanity checks (default none)");

const char *ikos_kalloc_debug_param(void)
{
	return ikos_kalloc_debug;
}
