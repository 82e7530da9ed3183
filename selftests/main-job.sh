#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The main job inside the VM (`make run`): load the module, show what it
# offers, unload it. Parameters for insmod come from IKOS_ARGS.
d=/sys/kernel/debug/ikos_kalloc
echo "== insmod ikos_kalloc.ko $IKOS_ARGS"
# shellcheck disable=SC2086
insmod /modules/ikos_kalloc.ko $IKOS_ARGS || exit 1
grep '^ikos_kalloc ' /proc/modules
echo "== ls $d"
ls "$d"
echo "== cat $d/stats"
cat "$d/stats"
if [ -r "$d/selftest" ]; then
	echo "== cat $d/selftest"
	cat "$d/selftest"
fi
echo "== dmesg (ikos_kalloc)"
dmesg | grep 'ikos_kalloc'
echo "== rmmod ikos_kalloc"
rmmod ikos_kalloc && echo "unloaded"
