# SPDX-License-Identifier: GPL-2.0
# Debug flags (`debug=` Z red zones, P poisoning, U owner tracking, F sanity
# checks): the parameter, per-cache switching through `caches`, detection
# of overflows and writes after free provoked with `scribble`
# (fault_injection=1), the `leaks` file and the unload summary.

# e93_off ID / e93_usable ID: offset and usable size of handle ID.
e93_off() { awk -v id="$1" '$1 == id { print $6 }' "$KALLOC_DIR/handles"; }
e93_usable() { awk -v id="$1" '$1 == id { print $4 }' "$KALLOC_DIR/handles"; }
e93_hex() { printf '%#x' "$1"; }
# e93_col NAME COLUMN: one column (by header name) of the caches row NAME.
e93_col() {
	awk -v n="$1" -v c="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i }
		$1 == n { print $k }' "$KALLOC_DIR/caches"
}
e93_problem() { sed -n 's/^problem: //p' "$KALLOC_DIR/validate"; }

# --- the parameter --------------------------------------------------------
dmesg_mark
expect_eq "debug: debug=ZX fails with EINVAL" EINVAL "$(load debug=ZX)"
check "debug: debug=ZX logs one clear line" dmesg_has "debug=ZX rejected: 'X' is not one of Z"
check "debug: debug=ZX leaves no module" sh -c "! grep -q '^ikos_kalloc ' /proc/modules"
expect_eq "debug: lowercase debug=z fails with EINVAL" EINVAL "$(load debug=z)"
expect_eq "debug: debug=ZPUFZPUFZPUFZPUFZ (too long) fails" OTHER "$(load debug=ZPUFZPUFZPUFZPUFZ | sed 's/(.*//')"
expect_eq "debug: debug=- loads" OK "$(load debug=- selftest_on_load=0)"
expect_eq "debug: debug=- gives every cache '-'" "-" \
	"$(awk 'NR > 1 { print $12 }' "$KALLOC_DIR/caches" | sort -u | tr '\n' ' ' | sed 's/ $//')"
check "debug: no scribble file without fault_injection" test ! -e "$KALLOC_DIR/scribble"
unload >/dev/null

dmesg_mark
expect_eq "debug: load debug=ZPUF fault_injection=1" OK "$(load debug=ZPUF fault_injection=1)"
check "debug: dmesg says debug=ZPUF" dmesg_has "ikos_kalloc: loaded: heap of [0-9]* bytes, debug=ZPUF"
expect_eq "debug: /sys/module parameter reads ZPUF" ZPUF "$(cat /sys/module/ikos_kalloc/parameters/debug)"
expect_eq "debug: all 10 built-in caches ZPUF" "10 ZPUF" \
	"$(awk 'NR > 1 { print $12 }' "$KALLOC_DIR/caches" | sort | uniq -c | awk '{ print $1, $2 }')"
expect_eq "debug: stats ends with the three debug counters, all 0" \
	"redzone_errors: 0 poison_errors: 0 sanity_errors: 0" "$(tail -n 3 "$KALLOC_DIR/stats" | tr '\n' ' ' | sed 's/ $//')"

# --- red zones ------------------------------------------------------------
expect_write "debug: alloc 1 64" OK "$KALLOC_DIR/alloc" "1 64"
expect_write "debug: alloc 2 50" OK "$KALLOC_DIR/alloc" "2 50"
expect_write "debug: alloc 3 10000" OK "$KALLOC_DIR/alloc" "3 10000"
expect_eq "debug: usable sizes are the object sizes (64, size-64 for 50, 10000)" "64 64 10000" \
	"$(e93_usable 1) $(e93_usable 2) $(e93_usable 3)"
expect_write "debug: fill/verify 1 with red zones around" OK "$KALLOC_DIR/fill" "1 0x5a"
expect_write "debug: verify 1" OK "$KALLOC_DIR/verify" "1 0x5a"
check "debug: validate ok before damage" validate_ok
expect_write "debug: scribble past the slot is ERANGE" ERANGE "$KALLOC_DIR/scribble" "1 1000 1"
expect_write "debug: scribble before the slot is ERANGE" ERANGE "$KALLOC_DIR/scribble" "1 -65 1"
expect_write "debug: scribble of no handle is ENOENT" ENOENT "$KALLOC_DIR/scribble" "99 0 1"
expect_write "debug: scribble syntax is EINVAL" EINVAL "$KALLOC_DIR/scribble" "1 0 0"
expect_write "debug: scribble 1 64 4 (overflow into the red zone)" OK "$KALLOC_DIR/scribble" "1 64 4"
o1=$(e93_off 1) o3=$(e93_off 3)
v=$(cat "$KALLOC_DIR/validate")
expect_eq "debug: validate names the red zone, the first bad byte and the bytes found" \
	"red zone overwritten at offset $(e93_hex $((o1 + 64))) (bytes found: 42 42 42 42 cc cc cc)" \
	"$(echo "$v" | sed -n 's/^problem: heap corruption: //p')"
