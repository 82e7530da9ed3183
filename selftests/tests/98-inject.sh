# SPDX-License-Identifier: GPL-2.0
# Corruption injection (fault_injection=1): each kind of damage is found by
# validate with a precise message and by the next operation touching it,
# which fails with EIO instead of following it; corruptions counts it; the
# damaged heap still unloads cleanly. The cases load with percpu=0: the
# per-CPU fast path checks only the page map and the slab bitmap (like SLUB
# without slub_debug=F), so with it a damaged slab header is found by
# validate and by the next locked operation on that slab, not by every free.

expect_eq "inject: load without fault_injection" OK "$(load selftest_on_load=0)"
check "inject: no inject file by default" test ! -e "$KALLOC_DIR/inject"
unload >/dev/null

# e98_off ID: offset of handle ID (from `handles`).
e98_off() { awk -v id="$1" '$1 == id { print $6 }' "$KALLOC_DIR/handles"; }
e98_hex() { printf '%#x' "$1"; }
e98_tried=0
e98_found=0

# e98_case NAME SETUP-LINES INJECT EXPECT-PROBLEM NEXT-FILE NEXT-LINE
#   SETUP-LINES: `file:line;file:line...`. EXPECT-PROBLEM is matched
#   against the validate `problem:` line (after @OFF@ expansion by the
#   caller). The next operation must fail with EIO.
e98_case() {
	e98_tried=$((e98_tried + 1))
	dmesg_mark
	[ "$(load fault_injection=1 selftest_on_load=0 percpu=0)" = OK ] || { fail "inject: $1: load"; return; }
	ok=1
	old_ifs=$IFS
	IFS=';'
	for s in $2; do
		IFS=$old_ifs
		kw "$KALLOC_DIR/${s%%:*}" "${s#*:}" || ok=0
	done
	IFS=$old_ifs
	[ $ok = 1 ] || fail "inject: $1: setup $2"
	e98_a=$(e98_off 1) e98_b=$(e98_off 2)
	expect_write "inject: $1: echo '$3' > inject" OK "$KALLOC_DIR/inject" "$3"
	want=$(echo "$4" | sed "s/@A@/$(e98_hex $((${e98_a:-0} - 16)))/; s/@B@/$(e98_hex $((${e98_b:-0} - 16)))/")
	v=$(cat "$KALLOC_DIR/validate")
	expect_eq "inject: $1: validate says corrupt" corrupt "$(echo "$v" | head -n 1)"
	problem=$(echo "$v" | sed -n 's/^problem: //p')
	case "$problem" in
	*"$want"*) pass "inject: $1: problem names it: $problem" ; p_ok=1 ;;
	*) fail "inject: $1: problem names it" "want '$want', got '$problem'" ; p_ok=0 ;;
	esac
	c1=$(stat corruptions)
	kwrite_v "$KALLOC_DIR/$5" "$6"
	expect_eq "inject: $1: next operation ($5 $6) fails with EIO" EIO "$errno"
	n_ok=$([ "$errno" = EIO ] && echo 1 || echo 0)
	c2=$(stat corruptions)
	check "inject: $1: corruptions counts validate and the operation ($c1 -> $c2)" \
		[ "$c1" -ge 1 -a "$c2" -gt "$c1" ]
	check "inject: $1: dmesg logged the injection" dmesg_has "ikos_kalloc: inject: "
	# A refused free keeps its handle: the allocator still counts it live.
	expect_eq "inject: $1: active_allocs still equals the handle count" \
		"$(handles_count)" "$(stat active_allocs)"
	[ $p_ok = 1 ] && [ $n_ok = 1 ] && [ "$c2" -gt "$c1" ] && e98_found=$((e98_found + 1))
	expect_eq "inject: $1: rmmod of the damaged heap" OK "$(unload)"
	check "inject: $1: exit reported the damage" dmesg_has "ikos_kalloc: exit: "
	check "inject: $1: module gone" sh -c "! grep -q '^ikos_kalloc ' /proc/modules"
}

e98_case "header of a large block" "alloc:1 10000;alloc:2 10000" "header 1" \
	"bad block magic at offset @A@" free 1
e98_case "header of a slab object" "alloc:1 64;alloc:2 64" "header 1" \
	"bad slab magic" free 1
e98_case "boundary tag after a large block" "alloc:1 10000;alloc:2 10000" "boundary 1" \
	"boundary tag mismatch at offset @B@" free 1
e98_case "boundary tag after a slab span" "alloc:1 64" "boundary 1" \
	"boundary tag mismatch" free 1
e98_case "free-list link of a freed large block" "alloc:1 10000;alloc:2 10000" "freelist 1" \
	"free-list link out of bounds at offset @A@" alloc "3 9000"
e98_case "free-list link of a freed slab object" "alloc:1 64;alloc:2 64;alloc:3 64" "freelist 2" \
	"slab free-list damage" alloc "4 64"
e98_case "overflow into the next block header" "alloc:1 10000;alloc:2 10000" "overflow 1 16" \
	"bad block magic at offset @B@" free 2
e98_case "overflow into a free slab object" "alloc:1 64;alloc:2 64;free:2" "overflow 1 4" \
	"slab free-list damage" alloc "3 64"
echo "# inject: detected $e98_found of $e98_tried injections" | tee /dev/kmsg
expect_eq "inject: every injection detected" "$e98_tried" "$e98_found"

# Refusals: no such handle, bad lengths, unknown kinds; the heap is untouched.
expect_eq "inject: load for refusals" OK "$(load fault_injection=1 selftest_on_load=0)"
expect_write "inject: fixture alloc 1 64" OK "$KALLOC_DIR/alloc" "1 64"
expect_write "inject: unknown handle is ENOENT" ENOENT "$KALLOC_DIR/inject" "header 99"
expect_write "inject: overflow 0 is EINVAL" EINVAL "$KALLOC_DIR/inject" "overflow 1 0"
expect_write "inject: overflow 4097 is EINVAL" EINVAL "$KALLOC_DIR/inject" "overflow 1 4097"
expect_write "inject: unknown kind is EINVAL" EINVAL "$KALLOC_DIR/inject" "poison 1"
expect_write "inject: missing ID is EINVAL" EINVAL "$KALLOC_DIR/inject" "header"
check "inject: refusals left the heap valid" validate_ok
expect_eq "inject: refusals counted no corruption" 0 "$(stat corruptions)"
expect_eq "inject: rmmod" OK "$(unload)"
