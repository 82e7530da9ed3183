# SPDX-License-Identifier: GPL-2.0
# Concurrency on -smp 2: CONC_PROCS (default 4) churn processes on their own
# ID ranges, a reader of stats/caches/handles/validate, a selftest loop and
# an in-kernel stress run at the same time, for CONC_SECONDS (default 20).
# Then the in-kernel stress alone (STRESS_SECONDS, default 10).
e97_procs=${CONC_PROCS:-4}
e97_secs=${CONC_SECONDS:-20}
e97_stress=${STRESS_SECONDS:-10}

dmesg_mark
expect_eq "concurrency: load" OK "$(load)"
e97_pids=
e97_i=1
while [ $e97_i -le "$e97_procs" ]; do
	kalloc-fuzz churn --seconds "$e97_secs" --seed $e97_i --ids $((e97_i * 1000)) \
		>/tmp/churn.$e97_i 2>&1 &
	e97_pids="$e97_pids $!"
	e97_i=$((e97_i + 1))
done
kalloc-fuzz read --seconds "$e97_secs" >/tmp/reader.out 2>&1 &
e97_reader=$!
(
	e97_end=$(($(date +%s) + e97_secs))
	n=0 bad=0
	while [ "$(date +%s)" -lt $e97_end ]; do
		echo run >"$KALLOC_DIR/selftest" 2>/dev/null || bad=$((bad + 1))
		n=$((n + 1))
	done
	echo "selftest runs $n failed $bad"
) >/tmp/selftest-loop.out 2>&1 &
e97_st=$!
(echo "run $((e97_secs / 2 + 1))" >"$KALLOC_DIR/stress" && echo "stress ok") >/tmp/stress-bg.out 2>&1 &
e97_sp=$!

e97_bad=0
for p in $e97_pids; do wait "$p" || e97_bad=$((e97_bad + 1)); done
e97_rrc=0
wait $e97_reader || e97_rrc=$?
wait $e97_st
wait $e97_sp
cat /tmp/churn.* /tmp/reader.out /tmp/selftest-loop.out /tmp/stress-bg.out | sed 's/^/# /'
cat /tmp/churn.* /tmp/reader.out /tmp/selftest-loop.out >/dev/kmsg 2>/dev/null
expect_eq "concurrency: $e97_procs churn processes: no verify failure, no bad errno" 0 "$e97_bad"
expect_eq "concurrency: reader: validate never corrupt, no failed read" 0 "$e97_rrc"
check "concurrency: selftest loop: every run passed" grep -q 'failed 0$' /tmp/selftest-loop.out
check "concurrency: in-kernel stress alongside passed" grep -q 'stress ok' /tmp/stress-bg.out
# The results of that run, before the next one replaces them.
echo "# concurrency: stress alongside: $(tr '\n' ' ' <"$KALLOC_DIR/stress")" | tee /dev/kmsg
e97_ops=0
for f in /tmp/churn.*; do
	n=$(sed -n 's/.* ops \([0-9]*\) .*/\1/p' "$f")
	e97_ops=$((e97_ops + ${n:-0}))
done
echo "# concurrency: churn ops total $e97_ops" | tee /dev/kmsg
check "concurrency: churn did work ($e97_ops ops)" [ "$e97_ops" -gt 0 ]
check "concurrency: validate ok afterwards" validate_ok
expect_eq "concurrency: active_allocs equals the live handle count" "$(handles_count)" "$(stat active_allocs)"
expect_eq "concurrency: every churn handle was freed" 0 "$(handles_count)"
expect_eq "concurrency: no corruption, no refused free" "0 0 0" \
	"$(stat corruptions) $(stat invalid_frees) $(stat double_frees)"

# In-kernel stress alone: one kthread per CPU, objects freed across CPUs.
expect_write "stress: run $e97_stress" OK "$KALLOC_DIR/stress" "run $e97_stress"
sed 's/^/# /' "$KALLOC_DIR/stress"
sed 's/^/stress: /' "$KALLOC_DIR/stress" >/dev/kmsg 2>/dev/null
e97_kv() { sed -n "s/^$1: //p" "$KALLOC_DIR/stress"; }
expect_eq "stress: one thread per online CPU" "$(nproc)" "$(e97_kv threads)"
check "stress: operations done ($(e97_kv ops))" [ "$(e97_kv ops)" -gt 0 ]
check "stress: cross-CPU frees happened ($(e97_kv cross_cpu_frees))" [ "$(e97_kv cross_cpu_frees)" -gt 0 ]
check "stress: interrupt-context operations happened ($(e97_kv irq_ops))" [ "$(e97_kv irq_ops)" -gt 0 ]
check "stress: reallocs happened ($(e97_kv reallocs))" [ "$(e97_kv reallocs)" -gt 0 ]
case "$(cat /sys/module/ikos_kalloc/parameters/debug)" in
*[ZPU]*)
	# LOAD_ARGS=debug=... with Z, P or U: a block with the debug layout is
	# never resized in place, so never moved down either.
	expect_eq "stress: with the debug layout no realloc moves a block down" 0 "$(e97_kv reallocs_moved_down)"
	;;
*)
	check "stress: reallocs moved blocks down, copying without the heap lock ($(e97_kv reallocs_moved_down))" \
		[ "$(e97_kv reallocs_moved_down)" -gt 0 ]
	;;
esac
expect_eq "stress: ops is allocs + frees + reallocs + irq_ops" \
	$(($(e97_kv allocs) + $(e97_kv frees) + $(e97_kv reallocs) + $(e97_kv irq_ops))) "$(e97_kv ops)"
expect_eq "stress: no verify failure, refused free or leak" "0 0 0" \
	"$(e97_kv verify_failures) $(e97_kv free_errors) $(e97_kv leaked)"
expect_write "stress: run 0 is rejected" EINVAL "$KALLOC_DIR/stress" "run 0"
expect_write "stress: run 3601 is rejected" EINVAL "$KALLOC_DIR/stress" "run 3601"
check "stress: validate ok afterwards" validate_ok
expect_eq "stress: active_allocs back to 0" 0 "$(stat active_allocs)"
expect_eq "concurrency: rmmod" OK "$(unload)"
check "concurrency: exit heap consistent" dmesg_has "ikos_kalloc: exit: freed [0-9]* live handles, heap consistent"
