#!/usr/bin/env bash
# bench/applied_index.sh - what recording the applied index costs (issue 12,
# DESIGN §4): a replication origin per group, whose position goes into the
# commit record (what dragonraft does), against a row per group in a
# group_state table (an extra UPDATE per transaction), and nothing at all
# (the floor).  bench/applied_index/applybench.c runs the apply worker's
# transaction in one backend (see there); this script runs it for batches
# of 1 entry (a transaction per entry, as a leader's commits will be) and of
# 100, with and without an effect per entry, with synchronous_commit off
# (the apply worker) and on, in 1 session and in 8 side by side (8 groups
# each, its own).  Each figure is entries per second, the mean of 2 alternating
# rounds; the last line is the headline.
set -eu -o pipefail
cd "$(dirname "$0")/.."
. scripts/pgenv.sh
. scripts/local_cluster.sh

make --no-print-directory -s -C bench/applied_index PG_CONFIG="$PG_CONFIG" >/dev/null
so=$PWD/bench/applied_index/applybench.so
dir=$(make_workdir bench-applied)
trap 'lc_stop_all; rm -rf "$dir"' EXIT
LC_N=1
LC_DIR=$dir
[ "$(id -u)" -eq 0 ] && chown "$TEST_USER" "$dir"
LC_PGPORT[1]=$(lc_free_port)
lc_as_user "$PG_BINDIR/initdb" -D "$dir/node1" -A trust -U postgres >/dev/null
cat >>"$dir/node1/postgresql.conf" <<CONF
port = ${LC_PGPORT[1]}
listen_addresses = ''
unix_socket_directories = '$dir'
max_replication_slots = 64
CONF
lc_start 1
lc_psql 1 -c "CREATE TABLE effect (id int PRIMARY KEY, v bigint);
              CREATE TABLE group_state (group_id int PRIMARY KEY, applied_index bigint);
              INSERT INTO group_state SELECT g, 0 FROM generate_series(1, 64) g;
              SELECT count(pg_replication_origin_create('bench_' || g)) FROM generate_series(1, 64) g;
              CREATE PROCEDURE applybench(text, int, int, int, int, bool) LANGUAGE c
                AS '$so', 'applybench';"

# entries/s of METHOD with SESSIONS sessions, BATCHES batches of SIZE, EFFECTS, SYNC.
run() {
	local method=$1 sessions=$2 batches=$3 size=$4 effects=$5 sync=$6 t0 t1 s
	t0=$(date +%s.%N)
	for ((s = 0; s < sessions; s++)); do
		lc_as_user env PGOPTIONS="-c synchronous_commit=$sync" "$PG_BINDIR/psql" -X -q \
			-h "$dir" -p "${LC_PGPORT[1]}" -U postgres -d postgres \
			-c "CALL applybench('$method', $((8 * s + 1)), 8, $batches, $size, $effects)" &
	done
	wait
	t1=$(date +%s.%N)
	awk -v n="$((sessions * batches * size))" -v a="$t1" -v b="$t0" 'BEGIN { printf "%.0f", n / (a - b) }'
}

declare -A sum
for sync in off on; do
	for sessions in 1 8; do
		for size in 1 100; do
			for effects in true false; do
				batches=20000
				[ "$sync" = on ] && batches=2000
				[ "$size" = 100 ] && batches=$((batches / 20))
				for round in 1 2; do
					methods=(origin row none)
					[ "$round" = 2 ] && methods=(none row origin)
					for m in "${methods[@]}"; do
						e=$(run "$m" "$sessions" "$batches" "$size" "$effects" "$sync")
						sum[$m]=$(awk -v a="${sum[$m]:-0}" -v b="$e" 'BEGIN { print a + b }')
					done
				done
				key="sync=$sync sessions=$sessions batch=$size effects=$effects"
				o=$(awk -v a="${sum[origin]}" 'BEGIN { printf "%.0f", a / 2 }')
				r=$(awk -v a="${sum[row]}" 'BEGIN { printf "%.0f", a / 2 }')
				n=$(awk -v a="${sum[none]}" 'BEGIN { printf "%.0f", a / 2 }')
				printf '%-50s origin %8d  row %8d  none %8d  origin/row %.2f\n' "$key" "$o" "$r" "$n" \
					"$(awk -v a="$o" -v b="$r" 'BEGIN { print a / b }')"
				ratios+=("$(awk -v a="$o" -v b="$r" 'BEGIN { print a / b }')")
				sum=()
			done
		done
	done
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{ r[NR] = $1 } END {
	printf "applied_index: origin/row entries per second over %d cases: min %.2f, median %.2f, max %.2f (above 1: origins cheaper)\n",
	       NR, r[1], r[int((NR + 1) / 2)], r[NR] }'
