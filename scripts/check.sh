#!/usr/bin/env bash
# make check: every test layer in order, stopping at the first failure, then
# one summary line per layer and a total.
#
#   build    dragonraft.so and the plain-C layers, warnings are errors
#   unit     C unit tests (cmocka), outside PostgreSQL, UNIT_JOBS (2) at a time
#   unit-asan the same under AddressSanitizer and UBSan
#   <steps>  CHECK_STEPS from the modules (simulator seeds, crash tests, ...)
#   fuzz     every libFuzzer target for FUZZ_SECONDS (10), FUZZ_JOBS (2) at a time,
#            from its seed corpus
#   regress  pg_regress (sql/, expected/) on a temporary instance
#   isolation PostgreSQL's isolation tester (test/isolation/specs) on one node
#   tap      TAP tests (test/t/) with PostgreSQL::Test::Cluster, TAP_JOBS (3) at a
#            time (each mostly waits: 2 take about 40% less time than 1, 3
#            another 12%: 605 s against 688 s for 59 tests); their
#            nodes copy one initdb
#
# With layer names as arguments (e.g. `bash scripts/check.sh regress tap`),
# only those run, after installing the extension.
set -u -o pipefail
cd "$(dirname "$0")/.."
top=$PWD

bash scripts/install-deps.sh || exit 1
. scripts/pgenv.sh
PG_ISOLATION_REGRESS=$PGXS_SRC/test/isolation/pg_isolation_regress

mkdir -p build/check
summary=()
total_pass=0
total_fail=0
start_all=$(date +%s)

finish() {
	echo
	echo "==== summary ===="
	for line in "${summary[@]}"; do echo "$line"; done
	echo "total time $(($(date +%s) - start_all))s"
	echo "$total_pass passed, $total_fail failed"
}

