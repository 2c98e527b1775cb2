# Review 31 F12: a joining member's refusal of a snapshot for want of room
# after its group restarted in place.  Node 4's load of the leader's
# snapshot fails for want of its file (its own table t with a row, then the
# file deleted: 086), so group 1 restarts there in place (heal) to get
# another, and its status keeps the failed load's error until a snapshot
# loads.  Meanwhile its snapshot directory's file system has no room for
# the next one (snapshot_min_free 2MB, 1 MiB faked free, as in 092): node 4
# refuses it.  Before the fix its dragonraft.status still named the file
# that was gone, which no longer held, and never the refusal, which did; now
# the refusal takes the old error's place, and once room is made (the
# setting lowered) node 4 loads a snapshot and shows no error.
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
$N4->append_conf('postgresql.conf', "dragonraft.snapshot_min_free = 0\n");
$c->restart_short_of_room(4, 1 << 20);
my $l = $c->group_needing_snapshots(1, 1, 2, 3);
my $L = $c->node($l);

# Node 4 takes the snapshot, but its load fails: a table t of its own with a row.
$N4->safe_psql('postgres', q{CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (-1, 'mine')});
$L->safe_psql('postgres', "SELECT dragonraft.add_member(1, 4, '" . $c->raft_address(4) . "')");
my $join = $c->start_join(4, 1, 1, 2, 3);
ok($c->wait_until('node 4 to report the failed load', sub {
	($c->poll(4, q{SELECT coalesce(error, '') FROM dragonraft.status WHERE group_id = 1}) // '') ne '' }),
	'node 4 reports that the load failed');

# No room for the next snapshot; the file goes, so the group restarts in place.
$N4->append_conf('postgresql.conf', "dragonraft.snapshot_min_free = '2MB'\n");
$N4->safe_psql('postgres', 'SELECT pg_reload_conf()');
my $off4 = -s $N4->logfile;
unlink glob($N4->data_dir . '/dragonraft/snapshots/snap-*');
$N4->safe_psql('postgres', 'DELETE FROM t');
ok($c->wait_until('node 4 to restart group 1 in place', sub {
	slurp_file($N4->logfile, $off4) =~ /group 1 restarts on node 4 in \d+ ms to get another snapshot/ }),
	'node 4 restarts group 1 in place to get another snapshot');
ok($c->wait_until('node 4 to refuse the next snapshot', sub {
	slurp_file($N4->logfile, $off4) =~ /no room for the snapshot of group 1 from node $l/ }),
	'node 4 refuses the next snapshot for want of room');
my $st = '';
ok($c->wait_until('node 4 to show the refusal in its status', sub {
	$st = $c->poll(4, q{SELECT state || '|' || coalesce(error, '') FROM dragonraft.status WHERE group_id = 1}) // '';
	$st =~ /no room/ }), "node 4's dragonraft.status shows the refusal, not the old load's error") or diag "status: $st";
like($st, qr/^catching_up\|no room for the snapshot of group 1 from node $l: \d+ bytes to come and 2097152 to stay free, 1048576 free in "dragonraft\/snapshots"; make room there, and the leader sends it again \(or lower dragonraft.snapshot_min_free\)$/,
	'state catching_up, the error with the numbers and what to do');

# Room made: node 4 loads a snapshot, and no error stays.
$N4->append_conf('postgresql.conf', "dragonraft.snapshot_min_free = 0\n");
$N4->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok($c->wait_until('node 4 to load a snapshot', sub {
	($c->poll(4, q{SELECT state = 'ok' AND applied_index > 0 FROM dragonraft.status WHERE group_id = 1}) // '') eq 't' }),
	'node 4 loads a snapshot once it has room');
is($c->poll(4, q{SELECT coalesce(error, 'none') FROM dragonraft.status WHERE group_id = 1}), 'none',
	"node 4's status shows no error");
eval { $join->{h}->finish; };
$c->group_nodes(1, 1, 2, 3, 4);
ok($c->caught_up(1), 'node 4 caught up');
is($c->contents(4, 't', 'id'), $c->contents($l, 't', 'id'), "node 4's t equals the leader's");
done_testing();
