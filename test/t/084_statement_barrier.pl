# Under dragonraft.read_consistency = 'linearizable' a top-level statement
# runs one read barrier per group: the queries nested in it (foreign key
# checks run per row, functions called per row, triggers) reuse it when
# their snapshot follows it, and take a new snapshot when it does not.  Each read
# begins on a follower whose apply worker is stopped behind a row that the
# leader committed, waits in its barrier, and ends once the apply runs
# again: it must see the row, with the count of barriers it ran.
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
$F->safe_psql('postgres', q{
CREATE TABLE child (id int PRIMARY KEY, t_id int REFERENCES t);
CREATE TABLE seen (id int, n bigint);
CREATE FUNCTION pcnt() RETURNS bigint LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT count(*) FROM t $$;
CREATE FUNCTION has(int) RETURNS boolean LANGUAGE sql STABLE AS $$ SELECT EXISTS (SELECT 1 FROM t WHERE id = $1) $$;
-- a STABLE trigger function reads with the active snapshot: in an AFTER
-- trigger (run by ExecutorFinish) that is the one the statement took
-- before its barrier
CREATE FUNCTION note() RETURNS trigger LANGUAGE plpgsql STABLE AS $$
BEGIN RAISE NOTICE 'trigger sees %', (SELECT count(*) FROM t); RETURN NULL; END $$;
CREATE TRIGGER note AFTER INSERT ON seen FOR EACH ROW EXECUTE FUNCTION note();
});

my $apply = $F->safe_psql('postgres', 'SELECT apply_pid FROM dragonraft.node_status()');
my $next = 101;

# $read on the follower, begun while its apply is stopped behind a row that
# the leader committed: its output (then the barriers it ran) and stderr
# once the apply runs again.
sub read_behind
{
	my ($label, $read, $settings) = @_;
	$settings //= '';
	my $id = $next++;
	kill 'STOP', $apply;
	$L->safe_psql('postgres', "INSERT INTO t VALUES ($id, 'new')");
	my ($in, $out, $err) = ("SET dragonraft.read_consistency = 'linearizable'; $settings\n"
		  . "SELECT current_setting('dragonraft.read_barriers')::int AS b \\gset\n"
		  . "/* $label */ $read;\n"
		  . "SELECT current_setting('dragonraft.read_barriers')::int - :b;\n", '', '');
	my $h = IPC::Run::start([ 'psql', '-XAtq', '-v', "id=$id", '-d', $F->connstr('postgres') ],
		'<', \$in, '>', \$out, '2>', \$err);
	$h->pump while length $in;
	$c->wait_until("the read ($label) to wait for the apply",
		sub { $c->poll($f, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%/* $label */%' "
			  . "AND wait_event_type = 'Extension' AND pid <> pg_backend_pid()") eq '1' });
	kill 'CONT', $apply;
	$h->finish;
	chomp $out;
	return ($out, $err);
}

# 100 foreign key checks of a local table's rows against the new row of t.
my ($out, $err) = read_behind('fk', "INSERT INTO child SELECT g, :id FROM generate_series(1, 100) g");
is($err, '', 'the foreign key checks see the row committed before the statement');
is($out, '1', 'one barrier for 100 foreign key checks');
is($F->safe_psql('postgres', 'SELECT count(*) FROM child'), '100', 'the rows are in');

# A STABLE function called per row of a local table.
($out, $err) = read_behind('function', "SELECT count(*) FILTER (WHERE has(:id)) FROM generate_series(1, 100)");
is($out, "100\n1", 'each of 100 calls sees the row; one barrier') or diag $err;

# The statement's barrier, then an AFTER trigger reading with the snapshot
# the statement took before it: the trigger's query takes a snapshot after
# the barrier, and sees the row.
($out, $err) = read_behind('trigger', "INSERT INTO seen SELECT count(*), count(*) FROM t");
is($out, '1', 'a nested query whose snapshot predates the barrier runs no other');
like($err, qr/trigger sees @{[$next - 1]}/, 'and sees the row') or diag $err;
is($F->safe_psql('postgres', 'SELECT n FROM seen'), $next - 1, 'as the statement did');

# A PARALLEL SAFE function reading t, evaluated in a parallel worker (a
# single-copy Gather over the scan of t): the worker runs no barrier, but
# its leader's statement ran t's group's, and the worker reads with the
# snapshot its leader took after it: allowed, and it sees the row.  (One
# whose statement ran no barrier of the group is refused: TAP 076.)
my $worker = "SET force_parallel_mode = on; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; "
  . "SET parallel_leader_participation = off;";
($out, $err) = read_behind('parallel', "SELECT pcnt(), count(*) FROM t", $worker);
# (the count of barriers is read in a worker too here: not checked)
like($out, qr/^@{[$next - 1]}\|@{[$next - 1]}\n/, 'a parallel worker reads t as of its leader\'s barrier')
  or diag $err;
$out = $F->safe_psql('postgres', "SET dragonraft.read_consistency = 'linearizable'; $worker "
	  . 'EXPLAIN (VERBOSE, COSTS OFF) SELECT pcnt(), count(*) FROM t');
like($out, qr/Gather.*Single Copy: true.*Output: pcnt\(\)/s, 'in a worker') or diag $out;

ok($c->caught_up(1), 'the group applies on');
is($c->contents($f, 't', 'id'), $c->contents($l, 't', 'id'), 'the follower has the rows of the leader');

done_testing();
