# SPDX-License-Identifier: GPL-2.0
# Per-CPU magazines: size classes take the fast path, reports stay exact with
# objects in magazines (also on an offline CPU), shrink empties them, ZERO
# works, freed large blocks are parked and reused, percpu=0 turns it off.

# e65_loop FROM TO CMD: writes "I" (free) or "I SIZE" (alloc) for I in FROM..TO;
# sets e65_bad to the failed writes.
e65_loop() {
	e65_bad=0
	e65_i=$1
	while [ "$e65_i" -le "$2" ]; do
		case $3 in
		free) kw "$KALLOC_DIR/free" "$e65_i" || e65_bad=$((e65_bad + 1)) ;;
		*) kw "$KALLOC_DIR/alloc" "$e65_i $3" || e65_bad=$((e65_bad + 1)) ;;
		esac
		e65_i=$((e65_i + 1))
	done
}
e65_col() {
	awk -v n="$1" -v c="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i }
		$1 == n { print $k }' "$KALLOC_DIR/caches"
}

expect_eq "percpu: load" OK "$(load)"
e65_lfb=$(stat largest_free_block)
e65_loop 1 300 64
expect_eq "percpu: 300 allocs of 64 B" 0 "$e65_bad"
expect_eq "percpu: all 300 on the fast path, all live" "300 300 300" \
	"$(stat fast_allocs) $(stat total_allocs) $(stat active_allocs)"
# Refills fill a magazine to 64 of 128: at least 300 / 64 of them.
check "percpu: at least 5 refills" test "$(stat magazine_refills)" -ge 5
expect_eq "percpu: size-64 row counts 300 live" 300 "$(e65_col size-64 active_objs)"
e65_loop 1 300 free
expect_eq "percpu: 300 frees" 0 "$e65_bad"
expect_eq "percpu: all 300 frees on the fast path, none live" "300 300 0" \
	"$(stat fast_frees) $(stat total_frees) $(stat active_allocs)"
e65_m=$(stat magazine_objects)
e65_d=$(stat depot_objects)
# One magazine per CPU of at most 128 64-byte objects holds what is left,
# beside the depot (counted in magazine_objects too).
check "percpu: magazines hold 1..256 objects after the frees ($e65_m - $e65_d)" \
	test $((e65_m - e65_d)) -ge 1 -a $((e65_m - e65_d)) -le 256
expect_eq "percpu: magazine_bytes is 64 per object" $((e65_m * 64)) "$(stat magazine_bytes)"
expect_eq "percpu: the size-64 row shows the same magazine objects, 0 live" "$e65_m 0" \
	"$(e65_col size-64 magazine_objs) $(e65_col size-64 active_objs)"
expect_eq "percpu: used + free + overhead == heap_size" "$(stat heap_size)" \
	$(($(stat used_bytes) + $(stat free_bytes) + $(stat overhead_bytes)))
expect_eq "percpu: used_bytes 0: magazine objects count as free" 0 "$(stat used_bytes)"
check "percpu: validate ok with objects in magazines" validate_ok
expect_eq "percpu: validate checked every magazine object" "$e65_m" \
	"$(sed -n 's/^magazine_objects_checked: //p' "$KALLOC_DIR/validate")"
# The refills took at least 5 x 64 objects, more than the two magazines
# hold: some were drained, each time the 64 oldest of a full magazine, all
# into the depot (room for 1,024 of 64 bytes).
check "percpu: drains happened (magazine full at 128)" test "$(stat magazine_drains)" -ge 1
expect_eq "percpu: every drain parked 64 objects in the depot" \
	$((64 * $(stat magazine_drains))) "$e65_d"
