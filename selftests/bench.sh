#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# `make bench` inside the VM: load the module without self-tests, run the
# in-kernel benchmark RUNS times with OPS iterations per workload, print each
# table. IKOS_ARGS: ops=N runs=N, anything else goes to insmod.
d=/sys/kernel/debug/ikos_kalloc
ops=200000
runs=5
modparams=""
for a in $IKOS_ARGS; do
	case "$a" in
	ops=*) ops=${a#ops=} ;;
	runs=*) runs=${a#runs=} ;;
	*) modparams="$modparams $a" ;;
	esac
done
# shellcheck disable=SC2086
if ! insmod /modules/ikos_kalloc.ko selftest_on_load=0 $modparams; then
	echo "not ok 1 insmod"
	exit 1
fi
i=0
while [ $i -lt "$runs" ]; do
	i=$((i + 1))
	if echo "run $ops" >"$d/bench"; then
		echo "ok $i bench run $i"
		echo "== run $i"
		cat "$d/bench"
	else
		echo "not ok $i bench run $i"
	fi
done
echo "== validate: $(head -n 1 "$d/validate"), active_allocs: $(sed -n 's/^active_allocs: //p' "$d/stats")"
rmmod ikos_kalloc
