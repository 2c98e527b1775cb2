#!/usr/bin/env bash
# sim-check.sh SEEDS3 SEEDS5: the simulator's share of `make check`.
#
# 1. The self-test: each checker must flag a forged violation.
# 2. SEEDS3 seeds with 3 nodes and SEEDS5 with 5 nodes against the core as
#    written: each seed is one test.
# 3. Seeds that failed once (regressions).
# 4. A seed reproduces its run byte for byte.
# (The mutation suite, sim-mutants-check, shows that the seeds find bugs.)
# Ends with one line "N passed, N failed".
set -u -o pipefail
cd "$(dirname "$0")/../.."
seeds3=${1:-600}
seeds5=${2:-400}
sim=test/sim/dragonraft-sim
pass=0
fail=0
out=$(mktemp)
trap 'rm -f "$out" "$out".*' EXIT

count() { # count LOGFILE: add its "N passed, N failed" line to the totals
	local line p f
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$1" | tail -n 1)
	p=${line%% passed*}
	f=${line#*, }
	f=${f%% failed*}
	pass=$((pass + ${p:-0}))
	fail=$((fail + ${f:-1}))
}

build/sim/rel/sim-selftest >"$out" 2>&1
grep -E '^\[  (FAILED|ERROR)' "$out"
p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out")
f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$out")
[ -z "$p" ] && [ -z "$f" ] && f=1
echo "sim: self-test: ${p:-0} passed, ${f:-0} failed"
pass=$((pass + ${p:-0}))
fail=$((fail + ${f:-0}))

# the two node counts side by side (two cores), reported in order
t0=$(date +%s)
"$sim" --seed-start 1 --runs "$seeds3" --nodes 3 >"$out.3" 2>&1 &
"$sim" --seed-start 1 --runs "$seeds5" --nodes 5 >"$out.5" 2>&1 &
wait
for n in 3 5; do
	grep '^FAIL' "$out.$n" | head -n 20
	echo "sim: $n nodes: $(tail -n 1 "$out.$n") ($(($(date +%s) - t0))s for both)"
	count "$out.$n"
done

# A voter removed from two voters too (--two-remove, which users may do with
# force): a third of the 3-node seeds, a quarter of the 5-node ones.
t0=$(date +%s)
"$sim" --seed-start 1 --runs "$((seeds3 / 3))" --nodes 3 --two-remove >"$out.3" 2>&1 &
"$sim" --seed-start 1 --runs "$((seeds5 / 4))" --nodes 5 --two-remove >"$out.5" 2>&1 &
wait
for n in 3 5; do
	grep '^FAIL' "$out.$n" | head -n 20
	echo "sim: $n nodes, --two-remove: $(tail -n 1 "$out.$n") ($(($(date +%s) - t0))s for both)"
	count "$out.$n"
done

# Seeds that failed once, each with the fix that made it pass:
#   3:1019595 3:1022196 3:1039487  a follower's snapshot is made when it is
#     sent, with the membership as of its index (review 11 F1)
#   3:9003402  a commit index that may cover a membership change is saved
#     at once, and every save stores the current one (review 15 F3; fails
#     with --lazy-conf-commit)
#   3:200480  leader completeness counts the term an entry was committed in,
#     not its own (a checker's false alarm: a candidate of term 8 won with a
#     late vote after term 9 committed an entry of term 7 it lacks)
# (run without deferred syncs, as when they failed), and with them:
#   5:3 3:4  raft_has_ready is false while the only committed entries are
#     above what is durable (a leader's sync outstanding); before, the
#     leader kept having empty Readys ("keeps having a Ready")
#   3:1906 3:9244  a vote request carries the candidate's commit index, and a
#     voter holding the candidate's last entry takes it; before, a voter
#     promoted just before its leader crashed never learned it was one
#     ("liveness-election")
# and with --two-remove (review 41):
#   3:388 (--no-defer) 3:13 (--defer)  a leader's appends that tell a commit
#     index covering a membership change leave after its synced save of it;
#     before, a leader of two that removed the other crashed before its
#     save, the removed one had learnt the commit and left, and the leader
#     restarted with both voters ("liveness-election"; fails with
#     --early-conf-appends)
#   3:16 3:280 (--no-defer)  a leader of two voters never commits its own
#     removal, it hands over to the other, which commits it; before, the
#     other restarted without knowing the removal committed, the leader gone
#     (fails with mutant self-removal-committed)
#   5:13958 (--defer)  the simulator's driver reports the entries of a
#     deferred Ready saved synced for its commit index durable, as the engine
#     does; before, that leader never counted its own entry
#   5:12981 (--defer)  the driver reports unsynced writes that a commit
#     save before a membership change's apply made durable, as the engine's
#     next background sync does; before, the sync in flight had started
#     before the last of them, no other came, and the leader never applied
#     its entry (a simulator bug, not one of the engine)
#   3:14196 (--no-defer)  ... and hands over again at a heartbeat once its
#     transfer timed out; before, holding back its removal with its
#     uncommitted bytes at their limit, it never did ("liveness-progress")
#   3:260174 (--defer)  a voter left alone elected itself and crashed while
#     its Ready saved the new term, sending nothing; restarted at the term
#     before, it voted for the other in that term: the checker took the
#     two for leaders of one term (it now forgets a leadership that left
#     no trace: sim_check_crashed; a simulator bug, not one of the core)
#   3:264778 (--defer)  a voter left alone elected itself and committed its
#     1,461 uncommitted entries at once: the driver's bound on Readys per
#     loop, taken before the election, allowed 1,000 ("api: keeps having
#     a Ready"; a simulator bug)
regressions="3:1019595 3:1022196 3:1039487 3:9003402 3:200480"
defer_regressions="5:3 3:4 3:1906 3:9244"
two_regressions="3:388:--no-defer 3:13:--defer 3:16:--no-defer 3:280:--no-defer 3:14196:--no-defer 5:13958:--defer 5:12981:--defer 3:260174:--defer 3:264778:--defer"
before=$fail
for spec in $regressions; do
	"$sim" --seed-start "${spec#*:}" --runs 1 --nodes "${spec%%:*}" --no-defer >"$out" 2>&1
	grep '^FAIL' "$out"
	count "$out"
done
for spec in $defer_regressions; do
	"$sim" --seed-start "${spec#*:}" --runs 1 --nodes "${spec%%:*}" --defer >"$out" 2>&1
	grep '^FAIL' "$out"
	count "$out"
done
for spec in $two_regressions; do
	n=${spec%%:*}
	rest=${spec#*:}
	"$sim" --seed-start "${rest%%:*}" --runs 1 --nodes "$n" "${rest#*:}" --two-remove >"$out" 2>&1
	grep '^FAIL' "$out"
	count "$out"
done
echo "sim: regression seeds ($regressions; $defer_regressions deferred; $two_regressions" \
	"with --two-remove): $((fail - before)) failed"

t0=$(date +%s)
"$sim" --seed-start 7 --runs 2 --steps 5000 --trace >"$out.a" 2>&1
"$sim" --seed-start 7 --runs 2 --steps 5000 --trace >"$out.b" 2>&1
if [ -s "$out.a" ] && cmp -s "$out.a" "$out.b"; then
	echo "sim: seeds 7-8 reproduce byte for byte ($(wc -l <"$out.a") trace lines, $(($(date +%s) - t0))s)"
	pass=$((pass + 1))
else
	echo "sim: seeds 7-8 do NOT reproduce: traces differ"
	fail=$((fail + 1))
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
