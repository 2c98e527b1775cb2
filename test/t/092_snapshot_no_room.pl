# Review 28, finding 3: a joining member whose snapshot directory's file
# system lacks room for the snapshot plus the 256 MiB the transport keeps
# free refuses every stream from the leader.  The refusal was logged as a
# refused connection: at most one line a source address a minute, and the
# leader's connection refused at the start of the join ("not a peer of
# this node", before join_group) had taken that line, so nothing said why
# the member made no progress: its dragonraft.status showed the group 'ok'
# at index 0 and the leader's log only exports again and again.  Each
# refusal is now logged, naming group, leader, directory and what to do.
# Review 28 F5: the member's dragonraft.status now shows the refusal (state
# catching_up, the error naming needed and free bytes, the directory and
# what to do) until a snapshot arrives, and join_group's NOTICE gives it;
# the leader's log says that the member refused it for want of room, and
# its dragonraft.members row for the member (error) says so with the
# numbers; what must stay free is the setting dragonraft.snapshot_min_free
# (here 2MB, more than the 1 MiB faked free: refused; then 0 with a reload:
# taken, the errors gone).
# The file system short of room is faked with test/engine/faultfs.c
# (DR_FAULT_FREE_BYTES: statvfs of the snapshot directory reports 1 MiB).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(4, conf => qq{
dragonraft.snapshot_entries = 100
dragonraft.compaction_overhead = 10
max_worker_processes = 16
});
my $N4 = $c->node(4);
$N4->append_conf('postgresql.conf', "dragonraft.snapshot_min_free = '2MB'\n");
$c->restart_short_of_room(4, 1 << 20);
my $l = $c->group_needing_snapshots(1, 1, 2, 3);
my $L = $c->node($l);

my $off4 = -s $N4->logfile;
my $offl = -s $L->logfile;
$L->safe_psql('postgres', "SELECT dragonraft.add_member(1, 4, '" . $c->raft_address(4) . "')");
# The leader dials node 4, which does not know the group yet: a refused
# connection, logged (what took the minute's one line before the fix).
ok($c->wait_until('node 4 to refuse the leader before it joins', sub {
	slurp_file($N4->logfile, $off4) =~ /refused connection from .*not a peer of this node/ }),
	'node 4 refused the leader before it joined');
my $join = $c->start_join(4, 1, 1, 2, 3);
my $log = '';
# (the leader's first stream comes within a second or two; 30 s is far less
# than the minute the old rate limit kept it quiet)
my $t0 = time;
ok($c->wait_until('node 4 to say it has no room', sub {
	$log = slurp_file($N4->logfile, $off4);
	$log =~ /no room for the snapshot of group 1/ || time - $t0 > 30 }) && $log =~ /no room for the snapshot of group 1/,
	'node 4 logs that it has no room for the snapshot');
like($log, qr/no room for the snapshot of group 1 from node $l in "dragonraft\/snapshots": \d+ bytes to come and 2097152 to stay free, 1048576 free; make room there/,
	'the line names the group, the leader, the directory, the bytes needed and free (dragonraft.snapshot_min_free = 2MB) and what to do');

# Node 4's status says why it makes no progress.
my $st = '';
ok($c->wait_until('node 4 to show the refusal in its status', sub {
	$st = $c->poll(4, q{SELECT state || '|' || coalesce(error, '') FROM dragonraft.status WHERE group_id = 1}) // '';
	$st =~ /no room/ }), "node 4's dragonraft.status shows the refusal");
like($st, qr/^catching_up\|no room for the snapshot of group 1 from node $l: \d+ bytes to come and 2097152 to stay free, 1048576 free in "dragonraft\/snapshots"; make room there, and the leader sends it again \(or lower dragonraft.snapshot_min_free\)$/,
	'its state is catching_up and its error names the bytes needed and free, the directory and what to do');
is($c->poll(4, q{SELECT applied_index FROM dragonraft.status WHERE group_id = 1}) // '', '0', 'node 4 has nothing yet');
# join_group, still waiting, says why in its NOTICE (every 5 s).
ok($c->wait_until('join_group to give the reason', sub {
	eval { $join->{h}->pump_nb; };
	${ $join->{err} } =~ /NOTICE:  joining group 1: 0 entries received, 0 applied\nDETAIL:  No room for the snapshot of group 1 from node $l: .*\(or lower dragonraft.snapshot_min_free\)\./ }),
	"join_group's NOTICE gives the refusal as its detail") or diag(${ $join->{err} });

# The leader's log says that node 4 refused the snapshot, and why.
my $llog = '';
ok($c->wait_until('the leader to log the refusal', sub {
	$llog = slurp_file($L->logfile, $offl);
	$llog =~ /node 4 refused the snapshot of group 1/ }), "the leader's log names node 4's refusal");
like($llog, qr/node 4 refused the snapshot of group 1: no room \(\d+ bytes to come and 2097152 to stay free, 1048576 free there\)/,
	"the leader's line gives node 4's numbers");
# ... and its dragonraft.members row for node 4 says why node 4 does not catch up.
my $merr = '';
ok($c->wait_until("the leader's members view to show node 4's refusal", sub {
	$merr = $c->poll($l, q{SELECT error FROM dragonraft.members WHERE group_id = 1 AND node_id = 4}) // '';
	$merr ne '' }), "the leader's dragonraft.members shows node 4's refusal");
like($merr, qr/^it refused the snapshot for want of room: \d+ bytes to come and 2097152 to stay free, 1048576 free there$/,
	'with its numbers');
is($c->poll($l, q{SELECT count(*) FROM dragonraft.members WHERE group_id = 1 AND error IS NOT NULL}), '1',
	'no other member has an error there');

# Less must stay free (the setting lowered, a reload; the 1 MiB stays): node 4 joins.
$N4->append_conf('postgresql.conf', "dragonraft.snapshot_min_free = 0\n");
$N4->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok($c->wait_until('node 4 to load the snapshot', sub {
	($c->poll(4, q{SELECT state = 'ok' AND applied_index > 0 FROM dragonraft.status WHERE group_id = 1}) // '') eq 't' }),
	'with dragonraft.snapshot_min_free = 0, node 4 takes and loads the snapshot');
is($c->poll(4, q{SELECT coalesce(error, 'none') FROM dragonraft.status WHERE group_id = 1}), 'none',
	"node 4's status error is gone");
ok($c->wait_until("the leader's members view to forget node 4's refusal", sub {
	($c->poll($l, q{SELECT error IS NULL FROM dragonraft.members WHERE group_id = 1 AND node_id = 4}) // '') eq 't' }),
	"the leader's dragonraft.members error of node 4 is gone once it took the snapshot");
ok($c->wait_until('the leader to log that node 4 took it', sub {
	slurp_file($L->logfile, $offl) =~ /node 4 took the snapshot of group 1 after \d+ refusals for want of room/ }),
	'the leader logs that node 4 took the snapshot after its refusals');
eval { $join->{h}->finish; };
$c->group_nodes(1, 1, 2, 3, 4);
ok($c->caught_up(1), 'node 4 caught up');
is($c->query(4, 'SELECT count(*) FROM t'), $c->query($l, 'SELECT count(*) FROM t'), "node 4's t has the leader's rows");
done_testing();
