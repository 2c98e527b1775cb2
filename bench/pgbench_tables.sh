# bench/pgbench_tables.sh - sourced by bench/pgbench.sh and
# bench/pgbench_prof.sh (after scripts/local_cluster.sh).
#
# pgbench_tables LEADER SCALE: pgbench's tables through the log of group 1,
# replicated while empty, then loaded on node LEADER in transactions of
# 20,000 rows (a change set each); every node of 1..3 vacuumed and analyzed.
pgbench_tables() {
	local l=$1 scale=$2 t a n
	lc_psql "$l" -c "SELECT dragonraft.execute(1, \$\$
CREATE TABLE pgbench_branches (bid int PRIMARY KEY, bbalance int, filler char(88)) WITH (fillfactor = 100);
CREATE TABLE pgbench_tellers (tid int PRIMARY KEY, bid int, tbalance int, filler char(84)) WITH (fillfactor = 100);
CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, bid int, abalance int, filler char(84)) WITH (fillfactor = 100);
CREATE TABLE pgbench_history (tid int, bid int, aid int, delta int, mtime timestamp, filler char(22));
\$\$)" >/dev/null
	for t in branches tellers accounts history; do
		lc_psql "$l" -c "SELECT dragonraft.replicate_table('pgbench_$t', 1)" >/dev/null
	done
	lc_psql "$l" -c "INSERT INTO pgbench_branches SELECT b, 0 FROM generate_series(1, $scale) b" \
		-c "INSERT INTO pgbench_tellers SELECT t, (t - 1) / 10 + 1, 0 FROM generate_series(1, $((scale * 10))) t"
	for ((a = 1; a <= scale * 100000; a += 20000)); do
		lc_psql "$l" -c "INSERT INTO pgbench_accounts SELECT a, (a - 1) / 100000 + 1, 0, ''
		                 FROM generate_series($a, $((a + 19999))) a"
	done
	for n in 1 2 3; do lc_psql "$n" -c "VACUUM ANALYZE" >/dev/null; done
}
