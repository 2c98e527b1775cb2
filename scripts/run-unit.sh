#!/usr/bin/env bash
# Runs cmocka unit test binaries, UNIT_JOBS (2) at a time (each makes its own
# temporary directories and ports); prints each binary's result in the order
# given, with its seconds, and ends with "N passed, N failed" counting
# individual tests.  Exit status 1 on any failure.
set -u
jobs=${UNIT_JOBS:-2}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# run_one K BIN: $dir/K.out (its output), $dir/K.rc (its exit status),
# $dir/K.s (its seconds)
run_one() {
	local t0=$SECONDS
	"$2" >"$dir/$1.out" 2>&1
	echo $? >"$dir/$1.rc"
	echo $((SECONDS - t0)) >"$dir/$1.s"
}

k=0
for bin in "$@"; do
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
	run_one $k "$bin" &
	k=$((k + 1))
done
wait

passed=0
failed=0
k=0
for bin in "$@"; do
	out=$(cat "$dir/$k.out" 2>/dev/null)
	rc=$(cat "$dir/$k.rc" 2>/dev/null)
	secs=$(cat "$dir/$k.s" 2>/dev/null)
	k=$((k + 1))
	case $rc in
	'' | *[!0-9]*)
		# its runner died or could not write (a full disk): not a pass
		out="$out
(no exit status recorded for $bin)"
		rc=255
		;;
	esac
	p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -n 1)
	f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -n 1)
	p=${p:-0}
	f=${f:-0}
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1 # crashed or failed outside cmocka's accounting
	fi
	if [ "$rc" -ne 0 ]; then
		printf '%s\n' "$out"
		echo "FAIL $(basename "$bin") (exit $rc, ${secs:-?} s)"
	else
		echo "ok   $(basename "$bin"): $p tests (${secs:-?} s)"
	fi
	passed=$((passed + p))
	failed=$((failed + f))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
