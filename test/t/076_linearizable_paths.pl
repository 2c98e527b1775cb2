# Review 23 F1: a linearizable read on a follower sees a row that the leader
# committed before the read began, whatever path the read takes, also when
# a parallel worker scans: the barrier's new snapshot is the statement's
# active snapshot, which a worker's plan nodes that are not parallel aware
# scan with.  Each read begins while the follower's apply worker is stopped
# behind the row, waits in its barrier, and ends once the apply runs again.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(3);
$c->create_group(1, 1, 2, 3);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
my ($f) = grep { $_ != $l } 1 .. 3;
my $L = $c->node($l);
my $F = $c->node($f);
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY, v text)')});
$L->safe_psql('postgres', q{INSERT INTO t SELECT g, 'x' FROM generate_series(1, 100) g;
SELECT dragonraft.replicate_table('t', 1)});
ok($c->caught_up(1), 'nodes 1-3 replicate t');
# ids: a local table that a parallel join scans, looking t up by key
$F->safe_psql('postgres', q{
CREATE TABLE ids AS SELECT g AS id FROM generate_series(1, 1000) g;
CREATE FUNCTION rq() RETURNS SETOF bigint LANGUAGE plpgsql AS $$ BEGIN RETURN QUERY SELECT count(*) FROM t; END $$;
CREATE FUNCTION sq() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM t $$;
CREATE FUNCTION cnt() RETURNS bigint LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT count(*) FROM t $$;
CREATE FUNCTION pl() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint; BEGIN SELECT count(*) INTO n FROM t; RETURN n; END $$;
ANALYZE ids;
});

my $apply = $F->safe_psql('postgres', 'SELECT apply_pid FROM dragonraft.node_status()');
# The plan runs in a parallel worker (a single-copy Gather: no scan is parallel aware).
my $worker = "SET dragonraft.read_consistency = 'linearizable'; SET force_parallel_mode = on; "
  . "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET parallel_leader_participation = off; "
  . "SET min_parallel_table_scan_size = '8GB'; SET min_parallel_index_scan_size = '8GB';";
# A parallel scan of ids joined to t by an index scan of t in each worker.
my $join = "SET dragonraft.read_consistency = 'linearizable'; SET parallel_setup_cost = 0; "
  . "SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0; SET parallel_leader_participation = off; "
  . "SET enable_hashjoin = off; SET enable_mergejoin = off; SET enable_bitmapscan = off;";
my $next = 101;
my ($st, $msg);

# $read on the follower, begun while its apply is stopped behind a row that
# the leader committed: its output once the apply runs again.
sub read_behind
{
	my ($label, $settings, $read) = @_;
	my $id = $next++;
	kill 'STOP', $apply;
	$L->safe_psql('postgres', "INSERT INTO t VALUES ($id, 'new')");
	my ($in, $out, $err) = ("$settings\n/* $label */ $read;\n", '', '');
	my $h = IPC::Run::start([ 'psql', '-XAtq', '-d', $F->connstr('postgres') ],
		'<', \$in, '>', \$out, '2>', \$err);
	$h->pump while length $in;
	$c->wait_until("the read ($label) to wait for the apply",
		sub { $c->poll($f, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%/* $label */%' "
			  . "AND wait_event_type = 'Extension' AND pid <> pg_backend_pid()") eq '1' });
	kill 'CONT', $apply;
	$h->finish;
	diag "$label: $err" if $err ne '';
	chomp $out;
	return $out;
}

for my $r (['select', 'SELECT count(*) FROM t'], ['return query', 'SELECT * FROM rq()'],
	['sql function', 'SELECT sq()'], ['select into', 'SELECT pl()'],
	['create table as', 'CREATE TEMP TABLE z AS SELECT count(*) FROM t; SELECT * FROM z'],
	['copy query', 'COPY (SELECT count(*) FROM t) TO STDOUT'])
{
	my $n = read_behind($r->[0], $worker, $r->[1]);
	is($n, $next - 1, "$r->[0]: a parallel worker's scan sees the row");
}
my $n = read_behind('explain analyze', $worker,
	'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM t');
like($n, qr/Single Copy: true.*Seq Scan on t \(actual rows=@{[$next - 1]} loops/s,
	"EXPLAIN ANALYZE: a parallel worker's scan counts the row") or diag $n;
$n = read_behind('join', $join, 'CREATE TEMP TABLE j AS SELECT count(*) FROM ids JOIN t USING (id); SELECT * FROM j');
is($n, $next - 1, 'a parallel join of a local table to t in CREATE TABLE AS sees the row');
$n = read_behind('join explain', $join,
	'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM ids JOIN t USING (id)');
like($n, qr/Gather \(actual rows=@{[$next - 1]} loops.*Parallel Seq Scan on ids.*Index Scan using t_pkey/s,
	'and in EXPLAIN ANALYZE') or diag $n;

# A PARALLEL SAFE function that reads t, called by a statement that reads
# no replicated table, runs in a parallel worker, which can take no barrier
# nor snapshot: it read t as of the statement's start (review 23 F4).
kill 'STOP', $apply;
my $id = $next++;
$L->safe_psql('postgres', "INSERT INTO t VALUES ($id, 'new')");
my ($out, $err) = ('', '');
$F->psql('postgres', "\\set VERBOSITY verbose\n$worker SELECT cnt() FROM ids LIMIT 1", stdout => \$out, stderr => \$err);
kill 'CONT', $apply;
note "parallel safe function: [$out] $err";
is($out, '', 'a parallel worker does not read t without a barrier');
like($err, qr/ERROR:  0A000: a linearizable read of dragonraft group 1 cannot run in a parallel worker/,
	'it is refused');

# COPY of a table takes no barrier: refused (it was before this review).
($st, $msg) = $c->sql_error($f, "SET dragonraft.read_consistency = 'linearizable'; COPY t TO STDOUT");
is($st, '0A000', 'a linearizable COPY t TO is refused') or diag $msg;

ok($c->caught_up(1), 'the group applies on');
is($c->contents($f, 't', 'id'), $c->contents($l, 't', 'id'), 'the follower has the rows of the leader');

done_testing();
