# SPDX-License-Identifier: GPL-2.0
# Hostile input: kalloc-fuzz writes generated lines (random bytes, lines
# over 4 KiB and 1 MiB, NULs, non-UTF-8, huge/negative/overflowing numbers,
# sizes near usize::MAX, bad alignments, unknown flags and commands,
# whitespace and case variants, valid commands) to every writable file.
# Knobs: FUZZ_SECONDS (default 30), FUZZ_SEED (default: the fixed seed).
e96_secs=${FUZZ_SECONDS:-30}
e96_seed=${FUZZ_SEED:-0}

dmesg_mark
expect_eq "fuzz: load" OK "$(load)"
if ! command -v kalloc-fuzz >/dev/null; then
	fail "fuzz: kalloc-fuzz is in the initramfs (make fuzz-bin)"
else
	e96_rc=0
	kalloc-fuzz fuzz --seconds "$e96_secs" --seed "$e96_seed" >/tmp/fuzz.out 2>/tmp/fuzz.err || e96_rc=$?
	sed 's/^/# /' /tmp/fuzz.out
	head -n 20 /tmp/fuzz.err | sed 's/^/# /'
	# The summary goes to the console log too (seed, lines, errnos).
	cat /tmp/fuzz.out >/dev/kmsg 2>/dev/null
	expect_eq "fuzz: ${e96_secs}s run: no wrong verify result, no unexpected errno" 0 "$e96_rc"
	e96_lines=$(sed -n 's/^kalloc-fuzz: fuzz lines \([0-9]*\) .*/\1/p' /tmp/fuzz.out)
	check "fuzz: lines were written (${e96_lines:-0})" [ "${e96_lines:-0}" -gt 0 ]
	check "fuzz: the 4 KiB limit was hit (EINVAL seen)" grep -q 'EINVAL=' /tmp/fuzz.out
	check "fuzz: valid commands got through (OK seen)" grep -qE 'errno( .*)? OK=[1-9]' /tmp/fuzz.out
fi
check "fuzz: validate ok afterwards" validate_ok
expect_eq "fuzz: active_allocs equals the live handle count" "$(handles_count)" "$(stat active_allocs)"
expect_eq "fuzz: total_allocs - total_frees == active_allocs" "$(stat active_allocs)" \
	"$(($(stat total_allocs) - $(stat total_frees)))"
expect_eq "fuzz: no corruption counted" 0 "$(stat corruptions)"
expect_eq "fuzz: rmmod with the fuzzer's handles" OK "$(unload)"
check "fuzz: exit freed every handle, heap consistent" \
	dmesg_has "ikos_kalloc: exit: freed [0-9]* live handles, heap consistent"
