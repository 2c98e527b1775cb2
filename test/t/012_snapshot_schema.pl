# Full snapshots rebuild what the log built (review 4 #1-#3): group 1 on
# nodes 1-3 with tables linked by foreign keys.  A follower that needs a
# snapshot while it has the group's tables loads it (each truncated with the
# tables foreign keys link it to, a changed one replaced with those that
# reference it; a foreign key from a table outside the group into one of them
# is refused with an error naming it, and the load is tried again until it
# is gone).  Then a bare node 4 joins the group from a
# snapshot and has what the compacted log made: tables whose foreign keys
# reference tables replicated after them, a schema, an enum type with a value
# added later, a domain, a function; a table's owner, privileges, row level
# security, policies, triggers and comments (once the node has the owner
# role); and node f loads one again with all of it there.
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

sub leader_sql
{
	my ($sql) = @_;
	return $c->node($c->leader(1))->safe_psql('postgres', $sql);
}

# A snapshot on every running member once it applied everything: the log is
# compacted below it and a member further behind needs a full snapshot.
sub compact
{
	ok($c->caught_up(1), 'the members caught up');
	my $index = leader_sql('SELECT applied_index FROM dragonraft.status WHERE group_id = 1');
	for my $id ($c->running_in(1))
	{
		ok($c->wait_until("node $id to snapshot group 1 at $index",
				sub { ($c->poll($id, 'SELECT dragonraft.snapshot(1)') // -1) >= $index }),
			"node $id took a snapshot at $index or later");
	}
	return;
}

sub write_entries
{
	my ($n, $tag) = @_;
	leader_sql(join('', map { "INSERT INTO parent VALUES ($tag$_, 'w');\n" } 1 .. $n));
	return;
}

sub same_rows
{
	my ($what, $id, @tables) = @_;
	my $lid = $c->leader(1);
	ok($c->caught_up(1), "$what: the members caught up");
	for my $t (@tables)
	{
		is($c->contents($id, $t, '1'), $c->contents($lid, $t, '1'),
			"$what: node ${id}'s $t equals the leader's");
	}
	return;
}

# ---- #1: a follower with the group's tables, two linked by a foreign key ----
leader_sql(q{SELECT dragonraft.execute(1, 'CREATE TABLE parent (id int PRIMARY KEY, v text);
  CREATE TABLE child (id int PRIMARY KEY, pid int REFERENCES parent, v text)')});
leader_sql(q{INSERT INTO parent SELECT g, 'p' FROM generate_series(1, 100) g;
  INSERT INTO child SELECT g, g, 'c' FROM generate_series(1, 100) g;
  SELECT dragonraft.replicate_table('parent', 1);
  SELECT dragonraft.replicate_table('child', 1)});
my $f = $l == 3 ? 2 : 3;
my $F = $c->node($f);
same_rows('parent and child replicated', $f, 'parent', 'child');
# A table of node f's own, outside the group, that references the group's parent.
$F->safe_psql('postgres', 'CREATE TABLE mine (id int PRIMARY KEY, pid int REFERENCES parent)');

# Node f stops; the others write and compact past it.
sub leave_behind
{
	my ($tag) = @_;
	$F->stop('fast');
	$c->group_nodes(1, grep { $_ != $f } 1, 2, 3);
	write_entries(100, $tag);
	leader_sql("UPDATE child SET v = 'changed$tag' WHERE id <= 10");
	compact();
	$c->group_nodes(1, 1, 2, 3);
	return;
}
leave_behind(1000);
$F->start;
ok($c->wait_until("node $f to refuse the snapshot",
		sub { ($c->poll($f, q{SELECT coalesce(error, '') FROM dragonraft.status WHERE group_id = 1}) // '')
			  =~ /table public\.mine.* references table public\.parent of group 1/ }),
	"node $f refuses the snapshot, its error naming the table outside the group and the one it references");
isnt($F->safe_psql('postgres', q{SELECT state FROM dragonraft.status WHERE group_id = 1}), 'stopped',
	'the member stays up (the load is tried again)');
is($F->safe_psql('postgres', 'SELECT count(*) FROM parent'), '100', 'nothing was loaded');
# Once the cause is gone, the next try loads it: no restart.
$F->safe_psql('postgres', 'DROP TABLE mine');
same_rows('a member with foreign keys between its tables loads a snapshot', $f, 'parent', 'child');
cmp_ok($F->safe_psql('postgres',
		q{SELECT snapshots_received FROM dragonraft.stat_groups WHERE group_id = 1}),
	'>=', 1, "node $f caught up by a snapshot");
is($F->safe_psql('postgres', q{SELECT count(*) FROM pg_constraint WHERE conrelid = 'child'::regclass
		AND contype = 'f'}), '1', "node ${f}'s child still references parent");

# A table of the group changed in the compacted log: replaced, with the one that
# references it, together.
leave_behind(2000);
leader_sql(q{SELECT dragonraft.execute(1, 'ALTER TABLE parent ADD COLUMN extra int DEFAULT 1')});
write_entries(60, 3000);
compact();
$F->start;
same_rows('after the referenced table changed in the compacted log', $f, 'parent', 'child');
is($F->safe_psql('postgres', q{SELECT dragonraft.table_definition('parent') || dragonraft.table_definition('child')}),
	leader_sql(q{SELECT dragonraft.table_definition('parent') || dragonraft.table_definition('child')}),
	"node ${f}'s parent and child are defined as the leader's");

# ---- A bare node 4 joins: what the compacted log made, it gets from the snapshot ----
# #2c: a foreign key to a table of the group with a higher table id (the
# child replicated before its parent).
leader_sql(q{SELECT dragonraft.execute(1, 'CREATE TABLE p3 (id int PRIMARY KEY);
  CREATE TABLE c3 (id int PRIMARY KEY, pid int REFERENCES p3)')});
leader_sql(q{INSERT INTO p3 SELECT generate_series(1, 10);
  INSERT INTO c3 SELECT g, g FROM generate_series(1, 10) g;
  SELECT dragonraft.replicate_table('c3', 1);
  SELECT dragonraft.replicate_table('p3', 1)});
my @tables = qw(parent child c3 p3);
# #2a/#2b: a table in a schema, with columns of an enum type (a value added
# later), a domain, and a default calling a function, all made by execute();
# the function's owner changed.
leader_sql(q{SELECT dragonraft.execute(1, $$CREATE SCHEMA s;
  CREATE TYPE mood AS ENUM ('sad', 'ok');
  CREATE DOMAIN posint AS int CHECK (VALUE > 0);
  CREATE FUNCTION s.pick() RETURNS text LANGUAGE sql AS 'SELECT ''picked''::text';
  CREATE TABLE s.t (id int PRIMARY KEY, m mood, n posint, v text DEFAULT s.pick())$$)});
leader_sql(q{SELECT dragonraft.execute(1, $$ALTER TYPE mood ADD VALUE 'glad'$$)});
leader_sql(q{INSERT INTO s.t (id, m, n) SELECT g, 'ok', g FROM generate_series(1, 10) g;
  INSERT INTO s.t (id, m, n) VALUES (11, 'glad', 11);
  SELECT dragonraft.replicate_table('s.t', 1)});
push @tables, 's.t';
# #3: a table owned by alice, with privileges (bob reads it and may change a
# column), row level security and a policy, an ENABLE ALWAYS user trigger and
# a disabled one, and comments.  Roles are the node's own: alice exists on
# nodes 1-3 only, bob everywhere.
for my $id (1 .. 4)
{
	$c->node($id)->safe_psql('postgres', ($id < 4 ? 'CREATE ROLE alice; ' : '') . 'CREATE ROLE bob');
}
leader_sql(q{SELECT dragonraft.execute(1, $$CREATE TABLE k (id int PRIMARY KEY, who text, v text);
  CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql
    AS 'BEGIN NEW.v := coalesce(NEW.v, ''audited''); RETURN NEW; END';
  CREATE TRIGGER k_audit BEFORE INSERT ON k FOR EACH ROW EXECUTE FUNCTION audit();
  ALTER TABLE k ENABLE ALWAYS TRIGGER k_audit;
  CREATE TRIGGER k_off BEFORE UPDATE ON k FOR EACH ROW EXECUTE FUNCTION audit();
  ALTER TABLE k DISABLE TRIGGER k_off;
  ALTER TABLE k OWNER TO alice;
  GRANT SELECT ON k TO bob;
  GRANT UPDATE (v) ON k TO bob;
  ALTER TABLE k ENABLE ROW LEVEL SECURITY;
  CREATE POLICY theirs ON k FOR SELECT TO bob USING (who = current_user);
  COMMENT ON TABLE k IS 'audited';
  COMMENT ON COLUMN k.v IS 'set by the trigger'$$)});
leader_sql(q{INSERT INTO k (id, who) VALUES (1, 'bob'), (2, 'alice');
  SELECT dragonraft.replicate_table('k', 1)});
push @tables, 'k';
my $k_catalog = q{SELECT c.relowner::regrole || ' ' || c.relacl::text || ' ' || c.relrowsecurity
    || ' ' || (SELECT string_agg(polname || ':' || pg_get_expr(polqual, polrelid), ',') FROM pg_policy WHERE polrelid = c.oid)
    || ' ' || (SELECT string_agg(tgname || ':' || tgenabled::text, ',' ORDER BY tgname) FROM pg_trigger
               WHERE tgrelid = c.oid AND tgname LIKE 'k\_%')
    || ' ' || obj_description(c.oid, 'pg_class') || ' ' || col_description(c.oid, 3)
    || ' ' || (SELECT attacl::text FROM pg_attribute WHERE attrelid = c.oid AND attname = 'v')
  FROM pg_class c WHERE c.oid = 'k'::regclass};

write_entries(60, 4000);
compact();
leader_sql("SELECT dragonraft.add_member(1, 4, '" . $c->raft_address(4) . "')");
my ($jout, $jerr) = ('', '');
$c->node(4)->psql('postgres', "SELECT dragonraft.join_group(1, '" . $c->members(1, 2, 3) . "')",
	stdout => \$jout, stderr => \$jerr);
like($jerr, qr/table public\.k of the snapshot of group 1 could not get its owner.*role "alice" does not exist/,
	'the join of node 4, which lacks the owner of k, fails with an error that says so');
is($c->node(4)->safe_psql('postgres', 'SELECT to_regclass(\'k\') IS NULL'), 't', 'and loads nothing');
$c->node(4)->safe_psql('postgres', 'CREATE ROLE alice');
$c->node(4)->restart;
$c->group_nodes(1, 1, 2, 3, 4);
ok($c->wait_until('node 4 to install a snapshot', sub { ($c->poll(4,
		q{SELECT snapshots_received >= 1 FROM dragonraft.stat_groups WHERE group_id = 1}) // '') eq 't' }),
	'with the role there, after a restart, node 4 installs the snapshot');
same_rows('after the join', 4, @tables);
for my $t (@tables)
{
	is($c->node(4)->safe_psql('postgres', "SELECT dragonraft.table_definition('$t')"),
		leader_sql("SELECT dragonraft.table_definition('$t')"),
		"node 4's $t is defined as the leader's");
}
leader_sql(q{INSERT INTO p3 VALUES (11); INSERT INTO c3 VALUES (11, 11);
  INSERT INTO s.t (id, m, n) VALUES (12, 'sad', 12)});
same_rows('later writes', 4, 'p3', 'c3', 's.t');
is($c->node(4)->safe_psql('postgres', q{SELECT s.pick() || ' ' || enum_range(NULL::mood)::text}),
	'picked {sad,ok,glad}', "node 4 has the group's function and type");
is($c->node(4)->safe_psql('postgres', $k_catalog), leader_sql($k_catalog),
	"node 4's k has the leader's owner, privileges, row security, policy, triggers and comments");
is($c->node(4)->safe_psql('postgres', 'SET ROLE bob; SELECT string_agg(who, \',\') FROM k'), 'bob',
	'bob sees only his row of k on node 4');
$c->node(4)->safe_psql('postgres', 'SET ROLE alice; SELECT count(*) FROM k');
leader_sql(q{INSERT INTO k (id, who) VALUES (3, 'carl')});
same_rows("k's always-enabled trigger", 4, 'k');

# Node f, which has all of it, needs a snapshot again: what exists is skipped.
leave_behind(5000);
$F->start;
same_rows('a member that has the objects loads a snapshot', $f, @tables);
unlike(slurp_file($F->logfile), qr/replaces table public\.k /,
	"node $f kept its k, alike with its owner, privileges, policy, triggers and comments");

done_testing();
