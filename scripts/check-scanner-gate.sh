#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Proves the VM verdict is gated by the splat scanner: boots the VM with a
# test module that plants a kernel WARNING (selftests/modules/ikos_splat.c)
# and one short selftest group (without the kmemleak scans, which take
# about 20 s and are not what it checks), and requires that run to FAIL
# with a `warning` finding. Exits 0 when the gate works.
#
#   scripts/check-scanner-gate.sh KDIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kdir=${1:?usage: check-scanner-gate.sh KDIR}
out="$(dirname "$here")/out/scanner-gate"
mkdir -p "$out"

"$here/run-vm.sh" --kdir "$kdir" --mode test --plant warning --args 10-load,KMEMLEAK=0 --out "$out" \
	>"$out/run.log" 2>&1
rc=$?
if [ $rc -eq 0 ]; then
	echo "scanner gate: FAILED: a run with a planted WARNING passed (see $out/run.log)"
	echo "0 passed, 1 failed"
	exit 1
fi
if ! grep -q '^splat: warning: .*ikos_splat' "$out/vm-test.splats"; then
	echo "scanner gate: FAILED: the run failed (rc $rc) but not because of the planted warning"
	tail -n 5 "$out/run.log"
	echo "0 passed, 1 failed"
	exit 1
fi
echo "scanner gate: ok: the planted warning failed the run: $(head -n 1 "$out/vm-test.splats")"
