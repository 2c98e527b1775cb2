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
trap 'rm -f "$out" "$out".*' EXIT
# Three runs side by side on the two cores (a 5-node seed takes about five
# times a 3-node one here): 3 nodes, and the 5-node seeds in two halves;
# reported in that order.
half=$(((seeds + 1) / 2))
runs=("3 1 $seeds" "5 1 $half" "5 $((half + 1)) $((seeds - half))")
t0=$(date +%s)
for k in "${!runs[@]}"; do
	set -- ${runs[$k]}
	[ "$3" -gt 0 ] || continue
	ASAN_OPTIONS=detect_leaks=1 "$sim" --seed-start "$2" --runs "$3" --nodes "$1" >"$out.$k" 2>&1 &
done
wait
for k in "${!runs[@]}"; do
	set -- ${runs[$k]}
	[ "$3" -gt 0 ] || continue
	what="$1 nodes, seeds $2-$(($2 + $3 - 1))"
	grep -E '^FAIL|ERROR: AddressSanitizer|runtime error|impossible state' "$out.$k" | head -n 20
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out.$k" | tail -n 1)
	if [ -z "$line" ]; then
		tail -n 30 "$out.$k"
		echo "sim-san: $what: crashed"
		fail=$((fail + 1))
		continue
	fi
	echo "sim-san: $what: $line"
	p=${line%% passed*}
	f=${line#*, }
	pass=$((pass + p))
	fail=$((fail + ${f%% failed*}))
done
echo "sim-san: $(($(date +%s) - t0))s for all"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
