/* SPDX-License-Identifier: GPL-2.0 */
/* Interface between src/ikos_kalloc_param.c and src/ikos_kalloc.rs. */
#ifndef _IKOS_KALLOC_PARAM_H
#define _IKOS_KALLOC_PARAM_H

/* The `debug` module parameter's string (never NULL). */
const char *ikos_kalloc_debug_param(void);

#endif
