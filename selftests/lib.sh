# SPDX-License-Identifier: GPL-2.0
#
# TAP 13 helpers for the in-VM selftests (kselftest style), sourced by
# run_tests.sh. Every check prints `ok N name` or `not ok N name`; the plan
# `1..N` and `# passed: N failed: N` come at the end (a trailing plan is valid
# TAP 13).

KALLOC_DIR=/sys/kernel/debug/ikos_kalloc
KO=/modules/ikos_kalloc.ko
__n=0
__fail=0

# pass NAME / fail NAME [DIAG]
pass() {
	__n=$((__n + 1))
	echo "ok $__n $1"
}
fail() {
	__n=$((__n + 1))
	__fail=$((__fail + 1))
	echo "not ok $__n $1"
	[ -n "${2:-}" ] && echo "# $2"
	return 0
}

# check NAME CMD...: passes if CMD exits 0.
check() {
	name=$1
	shift
	if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "$(echo "$out" | head -n 3 | tr '\n' ' ')"; fi
}

# expect_eq NAME EXPECTED ACTUAL
expect_eq() {
	if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "expected '$2', got '$3'"; fi
}

# errno_name "MESSAGE": maps a libc strerror text (as printed by busybox) to
# its errno name, so tests can assert the exact errno.
errno_name() {
	case "$1" in
	*"Invalid argument"*) echo EINVAL ;;
	*"No such file or directory"*) echo ENOENT ;;
	*"File exists"*) echo EEXIST ;;
	*"Cannot allocate memory"* | *"Out of memory"*) echo ENOMEM ;;
	*"Device or resource busy"* | *"Resource busy"*) echo EBUSY ;;
	*"Operation not supported"* | *"Not supported"*) echo EOPNOTSUPP ;;
	*"Input/output error"* | *"I/O error"*) echo EIO ;;
	*"Bad address"*) echo EFAULT ;;
	*"Numerical result out of range"*) echo ERANGE ;;
	"") echo OK ;;
	*) echo "OTHER($1)" ;;
	esac
}

# kwrite FILE LINE: writes LINE to a debugfs file in one write(2) and prints
# OK or the errno name of the failure.
kwrite() {
	err=$( (printf '%s\n' "$2" >"$1") 2>&1)
	errno_name "$err"
}

# expect_write NAME ERRNO FILE LINE: the write must end with ERRNO (or OK).
expect_write() {
	expect_eq "$1" "$2" "$(kwrite "$3" "$4")"
}

# stat KEY: one value of the stats file.
stat() {
	sed -n "s/^$1: //p" "$KALLOC_DIR/stats"
}

# load [PARAMS...] / unload: insmod/rmmod printing OK or the errno name.
load() {
	err=$(insmod "$KO" "$@" 2>&1)
	errno_name "$err"
}
unload() {
	err=$(rmmod ikos_kalloc 2>&1)
	errno_name "$err"
}
loaded() {
	grep -q '^ikos_kalloc ' /proc/modules
}

# dmesg_has PATTERN: the kernel log (since the last dmesg_mark) has PATTERN.
dmesg_mark() {
	dmesg -c >/dev/null
}
dmesg_has() {
	dmesg | grep -q "$1"
}

tap_done() {
	echo "1..$__n"
	echo "# passed: $((__n - __fail)) failed: $__fail"
}

# kmemleak: forget everything allocated before the tests, then after them
# report anything unreferenced. kmemleak ignores objects younger than 5 s.
kmemleak_baseline() {
	[ -w /sys/kernel/debug/kmemleak ] || return 0
	echo scan >/sys/kernel/debug/kmemleak
	echo clear >/sys/kernel/debug/kmemleak
}
kmemleak_check() {
	if ! [ -w /sys/kernel/debug/kmemleak ]; then
		echo "ok $((__n + 1)) kmemleak: no unreferenced objects # SKIP kernel without kmemleak"
		__n=$((__n + 1))
		return 0
	fi
	sleep 6
	echo scan >/sys/kernel/debug/kmemleak
	echo scan >/sys/kernel/debug/kmemleak
	leaks=$(cat /sys/kernel/debug/kmemleak)
	# Print the report on the console too, where the log scanner looks.
	[ -n "$leaks" ] && echo "$leaks" >/dev/console
	expect_eq "kmemleak: no unreferenced objects" 0 "$(echo "$leaks" | grep -c 'unreferenced object')"
}
