#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0
#
# /init of the test VM (copied into the initramfs by scripts/run-vm.sh).
# The kernel console is ttyS0 (the "console log", scanned for splats); the
# output of the selftests and of the main job goes only to ttyS1 (the "TAP
# file"), so kernel messages never split a TAP line and no test name can look
# like a splat to the scanner. The mode comes from the kernel command line:
# ikos.mode=run|test|bench|shell|probe.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmpfs /tmp

mode=probe
params=""
plant=""
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	ikos.mode=*) mode=${arg#ikos.mode=} ;;
	ikos.args=*) params=$(echo "${arg#ikos.args=}" | tr , ' ') ;;
	ikos.plant=*) plant=${arg#ikos.plant=} ;;
	esac
done
export IKOS_ARGS="$params"
# Results channel (see run-vm.sh).
export IKOS_TAP=/dev/ttyS1

# Proof that the log scanner works: plant a splat on request (run-vm.sh --plant).
[ "$plant" = warning ] && insmod /modules/ikos_splat.ko

echo "ikos-vm: mode $mode, kernel $(uname -r), $(nproc) CPUs"
case "$mode" in
probe) ;;
run) sh /selftests/main-job.sh >"$IKOS_TAP" 2>&1 ;;
test) sh /selftests/run_tests.sh $params >"$IKOS_TAP" 2>&1 ;;
bench) sh /selftests/bench.sh >"$IKOS_TAP" 2>&1 ;;
shell)
	echo "ikos-vm: interactive shell; ikos_kalloc.ko is in /modules, selftests in /selftests."
	echo "ikos-vm: run 'sh /selftests/run_tests.sh' for the tests; exit the shell to power off."
	setsid cttyhack sh
	;;
esac
echo "ikos-vm: done"
poweroff -f
