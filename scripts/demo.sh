#!/usr/bin/env bash
# make demo: a local 3-node dragonraft cluster on this machine.
#
# Installs what is missing, builds and installs the extension, starts three
# PostgreSQL 15 servers with dragonraft preloaded (node ids 1, 2, 3; mutual
# TLS between them), creates a Raft group on them, creates a table through
# the log and replicates it, writes on the leader and shows the rows on all
# three, shows a follower's error naming the leader, kills the leader's
# server, shows the new leader taking a write, and starts the old leader
# again, which catches up.  Then a fourth server joins the group while a
# client writes on the leader: the log was compacted, so it gets a full
# snapshot of the tables, and a consistency check compares the four members'
# tables at one log index.  It says what it does at each step.  Then it
# stops the servers and removes their data; DEMO_KEEP=1 leaves them running
# (it prints how to stop them).
set -eu -o pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
make --no-print-directory install >/dev/null
. scripts/pgenv.sh
. scripts/local_cluster.sh

dir=$(make_workdir demo)
[ "${DEMO_KEEP:-0}" = 1 ] || trap 'lc_stop_all; rm -rf "$dir"' EXIT

say() { printf '\n== %s\n' "$*"; }
show() { lc_as_user "$PG_BINDIR/psql" -X -h "$dir" -p "${LC_PGPORT[$1]}" -U postgres -d postgres -c "$2"; }
status="SELECT group_id, node_id, role, term, leader_id, commit_index, applied_index, state
          FROM dragonraft.status"
leader() { lc_psql "$1" -c "SELECT leader_id FROM dragonraft.status WHERE group_id = 1 AND state = 'ok'"; }
# Wait (up to 30 s) until the given nodes agree on a leader of group 1 other
# than node $1 (0: any); print it.
agreed_leader() {
	local deadline=$((SECONDS + 30)) not=$1 l n ok
	shift
	while [ $SECONDS -lt $deadline ]; do
		l=$(leader "$1")
		ok=${l:+yes}
		[ "$l" = "$not" ] && ok=
		for n in "$@"; do [ "$(leader "$n")" = "$l" ] || ok=; done
		[ -n "$ok" ] && { echo "$l"; return 0; }
		sleep 0.1
	done
	echo "the nodes did not agree on a leader within 30 s" >&2
	return 1
}

say "Starting four PostgreSQL servers in $dir (node ids 1 to 4), each with"
echo "   dragonraft in shared_preload_libraries and CREATE EXTENSION dragonraft; the nodes"
echo "   talk mutual TLS with certificates that scripts/make-certs.sh made in $dir/certs."
echo "   The group starts on nodes 1-3; node 4 joins it at the end.  (The log is compacted"
echo "   down to 10 entries below the applied index: dragonraft.compaction_overhead = 10.)"
lc_create "$dir" 4 "dragonraft.compaction_overhead = 10"
LC_MEMBERS=$(sed -E 's/, "4": "[^"]*"//' <<<"$LC_MEMBERS")
for n in 1 2 3 4; do
	echo "   node $n: PostgreSQL on port ${LC_PGPORT[$n]}, Raft transport on 127.0.0.1:${LC_RAFTPORT[$n]}"
done

say "Creating group 1 on every node: SELECT dragonraft.create_group(1, '$LC_MEMBERS');"
for n in 1 2 3; do
	lc_psql "$n" -c "SELECT dragonraft.create_group(1, '$LC_MEMBERS')" >/dev/null
done
first=$(agreed_leader 0 1 2 3)
echo "   The three members elected node $first as leader.  Each node's view:"
for n in 1 2 3; do
	echo "-- dragonraft.status on node $n"
	show "$n" "$status"
done

leader=$first
others=()
for n in 1 2 3; do
	[ "$n" = "$leader" ] || others+=("$n")
done
say "Creating a table on every node through the log: dragonraft.execute(1, 'CREATE TABLE ...')"
echo "   on node ${others[0]}, a follower: execute() forwards the command to the leader, and every"
echo "   member runs it when it applies that entry of the log, in the same order everywhere."
show "${others[0]}" "SELECT dragonraft.execute(1, 'CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric NOT NULL DEFAULT 0)') AS log_index"

