# What review 9 found that a full snapshot's load (its replay of the group's
# commands, TAP 037) still got wrong.  Group 1: statements that need a table
# of the group to exist (CREATE PUBLICATION ... FOR TABLE, ALTER PUBLICATION
# ... ADD TABLE, functions returning a table's rows or whose SQL-standard
# body reads one, and what later commands do to those) run once the load made
# the tables, as their role and with their command's settings, in log order;
# privileges on a table's sequence come with it; the view of CREATE SCHEMA
# ... CREATE VIEW comes with the snapshot (review 12 F2).  Group 2: a command that failed on a
# follower and that it skipped (skip_command) runs there when that follower
# later loads a snapshot, with the command after it that needs it.  A bare
# node 4 joins both groups and ends with the leader's objects and rows.
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
for my $id (1 .. 4)
{
	$c->node($id)->safe_psql('postgres', 'CREATE ROLE gap_reader');
}
$c->create_group($_, 1, 2, 3) for 1, 2;

sub on { my ($g, $id, $sql) = @_; return $c->node($id // $c->leader($g))->safe_psql('postgres', $sql); }
sub ex { my ($g, $cmd) = @_; return on($g, undef, "SELECT dragonraft.execute($g, \$q\$$cmd\$q\$)"); }


# Node id's catalog against another of nodes 1-3 (the leader of group 1 may
# be id itself).
sub same_catalog
{
	my ($what, $id) = @_;
	my ($ref) = grep { $_ != $id } 1, 2, 3;
	ok($c->caught_up($_), "$what: the members of group $_ caught up") for 1, 2;
	is($c->catalog($id), $c->catalog($ref), "$what: node ${id}'s objects and tables are node ${ref}'s");
	return;
}

sub loads_snapshot
{
	my ($g, $id) = @_;
	return $c->wait_until("node $id to load a snapshot of group $g", sub { ($c->poll($id,
		"SELECT snapshots_received >= 1 FROM dragonraft.stat_groups WHERE group_id = $g") // '') eq 't' });
}

# ---- Group 1: statements that need the group's tables ----
ex(1, q{CREATE TABLE st (id int PRIMARY KEY, v text)});
on(1, undef, q{SELECT dragonraft.replicate_table('st', 1); INSERT INTO st VALUES (1, 'a'), (2, 'b')});
# Node h1 misses the rest of group 1's history and loads a snapshot (its st,
# which the history changes, is replaced).
ok($c->caught_up(1), 'group 1 caught up');
my $l1 = $c->leader(1);
my ($h1, $o1) = grep { $_ != $l1 } 1, 2, 3;
$c->node($h1)->stop('fast');
$c->group_nodes(1, $l1, $o1);
$c->group_nodes(2, $l1, $o1);
ex(1, q{CREATE FUNCTION sf() RETURNS SETOF st LANGUAGE sql AS 'SELECT * FROM st ORDER BY id'});
ex(1, q{REVOKE EXECUTE ON FUNCTION sf() FROM PUBLIC; GRANT EXECUTE ON FUNCTION sf() TO gap_reader});
ex(1, q{CREATE FUNCTION rf() RETURNS bigint LANGUAGE sql RETURN (SELECT count(*) FROM st)});
ex(1, q{CREATE PUBLICATION pub FOR TABLE st});
# The command's own search_path, in force when its function is made later.
ex(1, q{CREATE SCHEMA s2; SET search_path = s2; CREATE FUNCTION cnt() RETURNS bigint LANGUAGE sql
  BEGIN ATOMIC SELECT count(*) FROM public.st; END});
ex(1, q{CREATE TABLE st2 (id int PRIMARY KEY)});
on(1, undef, q{SELECT dragonraft.replicate_table('st2', 1); INSERT INTO st2 VALUES (7)});
ex(1, q{ALTER PUBLICATION pub ADD TABLE st2});
# Made and dropped again: the DROP runs after the function is made.
ex(1, q{CREATE FUNCTION rf2() RETURNS bigint LANGUAGE sql RETURN (SELECT count(*) FROM st2)});
ex(1, q{DROP FUNCTION rf2()});
# A type made after the functions that a table uses: made before the tables.
ex(1, q{CREATE TYPE xt AS (a int); ALTER TABLE st ADD COLUMN x xt});
on(1, undef, q{INSERT INTO st VALUES (3, 'c', ROW(3))});
# Privileges on a table's sequence.
ex(1, q{CREATE TABLE sq (id serial PRIMARY KEY)});
on(1, undef, q{SELECT dragonraft.replicate_table('sq', 1); INSERT INTO sq DEFAULT VALUES});
ex(1, q{GRANT USAGE, SELECT ON SEQUENCE sq_id_seq TO gap_reader});
# A schema with a view in it.
my $sv = ex(1, q{CREATE SCHEMA sv CREATE VIEW vw AS SELECT 1 AS one});
is(on(1, undef, q{SELECT (SELECT count(*) FROM sf()) || ' ' || rf() || ' ' || s2.cnt()
  || ' ' || has_sequence_privilege('gap_reader', 'sq_id_seq', 'USAGE')}), '3 3 3 true',
	"the leader's functions read the tables and the sequence has its grant");
on(1, undef, join('', map { "INSERT INTO st2 VALUES ($_);\n" } 100 .. 160));
ok($c->compact(1, $l1, $o1), "group 1's log is compacted past node $h1");
$c->group_nodes($_, 1, 2, 3) for 1, 2;
$c->node($h1)->start;
ok(loads_snapshot(1, $h1), "node $h1 loads a snapshot of group 1");
same_catalog('a member that missed the history', $h1);
for my $t (qw(st st2 sq))
{
	is($c->contents($h1, $t, 'id'), $c->contents($l1, $t, 'id'), "node ${h1}'s $t equals the leader's");
}

# ---- Group 2: a command that failed on a follower and was skipped there ----
ex(2, q{CREATE TABLE t2 (id int PRIMARY KEY)});
on(2, undef, q{SELECT dragonraft.replicate_table('t2', 2)});
ok($c->caught_up(2), 'group 2 caught up');
my $l2 = $c->leader(2);
my ($f2, $o2) = grep { $_ != $l2 } 1, 2, 3;
on(2, $f2, q{CREATE SCHEMA ls});
my $idx = ex(2, q{CREATE SCHEMA ls; CREATE FUNCTION ls.f() RETURNS int LANGUAGE sql AS 'SELECT 6'});
ok($c->wait_until("node $f2 to stop at the command", sub {
	on(2, $f2, q{SELECT state FROM dragonraft.status WHERE group_id = 2}) eq 'apply_failed' }),
	"node $f2 stops at the command that fails there");
on(2, $f2, "SELECT dragonraft.skip_command(2, $idx)");
ok($c->caught_up(2), "node $f2 skips it and goes on");
on(2, $f2, q{DROP SCHEMA ls});
like(on(2, $f2, q{SELECT last_error FROM dragonraft.ddl_failures WHERE group_id = 2}),
	qr/schema "ls" already exists/, "node ${f2}'s ddl_failures lists the command it skipped");
$c->node($f2)->stop('fast');
$c->group_nodes(2, $l2, $o2);
ex(2, q{CREATE FUNCTION ls.g() RETURNS int LANGUAGE sql AS 'SELECT ls.f() + 60'});
on(2, undef, join('', map { "INSERT INTO t2 VALUES ($_);\n" } 1 .. 60));
ok($c->compact(2, $l2, $o2), "group 2's log is compacted past node $f2");
$c->group_nodes(2, 1, 2, 3);
$c->node($f2)->start;
ok(loads_snapshot(2, $f2), "node $f2 loads a snapshot of group 2");
same_catalog('a follower that skipped a command', $f2);
is(on(2, $f2, "SELECT ls.g() || ' ' || (SELECT via || ' ' || (error IS NULL) FROM dragonraft.ddl_history
	WHERE group_id = 2 AND index = $idx) || ' ' || (SELECT count(*) FROM dragonraft.ddl_failures WHERE group_id = 2)"),
	'66 replayed true 0', "node $f2 ran the command it had skipped, and its history says so");
is($c->contents($f2, 't2', 'id'), $c->contents($l2, 't2', 'id'), "node ${f2}'s t2 equals the leader's");

# ---- A bare node 4 joins both groups ----
for my $g (1, 2)
{
	ok($c->compact($g, 1, 2, 3), "group ${g}'s log is compacted");
	on($g, undef, "SELECT dragonraft.add_member($g, 4, '" . $c->raft_address(4) . "')");
	$c->node(4)->safe_psql('postgres', "SELECT dragonraft.join_group($g, '" . $c->members(1, 2, 3) . "')");
	$c->group_nodes($g, 1, 2, 3, 4);
}
same_catalog('a bare node', 4);
for my $t (qw(st st2 sq t2))
{
	is($c->contents(4, $t, 'id'), $c->contents(1, $t, 'id'), "node 4's $t equals node 1's");
}
is($c->node(4)->safe_psql('postgres', q{SELECT string_agg(id::text, ',') || ' '
  || has_function_privilege('gap_reader', 'sf()', 'EXECUTE') || ' ' || has_function_privilege('public', 'sf()', 'EXECUTE') FROM sf()}),
	'1,2,3 true false', "node 4's function returns the rows of the table made after it, with its grants");
is($c->node(4)->safe_psql('postgres', "SELECT coalesce(error, 'none') || ' ' || (SELECT one FROM sv.vw)
  FROM dragonraft.ddl_history WHERE group_id = 1 AND index = $sv"),
	'none 1', "node 4 has the view of CREATE SCHEMA ... CREATE VIEW, and its command no error");
is($c->node(4)->safe_psql('postgres', q{SELECT string_agg(DISTINCT via, ',') FROM dragonraft.ddl_history
	WHERE group_id = 1 AND (command LIKE '%PUBLICATION%' OR command LIKE '%rf2%')}),
	'replayed', "node 4's history says the load ran the statements it set aside");
on(1, undef, q{INSERT INTO st VALUES (4, 'd')});
ok($c->caught_up(1), 'later writes reach node 4');
is($c->node(4)->safe_psql('postgres', q{SELECT rf() || ' ' || s2.cnt()}), '4 4', "node 4's functions see them");

done_testing();
