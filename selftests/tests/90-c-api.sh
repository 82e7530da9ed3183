# SPDX-License-Identifier: GPL-2.0
# The exported C API, driven by the client module selftests/modules/ikos_kalloc_client.c.
dmesg_mark
expect_eq "c-api: load ikos_kalloc" OK "$(load)"
# With debug flags (LOAD_ARGS=debug=...) large blocks have the debug
# layout and placement: the client then checks krealloc's contents only.
capi_debug=$([ -n "$(cat /sys/module/ikos_kalloc/parameters/debug)" ] && echo 1 || echo 0)
capi_err=$(insmod /modules/ikos_kalloc_client.ko heap_debug=$capi_debug 2>&1)
expect_eq "c-api: client module loads (all its checks pass)" OK "$(errno_name "$capi_err")"
check "c-api: client reports every check passed" dmesg_has "ikos_kalloc_client: all [0-9]* checks passed"
check "c-api: no check failed" sh -c "! dmesg | grep -q 'ikos_kalloc_client: check failed'"
check "c-api: the client's double and invalid frees were reported" dmesg_has "C API: double free"
expect_eq "c-api: client left nothing allocated" 0 "$(stat active_allocs)"
# One of a 300 B object, one of a 16 KiB block parked in a CPU's cache.
expect_eq "c-api: client's two double frees counted" 2 "$(stat double_frees)"
# One of a stack address, one of a krealloc in the middle of a block.
expect_eq "c-api: client's invalid free and krealloc counted" 2 "$(stat invalid_frees)"
check "c-api: the client's bad krealloc was reported" dmesg_has "C API: realloc: "
check "c-api: ikos_kalloc is pinned while the client is loaded" sh -c "! rmmod ikos_kalloc 2>/dev/null"
check "c-api: ikos_kalloc still loaded" loaded
check "c-api: client unloads" rmmod ikos_kalloc_client
expect_eq "c-api: ikos_kalloc unloads after the client" OK "$(unload)"

# An allocation that runs out of memory while its caller holds a spinlock
# that the other CPU spins on with interrupts off must not wait for that
# CPU to give back its caches (an IPI it never takes): it returns NULL.
dmesg_mark
expect_eq "c-api: load ikos_kalloc with the minimum heap (64 KiB)" OK "$(load heap_size=65536)"
capi_err=$(insmod /modules/ikos_kalloc_client.ko oom_under_lock=1 2>&1)
expect_eq "c-api: an out-of-memory ikos_kalloc under a contended spinlock returns" OK "$(errno_name "$capi_err")"
check "c-api: it returned NULL (dmesg)" dmesg_has "ikos_kalloc_client: oom under lock: NULL, no deadlock"
expect_eq "c-api: the failure was counted" 1 "$(stat failed_allocs)"
check "c-api: client unloads after the out-of-memory check" rmmod ikos_kalloc_client
expect_eq "c-api: ikos_kalloc unloads after the out-of-memory check" OK "$(unload)"
