#!/usr/bin/env bash
# bench/pg_snapshot.sh - full table snapshots (issue 14).
#
# For each row count in BENCH_ROWS (default "100000 1000000"): four local
# PostgreSQL servers with dragonraft; group 1 on nodes 1-3 with that many
# rows in two tables (60% in t, 40% in u) and a compacted log; then node 4
# is added and joins, so the leader exports a full snapshot, the engine
# streams it and node 4 loads it, while one client writes on the leader
# (pgbench, one row per transaction, into a third table of the group).
# Reports the export, transfer and load times and the file size (from the
# servers' LOG lines), the join's total, the longest write on the leader
# during the join, and the same tables copied with `pg_dump -t t -t u |
# psql` into another database of the same machine.  The last line is the
# headline.
#
#   BENCH_ROWS="100000 1000000" bash bench/pg_snapshot.sh
#
# BENCH_WRITER=0 joins with no client writing (otherwise the four servers
# share this machine's cores with the writer, while pg_dump | psql runs on
# an idle cluster).
#
# Runs as root (servers as postgres) or as an ordinary user, like make check.
set -eu -o pipefail
cd "$(dirname "$0")/.."
. scripts/pgenv.sh
. scripts/local_cluster.sh

dir=$(make_workdir bench-snapshot)
trap 'lc_stop_all; rm -rf "$dir"' EXIT
election_ms=500 # election_rtt (10) x rtt_ms (50), the defaults
headline=

# Milliseconds since the epoch of a server log line's timestamp.
log_ms() { date -d "$(cut -c1-23 <<<"$1")" +%s%3N; }

