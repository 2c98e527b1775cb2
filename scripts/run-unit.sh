#!/usr/bin/env bash
# Runs cmocka unit test binaries; prints each binary's result and ends with
# "N passed, N failed" counting individual tests.  Exit status 1 on any failure.
set -u
passed=0
failed=0
for bin in "$@"; do
	out=$("$bin" 2>&1)
	rc=$?
	p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -n 1)
	f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -n 1)
	p=${p:-0}
	f=${f:-0}
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1 # crashed or failed outside cmocka's accounting
	fi
	if [ "$rc" -ne 0 ]; then
		printf '%s\n' "$out"
		echo "FAIL $(basename "$bin") (exit $rc)"
	else
		echo "ok   $(basename "$bin"): $p tests"
	fi
	passed=$((passed + p))
	failed=$((failed + f))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
