#!/usr/bin/env bash
# bench/pg_snapshot.sh - full table snapshots (issue 14) against pg_dump | psql.
#
# For each row count in BENCH_ROWS (default "100000 1000000"): five local
# PostgreSQL servers with dragonraft; group 1 on nodes 1-3 with that many
# rows in two tables (60% in t, 40% in u) and a log compacted below them
# (snapshot_entries 1000; compaction_overhead 4000, so that a joining node
# catches up from the log after its load even while a client writes; with
# 100, as until 2026-11-30, it could need a second snapshot).  Then, for
# each mode in BENCH_WRITER (default "0 1"), a bare node (4, then 5) is added
# and joins, so the leader exports a full snapshot, the engine streams it and
# the new node loads it; after it, the same two tables are copied with
# `pg_dump -t t -t u | psql` into a new database of the leader's server.
# Both run under the same conditions: in mode 0 nothing else runs; in mode 1
# one client writes on the leader (pgbench, one row per transaction, into a
# third table of the group) during the join AND during pg_dump | psql.
#
# Per mode it prints the snapshot's phases (from the servers' LOG lines):
# export, transfer (from the export's end to the load's start; negative when
# they overlap), load (up to its commit), and "snapshot" from the export's
# start to the load's end; the CPU time of the exporter and of the loader
# (the rest of their time they waited: for I/O, or for a core on a busy
# machine); the file size; join_group's total; the writes on the leader during the
# join and the longest; pg_dump | psql's total, pg_dump's alone (to a pipe
# that discards it, timed separately) and the dump's size; the writes during
# it.  The last line is the headline, one comparison per row count and mode.
#
#   BENCH_ROWS="100000 1000000" BENCH_WRITER="0 1" bash bench/pg_snapshot.sh
#
# (Until 2026-11-30, pg_dump | psql ran after the join on an idle cluster
# even when the join had a writer, and the snapshot's time was the sum of its
# phases.)  Runs as root (servers as postgres) or as an ordinary user, like
# make check.
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

# writer_start RUN TAG SECS LEADER: one pgbench client writing on the leader for
# SECS seconds (per-transaction log RUN/pgb-TAG.*); WRITER is its pid.  Waits 2 s so
# that it is under way.
writer_start() {
	lc_as_user "$PG_BINDIR/pgbench" -n -c 1 -T "$3" -f "$1/w.sql" -l --log-prefix="$1/pgb-$2" \
		-h "$LC_DIR" -p "${LC_PGPORT[$4]}" -U postgres postgres >"$1/$2-pgbench.out" 2>&1 &
	WRITER=$!
	sleep 2
}

# writer_stats RUN TAG T0 T1 SECS (once the writer ended): "count longest_ms" of its
# writes that overlap [T0, T1] (pgbench's log: client, transaction, latency us,
# script, epoch s, us).
writer_stats() {
	[ $(($4 - $3 + 2000)) -lt $(($5 * 1000)) ] ||
		echo "warning: $2 outlasted the writer; its longest write covers only part of it" >&2
	{ cat "$1/pgb-$2".* 2>/dev/null || true; } | awk -v t0="$3" -v t1="$4" '
		{ end_ms = $5 * 1000 + int($6 / 1000); if (end_ms >= t0 && end_ms - $3 / 1000 <= t1) { n++; if ($3 > max) max = $3 } }
		END { printf "%d %.0f", n, max / 1000 }'
}

