# join_group's last step, its read barrier, waits for a leader that the
# joining member does not know yet (TAP 142 failed 1 run in 3 on a loaded
# machine: "the group has no leader at the moment").
#
# Node 3 joins group 1 (nodes 1 and 2) while its apply worker is stopped
# (SIGSTOP): join_group waits for it to catch up.  Meanwhile the members'
# engine workers are stopped too, and node 3's engine worker restarts: node
# 3 knows no leader then, and none can be elected.  Once
# node 3's apply worker runs again, join_group's barrier finds no leader:
# it says so and waits; the members' engine workers run again, and
# join_group returns.  (Before, it failed at once.)  Then node 4 joins so,
# and the members stay stopped: join_group fails once its barrier waited its
# bound (4 election timeouts) for a leader, saying so; run again once the
# members are back, it returns.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

# An election timeout of 3 s: the barrier's bound is 12 s.
my $c = DragonCluster->new(4, conf => q{
dragonraft.election_rtt = 60
});
$c->create_group(1, 1, 2);
my $l = $c->leader(1);
ok($l, "group 1 has a leader (node $l)");
# (the joiners' apply workers run once they have a group)
for my $id (3, 4)
{
	$c->create_group($id - 1, $id);
	ok($c->leader($id - 1), "node $id leads group " . ($id - 1) . ' of its own');
}
$c->group_nodes(1, 1, 2);

# Node n joins group 1 with its apply worker stopped; then the engine workers of
# group 1's members are stopped, node n's engine worker restarts (it knows no
# leader then), and node n's apply runs again: join_group's barrier follows.
sub join_without_leader
{
	my ($n, $what) = @_;
	my $apply = $c->process_of($n, qr/dragonraft apply/);
	ok($apply, "$what: node $n runs an apply worker");
	$c->query($l, "SELECT dragonraft.add_member(1, $n, '" . $c->raft_address($n) . "')");
	kill 'STOP', $apply;
	my $j = $c->start_join($n, 1, 1, 2);
	ok($c->wait_until('join_group to catch up', sub {
			$j->{h}->pump_nb if $j->{h}->pumpable;
			${ $j->{err} } =~ /node $n joined group 1: node \d+ leads it; catching up/ }),
		"$what: node $n joined group 1, its apply stopped");
	my @engines = map { $c->process_of($_, qr/dragonraft engine/) } $c->group_nodes(1);
	kill 'STOP', @engines;
	my $old = $c->process_of($n, qr/dragonraft engine/);
	$c->query($n, "SELECT pg_terminate_backend($old)");
	ok($c->wait_until("node ${n}'s engine worker to restart", sub {
			my $e = $c->process_of($n, qr/dragonraft engine/);
			return defined $e && $e != $old
			  && ($c->poll($n, 'SELECT engine_state FROM dragonraft.node_status()') // '') eq 'running';
		}), "$what: node ${n}'s engine worker restarted");
	like($c->poll($n, 'SELECT leader_id FROM dragonraft.status WHERE group_id = 1') // '', qr/^0?$/,
		"$what: node $n knows no leader of group 1");
	kill 'CONT', $apply;
	ok($c->wait_until('the barrier to wait for a leader (or join_group to end)', sub {
			$j->{h}->pump_nb if $j->{h}->pumpable;
			return !$j->{h}->pumpable || ${ $j->{err} } =~ /knows no leader of it; waiting/;
		}), "$what: join_group ended or waits");
	like(${ $j->{err} },
		qr/NOTICE:  joining group 1: node $n knows no leader of it; waiting up to 12000 ms for one/,
		"$what: join_group says its barrier waits for a leader");
	return ($j, @engines);
}

# 1. A leader comes within the bound.
my ($j, @engines) = join_without_leader(3, 'leader back');
kill 'CONT', @engines;
ok($c->wait_until('join_group to return', sub { $j->{h}->pump_nb if $j->{h}->pumpable; !$j->{h}->pumpable }),
	'join_group returns');
eval { $j->{h}->finish; 1 } or $j->{h}->kill_kill;
like(${ $j->{err} }, qr/NOTICE:  node 3 caught up with group 1/, 'node 3 caught up with group 1 once a leader came')
  or diag ${ $j->{err} };
unlike(${ $j->{err} }, qr/ERROR/, 'join_group succeeded');
$c->group_nodes(1, 1, 2, 3);
$l = $c->leader(1);
ok($l, "group 1 has a leader again (node $l)");

# 2. None comes: the barrier ends after its bound, saying so; node 4 stays a
# member, and join_group run again once a leader is back returns.
($j, @engines) = join_without_leader(4, 'no leader');
ok($c->wait_until('join_group to return', sub { $j->{h}->pump_nb if $j->{h}->pumpable; !$j->{h}->pumpable }),
	'join_group returns');
eval { $j->{h}->finish; 1 } or $j->{h}->kill_kill;
like(${ $j->{err} },
	qr/ERROR:  linearizable read barrier of dragonraft group 1 failed: the group has no leader at the moment\nDETAIL:  No leader confirmed the read index for 12000 ms \(4 election timeouts\), and this member knows none\./,
	'join_group fails once the barrier waited 4 election timeouts for a leader');
kill 'CONT', @engines;
$c->group_nodes(1, 1 .. 4);
ok($c->leader(1), 'group 1 has a leader again');
$j = $c->start_join(4, 1, 1, 2);
ok($c->wait_until('join_group to return', sub { $j->{h}->pump_nb if $j->{h}->pumpable; !$j->{h}->pumpable }),
	'join_group, run again, returns');
eval { $j->{h}->finish; 1 } or $j->{h}->kill_kill;
unlike(${ $j->{err} }, qr/ERROR/, 'join_group, run again, succeeded') or diag ${ $j->{err} };
ok($c->caught_up(1), 'every member of group 1 applied every entry');

done_testing();
