# A command through the log runs, on every member and in a snapshot's replay,
# with the search_path that execute() tried it with on the calling node: that
# session's default, its role's settings included.  Before, the members ran
# it with their own database default: a role whose ALTER ROLE ... SET
# search_path names its schema, in a database where it may not create in
# public (PostgreSQL 15's default), had its CREATE TABLE tried in its schema
# and then refused on every member, which stopped the group everywhere; and a
# member whose database default differs would have made the table elsewhere.
# Group 1 on nodes 1-3; node 4, bare, joins from a snapshot once the log is
# compacted and replays the history.
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
$c->create_group(1, 1, 2, 3);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
my $L = $c->node($l);

# The role app, with its schema first in its search_path, on every node; and
# on node 3 a database default that would put an unqualified name elsewhere.
for my $id (1 .. 4)
{
	$c->node($id)->safe_psql('postgres', q{
CREATE ROLE app LOGIN; GRANT dragonraft_admin TO app;
ALTER ROLE app SET search_path = app_s});
}
$c->node(3)->safe_psql('postgres', q{CREATE SCHEMA other; GRANT ALL ON SCHEMA other TO PUBLIC;
ALTER DATABASE postgres SET search_path = other, public});
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE SCHEMA app_s AUTHORIZATION app')});

sub as_app { return $c->node($c->leader(1))->safe_psql('postgres', $_[0], extra_params => [ '-U', 'app' ]); }

as_app(q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY, v text)')});
as_app(q{SELECT dragonraft.replicate_table('app_s.t', 1)});
as_app(q{INSERT INTO t SELECT g, 'x' FROM generate_series(1, 10) g});
as_app(q{SELECT dragonraft.execute(1, 'CREATE VIEW tv AS SELECT id FROM t')});
ok($c->caught_up(1), 'every member applied the commands and the rows');
for my $id (1 .. 3)
{
	is($c->node($id)->safe_psql('postgres', q{SELECT string_agg(c.oid::regclass::text, ',' ORDER BY relname)
		FROM pg_class c WHERE relname IN ('t', 'tv')}), 'app_s.t,app_s.tv',
		"node $id made the table and the view in the role's schema");
	is($c->node($id)->safe_psql('postgres', 'SELECT count(*) FROM app_s.t'), '10', "node $id has the rows");
}
is($L->safe_psql('postgres', q{SELECT string_agg(DISTINCT search_path, ',') FROM dragonraft.ddl_history
	WHERE group_id = 1 AND role = 'app'}), 'app_s', 'the history records the search_path of its commands');
is($c->node(3)->safe_psql('postgres', q{SELECT count(*) FROM dragonraft.ddl_failures}), '0',
	'no command failed on the node whose database default differs');

# Enough entries for a compaction: node 4 loads a snapshot and runs the
# history, the view with the role's search_path.
for my $k (1 .. 6)
{
	as_app(join('', map { "INSERT INTO t VALUES (" . ($k * 100 + $_) . ", 'w');\n" } 1 .. 10));
}
# (a snapshot on every member now: the one snapshot_entries asks for runs in
# the background, and on a busy machine node 4 could come before the
# compaction and join from the entries, as TAP 064's once did)
ok($c->compact(1, 1, 2, 3), 'every member took a snapshot: the log is compacted');
$c->node($c->leader(1))->safe_psql('postgres', "SELECT dragonraft.add_member(1, 4, '" . $c->raft_address(4) . "')");
$c->node(4)->safe_psql('postgres', "SELECT dragonraft.join_group(1, '" . $c->members(1, 2, 3) . "')");
$c->group_nodes(1, 1, 2, 3, 4);
ok($c->wait_until('node 4 to load a snapshot', sub { $c->node(4)->safe_psql('postgres',
	q{SELECT snapshots_received >= 1 FROM dragonraft.stat_groups WHERE group_id = 1}) eq 't' }),
	'the bare node 4 joins from a snapshot');
ok($c->caught_up(1), 'and catches up');
is($c->node(4)->safe_psql('postgres', q{SELECT string_agg(c.oid::regclass::text, ',' ORDER BY relname)
	FROM pg_class c WHERE relname IN ('t', 'tv')}), 'app_s.t,app_s.tv',
	'its replay made the view in the role\'s schema too');
is($c->node(4)->safe_psql('postgres', 'SELECT count(*) FROM app_s.tv'), '70', 'with the rows under it');
done_testing();
