#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Instructions per fast-path operation of the allocator core, counted by
# callgrind (repeatable, unlike timings). For each size and mode it runs
# `kalloc-fastpath SIZE N MODE` under `valgrind --tool=callgrind` for two N
# and prints (Ir(N2) - Ir(N1)) / (N2 - N1): setup, heap creation and process
# start-up cancel out. One "pair" is one alloc plus one free.
#
# hold=no: the cache is empty between pairs, so each 64 B pair also creates
# and releases a slab (the core's empty-slab policy); hold=yes keeps one
# object of the same size live, which is the steady-state fast path.
# percpu: through a per-CPU magazine (CpuCache), the kernel's fast path
# without its uncontended per-CPU lock. system: the same loop as global on
# the system allocator (glibc), mimalloc the same on mimalloc, for
# comparison. Then the large-block index:
# raw alloc+free pairs of 4,200 B on a 1 GiB heap fragmented with 10, 1,000
# and 100,000 free blocks (holes=K, the fixture of the large_index bench);
# then 64 B batches of 1,000 through a CpuCache (refills, drains, depot).
#
# Usage: scripts/callgrind-fastpath.sh [N1 N2]   (default 10000 110000)
set -euo pipefail
cd "$(dirname "$0")/.."

n1=${1:-10000}
n2=${2:-110000}
[ "$n2" -gt "$n1" ] || { echo "N2 must be larger than N1" >&2; exit 2; }

command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install valgrind)" >&2; exit 2; }
cargo build --release --locked --quiet --features fastpath-mimalloc --bin kalloc-fastpath
bin=target/release/kalloc-fastpath
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Total instructions (Ir) of one run.
ir() {
	valgrind --tool=callgrind --callgrind-out-file="$tmp/out" "$bin" "$@" 2>"$tmp/log" >/dev/null ||
		{ cat "$tmp/log" >&2; exit 1; }
	sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$tmp/out"
}

# per_pair ARGS...: runs kalloc-fastpath ARGS with both N and prints both
# totals and the instructions per pair and per operation.
per_pair() {
	local a b d dn pair op
	a=$(ir "$1" "$n1" "${@:2}")
	b=$(ir "$1" "$n2" "${@:2}")
	d=$((b - a))
	dn=$((n2 - n1))
	# Two decimals with integer arithmetic.
	pair=$((d * 100 / dn))
	op=$((d * 100 / (2 * dn)))
	printf '%14s %14s %9d.%02d %7d.%02d\n' "$a" "$b" \
		$((pair / 100)) $((pair % 100)) $((op / 100)) $((op % 100))
}

printf '%-6s %-8s %-5s %14s %14s %12s %10s\n' size mode hold "Ir(N=$n1)" "Ir(N=$n2)" "Ir/pair" "Ir/op"
for size in 64 16384; do
	for mode in raw global percpu system mimalloc; do
	for hold in no yes; do
		h=()
		[ "$hold" = yes ] && h=(hold)
		printf '%-6s %-8s %-5s ' "$size" "$mode" "$hold"
		per_pair "$size" "$mode" "${h[@]}"
	done
	done
done

echo
printf '%-14s %14s %14s %12s %10s\n' "free blocks" "Ir(N=$n1)" "Ir(N=$n2)" "Ir/pair" "Ir/op"
for k in 10 1000 100000; do
	printf '%-14s ' "$k"
	per_pair 4200 raw "holes=$k"
done

# Batches: rounds of 1,000 allocations and then their frees through a
# CpuCache, so every object goes through a magazine refill and drain (and
# the depot), as in the kernel benchmark's batch64.
echo
printf '%-14s %14s %14s %12s %10s\n' "batch" "Ir(N=$n1)" "Ir(N=$n2)" "Ir/pair" "Ir/op"
printf '%-14s ' "64 B x 1000"
per_pair 64 percpu batch=1000
