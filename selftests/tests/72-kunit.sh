# SPDX-License-Identifier: GPL-2.0
# The KUnit suites of selftests/modules/ikos_kalloc_kunit.rs: the self-tests
# as KUnit cases, which KUnit runs when the module loads; `ikos_kalloc` on
# plain heaps, `ikos_kalloc_debug` on heaps with every debug flag on. The
# KTAP is read back from KUnit's debugfs files; the cases must be the
# self-tests of ikos_kalloc's `selftest` file, in the same order. A second
# load with fail_case=N shows that a failing self-test reaches KUnit as
# `not ok`, with its reason in dmesg.

E72_KUNIT=/sys/kernel/debug/kunit
E72_SUITES="ikos_kalloc ikos_kalloc_debug"

expect_eq "kunit: load ikos_kalloc (for the self-test names)" OK "$(load)"
# shellcheck disable=SC2046
e72_names=$(echo $(sed -n 's/^ok [0-9]* //p' "$KALLOC_DIR/selftest"))
e72_count=$(echo "$e72_names" | wc -w)
expect_eq "kunit: ikos_kalloc's selftest file lists 8 self-tests" 8 "$e72_count"
expect_eq "kunit: unload ikos_kalloc" OK "$(unload)"

# e72_cases SUITE PATTERN: the names of SUITE's cases whose KTAP line
# starts with PATTERN (`ok` or `not ok`), space-separated, in order.
e72_cases() {
	# shellcheck disable=SC2046
	echo $(sed -n "s/^    $2 [0-9]* //p" "$E72_KUNIT/$1/results")
}
# e72_totals SUITE: the suite's totals line.
e72_totals() {
	grep "^# $1: " "$E72_KUNIT/$1/results"
}

dmesg_mark
e72_err=$(insmod /modules/ikos_kalloc_kunit.ko 2>&1)
expect_eq "kunit: ikos_kalloc_kunit loads" OK "$(errno_name "$e72_err")"
for s in $E72_SUITES; do
	r=$E72_KUNIT/$s/results
	check "kunit $s: KUnit's results file exists" [ -r "$r" ]
	expect_eq "kunit $s: results are KTAP with one suite" "KTAP version 1|1..1" \
		"$(sed -n 1p "$r")|$(sed -n 2p "$r")"
	expect_eq "kunit $s: one case per self-test" "# Subtest: $s|1..$e72_count" \
		"$(sed -n 's/^    \(# Subtest: .*\)/\1/p' "$r")|$(sed -n 's/^    \(1\.\.[0-9]*\)$/\1/p' "$r")"
	expect_eq "kunit $s: every case passed, named and ordered as the self-tests" \
		"$e72_names" "$(e72_cases "$s" ok)"
	expect_eq "kunit $s: no case failed" "" "$(e72_cases "$s" 'not ok')"
	expect_eq "kunit $s: totals" "# $s: pass:$e72_count fail:0 skip:0 total:$e72_count" \
		"$(e72_totals "$s")"
	expect_eq "kunit $s: suite result" "ok 1 $s" "$(tail -n 1 "$r")"
	check "kunit $s: dmesg has the suite's ok line" dmesg_has "\] ok [0-9]* $s$"
done
check "kunit: no self-test failure logged" sh -c "! dmesg | grep -q 'ikos_kalloc_kunit: self-test'"
check "kunit: ikos_kalloc_kunit unloads" rmmod ikos_kalloc_kunit
check "kunit: results files gone after rmmod" \
	sh -c "! ls $E72_KUNIT/ikos_kalloc/results $E72_KUNIT/ikos_kalloc_debug/results 2>/dev/null"

# A failure must reach KUnit: fail_case=3 skews the accounting of case 3's
# scratch heap in both suites, so its post-test validate() fails; the other
# cases pass.
dmesg_mark
e72_err=$(insmod /modules/ikos_kalloc_kunit.ko fail_case=3 2>&1)
expect_eq "kunit: fail_case=3 loads (a failed case does not fail the load)" OK "$(errno_name "$e72_err")"
e72_third=$(echo "$e72_names" | cut -d' ' -f3)
for s in $E72_SUITES; do
	expect_eq "kunit $s: fail_case=3: only the third self-test failed" "$e72_third" \
		"$(e72_cases "$s" 'not ok')"
	expect_eq "kunit $s: fail_case=3: the others passed" "$(echo "$e72_names" | cut -d' ' -f1,2,4-)" \
		"$(e72_cases "$s" ok)"
	expect_eq "kunit $s: fail_case=3: totals" \
		"# $s: pass:$((e72_count - 1)) fail:1 skip:0 total:$e72_count" "$(e72_totals "$s")"
	expect_eq "kunit $s: fail_case=3: suite result" "not ok 1 $s" \
		"$(tail -n 1 "$E72_KUNIT/$s/results")"
done
check "kunit: fail_case=3: dmesg names the case, the flags and why (plain heap)" \
	dmesg_has "ikos_kalloc_kunit: self-test 3 ($e72_third) with debug flags 0x0 failed: heap invalid after the test"
check "kunit: fail_case=3: dmesg names the case, the flags and why (debug heap)" \
	dmesg_has "ikos_kalloc_kunit: self-test 3 ($e72_third) with debug flags 0xf failed: heap invalid after the test"
check "kunit: fail_case=3: ikos_kalloc_kunit unloads" rmmod ikos_kalloc_kunit
