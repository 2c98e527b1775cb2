#!/usr/bin/env bash
# bench/pgbench_prof.sh - where dragonraft's CPU per pgbench transaction goes,
# and A/B comparisons of builds on one cluster (issue 13).
#
# One 3-node dragonraft cluster with pgbench's tables (as bench/pgbench.sh
# makes it), then BENCH_RUNS (3) rounds; each round runs pgbench tpcb-like
# (BENCH_CLIENTS 8, BENCH_SECONDS 25) once per build named in BENCH_BUILDS
# (paths of dragonraft.so files, each with "@name=value,..." settings for the
# servers if wanted; default: the installed one), in turn, the
# order reversed every other round.  Before each run the servers stop, the
# build's dragonraft.so is installed and they start again (the data stays).
#
# Per run it prints TPS and, per transaction (entries the leader committed in
# the measured window):
#   CPU from /proc by kind of process, as bench/pgbench.sh counts it (leader
#   backends: the postmaster's reaped children, whole run; workers: window),
#   and the time its threads waited runnable for a CPU (/proc/PID/task/*/schedstat:
#   run-queue wait per transaction, and per time slice: the scheduling delay)
#   and, from `perf stat --per-thread` over the window (BENCH_PERF=0: off),
#   task-clock, context switches and the system calls named in BENCH_SYSCALLS,
#   by kind (leader/follower engine worker, apply worker, backends, walwriter).
# BENCH_PERF_RECORD=1 also writes `perf record -g` profiles of the leader's
# and a follower's engine worker and one leader backend in the first round
# (perf.<build>.<who>.data in BENCH_OUT, default $TMPDIR/pgbench_prof).
#
# On a shared machine TPS is noise: compare CPU and counts per transaction,
# builds alternating, and report the spread.
set -eu -o pipefail
cd "$(dirname "$0")/.."
. scripts/pgenv.sh
. scripts/local_cluster.sh
. bench/pgbench_tables.sh

scale=${BENCH_SCALE:-10}
clients=${BENCH_CLIENTS:-8}
secs=${BENCH_SECONDS:-25}
# (the measured window is BENCH_SECONDS less 12 s of warm-up and perf stat)
if [ "$secs" -lt 15 ]; then
	echo "BENCH_SECONDS must be at least 15 (the window measured is 12 s shorter)" >&2
	exit 2
fi
runs=${BENCH_RUNS:-3}
perf_on=${BENCH_PERF:-1}
record=${BENCH_PERF_RECORD:-0}
out=${BENCH_OUT:-${TMPDIR:-/tmp}/pgbench_prof}
syscalls=${BENCH_SYSCALLS:-fdatasync fsync write writev pwrite64 read readv pread64 sendto sendmsg recvfrom recvmsg epoll_wait epoll_pwait kill futex}
pkglib=$("$PG_CONFIG" --pkglibdir)
read -r -a builds <<<"${BENCH_BUILDS:-$pkglib/dragonraft.so}"
mkdir -p "$out"

dir=$(make_workdir bench-prof)
[ "$(id -u)" -eq 0 ] && chown "$TEST_USER" "$dir"
cleanup() {
	lc_stop_all
	rm -rf "$dir"
}
trap cleanup EXIT
conf="shared_buffers = 256MB
max_wal_size = 2GB
checkpoint_timeout = 30min
synchronous_commit = on"

install_build() { cp "$1" "$pkglib/dragonraft.so.tmp" && mv "$pkglib/dragonraft.so.tmp" "$pkglib/dragonraft.so"; }
install_build "${builds[0]%%@*}"
mkdir -p "$dir/dr"
lc_create "$dir/dr" 3 "$conf
include_if_exists 'bench_extra.conf'"
for n in 1 2 3; do
	lc_psql "$n" -c "SELECT dragonraft.create_group(1, '$LC_MEMBERS')" >/dev/null
