# SPDX-License-Identifier: GPL-2.0
# Faults and limits: exhaustion (small and large) leaves no overlap and
# gives everything back; the kernel's failslab / fail_page_alloc make insmod
# fail cleanly; 50 insmod/rmmod cycles, some with thousands of live
# handles (kmemleak runs at the end of the whole run). Knob: FAULT_CYCLES.
e99_cycles=${FAULT_CYCLES:-50}

# e99_exhaust NAME SIZE: allocate SIZE-byte handles until ENOMEM, give
# each its own byte, verify all (no two overlap), free all.
e99_exhaust() {
	expect_eq "exhaust $1: load (128 KiB heap)" OK "$(load heap_size=131072 selftest_on_load=0)"
	lfb0=$(stat largest_free_block)
	n=0
	while :; do
		kwrite_v "$KALLOC_DIR/alloc" "$((n + 1)) $2"
		[ "$errno" = OK ] || break
		n=$((n + 1))
	done
	expect_eq "exhaust $1: allocation stops with ENOMEM (after $n)" ENOMEM "$errno"
	check "exhaust $1: some allocations succeeded" [ "$n" -gt 1 ]
	i=1 bad=0
	while [ $i -le $n ]; do kw "$KALLOC_DIR/fill" "$i $((i % 251))" || bad=$((bad + 1)); i=$((i + 1)); done
	i=1
	while [ $i -le $n ]; do kw "$KALLOC_DIR/verify" "$i $((i % 251))" || bad=$((bad + 1)); i=$((i + 1)); done
	expect_eq "exhaust $1: all $n handles hold their own byte (no overlap)" 0 "$bad"
	expect_eq "exhaust $1: failed_allocs counted the ENOMEM" 1 "$(stat failed_allocs)"
	# A move that finds no memory takes back the per-CPU caches, retries
	# and fails: ENOMEM, counted once, the handle unchanged.
	expect_write "exhaust $1: realloc of handle 1 to 100000 B" ENOMEM "$KALLOC_DIR/realloc" "1 100000"
	expect_eq "exhaust $1: failed_allocs counted it once" 2 "$(stat failed_allocs)"
	expect_write "exhaust $1: handle 1 still holds its byte" OK "$KALLOC_DIR/verify" "1 1"
	i=1
	while [ $i -le $n ]; do kw "$KALLOC_DIR/free" "$i" || bad=$((bad + 1)); i=$((i + 1)); done
	expect_eq "exhaust $1: every free succeeded" 0 "$bad"
	expect_write "exhaust $1: shrink (empties the per-CPU magazines)" OK "$KALLOC_DIR/shrink" "run"
	expect_eq "exhaust $1: largest_free_block back to its initial value" "$lfb0" "$(stat largest_free_block)"
	check "exhaust $1: validate ok" validate_ok
	expect_eq "exhaust $1: rmmod" OK "$(unload)"
}
e99_exhaust "small (256 B)" 256
e99_exhaust "large (9000 B)" 9000

