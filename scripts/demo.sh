#!/usr/bin/env bash
# make demo: a local 3-node dragonraft cluster on this machine.
#
# Builds and installs the extension, starts three PostgreSQL 15 servers with
# dragonraft preloaded (node ids 1, 2, 3), shows each node's engine worker,
# then stops them and removes their data.  Set DEMO_KEEP=1 to leave them
# running (the script prints how to stop them).
set -eu -o pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
make --no-print-directory install >/dev/null
. scripts/pgenv.sh

dir=$(make_workdir demo)
[ "$(id -u)" -eq 0 ] && chown "$TEST_USER" "$dir"
as_user() { "${RUN_AS[@]}" "$@"; }

stop_all() {
	for n in 1 2 3; do
		[ -f "$dir/node$n/postmaster.pid" ] &&
			as_user "$PG_BINDIR/pg_ctl" -D "$dir/node$n" -m fast stop >/dev/null 2>&1 || true
	done
	rm -rf "$dir"
}
[ "${DEMO_KEEP:-0}" = 1 ] || trap stop_all EXIT

free_port() {
	perl -MIO::Socket::INET -e \
		'print IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0)->sockport'
}

members=""
declare -A pgport
for n in 1 2 3; do
	pgport[$n]=$(free_port)
	rport=$(free_port)
	members+="${members:+,}\"$n\":\"127.0.0.1:$rport\""
	as_user "$PG_BINDIR/initdb" -D "$dir/node$n" -A trust -U postgres >/dev/null
	cat >>"$dir/node$n/postgresql.conf" <<CONF
port = ${pgport[$n]}
listen_addresses = ''
unix_socket_directories = '$dir'
shared_preload_libraries = 'dragonraft'
dragonraft.node_id = $n
dragonraft.listen_address = '127.0.0.1:$rport'
CONF
	as_user "$PG_BINDIR/pg_ctl" -D "$dir/node$n" -l "$dir/node$n.log" -w start >/dev/null
done

psql_n() { as_user "$PG_BINDIR/psql" -X -q -h "$dir" -p "${pgport[$1]}" -U postgres -d postgres "${@:2}"; }

for n in 1 2 3; do
	psql_n "$n" -c 'CREATE EXTENSION IF NOT EXISTS dragonraft' >/dev/null
	deadline=$((SECONDS + 30))
	until [ "$(psql_n "$n" -Atc "SELECT engine_state FROM dragonraft.node_status()")" = running ]; do
		[ $SECONDS -lt $deadline ] || { echo "node $n: engine worker did not start" >&2; exit 1; }
		sleep 0.1
	done
done

echo "dragonraft demo: three PostgreSQL servers in $dir"
echo "members of a future group: {$members}"
for n in 1 2 3; do
	psql_n "$n" -Atc "SELECT format('node %s: engine %s (pid %s), PostgreSQL port ${pgport[$n]}, Raft address %s',
		node_id, engine_state, engine_pid, current_setting('dragonraft.listen_address'))
		FROM dragonraft.node_status()"
done
cat <<MSG

What runs today: each server loads dragonraft from shared_preload_libraries and
starts its engine worker (see pg_stat_activity), and CREATE EXTENSION works.
Built and tested as plain C, but not yet inside the worker: the Raft core,
the LogDB, the transport and the multi-group engine (make check runs them).
Not built yet: the engine running in the worker, and with it create_group(),
replicate_table() and the replicated write path; this demo will create a group
and replicate a table across the three nodes once they exist.
MSG
if [ "${DEMO_KEEP:-0}" = 1 ]; then
	echo "servers left running; stop them with: for n in 1 2 3; do ${RUN_AS[*]} $PG_BINDIR/pg_ctl -D $dir/node\$n stop; done"
fi
