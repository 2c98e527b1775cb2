#!/usr/bin/env bash
# bench/pgbench.sh - pgbench tpcb-like on dragonraft beside PostgreSQL's own
# synchronous replication and a single server (issue 13), then the failover
# write gap.
#
# Three setups on this machine, all PostgreSQL 15 with the same settings:
#   dragonraft  3 servers, one group, pgbench's four tables replicated
#               (mutual TLS between the nodes, default rtt_ms/election_rtt);
#               pgbench runs against the leader
#   sync        a primary and two streaming standbys, synchronous_commit on,
#               synchronous_standby_names = 'ANY 1 (s1, s2)'; the standbys
#               stream over TLS (ssl = on, sslmode=require), as dragonraft's
#               nodes talk; BENCH_SYNC_SSL=0 streams over plain TCP instead
#   single      one server, synchronous_commit on
# Scale BENCH_SCALE (10), BENCH_CLIENTS (8) clients, BENCH_SECONDS (30) per
# run, BENCH_ROUNDS (2) rounds, each round running the three setups in turn,
# the order reversed every other round.  TPS is the mean over the rounds;
# latency mean and p99 come from pgbench's per-transaction logs.
#
# Then the failover write gap: a writer per node (one INSERT per psql
# session, the time taken when COMMIT returns), SIGKILL to the leader's
# postmaster and all its processes, and the time from the old leader's last
# successful commit to the first one on the new leader (the writers take a
# few milliseconds per INSERT, so this is within about 10 ms);
# BENCH_FAILOVERS (3) kills, the median is the headline.  The old leader is
# restarted and rejoins between kills.
#
# For each setup it also prints each SQL statement's mean latency (pgbench
# -r, averaged over the rounds: which statements a setup makes slower), and
# where the CPU went, per transaction: the
# servers' processes by kind (backends are the postmasters' reaped
# children, read when pgbench's connections have ended), from /proc.
#
# The last line is the headline.  Run it under the machine's PostgreSQL lock
# when others share the machine: flock /tmp/dragonraft-pg.lock make bench-pgbench
set -eu -o pipefail
cd "$(dirname "$0")/.."
. scripts/pgenv.sh
. scripts/local_cluster.sh
. bench/pgbench_tables.sh

scale=${BENCH_SCALE:-10}
clients=${BENCH_CLIENTS:-8}
secs=${BENCH_SECONDS:-30}
rounds=${BENCH_ROUNDS:-2}
failovers=${BENCH_FAILOVERS:-3}
sync_ssl=${BENCH_SYNC_SSL:-1}

dir=$(make_workdir bench-pgbench)
[ "$(id -u)" -eq 0 ] && chown "$TEST_USER" "$dir"
SYNC_PORTS=()
cleanup() {
	lc_stop_all
	for d in primary s1 s2 single; do
		[ -f "$dir/$d/postmaster.pid" ] && lc_as_user "$PG_BINDIR/pg_ctl" -D "$dir/$d" -m immediate -w stop >/dev/null 2>&1 || true
	done
	rm -rf "$dir"
}
trap cleanup EXIT
conf="shared_buffers = 256MB
max_wal_size = 2GB
checkpoint_timeout = 30min
synchronous_commit = on"

# ---- plain PostgreSQL: a single server, a primary with two standbys --------
plain_start() { # NAME PORT
	lc_as_user "$PG_BINDIR/pg_ctl" -D "$dir/$1" -l "$dir/$1.log" -w start >/dev/null
}
plain_init() { # NAME PORT [extra conf]
	lc_as_user "$PG_BINDIR/initdb" -D "$dir/$1" -A trust -U postgres >/dev/null
	printf '%s\n' "port = $2" "listen_addresses = '127.0.0.1'" "unix_socket_directories = '$dir'" \
		"$conf" "${3:-}" >>"$dir/$1/postgresql.conf"
}
psql_at() { lc_as_user "$PG_BINDIR/psql" -X -q -At -h "$dir" -p "$1" -U postgres -d postgres "${@:2}"; }

single_port=$(lc_free_port)
plain_init single "$single_port"
plain_start single
primary_port=$(lc_free_port)
plain_init primary "$primary_port" "synchronous_standby_names = 'ANY 1 (s1, s2)'
wal_level = replica"
echo "host replication postgres 127.0.0.1/32 trust" >>"$dir/primary/pg_hba.conf"
sslmode=disable
if [ "$sync_ssl" = 1 ]; then
	# A self-signed certificate: the standbys encrypt (sslmode=require), as
	# dragonraft's nodes do, without checking it (neither side is attacked here).
	lc_as_user openssl req -new -x509 -days 2 -nodes -subj /CN=127.0.0.1 \
		-keyout "$dir/primary/server.key" -out "$dir/primary/server.crt" >/dev/null 2>&1
	printf '%s\n' "ssl = on" >>"$dir/primary/postgresql.conf"
	sslmode=require
