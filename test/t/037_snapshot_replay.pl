# A full snapshot rebuilds the objects other than tables exactly as the
# group's commands left them (review 7): its load runs again, verbatim and in
# log order, what the commands this node lacks did besides changing the
# group's tables and rows, DROPs, RENAMEs, SET SCHEMA, ADD ATTRIBUTE and a
# command's SET statements included.  Group 1 on nodes 1-3: node f stops
# before the history, misses it and loads a snapshot (it runs the commands it
# missed, one of them dropping a type that its kept table still uses; a table
# of the group renamed meanwhile is made under its new name); node h,
# which applied all of it, loads one too (it runs nothing); a bare node 4
# joins (it runs the whole history).  Each ends with the leader's schemas,
# types, enums, domains, functions, grants and table definitions.  Then a
# bare node whose own schema takes a name the history makes fails its join
# with an error naming the command, and joins once it is gone.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(5, conf => qq{
dragonraft.snapshot_entries = 50
dragonraft.compaction_overhead = 5
});
$c->create_group(1, 1, 2, 3);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
my ($f, $h) = grep { $_ != $l } 1, 2, 3;
my ($F, $H) = ($c->node($f), $c->node($h));

sub lsql { return $c->node($c->leader(1))->safe_psql('postgres', $_[0]); }
sub ex { return lsql("SELECT dragonraft.execute(1, \$q\$$_[0]\$q\$)"); }


sub same_catalog
{
	my ($what, $id) = @_;
	ok($c->caught_up(1), "$what: the members caught up");
	# another member (the leader, unless node id leads)
	my $l1 = $c->leader(1);
	my $other = $l1 != $id ? $l1 : (grep { $_ != $id } $c->running_in(1))[0];
	is($c->catalog($id), $c->catalog($other), "$what: node ${id}'s objects and tables are node ${other}'s");
	return;
}

