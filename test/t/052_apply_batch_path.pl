# Several change sets in one apply transaction of a follower, with a
# registration among them.  A table owner's trigger that fires on apply must
# see the database's search_path in each change set, and what it sets (SET
# LOCAL, or a plain SET of search_path) must end with its change set: it
# must reach neither the next change sets of the transaction nor the
# apply worker's own work (the registration makes its table with the
# worker's search_path, pg_catalog, pg_temp, as the bootstrap superuser),
# in that transaction or a later one.  Then the table gets another identity
# index, whose keys the apply worker must look up instead of those it kept.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(3, conf => "dragonraft.max_apply_lock_delay = -1\n");
$c->create_group(1);
my $l = $c->leader(1);
ok($l, 'group 1 has a writable leader');
my $L = $c->node($l);
my ($f) = grep { $_ != $l } $c->ids;
my $F = $c->node($f);

# The owner's trigger notes the search_path and a setting of its own, then
# sets that one for the rest of its transaction and search_path for the
# rest of the session.
for my $cmd (
	'CREATE TABLE public.t (id int PRIMARY KEY, v int)',
	'CREATE TABLE public.seen (id int, path text, mark text)',
	q{CREATE FUNCTION public.note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.seen VALUES (NEW.id, current_setting('search_path'),
                                  current_setting('drtest.mark', true));
  PERFORM set_config('drtest.mark', 'set by ' || NEW.id, true);
  PERFORM set_config('search_path', 'public, pg_catalog', false);
  RETURN NEW;
END $$},
	'CREATE TRIGGER note AFTER INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION public.note()',
	'ALTER TABLE public.t ENABLE ALWAYS TRIGGER note')
{
	$L->safe_psql('postgres', "SELECT dragonraft.execute(1, \$cmd\$$cmd\$cmd\$)");
}
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('t', 1)});
# (settled: the group's own late entries, the members' infos and the
# addresses the leader proposes once it has them, come before the apply
# transaction counted below: an addresses entry ends a follower's batch)
ok($c->settled(1), 'every member has the table and its trigger');

# On the follower only: an event trigger notes the search_path of the DDL
# that the apply worker runs for a registration.
$F->safe_psql('postgres', q{
CREATE TABLE public.ddl_seen (tag text, obj text, path text);
CREATE FUNCTION public.ddl_note() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.ddl_seen SELECT tg_tag, object_identity, current_setting('search_path')
    FROM pg_event_trigger_ddl_commands();
END $$;
CREATE EVENT TRIGGER ddl_note ON ddl_command_end EXECUTE FUNCTION public.ddl_note();
ALTER EVENT TRIGGER ddl_note ENABLE ALWAYS;
});

# A session on the follower holds a lock that the apply of the first row
# waits for, while the next entries arrive: they are applied in the same
# transaction once it lets go.
my ($in, $out, $err) =
  ("BEGIN;\nLOCK TABLE t IN SHARE MODE;\nSELECT pg_backend_pid();\n", '', '');
my $h = IPC::Run::start([ 'psql', '-XAtq', '-d', $F->connstr('postgres') ],
	'<', \$in, '>', \$out, '2>', \$err);
$h->pump until $out =~ /^(\d+)\n/;

$L->safe_psql('postgres', 'INSERT INTO t VALUES (1, 1)');
$L->safe_psql('postgres', 'INSERT INTO t VALUES (2, 2)');
$L->safe_psql('postgres', 'CREATE TABLE public.u (id int PRIMARY KEY)');
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('u', 1)});
$L->safe_psql('postgres', 'INSERT INTO t VALUES (3, 3)');
my $last =
  $L->safe_psql('postgres', 'SELECT applied_index FROM dragonraft.status WHERE group_id = 1');
ok( $c->wait_until(
		'the follower to know the entries committed',
		sub {
			$F->safe_psql('postgres',
				"SELECT commit_index >= $last FROM dragonraft.status WHERE group_id = 1") eq 't';
		}),
	'the follower has the entries committed');
ok( $c->wait_until(
		'the follower\'s apply to wait for the lock',
		sub {
			$F->safe_psql('postgres',
				    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
				  . "WHERE NOT l.granted AND a.backend_type = 'dragonraft apply'") eq '1';
		}),
	'the follower\'s apply waits for the lock');
$in .= "COMMIT;\n";
$h->finish;
is($err, '', 'the locking session committed');
ok($c->caught_up(1), 'every member applied the rows and the registration');

# (A registration ends its transaction: it holds its table's lock, review 37.
# Its capture triggers are made in the transaction, its table in a subtransaction.)
is( $F->safe_psql(
		'postgres', q{SELECT count(DISTINCT x) FROM (SELECT xmin::text FROM seen WHERE id < 3
		UNION ALL SELECT xmin::text FROM ddl_seen WHERE tag = 'CREATE TRIGGER' AND obj LIKE '% on public.u') s(x)}),
	'1', 'the follower applied the first two rows and the registration in one transaction');
is( $F->safe_psql('postgres',
		'SELECT count(DISTINCT xmin::text) FROM seen'),
	'2', 'and the third row in the next one');
is( $F->safe_psql(
		'postgres', q{SELECT string_agg(id || ': ' || path || ', '
		|| coalesce(nullif(mark, ''), 'no mark'), '; ' ORDER BY id) FROM seen}),
	'1: "$user", public, no mark; 2: "$user", public, no mark; 3: "$user", public, no mark',
	'each row\'s trigger saw the database\'s search_path, and nothing the one before set');
is( $F->safe_psql('postgres',
		q{SELECT path FROM ddl_seen WHERE tag = 'CREATE TABLE' AND obj = 'public.u'}),
	'pg_catalog, pg_temp',
	'the registration in that transaction made its table with the worker\'s search_path');

# A registration in a transaction of its own, after them.
$L->safe_psql('postgres', 'CREATE TABLE public.w (id int PRIMARY KEY)');
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('w', 1)});
ok($c->caught_up(1), 'every member applied the next registration');
is( $F->safe_psql('postgres',
		q{SELECT path FROM ddl_seen WHERE tag = 'CREATE TABLE' AND obj = 'public.w'}),
	'pg_catalog, pg_temp',
	'a later registration made its table with the worker\'s search_path too');
is( $F->safe_psql('postgres', q{SELECT string_agg(c.relname, ', ' ORDER BY c.relname)
		FROM dragonraft.replicated_tables t JOIN pg_class c ON c.oid = t.relid
		WHERE t.state = 'replicated'}),
	't, u, w', 'the follower replicates the registered tables');

# The apply worker keeps the keys of a table's identity index with its
# column map: another identity index is looked up anew.
for my $cmd (
	'ALTER TABLE public.t ALTER COLUMN v SET NOT NULL',
	'CREATE UNIQUE INDEX t_v ON public.t (v)',
	'ALTER TABLE public.t REPLICA IDENTITY USING INDEX t_v')
{
	$L->safe_psql('postgres', "SELECT dragonraft.execute(1, \$cmd\$$cmd\$cmd\$)");
}
$L->safe_psql('postgres', 'UPDATE t SET id = id + 10 WHERE v = 2');
$L->safe_psql('postgres', 'DELETE FROM t WHERE v = 3');
ok($c->caught_up(1), 'every member applied the rows found by the new identity');
for my $id ($c->ids)
{
	is($c->contents($id, 't', 'id'), '(1,1);(12,2)', "node $id has the rows");
}
is( $F->safe_psql('postgres',
		'SELECT apply_errors FROM dragonraft.stat_groups WHERE group_id = 1'),
	'0', 'the follower applied everything at the first try');

done_testing();
