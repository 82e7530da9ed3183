#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The kernel's own style checks on the C side of the module, with the
# scripts of the kernel tree it is built against:
#   - checkpatch.pl --strict on every C file and header (the one exception:
#     src/ikos_kalloc_export.c exports functions defined in Rust, so its
#     EXPORT_SYMBOL_GPL lines cannot follow their definitions);
#   - kernel-doc -Wall -Werror on the API header, and a kernel-doc comment
#     for every function src/ikos_kalloc_export.c exports.
# Exits non-zero on any finding.
#
#   scripts/check-kernel-style.sh KDIR
set -uo pipefail
kdir=${1:?usage: check-kernel-style.sh KDIR}
ksrc=$kdir
[ -e "$kdir/source" ] && ksrc=$(readlink -f "$kdir/source")
cd "$(dirname "$0")/.."

checkpatch=(perl "$ksrc/scripts/checkpatch.pl" --no-tree --strict --terse --quiet -f)
kerneldoc=("$ksrc/scripts/kernel-doc")
export_c=src/ikos_kalloc_export.c
header=include/ikos_kalloc.h
bad=0

# checkpatch prints a total per file even with --quiet: only findings are shown.
quiet() {
	local out rc
	out=$("$@" 2>&1)
	rc=$?
	printf '%s\n' "$out" | grep -v '^total: 0 errors, 0 warnings, 0 checks' || true
	return $rc
}

# The sources, not build products (*.mod.c): git's view, or the source
# directories outside a git checkout.
list_sources() {
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git ls-files --cached --others --exclude-standard '*.c' '*.h'
	else
		find src include selftests -name '*.[ch]' ! -name '*.mod.c' | sort
	fi
}
mapfile -t files < <(list_sources | grep -vx "$export_c")
quiet "${checkpatch[@]}" "${files[@]}" || bad=1
quiet "${checkpatch[@]}" --ignore EXPORT_SYMBOL "$export_c" || bad=1

# One run: its warnings (errors with -Werror) on stderr, the documented
# functions in the reST on stdout, captured rather than piped into grep -q,
# whose early exit would fail kernel-doc under pipefail.
doc=$("${kerneldoc[@]}" -rst -Wall -Werror "$header") || bad=1
for sym in $(sed -n 's/^EXPORT_SYMBOL_GPL(\(.*\));$/\1/p' "$export_c"); do
	if ! grep -q "c:function:: .* $sym (" <<<"$doc"; then
		echo "$header: no kernel-doc comment for the exported $sym()"
		bad=1
	fi
done

if [ $bad = 0 ]; then
	echo "kernel style: ok (checkpatch --strict: ${#files[@]} files and $export_c; kernel-doc: $header)"
fi
exit $bad
