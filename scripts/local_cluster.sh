# Sourced (after scripts/pgenv.sh) by make demo and the benchmarks: N local
# PostgreSQL servers with dragonraft on loopback, each in $LC_DIR/nodeK, with
# node id K, talking mutual TLS with certificates from scripts/make-certs.sh
# (in $LC_DIR/certs).  Variables set: LC_DIR, LC_MEMBERS (the JSON that
# create_group takes), LC_PGPORT[K], LC_RAFTPORT[K].
#
#   lc_create DIR N [extra postgresql.conf lines]   initdb, configure and start
#   lc_psql K [psql args]                           psql -At on node K, database postgres
#   lc_start K / lc_stop K [mode]                   start or stop node K
#   lc_stop_all                                     stop every node (for traps)
declare -A LC_PGPORT LC_RAFTPORT
LC_DIR=
LC_N=0
LC_MEMBERS=

lc_as_user() { "${RUN_AS[@]}" "$@"; }

lc_free_port() {
	perl -MIO::Socket::INET -e \
		'print IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0)->sockport'
}

lc_psql() { lc_as_user "$PG_BINDIR/psql" -X -q -At -h "$LC_DIR" -p "${LC_PGPORT[$1]}" -U postgres -d postgres "${@:2}"; }

lc_start() { lc_as_user "$PG_BINDIR/pg_ctl" -D "$LC_DIR/node$1" -l "$LC_DIR/node$1.log" -w start >/dev/null; }

lc_stop() { lc_as_user "$PG_BINDIR/pg_ctl" -D "$LC_DIR/node$1" -m "${2:-fast}" -w stop >/dev/null; }

lc_stop_all() {
	local n
	for ((n = 1; n <= LC_N; n++)); do
		[ -f "$LC_DIR/node$n/postmaster.pid" ] && lc_stop "$n" immediate 2>/dev/null || true
	done
}

# Wait (up to 60 s) until node K's engine worker runs.
lc_wait_engine() {
	local deadline=$((SECONDS + 60))
	until [ "$(lc_psql "$1" -c "SELECT engine_state FROM dragonraft.node_status()" 2>/dev/null)" = running ]; do
		[ $SECONDS -lt $deadline ] || { echo "node $1: engine worker did not start" >&2; return 1; }
		sleep 0.1
	done
}

lc_create() {
	local n
	LC_DIR=$1
	LC_N=$2
	LC_MEMBERS=
	[ "$(id -u)" -eq 0 ] && chown "$TEST_USER" "$LC_DIR"
	lc_as_user bash scripts/make-certs.sh "$LC_DIR/certs" "$LC_N" >/dev/null
	for ((n = 1; n <= LC_N; n++)); do
		LC_PGPORT[$n]=$(lc_free_port)
		LC_RAFTPORT[$n]=$(lc_free_port)
		LC_MEMBERS+="${LC_MEMBERS:+, }\"$n\": \"127.0.0.1:${LC_RAFTPORT[$n]}\""
		lc_as_user "$PG_BINDIR/initdb" -D "$LC_DIR/node$n" -A trust -U postgres >/dev/null
		cat >>"$LC_DIR/node$n/postgresql.conf" <<CONF
port = ${LC_PGPORT[$n]}
listen_addresses = '127.0.0.1'
unix_socket_directories = '$LC_DIR'
shared_preload_libraries = 'dragonraft'
dragonraft.node_id = $n
dragonraft.listen_address = '127.0.0.1:${LC_RAFTPORT[$n]}'
dragonraft.ssl_cert_file = '$LC_DIR/certs/node$n.crt'
dragonraft.ssl_key_file = '$LC_DIR/certs/node$n.key'
dragonraft.ssl_ca_file = '$LC_DIR/certs/ca.crt'
dragonraft.ssl_crl_file = '$LC_DIR/certs/crl.pem'
${3:-}
CONF
		lc_start "$n"
	done
	LC_MEMBERS="{$LC_MEMBERS}"
	for ((n = 1; n <= LC_N; n++)); do
		lc_psql "$n" -c 'CREATE EXTENSION dragonraft'
		lc_wait_engine "$n"
	done
}