# --- the kernel's fault injection around insmod --------------------------
# failslab and fail_page_alloc are armed for every allocation (sleeping
# ones and order 0 too) but fire only through fail-nth, for the
# finit_module call alone: `kalloc-fuzz insmod-nth K` makes the K-th
# allocation of the load fail and says whether the load got that far.
# K doubles, then a binary search finds N, the number of allocations of a
# load (it varies by a few from load to load); then every FAULT_STRIDE-th
# (default 10) allocation of the load fails once, which samples module
# init's own (vmalloc, its KASAN shadow, state, debugfs) as well as the
# module loader's. Many failures are tolerated by the kernel (bulk page
# allocation falls back, uevents are best effort): such a load succeeds and
# must unload cleanly. A 64 KiB heap keeps vmalloc's page count small.
e99_stride=${FAULT_STRIDE:-10}
e99_fi=/sys/kernel/debug
e99_tried=0 e99_failed=0 e99_survived=0 e99_dirty=0
# e99_try K: one load with the K-th allocation failing; sets e99_reached.
e99_try() {
	out=$(kalloc-fuzz insmod-nth "$1" "$KO" "heap_size=65536 selftest_on_load=0" 2>&1)
	echo "# $out"
	case "$out" in
	*"fault fired"*) e99_reached=1 ;;
	*"not reached"*) e99_reached=0 ;;
	*) e99_reached=0 e99_dirty=$((e99_dirty + 1)) ;;
	esac
	[ $e99_reached = 1 ] && e99_tried=$((e99_tried + 1))
	case "$out" in
	*": loaded,"*)
		[ $e99_reached = 1 ] && e99_survived=$((e99_survived + 1))
		# A load that survived a failed allocation must still unload.
		[ "$(unload)" = OK ] || e99_dirty=$((e99_dirty + 1))
		;;
	*": failed "*)
		e99_failed=$((e99_failed + 1))
		loaded && e99_dirty=$((e99_dirty + 1)) && rmmod ikos_kalloc
		[ -e "$KALLOC_DIR" ] && e99_dirty=$((e99_dirty + 1))
		;;
	esac
	return 0
}
if [ -d $e99_fi/failslab ] && [ -d $e99_fi/fail_page_alloc ] && [ -e /proc/thread-self/fail-nth ]; then
	for a in failslab fail_page_alloc; do
		echo 0 >$e99_fi/$a/verbose
		echo N >$e99_fi/$a/ignore-gfp-wait
	done
	echo 0 >$e99_fi/fail_page_alloc/min-order
	dmesg_mark
	lo=0 hi=1
	while [ $hi -le 1048576 ]; do
		e99_try $hi
		[ $e99_reached = 0 ] && break
		lo=$hi hi=$((hi * 2))
	done
	while [ $((hi - lo)) -gt 1 ]; do
		mid=$(((lo + hi) / 2))
		e99_try $mid
		if [ $e99_reached = 1 ]; then lo=$mid; else hi=$mid; fi
	done
	k=$e99_stride
	while [ $k -lt $lo ]; do
		e99_try $k
		k=$((k + e99_stride))
	done
	e99_vm=$(dmesg | grep -c 'heap_size=65536 rejected: vmalloc cannot provide it')
	for a in failslab fail_page_alloc; do echo Y >$e99_fi/$a/ignore-gfp-wait; done
	echo 1 >$e99_fi/fail_page_alloc/min-order
	echo "# faults: fail-nth: a load makes about $lo allocations; $e99_tried failed once each: $e99_failed failed insmod cleanly ($e99_vm in module init's vmalloc), $e99_survived were tolerated" | tee /dev/kmsg
	check "faults: fail-nth: injected failures made insmod fail ($e99_failed)" [ $e99_failed -gt 0 ]
	expect_eq "faults: fail-nth: failed loads left no module or debugfs dir, survivors unloaded" 0 $e99_dirty
	check "faults: no Rust panic or exit error after the failed loads" \
		sh -c "! dmesg | grep -qE 'panicked|exit: heap corrupt'"
else
	pass "faults: fail-nth # SKIP kernel without failslab/fail_page_alloc/fail-nth"
fi
expect_eq "faults: a normal load works afterwards" OK "$(load)"
check "faults: validate ok after the failed loads" validate_ok
unload >/dev/null

# --- many cycles, some with thousands of live handles --------------------
e99_ok=0
c=1
while [ $c -le "$e99_cycles" ]; do
	[ "$(load selftest_on_load=0)" = OK ] || break
	if [ $((c % 25)) = 0 ]; then nh=2000; else nh=$((c % 7)); fi
	i=1
	while [ $i -le $nh ]; do kw "$KALLOC_DIR/alloc" "$i $((i * 37 % 5000 + 1))" || break; i=$((i + 1)); done
	[ "$(stat active_allocs)" = "$nh" ] || break
	[ "$(unload)" = OK ] || break
	e99_ok=$c
	c=$((c + 1))
done
expect_eq "faults: $e99_cycles insmod/rmmod cycles (every 25th with 2000 live handles)" "$e99_cycles" "$e99_ok"
check "faults: every exit found a consistent heap" \
	sh -c "! dmesg | grep -qE 'ikos_kalloc: (exit: heap corrupt|exit: freed [0-9]+ handles,|free of a handle)'"
