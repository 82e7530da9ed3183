# SPDX-License-Identifier: GPL-2.0
# Custom caches end to end: the caches table, create, cache= allocations, counters, EBUSY, destroy.

# e60_row NAME: the `caches` row of NAME without the name ("" if none).
e60_row() {
	awk -v n="$1" '$1 == n { $1 = ""; sub(/^ /, ""); print }' "$KALLOC_DIR/caches"
}
# e60_col NAME COLUMN: one column (by header name) of NAME's row.
e60_col() {
	awk -v n="$1" -v c="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i }
		$1 == n { print $k }' "$KALLOC_DIR/caches"
}

expect_eq "caches: load" OK "$(load)"
expect_eq "caches: header line" \
	"name objsize align active_objs total_objs slabs_empty slabs_partial slabs_full allocs frees magazine_objs debug" \
	"$(head -n 1 "$KALLOC_DIR/caches")"
expect_eq "caches: rows 1-10 are the built-ins size-8 .. size-4096 in order" \
	"size-8 size-16 size-32 size-64 size-128 size-256 size-512 size-1024 size-2048 size-4096" \
	"$(sed -n 2,11p "$KALLOC_DIR/caches" | awk '{ printf "%s%s", s, $1; s = " " }')"
expect_eq "caches: built-in objsize and align (natural alignment, at most 64)" \
	"8/8 16/16 32/32 64/64 128/64 256/64 512/64 1024/64 2048/64 4096/64" \
	"$(sed -n 2,11p "$KALLOC_DIR/caches" | awk '{ printf "%s%s/%s", s, $2, $3; s = " " }')"
expect_eq "caches: only the 10 built-ins after load" 11 "$(wc -l <"$KALLOC_DIR/caches")"

expect_write "caches: create objs 200 64" OK "$KALLOC_DIR/caches" "create objs 200 64"
expect_eq "caches: objs is the 11th row, objsize 200 align 64, empty" \
	"objs 200 64 0 0 0 0 0 0 0 0 -" "$(sed -n 12p "$KALLOC_DIR/caches")"

e60_bad=0
i=1001
while [ $i -le 1050 ]; do
	kw "$KALLOC_DIR/alloc" "$i cache=objs" || e60_bad=$((e60_bad + 1))
	i=$((i + 1))
done
expect_eq "caches: 50 allocs with cache=objs" 0 "$e60_bad"
expect_eq "caches: the 50 handles say size 200, align 64, cache objs, offset % 64 == 0" 50 \
	"$(awk '$1 >= 1001 && $1 <= 1050 && $2 == 200 && $3 == 64 && $4 >= 200 && $5 == "objs" && $6 % 64 == 0' \
		"$KALLOC_DIR/handles" | wc -l)"
expect_eq "caches: the 50 objects do not overlap" 0 \
	"$(awk '$5 == "objs" { print $6 }' "$KALLOC_DIR/handles" | sort -n |
		awk 'NR > 1 && $1 < prev + 200 { n++ } { prev = $1 } END { print n + 0 }')"
expect_eq "caches: objs row: active_objs 50, allocs 50, frees 0" "50 50 0" \
	"$(e60_col objs active_objs) $(e60_col objs allocs) $(e60_col objs frees)"
check "caches: objs row: total_objs >= 50" [ "$(e60_col objs total_objs)" -ge 50 ]
expect_write "caches: destroy objs with live objects -> EBUSY" EBUSY "$KALLOC_DIR/caches" "destroy objs"
expect_eq "caches: objs still listed after EBUSY" 1 "$(grep -c '^objs ' "$KALLOC_DIR/caches")"
e60_bad=0
i=1001
while [ $i -le 1050 ]; do
	kw "$KALLOC_DIR/free" "$i" || e60_bad=$((e60_bad + 1))
	i=$((i + 1))
done
expect_eq "caches: 50 frees" 0 "$e60_bad"
expect_eq "caches: objs row: active_objs 0, allocs 50, frees 50" "0 50 50" \
	"$(e60_col objs active_objs) $(e60_col objs allocs) $(e60_col objs frees)"
check "caches: validate ok with an empty custom cache" validate_ok
expect_write "caches: destroy objs" OK "$KALLOC_DIR/caches" "destroy objs"
expect_eq "caches: objs row gone" "" "$(e60_row objs)"
expect_eq "caches: back to the 10 built-ins" 11 "$(wc -l <"$KALLOC_DIR/caches")"
expect_write "caches: alloc cache=objs after destroy -> ENOENT" ENOENT "$KALLOC_DIR/alloc" "1 cache=objs"

expect_write "caches: alloc 7 cache=size-256" OK "$KALLOC_DIR/alloc" "7 cache=size-256"
expect_eq "caches: handle 7 listed as a size-256 object" "7 256 64 256 size-256" \
	"$(awk '$1 == 7 { print $1, $2, $3, $4, $5 }' "$KALLOC_DIR/handles")"
expect_eq "caches: size-256 row counts it (active_objs, allocs)" "1 1" \
	"$(e60_col size-256 active_objs) $(e60_col size-256 allocs)"
check "caches: validate ok" validate_ok
expect_eq "caches: rmmod" OK "$(unload)"
