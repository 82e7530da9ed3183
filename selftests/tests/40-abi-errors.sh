# SPDX-License-Identifier: GPL-2.0
# ABI errors: every errno of the debugfs ABI, and that a rejected write changes nothing.

# e40_rej NAME ERRNO FILE LINE: LINE (plus newline) written to FILE fails
# with ERRNO and leaves counters, handles and caches as they were.
e40_rej() {
	snapshot
	e40_before=$snap
	expect_write "errors: $1 -> $2" "$2" "$KALLOC_DIR/$3" "$4"
	snapshot
	expect_eq "errors: $1 changed nothing" "$e40_before" "$snap"
}
# e40_rej_raw NAME ERRNO FILE ESCAPED: the same with raw `echo -ne` bytes.
e40_rej_raw() {
	snapshot
	e40_before=$snap
	expect_eq "errors: $1 -> $2" "$2" "$(kwrite_raw "$KALLOC_DIR/$3" "$4")"
	snapshot
	expect_eq "errors: $1 changed nothing" "$e40_before" "$snap"
}
# e40_rej_counted NAME ERRNO FILE LINE KEY WHAT: e40_rej, and the stats
# counter KEY went up by exactly one (check name "errors: WHAT").
e40_rej_counted() {
	stat_v "$5"
	e40_count=$sv
	e40_rej "$1" "$2" "$3" "$4"
	expect_eq "errors: $6" $((e40_count + 1)) "$(stat "$5")"
}
# e40_dd FILE: writes the file /tmp/e40.line to FILE in one write(2).
e40_dd() {
	err=$(dd if=/tmp/e40.line of="$1" bs=8192 count=1 2>&1 >/dev/null | grep -v records)
	errno_name "$err"
}

dmesg_mark
expect_eq "errors: load" OK "$(load)"
check "errors: stats lines are all 'key: integer'" \
	sh -c "! grep -vE '^[a-z_]+: [0-9]+$' $KALLOC_DIR/stats"
expect_eq "errors: stats keys in documented order" \
	"heap_size used_bytes free_bytes requested_bytes usable_bytes overhead_bytes largest_free_block fragmentation_pct total_allocs total_frees active_allocs failed_allocs double_frees invalid_frees corruptions slabs_total slabs_empty slabs_partial slabs_full metadata_bytes wrong_cache_frees dma_refusals requested_total usable_total object_reuses reuse_pct large_allocs slab_bytes magazine_objects magazine_bytes depot_objects fast_allocs fast_frees magazine_refills magazine_drains redzone_errors poison_errors sanity_errors" \
	"$(sed 's/:.*//' "$KALLOC_DIR/stats" | tr '\n' ' ' | sed 's/ $//')"

# Fixtures: live handle 1 filled with 0xaa, a custom cache `busy` with a live object.
expect_write "errors: fixture alloc 1 64" OK "$KALLOC_DIR/alloc" "1 64"
expect_write "errors: fixture fill 1 0xaa" OK "$KALLOC_DIR/fill" "1 0xaa"
expect_write "errors: fixture create cache busy" OK "$KALLOC_DIR/caches" "create busy 64"
expect_write "errors: fixture alloc 2 cache=busy" OK "$KALLOC_DIR/alloc" "2 cache=busy"

# A rejection logs one documented line.
dmesg_mark
e40_rej "alloc missing size" EINVAL alloc "100"
check "errors: rejection logged as 'ikos_kalloc: alloc: rejected (EINVAL)'" \
	dmesg_has "ikos_kalloc: alloc: rejected (EINVAL): "

# alloc syntax.
e40_rej "alloc empty line" EINVAL alloc ""
e40_rej "alloc extra token" EINVAL alloc "100 64 8 zero extra"
e40_rej "alloc non-number size" EINVAL alloc "100 abc"
e40_rej "alloc non-number ID" EINVAL alloc "x1 64"
e40_rej "alloc negative size" EINVAL alloc "100 -1"
e40_rej "alloc plus sign" EINVAL alloc "100 +64"
e40_rej "alloc size u64 overflow" EINVAL alloc "100 18446744073709551616"
e40_rej "alloc ID u64 overflow" EINVAL alloc "18446744073709551616 64"
e40_rej "alloc empty hex number" EINVAL alloc "100 0x"
e40_rej "alloc size 0" EINVAL alloc "100 0"
e40_rej "alloc align 3" EINVAL alloc "100 64 3"
e40_rej "alloc align 0" EINVAL alloc "100 64 0"
e40_rej "alloc unknown flag" EINVAL alloc "100 64 8 bogus"
e40_rej "alloc uppercase flag" EINVAL alloc "100 64 8 ZERO"
e40_rej "alloc bad cache name" EINVAL alloc "100 cache=a/b"

# alloc semantic errors.
e40_rej "alloc of a live ID" EEXIST alloc "1 64"
e40_rej_counted "alloc larger than the heap" ENOMEM alloc "100 16777216" \
	failed_allocs "ENOMEM counted once in failed_allocs"
e40_rej_counted "alloc dma" EOPNOTSUPP alloc "100 64 8 dma" \
	dma_refusals "dma counted once in dma_refusals"
e40_rej "alloc dma among other flags" EOPNOTSUPP alloc "100 64 8 zero,dma"
e40_rej "alloc cache=nosuch" ENOENT alloc "100 cache=nosuch"

