# SPDX-License-Identifier: GPL-2.0
# The KUnit suite ikos_kalloc (selftests/modules/ikos_kalloc_kunit.rs): the
# self-tests as KUnit cases, which KUnit runs when the module loads. The
# KTAP is read back from KUnit's debugfs file; the cases must be the
# self-tests of ikos_kalloc's `selftest` file, in the same order. A second
# load with fail_case=N shows that a failing self-test reaches KUnit as
# `not ok`, with its reason in dmesg.

E72_RESULTS=/sys/kernel/debug/kunit/ikos_kalloc/results

expect_eq "kunit: load ikos_kalloc (for the self-test names)" OK "$(load)"
# shellcheck disable=SC2046
e72_names=$(echo $(sed -n 's/^ok [0-9]* //p' "$KALLOC_DIR/selftest"))
e72_count=$(echo "$e72_names" | wc -w)
expect_eq "kunit: ikos_kalloc's selftest file lists 8 self-tests" 8 "$e72_count"
expect_eq "kunit: unload ikos_kalloc" OK "$(unload)"

# e72_cases PATTERN: the names of the suite's cases whose KTAP line starts
# with PATTERN (`ok` or `not ok`), space-separated, in order.
e72_cases() {
	# shellcheck disable=SC2046
	echo $(sed -n "s/^    $1 [0-9]* //p" "$E72_RESULTS")
}

dmesg_mark
e72_err=$(insmod /modules/ikos_kalloc_kunit.ko 2>&1)
expect_eq "kunit: ikos_kalloc_kunit loads" OK "$(errno_name "$e72_err")"
check "kunit: KUnit's results file exists" [ -r "$E72_RESULTS" ]
expect_eq "kunit: results are KTAP with one suite" "KTAP version 1|1..1" \
	"$(sed -n 1p "$E72_RESULTS")|$(sed -n 2p "$E72_RESULTS")"
expect_eq "kunit: suite ikos_kalloc plans one case per self-test" "# Subtest: ikos_kalloc|1..$e72_count" \
	"$(sed -n 's/^    \(# Subtest: .*\)/\1/p' "$E72_RESULTS")|$(sed -n 's/^    \(1\.\.[0-9]*\)$/\1/p' "$E72_RESULTS")"
expect_eq "kunit: every case passed, named and ordered as the self-tests" "$e72_names" "$(e72_cases ok)"
expect_eq "kunit: no case failed" "" "$(e72_cases 'not ok')"
expect_eq "kunit: suite totals" "# ikos_kalloc: pass:$e72_count fail:0 skip:0 total:$e72_count" \
	"$(grep '^# ikos_kalloc: ' "$E72_RESULTS")"
expect_eq "kunit: suite result" "ok 1 ikos_kalloc" "$(tail -n 1 "$E72_RESULTS")"
check "kunit: dmesg has the suite's ok line" dmesg_has "\] ok [0-9]* ikos_kalloc$"
check "kunit: no self-test failure logged" sh -c "! dmesg | grep -q 'ikos_kalloc_kunit: self-test'"
check "kunit: ikos_kalloc_kunit unloads" rmmod ikos_kalloc_kunit
check "kunit: results file gone after rmmod" [ ! -e "$E72_RESULTS" ]

# A failure must reach KUnit: fail_case=3 skews the accounting of case 3's
# scratch heap, so its post-test validate() fails; the other cases pass.
dmesg_mark
e72_err=$(insmod /modules/ikos_kalloc_kunit.ko fail_case=3 2>&1)
expect_eq "kunit: fail_case=3 loads (a failed case does not fail the load)" OK "$(errno_name "$e72_err")"
e72_third=$(echo "$e72_names" | cut -d' ' -f3)
expect_eq "kunit: fail_case=3: only the third self-test failed" "$e72_third" "$(e72_cases 'not ok')"
expect_eq "kunit: fail_case=3: the others passed" "$(echo "$e72_names" | cut -d' ' -f1,2,4-)" \
	"$(e72_cases ok)"
expect_eq "kunit: fail_case=3: suite totals" \
	"# ikos_kalloc: pass:$((e72_count - 1)) fail:1 skip:0 total:$e72_count" \
	"$(grep '^# ikos_kalloc: ' "$E72_RESULTS")"
expect_eq "kunit: fail_case=3: suite result" "not ok 1 ikos_kalloc" "$(tail -n 1 "$E72_RESULTS")"
check "kunit: fail_case=3: dmesg names the case and why it failed" \
	dmesg_has "ikos_kalloc_kunit: self-test 3 ($e72_third) failed: heap invalid after the test"
check "kunit: fail_case=3: ikos_kalloc_kunit unloads" rmmod ikos_kalloc_kunit
