# A member that leads a group for the first time proposes the members'
# addresses it holds from their infos (entries of dragonraft's own) before
# dragonraft.status shows it leading: proposed at its engine worker's next
# turn instead, up to 250 ms later, they came after what a client proposed
# once it saw the new leader, and after a test's settled() (review 51: 2
# times in 12 transfers; TAP 112, 122, 126 and 048 stop an apply worker or
# count entries once the group is settled).  Each of 8 transfers is
# followed by settled() and 0.7 s in which the log, polled, must not grow.
# Without the change, transfers 1 and 2 added an entry in that window.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(3);
$c->create_group(1, 1, 2, 3);
ok($c->settled(1), 'group 1 settled');
for my $i (1 .. 8)
{
	my $l = $c->leader(1);
	my $to = ($l % 3) + 1;
	$c->node($l)->safe_psql('postgres', "SELECT dragonraft.transfer_leader(1, $to)");
	ok($c->wait_until("node $to to lead group 1",
			sub { ($c->poll($to, 'SELECT role FROM dragonraft.status WHERE group_id = 1') // '') eq 'leader' })
		  && $c->settled(1), "transfer $i: node $to leads group 1, settled");
	my $last = sub { $c->query($to, 'SELECT last_index FROM dragonraft.status WHERE group_id = 1') };
	my $before = $last->();
	# Polled for an entry until the deadline: one of its own would come at
	# the engine worker's next turn, within 0.25 s.
	my $now = $c->poll_until(sub { my $n = $last->(); $n ne $before && $n }, 0.7) || $before;
	is($now, $before, "transfer $i: node ${to}'s log takes no entry of its own after settled()");
}
done_testing();
