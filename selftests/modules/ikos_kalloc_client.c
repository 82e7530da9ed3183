// SPDX-License-Identifier: GPL-2.0
/*
 * ikos_kalloc_client: a test-only module that calls every function of
 * ikos_kalloc's exported C API (include/ikos_kalloc.h) once at load and
 * checks the results. Loading fails with -EINVAL if any check fails; dmesg
 * says which. Used by selftests/tests/90-c-api.sh.
 */
#include <linux/completion.h>
#include <linux/cpumask.h>
#include <linux/delay.h>
#include <linux/errno.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <ikos_kalloc.h>

static bool oom_under_lock;
module_param(oom_under_lock, bool, 0444);
MODULE_PARM_DESC(oom_under_lock,
		 "instead of the checks: an allocation that runs out of memory under a spinlock another CPU spins on with IRQs off must return NULL, not wait for that CPU");

static bool heap_debug;
module_param(heap_debug, bool, 0444);
MODULE_PARM_DESC(heap_debug,
		 "ikos_kalloc was loaded with debug flags: its large blocks have the debug layout and placement, so check_krealloc_moves checks contents only");

static int checks, failures;

#define CHECK(cond)                                                          \
	do {                                                                 \
		checks++;                                                    \
		if (!(cond)) {                                               \
			failures++;                                          \
			pr_err("ikos_kalloc_client: check failed: %s (line %d)\n", \
			       #cond, __LINE__);                             \
		}                                                            \
	} while (0)

static DEFINE_SPINLOCK(client_lock);

static bool all_bytes(const u8 *p, size_t n, u8 v)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

static void check_basic(void)
{
	u8 *p = ikos_kalloc(100);

	CHECK(p);
	if (!p)
		return;
	CHECK(ikos_kalloc_usable_size(p) >= 100);
	CHECK(ikos_kalloc_is_valid_pointer(p));
	CHECK(!ikos_kalloc_is_valid_pointer(p + 8));
	memset(p, 0xa5, 100);
	CHECK(all_bytes(p, 100, 0xa5));
	ikos_kfree(p);
	CHECK(!ikos_kalloc_is_valid_pointer(p));
	CHECK(!ikos_kalloc(0));
	ikos_kfree(NULL);
}

static void check_aligned(void)
{
	size_t align;

	for (align = 8; align <= 65536; align <<= 1) {
		void *p = ikos_kalloc_aligned(24, align);

		CHECK(p && IS_ALIGNED((unsigned long)p, align));
		ikos_kfree(p);
	}
	CHECK(!ikos_kalloc_aligned(24, 24));
	/*
	 * A freed block of the minimum size is parked on this CPU: size 0
	 * must still fail (the parked block would fit it).
	 */
	ikos_kfree(ikos_kalloc_aligned(16, 128));
	CHECK(!ikos_kalloc(0));
	CHECK(!ikos_krealloc(NULL, 0));
}

static void check_flags(void)
{
	unsigned long irqflags;
	u8 *p, *q;

	/* ZERO hands out zeroed memory even where the last user left a pattern. */
	p = ikos_kalloc(5000);
	CHECK(p);
	if (p) {
		memset(p, 0xff, 5000);
		ikos_kfree(p);
	}
	q = ikos_kalloc_flags(5000, KALLOC_ZERO);
	CHECK(q && all_bytes(q, ikos_kalloc_usable_size(q), 0));
	ikos_kfree(q);

	CHECK(!ikos_kalloc_flags(64, KALLOC_DMA));
	CHECK(!ikos_kalloc_flags(64, 0x100));
	q = ikos_kalloc_flags(64, KALLOC_HIGH);
	CHECK(q);
	ikos_kfree(q);

	/*
	 * ATOMIC: from atomic context with interrupts off (DEBUG_ATOMIC_SLEEP
	 * would report any sleep).
	 */
	spin_lock_irqsave(&client_lock, irqflags);
	p = ikos_kalloc_flags(4096, KALLOC_ATOMIC | KALLOC_ZERO);
	q = ikos_kalloc_flags(20000, KALLOC_ATOMIC);
	ikos_kfree(p);
	ikos_kfree(q);
	spin_unlock_irqrestore(&client_lock, irqflags);
	CHECK(p && q);
}

static void check_cache(void)
{
	struct ikos_kalloc_cache *c;
	void *objs[100];
	int i;

	c = ikos_kalloc_cache_create("client_obj", 48, 16);
	CHECK(c);
	if (!c)
		return;
	CHECK(!ikos_kalloc_cache_create("client_obj", 48, 16));
	for (i = 0; i < ARRAY_SIZE(objs); i++) {
		objs[i] = ikos_kalloc_cache_alloc(c);
		CHECK(objs[i] && IS_ALIGNED((unsigned long)objs[i], 16));
		if (objs[i])
			memset(objs[i], i, 48);
	}
	CHECK(ikos_kalloc_cache_destroy(c) == -EBUSY);
	for (i = 0; i < ARRAY_SIZE(objs); i++) {
		CHECK(objs[i] && all_bytes(objs[i], 48, i));
		ikos_kalloc_cache_free(c, objs[i]);
	}
	CHECK(ikos_kalloc_cache_destroy(c) == 0);
	CHECK(ikos_kalloc_cache_destroy(c) == -ENOENT);
	CHECK(!ikos_kalloc_cache_alloc(c));
	CHECK(ikos_kalloc_cache_destroy(NULL) == -ENOENT);
}

static void check_errors_and_stats(void)
{
	struct ikos_kalloc_stats s0, s1;
	unsigned long irqflags;
	u64 local = 0;
	void *p;

	CHECK(ikos_kalloc_get_stats(NULL) == -EINVAL);
	CHECK(ikos_kalloc_get_stats(&s0) == 0);
	CHECK(s0.heap_size > 0);
	CHECK(s0.used_bytes + s0.free_bytes + s0.overhead_bytes == s0.heap_size);

	p = ikos_kalloc(300);
	CHECK(p);
	ikos_kfree(p);
	ikos_kfree(p);		/* double free: reported and counted */
	ikos_kfree(&local);	/* not a heap pointer: reported and counted */
	CHECK(!ikos_kalloc_is_valid_pointer(&local));
	CHECK(ikos_kalloc_usable_size(&local) == 0);

	CHECK(ikos_kalloc_get_stats(&s1) == 0);
	CHECK(s1.total_allocs == s0.total_allocs + 1);
	CHECK(s1.total_frees == s0.total_frees + 1);
	CHECK(s1.double_frees == s0.double_frees + 1);
	CHECK(s1.invalid_frees == s0.invalid_frees + 1);
	CHECK(s1.active_allocs == s0.active_allocs);
	CHECK(ikos_kalloc_validate_heap() == 0);

	/*
	 * Exact reports visit every CPU with an IPI: not with interrupts off,
	 * where allocations and frees still work.
	 */
	spin_lock_irqsave(&client_lock, irqflags);
	CHECK(ikos_kalloc_get_stats(&s1) == -EWOULDBLOCK);
	CHECK(ikos_kalloc_validate_heap() == -EWOULDBLOCK);
	p = ikos_kalloc(64);
	ikos_kfree(p);
	spin_unlock_irqrestore(&client_lock, irqflags);
	CHECK(p);
	CHECK(ikos_kalloc_get_stats(&s1) == 0);
	CHECK(s1.total_allocs == s0.total_allocs + 2);
	CHECK(s1.active_allocs == s0.active_allocs);
}

/*
 * A freed large block of up to 64 KiB is parked in this CPU's cache and
 * handed out again to a request of about its size; while parked it is not
 * a live pointer, and a second free of it is a double free. Interrupts are
 * off so that the task stays on one CPU.
 */
static noinline_for_stack void check_large_reuse(void)
{
	struct ikos_kalloc_stats s0, s1;
	unsigned long irqflags;
	bool parked_valid, zeroed = false;
	size_t parked_usable;
	void *p, *q, *z;

	CHECK(ikos_kalloc_get_stats(&s0) == 0);
	spin_lock_irqsave(&client_lock, irqflags);
	p = ikos_kalloc(16384);
	if (p)
		memset(p, 0x5a, 16384);
	ikos_kfree(p);
	parked_valid = ikos_kalloc_is_valid_pointer(p);
	parked_usable = ikos_kalloc_usable_size(p);
	q = ikos_kalloc(15000);
	ikos_kfree(q);
	ikos_kfree(q);		/* double free of a parked block */
	z = ikos_kalloc_flags(16384, KALLOC_ZERO);
	if (z)
		zeroed = all_bytes(z, 16384, 0);
	ikos_kfree(z);
	spin_unlock_irqrestore(&client_lock, irqflags);
	CHECK(p && q == p && z == p);
	CHECK(!parked_valid && parked_usable == 0);
	CHECK(zeroed);
	CHECK(ikos_kalloc_get_stats(&s1) == 0);
	CHECK(s1.total_allocs == s0.total_allocs + 3);
	CHECK(s1.total_frees == s0.total_frees + 3);
	CHECK(s1.double_frees == s0.double_frees + 1);
	CHECK(s1.active_allocs == s0.active_allocs);
	CHECK(ikos_kalloc_validate_heap() == 0);
}

/*
 * Fills @size bytes of @p with 0x3c and resizes it to @new_size with
 * ikos_krealloc(): the @size bytes must be kept. The new pointer, or NULL
 * (then @p is still valid).
 */
static u8 *grow_filled(u8 *p, size_t size, size_t new_size)
{
	u8 *q;

	memset(p, 0x3c, size);
	q = ikos_krealloc(p, new_size);
	CHECK(q && all_bytes(q, size, 0x3c) && ikos_kalloc_usable_size(q) >= new_size);
	return q;
}

/*
 * ikos_krealloc(): in place while the usable size allows, else moved with
 * the contents kept (across size classes and into a large block); NULL
 * allocates, size 0 frees, a pointer into the middle of an allocation is
 * refused and counted and leaves the allocation alone; all of it also
 * with interrupts off.
 */
static noinline_for_stack void check_krealloc(void)
{
	struct ikos_kalloc_stats s0, s1;
	unsigned long irqflags;
	u8 *p, *q;

	CHECK(ikos_kalloc_get_stats(&s0) == 0);
	p = ikos_krealloc(NULL, 100);
	CHECK(p && ikos_kalloc_usable_size(p) >= 100);
	if (!p)
		return;
	memset(p, 0x3c, 100);
	CHECK(ikos_krealloc(p, 50) == p);
	q = ikos_krealloc(p, 3000);
	CHECK(q && q != p && all_bytes(q, 100, 0x3c));
	if (!q)
		goto out;
	CHECK(!ikos_kalloc_is_valid_pointer(p));
	p = q;
	q = grow_filled(p, 3000, 20000);
	if (!q)
		goto out;
	p = q;
	q = grow_filled(p, 20000, 40000);
	if (!q)
		goto out;
	p = q;
	CHECK(!ikos_krealloc(p + 16, 10));
	CHECK(ikos_kalloc_is_valid_pointer(p) && all_bytes(p, 20000, 0x3c));
	CHECK(!ikos_krealloc(p, 0));
	CHECK(!ikos_kalloc_is_valid_pointer(p));
	p = NULL;

	spin_lock_irqsave(&client_lock, irqflags);
	p = ikos_krealloc(NULL, 64);
	q = p ? ikos_krealloc(p, 10000) : NULL;
	if (q)
		p = q;
	spin_unlock_irqrestore(&client_lock, irqflags);
	CHECK(p && q);
	CHECK(ikos_kalloc_usable_size(p) >= 10000);
	CHECK(!ikos_krealloc(p, 0));
	p = NULL;
out:
	ikos_kfree(p);
	CHECK(ikos_kalloc_get_stats(&s1) == 0);
	CHECK(s1.active_allocs == s0.active_allocs);
	CHECK(s1.invalid_frees == s0.invalid_frees + 1);
	CHECK(ikos_kalloc_validate_heap() == 0);
}

/*
 * ikos_krealloc() makes the moves of the host's Heap::realloc. A large
 * block that cannot grow in place moves down into a free predecessor (the
 * memmove made without the heap lock) and is cut to size; otherwise its
 * new block is the lowest-addressed of the candidate free blocks, not the
 * first that fits. The blocks are larger than the per-CPU large cache
 * takes (64 KiB), so every free reaches the heap; on the client's fresh
 * 8 MiB heap each new block is cut from the low end of the free block at
 * the top, so its neighbours are known. With heap_debug (debug layout and
 * placement) only the contents are checked.
 */
static noinline_for_stack void check_krealloc_moves(void)
{
	const size_t s = 256 * 1024;
	u8 *a, *b, *c, *m, *sep, *x, *y, *q = NULL;
	bool plain = !heap_debug;

	/* Moved down: a freed, c live, so b grows into a's space. */
	a = ikos_kalloc(s);
	b = ikos_kalloc(s);
	c = ikos_kalloc(s);
	CHECK(a && b && c);
	if (!a || !b || !c)
		goto out_abc;
	CHECK(!plain || (b == a + s + 16 && c == b + s + 16));
	ikos_kfree(a);
	q = grow_filled(b, s, s + s / 2);
	CHECK(!plain || q == a);
	/* Cut to size: the rest of a's and b's space is free again. */
	CHECK(!plain || ikos_kalloc_usable_size(q) == s + s / 2);
	if (q)
		b = q;
	a = NULL;
out_abc:
	ikos_kfree(a);
	ikos_kfree(b);
	ikos_kfree(c);

	/*
	 * Placed low: free holes of 4 s (low) and 2 s (higher); x, between
	 * two live blocks, grows to 1.5 s. The first list that fits holds the
	 * 2 s hole, the lowest candidate is the 4 s one.
	 */
	a = ikos_kalloc(4 * s);
	sep = ikos_kalloc(s);
	m = ikos_kalloc(2 * s);
	c = ikos_kalloc(s);
	x = ikos_kalloc(s);
	y = ikos_kalloc(s);
	CHECK(a && sep && m && c && x && y);
	if (!a || !sep || !m || !c || !x || !y)
		goto out_low;
	CHECK(!plain || (a < sep && sep < m && m < c && c < x && x < y));
	ikos_kfree(a);
	ikos_kfree(m);
	q = grow_filled(x, s, s + s / 2);
	CHECK(!plain || q == a);
	if (q)
		x = q;
	a = NULL;
	m = NULL;
out_low:
	ikos_kfree(a);
	ikos_kfree(sep);
	ikos_kfree(m);
	ikos_kfree(c);
	ikos_kfree(x);
	ikos_kfree(y);
	CHECK(ikos_kalloc_validate_heap() == 0);
}

/*
 * oom_under_lock: CPU 0 holds oom_lock and makes an allocation the heap
 * cannot satisfy while CPU 1 spins on oom_lock with interrupts disabled.
 * Reclaiming the other CPU's caches would need an IPI that CPU 1 never
 * takes until CPU 0 lets go: the allocation must fail (NULL) instead.
 */
static DEFINE_SPINLOCK(oom_lock);
static atomic_t oom_stage = ATOMIC_INIT(0);
static DECLARE_COMPLETION(oom_spinner_done);
static DECLARE_COMPLETION(oom_holder_done);
static void *oom_result;	/* set by oom_holder before oom_holder_done */

static int oom_spinner(void *unused)
{
	unsigned long flags;

	while (atomic_read(&oom_stage) != 1)
		cpu_relax();
	atomic_set(&oom_stage, 2);
	spin_lock_irqsave(&oom_lock, flags);
	spin_unlock_irqrestore(&oom_lock, flags);
	complete(&oom_spinner_done);
	return 0;
}

static int oom_holder(void *size)
{
	spin_lock(&oom_lock);
	atomic_set(&oom_stage, 1);
	while (atomic_read(&oom_stage) != 2)
		cpu_relax();
	mdelay(20);	/* the spinner is now spinning with interrupts off */
	oom_result = ikos_kalloc((size_t)size);
	spin_unlock(&oom_lock);
	complete(&oom_holder_done);
	return 0;
}

static int run_oom_under_lock(void)
{
	struct ikos_kalloc_stats st;
	struct task_struct *holder, *spinner;

	if (num_online_cpus() < 2 || !cpu_online(0) || !cpu_online(1)) {
		pr_info("ikos_kalloc_client: oom under lock: needs CPUs 0 and 1, skipped\n");
		return 0;
	}
	if (ikos_kalloc_get_stats(&st))
		return -ENODEV;
	/* Larger than anything free, not larger than the heap. */
	holder = kthread_create_on_cpu(oom_holder, (void *)(uintptr_t)st.heap_size, 0,
				       "ikos_oom_holder/%u");
	if (IS_ERR(holder))
		return PTR_ERR(holder);
	spinner = kthread_create_on_cpu(oom_spinner, NULL, 1, "ikos_oom_spinner/%u");
	if (IS_ERR(spinner)) {
		kthread_stop(holder);
		return PTR_ERR(spinner);
	}
	wake_up_process(spinner);
	wake_up_process(holder);
	wait_for_completion(&oom_holder_done);
	wait_for_completion(&oom_spinner_done);
	if (oom_result) {
		pr_err("ikos_kalloc_client: oom under lock: got %p, not NULL\n", oom_result);
		ikos_kfree(oom_result);
		return -EINVAL;
	}
	pr_info("ikos_kalloc_client: oom under lock: NULL, no deadlock\n");
	return 0;
}

static int __init ikos_kalloc_client_init(void)
{
	struct ikos_kalloc_stats start, end;

	if (oom_under_lock)
		return run_oom_under_lock();

	CHECK(ikos_kalloc_get_stats(&start) == 0);
	check_basic();
	check_aligned();
	check_flags();
	check_cache();
	check_errors_and_stats();
	check_large_reuse();
	check_krealloc();
	check_krealloc_moves();
	CHECK(ikos_kalloc_get_stats(&end) == 0);
	CHECK(end.active_allocs == start.active_allocs);

	if (failures) {
		pr_err("ikos_kalloc_client: %d of %d checks failed\n", failures, checks);
		return -EINVAL;
	}
	pr_info("ikos_kalloc_client: all %d checks passed\n", checks);
	return 0;
}

static void __exit ikos_kalloc_client_exit(void)
{
}

module_init(ikos_kalloc_client_init);
module_exit(ikos_kalloc_client_exit);
MODULE_DESCRIPTION("Calls every function of ikos_kalloc's C API and checks the results");
MODULE_LICENSE("GPL");