# free / fill / verify.
e40_rej "free unknown ID" ENOENT free "999"
e40_rej "free extra token" EINVAL free "1 2"
e40_rej "free empty line" EINVAL free ""
e40_rej "fill unknown ID" ENOENT fill "999 1"
e40_rej "verify unknown ID" ENOENT verify "999 1"
e40_rej "fill BYTE 256" EINVAL fill "1 256"
e40_rej "fill BYTE -1" EINVAL fill "1 -1"
e40_rej "fill missing BYTE" EINVAL fill "1"
expect_write "errors: handle 1 still holds 0xaa after the rejected fills" OK "$KALLOC_DIR/verify" "1 0xaa"
dmesg_mark
e40_rej "verify mismatch" EIO verify "1 0x55"
check "errors: verify mismatch logged as a 'verify: rejected' line" \
	dmesg_has "ikos_kalloc: verify: rejected ("
e40_rej "verify BYTE 256" EINVAL verify "1 256"

# realloc.
e40_rej "realloc unknown ID" ENOENT realloc "999 100"
e40_rej "realloc size 0" EINVAL realloc "1 0"
e40_rej "realloc missing size" EINVAL realloc "1"
e40_rej "realloc extra token" EINVAL realloc "1 100 8"
e40_rej "realloc of a custom cache's object" EINVAL realloc "2 100"
e40_rej_counted "realloc larger than the heap" ENOMEM realloc "1 16777216" \
	failed_allocs "realloc ENOMEM counted once in failed_allocs"
expect_write "errors: handle 1 still holds 0xaa after the rejected reallocs" OK "$KALLOC_DIR/verify" "1 0xaa"

# caches (destroy size-64 first: it must not depend on the create below).
e40_rej "caches destroy size-64" EINVAL caches "destroy size-64"
e40_rej "caches create duplicate" EEXIST caches "create busy 64"
e40_rej "caches create size-64" EEXIST caches "create size-64 64"
e40_rej "caches create name a/b" EINVAL caches "create a/b 64"
e40_rej "caches create 40-char name" EINVAL caches "create aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 64"
e40_rej "caches create size 0" EINVAL caches "create zsize 0"
e40_rej "caches create align 3" EINVAL caches "create zalign 64 3"
e40_rej "caches create missing size" EINVAL caches "create zmiss"
e40_rej "caches unknown command" EINVAL caches "frobnicate busy"
e40_rej "caches destroy unknown" ENOENT caches "destroy nosuch"
e40_rej "caches destroy busy" EBUSY caches "destroy busy"

# selftest.
e40_rej "selftest bogus" EINVAL selftest "bogus"
e40_rej "selftest run extra token" EINVAL selftest "run now"

# Line-level rules: length, NUL, control characters, UTF-8, newline.
printf '200 64%4089s\n' '' >/tmp/e40.line
expect_eq "errors: 4096-byte line (with newline) is accepted" OK "$(e40_dd "$KALLOC_DIR/alloc")"
expect_eq "errors: the 4096-byte line allocated handle 200" 1 "$(grep -c '^200 64 ' "$KALLOC_DIR/handles")"
expect_write "errors: free 200" OK "$KALLOC_DIR/free" "200"
printf '200 64%4090s\n' '' >/tmp/e40.line
snapshot
e40_before=$snap
expect_eq "errors: 4097-byte line -> EINVAL" EINVAL "$(e40_dd "$KALLOC_DIR/alloc")"
snapshot
expect_eq "errors: 4097-byte line changed nothing" "$e40_before" "$snap"
printf '200 64%4994s\n' '' >/tmp/e40.line
snapshot
e40_before=$snap
expect_eq "errors: 5000-byte line -> EINVAL" EINVAL "$(e40_dd "$KALLOC_DIR/alloc")"
snapshot
expect_eq "errors: 5000-byte line changed nothing" "$e40_before" "$snap"
rm -f /tmp/e40.line
e40_rej_raw "embedded NUL x\\0y" EINVAL alloc 'x\0y'
e40_rej_raw "NUL after a valid command" EINVAL alloc '200 64\0\n'
e40_rej_raw "carriage return" EINVAL alloc '200 64\r\n'
e40_rej_raw "non-UTF-8 byte 0xff" EINVAL alloc '\0377'
e40_rej_raw "non-UTF-8 byte after a valid command" EINVAL alloc '200 64 \0377\n'
e40_rej_raw "two newlines" EINVAL alloc '200 64\n\n'
e40_rej_raw "NUL in caches" EINVAL caches 'create x\0y 64\n'
expect_eq "errors: alloc without trailing newline works" OK "$(kwrite_raw "$KALLOC_DIR/alloc" '201 64')"
expect_eq "errors: tab-separated alloc works" OK "$(kwrite_raw "$KALLOC_DIR/alloc" '202\t64\n')"
expect_write "errors: hex ID and size work" OK "$KALLOC_DIR/alloc" "0xcb 0x40"
expect_eq "errors: handles 201, 202, 203 are listed with size 64" "201 202 203" \
	"$(awk '$2 == 64 && $1 >= 201 && $1 <= 203 { printf "%s%s", s, $1; s = " " }' "$KALLOC_DIR/handles")"
expect_eq "errors: free without trailing newline works" OK "$(kwrite_raw "$KALLOC_DIR/free" '201')"

check "errors: heap still validates" validate_ok
check "errors: stats still all 'key: integer' lines" \
	sh -c "! grep -vE '^[a-z_]+: [0-9]+$' $KALLOC_DIR/stats"
expect_eq "errors: active_allocs == total_allocs - total_frees" \
	$(($(stat total_allocs) - $(stat total_frees))) "$(stat active_allocs)"
expect_eq "errors: rmmod with live handles" OK "$(unload)"