# The depot step by step, pinned to CPU 0 and from empty caches (shrink):
# 300 allocations of 64 B take 5 refills of 64 objects from the slabs (20
# stay in the magazine); the 300 frees fill the magazine to 128 three
# times, and each drain parks its 64 oldest objects in the depot; 300
# allocations again take the magazine's 128 and then the depot's 192
# through 3 refills, without a new slab object.
e65_cpu0() { # e65_cpu0 alloc|free: handles 901..1200 on CPU 0
	taskset 1 sh -c "i=901; while [ \$i -le 1200 ]; do
		if [ $1 = alloc ]; then echo \"\$i 64\"; else echo \$i; fi >$KALLOC_DIR/$1 || exit 1
		i=\$((i + 1)); done"
}
e65_taken64() {
	echo $(($(e65_col size-64 magazine_objs) + $(e65_col size-64 active_objs)))
}
expect_write "percpu: shrink before the depot steps" OK "$KALLOC_DIR/shrink" "run"
expect_eq "percpu: empty caches and depot after shrink" "0 0 0" \
	"$(stat magazine_objects) $(stat depot_objects) $(e65_taken64)"
e65_r=$(stat magazine_refills)
e65_dr=$(stat magazine_drains)
e65_cpu0 alloc
expect_eq "percpu: CPU 0: 300 allocs of 64 B, 5 refills from the slabs" "300 5 320" \
	"$(stat active_allocs) $(($(stat magazine_refills) - e65_r)) $(e65_taken64)"
e65_cpu0 free
expect_eq "percpu: CPU 0: 300 frees, 3 drains into the depot (192), 128 in the magazine" \
	"0 3 192 320" \
	"$(stat active_allocs) $(($(stat magazine_drains) - e65_dr)) $(stat depot_objects) $(stat magazine_objects)"
e65_r=$(stat magazine_refills)
e65_cpu0 alloc
expect_eq "percpu: CPU 0: 300 allocs again: 3 refills empty the depot, no new slab object" \
	"300 3 0 320" \
	"$(stat active_allocs) $(($(stat magazine_refills) - e65_r)) $(stat depot_objects) $(e65_taken64)"
e65_cpu0 free
expect_eq "percpu: CPU 0: the 300 freed again" 0 "$(stat active_allocs)"
check "percpu: validate ok with objects in the depot" validate_ok

# ZERO on the fast path: a dirty object comes back cleared.
expect_write "percpu: alloc 301 64" OK "$KALLOC_DIR/alloc" "301 64"
expect_write "percpu: fill 301 with 0xab" OK "$KALLOC_DIR/fill" "301 171"
expect_write "percpu: free 301" OK "$KALLOC_DIR/free" "301"
e65_bad=0
for e65_i in 302 303 304 305; do
	kw "$KALLOC_DIR/alloc" "$e65_i 64 8 zero" || e65_bad=$((e65_bad + 1))
	kw "$KALLOC_DIR/verify" "$e65_i 0" || e65_bad=$((e65_bad + 1))
	kw "$KALLOC_DIR/free" "$e65_i" || e65_bad=$((e65_bad + 1))
done
expect_eq "percpu: 4 zeroed allocs verify as 0" 0 "$e65_bad"

# Debug flags on a size class take it off the fast path (its magazine
# objects go back first, so the layout can change), and back on without.
check "percpu: size-64 objects sit in magazines" test "$(e65_col size-64 magazine_objs)" -ge 1
expect_write "percpu: caches debug size-64 Z with objects in magazines" OK "$KALLOC_DIR/caches" "debug size-64 Z"
expect_eq "percpu: size-64 magazine objects went back, flags Z" "0 Z" \
	"$(e65_col size-64 magazine_objs) $(e65_col size-64 debug)"
e65_f=$(stat fast_allocs)
e65_loop 600 609 64
e65_loop 600 609 free
expect_eq "percpu: size-64 with Z takes the locked path" "$e65_f 0" \
	"$(stat fast_allocs) $(e65_col size-64 magazine_objs)"
