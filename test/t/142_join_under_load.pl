# A node joins a group through a full snapshot while clients write to it,
# and is killed while it loads the snapshot and again once it is a member.
#
# Three clients transfer money on group 1 (nodes 1-3, their logs compacted
# past the tables' creation, so a new member can only take a full
# snapshot).  Node 4 is added and runs join_group; its load pauses after its
# first table (dragonraft.testing_snapshot_delay, node 4 only) and its
# server is killed there (SIGKILL to all its processes).  Started again, it
# loads a snapshot again, paused again: meanwhile the leadership moves to
# another member and the members compact their logs past that snapshot.
# Once the pause ends, join_group, run again, returns once it caught up; its
# log says it loaded one (maybe two: the second for the compacted log).
# The clients then use node 4 too; it is killed again, the others maybe compact their logs past it (the seed
# decides: DR_CHAOS_SEED repeats a run), and started again it catches up.
# At the end the sum of the balances is unchanged, every transfer that got
# COMMIT is on all four members, nothing that failed is anywhere, and the
# members' tables, catalogs and Raft logs are identical.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use Transfers;
use PostgreSQL::Test::Utils;
use Test::More;

my $seed = $ENV{DR_CHAOS_SEED} // int(rand(1_000_000));
diag("seed $seed (DR_CHAOS_SEED=$seed repeats this run)");
srand($seed);

my $c = DragonCluster->new(4, conf => q{
dragonraft.compaction_overhead = 5
});
my $N4 = $c->node(4);
$c->create_group(1, 1, 2, 3);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
Transfers::setup($c, 1, $l);
my $load = Transfers->start($c, 3);
ok($load->wait_commits(10), 'the clients commit transfers');
ok($c->compact(1, 1, 2, 3), 'nodes 1-3 compacted their logs');
# (the tables' registrations are gone from every log: a new member needs a
# snapshot)
my $registered = $c->query($l, 'SELECT max(since_index) FROM dragonraft.tables WHERE group_id = 1');
for my $id (1 .. 3)
{
	cmp_ok($c->query($id, 'SELECT first_index FROM dragonraft.log_digest(1)'), '>', $registered,
		"node ${id}'s log begins after the tables' registrations (entry $registered)");
}

# 1. Node 4 joins; killed while it loads the snapshot.
$N4->append_conf('postgresql.conf', "dragonraft.testing_snapshot_delay = 600000\n");
$N4->reload;
ok($c->wait_until('add_member(1, 4) on the leader', sub {
		my ($st, $msg) = $c->sql_error($c->leader(1) || $l,
			"SELECT dragonraft.add_member(1, 4, '" . $c->raft_address(4) . "')");
		diag("add_member: $msg") if $st ne '';
		return $st eq '';
	}), 'node 4 added to group 1');
my $j = $c->start_join(4, 1, 1, 2, 3);
ok($c->paused_load(4, 1), 'node 4 loads a full snapshot of group 1, paused after its first table');
ok($load->wait_commits(5), 'transfers commit while node 4 loads');
ok($c->crash(4), 'node 4 killed with SIGKILL during the load');
eval { $j->{h}->finish; 1 } or $j->{h}->kill_kill;
$c->close_poll(4);
is($c->snapshot_loads(4, 1), 0, 'the load cut short is not logged as loaded');
ok($load->wait_commits(5), 'transfers commit while node 4 is down');

# 2. Started again, its next load pauses too; meanwhile the leadership
# moves and the members compact their logs past the snapshot it loads.
$N4->start;
ok($c->wait_until('node 4 to run its engine worker',
		sub { ($c->poll(4, 'SELECT engine_state FROM dragonraft.node_status()') // '') eq 'running' }),
	'node 4 runs its engine worker again');
$j = $c->start_join(4, 1, 1, 2, 3);
ok($c->paused_load(4, 1), 'node 4 loads a full snapshot of group 1 again, paused after its first table');
$l = $c->leader(1);
my $to = DragonCluster::pick(grep { $_ != $l } 1 .. 3);
my ($st, $msg) = $c->sql_error($l, "SELECT dragonraft.transfer_leader(1, $to)");
is($st, '', "the leadership moves from node $l to node $to during the load") or diag($msg);
ok($load->wait_commits(12), 'transfers commit meanwhile');
ok($c->compact(1, 1, 2, 3), 'nodes 1-3 compacted their logs past the snapshot node 4 loads');
$N4->append_conf('postgresql.conf', "dragonraft.testing_snapshot_delay = 0\n");
$N4->reload;
ok($c->wait_until('join_group to return', sub { $j->{h}->pump_nb; !$j->{h}->pumpable }),
	'join_group, run again, returns');
eval { $j->{h}->finish; 1 } or $j->{h}->kill_kill;
like(${ $j->{err} }, qr/NOTICE:  node 4 caught up with group 1/, 'node 4 caught up with group 1')
  or diag ${ $j->{err} };
unlike(${ $j->{err} }, qr/ERROR/, 'join_group succeeded');
my $loaded = $c->snapshot_loads(4, 1);
cmp_ok($loaded, '>=', 1, "node 4's log says it loaded a full snapshot of group 1");
note("node 4 loaded $loaded snapshots of group 1");
$c->group_nodes(1, 1 .. 4);
$load->nodes(1 .. 4);
ok($load->wait_commits(5), 'transfers commit with node 4 a member');

# 3. Node 4 killed again, a member now; maybe compacted past by the others.
ok($c->crash(4), 'node 4 killed with SIGKILL again');
$c->close_poll(4);
my $past = rand() < 0.5;
# (more than compaction_overhead entries for a compaction past it)
ok($load->wait_commits($past ? 12 : 5), 'transfers commit without node 4 (three voters of four)');
ok($c->compact(1, 1, 2, 3), 'nodes 1-3 compacted their logs past node 4') if $past;
$N4->start;
ok($load->wait_commits(5), 'transfers commit once node 4 is back');
ok($c->wait_until('node 4 to load another snapshot', sub { $c->snapshot_loads(4, 1) > $loaded }),
	'node 4 came back through another full snapshot') if $past;

my %r = $load->stop;
ok($c->caught_up(1), 'every member applied every entry');
$c->same_logs(1, 'the members hold the same Raft log');
my $catalog = $c->catalog(1);
is($c->catalog($_), $catalog, "node $_ has the catalog of node 1") for 2 .. 4;
Transfers::check($c, \%r, "join under load (seed $seed)");
done_testing();
