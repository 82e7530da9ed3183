# SPDX-License-Identifier: GPL-2.0
# Content integrity: 1,000 mixed handles keep their bytes through fill, free and reallocation; stats and handles agree.

E50_N=1000

# e50_params I PHASE: sets e50_sz, e50_al, e50_fl (the alloc line's tail) and
# e50_byte (the fill byte, never 0) for handle I in PHASE; sizes 8..65536,
# every 7th aligned to 64, every 11th to 4096, every 5th `zero`.
e50_params() {
	case $((($1 + $2 * 3) % 20)) in
	0) e50_sz=8 ;; 1) e50_sz=24 ;; 2) e50_sz=64 ;; 3) e50_sz=100 ;; 4) e50_sz=256 ;;
	5) e50_sz=500 ;; 6) e50_sz=1000 ;; 7) e50_sz=2048 ;; 8) e50_sz=4096 ;; 9) e50_sz=5000 ;;
	10) e50_sz=8192 ;; 11) e50_sz=12000 ;; 12) e50_sz=16 ;; 13) e50_sz=30000 ;; 14) e50_sz=65536 ;;
	15) e50_sz=40 ;; 16) e50_sz=3000 ;; 17) e50_sz=777 ;; 18) e50_sz=128 ;; *) e50_sz=20000 ;;
	esac
	e50_al=8
	[ $(($1 % 7)) = 0 ] && e50_al=64
	[ $(($1 % 11)) = 0 ] && e50_al=4096
	e50_fl=
	[ $(($1 % 5)) = 0 ] && e50_fl=" zero"
	e50_byte=$((($1 * 7 + $2 * 13) % 255 + 1))
}

# e50_alloc FIRST STEP PHASE: allocates handles FIRST, FIRST+STEP, ... <= N;
# `zero` ones must verify 0 before anything is written; then fills each with
# its byte. Sets e50_bad to the number of failed operations.
e50_alloc() {
	e50_bad=0
	e50_zbad=0
	i=$1
	while [ $i -le $E50_N ]; do
		e50_params $i $3
		kw "$KALLOC_DIR/alloc" "$i $e50_sz $e50_al$e50_fl" || e50_bad=$((e50_bad + 1))
		if [ -n "$e50_fl" ]; then
			kw "$KALLOC_DIR/verify" "$i 0" || e50_zbad=$((e50_zbad + 1))
		fi
		kw "$KALLOC_DIR/fill" "$i $e50_byte" || e50_bad=$((e50_bad + 1))
		i=$((i + $2))
	done
}

# e50_verify FIRST STEP PHASE: verifies handles FIRST, FIRST+STEP, ... hold
# their byte of PHASE; sets e50_vbad to the number of mismatches.
e50_verify() {
	e50_vbad=0
	i=$1
	while [ $i -le $E50_N ]; do
		e50_params $i $3
		kw "$KALLOC_DIR/verify" "$i $e50_byte" || e50_vbad=$((e50_vbad + 1))
		i=$((i + $2))
	done
}

# e50_free FIRST STEP: frees handles FIRST, FIRST+STEP, ...
e50_free() {
	e50_bad=0
	i=$1
	while [ $i -le $E50_N ]; do
		kw "$KALLOC_DIR/free" "$i" || e50_bad=$((e50_bad + 1))
		i=$((i + $2))
	done
}

