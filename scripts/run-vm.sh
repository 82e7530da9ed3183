#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Boots the test kernel in QEMU with ikos_kalloc.ko and the selftests.
#
#   scripts/run-vm.sh --mode run|test|bench|shell [options]
#
#   --kdir DIR       kernel build dir (bzImage and the module's build tree)
#   --modules DIR    where ikos_kalloc.ko and selftests/modules/*.ko were built
#                    (default: the repository)
#   --out DIR        where the initramfs and logs go (default: out/)
#   --args A,B       passed to the VM: module parameters in run mode, test
#                    group filters in test mode (comma separated; KEY=VALUE
#                    items are exported to the groups instead, e.g.
#                    FUZZ_SECONDS=600)
#   --plant KIND     load a test module that plants a splat (warning) first
#   --timeout SEC    give up after SEC seconds (default 1200)
#   --smp N, --mem MB
#
# Output: the VM's console (kernel log) goes to OUT/vm-MODE.console.log, the
# results channel (second serial port) to OUT/vm-MODE.tap; the latter is shown
# live. The run fails (exit 1) on a failed or missing TAP result, a timeout, a
# VM that did not finish, or any kernel splat found by scripts/scan-log. The
# last line is `N passed, N failed`.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
mode="" kdir="${KDIR:-}" out="$top/out" modules="$top" args="" plant="" timeout_s=1200 smp=2 mem=768
while [ $# -gt 0 ]; do
	case "$1" in
	--mode) mode=$2; shift 2 ;;
	--kdir) kdir=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--modules) modules=$2; shift 2 ;;
	--args) args=$2; shift 2 ;;
	--plant) plant=$2; shift 2 ;;
	--timeout) timeout_s=$2; shift 2 ;;
	--smp) smp=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	*) echo "run-vm.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
case "$mode" in run | test | bench | shell) ;; *) echo "run-vm.sh: --mode run|test|bench|shell" >&2; exit 2 ;; esac
[ -n "$kdir" ] || { echo "run-vm.sh: --kdir (or KDIR) is required" >&2; exit 2; }
bz="$kdir/arch/x86/boot/bzImage"
[ -f "$bz" ] || { echo "run-vm.sh: no kernel image at $bz" >&2; exit 2; }
[ -f "$modules/ikos_kalloc.ko" ] || { echo "run-vm.sh: build the module first (make)" >&2; exit 2; }
"$here/deps.sh" vm

# --- initramfs: busybox, /init, the modules and the selftests -------------
root="$out/vm/root"
rm -rf "$root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,modules}
cp /bin/busybox "$root/bin/busybox"
cp "$here/vm-init.sh" "$root/init"
chmod +x "$root/init"
cp "$modules/ikos_kalloc.ko" "$root/modules/"
find "$modules/selftests" -name '*.ko' -exec cp {} "$root/modules/" \;
# The static debugfs fuzz/churn driver (make fuzz-bin), when built.
fuzz_bin="$top/target/x86_64-unknown-linux-gnu/release/kalloc-fuzz"
[ -x "$fuzz_bin" ] && cp "$fuzz_bin" "$root/bin/kalloc-fuzz"
mkdir -p "$root/selftests"
cp -r "$top/selftests/lib.sh" "$top/selftests/run_tests.sh" "$top/selftests/main-job.sh" \
	"$top/selftests/bench.sh" \
	"$top/selftests/tests" "$root/selftests/"
initrd="$out/vm/initramfs.cpio.gz"
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) >"$initrd"

# --- accelerator: KVM only where a short probe boots, else TCG ------------
cache=${IKOS_CACHE:-$HOME/.cache/ikos-kalloc}
accel=${IKOS_ACCEL:-}
if [ -z "$accel" ]; then
	probe_file="$cache/accel-$(hostname)-$(uname -r)"
	if [ -f "$probe_file" ]; then
		accel=$(cat "$probe_file")
	else
		accel=tcg
		if [ -w /dev/kvm ]; then
			# Captured first: under pipefail, `| grep -q` would let a
			# successful probe fail on the pipe it closes early.
			probe=$(timeout 20 qemu-system-x86_64 -accel kvm -m 256 -kernel "$bz" -initrd "$initrd" \
				-append "console=ttyS0 panic=-1 ikos.mode=probe" -display none -no-reboot \
				-serial stdio 2>/dev/null || true)
			if grep -q 'ikos-vm: done' <<<"$probe"; then
				accel=kvm
			fi
		fi
		mkdir -p "$cache"
		echo "$accel" >"$probe_file"
	fi