say "Replicating it: SELECT dragonraft.replicate_table('accounts', 1); on the leader (node $leader)."
show "$leader" "SELECT dragonraft.replicate_table('accounts', 1)"

say "Writing on the leader with ordinary SQL: COMMIT returns once a majority has the change in its Raft log."
show "$leader" "INSERT INTO accounts VALUES (1, 'ann', 100), (2, 'bob', 50)"
show "$leader" "BEGIN; UPDATE accounts SET balance = balance - 10 WHERE id = 1; UPDATE accounts SET balance = balance + 10 WHERE id = 2; COMMIT"
# Each follower applies the entry a moment after the leader's COMMIT.
caught_up() { # the log index every node in "$@" must have applied
	local idx=$1 n deadline=$((SECONDS + 30))
	shift
	for n in "$@"; do
		until [ "$(lc_psql "$n" -c "SELECT applied_index >= $idx FROM dragonraft.status WHERE group_id = 1")" = t ]; do
			[ $SECONDS -lt $deadline ] || { echo "node $n did not catch up within 30 s" >&2; return 1; }
			sleep 0.05
		done
	done
}
caught_up "$(lc_psql "$leader" -c "SELECT commit_index FROM dragonraft.status WHERE group_id = 1")" 1 2 3
for n in 1 2 3; do
	echo "-- accounts on node $n"
	show "$n" "SELECT * FROM accounts ORDER BY id"
done

say "Writing on a follower (node ${others[0]}) fails with SQLSTATE 25006, naming the leader and its client address:"
lc_as_user "$PG_BINDIR/psql" -X -h "$dir" -p "${LC_PGPORT[${others[0]}]}" -U postgres -d postgres \
	-c '\set VERBOSITY verbose' -c "INSERT INTO accounts VALUES (3, 'cy', 1)" 2>&1 | sed 's/^/   /' || true
echo "   Applications and poolers ask any node where writes go: SELECT * FROM dragonraft.leader(1);"
show "${others[0]}" "SELECT * FROM dragonraft.leader(1)"

say "Killing the leader's server (node $leader) with SIGKILL, as a crash would."
pm=$(head -n 1 "$dir/node$leader/postmaster.pid")
t0=$(date +%s.%N)
kill -KILL $(pgrep -P "$pm") "$pm" 2>/dev/null || true
while kill -0 "$pm" 2>/dev/null; do sleep 0.05; done
rm -f "$dir/node$leader/postmaster.pid" # it died: no server runs there
new=$(agreed_leader "$leader" "${others[@]}")
echo "   Nodes ${others[0]} and ${others[1]} elected node $new within $(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }') s:"
show "$new" "$status"

say "Writing on the new leader (node $new): the group goes on with two of its three members."
show "$new" "UPDATE accounts SET balance = balance + 1 WHERE id = 1"
caught_up "$(lc_psql "$new" -c "SELECT commit_index FROM dragonraft.status WHERE group_id = 1")" "${others[@]}"
for n in "${others[@]}"; do
	echo "-- accounts on node $n"
	show "$n" "SELECT * FROM accounts ORDER BY id"
done

say "Starting node $leader again: it rejoins as a follower and catches up from the leader's log."
lc_start "$leader"
lc_wait_engine "$leader"
agreed_leader 0 1 2 3 >/dev/null
caught_up "$(lc_psql "$new" -c "SELECT commit_index FROM dragonraft.status WHERE group_id = 1")" "$leader"
show "$leader" "$status"
echo "-- accounts on node $leader"
show "$leader" "SELECT * FROM accounts ORDER BY id"

say "Writing 500 more rows on the leader (node $new), then a snapshot on every member:"
echo "   SELECT dragonraft.snapshot(1); the log below it (minus 10 entries) is compacted."
printf "INSERT INTO accounts VALUES (%s, 'early', 1);\n" $(seq 100 599) | lc_psql "$new" >/dev/null
idx=$(lc_psql "$new" -c "SELECT applied_index FROM dragonraft.status WHERE group_id = 1")
for n in 1 2 3; do
	until [ "$(lc_psql "$n" -c "SELECT dragonraft.snapshot(1) >= $idx")" = t ]; do sleep 0.2; done