done
leader_of() { lc_psql "$1" -c "SELECT leader_id FROM dragonraft.status WHERE group_id = 1 AND state = 'ok' AND (role <> 'leader' OR applied_index >= commit_index)"; }
agreed_leader() {
	local deadline=$((SECONDS + 60)) l n ok
	while [ $SECONDS -lt $deadline ]; do
		l=$(leader_of 1 2>/dev/null || true)
		ok=${l:+yes}
		for n in 2 3; do [ "$(leader_of "$n" 2>/dev/null || true)" = "$l" ] || ok=; done
		[ -n "$ok" ] && { echo "$l"; return 0; }
		sleep 0.05
	done
	echo "no agreed leader within 60 s" >&2
	return 1
}
L=$(agreed_leader)
pgbench_tables "$L" "$scale"
caught_up() {
	local want n
	want=$(lc_psql "$L" -c "SELECT dragonraft.execute(1, 'SELECT 1')")
	for n in 1 2 3; do
		until [ "$(lc_psql "$n" -c "SELECT applied_index >= $want FROM dragonraft.status WHERE group_id = 1")" = t ]; do
			sleep 0.1
		done
	done
}
caught_up

# kind of process PID of node N (leader L): one word, or empty for a backend still running.
kind_of() { # PID N
	local role=follower
	[ "$2" = "$L" ] && role=leader
	case "$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" in
	*"dragonraft engine"*) echo "${role}_engine" ;;
	*"dragonraft apply"*) echo "${role}_apply" ;;
	*walwriter*) echo "${role}_walwriter" ;;
	*"postgres postgres"*) echo "${role}_backend" ;;
	"") echo gone ;;
	*) echo "${role}_other" ;;
	esac
}
# One line per process of the servers (pgbench's backends included): "pid kind
# ticks syscr syscw voluntary_cs involuntary_cs" (threads summed).
snap() {
	local n pm p k
	{
		for n in 1 2 3; do
			pm=$(head -n 1 "$LC_DIR/node$n/postmaster.pid")
			for p in $(pgrep -P "$pm"); do echo "$p $(kind_of "$p" "$n")"; done
		done
	} | while read -r p k; do
		case "$k" in gone | *_backend) continue ;; esac
		[ -n "${bk[$p]:-}" ] && continue
		echo "$p $k"
	done >"$out/snap.kinds"
	for p in "${!bk[@]}"; do echo "$p leader_backend" >>"$out/snap.kinds"; done
	perl -ne '
		my ($p, $k) = split;
		open(my $st, "<", "/proc/$p/stat") or next;
		my @f = split / /, scalar <$st>;
		my %io;
		open(my $io, "<", "/proc/$p/io") or next;
		while (<$io>) { $io{$1} = $2 if /^(\w+): (\d+)/ }
		my ($v, $nv, $rq, $sl) = (0, 0, 0, 0);
		for my $s (glob "/proc/$p/task/*/status") {
			open(my $fh, "<", $s) or next;
			while (<$fh>) { $v += $1 if /^voluntary_ctxt_switches:\s+(\d+)/; $nv += $1 if /^nonvoluntary_ctxt_switches:\s+(\d+)/ }
		}
		for my $s (glob "/proc/$p/task/*/schedstat") {
			open(my $fh, "<", $s) or next;
			my @ss = split / /, scalar <$fh>;
			$rq += $ss[1]; $sl += $ss[2];
		}
		print join(" ", $p, $k, $f[13] + $f[14], $io{syscr}, $io{syscw}, $v, $nv, $rq, $sl), "\n";' "$out/snap.kinds"
}
commit_index() { lc_psql "$L" -c "SELECT commit_index FROM dragonraft.status WHERE group_id = 1"; }
hz=$(getconf CLK_TCK)
events="context-switches"
for s in $syscalls; do
	perf list "syscalls:sys_enter_$s" 2>/dev/null | grep -q "sys_enter_$s" && events+=",syscalls:sys_enter_$s"
done

