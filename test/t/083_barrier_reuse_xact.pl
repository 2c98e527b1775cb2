# Under dragonraft.read_consistency = 'linearizable' the queries nested in a
# top-level statement reuse the read barrier that the statement ran
# (TAP 084).  Not across a transaction's end: a procedure that COMMITs runs
# its next queries in another transaction, which may begin long after the
# barrier, and they read with a snapshot of their own.  Each read here
# begins on a follower; the procedure reads t, commits and waits for a row
# of a local table; meanwhile the follower's apply worker is stopped behind
# a row that the leader committed, and that row of the local table is
# inserted once the leader acknowledged the write: the procedure's second
# read must see the write (it waits in its barrier until the apply runs
# again), not the row it read before (review 27, finding 1).
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
$L->safe_psql('postgres', q{INSERT INTO t VALUES (1, 'old');
SELECT dragonraft.replicate_table('t', 1)});
ok($c->caught_up(1), 'nodes 1-3 replicate t');
$F->safe_psql('postgres', q{
CREATE TABLE flag (n int);
CREATE PROCEDURE p(n int) LANGUAGE plpgsql AS $$
DECLARE a text; b text;
BEGIN
	SELECT v INTO a FROM t WHERE id = 1;
	COMMIT;
	WHILE NOT EXISTS (SELECT 1 FROM flag WHERE flag.n = p.n) LOOP PERFORM pg_sleep(0.05); END LOOP;
	SELECT v INTO b FROM t WHERE id = 1;
	RAISE NOTICE 'read % then %', a, b;
END $$;
-- one query: the row of the local table and t's row, with one snapshot
CREATE FUNCTION later(n int) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	WHILE NOT EXISTS (SELECT 1 FROM flag WHERE flag.n = later.n) LOOP PERFORM pg_sleep(0.05); END LOOP;
	RETURN (SELECT v || ' with flag ' || (SELECT count(*) FROM flag WHERE flag.n = later.n) FROM t WHERE id = 1);
END $$;
});
my $apply = $F->safe_psql('postgres', 'SELECT apply_pid FROM dragonraft.node_status()');

# $read on the follower: once it waits for flag $n, the apply stops, the
# leader sets t's row to $value, and flag $n is inserted; then the read
# either ends at once (it ran no barrier) or waits in its barrier until the
# apply runs again.  Its output and stderr.
sub read_across
{
	my ($label, $read, $n, $value) = @_;
	my ($in, $out, $err) = ("SET dragonraft.read_consistency = 'linearizable';\n/* $label */ $read;\n", '', '');
	my $h = IPC::Run::start([ 'psql', '-XAtq', '-d', $F->connstr('postgres') ],
		'<', \$in, '>', \$out, '2>', \$err);
	$h->pump while length $in;
	my $mine = "query LIKE '%/* $label */%' AND pid <> pg_backend_pid()";
	$c->wait_until("the read ($label) to wait for flag $n",
		sub { $c->poll($f, "SELECT count(*) FROM pg_stat_activity WHERE $mine AND wait_event = 'PgSleep'") eq '1' });
	kill 'STOP', $apply;
	$L->safe_psql('postgres', "UPDATE t SET v = '$value' WHERE id = 1");
	$F->safe_psql('postgres', "INSERT INTO flag VALUES ($n)");
	$c->wait_until("the read ($label) to read or to wait for the apply",
		sub { $c->poll($f, "SELECT count(*) FILTER (WHERE wait_event_type = 'Extension') "
			  . "+ (count(*) FILTER (WHERE state = 'active') = 0)::int FROM pg_stat_activity WHERE $mine") eq '1' });
	kill 'CONT', $apply;
	$h->finish;
	chomp $out;
	return ($out, $err);
}

my ($out, $err) = read_across('procedure', 'CALL p(1)', 1, 'new');
like($err, qr/read old then new/,
	'a procedure\'s read after its COMMIT sees the write acknowledged before it began')
  or diag $err;

# Within one statement a barrier is reused only by a query whose snapshot
# sees the same transactions: the function's query, whose snapshot shows the
# row of flag inserted after the leader acknowledged the write, runs its own
# barrier and sees the write too (it saw flag without the write before:
# review 27 finding 2).
($out, $err) = read_across('statement', 'SELECT v, later(2) FROM t WHERE id = 1', 2, 'newer');
is($out, 'new|newer with flag 1', 'a nested query that sees a later local write sees the write before it')
  or diag $err;

ok($c->caught_up(1), 'the group applies on');
is($c->contents($f, 't', 'id'), $c->contents($l, 't', 'id'), 'the follower has the rows of the leader');

done_testing();
