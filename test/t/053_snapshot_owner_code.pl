# A table owner's code runs as that owner, never as the superuser that loads
# a snapshot or applies a registration.  Before, a table that a snapshot's
# load made belonged to the loader until its extras were given at the end,
# so the validation of its CHECK constraints and its index builds ran the
# owner's functions as the bootstrap superuser, and a member that made a
# table from a registration checked its rows so too.  Now such a table gets
# its owner right after it is made, and a load adds its CHECK constraints
# and foreign keys NOT VALID and marks them valid (the rows are the
# leader's).  The role own (not a superuser) owns functions that raise for
# any other caller: a CHECK's and an index expression's.  Group 1 on nodes
# 1-2; node 3 makes the tables from their registrations; node 4, bare,
# joins from a snapshot.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(4, conf => qq{
dragonraft.snapshot_entries = 50
dragonraft.compaction_overhead = 5
});
$c->create_group(1, 1, 2);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
my $L = $c->node($l);

for my $id (1 .. 4)
{
	$c->node($id)->safe_psql('postgres', q{CREATE ROLE own LOGIN; GRANT dragonraft_admin TO own});
}
sub as_own { return $c->node($c->leader(1))->safe_psql('postgres', $_[0], extra_params => [ '-U', 'own' ]); }

# own's functions raise for any other caller: a CHECK's, an index
# expression's.
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE SCHEMA own_s AUTHORIZATION own')});
as_own(q{SELECT dragonraft.execute(1, $cmd$
CREATE FUNCTION own_s.chk(v bigint) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $f$
BEGIN
  IF current_user <> 'own' THEN
    RAISE EXCEPTION 'CHECK run as %', current_user;
  END IF;
  RETURN v > 0;
END $f$;
CREATE FUNCTION own_s.ix(v bigint) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $f$
BEGIN
  IF current_user <> 'own' THEN
    RAISE EXCEPTION 'index expression run as %', current_user;
  END IF;
  RETURN v;
END $f$;
$cmd$)});
# The tables, made on the leader alone with their rows: the registrations
# make them on the other members with the rows.
as_own(q{CREATE TABLE own_s.p (id bigint PRIMARY KEY);
CREATE TABLE own_s.k (id bigint PRIMARY KEY, p bigint, v bigint,
  CONSTRAINT k_v CHECK (own_s.chk(v)),
  CONSTRAINT k_p FOREIGN KEY (p) REFERENCES own_s.p (id));
CREATE INDEX k_ix ON own_s.k (own_s.ix(v));
INSERT INTO own_s.p SELECT g FROM generate_series(1, 60) g;
INSERT INTO own_s.k SELECT g, g, g FROM generate_series(1, 60) g});
as_own(q{SELECT dragonraft.replicate_table('own_s.p', 1)});
as_own(q{SELECT dragonraft.replicate_table('own_s.k', 1)});
ok($c->caught_up(1), 'both members applied the commands and the rows');
is($c->node($_)->safe_psql('postgres', 'SELECT count(*) FROM own_s.k'), '60', "node $_ has k's rows")
  for (1, 2);

# Node 3 joins while the log still holds the registrations: its apply makes
# p and k from them too.
$L->safe_psql('postgres', "SELECT dragonraft.add_member(1, 3, '" . $c->raft_address(3) . "')");
$c->node(3)->safe_psql('postgres', "SELECT dragonraft.join_group(1, '" . $c->members(1, 2) . "')");
$c->group_nodes(1, 1, 2, 3);
ok($c->caught_up(1), 'node 3 joins from the log and catches up');
is($c->node(3)->safe_psql('postgres', q{SELECT count(*) = 0 FROM dragonraft.stat_groups
	WHERE group_id = 1 AND snapshots_received > 0}), 't', 'without a snapshot');

# Enough entries for a compaction: node 4, bare, loads a snapshot.
for my $k (1 .. 6)
{
	as_own(join('', map { "UPDATE own_s.k SET v = v + 1 WHERE id = $_;\n" } 1 .. 10));
}
ok($c->compact(1, 1, 2, 3), 'the members compacted their logs');
$c->node($c->leader(1))->safe_psql('postgres', "SELECT dragonraft.add_member(1, 4, '" . $c->raft_address(4) . "')");
$c->node(4)->safe_psql('postgres', "SELECT dragonraft.join_group(1, '" . $c->members(1, 2, 3) . "')");
$c->group_nodes(1, 1, 2, 3, 4);
ok($c->wait_until('node 4 to load a snapshot', sub { $c->node(4)->safe_psql('postgres',
	q{SELECT snapshots_received >= 1 FROM dragonraft.stat_groups WHERE group_id = 1}) eq 't' }),
	'the bare node 4 joins from a snapshot');
ok($c->caught_up(1), 'and catches up');

for my $id (3, 4)
{
	my $N = $c->node($id);
	is($N->safe_psql('postgres', q{SELECT string_agg(relname || ' ' || relowner::regrole, ', ' ORDER BY relname)
		FROM pg_class WHERE relnamespace = 'own_s'::regnamespace AND relkind = 'r'}),
		'k own, p own', "node $id: own owns the tables");
	is($N->safe_psql('postgres', q{SELECT string_agg(conname || ' ' || convalidated, ', ' ORDER BY conname)
		FROM pg_constraint WHERE conrelid = 'own_s.k'::regclass}),
		'k_p true, k_pkey true, k_v true', "node $id: k's constraints are valid");
	is($c->contents($id, 'own_s.k', 'id'), $c->contents($l, 'own_s.k', 'id'), "node $id has k's rows");
	# The index over own's function is used and right.
	is($N->safe_psql('postgres', q{SET enable_seqscan = off; SELECT id FROM own_s.k WHERE own_s.ix(v) = 7}),
		$L->safe_psql('postgres', q{SELECT id FROM own_s.k WHERE v = 7}), "node $id: k_ix finds a row");
}

# The check still holds on every member, run as own.
my ($state) = $c->sql_error($c->leader(1), 'SET ROLE own; INSERT INTO own_s.k VALUES (1000, 1, -1)');
is($state, '23514', 'a row that fails the CHECK is refused');
as_own(q{INSERT INTO own_s.k VALUES (1000, 1, 1000)});
ok($c->caught_up(1), 'every member applied a row after it, as own');
is($c->node($_)->safe_psql('postgres', 'SELECT count(*) FROM own_s.k'), '61', "node $_ has it")
  for $c->ids;
done_testing();
