# SPDX-License-Identifier: GPL-2.0
# heap_size: accepted values take effect, bad ones fail insmod cleanly with
# the right errno, one dmesg line, and nothing left behind.
expect_eq "params: heap_size=1048576 loads" OK "$(load heap_size=1048576)"
expect_eq "params: stats shows heap_size=1048576" 1048576 "$(stat heap_size)"
unload >/dev/null
expect_eq "params: heap_size=65536 (minimum) loads" OK "$(load heap_size=65536)"
unload >/dev/null

# bad_size NAME VALUE ERRNO DMESG-PATTERN
bad_size() {
	dmesg_mark
	expect_eq "params: heap_size=$2 ($1) fails with $3" "$3" "$(load heap_size=$2)"
	check "params: heap_size=$2 leaves no module behind" sh -c "! grep -q '^ikos_kalloc ' /proc/modules"
	check "params: heap_size=$2 leaves no debugfs directory" test ! -e "$KALLOC_DIR"
	check "params: heap_size=$2 logs one clear dmesg line" dmesg_has "$4"
}
bad_size zero 0 EINVAL "heap_size=0 rejected"
bad_size "not page multiple" 1000000 EINVAL "heap_size=1000000 rejected"
bad_size "below 64 KiB" 32768 EINVAL "heap_size=32768 rejected"
bad_size "above 1 GiB" 2147483648 EINVAL "heap_size=2147483648 rejected"
# The VM has 768 MiB of RAM, so vmalloc refuses 1 GiB up front.
bad_size "more than vmalloc can give" 1073741824 ENOMEM "heap_size=1073741824 rejected: vmalloc"
expect_eq "params: heap_size=-1 (not a number for usize) fails" EINVAL "$(load heap_size=-1)"
expect_eq "params: heap_size=abc fails" EINVAL "$(load heap_size=abc)"
check "params: module still loads after the failures" sh -c "[ \"\$(insmod $KO 2>&1)\" = '' ] && rmmod ikos_kalloc"