expect_eq "debug: validate names the handle and the byte" "handle: 1 byte: 64" \
	"$(echo "$v" | grep '^handle:')"
dmesg_mark
expect_write "debug: free 1 is refused (EIO)" EIO "$KALLOC_DIR/free" "1"
check "debug: dmesg names handle, byte and bytes found" \
	dmesg_has "ikos_kalloc: handle 1: red zone overwritten at byte 64 of the allocation (bytes found: 42 42 42 42 cc cc cc)"
expect_eq "debug: handle 1 still listed" 1 "$(awk '$1 == 1' "$KALLOC_DIR/handles" | wc -l)"
# A realloc that moves the damaged object fails as its free does, after
# the copy: the new block goes back, the handle keeps the old one.
e93_active=$(stat active_allocs)
expect_write "debug: realloc 1 5000 is refused (EIO): the move's free finds the red zone" EIO \
	"$KALLOC_DIR/realloc" "1 5000"
expect_eq "debug: handle 1 unchanged by the refused realloc" "1 64 $o1" \
	"$(awk '$1 == 1 { print $1, $2, $6 }' "$KALLOC_DIR/handles")"
expect_eq "debug: the refused realloc left no allocation behind" "$e93_active" "$(stat active_allocs)"
expect_write "debug: scribble 2 -1 1 (underflow into the left red zone)" OK "$KALLOC_DIR/scribble" "2 -1 1"
dmesg_mark
expect_write "debug: free 2 is refused (EIO)" EIO "$KALLOC_DIR/free" "2"
check "debug: dmesg says byte -1" dmesg_has "handle 2: red zone overwritten at byte -1 of the allocation (bytes found: 42)"
expect_write "debug: scribble 3 10000 2 (large block overflow)" OK "$KALLOC_DIR/scribble" "3 10000 2"
expect_write "debug: free 3 is refused (EIO)" EIO "$KALLOC_DIR/free" "3"
expect_eq "debug: redzone_errors 5 (validate, 3 frees, the realloc)" 5 "$(stat redzone_errors)"
expect_eq "debug: corruptions counts them too" 5 "$(stat corruptions)"
expect_eq "debug: active_allocs equals the handle count" "$(handles_count)" "$(stat active_allocs)"
# A refused free is a rejection: one documented line, under the rate
# limit of all rejections (the first 100 of a load, then every 10,000th),
# and the handle's damage line only with it.
dmesg_mark
e93_i=0
while [ $e93_i -lt 150 ]; do
	kw "$KALLOC_DIR/free" 1
	e93_i=$((e93_i + 1))
done
e93_rej=$(dmesg | grep -c 'ikos_kalloc: free: rejected (EIO): ')
check "debug: 150 refused frees logged 1 to 100 rejection lines ($e93_rej)" \
	test "$e93_rej" -ge 1 -a "$e93_rej" -le 100
expect_eq "debug: each logged refusal has its damage line" "$e93_rej" \
	"$(dmesg | grep -c 'ikos_kalloc: handle 1: red zone overwritten')"
dmesg_mark
expect_eq "debug: rmmod of the damaged heap" OK "$(unload)"
check "debug: exit summary: 3 tracked allocations still live" \
	dmesg_has "ikos_kalloc: exit: 3 tracked allocations still live at unload (10128 bytes; 3 debugfs handles, 0 other; 3 listed)"
check "debug: exit lists handle 3" dmesg_has "ikos_kalloc: exit: still live: handle:3 3 [0-9]* 10000 large $o3"
check "debug: exit reports the failed frees" dmesg_has "ikos_kalloc: exit: "

# --- poisoning: a write after free ---------------------------------------
expect_eq "debug: load debug=P fault_injection=1" OK "$(load debug=P fault_injection=1 selftest_on_load=0)"
expect_write "debug: P: alloc 1 64" OK "$KALLOC_DIR/alloc" "1 64"
expect_write "debug: P: alloc 2 64" OK "$KALLOC_DIR/alloc" "2 64"
o2=$(e93_off 2)
expect_write "debug: P: scribble 2 8 4 free (write after free)" OK "$KALLOC_DIR/scribble" "2 8 4 free"
expect_eq "debug: P: handle 2 is gone" 0 "$(awk '$1 == 2' "$KALLOC_DIR/handles" | wc -l)"
expect_eq "debug: P: validate names the poison, the byte and the bytes found" \
	"poison overwritten (write after free) at offset $(e93_hex $((o2 + 8))) (bytes found: 42 42 42 42 6b 6b 6b)" \
	"$(e93_problem | sed 's/^heap corruption: //')"
