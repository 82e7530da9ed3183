// SPDX-License-Identifier: GPL-2.0
/*
 * In-kernel stress test of the ikos_kalloc C API (debugfs `stress`).
 *
 * One kthread per online CPU, bound to it, allocates objects of random
 * sizes (kmalloc-style and from a shared custom cache), fills each with a
 * pattern and parks it in a ring shared by all threads. Taking a slot
 * frees whatever object was parked there, after checking its pattern, so
 * most frees happen on another CPU than the allocation (counted as
 * cross_cpu_frees). Frees of local short-lived objects are mixed in. At the
 * end the ring is drained; every object allocated must have been freed,
 * and the allocator's statistics before and after show any refused free or
 * corruption.
 *
 * Each worker also runs a pinned softirq timer on its CPU that allocates,
 * fills, checks and frees a 64-byte and (every 8th tick) a 16 KiB object.
 * Every 64th step a thread also grows a large block whose predecessor it
 * has just freed, so that ikos_krealloc() moves it down: the payload is
 * moved without the heap lock while the other threads and the timers go
 * on (counted as reallocs_moved_down).
 * Softirqs run on the way out of an interrupt, so they land in the middle
 * of the worker's own allocations and frees, where the CPU's per-CPU cache
 * is in use and the timer's operations must fall back to the locked heap
 * (src/glue/percpu.rs). Not a hard-irq timer: the heap lock is a
 * spinlock_t, which hard-irq-only contexts must not take (PREEMPT_RT;
 * lockdep reports an invalid wait context on any kernel), as for kmalloc.
 * Called from src/glue/stress.rs.
 */
#include <linux/cpumask.h>
#include <linux/delay.h>
#include <linux/hrtimer.h>
#include <linux/kthread.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <ikos_kalloc.h>
#include "ikos_kalloc_stress.h"

#define RING_SLOTS 256
/*
 * Larger than the per-CPU large-block cache parks (64 KiB), so a free
 * reaches the heap at once and the block before a resize is free.
 */
#define MOVE_DOWN_SIZE (96 * 1024)
/* Period of each worker's interrupt-context allocations. */
#define IRQ_PERIOD_NS (200 * NSEC_PER_USEC)

struct ring_slot {
	void *p;
	size_t size;
	u8 pattern;
	bool cached;
	int cpu;
};

struct stress {
	spinlock_t lock;		/* protects ring */
	struct ring_slot ring[RING_SLOTS];
	struct ikos_kalloc_cache *cache;	/* may be NULL */
	size_t cache_size;
};

struct worker {
	struct stress *s;
	struct task_struct *task;
	int cpu;
	u64 seed;
	u64 allocs, frees, cross, reallocs, moved_down, alloc_fail, verify_fail;
	struct hrtimer timer;
	/* Updated by the timer, on the worker's CPU, in softirq context. */
	u64 irq_ops, irq_reallocs, irq_moved_down, irq_alloc_fail, irq_verify_fail, irq_ticks;
};