fi
plain_start primary
for s in s1 s2; do
	port=$(lc_free_port)
	SYNC_PORTS+=("$port")
	lc_as_user "$PG_BINDIR/pg_basebackup" -h 127.0.0.1 -p "$primary_port" -U postgres -D "$dir/$s" -R -X stream >/dev/null
	printf '%s\n' "port = $port" "primary_conninfo = 'host=127.0.0.1 port=$primary_port user=postgres application_name=$s sslmode=$sslmode'" \
		>>"$dir/$s/postgresql.auto.conf"
	plain_start "$s"
done
until [ "$(psql_at "$primary_port" -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND sync_state = 'quorum'")" = 2 ]; do
	sleep 0.1
done
[ "$(psql_at "$primary_port" -c "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_replication USING (pid) WHERE ssl")" = $((sync_ssl * 2)) ] ||
	{ echo "bench/pgbench.sh: the standbys' TLS is not as asked (BENCH_SYNC_SSL=$sync_ssl)" >&2; exit 1; }

# ---- dragonraft -------------------------------------------------------------
mkdir -p "$dir/dr"
lc_create "$dir/dr" 3 "$conf"
for n in 1 2 3; do
	lc_psql "$n" -c "SELECT dragonraft.create_group(1, '$LC_MEMBERS')" >/dev/null
done
leader_of() { lc_psql "$1" -c "SELECT leader_id FROM dragonraft.status WHERE group_id = 1 AND state = 'ok' AND (role <> 'leader' OR applied_index >= commit_index)"; }
# Wait (up to 60 s) until nodes $2... agree on a writable leader other than
# $1 (0: any); print it.
agreed_leader() {
	local deadline=$((SECONDS + 60)) not=$1 l n ok
	shift
	while [ $SECONDS -lt $deadline ]; do
		l=$(leader_of "$1" 2>/dev/null || true)
		ok=${l:+yes}
		[ "$l" = "$not" ] && ok=
		for n in "$@"; do [ "$(leader_of "$n" 2>/dev/null || true)" = "$l" ] || ok=; done
		[ -n "$ok" ] && { echo "$l"; return 0; }
		sleep 0.05
	done
	echo "no agreed leader within 60 s" >&2
	return 1
}
L=$(agreed_leader 0 1 2 3)

pgbench_tables "$L" "$scale"
# Every node has the rows before the runs start.
want=$(lc_psql "$L" -c "SELECT dragonraft.execute(1, 'SELECT 1')")
for n in 1 2 3; do
	until [ "$(lc_psql "$n" -c "SELECT applied_index >= $want FROM dragonraft.status WHERE group_id = 1")" = t ]; do
		sleep 0.1
	done
done
for p in "$primary_port" "$single_port"; do
	lc_as_user "$PG_BINDIR/pgbench" -i -q -s "$scale" -h "$dir" -p "$p" -U postgres postgres >/dev/null 2>&1
done
# Every server starts its first round with pgbench's tables in its buffers
# (the standbys and the followers too: they update the same pages), so the
# first setup to run does not pay for the caches the others find warm.
for p in "$primary_port" "$single_port"; do
	psql_at "$p" -c "CREATE EXTENSION pg_prewarm" >/dev/null
done
for n in 1 2 3; do lc_psql "$n" -c "CREATE EXTENSION pg_prewarm" >/dev/null; done
prewarm="SELECT sum(pg_prewarm(c)) FROM unnest(ARRAY['pgbench_accounts', 'pgbench_accounts_pkey',
	'pgbench_branches', 'pgbench_branches_pkey', 'pgbench_tellers', 'pgbench_tellers_pkey',
	'pgbench_history']::regclass[]) c"
until [ "$(psql_at "$primary_port" -c "SELECT count(*) FROM pg_stat_replication WHERE replay_lsn = pg_current_wal_lsn()")" = 2 ]; do
	sleep 0.1 # the standbys replayed the load and the extension
done
for p in "$primary_port" "${SYNC_PORTS[@]}" "$single_port"; do psql_at "$p" -c "$prewarm" >/dev/null; done
for n in 1 2 3; do lc_psql "$n" -c "$prewarm" >/dev/null; done

# ---- the runs ---------------------------------------------------------------
declare -A host port tps lat
host[dragonraft]=$dir/dr
port[dragonraft]=${LC_PGPORT[$L]}
host[sync]=$dir
port[sync]=$primary_port
host[single]=$dir
port[single]=$single_port
mkdir -p "$dir/logs"
[ "$(id -u)" -eq 0 ] && chown "$TEST_USER" "$dir/logs"