dmesg_mark
expect_write "debug: P: the next alloc of that object fails (EIO)" EIO "$KALLOC_DIR/alloc" "3 64"
check "debug: P: dmesg names the poison" dmesg_has "alloc: rejected (EIO): allocation aborted: heap corruption: poison overwritten"
check "debug: P: validate ok again (poison restored)" validate_ok
expect_write "debug: P: alloc 4 64" OK "$KALLOC_DIR/alloc" "4 64"
expect_eq "debug: P: it reuses the repaired object" "$o2" "$(e93_off 4)"
expect_eq "debug: P: poison_errors 2, corruptions 2, failed_allocs 1" "2 2 1" \
	"$(stat poison_errors) $(stat corruptions) $(stat failed_allocs)"
expect_write "debug: P: alloc 5 10000, 6 10000" OK "$KALLOC_DIR/alloc" "5 10000"
expect_write "debug: P: alloc 6 10000" OK "$KALLOC_DIR/alloc" "6 10000"
o5=$(e93_off 5)
expect_write "debug: P: scribble 5 100 1 free (large block)" OK "$KALLOC_DIR/scribble" "5 100 1 free"
expect_eq "debug: P: validate names the poison in the free large block" \
	"poison overwritten (write after free) at offset $(e93_hex $((o5 + 100))) (bytes found: 42 6b 6b 6b 6b 6b 6b)" \
	"$(e93_problem | sed 's/^heap corruption: //')"
expect_eq "debug: P: rmmod" OK "$(unload)"

# --- sanity checks --------------------------------------------------------
# inject freelist frees handle 2 and breaks its slab free-list link; a free
# of handle 1 in the same slab only looks at the list head without F, with
# F it checks the whole slab first.
for e93_f in - F; do
	expect_eq "debug: load debug=$e93_f fault_injection=1" OK "$(load debug=$e93_f fault_injection=1 selftest_on_load=0)"
	for i in 1 2 3; do kw "$KALLOC_DIR/alloc" "$i 64"; done
	expect_write "debug: $e93_f: inject freelist 2" OK "$KALLOC_DIR/inject" "freelist 2"
	if [ "$e93_f" = F ]; then
		expect_write "debug: F: free 1 is refused (EIO)" EIO "$KALLOC_DIR/free" "1"
		expect_eq "debug: F: sanity_errors 1" 1 "$(stat sanity_errors)"
	else
		expect_write "debug: -: free 1 goes through without F" OK "$KALLOC_DIR/free" "1"
		expect_eq "debug: -: sanity_errors 0" 0 "$(stat sanity_errors)"
	fi
	expect_eq "debug: $e93_f: rmmod" OK "$(unload)"
done

# --- owner tracking: leaks and the unload summary ------------------------
expect_eq "debug: load debug=U" OK "$(load debug=U selftest_on_load=0)"
expect_write "debug: U: alloc 1 64" OK "$KALLOC_DIR/alloc" "1 64"
expect_write "debug: U: alloc 2 20000" OK "$KALLOC_DIR/alloc" "2 20000"
expect_write "debug: U: alloc 7 8" OK "$KALLOC_DIR/alloc" "7 8"
expect_eq "debug: U: leaks header" "# threshold_ms: 0 owner_tracking: on|owner seq age_ms size cache offset" \
	"$(head -n 2 "$KALLOC_DIR/leaks" | tr '\n' '|' | sed 's/|$//')"
expect_eq "debug: U: leaks lists the three handles in address order (owner seq size cache offset)" \
	"handle:1 1 64 size-64 $(e93_off 1)|handle:2 2 20000 large $(e93_off 2)|handle:7 3 8 size-8 $(e93_off 7)" \
	"$(sed -n '3,5p' "$KALLOC_DIR/leaks" | awk '{ print $1, $2, $4, $5, $6 }' | tr '\n' '|' | sed 's/|$//')"
expect_eq "debug: U: leaks summary" "# listed: 3 tracked_live: 3" "$(tail -n 1 "$KALLOC_DIR/leaks")"
expect_write "debug: U: free 7" OK "$KALLOC_DIR/free" "7"
sleep 1
expect_write "debug: U: threshold_ms 100000" OK "$KALLOC_DIR/leaks" "threshold_ms 100000"
expect_eq "debug: U: nothing is 100 s old" "# listed: 0 tracked_live: 2" "$(tail -n 1 "$KALLOC_DIR/leaks")"
expect_write "debug: U: threshold_ms 500" OK "$KALLOC_DIR/leaks" "threshold_ms 500"
expect_eq "debug: U: both are older than 500 ms" "# listed: 2 tracked_live: 2" "$(tail -n 1 "$KALLOC_DIR/leaks")"
check "debug: U: ages are at least 500 ms" \
	sh -c "awk 'NR > 2 && !/^#/ && \$3 < 500 { bad = 1 } END { exit bad }' $KALLOC_DIR/leaks"