check "percpu: validate ok with Z on size-64" validate_ok
expect_write "percpu: caches debug size-64 -" OK "$KALLOC_DIR/caches" "debug size-64 -"
e65_loop 610 619 64
expect_eq "percpu: size-64 is back on the fast path" $((e65_f + 10)) "$(stat fast_allocs)"
e65_loop 610 619 free
# With a live object the class refuses debug flags (EBUSY) and the write
# changes nothing: no magazine, of this class or another, is emptied.
e65_loop 620 620 64
e65_loop 630 649 32
e65_loop 630 649 free
check "percpu: size-32 objects sit in magazines" test "$(e65_col size-32 magazine_objs)" -ge 1
snapshot
e65_snap=$snap
expect_write "percpu: caches debug size-64 Z with a live object -> EBUSY" EBUSY "$KALLOC_DIR/caches" "debug size-64 Z"
snapshot
expect_eq "percpu: the refused debug write changed nothing, magazines included" "$e65_snap" "$snap"
e65_loop 620 620 free

# Mixed sizes: large blocks take the locked path, classes the fast one.
e65_loop 400 449 5000
expect_eq "percpu: 50 large allocs" 0 "$e65_bad"
e65_f=$(stat fast_allocs)
e65_loop 500 549 1000
expect_eq "percpu: 50 allocs of 1000 B are fast" $((e65_f + 50)) "$(stat fast_allocs)"
e65_loop 400 449 free
e65_loop 500 549 free
expect_eq "percpu: nothing live" 0 "$(stat active_allocs)"