# e50_consistent PHASE: stats, handles and validate agree.
e50_consistent() {
	stat_v active_allocs
	expect_eq "content($1): active_allocs == handles listed" "$sv" "$(handles_count)"
	stat_v heap_size
	e50_heap=$sv
	stat_v used_bytes
	e50_used=$sv
	stat_v free_bytes
	e50_free=$sv
	stat_v overhead_bytes
	expect_eq "content($1): used + free + overhead == heap_size" "$e50_heap" $((e50_used + sv + e50_free))
	check "content($1): validate says ok" validate_ok
	stat_v usable_bytes
	e50_usable=$sv
	stat_v metadata_bytes
	# One awk pass: sums, bounds and alignment of every handle.
	e50_r=$(awk -v heap="$e50_heap" -v meta="$sv" -v usable="$e50_usable" '
		NR > 1 {
			size += $2; use += $4
			if ($6 < meta || $6 + $4 > heap) out++
			if ($6 % $3 != 0) mis++
			if ($4 < $2) short++
		}
		END {
			printf "size_le_usable=%d usable_sum_eq=%d out_of_heap=%d misaligned=%d usable_lt_size=%d",
				size <= usable, use == usable, out, mis, short
		}' "$KALLOC_DIR/handles")
	expect_eq "content($1): usable_bytes >= sum of sizes, == sum of usable; offsets in heap and aligned" \
		"size_le_usable=1 usable_sum_eq=1 out_of_heap=0 misaligned=0 usable_lt_size=0" "$e50_r"
	e50_r=$(awk 'NR > 1 { print $6, $4, $1 }' "$KALLOC_DIR/handles" | sort -n |
		awk 'NR > 1 && $1 < end { n++; if (!first) first = prev " and " $3 }
			{ end = $1 + $2; prev = $3 }
			END { printf "%d %s", n, first }')
	expect_eq "content($1): no two handles overlap" "0 " "$e50_r"
}

expect_eq "content: load with a 32 MiB heap" OK "$(load heap_size=33554432)"
stat_v largest_free_block
e50_largest0=$sv

e50_alloc 1 1 1
expect_eq "content: $E50_N mixed allocs and fills succeed" 0 "$e50_bad"
expect_eq "content: fresh 'zero' handles verify 0" 0 "$e50_zbad"
expect_eq "content: $E50_N handles listed" $E50_N "$(handles_count)"
e50_verify 1 1 1
expect_eq "content: all $E50_N handles hold their byte" 0 "$e50_vbad"
e50_consistent "after $E50_N allocs"

e50_free 1 2
expect_eq "content: freeing the odd half succeeds" 0 "$e50_bad"
e50_verify 2 2 1
expect_eq "content: the even half is intact after the frees" 0 "$e50_vbad"
e50_consistent "after freeing half"

# Reallocated memory held other handles' bytes, so `zero` is checked for real.
e50_alloc 1 2 2
expect_eq "content: reallocating the odd half succeeds" 0 "$e50_bad"
expect_eq "content: reallocated 'zero' handles verify 0" 0 "$e50_zbad"
e50_verify 1 2 2
expect_eq "content: reallocated handles hold their new byte" 0 "$e50_vbad"
e50_verify 2 2 1
expect_eq "content: the even half is still intact" 0 "$e50_vbad"
e50_consistent "after reallocation"

# realloc: a large block grown (in place or moved) and shrunk back keeps
# its bytes; a slab object stays put while its size fits and moves to the
# class of a larger size; stats count the move as one alloc and one free.
e50_h() { awk -v id="$1" '$1 == id { print $2, $3, $4, $5, $6 }' "$KALLOC_DIR/handles"; }
expect_write "content: alloc 5000 B for realloc" OK "$KALLOC_DIR/alloc" "5001 5000"
expect_write "content: fill it with 0x5a" OK "$KALLOC_DIR/fill" "5001 0x5a"
expect_write "content: realloc it to 12000 B" OK "$KALLOC_DIR/realloc" "5001 12000"
expect_eq "content: handles shows 12000 B, usable 12000, in the large allocator" \
	"12000 12000 large" "$(e50_h 5001 | awk '{ print $1, $3, $4 }')"
expect_write "content: realloc it back to 5000 B" OK "$KALLOC_DIR/realloc" "5001 5000"
expect_write "content: its first 5000 B still hold 0x5a" OK "$KALLOC_DIR/verify" "5001 0x5a"
expect_write "content: alloc 100 B for realloc" OK "$KALLOC_DIR/alloc" "5002 100 64"
e50_off=$(e50_h 5002 | awk '{ print $5 }')
e50_t=$(stat total_allocs)
e50_f=$(stat total_frees)
expect_write "content: realloc it to 64 B" OK "$KALLOC_DIR/realloc" "5002 64"
expect_eq "content: 64 B fit: same place, same class, same alignment" \
	"64 64 128 size-128 $e50_off" "$(e50_h 5002)"
expect_write "content: realloc it to 3000 B" OK "$KALLOC_DIR/realloc" "5002 3000"
e50_r=$(e50_h 5002)
expect_eq "content: 3000 B moved it to size-4096 with the default alignment" \
	"3000 8 4096 size-4096" "${e50_r% *}"
check "content: at another offset ($e50_r, was $e50_off)" test "${e50_r##* }" != "$e50_off"
expect_eq "content: the move counted one alloc and one free" \
	"$((e50_t + 1)) $((e50_f + 1))" "$(stat total_allocs) $(stat total_frees)"
e50_consistent "after realloc"
# FLAGS may follow SIZE directly (ALIGN starts with a digit, a flag never).
expect_write "content: alloc '5003 200 zero' (FLAGS right after SIZE)" OK "$KALLOC_DIR/alloc" "5003 200 zero"
expect_eq "content: it has the default alignment 8 in size-256" \
	"200 8 256 size-256" "$(e50_h 5003 | awk '{ print $1, $2, $3, $4 }')"
expect_write "content: it verifies 0" OK "$KALLOC_DIR/verify" "5003 0"
expect_write "content: free it" OK "$KALLOC_DIR/free" "5003"
expect_write "content: free the realloc handles" OK "$KALLOC_DIR/free" "5001"
expect_write "content: free the second one" OK "$KALLOC_DIR/free" "5002"

e50_free 1 1
expect_eq "content: freeing everything succeeds" 0 "$e50_bad"
expect_eq "content: active_allocs 0 at the end" 0 "$(stat active_allocs)"
# Objects freed on the fast path wait in the per-CPU magazines; shrink
# gives them (and the slabs they empty) back.
expect_write "content: shrink" OK "$KALLOC_DIR/shrink" "run"
expect_eq "content: after shrink, largest_free_block is back to its value after load" "$e50_largest0" "$(stat largest_free_block)"
e50_consistent "after freeing everything"
expect_eq "content: rmmod" OK "$(unload)"