# Node id loaded a snapshot of group 1 (within the timeout).
sub loads_snapshot
{
	my ($id) = @_;
	return $c->wait_until("node $id to load a snapshot", sub { ($c->poll($id,
		q{SELECT snapshots_received >= 1 FROM dragonraft.stat_groups WHERE group_id = 1}) // '') eq 't' });
}

sub write_rows
{
	my ($tag) = @_;
	lsql(join('', map { "INSERT INTO t VALUES ($tag$_, 'w');\n" } 1 .. 60));
	return;
}

# A role of every node that is not a superuser runs some of the commands.
for my $id (1 .. 5)
{
	$c->node($id)->safe_psql('postgres', 'CREATE ROLE ddl_owner; GRANT dragonraft_admin TO ddl_owner;
	  GRANT CREATE ON SCHEMA public TO ddl_owner');
}
sub ex_as_owner { return lsql("SET ROLE ddl_owner; SELECT dragonraft.execute(1, \$q\$$_[0]\$q\$)"); }

# What node f has when it stops: a table whose column uses a type the group
# drops with CASCADE later, a table using an enum that the group drops and
# makes again (after the table stopped using it, then uses it again: node f
# replaces its tables kept so far, here as the load, not as the role that runs
# the command), a table that stays alike, and a table the group renames.
ex(q{CREATE TABLE t (id int PRIMARY KEY, v text)});
lsql(q{SELECT dragonraft.replicate_table('t', 1)});
ex(q{CREATE TYPE dt AS (a int); ALTER TABLE t ADD COLUMN d dt});
ex_as_owner(q{CREATE TYPE kt AS ENUM ('k1'); CREATE TABLE tk (id int PRIMARY KEY, v kt)});
lsql(q{INSERT INTO tk VALUES (1, 'k1'); SELECT dragonraft.replicate_table('tk', 1)});
ex(q{CREATE TABLE kept (id int PRIMARY KEY)});
lsql(q{INSERT INTO kept VALUES (1); SELECT dragonraft.replicate_table('kept', 1)});
ex(q{CREATE TABLE sq (id serial PRIMARY KEY)});
lsql(q{INSERT INTO sq DEFAULT VALUES; SELECT dragonraft.replicate_table('sq', 1)});
ex(q{CREATE TABLE rnt (id int PRIMARY KEY)});
lsql(q{INSERT INTO rnt VALUES (1); SELECT dragonraft.replicate_table('rnt', 1)});
ok($c->caught_up(1), 'the members caught up');
$F->stop('fast');
$c->group_nodes(1, $l, $h);

# ---- The history node f misses ----
ex(q{DROP TYPE dt CASCADE});
ex_as_owner(q{SET search_path = pg_catalog; ALTER TABLE public.tk DROP COLUMN v; DROP TYPE public.kt});
ex_as_owner(q{CREATE TYPE kt AS ENUM ('k1', 'k2'); ALTER TABLE tk ADD COLUMN v kt});
lsql(q{INSERT INTO tk VALUES (2, 'k2')});
# A table of the group renamed; a view on one (a load makes it: TAP 045).
ex(q{ALTER TABLE rnt RENAME TO rnt2; CREATE VIEW rntv AS SELECT id FROM rnt2});
lsql(q{INSERT INTO rnt2 VALUES (2)});
# A function dropped and made again with another result type, spelled otherwise.
ex(q{CREATE FUNCTION sf(int4) RETURNS int LANGUAGE sql AS 'SELECT 1'});
ex(q{DROP FUNCTION sf(integer)});
ex(q{CREATE FUNCTION sf(integer) RETURNS text LANGUAGE sql AS 'SELECT ''two''::text'});
# Dropped qualified, made unqualified.
ex(q{CREATE FUNCTION public.qf() RETURNS int LANGUAGE sql AS 'SELECT 1'});
ex(q{DROP FUNCTION qf});
# A type renamed before a table uses it; its old name made again.
ex(q{CREATE TYPE rn AS (a int); ALTER TYPE rn RENAME TO rn2; CREATE TYPE rn AS (z text)});
# Mixed case.
ex(q{CREATE TYPE "Mc" AS (a int); ALTER TYPE "Mc" RENAME TO "Mc2"});
# A schema renamed away and back, another renamed and its objects dropped.
ex(q{CREATE SCHEMA ra; CREATE TYPE ra.t AS (x int)});
ex(q{ALTER SCHEMA ra RENAME TO rb});
ex(q{ALTER SCHEMA rb RENAME TO ra});
ex(q{CREATE SCHEMA da; CREATE TYPE da.t AS (x int); CREATE FUNCTION da.f() RETURNS int LANGUAGE sql AS 'SELECT 1'});
ex(q{ALTER SCHEMA da RENAME TO db});
ex(q{DROP TYPE db.t; DROP FUNCTION db.f()});
# DROP TYPE ... CASCADE that takes a function with it.
ex(q{CREATE TYPE ca AS ENUM ('x'); CREATE FUNCTION cf(ca) RETURNS int LANGUAGE sql AS 'SELECT 1'});
ex(q{DROP TYPE ca CASCADE});
# A REVOKE of two functions, one of them dropped later.
ex(q{CREATE FUNCTION g1() RETURNS int LANGUAGE sql AS 'SELECT 1'; CREATE FUNCTION g2() RETURNS int LANGUAGE sql AS 'SELECT 2'});
ex(q{REVOKE EXECUTE ON FUNCTION g1(), g2() FROM PUBLIC});
ex(q{DROP FUNCTION g1()});
# A schema named after its owner.
ex(q{CREATE SCHEMA AUTHORIZATION CURRENT_USER});
# The command's own search_path.
ex(q{CREATE SCHEMA sp; SET search_path = sp; CREATE TYPE spt AS (a int)});
ex(q{CREATE TABLE sp.tt (id int PRIMARY KEY, v sp.spt)});
lsql(q{INSERT INTO sp.tt VALUES (1, ROW(1)); SELECT dragonraft.replicate_table('sp.tt', 1)});
# ADD and RENAME ATTRIBUTE; ALTER FUNCTION / TYPE / DOMAIN ... SET SCHEMA.
ex(q{CREATE TYPE ct AS (a int)});
ex(q{ALTER TYPE ct ADD ATTRIBUTE b int; ALTER TYPE ct RENAME ATTRIBUTE a TO a1});
ex(q{CREATE SCHEMA ss; CREATE FUNCTION public.mv() RETURNS int LANGUAGE sql AS 'SELECT 7';
  CREATE DOMAIN dd AS int CHECK (VALUE > 0); CREATE TYPE st AS (q int)});
ex(q{ALTER FUNCTION public.mv() SET SCHEMA ss; ALTER DOMAIN dd SET SCHEMA ss; ALTER TYPE st SET SCHEMA ss});
# Default privileges: only the tables made after them have the grant (review 9).
ex(q{ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO ddl_owner;
  ALTER DEFAULT PRIVILEGES GRANT USAGE ON SEQUENCES TO ddl_owner});
ex(q{CREATE TABLE tc (id int PRIMARY KEY, v ct, w rn2, n ss.dd, s ss.st, m int DEFAULT ss.mv())});
lsql(q{INSERT INTO tc (id, v, w, n, s) VALUES (1, ROW(1, 2), ROW(3), 4, ROW(5));
  SELECT dragonraft.replicate_table('tc', 1)});
# An enum renamed, then given values under its new name, used by rows.
ex(q{CREATE TYPE rm AS ENUM ('a')});
ex(q{ALTER TYPE rm RENAME TO rm2});
ex(q{ALTER TYPE rm2 ADD VALUE 'c'});
ex(q{ALTER TYPE rm2 ADD VALUE 'b' BEFORE 'c'; ALTER TYPE rm2 RENAME VALUE 'a' TO 'a0'});
ex(q{CREATE TABLE te (id int PRIMARY KEY, v rm2)});
lsql(q{INSERT INTO te VALUES (1, 'a0'), (2, 'b'), (3, 'c'); SELECT dragonraft.replicate_table('te', 1)});
# A command that makes a view and a function: a load makes both, also a
# load of a snapshot that a member which loaded one exported (review 9;
# review 12 F2: the view too).
ex(q{CREATE VIEW vv AS SELECT id FROM t; CREATE FUNCTION withview() RETURNS int LANGUAGE sql AS 'SELECT 42'});
my @tables = qw(t tk kept sq rnt2 sp.tt tc te);

my $expected = lsql(q{SELECT pg_get_function_result('sf(int)'::regprocedure) || ' '
  || (to_regprocedure('qf()') IS NULL) || ' ' || (to_regtype('public.spt') IS NULL) || ' '
  || enum_range(NULL::rm2)::text || ' ' || (SELECT proacl::text FROM pg_proc WHERE proname = 'g2')});
like($expected, qr/^text true true \{a0,b,c\} \{\w+=X\/\w+\}$/, "the leader's objects are what the history made");

# ---- Node f, behind a compaction, loads a snapshot ----
write_rows(1000);
ok($c->compact(1, $l, $h), 'the log is compacted past node f');
$c->group_nodes(1, 1, 2, 3);
$F->start;
ok(loads_snapshot($f), "node $f caught up by a snapshot");
same_catalog('a follower that missed the history', $f);
for my $t (@tables)
{
	is($c->contents($f, $t, '1'), $c->contents($l, $t, '1'), "node ${f}'s $t equals the leader's");
}
like(slurp_file($F->logfile), qr/replaces table public\.tk by the one in the snapshot/,
	"node $f replaced its tk, which used the type the group dropped and made again");
is($F->safe_psql('postgres', q{SELECT to_regclass('rnt') IS NULL}), 't',
	"node $f no longer has the table the group renamed under its old name");
is($F->safe_psql('postgres', q{SELECT (SELECT string_agg(DISTINCT via, ',') FROM dragonraft.ddl_history
		WHERE group_id = 1 AND index < (SELECT min(index) FROM dragonraft.ddl_history
		WHERE group_id = 1 AND command LIKE 'DROP TYPE dt%')) || ' '
		|| (SELECT via FROM dragonraft.ddl_history WHERE group_id = 1 AND command LIKE 'DROP FUNCTION sf%')}),
	'log replayed',
	"node ${f}'s history says the commands it had ran here from the log, and the load ran the ones it missed");

# ---- Node h, which has all of it, loads a snapshot: nothing runs again ----
$H->stop('fast');
$c->group_nodes(1, $l, $f);
write_rows(2000);
ok($c->compact(1, $l, $f), 'the log is compacted past node h');
$c->group_nodes(1, 1, 2, 3);
$H->start;
ok(loads_snapshot($h), "node $h caught up by a snapshot");
same_catalog('a member that had the history', $h);
is($H->safe_psql('postgres', q{SELECT (snapshots_received >= 1) || ' ' || (SELECT count(*) FROM dragonraft.ddl_history
		WHERE group_id = 1 AND via <> 'log') FROM dragonraft.stat_groups WHERE group_id = 1}),
	'true 0', "node $h loaded a snapshot, and its history says every command ran here from the log");

# ---- A bare node 4 joins ----
lsql("SELECT dragonraft.add_member(1, 4, '" . $c->raft_address(4) . "')");
$c->node(4)->safe_psql('postgres', "SELECT dragonraft.join_group(1, '" . $c->members(1, 2, 3) . "')");
$c->group_nodes(1, 1, 2, 3, 4);
same_catalog('a bare node', 4);
for my $t (@tables)
{
	is($c->contents(4, $t, '1'), $c->contents($l, $t, '1'), "node 4's $t equals the leader's");
}
is($c->node(4)->safe_psql('postgres', q{SELECT count(*) || ' ' || (SELECT count(*) FROM vv) || ' '
  || (SELECT count(*) FROM rntv) FROM dragonraft.ddl_failures WHERE group_id = 1}),
	'0 ' . lsql(q{SELECT count(*) FROM t}) . ' ' . lsql(q{SELECT count(*) FROM rnt2}),
	"node 4 has the views the commands made, and its ddl_failures lists nothing");
lsql(q{INSERT INTO te VALUES (4, 'b'); INSERT INTO tc (id, v) VALUES (2, ROW(7, 8))});
ok($c->caught_up(1), 'later writes reach node 4');
is($c->node(4)->safe_psql('postgres', q{SELECT string_agg(v::text, ',' ORDER BY id) FROM te}), 'a0,b,c,b',
	"node 4's te has the enum values added and renamed under the enum's new name");

# Node 4 leads: the next joiner loads a snapshot that node 4 exports.
ok($c->lead(1, 4), 'node 4 leads group 1');
write_rows(3000);
ok($c->compact(1, 1, 2, 3, 4), 'the log is compacted on every member');

# ---- A bare node with an object of its own where the history makes one ----
my $N = $c->node(5);
$N->safe_psql('postgres', q{CREATE SCHEMA ss});
lsql("SELECT dragonraft.add_member(1, 5, '" . $c->raft_address(5) . "', false)");
my ($out, $err) = ('', '');
$N->psql('postgres', "SELECT dragonraft.join_group(1, '" . $c->members(1, 2, 3, 4) . "')",
	stdout => \$out, stderr => \$err);
like($err, qr/the command of group 1 at entry \d+ failed when its snapshot.s load ran it again here: schema "ss" already exists/,
	'a bare node whose own schema takes a name the group uses fails its join, naming the command');
is($N->safe_psql('postgres', q{SELECT to_regclass('tc') IS NULL AND to_regtype('rm2') IS NULL}), 't',
	'and loads nothing');
$N->safe_psql('postgres', q{DROP SCHEMA ss});
$N->restart;
$c->group_nodes(1, 1, 2, 3, 4, 5);
ok(loads_snapshot(5),
	'with its own schema gone, after a restart, node 5 loads the snapshot');
same_catalog('a bare node once its own schema is gone', 5);

done_testing();
