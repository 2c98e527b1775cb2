# The apply worker keeps what it learns of a replicated table's columns (their
# attribute numbers and types' receive functions) from one entry to the next.
# A command that changes the table between two entries must make the second
# use the new definition: in one apply transaction (the follower's apply
# waits behind a lock while the three entries arrive) and across
# transactions (a column dropped and added again under its name).  The
# identity index's scan is kept too: a row locked on the follower is waited
# for, then updated.
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
$L->safe_psql('postgres',
	q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY, v int)')});
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('t', 1)});
$L->safe_psql('postgres', 'INSERT INTO t VALUES (0, 0)');
ok($c->caught_up(1), 'every member has the first row');

# A session on the follower holds a lock that the apply of the next row waits for.
my ($in, $out, $err) = ("BEGIN;\nLOCK TABLE t IN SHARE MODE;\nSELECT pg_backend_pid();\n", '', '');
my $h = IPC::Run::start(['psql', '-XAtq', '-d', $F->connstr('postgres')],
	'<', \$in, '>', \$out, '2>', \$err);
$h->pump until $out =~ /^(\d+)\n/;
my $locker = $1;

$L->safe_psql('postgres', 'INSERT INTO t VALUES (1, 1)');
$L->safe_psql('postgres',
	q{SELECT dragonraft.execute(1, 'ALTER TABLE public.t ALTER COLUMN v TYPE text')});
$L->safe_psql('postgres', q{INSERT INTO t VALUES (2, 'two')});
my $last = $L->safe_psql('postgres',
	'SELECT applied_index FROM dragonraft.status WHERE group_id = 1');
ok($c->wait_until('the follower to know the three entries committed', sub {
	$F->safe_psql('postgres',
		"SELECT commit_index >= $last FROM dragonraft.status WHERE group_id = 1") eq 't' }),
	'the follower has the three entries committed');
ok($c->wait_until('the follower\'s apply to wait for the lock', sub {
	$F->safe_psql('postgres',
		"SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
		  . "WHERE NOT l.granted AND a.backend_type = 'dragonraft apply'") eq '1' }),
	'the follower\'s apply waits for the lock');
$in .= "COMMIT;\n";
$h->finish;
is($err, '', 'the locking session committed');

ok($c->caught_up(1), 'every member applied the command and the row after it');
for my $id ($c->ids)
{
	is($c->contents($id, 't', 'id'), '(0,0);(1,1);(2,two)',
		"node $id has the rows, the last one as text");
}

# Dropped and added again: the same name, another attribute number.
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'ALTER TABLE public.t DROP COLUMN v')});
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'ALTER TABLE public.t ADD COLUMN v int')});
$L->safe_psql('postgres', 'INSERT INTO t VALUES (3, 3)');
ok($c->caught_up(1), 'every member applied the commands and the row after them');
for my $id ($c->ids)
{
	is($c->contents($id, 't', 'id'), '(0,);(1,);(2,);(3,3)',
		"node $id has the new column's value");
}
# A row that a reader on the follower locks: the apply waits for it, then updates it.
($in, $out, $err) = ("BEGIN;\nSELECT id FROM t WHERE id = 3 FOR UPDATE;\n", '', '');
$h = IPC::Run::start(['psql', '-XAtq', '-d', $F->connstr('postgres')],
	'<', \$in, '>', \$out, '2>', \$err);
$h->pump until $out =~ /^3\n/;
$L->safe_psql('postgres', 'UPDATE t SET v = 30 WHERE id = 3');
ok($c->wait_until('the follower\'s apply to wait for the row', sub {
	$F->safe_psql('postgres',
		"SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
		  . "WHERE NOT l.granted AND a.backend_type = 'dragonraft apply'") eq '1' }),
	'the follower\'s apply waits for the locked row');
$in .= "COMMIT;\n";
$h->finish;
is($err, '', 'the reader committed');
ok($c->caught_up(1), 'every member applied the update');
for my $id ($c->ids)
{
	is($c->contents($id, 't', 'id'), '(0,);(1,);(2,);(3,30)', "node $id has the updated row");
}
is($F->safe_psql('postgres', 'SELECT apply_errors FROM dragonraft.stat_groups WHERE group_id = 1'),
	'0', 'the follower applied everything at the first try');

done_testing();
