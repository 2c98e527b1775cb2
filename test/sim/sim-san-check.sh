#!/usr/bin/env bash
# sim-san-check.sh SEEDS: the simulator under AddressSanitizer and UBSan, with
# the core's debug checks (RAFT_DEBUG: an impossible state aborts; arenas free
# every block on reset, so a payload kept past its lifetime is reported).
# SEEDS seeds with 3 nodes and SEEDS with 5, from seed 1.  Ends with one line
# "N passed, N failed".
set -u -o pipefail
cd "$(dirname "$0")/../.."
seeds=${1:-150}
sim=build/sim/san/dragonraft-sim
pass=0
fail=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for n in 3 5; do
	t0=$(date +%s)
	if ASAN_OPTIONS=detect_leaks=1 "$sim" --seed-start 1 --runs "$seeds" --nodes "$n" >"$out" 2>&1; then
		:
	fi
	grep -E '^FAIL|ERROR: AddressSanitizer|runtime error|impossible state' "$out" | head -n 20
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
	if [ -z "$line" ]; then
		tail -n 30 "$out"
		echo "sim-san: $n nodes: crashed ($(($(date +%s) - t0))s)"
		fail=$((fail + 1))
		continue
	fi
	echo "sim-san: $n nodes: $line ($(($(date +%s) - t0))s)"
	p=${line%% passed*}
	f=${line#*, }
	pass=$((pass + p))
	fail=$((fail + ${f%% failed*}))
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
