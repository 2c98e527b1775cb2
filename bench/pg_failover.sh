#!/usr/bin/env bash
# bench/pg_failover.sh - how long a group is without a leader when its
# leader's server stops (issue 12).
#
# Three local PostgreSQL servers with dragonraft at the default timing
# (rtt_ms 50, election_rtt 10: a 500 ms election timeout), one group.  Each
# of BENCH_RUNS runs (default 5) stops the leader's server (pg_ctl -m fast),
# then measures from the moment it is down until the other two servers agree
# on a new leader in dragonraft.status; then starts the old leader again and
# waits until it follows.  The last line is the headline.
set -eu -o pipefail
cd "$(dirname "$0")/.."
. scripts/pgenv.sh
. scripts/local_cluster.sh

runs=${BENCH_RUNS:-5}
dir=$(make_workdir bench-failover)
trap 'lc_stop_all; rm -rf "$dir"' EXIT
lc_create "$dir" 3
for n in 1 2 3; do
	lc_psql "$n" -c "SELECT dragonraft.create_group(1, '$LC_MEMBERS')" >/dev/null
done

# On node $1: wait until it and node $2 agree on a leader that is not $3; print
# the time (epoch seconds) at which it saw it.
agree() {
	lc_psql "$1" -c "DO \$\$
	DECLARE deadline timestamptz := clock_timestamp() + interval '60 s';
	BEGIN
	  WHILE NOT EXISTS (SELECT 1 FROM dragonraft.status WHERE group_id = 1 AND state = 'ok'
	                      AND leader_id IS DISTINCT FROM $3) LOOP
	    IF clock_timestamp() > deadline THEN RAISE EXCEPTION 'no new leader'; END IF;
	    PERFORM pg_sleep(0.005);
	  END LOOP;
	END \$\$" && lc_psql "$1" -c "SELECT extract(epoch FROM clock_timestamp())" &&
		until [ "$(lc_psql "$2" -c "SELECT leader_id FROM dragonraft.status WHERE group_id = 1")" = \
			"$(lc_psql "$1" -c "SELECT leader_id FROM dragonraft.status WHERE group_id = 1")" ]; do
			sleep 0.05
		done
}

leader_of() { lc_psql "$1" -c "SELECT leader_id FROM dragonraft.status WHERE group_id = 1 AND state = 'ok'"; }

times=()
for ((r = 1; r <= runs; r++)); do
	until old=$(leader_of 1) && [ -n "$old" ] && [ "$(leader_of 2)" = "$old" ] && [ "$(leader_of 3)" = "$old" ]; do
		sleep 0.1
	done
	others=()
	for n in 1 2 3; do
		[ "$n" = "$old" ] || others+=("$n")
	done
	lc_stop "$old" fast
	down=$(date +%s.%N)
	seen=$(agree "${others[0]}" "${others[1]}" "$old" | tail -n 1)
	t=$(awk -v a="$seen" -v b="$down" 'BEGIN { printf "%.3f", a - b }')
	times+=("$t")
	echo "run $r: node $old stopped; node $(leader_of "${others[0]}") leads after $t s"
	lc_start "$old"
	until [ "$(lc_psql "$old" -c "SELECT role FROM dragonraft.status WHERE group_id = 1 AND state = 'ok'")" = follower ]; do
		sleep 0.1
	done
done
printf '%s\n' "${times[@]}" | sort -n | awk -v n="$runs" '
	{ t[NR] = $1; s += $1 }
	END { printf "pg_failover: new leader in status after a leader stops, %d runs: min %.2f s, median %.2f s, max %.2f s, mean %.2f s (election timeout 0.50 s)\n",
	      n, t[1], t[int((n + 1) / 2)], t[n], s / n }'
