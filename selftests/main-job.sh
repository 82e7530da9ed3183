#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The main job inside the VM (`make run`): load the module, show what it
# offers, unload it. Parameters for insmod come from IKOS_ARGS.
d=/sys/kernel/debug/ikos_kalloc
echo "== insmod ikos_kalloc.ko $IKOS_ARGS"
# shellcheck disable=SC2086
insmod /modules/ikos_kalloc.ko $IKOS_ARGS || exit 1
grep '^ikos_kalloc ' /proc/modules | cut -d' ' -f1-3
echo "== ls $d"
ls "$d"
echo "== cat $d/stats"
cat "$d/stats"
echo "== a few allocations through debugfs"
echo "1 64" >"$d/alloc"
echo "2 5000 4096 zero" >"$d/alloc"
echo "create demo_obj 200 64" >"$d/caches"
echo "3 cache=demo_obj" >"$d/alloc"
echo "1 0xaa" >"$d/fill" && echo "1 0xaa" >"$d/verify" && echo "fill/verify of handle 1: ok"
echo "2 12000" >"$d/realloc" && echo "realloc of handle 2 to 12000 bytes: ok"
echo "== cat $d/handles"
cat "$d/handles"
echo "== cat $d/caches (size-64, size-4096, demo_obj)"
grep -E '^(name|size-64|size-4096|demo_obj) ' "$d/caches"
echo "== cat $d/validate"
cat "$d/validate"
echo "== grep -E 'used|active|slabs_total|overhead' $d/stats"
grep -E '^(used_bytes|active_allocs|slabs_total|overhead_bytes):' "$d/stats"
for id in 1 2 3; do echo "$id" >"$d/free"; done
echo "destroy demo_obj" >"$d/caches"
echo "== after freeing: $(grep -E '^(active_allocs|largest_free_block):' "$d/stats" | tr '\n' ' ')"
# Heap maps for scripts/heapmap: the empty heap, then after a fragmentation-
# heavy workload (400 allocations of mixed sizes, every other one freed).
echo "=== heapmap begin: before"
cat "$d/heapmap"
echo "=== heapmap end"
i=100
while [ $i -lt 500 ]; do
	echo "$i $(((i * 2654435761) % 24000 + 8))" >"$d/alloc"
	i=$((i + 1))
done
i=100
while [ $i -lt 500 ]; do
	echo "$i" >"$d/free"
	i=$((i + 2))
done
echo "== after the fragmentation workload: $(grep -E '^(active_allocs|fragmentation_pct|largest_free_block):' "$d/stats" | tr '\n' ' ')"
echo "=== heapmap begin: after"
cat "$d/heapmap"
echo "=== heapmap end"
i=101
while [ $i -lt 500 ]; do
	echo "$i" >"$d/free"
	i=$((i + 2))
done
echo "shrink: $(echo run >"$d/shrink" && tr '\n' ' ' <"$d/shrink")"
if [ -r "$d/selftest" ]; then
	echo "== cat $d/selftest"
	cat "$d/selftest"
fi
echo "== dmesg (ikos_kalloc)"
dmesg | grep 'ikos_kalloc'
echo "== rmmod ikos_kalloc"
rmmod ikos_kalloc && echo "unloaded"