# join_and_dump RUN ROWS LEADER NODE MEMBERS WRITE: node NODE joins, then pg_dump | psql.
join_and_dump() {
	local run=$1 rows=$2 l=$3 node=$4 members=$5 write=$6 mode
	local secs=$((4 + rows / 100000)) t0 t1 jstats=- dstats=-
	mode=$([ "$write" = 1 ] && echo "one writer" || echo "no writer")

	local exports
	exports=$(grep -c 'exported a snapshot of group 1' "$run/node$l.log" || true)
	[ "$write" = 0 ] || writer_start "$run" "join$node" "$secs" "$l"
	t0=$(date +%s%3N)
	lc_psql "$l" -c "SELECT dragonraft.add_member(1, $node, '127.0.0.1:${LC_RAFTPORT[$node]}')" >/dev/null
	lc_psql "$node" -c "SELECT dragonraft.join_group(1, '$members')" >/dev/null 2>"$run/join$node.txt"
	t1=$(date +%s%3N)
	[ "$write" = 0 ] || { wait "$WRITER"; jstats=$(writer_stats "$run" "join$node" "$t0" "$t1" "$secs"); }

	local l_log n_log
	l_log=$(grep 'exported a snapshot of group 1' "$run/node$l.log" | tail -1)
	n_log=$(grep 'loaded the snapshot of group 1' "$run/node$node.log" | tail -1)
	[ -n "$l_log" ] && [ -n "$n_log" ] || { echo "no snapshot was exported and loaded" >&2; exit 1; }
	exports=$(($(grep -c 'exported a snapshot of group 1' "$run/node$l.log") - exports))
	[ "$exports" = 1 ] || echo "warning: $exports snapshots were exported for node $node (the last one counts)" >&2
	local bytes export_ms held_ms load_ms export_end load_start load_end transfer_ms snap_ms
	bytes=$(sed -E 's/.* ([0-9]+) bytes in .*/\1/' <<<"$l_log")
	export_ms=$(sed -E 's/.* bytes in ([0-9]+) ms.*/\1/' <<<"$l_log")
	held_ms=$(sed -E 's/.*apply held ([0-9]+) ms.*/\1/' <<<"$l_log")
	# (The CPU time the exporter and the loader used, when their LOG lines say it.)
	local export_cpu load_cpu
	export_cpu=$(grep -oE 'CPU [0-9]+' <<<"$l_log" | cut -c5-) || export_cpu=-
	load_cpu=$(grep -oE 'CPU [0-9]+' <<<"$n_log" | cut -c5-) || load_cpu=-
	load_ms=$(sed -E 's/.* bytes in ([0-9]+) ms.*/\1/' <<<"$n_log")
	export_end=$(log_ms "$l_log")
	load_end=$(log_ms "$n_log")
	load_start=$((load_end - load_ms))
	transfer_ms=$((load_start - export_end))
	snap_ms=$((load_end - (export_end - export_ms)))
	local rows_n
	rows_n=$(lc_psql "$node" -c "SELECT (SELECT count(*) FROM t) + (SELECT count(*) FROM u)")

	# The same two tables with pg_dump | psql into a new database of the leader's server.
	local db=dumpcopy$node d0 d1 p0 p1 dump_bytes
	lc_psql "$l" -c "CREATE DATABASE $db" >/dev/null
	[ "$write" = 0 ] || writer_start "$run" "dump$node" "$secs" "$l"
	d0=$(date +%s%3N)
	lc_as_user "$PG_BINDIR/pg_dump" -h "$LC_DIR" -p "${LC_PGPORT[$l]}" -U postgres -t t -t u postgres |
		grep -v dragonraft | lc_as_user "$PG_BINDIR/psql" -X -q -h "$LC_DIR" -p "${LC_PGPORT[$l]}" \
			-U postgres -d "$db" >/dev/null
	d1=$(date +%s%3N)
	[ "$write" = 0 ] || { wait "$WRITER"; dstats=$(writer_stats "$run" "dump$node" "$d0" "$d1" "$secs"); }
	p0=$(date +%s%3N)
	dump_bytes=$(lc_as_user "$PG_BINDIR/pg_dump" -h "$LC_DIR" -p "${LC_PGPORT[$l]}" -U postgres \
		-t t -t u postgres | wc -c)
	p1=$(date +%s%3N)
	[ "$(lc_as_user "$PG_BINDIR/psql" -X -At -h "$LC_DIR" -p "${LC_PGPORT[$l]}" -U postgres \
		-d "$db" -c "SELECT (SELECT count(*) FROM t) + (SELECT count(*) FROM u)")" = "$rows" ] ||
		echo "warning: pg_dump | psql copied a different number of rows" >&2

	printf '%d rows, %s: file %.1f MB; export %d ms (apply held %d ms, CPU %s ms), transfer %d ms, load %d ms (CPU %s ms); snapshot %d ms; join_group %d ms; node %d has %d rows; leader writes during the join %s, longest %s ms; pg_dump|psql %d ms (pg_dump alone %d ms, %.1f MB), leader writes during it %s, longest %s ms\n' \
		"$rows" "$mode" "$(awk -v b="$bytes" 'BEGIN { print b / 1e6 }')" "$export_ms" "$held_ms" "$export_cpu" \
		"$transfer_ms" "$load_ms" "$load_cpu" "$snap_ms" "$((t1 - t0))" "$node" "$rows_n" "${jstats% *}" "${jstats#* }" \
		"$((d1 - d0))" "$((p1 - p0))" "$(awk -v b="$dump_bytes" 'BEGIN { print b / 1e6 }')" \
		"${dstats% *}" "${dstats#* }"
	headline+="${headline:+; }$rows rows, $mode: snapshot $snap_ms ms (export $export_ms, transfer $transfer_ms, load $load_ms) vs pg_dump|psql $((d1 - d0)) ms, leader's longest write ${jstats#* } ms"
}

one_run() {
	local rows=$1 run=$dir/r$rows l m3
	mkdir -p "$run"
	[ "$(id -u)" -eq 0 ] && chown "$TEST_USER" "$run"
	lc_create "$run" 5 "dragonraft.snapshot_entries = 1000
dragonraft.compaction_overhead = 4000
max_worker_processes = 16
log_min_messages = log"
	m3=$(sed -E 's/, "4": "[^"]*"//; s/, "5": "[^"]*"//' <<<"$LC_MEMBERS")
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
	# Past compaction_overhead (4 clients, one row per transaction), then a snapshot
	# everywhere: the log is compacted below the rows.  (The overhead leaves a joining
	# node room to catch up from the log after its load, while a client writes.)
	echo "INSERT INTO w (v) VALUES ('setup');" >"$run/w.sql"
	[ "$(id -u)" -eq 0 ] && chown "$TEST_USER" "$run/w.sql"
	lc_as_user "$PG_BINDIR/pgbench" -n -c 4 -t 1100 -f "$run/w.sql" -h "$LC_DIR" -p "${LC_PGPORT[$l]}" \
		-U postgres postgres >/dev/null
	local idx
	idx=$(lc_psql "$l" -c "SELECT applied_index FROM dragonraft.status WHERE group_id = 1")
	for n in 1 2 3; do
		until [ "$(lc_psql "$n" -c "SELECT dragonraft.snapshot(1) >= $idx")" = t ]; do sleep 0.2; done
	done
	echo "INSERT INTO w (v) VALUES ('during');" >"$run/w.sql"

	# Node 4 joins in the first mode, node 5 (with node 4 a member) in the second.
	local node=4 members=$m3 write
	for write in ${BENCH_WRITER:-0 1}; do
		join_and_dump "$run" "$rows" "$l" "$node" "$members" "$write"
		members=${members%\}}", \"$node\": \"127.0.0.1:${LC_RAFTPORT[$node]}\"}"
		node=$((node + 1))
		[ $node -le 5 ] || break
	done
	lc_stop_all
	LC_N=0
}

for rows in ${BENCH_ROWS:-100000 1000000}; do
	one_run "$rows"
done
echo "pg_snapshot: $headline (election timeout $election_ms ms)"
