# SPDX-License-Identifier: GPL-2.0
# heapmap shows what the heap holds; shrink gives empty slabs back. Loaded
# with percpu=0 so that slab occupancy and the empty-slab reserve are exact
# (65-percpu covers shrink with magazines).
hm_rows() { grep -cE '^[0-9]{6} ' "$KALLOC_DIR/heapmap"; }
expect_eq "heapmap: load" OK "$(load heap_size=1048576 percpu=0)"
expect_eq "heapmap: 256 pages in 4 rows" 4 "$(hm_rows)"
expect_eq "heapmap: pages key" 256 "$(sed -n 's/^pages: //p' "$KALLOC_DIR/heapmap")"
check "heapmap: fresh heap has no slab or large page" sh -c "! grep -E '^[0-9]{6} ' $KALLOC_DIR/heapmap | cut -c8- | grep -q '[0-9Lc]'"
expect_write "heapmap: alloc 64 B" OK "$KALLOC_DIR/alloc" "1 64"
expect_write "heapmap: alloc 64 B more" OK "$KALLOC_DIR/alloc" "2 64"
expect_write "heapmap: alloc 20 KiB" OK "$KALLOC_DIR/alloc" "3 20000"
check "heapmap: size-64 slab pages appear as 3" sh -c "grep -E '^[0-9]{6} ' $KALLOC_DIR/heapmap | cut -c8- | grep -q 3"
check "heapmap: large block pages appear as L" sh -c "grep -E '^[0-9]{6} ' $KALLOC_DIR/heapmap | cut -c8- | grep -q L"
expect_eq "heapmap: one slab line, size-64 with 2 of 253 in use" "size-64 2 253" \
	"$(awk '/^slab / { print $3, $4, $5 }' "$KALLOC_DIR/heapmap")"
expect_write "shrink: run with only a partial slab" OK "$KALLOC_DIR/shrink" "run"
expect_eq "shrink: a partial slab is not released" "slabs_released: 0" "$(head -n 1 "$KALLOC_DIR/shrink")"
# Empty the cache first (its slab goes back), then one full size-64 slab
# (253 objects) plus one object in a second slab; free the 253: the emptied
# slab stays in reserve while the cache has live objects.
expect_write "heapmap: free one" OK "$KALLOC_DIR/free" "1"
expect_write "heapmap: free the other" OK "$KALLOC_DIR/free" "2"
hm_i=10
while [ $hm_i -lt 264 ]; do echo "$hm_i 64" >"$KALLOC_DIR/alloc"; hm_i=$((hm_i + 1)); done
hm_i=10
while [ $hm_i -lt 263 ]; do echo "$hm_i" >"$KALLOC_DIR/free"; hm_i=$((hm_i + 1)); done
check "shrink: an empty slab is in reserve" test "$(stat slabs_empty)" -ge 1
expect_write "shrink: run" OK "$KALLOC_DIR/shrink" "run"
expect_eq "shrink: the empty slab is released" "slabs_released: 1" "$(head -n 1 "$KALLOC_DIR/shrink")"
check "shrink: bytes were reclaimed" test "$(sed -n 's/^bytes_reclaimed: //p' "$KALLOC_DIR/shrink")" -gt 16000
expect_eq "shrink: no empty slab left" 0 "$(stat slabs_empty)"
expect_write "shrink: free the last 64 B object" OK "$KALLOC_DIR/free" "263"
expect_write "shrink: bad command" EINVAL "$KALLOC_DIR/shrink" "now"
expect_write "heapmap: free the block" OK "$KALLOC_DIR/free" "3"
check "heapmap: everything free again" sh -c "! grep -E '^[0-9]{6} ' $KALLOC_DIR/heapmap | cut -c8- | grep -q '[0-9Lc]'"
check "heapmap: validate ok" sh -c "head -n 1 $KALLOC_DIR/validate | grep -qx ok"
expect_eq "heapmap: unload" OK "$(unload)"
