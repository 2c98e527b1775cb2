# Review 26 finding 2: a group whose commands made many small tables (each
# with a primary key and a TOAST table).  The leader made them 100 per
# command; a bare node 4 joins: its load makes them all in one transaction,
# which takes about four locks per table (the table, its key's index, its
# TOAST table and index) and keeps them to its commit.  With PostgreSQL's
# defaults (max_locks_per_transaction 64, 100 connections: a lock table of
# about 7,800) a load of 3,000 tables fails at about the 2,100th with "out of
# shared memory", is tried again for ever, and meanwhile other sessions of
# node 4 fail with the same error (a read of dragonraft.status, the apply of
# other groups).  Since the fix (089 tests it with a small lock table) the
# load is refused before it takes any lock, with an error naming
# max_locks_per_transaction and the value it needs; a load is one
# transaction by design, so with the defaults node 4 still cannot join: the
# join stays TODO.  Heavy (about 6 minutes on 2 busy cores): runs only
# with DR_MANY_TABLES=<number of tables> (3000 shows it).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'set DR_MANY_TABLES (3000 shows the finding)' unless $ENV{DR_MANY_TABLES};
my $n = $ENV{DR_MANY_TABLES};
my $c = DragonCluster->new(4, conf => qq{
dragonraft.snapshot_entries = 100
dragonraft.compaction_overhead = 10
max_worker_processes = 16
});
$c->create_group(1, 1, 2, 3);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
my $L = $c->node($l);
my $N4 = $c->node(4);
diag 'lock table: ' . $L->safe_psql('postgres', q{SELECT current_setting('max_locks_per_transaction') || ' x (' ||
	current_setting('max_connections') || ' connections, ' || current_setting('max_worker_processes') || ' workers)'});
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY, v text)')});
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('t', 1)});
for (my $i = 1; $i <= $n; $i += 100)
{
	my $cmd = join('', map { "CREATE TABLE m$_ (id int PRIMARY KEY, v text);" } $i .. $i + 99);
	$L->safe_psql('postgres', "SELECT dragonraft.execute(1, '$cmd')");
}
is($L->safe_psql('postgres', q{SELECT count(*) FROM pg_class WHERE relname ~ '^m[0-9]+$'}), $n,
	"the leader made $n tables");
$L->safe_psql('postgres', join('', map { "INSERT INTO t VALUES ($_, 'r');\n" } 1 .. 150));
ok($c->caught_up(1), 'the members caught up');
my $index = $L->safe_psql('postgres', 'SELECT applied_index FROM dragonraft.status WHERE group_id = 1');
ok($c->compact(1, 1, 2, 3), 'nodes 1-3 compacted their logs');

$L->safe_psql('postgres', "SELECT dragonraft.add_member(1, 4, '" . $c->raft_address(4) . "')");
my ($jout, $jerr) = ('', '');
my $join = IPC::Run::start(['psql', '-XAtq', '-d', $N4->connstr('postgres'), '-c',
		"SELECT dragonraft.join_group(1, '" . $c->members(1, 2, 3) . "')"],
	'>', \$jout, '2>', \$jerr, IPC::Run::timeout(300));
my %errors;
my $ok = $c->wait_until('node 4 to load the snapshot', sub {
	my ($out, $err, $state) = $c->poll_result(4, q{SELECT state = 'ok' AND applied_index >= } . $index .
		q{ FROM dragonraft.status WHERE group_id = 1});
	$errors{$err}++ if $state eq 'error';
	my ($e) = $c->poll_result(4, q{SELECT coalesce(error, '') FROM dragonraft.status WHERE group_id = 1});
	$errors{"status: $e"}++ if $e;
	$out eq 't' }, 240);
diag "while node 4 loads: $_ (x$errors{$_})" for sort keys %errors;
local $TODO = 'review 26 finding 2: a load takes a lock per relation it makes, all at once';
is(join(', ', sort keys %errors), '', 'no session on node 4 failed meanwhile');
ok($ok, "node 4 joined from a snapshot of $n tables");
diag 'node 4 status: ' . $N4->safe_psql('postgres',
	q{SELECT state, applied_index, coalesce(error, '') FROM dragonraft.status WHERE group_id = 1});
eval { $join->finish; };
diag "join_group said: $jout $jerr";
if ($ok)
{
	$c->group_nodes(1, 1, 2, 3, 4);
	ok($c->caught_up(1), 'node 4 follows');
	is($c->contents(4, 't', 'id'), $c->contents($l, 't', 'id'), "node 4's t equals the leader's");
	is($N4->safe_psql('postgres', q{SELECT count(*) FROM pg_class WHERE relname ~ '^m[0-9]+$'}), $n,
		"node 4 has the $n tables");
}
done_testing();
