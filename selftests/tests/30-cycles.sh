# SPDX-License-Identifier: GPL-2.0
# Repeated load/unload leaves nothing behind (kmemleak checks the rest).
# 99-faults adds 50 more cycles, two of them with 2000 live handles.
ok_cycles=0
i=0
while [ $i -lt 10 ]; do
	i=$((i + 1))
	[ "$(load)" = OK ] || break
	[ -r "$KALLOC_DIR/stats" ] || break
	[ "$(unload)" = OK ] || break
	ok_cycles=$i
done
expect_eq "cycles: 10 insmod/stats/rmmod cycles" 10 "$ok_cycles"
check "cycles: nothing left loaded" sh -c "! grep -q '^ikos_kalloc ' /proc/modules"
