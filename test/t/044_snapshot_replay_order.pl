# The snapshot replay's statements set aside until the tables are made (TAP
# 043) in their place in the log.  Group 1: a bare node 4 joins after
# commands that renamed the tables and the column such statements read, or
# moved a table to another schema; that replaced (CREATE OR REPLACE) or
# dropped (DROP ... IF EXISTS) what such a statement made; and a CREATE
# SCHEMA with GRANT elements.  Group 4: a composite type and a domain over a
# table's row type that another table uses.  Node 4 joins both and ends with
# the leader's objects.  Group 2: a statement set aside that fails once the
# tables are made (its column was dropped later, with CASCADE, which dropped
# its function on the members that ran it) fails a lagging follower's load
# with an error that names skip_command; skip_command there leaves the
# statement out and the load ends with the leader's objects.  Group 3: a
# table that a member refused, sent again (resend_table) after that member
# dropped its own, comes with its owner, privileges (its sequence's too) and
# comment there.
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
	$c->node($id)->safe_psql('postgres', 'CREATE ROLE order_reader; CREATE ROLE order_owner');
}
$c->create_group($_, 1, 2, 3) for 1, 2, 3, 4;

sub on { my ($g, $id, $sql) = @_; return $c->node($id // $c->leader($g))->safe_psql('postgres', $sql); }
sub ex { my ($g, $cmd) = @_; return on($g, undef, "SELECT dragonraft.execute($g, \$q\$$cmd\$q\$)"); }

# Node id's catalog against one of nodes 1-3, members of every group (the
# leader of a group may be node 4, which is not).
sub same_catalog
{
	my ($what, $id) = @_;
	my ($ref) = grep { $_ != $id } 1, 2, 3;
	ok($c->caught_up($_), "$what: the members of group $_ caught up") for 1, 2, 3, 4;
	is($c->catalog($id), $c->catalog($ref), "$what: node ${id}'s objects and tables are node ${ref}'s");
	return;
}

# ---- Group 1: renames, later statements on the same objects, CREATE SCHEMA ... GRANT ----
ex(1, q{CREATE TABLE rt (id int PRIMARY KEY, v text)});
on(1, undef, q{SELECT dragonraft.replicate_table('rt', 1); INSERT INTO rt VALUES (1, 'a'), (2, NULL)});
ex(1, q{CREATE PUBLICATION rp FOR TABLE rt});
ex(1, q{CREATE FUNCTION rtf() RETURNS bigint LANGUAGE sql RETURN (SELECT count(v) FROM rt)});
ex(1, q{ALTER TABLE rt RENAME COLUMN v TO w});
ex(1, q{ALTER TABLE rt RENAME TO rt2});
ex(1, q{CREATE SCHEMA s9; ALTER TABLE public.rt2 SET SCHEMA s9});
# Replaced and dropped by later commands, which do not fail without it.
ex(1, q{CREATE FUNCTION orf() RETURNS bigint LANGUAGE sql RETURN (SELECT count(*) FROM s9.rt2)});
ex(1, q{CREATE OR REPLACE FUNCTION orf() RETURNS bigint LANGUAGE sql AS 'SELECT 42::bigint'});
ex(1, q{CREATE FUNCTION df() RETURNS SETOF s9.rt2 LANGUAGE sql AS 'SELECT * FROM s9.rt2'});
ex(1, q{DROP FUNCTION IF EXISTS df()});
# A schema whose GRANT elements are not on relations.
ex(1, q{CREATE FUNCTION gf() RETURNS int LANGUAGE sql AS 'SELECT 1'; REVOKE EXECUTE ON FUNCTION gf() FROM PUBLIC});
ex(1, q{CREATE SCHEMA sg GRANT USAGE ON SCHEMA sg TO order_reader GRANT EXECUTE ON FUNCTION public.gf() TO order_reader});
is(on(1, undef, q{SELECT rtf() || ' ' || orf() || ' ' || (to_regprocedure('df()') IS NULL)
  || ' ' || has_schema_privilege('order_reader', 'sg', 'USAGE')
  || ' ' || has_function_privilege('order_reader', 'gf()', 'EXECUTE')}),
	'1 42 true true true', "the leader's objects");
on(1, undef, join('', map { "INSERT INTO s9.rt2 VALUES ($_, 'x');\n" } 100 .. 160));
# Group 4: a composite type and a domain over a table's row type, which
# another table of the group uses: made once the first table is.
ex(4, q{CREATE TABLE ra (id int PRIMARY KEY)});
on(4, undef, q{SELECT dragonraft.replicate_table('ra', 4); INSERT INTO ra VALUES (1)});
ex(4, q{CREATE TYPE rct AS (r ra, n int); CREATE DOMAIN rdom AS ra CHECK ((VALUE).id > 0)});
ex(4, q{CREATE TABLE rb (id int PRIMARY KEY, y rct, z rdom)});
on(4, undef, q{SELECT dragonraft.replicate_table('rb', 4); INSERT INTO rb VALUES (1, ROW(ROW(5), 6), ROW(7))});
on(4, undef, join('', map { "INSERT INTO ra VALUES ($_);\n" } 100 .. 160));
for my $g (1, 4)
{
	ok($c->compact($g, 1, 2, 3), "group ${g}'s log is compacted");
	on($g, undef, "SELECT dragonraft.add_member($g, 4, '" . $c->raft_address(4) . "')");
	$c->node(4)->safe_psql('postgres', "SELECT dragonraft.join_group($g, '" . $c->members(1, 2, 3) . "')");
	$c->group_nodes($g, 1, 2, 3, 4);
}
same_catalog('a bare node after renames', 4);
is($c->contents(4, 'rb', 'id'), $c->contents(1, 'rb', 'id'), "node 4's rb (a row type in a row) equals the leader's");
is($c->contents(4, 's9.rt2', 'id'), $c->contents(1, 's9.rt2', 'id'), "node 4's s9.rt2 equals the leader's");
is(on(1, 4, q{SELECT rtf() || ' ' || orf() || ' ' || (SELECT string_agg(schemaname || '.' || tablename, ',')
  FROM pg_publication_tables WHERE pubname = 'rp')}), '62 42 s9.rt2',
	"node 4's function reads the renamed column of the renamed table, its publication has the table");

# ---- Group 2: a statement set aside whose column was dropped later ----
ex(2, q{CREATE TABLE ct (id int PRIMARY KEY, c text)});
on(2, undef, q{SELECT dragonraft.replicate_table('ct', 2); INSERT INTO ct VALUES (1, 'a')});
ok($c->caught_up(2), 'group 2 caught up');
my $l2 = $c->leader(2);
my ($f2, $o2) = grep { $_ != $l2 } 1, 2, 3;
$c->node($f2)->stop('fast');
$c->group_nodes(2, $l2, $o2);
my $idx = ex(2, q{CREATE FUNCTION cf() RETURNS text LANGUAGE sql RETURN (SELECT max(c) FROM ct)});
ex(2, q{ALTER TABLE ct DROP COLUMN c CASCADE});
is(on(2, undef, q{SELECT to_regprocedure('cf()') IS NULL}), 't', "the leader's DROP COLUMN ... CASCADE dropped cf()");
on(2, undef, join('', map { "INSERT INTO ct VALUES ($_);\n" } 2 .. 62));
ok($c->compact(2, $l2, $o2), "group 2's log is compacted past node $f2");
$c->group_nodes(2, 1, 2, 3);
$c->node($f2)->start;
my $error;
ok($c->wait_until("node ${f2}'s load to fail", sub {
	$error = $c->poll($f2, q{SELECT coalesce(error, '') FROM dragonraft.status WHERE group_id = 2}) // '';
	$error =~ /at entry $idx failed when its snapshot's load ran it again here: column "c" does not exist/ }),
	"node ${f2}'s load fails at the command whose column is gone");
my ($state, $err) = $c->sql_error($f2, "SELECT dragonraft.skip_command(2, $idx)");
is($state, '', "skip_command takes the command that failed the load");
ok($c->wait_until("node $f2 to load the snapshot", sub {
	($c->poll($f2, q{SELECT snapshots_received >= 1 FROM dragonraft.stat_groups WHERE group_id = 2}) // '') eq 't' }),
	"node $f2 loads the snapshot without the statement");
same_catalog('a follower that skipped a statement set aside', $f2);
is($c->contents($f2, 'ct', 'id'), $c->contents($l2, 'ct', 'id'), "node ${f2}'s ct equals the leader's");
like(on(2, $f2, "SELECT error FROM dragonraft.ddl_history WHERE group_id = 2 AND index = $idx"),
	qr/^not all run here: a statement was skipped here \(skip_command\)/, "node ${f2}'s history says so");

# ---- Group 3: a table sent again comes with its owner and privileges ----
my $l3 = $c->leader(3);
my ($r3) = grep { $_ != $l3 } 1, 2, 3;
on(3, $r3, q{CREATE TABLE rs (id int PRIMARY KEY); INSERT INTO rs VALUES (0)});
for my $id (grep { $_ != $r3 } 1, 2, 3)
{
	on(3, $id, q{CREATE TABLE rs (id serial PRIMARY KEY, v text); ALTER TABLE rs OWNER TO order_owner;
	  GRANT SELECT, INSERT ON rs TO order_reader; GRANT USAGE ON SEQUENCE rs_id_seq TO order_reader;
	  COMMENT ON TABLE rs IS 'sent again'});
}
on(3, undef, q{SELECT dragonraft.replicate_table('rs', 3); INSERT INTO rs (v) VALUES ('a'), ('b')});
ok($c->caught_up(3), 'group 3 caught up');
is(on(3, $r3, q{SELECT state FROM dragonraft.tables WHERE relid = 'rs'::regclass}), 'refused',
	"node $r3 refused rs (a table of its own)");
on(3, $r3, q{DROP TABLE rs});
on(3, undef, q{SELECT dragonraft.resend_table('rs')});
ok($c->caught_up(3), 'group 3 caught up after the resend');
is(on(3, $r3, q{SELECT state || ' ' || pg_get_userbyid(c.relowner) || ' ' || obj_description(c.oid, 'pg_class')
  FROM dragonraft.tables t JOIN pg_class c ON c.oid = t.relid WHERE c.relname = 'rs'}),
	'replicated order_owner sent again', "node $r3 took rs with its owner and comment");
is($c->catalog($r3), $c->catalog($l3), "node ${r3}'s objects and tables (rs and its sequence's privileges) are the leader's");
is($c->contents($r3, 'rs', 'id'), $c->contents($l3, 'rs', 'id'), "node ${r3}'s rs equals the leader's");

done_testing();
