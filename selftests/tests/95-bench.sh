# SPDX-License-Identifier: GPL-2.0
# The in-kernel benchmark file: runs, reports every workload, leaks nothing.
expect_eq "bench: load" OK "$(load)"
check "bench: reads 'no run yet' before a run" grep -q "no benchmark run yet" "$KALLOC_DIR/bench"
bench_allocs0=$(stat total_allocs)
expect_write "bench: run 2000" OK "$KALLOC_DIR/bench" "run 2000"
expect_eq "bench: seven workload rows" 7 "$(grep -cE '^(pair64|batch64|random8-4096|pair16k|mixed-frag|mixed-small|mixed-large) ' "$KALLOC_DIR/bench")"
expect_eq "bench: no allocation failed on either side" 0 \
	"$(awk '/^(pair64|batch64|random8-4096|pair16k|mixed-frag|mixed-small|mixed-large) / { f += $6 + $7 } END { print f + 0 }' "$KALLOC_DIR/bench")"
check "bench: ratios are numbers" sh -c "awk '/^pair64 / { exit !(\$5 ~ /^[0-9]+\\.[0-9][0-9]\$/) }' $KALLOC_DIR/bench"
check "bench: the heap was really used" test "$(stat total_allocs)" -gt "$((bench_allocs0 + 5000))"
expect_eq "bench: nothing left allocated" 0 "$(stat active_allocs)"
check "bench: heap still valid" sh -c "head -n 1 $KALLOC_DIR/validate | grep -qx ok"
expect_write "bench: run 10 (too few) is EINVAL" EINVAL "$KALLOC_DIR/bench" "run 10"
expect_write "bench: unknown command is EINVAL" EINVAL "$KALLOC_DIR/bench" "walk"
expect_eq "bench: unload" OK "$(unload)"