expect_write "debug: U: threshold_ms x is EINVAL" EINVAL "$KALLOC_DIR/leaks" "threshold_ms x"
expect_write "debug: U: unknown leaks command is EINVAL" EINVAL "$KALLOC_DIR/leaks" "clear"
dmesg_mark
expect_eq "debug: U: rmmod with 2 live handles" OK "$(unload)"
check "debug: U: exit summary line" \
	dmesg_has "ikos_kalloc: exit: 2 tracked allocations still live at unload (20064 bytes; 2 debugfs handles, 0 other; 2 listed)"
check "debug: U: exit lists handle 2" dmesg_has "ikos_kalloc: exit: still live: handle:2 2 [0-9]* 20000 large"
check "debug: U: exit freed both, heap consistent" dmesg_has "ikos_kalloc: exit: freed 2 live handles, heap consistent"

# --- per-cache switching through `caches` --------------------------------
expect_eq "debug: load with debug=-" OK "$(load debug=- fault_injection=1 selftest_on_load=0)"
expect_eq "debug: leaks says tracking off" "# threshold_ms: 0 owner_tracking: off" "$(head -n 1 "$KALLOC_DIR/leaks")"
expect_write "debug: caches debug size-64 ZPU" OK "$KALLOC_DIR/caches" "debug size-64 ZPU"
expect_eq "debug: size-64 row says ZPU, size-128 says -" "ZPU -" "$(e93_col size-64 debug) $(e93_col size-128 debug)"
expect_write "debug: caches debug nosuch Z is ENOENT" ENOENT "$KALLOC_DIR/caches" "debug nosuch Z"
expect_write "debug: caches debug size-64 X is EINVAL" EINVAL "$KALLOC_DIR/caches" "debug size-64 X"
expect_write "debug: caches debug size-64 (no flags) is EINVAL" EINVAL "$KALLOC_DIR/caches" "debug size-64"
expect_write "debug: create objs 200 64" OK "$KALLOC_DIR/caches" "create objs 200 64"
expect_write "debug: alloc 5 cache=objs (plain)" OK "$KALLOC_DIR/alloc" "5 cache=objs"
expect_eq "debug: plain objs object: usable 256 (the stride)" 256 "$(e93_usable 5)"
expect_write "debug: caches debug objs Z with a live object is EBUSY" EBUSY "$KALLOC_DIR/caches" "debug objs Z"
expect_write "debug: free 5" OK "$KALLOC_DIR/free" "5"
expect_write "debug: caches debug objs ZF (no slab left)" OK "$KALLOC_DIR/caches" "debug objs ZF"
expect_eq "debug: objs row" "objs 200 64 0 0 0 0 0 1 1 0 ZF" "$(grep '^objs ' "$KALLOC_DIR/caches")"
expect_write "debug: alloc 6 cache=objs" OK "$KALLOC_DIR/alloc" "6 cache=objs"
expect_eq "debug: debug objs object: usable 200" 200 "$(e93_usable 6)"
expect_write "debug: alloc 1 64 (size-64, ZPU)" OK "$KALLOC_DIR/alloc" "1 64"
expect_write "debug: alloc 2 128 (size-128, plain)" OK "$KALLOC_DIR/alloc" "2 128"
expect_eq "debug: leaks lists only the size-64 object" "handle:1 64 size-64" \
	"$(sed -n 3p "$KALLOC_DIR/leaks" | awk '{ print $1, $4, $5 }')"
expect_write "debug: caches debug size-64 - while live is EBUSY" EBUSY "$KALLOC_DIR/caches" "debug size-64 -"
expect_write "debug: plain size-128: slot is the object, scribble 2 128 1 is ERANGE" ERANGE "$KALLOC_DIR/scribble" "2 128 1"
expect_write "debug: scribble 6 200 1 (objs red zone)" OK "$KALLOC_DIR/scribble" "6 200 1"
expect_write "debug: free 6 is refused (EIO)" EIO "$KALLOC_DIR/free" "6"
expect_write "debug: free 2 (plain) works" OK "$KALLOC_DIR/free" "2"
expect_write "debug: free 1 works" OK "$KALLOC_DIR/free" "1"
expect_write "debug: caches debug size-64 - after the last free" OK "$KALLOC_DIR/caches" "debug size-64 -"
expect_eq "debug: redzone_errors 1" 1 "$(stat redzone_errors)"
expect_eq "debug: rmmod" OK "$(unload)"
