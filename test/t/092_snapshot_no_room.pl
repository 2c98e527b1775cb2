# Review 28, finding 3: a joining member whose snapshot directory's file
# system lacks room for the snapshot plus the 256 MiB the transport keeps
# free refuses every stream from the leader.  The refusal was logged as a
# refused connection: at most one line a source address a minute, and the
# leader's connection refused at the start of the join ("not a peer of
# this node", before join_group) had taken that line, so nothing said why
# the member made no progress: its dragonraft.status showed the group 'ok'
# at index 0 and the leader's log only exports again and again.  Each
# refusal is now logged, naming group, leader, directory and what to do.
# (Not fixed: the member's dragonraft.status shows no error meanwhile.)
# The file system short of room is faked with test/engine/faultfs.c
# (DR_FAULT_FREE_BYTES: statvfs of the snapshot directory reports 1 MiB).
# Once the room is there (a restart without the shim), the member joins.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

my $shim = PostgreSQL::Test::Utils::tempdir() . '/libdr_faultfs.so';
system('cc', '-shared', '-fPIC', '-O2', '-o', $shim, "$ENV{DR_SCRIPTS}/../test/engine/faultfs.c", '-ldl') == 0
  or BAIL_OUT('cannot build faultfs.c');

my $c = DragonCluster->new(4, conf => qq{
dragonraft.snapshot_entries = 100
dragonraft.compaction_overhead = 10
max_worker_processes = 16
});
my $N4 = $c->node(4);
{
	local $ENV{LD_PRELOAD} = $shim;
	local $ENV{DR_FAULT_DIR} = $N4->data_dir . '/dragonraft/snapshots';
	local $ENV{DR_FAULT_FREE_BYTES} = 1 << 20;
	$N4->restart;
}
$c->create_group(1, 1, 2, 3);
my $l = $c->leader(1);
ok($l, "group 1 has a leader (node $l)");
my $L = $c->node($l);
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY, v text)')});
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('t', 1)});
$L->safe_psql('postgres', q{INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 1000) g});
$L->safe_psql('postgres', join('', map { "INSERT INTO t VALUES (" . (2000 + $_) . ", 'later');\n" } 1 .. 150));
ok($c->caught_up(1), 'the members caught up');
ok($c->compact(1, 1, 2, 3), 'nodes 1-3 compacted their logs: a new member needs a snapshot');

my $off4 = -s $N4->logfile;
$L->safe_psql('postgres', "SELECT dragonraft.add_member(1, 4, '" . $c->raft_address(4) . "')");
# The leader dials node 4, which does not know the group yet: a refused
# connection, logged (what took the minute's one line before the fix).
ok($c->wait_until('node 4 to refuse the leader before it joins', sub {
	slurp_file($N4->logfile, $off4) =~ /refused connection from .*not a peer of this node/ }),
	'node 4 refused the leader before it joined');
my ($jout, $jerr) = ('', '');
my $join = IPC::Run::start(['psql', '-XAtq', '-d', $N4->connstr('postgres'), '-c',
		"SELECT dragonraft.join_group(1, '" . $c->members(1, 2, 3) . "')"],
	'>', \$jout, '2>', \$jerr, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
my $log = '';
# (the leader's first stream comes within a second or two; 30 s is far less
# than the minute the old rate limit kept it quiet)
my $t0 = time;
ok($c->wait_until('node 4 to say it has no room', sub {
	$log = slurp_file($N4->logfile, $off4);
	$log =~ /no room for the snapshot of group 1/ || time - $t0 > 30 }) && $log =~ /no room for the snapshot of group 1/,
	'node 4 logs that it has no room for the snapshot');
like($log, qr/no room for the snapshot of group 1 from node $l in "dragonraft\/snapshots": \d+ bytes to come and 268435456 to stay free; make room there/,
	'the line names the group, the leader, the directory and what to do');
is($c->poll(4, q{SELECT applied_index FROM dragonraft.status WHERE group_id = 1}) // '', '0', 'node 4 has nothing yet');

# Room made (the server again without the shim): node 4 joins.
$N4->restart;
ok($c->wait_until('node 4 to load the snapshot', sub {
	($c->poll(4, q{SELECT state = 'ok' AND applied_index > 0 FROM dragonraft.status WHERE group_id = 1}) // '') eq 't' }),
	'with room, node 4 loads the snapshot');
eval { $join->finish; };
$c->group_nodes(1, 1, 2, 3, 4);
ok($c->caught_up(1), 'node 4 caught up');
is($c->query(4, 'SELECT count(*) FROM t'), $c->query($l, 'SELECT count(*) FROM t'), "node 4's t has the leader's rows");
done_testing();
