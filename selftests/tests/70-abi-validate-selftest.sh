# SPDX-License-Identifier: GPL-2.0
# validate and selftest files, selftest_on_load, and the accepted alloc flags.

E70_KEYS="blocks_checked free_blocks used_blocks slabs_checked objects_checked free_list_links slab_free_links pages_checked bytes_accounted magazine_objects_checked"

dmesg_mark
expect_eq "validate: load (selftest_on_load default)" OK "$(load)"
expect_eq "validate: first line 'ok' on a fresh heap" ok "$(head -n 1 "$KALLOC_DIR/validate")"
expect_eq "validate: keys in documented order" "$E70_KEYS" \
	"$(sed 1d "$KALLOC_DIR/validate" | sed 's/:.*//' | tr '\n' ' ' | sed 's/ $//')"
check "validate: lines after 'ok' are 'key: integer'" \
	sh -c "! sed 1d $KALLOC_DIR/validate | grep -vE '^[a-z_]+: [0-9]+$'"
check "validate: blocks_checked >= 1" \
	[ "$(sed -n 's/^blocks_checked: //p' "$KALLOC_DIR/validate")" -ge 1 ]

expect_eq "selftest: plan 1..8 after load" "1..8" "$(head -n 1 "$KALLOC_DIR/selftest")"
expect_eq "selftest: 8 'ok' lines, no 'not ok'" "8 0" \
	"$(grep -c '^ok [1-8] ' "$KALLOC_DIR/selftest") $(grep -c '^not ok' "$KALLOC_DIR/selftest")"
expect_eq "selftest: summary line" "# passed: 8 failed: 0" "$(tail -n 1 "$KALLOC_DIR/selftest")"
check "selftest: dmesg has 'KALLOC: All tests completed successfully'" \
	dmesg_has "KALLOC: All tests completed successfully"

expect_write "selftest: fixture alloc 1 100" OK "$KALLOC_DIR/alloc" "1 100"
snapshot
e70_before=$snap
e70_allocs=$(stat total_allocs)
dmesg_mark
expect_write "selftest: echo run > selftest" OK "$KALLOC_DIR/selftest" "run"
expect_eq "selftest: run leaves total_allocs of the main heap unchanged" "$e70_allocs" "$(stat total_allocs)"
snapshot
expect_eq "selftest: run leaves main heap counters, handles and caches unchanged" "$e70_before" "$snap"
check "selftest: run logged 'All tests completed successfully'" \
	dmesg_has "KALLOC: All tests completed successfully"
expect_eq "selftest: TAP after run: plan and summary" "1..8|# passed: 8 failed: 0" \
	"$(head -n 1 "$KALLOC_DIR/selftest")|$(tail -n 1 "$KALLOC_DIR/selftest")"
check "validate: ok after a self-test run" validate_ok
expect_eq "selftest: rmmod" OK "$(unload)"

dmesg_mark
expect_eq "selftest: load with selftest_on_load=0" OK "$(load selftest_on_load=0)"
expect_eq "selftest: reads '# no self-test run yet'" "# no self-test run yet" "$(cat "$KALLOC_DIR/selftest")"
check "selftest: no self-test ran at load" sh -c "! dmesg | grep -q 'KALLOC: All tests'"

# Flags: zero, atomic and high are accepted, alone and combined, small and large.
expect_write "flags: zero,atomic,high" OK "$KALLOC_DIR/alloc" "1 64 8 zero,atomic,high"
expect_write "flags: atomic" OK "$KALLOC_DIR/alloc" "2 64 8 atomic"
expect_write "flags: high" OK "$KALLOC_DIR/alloc" "3 64 8 high"
expect_write "flags: zero,atomic,high on a large block" OK "$KALLOC_DIR/alloc" "4 10000 64 zero,atomic,high"
expect_write "flags: high,zero (any order)" OK "$KALLOC_DIR/alloc" "5 300 8 high,zero"
expect_eq "flags: the 5 handles are listed" "1 2 3 4 5" \
	"$(awk 'NR > 1 { printf "%s%s", s, $1; s = " " }' "$KALLOC_DIR/handles")"
expect_write "flags: zero handle 1 reads 0" OK "$KALLOC_DIR/verify" "1 0"
expect_write "flags: zero handle 4 reads 0" OK "$KALLOC_DIR/verify" "4 0"
expect_eq "flags: stats counts the 5 allocations" "5 5" "$(stat total_allocs) $(stat active_allocs)"
check "validate: ok with live handles" validate_ok
check "validate: used_blocks >= 1 with a large block live" \
	[ "$(sed -n 's/^used_blocks: //p' "$KALLOC_DIR/validate")" -ge 1 ]
expect_eq "validate: reading validate changes no counter" "0 5" "$(stat corruptions) $(stat total_allocs)"
expect_eq "flags: rmmod" OK "$(unload)"
