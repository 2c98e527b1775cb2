#!/usr/bin/env bash
# bench/pg_groups.sh - many idle groups inside PostgreSQL (issue 12).
#
# Three local PostgreSQL servers with dragonraft, BENCH_GROUPS groups (default
# 1,000) created on each, then BENCH_IDLE seconds (default 60) without any work.
# Reports how long creating the groups took (until every group has a leader
# and every member's client address is applied everywhere), and per server
# the engine worker's RSS and CPU while idle.  The last line is the headline.
#
#   BENCH_GROUPS=1000 BENCH_IDLE=60 bash bench/pg_groups.sh
#
# BENCH_PERF=1 also records node 1's engine worker with perf while idle and
# prints where its CPU goes.  Runs as root (servers as postgres) or as an
# ordinary user, like make check.
set -eu -o pipefail
cd "$(dirname "$0")/.."
. scripts/pgenv.sh
. scripts/local_cluster.sh

groups=${BENCH_GROUPS:-1000}
idle=${BENCH_IDLE:-60}
dir=$(make_workdir bench-groups)
trap 'lc_stop_all; rm -rf "$dir"' EXIT
lc_create "$dir" 3 "dragonraft.max_groups = $((groups + 16))
max_replication_slots = $((groups + 16))"

# Create the groups on the three servers at once.
t0=$(date +%s.%N)
for n in 1 2 3; do
	lc_psql "$n" -c "SELECT count(dragonraft.create_group(g, '$LC_MEMBERS'))
	                   FROM generate_series(1, $groups) g" >/dev/null &
done
wait
t_calls=$(date +%s.%N)
ready="SELECT count(*) FROM dragonraft.status s
        WHERE s.state = 'ok' AND s.applied_index = s.commit_index
          AND (SELECT count(*) FROM dragonraft.member_info i WHERE i.group_id = s.group_id) = 3"
deadline=$((SECONDS + 600))
for n in 1 2 3; do
	until [ "$(lc_psql "$n" -c "$ready")" = "$groups" ]; do
		[ $SECONDS -lt $deadline ] || { echo "node $n: groups not ready after 600 s" >&2; exit 1; }
		sleep 0.2
	done
done
t_ready=$(date +%s.%N)
leaders=$(for n in 1 2 3; do lc_psql "$n" -c "SELECT count(*) FROM dragonraft.status WHERE role = 'leader'"; done | paste -sd/)

# Idle: the engine workers' CPU and RSS.
declare -A pid cpu0
hz=$(getconf CLK_TCK)
for n in 1 2 3; do
	pid[$n]=$(lc_psql "$n" -c 'SELECT engine_pid FROM dragonraft.node_status()')
	cpu0[$n]=$(awk '{print $14 + $15}' "/proc/${pid[$n]}/stat")
done
if [ "${BENCH_PERF:-0}" = 1 ]; then
	perf record -q -g -o "$dir/perf.data" -p "${pid[1]}" -- sleep "$idle" >/dev/null 2>&1
	perf report -i "$dir/perf.data" --no-children --percent-limit 1.5 --stdio -g none 2>/dev/null |
		grep -E '^ +[0-9]' | head -25
else
	sleep "$idle"
fi
worst_cpu=0
worst_rss=0
for n in 1 2 3; do
	ticks=$(($(awk '{print $14 + $15}' "/proc/${pid[$n]}/stat") - cpu0[$n]))
	cpu=$(awk -v t="$ticks" -v hz="$hz" -v s="$idle" 'BEGIN { printf "%.2f", 100 * t / hz / s }')
	rss=$(awk '/^VmRSS/ {print $2}' "/proc/${pid[$n]}/status")
	anon=$(awk '/^RssAnon/ {print $2}' "/proc/${pid[$n]}/status")
	shm=$(awk '/^RssShmem/ {print $2}' "/proc/${pid[$n]}/status")
	quiet=$(lc_psql "$n" -c 'SELECT count(*) FILTER (WHERE quiescent) FROM dragonraft.status')
	echo "node $n: engine worker (pid ${pid[$n]}) idle ${idle} s: CPU ${cpu}% of a core, RSS $((rss / 1024)) MiB (private $((anon / 1024)) MiB, shared memory $((shm / 1024)) MiB), $quiet of $groups groups quiescent"
	worst_cpu=$(awk -v a="$cpu" -v b="$worst_cpu" 'BEGIN { print (a > b ? a : b) }')
	[ "$anon" -gt "$worst_rss" ] && worst_rss=$anon
done
printf 'pg_groups: %d groups x 3 servers: created in %.1f s (calls %.1f s), leaders %s; idle %d s: engine worker CPU <= %s%% of a core, private RSS <= %d MiB per server\n' \
	"$groups" "$(awk -v a="$t_ready" -v b="$t0" 'BEGIN { print a - b }')" \
	"$(awk -v a="$t_calls" -v b="$t0" 'BEGIN { print a - b }')" "$leaders" "$idle" "$worst_cpu" \
	"$((worst_rss / 1024))"