one_run() {
	local rows=$1 run=$dir/r$rows l members m3 n4_log l_log line
	mkdir -p "$run"
	[ "$(id -u)" -eq 0 ] && chown "$TEST_USER" "$run"
	lc_create "$run" 4 "dragonraft.snapshot_entries = 1000
dragonraft.compaction_overhead = 100
max_worker_processes = 16
log_min_messages = log"
	m3=$(sed -E 's/, "4": "[^"]*"//' <<<"$LC_MEMBERS")
	for n in 1 2 3; do lc_psql "$n" -c "SELECT dragonraft.create_group(1, '$m3')" >/dev/null; done
	l=
	until [ -n "$l" ]; do
		for n in 1 2 3; do
			[ "$(lc_psql "$n" -c "SELECT role FROM dragonraft.status WHERE group_id = 1")" = leader ] && l=$n
		done
		sleep 0.2
	done
	# The tables, then their rows in transactions of 50,000 (each one entry).
	lc_psql "$l" -c "SELECT dragonraft.execute(1, 'CREATE TABLE t (id bigint PRIMARY KEY, a int NOT NULL, b text NOT NULL); CREATE TABLE u (k text PRIMARY KEY, j jsonb NOT NULL, at timestamptz NOT NULL DEFAULT now()); CREATE TABLE w (id bigserial PRIMARY KEY, v text)')" >/dev/null
	lc_psql "$l" -c "SELECT dragonraft.replicate_table('t', 1)" -c "SELECT dragonraft.replicate_table('u', 1)" -c "SELECT dragonraft.replicate_table('w', 1)" >/dev/null
	local nt=$((rows * 6 / 10)) nu=$((rows - rows * 6 / 10)) i
	for ((i = 0; i < nt; i += 50000)); do
		lc_psql "$l" -c "INSERT INTO t SELECT g, g % 1000, md5(g::text) FROM generate_series($((i + 1)), $((i + 50000 < nt ? i + 50000 : nt))) g" >/dev/null
	done
	for ((i = 0; i < nu; i += 50000)); do
		lc_psql "$l" -c "INSERT INTO u SELECT 'key' || g, jsonb_build_object('g', g, 'h', md5(g::text)) FROM generate_series($((i + 1)), $((i + 50000 < nu ? i + 50000 : nu))) g" >/dev/null
	done
	# Past snapshot_entries, then a snapshot everywhere: the log is compacted.
	printf 'INSERT INTO w (v) VALUES (%s);\n' $(seq 1 1100) | lc_psql "$l" >/dev/null
	local idx
	idx=$(lc_psql "$l" -c "SELECT applied_index FROM dragonraft.status WHERE group_id = 1")
	for n in 1 2 3; do
		until [ "$(lc_psql "$n" -c "SELECT dragonraft.snapshot(1) >= $idx")" = t ]; do sleep 0.2; done
	done

	# One client writes on the leader during the join (per-transaction log).
	echo "INSERT INTO w (v) VALUES ('during');" >"$run/w.sql"
	[ "$(id -u)" -eq 0 ] && chown "$TEST_USER" "$run/w.sql"
	# (It runs for a fixed time that covers the join: 5 s + 3 s per 100,000 rows.)
	local secs=$((5 + rows * 3 / 100000))
	local pgb=
	if [ "${BENCH_WRITER:-1}" != 0 ]; then
		lc_as_user "$PG_BINDIR/pgbench" -n -c 1 -T "$secs" -f "$run/w.sql" -l --log-prefix="$run/pgb" \
			-h "$LC_DIR" -p "${LC_PGPORT[$l]}" -U postgres postgres >"$run/pgbench.out" 2>&1 &
		pgb=$!
		sleep 2
	fi
	local t0 t1
	t0=$(date +%s%3N)
	lc_psql "$l" -c "SELECT dragonraft.add_member(1, 4, '127.0.0.1:${LC_RAFTPORT[4]}')" >/dev/null
	lc_psql 4 -c "SELECT dragonraft.join_group(1, '$m3')" >/dev/null 2>"$run/join.txt"
	t1=$(date +%s%3N)
	[ -z "$pgb" ] || wait $pgb
	[ -z "$pgb" ] || [ $((t1 - t0 + 2000)) -lt $((secs * 1000)) ] ||
		echo "warning: the join outlasted the writer; its longest write covers only part of it" >&2

	l_log=$(grep 'exported a snapshot of group 1' "$run/node$l.log" | tail -1)
	n4_log=$(grep 'loaded the snapshot of group 1' "$run/node4.log" | tail -1)
	[ -n "$l_log" ] && [ -n "$n4_log" ] || { echo "no snapshot was exported and loaded" >&2; exit 1; }
	local bytes export_ms held_ms load_ms export_end load_start transfer_ms
	bytes=$(sed -E 's/.* ([0-9]+) bytes in .*/\1/' <<<"$l_log")
	export_ms=$(sed -E 's/.* bytes in ([0-9]+) ms.*/\1/' <<<"$l_log")
	held_ms=$(sed -E 's/.*apply held ([0-9]+) ms.*/\1/' <<<"$l_log")
	load_ms=$(sed -E 's/.* bytes in ([0-9]+) ms.*/\1/' <<<"$n4_log")
	export_end=$(log_ms "$l_log")
	load_start=$(($(log_ms "$n4_log") - load_ms))
	transfer_ms=$((load_start - export_end))
	# Writes on the leader during the join: count and the longest (pgbench's log:
	# client, transaction, latency us, script, epoch s, us).
	local stats
	stats=$({ cat "$run"/pgb.* 2>/dev/null || true; } | awk -v t0="$t0" -v t1="$t1" '
		{ end_ms = $5 * 1000 + int($6 / 1000); if (end_ms >= t0 && end_ms - $3 / 1000 <= t1) { n++; if ($3 > max) max = $3 } }
		END { printf "%d %.0f", n, max / 1000 }')
	local writes=${stats% *} stall_ms=${stats#* }
	local rows4
	rows4=$(lc_psql 4 -c "SELECT (SELECT count(*) FROM t) + (SELECT count(*) FROM u)")

	# The same two tables with pg_dump | psql into another database of the same server.
	lc_psql "$l" -c "CREATE DATABASE dumpcopy" >/dev/null
	local d0 d1 dump_bytes
	d0=$(date +%s%3N)
	lc_as_user "$PG_BINDIR/pg_dump" -h "$LC_DIR" -p "${LC_PGPORT[$l]}" -U postgres -t t -t u postgres |
		grep -v dragonraft | lc_as_user "$PG_BINDIR/psql" -X -q -h "$LC_DIR" -p "${LC_PGPORT[$l]}" \
			-U postgres -d dumpcopy >/dev/null
	d1=$(date +%s%3N)
	dump_bytes=$(lc_as_user "$PG_BINDIR/pg_dump" -h "$LC_DIR" -p "${LC_PGPORT[$l]}" -U postgres \
		-t t -t u postgres | wc -c)
	[ "$(lc_as_user "$PG_BINDIR/psql" -X -At -h "$LC_DIR" -p "${LC_PGPORT[$l]}" -U postgres \
		-d dumpcopy -c "SELECT (SELECT count(*) FROM t) + (SELECT count(*) FROM u)")" = "$rows" ] ||
		echo "warning: pg_dump | psql copied a different number of rows" >&2

	printf '%d rows: file %.1f MB; export %d ms (apply held %d ms), transfer %d ms, load %d ms; join_group %d ms; node 4 has %d rows; leader writes during the join %d, longest %d ms; pg_dump|psql %d ms (%.1f MB)\n' \
		"$rows" "$(awk -v b="$bytes" 'BEGIN { print b / 1e6 }')" "$export_ms" "$held_ms" \
		"$transfer_ms" "$load_ms" "$((t1 - t0))" "$rows4" "$writes" "$stall_ms" "$((d1 - d0))" \
		"$(awk -v b="$dump_bytes" 'BEGIN { print b / 1e6 }')"
	headline+="${headline:+; }$rows rows: snapshot $((export_ms + transfer_ms + load_ms)) ms (export $export_ms + transfer $transfer_ms + load $load_ms) vs pg_dump|psql $((d1 - d0)) ms, leader's longest write ${stall_ms} ms"
	lc_stop_all
	LC_N=0
}

for rows in ${BENCH_ROWS:-100000 1000000}; do
	one_run "$rows"
done
echo "pg_snapshot: $headline (election timeout $election_ms ms)"