static u64 rng_next(u64 *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

/* 80% small (8..4096), 20% large (4097..32768). */
static size_t pick_size(u64 r)
{
	if ((r >> 8) % 5)
		return 8 + (r >> 16) % 4089;
	return 4097 + (r >> 16) % 28672;
}

static void release(struct stress *s, struct worker *w, struct ring_slot *o)
{
	if (!o->p)
		return;
	if (memchr_inv(o->p, o->pattern, o->size))
		w->verify_fail++;
	if (o->cached)
		ikos_kalloc_cache_free(s->cache, o->p);
	else
		ikos_kfree(o->p);
	w->frees++;
	if (o->cpu != w->cpu)
		w->cross++;
	o->p = NULL;
}

/* One allocate-fill-check-free in softirq context. */
static void irq_pair(struct worker *w, size_t size, u8 pattern)
{
	u8 *p = ikos_kalloc(size);

	if (!p) {
		w->irq_alloc_fail++;
		return;
	}
	memset(p, pattern, size);
	if (memchr_inv(p, pattern, size))
		w->irq_verify_fail++;
	ikos_kfree(p);
	w->irq_ops += 2;
}

/* What resize() did. */
enum resized { RESIZE_FAILED, RESIZED, RESIZED_MOVED_DOWN };

/*
 * Resizes the live object @o (filled with its pattern) to @size with
 * ikos_krealloc(): the bytes both sizes hold must keep the pattern, the
 * rest is filled. On failure @o is untouched. RESIZED_MOVED_DOWN when the
 * new block starts below the old one and overlaps it: moved down into
 * free space before it, the payload moved without the heap lock.
 */
static enum resized resize(struct ring_slot *o, size_t size, u64 *alloc_fail, u64 *verify_fail)
{
	u8 *old = o->p;
	u8 *q = ikos_krealloc(old, size);
	bool down = q && q < old && q + size > old;

	if (!q) {
		(*alloc_fail)++;
		return RESIZE_FAILED;
	}
	if (memchr_inv(q, o->pattern, min(size, o->size)))
		(*verify_fail)++;
	memset(q, o->pattern, size);
	o->p = q;
	o->size = size;
	return down ? RESIZED_MOVED_DOWN : RESIZED;
}

/* Counts what resize() did in @reallocs and @moved_down. */
static void count_resize(enum resized r, u64 *reallocs, u64 *moved_down)
{
	if (r != RESIZE_FAILED)
		(*reallocs)++;
	if (r == RESIZED_MOVED_DOWN)
		(*moved_down)++;
}

/* One allocate-fill-resize-check-free in softirq context. */
static void irq_resize(struct worker *w, size_t size, size_t new_size, u8 pattern)
{
	struct ring_slot o = { .size = size, .pattern = pattern };

	o.p = ikos_kalloc(size);
	if (!o.p) {
		w->irq_alloc_fail++;
		return;
	}
	memset(o.p, pattern, size);
	count_resize(resize(&o, new_size, &w->irq_alloc_fail, &w->irq_verify_fail),
		     &w->irq_reallocs, &w->irq_moved_down);
	if (memchr_inv(o.p, pattern, o.size))
		w->irq_verify_fail++;
	ikos_kfree(o.p);
	w->irq_ops += 2;
}

/*
 * Three large blocks a, b, c, one after the other unless another CPU
 * allocated in between; a freed, b grown by half: with c still live it
 * cannot grow in place, so ikos_krealloc() moves it down into a's space
 * (unless another CPU took that first).
 */
static void grow_down(struct stress *s, struct worker *w, u8 pattern)
{
	struct ring_slot a = { .size = MOVE_DOWN_SIZE, .pattern = pattern, .cpu = w->cpu };
	struct ring_slot b = a, c = a;

	a.p = ikos_kalloc(MOVE_DOWN_SIZE);
	b.p = ikos_kalloc(MOVE_DOWN_SIZE);
	c.p = ikos_kalloc(MOVE_DOWN_SIZE);
	if (!a.p || !b.p || !c.p)
		w->alloc_fail++;
	w->allocs += !!a.p + !!b.p + !!c.p;
	if (a.p)
		memset(a.p, pattern, MOVE_DOWN_SIZE);
	if (b.p)
		memset(b.p, pattern, MOVE_DOWN_SIZE);
	if (c.p)
		memset(c.p, pattern, MOVE_DOWN_SIZE);
	if (a.p && b.p && c.p) {
		release(s, w, &a);
		count_resize(resize(&b, MOVE_DOWN_SIZE + MOVE_DOWN_SIZE / 2, &w->alloc_fail,
				    &w->verify_fail),
			     &w->reallocs, &w->moved_down);
	}
	release(s, w, &a);
	release(s, w, &b);
	release(s, w, &c);
}

static enum hrtimer_restart irq_tick(struct hrtimer *t)
{
	struct worker *w = container_of(t, struct worker, timer);

	w->irq_ticks++;
	irq_pair(w, 64, (u8)w->irq_ticks);
	if (w->irq_ticks % 8 == 0)
		irq_pair(w, 16384, (u8)~w->irq_ticks);
	if (w->irq_ticks % 8 == 4)
		irq_resize(w, 100, 6000, (u8)w->irq_ticks);
	hrtimer_forward_now(t, ns_to_ktime(IRQ_PERIOD_NS));
	return HRTIMER_RESTART;
}

static int stress_thread(void *data)
{
	struct worker *w = data;
	struct stress *s = w->s;

	/* Pinned: started here, on the worker's CPU. */
	hrtimer_start(&w->timer, ns_to_ktime(IRQ_PERIOD_NS), HRTIMER_MODE_REL_PINNED_SOFT);
	while (!kthread_should_stop()) {
		u64 r = rng_next(&w->seed);
		struct ring_slot n = { .cpu = w->cpu, .pattern = (u8)(r >> 40) };
		struct ring_slot old;
		unsigned int i = r % RING_SLOTS;

		if (s->cache && (r >> 4) % 4 == 0) {
			n.p = ikos_kalloc_cache_alloc(s->cache);
			n.size = s->cache_size;
			n.cached = true;
		} else {
			n.size = pick_size(r);
			n.p = ikos_kalloc(n.size);
		}
		if (!n.p) {
			w->alloc_fail++;
		} else {
			w->allocs++;
			memset(n.p, n.pattern, n.size);
		}
		/* Every 4th kmalloc-style object is resized once, to a new size. */
		if (n.p && !n.cached && (r >> 20) % 4 == 0)
			count_resize(resize(&n, pick_size(rng_next(&w->seed)), &w->alloc_fail,
					    &w->verify_fail),
				     &w->reallocs, &w->moved_down);
		if ((r >> 56) % 8 == 0 && n.p) {
			/* A short-lived local object: freed right here. */
			release(s, w, &n);
		} else {
			spin_lock(&s->lock);
			old = s->ring[i];
			s->ring[i] = n;
			spin_unlock(&s->lock);
			release(s, w, &old);
		}
		if (rng_next(&w->seed) % 64 == 0)
			grow_down(s, w, (u8)r);
		cond_resched();
	}
	hrtimer_cancel(&w->timer);
	return 0;
}

static u64 snap_errors(const struct ikos_kalloc_stats *st)
{
	return st->invalid_frees + st->double_frees + st->corruptions;
}

int ikos_stress_run(unsigned int seconds, struct ikos_stress_result *res)
{
	struct ikos_kalloc_stats before, after;
	struct worker *workers, drain = { .cpu = -1 };
	struct stress *s;
	unsigned int cpu, n = 0, i;
	int ret, err;

	memset(res, 0, sizeof(*res));
	/* -ENODEV, or -EWOULDBLOCK during CPU hotplug: passed on. */
	ret = ikos_kalloc_get_stats(&before);
	if (ret)
		return ret;
	s = kzalloc_obj(*s);
	workers = kzalloc_objs(*workers, nr_cpu_ids);
	if (!s || !workers) {
		ret = -ENOMEM;
		goto out;
	}
	spin_lock_init(&s->lock);
	s->cache_size = 200;
	/* Fails if the name is taken (a user cache): run without it then. */
	s->cache = ikos_kalloc_cache_create("ikos_stress", s->cache_size, 8);

	for_each_online_cpu(cpu) {
		struct worker *w = &workers[n];
		struct task_struct *t;

		w->s = s;
		w->cpu = cpu;
		w->seed = 0x57e55ull * (cpu + 1) + 0x1c05ca11;
		hrtimer_setup(&w->timer, irq_tick, CLOCK_MONOTONIC, HRTIMER_MODE_REL_PINNED_SOFT);
		t = kthread_create_on_cpu(stress_thread, w, cpu, "ikos_stress/%u");
		if (IS_ERR(t)) {
			ret = PTR_ERR(t);
			break;
		}
		w->task = t;
		n++;
	}
	for (i = 0; i < n; i++)
		wake_up_process(workers[i].task);
	if (!ret)
		msleep_interruptible(seconds * 1000);
	for (i = 0; i < n; i++)
		kthread_stop(workers[i].task);

	for (i = 0; i < RING_SLOTS; i++)
		release(s, &drain, &s->ring[i]);
	if (s->cache && ikos_kalloc_cache_destroy(s->cache))
		drain.verify_fail++;

	res->threads = n;
	res->seconds = seconds;
	for (i = 0; i < n; i++) {
		struct worker *w = &workers[i];

		res->allocs += w->allocs;
		res->frees += w->frees;
		res->cross_cpu_frees += w->cross;
		res->alloc_failures += w->alloc_fail;
		res->verify_failures += w->verify_fail + w->irq_verify_fail;
		res->irq_ops += w->irq_ops;
		res->reallocs += w->reallocs + w->irq_reallocs;
		res->reallocs_moved_down += w->moved_down + w->irq_moved_down;
		res->alloc_failures += w->irq_alloc_fail;
	}
	res->frees += drain.frees;
	res->verify_failures += drain.verify_fail;
	res->ops = res->allocs + res->frees + res->reallocs + res->irq_ops;
	err = ikos_kalloc_get_stats(&after);
	if (err) {
		ret = ret ?: err;
		goto out;
	}
	res->free_errors = snap_errors(&after) - snap_errors(&before);
	/* Not the active_allocs delta: other users may allocate meanwhile. */
	res->leaked = res->allocs - res->frees;
out:
	kfree(workers);
	kfree(s);
	return ret;
}