done
show "$new" "SELECT node_id, applied_index, snapshot_index FROM dragonraft.status"

say "Adding node 4 while a client writes on the leader: on the leader,"
echo "   SELECT dragonraft.add_member(1, 4, '127.0.0.1:${LC_RAFTPORT[4]}'); then on node 4"
echo "   SELECT dragonraft.join_group(1, '<the members' Raft addresses>').  The entries node 4"
echo "   needs were compacted: the leader exports its tables (one snapshot, rows in their on-disk form) and"
echo "   node 4 loads them in one transaction, then follows the log."
printf "INSERT INTO accounts VALUES (%s, 'during the join', 1);\n" $(seq 1000 1299) |
	lc_psql "$new" >"$dir/writer.out" 2>&1 &
writer=$!
lc_psql "$new" -c "SELECT dragonraft.add_member(1, 4, '127.0.0.1:${LC_RAFTPORT[4]}')" >/dev/null
lc_as_user "$PG_BINDIR/psql" -X -h "$dir" -p "${LC_PGPORT[4]}" -U postgres -d postgres \
	-c "SELECT dragonraft.join_group(1, '$LC_MEMBERS')" 2>&1 | sed 's/^/   /'
wait $writer
echo "   The writer's 300 inserts: $(grep -c . "$dir/writer.out" || true) errors."
caught_up "$(lc_psql "$new" -c "SELECT commit_index FROM dragonraft.status WHERE group_id = 1")" 1 2 3 4
for n in "$new" 4; do
	echo "-- node $n"
	show "$n" "SELECT count(*) AS rows, count(*) FILTER (WHERE owner = 'during the join') AS written_during_the_join, sum(balance) FROM accounts"
done
show 4 "SELECT group_id, snapshots_received FROM dragonraft.stat_groups"

say "Checking that the four members hold the same table: SELECT dragonraft.check_consistency(1);"
echo "   on the leader proposes a marker; each member, when its apply reaches that log index,"
echo "   digests the group's tables as they are at exactly that index (in the background) into"
echo "   dragonraft.consistency_checks: the same digest everywhere, or a divergence is seen."
check=$(lc_psql "$new" -c "SELECT dragonraft.check_consistency(1)")
deadline=$((SECONDS + 30))
for n in 1 2 3 4; do
	until [ "$(lc_psql "$n" -c "SELECT count(*) FROM dragonraft.consistency_checks WHERE group_id = 1 AND log_index = $check")" != 0 ]; do
		[ $SECONDS -lt $deadline ] || { echo "node $n recorded no check at $check within 30 s" >&2; exit 1; }
		sleep 0.1
	done
	echo "-- node $n"
	show "$n" "SELECT log_index, relid, rows, left(digest, 16) || '...' AS digest, error FROM dragonraft.consistency_checks WHERE group_id = 1 AND log_index = $check"
done
digests=$(for n in 1 2 3 4; do lc_psql "$n" -c "SELECT string_agg(coalesce(digest, 'error: ' || error), ',' ORDER BY relid) FROM dragonraft.consistency_checks WHERE group_id = 1 AND log_index = $check"; done | sort -u | wc -l)
[ "$digests" = 1 ] || { echo "the members' digests differ" >&2; exit 1; }
echo "   All four members agree at log index $check."

cat <<MSG

That was dragonraft: DDL through the log (execute), tables joining a group
(replicate_table), writes on the leader that COMMIT once a majority has them,
followers that refuse writes and name the leader, a new leader within about
a second of a crash, a restarted node catching up from the log, and a new
node joining from a full snapshot of the tables while writes go on, and a
consistency check that every member's tables are the same at one log index.
Also built: linearizable reads and the other membership changes from SQL.
MSG
if [ "${DEMO_KEEP:-0}" = 1 ]; then
	echo "servers left running; stop them with: for n in 1 2 3 4; do ${RUN_AS[*]} $PG_BINDIR/pg_ctl -D $dir/node\$n stop; done"
fi
