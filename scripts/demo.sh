#!/usr/bin/env bash
# make demo: a local 3-node dragonraft cluster on this machine.
#
# Installs what is missing, builds and installs the extension, starts three
# PostgreSQL 15 servers with dragonraft preloaded (node ids 1, 2, 3), creates
# a Raft group on them, shows its status from each server, moves the
# leadership, stops the leader's server and shows the new leader, then
# starts it again.  It says what it does at each step.  Then it stops the
# servers and removes their data; DEMO_KEEP=1 leaves them running (it prints
# how to stop them).
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

say "Starting three PostgreSQL servers in $dir (node ids 1, 2 and 3), each with"
echo "   dragonraft in shared_preload_libraries and CREATE EXTENSION dragonraft; the nodes"
echo "   talk mutual TLS with certificates that scripts/make-certs.sh made in $dir/certs."
lc_create "$dir" 3
for n in 1 2 3; do
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

say "Every member knows every member's Raft and client address (dragonraft.members on node $first, the leader, with each member's progress):"
show "$first" "SELECT node_id, address, client_address, voting, match_index, lag_entries FROM dragonraft.members ORDER BY node_id"

target=$((first % 3 + 1))
say "Moving the leadership to node $target: SELECT dragonraft.transfer_leader(1, $target); on node $first"
lc_psql "$first" -c "SELECT dragonraft.transfer_leader(1, $target)" >/dev/null
echo "   transfer_leader returned once node $target led; node 1 sees leader $(agreed_leader "$first" 1 2 3)."

others=()
for n in 1 2 3; do
	[ "$n" = "$target" ] || others+=("$n")
done
say "Stopping the leader's server (node $target, pg_ctl stop -m fast)."
lc_stop "$target"
t0=$(date +%s.%N)
new=$(agreed_leader "$target" "${others[@]}")
echo "   Nodes ${others[0]} and ${others[1]} elected node $new within $(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }') s:"
show "${others[0]}" "$status"

say "Starting node $target again: it rejoins as a follower of node $new."
lc_start "$target"
lc_wait_engine "$target"
agreed_leader "$target" 1 2 3 >/dev/null
show "$target" "$status"

cat <<MSG

What runs today: each server's engine worker runs the Raft engine (LogDB in
PGDATA/dragonraft, TCP transport), its apply worker applies committed
entries with the applied index in a replication origin per group, and
dragonraft.status / members / stat_groups show what happens; the server
logs say when a node leads, follows, or loses sight of another node.
Still to come: replicated tables (dragonraft.replicate_table, the write
path through the log, follower errors naming the leader), then membership
changes, snapshots of the tables and linearizable reads.
MSG
if [ "${DEMO_KEEP:-0}" = 1 ]; then
	echo "servers left running; stop them with: for n in 1 2 3; do ${RUN_AS[*]} $PG_BINDIR/pg_ctl -D $dir/node\$n stop; done"
fi
