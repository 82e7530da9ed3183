// SPDX-License-Identifier: GPL-2.0
/*
 * In-kernel benchmark: ikos_kalloc against kmalloc (SLUB) in the same run.
 *
 * One harness runs each workload's identical operation sequence (a fixed
 * seed PRNG) twice, through function pointers: once with ikos_kalloc /
 * ikos_kfree, once with kmalloc / kfree wrapped the same way, so only the
 * allocator differs. Each workload is timed with ktime_get_ns() in
 * interleaved rounds (see ikos_bench_run) and reported in ns per
 * operation. Called from src/glue/bench.rs (debugfs `bench`).
 * Under TCG emulation absolute times mean nothing: compare the ratio.
 */
#include <linux/compiler.h>
#include <linux/ktime.h>
#include <linux/minmax.h>
#include <linux/sched.h>
#include <linux/string.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <ikos_kalloc.h>
#include "ikos_kalloc_bench.h"

/*
 * The timed code (the workload loops and the kmalloc wrappers, under
 * 4 KiB) lives in its own page-aligned section, so that its placement does
 * not depend on the size of the rest of the module's text. Under QEMU's
 * TCG placement matters: in one build, where the Rust code before it had
 * shrunk, kmalloc's batch64 measured 93 to 96 ns against 70 to 72 in
 * every other build (Documentation/performance-log.md, "In-kernel
 * benchmark"); ikos_kalloc's entry points have their own page for the
 * same reason (src/glue/export.rs).
 */
#define BENCH_TEXT __section(".text.ikos_bench")
asm(".pushsection .text.ikos_bench,\"ax\",@progbits\n\t.p2align 12\n\t.popsection");

struct bench_alloc {
	void *(*alloc)(size_t size);
	void (*free)(void *p);
};

static noinline BENCH_TEXT void *slub_alloc(size_t size)
{
	return kmalloc(size, GFP_KERNEL);
}

static noinline BENCH_TEXT void slub_free(void *p)
{
	kfree(p);
}

static const struct bench_alloc ikos = { ikos_kalloc, ikos_kfree };
static const struct bench_alloc slub = { slub_alloc, slub_free };

