# A full snapshot brings the relations that the group's commands made and
# that are not tables of the group (review 12 F2): a view over a table of
# the group, a sequence of its own advanced by nextval, a plain audit table
# that a trigger on a table of the group writes, and CREATE SCHEMA ... CREATE
# VIEW.  A bare node 4 joins from a snapshot (once a view of its own under
# one of those names is dropped there): it has them all, as the leader has
# them, and later commands on them (CREATE OR REPLACE VIEW, GRANT, ALTER
# SEQUENCE) and the audit trigger, once node 4 leads, run there as on every
# member.  Then a member stopped across a compaction, whose load must replace
# the table a view of the group reads, drops that view and makes it again;
# its history says that the load did not make an unlogged table (not
# carried).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $c = DragonCluster->new(4, conf => qq{
dragonraft.snapshot_entries = 50
dragonraft.compaction_overhead = 5
});
$c->node($_)->safe_psql('postgres', 'CREATE ROLE plain_reader') for 1 .. 4;
$c->create_group(1, 1, 2, 3);
my $N4 = $c->node(4);

sub on { my ($id, $sql) = @_; return $c->node($id // $c->leader(1))->safe_psql('postgres', $sql); }
sub ex { my ($cmd) = @_; return on(undef, "SELECT dragonraft.execute(1, \$q\$$cmd\$q\$)"); }

sub status
{
	my ($id) = @_;
	return on($id, q{SELECT state || coalesce(': ' || error, '') FROM dragonraft.status WHERE group_id = 1});
}

sub same_catalog
{
	my ($what, @ids) = @_;
	ok($c->caught_up(1), "$what: the members caught up");
	my $l = $c->leader(1);
	is($c->catalog($_), $c->catalog($l), "$what: node ${_}'s objects are the leader's (node $l)")
	  for grep { $_ != $l } @ids;
	return;
}

# What a snapshot carries of a node's made_relations: those that are not
# tables of the group nor sequences owned by a column.
my $plain = q{SELECT string_agg(format('%s:%s', m.relid::regclass, c.relkind), ',' ORDER BY m.index, m.seq)
  FROM dragonraft.made_relations m JOIN pg_class c ON c.oid = m.relid
 WHERE NOT EXISTS (SELECT FROM dragonraft.replicated_tables t WHERE t.relid = m.relid)
   AND NOT (c.relkind = 'S' AND EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
            AND d.objid = c.oid AND d.deptype IN ('a', 'i')))};

# ---- What the group's commands make ----
ex(q{CREATE TABLE t (id int PRIMARY KEY, v text)});
on(undef, q{SELECT dragonraft.replicate_table('t', 1); INSERT INTO t VALUES (1, 'one'), (2, 'two')});
ex(q{CREATE VIEW tv WITH (security_barrier) AS SELECT id, upper(v) AS uv FROM t WHERE id > 0;
  COMMENT ON VIEW tv IS 'a view of the group'});
ex(q{CREATE SEQUENCE ss AS integer START 100 INCREMENT 5 MAXVALUE 100000 NO CYCLE;
  GRANT USAGE ON SEQUENCE ss TO plain_reader; COMMENT ON SEQUENCE ss IS 'a sequence of the group'});
ex(q{CREATE TABLE audit (n bigserial PRIMARY KEY, id int, at text NOT NULL DEFAULT 'insert');
  CREATE FUNCTION audit_f() RETURNS trigger LANGUAGE plpgsql
    AS $$BEGIN INSERT INTO public.audit (id) VALUES (NEW.id); RETURN NEW; END$$;
  CREATE TRIGGER t_audit AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION audit_f()});
ex(q{CREATE SCHEMA s CREATE VIEW sv AS SELECT 1 AS one});
# A view dropped later, and one over another view: made in the order that works.
ex(q{CREATE VIEW gone AS SELECT 1 AS x});
ex(q{DROP VIEW gone});
ex(q{CREATE VIEW tv2 AS SELECT count(*) AS n FROM tv});
on(undef, q{INSERT INTO t VALUES (3, 'three')});
on(undef, q{SELECT nextval('ss'), nextval('ss'), nextval('ss')});
ok($c->caught_up(1), 'group 1 caught up');
my $l = $c->leader(1);
is(on($l, $plain), 'tv:v,ss:S,audit:r,s.sv:v,tv2:v',
	"the leader's made_relations lists what the commands made that is not the group's");
is(on($l, q{SELECT count(*) FROM audit}), '1', "the leader's trigger wrote its audit table");
is(on($l, q{SELECT last_value FROM ss}), '110', "the leader's sequence moved on");
on($l, join('', map { "INSERT INTO t VALUES ($_, 'r$_');\n" } 10 .. 70));
ok($c->compact(1, 1, 2, 3), 'the log is compacted on every member');

# ---- A bare node 4 with a view of its own under one of the names ----
$N4->safe_psql('postgres', q{CREATE VIEW tv AS SELECT 'mine' AS x});
on($l, "SELECT dragonraft.add_member(1, 4, '" . $c->raft_address(4) . "')");
my ($jout, $jerr) = ('', '');
my $join = IPC::Run::start(['psql', '-XAtq', '-d', $N4->connstr('postgres'), '-c',
		"SELECT dragonraft.join_group(1, '" . $c->members(1, 2, 3) . "')"],
	'>', \$jout, '2>', \$jerr, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
$join->finish;
like($jerr, qr/view public\.tv here has a name that view public\.tv of the snapshot of group 1 needs/,
	"node 4's load fails with an error naming its own view in the way") or diag($jerr);
is($N4->safe_psql('postgres', q{SELECT to_regclass('t') IS NULL}), 't', 'nothing was loaded');
$N4->safe_psql('postgres', 'DROP VIEW tv');
$c->group_nodes(1, 1, 2, 3, 4);
ok($c->wait_until('node 4 to load the snapshot', sub {
	($c->poll(4, q{SELECT snapshots_received >= 1 FROM dragonraft.stat_groups WHERE group_id = 1}) // '') eq 't' }),
	'once its view is gone, the load is tried again and node 4 loads the snapshot');
same_catalog('a bare node', 4);
is(on(4, q{SELECT string_agg(id || ':' || uv, ',' ORDER BY id) FROM tv}),
	on($l, q{SELECT string_agg(id || ':' || uv, ',' ORDER BY id) FROM tv}), "node 4's view reads its table");
is(on(4, q{SELECT n FROM tv2}), on($l, q{SELECT n FROM tv2}), "node 4's view over a view");
is(on(4, q{SELECT last_value || ' ' || is_called || ' ' || has_sequence_privilege('plain_reader', 'ss', 'USAGE')
  || ' ' || obj_description('ss'::regclass, 'pg_class') FROM ss}), '110 true true a sequence of the group',
	"node 4's sequence is at the leader's value, with its grant and comment");
is(on(4, q{SELECT count(*) || ' ' || (SELECT one FROM s.sv) FROM audit}), '0 1',
	"node 4 has the audit table (without the leader's rows) and the view of the schema");
is(on(4, q{SELECT obj_description('tv'::regclass, 'pg_class') || ' ' || pg_get_userbyid(relowner)
  FROM pg_class WHERE oid = 'tv'::regclass}), on($l, q{SELECT obj_description('tv'::regclass, 'pg_class')
  || ' ' || pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'tv'::regclass}),
	"node 4's view has the leader's comment and owner");
is(on(4, $plain), 'tv:v,ss:S,audit:r,s.sv:v,tv2:v', "node 4's made_relations are the snapshot's");
is(on(4, q{SELECT count(*) FROM dragonraft.ddl_failures}), '0', 'node 4 lacks no command');
is(on(4, q{SELECT count(*) FROM dragonraft.ddl_history WHERE error IS NOT NULL}), '0',
	"node 4's history has no command whose effect is missing");

# ---- Later commands on them run on every member ----
ex(q{CREATE OR REPLACE VIEW tv WITH (security_barrier) AS SELECT id, upper(v) AS uv, length(v) AS lv FROM t WHERE id > 0});
ex(q{GRANT SELECT ON tv TO plain_reader});
ex(q{ALTER SEQUENCE ss INCREMENT BY 10});
ex(q{ALTER TABLE audit ADD COLUMN note text});
on(undef, q{INSERT INTO t VALUES (100, 'hundred')});
same_catalog('after commands on them', 1, 2, 3, 4);
for my $id (1 .. 4)
{
	unlike(status($id), qr/^apply_failed/, "node ${id}'s apply of group 1 goes on");
	is(on($id, q{SELECT lv || ' ' || has_table_privilege('plain_reader', 'tv', 'SELECT') FROM tv WHERE id = 100}),
		'7 true', "node ${id}'s view is the new one, with its grant");
}

# Node 4 leads: the audit trigger writes its table there.
ok($c->lead(1, 4), 'node 4 leads group 1');
on(4, q{INSERT INTO t VALUES (101, 'on four')});
is(on(4, q{SELECT string_agg(id::text, ',') FROM audit}), '101', "node 4's audit trigger wrote its table");
is(on(4, q{SELECT nextval('ss')}), '120', "node 4's sequence goes on with its new increment");
ok($c->caught_up(1), 'the group goes on');
is($c->contents($_, 't', 'id'), $c->contents(4, 't', 'id'), "node ${_}'s t equals node 4's") for 1 .. 3;

# ---- A member behind a compaction whose load replaces the table a view reads ----
my ($h) = grep { $_ != 4 } 1 .. 3;
my @up = grep { $_ != $h } 1 .. 4;
$c->node($h)->stop('fast');
$c->group_nodes(1, @up);
ex(q{ALTER TABLE t ADD COLUMN w int DEFAULT 7});
ex(q{CREATE OR REPLACE VIEW tv2 AS SELECT count(*) AS n, sum(w) AS sw FROM t});
ex(q{DROP VIEW s.sv});
# An unlogged table, which snapshots do not carry.
my $ul = ex(q{CREATE UNLOGGED TABLE ul (id int)});
on(4, join('', map { "INSERT INTO t VALUES ($_, 'later');\n" } 200 .. 260));
ok($c->compact(1, @up), "the log is compacted past node $h");
my $offset = -s $c->node($h)->logfile;
$c->group_nodes(1, 1 .. 4);
$c->node($h)->start;
ok($c->wait_until("node $h to load a snapshot", sub {
	($c->poll($h, q{SELECT snapshots_received >= 1 FROM dragonraft.stat_groups WHERE group_id = 1}) // '') eq 't' }),
	"node $h loads a snapshot");
is(on($h, "SELECT error FROM dragonraft.ddl_history WHERE group_id = 1 AND index = $ul"),
	"not all run here: a snapshot's load does not make the unlogged table public.ul that this command made",
	"node ${h}'s history says the load did not make the unlogged table");
like(on($h, q{SELECT last_error FROM dragonraft.ddl_failures WHERE group_id = 1}), qr/unlogged table public\.ul/,
	"node ${h}'s ddl_failures lists it");
ex(q{DROP TABLE IF EXISTS ul});
same_catalog('a member that missed commands', $h);
like(slurp_file($c->node($h)->logfile, $offset),
	qr/dragonraft drops (?:[^\n]*, )?view public\.tv, [^\n]*made by commands of group 1/,
	"node $h dropped the group's view on the table it replaced, to make it again");
is(on($h, q{SELECT n || ' ' || sw FROM tv2}), on(4, q{SELECT n || ' ' || sw FROM tv2}),
	"node ${h}'s views read the table it replaced");
is(on($h, q{SELECT to_regclass('s.sv') IS NULL}), 't', "node $h no longer has the view the group dropped");
is(on($h, $plain), on(4, $plain), "node ${h}'s made_relations are the leader's");
ex(q{GRANT SELECT ON tv2 TO plain_reader});
same_catalog('a command after the load', 1 .. 4);

done_testing();
