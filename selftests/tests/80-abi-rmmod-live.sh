# SPDX-License-Identifier: GPL-2.0
# rmmod with live handles (sized and custom-cache) frees them all and leaves a consistent heap.

# e80_fill N: allocates handles 1..N, every 4th from the custom cache `live`,
# the others of mixed sizes (8..6000); sets e80_bad to the failures.
e80_fill() {
	e80_bad=0
	i=1
	while [ $i -le $1 ]; do
		case $((i % 8)) in
		0 | 4) e80_line="$i cache=live" ;;
		1) e80_line="$i 8" ;;
		2) e80_line="$i 100 64" ;;
		3) e80_line="$i 1000" ;;
		5) e80_line="$i 6000 4096" ;;
		6) e80_line="$i 256 8 zero" ;;
		*) e80_line="$i 3000" ;;
		esac
		kw "$KALLOC_DIR/alloc" "$e80_line" || e80_bad=$((e80_bad + 1))
		i=$((i + 1))
	done
}

dmesg_mark
expect_eq "rmmod-live: load" OK "$(load)"
expect_write "rmmod-live: create cache live 96 32" OK "$KALLOC_DIR/caches" "create live 96 32"
e80_fill 2000
expect_eq "rmmod-live: 2000 allocs succeed" 0 "$e80_bad"
expect_eq "rmmod-live: 2000 handles listed, 500 in cache live" "2000 500" \
	"$(handles_count) $(awk '$5 == "live"' "$KALLOC_DIR/handles" | wc -l)"
expect_eq "rmmod-live: active_allocs 2000" 2000 "$(stat active_allocs)"
expect_eq "rmmod-live: rmmod with 2000 live handles" OK "$(unload)"
check "rmmod-live: dmesg 'exit: freed 2000 live handles, heap consistent'" \
	dmesg_has "ikos_kalloc: exit: freed 2000 live handles, heap consistent"
check "rmmod-live: no exit error in dmesg" sh -c "! dmesg | grep -qE 'ikos_kalloc: (exit: heap corrupt|exit: freed [0-9]+ handles,|free of a handle)'"
check "rmmod-live: module gone" sh -c "! grep -q '^ikos_kalloc ' /proc/modules"
check "rmmod-live: debugfs directory gone" test ! -e "$KALLOC_DIR"

# Five more load / alloc-some / rmmod cycles, each with a custom cache live.
e80_ok=0
e80_c=1
while [ $e80_c -le 5 ]; do
	dmesg_mark
	[ "$(load)" = OK ] || break
	kw "$KALLOC_DIR/caches" "create live 96 32" || break
	e80_fill $((e80_c * 40))
	[ "$e80_bad" = 0 ] || break
	[ "$(unload)" = OK ] || break
	dmesg_has "ikos_kalloc: exit: freed $((e80_c * 40)) live handles, heap consistent" || break
	[ ! -e "$KALLOC_DIR" ] || break
	e80_ok=$e80_c
	e80_c=$((e80_c + 1))
done
expect_eq "rmmod-live: 5 load/alloc/rmmod cycles with live handles, each freed all and consistent" 5 "$e80_ok"

# An open debugfs file pins the module (its file operations have an owner):
# rmmod fails while a file is held open and while a `stress` write is in
# progress, and succeeds once they are closed and over. (Without the pin,
# closing a file after rmmod ran the module's freed code: KASAN, Oops.)
dmesg_mark
expect_eq "rmmod-live: load for the open-file checks" OK "$(load)"
exec 3<"$KALLOC_DIR/stats"
check "rmmod-live: rmmod fails while stats is held open" sh -c "! rmmod ikos_kalloc 2>/dev/null"
check "rmmod-live: still loaded, stats still readable" grep -q '^heap_size:' "$KALLOC_DIR/stats"
exec 3<&-
# The writer gets the file already open, so rmmod meets it open however
# late the background job starts; a second later the run is under way.
exec 4>"$KALLOC_DIR/stress"
echo "run 3" >&4 2>/dev/null &
e80_pid=$!
exec 4>&-
sleep 1
check "rmmod-live: rmmod fails during a stress run" sh -c "! rmmod ikos_kalloc 2>/dev/null"
e80_rc=0
wait $e80_pid || e80_rc=$?
expect_eq "rmmod-live: the stress run completed" 0 "$e80_rc"
expect_eq "rmmod-live: rmmod once the file is closed and the run over" OK "$(unload)"
check "rmmod-live: dmesg 'exit: freed 0 live handles, heap consistent' after the stress run" \
	dmesg_has "ikos_kalloc: exit: freed 0 live handles, heap consistent"
