#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Summarise `cargo bench --features bench --bench alloc` as markdown: ns
per allocator op (criterion's median) and the ratios ikos/glibc and
ikos/mimalloc, for the raw Heap, the per-CPU magazine path and the
GlobalAlloc adapter; then the large_index flatness.

Usage: scripts/bench-ratios.py [CRITERION_DIR]   (default target/criterion)
"""

import json
import os
import sys

WORKLOADS = ["pair64", "pair64_warm", "batch64", "random", "pair16k", "frag_mix"]
ALLOCS = ["ikos_raw", "ikos_percpu", "ikos_global", "glibc", "mimalloc"]
IKOS = ("ikos_raw", "ikos_percpu", "ikos_global")


def ns_per_op(root, *parts):
    d = os.path.join(root, *parts, "new")
    try:
        with open(os.path.join(d, "estimates.json")) as f:
            median = json.load(f)["median"]["point_estimate"]
        with open(os.path.join(d, "benchmark.json")) as f:
            tp = json.load(f).get("throughput") or {}
    except (OSError, KeyError, ValueError):
        return None
    ops = tp.get("Elements") or 1
    return median / ops


def fmt(x, digits=1):
    return "-" if x is None else f"{x:.{digits}f}"


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"
    print("| workload | ikos raw ns/op | ikos percpu ns/op | ikos global ns/op | glibc ns/op "
          "| mimalloc ns/op | raw/glibc | raw/mimalloc | percpu/glibc | percpu/mimalloc "
          "| global/glibc | global/mimalloc |")
    print("|---|" + "---:|" * 11)
    for w in WORKLOADS:
        t = {a: ns_per_op(root, w, a) for a in ALLOCS}
        cells = [fmt(t[a]) for a in ALLOCS]
        cells += [fmt(ratio(t[i], t[o]), 2) + "x"
                  for i in IKOS for o in ("glibc", "mimalloc")]
        print(f"| {w} | " + " | ".join(cells) + " |")
    print()
    print("| free blocks in the index | ikos raw ns/op (alloc+free of 4,200 B, per op) |")
    print("|---:|---:|")
    vals = []
    for n in ("10", "1000", "100000"):
        v = ns_per_op(root, "large_index", "ikos_raw", n)
        vals.append(v)
        print(f"| {int(n):,} | {fmt(v)} |")
    if all(v is not None for v in vals):
        print()
        print(f"max/min over the three: {max(vals) / min(vals):.2f}x; "
              f"100,000 vs 10: {vals[2] / vals[0]:.2f}x")


if __name__ == "__main__":
    main()
