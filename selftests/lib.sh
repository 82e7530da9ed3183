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

# errno_v "MESSAGE": maps a libc strerror text (as printed by busybox) to
# its errno name in $errno, so tests can assert the exact errno; errno_name
# prints it.
errno_v() {
	case "$1" in
	*"Invalid argument"*) errno=EINVAL ;;
	*"No such file or directory"*) errno=ENOENT ;;
	*"File exists"*) errno=EEXIST ;;
	*"Cannot allocate memory"* | *"Out of memory"*) errno=ENOMEM ;;
	*"Device or resource busy"* | *"Resource busy"*) errno=EBUSY ;;
	*"Operation not supported"* | *"Not supported"*) errno=EOPNOTSUPP ;;
	*"Input/output error"* | *"I/O error"*) errno=EIO ;;
	*"Bad address"*) errno=EFAULT ;;
	*"Numerical result out of range"*) errno=ERANGE ;;
	"") errno=OK ;;
	*) errno="OTHER($1)" ;;
	esac
}
errno_name() {
	errno_v "$1"
	echo "$errno"
}

# kwrite_v FILE LINE: writes LINE to a debugfs file in one write(2) and sets
# $errno to OK or the errno name of the failure, without forking (forks are
# slow under TCG); kwrite prints it. They use echo, not printf: busybox's
# printf returns 1 on a failed write but prints no error text. LINE must not
# start with -n/-e.
KW_ERR=/tmp/kwrite.err
kwrite_v() {
	err=
	echo "$2" >"$1" 2>"$KW_ERR" || read -r err <"$KW_ERR"
	errno_v "${err:-}"
}
kwrite() {
	kwrite_v "$@"
	echo "$errno"
}

# kwrite_raw FILE ESCAPED: like kwrite, but the bytes come from `echo -ne`
# escapes (\0 for NUL, \0377 for byte 0xff, no implicit newline).
kwrite_raw() {
	err=
	echo -ne "$2" >"$1" 2>"$KW_ERR" || read -r err <"$KW_ERR"
	errno_name "${err:-}"
}

# kw FILE LINE: a quiet write for bulk loops; returns write(2)'s status.
kw() {
	echo "$2" >"$1" 2>/dev/null
}

# expect_write NAME ERRNO FILE LINE: the write must end with ERRNO (or OK).
expect_write() {
	kwrite_v "$3" "$4"
	expect_eq "$1" "$2" "$errno"
}

# stat_v KEY: sets $sv to one value of the stats file (no fork); stat KEY
# prints it.
stat_v() {
	sv=
	while read -r k v; do
		[ "$k" = "$1:" ] && sv=$v && break
	done <"$KALLOC_DIR/stats"
}
stat() {
	stat_v "$1"
	echo "$sv"
}

# snapshot: sets $snap to the allocation counters and byte totals of stats
# plus the handle and cache tables: what a rejected write must not change.
# Builtins only; meant for small tables.
snapshot() {
	snap=
	while read -r l; do
		case "$l" in
		total_allocs:* | total_frees:* | active_allocs:* | used_bytes:* | free_bytes:* | \
			usable_bytes:* | requested_bytes:*) snap="$snap $l" ;;
		esac
	done <"$KALLOC_DIR/stats"
	while read -r l; do snap="$snap|$l"; done <"$KALLOC_DIR/handles"
	while read -r l; do snap="$snap|$l"; done <"$KALLOC_DIR/caches"
}

# handles_count: live handles listed in `handles` (header not counted).
handles_count() {
	echo $(($(wc -l <"$KALLOC_DIR/handles") - 1))
}

# validate_ok: `validate` reports a consistent heap.
validate_ok() {
	[ "$(head -n 1 "$KALLOC_DIR/validate")" = ok ]
}

# load [PARAMS...] / unload: insmod/rmmod printing OK or the errno name.
# The knob LOAD_ARGS (e.g. LOAD_ARGS=debug=ZPUF) is prepended to every
# load's parameters; a group's own `debug=` comes later and wins.
load() {
	# shellcheck disable=SC2086
	err=$(insmod "$KO" ${LOAD_ARGS:-} "$@" 2>&1)
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
# The knob KMEMLEAK=0 skips both scans (the scanner gate's short run, whose
# verdict is its planted warning).
kmemleak_baseline() {
	[ "${KMEMLEAK:-1}" = 0 ] && return 0
	[ -w /sys/kernel/debug/kmemleak ] || return 0
	echo scan >/sys/kernel/debug/kmemleak
	echo clear >/sys/kernel/debug/kmemleak
}
kmemleak_check() {
	if [ "${KMEMLEAK:-1}" = 0 ]; then
		echo "ok $((__n + 1)) kmemleak: no unreferenced objects # SKIP KMEMLEAK=0"
		__n=$((__n + 1))
		return 0
	fi
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
