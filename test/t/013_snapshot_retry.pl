# A snapshot load that fails for a cause the user can fix is tried again
# (review 4 #5): node 4 made a table t of its own, with a row, before it
# joins a group that replicates a t; the load refuses it ("it must be empty
# to join") and status shows that error while the member stays up; once the
# row is deleted on node 4, the next try loads the snapshot, with no restart,
# and node 4 follows the group.  (A corrupt file still stops the group: TAP
# 011.)
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

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
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY, v text)')});
$L->safe_psql('postgres', q{INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 1000) g});
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('t', 1)});
$L->safe_psql('postgres', join('', map { "INSERT INTO t VALUES (" . (2000 + $_) . ", 'later');\n" } 1 .. 150));
ok($c->caught_up(1), 'the members caught up');
my $index = $L->safe_psql('postgres', 'SELECT applied_index FROM dragonraft.status WHERE group_id = 1');
ok($c->compact(1, 1, 2, 3), 'nodes 1-3 compacted their logs');

# Node 4's own t, defined alike, with a row of its own.
$N4->safe_psql('postgres', q{CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (-1, 'mine')});
$L->safe_psql('postgres', "SELECT dragonraft.add_member(1, 4, '" . $c->raft_address(4) . "')");
my ($jout, $jerr) = ('', '');
my $join = IPC::Run::start(['psql', '-XAtq', '-d', $N4->connstr('postgres'), '-c',
		"SELECT dragonraft.join_group(1, '" . $c->members(1, 2, 3) . "')"],
	'>', \$jout, '2>', \$jerr, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
my $error = '';
ok($c->wait_until('node 4 to report the failed load', sub {
	$error = $N4->safe_psql('postgres', q{SELECT coalesce(error, '') FROM dragonraft.status WHERE group_id = 1});
	$error ne '' }), 'node 4 reports that the load failed');
diag "node 4 said: $error";
like($error, qr/empty|rows/, 'the error says why: the table has rows here');
isnt($N4->safe_psql('postgres', q{SELECT state FROM dragonraft.status WHERE group_id = 1}), 'stopped',
	'the member did not stop');
is($N4->safe_psql('postgres', 'SELECT count(*) FROM t'), '1', 'nothing of the snapshot was loaded');

# The user fixes the cause; the next try loads the snapshot, with no restart.
$N4->safe_psql('postgres', 'DELETE FROM t');
ok($c->wait_until('node 4 to load the snapshot', sub {
	$N4->safe_psql('postgres', q{SELECT state = 'ok' AND applied_index >= } . $index .
		q{ FROM dragonraft.status WHERE group_id = 1}) eq 't' }),
	'node 4 loaded the snapshot once its t was empty');
$join->finish;
diag "join_group said: $jerr";
is($N4->safe_psql('postgres', q{SELECT coalesce(error, '') FROM dragonraft.status WHERE group_id = 1}), '',
	'the error is gone from its status');
$c->group_nodes(1, 1, 2, 3, 4);
$L->safe_psql('postgres', q{UPDATE t SET v = 'after' WHERE id <= 10});
ok($c->caught_up(1), 'node 4 follows the later writes');
is($c->contents(4, 't', 'id'), $c->contents($l, 't', 'id'), "node 4's t equals the leader's");

done_testing();
