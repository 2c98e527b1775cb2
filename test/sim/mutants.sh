#!/usr/bin/env bash
# mutants.sh MODE SEEDS [JOBS]: the mutation suite (test/sim/mutants/*.patch,
# each a deliberately broken copy of src/raft built as
# build/sim/mut/NAME/dragonraft-sim).
#
#   full SEEDS   run seeds 1..SEEDS against every mutant and print how many
#                caught it (any violated property kills a mutant)
#   check SEEDS  stop at each mutant's first failing seed; a mutant that
#                survives SEEDS seeds fails the check
#
# Seeds alternate 3 and 5 nodes by parity, as in sim-check; a patch's line
# "# Sim-args: ARGS" adds simulator options (a workload the default run
# leaves out, e.g. --two-remove).  Ends with one
# line "N passed, N failed" (mutants caught, mutants that survived; one whose
# patch says "Caught-by: transcripts" counts as caught by a failing transcript).
set -u -o pipefail
cd "$(dirname "$0")/../.."
mode=${1:?mode}
seeds=${2:?seeds}
jobs=${3:-2}
mutdir=${SIM_MUT_DIR:-build/sim/mut} # another simulator's mutant builds (see README)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
names=$(ls test/sim/mutants/*.patch | sed 's|.*/||; s|\.patch$||')

# sim ARGS...: a mutant's simulator, bounded: a mutant may livelock or flood
# the network until memory runs out, which counts as caught.
sim() {
	local limit=$1
	shift
	(ulimit -v 2000000 && exec timeout "$limit" "$@")
}

# run_one NAME: writes $dir/NAME.out ("caught K of N ...") and $dir/NAME.log
run_one() {
	local name=$1 sim=$mutdir/$1/dragonraft-sim log=$dir/$1.log t0 s n chunk first args
	t0=$(date +%s)
	args=$(sed -n 's/^# Sim-args: //p' "test/sim/mutants/$name.patch")
	: >"$log"
	if [ "$mode" = check ] && grep -q '^# Caught-by: transcripts' "test/sim/mutants/$name.patch"; then
		# out of the simulator's reach (the patch says why): a transcript must fail
		"$mutdir/$name/raft-script" test/raft/testdata/*.txt 2>&1 |
			sed -n 's|^test/raft/testdata/\(.*\)\.txt: FAILED$|FAIL seed - nodes -: transcript \1: failed|p' >"$log"
	elif [ "$mode" = check ]; then
		sim 600 "$sim" --seed-start 1 --runs "$seeds" --stop-at-fail $args >>"$log" 2>&1 ||
			grep -q '^FAIL' "$log" ||
			echo "FAIL seed ? nodes ?: crash: $(tail -n 1 "$log")" >>"$log"
	else
		# chunks, so that a crashing mutant costs one chunk, rerun seed by seed
		chunk=100
		for ((s = 1; s <= seeds; s += chunk)); do
			n=$((seeds - s + 1 < chunk ? seeds - s + 1 : chunk))
			if ! sim 600 "$sim" --seed-start "$s" --runs "$n" $args >"$dir/$name.chunk" 2>&1 &&
				! grep -qE '^[0-9]+ passed, [0-9]+ failed$' "$dir/$name.chunk"; then
				for ((k = s; k < s + n; k++)); do
					sim 60 "$sim" --seed-start "$k" --runs 1 $args >"$dir/$name.one" 2>&1 ||
						grep -q '^FAIL' "$dir/$name.one" ||
						echo "FAIL seed $k nodes ?: crash: $(tail -n 1 "$dir/$name.one")" >>"$log"
					grep '^FAIL' "$dir/$name.one" >>"$log"
				done
			else
				grep '^FAIL' "$dir/$name.chunk" >>"$log"
			fi
		done
	fi
	local caught props
	caught=$(grep -c '^FAIL' "$log")
	first=$(grep -m1 '^FAIL' "$log" | sed -E 's/^FAIL seed ([0-9?-]+) nodes ([0-9?-]+): ([^:]*):.*/seed \1 (\2 nodes): \3/')
	props=$(grep '^FAIL' "$log" | sed -E 's/^FAIL seed [0-9?-]+ nodes [0-9?-]+: ([^:]*):.*/\1/' |
		sort | uniq -c | sort -rn | awk '{printf "%s%s %s", sep, $2, $1; sep=", "}')
	if [ "$mode" = check ]; then
		echo "$name: ${first:-NOT caught in $seeds seeds} ($(($(date +%s) - t0))s)" >"$dir/$name.out"
		[ "$caught" -gt 0 ] && touch "$dir/$name.ok"
	else
		# the scripted tests (test/raft) against the same mutant, for comparison
		local scripts
		scripts=$("$mutdir/$name/raft-script" test/raft/testdata/*.txt 2>&1 |
			sed -n 's|^test/raft/testdata/\(.*\)\.txt: FAILED$|\1|p' | paste -sd, -)
		echo "$name: caught $caught/$seeds${first:+, first $first}${props:+; $props}; transcripts: ${scripts:-none} ($(($(date +%s) - t0))s)" >"$dir/$name.out"
		if [ "$caught" -gt 0 ] || { [ -n "$scripts" ] &&
			grep -q '^# Caught-by: transcripts' "test/sim/mutants/$name.patch"; }; then
			touch "$dir/$name.ok"
		fi
	fi
}

t0=$(date +%s)
export mode seeds dir mutdir
export -f run_one sim
printf '%s\n' $names | xargs -P "$jobs" -I{} bash -c 'run_one {}'
pass=0
fail=0
for name in $names; do
	cat "$dir/$name.out"
	if [ -e "$dir/$name.ok" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
done
echo "mutants: $(echo $names | wc -w) in $(($(date +%s) - t0))s"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
