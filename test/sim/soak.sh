#!/usr/bin/env bash
# soak.sh SEEDS [JOBS]: run seeds 1..SEEDS of dragonraft-sim split over JOBS
# processes (alternating 3 and 5 nodes by seed parity), print every failing
# seed, and end with one line "N passed, N failed".
set -u -o pipefail
cd "$(dirname "$0")/../.."
seeds=${1:-100000}
jobs=${2:-2}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
t0=$(date +%s)
per=$(((seeds + jobs - 1) / jobs))
for ((j = 0; j < jobs; j++)); do
	start=$((1 + j * per))
	n=$per
	if ((start + n - 1 > seeds)); then n=$((seeds - start + 1)); fi
	((n > 0)) || continue
	test/sim/dragonraft-sim --seed-start "$start" --runs "$n" >"$dir/$j.log" 2>&1 &
done
wait
pass=0
fail=0
for f in "$dir"/*.log; do
	grep '^FAIL' "$f"
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$f" | tail -n 1)
	if [ -z "$line" ]; then
		echo "soak: a shard ended without a summary line:" >&2
		tail -n 5 "$f" >&2
		fail=$((fail + 1))
		continue
	fi
	p=${line%% passed*}
	r=${line#*, }
	pass=$((pass + p))
	fail=$((fail + ${r%% failed*}))
done
echo "soak: $seeds seeds in $(($(date +%s) - t0))s"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