# Large blocks up to 64 KiB: a freed one is parked on its CPU, and the next
# allocation there of about its size (within 1/8) takes it back without the
# heap lock; reports first return parked blocks to the heap.
e65_f=$(stat fast_allocs)
e65_ff=$(stat fast_frees)
e65_r=$(taskset 1 sh -c "echo '800 16384' >$KALLOC_DIR/alloc
	awk '\$1 == 800 { print \$6 }' $KALLOC_DIR/handles
	echo 800 >$KALLOC_DIR/free
	echo '801 15000' >$KALLOC_DIR/alloc
	awk '\$1 == 801 { print \$6 }' $KALLOC_DIR/handles
	echo '802 70000' >$KALLOC_DIR/alloc
	echo 802 >$KALLOC_DIR/free
	echo '803 70000' >$KALLOC_DIR/alloc" | tr '\n' ' ')
e65_o=${e65_r%% *}
check "percpu: a 16 KiB block was allocated ($e65_r)" test -n "$e65_o"
expect_eq "percpu: a 15000 B request reuses the parked 16 KiB block" "$e65_o $e65_o " "$e65_r"
expect_eq "percpu: one large alloc and one large free on the fast path, 70000 B never" \
	"$((e65_f + 1)) $((e65_ff + 1))" "$(stat fast_allocs) $(stat fast_frees)"
expect_eq "percpu: 2 large allocations live" 2 "$(stat large_allocs)"
e65_loop 801 801 free
# Parked blocks would show in magazine_objects beside the size classes'.
expect_eq "percpu: a report returns the freed 16 KiB block, parked on CPU 0, to the heap" \
	"$(awk 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "magazine_objs") k = i }
		NR > 1 { n += $k } END { print n + 0 }' "$KALLOC_DIR/caches")" "$(stat magazine_objects)"
e65_loop 803 803 free
check "percpu: validate ok after large frees" validate_ok
expect_eq "percpu: nothing live after the large frees" 0 "$(stat active_allocs)"

# A full large cache: sixteen parked 5000 B blocks, none of which fits a
# 16 KiB request. Freeing a 16 KiB block returns the oldest eight to the
# heap under its lock and parks the new one, which the next 16 KiB
# allocation takes back without the lock. (Without the eviction that free
# and that allocation both took the locked heap.)
e65_f=$(stat fast_allocs)
e65_ff=$(stat fast_frees)
e65_r=$(taskset 1 sh -c "i=810; while [ \$i -le 825 ]; do
		echo \"\$i 5000\" >$KALLOC_DIR/alloc; i=\$((i + 1))
	done
	echo '830 16384' >$KALLOC_DIR/alloc
	i=810; while [ \$i -le 825 ]; do echo \$i >$KALLOC_DIR/free; i=\$((i + 1)); done
	awk '\$1 == 830 { print \$6 }' $KALLOC_DIR/handles
	echo 830 >$KALLOC_DIR/free
	echo '831 16384' >$KALLOC_DIR/alloc
	awk '\$1 == 831 { print \$6 }' $KALLOC_DIR/handles" | tr '\n' ' ')
e65_o=${e65_r%% *}
check "percpu: a 16 KiB block beside a full large cache ($e65_r)" test -n "$e65_o"
expect_eq "percpu: a full large cache makes room: 17 parked, the 16 KiB block reused" \
	"$((e65_f + 1)) $((e65_ff + 17)) $e65_o $e65_o " \
	"$(stat fast_allocs) $(stat fast_frees) $e65_r"
e65_loop 831 831 free
check "percpu: validate ok after the eviction" validate_ok
expect_eq "percpu: nothing live after the eviction" 0 "$(stat active_allocs)"

expect_write "percpu: shrink" OK "$KALLOC_DIR/shrink" "run"
expect_eq "percpu: shrink emptied the magazines and released every slab" "0 0" \
	"$(stat magazine_objects) $(stat slabs_total)"
check "percpu: shrink reclaimed bytes" \
	test "$(sed -n 's/^bytes_reclaimed: //p' "$KALLOC_DIR/shrink")" -gt 0
expect_eq "percpu: after shrink the heap is one free block again" "$e65_lfb" \
	"$(stat largest_free_block)"
check "percpu: validate ok after shrink" validate_ok

# CPU hotplug: a CPU that goes offline keeps its magazine objects; reports
# then reach its cache directly instead of by IPI (smp_call_function_single
# says -ENXIO) and stay exact, and shrink still empties it.
e65_on=/sys/devices/system/cpu/cpu1/online
taskset 2 sh -c "i=700; while [ \$i -le 739 ]; do echo \"\$i 128\" >$KALLOC_DIR/alloc; i=\$((i + 1)); done
	i=700; while [ \$i -le 739 ]; do echo \$i >$KALLOC_DIR/free; i=\$((i + 1)); done"
e65_m=$(e65_col size-128 magazine_objs)
check "percpu: CPU 1's 40 frees of 128 B left objects in its magazine ($e65_m)" \
	test "$e65_m" -ge 1 -a "$e65_m" -le 128
expect_write "percpu: take CPU 1 offline" OK "$e65_on" 0
expect_eq "percpu: CPU 1 is offline" 0 "$(cat "$e65_on")"
expect_eq "percpu: offline CPU's magazine still counted, nothing live" "$e65_m 0" \
	"$(e65_col size-128 magazine_objs) $(stat active_allocs)"
check "percpu: validate ok with objects on an offline CPU" validate_ok
expect_eq "percpu: validate checked the offline CPU's objects" "$(stat magazine_objects)" \
	"$(sed -n 's/^magazine_objects_checked: //p' "$KALLOC_DIR/validate")"
expect_write "percpu: shrink with CPU 1 offline" OK "$KALLOC_DIR/shrink" "run"
expect_eq "percpu: shrink emptied the offline CPU's magazine, no slab left" "0 0" \
	"$(stat magazine_objects) $(stat slabs_total)"
expect_write "percpu: bring CPU 1 back" OK "$e65_on" 1
e65_f=$(stat fast_allocs)
taskset 2 sh -c "echo '750 128' >$KALLOC_DIR/alloc; echo 750 >$KALLOC_DIR/free"
expect_eq "percpu: CPU 1 uses its fast path again" $((e65_f + 1)) "$(stat fast_allocs)"
check "percpu: validate ok after CPU 1 came back" validate_ok
expect_eq "percpu: unload" OK "$(unload)"

expect_eq "percpu: load percpu=0" OK "$(load percpu=0)"
e65_loop 1 20 64
e65_loop 1 20 free
expect_eq "percpu=0: 20 allocs and frees, none on the fast path" "20 20 0 0 0" \
	"$(stat total_allocs) $(stat total_frees) $(stat fast_allocs) $(stat fast_frees) $(stat magazine_objects)"
expect_eq "percpu=0: the emptied slab went back (one free block)" "0 $e65_lfb" \
	"$(stat slabs_total) $(stat largest_free_block)"
expect_eq "percpu=0: unload" OK "$(unload)"