# run_layer NAME COMMAND...: the command's output must end with a line
# "N passed, N failed"; a non-zero exit or a missing line fails the layer.
run_layer() {
	local name=$1 log=build/check/$1.log t0 rc line p f
	shift
	echo "==== $name ===="
	t0=$(date +%s)
	"$@" 9>&- 2>&1 | tee "$log" # servers never inherit the lock
	rc=${PIPESTATUS[0]}
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	p=$(echo "$line" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
	f=$(echo "$line" | sed -n 's/^[0-9]* passed, \([0-9]*\) failed.*/\1/p')
	p=${p:-0}
	f=${f:-0}
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
	if [ -z "$line" ] || [ $((p + f)) -eq 0 ]; then
		echo "$name: ran no test (no 'N passed, N failed' line, or zero tests)" >&2
		f=1
	fi
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
	summary+=("$name: $p passed, $f failed ($(($(date +%s) - t0))s)")
	# what failed, at the end of the output (a CI log may keep only its tail)
	if [ "$f" -ne 0 ] && [ -s "build/check/$name.failures" ]; then
		while IFS= read -r line; do summary+=("  $line"); done <"build/check/$name.failures"
	fi
	if [ "$f" -ne 0 ]; then
		echo "$name failed; log: $log" >&2
		finish
		exit 1
	fi
}

build() {
	make -j2 --no-print-directory WERROR=1 all-c || return 1
	make --no-print-directory -j2 WERROR=1 ext || return 1
	echo "1 passed, 0 failed"
}

regress() {
	local dir tests
	dir=$(make_workdir regress)
	cp -r sql expected test/regress/regress.conf "$dir/"
	[ "$(id -u)" -eq 0 ] && chown -R postgres "$dir"
	tests=$(cd sql && ls *.sql | grep -v -- '--' | sed 's/\.sql$//' | sort)
	(cd "$dir" && "${RUN_AS[@]}" "$PG_REGRESS" --temp-instance=tmp_check \
		--temp-config=regress.conf --bindir="$PG_BINDIR" --inputdir=. \
		--outputdir=. --dbname=contrib_regression $tests) | tee "$dir/out.txt"
	local rc=${PIPESTATUS[0]}
	[ -f "$dir/regression.diffs" ] && cat "$dir/regression.diffs"
	local n ok fail
	n=$(echo "$tests" | wc -w)
	if [ "$rc" -eq 0 ]; then ok=$n; fail=0; else
		fail=$(sed -n 's/^ *\([0-9]*\) of [0-9]* tests failed.*/\1/p' "$dir/out.txt")
		fail=${fail:-$n}; ok=$((n - fail))
	fi
	echo "$ok passed, $fail failed"
	[ "$rc" -eq 0 ] && rm -rf "$dir"
	return "$rc"
}

isolation() {
	local dir tests rc
	dir=$(make_workdir isolation)
	cp -r test/isolation/specs test/isolation/expected test/regress/regress.conf "$dir/"
	[ "$(id -u)" -eq 0 ] && chown -R postgres "$dir"
	tests=$(cd test/isolation/specs && ls *.spec | sed 's/\.spec$//' | sort)
	(cd "$dir" && "${RUN_AS[@]}" "$PG_ISOLATION_REGRESS" --temp-instance=tmp_check \
		--temp-config=regress.conf --bindir="$PG_BINDIR" --inputdir=. \
		--outputdir=. --dbname=contrib_regression --load-extension=dragonraft \
		$tests) | tee "$dir/out.txt"
	rc=${PIPESTATUS[0]}
	[ -f "$dir/output_iso/regression.diffs" ] && cat "$dir/output_iso/regression.diffs"
	local n ok fail
	n=$(echo "$tests" | wc -w)
	if [ "$rc" -eq 0 ]; then ok=$n; fail=0; else
		fail=$(sed -n 's/^ *\([0-9]*\) of [0-9]* tests failed.*/\1/p' "$dir/out.txt")
		fail=${fail:-$n}; ok=$((n - fail))
	fi
	echo "$ok passed, $fail failed"
	[ "$rc" -eq 0 ] && rm -rf "$dir"
	return "$rc"
}

# Every TAP test, the longest first, so that the run does not end with one
# long test while the other slots are idle: the 30 of 30 s or more in the
# fresh CI run of 2026-12-05 13:20 (three at a time, beside helpers: 011
# 157 s, 046 111 s, 137 110 s, 136 79 s, 088 76 s ... down to 005 30 s),
# with 153 (new, about 55 s alone) after 046, then the others in order. A
# new long test belongs in the list: 137, left out, ran last once, alone
# for the final 110 s.
tap_order() {
	local t slow="011_snapshot 046_real_backpressure 153_join_waits_for_leader 137_join_failing_apply
		136_waits_engine_restart 088_snapshot_load_crash_kept 107_digest_exact_index
		093_logdb_full_restarts 080_commit_backend_killed 123_leave_during_commit 097_log_digest
		130_info_before_registration 002_three_nodes 012_snapshot_schema 105_digest_review 051_chaos
		090_damaged_logdb 086_snapshot_file_gone 010_membership 003_error_paths
		116_failover_deferred_sync 031_apply_conflicts 101_table_digest 037_snapshot_replay
		016_membership_rest 127_leave_during_load 138_chaos_wider 022_apply_parked 034_ddl_outcome
		005_failover 142_join_under_load"
	for t in $slow; do [ -f "$top/test/t/$t.pl" ] && echo "t/$t.pl"; done
	for t in "$top"/test/t/*.pl; do
		case " $(echo $slow) " in *" $(basename "$t" .pl) "*) ;; *) echo "t/$(basename "$t")" ;; esac
	done
}

tap() {
	local dir rc
	dir=$(make_workdir tap)
	mkdir -p "$dir/t"
	cp test/t/*.pl test/t/*.pm "$dir/t/"
	[ "$(id -u)" -eq 0 ] && chown -R postgres "$dir"
	# DragonCluster copies this one initdb for each node; made in the locale
	# PostgreSQL::Test::Utils gives its own initdb (no LC_ALL, LANGUAGE, and
	# LC_MESSAGES=C: untranslated server messages, which the tests match)
	(cd "$dir" && "${RUN_AS[@]}" env -u LC_ALL -u LANGUAGE LC_MESSAGES=C \
		"$PG_BINDIR/initdb" -D "$dir/initdb-template" -A trust -N) \
		>"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log"; return 1; }
	# and copies the CA and node certificates made here, once, for up to 5
	# nodes (each test's cluster has its own copy)
	(cd "$dir" && "${RUN_AS[@]}" bash "$top/scripts/make-certs.sh" "$dir/certs-template" 5) \
		>"$dir/certs.log" 2>&1 || { cat "$dir/certs.log"; return 1; }
	# The partition test adds and removes nftables rules, which takes
	# CAP_NET_ADMIN; the tests run as postgres.  As root, give them a copy
	# of nft with that capability that only the postgres group may run.
	local nft=
	if [ "$(id -u)" -eq 0 ] && [ -x /usr/sbin/nft ]; then
		mkdir -p "$dir/bin"
		install -o root -g postgres -m 0750 /usr/sbin/nft "$dir/bin/nft"
		setcap cap_net_admin+ep "$dir/bin/nft" && nft=$dir/bin/nft
	fi
	# No file of the run grows past 4 GiB (ulimit -f counts KiB): a test
	# that loops printing ends with SIGXFSZ rather than fill the disk (one
	# printed a 64 GB log).
	(cd "$dir" && ulimit -f $((4 << 20)) && "${RUN_AS[@]}" env PATH="$PG_BINDIR:$PATH" PERL5LIB="$PG_PERL" \
		TESTDIR="$dir" PG_REGRESS="$PG_REGRESS" PGPORT=54321 DR_SCRIPTS="$top/scripts" DR_NFT="$nft" \
		DR_TAP_CONF="${DR_TAP_CONF:-}" \
		DR_INITDB_TEMPLATE="$dir/initdb-template" DR_CERTS_TEMPLATE="$dir/certs-template" \
		prove --timer -v -j "${TAP_JOBS:-3}" ${TAP_TESTS:-$(tap_order)}) 2>&1 | tee "$dir/prove.txt"
	rc=${PIPESTATUS[0]}
	rm -rf "$dir/bin"
	# prove's report of the failed files and assertions, for the summary
	{ grep -E '^not ok' "$dir/prove.txt" | grep -v ' # TODO ' | head -n 20
	  sed -n '/^Test Summary Report/,/^Files=/p' "$dir/prove.txt" | grep -E '^t/|Failed test|Parse errors|Non-zero'
	} >"$top/build/check/tap.failures"
	if [ "$rc" -ne 0 ]; then
		for f in "$dir"/tmp_check/log/*; do
			echo "---- $f (last 30 lines)"
			tail -n 30 "$f"
		done
	fi
	# prove's closing "Files=N, Tests=M" counts assertions.
	local tests failed
	tests=$(sed -n 's/^Files=[0-9]*, Tests=\([0-9]*\),.*/\1/p' "$dir/prove.txt")
	failed=$(grep -E '^not ok' "$dir/prove.txt" | grep -vc ' # TODO ')  # (a TODO is a known failure)
	tests=${tests:-0}
	[ "$rc" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
	echo "$((tests - failed < 0 ? 0 : tests - failed)) passed, $failed failed"
	[ "$rc" -eq 0 ] && rm -rf "$dir"
	return "$rc"
}

# The extension installs into the one PostgreSQL of this machine: checks of
# several work trees at once take turns from the install to the end.
install_ext() {
	exec 9>"${TMPDIR:-/tmp}/dragonraft-pg.lock"
	flock 9
	echo "==== install ===="
	make --no-print-directory install >build/check/install.log 2>&1 || {
		cat build/check/install.log
		echo "install failed" >&2
		exit 1
	}
}

if [ $# -gt 0 ]; then
	run_layer build build
	install_ext
	for layer in "$@"; do run_layer "$layer" "$layer"; done
	finish
	exit 0
fi

run_layer build build
run_layer unit make --no-print-directory -j2 unit
run_layer unit-asan make --no-print-directory -j2 SANITIZE=1 unit
for step in $(make --no-print-directory -s print-CHECK_STEPS); do
	run_layer "$step" make --no-print-directory -j2 "$step"
done
if [ -n "$(make --no-print-directory -s print-FUZZ_TARGETS)" ]; then
	# (10 s a target here, after its corpus's replay; 30 by default: `make
	# check` keeps under 20 minutes, and `make fuzz-check` is the longer run)
	run_layer fuzz make --no-print-directory -j2 fuzz-check FUZZ_SECONDS="${FUZZ_SECONDS:-10}"
fi
install_ext
run_layer regress regress
run_layer isolation isolation
run_layer tap tap
finish