fi

# --- boot ---------------------------------------------------------------------
console_log="$out/vm-$mode.console.log"
tap="$out/vm-$mode.tap"
: >"$console_log"
: >"$tap"
# pty.legacy_count=0: nothing in the VM uses BSD ptys, and creating the
# 512 device nodes of the config's 256 took 2.5 to 3.5 s of each debug boot
# under TCG (initcall_debug: pty_init, 3.7 s).
append="console=ttyS0 panic=-1 log_buf_len=8M pty.legacy_count=0 ikos.mode=$mode"
[ -n "$args" ] && append="$append ikos.args=$args"
[ -n "$plant" ] && append="$append ikos.plant=$plant"
qemu=(qemu-system-x86_64 -accel "$accel" -smp "$smp" -m "$mem" -kernel "$bz" -initrd "$initrd"
	-append "$append" -no-reboot -display none -monitor none)
# Under TCG the guest gets every emulated feature but 5-level paging: with
# LA57, an interrupt that lands while identify_cpu() has cleared the boot
# CPU's capability words (interrupts are on by then) makes KASAN take the
# 4-level layout for a 5-level address and report a wild-memory-access in
# do_raw_spin_lock (seen once at 0.004 s, before any module; the splat
# scanner fails such a run). 4-level paging has no such window.
[ "$accel" = tcg ] && qemu+=(-cpu max,la57=off)

echo "run-vm.sh: booting ($accel, $smp CPUs, ${mem} MiB), mode $mode"
echo "run-vm.sh: console log: $console_log"
if [ "$mode" = shell ]; then
	"${qemu[@]}" -serial mon:stdio -serial "file:$tap"
	exit 0
fi

start=$(date +%s)
set +e
timeout "$timeout_s" "${qemu[@]}" -serial "file:$console_log" -serial "file:$tap" </dev/null &
qpid=$!
tail -n +1 -f --pid=$qpid "$tap" 2>/dev/null
wait $qpid
qrc=$?
set -e
elapsed=$(($(date +%s) - start))

# --- verdict --------------------------------------------------------------------
problems=0
if [ $qrc -eq 124 ]; then
	echo "run-vm.sh: TIMEOUT after ${timeout_s}s"
	problems=$((problems + 1))
elif ! grep -q 'ikos-vm: done' "$console_log"; then
	echo "run-vm.sh: the VM did not finish (qemu exit $qrc); see $console_log"
	problems=$((problems + 1))
fi
if ! "$here/scan-log" "$console_log" >"$out/vm-$mode.splats"; then
	echo "run-vm.sh: kernel splats in $console_log:"
	head -n 20 "$out/vm-$mode.splats"
	problems=$((problems + $(wc -l <"$out/vm-$mode.splats")))
fi

passed=$(tr -d '\r' <"$tap" | grep -cE '^ok [0-9]+' || true)
failed=$(tr -d '\r' <"$tap" | grep -cE '^not ok [0-9]+' || true)
if [ "$mode" = test ]; then
	plan=$(tr -d '\r' <"$tap" | sed -n 's/^1\.\.\([0-9][0-9]*\)$/\1/p' | tail -n 1)
	if [ -z "$plan" ]; then
		echo "run-vm.sh: no TAP plan (1..N) in $tap"
		problems=$((problems + 1))
	elif [ "$plan" -ne $((passed + failed)) ]; then
		echo "run-vm.sh: TAP plan says $plan tests, saw $((passed + failed))"
		problems=$((problems + 1))
	fi
	grep -q '^# passed: [0-9]* failed: [0-9]*' "$tap" || {
		echo "run-vm.sh: no TAP summary in $tap"
		problems=$((problems + 1))
	}
fi
echo "run-vm.sh: VM run took ${elapsed}s; console log $console_log, results $tap"
echo "$passed passed, $((failed + problems)) failed"
[ $((failed + problems)) -eq 0 ]
