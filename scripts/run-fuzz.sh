#!/usr/bin/env bash
# Usage: run-fuzz.sh SECONDS BIN...  Runs each libFuzzer target for SECONDS,
# FUZZ_JOBS (2) at a time, from a copy of its committed seed corpus
# (test/fuzz/corpus/NAME), so the committed corpus is never modified.  Prints
# each target's result in the order given and ends with "N passed, N failed".
set -u
secs=$1
shift
jobs=${FUZZ_JOBS:-2}

# run_one BIN: build/fuzz/NAME.log (libFuzzer's), build/fuzz/NAME.result
run_one() {
	local bin=$1 name work
	name=$(basename "$bin")
	work=$(mktemp -d)
	if [ -d "test/fuzz/corpus/$name" ]; then
		cp -r "test/fuzz/corpus/$name/." "$work/"
	fi
	if "$bin" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="build/fuzz/$name-" \
		"$work" >"build/fuzz/$name.log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "build/fuzz/$name.log")
		echo "ok   $name: ${runs:-?} inputs in ${secs}s" >"build/fuzz/$name.result"
	else
		{
			tail -n 40 "build/fuzz/$name.log"
			echo "FAIL $name (log: build/fuzz/$name.log)"
		} >"build/fuzz/$name.result"
	fi
	rm -rf "$work"
}

for bin in "$@"; do
	rm -f "build/fuzz/$(basename "$bin").result"
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
	run_one "$bin" &
done
wait

passed=0
failed=0
for bin in "$@"; do
	result=build/fuzz/$(basename "$bin").result
	if [ -f "$result" ] && tail -n 1 "$result" | grep -q '^ok '; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
	cat "$result" 2>/dev/null || echo "FAIL $(basename "$bin") (no result)"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