# The data directories of a setup's servers.
declare -A datadirs=([dragonraft]="$dir/dr/node1 $dir/dr/node2 $dir/dr/node3"
	[sync]="$dir/primary $dir/s1 $dir/s2" [single]="$dir/single")
# CPU clock ticks of a setup's processes by kind, one "kind ticks" line each.
cpu_ticks() { # SETUP
	local d pm p kind
	for d in ${datadirs[$1]}; do
		pm=$(head -n 1 "$d/postmaster.pid")
		awk '{ print "backends", $16 + $17 }' "/proc/$pm/stat"
		for p in $(pgrep -P "$pm"); do
			case "$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)" in
			*"dragonraft engine"*) kind=engine_worker ;;
			*"dragonraft apply"*) kind=apply_worker ;;
			*walsender*) kind=walsender ;;
			*walreceiver*) kind=walreceiver ;;
			*startup*) kind=startup ;;
			*walwriter*) kind=walwriter ;;
			*"postgres postgres"* | "") continue ;; # a backend still running: counted when reaped
			*) kind=other ;;
			esac
			awk -v k="$kind" '{ print k, $14 + $15 }' "/proc/$p/stat" 2>/dev/null || true
		done
	done
}
declare -A cpu txns
run() { # SETUP ROUND
	local out before after
	before=$(cpu_ticks "$1")
	out=$(lc_as_user "$PG_BINDIR/pgbench" -n -c "$clients" -j 2 -T "$secs" -r -l \
		--log-prefix="$dir/logs/$1.$2" -h "${host[$1]}" -p "${port[$1]}" -U postgres postgres 2>&1) || {
		echo "$out" >&2
		return 1
	}
	local t failed n
	sleep 0.2 # the backends exit and are reaped
	after=$(cpu_ticks "$1")
	cpu[$1]="${cpu[$1]:-}
$(printf '%s\n' "$before" | sed 's/$/ -/')
$after"
	n=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
	txns[$1]=$((${txns[$1]:-0} + n))
	t=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p')
	failed=$(echo "$out" | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p')
	echo "round $2 $1: $t tps${failed:+, $failed failed}"
	tps[$1]="${tps[$1]:-} $t"
	# pgbench -r: "   0.649   0  UPDATE pgbench_accounts SET ..." per SQL statement
	# (kept as "SETUP<tab>VERB TABLE<tab>ms")
	echo "$out" | awk -v s="$1" '/statement latencies/ { on = 1; next }
		on && $3 ~ /^[A-Z]/ { k = $3; sub(/;$/, "", k)
		                      for (i = 4; i <= NF; i++) if ($i ~ /^pgbench_/) { k = k " " $i; break }
		                      printf "%s\t%s\t%s\n", s, k, $1 }' >>"$dir/statements"
}
order=(dragonraft sync single)
for ((r = 1; r <= rounds; r++)); do
	if ((r % 2 == 0)); then list=(single sync dragonraft); else list=("${order[@]}"); fi
	for s in "${list[@]}"; do run "$s" "$r"; done
done

mean() { echo "$1" | tr ' ' '\n' | awk 'NF { s += $1; n++ } END { printf "%.0f", s / n }'; }
# Latency mean and p99 (ms) over every transaction of a setup's runs: the
# third field of pgbench's log is the latency in microseconds.
latency() {
	cat "$dir/logs/$1".* | awk '{ print $3 }' | sort -n | awk '
		{ v[NR] = $1; s += $1 }
		END { i = int(NR * 0.99); if (i < 1) i = 1; printf "mean %.2f ms, p99 %.2f ms", s / NR / 1000, v[i] / 1000 }'
}
hz=$(getconf CLK_TCK)
for s in dragonraft sync single; do
	lat[$s]=$(latency "$s")
	printf '%-10s %6s tps  latency %s\n' "$s" "$(mean "${tps[$s]}")" "${lat[$s]}"
done
# Where the latency goes: each statement's mean latency (ms) per setup, over the rounds.
awk -F '\t' '{ k = $2; if (!(k in seen)) { seen[k] = 1; keys[++n] = k }
       sum[$1, k] += $3; cnt[$1, k]++ }
     END { printf "%-28s %10s %10s %10s\n", "statement latency (ms)", "dragonraft", "sync", "single"
           for (i = 1; i <= n; i++) { k = keys[i]; printf "%-28s", k
               split("dragonraft sync single", ss, " ")
               for (j = 1; j <= 3; j++) printf " %10.3f", cnt[ss[j], k] ? sum[ss[j], k] / cnt[ss[j], k] : 0
               printf "\n" } }' "$dir/statements"
