#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Runs every selftests/tests/NN-*.sh group in order as one TAP 13 stream.
# Usage (inside the VM): sh /selftests/run_tests.sh [GROUP-NAME-SUBSTRING...]
# [KEY=VALUE...]; KEY=VALUE items are exported to the groups (knobs such as
# FUZZ_SECONDS), not group filters.
here=$(dirname "$0")
. "$here/lib.sh"

filters=
for a in "$@"; do
	case "$a" in
	[A-Z]*=*) export "${a?}" ;;
	*) filters="$filters $a" ;;
	esac
done
# shellcheck disable=SC2086
set -- $filters

echo "TAP version 13"
kmemleak_baseline
for t in "$here"/tests/[0-9]*.sh; do
	name=$(basename "$t" .sh)
	if [ $# -gt 0 ]; then
		want=0
		for f in "$@"; do case "$name" in *"$f"*) want=1 ;; esac done
		[ "$want" = 1 ] || continue
	fi
	echo "# group $name"
	# The group is sourced and may set any variable, `name` too.
	_group_name=$name
	_group_t0=$(cut -d. -f1 /proc/uptime)
	. "$t"
	# A group must leave the module unloaded for the next one.
	loaded && rmmod ikos_kalloc
	# Guest seconds per group, to keep `make check` within its time budget.
	echo "# group $_group_name took $(($(cut -d. -f1 /proc/uptime) - _group_t0)) s"
done
kmemleak_check
tap_done