static u64 rng_next(u64 *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

/* Touch the first byte, as real users do, so neither side is flattered. */
static inline bool use(void *p)
{
	if (!p)
		return false;
	WRITE_ONCE(*(u8 *)p, 1);
	return true;
}

#define BATCH 1000
#define SLOTS 1024

/* (1) 64-byte alloc+free pairs. */
static BENCH_TEXT u64 w_pair64(const struct bench_alloc *a, u64 ops, void **slots, u64 *fail)
{
	u64 i;

	for (i = 0; i < ops; i++) {
		void *p = a->alloc(64);

		*fail += !use(p);
		a->free(p);
	}
	return ops * 2;
}

/* (2) 1,000 64-byte allocations, then 1,000 frees, repeated. */
static BENCH_TEXT u64 w_batch64(const struct bench_alloc *a, u64 ops, void **slots, u64 *fail)
{
	u64 r, rounds = max_t(u64, ops / BATCH, 1);
	int i;

	for (r = 0; r < rounds; r++) {
		for (i = 0; i < BATCH; i++) {
			slots[i] = a->alloc(64);
			*fail += !use(slots[i]);
		}
		for (i = 0; i < BATCH; i++)
			a->free(slots[i]);
	}
	return rounds * BATCH * 2;
}

/*
 * (3) Random sizes 8..4096: a ring of live objects, each op frees the
 * oldest and allocates a new one.
 */
static BENCH_TEXT u64 w_random(const struct bench_alloc *a, u64 ops, void **slots, u64 *fail)
{
	u64 seed = 0x1c05ca1100000003ULL, i;

	memset(slots, 0, SLOTS * sizeof(*slots));
	for (i = 0; i < ops; i++) {
		size_t size = 8 + rng_next(&seed) % (4096 - 8 + 1);
		void **s = &slots[i % SLOTS];

		a->free(*s);
		*s = a->alloc(size);
		*fail += !use(*s);
	}
	for (i = 0; i < SLOTS; i++)
		a->free(slots[i]);
	return ops * 2;
}

/* (4) 16 KiB alloc+free pairs (beyond SLUB's caches: the page allocator). */
static BENCH_TEXT u64 w_pair16k(const struct bench_alloc *a, u64 ops, void **slots, u64 *fail)
{
	u64 i;

	for (i = 0; i < ops; i++) {
		void *p = a->alloc(16384);

		*fail += !use(p);
		a->free(p);
	}
	return ops * 2;
}

/*
 * (5) Fragmentation-heavy: random slots toggle between free and an
 * allocation of a random size, 80% small (8..512), 20% large (4 KiB..64 KiB),
 * so lifetimes are random and small and large interleave. @large_in_5 of 5
 * allocations are large; (6) and (7) are its two halves on their own, to
 * show which one a difference comes from: the same sequence of small sizes
 * on the same 1,024 slots, and large sizes only on 1/5 of the slots (about
 * as many live large bytes as in (5)).
 */
static __always_inline u64 mix(const struct bench_alloc *a, u64 ops, void **slots, u64 *fail,
			       unsigned int large_in_5, unsigned int nslots)
{
	u64 seed = 0x1c05ca1100000005ULL, i, n = 0;

	memset(slots, 0, nslots * sizeof(*slots));
	for (i = 0; i < ops; i++) {
		u64 r = rng_next(&seed);
		void **s = &slots[r % nslots];

		if (*s) {
			a->free(*s);
			*s = NULL;
		} else {
			size_t size = (r >> 32) % 5 < large_in_5 ? 4096 + (r >> 40) % (61441) :
								   8 + (r >> 40) % 505;
			*s = a->alloc(size);
			*fail += !use(*s);
		}
		n++;
	}
	for (i = 0; i < nslots; i++)
		a->free(slots[i]);
	return n;
}

static BENCH_TEXT u64 w_mixed(const struct bench_alloc *a, u64 ops, void **slots, u64 *fail)
{
	return mix(a, ops, slots, fail, 1, SLOTS);
}

static BENCH_TEXT u64 w_mixed_small(const struct bench_alloc *a, u64 ops, void **slots,
				    u64 *fail)
{
	return mix(a, ops, slots, fail, 0, SLOTS);
}

static BENCH_TEXT u64 w_mixed_large(const struct bench_alloc *a, u64 ops, void **slots,
				    u64 *fail)
{
	return mix(a, ops, slots, fail, 5, SLOTS / 5);
}

static const struct {
	const char *name;
	u64 (*run)(const struct bench_alloc *a, u64 ops, void **slots, u64 *fail);
} workloads[IKOS_BENCH_WORKLOADS] = {
	{ "pair64", w_pair64 },
	{ "batch64", w_batch64 },
	{ "random8-4096", w_random },
	{ "pair16k", w_pair16k },
	{ "mixed-frag", w_mixed },
	{ "mixed-small", w_mixed_small },
	{ "mixed-large", w_mixed_large },
};

const char *ikos_bench_name(unsigned int i)
{
	return i < IKOS_BENCH_WORKLOADS ? workloads[i].name : NULL;
}

/*
 * Each workload runs in ROUNDS rounds of ops / ROUNDS operations, ikos and
 * kmalloc interleaved (who goes first alternates), and the fastest round of
 * each is reported, scaled to the whole run. Under emulation on a shared
 * machine, host load comes in bursts that only ever add time; a burst now
 * costs one round of one side, not the whole figure of one side.
 */
#define ROUNDS 8

static u64 time_round(const struct bench_alloc *a, unsigned int w, u64 ops, void **slots,
		      u64 *fail, u64 *n)
{
	u64 t0 = ktime_get_ns();

	*n += workloads[w].run(a, ops, slots, fail);
	return ktime_get_ns() - t0;
}

int ikos_bench_run(u64 ops, struct ikos_bench_result *res)
{
	void **slots = vmalloc(SLOTS * sizeof(*slots));
	u64 per_round = max_t(u64, ops / ROUNDS, 1);
	unsigned int i, r;

	if (!slots)
		return -ENOMEM;
	for (i = 0; i < IKOS_BENCH_WORKLOADS; i++) {
		u64 ikos_best = U64_MAX, slub_best = U64_MAX, n = 0, m = 0;

		memset(&res[i], 0, sizeof(res[i]));
		for (r = 0; r < ROUNDS; r++) {
			/* Alternate who goes first so neither always gets a warm cache. */
			if ((r + i) & 1) {
				slub_best = min(slub_best, time_round(&slub, i, per_round, slots,
								      &res[i].slub_failed, &m));
				ikos_best = min(ikos_best, time_round(&ikos, i, per_round, slots,
								      &res[i].ikos_failed, &n));
			} else {
				ikos_best = min(ikos_best, time_round(&ikos, i, per_round, slots,
								      &res[i].ikos_failed, &n));
				slub_best = min(slub_best, time_round(&slub, i, per_round, slots,
								      &res[i].slub_failed, &m));
			}
			cond_resched();
		}
		res[i].ops = n;
		res[i].ikos_ns = ikos_best * ROUNDS;
		res[i].slub_ns = slub_best * ROUNDS;
	}
	vfree(slots);
	return 0;
}