# CPU per transaction by kind of process (all servers of the setup summed).
for s in dragonraft sync single; do
	echo "${cpu[$s]}" | awk -v n="${txns[$s]}" -v hz="$hz" -v s="$s" '
		NF >= 2 { t[$1] += ($3 == "-") ? -$2 : $2 }
		END { line = sprintf("%-10s CPU per transaction:", s); total = 0
		      for (k in t) if (t[k] > 0) { us = t[k] / hz / n * 1e6; total += us
		                                   line = line sprintf(" %s %.0f us,", k, us) }
		      printf "%s total %.0f us\n", line, total }'
done

# Every dragonraft node ends with the leader's rows.
want=$(lc_psql "$L" -c "SELECT dragonraft.execute(1, 'SELECT 1')")
sum() { lc_psql "$1" -c "SELECT (SELECT sum(abalance) FROM pgbench_accounts) || '/' || (SELECT count(*) FROM pgbench_history)"; }
for n in 1 2 3; do
	until [ "$(lc_psql "$n" -c "SELECT applied_index >= $want FROM dragonraft.status WHERE group_id = 1")" = t ]; do
		sleep 0.1
	done
	[ "$(sum "$n")" = "$(sum "$L")" ] || {
		echo "node $n differs from the leader: $(sum "$n") against $(sum "$L")" >&2
		exit 1
	}
done

# ---- the failover write gap -------------------------------------------------
lc_psql "$L" -c "SELECT dragonraft.execute(1, 'CREATE TABLE gap (t timestamptz DEFAULT clock_timestamp())')" >/dev/null
lc_psql "$L" -c "SELECT dragonraft.replicate_table('gap', 1)" >/dev/null
# writer K: inserts on node K until $dir/stop exists; one line per commit
# (epoch seconds when COMMIT returned).
writer() {
	while [ ! -e "$dir/stop" ]; do
		if lc_psql "$1" -c "INSERT INTO gap DEFAULT VALUES" 2>/dev/null; then
			date +%s.%N >>"$dir/commits.$1"
		else
			sleep 0.01
		fi
	done
}
# SIGKILL to node $1's postmaster and all its children at once; returns
# once they are gone.
kill_server() {
	local pm
	pm=$(head -n 1 "$LC_DIR/node$1/postmaster.pid")
	kill -KILL $(pgrep -P "$pm") "$pm" 2>/dev/null || true
	while kill -0 "$pm" 2>/dev/null; do sleep 0.01; done
	rm -f "$LC_DIR/node$1/postmaster.pid" # it died: no server runs there
}
gaps=()
for ((k = 1; k <= failovers; k++)); do
	rm -f "$dir/stop" "$dir"/commits.*
	L=$(agreed_leader 0 1 2 3)
	for n in 1 2 3; do writer "$n" & done
	until [ -s "$dir/commits.$L" ] && [ "$(wc -l <"$dir/commits.$L")" -ge 20 ]; do sleep 0.05; done
	kill_server "$L"
	others=()
	for n in 1 2 3; do [ "$n" = "$L" ] || others+=("$n"); done
	until [ -n "$(cat "${others[@]/#/$dir/commits.}" 2>/dev/null)" ]; do sleep 0.05; done
	touch "$dir/stop"
	wait
	# From the old leader's last commit to the first one on another node.
	g=$(for n in "${others[@]}"; do cat "$dir/commits.$n" 2>/dev/null || true; done | sort -n |
		awk -v b="$(sort -n "$dir/commits.$L" | tail -n 1)" '$1 > b && !g { g = $1 - b } END { printf "%.3f", g }')
	gaps+=("$g")
	echo "failover $k: node $L killed; node $(agreed_leader "$L" "${others[@]}") took writes; write gap $g s"
	lc_start "$L"
	agreed_leader 0 1 2 3 >/dev/null
done
gap=$(printf '%s\n' "${gaps[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')

d=$(mean "${tps[dragonraft]}")
s=$(mean "${tps[sync]}")
o=$(mean "${tps[single]}")
echo "settings: scale $scale, $clients clients, $secs s x $rounds rounds per setup; standbys over $([ "$sync_ssl" = 1 ] && echo TLS || echo plain TCP); $conf" | tr '\n' ' '
echo
echo "pgbench_bench: dragonraft $d tps, sync replication $s tps, single $o tps; dragonraft/sync $(awk -v a="$d" -v b="$s" 'BEGIN { printf "%.2f", a / b }'), dragonraft/single $(awk -v a="$d" -v b="$o" 'BEGIN { printf "%.2f", a / b }'); failover write gap $gap s"
