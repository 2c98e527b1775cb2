#!/usr/bin/env bash
# Usage: run-fuzz.sh SECONDS BIN...  Runs each libFuzzer target for SECONDS
# from a copy of its committed seed corpus (test/fuzz/corpus/NAME), so the
# committed corpus is never modified.  Ends with "N passed, N failed".
set -u
secs=$1
shift
passed=0
failed=0
for bin in "$@"; do
	name=$(basename "$bin")
	work=$(mktemp -d)
	if [ -d "test/fuzz/corpus/$name" ]; then
		cp -r "test/fuzz/corpus/$name/." "$work/"
	fi
	if "$bin" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="build/fuzz/$name-" \
		"$work" >"build/fuzz/$name.log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "build/fuzz/$name.log")
		echo "ok   $name: ${runs:-?} inputs in ${secs}s"
		passed=$((passed + 1))
	else
		tail -n 40 "build/fuzz/$name.log"
		echo "FAIL $name (log: build/fuzz/$name.log)"
		failed=$((failed + 1))
	fi
	rm -rf "$work"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