# The tables in shared_buffers on every node (each run starts the servers anew).
warm() {
	local n
	for n in 1 2 3; do
		lc_psql "$n" -c "CREATE EXTENSION IF NOT EXISTS pg_prewarm" \
			-c "SELECT sum(pg_prewarm(c)) FROM unnest(ARRAY['pgbench_accounts', 'pgbench_accounts_pkey',
			    'pgbench_branches', 'pgbench_tellers', 'pgbench_history']::regclass[]) c" >/dev/null
	done
}
# perf record -a -g (5 s) during a pgbench run of its own; the pids of the
# servers' processes by kind in perf.NAME.pids (perf report --pid ...).
profile() { # NAME
	local pgb n pm p k
	lc_as_user "$PG_BINDIR/pgbench" -n -c "$clients" -j 2 -T 15 -h "$LC_DIR" -p "${LC_PGPORT[$L]}" \
		-U postgres postgres >/dev/null 2>&1 &
	pgb=$!
	sleep 2
	: >"$out/perf.$1.pids"
	for n in 1 2 3; do
		pm=$(head -n 1 "$LC_DIR/node$n/postmaster.pid")
		for p in $(pgrep -P "$pm"); do echo "$p $(kind_of "$p" "$n")" >>"$out/perf.$1.pids"; done
	done
	lc_psql "$L" -c "SELECT pid, 'pgbench' FROM pg_stat_activity WHERE application_name = 'pgbench'" |
		tr '|' ' ' >>"$out/perf.$1.pids"
	perf record -a -g -F 999 -o "$out/perf.$1.data" -- sleep 5 >/dev/null 2>&1
	# The order of system calls of the engine workers and a backend (strace, 1 s).
	for k in leader_engine follower_engine leader_apply follower_apply; do
		p=$(awk -v k=$k '$2 == k { print $1; exit }' "$out/perf.$1.pids")
		timeout -s INT 1 strace -f -tt -T -p "$p" -o "$out/strace.$1.$k" 2>/dev/null &
	done
	p=$(awk '$2 == "pgbench" { print $1; exit }' "$out/perf.$1.pids")
	timeout -s INT 1 strace -tt -T -p "$p" -o "$out/strace.$1.backend" 2>/dev/null &
	wait "$pgb"
	wait
}
declare -A bk
run() { # BUILD ROUND
	local b=${1%%@*} r=$2 t0 t1 name pgb c0 c1 n tps p k
	name=$(basename "$b" .so) # builds/NAME/dragonraft.so, or NAME.so
	[ "$name" = dragonraft ] && name=$(basename "$(dirname "$b")")
	[ "$b" = "$1" ] || name+="@${1#*@}"
	for n in 1 2 3; do lc_stop "$n"; done
	install_build "$b"
	for n in 1 2 3; do
		if [ "$b" = "$1" ]; then : >"$LC_DIR/node$n/bench_extra.conf"; else echo "${1#*@}" | tr ',' '\n' >"$LC_DIR/node$n/bench_extra.conf"; fi
		lc_start "$n"
	done
	L=$(agreed_leader)
	caught_up
	warm
	if [ "$record" = 1 ] && [ "$r" = 1 ]; then profile "$name"; fi
	# (pgbench runs on after the windows: perf takes seconds to start here)
	lc_as_user "$PG_BINDIR/pgbench" -n -c "$clients" -j 2 -T "$((secs + 15))" -h "$LC_DIR" \
		-p "${LC_PGPORT[$L]}" -U postgres postgres >"$out/pgbench.out" 2>&1 &
	pgb=$!
	sleep 1.5
	bk=()
	for p in $(lc_psql "$L" -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench'"); do bk[$p]=1; done
	if [ "$perf_on" = 1 ]; then
		# First a window of system calls by kind with perf (which slows the servers down).
		local pids=() tids=$out/tids pc0 pc1
		: >"$tids"
		snap >/dev/null # (the kinds)
		while read -r p k; do
			pids+=("$p")
			for t in /proc/"$p"/task/*; do echo "${t##*/} $k" >>"$tids"; done
		done <"$out/snap.kinds"
		pc0=$(commit_index)
		perf stat --per-thread -x, -e "$events" -p "$(
			IFS=,
			echo "${pids[*]}"
		)" -o "$out/perf.stat" -- sleep 4 2>/dev/null || true
		pc1=$(commit_index)
	fi
	snap >"$out/snap.0"
	c0=$(commit_index)
	t0=$(date +%s.%N)
	sleep $((secs - 12))
	c1=$(commit_index)
	t1=$(date +%s.%N)
	snap >"$out/snap.1"
	[ "$(grep -c _backend "$out/snap.1")" = "$clients" ] || echo "warning: a backend exited in the window" >&2
	wait "$pgb"
	n=$((c1 - c0))
	tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$out/pgbench.out")
	printf 'round %s %-12s %5.0f tps; window %d entries, %.0f/s\n' "$r" "$name" "$tps" "$n" "$(echo "$n / ($t1 - $t0)" | bc -l)"
	grep -E 'aborted|ERROR' "$out/pgbench.out" | head -n 3 || true
	# Per transaction (entry), by kind: CPU us, read-like and write-like syscalls, context switches.
	awk -v n="$n" -v hz="$hz" -v name="$name" -v r="$r" '
		BEGIN { fmt = "  %s r%s %-18s cpu %4.0f us  syscr %5.2f  syscw %5.2f  cs %5.2f + %4.2f  runq %4.0f us (%3.0f us/slice)\n" }
		FNR == NR { c0[$1] = $3; r0[$1] = $4; w0[$1] = $5; v0[$1] = $6; nv0[$1] = $7; q0[$1] = $8; s0[$1] = $9; next }
		($1 in c0) { k = $2; cpu[k] += $3 - c0[$1]; rd[k] += $4 - r0[$1]; wr[k] += $5 - w0[$1]
		             vcs[k] += $6 - v0[$1]; nvcs[k] += $7 - nv0[$1]; rq[k] += $8 - q0[$1]; sl[k] += $9 - s0[$1]; ks[k] = 1 }
		END { for (k in ks) { printf fmt, name, r, k,
		                      cpu[k] / hz / n * 1e6, rd[k] / n, wr[k] / n, vcs[k] / n, nvcs[k] / n, rq[k] / n / 1e3, sl[k] ? rq[k] / sl[k] / 1e3 : 0
		                      tc += cpu[k]; tr += rd[k]; tw += wr[k]; tv += vcs[k]; tn += nvcs[k]; tq += rq[k]; ts += sl[k] }
		      printf fmt, name, r, "TOTAL",
		             tc / hz / n * 1e6, tr / n, tw / n, tv / n, tn / n, tq / n / 1e3, ts ? tq / ts / 1e3 : 0 }' "$out/snap.0" "$out/snap.1" | sort
	if [ "$perf_on" = 1 ]; then
		# perf's CSV: "comm-tid,count,unit,event,..."
		awk -F, -v n="$((pc1 - pc0))" -v name="$name" -v r="$r" '
			NR == FNR { kind[$1] = $2; next }
			/^#/ || NF < 4 { next }
			{ tid = $1; sub(/.*-/, "", tid); k = kind[tid]; if (k == "") k = "other"
			  ev = $4; sub(/syscalls:sys_enter_/, "", ev); sub(/-/, "_", ev)
			  v = $2 + 0; if (ev == "task_clock") next
			  c[k, ev] += v; ks[k] = 1; evs[ev] = 1 }
			END { for (k in ks) { line = sprintf("  perf %s r%s %-18s", name, r, k)
			                      for (e in evs) if (c[k, e] > 0) line = line sprintf(" %s %.3g", e, c[k, e] / n)
			                      print line } }' FS=' ' "$tids" FS=, "$out/perf.stat" | sort
	fi
}

for ((r = 1; r <= runs; r++)); do
	if ((r % 2 == 0)); then
		list=()
		for ((i = ${#builds[@]} - 1; i >= 0; i--)); do list+=("${builds[$i]}"); done
	else
		list=("${builds[@]}")
	fi
	for b in "${list[@]}"; do run "$b" "$r"; done
done
