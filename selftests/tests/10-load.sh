# SPDX-License-Identifier: GPL-2.0
# Loading with defaults: the module appears, debugfs has its files, stats are right.
dmesg_mark
expect_eq "load: insmod with default parameters" OK "$(load)"
check "load: module listed in /proc/modules" loaded
check "load: debugfs directory exists" test -d "$KALLOC_DIR"
check "load: stats is readable" cat "$KALLOC_DIR/stats"
expect_eq "load: stats heap_size is the 8 MiB default" 8388608 "$(stat heap_size)"
check "load: stats lines are all 'key: integer'" \
	sh -c "! grep -vE '^[a-z_]+: [0-9]+$' $KALLOC_DIR/stats"
check "load: dmesg reports the heap" dmesg_has "ikos_kalloc: loaded: heap of 8388608 bytes"
expect_eq "load: rmmod" OK "$(unload)"
check "load: debugfs directory removed on unload" test ! -e "$KALLOC_DIR"
check "load: dmesg reports the unload" dmesg_has "ikos_kalloc: unloaded"
